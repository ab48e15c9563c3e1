/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-pmem (virtio 1.2 §5.19), --pmem: a file mapped into guest-physical memory.
 *
 * The file is mmap'd MAP_SHARED (the guest's stores reach the file), or MAP_PRIVATE with
 * discard_writes=on (the guest may write; the file never changes: copy-on-write pages that are
 * dropped with the VM). The mapping becomes a memory slot of its own through ctx->map_ram, at a
 * PMEM_GPA_ALIGN-aligned address in the VM's device memory area, outside RAM: the guest learns
 * {start, size} from config space and Linux's virtio_pmem claims the range itself (no e820 or
 * ACPI entry). The guest reaches the file with loads and stores, so only FLUSH goes through the
 * request queue: out le32 type (0 = FLUSH), in le32 ret (0, or 1 for an error). A flush is
 * answered after an fdatasync() of the file that started after it was popped (with
 * discard_writes=on there is nothing to flush). Any other type, and a request whose header or
 * response do not fit, is refused and counted.
 *
 * The fdatasync of a large dirty file takes seconds: it runs on virtio-blk's I/O engine
 * (block/io.h: io_uring, or one confined worker thread), never on the VMM loop. Requests are
 * answered in the order they were popped: each waits in a ring until the sync that covers it
 * lands; every request popped while a sync is in flight waits for the next one, which covers
 * them all (one sync for a burst of flushes). A refused request with nothing ahead of it is
 * answered at once. Reset drops the waiting requests (their queue is gone) but not the sync
 * in flight; pause waits for every sync, so a paused device holds nothing (save needs that).
 *
 * Size: size= (a multiple of 2 MiB), or the file's size. A file shorter than size= is extended
 * (writable files only: with discard_writes=on it is refused, as a guest load past the end of
 * the file would fault). PATH may be a directory: then an unnamed temporary file of size=
 * bytes is created in it (Cloud Hypervisor's behaviour).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "devices/block/io.h"
#include "devices/virtio/virtio_devices.h"
#include "util/log.h"
#include "util/state.h"
#include "util/util.h"
#include "virtio/virtio.h"

#define PCI_CLASS_STORAGE_OTHER 0x018000

#define VIRTIO_PMEM_REQ_TYPE_FLUSH 0
#define VIRTIO_PMEM_RESP_OK	   0
#define VIRTIO_PMEM_RESP_EIO	   1

#define PMEM_CFG_SIZE 16 /* le64 start, le64 size */

#define OPT "--pmem"

/* The le32 answer fits in this many pieces of the driver's in-buffers (each ≥ 1 byte). */
#define PMEM_RESP_IOVS sizeof(uint32_t)

/* A request popped and not answered yet: what its answer and used entry need. */
struct pmem_req {
	struct iovec resp[PMEM_RESP_IOVS]; /* the first 4 bytes of its in-buffers */
	unsigned resp_n;		   /* 0: nowhere to answer, pushed untouched */
	uint16_t head;
	uint32_t in_len;
	bool flush; /* answered with its sync's result; anything else gets EIO */
};

struct pmem {
	struct virtio_pci *vp;
	void (*unmap_ram)(void *opaque, uint64_t gpa);
	void *ram_opaque;
	const struct dev_loop *loop; /* NULL in tests: pmem_drain completes the syncs */
	struct blk_io *io;	     /* the syncs; NULL with discard_writes=on */
	bool io_watched;
	int fd;
	uint8_t *host;
	uint64_t size;
	uint64_t gpa;
	bool mapped; /* in guest memory: unmap_ram at destroy */
	bool discard_writes;
	/* Requests in pop order: a ring of @n from @first; the @syncing first ones are covered by
	 * the fdatasync in flight. @sync_inflight outlives a reset, which empties the ring. */
	struct pmem_req reqs[PMEM_QUEUE_SIZE];
	unsigned first, n, syncing;
	bool sync_inflight;
	struct pmem_counters c;
	struct log_ratelimit rl;
	struct virtq_elem elem;
};

static struct pmem_req *pmem_req_at(struct pmem *p, unsigned i)
{
	return &p->reqs[(p->first + i) % PMEM_QUEUE_SIZE];
}

/* Where @e's answer goes: the first 4 bytes of its in-buffers, if they hold that many. */
static void pmem_req_fill(struct pmem_req *r, struct virtq_elem *e)
{
	const struct iovec *in = virtq_elem_in(e);
	size_t left = sizeof(uint32_t);

	r->head = e->head;
	r->in_len = e->in_len;
	r->resp_n = 0;
	if (e->in_len < sizeof(uint32_t))
		return;
	for (unsigned i = 0; i < e->in_num && left; i++) {
		size_t take = MIN(in[i].iov_len, left);

		if (!take)
			continue;
		r->resp[r->resp_n++] = (struct iovec){ in[i].iov_base, take };
		left -= take;
	}
}

/* Classifies one popped request into @r; counts it. */
static void pmem_req_take(struct pmem *p, struct pmem_req *r, struct virtq_elem *e)
{
	uint32_t type;

	pmem_req_fill(r, e);
	r->flush = r->resp_n && virtq_elem_read(e, 0, &type, sizeof(type)) == sizeof(type) &&
		   le32toh(type) == VIRTIO_PMEM_REQ_TYPE_FLUSH;
	if (r->flush)
		p->c.flushes++;
	else
		p->c.bad_requests++;
}

/* Answers the @count oldest requests, flushes with @sync_res (0 or -errno), and pushes them. */
static void pmem_complete(struct pmem *p, unsigned count, int64_t sync_res)
{
	struct virtq_used_item items[PMEM_QUEUE_SIZE];

	assert(count <= p->n);
	if (!count)
		return;
	for (unsigned i = 0; i < count; i++) {
		struct pmem_req *r = pmem_req_at(p, i);
		uint32_t resp = htole32(r->flush && sync_res == 0 ? VIRTIO_PMEM_RESP_OK
								  : VIRTIO_PMEM_RESP_EIO);
		const uint8_t *src = (const uint8_t *)&resp;

		if (r->flush && sync_res < 0)
			p->c.flush_errors++;
		for (unsigned k = 0; k < r->resp_n; k++) {
			memcpy(r->resp[k].iov_base, src, r->resp[k].iov_len);
			src += r->resp[k].iov_len;
		}
		items[i] = (struct virtq_used_item){ r->head, r->in_len,
						     r->resp_n ? (uint32_t)sizeof(resp) : 0 };
	}
	p->first = (p->first + count) % PMEM_QUEUE_SIZE;
	p->n -= count;
	(void)virtio_pci_push_batch(p->vp, 0, items, count);
	virtio_pci_notify(p->vp, 0);
}

/*
 * With no sync in flight: answers the refused requests at the head, then starts one fdatasync
 * for all the rest (without an engine, discard_writes=on, they are answered at once).
 */
static void pmem_advance(struct pmem *p)
{
	unsigned lead = 0;
	int r;

	if (p->sync_inflight)
		return; /* its completion comes back here */
	while (lead < p->n && (!pmem_req_at(p, lead)->flush || !p->io))
		lead++;
	pmem_complete(p, lead, 0);
	if (!p->n)
		return;
	r = blk_io_submit(p->io, BLK_IO_FDATASYNC, p->fd, NULL, 0, 0, 0);
	if (r < 0) {
		/* Cannot happen (one sync at a time on a depth-1 engine); never leave them hanging. */
		pmem_complete(p, p->n, r);
		return;
	}
	blk_io_commit(p->io);
	p->syncing = p->n;
	p->sync_inflight = true;
}

/* Pops what the driver queued (while the ring has room), then advances (lock held). */
static void pmem_process(struct pmem *p)
{
	unsigned served = 0;

	while (served < PMEM_BATCH && p->n < PMEM_QUEUE_SIZE &&
	       virtio_pci_pop(p->vp, 0, &p->elem) > 0) {
		served++;
		pmem_req_take(p, pmem_req_at(p, p->n), &p->elem);
		p->n++;
	}
	pmem_advance(p);
	/* A full batch may have more behind it; a full ring is come back to by the sync. */
	if (served == PMEM_BATCH)
		virtio_pci_kick(p->vp, 0);
}

static void pmem_queue_notify(void *opaque, unsigned q)
{
	(void)q;
	pmem_process(opaque);
}

/* The sync in flight landed: answers what it covered, then serves the rest (lock held). */
static void pmem_reap(struct pmem *p)
{
	struct blk_io_cqe c;

	if (!blk_io_reap(p->io, &c, 1))
		return;
	p->sync_inflight = false;
	if (c.res < 0)
		log_ratelimited(&p->rl, LOG_WARN, "virtio-pmem: fdatasync: %s",
				strerror((int)-c.res));
	pmem_complete(p, p->syncing, c.res);
	p->syncing = 0;
	pmem_process(p);
}

static void pmem_io_cb(void *opaque, uint32_t events)
{
	struct pmem *p = opaque;
	uint64_t v;

	(void)events;
	while (read(blk_io_fd(p->io), &v, sizeof(v)) < 0 && errno == EINTR)
		;
	virtio_pci_lock(p->vp);
	pmem_reap(p);
	virtio_pci_unlock(p->vp);
}

void pmem_drain(void *dev)
{
	struct pmem *p = dev;

	if (!p->io)
		return;
	virtio_pci_lock(p->vp);
	while (blk_io_inflight(p->io) > 0) {
		blk_io_wait(p->io);
		pmem_reap(p);
	}
	virtio_pci_unlock(p->vp);
}

/* The queue is gone: the waiting requests with it; a sync in flight lands on an empty ring. */
static void pmem_vreset(void *opaque)
{
	struct pmem *p = opaque;

	p->first = p->n = p->syncing = 0;
}

static void pmem_config_read(void *opaque, uint32_t offset, uint8_t *data, unsigned len)
{
	struct pmem *p = opaque;
	uint64_t cfg[2] = { htole64(p->gpa), htole64(p->size) };

	memcpy(data, (uint8_t *)cfg + offset, len);
}

static const struct virtio_dev_ops pmem_vops = {
	.name = "virtio-pmem",
	.device_id = VIRTIO_ID_PMEM,
	.class_code = PCI_CLASS_STORAGE_OTHER,
	.num_queues = 1,
	.max_queue_size = PMEM_QUEUE_SIZE,
	.config_size = PMEM_CFG_SIZE,
	.config_read = pmem_config_read,
	.queue_notify = pmem_queue_notify,
	.reset = pmem_vreset,
};

void pmem_destroy(void *dev)
{
	struct pmem *p = dev;

	if (!p)
		return;
	if (p->vp)
		pmem_drain(p);
	p->vp = virtio_pci_destroy(p->vp);
	if (p->io_watched)
		(void)p->loop->del_fd(p->loop->loop, blk_io_fd(p->io));
	p->io = blk_io_destroy(p->io);
	if (p->mapped)
		p->unmap_ram(p->ram_opaque, p->gpa);
	if (p->host)
		munmap(p->host, p->size);
	if (p->fd >= 0)
		close(p->fd);
	free(p);
}

/* Opens the backing file and settles its size; fills p->fd and p->size. */
static int pmem_open(struct pmem *p, const struct pmem_config *pc, char *err, size_t errlen)
{
	int flags = (pc->discard_writes ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	struct stat st;

	if (stat(pc->file, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (!pc->size)
			return error_set(err, errlen, -EINVAL,
					 OPT ": '%s' is a directory: size= is required", pc->file);
		flags = O_TMPFILE | O_RDWR | O_CLOEXEC;
	}
	p->fd = open(pc->file, flags, 0600);
	if (p->fd < 0)
		return error_set(err, errlen, -errno, OPT ": cannot open '%s': %s", pc->file,
				 strerror(errno));
	if (fstat(p->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return error_set(err, errlen, -EINVAL, OPT ": '%s' is not a regular file",
				 pc->file);
	p->size = pc->size ? pc->size : (uint64_t)st.st_size;
	if (!p->size || !IS_ALIGNED(p->size, PMEM_ALIGN))
		return error_set(err, errlen, -EINVAL,
				 OPT ": '%s' is %" PRIu64 " bytes: the size must be a non-zero "
				     "multiple of 2 MiB (give size=)",
				 pc->file, p->size);
	if (p->size > (uint64_t)st.st_size) {
		if (pc->discard_writes)
			return error_set(err, errlen, -EINVAL,
					 OPT ": '%s' is shorter than size= and discard_writes=on "
					     "cannot extend it",
					 pc->file);
		if (ftruncate(p->fd, (off_t)p->size) < 0)
			return error_set(err, errlen, -errno, OPT ": cannot extend '%s': %s",
					 pc->file, strerror(errno));
	}
	return 0;
}

/* The engine for the syncs (one at a time), its completions watched on the loop. */
static int pmem_io_start(struct pmem *p, const struct dev_ctx *ctx)
{
	int r;

	if (p->discard_writes)
		return 0;
	r = blk_io_create(1, true, "pmem-worker", ctx->confine_worker, ctx->confine_opaque, &p->io);
	if (r < 0)
		return error_set(ctx->err, ctx->errlen, r,
				 OPT ": cannot start the flush engine: %s", strerror(-r));
	p->loop = ctx->loop;
	if (!p->loop)
		return 0;
	r = p->loop->add_fd(p->loop->loop, blk_io_fd(p->io), EPOLLIN, pmem_io_cb, p);
	if (r < 0)
		return r;
	p->io_watched = true;
	return 0;
}

int pmem_create(const struct dev_ctx *ctx, const struct pmem_config *pc, void **ret)
{
	struct pmem *p;
	void *host;
	int r;

	if (!ctx->pci || !ctx->mem || !ctx->map_ram || !ctx->unmap_ram || !pc || !pc->file)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->fd = -1;
	p->discard_writes = pc->discard_writes;
	p->unmap_ram = ctx->unmap_ram;
	p->ram_opaque = ctx->ram_opaque;
	p->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(1000000000ULL, 5);
	r = pmem_open(p, pc, ctx->err, ctx->errlen);
	if (r < 0)
		goto fail;
	host = mmap(NULL, p->size, PROT_READ | PROT_WRITE,
		    pc->discard_writes ? MAP_PRIVATE | MAP_NORESERVE : MAP_SHARED, p->fd, 0);
	if (host == MAP_FAILED) {
		r = error_set(ctx->err, ctx->errlen, -errno, OPT ": cannot map '%s': %s", pc->file,
			      strerror(errno));
		goto fail;
	}
	p->host = host;
	(void)madvise(p->host, p->size, MADV_DONTDUMP);
	r = ctx->map_ram(ctx->ram_opaque, p->host, p->size, PMEM_GPA_ALIGN, false, &p->gpa);
	if (r < 0) {
		error_set(ctx->err, ctx->errlen, r,
			  OPT ": cannot place '%s' (%" PRIu64 "M) in guest memory: %s", pc->file,
			  p->size >> 20, strerror(-r));
		goto fail;
	}
	p->mapped = true;
	r = pmem_io_start(p, ctx);
	if (r < 0)
		goto fail;
	r = virtio_pci_create(ctx->pci, ctx->mem, ctx->loop, &pmem_vops, p, &p->vp);
	if (r < 0)
		goto fail;
	*ret = p;
	return 0;
fail:
	pmem_destroy(p);
	return r;
}

struct virtio_pci *pmem_transport(void *dev)
{
	return ((struct pmem *)dev)->vp;
}

void pmem_region(void *dev, uint64_t *ret_gpa, uint64_t *ret_size)
{
	struct pmem *p = dev;

	*ret_gpa = p->gpa;
	*ret_size = p->size;
}

void pmem_get_counters(void *dev, struct pmem_counters *ret)
{
	struct pmem *p = dev;

	virtio_pci_lock(p->vp);
	*ret = p->c;
	virtio_pci_unlock(p->vp);
}

/* ---- saved state (util/state.h) ---- */

/*
 * The guest has the device's guest-physical range in its page tables (and in config space):
 * a restored device must sit at the same place. The device memory area is allocated in a
 * fixed order from the config, so the same config gives the same address; a restore checks
 * it rather than trusting it. The file's contents are not state: the file is opened again
 * from the config. With discard_writes=on the guest's writes lived in private copy-on-write
 * pages of the mapping, which are not guest RAM: they are NOT carried into the snapshot, and
 * the restored guest sees the file as it is on disk.
 */
struct pmem_state {
	uint64_t gpa;
	uint64_t size;
	bool discard_writes;
};

static const struct state_field pmem_state_fields[] = {
	STATE_U64(struct pmem_state, gpa),
	STATE_U64(struct pmem_state, size),
	STATE_BOOL(struct pmem_state, discard_writes),
};

static int pmem_save_device(void *dev, json_t *obj)
{
	struct pmem *p = dev;
	struct pmem_state st = { p->gpa, p->size, p->discard_writes };

	return state_save_fields(obj, pmem_state_fields, ARRAY_SIZE(pmem_state_fields), &st);
}

static int pmem_load_device(void *dev, const json_t *obj, char *err, size_t errlen)
{
	struct pmem *p = dev;
	struct pmem_state st;
	int r = state_load_fields(obj, pmem_state_fields, ARRAY_SIZE(pmem_state_fields), &st, err,
				  errlen);

	if (r < 0)
		return r;
	if (st.size != p->size)
		return error_set(err, errlen, -EINVAL,
				 "field 'size': %" PRIu64 " bytes saved, the file gives %" PRIu64,
				 st.size, p->size);
	if (st.gpa != p->gpa)
		return error_set(err, errlen, -EINVAL,
				 "field 'gpa': the guest has the device at 0x%" PRIx64
				 ", the restored VM placed it at 0x%" PRIx64,
				 st.gpa, p->gpa);
	if (st.discard_writes != p->discard_writes)
		return error_set(err, errlen, -EINVAL,
				 "field 'discard_writes': %s saved, the config says %s",
				 st.discard_writes ? "on" : "off",
				 p->discard_writes ? "on" : "off");
	return 0;
}

int pmem_state_save(void *dev, json_t *obj, char *err, size_t errlen)
{
	struct pmem *p = dev;

	return vdev_state_save(p->vp, dev, pmem_save_device, obj, err, errlen);
}

int pmem_state_load(void *dev, const json_t *obj, char *err, size_t errlen)
{
	struct pmem *p = dev;

	return vdev_state_load(p->vp, dev, pmem_load_device, obj, err, errlen);
}

/* All the --pmem devices: one dev_table entry realizes them all. */
struct pmem_set {
	unsigned n;
	void *devs[CONFIG_MAX_PMEMS];
	char ids[CONFIG_MAX_PMEMS][CONFIG_ID_MAX];
};

void *pmem_set_device(void *set, unsigned i)
{
	struct pmem_set *s = set;

	return s && i < s->n ? s->devs[i] : NULL;
}

static void pmem_unrealize(void *dev)
{
	struct pmem_set *s = dev;

	if (!s)
		return;
	while (s->n)
		pmem_destroy(s->devs[--s->n]);
	free(s);
}

static int pmem_realize(const struct dev_ctx *ctx, const struct json_t *state, void **ret)
{
	const struct vm_config *cfg = ctx->cfg;
	const json_t *saved = NULL;
	struct pmem_set *s;
	char why[256];
	int r;

	if (state) {
		r = vdev_state_get_instances(state, "pmems", cfg->num_pmems, &saved, why,
					     sizeof(why));
		if (r < 0)
			return error_set(ctx->err, ctx->errlen, r, OPT ": %s", why);
	}
	if (!cfg->num_pmems) {
		*ret = NULL;
		return 0;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (unsigned i = 0; i < cfg->num_pmems && i < CONFIG_MAX_PMEMS; i++) {
		r = pmem_create(ctx, &cfg->pmems[i], &s->devs[i]);
		if (r < 0) {
			pmem_unrealize(s);
			return r;
		}
		snprintf(s->ids[i], sizeof(s->ids[i]), "%s",
			 cfg->pmems[i].id ? cfg->pmems[i].id : "");
		s->n = i + 1;
		r = saved ? pmem_state_load(s->devs[i], json_array_get(saved, i), why, sizeof(why))
			  : 0;
		if (r < 0) {
			error_set(ctx->err, ctx->errlen, r, OPT " %s: %s", s->ids[i], why);
			pmem_unrealize(s);
			return r;
		}
	}
	*ret = s;
	return 0;
}

static int pmem_save(void *dev, json_t *state, char *err, size_t errlen)
{
	struct pmem_set *s = dev;
	int r = 0;

	for (unsigned i = 0; r == 0 && s && i < s->n; i++)
		r = vdev_state_append(state, "pmems", pmem_state_save, s->devs[i], "virtio-pmem",
				      s->ids[i], err, errlen);
	return r;
}

static void pmem_reset(void *dev)
{
	struct pmem_set *s = dev;

	for (unsigned i = 0; s && i < s->n; i++)
		virtio_pci_reset(pmem_transport(s->devs[i]));
}

static void pmem_pause(void *dev)
{
	struct pmem_set *s = dev;

	/* No new requests, and every sync in flight lands before pause returns: a paused
	 * device holds no request (what save needs). */
	for (unsigned i = 0; s && i < s->n; i++) {
		virtio_pci_pause(pmem_transport(s->devs[i]));
		pmem_drain(s->devs[i]);
	}
}

static void pmem_resume(void *dev)
{
	struct pmem_set *s = dev;

	for (unsigned i = 0; s && i < s->n; i++)
		virtio_pci_resume(pmem_transport(s->devs[i]));
}

static void pmem_counters(void *dev, dev_counter_fn emit, void *opaque)
{
	struct pmem_set *s = dev;

	for (unsigned i = 0; i < s->n; i++) {
		struct pmem_counters c;

		pmem_get_counters(s->devs[i], &c);
		emit(opaque, s->ids[i], "flushes", c.flushes);
		emit(opaque, s->ids[i], "flush_errors", c.flush_errors);
		emit(opaque, s->ids[i], "bad_requests", c.bad_requests);
	}
}

const struct dev_ops pmem_ops = {
	.name = "virtio-pmem",
	.realize = pmem_realize,
	.unrealize = pmem_unrealize,
	.reset = pmem_reset,
	.pause = pmem_pause,
	.resume = pmem_resume,
	.save = pmem_save,
	.counters = pmem_counters,
};
