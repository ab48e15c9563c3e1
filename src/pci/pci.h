/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PCI root complex: segment 0, bus 0, a host bridge at 00:00.0 and up to 31 device
 * functions (function 0 of slots 1..31). Configuration space is reached through the legacy
 * ports 0xcf8 (address) / 0xcfc-0xcff (data) and through ECAM; BARs are assigned by cubicle
 * when a function is registered, from the windows the VM builder passes in (the same windows
 * the ACPI tables describe, so the guest keeps them). MSI-X lives in msix.c.
 *
 * Configuration space of a function: a type 0 header (0x00-0x3f) whose writable bits are the
 * command register's memory, bus master, parity, SERR and INTx-disable bits, cache line size,
 * interrupt line and the BARs' address bits; capabilities from 0x40 (pci_cap_add), and device
 * hooks for everything else. An access must stay inside one dword (1, 2 or 4 bytes); any other
 * access, or one past the end (256 bytes through 0xcf8, 4096 through ECAM), reads all ones and
 * its writes are dropped.
 *
 * Locking: config and BAR accesses come from vCPU threads, msix_notify() from the VMM loop or a
 * device thread. One mutex per root guards all of it. Device hooks (cfg_read/cfg_write, cap
 * hooks, bar_remap) run with that mutex held: they must not call pci_* or msix_* functions. A
 * BAR's own handler (bar_rw) runs without it and may call msix_notify().
 *
 * Registration (pci_register, pci_cap_add, msix_init) happens while the VM is built, before
 * vCPUs run; pci_unregister and pci_root_destroy after they stopped.
 */
#ifndef CUBICLE_PCI_PCI_H
#define CUBICLE_PCI_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus;
struct irq_sink;
struct json_t; /* jansson: saved state (util/state.h) */

#define PCI_NUM_SLOTS	 32 /* devices on bus 0; slot 0 is the host bridge */
#define PCI_NUM_BARS	 6
#define PCI_CFG_SIZE	 4096  /* PCI Express extended configuration space */
#define PCI_CFG_LEGACY	 256   /* what 0xcf8/0xcfc reaches */
#define PCI_CAP_START	 0x40  /* capabilities are placed from here ... */
#define PCI_CAP_END	 0x100 /* ... up to here (conventional space) */
#define PCI_BAR_MIN_SIZE 16

/* Configuration header offsets (type 0). */
#define PCI_VENDOR_ID	    0x00
#define PCI_DEVICE_ID	    0x02
#define PCI_COMMAND	    0x04
#define PCI_STATUS	    0x06
#define PCI_REVISION_ID	    0x08
#define PCI_CLASS_PROG	    0x09
#define PCI_CACHE_LINE_SIZE 0x0c
#define PCI_HEADER_TYPE	    0x0e
#define PCI_BAR0	    0x10
#define PCI_SUBSYSTEM_VID   0x2c
#define PCI_SUBSYSTEM_ID    0x2e
#define PCI_ROM_ADDRESS	    0x30
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE  0x3c
#define PCI_INTERRUPT_PIN   0x3d

#define PCI_COMMAND_MEMORY   0x0002
#define PCI_COMMAND_MASTER   0x0004
#define PCI_STATUS_CAP_LIST  0x0010
#define PCI_BAR_MEM_TYPE_64  0x04
#define PCI_BAR_MEM_PREFETCH 0x08
#define PCI_CAP_ID_VNDR	     0x09
#define PCI_CAP_ID_MSIX	     0x11

/* The host bridge cubicle presents (Cloud Hypervisor's ids). */
#define PCI_HOST_BRIDGE_VENDOR 0x8086
#define PCI_HOST_BRIDGE_DEVICE 0x0d57
#define PCI_CLASS_HOST_BRIDGE  0x060000

/* Where the root decodes, from the VM builder (arch knows the guest's physical layout). */
struct pci_layout {
	uint64_t ecam_base, ecam_size;	 /* ECAM window: bus 0 is its first MiB */
	uint64_t mem32_base, mem32_size; /* BARs that must stay below 4 GiB */
	uint64_t mem64_base, mem64_size; /* 64-bit BARs */
};

struct pci_root;
struct pci_function;

