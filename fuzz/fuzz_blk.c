/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for virtio-blk's request handling (src/devices/virtio/blk.c): a device on
 * the real virtio-PCI transport over 1 MiB of fake guest RAM (one malloc: ASan flags anything
 * outside it), backed by a 64 KiB raw image in a memfd. The input is the driver: the
 * descriptor table, the chains it makes available and guest RAM (headers, segments, data).
 *
 * Input:
 *   0  u8  bit 0 read-only disk, bit 1 worker pool instead of io_uring, bit 2 addresses taken
 *          raw (else folded into the data window at 0x10000), bit 3 two queues (use queue 1)
 *   1  u8  number of chains made available (1..32)
 *   2  32 × u8 heads (mod the queue size)
 *   34 16 descriptors × 16 bytes (addr, len, flags, next)
 *   290 guest RAM from 0x10000 (the rest zero)
 * After the requests, the device must still serve a good GET_ID on the same queue.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness_traps.h"

#include "../tests/unit/virtio_harness.h"
#include "config/config.h"
#include "devices/virtio/blk.h"
#include "util/util.h"

#define QSIZE	  16
#define WINDOW	  0x10000
#define IMG_SIZE  (64 * 1024)
#define HDR_BYTES 290

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int make_image(char *path, size_t len)
{
	int fd = memfd_create("fuzz-blk", MFD_CLOEXEC);
	uint8_t buf[512];

	if (fd < 0)
		return -1;
	for (size_t o = 0; o < IMG_SIZE; o += sizeof(buf)) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (uint8_t)(o + i);
		if (pwrite(fd, buf, sizeof(buf), (off_t)o) != (ssize_t)sizeof(buf)) {
			close(fd);
			return -1;
		}
	}
	snprintf(path, len, "/proc/self/fd/%d", fd);
	return fd;
}

static void put_desc(struct vh *h, unsigned q, unsigned i, const uint8_t *d, bool raw)
{
	uint64_t addr = 0;
	uint32_t len = (uint32_t)(d[8] | d[9] << 8 | d[10] << 16 | (uint32_t)d[11] << 24);
	uint16_t flags = (uint16_t)(d[12] | d[13] << 8), next = (uint16_t)(d[14] | d[15] << 8);

	for (unsigned b = 0; b < 8; b++)
		addr |= (uint64_t)d[b] << (8 * b);
	if (!raw) {
		addr = WINDOW + (addr & 0xffff);
		len &= 0x1ffff;
	}
	vh_desc(h, q, i, addr, len, flags, next);
}

/* GET_ID in descriptors 0-2 of queue @q: must come back OK. */
static void good_request(struct vh *h, void *dev, unsigned q)
{
	uint16_t used = vh_used_idx(h, q);

	memset(h->ram + WINDOW, 0, 64);
	h->ram[WINDOW] = VIRTIO_BLK_T_GET_ID;
	h->ram[WINDOW + 48] = 0xff;
	vh_desc(h, q, 0, WINDOW, 16, VIRTQ_DESC_F_NEXT, 1);
	vh_desc(h, q, 1, WINDOW + 16, 20, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
	vh_desc(h, q, 2, WINDOW + 48, 1, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(h, q, QSIZE, 0);
	vh_notify(h, q);
	virtio_pci_run_notify(blk_transport(dev), q);
	blk_drain(dev);
	assert_true(vh_used_idx(h, q) == (uint16_t)(used + 1));
	assert_true(h->ram[WINDOW + 48] == VIRTIO_BLK_S_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct disk_config d;
	struct vh *h;
	void *dev = NULL;
	char path[64];
	unsigned q, n;
	int fd;

	if (size < HDR_BYTES)
		return 0;
	fd = make_image(path, sizeof(path));
	if (fd < 0)
		return 0;
	h = vh_create(false);
	memcpy(h->ram + WINDOW, data + HDR_BYTES, MIN(size - HDR_BYTES, (size_t)0x20000));
	memset(&d, 0, sizeof(d));
	d.path = path;
	d.readonly = data[0] & 1;
	d.disable_io_uring = data[0] & 2;
	d.num_queues = (data[0] & 8) ? 2 : 1;
	d.queue_size = QSIZE;
	d.id = "_disk0";
	d.serial = "fuzz";
	if (blk_create(&h->ctx, &d, &dev) < 0)
		goto out;
	vh_attach(h, virtio_pci_function(blk_transport(dev)), d.num_queues + 1);
	vh_negotiate(h,
		     VH_VERSION_1 | (1ULL << VIRTIO_F_INDIRECT_DESC) | (1ULL << VIRTIO_BLK_F_MQ));
	q = d.num_queues - 1;
	for (unsigned i = 0; i < d.num_queues; i++)
		vh_setup_queue(h, i, QSIZE);
	vh_driver_ok(h);

	for (unsigned i = 0; i < QSIZE; i++)
		put_desc(h, q, i, data + 34 + 16 * i, data[0] & 4);
	n = 1 + data[1] % 32;
	for (unsigned i = 0; i < n; i++) {
		vh_avail(h, q, QSIZE, data[2 + i] % QSIZE);
		if (i % 8 == 7 || i == n - 1) {
			vh_notify(h, q);
			virtio_pci_run_notify(blk_transport(dev), q);
			blk_drain(dev);
		}
	}
	/* Whatever happened, a reset brings the device back. */
	vh_wr(h, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	memset(h->avail_idx, 0, sizeof(h->avail_idx));
	memset(h->ram + VH_DESC, 0, 4 * VH_RING_STEP);
	vh_negotiate(h, VH_VERSION_1 | (1ULL << VIRTIO_BLK_F_MQ));
	for (unsigned i = 0; i < d.num_queues; i++)
		vh_setup_queue(h, i, QSIZE);
	vh_driver_ok(h);
	good_request(h, dev, q);
out:
	blk_destroy(dev);
	vh_destroy(h);
	close(fd);
	return 0;
}
