/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for src/virtio/virtq.c: the input is a driver's view of a small guest, and
 * the harness plays a device that pops, reads, writes and pushes until the queue is empty or
 * broken. Guest RAM is three separately malloc'd regions (two adjacent, one apart), so ASan
 * flags any access outside them; the harness also checks every iovec against the regions.
 *
 * Input: a 16-byte header, then guest RAM contents from gpa 0 (the rest is zero).
 *   0  u8  size selector: bit 7 set → the raw size below, else 1 << (bits 0-3)
 *   1  u16 raw size
 *   3  u16 desc gpa, u16 avail gpa, u16 used gpa (bit 0 of byte 9 and up move them)
 *   9  u8  bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 rings in the third region,
 *          bit 3 set_notify(false) half of the time
 *   10 u16 start index (both sides, as after a restore)
 *   12 u8  how much the device claims it wrote (0: what it wrote; 1: in_len + 1; else raw)
 *   13 u8  read/write offset into the element
 *   14 u16 unused
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem/guest_mem.h"
#include "util/log.h"
#include "util/util.h"
#include "virtio/virtq.h"

#define HDR	   16
#define A_GPA	   0x0
#define A_SIZE	   0x8000
#define B_GPA	   0x8000
#define B_SIZE	   0x8000
#define C_GPA	   0x20000
#define C_SIZE	   0x1000
#define MAX_ROUNDS 512
#define CHUNK	   4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* Every iovec must lie inside one region's host buffer: the point of the exercise. */
static void check_elem(const struct guest_mem *gm, const struct virtq *q,
		       const struct virtq_elem *e)
{
	uint64_t out = 0, in = 0;

	if (e->head >= q->size || e->out_num + e->in_num > VIRTQ_MAX_SEGS)
		__builtin_trap();
	for (unsigned i = 0; i < e->out_num + e->in_num; i++) {
		const uint8_t *p = e->iov[i].iov_base;
		size_t len = e->iov[i].iov_len;
		bool inside = false;

		for (unsigned r = 0; r < gm->nr_regions; r++) {
			const struct guest_mem_region *reg = &gm->regions[r];

			if (p >= reg->host && p < reg->host + reg->size &&
			    len <= (size_t)(reg->host + reg->size - p))
				inside = true;
		}
		if (!inside || len == 0)
			__builtin_trap();
		if (i < e->out_num)
			out += len;
		else
			in += len;
	}
	if (out != e->out_len || in != e->in_len || out + in > UINT32_MAX)
		__builtin_trap();
}

/* One device round on a popped element. Returns what virtq_push() returned. */
static int serve(struct virtq *q, const struct virtq_elem *e, const uint8_t *h, uint8_t *buf)
{
	size_t off = h[13];
	size_t n, w;
	uint32_t written;

	n = virtq_elem_read(e, 0, buf, CHUNK);
	if (n != MIN((size_t)e->out_len, (size_t)CHUNK))
		__builtin_trap();
	n = virtq_elem_read(e, off, buf, CHUNK);
	if (n != (off >= e->out_len ? 0 : MIN((size_t)e->out_len - off, (size_t)CHUNK)))
		__builtin_trap();

	/* The device writes guest memory, rings included if the driver pointed it there. */
	for (size_t i = 0; i < CHUNK; i++)
		buf[i] = (uint8_t)(i * 7 + h[12]);
	w = virtq_elem_write(e, off, buf, CHUNK);
	if (w != (off >= e->in_len ? 0 : MIN((size_t)e->in_len - off, (size_t)CHUNK)))
		__builtin_trap();

	if (h[12] == 0)
		written = (uint32_t)w;
	else if (h[12] == 1)
		written = e->in_len + 1;
	else
		written = h[12];
	return virtq_push(q, e, written);
}

static void run(const struct guest_mem *gm, const uint8_t *h)
{
	struct virtq *q = calloc(1, sizeof(*q));
	struct virtq_elem *e = malloc(sizeof(*e));
	uint8_t *buf = malloc(CHUNK);
	uint16_t qsize = (h[0] & 0x80) ? get16(h + 1) : (uint16_t)(1u << (h[0] & 15));
	uint64_t base = (h[9] & 4) ? C_GPA : 0;
	bool event_idx = h[9] & 1, indirect = h[9] & 2;
	int r;

	if (!q || !e || !buf)
		goto out;
	r = virtq_init(q, gm, qsize, VIRTQ_MAX_SIZE, base + get16(h + 3), base + get16(h + 5),
		       base + get16(h + 7), event_idx, indirect);
	if (r < 0)
		goto out;
	if (virtq_set_indices(q, get16(h + 10), get16(h + 10)) < 0)
		__builtin_trap();

	for (unsigned round = 0; round < MAX_ROUNDS; round++) {
		if ((h[9] & 8) && (round & 1))
			virtq_set_notify(q, round & 2);
		r = virtq_pop(q, e);
		if (r == 0)
			break;
		if (r < 0) {
			if (r != -EIO || !q->broken || q->err == VIRTQ_ERR_NONE)
				__builtin_trap();
			if (virtq_pop(q, e) != -EIO || virtq_push(q, e, 0) != -EIO)
				__builtin_trap();
			break;
		}
		check_elem(gm, q, e);
		if (serve(q, e, h, buf) != 0)
			__builtin_trap();
		(void)virtq_needs_notify(q);
	}
	virtq_set_notify(q, true);
	virtq_reset(q);
	if (virtq_pop(q, e) != 0)
		__builtin_trap();
out:
	free(buf);
	free(e);
	free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guest_mem gm;
	uint8_t *a, *b, *c;
	size_t n;

	if (size < HDR)
		return 0;
	log_set_level(LOG_ERROR);
	a = calloc(1, A_SIZE);
	b = calloc(1, B_SIZE);
	c = calloc(1, C_SIZE);
	if (!a || !b || !c)
		goto out;
	guest_mem_init(&gm);
	if (guest_mem_add_region(&gm, A_GPA, A_SIZE, a) < 0 ||
	    guest_mem_add_region(&gm, B_GPA, B_SIZE, b) < 0 ||
	    guest_mem_add_region(&gm, C_GPA, C_SIZE, c) < 0)
		__builtin_trap();

	/* RAM contents: A, then B, then C. */
	n = size - HDR;
	memcpy(a, data + HDR, MIN(n, (size_t)A_SIZE));
	if (n > A_SIZE)
		memcpy(b, data + HDR + A_SIZE, MIN(n - A_SIZE, (size_t)B_SIZE));
	if (n > A_SIZE + B_SIZE)
		memcpy(c, data + HDR + A_SIZE + B_SIZE, MIN(n - A_SIZE - B_SIZE, (size_t)C_SIZE));

	run(&gm, data);
out:
	free(a);
	free(b);
	free(c);
	return 0;
}
