/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Opening qcow2 images: the header and its extensions, the features cubicle refuses, the L1
 * and refcount tables, and a walk of every table that refuses an image whose metadata lies
 * outside the file, is misaligned, overlaps itself, or overlaps data (for writable images also
 * a cluster in use with refcount 0, which the allocator would hand out again). After this,
 * qcow2_io.c may trust the shapes (sizes, table bounds) but still checks each entry it reads.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/block/qcow2.h"
#include "util/util.h"

#define HDR_V2_LEN     72
#define HDR_V3_LEN     104
#define EXT_END	       0x00000000
#define EXT_DATA_FILE  0x44415441
#define EXT_ENCRYPTION 0x0537be77
#define KNOWN_INCOMPAT (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT)

struct qcow2_hdr {
	uint32_t version;
	uint64_t backing_off;
	uint32_t backing_len;
	uint32_t cluster_bits;
	uint64_t size;
	uint32_t crypt;
	uint64_t incompat;
	uint64_t autoclear;
	uint32_t refcount_order;
	uint32_t hdr_len;
};

static int bad(struct disk_image *img, char *err, size_t errlen, int r, const char *what)
{
	return error_set(err, errlen, r, "'%s': %s qcow2 image: %s", img->path,
			 r == -ENOTSUP ? "unsupported" : "corrupt", what);
}

static int parse_header(struct disk_image *img, const uint8_t *b, struct qcow2_hdr *h, char *err,
			size_t errlen)
{
	h->version = qcow2_be32(b + 4);
	h->backing_off = qcow2_be64(b + 8);
	h->backing_len = qcow2_be32(b + 16);
	h->cluster_bits = qcow2_be32(b + 20);
	h->size = qcow2_be64(b + 24);
	h->crypt = qcow2_be32(b + 32);
	if (h->version != 2 && h->version != 3)
		return bad(img, err, errlen, -ENOTSUP, "version is not 2 or 3");
	h->incompat = h->version == 3 ? qcow2_be64(b + 72) : 0;
	h->autoclear = h->version == 3 ? qcow2_be64(b + 88) : 0;
	h->refcount_order = h->version == 3 ? qcow2_be32(b + 96) : 4;
	h->hdr_len = h->version == 3 ? qcow2_be32(b + 100) : HDR_V2_LEN;
	if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS || h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
		return bad(img, err, errlen, -EINVAL, "cluster size out of 512 bytes - 2 MiB");
	if (h->version == 3 &&
	    (h->hdr_len < HDR_V3_LEN || h->hdr_len % 8 || h->hdr_len > (1u << h->cluster_bits)))
		return bad(img, err, errlen, -EINVAL, "bad header length");
	if (h->crypt)
		return bad(img, err, errlen, -ENOTSUP, "encrypted");
	if (h->incompat & QCOW2_INCOMPAT_DATA_FILE)
		return bad(img, err, errlen, -ENOTSUP, "external data file");
	if (h->incompat & QCOW2_INCOMPAT_EXTL2)
		return bad(img, err, errlen, -ENOTSUP, "extended L2 entries");
	if (h->incompat & QCOW2_INCOMPAT_COMPRESSION)
		return bad(img, err, errlen, -ENOTSUP, "compression type other than zlib");
	if (h->incompat & ~KNOWN_INCOMPAT)
		return bad(img, err, errlen, -ENOTSUP, "unknown incompatible features");
	if (h->incompat & QCOW2_INCOMPAT_DIRTY)
		return bad(img, err, errlen, -ENOTSUP,
			   "dirty (lazy refcounts not written back): run qemu-img check -r all");
	if ((h->incompat & QCOW2_INCOMPAT_CORRUPT) && !img->readonly)
		return bad(img, err, errlen, -EROFS,
			   "marked corrupt: only read-only use, or qemu-img check -r all");
	if (h->refcount_order > 6)
		return bad(img, err, errlen, -EINVAL, "refcount order above 6");
	if (h->size > QCOW2_MAX_VIRTUAL_SIZE)
		return bad(img, err, errlen, -ENOTSUP, "virtual size too large");
	return 0;
}

/* The header extensions: only a refusal matters here (unknown ones are ignored, as the spec
 * allows). */
static int check_extensions(struct disk_image *img, const uint8_t *b, const struct qcow2_hdr *h,
			    char *err, size_t errlen)
{
	uint64_t cs = 1ULL << h->cluster_bits, p = h->hdr_len;
	while (p + 8 <= cs) {
		uint32_t type = qcow2_be32(b + p), len = qcow2_be32(b + p + 4);
		if (type == EXT_END)
			return 0;
		if (type == EXT_DATA_FILE)
			return bad(img, err, errlen, -ENOTSUP, "external data file");
		if (type == EXT_ENCRYPTION)
			return bad(img, err, errlen, -ENOTSUP, "encrypted");
		p += 8 + ALIGN_UP((uint64_t)len, 8);
	}
	return bad(img, err, errlen, -EINVAL, "header extensions run past the first cluster");
}

