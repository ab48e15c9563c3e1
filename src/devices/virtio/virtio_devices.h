/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The virtio devices (devices/virtio): each a const struct dev_ops listed in dev_table, built
 * on the virtio-PCI transport (virtio/virtio.h). The extra functions are test hooks.
 */
#ifndef CUBICLE_DEVICES_VIRTIO_VIRTIO_DEVICES_H
#define CUBICLE_DEVICES_VIRTIO_VIRTIO_DEVICES_H

#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"

struct virtio_pci;

/*
 * Saved state (snapshot) of one instance of net, vsock, balloon or pmem: the transport's object
 * (virtio_pci_save) with the device's own fields, everything that is not the transport's,
 * under "device" (util/state.h). X_state_save() runs on the loop thread with the device paused
 * and returns 0 or -errno with one line in @err (-EBUSY: elements in flight the device does not
 * hold). X_state_load() takes such an object into an instance the config just built, checked
 * as hostile input: 0, or -EINVAL with one line in @err naming the field, and the instance is
 * then fit only to be destroyed; on success it is quiesced as after pause(), until resume().
 * These are what the dev_ops entries call per instance, and test hooks.
 */
int net_state_save(void *dev, struct json_t *obj, char *err, size_t errlen);
int net_state_load(void *dev, const struct json_t *obj, char *err, size_t errlen);
int vsock_state_save(void *dev, struct json_t *obj, char *err, size_t errlen);
int vsock_state_load(void *dev, const struct json_t *obj, char *err, size_t errlen);
int balloon_state_save(void *dev, struct json_t *obj, char *err, size_t errlen);
int balloon_state_load(void *dev, const struct json_t *obj, char *err, size_t errlen);
int pmem_state_save(void *dev, struct json_t *obj, char *err, size_t errlen);
int pmem_state_load(void *dev, const struct json_t *obj, char *err, size_t errlen);

/* vdev_state.c: what the four have in common. A device's own part: @save fills @obj (0 or
 * -ENOMEM); @load reads it after the transport was loaded (0 or -EINVAL with @err). */
typedef int (*vdev_save_fn)(void *dev, struct json_t *obj);
typedef int (*vdev_load_fn)(void *dev, const struct json_t *obj, char *err, size_t errlen);
/* One instance: virtio_pci_save() into @obj, then @save into @obj's "device". */
int vdev_state_save(struct virtio_pci *vp, void *dev, vdev_save_fn save, struct json_t *obj,
		    char *err, size_t errlen);
/* One instance: virtio_pci_load() from @obj, then @load from its "device". */
int vdev_state_load(struct virtio_pci *vp, void *dev, vdev_load_fn load, const struct json_t *obj,
		    char *err, size_t errlen);
/*
 * A dev_ops entry's instances, in config order, are the array @key of its state ("nets",
 * "pmems"; absent when there are none). vdev_state_append() appends one: @save (an
 * X_state_save) of @dev into a new object; 0 or -errno with one line in @err naming @name and
 * @id. On load, vdev_state_get_instances() gives that array, which must have exactly @n
 * entries (else -EINVAL with @err); *@ret is NULL when @n is 0 and the array absent.
 */
#define VDEV_STATE_MAX_INSTANCES 64
typedef int (*vdev_state_save_fn)(void *dev, struct json_t *obj, char *err, size_t errlen);
/* @save of @dev into @obj, its error line prefixed with @name (a dev_ops entry of one instance
 * saves it as its whole state). */
int vdev_state_save_named(struct json_t *obj, vdev_state_save_fn save, void *dev, const char *name,
			  char *err, size_t errlen);
int vdev_state_append(struct json_t *state, const char *key, vdev_state_save_fn save, void *dev,
		      const char *name, const char *id, char *err, size_t errlen);
int vdev_state_get_instances(const struct json_t *state, const char *key, unsigned n,
			     const struct json_t **ret, char *err, size_t errlen);

extern const struct dev_ops rng_ops;
extern const struct dev_ops console_ops;
extern const struct dev_ops net_ops;
extern const struct dev_ops vsock_ops;
extern const struct dev_ops balloon_ops;
extern const struct dev_ops pmem_ops;

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
 * The tail of console_ops.realize from a snapshot, and a test hook: takes the state
 * console_ops.save wrote (the transport, "device": {"tx_off"}) into a console just created,
 * which is left paused (console_ops.resume). Returns 0, or -EINVAL with one line in @err; the
 * console is then fit only for unrealize.
 */
