/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/util.h"

static void check_size(const char *s, int want_r, uint64_t want)
{
	uint64_t v = 0xdeadbeef;
	int r = parse_size(s, &v);

	if (r != want_r)
		fail_msg("parse_size(\"%s\") = %d, expected %d", s, r, want_r);
	if (want_r == 0 && v != want)
		fail_msg("parse_size(\"%s\") gave %llu, expected %llu", s, (unsigned long long)v,
			 (unsigned long long)want);
	if (want_r != 0 && v != 0xdeadbeef)
		fail_msg("parse_size(\"%s\") wrote its result on failure", s);
}

static void test_parse_size(void **state)
{
	(void)state;
	check_size("0", 0, 0);
	check_size("536870912", 0, 536870912ULL);
	check_size("512M", 0, 512 * MiB);
	check_size("1G", 0, GiB);
	check_size("1024K", 0, MiB);
	check_size("512m", 0, 512 * MiB);
	check_size("1g", 0, GiB);
	check_size("4k", 0, 4096);
	check_size("512MiB", 0, 512 * MiB);
	check_size("2GiB", 0, 2 * GiB);
	check_size("8KiB", 0, 8 * KiB);
	check_size("2gib", 0, 2 * GiB);
	check_size("007", 0, 7);
	check_size("18446744073709551615", 0, UINT64_MAX);
	check_size("17179869183G", 0, 17179869183ULL * GiB);

	check_size("", -EINVAL, 0);
	check_size("M", -EINVAL, 0);
	check_size("-1", -EINVAL, 0);
	check_size("-512M", -EINVAL, 0);
	check_size("+5", -EINVAL, 0);
	check_size(" 5", -EINVAL, 0);
	check_size("5 ", -EINVAL, 0);
	check_size("5MB", -EINVAL, 0);
	check_size("5T", -EINVAL, 0);
	check_size("1.5G", -EINVAL, 0);
	check_size("0x10", -EINVAL, 0);
	check_size("12abc", -EINVAL, 0);
	check_size("5Mi", -EINVAL, 0);
	check_size("5MM", -EINVAL, 0);
	check_size(NULL, -EINVAL, 0);

	check_size("18446744073709551616", -ERANGE, 0);
	check_size("99999999999999999999999", -ERANGE, 0);
	check_size("17179869184G", -ERANGE, 0);
	check_size("18014398509481984K", -ERANGE, 0);
	check_size("99999999999999999999999x", -EINVAL, 0);
}

static void check_u64(const char *s, uint64_t max, int want_r, uint64_t want)
{
	uint64_t v = 42424242;
	int r = parse_u64(s, max, &v);

	if (r != want_r)
		fail_msg("parse_u64(\"%s\", %llu) = %d, expected %d", s, (unsigned long long)max, r,
			 want_r);
	if (want_r == 0 && v != want)
		fail_msg("parse_u64(\"%s\") gave %llu, expected %llu", s, (unsigned long long)v,
			 (unsigned long long)want);
	if (want_r != 0 && v != 42424242)
		fail_msg("parse_u64(\"%s\") wrote its result on failure", s);
}

static void test_parse_u64(void **state)
{
	(void)state;
	check_u64("0", 10, 0, 0);
	check_u64("10", 10, 0, 10);
	check_u64("0x10", 100, 0, 16);
	check_u64("0XfF", 255, 0, 255);
	check_u64("010", 100, 0, 10); /* decimal, not octal */
	check_u64("18446744073709551615", UINT64_MAX, 0, UINT64_MAX);
	check_u64("0xffffffffffffffff", UINT64_MAX, 0, UINT64_MAX);

	check_u64("11", 10, -ERANGE, 0);
	check_u64("0x100", 255, -ERANGE, 0);
	check_u64("18446744073709551616", UINT64_MAX, -ERANGE, 0);
	check_u64("0x10000000000000000", UINT64_MAX, -ERANGE, 0);
	check_u64("", 10, -EINVAL, 0);
	check_u64("0x", 10, -EINVAL, 0);
	check_u64("-1", UINT64_MAX, -EINVAL, 0);
	check_u64("+1", 10, -EINVAL, 0);
	check_u64(" 1", 10, -EINVAL, 0);
	check_u64("1 ", 10, -EINVAL, 0);
	check_u64("1K", UINT64_MAX, -EINVAL, 0);
	check_u64("ab", UINT64_MAX, -EINVAL, 0);
	check_u64("0xg", UINT64_MAX, -EINVAL, 0);
	check_u64(NULL, 10, -EINVAL, 0);
}

