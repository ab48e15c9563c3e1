/*
 * What the hostile-* scenarios share (hostile.c: the virtqueue ones; hostile_transport.c: the
 * transport, MSI-X and configuration-space ones): a target device, one 16-entry queue, and the
 * recovery check (reset, bring-up, one good request).
 *
 * The virtqueue scenarios attack the device named by the command-line option
 * `hostile-target=NAME` (default rng; the table is in hostile_targets.c); the transport
 * scenarios always use virtio-rng (the transport code is the same for every device).
 */
#ifndef GUEST_SCENARIOS_HOSTILE_H
#define GUEST_SCENARIOS_HOSTILE_H

#include "../virtio.h"
#include "scenarios.h"

#define RNG_DEVICE_MODERN	0x1044
#define RNG_DEVICE_TRANSITIONAL 0x1005
#define HOSTILE_QUEUE_SIZE	16
#define BUF_SIZE		64
#define HOSTILE_SENTINEL	0xa5

struct hostile;

/* A device the virtqueue scenarios can attack. */
struct hostile_target {
	const char *name; /* hostile-target=NAME */
	uint16_t modern_id, transitional_id;
	uint64_t features; /* negotiated besides VERSION_1 (the device must offer them) */
	uint16_t queue;	   /* the queue attacked and used for the good request */
	/*
	 * Submits one good request on h->q (descriptors from 0, buffers from h->buf, BUF_SIZE
	 * bytes, and h->table1/table2), waits for it (RECOVER_WAIT_MS) and checks the answer.
	 * True when the device served it correctly; else false with @why.
	 */
	bool (*good_request)(struct hostile *h, char *why);
};

extern const struct hostile_target hostile_target_rng;
extern const struct hostile_target hostile_target_net; /* virtio_net.c */
/* The target the command line names (hostile-target=NAME), or NULL with @why if unknown. */
const struct hostile_target *hostile_selected_target(char *why);

#define HOSTILE_RECOVER_WAIT_MS 2000

struct hostile {
	const struct hostile_target *t;
	struct virtio_dev v;
	struct virtq q;
	uint8_t *buf;
	uint64_t *table1, *table2; /* indirect tables (struct virtq_desc[1] each) */
};

/* Finds @t's device (virtio_find) and allocates the buffers once. */
bool hostile_init(struct hostile *h, const struct hostile_target *t, char *why);
/* Reset, features (VERSION_1 | t->features), queue t->queue with HOSTILE_QUEUE_SIZE entries,
 * DRIVER_OK. */
bool hostile_bring_up(struct hostile *h, char *why);
/* The target's good request (h->t->good_request). */
bool hostile_good_request(struct hostile *h, char *why);
/* Publishes the chain at descriptor 0, notifies, waits for it (hostile_wait_used) and checks
 * it comes back as used entry 0 with length @want_len; false with @why otherwise. */
bool hostile_expect_used(struct hostile *h, uint32_t want_len, char *why);
/* Waits up to HOSTILE_RECOVER_WAIT_MS for the next used entry; false with @why on timeout. */
bool hostile_wait_used(struct hostile *h, struct virtq_used_elem *ret, char *why);
/* hostile_bring_up() and hostile_good_request(); on failure @why starts "after @after: ". */
bool hostile_recover(struct hostile *h, const char *after, char *why);
/* Polls the status for DEVICE_NEEDS_RESET for up to @ms milliseconds. */
bool hostile_wait_needs_reset(struct hostile *h, uint64_t ms);
/* Whether the BUF_SIZE bytes of h->buf all still hold HOSTILE_SENTINEL. */
bool hostile_buf_intact(const struct hostile *h);

/* An address 16 GiB past the end of guest RAM (1 GiB aligned). */
static inline uint64_t hostile_beyond_ram(void)
{
	return ALIGN_UP(ram_end() ? ram_end() : (4ull << 30), 1ull << 30) + (16ull << 30);
}

#endif
