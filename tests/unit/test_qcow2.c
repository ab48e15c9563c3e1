/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 images against QEMU's own tools: images made by qemu-img/qemu-io are read back,
 * images cubicle wrote (random workloads against a raw shadow, every cluster size and
 * refcount width that matters) must pass `qemu-img check` and `qemu-img compare`, and
 * corrupted headers and tables are refused with a message naming the problem. Skipped when
 * qemu-img is not installed (scripts/install-deps installs qemu-utils).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/block/image.h"
#include "util/util.h"

struct fixture {
	char dir[64];
	char img[128];
	char raw[128];
};

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	char full[1100];
	snprintf(full, sizeof(full), "%s >/dev/null 2>&1", cmd);
	return system(full);
}

static int setup(void **state)
{
	if (run("qemu-img --version") != 0)
		return 0; /* tests skip */
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/cubicle-qcow2-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->img, sizeof(f->img), "%s/a.qcow2", f->dir);
	snprintf(f->raw, sizeof(f->raw), "%s/a.raw", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f) {
		run("rm -rf %s", f->dir);
		free(f);
	}
	return 0;
}

#define NEED_QEMU(f)            \
	do {                    \
		if (!(f))       \
			skip(); \
	} while (0)

static struct disk_image *open_img(const char *path, bool ro, bool backing)
{
	struct disk_image_opts o = { .readonly = ro, .allow_backing = backing };
	struct disk_image *img = NULL;
	char err[256] = "";
	int r = disk_image_open(path, &o, &img, err, sizeof(err));
	if (r < 0)
		fail_msg("open %s: %d %s", path, r, err);
	return img;
}

static int open_err(const char *path, bool ro, char *err, size_t errlen)
{
	struct disk_image_opts o = { .readonly = ro };
	struct disk_image *img = NULL;
	err[0] = 0;
	int r = disk_image_open(path, &o, &img, err, errlen);
	if (r == 0)
		disk_image_close(img);
	else
		assert_null(img);
	return r;
}

static void expect_bytes(struct disk_image *img, uint64_t off, uint64_t len, uint8_t v)
{
	uint8_t *b = malloc(len);
	assert_int_equal(disk_image_read_sync(img, off, b, len), 0);
	for (uint64_t i = 0; i < len; i++)
		if (b[i] != v)
			fail_msg("byte %llu: %#x, want %#x", (unsigned long long)(off + i), b[i],
				 v);
	free(b);
}

/* qemu-io writes patterns; cubicle reads them, through maps and the sync helper. */
static void test_read_qemu_written(void **state)
{
	struct fixture *f = *state;
	NEED_QEMU(f);
	const char *variants[] = { "compat=1.1",      "compat=0.10",	 "cluster_size=512",
				   "cluster_size=2M", "refcount_bits=1", "refcount_bits=64" };
	for (size_t v = 0; v < ARRAY_SIZE(variants); v++) {
		assert_int_equal(run("qemu-img create -f qcow2 -o %s %s 8M", variants[v], f->img),
				 0);
		assert_int_equal(run("qemu-io -f qcow2 -c 'write -P 0xab 0 64k' -c 'write -P 0xcd "
				     "1M 4k' -c 'write -P 0x11 3000k 1536k' %s",
				     f->img),
				 0);
		struct disk_image *img = open_img(f->img, true, false);
		assert_false(disk_image_is_raw(img));
		assert_string_equal(disk_image_format(img), "qcow2");
		assert_int_equal(disk_image_size(img), 8 * MiB);
		expect_bytes(img, 0, 64 * KiB, 0xab);
		expect_bytes(img, 64 * KiB, 1 * MiB - 64 * KiB, 0);
		expect_bytes(img, 1 * MiB, 4 * KiB, 0xcd);
		expect_bytes(img, 3000 * KiB, 1536 * KiB, 0x11);
		expect_bytes(img, 3000 * KiB + 1536 * KiB, 8 * MiB - 4536 * KiB, 0);
		struct disk_extent e;
		assert_int_equal(disk_image_map(img, 0, 64 * KiB, false, &e), 0);
		assert_int_equal(e.kind, DISK_EXTENT_DATA);
		assert_int_equal(disk_image_map(img, 7 * MiB, 512, false, &e), 0);
		assert_int_equal(e.kind, DISK_EXTENT_ZERO);
		assert_int_equal(disk_image_map(img, 8 * MiB, 512, false, &e), -EINVAL);
		disk_image_close(img);
	}
}

