/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cubicle command line: Cloud Hypervisor v28's options and sub-option syntax. Options that
 * Cloud Hypervisor has and cubicle does not yet are refused by name, so a user can tell "not
 * yet" from a typo.
 */
#include "config/config.h"
#include "config/kv.h"
#include "util/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum cli_opt_id {
	OPT_KERNEL,
	OPT_INITRAMFS,
	OPT_CMDLINE,
	OPT_CPUS,
	OPT_MEMORY,
	OPT_SERIAL,
	OPT_CONSOLE,
	OPT_RNG,
	OPT_API_SOCKET,
	OPT_EVENT_MONITOR,
	OPT_DISK,
	OPT_NET,
	OPT_VSOCK,
	OPT_BALLOON,
	OPT_PMEM,
	OPT_LOG_FILE,
	OPT_SECCOMP,
	OPT_SYS_CTRL,
	OPT_LANDLOCK,
	OPT_LANDLOCK_RULES,
	OPT_RESTORE,
	OPT_PREWARM,
	OPT_VERBOSE,
	OPT_VERSION,
	OPT_HELP,
	OPT_COUNT,
};

struct cli_opt {
	enum cli_opt_id id;
	const char *name; /* without the leading "--"; NULL: short only */
	char short_name;  /* 0: none */
	bool takes_value;
	const char *help; /* one line, syntax first as Cloud Hypervisor's --help writes it */
};

