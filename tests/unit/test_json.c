/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/json.h"
#include "util/util.h"

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);

	if (!j)
		fail_msg("test JSON does not parse: %s (%s)", e.text, text);
	return j;
}

static void expect_config(const char *text, struct vm_config *ret)
{
	char err[CONFIG_ERR_MAX] = "";
	json_t *j = parse(text);
	int r = vm_config_from_json(j, ret, err, sizeof(err));

	json_decref(j);
	if (r != 0)
		fail_msg("unexpected error %d: %s (for %s)", r, err, text);
}

static void expect_error(const char *text, const char *msg)
{
	char err[CONFIG_ERR_MAX] = "";
	struct vm_config cfg;
	json_t *j = parse(text);
	int r = vm_config_from_json(j, &cfg, err, sizeof(err));

	json_decref(j);
	if (r != -EINVAL)
		fail_msg("expected -EINVAL (%s), got %d for %s", msg, r, text);
	if (strcmp(err, msg) != 0)
		fail_msg("for %s:\n  expected '%s'\n  got      '%s'", text, msg, err);
}

/* Drops null members (Cloud Hypervisor's None) from @j; true if any was there. */
static bool strip_nulls(json_t *j)
{
	bool found = false;
	const char *key;
	json_t *v;
	void *tmp;
	size_t i;

	if (json_is_object(j)) {
		json_object_foreach_safe(j, tmp, key, v)
		{
			if (json_is_null(v)) {
				json_object_del(j, key);
				found = true;
			} else {
				found |= strip_nulls(v);
			}
		}
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
		{
			found |= strip_nulls(v);
		}
	}
	return found;
}

/* to_json(from_json(@in)) must equal @out, where to_json leaves out what @out has as null. */
static void expect_round_trip(const char *in, const char *out)
{
	struct vm_config cfg;
	json_t *want = parse(out), *got;
	char *dump;

	expect_config(in, &cfg);
	got = vm_config_to_json(&cfg);
	assert_non_null(got);
	strip_nulls(want);
	if (strip_nulls(got))
		fail_msg("vm_config_to_json wrote a null (the OpenAPI schema has none)");
	if (!json_equal(got, want)) {
		dump = json_dumps(got, JSON_SORT_KEYS);
		fail_msg("round trip of %s\n gave %s", in, dump);
	}
	json_decref(got);
	json_decref(want);
	vm_config_free(&cfg);
}

#define MIN_BODY "{\"payload\": {\"kernel\": \"/k\"}}"

/* Cloud Hypervisor v28's vm.info config for MIN_BODY: every default written out. */
static const char default_out[] =
	"{\"cpus\": {\"boot_vcpus\": 1, \"max_vcpus\": 1, \"topology\": null, \"kvm_hyperv\": "
	"false,"
	"  \"max_phys_bits\": 46, \"affinity\": null, \"features\": {\"amx\": false}},"
	" \"memory\": {\"size\": 536870912, \"mergeable\": false, \"hotplug_method\": \"Acpi\","
	"  \"hotplug_size\": null, \"hotplugged_size\": null, \"shared\": false,"
	"  \"hugepages\": false, \"hugepage_size\": null, \"prefault\": false, \"zones\": null,"
	"  \"thp\": true},"
	" \"payload\": {\"firmware\": null, \"kernel\": \"/k\", \"cmdline\": null,"
	"  \"initramfs\": null},"
	" \"disks\": null, \"net\": null, \"rng\": {\"src\": \"/dev/urandom\", \"iommu\": false},"
	" \"balloon\": null, \"fs\": null, \"pmem\": null,"
	" \"serial\": {\"file\": null, \"mode\": \"Null\", \"iommu\": false},"
	" \"console\": {\"file\": null, \"mode\": \"Tty\", \"iommu\": false},"
	" \"devices\": null, \"user_devices\": null, \"vdpa\": null, \"vsock\": null,"
	" \"iommu\": false, \"sgx_epc\": null, \"numa\": null, \"watchdog\": false,"
	" \"platform\": null, \"tpm\": null}";

static void test_defaults(void **state)
{
	struct vm_config cfg;

	(void)state;
	expect_config(MIN_BODY, &cfg);
	assert_int_equal(cfg.cpus.boot_vcpus, 1);
	assert_int_equal(cfg.cpus.max_vcpus, 1);
	assert_int_equal(cfg.memory.size, 512ULL << 20);
	assert_true(cfg.memory.thp);
	assert_string_equal(cfg.payload.kernel, "/k");
	assert_null(cfg.payload.cmdline);
	assert_int_equal(cfg.serial.mode, CONSOLE_NULL);
	assert_int_equal(cfg.console.mode, CONSOLE_TTY);
	assert_null(cfg.rng.src);
	assert_int_equal(cfg.num_disks, 0);
	assert_null(cfg.vsock);
	assert_null(cfg.balloon);
	vm_config_free(&cfg);
	expect_round_trip(MIN_BODY, default_out);
	/* What vm.info gives back is itself a valid body, and gives itself again. */
	expect_round_trip(default_out, default_out);
}

