/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk (src/devices/virtio/blk.c) against fake guest memory and a real raw image: every
 * request type, every bad request, the config space, both I/O engines.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/epoll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "devices/virtio/blk.h"
#include "virtio_harness.h"

#define QSIZE	  16
#define HDR	  0x10000
#define DATA	  0x20000
#define STATUS	  0x70000
#define IMG_SECTS 256 /* 128 KiB image */
#define CANARY	  0xa5

struct fx {
	struct vh *h;
	void *dev;
	char path[64];
	int fd; /* the image, for checks */
	uint16_t nq;
};

static bool use_pool;

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + (off >> 9));
}

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	uint8_t buf[BLK_SECTOR];

	assert_non_null(x);
	x->h = vh_create(false);
	snprintf(x->path, sizeof(x->path), "/tmp/cubicle-test-blk-XXXXXX");
	x->fd = mkstemp(x->path);
	assert_true(x->fd >= 0);
	for (unsigned s = 0; s < IMG_SECTS; s++) {
		for (unsigned i = 0; i < BLK_SECTOR; i++)
			buf[i] = pattern((uint64_t)s * BLK_SECTOR + i);
		assert_int_equal(pwrite(x->fd, buf, sizeof(buf), (off_t)s * BLK_SECTOR),
				 BLK_SECTOR);
	}
	memset(x->h->ram + HDR, CANARY, VH_RAM_SIZE - HDR);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;

	if (x->dev)
		blk_destroy(x->dev);
	close(x->fd);
	unlink(x->path);
	vh_destroy(x->h);
	free(x);
	return 0;
}

/* The disk on the fixture's image, queues up, DRIVER_OK; @d's path, queues and engine are set
 * here. */
static void start_cfg(struct fx *x, struct disk_config *d)
{
	uint16_t nq = d->num_queues;

	d->path = x->path;
	d->queue_size = QSIZE;
	d->id = "_disk0";
	d->disable_io_uring = use_pool;
	assert_int_equal(blk_create(&x->h->ctx, d, &x->dev), 0);
	assert_string_equal(blk_engine(x->dev), use_pool ? "thread-pool" : "io_uring");
	vh_attach(x->h, virtio_pci_function(blk_transport(x->dev)), nq + 1);
	assert_true(vh_negotiate(x->h, VH_VERSION_1 | (1ULL << VIRTIO_BLK_F_MQ)) &
		    VIRTIO_STATUS_FEATURES_OK);
	for (unsigned q = 0; q < nq; q++)
		vh_setup_queue(x->h, q, QSIZE);
	vh_driver_ok(x->h);
	x->nq = nq;
}

/* The disk on @path instead of the fixture's image (which stays for teardown). */
static void start_on(struct fx *x, const char *path, struct disk_config *d)
{
	char keep[sizeof(x->path)];

	memcpy(keep, x->path, sizeof(keep));
	snprintf(x->path, sizeof(x->path), "%s", path);
	start_cfg(x, d);
	memcpy(x->path, keep, sizeof(keep));
}

static void start_with(struct fx *x, bool readonly, uint16_t nq, const char *serial)
{
	struct disk_config d;

	disk_config_init(&d);
	d.readonly = readonly;
	d.num_queues = nq;
	d.serial = (char *)serial;
	start_cfg(x, &d);
}

static void start(struct fx *x)
{
	start_with(x, false, 1, "SERIAL-0123456789abcdef");
}

static void put_hdr(struct fx *x, uint32_t type, uint64_t sector)
{
	memset(x->h->ram + HDR, 0, BLK_HDR_SIZE);
	for (unsigned i = 0; i < 4; i++)
		x->h->ram[HDR + i] = (uint8_t)(type >> (8 * i));
	for (unsigned i = 0; i < 8; i++)
		x->h->ram[HDR + 8 + i] = (uint8_t)(sector >> (8 * i));
}

/* The usual chain on queue @q: header (readable), data (@dflags) unless @dlen is 0, status. */
static void chain(struct fx *x, unsigned q, uint32_t hdr_len, uint32_t dlen, uint16_t dflags)
{
	unsigned i = 0;

	vh_desc(x->h, q, i, HDR, hdr_len, VIRTQ_DESC_F_NEXT, i + 1);
	i++;
	if (dlen) {
		vh_desc(x->h, q, i, DATA, dlen, dflags | VIRTQ_DESC_F_NEXT, i + 1);
		i++;
	}
	vh_desc(x->h, q, i, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
	x->h->ram[STATUS] = CANARY;
}

/* Posts chain 0 on @q, serves it to completion, returns the used length. */
static uint32_t serve_q(struct fx *x, unsigned q)
{
	uint16_t used = vh_used_idx(x->h, q);

	vh_avail(x->h, q, QSIZE, 0);
	vh_notify(x->h, q);
	virtio_pci_run_notify(blk_transport(x->dev), q);
	blk_drain(x->dev);
	assert_int_equal(vh_used_idx(x->h, q), (uint16_t)(used + 1));
	return vh_used_len(x->h, q, used, QSIZE);
}

static uint32_t serve(struct fx *x)
{
	return serve_q(x, 0);
}

static uint8_t status(struct fx *x)
{
	return x->h->ram[STATUS];
}

static void assert_canary(struct fx *x, uint64_t gpa, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (x->h->ram[gpa + i] != CANARY)
			fail_msg("guest byte %#llx changed", (unsigned long long)(gpa + i));
	}
}

static void test_config_space(void **state)
{
	struct fx *x = *state;
	uint64_t f;

	start_with(x, true, 2, NULL);
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF, 8), IMG_SECTS);
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF + 12, 4), QSIZE - 2); /* seg_max */
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF + 20, 4), 512);	 /* blk_size */
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF + 34, 2), 2);	 /* num_queues */
	vh_wr(x->h, VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
	f = vh_rd(x->h, VIRTIO_PCI_COMMON_DF, 4);
	assert_true(f & (1U << VIRTIO_BLK_F_RO));
	assert_true(f & (1U << VIRTIO_BLK_F_FLUSH));
	assert_true(f & (1U << VIRTIO_BLK_F_MQ));
	assert_false(f & (1U << VIRTIO_BLK_F_DISCARD)); /* not on a read-only disk */
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
}

static void test_read(void **state)
{
	struct fx *x = *state;

	start(x);
	put_hdr(x, VIRTIO_BLK_T_IN, 3);
	chain(x, 0, BLK_HDR_SIZE, 4096, VIRTQ_DESC_F_WRITE);
	assert_int_equal(serve(x), 4097);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 4096; i++)
		assert_int_equal(x->h->ram[DATA + i], pattern(3 * 512 + i));
	assert_canary(x, DATA + 4096, 64);
}

