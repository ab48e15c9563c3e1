/* SPDX-License-Identifier: Apache-2.0 */
#include "bus/bus.h"
#include "util/util.h"

#include <errno.h>
#include <string.h>

void bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
	pthread_mutex_init(&bus->lock, NULL);
}

static uint64_t range_last(const struct bus_range *r)
{
	return r->base + (r->size - 1);
}

static int bus_register_locked(struct bus *bus, uint64_t base, uint64_t size,
			       bus_handler_fn handler, void *opaque, const char *name)
{
	unsigned i;

	for (i = 0; i < bus->nr; i++) {
		const struct bus_range *r = &bus->ranges[i];

		if (base <= range_last(r) && r->base <= base + (size - 1))
			return -EEXIST;
	}
	if (bus->nr == BUS_MAX_RANGES)
		return -ENOSPC;

	for (i = bus->nr; i > 0 && bus->ranges[i - 1].base > base; i--)
		bus->ranges[i] = bus->ranges[i - 1];
	bus->ranges[i] = (struct bus_range){
		.base = base, .size = size, .handler = handler, .opaque = opaque, .name = name
	};
	bus->nr++;
	return 0;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t size, bus_handler_fn handler,
		 void *opaque, const char *name)
{
	if (size == 0 || range_overflows(base, size) || !handler)
		return -EINVAL;
	pthread_mutex_lock(&bus->lock);
	int r = bus_register_locked(bus, base, size, handler, opaque, name);
	pthread_mutex_unlock(&bus->lock);
	return r;
}

int bus_unregister(struct bus *bus, uint64_t base)
{
	int r = -ENOENT;

	pthread_mutex_lock(&bus->lock);
	for (unsigned i = 0; i < bus->nr; i++) {
		if (bus->ranges[i].base != base)
			continue;
		memmove(&bus->ranges[i], &bus->ranges[i + 1],
			(bus->nr - i - 1) * sizeof(bus->ranges[0]));
		bus->nr--;
		r = 0;
		break;
	}
	pthread_mutex_unlock(&bus->lock);
	return r;
}

/* The range that holds the whole access [addr, addr+len), or NULL. */
static const struct bus_range *find_range(const struct bus *bus, uint64_t addr, unsigned len)
{
	unsigned lo = 0, hi = bus->nr;
	const struct bus_range *r;
	uint64_t off;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (bus->ranges[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	r = &bus->ranges[lo - 1];
	off = addr - r->base;
	if (off >= r->size || len > r->size - off)
		return NULL;
	return r;
}

bool bus_access(struct bus *bus, uint64_t addr, bool is_write, uint8_t *data, unsigned len)
{
	struct bus_range copy;
	const struct bus_range *r = NULL;

	if (len > 0 && len <= 8) {
		/* A copy: the handler runs unlocked while the table may change. */
		pthread_mutex_lock(&bus->lock);
		r = find_range(bus, addr, len);
		if (r) {
			copy = *r;
			r = &copy;
		}
		pthread_mutex_unlock(&bus->lock);
	}
	if (!r) {
		/* vCPU threads count here concurrently. */
		__atomic_fetch_add(&bus->unclaimed, 1, __ATOMIC_RELAXED);
		if (!is_write)
			memset(data, 0xff, len);
		return false;
	}
	r->handler(r->opaque, addr - r->base, is_write, data, len);
	return true;
}
