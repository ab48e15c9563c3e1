/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 at run time: guest ranges to host extents (allocating on write, with copy-on-write of
 * the rest of the cluster), compressed and backing reads, discard, write-zeroes, flush. Every
 * L2 entry read here is checked again (the open-time walk does not stop a later bug or a
 * cache reload from handing out a bad offset): a bad one fails the request with -EIO.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef CUBICLE_HAVE_ZLIB
#include <zlib.h>
#endif

#include "devices/block/qcow2.h"
#include "util/util.h"

enum old_kind { OLD_NONE, OLD_ZERO, OLD_DATA, OLD_COMPRESSED, OLD_BACKING };

/* What an L2 entry means for a read; -EIO for an entry no valid image has. */
static int entry_kind(const struct disk_image *img, uint64_t e, enum old_kind *ret)
{
	const struct qcow2 *q = img->q;
	if (e & QCOW2_OFLAG_COMPRESSED) {
		*ret = OLD_COMPRESSED;
		return 0;
	}
	uint64_t off = e & QCOW2_OFFSET_MASK;
	if ((e & QCOW2_L2_RESERVED) || !IS_ALIGNED(off, q->cluster_size) ||
	    ((e & QCOW2_OFLAG_ZERO) && q->version < 3))
		return -EIO;
	if (e & QCOW2_OFLAG_ZERO)
		*ret = OLD_ZERO;
	else if (off)
		*ret = OLD_DATA;
	else
		*ret = q->backing ? OLD_BACKING : OLD_NONE;
	return 0;
}

/* The L2 entry of guest cluster @vi (0 when its table is not allocated). */
static int l2_entry(struct disk_image *img, uint64_t vi, uint64_t *ret)
{
	struct qcow2 *q = img->q;
	uint64_t l1i = vi / q->l2_entries, l2off;
	if (l1i >= q->l1_size)
		return -EIO;
	l2off = q->l1[l1i] & QCOW2_OFFSET_MASK;
	if (!l2off) {
		*ret = 0;
		return 0;
	}
	uint8_t *l2;
	int r = qcow2_l2_get(img, l2off, &l2);
	if (r < 0)
		return r;
	*ret = qcow2_be64(l2 + 8 * (vi % q->l2_entries));
	return 0;
}

static int decompress(struct disk_image *img, uint64_t e)
{
	struct qcow2 *q = img->q;
	if (q->dbuf_entry == e)
		return 0;
#ifdef CUBICLE_HAVE_ZLIB
	uint64_t off, len;
	qcow2_compressed_range(q, e, &off, &len);
	len = MIN(len, 2 * q->cluster_size);
	int r = disk_pread_full(img->mfd, q->cbuf, len, off);
	if (r < 0)
		return r;
	z_stream *zs = q->zs;
	if (!zs) {
		zs = calloc(1, sizeof(*zs));
		if (!zs)
			return -ENOMEM;
		if (inflateInit2(zs, -12) != Z_OK) {
			free(zs);
			return -ENOMEM;
		}
		q->zs = zs;
	} else if (inflateReset(zs) != Z_OK) {
		return -EIO;
	}
	zs->next_in = q->cbuf;
	zs->avail_in = (uInt)len;
	zs->next_out = q->dbuf;
	zs->avail_out = (uInt)q->cluster_size;
	r = inflate(zs, Z_FINISH);
	if ((r != Z_STREAM_END && r != Z_BUF_ERROR && r != Z_OK) || zs->avail_out != 0)
		return -EIO;
	q->dbuf_entry = e;
	return 0;
#else
	return -EIO; /* built without zlib: compressed clusters cannot be read */
#endif
}

static int backing_read(struct disk_image *img, uint64_t off, void *buf, uint64_t len)
{
	struct disk_image *b = img->q->backing;
	uint64_t bsize = disk_image_size(b), n = 0;
	if (off < bsize) {
		n = MIN(len, bsize - off);
		int r = disk_image_read_sync(b, off, buf, n);
		if (r < 0)
			return r;
	}
	memset((uint8_t *)buf + n, 0, len - n);
	return 0;
}