/* Every section cubicle has, every field set away from its default. */
static const char full_body[] =
	"{\"cpus\": {\"boot_vcpus\": 2, \"max_vcpus\": 4, \"topology\": {\"threads_per_core\": 1,"
	"  \"cores_per_die\": 2, \"dies_per_package\": 1, \"packages\": 2}, \"kvm_hyperv\": true,"
	"  \"max_phys_bits\": 40, \"affinity\": null, \"features\": {\"amx\": false}},"
	" \"memory\": {\"size\": 1073741824, \"mergeable\": true, \"hotplug_method\": \"Acpi\","
	"  \"hotplug_size\": null, \"hotplugged_size\": null, \"shared\": true,"
	"  \"hugepages\": true, \"hugepage_size\": 2097152, \"prefault\": true, \"zones\": null,"
	"  \"thp\": false},"
	" \"payload\": {\"firmware\": null, \"kernel\": \"/vmlinux\","
	"  \"cmdline\": \"console=hvc0 root=/dev/vda\", \"initramfs\": \"/initrd\"},"
	" \"disks\": [{\"path\": \"/a.img\", \"readonly\": true, \"direct\": true, \"iommu\": "
	"false,"
	"   \"num_queues\": 2, \"queue_size\": 256, \"vhost_user\": false, \"vhost_socket\": null,"
	"   \"rate_limiter_config\": {\"bandwidth\": {\"size\": 1000, \"one_time_burst\": 10,"
	"    \"refill_time\": 100}, \"ops\": null}, \"id\": \"root\","
	"   \"disable_io_uring\": false, \"pci_segment\": 0},"
	"  {\"path\": \"/b.img\", \"readonly\": false, \"direct\": false, \"iommu\": false,"
	"   \"num_queues\": 1, \"queue_size\": 128, \"vhost_user\": false, \"vhost_socket\": null,"
	"   \"rate_limiter_config\": null, \"id\": \"_disk1\", \"disable_io_uring\": false,"
	"   \"pci_segment\": 0}],"
	" \"net\": [{\"tap\": \"tap7\", \"ip\": \"10.0.0.1\", \"mask\": \"255.255.0.0\","
	"   \"mac\": \"12:34:56:78:9a:bc\", \"host_mac\": \"02:00:00:00:00:01\", \"mtu\": 1400,"
	"   \"iommu\": false, \"num_queues\": 4, \"queue_size\": 512, \"vhost_user\": false,"
	"   \"vhost_socket\": null, \"vhost_mode\": \"Client\", \"id\": \"eth0\", \"fds\": null,"
	"   \"rate_limiter_config\": {\"bandwidth\": null, \"ops\": {\"size\": 5,"
	"    \"one_time_burst\": 0, \"refill_time\": 1000}}, \"pci_segment\": 0}],"
	" \"rng\": {\"src\": \"/dev/random\", \"iommu\": false},"
	" \"balloon\": {\"size\": 67108864, \"deflate_on_oom\": true, \"free_page_reporting\": "
	"true},"
	" \"fs\": null,"
	" \"pmem\": [{\"file\": \"/p.img\", \"size\": 134217728, \"iommu\": false,"
	"   \"discard_writes\": true, \"id\": \"_pmem0\", \"pci_segment\": 0}],"
	" \"serial\": {\"file\": \"/tmp/serial.log\", \"mode\": \"File\", \"iommu\": false},"
	" \"console\": {\"file\": null, \"mode\": \"Off\", \"iommu\": false},"
	" \"devices\": null, \"user_devices\": null, \"vdpa\": null,"
	" \"vsock\": {\"cid\": 3, \"socket\": \"/tmp/v.sock\", \"iommu\": false, \"id\": "
	"\"_vsock0\","
	"  \"pci_segment\": 0},"
	" \"iommu\": false, \"sgx_epc\": null, \"numa\": null, \"watchdog\": false,"
	" \"platform\": null, \"tpm\": null}";

static void test_every_section(void **state)
{
	struct vm_config cfg;

	(void)state;
	expect_config(full_body, &cfg);
	assert_int_equal(cfg.cpus.boot_vcpus, 2);
	assert_int_equal(cfg.cpus.topology.packages, 2);
	assert_int_equal(cfg.cpus.max_phys_bits, 40);
	assert_true(cfg.memory.hugepages);
	assert_int_equal(cfg.memory.hugepage_size, 2 << 20);
	assert_false(cfg.memory.thp);
	assert_string_equal(cfg.payload.initramfs, "/initrd");
	assert_int_equal(cfg.num_disks, 2);
	assert_true(cfg.disks[0].readonly);
	assert_int_equal(cfg.disks[0].rate_limiter.bandwidth.size, 1000);
	assert_int_equal(cfg.disks[0].rate_limiter.bandwidth.one_time_burst, 10);
	assert_string_equal(cfg.disks[1].id, "_disk1");
	assert_int_equal(cfg.num_nets, 1);
	assert_string_equal(cfg.nets[0].tap, "tap7");
	assert_int_equal(cfg.nets[0].mtu, 1400);
	assert_int_equal(cfg.nets[0].rate_limiter.ops.refill_time, 1000);
	assert_int_equal(cfg.nets[0].num_fds, 0);
	assert_string_equal(cfg.rng.src, "/dev/random");
	assert_non_null(cfg.balloon);
	assert_true(cfg.balloon->free_page_reporting);
	assert_int_equal(cfg.pmems[0].size, 128 << 20);
	assert_int_equal(cfg.serial.mode, CONSOLE_FILE);
	assert_string_equal(cfg.serial.file, "/tmp/serial.log");
	assert_int_equal(cfg.console.mode, CONSOLE_OFF);
	assert_non_null(cfg.vsock);
	assert_int_equal(cfg.vsock->cid, 3);
	vm_config_free(&cfg);
	expect_round_trip(full_body, full_body);
}

