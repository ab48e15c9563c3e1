/* SPDX-License-Identifier: Apache-2.0 */
#include "util/ratelimit.h"

#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "util/util.h"

#define NS_PER_MS 1000000ULL

static void bucket_init(struct token_bucket *b, const struct token_bucket_config *c,
			uint64_t now_ns)
{
	b->size = c->size;
	b->burst = c->one_time_burst;
	b->refill_ns = c->refill_time * NS_PER_MS;
	b->budget = c->size;
	b->last_ns = now_ns;
}

/* tokens = elapsed * size / refill_ns, without overflow for any elapsed time. */
static void bucket_refill(struct token_bucket *b, uint64_t now_ns)
{
	if (now_ns <= b->last_ns)
		return;
	uint64_t elapsed = now_ns - b->last_ns;
	if (elapsed >= b->refill_ns) {
		b->budget = b->size;
		b->last_ns = now_ns;
		return;
	}
	unsigned __int128 tokens = (unsigned __int128)elapsed * b->size / b->refill_ns;
	if (tokens == 0)
		return; /* keep last_ns: the fraction accumulates */
	/* Advance the clock only by the time the whole tokens took, so no fraction is lost. */
	uint64_t used_ns =
		(uint64_t)(((unsigned __int128)tokens * b->refill_ns + b->size - 1) / b->size);
	b->last_ns += used_ns < elapsed ? used_ns : elapsed;
	b->budget =
		(uint64_t)tokens >= b->size - b->budget ? b->size : b->budget + (uint64_t)tokens;
}

/* Time until the bucket holds @want tokens (want ≤ size), after a refill at now. */
static uint64_t bucket_wait_ns(const struct token_bucket *b, uint64_t want)
{
	if (want <= b->budget)
		return 0;
	uint64_t missing = want - b->budget;
	return (uint64_t)(((unsigned __int128)missing * b->refill_ns + b->size - 1) / b->size);
}

/* What taking @n tokens does: 0 = fits; otherwise the wait in ns (n ≤ size), or UINT64_MAX for
 * an over-consumption (n > budget + burst and n > size). */
static uint64_t bucket_check(const struct token_bucket *b, uint64_t n)
{
	if (n <= b->burst || n - b->burst <= b->budget)
		return 0;
	if (n - b->burst > b->size)
		return UINT64_MAX;
	return bucket_wait_ns(b, n - b->burst);
}

/* Takes @n tokens (burst first); returns how long the excess over the budget takes to refill. */
static uint64_t bucket_take(struct token_bucket *b, uint64_t n)
{
	uint64_t from_burst = n < b->burst ? n : b->burst;
	b->burst -= from_burst;
	n -= from_burst;
	if (n <= b->budget) {
		b->budget -= n;
		return 0;
	}
	uint64_t excess = n - b->budget;
	b->budget = 0;
	return (uint64_t)(((unsigned __int128)excess * b->refill_ns + b->size - 1) / b->size);
}

bool rate_limiter_config_enabled(const struct rate_limiter_config *cfg)
{
	return cfg && (token_bucket_config_enabled(&cfg->bandwidth) ||
		       token_bucket_config_enabled(&cfg->ops));
}

int rate_limiter_init(struct rate_limiter *rl, const struct rate_limiter_config *cfg)
{
	memset(rl, 0, sizeof(*rl));
	rl->timer_fd = -1;
	if (!rate_limiter_config_enabled(cfg))
		return 0;
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	uint64_t now = time_now_ns();
	rl->bw_on = token_bucket_config_enabled(&cfg->bandwidth);
	rl->ops_on = token_bucket_config_enabled(&cfg->ops);
	if (rl->bw_on)
		bucket_init(&rl->bw, &cfg->bandwidth, now);
	if (rl->ops_on)
		bucket_init(&rl->ops, &cfg->ops, now);
	rl->timer_fd = fd;
	return 0;
}

void rate_limiter_destroy(struct rate_limiter *rl)
{
	if (rl->timer_fd >= 0)
		close(rl->timer_fd);
	rl->timer_fd = -1;
	rl->bw_on = rl->ops_on = false;
	rl->blocked = false;
}

static void limiter_block(struct rate_limiter *rl, uint64_t wait_ns)
{
	if (wait_ns == 0)
		return;
	struct itimerspec its = {
		.it_value = { .tv_sec = (time_t)(wait_ns / 1000000000ULL),
			      .tv_nsec = (long)(wait_ns % 1000000000ULL) },
	};
	/* A timerfd that cannot be armed would leave the device stuck: let requests through
	 * instead (no limit is better than a hang). It only fails for invalid arguments. */
	if (timerfd_settime(rl->timer_fd, 0, &its, NULL) == 0)
		rl->blocked = true;
}

bool rate_limiter_consume_at(struct rate_limiter *rl, uint64_t bytes, uint64_t ops, uint64_t now_ns)
{
	if (!rate_limiter_enabled(rl))
		return true;
	if (rl->blocked)
		return false;
	uint64_t wait_bw = 0, wait_ops = 0;
	if (rl->bw_on) {
		bucket_refill(&rl->bw, now_ns);
		wait_bw = bucket_check(&rl->bw, bytes);
	}
	if (rl->ops_on) {
		bucket_refill(&rl->ops, now_ns);
		wait_ops = bucket_check(&rl->ops, ops);
	}
	/* Either bucket short of tokens (but able to hold them): wait for the slower one. */
	uint64_t wait = 0;
	if (wait_bw != UINT64_MAX && wait_bw > wait)
		wait = wait_bw;
	if (wait_ops != UINT64_MAX && wait_ops > wait)
		wait = wait_ops;
	if (wait) {
		limiter_block(rl, wait);
		return !rl->blocked;
	}
	/* Fits, or is an over-consumption: take both, then block for any excess. */
	uint64_t excess = 0;
	if (rl->bw_on)
		excess = bucket_take(&rl->bw, bytes);
	if (rl->ops_on) {
		uint64_t e = bucket_take(&rl->ops, ops);
		excess = e > excess ? e : excess;
	}
	limiter_block(rl, excess);
	return true;
}

bool rate_limiter_consume(struct rate_limiter *rl, uint64_t bytes, uint64_t ops)
{
	if (!rate_limiter_enabled(rl))
		return true;
	return rate_limiter_consume_at(rl, bytes, ops, time_now_ns());
}

static void bucket_refund(struct token_bucket *b, uint64_t n)
{
	b->budget = n >= b->size - b->budget ? b->size : b->budget + n;
}

void rate_limiter_refund(struct rate_limiter *rl, uint64_t bytes, uint64_t ops)
{
	if (rl->bw_on)
		bucket_refund(&rl->bw, bytes);
	if (rl->ops_on)
		bucket_refund(&rl->ops, ops);
}

void rate_limiter_timer_event(struct rate_limiter *rl)
{
	uint64_t expirations;
	/* One-shot timer: a failed read (EAGAIN on a spurious wake-up) changes nothing. */
	if (rl->timer_fd >= 0 && read(rl->timer_fd, &expirations, sizeof(expirations)) < 0)
		expirations = 0;
	rl->blocked = false;
}
