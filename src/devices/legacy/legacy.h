/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The legacy PC platform devices (devices/legacy): COM1, the CMOS RTC, a minimal i8042, the
 * 0x80 debug port, the ACPI power-management registers (with the GED's event status) and
 * --sys-ctrl's port 0x680. Each is a const struct dev_ops
 * listed in dev_table (devices.c); the few extra functions below are for the VM core's
 * benchmarks and for unit tests.
 *
 * Port numbers and IRQs are device-local constants mirroring arch/x86/x86.h (devices do not
 * include arch/, DESIGN §1).
 */
#ifndef CUBICLE_DEVICES_LEGACY_LEGACY_H
#define CUBICLE_DEVICES_LEGACY_LEGACY_H

#include <stdint.h>

#include "devices/device.h"

extern const struct dev_ops serial_ops;
extern const struct dev_ops rtc_ops;
extern const struct dev_ops i8042_ops;
extern const struct dev_ops debug_port_ops;
extern const struct dev_ops acpi_pm_ops;
extern const struct dev_ops sys_ctrl_ops;

/* 16550A UART at COM1. */
#define SERIAL_PORT_BASE    0x3f8
#define SERIAL_PORT_SIZE    8
#define SERIAL_GSI	    4	 /* X86_UART_COM1_IRQ */
#define SERIAL_RX_FIFO_SIZE 64	 /* bytes read from the host ahead of the guest, at most */
#define SERIAL_TX_BUF_SIZE  4096 /* bytes of guest output waiting for a slow host, at most */

/*
 * Test hook and the common tail of serial_ops.realize: a UART whose input comes from @in_fd
 * (-1: none; registered with ctx->loop for EPOLLIN) and whose output goes to @out_fd (-1:
 * discarded). The fds stay the caller's: unrealize does not close them. When @out_fd has
 * O_NONBLOCK, output that does not fit is buffered (SERIAL_TX_BUF_SIZE) and flushed from the
 * loop on EPOLLOUT; otherwise writes block. Returns 0 with *@ret set, -EINVAL when an input fd
 * is given without ctx->loop, or the bus/loop registration's -errno.
 */
int serial_create_with_fds(const struct dev_ctx *ctx, int in_fd, int out_fd, void **ret);

/* Bytes of guest output dropped because the host did not keep up (guest ignored THRE). */
uint64_t serial_tx_dropped(void *dev);

/* Debug port 0x80: what the guest wrote, for boot-time measurements. */
struct debug_port_info {
	uint64_t writes; /* 0: nothing written yet, the other fields are 0 */
	uint8_t first_code;
	uint8_t last_code;
	uint64_t first_ns; /* since the device was realized (VM build) */
	uint64_t last_ns;
};

/* Fills @ret from a realized debug port (@dev as returned by debug_port_ops.realize). */
void debug_port_get_info(void *dev, struct debug_port_info *ret);

struct tm;
/* UTC calendar fields (sec..year, wday) of Unix time @secs, without glibc's time zone code
 * (rtc.c says why). */
void rtc_utc(int64_t secs, struct tm *tm);

/*
 * The Generic Event Device's event status register (acpi_pm.c; arch/x86/acpi.c's \_SB_.GED_
 * reads it from _EVT): one bit per event source. A read returns the pending bits and clears
 * them; writes are ignored.
 */
#define ACPI_GED_PORT	     0x608 /* X86_PORT_GED_STATUS, inside the PM block 0x600-0x60f */
#define ACPI_GED_GSI	     5	   /* X86_GED_IRQ */
#define ACPI_GED_PWR_BUTTON  0x01  /* Notify (\_SB_.PWRB, 0x80) */
#define ACPI_GED_VMGENID     0x02  /* Notify (\_SB_.VGEN, 0x80) */
#define ACPI_GED_EVENTS_MASK 0x03

/*
 * Latches the @events bits (ACPI_GED_*) in the GED's status register and pulses its interrupt
 * line (edge): the guest runs _EVT, which reads and clears the register. @dev is acpi_pm_ops'
 * instance. Any thread. Returns 0 or the interrupt sink's -errno (the bits stay latched).
 */
int acpi_pm_ged_raise(void *dev, uint8_t events);

/*
 * --sys-ctrl (CubeSandbox): the guest writes any value to I/O port SYS_CTRL_PORT to say it
 * has started; the device reports it as DEV_REQUEST_STARTED. Reads return SYS_CTRL_VERSION.
 */
#define SYS_CTRL_PORT	 0x680
#define SYS_CTRL_VERSION 1

struct json_t;
struct state_field;
/*
 * Restore helpers for the legacy devices: a line "@dev: saved state: <what>" in ctx->err and
 * -EINVAL. legacy_state_load() is state_load_fields() into @dst with that error line.
 */
int legacy_state_fail(const struct dev_ctx *ctx, const char *dev, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int legacy_state_load(const struct dev_ctx *ctx, const char *dev, const struct json_t *state,
		      const struct state_field *fields, size_t n, void *dst);

#endif
