/*
 * smp: the boot CPU starts APIC id 1 with INIT-SIPI-SIPI. The AP begins in real mode at the
 * trampoline copied to TRAMPOLINE (SIPI vector TRAMPOLINE >> 12), writes AP_MAGIC into its flag
 * word and halts. The BSP waits for the flag (bounded by the TSC, ~2^33 cycles, and an iteration
 * count) and prints which outcome it saw, then powers off.
 */
#include "testguest.inc"

#define LAPIC_BASE   0xfee00000
#define LAPIC_SVR    0xf0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define ICR_BUSY     (1 << 12)
#define ICR_INIT     0x00004500 /* delivery INIT, level assert */
#define ICR_STARTUP  0x00004600 /* delivery start-up, level assert; | vector */
#define TRAMPOLINE   0x8000
#define AP_ID        1
#define AP_MAGIC     0x50555041 /* "APUP" */
#define FLAG_ADDR    (TRAMPOLINE + (ap_flag - ap_trampoline))
#define TSC_TIMEOUT_SHIFT 33    /* 2^33 cycles: a few seconds */
#define MAX_POLLS    100000000

	.text
	.code32
	.globl main
main:
	pushl %ebx
	pushl %edi
	PUTS hello

	/* Copy the trampoline below 1 MiB and clear its flag. */
	movl $ap_trampoline, %esi
	movl $TRAMPOLINE, %edi
	movl $(ap_trampoline_end - ap_trampoline), %ecx
	rep movsb
	movl $0, FLAG_ADDR

	/* Software-enable the local APIC (spurious vector 0xff). */
	movl $(LAPIC_BASE + LAPIC_SVR), %ebx
	movl $0x1ff, (%ebx)

	movl $ICR_INIT, %eax
	call send_ipi
	movl $100000, %ecx             /* the 10 ms of the MP spec; KVM does not need it */
	call delay
	movl $(ICR_STARTUP | (TRAMPOLINE >> 12)), %eax
	call send_ipi
	movl $10000, %ecx
	call delay
	movl $(ICR_STARTUP | (TRAMPOLINE >> 12)), %eax
	call send_ipi

	/* Poll the flag: deadline in %edi = TSC bits 33+ (edx >> 1), bounded count in %ebx. */
	rdtsc
	shrl $(TSC_TIMEOUT_SHIFT - 32), %edx
	leal 1(%edx), %edi
	movl $MAX_POLLS, %ebx
1:	cmpl $AP_MAGIC, FLAG_ADDR
	je started
	pause
	decl %ebx
	jz timeout
	testl $0xfff, %ebx             /* read the TSC every 4096 polls */
	jnz 1b
	rdtsc
	shrl $(TSC_TIMEOUT_SHIFT - 32), %edx
	cmpl %edi, %edx
	jb 1b
	/* TSC passed the deadline: one last look */
	cmpl $AP_MAGIC, FLAG_ADDR
	je started
timeout:
	PUTS msg_timeout
	jmp out
started:
	PUTS msg_started
out:
	popl %edi
	popl %ebx
	ret

/* send_ipi: %eax = ICR low word, to APIC id AP_ID; waits (bounded) for the delivery bit. */
send_ipi:
	movl $(AP_ID << 24), LAPIC_BASE + LAPIC_ICR_HI
	movl %eax, LAPIC_BASE + LAPIC_ICR_LO
	movl $100000, %ecx
1:	testl $ICR_BUSY, LAPIC_BASE + LAPIC_ICR_LO
	jz 2f
	pause
	loop 1b
2:	ret

/* delay: %ecx iterations of pause. */
delay:
	pause
	loop delay
	ret

	/* Real-mode code, copied to TRAMPOLINE; the AP starts at CS = TRAMPOLINE >> 4, IP = 0. */
	.code16
ap_trampoline:
	cli
	movw %cs, %ax
	movw %ax, %ds
	movl $AP_MAGIC, (ap_flag - ap_trampoline)
1:	hlt
	jmp 1b
	.balign 4
ap_flag:
	.long 0
ap_trampoline_end:
	.code32

	.section .rodata
hello:	.asciz "cubicle-testguest: smp\n"
msg_started:	.asciz "cubicle-testguest: smp ap started\n"
msg_timeout:	.asciz "cubicle-testguest: smp ap timeout\n"
