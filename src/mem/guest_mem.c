/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every bound is checked as an offset into a region (offset < size, len <= size - offset), never
 * by computing an end address: a region may end exactly at 2^64, and gpa + len may wrap.
 */
#include "mem/guest_mem.h"
#include "util/util.h"

#include <errno.h>
#include <string.h>

void guest_mem_init(struct guest_mem *gm)
{
	memset(gm, 0, sizeof(*gm));
}

/* Last byte of a region: never overflows, since regions are non-empty and do not wrap. */
static uint64_t region_last(const struct guest_mem_region *r)
{
	return r->gpa + (r->size - 1);
}

int guest_mem_add_region(struct guest_mem *gm, uint64_t gpa, uint64_t size, void *host)
{
	unsigned i;

	if (size == 0 || range_overflows(gpa, size) || !host)
		return -EINVAL;
	for (i = 0; i < gm->nr_regions; i++) {
		const struct guest_mem_region *r = &gm->regions[i];

		if (gpa <= region_last(r) && r->gpa <= gpa + (size - 1))
			return -EINVAL;
	}
	if (gm->nr_regions == GUEST_MEM_MAX_REGIONS)
		return -ENOSPC;

	for (i = gm->nr_regions; i > 0 && gm->regions[i - 1].gpa > gpa; i--)
		gm->regions[i] = gm->regions[i - 1];
	gm->regions[i] = (struct guest_mem_region){ .gpa = gpa, .size = size, .host = host };
	gm->nr_regions++;
	return 0;
}

/* The region holding @gpa, or NULL. */
static const struct guest_mem_region *find_region(const struct guest_mem *gm, uint64_t gpa)
{
	unsigned lo = 0, hi = gm->nr_regions;

	/* The last region starting at or below @gpa is the only candidate. */
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (gm->regions[mid].gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	if (gpa - gm->regions[lo - 1].gpa >= gm->regions[lo - 1].size)
		return NULL;
	return &gm->regions[lo - 1];
}

void *guest_mem_translate(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	const struct guest_mem_region *r = find_region(gm, gpa);
	uint64_t off;

	if (!r)
		return NULL;
	off = gpa - r->gpa;
	if (len > r->size - off)
		return NULL;
	return r->host + off;
}

bool guest_mem_range_ok(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	return guest_mem_translate(gm, gpa, len) != NULL;
}

/*
 * Walks [gpa, gpa+len) region by region, calling @fn for each piece (when @fn is not NULL).
 * Returns -EFAULT when a byte of the range is not RAM; a range that wraps past 2^64 is not.
 */
typedef void (*piece_fn)(void *ctx, uint8_t *host, uint64_t len);

static int walk(const struct guest_mem *gm, uint64_t gpa, uint64_t len, piece_fn fn, void *ctx)
{
	if (range_overflows(gpa, len))
		return -EFAULT;
	while (len > 0) {
		const struct guest_mem_region *r = find_region(gm, gpa);
		uint64_t off, n;

		if (!r)
			return -EFAULT;
		off = gpa - r->gpa;
		n = MIN(len, r->size - off);
		if (fn)
			fn(ctx, r->host + off, n);
		len -= n;
		gpa += n; /* may wrap to 0 only when len is now 0 */
	}
	return 0;
}

struct copy_ctx {
	uint8_t *buf;
	bool to_guest;
};

static void copy_piece(void *ctx, uint8_t *host, uint64_t len)
{
	struct copy_ctx *c = ctx;

	if (c->to_guest)
		memcpy(host, c->buf, len);
	else
		memcpy(c->buf, host, len);
	c->buf += len;
}

/* Checks the whole range first: a failed copy leaves nothing half done. */
static int copy(const struct guest_mem *gm, uint64_t gpa, void *buf, size_t len, bool to_guest)
{
	struct copy_ctx c = { .buf = buf, .to_guest = to_guest };
	int r = walk(gm, gpa, len, NULL, NULL);

	if (r < 0)
		return r;
	return walk(gm, gpa, len, copy_piece, &c);
}

int guest_mem_read(const struct guest_mem *gm, uint64_t gpa, void *buf, size_t len)
{
	return copy(gm, gpa, buf, len, false);
}

int guest_mem_write(const struct guest_mem *gm, uint64_t gpa, const void *buf, size_t len)
{
	return copy(gm, gpa, (void *)buf, len, true);
}

struct iov_ctx {
	struct iovec *iov;
	unsigned max, n;
	bool full;
};

static void iov_piece(void *ctx, uint8_t *host, uint64_t len)
{
	struct iov_ctx *c = ctx;

	if (c->n >= c->max) {
		c->full = true;
		return;
	}
	c->iov[c->n++] = (struct iovec){ .iov_base = host, .iov_len = len };
}

int guest_mem_to_iov(const struct guest_mem *gm, uint64_t gpa, uint64_t len, struct iovec *iov,
		     unsigned max, unsigned *n)
{
	struct iov_ctx c = { .iov = iov, .max = max, .n = *n };
	int r;

	if (len > SIZE_MAX)
		return -EFAULT;
	r = walk(gm, gpa, len, NULL, NULL);
	if (r < 0)
		return r;
	walk(gm, gpa, len, iov_piece, &c);
	if (c.full)
		return -ENOSPC;
	*n = c.n;
	return 0;
}

uint64_t guest_mem_total(const struct guest_mem *gm)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < gm->nr_regions; i++) {
		if (total > UINT64_MAX - gm->regions[i].size)
			return UINT64_MAX;
		total += gm->regions[i].size;
	}
	return total;
}
