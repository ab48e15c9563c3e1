/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The virtio-PCI modern transport (virtio 1.2 §4.1). See virtio.h for the BAR layout, the
 * threads and the locking; this file holds the register semantics.
 *
 * Everything the driver writes is hostile (DESIGN §4): register values are stored as written
 * and checked where they are used (virtq_init checks the rings); an impossible request either
 * has no effect (a feature never offered: FEATURES_OK stays clear) or puts the device in
 * NEEDS_RESET. Nothing the driver does stops the VMM or another device.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "pci/pci.h"
#include "util/log.h"
#include "util/util.h"
#include "virtio/internal.h"

/* ---- interrupts and errors (lock held) ---- */

unsigned vp_nr_vectors(const struct virtio_pci *vp)
{
	return vp->ops->num_queues + 1u;
}

static void vp_config_interrupt(struct virtio_pci *vp)
{
	vp->isr |= VIRTIO_ISR_CONFIG;
	if (vp->msix_config != VIRTIO_MSI_NO_VECTOR)
		(void)msix_notify(vp->fn, vp->msix_config);
}

void virtio_pci_config_changed(struct virtio_pci *vp)
{
	vp->config_generation++;
	if ((vp->status & VIRTIO_STATUS_DRIVER_OK) && !(vp->status & VIRTIO_STATUS_NEEDS_RESET))
		vp_config_interrupt(vp);
}

