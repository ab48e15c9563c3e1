/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest RAM layout and the e820 map that describes it to the guest.
 *
 * RAM fills guest-physical space from 0 up to the 32-bit hole (PCI MMIO, ECAM, IOAPIC, LAPIC)
 * and resumes at 4 GiB. Below 1 MiB, the EBDA..1 MiB window is reserved: it holds the ACPI
 * tables (the legacy RSDP search area at X86_ACPI_START), so the guest must not reuse it.
 */
#include <assert.h>

#include "arch/x86/x86.h"
#include "util/util.h"

unsigned x86_layout_ram(uint64_t mem_size, struct x86_ram_range ret[2])
{
	assert(mem_size != 0 && IS_ALIGNED(mem_size, 4 * KiB));

	if (mem_size <= X86_MEM_32BIT_HOLE_START) {
		ret[0] = (struct x86_ram_range){ .gpa = 0, .size = mem_size };
		return 1;
	}
	ret[0] = (struct x86_ram_range){ .gpa = 0, .size = X86_MEM_32BIT_HOLE_START };
	ret[1] = (struct x86_ram_range){ .gpa = X86_MEM_32BIT_HOLE_END,
					 .size = mem_size - X86_MEM_32BIT_HOLE_START };
	return 2;
}

void x86_layout_pci(uint64_t mem_size, struct x86_pci_layout *ret)
{
	struct x86_ram_range ram[2];
	unsigned n = x86_layout_ram(mem_size, ram);
	uint64_t ram_end = ram[n - 1].gpa + ram[n - 1].size;

	*ret = (struct x86_pci_layout){
		.ecam_base = X86_PCI_MMCONFIG_START,
		.bus_start = 0,
		.bus_end = 0,
		.mem32_base = X86_PCI_MEM32_START,
		.mem32_size = X86_PCI_MEM32_SIZE,
		.mem64_base = ALIGN_UP(MAX(ram_end, X86_MEM_32BIT_HOLE_END), X86_PCI_MEM64_ALIGN),
		.mem64_size = X86_PCI_MEM64_SIZE,
	};
}

static void e820_add(struct x86_e820_entry *e, unsigned *n, uint64_t addr, uint64_t size,
		     uint32_t type)
{
	if (size == 0 || *n >= X86_E820_MAX)
		return;
	e[*n] = (struct x86_e820_entry){ .addr = addr, .size = size, .type = type };
	(*n)++;
}

unsigned x86_e820_build(const struct x86_ram_range *ram, unsigned n,
			struct x86_e820_entry ret[X86_E820_MAX])
{
	unsigned count = 0;
	bool ecam_done = false;

	for (unsigned i = 0; i < n; i++) {
		uint64_t start = ram[i].gpa, end = ram[i].gpa + ram[i].size;

		/* Keep the map sorted: ECAM sits between low RAM and RAM above 4 GiB. */
		if (!ecam_done && start >= X86_PCI_MMCONFIG_START) {
			e820_add(ret, &count, X86_PCI_MMCONFIG_START, X86_PCI_MMCONFIG_SIZE,
				 X86_E820_RESERVED);
			ecam_done = true;
		}
		if (start < X86_EBDA_START) {
			e820_add(ret, &count, start, MIN(end, X86_EBDA_START) - start,
				 X86_E820_RAM);
			/* Whatever RAM lies under the EBDA, VGA and BIOS area stays reserved. */
			if (end > X86_EBDA_START)
				e820_add(ret, &count, X86_EBDA_START,
					 MIN(end, X86_HIGH_MEM_START) - X86_EBDA_START,
					 X86_E820_RESERVED);
		} else if (start < X86_HIGH_MEM_START) {
			e820_add(ret, &count, start, MIN(end, X86_HIGH_MEM_START) - start,
				 X86_E820_RESERVED);
		}
		if (end > X86_HIGH_MEM_START) {
			uint64_t s = MAX(start, X86_HIGH_MEM_START);
			e820_add(ret, &count, s, end - s, X86_E820_RAM);
		}
	}
	/*
	 * Linux uses ECAM (MCFG) only when the window is reserved in e820 or in ACPI motherboard
	 * resources; reserving it here is what Cloud Hypervisor does too.
	 */
	if (!ecam_done)
		e820_add(ret, &count, X86_PCI_MMCONFIG_START, X86_PCI_MMCONFIG_SIZE,
			 X86_E820_RESERVED);
	return count;
}
