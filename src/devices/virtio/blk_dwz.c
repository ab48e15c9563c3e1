/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk discard and write-zeroes (blk_priv.h).
 *
 * The segments are read once and checked, then the request takes its place on the order list
 * (a flush after it waits for it, like for a write). On a raw image each segment is a
 * fallocate on the I/O engine, one at a time: PUNCH_HOLE for a discard (ignored where the
 * file cannot) and for write-zeroes with UNMAP, ZERO_RANGE for write-zeroes; where the file
 * cannot, zeros are written through the image's buffered fd, BLK_ZERO_CHUNK bytes per engine
 * operation, so that neither a large segment nor a slow file system ever holds the loop.
 * A qcow2 image's discard, and the whole clusters of its write-zeroes, are metadata changes
 * on the loop (image.h: no data written); the partial clusters at a write-zeroes segment's ends
 * are written with zeros on the engine like guest writes (synchronously only where O_DIRECT
 * could not take them: a driver ignoring blk_size, less than two clusters per segment).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>

#include "devices/block/image.h"
#include "devices/block/io.h"
#include "devices/virtio/blk_priv.h"
#include "util/util.h"

#define BLK_ZERO_CHUNK (1U << 20) /* bytes of zeros per engine write */

/* How the current segment is being done. */
enum {
	DWZ_PUNCH,	/* fallocate PUNCH_HOLE */
	DWZ_ZERO_RANGE, /* fallocate ZERO_RANGE */
	DWZ_WRITE,	/* writing zeros */
};

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Reads and checks the segments into r->segs (empty ones left out). */
static uint8_t dwz_parse(struct blk_req *r)
{
	struct blk *b = r->b;
	bool wz = r->type == VIRTIO_BLK_T_WRITE_ZEROES;
	uint8_t segs[BLK_MAX_DWZ_SEGS * BLK_SEG_SIZE];
	unsigned n;

	if (r->len == 0 || r->len % BLK_SEG_SIZE || r->len > sizeof(segs))
		return VIRTIO_BLK_S_IOERR;
	n = (unsigned)(r->len / BLK_SEG_SIZE);
	blk_data_copy(r, 0, segs, r->len, false); /* read once: the driver may change them */
	r->nsegs = 0;
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *s = segs + i * BLK_SEG_SIZE;
		uint64_t sector = get_le(s, 8);
		uint32_t num = (uint32_t)get_le(s + 8, 4), flags = (uint32_t)get_le(s + 12, 4);

		if ((flags & ~(uint32_t)VIRTIO_BLK_WZ_F_UNMAP) || (!wz && flags))
			return VIRTIO_BLK_S_UNSUPP;
		if (num > BLK_MAX_DWZ_SECTORS || sector > b->sectors || num > b->sectors - sector)
			return VIRTIO_BLK_S_IOERR;
		if (num == 0)
			continue;
		r->segs[r->nsegs++] = (struct blk_dwz_seg){
			.off = sector * BLK_SECTOR,
			.len = (uint64_t)num * BLK_SECTOR,
			.unmap = flags & VIRTIO_BLK_WZ_F_UNMAP,
		};
	}
	return VIRTIO_BLK_S_OK;
}

/* qcow2 discard: metadata only, every segment at once. */
static uint8_t dwz_discard_meta(struct blk_req *r)
{
	for (unsigned i = 0; i < r->nsegs; i++) {
		if (disk_image_discard(r->b->img, r->segs[i].off, r->segs[i].len) < 0)
			return VIRTIO_BLK_S_IOERR;
	}
	return VIRTIO_BLK_S_OK;
}

/*
 * qcow2 write-zeroes: the whole clusters of every segment now (metadata); r->segs becomes the
 * partial clusters left, to be written with zeros. The last cluster of the disk counts as whole
 * (image.h).
 */
static uint8_t dwz_qcow2_split(struct blk_req *r)
{
	struct disk_image *img = r->b->img;
	uint64_t cs = disk_image_cluster_size(img), size = disk_image_size(img);
	uint64_t mask = r->b->align - 1;
	struct blk_dwz_seg part[2 * BLK_MAX_DWZ_SEGS];
	unsigned n = 0;

	for (unsigned i = 0; i < r->nsegs; i++) {
		const struct blk_dwz_seg *s = &r->segs[i];
		uint64_t end = s->off + s->len, first = ALIGN_UP(s->off, cs);
		uint64_t last = end == size ? end : ALIGN_DOWN(end, cs);

		if (first >= last) {
			part[n++] = *s;
			continue;
		}
		if (s->off < first)
			part[n++] = (struct blk_dwz_seg){ s->off, first - s->off, s->unmap };
		if (disk_image_write_zeroes(img, first, last - first, s->unmap) < 0)
			return VIRTIO_BLK_S_IOERR;
		if (last < end)
			part[n++] = (struct blk_dwz_seg){ last, end - last, s->unmap };
	}
	r->nsegs = 0;
	for (unsigned i = 0; i < n; i++) {
		if (((part[i].off | part[i].len) & mask) == 0)
			r->segs[r->nsegs++] = part[i];
		else if (disk_image_write_zeroes(img, part[i].off, part[i].len, false) < 0)
			return VIRTIO_BLK_S_IOERR; /* O_DIRECT could not write it */
	}
	return VIRTIO_BLK_S_OK;
}

