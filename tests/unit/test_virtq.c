/* SPDX-License-Identifier: Apache-2.0 */
/* The split virtqueue (src/virtio/virtq.c) against a driver that breaks every rule. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mem/guest_mem.h"
#include "util/log.h"
#include "util/util.h"
#include "virtio/virtq.h"

/* Two adjacent regions, [0, 0x40000) and [0x40000, 0x50000), then a hole. */
#define RAM_A_SIZE 0x40000
#define RAM_B_GPA  0x40000
#define RAM_B_SIZE 0x10000
#define RAM_END	   (RAM_B_GPA + RAM_B_SIZE)

#define QSIZE 8
#define DESC  0x1000
#define AVAIL 0x2000
#define USED  0x3000
#define DATA  0x10000
#define TABLE 0x8000 /* an indirect table */

#define F_NEXT	   VIRTQ_DESC_F_NEXT
#define F_WRITE	   VIRTQ_DESC_F_WRITE
#define F_INDIRECT VIRTQ_DESC_F_INDIRECT

struct fx {
	struct guest_mem gm;
	uint8_t *a, *b;
	struct virtq q;
	struct virtq_elem e;
	uint64_t desc, avail, used;
	uint16_t size;
	uint16_t avail_idx; /* the "driver's" next avail idx */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->a = calloc(1, RAM_A_SIZE);
	f->b = calloc(1, RAM_B_SIZE);
	assert_non_null(f->a);
	assert_non_null(f->b);
	guest_mem_init(&f->gm);
	assert_int_equal(guest_mem_add_region(&f->gm, 0, RAM_A_SIZE, f->a), 0);
	assert_int_equal(guest_mem_add_region(&f->gm, RAM_B_GPA, RAM_B_SIZE, f->b), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	free(f->a);
	free(f->b);
	free(f);
	return 0;
}

static void put16(struct fx *f, uint64_t gpa, uint16_t v)
{
	uint16_t le = htole16(v);

	assert_int_equal(guest_mem_write(&f->gm, gpa, &le, 2), 0);
}

static uint16_t get16(struct fx *f, uint64_t gpa)
{
	uint16_t le;

	assert_int_equal(guest_mem_read(&f->gm, gpa, &le, 2), 0);
	return le16toh(le);
}

static uint32_t get32(struct fx *f, uint64_t gpa)
{
	uint32_t le;

	assert_int_equal(guest_mem_read(&f->gm, gpa, &le, 4), 0);
	return le32toh(le);
}

/* Writes descriptor @i of the table at @table. */
static void desc_at(struct fx *f, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
		    uint16_t flags, uint16_t next)
{
	uint8_t raw[16];
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t fl = htole16(flags), n = htole16(next);

	memcpy(raw, &a, 8);
	memcpy(raw + 8, &l, 4);
	memcpy(raw + 12, &fl, 2);
	memcpy(raw + 14, &n, 2);
	assert_int_equal(guest_mem_write(&f->gm, table + 16ULL * i, raw, 16), 0);
}

static void desc(struct fx *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	desc_at(f, f->desc, i, addr, len, flags, next);
}

/* The driver makes chain @head available. */
static void avail_add(struct fx *f, uint16_t head)
{
	put16(f, f->avail + 4 + 2 * (f->avail_idx % f->size), head);
	f->avail_idx++;
	put16(f, f->avail + 2, f->avail_idx);
}

static void qinit_at(struct fx *f, uint16_t size, uint64_t d, uint64_t a, uint64_t u,
		     bool event_idx, bool indirect)
{
	int r = virtq_init(&f->q, &f->gm, size, VIRTQ_MAX_SIZE, d, a, u, event_idx, indirect);

	assert_int_equal(r, 0);
	f->size = size;
	f->desc = d;
	f->avail = a;
	f->used = u;
	f->avail_idx = 0;
	assert_true(f->q.ready);
}

static void qinit(struct fx *f, bool event_idx, bool indirect)
{
	qinit_at(f, QSIZE, DESC, AVAIL, USED, event_idx, indirect);
}

/* Starts both sides at index @idx (restore-like): for the wrap-around tests. */
static void qstart_at(struct fx *f, uint16_t idx)
{
	assert_int_equal(virtq_set_indices(&f->q, idx, idx), 0);
	f->avail_idx = idx;
	put16(f, f->avail + 2, idx);
	put16(f, f->used + 2, idx);
}

/* Pops and expects the queue to break for @err; later pops and pushes stay -EIO. */
static void expect_broken(struct fx *f, enum virtq_err err)
{
	assert_int_equal(virtq_pop(&f->q, &f->e), -EIO);
	assert_true(virtq_is_broken(&f->q));
	assert_int_equal(f->q.err, err);
	assert_int_equal(virtq_pop(&f->q, &f->e), -EIO);
	assert_int_equal(virtq_push(&f->q, &f->e, 0), -EIO);
	assert_false(virtq_needs_notify(&f->q));
}

/* ---- virtq_init ---- */

static void test_init_checks(void **state)
{
	struct fx *f = *state;
	struct virtq *q = &f->q;
	const struct guest_mem *gm = &f->gm;

	assert_int_equal(virtq_init(q, gm, 256, 256, DESC, 0x4000, 0x5000, true, true), 0);
	assert_true(q->ready);
	assert_int_equal(q->size, 256);
	assert_ptr_equal(q->avail, f->a + 0x4000);
	assert_ptr_equal(q->used, f->a + 0x5000);

	/* size: power of two in 1..max */
	assert_int_equal(virtq_init(q, gm, 0, 256, DESC, AVAIL, USED, false, false), -EINVAL);
	assert_false(q->ready);
	assert_int_equal(virtq_init(q, gm, 6, 256, DESC, AVAIL, USED, false, false), -EINVAL);
	assert_int_equal(virtq_init(q, gm, 512, 256, DESC, 0x4000, 0x5000, false, false), -EINVAL);
	assert_int_equal(virtq_init(q, gm, 1, 256, DESC, AVAIL, USED, false, false), 0);
	/* rings past RAM */
	assert_int_equal(virtq_init(q, gm, 32768, 32768, 0, 0x70000, 0x80000, 0, 0), -EINVAL);

	/* alignment */
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC + 8, AVAIL, USED, false, false), -EINVAL);
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, AVAIL + 1, USED, false, false), -EINVAL);
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, AVAIL, USED + 2, false, false), -EINVAL);
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, AVAIL + 2, USED + 4, false, false), 0);

	/* placement: outside RAM, across the region boundary, wrapping */
	assert_int_equal(virtq_init(q, gm, 8, 8, RAM_END, AVAIL, USED, false, false), -EINVAL);
	assert_int_equal(virtq_init(q, gm, 8, 8, RAM_B_GPA - 64, AVAIL, USED, false, false),
			 -EINVAL);
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, RAM_END - 8, USED, false, false), -EINVAL);
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, AVAIL, RAM_END - 32, false, false), -EINVAL);
	assert_int_equal(virtq_init(q, gm, 8, 8, UINT64_MAX - 15, AVAIL, USED, false, false),
			 -EINVAL);
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, UINT64_MAX - 1, USED, false, false),
			 -EINVAL);
	/* used ring of 8: 4 + 64 bytes, + 2 with EVENT_IDX; it ends exactly at RAM's end */
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, AVAIL, RAM_END - 68, false, false), 0);
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, AVAIL, RAM_END - 68, true, false), -EINVAL);
	/* avail ring of 8: 4 + 16 bytes, + 2 with EVENT_IDX */
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, RAM_END - 20, USED, false, false), 0);
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, RAM_END - 20, USED, true, false), -EINVAL);

	/* overlaps: desc is 128 bytes, avail 20 (22), used 68 (70) */
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, DESC + 126, USED, false, false), -EINVAL);
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, DESC + 128, USED, false, false), 0);
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, AVAIL, DESC + 124, false, false), -EINVAL);
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, AVAIL, AVAIL + 20, false, false), 0);
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, AVAIL, AVAIL + 20, true, false), -EINVAL);
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, AVAIL, AVAIL + 24, true, false), 0);
	assert_int_equal(virtq_init(q, gm, 8, 8, USED + 64, AVAIL, USED, false, false), -EINVAL);
	assert_int_equal(virtq_init(q, gm, 8, 8, AVAIL, AVAIL, USED, false, false), -EINVAL);
	assert_int_equal(virtq_init(q, gm, 8, 8, DESC, AVAIL, AVAIL - 4, false, false), -EINVAL);
	assert_false(q->ready);
	/* a queue that failed to initialise pops nothing */
	assert_int_equal(virtq_pop(q, &f->e), 0);
}