static void test_parse_bool(void **state)
{
	bool b;

	(void)state;
	b = false;
	assert_int_equal(parse_bool("on", &b), 0);
	assert_true(b);
	b = false;
	assert_int_equal(parse_bool("true", &b), 0);
	assert_true(b);
	b = false;
	assert_int_equal(parse_bool("ON", &b), 0);
	assert_true(b);
	b = true;
	assert_int_equal(parse_bool("off", &b), 0);
	assert_false(b);
	b = true;
	assert_int_equal(parse_bool("False", &b), 0);
	assert_false(b);

	b = true;
	assert_int_equal(parse_bool("", &b), -EINVAL);
	assert_int_equal(parse_bool("yes", &b), -EINVAL);
	assert_int_equal(parse_bool("1", &b), -EINVAL);
	assert_int_equal(parse_bool("onn", &b), -EINVAL);
	assert_int_equal(parse_bool(NULL, &b), -EINVAL);
	assert_true(b);
}

static void test_range_overflows(void **state)
{
	(void)state;
	assert_false(range_overflows(0, 0));
	assert_false(range_overflows(UINT64_MAX, 0));
	assert_false(range_overflows(UINT64_MAX, 1));
	assert_true(range_overflows(UINT64_MAX, 2));
	assert_false(range_overflows(UINT64_MAX - 4095, 4096));
	assert_true(range_overflows(UINT64_MAX - 4095, 4097));
	assert_false(range_overflows(1, UINT64_MAX));
	assert_true(range_overflows(2, UINT64_MAX));
	assert_false(range_overflows(0, UINT64_MAX));
}

static void test_align(void **state)
{
	(void)state;
	assert_int_equal(ALIGN_UP(4097ULL, 4096), 8192);
	assert_int_equal(ALIGN_UP(4096ULL, 4096), 4096);
	assert_int_equal(ALIGN_DOWN(8191ULL, 4096), 4096);
	assert_true(IS_ALIGNED(8192ULL, 4096));
	assert_false(IS_ALIGNED(8193ULL, 4096));
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ULL),
			       .tv_nsec = (long)(ns % 1000000000ULL) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void test_time(void **state)
{
	uint64_t a, b;

	(void)state;
	a = time_now_ns();
	sleep_ns(2000000);
	b = time_now_ns();
	assert_true(b >= a + 2000000);
	assert_true(b < a + 2000000000ULL);
}

/* Reads back what the logger wrote to a file. */
static char *slurp(const char *path)
{
	void *data = NULL;
	size_t size = 0;
	int r = read_file(path, 1 << 20, &data, &size);

	if (r < 0)
		fail_msg("read_file(%s): %d", path, r);
	return (char *)data;
}

static void test_ratelimit(void **state)
{
	struct log_ratelimit rl = LOG_RATELIMIT_INIT(200000000ULL, 3); /* 3 per 200 ms */
	struct log_ratelimit off = LOG_RATELIMIT_INIT(0, 0);
	char path[] = "/tmp/cubicle-test-log-XXXXXX";
	int fd = mkstemp(path);
	char *text;

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(log_open_file(path), 0);
	log_set_level(LOG_WARN);

	assert_true(log_ratelimit_ok(&rl));
	assert_true(log_ratelimit_ok(&rl));
	assert_true(log_ratelimit_ok(&rl));
	assert_false(log_ratelimit_ok(&rl));
	assert_false(log_ratelimit_ok(&rl));
	assert_int_equal(rl.suppressed, 2);
	sleep_ns(250000000ULL);
	assert_true(log_ratelimit_ok(&rl)); /* a new interval; reports the 2 suppressed */
	assert_int_equal(rl.suppressed, 0);
	assert_int_equal(rl.printed, 1);

	for (int i = 0; i < 100; i++)
		assert_true(log_ratelimit_ok(&off));

	log_close_file();
	text = slurp(path);
	assert_non_null(strstr(text, "cubicle: warn: 2 messages suppressed\n"));
	free(text);
	unlink(path);
}

