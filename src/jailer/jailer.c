/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cubicle-jailer: starts one cubicle inside a jail (docs/jailer.md), the steps of Firecracker's
 * jailer: validate the id and paths; close inherited fds and clear the environment; a cgroup with
 * the given limits (v1 or v2); a fresh mount namespace whose root, after pivot_root, is a per-VM
 * directory holding only the cubicle binary, the files named with --file, /dev/kvm,
 * /dev/net/tun, /dev/urandom, /dev/null and /proc; optionally a network namespace to join and a
 * new PID namespace; rlimits; then the given uid/gid, and exec.
 *
 * The jailer stays as cubicle's parent: it forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT, and when
 * cubicle ends it removes the cgroup and the jail directory it created and exits with cubicle's
 * status (128 + signal if cubicle died of one). The mounts die with the mount namespace.
 *
 * --daemonize (Firecracker's): the supervising jailer is a child in a session of its own with
 * its standard streams on /dev/null; the command returns once cubicle is exec'd, and every
 * error up to that point still reaches the caller's terminal (through a pipe that the exec
 * closes), with exit status 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/util.h"
#include "version.h"

#define JAIL_ID_MAX	     64
#define JAIL_MAX_FILES	     32
#define JAIL_MAX_CGROUP_KEYS 16
#define JAIL_ERR_MAX	     512
#define JAIL_DEFAULT_BASE    "/srv/jailer"
#define JAIL_DEFAULT_PARENT  "cubicle"
#define JAIL_CGROUP_ROOT     "/sys/fs/cgroup"
#define JAIL_CLEANUP_TRIES   100 /* x 20 ms */

struct jail_file {
	const char *src;
	bool readonly;
};

struct jail_args {
	const char *id;
	const char *exec_file;
	bool daemonize;
	uid_t uid;
	gid_t gid;
	bool have_uid, have_gid;
	const char *base;
	const char *netns;
	const char *parent_cgroup;
	bool new_pid_ns;
	int cgroup_version; /* 0 = detect */
	const char *cgroup_keys[JAIL_MAX_CGROUP_KEYS];
	unsigned num_cgroup_keys;
	long long fsize, nofile; /* -1 = leave alone */
	struct jail_file files[JAIL_MAX_FILES];
	unsigned num_files;
	char *const *exec_argv; /* after "--" */
	int exec_argc;
};

/* What the jailer made, for the clean-up. */
struct jail {
	char dir[PATH_MAX];  /* <base>/cubicle/<id> */
	char root[PATH_MAX]; /* <dir>/root */
	char cgroups[8][PATH_MAX];
	unsigned num_cgroups;
	int report_fd; /* --daemonize: errors go here (to the caller), not to stderr; or -1 */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: cubicle-jailer --id ID --exec-file PATH --uid UID --gid GID [options] -- "
		"[cubicle arguments]\n"
		"  --id ID                 VM id: 1-%d of [A-Za-z0-9-]\n"
		"  --exec-file PATH        the cubicle binary (absolute path)\n"
		"  --uid UID, --gid GID    who cubicle runs as\n"
		"  --chroot-base-dir DIR   where jails live [default: %s]; the jail is "
		"DIR/cubicle/ID/root\n"
		"  --file PATH             a file the VM needs (kernel, disk, ...), bind-mounted "
		"writable at /<basename>\n"
		"  --ro-file PATH          the same, read-only\n"
		"  --netns PATH            network namespace to join (e.g. /var/run/netns/NAME)\n"
		"  --new-pid-ns            run cubicle in a new PID namespace\n"
		"  --cgroup FILE=VALUE     a cgroup limit (e.g. memory.max=512M for v2, "
		"memory.limit_in_bytes=... for v1)\n"
		"  --cgroup-version 1|2    [default: what /sys/fs/cgroup is]\n"
		"  --parent-cgroup NAME    [default: %s]\n"
		"  --resource-limit fsize=N|no-file=N   rlimits for cubicle\n"
		"  --daemonize             detach (new session, stdio on /dev/null) once cubicle "
		"is exec'd\n"
		"  --version, --help\n",
		JAIL_ID_MAX, JAIL_DEFAULT_BASE, JAIL_DEFAULT_PARENT);
}

static bool valid_id(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > JAIL_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
	}
	return true;
}

