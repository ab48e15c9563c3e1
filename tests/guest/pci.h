/*
 * PCI configuration access for the device test guest: the legacy 0xCF8/0xCFC ports and ECAM
 * (base from `ecam=`, default 0xe0000000), bus 0 only. Every loop is bounded: a VMM without
 * PCI reads as all-ones (or zeros) and makes the callers fail, never hang.
 */
#ifndef GUEST_PCI_H
#define GUEST_PCI_H

#include "guest.h"

#define PCI_DEVICES	     32
#define PCI_FUNCTIONS	     8
#define PCI_VENDOR_ID	     0x00
#define PCI_DEVICE_ID	     0x02
#define PCI_COMMAND	     0x04
#define PCI_STATUS	     0x06
#define PCI_CLASS_REVISION   0x08
#define PCI_HEADER_TYPE	     0x0e
#define PCI_BAR0	     0x10
#define PCI_CAP_PTR	     0x34
#define PCI_CMD_IO	     0x1
#define PCI_CMD_MEMORY	     0x2
#define PCI_CMD_MASTER	     0x4
#define PCI_CMD_INTX_DISABLE 0x400
#define PCI_STATUS_CAP_LIST  0x10
#define PCI_CAP_ID_VENDOR    0x09
#define PCI_CAP_ID_MSIX	     0x11
#define PCI_BARS	     6
#define PCI_ECAM_DEFAULT     0xe0000000ull
#define PCI_MMIO32_DEFAULT   0xc0000000ull /* where unassigned BARs go (QEMU microvm's window) */
#define PCI_MMIO32_END	     0xe0000000ull

enum pci_access { PCI_CF8, PCI_ECAM };

struct pci_dev {
	enum pci_access access;
	uint8_t bus, dev, fn;
	uint16_t vendor, device;
	uint32_t class_rev;
	uint64_t bar[PCI_BARS]; /* memory BARs' addresses, 0 for none (I/O BARs are ignored) */
	uint64_t bar_size[PCI_BARS];
};

uint64_t pci_ecam_base(void);
uint32_t pci_read32(enum pci_access a, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off);
void pci_write32(enum pci_access a, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint32_t v);

uint32_t pci_cfg_read32(const struct pci_dev *d, uint16_t off);
uint16_t pci_cfg_read16(const struct pci_dev *d, uint16_t off);
uint8_t pci_cfg_read8(const struct pci_dev *d, uint16_t off);
void pci_cfg_write32(const struct pci_dev *d, uint16_t off, uint32_t v);
void pci_cfg_write16(const struct pci_dev *d, uint16_t off, uint16_t v);

/* Finds the first function on bus 0 with @vendor and one of @devices (ECAM first, then CF8).
 * Returns false when there is none. */
bool pci_find(uint16_t vendor, const uint16_t *devices, size_t n, struct pci_dev *ret);
/* Offset of the next capability with @id after @after (0: from the start), 0 if none. */
uint8_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint8_t after);
/* Reads (and sizes) the memory BARs, assigns the unassigned ones from the `mmio32=` window,
 * maps them, enables memory decoding and bus mastering. False (with @why) on failure. */
bool pci_setup_bars(struct pci_dev *d, char *why);

#endif