/* ---- happy paths ---- */

static void test_single(void **state)
{
	struct fx *f = *state;

	qinit(f, false, false);
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	desc(f, 3, DATA, 100, 0, 0);
	avail_add(f, 3);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, 3);
	assert_int_equal(f->e.out_num, 1);
	assert_int_equal(f->e.in_num, 0);
	assert_int_equal(f->e.out_len, 100);
	assert_int_equal(f->e.in_len, 0);
	assert_ptr_equal(f->e.iov[0].iov_base, f->a + DATA);
	assert_int_equal(f->e.iov[0].iov_len, 100);
	assert_int_equal(f->q.last_avail_idx, 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	assert_false(virtq_is_broken(&f->q));
}

static void test_chain_mixed(void **state)
{
	struct fx *f = *state;
	uint8_t buf[64];

	qinit(f, false, false);
	for (unsigned i = 0; i < 64; i++)
		f->a[DATA + i] = (uint8_t)i;
	/* 2 readable (16 + 8 bytes, not contiguous), then 2 writable (4 + 32) */
	desc(f, 0, DATA, 16, F_NEXT, 5);
	desc(f, 5, DATA + 0x100, 8, F_NEXT, 2);
	desc(f, 2, DATA + 0x200, 4, F_NEXT | F_WRITE, 7);
	desc(f, 7, DATA + 0x300, 32, F_WRITE, 0);
	memset(f->a + DATA + 0x100, 0xab, 8);
	avail_add(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, 0);
	assert_int_equal(f->e.out_num, 2);
	assert_int_equal(f->e.in_num, 2);
	assert_int_equal(f->e.out_len, 24);
	assert_int_equal(f->e.in_len, 36);
	assert_ptr_equal(virtq_elem_out(&f->e)[1].iov_base, f->a + DATA + 0x100);
	assert_ptr_equal(virtq_elem_in(&f->e)[0].iov_base, f->a + DATA + 0x200);
	assert_int_equal(virtq_elem_in(&f->e)[1].iov_len, 32);

	/* read across the two readable segments, from an offset */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(virtq_elem_read(&f->e, 14, buf, sizeof(buf)), 10);
	assert_int_equal(buf[0], 14);
	assert_int_equal(buf[1], 15);
	assert_int_equal(buf[2], 0xab);
	assert_int_equal(buf[9], 0xab);
	assert_int_equal(buf[10], 0);
	assert_int_equal(virtq_elem_read(&f->e, 24, buf, 1), 0);
	assert_int_equal(virtq_elem_read(&f->e, 1000, buf, 1), 0);
	assert_int_equal(virtq_elem_read(&f->e, 0, buf, 3), 3);

	/* write across the two writable segments: bounded by in_len */
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(virtq_elem_write(&f->e, 2, buf, sizeof(buf)), 34);
	assert_int_equal(f->a[DATA + 0x200 + 1], 0);
	assert_int_equal(f->a[DATA + 0x200 + 2], 0x5a);
	assert_int_equal(f->a[DATA + 0x200 + 3], 0x5a);
	assert_int_equal(f->a[DATA + 0x300], 0x5a);
	assert_int_equal(f->a[DATA + 0x300 + 31], 0x5a);
	assert_int_equal(f->a[DATA + 0x300 + 32], 0);
	assert_int_equal(f->a[DATA + 0x204], 0);
	assert_int_equal(virtq_elem_write(&f->e, 36, buf, 1), 0);
}

static void test_full_length_chain(void **state)
{
	struct fx *f = *state;

	/* a chain using every descriptor of the table is legal */
	qinit(f, false, false);
	for (unsigned i = 0; i < QSIZE; i++)
		desc(f, i, DATA + 16 * i, 16, i + 1 < QSIZE ? F_NEXT : 0, (uint16_t)(i + 1));
	avail_add(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.out_num, QSIZE);
	assert_int_equal(f->e.out_len, 16 * QSIZE);
}

static void test_region_split(void **state)
{
	struct fx *f = *state;

	qinit(f, false, false);
	desc(f, 0, RAM_B_GPA - 0x100, 0x300, F_WRITE, 0);
	avail_add(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.in_num, 2);
	assert_int_equal(f->e.in_len, 0x300);
	assert_ptr_equal(f->e.iov[0].iov_base, f->a + RAM_A_SIZE - 0x100);
	assert_int_equal(f->e.iov[0].iov_len, 0x100);
	assert_ptr_equal(f->e.iov[1].iov_base, f->b);
	assert_int_equal(f->e.iov[1].iov_len, 0x200);
	/* a buffer ending exactly at the end of RAM */
	desc(f, 1, RAM_END - 0x10, 0x10, 0, 0);
	avail_add(f, 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_ptr_equal(f->e.iov[0].iov_base, f->b + RAM_B_SIZE - 0x10);
}

static void test_zero_length(void **state)
{
	struct fx *f = *state;

	/* zero-length descriptors are skipped wherever they point */
	qinit(f, false, false);
	desc(f, 0, 0xdead0000000ULL, 0, F_NEXT, 1);
	desc(f, 1, DATA, 8, F_NEXT, 2);
	desc(f, 2, UINT64_MAX, 0, F_NEXT | F_WRITE, 3);
	desc(f, 3, DATA + 8, 8, F_WRITE, 0);
	avail_add(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.out_num, 1);
	assert_int_equal(f->e.in_num, 1);
	assert_ptr_equal(f->e.iov[0].iov_base, f->a + DATA);
	assert_ptr_equal(f->e.iov[1].iov_base, f->a + DATA + 8);
}

static void test_indirect(void **state)
{
	struct fx *f = *state;

	qinit(f, false, true);
	/* the table's entries chain out of order: 0 → 2 → 1 */
	desc_at(f, TABLE, 0, DATA, 10, F_NEXT, 2);
	desc_at(f, TABLE, 2, DATA + 0x100, 20, F_NEXT | F_WRITE, 1);
	desc_at(f, TABLE, 1, DATA + 0x200, 30, F_WRITE, 0);
	/* the WRITE flag of the indirect descriptor itself is ignored */
	desc(f, 4, TABLE, 3 * 16, F_INDIRECT | F_WRITE, 0);
	avail_add(f, 4);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, 4);
	assert_int_equal(f->e.out_num, 1);
	assert_int_equal(f->e.in_num, 2);
	assert_int_equal(f->e.out_len, 10);
	assert_int_equal(f->e.in_len, 50);
	assert_ptr_equal(f->e.iov[1].iov_base, f->a + DATA + 0x100);
	assert_ptr_equal(f->e.iov[2].iov_base, f->a + DATA + 0x200);

	/* an indirect descriptor may end a direct chain */
	desc(f, 5, DATA + 0x400, 4, F_NEXT, 6);
	desc(f, 6, TABLE, 3 * 16, F_INDIRECT, 0);
	avail_add(f, 5);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, 5);
	assert_int_equal(f->e.out_num, 2);
	assert_int_equal(f->e.in_num, 2);
	assert_int_equal(f->e.out_len, 14);

	/* a table may span the region boundary, and be as long as VIRTQ_MAX_INDIRECT */
	for (unsigned i = 0; i < VIRTQ_MAX_INDIRECT; i++)
		desc_at(f, RAM_B_GPA - 0x800, i, DATA, 1, i + 1 < VIRTQ_MAX_INDIRECT ? F_NEXT : 0,
			(uint16_t)(i + 1));
	desc(f, 0, RAM_B_GPA - 0x800, VIRTQ_MAX_INDIRECT * 16, F_INDIRECT, 0);
	avail_add(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.out_num, VIRTQ_MAX_INDIRECT);
	assert_int_equal(f->e.out_len, VIRTQ_MAX_INDIRECT);
	assert_false(virtq_is_broken(&f->q));
}

