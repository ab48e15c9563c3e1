/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rate limiting for device I/O: two token buckets (bandwidth in bytes, operations), with
 * Firecracker's and Cloud Hypervisor's semantics, shared by virtio-blk and virtio-net.
 *
 * A bucket holds up to `size` tokens and refills from empty to full in `refill_time` ms, at an
 * even rate; it starts full. `one_time_burst` tokens are extra credit spent first and never
 * refilled. A bucket whose size or refill time is 0 is disabled (no limit).
 *
 * A request asks for its bytes and ops together: rate_limiter_consume() takes both or neither.
 * When it returns false the device stops taking requests from that queue and waits for the
 * limiter's timerfd (rate_limiter_fd) to become readable, calls rate_limiter_timer_event(), then
 * retries. A single request larger than a whole bucket is let through once, and the limiter
 * then stays blocked for as long as the bucket needs to pay the excess back (as Firecracker's
 * "over-consumption").
 *
 * Not thread-safe: one limiter belongs to one device and is used on one thread (the VMM loop).
 */
#ifndef CUBICLE_UTIL_RATELIMIT_H
#define CUBICLE_UTIL_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* As in Cloud Hypervisor's TokenBucket JSON: size (tokens), one_time_burst (tokens),
 * refill_time (ms). */
struct token_bucket_config {
	uint64_t size;
	uint64_t one_time_burst;
	uint64_t refill_time;
};

/* Cloud Hypervisor's RateLimiterConfig: {bandwidth, ops}. All zero = no limit. */
struct rate_limiter_config {
	struct token_bucket_config bandwidth;
	struct token_bucket_config ops;
};

struct token_bucket {
	uint64_t size;
	uint64_t burst;	    /* one-time burst left */
	uint64_t refill_ns; /* time to refill `size` tokens */
	uint64_t budget;
	uint64_t last_ns; /* time of the last refill */
};

struct rate_limiter {
	struct token_bucket bw, ops;
	bool bw_on, ops_on;
	bool blocked; /* the timer is armed: refuse until rate_limiter_timer_event() */
	int timer_fd; /* -1 when neither bucket is on */
};

static inline bool token_bucket_config_enabled(const struct token_bucket_config *c)
{
	return c->size != 0 && c->refill_time != 0;
}

/* True if either bucket of @cfg limits anything. @cfg may be NULL (no limit). */
bool rate_limiter_config_enabled(const struct rate_limiter_config *cfg);

/*
 * Sets @rl up from @cfg (NULL or all zero = unlimited, no fd). Creates a non-blocking timerfd
 * when a bucket is on. Returns 0 or -errno (timerfd_create) with @rl unusable.
 */
int rate_limiter_init(struct rate_limiter *rl, const struct rate_limiter_config *cfg);
/* Closes the timerfd. Safe on a limiter whose init failed or that was zeroed. */
void rate_limiter_destroy(struct rate_limiter *rl);

static inline bool rate_limiter_enabled(const struct rate_limiter *rl)
{
	return rl->bw_on || rl->ops_on;
}

/* The timerfd to watch (readable when the limiter may let requests through again), or -1. */
static inline int rate_limiter_fd(const struct rate_limiter *rl)
{
	return rl->timer_fd;
}

static inline bool rate_limiter_blocked(const struct rate_limiter *rl)
{
	return rl->blocked;
}

/*
 * Takes @bytes from the bandwidth bucket and @ops from the ops bucket, both or neither.
 * Returns true if the request may go now; false if it must wait (the timer is then armed for
 * when enough tokens will be there, and every later call returns false until the timer event).
 */
bool rate_limiter_consume(struct rate_limiter *rl, uint64_t bytes, uint64_t ops);
/* The same at an explicit CLOCK_MONOTONIC time (tests). */
bool rate_limiter_consume_at(struct rate_limiter *rl, uint64_t bytes, uint64_t ops,
			     uint64_t now_ns);
/* Gives back tokens taken for a request that was not done after all (capped at the size). */
void rate_limiter_refund(struct rate_limiter *rl, uint64_t bytes, uint64_t ops);

/* Call when the timerfd is readable: drains it and unblocks. */
void rate_limiter_timer_event(struct rate_limiter *rl);

#endif
