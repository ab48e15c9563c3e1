/*
 * The hostile transport scenarios: a driver that breaks the virtio-PCI transport's rules, the
 * MSI-X table's and the PCI configuration space's on purpose (issue 3). PASS: the VMM keeps
 * running, every bad access is refused (DEVICE_NEEDS_RESET, FEATURES_OK stays clear, a
 * register keeps its value or reads what the spec says) and after a reset the virtio-rng
 * serves one good request. Each PASS line names what the device did for each case.
 */
#include "hostile.h"

#define SETTLE_MS	  50 /* how long a refused access gets to show (or not) its effect */
#define IRQ_WAIT_MS	  2000
#define MSI_ADDR	  0xfee00000u
#define MSIX_ENTRY_MASKED 1u
#define CF8_ADDR	  0xcf8
#define CF8_DATA	  0xcfc
#define CF8_ENABLE	  0x80000000u
#define F_ACCESS_PLATFORM (1ull << 33)
#define F_BIT63		  (1ull << 63)

/* Appends printf output to the detail line @d (WHY_MAX bytes). */
static void note(char *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(char *d, const char *fmt, ...)
{
	size_t n = strlen(d);
	va_list ap;
	if (n + 1 >= WHY_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(d + n, WHY_MAX - n, fmt, ap);
	va_end(ap);
}

static void copy_why(char *why, const char *detail)
{
	memcpy(why, detail, strlen(detail) + 1);
}

/* Which memory BAR of @v holds [a, a + len), or -1. */
static int bar_of(const struct virtio_dev *v, uint64_t a, uint64_t len)
{
	for (int i = 0; i < PCI_BARS; i++)
		if (v->pci.bar[i] && a >= v->pci.bar[i] &&
		    a + len <= v->pci.bar[i] + v->pci.bar_size[i])
			return i;
	return -1;
}

static bool overlaps(uint64_t a, uint64_t len, uint64_t start, uint64_t size)
{
	return start && a < start + size && start < a + len;
}

/* Whether [a, a + len) touches a virtio structure (common, notify, ISR, device config). */
static bool in_virtio_region(const struct virtio_dev *v, uint64_t a, uint64_t len)
{
	return overlaps(a, len, v->common, v->common_len) ||
	       overlaps(a, len, v->notify, v->notify_len) || overlaps(a, len, v->isr, v->isr_len) ||
	       overlaps(a, len, v->devcfg, v->devcfg_len);
}

/* A would-be notify address: in a BAR, not on the MSI-X table or another virtio structure. */
static bool notify_target_ok(const struct virtio_dev *v, uint64_t a)
{
	uint64_t table_len = (uint64_t)v->msix_entries * MSIX_ENTRY_SIZE;
	return bar_of(v, a, 2) >= 0 && !overlaps(a, 2, v->msix_table, table_len) &&
	       (!in_virtio_region(v, a, 2) || overlaps(a, 2, v->notify, v->notify_len));
}

static const char *refusal(bool needs_reset)
{
	return needs_reset ? "needs-reset" : "ignored";
}

/* ---- hostile-notify-early ---- */

/* Publishes one request for h->buf (filled with the sentinel) without notifying. */
static void publish_sentinel(struct hostile *h)
{
	memset(h->buf, HOSTILE_SENTINEL, BUF_SIZE);
	h->q.desc[0] = (struct virtq_desc){ (uint64_t)h->buf, BUF_SIZE, VIRTQ_DESC_F_WRITE, 0 };
	virtq_publish(&h->q, 0);
}

/* After a notification the device must not act on: nothing used, the buffer untouched. */
static bool nothing_used(struct hostile *h, const char *when, char *detail, char *why)
{
	bool nr = hostile_wait_needs_reset(h, SETTLE_MS);
	if (h->q.used->idx != 0 || !hostile_buf_intact(h)) {
		snprintf(why, WHY_MAX, "%s: the device used the request (used idx %u, status 0x%x)",
			 when, h->q.used->idx, virtio_status(&h->v));
		return false;
	}
	note(detail, "%s:%s ", when, refusal(nr));
	return true;
}

bool scenario_hostile_notify_early(uint64_t arg, char *why)
{
	static struct hostile h;
	char detail[WHY_MAX] = "";
	if (!hostile_init(&h, &hostile_target_rng, why))
		return false;

	/* 1: queue configured but not enabled, before DRIVER_OK. */
	if (!virtio_start(&h.v, VIRTIO_F_VERSION_1, why) ||
	    !virtio_queue_configure(&h.v, 0, HOSTILE_QUEUE_SIZE, &h.q, why))
		return false;
	publish_sentinel(&h);
	virtq_notify(&h.q);
	if (!nothing_used(&h, "before-enable", detail, why) ||
	    !hostile_recover(&h, "notify before enable", why))
		return false;

	/* 2: queue enabled, FEATURES_OK, but no DRIVER_OK: the device must not use buffers. */
	if (!virtio_start(&h.v, VIRTIO_F_VERSION_1, why) ||
	    !virtio_queue_setup(&h.v, 0, HOSTILE_QUEUE_SIZE, &h.q, why))
		return false;
	publish_sentinel(&h);
	virtq_notify(&h.q);
	if (!nothing_used(&h, "before-driver-ok", detail, why) ||
	    !hostile_recover(&h, "notify before DRIVER_OK", why))
		return false;

	/* 3: DRIVER_OK with the queue never enabled, then a request on it. */
	if (!virtio_start(&h.v, VIRTIO_F_VERSION_1, why) ||
	    !virtio_queue_configure(&h.v, 0, HOSTILE_QUEUE_SIZE, &h.q, why))
		return false;
	virtio_driver_ok(&h.v);
	publish_sentinel(&h);
	virtq_notify(&h.q);
	if (!nothing_used(&h, "queue-disabled", detail, why) ||
	    !hostile_recover(&h, "notify of a disabled queue", why))
		return false;

	/* 4: a live device; notifications for queues it does not have, at their would-be
	 * addresses and (value = index) at queue 0's. Then a good request on queue 0. */
	if (!hostile_bring_up(&h, why))
		return false;
	uint16_t numq = mmio_read16(h.v.common + COMMON_NUMQ);
	const uint32_t bad[] = { numq, numq + 1u, 0x7fff, 0xffff };
	unsigned outside = 0;
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t a = h.v.notify + (uint64_t)bad[i] * h.v.notify_mult;
		if (h.v.notify_mult && notify_target_ok(&h.v, a)) {
			mmio_write16(a, (uint16_t)bad[i]);
			outside++;
		}
		mmio_write16(h.q.notify_addr, (uint16_t)bad[i]);
	}
	bool nr = hostile_wait_needs_reset(&h, SETTLE_MS);
	note(detail, "bad-index:%s (%u at their offsets) ", refusal(nr), outside);
	if (!nr && !hostile_good_request(&h, why))
		return false;
	if (!hostile_recover(&h, "notify of queues >= num_queues", why))
		return false;
	virtio_reset(&h.v, why);
	note(detail, "recovered after each");
	copy_why(why, detail);
	return true;
}

/* ---- hostile-features ---- */

/* Reset, ACKNOWLEDGE, DRIVER, driver features @f as written, FEATURES_OK: the status. */
static uint8_t try_features(struct hostile *h, uint64_t f, char *why)
{
	if (!virtio_reset(&h->v, why))
		return 0xff;
	virtio_status_set(&h->v, VIRTIO_STATUS_ACK);
	virtio_status_set(&h->v, VIRTIO_STATUS_DRIVER);
	mmio_write32(h->v.common + COMMON_GFSELECT, 0);
	mmio_write32(h->v.common + COMMON_GF, (uint32_t)f);
	mmio_write32(h->v.common + COMMON_GFSELECT, 1);
	mmio_write32(h->v.common + COMMON_GF, (uint32_t)(f >> 32));
	virtio_status_set(&h->v, VIRTIO_STATUS_FEATURES_OK);
	return virtio_status(&h->v);
}

bool scenario_hostile_features(uint64_t arg, char *why)
{
	static struct hostile h;
	char detail[WHY_MAX] = "", stuck[WHY_MAX] = "";
	if (!hostile_init(&h, &hostile_target_rng, why) || !virtio_reset(&h.v, why))
		return false;
	mmio_write32(h.v.common + COMMON_DFSELECT, 1);
	uint64_t offered = (uint64_t)mmio_read32(h.v.common + COMMON_DF) << 32;
	mmio_write32(h.v.common + COMMON_DFSELECT, 0);
	offered |= mmio_read32(h.v.common + COMMON_DF);

	const struct {
		const char *name;
		uint64_t features;
	} cases[] = {
		{ "bit63", VIRTIO_F_VERSION_1 | F_BIT63 },
		{ "access-platform", VIRTIO_F_VERSION_1 | F_ACCESS_PLATFORM },
		{ "all-ones", ~0ull },
		{ "no-version-1", offered & ~VIRTIO_F_VERSION_1 },
	};
	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t f = cases[i].features;
		if (i < 3 && !(f & ~offered)) {
			note(detail, "%s:offered(skipped) ", cases[i].name);
			continue;
		}
		uint8_t status = try_features(&h, f, why);
		if (status == 0xff)
			return false;
		if (status & VIRTIO_STATUS_FEATURES_OK) /* every case runs: list them all */
			note(stuck, "%s(0x%lx) ", cases[i].name, f);
		else
			note(detail, "%s:refused ", cases[i].name);
		if (!hostile_recover(&h, cases[i].name, why))
			return false;
	}
	virtio_reset(&h.v, why);
	if (stuck[0]) {
		snprintf(why, WHY_MAX, "FEATURES_OK stuck (offered 0x%lx): %s", offered, stuck);
		return false;
	}
	note(detail, "recovered after each");
	copy_why(why, detail);
	return true;
}