/* Data and status in one descriptor, header split in two: framing is free (virtio 1.2 §2.6.4). */
static void test_read_odd_framing(void **state)
{
	struct fx *x = *state;

	start(x);
	put_hdr(x, VIRTIO_BLK_T_IN, 1);
	vh_desc(x->h, 0, 0, HDR, 5, VIRTQ_DESC_F_NEXT, 1);
	vh_desc(x->h, 0, 1, HDR + 5, 11, VIRTQ_DESC_F_NEXT, 2);
	vh_desc(x->h, 0, 2, DATA, 1024 + 1, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(serve(x), 1025);
	assert_int_equal(x->h->ram[DATA + 1024], VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 1024; i++)
		assert_int_equal(x->h->ram[DATA + i], pattern(512 + i));
}

static void test_write_flush(void **state)
{
	struct fx *x = *state;
	uint8_t back[2048];

	start(x);
	for (unsigned i = 0; i < 2048; i++)
		x->h->ram[DATA + i] = (uint8_t)(i ^ 0x3c);
	put_hdr(x, VIRTIO_BLK_T_OUT, 10);
	chain(x, 0, BLK_HDR_SIZE, 2048, 0);
	assert_int_equal(serve(x), 1);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	assert_int_equal(pread(x->fd, back, sizeof(back), 10 * 512), sizeof(back));
	assert_memory_equal(back, x->h->ram + DATA, sizeof(back));

	put_hdr(x, VIRTIO_BLK_T_FLUSH, 0);
	chain(x, 0, BLK_HDR_SIZE, 0, 0);
	assert_int_equal(serve(x), 1);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
}

/* Header and data in one readable descriptor. */
static void test_write_one_descriptor(void **state)
{
	struct fx *x = *state;
	uint8_t back[512];

	start(x);
	put_hdr(x, VIRTIO_BLK_T_OUT, 0);
	memset(x->h->ram + HDR + BLK_HDR_SIZE, 0x77, 512);
	vh_desc(x->h, 0, 0, HDR, BLK_HDR_SIZE + 512, VIRTQ_DESC_F_NEXT, 1);
	vh_desc(x->h, 0, 1, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(serve(x), 1);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	assert_int_equal(pread(x->fd, back, sizeof(back), 0), sizeof(back));
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(back[i], 0x77);
}

static void test_get_id(void **state)
{
	struct fx *x = *state;

	start(x);
	put_hdr(x, VIRTIO_BLK_T_GET_ID, 0);
	chain(x, 0, BLK_HDR_SIZE, BLK_ID_BYTES, VIRTQ_DESC_F_WRITE);
	assert_int_equal(serve(x), BLK_ID_BYTES + 1);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	assert_memory_equal(x->h->ram + DATA, "SERIAL-0123456789abc", BLK_ID_BYTES);
	assert_canary(x, DATA + BLK_ID_BYTES, 16);
}

static void put_seg(struct fx *x, unsigned i, uint64_t sector, uint32_t num, uint32_t flags)
{
	uint8_t *s = x->h->ram + DATA + 16 * i;

	for (unsigned b = 0; b < 8; b++)
		s[b] = (uint8_t)(sector >> (8 * b));
	for (unsigned b = 0; b < 4; b++) {
		s[8 + b] = (uint8_t)(num >> (8 * b));
		s[12 + b] = (uint8_t)(flags >> (8 * b));
	}
}

static void test_write_zeroes_discard(void **state)
{
	struct fx *x = *state;
	uint8_t back[1024];

	start(x);
	put_hdr(x, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	put_seg(x, 0, 4, 2, 0);
	put_seg(x, 1, 20, 8, VIRTIO_BLK_WZ_F_UNMAP);
	chain(x, 0, BLK_HDR_SIZE, 32, 0);
	assert_int_equal(serve(x), 1);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	assert_int_equal(pread(x->fd, back, sizeof(back), 4 * 512), sizeof(back));
	for (unsigned i = 0; i < sizeof(back); i++)
		assert_int_equal(back[i], 0);
	assert_int_equal(pread(x->fd, back, 512, 6 * 512), 512);
	assert_int_equal(back[1], pattern(6 * 512 + 1)); /* just past the range: untouched */

	put_hdr(x, VIRTIO_BLK_T_DISCARD, 0);
	put_seg(x, 0, 64, 64, 0);
	chain(x, 0, BLK_HDR_SIZE, 16, 0);
	assert_int_equal(serve(x), 1);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);

	/* discard with UNMAP, or reserved flags: UNSUPP */
	put_seg(x, 0, 64, 8, VIRTIO_BLK_WZ_F_UNMAP);
	chain(x, 0, BLK_HDR_SIZE, 16, 0);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_UNSUPP);
	put_hdr(x, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	put_seg(x, 0, 64, 8, 0x10);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_UNSUPP);
	/* past the end, too many sectors, too many segments, a partial segment: IOERR */
	put_seg(x, 0, IMG_SECTS - 1, 2, 0);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_IOERR);
	put_seg(x, 0, UINT64_MAX, 1, 0);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_IOERR);
	chain(x, 0, BLK_HDR_SIZE, 16 * (BLK_MAX_DWZ_SEGS + 1), 0);
	for (unsigned i = 0; i <= BLK_MAX_DWZ_SEGS; i++)
		put_seg(x, i, 0, 1, 0);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_IOERR);
	chain(x, 0, BLK_HDR_SIZE, 24, 0);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_IOERR);
	chain(x, 0, BLK_HDR_SIZE, 0, 0); /* no segment at all */
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_IOERR);
}

