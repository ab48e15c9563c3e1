/* hello: one line on COM1, 0x42 on the debug port, then ACPI power-off. */
#include "testguest.inc"

	.text
	.code32
	.globl main
main:
	PUTS msg
	movb $0x42, %al
	outb %al, $DEBUG_PORT
	jmp poweroff

	.section .rodata
msg:	.asciz "cubicle-testguest: hello\n"
