/* SPDX-License-Identifier: Apache-2.0 */
/* Terminal backends for the serial port and virtio-console (term.h). */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "config/config.h"
#include "devices/backend/term.h"
#include "util/log.h"
#include "util/util.h"

void term_backend_init(struct term_backend *be)
{
	be->in_fd = -1;
	be->out_fd = -1;
	for (unsigned i = 0; i < TERM_MAX_OWNED_FDS; i++)
		be->owned[i] = -1;
	be->tty_fd = -1;
}

static void term_backend_own(struct term_backend *be, int fd)
{
	for (unsigned i = 0; i < TERM_MAX_OWNED_FDS; i++) {
		if (be->owned[i] < 0) {
			be->owned[i] = fd;
			return;
		}
	}
	assert(!"term: more fds than TERM_MAX_OWNED_FDS");
	close(fd);
}

void term_backend_close(struct term_backend *be)
{
	if (be->tty_fd >= 0) {
		/* TCSANOW: never wait here for a stuck terminal to drain. */
		(void)tcsetattr(be->tty_fd, TCSANOW, &be->tty_saved);
		be->tty_fd = -1;
	}
	for (unsigned i = 0; i < TERM_MAX_OWNED_FDS; i++) {
		if (be->owned[i] >= 0)
			close(be->owned[i]);
		be->owned[i] = -1;
	}
	be->in_fd = -1;
	be->out_fd = -1;
}

/*
 * Raw input (no line editing, no echo, no signals: Ctrl-C goes to the guest, as in Cloud
 * Hypervisor), but output post-processing is kept: the guest's tty already sends "\r\n", and
 * our own log lines on the same terminal would otherwise lose their carriage returns.
 */
static int term_tty_raw(int fd, struct termios *ret_saved)
{
	struct termios t;

	if (tcgetattr(fd, ret_saved) < 0)
		return -errno;
	t = *ret_saved;
	cfmakeraw(&t);
	t.c_oflag = ret_saved->c_oflag;
	if (tcsetattr(fd, TCSANOW, &t) < 0)
		return -errno;
	return 0;
}

/* Whether epoll can watch @fd: regular files and some devices (/dev/null) cannot, and their
 * writes never wait, so they are written blocking instead of watched. */
static bool term_pollable(int fd)
{
	struct epoll_event ev = { .events = EPOLLOUT };
	int ep = epoll_create1(EPOLL_CLOEXEC);
	bool ok;

	if (ep < 0)
		return true; /* cannot tell: the caller's epoll will say */
	ok = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0 || errno != EPERM;
	close(ep);
	return ok;
}

static int term_backend_tty(struct term_backend *be)
{
	struct stat st;
	int fd;

	/* Input only from a terminal we are in the foreground of: a background job touching the
	 * terminal's modes would be stopped by SIGTTOU. */
	if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp() &&
	    term_tty_raw(STDIN_FILENO, &be->tty_saved) == 0) {
		be->tty_fd = STDIN_FILENO;
		be->in_fd = STDIN_FILENO;
	}

	if (fstat(STDOUT_FILENO, &st) < 0)
		return 0; /* no stdout: output discarded */
	if (S_ISREG(st.st_mode) || !term_pollable(STDOUT_FILENO)) {
		be->out_fd = STDOUT_FILENO; /* never blocks for long, keeps its O_APPEND/offset */
		return 0;
	}
	/* A terminal or pipe: a file description of our own, so that O_NONBLOCK does not leak to
	 * the shell that shares stdout. */
	fd = open("/proc/self/fd/1", O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0) {
		term_backend_own(be, fd);
		be->out_fd = fd;
	} else {
		be->out_fd = STDOUT_FILENO; /* e.g. a socket: blocking writes */
	}
	return 0;
}

static int term_backend_file(struct term_backend *be, const char *path, const char *option,
			     bool append, char *err, size_t errlen)
{
	struct stat st;
	int fd, flags;

	/* A reboot rebuilds the device: append, so the earlier boots' output stays. */
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0600);
	if (fd < 0) {
		return error_set(err, errlen, -errno, "%s: cannot open '%s': %s", option, path,
				 strerror(errno));
	}
	term_backend_own(be, fd);
	be->out_fd = fd;
	/* A FIFO or device could block the vCPU or the loop: it is ours, make it non-blocking. */
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode) && term_pollable(fd)) {
		flags = fcntl(fd, F_GETFL);
		if (flags >= 0)
			(void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	}
	return 0;
}

static int term_backend_pty(struct term_backend *be, const char *option)
{
	char name[64];
	struct termios t;
	int master, slave, flags, r;

	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return -errno;
	term_backend_own(be, master);
	if (grantpt(master) < 0 || unlockpt(master) < 0)
		return -errno;
	r = ptsname_r(master, name, sizeof(name));
	if (r)
		return -r;
	/*
	 * Hold the slave open: with no slave open a master reports EPOLLHUP without end, and
	 * output written before a user attaches waits in the pty instead of failing.
	 */
	slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		return -errno;
	term_backend_own(be, slave);
	if (tcgetattr(slave, &t) < 0)
		return -errno;
	cfmakeraw(&t);
	if (tcsetattr(slave, TCSANOW, &t) < 0)
		return -errno;
	flags = fcntl(master, F_GETFL);
	if (flags < 0 || fcntl(master, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	be->in_fd = master;
	be->out_fd = master;
	log_info("%s: pty %s", option[0] == '-' && option[1] == '-' ? option + 2 : option, name);
	return 0;
}

int term_backend_open(struct term_backend *be, const struct console_config *con, const char *option,
		      bool append, char *err, size_t errlen)
{
	int r;

	switch (con->mode) {
	case CONSOLE_NULL:
		return 0;
	case CONSOLE_TTY:
		return term_backend_tty(be);
	case CONSOLE_FILE:
		if (!con->file)
			return -EINVAL;
		return term_backend_file(be, con->file, option, append, err, errlen);
	case CONSOLE_PTY:
		r = term_backend_pty(be, option);
		if (r < 0)
			error_set(err, errlen, r, "%s: cannot create a pty: %s", option,
				  strerror(-r));
		return r;
	case CONSOLE_OFF:
	default:
		return -EINVAL;
	}
}
