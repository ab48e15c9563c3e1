/* SPDX-License-Identifier: Apache-2.0 */
/* The PCI root complex (src/pci/pci.c): config mechanisms, headers, BARs, capabilities. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "pci/pci.h"
#include "util/util.h"

#define ECAM 0xe0000000ULL

static const struct pci_layout layout = {
	.ecam_base = ECAM,
	.ecam_size = 0x10000000,
	.mem32_base = 0xc0000000,
	.mem32_size = 0x20000000,
	.mem64_base = 0x100000000,
	.mem64_size = 64 * GiB,
};

/* What a fake device saw. */
struct fake_dev {
	unsigned bar_calls, last_bar;
	uint64_t last_offset;
	bool last_write;
	unsigned remaps;
	unsigned remap_bar;
	uint64_t remap_addr;
	unsigned cfg_reads, cfg_writes, cfg_offset;
	unsigned cap_reads, cap_writes, cap_offset, cap_len;
};

struct harness {
	struct bus pio, mmio;
	struct irq_sink irq;
	struct pci_root *root;
	struct fake_dev dev;
};

static void fake_bar_rw(void *opaque, unsigned bar, uint64_t offset, bool is_write, uint8_t *data,
			unsigned len)
{
	struct fake_dev *d = opaque;

	d->bar_calls++;
	d->last_bar = bar;
	d->last_offset = offset;
	d->last_write = is_write;
	if (!is_write)
		memset(data, 0x5a, len);
}

static void fake_remap(void *opaque, unsigned bar, uint64_t addr)
{
	struct fake_dev *d = opaque;

	d->remaps++;
	d->remap_bar = bar;
	d->remap_addr = addr;
}

static void fake_cfg_read(void *opaque, unsigned offset, uint8_t *data, unsigned len)
{
	struct fake_dev *d = opaque;

	d->cfg_reads++;
	d->cfg_offset = offset;
	for (unsigned i = 0; i < len; i++)
		data[i] = (uint8_t)(offset + i);
}

static void fake_cfg_write(void *opaque, unsigned offset, const uint8_t *data, unsigned len)
{
	struct fake_dev *d = opaque;

	d->cfg_writes++;
	d->cfg_offset = offset;
}

static const struct pci_function_ops fake_ops = {
	.bar_rw = fake_bar_rw,
	.bar_remap = fake_remap,
	.cfg_read = fake_cfg_read,
	.cfg_write = fake_cfg_write,
};

static int setup(void **state)
{
	struct harness *h = calloc(1, sizeof(*h));

	assert_non_null(h);
	bus_init(&h->pio, "pio");
	bus_init(&h->mmio, "mmio");
	assert_int_equal(pci_root_create(&h->pio, &h->mmio, &h->irq, &layout, &h->root), 0);
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	struct harness *h = *state;

	h->root = pci_root_destroy(h->root);
	assert_int_equal(h->pio.nr, 0);
	assert_int_equal(h->mmio.nr, 0);
	free(h);
	return 0;
}

static uint32_t get(const uint8_t *d, unsigned len)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < len; i++)
		v |= (uint32_t)d[i] << (8 * i);
	return v;
}

static void put(uint8_t *d, uint32_t v, unsigned len)
{
	for (unsigned i = 0; i < len; i++)
		d[i] = (uint8_t)(v >> (8 * i));
}

static void cf8_select(struct harness *h, unsigned devfn, unsigned offset)
{
	uint8_t d[4];

	put(d, 0x80000000u | devfn << 8 | (offset & 0xfc), 4);
	assert_true(bus_access(&h->pio, 0xcf8, true, d, 4));
}

static uint32_t cf8_read(struct harness *h, unsigned devfn, unsigned offset, unsigned len)
{
	uint8_t d[4];

	cf8_select(h, devfn, offset);
	assert_true(bus_access(&h->pio, 0xcfc + (offset & 3), false, d, len));
	return get(d, len);
}