static const struct cli_opt cli_opts[] = {
	{ OPT_CPUS, "cpus", 0, true,
	  "Number of virtual CPUs "
	  "\"boot=<boot_vcpus>,max=<max_vcpus>,topology=<threads_per_core>:<cores_per_die>:"
	  "<dies_per_package>:<packages>,kvm_hyperv=on|off,max_phys_bits=<maximum_number_of_"
	  "physical_bits>\" [default: boot=1]" },
	{ OPT_MEMORY, "memory", 0, true,
	  "Memory parameters \"size=<guest_memory_size>,mergeable=on|off,shared=on|off,"
	  "hugepages=on|off,hugepage_size=<hugepage_size>,prefault=on|off,thp=on|off\" "
	  "[default: size=512M]" },
	{ OPT_KERNEL, "kernel", 0, true, "Path to kernel image (vmlinux or bzImage)" },
	{ OPT_INITRAMFS, "initramfs", 0, true, "Path to initramfs image" },
	{ OPT_CMDLINE, "cmdline", 0, true, "Kernel command line" },
	{ OPT_SERIAL, "serial", 0, true,
	  "Control serial port: off|null|pty|tty|file=</path/to/a/file> [default: null]" },
	{ OPT_CONSOLE, "console", 0, true,
	  "Control (virtio) console: \"off|null|pty|tty|file=</path/to/a/file>,iommu=on|off\" "
	  "[default: tty]" },
	{ OPT_RNG, "rng", 0, true,
	  "Random number generator parameters \"src=<entropy_source_path>,iommu=on|off\" "
	  "[default: src=/dev/urandom]" },
	{ OPT_API_SOCKET, "api-socket", 0, true,
	  "HTTP API socket (UNIX domain socket): path=</path/to/a/file> or fd=<fd>" },
	{ OPT_EVENT_MONITOR, "event-monitor", 0, true,
	  "File to report events on: path=</path/to/a/file> or fd=<fd>" },
	{ OPT_DISK, "disk", 0, true,
	  "Disk parameters \"path=<disk_image_path>,readonly=on|off,direct=on|off,iommu=on|off,"
	  "num_queues=<number_of_queues>,queue_size=<size_of_each_queue>,vhost_user=on|off,"
	  "socket=<vhost_user_socket_path>,bw_size=<bytes>,bw_one_time_burst=<bytes>,"
	  "bw_refill_time=<ms>,ops_size=<io_ops>,ops_one_time_burst=<io_ops>,"
	  "ops_refill_time=<ms>,id=<device_id>,serial=<serial_number>,pci_segment=<segment_id>\" "
	  "(repeatable)" },
	{ OPT_NET, "net", 0, true,
	  "Network parameters \"tap=<if_name>,ip=<ip_addr>,mask=<net_mask>,mac=<mac_addr>,"
	  "host_mac=<host_mac_addr>,mtu=<mtu>,fd=<fd1,fd2...>,iommu=on|off,num_queues=<number_of_"
	  "queues>,queue_size=<size_of_each_queue>,id=<device_id>,vhost_user=<vhost_user_enable>,"
	  "socket=<vhost_user_socket_path>,vhost_mode=client|server,bw_size=<bytes>,"
	  "bw_one_time_burst=<bytes>,bw_refill_time=<ms>,ops_size=<io_ops>,ops_one_time_burst=<io_"
	  "ops>,ops_refill_time=<ms>,pci_segment=<segment_id>\" (repeatable)" },
	{ OPT_VSOCK, "vsock", 0, true,
	  "Virtio VSOCK parameters \"cid=<context_id>,socket=<socket_path>,iommu=on|off,"
	  "id=<device_id>,pci_segment=<segment_id>\"" },
	{ OPT_BALLOON, "balloon", 0, true,
	  "Balloon parameters \"size=<balloon_size>,deflate_on_oom=on|off,"
	  "free_page_reporting=on|off\"" },
	{ OPT_PMEM, "pmem", 0, true,
	  "Persistent memory parameters \"file=<backing_file_path>,size=<persistent_memory_size>,"
	  "iommu=on|off,discard_writes=on|off,id=<device_id>,pci_segment=<segment_id>\" "
	  "(repeatable)" },
	{ OPT_LOG_FILE, "log-file", 0, true, "Log file. Standard error is used if not specified" },
	{ OPT_SECCOMP, "seccomp", 0, true,
	  "Disable or enable seccomp filters: true|false|log [default: true]" },
	{ OPT_SYS_CTRL, "sys-ctrl", 0, false,
	  "Enable the guest's start signal (CubeSandbox): a write to I/O port 0x680 marks the "
	  "guest started, for vm.waitstart [default: off]" },
	{ OPT_LANDLOCK, "landlock", 0, false,
	  "Enable Landlock: the VMM may then only open the files its config names "
	  "(docs/landlock.md) [default: off]" },
	{ OPT_LANDLOCK_RULES, "landlock-rules", 0, true,
	  "Landlock parameters \"path=<path/to/{file/dir}>,access=[rw]\" (repeatable; needs "
	  "--landlock)" },
	{ OPT_PREWARM, "prewarm", 0, true,
	  "While waiting for its VM through the API, prepare the hypervisor for a guest of up to "
	  "SIZE of RAM below 3G (cubicle's own; a pooled VMM then restores or boots without the "
	  "slowest set-up call) [default: off]" },
	{ OPT_RESTORE, "restore", 0, true,
	  "Restore from a VM snapshot \"source_url=<source_url>,prefault=on|off\" (the VM is "
	  "restored Paused: vm.resume runs it)" },
	{ OPT_VERBOSE, NULL, 'v', false, "Sets the level of debugging output (repeat for more)" },
	{ OPT_VERSION, "version", 'V', false, "Print version information" },
	{ OPT_HELP, "help", 'h', false, "Print help information" },
};

/* Cloud Hypervisor v28 options that cubicle refuses for now. */
static const char *const cli_unsupported[] = {
	"platform", "memory-zone", "firmware", "fs",  "device", "user-device", "vdpa",
	"numa",	    "watchdog",	   "sgx-epc",  "gdb", "tdx",	NULL,
};

static const struct cli_opt *find_long(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(cli_opts); i++) {
		const char *n = cli_opts[i].name;

		if (n && strlen(n) == len && strncmp(n, name, len) == 0)
			return &cli_opts[i];
	}
	return NULL;
}