static void test_bad_requests(void **state)
{
	struct fx *x = *state;

	start(x);
	/* short header */
	put_hdr(x, VIRTIO_BLK_T_IN, 0);
	chain(x, 0, 8, 512, VIRTQ_DESC_F_WRITE);
	assert_int_equal(serve(x), 1);
	assert_int_equal(status(x), VIRTIO_BLK_S_IOERR);
	assert_canary(x, DATA, 512);
	/* a read whose data is readable (wrong direction) */
	chain(x, 0, BLK_HDR_SIZE, 512, 0);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_IOERR);
	assert_canary(x, DATA, 512);
	/* a write whose data is writable */
	put_hdr(x, VIRTIO_BLK_T_OUT, 0);
	chain(x, 0, BLK_HDR_SIZE, 512, VIRTQ_DESC_F_WRITE);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_IOERR);
	assert_canary(x, DATA, 512);
	/* sector past the end, range crossing the end, huge sector */
	put_hdr(x, VIRTIO_BLK_T_IN, IMG_SECTS);
	chain(x, 0, BLK_HDR_SIZE, 512, VIRTQ_DESC_F_WRITE);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_IOERR);
	put_hdr(x, VIRTIO_BLK_T_IN, IMG_SECTS - 1);
	chain(x, 0, BLK_HDR_SIZE, 1024, VIRTQ_DESC_F_WRITE);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_IOERR);
	put_hdr(x, VIRTIO_BLK_T_IN, UINT64_MAX / 256);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_IOERR);
	assert_canary(x, DATA, 1024);
	/* not a multiple of 512 */
	put_hdr(x, VIRTIO_BLK_T_IN, 0);
	chain(x, 0, BLK_HDR_SIZE, 100, VIRTQ_DESC_F_WRITE);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_IOERR);
	assert_canary(x, DATA, 100);
	/* unknown type */
	put_hdr(x, 99, 0);
	chain(x, 0, BLK_HDR_SIZE, 0, 0);
	assert_int_equal(serve(x), 1);
	assert_int_equal(status(x), VIRTIO_BLK_S_UNSUPP);
	/* no writable status byte: completed with nothing written */
	put_hdr(x, VIRTIO_BLK_T_IN, 0);
	vh_desc(x->h, 0, 0, HDR, BLK_HDR_SIZE, VIRTQ_DESC_F_NEXT, 1);
	vh_desc(x->h, 0, 1, DATA, 512, 0, 0);
	assert_int_equal(serve(x), 0);
	assert_canary(x, DATA, 512);
	/* still serving */
	put_hdr(x, VIRTIO_BLK_T_IN, 0);
	chain(x, 0, BLK_HDR_SIZE, 512, VIRTQ_DESC_F_WRITE);
	assert_int_equal(serve(x), 513);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	assert_int_equal(virtio_pci_status(blk_transport(x->dev)) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

static void test_readonly(void **state)
{
	struct fx *x = *state;
	uint8_t back[512];

	start_with(x, true, 1, NULL);
	memset(x->h->ram + DATA, 0, 512);
	put_hdr(x, VIRTIO_BLK_T_OUT, 0);
	chain(x, 0, BLK_HDR_SIZE, 512, 0);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_IOERR);
	assert_int_equal(pread(x->fd, back, sizeof(back), 0), sizeof(back));
	assert_int_equal(back[5], pattern(5));
	put_hdr(x, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	put_seg(x, 0, 0, 1, 0);
	chain(x, 0, BLK_HDR_SIZE, 16, 0);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_IOERR);
	/* GET_ID without a serial: zeros */
	put_hdr(x, VIRTIO_BLK_T_GET_ID, 0);
	chain(x, 0, BLK_HDR_SIZE, BLK_ID_BYTES, VIRTQ_DESC_F_WRITE);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	assert_int_equal(x->h->ram[DATA], 0);
	/* reads work */
	put_hdr(x, VIRTIO_BLK_T_IN, 0);
	chain(x, 0, BLK_HDR_SIZE, 512, VIRTQ_DESC_F_WRITE);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	assert_int_equal(x->h->ram[DATA + 5], pattern(5));
}

static void test_second_queue(void **state)
{
	struct fx *x = *state;

	start_with(x, false, 2, NULL);
	put_hdr(x, VIRTIO_BLK_T_IN, 7);
	chain(x, 1, BLK_HDR_SIZE, 512, VIRTQ_DESC_F_WRITE);
	assert_int_equal(serve_q(x, 1), 513);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	assert_int_equal(x->h->ram[DATA + 9], pattern(7 * 512 + 9));
	assert_int_equal(vh_used_idx(x->h, 0), 0);
}

/* Many requests in flight at once, completed in any order, each into its own buffer. */
static void test_many_in_flight(void **state)
{
	struct fx *x = *state;
	const unsigned n = QSIZE / 2;
	uint16_t used = 0;

	start(x);
	for (unsigned k = 0; k < n; k++) {
		uint64_t hdr = HDR + 32ULL * k, data = DATA + 8192ULL * k;

		memset(x->h->ram + hdr, 0, BLK_HDR_SIZE);
		x->h->ram[hdr + 8] = (uint8_t)(8 * k); /* sector */
		vh_desc(x->h, 0, 2 * k, hdr, BLK_HDR_SIZE, VIRTQ_DESC_F_NEXT, 2 * k + 1);
		vh_desc(x->h, 0, 2 * k + 1, data, 4096 + 1, VIRTQ_DESC_F_WRITE, 0);
		vh_avail(x->h, 0, QSIZE, (uint16_t)(2 * k));
	}
	vh_notify(x->h, 0);
	virtio_pci_run_notify(blk_transport(x->dev), 0);
	blk_drain(x->dev);
	used = vh_used_idx(x->h, 0);
	assert_int_equal(used, n);
	for (unsigned k = 0; k < n; k++) {
		assert_int_equal(x->h->ram[DATA + 8192ULL * k + 4096], VIRTIO_BLK_S_OK);
		assert_int_equal(x->h->ram[DATA + 8192ULL * k + 100], pattern(4096ULL * k + 100));
	}
}

/* Writes and a flush made available together: the flush is used after every write. */
static void test_flush_after_writes(void **state)
{
	struct fx *x = *state;
	const unsigned n = 4;
	uint64_t used_ring = VH_USED + 4;

	start(x);
	for (unsigned k = 0; k <= n; k++) {
		uint64_t hdr = HDR + 32ULL * k, data = DATA + 8192ULL * k;

		memset(x->h->ram + hdr, 0, BLK_HDR_SIZE);
		x->h->ram[hdr] = k < n ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_FLUSH;
		x->h->ram[hdr + 8] = (uint8_t)(16 * k); /* sector */
		vh_desc(x->h, 0, 3 * k, hdr, BLK_HDR_SIZE, VIRTQ_DESC_F_NEXT,
			k < n ? 3 * k + 1 : 3 * k + 2);
		vh_desc(x->h, 0, 3 * k + 1, data, 4096, VIRTQ_DESC_F_NEXT, 3 * k + 2);
		vh_desc(x->h, 0, 3 * k + 2, STATUS + k, 1, VIRTQ_DESC_F_WRITE, 0);
		vh_avail(x->h, 0, QSIZE, (uint16_t)(3 * k));
	}
	vh_notify(x->h, 0);
	virtio_pci_run_notify(blk_transport(x->dev), 0);
	blk_drain(x->dev);
	assert_int_equal(vh_used_idx(x->h, 0), n + 1);
	assert_int_equal(vh_get32(x->h, used_ring + 8ULL * n), 3 * n); /* the flush, last */
	for (unsigned k = 0; k <= n; k++)
		assert_int_equal(x->h->ram[STATUS + k], VIRTIO_BLK_S_OK);
}

static void test_counters_cb(void *opaque, const char *id, const char *name, uint64_t value)
{
	uint64_t *v = opaque;

	assert_string_equal(id, "_disk0");
	if (strcmp(name, "read_bytes") == 0)
		v[0] = value;
	else if (strcmp(name, "write_ops") == 0)
		v[1] = value;
}

