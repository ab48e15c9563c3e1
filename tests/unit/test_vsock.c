/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-vsock (src/devices/virtio/vsock.c, vsock_conn.c) against fake guest memory and real
 * Unix sockets: both connection directions, data and half-closes, resets, unknown ports,
 * credit both ways (a slow reader on one connection stalls only that one), the limits, and
 * every kind of bad guest packet (dropped and counted).
 *
 * The fake loop is driven as epoll would be: pump() polls every registered fd for its interest
 * (plus HUP/ERR) and calls its callback, until nothing is ready.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/virtio_devices.h"
#include "devices/virtio/vsock.h"
#include "util/util.h"
#include "virtio_harness.h"
#include "vdev_state_harness.h"

#define QSIZE	   16
#define GUEST_CID  3
#define NR_RX	   8
#define RX_BUF	   0x40000
#define RX_LEN	   0x2000
#define TX_BUF	   0x80000 /* NR_TX_SLOT slots of TX_STRIDE */
#define TX_STRIDE  0x10100
#define GUEST_BUF  (1U << 20) /* the guest's buf_alloc unless a test changes it */
#define NR_TX_SLOT 6	      /* 6 full-size packets fit below 1 MiB */

struct fx {
	struct vh *h;
	void *dev;
	char dir[64];
	char path[108];
	uint16_t rx_seen, tx_seen;
	unsigned tx_next;
	bool no_repost;
	uint32_t guest_buf_alloc, guest_fwd_cnt;
	uint64_t clone_cid; /* the CID a restore_edit() clone is given; 0: GUEST_CID */
};

struct pkt {
	struct vsock_hdr h;
	uint8_t data[RX_LEN];
};

/* ---- the fake loop ---- */

static void pump(struct fx *x)
{
	for (unsigned round = 0; round < 1000; round++) {
		bool any = false;

		for (unsigned i = 0; i < VH_MAX_FDS; i++) {
			struct vh_fd *f = &x->h->fds[i];
			struct pollfd p;

			if (!f->used)
				continue;
			p = (struct pollfd){ .fd = f->fd, .events = (short)f->events };
			if (poll(&p, 1, 0) == 1 && p.revents) {
				f->cb(f->opaque, (uint32_t)p.revents);
				any = true;
			}
		}
		if (!any)
			return;
	}
	fail_msg("the loop spins");
}

/* ---- the guest ---- */

static void post_rx(struct fx *x, unsigned i)
{
	vh_desc(x->h, VSOCK_RXQ, i, RX_BUF + (uint64_t)i * RX_LEN, RX_LEN, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(x->h, VSOCK_RXQ, QSIZE, (uint16_t)i);
}

static void send_raw(struct fx *x, const struct vsock_hdr *h, const void *data, uint32_t dlen,
		     bool notify)
{
	unsigned slot = x->tx_next++ % NR_TX_SLOT;
	uint64_t gpa = TX_BUF + (uint64_t)slot * TX_STRIDE;

	vsock_hdr_encode(h, x->h->ram + gpa);
	if (dlen)
		memcpy(x->h->ram + gpa + VSOCK_HDR_SIZE, data, dlen);
	vh_desc(x->h, VSOCK_TXQ, slot, gpa, VSOCK_HDR_SIZE + dlen, 0, 0);
	vh_avail(x->h, VSOCK_TXQ, QSIZE, (uint16_t)slot);
	if (notify) {
		vh_notify(x->h, VSOCK_TXQ);
		pump(x);
	}
}

static struct vsock_hdr mkhdr(struct fx *x, uint16_t op, uint32_t gport, uint32_t hport,
			      uint32_t len, uint32_t flags)
{
	return (struct vsock_hdr){ .src_cid = GUEST_CID,
				   .dst_cid = VSOCK_HOST_CID,
				   .src_port = gport,
				   .dst_port = hport,
				   .len = len,
				   .type = VSOCK_TYPE_STREAM,
				   .op = op,
				   .flags = flags,
				   .buf_alloc = x->guest_buf_alloc,
				   .fwd_cnt = x->guest_fwd_cnt };
}

static void gsend(struct fx *x, uint16_t op, uint32_t gport, uint32_t hport, const void *data,
		  uint32_t len, uint32_t flags)
{
	struct vsock_hdr h = mkhdr(x, op, gport, hport, len, flags);

	send_raw(x, &h, data, len, true);
}

/* The next packet the device gave the guest; false when there is none. */
static bool grecv(struct fx *x, struct pkt *p)
{
	uint64_t used = VH_USED + (uint64_t)VSOCK_RXQ * VH_RING_STEP;
	uint32_t id, len;

	if (vh_used_idx(x->h, VSOCK_RXQ) == x->rx_seen)
		return false;
	id = vh_get32(x->h, used + 4 + 8ULL * (x->rx_seen % QSIZE));
	len = vh_used_len(x->h, VSOCK_RXQ, x->rx_seen, QSIZE);
	x->rx_seen++;
	assert_true(id < NR_RX);
	assert_true(len >= VSOCK_HDR_SIZE && len <= RX_LEN);
	vsock_hdr_decode(x->h->ram + RX_BUF + (uint64_t)id * RX_LEN, &p->h);
	assert_int_equal(p->h.len, len - VSOCK_HDR_SIZE);
	memcpy(p->data, x->h->ram + RX_BUF + (uint64_t)id * RX_LEN + VSOCK_HDR_SIZE, p->h.len);
	assert_int_equal(p->h.src_cid, VSOCK_HOST_CID);
	assert_int_equal(p->h.dst_cid, GUEST_CID);
	assert_int_equal(p->h.type, VSOCK_TYPE_STREAM);
	if (!x->no_repost) {
		post_rx(x, id);
		vh_notify(x->h, VSOCK_RXQ);
		pump(x);
	}
	return true;
}

static void expect_pkt(struct fx *x, uint16_t op, struct pkt *p)
{
	if (!grecv(x, p))
		fail_msg("no packet (expected op %u)", op);
	if (p->h.op != op)
		fail_msg("op %u, expected %u", p->h.op, op);
}

static void expect_none(struct fx *x)
{
	struct pkt p;

	if (grecv(x, &p))
		fail_msg("unexpected packet op %u", p.h.op);
}

/* ---- counters ---- */

struct cnt_find {
	const char *name;
	uint64_t value;
	bool found;
};

static void cnt_emit(void *opaque, const char *id, const char *name, uint64_t value)
{
	struct cnt_find *f = opaque;

	assert_string_equal(id, "_vsock0");
	if (strcmp(name, f->name) == 0) {
		f->value = value;
		f->found = true;
	}
}

static uint64_t counter(struct fx *x, const char *name)
{
	struct cnt_find f = { .name = name };

	vsock_ops.counters(x->dev, cnt_emit, &f);
	assert_true(f.found);
	return f.value;
}

/* ---- host side ---- */

static int host_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static int host_listen(struct fx *x, uint32_t port)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", x->path, port) < 100);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	return fd;
}

