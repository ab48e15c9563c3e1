/*
 * Constants shared by entry.S and the C code of the device test guest: segment selectors,
 * page-table bits, control registers, the LAPIC and the interrupt vectors.
 */
#ifndef GUEST_LAYOUT_H
#define GUEST_LAYOUT_H

/* Linux's x86-64 GDT layout (no reason to differ from what kvm_pvm is tested with). */
#define SEL_KCODE32 0x08
#define SEL_KCODE   0x10
#define SEL_KDATA   0x18
#define SEL_UCODE32 (0x20 | 3)
#define SEL_UDATA   (0x28 | 3)
#define SEL_UCODE   (0x30 | 3)
#define SEL_TSS	    0x40

#define PTE_P	    0x1
#define PTE_RW	    0x2
#define PTE_US	    0x4
#define PTE_PS	    0x80
#define PTE_USER_RW (PTE_P | PTE_RW | PTE_US)

#define CR0_PE	 0x1
#define CR0_PG	 0x80000000
#define CR4_PAE	 0x20
#define MSR_EFER 0xc0000080
#define EFER_LME 0x100

#define RFLAGS_FIXED 0x2
#define RFLAGS_IF    0x200
#define RFLAGS_IOPL3 0x3000

#define LAPIC_BASE	0xfee00000
#define LAPIC_EOI	0xb0
#define LAPIC_SVR	0xf0
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERROR 0x370

/* Vectors: 0-31 exceptions; MSI-X vectors a scenario may use. */
#define MSIX_VECTOR_FIRST 0x40
#define MSIX_VECTOR_COUNT 16
#define SPURIOUS_VECTOR	  0xff

#define KSTACK_SIZE 16384
#define USTACK_SIZE 65536

#endif