static void test_counters_and_realize(void **state)
{
	struct fx *x = *state;
	uint64_t v[2] = { 0, 0 };
	void *set = NULL;
	char err[256] = "";

	x->h->cfg.num_disks = 1;
	disk_config_init(&x->h->cfg.disks[0]);
	x->h->cfg.disks[0].path = strdup(x->path);
	x->h->cfg.disks[0].id = strdup("_disk0");
	x->h->cfg.disks[0].disable_io_uring = use_pool;
	x->h->ctx.err = err;
	x->h->ctx.errlen = sizeof(err);
	assert_int_equal(blk_ops.realize(&x->h->ctx, NULL, &set), 0);
	assert_non_null(set);
	blk_ops.counters(set, test_counters_cb, v);
	assert_int_equal(v[0], 0);
	blk_ops.pause(set);
	blk_ops.resume(set);
	blk_ops.unrealize(set);

	/* a missing image: one line naming --disk */
	free(x->h->cfg.disks[0].path);
	x->h->cfg.disks[0].path = strdup("/nonexistent/disk.img");
	set = NULL;
	assert_true(blk_ops.realize(&x->h->ctx, NULL, &set) < 0);
	assert_null(set);
	assert_non_null(strstr(err, "--disk: "));
	assert_non_null(strstr(err, "/nonexistent/disk.img"));
}