/* ---- hostile-msix ---- */

/* Writes MSI-X entry @i: vector @vec to APIC 0, @masked. */
static void msix_entry_set(const struct virtio_dev *v, unsigned i, uint8_t vec, bool masked)
{
	uint64_t e = v->msix_table + (uint64_t)i * MSIX_ENTRY_SIZE;
	mmio_write32(e, MSI_ADDR);
	mmio_write32(e + 4, 0);
	mmio_write32(e + 8, vec);
	mmio_write32(e + 12, masked ? MSIX_ENTRY_MASKED : 0);
}

/* A vector register (config or queue) written with vectors the table does not have. */
static bool bad_vectors(struct hostile *h, unsigned off, uint16_t good, const char *name, char *why)
{
	const uint16_t bad[] = { h->v.msix_entries, (uint16_t)(h->v.msix_entries + 1), 0x7ff, 0x800,
				 0xfffe };
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		mmio_write16(h->v.common + COMMON_Q_SELECT, 0);
		mmio_write16(h->v.common + off, good);
		mmio_write16(h->v.common + off, bad[i]);
		uint16_t r = mmio_read16(h->v.common + off);
		if (r != VIRTIO_MSI_NO_VECTOR && r != good) {
			snprintf(why, WHY_MAX,
				 "%s = %u (table has %u entries) reads back %u, not 0xffff", name,
				 bad[i], h->v.msix_entries, r);
			return false;
		}
	}
	return true;
}

