/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ACPI power-management registers the FADT points at (hardware-reduced ACPI: sleep
 * control/status registers and the reset register), at 0x600-0x60f:
 *   0x600  sleep control: SLP_EN (bit 5) with SLP_TYP (bits 2-4) == 5, the \_S5 value in our
 *          DSDT, powers off; other sleep types are ignored (no S1-S4).
 *   0x601  sleep status: reads 0 (WAK_STS is never needed: we never wake from sleep).
 *   0x604  reset register: writing RESET_VALUE 1 resets the VM.
 * The map mirrors X86_PORT_ACPI_PM in arch/x86/x86.h and the FADT built by arch/x86/acpi.c.
 * Stateless, so no lock.
 */
#include <errno.h>
#include <stdlib.h>

#include "bus/bus.h"
#include "devices/legacy/legacy.h"
#include "util/log.h"

#define ACPI_PM_PORT_BASE 0x600 /* X86_PORT_ACPI_PM */
#define ACPI_PM_PORT_SIZE 0x10	/* X86_PORT_ACPI_PM_SIZE */

#define ACPI_PM_SLEEP_CONTROL 0x0
#define ACPI_PM_SLEEP_STATUS  0x1
#define ACPI_PM_RESET	      0x4

#define ACPI_SLP_EN	   0x20
#define ACPI_SLP_TYP_SHIFT 2
#define ACPI_SLP_TYP_MASK  0x7
#define ACPI_SLP_TYP_S5	   5
#define ACPI_RESET_VALUE   0x1

struct acpi_pm {
	struct dev_ctx ctx;
};

static void acpi_pm_request(struct acpi_pm *pm, enum dev_request req)
{
	log_info("acpi: guest requested %s", req == DEV_REQUEST_POWEROFF ? "power off" : "reset");
	if (pm->ctx.request)
		pm->ctx.request(pm->ctx.request_opaque, req);
}

static void acpi_pm_write(struct acpi_pm *pm, uint64_t reg, uint8_t v)
{
	switch (reg) {
	case ACPI_PM_SLEEP_CONTROL:
		if ((v & ACPI_SLP_EN) &&
		    ((v >> ACPI_SLP_TYP_SHIFT) & ACPI_SLP_TYP_MASK) == ACPI_SLP_TYP_S5)
			acpi_pm_request(pm, DEV_REQUEST_POWEROFF);
		return;
	case ACPI_PM_RESET:
		if (v == ACPI_RESET_VALUE)
			acpi_pm_request(pm, DEV_REQUEST_RESET);
		return;
	default:
		return; /* ACPI_PM_SLEEP_STATUS (write-1-to-clear, nothing to clear) and the rest */
	}
}

static void acpi_pm_pio(void *opaque, uint64_t offset, bool is_write, uint8_t *data, unsigned len)
{
	/* Byte registers: a wider access touches consecutive ones. */
	for (unsigned i = 0; i < len; i++) {
		if (is_write)
			acpi_pm_write(opaque, offset + i, data[i]);
		else
			data[i] = 0;
	}
}

static int acpi_pm_realize(const struct dev_ctx *ctx, const struct json_t *state, void **ret)
{
	struct acpi_pm *pm;
	int r;

	pm = calloc(1, sizeof(*pm));
	if (!pm)
		return -ENOMEM;
	pm->ctx = *ctx;
	r = bus_register(ctx->pio, ACPI_PM_PORT_BASE, ACPI_PM_PORT_SIZE, acpi_pm_pio, pm,
			 "acpi-pm");
	if (r < 0) {
		free(pm);
		return r;
	}
	*ret = pm;
	return 0;
}

static void acpi_pm_unrealize(void *dev)
{
	struct acpi_pm *pm = dev;

	if (!pm)
		return;
	(void)bus_unregister(pm->ctx.pio, ACPI_PM_PORT_BASE);
	free(pm);
}

const struct dev_ops acpi_pm_ops = {
	.name = "acpi-pm",
	.realize = acpi_pm_realize,
	.unrealize = acpi_pm_unrealize,
};
