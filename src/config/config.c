/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Defaults, validation and Cloud Hypervisor's "key=value,key=value" sub-option syntax.
 * Each sub-option parser starts from the defaults (an omitted key means its default, as in
 * Cloud Hypervisor) and commits to the config only when the whole argument parsed.
 */
#include "config/config.h"
#include "config/ids.h"
#include "config/kv.h"
#include "util/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#define X86_HUGEPAGE_2M (2ULL << 20)
#define X86_HUGEPAGE_1G (1ULL << 30)

static void cpus_defaults(struct cpus_config *c)
{
	*c = (struct cpus_config){ .boot_vcpus = 1, .max_vcpus = 1 };
}

static void memory_defaults(struct memory_config *m)
{
	*m = (struct memory_config){ .size = CONFIG_DEFAULT_MEM, .thp = true };
}

void vm_config_init(struct vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cpus_defaults(&cfg->cpus);
	memory_defaults(&cfg->memory);
	cfg->serial.mode = CONSOLE_NULL;
	cfg->console.mode = CONSOLE_TTY;
}

void disk_config_init(struct disk_config *d)
{
	memset(d, 0, sizeof(*d));
	d->num_queues = CONFIG_DEFAULT_DISK_QUEUES;
	d->queue_size = CONFIG_DEFAULT_DISK_QUEUE_SIZE;
}

void disk_config_free(struct disk_config *d)
{
	free(d->path);
	free(d->vhost_socket);
	free(d->id);
	free(d->serial);
	memset(d, 0, sizeof(*d));
}

void net_config_init(struct net_config *n)
{
	memset(n, 0, sizeof(*n));
	n->num_queues = CONFIG_DEFAULT_NET_QUEUES;
	n->queue_size = CONFIG_DEFAULT_NET_QUEUE_SIZE;
}

void net_config_free(struct net_config *n)
{
	free(n->tap);
	free(n->ip);
	free(n->mask);
	free(n->mac);
	free(n->host_mac);
	free(n->vhost_socket);
	free(n->id);
	for (unsigned i = 0; i < n->num_fds; i++)
		close(n->fds[i]);
	memset(n, 0, sizeof(*n));
}

void pmem_config_free(struct pmem_config *p)
{
	free(p->file);
	free(p->id);
	memset(p, 0, sizeof(*p));
}

void vsock_config_free(struct vsock_config *v)
{
	if (!v)
		return;
	free(v->socket);
	free(v->id);
	free(v);
}

