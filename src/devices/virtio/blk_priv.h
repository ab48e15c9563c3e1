/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to virtio-blk: blk.c (the device, its queues, request bookkeeping, the write/flush
 * order), blk_rw.c (reads and writes, O_DIRECT alignment) and blk_dwz.c (discard and
 * write-zeroes). Everything here runs with the transport's lock held (queue notifies, the
 * engine's completion callback, drain), on one thread at a time.
 */
#ifndef CUBICLE_DEVICES_VIRTIO_BLK_PRIV_H
#define CUBICLE_DEVICES_VIRTIO_BLK_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "config/config.h"
#include "devices/virtio/blk.h"
#include "util/log.h"
#include "util/ratelimit.h"
#include "virtio/virtio.h"
#include "virtio/virtq.h"

enum blk_counter {
	BLK_READ_BYTES,
	BLK_WRITE_BYTES,
	BLK_READ_OPS,
	BLK_WRITE_OPS,
	BLK_NR_COUNTERS,
};

/* One discard or write-zeroes segment, checked. */
struct blk_dwz_seg {
	uint64_t off, len; /* bytes */
	bool unmap;
};

struct blk;

struct blk_req {
	struct blk *b;
	unsigned q;
	unsigned gen; /* the device's reset generation when popped */
	struct blk_req *next_free;
	struct blk_req *park_next;	     /* on blk.parked */
	struct blk_req *ord_prev, *ord_next; /* the write/flush order list */
	bool in_ord;
	bool waiting; /* on the order list, not started: an earlier conflicting one is (blk_wake) */
	bool rmw;     /* a write widened to the alignment: its partial blocks are read first */
	uint8_t step; /* blk_rw.c: what the pass in flight is for; blk_dwz.c: how it zeroes */
	uint32_t type;
	uint64_t off, len;	 /* bytes on the disk (IN/OUT) */
	uint64_t io_off, io_len; /* what the disk I/O covers: off/len, or widened (rmw, reads) */
	uint64_t span_off, span_len; /* the pass in progress, on the disk */
	uint64_t done;		     /* bytes of the span done */
	uint8_t *status;	     /* the status byte in guest memory; NULL: none writable */
	struct iovec *data;
	unsigned data_cnt;
	struct iovec bounce_iov;
	void *bounce; /* O_DIRECT: [io_off, io_off + io_len), aligned */
	unsigned seg, nsegs;
	struct iovec slice[VIRTQ_MAX_SEGS];
	/* Not cleared by req_alloc (set before use): the discard or write-zeroes segments, or
	 * the partial clusters of a qcow2 image's write-zeroes (two per segment at most). */
	struct blk_dwz_seg segs[2 * BLK_MAX_DWZ_SEGS];
	struct virtq_elem elem;
};

struct blk_queue {
	struct blk_req *free_list;
	struct blk_req *held; /* popped, waiting for the rate limiter */
	bool completed;	      /* pushed something since the last notify */
};

struct blk {
	struct virtio_pci *vp;
	const struct dev_loop *loop;
	struct disk_image *img;
	struct blk_io *io;
	bool io_watched, rl_watched;
	struct rate_limiter rl;
	char id[CONFIG_ID_MAX];
	char serial[BLK_ID_BYTES];
	bool readonly;
	uint64_t sectors;
	uint32_t align;
	uint16_t num_queues, queue_size;
	struct blk_queue q[CONFIG_MAX_DISK_QUEUES];
	struct blk_req *ord_head, *ord_tail;
	unsigned rmw_count;	/* read-modify-write requests on the order list */
	unsigned waiting;	/* requests on the order list waiting to start */
	bool waking;		/* blk_wake is running */
	unsigned gen;		/* bumped by each reset: older requests land but are not pushed */
	int raw_fd;		/* a raw image's: discard and write-zeroes fallocate on it */
	int zero_fd;		/* a raw image's buffered fd: where fallocate cannot zero */
	void *zeros;		/* BLK_ZERO_CHUNK zero bytes, allocated on first use */
	unsigned flush_batch;	/* flushes at the head of the order list the image flush in
			       * progress will complete; 0: none in progress */
	bool meta_flush;	/* that flush is writing metadata: the image is not to be touched */
	struct blk_req *parked; /* requests that came to map an extent meanwhile */
	uint8_t flush_marker;	/* its address is the engine's user tag for that fdatasync */
	uint64_t counters[BLK_NR_COUNTERS];
	struct log_ratelimit lrl;
	struct virtio_dev_ops vops;
	uint8_t config[BLK_CONFIG_SIZE];
};

/* blk.c */

/* Writes the status, pushes the element (unless a reset came since) and recycles @r.
 * @written counts data bytes written into the driver's buffers, without the status byte. */
void blk_req_complete(struct blk_req *r, uint8_t status, uint32_t written);

/* Puts a write, discard, write-zeroes or flush at the end of the order list. Returns true when
 * it must wait for an earlier request it conflicts with (then blk_wake starts it later). */
bool blk_ord_append(struct blk *b, struct blk_req *r);

/* Starts the waiting requests whose conflicts have completed. */
void blk_wake(struct blk *b);

/* Holds a request about to map an extent while the image flush writes metadata
 * (blk.meta_flush): a read, or a write or write-zeroes started before the flush; resumed
 * afterwards (blk_rw_resume, blk_dwz_resume). */
void blk_park(struct blk_req *r);

/* The part [@off, @off + @len) of @src (@cnt entries) into @dst; returns the entry count. */
unsigned blk_iov_slice(const struct iovec *src, unsigned cnt, uint64_t off, uint64_t len,
		       struct iovec *dst);

/* Copies between a flat buffer and the request's data iovecs at data offset @off. */
void blk_data_copy(struct blk_req *r, uint64_t off, void *buf, uint64_t len, bool to_guest);

/* blk_rw.c: a parsed read or write of at least one sector; completes now or later. */
void blk_rw_start(struct blk_req *r);
/* Starts a write that waited on the order list. */
void blk_rw_begin(struct blk_req *r);
/* Goes on with a parked request. */
void blk_rw_resume(struct blk_req *r);
/* The engine finished the operation @r submitted, with @res. */
void blk_rw_io_done(struct blk_req *r, int64_t res);

/* blk_dwz.c: a parsed discard or write-zeroes; completes now or later. */
void blk_dwz_start(struct blk_req *r);
/* Starts a discard or write-zeroes that waited on the order list. */
void blk_dwz_begin(struct blk_req *r);
/* Goes on with a parked one. */
void blk_dwz_resume(struct blk_req *r);
void blk_dwz_io_done(struct blk_req *r, int64_t res);

#endif
