/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-net (src/devices/virtio/net.c, net_rxtx.c) against fake guest memory, with a
 * SOCK_SEQPACKET socket pair standing in for the TAP queue (one frame per message): the vnet
 * header both ways, mergeable receive buffers, receive backpressure and kick suppression,
 * transmit EAGAIN, rate limits both ways, the control queue, and every bad frame the device
 * must drop and count.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/net.h"
#include "util/util.h"
#include "virtio_harness.h"
#include "vdev_state_harness.h"

#define QSIZE	 16
#define RXQ	 0
#define TXQ	 1
#define TX_BUF	 0x40000
#define RX_BUF	 0x60000
#define CTRL_BUF 0x90000
#define HDR	 TAP_VNET_HDR_LEN

#define F(b) (1ULL << (b))

struct fx {
	struct vh *h;
	void *dev;
	int sp[2];  /* sp[0]: the device's "TAP"; sp[1]: the host side */
	int sp2[2]; /* pair 1's */
	struct net_config cfg;
	uint16_t ctrl_next;
	unsigned ctrlq; /* 2 * pairs */
};

static void fx_start_cfg(struct fx *x, uint64_t features, unsigned pairs, bool keep_cfg)
{
	int fds[2];

	if (!keep_cfg)
		net_config_init(&x->cfg);
	x->cfg.queue_size = QSIZE;
	x->cfg.mac = strdup("52:54:00:12:34:56");
	x->cfg.mtu = 1500;
	x->cfg.num_queues = (uint16_t)(2 * pairs);
	x->cfg.id = strdup("_net0");
	x->ctrlq = 2 * pairs;
	fds[0] = x->sp[0];
	fds[1] = x->sp2[0];
	assert_int_equal(net_create_with_fds(&x->h->ctx, &x->cfg, fds, pairs, &x->dev), 0);
	vh_attach(x->h, virtio_pci_function(net_transport(x->dev)), 2 * pairs + 2);
	assert_true(vh_negotiate(x->h, VH_VERSION_1 | features) & VIRTIO_STATUS_FEATURES_OK);
	for (unsigned q = 0; q < 2 * pairs + 1; q++)
		vh_setup_queue(x->h, q, QSIZE);
	vh_driver_ok(x->h);
}

static void fx_start(struct fx *x, uint64_t features, unsigned pairs)
{
	fx_start_cfg(x, features, pairs, false);
}

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	x->h = vh_create(true);
	assert_int_equal(
		socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, x->sp), 0);
	assert_int_equal(
		socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, x->sp2), 0);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;

	net_destroy(x->dev);
	net_config_free(&x->cfg);
	close(x->sp[0]);
	close(x->sp[1]);
	close(x->sp2[0]);
	close(x->sp2[1]);
	vh_destroy(x->h);
	free(x);
	return 0;
}

static struct virtio_pci *vp(struct fx *x)
{
	return net_transport(x->dev);
}

static uint32_t events_of(struct fx *x)
{
	struct vh_fd *f = vh_find_fd(x->h, x->sp[0]);

	assert_non_null(f);
	return f->events;
}

static struct net_counters counters(struct fx *x)
{
	struct net_counters c;

	net_get_counters(x->dev, &c);
	return c;
}

/* Puts a frame on TX as [header][payload] in two descriptors (@i, @i+1). */
static void tx_frame(struct fx *x, unsigned i, const uint8_t *hdr, size_t len, uint8_t seed)
{
	uint64_t h = TX_BUF + 0x2000ULL * i, d = h + 0x100;

	memcpy(x->h->ram + h, hdr, HDR);
	for (size_t b = 0; b < len; b++)
		x->h->ram[d + b] = (uint8_t)(seed + b * 3);
	vh_desc(x->h, TXQ, i, h, HDR, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1));
	vh_desc(x->h, TXQ, i + 1, d, (uint32_t)len, 0, 0);
	vh_avail(x->h, TXQ, QSIZE, (uint16_t)i);
}

static void kick(struct fx *x, unsigned q)
{
	vh_notify(x->h, q);
	virtio_pci_run_notify(vp(x), q);
}

static void test_config_space(void **state)
{
	struct fx *x = *state;
	uint64_t f;

	fx_start(x, 0, 1);
	vh_wr(x->h, VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
	f = vh_rd(x->h, VIRTIO_PCI_COMMON_DF, 4);
	assert_true(f & F(VIRTIO_NET_F_MAC));
	assert_true(f & F(VIRTIO_NET_F_MRG_RXBUF));
	assert_true(f & F(VIRTIO_NET_F_CTRL_VQ));
	assert_true(f & F(VIRTIO_NET_F_MTU));
	assert_true(f & F(VIRTIO_NET_F_HOST_TSO4));
	assert_false(f & F(VIRTIO_NET_F_MQ)); /* one pair */
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_COMMON_NUMQ, 2), 3);
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF, 1), 0x52);
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF + 5, 1), 0x56);
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF + 6, 2), NET_S_LINK_UP);
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF + 8, 2), 1);
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF + 10, 2), 1500);
}

