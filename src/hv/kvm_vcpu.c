/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KVM backend of hv.h, vCPU half: creating vCPUs, their registers, segments, MSRs, CPUID,
 * FPU and LAPIC, KVM_RUN with exits dispatched to the io ops, and kicks (kvm.c explains them).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/kvm_para.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hv/hv.h"
#include "hv/kvm.h"
#include "hv/routes.h"
#include "util/log.h"
#include "util/util.h"

/* The signal that pulls a vCPU thread out of KVM_RUN (see the kick comment above). */
#define KVM_KICK_SIGNAL SIGUSR2

#define APIC_LVT_LINT0	    0x350
#define APIC_LVT_LINT1	    0x360
#define APIC_DM_MASK	    (7u << 8)
#define APIC_DM_NMI	    (4u << 8)
#define APIC_DM_EXTINT	    (7u << 8)
#define FPU_CONTROL_DEFAULT 0x37f
#define MXCSR_DEFAULT	    0x1f80

/* vCPUs */

int hv_vcpu_create(struct hv *hv, unsigned index, struct hv_vcpu **ret)
{
	struct hv_vcpu *vcpu;
	void *run;
	int r;

	if (index >= hv->caps.max_vcpus)
		return -EINVAL;
	vcpu = calloc(1, sizeof(*vcpu));
	if (!vcpu)
		return -ENOMEM;
	vcpu->hv = hv;
	vcpu->index = index;
	atomic_init(&vcpu->in_run, false);

	/* The vCPU fd comes with O_CLOEXEC from the kernel. */
	r = kvm_ioctl_retry(hv->vm_fd, KVM_CREATE_VCPU, index);
	if (r < 0) {
		log_debug("kvm: KVM_CREATE_VCPU %u: %s", index, strerror(-r));
		free(vcpu);
		return r;
	}
	vcpu->fd = r;
	run = mmap(NULL, hv->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (run == MAP_FAILED) {
		r = -errno;
		close(vcpu->fd);
		free(vcpu);
		return r;
	}
	vcpu->run = run;
	*ret = vcpu;
	return 0;
}

struct hv_vcpu *hv_vcpu_destroy(struct hv_vcpu *vcpu)
{
	if (!vcpu)
		return NULL;
	munmap(vcpu->run, vcpu->hv->run_size);
	close(vcpu->fd);
	free(vcpu);
	return NULL;
}

int hv_vcpu_get_regs(struct hv_vcpu *vcpu, struct hv_regs *ret)
{
	struct kvm_regs k;
	int r;

	r = kvm_ioctl_retry(vcpu->fd, KVM_GET_REGS, (unsigned long)&k);
	if (r < 0)
		return r;
	/* clang-format off */
	*ret = (struct hv_regs){
		.rax = k.rax, .rbx = k.rbx, .rcx = k.rcx, .rdx = k.rdx,
		.rsi = k.rsi, .rdi = k.rdi, .rsp = k.rsp, .rbp = k.rbp,
		.r8 = k.r8, .r9 = k.r9, .r10 = k.r10, .r11 = k.r11,
		.r12 = k.r12, .r13 = k.r13, .r14 = k.r14, .r15 = k.r15,
		.rip = k.rip, .rflags = k.rflags,
	};
	/* clang-format on */
	return 0;
}

int hv_vcpu_set_regs(struct hv_vcpu *vcpu, const struct hv_regs *regs)
{
	/* clang-format off */
	struct kvm_regs k = {
		.rax = regs->rax, .rbx = regs->rbx, .rcx = regs->rcx, .rdx = regs->rdx,
		.rsi = regs->rsi, .rdi = regs->rdi, .rsp = regs->rsp, .rbp = regs->rbp,
		.r8 = regs->r8, .r9 = regs->r9, .r10 = regs->r10, .r11 = regs->r11,
		.r12 = regs->r12, .r13 = regs->r13, .r14 = regs->r14, .r15 = regs->r15,
		.rip = regs->rip, .rflags = regs->rflags,
	};
	/* clang-format on */
	int r = kvm_ioctl_retry(vcpu->fd, KVM_SET_REGS, (unsigned long)&k);
	return r < 0 ? r : 0;
}

static void seg_from_kvm(struct hv_segment *s, const struct kvm_segment *k)
{
	*s = (struct hv_segment){
		.base = k->base,
		.limit = k->limit,
		.selector = k->selector,
		.type = k->type,
		.present = k->present,
		.dpl = k->dpl,
		.db = k->db,
		.s = k->s,
		.l = k->l,
		.g = k->g,
		.avl = k->avl,
		.unusable = k->unusable,
	};
}

static void seg_to_kvm(struct kvm_segment *k, const struct hv_segment *s)
{
	*k = (struct kvm_segment){
		.base = s->base,
		.limit = s->limit,
		.selector = s->selector,
		.type = s->type,
		.present = s->present,
		.dpl = s->dpl,
		.db = s->db,
		.s = s->s,
		.l = s->l,
		.g = s->g,
		.avl = s->avl,
		.unusable = s->unusable,
	};
}

void kvm_sregs_from(struct hv_sregs *ret, const struct kvm_sregs *k)
{
	seg_from_kvm(&ret->cs, &k->cs);
	seg_from_kvm(&ret->ds, &k->ds);
	seg_from_kvm(&ret->es, &k->es);
	seg_from_kvm(&ret->fs, &k->fs);
	seg_from_kvm(&ret->gs, &k->gs);
	seg_from_kvm(&ret->ss, &k->ss);
	seg_from_kvm(&ret->tr, &k->tr);
	seg_from_kvm(&ret->ldt, &k->ldt);
	ret->gdt = (struct hv_dtable){ .base = k->gdt.base, .limit = k->gdt.limit };
	ret->idt = (struct hv_dtable){ .base = k->idt.base, .limit = k->idt.limit };
	ret->cr0 = k->cr0;
	ret->cr2 = k->cr2;
	ret->cr3 = k->cr3;
	ret->cr4 = k->cr4;
	ret->cr8 = k->cr8;
	ret->efer = k->efer;
	ret->apic_base = k->apic_base;
}

/* Everything but the pending-interrupt bitmap, which hv_sregs does not carry. */
void kvm_sregs_to(struct kvm_sregs *k, const struct hv_sregs *s)
{
	seg_to_kvm(&k->cs, &s->cs);
	seg_to_kvm(&k->ds, &s->ds);
	seg_to_kvm(&k->es, &s->es);
	seg_to_kvm(&k->fs, &s->fs);
	seg_to_kvm(&k->gs, &s->gs);
	seg_to_kvm(&k->ss, &s->ss);
	seg_to_kvm(&k->tr, &s->tr);
	seg_to_kvm(&k->ldt, &s->ldt);
	k->gdt = (struct kvm_dtable){ .base = s->gdt.base, .limit = s->gdt.limit };
	k->idt = (struct kvm_dtable){ .base = s->idt.base, .limit = s->idt.limit };
	k->cr0 = s->cr0;
	k->cr2 = s->cr2;
	k->cr3 = s->cr3;
	k->cr4 = s->cr4;
	k->cr8 = s->cr8;
	k->efer = s->efer;
	k->apic_base = s->apic_base;
}

int hv_vcpu_get_sregs(struct hv_vcpu *vcpu, struct hv_sregs *ret)
{
	struct kvm_sregs k;
	int r;

	r = kvm_ioctl_retry(vcpu->fd, KVM_GET_SREGS, (unsigned long)&k);
	if (r < 0)
		return r;
	kvm_sregs_from(ret, &k);
	return 0;
}

int hv_vcpu_set_sregs(struct hv_vcpu *vcpu, const struct hv_sregs *sregs)
{
	struct kvm_sregs k;
	int r;

	/* Read first so that the pending-interrupt bitmap is written back unchanged. */
	r = kvm_ioctl_retry(vcpu->fd, KVM_GET_SREGS, (unsigned long)&k);
	if (r < 0)
		return r;
	kvm_sregs_to(&k, sregs);
	r = kvm_ioctl_retry(vcpu->fd, KVM_SET_SREGS, (unsigned long)&k);
	return r < 0 ? r : 0;
}

/* One KVM_SET_MSRS of at most KVM_MAX_IO_MSRS entries. */
static int kvm_set_msrs_batch(struct hv_vcpu *vcpu, const struct hv_msr *msrs, unsigned n)
{
	_cleanup_free_ struct kvm_msrs *k = NULL;
	int r;

	k = calloc(1, sizeof(*k) + n * sizeof(k->entries[0]));
	if (!k)
		return -ENOMEM;
	k->nmsrs = n;
	for (unsigned i = 0; i < n; i++) {
		k->entries[i].index = msrs[i].index;
		k->entries[i].data = msrs[i].value;
	}
	r = kvm_ioctl_retry(vcpu->fd, KVM_SET_MSRS, (unsigned long)k);
	if (r < 0)
		return r;
	/* KVM stops at the first MSR it refuses and returns how many it set. */
	if ((unsigned)r != n) {
		log_debug("kvm: vcpu %u: KVM_SET_MSRS refused MSR 0x%x (entry %d of %u)",
			  vcpu->index, msrs[r].index, r, n);
		return -EINVAL;
	}
	return 0;
}

int kvm_set_msrs(struct hv_vcpu *vcpu, const struct hv_msr *msrs, unsigned n)
{
	for (unsigned i = 0; i < n; i += KVM_MAX_IO_MSRS) {
		int r = kvm_set_msrs_batch(vcpu, msrs + i, MIN(n - i, KVM_MAX_IO_MSRS));
		if (r < 0)
			return r;
	}
	return 0;
}

int hv_vcpu_set_msrs(struct hv_vcpu *vcpu, const struct hv_msr *msrs, unsigned n)
{
	if (n > KVM_MAX_IO_MSRS)
		return -E2BIG;
	return kvm_set_msrs(vcpu, msrs, n);
}

int hv_vcpu_set_cpuid(struct hv_vcpu *vcpu, const struct hv_cpuid_entry *e, unsigned n)
{
	_cleanup_free_ struct kvm_cpuid2 *c = NULL;
	int r;

	if (n > HV_CPUID_MAX_ENTRIES)
		return -E2BIG;
	c = kvm_cpuid2_alloc(n);
	if (!c)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		c->entries[i] = (struct kvm_cpuid_entry2){
			.function = e[i].function,
			.index = e[i].index,
			.flags = (e[i].flags & HV_CPUID_SIGNIFICANT_INDEX)
					 ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX
					 : 0,
			.eax = e[i].eax,
			.ebx = e[i].ebx,
			.ecx = e[i].ecx,
			.edx = e[i].edx,
		};
	}
	r = kvm_ioctl_retry(vcpu->fd, KVM_SET_CPUID2, (unsigned long)c);
	return r < 0 ? r : 0;
}

