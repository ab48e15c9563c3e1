/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Landlock (docs/landlock.md): with --landlock (or vm.create's landlock_enable) the VMM thread
 * confines its own file access to the paths its VM config names, as Cloud Hypervisor does from
 * v41, once the config is known and before the VM is built. A Landlock domain covers the thread
 * that asks for it and the threads it creates afterwards: every vCPU, I/O worker and set-up
 * thread of the VM is created by the VMM thread after that point, and the API thread (which
 * never opens a file) confines itself to no file access at all. A domain cannot be lifted.
 *
 * Raw system calls over <linux/landlock.h>, best effort on the kernel's ABI: the rights of
 * ABI 1 to 3 that the kernel knows are handled (file and directory access, truncate); a kernel
 * without Landlock is an error, for the user asked for the fence.
 */
#ifndef CUBICLE_SECURITY_LANDLOCK_H
#define CUBICLE_SECURITY_LANDLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* The newest Landlock ABI cubicle uses: 3 (LANDLOCK_ACCESS_FS_TRUNCATE), as Cloud Hypervisor. */
#define LANDLOCK_ABI_MAX 3

/* The kernel's Landlock ABI version (≥ 1), or -EOPNOTSUPP (built in but not enabled at boot)
 * or -ENOSYS (not built in). */
int landlock_abi_version(void);

/* The access rights a ruleset handles on a kernel of ABI @abi (1, 2, 3 or newer). */
uint64_t landlock_handled(int abi);

/*
 * The rights one rule grants: @access is "r" (execute, read files, list directories), "w"
 * (write and truncate files, create, remove and rename entries) or "rw", as Cloud Hypervisor's
 * --landlock-rules; a rule on a file (!@dir) keeps only the rights that apply to files; all
 * within landlock_handled(@abi). 0 for anything else.
 */
uint64_t landlock_rule_access(const char *access, bool dir, int abi);

/*
 * Confines the calling thread (and the threads it creates later) to the files @cfg names
 * (docs/landlock.md lists them), @cfg's landlock_rules and @restore_dir (the snapshot
 * directory a restore reads; NULL for a boot). A serial or console file that
 * does not exist yet is created (empty, mode 0600) so that it can be named. Returns 0, or
 * -errno with one line in @err: a path that cannot be opened names its option, a kernel
 * without Landlock says so. On failure the thread is not confined.
 */
int landlock_confine_vm(const struct vm_config *cfg, const char *restore_dir, char *err,
			size_t errlen);

/*
 * A thread that opens no file (the loop and API threads) follows the VMM under Landlock with
 * no file access at all: landlock_follower_init() makes the empty ruleset (call it before the
 * thread's seccomp filter, which allows only landlock_restrict_self); landlock_follow() confines
 * the calling thread with it once @now (the VMM is confined), the first time only, and logs a
 * warning naming @who if it cannot. landlock_follower_free() closes the ruleset.
 */
struct landlock_follower {
	int fd; /* the empty ruleset, or -errno (no Landlock) */
	bool done;
};
void landlock_follower_init(struct landlock_follower *f);
void landlock_follow(struct landlock_follower *f, bool now, const char *who);
void landlock_follower_free(struct landlock_follower *f);

/* Confines the calling thread with @ruleset_fd. Returns 0 or -errno. */
int landlock_restrict(int ruleset_fd);

#endif
