/* SPDX-License-Identifier: Apache-2.0 */
/*
 * struct vm_config to VmConfig JSON for vm.info (config/json.h), field for field as Cloud
 * Hypervisor v28 serialises it, except that where v28 writes null for an Option that is None
 * the field is left out: the OpenAPI schema (which clients generate their code from) types
 * those fields without null, and a missing field reads back as the same default.
 */
#include "config/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CH_DEFAULT_MAX_PHYS_BITS 46 /* Cloud Hypervisor's default, which 0 (host's) stands for */
#define CH_DEFAULT_NET_IP	 "192.168.249.1"
#define CH_DEFAULT_NET_MASK	 "255.255.255.0"

/* json_pack's "I" takes a json_int_t; values above INT64_MAX never parse in, so none go out. */
static json_int_t jint(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v;
}

static json_t *token_bucket_to_json(const struct token_bucket_config *b)
{
	if (!b->size && !b->one_time_burst && !b->refill_time)
		return json_null();
	return json_pack("{s:I, s:I, s:I}", "size", jint(b->size), "one_time_burst",
			 jint(b->one_time_burst), "refill_time", jint(b->refill_time));
}

static json_t *rate_limiter_to_json(const struct rate_limiter_config *rl)
{
	static const struct rate_limiter_config none;

	if (memcmp(rl, &none, sizeof(none)) == 0)
		return json_null();
	return json_pack("{s:o, s:o}", "bandwidth", token_bucket_to_json(&rl->bandwidth), "ops",
			 token_bucket_to_json(&rl->ops));
}

/* Removes the null members of every object in @j (our own construction: depth ≤ 4). */
static json_t *strip_nulls(json_t *j)
{
	const char *key;
	json_t *v;
	void *tmp;
	size_t i;

	if (json_is_object(j)) {
		json_object_foreach_safe(j, tmp, key, v)
		{
			if (json_is_null(v))
				json_object_del(j, key);
			else
				strip_nulls(v);
		}
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
		{
			strip_nulls(v);
		}
	}
	return j;
}

static json_t *disk_json(const struct disk_config *d)
{
	json_t *o =
		json_pack("{s:s?, s:b, s:b, s:b, s:i, s:i, s:b, s:s?, s:o, s:s?, s:b, s:i}", "path",
			  d->path, "readonly", d->readonly, "direct", d->direct, "iommu", d->iommu,
			  "num_queues", d->num_queues, "queue_size", d->queue_size, "vhost_user",
			  d->vhost_user, "vhost_socket", d->vhost_socket, "rate_limiter_config",
			  rate_limiter_to_json(&d->rate_limiter), "id", d->id, "disable_io_uring",
			  d->disable_io_uring, "pci_segment", d->pci_segment);

	/* A later Cloud Hypervisor field; written only when set, as v28 does not know it. */
	if (o && d->serial && json_object_set_new(o, "serial", json_string(d->serial)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *net_fds_to_json(const struct net_config *n)
{
	json_t *a;

	if (n->num_fds == 0)
		return json_null();
	a = json_array();
	for (unsigned i = 0; a && i < n->num_fds; i++) {
		if (json_array_append_new(a, json_integer(n->fds[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

json_t *disk_config_to_json(const struct disk_config *d)
{
	return strip_nulls(disk_json(d));
}

static json_t *net_json(const struct net_config *n)
{
	json_t *mtu = n->mtu ? json_integer(n->mtu) : json_null();

	return json_pack("{s:s?, s:s, s:s, s:s?, s:s?, s:o, s:b, s:i, s:i, s:b, s:s?, s:s, s:s?, "
			 "s:o, s:o, s:i}",
			 "tap", n->tap, "ip", n->ip ? n->ip : CH_DEFAULT_NET_IP, "mask",
			 n->mask ? n->mask : CH_DEFAULT_NET_MASK, "mac", n->mac, "host_mac",
			 n->host_mac, "mtu", mtu, "iommu", n->iommu, "num_queues", n->num_queues,
			 "queue_size", n->queue_size, "vhost_user", n->vhost_user, "vhost_socket",
			 n->vhost_socket, "vhost_mode", "Client", "id", n->id, "fds",
			 net_fds_to_json(n), "rate_limiter_config",
			 rate_limiter_to_json(&n->rate_limiter), "pci_segment", n->pci_segment);
}

json_t *net_config_to_json(const struct net_config *n)
{
	return strip_nulls(net_json(n));
}

json_t *pmem_config_to_json(const struct pmem_config *p)
{
	json_t *size = p->size ? json_integer(jint(p->size)) : json_null();

	return json_pack("{s:s?, s:o, s:b, s:b, s:s?, s:i}", "file", p->file, "size", size, "iommu",
			 p->iommu, "discard_writes", p->discard_writes, "id", p->id, "pci_segment",
			 p->pci_segment);
}

json_t *vsock_config_to_json(const struct vsock_config *v)
{
	return strip_nulls(json_pack("{s:I, s:s?, s:b, s:s?, s:i}", "cid", jint(v->cid), "socket",
				     v->socket, "iommu", v->iommu, "id", v->id, "pci_segment",
				     v->pci_segment));
}

static json_t *cpus_to_json(const struct cpus_config *c)
{
	const struct cpu_topology *t = &c->topology;
	json_t *topology = json_null();

	if (t->threads_per_core || t->cores_per_die || t->dies_per_package || t->packages)
		topology =
			json_pack("{s:i, s:i, s:i, s:i}", "threads_per_core", t->threads_per_core,
				  "cores_per_die", t->cores_per_die, "dies_per_package",
				  t->dies_per_package, "packages", t->packages);
	return json_pack("{s:I, s:I, s:o, s:b, s:i, s:n, s:{s:b}}", "boot_vcpus",
			 (json_int_t)c->boot_vcpus, "max_vcpus", (json_int_t)c->max_vcpus,
			 "topology", topology, "kvm_hyperv", c->kvm_hyperv, "max_phys_bits",
			 c->max_phys_bits ? c->max_phys_bits : CH_DEFAULT_MAX_PHYS_BITS, "affinity",
			 "features", "amx", 0);
}

static json_t *memory_to_json(const struct memory_config *m)
{
	json_t *hps = m->hugepage_size ? json_integer(jint(m->hugepage_size)) : json_null();

	return json_pack("{s:I, s:b, s:s, s:n, s:n, s:b, s:b, s:o, s:b, s:n, s:b}", "size",
			 jint(m->size), "mergeable", m->mergeable, "hotplug_method", "Acpi",
			 "hotplug_size", "hotplugged_size", "shared", m->shared, "hugepages",
			 m->hugepages, "hugepage_size", hps, "prefault", m->prefault, "zones",
			 "thp", m->thp);
}

static json_t *payload_to_json(const struct payload_config *p)
{
	if (!p->firmware && !p->kernel && !p->cmdline && !p->initramfs)
		return json_null();
	return json_pack("{s:s?, s:s?, s:s?, s:s?}", "firmware", p->firmware, "kernel", p->kernel,
			 "cmdline", p->cmdline, "initramfs", p->initramfs);
}

static json_t *console_to_json(const struct console_config *c)
{
	return json_pack("{s:s?, s:s, s:b}", "file", c->file, "mode", console_mode_name(c->mode),
			 "iommu", c->iommu);
}

/* An array of @n devices, or null when there are none (Cloud Hypervisor's None). */
static json_t *devices_to_json(const void *base, size_t stride, unsigned n,
			       json_t *(*one)(const void *))
{
	json_t *a;

	if (n == 0)
		return json_null();
	a = json_array();
	for (unsigned i = 0; a && i < n; i++) {
		if (json_array_append_new(a, one((const char *)base + i * stride)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *disk_one(const void *d)
{
	return disk_json(d);
}

static json_t *net_one(const void *n)
{
	return net_json(n);
}

static json_t *pmem_one(const void *p)
{
	return pmem_config_to_json(p);
}

static json_t *balloon_to_json(const struct balloon_config *b)
{
	if (!b)
		return json_null();
	return json_pack("{s:I, s:b, s:b}", "size", jint(b->size), "deflate_on_oom",
			 b->deflate_on_oom, "free_page_reporting", b->free_page_reporting);
}

static int landlock_to_json(json_t *obj, const struct vm_config *cfg)
{
	json_t *rules = json_array();

	for (unsigned i = 0; rules && i < cfg->num_landlock_rules; i++) {
		const struct landlock_rule_config *rule = &cfg->landlock_rules[i];
		if (json_array_append_new(rules, json_pack("{s:s, s:s}", "path", rule->path,
							   "access", rule->access)) < 0) {
			json_decref(rules);
			rules = NULL;
		}
	}
	if (!rules || json_object_set_new(obj, "landlock_rules", rules) < 0)
		return -ENOMEM;
	return json_object_set_new(obj, "landlock_enable", json_true()) < 0 ? -ENOMEM : 0;
}

json_t *vm_config_to_json(const struct vm_config *cfg)
{
	json_t *rng = json_pack("{s:s, s:b}", "src", config_rng_src(cfg), "iommu", cfg->rng.iommu);
	json_t *obj;

	/* json_pack's "o" takes each reference, also when it fails (a NULL among them). */
	obj = strip_nulls(json_pack(
		"{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:n, s:o, s:o, s:o, s:n, s:n, s:n, s:o, s:b, "
		"s:n, s:n, s:b, s:n, s:n}",
		"cpus", cpus_to_json(&cfg->cpus), "memory", memory_to_json(&cfg->memory), "payload",
		payload_to_json(&cfg->payload), "disks",
		devices_to_json(cfg->disks, sizeof(cfg->disks[0]), cfg->num_disks, disk_one), "net",
		devices_to_json(cfg->nets, sizeof(cfg->nets[0]), cfg->num_nets, net_one), "rng",
		rng, "balloon", balloon_to_json(cfg->balloon), "fs", "pmem",
		devices_to_json(cfg->pmems, sizeof(cfg->pmems[0]), cfg->num_pmems, pmem_one),
		"serial", console_to_json(&cfg->serial), "console", console_to_json(&cfg->console),
		"devices", "user_devices", "vdpa", "vsock",
		cfg->vsock ? vsock_config_to_json(cfg->vsock) : json_null(), "iommu", 0, "sgx_epc",
		"numa", "watchdog", 0, "platform", "tpm"));
	/* CubeSandbox's extension: only when on, so that a plain config reads as Cloud
	 * Hypervisor's. */
	if (obj && cfg->sys_ctrl && json_object_set_new(obj, "sys_ctrl", json_true()) < 0) {
		json_decref(obj);
		obj = NULL;
	}
	/* Cloud Hypervisor v41's fields, likewise only when Landlock is on (a snapshot's
	 * config.json keeps them: the restored VM is confined again). */
	if (obj && cfg->landlock_enable && landlock_to_json(obj, cfg) < 0) {
		json_decref(obj);
		obj = NULL;
	}
	return obj;
}
