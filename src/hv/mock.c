/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A fake hv.h backend for unit tests: no /dev/kvm. RAM is anonymous memory, interrupts and
 * vCPU state are recorded for mock.h, hv_supported_cpuid() answers a fixed table of a modern
 * Intel server as KVM would filter it, and hv_vcpu_run() returns HV_EXIT_HALT (or
 * HV_EXIT_KICKED when a kick is pending) without running anything.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "hv/hv.h"
#include "hv/mock.h"
#include "hv/routes.h"
#include "util/util.h"

#define MOCK_MAX_RAM_SLOTS 32
#define MOCK_MAX_VCPUS	   1024
#define MOCK_MAX_GSI	   24
#define MOCK_PAGE_SIZE	   4096ULL
#define MOCK_MAX_BINDINGS  256
#define MOCK_XSAVE_SIZE	   4096
#define MOCK_IOAPIC_BASE   0xfec00000ULL

struct mock_binding {
	int fd;
	uint64_t key; /* GSI (irqfd) or address (ioeventfd) */
	unsigned len;
};

struct mock_ram {
	uint64_t gpa;
	uint64_t size;
	void *host;
	bool borrowed; /* hv_mem_map(): not ours to unmap */
};

struct hv {
	struct hv_caps caps;
	struct hv_io_ops ops;
	void *opaque;

	struct mock_ram ram[MOCK_MAX_RAM_SLOTS];
	unsigned n_ram;

	unsigned irq_count;
	uint32_t irq_last_gsi;
	bool irq_last_level;
	bool irq_levels[MOCK_MAX_GSI];

	unsigned msi_count;
	uint64_t msi_last_addr;
	uint32_t msi_last_data;

	struct hv_route_table routes;
	struct mock_binding irqfds[MOCK_MAX_BINDINGS];
	unsigned n_irqfds;
	struct mock_binding ioeventfds[MOCK_MAX_BINDINGS];
	unsigned n_ioeventfds;

	struct hv_vm_state vm_state;
};

struct hv_vcpu {
	struct hv *hv;
	unsigned index;
	struct hv_regs regs;
	struct hv_sregs sregs;
	struct hv_msr msrs[HV_MOCK_MAX_MSRS];
	unsigned n_msrs;
	struct hv_cpuid_entry cpuid[HV_CPUID_MAX_ENTRIES];
	unsigned n_cpuid;
	bool fpu_reset;
	bool lapic_setup;
	enum hv_exit_reason exit;
	atomic_bool kicked;
	atomic_uint kick_count;
	/* The rest of hv_vcpu_get_state() (regs, sregs and MSRs are the fields above). */
	struct hv_vcpu_state *state;
};

#define IDX HV_CPUID_SIGNIFICANT_INDEX

/* KVM_GET_SUPPORTED_CPUID of an Ice Lake server (Xeon Platinum 8375C) under Linux 6.x. */
static const struct hv_cpuid_entry mock_cpuid[] = {
	/* max leaf 0x1b, "GenuineIntel" */
	{ 0x00000000, 0, 0, 0x0000001b, 0x756e6547, 0x6c65746e, 0x49656e69 },
	/* family 6 model 0x6a; SSE3..AVX, x2APIC, TSC deadline, hypervisor; no OSXSAVE */
	{ 0x00000001, 0, 0, 0x000606a6, 0x00000800, 0xf7fa3203, 0x0f8bfbff },
	{ 0x00000002, 0, 0, 0x00feff01, 0x000000f0, 0x00000000, 0x00000000 },
	/* deterministic cache parameters: L1d, L1i, L2, L3, end */
	{ 0x00000004, 0, IDX, 0xfc004121, 0x02c0003f, 0x0000003f, 0x00000000 },
	{ 0x00000004, 1, IDX, 0xfc004122, 0x01c0003f, 0x0000003f, 0x00000000 },
	{ 0x00000004, 2, IDX, 0xfc004143, 0x04c0003f, 0x000003ff, 0x00000000 },
	{ 0x00000004, 3, IDX, 0xfc07c163, 0x02c0003f, 0x0000dfff, 0x00000004 },
	{ 0x00000004, 4, IDX, 0x00000000, 0x00000000, 0x00000000, 0x00000000 },
	{ 0x00000005, 0, 0, 0x00000000, 0x00000000, 0x00000000, 0x00000000 },
	/* ARAT only */
	{ 0x00000006, 0, 0, 0x00000004, 0x00000000, 0x00000000, 0x00000000 },
	/* AVX2, AVX-512, SMEP/SMAP, ERMS, INVPCID, UMIP, PKU, LA57, RDPID, spec-ctrl bits */
	{ 0x00000007, 0, IDX, 0x00000002, 0xf1bf0fbb, 0x00415f0e, 0xac000410 },
	{ 0x00000007, 1, IDX, 0x00000000, 0x00000000, 0x00000000, 0x00000000 },
	{ 0x00000007, 2, IDX, 0x00000000, 0x00000000, 0x00000000, 0x00000000 },
	{ 0x0000000a, 0, 0, 0x07300802, 0x00000000, 0x00000000, 0x00000603 },
	/* x2APIC topology: SMT (2 threads), core, end */
	{ 0x0000000b, 0, IDX, 0x00000001, 0x00000002, 0x00000100, 0x00000000 },
	{ 0x0000000b, 1, IDX, 0x00000007, 0x00000040, 0x00000201, 0x00000000 },
	{ 0x0000000b, 2, IDX, 0x00000000, 0x00000000, 0x00000002, 0x00000000 },
	/* XSAVE: x87, SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM, PKRU */
	{ 0x0000000d, 0, IDX, 0x000002e7, 0x00000a88, 0x00000a88, 0x00000000 },
	{ 0x0000000d, 1, IDX, 0x0000000f, 0x00000a88, 0x00000000, 0x00000000 },
	{ 0x0000000d, 2, IDX, 0x00000100, 0x00000240, 0x00000000, 0x00000000 },
	{ 0x0000000d, 5, IDX, 0x00000040, 0x00000440, 0x00000000, 0x00000000 },
	{ 0x0000000d, 6, IDX, 0x00000200, 0x00000480, 0x00000000, 0x00000000 },
	{ 0x0000000d, 7, IDX, 0x00000400, 0x00000680, 0x00000000, 0x00000000 },
	{ 0x0000000d, 9, IDX, 0x00000008, 0x00000a80, 0x00000000, 0x00000000 },
	{ 0x00000012, 0, IDX, 0x00000000, 0x00000000, 0x00000000, 0x00000000 },
	{ 0x00000014, 0, IDX, 0x00000000, 0x00000000, 0x00000000, 0x00000000 },
	/* KVM's own leaves: "KVMKVMKVM", then its paravirt features */
	{ 0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x0000004d },
	{ 0x40000001, 0, 0, 0x01007afb, 0x00000000, 0x00000000, 0x00000000 },
	{ 0x80000000, 0, 0, 0x80000008, 0x00000000, 0x00000000, 0x00000000 },
	/* LAHF, ABM, PREFETCHW; SYSCALL, NX, 1G pages, RDTSCP, LM */
	{ 0x80000001, 0, 0, 0x00000000, 0x00000000, 0x00000121, 0x2c100800 },
	/* "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz" */
	{ 0x80000002, 0, 0, 0x65746e49, 0x2952286c, 0x6f655820, 0x2952286e },
	{ 0x80000003, 0, 0, 0x616c5020, 0x756e6974, 0x3338206d, 0x20433537 },
	{ 0x80000004, 0, 0, 0x20555043, 0x2e322040, 0x48473039, 0x0000007a },
	{ 0x80000005, 0, 0, 0x00000000, 0x00000000, 0x00000000, 0x00000000 },
	{ 0x80000006, 0, 0, 0x00000000, 0x00000000, 0x01007040, 0x00000000 },
	/* invariant TSC */
	{ 0x80000007, 0, 0, 0x00000000, 0x00000000, 0x00000000, 0x00000100 },
	/* 46 physical, 48 virtual address bits */
	{ 0x80000008, 0, 0, 0x0000302e, 0x00000000, 0x00000000, 0x00000000 },
};

/* The platform as KVM creates it: PIC edge/level masks, IOAPIC at its address, PIT unset. */
static void mock_vm_state_reset(struct hv_vm_state *st)
{
	memset(st, 0, sizeof(*st));
	st->pic[0].elcr_mask = 0xf8;
	st->pic[1].elcr_mask = 0xde;
	st->ioapic.base_address = MOCK_IOAPIC_BASE;
	for (unsigned i = 0; i < HV_IOAPIC_PINS; i++)
		st->ioapic.redirtbl[i] = 1u << 16; /* masked */
	for (unsigned i = 0; i < 3; i++)
		st->pit[i] = (struct hv_pit_channel){ .count = 0x10000, .mode = 0xff, .gate = 1 };
}

