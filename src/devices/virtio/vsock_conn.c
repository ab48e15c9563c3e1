/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-vsock: the connection table and the Unix-socket side (vsock.h). Every socket is
 * non-blocking and watched by the VMM loop; a connection whose host reader is slow keeps at
 * most VSOCK_CONN_BUF_SIZE bytes (the credit it gave the guest), and one whose guest reader is
 * slow stops reading its socket: either way only that connection waits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/vsock.h"
#include "util/util.h"

static void vsock_conn_cb(void *opaque, uint32_t events);

/* ---- addresses ---- */

static int vsock_sockaddr(const char *path, struct sockaddr_un *ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	*ret = sa;
	return 0;
}

int vsock_listen(const char *path)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd, r;

	r = vsock_sockaddr(path, &sa);
	if (r < 0)
		return r;
	/* A socket left by an earlier run is replaced; anything else at PATH is not ours. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		(void)unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* ---- the table ---- */

struct vsock_conn *vsock_conn_find(struct vsock *vs, uint32_t host_port, uint32_t guest_port)
{
	for (unsigned i = 0; i < vs->nr_conns; i++) {
		struct vsock_conn *c = vs->conns[i];

		if (c->state != VSOCK_CONN_HANDSHAKE && c->host_port == host_port &&
		    c->guest_port == guest_port)
			return c;
	}
	return NULL;
}

static bool vsock_host_port_used(struct vsock *vs, uint32_t port)
{
	for (unsigned i = 0; i < vs->nr_conns; i++) {
		if (vs->conns[i]->state != VSOCK_CONN_HANDSHAKE && vs->conns[i]->host_port == port)
			return true;
	}
	return false;
}

/* A fresh host-side port for a host-initiated connection (never 0 or U32_MAX). */
static uint32_t vsock_local_port(struct vsock *vs)
{
	for (;;) {
		uint32_t p = vs->next_local_port++;

		if (vs->next_local_port == UINT32_MAX ||
		    vs->next_local_port < VSOCK_LOCAL_PORT_BASE)
			vs->next_local_port = VSOCK_LOCAL_PORT_BASE;
		if (!vsock_host_port_used(vs, p)) /* at most VSOCK_MAX_CONNS are */
			return p;
	}
}

/* Takes @fd (closed on failure). Returns the new connection or NULL. */
static struct vsock_conn *vsock_conn_new(struct vsock *vs, int fd, enum vsock_conn_state state)
{
	struct vsock_conn *c;

	if (vs->nr_conns == VSOCK_MAX_CONNS)
		goto fail;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	c->vs = vs;
	c->fd = fd;
	c->state = state;
	if (vs->loop) {
		if (vs->loop->add_fd(vs->loop->loop, fd, 0, vsock_conn_cb, c) < 0) {
			free(c);
			goto fail;
		}
		c->watched = true;
	}
	vs->conns[vs->nr_conns++] = c;
	vs->cnt[VSOCK_CNT_CONNS_OPENED]++;
	return c;
fail:
	vs->cnt[VSOCK_CNT_CONNS_REFUSED]++;
	close(fd);
	return NULL;
}

static void vsock_work_remove(struct vsock *vs, struct vsock_conn *c)
{
	struct vsock_conn **p = &vs->work_head, *prev = NULL;

	if (!c->queued)
		return;
	while (*p && *p != c) {
		prev = *p;
		p = &(*p)->next_work;
	}
	if (*p) {
		*p = c->next_work;
		if (vs->work_tail == c)
			vs->work_tail = prev;
	}
	c->queued = false;
	c->next_work = NULL;
}

void vsock_conn_close(struct vsock_conn *c, bool send_rst)
{
	struct vsock *vs = c->vs;

	if (send_rst && c->state != VSOCK_CONN_HANDSHAKE)
		vsock_queue_rst(vs, c->host_port, c->guest_port);
	vsock_work_remove(vs, c);
	if (c->watched)
		(void)vs->loop->del_fd(vs->loop->loop, c->fd);
	close(c->fd);
	for (unsigned i = 0; i < vs->nr_conns; i++) {
		if (vs->conns[i] == c) {
			vs->conns[i] = vs->conns[--vs->nr_conns];
			break;
		}
	}
	free(c->buf);
	free(c);
}

void vsock_conn_close_all(struct vsock *vs)
{
	while (vs->nr_conns)
		vsock_conn_close(vs->conns[vs->nr_conns - 1], false);
	vs->work_head = vs->work_tail = NULL;
}

/* ---- credit and interest ---- */

