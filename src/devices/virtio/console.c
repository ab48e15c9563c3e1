/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-console (virtio 1.2 §5.3), one port, no MULTIPORT: receiveq 0 (host → guest) and
 * transmitq 1 (guest → host), on the terminal backend --console chooses (backend/term.c, shared
 * with the serial port: off/null/tty/file/pty, raw mode restored at exit).
 *
 * Flow control, both ways without a host-side buffer to overflow:
 * - output: a transmit element is written straight from guest memory to the output fd. When a
 *   non-blocking fd is full, the device keeps that one element (and its offset), stops popping
 *   the transmit queue and waits for EPOLLOUT; the driver's ring fills up and it waits in turn.
 *   Output is never dropped unless the fd fails for good (then it is discarded and logged).
 * - input: read only when EPOLLIN says the fd is readable, at most CONSOLE_RX_CHUNK bytes into
 *   one receive buffer. With no receive buffer left, EPOLLIN interest is dropped (the bytes wait
 *   in the host's tty/pipe) and re-armed when the driver notifies the receive queue.
 *
 * Everything runs on the loop thread with the transport's lock held (ops callbacks, or the fd
 * callbacks below taking it), so a device reset from a vCPU cannot race a transfer.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "config/config.h"
#include "devices/backend/term.h"
#include "devices/virtio/virtio_devices.h"
#include "pci/pci.h"
#include "util/log.h"
#include "util/state.h"
#include "util/util.h"
#include "virtio/virtio.h"

#define CONSOLE_RXQ	       0
#define CONSOLE_TXQ	       1
#define CONSOLE_CLOSE_DRAIN_MS 200 /* how long teardown waits for a slow output, as serial */
#define CONSOLE_CFG_SIZE       12  /* cols, rows, max_nr_ports, emerg_wr: all 0 (no features) */
#define PCI_CLASS_COMM_OTH     0x078000 /* simple communication controller, other */

struct console_watch {
	int fd;
	bool active;
	uint32_t armed;
};

struct console {
	struct virtio_pci *vp;
	const struct dev_loop *loop;
	struct term_backend be; /* fds we own (realize); empty for console_create_with_fds */
	int in_fd, out_fd;
	bool shared_fd; /* a pty: one fd, both directions */
	struct console_watch in_w, out_w;
	bool in_closed;
	bool out_broken;
	bool rx_starved; /* no receive buffer: EPOLLIN off until the driver notifies queue 0 */
	bool rx_held, tx_held;
	bool paused;		     /* vm.pause: no backend I/O into or out of guest buffers */
	size_t tx_off;		     /* bytes of tx already written */
	uint32_t tx_replay_off;	     /* restored: bytes of the next tx popped already written */
	uint64_t tx_bytes, rx_bytes; /* vm.counters */
	struct virtq_elem rx, tx;
	uint8_t rxbuf[CONSOLE_RX_CHUNK];
};

/* ---- fd interest (lock held) ---- */

static void console_watch_set(struct console *c, struct console_watch *w, uint32_t events)
{
	if (!w->active || w->armed == events)
		return;
	if (c->loop->mod_fd(c->loop->loop, w->fd, events) == 0)
		w->armed = events;
}

static void console_watch_del(struct console *c, struct console_watch *w)
{
	if (!w->active)
		return;
	(void)c->loop->del_fd(c->loop->loop, w->fd);
	w->active = false;
	w->armed = 0;
}

static void console_arm(struct console *c)
{
	uint32_t in = 0, out = 0;

	if (!c->in_closed && !c->rx_starved && !c->paused)
		in = EPOLLIN;
	if (c->tx_held && !c->out_broken && !c->paused)
		out = EPOLLOUT;
	if (c->shared_fd) {
		if (c->in_closed && c->out_broken)
			console_watch_del(c, &c->in_w);
		else
			console_watch_set(c, &c->in_w, in | out);
		return;
	}
	if (c->in_closed)
		console_watch_del(c, &c->in_w);
	else
		console_watch_set(c, &c->in_w, in);
	if (c->out_broken)
		console_watch_del(c, &c->out_w);
	else
		console_watch_set(c, &c->out_w, out);
}

/* ---- transmit (lock held) ---- */

