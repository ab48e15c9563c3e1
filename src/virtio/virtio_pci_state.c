/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Snapshot state of the virtio-PCI transport (virtio.h: virtio_pci_save/virtio_pci_load).
 *
 * Loading checks the whole object into scratch copies first (every ready ring goes through
 * virtq_init on a scratch queue), then restores the PCI function, then writes the registers:
 * a refused state leaves nothing half-applied but what pci_function_load() did.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pci/pci.h"
#include "util/state.h"
#include "util/util.h"
#include "virtio/internal.h"

/* The transport's registers, as saved. */
struct vp_regs {
	uint64_t device_features, driver_features;
	uint32_t dfselect, gfselect;
	uint16_t msix_config, queue_select;
	uint8_t status, config_generation, isr;
};

static const struct state_field vp_regs_fields[] = {
	STATE_U64(struct vp_regs, device_features),
	STATE_U64(struct vp_regs, driver_features),
	STATE_U32(struct vp_regs, dfselect),
	STATE_U32(struct vp_regs, gfselect),
	STATE_U16(struct vp_regs, msix_config),
	STATE_U16(struct vp_regs, queue_select),
	STATE_U8(struct vp_regs, status),
	STATE_U8(struct vp_regs, config_generation),
	STATE_U8(struct vp_regs, isr),
};

/* One queue, as saved. */
struct vp_queue_regs {
	uint16_t size, msix_vector;
	bool enabled, ready, broken, notify_on;
	uint64_t desc, avail, used;
	uint16_t last_avail_idx, used_idx, signalled_used;
};

static const struct state_field vp_queue_fields[] = {
	STATE_U16(struct vp_queue_regs, size),	   STATE_U16(struct vp_queue_regs, msix_vector),
	STATE_BOOL(struct vp_queue_regs, enabled), STATE_BOOL(struct vp_queue_regs, ready),
	STATE_BOOL(struct vp_queue_regs, broken),  STATE_BOOL(struct vp_queue_regs, notify_on),
	STATE_U64(struct vp_queue_regs, desc),	   STATE_U64(struct vp_queue_regs, avail),
	STATE_U64(struct vp_queue_regs, used),	   STATE_U16(struct vp_queue_regs, last_avail_idx),
	STATE_U16(struct vp_queue_regs, used_idx), STATE_U16(struct vp_queue_regs, signalled_used),
};

/* ---- save ---- */

static int vp_queue_save(struct virtio_pci *vp, struct virtio_pci_queue *q, json_t *obj, char *err,
			 size_t errlen)
{
	unsigned held = vp->ops->held ? vp->ops->held(vp->opaque, q->index) : 0;
	uint16_t in_flight = (uint16_t)(q->vq.last_avail_idx - q->vq.used_idx);
	struct vp_queue_regs s = {
		.size = q->size,
		.msix_vector = q->msix_vector,
		.enabled = q->enabled,
		.ready = q->vq.ready,
		.broken = q->vq.broken,
		.notify_on = q->vq.notify_on,
		.desc = q->desc,
		.avail = q->avail,
		.used = q->used,
		/* The held elements are un-popped: the restored device pops them again. */
		.last_avail_idx = (uint16_t)(q->vq.last_avail_idx - held),
		.used_idx = q->vq.used_idx,
		.signalled_used = q->vq.signalled_used,
	};

	if (in_flight != held) {
		snprintf(err, errlen,
			 "%s: queue %u has %u elements in flight, %u held by the device",
			 vp->ops->name, q->index, in_flight, held);
		return -EBUSY;
	}
	return state_save_fields(obj, vp_queue_fields, ARRAY_SIZE(vp_queue_fields), &s);
}

