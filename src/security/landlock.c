/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Landlock for the VMM (security/landlock.h, docs/landlock.md).
 */
#include "security/landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/log.h"
#include "util/util.h"

/* Newer than some <linux/landlock.h>. */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

#define LL_READ \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define LL_WRITE                                                                                  \
	(LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |                          \
	 LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |                          \
	 LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |                              \
	 LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |                            \
	 LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM | LANDLOCK_ACCESS_FS_REFER | \
	 LANDLOCK_ACCESS_FS_TRUNCATE)
/* The rights that mean something on a file (the rest are about a directory's entries). */
#define LL_FILE                                                       \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE)

int landlock_abi_version(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	return abi < 0 ? -errno : (int)abi;
}

uint64_t landlock_handled(int abi)
{
	uint64_t all = LL_READ | LL_WRITE;

	if (abi < 2)
		all &= ~LANDLOCK_ACCESS_FS_REFER;
	if (abi < 3)
		all &= ~LANDLOCK_ACCESS_FS_TRUNCATE;
	return all;
}

uint64_t landlock_rule_access(const char *access, bool dir, int abi)
{
	uint64_t a = 0;

	if (!access || !access[0] || strlen(access) > 2)
		return 0;
	for (const char *c = access; *c; c++) {
		if (*c == 'r')
			a |= LL_READ;
		else if (*c == 'w')
			a |= LL_WRITE;
		else
			return 0;
	}
	if (!dir)
		a &= LL_FILE;
	return a & landlock_handled(abi);
}

/* A ruleset being built: its fd, the kernel's ABI, where errors go. */
struct ll {
	int fd;
	int abi;
	char *err;
	size_t errlen;
};

