/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 metadata: the bounded write-back caches of L2 tables and refcount blocks, refcounts
 * of any width (refcount_order 0-6), cluster allocation (reusing freed clusters, else growing
 * the file, allocating refcount blocks and growing the refcount table on the way), and the
 * flush order that keeps the image consistent after a crash: refcounts reach the disk before
 * the L2 entries and L1 entries that depend on them (a crash leaks clusters, never shares
 * them).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/block/qcow2.h"
#include "util/util.h"

int qcow2_cache_init(struct qcow2_cache *c, uint64_t budget, uint64_t cluster_size)
{
	uint64_t n = budget / cluster_size;
	n = MAX(n, (uint64_t)QCOW2_CACHE_MIN_ENTRIES);
	n = MIN(n, (uint64_t)QCOW2_CACHE_MAX_ENTRIES);
	c->n = (unsigned)n;
	c->tick = 0;
	c->e = calloc(n, sizeof(*c->e));
	if (!c->e)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		c->e[i].data = malloc(cluster_size);
		if (!c->e[i].data)
			return -ENOMEM;
	}
	return 0;
}

void qcow2_cache_free(struct qcow2_cache *c)
{
	if (!c->e)
		return;
	for (unsigned i = 0; i < c->n; i++)
		free(c->e[i].data);
	free(c->e);
	c->e = NULL;
}

static int cache_write(struct disk_image *img, struct qcow2_cache_entry *e)
{
	int r = disk_pwrite_full(img->mfd, e->data, img->q->cluster_size, e->off);
	if (r < 0)
		return r;
	e->dirty = false;
	return 0;
}

int qcow2_flush_refcounts(struct disk_image *img)
{
	struct qcow2_cache *c = &img->q->rbc;
	bool wrote = false;
	for (unsigned i = 0; i < c->n; i++) {
		if (!c->e[i].dirty)
			continue;
		int r = cache_write(img, &c->e[i]);
		if (r < 0)
			return r;
		wrote = true;
	}
	if (wrote && fdatasync(img->mfd) < 0)
		return -errno;
	return 0;
}

static struct qcow2_cache_entry *cache_find(struct qcow2_cache *c, uint64_t off)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->e[i].off == off) {
			c->e[i].used = ++c->tick;
			return &c->e[i];
		}
	return NULL;
}

/* A slot for @off: the empty or least recently used one, written back if dirty (L2 tables
 * only after the refcounts they depend on). */
static int cache_slot(struct disk_image *img, struct qcow2_cache *c, bool l2,
		      struct qcow2_cache_entry **ret)
{
	struct qcow2_cache_entry *v = &c->e[0];
	for (unsigned i = 1; i < c->n && v->off; i++)
		if (!c->e[i].off || c->e[i].used < v->used)
			v = &c->e[i];
	if (v->dirty) {
		int r = l2 ? qcow2_flush_refcounts(img) : 0;
		if (r == 0)
			r = cache_write(img, v);
		if (r < 0)
			return r;
	}
	v->off = 0;
	*ret = v;
	return 0;
}

static int cache_get(struct disk_image *img, struct qcow2_cache *c, bool l2, uint64_t off,
		     bool fresh, uint8_t **ret)
{
	uint64_t cs = img->q->cluster_size;
	if (off == 0 || !IS_ALIGNED(off, cs))
		return -EIO;
	struct qcow2_cache_entry *e = cache_find(c, off);
	if (e && fresh)
		memset(e->data, 0, cs);
	if (!e) {
		int r = cache_slot(img, c, l2, &e);
		if (r < 0)
			return r;
		if (fresh)
			memset(e->data, 0, cs);
		else if ((r = disk_pread_full(img->mfd, e->data, cs, off)) < 0)
			return r;
		e->off = off;
		e->dirty = false;
		e->used = ++c->tick;
	}
	if (fresh)
		e->dirty = true;
	*ret = e->data;
	return 0;
}

int qcow2_l2_get(struct disk_image *img, uint64_t off, uint8_t **ret)
{
	return cache_get(img, &img->q->l2c, true, off, false, ret);
}

int qcow2_l2_new(struct disk_image *img, uint64_t off, uint8_t **ret)
{
	return cache_get(img, &img->q->l2c, true, off, true, ret);
}

void qcow2_l2_mark_dirty(struct disk_image *img, uint64_t off)
{
	struct qcow2_cache_entry *e = cache_find(&img->q->l2c, off);
	if (e)
		e->dirty = true;
}