/* CubeSandbox's "sys_ctrl": false by default and then not written; true in and out. */
static void test_sys_ctrl(void **state)
{
	struct vm_config cfg;
	json_t *j;

	(void)state;
	expect_config(MIN_BODY, &cfg);
	assert_false(cfg.sys_ctrl);
	j = vm_config_to_json(&cfg);
	assert_null(json_object_get(j, "sys_ctrl"));
	json_decref(j);
	vm_config_free(&cfg);

	expect_config("{\"payload\": {\"kernel\": \"/k\"}, \"sys_ctrl\": true}", &cfg);
	assert_true(cfg.sys_ctrl);
	j = vm_config_to_json(&cfg);
	assert_true(json_is_true(json_object_get(j, "sys_ctrl")));
	json_decref(j);
	vm_config_free(&cfg);
	expect_round_trip("{\"payload\": {\"kernel\": \"/k\"}, \"sys_ctrl\": false}", default_out);
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"sys_ctrl\": 1}",
		     "sys_ctrl: expected true or false");
}

/* Cloud Hypervisor v41's landlock_enable and landlock_rules: written only when on. */
static void test_landlock(void **state)
{
	struct vm_config cfg;
	json_t *j;

	(void)state;
	expect_config(MIN_BODY, &cfg);
	assert_false(cfg.landlock_enable);
	j = vm_config_to_json(&cfg);
	assert_null(json_object_get(j, "landlock_enable"));
	assert_null(json_object_get(j, "landlock_rules"));
	json_decref(j);
	vm_config_free(&cfg);

	expect_config("{\"payload\": {\"kernel\": \"/k\"}, \"landlock_enable\": true,"
		      " \"landlock_rules\": [{\"path\": \"/a\", \"access\": \"rw\"},"
		      " {\"path\": \"/b\", \"access\": \"r\"}]}",
		      &cfg);
	assert_true(cfg.landlock_enable);
	assert_int_equal(cfg.num_landlock_rules, 2);
	assert_string_equal(cfg.landlock_rules[1].path, "/b");
	assert_string_equal(cfg.landlock_rules[1].access, "r");
	j = vm_config_to_json(&cfg);
	assert_true(json_is_true(json_object_get(j, "landlock_enable")));
	json_t *rules = json_object_get(j, "landlock_rules");
	assert_int_equal(json_array_size(rules), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(rules, 0), "access")),
			    "rw");
	json_decref(j);
	vm_config_free(&cfg);

	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"landlock_rules\": [{\"path\": \"/a\","
		     " \"access\": \"rwx\"}]}",
		     "landlock_rules: invalid access 'rwx' for '/a' (expected r, w or rw)");
	expect_error(
		"{\"payload\": {\"kernel\": \"/k\"}, \"landlock_rules\": [{\"access\": \"r\"}]}",
		"landlock_rules[0].path: missing");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"landlock_enable\": 1}",
		     "landlock_enable: expected true or false");
}

static void test_default_ids(void **state)
{
	struct vm_config cfg;

	(void)state;
	expect_config(
		"{\"payload\": {\"kernel\": \"/k\"}, \"disks\": [{\"path\": \"/a\"},"
		" {\"path\": \"/b\", \"id\": \"mine\"}], \"net\": [{}],"
		" \"pmem\": [{\"file\": \"/p\"}], \"vsock\": {\"cid\": 4, \"socket\": \"/s\"}}",
		&cfg);
	assert_string_equal(cfg.disks[0].id, "_disk0");
	assert_string_equal(cfg.disks[1].id, "mine");
	assert_string_equal(cfg.nets[0].id, "_net0");
	assert_int_equal(cfg.nets[0].num_queues, 2);
	assert_int_equal(cfg.nets[0].queue_size, 256);
	assert_null(cfg.nets[0].ip);
	assert_string_equal(cfg.pmems[0].id, "_pmem0");
	assert_string_equal(cfg.vsock->id, "_vsock0");
	vm_config_free(&cfg);
}