static void test_log_file_format(void **state)
{
	char path[] = "/tmp/cubicle-test-log-XXXXXX";
	int fd = mkstemp(path);
	char *text, *line2;
	char longmsg[3000];

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(log_open_file(path), 0);
	log_set_level(LOG_INFO);
	assert_int_equal(log_get_level(), LOG_INFO);
	log_info("hello %d", 42);
	log_debug("dropped: above the level");
	log_error("two\n");
	memset(longmsg, 'x', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	log_warn("%s", longmsg);
	log_close_file();
	log_set_level(LOG_WARN);

	text = slurp(path);
	/* "[s.micro] cubicle: info: hello 42" */
	assert_int_equal(text[0], '[');
	assert_non_null(strstr(text, "] cubicle: info: hello 42\n["));
	assert_null(strstr(text, "dropped"));
	line2 = strstr(text, "] cubicle: error: two\n[");
	assert_non_null(line2);
	assert_non_null(strstr(text, "xxx...\n"));
	assert_true(strlen(strstr(text, "] cubicle: warn: ")) < 1024);
	free(text);
	unlink(path);

	assert_int_equal(log_open_file("/nonexistent-dir/x.log"), -ENOENT);
}

static void test_read_file(void **state)
{
	char path[] = "/tmp/cubicle-test-rf-XXXXXX";
	int fd = mkstemp(path);
	void *data = NULL;
	size_t size = 1;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "abcdef", 6), 6);
	close(fd);

	assert_int_equal(read_file(path, 6, &data, &size), 0);
	assert_int_equal(size, 6);
	assert_memory_equal(data, "abcdef", 7); /* NUL-terminated */
	free(data);

	data = NULL;
	assert_int_equal(read_file(path, 5, &data, &size), -EFBIG);
	assert_null(data);
	assert_int_equal(read_file("/nonexistent-file", 5, &data, &size), -ENOENT);

	fd = open(path, O_WRONLY | O_TRUNC);
	close(fd);
	assert_int_equal(read_file(path, 0, &data, &size), 0);
	assert_int_equal(size, 0);
	free(data);
	unlink(path);
}

static void test_format_size(void **state)
{
	char b[32];

	assert_string_equal(format_size(b, sizeof(b), 0), "0");
	assert_string_equal(format_size(b, sizeof(b), 17), "17 bytes");
	assert_string_equal(format_size(b, sizeof(b), 4096), "4K");
	assert_string_equal(format_size(b, sizeof(b), 16380 * KiB), "16380K");
	assert_string_equal(format_size(b, sizeof(b), 512 * MiB), "512M");
	assert_string_equal(format_size(b, sizeof(b), 3 * GiB), "3G");
	assert_string_equal(format_size(b, sizeof(b), 1986892), "1.9M");
	assert_string_equal(format_size(b, sizeof(b), 1500), "1.5K");
}

static void test_error_set(void **state)
{
	char err[16] = "untouched";

	assert_int_equal(error_set(err, sizeof(err), -ENOEXEC, "kernel: %s", "bad"), -ENOEXEC);
	assert_string_equal(err, "kernel: bad");
	/* truncated, still terminated */
	assert_int_equal(error_set(err, sizeof(err), -EINVAL, "%s", "0123456789abcdefXYZ"),
			 -EINVAL);
	assert_string_equal(err, "0123456789abcde");
	/* no buffer: only the code */
	assert_int_equal(error_set(NULL, 0, -E2BIG, "ignored"), -E2BIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size), cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_parse_bool), cmocka_unit_test(test_range_overflows),
		cmocka_unit_test(test_align),	   cmocka_unit_test(test_time),
		cmocka_unit_test(test_ratelimit),  cmocka_unit_test(test_log_file_format),
		cmocka_unit_test(test_read_file),  cmocka_unit_test(test_format_size),
		cmocka_unit_test(test_error_set),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
