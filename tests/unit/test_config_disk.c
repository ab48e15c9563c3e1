/* SPDX-License-Identifier: Apache-2.0 */
/* --disk (src/config/disk.c): keys, defaults, repetition, validation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "util/util.h"

#define ARGV(...) ((char *const[]){ "cubicle", __VA_ARGS__, NULL })
#define ARGC(...) ((int)ARRAY_SIZE(((const char *[]){ "cubicle", __VA_ARGS__ })))

static int parse(struct cli_args *a, char *err, int argc, char *const argv[])
{
	return cli_parse(argc, argv, a, err, CONFIG_ERR_MAX);
}

#define PARSE(a, err, ...) parse(a, err, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static void parse_err(const char *msg, char *arg)
{
	struct cli_args a;
	char err[CONFIG_ERR_MAX] = "";

	assert_int_equal(PARSE(&a, err, "--disk", arg), -EINVAL);
	assert_string_equal(err, msg);
}

/* Parses and validates; returns validate's result with its message in @err. */
static int check(char *arg, char *err)
{
	struct cli_args a;
	int r;

	assert_int_equal(PARSE(&a, err, "--kernel", "k", "--console", "off", "--disk", arg), 0);
	r = vm_config_validate(&a.cfg, err, CONFIG_ERR_MAX);
	cli_args_free(&a);
	return r;
}

static void test_defaults_and_keys(void **state)
{
	struct cli_args a;
	char err[CONFIG_ERR_MAX] = "";
	const struct disk_config *d;

	(void)state;
	assert_int_equal(PARSE(&a, err, "--disk", "path=/a.img", "--disk",
			       "path=/b.img,readonly=on,direct=on,num_queues=4,queue_size=256,"
			       "id=data,serial=SER1,bw_size=1000,bw_refill_time=100,"
			       "ops_size=10,ops_one_time_burst=5,ops_refill_time=1000,"
			       "_disable_io_uring=on,poll_queue=off"),
			 0);
	assert_int_equal(a.cfg.num_disks, 2);
	d = &a.cfg.disks[0];
	assert_string_equal(d->path, "/a.img");
	assert_false(d->readonly);
	assert_false(d->direct);
	assert_int_equal(d->num_queues, 1);
	assert_int_equal(d->queue_size, 128);
	assert_null(d->id);
	assert_null(d->serial);
	assert_false(rate_limiter_config_enabled(&d->rate_limiter));
	d = &a.cfg.disks[1];
	assert_true(d->readonly);
	assert_true(d->direct);
	assert_true(d->disable_io_uring);
	assert_int_equal(d->num_queues, 4);
	assert_int_equal(d->queue_size, 256);
	assert_string_equal(d->id, "data");
	assert_string_equal(d->serial, "SER1");
	assert_int_equal(d->rate_limiter.bandwidth.size, 1000);
	assert_int_equal(d->rate_limiter.bandwidth.refill_time, 100);
	assert_int_equal(d->rate_limiter.ops.size, 10);
	assert_int_equal(d->rate_limiter.ops.one_time_burst, 5);
	assert_int_equal(d->rate_limiter.ops.refill_time, 1000);
	assert_int_equal(vm_config_assign_ids(&a.cfg), 0);
	assert_string_equal(a.cfg.disks[0].id, "_disk0");
	assert_string_equal(a.cfg.disks[1].id, "data");
	cli_args_free(&a);
}

/* Cloud Hypervisor's "--disk path=a path=b": several values after one --disk. */
static void test_multiple_values(void **state)
{
	struct cli_args a;
	char err[CONFIG_ERR_MAX] = "";

	(void)state;
	assert_int_equal(PARSE(&a, err, "--disk", "path=/a", "path=/b", "--disk=path=/c", "-v"), 0);
	assert_int_equal(a.cfg.num_disks, 3);
	assert_string_equal(a.cfg.disks[2].path, "/c");
	assert_int_equal(a.verbosity, 1);
	cli_args_free(&a);
}

static void test_parse_errors(void **state)
{
	struct cli_args a;
	char err[CONFIG_ERR_MAX] = "";
	char *argv[2 * CONFIG_MAX_DISKS + 4] = { "cubicle" };
	int n = 1;

	(void)state;
	parse_err("--disk: unknown key 'pth'", "pth=/a");
	parse_err("--disk: invalid value 'maybe' for 'readonly' (expected on or off)",
		  "path=/a,readonly=maybe");
	parse_err("--disk: 'path' needs a value", "path=");
	for (unsigned i = 0; i <= CONFIG_MAX_DISKS; i++) {
		argv[n++] = "--disk";
		argv[n++] = "path=/x";
	}
	assert_int_equal(cli_parse(n, argv, &a, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--disk: more than 16 disks");
}

static void test_validate(void **state)
{
	char err[CONFIG_ERR_MAX] = "";

	(void)state;
	assert_int_equal(check("path=/a,num_queues=16,queue_size=1024", err), 0);
	assert_int_equal(check("readonly=on", err), -EINVAL);
	assert_string_equal(err, "--disk: path is required");
	assert_int_equal(check("path=/a,num_queues=0", err), -EINVAL);
	assert_string_equal(err, "--disk: num_queues must be 1 to 16 (got 0)");
	assert_int_equal(check("path=/a,num_queues=17", err), -EINVAL);
	assert_int_equal(check("path=/a,queue_size=100", err), -EINVAL);
	assert_string_equal(err,
			    "--disk: queue_size must be a power of two from 2 to 1024 (got 100)");
	assert_int_equal(check("path=/a,queue_size=2048", err), -EINVAL);
	assert_int_equal(check("path=/a,vhost_user=on,socket=/s", err), -EINVAL);
	assert_string_equal(err, "--disk: vhost_user is not supported yet");
	assert_int_equal(check("path=/a,serial=123456789012345678901", err), -EINVAL);
	assert_int_equal(check("path=/a,bw_size=100", err), -EINVAL);
	assert_string_equal(err, "--disk: a rate limit needs both its size and its refill_time");
	assert_int_equal(check("path=/a,pci_segment=1", err), -EINVAL);
}

static void test_duplicate_ids(void **state)
{
	struct cli_args a;
	char err[CONFIG_ERR_MAX] = "";

	(void)state;
	assert_int_equal(PARSE(&a, err, "--kernel", "k", "--console", "off", "--disk",
			       "path=/a,id=x", "--disk", "path=/b,id=x"),
			 0);
	assert_int_equal(vm_config_validate(&a.cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--disk: id 'x' used twice");
	cli_args_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_keys), cmocka_unit_test(test_multiple_values),
		cmocka_unit_test(test_parse_errors),	  cmocka_unit_test(test_validate),
		cmocka_unit_test(test_duplicate_ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
