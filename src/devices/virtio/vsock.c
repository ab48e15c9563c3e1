/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-vsock (virtio 1.2 §5.10), stream sockets only, host side over Unix sockets (vsock.h,
 * vsock_conn.c): receiveq 0 (device → guest), transmitq 1 (guest → device), eventq 2 (used
 * once per restore: see "saved state" below). Config space: le64 guest_cid.
 *
 * The guest is the attacker. Every transmit packet is checked before anything acts on it: a
 * header shorter than 44 bytes, a len beyond the element or VSOCK_MAX_PKT_LEN, a type other
 * than stream, an unknown op, a source cid other than the guest's or a destination other than
 * the host, a packet for a connection that does not exist, one the connection's state does not
 * allow, or payload beyond the credit the device gave: each is dropped and counted (vm.counters),
 * with an RST where the spec wants one. The transmit queue never waits for a host socket (the
 * guest's credit is what a connection may buffer), so a slow host reader stalls only its own
 * connection; a slow guest reader stops that connection's reads from its socket.
 *
 * Packets to the guest (control packets a connection owes, data, RSTs) are made only when a
 * receive buffer is there; connections take turns (a FIFO work list), at most VSOCK_BATCH
 * packets per turn.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "config/config.h"
#include "devices/virtio/virtio_devices.h"
#include "devices/virtio/vsock.h"
#include "pci/pci.h"
#include "util/log.h"
#include "util/state.h"
#include "util/util.h"

#define PCI_CLASS_OTHER 0xff0000
#define VSOCK_CFG_SIZE	8 /* le64 guest_cid */

static const char *const vsock_counter_names[VSOCK_CNT_COUNT] = {
	[VSOCK_CNT_TX_PACKETS] = "tx_packets",
	[VSOCK_CNT_TX_BYTES] = "tx_bytes",
	[VSOCK_CNT_RX_PACKETS] = "rx_packets",
	[VSOCK_CNT_RX_BYTES] = "rx_bytes",
	[VSOCK_CNT_CONNS_OPENED] = "connections_opened",
	[VSOCK_CNT_CONNS_REFUSED] = "connections_refused",
	[VSOCK_CNT_DROP_MALFORMED] = "dropped_malformed",
	[VSOCK_CNT_DROP_BAD_CID] = "dropped_bad_cid",
	[VSOCK_CNT_DROP_UNKNOWN_CONN] = "dropped_unknown_connection",
	[VSOCK_CNT_DROP_BAD_STATE] = "dropped_bad_state",
	[VSOCK_CNT_CREDIT_VIOLATIONS] = "credit_violations",
	[VSOCK_CNT_RST_SENT] = "rst_sent",
	[VSOCK_CNT_RST_DROPPED] = "rst_dropped",
	[VSOCK_CNT_BAD_RX_BUFFERS] = "bad_rx_buffers",
	[VSOCK_CNT_SETUP_TIMEOUTS] = "setup_timeouts",
};

/* ---- the header ---- */

static uint64_t get_le(const uint8_t *b, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static void put_le(uint8_t *b, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

void vsock_hdr_decode(const uint8_t *b, struct vsock_hdr *h)
{
	h->src_cid = get_le(b, 8);
	h->dst_cid = get_le(b + 8, 8);
	h->src_port = (uint32_t)get_le(b + 16, 4);
	h->dst_port = (uint32_t)get_le(b + 20, 4);
	h->len = (uint32_t)get_le(b + 24, 4);
	h->type = (uint16_t)get_le(b + 28, 2);
	h->op = (uint16_t)get_le(b + 30, 2);
	h->flags = (uint32_t)get_le(b + 32, 4);
	h->buf_alloc = (uint32_t)get_le(b + 36, 4);
	h->fwd_cnt = (uint32_t)get_le(b + 40, 4);
}

void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t *b)
{
	put_le(b, h->src_cid, 8);
	put_le(b + 8, h->dst_cid, 8);
	put_le(b + 16, h->src_port, 4);
	put_le(b + 20, h->dst_port, 4);
	put_le(b + 24, h->len, 4);
	put_le(b + 28, h->type, 2);
	put_le(b + 30, h->op, 2);
	put_le(b + 32, h->flags, 4);
	put_le(b + 36, h->buf_alloc, 4);
	put_le(b + 40, h->fwd_cnt, 4);
}

/* ---- device → guest ---- */

void vsock_queue_rst(struct vsock *vs, uint32_t host_port, uint32_t guest_port)
{
	if (vs->rst_len == VSOCK_MAX_PENDING_RST) {
		vs->cnt[VSOCK_CNT_RST_DROPPED]++;
		return;
	}
	vs->rst[(vs->rst_head + vs->rst_len++) % VSOCK_MAX_PENDING_RST] =
		(struct vsock_rst){ host_port, guest_port };
}

void vsock_work_add(struct vsock *vs, struct vsock_conn *c)
{
	if (c->queued)
		return;
	c->queued = true;
	c->next_work = NULL;
	if (vs->work_tail)
		vs->work_tail->next_work = c;
	else
		vs->work_head = c;
	vs->work_tail = c;
}

static struct vsock_conn *vsock_work_pop(struct vsock *vs)
{
	struct vsock_conn *c = vs->work_head;

	if (!c)
		return NULL;
	vs->work_head = c->next_work;
	if (!vs->work_head)
		vs->work_tail = NULL;
	c->queued = false;
	c->next_work = NULL;
	return c;
}

/* Writes header @op (+ @len payload bytes already in vs->pkt) into the held receive buffer. */
static void vsock_rx_send(struct vsock *vs, uint32_t host_port, uint32_t guest_port, uint16_t op,
			  uint32_t flags, uint32_t len, struct vsock_conn *c)
{
	struct vsock_hdr h = {
		.src_cid = VSOCK_HOST_CID,
		.dst_cid = vs->guest_cid,
		.src_port = host_port,
		.dst_port = guest_port,
		.len = len,
		.type = VSOCK_TYPE_STREAM,
		.op = op,
		.flags = flags,
	};
	size_t n;

	if (c) {
		h.buf_alloc = VSOCK_CONN_BUF_SIZE;
		h.fwd_cnt = c->fwd_cnt;
		c->fwd_cnt_sent = c->fwd_cnt; /* every header is a credit update */
		c->pend &= ~VSOCK_PEND_CREDIT_UPDATE;
	}
	vsock_hdr_encode(&h, vs->pkt);
	n = virtq_elem_write(&vs->rx, 0, vs->pkt, VSOCK_HDR_SIZE + (size_t)len);
	vs->rx_held = false;
	vs->cnt[VSOCK_CNT_RX_PACKETS]++;
	vs->cnt[VSOCK_CNT_RX_BYTES] += len;
	if (op == VSOCK_OP_RST)
		vs->cnt[VSOCK_CNT_RST_SENT]++;
	(void)virtio_pci_push(vs->vp, VSOCK_RXQ, &vs->rx, (uint32_t)n);
}

/* Host bytes for the guest, as much as the buffer and the guest's credit take. Returns false
 * when @c was closed (its socket failed). */
static bool vsock_rx_data(struct vsock *vs, struct vsock_conn *c)
{
	uint32_t room = MIN(vs->rx.in_len - VSOCK_HDR_SIZE, vsock_conn_peer_free(c));
	long n = vsock_conn_read(c, vs->pkt + VSOCK_HDR_SIZE, MIN(room, VSOCK_RX_CHUNK));

	if (n == -EAGAIN) {
		c->host_readable = false; /* EPOLLIN again */
		return true;
	}
	if (n < 0) {
		vsock_conn_close(c, true);
		return false;
	}
	if (n == 0) {
		c->host_eof = true; /* the host shut its side: tell the guest */
		c->pend &= ~VSOCK_PEND_CREDIT_REQUEST;
		vsock_rx_send(vs, c->host_port, c->guest_port, VSOCK_OP_SHUTDOWN,
			      VSOCK_SHUTDOWN_SEND, 0, c);
		return true;
	}
	c->rx_cnt += (uint32_t)n;
	vsock_rx_send(vs, c->host_port, c->guest_port, VSOCK_OP_RW, 0, (uint32_t)n, c);
	return true;
}

/* One packet @c owes the guest into the held buffer, if any; @c may be closed after. */
static void vsock_rx_conn(struct vsock *vs, struct vsock_conn *c)
{
	static const uint16_t ctl_ops[] = { VSOCK_OP_REQUEST, VSOCK_OP_RESPONSE };

	for (unsigned i = 0; i < ARRAY_SIZE(ctl_ops); i++) {
		unsigned bit = i == 0 ? VSOCK_PEND_REQUEST : VSOCK_PEND_RESPONSE;

		if (c->pend & bit) {
			c->pend &= ~bit;
			vsock_rx_send(vs, c->host_port, c->guest_port, ctl_ops[i], 0, 0, c);
			goto out;
		}
	}
	if (c->state == VSOCK_CONN_ESTABLISHED && !c->host_eof && !c->guest_shut_rcv &&
	    c->host_readable && vsock_conn_peer_free(c) > 0) {
		if (!vsock_rx_data(vs, c))
			return; /* closed, its RST queued */
		if (!vs->rx_held)
			goto out;
	}
	if (c->pend & VSOCK_PEND_CREDIT_UPDATE) {
		vsock_rx_send(vs, c->host_port, c->guest_port, VSOCK_OP_CREDIT_UPDATE, 0, 0, c);
	} else if (c->pend & VSOCK_PEND_CREDIT_REQUEST) {
		c->pend &= ~VSOCK_PEND_CREDIT_REQUEST;
		vsock_rx_send(vs, c->host_port, c->guest_port, VSOCK_OP_CREDIT_REQUEST, 0, 0, c);
	}
out:
	vsock_conn_refresh(c);
}

void vsock_rx_pump(struct vsock *vs)
{
	unsigned sent = 0;

	while (sent < VSOCK_BATCH && (vs->rst_len || vs->work_head)) {
		if (!vs->rx_held) {
			if (virtio_pci_pop(vs->vp, VSOCK_RXQ, &vs->rx) <= 0)
				break; /* the work waits for the guest's next receive buffers */
			vs->rx_held = true;
			if (vs->rx.in_len <= VSOCK_HDR_SIZE) {
				vs->cnt[VSOCK_CNT_BAD_RX_BUFFERS]++;
				vs->rx_held = false;
				(void)virtio_pci_push(vs->vp, VSOCK_RXQ, &vs->rx, 0);
				sent++;
				continue;
			}
		}
		if (vs->rst_len) {
			struct vsock_rst r = vs->rst[vs->rst_head];

			vs->rst_head = (vs->rst_head + 1) % VSOCK_MAX_PENDING_RST;
			vs->rst_len--;
			vsock_rx_send(vs, r.host_port, r.guest_port, VSOCK_OP_RST, 0, 0, NULL);
		} else {
			vsock_rx_conn(vs, vsock_work_pop(vs));
		}
		if (!vs->rx_held)
			sent++;
	}
	if (sent == VSOCK_BATCH)
		virtio_pci_kick(vs->vp, VSOCK_RXQ);
	if (sent)
		virtio_pci_notify(vs->vp, VSOCK_RXQ);
}

/* ---- guest → device ---- */

static void vsock_drop(struct vsock *vs, enum vsock_counter why, const char *what)
{
	vs->cnt[why]++;
	if (log_ratelimit_ok(&vs->rl))
		log_warn("virtio-vsock: dropped a guest packet: %s", what);
}

/* RW: the payload to the host, within the credit the device gave. */
static void vsock_tx_rw(struct vsock *vs, struct vsock_conn *c, const struct vsock_hdr *h)
{
	uint32_t in_flight;

	if (c->state != VSOCK_CONN_ESTABLISHED || c->guest_shut_send) {
		vsock_drop(vs, VSOCK_CNT_DROP_BAD_STATE, "data on a connection not open for it");
		vsock_conn_close(c, true);
		return;
	}
	/* What the guest may have sent is bounded by the last fwd_cnt it was told. */
	in_flight = c->guest_tx_cnt - c->fwd_cnt_sent;
	if (in_flight > VSOCK_CONN_BUF_SIZE || h->len > VSOCK_CONN_BUF_SIZE - in_flight ||
	    h->len > VSOCK_CONN_BUF_SIZE - c->buf_len) {
		vsock_drop(vs, VSOCK_CNT_CREDIT_VIOLATIONS, "data beyond the credit given");
		vsock_conn_close(c, true);
		return;
	}
	vs->cnt[VSOCK_CNT_TX_BYTES] += h->len;
	vsock_conn_write(c, vs->pkt + VSOCK_HDR_SIZE, h->len);
}

static void vsock_tx_conn(struct vsock *vs, struct vsock_conn *c, const struct vsock_hdr *h)
{
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	if (vsock_conn_peer_free(c))
		c->credit_requested = false;
	switch (h->op) {
	case VSOCK_OP_RST:
		vsock_conn_close(c, false);
		return;
	case VSOCK_OP_RESPONSE:
		if (c->state != VSOCK_CONN_CONNECTING || (c->pend & VSOCK_PEND_REQUEST))
			break;
		vsock_conn_established(c);
		return;
	case VSOCK_OP_RW:
		vsock_tx_rw(vs, c, h);
		return;
	case VSOCK_OP_SHUTDOWN:
		if (c->state != VSOCK_CONN_ESTABLISHED)
			break;
		vsock_conn_shutdown(c, h->flags);
		return;
	case VSOCK_OP_CREDIT_REQUEST:
		c->pend |= VSOCK_PEND_CREDIT_UPDATE;
		vsock_conn_refresh(c);
		return;
	case VSOCK_OP_CREDIT_UPDATE:
		vsock_conn_refresh(c);
		return;
	default: /* REQUEST on an open connection */
		break;
	}
	vsock_drop(vs, VSOCK_CNT_DROP_BAD_STATE, "a packet the connection's state does not allow");
	vsock_conn_close(c, true);
}

/* One transmit element: its header and payload are copied out before anything is checked. */
static void vsock_tx_packet(struct vsock *vs, struct virtq_elem *e)
{
	struct vsock_hdr h;
	struct vsock_conn *c;

	if (virtq_elem_read(e, 0, vs->pkt, VSOCK_HDR_SIZE) < VSOCK_HDR_SIZE)
		return vsock_drop(vs, VSOCK_CNT_DROP_MALFORMED, "shorter than a header");
	vsock_hdr_decode(vs->pkt, &h);
	vs->cnt[VSOCK_CNT_TX_PACKETS]++;
	if (h.src_cid != vs->guest_cid || h.dst_cid != VSOCK_HOST_CID)
		return vsock_drop(vs, VSOCK_CNT_DROP_BAD_CID, "wrong source or destination cid");
	if (h.type != VSOCK_TYPE_STREAM || h.op == VSOCK_OP_INVALID ||
	    h.op > VSOCK_OP_CREDIT_REQUEST || h.len > VSOCK_MAX_PKT_LEN ||
	    (h.op != VSOCK_OP_RW && h.len) ||
	    virtq_elem_read(e, VSOCK_HDR_SIZE, vs->pkt + VSOCK_HDR_SIZE, h.len) < h.len) {
		vsock_drop(vs, VSOCK_CNT_DROP_MALFORMED, "bad type, op or length");
		c = vsock_conn_find(vs, h.dst_port, h.src_port);
		if (c)
			vsock_conn_close(c, true); /* its byte stream has a hole now */
		return;
	}
	c = vsock_conn_find(vs, h.dst_port, h.src_port);
	if (c)
		return vsock_tx_conn(vs, c, &h);
	if (h.op == VSOCK_OP_REQUEST)
		return vsock_conn_guest_connect(vs, h.dst_port, h.src_port, &h);
	if (h.op == VSOCK_OP_RST)
		return; /* the connection is gone already: nothing to answer */
	/* Not logged: a packet racing the RST that closed its connection is normal. */
	vs->cnt[VSOCK_CNT_DROP_UNKNOWN_CONN]++;
	vsock_queue_rst(vs, h.dst_port, h.src_port);
}

static void vsock_tx(struct vsock *vs)
{
	unsigned served = 0;

	while (served < VSOCK_BATCH) {
		if (virtio_pci_pop(vs->vp, VSOCK_TXQ, &vs->tx) <= 0)
			break;
		vsock_tx_packet(vs, &vs->tx);
		if (virtio_pci_push(vs->vp, VSOCK_TXQ, &vs->tx, 0) < 0)
			break;
		served++;
	}
	if (served == VSOCK_BATCH)
		virtio_pci_kick(vs->vp, VSOCK_TXQ);
	if (served)
		virtio_pci_notify(vs->vp, VSOCK_TXQ);
}

/* ---- saved state (util/state.h) ---- */

/*
 * A snapshot cannot carry the connections: their host ends are Unix sockets of the process
 * that took it (and a template has some open when it is snapshotted: they are simply not
 * saved). What is saved besides the transport is the guest's CID. A restored device starts
 * with no connection and the listener re-created from the config; when the driver was running
 * it is told at resume with a TRANSPORT_RESET event (§5.10.6.6, what Firecracker does after a
 * snapshot load): Linux then resets every socket and reads guest_cid again, so a clone may
 * also be given another CID (a per-clone override of --vsock): the config's is used.
 */
static int vsock_save_device(void *dev, json_t *obj)
{
	struct vsock *vs = dev;

	return state_set_u64(obj, "guest_cid", vs->guest_cid);
}

static int vsock_load_device(void *dev, const json_t *obj, char *err, size_t errlen)
{
	struct vsock *vs = dev;
	uint64_t cid;
	uint8_t status;
	int r = state_get_u64(obj, "guest_cid", &cid, err, errlen);

	if (r < 0)
		return r;
	if (cid < CONFIG_VSOCK_MIN_CID || cid > CONFIG_VSOCK_MAX_CID)
		return error_set(
			err, errlen, -EINVAL, "field 'guest_cid': expected %u..%u, not %llu",
			CONFIG_VSOCK_MIN_CID, CONFIG_VSOCK_MAX_CID, (unsigned long long)cid);
	/* After the transport's load: its status is the driver's. */
	status = virtio_pci_status(vs->vp);
	virtio_pci_lock(vs->vp);
	vs->reset_pending = (status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_NEEDS_RESET)) ==
			    VIRTIO_STATUS_DRIVER_OK;
	vs->paused = true; /* as after vsock_pause */
	vsock_arm_all(vs);
	virtio_pci_unlock(vs->vp);
	return 0;
}

int vsock_state_save(void *dev, json_t *obj, char *err, size_t errlen)
{
	struct vsock *vs = dev;

	return vdev_state_save(vs->vp, dev, vsock_save_device, obj, err, errlen);
}

int vsock_state_load(void *dev, const json_t *obj, char *err, size_t errlen)
{
	struct vsock *vs = dev;

	return vdev_state_load(vs->vp, dev, vsock_load_device, obj, err, errlen);
}

/* Delivers a pending TRANSPORT_RESET into an event buffer, when the driver has lent one. */
static void vsock_send_reset(struct vsock *vs)
{
	uint8_t ev[VSOCK_EVENT_SIZE];
	int r;

	if (!vs->reset_pending || vs->paused)
		return;
	r = virtio_pci_pop(vs->vp, VSOCK_EVQ, &vs->tx); /* tx is only held inside vsock_tx */
	if (r == 0)
		return; /* it waits for the driver's next event buffer */
	vs->reset_pending = false;
	if (r < 0)
		return; /* the driver broke the queue: it resets the device anyway */
	put_le(ev, VSOCK_EVENT_TRANSPORT_RESET, sizeof(ev));
	(void)virtio_pci_push(vs->vp, VSOCK_EVQ, &vs->tx,
			      (uint32_t)virtq_elem_write(&vs->tx, 0, ev, sizeof(ev)));
	virtio_pci_notify(vs->vp, VSOCK_EVQ);
}

/* ---- transport callbacks ---- */

static void vsock_config_read(void *opaque, uint32_t offset, uint8_t *data, unsigned len)
{
	struct vsock *vs = opaque;
	uint8_t cfg[VSOCK_CFG_SIZE];

	put_le(cfg, vs->guest_cid, 8);
	memcpy(data, cfg + offset, len); /* the transport checked offset + len */
}

static void vsock_queue_notify(void *opaque, unsigned q)
{
	struct vsock *vs = opaque;

	if (vs->paused)
		return;
	if (q == VSOCK_EVQ) {
		vsock_send_reset(vs);
		return;
	}
	if (q == VSOCK_TXQ)
		vsock_tx(vs);
	/* New receive buffers, or replies the transmit queue just asked for. */
	vsock_rx_pump(vs);
}

static void vsock_dev_reset(void *opaque)
{
	struct vsock *vs = opaque;

	/* The driver forgot every connection: so do we, without RSTs (there is no queue). */
	vsock_conn_close_all(vs);
	vs->rst_len = 0;
	vs->rx_held = false;
	vs->reset_pending = false; /* a new driver has no connection to drop */
}

/* The receive buffer in hand is the receive queue's latest pop (virtio_dev_ops.held); the
 * transmit and event queues complete what they pop at once. */
static unsigned vsock_held(void *opaque, unsigned q)
{
	const struct vsock *vs = opaque;

	return q == VSOCK_RXQ && vs->rx_held;
}

static const struct virtio_dev_ops vsock_vops = {
	.name = "virtio-vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.class_code = PCI_CLASS_OTHER,
	.num_queues = 3,
	.max_queue_size = VSOCK_QUEUE_SIZE,
	.config_size = VSOCK_CFG_SIZE,
	.config_read = vsock_config_read,
	.queue_notify = vsock_queue_notify,
	.reset = vsock_dev_reset,
	.held = vsock_held,
};

static void vsock_listen_cb(void *opaque, uint32_t events)
{
	struct vsock *vs = opaque;

	(void)events;
	virtio_pci_lock(vs->vp);
	if (!vs->paused) {
		vsock_accept(vs);
		vsock_rx_pump(vs);
	}
	virtio_pci_unlock(vs->vp);
}

static void vsock_timer_cb(void *opaque, uint32_t events)
{
	struct vsock *vs = opaque;
	uint64_t ticks;

	(void)events;
	(void)!read(vs->timer_fd, &ticks, sizeof(ticks));
	virtio_pci_lock(vs->vp);
	if (!vs->paused) {
		vsock_expire(vs, time_now_ns());
		vsock_rx_pump(vs);
	}
	virtio_pci_unlock(vs->vp);
}

/* ---- life cycle ---- */

static void vsock_destroy(struct vsock *vs)
{
	if (!vs)
		return;
	vs->vp = virtio_pci_destroy(vs->vp);
	vsock_conn_close_all(vs);
	if (vs->listen_watched)
		(void)vs->loop->del_fd(vs->loop->loop, vs->listen_fd);
	if (vs->listen_fd >= 0) {
		close(vs->listen_fd);
		(void)unlink(vs->path);
	}
	if (vs->timer_watched)
		(void)vs->loop->del_fd(vs->loop->loop, vs->timer_fd);
	if (vs->timer_fd >= 0)
		close(vs->timer_fd);
	free(vs->path);
	free(vs->id);
	free(vs);
}

int vsock_create(const struct dev_ctx *ctx, const struct vsock_config *cfg, void **ret)
{
	struct vsock *vs;
	int r;

	if (!ctx->pci || !ctx->mem || !cfg->socket)
		return -EINVAL;
	vs = calloc(1, sizeof(*vs));
	if (!vs)
		return -ENOMEM;
	vs->listen_fd = -1;
	vs->timer_fd = -1;
	vs->loop = ctx->loop;
	vs->guest_cid = cfg->cid;
	vs->next_local_port = VSOCK_LOCAL_PORT_BASE;
	vs->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(1000000000ULL, 5);
	vs->path = strdup(cfg->socket);
	vs->id = strdup(cfg->id ? cfg->id : "_vsock0");
	if (!vs->path || !vs->id) {
		r = -ENOMEM;
		goto fail;
	}
	r = vsock_listen(vs->path);
	if (r < 0) {
		error_set(ctx->err, ctx->errlen, r, "--vsock: cannot listen on '%s': %s", vs->path,
			  strerror(-r));
		goto fail;
	}
	vs->listen_fd = r;
	if (vs->loop) {
		r = vs->loop->add_fd(vs->loop->loop, vs->listen_fd, EPOLLIN, vsock_listen_cb, vs);
		if (r < 0)
			goto fail;
		vs->listen_watched = true;
		vs->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (vs->timer_fd < 0) {
			r = -errno;
			goto fail;
		}
		r = vs->loop->add_fd(vs->loop->loop, vs->timer_fd, EPOLLIN, vsock_timer_cb, vs);
		if (r < 0)
			goto fail;
		vs->timer_watched = true;
	}
	r = virtio_pci_create(ctx->pci, ctx->mem, ctx->loop, &vsock_vops, vs, &vs->vp);
	if (r < 0)
		goto fail;
	*ret = vs;
	return 0;
fail:
	vsock_destroy(vs);
	return r;
}

struct virtio_pci *vsock_transport(void *dev)
{
	return ((struct vsock *)dev)->vp;
}

void vsock_accept_now(void *dev)
{
	vsock_listen_cb(dev, EPOLLIN);
}

void vsock_expire_at(void *dev, uint64_t now_ns)
{
	struct vsock *vs = dev;

	virtio_pci_lock(vs->vp);
	vsock_expire(vs, now_ns);
	vsock_rx_pump(vs);
	virtio_pci_unlock(vs->vp);
}

/* The device is alone in its entry: its state is the instance's object itself. */
static int vsock_realize(const struct dev_ctx *ctx, const struct json_t *state, void **ret)
{
	char why[256];
	void *vs;
	int r;

	if (!ctx->cfg->vsock) {
		*ret = NULL;
		if (state && json_object_size(state))
			return error_set(
				ctx->err, ctx->errlen, -EINVAL,
				"--vsock: the snapshot has a vsock device, the config none");
		return 0;
	}
	r = vsock_create(ctx, ctx->cfg->vsock, &vs);
	if (r < 0)
		return r;
	r = state ? vsock_state_load(vs, state, why, sizeof(why)) : 0;
	if (r < 0) {
		vsock_destroy(vs);
		return error_set(ctx->err, ctx->errlen, r, "--vsock: %s", why);
	}
	*ret = vs;
	return 0;
}

static int vsock_save(void *dev, json_t *state, char *err, size_t errlen)
{
	if (!dev)
		return 0; /* not configured: nothing */
	return vdev_state_save_named(state, vsock_state_save, dev, "virtio-vsock", err, errlen);
}

static void vsock_unrealize(void *dev)
{
	vsock_destroy(dev);
}

static void vsock_reset(void *dev)
{
	virtio_pci_reset(vsock_transport(dev));
}

static void vsock_pause(void *dev)
{
	struct vsock *vs = dev;

	virtio_pci_lock(vs->vp);
	vs->paused = true;
	vsock_arm_all(vs);
	virtio_pci_unlock(vs->vp);
	virtio_pci_pause(vs->vp);
}

static void vsock_resume(void *dev)
{
	struct vsock *vs = dev;

	virtio_pci_resume(vs->vp);
	virtio_pci_lock(vs->vp);
	vs->paused = false;
	vsock_send_reset(vs);
	vsock_arm_all(vs);
	for (unsigned i = vs->nr_conns; i-- > 0;) {
		if (i < vs->nr_conns) /* a refresh may close one (the last moves to its slot) */
			vsock_conn_refresh(vs->conns[i]);
	}
	virtio_pci_unlock(vs->vp);
	virtio_pci_kick(vs->vp, VSOCK_TXQ);
	virtio_pci_kick(vs->vp, VSOCK_RXQ);
}

static void vsock_counters(void *dev, dev_counter_fn emit, void *opaque)
{
	struct vsock *vs = dev;

	virtio_pci_lock(vs->vp);
	for (unsigned i = 0; i < VSOCK_CNT_COUNT; i++)
		emit(opaque, vs->id, vsock_counter_names[i], vs->cnt[i]);
	emit(opaque, vs->id, "connections_active", vs->nr_conns);
	virtio_pci_unlock(vs->vp);
}

/* vm.info's device tree: the vsock device by its id, with its PCI slot. */
static void vsock_nodes(void *dev, dev_node_fn emit, void *opaque)
{
	struct vsock *vs = dev;

	emit(opaque, vs->id, (int)pci_function_slot(virtio_pci_function(vs->vp)));
}

const struct dev_ops vsock_ops = {
	.name = "virtio-vsock",
	.realize = vsock_realize,
	.unrealize = vsock_unrealize,
	.reset = vsock_reset,
	.pause = vsock_pause,
	.resume = vsock_resume,
	.save = vsock_save,
	.counters = vsock_counters,
	.nodes = vsock_nodes,
};
