/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KVM backend of hv.h, saved state: a vCPU's (hv_vcpu_get/set_state) and the in-kernel
 * platform's (hv_vm_get/set_state), converted between KVM's structs and hv.h's own.
 *
 * The state handed to the setters comes from a snapshot file: every value KVM would take on
 * trust (a size, a count, an MSR index, the IOAPIC's address) is checked here first.
 *
 * FPU without XSAVE: the state keeps the x87/SSE registers of KVM_GET_FPU as a 512-byte legacy
 * FXSAVE image in hv_vcpu_state.xsave (the first 512 bytes of an XSAVE area have that layout),
 * so that one field holds the FPU whatever the host has.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hv/hv.h"
#include "hv/kvm.h"
#include "util/log.h"
#include "util/util.h"

#define MSR_IA32_TSC_DEADLINE 0x6e0
#define FXSAVE_SIZE	      512
#define XSAVE_LEGACY_SIZE     4096 /* KVM_GET_XSAVE without KVM_CAP_XSAVE2 */
/* KVM's IOAPIC answers at this address whatever the state says: a saved one elsewhere is
 * damage. */
#define IOAPIC_BASE    0xfec00000ULL
#define PIT_MODE_UNSET 0xff /* KVM's counter mode before the guest programs it */
#define PIT_FLAGS      (KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON)
#define EVENT_FLAGS                                                                           \
	(KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |                  \
	 KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM | KVM_VCPUEVENT_VALID_PAYLOAD | \
	 KVM_VCPUEVENT_VALID_TRIPLE_FAULT)

_Static_assert(sizeof(((struct kvm_sregs *)0)->interrupt_bitmap) ==
		       sizeof(((struct hv_vcpu_state *)0)->interrupt_bitmap),
	       "interrupt bitmap");
_Static_assert(sizeof(((struct kvm_lapic_state *)0)->regs) == HV_LAPIC_SIZE, "LAPIC page");
_Static_assert(KVM_MAX_XCRS == HV_MAX_XCRS, "XCR count");
_Static_assert(KVM_IOAPIC_NUM_PINS == HV_IOAPIC_PINS, "IOAPIC pins");
_Static_assert(KVM_MP_STATE_SIPI_RECEIVED == HV_MP_STATE_SIPI_RECEIVED, "MP states");

/* KVM_GET_MSR_INDEX_LIST answers -E2BIG with the count when the buffer is too small. */
static int kvm_msr_list_init(struct hv *hv)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	_cleanup_free_ struct kvm_msr_list *list = NULL;
	int r;

	r = kvm_ioctl_retry(hv->kvm_fd, KVM_GET_MSR_INDEX_LIST, (unsigned long)&probe);
	if (r < 0 && r != -E2BIG)
		return r;
	if (probe.nmsrs == 0 || probe.nmsrs > KVM_MAX_MSR_LIST) {
		log_debug("kvm: KVM_GET_MSR_INDEX_LIST: %u MSRs", probe.nmsrs);
		return probe.nmsrs ? -E2BIG : 0;
	}
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(list->indices[0]));
	if (!list)
		return -ENOMEM;
	list->nmsrs = probe.nmsrs;
	r = kvm_ioctl_retry(hv->kvm_fd, KVM_GET_MSR_INDEX_LIST, (unsigned long)list);
	if (r < 0)
		return r;
	hv->msr_list = calloc(list->nmsrs, sizeof(hv->msr_list[0]));
	if (!hv->msr_list)
		return -ENOMEM;
	memcpy(hv->msr_list, list->indices, list->nmsrs * sizeof(hv->msr_list[0]));
	hv->n_msr_list = list->nmsrs;
	return 0;
}

