/*
 * virtio-blk scenarios, on the first virtio-blk device (1af4:1042, or transitional 1001).
 *
 * virtio-blk: the functional check against an image the test prepared: byte o of the disk
 *   holds blk_pattern(o). Reads sectors 0-7 and checks them; GET_ID; a read past the end must
 *   fail with IOERR. On a writable disk: writes sectors 16-23 with blk_guest_pattern (flush,
 *   read back), write-zeroes sectors 32-39 and discards sectors 64-71 (when offered), reads
 *   32-39 back as zeros; the test then checks the image on the host. On a read-only disk
 *   (VIRTIO_BLK_F_RO): a write must fail with IOERR. PASS detail: capacity, serial, ro, queue.
 *   blk-queue=N uses request queue N (negotiating VIRTIO_BLK_F_MQ; the device must have N + 1).
 * blk-bench N: N requests with the queue kept full (blk-qd=, default 32, in flight), of
 *   blk-bs= bytes (default 4096), blk-mode=randread (default), read or write (sequential);
 *   times with the TSC. PASS detail: requests, bytes, ms, IOPS, MB/s.
 */
#include "../virtio.h"
#include "scenarios.h"

#define BLK_DEVICE_MODERN	0x1042
#define BLK_DEVICE_TRANSITIONAL 0x1001
#define BLK_QUEUE_SIZE		256
#define BLK_WAIT_MS		5000

#define T_IN	       0
#define T_OUT	       1
#define T_FLUSH	       4
#define T_GET_ID       8
#define T_DISCARD      11
#define T_WRITE_ZEROES 13
#define S_OK	       0
#define S_IOERR	       1

#define F_RO	       (1ull << 5)
#define F_MQ	       (1ull << 12)
#define F_BLK_SIZE     (1ull << 6)
#define F_FLUSH	       (1ull << 9)
#define F_DISCARD      (1ull << 13)
#define F_WRITE_ZEROES (1ull << 14)

struct blk_hdr {
	uint32_t type, ioprio;
	uint64_t sector;
};

struct blk_seg {
	uint64_t sector;
	uint32_t num, flags;
};

/* One request's memory: header, status, a discard segment. */
struct blk_slot {
	struct blk_hdr hdr;
	struct blk_seg seg;
	volatile uint8_t status;
};

static uint8_t blk_pattern(uint64_t o)
{
	return (uint8_t)(o * 7 + (o >> 9));
}

static uint8_t blk_guest_pattern(uint64_t o)
{
	return (uint8_t)(o * 13 + 5);
}

/* Chain of slot @i (descriptors 3i..3i+2): header, data (if @len), status. */
static void blk_chain(struct virtq *q, unsigned i, struct blk_slot *s, uint32_t type,
		      uint64_t sector, void *data, uint32_t len, bool device_writes)
{
	uint16_t d = (uint16_t)(3 * i);
	s->hdr = (struct blk_hdr){ type, 0, sector };
	s->status = 0xff;
	q->desc[d] = (struct virtq_desc){ (uint64_t)&s->hdr, sizeof(s->hdr), VIRTQ_DESC_F_NEXT,
					  (uint16_t)(d + 1) };
	uint16_t st = (uint16_t)(d + 1);
	if (len) {
		q->desc[d + 1] = (struct virtq_desc){
			(uint64_t)data, len,
			(uint16_t)(VIRTQ_DESC_F_NEXT | (device_writes ? VIRTQ_DESC_F_WRITE : 0)),
			(uint16_t)(d + 2)
		};
		st = (uint16_t)(d + 2);
	}
	q->desc[st] = (struct virtq_desc){ (uint64_t)&s->status, 1, VIRTQ_DESC_F_WRITE, 0 };
	virtq_publish(q, d);
}

/* One request, waited for. Returns the status byte, or -1 with @why on a timeout. */
static int blk_do(struct virtio_dev *v, struct virtq *q, struct blk_slot *s, uint32_t type,
		  uint64_t sector, void *data, uint32_t len, bool device_writes, char *why)
{
	blk_chain(q, 0, s, type, sector, data, len, device_writes);
	virtq_notify(q);
	uint64_t deadline = tsc_deadline(BLK_WAIT_MS);
	struct virtq_used_elem e;
	while (!virtq_get_used(q, &e)) {
		if (tsc_expired(deadline)) {
			snprintf(why, WHY_MAX, "request type %u: timeout, status 0x%x", type,
				 virtio_status(v));
			return -1;
		}
		cpu_relax();
	}
	return s->status;
}

static uint64_t blk_offered(struct virtio_dev *v)
{
	mmio_write32(v->common + COMMON_DFSELECT, 0);
	return mmio_read32(v->common + COMMON_DF);
}

