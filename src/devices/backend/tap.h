/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TAP backend of virtio-net: one non-blocking TAP queue fd per virtio queue pair, each
 * carrying a 12-byte virtio_net_hdr_v1 in front of every frame (IFF_VNET_HDR,
 * TUNSETVNETHDRSZ), so checksum and segmentation offloads pass between the guest and the host
 * kernel untouched.
 */
#ifndef CUBICLE_DEVICES_BACKEND_TAP_H
#define CUBICLE_DEVICES_BACKEND_TAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#define TAP_VNET_HDR_LEN 12 /* struct virtio_net_hdr_v1, num_buffers included */
#define TAP_MAX_QUEUES	 CONFIG_MAX_NET_FDS

/* TUNSETOFFLOAD bits (linux/if_tun.h) for tap_set_offload(). */
#define TAP_OFFLOAD_CSUM    0x01
#define TAP_OFFLOAD_TSO4    0x02
#define TAP_OFFLOAD_TSO6    0x04
#define TAP_OFFLOAD_TSO_ECN 0x08

struct tap {
	int fds[TAP_MAX_QUEUES];
	unsigned num_fds;
	bool owned; /* we opened the fds (otherwise they are the config's: fd=) */
	bool multi_queue;
	char name[CONFIG_NET_IFNAMSIZ];
};

/*
 * Opens @pairs queues of the TAP @n describes: the fds it hands over (n->fds, which stay the
 * config's), or the TAP named n->tap (created when it does not exist) or a new one the kernel
 * names. A TAP cubicle opens by name is given n->ip/n->mask, n->host_mac and n->mtu when set
 * and is brought up. Every fd gets O_NONBLOCK and a 12-byte vnet header. Returns 0 with *@ret
 * filled, or -errno with one line in @err naming --net and the problem (no permission, a TAP
 * made without IFF_MULTI_QUEUE for num_queues > 2, an fd that is not a TAP with vnet_hdr).
 */
int tap_open(const struct net_config *n, unsigned pairs, struct tap *ret, char *err, size_t errlen);
/* Closes the fds it owns. Accepts a zeroed or already closed struct. */
void tap_close(struct tap *t);
/* TUNSETOFFLOAD with TAP_OFFLOAD_* bits on queue fd @fd: what the kernel may hand us. */
int tap_set_offload(int fd, unsigned flags);
/* Attaches (@enable) or detaches queue fd @fd of a multi-queue TAP (TUNSETQUEUE): the kernel
 * steers no frame to a detached queue. Returns 0 or -errno. */
int tap_set_queue_enabled(int fd, bool enable);

#endif
