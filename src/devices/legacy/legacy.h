/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The legacy PC platform devices (devices/legacy): COM1, the CMOS RTC, a minimal i8042, the
 * 0x80 debug port and the ACPI power-management registers. Each is a const struct dev_ops
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

#endif
