/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The virtio-net data path, one queue pair against one TAP queue (net.h; lock held).
 *
 * Receive: one frame at a time is read from the TAP into a host buffer (vnet header first) and
 * copied into the guest's receive buffers: one buffer that holds it all, or with MRG_RXBUF as
 * many as it takes, published together (virtio_pci_push_batch) with num_buffers in the first.
 * When the guest has no buffer left the frame stays in the host buffer, EPOLLIN is dropped and
 * the TAP is not read again until the driver notifies the receive queue: nothing is lost
 * because the guest is slow (the kernel queues, then drops, at the TAP as for any slow reader).
 * The driver's kicks are asked for only then (as QEMU does): while the device has buffers,
 * adding more needs no exit.
 * Only a frame that cannot fit the guest's buffers at all (larger than a whole non-mergeable
 * buffer, or than the whole ring's) is dropped and counted.
 *
 * Transmit: a chain is [vnet header | frame] in readable descriptors. Its header is copied
 * and checked (offloads the driver negotiated, sizes), then the copy and the guest's frame
 * bytes go to the TAP in one writev(). Bad chains (writable descriptors, shorter than the
 * header plus an Ethernet header, longer than NET_MAX_FRAME, offloads not negotiated) and
 * frames the kernel refuses are completed unsent and counted in tx_dropped. EAGAIN keeps the
 * chain and waits for EPOLLOUT: the loop never blocks.
 *
 * Rate limits are per queue pair, as in Cloud Hypervisor: a frame that finds the bucket empty
 * waits (held) for the limiter's timer.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "devices/virtio/net.h"
#include "util/util.h"

void net_pair_arm(struct net_pair *p)
{
	struct net *n = p->net;
	uint32_t ev = 0;

	if (!p->watched)
		return;
	if (n->active && !n->paused && p->index < n->active_pairs && !p->dead) {
		if (!p->rx_starved && !p->frame_len && !rate_limiter_blocked(&p->rx_rl))
			ev |= EPOLLIN;
		if (p->tx_blocked)
			ev |= EPOLLOUT;
	}
	if (ev != p->armed && n->loop->mod_fd(n->loop->loop, p->fd, ev) == 0)
		p->armed = ev;
}

void net_pair_drop_held(struct net_pair *p)
{
	if (p->frame_len)
		p->net->c.rx_dropped++;
	p->frame_len = 0;
	p->frame_off = 0;
	p->nused = 0;
	p->rx_held = false;
	p->tx_held = false;
	p->tx_blocked = false;
	p->rx_starved = false;
}

/* ---- receive ---- */

/* Address of byte @off of the element's writable segments (off < in_len). */
static uint8_t *elem_in_byte(struct virtq_elem *e, size_t off)
{
	struct iovec *iov = virtq_elem_in(e);

	for (unsigned i = 0; i < e->in_num; i++) {
		if (off < iov[i].iov_len)
			return (uint8_t *)iov[i].iov_base + off;
		off -= iov[i].iov_len;
	}
	return NULL;
}

static void rx_frame_done(struct net_pair *p, bool delivered)
{
	struct net *n = p->net;

	if (delivered) {
		n->c.rx_frames++;
		n->c.rx_bytes += p->frame_len - TAP_VNET_HDR_LEN;
	} else {
		n->c.rx_dropped++;
	}
	p->frame_len = 0;
	p->frame_off = 0;
	p->nused = 0;
}

/* Publishes a mergeable frame's buffers, num_buffers first. */
static void rx_publish(struct net_pair *p, bool delivered)
{
	uint16_t nb = (uint16_t)p->nused;

	*p->num_buffers[0] = (uint8_t)nb;
	*p->num_buffers[1] = (uint8_t)(nb >> 8);
	(void)virtio_pci_push_batch(p->net->vp, net_rxq(p->index), p->used, p->nused);
	rx_frame_done(p, delivered);
}

/* A buffer no frame can go into: given back empty. */
static void rx_return_bad(struct net_pair *p)
{
	struct net *n = p->net;

	n->c.rx_bad_buffers++;
	log_ratelimited(&n->rl, LOG_WARN,
			"virtio-net %s: receive buffer of %u bytes with %u readable descriptors "
			"returned unused",
			n->id, p->rx->in_len, p->rx->out_num);
	p->rx_held = false;
	(void)virtio_pci_push(n->vp, net_rxq(p->index), p->rx, 0);
}

/* Non-mergeable: the whole frame into one buffer. Returns true when the frame is done. */
static bool rx_deliver_one(struct net_pair *p)
{
	struct virtq_elem *e = p->rx;
	size_t w;

	if (e->in_len < p->frame_len) {
		/* The guest's buffers are smaller than what the host sends (a TAP MTU above the
		 * guest's): drop the frame, keep the buffer for the next one. */
		log_ratelimited(&p->net->rl, LOG_WARN,
				"virtio-net %s: %zu-byte frame dropped: receive buffers hold %u",
				p->net->id, p->frame_len - TAP_VNET_HDR_LEN, e->in_len);
		rx_frame_done(p, false);
		return true;
	}
	w = virtq_elem_write(e, 0, p->frame, p->frame_len);
	p->rx_held = false;
	(void)virtio_pci_push(p->net->vp, net_rxq(p->index), e, (uint32_t)w);
	rx_frame_done(p, w == p->frame_len);
	return true;
}