void kvm_state_init(struct hv *hv)
{
	/* KVM_CAP_XSAVE2 is asked of the VM: the size depends on the VM's permitted features. */
	int x2 = ioctl(hv->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	if (x2 >= XSAVE_LEGACY_SIZE)
		hv->xsave_size = (uint32_t)x2;
	else if (kvm_check_extension(hv, KVM_CAP_XSAVE))
		hv->xsave_size = XSAVE_LEGACY_SIZE;
	else
		hv->xsave_size = 0;
	/* Snapshots need the list; a VM that only boots does not: its absence fails the state
	 * calls, not hv_create(). */
	hv->state_err = kvm_msr_list_init(hv);
	if (hv->state_err < 0)
		log_debug("kvm: KVM_GET_MSR_INDEX_LIST: %s", strerror(-hv->state_err));
}

/* The size of hv_vcpu_state.xsave on this host. */
static uint32_t kvm_fpu_state_size(const struct hv *hv)
{
	return hv->xsave_size ? hv->xsave_size : FXSAVE_SIZE;
}

static bool kvm_msr_listed(const struct hv *hv, uint32_t index)
{
	for (unsigned i = 0; i < hv->n_msr_list; i++)
		if (hv->msr_list[i] == index)
			return true;
	return false;
}

/* FXSAVE image <-> struct kvm_fpu (the offsets are the SDM's FXSAVE layout, 64-bit form). */
static void fpu_to_fxsave(uint8_t *fx, const struct kvm_fpu *f)
{
	memset(fx, 0, FXSAVE_SIZE);
	memcpy(fx + 0, &f->fcw, 2);
	memcpy(fx + 2, &f->fsw, 2);
	fx[4] = f->ftwx;
	memcpy(fx + 6, &f->last_opcode, 2);
	memcpy(fx + 8, &f->last_ip, 8);
	memcpy(fx + 16, &f->last_dp, 8);
	memcpy(fx + 24, &f->mxcsr, 4);
	memcpy(fx + 32, f->fpr, sizeof(f->fpr));
	memcpy(fx + 160, f->xmm, sizeof(f->xmm));
}

static void fpu_from_fxsave(struct kvm_fpu *f, const uint8_t *fx)
{
	memset(f, 0, sizeof(*f));
	memcpy(&f->fcw, fx + 0, 2);
	memcpy(&f->fsw, fx + 2, 2);
	f->ftwx = fx[4];
	memcpy(&f->last_opcode, fx + 6, 2);
	memcpy(&f->last_ip, fx + 8, 8);
	memcpy(&f->last_dp, fx + 16, 8);
	memcpy(&f->mxcsr, fx + 24, 4);
	memcpy(f->fpr, fx + 32, sizeof(f->fpr));
	memcpy(f->xmm, fx + 160, sizeof(f->xmm));
}

static int kvm_get_fpu_state(struct hv_vcpu *vcpu, struct hv_vcpu_state *st)
{
	uint32_t size = vcpu->hv->xsave_size;
	struct kvm_fpu fpu;
	int r;

	if (size > HV_XSAVE_MAX) {
		log_debug("kvm: XSAVE area of %u bytes, more than %u", size, HV_XSAVE_MAX);
		return -E2BIG;
	}
	if (size == 0) {
		r = kvm_ioctl_retry(vcpu->fd, KVM_GET_FPU, (unsigned long)&fpu);
		if (r < 0)
			return r;
		fpu_to_fxsave(st->xsave, &fpu);
		st->xsave_size = FXSAVE_SIZE;
		return 0;
	}
	/* KVM writes xsave_size bytes (struct kvm_xsave is only the first 4096). */
	r = kvm_ioctl_retry(vcpu->fd, size > XSAVE_LEGACY_SIZE ? KVM_GET_XSAVE2 : KVM_GET_XSAVE,
			    (unsigned long)st->xsave);
	if (r < 0)
		return r;
	st->xsave_size = size;
	return 0;
}

static int kvm_set_fpu_state(struct hv_vcpu *vcpu, const struct hv_vcpu_state *st)
{
	struct kvm_fpu fpu;
	int r;

	if (vcpu->hv->xsave_size == 0) {
		fpu_from_fxsave(&fpu, st->xsave);
		r = kvm_ioctl_retry(vcpu->fd, KVM_SET_FPU, (unsigned long)&fpu);
	} else {
		/* KVM reads the size KVM_CAP_XSAVE2 gave, which st->xsave_size equals. */
		r = kvm_ioctl_retry(vcpu->fd, KVM_SET_XSAVE, (unsigned long)st->xsave);
	}
	return r < 0 ? r : 0;
}

/*
 * Reads every MSR of the kernel's list, in batches. KVM_GET_MSRS stops at the first MSR it
 * refuses (one this vCPU's CPUID does not have) and returns how many it read: that one is
 * skipped and not saved.
 */
static int kvm_get_msrs(struct hv_vcpu *vcpu, struct hv_vcpu_state *st)
{
	const struct hv *hv = vcpu->hv;
	_cleanup_free_ struct kvm_msrs *k = NULL;
	unsigned n = 0;

	k = calloc(1, sizeof(*k) + KVM_MAX_IO_MSRS * sizeof(k->entries[0]));
	if (!k)
		return -ENOMEM;
	for (unsigned i = 0; i < hv->n_msr_list;) {
		unsigned batch = MIN(hv->n_msr_list - i, KVM_MAX_IO_MSRS);
		int r;

		memset(k->entries, 0, batch * sizeof(k->entries[0]));
		k->nmsrs = batch;
		for (unsigned j = 0; j < batch; j++)
			k->entries[j].index = hv->msr_list[i + j];
		r = kvm_ioctl_retry(vcpu->fd, KVM_GET_MSRS, (unsigned long)k);
		if (r < 0)
			return r;
		if (n + (unsigned)r > HV_MAX_MSRS) {
			log_debug("kvm: vcpu %u: more than %u MSRs to save", vcpu->index,
				  HV_MAX_MSRS);
			return -E2BIG;
		}
		for (int j = 0; j < r; j++)
			st->msrs[n++] = (struct hv_msr){ .index = k->entries[j].index,
							 .value = k->entries[j].data };
		i += (unsigned)r;
		if ((unsigned)r < batch)
			i++;
	}
	st->nr_msrs = n;
	return 0;
}

/* Sets the saved MSRs, the TSC deadline last: KVM arms it against the TSC, set before it. */
static int kvm_set_msrs_state(struct hv_vcpu *vcpu, const struct hv_vcpu_state *st)
{
	_cleanup_free_ struct hv_msr *m = calloc(HV_MAX_MSRS, sizeof(*m));
	unsigned n = 0;

	if (!m)
		return -ENOMEM;
	for (unsigned i = 0; i < st->nr_msrs; i++)
		if (st->msrs[i].index != MSR_IA32_TSC_DEADLINE)
			m[n++] = st->msrs[i];
	for (unsigned i = 0; i < st->nr_msrs; i++)
		if (st->msrs[i].index == MSR_IA32_TSC_DEADLINE)
			m[n++] = st->msrs[i];
	return kvm_set_msrs(vcpu, m, n);
}

static void events_from_kvm(struct hv_vcpu_events *e, const struct kvm_vcpu_events *k)
{
	*e = (struct hv_vcpu_events){
		.exception_injected = k->exception.injected,
		.exception_nr = k->exception.nr,
		.exception_has_error_code = k->exception.has_error_code,
		/* Without KVM_CAP_EXCEPTION_PAYLOAD, KVM reports a pending exception as injected
		 * as well and ignores `pending` on set: keep the state as KVM will load it. */
		.exception_pending =
			(k->flags & KVM_VCPUEVENT_VALID_PAYLOAD) ? k->exception.pending : 0,
		.exception_error_code = k->exception.error_code,
		.exception_has_payload = k->exception_has_payload,
		.exception_payload = k->exception_payload,
		.interrupt_injected = k->interrupt.injected,
		.interrupt_nr = k->interrupt.nr,
		.interrupt_soft = k->interrupt.soft,
		.interrupt_shadow = k->interrupt.shadow,
		.nmi_injected = k->nmi.injected,
		.nmi_pending = k->nmi.pending,
		.nmi_masked = k->nmi.masked,
		.sipi_vector = k->sipi_vector,
		.smi_smm = k->smi.smm,
		.smi_pending = k->smi.pending,
		.smi_inside_nmi = k->smi.smm_inside_nmi,
		.smi_latched_init = k->smi.latched_init,
		.triple_fault_pending = k->triple_fault.pending,
		.flags = k->flags,
	};
}

static void events_to_kvm(struct kvm_vcpu_events *k, const struct hv_vcpu_events *e)
{
	memset(k, 0, sizeof(*k));
	k->exception.injected = e->exception_injected;
	k->exception.nr = e->exception_nr;
	k->exception.has_error_code = e->exception_has_error_code;
	k->exception.pending = e->exception_pending;
	k->exception.error_code = e->exception_error_code;
	k->exception_has_payload = e->exception_has_payload;
	k->exception_payload = e->exception_payload;
	k->interrupt.injected = e->interrupt_injected;
	k->interrupt.nr = e->interrupt_nr;
	k->interrupt.soft = e->interrupt_soft;
	k->interrupt.shadow = e->interrupt_shadow;
	k->nmi.injected = e->nmi_injected;
	k->nmi.pending = e->nmi_pending;
	k->nmi.masked = e->nmi_masked;
	k->sipi_vector = e->sipi_vector;
	k->smi.smm = e->smi_smm;
	k->smi.pending = e->smi_pending;
	k->smi.smm_inside_nmi = e->smi_inside_nmi;
	k->smi.latched_init = e->smi_latched_init;
	k->triple_fault.pending = e->triple_fault_pending;
	k->flags = e->flags;
}

/* XCRs, LAPIC, debug registers and pending events. */
static int kvm_get_misc(struct hv_vcpu *vcpu, struct hv_vcpu_state *st)
{
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events ev;
	struct kvm_debugregs dr;
	struct kvm_xcrs xcrs;
	int r;

	st->nr_xcrs = 0;
	if (vcpu->hv->xsave_size) {
		r = kvm_ioctl_retry(vcpu->fd, KVM_GET_XCRS, (unsigned long)&xcrs);
		if (r < 0)
			return r;
		if (xcrs.nr_xcrs > HV_MAX_XCRS)
			return -E2BIG;
		for (unsigned i = 0; i < xcrs.nr_xcrs; i++)
			st->xcrs[i] = (struct hv_msr){ .index = xcrs.xcrs[i].xcr,
						       .value = xcrs.xcrs[i].value };
		st->nr_xcrs = xcrs.nr_xcrs;
	}
	r = kvm_ioctl_retry(vcpu->fd, KVM_GET_LAPIC, (unsigned long)&lapic);
	if (r < 0)
		return r;
	memcpy(st->lapic, lapic.regs, HV_LAPIC_SIZE);
	r = kvm_ioctl_retry(vcpu->fd, KVM_GET_DEBUGREGS, (unsigned long)&dr);
	if (r < 0)
		return r;
	memcpy(st->db, dr.db, sizeof(st->db));
	st->dr6 = dr.dr6;
	st->dr7 = dr.dr7;
	/* Last: the events pending now, after everything above was read. */
	r = kvm_ioctl_retry(vcpu->fd, KVM_GET_VCPU_EVENTS, (unsigned long)&ev);
	if (r < 0)
		return r;
	events_from_kvm(&st->events, &ev);
	return 0;
}

int hv_vcpu_get_state(struct hv_vcpu *vcpu, struct hv_vcpu_state *ret)
{
	_cleanup_free_ struct hv_vcpu_state *st = calloc(1, sizeof(*st));
	struct kvm_mp_state mp;
	struct kvm_sregs sregs;
	int r;

	if (vcpu->hv->state_err < 0)
		return vcpu->hv->state_err;
	if (!st)
		return -ENOMEM;
	/* First: KVM_GET_MP_STATE processes a pending INIT/SIPI, which changes the rest. */
	r = kvm_ioctl_retry(vcpu->fd, KVM_GET_MP_STATE, (unsigned long)&mp);
	if (r < 0)
		return r;
	st->mp_state = mp.mp_state;
	r = hv_vcpu_get_regs(vcpu, &st->regs);
	if (r < 0)
		return r;
	r = kvm_ioctl_retry(vcpu->fd, KVM_GET_SREGS, (unsigned long)&sregs);
	if (r < 0)
		return r;
	kvm_sregs_from(&st->sregs, &sregs);
	memcpy(st->interrupt_bitmap, sregs.interrupt_bitmap, sizeof(st->interrupt_bitmap));
	r = kvm_get_fpu_state(vcpu, st);
	if (r < 0)
		return r;
	r = kvm_get_msrs(vcpu, st);
	if (r < 0)
		return r;
	r = kvm_get_misc(vcpu, st);
	if (r < 0)
		return r;
	memcpy(ret, st, sizeof(*st));
	return 0;
}

/* What KVM would take on trust, or that this host cannot load. */
static int kvm_vcpu_state_check(const struct hv_vcpu *vcpu, const struct hv_vcpu_state *st)
{
	const struct hv *hv = vcpu->hv;

	if (hv->state_err < 0)
		return hv->state_err;
	if (st->xsave_size != kvm_fpu_state_size(hv) || st->xsave_size > HV_XSAVE_MAX) {
		log_debug("kvm: vcpu %u: saved FPU state of %u bytes, this host's is %u",
			  vcpu->index, st->xsave_size, kvm_fpu_state_size(hv));
		return -EINVAL;
	}
	if (st->nr_xcrs > HV_MAX_XCRS || (st->nr_xcrs && !hv->xsave_size))
		return -EINVAL;
	if (st->nr_msrs > HV_MAX_MSRS)
		return -EINVAL;
	for (unsigned i = 0; i < st->nr_msrs; i++) {
		if (!kvm_msr_listed(hv, st->msrs[i].index)) {
			log_debug("kvm: vcpu %u: saved MSR 0x%x is not one KVM saves", vcpu->index,
				  st->msrs[i].index);
			return -EINVAL;
		}
	}
	if (st->mp_state > HV_MP_STATE_SIPI_RECEIVED || (st->events.flags & ~EVENT_FLAGS))
		return -EINVAL;
	return 0;
}

static int kvm_set_misc(struct hv_vcpu *vcpu, const struct hv_vcpu_state *st)
{
	struct kvm_debugregs dr = { .dr6 = st->dr6, .dr7 = st->dr7 };
	struct kvm_lapic_state lapic;
	struct kvm_xcrs xcrs = { .nr_xcrs = st->nr_xcrs };
	int r;

	if (st->nr_xcrs) {
		for (unsigned i = 0; i < st->nr_xcrs; i++)
			xcrs.xcrs[i] = (struct kvm_xcr){ .xcr = st->xcrs[i].index,
							 .value = st->xcrs[i].value };
		r = kvm_ioctl_retry(vcpu->fd, KVM_SET_XCRS, (unsigned long)&xcrs);
		if (r < 0)
			return r;
	}
	memcpy(dr.db, st->db, sizeof(dr.db));
	r = kvm_ioctl_retry(vcpu->fd, KVM_SET_DEBUGREGS, (unsigned long)&dr);
	if (r < 0)
		return r;
	memcpy(lapic.regs, st->lapic, HV_LAPIC_SIZE);
	r = kvm_ioctl_retry(vcpu->fd, KVM_SET_LAPIC, (unsigned long)&lapic);
	return r < 0 ? r : 0;
}

/*
 * The order is Firecracker's and Cloud Hypervisor's: the APIC base (sregs) before the LAPIC,
 * the LAPIC before the MSRs (the TSC deadline timer lives in it), and the MP state and the
 * pending events last, so that nothing set after them clears them.
 */
int hv_vcpu_set_state(struct hv_vcpu *vcpu, const struct hv_vcpu_state *st)
{
	struct kvm_mp_state mp = { .mp_state = st->mp_state };
	struct kvm_vcpu_events ev;
	struct kvm_sregs sregs = { 0 };
	int r;

	r = kvm_vcpu_state_check(vcpu, st);
	if (r < 0)
		return r;
	kvm_sregs_to(&sregs, &st->sregs);
	memcpy(sregs.interrupt_bitmap, st->interrupt_bitmap, sizeof(sregs.interrupt_bitmap));
	r = kvm_ioctl_retry(vcpu->fd, KVM_SET_SREGS, (unsigned long)&sregs);
	if (r < 0)
		return r;
	r = hv_vcpu_set_regs(vcpu, &st->regs);
	if (r < 0)
		return r;
	r = kvm_set_fpu_state(vcpu, st);
	if (r < 0)
		return r;
	r = kvm_set_misc(vcpu, st);
	if (r < 0)
		return r;
	r = kvm_set_msrs_state(vcpu, st);
	if (r < 0)
		return r;
	r = kvm_ioctl_retry(vcpu->fd, KVM_SET_MP_STATE, (unsigned long)&mp);
	if (r < 0)
		return r;
	events_to_kvm(&ev, &st->events);
	r = kvm_ioctl_retry(vcpu->fd, KVM_SET_VCPU_EVENTS, (unsigned long)&ev);
	return r < 0 ? r : 0;
}

/* The VM: PICs, IOAPIC, PIT, clock. */

static void pic_from_kvm(struct hv_pic_state *p, const struct kvm_pic_state *k)
{
	*p = (struct hv_pic_state){
		.last_irr = k->last_irr,
		.irr = k->irr,
		.imr = k->imr,
		.isr = k->isr,
		.priority_add = k->priority_add,
		.irq_base = k->irq_base,
		.read_reg_select = k->read_reg_select,
		.poll = k->poll,
		.special_mask = k->special_mask,
		.init_state = k->init_state,
		.auto_eoi = k->auto_eoi,
		.rotate_on_auto_eoi = k->rotate_on_auto_eoi,
		.special_fully_nested_mode = k->special_fully_nested_mode,
		.init4 = k->init4,
		.elcr = k->elcr,
		.elcr_mask = k->elcr_mask,
	};
}

static void pic_to_kvm(struct kvm_pic_state *k, const struct hv_pic_state *p)
{
	*k = (struct kvm_pic_state){
		.last_irr = p->last_irr,
		.irr = p->irr,
		.imr = p->imr,
		.isr = p->isr,
		.priority_add = p->priority_add,
		.irq_base = p->irq_base,
		.read_reg_select = p->read_reg_select,
		.poll = p->poll,
		.special_mask = p->special_mask,
		.init_state = p->init_state,
		.auto_eoi = p->auto_eoi,
		.rotate_on_auto_eoi = p->rotate_on_auto_eoi,
		.special_fully_nested_mode = p->special_fully_nested_mode,
		.init4 = p->init4,
		.elcr = p->elcr,
		.elcr_mask = p->elcr_mask,
	};
}

static void pit_from_kvm(struct hv_pit_channel *c, const struct kvm_pit_channel_state *k)
{
	*c = (struct hv_pit_channel){
		.count = k->count,
		.latched_count = k->latched_count,
		.count_latched = k->count_latched,
		.status_latched = k->status_latched,
		.status = k->status,
		.read_state = k->read_state,
		.write_state = k->write_state,
		.write_latch = k->write_latch,
		.rw_mode = k->rw_mode,
		.mode = k->mode,
		.bcd = k->bcd,
		.gate = k->gate,
		.count_load_time = (uint64_t)k->count_load_time,
	};
}

static void pit_to_kvm(struct kvm_pit_channel_state *k, const struct hv_pit_channel *c)
{
	*k = (struct kvm_pit_channel_state){
		.count = c->count,
		.latched_count = c->latched_count,
		.count_latched = c->count_latched,
		.status_latched = c->status_latched,
		.status = c->status,
		.read_state = c->read_state,
		.write_state = c->write_state,
		.write_latch = c->write_latch,
		.rw_mode = c->rw_mode,
		.mode = c->mode,
		.bcd = c->bcd,
		.gate = c->gate,
		/* KVM restarts the count at KVM_SET_PIT2 with its own clock: kept for the
		 * record only. */
		.count_load_time = (int64_t)c->count_load_time,
	};
}

static int kvm_irqchip(struct hv *hv, unsigned long req, struct kvm_irqchip *chip)
{
	int r = kvm_ioctl_retry(hv->vm_fd, req, (unsigned long)chip);
	return r < 0 ? r : 0;
}

int hv_vm_get_state(struct hv *hv, struct hv_vm_state *ret)
{
	struct kvm_irqchip chip[3] = { { .chip_id = KVM_IRQCHIP_PIC_MASTER },
				       { .chip_id = KVM_IRQCHIP_PIC_SLAVE },
				       { .chip_id = KVM_IRQCHIP_IOAPIC } };
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock = { 0 };
	struct hv_vm_state st = { 0 };
	int r;

	if (!hv->caps.irqchip)
		return -EOPNOTSUPP;
	for (unsigned i = 0; i < 3; i++) {
		r = kvm_irqchip(hv, KVM_GET_IRQCHIP, &chip[i]);
		if (r < 0)
			return r;
	}
	pic_from_kvm(&st.pic[0], &chip[0].chip.pic);
	pic_from_kvm(&st.pic[1], &chip[1].chip.pic);
	st.ioapic.base_address = chip[2].chip.ioapic.base_address;
	st.ioapic.ioregsel = chip[2].chip.ioapic.ioregsel;
	st.ioapic.id = chip[2].chip.ioapic.id;
	st.ioapic.irr = chip[2].chip.ioapic.irr;
	for (unsigned i = 0; i < HV_IOAPIC_PINS; i++)
		st.ioapic.redirtbl[i] = chip[2].chip.ioapic.redirtbl[i].bits;
	r = kvm_ioctl_retry(hv->vm_fd, KVM_GET_PIT2, (unsigned long)&pit);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < 3; i++)
		pit_from_kvm(&st.pit[i], &pit.channels[i]);
	st.pit_flags = pit.flags;
	r = kvm_ioctl_retry(hv->vm_fd, KVM_GET_CLOCK, (unsigned long)&clock);
	if (r < 0)
		return r;
	st.clock = clock.clock;
	*ret = st;
	return 0;
}