static const struct cli_opt *find_short(char c)
{
	for (size_t i = 0; i < ARRAY_SIZE(cli_opts); i++) {
		if (cli_opts[i].short_name == c)
			return &cli_opts[i];
	}
	return NULL;
}

static bool is_unsupported(const char *name, size_t len)
{
	for (const char *const *u = cli_unsupported; *u; u++) {
		if (strlen(*u) == len && strncmp(*u, name, len) == 0)
			return true;
	}
	return false;
}

static int set_string(char **slot, const char *value)
{
	*slot = strdup(value);
	return *slot ? 0 : -ENOMEM;
}

/* --restore source_url=URL[,prefault=on|off] (Cloud Hypervisor v28's RestoreConfig). */
static int parse_restore(struct cli_args *a, const char *arg, char *err, size_t errlen)
{
	struct kv_list l;
	int r;

	r = kv_split("--restore", arg, &l, err, errlen);
	for (unsigned i = 0; r >= 0 && i < l.n; i++) {
		const struct kv *kv = &l.items[i];

		if (strcmp(kv->key, "source_url") == 0)
			r = kv_str("--restore", kv, &a->restore, err, errlen);
		else if (strcmp(kv->key, "prefault") == 0)
			r = kv_bool("--restore", kv, &a->restore_prefault, err, errlen);
		else
			r = error_set(
				err, errlen, -EINVAL,
				"--restore: unknown key '%s' (expected source_url or prefault)",
				kv->key);
	}
	kv_free(&l);
	if (r >= 0 && !a->restore)
		r = error_set(err, errlen, -EINVAL, "--restore: source_url is missing");
	return r < 0 ? r : 0;
}

static int apply(struct cli_args *a, const struct cli_opt *o, const char *option, const char *value,
		 char *err, size_t errlen)
{
	struct vm_config *cfg = &a->cfg;

	switch (o->id) {
	case OPT_KERNEL:
		return set_string(&cfg->payload.kernel, value);
	case OPT_INITRAMFS:
		return set_string(&cfg->payload.initramfs, value);
	case OPT_CMDLINE:
		return set_string(&cfg->payload.cmdline, value);
	case OPT_LOG_FILE:
		return set_string(&a->log_file, value);
	case OPT_API_SOCKET:
		return set_string(&a->api_socket, value);
	case OPT_EVENT_MONITOR:
		return set_string(&a->event_monitor, value);
	case OPT_CPUS:
		return config_parse_cpus(cfg, value, err, errlen);
	case OPT_MEMORY:
		return config_parse_memory(cfg, value, err, errlen);
	case OPT_SERIAL:
		return config_parse_console(&cfg->serial, option, value, err, errlen);
	case OPT_CONSOLE:
		return config_parse_console(&cfg->console, option, value, err, errlen);
	case OPT_RNG:
		return config_parse_rng(cfg, value, err, errlen);
	case OPT_DISK:
		return config_parse_disk(cfg, value, err, errlen);
	case OPT_NET:
		return config_parse_net(cfg, value, err, errlen);
	case OPT_BALLOON:
		return config_parse_balloon(cfg, value, err, errlen);
	case OPT_PMEM:
		return config_parse_pmem(cfg, value, err, errlen);
	case OPT_SECCOMP:
		return config_parse_seccomp(cfg, value, err, errlen);
	case OPT_VSOCK:
		return config_parse_vsock(cfg, value, err, errlen);
	case OPT_SYS_CTRL:
		cfg->sys_ctrl = true;
		return 0;
	case OPT_LANDLOCK:
		cfg->landlock_enable = true;
		return 0;
	case OPT_LANDLOCK_RULES:
		return config_parse_landlock_rule(cfg, value, err, errlen);
	case OPT_PREWARM: {
		int r = parse_size(value, &a->prewarm);
		if (r < 0 || a->prewarm == 0 || a->prewarm % 4096 || a->prewarm > 3 * GiB)
			return error_set(err, errlen, -EINVAL,
					 "--prewarm: '%s' is not a size of 4K..3G in 4K units",
					 value);
		return 0;
	}
	case OPT_RESTORE:
		return parse_restore(a, value, err, errlen);
	case OPT_VERBOSE:
		a->verbosity++;
		return 0;
	case OPT_VERSION:
		a->version = true;
		return 0;
	case OPT_HELP:
		a->help = true;
		return 0;
	case OPT_COUNT:
		break;
	}
	return error_set(err, errlen, -EINVAL, "%s: internal error", option);
}

