/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Opening disk images (format probe, OFD lock, O_DIRECT) and the checks every call shares
 * before it reaches the format driver (raw.c, qcow2.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/block/image_priv.h"
#include "devices/block/qcow2.h"
#include "util/util.h"

#define QCOW2_MAGIC_BYTES "QFI\xfb"

/* Alignment assumed for O_DIRECT when the kernel cannot tell. */
#define DISK_DIRECT_ALIGN_DEFAULT 4096

int disk_pread_full(int fd, void *buf, uint64_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = pread(fd, p, MIN(len, (uint64_t)1 << 30), (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) { /* past the end of the file: reads as zeros */
			memset(p, 0, len);
			return 0;
		}
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

int disk_pwrite_full(int fd, const void *buf, uint64_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, MIN(len, (uint64_t)1 << 30), (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* QEMU and Cloud Hypervisor lock images with OFD locks too, so two VMMs never write one
 * image at once: a writer takes a write lock on the whole file, a reader a read lock. */
static int image_lock(int fd, bool readonly)
{
	struct flock fl = {
		.l_type = readonly ? F_RDLCK : F_WRLCK,
		.l_whence = SEEK_SET,
	};
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0)
		return errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
	return 0;
}

static uint32_t direct_align(int fd, bool block_dev)
{
	if (block_dev) {
		int ss = 0;
		if (ioctl(fd, BLKSSZGET, &ss) == 0 && ss >= 512 && ss <= 65536 &&
		    (ss & (ss - 1)) == 0)
			return (uint32_t)ss;
		return DISK_DIRECT_ALIGN_DEFAULT;
	}
#ifdef STATX_DIOALIGN
	struct statx stx;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align >= 512 &&
	    stx.stx_dio_offset_align <= 65536 && stx.stx_dio_mem_align <= stx.stx_dio_offset_align)
		return MAX(stx.stx_dio_offset_align, 512u);
#endif
	return DISK_DIRECT_ALIGN_DEFAULT;
}

/* The data fd: the same file again with O_DIRECT (a second open file description, so the
 * metadata fd keeps using the page cache). */
static int open_direct(struct disk_image *img, char *err, size_t errlen)
{
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", img->mfd);
	int fd = open(proc, (img->readonly ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return error_set(err, errlen, -errno,
				 "'%s': cannot open with O_DIRECT (direct=on): %s", img->path,
				 strerror(errno));
	img->fd = fd;
	img->align = direct_align(fd, img->block_dev);
	return 0;
}

static int raw_size(struct disk_image *img, const struct stat *st, char *err, size_t errlen)
{
	if (!img->block_dev) {
		img->size = (uint64_t)st->st_size;
		return 0;
	}
	uint64_t size;
	if (ioctl(img->mfd, BLKGETSIZE64, &size) < 0)
		return error_set(err, errlen, -errno, "'%s': cannot read the device size: %s",
				 img->path, strerror(errno));
	img->size = size;
	return 0;
}

static int image_setup(struct disk_image *img, char *err, size_t errlen)
{
	struct stat st;
	if (fstat(img->mfd, &st) < 0)
		return error_set(err, errlen, -errno, "'%s': %s", img->path, strerror(errno));
	img->block_dev = S_ISBLK(st.st_mode);
	if (!img->block_dev && !S_ISREG(st.st_mode))
		return error_set(err, errlen, -EINVAL, "'%s': not a regular file or a block device",
				 img->path);
	int r = image_lock(img->mfd, img->readonly);
	if (r == -EBUSY)
		return error_set(err, errlen, r, "'%s': locked by another process (%s lock)",
				 img->path, img->readonly ? "read" : "write");
	if (r < 0)
		return error_set(err, errlen, r, "'%s': cannot lock: %s", img->path, strerror(-r));
	char magic[4] = { 0 };
	r = disk_pread_full(img->mfd, magic, sizeof(magic), 0);
	if (r < 0)
		return error_set(err, errlen, r, "'%s': cannot read: %s", img->path, strerror(-r));
	img->file_size = img->block_dev ? 0 : (uint64_t)st.st_size;
	if (memcmp(magic, QCOW2_MAGIC_BYTES, 4) == 0 && !img->block_dev) {
		img->ops = &disk_qcow2_ops;
		r = qcow2_open(img, err, errlen);
	} else {
		img->ops = &disk_raw_ops;
		r = raw_size(img, &st, err, errlen);
	}
	if (r < 0)
		return r;
	if (img->direct)
		return open_direct(img, err, errlen);
	return 0;
}

int disk_image_open(const char *path, const struct disk_image_opts *o, struct disk_image **ret,
		    char *err, size_t errlen)
{
	return disk_image_open_depth(path, o, 0, ret, err, errlen);
}

int disk_image_open_depth(const char *path, const struct disk_image_opts *o, unsigned depth,
			  struct disk_image **ret, char *err, size_t errlen)
{
	struct disk_image *img = calloc(1, sizeof(*img));
	if (!img)
		return error_set(err, errlen, -ENOMEM, "out of memory");
	img->fd = img->mfd = -1;
	img->align = 1;
	img->readonly = o->readonly;
	img->direct = o->direct;
	img->allow_backing = o->allow_backing;
	img->depth = depth;
	snprintf(img->path, sizeof(img->path), "%s", path);
	img->mfd = open(path, (o->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	int r;
	if (img->mfd < 0) {
		r = error_set(err, errlen, -errno, "cannot open '%s'%s: %s", path,
			      o->readonly ? "" : " for writing", strerror(errno));
		goto fail;
	}
	img->fd = img->mfd;
	r = image_setup(img, err, errlen);
	if (r < 0)
		goto fail;
	img->opened = true;
	*ret = img;
	return 0;
fail:
	disk_image_close(img);
	return r;
}

struct disk_image *disk_image_close(struct disk_image *img)
{
	if (!img)
		return NULL;
	/* As QEMU does: what the guest wrote without asking for a flush still gets consistent
	 * metadata on an orderly exit (best effort: nobody is left to tell). */
	if (img->opened && !img->readonly)
		disk_image_flush(img);
	if (img->ops && img->ops->close)
		img->ops->close(img);
	if (img->fd >= 0 && img->fd != img->mfd)
		close(img->fd);
	if (img->mfd >= 0)
		close(img->mfd);
	free(img);
	return NULL;
}

uint64_t disk_image_size(const struct disk_image *img)
{
	return img->size;
}

uint32_t disk_image_align(const struct disk_image *img)
{
	return img->align;
}

bool disk_image_is_raw(const struct disk_image *img)
{
	return img->ops == &disk_raw_ops;
}

uint64_t disk_image_cluster_size(const struct disk_image *img)
{
	return img->q ? img->q->cluster_size : 0;
}

bool disk_image_readonly(const struct disk_image *img)
{
	return img->readonly;
}

const char *disk_image_format(const struct disk_image *img)
{
	return img->ops->name;
}

static int check_range(const struct disk_image *img, uint64_t off, uint64_t len)
{
	if (len == 0 || range_overflows(off, len) || off + len > img->size)
		return -EINVAL;
	return 0;
}

int disk_image_map(struct disk_image *img, uint64_t off, uint64_t len, bool write,
		   struct disk_extent *ret)
{
	int r = check_range(img, off, len);
	if (r < 0)
		return r;
	if (write && img->readonly)
		return -EROFS;
	struct disk_extent e;
	r = img->ops->map(img, off, len, write, &e);
	if (r < 0)
		return r;
	if (e.len == 0 || e.len > len || (write && e.kind != DISK_EXTENT_DATA))
		return -EIO; /* a bug in a format driver must not become a hang or a stray write */
	*ret = e;
	return 0;
}

int disk_image_read_sync(struct disk_image *img, uint64_t off, void *buf, uint64_t len)
{
	int r = check_range(img, off, len);
	if (r < 0)
		return r;
	uint8_t *p = buf;
	while (len) {
		struct disk_extent e;
		r = disk_image_map(img, off, len, false, &e);
		if (r < 0)
			return r;
		if (e.kind == DISK_EXTENT_DATA)
			r = disk_pread_full(e.fd == img->fd ? img->mfd : e.fd, p, e.len,
					    e.file_off);
		else if (e.kind == DISK_EXTENT_ZERO)
			memset(p, 0, e.len);
		else
			r = img->ops->read_sync(img, off, p, e.len);
		if (r < 0)
			return r == -EINVAL ? -EIO : r;
		p += e.len;
		off += e.len;
		len -= e.len;
	}
	return 0;
}

int disk_image_write_sync(struct disk_image *img, uint64_t off, const void *buf, uint64_t len)
{
	int r = check_range(img, off, len);
	if (r < 0)
		return r;
	const uint8_t *p = buf;
	while (len) {
		struct disk_extent e;
		r = disk_image_map(img, off, len, true, &e);
		if (r < 0)
			return r;
		r = disk_pwrite_full(e.fd == img->fd ? img->mfd : e.fd, p, e.len, e.file_off);
		if (r < 0)
			return r;
		p += e.len;
		off += e.len;
		len -= e.len;
	}
	return 0;
}

int disk_image_discard(struct disk_image *img, uint64_t off, uint64_t len)
{
	int r = check_range(img, off, len);
	if (r < 0)
		return r;
	if (img->readonly)
		return -EROFS;
	return img->ops->discard(img, off, len);
}

int disk_image_write_zeroes(struct disk_image *img, uint64_t off, uint64_t len, bool unmap)
{
	int r = check_range(img, off, len);
	if (r < 0)
		return r;
	if (img->readonly)
		return -EROFS;
	return img->ops->write_zeroes(img, off, len, unmap);
}

int disk_image_flush(struct disk_image *img)
{
	int fd, r;
	do {
		r = disk_image_flush_step(img, &fd);
		if (r < 0 || fd < 0)
			return r;
		if (fdatasync(fd) < 0) {
			disk_image_flush_abort(img);
			return -errno;
		}
	} while (r == 1);
	return 0;
}

int disk_image_flush_step(struct disk_image *img, int *ret_fd)
{
	*ret_fd = img->readonly ? -1 : img->mfd;
	if (img->readonly)
		return 0;
	return img->ops->flush_step ? img->ops->flush_step(img) : img->ops->flush(img);
}

void disk_image_flush_abort(struct disk_image *img)
{
	if (img->q)
		qcow2_meta_flush_abort(img);
}

int disk_image_raw_fds(const struct disk_image *img, int *ret_fd, int *ret_zero_fd)
{
	if (!disk_image_is_raw(img))
		return -ENOTSUP;
	*ret_fd = img->fd;
	*ret_zero_fd = img->mfd;
	return 0;
}
