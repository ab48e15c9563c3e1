/* SPDX-License-Identifier: Apache-2.0 */
/* What virtio_pci.c and virtio_pci_state.c share; not part of the module's API (virtio.h is). */
#ifndef CUBICLE_VIRTIO_INTERNAL_H
#define CUBICLE_VIRTIO_INTERNAL_H

#include <pthread.h>

#include "util/log.h"
#include "virtio/virtio.h"

#define BIT64(n) (1ULL << (n))

/* Features the transport itself offers on top of the device's. */
#define VIRTIO_PCI_TRANSPORT_FEATURES \
	(BIT64(VIRTIO_F_VERSION_1) | BIT64(VIRTIO_F_EVENT_IDX) | BIT64(VIRTIO_F_INDIRECT_DESC))

/*
 * The width of the notify write the ioeventfds catch: Linux's virtio-pci (vp_notify) and our
 * test guest write the queue index with one 16-bit store. A write of another width (legal:
 * the value is not used) misses the ioeventfd and takes the MMIO handler, which does the same.
 */
#define VIRTIO_PCI_NOTIFY_LEN 2

struct virtio_pci_queue {
	struct virtq vq;
	struct virtio_pci *vp;
	unsigned index;
	uint16_t size; /* as the driver wrote it; checked by virtq_init at enable */
	uint16_t msix_vector;
	bool enabled;
	uint64_t desc, avail, used;
	int efd; /* notify eventfd, watched by the loop; -1 without a loop */
	bool efd_registered;
	bool ioev_on; /* efd is an ioeventfd at ioev_addr (under ioev_lock) */
	uint64_t ioev_addr;
	bool pending; /* notified while paused or without a loop */
};

struct virtio_pci {
	pthread_mutex_t lock;
	const struct virtio_dev_ops *ops;
	void *opaque;
	const struct guest_mem *mem;
	const struct dev_loop *loop;
	struct pci_function *fn;
	uint64_t offered;
	uint64_t driver_features;
	uint32_t dfselect, gfselect;
	uint16_t msix_config;
	uint16_t queue_select;
	uint8_t status;
	uint8_t config_generation;
	uint8_t isr;
	bool paused;
	struct log_ratelimit rl;
	/*
	 * The queues' ioeventfds: innermost lock, taken under vp->lock (status changes) or under
	 * the PCI root's (bar_remap), never the other way round.
	 */
	pthread_mutex_t ioev_lock;
	uint64_t notify_base; /* where the BAR decodes, or PCI_BAR_UNMAPPED */
	bool ioev_live;	      /* DRIVER_OK: a notify may bypass vp_notify_write's checks */
	struct virtio_pci_queue q[];
};

/* virtio_pci.c, with vp->lock held. */
unsigned vp_nr_vectors(const struct virtio_pci *vp);
/* Whether the driver's features may be accepted (offered, VERSION_1). */
bool vp_features_acceptable(const struct virtio_pci *vp);
/* Registers and queues back to power-on values; the device is not told. */
void vp_reset_regs(struct virtio_pci *vp);
/* The ioeventfds follow DRIVER_OK (takes ioev_lock). */
void vp_ioev_set_live(struct virtio_pci *vp, bool live);

#endif
