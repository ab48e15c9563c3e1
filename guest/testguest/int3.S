/* int3: a breakpoint at CPL0 with no IDT. On hardware KVM this triple-faults (a shutdown exit);
 * on kvm_pvm hosts the instruction cannot be emulated (an internal-error exit). Either way the
 * VMM must report it, never hang. */
#include "testguest.inc"

	.text
	.code32
	.globl main
main:
	PUTS msg
	lidt null_idt
	int3
	PUTS survived
	ret

	.section .rodata
	.balign 8
null_idt:
	.word 0
	.long 0
msg:	.asciz "cubicle-testguest: int3\n"
survived:	.asciz "cubicle-testguest: int3 returned\n"
