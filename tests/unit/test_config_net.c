/* SPDX-License-Identifier: Apache-2.0 */
/* --net (src/config/net.c): Cloud Hypervisor v28's keys, defaults, repeats and every error. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "util/util.h"

#define ARGV(...) ((char *const[]){ "cubicle", "--kernel", "k", __VA_ARGS__, NULL })
#define ARGC(...) ((int)ARRAY_SIZE(((const char *[]){ "cubicle", "--kernel", "k", __VA_ARGS__ })))

#define PARSE(a, ...) parse(a, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))
/* Parses (must succeed) and validates (must fail with @msg). */
#define INVALID(msg, ...)   invalid(msg, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))
#define PARSE_ERR(msg, ...) parse_err(msg, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static void parse(struct cli_args *a, int argc, char *const argv[])
{
	char err[CONFIG_ERR_MAX] = "";

	if (cli_parse(argc, argv, a, err, sizeof(err)) != 0)
		fail_msg("cli_parse: %s", err);
}

static void invalid(const char *msg, int argc, char *const argv[])
{
	struct cli_args a;
	char err[CONFIG_ERR_MAX] = "";

	parse(&a, argc, argv);
	assert_int_equal(vm_config_validate(&a.cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, msg);
	/* fds given in these tests are not open: nothing must be closed twice */
	for (unsigned i = 0; i < a.cfg.num_nets; i++)
		a.cfg.nets[i].num_fds = 0;
	cli_args_free(&a);
}

static void parse_err(const char *msg, int argc, char *const argv[])
{
	struct cli_args a;
	char err[CONFIG_ERR_MAX] = "";

	assert_int_equal(cli_parse(argc, argv, &a, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, msg);
}

static void test_defaults(void **state)
{
	struct cli_args a;
	char err[CONFIG_ERR_MAX] = "";
	const struct net_config *n;

	(void)state;
	PARSE(&a, "--net", "tap=tap7");
	assert_int_equal(vm_config_validate(&a.cfg, err, sizeof(err)), 0);
	assert_int_equal(vm_config_assign_ids(&a.cfg), 0);
	assert_int_equal(a.cfg.num_nets, 1);
	n = &a.cfg.nets[0];
	assert_string_equal(n->tap, "tap7");
	assert_null(n->ip);
	/* a random MAC, locally administered and unicast, drawn once into the config */
	assert_non_null(n->mac);
	uint8_t mac[6];
	assert_int_equal(config_parse_mac(n->mac, mac), 0);
	assert_int_equal(mac[0] & 0x03, 0x02);
	assert_int_equal(n->num_queues, 2);
	assert_int_equal(n->queue_size, 256);
	assert_int_equal(n->mtu, 0);
	assert_string_equal(n->id, "_net0");
	cli_args_free(&a);
}

static void test_all_keys_and_repeat(void **state)
{
	struct cli_args a;
	char err[CONFIG_ERR_MAX] = "";
	const struct net_config *n;

	(void)state;
	PARSE(&a, "--net",
	      "tap=t0,ip=10.1.2.1,mask=255.255.0.0,mac=52:54:00:12:34:56,host_mac=52:54:00:aa:bb:"
	      "cc,"
	      "mtu=1400,num_queues=4,queue_size=1024,id=lan,bw_size=1000,bw_refill_time=10,"
	      "ops_size=5,ops_refill_time=100,ops_one_time_burst=7,iommu=off,vhost_user=off,"
	      "pci_segment=0",
	      "--net=mac=52:54:00:00:00:01");
	assert_int_equal(vm_config_validate(&a.cfg, err, sizeof(err)), 0);
	assert_int_equal(vm_config_assign_ids(&a.cfg), 0);
	assert_int_equal(a.cfg.num_nets, 2);
	n = &a.cfg.nets[0];
	assert_string_equal(n->ip, "10.1.2.1");
	assert_string_equal(n->mask, "255.255.0.0");
	assert_string_equal(n->mac, "52:54:00:12:34:56");
	assert_string_equal(n->host_mac, "52:54:00:aa:bb:cc");
	assert_int_equal(n->mtu, 1400);
	assert_int_equal(n->num_queues, 4);
	assert_int_equal(n->queue_size, 1024);
	assert_string_equal(n->id, "lan");
	assert_int_equal(n->rate_limiter.bandwidth.size, 1000);
	assert_int_equal(n->rate_limiter.bandwidth.refill_time, 10);
	assert_int_equal(n->rate_limiter.ops.size, 5);
	assert_int_equal(n->rate_limiter.ops.one_time_burst, 7);
	assert_null(a.cfg.nets[1].tap);
	assert_string_equal(a.cfg.nets[1].id, "_net1");
	cli_args_free(&a);
}

static void test_fds(void **state)
{
	struct cli_args a;
	char err[CONFIG_ERR_MAX] = "";
	int p[2], q[2];
	char arg[64];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(q), 0);
	snprintf(arg, sizeof(arg), "fd=[%d,%d],mac=02:00:00:00:00:01", p[0], q[0]);
	PARSE(&a, "--net", arg);
	assert_int_equal(a.cfg.nets[0].num_fds, 2);
	assert_int_equal(a.cfg.nets[0].fds[0], p[0]);
	assert_int_equal(a.cfg.nets[0].fds[1], q[0]);
	assert_int_equal(a.cfg.nets[0].num_queues, 4); /* one pair per fd */
	assert_int_equal(vm_config_validate(&a.cfg, err, sizeof(err)), 0);
	cli_args_free(&a); /* the config owns them */
	assert_int_equal(fcntl(p[0], F_GETFD), -1);
	assert_int_equal(fcntl(q[0], F_GETFD), -1);
	close(p[1]);
	close(q[1]);
}

static void test_errors(void **state)
{
	(void)state;
	PARSE_ERR("--net: unknown key 'tapp'", "--net", "tapp=x");
	PARSE_ERR("--net: invalid number 'x' for 'num_queues'", "--net", "num_queues=x");
	PARSE_ERR("--net: empty fd list", "--net", "fd=[]");
	PARSE_ERR("--net: invalid fd 'a' in '[3,a]'", "--net", "fd=[3,a]");
	PARSE_ERR("--net: fd 3 given twice in '[3,3]'", "--net", "fd=[3,3]");
	PARSE_ERR("--net: invalid value 'x' for 'vhost_mode' (expected client or server)", "--net",
		  "vhost_mode=x");
	INVALID("--net: invalid mac '52:54:00:12:34' (expected six hex bytes, 12:34:56:78:9a:bc)",
		"--net", "mac=52:54:00:12:34");
	INVALID("--net: invalid mac '52:54:00:12:34:5g' (expected six hex bytes, "
		"12:34:56:78:9a:bc)",
		"--net", "mac=52:54:00:12:34:5g");
	INVALID("--net: mac '01:00:5e:00:00:01' is a multicast address", "--net",
		"mac=01:00:5e:00:00:01");
	INVALID("--net: invalid host_mac 'zz' (expected six hex bytes, 12:34:56:78:9a:bc)", "--net",
		"host_mac=zz");
	INVALID("--net: invalid ip '10.0.0' (expected an IPv4 address)", "--net", "ip=10.0.0");
	INVALID("--net: invalid mask 'x' (expected an IPv4 netmask)", "--net",
		"ip=10.0.0.1,mask=x");
	INVALID("--net: mask '255.0.255.0' is not a netmask (its one bits must come first)",
		"--net", "ip=10.0.0.1,mask=255.0.255.0");
	INVALID("--net: mask needs ip", "--net", "mask=255.255.255.0");
	INVALID("--net: num_queues 3 must be even, from 2 to 32 (one RX and one TX queue per pair)",
		"--net", "num_queues=3");
	INVALID("--net: num_queues 0 must be even, from 2 to 32 (one RX and one TX queue per pair)",
		"--net", "num_queues=0");
	INVALID("--net: num_queues 34 must be even, from 2 to 32 (one RX and one TX queue per "
		"pair)",
		"--net", "num_queues=34");
	INVALID("--net: queue_size 100 must be a power of two from 2 to 32768", "--net",
		"queue_size=100");
	INVALID("--net: queue_size 1 must be a power of two from 2 to 32768", "--net",
		"queue_size=1");
	INVALID("--net: mtu 20 must be from 68 to 65535", "--net", "mtu=20");
	INVALID("--net: vhost_user is not supported yet", "--net", "vhost_user=on");
	INVALID("--net: socket is for vhost_user, which is not supported yet", "--net",
		"socket=/tmp/x");
	INVALID("--net: iommu=on is not supported yet", "--net", "iommu=on");
	INVALID("--net: pci_segment 1 does not exist (only segment 0)", "--net", "pci_segment=1");
	INVALID("--net: tap name 'abcdefghijklmnopq' must be 1 to 15 characters", "--net",
		"tap=abcdefghijklmnopq");
	INVALID("--net: 1 fds for 2 queue pairs (num_queues 4): give one TAP fd per queue pair",
		"--net", "fd=[1000],num_queues=4");
	INVALID("--net: give either tap= or fd=, not both", "--net", "fd=1000,tap=x");
	INVALID("--net: ip, mask and host_mac cannot be set on a TAP passed with fd= (configure it "
		"before handing it over)",
		"--net", "fd=1000,ip=10.0.0.1");
	INVALID("--net: id 'a' is used twice", "--net", "id=a", "--net", "id=a");
	INVALID("--net: tap 't' is given to two devices", "--net", "tap=t", "--net", "tap=t");
}

static void test_helpers(void **state)
{
	uint8_t mac[6] = { 0 };
	uint32_t a;

	(void)state;
	assert_int_equal(config_parse_mac("02:AB:cd:00:ff:10", mac), 0);
	assert_memory_equal(mac, ((uint8_t[]){ 2, 0xab, 0xcd, 0, 0xff, 0x10 }), 6);
	assert_int_equal(config_parse_mac("02:AB:cd:00:ff:10:", mac), -EINVAL);
	assert_int_equal(config_parse_mac("02-AB-cd-00-ff-10", mac), -EINVAL);
	assert_int_equal(config_parse_mac(NULL, mac), -EINVAL);
	assert_int_equal(config_parse_ipv4("255.255.255.0", &a), 0);
	assert_true(config_netmask_valid(a));
	assert_true(config_netmask_valid(0));
	assert_true(config_netmask_valid(0xffffffff));
	assert_int_equal(config_parse_ipv4("255.255.0.255", &a), 0);
	assert_false(config_netmask_valid(a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults), cmocka_unit_test(test_all_keys_and_repeat),
		cmocka_unit_test(test_fds),	 cmocka_unit_test(test_errors),
		cmocka_unit_test(test_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