/* Short flags may be bundled, as clap allows: "-vvv". */
static int parse_short(struct cli_args *a, const char *arg, char *err, size_t errlen)
{
	for (const char *p = arg + 1; *p; p++) {
		const struct cli_opt *o = find_short(*p);
		char option[3] = { '-', *p, '\0' };

		if (!o)
			return error_set(err, errlen, -EINVAL, "unknown option '%s'",
					 p == arg + 1 ? arg : option);
		(void)apply(a, o, option, NULL, err, errlen); /* flags only: cannot fail */
	}
	return 0;
}

/* --restore takes the VM's whole config from the snapshot: the options that describe the VM
 * would be silently ignored, so they are refused with it. */
static int restore_conflicts(const unsigned *seen, char *err, size_t errlen)
{
	static const enum cli_opt_id vm_opts[] = {
		OPT_KERNEL, OPT_INITRAMFS, OPT_CMDLINE,	 OPT_CPUS,
		OPT_MEMORY, OPT_SERIAL,	   OPT_CONSOLE,	 OPT_RNG,
		OPT_DISK,   OPT_NET,	   OPT_VSOCK,	 OPT_BALLOON,
		OPT_PMEM,   OPT_SYS_CTRL,  OPT_LANDLOCK, OPT_LANDLOCK_RULES,
	};

	if (!seen[OPT_RESTORE])
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(vm_opts); i++) {
		if (!seen[vm_opts[i]])
			continue;
		const struct cli_opt *o = &cli_opts[0];
		while (o->id != vm_opts[i])
			o++;
		return error_set(err, errlen, -EINVAL,
				 "--restore: cannot be combined with --%s (the VM's config comes "
				 "from the snapshot)",
				 o->name);
	}
	return 0;
}

/* As Cloud Hypervisor v41: Landlock is part of the VM's config, so it comes with --kernel (a VM
 * created through the API asks for it in vm.create's body); rules alone would do nothing. */
static int landlock_conflicts(const unsigned *seen, char *err, size_t errlen)
{
	if (seen[OPT_LANDLOCK_RULES] && !seen[OPT_LANDLOCK])
		return error_set(err, errlen, -EINVAL,
				 "--landlock-rules: needs --landlock (the rules are what Landlock "
				 "allows beyond the VM's own files)");
	if (seen[OPT_LANDLOCK] && !seen[OPT_KERNEL])
		return error_set(err, errlen, -EINVAL,
				 "--landlock: needs --kernel (a VM created through the API turns "
				 "Landlock on with vm.create's landlock_enable)");
	return 0;
}

