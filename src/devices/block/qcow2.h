/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 inside the image layer: the parsed header, the in-memory L1 and refcount tables, the
 * bounded L2 and refcount-block caches, and the helpers qcow2.c (open and checks),
 * qcow2_meta.c (caches, refcounts, allocation) and qcow2_io.c (map, discard, flush) share.
 * Layout reference: QEMU's docs/interop/qcow2.txt. All on-disk integers are big-endian.
 */
#ifndef CUBICLE_DEVICES_BLOCK_QCOW2_H
#define CUBICLE_DEVICES_BLOCK_QCOW2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/block/image_priv.h"

#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
/* The largest L1 and refcount tables cubicle loads (QEMU's own limits). */
#define QCOW2_MAX_L1_BYTES	 (32 * MiB)
#define QCOW2_MAX_REFTABLE_BYTES (8 * MiB)
/* The largest virtual size accepted: 2^55 bytes, as far as L2 offsets reach. */
#define QCOW2_MAX_VIRTUAL_SIZE (1ULL << 55)
/* The cache budgets: entries are whole clusters, at least QCOW2_CACHE_MIN_ENTRIES of them. */
#define QCOW2_L2_CACHE_BYTES	   (1 * MiB)
#define QCOW2_REFCOUNT_CACHE_BYTES (256 * KiB)
#define QCOW2_CACHE_MIN_ENTRIES	   4
#define QCOW2_CACHE_MAX_ENTRIES	   512
/* The open-time checks keep two bits per cluster of the file: at most this many bytes each
 * (256 Mi clusters: 128 GiB files with 512-byte clusters, 16 PiB with 64 KiB ones). */
#define QCOW2_MAX_CHECK_BITMAP (32 * MiB)
/* How many refcounts a search for several contiguous free clusters reads before it gives up
 * and grows the file instead. */
#define QCOW2_MAX_FREE_SCAN 65536
/* Releases (refcount decrements) waiting for the next commit; a full list forces one. */
#define QCOW2_MAX_PENDING_FREES 16384
/* Backing chains deeper than this are refused (each link is opened read-only). */
#define QCOW2_MAX_BACKING_DEPTH 8
#define QCOW2_MAX_BACKING_NAME	1023

#define QCOW2_OFLAG_COPIED     (1ULL << 63)
#define QCOW2_OFLAG_COMPRESSED (1ULL << 62)
#define QCOW2_OFLAG_ZERO       1ULL
#define QCOW2_OFFSET_MASK      0x00fffffffffffe00ULL
#define QCOW2_L1_RESERVED      0x7f000000000001ffULL
#define QCOW2_L2_RESERVED      0x3f000000000001feULL
#define QCOW2_RT_RESERVED      0x1ffULL

#define QCOW2_INCOMPAT_DIRTY	   (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT	   (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2	   (1ULL << 4)

struct qcow2_cache_entry {
	uint64_t off; /* host offset of the cluster; 0 = empty slot */
	uint64_t used;
	bool dirty;
	uint8_t *data;
};

struct qcow2_cache {
	unsigned n;
	unsigned last; /* the slot of the last hit, looked at first */
	uint64_t tick;
	struct qcow2_cache_entry *e;
};

