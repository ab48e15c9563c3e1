/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The virtio devices (devices/virtio): each a const struct dev_ops listed in dev_table, built
 * on the virtio-PCI transport (virtio/virtio.h). The extra functions are test hooks.
 */
#ifndef CUBICLE_DEVICES_VIRTIO_VIRTIO_DEVICES_H
#define CUBICLE_DEVICES_VIRTIO_VIRTIO_DEVICES_H

#include <stdint.h>

#include "devices/device.h"

struct virtio_pci;

extern const struct dev_ops rng_ops;
extern const struct dev_ops console_ops;
extern const struct dev_ops net_ops;
extern const struct dev_ops vsock_ops;

/* virtio-rng (virtio id 4): one queue. */
#define RNG_QUEUE_SIZE	256
#define RNG_MAX_REQUEST (64 * 1024) /* bytes per request; the driver asks again for more */

/*
 * The tail of rng_ops.realize: a virtio-rng reading from @src (a character device, a FIFO or a
 * non-empty regular file, read again from its start at EOF). Logs and returns -errno naming
 * --rng when @src cannot be opened or read, -EINVAL for an empty file. ctx->loop may be NULL
 * (tests): then virtio_pci_run_notify() drives the queue.
 */
int rng_create(const struct dev_ctx *ctx, const char *src, void **ret);
struct virtio_pci *rng_transport(void *dev);

/* virtio-console (virtio id 3): receiveq 0, transmitq 1, no multiport. */
#define CONSOLE_QUEUE_SIZE 256
#define CONSOLE_RX_CHUNK   4096 /* bytes read from the host per receive buffer, at most */

/*
 * The tail of console_ops.realize, and a test hook: input from @in_fd (-1: none), output to
 * @out_fd (-1: discarded); the fds stay the caller's. A non-blocking @out_fd gets backpressure
 * (the transmit queue waits for EPOLLOUT); ctx->loop is required when either fd is given.
 */
int console_create_with_fds(const struct dev_ctx *ctx, int in_fd, int out_fd, void **ret);
struct virtio_pci *console_transport(void *dev);

/*
 * virtio-net (virtio id 1) on TAP queues: receiveq 2i / transmitq 2i+1 for pair i, then the
 * control queue. net_ops realizes every --net of the config.
 */
#define NET_MAX_FRAME (65535 + 14 + 4) /* bytes after the vnet header: a GSO frame, VLAN */
#define NET_RX_BATCH  64	       /* frames per wake-up of a queue pair, each way */
#define NET_TX_BATCH  64
#define NET_MIN_FRAME 14 /* an Ethernet header */

struct net_config;

/*
 * One NIC from @n whose TAP queues are @fds (@pairs of them, used as is: no TAP ioctl is
 * required to succeed, so a test or fuzzer may pass SOCK_SEQPACKET sockets). The fds stay the
 * caller's. Returns 0 with *@ret, -EINVAL or -ENOMEM.
 */
int net_create_with_fds(const struct dev_ctx *ctx, const struct net_config *n, const int *fds,
			unsigned pairs, void **ret);
/* Frees a NIC from net_create_with_fds. Accepts NULL. */
void net_destroy(void *dev);
struct virtio_pci *net_transport(void *dev);
/* The counters of one NIC, as net_ops.counters reports them. */
struct net_counters {
	uint64_t rx_bytes, rx_frames, rx_dropped;
	uint64_t tx_bytes, tx_frames, tx_dropped;
};
void net_get_counters(void *dev, struct net_counters *ret);
/* The TAP offload flags (TAP_OFFLOAD_*) last requested for the guest. */
unsigned net_tap_offloads(void *dev);
/* Queue pairs the driver enabled (VQ_PAIRS_SET; 1 after reset). */
unsigned net_active_pairs(void *dev);
/* virtio-vsock (virtio id 19): receiveq 0, transmitq 1, eventq 2; host side over Unix
 * sockets (vsock.h). */
#define VSOCK_QUEUE_SIZE 256

struct vsock_config;

/*
 * The tail of vsock_ops.realize, and a test hook: listens on @cfg->socket (a stale socket
 * there is replaced) for a guest with @cfg->cid. Returns 0 with *@ret, -EINVAL without a PCI
 * root or memory, the listen -errno (with ctx->err naming --vsock) or -ENOMEM. ctx->loop may be
 * NULL (tests): then vsock_accept_now() accepts and virtio_pci_run_notify() drives the queues.
 */
int vsock_create(const struct dev_ctx *ctx, const struct vsock_config *cfg, void **ret);
struct virtio_pci *vsock_transport(void *dev);
/* Tests: what the listener's EPOLLIN does (accept host connections, send what is owed). */
void vsock_accept_now(void *dev);
/* Tests: what the set-up timer does at monotonic time @now_ns (time_now_ns()). */
void vsock_expire_at(void *dev, uint64_t now_ns);

#endif
