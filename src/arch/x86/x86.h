/* SPDX-License-Identifier: Apache-2.0 */
/*
 * x86_64 platform: guest memory layout, kernel loading (PVH ELF vmlinux and bzImage), boot
 * parameters and e820, boot-time vCPU state, CPUID and ACPI tables.
 *
 * Pure functions (layout, parsing, CPUID, table building) take plain buffers and are unit
 * tested; the *_setup functions apply their result through hv.h.
 */
#ifndef CUBICLE_ARCH_X86_X86_H
#define CUBICLE_ARCH_X86_X86_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "hv/hv.h"
#include "mem/guest_mem.h"

/* Guest-physical layout (close to Cloud Hypervisor's, so guests see what they expect there). */
#define X86_MEM_32BIT_HOLE_START 0xc0000000ULL	/* RAM below 4 GiB ends here */
#define X86_MEM_32BIT_HOLE_END	 0x100000000ULL /* RAM resumes here */
#define X86_PCI_MMCONFIG_START	 0xe0000000ULL	/* ECAM, 256 MiB (issue 3) */
#define X86_PCI_MMCONFIG_SIZE	 0x10000000ULL
#define X86_IOAPIC_START	 0xfec00000ULL
#define X86_LAPIC_START		 0xfee00000ULL

/* PCI BAR windows: 32-bit BARs below ECAM; 64-bit ones above RAM (x86_layout_pci). */
#define X86_PCI_MEM32_START X86_MEM_32BIT_HOLE_START
#define X86_PCI_MEM32_SIZE  (X86_PCI_MMCONFIG_START - X86_PCI_MEM32_START)
#define X86_PCI_MEM64_ALIGN 0x40000000ULL   /* 1 GiB */
#define X86_PCI_MEM64_SIZE  0x1000000000ULL /* 64 GiB */
/* Device memory (virtio-pmem mappings) right after the 64-bit window: not RAM, not a BAR. */
#define X86_DEVMEM_SIZE 0x4000000000ULL /* 256 GiB */

/* Low memory used during boot. */
#define X86_ZERO_PAGE_START 0x7000ULL /* Linux boot_params */
#define X86_GDT_START	    0x500ULL
#define X86_BOOT_STACK_TOP  0x8ff0ULL
#define X86_PVH_INFO_START  0x6000ULL /* hvm_start_info + memmap */
#define X86_PML4_START	    0x9000ULL /* identity page tables for 64-bit entry */
#define X86_CMDLINE_START   0x20000ULL
#define X86_EBDA_START	    0x9fc00ULL /* RAM below 1 MiB ends here in e820 */
#define X86_ACPI_START	    0xe0000ULL /* RSDP and tables (legacy RSDP search area) */
#define X86_ACPI_SIZE	    0x20000ULL
/* The VM Generation ID's 16 bytes (vmgenid.c) in the last page of the ACPI area, which the
 * tables leave free: reserved in e820, so the guest never uses it as RAM. */
#define X86_VMGENID_START    (X86_ACPI_START + X86_ACPI_SIZE - 0x1000ULL)
#define X86_VMGENID_SIZE     16
#define X86_ACPI_TABLES_SIZE (X86_VMGENID_START - X86_ACPI_START) /* what the tables may use */
#define X86_HIGH_MEM_START   0x100000ULL			  /* kernel load address */

/*
 * I/O ports of the platform devices (devices/legacy).
 * ACPI power management (FADT extended registers, 8-bit, system I/O; acpi.c builds the tables):
 * 0x600 sleep control: a write with SLP_EN (bit 5) and SLP_TYP (bits 2-4) == 5 is S5, power off;
 * 0x601 sleep status: reads 0 (WAK_STS, bit 7, never set); 0x604 reset: writing 1 resets.
 */
#define X86_PORT_ACPI_PM      0x600 /* sleep control/status and reset register, 0x600-0x60f */
#define X86_PORT_ACPI_PM_SIZE 0x10
#define X86_UART_COM1_IRQ     4
/*
 * The Generic Event Device's interrupt (ISA IRQ, edge, active high) and its event status
 * register (8-bit, read-to-clear; devices/legacy/acpi_pm.c): \_SB_.GED_._EVT reads it once and
 * notifies the power button for bit 0 and the VM generation ID for bit 1.
 */
