/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-thread seccomp filters (DESIGN §8, docs/seccomp.md): one allow-list per kind of thread,
 * built with libseccomp and installed by each thread itself right before it enters its loop
 * ("acquire everything, then shrink"). A filter applies to the thread that installs it and to
 * the threads it creates afterwards, which add their own on top (the kernel runs every filter
 * a thread has; the strictest answer wins). That is why the VMM thread's list also holds what
 * a vCPU needs: the VMM thread creates vCPU threads again after a guest reboot.
 *
 * A violation in mode SECCOMP_ON is trapped (SIGSYS): the handler writes one line naming the
 * thread and the system call to stderr and the log file, then the process dies of SIGSYS, as
 * with SECCOMP_RET_KILL_PROCESS. We trap rather than kill outright because a kill leaves no
 * trace but an audit record, and a VMM that dies must say why. SECCOMP_LOG allows the call
 * and has the kernel log it (audit), for finding what a filter misses.
 */
#ifndef CUBICLE_SECURITY_SECCOMP_H
#define CUBICLE_SECURITY_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h" /* enum seccomp_mode */

enum seccomp_thread {
	SECCOMP_THREAD_VMM,    /* the VMM loop (main thread): the devices' work */
	SECCOMP_THREAD_VCPU,   /* KVM_RUN and the device handlers that run on exits */
	SECCOMP_THREAD_API,    /* the HTTP server: sockets, parsing, posting to the loop */
	SECCOMP_THREAD_WORKER, /* device I/O workers: positioned reads/writes, syncs */
	SECCOMP_THREAD_CTL,    /* the control thread: VM (re)builds, snapshots, API commands */
	SECCOMP_THREAD_KINDS,
};

/* "vmm", "vcpu", "api", "worker", "ctl". */
const char *seccomp_thread_name(enum seccomp_thread kind);

/*
 * Installs @kind's filter on the calling thread (nothing in SECCOMP_OFF). @name is what a
 * violation report calls the thread ("vcpu0"); it must outlive the thread. The first call in
 * a process also installs the SIGSYS handler. Returns 0, or -errno (the filter could not be
 * built or loaded: the caller must not go on unconfined when the user asked for confinement).
 */
int seccomp_apply(enum seccomp_thread kind, enum seccomp_mode mode, const char *name);

/* Number of system calls @kind's filter allows (docs/seccomp.md, tests). -errno on failure. */
int seccomp_filter_count(enum seccomp_thread kind);

/*
 * Test hook: when the environment variable CUBICLE_SECCOMP_SELFTEST names @kind, makes a system
 * call that @kind's filter forbids (a thread calls this right after seccomp_apply()). Lets the
 * end-to-end tests prove that each thread really is confined. Does nothing otherwise.
 */
void seccomp_selftest(enum seccomp_thread kind);

#endif