bool scenario_hostile_msix(uint64_t arg, char *why)
{
	static struct hostile h;
	char detail[WHY_MAX] = "";
	if (!hostile_init(&h, &hostile_target_rng, why) || !hostile_bring_up(&h, why))
		return false;
	struct virtio_dev *v = &h.v;
	uint64_t table_len = (uint64_t)v->msix_entries * MSIX_ENTRY_SIZE;
	uint64_t table_end = v->msix_table + table_len;
	int bar = bar_of(v, v->msix_table, table_len);
	if (bar < 0) {
		snprintf(why, WHY_MAX, "MSI-X table 0x%lx not in a BAR", v->msix_table);
		return false;
	}
	uint64_t bar_end = v->pci.bar[bar] + v->pci.bar_size[bar];

	/* 1: past the table's end inside the BAR (a phantom entry, the BAR's last dwords),
	 * where no virtio structure lives. */
	const uint64_t past[] = { table_end,	  table_end + 4, table_end + 8,
				  table_end + 12, bar_end - 8,	 bar_end - 4 };
	unsigned written = 0;
	for (unsigned i = 0; i < ARRAY_SIZE(past); i++) {
		if (past[i] < table_end || past[i] + 4 > bar_end || in_virtio_region(v, past[i], 4))
			continue;
		mmio_write32(past[i], i == 2 ? VIRTIO_VEC_QUEUE + 2 : 0xdeadbeef);
		written++;
	}
	uint32_t past_read = table_end + 4 <= bar_end && !in_virtio_region(v, table_end, 4)
				     ? mmio_read32(table_end)
				     : 0;
	note(detail, "past-table:%u writes (reads 0x%x) ", written, past_read);

	/* 2: beyond the BAR, unless another BAR of the device or RAM is there. */
	uint64_t beyond = bar_end + 0x10;
	if (bar_of(v, beyond, 4) < 0 && beyond >= ram_end() && map_identity(beyond, 4)) {
		mmio_write32(beyond, 0xdeadbeef);
		note(detail, "beyond-bar:0x%lx reads 0x%x ", beyond, mmio_read32(beyond));
	} else {
		note(detail, "beyond-bar:skipped ");
	}

	/* 3: 1- and 2-byte (and one misaligned 4-byte) accesses to entry 1, masked first. */
	uint64_t e1 = v->msix_table + MSIX_ENTRY_SIZE;
	msix_entry_set(v, 1, VIRTIO_VEC_QUEUE, true);
	uint32_t before[4], after[4];
	for (unsigned i = 0; i < 4; i++)
		before[i] = mmio_read32(e1 + 4 * i);
	uint8_t r8 = mmio_read8(e1 + 8);
	uint16_t r16 = mmio_read16(e1 + 2);
	mmio_write8(e1 + 8, 0x99);
	mmio_write8(e1 + 1, 0x12);
	mmio_write16(e1 + 10, 0x4242);
	mmio_write16(e1 + 6, 0xdead);
	mmio_write32(e1 + 2, 0x01234567);
	mmio_write8(e1 + 12, 0); /* an attempt to unmask it */
	bool dropped = true;
	for (unsigned i = 0; i < 4; i++) {
		after[i] = mmio_read32(e1 + 4 * i);
		dropped = dropped && after[i] == before[i];
	}
	note(detail, "odd-width:%s (reads 8-bit 0x%x 16-bit 0x%x) ",
	     dropped ? "dropped" : "accepted", r8, r16);
	msix_entry_set(v, 0, VIRTIO_VEC_CONFIG, false);
	msix_entry_set(v, 1, VIRTIO_VEC_QUEUE, false);

	/* 4: vectors the table does not have, in msix_config and queue_msix_vector. */
	if (!bad_vectors(&h, COMMON_MSIX, 0, "msix_config", why) ||
	    !bad_vectors(&h, COMMON_Q_MSIX, 1, "queue_msix_vector", why))
		return false;
	note(detail, "vector>=%u:reads 0xffff ", v->msix_entries);

	/* 5: valid vectors again; a good request completes and interrupts on entry 1. */
	mmio_write16(v->common + COMMON_MSIX, 0);
	mmio_write16(v->common + COMMON_Q_SELECT, 0);
	mmio_write16(v->common + COMMON_Q_MSIX, 1);
	if (mmio_read16(v->common + COMMON_Q_MSIX) != 1 || mmio_read16(v->common + COMMON_MSIX)) {
		snprintf(why, WHY_MAX, "valid vectors not accepted after the bad ones");
		return false;
	}
	if (virtio_status(v) & VIRTIO_STATUS_NEEDS_RESET) {
		note(detail, "(needs-reset) ");
		if (!hostile_bring_up(&h, why))
			return false;
	}
	uint64_t others = 0, irq0 = irq_count(VIRTIO_VEC_QUEUE);
	for (unsigned vec = 32; vec < 256; vec++)
		if (vec != VIRTIO_VEC_QUEUE && vec != VIRTIO_VEC_CONFIG)
			others += irq_count(vec);
	if (!hostile_good_request(&h, why))
		return false;
	uint64_t deadline = tsc_deadline(IRQ_WAIT_MS);
	while (irq_count(VIRTIO_VEC_QUEUE) == irq0) {
		if (tsc_expired(deadline)) {
			snprintf(why, WHY_MAX,
				 "good request completed but no interrupt on vector 0x%x",
				 VIRTIO_VEC_QUEUE);
			return false;
		}
		cpu_relax();
	}
	for (unsigned vec = 32; vec < 256; vec++)
		if (vec != VIRTIO_VEC_QUEUE && vec != VIRTIO_VEC_CONFIG)
			others -= irq_count(vec);
	if (others) {
		snprintf(why, WHY_MAX, "interrupts on vectors other than 0x%x/0x%x",
			 VIRTIO_VEC_CONFIG, VIRTIO_VEC_QUEUE);
		return false;
	}
	if (!hostile_recover(&h, "the MSI-X abuse", why))
		return false;
	virtio_reset(&h.v, why);
	note(detail, "interrupt on 0x%x, recovered", VIRTIO_VEC_QUEUE);
	copy_why(why, detail);
	return true;
}

