/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ACPI power-management registers the FADT points at (hardware-reduced ACPI: sleep
 * control/status registers and the reset register), at 0x600-0x60f:
 *   0x600  sleep control: SLP_EN (bit 5) with SLP_TYP (bits 2-4) == 5, the \_S5 value in our
 *          DSDT, powers off; other sleep types are ignored (no S1-S4).
 *   0x601  sleep status: reads 0 (WAK_STS is never needed: we never wake from sleep).
 *   0x604  reset register: writing RESET_VALUE 1 resets the VM.
 *   0x608  the Generic Event Device's event status (ACPI_GED_PORT): the ACPI_GED_* bits
 *          latched by acpi_pm_ged_raise(); a read returns them and clears them (atomically:
 *          an event raised meanwhile is in this read or the next), writes are ignored. Each
 *          raise pulses the GED's interrupt, and \_SB_.GED_._EVT reads the register once and
 *          notifies the devices whose bits it finds (arch/x86/acpi.c).
 * The map mirrors X86_PORT_ACPI_PM in arch/x86/x86.h and the FADT built by arch/x86/acpi.c.
 *
 * Saved state: the latched GED bits ("ged_status"); the rest is stateless. No lock: the one
 * register is an atomic.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <jansson.h>

#include "bus/bus.h"
#include "devices/legacy/legacy.h"
#include "util/log.h"
#include "util/state.h"
#include "util/util.h"

#define ACPI_PM_PORT_BASE 0x600 /* X86_PORT_ACPI_PM */
#define ACPI_PM_PORT_SIZE 0x10	/* X86_PORT_ACPI_PM_SIZE */

#define ACPI_PM_SLEEP_CONTROL 0x0
#define ACPI_PM_SLEEP_STATUS  0x1
#define ACPI_PM_RESET	      0x4
#define ACPI_PM_GED_STATUS    (ACPI_GED_PORT - ACPI_PM_PORT_BASE)

#define ACPI_SLP_EN	   0x20
#define ACPI_SLP_TYP_SHIFT 2
#define ACPI_SLP_TYP_MASK  0x7
#define ACPI_SLP_TYP_S5	   5
#define ACPI_RESET_VALUE   0x1

struct acpi_pm {
	struct dev_ctx ctx;
	atomic_uint ged_status; /* ACPI_GED_* bits not yet read by the guest */
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
	struct acpi_pm *pm = opaque;

	/* Byte registers: a wider access touches consecutive ones. */
	for (unsigned i = 0; i < len; i++) {
		if (is_write)
			acpi_pm_write(pm, offset + i, data[i]);
		else if (offset + i == ACPI_PM_GED_STATUS)
			data[i] = (uint8_t)atomic_exchange(&pm->ged_status, 0);
		else
			data[i] = 0;
	}
}

int acpi_pm_ged_raise(void *dev, uint8_t events)
{
	struct acpi_pm *pm = dev;
	const struct irq_sink *irq = pm->ctx.irq;
	int r = 0;

	atomic_fetch_or(&pm->ged_status, events & ACPI_GED_EVENTS_MASK);
	/* An edge: the GED's IRQ is declared edge-triggered, active high (arch/x86/acpi.c). */
	if (irq && irq->set_line) {
		r = irq->set_line(irq->opaque, ACPI_GED_GSI, true);
		if (r == 0)
			r = irq->set_line(irq->opaque, ACPI_GED_GSI, false);
	}
	return r;
}

static int acpi_pm_restore(struct acpi_pm *pm, const struct dev_ctx *ctx, const json_t *state)
{
	char what[160];
	uint32_t v;

	if (state_get_u32(state, "ged_status", ACPI_GED_EVENTS_MASK, &v, what, sizeof(what)) < 0)
		return legacy_state_fail(ctx, "acpi-pm", "%s", what);
	atomic_store(&pm->ged_status, v);
	return 0;
}

static int acpi_pm_realize(const struct dev_ctx *ctx, const struct json_t *state, void **ret)
{
	struct acpi_pm *pm;
	int r;

	pm = calloc(1, sizeof(*pm));
	if (!pm)
		return -ENOMEM;
	pm->ctx = *ctx;
	pm->ctx.err = NULL; /* only valid during realize */
	pm->ctx.errlen = 0;
	if (state) {
		r = acpi_pm_restore(pm, ctx, state);
		if (r < 0) {
			free(pm);
			return r;
		}
	}
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

/* A guest reboot starts with no event pending. */
static void acpi_pm_reset(void *dev)
{
	struct acpi_pm *pm = dev;

	atomic_store(&pm->ged_status, 0);
}

static int acpi_pm_save(void *dev, json_t *state, char *err, size_t errlen)
{
	struct acpi_pm *pm = dev;

	if (state_set_u32(state, "ged_status", atomic_load(&pm->ged_status)) < 0)
		return error_set(err, errlen, -ENOMEM, "acpi-pm: out of memory");
	return 0;
}

const struct dev_ops acpi_pm_ops = {
	.name = "acpi-pm",
	.realize = acpi_pm_realize,
	.unrealize = acpi_pm_unrealize,
	.reset = acpi_pm_reset,
	.save = acpi_pm_save,
};