/* Writes the rest of c->tx. 0: all written (or discarded), -EAGAIN: the fd is full. */
static int console_tx_write(struct console *c)
{
	struct iovec *iov = virtq_elem_out(&c->tx);
	size_t skip = c->tx_off;

	if (c->out_fd < 0 || c->out_broken)
		return 0;
	for (unsigned i = 0; i < c->tx.out_num; i++) {
		size_t len = iov[i].iov_len;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		while (skip < len) {
			ssize_t n = write(c->out_fd, (uint8_t *)iov[i].iov_base + skip, len - skip);

			if (n > 0) {
				skip += (size_t)n;
				c->tx_off += (size_t)n;
				c->tx_bytes += (uint64_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return -EAGAIN;
			c->out_broken = true;
			log_warn("virtio-console: output failed (%s); guest output is discarded "
				 "from "
				 "now on",
				 n < 0 ? strerror(errno) : "end of file");
			return 0;
		}
		skip = 0;
	}
	return 0;
}

static void console_tx(struct console *c)
{
	unsigned served = 0;

	while (served < CONSOLE_QUEUE_SIZE) {
		if (!c->tx_held) {
			if (virtio_pci_pop(c->vp, CONSOLE_TXQ, &c->tx) <= 0)
				break;
			c->tx_held = true;
			/* The element held at a snapshot comes back first (virtio.h). */
			c->tx_off = c->tx_replay_off;
			c->tx_replay_off = 0;
		}
		if (console_tx_write(c) == -EAGAIN)
			break; /* backpressure: EPOLLOUT brings us back */
		c->tx_held = false;
		if (virtio_pci_push(c->vp, CONSOLE_TXQ, &c->tx, 0) < 0)
			break;
		served++;
	}
	if (served == CONSOLE_QUEUE_SIZE)
		virtio_pci_kick(c->vp, CONSOLE_TXQ);
	virtio_pci_notify(c->vp, CONSOLE_TXQ);
}

/* ---- receive (lock held) ---- */

/* One read, because the fd is readable (it may be a blocking tty: never read otherwise). */
static void console_rx(struct console *c)
{
	ssize_t n;

	if (c->in_closed)
		return;
	if (!c->rx_held) {
		int r = virtio_pci_pop(c->vp, CONSOLE_RXQ, &c->rx);

		if (r <= 0) {
			c->rx_starved = true; /* the bytes wait in the host until a buffer comes */
			return;
		}
		c->rx_held = true;
	}
	if (!c->rx.in_len) {
		c->rx_held = false; /* a buffer the device cannot write: give it back empty */
		(void)virtio_pci_push(c->vp, CONSOLE_RXQ, &c->rx, 0);
		virtio_pci_notify(c->vp, CONSOLE_RXQ);
		return;
	}
	n = read(c->in_fd, c->rxbuf, MIN((size_t)c->rx.in_len, sizeof(c->rxbuf)));
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		c->in_closed = true;
		log_info("virtio-console: input closed");
		return;
	}
	c->rx_held = false;
	c->rx_bytes += (uint64_t)n;
	(void)virtio_pci_push(c->vp, CONSOLE_RXQ, &c->rx,
			      (uint32_t)virtq_elem_write(&c->rx, 0, c->rxbuf, (size_t)n));
	virtio_pci_notify(c->vp, CONSOLE_RXQ);
}

/* ---- callbacks ---- */

static void console_queue_notify(void *opaque, unsigned q)
{
	struct console *c = opaque;

	if (q == CONSOLE_RXQ)
		c->rx_starved = false; /* new buffers, maybe: EPOLLIN again */
	else if (q == CONSOLE_TXQ)
		console_tx(c);
	console_arm(c);
}

static void console_dev_reset(void *opaque)
{
	struct console *c = opaque;

	/* Their buffers belong to the driver again; unwritten output of a reset device is lost. */
	c->rx_held = false;
	c->tx_held = false;
	c->tx_replay_off = 0;
	c->rx_starved = false;
	console_arm(c);
}

static void console_in_cb(void *opaque, uint32_t events)
{
	struct console *c = opaque;

	virtio_pci_lock(c->vp);
	if (c->in_w.armed & EPOLLIN) {
		console_rx(c);
	} else if (events & (EPOLLHUP | EPOLLERR)) {
		/* A hung-up input reports EPOLLHUP even with no interest: it would spin the loop
		 * until the guest posts a buffer. What it still held is dropped. */
		c->in_closed = true;
		log_info("virtio-console: input closed");
	}
	console_arm(c);
	virtio_pci_unlock(c->vp);
}

static void console_out_cb(void *opaque, uint32_t events)
{
	struct console *c = opaque;

	virtio_pci_lock(c->vp);
	if (c->tx_held) {
		if (!c->paused)
			console_tx(c);
	} else if (events & (EPOLLERR | EPOLLHUP))
		c->out_broken = true; /* nothing to write, but the fd is dead */
	console_arm(c);
	virtio_pci_unlock(c->vp);
}

/* A pty master: one fd, both directions (the slave is held open: no hang-up). */
static void console_inout_cb(void *opaque, uint32_t events)
{
	struct console *c = opaque;

	virtio_pci_lock(c->vp);
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && (c->in_w.armed & EPOLLIN) && !c->paused)
		console_rx(c);
	if ((events & (EPOLLOUT | EPOLLERR)) && c->tx_held && !c->paused)
		console_tx(c);
	console_arm(c);
	virtio_pci_unlock(c->vp);
}

