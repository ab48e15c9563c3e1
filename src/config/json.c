/* SPDX-License-Identifier: Apache-2.0 */
/*
 * VmConfig JSON (vm.create's body) and the device bodies to struct vm_config (config/json.h),
 * field by field in the order of Cloud Hypervisor v28's vm_config.rs.
 */
#include "config/json.h"
#include "config/ids.h"
#include "config/json_read.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define JSON_MAX_U8  UINT8_MAX
#define JSON_MAX_U16 UINT16_MAX
#define JSON_MAX_U64 UINT64_MAX

#define VSOCK_MIN_CID 3 /* 0-2 are the hypervisor, the local loopback and the host */

static int read_cpus(const struct json_reader *top, struct cpus_config *c)
{
	struct json_reader r, t, f;
	bool given;
	uint64_t v = 0;
	int rc;

	rc = json_reader_child(top, "cpus", JSON_DEFAULT, &r, &given);
	if (rc < 0 || !given)
		return rc;
	rc = json_read_u64(&r, "boot_vcpus", JSON_REQUIRED, JSON_MAX_U8, &v, NULL);
	if (rc < 0)
		return rc;
	c->boot_vcpus = (uint32_t)v;
	rc = json_read_u64(&r, "max_vcpus", JSON_REQUIRED, JSON_MAX_U8, &v, NULL);
	if (rc < 0)
		return rc;
	c->max_vcpus = (uint32_t)v;
	rc = json_reader_child(&r, "topology", JSON_OPTIONAL, &t, &given);
	if (rc < 0)
		return rc;
	if (given) {
		static const char *const parts[] = { "threads_per_core", "cores_per_die",
						     "dies_per_package", "packages" };
		uint8_t *dst[] = { &c->topology.threads_per_core, &c->topology.cores_per_die,
				   &c->topology.dies_per_package, &c->topology.packages };

		for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
			rc = json_read_u64(&t, parts[i], JSON_REQUIRED, JSON_MAX_U8, &v, NULL);
			if (rc < 0)
				return rc;
			*dst[i] = (uint8_t)v;
		}
	}
	rc = json_read_bool(&r, "kvm_hyperv", JSON_DEFAULT, &c->kvm_hyperv);
	if (rc < 0)
		return rc;
	rc = json_read_u64(&r, "max_phys_bits", JSON_DEFAULT, JSON_MAX_U8, &v, &given);
	if (rc < 0)
		return rc;
	if (given)
		c->max_phys_bits = (uint8_t)v;
	rc = json_refuse_unless_empty(&r, "affinity");
	if (rc < 0)
		return rc;
	rc = json_reader_child(&r, "features", JSON_DEFAULT, &f, &given);
	if (rc < 0 || !given)
		return rc;
	return json_refuse_unless_empty(&f, "amx");
}

static int read_memory(const struct json_reader *top, struct memory_config *m)
{
	static const char *const hotplug_methods[] = { "Acpi", "VirtioMem", NULL };
	struct json_reader r;
	unsigned method = 0;
	bool given;
	int rc;

	rc = json_reader_child(top, "memory", JSON_DEFAULT, &r, &given);
	if (rc < 0 || !given)
		return rc;
	rc = json_read_u64(&r, "size", JSON_REQUIRED, JSON_MAX_U64, &m->size, NULL);
	if (rc == 0)
		rc = json_read_bool(&r, "mergeable", JSON_DEFAULT, &m->mergeable);
	if (rc == 0)
		rc = json_read_enum(&r, "hotplug_method", JSON_DEFAULT, hotplug_methods, &method);
	if (rc == 0 && method != 0)
		rc = json_field_error(&r, "hotplug_method", "VirtioMem is not supported yet");
	if (rc == 0)
		rc = json_refuse_unless_empty(&r, "hotplug_size");
	if (rc == 0)
		rc = json_refuse_unless_empty(&r, "hotplugged_size");
	if (rc == 0)
		rc = json_read_bool(&r, "shared", JSON_DEFAULT, &m->shared);
	if (rc == 0)
		rc = json_read_bool(&r, "hugepages", JSON_DEFAULT, &m->hugepages);
	if (rc == 0)
		rc = json_read_u64(&r, "hugepage_size", JSON_OPTIONAL, JSON_MAX_U64,
				   &m->hugepage_size, &given);
	/* 0 stands for "not given" in struct memory_config; Cloud Hypervisor refuses Some(0). */
	if (rc == 0 && given && m->hugepage_size == 0)
		rc = json_field_error(&r, "hugepage_size", "must be 2M or 1G");
	if (rc == 0)
		rc = json_read_bool(&r, "prefault", JSON_DEFAULT, &m->prefault);
	if (rc == 0)
		rc = json_refuse_unless_empty(&r, "zones");
	if (rc == 0)
		rc = json_read_bool(&r, "thp", JSON_DEFAULT, &m->thp);
	return rc;
}