static void vp_needs_reset(struct virtio_pci *vp, unsigned q, const char *why)
{
	if (vp->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	vp->status |= VIRTIO_STATUS_NEEDS_RESET;
	log_ratelimited(&vp->rl, LOG_WARN, "%s: driver error on queue %u: %s; device needs reset",
			vp->ops->name, q, why);
	vp_config_interrupt(vp);
}

static void vp_kick(struct virtio_pci_queue *q)
{
	uint64_t one = 1;

	if (q->efd < 0) {
		q->pending = true;
		return;
	}
	/* A full counter (2^64 - 2 kicks unread) still wakes the loop: EAGAIN is fine. */
	if (write(q->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		q->pending = true;
}

/* ---- ioeventfds ---- */

/*
 * Makes each queue's ioeventfd match the state: present at its notify address while the BAR
 * decodes and the driver is running (DRIVER_OK, so that a notify before it still reaches
 * vp_notify_write and puts the device in NEEDS_RESET), absent otherwise. A failed registration
 * only costs speed: the MMIO handler still takes the notify. ioev_lock held.
 */
static void vp_ioev_sync(struct virtio_pci *vp)
{
	const struct dev_loop *loop = vp->loop;

	for (unsigned i = 0; loop && loop->ioeventfd && i < vp->ops->num_queues; i++) {
		struct virtio_pci_queue *q = &vp->q[i];
		uint64_t addr = vp->notify_base + VIRTIO_PCI_NOTIFY_OFF +
				(uint64_t)i * VIRTIO_PCI_NOTIFY_MULT;
		bool want = q->efd >= 0 && vp->ioev_live && vp->notify_base != PCI_BAR_UNMAPPED;
		int r;

		if (q->ioev_on && (!want || q->ioev_addr != addr)) {
			(void)loop->ioeventfd(loop->ioeventfd_ctx, q->efd, q->ioev_addr,
					      VIRTIO_PCI_NOTIFY_LEN, false);
			q->ioev_on = false;
		}
		if (want && !q->ioev_on) {
			r = loop->ioeventfd(loop->ioeventfd_ctx, q->efd, addr,
					    VIRTIO_PCI_NOTIFY_LEN, true);
			if (r < 0) {
				log_debug("%s: queue %u: no ioeventfd at %#llx: %s", vp->ops->name,
					  i, (unsigned long long)addr, strerror(-r));
				continue;
			}
			q->ioev_on = true;
			q->ioev_addr = addr;
		}
	}
}

void vp_ioev_set_live(struct virtio_pci *vp, bool live)
{
	pthread_mutex_lock(&vp->ioev_lock);
	if (vp->ioev_live != live) {
		vp->ioev_live = live;
		vp_ioev_sync(vp);
	}
	pthread_mutex_unlock(&vp->ioev_lock);
}

/* pci_function_ops.bar_remap: under the root's lock, so not vp->lock. */
static void vp_bar_remap(void *opaque, unsigned bar, uint64_t addr)
{
	struct virtio_pci *vp = opaque;

	if (bar != VIRTIO_PCI_BAR)
		return;
	pthread_mutex_lock(&vp->ioev_lock);
	vp->notify_base = addr;
	vp_ioev_sync(vp);
	pthread_mutex_unlock(&vp->ioev_lock);
}

/* ---- reset and status (lock held) ---- */

/* Registers and queues back to their power-on values; the device is not told. */
void vp_reset_regs(struct virtio_pci *vp)
{
	vp->status = 0;
	vp->driver_features = 0;
	vp->dfselect = 0;
	vp->gfselect = 0;
	vp->msix_config = VIRTIO_MSI_NO_VECTOR;
	vp->queue_select = 0;
	vp->isr = 0;
	vp_ioev_set_live(vp, false);
	for (unsigned i = 0; i < vp->ops->num_queues; i++) {
		struct virtio_pci_queue *q = &vp->q[i];

		virtq_reset(&q->vq);
		q->size = vp->ops->max_queue_size;
		q->msix_vector = VIRTIO_MSI_NO_VECTOR;
		q->enabled = false;
		q->desc = q->avail = q->used = 0;
		q->pending = false;
	}
}

static void vp_reset_locked(struct virtio_pci *vp)
{
	vp_reset_regs(vp);
	if (vp->ops->reset)
		vp->ops->reset(vp->opaque);
}

bool vp_features_acceptable(const struct virtio_pci *vp)
{
	uint64_t f = vp->driver_features;

	return !(f & ~vp->offered) && (f & BIT64(VIRTIO_F_VERSION_1));
}

static void vp_write_status(struct virtio_pci *vp, uint8_t v)
{
	uint8_t old = vp->status, now;

	if (v == 0) {
		vp_reset_locked(vp);
		return;
	}
	/* The driver never clears a bit but by writing 0, and NEEDS_RESET is the device's. */
	now = old | (v & (uint8_t)~VIRTIO_STATUS_NEEDS_RESET);
	if ((now & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK) &&
	    !vp_features_acceptable(vp)) {
		log_ratelimited(&vp->rl, LOG_WARN,
				"%s: driver features %#llx refused (offered %#llx)", vp->ops->name,
				(unsigned long long)vp->driver_features,
				(unsigned long long)vp->offered);
		now &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	}
	if ((now & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK) &&
	    (!(now & VIRTIO_STATUS_FEATURES_OK) || (old & VIRTIO_STATUS_NEEDS_RESET)))
		now &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
	vp->status = now;
	if (!(now & VIRTIO_STATUS_DRIVER_OK) || (old & VIRTIO_STATUS_DRIVER_OK))
		return;
	if (vp->ops->activate)
		vp->ops->activate(vp->opaque, vp->driver_features);
	vp_ioev_set_live(vp, true);
	/* Buffers made available before DRIVER_OK are served now. */
	for (unsigned i = 0; i < vp->ops->num_queues; i++) {
		if (vp->q[i].enabled)
			vp_kick(&vp->q[i]);
	}
}

static void vp_enable_queue(struct virtio_pci *vp, struct virtio_pci_queue *q)
{
	int r;

	if (q->enabled)
		return;
	q->enabled = true;
	if (!(vp->status & VIRTIO_STATUS_FEATURES_OK)) {
		vp_needs_reset(vp, q->index, "queue enabled before FEATURES_OK");
		return;
	}
	r = virtq_init(&q->vq, vp->mem, q->size, vp->ops->max_queue_size, q->desc, q->avail,
		       q->used, !!(vp->driver_features & BIT64(VIRTIO_F_EVENT_IDX)),
		       !!(vp->driver_features & BIT64(VIRTIO_F_INDIRECT_DESC)));
	if (r < 0)
		vp_needs_reset(vp, q->index, "ring rejected (size, alignment or placement)");
}

/* ---- common configuration (lock held) ---- */

struct vp_field {
	uint8_t off, size;
	bool ro;
};

static const struct vp_field vp_fields[] = {
	{ VIRTIO_PCI_COMMON_DFSELECT, 4, false }, { VIRTIO_PCI_COMMON_DF, 4, true },
	{ VIRTIO_PCI_COMMON_GFSELECT, 4, false }, { VIRTIO_PCI_COMMON_GF, 4, false },
	{ VIRTIO_PCI_COMMON_MSIX, 2, false },	  { VIRTIO_PCI_COMMON_NUMQ, 2, true },
	{ VIRTIO_PCI_COMMON_STATUS, 1, false },	  { VIRTIO_PCI_COMMON_CFGGEN, 1, true },
	{ VIRTIO_PCI_COMMON_Q_SELECT, 2, false }, { VIRTIO_PCI_COMMON_Q_SIZE, 2, false },
	{ VIRTIO_PCI_COMMON_Q_MSIX, 2, false },	  { VIRTIO_PCI_COMMON_Q_ENABLE, 2, false },
	{ VIRTIO_PCI_COMMON_Q_NOFF, 2, true },	  { VIRTIO_PCI_COMMON_Q_DESC, 8, false },
	{ VIRTIO_PCI_COMMON_Q_AVAIL, 8, false },  { VIRTIO_PCI_COMMON_Q_USED, 8, false },
};

static void put_le(uint8_t *p, uint64_t v, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned size)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static struct virtio_pci_queue *vp_selected(struct virtio_pci *vp)
{
	return vp->queue_select < vp->ops->num_queues ? &vp->q[vp->queue_select] : NULL;
}

static uint32_t vp_feature_window(uint64_t features, uint32_t select)
{
	if (select == 0)
		return (uint32_t)features;
	if (select == 1)
		return (uint32_t)(features >> 32);
	return 0;
}

/* The whole common configuration as the driver would read it now. */
static void vp_common_snapshot(struct virtio_pci *vp, uint8_t *b)
{
	struct virtio_pci_queue *q = vp_selected(vp);

	memset(b, 0, VIRTIO_PCI_COMMON_SIZE);
	put_le(b + VIRTIO_PCI_COMMON_DFSELECT, vp->dfselect, 4);
	put_le(b + VIRTIO_PCI_COMMON_DF, vp_feature_window(vp->offered, vp->dfselect), 4);
	put_le(b + VIRTIO_PCI_COMMON_GFSELECT, vp->gfselect, 4);
	put_le(b + VIRTIO_PCI_COMMON_GF, vp_feature_window(vp->driver_features, vp->gfselect), 4);
	put_le(b + VIRTIO_PCI_COMMON_MSIX, vp->msix_config, 2);
	put_le(b + VIRTIO_PCI_COMMON_NUMQ, vp->ops->num_queues, 2);
	b[VIRTIO_PCI_COMMON_STATUS] = vp->status;
	b[VIRTIO_PCI_COMMON_CFGGEN] = vp->config_generation;
	put_le(b + VIRTIO_PCI_COMMON_Q_SELECT, vp->queue_select, 2);
	if (!q) {
		put_le(b + VIRTIO_PCI_COMMON_Q_MSIX, VIRTIO_MSI_NO_VECTOR, 2);
		return; /* queue_size 0: no such queue */
	}
	put_le(b + VIRTIO_PCI_COMMON_Q_SIZE, q->size, 2);
	put_le(b + VIRTIO_PCI_COMMON_Q_MSIX, q->msix_vector, 2);
	put_le(b + VIRTIO_PCI_COMMON_Q_ENABLE, q->enabled, 2);
	put_le(b + VIRTIO_PCI_COMMON_Q_NOFF, q->index, 2);
	put_le(b + VIRTIO_PCI_COMMON_Q_DESC, q->desc, 8);
	put_le(b + VIRTIO_PCI_COMMON_Q_AVAIL, q->avail, 8);
	put_le(b + VIRTIO_PCI_COMMON_Q_USED, q->used, 8);
}

static uint16_t vp_vector(const struct virtio_pci *vp, uint64_t v)
{
	/* A vector the table does not have reads back as NO_VECTOR (§4.1.5.1.2). */
	return v < vp_nr_vectors(vp) ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
}

static void vp_set_features(struct virtio_pci *vp, uint32_t v)
{
	if (vp->status & VIRTIO_STATUS_FEATURES_OK)
		return; /* fixed once accepted */
	if (vp->gfselect == 0)
		vp->driver_features = (vp->driver_features & ~0xffffffffULL) | v;
	else if (vp->gfselect == 1)
		vp->driver_features = (vp->driver_features & 0xffffffffULL) | ((uint64_t)v << 32);
}

static void vp_commit_queue_field(struct virtio_pci *vp, unsigned off, uint64_t v)
{
	struct virtio_pci_queue *q = vp_selected(vp);

	if (!q)
		return;
	if (off == VIRTIO_PCI_COMMON_Q_MSIX) {
		q->msix_vector = vp_vector(vp, v);
		return;
	}
	if (off == VIRTIO_PCI_COMMON_Q_ENABLE) {
		if (v == 1)
			vp_enable_queue(vp, q);
		return; /* writing 0 needs VIRTIO_F_RING_RESET, not offered */
	}
	/* A live ring is not moved under the device. */
	if (q->enabled || (vp->status & VIRTIO_STATUS_DRIVER_OK))
		return;
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		q->size = (uint16_t)v;
		break;
	case VIRTIO_PCI_COMMON_Q_DESC:
		q->desc = v;
		break;
	case VIRTIO_PCI_COMMON_Q_AVAIL:
		q->avail = v;
		break;
	case VIRTIO_PCI_COMMON_Q_USED:
		q->used = v;
		break;
	}
}

static void vp_commit_field(struct virtio_pci *vp, unsigned off, uint64_t v)
{
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		vp->dfselect = (uint32_t)v;
		break;
	case VIRTIO_PCI_COMMON_GFSELECT:
		vp->gfselect = (uint32_t)v;
		break;
	case VIRTIO_PCI_COMMON_GF:
		vp_set_features(vp, (uint32_t)v);
		break;
	case VIRTIO_PCI_COMMON_MSIX:
		vp->msix_config = vp_vector(vp, v);
		break;
	case VIRTIO_PCI_COMMON_STATUS:
		vp_write_status(vp, (uint8_t)v);
		break;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		vp->queue_select = (uint16_t)v;
		break;
	default:
		vp_commit_queue_field(vp, off, v);
		break;
	}
}

static void vp_common_rw(struct virtio_pci *vp, unsigned off, bool is_write, uint8_t *data,
			 unsigned len)
{
	uint8_t b[VIRTIO_PCI_COMMON_SIZE];

	if (off + len > VIRTIO_PCI_COMMON_SIZE) {
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	vp_common_snapshot(vp, b);
	if (!is_write) {
		memcpy(data, b + off, len);
		return;
	}
	/* Merge the bytes written into the current values, then commit each field touched (any
	 * access width works, e.g. a 64-bit address as two 32-bit halves). */
	memcpy(b + off, data, len);
	for (size_t i = 0; i < ARRAY_SIZE(vp_fields); i++) {
		const struct vp_field *f = &vp_fields[i];

		if (f->ro || f->off >= off + len || f->off + f->size <= off)
			continue;
		vp_commit_field(vp, f->off, get_le(b + f->off, f->size));
	}
}

/* ---- the BAR ---- */

static void vp_notify_write(struct virtio_pci *vp, uint64_t off)
{
	unsigned qi = (unsigned)(off / VIRTIO_PCI_NOTIFY_MULT);
	struct virtio_pci_queue *q;

	if (qi >= vp->ops->num_queues)
		return;
	q = &vp->q[qi];
	if (vp->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	/* Before DRIVER_OK a notify is ignored: Linux's virtio-balloon kicks its statistics
	 * queue before it sets DRIVER_OK (virtballoon_probe), and the buffers made available
	 * by then are served when DRIVER_OK comes (vp_set_status). */
	if (!(vp->status & VIRTIO_STATUS_DRIVER_OK))
		return;
	if (q->enabled)
		vp_kick(q);
}

static void vp_bar_rw(void *opaque, unsigned bar, uint64_t offset, bool is_write, uint8_t *data,
		      unsigned len)
{
	struct virtio_pci *vp = opaque;
	uint32_t cfg_size = vp->ops->config_size;

	pthread_mutex_lock(&vp->lock);
	if (offset < VIRTIO_PCI_ISR_OFF) {
		vp_common_rw(vp, (unsigned)offset, is_write, data, len);
	} else if (offset == VIRTIO_PCI_ISR_OFF && !is_write) {
		memset(data, 0, len);
		data[0] = vp->isr; /* reading acknowledges */
		vp->isr = 0;
	} else if (offset >= VIRTIO_PCI_DEVCFG_OFF &&
		   offset + len <= VIRTIO_PCI_DEVCFG_OFF + (uint64_t)cfg_size) {
		uint32_t o = (uint32_t)(offset - VIRTIO_PCI_DEVCFG_OFF);

		if (!is_write) {
			memset(data, 0, len);
			if (vp->ops->config_read)
				vp->ops->config_read(vp->opaque, o, data, len);
		} else if (vp->ops->config_write) {
			vp->ops->config_write(vp->opaque, o, data, len);
		}
	} else if (offset >= VIRTIO_PCI_NOTIFY_OFF && offset < VIRTIO_PCI_MSIX_TABLE_OFF) {
		if (is_write)
			vp_notify_write(vp, offset - VIRTIO_PCI_NOTIFY_OFF);
		else
			memset(data, 0, len);
	} else if (!is_write) {
		memset(data, 0, len);
	}
	pthread_mutex_unlock(&vp->lock);
}

static const struct pci_function_ops vp_pci_ops = { .bar_rw = vp_bar_rw,
						    .bar_remap = vp_bar_remap };

/* ---- queue operations for devices (lock held) ---- */

bool virtio_pci_queue_ready(struct virtio_pci *vp, unsigned q)
{
	return q < vp->ops->num_queues && vp->q[q].enabled && vp->q[q].vq.ready && !vp->paused &&
	       (vp->status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_NEEDS_RESET)) ==
		       VIRTIO_STATUS_DRIVER_OK;
}

int virtio_pci_pop(struct virtio_pci *vp, unsigned q, struct virtq_elem *ret)
{
	int r;

	if (!virtio_pci_queue_ready(vp, q))
		return 0;
	r = virtq_pop(&vp->q[q].vq, ret);
	if (r < 0) {
		char why[160];
		snprintf(why, sizeof(why), "%s (%s)", virtq_err_str(vp->q[q].vq.err),
			 vp->q[q].vq.err_detail);
		vp_needs_reset(vp, q, why);
	}
	return r;
}

int virtio_pci_push(struct virtio_pci *vp, unsigned q, const struct virtq_elem *e, uint32_t written)
{
	int r;

	/* Not virtio_pci_queue_ready(): an element popped before a pause (or before another
	 * queue broke) is still completed; only a reset takes it back. */
	if (q >= vp->ops->num_queues || !vp->q[q].vq.ready)
		return -EINVAL;
	r = virtq_push(&vp->q[q].vq, e, written);
	if (r == -EIO)
		vp_needs_reset(vp, q, "used ring update on a broken queue");
	return r;
}

int virtio_pci_push_batch(struct virtio_pci *vp, unsigned q, const struct virtq_used_item *items,
			  unsigned n)
{
	int r;

	if (q >= vp->ops->num_queues || !vp->q[q].vq.ready)
		return -EINVAL;
	r = virtq_push_batch(&vp->q[q].vq, items, n);
	if (r == -EIO)
		vp_needs_reset(vp, q, "used ring update on a broken queue");
	return r;
}

void virtio_pci_notify(struct virtio_pci *vp, unsigned q)
{
	struct virtio_pci_queue *vq;

	if (!virtio_pci_queue_ready(vp, q))
		return;
	vq = &vp->q[q];
	if (!virtq_needs_notify(&vq->vq))
		return;
	vp->isr |= VIRTIO_ISR_QUEUE;
	if (vq->msix_vector != VIRTIO_MSI_NO_VECTOR)
		(void)msix_notify(vp->fn, vq->msix_vector);
}

void virtio_pci_set_notify(struct virtio_pci *vp, unsigned q, bool enable)
{
	if (virtio_pci_queue_ready(vp, q))
		virtq_set_notify(&vp->q[q].vq, enable);
}

void virtio_pci_kick(struct virtio_pci *vp, unsigned q)
{
	if (q < vp->ops->num_queues)
		vp_kick(&vp->q[q]);
}

/* ---- loop side ---- */

static void vp_deliver(struct virtio_pci *vp, struct virtio_pci_queue *q)
{
	if (vp->paused) {
		q->pending = true;
		return;
	}
	q->pending = false;
	if (virtio_pci_queue_ready(vp, q->index) && vp->ops->queue_notify)
		vp->ops->queue_notify(vp->opaque, q->index);
}

static void vp_efd_cb(void *opaque, uint32_t events)
{
	struct virtio_pci_queue *q = opaque;
	struct virtio_pci *vp = q->vp;
	uint64_t cnt;

	if (read(q->efd, &cnt, sizeof(cnt)) < 0 && errno == EAGAIN)
		return;
	pthread_mutex_lock(&vp->lock);
	vp_deliver(vp, q);
	pthread_mutex_unlock(&vp->lock);
}

void virtio_pci_run_notify(struct virtio_pci *vp, unsigned q)
{
	if (q >= vp->ops->num_queues)
		return;
	pthread_mutex_lock(&vp->lock);
	vp_deliver(vp, &vp->q[q]);
	pthread_mutex_unlock(&vp->lock);
}

/* ---- life cycle ---- */

static int vp_add_cap(struct pci_function *fn, uint8_t type, uint32_t off, uint32_t len,
		      bool notify)
{
	uint8_t body[20] = { 0 };
	size_t size = notify ? 20 : 16;

	body[2] = (uint8_t)size; /* cap_len */
	body[3] = type;
	body[4] = VIRTIO_PCI_BAR;
	put_le(body + 8, off, 4);
	put_le(body + 12, len, 4);
	if (notify)
		put_le(body + 16, VIRTIO_PCI_NOTIFY_MULT, 4);
	return pci_cap_add(fn, PCI_CAP_ID_VNDR, body, NULL, size, NULL, NULL, NULL);
}

static int vp_setup_pci(struct virtio_pci *vp, struct pci_root *pci)
{
	const struct virtio_dev_ops *ops = vp->ops;
	uint16_t id = (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + ops->device_id);
	struct pci_function_desc d = {
		.name = ops->name,
		.vendor_id = VIRTIO_PCI_VENDOR_ID,
		.device_id = id,
		.subsystem_vendor_id = VIRTIO_PCI_VENDOR_ID,
		.subsystem_id = id,
		.class_code = ops->class_code,
		.revision = VIRTIO_PCI_REVISION,
		.ops = &vp_pci_ops,
	};
	int r;

	d.bars[VIRTIO_PCI_BAR] =
		(struct pci_bar_desc){ .kind = PCI_BAR_MEM64, .size = VIRTIO_PCI_BAR_SIZE };
	r = pci_register(pci, &d, vp, &vp->fn);
	if (r < 0)
		return r;
	r = vp_add_cap(vp->fn, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF,
		       VIRTIO_PCI_COMMON_SIZE, false);
	if (r >= 0)
		r = vp_add_cap(vp->fn, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF,
			       ops->num_queues * VIRTIO_PCI_NOTIFY_MULT, true);
	if (r >= 0)
		r = vp_add_cap(vp->fn, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1, false);
	if (r >= 0 && ops->config_size)
		r = vp_add_cap(vp->fn, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVCFG_OFF,
			       ops->config_size, false);
	if (r >= 0)
		r = msix_init(vp->fn, vp_nr_vectors(vp), VIRTIO_PCI_BAR, VIRTIO_PCI_MSIX_TABLE_OFF,
			      VIRTIO_PCI_BAR, VIRTIO_PCI_MSIX_PBA_OFF);
	return r < 0 ? r : 0;
}

static bool vp_ops_valid(const struct virtio_dev_ops *ops)
{
	return ops && ops->name && ops->num_queues >= 1 &&
	       ops->num_queues <= VIRTIO_PCI_MAX_QUEUES && ops->max_queue_size >= 1 &&
	       ops->max_queue_size <= VIRTQ_MAX_SIZE &&
	       !(ops->max_queue_size & (ops->max_queue_size - 1)) &&
	       ops->config_size <= VIRTIO_PCI_MAX_CONFIG_SIZE;
}

int virtio_pci_create(struct pci_root *pci, const struct guest_mem *mem,
		      const struct dev_loop *loop, const struct virtio_dev_ops *ops, void *opaque,
		      struct virtio_pci **ret)
{
	struct virtio_pci *vp;
	int r;

	if (!pci || !mem || !vp_ops_valid(ops))
		return -EINVAL;
	vp = calloc(1, sizeof(*vp) + ops->num_queues * sizeof(vp->q[0]));
	if (!vp)
		return -ENOMEM;
	pthread_mutex_init(&vp->lock, NULL);
	pthread_mutex_init(&vp->ioev_lock, NULL);
	vp->notify_base = PCI_BAR_UNMAPPED;
	vp->ops = ops;
	vp->opaque = opaque;
	vp->mem = mem;
	vp->loop = loop;
	vp->offered =
		(ops->features & ~BIT64(VIRTIO_F_ACCESS_PLATFORM)) | VIRTIO_PCI_TRANSPORT_FEATURES;
	vp->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(1000000000ULL, 5);
	for (unsigned i = 0; i < ops->num_queues; i++) {
		vp->q[i].vp = vp;
		vp->q[i].index = i;
		vp->q[i].efd = -1;
	}
	vp_reset_regs(vp); /* not ops->reset: the device does not know its transport yet */
	for (unsigned i = 0; loop && i < ops->num_queues; i++) {
		struct virtio_pci_queue *q = &vp->q[i];

		q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (q->efd < 0) {
			r = -errno;
			goto fail;
		}
		r = loop->add_fd(loop->loop, q->efd, EPOLLIN, vp_efd_cb, q);
		if (r < 0)
			goto fail;
		q->efd_registered = true;
	}
	r = vp_setup_pci(vp, pci);
	if (r < 0)
		goto fail;
	*ret = vp;
	return 0;
fail:
	virtio_pci_destroy(vp);
	return r;
}

struct virtio_pci *virtio_pci_destroy(struct virtio_pci *vp)
{
	if (!vp)
		return NULL;
	vp_ioev_set_live(vp, false);
	pci_unregister(vp->fn);
	for (unsigned i = 0; i < vp->ops->num_queues; i++) {
		struct virtio_pci_queue *q = &vp->q[i];

		if (q->efd_registered)
			(void)vp->loop->del_fd(vp->loop->loop, q->efd);
		if (q->efd >= 0)
			close(q->efd);
	}
	pthread_mutex_destroy(&vp->lock);
	pthread_mutex_destroy(&vp->ioev_lock);
	free(vp);
	return NULL;
}

void virtio_pci_reset(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->lock);
	vp_reset_locked(vp);
	pthread_mutex_unlock(&vp->lock);
}

void virtio_pci_pause(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->lock);
	vp->paused = true;
	pthread_mutex_unlock(&vp->lock);
}

void virtio_pci_resume(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->lock);
	vp->paused = false;
	/* Every live queue, not only those notified meanwhile: a device may have gone quiet
	 * (stopped reading a backend) because its queue was unusable while paused. */
	for (unsigned i = 0; i < vp->ops->num_queues; i++) {
		if (vp->q[i].pending || vp->q[i].enabled)
			vp_kick(&vp->q[i]);
	}
	pthread_mutex_unlock(&vp->lock);
}

void virtio_pci_lock(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->lock);
}

void virtio_pci_unlock(struct virtio_pci *vp)
{
	pthread_mutex_unlock(&vp->lock);
}

struct pci_function *virtio_pci_function(struct virtio_pci *vp)
{
	return vp->fn;
}

uint8_t virtio_pci_status(struct virtio_pci *vp)
{
	uint8_t s;

	pthread_mutex_lock(&vp->lock);
	s = vp->status;
	pthread_mutex_unlock(&vp->lock);
	return s;
}