/* "_disk0": Cloud Hypervisor's default ids, numbered per kind in config order. */
static int assign_id(char **id, const char *prefix, unsigned index)
{
	if (*id)
		return 0;
	if (asprintf(id, "_%s%u", prefix, index) < 0) {
		*id = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Cloud Hypervisor's default guest MAC, drawn once into the config so that the guest keeps it
 * across reboots and vm.info shows it: random, locally administered, unicast. */
static int assign_mac(char **mac)
{
	uint8_t m[6];

	if (*mac)
		return 0;
	if (getrandom(m, sizeof(m), 0) != (ssize_t)sizeof(m))
		return -EIO;
	m[0] = (uint8_t)((m[0] & ~0x01) | 0x02);
	if (asprintf(mac, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]) <
	    0) {
		*mac = NULL;
		return -ENOMEM;
	}
	return 0;
}

int vm_config_assign_ids(struct vm_config *cfg)
{
	int r = 0;

	for (unsigned i = 0; r == 0 && i < cfg->num_disks; i++)
		r = assign_id(&cfg->disks[i].id, "disk", i);
	for (unsigned i = 0; r == 0 && i < cfg->num_nets; i++) {
		r = assign_id(&cfg->nets[i].id, "net", i);
		if (r == 0)
			r = assign_mac(&cfg->nets[i].mac);
	}
	for (unsigned i = 0; r == 0 && i < cfg->num_pmems; i++)
		r = assign_id(&cfg->pmems[i].id, "pmem", i);
	if (r == 0 && cfg->vsock)
		r = assign_id(&cfg->vsock->id, "vsock", 0);
	return r;
}

void vm_config_free(struct vm_config *cfg)
{
	if (!cfg)
		return;
	for (unsigned i = 0; i < cfg->num_disks; i++)
		disk_config_free(&cfg->disks[i]);
	for (unsigned i = 0; i < cfg->num_nets; i++)
		net_config_free(&cfg->nets[i]);
	for (unsigned i = 0; i < cfg->num_pmems; i++)
		pmem_config_free(&cfg->pmems[i]);
	cfg->num_disks = cfg->num_nets = cfg->num_pmems = 0;
	vsock_config_free(cfg->vsock);
	cfg->vsock = NULL;
	free(cfg->balloon);
	cfg->balloon = NULL;
	for (unsigned i = 0; i < cfg->num_landlock_rules; i++)
		landlock_rule_free(&cfg->landlock_rules[i]);
	cfg->num_landlock_rules = 0;
	cfg->landlock_enable = false;
	free(cfg->payload.kernel);
	free(cfg->payload.initramfs);
	free(cfg->payload.cmdline);
	free(cfg->payload.firmware);
	free(cfg->serial.file);
	free(cfg->console.file);
	free(cfg->rng.src);
	cfg->rng = (struct rng_config){ 0 };
	cfg->payload = (struct payload_config){ 0 };
	cfg->serial.file = NULL;
	cfg->console.file = NULL;
}

const char *console_mode_name(enum console_mode mode)
{
	switch (mode) {
	case CONSOLE_OFF:
		return "Off";
	case CONSOLE_NULL:
		return "Null";
	case CONSOLE_TTY:
		return "Tty";
	case CONSOLE_FILE:
		return "File";
	case CONSOLE_PTY:
		return "Pty";
	}
	return "Unknown";
}

static bool is_pow2(uint64_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

static int validate_cpus(const struct cpus_config *c, char *err, size_t errlen)
{
	const struct cpu_topology *t = &c->topology;

	if (c->boot_vcpus < 1 || c->boot_vcpus > CONFIG_MAX_VCPUS)
		return error_set(err, errlen, -EINVAL, "--cpus: boot must be between 1 and %u",
				 CONFIG_MAX_VCPUS);
	if (c->max_vcpus < 1 || c->max_vcpus > CONFIG_MAX_VCPUS)
		return error_set(err, errlen, -EINVAL, "--cpus: max must be between 1 and %u",
				 CONFIG_MAX_VCPUS);
	if (c->boot_vcpus > c->max_vcpus)
		return error_set(err, errlen, -EINVAL, "--cpus: boot=%u is more than max=%u",
				 c->boot_vcpus, c->max_vcpus);
	if (t->threads_per_core || t->cores_per_die || t->dies_per_package || t->packages) {
		uint32_t product;

		if (!t->threads_per_core || !t->cores_per_die || !t->dies_per_package ||
		    !t->packages)
			return error_set(err, errlen, -EINVAL,
					 "--cpus: no part of topology can be zero");
		product = (uint32_t)t->threads_per_core * t->cores_per_die * t->dies_per_package *
			  t->packages;
		if (product != c->max_vcpus)
			return error_set(err, errlen, -EINVAL,
					 "--cpus: topology %u:%u:%u:%u gives %u vCPUs, but max=%u",
					 t->threads_per_core, t->cores_per_die, t->dies_per_package,
					 t->packages, product, c->max_vcpus);
	}
	if (c->max_phys_bits > 64)
		return error_set(err, errlen, -EINVAL, "--cpus: max_phys_bits must be at most 64");
	return 0;
}

static int validate_memory(const struct memory_config *m, char *err, size_t errlen)
{
	char a[32], b[32];

	if (m->size % (4 * KiB) != 0)
		return error_set(err, errlen, -EINVAL,
				 "--memory: size must be a multiple of 4 KiB");
	if (m->size < CONFIG_MIN_MEM) {
		format_size(a, sizeof(a), m->size);
		format_size(b, sizeof(b), CONFIG_MIN_MEM);
		return error_set(err, errlen, -EINVAL,
				 "--memory: size %s is below the minimum of %s", a, b);
	}
	if (m->hugepage_size) {
		if (!m->hugepages)
			return error_set(err, errlen, -EINVAL,
					 "--memory: hugepage_size needs hugepages=on");
		/* The only huge page sizes x86_64 has; anything else cannot be mapped. */
		if (!is_pow2(m->hugepage_size) ||
		    (m->hugepage_size != X86_HUGEPAGE_2M && m->hugepage_size != X86_HUGEPAGE_1G))
			return error_set(err, errlen, -EINVAL,
					 "--memory: hugepage_size must be 2M or 1G");
	}
	if (m->hugepages) {
		uint64_t hp = m->hugepage_size ? m->hugepage_size : X86_HUGEPAGE_2M;

		if (m->size % hp != 0) {
			format_size(a, sizeof(a), hp);
			return error_set(
				err, errlen, -EINVAL,
				"--memory: hugepages=on needs size to be a multiple of the "
				"huge page size (%s)",
				a);
		}
	}
	return 0;
}

static int validate_console(const struct console_config *c, const char *option, char *err,
			    size_t errlen)
{
	if ((unsigned)c->mode > CONSOLE_PTY)
		return error_set(err, errlen, -EINVAL, "%s: invalid mode", option);
	if (c->mode == CONSOLE_FILE && (!c->file || !c->file[0]))
		return error_set(err, errlen, -EINVAL, "%s: file mode needs a path", option);
	return 0;
}

static int validate_rng(const struct rng_config *r, char *err, size_t errlen)
{
	if (r->src && !r->src[0])
		return error_set(err, errlen, -EINVAL, "--rng: src= needs a path");
	if (r->iommu)
		return error_set(err, errlen, -EINVAL, "--rng: iommu=on is not supported yet");
	return 0;
}

int vm_config_validate(const struct vm_config *cfg, char *err, size_t errlen)
{
	const struct payload_config *p = &cfg->payload;
	int r;

	if (p->firmware)
		return error_set(err, errlen, -EINVAL, "--firmware: not supported yet");
	if (!p->kernel || !p->kernel[0])
		return error_set(err, errlen, -EINVAL, "--kernel: required");
	if (p->initramfs && !p->initramfs[0])
		return error_set(err, errlen, -EINVAL, "--initramfs: empty path");
	if (p->cmdline && strlen(p->cmdline) > CONFIG_MAX_CMDLINE - 1)
		return error_set(err, errlen, -EINVAL,
				 "--cmdline: %zu bytes is longer than the maximum of %u",
				 strlen(p->cmdline), CONFIG_MAX_CMDLINE - 1);

	r = validate_cpus(&cfg->cpus, err, errlen);
	if (r < 0)
		return r;
	r = validate_memory(&cfg->memory, err, errlen);
	if (r < 0)
		return r;
	r = validate_console(&cfg->serial, "--serial", err, errlen);
	if (r < 0)
		return r;
	r = validate_console(&cfg->console, "--console", err, errlen);
	if (r < 0)
		return r;
	r = validate_rng(&cfg->rng, err, errlen);
	if (r < 0)
		return r;
	r = config_validate_disks(cfg, err, errlen);
	if (r == 0)
		r = config_validate_nets(cfg, err, errlen);
	if (r == 0)
		r = vsock_config_validate(cfg->vsock, err, errlen);
	if (r == 0)
		r = config_validate_balloon(cfg, err, errlen);
	if (r == 0)
		r = config_validate_pmems(cfg, err, errlen);
	for (unsigned i = 0; r == 0 && i < cfg->num_landlock_rules; i++)
		r = landlock_rule_validate(&cfg->landlock_rules[i], err, errlen);
	/* Ids the user gave, across every kind of device (the defaults come later and are
	 * unique by construction). */
	if (r == 0)
		r = vm_config_validate_ids(cfg, err, errlen);
	if (r < 0)
		return r;
	/*
	 * Cloud Hypervisor v28 refuses this too ("Console mode tty specified for both serial and
	 * console"): both devices would read the same keystrokes from one terminal.
	 */
	if (cfg->serial.mode == CONSOLE_TTY && cfg->console.mode == CONSOLE_TTY)
		return error_set(err, errlen, -EINVAL,
				 "Only one of --serial and --console can be tty (the default is "
				 "--console tty; add --console off)");
	return 0;
}

static int parse_topology(const struct kv *kv, struct cpu_topology *ret, char *err, size_t errlen)
{
	uint8_t parts[4];
	const char *p;
	int r = kv_need_value("--cpus", kv, err, errlen);

	if (r < 0)
		return r;
	p = kv->value;
	for (unsigned i = 0; i < 4; i++) {
		char num[8];
		size_t n = strcspn(p, ":");
		char want_end = i < 3 ? ':' : '\0';
		uint64_t v = 0;

		if (p[n] != want_end || n >= sizeof(num))
			goto bad;
		memcpy(num, p, n);
		num[n] = '\0';
		if (parse_u64(num, UINT8_MAX, &v) < 0 || v == 0)
			goto bad;
		parts[i] = (uint8_t)v;
		p += n + 1;
	}
	*ret = (struct cpu_topology){ .threads_per_core = parts[0],
				      .cores_per_die = parts[1],
				      .dies_per_package = parts[2],
				      .packages = parts[3] };
	return 0;
bad:
	return error_set(err, errlen, -EINVAL,
			 "--cpus: invalid topology '%s' (expected "
			 "threads_per_core:cores_per_die:dies_per_package:packages, each 1 to 255)",
			 kv->value);
}

int config_parse_cpus(struct vm_config *cfg, const char *arg, char *err, size_t errlen)
{
	static const char *const unsupported[] = { "affinity", "features", NULL };
	struct cpus_config c;
	struct kv_list l;
	bool max_given = false;
	uint64_t v;
	int r;

	cpus_defaults(&c);
	r = kv_split("--cpus", arg, &l, err, errlen);
	for (unsigned i = 0; r >= 0 && i < l.n; i++) {
		const struct kv *kv = &l.items[i];

		if (strcmp(kv->key, "boot") == 0) {
			r = kv_u64("--cpus", kv, UINT32_MAX, &v, err, errlen);
			c.boot_vcpus = (uint32_t)v;
		} else if (strcmp(kv->key, "max") == 0) {
			r = kv_u64("--cpus", kv, UINT32_MAX, &v, err, errlen);
			c.max_vcpus = (uint32_t)v;
			max_given = true;
		} else if (strcmp(kv->key, "topology") == 0) {
			r = parse_topology(kv, &c.topology, err, errlen);
		} else if (strcmp(kv->key, "kvm_hyperv") == 0) {
			r = kv_bool("--cpus", kv, &c.kvm_hyperv, err, errlen);
		} else if (strcmp(kv->key, "max_phys_bits") == 0) {
			r = kv_u64("--cpus", kv, UINT8_MAX, &v, err, errlen);
			c.max_phys_bits = (uint8_t)v;
		} else if (key_in(kv->key, unsupported)) {
			r = error_set(err, errlen, -EINVAL, "--cpus: '%s' is not supported yet",
				      kv->key);
		} else {
			r = error_set(err, errlen, -EINVAL, "--cpus: unknown key '%s'", kv->key);
		}
	}
	kv_free(&l);
	if (r < 0)
		return r;
	if (!max_given)
		c.max_vcpus = c.boot_vcpus;
	cfg->cpus = c;
	return 0;
}

int config_parse_memory(struct vm_config *cfg, const char *arg, char *err, size_t errlen)
{
	static const char *const unsupported[] = { "hotplug_method", "hotplug_size",
						   "hotplugged_size", "zones", NULL };
	struct memory_config m;
	struct kv_list l;
	int r;

	memory_defaults(&m);
	r = kv_split("--memory", arg, &l, err, errlen);
	for (unsigned i = 0; r >= 0 && i < l.n; i++) {
		const struct kv *kv = &l.items[i];

		if (strcmp(kv->key, "size") == 0)
			r = kv_size("--memory", kv, &m.size, err, errlen);
		else if (strcmp(kv->key, "hugepage_size") == 0)
			r = kv_size("--memory", kv, &m.hugepage_size, err, errlen);
		else if (strcmp(kv->key, "shared") == 0)
			r = kv_bool("--memory", kv, &m.shared, err, errlen);
		else if (strcmp(kv->key, "hugepages") == 0)
			r = kv_bool("--memory", kv, &m.hugepages, err, errlen);
		else if (strcmp(kv->key, "prefault") == 0)
			r = kv_bool("--memory", kv, &m.prefault, err, errlen);
		else if (strcmp(kv->key, "thp") == 0)
			r = kv_bool("--memory", kv, &m.thp, err, errlen);
		else if (strcmp(kv->key, "mergeable") == 0)
			r = kv_bool("--memory", kv, &m.mergeable, err, errlen);
		else if (key_in(kv->key, unsupported))
			r = error_set(err, errlen, -EINVAL, "--memory: '%s' is not supported yet",
				      kv->key);
		else
			r = error_set(err, errlen, -EINVAL, "--memory: unknown key '%s'", kv->key);
	}
	kv_free(&l);
	if (r < 0)
		return r;
	cfg->memory = m;
	return 0;
}

static int console_mode_word(const char *word, enum console_mode *ret)
{
	static const struct {
		const char *name;
		enum console_mode mode;
	} modes[] = {
		{ "off", CONSOLE_OFF },
		{ "null", CONSOLE_NULL },
		{ "tty", CONSOLE_TTY },
		{ "pty", CONSOLE_PTY },
	};

	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		if (strcasecmp(word, modes[i].name) == 0) {
			*ret = modes[i].mode;
			return 0;
		}
	}
	return -EINVAL;
}

int config_parse_console(struct console_config *con, const char *option, const char *arg, char *err,
			 size_t errlen)
{
	struct console_config c = { .mode = CONSOLE_NULL };
	struct kv_list l;
	bool have_mode = false;
	int r;

	r = kv_split(option, arg, &l, err, errlen);
	for (unsigned i = 0; r >= 0 && i < l.n; i++) {
		const struct kv *kv = &l.items[i];
		enum console_mode mode = CONSOLE_NULL;
		bool is_file = strcasecmp(kv->key, "file") == 0;

		if (strcasecmp(kv->key, "iommu") == 0) {
			r = kv_bool(option, kv, &c.iommu, err, errlen);
			continue;
		}
		if (!is_file && console_mode_word(kv->key, &mode) < 0) {
			if (strcasecmp(kv->key, "socket") == 0)
				r = error_set(err, errlen, -EINVAL,
					      "%s: socket is not supported yet", option);
			else
				r = error_set(
					err, errlen, -EINVAL,
					"%s: invalid mode '%s' (expected off, null, tty, pty or "
					"file=PATH)",
					option, kv->key);
			continue;
		}
		if (have_mode) {
			r = error_set(err, errlen, -EINVAL, "%s: more than one mode given", option);
			continue;
		}
		have_mode = true;
		if (is_file) {
			if (!kv->value || !kv->value[0]) {
				r = error_set(err, errlen, -EINVAL, "%s: file= needs a path",
					      option);
				continue;
			}
			c.mode = CONSOLE_FILE;
			c.file = strdup(kv->value);
			if (!c.file)
				r = -ENOMEM;
		} else if (kv->value) {
			r = error_set(err, errlen, -EINVAL, "%s: '%s' takes no value", option,
				      kv->key);
		} else {
			c.mode = mode;
		}
	}
	kv_free(&l);
	if (r >= 0 && !have_mode)
		r = error_set(err, errlen, -EINVAL,
			      "%s: missing mode (off, null, tty, pty or file=PATH)", option);
	if (r < 0) {
		free(c.file);
		return r;
	}
	free(con->file);
	*con = c;
	return 0;
}

int config_parse_seccomp(struct vm_config *cfg, const char *arg, char *err, size_t errlen)
{
	static const struct {
		const char *word;
		enum seccomp_mode mode;
	} words[] = { { "true", SECCOMP_ON }, { "false", SECCOMP_OFF }, { "log", SECCOMP_LOG } };

	for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
		if (strcmp(arg, words[i].word) == 0) {
			cfg->seccomp = words[i].mode;
			return 0;
		}
	}
	return error_set(err, errlen, -EINVAL,
			 "--seccomp: invalid value '%s' (expected true, false or log)", arg);
}

const char *config_rng_src(const struct vm_config *cfg)
{
	return cfg->rng.src ? cfg->rng.src : CONFIG_DEFAULT_RNG_SRC;
}

int config_parse_rng(struct vm_config *cfg, const char *arg, char *err, size_t errlen)
{
	struct rng_config c = { 0 };
	struct kv_list l;
	int r;

	r = kv_split("--rng", arg, &l, err, errlen);
	for (unsigned i = 0; r >= 0 && i < l.n; i++) {
		const struct kv *kv = &l.items[i];

		if (strcmp(kv->key, "src") == 0) {
			r = kv_need_value("--rng", kv, err, errlen);
			if (r < 0)
				break;
			free(c.src);
			c.src = strdup(kv->value);
			if (!c.src)
				r = -ENOMEM;
		} else if (strcmp(kv->key, "iommu") == 0) {
			r = kv_bool("--rng", kv, &c.iommu, err, errlen);
		} else {
			r = error_set(err, errlen, -EINVAL, "--rng: unknown key '%s'", kv->key);
		}
	}
	kv_free(&l);
	if (r < 0) {
		free(c.src);
		return r;
	}
	free(cfg->rng.src);
	cfg->rng = c;
	return 0;
}