static void cf8_write(struct harness *h, unsigned devfn, unsigned offset, uint32_t v, unsigned len)
{
	uint8_t d[4];

	cf8_select(h, devfn, offset);
	put(d, v, len);
	assert_true(bus_access(&h->pio, 0xcfc + (offset & 3), true, d, len));
}

static uint64_t ecam_read(struct harness *h, unsigned devfn, unsigned offset, unsigned len)
{
	uint8_t d[8];
	uint64_t v = 0;

	assert_true(bus_access(&h->mmio, ECAM + ((uint64_t)devfn << 12) + offset, false, d, len));
	for (unsigned i = 0; i < len; i++)
		v |= (uint64_t)d[i] << (8 * i);
	return v;
}

static void ecam_write(struct harness *h, unsigned devfn, unsigned offset, uint32_t v, unsigned len)
{
	uint8_t d[8] = { 0 };

	put(d, v, len > 4 ? 4 : len);
	assert_true(bus_access(&h->mmio, ECAM + ((uint64_t)devfn << 12) + offset, true, d, len));
}

/* Whether an MMIO access at @addr reaches anything. */
static bool mmio_claimed(struct harness *h, uint64_t addr)
{
	uint8_t d[4];
	return bus_access(&h->mmio, addr, false, d, 4);
}

static struct pci_function *add_fake(struct harness *h, unsigned slot)
{
	struct pci_function_desc desc = {
		.name = "fake",
		.vendor_id = 0x1af4,
		.device_id = 0x1041,
		.subsystem_vendor_id = 0x1af4,
		.subsystem_id = 0x0001,
		.class_code = 0x020000,
		.revision = 1,
		.slot = slot,
		.bars = {
			[0] = { .kind = PCI_BAR_MEM32, .size = 4 * KiB },
			[2] = { .kind = PCI_BAR_MEM64, .prefetchable = true, .size = 1 * MiB },
			[4] = { .kind = PCI_BAR_MEM32, .size = 64 * KiB },
		},
		.ops = &fake_ops,
	};
	struct pci_function *fn = NULL;

	assert_int_equal(pci_register(h->root, &desc, &h->dev, &fn), 0);
	assert_non_null(fn);
	return fn;
}

static void test_host_bridge(void **state)
{
	struct harness *h = *state;

	assert_int_equal(cf8_read(h, 0, 0, 4), 0x0d578086);
	assert_int_equal(cf8_read(h, 0, 0, 2), 0x8086);
	assert_int_equal(cf8_read(h, 0, 2, 2), 0x0d57);
	assert_int_equal(cf8_read(h, 0, 1, 1), 0x80);
	assert_int_equal(cf8_read(h, 0, 8, 4), 0x06000000); /* class 06/00/00, revision 0 */
	assert_int_equal(cf8_read(h, 0, 0x0e, 1), 0);	    /* header type 0, one function */
	assert_int_equal(ecam_read(h, 0, 0, 4), 0x0d578086);
	assert_int_equal(ecam_read(h, 0, 2, 2), 0x0d57);
	assert_int_equal(ecam_read(h, 0, 0x0b, 1), 0x06);
	assert_int_equal(ecam_read(h, 0, 0x34, 1), 0); /* no capabilities */
	assert_int_equal(ecam_read(h, 0, 6, 2) & 0x10, 0);
	/* the address register reads back what was written, reserved bits 0 */
	uint8_t d[4];
	put(d, 0xffffffff, 4);
	assert_true(bus_access(&h->pio, 0xcf8, true, d, 4));
	assert_true(bus_access(&h->pio, 0xcf8, false, d, 4));
	assert_int_equal(get(d, 4), 0x80fffffc);
}

static void test_absent(void **state)
{
	struct harness *h = *state;
	uint8_t d[4];

	assert_int_equal(cf8_read(h, 5 << 3, 0, 2), 0xffff);
	assert_int_equal(cf8_read(h, 31 << 3, 0, 4), 0xffffffff);
	assert_int_equal(cf8_read(h, 1, 0, 4), 0xffffffff); /* 00:00.1 */
	assert_int_equal(ecam_read(h, 5 << 3, 0, 2), 0xffff);
	assert_int_equal(ecam_read(h, 7, 0, 4), 0xffffffff);
	/* other buses, through ECAM and 0xcf8 */
	assert_true(bus_access(&h->mmio, ECAM + (1 << 20), false, d, 4));
	assert_int_equal(get(d, 4), 0xffffffff);
	assert_true(bus_access(&h->mmio, ECAM + (255ULL << 20) + 0xffc, false, d, 4));
	assert_int_equal(get(d, 4), 0xffffffff);
	put(d, 0x80010000, 4);
	assert_true(bus_access(&h->pio, 0xcf8, true, d, 4));
	assert_true(bus_access(&h->pio, 0xcfc, false, d, 4));
	assert_int_equal(get(d, 4), 0xffffffff);
	/* enable bit off: nothing */
	put(d, 0x00000000, 4);
	assert_true(bus_access(&h->pio, 0xcf8, true, d, 4));
	assert_true(bus_access(&h->pio, 0xcfc, false, d, 4));
	assert_int_equal(get(d, 4), 0xffffffff);
	/* writes to absent functions are dropped, without a crash */
	ecam_write(h, 9 << 3, 4, 0xffff, 2);
	cf8_write(h, 9 << 3, 0x10, 0xffffffff, 4);
}

static void test_device_header(void **state)
{
	struct harness *h = *state;
	struct pci_function *fn = add_fake(h, 0);
	unsigned devfn = pci_function_slot(fn) << 3;

	assert_int_equal(pci_function_slot(fn), 1);
	assert_int_equal(ecam_read(h, devfn, 0, 4), 0x10411af4);
	assert_int_equal(ecam_read(h, devfn, 8, 4), 0x02000001);
	assert_int_equal(ecam_read(h, devfn, 0x2c, 4), 0x00011af4);
	assert_int_equal(ecam_read(h, devfn, 0x3d, 1), 0); /* no INTx pin */
	/* read-only fields keep their values */
	ecam_write(h, devfn, 0, 0x12345678, 4);
	ecam_write(h, devfn, 8, 0xffffffff, 4);
	ecam_write(h, devfn, 0x2c, 0, 4);
	assert_int_equal(ecam_read(h, devfn, 0, 4), 0x10411af4);
	assert_int_equal(ecam_read(h, devfn, 8, 4), 0x02000001);
	assert_int_equal(ecam_read(h, devfn, 0x2c, 4), 0x00011af4);
	/* the command register keeps only its implemented bits; status is read-only */
	ecam_write(h, devfn, 4, 0xffffffff, 4);
	assert_int_equal(ecam_read(h, devfn, 4, 4), 0x00000546);
	cf8_write(h, devfn, 4, 0, 2);
	assert_int_equal(cf8_read(h, devfn, 4, 2), 0);
	/* interrupt line and cache line size are plain read-write bytes */
	cf8_write(h, devfn, 0x3c, 0x0b, 1);
	ecam_write(h, devfn, 0x0c, 0x10, 1);
	assert_int_equal(ecam_read(h, devfn, 0x3c, 1), 0x0b);
	assert_int_equal(cf8_read(h, devfn, 0x0c, 1), 0x10);
	/* no expansion ROM: sizing it reads 0 */
	ecam_write(h, devfn, 0x30, 0xfffff800, 4);
	assert_int_equal(ecam_read(h, devfn, 0x30, 4), 0);
}