/* ---- hostile-config ---- */

/* A read-only dword written with its complement must read as before. */
static bool ro_dword(const struct pci_dev *d, uint16_t off, const char *name, char *why)
{
	uint32_t pre = pci_cfg_read32(d, off);
	pci_cfg_write32(d, off, ~pre);
	pci_cfg_write16(d, off, (uint16_t)~pre);
	pci_cfg_write16(d, off + 2, (uint16_t)(~pre >> 16));
	uint32_t post = pci_cfg_read32(d, off);
	if (post != pre) {
		snprintf(why, WHY_MAX, "read-only %s (0x%x) changed: 0x%x -> 0x%x", name, off, pre,
			 post);
		return false;
	}
	return true;
}

/* Garbage in a BAR's low bits (type, prefetchable, the bits below its size): no effect. */
static bool bar_garbage(const struct pci_dev *d, char *why, char *detail)
{
	unsigned checked = 0, unused = 0;
	for (int i = 0; i < PCI_BARS; i++) {
		uint16_t off = PCI_BAR0 + 4 * i;
		uint32_t lo = pci_cfg_read32(d, off);
		bool is64 = !(lo & 1) && ((lo >> 1) & 3) == 2;
		if (d->bar_size[i]) {
			uint32_t low_mask = (uint32_t)(d->bar_size[i] - 1) | 0xf;
			if (d->bar_size[i] > 0xffffffffull)
				low_mask = 0xffffffff;
			pci_cfg_write32(d, off, (lo & ~low_mask) | (~lo & low_mask));
			uint32_t r = pci_cfg_read32(d, off);
			pci_cfg_write32(d, off, lo);
			if (r != lo) {
				snprintf(why, WHY_MAX,
					 "BAR%d 0x%x written with garbage low bits reads 0x%x", i,
					 lo, r);
				return false;
			}
			checked++;
		} else if (!(lo & 1) && !lo) {
			pci_cfg_write32(d, off, ~0u); /* an unimplemented BAR is hardwired 0 */
			uint32_t r = pci_cfg_read32(d, off);
			pci_cfg_write32(d, off, 0);
			if (r != 0) {
				snprintf(why, WHY_MAX, "unimplemented BAR%d reads 0x%x after ~0", i,
					 r);
				return false;
			}
			unused++;
		}
		if (is64)
			i++;
	}
	note(detail, "bar-garbage:%u kept, %u unused stay 0 ", checked, unused);
	return true;
}

