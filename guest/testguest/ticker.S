/*
 * ticker: signals "started" on CubeSandbox's system control port (0x680; a write nothing
 * decodes without --sys-ctrl), then prints "cubicle-testguest: tick XXXXXXXX" (a hex count)
 * after every busy-wait of TICK_LOOPS iterations, forever: a guest whose progress a snapshot,
 * restore and resume must carry on from where it was (the count goes on, no tick repeats).
 * The wait is a plain countdown, not the TSC, so that it ends whatever the clock does.
 */
#include "testguest.inc"

#define SYS_CTRL   0x680
#define TICK_LOOPS 0x80000 /* ~0.2 s on kvm_pvm here */

	.text
	.code32
	.globl main
main:
	movw $SYS_CTRL, %dx
	movb $1, %al
	outb %al, %dx
	xorl %edi, %edi
1:	PUTS tick
	movl %edi, %eax
	call puthex
	PUTS newline
	incl %edi
	movl $TICK_LOOPS, %ecx
2:	decl %ecx
	jnz 2b
	jmp 1b

	.section .rodata
tick:	.asciz "cubicle-testguest: tick "
newline:
	.asciz "\n"
