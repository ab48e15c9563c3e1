/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Layout (virtio 1.2 §2.7), all fields little-endian:
 *   desc table: size × { le64 addr; le32 len; le16 flags; le16 next; }
 *   avail ring: le16 flags; le16 idx; le16 ring[size]; le16 used_event (EVENT_IDX)
 *   used ring:  le16 flags; le16 idx; { le32 id; le32 len; } ring[size]; le16 avail_event
 *
 * The driver owns avail and the descriptors and may rewrite them at any time, so each is
 * copied out once (ring fields with one atomic load, descriptors with one guest_mem_read()
 * followed by a compiler barrier) and only the copy is checked and used. Ring fields are read
 * and written through host pointers taken once by virtq_init(); ring placement and alignment
 * (guest and host) are checked there, so those accesses are in bounds and aligned.
 */
#include "virtio/virtq.h"
#include "util/util.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define RL_INTERVAL_NS (5ULL * 1000000000ULL)
#define RL_BURST       5

/* Offsets of the ring fields. */
#define AVAIL_FLAGS   0
#define AVAIL_IDX     2
#define AVAIL_RING(i) (4 + 2 * (size_t)(i))
#define USED_FLAGS    0
#define USED_IDX      2
#define USED_RING(i)  (4 + VIRTQ_USED_ELEM_SIZE * (size_t)(i))
#define DESC_OFF(i)   (VIRTQ_DESC_SIZE * (uint64_t)(i))

static const char *const err_names[] = {
	[VIRTQ_ERR_NONE] = "no error",
	[VIRTQ_ERR_AVAIL_IDX] = "avail idx more than queue size ahead",
	[VIRTQ_ERR_HEAD] = "head index out of range",
	[VIRTQ_ERR_NEXT] = "next index out of range",
	[VIRTQ_ERR_CHAIN_LONG] = "chain longer than its table (loop?)",
	[VIRTQ_ERR_ADDR] = "buffer outside guest RAM",
	[VIRTQ_ERR_TOTAL_LEN] = "chain length 4 GiB or more",
	[VIRTQ_ERR_TOO_MANY_SEGS] = "chain needs too many segments",
	[VIRTQ_ERR_WRITE_ORDER] = "readable descriptor after a writable one",
	[VIRTQ_ERR_INDIRECT_FEATURE] = "indirect descriptor not negotiated",
	[VIRTQ_ERR_INDIRECT_NEXT] = "indirect descriptor with NEXT",
	[VIRTQ_ERR_INDIRECT_NESTED] = "nested indirect table",
	[VIRTQ_ERR_INDIRECT_LEN] = "bad indirect table length",
	[VIRTQ_ERR_INDIRECT_ADDR] = "indirect table outside guest RAM",
};

const char *virtq_err_str(enum virtq_err err)
{
	if ((unsigned)err >= ARRAY_SIZE(err_names) || !err_names[err])
		return "unknown error";
	return err_names[err];
}

/* One descriptor, as copied out of guest memory. */
struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static inline uint16_t ring_load16(const uint8_t *p, int order)
{
	return le16toh(__atomic_load_n((const uint16_t *)p, order));
}

static inline void ring_store16(uint8_t *p, uint16_t v, int order)
{
	__atomic_store_n((uint16_t *)p, htole16(v), order);
}

static inline void ring_store32(uint8_t *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)p, htole32(v), __ATOMIC_RELAXED);
}

