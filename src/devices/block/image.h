/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Disk images for virtio-blk: raw files or block devices, and qcow2 v2/v3 files.
 *
 * The layer maps guest byte ranges to places in host files; the device does the data I/O
 * itself (io_uring or its worker pool) and only metadata I/O (qcow2 tables) happens here,
 * synchronously. The image file is untrusted input: a qcow2 file with inconsistent metadata is
 * refused at open, or, when the problem is found later, the one request fails with -EIO and
 * the image stays usable for others. Nothing here ever writes outside what the image owns
 * (the file's own clusters, never beyond the tables' bounds).
 *
 * Threading: one image is used from one thread at a time (the VMM loop). There is no shared
 * state between images: several images, and several VMs, may live in one process.
 */
#ifndef CUBICLE_DEVICES_BLOCK_IMAGE_H
#define CUBICLE_DEVICES_BLOCK_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct disk_image;

struct disk_image_opts {
	bool readonly;	    /* opened O_RDONLY with a shared (read) OFD lock */
	bool direct;	    /* opened O_DIRECT; disk_image_align() tells the alignment */
	bool allow_backing; /* qcow2 backing files are refused unless set */
};

/*
 * Opens @path, probes the format (qcow2 magic, else raw), takes an OFD lock as QEMU does
 * (F_OFD_SETLK: a read lock when @o->readonly, a write lock otherwise; -EBUSY "locked by
 * another process" when it is taken), opens O_DIRECT when @o->direct, and checks qcow2
 * headers and tables (a corrupt or unsupported image is refused with a message naming the
 * problem). A backing file is refused (-ENOTSUP) unless @o->allow_backing.
 * Returns 0 with *@ret set, or -errno with one line in @err (which may be NULL): -ENOENT,
 * -EACCES, -EBUSY (locked), -EINVAL (corrupt), -ENOTSUP (unsupported feature), -EROFS
 * (writable open of an image that can only be read), -ENOMEM.
 */
int disk_image_open(const char *path, const struct disk_image_opts *o, struct disk_image **ret,
		    char *err, size_t errlen);

/* Flushes a writable image (as disk_image_flush, errors ignored: call that first when they
 * matter), drops the lock, closes the files and frees everything. No data I/O on the image's
 * fds may be in flight. Accepts NULL; returns NULL. */
struct disk_image *disk_image_close(struct disk_image *img);

/* The size the guest sees, in bytes (for qcow2 the virtual size; for raw the file or block
 * device size at open). Always a multiple of 512 for qcow2; raw files may have a tail. */
uint64_t disk_image_size(const struct disk_image *img);

/* The alignment data I/O on the fds handed out by disk_image_map needs: 1 without O_DIRECT,
 * otherwise the logical block size of the file system or device (512 or 4096). A qcow2
 * extent's file_off is as aligned as the guest offset within its cluster (clusters are at
 * least 512 bytes): a caller mapping 4096-aligned ranges of 4 KiB-or-larger-cluster images
 * gets 4096-aligned extents; anything else may need a bounce buffer. */
uint32_t disk_image_align(const struct disk_image *img);

/* True when the map is the identity on one fd (raw): every DATA extent is the whole range. */
bool disk_image_is_raw(const struct disk_image *img);

/* The unit qcow2 allocates and zeroes in (its cluster size); 0 for raw. Write-zeroes over
 * whole units is a metadata change; the rest of a range is written with zeros. */
uint64_t disk_image_cluster_size(const struct disk_image *img);

/* True when the image was opened read-only (writes and discards return -EROFS). */
bool disk_image_readonly(const struct disk_image *img);

/* Short name of the format: "raw" or "qcow2". */
const char *disk_image_format(const struct disk_image *img);

enum disk_extent_kind {
	DISK_EXTENT_DATA, /* preadv/pwritev @fd at @file_off */
	DISK_EXTENT_ZERO, /* reads only: the guest sees zeros; fill the buffer */
	DISK_EXTENT_SYNC, /* reads only: go through disk_image_read_sync (compressed, backing) */
};

struct disk_extent {
	enum disk_extent_kind kind;
	int fd;		   /* DATA: the fd to read/write (owned by the image) */
	uint64_t file_off; /* DATA: offset in that file */
	uint64_t len;	   /* > 0 and <= the length asked; the caller loops over extents */
};