static void test_reset_with_requests(void **state)
{
	struct fx *x = *state;

	start(x);
	put_hdr(x, VIRTIO_BLK_T_IN, 0);
	chain(x, 0, BLK_HDR_SIZE, 512, VIRTQ_DESC_F_WRITE);
	vh_avail(x->h, 0, QSIZE, 0);
	vh_notify(x->h, 0);
	virtio_pci_run_notify(blk_transport(x->dev), 0);
	vh_wr(x->h, VIRTIO_PCI_COMMON_STATUS, 0, 1); /* reset with the read in flight */
	/* The driver sets the queue up again at once: the old read must not show up in it. */
	memset(x->h->ram + VH_USED, 0, 64);
	x->h->avail_idx[0] = 0;
	vh_put16(x->h, VH_AVAIL + 2, 0);
	assert_true(vh_negotiate(x->h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_setup_queue(x->h, 0, QSIZE);
	vh_driver_ok(x->h);
	blk_drain(x->dev);
	assert_int_equal(vh_used_idx(x->h, 0), 0);
	put_hdr(x, VIRTIO_BLK_T_IN, 1);
	assert_int_equal(serve(x), 513);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	assert_int_equal(x->h->ram[DATA + 7], pattern(512 + 7));
}

/* direct=on: O_DIRECT, and guest buffers that are not aligned go through a bounce buffer. */
static void test_direct_bounce(void **state)
{
	struct fx *x = *state;
	struct disk_config d;
	uint8_t back[1024];

	disk_config_init(&d);
	d.direct = true;
	d.num_queues = 1;
	start_cfg(x, &d);
	put_hdr(x, VIRTIO_BLK_T_IN, 2);
	vh_desc(x->h, 0, 0, HDR, BLK_HDR_SIZE, VIRTQ_DESC_F_NEXT, 1);
	vh_desc(x->h, 0, 1, DATA + 3, 1024, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
	vh_desc(x->h, 0, 2, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(serve(x), 1025);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 1024; i++)
		assert_int_equal(x->h->ram[DATA + 3 + i], pattern(2 * 512 + i));
	assert_canary(x, DATA + 3 + 1024, 64);
	assert_int_equal(x->h->ram[DATA + 2], CANARY);

	for (unsigned i = 0; i < 1024; i++)
		x->h->ram[DATA + 5 + i] = (uint8_t)(i * 3);
	put_hdr(x, VIRTIO_BLK_T_OUT, 40);
	vh_desc(x->h, 0, 1, DATA + 5, 1024, VIRTQ_DESC_F_NEXT, 2);
	assert_int_equal(serve(x), 1);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	assert_int_equal(pread(x->fd, back, sizeof(back), 40 * 512), sizeof(back));
	assert_memory_equal(back, x->h->ram + DATA + 5, sizeof(back));
}

/*
 * Unaligned I/O on a disk that wants 4096-byte alignment: whole blocks through a bounce buffer,
 * read-modify-write for writes. The writes go in together: four of them share block 0 or 1,
 * and would overwrite each other's sectors with stale copies if they ran at once.
 */

/* Read or write chain @k (heads 3k..3k+2 of queue 0): its header and status at HDR + 32k. */
static void post_rw(struct fx *x, unsigned k, uint32_t type, uint64_t sector, uint64_t data,
		    uint32_t len)
{
	uint64_t hdr = HDR + 32ULL * k;
	uint16_t dflags = type == VIRTIO_BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0;

	memset(x->h->ram + hdr, 0, BLK_HDR_SIZE);
	x->h->ram[hdr] = (uint8_t)type;
	for (unsigned i = 0; i < 8; i++)
		x->h->ram[hdr + 8 + i] = (uint8_t)(sector >> (8 * i));
	x->h->ram[hdr + BLK_HDR_SIZE] = CANARY;
	/* No data (a flush): the header goes straight on to the status. */
	vh_desc(x->h, 0, 3 * k, hdr, BLK_HDR_SIZE, VIRTQ_DESC_F_NEXT, len ? 3 * k + 1 : 3 * k + 2);
	vh_desc(x->h, 0, 3 * k + 1, data, len, dflags | VIRTQ_DESC_F_NEXT, 3 * k + 2);
	vh_desc(x->h, 0, 3 * k + 2, hdr + BLK_HDR_SIZE, 1, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(x->h, 0, QSIZE, (uint16_t)(3 * k));
}

static uint8_t rw_status(struct fx *x, unsigned k)
{
	return x->h->ram[HDR + 32ULL * k + BLK_HDR_SIZE];
}

/* Notifies queue 0, runs the device until every request is done and checks that the @n posted
 * with post_rw() (slots 0..@n-1) came back OK, @used being the used index before them. */
static void run_all_ok(struct fx *x, uint16_t used, unsigned n)
{
	vh_notify(x->h, 0);
	virtio_pci_run_notify(blk_transport(x->dev), 0);
	blk_drain(x->dev);
	assert_int_equal(vh_used_idx(x->h, 0), (uint16_t)(used + n));
	for (unsigned k = 0; k < n; k++)
		assert_int_equal(rw_status(x, k), VIRTIO_BLK_S_OK);
}

/* The head of used entry @i of queue 0. */
static uint32_t used_id(struct fx *x, uint16_t i)
{
	return vh_get32(x->h, VH_USED + 4 + 8ULL * (i % QSIZE));
}

struct rmw_write {
	uint64_t sector;
	uint32_t len;
};

static void rmw_scenario(struct fx *x, int check_fd, uint64_t check_off)
{
	static const struct rmw_write w[] = {
		{ 1, 512 },   /* inside block 0 */
		{ 2, 1024 },  /* block 0 again, beside it */
		{ 7, 1536 },  /* the end of block 0 and the start of block 1 */
		{ 30, 4096 }, /* 4 KiB long, across blocks 3 and 4 */
	};
	static uint8_t model[IMG_SECTS * BLK_SECTOR], back[IMG_SECTS * BLK_SECTOR];
	uint16_t used = vh_used_idx(x->h, 0);

	for (uint64_t i = 0; i < sizeof(model); i++)
		model[i] = pattern(i);
	for (unsigned k = 0; k < ARRAY_SIZE(w); k++) {
		uint64_t data = DATA + 0x8000ULL * k + 1 + k; /* odd buffers too */

		for (unsigned i = 0; i < w[k].len; i++)
			x->h->ram[data + i] = (uint8_t)(0x10 * (k + 1) + i % 13);
		memcpy(model + w[k].sector * BLK_SECTOR, x->h->ram + data, w[k].len);
		post_rw(x, k, VIRTIO_BLK_T_OUT, w[k].sector, data, w[k].len);
	}
	post_rw(x, 4, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	run_all_ok(x, used, 5);
	assert_int_equal(used_id(x, (uint16_t)(used + 4)), 12); /* the flush came last */
	assert_int_equal(pread(check_fd, back, sizeof(back), (off_t)check_off), sizeof(back));
	for (unsigned i = 0; i < sizeof(back); i++) {
		if (back[i] != model[i])
			fail_msg("disk byte %u is %#x, not %#x", i, back[i], model[i]);
	}

	/* Unaligned reads, into odd buffers, across the blocks just written. */
	used = vh_used_idx(x->h, 0);
	post_rw(x, 0, VIRTIO_BLK_T_IN, 3, DATA + 1, 2560);
	post_rw(x, 1, VIRTIO_BLK_T_IN, 29, DATA + 0x8000, 5120);
	post_rw(x, 2, VIRTIO_BLK_T_IN, 9, DATA + 0x10000, 512);
	run_all_ok(x, used, 3);
	assert_memory_equal(x->h->ram + DATA + 1, model + 3 * BLK_SECTOR, 2560);
	assert_memory_equal(x->h->ram + DATA + 0x8000, model + 29 * BLK_SECTOR, 5120);
	assert_memory_equal(x->h->ram + DATA + 0x10000, model + 9 * BLK_SECTOR, 512);
	assert_int_equal(x->h->ram[DATA], CANARY);
	assert_int_equal(x->h->ram[DATA + 1 + 2560], CANARY);
}

/* The device made to align to 4096 on an ordinary file: the logic, on both engines. */
static void test_rmw_forced_align(void **state)
{
	struct fx *x = *state;
	struct disk_config d;

	disk_config_init(&d);
	d.num_queues = 1;
	d.test_align = 4096;
	start_cfg(x, &d);
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF + 20, 4), 4096); /* blk_size */
	rmw_scenario(x, x->fd, 0);

	/* A write-zeroes inside a block two read-modify-writes touch, all three at once. */
	uint8_t back[8 * BLK_SECTOR];
	uint64_t segs = DATA + 0x30000;

	memset(x->h->ram + DATA, 0xee, BLK_SECTOR);
	memset(x->h->ram + DATA + 0x10000, 0xdd, BLK_SECTOR);
	memset(x->h->ram + segs, 0, BLK_SEG_SIZE);
	x->h->ram[segs] = 42; /* sectors 42-47 */
	x->h->ram[segs + 8] = 6;
	post_rw(x, 0, VIRTIO_BLK_T_OUT, 41, DATA, BLK_SECTOR);
	post_rw(x, 1, VIRTIO_BLK_T_WRITE_ZEROES, 0, segs, BLK_SEG_SIZE);
	post_rw(x, 2, VIRTIO_BLK_T_OUT, 43, DATA + 0x10000, BLK_SECTOR);
	vh_notify(x->h, 0);
	virtio_pci_run_notify(blk_transport(x->dev), 0);
	blk_drain(x->dev);
	for (unsigned k = 0; k < 3; k++)
		assert_int_equal(rw_status(x, k), VIRTIO_BLK_S_OK);
	assert_int_equal(pread(x->fd, back, sizeof(back), 40 * BLK_SECTOR), sizeof(back));
	for (unsigned i = 0; i < sizeof(back); i++) {
		unsigned sector = 40 + i / BLK_SECTOR;
		uint8_t want = sector == 41 ? 0xee : sector == 43 ? 0xdd : 0;

		if (sector == 40)
			want = pattern(40 * BLK_SECTOR + i);
		if (back[i] != want)
			fail_msg("sector %u byte %u is %#x, not %#x", sector, i % BLK_SECTOR,
				 back[i], want);
	}
}

/* A disk whose size is not a multiple of the alignment: its last, partial block cannot be
 * widened, so requests reaching it go through the buffered fd; the file keeps its size. */
static void test_rmw_odd_size(void **state)
{
	struct fx *x = *state;
	struct disk_config d;
	const uint64_t size = IMG_SECTS * BLK_SECTOR + 2 * BLK_SECTOR;
	uint8_t back[4096];
	struct stat st;

	for (uint64_t i = IMG_SECTS * BLK_SECTOR; i < size; i++)
		assert_int_equal(pwrite(x->fd, &(uint8_t){ pattern(i) }, 1, (off_t)i), 1);
	disk_config_init(&d);
	d.num_queues = 1;
	d.test_align = 4096;
	start_cfg(x, &d);
	put_hdr(x, VIRTIO_BLK_T_IN, IMG_SECTS);
	chain(x, 0, BLK_HDR_SIZE, 2 * BLK_SECTOR, VIRTQ_DESC_F_WRITE);
	assert_int_equal(serve(x), 2 * BLK_SECTOR + 1);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 2 * BLK_SECTOR; i++)
		assert_int_equal(x->h->ram[DATA + i], pattern(IMG_SECTS * BLK_SECTOR + i));

	memset(x->h->ram + DATA, 0xab, sizeof(back));
	put_hdr(x, VIRTIO_BLK_T_OUT, IMG_SECTS - 6); /* the last 4 KiB of the disk */
	chain(x, 0, BLK_HDR_SIZE, sizeof(back), 0);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	assert_int_equal(pread(x->fd, back, sizeof(back), (off_t)(size - sizeof(back))),
			 sizeof(back));
	for (unsigned i = 0; i < sizeof(back); i++)
		assert_int_equal(back[i], 0xab);
	assert_int_equal(fstat(x->fd, &st), 0);
	assert_int_equal(st.st_size, size);
}

/* A free loop device over @file with 4096-byte sectors, detached when its last user closes it:
 * its fd, or -errno. */
static int loop_attach_4k(const char *file, char *dev, size_t devlen)
{
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	int ffd = open(file, O_RDWR | O_CLOEXEC);
	int r = -ENODEV;

	for (unsigned tries = 0; ctl >= 0 && ffd >= 0 && tries < 8 && r < 0; tries++) {
		struct loop_config c = { .fd = (uint32_t)ffd, .block_size = 4096 };
		int nr = ioctl(ctl, LOOP_CTL_GET_FREE), fd;

		if (nr < 0)
			break;
		snprintf(dev, devlen, "/dev/loop%d", nr);
		c.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		fd = open(dev, O_RDWR | O_CLOEXEC);
		if (fd >= 0 && ioctl(fd, LOOP_CONFIGURE, &c) == 0)
			r = fd;
		else if (fd >= 0)
			close(fd); /* taken by someone else meanwhile: the next one */
	}
	if (ctl >= 0)
		close(ctl);
	if (ffd >= 0)
		close(ffd);
	return r;
}

/* direct=on on a real 4K-sector disk (a loop device): O_DIRECT refuses anything unaligned. */
static void test_rmw_loop_4k(void **state)
{
	struct fx *x = *state;
	struct disk_config d;
	char dev[sizeof(x->path)];
	int lfd;

	if (geteuid() != 0) {
		print_message("skipped: a loop device needs root\n");
		skip();
	}
	lfd = loop_attach_4k(x->path, dev, sizeof(dev));
	if (lfd < 0) {
		print_message("skipped: no loop device: %s\n", strerror(-lfd));
		skip();
	}
	disk_config_init(&d);
	d.num_queues = 1;
	d.direct = true;
	start_on(x, dev, &d);
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF + 20, 4), 4096); /* blk_size */
	rmw_scenario(x, lfd, 0);
	blk_destroy(x->dev);
	x->dev = NULL;
	close(lfd);
}

