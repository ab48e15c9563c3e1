/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Raw images: the guest's disk is the file (or block device) byte for byte, so the map is the
 * identity and discard/write-zeroes become fallocate on the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <string.h>

#include "devices/block/image_priv.h"
#include "util/util.h"

/* Largest zero buffer the write fallback uses at once. */
#define RAW_ZERO_CHUNK (256 * KiB)

static int raw_map(struct disk_image *img, uint64_t off, uint64_t len, bool write,
		   struct disk_extent *ret)
{
	*ret = (struct disk_extent){
		.kind = DISK_EXTENT_DATA,
		.fd = img->fd,
		.file_off = off,
		.len = len,
	};
	return 0;
}

static int raw_read_sync(struct disk_image *img, uint64_t off, void *buf, uint64_t len)
{
	return -EIO; /* raw never returns SYNC extents */
}

/* Writes zeros the slow way: where fallocate is not supported (some file systems, devices). */
static int raw_write_zeros_slow(struct disk_image *img, uint64_t off, uint64_t len)
{
	_cleanup_free_ void *zero = calloc(1, MIN(len, RAW_ZERO_CHUNK));
	if (!zero)
		return -ENOMEM;
	while (len) {
		uint64_t n = MIN(len, RAW_ZERO_CHUNK);
		int r = disk_pwrite_full(img->mfd, zero, n, off);
		if (r < 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

bool disk_image_fallocate_unsupported(int err)
{
	return err == -EOPNOTSUPP || err == -ENOSYS || err == -EINVAL || err == -ENODEV;
}

static int raw_discard(struct disk_image *img, uint64_t off, uint64_t len)
{
	/* Discard is a hint: where the file system cannot punch holes, keep the data. */
	if (fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) <
		    0 &&
	    !disk_image_fallocate_unsupported(-errno))
		return -errno;
	return 0;
}

static int raw_write_zeroes(struct disk_image *img, uint64_t off, uint64_t len, bool unmap)
{
	int mode = unmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
			 : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	if (fallocate(img->fd, mode, (off_t)off, (off_t)len) == 0)
		return 0;
	if (!disk_image_fallocate_unsupported(-errno))
		return -errno;
	if (unmap && fallocate(img->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			       (off_t)len) == 0)
		return 0;
	return raw_write_zeros_slow(img, off, len);
}

static int raw_flush(struct disk_image *img)
{
	return 0;
}

static void raw_close(struct disk_image *img)
{
}

const struct disk_format_ops disk_raw_ops = {
	.name = "raw",
	.map = raw_map,
	.read_sync = raw_read_sync,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.flush = raw_flush,
	.close = raw_close,
};
