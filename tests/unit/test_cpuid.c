/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for src/arch/x86/cpuid.c: topology (APIC ids, leaf 0xb/0x1f/4, AMD leaves) built
 * from synthetic "supported" tables, and the rule that no feature bit appears that the host did
 * not offer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include "arch/x86/x86.h"
#include "util/util.h"

#define SIG 1u /* HV_CPUID_SIGNIFICANT_INDEX */

/* Shaped like KVM_GET_SUPPORTED_CPUID on an Intel host (host's own topology in 0xb/0x1f/4). */
static const struct hv_cpuid_entry intel[] = {
	{ 0x0, 0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69 }, /* GenuineIntel */
	{ 0x1, 0, 0, 0x000906ea, 0x05100800, 0xf7fa3223, 0x0f8bfbff },
	{ 0x4, 0, SIG, 0x1c004121, 0x01c0003f, 0x3f, 0 },
	{ 0x4, 1, SIG, 0x1c004122, 0x01c0003f, 0x3f, 0 },
	{ 0x4, 2, SIG, 0x1c004143, 0x00c0003f, 0x3ff, 0 },
	{ 0x4, 3, SIG, 0x1c03c163, 0x02c0003f, 0x1fff, 6 },
	{ 0x4, 4, SIG, 0, 0, 0, 0 },
	{ 0x6, 0, 0, 0x4, 0, 0, 0 },
	{ 0x7, 0, SIG, 0, 0x029c6fbb, 0x40000000, 0xbc000400 },
	{ 0xb, 0, SIG, 1, 2, 0x100, 5 },
	{ 0xb, 1, SIG, 4, 12, 0x201, 5 },
	{ 0xb, 2, SIG, 0, 0, 2, 5 },
	{ 0xd, 0, SIG, 0x7, 0x340, 0x340, 0 },
	{ 0xd, 1, SIG, 0x1, 0, 0, 0 },
	{ 0xd, 2, SIG, 0x100, 0x240, 0, 0 },
	{ 0x1f, 0, SIG, 1, 2, 0x100, 5 },
	{ 0x1f, 1, SIG, 4, 12, 0x201, 5 },
	{ 0x1f, 2, SIG, 0, 0, 2, 5 },
	{ 0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d },
	{ 0x40000001, 0, 0, 0x01007efb, 0, 0, 0 },
	{ 0x80000000, 0, 0, 0x80000008, 0, 0, 0 },
	{ 0x80000001, 0, 0, 0, 0, 0x121, 0x2c100800 },
	{ 0x80000008, 0, 0, 0x3027, 0, 0, 0 },
};

/* Taken from this workplace's AMD host (kvm_pvm): note no HTT, and a 1-subleaf leaf 0xb. */
static const struct hv_cpuid_entry amd[] = {
	{ 0x0, 0, 0, 0x1c, 0x68747541, 0x444d4163, 0x69746e65 }, /* AuthenticAMD */
	{ 0x1, 0, 0, 0x00a10f11, 0x01020800, 0x81202000, 0x078bfbff },
	{ 0x4, 0, SIG, 0, 0, 0, 0 },
	{ 0x7, 0, SIG, 1, 0x01800002, 0x104, 0x20000000 },
	{ 0x7, 1, SIG, 0, 0, 0, 0 },
	{ 0xb, 0, SIG, 0, 0, 0, 1 },
	{ 0xd, 0, SIG, 0xe7, 0x980, 0x980, 0 },
	{ 0xd, 1, SIG, 0, 0, 0, 0 },
	{ 0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d },
	{ 0x40000001, 0, 0, 0x01007efb, 0, 0, 0 },
	{ 0x80000000, 0, 0, 0x80000021, 0x68747541, 0x444d4163, 0x69746e65 },
	{ 0x80000001, 0, 0, 0x00a10f11, 0x40000000, 0x00400393, 0x23d3fbff },
	{ 0x80000008, 0, 0, 0x3030, 0x50020005, 0x7001, 0 },
	{ 0x8000001d, 0, SIG, 0x121, 0x01c0003f, 0x3f, 0 },
	{ 0x8000001d, 3, SIG, 0x4163, 0x03c0003f, 0x7fff, 1 },
	{ 0x8000001d, 4, SIG, 0, 0, 0, 0 },
	{ 0x8000001e, 0, 0, 0, 0, 0, 0 },
};

struct out {
	struct hv_cpuid_entry e[64];
	int n;
};

static void build(const struct hv_cpuid_entry *sup, unsigned n_sup, unsigned index,
		  unsigned nr_vcpus, const struct cpu_topology *topo, struct out *o)
{
	o->n = x86_cpuid_build(sup, n_sup, index, nr_vcpus, topo, o->e, ARRAY_SIZE(o->e));
	assert_true(o->n > 0);
}