static int read_payload(const struct json_reader *top, struct payload_config *p)
{
	struct json_reader r;
	bool given;
	int rc;

	rc = json_reader_child(top, "payload", JSON_OPTIONAL, &r, &given);
	if (rc < 0 || !given)
		return rc;
	rc = json_read_str(&r, "firmware", JSON_OPTIONAL, &p->firmware);
	if (rc == 0)
		rc = json_read_str(&r, "kernel", JSON_OPTIONAL, &p->kernel);
	if (rc == 0)
		rc = json_read_str(&r, "cmdline", JSON_OPTIONAL, &p->cmdline);
	if (rc == 0)
		rc = json_read_str(&r, "initramfs", JSON_OPTIONAL, &p->initramfs);
	return rc;
}

static int read_token_bucket(const struct json_reader *parent, const char *key,
			     struct token_bucket_config *b)
{
	struct json_reader r;
	bool given;
	int rc = json_reader_child(parent, key, JSON_OPTIONAL, &r, &given);

	if (rc < 0 || !given)
		return rc;
	rc = json_read_u64(&r, "size", JSON_REQUIRED, JSON_MAX_U64, &b->size, NULL);
	if (rc == 0)
		rc = json_read_u64(&r, "one_time_burst", JSON_OPTIONAL, JSON_MAX_U64,
				   &b->one_time_burst, NULL);
	if (rc == 0)
		rc = json_read_u64(&r, "refill_time", JSON_REQUIRED, JSON_MAX_U64, &b->refill_time,
				   NULL);
	return rc;
}

/* The one struct of Cloud Hypervisor v28's bodies with deny_unknown_fields. */
static int read_rate_limiter(const struct json_reader *dev, struct rate_limiter_config *rl)
{
	static const char *const known[] = { "bandwidth", "ops", NULL };
	struct json_reader r;
	bool given;
	int rc = json_reader_child(dev, "rate_limiter_config", JSON_OPTIONAL, &r, &given);

	if (rc < 0 || !given)
		return rc;
	rc = json_refuse_unknown(&r, known);
	if (rc == 0)
		rc = read_token_bucket(&r, "bandwidth", &rl->bandwidth);
	if (rc == 0)
		rc = read_token_bucket(&r, "ops", &rl->ops);
	return rc;
}

/* pci_segment: cubicle has one PCI segment (platform.num_pci_segments is refused). */
static int read_pci_segment(const struct json_reader *r, uint16_t *ret)
{
	uint64_t v = 0;
	int rc = json_read_u64(r, "pci_segment", JSON_DEFAULT, JSON_MAX_U16, &v, NULL);

	if (rc < 0)
		return rc;
	if (v != 0)
		return json_field_error(r, "pci_segment",
					"must be 0 (cubicle has one PCI segment)");
	*ret = (uint16_t)v;
	return 0;
}

/* num_queues (a usize in Cloud Hypervisor) and queue_size (u16). */
static int read_queues(const struct json_reader *r, uint16_t *num_queues, uint16_t *queue_size)
{
	uint64_t v = *num_queues;
	int rc = json_read_u64(r, "num_queues", JSON_DEFAULT, JSON_MAX_U16, &v, NULL);

	if (rc < 0)
		return rc;
	*num_queues = (uint16_t)v;
	v = *queue_size;
	rc = json_read_u64(r, "queue_size", JSON_DEFAULT, JSON_MAX_U16, &v, NULL);
	if (rc < 0)
		return rc;
	*queue_size = (uint16_t)v;
	return 0;
}

/* Fields cubicle does not have yet but which take a harmless default: vhost-user, iommu. */
static int refuse_common(const struct json_reader *r, bool vhost)
{
	int rc = json_refuse_unless_empty(r, "iommu");

	if (rc == 0 && vhost)
		rc = json_refuse_unless_empty(r, "vhost_user");
	if (rc == 0 && vhost)
		rc = json_refuse_unless_empty(r, "vhost_socket");
	return rc;
}

