/*
 * virtio-net scenarios. Frames are Ethernet frames of EtherType NET_TEST_ETHERTYPE (an IEEE
 * "local experimental" type the host stack ignores) carrying a magic, a sequence number, their
 * length and a pattern derived from both, so either end can check every byte
 * (tests/e2e/net_peer.py is the host side, on an AF_PACKET socket bound to the TAP).
 *
 * virtio-net N: receives N test frames from the host (sequence 0..N-1, in order; other
 *   EtherTypes, such as IPv6 neighbour discovery, are skipped), then sends N. Negotiates
 *   MRG_RXBUF and MAC; checks num_buffers.
 * virtio-net-tx N: sends N frames of net-frame=BYTES (default 74, Ethernet header included; at
 *   most 1514) as fast as the ring allows (benchmark); the time ends when the last buffer is
 *   back.
 * virtio-net-rx N: receives test frames without checking their contents until N arrived or
 *   none came for NET_RX_IDLE_MS after the first (benchmark: the host may drop some); reports
 *   the frames and bytes and the time from the first frame to the last.
 *
 * The hostile target "net" (hostile_targets.c) attacks the transmit queue.
 */
#include "../virtio.h"
#include "hostile.h"
#include "scenarios.h"

#define NET_DEVICE_MODERN	0x1041
#define NET_DEVICE_TRANSITIONAL 0x1000
#define NET_F_MAC		(1ull << 5)
#define NET_F_MRG_RXBUF		(1ull << 15)
#define NET_HDR			12
#define NET_QUEUE_SIZE		256
#define NET_BUF			2048
#define NET_TEST_ETHERTYPE	0x88b5
#define NET_MAGIC		0x4e425543u /* "CUBN" */
#define NET_STALL_MS		20000
#define NET_RXQ			0
#define NET_TXQ			1
#define NET_RX_IDLE_MS		500
#define NET_MAX_FRAME		1514

struct net {
	struct virtio_dev v;
	struct virtq rx, tx;
	uint8_t *rxbuf, *txbuf;
	uint8_t mac[6];
	uint16_t tx_free;
	bool *tx_busy;
};

/* The frame length for sequence @seq (Ethernet header included): 60..1514. */
static uint32_t frame_len(uint32_t seq)
{
	return 60 + (seq * 97u) % 1455u;
}

