/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A fake machine for virtio device tests: a real PCI root on real buses, 1 MiB of fake guest
 * RAM at 0, a fake MSI sink that counts, a fake loop that records fds, and a tiny driver that
 * talks to the virtio-PCI transport through BAR 0 exactly as a guest would. Include after
 * cmocka.h. Everything is static inline: each test uses a part of it.
 */
#ifndef CUBICLE_TESTS_VIRTIO_HARNESS_H
#define CUBICLE_TESTS_VIRTIO_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "config/config.h"
#include "devices/device.h"
#include "mem/guest_mem.h"
#include "pci/pci.h"
#include "util/state.h"
#include "util/util.h"
#include "virtio/virtio.h"

#define VH_RAM_SIZE  (1ULL << 20)
#define VH_MAX_MSIS  64
#define VH_MAX_FDS   160    /* vsock's connection table */
#define VH_DESC	     0x1000 /* queue q's rings at q * VH_RING_STEP from these */
#define VH_AVAIL     0x2000
#define VH_USED	     0x3000
#define VH_RING_STEP 0x4000
#define VH_MSI_ADDR  0xfee00000ULL

struct vh_fd {
	int fd;
	uint32_t events;
	dev_fd_cb cb;
	void *opaque;
	bool used;
};

struct vh {
	struct bus pio, mmio;
	struct irq_sink irq;
	struct pci_root *root;
	struct guest_mem mem;
	uint8_t *ram;
	struct vm_config cfg;
	struct dev_loop loop;
	struct dev_ctx ctx;
	struct vh_fd fds[VH_MAX_FDS];
	unsigned nr_msis;
	uint32_t msi_data[VH_MAX_MSIS];
	/* the device under test */
	struct pci_function *fn;
	unsigned devfn;
	uint64_t bar;
	uint16_t avail_idx[8];
};

static inline int vh_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct vh *h = opaque;

	if (h->nr_msis < VH_MAX_MSIS)
		h->msi_data[h->nr_msis] = data;
	h->nr_msis++;
	return 0;
}

static inline struct vh_fd *vh_find_fd(struct vh *h, int fd)
{
	for (unsigned i = 0; i < VH_MAX_FDS; i++) {
		if (h->fds[i].used && h->fds[i].fd == fd)
			return &h->fds[i];
	}
	return NULL;
}

static inline int vh_add_fd(void *loop, int fd, uint32_t events, dev_fd_cb cb, void *opaque)
{
	struct vh *h = loop;

	for (unsigned i = 0; i < VH_MAX_FDS; i++) {
		if (!h->fds[i].used) {
			h->fds[i] = (struct vh_fd){ fd, events, cb, opaque, true };
			return 0;
		}
	}
	return -ENOSPC;
}

static inline int vh_mod_fd(void *loop, int fd, uint32_t events)
{
	struct vh_fd *f = vh_find_fd(loop, fd);

	if (!f)
		return -ENOENT;
	f->events = events;
	return 0;
}

static inline int vh_del_fd(void *loop, int fd)
{
	struct vh_fd *f = vh_find_fd(loop, fd);

	if (!f)
		return -ENOENT;
	f->used = false;
	return 0;
}

/* Calls @fd's callback as the loop would for @events. */
static inline void vh_fire(struct vh *h, int fd, uint32_t events)
{
	struct vh_fd *f = vh_find_fd(h, fd);

	assert_non_null(f);
	f->cb(f->opaque, events);
}

static inline struct vh *vh_create(bool with_loop)
{
	static const struct pci_layout layout = {
		.ecam_base = 0xe0000000,
		.ecam_size = 0x10000000,
		.mem32_base = 0xc0000000,
		.mem32_size = 0x20000000,
		.mem64_base = 0x100000000,
		.mem64_size = 1ULL << 36,
	};
	struct vh *h = calloc(1, sizeof(*h));

	assert_non_null(h);
	bus_init(&h->pio, "pio");
	bus_init(&h->mmio, "mmio");
	h->irq = (struct irq_sink){ .msi = vh_msi, .opaque = h };
	assert_int_equal(pci_root_create(&h->pio, &h->mmio, &h->irq, &layout, &h->root), 0);
	h->ram = calloc(1, VH_RAM_SIZE);
	assert_non_null(h->ram);
	guest_mem_init(&h->mem);
	assert_int_equal(guest_mem_add_region(&h->mem, 0, VH_RAM_SIZE, h->ram), 0);
	vm_config_init(&h->cfg);
	h->loop = (struct dev_loop){
		.add_fd = vh_add_fd, .mod_fd = vh_mod_fd, .del_fd = vh_del_fd, .loop = h
	};
	h->ctx = (struct dev_ctx){ .mem = &h->mem,
				   .pio = &h->pio,
				   .mmio = &h->mmio,
				   .irq = &h->irq,
				   .pci = h->root,
				   .loop = with_loop ? &h->loop : NULL,
				   .cfg = &h->cfg };
	return h;
}

