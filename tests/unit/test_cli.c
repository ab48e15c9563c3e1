/* SPDX-License-Identifier: Apache-2.0 */
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

#define PARSE_OK(a, ...)    parse_ok(a, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))
#define PARSE_ERR(msg, ...) parse_err(msg, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static void parse_ok(struct cli_args *a, int argc, char *const argv[])
{
	char err[CONFIG_ERR_MAX] = "";
	int r = cli_parse(argc, argv, a, err, sizeof(err));

	if (r != 0)
		fail_msg("cli_parse failed (%d): %s", r, err);
}

static void parse_err(const char *msg, int argc, char *const argv[])
{
	struct cli_args a;
	char err[CONFIG_ERR_MAX] = "";

	memset(&a, 0x5a, sizeof(a));
	assert_int_equal(cli_parse(argc, argv, &a, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, msg);
	assert_int_equal(a.verbosity, 0x5a5a5a5a); /* untouched on failure */
}

static void test_no_args(void **state)
{
	struct cli_args a;
	char *const argv[] = { "cubicle", NULL };
	char err[CONFIG_ERR_MAX] = "";

	(void)state;
	assert_int_equal(cli_parse(1, argv, &a, err, sizeof(err)), 0);
	assert_null(a.cfg.payload.kernel);
	assert_null(a.log_file);
	assert_int_equal(a.verbosity, 0);
	assert_false(a.help);
	assert_false(a.version);
	assert_int_equal(a.cfg.cpus.boot_vcpus, 1);
	assert_int_equal(a.cfg.memory.size, CONFIG_DEFAULT_MEM);
	assert_int_equal(a.cfg.serial.mode, CONSOLE_NULL);
	assert_int_equal(a.cfg.console.mode, CONSOLE_TTY);
	cli_args_free(&a);
	cli_args_free(NULL);
}

static void check_full(struct cli_args *a)
{
	char err[CONFIG_ERR_MAX] = "";

	assert_string_equal(a->cfg.payload.kernel, "/k/vmlinux");
	assert_string_equal(a->cfg.payload.initramfs, "/k/initrd.img");
	assert_string_equal(a->cfg.payload.cmdline, "console=ttyS0 root=/dev/vda rw");
	assert_int_equal(a->cfg.cpus.boot_vcpus, 2);
	assert_int_equal(a->cfg.cpus.max_vcpus, 4);
	assert_true(a->cfg.cpus.kvm_hyperv);
	assert_int_equal(a->cfg.memory.size, GiB);
	assert_true(a->cfg.memory.shared);
	assert_int_equal(a->cfg.serial.mode, CONSOLE_TTY);
	assert_int_equal(a->cfg.console.mode, CONSOLE_FILE);
	assert_string_equal(a->cfg.console.file, "/tmp/con.log");
	assert_string_equal(a->log_file, "/tmp/cubicle.log");
	assert_int_equal(a->verbosity, 3);
	assert_true(a->help);
	assert_true(a->version);
	assert_int_equal(vm_config_validate(&a->cfg, err, sizeof(err)), 0);
	cli_args_free(a);
}

/* --api-socket and --event-monitor are kept as given (the api module parses them); with
 * --api-socket alone there is no kernel and the VMM waits for vm.create. */
static void test_api_options(void **state)
{
	struct cli_args a;

	(void)state;
	PARSE_OK(&a, "--api-socket", "path=/tmp/api.sock", "--event-monitor=fd=3");
	assert_string_equal(a.api_socket, "path=/tmp/api.sock");
	assert_string_equal(a.event_monitor, "fd=3");
	assert_null(a.cfg.payload.kernel);
	cli_args_free(&a);
	assert_null(a.api_socket);
	PARSE_ERR("--api-socket: given more than once", "--api-socket", "/a", "--api-socket", "/b");
	PARSE_ERR("--event-monitor: missing value", "--event-monitor");
}

static void test_every_option_separate(void **state)
{
	struct cli_args a;

	(void)state;
	PARSE_OK(&a, "--kernel", "/k/vmlinux", "--initramfs", "/k/initrd.img", "--cmdline",
		 "console=ttyS0 root=/dev/vda rw", "--cpus", "boot=2,max=4,kvm_hyperv=on",
		 "--memory", "size=1G,shared=on", "--serial", "tty", "--console",
		 "file=/tmp/con.log", "--log-file", "/tmp/cubicle.log", "-v", "-vv", "--help",
		 "--version");
	check_full(&a);
}

static void test_every_option_equals(void **state)
{
	struct cli_args a;

	(void)state;
	PARSE_OK(&a, "--kernel=/k/vmlinux", "--initramfs=/k/initrd.img",
		 "--cmdline=console=ttyS0 root=/dev/vda rw", "--cpus=boot=2,max=4,kvm_hyperv=on",
		 "--memory=size=1G,shared=on", "--serial=tty", "--console=file=/tmp/con.log",
		 "--log-file=/tmp/cubicle.log", "-vvv", "-h", "-V");
	check_full(&a);
}

static void test_verbosity(void **state)
{
	struct cli_args a;

	(void)state;
	PARSE_OK(&a, "-v");
	assert_int_equal(a.verbosity, 1);
	cli_args_free(&a);
	PARSE_OK(&a, "-v", "-v", "-vvvv", "--kernel", "k", "-v");
	assert_int_equal(a.verbosity, 7);
	cli_args_free(&a);
	PARSE_OK(&a, "-vhV");
	assert_int_equal(a.verbosity, 1);
	assert_true(a.help);
	assert_true(a.version);
	cli_args_free(&a);
	PARSE_OK(&a, "--help", "--help", "-h");
	assert_true(a.help);
	assert_false(a.version);
	cli_args_free(&a);
}

static void test_values(void **state)
{
	struct cli_args a;

	(void)state;
	PARSE_OK(&a, "--cmdline", "");
	assert_string_equal(a.cfg.payload.cmdline, "");
	cli_args_free(&a);
	PARSE_OK(&a, "--cmdline=");
	assert_string_equal(a.cfg.payload.cmdline, "");
	cli_args_free(&a);
	PARSE_OK(&a, "--cmdline=a=b --c", "--kernel", "-");
	assert_string_equal(a.cfg.payload.cmdline, "a=b --c");
	assert_string_equal(a.cfg.payload.kernel, "-");
	cli_args_free(&a);
	PARSE_OK(&a, "--cpus", "boot=2", "--memory", "size=2G,hugepages=on");
	assert_int_equal(a.cfg.cpus.boot_vcpus, 2);
	assert_int_equal(a.cfg.cpus.max_vcpus, 2);
	assert_int_equal(a.cfg.memory.size, 2 * GiB);
	assert_true(a.cfg.memory.hugepages);
	cli_args_free(&a);
	PARSE_OK(&a, "--serial", "file=/tmp/s.log", "--console", "off");
	assert_int_equal(a.cfg.serial.mode, CONSOLE_FILE);
	assert_string_equal(a.cfg.serial.file, "/tmp/s.log");
	assert_int_equal(a.cfg.console.mode, CONSOLE_OFF);
	cli_args_free(&a);
	PARSE_OK(&a, "--serial", "pty", "--console", "null");
	assert_int_equal(a.cfg.serial.mode, CONSOLE_PTY);
	assert_int_equal(a.cfg.console.mode, CONSOLE_NULL);
	assert_null(a.cfg.rng.src);
	assert_string_equal(config_rng_src(&a.cfg), "/dev/urandom");
	cli_args_free(&a);
	PARSE_OK(&a, "--rng", "src=/tmp/entropy");
	assert_string_equal(a.cfg.rng.src, "/tmp/entropy");
	assert_string_equal(config_rng_src(&a.cfg), "/tmp/entropy");
	assert_false(a.cfg.rng.iommu);
	cli_args_free(&a);
	PARSE_OK(&a, "--rng=src=/dev/hwrng,iommu=off");
	assert_string_equal(a.cfg.rng.src, "/dev/hwrng");
	cli_args_free(&a);
}

static void test_unknown(void **state)
{
	(void)state;
	PARSE_ERR("unknown option '--foo'", "--foo");
	PARSE_ERR("unknown option '--foo'", "--foo=bar");
	PARSE_ERR("unknown option '--kernal'", "--kernal", "/k");
	PARSE_ERR("unknown option '--'", "--=x");
	PARSE_ERR("unknown option '-x'", "-x");
	PARSE_ERR("unknown option '-q'", "-vq");
	PARSE_ERR("unexpected argument 'vmlinux'", "vmlinux");
	PARSE_ERR("unexpected argument '--'", "--");
	PARSE_ERR("unexpected argument '-'", "-");
	PARSE_ERR("unexpected argument 'extra'", "--kernel", "k", "extra");
}

static void test_missing_value(void **state)
{
	(void)state;
	PARSE_ERR("--kernel: missing value", "--kernel");
	PARSE_ERR("--kernel: missing value", "--kernel=");
	PARSE_ERR("--kernel: missing value", "--kernel", "");
	PARSE_ERR("--kernel: missing value", "--kernel", "--cpus", "boot=1");
	PARSE_ERR("--kernel: missing value", "--kernel", "-v");
	PARSE_ERR("--initramfs: missing value", "--initramfs");
	PARSE_ERR("--cmdline: missing value", "--cmdline");
	PARSE_ERR("--cpus: missing value", "--cpus");
	PARSE_ERR("--cpus: missing value", "--cpus=");
	PARSE_ERR("--memory: missing value", "--memory");
	PARSE_ERR("--serial: missing value", "--serial");
	PARSE_ERR("--console: missing value", "--console", "");
	PARSE_ERR("--log-file: missing value", "--kernel", "k", "--log-file");
	PARSE_ERR("--help: takes no value", "--help=yes");
	PARSE_ERR("--version: takes no value", "--version=1");
}

static void test_repeated(void **state)
{
	(void)state;
	PARSE_ERR("--kernel: given more than once", "--kernel", "a", "--kernel", "b");
	PARSE_ERR("--kernel: given more than once", "--kernel=a", "--kernel=a");
	PARSE_ERR("--initramfs: given more than once", "--initramfs", "a", "--initramfs", "b");
	PARSE_ERR("--cmdline: given more than once", "--cmdline", "a", "--cmdline", "b");
	PARSE_ERR("--cpus: given more than once", "--cpus", "boot=1", "--cpus", "boot=2");
	PARSE_ERR("--memory: given more than once", "--memory", "size=1G", "--memory=size=2G");
	PARSE_ERR("--serial: given more than once", "--serial", "tty", "--serial", "off");
	PARSE_ERR("--console: given more than once", "--console", "tty", "--console", "off");
	PARSE_ERR("--log-file: given more than once", "--log-file", "a", "--log-file", "b");
}

static void test_sub_option_errors(void **state)
{
	(void)state;
	PARSE_ERR("--cpus: unknown key 'xyz'", "--cpus", "boot=1,xyz=2");
	PARSE_ERR("--cpus: invalid number 'x' for 'max'", "--cpus=max=x");
	PARSE_ERR("--memory: unknown key 'sise'", "--memory", "sise=1G");
	PARSE_ERR("--memory: invalid size '1GB' for 'size'", "--memory", "size=1GB");
	PARSE_ERR("--memory: invalid size '-1' for 'size'", "--memory", "size=-1");
	PARSE_ERR("--memory: 'hotplug_size' is not supported yet", "--memory",
		  "size=1G,hotplug_size=2G");
	PARSE_ERR("--serial: invalid mode 'ttty' (expected off, null, tty, pty or file=PATH)",
		  "--serial", "ttty");
	PARSE_ERR("--console: file= needs a path", "--console=file=");
	PARSE_ERR("--rng: unknown key 'source'", "--rng", "source=/dev/random");
	PARSE_ERR("--rng: invalid value 'maybe' for 'iommu' (expected on or off)", "--rng",
		  "iommu=maybe");
	PARSE_ERR("--rng: given more than once", "--rng", "src=/a", "--rng", "src=/b");
	PARSE_ERR("--rng: 'src' needs a value", "--rng", "src=");
	PARSE_ERR("--seccomp: invalid value 'yes' (expected true, false or log)", "--seccomp",
		  "yes");
}

static void test_seccomp(void **state)
{
	struct cli_args a;

	(void)state;
	PARSE_OK(&a, "--kernel", "k");
	assert_int_equal(a.cfg.seccomp, SECCOMP_ON); /* Cloud Hypervisor's default: true */
	cli_args_free(&a);
	PARSE_OK(&a, "--seccomp", "false");
	assert_int_equal(a.cfg.seccomp, SECCOMP_OFF);
	cli_args_free(&a);
	PARSE_OK(&a, "--seccomp=log");
	assert_int_equal(a.cfg.seccomp, SECCOMP_LOG);
	cli_args_free(&a);
	PARSE_OK(&a, "--seccomp=true");
	assert_int_equal(a.cfg.seccomp, SECCOMP_ON);
	cli_args_free(&a);
}

/* --sys-ctrl: a bare flag (as Cloud Hypervisor's boolean options), off by default. */
static void test_sys_ctrl(void **state)
{
	struct cli_args a;

	(void)state;
	PARSE_OK(&a, "--kernel", "k");
	assert_false(a.cfg.sys_ctrl);
	cli_args_free(&a);
	PARSE_OK(&a, "--kernel", "k", "--sys-ctrl");
	assert_true(a.cfg.sys_ctrl);
	cli_args_free(&a);
	PARSE_ERR("--sys-ctrl: takes no value", "--sys-ctrl=on");
}

static void test_vsock(void **state)
{
	struct cli_args a;
	char err[CONFIG_ERR_MAX] = "";

	(void)state;
	PARSE_OK(&a, "--kernel", "/k");
	assert_null(a.cfg.vsock);
	cli_args_free(&a);

	PARSE_OK(&a, "--vsock", "cid=3,socket=/tmp/v.sock");
	assert_non_null(a.cfg.vsock);
	assert_int_equal(a.cfg.vsock->cid, 3);
	assert_string_equal(a.cfg.vsock->socket, "/tmp/v.sock");
	assert_null(a.cfg.vsock->id);
	assert_false(a.cfg.vsock->iommu);
	assert_int_equal(vm_config_assign_ids(&a.cfg), 0);
	assert_string_equal(a.cfg.vsock->id, "_vsock0");
	cli_args_free(&a);

	PARSE_OK(&a, "--vsock=cid=4294967294,socket=/s,id=agent,iommu=off,pci_segment=0");
	assert_int_equal(a.cfg.vsock->cid, 4294967294ULL);
	assert_string_equal(a.cfg.vsock->id, "agent");
	assert_int_equal(vm_config_assign_ids(&a.cfg), 0);
	assert_string_equal(a.cfg.vsock->id, "agent");
	cli_args_free(&a);

	PARSE_ERR("--vsock: 'cid' is required", "--vsock", "socket=/s");
	PARSE_ERR("--vsock: 'socket' is required", "--vsock", "cid=3");
	PARSE_ERR("--vsock: 'socket' needs a value", "--vsock", "cid=3,socket=");
	PARSE_ERR("--vsock: unknown key 'port'", "--vsock", "cid=3,socket=/s,port=1");
	PARSE_ERR("--vsock: invalid number 'x' for 'cid'", "--vsock", "cid=x,socket=/s");
	PARSE_ERR("--vsock: given more than once", "--vsock", "cid=3,socket=/a", "--vsock",
		  "cid=4,socket=/b");
	PARSE_ERR("--vsock: key 'cid' given twice", "--vsock", "cid=3,cid=4,socket=/a");

	/* The config-level check refuses a second one too (the API path). */
	PARSE_OK(&a, "--vsock", "cid=3,socket=/a");
	assert_int_equal(config_parse_vsock(&a.cfg, "cid=5,socket=/b", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--vsock: given more than once");
	assert_int_equal(a.cfg.vsock->cid, 3);
	cli_args_free(&a);
}

static void test_restore(void **state)
{
	struct cli_args a;

	(void)state;
	PARSE_OK(&a, "--restore", "source_url=file:///snap,prefault=on", "--api-socket", "/s",
		 "--event-monitor", "path=/e", "--seccomp", "log", "-v");
	assert_string_equal(a.restore, "file:///snap");
	assert_true(a.restore_prefault);
	cli_args_free(&a);
	assert_null(a.restore);
	PARSE_OK(&a, "--restore=source_url=/snap");
	assert_string_equal(a.restore, "/snap");
	assert_false(a.restore_prefault);
	cli_args_free(&a);

	PARSE_ERR("--restore: source_url is missing", "--restore", "prefault=on");
	PARSE_ERR("--restore: unknown key 'x' (expected source_url or prefault)", "--restore",
		  "source_url=/s,x=1");
	PARSE_ERR("--restore: given more than once", "--restore", "source_url=/s", "--restore",
		  "source_url=/t");
	/* the VM's config comes from the snapshot: the options that describe a VM are refused */
	PARSE_ERR("--restore: cannot be combined with --kernel (the VM's config comes from the "
		  "snapshot)",
		  "--kernel", "/k", "--restore", "source_url=/s");
	PARSE_ERR("--restore: cannot be combined with --disk (the VM's config comes from the "
		  "snapshot)",
		  "--restore", "source_url=/s", "--disk", "path=/d");
	PARSE_ERR("--restore: cannot be combined with --memory (the VM's config comes from the "
		  "snapshot)",
		  "--restore", "source_url=/s", "--memory", "size=1G");
}

static void test_prewarm(void **state)
{
	struct cli_args a;

	(void)state;
	PARSE_OK(&a, "--api-socket", "/s", "--prewarm", "256M");
	assert_int_equal(a.prewarm, 256 * MiB);
	cli_args_free(&a);
	PARSE_OK(&a, "--api-socket", "/s");
	assert_int_equal(a.prewarm, 0);
	cli_args_free(&a);
	PARSE_ERR("--prewarm: '4G' is not a size of 4K..3G in 4K units", "--api-socket", "/s",
		  "--prewarm", "4G");
	PARSE_ERR("--prewarm: '0' is not a size of 4K..3G in 4K units", "--api-socket", "/s",
		  "--prewarm", "0");
	PARSE_ERR("--prewarm: 'lots' is not a size of 4K..3G in 4K units", "--api-socket", "/s",
		  "--prewarm", "lots");
	PARSE_ERR("--prewarm: only for a VMM that waits for its VM through the API (--api-socket, "
		  "without --kernel or --restore)",
		  "--prewarm", "256M");
	PARSE_ERR("--prewarm: only for a VMM that waits for its VM through the API (--api-socket, "
		  "without --kernel or --restore)",
		  "--api-socket", "/s", "--kernel", "/k", "--prewarm", "256M");
	PARSE_ERR("--prewarm: only for a VMM that waits for its VM through the API (--api-socket, "
		  "without --kernel or --restore)",
		  "--api-socket", "/s", "--restore", "source_url=/x", "--prewarm", "256M");
}

static void test_not_supported(void **state)
{
	static const char *const opts[] = {
		"fs",	       "device",      "numa", "watchdog", "platform", "firmware",
		"memory-zone", "user-device", "vdpa", "sgx-epc",  "gdb",      "tdx",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
		char opt[64], opt_eq[80], msg[96];

		snprintf(opt, sizeof(opt), "--%s", opts[i]);
		snprintf(opt_eq, sizeof(opt_eq), "--%s=x", opts[i]);
		snprintf(msg, sizeof(msg), "--%s: not supported yet", opts[i]);
		PARSE_ERR(msg, "--kernel", "k", opt, "path=/x.img");
		PARSE_ERR(msg, opt_eq);
	}
}

static void validate_err(struct cli_args *a, const char *msg)
{
	char err[CONFIG_ERR_MAX] = "";

	assert_int_equal(vm_config_validate(&a->cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, msg);
	cli_args_free(a);
}

static void test_balloon(void **state)
{
	struct cli_args a;
	char err[CONFIG_ERR_MAX] = "";

	(void)state;
	PARSE_OK(&a, "--kernel", "k", "--memory", "size=1G", "--balloon",
		 "size=256M,deflate_on_oom=on,free_page_reporting=on");
	assert_non_null(a.cfg.balloon);
	assert_int_equal(a.cfg.balloon->size, 256ULL << 20);
	assert_true(a.cfg.balloon->deflate_on_oom);
	assert_true(a.cfg.balloon->free_page_reporting);
	assert_int_equal(vm_config_validate(&a.cfg, err, sizeof(err)), 0);
	cli_args_free(&a);

	PARSE_OK(&a, "--kernel", "k", "--balloon", "size=0");
	assert_false(a.cfg.balloon->deflate_on_oom);
	assert_int_equal(vm_config_validate(&a.cfg, err, sizeof(err)), 0);
	cli_args_free(&a);

	PARSE_OK(&a, "--kernel", "k", "--memory", "size=512M", "--balloon", "size=512M");
	validate_err(&a, "--balloon: size 512M must be smaller than the memory size 512M");
	PARSE_OK(&a, "--kernel", "k", "--balloon", "size=4097");
	validate_err(&a, "--balloon: size must be a multiple of 4 KiB");
	PARSE_ERR("--balloon: unknown key 'sise'", "--balloon", "sise=1G");
	PARSE_ERR("--balloon: invalid value 'yes please' for 'deflate_on_oom' (expected on or off)",
		  "--balloon", "size=1M,deflate_on_oom=yes please");
	PARSE_ERR("--balloon: given more than once", "--balloon", "size=1M", "--balloon",
		  "size=2M");
}

static void test_pmem(void **state)
{
	struct cli_args a;
	char err[CONFIG_ERR_MAX] = "";

	(void)state;
	PARSE_OK(&a, "--kernel", "k", "--pmem", "file=/a.img", "--pmem",
		 "file=/b.img,size=4M,discard_writes=on,id=root");
	assert_int_equal(a.cfg.num_pmems, 2);
	assert_string_equal(a.cfg.pmems[0].file, "/a.img");
	assert_int_equal(a.cfg.pmems[0].size, 0);
	assert_false(a.cfg.pmems[0].discard_writes);
	assert_null(a.cfg.pmems[0].id);
	assert_string_equal(a.cfg.pmems[1].file, "/b.img");
	assert_int_equal(a.cfg.pmems[1].size, 4ULL << 20);
	assert_true(a.cfg.pmems[1].discard_writes);
	assert_string_equal(a.cfg.pmems[1].id, "root");
	assert_int_equal(vm_config_validate(&a.cfg, err, sizeof(err)), 0);
	assert_int_equal(vm_config_assign_ids(&a.cfg), 0);
	assert_string_equal(a.cfg.pmems[0].id, "_pmem0");
	cli_args_free(&a);

	PARSE_OK(&a, "--kernel", "k", "--pmem", "file=/a.img,size=3M");
	validate_err(&a, "--pmem: size of '/a.img' must be a multiple of 2 MiB");
	PARSE_OK(&a, "--kernel", "k", "--pmem", "file=/a,id=x", "--pmem", "file=/b,id=x");
	validate_err(&a, "--pmem: id 'x' given twice");
	PARSE_OK(&a, "--kernel", "k", "--pmem", "file=/a,iommu=on");
	validate_err(&a, "--pmem: iommu=on: not supported yet");
	PARSE_ERR("--pmem: file= is required", "--pmem", "size=2M");
	PARSE_ERR("--pmem: unknown key 'path'", "--pmem", "path=/a");
	PARSE_ERR("--pmem: 'file' needs a value", "--pmem", "file=");
	PARSE_ERR("--pmem: unknown key 'bogus'", "--pmem", "file=/a", "--pmem", "file=/b,bogus");
}

/* The first error wins, and nothing leaks on the way out (checked under ASan). */
static void test_error_after_allocations(void **state)
{
	(void)state;
	PARSE_ERR("unknown option '--nope'", "--kernel", "k", "--initramfs", "i", "--cmdline", "c",
		  "--serial", "file=/s", "--console", "file=/c", "--log-file", "l", "--nope");
}

static void test_help_text(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	static const char *const expect[] = {
		"--cpus <cpus>",
		"--memory <memory>",
		"--kernel <kernel>",
		"--initramfs <initramfs>",
		"--cmdline <cmdline>",
		"--serial <serial>",
		"--console <console>",
		"--log-file <log-file>",
		"-v ",
		"-V, --version",
		"-h, --help",
		"--disk",
		"--sys-ctrl ",
	};

	(void)state;
	assert_non_null(f);
	cli_print_help(f);
	fclose(f);
	for (size_t i = 0; i < ARRAY_SIZE(expect); i++) {
		if (!strstr(buf, expect[i]))
			fail_msg("help lacks '%s':\n%s", expect[i], buf);
	}
	assert_non_null(strstr(buf, "boot=<boot_vcpus>,max=<max_vcpus>"));
	assert_non_null(strstr(buf, "[default: size=512M]"));
	free(buf);
}

static void test_landlock(void **state)
{
	struct cli_args a;
	(void)state;

	PARSE_OK(&a, "--kernel", "k", "--landlock", "--landlock-rules", "path=/a,access=r",
		 "path=/b,access=rw", "--landlock-rules=path=/c,access=w");
	assert_true(a.cfg.landlock_enable);
	assert_int_equal(a.cfg.num_landlock_rules, 3);
	assert_string_equal(a.cfg.landlock_rules[0].path, "/a");
	assert_string_equal(a.cfg.landlock_rules[0].access, "r");
	assert_string_equal(a.cfg.landlock_rules[1].path, "/b");
	assert_string_equal(a.cfg.landlock_rules[1].access, "rw");
	assert_string_equal(a.cfg.landlock_rules[2].access, "w");
	cli_args_free(&a);
	PARSE_OK(&a, "--kernel", "k");
	assert_false(a.cfg.landlock_enable);
	cli_args_free(&a);

	PARSE_ERR("--landlock-rules: invalid access 'x' for '/a' (expected r, w or rw)", "--kernel",
		  "k", "--landlock", "--landlock-rules", "path=/a,access=x");
	PARSE_ERR("--landlock-rules: invalid access 'rwr' for '/a' (expected r, w or rw)",
		  "--kernel", "k", "--landlock", "--landlock-rules", "path=/a,access=rwr");
	PARSE_ERR("--landlock-rules: path= is required", "--kernel", "k", "--landlock",
		  "--landlock-rules", "access=r");
	PARSE_ERR("--landlock-rules: access= is required (r, w or rw)", "--kernel", "k",
		  "--landlock", "--landlock-rules", "path=/a");
	PARSE_ERR("--landlock-rules: needs --landlock (the rules are what Landlock allows beyond "
		  "the VM's own files)",
		  "--kernel", "k", "--landlock-rules", "path=/a,access=r");
	PARSE_ERR("--landlock: needs --kernel (a VM created through the API turns Landlock on "
		  "with vm.create's landlock_enable)",
		  "--api-socket", "/s", "--landlock");
	PARSE_ERR("--landlock: takes no value", "--kernel", "k", "--landlock=on");
	PARSE_ERR("--restore: cannot be combined with --landlock-rules (the VM's config comes "
		  "from the snapshot)",
		  "--restore", "source_url=file:///s", "--landlock-rules", "path=/a,access=r");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_args),
		cmocka_unit_test(test_api_options),
		cmocka_unit_test(test_every_option_separate),
		cmocka_unit_test(test_every_option_equals),
		cmocka_unit_test(test_verbosity),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_missing_value),
		cmocka_unit_test(test_repeated),
		cmocka_unit_test(test_sub_option_errors),
		cmocka_unit_test(test_vsock),
		cmocka_unit_test(test_not_supported),
		cmocka_unit_test(test_restore),
		cmocka_unit_test(test_prewarm),
		cmocka_unit_test(test_balloon),
		cmocka_unit_test(test_pmem),
		cmocka_unit_test(test_seccomp),
		cmocka_unit_test(test_sys_ctrl),
		cmocka_unit_test(test_landlock),
		cmocka_unit_test(test_error_after_allocations),
		cmocka_unit_test(test_help_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
