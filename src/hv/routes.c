/* SPDX-License-Identifier: Apache-2.0 */
#include "hv/routes.h"

#include <errno.h>

#define PIC_CASCADE_PIN 2

int hv_routes_alloc(struct hv_route_table *t, uint32_t *ret_gsi)
{
	for (unsigned i = 0; i < HV_MAX_MSI_ROUTES; i++) {
		if (!t->msi[i].used) {
			t->msi[i] = (struct hv_msi_slot){ .used = true };
			*ret_gsi = HV_IOAPIC_PINS + i;
			return 0;
		}
	}
	return -ENOSPC;
}

struct hv_msi_slot *hv_routes_slot(struct hv_route_table *t, uint32_t gsi)
{
	if (gsi < HV_IOAPIC_PINS || gsi - HV_IOAPIC_PINS >= HV_MAX_MSI_ROUTES)
		return NULL;
	struct hv_msi_slot *s = &t->msi[gsi - HV_IOAPIC_PINS];
	return s->used ? s : NULL;
}

unsigned hv_routes_build(const struct hv_route_table *t, struct hv_route *ret)
{
	unsigned n = 0;

	for (unsigned pin = 0; pin < HV_IOAPIC_PINS; pin++)
		ret[n++] = (struct hv_route){ .gsi = pin, .kind = HV_ROUTE_IOAPIC, .pin = pin };
	for (unsigned gsi = 0; gsi < HV_PIC_PINS; gsi++) {
		if (gsi == PIC_CASCADE_PIN)
			continue;
		ret[n++] = (struct hv_route){
			.gsi = gsi,
			.kind = gsi < 8 ? HV_ROUTE_PIC_MASTER : HV_ROUTE_PIC_SLAVE,
			.pin = gsi % 8,
		};
	}
	for (unsigned i = 0; i < HV_MAX_MSI_ROUTES; i++) {
		const struct hv_msi_slot *s = &t->msi[i];
		if (s->used && s->installed)
			ret[n++] = (struct hv_route){ .gsi = HV_IOAPIC_PINS + i,
						      .kind = HV_ROUTE_MSI,
						      .addr = s->addr,
						      .data = s->data };
	}
	return n;
}