static inline void vh_destroy(struct vh *h)
{
	h->root = pci_root_destroy(h->root);
	vm_config_free(&h->cfg);
	free(h->ram);
	free(h);
}

static inline uint32_t vh_cfg_read(struct vh *h, unsigned off, unsigned len)
{
	uint8_t d[4] = { 0 };
	uint32_t v = 0;

	pci_config_access(h->root, 0, h->devfn, off, false, d, len);
	for (unsigned i = 0; i < len; i++)
		v |= (uint32_t)d[i] << (8 * i);
	return v;
}

static inline void vh_cfg_write(struct vh *h, unsigned off, uint32_t v, unsigned len)
{
	uint8_t d[4];

	for (unsigned i = 0; i < len; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	pci_config_access(h->root, 0, h->devfn, off, true, d, len);
}

static inline uint64_t vh_rd(struct vh *h, uint64_t off, unsigned len)
{
	uint8_t d[8] = { 0 };
	uint64_t v = 0;

	assert_true(bus_access(&h->mmio, h->bar + off, false, d, len));
	for (unsigned i = 0; i < len; i++)
		v |= (uint64_t)d[i] << (8 * i);
	return v;
}

static inline void vh_wr(struct vh *h, uint64_t off, uint64_t v, unsigned len)
{
	uint8_t d[8];

	for (unsigned i = 0; i < len; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	assert_true(bus_access(&h->mmio, h->bar + off, true, d, len));
}

/* Offset of the first capability @id (after @from, 0 = the start) in @h->fn's list. */
static inline unsigned vh_find_cap(struct vh *h, uint8_t id, unsigned from)
{
	unsigned p = from ? vh_cfg_read(h, from + 1, 1) : vh_cfg_read(h, PCI_CAPABILITY_LIST, 1);

	for (unsigned n = 0; p && n < 48; n++) {
		if (vh_cfg_read(h, p, 1) == id)
			return p;
		p = vh_cfg_read(h, p + 1, 1);
	}
	return 0;
}

/* Decodes BAR 0, enables MSI-X with every vector unmasked (data = vector). */
static inline void vh_attach(struct vh *h, struct pci_function *fn, unsigned nr_vectors)
{
	unsigned cap;

	h->fn = fn;
	h->devfn = pci_function_slot(fn) << 3;
	h->bar = pci_bar_address(fn, 0);
	vh_cfg_write(h, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	for (unsigned v = 0; v < nr_vectors; v++) {
		uint64_t e = VIRTIO_PCI_MSIX_TABLE_OFF + 16ULL * v;

		vh_wr(h, e, VH_MSI_ADDR, 4);
		vh_wr(h, e + 4, 0, 4);
		vh_wr(h, e + 8, v, 4);
		vh_wr(h, e + 12, 0, 4);
	}
	cap = vh_find_cap(h, PCI_CAP_ID_MSIX, 0);
	assert_int_not_equal(cap, 0);
	vh_cfg_write(h, cap + 2, PCI_MSIX_CTRL_ENABLE, 2);
}

static inline uint8_t vh_status(struct vh *h)
{
	return (uint8_t)vh_rd(h, VIRTIO_PCI_COMMON_STATUS, 1);
}

/* ACK, DRIVER, the features, FEATURES_OK. Returns the status read back. */
static inline uint8_t vh_negotiate(struct vh *h, uint64_t features)
{
	vh_wr(h, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	vh_wr(h, VIRTIO_PCI_COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	vh_wr(h, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	vh_wr(h, VIRTIO_PCI_COMMON_GF, (uint32_t)features, 4);
	vh_wr(h, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	vh_wr(h, VIRTIO_PCI_COMMON_GF, (uint32_t)(features >> 32), 4);
	vh_wr(h, VIRTIO_PCI_COMMON_STATUS,
	      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK, 1);
	return vh_status(h);
}

#define VH_VERSION_1 (1ULL << VIRTIO_F_VERSION_1)

/* Queue @q of @size at its rings, vector q + 1, enabled. */
static inline void vh_setup_queue(struct vh *h, unsigned q, uint16_t size)
{
	uint64_t step = (uint64_t)q * VH_RING_STEP;

	vh_wr(h, VIRTIO_PCI_COMMON_Q_SELECT, q, 2);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_SIZE, size, 2);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_MSIX, q + 1, 2);
	/* 64-bit addresses as two 32-bit halves, as Linux writes them */
	vh_wr(h, VIRTIO_PCI_COMMON_Q_DESC, VH_DESC + step, 4);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_DESC + 4, 0, 4);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_AVAIL, VH_AVAIL + step, 4);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_AVAIL + 4, 0, 4);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_USED, VH_USED + step, 4);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_USED + 4, 0, 4);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
}

