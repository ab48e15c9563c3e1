/* Entry point, PVH note, COM1 output and ACPI power-off shared by the tiny test guests. */
#include "testguest.inc"

	.section .note.Xen, "a"
	.balign 4
	.long 4                        /* namesz: "Xen\0" */
	.long 8                        /* descsz: Linux writes a pointer-sized address */
	.long XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.balign 4
	.quad pvh_start

	.section .text.entry, "ax"
	.code32
	.globl pvh_start
pvh_start:
	cli
	cld
	movl $stack_top, %esp
	pushl $0                       /* keep %esp 16-byte aligned at the call */
	pushl $0
	pushl $0
	pushl %ebx                     /* argument: struct hvm_start_info * */
	call main
	call poweroff

	.text
/* puts: %esi = NUL-terminated string. Polls LSR.THRE before each byte, with a bound so that a
 * missing UART cannot hang the guest. */
	.globl puts
puts:
	pushl %ebx
1:	movb (%esi), %bl
	testb %bl, %bl
	jz 4f
	movl $100000, %ecx
	movw $COM1_LSR, %dx
2:	inb %dx, %al
	testb $LSR_THRE, %al
	jnz 3f
	pause
	loop 2b
3:	movw $COM1, %dx
	movb %bl, %al
	outb %al, %dx
	incl %esi
	jmp 1b
4:	popl %ebx
	ret

/* puthex: prints %eax as 8 hex digits (clobbers %eax, %ecx, %edx, %esi). */
	.globl puthex
puthex:
	pushl %ebx
	movl %eax, %ebx
	movl $8, %ecx
	movl $hexbuf, %esi
1:	roll $4, %ebx
	movl %ebx, %eax
	andl $0xf, %eax
	movb hexdigits(%eax), %al
	movb %al, (%esi)
	incl %esi
	loop 1b
	movb $0, (%esi)
	movl $hexbuf, %esi
	call puts
	popl %ebx
	ret

/* poweroff: ACPI S5 through the sleep control register; halts if the VMM ignores it. */
	.globl poweroff
poweroff:
	movw $ACPI_SLP_CTL, %dx
	movb $((SLP_TYP_S5 << 2) | SLP_EN), %al
	outb %al, %dx
	.globl halt_forever
halt_forever:
	cli
1:	hlt
	jmp 1b

	.section .rodata
hexdigits:
	.ascii "0123456789abcdef"

	.data
hexbuf:
	.fill 12, 1, 0

	.bss
	.balign 16
	.fill 4096, 1, 0
stack_top:
