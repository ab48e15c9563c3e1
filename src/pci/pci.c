/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PCI root complex: configuration mechanisms (0xcf8/0xcfc and ECAM), type 0 headers with
 * writable masks, BAR assignment and decoding, the capability list.
 *
 * A BAR's register keeps what the guest wrote, filtered by the write mask: writing all ones
 * reads back ~(size - 1) plus the type bits, which is the sizing protocol with no special
 * case. Whether a BAR decodes follows the register and the command register's memory space
 * bit after every write that touches either: its range is moved on the MMIO bus then.
 */
#include "pci/pci.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "pci/internal.h"
#include "util/state.h"
#include "util/util.h"

#define PCI_CF8_PORT	 0xcf8
#define PCI_CF8_SIZE	 8 /* address register 0xcf8-0xcfb, data 0xcfc-0xcff */
#define PCI_CF8_ENABLE	 0x80000000u
#define PCI_CF8_WMASK	 0x80fffffcu /* enable, bus, device, function, register */
#define PCI_ECAM_BUS_SZ	 (1u << 20)
#define PCI_COMMAND_MASK 0x0546u /* memory, master, parity, SERR, INTx disable */
#define PCI_HEADER_END	 0x40

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static uint64_t bar_register_value(const struct pci_function *fn, unsigned i)
{
	const struct pci_bar *b = &fn->bars[i];
	uint64_t v = pci_rd32(fn->cfg + PCI_BAR0 + 4 * i) & ~0xfULL;

	if (b->kind == PCI_BAR_MEM64)
		v |= (uint64_t)pci_rd32(fn->cfg + PCI_BAR0 + 4 * (i + 1)) << 32;
	return v;
}

/* The MMIO handler of a decoding BAR: MSI-X structures first, then the device. */
static void bar_handler(void *opaque, uint64_t offset, bool is_write, uint8_t *data, unsigned len)
{
	struct pci_bar *b = opaque;
	struct pci_function *fn = b->fn;

	if (fn->msix && msix_bar_access(fn, b->index, offset, is_write, data, len))
		return;
	if (fn->ops && fn->ops->bar_rw) {
		fn->ops->bar_rw(fn->opaque, b->index, offset, is_write, data, len);
		return;
	}
	if (!is_write)
		memset(data, 0, len);
}

/* Puts BAR @i where its register and the command register say. Called with the lock held. */
static void bar_update(struct pci_function *fn, unsigned i, bool mem_on)
{
	struct pci_bar *b = &fn->bars[i];
	uint64_t addr = bar_register_value(fn, i);
	uint64_t want = PCI_BAR_UNMAPPED, old = b->mapped;

	/* 0 is "not programmed"; a wrap past 2^64 cannot decode (both only from a guest). */
	if (mem_on && addr != 0 && !range_overflows(addr, b->size))
		want = addr;
	if (want == old)
		return;
	if (old != PCI_BAR_UNMAPPED) {
		bus_unregister(fn->root->mmio, old);
		b->mapped = PCI_BAR_UNMAPPED;
	}
	if (want != PCI_BAR_UNMAPPED) {
		int r = bus_register(fn->root->mmio, want, b->size, bar_handler, b, fn->name);
		if (r == 0)
			b->mapped = want;
		else
			log_ratelimited(&fn->root->rl, LOG_WARN,
					"pci: %s (00:%02x.0) BAR%u at 0x%" PRIx64
					" cannot decode: %s",
					fn->name, fn->slot, i, want, strerror(-r));
	}
	if (b->mapped != old && fn->ops && fn->ops->bar_remap)
		fn->ops->bar_remap(fn->opaque, i, b->mapped);
}

static void fn_update_bars(struct pci_function *fn)
{
	bool mem_on = fn->cfg[PCI_COMMAND] & PCI_COMMAND_MEMORY;

	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		if (fn->bars[i].kind != PCI_BAR_UNUSED)
			bar_update(fn, i, mem_on);
}

static struct pci_cap *cap_at(struct pci_function *fn, unsigned offset)
{
	for (unsigned i = 0; i < fn->nr_caps; i++) {
		struct pci_cap *c = &fn->caps[i];
		if (offset >= c->offset && offset < c->offset + ALIGN_UP(c->len, 4u))
			return c;
	}
	return NULL;
}

