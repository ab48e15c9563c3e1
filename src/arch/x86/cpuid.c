/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-vCPU CPUID, built from the host's supported list only (KVM_GET_SUPPORTED_CPUID).
 *
 * The guest must never see a feature the hypervisor cannot deliver: the guest kit found that a
 * VMM offering more than the supported list (as QEMU does) makes the guest use instructions that
 * fault here. So feature registers are copied as they are; what this file changes is topology
 * (APIC ids, sibling counts, cache sharing) and the hypervisor signature, and two bits that
 * describe the platform rather than the CPU (see leaf 1 below).
 *
 * APIC id = x2APIC id = vCPU index, as the MADT says. Counts are laid out in power-of-two
 * fields (SMT, core, die), the way hardware packs APIC ids; with counts that are not powers of
 * two the ids are still dense (index), as in Cloud Hypervisor.
 */
#include <errno.h>
#include <string.h>

#include "arch/x86/x86.h"
#include "util/util.h"

#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_EDX_HTT	       (1u << 28)

#define TOPO_LEVEL_INVALID 0
#define TOPO_LEVEL_SMT	   1
#define TOPO_LEVEL_CORE	   2
#define TOPO_LEVEL_DIE	   5

#define KVM_CPUID_SIGNATURE 0x40000000u
#define HV_LEAF_LAST	    0x400000ffu

struct topo {
	unsigned threads, cores, dies;		   /* per core, per die, per package */
	unsigned smt_shift, core_shift, die_shift; /* APIC id bits for each level */
};

static unsigned order(unsigned n)
{
	unsigned s = 0;
	while (s < 31 && (1u << s) < n)
		s++;
	return s;
}

static void topo_get(const struct cpu_topology *t, unsigned nr_vcpus, struct topo *ret)
{
	if (!t ||
	    (!t->threads_per_core && !t->cores_per_die && !t->dies_per_package && !t->packages)) {
		/* No topology given: one core per vCPU, all in one package. */
		*ret = (struct topo){ .threads = 1, .cores = nr_vcpus ? nr_vcpus : 1, .dies = 1 };
	} else {
		*ret = (struct topo){ .threads = t->threads_per_core ? t->threads_per_core : 1,
				      .cores = t->cores_per_die ? t->cores_per_die : 1,
				      .dies = t->dies_per_package ? t->dies_per_package : 1 };
	}
	ret->smt_shift = order(ret->threads);
	ret->core_shift = order(ret->cores);
	ret->die_shift = order(ret->dies);
}

static unsigned pkg_shift(const struct topo *t)
{
	return t->smt_shift + t->core_shift + t->die_shift;
}

static unsigned per_package(const struct topo *t)
{
	return t->threads * t->cores * t->dies;
}

static uint32_t mask_bits(unsigned n)
{
	return n >= 32 ? UINT32_MAX : (1u << n) - 1;
}

static bool is_amd(const struct hv_cpuid_entry *s, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (s[i].function != 0)
			continue;
		char v[12];
		memcpy(v, &s[i].ebx, 4);
		memcpy(v + 4, &s[i].edx, 4);
		memcpy(v + 8, &s[i].ecx, 4);
		return memcmp(v, "AuthenticAMD", 12) == 0 || memcmp(v, "HygonGenuine", 12) == 0;
	}
	return false;
}

static void leaf1(struct hv_cpuid_entry *e, unsigned index, const struct topo *t)
{
	uint32_t addressable = MIN(1u << pkg_shift(t), 255u);

	e->ebx = (e->ebx & 0xffff) | (addressable << 16) | ((index & 0xffu) << 24);
	/*
	 * HTT says "EBX[23:16] is valid" (more than one logical processor per package): a
	 * statement about the topology we present, not a CPU feature; KVM never reports it since
	 * only the VMM knows the topology. Every VMM sets it the same way.
	 */
	if (per_package(t) > 1)
		e->edx |= CPUID_1_EDX_HTT;
	else
		e->edx &= ~CPUID_1_EDX_HTT;
	/*
	 * "Running under a hypervisor" is true by construction and is what makes Linux look at
	 * 0x40000000 (kvm-clock, PV EOI...). KVM reports it in its supported list; set it anyway
	 * so a backend that does not cannot hide the platform.
	 */
	e->ecx |= CPUID_1_ECX_HYPERVISOR;
}

/* Cache sharing, EAX[25:14], for leaf 4 (Intel) and 0x8000001d (AMD): same field. */
static uint32_t cache_sharing(uint32_t eax, const struct topo *t)
{
	unsigned level = (eax >> 5) & 7;
	unsigned bits = level <= 2 ? t->smt_shift : t->smt_shift + t->core_shift;
	return (eax & ~(0xfffu << 14)) | (MIN(mask_bits(bits), 0xfffu) << 14);
}