static void test_bar_sizing(void **state)
{
	struct harness *h = *state;
	struct pci_function *fn = add_fake(h, 3);
	unsigned devfn = 3 << 3;

	assert_int_equal(pci_bar_address(fn, 0), 0xc0000000);
	assert_int_equal(pci_bar_address(fn, 2), 0x100000000);
	assert_int_equal(pci_bar_address(fn, 4), 0xc0010000); /* 64 KiB alignment */

	/* BAR0: 32-bit, 4 KiB, not prefetchable */
	assert_int_equal(cf8_read(h, devfn, 0x10, 4), 0xc0000000);
	cf8_write(h, devfn, 0x10, 0xffffffff, 4);
	assert_int_equal(cf8_read(h, devfn, 0x10, 4), 0xfffff000);
	cf8_write(h, devfn, 0x10, 0xc0000000, 4);
	assert_int_equal(cf8_read(h, devfn, 0x10, 4), 0xc0000000);

	/* BAR2/3: 64-bit prefetchable 1 MiB */
	assert_int_equal(ecam_read(h, devfn, 0x18, 4), 0x0000000c);
	assert_int_equal(ecam_read(h, devfn, 0x1c, 4), 0x00000001);
	ecam_write(h, devfn, 0x18, 0xffffffff, 4);
	ecam_write(h, devfn, 0x1c, 0xffffffff, 4);
	assert_int_equal(ecam_read(h, devfn, 0x18, 4), 0xfff0000c);
	assert_int_equal(ecam_read(h, devfn, 0x1c, 4), 0xffffffff);
	ecam_write(h, devfn, 0x18, 0x0000000c, 4);
	ecam_write(h, devfn, 0x1c, 0x00000001, 4);
	assert_int_equal(ecam_read(h, devfn, 0x18, 4), 0x0000000c);
	assert_int_equal(ecam_read(h, devfn, 0x1c, 4), 0x00000001);

	/* BAR4: 64 KiB; the type bits cannot be written */
	ecam_write(h, devfn, 0x20, 0xffffffff, 4);
	assert_int_equal(ecam_read(h, devfn, 0x20, 4), 0xffff0000);
	ecam_write(h, devfn, 0x20, 0xc001000f, 4);
	assert_int_equal(ecam_read(h, devfn, 0x20, 4), 0xc0010000);

	/* unused BARs read 0 and size to 0 */
	ecam_write(h, devfn, 0x14, 0xffffffff, 4);
	ecam_write(h, devfn, 0x24, 0xffffffff, 4);
	assert_int_equal(ecam_read(h, devfn, 0x14, 4), 0);
	assert_int_equal(ecam_read(h, devfn, 0x24, 4), 0);

	/* sizing with decoding off touched no bus range */
	assert_false(mmio_claimed(h, 0xc0000000));
	assert_int_equal(h->dev.remaps, 0);
}