/* Reads exactly @len bytes (with a timeout) or fails. */
static void host_read(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		assert_int_equal(poll(&p, 1, 2000), 1);
		n = recv(fd, (uint8_t *)buf + got, len - got, MSG_DONTWAIT);
		assert_true(n > 0);
		got += (size_t)n;
	}
}

static bool host_eof(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&p, 1, 2000) != 1)
		return false;
	/* closed with unread bytes of ours in it: a reset rather than an EOF */
	ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* A host-initiated connection to guest port @gport, accepted by the guest: returns the
 * host's fd, *ret_hport the device's port for it. */
static int host_open(struct fx *x, uint32_t gport, uint32_t *ret_hport)
{
	char line[32], want[32];
	struct pkt p;
	int fd = host_connect(x->path);

	snprintf(line, sizeof(line), "CONNECT %u\n", gport);
	assert_int_equal(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	pump(x);
	expect_pkt(x, VSOCK_OP_REQUEST, &p);
	assert_int_equal(p.h.dst_port, gport);
	assert_true(p.h.src_port >= VSOCK_LOCAL_PORT_BASE);
	assert_int_equal(p.h.buf_alloc, VSOCK_CONN_BUF_SIZE);
	gsend(x, VSOCK_OP_RESPONSE, gport, p.h.src_port, NULL, 0, 0);
	snprintf(want, sizeof(want), "OK %u\n", p.h.src_port);
	memset(line, 0, sizeof(line));
	host_read(fd, line, strlen(want));
	assert_string_equal(line, want);
	*ret_hport = p.h.src_port;
	return fd;
}

/* ---- fixture ---- */

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct vsock_config cfg = { .cid = GUEST_CID };

	assert_non_null(x);
	snprintf(x->dir, sizeof(x->dir), "/tmp/test_vsock.XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	snprintf(x->path, sizeof(x->path), "%s/v.sock", x->dir);
	cfg.socket = x->path;
	x->guest_buf_alloc = GUEST_BUF;
	x->h = vh_create(true);
	assert_int_equal(vsock_create(&x->h->ctx, &cfg, &x->dev), 0);
	vh_attach(x->h, virtio_pci_function(vsock_transport(x->dev)), 4);
	assert_true(vh_negotiate(x->h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	for (unsigned q = 0; q < 3; q++)
		vh_setup_queue(x->h, q, QSIZE);
	vh_driver_ok(x->h);
	for (unsigned i = 0; i < NR_RX; i++)
		post_rx(x, i);
	vh_notify(x->h, VSOCK_RXQ);
	pump(x);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	char cmd[128];

	vsock_ops.unrealize(x->dev);
	vh_destroy(x->h);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", x->dir);
	assert_int_equal(system(cmd), 0);
	free(x);
	return 0;
}

/* ---- tests ---- */

static void test_config_space(void **state)
{
	struct fx *x = *state;

	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF, 4), GUEST_CID);
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF + 4, 4), 0);
	assert_int_equal(vh_cfg_read(x->h, PCI_DEVICE_ID, 2), VIRTIO_PCI_DEVICE_ID_BASE + 19);
}

