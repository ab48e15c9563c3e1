/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The GSI routing table a backend keeps for hv_msi_route*() (hv.h), in our own terms: KVM's
 * KVM_SET_GSI_ROUTING replaces the whole table, so every change rebuilds it from here, the
 * legacy routes included. Backends only (kvm.c, mock.c); not thread-safe: the backend locks.
 */
#ifndef CUBICLE_HV_ROUTES_H
#define CUBICLE_HV_ROUTES_H

#include <stdbool.h>
#include <stdint.h>

#include "hv/hv.h"

/* GSIs for MSI routes: HV_IOAPIC_PINS .. HV_IOAPIC_PINS + HV_MAX_MSI_ROUTES - 1. Two devices'
 * worth of PCI_MSIX_MAX_VECTORS would not fit; a VM of virtio devices needs a few dozen. */
#define HV_MAX_MSI_ROUTES 1024
#define HV_PIC_PINS	  16
/* The 24 IOAPIC routes, the 15 PIC routes and every MSI route. */
#define HV_ROUTES_MAX (HV_IOAPIC_PINS + HV_PIC_PINS - 1 + HV_MAX_MSI_ROUTES)

enum hv_route_kind {
	HV_ROUTE_IOAPIC,
	HV_ROUTE_PIC_MASTER,
	HV_ROUTE_PIC_SLAVE,
	HV_ROUTE_MSI,
};

struct hv_route {
	uint32_t gsi;
	enum hv_route_kind kind;
	unsigned pin;  /* irqchip routes */
	uint64_t addr; /* MSI routes */
	uint32_t data;
};

struct hv_msi_slot {
	bool used;	/* reserved by hv_routes_alloc */
	bool installed; /* has an address and data */
	uint64_t addr;
	uint32_t data;
};

struct hv_route_table {
	struct hv_msi_slot msi[HV_MAX_MSI_ROUTES];
};

/* Reserves the lowest free MSI GSI. Returns 0 with *@ret_gsi, or -ENOSPC. */
int hv_routes_alloc(struct hv_route_table *t, uint32_t *ret_gsi);
/* The slot of a reserved GSI, or NULL. */
struct hv_msi_slot *hv_routes_slot(struct hv_route_table *t, uint32_t gsi);
/*
 * Writes the full table to @ret (room for HV_ROUTES_MAX): what KVM_CREATE_IRQCHIP installs (GSI
 * 0-23 to IOAPIC pins 0-23; GSI 0-15 but 2, the cascade, to the PICs, master for 0-7, slave
 * for 8-15), then every installed MSI route. Returns the number of entries.
 */
unsigned hv_routes_build(const struct hv_route_table *t, struct hv_route *ret);

#endif
