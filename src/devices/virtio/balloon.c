/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-balloon (virtio 1.2 §5.5), --balloon. Queues: inflateq 0, deflateq 1, statsq 2 and,
 * with free_page_reporting=on, reporting_vq 3 (Linux numbers the queues it finds in order, so
 * without FREE_PAGE_HINT, which is not offered, the reporting queue is the fourth).
 *
 * Inflate: each 32-bit page frame number (4 KiB pages) the driver hands over is checked against
 * guest RAM (ctx->mem: the 32-bit hole, pmem mappings and anything else outside RAM is not
 * there) and the page is given back to the host: MADV_DONTNEED on private RAM, MADV_REMOVE on
 * shared (memfd) RAM, contiguous pages in one call. A guest touching a page it inflated gets a
 * zero page again, so deflate needs no host work: its frame numbers are only checked and
 * counted. With transparent huge pages (private RAM, --memory thp=on) a 2 MiB range given
 * back in part is taken out of THP: see balloon_thp_off(). Frame numbers outside RAM are
 * dropped and counted (bad_pfns), never trusted; an element with more than BALLOON_MAX_PFNS
 * frame numbers has the rest dropped and counted too.
 *
 * Free page reporting: the driver lends writable buffers that are free guest pages (2 MiB
 * chunks in Linux); their host pages are discarded the same way and the buffer returned.
 *
 * Statistics: the driver keeps one buffer of {le16 tag, le64 value} in statsq; the device keeps
 * the latest values and holds the buffer, returning it (which asks for fresh values) whenever
 * the counters are read.
 *
 * The target (num_pages) is set at realize from --balloon size= and at run time by
 * balloon_set_target() (vm.resize desired_balloon), which sends a config-change interrupt. The
 * driver reports what it holds in actual.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "config/config.h"
#include "devices/virtio/virtio_devices.h"
#include "mem/guest_mem.h"
#include "util/log.h"
#include "util/state.h"
#include "util/util.h"
#include "virtio/virtio.h"

#define PCI_CLASS_OTHERS 0xff0000

/* Feature bits (§5.5.3). */
#define VIRTIO_BALLOON_F_STATS_VQ	1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2
#define VIRTIO_BALLOON_F_REPORTING	5

/* Config space: le32 num_pages, le32 actual, le32 free_page_hint_cmd_id, le32 poison_val. */
#define BALLOON_CFG_NUM_PAGES 0
#define BALLOON_CFG_ACTUAL    4
#define BALLOON_CFG_SIZE      16

#define BALLOON_STAT_SIZE 10 /* le16 tag + le64 value, packed */

/* Elements served per wake-up of one queue before coming back through the loop. */
#define BALLOON_BATCH 64

#define BALLOON_THP_SIZE (2UL << 20) /* x86's transparent huge page */

struct balloon {
	struct virtio_pci *vp;
	struct virtio_dev_ops vops; /* per instance: the queue count follows the config */
	const struct guest_mem *mem;
	int advice; /* MADV_DONTNEED, MADV_REMOVE for shared RAM, -1 for huge pages: none */
	bool thp;   /* private RAM with transparent huge pages (MADV_HUGEPAGE) */
	uint32_t num_pages;
	uint32_t actual;
	struct balloon_counters c;
	uint64_t stats[BALLOON_STATS_MAX];
	uint32_t stats_valid; /* bit per tag in stats[] */
	bool have_stats_elem;
	struct log_ratelimit rl;
	struct virtq_elem stats_elem;
	struct virtq_elem elem;
	uint32_t pfns[BALLOON_MAX_PFNS];
};

/* True when [p, p + len) lies inside one RAM region. */
static bool balloon_in_ram(const struct balloon *b, uintptr_t p, size_t len)
{
	for (unsigned i = 0; i < b->mem->nr_regions; i++) {
		uintptr_t host = (uintptr_t)b->mem->regions[i].host;

		if (p >= host && len <= b->mem->regions[i].size &&
		    p - host <= b->mem->regions[i].size - len)
			return true;
	}
	return false;
}

