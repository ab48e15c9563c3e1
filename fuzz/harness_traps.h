/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/unit/virtio_harness.h is written for cmocka; a fuzz target includes this first, so a
 * failed check there is a crash that libFuzzer reports.
 */
#ifndef CUBICLE_FUZZ_HARNESS_TRAPS_H
#define CUBICLE_FUZZ_HARNESS_TRAPS_H

#define assert_true(x)		   ((x) ? (void)0 : __builtin_trap())
#define assert_non_null(x)	   assert_true((x) != NULL)
#define assert_int_equal(a, b)	   assert_true((a) == (b))
#define assert_int_not_equal(a, b) assert_true((a) != (b))
#define fail_msg(...)		   __builtin_trap()

#endif
