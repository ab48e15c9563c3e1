/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk reads and writes (blk_priv.h).
 *
 * A request walks the image's extents one pass ("span") at a time: each DATA extent goes to
 * the I/O engine and the next one is mapped when it completes; ZERO extents are zero filled
 * and SYNC ones read synchronously.
 *
 * O_DIRECT wants offsets, lengths and buffers aligned to the disk's logical block (4096 on a
 * 4K-sector disk) and the guest need not comply. A request whose buffers are not aligned goes
 * through an aligned bounce buffer. One whose offset or length is not aligned is widened to
 * whole blocks, also through a bounce buffer: a read reads the whole blocks; a write is a
 * read-modify-write, reading its partial head and tail blocks (one pass each) before writing
 * the whole blocks back. Two writes sharing a block must then not run at once, or one would
 * write back the other's stale copy: such a write waits on the order list (blk_ord_append)
 * until the earlier one has completed. All of it is asynchronous: the loop never waits.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/block/image.h"
#include "devices/block/io.h"
#include "devices/virtio/blk_priv.h"
#include "util/util.h"

#define BLK_SYNC_CHUNK (64 * 1024) /* bytes per disk_image_read_sync of a SYNC extent */

/* The pass a request is in. */
enum {
	RW_HEAD, /* rmw: reading the partial first block */
	RW_TAIL, /* rmw: reading the partial last block */
	RW_DATA, /* the read or the write itself */
	RW_SYNC, /* the whole request through the buffered fd (rw_sync) */
};

/* The iovecs the disk I/O of a request goes through, covering [io_off, io_off + io_len): the
 * guest's, or the bounce buffer. */
static const struct iovec *rw_iov(struct blk_req *r, unsigned *ret_cnt)
{
	if (r->bounce) {
		*ret_cnt = 1;
		return &r->bounce_iov;
	}
	*ret_cnt = r->data_cnt;
	return r->data;
}

/* Fills [@at, @at + @len) of the I/O's buffers with zeros (@at from io_off). */
static void rw_zero(struct blk_req *r, uint64_t at, uint64_t len)
{
	unsigned cnt, n;
	const struct iovec *iov = rw_iov(r, &cnt);

	n = blk_iov_slice(iov, cnt, at, len, r->slice);
	for (unsigned i = 0; i < n; i++)
		memset(r->slice[i].iov_base, 0, r->slice[i].iov_len);
}

/* A read that cannot use the engine's fd directly (SYNC extent): through a bounce chunk. */
static int rw_read_sync(struct blk_req *r, uint64_t at, uint64_t len)
{
	uint8_t *chunk = malloc(BLK_SYNC_CHUNK);
	unsigned cnt;
	const struct iovec *iov = rw_iov(r, &cnt);
	int err = 0;

	if (!chunk)
		return -ENOMEM;
	for (uint64_t done = 0; err == 0 && done < len; done += BLK_SYNC_CHUNK) {
		uint64_t l = MIN(len - done, (uint64_t)BLK_SYNC_CHUNK);

		err = disk_image_read_sync(r->b->img, r->io_off + at + done, chunk, l);
		if (err == 0) {
			unsigned n = blk_iov_slice(iov, cnt, at + done, l, r->slice);
			uint8_t *p = chunk;

			for (unsigned i = 0; i < n; i++) {
				memcpy(r->slice[i].iov_base, p, r->slice[i].iov_len);
				p += r->slice[i].iov_len;
			}
		}
	}
	free(chunk);
	return err;
}

/* Where the guest's data sits in the bounce buffer. */
static uint8_t *rw_bounce_data(struct blk_req *r)
{
	return (uint8_t *)r->bounce + (r->off - r->io_off);
}

static void rw_finish(struct blk_req *r, uint8_t status)
{
	bool read = r->type == VIRTIO_BLK_T_IN;

	if (status == VIRTIO_BLK_S_OK && r->bounce && read)
		blk_data_copy(r, 0, rw_bounce_data(r), r->len, true);
	blk_req_complete(r, status, status == VIRTIO_BLK_S_OK && read ? (uint32_t)r->len : 0);
}

static void rw_span(struct blk_req *r, unsigned step, uint64_t off, uint64_t len)
{
	r->step = (uint8_t)step;
	r->span_off = off;
	r->span_len = len;
	r->done = 0;
}

static void rw_continue(struct blk_req *r);

/* The span is done: the next pass, or the end. */
static void rw_next(struct blk_req *r)
{
	uint64_t a = r->b->align, end = r->off + r->len;

	if (r->step == RW_HEAD && (end & (a - 1)) && r->io_len > a) {
		rw_span(r, RW_TAIL, r->io_off + r->io_len - a, a);
	} else if (r->step != RW_DATA) {
		blk_data_copy(r, 0, rw_bounce_data(r), r->len, false);
		rw_span(r, RW_DATA, r->io_off, r->io_len);
	} else {
		rw_finish(r, VIRTIO_BLK_S_OK);
		return;
	}
	rw_continue(r);
}

