/*
 * virtio-balloon N: the device's num_pages is N (the e2e test starts cubicle with
 * --balloon size=N*4K); actual written by the driver reads back; two pages of a four-page
 * buffer filled with a pattern are inflated and come back zero (the host gave them back)
 * while their neighbours keep the pattern; a frame number beyond RAM is answered and harms
 * nothing; deflated pages are usable again.
 */
#include "../virtio.h"
#include "scenarios.h"

#define BALLOON_DEVICE_MODERN	    0x1045
#define BALLOON_DEVICE_TRANSITIONAL 0x1002
#define BALLOON_PATTERN		    0x5a
#define BALLOON_WAIT_MS		    2000
#define PAGE			    4096

static bool post_pfns(struct virtq *q, uint32_t *pfns, unsigned n, char *why)
{
	q->desc[0] = (struct virtq_desc){ (uint64_t)pfns, n * 4, 0, 0 };
	virtq_publish(q, 0);
	virtq_notify(q);
	uint64_t deadline = tsc_deadline(BALLOON_WAIT_MS);
	struct virtq_used_elem e;
	while (!virtq_get_used(q, &e)) {
		if (tsc_expired(deadline)) {
			snprintf(why, WHY_MAX, "queue %u: no answer", q->index);
			return false;
		}
		cpu_relax();
	}
	return true;
}

static bool page_is(const uint8_t *p, uint8_t v)
{
	for (unsigned i = 0; i < PAGE; i++)
		if (p[i] != v)
			return false;
	return true;
}

bool scenario_virtio_balloon(uint64_t want_pages, char *why)
{
	struct virtio_dev v;
	struct virtq inflate, deflate;
	if (!virtio_find(&v, BALLOON_DEVICE_MODERN, BALLOON_DEVICE_TRANSITIONAL, why) ||
	    !virtio_start(&v, VIRTIO_F_VERSION_1, why) ||
	    !virtio_queue_setup(&v, 0, 16, &inflate, why) ||
	    !virtio_queue_setup(&v, 1, 16, &deflate, why))
		return false;
	virtio_driver_ok(&v);
	uint32_t num_pages = mmio_read32(v.devcfg);
	if (num_pages != want_pages) {
		snprintf(why, WHY_MAX, "num_pages %u, expected %lu", num_pages, want_pages);
		return false;
	}
	mmio_write32(v.devcfg + 4, 2);
	if (mmio_read32(v.devcfg + 4) != 2) {
		snprintf(why, WHY_MAX, "actual reads %u after writing 2",
			 mmio_read32(v.devcfg + 4));
		return false;
	}

	uint8_t *buf = alloc_pages(4 * PAGE, PAGE);
	uint32_t *pfns = alloc_pages(64, 64);
	if (!buf || !pfns) {
		snprintf(why, WHY_MAX, "out of guest memory");
		return false;
	}
	memset(buf, BALLOON_PATTERN, 4 * PAGE);
	pfns[0] = (uint32_t)(((uint64_t)buf >> 12) + 1);
	pfns[1] = (uint32_t)(((uint64_t)buf >> 12) + 2);
	pfns[2] = (uint32_t)((ALIGN_UP(ram_end() ? ram_end() : (4ull << 30), 1ull << 30) +
			      (16ull << 30)) >>
			     12);
	if (!post_pfns(&inflate, pfns, 3, why))
		return false;
	if (!page_is(buf, BALLOON_PATTERN) || !page_is(buf + 3 * PAGE, BALLOON_PATTERN)) {
		snprintf(why, WHY_MAX, "a page next to the inflated ones changed");
		return false;
	}
	if (!page_is(buf + PAGE, 0) || !page_is(buf + 2 * PAGE, 0)) {
		snprintf(why, WHY_MAX, "inflated pages still hold their data (not given back)");
		return false;
	}
	if (!post_pfns(&deflate, pfns, 2, why))
		return false;
	memset(buf + PAGE, 0x33, 2 * PAGE);
	if (!page_is(buf + PAGE, 0x33) || !page_is(buf + 2 * PAGE, 0x33)) {
		snprintf(why, WHY_MAX, "deflated pages are not usable");
		return false;
	}
	if (virtio_status(&v) & VIRTIO_STATUS_NEEDS_RESET) {
		snprintf(why, WHY_MAX, "device needs reset");
		return false;
	}
	snprintf(why, WHY_MAX, "num_pages %u, 2 pages given back and deflated", num_pages);
	return true;
}
