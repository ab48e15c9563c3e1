/* SPDX-License-Identifier: Apache-2.0 */
/* Token buckets with explicit time: refill rate, burst, both-or-neither, over-consumption. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <cmocka.h>

#include "util/ratelimit.h"
#include "util/util.h"

#define MS 1000000ULL

static void limiter(struct rate_limiter *rl, uint64_t bw, uint64_t bw_burst, uint64_t ops,
		    uint64_t refill_ms)
{
	struct rate_limiter_config c = {
		.bandwidth = { .size = bw, .one_time_burst = bw_burst, .refill_time = refill_ms },
		.ops = { .size = ops, .refill_time = ops ? refill_ms : 0 },
	};
	assert_int_equal(rate_limiter_init(rl, &c), 0);
	/* Tests drive time themselves, from the init time. */
	rl->bw.last_ns = rl->ops.last_ns = 0;
}

static void test_unlimited(void **state)
{
	struct rate_limiter rl;
	assert_int_equal(rate_limiter_init(&rl, NULL), 0);
	assert_false(rate_limiter_enabled(&rl));
	assert_int_equal(rate_limiter_fd(&rl), -1);
	for (int i = 0; i < 1000; i++)
		assert_true(rate_limiter_consume(&rl, 1 << 30, 1000));
	struct rate_limiter_config zero = { .bandwidth = { .size = 100 } }; /* refill 0: off */
	assert_false(rate_limiter_config_enabled(&zero));
	rate_limiter_destroy(&rl);
}

static void test_refill_rate(void **state)
{
	struct rate_limiter rl;
	limiter(&rl, 1000, 0, 0, 100); /* 1000 bytes per 100 ms */
	assert_true(rate_limiter_consume_at(&rl, 1000, 1, 0));
	assert_false(rate_limiter_consume_at(&rl, 1, 1, 0));
	assert_true(rate_limiter_blocked(&rl));
	/* Blocked until the timer event, whatever the time. */
	assert_false(rate_limiter_consume_at(&rl, 1, 1, 50 * MS));
	rate_limiter_timer_event(&rl);
	/* 50 ms later: half the bucket is back. */
	assert_true(rate_limiter_consume_at(&rl, 500, 1, 50 * MS));
	assert_false(rate_limiter_consume_at(&rl, 1, 1, 50 * MS));
	rate_limiter_timer_event(&rl);
	/* Fractions of a token accumulate: 0.1 ms = 1 byte. */
	for (uint64_t t = 1; t <= 10; t++)
		assert_true(rate_limiter_consume_at(&rl, 1, 0, 50 * MS + t * 100000));
	/* A long idle time refills to the size, not beyond. */
	assert_true(rate_limiter_consume_at(&rl, 1000, 0, 10000 * MS));
	assert_false(rate_limiter_consume_at(&rl, 1, 0, 10000 * MS));
	rate_limiter_destroy(&rl);
}

static void test_burst_first(void **state)
{
	struct rate_limiter rl;
	limiter(&rl, 1000, 5000, 0, 1000);
	assert_true(rate_limiter_consume_at(&rl, 5000, 0, 0)); /* all from the burst */
	assert_true(rate_limiter_consume_at(&rl, 1000, 0, 0)); /* the budget */
	assert_false(rate_limiter_consume_at(&rl, 1, 0, 0));
	rate_limiter_destroy(&rl);
}

static void test_both_or_neither(void **state)
{
	struct rate_limiter rl;
	limiter(&rl, 1000, 0, 2, 100);
	assert_true(rate_limiter_consume_at(&rl, 100, 1, 0));
	assert_true(rate_limiter_consume_at(&rl, 100, 1, 0));
	/* ops empty: the bytes must not be taken either. */
	assert_false(rate_limiter_consume_at(&rl, 100, 1, 0));
	rate_limiter_timer_event(&rl);
	assert_int_equal(rl.bw.budget, 800);
	rate_limiter_destroy(&rl);
}

static void test_over_consumption(void **state)
{
	struct rate_limiter rl;
	limiter(&rl, 1000, 0, 0, 100);
	/* Larger than the bucket: let through once, then blocked while the excess refills. */
	assert_true(rate_limiter_consume_at(&rl, 3000, 0, 0));
	assert_true(rate_limiter_blocked(&rl));
	assert_int_equal(rl.bw.budget, 0);
	struct pollfd p = { .fd = rate_limiter_fd(&rl), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 0), 0); /* 200 ms to go */
	rate_limiter_destroy(&rl);
}

static void test_timer_fires(void **state)
{
	struct rate_limiter rl;
	limiter(&rl, 1000, 0, 0, 10);
	uint64_t now = time_now_ns();
	rl.bw.last_ns = now;
	assert_true(rate_limiter_consume_at(&rl, 1000, 0, now));
	assert_false(rate_limiter_consume_at(&rl, 500, 0, now));
	struct pollfd p = { .fd = rate_limiter_fd(&rl), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 1000), 1); /* ~5 ms */
	rate_limiter_timer_event(&rl);
	assert_false(rate_limiter_blocked(&rl));
	assert_true(rate_limiter_consume(&rl, 500, 0));
	rate_limiter_refund(&rl, 10000, 0);
	assert_int_equal(rl.bw.budget, 1000);
	rate_limiter_destroy(&rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unlimited),	 cmocka_unit_test(test_refill_rate),
		cmocka_unit_test(test_burst_first),	 cmocka_unit_test(test_both_or_neither),
		cmocka_unit_test(test_over_consumption), cmocka_unit_test(test_timer_fires),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
