/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Terminal backends shared by the serial port and virtio-console: which fds a console uses for
 * --serial/--console off|null|tty|file=PATH|pty, and the terminal's raw mode and its restore.
 * A device adopts a struct term_backend and closes it at unrealize.
 */
#ifndef CUBICLE_DEVICES_BACKEND_TERM_H
#define CUBICLE_DEVICES_BACKEND_TERM_H

#include <stdbool.h>
#include <termios.h>

struct console_config;

#define TERM_MAX_OWNED_FDS 3

struct term_backend {
	int in_fd;		       /* -1: no input */
	int out_fd;		       /* -1: output discarded */
	int owned[TERM_MAX_OWNED_FDS]; /* closed by term_backend_close; -1 = unused */
	int tty_fd;		       /* >= 0: tty_saved is restored on it at close */
	struct termios tty_saved;
};

/* Empty: no fds. */
void term_backend_init(struct term_backend *be);

/* Restores the terminal (never waiting for it to drain) and closes the fds owned. */
void term_backend_close(struct term_backend *be);

/*
 * Fills @be (initialised) for @con's mode: null (no fds); tty (stdin in raw mode when we are in
 * the terminal's foreground, stdout through a non-blocking file description of our own unless
 * it is a regular file); file (created, truncated, or appended to when @append: a rebuilt
 * device after a reboot; non-blocking unless a regular file); pty (a new pty, its slave held
 * open; the name is logged). @option ("--serial") names the device in messages. Returns 0, or
 * -errno with one line for the user in @err (may be NULL); -EINVAL for CONSOLE_OFF or a file mode without a path. On
 * failure @be holds what was opened so far: close it.
 */
int term_backend_open(struct term_backend *be, const struct console_config *con, const char *option,
		      bool append, char *err, size_t errlen);

#endif