int hv_vcpu_reset_fpu(struct hv_vcpu *vcpu)
{
	struct kvm_fpu fpu = { .fcw = FPU_CONTROL_DEFAULT, .mxcsr = MXCSR_DEFAULT };
	int r = kvm_ioctl_retry(vcpu->fd, KVM_SET_FPU, (unsigned long)&fpu);
	return r < 0 ? r : 0;
}

static void lapic_set_delivery_mode(struct kvm_lapic_state *lapic, unsigned reg, uint32_t mode)
{
	uint32_t v;

	memcpy(&v, &lapic->regs[reg], sizeof(v));
	v = (v & ~APIC_DM_MASK) | mode;
	memcpy(&lapic->regs[reg], &v, sizeof(v));
}

int hv_vcpu_setup_lapic(struct hv_vcpu *vcpu)
{
	struct kvm_lapic_state lapic;
	int r;

	r = kvm_ioctl_retry(vcpu->fd, KVM_GET_LAPIC, (unsigned long)&lapic);
	if (r < 0)
		return r;
	lapic_set_delivery_mode(&lapic, APIC_LVT_LINT0, APIC_DM_EXTINT);
	lapic_set_delivery_mode(&lapic, APIC_LVT_LINT1, APIC_DM_NMI);
	r = kvm_ioctl_retry(vcpu->fd, KVM_SET_LAPIC, (unsigned long)&lapic);
	return r < 0 ? r : 0;
}

