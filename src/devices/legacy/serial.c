/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A 16550A UART at COM1 (0x3f8, ISA IRQ 4), the guest's serial console.
 *
 * The backend (which fds: stdout/stdin, a file, a pty, nothing) is chosen by serial_realize()
 * from --serial (devices/backend/term.c, shared with virtio-console); everything after
 * serial_create_with_fds() only sees an input fd and an output fd, so unit tests drive the
 * registers over pipes.
 *
 * Flow control, both ways bounded:
 * - input: at most SERIAL_RX_FIFO_SIZE bytes are read ahead of the guest. When the FIFO is
 *   full, EPOLLIN interest is dropped and the bytes wait in the host's pipe/tty; it is
 *   re-armed when the guest drains the FIFO.
 * - output: bytes go straight to the output fd. When a non-blocking fd is full they wait in a
 *   SERIAL_TX_BUF_SIZE buffer flushed from the loop on EPOLLOUT; while that buffer is full,
 *   THRE and TEMT read clear, which makes a driver wait. A driver that writes THR anyway
 *   (Linux's console gives up waiting after ~10 ms) loses the byte, as on a real UART; the
 *   loss is counted and logged (rate-limited). The vCPU never blocks on a non-blocking fd.
 *
 * Saved state: the registers (struct serial_regs), the THRE interrupt latch among them, and the
 * bytes waiting in the RX FIFO ("rx_fifo", oldest first). Not saved: the backend, reopened from
 * the config on restore (a clone gets its own console), and output the guest already handed to
 * the host (it belongs to the host side and keeps draining while paused). The interrupt line's
 * level is recomputed from the registers; the interrupt controller's own state is the VM's.
 *
 * Locking: register accesses come from vCPU threads, input/EPOLLOUT from the loop thread; one
 * mutex per UART covers both. irq->set_line and loop->mod_fd/del_fd are called with it held,
 * so neither may wait for a vCPU or for the loop thread to leave a device callback.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>

#include "bus/bus.h"
#include "config/config.h"
#include "devices/backend/term.h"
#include "devices/legacy/legacy.h"
#include "util/log.h"
#include "util/state.h"
#include "util/util.h"

/* Register offsets from the base port. */
#define UART_RBR_THR 0 /* DLL when LCR.DLAB */
#define UART_IER     1 /* DLM when LCR.DLAB */
#define UART_IIR_FCR 2
#define UART_LCR     3
#define UART_MCR     4
#define UART_LSR     5
#define UART_MSR     6
#define UART_SCR     7

#define IER_RDA	 0x01 /* received data available */
#define IER_THRE 0x02 /* transmitter holding register empty */
#define IER_RLS	 0x04 /* receiver line status */
#define IER_MS	 0x08 /* modem status */
#define IER_MASK 0x0f /* the upper bits read 0 on a 16550A (Linux probes bit 6) */

#define IIR_NO_INT  0x01
#define IIR_MS	    0x00
#define IIR_THRE    0x02
#define IIR_RDA	    0x04
#define IIR_RLS	    0x06
#define IIR_TIMEOUT 0x0c /* data below the trigger level */
#define IIR_FIFO    0xc0 /* FIFOs enabled (16550A) */

#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04
#define FCR_TRIGGER  0xc0

#define LCR_DLAB 0x80

#define MCR_DTR	 0x01
#define MCR_RTS	 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR	 0x01
#define LSR_OE	 0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS  0x01
#define MSR_DDSR  0x02
#define MSR_TERI  0x04
#define MSR_DDCD  0x08
#define MSR_DELTA 0x0f
#define MSR_CTS	  0x10
#define MSR_DSR	  0x20
#define MSR_RI	  0x40
#define MSR_DCD	  0x80

#define SERIAL_DEFAULT_DIVISOR 0x0c /* 9600 baud */
#define SERIAL_CLOSE_DRAIN_MS  200  /* how long unrealize waits for a slow output to drain */

/* The registers: what the guest sets, and (with the RX FIFO's bytes) what a snapshot saves. */
struct serial_regs {
	uint8_t ier, lcr, mcr, msr, scr, dll, dlm, fcr;
	uint8_t lsr_err;   /* LSR_OE, cleared by reading LSR */
	bool thre_pending; /* THRE interrupt latched, cleared by IIR read or THR write */
};

static const struct state_field serial_fields[] = {
	STATE_U8(struct serial_regs, ier),     STATE_U8(struct serial_regs, lcr),
	STATE_U8(struct serial_regs, mcr),     STATE_U8(struct serial_regs, msr),
	STATE_U8(struct serial_regs, scr),     STATE_U8(struct serial_regs, dll),
	STATE_U8(struct serial_regs, dlm),     STATE_U8(struct serial_regs, fcr),
	STATE_U8(struct serial_regs, lsr_err), STATE_BOOL(struct serial_regs, thre_pending),
};

/* An fd registered with the VMM loop. */
struct serial_watch {
	int fd;
	bool active;
	uint32_t armed; /* events currently asked for */
};

struct serial {
	pthread_mutex_t lock;
	struct dev_ctx ctx; /* a copy: the VM's buses, sink and loop outlive its devices */
	struct term_backend be;

	struct serial_watch in_w;  /* in_fd, and out_fd too when they are the same fd (pty) */
	struct serial_watch out_w; /* out_fd when distinct and non-blocking */
	bool shared_fd;
	bool out_nonblock;
	bool in_closed;	 /* EOF or error on input: no more reads */
	bool out_broken; /* write error: output discarded from now on */
	bool paused;

	struct serial_regs regs;
	bool irq_level; /* what was last sent to the sink */

	uint8_t rx[SERIAL_RX_FIFO_SIZE];
	unsigned rx_head, rx_count;
	uint8_t tx[SERIAL_TX_BUF_SIZE];
	unsigned tx_head, tx_count;
	uint64_t tx_dropped;
	struct log_ratelimit rl;
};

/* ---- register logic (called with s->lock held) ---- */

static unsigned serial_rx_capacity(const struct serial *s)
{
	/* Without FIFOs a 16550 holds one received byte (16450 mode). */
	return (s->regs.fcr & FCR_ENABLE) ? SERIAL_RX_FIFO_SIZE : 1;
}

static unsigned serial_rx_trigger(const struct serial *s)
{
	static const unsigned levels[4] = { 1, 4, 8, 14 };

	if (!(s->regs.fcr & FCR_ENABLE))
		return 1;
	return levels[(s->regs.fcr & FCR_TRIGGER) >> 6];
}

static bool serial_thr_empty(const struct serial *s)
{
	return s->tx_count < SERIAL_TX_BUF_SIZE;
}

static uint8_t serial_lsr(const struct serial *s)
{
	uint8_t lsr = s->regs.lsr_err;

	if (s->rx_count)
		lsr |= LSR_DR;
	if (serial_thr_empty(s))
		lsr |= LSR_THRE;
	if (s->tx_count == 0)
		lsr |= LSR_TEMT;
	return lsr;
}

/* The pending interrupt of highest priority, as IIR bits 0-3. */
static uint8_t serial_iir_id(const struct serial *s)
{
	if ((s->regs.ier & IER_RLS) && (s->regs.lsr_err & LSR_OE))
		return IIR_RLS;
	if ((s->regs.ier & IER_RDA) && s->rx_count)
		return s->rx_count >= serial_rx_trigger(s) ? IIR_RDA : IIR_TIMEOUT;
	if ((s->regs.ier & IER_THRE) && s->regs.thre_pending)
		return IIR_THRE;
	if ((s->regs.ier & IER_MS) && (s->regs.msr & MSR_DELTA))
		return IIR_MS;
	return IIR_NO_INT;
}

static void serial_update_irq(struct serial *s)
{
	bool level = serial_iir_id(s) != IIR_NO_INT;

	if (level == s->irq_level)
		return;
	s->irq_level = level;
	if (s->ctx.irq && s->ctx.irq->set_line)
		(void)s->ctx.irq->set_line(s->ctx.irq->opaque, SERIAL_GSI, level);
}

/* Modem status lines: wired to the MCR outputs in loopback, "cable connected" otherwise. */
static void serial_update_msr(struct serial *s)
{
	uint8_t old = s->regs.msr, now;

	if (s->regs.mcr & MCR_LOOP) {
		now = 0;
		if (s->regs.mcr & MCR_RTS)
			now |= MSR_CTS;
		if (s->regs.mcr & MCR_DTR)
			now |= MSR_DSR;
		if (s->regs.mcr & MCR_OUT1)
			now |= MSR_RI;
		if (s->regs.mcr & MCR_OUT2)
			now |= MSR_DCD;
	} else {
		now = MSR_DCD | MSR_DSR | MSR_CTS;
	}
	now |= old & MSR_DELTA;
	if ((old ^ now) & MSR_CTS)
		now |= MSR_DCTS;
	if ((old ^ now) & MSR_DSR)
		now |= MSR_DDSR;
	if ((old & MSR_RI) && !(now & MSR_RI))
		now |= MSR_TERI;
	if ((old ^ now) & MSR_DCD)
		now |= MSR_DDCD;
	s->regs.msr = now;
}

static void serial_watch_set(struct serial *s, struct serial_watch *w, uint32_t events)
{
	if (!w->active || w->armed == events)
		return;
	if (s->ctx.loop->mod_fd(s->ctx.loop->loop, w->fd, events) == 0)
		w->armed = events;
}

static void serial_watch_del(struct serial *s, struct serial_watch *w)
{
	if (!w->active)
		return;
	(void)s->ctx.loop->del_fd(s->ctx.loop->loop, w->fd);
	w->active = false;
	w->armed = 0;
}

/* Asks the loop for exactly the events the device can use now. */
static void serial_arm(struct serial *s)
{
	uint32_t in = 0, out = 0;

	if (!s->in_closed && !s->paused && !(s->regs.mcr & MCR_LOOP) &&
	    s->rx_count < serial_rx_capacity(s))
		in = EPOLLIN;
	if (s->tx_count && !s->out_broken)
		out = EPOLLOUT;

	if (s->shared_fd) {
		if (s->in_closed && s->out_broken)
			serial_watch_del(s, &s->in_w);
		else
			serial_watch_set(s, &s->in_w, in | out);
		return;
	}
	/* A dead fd may report EPOLLHUP/EPOLLERR forever: take it out of the loop. */
	if (s->in_closed)
		serial_watch_del(s, &s->in_w);
	else
		serial_watch_set(s, &s->in_w, in);
	if (s->out_broken)
		serial_watch_del(s, &s->out_w);
	else
		serial_watch_set(s, &s->out_w, out);
}

static void serial_rx_clear(struct serial *s)
{
	s->rx_head = 0;
	s->rx_count = 0;
}

static void serial_rx_push(struct serial *s, uint8_t byte)
{
	if (s->rx_count >= serial_rx_capacity(s)) {
		s->regs.lsr_err |= LSR_OE; /* only loopback can overrun: host input is paced */
		return;
	}
	s->rx[(s->rx_head + s->rx_count) % SERIAL_RX_FIFO_SIZE] = byte;
	s->rx_count++;
}

static uint8_t serial_rx_pop(struct serial *s)
{
	uint8_t byte;

	if (!s->rx_count)
		return 0;
	byte = s->rx[s->rx_head];
	s->rx_head = (s->rx_head + 1) % SERIAL_RX_FIFO_SIZE;
	s->rx_count--;
	return byte;
}

static void serial_output_failed(struct serial *s, int err)
{
	s->out_broken = true;
	s->tx_head = 0;
	s->tx_count = 0;
	log_warn("serial: output failed (%s); guest output is discarded from now on",
		 err ? strerror(err) : "end of file");
}

/* Writes out what the output fd takes without blocking (or all of it, on a blocking fd). */
static void serial_flush(struct serial *s)
{
	while (s->tx_count && !s->out_broken) {
		size_t chunk = MIN(s->tx_count, SERIAL_TX_BUF_SIZE - s->tx_head);
		ssize_t n = write(s->be.out_fd, s->tx + s->tx_head, chunk);

		if (n > 0) {
			s->tx_head = (s->tx_head + (unsigned)n) % SERIAL_TX_BUF_SIZE;
			s->tx_count -= (unsigned)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		serial_output_failed(s, n < 0 ? errno : 0);
	}
	if (!s->tx_count)
		s->tx_head = 0;
}

static void serial_transmit(struct serial *s, uint8_t byte)
{
	if (s->regs.mcr & MCR_LOOP) {
		serial_rx_push(s, byte);
		return;
	}
	if (s->be.out_fd < 0 || s->out_broken)
		return;
	if (s->tx_count == SERIAL_TX_BUF_SIZE) {
		/* The driver ignored THRE; a real UART would overwrite its FIFO too. */
		s->tx_dropped++;
		log_ratelimited(&s->rl, LOG_WARN, "serial: host output is slow, %llu bytes dropped",
				(unsigned long long)s->tx_dropped);
		return;
	}
	s->tx[(s->tx_head + s->tx_count) % SERIAL_TX_BUF_SIZE] = byte;
	s->tx_count++;
	/* With bytes already waiting, EPOLLOUT is armed and the loop flushes them in order. */
	if (s->tx_count == 1)
		serial_flush(s);
}

static uint8_t serial_read_reg(struct serial *s, unsigned reg)
{
	uint8_t v, id;

	switch (reg) {
	case UART_RBR_THR:
		if (s->regs.lcr & LCR_DLAB)
			return s->regs.dll;
		return serial_rx_pop(s);
	case UART_IER:
		if (s->regs.lcr & LCR_DLAB)
			return s->regs.dlm;
		return s->regs.ier;
	case UART_IIR_FCR:
		id = serial_iir_id(s);
		if (id == IIR_THRE)
			s->regs.thre_pending =
				false; /* reading IIR acknowledges a THRE interrupt */
		return id | ((s->regs.fcr & FCR_ENABLE) ? IIR_FIFO : 0);
	case UART_LCR:
		return s->regs.lcr;
	case UART_MCR:
		return s->regs.mcr;
	case UART_LSR:
		v = serial_lsr(s);
		s->regs.lsr_err = 0;
		return v;
	case UART_MSR:
		v = s->regs.msr;
		s->regs.msr &= (uint8_t)~MSR_DELTA;
		return v;
	default:
		return s->regs.scr;
	}
}

static void serial_write_reg(struct serial *s, unsigned reg, uint8_t v)
{
	uint8_t old;

	switch (reg) {
	case UART_RBR_THR:
		if (s->regs.lcr & LCR_DLAB) {
			s->regs.dll = v;
			return;
		}
		serial_transmit(s, v);
		/* The byte leaves at once unless the host is slow; THRE then fires again. */
		s->regs.thre_pending = serial_thr_empty(s);
		return;
	case UART_IER:
		if (s->regs.lcr & LCR_DLAB) {
			s->regs.dlm = v;
			return;
		}
		old = s->regs.ier;
		s->regs.ier = v & IER_MASK;
		/* Enabling the THRE interrupt with THR empty raises it (Linux tests this). */
		if (!(old & IER_THRE) && (s->regs.ier & IER_THRE) && serial_thr_empty(s))
			s->regs.thre_pending = true;
		return;
	case UART_IIR_FCR:
		/* Switching the FIFOs on or off clears them, as does FCR_CLEAR_RX. */
		if (((s->regs.fcr ^ v) & FCR_ENABLE) || (v & FCR_CLEAR_RX))
			serial_rx_clear(s);
		/* FCR_CLEAR_TX: bytes already handed to the host are not taken back. */
		s->regs.fcr = v & (FCR_ENABLE | FCR_TRIGGER);
		return;
	case UART_LCR:
		s->regs.lcr = v;
		return;
	case UART_MCR:
		s->regs.mcr = v & MCR_MASK;
		serial_update_msr(s);
		return;
	case UART_LSR:
	case UART_MSR:
		return; /* factory test writes: ignored */
	default:
		s->regs.scr = v;
		return;
	}
}

static void serial_pio(void *opaque, uint64_t offset, bool is_write, uint8_t *data, unsigned len)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	/* An 8-bit ISA device: a wider access is split into consecutive byte accesses. */
	for (unsigned i = 0; i < len; i++) {
		uint64_t reg = offset + i;

		if (reg >= SERIAL_PORT_SIZE) {
			if (!is_write)
				data[i] = 0xff;
			continue;
		}
		if (is_write)
			serial_write_reg(s, (unsigned)reg, data[i]);
		else
			data[i] = serial_read_reg(s, (unsigned)reg);
	}
	serial_update_irq(s);
	serial_arm(s);
	pthread_mutex_unlock(&s->lock);
}

/* ---- loop callbacks ---- */

static void serial_read_input(struct serial *s)
{
	uint8_t buf[SERIAL_RX_FIFO_SIZE];
	unsigned room;
	ssize_t n;

	if (s->in_closed || s->paused || (s->regs.mcr & MCR_LOOP))
		return;
	room = serial_rx_capacity(s) - s->rx_count;
	if (!room)
		return;
	/* One read per wake-up: the fd may be a blocking tty, and EPOLLIN says it will not block. */
	n = read(s->be.in_fd, buf, room);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		s->in_closed = true;
		log_info("serial: input closed");
		return;
	}
	for (ssize_t i = 0; i < n; i++)
		serial_rx_push(s, buf[i]);
}