int virtio_pci_save(struct virtio_pci *vp, json_t *obj, char *err, size_t errlen)
{
	struct vp_regs s;
	json_t *pci, *queues;
	int r;

	pthread_mutex_lock(&vp->lock);
	s = (struct vp_regs){
		.device_features = vp->offered,
		.driver_features = vp->driver_features,
		.dfselect = vp->dfselect,
		.gfselect = vp->gfselect,
		.msix_config = vp->msix_config,
		.queue_select = vp->queue_select,
		.status = vp->status,
		.config_generation = vp->config_generation,
		.isr = vp->isr,
	};
	r = state_save_fields(obj, vp_regs_fields, ARRAY_SIZE(vp_regs_fields), &s);
	pci = r == 0 ? state_add_object(obj, "pci") : NULL;
	queues = pci ? state_add_array(obj, "queues") : NULL;
	if (!queues)
		r = -ENOMEM;
	if (r == 0)
		r = pci_function_save(vp->fn, pci);
	for (unsigned i = 0; r == 0 && i < vp->ops->num_queues; i++) {
		json_t *q = state_append_object(queues);

		r = q ? vp_queue_save(vp, &vp->q[i], q, err, errlen) : -ENOMEM;
	}
	pthread_mutex_unlock(&vp->lock);
	if (r == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", vp->ops->name);
	return r;
}

/* ---- load: checks ---- */

static bool vp_vector_ok(const struct virtio_pci *vp, uint16_t v)
{
	return v == VIRTIO_MSI_NO_VECTOR || v < vp_nr_vectors(vp);
}

static int vp_regs_check(const struct virtio_pci *vp, const struct vp_regs *s, char *err,
			 size_t errlen)
{
	uint64_t f = s->driver_features;

	if (s->device_features != vp->offered) {
		snprintf(err, errlen,
			 "field 'device_features': %#llx, but this device offers %#llx (another "
			 "configuration)",
			 (unsigned long long)s->device_features, (unsigned long long)vp->offered);
		return -EINVAL;
	}
	if (!vp_vector_ok(vp, s->msix_config)) {
		snprintf(err, errlen, "field 'msix_config': vector %u of %u", s->msix_config,
			 vp_nr_vectors(vp));
		return -EINVAL;
	}
	if ((s->status & VIRTIO_STATUS_FEATURES_OK) &&
	    ((f & ~vp->offered) || !(f & BIT64(VIRTIO_F_VERSION_1)))) {
		snprintf(err, errlen,
			 "field 'driver_features': %#llx cannot have been accepted (offered %#llx)",
			 (unsigned long long)f, (unsigned long long)vp->offered);
		return -EINVAL;
	}
	if ((s->status & VIRTIO_STATUS_DRIVER_OK) && !(s->status & VIRTIO_STATUS_FEATURES_OK)) {
		snprintf(err, errlen, "field 'status': %#x has DRIVER_OK without FEATURES_OK",
			 s->status);
		return -EINVAL;
	}
	return 0;
}

/* Sets @vq up as the saved queue @s had it: virtq_init() as a driver's enable, then indices. */
static int vp_virtq_restore(const struct virtio_pci *vp, struct virtq *vq, uint64_t features,
			    const struct vp_queue_regs *s)
{
	int r;

	r = virtq_init(vq, vp->mem, s->size, vp->ops->max_queue_size, s->desc, s->avail, s->used,
		       !!(features & BIT64(VIRTIO_F_EVENT_IDX)),
		       !!(features & BIT64(VIRTIO_F_INDIRECT_DESC)));
	if (r < 0)
		return -EINVAL;
	r = virtq_set_indices(vq, s->last_avail_idx, s->used_idx);
	if (r < 0)
		return -ERANGE;
	vq->signalled_used = s->signalled_used;
	/* The ring in guest memory already says what notify_on told the driver. */
	vq->notify_on = s->notify_on;
	return 0;
}

/* One queue's saved state into @ret, checked against @s (the registers) and guest memory. */
static int vp_queue_check(const struct virtio_pci *vp, const struct vp_regs *s, const json_t *obj,
			  struct vp_queue_regs *ret, char *err, size_t errlen)
{
	struct virtq scratch;
	int r;

	r = state_load_fields(obj, vp_queue_fields, ARRAY_SIZE(vp_queue_fields), ret, err, errlen);
	if (r < 0)
		return r;
	if (!vp_vector_ok(vp, ret->msix_vector)) {
		snprintf(err, errlen, "field 'msix_vector': vector %u of %u", ret->msix_vector,
			 vp_nr_vectors(vp));
		return -EINVAL;
	}
	/* A queue breaks only when ready, and the transport then needs reset. */
	if (ret->broken && (!ret->ready || !(s->status & VIRTIO_STATUS_NEEDS_RESET))) {
		snprintf(err, errlen, "field 'broken': set on a queue %s",
			 ret->ready ? "of a device that does not need reset" : "that is not ready");
		return -EINVAL;
	}
	if (!ret->ready)
		return 0;
	if (!ret->enabled || !(s->status & VIRTIO_STATUS_FEATURES_OK)) {
		snprintf(err, errlen, "field 'ready': set on a queue %s",
			 ret->enabled ? "before FEATURES_OK" : "not enabled");
		return -EINVAL;
	}
	memset(&scratch, 0, sizeof(scratch));
	r = vp_virtq_restore(vp, &scratch, s->driver_features, ret);
	if (r == -EINVAL)
		snprintf(err, errlen,
			 "fields 'size', 'desc', 'avail', 'used': ring of %u entries at %#llx, "
			 "%#llx, %#llx rejected (size, alignment or placement in guest RAM)",
			 ret->size, (unsigned long long)ret->desc, (unsigned long long)ret->avail,
			 (unsigned long long)ret->used);
	else if (r < 0)
		snprintf(err, errlen,
			 "fields 'last_avail_idx', 'used_idx': %u and %u leave more than %u "
			 "elements in flight",
			 ret->last_avail_idx, ret->used_idx, ret->size);
	return r < 0 ? -EINVAL : 0;
}

/* ---- load: apply (lock held; everything checked) ---- */

static void vp_queue_apply(struct virtio_pci *vp, struct virtio_pci_queue *q,
			   const struct vp_queue_regs *s)
{
	q->size = s->size;
	q->msix_vector = s->msix_vector;
	q->enabled = s->enabled;
	q->desc = s->desc;
	q->avail = s->avail;
	q->used = s->used;
	if (!s->ready)
		return;
	/* Checked on a scratch queue: the same arguments cannot fail here. */
	(void)vp_virtq_restore(vp, &q->vq, vp->driver_features, s);
	if (s->broken) {
		q->vq.broken = true;
		snprintf(q->vq.err_detail, sizeof(q->vq.err_detail), "broken before the snapshot");
	}
}

static void vp_regs_apply(struct virtio_pci *vp, const struct vp_regs *s)
{
	vp->driver_features = s->driver_features;
	vp->dfselect = s->dfselect;
	vp->gfselect = s->gfselect;
	vp->msix_config = s->msix_config;
	vp->queue_select = s->queue_select;
	vp->status = s->status;
	vp->config_generation = s->config_generation;
	vp->isr = s->isr;
}

static int vp_load(struct virtio_pci *vp, const json_t *obj, char *err, size_t errlen)
{
	unsigned nq = vp->ops->num_queues;
	struct vp_queue_regs qs[VIRTIO_PCI_MAX_QUEUES];
	const json_t *pci, *queues;
	struct vp_regs s;
	char why[200];
	int r;

	r = state_load_fields(obj, vp_regs_fields, ARRAY_SIZE(vp_regs_fields), &s, err, errlen);
	if (r == 0)
		r = state_get_object(obj, "pci", &pci, err, errlen);
	if (r == 0)
		r = state_get_array(obj, "queues", VIRTIO_PCI_MAX_QUEUES, &queues, err, errlen);
	if (r < 0)
		return r;
	if (json_array_size(queues) != nq) {
		snprintf(err, errlen, "field 'queues': %zu queues, the device has %u",
			 json_array_size(queues), nq);
		return -EINVAL;
	}
	pthread_mutex_lock(&vp->lock);
	r = vp_regs_check(vp, &s, err, errlen);
	for (unsigned i = 0; r == 0 && i < nq; i++) {
		r = vp_queue_check(vp, &s, json_array_get(queues, i), &qs[i], why, sizeof(why));
		if (r < 0)
			snprintf(err, errlen, "queue %u: %s", i, why);
	}
	pthread_mutex_unlock(&vp->lock);
	if (r < 0)
		return r;
	/* Outside vp->lock: the BAR's move calls vp_bar_remap under the root's lock. */
	r = pci_function_load(vp->fn, pci, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "pci: %s", why);
		return r;
	}
	pthread_mutex_lock(&vp->lock);
	vp->paused = true;
	vp_regs_apply(vp, &s);
	for (unsigned i = 0; i < nq; i++)
		vp_queue_apply(vp, &vp->q[i], &qs[i]);
	if (vp->status & VIRTIO_STATUS_DRIVER_OK) {
		if (vp->ops->activate)
			vp->ops->activate(vp->opaque, vp->driver_features);
		vp_ioev_set_live(vp, true);
	}
	pthread_mutex_unlock(&vp->lock);
	return 0;
}

int virtio_pci_load(struct virtio_pci *vp, const json_t *obj, char *err, size_t errlen)
{
	char why[256] = "";
	int r = vp_load(vp, obj, why, sizeof(why));

	if (r < 0)
		snprintf(err, errlen, "%s: %s", vp->ops->name, why);
	return r;
}
