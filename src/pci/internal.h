/* SPDX-License-Identifier: Apache-2.0 */
/* What pci.c and msix.c share; not part of the module's API (pci.h is). */
#ifndef CUBICLE_PCI_INTERNAL_H
#define CUBICLE_PCI_INTERNAL_H

#include <pthread.h>

#include "pci/pci.h"
#include "util/log.h"

#define PCI_MAX_CAPS 16

struct pci_cap {
	unsigned offset, len; /* len as given; the capability occupies len rounded up to 4 */
	const struct pci_cap_ops *ops;
	void *opaque;
};

struct pci_bar {
	struct pci_function *fn;
	unsigned index;
	enum pci_bar_kind kind;
	uint64_t size;
	uint64_t assigned; /* by cubicle at registration */
	uint64_t mapped;   /* where its range sits on the MMIO bus, or PCI_BAR_UNMAPPED */
};

/* A vector on the routed path (irq_sink.route_*): its GSI and the eventfd bound to it. */
struct msix_route {
	int efd;      /* -1 until the vector is first opened */
	uint32_t gsi; /* valid when has_gsi */
	bool has_gsi;
	bool bound;    /* efd is bound to gsi and gsi routes to (addr, data) */
	uint64_t addr; /* the route as installed */
	uint32_t data;
};

struct msix {
	unsigned nr;
	struct msix_route *routes; /* nr entries, or NULL without the routed path */
	unsigned cap_offset;
	unsigned table_bar, pba_bar;
	uint64_t table_off, table_len, pba_off, pba_len;
	uint32_t *table; /* nr entries of 4 dwords: address low, address high, data, control */
	uint64_t *pba;	 /* pending bits, one per vector */
};

struct pci_function {
	struct pci_root *root;
	const char *name;
	const struct pci_function_ops *ops;
	void *opaque;
	unsigned slot;
	struct pci_bar bars[PCI_NUM_BARS];
	struct pci_cap caps[PCI_MAX_CAPS];
	unsigned nr_caps;
	unsigned cap_free; /* next free config offset for a capability */
	struct msix *msix;
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE]; /* bits the guest may write */
};

struct pci_root {
	pthread_mutex_t lock;
	struct bus *pio, *mmio;
	const struct irq_sink *irq;
	struct pci_layout layout;
	uint64_t next32, next64; /* bump allocators in the two windows */
	uint32_t cf8;		 /* the address register */
	bool pio_registered, ecam_registered;
	struct pci_function *slots[PCI_NUM_SLOTS];
	struct log_ratelimit rl; /* guest-triggered messages; under lock */
};

/* msix.c: the MSI-X table and PBA as seen through their BAR (takes the root's lock). */
bool msix_bar_access(struct pci_function *fn, unsigned bar, uint64_t offset, bool is_write,
		     uint8_t *data, unsigned len);
void msix_free(struct pci_function *fn);
/* Snapshot state of the table and PBA (pci_function_save/load), with the root's lock held.
 * msix_load() checks everything before it changes anything; the capability's write hook, run
 * after the config bytes are restored, then re-opens the vectors. */
struct json_t;
int msix_save(struct pci_function *fn, struct json_t *obj);
int msix_load(struct pci_function *fn, const struct json_t *obj, char *err, size_t errlen);

static inline uint32_t pci_rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void pci_wr32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void pci_wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

#endif