/* The device's zero buffer, aligned for O_DIRECT; NULL when out of memory. */
static void *dwz_zeros(struct blk *b)
{
	if (!b->zeros && posix_memalign(&b->zeros, MAX(b->align, 4096U), BLK_ZERO_CHUNK) == 0)
		memset(b->zeros, 0, BLK_ZERO_CHUNK);
	return b->zeros;
}

/* Submits zeros for the current segment from r->done: through the raw image's buffered fd, or
 * where the qcow2 image maps the range (allocating it, as a guest write does). */
static int dwz_write(struct blk_req *r)
{
	struct blk *b = r->b;
	const struct blk_dwz_seg *s = &r->segs[r->seg];
	uint64_t pos = s->off + r->done, n = MIN(s->len - r->done, (uint64_t)BLK_ZERO_CHUNK);
	struct disk_extent ext = { .fd = b->zero_fd, .file_off = pos, .len = n };

	if (b->raw_fd < 0 && disk_image_map(b->img, pos, n, true, &ext) < 0)
		return -EIO;
	r->bounce_iov = (struct iovec){ b->zeros, ext.len };
	return blk_io_submit(b->io, BLK_IO_WRITE, ext.fd, &r->bounce_iov, 1, ext.file_off,
			     (uintptr_t)r);
}

static void dwz_seg_first(struct blk_req *r)
{
	bool punch = r->type == VIRTIO_BLK_T_DISCARD || r->segs[r->seg].unmap;

	if (r->b->raw_fd < 0)
		r->step = DWZ_WRITE; /* qcow2: what is left are partial clusters */
	else
		r->step = punch ? DWZ_PUNCH : DWZ_ZERO_RANGE;
	r->done = 0;
}

/* Submits the next operation of the segments, or completes. */
static void dwz_next(struct blk_req *r)
{
	struct blk *b = r->b;
	const struct blk_dwz_seg *s;
	uint64_t n;
	int err;

	while (r->seg < r->nsegs && r->done >= r->segs[r->seg].len) {
		if (++r->seg < r->nsegs)
			dwz_seg_first(r);
	}
	if (r->seg == r->nsegs || r->gen != b->gen) {
		blk_req_complete(r, VIRTIO_BLK_S_OK, 0);
		return;
	}
	if (b->meta_flush && b->raw_fd < 0) {
		blk_park(r); /* started before the flush: maps again after it */
		return;
	}
	s = &r->segs[r->seg];
	n = s->len - r->done;
	if (r->step == DWZ_WRITE) {
		err = dwz_write(r);
	} else {
		int mode = r->step == DWZ_PUNCH ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE;

		err = blk_io_submit_fallocate(b->io, b->raw_fd, mode | FALLOC_FL_KEEP_SIZE,
					      s->off + r->done, n, (uintptr_t)r);
	}
	if (err < 0)
		blk_req_complete(r, VIRTIO_BLK_S_IOERR, 0);
}

/* The file cannot do what r->step asked: the next way, or -errno. */
static int dwz_fall_back(struct blk_req *r)
{
	struct blk *b = r->b;

	if (r->type == VIRTIO_BLK_T_DISCARD) {
		r->done = r->segs[r->seg].len; /* a hint: the data stays */
		return 0;
	}
	if (r->step == DWZ_PUNCH) {
		r->step = DWZ_ZERO_RANGE;
		return 0;
	}
	if (!dwz_zeros(b))
		return -ENOMEM;
	r->step = DWZ_WRITE;
	return 0;
}

void blk_dwz_io_done(struct blk_req *r, int64_t res)
{
	if (r->step == DWZ_WRITE && res > 0)
		r->done += (uint64_t)res;
	else if (r->step != DWZ_WRITE && res == 0)
		r->done = r->segs[r->seg].len;
	else if (r->step == DWZ_WRITE || !disk_image_fallocate_unsupported((int)res) ||
		 dwz_fall_back(r) < 0) {
		blk_req_complete(r, VIRTIO_BLK_S_IOERR, 0);
		return;
	}
	dwz_next(r);
}

void blk_dwz_resume(struct blk_req *r)
{
	dwz_next(r);
}

void blk_dwz_begin(struct blk_req *r)
{
	uint8_t st = VIRTIO_BLK_S_OK;

	if (r->b->raw_fd < 0 && r->type == VIRTIO_BLK_T_DISCARD) {
		blk_req_complete(r, dwz_discard_meta(r), 0);
		return;
	}
	if (r->b->raw_fd < 0) {
		st = dwz_qcow2_split(r);
		if (st == VIRTIO_BLK_S_OK && r->nsegs && !dwz_zeros(r->b))
			st = VIRTIO_BLK_S_IOERR;
		if (st != VIRTIO_BLK_S_OK) {
			blk_req_complete(r, st, 0);
			return;
		}
	}
	r->seg = 0;
	if (r->nsegs)
		dwz_seg_first(r);
	dwz_next(r);
}

void blk_dwz_start(struct blk_req *r)
{
	uint8_t st = dwz_parse(r);

	if (st != VIRTIO_BLK_S_OK) {
		blk_req_complete(r, st, 0);
		return;
	}
	if (blk_ord_append(r->b, r))
		return; /* blk_wake begins it */
	blk_dwz_begin(r);
}
