/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "bus/bus.h"

/* Records the last access and answers reads with a pattern derived from the offset. */
struct fake_dev {
	unsigned calls;
	uint64_t offset;
	bool is_write;
	unsigned len;
	uint8_t written[8];
	uint8_t id;
};

static void fake_handler(void *opaque, uint64_t offset, bool is_write, uint8_t *data, unsigned len)
{
	struct fake_dev *d = opaque;

	d->calls++;
	d->offset = offset;
	d->is_write = is_write;
	d->len = len;
	if (is_write)
		memcpy(d->written, data, len);
	else
		for (unsigned i = 0; i < len; i++)
			data[i] = (uint8_t)(d->id + offset + i);
}

static void test_register(void **state)
{
	struct bus bus;
	struct fake_dev a = { 0 };

	(void)state;
	bus_init(&bus, "pio");
	assert_string_equal(bus.name, "pio");
	assert_int_equal(bus.nr, 0);

	assert_int_equal(bus_register(&bus, 0x3f8, 8, fake_handler, &a, "serial"), 0);
	assert_int_equal(bus_register(&bus, 0x70, 2, fake_handler, &a, "rtc"), 0);
	assert_int_equal(bus_register(&bus, 0x60, 1, fake_handler, &a, "i8042"), 0);
	assert_int_equal(bus_register(&bus, 0x64, 1, fake_handler, &a, "i8042-cmd"), 0);
	assert_int_equal(bus.nr, 4);
	assert_int_equal(bus.ranges[0].base, 0x60);
	assert_int_equal(bus.ranges[1].base, 0x64);
	assert_int_equal(bus.ranges[2].base, 0x70);
	assert_int_equal(bus.ranges[3].base, 0x3f8);
	assert_string_equal(bus.ranges[3].name, "serial");

	/* overlaps: inside, straddling either end, covering, same base */
	assert_int_equal(bus_register(&bus, 0x3fa, 1, fake_handler, &a, "x"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x3f0, 9, fake_handler, &a, "x"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x3ff, 4, fake_handler, &a, "x"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x0, 0x1000, fake_handler, &a, "x"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x70, 1, fake_handler, &a, "x"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x61, 4, fake_handler, &a, "x"), -EEXIST);
	/* bad ranges */
	assert_int_equal(bus_register(&bus, 0x500, 0, fake_handler, &a, "x"), -EINVAL);
	assert_int_equal(bus_register(&bus, UINT64_MAX, 2, fake_handler, &a, "x"), -EINVAL);
	assert_int_equal(bus_register(&bus, 0x500, 1, NULL, &a, "x"), -EINVAL);
	assert_int_equal(bus.nr, 4);

	/* adjacent is fine; so is a range that ends at 2^64 */
	assert_int_equal(bus_register(&bus, 0x3f0, 8, fake_handler, &a, "x"), 0);
	assert_int_equal(bus_register(&bus, 0x400, 8, fake_handler, &a, "x"), 0);
	assert_int_equal(bus_register(&bus, UINT64_MAX - 7, 8, fake_handler, &a, "top"), 0);
	assert_int_equal(bus.nr, 7);
	for (unsigned i = 1; i < bus.nr; i++)
		assert_true(bus.ranges[i - 1].base < bus.ranges[i].base);
}

static void test_full(void **state)
{
	struct bus bus;
	struct fake_dev a = { 0 };

	(void)state;
	bus_init(&bus, "mmio");
	for (unsigned i = 0; i < BUS_MAX_RANGES; i++)
		assert_int_equal(bus_register(&bus, 0x1000 * (BUS_MAX_RANGES - i), 0x10,
					      fake_handler, &a, "r"),
				 0);
	assert_int_equal(bus_register(&bus, 0x100000, 0x10, fake_handler, &a, "r"), -ENOSPC);
	assert_int_equal(bus_register(&bus, 0x1000, 0x10, fake_handler, &a, "r"), -EEXIST);
	for (unsigned i = 1; i < bus.nr; i++)
		assert_true(bus.ranges[i - 1].base < bus.ranges[i].base);
	/* every one is found by the binary search */
	for (unsigned i = 1; i <= BUS_MAX_RANGES; i++) {
		uint8_t d[4];

		assert_true(bus_access(&bus, 0x1000 * i + 0xc, false, d, 4));
		assert_int_equal(a.offset, 0xc);
		assert_false(bus_access(&bus, 0x1000 * i + 0x10, false, d, 1));
		assert_false(bus_access(&bus, 0x1000 * i - 1, false, d, 1));
	}
	assert_int_equal(a.calls, BUS_MAX_RANGES);
	assert_int_equal(bus.unclaimed, 2 * BUS_MAX_RANGES);
}