/* Each queue's held element is its latest pop (virtio.h: held elements). */
static unsigned console_held(void *opaque, unsigned q)
{
	struct console *c = opaque;

	return q == CONSOLE_RXQ ? c->rx_held : c->tx_held;
}

static const struct virtio_dev_ops console_vops = {
	.name = "virtio-console",
	.device_id = VIRTIO_ID_CONSOLE,
	.class_code = PCI_CLASS_COMM_OTH,
	.num_queues = 2,
	.max_queue_size = CONSOLE_QUEUE_SIZE,
	.config_size = CONSOLE_CFG_SIZE,
	.queue_notify = console_queue_notify,
	.reset = console_dev_reset,
	.held = console_held,
};

/* ---- life cycle ---- */

/*
 * Best effort, as the serial port does: what the guest handed over before it stopped (its last
 * words, "reboot: Power down") reaches the user, bounded in time. The vCPUs are stopped but
 * guest memory is still mapped when devices are torn down.
 */
static void console_final_drain(struct console *c)
{
	struct pollfd p = { .fd = c->out_fd, .events = POLLOUT };
	uint64_t deadline = time_now_ns() + CONSOLE_CLOSE_DRAIN_MS * 1000000ULL;

	virtio_pci_lock(c->vp);
	for (;;) {
		console_tx(c);
		if (!c->tx_held || c->out_broken)
			break;
		uint64_t now = time_now_ns();
		if (now >= deadline || poll(&p, 1, (int)((deadline - now) / 1000000ULL) + 1) <= 0)
			break;
	}
	virtio_pci_unlock(c->vp);
}

static void console_destroy(struct console *c)
{
	if (!c)
		return;
	if (c->vp && c->out_fd >= 0)
		console_final_drain(c);
	c->vp = virtio_pci_destroy(c->vp);
	if (c->loop) {
		console_watch_del(c, &c->in_w);
		console_watch_del(c, &c->out_w);
	}
	term_backend_close(&c->be);
	free(c);
}

static int console_watch_add(struct console *c, struct console_watch *w, int fd, dev_fd_cb cb)
{
	int r = c->loop->add_fd(c->loop->loop, fd, 0, cb, c);

	/* A regular file cannot be polled (EPERM): it never blocks, so it needs no loop. */
	if (r == -EPERM)
		return 0;
	if (r < 0)
		return r;
	w->fd = fd;
	w->active = true;
	return 0;
}

/* Takes over @be whatever the outcome. */
static int console_create(const struct dev_ctx *ctx, struct term_backend *be, void **ret)
{
	struct console *c;
	int r;

	if (!ctx->pci || !ctx->mem || ((be->in_fd >= 0 || be->out_fd >= 0) && !ctx->loop)) {
		term_backend_close(be);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		term_backend_close(be);
		return -ENOMEM;
	}
	c->be = *be;
	term_backend_init(be);
	c->loop = ctx->loop;
	c->in_fd = c->be.in_fd;
	c->out_fd = c->be.out_fd;
	c->shared_fd = c->in_fd >= 0 && c->in_fd == c->out_fd;
	c->in_closed = c->in_fd < 0;
	r = 0;
	if (c->in_fd >= 0)
		r = console_watch_add(c, &c->in_w, c->in_fd,
				      c->shared_fd ? console_inout_cb : console_in_cb);
	if (r == 0 && c->out_fd >= 0 && !c->shared_fd)
		r = console_watch_add(c, &c->out_w, c->out_fd, console_out_cb);
	if (r == 0)
		r = virtio_pci_create(ctx->pci, ctx->mem, ctx->loop, &console_vops, c, &c->vp);
	if (r < 0) {
		console_destroy(c);
		return r;
	}
	/* Input waits for the receive queue: the first notify (or DRIVER_OK) arms EPOLLIN. */
	c->rx_starved = true;
	*ret = c;
	return 0;
}