/*
 * Write-zeroes where fallocate cannot zero a range (tmpfs has no ZERO_RANGE): zeros written in
 * chunks on the engine; nothing completes on the loop thread's notify itself.
 */
static void test_write_zeroes_fallback(void **state)
{
	struct fx *x = *state;
	struct disk_config d;
	char file[sizeof(x->path)];
	const uint64_t size = 4 << 20, zoff = 512, zlen = (3 << 20) + 1024;
	static uint8_t back[4 << 20];
	int fd;

	snprintf(file, sizeof(file), "/dev/shm/cubicle-test-blk-XXXXXX");
	fd = mkstemp(file);
	if (fd < 0) {
		print_message("skipped: no /dev/shm: %s\n", strerror(errno));
		skip();
	}
	memset(back, 0x5a, sizeof(back));
	assert_int_equal(pwrite(fd, back, size, 0), (ssize_t)size);
	disk_config_init(&d);
	d.num_queues = 1;
	start_on(x, file, &d);

	put_hdr(x, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	put_seg(x, 0, zoff / BLK_SECTOR, (uint32_t)(zlen / BLK_SECTOR), 0);
	chain(x, 0, BLK_HDR_SIZE, 16, 0);
	vh_avail(x->h, 0, QSIZE, 0);
	vh_notify(x->h, 0);
	virtio_pci_run_notify(blk_transport(x->dev), 0);
	assert_int_equal(vh_used_idx(x->h, 0), 0); /* on the engine, not done on the loop */
	blk_drain(x->dev);
	assert_int_equal(vh_used_idx(x->h, 0), 1);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	assert_int_equal(pread(fd, back, size, 0), (ssize_t)size);
	for (uint64_t i = 0; i < size; i++) {
		uint8_t want = i >= zoff && i < zoff + zlen ? 0 : 0x5a;

		if (back[i] != want)
			fail_msg("byte %llu is %#x, not %#x", (unsigned long long)i, back[i], want);
	}
	blk_destroy(x->dev);
	x->dev = NULL;
	close(fd);
	unlink(file);
}

/* A qcow2 image from qemu-img (cluster_size=64k, 1 MiB) in @img; false when there is no
 * qemu-img. */
static bool qcow2_create(char *img, size_t len)
{
	char cmd[160];
	int fd;

	snprintf(img, len, "/tmp/cubicle-test-blk-q-XXXXXX");
	fd = mkstemp(img);
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 -o cluster_size=64k %s 1M", img);
	if (system(cmd) == 0)
		return true;
	unlink(img);
	print_message("skipped: qemu-img (qemu-utils) is not installed\n");
	return false;
}

static void qcow2_check(const char *img)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "qemu-img check -q %s", img);
	assert_int_equal(system(cmd), 0);
}

/* The disk on a new qcow2 image (in @img), the guest's first write @len bytes of @byte at 0
 * (allocating clusters); false when there is no qemu-img. */
static bool qcow2_start_written(struct fx *x, char *img, size_t imglen, uint8_t byte, uint32_t len)
{
	struct disk_config d;

	if (!qcow2_create(img, imglen))
		return false;
	disk_config_init(&d);
	d.num_queues = 1;
	start_on(x, img, &d);
	memset(x->h->ram + DATA, byte, len);
	put_hdr(x, VIRTIO_BLK_T_OUT, 0);
	chain(x, 0, BLK_HDR_SIZE, len, 0);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	return true;
}

/*
 * qcow2 write-zeroes: the whole cluster in the range becomes a zero cluster, the partial ones
 * at its ends are written with zeros on the engine; a flush after it, and qemu-img check finds
 * the image clean.
 */
static void test_qcow2_write_zeroes(void **state)
{
	struct fx *x = *state;
	char img[sizeof(x->path)];
	const uint32_t span = 192 << 10, zoff = 512, zlen = 128 << 10;

	if (!qcow2_start_written(x, img, sizeof(img), 0x77, span))
		skip();
	put_hdr(x, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	put_seg(x, 0, zoff / BLK_SECTOR, zlen / BLK_SECTOR, 0);
	chain(x, 0, BLK_HDR_SIZE, 16, 0);
	assert_int_equal(serve(x), 1);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	put_hdr(x, VIRTIO_BLK_T_FLUSH, 0);
	chain(x, 0, BLK_HDR_SIZE, 0, 0);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);

	memset(x->h->ram + DATA, CANARY, span);
	put_hdr(x, VIRTIO_BLK_T_IN, 0);
	chain(x, 0, BLK_HDR_SIZE, span, VIRTQ_DESC_F_WRITE);
	assert_int_equal(serve(x), span + 1);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	for (uint32_t i = 0; i < span; i++) {
		uint8_t want = i >= zoff && i < zoff + zlen ? 0 : 0x77;

		if (x->h->ram[DATA + i] != want)
			fail_msg("byte %u is %#x, not %#x", i, x->h->ram[DATA + i], want);
	}
	blk_destroy(x->dev);
	x->dev = NULL;
	qcow2_check(img);
	unlink(img);
}