static void test_dispatch(void **state)
{
	struct bus bus;
	struct fake_dev a = { .id = 0x10 }, b = { .id = 0x40 };
	uint8_t data[8];

	(void)state;
	bus_init(&bus, "mmio");
	assert_int_equal(bus_register(&bus, 0xd0000000, 0x1000, fake_handler, &a, "a"), 0);
	assert_int_equal(bus_register(&bus, 0xd0001000, 0x100, fake_handler, &b, "b"), 0);

	memset(data, 0, sizeof(data));
	assert_true(bus_access(&bus, 0xd0000010, false, data, 4));
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.offset, 0x10);
	assert_false(a.is_write);
	assert_int_equal(a.len, 4);
	assert_int_equal(data[0], 0x20);
	assert_int_equal(data[3], 0x23);
	assert_int_equal(data[4], 0);

	memcpy(data, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	assert_true(bus_access(&bus, 0xd0001000, true, data, 8));
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.offset, 0);
	assert_true(b.is_write);
	assert_memory_equal(b.written, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	assert_int_equal(a.calls, 1);

	/* last bytes of a range */
	assert_true(bus_access(&bus, 0xd0000ff8, false, data, 8));
	assert_int_equal(a.offset, 0xff8);
	assert_true(bus_access(&bus, 0xd00010ff, false, data, 1));
	assert_int_equal(b.offset, 0xff);
	assert_int_equal(bus.unclaimed, 0);
}

static void test_straddle_and_unclaimed(void **state)
{
	struct bus bus;
	struct fake_dev a = { 0 }, b = { 0 }, top = { 0 };
	uint8_t data[8];

	(void)state;
	bus_init(&bus, "pio");
	assert_int_equal(bus_register(&bus, 0x100, 4, fake_handler, &a, "a"), 0);
	assert_int_equal(bus_register(&bus, 0x104, 4, fake_handler, &b, "b"), 0);
	assert_int_equal(bus_register(&bus, UINT64_MAX - 3, 4, fake_handler, &top, "top"), 0);

	/* straddles a|b: claimed by neither; reads give all ones */
	memset(data, 0, sizeof(data));
	assert_false(bus_access(&bus, 0x102, false, data, 4));
	assert_memory_equal(data, "\xff\xff\xff\xff\x00\x00\x00\x00", 8);
	assert_false(bus_access(&bus, 0x106, true, data, 4)); /* past b's end */
	assert_false(bus_access(&bus, 0xfe, false, data, 4)); /* before a */
	assert_int_equal(a.calls + b.calls, 0);
	assert_int_equal(bus.unclaimed, 3);

	/* nowhere near anything */
	memset(data, 0, sizeof(data));
	assert_false(bus_access(&bus, 0x8000, false, data, 2));
	assert_memory_equal(data, "\xff\xff\x00\x00", 4);
	assert_false(bus_access(&bus, 0x0, false, data, 8));
	assert_memory_equal(data, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
	/* writes to nowhere are dropped and leave the buffer alone */
	memset(data, 0x33, sizeof(data));
	assert_false(bus_access(&bus, 0x8000, true, data, 4));
	assert_int_equal(data[0], 0x33);

	/* at the top of the address space: no wrap-around to 0 */
	assert_true(bus_access(&bus, UINT64_MAX - 3, false, data, 4));
	assert_true(bus_access(&bus, UINT64_MAX, false, data, 1));
	assert_false(bus_access(&bus, UINT64_MAX, false, data, 2));
	assert_false(bus_access(&bus, UINT64_MAX - 1, false, data, 4));
	assert_int_equal(top.calls, 2);

	/* a zero-length access is never claimed */
	assert_false(bus_access(&bus, 0x100, false, data, 0));
	assert_int_equal(a.calls, 0);
	assert_int_equal(bus.unclaimed, 9);
}

static void test_unregister(void **state)
{
	struct bus bus;
	struct fake_dev a = { 0 }, b = { 0 }, c = { 0 };
	uint8_t data[4];

	(void)state;
	bus_init(&bus, "pio");
	assert_int_equal(bus_register(&bus, 0x10, 0x10, fake_handler, &a, "a"), 0);
	assert_int_equal(bus_register(&bus, 0x20, 0x10, fake_handler, &b, "b"), 0);
	assert_int_equal(bus_register(&bus, 0x30, 0x10, fake_handler, &c, "c"), 0);

	assert_int_equal(bus_unregister(&bus, 0x21), -ENOENT);
	assert_int_equal(bus_unregister(&bus, 0x20), 0);
	assert_int_equal(bus_unregister(&bus, 0x20), -ENOENT);
	assert_int_equal(bus.nr, 2);
	assert_int_equal(bus.ranges[0].base, 0x10);
	assert_int_equal(bus.ranges[1].base, 0x30);

	memset(data, 0, sizeof(data));
	assert_false(bus_access(&bus, 0x20, false, data, 1));
	assert_int_equal(data[0], 0xff);
	assert_true(bus_access(&bus, 0x30, false, data, 1));
	assert_true(bus_access(&bus, 0x1f, false, data, 1));
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 0);
	assert_int_equal(c.calls, 1);

	/* the freed space can be claimed again */
	assert_int_equal(bus_register(&bus, 0x20, 0x10, fake_handler, &c, "c2"), 0);
	assert_true(bus_access(&bus, 0x2f, false, data, 1));
	assert_int_equal(c.calls, 2);
	assert_int_equal(c.offset, 0xf);

	assert_int_equal(bus_unregister(&bus, 0x10), 0);
	assert_int_equal(bus_unregister(&bus, 0x30), 0);
	assert_int_equal(bus_unregister(&bus, 0x20), 0);
	assert_int_equal(bus.nr, 0);
	assert_false(bus_access(&bus, 0x20, false, data, 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register),   cmocka_unit_test(test_full),
		cmocka_unit_test(test_dispatch),   cmocka_unit_test(test_straddle_and_unclaimed),
		cmocka_unit_test(test_unregister),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