/* Values KVM would misuse or that no KVM writes; @live is the PICs as KVM built them. */
static int kvm_vm_state_check(const struct hv_vm_state *st, const struct kvm_irqchip *live)
{
	for (unsigned i = 0; i < 2; i++) {
		const struct hv_pic_state *p = &st->pic[i];
		/* The edge/level mask is fixed by the chipset (KVM: 0xf8, 0xde). */
		if (p->elcr_mask != live[i].chip.pic.elcr_mask || p->init_state > 3 ||
		    p->read_reg_select > 1 || p->poll > 1 || p->special_mask > 1 ||
		    p->auto_eoi > 1 || p->rotate_on_auto_eoi > 1 ||
		    p->special_fully_nested_mode > 1 || p->init4 > 1)
			return -EINVAL;
	}
	if (st->ioapic.base_address != IOAPIC_BASE || st->ioapic.ioregsel > 0xff)
		return -EINVAL;
	if (st->pit_flags & ~PIT_FLAGS)
		return -EINVAL;
	for (unsigned i = 0; i < 3; i++) {
		const struct hv_pit_channel *c = &st->pit[i];
		/* count 0 stands for 0x10000; access modes 1..3 (0 before programming) and
		 * their read/write phases 0..4; counter modes 0..5, 0xff before programming. */
		if (c->count > 0x10000 || c->rw_mode > 3 || c->read_state > 4 ||
		    c->write_state > 4 || (c->mode > 5 && c->mode != PIT_MODE_UNSET) ||
		    c->bcd > 1 || c->gate > 1 || c->count_latched > 3 || c->status_latched > 1)
			return -EINVAL;
	}
	return 0;
}