static void test_compressed(void **state)
{
	struct fixture *f = *state;
	NEED_QEMU(f);
	assert_int_equal(run("qemu-img create -f raw %s 4M", f->raw), 0);
	assert_int_equal(
		run("qemu-io -f raw -c 'write -P 0x5a 0 1M' -c 'write -P 0x77 2M 100k' %s", f->raw),
		0);
	assert_int_equal(
		run("qemu-img convert -c -O qcow2 -o cluster_size=4k %s %s", f->raw, f->img), 0);
	struct disk_image *img = open_img(f->img, false, false);
	struct disk_extent e;
	assert_int_equal(disk_image_map(img, 0, 4096, false, &e), 0);
	assert_int_equal(e.kind, DISK_EXTENT_SYNC);
	expect_bytes(img, 0, 1 * MiB, 0x5a);
	expect_bytes(img, 2 * MiB, 100 * KiB, 0x77);
	expect_bytes(img, 2 * MiB + 100 * KiB, 4 * KiB, 0);
	/* A partial write to a compressed cluster keeps the rest of it. */
	uint8_t b[512];
	memset(b, 0xee, sizeof(b));
	assert_int_equal(disk_image_write_sync(img, 4096 + 512, b, sizeof(b)), 0);
	expect_bytes(img, 4096, 512, 0x5a);
	expect_bytes(img, 4096 + 512, 512, 0xee);
	expect_bytes(img, 4096 + 1024, 3072, 0x5a);
	assert_int_equal(disk_image_discard(img, 8192, 8192), 0);
	assert_int_equal(disk_image_flush(img), 0);
	disk_image_close(img);
	assert_int_equal(run("qemu-img check %s", f->img), 0);
	assert_int_equal(
		run("qemu-io -f raw -c 'write -P 0xee 4608 512' -c 'write -z 8k 8k' %s", f->raw),
		0);
	assert_int_equal(run("qemu-img compare -f qcow2 -F raw %s %s", f->img, f->raw), 0);
}

/* A pseudo-random workload, mirrored into a raw shadow file, then checked by QEMU. */
static void workload(struct fixture *f, const char *opts, uint64_t size, unsigned rounds,
		     unsigned seed)
{
	assert_int_equal(run("qemu-img create -f qcow2 -o %s %s %llu", opts, f->img,
			     (unsigned long long)size),
			 0);
	assert_int_equal(run("qemu-img create -f raw %s %llu", f->raw, (unsigned long long)size),
			 0);
	struct disk_image *img = open_img(f->img, false, false);
	int shadow = open(f->raw, O_RDWR);
	assert_true(shadow >= 0);
	uint8_t *buf = malloc(256 * KiB), *back = malloc(256 * KiB);
	srandom(seed);
	for (unsigned i = 0; i < rounds; i++) {
		uint64_t len = ((uint64_t)random() % (256 * KiB / 512) + 1) * 512;
		uint64_t off = (uint64_t)random() % (size / 512) * 512;
		len = MIN(len, size - off);
		int op = (int)(random() % 10);
		if (op < 6) {
			memset(buf, (int)(random() % 255 + 1), len);
			for (uint64_t j = 0; j < len; j += 512)
				buf[j] = (uint8_t)i;
			assert_int_equal(disk_image_write_sync(img, off, buf, len), 0);
			assert_int_equal(pwrite(shadow, buf, len, (off_t)off), (ssize_t)len);
		} else if (op < 8) {
			assert_int_equal(disk_image_write_zeroes(img, off, len, op == 7), 0);
			memset(buf, 0, len);
			assert_int_equal(pwrite(shadow, buf, len, (off_t)off), (ssize_t)len);
		} else if (op == 8) {
			/* Discard: the guest may see old data or zeros; sync the shadow. */
			assert_int_equal(disk_image_discard(img, off, len), 0);
			assert_int_equal(disk_image_read_sync(img, off, buf, len), 0);
			assert_int_equal(pwrite(shadow, buf, len, (off_t)off), (ssize_t)len);
		} else {
			assert_int_equal(disk_image_read_sync(img, off, buf, len), 0);
			assert_int_equal(pread(shadow, back, len, (off_t)off), (ssize_t)len);
			if (memcmp(buf, back, len))
				fail_msg("%s: round %u: read at %llu+%llu differs", opts, i,
					 (unsigned long long)off, (unsigned long long)len);
		}
		if (i % 97 == 0)
			assert_int_equal(disk_image_flush(img), 0);
	}
	assert_int_equal(disk_image_flush(img), 0);
	disk_image_close(img);
	close(shadow);
	free(buf);
	free(back);
	if (run("qemu-img check %s", f->img) != 0) {
		run("qemu-img check %s >&2", f->img);
		fail_msg("%s: qemu-img check failed", opts);
	}
	if (run("qemu-img compare -f qcow2 -F raw %s %s", f->img, f->raw) != 0)
		fail_msg("%s: qemu-img compare failed", opts);
}