int hv_create(struct hv **ret)
{
	struct hv *hv = calloc(1, sizeof(*hv));

	if (!hv)
		return -ENOMEM;
	hv->caps = (struct hv_caps){
		.irqchip = true,
		.irqfd = true,
		.ioeventfd = true,
		.dirty_log = true,
		.max_vcpus = MOCK_MAX_VCPUS,
	};
	mock_vm_state_reset(&hv->vm_state);
	*ret = hv;
	return 0;
}

struct hv *hv_destroy(struct hv *hv)
{
	if (!hv)
		return NULL;
	for (unsigned i = 0; i < hv->n_ram; i++) {
		if (!hv->ram[i].borrowed)
			munmap(hv->ram[i].host, hv->ram[i].size);
	}
	free(hv);
	return NULL;
}

size_t hv_seccomp_ioctls(bool vcpu_thread, const unsigned long **ret)
{
	*ret = NULL;
	return 0;
}

void hv_get_caps(struct hv *hv, struct hv_caps *ret)
{
	*ret = hv->caps;
}

void hv_set_io_ops(struct hv *hv, const struct hv_io_ops *ops, void *opaque)
{
	hv->ops = *ops;
	hv->opaque = opaque;
}

int hv_ready(struct hv *hv)
{
	return 0;
}

/* A new RAM range: aligned, free, and a slot left. */
static int mock_ram_check(struct hv *hv, uint64_t gpa, uint64_t size)
{
	if (size == 0 || !IS_ALIGNED(gpa, MOCK_PAGE_SIZE) || !IS_ALIGNED(size, MOCK_PAGE_SIZE) ||
	    range_overflows(gpa, size) || size > SIZE_MAX)
		return -EINVAL;
	for (unsigned i = 0; i < hv->n_ram; i++) {
		const struct mock_ram *r = &hv->ram[i];
		if (gpa < r->gpa + r->size && r->gpa < gpa + size)
			return -EINVAL;
	}
	if (hv->n_ram == MOCK_MAX_RAM_SLOTS)
		return -ENOSPC;
	return 0;
}

int hv_ram_add(struct hv *hv, uint64_t gpa, uint64_t size, unsigned flags, void **ret_host)
{
	void *p;

	int r;

	(void)flags;
	r = mock_ram_check(hv, gpa, size);
	if (r < 0)
		return r;
	/* Lazily allocated: a test may ask for gigabytes and touch a few pages. */
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	hv->ram[hv->n_ram++] = (struct mock_ram){ .gpa = gpa, .size = size, .host = p };
	*ret_host = p;
	return 0;
}

int hv_mem_map(struct hv *hv, uint64_t gpa, uint64_t size, void *host, bool readonly)
{
	(void)readonly;
	if (size == 0 || !IS_ALIGNED(gpa, MOCK_PAGE_SIZE) || !IS_ALIGNED(size, MOCK_PAGE_SIZE) ||
	    range_overflows(gpa, size))
		return -EINVAL;
	for (unsigned i = 0; i < hv->n_ram; i++) {
		const struct mock_ram *r = &hv->ram[i];
		if (gpa < r->gpa + r->size && r->gpa < gpa + size)
			return -EEXIST;
	}
	if (hv->n_ram == MOCK_MAX_RAM_SLOTS)
		return -ENOSPC;
	hv->ram[hv->n_ram++] =
		(struct mock_ram){ .gpa = gpa, .size = size, .host = host, .borrowed = true };
	return 0;
}

int hv_mem_unmap(struct hv *hv, uint64_t gpa)
{
	for (unsigned i = 0; i < hv->n_ram; i++) {
		if (!hv->ram[i].borrowed || hv->ram[i].gpa != gpa)
			continue;
		memmove(&hv->ram[i], &hv->ram[i + 1], (hv->n_ram - i - 1) * sizeof(hv->ram[0]));
		hv->n_ram--;
		return 0;
	}
	return -ENOENT;
}

