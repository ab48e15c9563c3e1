/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-rng (virtio 1.2 §5.4): one request queue; each element's writable part gets up to
 * RNG_MAX_REQUEST bytes from the entropy source (--rng src=, default /dev/urandom). An element
 * with no writable part is completed with 0 bytes written and its buffers are never touched.
 *
 * A source that would block (a FIFO, a slow hardware rng) keeps the element it is serving and
 * waits for EPOLLIN on the loop (one that cannot be polled, like /dev/urandom, never blocks); a regular file is read from its start again at EOF. At most
 * RNG_QUEUE_SIZE requests are served per wake-up, then the device re-queues itself so that
 * a driver refilling the ring forever cannot starve the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "devices/virtio/virtio_devices.h"
#include "pci/pci.h"
#include "util/log.h"
#include "util/state.h"
#include "util/util.h"
#include "virtio/virtio.h"

#define PCI_CLASS_OTHERS 0xff0000

struct rng {
	struct virtio_pci *vp;
	const struct dev_loop *loop;
	int fd;
	bool regular;
	bool fd_watched; /* fd registered with the loop */
	bool waiting;	 /* EPOLLIN armed: the held element waits for the source */
	bool have_elem;	 /* elem popped, not yet pushed */
	bool paused;	 /* vm.pause: the held element is not filled until resume */
	struct log_ratelimit rl;
	uint64_t requests, bytes; /* vm.counters */
	struct virtq_elem elem;
	uint8_t buf[RNG_MAX_REQUEST];
};

static void rng_wait(struct rng *r, bool wait)
{
	if (!r->fd_watched || r->waiting == wait)
		return;
	if (r->loop->mod_fd(r->loop->loop, r->fd, wait ? EPOLLIN : 0) == 0)
		r->waiting = wait;
}

/* Bytes read into r->buf for @len wanted, 0 on a dead source, -EAGAIN when it would block. */
static ssize_t rng_read(struct rng *r, size_t len)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		ssize_t n = read(r->fd, r->buf, len);

		if (n > 0)
			return n;
		if (n < 0 && errno == EINTR) {
			attempt--;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -EAGAIN;
		if (n == 0 && r->regular && lseek(r->fd, 0, SEEK_SET) == 0)
			continue; /* wrap around at EOF (once: a file truncated to 0 stays dead) */
		log_ratelimited(&r->rl, LOG_WARN, "virtio-rng: source read failed: %s",
				n < 0 ? strerror(errno) : "end of file");
		return 0;
	}
	return 0;
}

/* The queue's work, with the transport's lock held (loop thread). */
static void rng_process(struct rng *r)
{
	unsigned served = 0;

	while (served < RNG_QUEUE_SIZE) {
		uint32_t written = 0;

		if (!r->have_elem) {
			if (virtio_pci_pop(r->vp, 0, &r->elem) <= 0)
				break;
			r->have_elem = true;
		}
		if (r->elem.in_len) {
			ssize_t n = rng_read(r, MIN((size_t)r->elem.in_len, sizeof(r->buf)));

			if (n == -EAGAIN && r->fd_watched) {
				rng_wait(r, true);
				break;
			}
			if (n < 0)
				n = 0; /* a source that blocks and cannot be polled: ask again */
			written = (uint32_t)virtq_elem_write(&r->elem, 0, r->buf, (size_t)n);
		}
		r->have_elem = false;
		r->requests++;
		r->bytes += written;
		if (virtio_pci_push(r->vp, 0, &r->elem, written) < 0)
			break;
		served++;
	}
	if (served == RNG_QUEUE_SIZE)
		virtio_pci_kick(r->vp, 0);
	if (!r->have_elem)
		rng_wait(r, false);
	virtio_pci_notify(r->vp, 0);
}

static void rng_queue_notify(void *opaque, unsigned q)
{
	rng_process(opaque);
}

static void rng_source_cb(void *opaque, uint32_t events)
{
	struct rng *r = opaque;

	virtio_pci_lock(r->vp);
	if (r->paused)
		rng_wait(r, false); /* resume kicks the queue, which waits again */
	else
		rng_process(r);
	virtio_pci_unlock(r->vp);
}

static void rng_dev_reset(void *opaque)
{
	struct rng *r = opaque;

	r->have_elem = false; /* its buffers belong to the driver again */
	rng_wait(r, false);
}

/* The element waiting for the source is always the latest pop (virtio.h: held elements). */
static unsigned rng_held(void *opaque, unsigned q)
{
	return ((struct rng *)opaque)->have_elem;
}

static const struct virtio_dev_ops rng_vops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.class_code = PCI_CLASS_OTHERS,
	.num_queues = 1,
	.max_queue_size = RNG_QUEUE_SIZE,
	.queue_notify = rng_queue_notify,
	.reset = rng_dev_reset,
	.held = rng_held,
};

