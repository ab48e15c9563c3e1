/* Unit tests of the MP specification table (src/arch/x86/mptable.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "arch/x86/x86.h"

static uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += p[i];
	return s;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void check_table(unsigned n)
{
	uint8_t buf[X86_MPTABLE_MAX];
	size_t len;

	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(x86_mptable_build_buf(buf, sizeof(buf), X86_MPTABLE_START, n, &len), 0);
	assert_true(len <= x86_mptable_size(n));

	/* floating pointer */
	assert_memory_equal(buf, "_MP_", 4);
	assert_int_equal(get32(buf + 4), X86_MPTABLE_START + 16);
	assert_int_equal(buf[8], 1);
	assert_int_equal(buf[9], 4);
	assert_int_equal(sum8(buf, 16), 0);

	/* configuration table */
	const uint8_t *h = buf + 16;
	uint16_t hlen = get16(h + 4);
	assert_memory_equal(h, "PCMP", 4);
	assert_int_equal(16 + hlen, len);
	assert_int_equal(sum8(h, hlen), 0);
	assert_int_equal(get32(h + 36), 0xfee00000);

	unsigned count = get16(h + 34), cpus = 0, ioapics = 0, intsrc = 0, lint = 0;
	const uint8_t *e = h + 44;
	for (unsigned i = 0; i < count; i++) {
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], cpus);		   /* APIC id = index */
			assert_int_equal(e[3], cpus == 0 ? 3 : 1); /* enabled, BSP on 0 only */
			cpus++;
			e += 20;
			break;
		case 1:
			assert_memory_equal(e + 2, "ISA   ", 6);
			e += 8;
			break;
		case 2:
			assert_int_equal(get32(e + 4), 0xfec00000);
			ioapics++;
			e += 8;
			break;
		case 3:
			/* IRQ 0 goes to pin 2, every other ISA IRQ to its own pin, none to pin 2 */
			assert_int_equal(e[7], e[5] == 0 ? 2 : e[5]);
			assert_int_not_equal(e[5], 2);
			intsrc++;
			e += 8;
			break;
		case 4:
			lint++;
			e += 8;
			break;
		default:
			fail_msg("unknown entry type %u", e[0]);
		}
	}
	assert_ptr_equal(e, buf + len);
	assert_int_equal(cpus, n);
	assert_int_equal(ioapics, 1);
	assert_int_equal(intsrc, 15);
	assert_int_equal(lint, 2);
}

static void test_tables(void **state)
{
	check_table(1);
	check_table(2);
	check_table(64);
	check_table(CONFIG_MAX_VCPUS);
}

static void test_errors(void **state)
{
	uint8_t buf[X86_MPTABLE_MAX];
	size_t len = 12345;

	assert_int_equal(x86_mptable_build_buf(buf, sizeof(buf), X86_MPTABLE_START, 0, &len),
			 -EINVAL);
	assert_int_equal(x86_mptable_build_buf(buf, sizeof(buf), X86_MPTABLE_START,
					       CONFIG_MAX_VCPUS + 1, &len),
			 -EINVAL);
	assert_int_equal(
		x86_mptable_build_buf(buf, x86_mptable_size(4) - 1, X86_MPTABLE_START, 4, &len),
		-ENOSPC);
	assert_int_equal(len, 12345); /* untouched on failure */
	assert_true(x86_mptable_size(CONFIG_MAX_VCPUS) <= X86_MPTABLE_MAX);
	assert_true(X86_MPTABLE_START + X86_MPTABLE_MAX <= X86_ACPI_START);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