/*
 * A qcow2 flush between allocating writes, with a read and another flush in flight: the flush
 * writes metadata in steps with its fdatasyncs on the engine, holding the others meanwhile;
 * everything completes, in order, and the image is clean.
 */
static void test_qcow2_flush_steps(void **state)
{
	struct fx *x = *state;
	struct disk_config d;
	char img[sizeof(x->path)];
	const uint32_t len = 64 << 10;
	uint16_t used;

	/* Cluster 0 allocated: the flush has metadata to write. */
	if (!qcow2_start_written(x, img, sizeof(img), 0x31, len))
		skip();

	memset(x->h->ram + DATA + 0x20000, 0x32, len);
	memset(x->h->ram + DATA + 0x10000, CANARY, len);
	used = vh_used_idx(x->h, 0);
	post_rw(x, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	post_rw(x, 1, VIRTIO_BLK_T_IN, 0, DATA + 0x10000, len);	   /* held while it writes */
	post_rw(x, 2, VIRTIO_BLK_T_OUT, 384, DATA + 0x20000, len); /* allocates cluster 3 */
	post_rw(x, 3, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	run_all_ok(x, used, 4);
	assert_int_equal(used_id(x, (uint16_t)(used + 3)), 9); /* after the write before it */
	for (uint32_t i = 0; i < len; i++)
		assert_int_equal(x->h->ram[DATA + 0x10000 + i], 0x31);
	blk_destroy(x->dev);
	x->dev = NULL;
	qcow2_check(img);
	disk_config_init(&d);
	d.num_queues = 1;
	d.readonly = true;
	start_on(x, img, &d);
	put_hdr(x, VIRTIO_BLK_T_IN, 384);
	chain(x, 0, BLK_HDR_SIZE, len, VIRTQ_DESC_F_WRITE);
	serve(x);
	assert_int_equal(status(x), VIRTIO_BLK_S_OK);
	for (uint32_t i = 0; i < len; i++)
		assert_int_equal(x->h->ram[DATA + i], 0x32);
	unlink(img);
}

/* The fake loop's entry for the rate limiter's timerfd. */
static struct vh_fd *timer_entry(struct fx *x)
{
	for (unsigned i = 0; i < VH_MAX_FDS; i++) {
		char link[64], target[64] = "";

		if (!x->h->fds[i].used)
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%d", x->h->fds[i].fd);
		if (readlink(link, target, sizeof(target) - 1) > 0 && strstr(target, "timerfd"))
			return &x->h->fds[i];
	}
	return NULL;
}

/* ops_size=1: the second request waits for the limiter's timer, then goes. */
static void test_rate_limited(void **state)
{
	struct fx *x = *state;
	struct disk_config d;
	struct vh_fd *t;
	struct pollfd p;

	x->h->ctx.loop = &x->h->loop;
	disk_config_init(&d);
	d.num_queues = 1;
	d.rate_limiter.ops = (struct token_bucket_config){ .size = 1, .refill_time = 20 };
	start_cfg(x, &d);
	t = timer_entry(x);
	assert_non_null(t);
	for (unsigned k = 0; k < 2; k++) {
		uint64_t hdr = HDR + 32ULL * k;

		memset(x->h->ram + hdr, 0, BLK_HDR_SIZE);
		vh_desc(x->h, 0, 2 * k, hdr, BLK_HDR_SIZE, VIRTQ_DESC_F_NEXT, 2 * k + 1);
		vh_desc(x->h, 0, 2 * k + 1, DATA + 1024ULL * k, 512 + 1, VIRTQ_DESC_F_WRITE, 0);
		vh_avail(x->h, 0, QSIZE, (uint16_t)(2 * k));
	}
	vh_notify(x->h, 0);
	virtio_pci_run_notify(blk_transport(x->dev), 0);
	blk_drain(x->dev);
	assert_int_equal(vh_used_idx(x->h, 0), 1);
	p = (struct pollfd){ .fd = t->fd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 5000), 1);
	t->cb(t->opaque, EPOLLIN);
	blk_drain(x->dev);
	assert_int_equal(vh_used_idx(x->h, 0), 2);
	assert_int_equal(x->h->ram[DATA + 1024 + 512], VIRTIO_BLK_S_OK);
}

/* ---- snapshot state ---- */

/* Two disks in the config: the fixture's image (1 queue, @ops_size: an ops rate limit) and a
 * second image (2 queues). @path2 is filled with the second image's name. */
static void two_disks(struct vm_config *cfg, const char *path, char *path2, uint64_t ops_size)
{
	int fd;

	if (!path2[0]) {
		snprintf(path2, 64, "/tmp/cubicle-test-blk2-XXXXXX");
		fd = mkstemp(path2);
		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, 64 * 1024), 0);
		close(fd);
	}
	cfg->num_disks = 2;
	for (unsigned i = 0; i < 2; i++) {
		struct disk_config *d = &cfg->disks[i];

		disk_config_init(d);
		d->path = strdup(i ? path2 : path);
		d->id = strdup(i ? "_disk1" : "_disk0");
		d->num_queues = (uint16_t)(i + 1);
		d->queue_size = QSIZE;
		d->disable_io_uring = use_pool;
	}
	cfg->disks[0].rate_limiter.ops =
		(struct token_bucket_config){ .size = ops_size, .refill_time = 1000000 };
}

/* Realizes every disk of @h's config from @text; NULL with @err set when refused. */
static void *realize_from(struct vh *h, const char *text, char *err, size_t errlen)
{
	json_t *o = json_loads(text, 0, NULL);
	void *set = NULL;
	int r;

	assert_non_null(o);
	err[0] = 0;
	h->ctx.err = err;
	h->ctx.errlen = errlen;
	r = blk_ops.realize(&h->ctx, o, &set);
	json_decref(o);
	if (r < 0) {
		assert_null(set);
		assert_true(err[0] != 0);
		return NULL;
	}
	assert_non_null(set);
	return set;
}

/* Posts a one-sector read of @sector as chain @head (its header, data and status at slot
 * @head of the buffers) on disk 0's queue 0. */
