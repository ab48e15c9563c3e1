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