static void rng_destroy(struct rng *r)
{
	if (!r)
		return;
	r->vp = virtio_pci_destroy(r->vp);
	if (r->fd_watched)
		(void)r->loop->del_fd(r->loop->loop, r->fd);
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

/* Opens @src and checks it gives bytes; says what is wrong in @err, naming --rng. */
static int rng_open_source(const char *src, bool *ret_regular, char *err, size_t errlen)
{
	struct stat st;
	uint8_t b;
	ssize_t n;
	int fd, r;

	/* O_NONBLOCK: neither opening a FIFO nor reading a slow device may stall the loop. */
	fd = open(src, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		return error_set(err, errlen, -errno, "--rng: cannot open '%s': %s", src,
				 strerror(errno));
	}
	if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
		close(fd);
		return error_set(err, errlen, -EINVAL, "--rng: '%s' is not a file or device", src);
	}
	if (S_ISREG(st.st_mode)) {
		n = pread(fd, &b, 1, 0);
		if (n == 0) {
			close(fd);
			return error_set(err, errlen, -EINVAL, "--rng: '%s' is empty", src);
		}
	} else {
		n = read(fd, &b, 1);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			n = 1; /* nothing yet, but readable later */
	}
	if (n <= 0) {
		r = error_set(err, errlen, n < 0 ? -errno : -EIO, "--rng: cannot read '%s': %s",
			      src, n < 0 ? strerror(errno) : "end of file");
		close(fd);
		return r;
	}
	*ret_regular = S_ISREG(st.st_mode);
	return fd;
}

int rng_create(const struct dev_ctx *ctx, const char *src, void **ret)
{
	struct rng *r;
	bool regular = false;
	int fd, err;

	if (!ctx->pci || !ctx->mem)
		return -EINVAL;
	fd = rng_open_source(src, &regular, ctx->err, ctx->errlen);
	if (fd < 0)
		return fd;
	r = calloc(1, sizeof(*r));
	if (!r) {
		close(fd);
		return -ENOMEM;
	}
	r->fd = fd;
	r->regular = regular;
	r->loop = ctx->loop;
	r->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(1000000000ULL, 5);
	if (r->loop && !r->regular) {
		/* /dev/urandom cannot be polled (EPERM), and it never blocks either. */
		err = r->loop->add_fd(r->loop->loop, fd, 0, rng_source_cb, r);
		if (err < 0 && err != -EPERM)
			goto fail;
		r->fd_watched = err == 0;
	}
	err = virtio_pci_create(ctx->pci, ctx->mem, ctx->loop, &rng_vops, r, &r->vp);
	if (err < 0)
		goto fail;
	*ret = r;
	return 0;
fail:
	rng_destroy(r);
	return err;
}

struct virtio_pci *rng_transport(void *dev)
{
	return ((struct rng *)dev)->vp;
}

/* Snapshot state: the transport's only (virtio_pci_save); the source reopens from the config
 * and the element waiting for it is replayed. */
static int rng_save(void *dev, json_t *state, char *err, size_t errlen)
{
	return virtio_pci_save(rng_transport(dev), state, err, errlen);
}

static int rng_realize(const struct dev_ctx *ctx, const struct json_t *state, void **ret)
{
	struct rng *r;
	int err;

	err = rng_create(ctx, config_rng_src(ctx->cfg), (void **)&r);
	if (err < 0 || !state) {
		if (err == 0)
			*ret = r;
		return err;
	}
	r->paused = true; /* as after rng_pause(): vm_resume() calls rng_resume() */
	err = virtio_pci_load(r->vp, state, ctx->err, ctx->errlen);
	if (err < 0) {
		rng_destroy(r);
		return err;
	}
	*ret = r;
	return 0;
}

static void rng_unrealize(void *dev)
{
	rng_destroy(dev);
}

static void rng_reset(void *dev)
{
	virtio_pci_reset(rng_transport(dev));
}

static void rng_pause(void *dev)
{
	struct rng *r = dev;

	virtio_pci_pause(r->vp);
	virtio_pci_lock(r->vp);
	r->paused = true;
	rng_wait(r, false);
	virtio_pci_unlock(r->vp);
}

static void rng_resume(void *dev)
{
	struct rng *r = dev;

	virtio_pci_lock(r->vp);
	r->paused = false;
	virtio_pci_unlock(r->vp);
	virtio_pci_resume(r->vp);
}

static void rng_counters(void *dev, dev_counter_fn emit, void *opaque)
{
	struct rng *r = dev;

	virtio_pci_lock(r->vp);
	uint64_t requests = r->requests, bytes = r->bytes;
	virtio_pci_unlock(r->vp);
	emit(opaque, "__rng", "requests", requests);
	emit(opaque, "__rng", "bytes", bytes);
}

static void rng_nodes(void *dev, dev_node_fn emit, void *opaque)
{
	emit(opaque, "__rng", (int)pci_function_slot(virtio_pci_function(rng_transport(dev))));
}

const struct dev_ops rng_ops = {
	.name = "virtio-rng",
	.realize = rng_realize,
	.unrealize = rng_unrealize,
	.reset = rng_reset,
	.pause = rng_pause,
	.resume = rng_resume,
	.save = rng_save,
	.counters = rng_counters,
	.nodes = rng_nodes,
};