int hv_irq_line(struct hv *hv, uint32_t gsi, bool level)
{
	if (gsi >= MOCK_MAX_GSI)
		return -EINVAL;
	hv->irq_count++;
	hv->irq_last_gsi = gsi;
	hv->irq_last_level = level;
	hv->irq_levels[gsi] = level;
	return 0;
}

int hv_msi_route_alloc(struct hv *hv, uint32_t *ret_gsi)
{
	return hv_routes_alloc(&hv->routes, ret_gsi);
}

int hv_msi_route(struct hv *hv, uint32_t gsi, uint64_t addr, uint32_t data)
{
	struct hv_msi_slot *s = hv_routes_slot(&hv->routes, gsi);

	if (!s)
		return -EINVAL;
	*s = (struct hv_msi_slot){ .used = true, .installed = true, .addr = addr, .data = data };
	return 0;
}

void hv_msi_route_free(struct hv *hv, uint32_t gsi)
{
	struct hv_msi_slot *s = hv_routes_slot(&hv->routes, gsi);

	if (s)
		*s = (struct hv_msi_slot){ 0 };
}

/* The index of (fd, key, len) in @b, or -1. */
static int mock_binding_find(const struct mock_binding *b, unsigned n, int fd, uint64_t key,
			     unsigned len)
{
	for (unsigned i = 0; i < n; i++) {
		if (b[i].fd == fd && b[i].key == key && b[i].len == len)
			return (int)i;
	}
	return -1;
}

static int mock_bind(struct mock_binding *b, unsigned *n, int fd, uint64_t key, unsigned len,
		     bool assign)
{
	int i = mock_binding_find(b, *n, fd, key, len);

	if (assign) {
		if (i >= 0)
			return -EEXIST;
		if (*n == MOCK_MAX_BINDINGS)
			return -ENOSPC;
		b[(*n)++] = (struct mock_binding){ .fd = fd, .key = key, .len = len };
		return 0;
	}
	if (i < 0)
		return -ENOENT;
	b[i] = b[--*n];
	return 0;
}

int hv_irqfd(struct hv *hv, int fd, uint32_t gsi, bool assign)
{
	/* KVM binds an eventfd to one GSI at a time. */
	for (unsigned i = 0; assign && i < hv->n_irqfds; i++) {
		if (hv->irqfds[i].fd == fd)
			return -EBUSY;
	}
	return mock_bind(hv->irqfds, &hv->n_irqfds, fd, gsi, 0, assign);
}

int hv_ioeventfd(struct hv *hv, int fd, uint64_t addr, unsigned len, bool assign)
{
	if (len != 1 && len != 2 && len != 4 && len != 8)
		return -EINVAL;
	return mock_bind(hv->ioeventfds, &hv->n_ioeventfds, fd, addr, len, assign);
}

int hv_msi(struct hv *hv, uint64_t addr, uint32_t data)
{
	hv->msi_count++;
	hv->msi_last_addr = addr;
	hv->msi_last_data = data;
	return 0;
}

int hv_supported_cpuid(struct hv *hv, struct hv_cpuid_entry *ret, unsigned max)
{
	unsigned n = MIN((unsigned)ARRAY_SIZE(mock_cpuid), max);

	(void)hv;
	memcpy(ret, mock_cpuid, n * sizeof(*ret));
	return (int)n;
}

/* The architectural state after RESET/INIT, as KVM reports it for a new vCPU. */
static void mock_vcpu_reset(struct hv_vcpu *vcpu)
{
	const struct hv_segment data = {
		.limit = 0xffff,
		.type = 3,
		.present = 1,
		.s = 1,
	};

	vcpu->regs = (struct hv_regs){ .rip = 0xfff0, .rflags = 0x2, .rdx = 0x600 };
	vcpu->sregs = (struct hv_sregs){
		.cs = { .base = 0xffff0000,
			.limit = 0xffff,
			.selector = 0xf000,
			.type = 0xb,
			.present = 1,
			.s = 1 },
		.ds = data,
		.es = data,
		.fs = data,
		.gs = data,
		.ss = data,
		.tr = { .limit = 0xffff, .type = 0xb, .present = 1 },
		.ldt = { .limit = 0xffff, .type = 2, .present = 1 },
		.gdt = { .limit = 0xffff },
		.idt = { .limit = 0xffff },
		.cr0 = 0x60000010,
		/* APIC enabled at the default base; BSP flag on vCPU 0 */
		.apic_base = 0xfee00800 | (vcpu->index == 0 ? 0x100 : 0),
	};
}