static void fn_cfg_read(struct pci_function *fn, unsigned offset, uint8_t *data, unsigned len)
{
	memcpy(data, fn->cfg + offset, len);
	if (offset < PCI_HEADER_END)
		return;
	struct pci_cap *c = cap_at(fn, offset);
	if (c) {
		if (c->ops && c->ops->read && offset < c->offset + c->len)
			c->ops->read(c->opaque, offset - c->offset, data, len);
	} else if (fn->ops && fn->ops->cfg_read) {
		fn->ops->cfg_read(fn->opaque, offset, data, len);
	}
}

static void fn_cfg_write(struct pci_function *fn, unsigned offset, const uint8_t *data,
			 unsigned len)
{
	for (unsigned i = 0; i < len; i++) {
		uint8_t m = fn->wmask[offset + i];
		fn->cfg[offset + i] = (uint8_t)((fn->cfg[offset + i] & ~m) | (data[i] & m));
	}
	if (offset < PCI_HEADER_END) {
		bool command = offset < PCI_COMMAND + 2 && offset + len > PCI_COMMAND;
		bool bars = offset < PCI_BAR0 + 4 * PCI_NUM_BARS && offset + len > PCI_BAR0;
		if (command || bars)
			fn_update_bars(fn); /* re-evaluate decoding */
		return;
	}
	struct pci_cap *c = cap_at(fn, offset);
	if (c) {
		if (c->ops && c->ops->write && offset < c->offset + c->len)
			c->ops->write(c->opaque, offset - c->offset, data, len);
	} else if (fn->ops && fn->ops->cfg_write) {
		fn->ops->cfg_write(fn->opaque, offset, data, len);
	}
}

void pci_config_access(struct pci_root *root, unsigned bus, unsigned devfn, unsigned offset,
		       bool is_write, uint8_t *data, unsigned len)
{
	if (!is_write)
		memset(data, 0xff, len);
	/* One dword at most, inside it, inside the space; bus 0, function 0 only. */
	if ((len != 1 && len != 2 && len != 4) || (offset & 3) + len > 4 ||
	    offset >= PCI_CFG_SIZE || bus != 0 || devfn >= PCI_NUM_SLOTS * 8 || (devfn & 7))
		return;
	pthread_mutex_lock(&root->lock);
	struct pci_function *fn = root->slots[devfn >> 3];
	if (fn) {
		if (is_write)
			fn_cfg_write(fn, offset, data, len);
		else
			fn_cfg_read(fn, offset, data, len);
	}
	pthread_mutex_unlock(&root->lock);
}

static void cf8_handler(void *opaque, uint64_t offset, bool is_write, uint8_t *data, unsigned len)
{
	struct pci_root *root = opaque;

	if (offset < 4) {
		/* The address register takes whole dwords only; 0xcf9 & co. are not ours. */
		if (offset != 0 || len != 4) {
			if (!is_write)
				memset(data, 0xff, len);
			return;
		}
		if (is_write)
			__atomic_store_n(&root->cf8, pci_rd32(data) & PCI_CF8_WMASK,
					 __ATOMIC_RELAXED);
		else
			pci_wr32(data, __atomic_load_n(&root->cf8, __ATOMIC_RELAXED));
		return;
	}
	uint32_t a = __atomic_load_n(&root->cf8, __ATOMIC_RELAXED);
	if (!(a & PCI_CF8_ENABLE)) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pci_config_access(root, (a >> 16) & 0xff, (a >> 8) & 0xff,
			  (a & 0xfc) + (unsigned)(offset - 4), is_write, data, len);
}

static void ecam_handler(void *opaque, uint64_t offset, bool is_write, uint8_t *data, unsigned len)
{
	pci_config_access(opaque, (unsigned)(offset >> 20), (unsigned)(offset >> 12) & 0xff,
			  (unsigned)offset & 0xfff, is_write, data, len);
}

/* A window is valid when it is non-empty, 4 KiB aligned and does not wrap. */
static bool window_ok(uint64_t base, uint64_t size)
{
	return size && IS_ALIGNED(base, 4 * KiB) && IS_ALIGNED(size, 4 * KiB) &&
	       !range_overflows(base, size);
}

static bool windows_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a <= b + (blen - 1) && b <= a + (alen - 1);
}

/* Takes the next naturally aligned @size bytes of a window; false when it is full. */
static bool window_take(uint64_t *next, uint64_t end, uint64_t size, uint64_t *ret)
{
	uint64_t a = ALIGN_UP(*next, size);

	if (a < *next || a > end || size > end - a)
		return false;
	*ret = a;
	*next = a + size;
	return true;
}