/* Names for cgroup keys: "memory.max", "pids.max" — no path separators, no "..". */
static bool valid_cgroup_name(const char *s, size_t n)
{
	if (n == 0 || n > 64 || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '/' || s[i] == '\0')
			return false;
	return memchr(s, '.', n) != NULL;
}

static int need_value(int argc, char *const argv[], int i, char *err)
{
	if (i + 1 >= argc)
		return error_set(err, JAIL_ERR_MAX, -EINVAL, "%s: missing value", argv[i]);
	return 0;
}

static int parse_id_number(const char *opt, const char *v, uint32_t *ret, char *err)
{
	uint64_t n;
	if (parse_u64(v, UINT32_MAX - 1, &n) < 0)
		return error_set(err, JAIL_ERR_MAX, -EINVAL, "%s: invalid value '%s'", opt, v);
	*ret = (uint32_t)n;
	return 0;
}

static int parse_rlimit(struct jail_args *a, const char *v, char *err)
{
	const char *eq = strchr(v, '=');
	uint64_t n;
	if (!eq || parse_u64(eq + 1, INT64_MAX, &n) < 0)
		return error_set(err, JAIL_ERR_MAX, -EINVAL,
				 "--resource-limit: expected fsize=N or no-file=N, got '%s'", v);
	if ((size_t)(eq - v) == 5 && strncmp(v, "fsize", 5) == 0)
		a->fsize = (long long)n;
	else if ((size_t)(eq - v) == 7 && strncmp(v, "no-file", 7) == 0)
		a->nofile = (long long)n;
	else
		return error_set(err, JAIL_ERR_MAX, -EINVAL,
				 "--resource-limit: unknown resource '%.*s' (fsize or no-file)",
				 (int)(eq - v), v);
	return 0;
}

static int add_file(struct jail_args *a, const char *opt, const char *path, bool ro, char *err)
{
	struct stat st;
	if (a->num_files == JAIL_MAX_FILES)
		return error_set(err, JAIL_ERR_MAX, -EINVAL, "%s: at most %d files", opt,
				 JAIL_MAX_FILES);
	if (path[0] != '/')
		return error_set(err, JAIL_ERR_MAX, -EINVAL, "%s: '%s' is not an absolute path",
				 opt, path);
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return error_set(err, JAIL_ERR_MAX, -EINVAL, "%s: '%s' is not a regular file", opt,
				 path);
	const char *base = strrchr(path, '/') + 1;
	for (unsigned i = 0; i < a->num_files; i++) {
		const char *other = strrchr(a->files[i].src, '/') + 1;
		if (strcmp(base, other) == 0)
			return error_set(err, JAIL_ERR_MAX, -EINVAL,
					 "%s: two files named '%s' would meet in the jail", opt,
					 base);
	}
	a->files[a->num_files++] = (struct jail_file){ path, ro };
	return 0;
}