static const struct hv_cpuid_entry *find(const struct hv_cpuid_entry *e, unsigned n,
					 uint32_t function, uint32_t index)
{
	for (unsigned i = 0; i < n; i++)
		if (e[i].function == function && e[i].index == index)
			return &e[i];
	return NULL;
}

static const struct hv_cpuid_entry *get(const struct out *o, uint32_t function, uint32_t index)
{
	const struct hv_cpuid_entry *e = find(o->e, (unsigned)o->n, function, index);
	assert_non_null(e);
	return e;
}

static void test_apic_ids(void **state)
{
	struct out o;

	(void)state;
	for (unsigned i = 0; i < 4; i++) {
		build(intel, ARRAY_SIZE(intel), i, 4, NULL, &o);
		assert_int_equal(get(&o, 1, 0)->ebx >> 24, i);
		assert_int_equal(get(&o, 0xb, 0)->edx, i);
		assert_int_equal(get(&o, 0xb, 1)->edx, i);
		assert_int_equal(get(&o, 0xb, 2)->edx, i);
		assert_int_equal(get(&o, 0x1f, 0)->edx, i);
		/* CLFLUSH size and brand index are the host's. */
		assert_int_equal(get(&o, 1, 0)->ebx & 0xffff, 0x0800);
	}
}

static void check_0b(const struct out *o, uint32_t smt_shift, uint32_t threads, uint32_t pkg_shift,
		     uint32_t per_pkg)
{
	const struct hv_cpuid_entry *e;

	e = get(o, 0xb, 0);
	assert_int_equal(e->eax, smt_shift);
	assert_int_equal(e->ebx, threads);
	assert_int_equal(e->ecx, 0x100);
	assert_int_equal(e->flags & SIG, SIG);
	e = get(o, 0xb, 1);
	assert_int_equal(e->eax, pkg_shift);
	assert_int_equal(e->ebx, per_pkg);
	assert_int_equal(e->ecx, 0x201);
	e = get(o, 0xb, 2);
	assert_int_equal(e->eax, 0);
	assert_int_equal(e->ebx, 0);
	assert_int_equal(e->ecx, 2); /* level type 0: the end */
	assert_null(find(o->e, (unsigned)o->n, 0xb, 3));
}

static void test_leaf_0b(void **state)
{
	struct out o;
	struct cpu_topology zero = { 0 };
	struct cpu_topology t22 = {
		.threads_per_core = 2, .cores_per_die = 2, .dies_per_package = 1, .packages = 1
	};

	(void)state;
	build(intel, ARRAY_SIZE(intel), 0, 1, NULL, &o);
	check_0b(&o, 0, 1, 0, 1);
	assert_int_equal((get(&o, 1, 0)->ebx >> 16) & 0xff, 1);
	assert_int_equal(get(&o, 1, 0)->edx & (1u << 28), 0); /* HTT off with one CPU */

	build(intel, ARRAY_SIZE(intel), 1, 2, &zero, &o);
	check_0b(&o, 0, 1, 1, 2);
	assert_int_equal((get(&o, 1, 0)->ebx >> 16) & 0xff, 2);
	assert_int_equal(get(&o, 1, 0)->edx & (1u << 28), 1u << 28);

	build(intel, ARRAY_SIZE(intel), 3, 4, NULL, &o);
	check_0b(&o, 0, 1, 2, 4);

	build(intel, ARRAY_SIZE(intel), 3, 4, &t22, &o);
	check_0b(&o, 1, 2, 2, 4);
	assert_int_equal((get(&o, 1, 0)->ebx >> 16) & 0xff, 4);

	/* 3 vCPUs: 2 APIC id bits, 3 logical processors. */
	build(intel, ARRAY_SIZE(intel), 2, 3, NULL, &o);
	check_0b(&o, 0, 1, 2, 3);
	assert_int_equal((get(&o, 1, 0)->ebx >> 16) & 0xff, 4);

	/* The AMD host's lone subleaf is completed too. */
	build(amd, ARRAY_SIZE(amd), 1, 2, NULL, &o);
	check_0b(&o, 0, 1, 1, 2);
}

