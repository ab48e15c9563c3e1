/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Each message is formatted into one buffer and written with one write(), under a mutex that
 * also guards switching between stderr and a log file: lines from several threads never
 * interleave.
 */
#include "util/log.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LOG_LINE_MAX 1024

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum log_level log_level = LOG_WARN;
static int log_fd = -1; /* -1: stderr */
static uint64_t log_start_ns;

static const char *const level_names[] = {
	[LOG_ERROR] = "error", [LOG_WARN] = "warn",   [LOG_INFO] = "info",
	[LOG_DEBUG] = "debug", [LOG_TRACE] = "trace",
};

/* Timestamps in a log file count from process start, as Cloud Hypervisor's do. */
__attribute__((constructor)) static void log_init_clock(void)
{
	log_start_ns = time_now_ns();
}

void log_set_level(enum log_level level)
{
	if (level > LOG_TRACE)
		level = LOG_TRACE;
	__atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

enum log_level log_get_level(void)
{
	return __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

int log_open_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);

	if (fd < 0)
		return -errno;
	pthread_mutex_lock(&log_lock);
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	pthread_mutex_unlock(&log_lock);
	return 0;
}

void log_close_file(void)
{
	pthread_mutex_lock(&log_lock);
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	pthread_mutex_unlock(&log_lock);
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* nowhere left to report it */
		buf += n;
		len -= (size_t)n;
	}
}

__attribute__((format(printf, 2, 0))) void log_vmsg(enum log_level level, const char *fmt,
						    va_list ap)
{
	char line[LOG_LINE_MAX];
	size_t len = 0;
	int n;

	if (level > log_get_level())
		return;
	if ((unsigned)level >= ARRAY_SIZE(level_names))
		level = LOG_TRACE;

	pthread_mutex_lock(&log_lock);
	if (log_fd >= 0) {
		uint64_t t = time_now_ns() - log_start_ns;

		n = snprintf(line, sizeof(line), "[%llu.%06llu] ",
			     (unsigned long long)(t / 1000000000ULL),
			     (unsigned long long)(t % 1000000000ULL / 1000ULL));
		if (n > 0)
			len = (size_t)n;
	}
	n = snprintf(line + len, sizeof(line) - len, "cubicle: %s: ", level_names[level]);
	if (n > 0)
		len += (size_t)n;
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	if (n > 0)
		len += (size_t)n;
	if (len >= sizeof(line) - 1) {
		/* Truncated: mark it, and keep room for the newline. */
		len = sizeof(line) - 2;
		memcpy(line + len - 3, "...", 3);
	}
	if (len == 0 || line[len - 1] != '\n')
		line[len++] = '\n';
	write_all(log_fd >= 0 ? log_fd : STDERR_FILENO, line, len);
	pthread_mutex_unlock(&log_lock);
}

void log_write_raw(const char *line, size_t len)
{
	/* No lock: this runs in signal handlers. A log file gets the line, and stderr too, so
	 * that whoever started cubicle sees why it died. */
	int fd = log_fd;
	if (fd >= 0)
		write_all(fd, line, len);
	write_all(STDERR_FILENO, line, len);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

bool log_ratelimit_ok(struct log_ratelimit *rl)
{
	uint64_t now;

	/* Like systemd: a zero interval or burst disables the limit. */
	if (rl->interval_ns == 0 || rl->burst == 0)
		return true;

	now = time_now_ns();
	if (rl->begin_ns == 0 || now - rl->begin_ns >= rl->interval_ns) {
		if (rl->suppressed > 0)
			log_warn("%llu messages suppressed", (unsigned long long)rl->suppressed);
		rl->begin_ns = now;
		rl->printed = 0;
		rl->suppressed = 0;
	}
	if (rl->printed < rl->burst) {
		rl->printed++;
		return true;
	}
	rl->suppressed++;
	return false;
}
