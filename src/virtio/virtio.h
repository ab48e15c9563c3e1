/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The virtio-PCI modern transport (virtio 1.2 §4.1) and the contract a virtio device implements
 * on top of it (DESIGN §5). A device supplies a const struct virtio_dev_ops (its virtio id, its
 * features, its config space, what to do when a queue is notified); the transport owns the PCI
 * function, the virtqueues, feature negotiation, the status state machine, MSI-X and the
 * notification eventfds.
 *
 * One PCI function, BAR 0 (64-bit memory, 16 KiB, not prefetchable):
 *   0x0000 common configuration (cfg_type 1)
 *   0x1000 ISR status (cfg_type 3)
 *   0x1800 device-specific configuration (cfg_type 4), up to 2 KiB
 *   0x2000 notifications (cfg_type 2): queue q at 0x2000 + 4 q (notify_off q, multiplier 4)
 *   0x3000 MSI-X table (num_queues + 1 vectors), 0x3800 its PBA (emulated by pci/msix.c)
 * The PCI configuration access capability (cfg_type 5) is not offered: serving it would run a
 * BAR access from a config-space hook, under the root's lock, inverting the lock order below.
 *
 * Threads. A notify (a guest write to the notify region) arrives on a vCPU thread; it only
 * writes the queue's eventfd, which the VMM loop (DESIGN §2) watches and which then calls
 * ops->queue_notify on the loop thread. When the VM offers dev_loop.ioeventfd, the same
 * eventfd is also registered at the queue's notify address (16-bit writes, what Linux does)
 * from DRIVER_OK until reset, following the BAR: the kernel then signals it without a vCPU
 * exit, and the MMIO handler only sees the notifies it does not catch. Interrupts are MSI-X
 * only: with MSI-X disabled a used-buffer or config-change notification is dropped (no INTx:
 * Linux always enables MSI-X for virtio-pci when it is offered; a polling driver still sees
 * the rings).
 *
 * Locking: one mutex per transport (struct virtio_pci) guards its registers and queues. Every
 * ops callback is called with it held; a device's own loop callbacks (backend fds) take it
 * with virtio_pci_lock() before touching queues. The lock is taken before the PCI root's (never
 * inside a PCI hook), which is what pci.h allows bar_rw and msix_notify.
 *
 * A driver that breaks the rules (a ring that fails virtq_init, a chain virtq_pop() refuses, a
 * queue enabled before FEATURES_OK) puts the device in DEVICE_NEEDS_RESET: status bit 0x40, a
 * config-change interrupt, one rate-limited log line; the queues stop until the driver writes 0
 * to device_status, which resets the device and its queues.
 */
#ifndef CUBICLE_VIRTIO_VIRTIO_H
#define CUBICLE_VIRTIO_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#include "bus/bus.h"
#include "mem/guest_mem.h"
#include "virtio/virtq.h"

struct json_t; /* jansson: saved state (util/state.h) */
struct pci_root;
struct pci_function;

/* PCI identity (virtio 1.2 §4.1.2). */
#define VIRTIO_PCI_VENDOR_ID	   0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE  0x1040 /* + virtio device id */
#define VIRTIO_PCI_REVISION	   1
#define VIRTIO_PCI_MAX_QUEUES	   64 /* per device; notify and MSI-X regions hold more */
#define VIRTIO_PCI_MAX_CONFIG_SIZE 0x800

/* Virtio device ids (§5). */
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG	  4
#define VIRTIO_ID_NET	  1
#define VIRTIO_ID_VSOCK	  19
#define VIRTIO_ID_BALLOON 5
#define VIRTIO_ID_PMEM	  27

/* Device status bits (§2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER	  0x02
#define VIRTIO_STATUS_DRIVER_OK	  0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED	  0x80

/* Feature bits (§6); device-specific ones are below 24. */
#define VIRTIO_F_INDIRECT_DESC	 28
#define VIRTIO_F_EVENT_IDX	 29
#define VIRTIO_F_VERSION_1	 32
#define VIRTIO_F_ACCESS_PLATFORM 33

#define VIRTIO_MSI_NO_VECTOR 0xffff

/* The BAR layout above. */
#define VIRTIO_PCI_BAR		  0
#define VIRTIO_PCI_BAR_SIZE	  0x4000
#define VIRTIO_PCI_COMMON_OFF	  0x0000
#define VIRTIO_PCI_COMMON_SIZE	  0x0038
#define VIRTIO_PCI_ISR_OFF	  0x1000
#define VIRTIO_PCI_DEVCFG_OFF	  0x1800
#define VIRTIO_PCI_NOTIFY_OFF	  0x2000
#define VIRTIO_PCI_NOTIFY_MULT	  4
#define VIRTIO_PCI_MSIX_TABLE_OFF 0x3000
#define VIRTIO_PCI_MSIX_PBA_OFF	  0x3800

