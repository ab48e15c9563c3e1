/*
 * virtio-rng N: N requests of 64 bytes on queue 0, the ring kept full. Passes when every
 * request comes back with 1..64 bytes, exactly once, and the bytes are not all zero. Prints
 * the time (TSC; ms when the frequency is known) and the queue interrupts received.
 */
#include "../virtio.h"
#include "scenarios.h"

#define RNG_DEVICE_MODERN	0x1044
#define RNG_DEVICE_TRANSITIONAL 0x1005
#define RNG_REQ_SIZE		64
#define RNG_QUEUE_SIZE		256
#define RNG_STALL_MS		2000 /* no completion for this long: the device is stuck */

bool scenario_virtio_rng(uint64_t n, char *why)
{
	struct virtio_dev v;
	struct virtq q;
	if (!virtio_find(&v, RNG_DEVICE_MODERN, RNG_DEVICE_TRANSITIONAL, why) ||
	    !virtio_start(&v, VIRTIO_F_VERSION_1, why) ||
	    !virtio_queue_setup(&v, 0, RNG_QUEUE_SIZE, &q, why))
		return false;
	virtio_driver_ok(&v);
	uint8_t *buf = alloc_pages((size_t)q.size * RNG_REQ_SIZE, 4096);
	bool *busy = alloc_pages(q.size, 8);
	if (!buf || !busy) {
		snprintf(why, WHY_MAX, "out of guest memory");
		return false;
	}

	uint64_t irq0 = irq_count(VIRTIO_VEC_QUEUE), t0 = rdtsc();
	uint64_t submitted = 0, done = 0, bytes = 0;
	uint8_t any = 0;
	for (uint16_t i = 0; i < q.size && submitted < n; i++, submitted++) {
		q.desc[i] = (struct virtq_desc){ (uint64_t)(buf + i * RNG_REQ_SIZE), RNG_REQ_SIZE,
						 VIRTQ_DESC_F_WRITE, 0 };
		busy[i] = true;
		virtq_publish(&q, i);
	}
	virtq_notify(&q);
	uint64_t deadline = tsc_deadline(RNG_STALL_MS);
	while (done < n) {
		struct virtq_used_elem e;
		bool progress = false;
		while (virtq_get_used(&q, &e)) {
			if (e.id >= q.size || !busy[e.id]) {
				snprintf(why, WHY_MAX, "used id %u was not in flight", e.id);
				return false;
			}
			if (e.len < 1 || e.len > RNG_REQ_SIZE) {
				snprintf(why, WHY_MAX, "request %lu: used length %u", done, e.len);
				return false;
			}
			uint8_t *b = buf + e.id * RNG_REQ_SIZE;
			for (uint32_t k = 0; k < e.len; k++)
				any |= b[k];
			bytes += e.len;
			done++;
			busy[e.id] = false;
			progress = true;
			if (submitted < n) {
				memset(b, 0, RNG_REQ_SIZE);
				busy[e.id] = true;
				virtq_publish(&q, (uint16_t)e.id);
				submitted++;
			}
		}
		if (progress) {
			virtq_notify(&q);
			deadline = tsc_deadline(RNG_STALL_MS);
		} else if (tsc_expired(deadline)) {
			snprintf(why, WHY_MAX, "timeout: %lu of %lu requests done, status 0x%x",
				 done, n, virtio_status(&v));
			return false;
		} else {
			cpu_relax();
		}
	}
	uint64_t cycles = rdtsc() - t0, irqs = irq_count(VIRTIO_VEC_QUEUE) - irq0;
	virtio_reset(&v, why);
	if (n && !any) {
		snprintf(why, WHY_MAX, "%lu bytes, all zero", bytes);
		return false;
	}
	if (tsc_khz())
		snprintf(why, WHY_MAX, "%lu requests, %lu bytes, %lu interrupts, %lu.%03lu ms", n,
			 bytes, irqs, cycles / tsc_khz(), cycles * 1000 / tsc_khz() % 1000);
	else
		snprintf(why, WHY_MAX, "%lu requests, %lu bytes, %lu interrupts, %lu cycles", n,
			 bytes, irqs, cycles);
	return true;
}
