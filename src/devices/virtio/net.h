/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to virtio-net: the device state shared by net.c (life cycle, config space, control
 * queue) and net_rxtx.c (the data path). Everything here runs with the transport's lock held.
 */
#ifndef CUBICLE_DEVICES_VIRTIO_NET_H
#define CUBICLE_DEVICES_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "devices/backend/tap.h"
#include "devices/virtio/virtio_devices.h"
#include "util/log.h"
#include "util/ratelimit.h"
#include "virtio/virtio.h"

/* Feature bits (virtio 1.2 §5.1.3). */
#define VIRTIO_NET_F_CSUM		 0
#define VIRTIO_NET_F_GUEST_CSUM		 1
#define VIRTIO_NET_F_CTRL_GUEST_OFFLOADS 2
#define VIRTIO_NET_F_MTU		 3
#define VIRTIO_NET_F_MAC		 5
#define VIRTIO_NET_F_GUEST_TSO4		 7
#define VIRTIO_NET_F_GUEST_TSO6		 8
#define VIRTIO_NET_F_GUEST_ECN		 9
#define VIRTIO_NET_F_GUEST_UFO		 10
#define VIRTIO_NET_F_HOST_TSO4		 11
#define VIRTIO_NET_F_HOST_TSO6		 12
#define VIRTIO_NET_F_HOST_ECN		 13
#define VIRTIO_NET_F_MRG_RXBUF		 15
#define VIRTIO_NET_F_STATUS		 16
#define VIRTIO_NET_F_CTRL_VQ		 17
#define VIRTIO_NET_F_MQ			 22

/* The guest offloads CTRL_GUEST_OFFLOADS may switch (same bit numbers as the features). */
#define NET_GUEST_OFFLOADS                                                 \
	(BIT64(VIRTIO_NET_F_GUEST_CSUM) | BIT64(VIRTIO_NET_F_GUEST_TSO4) | \
	 BIT64(VIRTIO_NET_F_GUEST_TSO6) | BIT64(VIRTIO_NET_F_GUEST_ECN))

/* struct virtio_net_hdr_v1 */
#define NET_HDR_F_NEEDS_CSUM 1
#define NET_HDR_F_DATA_VALID 2
#define NET_HDR_GSO_NONE     0
#define NET_HDR_GSO_TCPV4    1
#define NET_HDR_GSO_TCPV6    4
#define NET_HDR_GSO_ECN	     0x80
#define NET_HDR_NUM_BUFFERS  10 /* offset of num_buffers */
#define NET_HDR_GSO_SIZE     4

/* Control queue (§5.1.6.5). */
#define NET_CTRL_OK		    0
#define NET_CTRL_ERR		    1
#define NET_CTRL_MQ		    4
#define NET_CTRL_MQ_VQ_PAIRS_SET    0
#define NET_CTRL_GUEST_OFFLOADS	    5
#define NET_CTRL_GUEST_OFFLOADS_SET 0

#define NET_S_LINK_UP 1
#define NET_CFG_SIZE  12 /* mac[6], status, max_virtqueue_pairs, mtu */

#ifndef BIT64
#define BIT64(n) (1ULL << (n))
#endif

struct net;

struct net_pair {
	struct net *net;
	unsigned index;
	int fd;
	bool watched;	 /* fd registered with the loop */
	bool dead;	 /* the TAP queue reported an error: no longer watched */
	uint32_t armed;	 /* epoll events asked for */
	bool rx_starved; /* no receive buffer: EPOLLIN off until the driver notifies */
	bool tx_blocked; /* the TAP said EAGAIN: EPOLLOUT */

	/* A frame read from the TAP, vnet header first, until the guest has taken all of it. */
	uint8_t *frame;
	size_t frame_len, frame_off;
	bool frame_charged; /* paid to the rx rate limiter */
	bool rx_held;	    /* rx holds a popped buffer not yet used */
	struct virtq_elem *rx;
	struct virtq_used_item *used; /* the buffers of a mergeable frame so far (queue size) */
	unsigned nused;
	uint8_t *num_buffers[2]; /* where the first buffer's num_buffers bytes are */

	bool tx_held, tx_charged;
	struct virtq_elem *tx;
	struct iovec *tx_iov; /* the frame as written: our header copy + the guest's bytes */

	struct rate_limiter rx_rl, tx_rl;
	bool rx_rl_watched, tx_rl_watched;
};

struct net {
	struct virtio_pci *vp;
	struct virtio_dev_ops vops; /* per NIC: features and queue count depend on the config */
	const struct dev_loop *loop;
	char id[CONFIG_ID_MAX];
	struct tap tap; /* the TAP we opened (empty for net_create_with_fds) */
	unsigned pairs, active_pairs;
	uint16_t queue_size;
	uint8_t cfg[NET_CFG_SIZE];
	uint64_t features;	 /* negotiated, from activate */
	uint64_t guest_offloads; /* NET_GUEST_OFFLOADS bits in force (CTRL_GUEST_OFFLOADS) */
	unsigned offloads;	 /* TAP_OFFLOAD_* in force: what guest_offloads maps to */
	bool mac_from_config;	 /* --net mac= gave cfg's MAC (else random at realize) */
	bool active;		 /* DRIVER_OK and not reset */
	bool paused;
	struct virtq_elem *ctrl;
	struct net_counters c;
	struct log_ratelimit rl;
	struct net_pair pair[CONFIG_MAX_NET_FDS];
};

static inline unsigned net_rxq(unsigned pair)
{
	return 2 * pair;
}

static inline unsigned net_txq(unsigned pair)
{
	return 2 * pair + 1;
}

static inline bool net_has(const struct net *n, unsigned feature)
{
	return n->features & BIT64(feature);
}

/* net_rxtx.c */
/* Reads frames from the TAP into the pair's receive queue, bounded by NET_RX_BATCH. */
void net_rx(struct net_pair *p);
/* Writes the pair's transmit queue to the TAP, bounded by NET_TX_BATCH. */
void net_tx(struct net_pair *p);
/* Drops what the pair holds (a reset: the buffers are the driver's again). */
void net_pair_drop_held(struct net_pair *p);
/* Sets the pair's epoll interest from its state. */
void net_pair_arm(struct net_pair *p);

#endif