static void test_host_to_guest(void **state)
{
	struct fx *x = *state;
	uint32_t hp;
	struct pkt p;
	char buf[8];
	int fd = host_open(x, 1234, &hp);

	/* host → guest */
	assert_int_equal(write(fd, "hello", 5), 5);
	pump(x);
	expect_pkt(x, VSOCK_OP_RW, &p);
	assert_int_equal(p.h.len, 5);
	assert_memory_equal(p.data, "hello", 5);
	assert_int_equal(p.h.dst_port, 1234);
	assert_int_equal(p.h.src_port, hp);
	/* guest → host */
	gsend(x, VSOCK_OP_RW, 1234, hp, "world", 5, 0);
	host_read(fd, buf, 5);
	assert_memory_equal(buf, "world", 5);
	/* the host half-closes: the guest is told, the other direction still works */
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	pump(x);
	expect_pkt(x, VSOCK_OP_SHUTDOWN, &p);
	assert_int_equal(p.h.flags, VSOCK_SHUTDOWN_SEND);
	gsend(x, VSOCK_OP_RW, 1234, hp, "more", 4, 0);
	host_read(fd, buf, 4);
	assert_memory_equal(buf, "more", 4);
	/* the guest closes: its SEND shutdown finishes the connection, with an RST */
	gsend(x, VSOCK_OP_SHUTDOWN, 1234, hp, NULL, 0, VSOCK_SHUTDOWN_SEND | VSOCK_SHUTDOWN_RCV);
	expect_pkt(x, VSOCK_OP_RST, &p);
	assert_true(host_eof(fd));
	assert_int_equal(counter(x, "connections_active"), 0);
	assert_int_equal(counter(x, "tx_bytes"), 9);
	assert_int_equal(counter(x, "rx_bytes"), 5);
	close(fd);
}

static void test_guest_half_close(void **state)
{
	struct fx *x = *state;
	uint32_t hp;
	struct pkt p;
	char buf[8];
	int fd = host_open(x, 99, &hp);

	gsend(x, VSOCK_OP_RW, 99, hp, "bye", 3, 0);
	gsend(x, VSOCK_OP_SHUTDOWN, 99, hp, NULL, 0, VSOCK_SHUTDOWN_SEND);
	host_read(fd, buf, 3);
	assert_true(host_eof(fd)); /* shutdown(SHUT_WR) on the device's side */
	/* the host may still answer */
	assert_int_equal(write(fd, "ack", 3), 3);
	pump(x);
	expect_pkt(x, VSOCK_OP_RW, &p);
	assert_memory_equal(p.data, "ack", 3);
	close(fd);
	pump(x);
	/* EOF from the host with the guest's side shut: done, RST */
	expect_pkt(x, VSOCK_OP_SHUTDOWN, &p);
	expect_pkt(x, VSOCK_OP_RST, &p);
	assert_int_equal(counter(x, "connections_active"), 0);
}

static void test_guest_rst(void **state)
{
	struct fx *x = *state;
	uint32_t hp;
	int fd = host_open(x, 7, &hp);

	gsend(x, VSOCK_OP_RST, 7, hp, NULL, 0, 0);
	assert_true(host_eof(fd));
	expect_none(x);
	assert_int_equal(counter(x, "connections_active"), 0);
	close(fd);
}

static void test_guest_refuses(void **state)
{
	struct fx *x = *state;
	struct pkt p;
	int fd = host_connect(x->path);

	assert_int_equal(write(fd, "CONNECT 80\n", 11), 11);
	pump(x);
	expect_pkt(x, VSOCK_OP_REQUEST, &p);
	gsend(x, VSOCK_OP_RST, 80, p.h.src_port, NULL, 0, 0); /* no listener in the guest */
	assert_true(host_eof(fd));			      /* closed without "OK" */
	close(fd);
}

static void test_bad_connect_line(void **state)
{
	struct fx *x = *state;
	static const char *const lines[] = { "CONNEC 1\n", "CONNECT x\n", "CONNECT 4294967296\n",
					     "CONNECT 1 2\n",
					     "CONNECT 11111111111111111111111111111111\n" };

	for (unsigned i = 0; i < ARRAY_SIZE(lines); i++) {
		int fd = host_connect(x->path);

		assert_int_equal(write(fd, lines[i], strlen(lines[i])), (ssize_t)strlen(lines[i]));
		pump(x);
		assert_true(host_eof(fd));
		close(fd);
	}
	expect_none(x);
	assert_int_equal(counter(x, "connections_refused"), ARRAY_SIZE(lines));
	assert_int_equal(counter(x, "connections_active"), 0);
}

/* Stream bytes right behind the CONNECT line are the stream's, not the handshake's. */
static void test_connect_line_then_data(void **state)
{
	struct fx *x = *state;
	struct pkt p;
	int fd = host_connect(x->path);

	assert_int_equal(write(fd, "CONNECT 5\nearly", 15), 15);
	pump(x);
	expect_pkt(x, VSOCK_OP_REQUEST, &p);
	gsend(x, VSOCK_OP_RESPONSE, 5, p.h.src_port, NULL, 0, 0);
	pump(x);
	expect_pkt(x, VSOCK_OP_RW, &p);
	assert_int_equal(p.h.len, 5);
	assert_memory_equal(p.data, "early", 5);
	close(fd);
}

