/*
 * virtio-vsock N: the guest speaks the vsock protocol on the rings itself (no kernel), against
 * cubicle started with --vsock cid=3,socket=PATH and a host echo service listening on
 * PATH_<vsock-port> (default 5000; tests/e2e/test_vsock_guest.py).
 *
 *   - config space: guest_cid is 3;
 *   - connect to host port P: REQUEST → RESPONSE (the set-up time is measured);
 *   - echo: N round trips of 4 KiB through the host service, the bytes checked, the device's
 *     credit (buf_alloc - (sent - fwd_cnt)) respected and watched;
 *   - CREDIT_REQUEST → CREDIT_UPDATE;
 *   - RST from the guest, then data on the dead connection → RST from the device;
 *   - a port nobody listens on → RST.
 * Prints the connect time and the echo throughput (TSC; µs and KB/s when the frequency is known).
 */
#include "../virtio.h"
#include "scenarios.h"

#define VSOCK_DEVICE_MODERN 0x1053
#define VSOCK_CID	    3
#define HOST_CID	    2
#define QSIZE		    64
#define HDR		    44
#define PAYLOAD		    4096
#define SLOT		    (HDR + PAYLOAD)
#define WAIT_MS		    2000
#define GUEST_BUF_ALLOC	    (1u << 20)

enum {
	OP_REQUEST = 1,
	OP_RESPONSE,
	OP_RST,
	OP_SHUTDOWN,
	OP_RW,
	OP_CREDIT_UPDATE,
	OP_CREDIT_REQUEST
};

struct vhdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

struct vs {
	struct virtio_dev v;
	struct virtq rx, tx;
	uint8_t *rxbuf, *txbuf;
	uint32_t rx_bytes; /* our fwd_cnt: bytes consumed */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_bytes;
};

static void post_rx(struct vs *s, uint16_t i)
{
	s->rx.desc[i] = (struct virtq_desc){ (uint64_t)(s->rxbuf + (size_t)i * SLOT), SLOT,
					     VIRTQ_DESC_F_WRITE, 0 };
	virtq_publish(&s->rx, i);
}

static bool send_pkt(struct vs *s, uint16_t op, uint32_t sport, uint32_t dport, const void *data,
		     uint32_t len, char *why)
{
	struct vhdr h = { VSOCK_CID, HOST_CID, sport, dport,	       len,
			  1,	     op,       0,     GUEST_BUF_ALLOC, s->rx_bytes };
	uint8_t *b = s->txbuf;
	struct virtq_used_elem e;
	uint64_t deadline = tsc_deadline(WAIT_MS);

	memcpy(b, &h, HDR);
	if (len)
		memcpy(b + HDR, data, len);
	s->tx.desc[0] = (struct virtq_desc){ (uint64_t)b, HDR + len, 0, 0 };
	virtq_publish(&s->tx, 0);
	virtq_notify(&s->tx);
	while (!virtq_get_used(&s->tx, &e)) {
		if (tsc_expired(deadline)) {
			snprintf(why, WHY_MAX, "transmit op %u not completed", op);
			return false;
		}
		cpu_relax();
	}
	if (op == OP_RW)
		s->tx_bytes += len;
	return true;
}

/* The next packet from the device into *@h (payload copied to @data, up to PAYLOAD). */
static bool recv_pkt(struct vs *s, struct vhdr *h, uint8_t *data, char *why)
{
	struct virtq_used_elem e;
	uint64_t deadline = tsc_deadline(WAIT_MS);

	while (!virtq_get_used(&s->rx, &e)) {
		if (tsc_expired(deadline)) {
			snprintf(why, WHY_MAX, "no packet from the device (status 0x%x)",
				 virtio_status(&s->v));
			return false;
		}
		cpu_relax();
	}
	if (e.id >= s->rx.size || e.len < HDR || e.len > SLOT) {
		snprintf(why, WHY_MAX, "receive: used id %u len %u", e.id, e.len);
		return false;
	}
	uint8_t *b = s->rxbuf + (size_t)e.id * SLOT;
	memcpy(h, b, HDR);
	if (h->len != e.len - HDR || h->src_cid != HOST_CID || h->dst_cid != VSOCK_CID ||
	    h->type != 1) {
		snprintf(why, WHY_MAX, "receive: bad header (op %u len %u/%u cid %lu→%lu)", h->op,
			 h->len, e.len, (unsigned long)h->src_cid, (unsigned long)h->dst_cid);
		return false;
	}
	if (data && h->len)
		memcpy(data, b + HDR, h->len);
	s->peer_buf_alloc = h->buf_alloc;
	s->peer_fwd_cnt = h->fwd_cnt;
	post_rx(s, (uint16_t)e.id);
	virtq_notify(&s->rx);
	return true;
}

static bool expect(struct vs *s, uint16_t op, struct vhdr *h, char *why)
{
	if (!recv_pkt(s, h, NULL, why))
		return false;
	if (h->op != op) {
		snprintf(why, WHY_MAX, "got op %u, expected %u", h->op, op);
		return false;
	}
	return true;
}