static uint64_t rb_read(const struct qcow2 *q, const uint8_t *b, uint64_t i)
{
	switch (q->refcount_order) {
	case 3:
		return b[i];
	case 4:
		return (uint64_t)b[2 * i] << 8 | b[2 * i + 1];
	case 5:
		return qcow2_be32(b + 4 * i);
	case 6:
		return qcow2_be64(b + 8 * i);
	default: { /* 1, 2 or 4 bits, least significant bits first */
		unsigned bits = 1u << q->refcount_order, per = 8 / bits;
		return (b[i / per] >> ((i % per) * bits)) & ((1u << bits) - 1);
	}
	}
}

static void rb_write(const struct qcow2 *q, uint8_t *b, uint64_t i, uint64_t v)
{
	switch (q->refcount_order) {
	case 3:
		b[i] = (uint8_t)v;
		break;
	case 4:
		b[2 * i] = (uint8_t)(v >> 8);
		b[2 * i + 1] = (uint8_t)v;
		break;
	case 5:
		for (int k = 3; k >= 0; k--, v >>= 8)
			b[4 * i + (unsigned)k] = (uint8_t)v;
		break;
	case 6:
		qcow2_put_be64(b + 8 * i, v);
		break;
	default: {
		unsigned bits = 1u << q->refcount_order, per = 8 / bits;
		unsigned sh = (unsigned)(i % per) * bits, mask = ((1u << bits) - 1) << sh;
		b[i / per] = (uint8_t)((b[i / per] & ~mask) | ((v << sh) & mask));
	}
	}
}

int qcow2_refcount_get(struct disk_image *img, uint64_t cluster, uint64_t *ret)
{
	struct qcow2 *q = img->q;
	uint64_t b = cluster / q->rb_entries;
	if (b >= q->rt_entries || q->rt[b] == 0) {
		*ret = 0;
		return 0;
	}
	uint8_t *blk;
	int r = cache_get(img, &q->rbc, false, q->rt[b], false, &blk);
	if (r < 0)
		return r;
	*ret = rb_read(q, blk, cluster % q->rb_entries);
	return 0;
}

/* Sets a refcount whose block exists. */
static int refcount_set(struct disk_image *img, uint64_t cluster, uint64_t v)
{
	struct qcow2 *q = img->q;
	uint64_t b = cluster / q->rb_entries;
	if (b >= q->rt_entries || q->rt[b] == 0)
		return -EIO;
	uint8_t *blk;
	int r = cache_get(img, &q->rbc, false, q->rt[b], false, &blk);
	if (r < 0)
		return r;
	rb_write(q, blk, cluster % q->rb_entries, v);
	cache_find(&q->rbc, q->rt[b])->dirty = true;
	return 0;
}

int qcow2_refcount_update(struct disk_image *img, uint64_t cluster, int delta, bool punch)
{
	struct qcow2 *q = img->q;
	uint64_t v;
	int r = qcow2_refcount_get(img, cluster, &v);
	if (r < 0)
		return r;
	if ((delta < 0 && v == 0) || (delta > 0 && v >= q->rc_max))
		return -EIO; /* an image whose refcounts disagree with its tables */
	v = delta > 0 ? v + 1 : v - 1;
	r = refcount_set(img, cluster, v);
	if (r < 0 || v)
		return r;
	if (cluster < q->free_hint)
		q->free_hint = cluster;
	q->qlo = MIN(q->qlo, cluster);
	q->qhi = MAX(q->qhi, cluster);
	q->dbuf_entry = 0;
	/* Give the space back (best effort) when the data is garbage anyway. Not for clusters a
	 * copy-on-write replaced: until the next flush the old L2 entry on disk still points
	 * there. Reused clusters are always written whole before the L2 entry points to them. */
	if (punch)
		fallocate(img->mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)(cluster << q->cluster_bits), (off_t)q->cluster_size);
	return 0;
}

/* Writes a zeroed cluster at @off with @ones refcounts set to 1 from its own index @first:
 * a new refcount block that counts the clusters of the area being laid out. */
static int write_new_block(struct disk_image *img, uint64_t off, uint64_t first_idx, uint64_t ones)
{
	struct qcow2 *q = img->q;
	uint8_t *blk = calloc(1, q->cluster_size);
	if (!blk)
		return -ENOMEM;
	for (uint64_t i = 0; i < ones; i++)
		rb_write(q, blk, first_idx + i, 1);
	int r = disk_pwrite_full(img->mfd, blk, q->cluster_size, off);
	free(blk);
	return r;
}