/* Cloud Hypervisor v28 has no deny_unknown_fields: unknown members are ignored everywhere. */
static void test_unknown_fields_ignored(void **state)
{
	struct vm_config cfg;

	(void)state;
	expect_config("{\"payload\": {\"kernel\": \"/k\", \"bogus\": 1}, \"frobnicate\": true,"
		      " \"memory\": {\"size\": 33554432, \"sise\": 5},"
		      " \"disks\": [{\"path\": \"/a\", \"x\": [1]}], \"gdb\": false}",
		      &cfg);
	assert_int_equal(cfg.memory.size, 32 << 20);
	vm_config_free(&cfg);
	/* ... but RateLimiterConfig has deny_unknown_fields (its token buckets do not). */
	expect_error(
		"{\"payload\": {\"kernel\": \"/k\"}, \"net\": [{\"rate_limiter_config\":"
		" {\"bandwith\": {\"size\": 1, \"refill_time\": 1}}}]}",
		"net[0].rate_limiter_config.bandwith: unknown field (expected bandwidth or ops)");
	expect_config("{\"payload\": {\"kernel\": \"/k\"}, \"disks\": [{\"path\": \"/a\","
		      " \"rate_limiter_config\": {\"ops\": {\"size\": 1, \"refill_time\": 1,"
		      " \"x\": 0}}}]}",
		      &cfg);
	vm_config_free(&cfg);
}

/* null: "not given" for Cloud Hypervisor's Option fields. */
static void test_nulls(void **state)
{
	struct vm_config cfg;

	(void)state;
	expect_config(
		"{\"payload\": {\"kernel\": \"/k\", \"cmdline\": null}, \"disks\": null,"
		" \"balloon\": null, \"vsock\": null, \"fs\": null, \"tpm\": null,"
		" \"platform\": null, \"memory\": {\"size\": 33554432, \"hugepage_size\": null}}",
		&cfg);
	assert_null(cfg.payload.cmdline);
	assert_null(cfg.balloon);
	vm_config_free(&cfg);
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"cpus\": null}",
		     "cpus: must not be null");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"memory\": {\"size\": 33554432,"
		     " \"shared\": null}}",
		     "memory.shared: must not be null");
}

static void test_type_errors(void **state)
{
	(void)state;
	expect_error("[]", "body: expected an object");
	expect_error("{\"payload\": 5}", "payload: expected an object");
	expect_error("{\"payload\": {\"kernel\": 5}}", "payload.kernel: expected a string");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"cpus\": {\"boot_vcpus\": 1.5,"
		     " \"max_vcpus\": 2}}",
		     "cpus.boot_vcpus: expected an integer from 0 to 255");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"cpus\": {\"boot_vcpus\": 256,"
		     " \"max_vcpus\": 2}}",
		     "cpus.boot_vcpus: expected an integer from 0 to 255");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"memory\": {\"size\": -4096}}",
		     "memory.size: expected an integer from 0 to 9223372036854775807");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"memory\": {\"size\": \"1G\"}}",
		     "memory.size: expected an integer from 0 to 9223372036854775807");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"memory\": {\"size\": 33554432,"
		     " \"thp\": \"on\"}}",
		     "memory.thp: expected true or false");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"serial\": {\"mode\": \"tty\"}}",
		     "serial.mode: expected \"Off\", \"Null\", \"Tty\", \"File\" or \"Pty\"");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"disks\": {\"path\": \"/a\"}}",
		     "disks: expected an array");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"disks\": [\"/a\"]}",
		     "disks[0]: expected an object");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"disks\": [{\"path\": \"/a\"},"
		     " {\"path\": \"/b\", \"queue_size\": 65536}]}",
		     "disks[1].queue_size: expected an integer from 0 to 65535");
	expect_error("{\"payload\": {\"kernel\": \"/k\\u0000x\"}}",
		     "payload.kernel: must not contain NUL characters");
	expect_error(
		"{\"payload\": {\"kernel\": \"/k\"}, \"net\": [{\"mac\": \"12:34:56:78:9a\"}]}",
		"net[0].mac: invalid MAC address '12:34:56:78:9a'");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"net\": [{\"ip\": \"10.0.0.300\"}]}",
		     "net[0].ip: invalid IPv4 address '10.0.0.300'");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"net\": [{\"vhost_mode\": \"Both\"}]}",
		     "net[0].vhost_mode: expected \"Client\" or \"Server\"");
}

static void test_missing_fields(void **state)
{
	(void)state;
	expect_error("{}", "payload.kernel: missing");
	expect_error("{\"payload\": {}}", "payload.kernel: missing");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"cpus\": {\"boot_vcpus\": 2}}",
		     "cpus.max_vcpus: missing");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"cpus\": {\"boot_vcpus\": 1,"
		     " \"max_vcpus\": 1, \"topology\": {\"threads_per_core\": 1}}}",
		     "cpus.topology.cores_per_die: missing");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"memory\": {}}", "memory.size: missing");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"rng\": {}}", "rng.src: missing");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"console\": {\"file\": \"/f\"}}",
		     "console.mode: missing");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"disks\": [{\"readonly\": true}]}",
		     "disks[0].path: missing");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"pmem\": [{\"size\": 4096}]}",
		     "pmem[0].file: missing");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"vsock\": {\"cid\": 3}}",
		     "vsock.socket: missing");
	expect_error(
		"{\"payload\": {\"kernel\": \"/k\"}, \"vsock\": {\"cid\": 2, \"socket\": \"/s\"}}",
		"vsock.cid: must be at least 3");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"balloon\": {}}",
		     "balloon.size: missing");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"disks\": [{\"path\": \"/a\","
		     " \"rate_limiter_config\": {\"ops\": {\"size\": 1}}}]}",
		     "disks[0].rate_limiter_config.ops.refill_time: missing");
}

