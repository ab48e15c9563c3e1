/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The filters, loaded for real in forked children: what a thread kind needs works, what it must
 * not do ends the process with SIGSYS. The hypervisor backend here is the mock (no ioctls).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "security/seccomp.h"

/* Runs @body in a child confined as @kind; returns its wait status. */
static int confined(enum seccomp_thread kind, enum seccomp_mode mode, void (*body)(void))
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Keep the violation line out of the test output. */
		int null = open("/dev/null", O_WRONLY);
		if (!getenv("TEST_SECCOMP_VERBOSE"))
			dup2(null, STDERR_FILENO);
		if (seccomp_apply(kind, mode, "test") < 0)
			_exit(90);
		body();
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void exits_with(int status, int code)
{
	if (!WIFEXITED(status))
		print_error("child killed by signal %d\n", WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), code);
}

static void killed_by_sigsys(int status)
{
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

static void do_setsid(void)
{
	syscall(SYS_setsid);
}

static void do_inet_socket(void)
{
	socket(AF_INET, SOCK_STREAM, 0);
}

static void do_worker_io(void)
{
	char buf[16];
	int fds[2];
	/* The fds a worker gets were opened before its filter: make one with a pipe first. */
	if (pread(-1, buf, sizeof(buf), 0) >= 0 || errno != EBADF)
		_exit(1);
	if (fdatasync(-1) == 0 || errno != EBADF)
		_exit(2);
	void *p = malloc(1 << 20); /* malloc: mmap */
	if (!p)
		_exit(3);
	free(p);
	(void)fds;
}

/* A connected Unix socket pair made before the child's filter, as the API and loop threads
 * get theirs (the listening socket, vsock's) from the set-up. */
static int pre_sv[2] = { -1, -1 };

static void do_api_io(void)
{
	char c = 'x';
	struct iovec iov = { &c, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (send(pre_sv[0], &c, 1, 0) != 1 || recv(pre_sv[1], &c, 1, 0) != 1)
		_exit(2);
	if (sendmsg(pre_sv[1], &mh, 0) != 1 || recvmsg(pre_sv[0], &mh, 0) != 1)
		_exit(3);
	close(pre_sv[0]);
}

/* The loop thread: vsock's guest-to-host connections (a Unix socket and connect), data. */
static void do_loop_io(void)
{
	char c = 'x';
	if (send(pre_sv[0], &c, 1, 0) != 1 || recv(pre_sv[1], &c, 1, 0) != 1)
		_exit(2);
	int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (u < 0)
		_exit(3);
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/nonexistent/cubicle.sock" };
	if (connect(u, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno != ENOENT)
		_exit(4);
	close(u);
}

/* Opening a file: only the control thread (VM builds) may. */
static void do_open(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		_exit(1);
	close(fd);
}

static void do_unix_socket(void)
{
	int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (u >= 0)
		close(u);
}

static void do_vcpu_io(void)
{
	uint64_t v = 1;
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0)
		_exit(1);
	if (write(fd, &v, sizeof(v)) != sizeof(v) || read(fd, &v, sizeof(v)) != sizeof(v))
		_exit(2);
	close(fd);
}

static void do_exec_mapping(void)
{
	/* Nothing in cubicle generates code: PROT_EXEC is refused everywhere. */
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static void test_allowed_calls_work(void **state)
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pre_sv), 0);
	exits_with(confined(SECCOMP_THREAD_WORKER, SECCOMP_ON, do_worker_io), 0);
	exits_with(confined(SECCOMP_THREAD_API, SECCOMP_ON, do_api_io), 0);
	exits_with(confined(SECCOMP_THREAD_VMM, SECCOMP_ON, do_loop_io), 0);
	exits_with(confined(SECCOMP_THREAD_VCPU, SECCOMP_ON, do_vcpu_io), 0);
	exits_with(confined(SECCOMP_THREAD_CTL, SECCOMP_ON, do_vcpu_io), 0);
	exits_with(confined(SECCOMP_THREAD_CTL, SECCOMP_ON, do_loop_io), 0);
	exits_with(confined(SECCOMP_THREAD_CTL, SECCOMP_ON, do_open), 0);
	close(pre_sv[0]);
	close(pre_sv[1]);
}