uint32_t vsock_conn_peer_free(const struct vsock_conn *c)
{
	uint32_t used = c->rx_cnt - c->peer_fwd_cnt; /* modulo 2^32, as the spec counts */

	/* A guest claiming more consumed than was sent only stalls itself. */
	return used > c->peer_buf_alloc ? 0 : c->peer_buf_alloc - used;
}

static bool vsock_conn_may_read(const struct vsock_conn *c)
{
	return c->state == VSOCK_CONN_ESTABLISHED && !c->host_eof && !c->guest_shut_rcv;
}

bool vsock_conn_wants_rx(const struct vsock_conn *c)
{
	if (c->pend)
		return true;
	return vsock_conn_may_read(c) && c->host_readable && vsock_conn_peer_free(c) > 0;
}

static uint32_t vsock_conn_events(const struct vsock_conn *c)
{
	uint32_t ev = 0;

	if (c->vs->paused)
		return 0;
	if (c->state == VSOCK_CONN_HANDSHAKE)
		return EPOLLIN;
	if (vsock_conn_may_read(c) && !c->host_readable)
		ev |= EPOLLIN;
	if (c->buf_len)
		ev |= EPOLLOUT;
	return ev;
}

static void vsock_conn_arm(struct vsock_conn *c)
{
	uint32_t ev = vsock_conn_events(c);

	if (!c->watched || c->armed == ev)
		return;
	if (c->vs->loop->mod_fd(c->vs->loop->loop, c->fd, ev) == 0)
		c->armed = ev;
}

/* Both directions done: the guest is told with an RST and the connection goes. */
static bool vsock_conn_finished(const struct vsock_conn *c)
{
	if (c->state != VSOCK_CONN_ESTABLISHED || c->buf_len || c->pend)
		return false;
	if (c->guest_shut_send && c->guest_shut_rcv)
		return true;
	return c->guest_shut_send && c->host_eof;
}

void vsock_conn_refresh(struct vsock_conn *c)
{
	struct vsock *vs = c->vs;

	if (c->state == VSOCK_CONN_ESTABLISHED && c->guest_shut_send && !c->buf_len &&
	    !c->host_wr_shut) {
		(void)shutdown(c->fd, SHUT_WR); /* the host reader sees EOF: a half-close */
		c->host_wr_shut = true;
	}
	if (vsock_conn_finished(c)) {
		vsock_conn_close(c, true);
		return;
	}
	if (vsock_conn_may_read(c) && c->host_readable && !vsock_conn_peer_free(c) &&
	    !c->credit_requested) {
		c->pend |= VSOCK_PEND_CREDIT_REQUEST;
		c->credit_requested = true;
	}
	if (vsock_conn_wants_rx(c))
		vsock_work_add(vs, c);
	vsock_conn_arm(c);
}

/* ---- set-up deadlines ---- */

static void vsock_timer_arm(struct vsock *vs)
{
	bool want = false;
	struct itimerspec its = { 0 };

	for (unsigned i = 0; i < vs->nr_conns && !want; i++)
		want = vs->conns[i]->deadline_ns != 0;
	if (want == vs->timer_armed || vs->timer_fd < 0)
		return;
	if (want) {
		its.it_value.tv_sec = VSOCK_TIMER_PERIOD_NS / 1000000000ULL;
		its.it_interval = its.it_value;
	}
	if (timerfd_settime(vs->timer_fd, 0, &its, NULL) == 0)
		vs->timer_armed = want;
}

static void vsock_conn_deadline(struct vsock_conn *c)
{
	c->deadline_ns = time_now_ns() + VSOCK_SETUP_TIMEOUT_NS;
	vsock_timer_arm(c->vs);
}

void vsock_expire(struct vsock *vs, uint64_t now_ns)
{
	for (unsigned i = vs->nr_conns; i-- > 0;) {
		struct vsock_conn *c;

		if (i >= vs->nr_conns)
			continue; /* a close moved the last one here: seen already */
		c = vs->conns[i];
		if (!c->deadline_ns || now_ns < c->deadline_ns)
			continue;
		vs->cnt[VSOCK_CNT_SETUP_TIMEOUTS]++;
		vsock_conn_close(c, c->state == VSOCK_CONN_CONNECTING &&
					    !(c->pend & VSOCK_PEND_REQUEST));
	}
	vsock_timer_arm(vs);
}

void vsock_arm_all(struct vsock *vs)
{
	for (unsigned i = 0; i < vs->nr_conns; i++)
		vsock_conn_arm(vs->conns[i]);
	if (vs->listen_watched)
		(void)vs->loop->mod_fd(vs->loop->loop, vs->listen_fd, vs->paused ? 0 : EPOLLIN);
}