/* The state nobody else sets: what KVM reports for a new vCPU, or the last set_state. */
static void mock_vcpu_state_reset(struct hv_vcpu *vcpu)
{
	struct hv_vcpu_state *st = vcpu->state;

	memset(st, 0, sizeof(*st));
	st->xsave_size = MOCK_XSAVE_SIZE;
	st->xsave[0] = 0x7f; /* FCW 0x37f */
	st->xsave[1] = 0x03;
	st->xsave[24] = 0x80; /* MXCSR 0x1f80 */
	st->xsave[25] = 0x1f;
	st->nr_xcrs = 1;
	st->xcrs[0] = (struct hv_msr){ .index = 0, .value = 1 }; /* XCR0: x87 */
	st->mp_state = vcpu->index == 0 ? HV_MP_STATE_RUNNABLE : HV_MP_STATE_UNINITIALIZED;
	st->dr6 = 0xffff0ff0;
	st->dr7 = 0x400;
}

int hv_vcpu_create(struct hv *hv, unsigned index, struct hv_vcpu **ret)
{
	struct hv_vcpu *vcpu;

	if (index >= hv->caps.max_vcpus)
		return -EINVAL;
	vcpu = calloc(1, sizeof(*vcpu));
	if (!vcpu)
		return -ENOMEM;
	vcpu->state = calloc(1, sizeof(*vcpu->state));
	if (!vcpu->state) {
		free(vcpu);
		return -ENOMEM;
	}
	vcpu->hv = hv;
	vcpu->index = index;
	vcpu->exit = HV_EXIT_HALT;
	atomic_init(&vcpu->kicked, false);
	atomic_init(&vcpu->kick_count, 0);
	mock_vcpu_reset(vcpu);
	mock_vcpu_state_reset(vcpu);
	*ret = vcpu;
	return 0;
}

struct hv_vcpu *hv_vcpu_destroy(struct hv_vcpu *vcpu)
{
	if (!vcpu)
		return NULL;
	free(vcpu->state);
	free(vcpu);
	return NULL;
}

int hv_vcpu_get_regs(struct hv_vcpu *vcpu, struct hv_regs *ret)
{
	*ret = vcpu->regs;
	return 0;
}

int hv_vcpu_set_regs(struct hv_vcpu *vcpu, const struct hv_regs *regs)
{
	vcpu->regs = *regs;
	return 0;
}

int hv_vcpu_get_sregs(struct hv_vcpu *vcpu, struct hv_sregs *ret)
{
	*ret = vcpu->sregs;
	return 0;
}

int hv_vcpu_set_sregs(struct hv_vcpu *vcpu, const struct hv_sregs *sregs)
{
	vcpu->sregs = *sregs;
	return 0;
}

static struct hv_msr *mock_msr_find(struct hv_vcpu *vcpu, uint32_t index)
{
	for (unsigned i = 0; i < vcpu->n_msrs; i++)
		if (vcpu->msrs[i].index == index)
			return &vcpu->msrs[i];
	return NULL;
}

int hv_vcpu_set_msrs(struct hv_vcpu *vcpu, const struct hv_msr *msrs, unsigned n)
{
	/* Checks for room first, so that a failed call changes nothing. */
	unsigned new = 0;

	for (unsigned i = 0; i < n; i++)
		if (!mock_msr_find(vcpu, msrs[i].index))
			new ++;
	if (vcpu->n_msrs + new > HV_MOCK_MAX_MSRS)
		return -E2BIG;
	for (unsigned i = 0; i < n; i++) {
		struct hv_msr *m = mock_msr_find(vcpu, msrs[i].index);
		if (!m)
			m = &vcpu->msrs[vcpu->n_msrs++];
		*m = msrs[i];
	}
	return 0;
}

int hv_vcpu_set_cpuid(struct hv_vcpu *vcpu, const struct hv_cpuid_entry *e, unsigned n)
{
	if (n > HV_CPUID_MAX_ENTRIES)
		return -E2BIG;
	memcpy(vcpu->cpuid, e, n * sizeof(*e));
	vcpu->n_cpuid = n;
	return 0;
}

int hv_vcpu_reset_fpu(struct hv_vcpu *vcpu)
{
	vcpu->fpu_reset = true;
	return 0;
}

int hv_vcpu_setup_lapic(struct hv_vcpu *vcpu)
{
	vcpu->lapic_setup = true;
	return 0;
}