static uint16_t le16_get(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static uint32_t le32_get(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t le64_get(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/*
 * Marks @q broken for @err and keeps why in err_detail (@fmt); the transport logs it. Returns
 * -EIO, for `return fail(...)`.
 */
__attribute__((format(printf, 3, 4))) static int fail(struct virtq *q, enum virtq_err err,
						      const char *fmt, ...)
{
	va_list ap;

	q->broken = true;
	q->err = err;
	va_start(ap, fmt);
	vsnprintf(q->err_detail, sizeof(q->err_detail), fmt, ap);
	va_end(ap);
	return -EIO;
}

static void ratelimit_setup(struct virtq *q)
{
	if (q->rl.interval_ns == 0)
		q->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(RL_INTERVAL_NS, RL_BURST);
}

void virtq_reset(struct virtq *q)
{
	struct log_ratelimit rl = q->rl;

	memset(q, 0, sizeof(*q));
	q->rl = rl;
	ratelimit_setup(q);
}

/* Whether [a, a+alen) and [b, b+blen) share a byte; both are non-empty and do not wrap. */
static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a <= b + (blen - 1) && b <= a + (alen - 1);
}

int virtq_init(struct virtq *q, const struct guest_mem *mem, uint16_t size, uint16_t max_size,
	       uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa, bool event_idx,
	       bool indirect)
{
	uint64_t desc_len = DESC_OFF(size);
	uint64_t avail_len = AVAIL_RING(size) + (event_idx ? 2 : 0);
	uint64_t used_len = USED_RING(size) + (event_idx ? 2 : 0);
	uint8_t *avail, *used;

	assert(mem && max_size >= 1 && max_size <= VIRTQ_MAX_SIZE);
	virtq_reset(q);

	if (size == 0 || size > max_size || (size & (size - 1)) != 0)
		return -EINVAL;
	if (!IS_ALIGNED(desc_gpa, 16) || !IS_ALIGNED(avail_gpa, 2) || !IS_ALIGNED(used_gpa, 4))
		return -EINVAL;
	if (!guest_mem_range_ok(mem, desc_gpa, desc_len))
		return -EINVAL;
	avail = guest_mem_translate(mem, avail_gpa, avail_len);
	used = guest_mem_translate(mem, used_gpa, used_len);
	if (!avail || !used)
		return -EINVAL;
	/* Ring fields are accessed atomically: the host side must be aligned too. */
	if (!IS_ALIGNED((uintptr_t)avail, 2) || !IS_ALIGNED((uintptr_t)used, 4))
		return -EINVAL;
	if (ranges_overlap(desc_gpa, desc_len, avail_gpa, avail_len) ||
	    ranges_overlap(desc_gpa, desc_len, used_gpa, used_len) ||
	    ranges_overlap(avail_gpa, avail_len, used_gpa, used_len))
		return -EINVAL;

	q->mem = mem;
	q->size = size;
	q->desc_gpa = desc_gpa;
	q->avail_gpa = avail_gpa;
	q->used_gpa = used_gpa;
	q->avail = avail;
	q->used = used;
	q->event_idx = event_idx;
	q->indirect = indirect;
	q->notify_on = true;
	q->ready = true;
	return 0;
}

int virtq_set_indices(struct virtq *q, uint16_t last_avail_idx, uint16_t used_idx)
{
	if (!q->ready || (uint16_t)(last_avail_idx - used_idx) > q->size)
		return -EINVAL;
	q->last_avail_idx = last_avail_idx;
	q->used_idx = used_idx;
	q->signalled_used = used_idx;
	return 0;
}

/*
 * Copies descriptor @i of the table at @table_gpa out of guest memory, once. Returns 0 or
 * -EFAULT. The barrier keeps the compiler from reading guest memory again in place of the copy.
 */
static int desc_fetch(const struct virtq *q, uint64_t table_gpa, unsigned i, struct desc *ret)
{
	uint8_t raw[VIRTQ_DESC_SIZE];
	int r;

	r = guest_mem_read(q->mem, table_gpa + DESC_OFF(i), raw, sizeof(raw));
	if (r < 0)
		return r;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	ret->addr = le64_get(raw);
	ret->len = le32_get(raw + 8);
	ret->flags = le16_get(raw + 12);
	ret->next = le16_get(raw + 14);
	return 0;
}

/* Where the walk of one chain is: which table, how long it is, what was seen so far. */
struct walk {
	uint64_t table_gpa;
	unsigned table_len; /* descriptors in the current table */
	unsigned visited;   /* descriptors visited in the current table */
	bool in_indirect;
	bool seen_write;
	uint64_t total;
};

/* Switches the walk to the indirect table @d describes. Returns 0 or -EIO. */
static int enter_indirect(struct virtq *q, struct walk *w, const struct desc *d)
{
	struct iovec probe[GUEST_MEM_MAX_REGIONS];
	unsigned n = 0;

	if (!q->indirect)
		return fail(q, VIRTQ_ERR_INDIRECT_FEATURE, "flags %#x", d->flags);
	if (w->in_indirect)
		return fail(q, VIRTQ_ERR_INDIRECT_NESTED, "at %#llx",
			    (unsigned long long)w->table_gpa);
	if (d->flags & VIRTQ_DESC_F_NEXT)
		return fail(q, VIRTQ_ERR_INDIRECT_NEXT, "flags %#x", d->flags);
	if (d->len == 0 || d->len % VIRTQ_DESC_SIZE != 0 ||
	    d->len / VIRTQ_DESC_SIZE > VIRTQ_MAX_INDIRECT)
		return fail(q, VIRTQ_ERR_INDIRECT_LEN, "%u bytes, at most %u descriptors", d->len,
			    VIRTQ_MAX_INDIRECT);
	/* The table may span adjacent regions; one piece per region at most. */
	if (guest_mem_to_iov(q->mem, d->addr, d->len, probe, ARRAY_SIZE(probe), &n) < 0)
		return fail(q, VIRTQ_ERR_INDIRECT_ADDR, "%#llx, %u bytes",
			    (unsigned long long)d->addr, d->len);
	/*
	 * The spec only forbids INDIRECT with NEXT, so an indirect descriptor may end a direct
	 * chain; what came before it stays in the element.
	 */
	w->table_gpa = d->addr;
	w->table_len = d->len / VIRTQ_DESC_SIZE;
	w->visited = 0;
	w->in_indirect = true;
	return 0;
}

/* Adds the buffer of one (non-indirect) descriptor to @e. Returns 0 or -EIO. */
static int add_buffer(struct virtq *q, struct walk *w, const struct desc *d, struct virtq_elem *e)
{
	unsigned n = e->out_num + e->in_num;
	int r;

	if (d->flags & VIRTQ_DESC_F_WRITE)
		w->seen_write = true;
	else if (w->seen_write)
		return fail(q, VIRTQ_ERR_WRITE_ORDER, "head %u", e->head);

	w->total += d->len;
	if (w->total > UINT32_MAX)
		return fail(q, VIRTQ_ERR_TOTAL_LEN, "head %u", e->head);
	if (d->len == 0)
		return 0; /* allowed, and nothing to map */

	r = guest_mem_to_iov(q->mem, d->addr, d->len, e->iov, VIRTQ_MAX_SEGS, &n);
	if (r == -ENOSPC)
		return fail(q, VIRTQ_ERR_TOO_MANY_SEGS, "more than %u", VIRTQ_MAX_SEGS);
	if (r < 0)
		return fail(q, VIRTQ_ERR_ADDR, "%#llx, %u bytes", (unsigned long long)d->addr,
			    d->len);
	if (d->flags & VIRTQ_DESC_F_WRITE) {
		e->in_num = n - e->out_num;
		e->in_len += d->len;
	} else {
		e->out_num = n;
		e->out_len += d->len;
	}
	return 0;
}

/*
 * Walks the chain starting at @head into @e. Each table is walked at most once per descriptor
 * it holds (a longer walk is a loop), so a chain visits at most size + VIRTQ_MAX_INDIRECT
 * descriptors. Returns 0 or -EIO.
 */
static int walk_chain(struct virtq *q, uint16_t head, struct virtq_elem *e)
{
	struct walk w = { .table_gpa = q->desc_gpa, .table_len = q->size };
	unsigned i = head;
	int r;

	e->head = head;
	e->out_num = e->in_num = 0;
	e->out_len = e->in_len = 0;

	for (;;) {
		struct desc d;

		if (++w.visited > w.table_len)
			return fail(q, VIRTQ_ERR_CHAIN_LONG, "more than %u descriptors in %s table",
				    w.table_len, w.in_indirect ? "an indirect" : "the queue's");
		if (desc_fetch(q, w.table_gpa, i, &d) < 0)
			/* Only an indirect table can fail here: the queue's was checked. */
			return fail(q, VIRTQ_ERR_INDIRECT_ADDR, "descriptor %u", i);

		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			r = enter_indirect(q, &w, &d);
			if (r < 0)
				return r;
			i = 0;
			continue;
		}
		r = add_buffer(q, &w, &d, e);
		if (r < 0)
			return r;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= w.table_len)
			return fail(q, VIRTQ_ERR_NEXT, "next %u, table of %u", d.next, w.table_len);
		i = d.next;
	}
}