enum pci_bar_kind {
	PCI_BAR_UNUSED = 0,
	PCI_BAR_MEM32, /* 32-bit memory BAR, from the 32-bit window */
	PCI_BAR_MEM64, /* 64-bit memory BAR (uses two BAR registers), from the 64-bit window */
};

struct pci_bar_desc {
	enum pci_bar_kind kind;
	bool prefetchable;
	uint64_t size; /* a power of two, at least PCI_BAR_MIN_SIZE */
};

/* Marks a BAR that is not decoded (memory space off, or never programmed). */
#define PCI_BAR_UNMAPPED UINT64_MAX

struct pci_function_ops {
	/*
	 * Accesses to the BAR's range that are not the MSI-X table or PBA; @offset is relative to
	 * the BAR. Runs on vCPU threads, without the root's lock. NULL: reads 0, writes dropped.
	 */
	void (*bar_rw)(void *opaque, unsigned bar, uint64_t offset, bool is_write, uint8_t *data,
		       unsigned len);
	/*
	 * BAR @bar now decodes at @addr, or PCI_BAR_UNMAPPED: the guest moved it or toggled the
	 * memory space bit. The range on the MMIO bus is already updated; this is for what else
	 * hangs off the address (ioeventfds). May be NULL.
	 */
	void (*bar_remap)(void *opaque, unsigned bar, uint64_t addr);
	/*
	 * Configuration space past the header that no capability claims (@offset ≥ 0x40, within
	 * one dword). May be NULL: reads 0, writes dropped.
	 */
	void (*cfg_read)(void *opaque, unsigned offset, uint8_t *data, unsigned len);
	void (*cfg_write)(void *opaque, unsigned offset, const uint8_t *data, unsigned len);
};

struct pci_function_desc {
	const char *name; /* for logs and bus range names; must outlive the function */
	uint16_t vendor_id, device_id;
	uint16_t subsystem_vendor_id, subsystem_id;
	uint32_t class_code; /* class << 16 | subclass << 8 | prog-if */
	uint8_t revision;
	unsigned slot; /* 1..31, or 0: the first free slot */
	/* Indexed by BAR register; a MEM64 BAR takes the register after it too (leave it unused). */
	struct pci_bar_desc bars[PCI_NUM_BARS];
	const struct pci_function_ops *ops; /* may be NULL */
};

/*
 * Creates the root complex: registers 0xcf8-0xcff on @pio and the ECAM window on @mmio, and the
 * host bridge at 00:00.0. @irq delivers MSIs (irq->msi, or its routed path: see msix.c).
 * @layout's windows must be non-empty,
 * aligned to 4 KiB and not overlap. Returns 0, -EINVAL, -ENOMEM, or the bus's error (-EEXIST
 * when something already sits at those addresses).
 */
int pci_root_create(struct bus *pio, struct bus *mmio, const struct irq_sink *irq,
		    const struct pci_layout *layout, struct pci_root **ret);

/* Unregisters everything (functions still registered too) and frees. Accepts NULL. */
struct pci_root *pci_root_destroy(struct pci_root *root);

/*
 * Adds a function on bus 0: assigns its slot and its BARs (natural alignment, the 32-bit or
 * 64-bit window by kind) and builds its header. The memory space bit starts off, so no BAR is
 * decoded until the guest enables it. @opaque is passed to @desc->ops. Returns 0 with *@ret;
 * -EINVAL for a bad descriptor (size not a power of two, a MEM64 in BAR 5 or overlapping the
 * next one), -EBUSY when the slot is taken or no slot is free, -ENOSPC when a window is full.
 */
int pci_register(struct pci_root *root, const struct pci_function_desc *desc, void *opaque,
		 struct pci_function **ret);

/* Removes a function: its BAR ranges go from the bus. Accepts NULL. */
void pci_unregister(struct pci_function *fn);

/* The function's device number (slot) on bus 0. */
unsigned pci_function_slot(const struct pci_function *fn);

/* The address assigned to BAR @bar at registration (what the guest finds there at boot). */
uint64_t pci_bar_address(const struct pci_function *fn, unsigned bar);

