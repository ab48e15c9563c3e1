/*
 * The devices the hostile virtqueue scenarios can attack (hostile-target=NAME), each with its
 * good request: the check that the device still works after the attack and a reset. A device's
 * entry and good request live here or in its scenario file; add one line to the table.
 */
#include "hostile.h"

/* virtio-rng: one 64-byte writable buffer comes back with 1..64 bytes. */
static bool rng_good_request(struct hostile *h, char *why)
{
	memset(h->buf, 0, BUF_SIZE);
	h->q.desc[0] = (struct virtq_desc){ (uint64_t)h->buf, BUF_SIZE, VIRTQ_DESC_F_WRITE, 0 };
	virtq_publish(&h->q, 0);
	virtq_notify(&h->q);
	struct virtq_used_elem e;
	if (!hostile_wait_used(h, &e, why))
		return false;
	if (e.id != 0 || e.len < 1 || e.len > BUF_SIZE) {
		snprintf(why, WHY_MAX, "good request: used id %u len %u", e.id, e.len);
		return false;
	}
	return true;
}

const struct hostile_target hostile_target_rng = {
	.name = "rng",
	.modern_id = RNG_DEVICE_MODERN,
	.transitional_id = RNG_DEVICE_TRANSITIONAL,
	.queue = 0,
	.good_request = rng_good_request,
};

/*
 * virtio-blk: GET_ID in h->buf: header (16 bytes, readable) at 0, the 20-byte id at 16, the
 * status byte at 48. Comes back with status 0 and a used length of 21.
 */
#define BLK_DEVICE_MODERN	0x1042
#define BLK_DEVICE_TRANSITIONAL 0x1001
#define BLK_T_GET_ID		8

static bool blk_good_request(struct hostile *h, char *why)
{
	memset(h->buf, 0, BUF_SIZE);
	h->buf[0] = BLK_T_GET_ID;
	h->buf[48] = 0xff;
	h->q.desc[0] = (struct virtq_desc){ (uint64_t)h->buf, 16, VIRTQ_DESC_F_NEXT, 1 };
	h->q.desc[1] = (struct virtq_desc){ (uint64_t)h->buf + 16, 20,
					    VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2 };
	h->q.desc[2] = (struct virtq_desc){ (uint64_t)h->buf + 48, 1, VIRTQ_DESC_F_WRITE, 0 };
	virtq_publish(&h->q, 0);
	virtq_notify(&h->q);
	struct virtq_used_elem e;
	if (!hostile_wait_used(h, &e, why))
		return false;
	if (e.id != 0 || e.len != 21 || h->buf[48] != 0) {
		snprintf(why, WHY_MAX, "good request: used id %u len %u status %u", e.id, e.len,
			 h->buf[48]);
		return false;
	}
	return true;
}

static const struct hostile_target hostile_target_blk = {
	.name = "blk",
	.modern_id = BLK_DEVICE_MODERN,
	.transitional_id = BLK_DEVICE_TRANSITIONAL,
	.queue = 0,
	.good_request = blk_good_request,
};

/*
 * virtio-vsock, transmit queue (1): one packet, an RST from cid VSOCK_GUEST_CID to the host for
 * a connection that does not exist (the device drops it silently), comes back used with
 * length 0. The VM runs with --vsock cid=3 (tests/e2e).
 */
#define VSOCK_DEVICE_MODERN 0x1053 /* 0x1040 + 19; vsock has no transitional id */
#define VSOCK_GUEST_CID	    3
#define VSOCK_HDR_SIZE	    44

static void put_le(uint8_t *b, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static bool vsock_good_request(struct hostile *h, char *why)
{
	memset(h->buf, 0, BUF_SIZE);
	put_le(h->buf, VSOCK_GUEST_CID, 8); /* src_cid */
	put_le(h->buf + 8, 2, 8);	    /* dst_cid: the host */
	put_le(h->buf + 16, 1234, 4);	    /* src_port */
	put_le(h->buf + 20, 5678, 4);	    /* dst_port */
	put_le(h->buf + 28, 1, 2);	    /* type: stream */
	put_le(h->buf + 30, 3, 2);	    /* op: RST */
	h->q.desc[0] = (struct virtq_desc){ (uint64_t)h->buf, VSOCK_HDR_SIZE, 0, 0 };
	return hostile_expect_used(h, 0, why);
}

static const struct hostile_target hostile_target_vsock = {
	.name = "vsock",
	.modern_id = VSOCK_DEVICE_MODERN,
	.transitional_id = VSOCK_DEVICE_MODERN,
	.queue = 1,
	.good_request = vsock_good_request,
};

/* virtio-balloon, inflateq: one frame number beyond RAM (never one of ours: the device would
 * give the page back) comes back as a used entry of length 0. */
static bool balloon_good_request(struct hostile *h, char *why)
{
	uint32_t pfn = (uint32_t)(hostile_beyond_ram() >> 12);

	memcpy(h->buf, &pfn, sizeof(pfn));
	h->q.desc[0] = (struct virtq_desc){ (uint64_t)h->buf, sizeof(pfn), 0, 0 };
	return hostile_expect_used(h, 0, why);
}

static const struct hostile_target hostile_target_balloon = {
	.name = "balloon",
	.modern_id = 0x1045,
	.transitional_id = 0x1002,
	.queue = 0,
	.good_request = balloon_good_request,
};

/* virtio-pmem: FLUSH (le32 0) answered with le32 0 in a 4-byte writable buffer. */
static bool pmem_good_request(struct hostile *h, char *why)
{
	uint32_t type = 0, resp = 0xffffffff;

	memcpy(h->buf, &type, sizeof(type));
	memcpy(h->buf + 32, &resp, sizeof(resp));
	h->q.desc[0] = (struct virtq_desc){ (uint64_t)h->buf, 4, VIRTQ_DESC_F_NEXT, 1 };
	h->q.desc[1] = (struct virtq_desc){ (uint64_t)h->buf + 32, 4, VIRTQ_DESC_F_WRITE, 0 };
	virtq_publish(&h->q, 0);
	virtq_notify(&h->q);
	struct virtq_used_elem e;
	if (!hostile_wait_used(h, &e, why))
		return false;
	memcpy(&resp, h->buf + 32, sizeof(resp));
	if (e.id != 0 || e.len != 4 || resp != 0) {
		snprintf(why, WHY_MAX, "good request: used id %u len %u ret %u", e.id, e.len, resp);
		return false;
	}
	return true;
}

static const struct hostile_target hostile_target_pmem = {
	.name = "pmem",
	.modern_id = 0x105b,
	.transitional_id = 0x105b, /* virtio-pmem has no transitional id */
	.queue = 0,
	.good_request = pmem_good_request,
};

static const struct hostile_target *const targets[] = {
	&hostile_target_rng,   &hostile_target_blk,	&hostile_target_net,
	&hostile_target_vsock, &hostile_target_balloon, &hostile_target_pmem,
};

const struct hostile_target *hostile_selected_target(char *why)
{
	char name[32];
	if (!cmdline_str("hostile-target", name, sizeof(name)))
		return &hostile_target_rng;
	for (size_t i = 0; i < ARRAY_SIZE(targets); i++)
		if (str_eq(name, targets[i]->name))
			return targets[i];
	snprintf(why, WHY_MAX, "unknown hostile-target '%s'", name);
	return NULL;
}