int virtq_pop(struct virtq *q, struct virtq_elem *ret)
{
	uint16_t avail_idx, pending, head;
	int r;

	if (!q->ready)
		return 0;
	if (q->broken)
		return -EIO;

	/* Acquire: the ring entries and descriptors behind this idx are read after it. */
	avail_idx = ring_load16(q->avail + AVAIL_IDX, __ATOMIC_ACQUIRE);
	pending = (uint16_t)(avail_idx - q->last_avail_idx);
	if (pending == 0) {
		if (!q->event_idx || !q->notify_on)
			return 0;
		/*
		 * The device is about to sleep. The avail_event the last pop published must be
		 * visible before this last look at avail->idx (store→load: a full barrier), or a
		 * driver that read the stale value skips its kick for a buffer we never see.
		 */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail_idx = ring_load16(q->avail + AVAIL_IDX, __ATOMIC_ACQUIRE);
		pending = (uint16_t)(avail_idx - q->last_avail_idx);
		if (pending == 0)
			return 0;
	}
	if (pending > q->size)
		return fail(q, VIRTQ_ERR_AVAIL_IDX, "idx %u, last seen %u, size %u", avail_idx,
			    q->last_avail_idx, q->size);

	head = ring_load16(q->avail + AVAIL_RING(q->last_avail_idx & (q->size - 1)),
			   __ATOMIC_RELAXED);
	if (head >= q->size)
		return fail(q, VIRTQ_ERR_HEAD, "head %u, size %u", head, q->size);

	r = walk_chain(q, head, ret);
	if (r < 0)
		return r;

	q->last_avail_idx++;
	if (q->event_idx && q->notify_on)
		ring_store16(q->used + USED_RING(q->size), q->last_avail_idx, __ATOMIC_RELAXED);
	return 1;
}