/* Running */

static void kvm_exit_pio(struct hv_vcpu *vcpu)
{
	const struct hv *hv = vcpu->hv;
	struct kvm_run *run = vcpu->run;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
	unsigned size = run->io.size;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	/* String I/O (rep ins/outs) hands over io.count elements at once; KVM keeps them inside
	 * the kvm_run page, so the bound below only guards against a confused kernel. */
	if (size > 8 || run->io.data_offset + (uint64_t)run->io.count * size > hv->run_size)
		return;
	for (uint32_t i = 0; i < run->io.count; i++) {
		uint8_t *d = data + (size_t)i * size;
		if (hv->ops.pio)
			hv->ops.pio(hv->opaque, run->io.port, is_write, d, size);
		else if (!is_write)
			memset(d, 0xff, size);
	}
}

static void kvm_exit_mmio(struct hv_vcpu *vcpu)
{
	const struct hv *hv = vcpu->hv;
	struct kvm_run *run = vcpu->run;
	unsigned len = run->mmio.len;

	if (len > sizeof(run->mmio.data))
		return;
	if (hv->ops.mmio)
		hv->ops.mmio(hv->opaque, run->mmio.phys_addr, run->mmio.is_write, run->mmio.data,
			     len);
	else if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, len);
}

static void kvm_exit_internal(struct hv_vcpu *vcpu, struct hv_exit *e)
{
	struct kvm_run *run = vcpu->run;
	const char *what;

	e->reason = HV_EXIT_INTERNAL;
	e->code = run->internal.suberror;
	switch (run->internal.suberror) {
	case KVM_INTERNAL_ERROR_EMULATION:
		what = "emulation failure";
		break;
	case KVM_INTERNAL_ERROR_SIMUL_EX:
		what = "simultaneous exception";
		break;
	case KVM_INTERNAL_ERROR_DELIVERY_EV:
		what = "exit during event delivery";
		break;
	case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
		what = "unexpected exit reason";
		break;
	default:
		what = "internal error";
		break;
	}
	snprintf(e->description, sizeof(e->description), "%s (suberror %u)", what,
		 run->internal.suberror);
#ifdef KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES
	/* ndata counts the u64 words after itself: flags, then the 16 instruction bytes. */
	if (run->emulation_failure.suberror == KVM_INTERNAL_ERROR_EMULATION &&
	    run->emulation_failure.ndata >= 3 &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		unsigned n = MIN(run->emulation_failure.insn_size,
				 sizeof(run->emulation_failure.insn_bytes));
		memcpy(e->insn, run->emulation_failure.insn_bytes, n);
		e->insn_len = (uint8_t)n;
	}
#endif
}