#define X86_GED_IRQ		   5
#define X86_PORT_GED_STATUS	   (X86_PORT_ACPI_PM + 8)
#define X86_GED_EVENT_POWER_BUTTON 0x01
#define X86_GED_EVENT_VMGENID	   0x02

struct x86_ram_range {
	uint64_t gpa, size;
};

/*
 * Splits @mem_size bytes of RAM around the 32-bit PCI hole. Fills at most 2 ranges; returns
 * their count. @mem_size must be page aligned and non-zero.
 */
unsigned x86_layout_ram(uint64_t mem_size, struct x86_ram_range ret[2]);

/*
 * Where PCI decodes: ECAM for bus 0 only (what the MCFG table declares) and the BAR windows
 * the PCI root allocates from and the DSDT's host bridge declares, so the guest keeps
 * cubicle's assignment.
 */
struct x86_pci_layout {
	uint64_t ecam_base;
	uint8_t bus_start, bus_end;
	uint64_t mem32_base, mem32_size;
	uint64_t mem64_base, mem64_size;
};

/*
 * The PCI layout for @mem_size bytes of RAM: the 32-bit window X86_PCI_MEM32_*, and
 * X86_PCI_MEM64_SIZE bytes from the end of RAM (at least 4 GiB) rounded up to 1 GiB.
 */
void x86_layout_pci(uint64_t mem_size, struct x86_pci_layout *ret);

/* e820 entry as Linux and PVH start_info both describe memory. */
#define X86_E820_RAM	  1
#define X86_E820_RESERVED 2
#define X86_E820_MAX	  8
struct x86_e820_entry {
	uint64_t addr, size;
	uint32_t type;
} __attribute__((packed));

/* The e820 map for the given RAM ranges (RAM below 640 KiB, reserved EBDA..1 MiB, the rest).
 * Returns the entry count. */
unsigned x86_e820_build(const struct x86_ram_range *ram, unsigned n,
			struct x86_e820_entry ret[X86_E820_MAX]);

enum x86_kernel_kind {
	X86_KERNEL_PVH,	    /* ELF vmlinux with XEN_ELFNOTE_PHYS32_ENTRY: 32-bit protected mode */
	X86_KERNEL_BZIMAGE, /* Linux boot protocol ≥ 2.06, 64-bit entry at startup_64 */
};

struct x86_boot {
	enum x86_kernel_kind kind;
	uint64_t entry;	     /* guest-physical entry point */
	uint64_t boot_info;  /* gpa of hvm_start_info (PVH) or boot_params (bzImage) */
	uint64_t kernel_end; /* first byte after the loaded kernel image */
};

/*
 * Loads @kernel (a whole file in memory) into guest RAM, detecting its kind; loads @initrd
 * (may be NULL) at the top of low RAM; writes the command line, e820 and the PVH start_info or
 * Linux boot_params. Every header field is checked against the file size and guest RAM:
 * returns -ENOEXEC for a file that is neither a PVH ELF nor a bzImage (or is truncated or
 * corrupt), -EFBIG when the kernel or initramfs does not fit in RAM, -E2BIG when the command
 * line is too long for the kernel. @err receives one line for the user.
 */
int x86_load_kernel(struct guest_mem *gm, const void *kernel, size_t kernel_size,
		    const void *initrd, size_t initrd_size, const char *cmdline, uint64_t rsdp_gpa,
		    struct x86_boot *ret, char *err, size_t errlen);

/*
 * Builds ACPI tables (RSDP, XSDT, FADT hardware-reduced with sleep control/status and reset
 * registers at X86_PORT_ACPI_PM, MADT with one LAPIC per vCPU and the IOAPIC, DSDT with the
 * COM1 UART, _S5, the power button, the VM generation ID device and the GED that notifies
 * them) in guest RAM at X86_ACPI_START, within X86_ACPI_TABLES_SIZE. With @pci (may be NULL: no PCI), also an
 * MCFG table and the host bridge \_SB_.PCI0 in the DSDT with @pci's bus range and windows.
 * Returns 0 with the RSDP's address, -EINVAL for @nr_vcpus 0 or over CONFIG_MAX_VCPUS or a
 * bad @pci, -ENOSPC if they do not fit in X86_ACPI_SIZE, -EFAULT if that range is not RAM.
 */