int console_create_with_fds(const struct dev_ctx *ctx, int in_fd, int out_fd, void **ret)
{
	struct term_backend be;

	term_backend_init(&be);
	be.in_fd = in_fd;
	be.out_fd = out_fd;
	return console_create(ctx, &be, ret); /* be owns no fd: the caller's stay open */
}

struct virtio_pci *console_transport(void *dev)
{
	return ((struct console *)dev)->vp;
}

static void console_pause(void *dev);

/*
 * Snapshot state: the transport, and under "device" "tx_off", the bytes of the held transmit
 * element already written to the output (the element is replayed, its written part is not).
 * The config space is all zeros (no features) and the backend reopens from the config.
 */
static int console_save(void *dev, json_t *state, char *err, size_t errlen)
{
	struct console *c = dev;
	json_t *d;
	int r;

	r = virtio_pci_save(c->vp, state, err, errlen);
	if (r < 0)
		return r;
	d = state_add_object(state, "device");
	virtio_pci_lock(c->vp);
	r = d ? state_set_u32(d, "tx_off", c->tx_held ? (uint32_t)c->tx_off : c->tx_replay_off)
	      : -ENOMEM;
	virtio_pci_unlock(c->vp);
	if (r < 0)
		snprintf(err, errlen, "virtio-console: out of memory");
	return r;
}

int console_restore(void *dev, const json_t *state, char *err, size_t errlen)
{
	struct console *c = dev;
	const json_t *d;
	uint32_t tx_off;
	char why[160];
	int r;

	r = state_get_object(state, "device", &d, why, sizeof(why));
	if (r == 0)
		r = state_get_u32(d, "tx_off", UINT32_MAX, &tx_off, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "virtio-console: %s", why);
		return r;
	}
	console_pause(c);
	r = virtio_pci_load(c->vp, state, err, errlen);
	if (r < 0)
		return r;
	virtio_pci_lock(c->vp);
	c->tx_replay_off = tx_off;
	virtio_pci_unlock(c->vp);
	return 0;
}

static int console_realize(const struct dev_ctx *ctx, const struct json_t *state, void **ret)
{
	const struct console_config *con = &ctx->cfg->console;
	struct term_backend be;
	void *dev;
	int r;

	if (con->mode == CONSOLE_OFF) {
		*ret = NULL;
		return 0;
	}
	term_backend_init(&be);
	r = term_backend_open(&be, con, "--console", ctx->rebooted, ctx->err, ctx->errlen);
	if (r < 0) {
		term_backend_close(&be);
		return r;
	}
	r = console_create(ctx, &be, &dev);
	if (r == 0 && state) {
		r = console_restore(dev, state, ctx->err, ctx->errlen);
		if (r < 0)
			console_destroy(dev);
	}
	if (r == 0)
		*ret = dev;
	return r;
}

static void console_unrealize(void *dev)
{
	console_destroy(dev);
}

static void console_reset(void *dev)
{
	virtio_pci_reset(console_transport(dev));
}

/* Paused, the device neither takes new buffers (the transport) nor moves bytes through the
 * ones it holds: its backend fds are quiet until resume. */
static void console_pause(void *dev)
{
	struct console *c = dev;

	virtio_pci_pause(c->vp);
	virtio_pci_lock(c->vp);
	c->paused = true;
	console_arm(c);
	virtio_pci_unlock(c->vp);
}

static void console_resume(void *dev)
{
	struct console *c = dev;

	virtio_pci_lock(c->vp);
	c->paused = false;
	console_arm(c);
	virtio_pci_unlock(c->vp);
	virtio_pci_resume(c->vp);
}

static void console_counters(void *dev, dev_counter_fn emit, void *opaque)
{
	struct console *c = dev;

	virtio_pci_lock(c->vp);
	uint64_t tx = c->tx_bytes, rx = c->rx_bytes;
	virtio_pci_unlock(c->vp);
	emit(opaque, "__console", "tx_bytes", tx);
	emit(opaque, "__console", "rx_bytes", rx);
}

static void console_nodes(void *dev, dev_node_fn emit, void *opaque)
{
	emit(opaque, "__console",
	     (int)pci_function_slot(virtio_pci_function(console_transport(dev))));
}

const struct dev_ops console_ops = {
	.name = "virtio-console",
	.realize = console_realize,
	.unrealize = console_unrealize,
	.reset = console_reset,
	.pause = console_pause,
	.resume = console_resume,
	.save = console_save,
	.counters = console_counters,
	.nodes = console_nodes,
};
