/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "mem/guest_mem.h"
#include "util/util.h"

#define PAGE 4096

/* Three regions: [0x1000, 0x3000) and [0x3000, 0x4000) adjacent, [0x10000, 0x11000) alone. */
static uint8_t ram_a[2 * PAGE], ram_b[PAGE], ram_c[PAGE];

static void setup_mem(struct guest_mem *gm)
{
	guest_mem_init(gm);
	/* Added out of order: the list must come out sorted. */
	assert_int_equal(guest_mem_add_region(gm, 0x10000, PAGE, ram_c), 0);
	assert_int_equal(guest_mem_add_region(gm, 0x1000, 2 * PAGE, ram_a), 0);
	assert_int_equal(guest_mem_add_region(gm, 0x3000, PAGE, ram_b), 0);
	for (size_t i = 0; i < sizeof(ram_a); i++)
		ram_a[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(ram_b); i++)
		ram_b[i] = (uint8_t)(0x80 + i);
	memset(ram_c, 0xcc, sizeof(ram_c));
}

static void test_add_region(void **state)
{
	struct guest_mem gm;
	static uint8_t extra[GUEST_MEM_MAX_REGIONS][16];

	(void)state;
	setup_mem(&gm);
	assert_int_equal(gm.nr_regions, 3);
	assert_int_equal(gm.regions[0].gpa, 0x1000);
	assert_int_equal(gm.regions[1].gpa, 0x3000);
	assert_int_equal(gm.regions[2].gpa, 0x10000);
	assert_ptr_equal(gm.regions[1].host, ram_b);
	assert_int_equal(guest_mem_total(&gm), 4 * PAGE);

	/* empty, overflowing, NULL host, overlapping */
	assert_int_equal(guest_mem_add_region(&gm, 0x20000, 0, extra[0]), -EINVAL);
	assert_int_equal(guest_mem_add_region(&gm, UINT64_MAX, 2, extra[0]), -EINVAL);
	assert_int_equal(guest_mem_add_region(&gm, 2, UINT64_MAX, extra[0]), -EINVAL);
	assert_int_equal(guest_mem_add_region(&gm, 0x20000, 16, NULL), -EINVAL);
	assert_int_equal(guest_mem_add_region(&gm, 0x0, 0x1001, extra[0]), -EINVAL);
	assert_int_equal(guest_mem_add_region(&gm, 0x3fff, 1, extra[0]), -EINVAL);
	assert_int_equal(guest_mem_add_region(&gm, 0x2000, 16, extra[0]), -EINVAL);
	assert_int_equal(guest_mem_add_region(&gm, 0x0, 0x100000, extra[0]), -EINVAL);
	assert_int_equal(guest_mem_add_region(&gm, 0x10fff, 16, extra[0]), -EINVAL);
	assert_int_equal(gm.nr_regions, 3);

	/* touching is fine */
	assert_int_equal(guest_mem_add_region(&gm, 0x0, 0x1000, extra[0]), 0);
	assert_int_equal(guest_mem_add_region(&gm, 0x4000, 16, extra[1]), 0);
	/* a region may end exactly at 2^64 */
	assert_int_equal(guest_mem_add_region(&gm, UINT64_MAX - 15, 16, extra[2]), 0);
	assert_int_equal(guest_mem_add_region(&gm, 0x20000, 16, extra[3]), 0);
	assert_int_equal(guest_mem_add_region(&gm, 0x30000, 16, extra[4]), 0);
	assert_int_equal(gm.nr_regions, GUEST_MEM_MAX_REGIONS);
	assert_int_equal(guest_mem_add_region(&gm, 0x40000, 16, extra[5]), -ENOSPC);
	/* an overlap is still reported as such when full */
	assert_int_equal(guest_mem_add_region(&gm, 0x1000, 16, extra[5]), -EINVAL);

	for (unsigned i = 1; i < gm.nr_regions; i++)
		assert_true(gm.regions[i - 1].gpa < gm.regions[i].gpa);
	assert_int_equal(guest_mem_total(&gm), 0x1000 + 4 * PAGE + 16 * 4);
}

