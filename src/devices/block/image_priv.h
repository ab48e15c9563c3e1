/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the disk image layer: what image.c (open, locking, dispatch) shares with the format
 * drivers raw.c and qcow2.c. Not for devices: they use image.h.
 */
#ifndef CUBICLE_DEVICES_BLOCK_IMAGE_PRIV_H
#define CUBICLE_DEVICES_BLOCK_IMAGE_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/block/image.h"

struct qcow2;

/*
 * One format. image.c checks bounds, read-only and zero lengths before calling these, so
 * they get 0 < len and off + len <= size, and writes only on writable images.
 */
struct disk_format_ops {
	const char *name;
	int (*map)(struct disk_image *img, uint64_t off, uint64_t len, bool write,
		   struct disk_extent *ret);
	/* Reads one SYNC extent's worth of data (as map returned it for [off, off+len)). */
	int (*read_sync)(struct disk_image *img, uint64_t off, void *buf, uint64_t len);
	int (*discard)(struct disk_image *img, uint64_t off, uint64_t len);
	int (*write_zeroes)(struct disk_image *img, uint64_t off, uint64_t len, bool unmap);
	/* Writes cached metadata back (no fdatasync: image.c does it). */
	int (*flush)(struct disk_image *img);
	/* flush in steps (disk_image_flush_step): 1 when mfd must be synced before the next
	 * step, 0 when all is written. NULL: flush is one step. */
	int (*flush_step)(struct disk_image *img);
	void (*close)(struct disk_image *img);
};

struct disk_image {
	const struct disk_format_ops *ops;
	int fd;	       /* data I/O; O_DIRECT when asked */
	int mfd;       /* metadata and synchronous I/O, never O_DIRECT (== fd without direct) */
	uint64_t size; /* what the guest sees */
	uint64_t file_size; /* qcow2: end of the file as the allocator knows it */
	uint32_t align;	    /* O_DIRECT alignment, 1 without */
	bool readonly;
	bool direct;
	bool allow_backing;
	bool block_dev;
	bool opened;	 /* open succeeded: close flushes */
	unsigned depth;	 /* 0, or how deep in a backing chain */
	struct qcow2 *q; /* qcow2 state, NULL for raw */
	char path[256];	 /* for messages; truncated */
};

/* disk_image_open for a backing file @depth links down a chain. */
int disk_image_open_depth(const char *path, const struct disk_image_opts *o, unsigned depth,
			  struct disk_image **ret, char *err, size_t errlen);

extern const struct disk_format_ops disk_raw_ops;
extern const struct disk_format_ops disk_qcow2_ops;

/* Full-length pread/pwrite on @fd: 0, -EIO on a short transfer (end of file for pread is
 * zeros, see below), -errno on errors. pread_full fills what lies past the end of the file
 * with zeros, as a sparse file reads. */
int disk_pread_full(int fd, void *buf, uint64_t len, uint64_t off);
int disk_pwrite_full(int fd, const void *buf, uint64_t len, uint64_t off);

/* qcow2.c: checks the header and tables of the file open in @img (mfd) and sets img->q,
 * img->size. Returns 0 or -errno with one line in @err. */
int qcow2_open(struct disk_image *img, char *err, size_t errlen);

#endif
