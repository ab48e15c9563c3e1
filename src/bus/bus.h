/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Port-I/O and MMIO address spaces: sorted, disjoint ranges, each with one handler. One handler
 * type serves both spaces (as in kvmtool). An access that no range claims reads as all ones and
 * its writes are dropped, as on a real bus; an access that straddles a range's end is not
 * claimed by that range.
 *
 * Ranges are registered while the VM is built and looked up by vCPU threads afterwards; they may
 * also change while vCPUs run (a guest moving a PCI BAR), so the table has a lock. A handler is
 * called with that lock released: it may itself register or unregister ranges, and a range
 * unregistered by one vCPU may still see an access that another vCPU had already looked up (as
 * an in-flight access on a real bus), so its opaque must live until the vCPUs are stopped.
 */
#ifndef CUBICLE_BUS_BUS_H
#define CUBICLE_BUS_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * @offset is relative to the range's base. @data holds @len bytes (1, 2, 4 or 8), little
 * endian: to be filled on a read, consumed on a write. Handlers run on vCPU threads and must
 * not block.
 */
typedef void (*bus_handler_fn)(void *opaque, uint64_t offset, bool is_write, uint8_t *data,
			       unsigned len);

struct bus_range {
	uint64_t base;
	uint64_t size;
	bus_handler_fn handler;
	void *opaque;
	const char *name;
};

#define BUS_MAX_RANGES 64

struct bus {
	const char *name;     /* "pio" or "mmio", for logs */
	pthread_mutex_t lock; /* guards nr and ranges */
	unsigned nr;
	struct bus_range ranges[BUS_MAX_RANGES]; /* sorted by base */
	uint64_t unclaimed;			 /* accesses nobody claimed, for debugging */
};

void bus_init(struct bus *bus, const char *name);

/*
 * Interrupt routing as devices and the PCI root see it: lines (IOAPIC pins / GSIs) and MSIs,
 * raised from any thread. The VM implements it over the hypervisor.
 */
struct irq_sink {
	int (*set_line)(void *opaque, uint32_t gsi, bool level);
	int (*msi)(void *opaque, uint64_t addr, uint32_t data);
	/*
	 * The routed MSI path (hv.h: hv_msi_route*, hv_irqfd): all four set, or all NULL when the
	 * hypervisor has no irqfd (then msi above is the only path). route_alloc reserves a GSI,
	 * route_set points it at an MSI (addr, data), route_free releases it, and irqfd binds
	 * (@assign) or unbinds an eventfd to it: a write to that eventfd then raises the MSI from
	 * any thread. Errors are -errno; a caller falls back to msi.
	 */
	int (*route_alloc)(void *opaque, uint32_t *ret_gsi);
	int (*route_set)(void *opaque, uint32_t gsi, uint64_t addr, uint32_t data);
	void (*route_free)(void *opaque, uint32_t gsi);
	int (*irqfd)(void *opaque, int fd, uint32_t gsi, bool assign);
	void *opaque;
};

/*
 * The VMM loop as devices and the virtio transport see it (the loop itself is core's), for
 * file descriptors: backends, terminals, queue-notify eventfds. Callbacks run on the loop
 * thread; @events are EPOLLIN/EPOLLOUT/EPOLLHUP bits. Here rather than in devices/ so that the
 * virtio transport (a layer above devices) can use it too.
 */
typedef void (*dev_fd_cb)(void *opaque, uint32_t events);
struct dev_loop {
	int (*add_fd)(void *loop, int fd, uint32_t events, dev_fd_cb cb, void *opaque);
	int (*mod_fd)(void *loop, int fd, uint32_t events);
	int (*del_fd)(void *loop, int fd);
	void *loop;
	/*
	 * Optional, NULL when the hypervisor has no ioeventfd: a guest write of @len bytes at MMIO
	 * address @addr then signals eventfd @fd in the kernel, without a vCPU exit to the VMM
	 * (@assign), or no longer does. Any thread; returns 0 or -errno. The VM fills it in.
	 */
	int (*ioeventfd)(void *ctx, int fd, uint64_t addr, unsigned len, bool assign);
	void *ioeventfd_ctx;
};

/*
 * Registers [base, base+size) → handler. Returns -EINVAL for an empty or overflowing range,
 * -EEXIST when it overlaps a registered one, -ENOSPC when BUS_MAX_RANGES are in use.
 */
int bus_register(struct bus *bus, uint64_t base, uint64_t size, bus_handler_fn handler,
		 void *opaque, const char *name);
/* Removes the range starting at @base. -ENOENT when there is none. */
int bus_unregister(struct bus *bus, uint64_t base);

/* Dispatches one access. Returns true when a handler claimed it (otherwise reads give 0xff..). */
bool bus_access(struct bus *bus, uint64_t addr, bool is_write, uint8_t *data, unsigned len);

#endif
