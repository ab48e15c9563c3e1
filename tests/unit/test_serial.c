/* SPDX-License-Identifier: Apache-2.0 */
/* The 16550A UART (src/devices/legacy/serial.c), driven through a real port bus. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "bus/bus.h"
#include "config/config.h"
#include "devices/device.h"
#include "devices/legacy/legacy.h"

#define COM1 SERIAL_PORT_BASE
#define THR  (COM1 + 0)
#define RBR  (COM1 + 0)
#define DLL  (COM1 + 0)
#define IER  (COM1 + 1)
#define DLM  (COM1 + 1)
#define IIR  (COM1 + 2)
#define FCR  (COM1 + 2)
#define LCR  (COM1 + 3)
#define MCR  (COM1 + 4)
#define LSR  (COM1 + 5)
#define MSR  (COM1 + 6)
#define SCR  (COM1 + 7)

#define LSR_DR	 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MAX_FAKE_FDS 4

struct fake_fd {
	int fd;
	uint32_t events;
	dev_fd_cb cb;
	void *opaque;
	bool active;
};

struct harness {
	struct bus pio;
	struct vm_config cfg;
	struct irq_sink irq;
	struct dev_loop loop;
	struct dev_ctx ctx;
	bool level;
	uint32_t last_gsi;
	unsigned line_calls;
	struct fake_fd fds[MAX_FAKE_FDS];
	char tmp_path[64];
};

static int fake_set_line(void *opaque, uint32_t gsi, bool level)
{
	struct harness *h = opaque;

	h->last_gsi = gsi;
	h->level = level;
	h->line_calls++;
	return 0;
}

static struct fake_fd *fake_find(struct harness *h, int fd)
{
	for (unsigned i = 0; i < MAX_FAKE_FDS; i++) {
		if (h->fds[i].active && h->fds[i].fd == fd)
			return &h->fds[i];
	}
	return NULL;
}

static int fake_add_fd(void *loop, int fd, uint32_t events, dev_fd_cb cb, void *opaque)
{
	struct harness *h = loop;

	if (fake_find(h, fd))
		return -EEXIST;
	for (unsigned i = 0; i < MAX_FAKE_FDS; i++) {
		if (!h->fds[i].active) {
			h->fds[i] = (struct fake_fd){ fd, events, cb, opaque, true };
			return 0;
		}
	}
	return -ENOSPC;
}

static int fake_mod_fd(void *loop, int fd, uint32_t events)
{
	struct fake_fd *f = fake_find(loop, fd);

	if (!f)
		return -ENOENT;
	f->events = events;
	return 0;
}

static int fake_del_fd(void *loop, int fd)
{
	struct fake_fd *f = fake_find(loop, fd);

	if (!f)
		return -ENOENT;
	f->active = false;
	return 0;
}

/* Runs the loop callback of @fd as the loop would for @events. */
static void fake_fire(struct harness *h, int fd, uint32_t events)
{
	struct fake_fd *f = fake_find(h, fd);

	assert_non_null(f);
	f->cb(f->opaque, events);
}

static int setup(void **state)
{
	struct harness *h = calloc(1, sizeof(*h));

	assert_non_null(h);
	bus_init(&h->pio, "pio");
	h->cfg.serial.mode = CONSOLE_NULL;
	h->irq = (struct irq_sink){ .set_line = fake_set_line, .opaque = h };
	h->loop = (struct dev_loop){
		.add_fd = fake_add_fd, .mod_fd = fake_mod_fd, .del_fd = fake_del_fd, .loop = h
	};
	h->ctx = (struct dev_ctx){
		.pio = &h->pio, .irq = &h->irq, .loop = &h->loop, .cfg = &h->cfg
	};
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	struct harness *h = *state;

	if (h->tmp_path[0])
		unlink(h->tmp_path);
	free(h);
	return 0;
}

static void outb(struct harness *h, uint16_t port, uint8_t v)
{
	assert_true(bus_access(&h->pio, port, true, &v, 1));
}

static uint8_t inb(struct harness *h, uint16_t port)
{
	uint8_t v = 0;

	assert_true(bus_access(&h->pio, port, false, &v, 1));
	return v;
}

static void *realize(struct harness *h)
{
	void *dev = NULL;

	assert_int_equal(serial_ops.realize(&h->ctx, NULL, &dev), 0);
	assert_non_null(dev);
	return dev;
}

static size_t pipe_pending(int fd)
{
	int n = 0;

	assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
	return (size_t)n;
}