static void test_leaf_1f_dies(void **state)
{
	struct out o;
	struct cpu_topology t = {
		.threads_per_core = 2, .cores_per_die = 2, .dies_per_package = 2, .packages = 1
	};
	const struct hv_cpuid_entry *e;

	(void)state;
	build(intel, ARRAY_SIZE(intel), 5, 8, &t, &o);
	e = get(&o, 0x1f, 0);
	assert_int_equal(e->eax, 1);
	assert_int_equal(e->ebx, 2);
	assert_int_equal(e->ecx, 0x100);
	e = get(&o, 0x1f, 1);
	assert_int_equal(e->eax, 2);
	assert_int_equal(e->ebx, 4);
	assert_int_equal(e->ecx, 0x201);
	e = get(&o, 0x1f, 2);
	assert_int_equal(e->eax, 3);
	assert_int_equal(e->ebx, 8);
	assert_int_equal(e->ecx, 0x502);
	e = get(&o, 0x1f, 3);
	assert_int_equal(e->ecx, 3);
	assert_int_equal(e->edx, 5);
	/* 0xb has no die level: the core level covers the package. */
	check_0b(&o, 1, 2, 3, 8);

	/* Without 0x1f in the host's list, none is made up. */
	build(amd, ARRAY_SIZE(amd), 0, 8, &t, &o);
	assert_null(find(o.e, (unsigned)o.n, 0x1f, 0));
}

static void test_leaf_4(void **state)
{
	struct out o;
	struct cpu_topology t22 = {
		.threads_per_core = 2, .cores_per_die = 2, .dies_per_package = 1, .packages = 1
	};

	(void)state;
	build(intel, ARRAY_SIZE(intel), 0, 4, &t22, &o);
	/* L1d: shared by the 2 threads of a core; 2 cores per package. */
	assert_int_equal((get(&o, 4, 0)->eax >> 14) & 0xfff, 1);
	assert_int_equal(get(&o, 4, 0)->eax >> 26, 1);
	assert_int_equal(get(&o, 4, 0)->eax & 0x3fff, 0x121);
	/* L3: shared by the package. */
	assert_int_equal((get(&o, 4, 3)->eax >> 14) & 0xfff, 3);
	assert_int_equal(get(&o, 4, 3)->edx, 6);
	/* The null subleaf stays null. */
	assert_int_equal(get(&o, 4, 4)->eax, 0);

	build(intel, ARRAY_SIZE(intel), 0, 1, NULL, &o);
	assert_int_equal((get(&o, 4, 3)->eax >> 14) & 0xfff, 0);
	assert_int_equal(get(&o, 4, 3)->eax >> 26, 0);
}

static void test_amd_leaves(void **state)
{
	struct out o;
	struct cpu_topology t22 = {
		.threads_per_core = 2, .cores_per_die = 2, .dies_per_package = 1, .packages = 1
	};
	const struct hv_cpuid_entry *e;

	(void)state;
	build(amd, ARRAY_SIZE(amd), 3, 4, NULL, &o);
	e = get(&o, 0x8000001e, 0);
	assert_int_equal(e->eax, 3);
	assert_int_equal(e->ebx & 0xff, 3);	   /* core id */
	assert_int_equal((e->ebx >> 8) & 0xff, 0); /* 1 thread per core */
	e = get(&o, 0x80000008, 0);
	assert_int_equal(e->ecx & 0xff, 3);
	assert_int_equal((e->ecx >> 12) & 0xf, 2);
	assert_int_equal(e->eax, 0x3030);
	assert_int_equal(e->ebx, 0x50020005);

	build(amd, ARRAY_SIZE(amd), 3, 4, &t22, &o);
	e = get(&o, 0x8000001e, 0);
	assert_int_equal(e->eax, 3);
	assert_int_equal(e->ebx & 0xff, 1);
	assert_int_equal((e->ebx >> 8) & 0xff, 1);
	assert_int_equal(e->ecx & 0xff, 0);
	assert_int_equal((get(&o, 0x8000001d, 0)->eax >> 14) & 0xfff, 1);
	assert_int_equal((get(&o, 0x8000001d, 3)->eax >> 14) & 0xfff, 3);
	assert_int_equal(get(&o, 0x8000001d, 4)->eax, 0);

	/* Intel's 0x80000008 ECX is reserved: left alone. */
	build(intel, ARRAY_SIZE(intel), 3, 4, NULL, &o);
	assert_int_equal(get(&o, 0x80000008, 0)->ecx, 0);
}