static uint8_t pattern(uint32_t seq, uint32_t i)
{
	return (uint8_t)(seq * 31u + i * 7u + (i >> 8));
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void build_frame(struct net *n, uint8_t *f, uint32_t seq, uint32_t len)
{
	memset(f, 0xff, 6); /* broadcast */
	memcpy(f + 6, n->mac, 6);
	f[12] = NET_TEST_ETHERTYPE >> 8;
	f[13] = NET_TEST_ETHERTYPE & 0xff;
	put32(f + 14, NET_MAGIC);
	put32(f + 18, seq);
	put32(f + 22, len);
	for (uint32_t i = 26; i < len; i++)
		f[i] = pattern(seq, i);
}

static bool net_up(struct net *n, char *why)
{
	if (!virtio_find(&n->v, NET_DEVICE_MODERN, NET_DEVICE_TRANSITIONAL, why) ||
	    !virtio_start(&n->v, VIRTIO_F_VERSION_1 | NET_F_MAC | NET_F_MRG_RXBUF, why) ||
	    !virtio_queue_setup(&n->v, NET_RXQ, NET_QUEUE_SIZE, &n->rx, why) ||
	    !virtio_queue_setup(&n->v, NET_TXQ, NET_QUEUE_SIZE, &n->tx, why))
		return false;
	for (unsigned i = 0; i < 6; i++)
		n->mac[i] = mmio_read8(n->v.devcfg + i);
	n->rxbuf = alloc_pages((size_t)n->rx.size * NET_BUF, 4096);
	n->txbuf = alloc_pages((size_t)n->tx.size * NET_BUF, 4096);
	n->tx_busy = alloc_pages(n->tx.size, 8);
	if (!n->rxbuf || !n->txbuf || !n->tx_busy) {
		snprintf(why, WHY_MAX, "out of guest memory");
		return false;
	}
	virtio_driver_ok(&n->v);
	for (uint16_t i = 0; i < n->rx.size; i++) {
		n->rx.desc[i] = (struct virtq_desc){ (uint64_t)(n->rxbuf + (size_t)i * NET_BUF),
						     NET_BUF, VIRTQ_DESC_F_WRITE, 0 };
		virtq_publish(&n->rx, i);
	}
	virtq_notify(&n->rx);
	n->tx_free = n->tx.size;
	return true;
}

/* Reclaims completed transmit buffers. */
static void tx_reclaim(struct net *n)
{
	struct virtq_used_elem e;

	while (virtq_get_used(&n->tx, &e)) {
		if (e.id < n->tx.size && n->tx_busy[e.id]) {
			n->tx_busy[e.id] = false;
			n->tx_free++;
		}
	}
}

static bool net_send(struct net *n, uint64_t count, uint32_t fixed, char *why)
{
	uint64_t deadline = tsc_deadline(NET_STALL_MS);
	uint16_t next = 0;

	for (uint64_t seq = 0; seq < count;) {
		tx_reclaim(n);
		if (!n->tx_free) {
			if (tsc_expired(deadline)) {
				snprintf(why, WHY_MAX, "send stalled at frame %lu (status 0x%x)",
					 seq, virtio_status(&n->v));
				return false;
			}
			cpu_relax();
			continue;
		}
		while (n->tx_busy[next])
			next = (uint16_t)((next + 1) % n->tx.size);
		uint8_t *b = n->txbuf + (size_t)next * NET_BUF;
		uint32_t len = fixed ? fixed : frame_len((uint32_t)seq);
		memset(b, 0, NET_HDR);
		build_frame(n, b + NET_HDR, (uint32_t)seq, len);
		n->tx.desc[next] = (struct virtq_desc){ (uint64_t)b, NET_HDR + len, 0, 0 };
		n->tx_busy[next] = true;
		n->tx_free--;
		virtq_publish(&n->tx, next);
		seq++;
		if (!n->tx_free || seq == count || (seq & 31) == 0)
			virtq_notify(&n->tx);
		deadline = tsc_deadline(NET_STALL_MS);
	}
	while (n->tx_free < n->tx.size) {
		tx_reclaim(n);
		if (tsc_expired(deadline)) {
			snprintf(why, WHY_MAX, "transmit buffers not returned (status 0x%x)",
				 virtio_status(&n->v));
			return false;
		}
		cpu_relax();
	}
	return true;
}

/* Checks one received buffer. 1: the expected test frame, 0: another frame, -1: bad. */
static int rx_check(struct net *n, const uint8_t *b, uint32_t len, uint32_t seq, bool verify,
		    char *why)
{
	const uint8_t *f = b + NET_HDR;
	uint16_t nb = (uint16_t)(b[10] | b[11] << 8);

	if (len < NET_HDR + 14 || nb != 1) {
		snprintf(why, WHY_MAX, "frame %u: used length %u, num_buffers %u", seq, len, nb);
		return -1;
	}
	if (f[12] != (NET_TEST_ETHERTYPE >> 8) || f[13] != (NET_TEST_ETHERTYPE & 0xff))
		return 0;
	if (!verify)
		return 1;
	uint32_t flen = len - NET_HDR;
	if (memcmp(f, n->mac, 6) != 0 || get32(f + 14) != NET_MAGIC || get32(f + 18) != seq ||
	    get32(f + 22) != flen || flen != frame_len(seq)) {
		snprintf(why, WHY_MAX, "frame %u: bad header (seq %u, len %u/%u)", seq,
			 get32(f + 18), flen, get32(f + 22));
		return -1;
	}
	for (uint32_t i = 26; i < flen; i++) {
		if (f[i] != pattern(seq, i)) {
			snprintf(why, WHY_MAX, "frame %u: byte %u is %u", seq, i, f[i]);
			return -1;
		}
	}
	return 1;
}

static bool net_receive(struct net *n, uint64_t count, bool verify, uint64_t *ret_other, char *why)
{
	uint64_t deadline = tsc_deadline(NET_STALL_MS), got = 0, other = 0;

	while (got < count) {
		struct virtq_used_elem e;
		if (!virtq_get_used(&n->rx, &e)) {
			if (tsc_expired(deadline)) {
				snprintf(why, WHY_MAX, "received %lu of %lu frames (status 0x%x)",
					 got, count, virtio_status(&n->v));
				return false;
			}
			cpu_relax();
			continue;
		}
		if (e.id >= n->rx.size) {
			snprintf(why, WHY_MAX, "used id %u", e.id);
			return false;
		}
		int r = rx_check(n, n->rxbuf + (size_t)e.id * NET_BUF, e.len, (uint32_t)got, verify,
				 why);
		if (r < 0)
			return false;
		if (r)
			got++;
		else
			other++;
		virtq_publish(&n->rx, (uint16_t)e.id);
		virtq_notify(&n->rx);
		deadline = tsc_deadline(NET_STALL_MS);
	}
	*ret_other = other;
	return true;
}

static void elapsed(uint64_t t0, char *buf, size_t len)
{
	uint64_t c = rdtsc() - t0;
	if (tsc_khz())
		snprintf(buf, len, "%lu.%03lu ms", c / tsc_khz(), c * 1000 / tsc_khz() % 1000);
	else
		snprintf(buf, len, "%lu cycles", c);
}

bool scenario_virtio_net(uint64_t count, char *why)
{
	struct net n;
	uint64_t other = 0, t0;
	char t[32];

	if (!net_up(&n, why))
		return false;
	t0 = rdtsc();
	if (!net_receive(&n, count, true, &other, why) || !net_send(&n, count, 0, why))
		return false;
	elapsed(t0, t, sizeof(t));
	snprintf(why, WHY_MAX,
		 "%lu frames each way, %lu others skipped, mac %02x:%02x:%02x:%02x:%02x:%02x, %s",
		 count, other, n.mac[0], n.mac[1], n.mac[2], n.mac[3], n.mac[4], n.mac[5], t);
	virtio_reset(&n.v, why);
	return true;
}

bool scenario_virtio_net_tx(uint64_t count, char *why)
{
	struct net n;
	uint64_t t0, len = cmdline_u64("net-frame", 74);
	char t[32];

	if (len < 60 || len > NET_MAX_FRAME) {
		snprintf(why, WHY_MAX, "net-frame=%lu: 60..%u", len, NET_MAX_FRAME);
		return false;
	}
	if (!net_up(&n, why))
		return false;
	uint64_t irq0 = irq_count(VIRTIO_VEC_QUEUE);
	t0 = rdtsc();
	if (!net_send(&n, count, (uint32_t)len, why))
		return false;
	elapsed(t0, t, sizeof(t));
	snprintf(why, WHY_MAX, "%lu frames of %lu bytes sent, %lu interrupts, %s", count, len,
		 irq_count(VIRTIO_VEC_QUEUE) - irq0, t);
	return true;
}

bool scenario_virtio_net_rx(uint64_t count, char *why)
{
	struct net n;
	uint64_t got = 0, bytes = 0, t0 = 0, t1 = 0, deadline;
	char t[32];

	uint64_t irq0;

	if (!net_up(&n, why))
		return false;
	irq0 = irq_count(VIRTIO_VEC_QUEUE);
	printf("virtio-net-rx: ready\n");
	deadline = tsc_deadline(NET_STALL_MS);
	while (got < count) {
		struct virtq_used_elem e;
		unsigned taken = 0;

		/* Like a driver's poll loop: take what is there, give the buffers back, then
		 * notify once, and only when the device asks for it. */
		while (got < count && virtq_get_used(&n.rx, &e)) {
			if (e.id >= n.rx.size) {
				snprintf(why, WHY_MAX, "used id %u", e.id);
				return false;
			}
			const uint8_t *f = n.rxbuf + (size_t)e.id * NET_BUF + NET_HDR;
			if (e.len >= NET_HDR + 14 && f[12] == (NET_TEST_ETHERTYPE >> 8) &&
			    f[13] == (NET_TEST_ETHERTYPE & 0xff)) {
				t1 = rdtsc();
				if (!got++)
					t0 = t1;
				bytes += e.len - NET_HDR;
			}
			virtq_publish(&n.rx, (uint16_t)e.id);
			taken++;
		}
		if (taken) {
			virtq_notify_if_wanted(&n.rx);
			if (got)
				deadline = tsc_deadline(NET_RX_IDLE_MS);
			continue;
		}
		if (tsc_expired(deadline))
			break;
		cpu_relax();
	}
	if (!got) {
		snprintf(why, WHY_MAX, "no frame within %u ms", NET_STALL_MS);
		return false;
	}
	elapsed(t0 + (rdtsc() - t1), t, sizeof(t)); /* t1 - t0, through the helper */
	snprintf(why, WHY_MAX, "%lu frames received, %lu bytes, %s, %lu interrupts", got, bytes, t,
		 irq_count(VIRTIO_VEC_QUEUE) - irq0);
	return true;
}

/* The hostile target: one 64-byte frame (vnet header + 52 bytes) on the transmit queue comes
 * back with a used length of 0. */
static bool net_good_request(struct hostile *h, char *why)
{
	memset(h->buf, 0, BUF_SIZE);
	memset(h->buf + NET_HDR, 0xff, 6);
	h->buf[NET_HDR + 12] = NET_TEST_ETHERTYPE >> 8;
	h->buf[NET_HDR + 13] = NET_TEST_ETHERTYPE & 0xff;
	h->q.desc[0] = (struct virtq_desc){ (uint64_t)h->buf, BUF_SIZE, 0, 0 };
	return hostile_expect_used(h, 0, why);
}

const struct hostile_target hostile_target_net = {
	.name = "net",
	.modern_id = NET_DEVICE_MODERN,
	.transitional_id = NET_DEVICE_TRANSITIONAL,
	.queue = NET_TXQ,
	.good_request = net_good_request,
};
