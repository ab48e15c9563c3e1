/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-pmem (src/devices/virtio/pmem.c): the file's mapping placed through dev_ctx.map_ram,
 * config space {start, size}, FLUSH (asynchronous on the I/O engine, in order, shared syncs,
 * across a reset and a pause), bad requests, discard_writes, the file and size checks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/virtio/virtio_devices.h"
#include "virtio_harness.h"
#include "vdev_state_harness.h"

#define QSIZE	 16
#define REQ	 0x40000
#define RESP	 0x40100
#define MB2	 (2ULL << 20)
#define FAKE_GPA 0x1000000000ULL

struct fx {
	struct vh *h;
	void *dev;
	char path[64];
	char dir[64];
	struct pmem_config pc;
	/* the fake map_ram */
	unsigned maps, unmaps;
	void *host;
	uint64_t size, align, gpa, unmapped_gpa;
	uint64_t next_gpa; /* 0: FAKE_GPA */
	int map_result;
};

static int fake_map(void *opaque, void *host, uint64_t size, uint64_t align, bool ro,
		    uint64_t *ret_gpa)
{
	struct fx *x = opaque;

	(void)ro;
	if (x->map_result)
		return x->map_result;
	x->maps++;
	x->host = host;
	x->size = size;
	x->align = align;
	x->gpa = x->next_gpa ? x->next_gpa : FAKE_GPA;
	*ret_gpa = x->gpa;
	return 0;
}

static void fake_unmap(void *opaque, uint64_t gpa)
{
	struct fx *x = opaque;

	x->unmaps++;
	x->unmapped_gpa = gpa;
}