/*
 * After [host, host + len) was given back from RAM with transparent huge pages: the 2 MiB
 * ranges at its ends, which the guest gave back only in part, are taken out of THP for good
 * (MADV_NOHUGEPAGE). Otherwise the host's khugepaged, which by default collapses a range with
 * a single page still there (max_ptes_none 511), makes it a whole huge page again and the
 * memory the balloon gave back creeps back into the VMM (16 MiB every 10 s with the default
 * scan rate). A range given back whole has nothing left to collapse and keeps THP. The cost:
 * 4 KiB pages there once the guest takes the memory back, and the mapping split in more VMAs.
 */
static void balloon_thp_off(struct balloon *b, uint8_t *host, size_t len)
{
	uintptr_t start = (uintptr_t)host, end = start + len;
	uintptr_t ends[2] = { ALIGN_DOWN(start, BALLOON_THP_SIZE),
			      ALIGN_DOWN(end - 1, BALLOON_THP_SIZE) };

	for (unsigned i = 0; i < 2; i++) {
		uintptr_t at = ends[i];

		if (i == 1 && at == ends[0])
			break;
		if (at >= start && at + BALLOON_THP_SIZE <= end)
			continue; /* given back whole */
		if (!balloon_in_ram(b, at, BALLOON_THP_SIZE))
			continue; /* no huge page can map it */
		if (madvise((void *)at, BALLOON_THP_SIZE, MADV_NOHUGEPAGE) < 0)
			log_ratelimited(&b->rl, LOG_WARN,
					"virtio-balloon: madvise(MADV_NOHUGEPAGE): %s",
					strerror(errno));
	}
}

/* Gives [host, host + len) back to the host; @host and @len page aligned. */
static void balloon_discard(struct balloon *b, uint8_t *host, size_t len)
{
	if (!len)
		return;
	if (b->advice < 0) {
		b->c.discard_failed += len / BALLOON_PAGE_SIZE; /* huge pages: counted only */
		return;
	}
	if (madvise(host, len, b->advice) < 0) {
		b->c.discard_failed += len / BALLOON_PAGE_SIZE;
		log_ratelimited(&b->rl, LOG_WARN, "virtio-balloon: madvise of %zu bytes: %s", len,
				strerror(errno));
		return;
	}
	b->c.discarded_bytes += len;
	if (b->thp)
		balloon_thp_off(b, host, len);
}

/* One inflate (@inflate) or deflate element: checks every frame number, discards runs. */
static void balloon_do_pfns(struct balloon *b, const struct virtq_elem *e, bool inflate)
{
	uint64_t want = e->out_len / sizeof(uint32_t);
	size_t n = (size_t)MIN(want, (uint64_t)BALLOON_MAX_PFNS);
	uint8_t *run = NULL;
	size_t run_len = 0;

	if (want > n || e->out_len % sizeof(uint32_t))
		b->c.bad_requests++;
	b->c.dropped_pfns += want - n;
	n = virtq_elem_read(e, 0, b->pfns, n * sizeof(uint32_t)) / sizeof(uint32_t);
	for (size_t i = 0; i < n; i++) {
		uint64_t gpa = (uint64_t)le32toh(b->pfns[i]) * BALLOON_PAGE_SIZE;
		uint8_t *host = guest_mem_translate(b->mem, gpa, BALLOON_PAGE_SIZE);

		if (!host || !IS_ALIGNED((uintptr_t)host, BALLOON_PAGE_SIZE)) {
			b->c.bad_pfns++;
			continue;
		}
		if (!inflate) {
			b->c.deflated_pages++;
			continue;
		}
		b->c.inflated_pages++;
		if (run && host == run + run_len) {
			run_len += BALLOON_PAGE_SIZE;
			continue;
		}
		balloon_discard(b, run, run_len);
		run = host;
		run_len = BALLOON_PAGE_SIZE;
	}
	balloon_discard(b, run, run_len);
}

/* A reporting element: its writable buffers are free guest pages. */
static void balloon_do_report(struct balloon *b, struct virtq_elem *e)
{
	const struct iovec *iov = virtq_elem_in(e);

	if (e->out_num)
		b->c.bad_requests++;
	for (unsigned i = 0; i < e->in_num; i++) {
		uintptr_t start = ALIGN_UP((uintptr_t)iov[i].iov_base, BALLOON_PAGE_SIZE);
		uintptr_t end = ((uintptr_t)iov[i].iov_base + iov[i].iov_len) &
				~(uintptr_t)(BALLOON_PAGE_SIZE - 1);

		if (end <= start)
			continue;
		balloon_discard(b, (uint8_t *)start, end - start);
		b->c.reported_bytes += end - start;
	}
}

/* The statistics buffer: keeps the values, holds the element until balloon_stats_refresh(). */
static void balloon_do_stats(struct balloon *b, struct virtq_elem *e)
{
	uint8_t s[BALLOON_STAT_SIZE];
	size_t n = MIN((size_t)e->out_len / BALLOON_STAT_SIZE, (size_t)BALLOON_STATS_MAX * 2);

	for (size_t i = 0; i < n; i++) {
		uint16_t tag;
		uint64_t v;

		if (virtq_elem_read(e, i * BALLOON_STAT_SIZE, s, sizeof(s)) != sizeof(s))
			break;
		memcpy(&tag, s, sizeof(tag));
		memcpy(&v, s + 2, sizeof(v));
		tag = le16toh(tag);
		if (tag >= BALLOON_STATS_MAX)
			continue; /* a tag newer than us */
		b->stats[tag] = le64toh(v);
		b->stats_valid |= 1u << tag;
	}
	b->c.stats_updates++;
}

/* The queue's work, with the transport's lock held (loop thread). */
static void balloon_queue_notify(void *opaque, unsigned q)
{
	struct balloon *b = opaque;
	unsigned served = 0;

	while (served < BALLOON_BATCH) {
		if (q == BALLOON_Q_STATS && b->have_stats_elem)
			break; /* the driver has one buffer: a second one is its bug; leave it */
		if (virtio_pci_pop(b->vp, q, &b->elem) <= 0)
			break;
		served++;
		switch (q) {
		case BALLOON_Q_INFLATE:
		case BALLOON_Q_DEFLATE:
			balloon_do_pfns(b, &b->elem, q == BALLOON_Q_INFLATE);
			break;
		case BALLOON_Q_STATS:
			balloon_do_stats(b, &b->elem);
			b->stats_elem = b->elem;
			b->have_stats_elem = true;
			continue; /* held until the next refresh */
		default:
			balloon_do_report(b, &b->elem);
			break;
		}
		if (virtio_pci_push(b->vp, q, &b->elem, 0) < 0)
			break;
	}
	if (served == BALLOON_BATCH)
		virtio_pci_kick(b->vp, q);
	virtio_pci_notify(b->vp, q);
}

static void balloon_config_read(void *opaque, uint32_t offset, uint8_t *data, unsigned len)
{
	struct balloon *b = opaque;
	uint8_t cfg[BALLOON_CFG_SIZE] = { 0 };
	uint32_t v;

	v = htole32(b->num_pages);
	memcpy(cfg + BALLOON_CFG_NUM_PAGES, &v, sizeof(v));
	v = htole32(b->actual);
	memcpy(cfg + BALLOON_CFG_ACTUAL, &v, sizeof(v));
	memcpy(data, cfg + offset, len);
}