static void test_avail_wrap(void **state)
{
	struct fx *f = *state;

	qinit(f, false, false);
	qstart_at(f, 65534);
	for (unsigned i = 0; i < 4; i++) {
		desc(f, i, DATA + 16 * i, 16, 0, 0);
		avail_add(f, (uint16_t)i);
	}
	assert_int_equal(f->avail_idx, 2);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
		assert_int_equal(f->e.head, i);
		assert_int_equal(virtq_push(&f->q, &f->e, 0), 0);
	}
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	assert_int_equal(f->q.last_avail_idx, 2);
	assert_int_equal(get16(f, USED + 2), 2);
	/* slots 65534 % 8 = 6, 7, then 0, 1 */
	assert_int_equal(get32(f, USED + 4 + 8 * 6), 0);
	assert_int_equal(get32(f, USED + 4 + 8 * 7), 1);
	assert_int_equal(get32(f, USED + 4 + 8 * 0), 2);
	assert_int_equal(get32(f, USED + 4 + 8 * 1), 3);
	/* exactly size ahead is fine, across the wrap too */
	qstart_at(f, 65530);
	for (unsigned i = 0; i < QSIZE; i++)
		avail_add(f, (uint16_t)i);
	for (unsigned i = 0; i < QSIZE; i++)
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
}

