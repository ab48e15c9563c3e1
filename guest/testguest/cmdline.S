/* cmdline: prints the command line found through hvm_start_info, then powers off. */
#include "testguest.inc"

#define CMDLINE_MAX 4096

	.text
	.code32
	.globl main
main:
	pushl %ebx
	movl 8(%esp), %ebx             /* struct hvm_start_info * */
	cmpl $HVM_START_MAGIC, (%ebx)
	jne bad_magic
	PUTS prefix
	movl HVM_START_CMDLINE_OFF(%ebx), %edi
	testl %edi, %edi
	jz done
	movl $CMDLINE_MAX, %ecx        /* copy at most CMDLINE_MAX bytes, always NUL-terminated */
	movl $buf, %esi
1:	movb (%edi), %al
	movb %al, (%esi)
	testb %al, %al
	jz 2f
	incl %edi
	incl %esi
	loop 1b
	movb $0, (%esi)
2:	PUTS buf
done:
	PUTS newline
	popl %ebx
	ret
bad_magic:
	PUTS badmsg
	movl (%ebx), %eax
	call puthex
	PUTS newline
	popl %ebx
	ret

	.section .rodata
prefix:	.asciz "cubicle-testguest: cmdline: "
badmsg:	.asciz "cubicle-testguest: cmdline: bad magic 0x"
newline:	.asciz "\n"

	.bss
buf:	.fill CMDLINE_MAX + 1, 1, 0