/* Only actual is the driver's to write; anything else is ignored. */
static void balloon_config_write(void *opaque, uint32_t offset, const uint8_t *data, unsigned len)
{
	struct balloon *b = opaque;
	uint8_t cur[sizeof(uint32_t)];
	uint32_t v = htole32(b->actual);

	memcpy(cur, &v, sizeof(v));
	for (unsigned i = 0; i < len; i++) {
		uint32_t at = offset + i;

		if (at >= BALLOON_CFG_ACTUAL && at < BALLOON_CFG_ACTUAL + sizeof(uint32_t))
			cur[at - BALLOON_CFG_ACTUAL] = data[i];
	}
	memcpy(&v, cur, sizeof(v));
	b->actual = le32toh(v);
}

/* The statistics buffer is statsq's latest pop: nothing is popped after it until it is
 * returned (virtio_dev_ops.held). The other queues complete what they pop at once. */
static unsigned balloon_held(void *opaque, unsigned q)
{
	const struct balloon *b = opaque;

	return q == BALLOON_Q_STATS && b->have_stats_elem;
}

static void balloon_dev_reset(void *opaque)
{
	struct balloon *b = opaque;

	b->have_stats_elem = false; /* its buffer belongs to the driver again */
	b->actual = 0;
}

static void balloon_destroy(struct balloon *b)
{
	if (!b)
		return;
	b->vp = virtio_pci_destroy(b->vp);
	free(b);
}

int balloon_create(const struct dev_ctx *ctx, const struct balloon_config *bc, void **ret)
{
	struct balloon *b;
	int err;

	if (!ctx->pci || !ctx->mem || !bc || bc->size / BALLOON_PAGE_SIZE > UINT32_MAX)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->mem = ctx->mem;
	b->advice = ctx->cfg && ctx->cfg->memory.shared ? MADV_REMOVE : MADV_DONTNEED;
	if (ctx->cfg && ctx->cfg->memory.hugepages)
		b->advice = -1; /* a 4 KiB piece of a huge page cannot be given back */
	b->thp = b->advice == MADV_DONTNEED && ctx->cfg && ctx->cfg->memory.thp;
	b->num_pages = (uint32_t)(bc->size / BALLOON_PAGE_SIZE);
	b->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(1000000000ULL, 5);
	b->vops = (struct virtio_dev_ops){
		.name = "virtio-balloon",
		.device_id = VIRTIO_ID_BALLOON,
		.class_code = PCI_CLASS_OTHERS,
		.features = 1ULL << VIRTIO_BALLOON_F_STATS_VQ,
		.num_queues = 3,
		.max_queue_size = BALLOON_QUEUE_SIZE,
		.config_size = BALLOON_CFG_SIZE,
		.config_read = balloon_config_read,
		.config_write = balloon_config_write,
		.queue_notify = balloon_queue_notify,
		.reset = balloon_dev_reset,
		.held = balloon_held,
	};
	if (bc->deflate_on_oom)
		b->vops.features |= 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	if (bc->free_page_reporting) {
		b->vops.features |= 1ULL << VIRTIO_BALLOON_F_REPORTING;
		b->vops.num_queues = 4;
	}
	err = virtio_pci_create(ctx->pci, ctx->mem, ctx->loop, &b->vops, b, &b->vp);
	if (err < 0) {
		balloon_destroy(b);
		return err;
	}
	*ret = b;
	return 0;
}

struct virtio_pci *balloon_transport(void *dev)
{
	return ((struct balloon *)dev)->vp;
}

int balloon_set_target(void *dev, uint64_t bytes)
{
	struct balloon *b = dev;

	if (!b)
		return -ENODEV;
	if (!IS_ALIGNED(bytes, BALLOON_PAGE_SIZE) || bytes > guest_mem_total(b->mem))
		return -EINVAL;
	virtio_pci_lock(b->vp);
	if (b->num_pages != bytes / BALLOON_PAGE_SIZE) {
		b->num_pages = (uint32_t)(bytes / BALLOON_PAGE_SIZE);
		virtio_pci_config_changed(b->vp);
	}
	virtio_pci_unlock(b->vp);
	return 0;
}

void balloon_get_info(void *dev, struct balloon_info *ret)
{
	struct balloon *b = dev;

	virtio_pci_lock(b->vp);
	*ret = (struct balloon_info){
		.target_bytes = (uint64_t)b->num_pages * BALLOON_PAGE_SIZE,
		.actual_bytes = (uint64_t)b->actual * BALLOON_PAGE_SIZE,
		.counters = b->c,
		.stats_valid = b->stats_valid,
	};
	memcpy(ret->stats, b->stats, sizeof(ret->stats));
	virtio_pci_unlock(b->vp);
}

uint64_t balloon_actual_bytes(void *dev)
{
	struct balloon *b = dev;
	uint64_t bytes;

	if (!b)
		return 0;
	virtio_pci_lock(b->vp);
	bytes = (uint64_t)b->actual * BALLOON_PAGE_SIZE;
	virtio_pci_unlock(b->vp);
	return MIN(bytes, guest_mem_total(b->mem));
}

void balloon_stats_refresh(void *dev)
{
	struct balloon *b = dev;

	virtio_pci_lock(b->vp);
	if (b->have_stats_elem) {
		b->have_stats_elem = false;
		if (virtio_pci_push(b->vp, BALLOON_Q_STATS, &b->stats_elem, 0) == 0)
			virtio_pci_notify(b->vp, BALLOON_Q_STATS);
	}
	virtio_pci_unlock(b->vp);
}

/* ---- saved state (util/state.h) ---- */

/*
 * What the balloon keeps besides its transport: the target and what the driver says it holds,
 * the driver's last statistics, and the features offered (deflate_on_oom, free page reporting:
 * the config must give the same, the driver negotiated them). Inflated pages need nothing: a
 * snapshot's RAM has them as zero pages (holes) already. The statistics buffer the device
 * holds is in flight on statsq: the transport accounts for it (virtio.h) and it is taken
 * again at resume. Counters are not state: they count from realize.
 */
struct balloon_state {
	uint64_t features;
	uint32_t num_pages;
	uint32_t actual;
	uint32_t stats_valid;
	uint64_t stats[BALLOON_STATS_MAX];
};

static const struct state_field balloon_state_fields[] = {
	STATE_U64(struct balloon_state, features),
	STATE_U32(struct balloon_state, num_pages),
	STATE_U32(struct balloon_state, actual),
	STATE_U32(struct balloon_state, stats_valid),
	STATE_ARRAY(struct balloon_state, stats, STATE_U64),
};

static int balloon_save_device(void *dev, json_t *obj)
{
	struct balloon *b = dev;
	struct balloon_state st = {
		.features = b->vops.features,
		.num_pages = b->num_pages,
		.actual = b->actual,
		.stats_valid = b->stats_valid,
	};

	memcpy(st.stats, b->stats, sizeof(st.stats));
	return state_save_fields(obj, balloon_state_fields, ARRAY_SIZE(balloon_state_fields), &st);
}

static int balloon_load_device(void *dev, const json_t *obj, char *err, size_t errlen)
{
	struct balloon *b = dev;
	struct balloon_state st;
	int r = state_load_fields(obj, balloon_state_fields, ARRAY_SIZE(balloon_state_fields), &st,
				  err, errlen);

	if (r < 0)
		return r;
	if (st.features != b->vops.features)
		return error_set(err, errlen, -EINVAL,
				 "field 'features': 0x%llx saved, --balloon gives 0x%llx "
				 "(deflate_on_oom, free_page_reporting)",
				 (unsigned long long)st.features,
				 (unsigned long long)b->vops.features);
	if ((uint64_t)st.num_pages * BALLOON_PAGE_SIZE > guest_mem_total(b->mem))
		return error_set(err, errlen, -EINVAL,
				 "field 'num_pages': %u pages is more than the guest's RAM",
				 st.num_pages);
	if (st.stats_valid >> BALLOON_STATS_MAX)
		return error_set(err, errlen, -EINVAL, "field 'stats_valid': unknown tags");
	virtio_pci_lock(b->vp);
	b->num_pages = st.num_pages;
	b->actual = st.actual;
	b->stats_valid = st.stats_valid;
	memcpy(b->stats, st.stats, sizeof(b->stats));
	virtio_pci_unlock(b->vp);
	return 0;
}

int balloon_state_save(void *dev, json_t *obj, char *err, size_t errlen)
{
	struct balloon *b = dev;

	return vdev_state_save(b->vp, dev, balloon_save_device, obj, err, errlen);
}

int balloon_state_load(void *dev, const json_t *obj, char *err, size_t errlen)
{
	struct balloon *b = dev;

	return vdev_state_load(b->vp, dev, balloon_load_device, obj, err, errlen);
}

/* The device is alone in its entry: its state is the instance's object itself. */
static int balloon_realize(const struct dev_ctx *ctx, const struct json_t *state, void **ret)
{
	const struct balloon_config *bc = ctx->cfg->balloon;
	char why[256];
	void *b;
	int r;

	if (!bc) {
		*ret = NULL;
		if (state && json_object_size(state))
			return error_set(ctx->err, ctx->errlen, -EINVAL,
					 "--balloon: the snapshot has a balloon, the config none");
		return 0;
	}
	r = balloon_create(ctx, bc, &b);
	if (r < 0)
		return error_set(ctx->err, ctx->errlen, r,
				 "--balloon: cannot create the device: %s", strerror(-r));
	r = state ? balloon_state_load(b, state, why, sizeof(why)) : 0;
	if (r < 0) {
		balloon_destroy(b);
		return error_set(ctx->err, ctx->errlen, r, "--balloon: %s", why);
	}
	*ret = b;
	return 0;
}

static int balloon_save(void *dev, json_t *state, char *err, size_t errlen)
{
	if (!dev)
		return 0; /* not configured: nothing */
	return vdev_state_save_named(state, balloon_state_save, dev, "virtio-balloon", err, errlen);
}

static void balloon_unrealize(void *dev)
{
	balloon_destroy(dev);
}

static void balloon_reset(void *dev)
{
	if (dev)
		virtio_pci_reset(balloon_transport(dev));
}

static void balloon_pause(void *dev)
{
	if (dev)
		virtio_pci_pause(balloon_transport(dev));
}

static void balloon_resume(void *dev)
{
	if (dev)
		virtio_pci_resume(balloon_transport(dev));
}

static void balloon_counters(void *dev, dev_counter_fn emit, void *opaque)
{
	struct balloon_info i;

	balloon_get_info(dev, &i);
	emit(opaque, "balloon", "target_bytes", i.target_bytes);
	emit(opaque, "balloon", "actual_bytes", i.actual_bytes);
	emit(opaque, "balloon", "inflated_pages", i.counters.inflated_pages);
	emit(opaque, "balloon", "deflated_pages", i.counters.deflated_pages);
	emit(opaque, "balloon", "discarded_bytes", i.counters.discarded_bytes);
	emit(opaque, "balloon", "reported_bytes", i.counters.reported_bytes);
	emit(opaque, "balloon", "bad_pfns", i.counters.bad_pfns);
	emit(opaque, "balloon", "dropped_pfns", i.counters.dropped_pfns);
	emit(opaque, "balloon", "bad_requests", i.counters.bad_requests);
	emit(opaque, "balloon", "discard_failed", i.counters.discard_failed);
	balloon_stats_refresh(dev);
}

const struct dev_ops balloon_ops = {
	.name = "virtio-balloon",
	.realize = balloon_realize,
	.unrealize = balloon_unrealize,
	.reset = balloon_reset,
	.pause = balloon_pause,
	.resume = balloon_resume,
	.save = balloon_save,
	.counters = balloon_counters,
};