/* Mergeable: this buffer takes the next part of the frame. Returns true when it is done. */
static bool rx_deliver_part(struct net_pair *p)
{
	struct virtq_elem *e = p->rx;
	size_t w;

	if (p->nused == 0) {
		p->num_buffers[0] = elem_in_byte(e, NET_HDR_NUM_BUFFERS);
		p->num_buffers[1] = elem_in_byte(e, NET_HDR_NUM_BUFFERS + 1);
	}
	w = virtq_elem_write(e, 0, p->frame + p->frame_off, p->frame_len - p->frame_off);
	p->used[p->nused++] = (struct virtq_used_item){ e->head, e->in_len, (uint32_t)w };
	p->rx_held = false;
	p->frame_off += w;
	if (p->frame_off == p->frame_len) {
		rx_publish(p, true);
		return true;
	}
	if (p->nused == p->net->queue_size) {
		/* The whole ring cannot hold it: the guest gets it cut (and drops it). */
		rx_publish(p, false);
		return true;
	}
	return false;
}

/* Moves the pending frame into guest buffers. Returns false when the guest has none left. */
static bool rx_deliver(struct net_pair *p)
{
	bool mrg = net_has(p->net, VIRTIO_NET_F_MRG_RXBUF);

	for (;;) {
		if (!p->rx_held) {
			int r = virtio_pci_pop(p->net->vp, net_rxq(p->index), p->rx);

			if (r == 0) {
				/* Out of buffers: kicks on, then look once more (a buffer added
				 * before the driver saw the change would bring no kick). */
				virtio_pci_set_notify(p->net->vp, net_rxq(p->index), true);
				r = virtio_pci_pop(p->net->vp, net_rxq(p->index), p->rx);
			}
			if (r <= 0)
				return false;
			p->rx_held = true;
		}
		if (p->rx->out_num || p->rx->in_len < (p->nused == 0 ? TAP_VNET_HDR_LEN : 1)) {
			/* A frame half in buffers is cut (the guest drops it) rather than passed
			 * by this one: what the pair holds stays the queue's latest pops, which
			 * is what lets a snapshot un-pop it (net_held). */
			bool cut = p->nused > 0;

			if (cut)
				rx_publish(p, false);
			rx_return_bad(p);
			if (cut)
				return true;
			continue;
		}
		if (!mrg ? rx_deliver_one(p) : rx_deliver_part(p))
			return true;
	}
}

/* One read from the TAP into the frame buffer. Returns false when there is nothing. */
static bool rx_read(struct net_pair *p)
{
	struct net *n = p->net;

	for (;;) {
		ssize_t r = read(p->fd, p->frame, TAP_VNET_HDR_LEN + NET_MAX_FRAME);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_ratelimited(&n->rl, LOG_WARN, "virtio-net %s: TAP read: %s",
						n->id, strerror(errno));
			return false;
		}
		if ((size_t)r < TAP_VNET_HDR_LEN + NET_MIN_FRAME) {
			n->c.rx_dropped++;
			if (r == 0)
				return false;
			continue;
		}
		p->frame_len = (size_t)r;
		p->frame_off = 0;
		p->frame_charged = false;
		p->nused = 0;
		/* The TAP leaves num_buffers alone: 1 unless a mergeable frame needs more. */
		p->frame[NET_HDR_NUM_BUFFERS] = 1;
		p->frame[NET_HDR_NUM_BUFFERS + 1] = 0;
		return true;
	}
}

void net_rx(struct net_pair *p)
{
	struct net *n = p->net;
	unsigned done = 0;

	if (!n->active || n->paused || p->index >= n->active_pairs)
		return;
	/* While the guest's buffers last, the TAP's EPOLLIN is all that brings us back: a kick
	 * per buffer would only cost the guest an exit and us a wake-up. */
	virtio_pci_set_notify(n->vp, net_rxq(p->index), false);
	while (done < NET_RX_BATCH) {
		if (!p->frame_len) {
			if (rate_limiter_blocked(&p->rx_rl) || !rx_read(p))
				break;
		}
		if (!p->frame_charged) {
			if (!rate_limiter_consume(&p->rx_rl, p->frame_len - TAP_VNET_HDR_LEN, 1))
				break; /* the frame waits for the limiter's timer */
			p->frame_charged = true;
		}
		if (!rx_deliver(p)) {
			p->rx_starved = true;
			break;
		}
		done++;
	}
	if (done)
		virtio_pci_notify(n->vp, net_rxq(p->index));
}

/* ---- transmit ---- */