/* Common configuration offsets (§4.1.4.3). */
#define VIRTIO_PCI_COMMON_DFSELECT 0x00
#define VIRTIO_PCI_COMMON_DF	   0x04
#define VIRTIO_PCI_COMMON_GFSELECT 0x08
#define VIRTIO_PCI_COMMON_GF	   0x0c
#define VIRTIO_PCI_COMMON_MSIX	   0x10
#define VIRTIO_PCI_COMMON_NUMQ	   0x12
#define VIRTIO_PCI_COMMON_STATUS   0x14
#define VIRTIO_PCI_COMMON_CFGGEN   0x15
#define VIRTIO_PCI_COMMON_Q_SELECT 0x16
#define VIRTIO_PCI_COMMON_Q_SIZE   0x18
#define VIRTIO_PCI_COMMON_Q_MSIX   0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE 0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF   0x1e
#define VIRTIO_PCI_COMMON_Q_DESC   0x20
#define VIRTIO_PCI_COMMON_Q_AVAIL  0x28
#define VIRTIO_PCI_COMMON_Q_USED   0x30

/* Capability cfg_type values (§4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG	  3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4

/* ISR bits. */
#define VIRTIO_ISR_QUEUE  0x1
#define VIRTIO_ISR_CONFIG 0x2

struct virtio_pci;

/*
 * What a device tells the transport. Callbacks get @opaque (virtio_pci_create's) and run with
 * the transport's lock held, on the thread named; any may be NULL.
 */
struct virtio_dev_ops {
	const char *name;	 /* for logs and the PCI function, e.g. "virtio-rng" */
	uint16_t device_id;	 /* VIRTIO_ID_* */
	uint32_t class_code;	 /* PCI class << 16 | subclass << 8 | prog-if */
	uint64_t features;	 /* device-specific bits; the transport adds its own */
	uint16_t num_queues;	 /* 1..VIRTIO_PCI_MAX_QUEUES */
	uint16_t max_queue_size; /* a power of two ≤ VIRTQ_MAX_SIZE */
	uint32_t config_size;	 /* bytes of device config, ≤ VIRTIO_PCI_MAX_CONFIG_SIZE */
	/* Device config access (vCPU thread); @offset + @len ≤ config_size, checked. */
	void (*config_read)(void *opaque, uint32_t offset, uint8_t *data, unsigned len);
	void (*config_write)(void *opaque, uint32_t offset, const uint8_t *data, unsigned len);
	/* Queue @q was notified, or the device was (re)started (loop thread). */
	void (*queue_notify)(void *opaque, unsigned q);
	/* The driver set DRIVER_OK, with the negotiated @features (vCPU thread). */
	void (*activate)(void *opaque, uint64_t features);
	/* The device was reset: drop any element held (its queue is gone). Any thread. */
	void (*reset)(void *opaque);
	/*
	 * Snapshot (see virtio_pci_save): how many elements popped from queue @q the device
	 * still holds un-pushed (loop thread, paused). NULL: none, ever.
	 */
	unsigned (*held)(void *opaque, unsigned q);
};

/*
 * Creates the transport and its PCI function on @pci, registers one eventfd per queue with
 * @loop (which may be NULL for tests: then virtio_pci_run_notify() drives the queues). @mem is
 * where the rings live. Returns 0 with *@ret, -EINVAL for bad ops, or pci/loop/eventfd -errno.
 */
int virtio_pci_create(struct pci_root *pci, const struct guest_mem *mem,
		      const struct dev_loop *loop, const struct virtio_dev_ops *ops, void *opaque,
		      struct virtio_pci **ret);

/* Unregisters the function and eventfds and frees. Accepts NULL; returns NULL. */
struct virtio_pci *virtio_pci_destroy(struct virtio_pci *vp);

/* Back to the power-on state (guest reboot): as a driver's write of 0 to device_status. */
void virtio_pci_reset(struct virtio_pci *vp);

/* While paused, notifications are remembered but not delivered; resume delivers them. */
void virtio_pci_pause(struct virtio_pci *vp);
void virtio_pci_resume(struct virtio_pci *vp);

