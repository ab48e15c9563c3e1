/*
 * Entry of the device test guest (tests/guest/README.md). Runs at CPL0, which kvm_pvm hosts
 * emulate instruction by instruction, so it does as little as it can: identity page tables
 * for 0-4 GiB (2 MiB pages, U/S set), a GDT with a TSS, long mode, then cpl0_setup() (C: IDT,
 * LAPIC, PIC) and an iretq to CPL3 with IOPL=3 and IF=1, where guest_main() runs natively
 * (kvm_pvm ignores IOPL at CPL3: its #GP on in/out is emulated here, see guest.h).
 *
 * Interrupt stubs: every vector pushes (error code or 0, vector) and jumps to isr_common.
 * Vectors >= 32 only count (irq_counts[vector]++) and EOI the LAPIC; exceptions call
 * exception_report(), which prints a FAIL line and powers off.
 */
#include "layout.h"

	.section .note.Xen, "a"
	.balign 4
	.long 4                        /* namesz: "Xen\0" */
	.long 8                        /* descsz: a 64-bit entry address, as Linux writes it */
	.long 18                       /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.balign 4
	.quad pvh_start

	.section .text.entry, "ax"
	.code32
	.globl pvh_start
pvh_start:
	cli
	cld
	movl %ebx, start_info_paddr
	/* PML4 and PDPT are contiguous: clear both, then PML4[0] -> PDPT, PDPT[0..3] -> PD 0..3 */
	movl $pml4, %edi
	xorl %eax, %eax
	movl $2048, %ecx
	rep stosl
	movl $(pdpt + PTE_USER_RW), pml4
	movl $pdpt, %edi
	movl $(pd + PTE_USER_RW), %eax
	movl $4, %ecx
1:	movl %eax, (%edi)
	addl $4096, %eax
	addl $8, %edi
	loop 1b
	/* 2048 2 MiB pages: 0-4 GiB identity (the high dwords are zero in .bss) */
	movl $pd, %edi
	movl $(PTE_USER_RW | PTE_PS), %eax
	movl $2048, %ecx
2:	movl %eax, (%edi)
	addl $0x200000, %eax
	addl $8, %edi
	loop 2b

	movl $pml4, %eax
	movl %eax, %cr3
	movl %cr4, %eax
	orl $CR4_PAE, %eax
	movl %eax, %cr4
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	lgdt gdt_ptr
	movl %cr0, %eax
	orl $(CR0_PG | CR0_PE), %eax
	movl %eax, %cr0
	ljmp $SEL_KCODE, $long_entry

	.code64
long_entry:
	movw $SEL_KDATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	xorl %eax, %eax
	movw %ax, %fs
	movw %ax, %gs
	movq $kstack_top, %rsp
	/* The TSS descriptor's base is split in pieces the assembler cannot compute. */
	movq $tss, %rax
	movw %ax, gdt_tss + 2
	shrq $16, %rax
	movb %al, gdt_tss + 4
	movb %ah, gdt_tss + 7
	movq $kstack_top, %rax
	movq %rax, tss + 4             /* rsp0: interrupts from CPL3 land on the kernel stack */
	movw $104, tss + 102           /* I/O map base past the limit: no bitmap, IOPL rules */
	movw $SEL_TSS, %ax
	ltr %ax
	call cpl0_setup
	pushq $SEL_UDATA
	pushq $ustack_top
	pushq $(RFLAGS_IOPL3 | RFLAGS_IF | RFLAGS_FIXED)
	pushq $SEL_UCODE
	pushq $user_entry
	iretq

/* CPL3 from here on. */
user_entry:
	call guest_main
	call poweroff
1:	jmp 1b

	.text
/* isr_stubs + 16 * vector is the entry of each vector. */
	.balign 16
	.globl isr_stubs
isr_stubs:
	.set vec, 0
	.rept 256
	.balign 16
	.if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	pushq $0
	.endif
	pushq $vec
	jmp isr_common
	.set vec, vec + 1
	.endr