static bool blk_open(struct virtio_dev *v, struct virtq *q, uint64_t *ret_features,
		     uint64_t *ret_sectors, char *why)
{
	if (!virtio_find(v, BLK_DEVICE_MODERN, BLK_DEVICE_TRANSITIONAL, why))
		return false;
	uint16_t qi = (uint16_t)cmdline_u64("blk-queue", 0);
	uint64_t f = blk_offered(v) &
		     (F_RO | F_BLK_SIZE | F_FLUSH | F_DISCARD | F_WRITE_ZEROES | (qi ? F_MQ : 0));
	if (qi && !(f & F_MQ)) {
		snprintf(why, WHY_MAX, "blk-queue=%u: the device does not offer MQ", qi);
		return false;
	}
	if (!virtio_start(v, VIRTIO_F_VERSION_1 | f, why) ||
	    !virtio_queue_setup(v, qi, BLK_QUEUE_SIZE, q, why))
		return false;
	virtio_driver_ok(v);
	if (!v->devcfg || v->devcfg_len < 8) {
		snprintf(why, WHY_MAX, "no device configuration");
		return false;
	}
	*ret_sectors = mmio_read32(v->devcfg) | (uint64_t)mmio_read32(v->devcfg + 4) << 32;
	*ret_features = f;
	return true;
}

#define EXPECT(cond, ...)                                    \
	do {                                                 \
		if (!(cond)) {                               \
			snprintf(why, WHY_MAX, __VA_ARGS__); \
			return false;                        \
		}                                            \
	} while (0)

static bool blk_check_writes(struct virtio_dev *v, struct virtq *q, struct blk_slot *s,
			     uint8_t *buf, uint64_t f, char *why)
{
	int st;
	for (uint32_t i = 0; i < 4096; i++)
		buf[i] = blk_guest_pattern(16 * 512 + i);
	st = blk_do(v, q, s, T_OUT, 16, buf, 4096, false, why);
	EXPECT(st == S_OK, "write: status %d", st);
	st = blk_do(v, q, s, T_FLUSH, 0, 0, 0, false, why);
	EXPECT(st == S_OK, "flush: status %d", st);
	memset(buf, 0, 4096);
	st = blk_do(v, q, s, T_IN, 16, buf, 4096, true, why);
	EXPECT(st == S_OK, "read back: status %d", st);
	for (uint32_t i = 0; i < 4096; i++)
		EXPECT(buf[i] == blk_guest_pattern(16 * 512 + i), "read back: byte %u differs", i);
	if (f & F_WRITE_ZEROES) {
		s->seg = (struct blk_seg){ 32, 8, 0 };
		st = blk_do(v, q, s, T_WRITE_ZEROES, 0, &s->seg, sizeof(s->seg), false, why);
		EXPECT(st == S_OK, "write-zeroes: status %d", st);
		memset(buf, 0xee, 4096);
		st = blk_do(v, q, s, T_IN, 32, buf, 4096, true, why);
		EXPECT(st == S_OK, "read zeroes: status %d", st);
		for (uint32_t i = 0; i < 4096; i++)
			EXPECT(buf[i] == 0, "write-zeroes: byte %u is 0x%x", i, buf[i]);
	}
	if (f & F_DISCARD) {
		s->seg = (struct blk_seg){ 64, 8, 0 };
		st = blk_do(v, q, s, T_DISCARD, 0, &s->seg, sizeof(s->seg), false, why);
		EXPECT(st == S_OK, "discard: status %d", st);
	}
	return true;
}

bool scenario_virtio_blk(uint64_t arg, char *why)
{
	struct virtio_dev v;
	struct virtq q;
	uint64_t f, sectors;
	int st;
	if (!blk_open(&v, &q, &f, &sectors, why))
		return false;
	struct blk_slot *s = alloc_pages(sizeof(*s), 64);
	uint8_t *buf = alloc_pages(4096, 4096);
	char serial[21];
	EXPECT(s && buf, "out of guest memory");
	EXPECT(sectors >= 128, "capacity %lu sectors: the test image is 128 or more", sectors);

	memset(buf, 0, 4096);
	st = blk_do(&v, &q, s, T_IN, 0, buf, 4096, true, why);
	EXPECT(st == S_OK, "read: status %d", st);
	for (uint32_t i = 0; i < 4096; i++)
		EXPECT(buf[i] == blk_pattern(i), "read: byte %u is 0x%x, not 0x%x", i, buf[i],
		       blk_pattern(i));
	memset(buf, 0, 32);
	st = blk_do(&v, &q, s, T_GET_ID, 0, buf, 20, true, why);
	EXPECT(st == S_OK, "get-id: status %d", st);
	memcpy(serial, buf, 20);
	serial[20] = 0;
	st = blk_do(&v, &q, s, T_IN, sectors, buf, 512, true, why);
	EXPECT(st == S_IOERR, "read past the end: status %d", st);
	if (f & F_RO) {
		st = blk_do(&v, &q, s, T_OUT, 16, buf, 512, false, why);
		EXPECT(st == S_IOERR, "write on a read-only disk: status %d", st);
	} else if (!blk_check_writes(&v, &q, s, buf, f, why)) {
		return false;
	}
	virtio_reset(&v, why);
	snprintf(why, WHY_MAX, "capacity=%lu serial=%s ro=%d queue=%u", sectors, serial,
		 !!(f & F_RO), q.index);
	return true;
}