static int parse_args(int argc, char *const argv[], struct jail_args *a, char *err)
{
	memset(a, 0, sizeof(*a));
	a->base = JAIL_DEFAULT_BASE;
	a->parent_cgroup = JAIL_DEFAULT_PARENT;
	a->fsize = a->nofile = -1;
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		int r = 0;
		if (strcmp(o, "--") == 0) {
			a->exec_argv = &argv[i + 1];
			a->exec_argc = argc - i - 1;
			break;
		}
		if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strcmp(o, "--version") == 0) {
			printf("cubicle-jailer v%s\n", CUBICLE_VERSION);
			exit(0);
		}
		if (strcmp(o, "--new-pid-ns") == 0) {
			a->new_pid_ns = true;
			continue;
		}
		if (strcmp(o, "--daemonize") == 0) {
			a->daemonize = true;
			continue;
		}
		r = need_value(argc, argv, i, err);
		if (r < 0)
			return r;
		const char *v = argv[++i];
		uint32_t n;
		if (strcmp(o, "--id") == 0) {
			a->id = v;
		} else if (strcmp(o, "--exec-file") == 0) {
			a->exec_file = v;
		} else if (strcmp(o, "--uid") == 0) {
			r = parse_id_number(o, v, &n, err);
			a->uid = n;
			a->have_uid = true;
		} else if (strcmp(o, "--gid") == 0) {
			r = parse_id_number(o, v, &n, err);
			a->gid = n;
			a->have_gid = true;
		} else if (strcmp(o, "--chroot-base-dir") == 0) {
			a->base = v;
		} else if (strcmp(o, "--netns") == 0) {
			a->netns = v;
		} else if (strcmp(o, "--parent-cgroup") == 0) {
			a->parent_cgroup = v;
		} else if (strcmp(o, "--cgroup-version") == 0) {
			if (strcmp(v, "1") && strcmp(v, "2"))
				return error_set(err, JAIL_ERR_MAX, -EINVAL,
						 "--cgroup-version: expected 1 or 2, got '%s'", v);
			a->cgroup_version = v[0] - '0';
		} else if (strcmp(o, "--cgroup") == 0) {
			const char *eq = strchr(v, '=');
			if (!eq || !valid_cgroup_name(v, (size_t)(eq - v)))
				return error_set(err, JAIL_ERR_MAX, -EINVAL,
						 "--cgroup: expected FILE=VALUE such as "
						 "memory.max=512M, got '%s'",
						 v);
			if (a->num_cgroup_keys == JAIL_MAX_CGROUP_KEYS)
				return error_set(err, JAIL_ERR_MAX, -EINVAL,
						 "--cgroup: at most %d limits",
						 JAIL_MAX_CGROUP_KEYS);
			a->cgroup_keys[a->num_cgroup_keys++] = v;
		} else if (strcmp(o, "--resource-limit") == 0) {
			r = parse_rlimit(a, v, err);
		} else if (strcmp(o, "--file") == 0 || strcmp(o, "--ro-file") == 0) {
			r = add_file(a, o, v, o[2] == 'r', err);
		} else {
			return error_set(err, JAIL_ERR_MAX, -EINVAL, "unknown option '%s'", o);
		}
		if (r < 0)
			return r;
	}
	if (!a->id)
		return error_set(err, JAIL_ERR_MAX, -EINVAL, "--id is required");
	if (!valid_id(a->id))
		return error_set(err, JAIL_ERR_MAX, -EINVAL,
				 "--id: '%s' is not 1-%d characters of [A-Za-z0-9-]", a->id,
				 JAIL_ID_MAX);
	if (!a->exec_file || a->exec_file[0] != '/')
		return error_set(err, JAIL_ERR_MAX, -EINVAL,
				 "--exec-file: an absolute path to cubicle is required");
	struct stat st;
	if (stat(a->exec_file, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111))
		return error_set(err, JAIL_ERR_MAX, -EINVAL,
				 "--exec-file: '%s' is not an executable file", a->exec_file);
	if (!a->have_uid || !a->have_gid)
		return error_set(err, JAIL_ERR_MAX, -EINVAL, "--uid and --gid are required");
	if (a->base[0] != '/' || strstr(a->base, "/../") || strlen(a->base) > PATH_MAX / 2)
		return error_set(err, JAIL_ERR_MAX, -EINVAL,
				 "--chroot-base-dir: '%s' must be an absolute path without '..'",
				 a->base);
	if (!valid_id(a->parent_cgroup))
		return error_set(err, JAIL_ERR_MAX, -EINVAL,
				 "--parent-cgroup: '%s' is not 1-%d characters of [A-Za-z0-9-]",
				 a->parent_cgroup, JAIL_ID_MAX);
	if (a->netns && access(a->netns, R_OK) < 0)
		return error_set(err, JAIL_ERR_MAX, -EINVAL, "--netns: cannot open '%s': %s",
				 a->netns, strerror(errno));
	return 0;
}

/* snprintf into a PATH_MAX buffer; a path that does not fit ends the jailer (the argument
 * checks bound every part, so it cannot happen for accepted input). */
__attribute__((format(printf, 2, 3))) static void pathf(char *buf, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_MAX) {
		fprintf(stderr, "cubicle-jailer: path too long\n");
		_exit(1);
	}
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	pathf(buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(buf, mode) < 0 && errno != EEXIST ? -errno : 0;
}

static int write_file(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, value, strlen(value));
	int r = n == (ssize_t)strlen(value) ? 0 : (n < 0 ? -errno : -EIO);
	close(fd);
	return r;
}

static int detect_cgroup_version(void)
{
	return access(JAIL_CGROUP_ROOT "/cgroup.controllers", F_OK) == 0 ? 2 : 1;
}