struct qcow2 {
	uint32_t version;
	uint32_t cluster_bits;
	uint64_t cluster_size;
	uint64_t l2_entries; /* entries per L2 table */
	uint64_t l1_off;
	uint64_t l1_size;
	uint64_t *l1; /* host byte order */
	bool l1_dirty;
	uint64_t rt_off;
	uint64_t rt_clusters;
	uint64_t rt_entries;
	uint64_t *rt;  /* host byte order */
	bool rt_dirty; /* new refcount blocks the table on disk does not point to yet */
	uint32_t refcount_order;
	uint64_t rb_entries; /* refcounts per refcount block */
	uint64_t rc_max;
	uint64_t nb_snapshots;
	uint64_t free_hint; /* no free cluster below this index, but those freed since the
			     * last flush */
	/* Clusters freed since the last flush lie in [qlo, qhi] (empty when qlo > qhi): not
	 * reused before the flush, since a guest write submitted before the free may still be
	 * in flight to them (the device flushes only once such writes are done). */
	uint64_t qlo, qhi;
	uint64_t *pending; /* deferred releases (qcow2_refcount_release) */
	uint32_t npending;
	struct qcow2_cache l2c;
	struct qcow2_cache rbc;
	uint8_t flush_stage; /* qcow2_meta_flush_step: the next stage */
	bool flush_wrote;    /* it wrote L2 or L1 tables: a sync before the decrements */
	struct disk_image *backing;
	uint8_t *cbuf;	     /* compressed input, 2 clusters */
	uint8_t *dbuf;	     /* one decompressed cluster */
	uint64_t dbuf_entry; /* the L2 entry dbuf holds, 0 = none */
	uint8_t *cow;	     /* one cluster for copy-on-write */
	void *zs;	     /* z_stream, when zlib is built in */
};

static inline uint64_t qcow2_be64(const void *p)
{
	const uint8_t *b = p;
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

static inline uint32_t qcow2_be32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static inline void qcow2_put_be64(void *p, uint64_t v)
{
	uint8_t *b = p;
	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
}

/* qcow2_meta.c. Every function returns 0 or -errno (-EIO for corrupt metadata). */
int qcow2_cache_init(struct qcow2_cache *c, uint64_t budget, uint64_t cluster_size);
void qcow2_cache_free(struct qcow2_cache *c);
/* The cluster at @off (read on a miss, evicting the least recently used, written back first
 * when dirty). The pointer is valid until the next call on either cache. */
int qcow2_l2_get(struct disk_image *img, uint64_t off, uint8_t **ret);
void qcow2_l2_mark_dirty(struct disk_image *img, uint64_t off);
/* A freshly allocated L2 table: all zeros, dirty, without reading the file. */
int qcow2_l2_new(struct disk_image *img, uint64_t off, uint8_t **ret);
int qcow2_refcount_get(struct disk_image *img, uint64_t cluster, uint64_t *ret);
/* Drops one reference to host cluster @cluster. The decrement is applied at the next commit,
 * once the tables on disk no longer point there; a cluster falling to 0 is then free, and
 * with @punch its space is punched out of the file where possible. -EIO when its refcount is
 * already 0. */
int qcow2_refcount_release(struct disk_image *img, uint64_t cluster, bool punch);
/* Allocates @n contiguous clusters (refcount 1), returns the host offset of the first. */
int qcow2_alloc_clusters(struct disk_image *img, uint64_t n, uint64_t *ret_off);
/* Drops the references an L2 entry holds (a standard cluster or the clusters a compressed
 * one spans). */
int qcow2_free_entry(struct disk_image *img, uint64_t entry, bool punch);
/* The host byte range of a compressed L2 entry. */
void qcow2_compressed_range(const struct qcow2 *q, uint64_t entry, uint64_t *ret_off,
			    uint64_t *ret_len);
/* Makes the metadata on disk consistent and current: dirty refcount blocks, fdatasync, dirty
 * L2 tables, (fdatasync) the L1 table, then, after an fdatasync, applies the deferred
 * releases in the cache. */
int qcow2_meta_commit(struct disk_image *img);
/* qcow2_meta_commit, writes the released refcounts too, and ends the reuse quarantine (the
 * caller then fdatasyncs). */
int qcow2_meta_flush(struct disk_image *img);
/*
 * qcow2_meta_flush in steps, for a caller that runs the fdatasyncs between them itself
 * (asynchronously): returns 1 when what this step wrote must be on disk (an fdatasync of
 * img->mfd completed) before the next step, 0 once everything is written (the caller's
 * fdatasync then ends the flush), or -errno (the next call starts over). Nothing may change
 * the metadata between the first step and the last.
 */
int qcow2_meta_flush_step(struct disk_image *img);
/* After a failed fdatasync between steps: the next step starts a new flush. */
void qcow2_meta_flush_abort(struct disk_image *img);
int qcow2_flush_refcounts(struct disk_image *img);

#endif
