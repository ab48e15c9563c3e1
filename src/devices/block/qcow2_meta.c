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

/* The refcount table, after new refcount blocks: the blocks are on disk first. With @sync,
 * on disk itself when this returns; without, the caller syncs before it depends on it. */
static int write_reftable(struct disk_image *img, bool sync)
{
	struct qcow2 *q = img->q;
	uint64_t bytes = q->rt_entries * 8;
	uint8_t *raw = malloc(bytes);
	if (!raw)
		return -ENOMEM;
	for (uint64_t i = 0; i < q->rt_entries; i++)
		qcow2_put_be64(raw + 8 * i, q->rt[i]);
	int r = disk_pwrite_full(img->mfd, raw, bytes, q->rt_off);
	free(raw);
	if (r == 0 && sync && fdatasync(img->mfd) < 0)
		r = -errno;
	if (r == 0)
		q->rt_dirty = false;
	return r;
}

/* Writes the dirty entries of @c; *@ret_wrote tells whether there were any. */
static int cache_write_dirty(struct disk_image *img, struct qcow2_cache *c, bool *ret_wrote)
{
	bool wrote = false;

	for (unsigned i = 0; i < c->n; i++) {
		if (!c->e[i].dirty)
			continue;
		int r = cache_write(img, &c->e[i]);
		if (r < 0)
			return r;
		wrote = true;
	}
	*ret_wrote = wrote;
	return 0;
}

int qcow2_flush_refcounts(struct disk_image *img)
{
	bool wrote;
	int r = cache_write_dirty(img, &img->q->rbc, &wrote);
	if (r < 0)
		return r;
	if ((wrote || img->q->rt_dirty) && fdatasync(img->mfd) < 0)
		return -errno;
	return img->q->rt_dirty ? write_reftable(img, true) : 0;
}