/* Fills @e for a system event; returns false when the event needs no VMM action. */
static bool kvm_exit_system_event(struct hv_vcpu *vcpu, struct hv_exit *e)
{
	uint32_t type = vcpu->run->system_event.type;

	switch (type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		e->reason = HV_EXIT_POWEROFF;
		return true;
	case KVM_SYSTEM_EVENT_RESET:
		e->reason = HV_EXIT_RESET;
		return true;
	case KVM_SYSTEM_EVENT_WAKEUP:
		return false;
	case KVM_SYSTEM_EVENT_CRASH:
		/* hv.h has no crash exit: report it like an internal error, with its name. */
		e->reason = HV_EXIT_INTERNAL;
		e->code = type;
		snprintf(e->description, sizeof(e->description), "guest crash (system event)");
		return true;
	default:
		e->reason = HV_EXIT_INTERNAL;
		e->code = type;
		snprintf(e->description, sizeof(e->description), "unhandled system event %u", type);
		return true;
	}
}

int hv_vcpu_run(struct hv_vcpu *vcpu, struct hv_exit *ret)
{
	struct kvm_run *run = vcpu->run;
	struct hv_exit e = { 0 };
	int r = 0;

	vcpu->thread = pthread_self();
	atomic_store(&vcpu->in_run, true);
	for (;;) {
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			/* A kick, or any other signal: the caller checks its requests. */
			if (errno == EINTR || errno == EAGAIN) {
				e.reason = HV_EXIT_KICKED;
				break;
			}
			r = -errno;
			break;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			kvm_exit_pio(vcpu);
			continue;
		case KVM_EXIT_MMIO:
			kvm_exit_mmio(vcpu);
			continue;
		case KVM_EXIT_INTR:
			e.reason = HV_EXIT_KICKED;
			break;
		case KVM_EXIT_HLT:
			e.reason = HV_EXIT_HALT;
			break;
		case KVM_EXIT_SHUTDOWN:
			e.reason = HV_EXIT_SHUTDOWN;
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			if (!kvm_exit_system_event(vcpu, &e))
				continue;
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			kvm_exit_internal(vcpu, &e);
			break;
		case KVM_EXIT_FAIL_ENTRY:
			e.reason = HV_EXIT_FAIL_ENTRY;
			e.code = (uint32_t)run->fail_entry.hardware_entry_failure_reason;
			snprintf(e.description, sizeof(e.description),
				 "entry failed: hardware reason 0x%llx",
				 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			break;
		default:
			e.reason = HV_EXIT_INTERNAL;
			e.code = run->exit_reason;
			snprintf(e.description, sizeof(e.description), "unhandled KVM exit %u",
				 run->exit_reason);
			break;
		}
		break;
	}
	atomic_store(&vcpu->in_run, false);
	if (r < 0)
		return r;
	*ret = e;
	return 0;
}

void hv_vcpu_kick(struct hv_vcpu *vcpu)
{
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	/* The thread may have left hv_vcpu_run() just after this check: then the signal lands
	 * outside KVM_RUN and does nothing (the handler is empty, SA_RESTART). */
	if (atomic_load(&vcpu->in_run))
		pthread_kill(vcpu->thread, KVM_KICK_SIGNAL);
}

void hv_vcpu_clear_kick(struct hv_vcpu *vcpu)
{
	__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

static void kvm_kick_handler(int sig)
{
	(void)sig;
}

int hv_vcpu_thread_init(void)
{
	struct sigaction sa = { .sa_handler = kvm_kick_handler, .sa_flags = SA_RESTART };
	sigset_t set;
	int r;

	sigemptyset(&sa.sa_mask);
	if (sigaction(KVM_KICK_SIGNAL, &sa, NULL) < 0)
		return -errno;
	sigemptyset(&set);
	sigaddset(&set, KVM_KICK_SIGNAL);
	r = pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return -r;
}
