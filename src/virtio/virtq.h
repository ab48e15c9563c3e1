/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The split virtqueue (virtio 1.2 §2.7), device side, written for a hostile driver (DESIGN §4).
 *
 * Everything the driver writes (ring indices, descriptors, indirect tables) is read once into
 * host memory and checked before use; every walk is bounded. A driver that breaks the rules
 * gets -EIO from virtq_pop(): the queue is then "broken", every later pop/push returns -EIO
 * until virtq_reset() or virtq_init(), and the transport is expected to set
 * DEVICE_NEEDS_RESET. What was violated is kept in err and err_detail for the transport to
 * log (once, naming the device and queue); the queue itself does not log it.
 *
 * Guest memory is reached only through guest_mem (checked translation); the iovecs of a popped
 * element point into guest RAM and stay valid as long as that guest_mem does.
 *
 * Threading: one struct virtq is used by one thread at a time (the device's); the driver runs
 * concurrently on other CPUs, hence the barriers documented below.
 */
#ifndef CUBICLE_VIRTIO_VIRTQ_H
#define CUBICLE_VIRTIO_VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "mem/guest_mem.h"
#include "util/log.h"

/* Largest queue size the split ring allows (virtio 1.2 §2.7: Queue Size ≤ 32768). */
#define VIRTQ_MAX_SIZE 32768

/*
 * Most iovecs in one element (readable + writable). Linux's IOV_MAX, so an element can always
 * be handed to one preadv()/writev(). A chain needing more (a chain of more than 1024 non-empty
 * descriptors, or fewer that split at guest-memory region boundaries) is a driver error.
 */
#define VIRTQ_MAX_SEGS 1024

/*
 * Most descriptors in one indirect table. The spec does not tie an indirect table to the queue
 * size (Linux builds tables longer than a small queue), so the bound is the segment bound.
 */
#define VIRTQ_MAX_INDIRECT VIRTQ_MAX_SEGS

/* Descriptor flags (struct virtq_desc.flags). */
#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4
/* avail->flags: the driver asks for no interrupts (ignored with EVENT_IDX). */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
/* used->flags: the device asks for no notifications (not used with EVENT_IDX). */
#define VIRTQ_USED_F_NO_NOTIFY 1

/* Sizes in guest memory. */
#define VIRTQ_DESC_SIZE	     16
#define VIRTQ_USED_ELEM_SIZE 8

/* Why a queue broke: the first violation found (struct virtq.err). */
enum virtq_err {
	VIRTQ_ERR_NONE = 0,
	VIRTQ_ERR_AVAIL_IDX,	    /* avail idx more than queue size ahead of last_avail_idx */
	VIRTQ_ERR_HEAD,		    /* head index ≥ queue size */
	VIRTQ_ERR_NEXT,		    /* next ≥ queue size (or ≥ the indirect table's length) */
	VIRTQ_ERR_CHAIN_LONG,	    /* more descriptors than the table holds: a loop */
	VIRTQ_ERR_ADDR,		    /* a buffer not wholly in guest RAM, or wrapping */
	VIRTQ_ERR_TOTAL_LEN,	    /* chain length ≥ 2^32 */
	VIRTQ_ERR_TOO_MANY_SEGS,    /* more than VIRTQ_MAX_SEGS iovecs */
	VIRTQ_ERR_WRITE_ORDER,	    /* a readable descriptor after a writable one */
	VIRTQ_ERR_INDIRECT_FEATURE, /* INDIRECT without VIRTIO_F_INDIRECT_DESC */
	VIRTQ_ERR_INDIRECT_NEXT,    /* INDIRECT and NEXT on one descriptor */
	VIRTQ_ERR_INDIRECT_NESTED,  /* INDIRECT inside an indirect table */
	VIRTQ_ERR_INDIRECT_LEN,	    /* table length 0, not a multiple of 16, or too long */
	VIRTQ_ERR_INDIRECT_ADDR,    /* table not wholly in guest RAM */
};

/* A constant string naming @err, e.g. "chain longer than its table (loop?)". */
const char *virtq_err_str(enum virtq_err err);

struct virtq {
	const struct guest_mem *mem;
	uint16_t size; /* a power of two, 1..VIRTQ_MAX_SIZE */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	/* Host addresses of the avail and used rings: checked once by virtq_init(). */
	uint8_t *avail, *used;
	bool ready;	/* virtq_init() succeeded */
	bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;	/* VIRTIO_F_INDIRECT_DESC negotiated */
	bool notify_on; /* device wants notifications (virtq_set_notify) */
	bool broken;	/* the driver broke the rules: see err */
	enum virtq_err err;
	char err_detail[96];	 /* e.g. "more than 256 descriptors in the queue's table" */
	uint16_t last_avail_idx; /* next avail entry to pop */
	uint16_t used_idx;	 /* next used entry to push (what used->idx holds) */
	uint16_t
		signalled_used; /* used_idx when the driver was last notified (or told not to be) */
	uint32_t device_bugs;	/* pushes that claimed more bytes than the element could hold */
	struct log_ratelimit rl; /* kept across virtq_init()/virtq_reset() */
};

/*
 * One popped chain. Readable segments (driver → device, "out") are iov[0, out_num); writable
 * ones (device → driver, "in") follow: iov[out_num, out_num + in_num). About 16 KiB: keep it in
 * the device's state rather than on a small stack.
 */
struct virtq_elem {
	uint16_t head; /* descriptor index the used ring reports */
	unsigned out_num, in_num;
	uint32_t out_len, in_len; /* bytes; out_len + in_len < 2^32 */
	struct iovec iov[VIRTQ_MAX_SEGS];
};

static inline struct iovec *virtq_elem_out(struct virtq_elem *e)
{
	return e->iov;
}

static inline struct iovec *virtq_elem_in(struct virtq_elem *e)
{
	return e->iov + e->out_num;
}

/*
 * Sets @q up for the rings the driver configured and marks it ready; indices start at 0 and
 * notifications are enabled. @max_size is the device's maximum (1..VIRTQ_MAX_SIZE, asserted).
 * @event_idx and @indirect are the negotiated VIRTIO_F_EVENT_IDX / VIRTIO_F_INDIRECT_DESC.
 *
 * @q must have been zeroed once before its first virtq_init() (e.g. part of a calloc'd device):
 * the log rate limit it holds survives re-initialisation, so a driver cannot reset its way
 * past it. Reads and writes nothing in guest memory.
 *
 * Returns 0, or -EINVAL (and @q is left not ready) when: @size is not a power of two in
 * 1..@max_size; desc is not 16-byte, avail not 2-byte or used not 4-byte aligned; a ring is not
 * wholly inside one guest RAM region (or wraps); two rings overlap. The avail and used rings
 * include their event fields only when @event_idx is set.
 */
int virtq_init(struct virtq *q, const struct guest_mem *mem, uint16_t size, uint16_t max_size,
	       uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa, bool event_idx,
	       bool indirect);

/*
 * Back to not ready: indices, notification state, broken flag and error cleared; a later pop
 * returns 0 until virtq_init() is called again. Touches no guest memory. The rate limit stays.
 */
void virtq_reset(struct virtq *q);

/*
 * For restore (and tests): sets last_avail_idx and used_idx as a saved queue had them; the
 * driver is considered notified up to @used_idx. Returns -EINVAL when @q is not ready or when
 * more than size elements would be in flight (last_avail_idx - used_idx > size, modulo 2^16).
 */
int virtq_set_indices(struct virtq *q, uint16_t last_avail_idx, uint16_t used_idx);

/*
 * Takes the next available chain. Reads avail->idx once (acquire), then the head and each
 * descriptor once, and checks every field before using it.
 *
 * Returns 1 with *@ret filled, 0 when the ring is empty (or @q is not ready), -EIO when the
 * driver broke the rules (or already had): @q is then broken, q->err says why, and *@ret holds
 * garbage. With EVENT_IDX and notifications on, a successful pop also publishes avail_event =
 * last_avail_idx, so the driver kicks for the next buffer, and a pop that finds the ring empty
 * looks again after a full barrier: a device may sleep once virtq_pop() returned 0.
 */
int virtq_pop(struct virtq *q, struct virtq_elem *ret);

/*
 * Returns a popped element to the driver: writes used->ring[used_idx % size] = {head,
 * @written}, then used->idx (release). @written is the number of bytes the device wrote into
 * the writable segments; more than e->in_len is a device bug: it is clamped to in_len, counted
 * in q->device_bugs and logged. Elements may be pushed in any order.
 *
 * Returns 0; -EIO when @q is broken; -EINVAL when @q is not ready, when @e->head is not a valid
 * index, or when every popped element has already been pushed (a device bug).
 */
int virtq_push(struct virtq *q, const struct virtq_elem *e, uint32_t written);

/* One used-ring entry for virtq_push_batch(): a popped element's head and in_len, and the bytes
 * written into it. */
struct virtq_used_item {
	uint16_t head;
	uint32_t in_len;
	uint32_t written;
};

/*
 * Pushes @n popped elements with one used->idx update, so the driver sees them all or none
 * (virtio-net's mergeable receive buffers: a frame's buffers must appear together). Same
 * checks as virtq_push() (written clamped to in_len); nothing is written when @n exceeds the
 * elements in flight or a head is out of range. Returns 0, -EIO (broken) or -EINVAL.
 */
int virtq_push_batch(struct virtq *q, const struct virtq_used_item *items, unsigned n);

/*
 * Call after a batch of pushes: whether the driver wants an interrupt for them. Without
 * EVENT_IDX: something was pushed since the last call and avail->flags lacks NO_INTERRUPT.
 * With EVENT_IDX: used_idx crossed avail->used_event since the last call (vring_need_event,
 * modulo 2^16). Full barrier first: our used->idx store must be visible before the driver's
 * flags / used_event are read. Remembers used_idx as signalled either way. False when @q is not
 * ready or broken. Call at least once per 65536 pushes.
 */
bool virtq_needs_notify(struct virtq *q);

/*
 * Device-side suppression of the driver's notifications (kicks). Without EVENT_IDX, sets or
 * clears used->flags NO_NOTIFY; with EVENT_IDX, enabling writes avail_event = the current
 * avail->idx and disabling stops virtq_pop() from advancing it. It is only a hint to the
 * driver: after enabling, pop again before sleeping (a full barrier is issued, so a buffer added
 * before the driver saw the change is found). No-op when not ready or broken.
 */
void virtq_set_notify(struct virtq *q, bool enable);

/*
 * Copies up to @len bytes out of the element's readable segments, starting @offset bytes into
 * them. Returns the number of bytes copied: less than @len when the segments end first, 0 when
 * @offset ≥ out_len. The driver may change the bytes while they are copied.
 */
size_t virtq_elem_read(const struct virtq_elem *e, size_t offset, void *buf, size_t len);

/* Copies into the writable segments, like virtq_elem_read(). Returns bytes copied. */
size_t virtq_elem_write(const struct virtq_elem *e, size_t offset, const void *buf, size_t len);

static inline bool virtq_is_broken(const struct virtq *q)
{
	return q->broken;
}

#endif