static void test_bar_decode_and_move(void **state)
{
	struct harness *h = *state;
	add_fake(h, 2);
	unsigned devfn = 2 << 3;
	uint8_t d[4];

	/* memory space off: no range */
	assert_false(mmio_claimed(h, 0xc0000000));
	assert_false(mmio_claimed(h, 0x100000000));
	ecam_write(h, devfn, 4, PCI_COMMAND_MEMORY, 2);
	assert_true(mmio_claimed(h, 0xc0000000));
	assert_true(mmio_claimed(h, 0xc0000ffc));
	assert_false(mmio_claimed(h, 0xc0001000));
	assert_true(mmio_claimed(h, 0x1000ffffc));
	assert_true(mmio_claimed(h, 0xc001fffc));
	assert_int_equal(h->dev.remaps, 3);

	/* the device's handler sees BAR-relative offsets */
	assert_true(bus_access(&h->mmio, 0xc0000010, true, d, 4));
	assert_int_equal(h->dev.last_bar, 0);
	assert_int_equal(h->dev.last_offset, 0x10);
	assert_true(h->dev.last_write);
	assert_true(bus_access(&h->mmio, 0x100000020, false, d, 4));
	assert_int_equal(h->dev.last_bar, 2);
	assert_int_equal(h->dev.last_offset, 0x20);
	assert_int_equal(get(d, 4), 0x5a5a5a5a);

	/* move BAR0 while decoding: the old range goes, the new one comes */
	cf8_write(h, devfn, 0x10, 0xd0000000, 4);
	assert_false(mmio_claimed(h, 0xc0000000));
	assert_true(mmio_claimed(h, 0xd0000000));
	assert_int_equal(h->dev.remap_bar, 0);
	assert_int_equal(h->dev.remap_addr, 0xd0000000);
	assert_true(bus_access(&h->mmio, 0xd0000ff8, false, d, 4));
	assert_int_equal(h->dev.last_offset, 0xff8);

	/* move the 64-bit BAR above 4 GiB, one half at a time */
	ecam_write(h, devfn, 0x1c, 0x2, 4);
	assert_false(mmio_claimed(h, 0x100000000));
	assert_true(mmio_claimed(h, 0x200000000));
	ecam_write(h, devfn, 0x18, 0x00100000, 4);
	assert_true(mmio_claimed(h, 0x200100000));
	assert_false(mmio_claimed(h, 0x200000000));
	assert_int_equal(h->dev.remap_addr, 0x200100000);

	/* a move onto another BAR cannot decode (and does not crash) */
	ecam_write(h, devfn, 0x20, 0xd0000000, 4);
	assert_true(mmio_claimed(h, 0xd0000000));
	assert_int_equal(h->dev.remap_bar, 4);
	assert_int_equal(h->dev.remap_addr, PCI_BAR_UNMAPPED);
	ecam_write(h, devfn, 0x20, 0xc0010000, 4);
	assert_true(mmio_claimed(h, 0xc0010000));

	/* memory space off: every range goes */
	unsigned before = h->dev.remaps;
	ecam_write(h, devfn, 4, 0, 2);
	assert_false(mmio_claimed(h, 0xd0000000));
	assert_false(mmio_claimed(h, 0x200100000));
	assert_false(mmio_claimed(h, 0xc0010000));
	assert_int_equal(h->dev.remaps, before + 3);
	assert_int_equal(h->dev.remap_addr, PCI_BAR_UNMAPPED);
	/* a BAR at 0 does not decode even with memory space on */
	ecam_write(h, devfn, 0x10, 0, 4);
	ecam_write(h, devfn, 4, PCI_COMMAND_MEMORY, 2);
	assert_false(mmio_claimed(h, 0));
	assert_true(mmio_claimed(h, 0x200100000));
}

static unsigned cap_reads, cap_writes, cap_offset, cap_len;

static void cap_read_hook(void *opaque, unsigned offset, uint8_t *data, unsigned len)
{
	cap_reads++;
	cap_offset = offset;
	cap_len = len;
	if (offset >= 8)
		memset(data, 0x77, len);
}

static void cap_write_hook(void *opaque, unsigned offset, const uint8_t *data, unsigned len)
{
	cap_writes++;
	cap_offset = offset;
	cap_len = len;
}

static const struct pci_cap_ops cap_ops = { .read = cap_read_hook, .write = cap_write_hook };