static int read_disk(const struct json_reader *r, struct disk_config *d)
{
	int rc;

	rc = json_read_str(r, "path", JSON_OPTIONAL, &d->path);
	if (rc == 0 && !d->path)
		rc = json_field_error(r, "path", "missing");
	if (rc == 0)
		rc = json_read_bool(r, "readonly", JSON_DEFAULT, &d->readonly);
	if (rc == 0)
		rc = json_read_bool(r, "direct", JSON_DEFAULT, &d->direct);
	if (rc == 0)
		rc = refuse_common(r, true);
	if (rc == 0)
		rc = read_queues(r, &d->num_queues, &d->queue_size);
	if (rc == 0)
		rc = read_rate_limiter(r, &d->rate_limiter);
	if (rc == 0)
		rc = json_read_str(r, "id", JSON_OPTIONAL, &d->id);
	/* Cloud Hypervisor's knob: the worker-pool engine instead of io_uring. */
	if (rc == 0)
		rc = json_read_bool(r, "disable_io_uring", JSON_DEFAULT, &d->disable_io_uring);
	if (rc == 0)
		rc = read_pci_segment(r, &d->pci_segment);
	if (rc == 0) /* later Cloud Hypervisor versions' serial (VIRTIO_BLK_T_GET_ID) */
		rc = json_read_str(r, "serial", JSON_OPTIONAL, &d->serial);
	return rc;
}

static bool mac_valid(const char *s)
{
	for (unsigned i = 0; i < 17; i++) {
		bool colon = i % 3 == 2;

		if (colon ? s[i] != ':' : !strchr("0123456789abcdefABCDEF", s[i]) || !s[i])
			return false;
	}
	return s[17] == '\0';
}

/* A string field parsed as Cloud Hypervisor's Ipv4Addr or MacAddr; stored as written. */
static int read_addr(const struct json_reader *r, const char *key, enum json_presence p, bool mac,
		     char **ret)
{
	char *s = NULL;
	struct in_addr a;
	int rc = json_read_str(r, key, p, &s);

	if (rc < 0 || !s)
		return rc;
	if (mac ? !mac_valid(s) : inet_pton(AF_INET, s, &a) != 1) {
		rc = json_field_error(r, key, "invalid %s '%.40s'",
				      mac ? "MAC address" : "IPv4 address", s);
		free(s);
		return rc;
	}
	free(*ret);
	*ret = s;
	return 0;
}

static int read_net_addrs(const struct json_reader *r, struct net_config *n)
{
	uint64_t mtu = 0;
	bool given;
	int rc;

	rc = json_read_str(r, "tap", JSON_OPTIONAL, &n->tap);
	if (rc == 0)
		rc = read_addr(r, "ip", JSON_DEFAULT, false, &n->ip);
	if (rc == 0)
		rc = read_addr(r, "mask", JSON_DEFAULT, false, &n->mask);
	if (rc == 0)
		rc = read_addr(r, "mac", JSON_DEFAULT, true, &n->mac);
	if (rc == 0)
		rc = read_addr(r, "host_mac", JSON_OPTIONAL, true, &n->host_mac);
	if (rc == 0)
		rc = json_read_u64(r, "mtu", JSON_OPTIONAL, JSON_MAX_U16, &mtu, &given);
	if (rc == 0 && given && mtu == 0)
		rc = json_field_error(r, "mtu", "must not be 0");
	if (rc == 0)
		n->mtu = (uint16_t)mtu;
	return rc;
}

static int read_net(const struct json_reader *r, struct net_config *n)
{
	static const char *const vhost_modes[] = { "Client", "Server", NULL };
	unsigned mode = 0;
	const json_t *fds;
	int rc;

	rc = read_net_addrs(r, n);
	if (rc == 0)
		rc = refuse_common(r, true);
	if (rc == 0)
		rc = read_queues(r, &n->num_queues, &n->queue_size);
	if (rc == 0)
		rc = json_read_enum(r, "vhost_mode", JSON_DEFAULT, vhost_modes, &mode);
	if (rc == 0)
		rc = json_read_str(r, "id", JSON_OPTIONAL, &n->id);
	if (rc == 0)
		rc = json_read_array(r, "fds", JSON_OPTIONAL, CONFIG_MAX_NET_FDS, &fds);
	if (rc == 0 && fds && json_array_size(fds) > 0)
		rc = json_field_error(r, "fds",
				      "TAP fds are sent with SCM_RIGHTS (vm.add-net), not as "
				      "numbers in the body");
	if (rc == 0)
		rc = read_rate_limiter(r, &n->rate_limiter);
	if (rc == 0)
		rc = read_pci_segment(r, &n->pci_segment);
	return rc;
}