static void test_tx_frames(void **state)
{
	struct fx *x = *state;
	uint8_t hdr[HDR] = { 0 }, got[4096];
	ssize_t n;

	fx_start(x, F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4), 1);
	tx_frame(x, 0, hdr, 60, 1);
	hdr[0] = NET_HDR_F_NEEDS_CSUM;
	hdr[1] = NET_HDR_GSO_TCPV4;
	hdr[NET_HDR_GSO_SIZE] = 0xb4;
	hdr[NET_HDR_GSO_SIZE + 1] = 0x05;
	tx_frame(x, 2, hdr, 3000, 2);
	kick(x, TXQ);
	assert_int_equal(vh_used_idx(x->h, TXQ), 2);
	/* kicks were off while the device worked, and are on again now that the ring is empty */
	assert_int_equal(vh_get16(x->h, VH_USED + TXQ * VH_RING_STEP), 0);
	n = read(x->sp[1], got, sizeof(got));
	assert_int_equal(n, HDR + 60);
	assert_int_equal(got[0], 0);
	assert_memory_equal(got + HDR, x->h->ram + TX_BUF + 0x100, 60);
	n = read(x->sp[1], got, sizeof(got));
	assert_int_equal(n, HDR + 3000);
	assert_memory_equal(got, hdr, HDR);
	assert_memory_equal(got + HDR, x->h->ram + TX_BUF + 0x4000 + 0x100, 3000);
	assert_int_equal(counters(x).tx_frames, 2);
	assert_int_equal(counters(x).tx_bytes, 3060);
	assert_int_equal(counters(x).tx_dropped, 0);
}