int virtq_push(struct virtq *q, const struct virtq_elem *e, uint32_t written)
{
	uint8_t *slot;

	if (!q->ready)
		return -EINVAL;
	if (q->broken)
		return -EIO;
	if (e->head >= q->size || q->used_idx == q->last_avail_idx) {
		q->device_bugs++;
		log_ratelimited(&q->rl, LOG_WARN, "virtq: push of head %u with %u in flight",
				e->head, (uint16_t)(q->last_avail_idx - q->used_idx));
		return -EINVAL;
	}
	if (written > e->in_len) {
		q->device_bugs++;
		log_ratelimited(&q->rl, LOG_WARN,
				"virtq: device claims %u bytes written, element holds %u", written,
				e->in_len);
		written = e->in_len;
	}

	slot = q->used + USED_RING(q->used_idx & (q->size - 1));
	ring_store32(slot, e->head);
	ring_store32(slot + 4, written);
	q->used_idx++;
	/* Release: the element is visible before the index that publishes it. */
	ring_store16(q->used + USED_IDX, q->used_idx, __ATOMIC_RELEASE);
	return 0;
}

int virtq_push_batch(struct virtq *q, const struct virtq_used_item *items, unsigned n)
{
	if (!q->ready)
		return -EINVAL;
	if (q->broken)
		return -EIO;
	if (n > (uint16_t)(q->last_avail_idx - q->used_idx)) {
		q->device_bugs++;
		log_ratelimited(&q->rl, LOG_WARN, "virtq: push of %u elements with %u in flight", n,
				(uint16_t)(q->last_avail_idx - q->used_idx));
		return -EINVAL;
	}
	for (unsigned i = 0; i < n; i++) {
		if (items[i].head >= q->size) {
			q->device_bugs++;
			return -EINVAL;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		uint8_t *slot = q->used + USED_RING((uint16_t)(q->used_idx + i) & (q->size - 1));
		uint32_t written = items[i].written;

		if (written > items[i].in_len) {
			q->device_bugs++;
			written = items[i].in_len;
		}
		ring_store32(slot, items[i].head);
		ring_store32(slot + 4, written);
	}
	q->used_idx = (uint16_t)(q->used_idx + n);
	/* Release, once: the driver sees all n entries or none of them. */
	ring_store16(q->used + USED_IDX, q->used_idx, __ATOMIC_RELEASE);
	return 0;
}

/* True when moving the used index from @old to @new_idx passes @event (all modulo 2^16). */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool virtq_needs_notify(struct virtq *q)
{
	uint16_t old = q->signalled_used;
	bool notify;

	if (!q->ready || q->broken)
		return false;
	/* Our used->idx store against the driver's used_event/flags store: store→load order. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (q->event_idx) {
		uint16_t event = ring_load16(q->avail + AVAIL_RING(q->size), __ATOMIC_RELAXED);

		notify = need_event(event, q->used_idx, old);
	} else {
		uint16_t flags = ring_load16(q->avail + AVAIL_FLAGS, __ATOMIC_RELAXED);

		notify = old != q->used_idx && !(flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
	}
	q->signalled_used = q->used_idx;
	return notify;
}

void virtq_set_notify(struct virtq *q, bool enable)
{
	if (!q->ready || q->broken)
		return;
	q->notify_on = enable;
	if (q->event_idx) {
		if (enable) {
			uint16_t avail_idx = ring_load16(q->avail + AVAIL_IDX, __ATOMIC_RELAXED);

			ring_store16(q->used + USED_RING(q->size), avail_idx, __ATOMIC_RELAXED);
		}
	} else {
		ring_store16(q->used + USED_FLAGS, enable ? 0 : VIRTQ_USED_F_NO_NOTIFY,
			     __ATOMIC_RELAXED);
	}
	/* The hint is visible before the caller looks at avail->idx again. */
	if (enable)
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/*
 * Copies between @buf and @cnt segments starting @offset bytes in. Returns bytes copied.
 */
static size_t iov_copy(const struct iovec *iov, unsigned cnt, size_t offset, uint8_t *buf,
		       size_t len, bool to_iov)
{
	size_t done = 0;

	for (unsigned i = 0; i < cnt && done < len; i++) {
		size_t n;

		if (offset >= iov[i].iov_len) {
			offset -= iov[i].iov_len;
			continue;
		}
		n = MIN(iov[i].iov_len - offset, len - done);
		if (to_iov)
			memcpy((uint8_t *)iov[i].iov_base + offset, buf + done, n);
		else
			memcpy(buf + done, (uint8_t *)iov[i].iov_base + offset, n);
		done += n;
		offset = 0;
	}
	return done;
}

size_t virtq_elem_read(const struct virtq_elem *e, size_t offset, void *buf, size_t len)
{
	assert(e->out_num + e->in_num <= VIRTQ_MAX_SEGS);
	return iov_copy(e->iov, e->out_num, offset, buf, len, false);
}

size_t virtq_elem_write(const struct virtq_elem *e, size_t offset, const void *buf, size_t len)
{
	assert(e->out_num + e->in_num <= VIRTQ_MAX_SEGS);
	return iov_copy(e->iov + e->out_num, e->in_num, offset, (uint8_t *)buf, len, true);
}