static void test_workloads(void **state)
{
	struct fixture *f = *state;
	NEED_QEMU(f);
	workload(f, "compat=1.1", 16 * MiB, 400, 1);
	workload(f, "compat=0.10", 16 * MiB, 400, 2);
	workload(f, "cluster_size=4k", 8 * MiB, 400, 3);
	workload(f, "cluster_size=512", 4 * MiB, 300, 4);
	workload(f, "cluster_size=2M", 16 * MiB, 100, 5);
	workload(f, "refcount_bits=1", 8 * MiB, 300, 6);
	workload(f, "refcount_bits=8,cluster_size=4k", 8 * MiB, 300, 7);
	workload(f, "refcount_bits=64", 8 * MiB, 300, 8);
}

/* 512-byte clusters: a refcount table of one cluster counts 8 MiB; writing more grows it. */
static void test_grow_reftable(void **state)
{
	struct fixture *f = *state;
	NEED_QEMU(f);
	assert_int_equal(run("qemu-img create -f qcow2 -o cluster_size=512 %s 24M", f->img), 0);
	struct disk_image *img = open_img(f->img, false, false);
	uint8_t *b = malloc(1 * MiB);
	for (unsigned i = 0; i < 24; i++) {
		memset(b, (int)i + 1, 1 * MiB);
		assert_int_equal(disk_image_write_sync(img, i * MiB, b, 1 * MiB), 0);
	}
	assert_int_equal(disk_image_flush(img), 0);
	for (unsigned i = 0; i < 24; i++)
		expect_bytes(img, i * MiB, 1 * MiB, (uint8_t)(i + 1));
	disk_image_close(img);
	free(b);
	if (run("qemu-img check %s", f->img) != 0) {
		run("qemu-img check %s >&2", f->img);
		fail_msg("qemu-img check failed");
	}
	img = open_img(f->img, true, false);
	expect_bytes(img, 23 * MiB, 1 * MiB, 24);
	disk_image_close(img);
}

static void test_backing(void **state)
{
	struct fixture *f = *state;
	NEED_QEMU(f);
	char base[160], err[256];
	snprintf(base, sizeof(base), "%s/base.qcow2", f->dir);
	assert_int_equal(run("qemu-img create -f qcow2 %s 4M", base), 0);
	assert_int_equal(run("qemu-io -f qcow2 -c 'write -P 0x42 0 4M' %s", base), 0);
	assert_int_equal(run("qemu-img create -f qcow2 -b base.qcow2 -F qcow2 %s", f->img), 0);
	assert_int_equal(open_err(f->img, false, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "backing file"));
	assert_int_equal(open_err(f->img, true, err, sizeof(err)), -ENOTSUP);
	struct disk_image *img = open_img(f->img, false, true);
	expect_bytes(img, 0, 4 * MiB, 0x42);
	uint8_t b[1024];
	memset(b, 0x99, sizeof(b));
	assert_int_equal(disk_image_write_sync(img, 70000, b, sizeof(b)), 0);
	assert_int_equal(disk_image_write_zeroes(img, 1 * MiB, 256 * KiB, true), 0);
	expect_bytes(img, 65536, 70000 - 65536, 0x42);
	expect_bytes(img, 70000, 1024, 0x99);
	expect_bytes(img, 71024, 200000, 0x42);
	expect_bytes(img, 1 * MiB, 256 * KiB, 0);
	assert_int_equal(disk_image_flush(img), 0);
	disk_image_close(img);
	assert_int_equal(run("qemu-img check %s", f->img), 0);
	assert_int_equal(run("qemu-img convert -O raw %s %s", base, f->raw), 0);
	assert_int_equal(
		run("qemu-io -f raw -c 'write -P 0x99 70000 1024' -c 'write -z 1M 256k' %s",
		    f->raw),
		0);
	assert_int_equal(run("qemu-img compare -F raw %s %s", f->img, f->raw), 0);
}

