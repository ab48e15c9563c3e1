/*
 * The one system call entry the libc-free guest tools in guest/tools share: x86_64 `syscall`
 * with up to six arguments. Returns the kernel's result (-errno on failure).
 */
#ifndef GUEST_TOOLS_SYS_H
#define GUEST_TOOLS_SYS_H

static inline long sys(long nr, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#endif
