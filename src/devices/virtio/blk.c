/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk (blk.h): the device, its queues and the life of a request.
 *
 * A request is popped, checked (blk_parse), charged to the rate limiter, then run: reads and
 * writes by blk_rw.c, discard and write-zeroes by blk_dwz.c. Writes, discards, write-zeroes
 * and flushes are also kept in arrival order on one list: a flush runs (one image flush for
 * every flush then ready) once nothing taken before it is still in flight, and a
 * read-modify-write waits there for the earlier requests that touch its blocks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "config/config.h"
#include "devices/block/image.h"
#include "devices/block/io.h"
#include "devices/virtio/blk_priv.h"
#include "util/log.h"
#include "util/ratelimit.h"
#include "util/state.h"
#include "util/util.h"
#include "pci/pci.h"
#include "virtio/virtio.h"

#define PCI_CLASS_STORAGE_SCSI 0x010000
#define BLK_BIT(n)	       (1ULL << (n))
#define BLK_REAP_BATCH	       64

/* Cloud Hypervisor's names for vm.counters. */
static const char *const blk_counter_names[BLK_NR_COUNTERS] = {
	"read_bytes",
	"write_bytes",
	"read_ops",
	"write_ops",
};

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/*
 * Request bookkeeping
 */

static struct blk_req *req_alloc(struct blk *b, unsigned q)
{
	struct blk_queue *bq = &b->q[q];
	struct blk_req *r = bq->free_list;

	if (r) {
		bq->free_list = r->next_free;
	} else {
		r = malloc(sizeof(*r));
		if (!r)
			return NULL;
	}
	memset(r, 0, offsetof(struct blk_req, slice));
	r->b = b;
	r->q = q;
	r->gen = b->gen;
	return r;
}

static void req_free(struct blk_req *r)
{
	struct blk_queue *bq = &r->b->q[r->q];

	free(r->bounce);
	r->bounce = NULL;
	r->next_free = bq->free_list;
	bq->free_list = r;
}

/*
 * The order list. A read-modify-write touches whole blocks the guest did not name: it must not
 * run beside another write, discard or write-zeroes on those blocks, nor they beside it.
 */

static bool req_overlap(const struct blk_req *a, const struct blk_req *b)
{
	return a->io_off < b->io_off + b->io_len && b->io_off < a->io_off + a->io_len;
}

/* @e, earlier on the list, must complete before @r starts. */
static bool req_conflict(const struct blk_req *e, const struct blk_req *r)
{
	if (e->type == VIRTIO_BLK_T_FLUSH || !(e->rmw || r->rmw))
		return false;
	if (e->type != VIRTIO_BLK_T_OUT || r->type != VIRTIO_BLK_T_OUT)
		return true; /* discard, write-zeroes: not worth a range check */
	return req_overlap(e, r);
}

static bool req_must_wait(const struct blk *b, const struct blk_req *r)
{
	if (b->meta_flush)
		return true; /* flush_step */
	if (!r->rmw && b->rmw_count == 0)
		return false;
	for (const struct blk_req *e = r->ord_prev; e; e = e->ord_prev) {
		if (req_conflict(e, r))
			return true;
	}
	return false;
}

bool blk_ord_append(struct blk *b, struct blk_req *r)
{
	r->ord_prev = b->ord_tail;
	r->ord_next = NULL;
	if (b->ord_tail)
		b->ord_tail->ord_next = r;
	else
		b->ord_head = r;
	b->ord_tail = r;
	r->in_ord = true;
	b->rmw_count += r->rmw;
	if (r->type == VIRTIO_BLK_T_FLUSH || !req_must_wait(b, r))
		return false;
	r->waiting = true;
	b->waiting++;
	return true;
}

