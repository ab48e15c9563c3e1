/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The block I/O engine (io.h): io_uring when available, else a small worker pool.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#ifdef HAVE_LIBURING
#include <liburing.h>
#endif

#include "devices/block/io.h"
#include "util/util.h"

/* One queued or finished operation of the pool. */
struct pool_op {
	enum blk_io_op op;
	int fd;
	const struct iovec *iov;
	unsigned iovcnt;
	int mode; /* BLK_IO_FALLOCATE */
	uint64_t off;
	uint64_t len; /* BLK_IO_FALLOCATE */
	struct blk_io_cqe cqe;
};

struct blk_io {
	bool uring;
	int efd;
	unsigned depth;
	unsigned inflight;
#ifdef HAVE_LIBURING
	struct io_uring ring;
	unsigned unsubmitted;
#endif
	/* The pool: two rings of @depth ops (to do, done) under one mutex. */
	pthread_mutex_t lock;
	pthread_cond_t work, done_cv;
	struct pool_op *todo, *done;
	unsigned todo_head, todo_n, done_head, done_n;
	bool stop;
	unsigned nthreads;
	pthread_t threads[BLK_IO_POOL_THREADS];
	const char *name; /* the pool's threads' */
	int (*confine)(void *opaque, const char *name);
	void *confine_opaque;
};

