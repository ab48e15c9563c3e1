/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device table (DESIGN §5): every device cubicle has, in realize order. Unrealize runs in
 * reverse order.
 */
#include "devices/device.h"
#include "devices/legacy/legacy.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/virtio_devices.h"
#include "util/util.h"

const struct dev_ops *const dev_table[] = {
	&serial_ops,	 /* COM1 first: anything later may already want to print */
	&rtc_ops,	 /* CMOS RTC, 0x70-0x71 */
	&i8042_ops,	 /* reset via the keyboard controller, 0x60/0x64 */
	&acpi_pm_ops,	 /* sleep control/status and reset register, 0x600-0x60f */
	&debug_port_ops, /* boot progress codes, 0x80 */
	&sys_ctrl_ops,	 /* --sys-ctrl: the guest's start signal, 0x680 */
	&rng_ops,	 /* virtio-rng on PCI, always present (--rng src=) */
	&console_ops,	 /* virtio-console on PCI (--console, default tty) */
	&blk_ops,	 /* virtio-blk on PCI, one per --disk */
	&net_ops,	 /* virtio-net on TAP, one per --net */
	&vsock_ops,	 /* virtio-vsock on PCI (--vsock), host side over Unix sockets */
	&balloon_ops,	 /* virtio-balloon on PCI (--balloon) */
	&pmem_ops,	 /* virtio-pmem on PCI, one per --pmem */
};

const unsigned dev_table_size = ARRAY_SIZE(dev_table);