static int parse_args(int argc, char *const argv[], struct cli_args *a, char *err, size_t errlen)
{
	unsigned seen[OPT_COUNT] = { 0 };

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const struct cli_opt *o;
		const char *name, *eq, *value = NULL;
		char option[64];
		size_t len;
		int r;

		if (arg[0] != '-' || arg[1] == '\0' || (arg[1] == '-' && arg[2] == '\0'))
			return error_set(err, errlen, -EINVAL, "unexpected argument '%s'", arg);
		if (arg[1] != '-') {
			r = parse_short(a, arg, err, errlen);
			if (r < 0)
				return r;
			continue;
		}

		name = arg + 2;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		o = find_long(name, len);
		if (!o) {
			if (is_unsupported(name, len))
				return error_set(err, errlen, -EINVAL, "--%.*s: not supported yet",
						 (int)len, name);
			return error_set(err, errlen, -EINVAL, "unknown option '--%.*s'", (int)len,
					 name);
		}
		snprintf(option, sizeof(option), "--%s", o->name);

		if (!o->takes_value) {
			if (eq)
				return error_set(err, errlen, -EINVAL, "%s: takes no value",
						 option);
		} else if (eq) {
			value = eq + 1;
		} else {
			/* As clap does: a following option is not taken for a value. */
			if (i + 1 >= argc || (argv[i + 1][0] == '-' && argv[i + 1][1] != '\0'))
				return error_set(err, errlen, -EINVAL, "%s: missing value", option);
			value = argv[++i];
		}
		/* --disk, --net, --pmem and --landlock-rules are repeatable (one device or rule
		 * each); the rest once. */
		bool repeatable = o->id == OPT_DISK || o->id == OPT_NET || o->id == OPT_PMEM ||
				  o->id == OPT_LANDLOCK_RULES;
		if (o->takes_value && !repeatable && seen[o->id]++)
			return error_set(err, errlen, -EINVAL, "%s: given more than once", option);
		if (value && !value[0] && o->id != OPT_CMDLINE)
			return error_set(err, errlen, -EINVAL, "%s: missing value", option);

		r = apply(a, o, option, value, err, errlen);
		if (r < 0)
			return r;
		/* As clap's multiple values: "--disk path=a path=b" is two disks. */
		while ((o->id == OPT_DISK || o->id == OPT_LANDLOCK_RULES) && i + 1 < argc &&
		       argv[i + 1][0] != '-' && argv[i + 1][0]) {
			r = apply(a, o, option, argv[++i], err, errlen);
			if (r < 0)
				return r;
		}
		seen[o->id] += !o->takes_value || repeatable;
	}
	if (seen[OPT_PREWARM] && (!seen[OPT_API_SOCKET] || seen[OPT_KERNEL] || seen[OPT_RESTORE]))
		return error_set(err, errlen, -EINVAL,
				 "--prewarm: only for a VMM that waits for its VM through the API "
				 "(--api-socket, without --kernel or --restore)");
	int r = restore_conflicts(seen, err, errlen);
	return r < 0 ? r : landlock_conflicts(seen, err, errlen);
}

int cli_parse(int argc, char *const argv[], struct cli_args *ret, char *err, size_t errlen)
{
	struct cli_args a = { 0 };
	int r;

	vm_config_init(&a.cfg);
	r = parse_args(argc, argv, &a, err, errlen);
	if (r < 0) {
		cli_args_free(&a);
		return r;
	}
	*ret = a;
	return 0;
}

void cli_args_free(struct cli_args *args)
{
	if (!args)
		return;
	vm_config_free(&args->cfg);
	free(args->log_file);
	free(args->api_socket);
	free(args->event_monitor);
	free(args->restore);
	args->log_file = args->api_socket = args->event_monitor = args->restore = NULL;
}

void cli_print_help(FILE *f)
{
	fprintf(f, "cubicle: a virtual machine monitor for KVM, with Cloud Hypervisor v28's "
		   "command line.\n\n"
		   "USAGE:\n    cubicle [OPTIONS]\n\nOPTIONS:\n");
	for (size_t i = 0; i < ARRAY_SIZE(cli_opts); i++) {
		const struct cli_opt *o = &cli_opts[i];
		char flags[48];

		if (o->short_name && o->name)
			snprintf(flags, sizeof(flags), "-%c, --%s", o->short_name, o->name);
		else if (o->short_name)
			snprintf(flags, sizeof(flags), "-%c", o->short_name);
		else if (o->takes_value)
			snprintf(flags, sizeof(flags), "    --%s <%s>", o->name, o->name);
		else
			snprintf(flags, sizeof(flags), "    --%s", o->name);
		fprintf(f, "    %-29s %s\n", flags, o->help);
	}
	fprintf(f, "\nNot supported yet (Cloud Hypervisor v28 has them):\n   ");
	for (const char *const *u = cli_unsupported; *u; u++)
		fprintf(f, " --%s", *u);
	fprintf(f, "\n");
}