static void set_nonblock(int fd)
{
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

static void test_off_claims_nothing(void **state)
{
	struct harness *h = *state;
	void *dev = (void *)1;
	uint8_t v = 0;

	h->cfg.serial.mode = CONSOLE_OFF;
	assert_int_equal(serial_ops.realize(&h->ctx, NULL, &dev), 0);
	assert_null(dev);
	for (uint16_t port = COM1; port < COM1 + SERIAL_PORT_SIZE; port++)
		assert_false(bus_access(&h->pio, port, false, &v, 1));
	serial_ops.unrealize(NULL);
}

static void test_file_output(void **state)
{
	struct harness *h = *state;
	char buf[64] = { 0 };
	const char *msg = "hello";
	void *dev;
	int fd;

	strcpy(h->tmp_path, "/tmp/cubicle-serial-XXXXXX");
	fd = mkstemp(h->tmp_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "stale content", 13), 13);
	close(fd);

	h->cfg.serial.mode = CONSOLE_FILE;
	h->cfg.serial.file = h->tmp_path;
	dev = realize(h);
	for (const char *p = msg; *p; p++) {
		assert_true(inb(h, LSR) & LSR_THRE);
		outb(h, THR, (uint8_t)*p);
	}
	assert_int_equal(inb(h, LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
	serial_ops.unrealize(dev);

	fd = open(h->tmp_path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), 5);
	close(fd);
	assert_string_equal(buf, "hello"); /* truncated, then written */
}

static void test_file_open_error(void **state)
{
	struct harness *h = *state;
	void *dev = NULL;

	h->cfg.serial.mode = CONSOLE_FILE;
	h->cfg.serial.file = (char *)"/nonexistent-dir/serial.log";
	assert_int_equal(serial_ops.realize(&h->ctx, NULL, &dev), -ENOENT);
	assert_null(dev);
	/* Nothing left registered: a second device can claim the ports. */
	h->cfg.serial.mode = CONSOLE_NULL;
	serial_ops.unrealize(realize(h));
}

static void test_thre_interrupt(void **state)
{
	struct harness *h = *state;
	void *dev = realize(h);

	assert_int_equal(inb(h, IIR), 0x01); /* nothing pending */
	assert_false(h->level);

	outb(h, IER, 0x02); /* enabling THRE with THR empty raises it */
	assert_true(h->level);
	assert_int_equal(h->last_gsi, SERIAL_GSI);
	assert_int_equal(inb(h, IIR), 0x02);
	assert_false(h->level); /* reading IIR acknowledged it */
	assert_int_equal(inb(h, IIR), 0x01);

	outb(h, THR, 'x'); /* sent at once (null backend): THRE again */
	assert_true(h->level);
	outb(h, IER, 0x00);
	assert_false(h->level);
	outb(h, IER, 0x02);
	assert_true(h->level);
	outb(h, THR, 'y'); /* a THR write clears it, the empty THR raises it again */
	assert_true(h->level);
	assert_int_equal(inb(h, IIR), 0x02);
	assert_false(h->level);

	/* Linux's "THRE re-asserted" test: IER off/on re-raises. */
	outb(h, IER, 0x00);
	outb(h, IER, 0x02);
	assert_int_equal(inb(h, IIR) & 0x0f, 0x02);

	/* FIFO mode shows in IIR's top bits. */
	outb(h, FCR, 0x01);
	assert_int_equal(inb(h, IIR), 0xc1);

	serial_ops.reset(dev);
	assert_false(h->level);
	assert_int_equal(inb(h, IER), 0);
	serial_ops.unrealize(dev);
}

static void test_registers(void **state)
{
	struct harness *h = *state;
	void *dev = realize(h);

	/* IER keeps its low four bits only (Linux probes bit 6 for XScale UARTs). */
	outb(h, IER, 0xff);
	assert_int_equal(inb(h, IER), 0x0f);
	outb(h, IER, 0x00);

	/* Divisor latch behind DLAB. */
	outb(h, LCR, 0x80);
	outb(h, DLL, 0x01);
	outb(h, DLM, 0x02);
	assert_int_equal(inb(h, DLL), 0x01);
	assert_int_equal(inb(h, DLM), 0x02);
	outb(h, LCR, 0x03);
	assert_int_equal(inb(h, LCR), 0x03);
	assert_int_equal(inb(h, IER), 0x00); /* not the divisor */
	outb(h, LCR, 0x80);
	assert_int_equal(inb(h, DLL), 0x01);
	outb(h, LCR, 0x03);

	outb(h, SCR, 0x5a);
	assert_int_equal(inb(h, SCR), 0x5a);
	assert_int_equal(inb(h, MSR) & 0xf0, 0xb0); /* DCD, DSR, CTS */
	assert_int_equal(inb(h, LSR), LSR_THRE | LSR_TEMT);

	/* A 16-bit access is two byte accesses. */
	uint8_t w[2] = { 0 };
	assert_true(bus_access(&h->pio, LCR, false, w, 2));
	assert_int_equal(w[0], 0x03);
	assert_int_equal(w[1], 0x00); /* MCR */
	serial_ops.unrealize(dev);
}

static void test_loopback(void **state)
{
	struct harness *h = *state;
	int out[2];
	void *dev = NULL;

	assert_int_equal(pipe(out), 0);
	set_nonblock(out[1]);
	assert_int_equal(serial_create_with_fds(&h->ctx, -1, out[1], &dev), 0);

	outb(h, MCR, 0x10 | 0x0a); /* loopback, RTS, OUT2: what Linux's autoconfig writes */
	assert_int_equal(inb(h, MSR) & 0xf0, 0x90);
	outb(h, IER, 0x01);
	outb(h, THR, 'L');
	assert_true(inb(h, LSR) & LSR_DR);
	assert_true(h->level);
	assert_int_equal(inb(h, IIR), 0x04);
	assert_int_equal(inb(h, RBR), 'L');
	assert_false(inb(h, LSR) & LSR_DR);
	assert_false(h->level);
	assert_int_equal(pipe_pending(out[0]), 0); /* nothing left the UART */

	outb(h, MCR, 0x00);
	outb(h, THR, 'O');
	assert_int_equal(pipe_pending(out[0]), 1);
	serial_ops.unrealize(dev);
	close(out[0]);
	close(out[1]);
}

static void test_rx_path(void **state)
{
	struct harness *h = *state;
	int in[2];
	void *dev = NULL;
	struct fake_fd *f;

	assert_int_equal(pipe(in), 0);
	assert_int_equal(serial_create_with_fds(&h->ctx, in[0], -1, &dev), 0);
	f = fake_find(h, in[0]);
	assert_non_null(f);
	assert_int_equal(f->events, EPOLLIN);

	outb(h, IER, 0x01);
	assert_false(h->level);
	assert_int_equal(write(in[1], "abc", 3), 3);
	fake_fire(h, in[0], EPOLLIN);
	/* Without FIFOs the UART holds one byte; the rest waits in the pipe. */
	assert_true(h->level);
	assert_true(inb(h, LSR) & LSR_DR);
	assert_int_equal(f->events, 0);
	assert_int_equal(pipe_pending(in[0]), 2);
	assert_int_equal(inb(h, RBR), 'a');
	assert_false(h->level);
	assert_int_equal(f->events, EPOLLIN); /* re-armed once there is room */

	outb(h, FCR, 0xc1); /* FIFOs on, trigger at 14 bytes */
	fake_fire(h, in[0], EPOLLIN);
	assert_true(h->level);
	assert_int_equal(inb(h, IIR), 0xcc); /* below the trigger level: timeout id */
	assert_int_equal(inb(h, RBR), 'b');
	assert_int_equal(inb(h, RBR), 'c');
	assert_false(inb(h, LSR) & LSR_DR);
	assert_false(h->level);

	/* End of input: the fd leaves the loop. */
	close(in[1]);
	fake_fire(h, in[0], EPOLLIN | EPOLLHUP);
	assert_null(fake_find(h, in[0]));
	serial_ops.unrealize(dev);
	close(in[0]);
}

static void test_rx_bounded(void **state)
{
	struct harness *h = *state;
	uint8_t buf[1000];
	int in[2];
	void *dev = NULL;
	struct fake_fd *f;
	unsigned got = 0;

	for (unsigned i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(pipe(in), 0);
	assert_int_equal(serial_create_with_fds(&h->ctx, in[0], -1, &dev), 0);
	f = fake_find(h, in[0]);
	outb(h, FCR, 0x01);
	assert_int_equal(write(in[1], buf, sizeof(buf)), (ssize_t)sizeof(buf));

	/* However often the loop calls, the UART holds at most its FIFO. */
	for (int i = 0; i < 10; i++)
		fake_fire(h, in[0], EPOLLIN);
	assert_int_equal(pipe_pending(in[0]), sizeof(buf) - SERIAL_RX_FIFO_SIZE);
	assert_int_equal(f->events, 0);

	/* The guest drains it; each time there is room the loop refills it, in order. */
	while (got < sizeof(buf)) {
		while (inb(h, LSR) & LSR_DR) {
			assert_int_equal(inb(h, RBR), buf[got]);
			got++;
		}
		assert_int_equal(f->events, EPOLLIN);
		if (got < sizeof(buf))
			fake_fire(h, in[0], EPOLLIN);
	}
	assert_int_equal(pipe_pending(in[0]), 0);

	/* Paused: no reads, and no interest. */
	serial_ops.pause(dev);
	assert_int_equal(f->events, 0);
	serial_ops.resume(dev);
	assert_int_equal(f->events, EPOLLIN);
	serial_ops.unrealize(dev);
	close(in[0]);
	close(in[1]);
}

static void test_tx_backpressure(void **state)
{
	struct harness *h = *state;
	static uint8_t sink[1 << 20];
	int out[2];
	void *dev = NULL;
	struct fake_fd *f;
	size_t filler = 0, total = 0;
	unsigned sent = 0;
	ssize_t n;

	assert_int_equal(pipe(out), 0);
	set_nonblock(out[1]);
	set_nonblock(out[0]);
	/* The host side is full before the guest starts. */
	while ((n = write(out[1], sink, 4096)) > 0)
		filler += (size_t)n;
	assert_int_equal(errno, EAGAIN);

	assert_int_equal(serial_create_with_fds(&h->ctx, -1, out[1], &dev), 0);
	f = fake_find(h, out[1]);
	assert_non_null(f);
	assert_int_equal(f->events, 0);

	outb(h, IER, 0x02);
	assert_int_equal(inb(h, IIR), 0x02);
	while (inb(h, LSR) & LSR_THRE) {
		outb(h, THR, (uint8_t)sent);
		sent++;
		assert_false(inb(h, LSR) & LSR_TEMT);
	}
	assert_int_equal(sent, SERIAL_TX_BUF_SIZE);
	assert_int_equal(f->events, EPOLLOUT);
	assert_int_equal(inb(h, IIR), 0x01); /* no THRE interrupt while full */
	assert_false(h->level);

	/* A driver that writes anyway loses the byte; the vCPU does not block. */
	outb(h, THR, 0xee);
	assert_int_equal(serial_tx_dropped(dev), 1);

	/* The host catches up: THRE comes back with its interrupt, and all bytes, in order. */
	while (total < filler) {
		n = read(out[0], sink, sizeof(sink));
		assert_true(n > 0);
		total += (size_t)n;
	}
	fake_fire(h, out[1], EPOLLOUT);
	assert_int_equal(inb(h, LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
	assert_true(h->level);
	assert_int_equal(inb(h, IIR), 0x02);
	assert_int_equal(f->events, 0);
	n = read(out[0], sink, sizeof(sink));
	assert_int_equal(n, SERIAL_TX_BUF_SIZE);
	for (unsigned i = 0; i < SERIAL_TX_BUF_SIZE; i++)
		assert_int_equal(sink[i], (uint8_t)i);

	/* The reader goes away: output is discarded, the fd leaves the loop, THRE stays set. */
	close(out[0]);
	outb(h, THR, 'z'); /* EPIPE (SIGPIPE is ignored by the test's main) */
	assert_null(fake_find(h, out[1]));
	assert_true(inb(h, LSR) & LSR_THRE);
	serial_ops.unrealize(dev);
	close(out[1]);
}

/* --serial tty with stdout a pipe and stdin not a terminal: output only, and stdout's own file
 * description is not switched to O_NONBLOCK behind the shell's back. */
static void test_tty_output(void **state)
{
	struct harness *h = *state;
	char buf[8] = { 0 };
	int out[2], saved_stdout;
	void *dev = NULL;

	assert_int_equal(pipe(out), 0);
	saved_stdout = dup(STDOUT_FILENO);
	assert_true(saved_stdout >= 0);
	assert_int_equal(dup2(out[1], STDOUT_FILENO), STDOUT_FILENO);

	h->cfg.serial.mode = CONSOLE_TTY;
	assert_int_equal(serial_ops.realize(&h->ctx, NULL, &dev), 0);
	outb(h, THR, 'h');
	outb(h, THR, 'i');
	assert_int_equal(fcntl(STDOUT_FILENO, F_GETFL) & O_NONBLOCK, 0);
	serial_ops.unrealize(dev);

	assert_int_equal(dup2(saved_stdout, STDOUT_FILENO), STDOUT_FILENO);
	close(saved_stdout);
	assert_int_equal(read(out[0], buf, sizeof(buf)), 2);
	assert_string_equal(buf, "hi");
	close(out[0]);
	close(out[1]);
}

static void test_pty(void **state)
{
	struct harness *h = *state;
	void *dev = NULL;
	unsigned active = 0;
	int r;

	h->cfg.serial.mode = CONSOLE_PTY;
	r = serial_ops.realize(&h->ctx, NULL, &dev);
	if (r == -ENOENT || r == -ENXIO || r == -EACCES) {
		skip(); /* no /dev/ptmx in this sandbox */
		return;
	}
	assert_int_equal(r, 0);
	for (unsigned i = 0; i < MAX_FAKE_FDS; i++)
		active += h->fds[i].active;
	assert_int_equal(active, 1); /* one fd, both directions */
	outb(h, THR, 'p');
	serial_ops.unrealize(dev);
	for (unsigned i = 0; i < MAX_FAKE_FDS; i++)
		assert_false(h->fds[i].active);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_off_claims_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_open_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thre_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loopback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tty_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pty, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