static int open_backing(struct disk_image *img, const uint8_t *b, const struct qcow2_hdr *h,
			char *err, size_t errlen)
{
	uint64_t cs = 1ULL << h->cluster_bits;
	if (h->backing_len == 0 || h->backing_len > QCOW2_MAX_BACKING_NAME || h->backing_off > cs ||
	    cs - h->backing_off < h->backing_len)
		return bad(img, err, errlen, -EINVAL, "bad backing file name");
	char name[QCOW2_MAX_BACKING_NAME + 1];
	memcpy(name, b + h->backing_off, h->backing_len);
	name[h->backing_len] = 0;
	if (!img->allow_backing)
		return error_set(err, errlen, -ENOTSUP,
				 "'%s': has a backing file ('%s'), and backing files are not "
				 "allowed",
				 img->path, name);
	if (img->depth + 1 > QCOW2_MAX_BACKING_DEPTH)
		return bad(img, err, errlen, -ENOTSUP, "backing chain too deep");
	char path[sizeof(img->path) + sizeof(name)];
	const char *slash = strrchr(img->path, '/');
	if (name[0] == '/' || !slash)
		snprintf(path, sizeof(path), "%s", name);
	else
		snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - img->path), img->path, name);
	struct disk_image_opts o = { .readonly = true, .allow_backing = true };
	return disk_image_open_depth(path, &o, img->depth + 1, &img->q->backing, err, errlen);
}

static int load_table(struct disk_image *img, uint64_t off, uint64_t n, uint64_t **ret)
{
	uint64_t *t = malloc(MAX(n, 1) * 8);
	if (!t)
		return -ENOMEM;
	int r = disk_pread_full(img->mfd, t, n * 8, off);
	if (r < 0) {
		free(t);
		return r;
	}
	for (uint64_t i = 0; i < n; i++)
		t[i] = qcow2_be64(&t[i]);
	*ret = t;
	return 0;
}

/* A table of @bytes at @off: aligned, inside the file. */
static bool table_ok(const struct disk_image *img, uint64_t off, uint64_t bytes)
{
	return off && IS_ALIGNED(off, img->q->cluster_size) && !range_overflows(off, bytes) &&
	       off + bytes <= img->file_size;
}