static void serial_write_output(struct serial *s)
{
	bool was_full = !serial_thr_empty(s);

	serial_flush(s);
	if (was_full && serial_thr_empty(s))
		s->regs.thre_pending = true; /* the driver waits for this */
}

static void serial_in_cb(void *opaque, uint32_t events)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		serial_read_input(s);
	serial_update_irq(s);
	serial_arm(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_out_cb(void *opaque, uint32_t events)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
		if (s->tx_count)
			serial_write_output(s);
		else if (events & (EPOLLERR | EPOLLHUP))
			s->out_broken = true; /* nothing to write, but the fd is dead */
	}
	serial_update_irq(s);
	serial_arm(s);
	pthread_mutex_unlock(&s->lock);
}

/* A pty master: one fd, both directions. */
static void serial_inout_cb(void *opaque, uint32_t events)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		serial_read_input(s);
	if ((events & (EPOLLOUT | EPOLLERR)) && s->tx_count)
		serial_write_output(s);
	serial_update_irq(s);
	serial_arm(s);
	pthread_mutex_unlock(&s->lock);
}

/* ---- life cycle ---- */

static void serial_reset_regs(struct serial *s)
{
	s->regs.ier = 0;
	s->regs.lcr = 0;
	s->regs.mcr = 0;
	s->regs.scr = 0;
	s->regs.fcr = 0;
	s->regs.dll = SERIAL_DEFAULT_DIVISOR;
	s->regs.dlm = 0;
	s->regs.lsr_err = 0;
	s->regs.msr = MSR_DCD | MSR_DSR | MSR_CTS;
	s->regs.thre_pending = false;
	serial_rx_clear(s);
}

