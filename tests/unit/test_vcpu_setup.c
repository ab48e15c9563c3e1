/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for src/arch/x86/vcpu_setup.c against the fake backend: the boot processor's
 * registers, segments, GDT and page tables for PVH and bzImage entry; CPUID and MSRs on every
 * vCPU; application processors left in their reset state.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include "arch/x86/x86.h"
#include "hv/hv.h"
#include "hv/mock.h"
#include "util/util.h"

#define RAM_SIZE (64 * MiB)

struct fixture {
	struct hv *hv;
	struct hv_vcpu *vcpu[2];
	struct guest_mem gm;
	uint8_t *ram;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(hv_create(&f->hv), 0);
	assert_int_equal(hv_vcpu_create(f->hv, 0, &f->vcpu[0]), 0);
	assert_int_equal(hv_vcpu_create(f->hv, 1, &f->vcpu[1]), 0);
	f->ram = malloc(RAM_SIZE);
	assert_non_null(f->ram);
	memset(f->ram, 0xee, RAM_SIZE);
	guest_mem_init(&f->gm);
	assert_int_equal(guest_mem_add_region(&f->gm, 0, RAM_SIZE, f->ram), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	hv_vcpu_destroy(f->vcpu[0]);
	hv_vcpu_destroy(f->vcpu[1]);
	hv_destroy(f->hv);
	free(f->ram);
	free(f);
	return 0;
}

static uint64_t gdt_at(const struct fixture *f, unsigned i)
{
	uint64_t v;
	memcpy(&v, f->ram + X86_GDT_START + i * 8, 8);
	return v;
}

static uint64_t ram64(const struct fixture *f, uint64_t gpa)
{
	uint64_t v;
	memcpy(&v, f->ram + gpa, 8);
	return v;
}

static void check_flat(const struct hv_segment *s, uint16_t sel, uint8_t type, bool code64)
{
	assert_int_equal(s->selector, sel);
	assert_int_equal(s->base, 0);
	assert_int_equal(s->limit, 0xffffffff);
	assert_int_equal(s->type, type);
	assert_int_equal(s->present, 1);
	assert_int_equal(s->s, 1);
	assert_int_equal(s->dpl, 0);
	assert_int_equal(s->g, 1);
	assert_int_equal(s->l, code64 ? 1 : 0);
	assert_int_equal(s->db, code64 ? 0 : 1);
	assert_int_equal(s->unusable, 0);
}

static void check_common(struct fixture *f, unsigned index)
{
	struct hv_vcpu *v = f->vcpu[index];
	const struct hv_cpuid_entry *c;
	unsigned n;
	uint64_t val;

	c = hv_mock_vcpu_cpuid(v, &n);
	assert_true(n > 0);
	for (unsigned i = 0; i < n; i++) {
		if (c[i].function == 1)
			assert_int_equal(c[i].ebx >> 24, index);
		if (c[i].function == 0xb)
			assert_int_equal(c[i].edx, index);
	}
	assert_true(hv_mock_vcpu_msr(v, 0x1a0, &val));
	assert_int_equal(val, 1);
	assert_true(hv_mock_vcpu_msr(v, 0x2ff, &val));
	assert_int_equal(val, 0x806);
	assert_true(hv_mock_vcpu_msr(v, 0xc0000082, &val));
	assert_int_equal(val, 0);
	assert_true(hv_mock_vcpu_msr(v, 0x174, &val));
	assert_true(hv_mock_vcpu_msr(v, 0xc0000102, &val));
	assert_false(hv_mock_vcpu_msr(v, 0x10, &val)); /* never IA32_TSC */
	assert_true(hv_mock_vcpu_fpu_reset(v));
	assert_true(hv_mock_vcpu_lapic_setup(v));
}

static void test_pvh(void **state)
{
	struct fixture *f = *state;
	const struct x86_boot boot = { .kind = X86_KERNEL_PVH,
				       .entry = 0x1000600,
				       .boot_info = X86_PVH_INFO_START,
				       .kernel_end = 0x2000000 };
	const struct hv_regs *r = hv_mock_vcpu_regs(f->vcpu[0]);
	const struct hv_sregs *s = hv_mock_vcpu_sregs(f->vcpu[0]);

	assert_int_equal(x86_vcpu_setup(f->hv, f->vcpu[0], 0, 1, NULL, &f->gm, &boot), 0);
	check_common(f, 0);
	assert_int_equal(r->rip, 0x1000600);
	assert_int_equal(r->rbx, X86_PVH_INFO_START);
	assert_int_equal(r->rsi, 0);
	assert_int_equal(r->rflags, 2);
	assert_int_equal(r->rsp, X86_BOOT_STACK_TOP);

	check_flat(&s->cs, 0x10, 0xb, false);
	check_flat(&s->ds, 0x18, 0x3, false);
	check_flat(&s->es, 0x18, 0x3, false);
	check_flat(&s->ss, 0x18, 0x3, false);
	check_flat(&s->fs, 0x18, 0x3, false);
	check_flat(&s->gs, 0x18, 0x3, false);
	assert_int_equal(s->tr.selector, 0x20);
	assert_int_equal(s->tr.type, 0xb);
	assert_int_equal(s->tr.present, 1);
	assert_int_equal(s->tr.s, 0);
	assert_int_equal(s->tr.limit, 0x67);
	assert_int_equal(s->cr0, 0x11);
	assert_int_equal(s->cr4, 0);
	assert_int_equal(s->cr3, 0);
	assert_int_equal(s->efer, 0);
	assert_int_equal(s->apic_base & 0xfffff000, 0xfee00000); /* kept from the backend */
	assert_int_equal(s->gdt.base, X86_GDT_START);
	assert_int_equal(s->gdt.limit, 6 * 8 - 1);

	assert_int_equal(gdt_at(f, 0), 0);
	assert_int_equal(gdt_at(f, 1), 0);
	assert_int_equal(gdt_at(f, 2), 0x00cf9b000000ffffULL);
	assert_int_equal(gdt_at(f, 3), 0x00cf93000000ffffULL);
	assert_int_equal(gdt_at(f, 4), 0x00008b0000000067ULL);
	assert_int_equal(gdt_at(f, 5), 0);

	/* No page tables for a 32-bit entry. */
	assert_int_equal(ram64(f, X86_PML4_START), 0xeeeeeeeeeeeeeeeeULL);
}

/* Walks the identity map the way the MMU would, with 2 MiB pages. */
static uint64_t translate(const struct fixture *f, uint64_t cr3, uint64_t va)
{
	uint64_t e = ram64(f, cr3 + ((va >> 39) & 511) * 8);
	assert_int_equal(e & 3, 3);
	e = ram64(f, (e & ~0xfffULL) + ((va >> 30) & 511) * 8);
	assert_int_equal(e & 3, 3);
	assert_int_equal(e & 0x80, 0);
	e = ram64(f, (e & ~0xfffULL) + ((va >> 21) & 511) * 8);
	assert_int_equal(e & 0x83, 0x83);
	return (e & ~0x1fffffULL) + (va & 0x1fffff);
}

static void test_bzimage(void **state)
{
	struct fixture *f = *state;
	const struct x86_boot boot = { .kind = X86_KERNEL_BZIMAGE,
				       .entry = 0x1000200,
				       .boot_info = X86_ZERO_PAGE_START,
				       .kernel_end = 0x2000000 };
	const struct hv_regs *r = hv_mock_vcpu_regs(f->vcpu[0]);
	const struct hv_sregs *s = hv_mock_vcpu_sregs(f->vcpu[0]);

	assert_int_equal(x86_vcpu_setup(f->hv, f->vcpu[0], 0, 2, NULL, &f->gm, &boot), 0);
	check_common(f, 0);
	assert_int_equal(r->rip, 0x1000200);
	assert_int_equal(r->rsi, X86_ZERO_PAGE_START);
	assert_int_equal(r->rbx, 0);
	assert_int_equal(r->rflags, 2);
	assert_int_equal(r->rsp, X86_BOOT_STACK_TOP);

	check_flat(&s->cs, 0x10, 0xb, true);
	check_flat(&s->ds, 0x18, 0x3, false);
	check_flat(&s->ss, 0x18, 0x3, false);
	assert_int_equal(s->tr.selector, 0x20);
	assert_int_equal(s->tr.type, 0xb);
	assert_int_equal(s->cr0, 0x80000011);
	assert_int_equal(s->cr4, 0x20);
	assert_int_equal(s->efer, 0x500);
	assert_int_equal(s->cr3, X86_PML4_START);
	assert_int_equal(gdt_at(f, 2), 0x00af9b000000ffffULL);
	assert_int_equal(gdt_at(f, 3), 0x00cf93000000ffffULL);
	assert_int_equal(gdt_at(f, 4), 0x00008b0000000067ULL);
	assert_int_equal(gdt_at(f, 5), 0); /* upper half of the 16-byte TSS descriptor */

	assert_int_equal(ram64(f, X86_PML4_START), X86_PML4_START + 0x1000 + 3);
	assert_int_equal(ram64(f, X86_PML4_START + 8), 0);
	assert_int_equal(ram64(f, X86_PML4_START + 0x1000 + 4 * 8), 0); /* nothing past 4 GiB */
	const uint64_t probes[] = { 0,
				    X86_ZERO_PAGE_START,
				    X86_CMDLINE_START,
				    0x1000200,
				    RAM_SIZE - 1,
				    0xbffff000ULL,
				    0xfee00000ULL,
				    0xffffffffULL };
	for (unsigned i = 0; i < ARRAY_SIZE(probes); i++)
		assert_int_equal(translate(f, s->cr3, probes[i]), probes[i]);
	/* The tables stay clear of the zero page and the command line. */
	assert_int_equal(f->ram[X86_ZERO_PAGE_START], 0xee);
	assert_int_equal(f->ram[X86_CMDLINE_START], 0xee);
}

static void test_ap(void **state)
{
	struct fixture *f = *state;
	const struct x86_boot boot = { .kind = X86_KERNEL_BZIMAGE,
				       .entry = 0x1000200,
				       .boot_info = X86_ZERO_PAGE_START };
	struct hv_regs before = *hv_mock_vcpu_regs(f->vcpu[1]);
	struct hv_sregs sbefore = *hv_mock_vcpu_sregs(f->vcpu[1]);

	assert_int_equal(x86_vcpu_setup(f->hv, f->vcpu[1], 1, 2, NULL, &f->gm, &boot), 0);
	check_common(f, 1);
	assert_memory_equal(hv_mock_vcpu_regs(f->vcpu[1]), &before, sizeof(before));
	assert_memory_equal(hv_mock_vcpu_sregs(f->vcpu[1]), &sbefore, sizeof(sbefore));
	assert_int_equal(ram64(f, X86_GDT_START), 0xeeeeeeeeeeeeeeeeULL);
	assert_int_equal(ram64(f, X86_PML4_START), 0xeeeeeeeeeeeeeeeeULL);
}

static void test_no_low_ram(void **state)
{
	struct fixture *f = *state;
	struct guest_mem gm;
	const struct x86_boot boot = { .kind = X86_KERNEL_BZIMAGE,
				       .entry = 0x1000200,
				       .boot_info = X86_ZERO_PAGE_START };

	guest_mem_init(&gm);
	assert_int_equal(guest_mem_add_region(&gm, 4 * GiB, RAM_SIZE, f->ram), 0);
	assert_true(x86_vcpu_setup(f->hv, f->vcpu[0], 0, 1, NULL, &gm, &boot) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pvh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_low_ram, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
