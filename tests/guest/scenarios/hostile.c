/*
 * The hostile virtqueue scenarios: a driver that breaks the virtqueue rules on purpose (DESIGN.md
 * section 4). One file for the six, because they share everything but the bad request.
 * PASS: the device sets DEVICE_NEEDS_RESET or does not use the bad buffer (no used entry
 * with a length > 0, no byte written where it must not write), the VMM keeps running, and
 * after a reset the device serves one good request.
 */
#include "hostile.h"

#define HOSTILE_WAIT_MS 300

bool hostile_bring_up(struct hostile *h, char *why)
{
	if (!virtio_start(&h->v, VIRTIO_F_VERSION_1 | h->t->features, why) ||
	    !virtio_queue_setup(&h->v, h->t->queue, HOSTILE_QUEUE_SIZE, &h->q, why))
		return false;
	virtio_driver_ok(&h->v);
	return true;
}

bool hostile_wait_used(struct hostile *h, struct virtq_used_elem *ret, char *why)
{
	uint64_t deadline = tsc_deadline(HOSTILE_RECOVER_WAIT_MS);
	while (!virtq_get_used(&h->q, ret)) {
		if (tsc_expired(deadline)) {
			snprintf(why, WHY_MAX, "no answer to a good request (status 0x%x)",
				 virtio_status(&h->v));
			return false;
		}
		cpu_relax();
	}
	return true;
}

bool hostile_expect_used(struct hostile *h, uint32_t want_len, char *why)
{
	virtq_publish(&h->q, 0);
	virtq_notify(&h->q);
	struct virtq_used_elem e;
	if (!hostile_wait_used(h, &e, why))
		return false;
	if (e.id != 0 || e.len != want_len) {
		snprintf(why, WHY_MAX, "good request: used id %u len %u", e.id, e.len);
		return false;
	}
	return true;
}

bool hostile_good_request(struct hostile *h, char *why)
{
	return h->t->good_request(h, why);
}

bool hostile_init(struct hostile *h, const struct hostile_target *t, char *why)
{
	h->t = t;
	if (!virtio_find(&h->v, t->modern_id, t->transitional_id, why))
		return false;
	if (!h->buf) {
		h->buf = alloc_pages(BUF_SIZE, 64);
		h->table1 = alloc_pages(sizeof(struct virtq_desc), 16);
		h->table2 = alloc_pages(sizeof(struct virtq_desc), 16);
		if (!h->buf || !h->table1 || !h->table2) {
			snprintf(why, WHY_MAX, "out of guest memory");
			return false;
		}
	}
	return true;
}

bool hostile_recover(struct hostile *h, const char *after, char *why)
{
	char inner[WHY_MAX] = "";
	if (hostile_bring_up(h, inner) && hostile_good_request(h, inner))
		return true;
	snprintf(why, WHY_MAX, "after %s: %s", after, inner);
	return false;
}

bool hostile_wait_needs_reset(struct hostile *h, uint64_t ms)
{
	uint64_t deadline = tsc_deadline(ms);
	do {
		if (virtio_status(&h->v) & VIRTIO_STATUS_NEEDS_RESET)
			return true;
		cpu_relax();
	} while (!tsc_expired(deadline));
	return false;
}

enum kind { LOOP, OOB, OVERFLOW, AVAIL_JUMP, NESTED_INDIRECT, RO_WRITE };

