/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The disk image layer on raw files: probing, the identity map, read/write through the sync
 * helpers, discard and write-zeroes, OFD locking between two opens, read-only, O_DIRECT
 * alignment, bounds and errors for missing or unusable files.
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

#define IMG_SIZE (1 * MiB)

struct fixture {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/cubicle-disk-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/disk.raw", f->dir);
	int fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	/* A pattern: byte i is (i * 7) & 0xff, so any misplaced read shows. */
	uint8_t *buf = malloc(IMG_SIZE);
	for (size_t i = 0; i < IMG_SIZE; i++)
		buf[i] = (uint8_t)(i * 7);
	if (write(fd, buf, IMG_SIZE) != IMG_SIZE)
		return -1;
	free(buf);
	close(fd);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct disk_image *open_ok(const char *path, bool ro, bool direct)
{
	struct disk_image_opts o = { .readonly = ro, .direct = direct };
	struct disk_image *img = NULL;
	char err[256] = "";
	int r = disk_image_open(path, &o, &img, err, sizeof(err));
	if (r < 0)
		fail_msg("open %s: %d %s", path, r, err);
	return img;
}

static void test_raw_basic(void **state)
{
	struct fixture *f = *state;
	struct disk_image *img = open_ok(f->path, false, false);
	assert_true(disk_image_is_raw(img));
	assert_string_equal(disk_image_format(img), "raw");
	assert_int_equal(disk_image_size(img), IMG_SIZE);
	assert_int_equal(disk_image_align(img), 1);
	assert_false(disk_image_readonly(img));

	struct disk_extent e;
	assert_int_equal(disk_image_map(img, 4096, 8192, false, &e), 0);
	assert_int_equal(e.kind, DISK_EXTENT_DATA);
	assert_int_equal(e.file_off, 4096);
	assert_int_equal(e.len, 8192);
	assert_true(e.fd >= 0);

	uint8_t buf[1000];
	assert_int_equal(disk_image_read_sync(img, 12345, buf, sizeof(buf)), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], (uint8_t)((12345 + i) * 7));
	memset(buf, 0xab, sizeof(buf));
	assert_int_equal(disk_image_write_sync(img, 999, buf, sizeof(buf)), 0);
	uint8_t back[1000];
	assert_int_equal(disk_image_read_sync(img, 999, back, sizeof(back)), 0);
	assert_memory_equal(buf, back, sizeof(buf));
	assert_int_equal(disk_image_flush(img), 0);
	disk_image_close(img);
}

static void test_raw_bounds(void **state)
{
	struct fixture *f = *state;
	struct disk_image *img = open_ok(f->path, false, false);
	struct disk_extent e;
	uint8_t b[16];
	assert_int_equal(disk_image_map(img, IMG_SIZE, 1, false, &e), -EINVAL);
	assert_int_equal(disk_image_map(img, IMG_SIZE - 8, 16, true, &e), -EINVAL);
	assert_int_equal(disk_image_map(img, 0, 0, false, &e), -EINVAL);
	assert_int_equal(disk_image_map(img, UINT64_MAX - 3, 8, false, &e), -EINVAL);
	assert_int_equal(disk_image_read_sync(img, IMG_SIZE - 8, b, 16), -EINVAL);
	assert_int_equal(disk_image_discard(img, IMG_SIZE, 512), -EINVAL);
	assert_int_equal(disk_image_write_zeroes(img, UINT64_MAX, 2, false), -EINVAL);
	assert_null(disk_image_close(NULL));
	disk_image_close(img);
}

static void check_zero(struct disk_image *img, uint64_t off, uint64_t len)
{
	uint8_t *b = malloc(len);
	assert_int_equal(disk_image_read_sync(img, off, b, len), 0);
	for (uint64_t i = 0; i < len; i++)
		if (b[i])
			fail_msg("byte %llu not zero", (unsigned long long)(off + i));
	free(b);
}