/* 0xCF8 with reserved bits 24-30 set (and the enable bit clear). */
static bool cf8_reserved(const struct pci_dev *d, char *why, char *detail)
{
	uint32_t base = ((uint32_t)d->dev << 11) | ((uint32_t)d->fn << 8);
	uint32_t id = ((uint32_t)d->device << 16) | d->vendor;
	outl(CF8_ADDR, CF8_ENABLE | base);
	if (inl(CF8_DATA) != id) {
		note(detail, "cf8:absent ");
		return true;
	}
	const uint32_t reserved[] = { 1u << 24, 0x0fu << 24, 0x7fu << 24 };
	note(detail, "cf8-reserved:");
	for (unsigned i = 0; i < ARRAY_SIZE(reserved); i++) {
		outl(CF8_ADDR, CF8_ENABLE | reserved[i] | base);
		uint32_t addr = inl(CF8_ADDR), r = inl(CF8_DATA);
		/* Ignored bits (the register), a refused access (all ones), or AMD's extended
		 * register number (offset 0x100+ of a function without extended capabilities). */
		if (r != id && r != 0xffffffff && r != 0) {
			snprintf(why, WHY_MAX, "0xcf8 = 0x%x reads 0x%x (id 0x%x)",
				 CF8_ENABLE | reserved[i] | base, r, id);
			return false;
		}
		note(detail, "%s0x%x(cf8 reads 0x%x)", i ? "," : "", r, addr);
	}
	outl(CF8_ADDR, base); /* enable clear: no configuration cycle */
	uint32_t r = inl(CF8_DATA);
	outl(CF8_ADDR, 0);
	if (r != 0xffffffff) {
		snprintf(why, WHY_MAX, "0xcfc with the enable bit clear reads 0x%x", r);
		return false;
	}
	note(detail, " ");
	return true;
}