/* Every bad chain is completed unsent and counted; a good frame after them still goes. */
static void test_tx_bad_frames(void **state)
{
	struct fx *x = *state;
	uint8_t hdr[HDR] = { 0 }, got[256];
	unsigned d = 0, bad = 0;

	fx_start(x, 0, 1); /* no CSUM, no HOST_TSO */
	/* shorter than the vnet header */
	vh_desc(x->h, TXQ, d, TX_BUF, HDR - 1, 0, 0);
	vh_avail(x->h, TXQ, QSIZE, (uint16_t)d++);
	bad++;
	/* a header and no Ethernet header */
	vh_desc(x->h, TXQ, d, TX_BUF, HDR + 10, 0, 0);
	vh_avail(x->h, TXQ, QSIZE, (uint16_t)d++);
	bad++;
	/* a writable descriptor in a transmit chain */
	vh_desc(x->h, TXQ, d, TX_BUF, HDR + 60, VIRTQ_DESC_F_NEXT, (uint16_t)(d + 1));
	vh_desc(x->h, TXQ, d + 1, TX_BUF + 0x1000, 64, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(x->h, TXQ, QSIZE, (uint16_t)d);
	d += 2;
	bad++;
	/* larger than any frame */
	vh_desc(x->h, TXQ, d, TX_BUF, HDR + NET_MAX_FRAME + 1, 0, 0);
	vh_avail(x->h, TXQ, QSIZE, (uint16_t)d++);
	bad++;
	kick(x, TXQ);
	assert_int_equal(vh_used_idx(x->h, TXQ), bad);
	d = 0; /* every descriptor is the driver's again */
	/* offloads that were not negotiated, unknown flags, gso without a size */
	static const uint8_t bad_hdrs[][2] = {
		{ NET_HDR_F_NEEDS_CSUM, 0 },
		{ 0, NET_HDR_GSO_TCPV4 },
		{ 0, NET_HDR_GSO_TCPV6 },
		{ 0, 3 /* UDP */ },
		{ 0x80, 0 },
		{ 0, NET_HDR_GSO_ECN },
	};
	for (unsigned i = 0; i < ARRAY_SIZE(bad_hdrs); i++) {
		hdr[0] = bad_hdrs[i][0];
		hdr[1] = bad_hdrs[i][1];
		tx_frame(x, d, hdr, 60, 0);
		bad++;
		kick(x, TXQ);
	}
	memset(hdr, 0, sizeof(hdr));
	tx_frame(x, d, hdr, 60, 9);
	kick(x, TXQ);
	assert_int_equal(counters(x).tx_dropped, bad);
	assert_int_equal(counters(x).tx_frames, 1);
	assert_int_equal(vh_used_idx(x->h, TXQ), bad + 1);
	assert_int_equal(read(x->sp[1], got, sizeof(got)), HDR + 60);
	assert_int_equal(got[HDR], 9);
	assert_int_equal(read(x->sp[1], got, sizeof(got)), -1); /* nothing else was sent */
	assert_int_equal(virtio_pci_status(vp(x)) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

/* A full TAP: the chain is kept, EPOLLOUT asked for, and nothing is lost or reordered. */
static void test_tx_eagain(void **state)
{
	struct fx *x = *state;
	uint8_t hdr[HDR] = { 0 }, got[2048];
	int small = 4096;
	unsigned sent = 0, recvd = 0, rounds = 0;

	assert_int_equal(setsockopt(x->sp[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	fx_start(x, 0, 1);
	for (unsigned i = 0; i < QSIZE / 2; i++) {
		tx_frame(x, 2 * i, hdr, 1500, (uint8_t)i);
		sent++;
	}
	kick(x, TXQ);
	assert_true(vh_used_idx(x->h, TXQ) < sent);
	assert_true(events_of(x) & EPOLLOUT);
	/* waiting for EPOLLOUT: no kicks wanted meanwhile */
	assert_int_equal(vh_get16(x->h, VH_USED + TXQ * VH_RING_STEP), VIRTQ_USED_F_NO_NOTIFY);
	while (recvd < sent) {
		ssize_t n = read(x->sp[1], got, sizeof(got));

		if (n > 0) {
			assert_int_equal(n, HDR + 1500);
			assert_int_equal(got[HDR], (uint8_t)recvd);
			recvd++;
		} else if (events_of(x) & EPOLLOUT) {
			vh_fire(x->h, x->sp[0], EPOLLOUT);
		}
		assert_true(++rounds < 1000);
	}
	assert_int_equal(vh_used_idx(x->h, TXQ), sent);
	assert_int_equal(counters(x).tx_dropped, 0);
	assert_false(events_of(x) & EPOLLOUT);
}

static void rx_buffer(struct fx *x, unsigned i, uint32_t len)
{
	vh_desc(x->h, RXQ, i, RX_BUF + 0x2000ULL * i, len, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(x->h, RXQ, QSIZE, (uint16_t)i);
}

static void host_send(struct fx *x, size_t len, uint8_t seed, uint8_t *copy)
{
	uint8_t f[HDR + 4096] = { 0 };

	assert_true(len <= 4096);
	f[0] = NET_HDR_F_DATA_VALID;
	f[NET_HDR_NUM_BUFFERS] = 0x77; /* the TAP leaves it: the device must set it */
	for (size_t b = 0; b < len; b++)
		f[HDR + b] = (uint8_t)(seed ^ b);
	if (copy)
		memcpy(copy, f, HDR + len);
	assert_int_equal(write(x->sp[1], f, HDR + len), (ssize_t)(HDR + len));
}

/* Starts one pair with @features and gives the device @n receive buffers of 1600 bytes. */
static void rx_start(struct fx *x, uint64_t features, unsigned n)
{
	fx_start(x, features, 1);
	for (unsigned i = 0; i < n; i++)
		rx_buffer(x, i, 1600);
	kick(x, RXQ);
}

static void test_rx_single_buffers(void **state)
{
	struct fx *x = *state;
	uint8_t want[HDR + 4096];

	rx_start(x, 0, 2);
	host_send(x, 100, 5, want);
	vh_fire(x->h, x->sp[0], EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 1);
	assert_int_equal(vh_used_len(x->h, RXQ, 0, QSIZE), HDR + 100);
	want[NET_HDR_NUM_BUFFERS] = 1;
	assert_memory_equal(x->h->ram + RX_BUF, want, HDR + 100);

	/* Too big for a non-mergeable buffer: dropped, counted, the buffer kept for the next. */
	host_send(x, 2000, 6, NULL);
	host_send(x, 50, 7, want);
	vh_fire(x->h, x->sp[0], EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 2);
	assert_int_equal(vh_used_len(x->h, RXQ, 1, QSIZE), HDR + 50);
	assert_memory_equal(x->h->ram + RX_BUF + 0x2000 + HDR, want + HDR, 50);
	assert_int_equal(counters(x).rx_dropped, 1);
	assert_int_equal(counters(x).rx_frames, 2);
	assert_int_equal(counters(x).rx_bytes, 150);
}

/* No buffer: the frame waits in the host, the TAP is not read, nothing is dropped. */
static void test_rx_backpressure(void **state)
{
	struct fx *x = *state;
	uint8_t want[3][HDR + 4096];

	fx_start(x, 0, 1);
	kick(x, RXQ);
	for (unsigned i = 0; i < 3; i++)
		host_send(x, 200 + i, (uint8_t)i, want[i]);
	vh_fire(x->h, x->sp[0], EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 0);
	assert_false(events_of(x) & EPOLLIN); /* starved: the loop stops reading */
	for (unsigned i = 0; i < 3; i++) {
		rx_buffer(x, i, 1600);
		kick(x, RXQ); /* the notify alone delivers and re-arms */
		assert_int_equal(vh_used_idx(x->h, RXQ), i + 1);
		want[i][NET_HDR_NUM_BUFFERS] = 1;
		assert_memory_equal(x->h->ram + RX_BUF + 0x2000ULL * i, want[i], HDR + 200 + i);
	}
	assert_int_equal(counters(x).rx_dropped, 0);
	assert_int_equal(counters(x).rx_frames, 3);
}

/* MRG_RXBUF: a frame over several small buffers, num_buffers in the first, all at once. */
static void test_rx_mergeable(void **state)
{
	struct fx *x = *state;
	uint8_t want[HDR + 4096];
	size_t len = 2500, off = 0;

	fx_start(x, F(VIRTIO_NET_F_MRG_RXBUF), 1);
	rx_buffer(x, 0, 1024);
	rx_buffer(x, 1, 1024);
	kick(x, RXQ);
	host_send(x, len, 3, want);
	vh_fire(x->h, x->sp[0], EPOLLIN);
	/* Two buffers are not enough: none is published yet, the frame waits. */
	assert_int_equal(vh_used_idx(x->h, RXQ), 0);
	rx_buffer(x, 2, 1024);
	kick(x, RXQ);
	assert_int_equal(vh_used_idx(x->h, RXQ), 3);
	want[NET_HDR_NUM_BUFFERS] = 3;
	for (unsigned i = 0; i < 3; i++) {
		uint32_t l = vh_used_len(x->h, RXQ, i, QSIZE);

		assert_int_equal(l, MIN(1024, HDR + len - off));
		assert_memory_equal(x->h->ram + RX_BUF + 0x2000ULL * i, want + off, l);
		off += l;
	}
	assert_int_equal(off, HDR + len);
	assert_int_equal(counters(x).rx_frames, 1);
}

/* Receive buffers the driver got wrong: readable, or too small for the header. */
static void test_rx_bad_buffers(void **state)
{
	struct fx *x = *state;

	fx_start(x, 0, 1);
	vh_desc(x->h, RXQ, 0, RX_BUF, 1600, 0, 0); /* readable */
	vh_avail(x->h, RXQ, QSIZE, 0);
	rx_buffer(x, 1, HDR - 2);
	rx_buffer(x, 2, 1600);
	kick(x, RXQ);
	host_send(x, 64, 1, NULL);
	vh_fire(x->h, x->sp[0], EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 3);
	assert_int_equal(vh_used_len(x->h, RXQ, 0, QSIZE), 0);
	assert_int_equal(vh_used_len(x->h, RXQ, 1, QSIZE), 0);
	assert_int_equal(vh_used_len(x->h, RXQ, 2, QSIZE), HDR + 64);
	assert_int_equal(counters(x).rx_frames, 1);
	assert_int_equal(counters(x).rx_bad_buffers, 2);
	assert_int_equal(counters(x).rx_dropped, 0); /* no frame was lost */
	assert_int_equal(virtio_pci_status(vp(x)) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

/* MRG_RXBUF with a bad buffer after the first part of a frame: the frame is cut there (its
 * buffers published, dropped and counted), the bad one returned, and the next frame goes. */
static void test_rx_mergeable_bad_buffer(void **state)
{
	struct fx *x = *state;

	fx_start(x, F(VIRTIO_NET_F_MRG_RXBUF), 1);
	rx_buffer(x, 0, 1024);
	vh_desc(x->h, RXQ, 1, RX_BUF + 0x2000, 1024, 0, 0); /* readable */
	vh_avail(x->h, RXQ, QSIZE, 1);
	rx_buffer(x, 2, 1600);
	kick(x, RXQ);
	host_send(x, 2500, 3, NULL);
	host_send(x, 100, 4, NULL);
	vh_fire(x->h, x->sp[0], EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 3);
	assert_int_equal(vh_used_len(x->h, RXQ, 0, QSIZE), 1024);
	assert_int_equal(vh_used_len(x->h, RXQ, 1, QSIZE), 0);
	assert_int_equal(vh_used_len(x->h, RXQ, 2, QSIZE), HDR + 100);
	assert_int_equal(counters(x).rx_dropped, 1);
	assert_int_equal(counters(x).rx_bad_buffers, 1);
	assert_int_equal(counters(x).rx_frames, 1);
}

static uint16_t rx_used_flags(struct fx *x)
{
	return vh_get16(x->h, VH_USED + (uint64_t)RXQ * VH_RING_STEP);
}

/* The driver's receive kicks are asked for only when the device has run out of buffers. */
static void test_rx_kicks_when_starved(void **state)
{
	struct fx *x = *state;

	rx_start(x, 0, 2);
	host_send(x, 100, 1, NULL);
	vh_fire(x->h, x->sp[0], EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 1);
	assert_int_equal(rx_used_flags(x), VIRTQ_USED_F_NO_NOTIFY); /* one buffer left */
	host_send(x, 100, 2, NULL);
	host_send(x, 100, 3, NULL);
	vh_fire(x->h, x->sp[0], EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 2);
	assert_int_equal(rx_used_flags(x), 0); /* starved: kicks on */
	assert_false(events_of(x) & EPOLLIN);
	rx_buffer(x, 2, 1600);
	kick(x, RXQ);
	assert_int_equal(vh_used_idx(x->h, RXQ), 3);
	assert_int_equal(counters(x).rx_frames, 3);
}

/* With EVENT_IDX: avail_event is written when the device runs dry, so the driver's next
 * buffer brings a kick, and not while the device has buffers. */
static void test_rx_kicks_event_idx(void **state)
{
	struct fx *x = *state;
	uint64_t avail_event = VH_USED + (uint64_t)RXQ * VH_RING_STEP + 4 + 8ULL * QSIZE;

	rx_start(x, F(VIRTIO_F_EVENT_IDX), 3);
	vh_put16(x->h, avail_event, 0xdead);
	host_send(x, 100, 1, NULL);
	vh_fire(x->h, x->sp[0], EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 1);
	assert_int_equal(vh_get16(x->h, avail_event), 0xdead); /* buffers left: no kick wanted */
	for (unsigned i = 0; i < 3; i++)
		host_send(x, 100, (uint8_t)(2 + i), NULL);
	vh_fire(x->h, x->sp[0], EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 3);
	assert_int_equal(vh_get16(x->h, avail_event), 3); /* the next buffer is kicked */
}

/* RX rate limit: frames past the bucket wait in the host (not read, not dropped) until the
 * limiter's timer, which delivers them. */
static void test_rx_rate_limit(void **state)
{
	struct fx *x = *state;
	int tfd = -1;

	net_config_init(&x->cfg);
	x->cfg.rate_limiter.ops.size = 2;
	x->cfg.rate_limiter.ops.refill_time = 40;
	fx_start_cfg(x, 0, 1, true);
	for (unsigned i = 0; i < 4; i++)
		rx_buffer(x, i, 1600);
	kick(x, RXQ);
	for (unsigned i = 0; i < 3; i++)
		host_send(x, 100, (uint8_t)i, NULL);
	vh_fire(x->h, x->sp[0], EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 2);
	assert_false(events_of(x) & EPOLLIN); /* the limiter holds the TAP */
	for (unsigned i = 0; i < VH_MAX_FDS; i++) {
		struct vh_fd *f = &x->h->fds[i];

		/* the TAP fd, then the RX limiter's timer */
		if (f->used && f->fd != x->sp[0]) {
			tfd = f->fd;
			break;
		}
	}
	assert_true(tfd >= 0);
	vh_fire(x->h, x->sp[0], EPOLLIN); /* early: nothing gets past the limiter */
	assert_int_equal(vh_used_idx(x->h, RXQ), 2);
	usleep(60 * 1000);
	vh_fire(x->h, tfd, EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 3);
	assert_int_equal(x->h->ram[RX_BUF + 0x4000 + HDR], 2);
	assert_int_equal(counters(x).rx_frames, 3);
	assert_int_equal(counters(x).rx_dropped, 0);
}

/* Sends a control command (@len bytes at CTRL_BUF) and returns the ack. */
static uint8_t ctrl(struct fx *x, const uint8_t *cmd, uint32_t len, uint32_t ack_len)
{
	unsigned d = x->ctrl_next;
	uint16_t before = vh_used_idx(x->h, x->ctrlq);

	memcpy(x->h->ram + CTRL_BUF, cmd, len);
	x->h->ram[CTRL_BUF + 0x100] = 0xee;
	vh_desc(x->h, x->ctrlq, d, CTRL_BUF, len, VIRTQ_DESC_F_NEXT, (uint16_t)(d + 1));
	vh_desc(x->h, x->ctrlq, d + 1, CTRL_BUF + 0x100, ack_len, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(x->h, x->ctrlq, QSIZE, (uint16_t)d);
	x->ctrl_next = (uint16_t)((d + 2) % QSIZE);
	kick(x, x->ctrlq);
	assert_int_equal(vh_used_idx(x->h, x->ctrlq), (uint16_t)(before + 1));
	return x->h->ram[CTRL_BUF + 0x100];
}

static void test_ctrl_queue(void **state)
{
	struct fx *x = *state;

	fx_start(x,
		 F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_MQ) |
			 F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | F(VIRTIO_NET_F_GUEST_CSUM) |
			 F(VIRTIO_NET_F_GUEST_TSO4),
		 2);
	assert_int_equal(net_active_pairs(x->dev), 1);
	assert_int_equal(net_tap_offloads(x->dev), TAP_OFFLOAD_CSUM | TAP_OFFLOAD_TSO4);
	assert_int_equal(ctrl(x, (uint8_t[]){ NET_CTRL_MQ, 0, 2, 0 }, 4, 1), NET_CTRL_OK);
	assert_int_equal(net_active_pairs(x->dev), 2);
	assert_int_equal(ctrl(x, (uint8_t[]){ NET_CTRL_MQ, 0, 3, 0 }, 4, 1), NET_CTRL_ERR);
	assert_int_equal(ctrl(x, (uint8_t[]){ NET_CTRL_MQ, 0, 0, 0 }, 4, 1), NET_CTRL_ERR);
	assert_int_equal(ctrl(x, (uint8_t[]){ NET_CTRL_MQ, 0, 1 }, 3, 1), NET_CTRL_ERR); /* short */
	assert_int_equal(net_active_pairs(x->dev), 2);
	assert_int_equal(ctrl(x, (uint8_t[]){ NET_CTRL_MQ, 0, 1, 0 }, 4, 1), NET_CTRL_OK);
	assert_int_equal(net_active_pairs(x->dev), 1);
	/* guest offloads: off, then only what was negotiated */
	assert_int_equal(ctrl(x, (uint8_t[]){ 5, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, 10, 1), NET_CTRL_OK);
	assert_int_equal(net_tap_offloads(x->dev), 0);
	assert_int_equal(ctrl(x, (uint8_t[]){ 5, 0, 0x82, 0, 0, 0, 0, 0, 0, 0 }, 10, 1),
			 NET_CTRL_OK);
	assert_int_equal(net_tap_offloads(x->dev), TAP_OFFLOAD_CSUM | TAP_OFFLOAD_TSO4);
	assert_int_equal(ctrl(x, (uint8_t[]){ 5, 0, 0x02, 1, 0, 0, 0, 0, 0, 0 }, 10, 1),
			 NET_CTRL_ERR); /* GUEST_TSO6 was not negotiated */
	assert_int_equal(ctrl(x, (uint8_t[]){ 0, 0, 1 }, 3, 1), NET_CTRL_ERR); /* CTRL_RX */
	assert_int_equal(ctrl(x, (uint8_t[]){ 99, 1 }, 2, 1), NET_CTRL_ERR);
	assert_int_equal(ctrl(x, (uint8_t[]){ 4 }, 1, 1), NET_CTRL_ERR);
	assert_int_equal(ctrl(x, (uint8_t[]){ 4, 0, 1, 0 }, 4, 0), 0xee); /* no room for the ack */
	assert_int_equal(virtio_pci_status(vp(x)) & VIRTIO_STATUS_NEEDS_RESET, 0);
	/* A reset puts everything back. */
	vh_wr(x->h, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_int_equal(net_tap_offloads(x->dev), 0);
}

static void test_pause_resume(void **state)
{
	struct fx *x = *state;
	uint8_t want[HDR + 4096];

	fx_start(x, 0, 1);
	rx_buffer(x, 0, 1600);
	kick(x, RXQ);
	assert_true(events_of(x) & EPOLLIN);
	virtio_pci_pause(vp(x));
	host_send(x, 70, 1, want);
	vh_fire(x->h, x->sp[0], EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 0); /* paused: nothing reaches the guest */
	virtio_pci_resume(vp(x));
	kick(x, RXQ);
	assert_int_equal(vh_used_idx(x->h, RXQ), 1);
}

/* ops bucket of 2 frames per 40 ms: the third frame waits for the limiter's timer, then goes. */
static void test_tx_rate_limit(void **state)
{
	struct fx *x = *state;
	uint8_t hdr[HDR] = { 0 }, got[256];
	int tfd = -1;
	unsigned seen = 0;

	net_config_init(&x->cfg);
	x->cfg.rate_limiter.ops.size = 2;
	x->cfg.rate_limiter.ops.refill_time = 40;
	fx_start_cfg(x, 0, 1, true);
	for (unsigned i = 0; i < 3; i++)
		tx_frame(x, 2 * i, hdr, 60, (uint8_t)i);
	kick(x, TXQ);
	assert_int_equal(vh_used_idx(x->h, TXQ), 2);
	assert_int_equal(counters(x).tx_frames, 2);
	for (unsigned i = 0; i < VH_MAX_FDS; i++) {
		struct vh_fd *f = &x->h->fds[i];

		/* the TAP fd, the RX limiter's timer, the TX one, then the transport's eventfds */
		if (f->used && f->fd != x->sp[0] && ++seen == 2)
			tfd = f->fd;
	}
	assert_true(tfd >= 0);
	kick(x, TXQ); /* a kick does not get past the limiter */
	assert_int_equal(vh_used_idx(x->h, TXQ), 2);
	usleep(60 * 1000);
	vh_fire(x->h, tfd, EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, TXQ), 3);
	assert_int_equal(counters(x).tx_frames, 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(read(x->sp[1], got, sizeof(got)), HDR + 60);
		assert_int_equal(got[HDR], i);
	}
}

/* ---- snapshot ---- */

/*
 * Builds a NIC from x->cfg on a clone of the machine, with TAP queues of its own (a clone's
 * TAP), and loads @text into it (edited as vh_edit does; @key NULL: as is). On success the
 * fixture moves to the clone (the original is destroyed); on failure @err has the error and
 * the fixture is unchanged.
 */
static int restore_edit(void *fx, const char *text, const char *path, const char *key, json_t *v,
			char *err, size_t errlen)
{
	struct fx *x = fx;
	struct vh *h = vh_clone(x->h, true);
	json_t *o = vs_load(text, path, key, v);
	int sp[2], sp2[2], fds[2];
	void *dev;
	int r;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp),
			 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp2),
			 0);
	fds[0] = sp[0];
	fds[1] = sp2[0];
	assert_int_equal(net_create_with_fds(&h->ctx, &x->cfg, fds, x->ctrlq / 2, &dev), 0);
	err[0] = 0;
	r = net_state_load(dev, o, err, errlen);
	json_decref(o);
	if (r < 0) {
		assert_int_equal(r, -EINVAL);
		assert_true(err[0] != 0);
		net_destroy(dev);
		vh_destroy(h);
		for (unsigned i = 0; i < 2; i++) {
			close(sp[i]);
			close(sp2[i]);
		}
		return r;
	}
	net_destroy(x->dev);
	vh_destroy(x->h);
	for (unsigned i = 0; i < 2; i++) {
		close(x->sp[i]);
		close(x->sp2[i]);
		x->sp[i] = sp[i];
		x->sp2[i] = sp2[i];
	}
	x->h = h;
	x->dev = dev;
	vh_adopt(h, virtio_pci_function(net_transport(dev)));
	return 0;
}

#define F_STATE                                                                                \
	(F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_MQ) | F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) |  \
	 F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_MRG_RXBUF) | \
	 F(VIRTIO_NET_F_CSUM))

/*
 * Offloads and queue pairs the driver set survive, with the clone's TAP set up for them; the
 * buffers a half-delivered frame held are offered again (the frame itself, the host
 * network's, is lost); the clone receives and sends.
 */
static void test_state_round_trip(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *s1 = NULL, *s2 = NULL, *s3 = NULL;
	uint8_t want[HDR + 4096], hdr[HDR] = { 0 }, got[256];
	char err[256];

	fx_start(x, F_STATE, 2);
	assert_int_equal(ctrl(x, (uint8_t[]){ NET_CTRL_MQ, 0, 2, 0 }, 4, 1), NET_CTRL_OK);
	assert_int_equal(ctrl(x, (uint8_t[]){ 5, 0, 0x02, 0, 0, 0, 0, 0, 0, 0 }, 10, 1),
			 NET_CTRL_OK); /* GUEST_CSUM only */
	rx_buffer(x, 0, 1024);
	rx_buffer(x, 1, 1024);
	kick(x, RXQ);
	host_send(x, 2500, 3, NULL);
	vh_fire(x->h, x->sp[0], EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 0); /* two buffers held, the frame waits */
	net_pause(x->dev);
	s1 = vs_save(net_state_save, x->dev);
	s2 = vs_save(net_state_save, x->dev);
	assert_string_equal(s1, s2);

	assert_int_equal(restore_edit(x, s1, "", NULL, NULL, err, sizeof(err)), 0);
	s3 = vs_save(net_state_save, x->dev);
	assert_string_equal(s1, s3);
	assert_int_equal(net_active_pairs(x->dev), 2);
	assert_int_equal(net_tap_offloads(x->dev), TAP_OFFLOAD_CSUM);
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF + 5, 1), 0x56);
	assert_false(events_of(x) & EPOLLIN);	     /* quiesced: the TAP is not read */
	assert_int_equal(counters(x).rx_dropped, 0); /* counters count from realize */

	net_resume(x->dev);
	assert_true(events_of(x) & EPOLLIN);
	host_send(x, 2500, 4, want);
	vh_fire(x->h, x->sp[0], EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 0);
	rx_buffer(x, 2, 1024);
	kick(x, RXQ);
	assert_int_equal(vh_used_idx(x->h, RXQ), 3); /* buffers 0 and 1 again, then 2 */
	want[NET_HDR_NUM_BUFFERS] = 3;
	assert_memory_equal(x->h->ram + RX_BUF, want, 1024);
	assert_int_equal(counters(x).rx_frames, 1);
	tx_frame(x, 0, hdr, 60, 9);
	kick(x, TXQ);
	assert_int_equal(vh_used_idx(x->h, TXQ), 1);
	assert_int_equal(read(x->sp[1], got, sizeof(got)), HDR + 60);
	assert_int_equal(ctrl(x, (uint8_t[]){ NET_CTRL_MQ, 0, 1, 0 }, 4, 1), NET_CTRL_OK);
	assert_int_equal(net_active_pairs(x->dev), 1);
}

/* A transmit chain waiting for the TAP (EAGAIN) is sent by the clone. */
static void test_state_tx_held(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *s1 = NULL;
	uint8_t hdr[HDR] = { 0 }, got[2048];
	int small = 4096;
	unsigned sent = 0, recvd = 0;
	uint16_t used;
	char err[256];

	assert_int_equal(setsockopt(x->sp[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	fx_start(x, 0, 1);
	for (unsigned i = 0; i < QSIZE / 2; i++, sent++)
		tx_frame(x, 2 * i, hdr, 1500, (uint8_t)i);
	kick(x, TXQ);
	used = vh_used_idx(x->h, TXQ);
	assert_true(used < sent);
	net_pause(x->dev);
	s1 = vs_save(net_state_save, x->dev);
	assert_int_equal(restore_edit(x, s1, "", NULL, NULL, err, sizeof(err)), 0);
	net_resume(x->dev);
	kick(x, TXQ);
	assert_int_equal(vh_used_idx(x->h, TXQ), sent);
	while (read(x->sp[1], got, sizeof(got)) > 0) {
		assert_int_equal(got[HDR], (uint8_t)(used + recvd));
		recvd++;
	}
	assert_int_equal(recvd, sent - used); /* from the held chain on, in order */
}

/* The MAC is the snapshot's: a clone whose config has none (it was random) gets it, one whose
 * config names another is refused. */
static void test_state_mac(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *s1 = NULL, *s2 = NULL;
	char err[256];

	fx_start(x, 0, 1);
	net_pause(x->dev);
	s1 = vs_save(net_state_save, x->dev);
	free(x->cfg.mac);
	x->cfg.mac = strdup("52:54:00:00:00:01");
	assert_int_equal(restore_edit(x, s1, "", NULL, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'mac'"));
	free(x->cfg.mac);
	x->cfg.mac = NULL;
	assert_int_equal(restore_edit(x, s1, "", NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF, 1), 0x52);
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF + 5, 1), 0x56);
	s2 = vs_save(net_state_save, x->dev);
	assert_string_equal(s1, s2);
}

static void test_state_refused(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *saved = NULL;

	fx_start(x, F_STATE, 2);
	net_pause(x->dev);
	saved = vs_save(net_state_save, x->dev);
	vs_expect_refused(restore_edit, x, saved, "device", "max_virtqueue_pairs", json_integer(1),
			  "'max_virtqueue_pairs'");
	vs_expect_refused(restore_edit, x, saved, "device", "mtu", json_integer(9000), "'mtu'");
	vs_expect_refused(restore_edit, x, saved, "device", "mtu", json_integer(70000), "'mtu'");
	vs_expect_refused(restore_edit, x, saved, "device", "status", json_integer(8), "'status'");
	vs_expect_refused(restore_edit, x, saved, "device", "guest_offloads", json_string("0x100"),
			  "'guest_offloads'"); /* GUEST_TSO6: not negotiated */
	vs_expect_refused(restore_edit, x, saved, "device", "active_pairs", json_integer(0),
			  "'active_pairs'");
	vs_expect_refused(restore_edit, x, saved, "device", "active_pairs", json_integer(3),
			  "'active_pairs'");
	vs_expect_refused(restore_edit, x, saved, "device", "mac", json_string("5254"), "'mac'");
	vs_expect_refused(restore_edit, x, saved, "device", "mac", json_string("zz5400123456"),
			  "'mac'");
	vs_expect_refused(restore_edit, x, saved, "device", "mac", NULL, "'mac'");
	vs_expect_refused(restore_edit, x, saved, "", "device", NULL, "'device'");
	vs_expect_refused(restore_edit, x, saved, "", "driver_features", json_string("0x1"),
			  "driver_features");
	vs_expect_refused(restore_edit, x, saved, "", "queues", json_array(), "'queues'");
	/* the config has one queue pair less: another device */
	x->ctrlq = 2;
	vs_expect_refused(restore_edit, x, saved, "", NULL, NULL, "queues");
	x->ctrlq = 4;
}

/* net_ops from a state with another number of NICs than the config: refused before any TAP
 * is opened. */
static void test_state_nic_count(void **state)
{
	struct fx *x = *state;
	json_t *o = json_loads("{\"nets\": [{}, {}]}", 0, NULL);
	char err[256] = "";
	void *dev = (void *)1;

	x->h->ctx.err = err;
	x->h->ctx.errlen = sizeof(err);
	assert_int_equal(net_ops.realize(&x->h->ctx, o, &dev), -EINVAL);
	assert_non_null(strstr(err, "--net: field 'nets': 2 saved, the config has 0"));
	json_object_set_new(o, "nets", json_string("x"));
	assert_int_equal(net_ops.realize(&x->h->ctx, o, &dev), -EINVAL);
	assert_non_null(strstr(err, "'nets'"));
	json_object_clear(o);
	assert_int_equal(net_ops.realize(&x->h->ctx, o, &dev), 0); /* none saved, none configured */
	assert_null(dev);
	x->h->ctx.err = NULL;
	json_decref(o);
}

/* One byte of the saved state changed at a time: loaded or refused, never a crash. */
static void test_state_damaged(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *saved = NULL;

	fx_start(x, F_STATE, 2);
	net_pause(x->dev);
	saved = vs_save(net_state_save, x->dev);
	assert_true(vs_damage(restore_edit, x, saved) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_bad_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_eagain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_single_buffers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_mergeable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_bad_buffers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_mergeable_bad_buffer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_kicks_when_starved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_kicks_event_idx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctrl_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_tx_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_mac, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_nic_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_damaged, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