/* Reads @len bytes at @co inside guest cluster @vi, whose L2 entry is @e, into @buf. */
static int read_cluster(struct disk_image *img, uint64_t vi, uint64_t e, uint64_t co, void *buf,
			uint64_t len)
{
	struct qcow2 *q = img->q;
	enum old_kind k;
	int r = entry_kind(img, e, &k);
	if (r < 0)
		return r;
	switch (k) {
	case OLD_COMPRESSED:
		if ((r = decompress(img, e)) < 0)
			return r;
		memcpy(buf, q->dbuf + co, len);
		return 0;
	case OLD_DATA:
		return disk_pread_full(img->mfd, buf, len, (e & QCOW2_OFFSET_MASK) + co);
	case OLD_BACKING:
		return backing_read(img, (vi << q->cluster_bits) + co, buf, len);
	default:
		memset(buf, 0, len);
		return 0;
	}
}

static int qcow2_read_sync(struct disk_image *img, uint64_t off, void *buf, uint64_t len)
{
	struct qcow2 *q = img->q;
	uint8_t *p = buf;
	while (len) {
		uint64_t vi = off >> q->cluster_bits, co = off & (q->cluster_size - 1);
		uint64_t n = MIN(len, q->cluster_size - co), e;
		int r = l2_entry(img, vi, &e);
		if (r == 0)
			r = read_cluster(img, vi, e, co, p, n);
		if (r < 0)
			return r;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int map_read(struct disk_image *img, uint64_t off, uint64_t len, struct disk_extent *ret)
{
	struct qcow2 *q = img->q;
	uint64_t vi = off >> q->cluster_bits, co = off & (q->cluster_size - 1), e;
	int r = l2_entry(img, vi, &e);
	enum old_kind k;
	if (r == 0)
		r = entry_kind(img, e, &k);
	if (r < 0)
		return r;
	uint64_t n = MIN(len, q->cluster_size - co), host = (e & QCOW2_OFFSET_MASK) + co;
	/* Following clusters of the same table join the extent while they continue it. */
	while (n < len && (k == OLD_DATA || k == OLD_ZERO || k == OLD_NONE) &&
	       (vi + 1) % q->l2_entries != 0) {
		uint64_t e2;
		enum old_kind k2;
		if (l2_entry(img, vi + 1, &e2) < 0 || entry_kind(img, e2, &k2) < 0)
			break;
		bool zero = k == OLD_ZERO || k == OLD_NONE,
		     zero2 = k2 == OLD_ZERO || k2 == OLD_NONE;
		if (zero != zero2 || (!zero && (e2 & QCOW2_OFFSET_MASK) != host + n))
			break;
		vi++;
		n = MIN(len, n + q->cluster_size);
	}
	*ret = (struct disk_extent){ .fd = img->fd, .len = n };
	if (k == OLD_DATA) {
		ret->kind = DISK_EXTENT_DATA;
		ret->file_off = host;
	} else {
		ret->kind = k == OLD_ZERO || k == OLD_NONE ? DISK_EXTENT_ZERO : DISK_EXTENT_SYNC;
	}
	return 0;
}

/* The L2 table for guest cluster @vi, allocated (zeroed) when missing. */
static int l2_for_write(struct disk_image *img, uint64_t vi, uint64_t *ret_l2off)
{
	struct qcow2 *q = img->q;
	uint64_t l1i = vi / q->l2_entries, l1e = q->l1[l1i], l2off = l1e & QCOW2_OFFSET_MASK;
	int r;
	if (l2off && !(l1e & QCOW2_OFLAG_COPIED)) {
		/* Only internal snapshots share L2 tables, and writable images have none. */
		uint64_t rc;
		if ((r = qcow2_refcount_get(img, l2off >> q->cluster_bits, &rc)) < 0)
			return r;
		if (rc != 1)
			return -EIO;
		q->l1[l1i] |= QCOW2_OFLAG_COPIED;
		q->l1_dirty = true;
	}
	if (!l2off) {
		uint8_t *l2;
		if ((r = qcow2_alloc_clusters(img, 1, &l2off)) < 0)
			return r;
		if ((r = qcow2_l2_new(img, l2off, &l2)) < 0)
			return r;
		q->l1[l1i] = l2off | QCOW2_OFLAG_COPIED;
		q->l1_dirty = true;
	}
	*ret_l2off = l2off;
	return 0;
}

static int l2_set(struct disk_image *img, uint64_t l2off, uint64_t vi, uint64_t e)
{
	uint8_t *l2;
	int r = qcow2_l2_get(img, l2off, &l2);
	if (r < 0)
		return r;
	qcow2_put_be64(l2 + 8 * (vi % img->q->l2_entries), e);
	qcow2_l2_mark_dirty(img, l2off);
	return 0;
}

/* Allocates @n clusters; makes sure the file covers them, so reads never come up short. */
static int alloc_data(struct disk_image *img, uint64_t n, uint64_t *ret_off, bool *ret_fresh)
{
	uint64_t end = img->file_size;
	int r = qcow2_alloc_clusters(img, n, ret_off);
	if (r < 0)
		return r;
	*ret_fresh = *ret_off >= end;
	if (*ret_fresh && ftruncate(img->mfd, (off_t)(*ret_off + (n << img->q->cluster_bits))) < 0)
		return -errno;
	return 0;
}

/* How many clusters from @vi on (same L2 table) hold no data of their own and are all
 * covered by @len: they need no copy-on-write and can be allocated together. */
static uint64_t fresh_run(struct disk_image *img, uint8_t *l2, uint64_t vi, uint64_t len)
{
	struct qcow2 *q = img->q;
	uint64_t k = 0;
	while ((k + 1) << q->cluster_bits <= len) {
		uint64_t e = qcow2_be64(l2 + 8 * ((vi + k) % q->l2_entries));
		if (e & ~QCOW2_OFLAG_ZERO)
			break;
		k++;
		if ((vi + k) % q->l2_entries == 0)
			break;
	}
	return k;
}

/* Gives guest cluster @vi (entry @e) a cluster of its own holding the old contents, except
 * the [@co, @co + @n) the caller writes next. Returns its host offset. */
static int cow_cluster(struct disk_image *img, uint64_t l2off, uint64_t vi, uint64_t e, uint64_t co,
		       uint64_t n, uint64_t *ret_host)
{
	struct qcow2 *q = img->q;
	enum old_kind k;
	int r = entry_kind(img, e, &k);
	if (r < 0)
		return r;
	bool partial = n < q->cluster_size, fresh = false, in_place;
	uint64_t host = e & QCOW2_OFFSET_MASK;
	/* A preallocated zero cluster (v3) of ours is reused, zeroed around the write. */
	in_place = k == OLD_ZERO && host && (e & QCOW2_OFLAG_COPIED);
	if (partial && (r = read_cluster(img, vi, e, 0, q->cow, q->cluster_size)) < 0)
		return r;
	if (!in_place && (r = alloc_data(img, 1, &host, &fresh)) < 0)
		return r;
	bool zeros = k == OLD_ZERO || k == OLD_NONE;
	if (partial && !(zeros && fresh)) {
		if ((r = disk_pwrite_full(img->mfd, q->cow, q->cluster_size, host)) < 0)
			return r;
	}
	if ((r = l2_set(img, l2off, vi, host | QCOW2_OFLAG_COPIED)) < 0)
		return r;
	if (!in_place && (k == OLD_COMPRESSED || k == OLD_DATA || (k == OLD_ZERO && host)))
		r = qcow2_free_entry(img, e, false);
	*ret_host = host;
	return r;
}

static int map_write(struct disk_image *img, uint64_t off, uint64_t len, struct disk_extent *ret)
{
	struct qcow2 *q = img->q;
	uint64_t vi = off >> q->cluster_bits, co = off & (q->cluster_size - 1), l2off;
	uint64_t n = MIN(len, q->cluster_size - co), e, host;
	int r = l2_for_write(img, vi, &l2off);
	uint8_t *l2;
	if (r == 0)
		r = qcow2_l2_get(img, l2off, &l2);
	if (r < 0)
		return r;
	e = qcow2_be64(l2 + 8 * (vi % q->l2_entries));
	uint64_t run = co == 0 ? fresh_run(img, l2, vi, len) : 0;
	if ((e & QCOW2_OFLAG_COPIED) && !(e & (QCOW2_OFLAG_COMPRESSED | QCOW2_OFLAG_ZERO)) &&
	    (e & QCOW2_OFFSET_MASK)) {
		enum old_kind k;
		if ((r = entry_kind(img, e, &k)) < 0)
			return r;
		host = e & QCOW2_OFFSET_MASK;
		/* In place; following clusters join while contiguous and ours. */
		while (n < len && (vi + 1) % q->l2_entries) {
			uint64_t e2 = qcow2_be64(l2 + 8 * ((vi + 1) % q->l2_entries));
			if (e2 != ((host + co + n) | QCOW2_OFLAG_COPIED))
				break;
			vi++;
			n = MIN(len, n + q->cluster_size);
		}
	} else if (run > 1) {
		bool fresh;
		if ((r = alloc_data(img, run, &host, &fresh)) < 0)
			return r;
		for (uint64_t i = 0; i < run && r == 0; i++)
			r = l2_set(img, l2off, vi + i,
				   (host + (i << q->cluster_bits)) | QCOW2_OFLAG_COPIED);
		n = run << q->cluster_bits;
	} else {
		r = cow_cluster(img, l2off, vi, e, co, n, &host);
	}
	if (r < 0)
		return r;
	*ret = (struct disk_extent){
		.kind = DISK_EXTENT_DATA, .fd = img->fd, .file_off = host + co, .len = n
	};
	return 0;
}

static int qcow2_map(struct disk_image *img, uint64_t off, uint64_t len, bool write,
		     struct disk_extent *ret)
{
	return write ? map_write(img, off, len, ret) : map_read(img, off, len, ret);
}

enum zero_mode { ZM_DISCARD, ZM_ZERO, ZM_ZERO_UNMAP };

/* Makes whole guest cluster @vi read as zeros (or, for discard, as whatever is cheapest).
 * Returns 1 when it could not (v2 with a backing file: the caller writes zeros). */
static int zero_cluster(struct disk_image *img, uint64_t vi, enum zero_mode m)
{
	struct qcow2 *q = img->q;
	uint64_t e, l2off;
	enum old_kind k;
	int r = l2_entry(img, vi, &e);
	if (r == 0)
		r = entry_kind(img, e, &k);
	if (r < 0)
		return r;
	if (k == OLD_NONE || (k == OLD_ZERO && !(e & QCOW2_OFFSET_MASK)))
		return 0; /* reads zeros already */
	if (k == OLD_ZERO && m != ZM_ZERO_UNMAP && m != ZM_DISCARD)
		return 0;
	bool backing = q->backing != NULL;
	if (backing && q->version < 3)
		return m == ZM_DISCARD ? 0 : 1;
	if (k == OLD_BACKING && m == ZM_DISCARD)
		return 0;
	if ((r = l2_for_write(img, vi, &l2off)) < 0)
		return r;
	uint64_t keep = e & QCOW2_OFFSET_MASK;
	/* Without unmap a cluster of ours stays allocated, marked zero (v3). */
	bool prealloc =
		m == ZM_ZERO && q->version >= 3 && k == OLD_DATA && (e & QCOW2_OFLAG_COPIED);
	uint64_t ne = prealloc ? keep | QCOW2_OFLAG_COPIED | QCOW2_OFLAG_ZERO
			       : (backing ? QCOW2_OFLAG_ZERO : 0);
	if (q->version >= 3 && !prealloc && m != ZM_DISCARD)
		ne = QCOW2_OFLAG_ZERO; /* also hides data a later backing change could show */
	if ((r = l2_set(img, l2off, vi, ne)) < 0)
		return r;
	if (!prealloc && (k == OLD_DATA || k == OLD_COMPRESSED || k == OLD_ZERO))
		r = qcow2_free_entry(img, e, true);
	return r;
}

static int write_zeros_slow(struct disk_image *img, uint64_t off, uint64_t len)
{
	while (len) {
		struct disk_extent x;
		int r = disk_image_map(img, off, MIN(len, img->q->cluster_size), true, &x);
		if (r < 0)
			return r;
		uint8_t *z = calloc(1, x.len);
		if (!z)
			return -ENOMEM;
		r = disk_pwrite_full(img->mfd, z, x.len, x.file_off);
		free(z);
		if (r < 0)
			return r;
		off += x.len;
		len -= x.len;
	}
	return 0;
}

static int zero_range(struct disk_image *img, uint64_t off, uint64_t len, enum zero_mode m)
{
	struct qcow2 *q = img->q;
	uint64_t end = off + len, cs = q->cluster_size;
	/* The last cluster counts as whole when the range ends at the end of the disk. */
	uint64_t first = ALIGN_UP(off, cs),
		 last = end == img->size ? ALIGN_UP(end, cs) : ALIGN_DOWN(end, cs);
	int r = 0;
	if (first >= last) {
		return m == ZM_DISCARD ? 0 : write_zeros_slow(img, off, len);
	}
	if (m != ZM_DISCARD && off < first && (r = write_zeros_slow(img, off, first - off)) < 0)
		return r;
	uint64_t per_l2 = q->l2_entries << q->cluster_bits;
	for (uint64_t c = first; c < last; c += cs) {
		uint64_t l1i = (c >> q->cluster_bits) / q->l2_entries;
		if (!q->backing && !(q->l1[l1i] & QCOW2_OFFSET_MASK)) {
			c = (l1i + 1) * per_l2 - cs; /* no table: all of it reads zeros already */
			continue;
		}
		r = zero_cluster(img, c >> q->cluster_bits, m);
		if (r == 1)
			r = write_zeros_slow(img, c, MIN(cs, end - c));
		if (r < 0)
			return r;
	}
	if (m != ZM_DISCARD && last < end)
		r = write_zeros_slow(img, last, end - last);
	return r;
}

static int qcow2_discard(struct disk_image *img, uint64_t off, uint64_t len)
{
	return zero_range(img, off, len, ZM_DISCARD);
}

static int qcow2_write_zeroes(struct disk_image *img, uint64_t off, uint64_t len, bool unmap)
{
	return zero_range(img, off, len, unmap ? ZM_ZERO_UNMAP : ZM_ZERO);
}

static int qcow2_flush(struct disk_image *img)
{
	return qcow2_meta_flush(img);
}

static void qcow2_close(struct disk_image *img)
{
	struct qcow2 *q = img->q;
	if (!q)
		return;
	qcow2_cache_free(&q->l2c);
	qcow2_cache_free(&q->rbc);
	disk_image_close(q->backing);
#ifdef CUBICLE_HAVE_ZLIB
	if (q->zs)
		inflateEnd(q->zs);
#endif
	free(q->zs);
	free(q->l1);
	free(q->rt);
	free(q->cbuf);
	free(q->dbuf);
	free(q->cow);
	free(q->pending);
	free(q);
	img->q = NULL;
}

const struct disk_format_ops disk_qcow2_ops = {
	.name = "qcow2",
	.map = qcow2_map,
	.read_sync = qcow2_read_sync,
	.discard = qcow2_discard,
	.write_zeroes = qcow2_write_zeroes,
	.flush = qcow2_flush,
	.flush_step = qcow2_meta_flush_step,
	.close = qcow2_close,
};