/*
 * Snapshot state of one function (util/state.h fields), for its device's save()/realize():
 *   "slot":   its device number, checked on load against the realized function's;
 *   "config": the first PCI_CFG_LEGACY bytes of configuration space (capabilities live there);
 *   "msix":   {"vectors": [{"addr", "data", "masked", "pending"} x table size]} when the
 *             function has MSI-X.
 * Call with no vCPU running (paused VM).
 *
 * pci_function_save() returns 0 or -ENOMEM.
 *
 * pci_function_load() restores a function that was just registered from the same config (same
 * descriptor, capabilities and MSI-X table size): the read-only bits of "config" must equal the
 * function's own (else it is another device: -EINVAL), and only the bits a guest may write are
 * taken, then applied as a guest's writes would be: the BARs are moved on the MMIO bus and
 * bar_remap is called, capability write hooks run (MSI-X: the open vectors get their GSI route
 * and irqfd back). Returns 0, or -EINVAL with one line in @err and the function unchanged.
 */
int pci_function_save(struct pci_function *fn, struct json_t *obj);
int pci_function_load(struct pci_function *fn, const struct json_t *obj, char *err, size_t errlen);

/*
 * Capabilities: hooks on a capability's bytes; @offset is relative to the capability's start.
 * read runs after the bytes were filled from the backing array (it may overwrite them); write
 * after the writable bits were stored (it sees the bytes the guest wrote).
 */
struct pci_cap_ops {
	void (*read)(void *opaque, unsigned offset, uint8_t *data, unsigned len);
	void (*write)(void *opaque, unsigned offset, const uint8_t *data, unsigned len);
};

/*
 * Appends capability @id of @len bytes (including the 2-byte id/next header, which the root
 * fills) to the list. @body (may be NULL: zeros) gives the initial bytes; @wmask (may be NULL:
 * read-only) the bits the guest may write, per byte. Returns 0 with the capability's offset in
 * config space (may be NULL), -EINVAL for @len < 2, -ENOSPC when it does not fit below 0x100.
 */
int pci_cap_add(struct pci_function *fn, uint8_t id, const void *body, const void *wmask,
		size_t len, const struct pci_cap_ops *ops, void *opaque, unsigned *ret_offset);

/*
 * One configuration access to @bus at @devfn (slot << 3 | function), exactly as the ports and
 * ECAM make it (reads of anything absent or out of range give all ones). Takes the root's
 * lock: not for device hooks. Exposed for tests.
 */
void pci_config_access(struct pci_root *root, unsigned bus, unsigned devfn, unsigned offset,
		       bool is_write, uint8_t *data, unsigned len);

/*
 * MSI-X (msix.c). Adds the capability with @nr_vectors (1..PCI_MSIX_MAX_VECTORS) vectors, the
 * table at @table_off in BAR @table_bar and the PBA at @pba_off in BAR @pba_bar (offsets 8-byte
 * aligned, inside their memory BARs, not overlapping). The root emulates both ranges; all
 * vectors start masked. Call once, after pci_register. Returns 0, -EINVAL, -EEXIST (twice),
 * -ENOSPC (no room for the capability).
 */
#define PCI_MSIX_MAX_VECTORS  2048
#define PCI_MSIX_ENTRY_SIZE   16
#define PCI_MSIX_CTRL_ENABLE  0x8000
#define PCI_MSIX_CTRL_MASKALL 0x4000
#define PCI_MSIX_ENTRY_MASKED 0x1
int msix_init(struct pci_function *fn, unsigned nr_vectors, unsigned table_bar, uint32_t table_off,
	      unsigned pba_bar, uint32_t pba_off);

/*
 * Signals @vector from any thread: delivered now when MSI-X is enabled and neither the function
 * nor the vector is masked (a write to the vector's irqfd eventfd on the routed path, else
 * irq->msi; neither blocks); left pending when masked (and delivered when the guest unmasks
 * it); dropped when MSI-X is disabled. A vector ≥ the table size is ignored with a rate-limited
 * log. Returns 0, -EINVAL (bad vector, no MSI-X), or the delivery's -errno.
 */
int msix_notify(struct pci_function *fn, unsigned vector);

/* Whether MSI-X is enabled (for a transport choosing between MSI-X and no interrupt at all). */
bool msix_enabled(struct pci_function *fn);

#endif