static void ord_remove(struct blk *b, struct blk_req *r)
{
	if (r->ord_prev)
		r->ord_prev->ord_next = r->ord_next;
	else
		b->ord_head = r->ord_next;
	if (r->ord_next)
		r->ord_next->ord_prev = r->ord_prev;
	else
		b->ord_tail = r->ord_prev;
	r->in_ord = false;
	b->rmw_count -= r->rmw;
	if (r->waiting)
		b->waiting--;
	r->waiting = false;
}

void blk_wake(struct blk *b)
{
	bool again = true;

	if (b->waking)
		return; /* the outer call goes on over the list */
	b->waking = true;
	while (again && b->waiting) {
		again = false;
		for (struct blk_req *r = b->ord_head; r; r = r->ord_next) {
			if (!r->waiting || req_must_wait(b, r))
				continue;
			r->waiting = false;
			b->waiting--;
			if (r->type == VIRTIO_BLK_T_OUT)
				blk_rw_begin(r);
			else
				blk_dwz_begin(r);
			again = true; /* the list may have changed under us */
			break;
		}
	}
	b->waking = false;
}

static void run_ready_flushes(struct blk *b);

/* Off the order list: what waited behind @r may go. */
static void req_free_ordered(struct blk_req *r)
{
	struct blk *b = r->b;

	ord_remove(b, r);
	req_free(r);
	run_ready_flushes(b);
	blk_wake(b);
}

void blk_req_complete(struct blk_req *r, uint8_t status, uint32_t written)
{
	struct blk *b = r->b;
	uint32_t used = 0;

	if (r->gen != b->gen) {
		/* Taken before a reset: the queue it came from is gone. */
		if (r->in_ord)
			req_free_ordered(r);
		else
			req_free(r);
		return;
	}
	if (r->status) {
		*(volatile uint8_t *)r->status = status;
		used = written + 1;
	}
	if (status == VIRTIO_BLK_S_OK && r->type == VIRTIO_BLK_T_IN) {
		b->counters[BLK_READ_BYTES] += r->len;
		b->counters[BLK_READ_OPS]++;
	} else if (status == VIRTIO_BLK_S_OK && r->type == VIRTIO_BLK_T_OUT) {
		b->counters[BLK_WRITE_BYTES] += r->len;
		b->counters[BLK_WRITE_OPS]++;
	}
	(void)virtio_pci_push(b->vp, r->q, &r->elem, used);
	b->q[r->q].completed = true;
	if (r->in_ord)
		req_free_ordered(r);
	else
		req_free(r);
}

/* Completes the first @n flushes of the order list with @status. */
static void complete_flushes(struct blk *b, unsigned n, uint8_t status)
{
	while (n-- && b->ord_head && b->ord_head->type == VIRTIO_BLK_T_FLUSH) {
		struct blk_req *f = b->ord_head;

		ord_remove(b, f);
		blk_req_complete(f, status, 0);
	}
}

void blk_park(struct blk_req *r)
{
	r->park_next = r->b->parked;
	r->b->parked = r;
}

/* The image's metadata is consistent again: what waited for it goes on. */
static void unpark(struct blk *b)
{
	struct blk_req *r = b->parked;

	b->parked = NULL;
	while (r) {
		struct blk_req *next = r->park_next;

		if (r->type == VIRTIO_BLK_T_IN || r->type == VIRTIO_BLK_T_OUT)
			blk_rw_resume(r);
		else
			blk_dwz_resume(r);
		r = next;
	}
	blk_wake(b);
}

/* The flush batch is done: its flushes complete with @status. */
static void flush_end(struct blk *b, uint8_t status)
{
	unsigned n = b->flush_batch;

	b->flush_batch = 0;
	if (b->meta_flush) {
		b->meta_flush = false;
		unpark(b);
	}
	complete_flushes(b, n, status);
	run_ready_flushes(b);
}

static void flush_io_done(struct blk *b, int64_t res);

/*
 * The next step of the image flush: it writes metadata (qcow2) and its fdatasync goes to the
 * engine; the loop never waits for the disk. Until the last step the image is quiesced
 * (meta_flush): new writes, discards and write-zeroes wait on the order list, reads about to
 * map an extent are parked.
 */