/*
 * Maps the guest range [@off, @off + @len) to its first extent, in *@ret. With @write the
 * extent is always DATA: qcow2 allocates the cluster (copying the rest of it from the old
 * contents: compressed, backing or zero) and updates L2 and refcounts, so that once the caller
 * has written the data the image is valid. Metadata I/O is synchronous; data I/O is the
 * caller's, and must be finished before the next map() of the same range for the written data
 * to be what a later read sees (a caller issuing writes asynchronously must serialise
 * overlapping requests, as it must anyway).
 * Returns 0, or -EINVAL (@len 0 or the range out of bounds), -EROFS (@write on a read-only
 * image), -EIO (corrupt metadata found now, or an I/O error on metadata), -ENOSPC (the image
 * cannot grow: refcount table full, file size limit), -ENOMEM.
 */
int disk_image_map(struct disk_image *img, uint64_t off, uint64_t len, bool write,
		   struct disk_extent *ret);

/*
 * Reads [@off, @off + @len) into @buf synchronously, whatever the extents are (DATA, ZERO,
 * compressed, backing). For SYNC extents, and handy for tests. Works with O_DIRECT (bounces
 * internally). Returns 0 or -EINVAL / -EIO / -ENOMEM.
 */
int disk_image_read_sync(struct disk_image *img, uint64_t off, void *buf, uint64_t len);

/*
 * Writes @buf at [@off, @off + @len) synchronously through map (for tests and tools; the
 * device uses map and its own I/O). Returns 0 or what disk_image_map returns, or -EIO.
 */
int disk_image_write_sync(struct disk_image *img, uint64_t off, const void *buf, uint64_t len);

/*
 * Tells the image the guest no longer needs [@off, @off + @len). Raw: punches a hole
 * (fallocate PUNCH_HOLE|KEEP_SIZE; ignored where unsupported). qcow2: whole clusters in the
 * range are deallocated (v3: marked zero when there is a backing file; v2: left alone when
 * there is one); partial clusters are left alone. Reads of discarded ranges return zeros
 * where the whole cluster/hole was freed, else the old data (virtio allows both).
 * Returns 0, -EINVAL (out of bounds), -EROFS, -EIO.
 */
int disk_image_discard(struct disk_image *img, uint64_t off, uint64_t len);

/*
 * Makes [@off, @off + @len) read as zeros. @unmap allows freeing the space. Raw:
 * fallocate(ZERO_RANGE), or PUNCH_HOLE when @unmap, falling back to writing zeros. qcow2:
 * whole clusters become zero clusters (v3) or unallocated (v2 without backing); partial
 * clusters, and whole ones of v2 images with a backing file, are written with zeros. Returns 0, -EINVAL, -EROFS, -EIO, -ENOSPC, -ENOMEM.
 */
int disk_image_write_zeroes(struct disk_image *img, uint64_t off, uint64_t len, bool unmap);

/*
 * Writes cached metadata (qcow2 L2 tables and refcount blocks) to the file, then fdatasync:
 * what VIRTIO_BLK_T_FLUSH needs. Call it only once the data writes submitted before it have
 * completed: qcow2 clusters freed by discard, write-zeroes or copy-on-write are not handed
 * out again until the next flush, so that a write still in flight to a freed cluster can
 * never land in a cluster that has meanwhile become an L2 table or another guest range. Returns 0 or -EIO (and keeps returning -EIO for the metadata
 * that could not be written until a later flush succeeds). A no-op returning 0 on read-only
 * images.
 */
int disk_image_flush(struct disk_image *img);

/*
 * disk_image_flush in steps, for a caller that runs every fdatasync itself, off its thread.
 * Each call writes part of the cached metadata (qcow2: refcount blocks, then tables, in the
 * order that keeps the image consistent after a crash) and returns 1 with *@ret_fd when an
 * fdatasync of *@ret_fd must have completed before the next call; or 0 once everything is
 * written, with *@ret_fd the fd whose fdatasync then completes the flush (-1 on a read-only
 * image: nothing to sync). Between the first call and the one returning 0, nothing may map,
 * discard or write-zeroes the image. Returns -EIO as disk_image_flush (the next call starts
 * over); after a failed fdatasync, call disk_image_flush_abort.
 */
int disk_image_flush_step(struct disk_image *img, int *ret_fd);

/* Ends a stepped flush whose fdatasync failed: the next step starts a new flush. */
void disk_image_flush_abort(struct disk_image *img);

/*
 * Raw images: the fds for a caller doing discard and write-zeroes itself, off its thread (what
 * disk_image_discard and disk_image_write_zeroes do synchronously): *@ret_fd to fallocate on,
 * *@ret_zero_fd to write zeros through where fallocate cannot (never O_DIRECT: any offset and
 * length). Returns 0, or -ENOTSUP for other formats.
 */
int disk_image_raw_fds(const struct disk_image *img, int *ret_fd, int *ret_zero_fd);

/* True when fallocate's -errno @err means "not on this file" (fall back), not a failure. */
bool disk_image_fallocate_unsupported(int err);

#endif
