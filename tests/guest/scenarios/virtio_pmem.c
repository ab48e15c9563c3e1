/*
 * virtio-pmem: reads {start, size} from config space, maps the region and finds the file's
 * first bytes there ("CUBICLE-PMEM" written by the e2e test), stores a word at offset 4096 and
 * sends FLUSH, which must answer 0; an unknown request type must answer non-zero. The e2e test
 * then checks the word reached the file (or not, with discard_writes=on).
 */
#include "../virtio.h"
#include "scenarios.h"

#define PMEM_DEVICE_ID 0x105b
#define PMEM_WAIT_MS   5000
#define PMEM_MAGIC     "CUBICLE-PMEM"
#define PMEM_WORD      "guest-stored-this"

static bool request(struct virtq *q, uint32_t *req, uint32_t *resp, uint32_t type, char *why)
{
	*req = type;
	*resp = 0xdeadbeef;
	q->desc[0] = (struct virtq_desc){ (uint64_t)req, 4, VIRTQ_DESC_F_NEXT, 1 };
	q->desc[1] = (struct virtq_desc){ (uint64_t)resp, 4, VIRTQ_DESC_F_WRITE, 0 };
	virtq_publish(q, 0);
	virtq_notify(q);
	uint64_t deadline = tsc_deadline(PMEM_WAIT_MS);
	struct virtq_used_elem e;
	while (!virtq_get_used(q, &e)) {
		if (tsc_expired(deadline)) {
			snprintf(why, WHY_MAX, "request %u: no answer", type);
			return false;
		}
		cpu_relax();
	}
	if (e.len != 4) {
		snprintf(why, WHY_MAX, "request %u: used length %u", type, e.len);
		return false;
	}
	return true;
}

bool scenario_virtio_pmem(uint64_t arg, char *why)
{
	struct virtio_dev v;
	struct virtq q;
	(void)arg;
	if (!virtio_find(&v, PMEM_DEVICE_ID, PMEM_DEVICE_ID, why) ||
	    !virtio_start(&v, VIRTIO_F_VERSION_1, why) || !virtio_queue_setup(&v, 0, 16, &q, why))
		return false;
	virtio_driver_ok(&v);
	uint64_t start = mmio_read32(v.devcfg) | (uint64_t)mmio_read32(v.devcfg + 4) << 32;
	uint64_t size = mmio_read32(v.devcfg + 8) | (uint64_t)mmio_read32(v.devcfg + 12) << 32;
	if (!size || (start & ((2u << 20) - 1)) || start < ram_end()) {
		snprintf(why, WHY_MAX, "region %lx+%lx: not 2 MiB aligned above RAM", start, size);
		return false;
	}
	if (!map_identity(start, size)) {
		snprintf(why, WHY_MAX, "cannot map %lx+%lx", start, size);
		return false;
	}
	uint8_t *p = (uint8_t *)start;
	if (memcmp(p, PMEM_MAGIC, sizeof(PMEM_MAGIC) - 1) != 0) {
		snprintf(why, WHY_MAX, "the file's bytes are not at %lx", start);
		return false;
	}
	memcpy(p + 4096, PMEM_WORD, sizeof(PMEM_WORD) - 1);
	uint32_t *req = alloc_pages(8, 8), *resp = alloc_pages(8, 8);
	if (!req || !resp) {
		snprintf(why, WHY_MAX, "out of guest memory");
		return false;
	}
	if (!request(&q, req, resp, 0, why))
		return false;
	if (*resp != 0) {
		snprintf(why, WHY_MAX, "FLUSH answered %u", *resp);
		return false;
	}
	if (!request(&q, req, resp, 77, why))
		return false;
	if (*resp == 0) {
		snprintf(why, WHY_MAX, "unknown request type 77 answered 0");
		return false;
	}
	snprintf(why, WHY_MAX, "region %lx size %lx, flush ok", start, size);
	return true;
}