static bool bring_up(struct vs *s, char *why)
{
	if (!virtio_find(&s->v, VSOCK_DEVICE_MODERN, VSOCK_DEVICE_MODERN, why) ||
	    !virtio_start(&s->v, VIRTIO_F_VERSION_1, why) ||
	    !virtio_queue_setup(&s->v, 0, QSIZE, &s->rx, why) ||
	    !virtio_queue_setup(&s->v, 1, QSIZE, &s->tx, why))
		return false;
	virtio_driver_ok(&s->v);
	s->rxbuf = alloc_pages((size_t)QSIZE * SLOT, 4096);
	s->txbuf = alloc_pages(SLOT, 4096);
	if (!s->rxbuf || !s->txbuf) {
		snprintf(why, WHY_MAX, "out of guest memory");
		return false;
	}
	for (uint16_t i = 0; i < s->rx.size; i++)
		post_rx(s, i);
	virtq_notify(&s->rx);
	uint64_t cid = mmio_read32(s->v.devcfg) | (uint64_t)mmio_read32(s->v.devcfg + 4) << 32;
	if (cid != VSOCK_CID) {
		snprintf(why, WHY_MAX, "config guest_cid %lu", (unsigned long)cid);
		return false;
	}
	return true;
}

/* N round trips of PAYLOAD bytes; the device's credit is never exceeded. */
static bool echo(struct vs *s, uint32_t gport, uint32_t hport, uint64_t n, uint8_t *out,
		 uint8_t *in, char *why)
{
	struct vhdr h;

	for (uint64_t r = 0; r < n; r++) {
		for (uint32_t i = 0; i < PAYLOAD; i++)
			out[i] = (uint8_t)(i * 13 + r);
		while (s->peer_buf_alloc - (s->tx_bytes - s->peer_fwd_cnt) < PAYLOAD) {
			if (!send_pkt(s, OP_CREDIT_REQUEST, gport, hport, NULL, 0, why) ||
			    !recv_pkt(s, &h, NULL, why))
				return false;
		}
		if (!send_pkt(s, OP_RW, gport, hport, out, PAYLOAD, why))
			return false;
		uint32_t got = 0;
		while (got < PAYLOAD) {
			if (!recv_pkt(s, &h, in + got, why))
				return false;
			if (h.op != OP_RW) {
				if (h.op == OP_CREDIT_UPDATE)
					continue;
				snprintf(why, WHY_MAX, "round %lu: op %u during echo",
					 (unsigned long)r, h.op);
				return false;
			}
			if (got + h.len > PAYLOAD) {
				snprintf(why, WHY_MAX, "round %lu: echo too long",
					 (unsigned long)r);
				return false;
			}
			got += h.len;
			s->rx_bytes += h.len;
		}
		if (memcmp(in, out, PAYLOAD) != 0) {
			snprintf(why, WHY_MAX, "round %lu: echo differs", (unsigned long)r);
			return false;
		}
	}
	return true;
}

bool scenario_virtio_vsock(uint64_t n, char *why)
{
	static struct vs s;
	struct vhdr h;
	uint32_t hport = (uint32_t)cmdline_u64("vsock-port", 5000), gport = 1000;
	uint8_t *out = alloc_pages(PAYLOAD, 4096), *in = alloc_pages(PAYLOAD, 4096);

	if (!out || !in) {
		snprintf(why, WHY_MAX, "out of guest memory");
		return false;
	}
	if (!bring_up(&s, why))
		return false;
	uint64_t t0 = rdtsc();
	if (!send_pkt(&s, OP_REQUEST, gport, hport, NULL, 0, why) ||
	    !expect(&s, OP_RESPONSE, &h, why))
		return false;
	uint64_t connect_cycles = rdtsc() - t0;
	if (h.src_port != hport || h.dst_port != gport || h.buf_alloc == 0) {
		snprintf(why, WHY_MAX, "RESPONSE ports %u→%u buf_alloc %u", h.src_port, h.dst_port,
			 h.buf_alloc);
		return false;
	}
	t0 = rdtsc();
	if (!echo(&s, gport, hport, n, out, in, why))
		return false;
	uint64_t echo_cycles = rdtsc() - t0;
	if (!send_pkt(&s, OP_CREDIT_REQUEST, gport, hport, NULL, 0, why) ||
	    !expect(&s, OP_CREDIT_UPDATE, &h, why))
		return false;
	if (h.buf_alloc != 256 * 1024 || h.fwd_cnt != s.tx_bytes) {
		snprintf(why, WHY_MAX, "credit update: buf_alloc %u fwd_cnt %u (sent %u)",
			 h.buf_alloc, h.fwd_cnt, s.tx_bytes);
		return false;
	}
	/* RST closes it: data after it is answered with RST */
	if (!send_pkt(&s, OP_RST, gport, hport, NULL, 0, why) ||
	    !send_pkt(&s, OP_RW, gport, hport, out, 16, why) || !expect(&s, OP_RST, &h, why))
		return false;
	/* nobody listens on hport + 1 */
	if (!send_pkt(&s, OP_REQUEST, gport + 1, hport + 1, NULL, 0, why) ||
	    !expect(&s, OP_RST, &h, why))
		return false;
	virtio_reset(&s.v, why);
	uint64_t khz = tsc_khz();
	if (khz)
		snprintf(why, WHY_MAX, "connect_us=%lu echo_rounds=%lu echo_KBps=%lu",
			 (unsigned long)(connect_cycles * 1000 / khz), (unsigned long)n,
			 (unsigned long)(echo_cycles ? 2ull * n * PAYLOAD * khz / echo_cycles : 0));
	else
		snprintf(why, WHY_MAX, "connect_cycles=%lu echo_rounds=%lu echo_cycles=%lu",
			 (unsigned long)connect_cycles, (unsigned long)n,
			 (unsigned long)echo_cycles);
	return true;
}