static void post_read(struct vh *h, unsigned head, uint64_t sector)
{
	uint64_t hdr = HDR + 32ULL * head, data = DATA + 1024ULL * head;

	memset(h->ram + hdr, 0, BLK_HDR_SIZE);
	h->ram[hdr] = VIRTIO_BLK_T_IN;
	h->ram[hdr + 8] = (uint8_t)sector;
	vh_desc(h, 0, head, hdr, BLK_HDR_SIZE, VIRTQ_DESC_F_NEXT, head + 1);
	vh_desc(h, 0, head + 1, data, BLK_SECTOR + 1, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(h, 0, QSIZE, (uint16_t)head);
}

static void assert_read_done(struct vh *h, unsigned head, uint64_t sector)
{
	uint64_t data = DATA + 1024ULL * head;

	assert_int_equal(h->ram[data + BLK_SECTOR], VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < BLK_SECTOR; i++)
		assert_int_equal(h->ram[data + i], pattern(sector * BLK_SECTOR + i));
}

/* The transport of disk @i of @set, run as the loop would, I/O drained. */
static void run_disk(void *set, unsigned i)
{
	void *d = blk_set_disk(set, i);

	virtio_pci_run_notify(blk_transport(d), 0);
	blk_drain(d);
}

/*
 * Disk 0 served one read and has a second posted (@ops_size 0) or held by its rate limiter
 * (@ops_size 1) at the snapshot: the restored set serves it, and the next one.
 */
static void state_round_trip(struct fx *x, uint64_t ops_size)
{
	_cleanup_free_ char *saved = NULL, *again = NULL;
	char path2[64] = "", err[256];
	void *set = NULL, *set2;
	struct vh *g;

	two_disks(&x->h->cfg, x->path, path2, ops_size);
	x->h->ctx.err = err;
	x->h->ctx.errlen = sizeof(err);
	assert_int_equal(blk_ops.realize(&x->h->ctx, NULL, &set), 0);
	vh_attach(x->h, virtio_pci_function(blk_transport(blk_set_disk(set, 0))), 2);
	assert_true(vh_negotiate(x->h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_setup_queue(x->h, 0, QSIZE);
	vh_driver_ok(x->h);
	post_read(x->h, 0, 1);
	vh_notify(x->h, 0);
	run_disk(set, 0);
	assert_int_equal(vh_used_idx(x->h, 0), 1);
	assert_read_done(x->h, 0, 1);
	post_read(x->h, 2, 2);
	if (ops_size) {
		vh_notify(x->h, 0);
		run_disk(set, 0);
		assert_int_equal(vh_used_idx(x->h, 0), 1); /* held by the limiter */
	}
	blk_ops.pause(set);
	saved = vh_save(&blk_ops, set);
	blk_ops.unrealize(set); /* its images' locks go with it */

	g = vh_clone(x->h, false);
	two_disks(&g->cfg, x->path, path2, ops_size);
	set2 = realize_from(g, saved, err, sizeof(err));
	if (!set2)
		fail_msg("refused: %s", err);
	vh_adopt(g, virtio_pci_function(blk_transport(blk_set_disk(set2, 0))));
	again = vh_save(&blk_ops, set2);
	assert_string_equal(saved, again);
	/* paused until resumed */
	run_disk(set2, 0);
	assert_int_equal(vh_used_idx(g, 0), 1);
	blk_ops.resume(set2);
	run_disk(set2, 0);
	assert_int_equal(vh_used_idx(g, 0), 2);
	assert_read_done(g, 2, 2);
	if (!ops_size) {
		post_read(g, 4, 3);
		vh_notify(g, 0);
		run_disk(set2, 0);
		assert_int_equal(vh_used_idx(g, 0), 3);
		assert_read_done(g, 4, 3);
	}
	blk_ops.unrealize(set2);
	vh_destroy(g);
	unlink(path2);
}

static void test_state_round_trip(void **state)
{
	state_round_trip(*state, 0);
}

static void test_state_held_by_limiter(void **state)
{
	state_round_trip(*state, 1);
}

static void test_state_refused(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *saved = NULL;
	char path2[64] = "", err[256];
	const char *edits[][3] = {
		{ "", "disks", "virtio-blk: field 'disks': missing" },
		{ "disks/1", "queues", "--disk _disk1: virtio-blk: field 'queues': missing" },
		{ "disks/0", "pci", "--disk _disk0: virtio-blk: field 'pci': missing" },
	};
	void *set = NULL;
	json_t *o;
	char *text;

	two_disks(&x->h->cfg, x->path, path2, 0);
	x->h->ctx.err = err;
	x->h->ctx.errlen = sizeof(err);
	assert_int_equal(blk_ops.realize(&x->h->ctx, NULL, &set), 0);
	blk_ops.pause(set);
	saved = vh_save(&blk_ops, set);
	blk_ops.unrealize(set);
	for (size_t i = 0; i < ARRAY_SIZE(edits); i++) {
		o = vh_edit(saved, edits[i][0], edits[i][1], NULL);
		text = json_dumps(o, 0);
		json_decref(o);
		assert_null(realize_from(x->h, text, err, sizeof(err)));
		assert_string_equal(err, edits[i][2]);
		free(text);
	}
	/* one disk's state for two disks; disk 1's queues for disk 0 */
	o = json_loads(saved, 0, NULL);
	json_array_remove(json_object_get(o, "disks"), 1);
	text = json_dumps(o, 0);
	assert_null(realize_from(x->h, text, err, sizeof(err)));
	assert_string_equal(err, "virtio-blk: field 'disks': 1 disks saved, 2 configured");
	free(text);
	json_decref(o);
	o = json_loads(saved, 0, NULL);
	json_t *disks = json_object_get(o, "disks");
	json_object_set(json_array_get(disks, 0), "queues",
			json_object_get(json_array_get(disks, 1), "queues"));
	text = json_dumps(o, 0);
	assert_null(realize_from(x->h, text, err, sizeof(err)));
	assert_non_null(strstr(err, "--disk _disk0: virtio-blk: field 'queues': 2 queues"));
	free(text);
	json_decref(o);
	unlink(path2);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_config_space),
		T(test_read),
		T(test_read_odd_framing),
		T(test_write_flush),
		T(test_write_one_descriptor),
		T(test_get_id),
		T(test_write_zeroes_discard),
		T(test_bad_requests),
		T(test_readonly),
		T(test_second_queue),
		T(test_many_in_flight),
		T(test_flush_after_writes),
		T(test_counters_and_realize),
		T(test_reset_with_requests),
		T(test_direct_bounce),
		T(test_rmw_forced_align),
		T(test_rmw_odd_size),
		T(test_rmw_loop_4k),
		T(test_write_zeroes_fallback),
		T(test_qcow2_write_zeroes),
		T(test_qcow2_flush_steps),
		T(test_rate_limited),
		T(test_state_round_trip),
		T(test_state_held_by_limiter),
		T(test_state_refused),
	};
	int r;

	use_pool = false;
	r = cmocka_run_group_tests_name("io_uring", tests, NULL, NULL);
	use_pool = true;
	r |= cmocka_run_group_tests_name("thread-pool", tests, NULL, NULL);
	return r;
}