int x86_acpi_build(struct guest_mem *gm, unsigned nr_vcpus, const struct x86_pci_layout *pci,
		   uint64_t *ret_rsdp);

/*
 * The same tables built into @buf (@cap bytes) as they will sit at guest address @gpa: returns
 * 0 with the bytes used and the RSDP's address, -EINVAL for @nr_vcpus 0 or over
 * CONFIG_MAX_VCPUS, or -ENOSPC. x86_acpi_build() is this plus one guest_mem_write().
 */
int x86_acpi_build_buf(void *buf, size_t cap, uint64_t gpa, unsigned nr_vcpus,
		       const struct x86_pci_layout *pci, size_t *ret_len, uint64_t *ret_rsdp);

/*
 * The VM Generation ID (Microsoft's "Virtual Machine Generation ID" spec; Linux's vmgenid
 * driver): writes a new random 128-bit ID at X86_VMGENID_START, where the DSDT's \_SB_.VGEN
 * points. Called at each cold boot and at each restore; after a restore the caller then
 * notifies the guest (GED event X86_GED_EVENT_VMGENID) so that it reseeds its RNG. Returns 0,
 * or -errno from getrandom() or guest_mem_write() (-EFAULT: that page is not RAM).
 */
int x86_vmgenid_update(struct guest_mem *gm);

/*
 * Builds vCPU @index's CPUID from the host's supported leaves only (never a bit the host did
 * not offer), with a consistent topology for @nr_vcpus (APIC id = @index) and the hypervisor
 * leaves. Returns the entry count, or -ENOSPC when @max is too small.
 */
int x86_cpuid_build(const struct hv_cpuid_entry *supported, unsigned n_supported, unsigned index,
		    unsigned nr_vcpus, const struct cpu_topology *topo, struct hv_cpuid_entry *ret,
		    unsigned max);

/* Sets vCPU @index's CPUID (x86_cpuid_build() over what the host supports): all a restored
 * vCPU needs before its saved state is loaded. Returns 0 or -errno. */
int x86_vcpu_setup_cpuid(struct hv *hv, struct hv_vcpu *vcpu, unsigned index, unsigned nr_vcpus,
			 const struct cpu_topology *topo);

/*
 * Sets up vCPU @index for boot: CPUID, MSRs, FPU, LAPIC, and for the boot processor the
 * registers, segments, GDT and page tables @boot needs (32-bit flat protected mode for PVH,
 * 64-bit long mode with identity paging for bzImage). Application processors are left to wait
 * for INIT/SIPI. Returns 0 or -errno.
 */
int x86_vcpu_setup(struct hv *hv, struct hv_vcpu *vcpu, unsigned index, unsigned nr_vcpus,
		   const struct cpu_topology *topo, struct guest_mem *gm,
		   const struct x86_boot *boot);

/*
 * Writes the MP specification 1.4 table (floating pointer at X86_MPTABLE_START, configuration
 * table after it: one processor entry per vCPU, the ISA bus, the IOAPIC and the ISA interrupt
 * routing the MADT describes). x86_mptable_build_buf builds it into @buf for a table at @gpa.
 * Return 0, -EINVAL for a vCPU count outside 1..CONFIG_MAX_VCPUS, -ENOSPC when @cap is short,
 * or guest_mem_write's error.
 */
/* The byte that makes the @len bytes at @p sum to 0 (mod 256): the ACPI and MP checksums. */
uint8_t x86_checksum8(const void *p, size_t len);

#define X86_MPTABLE_START X86_EBDA_START
#define X86_MPTABLE_MAX	  (8 * 1024) /* 5.2 KiB for CONFIG_MAX_VCPUS */
size_t x86_mptable_size(unsigned nr_vcpus);
int x86_mptable_build_buf(uint8_t *buf, size_t cap, uint64_t gpa, unsigned nr_vcpus,
			  size_t *ret_len);
int x86_mptable_build(struct guest_mem *gm, unsigned nr_vcpus);

/*
 * Translates guest-virtual @gva to guest-physical through the guest's own page tables (flat when
 * paging is off, 4-level long mode otherwise), for reports. Table entries are read through
 * guest_mem. Returns 0, -EFAULT when not mapped or not RAM, -ENOTSUP for other paging modes.
 */
int x86_gva_to_gpa(const struct guest_mem *gm, const struct hv_sregs *s, uint64_t gva,
		   uint64_t *ret);

#endif