static void test_raw_discard_zeroes(void **state)
{
	struct fixture *f = *state;
	struct disk_image *img = open_ok(f->path, false, false);
	assert_int_equal(disk_image_write_zeroes(img, 4096, 8192, false), 0);
	check_zero(img, 4096, 8192);
	assert_int_equal(disk_image_write_zeroes(img, 65536, 65536, true), 0);
	check_zero(img, 65536, 65536);
	assert_int_equal(disk_image_discard(img, 256 * KiB, 128 * KiB), 0);
	check_zero(img, 256 * KiB, 128 * KiB); /* ext4/tmpfs punch holes: zeros */
	uint8_t b;
	assert_int_equal(disk_image_read_sync(img, 4095, &b, 1), 0);
	assert_int_equal(b, (uint8_t)(4095 * 7));
	assert_int_equal(disk_image_read_sync(img, 12288, &b, 1), 0);
	assert_int_equal(b, (uint8_t)(12288 * 7));
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, IMG_SIZE); /* KEEP_SIZE */
	disk_image_close(img);
}

static void test_raw_lock(void **state)
{
	struct fixture *f = *state;
	struct disk_image_opts rw = { 0 }, ro = { .readonly = true };
	struct disk_image *a = open_ok(f->path, false, false), *b = NULL;
	char err[256] = "";
	assert_int_equal(disk_image_open(f->path, &rw, &b, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "locked by another process"));
	assert_null(b);
	assert_int_equal(disk_image_open(f->path, &ro, &b, err, sizeof(err)), -EBUSY);
	disk_image_close(a);
	/* Two readers share; a writer is then refused. */
	a = open_ok(f->path, true, false);
	b = open_ok(f->path, true, false);
	struct disk_image *c = NULL;
	assert_int_equal(disk_image_open(f->path, &rw, &c, err, sizeof(err)), -EBUSY);
	disk_image_close(a);
	disk_image_close(b);
	c = open_ok(f->path, false, false);
	disk_image_close(c);
}

static void test_raw_readonly(void **state)
{
	struct fixture *f = *state;
	struct disk_image *img = open_ok(f->path, true, false);
	struct disk_extent e;
	uint8_t b[512] = { 0 };
	assert_true(disk_image_readonly(img));
	assert_int_equal(disk_image_map(img, 0, 512, true, &e), -EROFS);
	assert_int_equal(disk_image_write_sync(img, 0, b, 512), -EROFS);
	assert_int_equal(disk_image_discard(img, 0, 512), -EROFS);
	assert_int_equal(disk_image_write_zeroes(img, 0, 512, true), -EROFS);
	assert_int_equal(disk_image_flush(img), 0);
	assert_int_equal(disk_image_map(img, 0, 512, false, &e), 0);
	disk_image_close(img);
}

static void test_raw_direct(void **state)
{
	struct fixture *f = *state;
	struct disk_image_opts o = { .direct = true };
	struct disk_image *img = NULL;
	char err[256] = "";
	int r = disk_image_open(f->path, &o, &img, err, sizeof(err));
	if (r == -EINVAL) { /* tmpfs: no O_DIRECT; the message says so */
		assert_non_null(strstr(err, "O_DIRECT"));
		skip();
	}
	assert_int_equal(r, 0);
	uint32_t a = disk_image_align(img);
	assert_true(a >= 512 && (a & (a - 1)) == 0);
	struct disk_extent e;
	assert_int_equal(disk_image_map(img, 0, 4096, false, &e), 0);
	assert_true(fcntl(e.fd, F_GETFL) & O_DIRECT);
	/* The sync helpers work at any alignment (they use the buffered fd). */
	uint8_t b[3];
	assert_int_equal(disk_image_read_sync(img, 7, b, 3), 0);
	assert_int_equal(b[0], (uint8_t)(7 * 7));
	assert_int_equal(disk_image_write_zeroes(img, 512, 1024, false), 0);
	assert_int_equal(disk_image_flush(img), 0);
	disk_image_close(img);
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	struct disk_image_opts o = { 0 };
	struct disk_image *img = NULL;
	char err[256] = "", p[160];
	snprintf(p, sizeof(p), "%s/missing", f->dir);
	assert_int_equal(disk_image_open(p, &o, &img, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "missing"));
	assert_int_equal(disk_image_open(f->dir, &o, &img, err, sizeof(err)), -EISDIR);
	assert_int_equal(disk_image_open("/dev/null", &o, &img, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	assert_null(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_raw_basic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_raw_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_raw_discard_zeroes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_raw_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_raw_readonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_raw_direct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
