/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The event monitor: Cloud Hypervisor's event stream (event_monitor crate), written by the
 * loop thread into a non-blocking fd through a bounded buffer.
 */
#include "api/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/loop.h"
#include "util/log.h"
#include "util/util.h"

struct event_monitor {
	struct loop *loop;
	int fd;
	bool watched; /* EPOLLOUT registered */
	uint64_t start_ns;
	char *buf; /* EVENT_MAX_BUFFER bytes */
	size_t len;
	uint64_t dropped;
};

static bool event_write_some(struct event_monitor *em);

static int event_spec_open(const char *spec, char *err, size_t errlen)
{
	if (strncmp(spec, "fd=", 3) == 0) {
		char *end;
		errno = 0;
		long fd = strtol(spec + 3, &end, 10);
		if (errno || end == spec + 3 || *end || fd < 0 || fd > INT32_MAX)
			return error_set(err, errlen, -EINVAL,
					 "--event-monitor: fd must be a number, not '%s'",
					 spec + 3);
		if (fcntl((int)fd, F_GETFL) < 0)
			return error_set(err, errlen, -EBADF, "--event-monitor: fd %ld is not open",
					 fd);
		int dup_fd = fcntl((int)fd, F_DUPFD_CLOEXEC, 3);
		if (dup_fd < 0)
			return error_set(err, errlen, -errno, "--event-monitor: fd %ld: %s", fd,
					 strerror(errno));
		close((int)fd);
		return dup_fd;
	}
	const char *path = strncmp(spec, "path=", 5) == 0 ? spec + 5 : spec;
	if (!path[0] || strchr(path, ','))
		return error_set(err, errlen, -EINVAL,
				 "--event-monitor: expected path=<file> or fd=<fd>, not '%s'",
				 spec);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return error_set(err, errlen, -errno, "--event-monitor: cannot open '%s': %s", path,
				 strerror(errno));
	return fd;
}

int event_monitor_open(struct loop *loop, const char *spec, struct event_monitor **ret, char *err,
		       size_t errlen)
{
	struct event_monitor *em = calloc(1, sizeof(*em));
	if (!em)
		return error_set(err, errlen, -ENOMEM, "out of memory");
	em->buf = malloc(EVENT_MAX_BUFFER);
	if (!em->buf) {
		free(em);
		return error_set(err, errlen, -ENOMEM, "out of memory");
	}
	em->fd = event_spec_open(spec, err, errlen);
	if (em->fd < 0) {
		int r = em->fd;
		free(em->buf);
		free(em);
		return r;
	}
	int fl = fcntl(em->fd, F_GETFL);
	if (fl >= 0)
		fcntl(em->fd, F_SETFL, fl | O_NONBLOCK);
	em->loop = loop;
	em->start_ns = time_now_ns();
	*ret = em;
	return 0;
}

struct event_monitor *event_monitor_close(struct event_monitor *em)
{
	if (!em)
		return NULL;
	if (em->watched)
		loop_del_fd(em->loop, em->fd);
	event_write_some(em);			 /* last chance, still without blocking */
	for (size_t i = 0; i + 1 < em->len; i++) /* events still buffered are lost */
		em->dropped += em->buf[i] == '\n' && em->buf[i + 1] == '\n';
	if (em->dropped)
		log_warn("event monitor: %llu events dropped (the reader did not keep up)",
			 (unsigned long long)em->dropped);
	close(em->fd);
	free(em->buf);
	free(em);
	return NULL;
}

static void event_flush(struct event_monitor *em);

static void event_on_writable(void *opaque, uint32_t events)
{
	event_flush(opaque);
}

/* Bytes up to the end of the first event in the buffer (each ends with a blank line; pretty
 * JSON has no blank line inside). */
static size_t event_first(const struct event_monitor *em)
{
	const char *end = memmem(em->buf, em->len, "\n\n", 2);
	return end ? (size_t)(end + 2 - em->buf) : em->len;
}

/*
 * Writes one event per write(): an event is smaller than PIPE_BUF, so on a pipe it goes whole
 * or not at all, and a reader never sees half an event, even when cubicle exits with events
 * still buffered. On other fds a short write keeps its rest for the next round.
 */
static bool event_write_some(struct event_monitor *em)
{
	while (em->len) {
		ssize_t n = write(em->fd, em->buf, event_first(em));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN) {
			/* The reader went away: nothing more can be delivered. */
			em->dropped++;
			em->len = 0;
			return true;
		}
		if (n <= 0)
			return false;
		memmove(em->buf, em->buf + n, em->len - n);
		em->len -= n;
	}
	return true;
}

static void event_flush(struct event_monitor *em)
{
	event_write_some(em);
	bool want = em->len > 0;
	if (want && !em->watched) {
		/* Regular files are always writable and cannot be in epoll: they never get here. */
		em->watched = loop_add_fd(em->loop, em->fd, EPOLLOUT, event_on_writable, em) == 0;
	} else if (!want && em->watched) {
		loop_del_fd(em->loop, em->fd);
		em->watched = false;
	}
}

void event_emit(struct event_monitor *em, const char *source, const char *event, const char *key,
		const char *value)
{
	if (!em)
		return;
	uint64_t ns = time_now_ns() - em->start_ns;
	json_t *props = key ? json_pack("{s:s}", key, value) : json_null();
	json_t *ts = json_pack("{s:I, s:i}", "secs", (json_int_t)(ns / 1000000000u), "nanos",
			       (int)(ns % 1000000000u));
	json_t *e = json_pack("{s:o, s:s, s:s, s:o}", "timestamp", ts, "source", source, "event",
			      event, "properties", props);
	char *text = e ? json_dumps(e, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(e);
	if (!text) {
		em->dropped++;
		return;
	}
	size_t n = strlen(text);
	if (em->len + n + 2 > EVENT_MAX_BUFFER) {
		em->dropped++;
	} else {
		memcpy(em->buf + em->len, text, n);
		memcpy(em->buf + em->len + n, "\n\n", 2);
		em->len += n + 2;
	}
	free(text);
	event_flush(em);
}
