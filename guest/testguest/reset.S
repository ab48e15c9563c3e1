/* reset: one line on COM1, then a reset through the i8042 controller (the VMM reboots it). */
#include "testguest.inc"

	.text
	.code32
	.globl main
main:
	PUTS msg
	movb $I8042_RESET, %al
	outb %al, $I8042_CMD
	PUTS failed
	jmp halt_forever

	.section .rodata
msg:	.asciz "cubicle-testguest: reset\n"
failed:	.asciz "cubicle-testguest: reset ignored\n"
