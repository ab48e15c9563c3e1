/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "util/util.h"

/* A config that passes validation, to break one thing at a time. */
static void good_config(struct vm_config *cfg)
{
	vm_config_init(cfg);
	cfg->payload.kernel = strdup("/boot/vmlinux");
	assert_non_null(cfg->payload.kernel);
}

static void expect_invalid(const struct vm_config *cfg, const char *msg)
{
	char err[CONFIG_ERR_MAX] = "";

	assert_int_equal(vm_config_validate(cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, msg);
}

static void expect_valid(const struct vm_config *cfg)
{
	char err[CONFIG_ERR_MAX] = "";
	int r = vm_config_validate(cfg, err, sizeof(err));

	if (r != 0)
		fail_msg("unexpected validation error %d: %s", r, err);
}

static void test_defaults(void **state)
{
	struct vm_config cfg;

	(void)state;
	memset(&cfg, 0xa5, sizeof(cfg));
	vm_config_init(&cfg);
	assert_int_equal(cfg.cpus.boot_vcpus, 1);
	assert_int_equal(cfg.cpus.max_vcpus, 1);
	assert_int_equal(cfg.cpus.topology.threads_per_core, 0);
	assert_int_equal(cfg.cpus.topology.packages, 0);
	assert_false(cfg.cpus.kvm_hyperv);
	assert_int_equal(cfg.cpus.max_phys_bits, 0);
	assert_int_equal(cfg.memory.size, 512ULL << 20);
	assert_true(cfg.memory.thp);
	assert_false(cfg.memory.shared);
	assert_false(cfg.memory.hugepages);
	assert_int_equal(cfg.memory.hugepage_size, 0);
	assert_false(cfg.memory.prefault);
	assert_false(cfg.memory.mergeable);
	assert_null(cfg.payload.kernel);
	assert_null(cfg.payload.initramfs);
	assert_null(cfg.payload.cmdline);
	assert_null(cfg.payload.firmware);
	assert_int_equal(cfg.serial.mode, CONSOLE_NULL);
	assert_null(cfg.serial.file);
	assert_int_equal(cfg.console.mode, CONSOLE_TTY);
	assert_null(cfg.console.file);
	assert_false(cfg.console.iommu);

	/* Defaults lack only a kernel. */
	expect_invalid(&cfg, "--kernel: required");
	vm_config_free(&cfg);
	vm_config_free(NULL);
}

static void test_console_mode_name(void **state)
{
	(void)state;
	assert_string_equal(console_mode_name(CONSOLE_OFF), "Off");
	assert_string_equal(console_mode_name(CONSOLE_NULL), "Null");
	assert_string_equal(console_mode_name(CONSOLE_TTY), "Tty");
	assert_string_equal(console_mode_name(CONSOLE_FILE), "File");
	assert_string_equal(console_mode_name(CONSOLE_PTY), "Pty");
	assert_string_equal(console_mode_name((enum console_mode)99), "Unknown");
}

static void test_validate_payload(void **state)
{
	struct vm_config cfg;
	char *cmdline;

	(void)state;
	good_config(&cfg);
	expect_valid(&cfg);

	free(cfg.payload.kernel);
	cfg.payload.kernel = strdup("");
	expect_invalid(&cfg, "--kernel: required");
	free(cfg.payload.kernel);
	cfg.payload.kernel = strdup("/boot/vmlinux");

	cfg.payload.initramfs = strdup("");
	expect_invalid(&cfg, "--initramfs: empty path");
	free(cfg.payload.initramfs);
	cfg.payload.initramfs = strdup("/boot/initrd");
	expect_valid(&cfg);

	cfg.payload.firmware = strdup("/fw.bin");
	expect_invalid(&cfg, "--firmware: not supported yet");
	free(cfg.payload.firmware);
	cfg.payload.firmware = NULL;

	cmdline = malloc(CONFIG_MAX_CMDLINE + 1);
	assert_non_null(cmdline);
	memset(cmdline, 'a', CONFIG_MAX_CMDLINE - 1);
	cmdline[CONFIG_MAX_CMDLINE - 1] = '\0';
	cfg.payload.cmdline = cmdline;
	expect_valid(&cfg); /* 2047 bytes + NUL fit */
	cmdline[CONFIG_MAX_CMDLINE - 1] = 'a';
	cmdline[CONFIG_MAX_CMDLINE] = '\0';
	expect_invalid(&cfg, "--cmdline: 2048 bytes is longer than the maximum of 2047");
	vm_config_free(&cfg);
}

static void test_validate_vsock(void **state)
{
	struct vm_config cfg;
	char path[CONFIG_VSOCK_PATH_MAX + 2];

	(void)state;
	good_config(&cfg);
	cfg.vsock = calloc(1, sizeof(*cfg.vsock));
	assert_non_null(cfg.vsock);
	cfg.vsock->socket = strdup("/run/v.sock");
	cfg.vsock->cid = 3;
	expect_valid(&cfg);
	cfg.vsock->cid = 2;
	expect_invalid(&cfg, "--vsock: cid 2 is out of range (3 to 4294967294; 0-2 are reserved)");
	cfg.vsock->cid = 0xffffffffULL;
	expect_invalid(
		&cfg,
		"--vsock: cid 4294967295 is out of range (3 to 4294967294; 0-2 are reserved)");
	cfg.vsock->cid = 0xfffffffeULL;
	expect_valid(&cfg);

	memset(path, 'p', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	path[0] = '/';
	free(cfg.vsock->socket);
	cfg.vsock->socket = strdup(path);
	expect_invalid(&cfg, "--vsock: socket path is 97 bytes, longer than the maximum of 96 (a "
			     "Unix socket path, with room for the _PORT suffix)");
	cfg.vsock->socket[CONFIG_VSOCK_PATH_MAX] = '\0';
	expect_valid(&cfg);

	cfg.vsock->pci_segment = 1;
	expect_invalid(&cfg, "--vsock: pci_segment 1: only segment 0 exists");
	cfg.vsock->pci_segment = 0;
	cfg.vsock->iommu = true;
	expect_invalid(&cfg, "--vsock: iommu=on is not supported yet");
	vm_config_free(&cfg);
}

static void test_validate_cpus(void **state)
{
	struct vm_config cfg;

	(void)state;
	good_config(&cfg);

	cfg.cpus.boot_vcpus = 0;
	expect_invalid(&cfg, "--cpus: boot must be between 1 and 254");
	cfg.cpus.boot_vcpus = 255;
	cfg.cpus.max_vcpus = 255;
	expect_invalid(&cfg, "--cpus: boot must be between 1 and 254");
	cfg.cpus.boot_vcpus = 254;
	cfg.cpus.max_vcpus = 254;
	expect_valid(&cfg);
	cfg.cpus.max_vcpus = 255;
	expect_invalid(&cfg, "--cpus: max must be between 1 and 254");
	cfg.cpus.boot_vcpus = 1;
	cfg.cpus.max_vcpus = 0;
	expect_invalid(&cfg, "--cpus: max must be between 1 and 254");

	cfg.cpus.boot_vcpus = 3;
	cfg.cpus.max_vcpus = 2;
	expect_invalid(&cfg, "--cpus: boot=3 is more than max=2");

	cfg.cpus.boot_vcpus = 2;
	cfg.cpus.max_vcpus = 4;
	expect_valid(&cfg);
	cfg.cpus.topology = (struct cpu_topology){ 1, 2, 1, 2 };
	expect_valid(&cfg);
	cfg.cpus.topology = (struct cpu_topology){ 1, 2, 1, 1 };
	expect_invalid(&cfg, "--cpus: topology 1:2:1:1 gives 2 vCPUs, but max=4");
	cfg.cpus.topology = (struct cpu_topology){ 255, 255, 255, 255 };
	expect_invalid(&cfg, "--cpus: topology 255:255:255:255 gives 4228250625 vCPUs, but max=4");
	cfg.cpus.topology = (struct cpu_topology){ 2, 0, 1, 2 };
	expect_invalid(&cfg, "--cpus: no part of topology can be zero");
	cfg.cpus.topology = (struct cpu_topology){ 0 };
	expect_valid(&cfg);

	cfg.cpus.max_phys_bits = 64;
	expect_valid(&cfg);
	cfg.cpus.max_phys_bits = 65;
	expect_invalid(&cfg, "--cpus: max_phys_bits must be at most 64");
	vm_config_free(&cfg);
}

static void test_validate_memory(void **state)
{
	struct vm_config cfg;

	(void)state;
	good_config(&cfg);

	cfg.memory.size = 512 * MiB + 1;
	expect_invalid(&cfg, "--memory: size must be a multiple of 4 KiB");
	cfg.memory.size = 512 * MiB + 2048;
	expect_invalid(&cfg, "--memory: size must be a multiple of 4 KiB");
	cfg.memory.size = 8 * MiB;
	expect_invalid(&cfg, "--memory: size 8M is below the minimum of 16M");
	cfg.memory.size = 0;
	expect_invalid(&cfg, "--memory: size 0 is below the minimum of 16M");
	cfg.memory.size = 16 * MiB - 4096;
	expect_invalid(&cfg, "--memory: size 16380K is below the minimum of 16M");
	cfg.memory.size = 16 * MiB;
	expect_valid(&cfg);
	cfg.memory.size = 16 * MiB + 4096;
	expect_valid(&cfg);

	cfg.memory.hugepages = true;
	expect_invalid(&cfg, "--memory: hugepages=on needs size to be a multiple of the huge page "
			     "size (2M)");
	cfg.memory.size = 18 * MiB;
	expect_valid(&cfg);
	cfg.memory.hugepage_size = GiB;
	expect_invalid(&cfg, "--memory: hugepages=on needs size to be a multiple of the huge page "
			     "size (1G)");
	cfg.memory.size = 2 * GiB;
	expect_valid(&cfg);
	cfg.memory.hugepage_size = 4 * MiB;
	expect_invalid(&cfg, "--memory: hugepage_size must be 2M or 1G");
	cfg.memory.hugepage_size = 3 * MiB;
	expect_invalid(&cfg, "--memory: hugepage_size must be 2M or 1G");
	cfg.memory.hugepage_size = 2 * MiB;
	expect_valid(&cfg);
	cfg.memory.hugepages = false;
	expect_invalid(&cfg, "--memory: hugepage_size needs hugepages=on");
	cfg.memory.hugepage_size = 0;
	cfg.memory.shared = cfg.memory.prefault = cfg.memory.mergeable = true;
	cfg.memory.thp = false;
	expect_valid(&cfg);
	vm_config_free(&cfg);
}

static void test_validate_console(void **state)
{
	struct vm_config cfg;

	(void)state;
	good_config(&cfg);

	/* Cloud Hypervisor v28 refuses tty for both (its DoubleTtyMode). */
	cfg.serial.mode = CONSOLE_TTY;
	expect_invalid(&cfg, "Only one of --serial and --console can be tty (the default is "
			     "--console tty; add --console off)");
	cfg.console.mode = CONSOLE_OFF;
	expect_valid(&cfg);
	cfg.console.mode = CONSOLE_PTY;
	expect_valid(&cfg);

	cfg.serial.mode = CONSOLE_FILE;
	expect_invalid(&cfg, "--serial: file mode needs a path");
	cfg.serial.file = strdup("");
	expect_invalid(&cfg, "--serial: file mode needs a path");
	free(cfg.serial.file);
	cfg.serial.file = strdup("/tmp/serial.log");
	expect_valid(&cfg);

	cfg.console.mode = CONSOLE_FILE;
	expect_invalid(&cfg, "--console: file mode needs a path");
	cfg.console.mode = (enum console_mode)42;
	expect_invalid(&cfg, "--console: invalid mode");
	vm_config_free(&cfg);
}

/* A NULL or short error buffer is allowed: the message is cut, never overflowed. */
static void test_validate_short_err(void **state)
{
	struct vm_config cfg;
	char err[8];

	(void)state;
	vm_config_init(&cfg);
	assert_int_equal(vm_config_validate(&cfg, NULL, 0), -EINVAL);
	memset(err, 'z', sizeof(err));
	assert_int_equal(vm_config_validate(&cfg, err, 5), -EINVAL);
	assert_string_equal(err, "--ke");
	assert_int_equal(err[5], 'z');
}

static void expect_cpus(const char *arg, uint32_t boot, uint32_t max, struct cpu_topology t,
			bool hyperv, uint8_t bits)
{
	struct vm_config cfg;
	char err[CONFIG_ERR_MAX] = "";

	vm_config_init(&cfg);
	if (config_parse_cpus(&cfg, arg, err, sizeof(err)) != 0)
		fail_msg("config_parse_cpus(\"%s\"): %s", arg, err);
	assert_int_equal(cfg.cpus.boot_vcpus, boot);
	assert_int_equal(cfg.cpus.max_vcpus, max);
	assert_memory_equal(&cfg.cpus.topology, &t, sizeof(t));
	assert_int_equal(cfg.cpus.kvm_hyperv, hyperv);
	assert_int_equal(cfg.cpus.max_phys_bits, bits);
}

static void expect_cpus_err(const char *arg, const char *msg)
{
	struct vm_config cfg;
	char err[CONFIG_ERR_MAX] = "";

	vm_config_init(&cfg);
	cfg.cpus.boot_vcpus = 7; /* must stay untouched on failure */
	assert_int_equal(config_parse_cpus(&cfg, arg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, msg);
	assert_int_equal(cfg.cpus.boot_vcpus, 7);
}

static void test_parse_cpus(void **state)
{
	const struct cpu_topology none = { 0 };

	(void)state;
	expect_cpus("boot=2", 2, 2, none, false, 0);
	expect_cpus("boot=2,max=4", 2, 4, none, false, 0);
	expect_cpus("max=4", 1, 4, none, false, 0);
	expect_cpus("", 1, 1, none, false, 0);
	expect_cpus("boot=2,", 2, 2, none, false, 0);
	expect_cpus("boot=4,topology=1:2:1:2", 4, 4, (struct cpu_topology){ 1, 2, 1, 2 }, false, 0);
	expect_cpus("topology=255:1:1:1", 1, 1, (struct cpu_topology){ 255, 1, 1, 1 }, false, 0);
	expect_cpus("boot=1,kvm_hyperv=on,max_phys_bits=39", 1, 1, none, true, 39);
	expect_cpus("kvm_hyperv=off", 1, 1, none, false, 0);
	expect_cpus("boot=0x10", 16, 16, none, false, 0);
	expect_cpus("boot=300", 300, 300, none, false, 0); /* range checked by validation */

	expect_cpus_err("xyz=1", "--cpus: unknown key 'xyz'");
	expect_cpus_err("2", "--cpus: unknown key '2'");
	expect_cpus_err("Boot=2", "--cpus: unknown key 'Boot'");
	expect_cpus_err("boot", "--cpus: 'boot' needs a value");
	expect_cpus_err("boot=", "--cpus: 'boot' needs a value");
	expect_cpus_err("boot=two", "--cpus: invalid number 'two' for 'boot'");
	expect_cpus_err("boot=-1", "--cpus: invalid number '-1' for 'boot'");
	expect_cpus_err("boot=1,boot=2", "--cpus: key 'boot' given twice");
	expect_cpus_err("boot=4294967296", "--cpus: boot=4294967296 is out of range (at most "
					   "4294967295)");
	expect_cpus_err("max_phys_bits=256",
			"--cpus: max_phys_bits=256 is out of range (at most 255)");
	expect_cpus_err("kvm_hyperv=yes",
			"--cpus: invalid value 'yes' for 'kvm_hyperv' (expected on or off)");
	expect_cpus_err("affinity=[0@[0-1],1@[2]]", "--cpus: 'affinity' is not supported yet");
	expect_cpus_err("features=amx", "--cpus: 'features' is not supported yet");
	expect_cpus_err("boot=1,affinity=[0@[0",
			"--cpus: unbalanced '[' in 'boot=1,affinity=[0@[0'");
	expect_cpus_err("boot=1]", "--cpus: unbalanced ']' in 'boot=1]'");

	static const char *const bad_topo[] = { "1:2:1",     "1:2:1:1:1", "0:1:1:1",
						"1:1:1:256", "a:1:1:1",	  "1::1:1",
						"1:1:1:",    "",	  "1:1:1:1x" };
	for (size_t i = 0; i < ARRAY_SIZE(bad_topo); i++) {
		char arg[64], msg[256];

		snprintf(arg, sizeof(arg), "topology=%s", bad_topo[i]);
		if (!bad_topo[i][0])
			snprintf(msg, sizeof(msg), "--cpus: 'topology' needs a value");
		else
			snprintf(msg, sizeof(msg),
				 "--cpus: invalid topology '%s' (expected "
				 "threads_per_core:cores_per_die:dies_per_package:packages, each 1 "
				 "to 255)",
				 bad_topo[i]);
		expect_cpus_err(arg, msg);
	}
}

static void test_parse_cpus_resets(void **state)
{
	struct vm_config cfg;
	char err[CONFIG_ERR_MAX];

	(void)state;
	vm_config_init(&cfg);
	cfg.cpus.kvm_hyperv = true;
	cfg.cpus.boot_vcpus = cfg.cpus.max_vcpus = 8;
	assert_int_equal(config_parse_cpus(&cfg, "max=2", err, sizeof(err)), 0);
	assert_int_equal(cfg.cpus.boot_vcpus, 1); /* omitted keys take their defaults */
	assert_int_equal(cfg.cpus.max_vcpus, 2);
	assert_false(cfg.cpus.kvm_hyperv);
}

static void expect_mem_err(const char *arg, const char *msg)
{
	struct vm_config cfg;
	char err[CONFIG_ERR_MAX] = "";

	vm_config_init(&cfg);
	assert_int_equal(config_parse_memory(&cfg, arg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, msg);
	assert_int_equal(cfg.memory.size, CONFIG_DEFAULT_MEM);
	assert_true(cfg.memory.thp);
	assert_false(cfg.memory.shared);
}

static void test_parse_memory(void **state)
{
	struct vm_config cfg;
	char err[CONFIG_ERR_MAX] = "";

	(void)state;
	vm_config_init(&cfg);
	assert_int_equal(config_parse_memory(&cfg, "size=1G", err, sizeof(err)), 0);
	assert_int_equal(cfg.memory.size, GiB);
	assert_true(cfg.memory.thp);

	assert_int_equal(config_parse_memory(&cfg,
					     "size=2048M,shared=on,hugepages=on,hugepage_size=2M,"
					     "prefault=on,thp=off,mergeable=on",
					     err, sizeof(err)),
			 0);
	assert_int_equal(cfg.memory.size, 2 * GiB);
	assert_true(cfg.memory.shared);
	assert_true(cfg.memory.hugepages);
	assert_int_equal(cfg.memory.hugepage_size, 2 * MiB);
	assert_true(cfg.memory.prefault);
	assert_false(cfg.memory.thp);
	assert_true(cfg.memory.mergeable);

	assert_int_equal(config_parse_memory(&cfg, "shared=true", err, sizeof(err)), 0);
	assert_int_equal(cfg.memory.size, CONFIG_DEFAULT_MEM); /* omitted: back to default */
	assert_true(cfg.memory.shared);
	assert_false(cfg.memory.hugepages);
	assert_true(cfg.memory.thp);

	assert_int_equal(config_parse_memory(&cfg, "size=536870912", err, sizeof(err)), 0);
	assert_int_equal(cfg.memory.size, 512 * MiB);

	expect_mem_err("sise=1G", "--memory: unknown key 'sise'");
	expect_mem_err("512M", "--memory: unknown key '512M'");
	expect_mem_err("size=1X", "--memory: invalid size '1X' for 'size'");
	expect_mem_err("size=-1G", "--memory: invalid size '-1G' for 'size'");
	expect_mem_err("size=", "--memory: 'size' needs a value");
	expect_mem_err("size", "--memory: 'size' needs a value");
	expect_mem_err("size=99999999999G", "--memory: size=99999999999G is too large");
	expect_mem_err("hugepage_size=huge", "--memory: invalid size 'huge' for 'hugepage_size'");
	expect_mem_err("size=1G,shared=maybe",
		       "--memory: invalid value 'maybe' for 'shared' (expected on or off)");
	expect_mem_err("size=1G,size=2G", "--memory: key 'size' given twice");
	expect_mem_err("hotplug_size=1G", "--memory: 'hotplug_size' is not supported yet");
	expect_mem_err("hotplugged_size=1G", "--memory: 'hotplugged_size' is not supported yet");
	expect_mem_err("hotplug_method=acpi", "--memory: 'hotplug_method' is not supported yet");
	expect_mem_err("zones=[a]", "--memory: 'zones' is not supported yet");
}

static void expect_console(const char *arg, enum console_mode mode, const char *file, bool iommu)
{
	struct console_config con = { .mode = CONSOLE_TTY, .file = strdup("/old") };
	char err[CONFIG_ERR_MAX] = "";

	if (config_parse_console(&con, "--serial", arg, err, sizeof(err)) != 0)
		fail_msg("config_parse_console(\"%s\"): %s", arg, err);
	assert_int_equal(con.mode, mode);
	if (file)
		assert_string_equal(con.file, file);
	else
		assert_null(con.file);
	assert_int_equal(con.iommu, iommu);
	free(con.file);
}

static void expect_console_err(const char *option, const char *arg, const char *msg)
{
	struct console_config con = { .mode = CONSOLE_PTY };
	char err[CONFIG_ERR_MAX] = "";

	assert_int_equal(config_parse_console(&con, option, arg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, msg);
	assert_int_equal(con.mode, CONSOLE_PTY);
	assert_null(con.file);
}

static void test_parse_console(void **state)
{
	(void)state;
	expect_console("off", CONSOLE_OFF, NULL, false);
	expect_console("null", CONSOLE_NULL, NULL, false);
	expect_console("tty", CONSOLE_TTY, NULL, false);
	expect_console("pty", CONSOLE_PTY, NULL, false);
	expect_console("Off", CONSOLE_OFF, NULL, false);
	expect_console("TTY", CONSOLE_TTY, NULL, false);
	expect_console("file=/tmp/out.log", CONSOLE_FILE, "/tmp/out.log", false);
	expect_console("file=/tmp/a=b", CONSOLE_FILE, "/tmp/a=b", false);
	expect_console("file=/tmp/[x]", CONSOLE_FILE, "/tmp/[x]", false);
	expect_console("tty,iommu=on", CONSOLE_TTY, NULL, true);
	expect_console("iommu=on,pty", CONSOLE_PTY, NULL, true);

	expect_console_err("--serial", "",
			   "--serial: missing mode (off, null, tty, pty or file=PATH)");
	expect_console_err("--serial", "iommu=on",
			   "--serial: missing mode (off, null, tty, pty or file=PATH)");
	expect_console_err("--console", "file=", "--console: file= needs a path");
	expect_console_err("--console", "file", "--console: file= needs a path");
	expect_console_err("--serial", "foo",
			   "--serial: invalid mode 'foo' (expected off, null, tty, pty or "
			   "file=PATH)");
	expect_console_err("--serial", "tty,pty", "--serial: more than one mode given");
	expect_console_err("--serial", "file=/a,tty", "--serial: more than one mode given");
	expect_console_err("--serial", "tty=1", "--serial: 'tty' takes no value");
	expect_console_err("--serial", "socket=/tmp/s", "--serial: socket is not supported yet");
	expect_console_err("--console", "tty,iommu=maybe",
			   "--console: invalid value 'maybe' for 'iommu' (expected on or off)");
	expect_console_err("--console", "tty,tty", "--console: key 'tty' given twice");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),	   cmocka_unit_test(test_console_mode_name),
		cmocka_unit_test(test_validate_payload),   cmocka_unit_test(test_validate_cpus),
		cmocka_unit_test(test_validate_memory),	   cmocka_unit_test(test_validate_console),
		cmocka_unit_test(test_validate_short_err), cmocka_unit_test(test_parse_cpus),
		cmocka_unit_test(test_parse_cpus_resets),  cmocka_unit_test(test_parse_memory),
		cmocka_unit_test(test_parse_console),	   cmocka_unit_test(test_validate_vsock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