static void test_capabilities(void **state)
{
	struct harness *h = *state;
	struct pci_function *fn = add_fake(h, 4);
	unsigned devfn = 4 << 3, off1, off2, off3;
	uint8_t body[16] = { 0xaa, 0xbb, 14, 1, 2, 3 }, wmask[16] = { 0xff, 0xff, 0, 0, 0xf0 };

	assert_int_equal(ecam_read(h, devfn, 6, 2) & PCI_STATUS_CAP_LIST, 0);
	assert_int_equal(pci_cap_add(fn, PCI_CAP_ID_VNDR, body, wmask, 14, NULL, NULL, &off1), 0);
	assert_int_equal(pci_cap_add(fn, PCI_CAP_ID_VNDR, NULL, NULL, 6, NULL, NULL, &off2), 0);
	assert_int_equal(pci_cap_add(fn, 0x05, body, NULL, 12, &cap_ops, NULL, &off3), 0);
	assert_int_equal(off1, 0x40);
	assert_int_equal(off2, 0x50); /* 14 rounded up to 16 */
	assert_int_equal(off3, 0x58);

	/* the walk a guest does */
	assert_true(ecam_read(h, devfn, 6, 2) & PCI_STATUS_CAP_LIST);
	unsigned ids[4], n = 0;
	for (unsigned p = cf8_read(h, devfn, 0x34, 1); p && n < 4; n++) {
		ids[n] = cf8_read(h, devfn, p, 1);
		p = cf8_read(h, devfn, p + 1, 1);
	}
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], PCI_CAP_ID_VNDR);
	assert_int_equal(ids[1], PCI_CAP_ID_VNDR);
	assert_int_equal(ids[2], 0x05);
	/* the header bytes come from the root, the rest from the body */
	assert_int_equal(ecam_read(h, devfn, 0x40, 4), 0x010e5009);
	assert_int_equal(ecam_read(h, devfn, 0x44, 2), 0x0302);

	/* the writable mask, and the id/next bytes stay read-only */
	ecam_write(h, devfn, 0x40, 0xffffffff, 4);
	ecam_write(h, devfn, 0x44, 0xffff, 2);
	assert_int_equal(ecam_read(h, devfn, 0x40, 4), 0x010e5009);
	assert_int_equal(ecam_read(h, devfn, 0x44, 2), 0x03f2);

	/* hooks get capability-relative offsets */
	assert_int_equal(ecam_read(h, devfn, 0x60, 4), 0x77777777);
	assert_int_equal(cap_offset, 8);
	assert_int_equal(cap_len, 4);
	ecam_write(h, devfn, 0x5e, 0x1234, 2);
	assert_int_equal(cap_writes, 1);
	assert_int_equal(cap_offset, 6);
	assert_int_equal(ecam_read(h, devfn, 0x5e, 2), 0); /* read-only: nothing stored */

	/* past the capabilities: the device's own hooks */
	h->dev.cfg_reads = 0;
	assert_int_equal(ecam_read(h, devfn, 0x80, 4), 0x83828180);
	assert_int_equal(h->dev.cfg_reads, 1);
	ecam_write(h, devfn, 0xa0, 1, 1);
	assert_int_equal(h->dev.cfg_writes, 1);
	assert_int_equal(h->dev.cfg_offset, 0xa0);

	/* the list is bounded by 0x100 */
	assert_int_equal(pci_cap_add(fn, 0x09, NULL, NULL, 0x101, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(pci_cap_add(fn, 0x09, NULL, NULL, 1, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(pci_cap_add(fn, 0x09, NULL, NULL, 0x9d, NULL, NULL, NULL), -ENOSPC);
	assert_int_equal(pci_cap_add(fn, 0x09, NULL, NULL, 0x9c, NULL, NULL, &off1), 0);
	assert_int_equal(off1, 0x64);
	assert_int_equal(ecam_read(h, devfn, 0x59, 1), 0x64);
}

static void test_out_of_range_and_odd_widths(void **state)
{
	struct harness *h = *state;
	add_fake(h, 6);
	unsigned devfn = 6 << 3;
	uint8_t d[8];

	/* offsets past the space, straight to the root */
	memset(d, 0, sizeof(d));
	pci_config_access(h->root, 0, devfn, 4096, false, d, 4);
	assert_int_equal(get(d, 4), 0xffffffff);
	pci_config_access(h->root, 0, devfn, 0xffffffffu, false, d, 4);
	assert_int_equal(get(d, 4), 0xffffffff);
	pci_config_access(h->root, 0, devfn, 4096, true, d, 4);
	pci_config_access(h->root, 0, 256, 0, false, d, 4);
	assert_int_equal(get(d, 4), 0xffffffff);
	pci_config_access(h->root, 0, 0xffffffffu, 0, false, d, 4);
	assert_int_equal(get(d, 4), 0xffffffff);
	pci_config_access(h->root, 7, devfn, 0, false, d, 2);
	assert_int_equal(get(d, 2), 0xffff);
	/* extended space is the device's (its hook answers with the offset) */
	assert_int_equal(ecam_read(h, devfn, 0x100, 4), 0x03020100);
	assert_int_equal(ecam_read(h, devfn, 0xffc, 4), 0xfffefdfc);

	/* an access must stay inside one dword and be 1, 2 or 4 bytes */
	assert_int_equal(ecam_read(h, devfn, 0, 8), 0xffffffffffffffffULL);
	assert_int_equal(ecam_read(h, devfn, 0, 3), 0xffffff);
	assert_int_equal(ecam_read(h, devfn, 3, 2), 0xffff);
	assert_int_equal(ecam_read(h, devfn, 2, 4), 0xffffffff);
	assert_int_equal(ecam_read(h, devfn, 1, 2), 0x411a); /* inside a dword: fine */
	assert_int_equal(cf8_read(h, devfn, 3, 1), 0x10);
	assert_int_equal(cf8_read(h, devfn, 2, 2), 0x1041);
	/* a 4-byte access at 0xcfd crosses the dword */
	cf8_select(h, devfn, 0);
	assert_true(bus_access(&h->pio, 0xcfd, false, d, 2));
	assert_int_equal(get(d, 2), 0x411a);
	assert_false(bus_access(&h->pio, 0xcfd, false, d, 4)); /* not even the port range */
	/* crossing writes are dropped */
	ecam_write(h, devfn, 0x3b, 0xffff, 2);
	assert_int_equal(ecam_read(h, devfn, 0x3c, 1), 0);
	ecam_write(h, devfn, 0x0c, 0xffffffff, 8);
	assert_int_equal(ecam_read(h, devfn, 0x0c, 1), 0);
	/* partial accesses of the address register do not change it */
	cf8_select(h, devfn, 0x08);
	d[0] = 0x01;
	assert_true(bus_access(&h->pio, 0xcfb, true, d, 1));
	assert_true(bus_access(&h->pio, 0xcf8, false, d, 2));
	assert_int_equal(get(d, 2), 0xffff);
	assert_true(bus_access(&h->pio, 0xcf8, false, d, 4));
	assert_int_equal(get(d, 4), 0x80000000u | devfn << 8 | 0x08);
}

static void test_register_errors(void **state)
{
	struct harness *h = *state;
	struct pci_function_desc desc = { .name = "x", .vendor_id = 1 };
	struct pci_function *fn = NULL, *fns[PCI_NUM_SLOTS];

	desc.bars[0] = (struct pci_bar_desc){ .kind = PCI_BAR_MEM32, .size = 3000 };
	assert_int_equal(pci_register(h->root, &desc, NULL, &fn), -EINVAL);
	desc.bars[0] = (struct pci_bar_desc){ .kind = PCI_BAR_MEM32, .size = 8 };
	assert_int_equal(pci_register(h->root, &desc, NULL, &fn), -EINVAL);
	desc.bars[0] = (struct pci_bar_desc){ .kind = 7, .size = 4096 };
	assert_int_equal(pci_register(h->root, &desc, NULL, &fn), -EINVAL);
	desc.bars[0] = (struct pci_bar_desc){ 0 };
	desc.bars[5] = (struct pci_bar_desc){ .kind = PCI_BAR_MEM64, .size = 4096 };
	assert_int_equal(pci_register(h->root, &desc, NULL, &fn), -EINVAL);
	desc.bars[5] = (struct pci_bar_desc){ 0 };
	desc.bars[1] = (struct pci_bar_desc){ .kind = PCI_BAR_MEM64, .size = 4096 };
	desc.bars[2] = (struct pci_bar_desc){ .kind = PCI_BAR_MEM32, .size = 4096 };
	assert_int_equal(pci_register(h->root, &desc, NULL, &fn), -EINVAL);
	desc.bars[2] = (struct pci_bar_desc){ 0 };
	desc.slot = PCI_NUM_SLOTS;
	assert_int_equal(pci_register(h->root, &desc, NULL, &fn), -EINVAL);
	assert_null(fn);

	/* a full 32-bit window; a failed registration takes no address space */
	desc.slot = 9;
	desc.bars[1] = (struct pci_bar_desc){ 0 };
	desc.bars[0] = (struct pci_bar_desc){ .kind = PCI_BAR_MEM32, .size = 256 * MiB };
	desc.bars[3] = (struct pci_bar_desc){ .kind = PCI_BAR_MEM64, .size = 128 * GiB };
	assert_int_equal(pci_register(h->root, &desc, NULL, &fn), -ENOSPC);
	desc.bars[3] = (struct pci_bar_desc){ 0 };
	desc.bars[2] = (struct pci_bar_desc){ .kind = PCI_BAR_MEM32, .size = 256 * MiB };
	assert_int_equal(pci_register(h->root, &desc, NULL, &fn), 0);
	assert_int_equal(pci_bar_address(fn, 0), 0xc0000000);
	assert_int_equal(pci_bar_address(fn, 2), 0xd0000000);
	assert_int_equal(pci_register(h->root, &desc, NULL, &fns[0]), -EBUSY);
	desc.slot = 10;
	desc.bars[2] = (struct pci_bar_desc){ 0 };
	assert_int_equal(pci_register(h->root, &desc, NULL, &fns[0]), -ENOSPC);

	/* slots run out at 31; unregistering frees one */
	desc.bars[0] = (struct pci_bar_desc){ 0 };
	desc.slot = 0;
	unsigned n = 0;
	while (pci_register(h->root, &desc, NULL, &fns[n]) == 0)
		n++;
	assert_int_equal(n, PCI_NUM_SLOTS - 2);
	assert_int_equal(pci_register(h->root, &desc, NULL, &fns[n]), -EBUSY);
	unsigned slot = pci_function_slot(fns[4]);
	pci_unregister(fns[4]);
	assert_int_equal(ecam_read(h, slot << 3, 0, 4), 0xffffffff);
	assert_int_equal(pci_register(h->root, &desc, NULL, &fns[4]), 0);
	assert_int_equal(pci_function_slot(fns[4]), slot);
	pci_unregister(NULL);
}

static void nop_handler(void *opaque, uint64_t offset, bool is_write, uint8_t *data, unsigned len)
{
}

static void test_root_errors(void **state)
{
	struct bus pio, mmio;
	struct irq_sink irq = { 0 };
	struct pci_root *root = NULL;
	struct pci_layout l = layout;

	(void)state;
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	l.mem32_size = 0;
	assert_int_equal(pci_root_create(&pio, &mmio, &irq, &l, &root), -EINVAL);
	l = layout;
	l.mem32_base = 0xf0000000;
	assert_int_equal(pci_root_create(&pio, &mmio, &irq, &l, &root), -EINVAL);
	l = layout;
	l.mem64_base = 0xd0000000;
	assert_int_equal(pci_root_create(&pio, &mmio, &irq, &l, &root), -EINVAL);
	l = layout;
	l.ecam_size = 4096;
	assert_int_equal(pci_root_create(&pio, &mmio, &irq, &l, &root), -EINVAL);
	assert_null(root);
	/* something already at the ports: nothing left behind */
	assert_int_equal(bus_register(&mmio, ECAM, 16, nop_handler, NULL, "x"), 0);
	assert_int_equal(mmio.nr, 1);
	assert_int_equal(pci_root_create(&pio, &mmio, &irq, &layout, &root), -EEXIST);
	assert_null(root);
	assert_int_equal(pio.nr, 0);
	assert_int_equal(mmio.nr, 1);
	assert_null(pci_root_destroy(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_host_bridge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_decode_and_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capabilities, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_range_and_odd_widths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_errors, setup, teardown),
		cmocka_unit_test(test_root_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