static int bar_assign(struct pci_root *root, const struct pci_function_desc *desc,
		      uint64_t ret[PCI_NUM_BARS])
{
	uint64_t next32 = root->next32, next64 = root->next64;
	const struct pci_layout *l = &root->layout;

	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		const struct pci_bar_desc *b = &desc->bars[i];
		bool ok;

		ret[i] = 0;
		if (b->kind == PCI_BAR_UNUSED)
			continue;
		if (b->kind != PCI_BAR_MEM32 && b->kind != PCI_BAR_MEM64)
			return -EINVAL;
		if (!is_pow2(b->size) || b->size < PCI_BAR_MIN_SIZE)
			return -EINVAL;
		if (b->kind == PCI_BAR_MEM32) {
			if (b->size > (1ULL << 31))
				return -EINVAL;
			ok = window_take(&next32, l->mem32_base + l->mem32_size, b->size, &ret[i]);
		} else {
			if (i + 1 >= PCI_NUM_BARS || desc->bars[i + 1].kind != PCI_BAR_UNUSED)
				return -EINVAL;
			ok = window_take(&next64, l->mem64_base + l->mem64_size, b->size, &ret[i]);
		}
		if (!ok)
			return -ENOSPC;
		if (b->kind == PCI_BAR_MEM64)
			i++;
	}
	root->next32 = next32;
	root->next64 = next64;
	return 0;
}

static void header_init(struct pci_function *fn, const struct pci_function_desc *desc,
			const uint64_t addr[PCI_NUM_BARS])
{
	uint8_t *c = fn->cfg, *m = fn->wmask;

	pci_wr16(c + PCI_VENDOR_ID, desc->vendor_id);
	pci_wr16(c + PCI_DEVICE_ID, desc->device_id);
	c[PCI_REVISION_ID] = desc->revision;
	c[PCI_CLASS_PROG] = (uint8_t)desc->class_code;
	c[PCI_CLASS_PROG + 1] = (uint8_t)(desc->class_code >> 8);
	c[PCI_CLASS_PROG + 2] = (uint8_t)(desc->class_code >> 16);
	c[PCI_HEADER_TYPE] = 0; /* type 0, single function */
	pci_wr16(c + PCI_SUBSYSTEM_VID, desc->subsystem_vendor_id);
	pci_wr16(c + PCI_SUBSYSTEM_ID, desc->subsystem_id);
	/* No INTx (interrupt pin 0), no expansion ROM (its register reads 0 and is read-only). */
	pci_wr16(m + PCI_COMMAND, PCI_COMMAND_MASK);
	m[PCI_CACHE_LINE_SIZE] = 0xff;
	m[PCI_INTERRUPT_LINE] = 0xff;

	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		const struct pci_bar_desc *d = &desc->bars[i];
		struct pci_bar *b = &fn->bars[i];
		uint32_t flags = d->prefetchable ? PCI_BAR_MEM_PREFETCH : 0;

		b->fn = fn;
		b->index = i;
		b->mapped = PCI_BAR_UNMAPPED;
		if (d->kind == PCI_BAR_UNUSED)
			continue;
		b->kind = d->kind;
		b->size = d->size;
		b->assigned = addr[i];
		uint64_t mask = ~(d->size - 1) & ~0xfULL;
		if (d->kind == PCI_BAR_MEM64)
			flags |= PCI_BAR_MEM_TYPE_64;
		pci_wr32(c + PCI_BAR0 + 4 * i, (uint32_t)addr[i] | flags);
		pci_wr32(m + PCI_BAR0 + 4 * i, (uint32_t)mask);
		if (d->kind == PCI_BAR_MEM64) {
			i++;
			fn->bars[i] = (struct pci_bar){ .fn = fn,
							.index = i,
							.mapped = PCI_BAR_UNMAPPED };
			pci_wr32(c + PCI_BAR0 + 4 * i, (uint32_t)(addr[i - 1] >> 32));
			pci_wr32(m + PCI_BAR0 + 4 * i, (uint32_t)(mask >> 32));
		}
	}
}