/* Whether the driver may send this header: only offloads it negotiated. */
static bool tx_header_ok(const struct net *n, const uint8_t *h)
{
	uint8_t flags = h[0], gso = h[1];
	uint16_t gso_size = (uint16_t)(h[NET_HDR_GSO_SIZE] | h[NET_HDR_GSO_SIZE + 1] << 8);

	if (flags & ~(NET_HDR_F_NEEDS_CSUM | NET_HDR_F_DATA_VALID))
		return false;
	if ((flags & NET_HDR_F_NEEDS_CSUM) && !net_has(n, VIRTIO_NET_F_CSUM))
		return false;
	if ((gso & NET_HDR_GSO_ECN) && !net_has(n, VIRTIO_NET_F_HOST_ECN))
		return false;
	switch (gso & ~NET_HDR_GSO_ECN) {
	case NET_HDR_GSO_NONE:
		return !(gso & NET_HDR_GSO_ECN);
	case NET_HDR_GSO_TCPV4:
		return net_has(n, VIRTIO_NET_F_HOST_TSO4) && gso_size;
	case NET_HDR_GSO_TCPV6:
		return net_has(n, VIRTIO_NET_F_HOST_TSO6) && gso_size;
	default:
		return false;
	}
}

/* Checks the held chain and builds p->tx_iov. Returns the iovec count, 0 for a bad frame. */
static unsigned tx_prepare(struct net_pair *p, uint8_t *hdr)
{
	struct virtq_elem *e = p->tx;
	struct iovec *src = virtq_elem_out(e);
	size_t skip = TAP_VNET_HDR_LEN;
	unsigned n = 1;

	if (e->in_num || e->out_len < TAP_VNET_HDR_LEN + NET_MIN_FRAME ||
	    e->out_len > TAP_VNET_HDR_LEN + NET_MAX_FRAME)
		return 0;
	/* Our copy goes to the kernel: the driver cannot change it after the check. */
	if (virtq_elem_read(e, 0, hdr, TAP_VNET_HDR_LEN) != TAP_VNET_HDR_LEN ||
	    !tx_header_ok(p->net, hdr))
		return 0;
	p->tx_iov[0] = (struct iovec){ hdr, TAP_VNET_HDR_LEN };
	for (unsigned i = 0; i < e->out_num; i++) {
		if (skip >= src[i].iov_len) {
			skip -= src[i].iov_len;
			continue;
		}
		p->tx_iov[n++] =
			(struct iovec){ (uint8_t *)src[i].iov_base + skip, src[i].iov_len - skip };
		skip = 0;
	}
	return n;
}

/* Sends the held chain. Returns -EAGAIN when the TAP is full (the chain stays held). */
static int tx_send(struct net_pair *p)
{
	struct net *n = p->net;
	uint8_t hdr[TAP_VNET_HDR_LEN];
	unsigned niov = tx_prepare(p, hdr);
	ssize_t r;

	if (!niov) {
		n->c.tx_dropped++;
		log_ratelimited(&n->rl, LOG_WARN,
				"virtio-net %s: bad transmit chain dropped (%u bytes, %u writable "
				"descriptors)",
				n->id, p->tx->out_len, p->tx->in_num);
		return 0;
	}
	if (!p->tx_charged) {
		if (!rate_limiter_consume(&p->tx_rl, p->tx->out_len - TAP_VNET_HDR_LEN, 1))
			return -EBUSY;
		p->tx_charged = true;
	}
	do {
		r = writev(p->fd, p->tx_iov, (int)niov);
	} while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -EAGAIN;
	if (r < 0) {
		n->c.tx_dropped++;
		log_ratelimited(&n->rl, LOG_WARN, "virtio-net %s: TAP refused a frame: %s", n->id,
				strerror(errno));
		return 0;
	}
	n->c.tx_frames++;
	n->c.tx_bytes += p->tx->out_len - TAP_VNET_HDR_LEN;
	return 0;
}

void net_tx(struct net_pair *p)
{
	struct net *n = p->net;
	unsigned q = net_txq(p->index), done = 0;
	int r;

	bool rearmed = false;

	if (!n->active || n->paused || p->index >= n->active_pairs)
		return;
	/* No kicks while we are at it (QEMU does the same): the loop below comes back for
	 * more by itself, and asks again for kicks only once the ring is empty. */
	virtio_pci_set_notify(n->vp, q, false);
	while (done < NET_TX_BATCH) {
		if (!p->tx_held) {
			r = virtio_pci_pop(n->vp, q, p->tx);
			if (r < 0 || (r == 0 && rearmed))
				break;
			if (r == 0) {
				/* Kicks on, then look once more: a frame added before the driver
				 * saw the change would otherwise wait for the next kick. */
				virtio_pci_set_notify(n->vp, q, true);
				rearmed = true;
				continue;
			}
			p->tx_held = true;
			p->tx_charged = false;
		}
		r = tx_send(p);
		if (r == -EAGAIN) {
			p->tx_blocked = true; /* EPOLLOUT brings us back */
			break;
		}
		if (r == -EBUSY)
			break; /* the limiter's timer brings us back */
		p->tx_held = false;
		if (virtio_pci_push(n->vp, q, p->tx, 0) < 0)
			break;
		done++;
	}
	if (done == NET_TX_BATCH)
		virtio_pci_kick(n->vp, q);
	if (done)
		virtio_pci_notify(n->vp, q);
}