static void test_guest_to_host(void **state)
{
	struct fx *x = *state;
	struct pkt p;
	char buf[8];
	int lfd = host_listen(x, 5000), fd;

	gsend(x, VSOCK_OP_REQUEST, 40000, 5000, NULL, 0, 0);
	expect_pkt(x, VSOCK_OP_RESPONSE, &p);
	assert_int_equal(p.h.src_port, 5000);
	assert_int_equal(p.h.dst_port, 40000);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	gsend(x, VSOCK_OP_RW, 40000, 5000, "ping", 4, 0);
	host_read(fd, buf, 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(write(fd, "pong", 4), 4);
	pump(x);
	expect_pkt(x, VSOCK_OP_RW, &p);
	assert_memory_equal(p.data, "pong", 4);
	/* the host closes fully: the guest hears SHUTDOWN, then a write gets an RST */
	close(fd);
	pump(x);
	expect_pkt(x, VSOCK_OP_SHUTDOWN, &p);
	gsend(x, VSOCK_OP_RW, 40000, 5000, "late", 4, 0);
	expect_pkt(x, VSOCK_OP_RST, &p);
	assert_int_equal(counter(x, "connections_active"), 0);
	close(lfd);
}

static void test_no_host_listener(void **state)
{
	struct fx *x = *state;
	struct pkt p;

	gsend(x, VSOCK_OP_REQUEST, 40001, 6000, NULL, 0, 0);
	expect_pkt(x, VSOCK_OP_RST, &p);
	assert_int_equal(p.h.src_port, 6000);
	assert_int_equal(p.h.dst_port, 40001);
	assert_int_equal(counter(x, "connections_refused"), 1);
}

static void test_unknown_connection(void **state)
{
	struct fx *x = *state;
	struct pkt p;

	gsend(x, VSOCK_OP_RW, 1, 2, "x", 1, 0);
	expect_pkt(x, VSOCK_OP_RST, &p);
	gsend(x, VSOCK_OP_CREDIT_UPDATE, 1, 2, NULL, 0, 0);
	expect_pkt(x, VSOCK_OP_RST, &p);
	gsend(x, VSOCK_OP_RST, 1, 2, NULL, 0, 0); /* never answered */
	expect_none(x);
	assert_int_equal(counter(x, "dropped_unknown_connection"), 2);
}

static void test_malformed(void **state)
{
	struct fx *x = *state;
	struct vsock_hdr h;
	uint32_t hp;
	int fd;

	/* a short header */
	h = mkhdr(x, VSOCK_OP_REQUEST, 1, 2, 0, 0);
	vsock_hdr_encode(&h, x->h->ram + TX_BUF);
	vh_desc(x->h, VSOCK_TXQ, 0, TX_BUF, 20, 0, 0);
	vh_avail(x->h, VSOCK_TXQ, QSIZE, 0);
	x->tx_next = 1;
	vh_notify(x->h, VSOCK_TXQ);
	pump(x);
	assert_int_equal(counter(x, "dropped_malformed"), 1);
	/* wrong cids */
	h = mkhdr(x, VSOCK_OP_REQUEST, 1, 2, 0, 0);
	h.src_cid = 4;
	send_raw(x, &h, NULL, 0, true);
	h.src_cid = GUEST_CID;
	h.dst_cid = 1;
	send_raw(x, &h, NULL, 0, true);
	h.dst_cid = (uint64_t)1 << 32 | VSOCK_HOST_CID;
	send_raw(x, &h, NULL, 0, true);
	assert_int_equal(counter(x, "dropped_bad_cid"), 3);
	/* bad type, op, lengths */
	h = mkhdr(x, VSOCK_OP_REQUEST, 1, 2, 0, 0);
	h.type = 2;
	send_raw(x, &h, NULL, 0, true);
	h = mkhdr(x, 0, 1, 2, 0, 0);
	send_raw(x, &h, NULL, 0, true);
	h = mkhdr(x, 8, 1, 2, 0, 0);
	send_raw(x, &h, NULL, 0, true);
	h = mkhdr(x, VSOCK_OP_RW, 1, 2, 100, 0); /* len beyond the element */
	send_raw(x, &h, "abc", 3, true);
	h = mkhdr(x, VSOCK_OP_RW, 1, 2, VSOCK_MAX_PKT_LEN + 1, 0);
	send_raw(x, &h, NULL, 0, true);
	h = mkhdr(x, VSOCK_OP_REQUEST, 1, 2, 3, 0); /* payload on a control packet */
	send_raw(x, &h, "abc", 3, true);
	assert_int_equal(counter(x, "dropped_malformed"), 7);
	expect_none(x);
	/* a bad length on an open connection resets it: its stream has a hole */
	fd = host_open(x, 9, &hp);
	h = mkhdr(x, VSOCK_OP_RW, 9, hp, 50, 0);
	send_raw(x, &h, "abc", 3, true);
	struct pkt p;
	expect_pkt(x, VSOCK_OP_RST, &p);
	assert_true(host_eof(fd));
	close(fd);
	/* a packet the state does not allow: REQUEST on an open connection */
	fd = host_open(x, 10, &hp);
	gsend(x, VSOCK_OP_REQUEST, 10, hp, NULL, 0, 0);
	expect_pkt(x, VSOCK_OP_RST, &p);
	assert_true(host_eof(fd));
	close(fd);
	assert_int_equal(counter(x, "dropped_bad_state"), 1);
	/* the device still works */
	fd = host_open(x, 11, &hp);
	close(fd);
}

/* A guest element with a writable part on the transmit queue, and a tiny receive buffer. */
static void test_odd_buffers(void **state)
{
	struct fx *x = *state;
	struct vsock_hdr h = mkhdr(x, VSOCK_OP_RW, 1, 2, 0, 0);
	struct pkt p;

	vsock_hdr_encode(&h, x->h->ram + TX_BUF);
	vh_desc(x->h, VSOCK_TXQ, 0, TX_BUF, VSOCK_HDR_SIZE, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(x->h, VSOCK_TXQ, QSIZE, 0);
	x->tx_next = 1;
	vh_notify(x->h, VSOCK_TXQ);
	pump(x);
	assert_int_equal(counter(x, "dropped_malformed"), 1);
	assert_int_equal(vh_used_idx(x->h, VSOCK_TXQ), 1);
	/* only header-sized receive buffers: given back empty, counted */
	x->no_repost = true;
	for (unsigned i = 0; i < NR_RX; i++)
		gsend(x, VSOCK_OP_RW, 1, 2, "x", 1, 0);
	while (grecv(x, &p))
		;
	vh_desc(x->h, VSOCK_RXQ, NR_RX, RX_BUF, VSOCK_HDR_SIZE, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(x->h, VSOCK_RXQ, QSIZE, NR_RX);
	vh_notify(x->h, VSOCK_RXQ);
	pump(x);
	gsend(x, VSOCK_OP_RW, 1, 2, "x", 1, 0); /* owes an RST */
	assert_int_equal(counter(x, "bad_rx_buffers"), 1);
	assert_int_equal(vh_used_len(x->h, VSOCK_RXQ, x->rx_seen, QSIZE), 0);
}

/* More than the credit in one burst: the connection is reset, the device goes on. */
static void test_credit_violation(void **state)
{
	struct fx *x = *state;
	static uint8_t chunk[VSOCK_MAX_PKT_LEN];
	struct vsock_hdr h;
	uint32_t hp;
	struct pkt p;
	int fd = host_open(x, 20, &hp);

	h = mkhdr(x, VSOCK_OP_RW, 20, hp, VSOCK_MAX_PKT_LEN, 0);
	for (unsigned i = 0; i < VSOCK_CONN_BUF_SIZE / VSOCK_MAX_PKT_LEN; i++)
		send_raw(x, &h, chunk, VSOCK_MAX_PKT_LEN, false);
	h.len = 1;
	send_raw(x, &h, chunk, 1, false);
	vh_notify(x->h, VSOCK_TXQ);
	pump(x);
	assert_int_equal(counter(x, "credit_violations"), 1);
	assert_int_equal(counter(x, "connections_active"), 0);
	do
		expect_pkt(x, VSOCK_OP_RST, &p);
	while (p.h.op != VSOCK_OP_RST);
	close(fd);
}

/* The host does not read one connection: the guest runs out of credit on it, another
 * connection carries on, and the stalled one resumes, in order, when the host reads. */
static void test_slow_host_reader(void **state)
{
	struct fx *x = *state;
	static uint8_t out[2 * VSOCK_CONN_BUF_SIZE + 4 * VSOCK_MAX_PKT_LEN], in[sizeof(out)];
	uint32_t hp_a, hp_b, sent = 0, credit_seen = 0, got = 0;
	int a = host_open(x, 30, &hp_a), b = host_open(x, 31, &hp_b);
	struct pkt p;
	char buf[4];

	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7 + i / 251);
	/* send as the credit allows: buf_alloc minus what the device has not forwarded */
	for (;;) {
		uint32_t credit = VSOCK_CONN_BUF_SIZE - (sent - credit_seen);
		uint32_t n = MIN(MIN(credit, VSOCK_MAX_PKT_LEN), (uint32_t)sizeof(out) - sent);

		while (grecv(x, &p)) {
			if (p.h.dst_port == 30)
				credit_seen = p.h.fwd_cnt;
		}
		if (!n)
			break;
		gsend(x, VSOCK_OP_RW, 30, hp_a, out + sent, n, 0);
		sent += n;
	}
	assert_true(sent < sizeof(out)); /* stalled: the host socket and the buffer are full */
	assert_int_equal(counter(x, "credit_violations"), 0);
	/* b is not held up */
	gsend(x, VSOCK_OP_RW, 31, hp_b, "b-ok", 4, 0);
	host_read(b, buf, 4);
	assert_memory_equal(buf, "b-ok", 4);
	/* the host reads a: the rest flows, in order */
	while (got < sizeof(out)) {
		ssize_t n = recv(a, in + got, sizeof(out) - got, MSG_DONTWAIT);

		if (n > 0)
			got += (uint32_t)n;
		pump(x);
		while (grecv(x, &p)) {
			if (p.h.dst_port == 30)
				credit_seen = p.h.fwd_cnt;
		}
		for (;;) {
			uint32_t credit = VSOCK_CONN_BUF_SIZE - (sent - credit_seen);
			uint32_t m =
				MIN(MIN(credit, VSOCK_MAX_PKT_LEN), (uint32_t)sizeof(out) - sent);

			if (!m)
				break;
			gsend(x, VSOCK_OP_RW, 30, hp_a, out + sent, m, 0);
			sent += m;
		}
	}
	assert_memory_equal(in, out, sizeof(out));
	assert_int_equal(counter(x, "credit_violations"), 0);
	close(a);
	close(b);
}

/* The guest gives little credit: the device sends that much, asks for more, and reads no
 * more from the host socket meanwhile; another connection is not held up. */
static void test_slow_guest_reader(void **state)
{
	struct fx *x = *state;
	static uint8_t data[5000];
	uint32_t hp_a, hp_b, got = 0;
	int a, b;
	struct pkt p;

	x->guest_buf_alloc = 1000;
	a = host_open(x, 40, &hp_a);
	x->guest_buf_alloc = GUEST_BUF;
	b = host_open(x, 41, &hp_b);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	assert_int_equal(write(a, data, sizeof(data)), (ssize_t)sizeof(data));
	pump(x);
	expect_pkt(x, VSOCK_OP_RW, &p);
	assert_int_equal(p.h.len, 1000);
	assert_memory_equal(p.data, data, 1000);
	got = 1000;
	expect_pkt(x, VSOCK_OP_CREDIT_REQUEST, &p);
	expect_none(x);
	/* b flows meanwhile */
	assert_int_equal(write(b, "bb", 2), 2);
	pump(x);
	expect_pkt(x, VSOCK_OP_RW, &p);
	assert_int_equal(p.h.dst_port, 41);
	/* the guest consumed: credit update, more comes */
	while (got < sizeof(data)) {
		x->guest_buf_alloc = 1000;
		x->guest_fwd_cnt = got;
		gsend(x, VSOCK_OP_CREDIT_UPDATE, 40, hp_a, NULL, 0, 0);
		while (grecv(x, &p)) {
			if (p.h.op != VSOCK_OP_RW)
				continue;
			assert_true(p.h.len <= 1000);
			assert_memory_equal(p.data, data + got, p.h.len);
			got += p.h.len;
		}
	}
	x->guest_fwd_cnt = 0;
	/* a guest claiming it consumed bytes never sent only stalls itself */
	x->guest_buf_alloc = 1000;
	x->guest_fwd_cnt = got + 123456;
	gsend(x, VSOCK_OP_CREDIT_UPDATE, 40, hp_a, NULL, 0, 0);
	assert_int_equal(write(a, "zz", 2), 2);
	pump(x);
	while (grecv(x, &p))
		assert_int_not_equal(p.h.op, VSOCK_OP_RW);
	close(a);
	close(b);
}

static void test_credit_request_answered(void **state)
{
	struct fx *x = *state;
	uint32_t hp;
	struct pkt p;
	int fd = host_open(x, 50, &hp);

	gsend(x, VSOCK_OP_CREDIT_REQUEST, 50, hp, NULL, 0, 0);
	expect_pkt(x, VSOCK_OP_CREDIT_UPDATE, &p);
	assert_int_equal(p.h.buf_alloc, VSOCK_CONN_BUF_SIZE);
	assert_int_equal(p.h.fwd_cnt, 0);
	close(fd);
}

static void test_no_rx_buffers(void **state)
{
	struct fx *x = *state;
	unsigned rsts = 0;
	struct pkt p;

	/* the guest posts no more: RSTs wait, bounded, and go out when buffers come */
	x->no_repost = true;
	for (unsigned i = 0; i < NR_RX + VSOCK_MAX_PENDING_RST + 2; i++)
		gsend(x, VSOCK_OP_RW, 1000 + i, 2, "x", 1, 0);
	assert_int_equal(counter(x, "rst_dropped"), 2);
	x->no_repost = false;
	while (grecv(x, &p)) {
		assert_int_equal(p.h.op, VSOCK_OP_RST);
		rsts++;
	}
	assert_int_equal(rsts, NR_RX + VSOCK_MAX_PENDING_RST);
	assert_int_equal(counter(x, "rst_sent"), rsts);
}

static void test_connection_limit(void **state)
{
	struct fx *x = *state;
	int fds[VSOCK_MAX_CONNS + 1];

	for (unsigned i = 0; i < ARRAY_SIZE(fds); i++) {
		fds[i] = host_connect(x->path);
		pump(x); /* the listen backlog is shorter than the table */
	}
	assert_int_equal(counter(x, "connections_active"), VSOCK_MAX_CONNS);
	assert_int_equal(counter(x, "connections_refused"), 1);
	assert_true(host_eof(fds[VSOCK_MAX_CONNS]));
	for (unsigned i = 0; i < ARRAY_SIZE(fds); i++)
		close(fds[i]);
	pump(x);
	assert_int_equal(counter(x, "connections_active"), 0);
}

static void test_device_reset(void **state)
{
	struct fx *x = *state;
	uint32_t hp;
	int fd = host_open(x, 60, &hp);

	vh_wr(x->h, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_true(host_eof(fd));
	assert_int_equal(counter(x, "connections_active"), 0);
	close(fd);
}

/* A guest that never answers a REQUEST, and a host client that never sends its CONNECT line,
 * are given up on after VSOCK_SETUP_TIMEOUT_NS; an open connection is not. */
static void test_setup_timeouts(void **state)
{
	struct fx *x = *state;
	uint32_t hp;
	struct pkt p;
	int open_fd = host_open(x, 81, &hp);
	int silent = host_connect(x->path), unanswered = host_connect(x->path);

	assert_int_equal(write(unanswered, "CONNECT 80\n", 11), 11);
	pump(x);
	expect_pkt(x, VSOCK_OP_REQUEST, &p);
	assert_int_equal(counter(x, "connections_active"), 3);
	vsock_expire_at(x->dev, time_now_ns()); /* not yet */
	assert_int_equal(counter(x, "connections_active"), 3);
	vsock_expire_at(x->dev, time_now_ns() + VSOCK_SETUP_TIMEOUT_NS + 1);
	pump(x);
	assert_true(host_eof(silent));
	assert_true(host_eof(unanswered));
	expect_pkt(x, VSOCK_OP_RST, &p); /* the guest hears that its late answer is moot */
	assert_int_equal(p.h.dst_port, 80);
	expect_none(x);
	assert_int_equal(counter(x, "setup_timeouts"), 2);
	assert_int_equal(counter(x, "connections_active"), 1);
	/* the open one still works */
	gsend(x, VSOCK_OP_RW, 81, hp, "ok", 2, 0);
	char buf[2];
	host_read(open_fd, buf, 2);
	close(silent);
	close(unanswered);
	close(open_fd);
}

static void test_pause_resume(void **state)
{
	struct fx *x = *state;
	uint32_t hp;
	struct pkt p;
	int fd = host_open(x, 70, &hp);

	vsock_ops.pause(x->dev);
	assert_int_equal(write(fd, "zz", 2), 2);
	pump(x);
	expect_none(x);
	vsock_ops.resume(x->dev);
	pump(x);
	expect_pkt(x, VSOCK_OP_RW, &p);
	assert_memory_equal(p.data, "zz", 2);
	close(fd);
}

/* ---- snapshot ---- */

#define EV_BUF 0x70000 /* the guest's event buffers (struct virtio_vsock_event: le32 id) */

/* Event buffer @i of @len bytes (descriptor @flags), filled with 0xff, lent to the device. */
static void post_event_desc(struct fx *x, unsigned i, uint32_t len, uint16_t flags)
{
	memset(x->h->ram + EV_BUF + 8ULL * i, 0xff, 8);
	vh_desc(x->h, VSOCK_EVQ, i, EV_BUF + 8ULL * i, len, flags, 0);
	vh_avail(x->h, VSOCK_EVQ, QSIZE, (uint16_t)i);
	vh_notify(x->h, VSOCK_EVQ);
	pump(x);
}

static void post_event_buf(struct fx *x, unsigned i)
{
	post_event_desc(x, i, 8, VIRTQ_DESC_F_WRITE);
}

/*
 * Realizes the device from @text (edited as vh_edit does; @key NULL: as is) on a clone of the
 * machine whose --vsock is x->clone_cid on "<dir>/clone.sock" (a per-clone override). On success the
 * fixture moves to the clone (the original is destroyed, its connections with it); on failure
 * @err has the error and the fixture is unchanged.
 */
static int restore_edit(void *fx, const char *text, const char *path, const char *key, json_t *v,
			char *err, size_t errlen)
{
	struct fx *x = fx;
	struct vh *h = vh_clone(x->h, true);
	json_t *o = vs_load(text, path, key, v);
	void *dev = NULL;
	int r;

	h->cfg.vsock = calloc(1, sizeof(*h->cfg.vsock));
	assert_non_null(h->cfg.vsock);
	h->cfg.vsock->cid = x->clone_cid ? x->clone_cid : GUEST_CID;
	h->cfg.vsock->id = strdup("_vsock0");
	assert_true(asprintf(&h->cfg.vsock->socket, "%s/clone.sock", x->dir) > 0);
	err[0] = 0;
	h->ctx.err = err;
	h->ctx.errlen = errlen;
	r = vsock_ops.realize(&h->ctx, o, &dev);
	h->ctx.err = NULL;
	json_decref(o);
	if (r < 0) {
		assert_int_equal(r, -EINVAL);
		assert_true(err[0] != 0);
		vh_destroy(h);
		return r;
	}
	vsock_ops.unrealize(x->dev);
	vh_destroy(x->h);
	x->h = h;
	x->dev = dev;
	snprintf(x->path, sizeof(x->path), "%s/clone.sock", x->dir);
	vh_adopt(h, virtio_pci_function(vsock_transport(dev)));
	return 0;
}

static uint32_t event_id(struct fx *x, unsigned i)
{
	return vh_get32(x->h, EV_BUF + 8ULL * i);
}

/* A template with connections open is snapshotted: none survives, the guest is told with a
 * TRANSPORT_RESET at resume, and the clone takes new connections on its own socket. */
static void test_state_round_trip(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *s1 = NULL, *s2 = NULL, *s3 = NULL;
	uint32_t hp;
	char err[256];
	int fd;

	post_event_buf(x, 0);
	assert_int_equal(vh_used_idx(x->h, VSOCK_EVQ), 0); /* nothing to say yet */
	fd = host_open(x, 1234, &hp);
	vsock_ops.pause(x->dev);
	s1 = vs_save(vsock_ops.save, x->dev);
	s2 = vs_save(vsock_ops.save, x->dev);
	assert_string_equal(s1, s2);

	assert_int_equal(restore_edit(x, s1, "", NULL, NULL, err, sizeof(err)), 0);
	s3 = vs_save(vsock_ops.save, x->dev);
	assert_string_equal(s1, s3);
	assert_int_equal(counter(x, "connections_active"), 0);
	assert_true(host_eof(fd)); /* the template's connection went with it */
	close(fd);
	pump(x);
	assert_int_equal(vh_used_idx(x->h, VSOCK_EVQ), 0); /* quiesced until resume */

	vsock_ops.resume(x->dev);
	pump(x);
	assert_int_equal(vh_used_idx(x->h, VSOCK_EVQ), 1);
	assert_int_equal(vh_used_len(x->h, VSOCK_EVQ, 0, QSIZE), 4);
	assert_int_equal(event_id(x, 0), 0); /* VIRTIO_VSOCK_EVENT_TRANSPORT_RESET */
	/* once */
	post_event_buf(x, 1);
	assert_int_equal(vh_used_idx(x->h, VSOCK_EVQ), 1);
	/* the clone works */
	fd = host_open(x, 1235, &hp);
	gsend(x, VSOCK_OP_RW, 1235, hp, "hi", 2, 0);
	{
		char buf[2];

		host_read(fd, buf, 2);
		assert_memory_equal(buf, "hi", 2);
	}
	close(fd);
}

/* No event buffer at resume: the reset waits for the first one; another CID (a per-clone
 * override) is what the guest reads again. */
static void test_state_reset_waits_for_buffer(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *s1 = NULL;
	char err[256];

	vsock_ops.pause(x->dev);
	s1 = vs_save(vsock_ops.save, x->dev);
	x->clone_cid = GUEST_CID + 1;
	assert_int_equal(restore_edit(x, s1, "", NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF, 4), GUEST_CID + 1);
	vsock_ops.resume(x->dev);
	pump(x);
	assert_int_equal(vh_used_idx(x->h, VSOCK_EVQ), 0);
	post_event_buf(x, 0);
	assert_int_equal(vh_used_idx(x->h, VSOCK_EVQ), 1);
	assert_int_equal(event_id(x, 0), 0);
}

/* The snapshot and restore of @x, resumed: the restored device owes the driver a reset. */
static void restore_and_resume(struct fx *x)
{
	_cleanup_free_ char *s = NULL;
	char err[256];

	vsock_ops.pause(x->dev);
	s = vs_save(vsock_ops.save, x->dev);
	assert_int_equal(restore_edit(x, s, "", NULL, NULL, err, sizeof(err)), 0);
	vsock_ops.resume(x->dev);
	pump(x);
}

/* The driver's event buffer is not writable, or too short for the event (2 bytes): the reset
 * is written where it fits and nowhere else, and the device goes on. */
static void test_state_reset_odd_event_buf(void **state)
{
	struct fx *x = *state;

	post_event_desc(x, 0, 8, 0); /* read-only */
	restore_and_resume(x);
	assert_int_equal(vh_used_idx(x->h, VSOCK_EVQ), 1);
	assert_int_equal(vh_used_len(x->h, VSOCK_EVQ, 0, QSIZE), 0);
	assert_int_equal(vh_get32(x->h, EV_BUF), 0xffffffff);

	post_event_desc(x, 1, 2, VIRTQ_DESC_F_WRITE);
	restore_and_resume(x);
	assert_int_equal(vh_used_idx(x->h, VSOCK_EVQ), 2);
	assert_int_equal(vh_used_len(x->h, VSOCK_EVQ, 1, QSIZE), 2);
	assert_int_equal(vh_get16(x->h, EV_BUF + 8), 0);
	assert_int_equal(vh_get16(x->h, EV_BUF + 10), 0xffff);
	assert_int_equal(virtio_pci_status(vsock_transport(x->dev)) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

/* A driver that was not running has no connection to drop: no event. */
static void test_state_no_reset_before_driver(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *s1 = NULL;
	char err[256];

	post_event_buf(x, 0);
	vh_wr(x->h, VIRTIO_PCI_COMMON_STATUS, 0, 1); /* the driver resets the device */
	vsock_ops.pause(x->dev);
	s1 = vs_save(vsock_ops.save, x->dev);
	assert_int_equal(restore_edit(x, s1, "", NULL, NULL, err, sizeof(err)), 0);
	vsock_ops.resume(x->dev);
	pump(x);
	assert_int_equal(vh_used_idx(x->h, VSOCK_EVQ), 0);
}

static void test_state_refused(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *saved = NULL;
	char err[256];
	void *dev = (void *)1;
	json_t *o;

	vsock_ops.pause(x->dev);
	saved = vs_save(vsock_ops.save, x->dev);
	vs_expect_refused(restore_edit, x, saved, "device", "guest_cid", json_string("0x2"),
			  "'guest_cid'");
	vs_expect_refused(restore_edit, x, saved, "device", "guest_cid", json_string("0xffffffff"),
			  "'guest_cid'");
	vs_expect_refused(restore_edit, x, saved, "device", "guest_cid", json_integer(3),
			  "'guest_cid'");
	vs_expect_refused(restore_edit, x, saved, "device", "guest_cid", NULL, "'guest_cid'");
	vs_expect_refused(restore_edit, x, saved, "", "device", json_array(), "'device'");
	vs_expect_refused(restore_edit, x, saved, "", "status", json_integer(0x104), "'status'");
	vs_expect_refused(restore_edit, x, saved, "", "queues", json_array(), "'queues'");
	/* a vsock in the snapshot, none in the config */
	o = json_loads(saved, 0, NULL);
	x->h->ctx.err = err;
	x->h->ctx.errlen = sizeof(err);
	assert_int_equal(vsock_ops.realize(&x->h->ctx, o, &dev), -EINVAL);
	assert_null(dev);
	assert_non_null(strstr(err, "--vsock"));
	x->h->ctx.err = NULL;
	json_decref(o);
}

/* One byte of the saved state changed at a time: loaded or refused, never a crash. */
static void test_state_damaged(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *saved = NULL;

	vsock_ops.pause(x->dev);
	saved = vs_save(vsock_ops.save, x->dev);
	assert_true(vs_damage(restore_edit, x, saved) > 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_config_space),
		T(test_host_to_guest),
		T(test_guest_half_close),
		T(test_guest_rst),
		T(test_guest_refuses),
		T(test_bad_connect_line),
		T(test_connect_line_then_data),
		T(test_guest_to_host),
		T(test_no_host_listener),
		T(test_unknown_connection),
		T(test_malformed),
		T(test_odd_buffers),
		T(test_credit_violation),
		T(test_slow_host_reader),
		T(test_slow_guest_reader),
		T(test_credit_request_answered),
		T(test_no_rx_buffers),
		T(test_connection_limit),
		T(test_device_reset),
		T(test_pause_resume),
		T(test_setup_timeouts),
		T(test_state_round_trip),
		T(test_state_reset_waits_for_buffer),
		T(test_state_reset_odd_event_buf),
		T(test_state_no_reset_before_driver),
		T(test_state_refused),
		T(test_state_damaged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