static void test_push_used_ring(void **state)
{
	struct fx *f = *state;
	struct virtq_elem *e2 = malloc(sizeof(*e2));

	assert_non_null(e2);
	qinit(f, false, false);
	desc(f, 1, DATA, 64, F_WRITE, 0);
	desc(f, 6, DATA + 0x100, 8, 0, 0);
	avail_add(f, 1);
	avail_add(f, 6);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(virtq_pop(&f->q, e2), 1);

	/* pushed out of order */
	assert_int_equal(virtq_push(&f->q, e2, 0), 0);
	assert_int_equal(get16(f, USED + 2), 1);
	assert_int_equal(get32(f, USED + 4), 6);
	assert_int_equal(get32(f, USED + 8), 0);
	/* claims more than the element holds: clamped, a device bug, the queue stays fine */
	assert_int_equal(virtq_push(&f->q, &f->e, 1000), 0);
	assert_int_equal(f->q.device_bugs, 1);
	assert_false(virtq_is_broken(&f->q));
	assert_int_equal(get16(f, USED + 2), 2);
	assert_int_equal(get32(f, USED + 12), 1);
	assert_int_equal(get32(f, USED + 16), 64);
	/* nothing in flight: a push is refused */
	assert_int_equal(virtq_push(&f->q, &f->e, 0), -EINVAL);
	assert_int_equal(f->q.device_bugs, 2);
	assert_int_equal(get16(f, USED + 2), 2);
	assert_int_equal(f->q.used_idx, 2);

	/* a written length within bounds is reported as is */
	avail_add(f, 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(virtq_push(&f->q, &f->e, 17), 0);
	assert_int_equal(get32(f, USED + 4 + 8 * 2), 1);
	assert_int_equal(get32(f, USED + 8 + 8 * 2), 17);
	assert_int_equal(f->q.device_bugs, 2);
	free(e2);
}

/* Pops one single-descriptor chain and pushes it. */
static void cycle(struct fx *f)
{
	desc(f, 0, DATA, 16, F_WRITE, 0);
	avail_add(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(virtq_push(&f->q, &f->e, 16), 0);
}

static void test_no_interrupt(void **state)
{
	struct fx *f = *state;

	qinit(f, false, false);
	assert_false(virtq_needs_notify(&f->q)); /* nothing pushed yet */
	cycle(f);
	assert_true(virtq_needs_notify(&f->q));
	assert_false(virtq_needs_notify(&f->q)); /* already told */
	put16(f, AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
	cycle(f);
	assert_false(virtq_needs_notify(&f->q));
	put16(f, AVAIL, 0);
	assert_false(virtq_needs_notify(&f->q)); /* the suppressed push is not replayed */
	cycle(f);
	cycle(f);
	assert_true(virtq_needs_notify(&f->q));
	/* used_event is ignored without EVENT_IDX */
	put16(f, AVAIL + 4 + 2 * QSIZE, 1000);
	cycle(f);
	assert_true(virtq_needs_notify(&f->q));
}

static void test_event_idx_notify(void **state)
{
	struct fx *f = *state;
	const uint64_t used_event = AVAIL + 4 + 2 * QSIZE;

	qinit(f, true, false);
	/* NO_INTERRUPT is ignored with EVENT_IDX */
	put16(f, AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
	put16(f, used_event, 0);
	cycle(f); /* used 0 → 1 passes event 0 */
	assert_true(virtq_needs_notify(&f->q));
	cycle(f); /* 1 → 2, event still 0: no */
	assert_false(virtq_needs_notify(&f->q));
	put16(f, used_event, 4);
	cycle(f); /* 2 → 3 */
	assert_false(virtq_needs_notify(&f->q));
	cycle(f); /* 3 → 4 */
	assert_false(virtq_needs_notify(&f->q));
	cycle(f);
	cycle(f); /* 4 → 6 in one batch passes 4 */
	assert_true(virtq_needs_notify(&f->q));
	assert_false(virtq_needs_notify(&f->q));

	/* wrap-around of the 16-bit used index */
	qstart_at(f, 65534);
	put16(f, used_event, 65535);
	cycle(f); /* 65534 → 65535: event 65535 not yet passed */
	assert_false(virtq_needs_notify(&f->q));
	cycle(f); /* 65535 → 0 */
	assert_true(virtq_needs_notify(&f->q));
	assert_int_equal(get16(f, USED + 2), 0);
	put16(f, used_event, 1);
	cycle(f); /* 0 → 1 */
	assert_false(virtq_needs_notify(&f->q));
	cycle(f); /* 1 → 2 */
	assert_true(virtq_needs_notify(&f->q));

	/* a batch crossing the wrap with the event just before it */
	qstart_at(f, 65533);
	put16(f, used_event, 65534);
	cycle(f);
	cycle(f);
	cycle(f);
	cycle(f); /* 65533 → 1 */
	assert_true(virtq_needs_notify(&f->q));
	/* an event far behind (driver not interested) */
	put16(f, used_event, 30000);
	cycle(f);
	assert_false(virtq_needs_notify(&f->q));
}

static void test_set_notify(void **state)
{
	struct fx *f = *state;
	const uint64_t avail_event = USED + 4 + 8 * QSIZE;

	qinit(f, false, false);
	virtq_set_notify(&f->q, false);
	assert_int_equal(get16(f, USED), VIRTQ_USED_F_NO_NOTIFY);
	virtq_set_notify(&f->q, true);
	assert_int_equal(get16(f, USED), 0);

	qinit(f, true, false);
	put16(f, USED, 0);
	cycle(f); /* a pop publishes avail_event = last_avail_idx */
	assert_int_equal(get16(f, avail_event), 1);
	virtq_set_notify(&f->q, false);
	cycle(f);
	cycle(f);
	assert_int_equal(get16(f, avail_event), 1); /* not advanced while disabled */
	assert_int_equal(get16(f, USED), 0);	    /* flags untouched with EVENT_IDX */
	desc(f, 0, DATA, 16, 0, 0);
	avail_add(f, 0);
	avail_add(f, 0);
	virtq_set_notify(&f->q, true); /* the current avail idx, 5 */
	assert_int_equal(get16(f, avail_event), 5);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(get16(f, avail_event), 4);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(get16(f, avail_event), 5);
}

static void test_reset(void **state)
{
	struct fx *f = *state;

	qinit(f, false, false);
	desc(f, 0, DATA, 16, F_NEXT, 0); /* a self-loop */
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_CHAIN_LONG);
	virtq_set_notify(&f->q, false);
	assert_int_equal(get16(f, USED), 0); /* a broken queue is not touched */

	virtq_reset(&f->q);
	assert_false(virtq_is_broken(&f->q));
	assert_false(f->q.ready);
	assert_int_equal(f->q.err, VIRTQ_ERR_NONE);
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	assert_int_equal(virtq_push(&f->q, &f->e, 0), -EINVAL);
	assert_int_equal(f->q.rl.burst, 5); /* the rate limit survives */

	/* the driver re-initialises its rings */
	memset(f->a + AVAIL, 0, 0x2000);
	qinit(f, false, false);
	desc(f, 0, DATA, 16, 0, 0);
	avail_add(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, 0);
	assert_int_equal(virtq_push(&f->q, &f->e, 0), 0);
	assert_int_equal(get16(f, USED + 2), 1);

	/* virtq_init() alone also clears a broken queue */
	desc(f, 0, DATA, 16, F_NEXT, 9);
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_NEXT);
	qinit(f, false, false);
	assert_false(virtq_is_broken(&f->q));
}

static void test_set_indices(void **state)
{
	struct fx *f = *state;

	virtq_reset(&f->q);
	assert_int_equal(virtq_set_indices(&f->q, 0, 0), -EINVAL); /* not ready */
	qinit(f, false, false);
	assert_int_equal(virtq_set_indices(&f->q, 10, 2), 0); /* 8 in flight */
	assert_int_equal(virtq_set_indices(&f->q, 11, 2), -EINVAL);
	assert_int_equal(virtq_set_indices(&f->q, 2, 3), -EINVAL); /* -1 in flight */
	assert_int_equal(virtq_set_indices(&f->q, 3, 65531), 0);   /* 8, across the wrap */
	assert_int_equal(f->q.last_avail_idx, 3);
	assert_int_equal(f->q.used_idx, 65531);
	assert_int_equal(f->q.signalled_used, 65531);
}

/* ---- a driver breaking the rules ---- */

static void test_bad_avail_idx(void **state)
{
	struct fx *f = *state;

	qinit(f, false, false);
	desc(f, 0, DATA, 16, 0, 0);
	put16(f, AVAIL + 2, QSIZE + 1);
	expect_broken(f, VIRTQ_ERR_AVAIL_IDX);
	/* putting it right does not un-break the queue */
	put16(f, AVAIL + 2, 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), -EIO);

	/* backwards is "far ahead" too */
	qinit(f, false, false);
	qstart_at(f, 100);
	put16(f, AVAIL + 2, 99);
	expect_broken(f, VIRTQ_ERR_AVAIL_IDX);
}

static void test_bad_head(void **state)
{
	struct fx *f = *state;

	qinit(f, false, false);
	avail_add(f, QSIZE);
	expect_broken(f, VIRTQ_ERR_HEAD);
	assert_int_equal(f->q.last_avail_idx, 0);
	qinit(f, false, false);
	avail_add(f, 0xffff);
	expect_broken(f, VIRTQ_ERR_HEAD);
}

static void test_loop(void **state)
{
	struct fx *f = *state;

	/* 0 → 1 → 2 → 0 in a queue of 256 */
	qinit_at(f, 256, DESC, 0x4000, 0x5000, false, false);
	desc(f, 0, DATA, 16, F_NEXT, 1);
	desc(f, 1, DATA, 16, F_NEXT, 2);
	desc(f, 2, DATA, 16, F_NEXT, 0);
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_CHAIN_LONG);
	/*
	 * White box: the walk gives up at the (size + 1)th descriptor, so exactly size buffers
	 * were mapped before it did (a driver rewriting descriptors mid-walk gets no further).
	 */
	qinit(f, false, false);
	for (unsigned i = 0; i < QSIZE; i++)
		desc(f, i, DATA, 1, F_NEXT, (uint16_t)((i + 1) % QSIZE));
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_CHAIN_LONG);
	assert_int_equal(f->e.out_num, QSIZE);
	/* a loop of zero-length descriptors is caught too */
	qinit(f, false, false);
	desc(f, 3, DATA, 0, F_NEXT, 3);
	avail_add(f, 3);
	expect_broken(f, VIRTQ_ERR_CHAIN_LONG);
}