/* ECAM: offsets 0x100-0xfff of the device, the next function, the next bus. */
static bool ecam_beyond(const struct pci_dev *d, char *why, char *detail)
{
	if (d->access != PCI_ECAM) {
		note(detail, "ecam:absent ");
		return true;
	}
	uint64_t fn_base = pci_ecam_base() + ((uint64_t)d->dev << 15) + ((uint64_t)d->fn << 12);
	uint32_t ext = mmio_read32(fn_base + 0x100);
	mmio_write32(fn_base + 0x100, 0xdeadbeef);
	mmio_write32(fn_base + 0xffc, 0xdeadbeef);
	uint32_t ext2 = mmio_read32(fn_base + 0x100), last = mmio_read32(fn_base + 0xffc);
	if (ext2 != ext || (ext != 0 && ext != 0xffffffff) || (last != 0 && last != 0xffffffff)) {
		snprintf(why, WHY_MAX, "extended config: 0x100 reads 0x%x then 0x%x, 0xffc 0x%x",
			 ext, ext2, last);
		return false;
	}
	note(detail, "ecam-0x100:0x%x ", ext);

	/* fn_base + 4096 is the next function (or the next device's function 0). */
	bool multi = (pci_cfg_read32(d, PCI_HEADER_TYPE & ~3) >> 16) & 0x80;
	uint64_t next = fn_base + 0x1000;
	uint32_t nid = mmio_read32(next);
	if (d->fn == 0 && !multi && nid != 0xffffffff) {
		snprintf(why, WHY_MAX, "single-function 00:%02x.0: function 1 reads 0x%x", d->dev,
			 nid);
		return false;
	}
	if (nid == 0xffffffff) {
		mmio_write32(next + PCI_COMMAND, 0xffffffff);
		mmio_write32(next + PCI_BAR0, 0xffffffff);
		if (mmio_read32(next) != 0xffffffff || mmio_read32(next + PCI_BAR0) != 0xffffffff) {
			snprintf(why, WHY_MAX, "absent function 0x%lx came alive after writes",
				 next);
			return false;
		}
	}
	/* Past device 31 function 7 of bus 0: bus 1 (no bridge, so nothing). */
	uint64_t bus1 = pci_ecam_base() + (1ull << 20);
	uint32_t b1 = mmio_read32(bus1);
	mmio_write32(bus1 + PCI_COMMAND, 0xffffffff);
	if (b1 != 0xffffffff || mmio_read32(bus1) != 0xffffffff) {
		snprintf(why, WHY_MAX, "bus 1 device 0 reads 0x%x (no bridge on bus 0)", b1);
		return false;
	}
	note(detail, "ecam-next-fn:0x%x bus1:0x%x ", nid, b1);
	return true;
}

bool scenario_hostile_config(uint64_t arg, char *why)
{
	static struct hostile h;
	char detail[WHY_MAX] = "";
	if (!hostile_init(&h, &hostile_target_rng, why) || !hostile_bring_up(&h, why))
		return false;
	const struct pci_dev *d = &h.v.pci;

	if (!ro_dword(d, PCI_VENDOR_ID, "vendor/device id", why) ||
	    !ro_dword(d, PCI_CLASS_REVISION, "class/revision", why) ||
	    !ro_dword(d, 0x2c, "subsystem ids", why) || !ro_dword(d, PCI_CAP_PTR, "cap ptr", why))
		return false;
	pci_cfg_write16(d, PCI_STATUS, 0xffff); /* RW1C bits clear; the cap-list bit stays */
	if (!(pci_cfg_read16(d, PCI_STATUS) & PCI_STATUS_CAP_LIST)) {
		snprintf(why, WHY_MAX, "status lost its capability-list bit after 0xffff");
		return false;
	}
	note(detail, "ro-header:kept ");

	if (!bar_garbage(d, why, detail) || !cf8_reserved(d, why, detail) ||
	    !ecam_beyond(d, why, detail))
		return false;

	if (!hostile_init(&h, &hostile_target_rng,
			  why)) /* the device is still where it was, with its caps */
		return false;
	if (!hostile_recover(&h, "the configuration-space abuse", why))
		return false;
	virtio_reset(&h.v, why);
	note(detail, "recovered");
	copy_why(why, detail);
	return true;
}