/*
 * The refcount table cannot count cluster @c (the end of the file): lays out at @c the new
 * refcount blocks, then a larger table, all counted by those blocks; switches the header to
 * it and frees the old table.
 */
static int grow_reftable(struct disk_image *img, uint64_t c)
{
	struct qcow2 *q = img->q;
	uint64_t cs = q->cluster_size, per_rt = cs / 8;
	uint64_t nt = q->rt_clusters * 2, nb = 1;
	for (;;) {
		uint64_t last = c + nb + nt - 1;
		uint64_t need_nb = last / q->rb_entries - c / q->rb_entries + 1;
		uint64_t need_nt = (last / q->rb_entries + 1 + per_rt - 1) / per_rt;
		if (need_nb <= nb && need_nt <= nt)
			break;
		nb = MAX(nb, need_nb);
		nt = MAX(nt, need_nt);
	}
	if (nt * cs > QCOW2_MAX_REFTABLE_BYTES)
		return -ENOSPC;
	uint64_t *rt = calloc(nt * per_rt, sizeof(uint64_t));
	uint8_t *raw = calloc(nt, cs);
	int r = -ENOMEM;
	if (!rt || !raw)
		goto out;
	memcpy(rt, q->rt, q->rt_entries * sizeof(uint64_t));
	for (uint64_t i = 0; i < nb; i++) {
		uint64_t bi = c / q->rb_entries + i, lo = bi * q->rb_entries;
		uint64_t from = MAX(lo, c), to = MIN(lo + q->rb_entries, c + nb + nt);
		rt[bi] = (c + i) << q->cluster_bits;
		r = write_new_block(img, rt[bi], from - lo, to > from ? to - from : 0);
		if (r < 0)
			goto out;
	}
	for (uint64_t i = 0; i < nt * per_rt; i++)
		qcow2_put_be64(raw + 8 * i, rt[i]);
	uint64_t toff = (c + nb) << q->cluster_bits;
	r = disk_pwrite_full(img->mfd, raw, nt * cs, toff);
	if (r == 0 && fdatasync(img->mfd) < 0)
		r = -errno;
	if (r < 0)
		goto out;
	uint8_t hdr[12];
	qcow2_put_be64(hdr, toff);
	hdr[8] = (uint8_t)(nt >> 24), hdr[9] = (uint8_t)(nt >> 16);
	hdr[10] = (uint8_t)(nt >> 8), hdr[11] = (uint8_t)nt;
	r = disk_pwrite_full(img->mfd, hdr, sizeof(hdr), 48);
	if (r == 0 && fdatasync(img->mfd) < 0)
		r = -errno;
	if (r < 0)
		goto out;
	uint64_t old = q->rt_off >> q->cluster_bits, old_n = q->rt_clusters;
	free(q->rt);
	q->rt = ptr_take(&rt);
	q->rt_off = toff;
	q->rt_clusters = nt;
	q->rt_entries = nt * per_rt;
	img->file_size = MAX(img->file_size, (c + nb + nt) << q->cluster_bits);
	for (uint64_t i = 0; i < old_n && r == 0; i++)
		r = qcow2_refcount_update(img, old + i, -1, false);
out:
	free(rt);
	free(raw);
	return r;
}

/* Makes sure cluster @c has a refcount block; a new one goes at @c itself when @c is the end
 * of the file (it then counts itself). Sets *@used when it took @c. */
static int ensure_block(struct disk_image *img, uint64_t c, bool *used)
{
	struct qcow2 *q = img->q;
	uint64_t b = c / q->rb_entries;
	*used = false;
	if (b >= q->rt_entries) {
		int r = grow_reftable(img, c);
		if (r < 0)
			return r;
		*used = true;
		return 0;
	}
	if (q->rt[b])
		return 0;
	uint64_t off = c << q->cluster_bits;
	int r = write_new_block(img, off, c % q->rb_entries, 1);
	if (r == 0 && fdatasync(img->mfd) < 0)
		r = -errno; /* the block is on disk before the table points to it */
	if (r < 0)
		return r;
	uint8_t e[8];
	qcow2_put_be64(e, off);
	r = disk_pwrite_full(img->mfd, e, 8, q->rt_off + 8 * b);
	if (r < 0)
		return r;
	q->rt[b] = off;
	img->file_size = MAX(img->file_size, off + q->cluster_size);
	*used = true;
	return 0;
}

/* Looks for @n free clusters below the end of the file, from the hint on. */
static int find_free(struct disk_image *img, uint64_t n, uint64_t *ret)
{
	struct qcow2 *q = img->q;
	uint64_t end = img->file_size >> q->cluster_bits, run = 0;
	for (uint64_t c = q->free_hint; c < end; c++) {
		uint64_t v;
		if (c >= q->qlo && c <= q->qhi) {
			c = q->qhi;
			run = 0;
			continue;
		}
		int r = qcow2_refcount_get(img, c, &v);
		if (r < 0)
			return r;
		if (v) {
			run = 0;
			if (c == q->free_hint)
				q->free_hint = c + 1;
			continue;
		}
		if (++run == n) {
			*ret = c + 1 - n;
			return 0;
		}
	}
	*ret = end;
	return 0;
}

int qcow2_alloc_clusters(struct disk_image *img, uint64_t n, uint64_t *ret_off)
{
	struct qcow2 *q = img->q;
	img->file_size = ALIGN_UP(img->file_size, q->cluster_size);
	for (;;) {
		uint64_t c;
		int r = find_free(img, n, &c);
		if (r < 0)
			return r;
		if (((c + n) << q->cluster_bits) > QCOW2_OFFSET_MASK)
			return -ENOSPC;
		bool took = false;
		for (uint64_t i = 0; i < n && !took; i++)
			if ((r = ensure_block(img, c + i, &took)) < 0)
				return r;
		if (took)
			continue; /* the area changed under us: look again */
		for (uint64_t i = 0; i < n; i++)
			if ((r = refcount_set(img, c + i, 1)) < 0)
				return r;
		img->file_size = MAX(img->file_size, (c + n) << q->cluster_bits);
		*ret_off = c << q->cluster_bits;
		return 0;
	}
}

void qcow2_compressed_range(const struct qcow2 *q, uint64_t entry, uint64_t *ret_off,
			    uint64_t *ret_len)
{
	unsigned x = 62 - (q->cluster_bits - 8);
	uint64_t off = entry & ((1ULL << x) - 1);
	uint64_t sectors = ((entry >> x) & ((1ULL << (q->cluster_bits - 8)) - 1)) + 1;
	*ret_off = off;
	*ret_len = sectors * 512 - (off & 511);
}

int qcow2_free_entry(struct disk_image *img, uint64_t entry, bool punch)
{
	struct qcow2 *q = img->q;
	if (entry & QCOW2_OFLAG_COMPRESSED) {
		uint64_t off, len;
		qcow2_compressed_range(q, entry, &off, &len);
		uint64_t first = off >> q->cluster_bits, last = (off + len - 1) >> q->cluster_bits;
		for (uint64_t c = first; c <= last; c++) {
			int r = qcow2_refcount_update(img, c, -1, punch);
			if (r < 0)
				return r;
		}
		return 0;
	}
	uint64_t off = entry & QCOW2_OFFSET_MASK;
	if (!off)
		return 0;
	return qcow2_refcount_update(img, off >> q->cluster_bits, -1, punch);
}

int qcow2_meta_flush(struct disk_image *img)
{
	struct qcow2 *q = img->q;
	int r = qcow2_flush_refcounts(img);
	if (r < 0)
		return r;
	bool wrote = false;
	for (unsigned i = 0; i < q->l2c.n; i++) {
		if (!q->l2c.e[i].dirty)
			continue;
		if ((r = cache_write(img, &q->l2c.e[i])) < 0)
			return r;
		wrote = true;
	}
	q->qlo = UINT64_MAX;
	q->qhi = 0;
	if (!q->l1_dirty)
		return 0;
	if (wrote && fdatasync(img->mfd) < 0)
		return -errno;
	uint64_t bytes = q->l1_size * 8;
	uint8_t *raw = malloc(bytes);
	if (!raw)
		return -ENOMEM;
	for (uint64_t i = 0; i < q->l1_size; i++)
		qcow2_put_be64(raw + 8 * i, q->l1[i]);
	r = disk_pwrite_full(img->mfd, raw, bytes, q->l1_off);
	free(raw);
	if (r == 0)
		q->l1_dirty = false;
	return r;
}