static void test_lock_readonly_snapshots(void **state)
{
	struct fixture *f = *state;
	NEED_QEMU(f);
	char err[256];
	assert_int_equal(run("qemu-img create -f qcow2 %s 1M", f->img), 0);
	struct disk_image *a = open_img(f->img, false, false);
	assert_int_equal(open_err(f->img, true, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "locked"));
	disk_image_close(a);
	a = open_img(f->img, true, false);
	uint8_t b[512] = { 1 };
	assert_int_equal(disk_image_write_sync(a, 0, b, 512), -EROFS);
	disk_image_close(a);
	assert_int_equal(run("qemu-img snapshot -c snap %s", f->img), 0);
	assert_int_equal(open_err(f->img, false, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "snapshots"));
	assert_int_equal(open_err(f->img, true, err, sizeof(err)), 0);
}

/* A freed cluster is not handed out again before the next flush (a write to it may still be
 * in flight), and is after it. */
static void test_reuse_after_flush(void **state)
{
	struct fixture *f = *state;
	NEED_QEMU(f);
	assert_int_equal(run("qemu-img create -f qcow2 -o cluster_size=4k %s 1M", f->img), 0);
	struct disk_image *img = open_img(f->img, false, false);
	struct disk_extent a, b, c;
	assert_int_equal(disk_image_map(img, 0, 4096, true, &a), 0);
	assert_int_equal(disk_image_discard(img, 0, 4096), 0);
	assert_int_equal(disk_image_map(img, 8192, 4096, true, &b), 0);
	assert_int_not_equal(b.file_off, a.file_off);
	assert_int_equal(disk_image_flush(img), 0);
	assert_int_equal(disk_image_map(img, 16384, 4096, true, &c), 0);
	assert_int_equal(c.file_off, a.file_off);
	/* Fully covered writes of several clusters get one extent. */
	assert_int_equal(disk_image_map(img, 64 * KiB, 64 * KiB, true, &c), 0);
	assert_int_equal(c.len, 64 * KiB);
	assert_int_equal(disk_image_map(img, 64 * KiB, 64 * KiB, false, &c), 0);
	assert_int_equal(c.kind, DISK_EXTENT_DATA);
	assert_int_equal(c.len, 64 * KiB);
	assert_int_equal(disk_image_flush(img), 0);
	disk_image_close(img);
	assert_int_equal(run("qemu-img check %s", f->img), 0);
}

/* Header fields, for the corruption tests. */
static uint64_t get_be(int fd, off_t off, int bytes)
{
	uint8_t b[8];
	assert_int_equal(pread(fd, b, (size_t)bytes, off), bytes);
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v = v << 8 | b[i];
	return v;
}

