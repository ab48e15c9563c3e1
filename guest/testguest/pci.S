/*
 * pci: reads the vendor/device dword of 00:00.0 through the legacy ports (0xcf8/0xcfc) and
 * through ECAM (paging is off: 0xe0000000 is addressed directly), and an absent slot's, then
 * prints them.
 */
#include "testguest.inc"

#define PCI_CF8   0xcf8
#define PCI_CFC   0xcfc
#define ECAM_BASE 0xe0000000
#define ABSENT    (5 << 15)   /* 00:05.0 in ECAM */

	.text
	.code32
	.globl main
main:
	PUTS m_cf8
	movw $PCI_CF8, %dx
	movl $0x80000000, %eax        /* enable, bus 0, device 0, function 0, register 0 */
	outl %eax, %dx
	movw $PCI_CFC, %dx
	inl %dx, %eax
	call puthex
	PUTS m_ecam
	movl ECAM_BASE, %eax
	call puthex
	PUTS m_class
	movl ECAM_BASE + 8, %eax
	call puthex
	PUTS m_absent
	movl ECAM_BASE + ABSENT, %eax
	call puthex
	PUTS nl
	jmp poweroff

	.section .rodata
m_cf8:    .asciz "cubicle-testguest: pci cf8="
m_ecam:   .asciz " ecam="
m_class:  .asciz " class="
m_absent: .asciz " absent="
nl:       .asciz "\n"