static int read_pmem(const struct json_reader *r, struct pmem_config *p)
{
	int rc;

	rc = json_read_str(r, "file", JSON_REQUIRED, &p->file);
	if (rc == 0)
		rc = json_read_u64(r, "size", JSON_OPTIONAL, JSON_MAX_U64, &p->size, NULL);
	if (rc == 0)
		rc = refuse_common(r, false);
	if (rc == 0)
		rc = json_read_bool(r, "discard_writes", JSON_DEFAULT, &p->discard_writes);
	if (rc == 0)
		rc = json_read_str(r, "id", JSON_OPTIONAL, &p->id);
	if (rc == 0)
		rc = read_pci_segment(r, &p->pci_segment);
	return rc;
}

static int read_vsock(const struct json_reader *r, struct vsock_config *v)
{
	int rc;

	rc = json_read_u64(r, "cid", JSON_REQUIRED, JSON_MAX_U64, &v->cid, NULL);
	if (rc == 0 && v->cid < VSOCK_MIN_CID)
		rc = json_field_error(r, "cid", "must be at least %u", VSOCK_MIN_CID);
	if (rc == 0)
		rc = json_read_str(r, "socket", JSON_REQUIRED, &v->socket);
	if (rc == 0)
		rc = refuse_common(r, false);
	if (rc == 0)
		rc = json_read_str(r, "id", JSON_OPTIONAL, &v->id);
	if (rc == 0)
		rc = read_pci_segment(r, &v->pci_segment);
	return rc;
}

static int read_balloon(const struct json_reader *r, struct balloon_config *b)
{
	int rc = json_read_u64(r, "size", JSON_REQUIRED, JSON_MAX_U64, &b->size, NULL);

	if (rc == 0)
		rc = json_read_bool(r, "deflate_on_oom", JSON_DEFAULT, &b->deflate_on_oom);
	if (rc == 0)
		rc = json_read_bool(r, "free_page_reporting", JSON_DEFAULT,
				    &b->free_page_reporting);
	return rc;
}

static int read_console(const struct json_reader *top, const char *key, struct console_config *c)
{
	/* Indexed by enum console_mode. */
	static const char *const modes[] = { "Off", "Null", "Tty", "File", "Pty", NULL };
	struct json_reader r;
	unsigned mode = 0;
	bool given;
	int rc;

	rc = json_reader_child(top, key, JSON_DEFAULT, &r, &given);
	if (rc < 0 || !given)
		return rc;
	rc = json_read_str(&r, "file", JSON_OPTIONAL, &c->file);
	if (rc == 0)
		rc = json_read_enum(&r, "mode", JSON_REQUIRED, modes, &mode);
	if (rc == 0)
		rc = json_read_bool(&r, "iommu", JSON_DEFAULT, &c->iommu);
	if (rc == 0)
		c->mode = (enum console_mode)mode;
	return rc;
}

static int read_rng(const struct json_reader *top, struct rng_config *rng)
{
	struct json_reader r;
	bool given;
	int rc;

	rc = json_reader_child(top, "rng", JSON_DEFAULT, &r, &given);
	if (rc < 0 || !given)
		return rc;
	rc = json_read_str(&r, "src", JSON_REQUIRED, &rng->src);
	if (rc == 0)
		rc = json_read_bool(&r, "iommu", JSON_DEFAULT, &rng->iommu);
	return rc;
}

/* The arrays of devices: each element read into the next free slot, counted as it is taken so
 * that vm_config_free releases what a failed element left. */
