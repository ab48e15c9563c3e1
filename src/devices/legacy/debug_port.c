/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The 0x80 debug (POST code) port, as Cloud Hypervisor offers it for boot-time tracing: each
 * byte the guest writes is logged with the time since the VM was built (this device's realize,
 * which runs while the VM is created, before any vCPU), in Cloud Hypervisor's words:
 *   "[Debug I/O port: Kernel code 0x41] 0.123456 seconds"
 * with its code ranges: 0x00-0x1f Firmware, 0x20-0x3f Bootloader, 0x40-0x5f Kernel,
 * 0x60-0x7f Userspace, 0x80-0xff Custom. Logged at info level (visible with -v) and rate-limited,
 * since a guest can write the port in a loop; debug_port_get_info() keeps the first and last
 * code and their times for benchmarks whatever the log shows.
 *
 * Reads return the last code written (as on chipsets that latch it).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "bus/bus.h"
#include "devices/legacy/legacy.h"
#include "util/log.h"
#include "util/util.h"

#define DEBUG_PORT	0x80
#define DEBUG_LOG_BURST 100 /* messages per second before the rate limit */

struct debug_port {
	pthread_mutex_t lock;
	struct bus *pio;
	uint64_t start_ns;
	struct debug_port_info info;
	struct log_ratelimit rl;
};

static const char *debug_port_range(uint8_t code)
{
	if (code < 0x20)
		return "Firmware";
	if (code < 0x40)
		return "Bootloader";
	if (code < 0x60)
		return "Kernel";
	if (code < 0x80)
		return "Userspace";
	return "Custom";
}

static void debug_port_pio(void *opaque, uint64_t offset, bool is_write, uint8_t *data,
			   unsigned len)
{
	struct debug_port *d = opaque;
	uint64_t t;

	pthread_mutex_lock(&d->lock);
	if (!is_write) {
		for (unsigned i = 0; i < len; i++)
			data[i] = i == 0 ? d->info.last_code : 0xff;
		pthread_mutex_unlock(&d->lock);
		return;
	}
	t = time_now_ns() - d->start_ns;
	if (!d->info.writes) {
		d->info.first_code = data[0];
		d->info.first_ns = t;
	}
	d->info.writes++;
	d->info.last_code = data[0];
	d->info.last_ns = t;
	log_ratelimited(&d->rl, LOG_INFO, "[Debug I/O port: %s code 0x%x] %llu.%06llu seconds",
			debug_port_range(data[0]), data[0], (unsigned long long)(t / 1000000000ULL),
			(unsigned long long)(t % 1000000000ULL / 1000ULL));
	pthread_mutex_unlock(&d->lock);
}

void debug_port_get_info(void *dev, struct debug_port_info *ret)
{
	struct debug_port *d = dev;

	pthread_mutex_lock(&d->lock);
	*ret = d->info;
	pthread_mutex_unlock(&d->lock);
}

static int debug_port_realize(const struct dev_ctx *ctx, const struct json_t *state, void **ret)
{
	struct debug_port *d;
	int r;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	d->pio = ctx->pio;
	d->start_ns = time_now_ns();
	d->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(1000000000ULL, DEBUG_LOG_BURST);
	r = bus_register(ctx->pio, DEBUG_PORT, 1, debug_port_pio, d, "debug-port");
	if (r < 0) {
		pthread_mutex_destroy(&d->lock);
		free(d);
		return r;
	}
	*ret = d;
	return 0;
}

static void debug_port_unrealize(void *dev)
{
	struct debug_port *d = dev;

	if (!d)
		return;
	(void)bus_unregister(d->pio, DEBUG_PORT);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

const struct dev_ops debug_port_ops = {
	.name = "debug-port",
	.realize = debug_port_realize,
	.unrealize = debug_port_unrealize,
};
