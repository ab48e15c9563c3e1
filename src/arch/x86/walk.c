/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest-virtual to guest-physical translation by walking the guest's page tables, for reports
 * (the instruction bytes at RIP when the hypervisor gives up). Every table entry is guest data:
 * read through guest_mem, never trusted to point at RAM.
 */
#include "arch/x86/x86.h"

#include <errno.h>

#define CR0_PG	 (1ULL << 31)
#define CR4_PAE	 (1ULL << 5)
#define CR4_LA57 (1ULL << 12)
#define EFER_LMA (1ULL << 10)
#define PTE_P	 (1ULL << 0)
#define PTE_PS	 (1ULL << 7)
#define PTE_ADDR 0x000ffffffffff000ULL

int x86_gva_to_gpa(const struct guest_mem *gm, const struct hv_sregs *s, uint64_t gva,
		   uint64_t *ret)
{
	if (!(s->cr0 & CR0_PG)) {
		*ret = gva & 0xffffffffULL;
		return 0;
	}
	/* Only 4-level long-mode paging: what Linux runs with, and all a report needs. */
	if (!(s->efer & EFER_LMA) || !(s->cr4 & CR4_PAE) || (s->cr4 & CR4_LA57))
		return -ENOTSUP;

	uint64_t table = s->cr3 & PTE_ADDR;
	for (int level = 3; level >= 0; level--) {
		unsigned idx = (gva >> (12 + 9 * level)) & 0x1ff;
		uint64_t pte;
		if (guest_mem_read(gm, table + idx * 8, &pte, sizeof(pte)) < 0)
			return -EFAULT;
		if (!(pte & PTE_P))
			return -EFAULT;
		if (level > 0 && level < 3 && (pte & PTE_PS)) {
			uint64_t page = 1ULL << (12 + 9 * level);
			*ret = (pte & PTE_ADDR & ~(page - 1)) | (gva & (page - 1));
			return 0;
		}
		table = pte & PTE_ADDR;
	}
	*ret = table | (gva & 0xfff);
	return 0;
}
