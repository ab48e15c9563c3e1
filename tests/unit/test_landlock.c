/* SPDX-License-Identifier: Apache-2.0 */
/* security/landlock.c: the rights each ABI handles and each rule grants (what the kernel then
 * enforces is tested end to end, tests/e2e/test_landlock.py). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <linux/landlock.h>

#include "security/landlock.h"

#define FS(x)	 LANDLOCK_ACCESS_FS_##x
#define REFER	 (1ULL << 13)
#define TRUNCATE (1ULL << 14)
#define READ	 (FS(EXECUTE) | FS(READ_FILE) | FS(READ_DIR))
#define ABI1_ALL 0x1fffULL /* EXECUTE .. MAKE_SYM */

static void test_handled_by_abi(void **state)
{
	(void)state;
	assert_int_equal(landlock_handled(1), ABI1_ALL);
	assert_int_equal(landlock_handled(2), ABI1_ALL | REFER);
	assert_int_equal(landlock_handled(3), ABI1_ALL | REFER | TRUNCATE);
	/* Newer kernels: still ABI 3's set (ioctl on devices stays seccomp's business). */
	assert_int_equal(landlock_handled(7), landlock_handled(3));
}

static void test_rule_access(void **state)
{
	(void)state;
	uint64_t write = (ABI1_ALL | REFER | TRUNCATE) & ~READ;

	assert_int_equal(landlock_rule_access("r", true, 3), READ);
	assert_int_equal(landlock_rule_access("w", true, 3), write);
	assert_int_equal(landlock_rule_access("rw", true, 3), READ | write);
	assert_int_equal(landlock_rule_access("wr", true, 3), READ | write);
	/* On a file only the file rights mean something. */
	assert_int_equal(landlock_rule_access("r", false, 3), FS(EXECUTE) | FS(READ_FILE));
	assert_int_equal(landlock_rule_access("w", false, 3), FS(WRITE_FILE) | TRUNCATE);
	/* Within what the kernel's ABI handles. */
	assert_int_equal(landlock_rule_access("w", false, 2), FS(WRITE_FILE));
	assert_int_equal(landlock_rule_access("w", true, 1), write & ~(REFER | TRUNCATE));
	/* Anything else grants nothing. */
	assert_int_equal(landlock_rule_access("", true, 3), 0);
	assert_int_equal(landlock_rule_access("x", true, 3), 0);
	assert_int_equal(landlock_rule_access("rwr", true, 3), 0);
	assert_int_equal(landlock_rule_access(NULL, true, 3), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handled_by_abi),
		cmocka_unit_test(test_rule_access),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