/* (out & ~in) == 0 for every register of the feature leaves. */
static void check_no_new_bits(const struct hv_cpuid_entry *sup, unsigned n_sup, const struct out *o,
			      unsigned nr_vcpus)
{
	static const uint32_t leaves[] = { 1, 7, 0xd, 0x80000001 };

	for (unsigned l = 0; l < ARRAY_SIZE(leaves); l++) {
		for (unsigned i = 0; i < n_sup; i++) {
			const struct hv_cpuid_entry *in = &sup[i];
			if (in->function != leaves[l])
				continue;
			const struct hv_cpuid_entry *out = get(o, in->function, in->index);
			uint32_t edx_allowed = 0;
			if (in->function == 1) {
				/* EBX is APIC id and counts; HTT describes our topology. */
				if (nr_vcpus > 1)
					edx_allowed = 1u << 28;
				assert_int_equal(out->eax & ~in->eax, 0);
				assert_int_equal(out->ecx & ~in->ecx, 0);
				assert_int_equal(out->edx & ~(in->edx | edx_allowed), 0);
				continue;
			}
			assert_int_equal(out->eax & ~in->eax, 0);
			assert_int_equal(out->ebx & ~in->ebx, 0);
			assert_int_equal(out->ecx & ~in->ecx, 0);
			assert_int_equal(out->edx & ~in->edx, 0);
		}
	}
}

static void test_no_new_features(void **state)
{
	struct out o;
	struct cpu_topology t22 = {
		.threads_per_core = 2, .cores_per_die = 2, .dies_per_package = 1, .packages = 1
	};

	(void)state;
	for (unsigned nr = 1; nr <= 4; nr++) {
		build(intel, ARRAY_SIZE(intel), nr - 1, nr, NULL, &o);
		check_no_new_bits(intel, ARRAY_SIZE(intel), &o, nr);
		build(amd, ARRAY_SIZE(amd), nr - 1, nr, NULL, &o);
		check_no_new_bits(amd, ARRAY_SIZE(amd), &o, nr);
	}
	build(amd, ARRAY_SIZE(amd), 2, 4, &t22, &o);
	check_no_new_bits(amd, ARRAY_SIZE(amd), &o, 4);

	/* Leaves outside the topology set are copied untouched. */
	build(amd, ARRAY_SIZE(amd), 1, 2, NULL, &o);
	for (unsigned i = 0; i < ARRAY_SIZE(amd); i++) {
		uint32_t f = amd[i].function;
		if (f == 1 || f == 4 || f == 0xb || f == 0x80000008 || f == 0x8000001d ||
		    f == 0x8000001e)
			continue;
		assert_memory_equal(get(&o, f, amd[i].index), &amd[i], sizeof(amd[i]));
	}
	/* Only the topology leaves may add entries (0xb's missing subleaves). */
	assert_int_equal(o.n, (int)ARRAY_SIZE(amd) + 2);
}

static void test_hypervisor_leaves(void **state)
{
	struct out o;
	struct hv_cpuid_entry sup[ARRAY_SIZE(amd)];
	const struct hv_cpuid_entry *e;

	(void)state;
	memcpy(sup, amd, sizeof(sup));
	sup[1].ecx &= ~(1u << 31);
	memset(&sup[8].ebx, 0, 12); /* a backend that left the signature out */
	build(sup, ARRAY_SIZE(sup), 0, 1, NULL, &o);
	assert_int_equal(get(&o, 1, 0)->ecx >> 31, 1);
	e = get(&o, 0x40000000, 0);
	assert_int_equal(e->eax, 0x40000001);
	assert_memory_equal(&e->ebx, "KVMKVMKVM\0\0\0", 12);
}

static void test_small_and_deterministic(void **state)
{
	struct hv_cpuid_entry a[64], b[64];
	int na, nb;

	(void)state;
	assert_int_equal(x86_cpuid_build(intel, ARRAY_SIZE(intel), 0, 2, NULL, a, 5), -ENOSPC);
	assert_int_equal(x86_cpuid_build(intel, ARRAY_SIZE(intel), 0, 2, NULL, a, 10), -ENOSPC);
	memset(a, 0x11, sizeof(a));
	memset(b, 0x22, sizeof(b));
	na = x86_cpuid_build(intel, ARRAY_SIZE(intel), 1, 2, NULL, a, 64);
	nb = x86_cpuid_build(intel, ARRAY_SIZE(intel), 1, 2, NULL, b, 64);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, (size_t)na * sizeof(a[0]));
	assert_int_equal(x86_cpuid_build(intel, ARRAY_SIZE(intel), 1, 2, NULL, a, (unsigned)na),
			 na);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apic_ids),
		cmocka_unit_test(test_leaf_0b),
		cmocka_unit_test(test_leaf_1f_dies),
		cmocka_unit_test(test_leaf_4),
		cmocka_unit_test(test_amd_leaves),
		cmocka_unit_test(test_no_new_features),
		cmocka_unit_test(test_hypervisor_leaves),
		cmocka_unit_test(test_small_and_deterministic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
