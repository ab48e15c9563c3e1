/* idle: one line on COM1, then hlt with interrupts off forever (the vCPU parks in the kernel):
 * the workload for measuring an idle VMM and for signal tests. */
#include "testguest.inc"

	.text
	.code32
	.globl main
main:
	PUTS msg
	jmp halt_forever

	.section .rodata
msg:	.asciz "cubicle-testguest: idle\n"