static struct qcow2_cache_entry *cache_find(struct qcow2_cache *c, uint64_t off)
{
	if (c->e[c->last].off == off) {
		c->e[c->last].used = ++c->tick;
		return &c->e[c->last];
	}
	for (unsigned i = 0; i < c->n; i++)
		if (c->e[i].off == off) {
			c->e[i].used = ++c->tick;
			c->last = i;
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
	if (v->dirty && l2) {
		/* One fdatasync for the refcounts, then every dirty table goes: the next
		 * evictions are then clean, instead of each paying for an fdatasync. */
		int r = qcow2_flush_refcounts(img);
		for (unsigned i = 0; i < c->n && r == 0; i++)
			if (c->e[i].dirty)
				r = cache_write(img, &c->e[i]);
		if (r < 0)
			return r;
	} else if (v->dirty) {
		int r = cache_write(img, v);
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

#define PENDING_PUNCH (1ULL << 63)

/*
 * A reference to @cluster is gone from the tables in memory, but the tables on disk may still
 * hold it until the next commit: the decrement waits until then (applied earlier, a crash
 * could leave a table pointing to a cluster with refcount 0, which would be handed out again).
 */
int qcow2_refcount_release(struct disk_image *img, uint64_t cluster, bool punch)
{
	struct qcow2 *q = img->q;
	uint64_t v;
	int r = qcow2_refcount_get(img, cluster, &v);
	if (r < 0)
		return r;
	if (v == 0)
		return -EIO; /* an image whose refcounts disagree with its tables */
	if (q->npending == QCOW2_MAX_PENDING_FREES && (r = qcow2_meta_commit(img)) < 0)
		return r;
	q->pending[q->npending++] = cluster | (punch ? PENDING_PUNCH : 0);
	q->qlo = MIN(q->qlo, cluster);
	q->qhi = MAX(q->qhi, cluster);
	return 0;
}

/* Applies the deferred decrements; a cluster falling to 0 is free (after the next flush, see
 * qlo/qhi), its space punched out of the file when its data is garbage anyway (discard). */
static void apply_releases(struct disk_image *img)
{
	struct qcow2 *q = img->q;
	for (uint32_t i = 0; i < q->npending; i++) {
		uint64_t c = q->pending[i] & ~PENDING_PUNCH, v;
		if (qcow2_refcount_get(img, c, &v) < 0 || v == 0 || refcount_set(img, c, v - 1) < 0)
			continue; /* a damaged image leaks rather than fails every flush */
		if (v > 1)
			continue;
		q->dbuf_entry = 0;
		if (q->pending[i] & PENDING_PUNCH)
			fallocate(img->mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  (off_t)(c << q->cluster_bits), (off_t)q->cluster_size);
	}
	q->npending = 0;
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
	q->rt_dirty = false; /* the new table has every entry */
	img->file_size = MAX(img->file_size, (c + nb + nt) << q->cluster_bits);
	for (uint64_t i = 0; i < old_n && r == 0; i++)
		r = qcow2_refcount_release(img, old + i, false);
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
	if (r < 0)
		return r;
	/* The table on disk learns about the block at the next commit, after an fdatasync. */
	q->rt_dirty = true;
	q->rt[b] = off;
	img->file_size = MAX(img->file_size, off + q->cluster_size);
	*used = true;
	return 0;
}

/* Looks for @n free clusters below the end of the file, from the hint on, skipping those
 * freed since the last flush; runs of several clusters are looked for only so far. */
static int find_free(struct disk_image *img, uint64_t n, uint64_t *ret)
{
	struct qcow2 *q = img->q;
	uint64_t end = img->file_size >> q->cluster_bits, run = 0, scanned = 0;
	for (uint64_t c = q->free_hint; c < end; c++) {
		uint64_t v = 1;
		bool hint = c == q->free_hint;
		if (n > 1 && ++scanned > QCOW2_MAX_FREE_SCAN)
			break;
		if (c >= q->qlo && c <= q->qhi) {
			c = q->qhi;
		} else {
			int r = qcow2_refcount_get(img, c, &v);
			if (r < 0)
				return r;
		}
		if (v) {
			run = 0;
			if (hint)
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
			int r = qcow2_refcount_release(img, c, punch);
			if (r < 0)
				return r;
		}
		return 0;
	}
	uint64_t off = entry & QCOW2_OFFSET_MASK;
	if (!off)
		return 0;
	return qcow2_refcount_release(img, off >> q->cluster_bits, punch);
}

static int write_l1(struct disk_image *img)
{
	struct qcow2 *q = img->q;
	uint64_t bytes = q->l1_size * 8;
	uint8_t *raw = malloc(bytes);
	if (!raw)
		return -ENOMEM;
	for (uint64_t i = 0; i < q->l1_size; i++)
		qcow2_put_be64(raw + 8 * i, q->l1[i]);
	int r = disk_pwrite_full(img->mfd, raw, bytes, q->l1_off);
	free(raw);
	if (r == 0)
		q->l1_dirty = false;
	return r;
}

int qcow2_meta_commit(struct disk_image *img)
{
	struct qcow2 *q = img->q;
	int r = qcow2_flush_refcounts(img); /* increments first, synced */
	if (r < 0)
		return r;
	bool wrote;
	if ((r = cache_write_dirty(img, &q->l2c, &wrote)) < 0)
		return r;
	if (q->l1_dirty) {
		if (wrote && fdatasync(img->mfd) < 0)
			return -errno;
		if ((r = write_l1(img)) < 0)
			return r;
		wrote = true;
	}
	if (q->npending) {
		if (wrote && fdatasync(img->mfd) < 0)
			return -errno;
		apply_releases(img);
	}
	return 0;
}

/* The stages of a flush (qcow2_meta_flush_step), in order. */
enum {
	FLUSH_REFCOUNTS, /* the refcount blocks (increments): synced before anything points there */
	FLUSH_REFTABLE,	 /* a refcount table that gained blocks */
	FLUSH_L2,	 /* the L2 tables: synced before the L1 table points to new ones */
	FLUSH_L1,	 /* the L1 table: synced before the decrements */
	FLUSH_RELEASES,	 /* the decrements, then the end of the reuse quarantine */
};

static int flush_stage(struct disk_image *img)
{
	struct qcow2 *q = img->q;
	bool wrote;
	int r;

	switch (q->flush_stage) {
	case FLUSH_REFCOUNTS:
		if ((r = cache_write_dirty(img, &q->rbc, &wrote)) < 0)
			return r;
		q->flush_stage = FLUSH_REFTABLE;
		if (wrote || q->rt_dirty)
			return 1;
		/* fall through */
	case FLUSH_REFTABLE:
		q->flush_stage = FLUSH_L2;
		if (q->rt_dirty)
			return write_reftable(img, false) < 0 ? -EIO : 1;
		/* fall through */
	case FLUSH_L2:
		if ((r = cache_write_dirty(img, &q->l2c, &wrote)) < 0)
			return r;
		q->flush_wrote = wrote;
		q->flush_stage = FLUSH_L1;
		if (q->l1_dirty && wrote)
			return 1;
		/* fall through */
	case FLUSH_L1:
		if (q->l1_dirty) {
			if ((r = write_l1(img)) < 0)
				return r;
			q->flush_wrote = true;
		}
		q->flush_stage = FLUSH_RELEASES;
		if (q->npending && q->flush_wrote)
			return 1;
		/* fall through */
	default:
		if (q->npending)
			apply_releases(img);
		if ((r = cache_write_dirty(img, &q->rbc, &wrote)) < 0)
			return r;
		q->free_hint = MIN(q->free_hint, q->qlo);
		q->qlo = UINT64_MAX;
		q->qhi = 0;
		q->flush_stage = FLUSH_REFCOUNTS;
		return 0;
	}
}

int qcow2_meta_flush_step(struct disk_image *img)
{
	int r = flush_stage(img);

	if (r < 0)
		qcow2_meta_flush_abort(img);
	return r;
}

void qcow2_meta_flush_abort(struct disk_image *img)
{
	img->q->flush_stage = FLUSH_REFCOUNTS; /* the next flush starts over */
}

int qcow2_meta_flush(struct disk_image *img)
{
	int r;

	while ((r = qcow2_meta_flush_step(img)) == 1) {
		if (fdatasync(img->mfd) < 0) {
			qcow2_meta_flush_abort(img);
			return -errno;
		}
	}
	return r;
}
