/* SPDX-License-Identifier: Apache-2.0 */
/*
 * struct vm_config mirrors Cloud Hypervisor v28's VmConfig (shared/anchors/
 * cloud-hypervisor-openapi.yaml). The CLI and (later) the JSON API fill it; vm_config_validate()
 * is the one place that checks it, with messages that name the option and the problem.
 *
 * Strings are heap-allocated and owned by the config; vm_config_free() releases them.
 */
#ifndef CUBICLE_CONFIG_CONFIG_H
#define CUBICLE_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/ratelimit.h" /* struct rate_limiter_config (Cloud Hypervisor's RateLimiterConfig) */

#define CONFIG_MAX_VCPUS   254 /* xAPIC ids 0..254, 255 is broadcast */
#define CONFIG_DEFAULT_MEM (512ULL << 20)
#define CONFIG_MIN_MEM	   (16ULL << 20) /* below this Linux cannot boot; refused clearly */
#define CONFIG_MAX_CMDLINE 2048		 /* Linux's x86 COMMAND_LINE_SIZE */
#define CONFIG_ERR_MAX	   256

struct cpu_topology {
	uint8_t threads_per_core, cores_per_die, dies_per_package, packages; /* 0 = not given */
};

struct cpus_config {
	uint32_t boot_vcpus; /* default 1 */
	uint32_t max_vcpus;  /* default = boot_vcpus; hotplug beyond boot is a later issue */
	struct cpu_topology topology;
	bool kvm_hyperv;
	uint8_t max_phys_bits; /* 0 = host's */
};

struct memory_config {
	uint64_t size; /* bytes; default 512 MiB, multiple of 4 KiB (of 2 MiB with hugepages) */
	bool shared;
	bool hugepages;
	uint64_t hugepage_size; /* 0 = the system default */
	bool prefault;
	bool thp;	/* default true */
	bool mergeable; /* KSM */
};

struct payload_config {
	char *kernel;	 /* vmlinux (PVH ELF) or bzImage */
	char *initramfs; /* NULL = none */
	char *cmdline;	 /* NULL = empty */
	char *firmware;	 /* accepted for API compatibility; refused by validation for now */
};

enum console_mode {
	CONSOLE_OFF,
	CONSOLE_NULL,
	CONSOLE_TTY,
	CONSOLE_FILE,
	CONSOLE_PTY,
};

struct console_config {
	enum console_mode mode;
	char *file; /* CONSOLE_FILE */
	bool iommu;
};

#define CONFIG_DEFAULT_RNG_SRC "/dev/urandom"

struct rng_config {
	char *src; /* entropy source; NULL = CONFIG_DEFAULT_RNG_SRC */
	bool iommu;
};

/*
 * Devices that can be given more than once (--disk, --net, --pmem) are arrays in the config;
 * each element's id defaults to "_disk0", "_net1", ... (Cloud Hypervisor's names) when the user
 * gives none, assigned by validation so that the CLI and the API agree.
 */
#define CONFIG_MAX_DISKS   16
#define CONFIG_MAX_NETS	   16
#define CONFIG_MAX_PMEMS   16
#define CONFIG_MAX_NET_FDS 16 /* TAP fds handed in for one --net (one per queue pair) */
#define CONFIG_ID_MAX	   64 /* bytes of a device id, with the NUL */

#define CONFIG_DEFAULT_DISK_QUEUES     1
#define CONFIG_MAX_DISK_QUEUES	       16   /* num_queues of one disk */
#define CONFIG_MAX_DISK_QUEUE_SIZE     1024 /* queue_size of a disk (Linux's IOV_MAX) */
#define CONFIG_MAX_DISK_SERIAL	       20   /* bytes of serial: virtio-blk's GET_ID answer */
#define CONFIG_DEFAULT_DISK_QUEUE_SIZE 128
#define CONFIG_DEFAULT_NET_QUEUES      2
#define CONFIG_DEFAULT_NET_QUEUE_SIZE  256
#define CONFIG_MAX_NET_QUEUES	       (2 * CONFIG_MAX_NET_FDS) /* RX + TX per pair */
#define CONFIG_MAX_NET_QUEUE_SIZE      32768			/* the split ring's maximum */
#define CONFIG_MIN_NET_MTU	       68			/* IPv4's minimum */
#define CONFIG_MAX_NET_MTU	       65535
#define CONFIG_NET_IFNAMSIZ	       16 /* Linux's IFNAMSIZ, with the NUL */