static int read_devices(const struct json_reader *top, struct vm_config *cfg)
{
	const json_t *a, *e;
	struct json_reader r;
	size_t i;
	int rc;

	rc = json_read_array(top, "disks", JSON_OPTIONAL, CONFIG_MAX_DISKS, &a);
	json_array_foreach(a, i, e)
	{
		if (rc < 0)
			break;
		disk_config_init(&cfg->disks[cfg->num_disks++]);
		rc = json_reader_elem(top, "disks", e, i, &r);
		if (rc == 0)
			rc = read_disk(&r, &cfg->disks[i]);
	}
	if (rc == 0)
		rc = json_read_array(top, "net", JSON_OPTIONAL, CONFIG_MAX_NETS, &a);
	json_array_foreach(a, i, e)
	{
		if (rc < 0)
			break;
		net_config_init(&cfg->nets[cfg->num_nets++]);
		rc = json_reader_elem(top, "net", e, i, &r);
		if (rc == 0)
			rc = read_net(&r, &cfg->nets[i]);
	}
	if (rc == 0)
		rc = json_read_array(top, "pmem", JSON_OPTIONAL, CONFIG_MAX_PMEMS, &a);
	json_array_foreach(a, i, e)
	{
		if (rc < 0)
			break;
		memset(&cfg->pmems[cfg->num_pmems++], 0, sizeof(cfg->pmems[0]));
		rc = json_reader_elem(top, "pmem", e, i, &r);
		if (rc == 0)
			rc = read_pmem(&r, &cfg->pmems[i]);
	}
	return rc;
}

static int read_vsock_section(const struct json_reader *top, struct vm_config *cfg)
{
	struct json_reader r;
	bool given;
	int rc;

	rc = json_reader_child(top, "vsock", JSON_OPTIONAL, &r, &given);
	if (rc == 0 && given) {
		cfg->vsock = calloc(1, sizeof(*cfg->vsock));
		rc = cfg->vsock ? read_vsock(&r, cfg->vsock) : -ENOMEM;
	}
	return rc;
}

static int read_vsock_balloon(const struct json_reader *top, struct vm_config *cfg)
{
	struct json_reader r;
	bool given;
	int rc;

	rc = json_reader_child(top, "balloon", JSON_OPTIONAL, &r, &given);
	if (rc == 0 && given) {
		cfg->balloon = calloc(1, sizeof(*cfg->balloon));
		rc = cfg->balloon ? read_balloon(&r, cfg->balloon) : -ENOMEM;
	}
	if (rc == 0)
		rc = read_vsock_section(top, cfg);
	return rc;
}

/* Cloud Hypervisor v41's landlock_enable and landlock_rules ([{path, access}]); the rules'
 * values are checked by vm_config_validate. */
static int read_landlock(const struct json_reader *top, struct vm_config *cfg)
{
	struct json_reader r;
	const json_t *a = NULL, *e;
	size_t i;
	int rc;

	rc = json_read_bool(top, "landlock_enable", JSON_DEFAULT, &cfg->landlock_enable);
	if (rc == 0)
		rc = json_read_array(top, "landlock_rules", JSON_OPTIONAL,
				     CONFIG_MAX_LANDLOCK_RULES, &a);
	json_array_foreach(a, i, e)
	{
		if (rc < 0)
			break;
		struct landlock_rule_config *rule = &cfg->landlock_rules[cfg->num_landlock_rules++];
		rc = json_reader_elem(top, "landlock_rules", e, i, &r);
		if (rc == 0)
			rc = json_read_str(&r, "path", JSON_REQUIRED, &rule->path);
		if (rc == 0)
			rc = json_read_str(&r, "access", JSON_REQUIRED, &rule->access);
	}
	return rc;
}

/* PlatformConfig: accepted when it asks for nothing beyond the defaults. */
static int read_platform(const struct json_reader *top)
{
	static const char *const fields[] = { "iommu_segments", "serial_number", "uuid",
					      "oem_strings",	"tdx",		 NULL };
	struct json_reader r;
	uint64_t segments = 1;
	bool given;
	int rc;

	rc = json_reader_child(top, "platform", JSON_OPTIONAL, &r, &given);
	if (rc < 0 || !given)
		return rc;
	rc = json_read_u64(&r, "num_pci_segments", JSON_DEFAULT, JSON_MAX_U16, &segments, NULL);
	if (rc == 0 && segments != 1)
		rc = json_field_error(&r, "num_pci_segments", "only 1 is supported yet");
	for (unsigned i = 0; rc == 0 && fields[i]; i++)
		rc = json_refuse_unless_empty(&r, fields[i]);
	return rc;
}

/* The sections of VmConfig that cubicle does not have (yet). */
static int refuse_unsupported(const struct json_reader *top)
{
	static const char *const sections[] = { "fs",	 "devices", "user_devices", "vdpa",
						"iommu", "sgx_epc", "numa",	    "watchdog",
						"tpm",	 NULL };
	int rc = 0;

	for (unsigned i = 0; rc == 0 && sections[i]; i++)
		rc = json_refuse_unless_empty(top, sections[i]);
	if (rc == 0)
		rc = read_platform(top);
	return rc;
}