/* ---- guest → host bytes ---- */

/* send() without SIGPIPE: >0 bytes, -EAGAIN, or -errno. */
static long vsock_send(int fd, const uint8_t *data, size_t len)
{
	for (;;) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

static void vsock_conn_forwarded(struct vsock_conn *c, uint32_t n)
{
	c->fwd_cnt += n;
	/* Tell the guest about freed buffer space before it could run out of credit. */
	if (c->fwd_cnt - c->fwd_cnt_sent >= VSOCK_CREDIT_THRESHOLD)
		c->pend |= VSOCK_PEND_CREDIT_UPDATE;
}

/* Writes the buffered bytes. 0: all written or the socket is full; -errno: broken. */
static int vsock_conn_drain(struct vsock_conn *c)
{
	while (c->buf_len) {
		uint32_t chunk = MIN(c->buf_len, VSOCK_CONN_BUF_SIZE - c->buf_head);
		long n = vsock_send(c->fd, c->buf + c->buf_head, chunk);

		if (n == -EAGAIN)
			return 0;
		if (n <= 0)
			return n < 0 ? (int)n : -EPIPE;
		c->buf_head = (c->buf_head + (uint32_t)n) % VSOCK_CONN_BUF_SIZE;
		c->buf_len -= (uint32_t)n;
		vsock_conn_forwarded(c, (uint32_t)n);
	}
	c->buf_head = 0;
	return 0;
}

static int vsock_conn_buffer(struct vsock_conn *c, const uint8_t *data, uint32_t len)
{
	if (!c->buf) {
		c->buf = malloc(VSOCK_CONN_BUF_SIZE);
		if (!c->buf)
			return -ENOMEM;
	}
	while (len) {
		uint32_t tail = (c->buf_head + c->buf_len) % VSOCK_CONN_BUF_SIZE;
		uint32_t chunk = MIN(len, VSOCK_CONN_BUF_SIZE - tail);

		memcpy(c->buf + tail, data, chunk);
		c->buf_len += chunk;
		data += chunk;
		len -= chunk;
	}
	return 0;
}

void vsock_conn_write(struct vsock_conn *c, const uint8_t *data, uint32_t len)
{
	long n = 0;

	c->guest_tx_cnt += len;
	if (!c->buf_len && len) {
		n = vsock_send(c->fd, data, len);
		if (n == -EAGAIN)
			n = 0;
		if (n < 0) {
			vsock_conn_close(c, true); /* the host reader is gone */
			return;
		}
		vsock_conn_forwarded(c, (uint32_t)n);
	}
	if ((uint32_t)n < len && vsock_conn_buffer(c, data + n, len - (uint32_t)n) < 0) {
		vsock_conn_close(c, true);
		return;
	}
	vsock_conn_refresh(c);
}

void vsock_conn_shutdown(struct vsock_conn *c, uint32_t flags)
{
	if (flags & VSOCK_SHUTDOWN_RCV)
		c->guest_shut_rcv = true;
	if (flags & VSOCK_SHUTDOWN_SEND)
		c->guest_shut_send = true;
	vsock_conn_refresh(c);
}

/* ---- host → guest bytes ---- */

long vsock_conn_read(struct vsock_conn *c, uint8_t *buf, uint32_t len)
{
	for (;;) {
		ssize_t n = recv(c->fd, buf, len, MSG_DONTWAIT);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

/* ---- connection set-up ---- */

void vsock_conn_guest_connect(struct vsock *vs, uint32_t host_port, uint32_t guest_port,
			      const struct vsock_hdr *h)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vsock_conn *c;
	int fd, n;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", vs->path, host_port);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path) || fd < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		/* No listener (or its backlog is full: EAGAIN): the guest sees a refusal. */
		if (fd >= 0)
			close(fd);
		vs->cnt[VSOCK_CNT_CONNS_REFUSED]++;
		vsock_queue_rst(vs, host_port, guest_port);
		return;
	}
	c = vsock_conn_new(vs, fd, VSOCK_CONN_ESTABLISHED);
	if (!c) {
		vsock_queue_rst(vs, host_port, guest_port);
		return;
	}
	c->host_port = host_port;
	c->guest_port = guest_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->pend = VSOCK_PEND_RESPONSE;
	vsock_conn_refresh(c);
}

void vsock_conn_established(struct vsock_conn *c)
{
	char ok[32];
	int n = snprintf(ok, sizeof(ok), "OK %u\n", c->host_port);

	/* A fresh socket's send buffer always takes these few bytes; if not, give up. */
	if (vsock_send(c->fd, (const uint8_t *)ok, (size_t)n) != n) {
		vsock_conn_close(c, true);
		return;
	}
	c->state = VSOCK_CONN_ESTABLISHED;
	c->deadline_ns = 0;
	vsock_conn_refresh(c);
}

/* "CONNECT <port>\n" → the port, or -EINVAL. */
static int64_t vsock_parse_connect(const char *line)
{
	static const char prefix[] = "CONNECT ";
	uint64_t port = 0;
	const char *p;

	if (strncmp(line, prefix, sizeof(prefix) - 1) != 0)
		return -EINVAL;
	p = line + sizeof(prefix) - 1;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		port = port * 10 + (uint64_t)(*p - '0');
		if (port > UINT32_MAX)
			return -EINVAL;
	}
	return *p == '\0' ? (int64_t)port : -EINVAL;
}