/* The CLI's validation, its messages naming JSON fields. */
static void test_validation(void **state)
{
	(void)state;
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"memory\": {\"size\": 33554433}}",
		     "memory.size: must be a multiple of 4 KiB");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"memory\": {\"size\": 4096}}",
		     "memory.size: 4K is below the minimum of 16M");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"memory\": {\"size\": 33554432,"
		     " \"hugepage_size\": 2097152}}",
		     "memory.hugepage_size: needs hugepages=on");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"cpus\": {\"boot_vcpus\": 0,"
		     " \"max_vcpus\": 1}}",
		     "cpus.boot_vcpus: must be between 1 and 254");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"cpus\": {\"boot_vcpus\": 3,"
		     " \"max_vcpus\": 2}}",
		     "cpus: boot=3 is more than max=2");
	expect_error(
		"{\"payload\": {\"kernel\": \"/k\"}, \"cpus\": {\"boot_vcpus\": 2,"
		" \"max_vcpus\": 2, \"topology\": {\"threads_per_core\": 1, \"cores_per_die\": 1,"
		" \"dies_per_package\": 1, \"packages\": 0}}}",
		"cpus: no part of topology can be zero");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"serial\": {\"mode\": \"File\"}}",
		     "serial: file mode needs a path");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"serial\": {\"mode\": \"Tty\"}}",
		     "serial.mode, console.mode: only one of them can be Tty");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"rng\": {\"src\": \"/r\","
		     " \"iommu\": true}}",
		     "rng: iommu=on is not supported yet");
	expect_error("{\"payload\": {\"kernel\": \"/k\", \"firmware\": \"/fw\"}}",
		     "payload.firmware: not supported yet");
	expect_error("{\"payload\": {\"kernel\": \"\"}}", "payload.kernel: required");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"memory\": {\"size\": 33554432,"
		     " \"hugepages\": true, \"hugepage_size\": 0}}",
		     "memory.hugepage_size: must be 2M or 1G");
}

/* Cloud Hypervisor's identifier rules, across device kinds and with the default ids. */
static void test_ids(void **state)
{
	(void)state;
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"disks\": [{\"path\": \"/a\","
		     " \"id\": \"__rng\"}]}",
		     "device id '__rng' is reserved (ids starting with __ are the VMM's)");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"disks\": [{\"path\": \"/a\","
		     " \"id\": \"x\"}], \"pmem\": [{\"file\": \"/p\", \"id\": \"x\"}]}",
		     "device id 'x' is used by more than one device");
	/* A user id equal to another device's default one. */
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"disks\": [{\"path\": \"/a\"},"
		     " {\"path\": \"/b\", \"id\": \"_disk0\"}]}",
		     "device id '_disk0' is used by more than one device");
	expect_error("{\"payload\": {\"kernel\": \"/k\"}, \"vsock\": {\"cid\": 3,"
		     " \"socket\": \"/s\", \"id\": \"0123456789012345678901234567890123456789"
		     "012345678901234567890123\"}}",
		     "device id '01234567890123456789...' is longer than 63 bytes");
}

static void test_not_supported(void **state)
{
	static const struct {
		const char *body, *msg;
	} cases[] = {
		{ "\"fs\": [{\"tag\": \"t\", \"socket\": \"/s\"}]", "fs: not supported yet" },
		{ "\"devices\": [{\"path\": \"/sys/bus/pci/devices/0000:01:00.0\"}]",
		  "devices: not supported yet" },
		{ "\"user_devices\": [{\"socket\": \"/s\"}]", "user_devices: not supported yet" },
		{ "\"vdpa\": [{\"path\": \"/dev/vhost-vdpa-0\"}]", "vdpa: not supported yet" },
		{ "\"iommu\": true", "iommu: not supported yet" },
		{ "\"sgx_epc\": [{\"id\": \"e\", \"size\": 1}]", "sgx_epc: not supported yet" },
		{ "\"numa\": [{\"guest_numa_id\": 0}]", "numa: not supported yet" },
		{ "\"watchdog\": true", "watchdog: not supported yet" },
		{ "\"tpm\": {\"socket\": \"/s\"}", "tpm: not supported yet" },
		{ "\"platform\": {\"num_pci_segments\": 2}",
		  "platform.num_pci_segments: only 1 is supported yet" },
		{ "\"platform\": {\"uuid\": \"x\"}", "platform.uuid: not supported yet" },
		{ "\"cpus\": {\"boot_vcpus\": 1, \"max_vcpus\": 1, \"affinity\": [{\"vcpu\": 0,"
		  " \"host_cpus\": [1]}]}",
		  "cpus.affinity: not supported yet" },
		{ "\"cpus\": {\"boot_vcpus\": 1, \"max_vcpus\": 1, \"features\": {\"amx\": true}}",
		  "cpus.features.amx: not supported yet" },
		{ "\"memory\": {\"size\": 33554432, \"hotplug_size\": 33554432}",
		  "memory.hotplug_size: not supported yet" },
		{ "\"memory\": {\"size\": 33554432, \"hotplug_method\": \"VirtioMem\"}",
		  "memory.hotplug_method: VirtioMem is not supported yet" },
		{ "\"memory\": {\"size\": 0, \"zones\": [{\"id\": \"z\", \"size\": 33554432}]}",
		  "memory.zones: not supported yet" },
		{ "\"disks\": [{\"path\": \"/a\", \"vhost_user\": true}]",
		  "disks[0].vhost_user: not supported yet" },
		{ "\"disks\": [{\"path\": \"/a\", \"iommu\": true}]",
		  "disks[0].iommu: not supported yet" },
		{ "\"disks\": [{\"path\": \"/a\", \"pci_segment\": 1}]",
		  "disks[0].pci_segment: must be 0 (cubicle has one PCI segment)" },
		{ "\"net\": [{\"fds\": [3, 4]}]", "net[0].fds: TAP fds are sent with SCM_RIGHTS "
						  "(vm.add-net), not as numbers in the "
						  "body" },
	};
	char body[512];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		snprintf(body, sizeof(body), "{\"payload\": {\"kernel\": \"/k\"}, %s}",
			 cases[i].body);
		expect_error(body, cases[i].msg);
	}
	/* Empty values of those sections are Cloud Hypervisor's defaults: accepted. */
	expect_round_trip("{\"payload\": {\"kernel\": \"/k\"}, \"fs\": [], \"devices\": [],"
			  " \"iommu\": false, \"watchdog\": false, \"numa\": null,"
			  " \"platform\": {\"num_pci_segments\": 1, \"tdx\": false}}",
			  default_out);
}

static void test_array_limits(void **state)
{
	char body[4096] = "{\"payload\": {\"kernel\": \"/k\"}, \"disks\": [";
	size_t n = strlen(body);

	(void)state;
	for (unsigned i = 0; i <= CONFIG_MAX_DISKS; i++)
		n += (size_t)snprintf(body + n, sizeof(body) - n, "%s{\"path\": \"/d%u\"}",
				      i ? ", " : "", i);
	snprintf(body + n, sizeof(body) - n, "]}");
	expect_error(body, "disks: more than 16 elements (the maximum)");
}

