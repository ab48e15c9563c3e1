/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging: the only mutable process-wide state in cubicle (STYLE.md). Messages go to stderr, or
 * to the file given by log_open_file(). Library code does not log errors it returns; the top
 * level does. Safe to call from any thread.
 */
#ifndef CUBICLE_UTIL_LOG_H
#define CUBICLE_UTIL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level {
	LOG_ERROR = 0,
	LOG_WARN = 1,
	LOG_INFO = 2,
	LOG_DEBUG = 3,
	LOG_TRACE = 4,
};

/* Messages above @level are dropped. The default is LOG_WARN; each -v raises it by one. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Sends messages to @path (appended). Returns 0, or -errno if the file cannot be opened. */
int log_open_file(const char *path);
/* Back to stderr; closes a file opened with log_open_file(). */
void log_close_file(void);

/* Writes @line as is to the log file (if any) and to stderr: async-signal-safe, takes no lock,
 * for reports from signal handlers (the seccomp violation handler). */
void log_write_raw(const char *line, size_t len);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/*
 * A rate limit for messages a guest can trigger at will: at most @burst messages per
 * @interval_ns, then silence until the interval ends (the next message says how many were
 * suppressed). Zero-initialise with LOG_RATELIMIT_INIT.
 */
struct log_ratelimit {
	uint64_t interval_ns;
	uint32_t burst;
	uint32_t printed;
	uint64_t suppressed;
	uint64_t begin_ns;
};
#define LOG_RATELIMIT_INIT(interval_ns_, burst_)                 \
	{                                                        \
		.interval_ns = (interval_ns_), .burst = (burst_) \
	}

/* Returns true when a message may be printed now; not thread-safe per struct. */
bool log_ratelimit_ok(struct log_ratelimit *rl);

#define log_ratelimited(rl, level, ...)              \
	do {                                         \
		if (log_ratelimit_ok(rl))            \
			log_msg(level, __VA_ARGS__); \
	} while (0)

#endif