/*
 * vm_config_validate() words its messages for the command line ("--memory: size must be ...");
 * the API names JSON fields ("memory.size: must be ..."). One table maps the options to their
 * JSON sections and the CLI's sub-option keys to field names where they differ.
 */
struct cli_json_map {
	const char *option, *path;
};

static const struct cli_json_map cli_sections[] = {
	{ "--cpus", "cpus" },
	{ "--memory", "memory" },
	{ "--kernel", "payload.kernel" },
	{ "--initramfs", "payload.initramfs" },
	{ "--cmdline", "payload.cmdline" },
	{ "--firmware", "payload.firmware" },
	{ "--serial", "serial" },
	{ "--console", "console" },
	{ "--rng", "rng" },
	{ "--disk", "disks" },
	{ "--net", "net" },
	{ "--pmem", "pmem" },
	{ "--vsock", "vsock" },
	{ "--balloon", "balloon" },
	{ "--landlock-rules", "landlock_rules" },
};

static const struct cli_json_map cli_keys[] = {
	{ "boot", "boot_vcpus" },
	{ "max", "max_vcpus" },
	{ "size", "size" },
	{ "hugepage_size", "hugepage_size" },
	{ "topology", "topology" },
	{ "max_phys_bits", "max_phys_bits" },
	{ "src", "src" },
	{ "path", "path" },
	{ "cid", "cid" },
	{ "socket", "socket" },
	{ "num_queues", "num_queues" },
	{ "queue_size", "queue_size" },
	{ "mtu", "mtu" },
	{ "mac", "mac" },
	{ "ip", "ip" },
	{ "mask", "mask" },
	{ "id", "id" },
};

static void translate_cli_error(char *err, size_t errlen)
{
	char in[CONFIG_ERR_MAX];
	const char *rest, *path = NULL;
	size_t word;

	if (!err || errlen == 0)
		return;
	snprintf(in, sizeof(in), "%s", err);
	if (strncmp(in, "Only one of --serial and --console can be tty", 45) == 0) {
		snprintf(err, errlen, "serial.mode, console.mode: only one of them can be Tty");
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(cli_sections); i++) {
		size_t n = strlen(cli_sections[i].option);

		if (strncmp(in, cli_sections[i].option, n) == 0 && in[n] == ':') {
			path = cli_sections[i].path;
			rest = in + n + 1 + (in[n + 1] == ' ');
			break;
		}
	}
	if (!path)
		return;
	word = strspn(rest, "abcdefghijklmnopqrstuvwxyz_");
	if (word > 0 && rest[word] == ' ') {
		for (size_t i = 0; i < ARRAY_SIZE(cli_keys); i++) {
			if (strlen(cli_keys[i].option) == word &&
			    strncmp(rest, cli_keys[i].option, word) == 0) {
				snprintf(err, errlen, "%s.%s: %s", path, cli_keys[i].path,
					 rest + word + 1);
				return;
			}
		}
	}
	snprintf(err, errlen, "%s: %s", path, rest);
}

static int read_vm_config(const struct json_reader *top, struct vm_config *cfg)
{
	int rc;

	rc = read_cpus(top, &cfg->cpus);
	if (rc == 0)
		rc = read_memory(top, &cfg->memory);
	if (rc == 0)
		rc = read_payload(top, &cfg->payload);
	if (rc == 0)
		rc = read_rng(top, &cfg->rng);
	if (rc == 0)
		rc = read_console(top, "serial", &cfg->serial);
	if (rc == 0)
		rc = read_console(top, "console", &cfg->console);
	if (rc == 0)
		rc = read_devices(top, cfg);
	if (rc == 0)
		rc = read_vsock_balloon(top, cfg);
	if (rc == 0)
		rc = json_read_bool(top, "sys_ctrl", JSON_DEFAULT, &cfg->sys_ctrl);
	if (rc == 0)
		rc = read_landlock(top, cfg);
	if (rc == 0)
		rc = refuse_unsupported(top);
	return rc;
}

/* Messages quote what the client sent: keep them one printable line. */
static void error_one_line(char *err, size_t errlen)
{
	for (size_t i = 0; err && i < errlen && err[i]; i++) {
		if ((unsigned char)err[i] < 0x20 || err[i] == 0x7f)
			err[i] = '?';
	}
}