static void test_bad_next(void **state)
{
	struct fx *f = *state;

	qinit(f, false, false);
	desc(f, 0, DATA, 16, F_NEXT, QSIZE);
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_NEXT);
}

static void test_bad_addr(void **state)
{
	struct fx *f = *state;
	static const struct {
		uint64_t addr;
		uint32_t len;
	} bad[] = {
		{ RAM_END, 1 },			   /* in the hole */
		{ RAM_END - 8, 16 },		   /* runs into the hole */
		{ UINT64_MAX - 7, 16 },		   /* wraps */
		{ UINT64_MAX, 1 },		   /* not RAM */
		{ RAM_B_GPA - 4, RAM_B_SIZE + 8 }, /* both regions, then the hole */
	};

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		qinit(f, false, false);
		desc(f, 0, DATA, 16, F_NEXT, 1);
		desc(f, 1, bad[i].addr, bad[i].len, F_WRITE, 0);
		avail_add(f, 0);
		expect_broken(f, VIRTQ_ERR_ADDR);
	}
}

static void test_total_len(void **state)
{
	struct fx *f = *state;

	/* 16 + (2^32 - 16) = 2^32: refused before the huge buffer is even looked at */
	qinit(f, false, false);
	desc(f, 0, DATA, 16, F_NEXT, 1);
	desc(f, 1, DATA, UINT32_MAX - 15, F_WRITE, 0);
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_TOTAL_LEN);
	/* one less than 2^32 gets as far as the address check */
	qinit(f, false, false);
	desc(f, 0, DATA, 16, F_NEXT, 1);
	desc(f, 1, DATA, UINT32_MAX - 16, F_WRITE, 0);
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_ADDR);
}

