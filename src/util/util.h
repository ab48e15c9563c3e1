/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small helpers: cleanup attributes, array sizes, checked arithmetic, time, and parsing of
 * sizes and numbers as Cloud Hypervisor's command line writes them.
 */
#ifndef CUBICLE_UTIL_UTIL_H
#define CUBICLE_UTIL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a)	 (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)	 ((a) < (b) ? (a) : (b))
#define MAX(a, b)	 ((a) > (b) ? (a) : (b))
#define ALIGN_UP(x, a)	 (((x) + ((a)-1)) & ~((__typeof__(x))(a)-1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a)-1))
#define IS_ALIGNED(x, a) (((x) & ((__typeof__(x))(a)-1)) == 0)

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

static inline void freep(void *p)
{
	free(*(void **)p);
}

static inline void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

#define _cleanup_(f)	__attribute__((cleanup(f)))
#define _cleanup_free_	_cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/* Returns the value and leaves -1 behind: for handing an fd out of a _cleanup_close_ scope. */
static inline int fd_take(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

static inline void *ptr_take(void *pp)
{
	void **p = pp;
	void *r = *p;
	*p = NULL;
	return r;
}

/* True when [a, a+len) overflows 64 bits. */
static inline bool range_overflows(uint64_t a, uint64_t len)
{
	return len != 0 && a + len - 1 < a;
}

/*
 * Writes one line for the user into @err (which may be NULL) and returns @r: how a function
 * that can say why it failed ends. printf-style.
 */
int error_set(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Puts printf-style text in front of what @err already says ("device 'blk': " + "field ..."). */
void error_prefix(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Reads exactly @len bytes of @fd at @off. Returns 0, -EIO at a premature end of file, or
 * -errno. */
int file_read_at(int fd, void *buf, size_t len, uint64_t off);
/* Writes exactly @len bytes at @off. Returns 0, -EIO when nothing could be written, or -errno
 * (-ENOSPC, -EFBIG...). */
int file_write_at(int fd, const void *buf, size_t len, uint64_t off);

/* A size as a user writes it: "512M", "1.5G", "300K", "17 bytes", "0". Returns @buf. */
const char *format_size(char *buf, size_t len, uint64_t n);

/* Monotonic time in nanoseconds. */
uint64_t time_now_ns(void);

/*
 * Parses a size as Cloud Hypervisor does: a decimal number with an optional K, M or G suffix
 * (powers of 1024; KiB/MiB/GiB and lower case accepted). Returns 0, -EINVAL for a malformed
 * string, or -ERANGE for a value over 2^64-1.
 */
int parse_size(const char *s, uint64_t *ret);

/* Parses an unsigned decimal (or 0x hex) integer no larger than @max. -EINVAL / -ERANGE. */
int parse_u64(const char *s, uint64_t max, uint64_t *ret);

/* Parses on|off|true|false. -EINVAL otherwise. */
int parse_bool(const char *s, bool *ret);

/* Reads a whole file of at most @max bytes. -EFBIG when larger, -errno on I/O errors. */
int read_file(const char *path, size_t max, void **ret_data, size_t *ret_size);

#endif