/* DiskConfig. Defaults: num_queues 1, queue_size 128. */
struct disk_config {
	char *path;
	bool readonly;
	bool direct; /* O_DIRECT */
	bool iommu;
	uint16_t num_queues;
	uint16_t queue_size;
	bool vhost_user; /* accepted for API compatibility; refused by validation for now */
	char *vhost_socket;
	struct rate_limiter_config rate_limiter;
	uint16_t pci_segment;
	char *id;
	char *serial;	       /* VIRTIO_BLK_T_GET_ID; NULL = none */
	bool disable_io_uring; /* _disable_io_uring=on: the worker-pool engine (tests, bench) */
	uint32_t test_align;   /* not a key: unit tests make the device align I/O to this */
};

/* NetConfig. Defaults: ip 192.168.249.1, mask 255.255.255.0 (used only when cubicle creates
 * the TAP and an address was given), num_queues 2, queue_size 256, random locally administered
 * guest MAC. Strings as the user wrote them; the net device parses mac/ip/mask (validated). */
struct net_config {
	char *tap; /* TAP name; NULL = create one (tapN) */
	char *ip;  /* host side address of the TAP; NULL = none set */
	char *mask;
	char *mac;	/* guest MAC "12:34:56:78:9a:bc"; NULL = random */
	char *host_mac; /* TAP's MAC; NULL = the kernel's */
	uint16_t mtu;	/* 0 = the TAP's */
	bool iommu;
	uint16_t num_queues; /* total queues: 2 per pair */
	uint16_t queue_size;
	bool vhost_user; /* refused for now */
	char *vhost_socket;
	char *id;
	uint16_t pci_segment;
	struct rate_limiter_config rate_limiter;
	int fds[CONFIG_MAX_NET_FDS]; /* open TAP fds handed in (fd=[a,b], or SCM_RIGHTS) */
	unsigned num_fds;	     /* the config owns them: vm_config_free closes them */
};

/* VsockConfig (hybrid vsock over a Unix socket). */
#define CONFIG_VSOCK_MIN_CID  3U	  /* 0, 1 reserved, 2 the host */
#define CONFIG_VSOCK_MAX_CID  0xfffffffeU /* U32_MAX is VMADDR_CID_ANY */
#define CONFIG_VSOCK_PATH_MAX 96	  /* sun_path (108) less NUL and "_4294967295" */

struct vsock_config {
	uint64_t cid; /* ≥ 3 */
	char *socket;
	bool iommu;
	uint16_t pci_segment;
	char *id;
};

/* PmemConfig. size 0 = the file's size; sizes are multiples of PMEM_ALIGN (Cloud Hypervisor). */
#define PMEM_ALIGN (2ULL << 20)
struct pmem_config {
	char *file;
	uint64_t size;
	bool iommu;
	bool discard_writes;
	uint16_t pci_segment;
	char *id;
};

/* BalloonConfig. The balloon counts 4 KiB pages (virtio 1.2 §5.5). */
#define BALLOON_PAGE_SIZE 4096ULL
struct balloon_config {
	uint64_t size; /* bytes the balloon starts inflated to */
	bool deflate_on_oom;
	bool free_page_reporting;
};

/* LandlockConfig (Cloud Hypervisor v41's --landlock-rules, VmConfig.landlock_rules): one more
 * path the VMM may use under --landlock. access is "r", "w" or "rw" (security/landlock.h says
 * what each grants). */
#define CONFIG_MAX_LANDLOCK_RULES 32
struct landlock_rule_config {
	char *path;
	char *access;
};

/* --seccomp true|false|log (Cloud Hypervisor v28): not part of VmConfig's JSON. */
enum seccomp_mode {
	SECCOMP_ON, /* default: a forbidden system call ends the process (security/seccomp.h) */
	SECCOMP_OFF,
	SECCOMP_LOG, /* allowed and logged by the kernel */
};

struct vm_config {
	enum seccomp_mode seccomp;
	struct cpus_config cpus;
	struct memory_config memory;
	struct payload_config payload;
	struct console_config serial;  /* default Null (Cloud Hypervisor) */
	struct console_config console; /* default Tty (virtio-console) */
	struct rng_config rng;	       /* default src=/dev/urandom; virtio-rng is always present */
	struct disk_config disks[CONFIG_MAX_DISKS];
	unsigned num_disks;
	struct net_config nets[CONFIG_MAX_NETS];
	unsigned num_nets;
	struct pmem_config pmems[CONFIG_MAX_PMEMS];
	unsigned num_pmems;
	struct vsock_config *vsock;	/* NULL = none (at most one, as in Cloud Hypervisor) */
	struct balloon_config *balloon; /* NULL = none */
	bool sys_ctrl; /* --sys-ctrl (CubeSandbox): the guest's start signal on I/O port 0x680 */
	/* --landlock, --landlock-rules (Cloud Hypervisor v41's landlock_enable, landlock_rules):
	 * the VMM confines its file access to what this config names (docs/landlock.md). */
	bool landlock_enable;
	struct landlock_rule_config landlock_rules[CONFIG_MAX_LANDLOCK_RULES];
	unsigned num_landlock_rules;
};

