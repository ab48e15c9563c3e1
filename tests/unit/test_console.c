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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tx_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_final_drain_at_teardown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_held_across_pause, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_paced_by_buffers, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