static void test_too_many_segs(void **state)
{
	struct fx *f = *state;
	const unsigned n = VIRTQ_MAX_SEGS + 1;

	/* a queue of 2048: a legal-length chain of 1025 non-empty descriptors */
	qinit_at(f, 2048, 0x20000, 0x28000, 0x2a000, false, false);
	for (unsigned i = 0; i < n; i++)
		desc(f, i, DATA, 1, i + 1 < n ? F_NEXT : 0, (uint16_t)(i + 1));
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_TOO_MANY_SEGS);
	/* 1024 fit */
	qinit_at(f, 2048, 0x20000, 0x28000, 0x2a000, false, false);
	desc(f, n - 2, DATA, 1, 0, 0);
	avail_add(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.out_num, VIRTQ_MAX_SEGS);

	/* 1024 descriptors in an indirect table, one split at the region boundary: 1025 */
	qinit(f, false, true);
	for (unsigned i = 0; i < VIRTQ_MAX_INDIRECT; i++)
		desc_at(f, 0x20000, i, i == 7 ? RAM_B_GPA - 1 : DATA, 2,
			i + 1 < VIRTQ_MAX_INDIRECT ? F_NEXT : 0, (uint16_t)(i + 1));
	desc(f, 0, 0x20000, VIRTQ_MAX_INDIRECT * 16, F_INDIRECT, 0);
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_TOO_MANY_SEGS);
}

static void test_write_order(void **state)
{
	struct fx *f = *state;

	/* direct */
	qinit(f, false, false);
	desc(f, 0, DATA, 16, F_WRITE | F_NEXT, 1);
	desc(f, 1, DATA, 16, 0, 0);
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_WRITE_ORDER);
	/* a zero-length readable after a writable is still out of order */
	qinit(f, false, false);
	desc(f, 0, DATA, 16, F_WRITE | F_NEXT, 1);
	desc(f, 1, DATA, 0, 0, 0);
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_WRITE_ORDER);
	/* inside an indirect table */
	qinit(f, false, true);
	desc_at(f, TABLE, 0, DATA, 16, F_WRITE | F_NEXT, 1);
	desc_at(f, TABLE, 1, DATA, 16, 0, 0);
	desc(f, 0, TABLE, 32, F_INDIRECT, 0);
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_WRITE_ORDER);
	/* from a direct chain into its indirect table */
	qinit(f, false, true);
	desc_at(f, TABLE, 0, DATA, 16, 0, 0);
	desc(f, 0, DATA, 16, F_WRITE | F_NEXT, 1);
	desc(f, 1, TABLE, 16, F_INDIRECT, 0);
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_WRITE_ORDER);
}