/* Per-device defaults and destructors (the destructors free the strings, close a net's fds,
 * and leave the element zeroed; vsock_config_free also frees the struct and accepts NULL). */
void disk_config_init(struct disk_config *d);
void disk_config_free(struct disk_config *d);
void net_config_init(struct net_config *n);
void net_config_free(struct net_config *n);
void pmem_config_free(struct pmem_config *p);
void vsock_config_free(struct vsock_config *v);

/* Gives every disk, net, pmem and vsock without an id Cloud Hypervisor's default one ("_disk0",
 * "_net1", ...: the index among its kind), and every net without a MAC a random one (locally
 * administered, unicast), kept for the VM's life. Returns 0, -ENOMEM or -EIO. Call once the
 * config is complete, before vm_create (the CLI and the API both do). */
int vm_config_assign_ids(struct vm_config *cfg);

/* Fills @cfg with Cloud Hypervisor v28's defaults (no kernel). */
void vm_config_init(struct vm_config *cfg);
/* Frees the strings the config owns; the struct itself is the caller's. Accepts NULL. */
void vm_config_free(struct vm_config *cfg);

/*
 * Checks a filled config: a kernel is given, vCPU counts and topology agree, memory size and
 * flags are consistent. On failure returns -EINVAL and writes one line into @err (at most
 * CONFIG_ERR_MAX bytes) naming the option and the problem, e.g.
 * "--memory: size must be a multiple of 4 KiB". Host-dependent limits (vCPUs the hypervisor
 * allows, memory the host has) are checked where they are known, when the VM is built.
 */
int vm_config_validate(const struct vm_config *cfg, char *err, size_t errlen);

/*
 * Cloud Hypervisor sub-option parsers, one per CLI option: "boot=2,max=2",
 * "size=1G,shared=on", "off|null|tty|pty|file=PATH". They update @cfg in place and on failure
 * return -EINVAL with a message in @err such as "--memory: unknown key 'sise'" (or -ENOMEM).
 * As in Cloud Hypervisor, a key left out takes its default (not its previous value); on
 * failure @cfg is left unchanged.
 */
int config_parse_cpus(struct vm_config *cfg, const char *arg, char *err, size_t errlen);
int config_parse_memory(struct vm_config *cfg, const char *arg, char *err, size_t errlen);
int config_parse_console(struct console_config *con, const char *option, const char *arg, char *err,
			 size_t errlen);
/*
 * "tap=..,ip=..,mask=..,mac=..,host_mac=..,mtu=..,num_queues=..,queue_size=..,id=..,fd=[a,b],
 * iommu=..,vhost_user=..,socket=..,vhost_mode=..,pci_segment=.." and the rate limiter keys
 * (--net, repeatable): appends one NIC. fd= without num_queues means one pair per fd. The fds
 * become the config's only when the parse succeeds.
 */
int config_parse_net(struct vm_config *cfg, const char *arg, char *err, size_t errlen);
/* One NIC's checks (the ones vm_config_validate runs for each), naming --net in @err:
 * -EINVAL for a bad MAC, ip or mask, num_queues not even in 2..CONFIG_MAX_NET_QUEUES, a
 * queue_size not a power of two, fds not one per queue pair, vhost_user (not supported yet). */
int net_config_validate(const struct net_config *n, char *err, size_t errlen);
/* Every NIC, then ids and TAP names unique among them. */
int config_validate_nets(const struct vm_config *cfg, char *err, size_t errlen);
/* "12:34:56:78:9a:bc" → 6 bytes. Returns 0 or -EINVAL (then @ret is untouched). */
int config_parse_mac(const char *s, uint8_t ret[6]);
/* A dotted IPv4 address → network byte order. Returns 0 or -EINVAL. */
int config_parse_ipv4(const char *s, uint32_t *ret);
/* Whether @be_mask (network order) is ones then zeros. */
bool config_netmask_valid(uint32_t be_mask);

/* "src=PATH,iommu=on|off" (--rng); src defaults to /dev/urandom. */
int config_parse_rng(struct vm_config *cfg, const char *arg, char *err, size_t errlen);
/*
 * "path=IMG,readonly=on,..." (--disk, repeatable): appends one disk with Cloud Hypervisor v28's
 * keys and defaults. -EINVAL naming the key, or for a 17th disk.
 */
