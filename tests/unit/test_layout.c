/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/arch/x86/layout.c: RAM split around the 32-bit hole and the e820 map. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "arch/x86/x86.h"
#include "util/util.h"

static void test_split_256m(void **state)
{
	struct x86_ram_range r[2];

	(void)state;
	assert_int_equal(x86_layout_ram(256 * MiB, r), 1);
	assert_int_equal(r[0].gpa, 0);
	assert_int_equal(r[0].size, 256 * MiB);
}

static void test_split_3g_exact(void **state)
{
	struct x86_ram_range r[2];

	(void)state;
	assert_int_equal(x86_layout_ram(3 * GiB, r), 1);
	assert_int_equal(r[0].gpa, 0);
	assert_int_equal(r[0].size, X86_MEM_32BIT_HOLE_START);
}

static void test_split_3g_plus_page(void **state)
{
	struct x86_ram_range r[2];

	(void)state;
	assert_int_equal(x86_layout_ram(3 * GiB + 4 * KiB, r), 2);
	assert_int_equal(r[0].gpa, 0);
	assert_int_equal(r[0].size, 3 * GiB);
	assert_int_equal(r[1].gpa, 4 * GiB);
	assert_int_equal(r[1].size, 4 * KiB);
}

static void test_split_8g(void **state)
{
	struct x86_ram_range r[2];

	(void)state;
	assert_int_equal(x86_layout_ram(8 * GiB, r), 2);
	assert_int_equal(r[0].size, 3 * GiB);
	assert_int_equal(r[1].gpa, 4 * GiB);
	assert_int_equal(r[1].size, 5 * GiB);
	assert_int_equal(r[0].size + r[1].size, 8 * GiB);
}

static void check_sorted_disjoint(const struct x86_e820_entry *e, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		assert_true(e[i].size > 0);
		if (i > 0)
			assert_true(e[i - 1].addr + e[i - 1].size <= e[i].addr);
	}
}

static void test_e820_small(void **state)
{
	struct x86_ram_range r[2];
	struct x86_e820_entry e[X86_E820_MAX];
	unsigned n;

	(void)state;
	n = x86_e820_build(r, x86_layout_ram(256 * MiB, r), e);
	assert_int_equal(n, 4);
	check_sorted_disjoint(e, n);
	assert_int_equal(e[0].addr, 0);
	assert_int_equal(e[0].size, X86_EBDA_START);
	assert_int_equal(e[0].type, X86_E820_RAM);
	assert_int_equal(e[1].addr, X86_EBDA_START);
	assert_int_equal(e[1].size, X86_HIGH_MEM_START - X86_EBDA_START);
	assert_int_equal(e[1].type, X86_E820_RESERVED);
	assert_int_equal(e[2].addr, X86_HIGH_MEM_START);
	assert_int_equal(e[2].size, 256 * MiB - X86_HIGH_MEM_START);
	assert_int_equal(e[2].type, X86_E820_RAM);
	assert_int_equal(e[3].addr, X86_PCI_MMCONFIG_START);
	assert_int_equal(e[3].size, X86_PCI_MMCONFIG_SIZE);
	assert_int_equal(e[3].type, X86_E820_RESERVED);
}

/* The ACPI tables and the rest of the BIOS area below 1 MiB are never RAM. */
static void test_e820_acpi_reserved(void **state)
{
	struct x86_ram_range r[2];
	struct x86_e820_entry e[X86_E820_MAX];
	unsigned n;

	(void)state;
	n = x86_e820_build(r, x86_layout_ram(512 * MiB, r), e);
	for (unsigned i = 0; i < n; i++) {
		if (e[i].type != X86_E820_RAM)
			continue;
		assert_true(e[i].addr + e[i].size <= X86_ACPI_START ||
			    e[i].addr >= X86_ACPI_START + X86_ACPI_SIZE);
	}
}

static void test_e820_3g(void **state)
{
	struct x86_ram_range r[2];
	struct x86_e820_entry e[X86_E820_MAX];
	unsigned n;

	(void)state;
	n = x86_e820_build(r, x86_layout_ram(3 * GiB, r), e);
	assert_int_equal(n, 4);
	check_sorted_disjoint(e, n);
	assert_int_equal(e[2].addr + e[2].size, X86_MEM_32BIT_HOLE_START);
}

static void test_e820_high(void **state)
{
	struct x86_ram_range r[2];
	struct x86_e820_entry e[X86_E820_MAX];
	unsigned n;
	uint64_t ram = 0;

	(void)state;
	n = x86_e820_build(r, x86_layout_ram(8 * GiB, r), e);
	assert_int_equal(n, 5);
	check_sorted_disjoint(e, n);
	assert_int_equal(e[3].addr, X86_PCI_MMCONFIG_START);
	assert_int_equal(e[3].type, X86_E820_RESERVED);
	assert_int_equal(e[4].addr, 4 * GiB);
	assert_int_equal(e[4].size, 5 * GiB);
	assert_int_equal(e[4].type, X86_E820_RAM);
	for (unsigned i = 0; i < n; i++)
		if (e[i].type == X86_E820_RAM)
			ram += e[i].size;
	/* Everything but the EBDA..1 MiB window is RAM. */
	assert_int_equal(ram, 8 * GiB - (X86_HIGH_MEM_START - X86_EBDA_START));

	n = x86_e820_build(r, x86_layout_ram(3 * GiB + 4 * KiB, r), e);
	assert_int_equal(n, 5);
	check_sorted_disjoint(e, n);
	assert_int_equal(e[4].addr, 4 * GiB);
	assert_int_equal(e[4].size, 4 * KiB);
}

static void test_pci_windows(void **state)
{
	static const struct {
		uint64_t mem, mem64_base;
	} cases[] = {
		{ 256 * MiB, 4 * GiB },
		{ 3 * GiB, 4 * GiB },
		{ 3 * GiB + 4 * KiB, 5 * GiB }, /* RAM ends a page past 4 GiB */
		{ 4 * GiB, 5 * GiB },
		{ 8 * GiB, 9 * GiB },
		{ 8 * GiB + 512 * MiB, 10 * GiB },
	};
	struct x86_pci_layout p;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		x86_layout_pci(cases[i].mem, &p);
		assert_int_equal(p.ecam_base, X86_PCI_MMCONFIG_START);
		assert_int_equal(p.bus_start, 0);
		assert_int_equal(p.bus_end, 0);
		/* The 32-bit window ends where ECAM starts; neither overlaps RAM. */
		assert_int_equal(p.mem32_base, 0xc0000000);
		assert_int_equal(p.mem32_base + p.mem32_size, X86_PCI_MMCONFIG_START);
		assert_int_equal(p.mem64_base, cases[i].mem64_base);
		assert_int_equal(p.mem64_size, 64 * GiB);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_256m),
		cmocka_unit_test(test_pci_windows),
		cmocka_unit_test(test_split_3g_exact),
		cmocka_unit_test(test_split_3g_plus_page),
		cmocka_unit_test(test_split_8g),
		cmocka_unit_test(test_e820_small),
		cmocka_unit_test(test_e820_acpi_reserved),
		cmocka_unit_test(test_e820_3g),
		cmocka_unit_test(test_e820_high),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