/* A file of @len bytes, each byte 0x5a. */
static void make_file(struct fx *x, uint64_t len)
{
	static uint8_t chunk[4096];
	int fd;

	memset(chunk, 0x5a, sizeof(chunk));
	snprintf(x->path, sizeof(x->path), "/tmp/cubicle-test-pmem-XXXXXX");
	fd = mkstemp(x->path);
	assert_true(fd >= 0);
	for (uint64_t off = 0; off < len; off += sizeof(chunk))
		assert_int_equal(write(fd, chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
	close(fd);
	x->pc.file = x->path;
}

static int setup_with(void **state, bool with_loop)
{
	struct fx *x = calloc(1, sizeof(*x));
	static char err[256];

	assert_non_null(x);
	x->h = vh_create(with_loop);
	x->h->ctx.map_ram = fake_map;
	x->h->ctx.unmap_ram = fake_unmap;
	x->h->ctx.ram_opaque = x;
	err[0] = '\0';
	x->h->ctx.err = err;
	x->h->ctx.errlen = sizeof(err);
	*state = x;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, false);
}

/* With the fake loop: the engine's completions come only when the test fires its fd. */
static int setup_loop(void **state)
{
	return setup_with(state, true);
}

/* The same, on the worker-pool engine (the fallback when io_uring is missing). */
static int setup_loop_pool(void **state)
{
	setenv("CUBICLE_BLK_ENGINE", "pool", 1);
	return setup_with(state, true);
}

static int teardown(void **state)
{
	struct fx *x = *state;

	pmem_destroy(x->dev);
	if (x->path[0])
		unlink(x->path);
	if (x->dir[0])
		rmdir(x->dir);
	vh_destroy(x->h);
	free(x);
	unsetenv("CUBICLE_BLK_ENGINE");
	return 0;
}

/* The driver brings up @x->dev (attached) with its queue. */
static void driver_start(struct fx *x)
{
	assert_true(vh_negotiate(x->h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_setup_queue(x->h, 0, QSIZE);
	vh_driver_ok(x->h);
}

static void start(struct fx *x)
{
	assert_int_equal(pmem_create(&x->h->ctx, &x->pc, &x->dev), 0);
	vh_attach(x->h, virtio_pci_function(pmem_transport(x->dev)), 2);
	driver_start(x);
}

/* Posts {REQ: out @out_len bytes, RESP: in @in_len} (either may be 0: left out). */
static uint32_t request(struct fx *x, uint32_t type, uint32_t out_len, uint32_t in_len)
{
	uint16_t used = vh_used_idx(x->h, 0);
	unsigned d = 0;

	memcpy(x->h->ram + REQ, &type, sizeof(type));
	memset(x->h->ram + RESP, 0xff, 4);
	if (out_len) {
		vh_desc(x->h, 0, d, REQ, out_len, in_len ? VIRTQ_DESC_F_NEXT : 0, 1);
		d++;
	}
	if (in_len)
		vh_desc(x->h, 0, d, RESP, in_len, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(x->h, 0, QSIZE, 0);
	vh_notify(x->h, 0);
	virtio_pci_run_notify(pmem_transport(x->dev), 0);
	pmem_drain(x->dev);
	assert_int_equal(vh_used_idx(x->h, 0), (uint16_t)(used + 1));
	return vh_used_len(x->h, 0, used, QSIZE);
}

static uint32_t resp(struct fx *x)
{
	return vh_get32(x->h, RESP);
}

/*
 * Asynchronous flushes: requests posted as chains 2 slot, 2 slot + 1 (type at REQ + 16 slot,
 * answer at RESP + 16 slot); the loop's part run by hand.
 */
static void post(struct fx *x, unsigned slot, uint32_t type)
{
	uint64_t req = REQ + 16ULL * slot, rsp = RESP + 16ULL * slot;

	memcpy(x->h->ram + req, &type, sizeof(type));
	memset(x->h->ram + rsp, 0xff, 4);
	vh_desc(x->h, 0, 2 * slot, req, 4, VIRTQ_DESC_F_NEXT, (uint16_t)(2 * slot + 1));
	vh_desc(x->h, 0, 2 * slot + 1, rsp, 4, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(x->h, 0, QSIZE, (uint16_t)(2 * slot));
}

static void run_queue(struct fx *x)
{
	vh_notify(x->h, 0);
	virtio_pci_run_notify(pmem_transport(x->dev), 0);
}

static uint32_t slot_resp(struct fx *x, unsigned slot)
{
	return vh_get32(x->h, RESP + 16ULL * slot);
}

/* The descriptor head of used entry @n. */
static uint32_t used_id(struct fx *x, unsigned n)
{
	return vh_get32(x->h, VH_USED + 4 + 8ULL * (n % QSIZE));
}

/* The fake loop's entry for the device's engine (the only fd it registers itself). */
static struct vh_fd *engine_fd(struct fx *x)
{
	for (unsigned i = 0; i < VH_MAX_FDS; i++)
		if (x->h->fds[i].used && x->h->fds[i].opaque == x->dev)
			return &x->h->fds[i];
	fail_msg("virtio-pmem registered no engine fd");
	return NULL;
}

/* Whether the engine has a completion ready (waiting up to @ms), as epoll would see it. */
static bool engine_ready(struct fx *x, int ms)
{
	struct pollfd p = { .fd = engine_fd(x)->fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

/* Runs the loop's engine callback until the used index reaches @idx (10 s at most). */
static void wait_used(struct fx *x, uint16_t idx)
{
	for (unsigned i = 0; i < 100 && vh_used_idx(x->h, 0) != idx; i++)
		if (engine_ready(x, 100))
			vh_fire(x->h, engine_fd(x)->fd, EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, 0), idx);
}

static uint8_t file_byte(struct fx *x, off_t off)
{
	uint8_t b = 0;
	int fd = open(x->path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, off), 1);
	close(fd);
	return b;
}

/*
 * A flush is answered from the engine's completion, never on the notify; the flushes popped
 * while a sync is in flight wait for the next one, which covers them all, in order.
 */
static void test_flush_async(void **state)
{
	struct fx *x = *state;
	struct pmem_counters c;

	make_file(x, MB2);
	start(x);
	((uint8_t *)x->host)[100] = 0x11;
	post(x, 0, 0);
	run_queue(x);
	assert_int_equal(vh_used_idx(x->h, 0), 0); /* the loop did not wait for the disk */
	((uint8_t *)x->host)[200] = 0x22;
	post(x, 1, 0);
	post(x, 2, 7); /* refused, but behind a flush: answered in its turn */
	post(x, 3, 0);
	run_queue(x);
	assert_int_equal(vh_used_idx(x->h, 0), 0);
	pmem_get_counters(x->dev, &c);
	assert_int_equal(c.flushes, 3);
	assert_int_equal(c.bad_requests, 1);
	/* the first sync answers the first flush only */
	assert_true(engine_ready(x, 10000));
	vh_fire(x->h, engine_fd(x)->fd, EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, 0), 1);
	assert_int_equal(used_id(x, 0), 0);
	assert_int_equal(slot_resp(x, 0), 0);
	assert_int_equal(vh_used_len(x->h, 0, 0, QSIZE), 4);
	assert_int_equal(slot_resp(x, 1), 0xffffffff);
	assert_int_equal(file_byte(x, 100), 0x11);
	/* one more sync for the three behind it, answered in pop order */
	wait_used(x, 4);
	for (unsigned i = 1; i < 4; i++)
		assert_int_equal(used_id(x, i), 2 * i);
	assert_int_equal(slot_resp(x, 1), 0);
	assert_int_equal(slot_resp(x, 2), 1);
	assert_int_equal(slot_resp(x, 3), 0);
	assert_int_equal(file_byte(x, 200), 0x22);
	assert_false(engine_ready(x, 0)); /* two syncs for three flushes, none left */
	/* a refused request with nothing ahead of it is answered at once */
	post(x, 4, 9);
	run_queue(x);
	assert_int_equal(vh_used_idx(x->h, 0), 5);
	assert_int_equal(slot_resp(x, 4), 1);
	assert_false(engine_ready(x, 0));
}

/*
 * A driver that re-posts heads while the device holds them: the device holds at most
 * PMEM_QUEUE_SIZE requests, and the rest are popped as syncs answer them.
 */
static void test_flush_backlog_bounded(void **state)
{
	struct fx *x = *state;
	struct pmem_counters c;
	unsigned rounds = PMEM_QUEUE_SIZE / QSIZE + 1;

	make_file(x, MB2);
	start(x);
	for (unsigned r = 0; r < rounds; r++) {
		for (unsigned i = 0; i < QSIZE / 2; i++) {
			post(x, i, 0);
			post(x, i, 0);
		}
		run_queue(x);
	}
	assert_int_equal(vh_used_idx(x->h, 0), 0);
	pmem_get_counters(x->dev, &c);
	assert_int_equal(c.flushes, PMEM_QUEUE_SIZE);
	wait_used(x, (uint16_t)(rounds * QSIZE));
	pmem_get_counters(x->dev, &c);
	assert_int_equal(c.flushes, rounds * QSIZE);
	assert_int_equal(c.flush_errors, 0);
	assert_int_equal(virtio_pci_status(pmem_transport(x->dev)) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

/*
 * The driver resets the device with a flush in flight: the sync lands on an empty ring (its
 * request went with the queue), and a flush of the new queue waits for it, then for its own.
 */
static void test_reset_with_flush_in_flight(void **state)
{
	struct fx *x = *state;

	make_file(x, MB2);
	start(x);
	post(x, 0, 0);
	run_queue(x);
	vh_wr(x->h, VIRTIO_PCI_COMMON_STATUS, 0, 1); /* the driver's reset, on a vCPU thread */
	assert_int_equal(vh_status(x->h), 0);
	/* the driver starts again on fresh rings */
	memset(x->h->ram + VH_AVAIL, 0, 4);
	x->h->avail_idx[0] = 0;
	driver_start(x);
	((uint8_t *)x->host)[300] = 0x33;
	post(x, 1, 0);
	run_queue(x);
	assert_true(engine_ready(x, 10000));
	vh_fire(x->h, engine_fd(x)->fd, EPOLLIN);
	assert_int_equal(vh_used_idx(x->h, 0), 0); /* the old sync answered nobody */
	assert_int_equal(slot_resp(x, 0), 0xffffffff);
	wait_used(x, 1);
	assert_int_equal(used_id(x, 0), 2);
	assert_int_equal(slot_resp(x, 1), 0);
	assert_int_equal(file_byte(x, 300), 0x33);
	/* a reset with the ring holding requests, then the device torn down with a sync in
	 * flight: destroy waits for it */
	post(x, 2, 0);
	run_queue(x);
	virtio_pci_reset(pmem_transport(x->dev));
	pmem_destroy(x->dev);
	x->dev = NULL;
}

/*
 * pmem_ops.pause with a flush in flight returns with it answered (a paused device holds
 * nothing: save succeeds); a flush posted while paused waits for resume.
 */
static void test_pause_with_flush_in_flight(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *saved = NULL;
	void *set = NULL;

	make_file(x, MB2);
	x->h->cfg.pmems[0].file = strdup(x->pc.file);
	assert_non_null(x->h->cfg.pmems[0].file);
	x->h->cfg.num_pmems = 1;
	assert_int_equal(pmem_ops.realize(&x->h->ctx, NULL, &set), 0);
	x->dev = pmem_set_device(set, 0);
	assert_non_null(x->dev);
	assert_null(pmem_set_device(set, 1));
	vh_attach(x->h, virtio_pci_function(pmem_transport(x->dev)), 2);
	driver_start(x);
	((uint8_t *)x->host)[400] = 0x44;
	post(x, 0, 0);
	run_queue(x);
	assert_int_equal(vh_used_idx(x->h, 0), 0);
	pmem_ops.pause(set);
	assert_int_equal(vh_used_idx(x->h, 0), 1);
	assert_int_equal(slot_resp(x, 0), 0);
	assert_int_equal(file_byte(x, 400), 0x44);
	saved = vs_save(pmem_ops.save, set);
	assert_non_null(strstr(saved, "\"last_avail_idx\":1,"));
	post(x, 1, 0);
	run_queue(x);
	assert_int_equal(vh_used_idx(x->h, 0), 1); /* paused: not even popped */
	pmem_ops.resume(set);
	virtio_pci_run_notify(pmem_transport(x->dev), 0);
	wait_used(x, 2);
	assert_int_equal(slot_resp(x, 1), 0);
	x->dev = NULL;
	pmem_ops.unrealize(set);
}

/* The answer split over two 2-byte buffers lands in both. */
static void test_answer_split(void **state)
{
	struct fx *x = *state;
	uint32_t flush = 0;

	make_file(x, MB2);
	start(x);
	memcpy(x->h->ram + REQ, &flush, sizeof(flush));
	memset(x->h->ram + RESP, 0xff, 8);
	vh_desc(x->h, 0, 0, REQ, 4, VIRTQ_DESC_F_NEXT, 1);
	vh_desc(x->h, 0, 1, RESP, 2, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
	vh_desc(x->h, 0, 2, RESP + 4, 2, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(x->h, 0, QSIZE, 0);
	run_queue(x);
	pmem_drain(x->dev);
	assert_int_equal(vh_used_idx(x->h, 0), 1);
	assert_int_equal(vh_used_len(x->h, 0, 0, QSIZE), 4);
	assert_int_equal(vh_get16(x->h, RESP), 0);
	assert_int_equal(vh_get16(x->h, RESP + 4), 0);
	assert_int_equal(vh_get16(x->h, RESP + 2), 0xffff);
}

static void test_config_and_mapping(void **state)
{
	struct fx *x = *state;
	uint64_t gpa, size;

	make_file(x, 2 * MB2);
	start(x);
	assert_int_equal(x->maps, 1);
	assert_int_equal(x->size, 2 * MB2);
	assert_int_equal(x->align, PMEM_GPA_ALIGN);
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF, 8), FAKE_GPA);
	assert_int_equal(vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF + 8, 8), 2 * MB2);
	pmem_region(x->dev, &gpa, &size);
	assert_int_equal(gpa, FAKE_GPA);
	assert_int_equal(size, 2 * MB2);
	/* the guest sees the file through the mapping */
	assert_int_equal(((uint8_t *)x->host)[12345], 0x5a);
	pmem_destroy(x->dev);
	x->dev = NULL;
	assert_int_equal(x->unmaps, 1);
	assert_int_equal(x->unmapped_gpa, FAKE_GPA);
}

static void test_flush_reaches_file(void **state)
{
	struct fx *x = *state;
	struct pmem_counters c;
	uint8_t b = 0;
	int fd;

	make_file(x, MB2);
	start(x);
	((uint8_t *)x->host)[100] = 0x11;
	assert_int_equal(request(x, 0, 4, 4), 4);
	assert_int_equal(resp(x), 0);
	fd = open(x->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, 100), 1);
	close(fd);
	assert_int_equal(b, 0x11);
	pmem_get_counters(x->dev, &c);
	assert_int_equal(c.flushes, 1);
	assert_int_equal(c.bad_requests, 0);
}

static void test_bad_requests(void **state)
{
	struct fx *x = *state;
	struct pmem_counters c;

	make_file(x, MB2);
	start(x);
	assert_int_equal(request(x, 7, 4, 4), 4); /* unknown type */
	assert_int_equal(resp(x), 1);
	assert_int_equal(request(x, 0, 2, 4), 4); /* header too short */
	assert_int_equal(resp(x), 1);
	assert_int_equal(request(x, 0, 0, 4), 4); /* no header at all */
	assert_int_equal(resp(x), 1);
	assert_int_equal(request(x, 0, 4, 2), 0); /* nowhere to answer */
	assert_int_equal(vh_get16(x->h, RESP), 0xffff);
	assert_int_equal(request(x, 0, 4, 0), 0);
	pmem_get_counters(x->dev, &c);
	assert_int_equal(c.bad_requests, 5);
	assert_int_equal(c.flushes, 0);
	/* the device still serves */
	assert_int_equal(request(x, 0, 4, 4), 4);
	assert_int_equal(resp(x), 0);
	assert_int_equal(virtio_pci_status(pmem_transport(x->dev)) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

static void test_discard_writes(void **state)
{
	struct fx *x = *state;
	uint8_t b = 0;
	int fd;

	make_file(x, MB2);
	x->pc.discard_writes = true;
	start(x);
	memset(x->host, 0x77, MB2);
	assert_int_equal(request(x, 0, 4, 4), 4);
	assert_int_equal(resp(x), 0);
	fd = open(x->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, 4096), 1);
	close(fd);
	assert_int_equal(b, 0x5a);
}

static void expect_error(struct fx *x, int err, const char *msg)
{
	x->h->ctx.err[0] = '\0';
	assert_int_equal(pmem_create(&x->h->ctx, &x->pc, &x->dev), err);
	assert_null(x->dev);
	assert_non_null(strstr(x->h->ctx.err, msg));
	assert_int_equal(x->maps, x->unmaps);
}

static void test_file_errors(void **state)
{
	struct fx *x = *state;
	struct stat st;

	x->pc.file = "/nonexistent/cubicle.img";
	expect_error(x, -ENOENT, "--pmem: cannot open '/nonexistent/cubicle.img'");
	make_file(x, 4096);
	expect_error(x, -EINVAL, "is 4096 bytes: the size must be a non-zero multiple of 2 MiB");
	x->pc.size = 3 << 20;
	expect_error(x, -EINVAL, "multiple of 2 MiB");
	/* shorter than size=: extended, unless discard_writes=on */
	x->pc.size = MB2;
	x->pc.discard_writes = true;
	expect_error(x, -EINVAL, "shorter than size= and discard_writes=on cannot extend it");
	x->pc.discard_writes = false;
	assert_int_equal(pmem_create(&x->h->ctx, &x->pc, &x->dev), 0);
	assert_int_equal(stat(x->path, &st), 0);
	assert_int_equal(st.st_size, MB2);
	pmem_destroy(x->dev);
	x->dev = NULL;
	/* no room in guest memory */
	x->map_result = -ENOSPC;
	expect_error(x, -ENOSPC, "cannot place");
	x->map_result = 0;
	/* a directory: size= needed, then an unnamed file */
	snprintf(x->dir, sizeof(x->dir), "/tmp/cubicle-test-pmemdir-XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	x->pc.file = x->dir;
	x->pc.size = 0;
	expect_error(x, -EINVAL, "is a directory: size= is required");
	x->pc.size = MB2;
	assert_int_equal(pmem_create(&x->h->ctx, &x->pc, &x->dev), 0);
}

/* ---- snapshot ---- */

/* A machine for a restore: @x's RAM, its fake map_ram, and a config with @x's one --pmem. */
static struct vh *clone_machine(struct fx *x, char *err, size_t errlen)
{
	struct vh *h = vh_clone(x->h, false);
	struct pmem_config *pc = &h->cfg.pmems[0];

	h->ctx.map_ram = fake_map;
	h->ctx.unmap_ram = fake_unmap;
	h->ctx.ram_opaque = x;
	h->ctx.err = err;
	h->ctx.errlen = errlen;
	*pc = x->pc;
	pc->file = strdup(x->pc.file);
	pc->id = strdup("_pmem0");
	assert_true(pc->file && pc->id);
	h->cfg.num_pmems = 1;
	err[0] = 0;
	return h;
}

/* {"pmems": [the one device's state]}, as pmem_ops.save writes it. */
static json_t *save_all(struct fx *x)
{
	json_t *o = json_object(), *a = json_array(), *inst = json_object();
	char err[256] = "";

	assert_true(o && a && inst);
	assert_int_equal(pmem_state_save(x->dev, inst, err, sizeof(err)), 0);
	json_array_append_new(a, inst);
	json_object_set_new(o, "pmems", a);
	return o;
}

static void test_state_round_trip(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *s1 = NULL, *s2 = NULL;
	json_t *saved;
	struct vh *h;
	void *set = NULL, *dev = NULL;
	char err[256];

	make_file(x, MB2);
	start(x);
	assert_int_equal(request(x, 0, 4, 4), 4);
	virtio_pci_pause(pmem_transport(x->dev));
	saved = save_all(x);
	s1 = vh_dump(saved);

	/* the dev_ops entry: realize from the state, save again */
	h = clone_machine(x, err, sizeof(err));
	assert_int_equal(pmem_ops.realize(&h->ctx, saved, &set), 0);
	s2 = vs_save(pmem_ops.save, set);
	assert_string_equal(s1, s2);
	pmem_ops.resume(set);
	pmem_ops.unrealize(set);
	vh_destroy(h);

	/* one instance restored keeps serving: the next request is the ring's next */
	h = clone_machine(x, err, sizeof(err));
	assert_int_equal(pmem_create(&h->ctx, &x->pc, &dev), 0);
	assert_int_equal(pmem_state_load(dev, json_array_get(json_object_get(saved, "pmems"), 0),
					 err, sizeof(err)),
			 0);
	json_decref(saved);
	pmem_destroy(x->dev);
	vh_destroy(x->h);
	x->h = h;
	x->dev = dev;
	vh_adopt(h, virtio_pci_function(pmem_transport(dev)));
	assert_int_equal(vh_rd(h, VIRTIO_PCI_DEVCFG_OFF, 8), FAKE_GPA);
	virtio_pci_resume(pmem_transport(dev));
	assert_int_equal(vh_used_idx(h, 0), 1);
	assert_int_equal(request(x, 0, 4, 4), 4);
	assert_int_equal(resp(x), 0);
}

/* pmem_ops.realize of @text edited (vs_load) on a clone (vs_restore_fn); the restored devices
 * are not kept. */
static int restore_edit(void *fx, const char *text, const char *path, const char *key, json_t *v,
			char *err, size_t errlen)
{
	struct fx *x = fx;
	json_t *o = vs_load(text, path, key, v);
	struct vh *h = clone_machine(x, err, errlen);
	void *set = (void *)1;
	int r = pmem_ops.realize(&h->ctx, o, &set);

	json_decref(o);
	if (r == 0)
		pmem_ops.unrealize(set);
	else
		assert_true(r == -EINVAL && err[0]);
	vh_destroy(h);
	return r;
}

static void test_state_refused(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *saved = NULL;
	json_t *o, *a;

	make_file(x, 2 * MB2);
	start(x);
	virtio_pci_pause(pmem_transport(x->dev));
	o = save_all(x);
	saved = vh_dump(o);
	/* another number of devices than the config's */
	a = json_object_get(o, "pmems");
	json_array_append(a, json_array_get(a, 0));
	vs_expect_refused(restore_edit, x, saved, "", "pmems", json_deep_copy(a),
			  "'pmems': 2 saved");
	vs_expect_refused(restore_edit, x, saved, "", "pmems", json_array(), "'pmems': 0 saved");
	vs_expect_refused(restore_edit, x, saved, "", "pmems", json_object(), "'pmems'");
	vs_expect_refused(restore_edit, x, saved, "", "pmems", NULL, "'pmems'");
	json_decref(o);
	/* the device's own fields */
	vs_expect_refused(restore_edit, x, saved, "pmems/0/device", "size", json_string("0x200000"),
			  "'size'");
	vs_expect_refused(restore_edit, x, saved, "pmems/0/device", "gpa",
			  json_string("0x1000200000"), "'gpa'");
	vs_expect_refused(restore_edit, x, saved, "pmems/0/device", "gpa", json_integer(7),
			  "'gpa'");
	vs_expect_refused(restore_edit, x, saved, "pmems/0/device", "discard_writes", json_true(),
			  "'discard_writes'");
	vs_expect_refused(restore_edit, x, saved, "pmems/0/device", "size", NULL, "'size'");
	vs_expect_refused(restore_edit, x, saved, "pmems/0", "device", NULL, "'device'");
	/* the restored VM placed the device elsewhere: the guest's page tables say otherwise */
	x->next_gpa = FAKE_GPA + PMEM_GPA_ALIGN;
	vs_expect_refused(restore_edit, x, saved, "", NULL, NULL,
			  "the guest has the device at 0x1000000000");
	x->next_gpa = 0;
	assert_int_equal(x->maps, x->unmaps + 1); /* only the original's mapping is left */
	/* a snapshot with a pmem, a config without */
	{
		char err[256];
		struct vh *h = clone_machine(x, err, sizeof(err));
		void *set = (void *)1;

		o = json_loads(saved, 0, NULL);
		h->cfg.num_pmems = 0;
		assert_int_equal(pmem_ops.realize(&h->ctx, o, &set), -EINVAL);
		assert_non_null(strstr(err, "1 saved, the config has 0"));
		h->cfg.num_pmems = 1; /* its strings are freed with it */
		json_decref(o);
		vh_destroy(h);
	}
}

/* One byte of the saved state changed at a time: loaded or refused, never a crash. */
static void test_state_damaged(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *saved = NULL;
	json_t *o;

	make_file(x, 2 * MB2);
	start(x);
	virtio_pci_pause(pmem_transport(x->dev));
	o = save_all(x);
	saved = vh_dump(o);
	json_decref(o);
	assert_true(vs_damage(restore_edit, x, saved) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config_and_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_reaches_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_async, setup_loop, teardown),
		cmocka_unit_test_setup_teardown(test_flush_async, setup_loop_pool, teardown),
		cmocka_unit_test_setup_teardown(test_flush_backlog_bounded, setup_loop, teardown),
		cmocka_unit_test_setup_teardown(test_reset_with_flush_in_flight, setup_loop,
						teardown),
		cmocka_unit_test_setup_teardown(test_reset_with_flush_in_flight, setup_loop_pool,
						teardown),
		cmocka_unit_test_setup_teardown(test_pause_with_flush_in_flight, setup_loop,
						teardown),
		cmocka_unit_test_setup_teardown(test_answer_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_damaged, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