static void flush_step(struct blk *b)
{
	bool was = b->meta_flush;
	int fd, r = disk_image_flush_step(b->img, &fd);

	if (r < 0 || fd < 0) {
		flush_end(b, r < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
		return;
	}
	b->meta_flush = r == 1;
	if (was && !b->meta_flush)
		unpark(b); /* all written: the last fdatasync does not hold the others */
	if (blk_io_submit(b->io, BLK_IO_FDATASYNC, fd, NULL, 0, 0, (uintptr_t)&b->flush_marker) ==
	    0)
		return;
	/* Not expected (the engine has a slot per request): rather wait than break the order. */
	flush_io_done(b, fdatasync(fd) < 0 ? -errno : 0);
}

static void flush_io_done(struct blk *b, int64_t res)
{
	if (res < 0 && b->meta_flush)
		disk_image_flush_abort(b->img);
	if (res >= 0 && b->meta_flush)
		flush_step(b);
	else
		flush_end(b, res < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
}

/* Every flush with nothing before it on the order list: one image flush serves them all. */
static void run_ready_flushes(struct blk *b)
{
	unsigned n = 0;

	if (b->flush_batch)
		return; /* the flush in progress comes back here */
	for (struct blk_req *f = b->ord_head; f && f->type == VIRTIO_BLK_T_FLUSH; f = f->ord_next)
		n++;
	if (n == 0)
		return;
	b->flush_batch = n;
	flush_step(b);
}

/*
 * Guest buffers
 */

unsigned blk_iov_slice(const struct iovec *src, unsigned cnt, uint64_t off, uint64_t len,
		       struct iovec *dst)
{
	unsigned n = 0;

	for (unsigned i = 0; i < cnt && len; i++) {
		uint64_t l = src[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		dst[n].iov_base = (uint8_t *)src[i].iov_base + off;
		dst[n].iov_len = MIN(l - off, len);
		len -= dst[n].iov_len;
		off = 0;
		n++;
	}
	return n;
}

void blk_data_copy(struct blk_req *r, uint64_t off, void *buf, uint64_t len, bool to_guest)
{
	unsigned n = blk_iov_slice(r->data, r->data_cnt, off, len, r->slice);
	uint8_t *p = buf;

	for (unsigned i = 0; i < n; i++) {
		if (to_guest)
			memcpy(r->slice[i].iov_base, p, r->slice[i].iov_len);
		else
			memcpy(p, r->slice[i].iov_base, r->slice[i].iov_len);
		p += r->slice[i].iov_len;
	}
}

/*
 * The other request types
 */

static void get_id(struct blk_req *r)
{
	uint32_t n = (uint32_t)MIN(r->len, (uint64_t)BLK_ID_BYTES);

	blk_data_copy(r, 0, r->b->serial, n, true);
	blk_req_complete(r, VIRTIO_BLK_S_OK, n);
}

/*
 * Parsing: what the element holds, checked. Returns VIRTIO_BLK_S_OK with r->type, off, len,
 * data and status set, or the status to complete the request with.
 */
static uint8_t blk_parse(struct blk_req *r)
{
	struct virtq_elem *e = &r->elem;
	struct blk *b = r->b;
	uint8_t hdr[BLK_HDR_SIZE];
	struct iovec *in = virtq_elem_in(e), *last;
	uint64_t sector;

	/* The status byte: the last byte of the writable part. */
	if (e->in_num == 0)
		return VIRTIO_BLK_S_IOERR; /* nowhere to say so: completed with nothing written */
	last = &in[e->in_num - 1];
	r->status = (uint8_t *)last->iov_base + last->iov_len - 1;
	if (virtq_elem_read(e, 0, hdr, sizeof(hdr)) != sizeof(hdr))
		return VIRTIO_BLK_S_IOERR;
	r->type = (uint32_t)get_le(hdr, 4);
	sector = get_le(hdr + 8, 8);

	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_GET_ID:
		if (e->out_len != BLK_HDR_SIZE)
			return VIRTIO_BLK_S_IOERR; /* data in the wrong direction */
		last->iov_len--;
		r->data = in;
		r->data_cnt = e->in_num - (last->iov_len == 0);
		r->len = e->in_len - 1;
		break;
	case VIRTIO_BLK_T_OUT:
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		unsigned i = 0;
		size_t skip = BLK_HDR_SIZE;

		if (e->in_len != 1)
			return VIRTIO_BLK_S_IOERR;
		if (b->readonly)
			return VIRTIO_BLK_S_IOERR;
		while (i < e->out_num && e->iov[i].iov_len <= skip)
			skip -= e->iov[i++].iov_len;
		if (i < e->out_num) {
			e->iov[i].iov_base = (uint8_t *)e->iov[i].iov_base + skip;
			e->iov[i].iov_len -= skip;
		}
		r->data = e->iov + i;
		r->data_cnt = e->out_num - i;
		r->len = e->out_len - BLK_HDR_SIZE;
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		return VIRTIO_BLK_S_OK;
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
	if (r->type == VIRTIO_BLK_T_IN || r->type == VIRTIO_BLK_T_OUT) {
		if (r->len % BLK_SECTOR || sector > b->sectors ||
		    r->len / BLK_SECTOR > b->sectors - sector)
			return VIRTIO_BLK_S_IOERR;
		r->off = sector * BLK_SECTOR;
	}
	return VIRTIO_BLK_S_OK;
}

/* Starts a parsed request; it completes now or when its I/O does. */
static void blk_start(struct blk_req *r)
{
	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		if (r->len == 0) {
			blk_req_complete(r, VIRTIO_BLK_S_OK, 0);
			return;
		}
		blk_rw_start(r);
		return;
	case VIRTIO_BLK_T_FLUSH:
		(void)blk_ord_append(r->b, r);
		run_ready_flushes(r->b);
		return;
	case VIRTIO_BLK_T_GET_ID:
		get_id(r);
		return;
	default:
		blk_dwz_start(r);
		return;
	}
}

/*
 * Queues
 */

static void blk_notify_completed(struct blk *b)
{
	for (unsigned q = 0; q < b->num_queues; q++) {
		if (b->q[q].completed) {
			b->q[q].completed = false;
			virtio_pci_notify(b->vp, q);
		}
	}
}

static void blk_process_queue(struct blk *b, unsigned q)
{
	struct blk_queue *bq = &b->q[q];
	unsigned served = 0, budget = b->queue_size;

	while (served < budget && virtio_pci_queue_ready(b->vp, q)) {
		struct blk_req *r = bq->held;
		uint8_t st;

		if (r) {
			bq->held = NULL;
		} else {
			r = req_alloc(b, q);
			if (!r)
				break;
			if (virtio_pci_pop(b->vp, q, &r->elem) <= 0) {
				req_free(r);
				break;
			}
			st = blk_parse(r);
			if (st != VIRTIO_BLK_S_OK) {
				blk_req_complete(r, st, 0);
				served++;
				continue;
			}
		}
		if (rate_limiter_enabled(&b->rl) &&
		    !rate_limiter_consume(
			    &b->rl,
			    r->type == VIRTIO_BLK_T_IN || r->type == VIRTIO_BLK_T_OUT ? r->len : 0,
			    1)) {
			bq->held = r; /* the limiter's timer brings us back */
			break;
		}
		blk_start(r);
		served++;
	}
	if (served == budget)
		virtio_pci_kick(b->vp, q);
	blk_io_commit(b->io);
	blk_notify_completed(b);
}

static void req_io_done(struct blk_req *r, int64_t res)
{
	if (r->type == VIRTIO_BLK_T_IN || r->type == VIRTIO_BLK_T_OUT)
		blk_rw_io_done(r, res);
	else
		blk_dwz_io_done(r, res);
}

/* Completes what the engine finished (transport lock held). */
static void blk_reap(struct blk *b)
{
	struct blk_io_cqe c[BLK_REAP_BATCH];
	unsigned n;

	do {
		n = blk_io_reap(b->io, c, ARRAY_SIZE(c));
		for (unsigned i = 0; i < n; i++) {
			if (c[i].user == (uintptr_t)&b->flush_marker)
				flush_io_done(b, c[i].res);
			else
				req_io_done((struct blk_req *)(uintptr_t)c[i].user, c[i].res);
		}
	} while (n == ARRAY_SIZE(c));
	blk_io_commit(b->io);
}

static void blk_io_cb(void *opaque, uint32_t events)
{
	struct blk *b = opaque;
	uint64_t v;

	while (read(blk_io_fd(b->io), &v, sizeof(v)) < 0 && errno == EINTR)
		;
	virtio_pci_lock(b->vp);
	blk_reap(b);
	blk_notify_completed(b);
	virtio_pci_unlock(b->vp);
}

static void blk_rl_cb(void *opaque, uint32_t events)
{
	struct blk *b = opaque;

	virtio_pci_lock(b->vp);
	rate_limiter_timer_event(&b->rl);
	for (unsigned q = 0; q < b->num_queues; q++)
		blk_process_queue(b, q);
	virtio_pci_unlock(b->vp);
}

/* Every read and write in flight, completed (transport lock held). */
static void blk_drain_locked(struct blk *b)
{
	while (blk_io_inflight(b->io) > 0) {
		blk_io_wait(b->io);
		blk_reap(b);
	}
}

void blk_drain(void *dev)
{
	struct blk *b = dev;

	virtio_pci_lock(b->vp);
	blk_drain_locked(b);
	blk_notify_completed(b);
	virtio_pci_unlock(b->vp);
}

static void blk_queue_notify(void *opaque, unsigned q)
{
	struct blk *b = opaque;

	if (q < b->num_queues)
		blk_process_queue(b, q);
}

static void blk_vreset(void *opaque)
{
	struct blk *b = opaque;

	/*
	 * The queues are gone. Requests in flight land in their buffers (still guest RAM) and are
	 * then dropped, not pushed (see blk_req_complete); no waiting here: this may run on a vCPU
	 * thread, whose seccomp filter has no I/O calls.
	 */
	b->gen++;
	for (unsigned q = 0; q < b->num_queues; q++) {
		if (b->q[q].held)
			req_free(b->q[q].held);
		b->q[q].held = NULL;
		b->q[q].completed = false;
	}
}

/* The request waiting for the rate limiter is its queue's latest pop, and pause drained the
 * others (virtio.h: held elements). */
static unsigned blk_held(void *opaque, unsigned q)
{
	struct blk *b = opaque;

	return q < b->num_queues && b->q[q].held;
}

static void blk_config_read(void *opaque, uint32_t offset, uint8_t *data, unsigned len)
{
	struct blk *b = opaque;

	memcpy(data, b->config + offset, len);
}

/*
 * Creation
 */

static void blk_fill_config(struct blk *b, uint16_t queue_size)
{
	uint32_t blk_size = MAX(b->align, (uint32_t)BLK_SECTOR);
	uint8_t *c = b->config;
	unsigned exp = 0;

	while (((uint32_t)BLK_SECTOR << exp) < blk_size)
		exp++;
	put_le(c + 0, b->sectors, 8);
	put_le(c + 8, BLK_SIZE_MAX, 4);
	put_le(c + 12, MIN(queue_size - 2U, VIRTQ_MAX_SEGS - 2U), 4); /* seg_max */
	put_le(c + 20, blk_size, 4);
	c[24] = (uint8_t)exp; /* physical_block_exp */
	put_le(c + 26, 1, 2); /* min_io_size, in logical blocks */
	put_le(c + 34, b->num_queues, 2);
	put_le(c + 36, BLK_MAX_DWZ_SECTORS, 4);
	put_le(c + 40, BLK_MAX_DWZ_SEGS, 4);
	put_le(c + 44, MAX(blk_size, 4096U) / BLK_SECTOR, 4); /* discard_sector_alignment */
	put_le(c + 48, BLK_MAX_DWZ_SECTORS, 4);
	put_le(c + 52, BLK_MAX_DWZ_SEGS, 4);
	c[56] = 1; /* write_zeroes_may_unmap */
}

static uint64_t blk_features(const struct blk *b)
{
	uint64_t f = BLK_BIT(VIRTIO_BLK_F_SIZE_MAX) | BLK_BIT(VIRTIO_BLK_F_SEG_MAX) |
		     BLK_BIT(VIRTIO_BLK_F_BLK_SIZE) | BLK_BIT(VIRTIO_BLK_F_FLUSH) |
		     BLK_BIT(VIRTIO_BLK_F_TOPOLOGY) | BLK_BIT(VIRTIO_BLK_F_MQ);

	if (b->readonly)
		f |= BLK_BIT(VIRTIO_BLK_F_RO);
	else
		f |= BLK_BIT(VIRTIO_BLK_F_DISCARD) | BLK_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	return f;
}

void blk_destroy(void *dev)
{
	struct blk *b = dev;

	if (!b)
		return;
	if (b->vp && b->io) {
		virtio_pci_lock(b->vp);
		blk_drain_locked(b);
		virtio_pci_unlock(b->vp);
	}
	b->vp = virtio_pci_destroy(b->vp);
	if (b->io_watched)
		(void)b->loop->del_fd(b->loop->loop, blk_io_fd(b->io));
	if (b->rl_watched)
		(void)b->loop->del_fd(b->loop->loop, rate_limiter_fd(&b->rl));
	b->io = blk_io_destroy(b->io);
	rate_limiter_destroy(&b->rl);
	for (unsigned q = 0; q < CONFIG_MAX_DISK_QUEUES; q++) {
		struct blk_req *r = b->q[q].held;

		free(r);
		while ((r = b->q[q].free_list)) {
			b->q[q].free_list = r->next_free;
			free(r);
		}
	}
	b->img = disk_image_close(b->img);
	free(b->zeros);
	free(b);
}

static int blk_open(struct blk *b, const struct dev_ctx *ctx, const struct disk_config *d)
{
	struct disk_image_opts o = { .readonly = d->readonly, .direct = d->direct };
	char msg[CONFIG_ERR_MAX] = "";
	int r;

	r = disk_image_open(d->path, &o, &b->img, msg, sizeof(msg));
	if (r < 0)
		return error_set(ctx->err, ctx->errlen, r, "--disk: %s",
				 msg[0] ? msg : strerror(-r));
	b->readonly = d->readonly || disk_image_readonly(b->img);
	if (disk_image_raw_fds(b->img, &b->raw_fd, &b->zero_fd) < 0)
		b->raw_fd = b->zero_fd = -1;
	b->sectors = disk_image_size(b->img) / BLK_SECTOR;
	b->align = d->test_align ? d->test_align : disk_image_align(b->img);
	if (b->align > 1 && (b->align & (b->align - 1)))
		return error_set(ctx->err, ctx->errlen, -EINVAL,
				 "--disk: '%s': odd O_DIRECT alignment %u", d->path, b->align);
	return 0;
}

static int blk_watch(struct blk *b, const struct dev_ctx *ctx)
{
	int r;

	if (!b->loop)
		return 0;
	r = b->loop->add_fd(b->loop->loop, blk_io_fd(b->io), EPOLLIN, blk_io_cb, b);
	if (r < 0)
		return r;
	b->io_watched = true;
	if (rate_limiter_fd(&b->rl) >= 0) {
		r = b->loop->add_fd(b->loop->loop, rate_limiter_fd(&b->rl), EPOLLIN, blk_rl_cb, b);
		if (r < 0)
			return r;
		b->rl_watched = true;
	}
	return 0;
}

int blk_create(const struct dev_ctx *ctx, const struct disk_config *d, void **ret)
{
	struct blk *b;
	int r;

	if (!ctx->pci || !ctx->mem || !d->path || d->num_queues < 1 ||
	    d->num_queues > CONFIG_MAX_DISK_QUEUES)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->loop = ctx->loop;
	b->raw_fd = b->zero_fd = -1;
	b->num_queues = d->num_queues;
	b->queue_size = d->queue_size;
	b->lrl = (struct log_ratelimit)LOG_RATELIMIT_INIT(1000000000ULL, 5);
	snprintf(b->id, sizeof(b->id), "%s", d->id ? d->id : "");
	if (d->serial)
		memcpy(b->serial, d->serial, MIN(strlen(d->serial), sizeof(b->serial)));
	r = blk_open(b, ctx, d);
	if (r < 0)
		goto fail;
	r = rate_limiter_init(&b->rl, &d->rate_limiter);
	if (r < 0)
		goto fail;
	r = blk_io_create((unsigned)d->num_queues * d->queue_size, !d->disable_io_uring,
			  "blk-worker", ctx->confine_worker, ctx->confine_opaque, &b->io);
	if (r < 0)
		goto fail;
	r = blk_watch(b, ctx);
	if (r < 0)
		goto fail;
	blk_fill_config(b, d->queue_size);
	b->vops = (struct virtio_dev_ops){
		.name = "virtio-blk",
		.device_id = VIRTIO_ID_BLOCK,
		.class_code = PCI_CLASS_STORAGE_SCSI,
		.features = blk_features(b),
		.num_queues = d->num_queues,
		.max_queue_size = d->queue_size,
		.config_size = BLK_CONFIG_SIZE,
		.config_read = blk_config_read,
		.queue_notify = blk_queue_notify,
		.reset = blk_vreset,
		.held = blk_held,
	};
	r = virtio_pci_create(ctx->pci, ctx->mem, ctx->loop, &b->vops, b, &b->vp);
	if (r < 0)
		goto fail;
	*ret = b;
	return 0;
fail:
	blk_destroy(b);
	return r;
}

struct virtio_pci *blk_transport(void *dev)
{
	return ((struct blk *)dev)->vp;
}

const char *blk_engine(void *dev)
{
	return blk_io_kind(((struct blk *)dev)->io);
}

/*
 * The dev_table entry: every --disk, in order.
 */

struct blk_set {
	unsigned n;
	struct blk *disks[CONFIG_MAX_DISKS];
};

void *blk_set_disk(void *set, unsigned i)
{
	struct blk_set *s = set;

	return i < s->n ? s->disks[i] : NULL;
}

static void blk_set_unrealize(void *dev)
{
	struct blk_set *s = dev;

	if (!s)
		return;
	while (s->n > 0)
		blk_destroy(s->disks[--s->n]);
	free(s);
}

/*
 * Snapshot state: {"disks": [one transport state per --disk, in order]} (virtio_pci_save). The
 * config gives the rest (image, queues, serial); the rate limiter starts full again.
 */
static int blk_set_save(void *dev, json_t *state, char *err, size_t errlen)
{
	struct blk_set *s = dev;
	json_t *disks = state_add_array(state, "disks");
	int r = disks ? 0 : -ENOMEM;

	for (unsigned i = 0; r == 0 && i < s->n; i++) {
		json_t *d = state_append_object(disks);

		r = d ? virtio_pci_save(s->disks[i]->vp, d, err, errlen) : -ENOMEM;
	}
	if (r == -ENOMEM)
		snprintf(err, errlen, "virtio-blk: out of memory");
	return r;
}

/* The disks' states in @state, one per configured disk (ctx->err set otherwise). */
static int blk_set_states(const struct dev_ctx *ctx, const json_t *state, const json_t **ret)
{
	const json_t *disks;
	char why[160];
	int r;

	r = state_get_array(state, "disks", CONFIG_MAX_DISKS, &disks, why, sizeof(why));
	if (r < 0)
		return error_set(ctx->err, ctx->errlen, r, "virtio-blk: %s", why);
	if (json_array_size(disks) != ctx->cfg->num_disks)
		return error_set(ctx->err, ctx->errlen, -EINVAL,
				 "virtio-blk: field 'disks': %zu disks saved, %u configured",
				 json_array_size(disks), ctx->cfg->num_disks);
	*ret = disks;
	return 0;
}

/* The disk just created takes its saved state, paused (blk_set_resume starts it). */
static int blk_restore(const struct dev_ctx *ctx, struct blk *b, const json_t *state)
{
	char why[CONFIG_ERR_MAX];
	int r = virtio_pci_load(b->vp, state, why, sizeof(why));

	if (r < 0)
		return error_set(ctx->err, ctx->errlen, r, "--disk %s: %s", b->id, why);
	return 0;
}

static int blk_set_realize(const struct dev_ctx *ctx, const struct json_t *state, void **ret)
{
	const json_t *disks = NULL;
	struct blk_set *s;
	int r;

	if (state) {
		r = blk_set_states(ctx, state, &disks);
		if (r < 0)
			return r;
	}
	if (ctx->cfg->num_disks == 0) {
		*ret = NULL;
		return 0;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (unsigned i = 0; i < ctx->cfg->num_disks && i < CONFIG_MAX_DISKS; i++) {
		void *d;

		r = blk_create(ctx, &ctx->cfg->disks[i], &d);
		if (r == 0)
			s->disks[s->n++] = d;
		if (r == 0 && disks)
			r = blk_restore(ctx, d, json_array_get(disks, i));
		if (r < 0) {
			blk_set_unrealize(s);
			return r;
		}
	}
	*ret = s;
	return 0;
}

static void blk_set_reset(void *dev)
{
	struct blk_set *s = dev;

	for (unsigned i = 0; i < s->n; i++)
		virtio_pci_reset(s->disks[i]->vp);
}

static void blk_set_pause(void *dev)
{
	struct blk_set *s = dev;

	/* No new requests; the ones in flight land before pause returns (a quiesced device). */
	for (unsigned i = 0; i < s->n; i++) {
		virtio_pci_pause(s->disks[i]->vp);
		blk_drain(s->disks[i]);
	}
}

static void blk_set_resume(void *dev)
{
	struct blk_set *s = dev;

	for (unsigned i = 0; i < s->n; i++)
		virtio_pci_resume(s->disks[i]->vp);
}

static void blk_set_counters(void *dev, dev_counter_fn emit, void *opaque)
{
	struct blk_set *s = dev;

	for (unsigned i = 0; i < s->n; i++) {
		struct blk *b = s->disks[i];

		virtio_pci_lock(b->vp);
		for (unsigned c = 0; c < BLK_NR_COUNTERS; c++)
			emit(opaque, b->id, blk_counter_names[c], b->counters[c]);
		virtio_pci_unlock(b->vp);
	}
}

/* vm.info's device tree: each disk by its id, with its PCI slot. */
static void blk_set_nodes(void *dev, dev_node_fn emit, void *opaque)
{
	struct blk_set *s = dev;

	for (unsigned i = 0; i < s->n; i++)
		emit(opaque, s->disks[i]->id,
		     (int)pci_function_slot(virtio_pci_function(s->disks[i]->vp)));
}

const struct dev_ops blk_ops = {
	.name = "virtio-blk",
	.realize = blk_set_realize,
	.unrealize = blk_set_unrealize,
	.reset = blk_set_reset,
	.pause = blk_set_pause,
	.resume = blk_set_resume,
	.save = blk_set_save,
	.counters = blk_set_counters,
	.nodes = blk_set_nodes,
};