static void efd_signal(int efd)
{
	uint64_t one = 1;

	while (write(efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static int64_t pool_run(const struct pool_op *o)
{
	ssize_t n;

	do {
		if (o->op == BLK_IO_FDATASYNC)
			n = fdatasync(o->fd);
		else if (o->op == BLK_IO_FALLOCATE)
			n = fallocate(o->fd, o->mode, (off_t)o->off, (off_t)o->len);
		else if (o->op == BLK_IO_READ)
			n = preadv(o->fd, o->iov, (int)o->iovcnt, (off_t)o->off);
		else
			n = pwritev(o->fd, o->iov, (int)o->iovcnt, (off_t)o->off);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static void *pool_worker(void *arg)
{
	struct blk_io *io = arg;

	pthread_setname_np(pthread_self(), io->name);
	/* A worker that cannot be confined as the user asked fails its requests instead of
	 * doing them unconfined. */
	bool refuse = io->confine && io->confine(io->confine_opaque, io->name) < 0;
	pthread_mutex_lock(&io->lock);
	for (;;) {
		struct pool_op o;

		while (!io->stop && io->todo_n == 0)
			pthread_cond_wait(&io->work, &io->lock);
		if (io->todo_n == 0)
			break; /* stopping, and nothing left */
		o = io->todo[io->todo_head];
		io->todo_head = (io->todo_head + 1) % io->depth;
		io->todo_n--;
		pthread_mutex_unlock(&io->lock);
		o.cqe.res = refuse ? -EPERM : pool_run(&o);
		pthread_mutex_lock(&io->lock);
		io->done[(io->done_head + io->done_n) % io->depth] = o;
		io->done_n++;
		pthread_cond_broadcast(&io->done_cv);
		efd_signal(io->efd);
	}
	pthread_mutex_unlock(&io->lock);
	return NULL;
}

static int pool_init(struct blk_io *io)
{
	int r;

	io->todo = calloc(io->depth, sizeof(*io->todo));
	io->done = calloc(io->depth, sizeof(*io->done));
	if (!io->todo || !io->done)
		return -ENOMEM;
	/* More threads than operations in flight would only wait (virtio-pmem's depth is 1). */
	for (unsigned i = 0; i < MIN(io->depth, (unsigned)BLK_IO_POOL_THREADS); i++) {
		r = -pthread_create(&io->threads[i], NULL, pool_worker, io);
		if (r < 0)
			return r;
		io->nthreads++;
	}
	return 0;
}

static void pool_stop(struct blk_io *io)
{
	pthread_mutex_lock(&io->lock);
	io->stop = true;
	pthread_cond_broadcast(&io->work);
	pthread_mutex_unlock(&io->lock);
	for (unsigned i = 0; i < io->nthreads; i++)
		pthread_join(io->threads[i], NULL);
	io->nthreads = 0;
}

#ifdef HAVE_LIBURING
static bool uring_init(struct blk_io *io)
{
	unsigned entries = 1;

	while (entries < io->depth)
		entries <<= 1;
	if (io_uring_queue_init(entries, &io->ring, 0) < 0)
		return false;
	if (io_uring_register_eventfd(&io->ring, io->efd) < 0) {
		io_uring_queue_exit(&io->ring);
		return false;
	}
	return true;
}
#endif

static bool want_pool_from_env(void)
{
	const char *e = getenv("CUBICLE_BLK_ENGINE");

	return e && strcmp(e, "pool") == 0;
}

int blk_io_create(unsigned depth, bool want_uring, const char *name,
		  int (*confine)(void *, const char *), void *confine_opaque, struct blk_io **ret)
{
	struct blk_io *io;
	int r;

	if (depth < 1 || depth > BLK_IO_MAX_DEPTH)
		return -EINVAL;
	io = calloc(1, sizeof(*io));
	if (!io)
		return -ENOMEM;
	io->depth = depth;
	io->name = name;
	io->confine = confine;
	io->confine_opaque = confine_opaque;
	pthread_mutex_init(&io->lock, NULL);
	pthread_cond_init(&io->work, NULL);
	pthread_cond_init(&io->done_cv, NULL);
	io->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (io->efd < 0) {
		r = -errno;
		goto fail;
	}
#ifdef HAVE_LIBURING
	if (want_uring && !want_pool_from_env())
		io->uring = uring_init(io);
#else
	(void)want_uring;
	(void)want_pool_from_env;
#endif
	if (!io->uring) {
		r = pool_init(io);
		if (r < 0)
			goto fail;
	}
	*ret = io;
	return 0;
fail:
	blk_io_destroy(io);
	return r;
}

struct blk_io *blk_io_destroy(struct blk_io *io)
{
	struct blk_io_cqe c;

	if (!io)
		return NULL;
	while (blk_io_inflight(io) > 0) {
		blk_io_wait(io);
		(void)blk_io_reap(io, &c, 1);
	}
#ifdef HAVE_LIBURING
	if (io->uring)
		io_uring_queue_exit(&io->ring);
#endif
	pool_stop(io);
	free(io->todo);
	free(io->done);
	if (io->efd >= 0)
		close(io->efd);
	pthread_cond_destroy(&io->work);
	pthread_cond_destroy(&io->done_cv);
	pthread_mutex_destroy(&io->lock);
	free(io);
	return NULL;
}

const char *blk_io_kind(const struct blk_io *io)
{
	return io->uring ? "io_uring" : "thread-pool";
}

int blk_io_fd(const struct blk_io *io)
{
	return io->efd;
}

unsigned blk_io_inflight(const struct blk_io *io)
{
	return io->inflight;
}

/* Queues @o (its cqe.user set) on the engine. */
static int submit_op(struct blk_io *io, const struct pool_op *o)
{
	if (io->inflight >= io->depth)
		return -EAGAIN;
#ifdef HAVE_LIBURING
	if (io->uring) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

		if (!sqe) {
			blk_io_commit(io);
			sqe = io_uring_get_sqe(&io->ring);
			if (!sqe)
				return -EAGAIN;
		}
		if (o->op == BLK_IO_FDATASYNC)
			io_uring_prep_fsync(sqe, o->fd, IORING_FSYNC_DATASYNC);
		else if (o->op == BLK_IO_FALLOCATE)
			io_uring_prep_fallocate(sqe, o->fd, o->mode, (off_t)o->off, (off_t)o->len);
		else if (o->op == BLK_IO_READ)
			io_uring_prep_readv(sqe, o->fd, o->iov, o->iovcnt, o->off);
		else
			io_uring_prep_writev(sqe, o->fd, o->iov, o->iovcnt, o->off);
		io_uring_sqe_set_data64(sqe, o->cqe.user);
		io->unsubmitted++;
		io->inflight++;
		return 0;
	}
#endif
	pthread_mutex_lock(&io->lock);
	io->todo[(io->todo_head + io->todo_n) % io->depth] = *o;
	io->todo_n++;
	pthread_cond_signal(&io->work);
	pthread_mutex_unlock(&io->lock);
	io->inflight++;
	return 0;
}

int blk_io_submit(struct blk_io *io, enum blk_io_op op, int fd, const struct iovec *iov,
		  unsigned iovcnt, uint64_t off, uint64_t user)
{
	return submit_op(io, &(struct pool_op){ .op = op,
						.fd = fd,
						.iov = iov,
						.iovcnt = iovcnt,
						.off = off,
						.cqe.user = user });
}

int blk_io_submit_fallocate(struct blk_io *io, int fd, int mode, uint64_t off, uint64_t len,
			    uint64_t user)
{
	return submit_op(io, &(struct pool_op){ .op = BLK_IO_FALLOCATE,
						.fd = fd,
						.mode = mode,
						.off = off,
						.len = len,
						.cqe.user = user });
}

void blk_io_commit(struct blk_io *io)
{
#ifdef HAVE_LIBURING
	if (io->uring && io->unsubmitted) {
		int r;

		do {
			r = io_uring_submit(&io->ring);
		} while (r == -EINTR);
		/* A refused batch (-EAGAIN, -EBUSY) stays in the SQ ring for the next call. */
		if (r > 0)
			io->unsubmitted -= MIN((unsigned)r, io->unsubmitted);
	}
#else
	(void)io;
#endif
}

unsigned blk_io_reap(struct blk_io *io, struct blk_io_cqe *out, unsigned max)
{
	unsigned n = 0;

#ifdef HAVE_LIBURING
	if (io->uring) {
		struct io_uring_cqe *cqe;

		while (n < max && io_uring_peek_cqe(&io->ring, &cqe) == 0) {
			out[n].user = io_uring_cqe_get_data64(cqe);
			out[n].res = cqe->res;
			io_uring_cqe_seen(&io->ring, cqe);
			n++;
		}
		io->inflight -= n;
		return n;
	}
#endif
	pthread_mutex_lock(&io->lock);
	while (n < max && io->done_n > 0) {
		out[n++] = io->done[io->done_head].cqe;
		io->done_head = (io->done_head + 1) % io->depth;
		io->done_n--;
	}
	pthread_mutex_unlock(&io->lock);
	io->inflight -= n;
	return n;
}

void blk_io_wait(struct blk_io *io)
{
	if (io->inflight == 0)
		return;
#ifdef HAVE_LIBURING
	if (io->uring) {
		struct io_uring_cqe *cqe;

		blk_io_commit(io);
		while (io_uring_wait_cqe(&io->ring, &cqe) == -EINTR)
			;
		return;
	}
#endif
	pthread_mutex_lock(&io->lock);
	while (io->done_n == 0)
		pthread_cond_wait(&io->done_cv, &io->lock);
	pthread_mutex_unlock(&io->lock);
}