static void put_be(int fd, off_t off, int bytes, uint64_t v)
{
	uint8_t b[8];
	for (int i = bytes - 1; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
	assert_int_equal(pwrite(fd, b, (size_t)bytes, off), bytes);
}

enum corruption {
	C_L1_OUTSIDE,
	C_L1_UNALIGNED,
	C_L1_TOO_LARGE,
	C_L1_TOO_SMALL,
	C_RT_OUTSIDE,
	C_RT_HUGE,
	C_RB_OUTSIDE,
	C_L2_OUTSIDE,
	C_L2_IS_L1,
	C_DATA_UNALIGNED,
	C_DATA_ON_RT,
	C_DATA_OUTSIDE,
	C_DIRTY,
	C_UNKNOWN_INCOMPAT,
	C_EXTL2,
	C_DATA_FILE,
	C_REFCOUNT_ORDER,
	C_CLUSTER_BITS,
	C_VERSION,
	C_ENCRYPTED,
	C_REFCOUNT_ZERO,
	C_COUNT
};

static void corrupt(int fd, enum corruption c)
{
	uint64_t l1 = get_be(fd, 40, 8), rt = get_be(fd, 48, 8), cs = 1ULL << get_be(fd, 20, 4);
	uint64_t l2 = get_be(fd, (off_t)l1, 8) & 0x00fffffffffffe00ULL;
	uint64_t rb = get_be(fd, (off_t)rt, 8);
	switch (c) {
	case C_L1_OUTSIDE:
		put_be(fd, 40, 8, 1ULL << 40);
		break;
	case C_L1_UNALIGNED:
		put_be(fd, 40, 8, l1 + 512);
		break;
	case C_L1_TOO_LARGE:
		put_be(fd, 36, 4, 0x10000000);
		break;
	case C_L1_TOO_SMALL:
		put_be(fd, 36, 4, 0);
		break;
	case C_RT_OUTSIDE:
		put_be(fd, 48, 8, 1ULL << 40);
		break;
	case C_RT_HUGE:
		put_be(fd, 56, 4, 0x100000);
		break;
	case C_RB_OUTSIDE:
		put_be(fd, (off_t)rt, 8, 1ULL << 40);
		break;
	case C_L2_OUTSIDE:
		put_be(fd, (off_t)l1, 8, (1ULL << 63) | 1ULL << 40);
		break;
	case C_L2_IS_L1:
		put_be(fd, (off_t)l1, 8, (1ULL << 63) | l1);
		break;
	case C_DATA_UNALIGNED:
		put_be(fd, (off_t)l2, 8, (1ULL << 63) | (cs * 3 + 512));
		break;
	case C_DATA_ON_RT:
		put_be(fd, (off_t)l2, 8, (1ULL << 63) | rt);
		break;
	case C_DATA_OUTSIDE:
		put_be(fd, (off_t)l2, 8, (1ULL << 63) | 1ULL << 40);
		break;
	case C_DIRTY:
		put_be(fd, 72, 8, 1);
		break;
	case C_UNKNOWN_INCOMPAT:
		put_be(fd, 72, 8, 1ULL << 40);
		break;
	case C_EXTL2:
		put_be(fd, 72, 8, 1ULL << 4);
		break;
	case C_DATA_FILE:
		put_be(fd, 72, 8, 1ULL << 2);
		break;
	case C_REFCOUNT_ORDER:
		put_be(fd, 96, 4, 7);
		break;
	case C_CLUSTER_BITS:
		put_be(fd, 20, 4, 22);
		break;
	case C_VERSION:
		put_be(fd, 4, 4, 4);
		break;
	case C_ENCRYPTED:
		put_be(fd, 32, 4, 1);
		break;
	case C_REFCOUNT_ZERO:
		put_be(fd, (off_t)rb, 2, 0);
		break; /* the header's refcount */
	default:
		break;
	}
}

static void test_corrupt(void **state)
{
	struct fixture *f = *state;
	NEED_QEMU(f);
	static const char *const why[C_COUNT] = {
		"L1",
		"L1",
		"L1 table too large",
		"L1 table too small",
		"refcount table",
		"refcount table size",
		"refcount block",
		"L2 table",
		"overlap",
		"aligned",
		"overlaps metadata",
		"outside the file",
		"dirty",
		"unknown incompatible",
		"extended L2",
		"external data file",
		"refcount order",
		"cluster size",
		"version",
		"encrypted",
		"refcount 0",
	};
	for (int c = 0; c < C_COUNT; c++) {
		assert_int_equal(run("qemu-img create -f qcow2 -o cluster_size=4k %s 1M", f->img),
				 0);
		assert_int_equal(run("qemu-io -f qcow2 -c 'write -P 1 0 8k' %s", f->img), 0);
		int fd = open(f->img, O_RDWR);
		assert_true(fd >= 0);
		corrupt(fd, (enum corruption)c);
		close(fd);
		char err[256];
		int r = open_err(f->img, false, err, sizeof(err));
		if (r >= 0 || !strstr(err, why[c]))
			fail_msg("corruption %d: %d '%s', want '%s'", c, r, err, why[c]);
	}
}

/* Damage only a read finds: a compressed cluster whose data is garbage fails that read
 * with -EIO, and the image keeps serving the others. */
static void test_runtime_eio(void **state)
{
	struct fixture *f = *state;
	NEED_QEMU(f);
	assert_int_equal(run("qemu-img create -f raw %s 64k", f->raw), 0);
	assert_int_equal(run("qemu-io -f raw -c 'write -P 3 0 64k' %s", f->raw), 0);
	assert_int_equal(
		run("qemu-img convert -c -O qcow2 -o cluster_size=4k %s %s", f->raw, f->img), 0);
	int fd = open(f->img, O_RDWR);
	uint64_t l1 = get_be(fd, 40, 8);
	uint64_t l2 = get_be(fd, (off_t)l1, 8) & 0x00fffffffffffe00ULL;
	uint64_t e = get_be(fd, (off_t)l2 + 8, 8); /* cluster 1, compressed */
	uint64_t coff = e & ((1ULL << (62 - 4)) - 1);
	uint8_t junk[2];
	memset(junk, 0xff, sizeof(junk));
	assert_int_equal(pwrite(fd, junk, sizeof(junk), (off_t)coff), (ssize_t)sizeof(junk));
	close(fd);
	struct disk_image *img = open_img(f->img, true, false);
	uint8_t b[4096];
	assert_int_equal(disk_image_read_sync(img, 4096, b, sizeof(b)), -EIO);
	expect_bytes(img, 0, 4096, 3);
	expect_bytes(img, 8192, 4096, 3);
	disk_image_close(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_qemu_written, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compressed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_workloads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grow_reftable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_readonly_snapshots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reuse_after_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runtime_eio, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
