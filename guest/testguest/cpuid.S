/* cpuid: prints what CPUID leaves 1 and 7 say at CPL0, to compare with what the VMM set. */
#include "testguest.inc"

	.text
	.code32
	.globl main
main:
	PUTS m1
	movl $1, %eax
	xorl %ecx, %ecx
	cpuid
	pushl %edx
	movl %ecx, %eax
	call puthex
	PUTS medx
	popl %eax
	call puthex
	PUTS m7
	movl $7, %eax
	xorl %ecx, %ecx
	cpuid
	pushl %ecx
	movl %ebx, %eax
	call puthex
	PUTS mecx
	popl %eax
	call puthex
	PUTS m4
	movl $0x40000001, %eax
	xorl %ecx, %ecx
	cpuid
	call puthex
	PUTS nl
	jmp poweroff

	.section .rodata
m1:	.asciz "cubicle-testguest: cpuid 1 ecx="
medx:	.asciz " edx="
m7:	.asciz " 7.0 ebx="
mecx:	.asciz " ecx="
m4:	.asciz " 40000001 eax="
nl:	.asciz "\n"
