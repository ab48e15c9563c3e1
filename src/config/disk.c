/* SPDX-License-Identifier: Apache-2.0 */
/*
 * --disk: Cloud Hypervisor v28's DiskConfig sub-options, and the checks that need the whole
 * list of disks (ids, counts). Opening the image is the device's business (devices/block).
 */
#include "config/config.h"
#include "config/kv.h"
#include "util/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define OPT "--disk"

static int set_u16(uint16_t *slot, const struct kv *kv, char *err, size_t errlen)
{
	uint64_t v;
	int r = kv_u64(OPT, kv, UINT16_MAX, &v, err, errlen);

	if (r == 0)
		*slot = (uint16_t)v;
	return r;
}

/* One key of a --disk list into @d. */
static int disk_key(struct disk_config *d, const struct kv *kv, char *err, size_t errlen)
{
	const char *k = kv->key;
	bool matched, ignored;
	int r;

	r = kv_rate_limiter(OPT, kv, &d->rate_limiter, &matched, err, errlen);
	if (r < 0 || matched)
		return r;
	if (strcmp(k, "path") == 0)
		return kv_str(OPT, kv, &d->path, err, errlen);
	if (strcmp(k, "readonly") == 0)
		return kv_bool(OPT, kv, &d->readonly, err, errlen);
	if (strcmp(k, "direct") == 0)
		return kv_bool(OPT, kv, &d->direct, err, errlen);
	if (strcmp(k, "iommu") == 0)
		return kv_bool(OPT, kv, &d->iommu, err, errlen);
	if (strcmp(k, "num_queues") == 0)
		return set_u16(&d->num_queues, kv, err, errlen);
	if (strcmp(k, "queue_size") == 0)
		return set_u16(&d->queue_size, kv, err, errlen);
	if (strcmp(k, "vhost_user") == 0)
		return kv_bool(OPT, kv, &d->vhost_user, err, errlen);
	if (strcmp(k, "socket") == 0)
		return kv_str(OPT, kv, &d->vhost_socket, err, errlen);
	if (strcmp(k, "id") == 0)
		return kv_str(OPT, kv, &d->id, err, errlen);
	if (strcmp(k, "serial") == 0)
		return kv_str(OPT, kv, &d->serial, err, errlen);
	if (strcmp(k, "pci_segment") == 0)
		return set_u16(&d->pci_segment, kv, err, errlen);
	/* Cloud Hypervisor's hidden test switch: the worker-pool engine instead of io_uring. */
	if (strcmp(k, "_disable_io_uring") == 0)
		return kv_bool(OPT, kv, &d->disable_io_uring, err, errlen);
	/* Only meaningful with vhost_user, which is refused: parsed so its syntax is checked. */
	if (strcmp(k, "poll_queue") == 0)
		return kv_bool(OPT, kv, &ignored, err, errlen);
	return error_set(err, errlen, -EINVAL, OPT ": unknown key '%s'", k);
}

int config_parse_disk(struct vm_config *cfg, const char *arg, char *err, size_t errlen)
{
	struct disk_config d;
	struct kv_list l;
	int r;

	if (cfg->num_disks >= CONFIG_MAX_DISKS)
		return error_set(err, errlen, -EINVAL, OPT ": more than %u disks",
				 CONFIG_MAX_DISKS);
	disk_config_init(&d);
	r = kv_split(OPT, arg, &l, err, errlen);
	for (unsigned i = 0; r >= 0 && i < l.n; i++)
		r = disk_key(&d, &l.items[i], err, errlen);
	kv_free(&l);
	if (r < 0) {
		disk_config_free(&d);
		return r;
	}
	cfg->disks[cfg->num_disks++] = d;
	return 0;
}

static int validate_disk(const struct disk_config *d, char *err, size_t errlen)
{
	const struct rate_limiter_config *rl = &d->rate_limiter;

	if (d->vhost_user)
		return error_set(err, errlen, -EINVAL, OPT ": vhost_user is not supported yet");
	if (!d->path || !d->path[0])
		return error_set(err, errlen, -EINVAL, OPT ": path is required");
	if (d->num_queues < 1 || d->num_queues > CONFIG_MAX_DISK_QUEUES)
		return error_set(err, errlen, -EINVAL, OPT ": num_queues must be 1 to %u (got %u)",
				 CONFIG_MAX_DISK_QUEUES, d->num_queues);
	if (d->queue_size < 2 || d->queue_size > CONFIG_MAX_DISK_QUEUE_SIZE ||
	    (d->queue_size & (d->queue_size - 1)))
		return error_set(err, errlen, -EINVAL,
				 OPT ": queue_size must be a power of two from 2 to %u (got %u)",
				 CONFIG_MAX_DISK_QUEUE_SIZE, d->queue_size);
	if (d->pci_segment != 0)
		return error_set(err, errlen, -EINVAL,
				 OPT ": pci_segment %u does not exist (only segment 0)",
				 d->pci_segment);
	if (d->iommu)
		return error_set(err, errlen, -EINVAL, OPT ": iommu=on is not supported yet");
	if (d->serial && strlen(d->serial) > CONFIG_MAX_DISK_SERIAL)
		return error_set(err, errlen, -EINVAL,
				 OPT ": serial is longer than %u bytes (virtio-blk's GET_ID)",
				 CONFIG_MAX_DISK_SERIAL);
	if ((rl->bandwidth.size != 0) != (rl->bandwidth.refill_time != 0) ||
	    (rl->ops.size != 0) != (rl->ops.refill_time != 0))
		return error_set(err, errlen, -EINVAL,
				 OPT ": a rate limit needs both its size and its refill_time");
	return 0;
}

int config_validate_disks(const struct vm_config *cfg, char *err, size_t errlen)
{
	for (unsigned i = 0; i < cfg->num_disks; i++) {
		const struct disk_config *d = &cfg->disks[i];
		int r = validate_disk(d, err, errlen);

		if (r < 0)
			return r;
		for (unsigned j = 0; d->id && j < i; j++) {
			if (cfg->disks[j].id && strcmp(cfg->disks[j].id, d->id) == 0)
				return error_set(err, errlen, -EINVAL, OPT ": id '%s' used twice",
						 d->id);
		}
	}
	return 0;
}