int vm_config_from_json(const json_t *obj, struct vm_config *ret, char *err, size_t errlen)
{
	struct json_reader top;
	struct vm_config cfg;
	int rc;

	vm_config_init(&cfg);
	rc = json_reader_init(&top, obj, "", err, errlen);
	if (rc == 0)
		rc = read_vm_config(&top, &cfg);
	if (rc == 0 && cfg.payload.firmware)
		rc = error_set(err, errlen, -EINVAL, "payload.firmware: not supported yet");
	if (rc == 0 && !cfg.payload.kernel)
		rc = error_set(err, errlen, -EINVAL, "payload.kernel: missing");
	if (rc == 0)
		rc = vm_config_check_json(&cfg, err, errlen);
	if (rc < 0) {
		error_one_line(err, errlen);
		vm_config_free(&cfg);
		return rc;
	}
	*ret = cfg;
	return 0;
}

int vm_config_check_json(struct vm_config *cfg, char *err, size_t errlen)
{
	int rc = vm_config_validate(cfg, err, errlen);
	if (rc == -EINVAL)
		translate_cli_error(err, errlen);
	if (rc == 0)
		rc = vm_config_assign_ids(cfg);
	if (rc == 0)
		rc = vm_config_validate_ids(cfg, err, errlen);
	error_one_line(err, errlen);
	return rc;
}

int vm_config_devices_from_json(const json_t *obj, struct vm_config *ret, char *err, size_t errlen)
{
	struct json_reader top;
	struct vm_config cfg;
	int rc;

	vm_config_init(&cfg);
	rc = json_reader_init(&top, obj, "", err, errlen);
	if (rc == 0)
		rc = read_devices(&top, &cfg);
	if (rc == 0)
		rc = read_vsock_section(&top, &cfg);
	if (rc < 0) {
		error_one_line(err, errlen);
		vm_config_free(&cfg);
		return rc;
	}
	*ret = cfg;
	return 0;
}

int disk_config_from_json(const json_t *obj, struct disk_config *ret, char *err, size_t errlen)
{
	struct json_reader r;
	struct disk_config d;
	int rc;

	disk_config_init(&d);
	rc = json_reader_init(&r, obj, "", err, errlen);
	if (rc == 0)
		rc = read_disk(&r, &d);
	if (rc < 0) {
		disk_config_free(&d);
		return rc;
	}
	*ret = d;
	return 0;
}

int net_config_from_json(const json_t *obj, struct net_config *ret, char *err, size_t errlen)
{
	struct json_reader r;
	struct net_config n;
	int rc;

	net_config_init(&n);
	rc = json_reader_init(&r, obj, "", err, errlen);
	if (rc == 0)
		rc = read_net(&r, &n);
	if (rc < 0) {
		net_config_free(&n);
		return rc;
	}
	*ret = n;
	return 0;
}

int pmem_config_from_json(const json_t *obj, struct pmem_config *ret, char *err, size_t errlen)
{
	struct json_reader r;
	struct pmem_config p = { 0 };
	int rc;

	rc = json_reader_init(&r, obj, "", err, errlen);
	if (rc == 0)
		rc = read_pmem(&r, &p);
	if (rc < 0) {
		pmem_config_free(&p);
		return rc;
	}
	*ret = p;
	return 0;
}

void vsock_config_clear(struct vsock_config *v)
{
	if (!v)
		return;
	free(v->socket);
	free(v->id);
	memset(v, 0, sizeof(*v));
}

int vsock_config_from_json(const json_t *obj, struct vsock_config *ret, char *err, size_t errlen)
{
	struct json_reader r;
	struct vsock_config v = { 0 };
	int rc;

	rc = json_reader_init(&r, obj, "", err, errlen);
	if (rc == 0)
		rc = read_vsock(&r, &v);
	if (rc < 0) {
		vsock_config_clear(&v);
		return rc;
	}
	*ret = v;
	return 0;
}

int balloon_config_from_json(const json_t *obj, struct balloon_config *ret, char *err,
			     size_t errlen)
{
	struct json_reader r;
	struct balloon_config b = { 0 };
	int rc;

	rc = json_reader_init(&r, obj, "", err, errlen);
	if (rc == 0)
		rc = read_balloon(&r, &b);
	if (rc < 0)
		return rc;
	*ret = b;
	return 0;
}
