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

static const struct hostile_target *const targets[] = {
	&hostile_target_rng,
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