/* v2: <root>/<parent>/<id>, controllers enabled on the way down. */
static int cgroup_v2(const struct jail_args *a, struct jail *j, char *err)
{
	char parent[PATH_MAX];
	pathf(parent, JAIL_CGROUP_ROOT "/%s", a->parent_cgroup);
	int r = mkdir_p(parent, 0755);
	if (r < 0)
		return error_set(err, JAIL_ERR_MAX, r, "cgroup: cannot create '%s': %s", parent,
				 strerror(-r));
	/* Enabling may partly fail (a controller the host does not delegate): the limit write
	 * below then names the problem. */
	write_file(JAIL_CGROUP_ROOT "/cgroup.subtree_control", "+memory +cpu +pids");
	char ctl[PATH_MAX];
	pathf(ctl, "%s/cgroup.subtree_control", parent);
	write_file(ctl, "+memory +cpu +pids");
	pathf(j->cgroups[0], "%s/%s", parent, a->id);
	if (mkdir(j->cgroups[0], 0755) < 0)
		return error_set(err, JAIL_ERR_MAX, -errno, "cgroup: cannot create '%s': %s",
				 j->cgroups[0], strerror(errno));
	j->num_cgroups = 1;
	for (unsigned i = 0; i < a->num_cgroup_keys; i++) {
		const char *kv = a->cgroup_keys[i], *eq = strchr(kv, '=');
		char file[PATH_MAX];
		pathf(file, "%s/%.*s", j->cgroups[0], (int)(eq - kv), kv);
		r = write_file(file, eq + 1);
		if (r < 0)
			return error_set(err, JAIL_ERR_MAX, r, "--cgroup %s: cannot write '%s': %s",
					 kv, file, strerror(-r));
	}
	return 0;
}

/* v1: one directory per controller named by the key's prefix (memory.limit_in_bytes →
 * <root>/memory/<parent>/<id>); "cpu.*" and "cpuacct.*" share the cpu hierarchy. */
static int cgroup_v1(const struct jail_args *a, struct jail *j, char *err)
{
	for (unsigned i = 0; i < a->num_cgroup_keys; i++) {
		const char *kv = a->cgroup_keys[i], *eq = strchr(kv, '='), *dot = strchr(kv, '.');
		char dir[PATH_MAX], file[PATH_MAX];
		pathf(dir, JAIL_CGROUP_ROOT "/%.*s/%s/%s", (int)(dot - kv), kv, a->parent_cgroup,
		      a->id);
		bool known = false;
		for (unsigned c = 0; c < j->num_cgroups; c++)
			known = known || strcmp(j->cgroups[c], dir) == 0;
		if (!known) {
			if (j->num_cgroups == ARRAY_SIZE(j->cgroups))
				return error_set(err, JAIL_ERR_MAX, -EINVAL,
						 "--cgroup: too many controllers");
			int r = mkdir_p(dir, 0755);
			if (r < 0)
				return error_set(err, JAIL_ERR_MAX, r,
						 "cgroup: cannot create '%s': %s (is the '%.*s' "
						 "controller mounted?)",
						 dir, strerror(-r), (int)(dot - kv), kv);
			pathf(j->cgroups[j->num_cgroups++], "%s", dir);
		}
		pathf(file, "%s/%.*s", dir, (int)(eq - kv), kv);
		int r = write_file(file, eq + 1);
		if (r < 0)
			return error_set(err, JAIL_ERR_MAX, r, "--cgroup %s: cannot write '%s': %s",
					 kv, file, strerror(-r));
	}
	return 0;
}

