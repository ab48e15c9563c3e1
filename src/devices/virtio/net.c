/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-net (virtio 1.2 §5.1) on a TAP device: life cycle, config space, the control queue,
 * offloads and multiqueue. The data path is net_rxtx.c.
 *
 * Queues: receiveq 2i and transmitq 2i+1 for pair i (one TAP queue fd each), then controlq.
 * Features: MAC, STATUS, MTU (when --net mtu= is given), MRG_RXBUF, CSUM/GUEST_CSUM,
 * HOST_/GUEST_ TSO4, TSO6, ECN (the vnet header passes them to the TAP; what the guest takes is
 * set with TUNSETOFFLOAD), CTRL_VQ with CTRL_GUEST_OFFLOADS and MQ (VQ_PAIRS_SET attaches and
 * detaches the TAP's queues so the kernel steers frames only to the pairs in use), and the
 * transport's EVENT_IDX and INDIRECT_DESC.
 *
 * Threads: everything runs with the transport's lock held: the ops callbacks, and the TAP and
 * rate-limiter fd callbacks below, which take it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <unistd.h>

#include "devices/virtio/net.h"
#include "pci/pci.h"
#include "util/state.h"
#include "util/util.h"

#define PCI_CLASS_NET_ETHERNET 0x020000

#define NET_FEATURES                                                         \
	(BIT64(VIRTIO_NET_F_CSUM) | BIT64(VIRTIO_NET_F_GUEST_CSUM) |         \
	 BIT64(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | BIT64(VIRTIO_NET_F_MAC) | \
	 BIT64(VIRTIO_NET_F_GUEST_TSO4) | BIT64(VIRTIO_NET_F_GUEST_TSO6) |   \
	 BIT64(VIRTIO_NET_F_GUEST_ECN) | BIT64(VIRTIO_NET_F_HOST_TSO4) |     \
	 BIT64(VIRTIO_NET_F_HOST_TSO6) | BIT64(VIRTIO_NET_F_HOST_ECN) |      \
	 BIT64(VIRTIO_NET_F_MRG_RXBUF) | BIT64(VIRTIO_NET_F_STATUS) | BIT64(VIRTIO_NET_F_CTRL_VQ))

/* ---- offloads and queue pairs ---- */

/* What the TAP may hand us, from the guest offloads in force. TSO needs the checksum. */
static unsigned offloads_to_tap(uint64_t guest)
{
	unsigned f = 0;

	if (!(guest & BIT64(VIRTIO_NET_F_GUEST_CSUM)))
		return 0;
	f |= TAP_OFFLOAD_CSUM;
	if (guest & BIT64(VIRTIO_NET_F_GUEST_TSO4))
		f |= TAP_OFFLOAD_TSO4;
	if (guest & BIT64(VIRTIO_NET_F_GUEST_TSO6))
		f |= TAP_OFFLOAD_TSO6;
	if ((f & (TAP_OFFLOAD_TSO4 | TAP_OFFLOAD_TSO6)) && (guest & BIT64(VIRTIO_NET_F_GUEST_ECN)))
		f |= TAP_OFFLOAD_TSO_ECN;
	return f;
}

static void net_set_offloads(struct net *n, uint64_t guest)
{
	unsigned f = offloads_to_tap(guest);

	for (unsigned i = 0; i < n->pairs; i++) {
		int r = tap_set_offload(n->pair[i].fd, f);

		if (r < 0 && r != -ENOTTY && r != -EINVAL)
			log_ratelimited(&n->rl, LOG_WARN, "virtio-net %s: TUNSETOFFLOAD: %s", n->id,
					strerror(-r));
	}
	n->guest_offloads = guest;
	n->offloads = f;
}

/* Attaches the TAP queues of the first @pairs pairs, detaches the others. */
static void net_attach_pairs(struct net *n, unsigned pairs)
{
	n->active_pairs = pairs;
	if (n->tap.multi_queue) {
		for (unsigned i = 0; i < n->pairs; i++)
			(void)tap_set_queue_enabled(n->pair[i].fd, i < pairs);
	}
}

static void net_set_pairs(struct net *n, unsigned pairs)
{
	unsigned old = n->active_pairs;

	net_attach_pairs(n, pairs);
	for (unsigned i = 0; i < n->pairs; i++) {
		if (i >= old && i < pairs) {
			n->pair[i].rx_starved = false;
			virtio_pci_kick(n->vp, net_rxq(i));
			virtio_pci_kick(n->vp, net_txq(i));
		}
		net_pair_arm(&n->pair[i]);
	}
}

/* ---- control queue ---- */

static uint8_t net_ctrl_cmd(struct net *n, struct virtq_elem *e)
{
	uint8_t h[2];

	if (virtq_elem_read(e, 0, h, sizeof(h)) != sizeof(h))
		return NET_CTRL_ERR;
	if (h[0] == NET_CTRL_MQ && h[1] == NET_CTRL_MQ_VQ_PAIRS_SET &&
	    net_has(n, VIRTIO_NET_F_MQ)) {
		uint8_t v[2];
		unsigned pairs;

		if (virtq_elem_read(e, 2, v, sizeof(v)) != sizeof(v))
			return NET_CTRL_ERR;
		pairs = v[0] | (unsigned)v[1] << 8;
		if (pairs < 1 || pairs > n->pairs)
			return NET_CTRL_ERR;
		net_set_pairs(n, pairs);
		return NET_CTRL_OK;
	}
	if (h[0] == NET_CTRL_GUEST_OFFLOADS && h[1] == NET_CTRL_GUEST_OFFLOADS_SET &&
	    net_has(n, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS)) {
		uint8_t v[8];
		uint64_t off = 0;

		if (virtq_elem_read(e, 2, v, sizeof(v)) != sizeof(v))
			return NET_CTRL_ERR;
		for (unsigned i = 0; i < 8; i++)
			off |= (uint64_t)v[i] << (8 * i);
		/* Only offloads the driver negotiated (§5.1.6.5.6.1). */
		if (off & ~(n->features & NET_GUEST_OFFLOADS))
			return NET_CTRL_ERR;
		net_set_offloads(n, off);
		return NET_CTRL_OK;
	}
	return NET_CTRL_ERR;
}

static void net_ctrl(struct net *n)
{
	unsigned q = 2 * n->pairs;
	unsigned done = 0;

	while (done < n->queue_size && virtio_pci_pop(n->vp, q, n->ctrl) > 0) {
		uint8_t ack = net_ctrl_cmd(n, n->ctrl);

		(void)virtio_pci_push(n->vp, q, n->ctrl,
				      (uint32_t)virtq_elem_write(n->ctrl, 0, &ack, 1));
		done++;
	}
	if (done == n->queue_size)
		virtio_pci_kick(n->vp, q);
	if (done)
		virtio_pci_notify(n->vp, q);
}

/* ---- transport callbacks (lock held) ---- */

static void net_config_read(void *opaque, uint32_t offset, uint8_t *data, unsigned len)
{
	struct net *n = opaque;

	memcpy(data, n->cfg + offset, len); /* offset + len ≤ config_size: the transport checks */
}

static void net_queue_notify(void *opaque, unsigned q)
{
	struct net *n = opaque;
	struct net_pair *p;

	if (q == 2 * n->pairs) {
		net_ctrl(n);
		return;
	}
	p = &n->pair[q / 2];
	if (q % 2 == 0) {
		p->rx_starved = false; /* new buffers, maybe */
		net_rx(p);
	} else {
		net_tx(p);
	}
	net_pair_arm(p);
}

static void net_activate(void *opaque, uint64_t features)
{
	struct net *n = opaque;

	n->features = features;
	n->active = true;
	net_set_offloads(n, features & NET_GUEST_OFFLOADS);
	n->active_pairs = 0;
	net_set_pairs(n, 1); /* until VQ_PAIRS_SET (§5.1.6.5.5) */
}

static void net_dev_reset(void *opaque)
{
	struct net *n = opaque;

	n->active = false;
	n->features = 0;
	for (unsigned i = 0; i < n->pairs; i++) {
		net_pair_drop_held(&n->pair[i]);
		net_pair_arm(&n->pair[i]);
	}
	net_set_offloads(n, 0);
}

/* Buffers popped and not yet used (virtio_dev_ops.held): on a receive queue those of the
 * frame being delivered and the one in hand, on a transmit queue the chain waiting for the
 * TAP or the rate limiter. Each is the queue's latest pop: the transport can un-pop them. */
static unsigned net_held(void *opaque, unsigned q)
{
	struct net *n = opaque;
	const struct net_pair *p;

	if (q >= 2 * n->pairs)
		return 0; /* the control queue completes every command at once */
	p = &n->pair[q / 2];
	if (q % 2)
		return p->tx_held;
	return p->nused + p->rx_held;
}

/* ---- fd callbacks ---- */

static void net_fd_cb(void *opaque, uint32_t events)
{
	struct net_pair *p = opaque;
	struct net *n = p->net;

	virtio_pci_lock(n->vp);
	if ((events & (EPOLLERR | EPOLLHUP)) && !p->dead) {
		/* The TAP went away (or its queue broke): stop watching rather than spin. */
		log_warn("virtio-net %s: TAP queue %u failed; its frames are dropped from now on",
			 n->id, p->index);
		p->dead = true;
		(void)n->loop->del_fd(n->loop->loop, p->fd);
		p->watched = false;
		p->armed = 0;
	}
	if (events & EPOLLOUT)
		p->tx_blocked = false;
	if (!p->dead) {
		if (events & EPOLLIN)
			net_rx(p);
		if (events & EPOLLOUT)
			net_tx(p);
		net_pair_arm(p);
	}
	virtio_pci_unlock(n->vp);
}

static void net_rx_timer_cb(void *opaque, uint32_t events)
{
	struct net_pair *p = opaque;

	(void)events;
	virtio_pci_lock(p->net->vp);
	rate_limiter_timer_event(&p->rx_rl);
	net_rx(p);
	net_pair_arm(p);
	virtio_pci_unlock(p->net->vp);
}

static void net_tx_timer_cb(void *opaque, uint32_t events)
{
	struct net_pair *p = opaque;

	(void)events;
	virtio_pci_lock(p->net->vp);
	rate_limiter_timer_event(&p->tx_rl);
	net_tx(p);
	net_pair_arm(p);
	virtio_pci_unlock(p->net->vp);
}

/* ---- life cycle ---- */

static void net_pair_free(struct net *n, struct net_pair *p)
{
	if (n->loop) {
		if (p->watched)
			(void)n->loop->del_fd(n->loop->loop, p->fd);
		if (p->rx_rl_watched)
			(void)n->loop->del_fd(n->loop->loop, rate_limiter_fd(&p->rx_rl));
		if (p->tx_rl_watched)
			(void)n->loop->del_fd(n->loop->loop, rate_limiter_fd(&p->tx_rl));
	}
	rate_limiter_destroy(&p->rx_rl);
	rate_limiter_destroy(&p->tx_rl);
	free(p->frame);
	free(p->rx);
	free(p->tx);
	free(p->tx_iov);
	free(p->used);
}

void net_destroy(void *dev)
{
	struct net *n = dev;

	if (!n)
		return;
	n->vp = virtio_pci_destroy(n->vp);
	for (unsigned i = 0; i < n->pairs; i++)
		net_pair_free(n, &n->pair[i]);
	free(n->ctrl);
	tap_close(&n->tap);
	free(n);
}

static int net_pair_init(struct net *n, unsigned i, int fd, const struct rate_limiter_config *rl)
{
	struct net_pair *p = &n->pair[i];
	int r;

	p->net = n;
	p->index = i;
	p->fd = fd;
	p->frame = malloc(TAP_VNET_HDR_LEN + NET_MAX_FRAME);
	p->rx = malloc(sizeof(*p->rx));
	p->tx = malloc(sizeof(*p->tx));
	p->tx_iov = malloc(sizeof(struct iovec) * (VIRTQ_MAX_SEGS + 1));
	p->used = calloc(n->queue_size, sizeof(*p->used));
	if (!p->frame || !p->rx || !p->tx || !p->tx_iov || !p->used)
		return -ENOMEM;
	r = rate_limiter_init(&p->rx_rl, rl);
	if (r == 0)
		r = rate_limiter_init(&p->tx_rl, rl);
	if (r < 0 || !n->loop)
		return r;
	r = n->loop->add_fd(n->loop->loop, fd, 0, net_fd_cb, p);
	if (r < 0)
		return r;
	p->watched = true;
	if (rate_limiter_fd(&p->rx_rl) >= 0) {
		r = n->loop->add_fd(n->loop->loop, rate_limiter_fd(&p->rx_rl), EPOLLIN,
				    net_rx_timer_cb, p);
		if (r < 0)
			return r;
		p->rx_rl_watched = true;
		r = n->loop->add_fd(n->loop->loop, rate_limiter_fd(&p->tx_rl), EPOLLIN,
				    net_tx_timer_cb, p);
		if (r < 0)
			return r;
		p->tx_rl_watched = true;
	}
	return 0;
}

static void net_fill_config(struct net *n, const struct net_config *c)
{
	uint8_t *mac = n->cfg;

	n->mac_from_config = c->mac && config_parse_mac(c->mac, mac) == 0;
	if (!n->mac_from_config) {
		/* Cloud Hypervisor's default: random, locally administered, unicast. */
		if (getrandom(mac, 6, 0) != 6)
			memset(mac, 0x5a, 6);
		mac[0] = (uint8_t)((mac[0] & ~0x01) | 0x02);
	}
	n->cfg[6] = NET_S_LINK_UP;
	n->cfg[7] = 0;
	n->cfg[8] = (uint8_t)n->pairs;
	n->cfg[9] = (uint8_t)(n->pairs >> 8);
	n->cfg[10] = (uint8_t)c->mtu;
	n->cfg[11] = (uint8_t)(c->mtu >> 8);
}

static int net_alloc(const struct dev_ctx *ctx, const struct net_config *c, unsigned pairs,
		     struct net **ret)
{
	struct net *n;

	if (!ctx->pci || !ctx->mem || pairs < 1 || pairs > CONFIG_MAX_NET_FDS ||
	    c->queue_size < 2 || c->queue_size > VIRTQ_MAX_SIZE ||
	    (c->queue_size & (c->queue_size - 1)))
		return -EINVAL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->ctrl = malloc(sizeof(*n->ctrl));
	if (!n->ctrl) {
		free(n);
		return -ENOMEM;
	}
	n->loop = ctx->loop;
	n->pairs = pairs;
	for (unsigned i = 0; i < pairs; i++) /* net_destroy may see pairs never initialised */
		n->pair[i].rx_rl.timer_fd = n->pair[i].tx_rl.timer_fd = -1;
	n->queue_size = c->queue_size;
	n->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(1000000000ULL, 5);
	snprintf(n->id, sizeof(n->id), "%s", c->id ? c->id : "_net");
	net_fill_config(n, c);
	n->vops = (struct virtio_dev_ops){
		.name = "virtio-net",
		.device_id = VIRTIO_ID_NET,
		.class_code = PCI_CLASS_NET_ETHERNET,
		.features = NET_FEATURES | (c->mtu ? BIT64(VIRTIO_NET_F_MTU) : 0) |
			    (pairs > 1 ? BIT64(VIRTIO_NET_F_MQ) : 0),
		.num_queues = (uint16_t)(2 * pairs + 1),
		.max_queue_size = c->queue_size,
		.config_size = NET_CFG_SIZE,
		.config_read = net_config_read,
		.queue_notify = net_queue_notify,
		.activate = net_activate,
		.reset = net_dev_reset,
		.held = net_held,
	};
	*ret = n;
	return 0;
}

/* Takes over @tap (closed on failure). */
static int net_create(const struct dev_ctx *ctx, const struct net_config *c, const int *fds,
		      unsigned pairs, struct tap *tap, void **ret)
{
	struct net *n;
	int r = net_alloc(ctx, c, pairs, &n);

	if (r < 0) {
		if (tap)
			tap_close(tap);
		return r;
	}
	if (tap)
		n->tap = *tap;
	for (unsigned i = 0; r == 0 && i < pairs; i++)
		r = net_pair_init(n, i, fds[i], &c->rate_limiter);
	if (r == 0)
		r = virtio_pci_create(ctx->pci, ctx->mem, ctx->loop, &n->vops, n, &n->vp);
	if (r < 0) {
		net_destroy(n);
		return r;
	}
	*ret = n;
	return 0;
}

int net_create_with_fds(const struct dev_ctx *ctx, const struct net_config *n, const int *fds,
			unsigned pairs, void **ret)
{
	return net_create(ctx, n, fds, pairs, NULL, ret);
}

struct virtio_pci *net_transport(void *dev)
{
	return ((struct net *)dev)->vp;
}

void net_get_counters(void *dev, struct net_counters *ret)
{
	*ret = ((struct net *)dev)->c;
}

unsigned net_tap_offloads(void *dev)
{
	return ((struct net *)dev)->offloads;
}

unsigned net_active_pairs(void *dev)
{
	return ((struct net *)dev)->active_pairs;
}

/* ---- saved state (util/state.h) ---- */

/*
 * What one NIC keeps besides its transport (which has the negotiated features and whether the
 * driver is running: loading it calls net_activate): the guest offloads CTRL_GUEST_OFFLOADS
 * set, the queue pairs MQ enabled, and the config space the driver read (the MAC above all: a
 * random one is drawn at realize, and the guest has the snapshot's). Not state: the counters
 * (they count from realize) and the TAP, which is config (a clone may get its own TAP through
 * per-clone overrides). Buffers the data path holds across a pause are un-popped by the
 * transport (net_held); a frame read from the TAP and not yet delivered is not saved: it is
 * the host network's, lost like any frame in flight.
 */
struct net_state {
	uint8_t mac[6];
	uint16_t status;
	uint16_t max_virtqueue_pairs;
	uint16_t mtu;
	uint64_t guest_offloads;
	uint32_t active_pairs;
};

static const struct state_field net_state_fields[] = {
	STATE_BLOB(struct net_state, mac),
	STATE_U16(struct net_state, status),
	STATE_U16(struct net_state, max_virtqueue_pairs),
	STATE_U16(struct net_state, mtu),
	STATE_U64(struct net_state, guest_offloads),
	STATE_U32(struct net_state, active_pairs),
};

static uint16_t net_cfg16(const struct net *n, unsigned off)
{
	return (uint16_t)(n->cfg[off] | n->cfg[off + 1] << 8);
}

static int net_save_device(void *dev, json_t *obj)
{
	struct net *n = dev;
	struct net_state st = {
		.status = net_cfg16(n, 6),
		.max_virtqueue_pairs = net_cfg16(n, 8),
		.mtu = net_cfg16(n, 10),
		.guest_offloads = n->guest_offloads,
		.active_pairs = n->active_pairs,
	};

	memcpy(st.mac, n->cfg, sizeof(st.mac));
	return state_save_fields(obj, net_state_fields, ARRAY_SIZE(net_state_fields), &st);
}

/* Whether @st fits the NIC the config built and its restored transport (@n). */
static int net_state_check(const struct net *n, const struct net_state *st, char *err,
			   size_t errlen)
{
	if (st->max_virtqueue_pairs != n->pairs)
		return error_set(err, errlen, -EINVAL,
				 "field 'max_virtqueue_pairs': %u saved, the config gives %u",
				 st->max_virtqueue_pairs, n->pairs);
	if (st->mtu != net_cfg16(n, 10))
		return error_set(err, errlen, -EINVAL, "field 'mtu': %u saved, the config gives %u",
				 st->mtu, net_cfg16(n, 10));
	if (n->mac_from_config && memcmp(st->mac, n->cfg, sizeof(st->mac)))
		return error_set(err, errlen, -EINVAL,
				 "field 'mac': the guest has another MAC than --net mac=");
	if (st->status & ~NET_S_LINK_UP)
		return error_set(err, errlen, -EINVAL, "field 'status': unknown bits 0x%x",
				 st->status);
	if (st->guest_offloads & ~(n->features & NET_GUEST_OFFLOADS))
		return error_set(err, errlen, -EINVAL,
				 "field 'guest_offloads': offloads the driver did not negotiate");
	if (st->active_pairs > n->pairs || (n->active && !st->active_pairs))
		return error_set(err, errlen, -EINVAL,
				 "field 'active_pairs': expected 1..%u queue pairs", n->pairs);
	return 0;
}

/* After the transport's load (n->features and n->active are the driver's again). */
static int net_load_device(void *dev, const json_t *obj, char *err, size_t errlen)
{
	struct net *n = dev;
	struct net_state st;
	int r = state_load_fields(obj, net_state_fields, ARRAY_SIZE(net_state_fields), &st, err,
				  errlen);

	virtio_pci_lock(n->vp);
	if (r == 0)
		r = net_state_check(n, &st, err, errlen);
	if (r == 0) {
		memcpy(n->cfg, st.mac, sizeof(st.mac));
		n->cfg[6] = (uint8_t)st.status;
		n->cfg[7] = (uint8_t)(st.status >> 8);
		/* The TAP (maybe a clone's own) gets the offloads and queues the driver set. */
		net_set_offloads(n, st.guest_offloads);
		net_attach_pairs(n, st.active_pairs);
		n->paused = true; /* as after net_set_pause: resume reads the TAP again */
		for (unsigned i = 0; i < n->pairs; i++)
			net_pair_arm(&n->pair[i]);
	}
	virtio_pci_unlock(n->vp);
	return r;
}

int net_state_save(void *dev, json_t *obj, char *err, size_t errlen)
{
	struct net *n = dev;

	return vdev_state_save(n->vp, dev, net_save_device, obj, err, errlen);
}

int net_state_load(void *dev, const json_t *obj, char *err, size_t errlen)
{
	struct net *n = dev;

	return vdev_state_load(n->vp, dev, net_load_device, obj, err, errlen);
}

/* ---- dev_ops: every --net ---- */

struct net_set {
	unsigned num;
	struct net *nics[CONFIG_MAX_NETS];
};

static void net_set_unrealize(void *dev)
{
	struct net_set *s = dev;

	if (!s)
		return;
	for (unsigned i = s->num; i-- > 0;)
		net_destroy(s->nics[i]);
	free(s);
}

static int net_realize_one(const struct dev_ctx *ctx, const struct net_config *c, void **ret)
{
	unsigned pairs = c->num_queues / 2;
	struct tap tap;
	int r = tap_open(c, pairs, &tap, ctx->err, ctx->errlen);

	if (r < 0)
		return r;
	r = net_create(ctx, c, tap.fds, pairs, &tap, ret);
	if (r < 0 && ctx->err && !ctx->err[0])
		error_set(ctx->err, ctx->errlen, r, "--net: cannot create the device: %s",
			  strerror(-r));
	return r;
}

static int net_realize(const struct dev_ctx *ctx, const struct json_t *state, void **ret)
{
	const struct vm_config *cfg = ctx->cfg;
	const json_t *saved = NULL;
	struct net_set *s;
	char why[256];
	int r;

	if (state) {
		r = vdev_state_get_instances(state, "nets", cfg->num_nets, &saved, why,
					     sizeof(why));
		if (r < 0)
			return error_set(ctx->err, ctx->errlen, r, "--net: %s", why);
	}
	if (!cfg->num_nets) {
		*ret = NULL;
		return 0;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (unsigned i = 0; i < cfg->num_nets; i++) {
		void *nic;

		r = net_realize_one(ctx, &cfg->nets[i], &nic);
		if (r < 0) {
			net_set_unrealize(s);
			return r;
		}
		s->nics[s->num++] = nic;
		r = saved ? net_state_load(nic, json_array_get(saved, i), why, sizeof(why)) : 0;
		if (r < 0) {
			error_set(ctx->err, ctx->errlen, r, "--net %s: %s", s->nics[i]->id, why);
			net_set_unrealize(s);
			return r;
		}
	}
	*ret = s;
	return 0;
}

static int net_set_save(void *dev, json_t *state, char *err, size_t errlen)
{
	struct net_set *s = dev;
	int r = 0;

	for (unsigned i = 0; r == 0 && s && i < s->num; i++)
		r = vdev_state_append(state, "nets", net_state_save, s->nics[i], "virtio-net",
				      s->nics[i]->id, err, errlen);
	return r;
}

static void net_set_reset(void *dev)
{
	struct net_set *s = dev;

	for (unsigned i = 0; i < s->num; i++)
		virtio_pci_reset(s->nics[i]->vp);
}

void net_pause(void *dev)
{
	struct net *n = dev;

	virtio_pci_lock(n->vp);
	n->paused = true; /* the TAP is not read: frames wait in the host */
	for (unsigned j = 0; j < n->pairs; j++)
		net_pair_arm(&n->pair[j]);
	virtio_pci_unlock(n->vp);
	virtio_pci_pause(n->vp);
}

void net_resume(void *dev)
{
	struct net *n = dev;

	virtio_pci_resume(n->vp);
	virtio_pci_lock(n->vp);
	n->paused = false;
	for (unsigned j = 0; j < n->pairs; j++) {
		n->pair[j].rx_starved = false;
		net_rx(&n->pair[j]);
		net_tx(&n->pair[j]);
		net_pair_arm(&n->pair[j]);
	}
	virtio_pci_unlock(n->vp);
}

static void net_set_pause(void *dev)
{
	struct net_set *s = dev;

	for (unsigned i = 0; i < s->num; i++)
		net_pause(s->nics[i]);
}

static void net_set_resume(void *dev)
{
	struct net_set *s = dev;

	for (unsigned i = 0; i < s->num; i++)
		net_resume(s->nics[i]);
}

/* Cloud Hypervisor's names (rx_bytes, rx_frames, tx_bytes, tx_frames) and three of ours. */
static void net_set_counters(void *dev, dev_counter_fn emit, void *opaque)
{
	struct net_set *s = dev;

	for (unsigned i = 0; i < s->num; i++) {
		struct net *n = s->nics[i];
		struct net_counters c;

		virtio_pci_lock(n->vp);
		c = n->c;
		virtio_pci_unlock(n->vp);
		emit(opaque, n->id, "rx_bytes", c.rx_bytes);
		emit(opaque, n->id, "rx_frames", c.rx_frames);
		emit(opaque, n->id, "rx_dropped", c.rx_dropped);
		emit(opaque, n->id, "rx_bad_buffers", c.rx_bad_buffers);
		emit(opaque, n->id, "tx_bytes", c.tx_bytes);
		emit(opaque, n->id, "tx_frames", c.tx_frames);
		emit(opaque, n->id, "tx_dropped", c.tx_dropped);
	}
}

/* vm.info's device tree: each NIC by its id, with its PCI slot. */
static void net_set_nodes(void *dev, dev_node_fn emit, void *opaque)
{
	struct net_set *s = dev;

	for (unsigned i = 0; i < s->num; i++)
		emit(opaque, s->nics[i]->id,
		     (int)pci_function_slot(virtio_pci_function(s->nics[i]->vp)));
}

const struct dev_ops net_ops = {
	.name = "virtio-net",
	.realize = net_realize,
	.unrealize = net_set_unrealize,
	.reset = net_set_reset,
	.pause = net_set_pause,
	.resume = net_set_resume,
	.save = net_set_save,
	.counters = net_set_counters,
	.nodes = net_set_nodes,
};
