/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-console (src/devices/virtio/console.c) over pipes: transmit backpressure against a
 * slow reader (nothing lost, nothing reordered), receive pacing by the guest's buffers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "devices/virtio/virtio_devices.h"
#include "util/util.h"
#include "virtio_harness.h"

#define QSIZE	 16
#define RXQ	 0
#define TXQ	 1
#define TX_BUF	 0x40000
#define RX_BUF	 0x80000
#define PIPE_CAP 4096
#define NR_TX	 6
#define TX_LEN	 3000 /* NR_TX * TX_LEN is well past the pipe's capacity */

struct fx {
	struct vh *h;
	void *dev;
	int in[2], out[2];
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	x->h = vh_create(true);
	assert_int_equal(pipe2(x->in, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(pipe2(x->out, O_NONBLOCK | O_CLOEXEC), 0);
	assert_true(fcntl(x->out[1], F_SETPIPE_SZ, PIPE_CAP) >= PIPE_CAP);
	assert_int_equal(console_create_with_fds(&x->h->ctx, x->in[0], x->out[1], &x->dev), 0);
	vh_attach(x->h, virtio_pci_function(console_transport(x->dev)), 3);
	assert_true(vh_negotiate(x->h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_setup_queue(x->h, RXQ, QSIZE);
	vh_setup_queue(x->h, TXQ, QSIZE);
	vh_driver_ok(x->h);
	virtio_pci_run_notify(console_transport(x->dev), RXQ); /* as DRIVER_OK's kicks would */
	virtio_pci_run_notify(console_transport(x->dev), TXQ);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;

	if (x->dev)
		console_ops.unrealize(x->dev);
	close(x->in[0]);
	close(x->in[1]);
	close(x->out[0]);
	close(x->out[1]);
	vh_destroy(x->h);
	free(x);
	return 0;
}

static uint32_t events_of(struct fx *x, int fd)
{
	struct vh_fd *f = vh_find_fd(x->h, fd);

	assert_non_null(f);
	return f->events;
}

static void test_tx_backpressure(void **state)
{
	struct fx *x = *state;
	struct virtio_pci *vp = console_transport(x->dev);
	uint8_t got[NR_TX * TX_LEN];
	size_t have = 0;
	unsigned rounds = 0;

	for (unsigned i = 0; i < NR_TX * TX_LEN; i++)
		x->h->ram[TX_BUF + i] = (uint8_t)(i * 7 + i / 251);
	for (unsigned i = 0; i < NR_TX; i++) {
		vh_desc(x->h, TXQ, i, TX_BUF + (uint64_t)i * TX_LEN, TX_LEN, 0, 0);
		vh_avail(x->h, TXQ, QSIZE, (uint16_t)i);
	}
	vh_notify(x->h, TXQ);
	virtio_pci_run_notify(vp, TXQ);
	/* The pipe took what it holds; the device keeps the element it is in and waits. */
	assert_true(vh_used_idx(x->h, TXQ) < NR_TX);
	assert_true(events_of(x, x->out[1]) & EPOLLOUT);
	/* Another kick changes nothing while the pipe is full. */
	virtio_pci_run_notify(vp, TXQ);
	assert_true(vh_used_idx(x->h, TXQ) < NR_TX);

	/* A slow reader: 1000 bytes at a time, then the loop's EPOLLOUT. */
	while (have < sizeof(got)) {
		ssize_t n = read(x->out[0], got + have, MIN(sizeof(got) - have, 1000));

		assert_true(n > 0);
		have += (size_t)n;
		if (events_of(x, x->out[1]) & EPOLLOUT)
			vh_fire(x->h, x->out[1], EPOLLOUT);
		assert_true(++rounds < 100);
	}
	assert_int_equal(vh_used_idx(x->h, TXQ), NR_TX);
	assert_memory_equal(got, x->h->ram + TX_BUF, sizeof(got));
	assert_false(events_of(x, x->out[1]) & EPOLLOUT);
	for (unsigned i = 0; i < NR_TX; i++)
		assert_int_equal(vh_used_len(x->h, TXQ, i, QSIZE), 0);
	assert_int_equal(virtio_pci_status(vp) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

struct drain_reader {
	int fd;
	uint8_t got[NR_TX * TX_LEN];
	size_t have;
};

/* Reads whatever arrives for up to 2 s (the pipe is non-blocking). */
static void *drain_reader_run(void *arg)
{
	struct drain_reader *r = arg;

	for (unsigned i = 0; i < 2000 && r->have < sizeof(r->got); i++) {
		ssize_t n = read(r->fd, r->got + r->have, sizeof(r->got) - r->have);
		if (n > 0)
			r->have += (size_t)n;
		else
			nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	return NULL;
}

/* The guest's last words: output still waiting for a full pipe when the device is torn down
 * reaches a reader that keeps reading (bounded by the drain time). */
static void test_final_drain_at_teardown(void **state)
{
	struct fx *x = *state;
	struct virtio_pci *vp = console_transport(x->dev);
	struct drain_reader r = { .fd = x->out[0] };
	pthread_t t;

	for (unsigned i = 0; i < NR_TX * TX_LEN; i++)
		x->h->ram[TX_BUF + i] = (uint8_t)(i * 13 + 1);
	for (unsigned i = 0; i < NR_TX; i++) {
		vh_desc(x->h, TXQ, i, TX_BUF + (uint64_t)i * TX_LEN, TX_LEN, 0, 0);
		vh_avail(x->h, TXQ, QSIZE, (uint16_t)i);
	}
	vh_notify(x->h, TXQ);
	virtio_pci_run_notify(vp, TXQ);
	assert_true(vh_used_idx(x->h, TXQ) < NR_TX); /* the pipe is full: output is waiting */

	assert_int_equal(pthread_create(&t, NULL, drain_reader_run, &r), 0);
	console_ops.unrealize(x->dev);
	x->dev = NULL; /* teardown must not unrealize it again */
	pthread_join(t, NULL);
	assert_int_equal(r.have, sizeof(r.got));
	assert_memory_equal(r.got, x->h->ram + TX_BUF, sizeof(r.got));
}

/* Paused, the device is quiet: an element it holds is not written out even when the fd is
 * writable again, and no new one is taken; after resume everything completes, without
 * NEEDS_RESET. */
static void test_tx_held_across_pause(void **state)
{
	struct fx *x = *state;
	struct virtio_pci *vp = console_transport(x->dev);
	uint8_t sink[PIPE_CAP];
	uint16_t used;

	for (unsigned i = 0; i < 3; i++) {
		vh_desc(x->h, TXQ, i, TX_BUF + (uint64_t)i * TX_LEN, TX_LEN, 0, 0);
		vh_avail(x->h, TXQ, QSIZE, (uint16_t)i);
	}
	vh_notify(x->h, TXQ);
	virtio_pci_run_notify(vp, TXQ);
	used = vh_used_idx(x->h, TXQ);
	assert_true(used < 3);
	console_ops.pause(x->dev);
	assert_false(events_of(x, x->out[1]) & EPOLLOUT);
	assert_true(read(x->out[0], sink, sizeof(sink)) > 0);
	vh_fire(x->h, x->out[1], EPOLLOUT); /* a writable event already queued */
	assert_int_equal(vh_used_idx(x->h, TXQ), used);
	assert_int_equal(virtio_pci_status(vp) & VIRTIO_STATUS_NEEDS_RESET, 0);
	console_ops.resume(x->dev);
	while (read(x->out[0], sink, sizeof(sink)) > 0)
		;
	virtio_pci_run_notify(vp, TXQ);
	while (vh_used_idx(x->h, TXQ) < 3) {
		assert_true(read(x->out[0], sink, sizeof(sink)) > 0);
		vh_fire(x->h, x->out[1], EPOLLOUT);
	}
	assert_int_equal(virtio_pci_status(vp) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

static void test_rx_paced_by_buffers(void **state)
{
	struct fx *x = *state;
	struct virtio_pci *vp = console_transport(x->dev);

	/* No receive buffer: input is not read (EPOLLIN off) */
	assert_int_equal(write(x->in[1], "hello", 5), 5);
	if (events_of(x, x->in[0]) & EPOLLIN)
		vh_fire(x->h, x->in[0], EPOLLIN); /* finds no buffer and stops listening */
	assert_false(events_of(x, x->in[0]) & EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 0);

	/* A 3-byte buffer arrives: EPOLLIN again, and the bytes flow in order */
	vh_desc(x->h, RXQ, 0, RX_BUF, 3, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(x->h, RXQ, QSIZE, 0);
	vh_notify(x->h, RXQ);
	virtio_pci_run_notify(vp, RXQ);
	assert_true(events_of(x, x->in[0]) & EPOLLIN);
	vh_fire(x->h, x->in[0], EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 1);
	assert_int_equal(vh_used_len(x->h, RXQ, 0, QSIZE), 3);
	assert_memory_equal(x->h->ram + RX_BUF, "hel", 3);

	vh_desc(x->h, RXQ, 1, RX_BUF + 16, 64, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(x->h, RXQ, QSIZE, 1);
	vh_notify(x->h, RXQ);
	virtio_pci_run_notify(vp, RXQ);
	vh_fire(x->h, x->in[0], EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, RXQ), 2);
	assert_int_equal(vh_used_len(x->h, RXQ, 1, QSIZE), 2);
	assert_memory_equal(x->h->ram + RX_BUF + 16, "lo", 2);

	/* The writer goes away: input closed, the fd leaves the loop */
	close(x->in[1]);
	x->in[1] = -1;
	vh_desc(x->h, RXQ, 2, RX_BUF + 128, 64, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(x->h, RXQ, QSIZE, 2);
	vh_notify(x->h, RXQ);
	virtio_pci_run_notify(vp, RXQ);
	vh_fire(x->h, x->in[0], EPOLLIN | EPOLLHUP);
	assert_null(vh_find_fd(x->h, x->in[0]));
}

/* ---- snapshot state ---- */

static char *save(void *dev)
{
	return vh_save(&console_ops, dev);
}

/* Output half written and an input buffer waiting for bytes, both held across a snapshot:
 * the restored console writes the rest of the output (not the part already out) and fills
 * the buffer once input comes. Elements past PIPE_BUF, so that a full pipe takes part of one. */
#define BIG_TX 5000

static void test_state_round_trip(void **state)
{
	struct fx *x = *state;
	struct virtio_pci *vp = console_transport(x->dev);
	_cleanup_free_ char *saved = NULL, *again = NULL;
	uint8_t got[2 * BIG_TX];
	int in[2], out[2];
	char err[200];
	json_t *o;
	void *dev;
	struct vh *g;
	size_t have = 0;

	for (unsigned i = 0; i < 2 * BIG_TX; i++)
		x->h->ram[TX_BUF + i] = (uint8_t)(i * 11 + 3);
	for (unsigned i = 0; i < 2; i++) {
		vh_desc(x->h, TXQ, i, TX_BUF + (uint64_t)i * BIG_TX, BIG_TX, 0, 0);
		vh_avail(x->h, TXQ, QSIZE, (uint16_t)i);
	}
	vh_notify(x->h, TXQ);
	virtio_pci_run_notify(vp, TXQ);
	assert_int_equal(vh_used_idx(x->h, TXQ), 0); /* the first is partly out */
	vh_desc(x->h, RXQ, 0, RX_BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(x->h, RXQ, QSIZE, 0);
	vh_notify(x->h, RXQ);
	virtio_pci_run_notify(vp, RXQ);
	vh_fire(x->h, x->in[0], EPOLLIN); /* nothing to read: the buffer is held */
	assert_int_equal(vh_used_idx(x->h, RXQ), 0);
	console_ops.pause(x->dev);
	saved = save(x->dev);
	o = json_loads(saved, 0, NULL);
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(o, "device"), "tx_off")),
		PIPE_CAP);

	g = vh_clone(x->h, true);
	assert_int_equal(pipe2(in, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(console_create_with_fds(&g->ctx, in[0], out[1], &dev), 0);
	assert_int_equal(console_restore(dev, o, err, sizeof(err)), 0);
	json_decref(o);
	vh_adopt(g, virtio_pci_function(console_transport(dev)));
	again = save(dev);
	assert_string_equal(saved, again);

	console_ops.resume(dev);
	virtio_pci_run_notify(console_transport(dev), TXQ);
	virtio_pci_run_notify(console_transport(dev), RXQ);
	assert_int_equal(vh_used_idx(g, TXQ), 2);
	while (have < sizeof(got)) {
		ssize_t n = read(out[0], got + have, sizeof(got) - have);

		if (n <= 0)
			break;
		have += (size_t)n;
	}
	assert_int_equal(have, 2 * BIG_TX - PIPE_CAP);
	assert_memory_equal(got, g->ram + TX_BUF + PIPE_CAP, have);
	assert_int_equal(write(in[1], "hi", 2), 2);
	vh_fire(g, in[0], EPOLLIN);
	assert_int_equal(vh_used_idx(g, RXQ), 1);
	assert_memory_equal(g->ram + RX_BUF, "hi", 2);

	console_ops.unrealize(dev);
	for (unsigned i = 0; i < 2; i++) {
		close(in[i]);
		close(out[i]);
	}
	vh_destroy(g);
}

static void test_state_refused(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *saved = NULL;
	const char *edits[][3] = {
		{ "", "device", "virtio-console: field 'device': missing" },
		{ "device", "tx_off", "virtio-console: field 'tx_off': missing" },
		{ "queues/1", "desc", "virtio-console: queue 1: field 'desc': missing" },
	};
	char err[200];

	console_ops.pause(x->dev);
	saved = save(x->dev);
	for (size_t i = 0; i < ARRAY_SIZE(edits); i++) {
		struct vh *g = vh_clone(x->h, true);
		json_t *o = vh_edit(saved, edits[i][0], edits[i][1], NULL);
		void *dev;

		assert_int_equal(console_create_with_fds(&g->ctx, -1, -1, &dev), 0);
		assert_int_equal(console_restore(dev, o, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, edits[i][2]);
		json_decref(o);
		console_ops.unrealize(dev);
		vh_destroy(g);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tx_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_final_drain_at_teardown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_held_across_pause, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_paced_by_buffers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