int hv_vm_set_state(struct hv *hv, const struct hv_vm_state *st)
{
	struct kvm_irqchip chip[3] = { { .chip_id = KVM_IRQCHIP_PIC_MASTER },
				       { .chip_id = KVM_IRQCHIP_PIC_SLAVE },
				       { .chip_id = KVM_IRQCHIP_IOAPIC } };
	struct kvm_pit_state2 pit = { .flags = st->pit_flags };
	/* No KVM_CLOCK_REALTIME: the guest's clock goes on from the saved value, without the
	 * time the snapshot spent on disk (Firecracker, Cloud Hypervisor). KVM_CLOCK_TSC_STABLE
	 * is only an answer of KVM_GET_CLOCK (the master clock is in use): KVM keeps the clock
	 * stable across vCPUs itself once it is set. */
	struct kvm_clock_data clock = { .clock = st->clock };
	int r;

	if (!hv->caps.irqchip)
		return -EOPNOTSUPP;
	/* The PIT is created in the background (hv_create()). */
	r = hv_ready(hv);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < 2; i++) {
		r = kvm_irqchip(hv, KVM_GET_IRQCHIP, &chip[i]);
		if (r < 0)
			return r;
	}
	r = kvm_vm_state_check(st, chip);
	if (r < 0)
		return r;
	pic_to_kvm(&chip[0].chip.pic, &st->pic[0]);
	pic_to_kvm(&chip[1].chip.pic, &st->pic[1]);
	chip[2].chip.ioapic.base_address = st->ioapic.base_address;
	chip[2].chip.ioapic.ioregsel = st->ioapic.ioregsel;
	chip[2].chip.ioapic.id = st->ioapic.id;
	chip[2].chip.ioapic.irr = st->ioapic.irr;
	for (unsigned i = 0; i < HV_IOAPIC_PINS; i++)
		chip[2].chip.ioapic.redirtbl[i].bits = st->ioapic.redirtbl[i];
	for (unsigned i = 0; i < 3; i++) {
		r = kvm_irqchip(hv, KVM_SET_IRQCHIP, &chip[i]);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < 3; i++)
		pit_to_kvm(&pit.channels[i], &st->pit[i]);
	r = kvm_ioctl_retry(hv->vm_fd, KVM_SET_PIT2, (unsigned long)&pit);
	if (r < 0)
		return r;
	r = kvm_ioctl_retry(hv->vm_fd, KVM_SET_CLOCK, (unsigned long)&clock);
	return r < 0 ? r : 0;
}
