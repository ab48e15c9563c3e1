/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The filters. Each list says why a call is there (docs/seccomp.md repeats it for reviewers).
 * Argument checks where they matter: ioctl request numbers (the hypervisor backend's own list
 * plus the terminal's), socket families, no executable mappings, clone only for threads.
 */
#include "security/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sched.h>
#include <linux/sockios.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "hv/hv.h"
#include "security/syscall_names.h"
#include "util/log.h"
#include "util/util.h"

/* The name a violation report gives the thread; set by seccomp_apply(). Thread-local state
 * read by the signal handler only (it may not take locks or allocate). */
static __thread const char *thread_label;

static const char *const kind_names[SECCOMP_THREAD_KINDS] = {
	[SECCOMP_THREAD_VMM] = "vmm", [SECCOMP_THREAD_VCPU] = "vcpu",
	[SECCOMP_THREAD_API] = "api", [SECCOMP_THREAD_WORKER] = "worker",
	[SECCOMP_THREAD_CTL] = "ctl",
};

const char *seccomp_thread_name(enum seccomp_thread kind)
{
	return kind < SECCOMP_THREAD_KINDS ? kind_names[kind] : "?";
}

/* Every thread: the C runtime (malloc, locks, thread exit), logging, clocks, and what the
 * violation handler itself needs (rt_sigaction, gettid/getpid, tgkill). */
static const int base_calls[] = {
	SCMP_SYS(brk),		 /* malloc */
	SCMP_SYS(munmap),	 /* free, thread exit */
	SCMP_SYS(mremap),	 /* realloc of large blocks */
	SCMP_SYS(madvise),	 /* free; thread stacks at exit */
	SCMP_SYS(futex),	 /* mutexes, condition variables, joins */
	SCMP_SYS(write),	 /* logs, eventfds, terminals */
	SCMP_SYS(writev),	 /* stdio */
	SCMP_SYS(clock_gettime), /* when the vDSO falls back to the system call */
	SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(rt_sigreturn), /* the vCPU kick signal's handler returns */
	SCMP_SYS(rt_sigaction), /* the violation handler resets SIGSYS before re-raising it */
	SCMP_SYS(gettid),
	SCMP_SYS(getpid),
	SCMP_SYS(tgkill), /* the handler; pthread_kill */
	SCMP_SYS(exit),
	SCMP_SYS(exit_group),
};

#ifdef __SANITIZE_ADDRESS__
/* Only in a build with the address sanitizer (make build-asan, make test-e2e-asan): its runtime
 * sleeps, yields and switches signal stacks on every thread. Not in a production build. */
static const int sanitizer_calls[] = {
	SCMP_SYS(sigaltstack),	   SCMP_SYS(sched_yield), SCMP_SYS(nanosleep),
	SCMP_SYS(clock_nanosleep), SCMP_SYS(getrandom),
};
#endif

/* The vCPU thread: KVM_RUN and the exits' device handlers (eventfd writes, MSI and routing
 * ioctls, reads of terminals for the serial port's status). */
static const int vcpu_calls[] = {
	SCMP_SYS(read), /* eventfds */
	/* The virtio transport runs on the exit of the guest's register write: MSI-X vectors get
	 * an irqfd, DRIVER_OK and resets (un)register the queues' ioeventfds with the loop. */
	SCMP_SYS(eventfd2),
	SCMP_SYS(close),
	SCMP_SYS(epoll_ctl),
};

/* The VMM loop: the devices' work on data the guest controls. It opens no file, creates no
 * thread and builds nothing: that is the control thread's (core/loop.h, loop_control). */
static const int vmm_calls[] = {
	SCMP_SYS(read),		   /* eventfds, timerfds, TAPs, sockets, terminals, the signalfd */
	SCMP_SYS(pread64),	   /* disk images: qcow2 metadata, */
	SCMP_SYS(pwrite64),	   /* qcow2 metadata, */
	SCMP_SYS(preadv),	   /* the synchronous paths */
	SCMP_SYS(pwritev),	   /* of the image layer */
	SCMP_SYS(ftruncate),	   /* a qcow2 image grows for clusters allocated by guest writes */
	SCMP_SYS(lseek),	   /* virtio-rng's source, a regular file: rewound at its end */
	SCMP_SYS(close),	   /* vsock connections, finished timers */
	SCMP_SYS(epoll_wait),	   /* the loop */
	SCMP_SYS(epoll_ctl),	   /* devices (re)arming their fds */
	SCMP_SYS(timerfd_settime), /* rate limiters, vsock's set-up timeout */
	SCMP_SYS(io_uring_enter),  /* virtio-blk's engine: submissions and completions */
	SCMP_SYS(fallocate),	   /* discards, write-zeroes; the balloon on shared memory */
	SCMP_SYS(fdatasync),	   /* flushes */
	SCMP_SYS(connect),	   /* vsock: the guest's connections to PATH_<port>, */
	SCMP_SYS(accept4),	   /* host connections to its socket, */
	SCMP_SYS(sendto),	   /* their data */
	SCMP_SYS(recvfrom),	   /* their data */
	SCMP_SYS(shutdown),	   /* half-closes */
};

/* The control thread: building, rebuilding and tearing down VMs (files, vCPU threads, memory
 * slots, TAPs), snapshots and restores, and the API's commands. */
static const int ctl_calls[] = {
	SCMP_SYS(getrandom), /* MAC addresses, VM generation IDs */
	SCMP_SYS(clock_nanosleep),
	SCMP_SYS(nanosleep),
	SCMP_SYS(sched_yield),
	SCMP_SYS(read),
	SCMP_SYS(readv),
	SCMP_SYS(pread64),
	SCMP_SYS(pwrite64),
	SCMP_SYS(preadv),
	SCMP_SYS(pwritev),
	SCMP_SYS(lseek),
	SCMP_SYS(openat), /* a guest reboot rebuilds the VM: kernel, initramfs, /dev/kvm, files */
	SCMP_SYS(access),
	SCMP_SYS(faccessat),
	SCMP_SYS(faccessat2),
	SCMP_SYS(readlink),
	SCMP_SYS(close),
	SCMP_SYS(dup),
	SCMP_SYS(dup3),
	SCMP_SYS(fcntl),
	SCMP_SYS(fstat),
	SCMP_SYS(newfstatat),
	SCMP_SYS(statx),
	SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait),
	SCMP_SYS(epoll_ctl),
	SCMP_SYS(epoll_create1),
	SCMP_SYS(ppoll),
	SCMP_SYS(poll),
	SCMP_SYS(eventfd2),
	SCMP_SYS(signalfd4),
	SCMP_SYS(timerfd_create),
	SCMP_SYS(timerfd_settime),
	SCMP_SYS(timerfd_gettime),
	SCMP_SYS(memfd_create),
	SCMP_SYS(ftruncate),
	SCMP_SYS(fallocate),
	SCMP_SYS(fdatasync),
	SCMP_SYS(fsync),
	SCMP_SYS(io_uring_setup), /* virtio-blk's engine: set up when a VM is (re)built, */
	SCMP_SYS(io_uring_register),
	SCMP_SYS(io_uring_enter), /* then submissions and waits */
	SCMP_SYS(set_robust_list),
	SCMP_SYS(rseq),	   /* thread start (vCPUs, set-up threads) */
	SCMP_SYS(prctl),   /* thread names; no_new_privs */
	SCMP_SYS(seccomp), /* vCPU threads started after a reboot add their filter to this one */
	SCMP_SYS(sched_getaffinity), /* sysconf(_SC_NPROCESSORS_ONLN) */
	SCMP_SYS(getuid),
	SCMP_SYS(geteuid),
	SCMP_SYS(getppid),
	SCMP_SYS(uname),
	SCMP_SYS(sysinfo),
	SCMP_SYS(sendmsg),
	SCMP_SYS(recvmsg),
	SCMP_SYS(sendto),
	SCMP_SYS(recvfrom),
	SCMP_SYS(accept4),
	SCMP_SYS(connect),
	SCMP_SYS(bind),
	SCMP_SYS(listen),
	SCMP_SYS(shutdown),
	SCMP_SYS(getsockopt),
	SCMP_SYS(setsockopt),
	SCMP_SYS(getsockname),
	SCMP_SYS(unlink),
	SCMP_SYS(unlinkat),
	SCMP_SYS(renameat), /* vm.snapshot: its files into place */
	SCMP_SYS(pipe2),
	SCMP_SYS(socketpair),
};

