/*
 * A minimal virtio 1.x PCI driver for the device test guest: capability walk, reset, feature
 * negotiation, split virtqueues in guest RAM, MSI-X (config -> MSI-X entry 0 -> IDT vector
 * VIRTIO_VEC_CONFIG, queues -> entry 1 -> VIRTIO_VEC_QUEUE). Every wait has a TSC timeout.
 */
#ifndef GUEST_VIRTIO_H
#define GUEST_VIRTIO_H

#include "pci.h"

#define VIRTIO_VENDOR		  0x1af4
#define VIRTIO_STATUS_ACK	  0x01
#define VIRTIO_STATUS_DRIVER	  0x02
#define VIRTIO_STATUS_DRIVER_OK	  0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED	  0x80
#define VIRTIO_F_VERSION_1	  (1ull << 32)
#define VIRTQ_DESC_F_NEXT	  1
#define VIRTQ_DESC_F_WRITE	  2
#define VIRTQ_DESC_F_INDIRECT	  4
#define VIRTQ_USED_F_NO_NOTIFY	  1
#define VIRTIO_MSI_NO_VECTOR	  0xffff
#define VIRTIO_VEC_CONFIG	  MSIX_VECTOR_FIRST
#define VIRTIO_VEC_QUEUE	  (MSIX_VECTOR_FIRST + 1)
#define VIRTQ_MAX_SIZE		  1024

/* The common configuration structure's registers (offsets from virtio_dev.common). */
#define COMMON_DFSELECT 0
#define COMMON_DF	4
#define COMMON_GFSELECT 8
#define COMMON_GF	12
#define COMMON_MSIX	16
#define COMMON_NUMQ	18
#define COMMON_STATUS	20
#define COMMON_Q_SELECT 22
#define COMMON_Q_SIZE	24
#define COMMON_Q_MSIX	26
#define COMMON_Q_ENABLE 28
#define COMMON_Q_NOFF	30
#define COMMON_Q_DESC	32
#define COMMON_Q_DRIVER 40
#define COMMON_Q_DEVICE 48

/* The MSI-X capability's registers and the table's entries. */
#define MSIX_CTRL	  2
#define MSIX_TABLE	  4
#define MSIX_CTRL_ENABLE  0x8000
#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_ENTRY_SIZE	  16

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};
struct virtq_avail {
	uint16_t flags, idx;
	uint16_t ring[];
};
struct virtq_used_elem {
	uint32_t id, len;
};
struct virtq_used {
	uint16_t flags, idx;
	struct virtq_used_elem ring[];
};

struct virtq {
	uint16_t index, size;
	struct virtq_desc *desc;
	volatile struct virtq_avail *avail;
	volatile struct virtq_used *used;
	uint16_t avail_idx, last_used;
	uint64_t notify_addr;
};

struct virtio_dev {
	struct pci_dev pci;
	uint64_t common, notify, isr, devcfg;
	uint32_t common_len, notify_len, isr_len, devcfg_len;
	uint32_t notify_mult;
	uint64_t msix_table;
	uint16_t msix_entries;
};

/* Finds the device (modern id, or the transitional one), maps its BARs, walks its virtio
 * capabilities and enables MSI-X. False with @why when any piece is missing. */
bool virtio_find(struct virtio_dev *v, uint16_t modern_id, uint16_t transitional_id, char *why);
/* Resets the device and waits (bounded) until the status reads 0. */
bool virtio_reset(struct virtio_dev *v, char *why);
/* Reset, ACKNOWLEDGE, DRIVER, offers @features (must include VERSION_1), FEATURES_OK. */
bool virtio_start(struct virtio_dev *v, uint64_t features, char *why);
/* Selects queue @index, allocates rings of min(@size, queue_size_max) entries and writes
 * its size, addresses and MSI-X entry 1, without enabling it. */
bool virtio_queue_configure(struct virtio_dev *v, uint16_t index, uint16_t size, struct virtq *q,
			    char *why);
/* virtio_queue_configure(), then queue_enable = 1. */
bool virtio_queue_setup(struct virtio_dev *v, uint16_t index, uint16_t size, struct virtq *q,
			char *why);
void virtio_driver_ok(struct virtio_dev *v);
uint8_t virtio_status(const struct virtio_dev *v);
/* Writes the status with @bits added to what it reads now. */
void virtio_status_set(struct virtio_dev *v, uint8_t bits);

/* Publishes descriptor chain @head in the avail ring (does not notify). */
void virtq_publish(struct virtq *q, uint16_t head);
void virtq_notify(struct virtq *q);
/* Notifies unless the device set used->flags NO_NOTIFY (virtio 1.2 §2.7.10, no EVENT_IDX), as
 * a driver that honours the device's suppression does. */
void virtq_notify_if_wanted(struct virtq *q);
/* Takes the next used element if there is one. */
bool virtq_get_used(struct virtq *q, struct virtq_used_elem *ret);

#endif