static void serial_final_drain(struct serial *s)
{
	struct pollfd p = { .fd = s->be.out_fd, .events = POLLOUT };
	uint64_t deadline = time_now_ns() + SERIAL_CLOSE_DRAIN_MS * 1000000ULL;

	/* Best effort: the guest's last words ("reboot: Power down") should reach the user. */
	serial_flush(s);
	while (s->tx_count && !s->out_broken) {
		uint64_t now = time_now_ns();

		if (now >= deadline || poll(&p, 1, (int)((deadline - now) / 1000000ULL) + 1) <= 0)
			break;
		serial_flush(s);
	}
}

static void serial_destroy(struct serial *s, bool registered)
{
	if (!s)
		return;
	if (registered)
		(void)bus_unregister(s->ctx.pio, SERIAL_PORT_BASE);
	pthread_mutex_lock(&s->lock);
	serial_watch_del(s, &s->in_w);
	serial_watch_del(s, &s->out_w);
	if (s->tx_count && s->be.out_fd >= 0)
		serial_final_drain(s);
	term_backend_close(&s->be);
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Takes over @be (its fds and terminal state) whatever the outcome. */
static int serial_create(const struct dev_ctx *ctx, struct term_backend *be, void **ret)
{
	struct serial *s;
	int r, flags;

	if (be->in_fd >= 0 && !ctx->loop) {
		term_backend_close(be);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		term_backend_close(be);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->ctx = *ctx;
	s->be = *be;
	term_backend_init(be);
	s->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(1000000000ULL, 5);
	s->in_w.fd = s->be.in_fd;
	s->out_w.fd = s->be.out_fd;
	s->shared_fd = s->be.in_fd >= 0 && s->be.in_fd == s->be.out_fd;
	if (s->be.out_fd >= 0) {
		flags = fcntl(s->be.out_fd, F_GETFL);
		s->out_nonblock = flags >= 0 && (flags & O_NONBLOCK);
	}
	if (s->be.in_fd < 0)
		s->in_closed = true;
	serial_reset_regs(s);

	if (s->be.in_fd >= 0) {
		r = ctx->loop->add_fd(ctx->loop->loop, s->be.in_fd, EPOLLIN,
				      s->shared_fd ? serial_inout_cb : serial_in_cb, s);
		if (r < 0)
			goto fail;
		s->in_w.active = true;
		s->in_w.armed = EPOLLIN;
	}
	/* A blocking output never waits in the buffer, so it needs no loop (and a regular file
	 * could not be polled anyway). */
	if (s->be.out_fd >= 0 && s->out_nonblock && !s->shared_fd) {
		if (!ctx->loop) {
			r = -EINVAL;
			goto fail;
		}
		r = ctx->loop->add_fd(ctx->loop->loop, s->be.out_fd, 0, serial_out_cb, s);
		if (r < 0)
			goto fail;
		s->out_w.active = true;
	}
	r = bus_register(ctx->pio, SERIAL_PORT_BASE, SERIAL_PORT_SIZE, serial_pio, s, "serial");
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	serial_destroy(s, false);
	return r;
}

int serial_create_with_fds(const struct dev_ctx *ctx, int in_fd, int out_fd, void **ret)
{
	struct term_backend be;

	term_backend_init(&be);
	be.in_fd = in_fd;
	be.out_fd = out_fd;
	return serial_create(ctx, &be, ret);
}

uint64_t serial_tx_dropped(void *dev)
{
	struct serial *s = dev;
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = s->tx_dropped;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Hostile input: reserved bits clear, no more bytes than the FIFO holds in that mode. */
static int serial_restore(struct serial *s, const struct dev_ctx *ctx, const json_t *state)
{
	struct serial_regs regs = s->regs;
	uint8_t rx[SERIAL_RX_FIFO_SIZE];
	size_t rx_len, cap;
	char what[160];
	int r;

	r = legacy_state_load(ctx, "serial", state, serial_fields, ARRAY_SIZE(serial_fields),
			      &regs);
	if (r < 0)
		return r;
	if (state_get_blob_max(state, "rx_fifo", rx, sizeof(rx), &rx_len, what, sizeof(what)) < 0)
		return legacy_state_fail(ctx, "serial", "%s", what);
	if (regs.ier & ~IER_MASK)
		return legacy_state_fail(ctx, "serial", "field 'ier': reserved bits set (0x%02x)",
					 regs.ier);
	if (regs.mcr & ~MCR_MASK)
		return legacy_state_fail(ctx, "serial", "field 'mcr': reserved bits set (0x%02x)",
					 regs.mcr);
	if (regs.fcr & ~(FCR_ENABLE | FCR_TRIGGER))
		return legacy_state_fail(ctx, "serial", "field 'fcr': reserved bits set (0x%02x)",
					 regs.fcr);
	if (regs.lsr_err & ~LSR_OE)
		return legacy_state_fail(ctx, "serial",
					 "field 'lsr_err': bits other than OE set (0x%02x)",
					 regs.lsr_err);
	cap = (regs.fcr & FCR_ENABLE) ? SERIAL_RX_FIFO_SIZE : 1;
	if (rx_len > cap)
		return legacy_state_fail(ctx, "serial",
					 "field 'rx_fifo': %zu bytes, the FIFO holds %zu", rx_len,
					 cap);

	pthread_mutex_lock(&s->lock);
	s->regs = regs;
	memcpy(s->rx, rx, rx_len);
	s->rx_head = 0;
	s->rx_count = (unsigned)rx_len;
	s->irq_level = serial_iir_id(s) != IIR_NO_INT;
	s->paused = true; /* quiesced until vm_resume() */
	serial_arm(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static int serial_save(void *dev, json_t *state, char *err, size_t errlen)
{
	struct serial *s = dev;
	uint8_t rx[SERIAL_RX_FIFO_SIZE];
	int r;

	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->rx_count; i++)
		rx[i] = s->rx[(s->rx_head + i) % SERIAL_RX_FIFO_SIZE];
	r = state_save_fields(state, serial_fields, ARRAY_SIZE(serial_fields), &s->regs);
	if (r == 0)
		r = state_set_blob(state, "rx_fifo", rx, s->rx_count);
	pthread_mutex_unlock(&s->lock);
	return r < 0 ? error_set(err, errlen, r, "serial: out of memory") : 0;
}

static int serial_realize(const struct dev_ctx *ctx, const struct json_t *state, void **ret)
{
	const struct console_config *con = &ctx->cfg->serial;
	struct term_backend be;
	int r = 0;

	if (con->mode == CONSOLE_OFF) {
		*ret = NULL;
		return 0;
	}
	term_backend_init(&be);
	r = term_backend_open(&be, con, "--serial", ctx->rebooted, ctx->err, ctx->errlen);
	if (r < 0) {
		term_backend_close(&be);
		return r;
	}
	r = serial_create(ctx, &be, ret);
	if (r == 0 && state) {
		r = serial_restore(*ret, ctx, state);
		if (r < 0) {
			serial_destroy(*ret, true);
			*ret = NULL;
		}
	}
	return r;
}

static void serial_unrealize(void *dev)
{
	serial_destroy(dev, true);
}

static void serial_reset(void *dev)
{
	struct serial *s = dev;

	pthread_mutex_lock(&s->lock);
	serial_reset_regs(s);
	serial_update_irq(s);
	serial_arm(s);
	pthread_mutex_unlock(&s->lock);
}

/* Paused, the UART stops taking host input (it would change the state being saved); output
 * already accepted from the guest keeps draining. */
static void serial_set_paused(void *dev, bool paused)
{
	struct serial *s = dev;

	pthread_mutex_lock(&s->lock);
	s->paused = paused;
	serial_arm(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_pause(void *dev)
{
	serial_set_paused(dev, true);
}

static void serial_resume(void *dev)
{
	serial_set_paused(dev, false);
}

static void serial_nodes(void *dev, dev_node_fn emit, void *opaque)
{
	emit(opaque, "__serial", -1);
}

const struct dev_ops serial_ops = {
	.name = "serial",
	.realize = serial_realize,
	.unrealize = serial_unrealize,
	.reset = serial_reset,
	.pause = serial_pause,
	.resume = serial_resume,
	.save = serial_save,
	.nodes = serial_nodes,
};