static void craft(struct hostile *h, enum kind k)
{
	struct virtq_desc *d = h->q.desc;
	struct virtq_desc *t1 = (struct virtq_desc *)h->table1,
			  *t2 = (struct virtq_desc *)h->table2;
	uint64_t beyond = hostile_beyond_ram();
	memset(h->buf, HOSTILE_SENTINEL, BUF_SIZE);
	switch (k) {
	case LOOP: /* 0 -> 1 -> 0 -> ... */
		d[0] = (struct virtq_desc){ (uint64_t)h->buf, 32,
					    VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1 };
		d[1] = (struct virtq_desc){ (uint64_t)h->buf + 32, 32,
					    VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0 };
		break;
	case OOB:
		d[0] = (struct virtq_desc){ beyond, BUF_SIZE, VIRTQ_DESC_F_WRITE, 0 };
		break;
	case OVERFLOW:
		d[0] = (struct virtq_desc){ 0xffffffffffffffc0ull, 0x80, VIRTQ_DESC_F_WRITE, 0 };
		break;
	case AVAIL_JUMP:
		d[0] = (struct virtq_desc){ (uint64_t)h->buf, BUF_SIZE, VIRTQ_DESC_F_WRITE, 0 };
		break;
	case NESTED_INDIRECT: /* INDIRECT_DESC was not negotiated, and the table nests */
		t2[0] = (struct virtq_desc){ (uint64_t)h->buf, BUF_SIZE, VIRTQ_DESC_F_WRITE, 0 };
		t1[0] = (struct virtq_desc){ (uint64_t)t2, sizeof(*t2), VIRTQ_DESC_F_INDIRECT, 0 };
		d[0] = (struct virtq_desc){ (uint64_t)t1, sizeof(*t1), VIRTQ_DESC_F_INDIRECT, 0 };
		break;
	case RO_WRITE: /* a buffer the device may only read: the device must not write it */
		d[0] = (struct virtq_desc){ (uint64_t)h->buf, BUF_SIZE, 0, 0 };
		break;
	}
	if (k == AVAIL_JUMP) {
		h->q.avail->ring[0] = 0;
		barrier();
		h->q.avail_idx += h->q.size + 5; /* more entries than the ring holds */
		h->q.avail->idx = h->q.avail_idx;
	} else {
		virtq_publish(&h->q, 0);
	}
}

bool hostile_buf_intact(const struct hostile *h)
{
	for (int i = 0; i < BUF_SIZE; i++)
		if (h->buf[i] != HOSTILE_SENTINEL)
			return false;
	return true;
}

static bool hostile_run(enum kind k, char *why)
{
	static struct hostile h;
	const struct hostile_target *t = hostile_selected_target(why);
	if (!t || !hostile_init(&h, t, why) || !hostile_bring_up(&h, why))
		return false;

	craft(&h, k);
	virtq_notify(&h.q);
	uint64_t deadline = tsc_deadline(HOSTILE_WAIT_MS);
	uint8_t status = 0;
	while (!tsc_expired(deadline)) {
		status = virtio_status(&h.v);
		if (status & VIRTIO_STATUS_NEEDS_RESET)
			break;
		cpu_relax();
	}
	uint16_t used = (uint16_t)(h.q.used->idx - h.q.last_used);
	const char *outcome = (status & VIRTIO_STATUS_NEEDS_RESET) ? "needs-reset" : "ignored";
	struct virtq_used_elem e;
	while (virtq_get_used(&h.q, &e)) {
		if (e.len > 0 && k != AVAIL_JUMP) {
			snprintf(why, WHY_MAX,
				 "device used the bad chain: used id %u len %u (status 0x%x)", e.id,
				 e.len, status);
			return false;
		}
		outcome = "used with length 0";
	}
	if (k == AVAIL_JUMP && used && !(status & VIRTIO_STATUS_NEEDS_RESET)) {
		snprintf(why, WHY_MAX, "device consumed %u entries past a bogus avail index", used);
		return false;
	}
	if (k == RO_WRITE && !hostile_buf_intact(&h)) {
		snprintf(why, WHY_MAX, "device wrote a read-only buffer");
		return false;
	}
	if (!hostile_bring_up(&h, why) || !hostile_good_request(&h, why))
		return false;
	virtio_reset(&h.v, why);
	snprintf(why, WHY_MAX, "%s: %s, recovered after reset", t->name, outcome);
	return true;
}

bool scenario_hostile_loop(uint64_t arg, char *why)
{
	return hostile_run(LOOP, why);
}

bool scenario_hostile_oob(uint64_t arg, char *why)
{
	return hostile_run(OOB, why);
}

bool scenario_hostile_overflow(uint64_t arg, char *why)
{
	return hostile_run(OVERFLOW, why);
}

bool scenario_hostile_avail_jump(uint64_t arg, char *why)
{
	return hostile_run(AVAIL_JUMP, why);
}

bool scenario_hostile_nested_indirect(uint64_t arg, char *why)
{
	return hostile_run(NESTED_INDIRECT, why);
}

bool scenario_hostile_ro_write(uint64_t arg, char *why)
{
	return hostile_run(RO_WRITE, why);
}