/* The API thread: its clients on the Unix socket (created, with the epoll set and the wake
 * eventfd, before the thread starts), libmicrohttpd in its epoll mode without threads of its
 * own, and the command queue to the loop. */
static const int
	api_calls
		[] = {
			SCMP_SYS(read),	      /* its wake eventfd */
			SCMP_SYS(close),      /* clients */
			SCMP_SYS(fcntl),      /* non-blocking client sockets */
			SCMP_SYS(epoll_wait), /* its loop, and libmicrohttpd's */
			SCMP_SYS(epoll_ctl),  SCMP_SYS(accept4),
			SCMP_SYS(recvmsg), /* requests with fds (SCM_RIGHTS) */
			SCMP_SYS(sendmsg), /* answers */
			SCMP_SYS(recvfrom),   SCMP_SYS(sendto),
			SCMP_SYS(shutdown),   SCMP_SYS(setsockopt),
		};

/* Landlock (security/landlock.h): a VM created or restored through the API with
 * landlock_enable confines the control thread then, after its filter is in; the loop and API
 * threads follow with an empty ruleset each made before its own filter. */
static const int landlock_build_calls[] = {
	SCMP_SYS(landlock_create_ruleset),
	SCMP_SYS(landlock_add_rule),
	SCMP_SYS(landlock_restrict_self),
};
static const int landlock_follow_calls[] = { SCMP_SYS(landlock_restrict_self) };