int hv_vcpu_run(struct hv_vcpu *vcpu, struct hv_exit *ret)
{
	*ret = (struct hv_exit){
		.reason = atomic_load(&vcpu->kicked) ? HV_EXIT_KICKED : vcpu->exit,
	};
	return 0;
}

void hv_vcpu_kick(struct hv_vcpu *vcpu)
{
	atomic_store(&vcpu->kicked, true);
	atomic_fetch_add(&vcpu->kick_count, 1);
}

void hv_vcpu_clear_kick(struct hv_vcpu *vcpu)
{
	atomic_store(&vcpu->kicked, false);
}

int hv_vcpu_thread_init(void)
{
	return 0;
}

/* mock.h */

unsigned hv_mock_irq_count(struct hv *hv)
{
	return hv->irq_count;
}

bool hv_mock_irq_last(struct hv *hv, uint32_t *ret_gsi, bool *ret_level)
{
	if (hv->irq_count == 0)
		return false;
	if (ret_gsi)
		*ret_gsi = hv->irq_last_gsi;
	if (ret_level)
		*ret_level = hv->irq_last_level;
	return true;
}

bool hv_mock_irq_level(struct hv *hv, uint32_t gsi)
{
	return gsi < MOCK_MAX_GSI && hv->irq_levels[gsi];
}

unsigned hv_mock_msi_count(struct hv *hv)
{
	return hv->msi_count;
}

bool hv_mock_msi_last(struct hv *hv, uint64_t *ret_addr, uint32_t *ret_data)
{
	if (hv->msi_count == 0)
		return false;
	if (ret_addr)
		*ret_addr = hv->msi_last_addr;
	if (ret_data)
		*ret_data = hv->msi_last_data;
	return true;
}

struct hv_regs *hv_mock_vcpu_regs(struct hv_vcpu *vcpu)
{
	return &vcpu->regs;
}

struct hv_sregs *hv_mock_vcpu_sregs(struct hv_vcpu *vcpu)
{
	return &vcpu->sregs;
}

const struct hv_msr *hv_mock_vcpu_msrs(struct hv_vcpu *vcpu, unsigned *ret_n)
{
	*ret_n = vcpu->n_msrs;
	return vcpu->msrs;
}

bool hv_mock_vcpu_msr(struct hv_vcpu *vcpu, uint32_t index, uint64_t *ret_value)
{
	const struct hv_msr *m = mock_msr_find(vcpu, index);

	if (!m)
		return false;
	if (ret_value)
		*ret_value = m->value;
	return true;
}

const struct hv_cpuid_entry *hv_mock_vcpu_cpuid(struct hv_vcpu *vcpu, unsigned *ret_n)
{
	*ret_n = vcpu->n_cpuid;
	return vcpu->cpuid;
}

bool hv_mock_vcpu_fpu_reset(struct hv_vcpu *vcpu)
{
	return vcpu->fpu_reset;
}

bool hv_mock_vcpu_lapic_setup(struct hv_vcpu *vcpu)
{
	return vcpu->lapic_setup;
}

unsigned hv_mock_vcpu_kick_count(struct hv_vcpu *vcpu)
{
	return atomic_load(&vcpu->kick_count);
}

void hv_mock_vcpu_set_exit(struct hv_vcpu *vcpu, enum hv_exit_reason reason)
{
	vcpu->exit = reason;
}

void hv_mock_pio(struct hv *hv, uint16_t port, bool is_write, uint8_t *data, unsigned len)
{
	if (hv->ops.pio)
		hv->ops.pio(hv->opaque, port, is_write, data, len);
	else if (!is_write)
		memset(data, 0xff, len);
}

void hv_mock_mmio(struct hv *hv, uint64_t addr, bool is_write, uint8_t *data, unsigned len)
{
	if (hv->ops.mmio)
		hv->ops.mmio(hv->opaque, addr, is_write, data, len);
	else if (!is_write)
		memset(data, 0xff, len);
}

unsigned hv_mock_routes(struct hv *hv, struct hv_route *ret)
{
	return hv_routes_build(&hv->routes, ret);
}

bool hv_mock_msi_route(struct hv *hv, uint32_t gsi, uint64_t *ret_addr, uint32_t *ret_data)
{
	const struct hv_msi_slot *s = hv_routes_slot(&hv->routes, gsi);

	if (!s || !s->installed)
		return false;
	if (ret_addr)
		*ret_addr = s->addr;
	if (ret_data)
		*ret_data = s->data;
	return true;
}

