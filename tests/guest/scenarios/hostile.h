/*
 * What the hostile-* scenarios share (hostile.c: the virtqueue ones; hostile_transport.c: the
 * transport, MSI-X and configuration-space ones): the virtio-rng device, one 16-entry queue,
 * and the recovery check (reset, bring-up, one good request).
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

struct hostile {
	struct virtio_dev v;
	struct virtq q;
	uint8_t *buf;
	uint64_t *table1, *table2; /* indirect tables (struct virtq_desc[1] each) */
};

/* Finds the virtio-rng (virtio_find) and allocates the buffers once. */
bool hostile_init(struct hostile *h, char *why);
/* Reset, features (VERSION_1), queue 0 with HOSTILE_QUEUE_SIZE entries, DRIVER_OK. */
bool hostile_bring_up(struct hostile *h, char *why);
/* One good 64-byte request on queue 0: true when it comes back with 1..64 bytes. */
bool hostile_good_request(struct hostile *h, char *why);
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