/* The next sector for blk-bench: random (a xorshift) or sequential, aligned to the size. */
static uint64_t bench_sector(bool rnd, uint64_t *state, uint64_t *seq, uint64_t nblocks,
			     uint32_t bs)
{
	uint64_t b;
	if (rnd) {
		*state ^= *state << 13;
		*state ^= *state >> 7;
		*state ^= *state << 17;
		b = *state % nblocks;
	} else {
		b = (*seq)++ % nblocks;
	}
	return b * (bs / 512);
}

bool scenario_blk_bench(uint64_t n, char *why)
{
	struct virtio_dev v;
	struct virtq q;
	uint64_t f, sectors;
	char mode[16] = "randread";
	uint32_t bs = (uint32_t)cmdline_u64("blk-bs", 4096);
	unsigned qd = (unsigned)cmdline_u64("blk-qd", 32);
	cmdline_str("blk-mode", mode, sizeof(mode));
	bool write = str_eq(mode, "write"), rnd = str_eq(mode, "randread");
	EXPECT(rnd || write || str_eq(mode, "read"), "blk-mode=%s: randread, read or write", mode);
	EXPECT(bs >= 512 && bs % 512 == 0 && bs <= (2u << 20), "blk-bs=%u", bs);
	if (!blk_open(&v, &q, &f, &sectors, why))
		return false;
	EXPECT(qd >= 1 && qd <= q.size / 3, "blk-qd=%u: 1 to %u", qd, q.size / 3);
	uint64_t nblocks = sectors / (bs / 512);
	EXPECT(nblocks > 0, "disk smaller than one block");
	struct blk_slot *slots = alloc_pages(qd * sizeof(*slots), 64);
	uint8_t *buf = alloc_pages(bs, 4096); /* shared: the contents do not matter */
	EXPECT(slots && buf, "out of guest memory");

	uint64_t state = 0x9e3779b97f4a7c15ull, seq = 0, submitted = 0, done = 0;
	uint64_t t0 = rdtsc();
	for (unsigned i = 0; i < qd && submitted < n; i++, submitted++)
		blk_chain(&q, i, &slots[i], write ? T_OUT : T_IN,
			  bench_sector(rnd, &state, &seq, nblocks, bs), buf, bs, !write);
	virtq_notify(&q);
	uint64_t deadline = tsc_deadline(BLK_WAIT_MS);
	while (done < n) {
		struct virtq_used_elem e;
		bool progress = false;
		while (virtq_get_used(&q, &e)) {
			unsigned i = e.id / 3;
			EXPECT(e.id % 3 == 0 && i < qd, "used id %u was not in flight", e.id);
			EXPECT(slots[i].status == S_OK, "request %lu: status %u", done,
			       slots[i].status);
			done++;
			progress = true;
			if (submitted < n) {
				blk_chain(&q, i, &slots[i], write ? T_OUT : T_IN,
					  bench_sector(rnd, &state, &seq, nblocks, bs), buf, bs,
					  !write);
				submitted++;
			}
		}
		if (progress) {
			virtq_notify(&q);
			deadline = tsc_deadline(BLK_WAIT_MS);
		} else if (tsc_expired(deadline)) {
			snprintf(why, WHY_MAX, "timeout: %lu of %lu requests done, status 0x%x",
				 done, n, virtio_status(&v));
			return false;
		} else {
			cpu_relax();
		}
	}
	uint64_t cycles = rdtsc() - t0;
	virtio_reset(&v, why);
	uint64_t khz = tsc_khz();
	if (!khz) {
		snprintf(why, WHY_MAX, "%lu requests, %lu bytes, %lu cycles", n, n * bs, cycles);
		return true;
	}
	uint64_t us = cycles * 1000 / khz;
	if (!us)
		us = 1;
	snprintf(why, WHY_MAX, "%lu requests, %lu bytes, %lu.%03lu ms, %lu IOPS, %lu MB/s", n,
		 n * bs, us / 1000, us % 1000, n * 1000000 / us, n * bs / us);
	return true;
}
