/*
 * snapshot-ticker N: a guest worth snapshotting. Brings up virtio-rng, then N times: waits
 * `tick-ms=` (default 20) ms, has the device fill one 64-byte buffer, and prints
 * `tick I rng=LEN`. A snapshot taken in the middle and restored elsewhere must go on with the
 * next tick (not from 1), with the same queue, and pass at the end: the restored guest's
 * memory, CPU state, timer and device state all had to be right.
 *
 * With `genid=ADDR` (the VM generation ID's guest-physical address) it watches those 16 bytes
 * between ticks and prints `@genid changed I ID` as soon as they change (a restore): the
 * guest-visible proof of running again that bench/restore times. With `idle=1` as well, the
 * guest halts for good after that line (an idle clone, for the density benchmark).
 */
#include "../virtio.h"
#include "scenarios.h"

#define RNG_DEVICE_MODERN	0x1044
#define RNG_DEVICE_TRANSITIONAL 0x1005
#define TICK_QUEUE_SIZE		16
#define TICK_STALL_MS		5000

static bool genid_read(uint64_t addr, uint64_t out[2])
{
	if (!addr)
		return false;
	volatile uint64_t *p = (volatile uint64_t *)addr;
	out[0] = p[0];
	out[1] = p[1];
	return true;
}

bool scenario_snapshot_ticker(uint64_t n, char *why)
{
	uint64_t tick_ms = cmdline_u64("tick-ms", 20), genid = cmdline_u64("genid", 0);
	bool idle = cmdline_u64("idle", 0) != 0;
	uint64_t id[2] = { 0, 0 }, now_id[2], changes = 0;
	struct virtio_dev v;
	struct virtq q;

	if (genid && !map_identity(genid & ~4095ull, 4096)) {
		snprintf(why, WHY_MAX, "cannot map genid=%#lx", genid);
		return false;
	}
	if (!virtio_find(&v, RNG_DEVICE_MODERN, RNG_DEVICE_TRANSITIONAL, why) ||
	    !virtio_start(&v, VIRTIO_F_VERSION_1, why) ||
	    !virtio_queue_setup(&v, 0, TICK_QUEUE_SIZE, &q, why))
		return false;
	virtio_driver_ok(&v);
	uint8_t *buf = alloc_pages(64, 64);
	if (!buf) {
		snprintf(why, WHY_MAX, "out of guest memory");
		return false;
	}
	genid_read(genid, id);
	printf("ticker: ready\n");
	for (uint64_t i = 1; i <= n; i++) {
		uint64_t wake = tsc_deadline(tick_ms);
		while (!tsc_expired(wake)) {
			if (genid_read(genid, now_id) &&
			    (now_id[0] != id[0] || now_id[1] != id[1])) {
				id[0] = now_id[0];
				id[1] = now_id[1];
				/* One byte first: on hosts that emulate the guest's port I/O each byte
				 * costs ~30 µs, and the benchmark times the first one. */
				serial_putc('@');
				printf("genid changed %lu %016lx%016lx\n", ++changes, id[0], id[1]);
				while (idle)
					__asm__ volatile("hlt"); /* CPL3: the #GP handler halts */
			}
			cpu_relax();
		}
		memset(buf, 0, 64);
		uint16_t slot = (uint16_t)(i % q.size);
		q.desc[slot] = (struct virtq_desc){ (uint64_t)buf, 64, VIRTQ_DESC_F_WRITE, 0 };
		virtq_publish(&q, slot);
		virtq_notify(&q);
		struct virtq_used_elem e;
		uint64_t deadline = tsc_deadline(TICK_STALL_MS);
		while (!virtq_get_used(&q, &e)) {
			if (tsc_expired(deadline)) {
				snprintf(why, WHY_MAX,
					 "tick %lu: no answer from virtio-rng (status 0x%x)", i,
					 virtio_status(&v));
				return false;
			}
			cpu_relax();
		}
		if (e.id != slot || e.len < 1 || e.len > 64) {
			snprintf(why, WHY_MAX, "tick %lu: used id %u len %u, expected id %u", i,
				 e.id, e.len, slot);
			return false;
		}
		printf("tick %lu rng=%u\n", i, e.len);
	}
	virtio_reset(&v, why);
	snprintf(why, WHY_MAX, "%lu ticks, %lu generation changes", n, changes);
	return true;
}