/* Device I/O workers: positioned I/O on their image files and its syncs. */
static const int worker_calls[] = {
	SCMP_SYS(read),	   SCMP_SYS(pread64), SCMP_SYS(pwrite64),  SCMP_SYS(preadv),
	SCMP_SYS(pwritev), SCMP_SYS(fsync),   SCMP_SYS(fdatasync), SCMP_SYS(fallocate),
};

/* Terminal ioctls (serial and virtio-console backends: raw mode, window size, ptys). */
static const unsigned long term_ioctls[] = {
	TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ, TIOCGPTN, TIOCSPTLCK, FIONBIO, FIONREAD,
};

/* virtio-net's TAP backend: a reboot re-opens and configures the TAP on the loop thread
 * (devices/backend/tap.c); offloads and queue attachment follow the driver, also from the
 * vCPU thread that writes DRIVER_OK or a reset. */
static const unsigned long tap_ioctls[] = {
	TUNSETIFF,	TUNGETIFF,     TUNSETVNETHDRSZ, TUNSETOFFLOAD, TUNSETQUEUE,  SIOCSIFADDR,
	SIOCSIFNETMASK, SIOCSIFHWADDR, SIOCSIFMTU,	SIOCGIFFLAGS,  SIOCSIFFLAGS,
};
static const unsigned long tap_vcpu_ioctls[] = { TUNSETOFFLOAD, TUNSETQUEUE };

#define SECCOMP_MAX_NR 512 /* above every x86_64 system call number */

struct filter_builder {
	scmp_filter_ctx ctx;
	int error;
	uint64_t seen[SECCOMP_MAX_NR / 64]; /* system calls allowed, for the count */
};

static void note(struct filter_builder *b, int nr)
{
	if (nr >= 0 && nr < SECCOMP_MAX_NR)
		b->seen[nr / 64] |= 1ULL << (nr % 64);
}

static void allow(struct filter_builder *b, int nr)
{
	if (b->error || (nr >= 0 && nr < SECCOMP_MAX_NR && (b->seen[nr / 64] >> (nr % 64)) & 1))
		return; /* listed in two lists (base and kind): once is enough */
	int r = seccomp_rule_add(b->ctx, SCMP_ACT_ALLOW, nr, 0);
	if (r < 0)
		b->error = r;
	else
		note(b, nr);
}

static void allow_list(struct filter_builder *b, const int *calls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		allow(b, calls[i]);
}

static void allow_if(struct filter_builder *b, int nr, unsigned argc, const struct scmp_arg_cmp *c)
{
	if (b->error)
		return;
	int r = seccomp_rule_add_array(b->ctx, SCMP_ACT_ALLOW, nr, argc, c);
	if (r < 0)
		b->error = r;
	else
		note(b, nr);
}

static void allow_ioctls(struct filter_builder *b, const unsigned long *reqs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_EQ, reqs[i]);
		allow_if(b, SCMP_SYS(ioctl), 1, &c);
	}
}

/* mmap and mprotect never with PROT_EXEC: nothing in cubicle generates code. */
static void allow_memory(struct filter_builder *b)
{
	struct scmp_arg_cmp no_exec = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
	allow_if(b, SCMP_SYS(mmap), 1, &no_exec);
	allow_if(b, SCMP_SYS(mprotect), 1, &no_exec);
}

/* Threads only (CLONE_THREAD); clone3 answers ENOSYS so that glibc falls back to clone, whose
 * flags a filter can see. */
static void allow_threads(struct filter_builder *b)
{
	struct scmp_arg_cmp thread = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD);
	allow_if(b, SCMP_SYS(clone), 1, &thread);
	if (!b->error) {
		int r = seccomp_rule_add(b->ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
		if (r < 0)
			b->error = r;
	}
}

/* Sockets: Unix (API, vsock, fd passing) and AF_INET datagram sockets (the ioctls that set a
 * TAP's address), nothing that reaches a network by itself. */
static void allow_sockets(struct filter_builder *b, bool inet)
{
	struct scmp_arg_cmp unix_only = SCMP_A0(SCMP_CMP_EQ, AF_UNIX);
	allow_if(b, SCMP_SYS(socket), 1, &unix_only);
	if (inet) {
		struct scmp_arg_cmp inet4 = SCMP_A0(SCMP_CMP_EQ, AF_INET);
		struct scmp_arg_cmp inet6 = SCMP_A0(SCMP_CMP_EQ, AF_INET6);
		allow_if(b, SCMP_SYS(socket), 1, &inet4);
		allow_if(b, SCMP_SYS(socket), 1, &inet6);
	}
}

static void build(struct filter_builder *b, enum seccomp_thread kind)
{
	const unsigned long *hv_reqs;
	size_t hv_n;

	allow_list(b, base_calls, ARRAY_SIZE(base_calls));
#ifdef __SANITIZE_ADDRESS__
	allow_list(b, sanitizer_calls, ARRAY_SIZE(sanitizer_calls));
#endif
	allow_memory(b);
	switch (kind) {
	case SECCOMP_THREAD_VCPU:
		allow_list(b, vcpu_calls, ARRAY_SIZE(vcpu_calls));
		hv_n = hv_seccomp_ioctls(true, &hv_reqs);
		allow_ioctls(b, hv_reqs, hv_n);
		allow_ioctls(b, term_ioctls, ARRAY_SIZE(term_ioctls));
		allow_ioctls(b, tap_vcpu_ioctls, ARRAY_SIZE(tap_vcpu_ioctls));
		break;
	case SECCOMP_THREAD_VMM:
		allow_list(b, vmm_calls, ARRAY_SIZE(vmm_calls));
		allow_list(b, landlock_follow_calls, ARRAY_SIZE(landlock_follow_calls));
		/* Devices raise interrupts and follow the driver's offloads from here too. */
		hv_n = hv_seccomp_ioctls(true, &hv_reqs);
		allow_ioctls(b, hv_reqs, hv_n);
		allow_ioctls(b, term_ioctls, ARRAY_SIZE(term_ioctls));
		allow_ioctls(b, tap_vcpu_ioctls, ARRAY_SIZE(tap_vcpu_ioctls));
		allow_sockets(b, false);
		break;
	case SECCOMP_THREAD_CTL:
		allow_list(b, ctl_calls, ARRAY_SIZE(ctl_calls));
		allow_list(b, landlock_build_calls, ARRAY_SIZE(landlock_build_calls));
		/* A reboot starts vCPU threads again from here: they inherit this filter, so it
		 * holds what they need too. */
		allow_list(b, vcpu_calls, ARRAY_SIZE(vcpu_calls));
		hv_n = hv_seccomp_ioctls(false, &hv_reqs);
		allow_ioctls(b, hv_reqs, hv_n);
		hv_n = hv_seccomp_ioctls(true, &hv_reqs);
		allow_ioctls(b, hv_reqs, hv_n);
		allow_ioctls(b, term_ioctls, ARRAY_SIZE(term_ioctls));
		allow_ioctls(b, tap_ioctls, ARRAY_SIZE(tap_ioctls));
		allow_threads(b);
		allow_sockets(b, true);
		break;
	case SECCOMP_THREAD_API:
		allow_list(b, api_calls, ARRAY_SIZE(api_calls));
		allow_list(b, landlock_follow_calls, ARRAY_SIZE(landlock_follow_calls));
		/* The API thread opens no file, but glibc may on its behalf: it reads
		 * /proc/sys/vm/overcommit_memory the first time it trims a thread's heap (after a
		 * large request body is freed). Refused with EACCES, glibc just does not trim. */
		if (!b->error) {
			int r = seccomp_rule_add(b->ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat),
						 0);
			if (r < 0)
				b->error = r;
		}
		break;
	case SECCOMP_THREAD_WORKER:
		allow_list(b, worker_calls, ARRAY_SIZE(worker_calls));
		break;
	default:
		b->error = -EINVAL;
	}
}

