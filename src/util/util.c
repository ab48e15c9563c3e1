/* SPDX-License-Identifier: Apache-2.0 */
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

uint64_t time_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int digit_value(char c, unsigned base)
{
	int v;

	if (c >= '0' && c <= '9')
		v = c - '0';
	else if (c >= 'a' && c <= 'f')
		v = c - 'a' + 10;
	else if (c >= 'A' && c <= 'F')
		v = c - 'A' + 10;
	else
		return -1;
	return (unsigned)v < base ? v : -1;
}

/*
 * Parses the leading digits of @s in @base; *end points past them. strtoull() is not used
 * because it accepts leading blanks and a minus sign, which a size or a count must not have.
 */
static int parse_digits(const char *s, unsigned base, uint64_t *ret, const char **end)
{
	uint64_t v = 0;
	const char *p = s;
	int d;

	for (; (d = digit_value(*p, base)) >= 0; p++) {
		if (v > (UINT64_MAX - (uint64_t)d) / base)
			return -ERANGE;
		v = v * base + (uint64_t)d;
	}
	if (p == s)
		return -EINVAL;
	*ret = v;
	*end = p;
	return 0;
}

int parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	unsigned base = 10;
	const char *end;
	uint64_t v;
	int r;

	if (!s)
		return -EINVAL;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	r = parse_digits(s, base, &v, &end);
	if (r < 0) {
		/* Junk after an overflowing number is still junk. */
		if (r == -ERANGE) {
			for (end = s; digit_value(*end, base) >= 0; end++)
				;
			return *end ? -EINVAL : -ERANGE;
		}
		return r;
	}
	if (*end)
		return -EINVAL;
	if (v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
	static const struct {
		const char *suffix;
		uint64_t mult;
	} suffixes[] = {
		{ "", 1 },	{ "K", KiB }, { "KiB", KiB }, { "M", MiB },
		{ "MiB", MiB }, { "G", GiB }, { "GiB", GiB },
	};
	const char *end;
	uint64_t v;
	int r;

	if (!s)
		return -EINVAL;
	r = parse_digits(s, 10, &v, &end);
	if (r == -ERANGE) {
		for (end = s; *end >= '0' && *end <= '9'; end++)
			;
	} else if (r < 0) {
		return r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
		if (strcasecmp(end, suffixes[i].suffix) != 0)
			continue;
		if (r < 0 || v > UINT64_MAX / suffixes[i].mult)
			return -ERANGE;
		*ret = v * suffixes[i].mult;
		return 0;
	}
	return -EINVAL;
}

int parse_bool(const char *s, bool *ret)
{
	if (!s)
		return -EINVAL;
	if (strcasecmp(s, "on") == 0 || strcasecmp(s, "true") == 0) {
		*ret = true;
		return 0;
	}
	if (strcasecmp(s, "off") == 0 || strcasecmp(s, "false") == 0) {
		*ret = false;
		return 0;
	}
	return -EINVAL;
}

int read_file(const char *path, size_t max, void **ret_data, size_t *ret_size)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	size_t size = 0, cap = 0;
	/* Room for one byte past @max tells "exactly max" from "larger". */
	size_t limit = max < SIZE_MAX - 1 ? max + 1 : SIZE_MAX - 1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;

	for (;;) {
		ssize_t n;

		if (size == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			char *nbuf;

			if (ncap > limit || ncap < cap)
				ncap = limit;
			if (ncap <= cap)
				return -EFBIG;
			nbuf = realloc(buf, ncap + 1);
			if (!nbuf)
				return -ENOMEM;
			buf = nbuf;
			cap = ncap;
		}
		n = read(fd, buf + size, cap - size);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		size += (size_t)n;
		if (size > max)
			return -EFBIG;
	}
	buf[size] = '\0'; /* convenient for text files; not counted in the size */
	*ret_data = ptr_take(&buf);
	*ret_size = size;
	return 0;
}

int error_set(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

void error_prefix(char *err, size_t errlen, const char *fmt, ...)
{
	char head[128];
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	size_t hl = MIN((size_t)n, sizeof(head) - 1), old = strnlen(err, errlen - 1);
	if (hl >= errlen)
		hl = errlen - 1;
	memmove(err + hl, err, MIN(old, errlen - 1 - hl));
	err[MIN(old + hl, errlen - 1)] = '\0';
	memcpy(err, head, hl);
}

/* pread() or pwrite() until @len bytes are done. */
static int file_io_at(int fd, void *buf, size_t len, uint64_t off, bool write)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write ? pwrite(fd, p, len, (off_t)off) : pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int file_read_at(int fd, void *buf, size_t len, uint64_t off)
{
	return file_io_at(fd, buf, len, off, false);
}

int file_write_at(int fd, const void *buf, size_t len, uint64_t off)
{
	return file_io_at(fd, (void *)buf, len, off, true);
}

const char *format_size(char *buf, size_t len, uint64_t n)
{
	static const struct {
		uint64_t unit;
		char suffix;
	} units[] = { { GiB, 'G' }, { MiB, 'M' }, { KiB, 'K' } };

	/* Exact in the largest unit that divides it ("16380K", not "16.0M")... */
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (n != 0 && n % units[i].unit == 0) {
			snprintf(buf, len, "%llu%c", (unsigned long long)(n / units[i].unit),
				 units[i].suffix);
			return buf;
		}
	}
	/* ...else rounded in the largest unit it reaches ("1.9M" for an odd file size). */
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (n >= units[i].unit) {
			snprintf(buf, len, "%.1f%c", (double)n / (double)units[i].unit,
				 units[i].suffix);
			return buf;
		}
	}
	snprintf(buf, len, n ? "%llu bytes" : "%llu", (unsigned long long)n);
	return buf;
}