int console_restore(void *dev, const struct json_t *state, char *err, size_t errlen);

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
	uint64_t rx_bad_buffers; /* receive buffers the guest got wrong, given back unused */
	uint64_t tx_bytes, tx_frames, tx_dropped;
};
void net_get_counters(void *dev, struct net_counters *ret);
/* The TAP offload flags (TAP_OFFLOAD_*) last requested for the guest. */
unsigned net_tap_offloads(void *dev);
/* Queue pairs the driver enabled (VQ_PAIRS_SET; 1 after reset). */
unsigned net_active_pairs(void *dev);
/* One NIC's pause and resume (what net_ops does for each): the TAP is not read while paused,
 * and resume reads it again. */
void net_pause(void *dev);
void net_resume(void *dev);
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
/* virtio-balloon (virtio id 5), balloon.c. */
#define BALLOON_QUEUE_SIZE 256
#define BALLOON_MAX_PFNS   4096 /* frame numbers read per element; Linux sends ≤ 256 */
#define BALLOON_STATS_MAX  16	/* statistics tags kept (VIRTIO_BALLOON_S_*: 0..15) */
enum { BALLOON_Q_INFLATE, BALLOON_Q_DEFLATE, BALLOON_Q_STATS, BALLOON_Q_REPORTING };

struct balloon_config;

/* What the device did since realize (vm.counters). */
struct balloon_counters {
	uint64_t inflated_pages, deflated_pages; /* frame numbers accepted */
	uint64_t discarded_bytes;		 /* given back to the host (madvise) */
	uint64_t reported_bytes;		 /* of those, from free page reporting */
	uint64_t bad_pfns;			 /* frame numbers outside guest RAM: dropped */
	uint64_t dropped_pfns;	 /* beyond BALLOON_MAX_PFNS in one element: dropped */
	uint64_t bad_requests;	 /* malformed elements (odd lengths, wrong direction) */
	uint64_t discard_failed; /* pages not given back: madvise failed, or huge pages */
	uint64_t stats_updates;
};

struct balloon_info {
	uint64_t target_bytes; /* num_pages the device asks for */
	uint64_t actual_bytes; /* what the driver says it holds */
	struct balloon_counters counters;
	uint64_t stats[BALLOON_STATS_MAX]; /* the driver's last statistics, by tag */
	uint32_t stats_valid;		   /* bit n: stats[n] was reported */
};

/*
 * The tail of balloon_ops.realize, and a test hook: a virtio-balloon inflated to @bc->size at
 * start. Returns 0 with *@ret, -EINVAL for a size beyond 2^32 pages, or the transport's -errno.
 */
int balloon_create(const struct dev_ctx *ctx, const struct balloon_config *bc, void **ret);
struct virtio_pci *balloon_transport(void *dev);
/*
 * vm.resize desired_balloon: asks the driver to hold @bytes (a multiple of 4 KiB, at most the
 * guest's RAM) and sends a config-change interrupt when the target changed. Any thread; takes
 * the transport's lock. Returns 0, -ENODEV for @dev NULL (no balloon), -EINVAL.
 */
int balloon_set_target(void *dev, uint64_t bytes);
/* The device's state and counters (any thread). */
void balloon_get_info(void *dev, struct balloon_info *ret);
/*
 * What the driver says it holds in bytes, at most the guest's RAM (the driver writes actual:
 * not trusted), 0 for @dev NULL (no balloon): vm.info's memory_actual_size is the memory size
 * minus this. Any thread.
 */
uint64_t balloon_actual_bytes(void *dev);
/* Returns the held statistics buffer so the driver sends fresh values (any thread). */
void balloon_stats_refresh(void *dev);

/* virtio-pmem (virtio id 27), pmem.c: one device per --pmem. */
#define PMEM_QUEUE_SIZE 64
#define PMEM_GPA_ALIGN	(128ULL << 20) /* a Linux memory section: memremap_pages is happy */
#define PMEM_BATCH	64	       /* requests served per wake-up */

struct pmem_config;

/* Counters of one device (vm.counters). */
struct pmem_counters {
	uint64_t flushes, flush_errors, bad_requests;
};

/*
 * The tail of pmem_ops.realize for one --pmem, and a test hook: opens and maps @pc->file and
 * places it in guest memory through ctx->map_ram (required). Returns 0 with *@ret, or -errno
 * with one line in ctx->err naming --pmem and the file.
 */
int pmem_create(const struct dev_ctx *ctx, const struct pmem_config *pc, void **ret);
void pmem_destroy(void *dev);
struct virtio_pci *pmem_transport(void *dev);
/* Where the device sits in guest-physical memory, and its size. */
void pmem_region(void *dev, uint64_t *ret_gpa, uint64_t *ret_size);
void pmem_get_counters(void *dev, struct pmem_counters *ret);
/* Waits for the fdatasync in flight, and those it leads to, and answers their requests (loop
 * thread; pause calls it, and tests without a loop). */
void pmem_drain(void *dev);
/* Device @i (in --pmem order) of what pmem_ops.realize returned, or NULL (tests). */
void *pmem_set_device(void *set, unsigned i);

#endif