/* Runs the span on from r->done: ZERO and SYNC extents at once, a DATA one submitted. */
static void rw_continue(struct blk_req *r)
{
	bool write = r->type == VIRTIO_BLK_T_OUT && r->step == RW_DATA;

	while (r->done < r->span_len && r->gen == r->b->gen) {
		struct disk_extent ext;
		unsigned cnt, n;
		const struct iovec *iov;
		uint64_t pos = r->span_off + r->done, left = r->span_len - r->done;
		uint64_t at = pos - r->io_off;

		if (r->b->meta_flush) {
			blk_park(r); /* the image is being flushed */
			return;
		}
		if (disk_image_map(r->b->img, pos, left, write, &ext) < 0 || ext.len == 0 ||
		    ext.len > left)
			break;
		if (ext.kind == DISK_EXTENT_ZERO && !write) {
			rw_zero(r, at, ext.len);
		} else if (ext.kind == DISK_EXTENT_SYNC && !write) {
			if (rw_read_sync(r, at, ext.len) < 0)
				break;
		} else if (ext.kind == DISK_EXTENT_DATA) {
			iov = rw_iov(r, &cnt);
			n = blk_iov_slice(iov, cnt, at, ext.len, r->slice);
			if (blk_io_submit(r->b->io, write ? BLK_IO_WRITE : BLK_IO_READ, ext.fd,
					  r->slice, n, ext.file_off, (uintptr_t)r) < 0)
				break;
			return;
		} else {
			break; /* the image layer broke its contract */
		}
		r->done += ext.len;
	}
	if (r->done < r->span_len)
		rw_finish(r, VIRTIO_BLK_S_IOERR);
	else
		rw_next(r);
}

/*
 * A request reaching into the last block of a disk whose size is not a multiple of the
 * alignment (a raw file of an odd size, direct=on): O_DIRECT cannot go past the end of the
 * file, so it goes synchronously through the buffered fd, at most BLK_MAX_BOUNCE bytes.
 */
static void rw_sync(struct blk_req *r)
{
	struct disk_image *img = r->b->img;
	uint8_t *buf;
	int err;

	if (r->b->meta_flush) {
		blk_park(r);
		return;
	}
	buf = r->gen == r->b->gen ? malloc(r->len) : NULL;
	if (!buf) {
		rw_finish(r, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (r->type == VIRTIO_BLK_T_OUT) {
		blk_data_copy(r, 0, buf, r->len, false);
		err = disk_image_write_sync(img, r->off, buf, r->len);
	} else {
		err = disk_image_read_sync(img, r->off, buf, r->len);
		if (err == 0)
			blk_data_copy(r, 0, buf, r->len, true);
	}
	free(buf);
	rw_finish(r, err < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
}

void blk_rw_resume(struct blk_req *r)
{
	if (r->step == RW_SYNC)
		rw_sync(r);
	else
		rw_continue(r);
}

void blk_rw_io_done(struct blk_req *r, int64_t res)
{
	if (res <= 0) {
		rw_finish(r, VIRTIO_BLK_S_IOERR);
		return;
	}
	r->done += (uint64_t)res; /* a short transfer goes on from where it stopped */
	rw_continue(r);
}

static bool iov_aligned(const struct iovec *iov, unsigned cnt, uint32_t align)
{
	for (unsigned i = 0; i < cnt; i++) {
		if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) & (align - 1))
			return false;
	}
	return true;
}

void blk_rw_begin(struct blk_req *r)
{
	uint64_t a = r->b->align;

	if (r->step == RW_SYNC) {
		rw_sync(r);
		return;
	}

	if (r->rmw && (r->off & (a - 1)))
		rw_span(r, RW_HEAD, r->io_off, a);
	else if (r->rmw)
		rw_span(r, RW_TAIL, r->io_off + r->io_len - a, a);
	else
		rw_span(r, RW_DATA, r->io_off, r->io_len);
	if (r->step == RW_DATA && r->bounce && r->type == VIRTIO_BLK_T_OUT)
		blk_data_copy(r, 0, rw_bounce_data(r), r->len, false);
	rw_continue(r);
}

void blk_rw_start(struct blk_req *r)
{
	struct blk *b = r->b;
	uint64_t a = b->align;
	bool bounce = false;

	r->io_off = r->off;
	r->io_len = r->len;
	if (a > 1 && ((r->off | r->len) & (a - 1))) {
		r->io_off = ALIGN_DOWN(r->off, a);
		r->io_len = ALIGN_UP(r->off + r->len, a) - r->io_off;
		r->rmw = r->type == VIRTIO_BLK_T_OUT;
		bounce = true;
		if (r->io_off + r->io_len > disk_image_size(b->img)) {
			r->step = RW_SYNC; /* the widened range still serialises it (rmw) */
			bounce = false;
		}
	} else if (a > 1 && !iov_aligned(r->data, r->data_cnt, b->align)) {
		bounce = true;
	}
	if ((bounce || r->step == RW_SYNC) && r->len > BLK_MAX_BOUNCE) {
		rw_finish(r, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (bounce) {
		if (posix_memalign(&r->bounce, a, r->io_len) != 0) {
			r->bounce = NULL;
			rw_finish(r, VIRTIO_BLK_S_IOERR);
			return;
		}
		r->bounce_iov = (struct iovec){ r->bounce, r->io_len };
	}
	if (r->type == VIRTIO_BLK_T_OUT && blk_ord_append(b, r))
		return; /* blk_wake begins it */
	blk_rw_begin(r);
}