/* Reads the CONNECT line, and nothing past it (that is stream data). */
static void vsock_conn_handshake(struct vsock_conn *c)
{
	struct vsock *vs = c->vs;
	char *nl;
	int64_t port;
	ssize_t n = recv(c->fd, c->line, sizeof(c->line) - 1, MSG_PEEK | MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0)
		goto refuse;
	c->line[n] = '\0';
	nl = memchr(c->line, '\n', (size_t)n);
	if (!nl) {
		if (n == (ssize_t)sizeof(c->line) - 1)
			goto refuse; /* too long for a CONNECT line */
		return;		     /* the rest is on its way */
	}
	if (recv(c->fd, c->line, (size_t)(nl - c->line) + 1, MSG_DONTWAIT) != nl - c->line + 1)
		goto refuse;
	*nl = '\0';
	port = vsock_parse_connect(c->line);
	if (port < 0)
		goto refuse;
	c->guest_port = (uint32_t)port;
	c->host_port = vsock_local_port(vs);
	c->state = VSOCK_CONN_CONNECTING;
	c->pend = VSOCK_PEND_REQUEST;
	vsock_conn_deadline(c); /* now for the guest's answer */
	c->peer_buf_alloc = 0;	/* until the guest's RESPONSE says */
	vsock_conn_refresh(c);
	return;
refuse:
	vs->cnt[VSOCK_CNT_CONNS_REFUSED]++;
	vsock_conn_close(c, false);
}

void vsock_accept(struct vsock *vs)
{
	for (unsigned i = 0; i < VSOCK_ACCEPT_BATCH; i++) {
		int fd = accept4(vs->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct vsock_conn *c;

		if (fd < 0)
			return; /* EAGAIN, or a client that left already */
		c = vsock_conn_new(vs, fd, VSOCK_CONN_HANDSHAKE);
		if (!c)
			continue;
		vsock_conn_deadline(c);
		vsock_conn_refresh(c);
	}
}

/* ---- the socket's events ---- */

static void vsock_conn_event(struct vsock_conn *c, uint32_t events)
{
	bool hup = events & (EPOLLHUP | EPOLLERR);

	if (c->state == VSOCK_CONN_HANDSHAKE) {
		vsock_conn_handshake(c);
		return;
	}
	if (hup && !c->hup) {
		/* Reported whatever the interest: leave the loop, go on reading to EOF. */
		c->hup = true;
		if (c->watched)
			(void)c->vs->loop->del_fd(c->vs->loop->loop, c->fd);
		c->watched = false;
		if (c->state == VSOCK_CONN_CONNECTING) {
			vsock_conn_close(c, !(c->pend & VSOCK_PEND_REQUEST));
			return;
		}
	}
	if (c->buf_len && ((events & EPOLLOUT) || hup) && vsock_conn_drain(c) < 0) {
		vsock_conn_close(c, true);
		return;
	}
	if ((events & EPOLLIN) || hup)
		c->host_readable = true;
	vsock_conn_refresh(c);
}

static void vsock_conn_cb(void *opaque, uint32_t events)
{
	struct vsock_conn *c = opaque;
	struct vsock *vs = c->vs;

	virtio_pci_lock(vs->vp);
	if (!vs->paused) {
		vsock_conn_event(c, events);
		vsock_rx_pump(vs);
	} else if (events & (EPOLLHUP | EPOLLERR)) {
		vsock_conn_event(c, events); /* leaves the loop: no spinning while paused */
	}
	virtio_pci_unlock(vs->vp);
}