static inline void vh_driver_ok(struct vh *h)
{
	vh_wr(h, VIRTIO_PCI_COMMON_MSIX, 0, 2);
	vh_wr(h, VIRTIO_PCI_COMMON_STATUS,
	      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		      VIRTIO_STATUS_DRIVER_OK,
	      1);
}

static inline void vh_put16(struct vh *h, uint64_t gpa, uint16_t v)
{
	h->ram[gpa] = (uint8_t)v;
	h->ram[gpa + 1] = (uint8_t)(v >> 8);
}

static inline uint16_t vh_get16(struct vh *h, uint64_t gpa)
{
	return (uint16_t)(h->ram[gpa] | h->ram[gpa + 1] << 8);
}

static inline uint32_t vh_get32(struct vh *h, uint64_t gpa)
{
	return vh_get16(h, gpa) | (uint32_t)vh_get16(h, gpa + 2) << 16;
}

/* Writes descriptor @i of queue @q. */
static inline void vh_desc(struct vh *h, unsigned q, unsigned i, uint64_t addr, uint32_t len,
			   uint16_t flags, uint16_t next)
{
	uint64_t d = VH_DESC + (uint64_t)q * VH_RING_STEP + 16ULL * i;

	for (unsigned b = 0; b < 8; b++)
		h->ram[d + b] = (uint8_t)(addr >> (8 * b));
	for (unsigned b = 0; b < 4; b++)
		h->ram[d + 8 + b] = (uint8_t)(len >> (8 * b));
	vh_put16(h, d + 12, flags);
	vh_put16(h, d + 14, next);
}

/* Makes chain @head available on queue @q (of @size). */
static inline void vh_avail(struct vh *h, unsigned q, uint16_t size, uint16_t head)
{
	uint64_t a = VH_AVAIL + (uint64_t)q * VH_RING_STEP;

	vh_put16(h, a + 4 + 2ULL * (h->avail_idx[q] % size), head);
	h->avail_idx[q]++;
	vh_put16(h, a + 2, h->avail_idx[q]);
}

static inline uint16_t vh_used_idx(struct vh *h, unsigned q)
{
	return vh_get16(h, VH_USED + (uint64_t)q * VH_RING_STEP + 2);
}

/* Length the device reported for used entry @n of queue @q. */
static inline uint32_t vh_used_len(struct vh *h, unsigned q, unsigned n, uint16_t size)
{
	return vh_get32(h, VH_USED + (uint64_t)q * VH_RING_STEP + 4 + 8ULL * (n % size) + 4);
}

static inline void vh_notify(struct vh *h, unsigned q)
{
	vh_wr(h, VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * q, q, 2);
}

/* ---- snapshot round trips ---- */

/* @o as the round-trip tests compare it (caller frees). */
static inline char *vh_dump(const json_t *o)
{
	char *s = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);

	assert_non_null(s);
	return s;
}

/* @ops->save of @dev, dumped (caller frees). */
static inline char *vh_save(const struct dev_ops *ops, void *dev)
{
	json_t *o = json_object();
	char err[256] = "", *s;

	assert_non_null(o);
	if (ops->save(dev, o, err, sizeof(err)) < 0)
		fail_msg("save: %s", err);
	s = vh_dump(o);
	json_decref(o);
	return s;
}

/* A second machine for a restore: @src's guest RAM and driver-side indices copied. */
static inline struct vh *vh_clone(const struct vh *src, bool with_loop)
{
	struct vh *h = vh_create(with_loop);

	memcpy(h->ram, src->ram, VH_RAM_SIZE);
	memcpy(h->avail_idx, src->avail_idx, sizeof(h->avail_idx));
	return h;
}

/* After a restore: the test driver talks to @fn where its restored BAR 0 decodes. */
static inline void vh_adopt(struct vh *h, struct pci_function *fn)
{
	h->fn = fn;
	h->devfn = pci_function_slot(fn) << 3;
	h->bar = (vh_cfg_read(h, PCI_BAR0, 4) & ~0xfu) | (uint64_t)vh_cfg_read(h, PCI_BAR0 + 4, 4)
								 << 32;
}

/* json_loads() of @text, with a path edit: the member @key of the object at @path ("queues/0",
 * "" for the top) set to @v, or removed when @v is NULL. */
static inline json_t *vh_edit(const char *text, const char *path, const char *key, json_t *v)
{
	json_t *o = json_loads(text, 0, NULL), *t;
	char buf[128], *save = NULL;

	assert_non_null(o);
	t = o;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save))
		t = json_is_array(t) ? json_array_get(t, strtoul(tok, NULL, 10))
				     : json_object_get(t, tok);
	assert_non_null(t);
	if (v)
		json_object_set_new(t, key, v);
	else
		json_object_del(t, key);
	return o;
}

#endif