int config_parse_disk(struct vm_config *cfg, const char *arg, char *err, size_t errlen);
/* The --disk checks of vm_config_validate: path given, num_queues 1..CONFIG_MAX_DISK_QUEUES,
 * queue_size a power of two ≤ CONFIG_MAX_DISK_QUEUE_SIZE, no vhost_user, ids unique. */
int config_validate_disks(const struct vm_config *cfg, char *err, size_t errlen);
/* "size=S,deflate_on_oom=on|off,free_page_reporting=on|off" (--balloon, config/balloon.c). */
int config_parse_balloon(struct vm_config *cfg, const char *arg, char *err, size_t errlen);
/* "file=PATH,size=S,discard_writes=on|off,iommu=on|off,id=ID,pci_segment=N" (--pmem, repeatable:
 * each call adds one device; config/pmem.c). file= is required. */
int config_parse_pmem(struct vm_config *cfg, const char *arg, char *err, size_t errlen);
/* Parts of vm_config_validate(): balloon size below the memory size and a multiple of 4 KiB;
 * pmem sizes multiples of PMEM_ALIGN, ids unique. -EINVAL with @err naming the option. */
int config_validate_balloon(const struct vm_config *cfg, char *err, size_t errlen);
int config_validate_pmems(const struct vm_config *cfg, char *err, size_t errlen);
/* "path=P,access=[rw]" (--landlock-rules, repeatable: each call adds one rule;
 * config/landlock.c). Both keys are required; -EINVAL naming the key, or for a 33rd rule. */
int config_parse_landlock_rule(struct vm_config *cfg, const char *arg, char *err, size_t errlen);
/* One rule's checks: a non-empty path, access one or two of 'r' and 'w'. Whether the path
 * exists is checked when Landlock is applied. -EINVAL naming --landlock-rules. */
int landlock_rule_validate(const struct landlock_rule_config *rule, char *err, size_t errlen);
void landlock_rule_free(struct landlock_rule_config *rule);

/* "true|false|log" (--seccomp). */
int config_parse_seccomp(struct vm_config *cfg, const char *arg, char *err, size_t errlen);
/* "cid=N,socket=PATH[,iommu=on|off][,id=ID][,pci_segment=0]" (--vsock): allocates cfg->vsock;
 * -EINVAL ("--vsock: given more than once") when it is already set, or when cid or socket is
 * missing. Range checks are vsock_config_validate's. */
int config_parse_vsock(struct vm_config *cfg, const char *arg, char *err, size_t errlen);
/* cid in CONFIG_VSOCK_MIN_CID..CONFIG_VSOCK_MAX_CID, a socket path of at most
 * CONFIG_VSOCK_PATH_MAX bytes, segment 0, no iommu. NULL is valid (no vsock). -EINVAL + @err. */
int vsock_config_validate(const struct vsock_config *v, char *err, size_t errlen);
/* The rng source to open: cfg->rng.src or the default. */
const char *config_rng_src(const struct vm_config *cfg);

/* Name of a console mode as the API writes it: "Off", "Null", "Tty", "File", "Pty". */
const char *console_mode_name(enum console_mode mode);

/*
 * Command line
 */

struct cli_args {
	struct vm_config cfg;
	char *log_file;	     /* --log-file */
	char *api_socket;    /* --api-socket, as given (the api module parses it) */
	char *event_monitor; /* --event-monitor, as given */
	char *restore;	     /* --restore's source_url; NULL = none */
	bool restore_prefault;
	uint64_t prewarm;   /* --prewarm: low RAM to prepare for the API's VM; 0 = none */
	unsigned verbosity; /* number of -v */
	bool help, version;
};

/*
 * Parses argv (Cloud Hypervisor v28 syntax, cli.c's table: --kernel, --cpus, --memory, the
 * devices, --api-socket, --restore, ...; cubicle's own --seccomp log, --sys-ctrl, --prewarm).
 * Both "--opt value" and "--opt=value". Returns 0, or -EINVAL with one line in @err naming the
 * option and the problem ("unknown option '--foo'", "--kernel: missing value", "--cpus: ..."),
 * or -ENOMEM. @ret is set only on success. Options Cloud Hypervisor has and cubicle does not
 * ("--numa") give "--numa: not supported yet". Does not validate the whole config
 * (vm_config_validate does) and does not open files.
 */
int cli_parse(int argc, char *const argv[], struct cli_args *ret, char *err, size_t errlen);
/* Frees what cli_parse() allocated. Accepts NULL. */
void cli_args_free(struct cli_args *args);
/* One line per option, in Cloud Hypervisor's style. */
void cli_print_help(FILE *f);

#endif