/* ---- hostile-queue-size ---- */

enum qfield { Q_SIZE, Q_DESC, Q_AVAIL, Q_USED };

bool scenario_hostile_queue_size(uint64_t arg, char *why)
{
	static struct hostile h;
	char detail[WHY_MAX] = "";
	if (!hostile_init(&h, &hostile_target_rng, why) || !virtio_reset(&h.v, why))
		return false;
	mmio_write16(h.v.common + COMMON_Q_SELECT, 0);
	uint16_t max = mmio_read16(h.v.common + COMMON_Q_SIZE);
	uint64_t beyond = hostile_beyond_ram();
	struct {
		const char *name;
		enum qfield field;
		uint64_t value; /* a size, or an offset from the ring's own address */
		bool absolute;
	} cases[] = {
		{ "size0", Q_SIZE, 0, true },
		{ "size-not-pow2", Q_SIZE, max > 2 ? max - 1u : 3, true },
		{ "size>max", Q_SIZE, max < 0x8000 ? max * 2u : 0xffff, true },
		{ "size0xffff", Q_SIZE, 0xffff, true },
		{ "desc+8", Q_DESC, 8, false },
		{ "avail+1", Q_AVAIL, 1, false },
		{ "used+2", Q_USED, 2, false },
		{ "desc-beyond-ram", Q_DESC, beyond, true },
		{ "used-beyond-ram", Q_USED, beyond, true },
		{ "desc-across-ram-end", Q_DESC, ram_end() ? ram_end() - 64 : 0, true },
		{ "desc-wraps", Q_DESC, 0xfffffffffffff000ull, true },
	};
	/* needs-reset, enable refused, write ignored, accepted: the case names */
	static char outcomes[4][WHY_MAX];
	static const unsigned reg[] = { COMMON_Q_SIZE, COMMON_Q_DESC, COMMON_Q_DRIVER,
					COMMON_Q_DEVICE };
	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		if (cases[i].field != Q_SIZE && cases[i].absolute && !cases[i].value)
			continue; /* RAM's end unknown */
		if (!virtio_start(&h.v, VIRTIO_F_VERSION_1, why) ||
		    !virtio_queue_configure(&h.v, 0, HOSTILE_QUEUE_SIZE, &h.q, why))
			return false;
		uint64_t own = cases[i].field == Q_DESC	   ? (uint64_t)h.q.desc
			       : cases[i].field == Q_AVAIL ? (uint64_t)h.q.avail
							   : (uint64_t)h.q.used;
		uint64_t val = cases[i].absolute ? cases[i].value : own + cases[i].value;
		uint64_t a = h.v.common + reg[cases[i].field];
		bool ignored = false;
		if (cases[i].field == Q_SIZE) {
			mmio_write16(a, (uint16_t)val);
			uint16_t r = mmio_read16(a);
			ignored = r != (uint16_t)val;
		} else {
			mmio_write64(a, val);
		}
		mmio_write16(h.v.common + COMMON_Q_ENABLE, 1);
		bool nr = hostile_wait_needs_reset(&h, SETTLE_MS);
		uint16_t enabled = mmio_read16(h.v.common + COMMON_Q_ENABLE);
		int outcome = nr ? 0 : !enabled ? 1 : ignored ? 2 : 3;
		note(outcomes[outcome], " %s", cases[i].name); /* every case runs */
		if (!hostile_recover(&h, cases[i].name, why))
			return false;
	}
	virtio_reset(&h.v, why);
	if (outcomes[3][0]) {
		snprintf(why, WHY_MAX, "queue enabled (no NEEDS_RESET) with a bad ring:%s",
			 outcomes[3]);
		return false;
	}
	static const char *const names[] = { "needs-reset:", "enable-refused:", "write-ignored:" };
	for (unsigned i = 0; i < ARRAY_SIZE(names); i++)
		if (outcomes[i][0])
			note(detail, "%s%s; ", names[i], outcomes[i]);
	note(detail, "recovered after each");
	copy_why(why, detail);
	return true;
}