static void leaf4(struct hv_cpuid_entry *e, const struct topo *t)
{
	if ((e->eax & 0x1f) == 0) /* no cache at this subleaf */
		return;
	e->eax = cache_sharing(e->eax, t);
	/* EAX[31:26]: addressable core ids in the package - 1. */
	uint32_t cores = MIN(mask_bits(t->core_shift + t->die_shift), 0x3fu);
	e->eax = (e->eax & 0x03ffffff) | (cores << 26);
}

struct topo_level {
	uint32_t type, shift, count;
};

/* Leaf 0xb (or 0x1f with the die level): levels, then one invalid terminator. */
static int emit_ext_topology(uint32_t function, unsigned index, const struct topo *t,
			     struct hv_cpuid_entry *ret, unsigned max, unsigned *n)
{
	struct topo_level lv[4];
	unsigned nl = 0;

	lv[nl++] = (struct topo_level){ TOPO_LEVEL_SMT, t->smt_shift, t->threads };
	if (function == 0x1f && t->dies > 1) {
		lv[nl++] = (struct topo_level){ TOPO_LEVEL_CORE, t->smt_shift + t->core_shift,
						t->threads * t->cores };
		lv[nl++] = (struct topo_level){ TOPO_LEVEL_DIE, pkg_shift(t), per_package(t) };
	} else {
		lv[nl++] = (struct topo_level){ TOPO_LEVEL_CORE, pkg_shift(t), per_package(t) };
	}
	lv[nl++] = (struct topo_level){ TOPO_LEVEL_INVALID, 0, 0 };

	for (unsigned i = 0; i < nl; i++) {
		if (*n >= max)
			return -ENOSPC;
		ret[(*n)++] = (struct hv_cpuid_entry){
			.function = function,
			.index = i,
			.flags = HV_CPUID_SIGNIFICANT_INDEX,
			.eax = lv[i].shift & 0x1f,
			.ebx = lv[i].count & 0xffff,
			.ecx = (lv[i].type << 8) | i,
			.edx = index,
		};
	}
	return 0;
}

static void amd_leaves(struct hv_cpuid_entry *e, unsigned index, const struct topo *t)
{
	switch (e->function) {
	case 0x80000008:
		/* ECX[15:12] APIC id bits per package, ECX[7:0] logical processors - 1. */
		e->ecx = (e->ecx & ~0xf0ffu) | ((pkg_shift(t) & 0xf) << 12) |
			 ((per_package(t) - 1) & 0xff);
		break;
	case 0x8000001d:
		if (e->eax & 0x1f)
			e->eax = cache_sharing(e->eax, t);
		break;
	case 0x8000001e: {
		uint32_t core_id =
			(index >> t->smt_shift) & mask_bits(t->core_shift + t->die_shift);
		uint32_t node_id = index >> (t->smt_shift + t->core_shift);
		e->eax = index;
		e->ebx = (e->ebx & ~0xffffu) | (core_id & 0xff) | (((t->threads - 1) & 0xff) << 8);
		e->ecx = (e->ecx & ~0x7ffu) | (node_id & 0xff) | (((t->dies - 1) & 7) << 8);
		break;
	}
	default:
		break;
	}
}

int x86_cpuid_build(const struct hv_cpuid_entry *supported, unsigned n_supported, unsigned index,
		    unsigned nr_vcpus, const struct cpu_topology *topo, struct hv_cpuid_entry *ret,
		    unsigned max)
{
	struct topo t;
	bool amd = is_amd(supported, n_supported);
	bool done_0b = false, done_1f = false;
	uint32_t hv_max = KVM_CPUID_SIGNATURE;
	unsigned n = 0;
	int r;

	topo_get(topo, nr_vcpus, &t);
	for (unsigned i = 0; i < n_supported; i++)
		if (supported[i].function > hv_max && supported[i].function <= HV_LEAF_LAST)
			hv_max = supported[i].function;

	for (unsigned i = 0; i < n_supported; i++) {
		const struct hv_cpuid_entry *s = &supported[i];

		/* The topology leaves are rewritten whole: the host's subleaf set is its own. */
		if (s->function == 0xb || s->function == 0x1f) {
			bool *done = s->function == 0xb ? &done_0b : &done_1f;
			if (*done)
				continue;
			*done = true;
			r = emit_ext_topology(s->function, index, &t, ret, max, &n);
			if (r < 0)
				return r;
			continue;
		}
		if (n >= max)
			return -ENOSPC;
		struct hv_cpuid_entry *e = &ret[n++];
		*e = *s;
		switch (e->function) {
		case 1:
			leaf1(e, index, &t);
			break;
		case 4:
			leaf4(e, &t);
			break;
		case KVM_CPUID_SIGNATURE:
			e->eax = hv_max;
			memcpy(&e->ebx, "KVMK", 4);
			memcpy(&e->ecx, "VMKV", 4);
			memcpy(&e->edx, "M\0\0\0", 4);
			break;
		default:
			if (amd)
				amd_leaves(e, index, &t);
			break;
		}
	}
	return (int)n;
}