/* Allows @access (LL_* bits) beneath @path; @option names it in an error. */
static int ll_allow(struct ll *ll, const char *option, const char *path, uint64_t access)
{
	struct landlock_path_beneath_attr pb = { 0 };
	struct stat st;

	_cleanup_close_ int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return error_set(ll->err, ll->errlen, -errno, "landlock: %s: cannot open '%s': %s",
				 option, path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		access &= LL_FILE;
	pb.allowed_access = access & landlock_handled(ll->abi);
	pb.parent_fd = fd;
	if (!pb.allowed_access)
		return 0;
	if (syscall(SYS_landlock_add_rule, ll->fd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
		return error_set(ll->err, ll->errlen, -errno,
				 "landlock: %s: cannot add a rule for '%s': %s", option, path,
				 strerror(errno));
	log_debug("landlock: %s '%s' (0x%llx)", option, path,
		  (unsigned long long)pb.allowed_access);
	return 0;
}

/* @path's directory ("." for a bare name). */
static int ll_allow_dir_of(struct ll *ll, const char *option, const char *path, uint64_t access)
{
	_cleanup_free_ char *dir = strdup(path);
	if (!dir)
		return error_set(ll->err, ll->errlen, -ENOMEM, "out of memory");
	char *slash = strrchr(dir, '/');
	if (!slash)
		return ll_allow(ll, option, ".", access);
	slash[slash == dir] = '\0'; /* "/x" → "/" */
	return ll_allow(ll, option, dir, access);
}

/* A serial or console device's host side: the file (created now if missing: a rule needs an
 * existing file, and the device would create it anyway), a pty's devices, or the terminal on
 * stdout (reopened by the device for a non-blocking description of its own). */
static int ll_allow_console(struct ll *ll, const struct console_config *con, const char *option)
{
	struct stat st;

	switch (con->mode) {
	case CONSOLE_FILE: {
		int fd = open(con->file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
		if (fd >= 0)
			close(fd);
		return ll_allow(ll, option, con->file, LL_READ | LL_WRITE);
	}
	case CONSOLE_PTY: {
		int r = ll_allow(ll, option, "/dev/ptmx", LL_READ | LL_WRITE);
		return r < 0 ? r : ll_allow(ll, option, "/dev/pts", LL_READ | LL_WRITE);
	}
	case CONSOLE_TTY:
		if (fstat(STDOUT_FILENO, &st) == 0 && S_ISCHR(st.st_mode))
			return ll_allow(ll, option, "/proc/self/fd/1",
					LANDLOCK_ACCESS_FS_WRITE_FILE);
		return 0;
	case CONSOLE_OFF:
	case CONSOLE_NULL:
		break;
	}
	return 0;
}

/* The VM's own files (config order), the snapshot being restored, then the user's rules. */
static int ll_allow_vm(struct ll *ll, const struct vm_config *cfg, const char *restore_dir)
{
	const uint64_t rw = LL_READ | LL_WRITE;
	int r = ll_allow(ll, "/dev/kvm", "/dev/kvm", rw);

	if (r == 0 && cfg->payload.kernel)
		r = ll_allow(ll, "--kernel", cfg->payload.kernel, LL_READ);
	if (r == 0 && cfg->payload.initramfs)
		r = ll_allow(ll, "--initramfs", cfg->payload.initramfs, LL_READ);
	for (unsigned i = 0; r == 0 && i < cfg->num_disks; i++)
		r = ll_allow(ll, "--disk", cfg->disks[i].path,
			     cfg->disks[i].readonly ? LL_READ : rw);
	for (unsigned i = 0; r == 0 && i < cfg->num_pmems; i++)
		r = ll_allow(ll, "--pmem", cfg->pmems[i].file,
			     cfg->pmems[i].discard_writes ? LL_READ : rw);
	if (r == 0)
		r = ll_allow(ll, "--rng", config_rng_src(cfg), LL_READ);
	if (r == 0)
		r = ll_allow_console(ll, &cfg->serial, "--serial");
	if (r == 0)
		r = ll_allow_console(ll, &cfg->console, "--console");
	if (r == 0 && cfg->num_nets)
		r = ll_allow(ll, "--net", "/dev/net/tun", rw);
	/* The listener is (re)created at PATH (a stale socket unlinked first); connecting to
	 * PATH_port is not a Landlock access. */
	if (r == 0 && cfg->vsock)
		r = ll_allow_dir_of(ll, "--vsock", cfg->vsock->socket,
				    LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_REMOVE_FILE);
	if (r == 0 && restore_dir)
		r = ll_allow(ll, "--restore", restore_dir, LL_READ);
	for (unsigned i = 0; r == 0 && i < cfg->num_landlock_rules; i++) {
		const struct landlock_rule_config *rule = &cfg->landlock_rules[i];
		r = ll_allow(ll, "--landlock-rules", rule->path,
			     landlock_rule_access(rule->access, true, LANDLOCK_ABI_MAX));
	}
	return r;
}

static int ll_create(int abi)
{
	struct landlock_ruleset_attr attr = { .handled_access_fs = landlock_handled(abi) };
	long fd = syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	return fd < 0 ? -errno : (int)fd;
}

int landlock_restrict(int ruleset_fd)
{
	if (syscall(SYS_landlock_restrict_self, ruleset_fd, 0) == 0)
		return 0;
	/* Without CAP_SYS_ADMIN the kernel wants no_new_privs; a seccomp filter has set it
	 * already, so this is only for --seccomp false. */
	if (errno != EPERM || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	return syscall(SYS_landlock_restrict_self, ruleset_fd, 0) == 0 ? 0 : -errno;
}

void landlock_follower_init(struct landlock_follower *f)
{
	int abi = landlock_abi_version();
	f->fd = abi < 0 ? abi : ll_create(MIN(abi, LANDLOCK_ABI_MAX));
	f->done = false;
}

void landlock_follow(struct landlock_follower *f, bool now, const char *who)
{
	if (f->done || !now)
		return;
	int r = f->fd < 0 ? f->fd : landlock_restrict(f->fd);
	if (r < 0)
		log_warn("landlock: cannot confine the %s thread: %s", who, strerror(-r));
	f->done = true;
}

void landlock_follower_free(struct landlock_follower *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

int landlock_confine_vm(const struct vm_config *cfg, const char *restore_dir, char *err,
			size_t errlen)
{
	uint64_t t0 = time_now_ns();
	int abi = landlock_abi_version();

	if (abi == -ENOSYS || abi == -EOPNOTSUPP)
		return error_set(err, errlen, -EOPNOTSUPP,
				 "landlock: this kernel has no Landlock (%s; it needs "
				 "CONFIG_SECURITY_LANDLOCK and \"landlock\" in its lsm= list)",
				 abi == -ENOSYS ? "not built in" : "not enabled at boot");
	if (abi < 0)
		return error_set(err, errlen, abi, "landlock: %s", strerror(-abi));
	if (abi < LANDLOCK_ABI_MAX)
		log_info("landlock: the kernel has ABI %d: %s", abi,
			 abi < 2 ? "files cannot be moved between directories, truncate is not "
				   "restricted"
				 : "truncate is not restricted");

	struct ll ll = { .abi = MIN(abi, LANDLOCK_ABI_MAX), .err = err, .errlen = errlen };
	ll.fd = ll_create(ll.abi);
	if (ll.fd < 0)
		return error_set(err, errlen, ll.fd, "landlock: cannot create a ruleset: %s",
				 strerror(-ll.fd));
	int r = ll_allow_vm(&ll, cfg, restore_dir);
	if (r == 0) {
		r = landlock_restrict(ll.fd);
		if (r < 0)
			error_set(err, errlen, r, "landlock: cannot restrict the VMM: %s",
				  strerror(-r));
	}
	close(ll.fd);
	if (r == 0)
		log_info("landlock: the VMM's file access is confined (ABI %d, %.3f ms)", ll.abi,
			 (double)(time_now_ns() - t0) / 1e6);
	return r;
}