static void test_indirect_not_negotiated(void **state)
{
	struct fx *f = *state;

	qinit(f, false, false);
	desc_at(f, TABLE, 0, DATA, 16, 0, 0);
	desc(f, 0, TABLE, 16, F_INDIRECT, 0);
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_INDIRECT_FEATURE);
}

static void test_indirect_with_next(void **state)
{
	struct fx *f = *state;

	qinit(f, false, true);
	desc_at(f, TABLE, 0, DATA, 16, 0, 0);
	desc(f, 0, TABLE, 16, F_INDIRECT | F_NEXT, 1);
	desc(f, 1, DATA, 16, 0, 0);
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_INDIRECT_NEXT);
}

static void test_indirect_nested(void **state)
{
	struct fx *f = *state;

	qinit(f, false, true);
	desc_at(f, TABLE, 0, DATA, 16, F_NEXT, 1);
	desc_at(f, TABLE, 1, TABLE, 32, F_INDIRECT, 0); /* points at its own table */
	desc(f, 0, TABLE, 32, F_INDIRECT, 0);
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_INDIRECT_NESTED);
}

static void test_indirect_bad_len(void **state)
{
	struct fx *f = *state;
	static const uint32_t bad[] = { 0, 8, 17, 16 * (VIRTQ_MAX_INDIRECT + 1),
					UINT32_MAX & ~15u };

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		qinit(f, false, true);
		desc(f, 0, TABLE, bad[i], F_INDIRECT, 0);
		avail_add(f, 0);
		expect_broken(f, VIRTQ_ERR_INDIRECT_LEN);
	}
}

static void test_indirect_bad_addr(void **state)
{
	struct fx *f = *state;
	static const uint64_t bad[] = { RAM_END, RAM_END - 16, UINT64_MAX - 15, UINT64_MAX - 7 };

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		qinit(f, false, true);
		desc(f, 0, bad[i], 32, F_INDIRECT, 0);
		avail_add(f, 0);
		expect_broken(f, VIRTQ_ERR_INDIRECT_ADDR);
	}
}

static void test_indirect_loop_and_next(void **state)
{
	struct fx *f = *state;

	/* a loop inside the table */
	qinit(f, false, true);
	desc_at(f, TABLE, 0, DATA, 16, F_NEXT, 1);
	desc_at(f, TABLE, 1, DATA, 16, F_NEXT, 0);
	desc(f, 0, TABLE, 32, F_INDIRECT, 0);
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_CHAIN_LONG);
	/* next beyond the table (though inside the queue's size) */
	qinit(f, false, true);
	desc_at(f, TABLE, 0, DATA, 16, F_NEXT, 2);
	desc_at(f, TABLE, 2, DATA, 16, 0, 0);
	desc(f, 0, TABLE, 32, F_INDIRECT, 0);
	avail_add(f, 0);
	expect_broken(f, VIRTQ_ERR_NEXT);
}

static void test_err_str(void **state)
{
	(void)state;
	assert_string_equal(virtq_err_str(VIRTQ_ERR_CHAIN_LONG),
			    "chain longer than its table (loop?)");
	assert_string_equal(virtq_err_str((enum virtq_err)1000), "unknown error");
	for (int e = VIRTQ_ERR_NONE; e <= VIRTQ_ERR_INDIRECT_ADDR; e++)
		assert_string_not_equal(virtq_err_str((enum virtq_err)e), "unknown error");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_init_checks),
		T(test_single),
		T(test_chain_mixed),
		T(test_full_length_chain),
		T(test_region_split),
		T(test_zero_length),
		T(test_indirect),
		T(test_avail_wrap),
		T(test_push_used_ring),
		T(test_no_interrupt),
		T(test_event_idx_notify),
		T(test_set_notify),
		T(test_reset),
		T(test_set_indices),
		T(test_bad_avail_idx),
		T(test_bad_head),
		T(test_loop),
		T(test_bad_next),
		T(test_bad_addr),
		T(test_total_len),
		T(test_too_many_segs),
		T(test_write_order),
		T(test_indirect_not_negotiated),
		T(test_indirect_with_next),
		T(test_indirect_nested),
		T(test_indirect_bad_len),
		T(test_indirect_bad_addr),
		T(test_indirect_loop_and_next),
		T(test_err_str),
	};

	/* The violations are expected: keep their warnings out of the test log. */
	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