static void test_device_bodies(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	struct disk_config d;
	struct net_config n;
	struct pmem_config p;
	struct vsock_config v;
	struct balloon_config b;
	json_t *j;

	(void)state;
	j = parse("{\"path\": \"/x.img\", \"readonly\": true, \"id\": \"d1\"}");
	assert_int_equal(disk_config_from_json(j, &d, err, sizeof(err)), 0);
	json_decref(j);
	assert_string_equal(d.path, "/x.img");
	assert_true(d.readonly);
	assert_int_equal(d.num_queues, 1);
	assert_int_equal(d.queue_size, 128);
	j = disk_config_to_json(&d);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "id")), "d1");
	json_decref(j);
	disk_config_free(&d);

	j = parse("{\"readonly\": true}");
	assert_int_equal(disk_config_from_json(j, &d, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "path: missing");
	json_decref(j);

	j = parse("{\"tap\": \"t0\", \"mac\": \"AA:bb:cc:dd:ee:ff\", \"num_queues\": 4}");
	assert_int_equal(net_config_from_json(j, &n, err, sizeof(err)), 0);
	json_decref(j);
	assert_string_equal(n.mac, "AA:bb:cc:dd:ee:ff");
	assert_int_equal(n.num_queues, 4);
	net_config_free(&n);

	j = parse("{\"file\": \"/p\", \"discard_writes\": true}");
	assert_int_equal(pmem_config_from_json(j, &p, err, sizeof(err)), 0);
	json_decref(j);
	assert_true(p.discard_writes);
	pmem_config_free(&p);

	j = parse("{\"cid\": 42, \"socket\": \"/v\"}");
	assert_int_equal(vsock_config_from_json(j, &v, err, sizeof(err)), 0);
	json_decref(j);
	assert_int_equal(v.cid, 42);
	vsock_config_clear(&v);

	j = parse("{\"size\": 1048576, \"deflate_on_oom\": true}");
	assert_int_equal(balloon_config_from_json(j, &b, err, sizeof(err)), 0);
	json_decref(j);
	assert_int_equal(b.size, 1 << 20);
	assert_true(b.deflate_on_oom);

	j = parse("\"/x.img\"");
	assert_int_equal(disk_config_from_json(j, &d, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "body: expected an object");
	json_decref(j);
}

static void test_other_bodies(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	struct vm_resize rs;
	struct vm_resize_zone rz;
	struct restore_config rc;
	struct send_migration sm;
	struct device_config dc;
	char *s = NULL;
	json_t *j;

	(void)state;
	j = parse("{\"desired_vcpus\": 4, \"desired_balloon\": 0}");
	assert_int_equal(vm_resize_from_json(j, &rs, err, sizeof(err)), 0);
	json_decref(j);
	assert_true(rs.has_desired_vcpus);
	assert_int_equal(rs.desired_vcpus, 4);
	assert_false(rs.has_desired_ram);
	assert_true(rs.has_desired_balloon);
	j = parse("{\"desired_vcpus\": 0}");
	assert_int_equal(vm_resize_from_json(j, &rs, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "desired_vcpus: must be at least 1");
	json_decref(j);

	j = parse("{\"id\": \"mem0\", \"desired_ram\": 1073741824}");
	assert_int_equal(vm_resize_zone_from_json(j, &rz, err, sizeof(err)), 0);
	json_decref(j);
	assert_string_equal(rz.id, "mem0");
	vm_resize_zone_free(&rz);

	j = parse("{\"id\": \"_disk0\"}");
	assert_int_equal(vm_remove_device_from_json(j, &s, err, sizeof(err)), 0);
	json_decref(j);
	assert_string_equal(s, "_disk0");
	free(s);
	j = parse("{}");
	assert_int_equal(vm_remove_device_from_json(j, &s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "id: missing");
	assert_int_equal(vm_snapshot_config_from_json(j, &s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "destination_url: missing");
	assert_int_equal(receive_migration_from_json(j, &s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "receiver_url: missing");
	assert_int_equal(restore_config_from_json(j, &rc, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "source_url: missing");
	json_decref(j);

	j = parse("{\"source_url\": \"file:///tmp/snap\", \"prefault\": true}");
	assert_int_equal(restore_config_from_json(j, &rc, err, sizeof(err)), 0);
	json_decref(j);
	assert_string_equal(rc.source_url, "file:///tmp/snap");
	assert_true(rc.prefault);
	restore_config_free(&rc);

	j = parse("{\"destination_url\": \"unix:/tmp/m\", \"local\": true}");
	assert_int_equal(send_migration_from_json(j, &sm, err, sizeof(err)), 0);
	json_decref(j);
	assert_true(sm.local);
	send_migration_free(&sm);

	j = parse("{\"path\": \"/sys/bus/pci/devices/0000:01:00.0\", \"id\": \"vfio0\"}");
	assert_int_equal(device_config_from_json(j, &dc, err, sizeof(err)), 0);
	json_decref(j);
	assert_string_equal(dc.id, "vfio0");
	device_config_free(&dc);
}

/* A snapshot's config with two disks, a net, a pmem and a vsock, as the overrides meet it. */
static void restore_base(struct vm_config *cfg)
{
	char err[CONFIG_ERR_MAX] = "";
	json_t *j = parse("{\"payload\": {\"kernel\": \"/k\"},"
			  " \"disks\": [{\"path\": \"/a\", \"id\": \"d0\"}, {\"path\": \"/b\"}],"
			  " \"net\": [{\"tap\": \"tap0\", \"id\": \"n0\","
			  " \"mac\": \"12:34:56:78:9a:bc\"}],"
			  " \"pmem\": [{\"file\": \"/p\", \"size\": 2097152, \"id\": \"p0\"}],"
			  " \"vsock\": {\"cid\": 3, \"socket\": \"/v\", \"id\": \"v0\"}}");
	assert_int_equal(vm_config_from_json(j, cfg, err, sizeof(err)), 0);
	json_decref(j);
}

/* Parses @body as a RestoreConfig and applies it to the base config; returns apply's code. */
static int restore_apply(const char *body, struct vm_config *cfg, char *err, size_t errlen)
{
	struct restore_config rc;
	json_t *j = parse(body);
	int r = restore_config_from_json(j, &rc, err, errlen);

	json_decref(j);
	assert_int_equal(r, 0);
	restore_base(cfg);
	r = restore_config_apply(&rc, cfg, err, errlen);
	restore_config_free(&rc);
	return r;
}

static void test_restore_overrides(void **state)
{
	char err[CONFIG_ERR_MAX] = "";
	struct restore_config rc;
	struct vm_config cfg;
	json_t *j;

	(void)state;
	/* no overrides: nothing allocated, nothing changed */
	j = parse("{\"source_url\": \"file:///s\", \"net\": null, \"fs\": []}");
	assert_int_equal(restore_config_from_json(j, &rc, err, sizeof(err)), 0);
	json_decref(j);
	assert_null(rc.overrides);
	restore_base(&cfg);
	assert_int_equal(restore_config_apply(&rc, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.disks[0].path, "/a");
	vm_config_free(&cfg);
	restore_config_free(&rc);

	/* each override replaces the device with its id, in place; the count stays */
	assert_int_equal(
		restore_apply("{\"source_url\": \"/s\","
			      " \"disks\": [{\"path\": \"/clone.img\", \"id\": \"_disk1\"}],"
			      " \"net\": [{\"tap\": \"tap9\", \"id\": \"n0\"}],"
			      " \"pmem\": [{\"file\": \"/q\", \"id\": \"p0\"}],"
			      " \"vsock\": {\"cid\": 7, \"socket\": \"/w\"}}",
			      &cfg, err, sizeof(err)),
		0);
	assert_int_equal(cfg.num_disks, 2);
	assert_string_equal(cfg.disks[0].path, "/a");
	assert_string_equal(cfg.disks[1].path, "/clone.img");
	assert_string_equal(cfg.disks[1].id, "_disk1");
	assert_int_equal(cfg.num_nets, 1);
	assert_string_equal(cfg.nets[0].tap, "tap9");
	assert_string_equal(cfg.nets[0].mac, "12:34:56:78:9a:bc"); /* no MAC given: the guest's */
	assert_string_equal(cfg.pmems[0].file, "/q");
	assert_int_equal(cfg.vsock->cid, 7);
	assert_string_equal(cfg.vsock->id, "v0"); /* taken from the snapshot's vsock */
	assert_int_equal(vm_config_check_json(&cfg, err, sizeof(err)), 0);
	vm_config_free(&cfg);

	/* an id that matches nothing, twice the same id, a vsock id that differs: nothing moves */
	assert_int_equal(restore_apply("{\"source_url\": \"/s\","
				       " \"disks\": [{\"path\": \"/c\", \"id\": \"d0\"}],"
				       " \"net\": [{\"tap\": \"t\", \"id\": \"nope\"}]}",
				       &cfg, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "net[0].id: the snapshot has no net device 'nope'");
	assert_string_equal(cfg.disks[0].path, "/a");
	vm_config_free(&cfg);
	assert_int_equal(restore_apply("{\"source_url\": \"/s\", \"pmem\": [{\"file\": \"/c\","
				       " \"id\": \"p0\"}, {\"file\": \"/d\", \"id\": \"p0\"}]}",
				       &cfg, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "pmem[1].id: 'p0' is overridden twice");
	vm_config_free(&cfg);
	assert_int_equal(restore_apply("{\"source_url\": \"/s\", \"vsock\": {\"cid\": 4,"
				       " \"socket\": \"/w\", \"id\": \"v1\"}}",
				       &cfg, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "vsock.id: the snapshot's vsock is 'v0'");
	assert_int_equal(cfg.vsock->cid, 3);
	vm_config_free(&cfg);

	/* vm.waitstart's optional body */
	uint64_t ms = 7;
	j = parse("{}");
	assert_int_equal(vm_waitstart_from_json(j, 100, &ms, err, sizeof(err)), 0);
	assert_int_equal(ms, 7);
	json_decref(j);
	j = parse("{\"timeout_ms\": 100}");
	assert_int_equal(vm_waitstart_from_json(j, 100, &ms, err, sizeof(err)), 0);
	assert_int_equal(ms, 100);
	assert_int_equal(vm_waitstart_from_json(j, 99, &ms, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "timeout_ms"));
	json_decref(j);

	/* bodies refused before any snapshot is read */
	static const struct {
		const char *body, *err;
	} bad[] = {
		{ "{\"source_url\": \"/s\", \"disks\": [{\"path\": \"/c\"}]}",
		  "disks[0].id: missing (an override names the snapshot's device it replaces)" },
		{ "{\"source_url\": \"/s\", \"net\": [{\"id\": \"n0\", \"mac\": \"zz\"}]}",
		  "net[0].mac" },
		{ "{\"source_url\": \"/s\", \"net\": {\"id\": \"n0\"}}", "net" },
		{ "{\"source_url\": \"/s\", \"vsock\": {\"cid\": 3}}", "vsock.socket: missing" },
		{ "{\"source_url\": \"/s\", \"fs\": [{\"tag\": \"t\"}]}", "fs: not supported yet" },
		{ "{\"source_url\": \"/s\", \"dirty_log\": true}", "dirty_log: not supported yet" },
		{ "{\"source_url\": \"/s\", \"prefault\": 1}", "prefault" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		j = parse(bad[i].body);
		assert_int_equal(restore_config_from_json(j, &rc, err, sizeof(err)), -EINVAL);
		json_decref(j);
		if (!strstr(err, bad[i].err))
			fail_msg("%s: '%s' lacks '%s'", bad[i].body, err, bad[i].err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_section),
		cmocka_unit_test(test_default_ids),
		cmocka_unit_test(test_sys_ctrl),
		cmocka_unit_test(test_landlock),
		cmocka_unit_test(test_unknown_fields_ignored),
		cmocka_unit_test(test_nulls),
		cmocka_unit_test(test_type_errors),
		cmocka_unit_test(test_missing_fields),
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_not_supported),
		cmocka_unit_test(test_array_limits),
		cmocka_unit_test(test_device_bodies),
		cmocka_unit_test(test_other_bodies),
		cmocka_unit_test(test_restore_overrides),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