static void test_translate_edges(void **state)
{
	struct guest_mem gm;

	(void)state;
	setup_mem(&gm);
	assert_ptr_equal(guest_mem_translate(&gm, 0x1000, 1), ram_a);
	assert_ptr_equal(guest_mem_translate(&gm, 0x1000, 2 * PAGE), ram_a);
	assert_ptr_equal(guest_mem_translate(&gm, 0x2fff, 1), ram_a + 2 * PAGE - 1);
	assert_null(guest_mem_translate(&gm, 0x2fff, 2)); /* crosses into the next region */
	assert_null(guest_mem_translate(&gm, 0x1000, 2 * PAGE + 1));
	assert_ptr_equal(guest_mem_translate(&gm, 0x3000, PAGE), ram_b);
	assert_null(guest_mem_translate(&gm, 0x3fff, 2));
	assert_null(guest_mem_translate(&gm, 0x4000, 1));
	assert_null(guest_mem_translate(&gm, 0xfff, 1));
	assert_null(guest_mem_translate(&gm, 0xfff, 2));
	assert_null(guest_mem_translate(&gm, 0x0, 1));
	assert_ptr_equal(guest_mem_translate(&gm, 0x10800, 0x800), ram_c + 0x800);
	assert_null(guest_mem_translate(&gm, 0x10800, 0x801));
	assert_null(guest_mem_translate(&gm, 0x11000, 1));

	/* len 0: fine inside a region, NULL outside */
	assert_ptr_equal(guest_mem_translate(&gm, 0x1800, 0), ram_a + 0x800);
	assert_null(guest_mem_translate(&gm, 0x5000, 0));
	assert_null(guest_mem_translate(&gm, 0x11000, 0));

	/* lengths that would wrap */
	assert_null(guest_mem_translate(&gm, 0x1000, UINT64_MAX));
	assert_null(guest_mem_translate(&gm, 0x1001, UINT64_MAX));
	assert_null(guest_mem_translate(&gm, 0x2fff, UINT64_MAX - 0x2ffe));
	assert_null(guest_mem_translate(&gm, UINT64_MAX, 1));
	assert_null(guest_mem_translate(&gm, UINT64_MAX, UINT64_MAX));

	assert_true(guest_mem_range_ok(&gm, 0x3000, PAGE));
	assert_false(guest_mem_range_ok(&gm, 0x3000, PAGE + 1));
	assert_false(guest_mem_range_ok(&gm, 0x2000, 2 * PAGE)); /* two regions: not one */
}