/* @slot -1: the first free one from 1. */
static int register_at(struct pci_root *root, const struct pci_function_desc *desc, void *opaque,
		       int slot, struct pci_function **ret)
{
	uint64_t addr[PCI_NUM_BARS];
	struct pci_function *fn = calloc(1, sizeof(*fn));

	if (!fn)
		return -ENOMEM;
	pthread_mutex_lock(&root->lock);
	int r = -EBUSY;
	for (unsigned s = 1; s < PCI_NUM_SLOTS && slot < 0; s++)
		if (!root->slots[s])
			slot = (int)s;
	if (slot < 0)
		goto out;
	if (root->slots[slot])
		goto out;
	r = bar_assign(root, desc, addr);
	if (r < 0)
		goto out;
	fn->root = root;
	fn->name = desc->name ? desc->name : "pci";
	fn->ops = desc->ops;
	fn->opaque = opaque;
	fn->slot = (unsigned)slot;
	fn->cap_free = PCI_CAP_START;
	header_init(fn, desc, addr);
	root->slots[slot] = fn;
	*ret = ptr_take(&fn);
out:
	pthread_mutex_unlock(&root->lock);
	free(fn);
	return r;
}

int pci_register(struct pci_root *root, const struct pci_function_desc *desc, void *opaque,
		 struct pci_function **ret)
{
	if (!desc || desc->slot >= PCI_NUM_SLOTS)
		return -EINVAL;
	return register_at(root, desc, opaque, desc->slot ? (int)desc->slot : -1, ret);
}

void pci_unregister(struct pci_function *fn)
{
	if (!fn)
		return;
	struct pci_root *root = fn->root;

	pthread_mutex_lock(&root->lock);
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		if (fn->bars[i].mapped != PCI_BAR_UNMAPPED)
			bus_unregister(root->mmio, fn->bars[i].mapped);
		fn->bars[i].mapped = PCI_BAR_UNMAPPED;
	}
	root->slots[fn->slot] = NULL;
	pthread_mutex_unlock(&root->lock);
	msix_free(fn);
	free(fn);
}

unsigned pci_function_slot(const struct pci_function *fn)
{
	return fn->slot;
}

uint64_t pci_bar_address(const struct pci_function *fn, unsigned bar)
{
	return bar < PCI_NUM_BARS ? fn->bars[bar].assigned : 0;
}

int pci_function_save(struct pci_function *fn, json_t *obj)
{
	struct pci_root *root = fn->root;
	int r;

	pthread_mutex_lock(&root->lock);
	r = state_set_u32(obj, "slot", fn->slot);
	if (r == 0)
		r = state_set_blob(obj, "config", fn->cfg, PCI_CFG_LEGACY);
	if (r == 0 && fn->msix)
		r = msix_save(fn, obj);
	pthread_mutex_unlock(&root->lock);
	return r;
}

/* Whether @cfg (a saved config space) has this function's read-only bits; else sets @err. */
static bool cfg_fits(const struct pci_function *fn, const uint8_t *cfg, char *err, size_t errlen)
{
	for (unsigned i = 0; i < PCI_CFG_LEGACY; i++) {
		if ((cfg[i] ^ fn->cfg[i]) & ~fn->wmask[i]) {
			snprintf(err, errlen,
				 "field 'config': read-only byte 0x%02x is 0x%02x, this device has "
				 "0x%02x (another device or configuration)",
				 i, cfg[i], fn->cfg[i]);
			return false;
		}
	}
	return true;
}

int pci_function_load(struct pci_function *fn, const json_t *obj, char *err, size_t errlen)
{
	struct pci_root *root = fn->root;
	uint8_t cfg[PCI_CFG_LEGACY];
	uint32_t slot;
	int r;

	r = state_get_u32(obj, "slot", PCI_NUM_SLOTS - 1, &slot, err, errlen);
	if (r < 0)
		return r;
	if (slot != fn->slot) {
		snprintf(err, errlen, "field 'slot': %u, but the device is at slot %u", slot,
			 fn->slot);
		return -EINVAL;
	}
	r = state_get_blob(obj, "config", cfg, sizeof(cfg), err, errlen);
	if (r < 0)
		return r;
	pthread_mutex_lock(&root->lock);
	if (!cfg_fits(fn, cfg, err, errlen)) {
		r = -EINVAL;
		goto out;
	}
	if (fn->msix) {
		r = msix_load(fn, obj, err, errlen);
		if (r < 0)
			goto out;
	}
	/* As the guest's writes: the writable bits, then what follows them. */
	for (unsigned i = 0; i < PCI_CFG_LEGACY; i++)
		fn->cfg[i] = (uint8_t)((fn->cfg[i] & ~fn->wmask[i]) | (cfg[i] & fn->wmask[i]));
	fn_update_bars(fn);
	for (unsigned i = 0; i < fn->nr_caps; i++) {
		const struct pci_cap *c = &fn->caps[i];

		if (c->ops && c->ops->write)
			c->ops->write(c->opaque, 0, fn->cfg + c->offset, c->len);
	}
out:
	pthread_mutex_unlock(&root->lock);
	return r;
}