static void test_forbidden_calls_kill(void **state)
{
	for (int k = 0; k < SECCOMP_THREAD_KINDS; k++) {
		killed_by_sigsys(confined(k, SECCOMP_ON, do_setsid));
		killed_by_sigsys(confined(k, SECCOMP_ON, do_exec_mapping));
		if (k != SECCOMP_THREAD_CTL && k != SECCOMP_THREAD_API)
			killed_by_sigsys(confined(k, SECCOMP_ON, do_open));
	}
	/* The API thread's open() fails with EACCES instead (glibc may try one on its behalf). */
	exits_with(confined(SECCOMP_THREAD_API, SECCOMP_ON, do_open), 1);
	killed_by_sigsys(confined(SECCOMP_THREAD_API, SECCOMP_ON, do_inet_socket));
	killed_by_sigsys(confined(SECCOMP_THREAD_VMM, SECCOMP_ON, do_inet_socket));
	killed_by_sigsys(confined(SECCOMP_THREAD_API, SECCOMP_ON, do_unix_socket));
	killed_by_sigsys(confined(SECCOMP_THREAD_VMM, SECCOMP_ON, do_vcpu_io)); /* eventfd2 */
	killed_by_sigsys(confined(SECCOMP_THREAD_WORKER, SECCOMP_ON, do_loop_io));
	killed_by_sigsys(confined(SECCOMP_THREAD_VCPU, SECCOMP_ON, do_worker_io)); /* pread */
}

static void test_off_and_log_let_calls_through(void **state)
{
	exits_with(confined(SECCOMP_THREAD_WORKER, SECCOMP_OFF, do_setsid), 0);
	exits_with(confined(SECCOMP_THREAD_WORKER, SECCOMP_LOG, do_setsid), 0);
}

/* Firecracker's per-thread filters (the reference): cubicle's must be at least as tight.
 * The control thread, which builds VMs and runs API commands, has no Firecracker counterpart
 * (Firecracker does both on its VMM thread). Counts are of the production build (a sanitizer
 * build adds its runtime's calls to every filter). */
static void test_counts(void **state)
{
	int vmm = seccomp_filter_count(SECCOMP_THREAD_VMM);
	int vcpu = seccomp_filter_count(SECCOMP_THREAD_VCPU);
	int api = seccomp_filter_count(SECCOMP_THREAD_API);
	int worker = seccomp_filter_count(SECCOMP_THREAD_WORKER);
	int ctl = seccomp_filter_count(SECCOMP_THREAD_CTL);
	print_message("filters: vmm %d, vcpu %d, api %d, worker %d, ctl %d\n", vmm, vcpu, api,
		      worker, ctl);
	assert_true(worker > 10 && vcpu > 10 && api > 10 && vmm > 10);
#ifndef __SANITIZE_ADDRESS__
	assert_true(vmm <= 50);
	assert_true(vcpu <= 27);
	assert_true(api <= 31);
#endif
	assert_true(worker < ctl && vcpu < ctl && api < ctl && vmm < ctl);
	assert_true(ctl < 120);
	assert_int_equal(seccomp_filter_count(SECCOMP_THREAD_KINDS), -EINVAL);
	assert_string_equal(seccomp_thread_name(SECCOMP_THREAD_VCPU), "vcpu");
	assert_string_equal(seccomp_thread_name(SECCOMP_THREAD_CTL), "ctl");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed_calls_work),
		cmocka_unit_test(test_forbidden_calls_kill),
		cmocka_unit_test(test_off_and_log_let_calls_through),
		cmocka_unit_test(test_counts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
