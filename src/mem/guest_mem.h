/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest memory: the one door from a guest-physical address to a host pointer (DESIGN §4).
 * Every address, length and count a guest gives goes through guest_mem_translate() or the
 * copy helpers: bounds and overflow checked, never crossing a region's end.
 *
 * A guest_mem is built once (regions added before the guest runs) and is read-only afterwards,
 * so translations need no lock.
 */
#ifndef CUBICLE_MEM_GUEST_MEM_H
#define CUBICLE_MEM_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define GUEST_MEM_MAX_REGIONS 8

struct guest_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct guest_mem {
	unsigned nr_regions;
	struct guest_mem_region regions[GUEST_MEM_MAX_REGIONS]; /* sorted by gpa, disjoint */
};

void guest_mem_init(struct guest_mem *gm);

/*
 * Adds a region of @size bytes at @gpa backed by @host (owned by the caller, e.g. the hv
 * backend). Returns -EINVAL for an empty, overflowing or overlapping range, -ENOSPC when
 * GUEST_MEM_MAX_REGIONS are in use.
 */
int guest_mem_add_region(struct guest_mem *gm, uint64_t gpa, uint64_t size, void *host);

/*
 * Returns a host pointer to [gpa, gpa+len) when the whole range lies inside one region, NULL
 * otherwise (including len == 0 at an unmapped address and any overflow). len == 0 inside a
 * region is allowed.
 */
void *guest_mem_translate(const struct guest_mem *gm, uint64_t gpa, uint64_t len);

/* True when [gpa, gpa+len) lies wholly inside one region. */
bool guest_mem_range_ok(const struct guest_mem *gm, uint64_t gpa, uint64_t len);

/* Copies between guest and host; the range may span adjacent regions. -EFAULT when not RAM. */
int guest_mem_read(const struct guest_mem *gm, uint64_t gpa, void *buf, size_t len);
int guest_mem_write(const struct guest_mem *gm, uint64_t gpa, const void *buf, size_t len);

/*
 * Appends iovecs covering [gpa, gpa+len) to @iov (at most @max entries, starting at *@n),
 * splitting at region boundaries. Returns 0, -EFAULT when part of the range is not RAM, -ENOSPC
 * when @max entries do not suffice.
 */
int guest_mem_to_iov(const struct guest_mem *gm, uint64_t gpa, uint64_t len, struct iovec *iov,
		     unsigned max, unsigned *n);

/* Total bytes of RAM. */
uint64_t guest_mem_total(const struct guest_mem *gm);

#endif
