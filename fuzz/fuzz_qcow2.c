/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the disk image layer (src/devices/block/): the image comes from the
 * input (written to a memfd, opened through /proc/self/fd), then a few reads, writes,
 * discards, write-zeroes and flushes driven by the input. Beyond the sanitizers, the harness
 * checks that every extent handed out is inside the request, that no data write lands in the
 * header cluster, and that the file never grows past what the operations can explain.
 *
 * Input: byte 0 flags (bit 0 read-only), byte 1 the number of operations (at most MAX_OPS),
 * then 6 bytes per operation: u8 kind (read, read_sync, write, discard, write-zeroes,
 * write-zeroes+unmap, flush), u32 little-endian offset in 512-byte sectors (modulo the size),
 * u8 length in sectors - 1; then the image file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/block/image.h"
#include "util/util.h"

#define MAX_OPS	 16
#define OP_BYTES 6
#define MAX_IO	 (256 * 512)
/* Each operation may allocate a few clusters of data and metadata (2 MiB at most each) and
 * grow the refcount table once (8 MiB at most). */
#define GROWTH_PER_OP (4 * 2 * MiB + 8 * MiB + 2 * MiB)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t file_size(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		__builtin_trap();
	return (uint64_t)st.st_size;
}

static uint32_t header_cluster(const uint8_t *img, size_t len)
{
	if (len < 24 || memcmp(img, "QFI\xfb", 4))
		return 0;
	uint32_t bits = (uint32_t)img[20] << 24 | img[21] << 16 | img[22] << 8 | img[23];
	return bits >= 9 && bits <= 21 ? 1u << bits : 0;
}

static void do_io(struct disk_image *img, int kind, uint64_t off, uint64_t len, uint8_t *buf,
		  uint32_t hdr)
{
	while (len) {
		struct disk_extent e;
		bool write = kind == 2;
		int r = disk_image_map(img, off, len, write, &e);
		if (r < 0)
			return;
		if (e.len == 0 || e.len > len)
			__builtin_trap();
		if (e.kind == DISK_EXTENT_DATA) {
			if (write && e.file_off < hdr)
				__builtin_trap(); /* guest data over the qcow2 header */
			ssize_t n = write ? pwrite(e.fd, buf, e.len, (off_t)e.file_off)
					  : pread(e.fd, buf, e.len, (off_t)e.file_off);
			(void)n;
		} else if (e.kind == DISK_EXTENT_SYNC) {
			if (write)
				__builtin_trap();
			if (disk_image_read_sync(img, off, buf, e.len) < 0)
				return;
		}
		off += e.len;
		len -= e.len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	unsigned nops = MIN(data[1], MAX_OPS);
	size_t skip = 2 + (size_t)nops * OP_BYTES;
	if (size < skip)
		return 0;
	const uint8_t *ops = data + 2, *image = data + skip;
	size_t ilen = size - skip;
	int fd = memfd_create("fuzz-qcow2", MFD_CLOEXEC);
	if (fd < 0 || (ilen && write(fd, image, ilen) != (ssize_t)ilen))
		__builtin_trap();
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct disk_image_opts o = { .readonly = data[0] & 1 };
	struct disk_image *img = NULL;
	char err[256];
	if (disk_image_open(path, &o, &img, err, sizeof(err)) == 0) {
		uint8_t *buf = malloc(MAX_IO);
		memset(buf, 0x5a, MAX_IO);
		uint64_t dsize = disk_image_size(img) / 512;
		uint32_t hdr = disk_image_is_raw(img) ? 0 : header_cluster(image, ilen);
		for (unsigned i = 0; i < nops && dsize; i++) {
			const uint8_t *op = ops + i * OP_BYTES;
			uint64_t sec = (op[1] | op[2] << 8 | op[3] << 16 | (uint64_t)op[4] << 24);
			uint64_t off = sec % dsize * 512, len = ((uint64_t)op[5] + 1) * 512;
			len = MIN(len, disk_image_size(img) - off);
			if (!len)
				continue;
			switch (op[0] % 7) {
			case 0:
			case 2:
				do_io(img, op[0] % 7, off, len, buf, hdr);
				break;
			case 1:
				disk_image_read_sync(img, off, buf, len);
				break;
			case 3:
				disk_image_discard(img, off, len);
				break;
			case 4:
			case 5:
				disk_image_write_zeroes(img, off, len, op[0] % 7 == 5);
				break;
			default:
				disk_image_flush(img);
			}
		}
		disk_image_flush(img);
		disk_image_close(img);
		free(buf);
		if (file_size(fd) > MAX(ilen, 1) + (uint64_t)(nops + 1) * GROWTH_PER_OP)
			__builtin_trap(); /* the image grew by more than it could need */
	}
	close(fd);
	return 0;
}