unsigned hv_mock_irqfd_count(struct hv *hv)
{
	return hv->n_irqfds;
}

bool hv_mock_irqfd(struct hv *hv, int fd, uint32_t *ret_gsi)
{
	for (unsigned i = 0; i < hv->n_irqfds; i++) {
		if (hv->irqfds[i].fd == fd) {
			if (ret_gsi)
				*ret_gsi = (uint32_t)hv->irqfds[i].key;
			return true;
		}
	}
	return false;
}

unsigned hv_mock_ioeventfd_count(struct hv *hv)
{
	return hv->n_ioeventfds;
}

bool hv_mock_ioeventfd(struct hv *hv, uint64_t addr, int *ret_fd, unsigned *ret_len)
{
	for (unsigned i = 0; i < hv->n_ioeventfds; i++) {
		if (hv->ioeventfds[i].key == addr) {
			if (ret_fd)
				*ret_fd = hv->ioeventfds[i].fd;
			if (ret_len)
				*ret_len = hv->ioeventfds[i].len;
			return true;
		}
	}
	return false;
}

int hv_vcpu_get_state(struct hv_vcpu *vcpu, struct hv_vcpu_state *ret)
{
	memcpy(ret, vcpu->state, sizeof(*ret));
	ret->regs = vcpu->regs;
	ret->sregs = vcpu->sregs;
	ret->nr_msrs = vcpu->n_msrs;
	memcpy(ret->msrs, vcpu->msrs, vcpu->n_msrs * sizeof(ret->msrs[0]));
	return 0;
}

/* Refuses what the KVM backend refuses for any host: sizes and counts out of range. */
int hv_vcpu_set_state(struct hv_vcpu *vcpu, const struct hv_vcpu_state *st)
{
	if (st->xsave_size != MOCK_XSAVE_SIZE || st->nr_xcrs > HV_MAX_XCRS ||
	    st->nr_msrs > HV_MAX_MSRS || st->nr_msrs > HV_MOCK_MAX_MSRS ||
	    st->mp_state > HV_MP_STATE_SIPI_RECEIVED)
		return -EINVAL;
	memcpy(vcpu->state, st, sizeof(*st));
	vcpu->regs = st->regs;
	vcpu->sregs = st->sregs;
	vcpu->n_msrs = st->nr_msrs;
	memcpy(vcpu->msrs, st->msrs, st->nr_msrs * sizeof(st->msrs[0]));
	return 0;
}

int hv_vm_get_state(struct hv *hv, struct hv_vm_state *ret)
{
	*ret = hv->vm_state;
	return 0;
}

int hv_vm_set_state(struct hv *hv, const struct hv_vm_state *st)
{
	if (st->ioapic.base_address != MOCK_IOAPIC_BASE)
		return -EINVAL;
	hv->vm_state = *st;
	return 0;
}

/* Like the KVM backend: the file's pages copy-on-write, the same checks. */
int hv_ram_add_file(struct hv *hv, uint64_t gpa, uint64_t size, int fd, uint64_t offset,
		    unsigned flags, void **ret_host)
{
	struct stat stat;
	int r;
	void *p;

	if ((flags & (HV_RAM_SHARED | HV_RAM_HUGEPAGES)) || fd < 0 ||
	    !IS_ALIGNED(offset, MOCK_PAGE_SIZE) || range_overflows(offset, size) ||
	    offset + size > (uint64_t)INT64_MAX)
		return -EINVAL;
	if (fstat(fd, &stat) < 0)
		return -errno;
	if (!S_ISREG(stat.st_mode) || (uint64_t)stat.st_size < offset + size)
		return -EINVAL;
	r = mock_ram_check(hv, gpa, size);
	if (r < 0)
		return r;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd,
		 (off_t)offset);
	if (p == MAP_FAILED)
		return -errno;
	hv->ram[hv->n_ram++] = (struct mock_ram){ .gpa = gpa, .size = size, .host = p };
	*ret_host = p;
	return 0;
}

int hv_ram_reserve(struct hv *hv, uint64_t gpa, uint64_t size)
{
	return -EOPNOTSUPP; /* the mock has no slow set-up to pay ahead */
}