static int cgroup_join(const struct jail *j, pid_t pid)
{
	char file[PATH_MAX], value[32];
	snprintf(value, sizeof(value), "%d", (int)pid);
	for (unsigned c = 0; c < j->num_cgroups; c++) {
		pathf(file, "%s/cgroup.procs", j->cgroups[c]);
		int r = write_file(file, value);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Bind-mounts @src onto @dst (created as an empty file), read-only if asked. */
static int bind_file(const char *src, const char *dst, bool ro)
{
	int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	close(fd);
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
		return -errno;
	if (ro && mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
			NULL) < 0)
		return -errno;
	return 0;
}

static int make_dev(const struct jail_args *a, const char *root, const char *name,
		    unsigned major_nr, unsigned minor_nr, mode_t mode)
{
	char path[PATH_MAX];
	pathf(path, "%s/dev/%s", root, name);
	if (mknod(path, S_IFCHR | mode, makedev(major_nr, minor_nr)) < 0)
		return -errno;
	if (chown(path, a->uid, a->gid) < 0)
		return -errno;
	return 0;
}

/* One error line: to the caller's terminal through the report pipe (--daemonize), or stderr. */
__attribute__((format(printf, 2, 3))) static void jail_error(const struct jail *j, const char *fmt,
							     ...)
{
	char line[JAIL_ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	dprintf(j->report_fd >= 0 ? j->report_fd : STDERR_FILENO, "cubicle-jailer: %s\n", line);
}

/* In the child: everything from the new mount namespace to exec. Reports failures with
 * jail_error() and returns the exit status. */
static int child(const struct jail_args *a, const struct jail *j, int netns_fd, pid_t parent_pid)
{
	char path[PATH_MAX];
	int r;

#define FAIL(what)                                              \
	do {                                                    \
		jail_error(j, "%s: %s", what, strerror(errno)); \
		return 1;                                       \
	} while (0)

	if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0)
		FAIL("cannot join the network namespace");
	if (netns_fd >= 0)
		close(netns_fd);
	if (unshare(CLONE_NEWNS) < 0)
		FAIL("cannot create a mount namespace");
	/* Nothing mounted here may leak back to the host. */
	if (mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		FAIL("cannot make / a slave mount");
	if (mount(j->root, j->root, NULL, MS_BIND | MS_REC, NULL) < 0)
		FAIL("cannot bind the jail root");

	const char *exec_name = strrchr(a->exec_file, '/') + 1;
	pathf(path, "%s/%s", j->root, exec_name);
	r = bind_file(a->exec_file, path, true);
	if (r < 0) {
		errno = -r;
		FAIL("cannot place the cubicle binary in the jail");
	}
	for (unsigned i = 0; i < a->num_files; i++) {
		pathf(path, "%s/%s", j->root, strrchr(a->files[i].src, '/') + 1);
		r = bind_file(a->files[i].src, path, a->files[i].readonly);
		if (r < 0) {
			errno = -r;
			jail_error(j, "cannot place '%s' in the jail: %s", a->files[i].src,
				   strerror(errno));
			return 1;
		}
	}
	pathf(path, "%s/dev/net", j->root);
	if (mkdir_p(path, 0755) < 0)
		FAIL("cannot create /dev in the jail");
	if (make_dev(a, j->root, "kvm", 10, 232, 0600) < 0 ||
	    make_dev(a, j->root, "net/tun", 10, 200, 0600) < 0 ||
	    make_dev(a, j->root, "urandom", 1, 9, 0444) < 0 ||
	    make_dev(a, j->root, "null", 1, 3, 0666) < 0)
		FAIL("cannot create device nodes in the jail (is the base directory on a nodev "
		     "file system?)");
	pathf(path, "%s/proc", j->root);
	if (mkdir(path, 0555) < 0)
		FAIL("cannot create /proc in the jail");
	/* cubicle reopens its standard output through /proc/self/fd. hidepid=2: the jailed uid
	 * sees no one else's processes (with a new PID namespace there are none anyway). */
	if (mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") < 0)
		FAIL("cannot mount /proc in the jail");

	pathf(path, "%s/.oldroot", j->root);
	if (mkdir(path, 0700) < 0)
		FAIL("cannot create the old root mount point");
	if (syscall(SYS_pivot_root, j->root, path) < 0)
		FAIL("pivot_root");
	if (chdir("/") < 0)
		FAIL("chdir /");
	if (umount2("/.oldroot", MNT_DETACH) < 0)
		FAIL("cannot detach the host's root");
	if (rmdir("/.oldroot") < 0)
		FAIL("cannot remove the old root mount point");

	if (a->fsize >= 0) {
		struct rlimit rl = { (rlim_t)a->fsize, (rlim_t)a->fsize };
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			FAIL("--resource-limit fsize");
	}
	if (a->nofile >= 0) {
		struct rlimit rl = { (rlim_t)a->nofile, (rlim_t)a->nofile };
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			FAIL("--resource-limit no-file");
	}
	if (setgroups(0, NULL) < 0 || setresgid(a->gid, a->gid, a->gid) < 0 ||
	    setresuid(a->uid, a->uid, a->uid) < 0)
		FAIL("cannot drop to the given uid/gid");
	/* If the jailer dies (even of SIGKILL), cubicle must not live on unsupervised: nobody
	 * would forward signals or clean up. Set after the uid change, which clears it; then
	 * check the jailer did not die before (in a new PID namespace getppid() is 0). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		FAIL("cannot tie cubicle to the jailer's life");
	if (getppid() != parent_pid && getppid() != 0)
		return 1;

	/* argv[0] is the binary's path inside the jail; the environment is empty. */
	char exec_path[PATH_MAX];
	pathf(exec_path, "/%s", exec_name);
	char **argv = calloc((size_t)a->exec_argc + 2, sizeof(*argv));
	if (!argv)
		FAIL("out of memory");
	argv[0] = exec_path;
	for (int i = 0; i < a->exec_argc; i++)
		argv[i + 1] = a->exec_argv[i];
	argv[a->exec_argc + 1] = NULL;
	char *envp[] = { NULL };
	execve(exec_path, argv, envp);
	FAIL("cannot exec cubicle");
#undef FAIL
}

static int remove_tree(const char *path)
{
	/* Only ever called on the jail directory the jailer created itself. */
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, STDERR_FILENO); /* the caller reports the final failure */
		char *argv[] = { "rm", "-rf", "--one-file-system", "--", (char *)path, NULL };
		char *envp[] = { "PATH=/usr/bin:/bin", NULL };
		execve("/bin/rm", argv, envp);
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static void cleanup(struct jail *j)
{
	for (unsigned c = 0; c < j->num_cgroups; c++)
		if (rmdir(j->cgroups[c]) < 0 && errno != ENOENT)
			fprintf(stderr, "cubicle-jailer: cannot remove cgroup '%s': %s\n",
				j->cgroups[c], strerror(errno));
	/* The child's mounts are released asynchronously after it exits (the kernel defers the
	 * final mntput): until then their mount points cannot be removed. Retry for a while. */
	for (int tries = 0; j->dir[0]; tries++) {
		if (remove_tree(j->dir) == 0)
			break;
		if (tries == JAIL_CLEANUP_TRIES) {
			fprintf(stderr, "cubicle-jailer: cannot remove '%s'\n", j->dir);
			break;
		}
		usleep(20000);
	}
}

static volatile sig_atomic_t child_pid;

static void forward_signal(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

/* Closes every fd but 0-2: nothing the caller had open reaches the jail. */
static void close_inherited_fds(void)
{
	if (syscall(SYS_close_range, 3, ~0U, 0) == 0)
		return;
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
}

/* Starts cubicle in the jail and waits for it: signals passed on, the jail cleaned up after.
 * Returns the jailer's exit status. */
static int supervise(const struct jail_args *a, struct jail *j, int netns_fd)
{
	/* Signals that end cubicle are passed on; the jailer itself waits for it. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	sigprocmask(SIG_BLOCK, &block, &old);
	pid_t parent = getpid();
	/* A raw clone, fork-like (no new stack), so that only cubicle goes into the new PID
	 * namespace: unshare(CLONE_NEWPID) here would put every later child of the jailer (the
	 * clean-up's rm) into a namespace whose init is gone, where fork fails. */
	pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD | (a->new_pid_ns ? CLONE_NEWPID : 0), NULL,
				   NULL, NULL, 0);
	if (pid < 0) {
		jail_error(j, "cannot start cubicle%s: %s",
			   a->new_pid_ns ? " in a new PID namespace" : "", strerror(errno));
		cleanup(j);
		return 1;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		/* Join the cgroups before anything else runs, so every allocation counts. */
		if (cgroup_join(j, getpid()) < 0) {
			jail_error(j, "cannot join the cgroup");
			_exit(1);
		}
		_exit(child(a, j, netns_fd, parent));
	}
	if (netns_fd >= 0)
		close(netns_fd);
	/* From here on only cubicle's exec (or its failure) closes the report pipe. */
	if (j->report_fd >= 0) {
		close(j->report_fd);
		j->report_fd = -1;
	}
	child_pid = pid;
	struct sigaction sa = { .sa_handler = forward_signal };
	sigemptyset(&sa.sa_mask);
	for (int s = 0; s < 4; s++)
		sigaction((int[]){ SIGTERM, SIGINT, SIGHUP, SIGQUIT }[s], &sa, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);

	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	cleanup(j);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* Stdio on /dev/null, for a supervisor that outlives the caller's terminal. */
static int stdio_to_null(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (int i = 0; i <= STDERR_FILENO; i++) {
		if (dup2(fd, i) < 0) {
			close(fd);
			return -errno;
		}
	}
	close(fd);
	return 0;
}

/*
 * --daemonize: the supervisor becomes a child in its own session; this process relays what
 * goes wrong until cubicle is exec'd (the report pipe is close-on-exec) and returns 0 once it
 * is. If something failed, it waits for the supervisor's clean-up and returns 1.
 */
static int daemonize(const struct jail_args *a, struct jail *j, int netns_fd)
{
	int report[2];
	if (pipe2(report, O_CLOEXEC) < 0) {
		jail_error(j, "--daemonize: %s", strerror(errno));
		cleanup(j);
		return 1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		jail_error(j, "--daemonize: cannot fork: %s", strerror(errno));
		cleanup(j);
		return 1;
	}
	if (pid == 0) {
		close(report[0]);
		j->report_fd = report[1];
		int r = setsid() < 0 ? -errno : chdir("/") < 0 ? -errno : stdio_to_null();
		if (r < 0) {
			jail_error(j, "--daemonize: cannot detach: %s", strerror(-r));
			cleanup(j);
			_exit(1);
		}
		_exit(supervise(a, j, netns_fd));
	}
	close(report[1]);
	if (netns_fd >= 0)
		close(netns_fd);
	char buf[JAIL_ERR_MAX];
	bool failed = false;
	for (;;) {
		ssize_t n = read(report[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		failed = true;
		(void)!write(STDERR_FILENO, buf, (size_t)n);
	}
	close(report[0]);
	if (!failed)
		return 0;
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return 1;
}

int main(int argc, char *argv[])
{
	struct jail_args a;
	struct jail j = { .report_fd = -1 };
	char err[JAIL_ERR_MAX] = "";
	int netns_fd = -1;

	close_inherited_fds();
	if (parse_args(argc, argv, &a, err) < 0) {
		fprintf(stderr, "cubicle-jailer: %s\n", err);
		return 1;
	}
	if (clearenv() != 0) {
		fprintf(stderr, "cubicle-jailer: cannot clear the environment\n");
		return 1;
	}
	pathf(j.dir, "%s/cubicle/%s", a.base, a.id);
	pathf(j.root, "%s/root", j.dir);
	char parent_dir[PATH_MAX];
	pathf(parent_dir, "%s/cubicle", a.base);
	int r = mkdir_p(parent_dir, 0755);
	if (r == 0 && mkdir(j.dir, 0750) < 0)
		r = -errno;
	if (r < 0) {
		fprintf(stderr, "cubicle-jailer: cannot create the jail '%s': %s%s\n", j.dir,
			strerror(-r), r == -EEXIST ? " (another VM with this id?)" : "");
		return 1;
	}
	if (mkdir(j.root, 0755) < 0 || chown(j.root, a.uid, a.gid) < 0) {
		fprintf(stderr, "cubicle-jailer: cannot create '%s': %s\n", j.root,
			strerror(errno));
		cleanup(&j);
		return 1;
	}
	int version = a.cgroup_version ? a.cgroup_version : detect_cgroup_version();
	if (a.num_cgroup_keys || version == 2) {
		r = version == 2 ? cgroup_v2(&a, &j, err) : cgroup_v1(&a, &j, err);
		if (r < 0) {
			fprintf(stderr, "cubicle-jailer: %s\n", err);
			cleanup(&j);
			return 1;
		}
	}
	if (a.netns) {
		netns_fd = open(a.netns, O_RDONLY | O_CLOEXEC);
		if (netns_fd < 0) {
			fprintf(stderr, "cubicle-jailer: --netns: cannot open '%s': %s\n", a.netns,
				strerror(errno));
			cleanup(&j);
			return 1;
		}
	}

	return a.daemonize ? daemonize(&a, &j, netns_fd) : supervise(&a, &j, netns_fd);
}