static int filter_new(enum seccomp_thread kind, enum seccomp_mode mode, struct filter_builder *b)
{
	uint32_t def = mode == SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP;

	memset(b, 0, sizeof(*b));
	b->ctx = seccomp_init(def);
	if (!b->ctx)
		return -ENOMEM;
	build(b, kind);
	if (b->error) {
		seccomp_release(b->ctx);
		return b->error;
	}
	return 0;
}

int seccomp_filter_count(enum seccomp_thread kind)
{
	struct filter_builder b;
	int r = filter_new(kind, SECCOMP_ON, &b);
	if (r < 0)
		return r;
	seccomp_release(b.ctx);
	int count = 0;
	for (size_t i = 0; i < ARRAY_SIZE(b.seen); i++)
		count += __builtin_popcountll(b.seen[i]);
	return count;
}

/* Async-signal-safe formatting: the handler may interrupt malloc, so no stdio. */
static size_t put_str(char *buf, size_t pos, size_t cap, const char *s)
{
	while (*s && pos + 1 < cap)
		buf[pos++] = *s++;
	return pos;
}

static size_t put_uint(char *buf, size_t pos, size_t cap, unsigned long v)
{
	char digits[24];
	size_t n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < sizeof(digits));
	while (n && pos + 1 < cap)
		buf[pos++] = digits[--n];
	return pos;
}

static void on_sigsys(int sig, siginfo_t *si, void *uctx)
{
	char line[256];
	size_t n = 0;
	unsigned nr = (unsigned)si->si_syscall;
	const char *name = nr < SYSCALL_NAMES_SIZE ? syscall_names[nr] : NULL;

	n = put_str(line, n, sizeof(line), "cubicle: seccomp: thread '");
	n = put_str(line, n, sizeof(line), thread_label ? thread_label : "?");
	n = put_str(line, n, sizeof(line), "' made a forbidden system call: ");
	n = put_str(line, n, sizeof(line), name ? name : "unknown");
	n = put_str(line, n, sizeof(line), " (");
	n = put_uint(line, n, sizeof(line), nr);
	n = put_str(line, n, sizeof(line), "); ending the process (--seccomp true)\n");
	log_write_raw(line, n);

	/* Die of SIGSYS, as SECCOMP_RET_KILL_PROCESS would, so the parent sees the cause. */
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigaction(SIGSYS, &dfl, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGSYS);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGSYS);
	_exit(128 + SIGSYS); /* not reached */
}

static int install_handler(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGSYS, &sa, NULL) < 0 ? -errno : 0;
}

int seccomp_apply(enum seccomp_thread kind, enum seccomp_mode mode, const char *name)
{
	struct filter_builder b;
	int r;

	if (mode == SECCOMP_OFF)
		return 0;
	r = install_handler();
	if (r < 0)
		return r;
	r = filter_new(kind, mode, &b);
	if (r < 0)
		return r;
	/* Per thread: no TSYNC. The kernel requires no_new_privs (or CAP_SYS_ADMIN). */
	r = seccomp_attr_set(b.ctx, SCMP_FLTATR_CTL_NNP, 1);
	/* A binary tree over the system call numbers instead of a linear chain: the loop and vCPU
	 * threads make a few calls per guest request, each of which runs the filter. */
	if (r == 0)
		r = seccomp_attr_set(b.ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (r == 0) {
		thread_label = name;
		r = seccomp_load(b.ctx);
	}
	seccomp_release(b.ctx);
	return r;
}

void seccomp_selftest(enum seccomp_thread kind)
{
	const char *want = getenv("CUBICLE_SECCOMP_SELFTEST");
	if (!want || strcmp(want, seccomp_thread_name(kind)) != 0)
		return;
	/* Forbidden in every filter: a process has no business changing its session. */
	syscall(SYS_setsid);
}