int pci_cap_add(struct pci_function *fn, uint8_t id, const void *body, const void *wmask,
		size_t len, const struct pci_cap_ops *ops, void *opaque, unsigned *ret_offset)
{
	struct pci_root *root = fn->root;
	int r = 0;

	if (len < 2 || len > PCI_CAP_END)
		return -EINVAL;
	pthread_mutex_lock(&root->lock);
	unsigned off = fn->cap_free;
	if (fn->nr_caps == PCI_MAX_CAPS || off + len > PCI_CAP_END) {
		r = -ENOSPC;
		goto out;
	}
	if (body)
		memcpy(fn->cfg + off, body, len);
	if (wmask)
		memcpy(fn->wmask + off, wmask, len);
	fn->cfg[off] = id;
	fn->cfg[off + 1] = 0;
	fn->wmask[off] = fn->wmask[off + 1] = 0;
	/* Link: from the header's pointer or the previous capability's next byte. */
	if (fn->nr_caps == 0) {
		fn->cfg[PCI_CAPABILITY_LIST] = (uint8_t)off;
		fn->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	} else {
		fn->cfg[fn->caps[fn->nr_caps - 1].offset + 1] = (uint8_t)off;
	}
	fn->caps[fn->nr_caps++] = (struct pci_cap){
		.offset = off, .len = (unsigned)len, .ops = ops, .opaque = opaque
	};
	fn->cap_free = off + ALIGN_UP((unsigned)len, 4u);
	if (ret_offset)
		*ret_offset = off;
out:
	pthread_mutex_unlock(&root->lock);
	return r;
}

int pci_root_create(struct bus *pio, struct bus *mmio, const struct irq_sink *irq,
		    const struct pci_layout *layout, struct pci_root **ret)
{
	const struct pci_layout *l = layout;
	struct pci_root *root;
	struct pci_function *host;
	int r;

	if (!window_ok(l->ecam_base, l->ecam_size) || l->ecam_size < PCI_ECAM_BUS_SZ ||
	    !window_ok(l->mem32_base, l->mem32_size) || !window_ok(l->mem64_base, l->mem64_size) ||
	    l->mem32_base + l->mem32_size > (1ULL << 32) ||
	    windows_overlap(l->mem32_base, l->mem32_size, l->mem64_base, l->mem64_size) ||
	    windows_overlap(l->ecam_base, l->ecam_size, l->mem32_base, l->mem32_size) ||
	    windows_overlap(l->ecam_base, l->ecam_size, l->mem64_base, l->mem64_size))
		return -EINVAL;
	root = calloc(1, sizeof(*root));
	if (!root)
		return -ENOMEM;
	pthread_mutex_init(&root->lock, NULL);
	root->pio = pio;
	root->mmio = mmio;
	root->irq = irq;
	root->layout = *l;
	root->next32 = l->mem32_base;
	root->next64 = l->mem64_base;
	root->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5000000000ULL, 10);

	const struct pci_function_desc bridge = {
		.name = "pci-host-bridge",
		.vendor_id = PCI_HOST_BRIDGE_VENDOR,
		.device_id = PCI_HOST_BRIDGE_DEVICE,
		.class_code = PCI_CLASS_HOST_BRIDGE,
	};
	r = register_at(root, &bridge, NULL, 0, &host);
	if (r == 0) {
		r = bus_register(pio, PCI_CF8_PORT, PCI_CF8_SIZE, cf8_handler, root, "pci-cf8");
		root->pio_registered = r == 0;
	}
	if (r == 0) {
		r = bus_register(mmio, l->ecam_base, l->ecam_size, ecam_handler, root, "pci-ecam");
		root->ecam_registered = r == 0;
	}
	if (r < 0) {
		pci_root_destroy(root);
		return r;
	}
	*ret = root;
	return 0;
}

struct pci_root *pci_root_destroy(struct pci_root *root)
{
	if (!root)
		return NULL;
	if (root->ecam_registered)
		bus_unregister(root->mmio, root->layout.ecam_base);
	if (root->pio_registered)
		bus_unregister(root->pio, PCI_CF8_PORT);
	for (unsigned s = 0; s < PCI_NUM_SLOTS; s++)
		pci_unregister(root->slots[s]);
	pthread_mutex_destroy(&root->lock);
	free(root);
	return NULL;
}
