/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-rng (src/devices/virtio/rng.c): requests, the per-request bound, its sources. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/virtio/virtio_devices.h"
#include "virtio_harness.h"

#define QSIZE 16
#define BUF   0x40000

struct fx {
	struct vh *h;
	void *dev;
	char path[64];
};

static void write_source(struct fx *x, const void *data, size_t len)
{
	int fd;

	snprintf(x->path, sizeof(x->path), "/tmp/cubicle-test-rng-XXXXXX");
	fd = mkstemp(x->path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	x->h = vh_create(false);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;

	if (x->dev)
		rng_ops.unrealize(x->dev);
	if (x->path[0])
		unlink(x->path);
	vh_destroy(x->h);
	free(x);
	return 0;
}

/* Creates the rng on @src and brings its queue up. */
static void start(struct fx *x, const char *src)
{
	assert_int_equal(rng_create(&x->h->ctx, src, &x->dev), 0);
	vh_attach(x->h, virtio_pci_function(rng_transport(x->dev)), 2);
	assert_true(vh_negotiate(x->h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_setup_queue(x->h, 0, QSIZE);
	vh_driver_ok(x->h);
}

/* Posts one chain (descriptor 0 .. @n-1 already written), serves it, returns the length. */
static uint32_t serve(struct fx *x)
{
	uint16_t used = vh_used_idx(x->h, 0);

	vh_avail(x->h, 0, QSIZE, 0);
	vh_notify(x->h, 0);
	virtio_pci_run_notify(rng_transport(x->dev), 0);
	assert_int_equal(vh_used_idx(x->h, 0), (uint16_t)(used + 1));
	return vh_used_len(x->h, 0, used, QSIZE);
}

static void test_random_bytes(void **state)
{
	struct fx *x = *state;
	bool nonzero = false;

	start(x, "/dev/urandom");
	vh_desc(x->h, 0, 0, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(serve(x), 64);
	for (unsigned i = 0; i < 64; i++)
		nonzero |= x->h->ram[BUF + i] != 0;
	assert_true(nonzero);
	assert_int_equal(virtio_pci_status(rng_transport(x->dev)) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

static void test_read_only_element(void **state)
{
	struct fx *x = *state;

	start(x, "/dev/urandom");
	memset(x->h->ram + BUF, 0x5a, 64);
	vh_desc(x->h, 0, 0, BUF, 64, 0, 0); /* readable only */
	assert_int_equal(serve(x), 0);
	for (unsigned i = 0; i < 64; i++)
		assert_int_equal(x->h->ram[BUF + i], 0x5a);
}

static void test_big_request_capped(void **state)
{
	struct fx *x = *state;

	start(x, "/dev/urandom");
	/* 192 KiB in two descriptors: one request gives RNG_MAX_REQUEST, the driver asks again */
	vh_desc(x->h, 0, 0, BUF, 128 * 1024, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	vh_desc(x->h, 0, 1, BUF + 128 * 1024, 64 * 1024, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(serve(x), RNG_MAX_REQUEST);
}

static void test_file_wraps(void **state)
{
	struct fx *x = *state;

	write_source(x, "0123456789", 10);
	start(x, x->path);
	vh_desc(x->h, 0, 0, BUF, 16, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(serve(x), 10);
	assert_memory_equal(x->h->ram + BUF, "0123456789", 10);
	memset(x->h->ram + BUF, 0, 16);
	assert_int_equal(serve(x), 10); /* from the start again */
	assert_memory_equal(x->h->ram + BUF, "0123456789", 10);
}

static void test_bad_sources(void **state)
{
	struct fx *x = *state;
	void *dev = NULL;

	write_source(x, "", 0);
	assert_int_equal(rng_create(&x->h->ctx, x->path, &dev), -EINVAL); /* empty */
	assert_int_equal(rng_create(&x->h->ctx, "/nonexistent/rng", &dev), -ENOENT);
	assert_int_equal(rng_create(&x->h->ctx, "/tmp", &dev), -EINVAL);
	assert_null(dev);
}

/* ---- snapshot state ---- */

static char *save(void *dev)
{
	return vh_save(&rng_ops, dev);
}

/* Realizes the rng on @h from @text (the state), checks save gives @text back. */
static void *restore(struct vh *h, const char *text)
{
	json_t *o = json_loads(text, 0, NULL);
	void *dev = NULL;
	_cleanup_free_ char *again = NULL;
	char err[256] = "";

	assert_non_null(o);
	h->ctx.err = err;
	h->ctx.errlen = sizeof(err);
	if (rng_ops.realize(&h->ctx, o, &dev) < 0)
		fail_msg("refused: %s", err);
	json_decref(o);
	vh_adopt(h, virtio_pci_function(rng_transport(dev)));
	again = save(dev);
	assert_string_equal(text, again);
	return dev;
}

static void test_state_round_trip(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *saved = NULL;
	struct vh *g;
	void *dev;

	assert_int_equal(rng_ops.realize(&x->h->ctx, NULL, &x->dev), 0);
	vh_attach(x->h, virtio_pci_function(rng_transport(x->dev)), 2);
	assert_true(vh_negotiate(x->h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_setup_queue(x->h, 0, QSIZE);
	vh_driver_ok(x->h);
	vh_desc(x->h, 0, 0, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(serve(x), 64);
	/* one more request posted, not yet served */
	vh_avail(x->h, 0, QSIZE, 0);
	rng_ops.pause(x->dev);
	saved = save(x->dev);

	g = vh_clone(x->h, false);
	dev = restore(g, saved);
	/* paused until resumed */
	virtio_pci_run_notify(rng_transport(dev), 0);
	assert_int_equal(vh_used_idx(g, 0), 1);
	rng_ops.resume(dev);
	virtio_pci_run_notify(rng_transport(dev), 0);
	assert_int_equal(vh_used_idx(g, 0), 2);
	assert_int_equal(vh_used_len(g, 0, 1, QSIZE), 64);
	rng_ops.unrealize(dev);
	vh_destroy(g);
}

/* A request waiting for a slow source is replayed by the restored device. */
static void test_state_waiting_request(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *saved = NULL, *arg = NULL;
	struct vh *h = vh_create(true), *g;
	char err[128];
	void *dev;
	int w;

	snprintf(x->path, sizeof(x->path), "/tmp/cubicle-test-rng-fifo-%d", getpid());
	assert_int_equal(mkfifo(x->path, 0600), 0);
	w = open(x->path, O_RDWR | O_NONBLOCK); /* a writer that writes nothing yet */
	assert_true(w >= 0);
	assert_true(asprintf(&arg, "src=%s", x->path) > 0);
	assert_int_equal(config_parse_rng(&h->cfg, arg, err, sizeof(err)), 0);
	assert_int_equal(rng_ops.realize(&h->ctx, NULL, &dev), 0);
	vh_attach(h, virtio_pci_function(rng_transport(dev)), 2);
	assert_true(vh_negotiate(h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_setup_queue(h, 0, QSIZE);
	vh_driver_ok(h);
	vh_desc(h, 0, 0, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(h, 0, QSIZE, 0);
	vh_notify(h, 0);
	virtio_pci_run_notify(rng_transport(dev), 0);
	assert_int_equal(vh_used_idx(h, 0), 0); /* held, waiting for the source */
	rng_ops.pause(dev);
	saved = save(dev);

	g = vh_clone(h, true);
	assert_int_equal(config_parse_rng(&g->cfg, arg, err, sizeof(err)), 0);
	void *dev2 = restore(g, saved);
	assert_int_equal(write(w, "abcd", 4), 4);
	rng_ops.resume(dev2);
	virtio_pci_run_notify(rng_transport(dev2), 0);
	assert_int_equal(vh_used_idx(g, 0), 1);
	assert_int_equal(vh_used_len(g, 0, 0, QSIZE), 4);
	assert_memory_equal(g->ram + BUF, "abcd", 4);

	rng_ops.unrealize(dev2);
	rng_ops.unrealize(dev);
	close(w);
	vh_destroy(g);
	vh_destroy(h);
}

static void test_state_refused(void **state)
{
	struct fx *x = *state;
	char err[256] = "";
	json_t *o;
	void *dev = NULL;

	assert_int_equal(rng_ops.realize(&x->h->ctx, NULL, &x->dev), 0);
	rng_ops.pause(x->dev);
	_cleanup_free_ char *saved = save(x->dev);
	struct vh *g = vh_create(false);

	g->ctx.err = err;
	g->ctx.errlen = sizeof(err);
	o = vh_edit(saved, "queues/0", "size", NULL);
	assert_int_equal(rng_ops.realize(&g->ctx, o, &dev), -EINVAL);
	assert_null(dev);
	assert_string_equal(err, "virtio-rng: queue 0: field 'size': missing");
	json_decref(o);
	vh_destroy(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_random_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_element, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_request_capped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_wraps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_sources, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_waiting_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