/*
 * Snapshot state (DESIGN §7; util/state.h fields). A device's save() calls virtio_pci_save()
 * on the object of the instance, and puts its own state beside it under "device"; its
 * realize() from state builds the transport from the config as on a cold boot
 * (virtio_pci_create), restores its own state, then calls virtio_pci_load() on the same object.
 *
 * virtio_pci_save() writes, on the loop thread while paused (virtio_pci_pause):
 *   "pci": the PCI function (pci_function_save: BAR, command, MSI-X table and control);
 *   "status", "device_features" (offered), "driver_features", "dfselect", "gfselect",
 *   "queue_select", "msix_config", "config_generation", "isr";
 *   "queues": one object per queue: "size", "enabled", "ready" (its ring passed virtq_init),
 *   "broken", "desc", "avail", "used", "msix_vector", "last_avail_idx", "used_idx",
 *   "signalled_used", "notify_on".
 * Returns 0, -ENOMEM, or -EBUSY with a line in @err when a queue has elements in flight that
 * the device does not declare held (a device must complete its I/O before save: pause drains).
 *
 * Held elements ("replay"). An element the device popped and keeps across the pause (rng waits
 * for entropy, console for input or for its output to drain, blk for its rate limiter) is not
 * saved: ops->held() says how many there are on each queue, and the saved last_avail_idx is
 * rewound by that many, so the restored device pops those chains again from the avail ring
 * (guest memory is saved with the rings). This is only correct when the held elements are the
 * queue's most recent pops, in pop order, and everything popped before them was pushed: the
 * transport checks that last_avail_idx - used_idx equals the held count. rng (one element on
 * its queue), console (at most one on each of receiveq and transmitq) and blk (at most one per
 * queue, the one waiting for the rate limiter: the rest was drained by pause) rely on it. A
 * device that has written part of a held element already (console output) saves how far it
 * got in its own state, and skips that much of the replayed element.
 *
 * virtio_pci_load() takes such an object, checked as hostile input: the number of queues and
 * the offered features must be this device's (else it is another configuration), vectors must
 * exist, the status must be one a driver can reach (DRIVER_OK needs FEATURES_OK, which needs
 * acceptable features), and every ready queue is set up through virtq_init() as a driver's
 * enable would be (size a power of two up to the maximum, ring addresses aligned and inside
 * guest RAM), with its indices checked by virtq_set_indices(). Then the PCI function is
 * restored (the BAR moves on the bus, MSI-X routes come back), and when DRIVER_OK is set the
 * device's ops->activate() gets the negotiated features and the ioeventfds are registered, as
 * the status write did. The transport is left paused: virtio_pci_resume() kicks every enabled
 * queue. Call once, on a transport just created (nothing happened on it). Returns 0, or -EINVAL
 * (-ENOMEM) with one line in @err naming the device and the field ("virtio-rng: queue 0: field
 * 'size': missing"); the transport is then fit only for virtio_pci_destroy().
 */
int virtio_pci_save(struct virtio_pci *vp, struct json_t *obj, char *err, size_t errlen);
int virtio_pci_load(struct virtio_pci *vp, const struct json_t *obj, char *err, size_t errlen);

/* The transport's lock, for a device's own loop callbacks. */
void virtio_pci_lock(struct virtio_pci *vp);
void virtio_pci_unlock(struct virtio_pci *vp);

/*
 * Queue operations for a device, with the lock held (from an ops callback or after
 * virtio_pci_lock). virtio_pci_pop() returns 1 with *@ret filled, 0 when there is nothing to
 * do (queue empty, not enabled, device not DRIVER_OK, needs reset, or paused), -EIO when the
 * driver broke the ring: the device is then in NEEDS_RESET.
 */
int virtio_pci_pop(struct virtio_pci *vp, unsigned q, struct virtq_elem *ret);
/*
 * Completes an element popped from @q, also while paused (an element held across a pause).
 * Returns 0, -EINVAL (queue not set up, or virtq_push's device bug), -EIO (broken queue: the
 * device is then in NEEDS_RESET).
 */
int virtio_pci_push(struct virtio_pci *vp, unsigned q, const struct virtq_elem *e,
		    uint32_t written);
/* virtq_push_batch() on @q: @n elements published with one used->idx store. Same returns as
 * virtio_pci_push(). */
int virtio_pci_push_batch(struct virtio_pci *vp, unsigned q, const struct virtq_used_item *items,
			  unsigned n);
/* After a batch of pushes: interrupts the driver if it wants it (virtq_needs_notify). */
void virtio_pci_notify(struct virtio_pci *vp, unsigned q);
/* Asks for (or suppresses) the driver's kicks on @q (virtq_set_notify). */
void virtio_pci_set_notify(struct virtio_pci *vp, unsigned q, bool enable);
/* Queues another ops->queue_notify(@q) on the loop: a device that stops after a bounded batch
 * of work comes back for the rest without starving other fds. */
void virtio_pci_kick(struct virtio_pci *vp, unsigned q);
/* The device changed its config space (lock held): bumps config_generation and, once the
 * driver is running, sends the config-change interrupt. */
void virtio_pci_config_changed(struct virtio_pci *vp);
/* Whether @q can be used now (enabled, DRIVER_OK, not NEEDS_RESET, not paused). */
bool virtio_pci_queue_ready(struct virtio_pci *vp, unsigned q);

/* Tests and benchmarks. */
struct pci_function *virtio_pci_function(struct virtio_pci *vp);
/* Runs the pending work of queue @q on the caller's thread, as the loop would. */
void virtio_pci_run_notify(struct virtio_pci *vp, unsigned q);
uint8_t virtio_pci_status(struct virtio_pci *vp);

#endif