static int load_tables(struct disk_image *img, const uint8_t *b, const struct qcow2_hdr *h,
		       char *err, size_t errlen)
{
	struct qcow2 *q = img->q;
	q->l1_size = qcow2_be32(b + 36);
	q->l1_off = qcow2_be64(b + 40);
	q->rt_off = qcow2_be64(b + 48);
	q->rt_clusters = qcow2_be32(b + 56);
	q->nb_snapshots = qcow2_be32(b + 60);
	uint64_t per_l1 = q->l2_entries * q->cluster_size;
	if (q->l1_size < (h->size + per_l1 - 1) / per_l1)
		return bad(img, err, errlen, -EINVAL, "L1 table too small for the size");
	if (q->l1_size * 8 > QCOW2_MAX_L1_BYTES)
		return bad(img, err, errlen, -EINVAL, "L1 table too large");
	if (q->l1_size && !table_ok(img, q->l1_off, q->l1_size * 8))
		return bad(img, err, errlen, -EINVAL, "L1 table outside the file or misaligned");
	if (q->rt_clusters == 0 || q->rt_clusters * q->cluster_size > QCOW2_MAX_REFTABLE_BYTES)
		return bad(img, err, errlen, -EINVAL, "refcount table size out of bounds");
	if (!table_ok(img, q->rt_off, q->rt_clusters * q->cluster_size))
		return bad(img, err, errlen, -EINVAL,
			   "refcount table outside the file or misaligned");
	if (q->nb_snapshots && !img->readonly)
		return bad(img, err, errlen, -ENOTSUP,
			   "internal snapshots (open it read-only, or delete them)");
	q->rt_entries = q->rt_clusters * q->cluster_size / 8;
	int r = load_table(img, q->l1_off, q->l1_size, &q->l1);
	if (r == 0)
		r = load_table(img, q->rt_off, q->rt_entries, &q->rt);
	if (r < 0)
		return error_set(err, errlen, r, "'%s': cannot read the qcow2 tables: %s",
				 img->path, strerror(-r));
	for (uint64_t i = 0; i < q->rt_entries; i++)
		if (q->rt[i] &&
		    ((q->rt[i] & QCOW2_RT_RESERVED) || !table_ok(img, q->rt[i], q->cluster_size)))
			return bad(img, err, errlen, -EINVAL,
				   "refcount block outside the file or misaligned");
	for (uint64_t i = 0; i < q->l1_size; i++) {
		uint64_t l2 = q->l1[i] & QCOW2_OFFSET_MASK;
		if ((q->l1[i] & QCOW2_L1_RESERVED) || (l2 && !table_ok(img, l2, q->cluster_size)))
			return bad(img, err, errlen, -EINVAL,
				   "L2 table outside the file or misaligned");
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static bool in_set(const uint64_t *set, uint64_t n, uint64_t c)
{
	return bsearch(&c, set, n, sizeof(*set), cmp_u64) != NULL;
}

/* The host clusters holding metadata, sorted: header, L1, refcount table and blocks, L2s. */
static int metadata_set(struct disk_image *img, uint64_t **ret, uint64_t *ret_n)
{
	struct qcow2 *q = img->q;
	unsigned cb = q->cluster_bits;
	uint64_t l1c = (q->l1_size * 8 + q->cluster_size - 1) >> cb;
	uint64_t max = 1 + l1c + q->rt_clusters + q->rt_entries + q->l1_size, n = 0;
	uint64_t *s = malloc(max * sizeof(*s));
	if (!s)
		return -ENOMEM;
	s[n++] = 0;
	for (uint64_t i = 0; i < l1c; i++)
		s[n++] = (q->l1_off >> cb) + i;
	for (uint64_t i = 0; i < q->rt_clusters; i++)
		s[n++] = (q->rt_off >> cb) + i;
	for (uint64_t i = 0; i < q->rt_entries; i++)
		if (q->rt[i])
			s[n++] = q->rt[i] >> cb;
	for (uint64_t i = 0; i < q->l1_size; i++)
		if (q->l1[i] & QCOW2_OFFSET_MASK)
			s[n++] = (q->l1[i] & QCOW2_OFFSET_MASK) >> cb;
	qsort(s, n, sizeof(*s), cmp_u64);
	*ret = s;
	*ret_n = n;
	return 0;
}

/* A data cluster: inside the file, not metadata, and (writable) counted. */
static const char *check_data(struct disk_image *img, const uint64_t *set, uint64_t n, uint64_t c)
{
	if (c << img->q->cluster_bits >= ALIGN_UP(img->file_size, img->q->cluster_size))
		return "data cluster outside the file";
	if (in_set(set, n, c))
		return "data cluster overlaps metadata";
	uint64_t rc = 1;
	if (!img->readonly && qcow2_refcount_get(img, c, &rc) < 0)
		return "cannot read a refcount block";
	return rc ? NULL : "data cluster in use with refcount 0";
}

static const char *check_l2_entry(struct disk_image *img, const uint64_t *set, uint64_t n,
				  uint64_t e)
{
	struct qcow2 *q = img->q;
	if (e & QCOW2_OFLAG_COMPRESSED) {
		uint64_t off, len;
		qcow2_compressed_range(q, e & ~QCOW2_OFLAG_COPIED, &off, &len);
		if ((e & QCOW2_OFLAG_COPIED) || off >= img->file_size)
			return "compressed cluster outside the file";
		uint64_t first = off >> q->cluster_bits, last = (off + len - 1) >> q->cluster_bits;
		/* QEMU's last compressed cluster may end past the end of the file */
		for (uint64_t c = first; c <= last; c++) {
			if (c > first && c << q->cluster_bits >= img->file_size)
				break;
			const char *why = check_data(img, set, n, c);
			if (why)
				return why;
		}
		return NULL;
	}
	if (e & QCOW2_L2_RESERVED)
		return "reserved bits set in an L2 entry";
	if ((e & QCOW2_OFLAG_ZERO) && q->version < 3)
		return "zero flag in a version 2 image";
	uint64_t off = e & QCOW2_OFFSET_MASK;
	if (!off)
		return NULL;
	if (!IS_ALIGNED(off, q->cluster_size))
		return "data cluster offset not cluster-aligned";
	return check_data(img, set, n, off >> q->cluster_bits);
}

static int check_tables(struct disk_image *img, char *err, size_t errlen)
{
	struct qcow2 *q = img->q;
	_cleanup_free_ uint64_t *set = NULL;
	uint64_t n;
	int r = metadata_set(img, &set, &n);
	if (r < 0)
		return error_set(err, errlen, r, "out of memory");
	for (uint64_t i = 1; i < n; i++)
		if (set[i] == set[i - 1])
			return bad(img, err, errlen, -EINVAL, "metadata tables overlap");
	for (uint64_t i = 0; !img->readonly && i < n; i++) {
		uint64_t rc;
		if (qcow2_refcount_get(img, set[i], &rc) < 0 || rc == 0)
			return bad(img, err, errlen, -EINVAL, "metadata cluster with refcount 0");
	}
	for (uint64_t i = 0; i < q->l1_size; i++) {
		uint64_t l2off = q->l1[i] & QCOW2_OFFSET_MASK;
		uint8_t *l2;
		if (!l2off)
			continue;
		r = qcow2_l2_get(img, l2off, &l2);
		if (r < 0)
			return error_set(err, errlen, r, "'%s': cannot read an L2 table: %s",
					 img->path, strerror(-r));
		for (uint64_t j = 0; j < q->l2_entries; j++) {
			const char *why = check_l2_entry(img, set, n, qcow2_be64(l2 + 8 * j));
			if (why)
				return bad(img, err, errlen, -EINVAL, why);
			/* qcow2_refcount_get may have evicted nothing from the L2 cache, but be
			 * safe against a future change: reload the table pointer. */
			if ((r = qcow2_l2_get(img, l2off, &l2)) < 0)
				return r;
		}
	}
	return 0;
}

static int qcow2_alloc_state(struct disk_image *img, uint32_t cluster_bits)
{
	struct qcow2 *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	img->q = q;
	q->cluster_bits = cluster_bits;
	q->cluster_size = 1ULL << cluster_bits;
	q->l2_entries = q->cluster_size / 8;
	q->qlo = UINT64_MAX;
	int r = qcow2_cache_init(&q->l2c, QCOW2_L2_CACHE_BYTES, q->cluster_size);
	if (r == 0)
		r = qcow2_cache_init(&q->rbc, QCOW2_REFCOUNT_CACHE_BYTES, q->cluster_size);
	q->cbuf = malloc(2 * q->cluster_size);
	q->dbuf = malloc(q->cluster_size);
	q->cow = malloc(q->cluster_size);
	if (r < 0 || !q->cbuf || !q->dbuf || !q->cow)
		return -ENOMEM;
	return 0;
}

/* Clears the autoclear bits (bitmaps...) a writer that does not keep them must clear. */
static int clear_autoclear(struct disk_image *img, const struct qcow2_hdr *h)
{
	if (img->readonly || !h->autoclear)
		return 0;
	uint8_t z[8] = { 0 };
	return disk_pwrite_full(img->mfd, z, sizeof(z), 88);
}

int qcow2_open(struct disk_image *img, char *err, size_t errlen)
{
	uint8_t first[HDR_V3_LEN] = { 0 };
	struct qcow2_hdr h = { 0 };
	int r = disk_pread_full(img->mfd, first, sizeof(first), 0);
	if (r < 0)
		return error_set(err, errlen, r, "'%s': cannot read: %s", img->path, strerror(-r));
	if ((r = parse_header(img, first, &h, err, errlen)) < 0)
		return r;
	if ((r = qcow2_alloc_state(img, h.cluster_bits)) < 0)
		return error_set(err, errlen, r, "out of memory");
	struct qcow2 *q = img->q;
	q->version = h.version;
	q->refcount_order = h.refcount_order;
	q->rb_entries = q->cluster_size * 8 >> h.refcount_order;
	q->rc_max = h.refcount_order == 6 ? UINT64_MAX : (1ULL << (1u << h.refcount_order)) - 1;
	img->size = h.size;
	if (img->file_size < q->cluster_size && img->file_size < HDR_V3_LEN)
		return bad(img, err, errlen, -EINVAL, "file shorter than its header");
	uint8_t *c0 = q->cow; /* the first cluster, header and extensions */
	if ((r = disk_pread_full(img->mfd, c0, q->cluster_size, 0)) < 0)
		return error_set(err, errlen, r, "'%s': cannot read: %s", img->path, strerror(-r));
	if (h.version == 3 && (r = check_extensions(img, c0, &h, err, errlen)) < 0)
		return r;
	if (h.backing_off && (r = open_backing(img, c0, &h, err, errlen)) < 0)
		return r;
	if ((r = load_tables(img, c0, &h, err, errlen)) < 0)
		return r;
	if ((r = check_tables(img, err, errlen)) < 0)
		return r;
	if ((r = clear_autoclear(img, &h)) < 0)
		return error_set(err, errlen, r, "'%s': cannot write the header: %s", img->path,
				 strerror(-r));
	return 0;
}