static void test_top_of_address_space(void **state)
{
	struct guest_mem gm;
	static uint8_t top[16];
	uint8_t buf[32];
	struct iovec iov[4];
	unsigned n = 0;

	(void)state;
	guest_mem_init(&gm);
	assert_int_equal(guest_mem_add_region(&gm, UINT64_MAX - 15, 16, top), 0);
	assert_int_equal(guest_mem_add_region(&gm, 0, 16, top), 0);
	assert_ptr_equal(guest_mem_translate(&gm, UINT64_MAX - 15, 16), top);
	assert_ptr_equal(guest_mem_translate(&gm, UINT64_MAX, 1), top + 15);
	assert_null(guest_mem_translate(&gm, UINT64_MAX, 2));
	assert_null(guest_mem_translate(&gm, UINT64_MAX - 15, 17));
	/* [2^64-16, 2^64) + [0, 16) looks contiguous modulo 2^64; it is not. */
	assert_int_equal(guest_mem_read(&gm, UINT64_MAX - 15, buf, 32), -EFAULT);
	assert_int_equal(guest_mem_to_iov(&gm, UINT64_MAX - 15, 32, iov, 4, &n), -EFAULT);
	assert_int_equal(n, 0);
	assert_int_equal(guest_mem_read(&gm, UINT64_MAX - 15, buf, 16), 0);
	assert_int_equal(guest_mem_to_iov(&gm, UINT64_MAX - 7, 8, iov, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_ptr_equal(iov[0].iov_base, top + 8);
	assert_int_equal(iov[0].iov_len, 8);
}

static void test_read_write(void **state)
{
	struct guest_mem gm;
	uint8_t buf[PAGE + 64], want[PAGE + 64];

	(void)state;
	setup_mem(&gm);

	/* across the adjacent regions a|b */
	assert_int_equal(guest_mem_read(&gm, 0x2ff0, buf, 32), 0);
	for (int i = 0; i < 16; i++)
		assert_int_equal(buf[i], (uint8_t)(2 * PAGE - 16 + i));
	for (int i = 0; i < 16; i++)
		assert_int_equal(buf[16 + i], (uint8_t)(0x80 + i));

	memset(buf, 0x5e, sizeof(buf));
	assert_int_equal(guest_mem_write(&gm, 0x2ff8, buf, 16), 0);
	assert_int_equal(ram_a[2 * PAGE - 9], (uint8_t)(2 * PAGE - 9));
	assert_int_equal(ram_a[2 * PAGE - 8], 0x5e);
	assert_int_equal(ram_a[2 * PAGE - 1], 0x5e);
	assert_int_equal(ram_b[7], 0x5e);
	assert_int_equal(ram_b[8], 0x88);

	/* into the hole after b: nothing is written, not even the part that is RAM */
	memcpy(want, ram_b, PAGE);
	memset(buf, 0x11, sizeof(buf));
	assert_int_equal(guest_mem_write(&gm, 0x3ff0, buf, 32), -EFAULT);
	assert_memory_equal(ram_b, want, PAGE);
	assert_int_equal(guest_mem_read(&gm, 0x3ff0, buf, 32), -EFAULT);
	assert_int_equal(guest_mem_read(&gm, 0x4000, buf, 1), -EFAULT);
	assert_int_equal(guest_mem_read(&gm, 0xfff, buf, 2), -EFAULT);
	assert_int_equal(guest_mem_read(&gm, 0x1000, buf, 0), 0);
	assert_int_equal(guest_mem_read(&gm, UINT64_MAX - 1, buf, 4), -EFAULT);

	/* a whole region and more */
	assert_int_equal(guest_mem_read(&gm, 0x10000, buf, PAGE), 0);
	assert_int_equal(buf[0], 0xcc);
	assert_int_equal(buf[PAGE - 1], 0xcc);
	assert_int_equal(guest_mem_read(&gm, 0x10000, buf, PAGE + 1), -EFAULT);
}

static void test_iov(void **state)
{
	struct guest_mem gm;
	struct iovec iov[4];
	unsigned n;

	(void)state;
	setup_mem(&gm);

	n = 0;
	assert_int_equal(guest_mem_to_iov(&gm, 0x1100, 0x100, iov, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_ptr_equal(iov[0].iov_base, ram_a + 0x100);
	assert_int_equal(iov[0].iov_len, 0x100);

	/* split at the a|b boundary, appended after the existing entry */
	assert_int_equal(guest_mem_to_iov(&gm, 0x2f00, 0x200, iov, 4, &n), 0);
	assert_int_equal(n, 3);
	assert_ptr_equal(iov[1].iov_base, ram_a + 2 * PAGE - 0x100);
	assert_int_equal(iov[1].iov_len, 0x100);
	assert_ptr_equal(iov[2].iov_base, ram_b);
	assert_int_equal(iov[2].iov_len, 0x100);

	/* needs 2 entries, 1 left: -ENOSPC, count unchanged */
	assert_int_equal(guest_mem_to_iov(&gm, 0x2f00, 0x200, iov, 4, &n), -ENOSPC);
	assert_int_equal(n, 3);
	/* exactly fits */
	assert_int_equal(guest_mem_to_iov(&gm, 0x3000, 0x10, iov, 4, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(guest_mem_to_iov(&gm, 0x3000, 0x10, iov, 4, &n), -ENOSPC);
	assert_int_equal(n, 4);

	/* -EFAULT beats -ENOSPC: the range is checked first */
	n = 0;
	assert_int_equal(guest_mem_to_iov(&gm, 0x3f00, 0x200, iov, 4, &n), -EFAULT);
	assert_int_equal(n, 0);
	assert_int_equal(guest_mem_to_iov(&gm, 0x3f00, 0x200, iov, 0, &n), -EFAULT);
	assert_int_equal(guest_mem_to_iov(&gm, 0x1000, UINT64_MAX, iov, 4, &n), -EFAULT);
	assert_int_equal(n, 0);

	/* len 0 appends nothing */
	assert_int_equal(guest_mem_to_iov(&gm, 0x1000, 0, iov, 4, &n), 0);
	assert_int_equal(n, 0);

	/* the whole of a and b */
	assert_int_equal(guest_mem_to_iov(&gm, 0x1000, 3 * PAGE, iov, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(iov[0].iov_len, 2 * PAGE);
	assert_int_equal(iov[1].iov_len, PAGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_region),
		cmocka_unit_test(test_translate_edges),
		cmocka_unit_test(test_top_of_address_space),
		cmocka_unit_test(test_read_write),
		cmocka_unit_test(test_iov),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
