/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VM Generation ID's value (x86.h). The guest finds it through \_SB_.VGEN's ADDR method
 * (acpi.c) and reads it again when notified; clones restored from one snapshot each get their
 * own, so that their kernels do not share a random number generator state.
 */
#include "arch/x86/x86.h"

#include <errno.h>
#include <sys/random.h>

int x86_vmgenid_update(struct guest_mem *gm)
{
	uint8_t id[X86_VMGENID_SIZE];
	size_t got = 0;

	while (got < sizeof(id)) {
		ssize_t n = getrandom(id + got, sizeof(id) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		got += (size_t)n;
	}
	return guest_mem_write(gm, X86_VMGENID_START, id, sizeof(id));
}
