/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The block I/O engine: asynchronous preadv/pwritev on image fds, completions signalled through
 * one eventfd that the VMM loop watches. Two back ends behind one interface:
 *
 *   io_uring (liburing): one ring per engine, its completion eventfd registered; submissions
 *     are batched until blk_io_commit().
 *   worker pool: BLK_IO_POOL_THREADS threads (at most @depth) doing preadv/pwritev/fdatasync/
 *     fallocate, for hosts where io_uring is missing or forbidden (old kernels, seccomp,
 *     io_uring_disabled=2), chosen automatically, or on request (--disk _disable_io_uring=on,
 *     or CUBICLE_BLK_ENGINE=pool in the environment) for tests and benchmarks.
 *
 * Users: virtio-blk (its reads, writes, flushes, discards and write-zeroes) and virtio-pmem (its
 * flushes' fdatasync, one at a time, so that a large dirty file does not stall the VMM loop).
 *
 * Threading: submit, commit, reap and wait are called by one thread at a time (the device
 * holds its transport lock around them); the pool's workers are internal. A result is what the
 * system call returned: bytes transferred (possibly short), or -errno.
 */
#ifndef CUBICLE_DEVICES_BLOCK_IO_H
#define CUBICLE_DEVICES_BLOCK_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define BLK_IO_MAX_DEPTH    (16 * 1024) /* operations in flight on one engine */
#define BLK_IO_POOL_THREADS 4

enum blk_io_op {
	BLK_IO_READ,
	BLK_IO_WRITE,
	BLK_IO_FDATASYNC, /* iov and offset unused; res 0 or -errno */
	BLK_IO_FALLOCATE, /* blk_io_submit_fallocate; res 0 or -errno */
};

struct blk_io_cqe {
	uint64_t user; /* what blk_io_submit was given */
	int64_t res;   /* bytes, or -errno */
};

struct blk_io;

/*
 * An engine for up to @depth (1..BLK_IO_MAX_DEPTH) operations in flight. With @want_uring,
 * io_uring when the kernel lets us have it, else the worker pool, whose threads are called
 * @name (a string that outlives the engine, at most 15 characters: "blk-worker") and first call
 * @confine(@confine_opaque, @name) if it is not NULL (dev_ctx.confine_worker). Returns 0 with
 * *@ret, or -EINVAL, -ENOMEM, or the eventfd/thread creation -errno.
 */
int blk_io_create(unsigned depth, bool want_uring, const char *name,
		  int (*confine)(void *, const char *), void *confine_opaque, struct blk_io **ret);

/* Waits for every operation in flight, then frees. Accepts NULL; returns NULL. */
struct blk_io *blk_io_destroy(struct blk_io *io);

/* "io_uring" or "thread-pool". */
const char *blk_io_kind(const struct blk_io *io);

/* The eventfd that becomes readable when completions are ready (the caller reads it). */
int blk_io_fd(const struct blk_io *io);

/*
 * Queues one operation: @iov (@iovcnt ≥ 1 entries, which must stay valid until its completion)
 * at @off of @fd; for BLK_IO_FDATASYNC, @iov may be NULL. Returns 0, or -EAGAIN when @depth
 * operations are already in flight.
 */
int blk_io_submit(struct blk_io *io, enum blk_io_op op, int fd, const struct iovec *iov,
		  unsigned iovcnt, uint64_t off, uint64_t user);

/*
 * Queues fallocate(@fd, @mode, @off, @len) (discard, write-zeroes: the file system may take long
 * over it, so it is never run on the caller's thread). Returns 0, or -EAGAIN as blk_io_submit.
 */
int blk_io_submit_fallocate(struct blk_io *io, int fd, int mode, uint64_t off, uint64_t len,
			    uint64_t user);

/* Starts what blk_io_submit queued (one system call for a batch on io_uring). */
void blk_io_commit(struct blk_io *io);

/* Takes up to @max ready completions into @out without blocking. Returns how many. */
unsigned blk_io_reap(struct blk_io *io, struct blk_io_cqe *out, unsigned max);

/* Operations submitted and not yet reaped. */
unsigned blk_io_inflight(const struct blk_io *io);

/* Blocks until a completion is ready (returns at once when none is in flight). */
void blk_io_wait(struct blk_io *io);

#endif