isr_common:
	pushq %rax
	movq 8(%rsp), %rax             /* vector */
	cmpq $32, %rax
	jb exception
	incq irq_counts(, %rax, 8)
	cmpq $SPURIOUS_VECTOR, %rax
	je 1f
	movabsq $(LAPIC_BASE + LAPIC_EOI), %rax
	movl $0, (%rax)
1:	popq %rax
	addq $16, %rsp
	iretq
exception:
	cmpq $13, %rax
	jne exception_slow
	testb $3, 32(%rsp)             /* #GP from CPL3: maybe an in/out or hlt to emulate */
	jz exception_slow
	pushq %rcx
	movq 32(%rsp), %rcx            /* faulting rip */
	movzbl (%rcx), %eax
	cmpb $0xee, %al
	je gp_outb
	cmpb $0xec, %al
	je gp_inb
	cmpb $0xef, %al
	je gp_outl
	cmpb $0xed, %al
	je gp_inl
	cmpb $0xf4, %al
	je halt_forever
	cmpb $0x66, %al
	jne gp_other
	movzbl 1(%rcx), %eax
	cmpb $0xef, %al
	je gp_outw
	cmpb $0xed, %al
	je gp_inw
gp_other:
	popq %rcx
	movq 8(%rsp), %rax
	jmp exception_slow
gp_outb:
	movq 8(%rsp), %rax
	outb %al, %dx
	jmp gp_done1
gp_inb:
	movq 8(%rsp), %rax
	inb %dx, %al
	movq %rax, 8(%rsp)
	jmp gp_done1
gp_outl:
	movq 8(%rsp), %rax
	outl %eax, %dx
	jmp gp_done1
gp_inl:
	inl %dx, %eax
	movq %rax, 8(%rsp)             /* a 32-bit result zero-extends, as the instruction does */
	jmp gp_done1
gp_outw:
	movq 8(%rsp), %rax
	outw %ax, %dx
	jmp gp_done2
gp_inw:
	movq 8(%rsp), %rax
	inw %dx, %ax
	movq %rax, 8(%rsp)
gp_done2:
	incq 32(%rsp)
gp_done1:
	incq 32(%rsp)
	popq %rcx
	popq %rax
	addq $16, %rsp
	iretq
exception_slow:
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, %rdi
	call exception_report
	/* fall through: exception_report does not return */
	.globl halt_forever
halt_forever:
	cli
1:	hlt
	jmp 1b

	.data
	.balign 16
gdt:
	.quad 0
	.quad 0x00cf9a000000ffff       /* SEL_KCODE32 (unused) */
	.quad 0x00af9a000000ffff       /* SEL_KCODE: 64-bit code, DPL0 */
	.quad 0x00cf92000000ffff       /* SEL_KDATA */
	.quad 0x00cffa000000ffff       /* SEL_UCODE32 (unused; sysretq's base) */
	.quad 0x00cff2000000ffff       /* SEL_UDATA: DPL3 */
	.quad 0x00affa000000ffff       /* SEL_UCODE: 64-bit code, DPL3 */
	.quad 0
gdt_tss:
	.quad 0x0000890000000067       /* SEL_TSS: available 64-bit TSS, limit 103; base patched */
	.quad 0
gdt_end:
gdt_ptr:
	.word gdt_end - gdt - 1
	.quad gdt

	.globl start_info_paddr
start_info_paddr:
	.quad 0

	.bss
	.balign 4096
	.globl pml4, pdpt, pd
pml4:	.fill 4096, 1, 0
pdpt:	.fill 4096, 1, 0
pd:	.fill 4 * 4096, 1, 0
	.balign 16
tss:	.fill 104, 1, 0
	.globl irq_counts
	.balign 64
irq_counts:
	.fill 256, 8, 0
	.balign 16
	.fill KSTACK_SIZE, 1, 0
kstack_top:
	.fill USTACK_SIZE, 1, 0
ustack_top:
