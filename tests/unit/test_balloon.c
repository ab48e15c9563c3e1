/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-balloon (src/devices/virtio/balloon.c): inflate gives pages back, frame numbers outside
 * RAM are dropped and counted, the per-element bound, statistics, free page reporting, the
 * target and its config-change interrupt.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <sys/mman.h>

#include "devices/virtio/virtio_devices.h"
#include "virtio_harness.h"
#include "vdev_state_harness.h"

#define QSIZE 16
#define BUF   0x40000 /* request buffers in the harness's RAM */
/* A second RAM region, page aligned, after a hole: the pages the tests balloon. */
#define RAM2_GPA  0x200000ULL
#define RAM2_SIZE 0x100000ULL
#define RAM2_PFN  (RAM2_GPA >> 12)
#define HOLE_PFN  (0x100000ULL >> 12) /* between the regions */
/* A third region, two 2 MiB huge-page ranges with MADV_HUGEPAGE: the THP tests add it. */
#define THP_GPA	 0x400000ULL
#define THP_SIZE (2UL << 20)
#define THP_PFN	 (THP_GPA >> 12)

#define F_STATS	     (1ULL << 1)
#define F_DEFLATE    (1ULL << 2)
#define F_REPORTING  (1ULL << 5)
#define F_OFFERED(x) ((x)->offered)

struct fx {
	struct vh *h;
	void *dev;
	uint8_t *ram2;
	struct balloon_config bc;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	x->h = vh_create(false);
	x->ram2 = mmap(NULL, RAM2_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(x->ram2 != MAP_FAILED);
	assert_int_equal(guest_mem_add_region(&x->h->mem, RAM2_GPA, RAM2_SIZE, x->ram2), 0);
	x->h->cfg.memory.size = VH_RAM_SIZE + RAM2_SIZE;
	x->bc.size = 16 * 4096;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;

	balloon_ops.unrealize(x->dev);
	vh_destroy(x->h);
	munmap(x->ram2, RAM2_SIZE);
	free(x);
	return 0;
}

static uint64_t device_features(struct vh *h)
{
	vh_wr(h, VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
	return vh_rd(h, VIRTIO_PCI_COMMON_DF, 4);
}

static void start(struct fx *x, uint64_t features)
{
	unsigned nq = x->bc.free_page_reporting ? 4 : 3;

	assert_int_equal(balloon_create(&x->h->ctx, &x->bc, &x->dev), 0);
	vh_attach(x->h, virtio_pci_function(balloon_transport(x->dev)), nq + 1);
	assert_true(vh_negotiate(x->h, VH_VERSION_1 | features) & VIRTIO_STATUS_FEATURES_OK);
	for (unsigned q = 0; q < nq; q++)
		vh_setup_queue(x->h, q, QSIZE);
	vh_driver_ok(x->h);
}

/* Posts a one-descriptor chain on @q at BUF + q * 0x10000, runs the queue; returns used idx. */
static uint16_t post(struct fx *x, unsigned q, uint64_t addr, uint32_t len, bool writable)
{
	vh_desc(x->h, q, 0, addr, len, writable ? VIRTQ_DESC_F_WRITE : 0, 0);
	vh_avail(x->h, q, QSIZE, 0);
	vh_notify(x->h, q);
	virtio_pci_run_notify(balloon_transport(x->dev), q);
	return vh_used_idx(x->h, q);
}

static uint16_t post_pfns(struct fx *x, unsigned q, const uint32_t *pfns, unsigned n)
{
	uint64_t at = BUF + (uint64_t)q * 0x10000;

	memcpy(x->h->ram + at, pfns, n * sizeof(uint32_t));
	return post(x, q, at, n * sizeof(uint32_t), false);
}

static struct balloon_counters counters(struct fx *x)
{
	struct balloon_info i;

	balloon_get_info(x->dev, &i);
	return i.counters;
}

static uint32_t devcfg(struct fx *x, unsigned off)
{
	return (uint32_t)vh_rd(x->h, VIRTIO_PCI_DEVCFG_OFF + off, 4);
}

static void test_features_and_config(void **state)
{
	struct fx *x = *state;

	x->bc.deflate_on_oom = true;
	start(x, F_STATS | F_DEFLATE);
	assert_int_equal(device_features(x->h) & (F_STATS | F_DEFLATE | F_REPORTING),
			 F_STATS | F_DEFLATE);
	assert_int_equal(devcfg(x, 0), 16);
	assert_int_equal(devcfg(x, 4), 0);
	/* the driver reports what it holds; num_pages is not the driver's to write */
	vh_wr(x->h, VIRTIO_PCI_DEVCFG_OFF + 4, 12, 4);
	vh_wr(x->h, VIRTIO_PCI_DEVCFG_OFF + 0, 99, 4);
	assert_int_equal(devcfg(x, 4), 12);
	assert_int_equal(devcfg(x, 0), 16);
	vh_wr(x->h, VIRTIO_PCI_DEVCFG_OFF + 5, 1, 1); /* a byte of actual: 12 + 256 */
	assert_int_equal(devcfg(x, 4), 268);
}

/* vm.info's memory_actual_size: what the driver says it holds, never more than the RAM. */
static void test_actual_bytes(void **state)
{
	struct fx *x = *state;

	assert_int_equal(balloon_actual_bytes(NULL), 0);
	start(x, F_STATS);
	assert_int_equal(balloon_actual_bytes(x->dev), 0);
	vh_wr(x->h, VIRTIO_PCI_DEVCFG_OFF + 4, 12, 4);
	assert_int_equal(balloon_actual_bytes(x->dev), 12 * 4096);
	/* a driver's lie: 2^32 - 1 pages, 16 TiB */
	vh_wr(x->h, VIRTIO_PCI_DEVCFG_OFF + 4, 0xffffffff, 4);
	assert_int_equal(balloon_actual_bytes(x->dev), guest_mem_total(&x->h->mem));
	/* a device reset: the driver holds nothing */
	vh_wr(x->h, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_int_equal(balloon_actual_bytes(x->dev), 0);
}

static void test_target_sends_config_interrupt(void **state)
{
	struct fx *x = *state;
	uint8_t gen;
	unsigned msis;

	start(x, F_STATS);
	gen = (uint8_t)vh_rd(x->h, VIRTIO_PCI_COMMON_CFGGEN, 1);
	msis = x->h->nr_msis;
	assert_int_equal(balloon_set_target(x->dev, 64 * 4096), 0);
	assert_int_equal(devcfg(x, 0), 64);
	assert_int_equal(x->h->nr_msis, msis + 1);
	assert_int_equal(x->h->msi_data[msis], 0); /* the config vector */
	assert_int_not_equal(vh_rd(x->h, VIRTIO_PCI_COMMON_CFGGEN, 1), gen);
	/* the same target again: nothing to tell */
	assert_int_equal(balloon_set_target(x->dev, 64 * 4096), 0);
	assert_int_equal(x->h->nr_msis, msis + 1);
	assert_int_equal(balloon_set_target(x->dev, 4097), -EINVAL);
	assert_int_equal(balloon_set_target(x->dev, (VH_RAM_SIZE + RAM2_SIZE) + 4096), -EINVAL);
	assert_int_equal(balloon_set_target(NULL, 0), -ENODEV);
	assert_int_equal(devcfg(x, 0), 64);
}

static void test_inflate_gives_pages_back(void **state)
{
	struct fx *x = *state;
	uint32_t pfns[] = { RAM2_PFN + 1, RAM2_PFN + 2, RAM2_PFN + 3, RAM2_PFN + 7 };
	struct balloon_counters c;

	start(x, F_STATS);
	memset(x->ram2, 0xab, RAM2_SIZE);
	assert_int_equal(post_pfns(x, BALLOON_Q_INFLATE, pfns, 4), 1);
	assert_int_equal(vh_used_len(x->h, BALLOON_Q_INFLATE, 0, QSIZE), 0);
	for (unsigned p = 0; p < 9; p++) {
		bool gone = p == 1 || p == 2 || p == 3 || p == 7;

		assert_int_equal(x->ram2[p * 4096], gone ? 0 : 0xab);
		assert_int_equal(x->ram2[p * 4096 + 4095], gone ? 0 : 0xab);
	}
	c = counters(x);
	assert_int_equal(c.inflated_pages, 4);
	assert_int_equal(c.discarded_bytes, 4 * 4096);
	assert_int_equal(c.bad_pfns, 0);

	/* deflate: checked and counted; the pages are usable again (zero-filled) */
	assert_int_equal(post_pfns(x, BALLOON_Q_DEFLATE, pfns, 2), 1);
	c = counters(x);
	assert_int_equal(c.deflated_pages, 2);
	x->ram2[4096] = 1;
	assert_int_equal(x->ram2[4096], 1);
}

static void test_bad_pfns_dropped(void **state)
{
	struct fx *x = *state;
	uint32_t pfns[] = { 0xffffffff,	  HOLE_PFN,  HOLE_PFN + 0xff, RAM2_PFN + (RAM2_SIZE >> 12),
			    RAM2_PFN + 5, 0x80000000 };
	struct balloon_counters c;

	start(x, F_STATS);
	memset(x->ram2, 0xcd, RAM2_SIZE);
	assert_int_equal(post_pfns(x, BALLOON_Q_INFLATE, pfns, 6), 1);
	c = counters(x);
	assert_int_equal(c.bad_pfns, 5);
	assert_int_equal(c.inflated_pages, 1);
	assert_int_equal(x->ram2[5 * 4096], 0);
	assert_int_equal(x->ram2[4 * 4096], 0xcd);
	assert_int_equal(x->ram2[6 * 4096], 0xcd);
	/* the same on deflate */
	assert_int_equal(post_pfns(x, BALLOON_Q_DEFLATE, pfns, 6), 1);
	assert_int_equal(counters(x).bad_pfns, 10);
	assert_int_equal(virtio_pci_status(balloon_transport(x->dev)) & VIRTIO_STATUS_NEEDS_RESET,
			 0);
}

static void test_huge_and_odd_elements(void **state)
{
	struct fx *x = *state;
	uint32_t len = (BALLOON_MAX_PFNS + 1000) * 4;
	struct balloon_counters c;

	start(x, F_STATS);
	/* BALLOON_MAX_PFNS + 1000 frame numbers (all pfn 0, in the unaligned harness RAM) */
	assert_true(BUF + len <= VH_RAM_SIZE);
	memset(x->h->ram + BUF, 0, len);
	assert_int_equal(post(x, BALLOON_Q_INFLATE, BUF, len, false), 1);
	c = counters(x);
	assert_int_equal(c.dropped_pfns, 1000);
	assert_int_equal(c.bad_requests, 1);
	/* 6 bytes: one frame number and half of another */
	assert_int_equal(post(x, BALLOON_Q_INFLATE, BUF, 6, false), 2);
	assert_int_equal(counters(x).bad_requests, 2);
	/* no readable part at all */
	assert_int_equal(post(x, BALLOON_Q_INFLATE, BUF, 64, true), 3);
	assert_int_equal(vh_used_len(x->h, BALLOON_Q_INFLATE, 2, QSIZE), 0);
	assert_int_equal(x->h->ram[BUF], 0);
}

static void put_stat(uint8_t *p, uint16_t tag, uint64_t v)
{
	memcpy(p, &tag, 2);
	memcpy(p + 2, &v, 8);
}

static void test_stats(void **state)
{
	struct fx *x = *state;
	uint8_t *s = x->h->ram + BUF;
	struct balloon_info i;

	start(x, F_STATS);
	put_stat(s, 4, 123456);	     /* VIRTIO_BALLOON_S_MEMFREE */
	put_stat(s + 10, 5, 999999); /* MEMTOT */
	put_stat(s + 20, 200, 1);    /* unknown tag: skipped */
	assert_int_equal(post(x, BALLOON_Q_STATS, BUF, 30, false), 0); /* held */
	balloon_get_info(x->dev, &i);
	assert_int_equal(i.stats[4], 123456);
	assert_int_equal(i.stats[5], 999999);
	assert_int_equal(i.stats_valid, (1u << 4) | (1u << 5));
	/* a second buffer while one is held stays in the ring */
	vh_desc(x->h, BALLOON_Q_STATS, 1, BUF, 10, 0, 0);
	vh_avail(x->h, BALLOON_Q_STATS, QSIZE, 1);
	virtio_pci_run_notify(balloon_transport(x->dev), BALLOON_Q_STATS);
	assert_int_equal(vh_used_idx(x->h, BALLOON_Q_STATS), 0);
	/* refresh: the held buffer goes back; then the waiting one is read */
	balloon_stats_refresh(x->dev);
	assert_int_equal(vh_used_idx(x->h, BALLOON_Q_STATS), 1);
	put_stat(s, 4, 7);
	virtio_pci_run_notify(balloon_transport(x->dev), BALLOON_Q_STATS);
	balloon_get_info(x->dev, &i);
	assert_int_equal(i.stats[4], 7);
	assert_int_equal(i.counters.stats_updates, 2);
}

static void test_free_page_reporting(void **state)
{
	struct fx *x = *state;

	x->bc.free_page_reporting = true;
	start(x, F_STATS | F_REPORTING);
	assert_true(device_features(x->h) & F_REPORTING);
	memset(x->ram2, 0xee, RAM2_SIZE);
	/* 3 pages from mid-page: the two whole pages inside go back, the partial ones stay */
	assert_int_equal(post(x, BALLOON_Q_REPORTING, RAM2_GPA + 0x800, 3 * 4096, true), 1);
	assert_int_equal(x->ram2[0x7ff], 0xee);
	assert_int_equal(x->ram2[0x800], 0xee);
	assert_int_equal(x->ram2[0x1000], 0);
	assert_int_equal(x->ram2[0x2fff], 0);
	assert_int_equal(x->ram2[0x3000], 0xee);
	assert_int_equal(counters(x).reported_bytes, 2 * 4096);
	/* a readable buffer is the driver's mistake: counted, nothing discarded */
	assert_int_equal(post(x, BALLOON_Q_REPORTING, RAM2_GPA + 0x10000, 4096, false), 2);
	assert_int_equal(x->ram2[0x10000], 0xee);
	assert_int_equal(counters(x).bad_requests, 1);
}

/* Whether the mapping holding @p has the VmFlags word @flag (/proc/self/smaps). */
static bool vma_flag(const void *p, const char *flag)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512], word[8];
	bool in = false, found = false;
	unsigned long lo, hi;

	assert_non_null(f);
	snprintf(word, sizeof(word), " %s ", flag);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
		else if (in && strncmp(line, "VmFlags:", 8) == 0) {
			found = strstr(line, word) != NULL;
			break;
		}
	}
	fclose(f);
	return found;
}

/*
 * RAM with transparent huge pages: a 2 MiB range the guest gave back in part is taken out of
 * THP (khugepaged would make it whole again), one given back whole keeps it; with --memory
 * thp=off nothing changes.
 */
static void thp_case(struct fx *x, bool thp)
{
	size_t span = 3 * THP_SIZE;
	uint8_t *map = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *ram = (uint8_t *)ALIGN_UP((uintptr_t)map, THP_SIZE);
	uint32_t one = THP_PFN + 5, whole[THP_SIZE >> 12];

	assert_true(map != MAP_FAILED);
	if (madvise(ram, 2 * THP_SIZE, MADV_HUGEPAGE) < 0) {
		munmap(map, span);
		skip(); /* a kernel without THP */
	}
	assert_int_equal(guest_mem_add_region(&x->h->mem, THP_GPA, 2 * THP_SIZE, ram), 0);
	x->h->cfg.memory.thp = thp;
	start(x, F_STATS);
	memset(ram, 0xab, 2 * THP_SIZE);
	assert_int_equal(post_pfns(x, BALLOON_Q_INFLATE, &one, 1), 1);
	for (unsigned i = 0; i < ARRAY_SIZE(whole); i++)
		whole[i] = (uint32_t)(THP_PFN + ARRAY_SIZE(whole) + i);
	assert_int_equal(post_pfns(x, BALLOON_Q_INFLATE, whole, ARRAY_SIZE(whole)), 2);
	assert_int_equal(ram[5 * 4096], 0);
	assert_int_equal(ram[THP_SIZE + 4096], 0);
	assert_int_equal(counters(x).discarded_bytes, (1 + ARRAY_SIZE(whole)) * 4096);
	assert_int_equal(vma_flag(ram, "nh"), thp);
	assert_false(vma_flag(ram + THP_SIZE, "nh"));
	assert_true(vma_flag(ram + THP_SIZE, "hg"));
	munmap(map, span);
}

static void test_thp_range_given_back_in_part(void **state)
{
	thp_case(*state, true);
}

static void test_thp_off_untouched(void **state)
{
	thp_case(*state, false);
}

static void test_hugepages_counted_only(void **state)
{
	struct fx *x = *state;
	uint32_t pfns[] = { RAM2_PFN, RAM2_PFN + 1 };
	struct balloon_counters c;

	x->h->cfg.memory.hugepages = true;
	start(x, F_STATS);
	memset(x->ram2, 0x42, 2 * 4096);
	assert_int_equal(post_pfns(x, BALLOON_Q_INFLATE, pfns, 2), 1);
	c = counters(x);
	assert_int_equal(c.inflated_pages, 2);
	assert_int_equal(c.discard_failed, 2);
	assert_int_equal(c.discarded_bytes, 0);
	assert_int_equal(x->ram2[4096], 0x42);
}

static void test_not_configured(void **state)
{
	struct fx *x = *state;
	void *dev = (void *)1;

	assert_int_equal(balloon_ops.realize(&x->h->ctx, NULL, &dev), 0);
	assert_null(dev);
}

/* ---- snapshot ---- */

/*
 * Realizes the balloon from @text (edited: @v for @key of the object at @path, see vh_edit;
 * @key NULL: as is) on a clone of the machine. On success the fixture moves to the clone (the
 * original is destroyed) and 0 is returned; on failure, the error (at least its first 255
 * bytes) is in @err and the fixture is unchanged.
 */
static int restore_edit(void *fx, const char *text, const char *path, const char *key, json_t *v,
			char *err, size_t errlen)
{
	struct fx *x = fx;
	struct vh *h = vh_clone(x->h, false);
	uint8_t *ram2 =
		mmap(NULL, RAM2_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	json_t *o = vs_load(text, path, key, v);
	void *dev = NULL;
	int r;

	assert_true(ram2 != MAP_FAILED);
	memcpy(ram2, x->ram2, RAM2_SIZE);
	assert_int_equal(guest_mem_add_region(&h->mem, RAM2_GPA, RAM2_SIZE, ram2), 0);
	h->cfg.memory = x->h->cfg.memory;
	h->cfg.balloon = calloc(1, sizeof(*h->cfg.balloon));
	assert_non_null(h->cfg.balloon);
	*h->cfg.balloon = x->bc;
	err[0] = 0;
	h->ctx.err = err;
	h->ctx.errlen = errlen;
	r = balloon_ops.realize(&h->ctx, o, &dev);
	h->ctx.err = NULL;
	json_decref(o);
	if (r < 0) {
		assert_true(err[0] != 0);
		assert_null(dev);
		vh_destroy(h);
		munmap(ram2, RAM2_SIZE);
		return r;
	}
	balloon_ops.unrealize(x->dev);
	vh_destroy(x->h);
	munmap(x->ram2, RAM2_SIZE);
	x->h = h;
	x->dev = dev;
	x->ram2 = ram2;
	vh_adopt(h, virtio_pci_function(balloon_transport(dev)));
	return 0;
}

static void test_state_round_trip(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *s1 = NULL, *s2 = NULL, *s3 = NULL;
	uint8_t *st = x->h->ram + BUF + BALLOON_Q_STATS * 0x10000;
	uint32_t pfns[] = { RAM2_PFN + 3 };
	struct balloon_info i;
	char err[256];

	x->bc.free_page_reporting = true;
	x->bc.deflate_on_oom = true;
	start(x, F_STATS | F_DEFLATE | F_REPORTING);
	put_stat(st, 4, 123456);
	assert_int_equal(post(x, BALLOON_Q_STATS, BUF + BALLOON_Q_STATS * 0x10000, 10, false), 0);
	assert_int_equal(balloon_set_target(x->dev, 40 * 4096), 0);
	vh_wr(x->h, VIRTIO_PCI_DEVCFG_OFF + 4, 12, 4); /* actual */
	balloon_ops.pause(x->dev);
	s1 = vs_save(balloon_ops.save, x->dev);
	s2 = vs_save(balloon_ops.save, x->dev);
	assert_string_equal(s1, s2); /* saving twice gives the same */

	assert_int_equal(restore_edit(x, s1, "", NULL, NULL, err, sizeof(err)), 0);
	s3 = vs_save(balloon_ops.save, x->dev);
	assert_string_equal(s1, s3);
	balloon_get_info(x->dev, &i);
	assert_int_equal(i.target_bytes, 40 * 4096);
	assert_int_equal(i.actual_bytes, 12 * 4096);
	assert_int_equal(i.stats[4], 123456);
	assert_int_equal(i.counters.stats_updates, 0); /* counters count from realize */
	assert_int_equal(devcfg(x, 0), 40);

	/* resumed: the statistics buffer the device held is taken again, and returned on a
	 * refresh; inflate works on the clone's RAM */
	balloon_ops.resume(x->dev);
	st = x->h->ram + BUF + BALLOON_Q_STATS * 0x10000; /* the clone's RAM */
	put_stat(st, 4, 77);
	virtio_pci_run_notify(balloon_transport(x->dev), BALLOON_Q_STATS);
	balloon_get_info(x->dev, &i);
	assert_int_equal(i.stats[4], 77);
	assert_int_equal(i.counters.stats_updates, 1);
	assert_int_equal(vh_used_idx(x->h, BALLOON_Q_STATS), 0);
	balloon_stats_refresh(x->dev);
	assert_int_equal(vh_used_idx(x->h, BALLOON_Q_STATS), 1);
	memset(x->ram2 + 3 * 4096, 0x5a, 4096);
	assert_int_equal(post_pfns(x, BALLOON_Q_INFLATE, pfns, 1), 1);
	assert_int_equal(x->ram2[3 * 4096], 0);
	assert_int_equal(counters(x).inflated_pages, 1);
}

static void test_state_refused(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *saved = NULL;
	char err[256];

	start(x, F_STATS);
	balloon_ops.pause(x->dev);
	saved = vs_save(balloon_ops.save, x->dev);
	vs_expect_refused(restore_edit, x, saved, "device", "num_pages", json_integer(1 << 20),
			  "'num_pages'");
	vs_expect_refused(restore_edit, x, saved, "device", "num_pages", json_integer(-1),
			  "'num_pages'");
	vs_expect_refused(restore_edit, x, saved, "device", "actual", json_string("12"),
			  "'actual'");
	vs_expect_refused(restore_edit, x, saved, "device", "stats_valid", json_integer(1 << 16),
			  "'stats_valid'");
	vs_expect_refused(restore_edit, x, saved, "device", "stats", json_array(), "'stats'");
	vs_expect_refused(restore_edit, x, saved, "device", "features", NULL, "'features'");
	vs_expect_refused(restore_edit, x, saved, "", "device", NULL, "'device'");
	vs_expect_refused(restore_edit, x, saved, "", "device", json_integer(3), "'device'");
	vs_expect_refused(restore_edit, x, saved, "", "queues", NULL, "'queues'");
	/* another config: free page reporting adds a queue and a feature */
	x->bc.free_page_reporting = true;
	vs_expect_refused(restore_edit, x, saved, "", NULL, NULL, "has 4");
	x->bc.free_page_reporting = false;
	x->bc.deflate_on_oom = true;
	vs_expect_refused(restore_edit, x, saved, "", NULL, NULL, "features");
	x->bc.deflate_on_oom = false;
	/* a balloon in the snapshot, none in the config */
	{
		void *dev = (void *)1;
		json_t *o = json_loads(saved, 0, NULL);

		x->h->ctx.err = err;
		x->h->ctx.errlen = sizeof(err);
		assert_int_equal(balloon_ops.realize(&x->h->ctx, o, &dev), -EINVAL);
		assert_non_null(strstr(err, "--balloon"));
		assert_null(dev);
		x->h->ctx.err = NULL;
		json_decref(o);
	}
	/* and the saved state itself is still fine */
	assert_int_equal(restore_edit(x, saved, "", NULL, NULL, err, sizeof(err)), 0);
}

/* One byte of the saved state changed at a time: loaded or refused, never a crash. */
static void test_state_damaged(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *saved = NULL;

	start(x, F_STATS);
	balloon_ops.pause(x->dev);
	saved = vs_save(balloon_ops.save, x->dev);
	assert_true(vs_damage(restore_edit, x, saved) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_features_and_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_actual_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_target_sends_config_interrupt, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_inflate_gives_pages_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_pfns_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_and_odd_elements, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_page_reporting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thp_range_given_back_in_part, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thp_off_untouched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hugepages_counted_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_configured, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_damaged, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
