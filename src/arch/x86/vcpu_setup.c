/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Boot-time vCPU state. Every vCPU gets CPUID, MSRs, FPU and LAPIC set up; the boot processor
 * also gets the registers its entry protocol wants:
 *   - PVH (Xen's PVH ABI): 32-bit flat protected mode, paging off, %ebx = hvm_start_info;
 *   - bzImage (Linux's 64-bit boot protocol): long mode with the first 4 GiB identity mapped,
 *     %rsi = boot_params, __BOOT_CS/__BOOT_DS-style flat segments.
 * Application processors are left in their reset state for INIT/SIPI.
 */
#include <errno.h>
#include <string.h>

#include "arch/x86/x86.h"
#include "util/util.h"

#define MSR_IA32_SYSENTER_CS  0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE  0x1a0
#define MSR_MTRR_DEF_TYPE     0x2ff
#define MSR_STAR	      0xc0000081
#define MSR_LSTAR	      0xc0000082
#define MSR_CSTAR	      0xc0000083
#define MSR_SYSCALL_MASK      0xc0000084
#define MSR_KERNEL_GS_BASE    0xc0000102

#define MISC_ENABLE_FAST_STRING 1ULL
#define MTRR_ENABLE		(1ULL << 11)
#define MTRR_TYPE_WB		6ULL

#define CR0_PE	 (1ULL << 0)
#define CR0_ET	 (1ULL << 4)
#define CR0_PG	 (1ULL << 31)
#define CR4_PAE	 (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define RFLAGS_RESERVED 2ULL /* bit 1 is always 1; IF clear */

/* GDT layout: selectors as Linux's boot code names them (__BOOT_CS 0x10, __BOOT_DS 0x18). */
#define GDT_CODE      2
#define GDT_DATA      3
#define GDT_TSS	      4 /* 16 bytes in long mode: entries 4 and 5 */
#define GDT_ENTRIES   6
#define SEL(i)	      ((uint16_t)((i)*8))
#define TSS_LIMIT     0x67
#define SEG_TYPE_CODE 0xb /* execute/read, accessed */
#define SEG_TYPE_DATA 0x3 /* read/write, accessed */
#define SEG_TYPE_TSS  0xb /* busy 32/64-bit TSS */

/* Identity map for the 64-bit entry: PML4, one PDPT, four PDs of 2 MiB pages = 4 GiB, enough
 * for the kernel, boot_params, the command line and an initramfs anywhere in low RAM. */
#define PT_PDPT_START (X86_PML4_START + 0x1000)
#define PT_PD_START   (X86_PML4_START + 0x2000)
#define PT_NR_PD      4
#define PT_END	      (PT_PD_START + PT_NR_PD * 0x1000)
#define PTE_P	      1ULL
#define PTE_RW	      2ULL
#define PTE_PS	      0x80ULL

/* The boot structures must not overlap each other (x86.h's low-memory constants). */
_Static_assert(X86_GDT_START + GDT_ENTRIES * 8 <= X86_PVH_INFO_START, "GDT overlaps PVH info");
_Static_assert(X86_PVH_INFO_START + 0x1000 <= X86_ZERO_PAGE_START, "PVH info overlaps zero page");
_Static_assert(X86_ZERO_PAGE_START + 0x1000 < X86_BOOT_STACK_TOP, "stack overlaps zero page");
_Static_assert(X86_BOOT_STACK_TOP <= X86_PML4_START, "stack overlaps page tables");
_Static_assert(PT_END <= X86_CMDLINE_START, "page tables overlap the command line");

static uint64_t gdt_entry(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags)
{
	return ((uint64_t)(base & 0xff000000) << 32) | ((uint64_t)(flags & 0xf) << 52) |
	       ((uint64_t)((limit >> 16) & 0xf) << 48) | ((uint64_t)access << 40) |
	       ((uint64_t)(base & 0x00ffffff) << 16) | (limit & 0xffff);
}

/* Access byte and flags nibble from our segment description, so the GDT and the hidden
 * segment state the backend loads can never disagree. */
static uint64_t gdt_from_segment(const struct hv_segment *s)
{
	uint8_t access =
		(uint8_t)((s->present << 7) | ((s->dpl & 3) << 5) | (s->s << 4) | (s->type & 0xf));
	uint8_t flags = (uint8_t)((s->g << 3) | (s->db << 2) | (s->l << 1) | s->avl);
	uint32_t limit = s->g ? s->limit >> 12 : s->limit;
	return gdt_entry((uint32_t)s->base, limit, access, flags);
}

static int setup_msrs(struct hv_vcpu *vcpu)
{
	/* No IA32_TSC: writing it per vCPU at different moments would desynchronise the TSCs
	 * that KVM keeps matched. */
	static const struct hv_msr msrs[] = {
		{ MSR_IA32_SYSENTER_CS, 0 },
		{ MSR_IA32_SYSENTER_ESP, 0 },
		{ MSR_IA32_SYSENTER_EIP, 0 },
		{ MSR_STAR, 0 },
		{ MSR_LSTAR, 0 },
		{ MSR_CSTAR, 0 },
		{ MSR_SYSCALL_MASK, 0 },
		{ MSR_KERNEL_GS_BASE, 0 },
		{ MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING },
		{ MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_TYPE_WB },
	};
	return hv_vcpu_set_msrs(vcpu, msrs, ARRAY_SIZE(msrs));
}

int x86_vcpu_setup_cpuid(struct hv *hv, struct hv_vcpu *vcpu, unsigned index, unsigned nr_vcpus,
			 const struct cpu_topology *topo)
{
	_cleanup_free_ struct hv_cpuid_entry *sup = calloc(HV_CPUID_MAX_ENTRIES, sizeof(*sup));
	_cleanup_free_ struct hv_cpuid_entry *out = calloc(HV_CPUID_MAX_ENTRIES, sizeof(*out));
	int n, r;

	if (!sup || !out)
		return -ENOMEM;
	n = hv_supported_cpuid(hv, sup, HV_CPUID_MAX_ENTRIES);
	if (n < 0)
		return n;
	r = x86_cpuid_build(sup, (unsigned)n, index, nr_vcpus, topo, out, HV_CPUID_MAX_ENTRIES);
	if (r < 0)
		return r;
	return hv_vcpu_set_cpuid(vcpu, out, (unsigned)r);
}

static struct hv_segment flat_segment(uint16_t selector, uint8_t type, bool long_mode_code)
{
	return (struct hv_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = selector,
		.type = type,
		.present = 1,
		.dpl = 0,
		.db = long_mode_code ? 0 : 1, /* L=1 requires D=0 */
		.s = 1,
		.l = long_mode_code ? 1 : 0,
		.g = 1,
	};
}

static int write_gdt(struct guest_mem *gm, const struct hv_sregs *sregs)
{
	uint64_t gdt[GDT_ENTRIES] = { 0 };

	gdt[GDT_CODE] = gdt_from_segment(&sregs->cs);
	gdt[GDT_DATA] = gdt_from_segment(&sregs->ds);
	gdt[GDT_TSS] = gdt_from_segment(&sregs->tr); /* upper half (entry 5): base 63:32 = 0 */
	return guest_mem_write(gm, X86_GDT_START, gdt, sizeof(gdt));
}

static int write_page_tables(struct guest_mem *gm)
{
	uint64_t pml4[512] = { 0 }, pdpt[512] = { 0 }, pd[512];
	int r;

	pml4[0] = PT_PDPT_START | PTE_P | PTE_RW;
	for (unsigned i = 0; i < PT_NR_PD; i++)
		pdpt[i] = (PT_PD_START + i * 0x1000ULL) | PTE_P | PTE_RW;
	r = guest_mem_write(gm, X86_PML4_START, pml4, sizeof(pml4));
	if (r < 0)
		return r;
	r = guest_mem_write(gm, PT_PDPT_START, pdpt, sizeof(pdpt));
	if (r < 0)
		return r;
	for (unsigned i = 0; i < PT_NR_PD; i++) {
		for (unsigned j = 0; j < 512; j++)
			pd[j] = ((i * 512ULL + j) << 21) | PTE_P | PTE_RW | PTE_PS;
		r = guest_mem_write(gm, PT_PD_START + i * 0x1000ULL, pd, sizeof(pd));
		if (r < 0)
			return r;
	}
	return 0;
}

static int setup_boot_cpu(struct hv_vcpu *vcpu, struct guest_mem *gm, const struct x86_boot *boot)
{
	bool lm = boot->kind == X86_KERNEL_BZIMAGE;
	struct hv_sregs sregs;
	struct hv_regs regs = { .rflags = RFLAGS_RESERVED,
				.rip = boot->entry,
				.rsp = X86_BOOT_STACK_TOP,
				.rbp = X86_BOOT_STACK_TOP };
	int r;

	r = hv_vcpu_get_sregs(vcpu, &sregs); /* keep apic_base, ldt, cr8 as the backend set */
	if (r < 0)
		return r;
	sregs.cs = flat_segment(SEL(GDT_CODE), SEG_TYPE_CODE, lm);
	sregs.ds = flat_segment(SEL(GDT_DATA), SEG_TYPE_DATA, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.tr = (struct hv_segment){
		.selector = SEL(GDT_TSS), .limit = TSS_LIMIT, .type = SEG_TYPE_TSS, .present = 1
	};
	sregs.gdt = (struct hv_dtable){ .base = X86_GDT_START, .limit = GDT_ENTRIES * 8 - 1 };
	sregs.idt = (struct hv_dtable){ .base = 0, .limit = 0 };
	sregs.cr2 = 0;
	r = write_gdt(gm, &sregs);
	if (r < 0)
		return r;

	if (lm) {
		r = write_page_tables(gm);
		if (r < 0)
			return r;
		sregs.cr3 = X86_PML4_START;
		sregs.cr4 = CR4_PAE;
		sregs.cr0 = CR0_PE | CR0_ET | CR0_PG;
		sregs.efer = EFER_LME | EFER_LMA;
		regs.rsi = boot->boot_info;
	} else {
		sregs.cr3 = 0;
		sregs.cr4 = 0;
		sregs.cr0 = CR0_PE | CR0_ET;
		sregs.efer = 0;
		regs.rbx = boot->boot_info;
	}

	r = hv_vcpu_set_sregs(vcpu, &sregs);
	if (r < 0)
		return r;
	return hv_vcpu_set_regs(vcpu, &regs);
}

int x86_vcpu_setup(struct hv *hv, struct hv_vcpu *vcpu, unsigned index, unsigned nr_vcpus,
		   const struct cpu_topology *topo, struct guest_mem *gm,
		   const struct x86_boot *boot)
{
	int r;

	r = x86_vcpu_setup_cpuid(hv, vcpu, index, nr_vcpus, topo);
	if (r < 0)
		return r;
	r = setup_msrs(vcpu);
	if (r < 0)
		return r;
	r = hv_vcpu_reset_fpu(vcpu);
	if (r < 0)
		return r;
	r = hv_vcpu_setup_lapic(vcpu);
	if (r < 0)
		return r;
	if (index != 0)
		return 0;
	return setup_boot_cpu(vcpu, gm, boot);
}
