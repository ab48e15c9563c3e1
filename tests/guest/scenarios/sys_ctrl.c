/*
 * sys-ctrl: CubeSandbox's start signal (cubicle --sys-ctrl). Reads I/O port 0x680 (the device's
 * version, 1; or 0xff when nothing decodes the port, without --sys-ctrl), then writes 1 there,
 * "started". Passes on either read value and prints it: the e2e test knows which it asked for
 * and checks the VMM's log for the signal.
 */
#include "scenarios.h"

#define SYS_CTRL_PORT	 0x680
#define SYS_CTRL_VERSION 1

bool scenario_sys_ctrl(uint64_t arg, char *why)
{
	uint8_t v = inb(SYS_CTRL_PORT);

	printf("sys-ctrl: port 0x%x reads 0x%x\n", SYS_CTRL_PORT, v);
	if (v != SYS_CTRL_VERSION && v != 0xff) {
		snprintf(why, WHY_MAX, "port 0x%x read 0x%x (expected 0x%x or 0xff)", SYS_CTRL_PORT,
			 v, SYS_CTRL_VERSION);
		return false;
	}
	outb(SYS_CTRL_PORT, 1);
	return true;
}
