/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hypervisor's vCPU and VM state as named fields (state_hv.h).
 */
#include "snapshot/state_hv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/state.h"
#include "util/util.h"

static const struct state_field regs_fields[] = {
	STATE_U64(struct hv_regs, rax), STATE_U64(struct hv_regs, rbx),
	STATE_U64(struct hv_regs, rcx), STATE_U64(struct hv_regs, rdx),
	STATE_U64(struct hv_regs, rsi), STATE_U64(struct hv_regs, rdi),
	STATE_U64(struct hv_regs, rsp), STATE_U64(struct hv_regs, rbp),
	STATE_U64(struct hv_regs, r8),	STATE_U64(struct hv_regs, r9),
	STATE_U64(struct hv_regs, r10), STATE_U64(struct hv_regs, r11),
	STATE_U64(struct hv_regs, r12), STATE_U64(struct hv_regs, r13),
	STATE_U64(struct hv_regs, r14), STATE_U64(struct hv_regs, r15),
	STATE_U64(struct hv_regs, rip), STATE_U64(struct hv_regs, rflags),
};

static const struct state_field segment_fields[] = {
	STATE_U64(struct hv_segment, base),	STATE_U32(struct hv_segment, limit),
	STATE_U16(struct hv_segment, selector), STATE_U8(struct hv_segment, type),
	STATE_U8(struct hv_segment, present),	STATE_U8(struct hv_segment, dpl),
	STATE_U8(struct hv_segment, db),	STATE_U8(struct hv_segment, s),
	STATE_U8(struct hv_segment, l),		STATE_U8(struct hv_segment, g),
	STATE_U8(struct hv_segment, avl),	STATE_U8(struct hv_segment, unusable),
};

static const struct state_field dtable_fields[] = {
	STATE_U64(struct hv_dtable, base),
	STATE_U16(struct hv_dtable, limit),
};

static const struct state_field sregs_fields[] = {
	STATE_U64(struct hv_sregs, cr0),       STATE_U64(struct hv_sregs, cr2),
	STATE_U64(struct hv_sregs, cr3),       STATE_U64(struct hv_sregs, cr4),
	STATE_U64(struct hv_sregs, cr8),       STATE_U64(struct hv_sregs, efer),
	STATE_U64(struct hv_sregs, apic_base),
};

/* The objects inside "sregs": segments and descriptor tables, by name. */
static const struct {
	const char *name;
	size_t offset;
	bool dtable;
} sregs_parts[] = {
#define SREGS_PART(m, dt)                            \
	{                                            \
#m, offsetof(struct hv_sregs, m), dt \
	}
	SREGS_PART(cs, false), SREGS_PART(ds, false), SREGS_PART(es, false), SREGS_PART(fs, false),
	SREGS_PART(gs, false), SREGS_PART(ss, false), SREGS_PART(tr, false), SREGS_PART(ldt, false),
	SREGS_PART(gdt, true), SREGS_PART(idt, true),
#undef SREGS_PART
};

static const struct state_field msr_fields[] = {
	STATE_U32(struct hv_msr, index),
	STATE_U64(struct hv_msr, value),
};

static const struct state_field events_fields[] = {
	STATE_U8(struct hv_vcpu_events, exception_injected),
	STATE_U8(struct hv_vcpu_events, exception_nr),
	STATE_U8(struct hv_vcpu_events, exception_has_error_code),
	STATE_U8(struct hv_vcpu_events, exception_pending),
	STATE_U32(struct hv_vcpu_events, exception_error_code),
	STATE_U8(struct hv_vcpu_events, exception_has_payload),
	STATE_U64(struct hv_vcpu_events, exception_payload),
	STATE_U8(struct hv_vcpu_events, interrupt_injected),
	STATE_U8(struct hv_vcpu_events, interrupt_nr),
	STATE_U8(struct hv_vcpu_events, interrupt_soft),
	STATE_U8(struct hv_vcpu_events, interrupt_shadow),
	STATE_U8(struct hv_vcpu_events, nmi_injected),
	STATE_U8(struct hv_vcpu_events, nmi_pending),
	STATE_U8(struct hv_vcpu_events, nmi_masked),
	STATE_U32(struct hv_vcpu_events, sipi_vector),
	STATE_U8(struct hv_vcpu_events, smi_smm),
	STATE_U8(struct hv_vcpu_events, smi_pending),
	STATE_U8(struct hv_vcpu_events, smi_inside_nmi),
	STATE_U8(struct hv_vcpu_events, smi_latched_init),
	STATE_U8(struct hv_vcpu_events, triple_fault_pending),
	STATE_U32(struct hv_vcpu_events, flags),
};

/* The flat members of a vCPU's state; the rest are objects, arrays and blobs. */
static const struct state_field vcpu_fields[] = {
	STATE_ARRAY(struct hv_vcpu_state, interrupt_bitmap, STATE_U64),
	STATE_BLOB(struct hv_vcpu_state, lapic),
	STATE_U32(struct hv_vcpu_state, mp_state),
	STATE_ARRAY(struct hv_vcpu_state, db, STATE_U64),
	STATE_U64(struct hv_vcpu_state, dr6),
	STATE_U64(struct hv_vcpu_state, dr7),
};

static const struct state_field pic_fields[] = {
	STATE_U8(struct hv_pic_state, last_irr),
	STATE_U8(struct hv_pic_state, irr),
	STATE_U8(struct hv_pic_state, imr),
	STATE_U8(struct hv_pic_state, isr),
	STATE_U8(struct hv_pic_state, priority_add),
	STATE_U8(struct hv_pic_state, irq_base),
	STATE_U8(struct hv_pic_state, read_reg_select),
	STATE_U8(struct hv_pic_state, poll),
	STATE_U8(struct hv_pic_state, special_mask),
	STATE_U8(struct hv_pic_state, init_state),
	STATE_U8(struct hv_pic_state, auto_eoi),
	STATE_U8(struct hv_pic_state, rotate_on_auto_eoi),
	STATE_U8(struct hv_pic_state, special_fully_nested_mode),
	STATE_U8(struct hv_pic_state, init4),
	STATE_U8(struct hv_pic_state, elcr),
	STATE_U8(struct hv_pic_state, elcr_mask),
};

static const struct state_field ioapic_fields[] = {
	STATE_U64(struct hv_ioapic_state, base_address),
	STATE_U32(struct hv_ioapic_state, ioregsel),
	STATE_U32(struct hv_ioapic_state, id),
	STATE_U32(struct hv_ioapic_state, irr),
	STATE_ARRAY(struct hv_ioapic_state, redirtbl, STATE_U64),
};

static const struct state_field pit_fields[] = {
	STATE_U32(struct hv_pit_channel, count),
	STATE_U16(struct hv_pit_channel, latched_count),
	STATE_U8(struct hv_pit_channel, count_latched),
	STATE_U8(struct hv_pit_channel, status_latched),
	STATE_U8(struct hv_pit_channel, status),
	STATE_U8(struct hv_pit_channel, read_state),
	STATE_U8(struct hv_pit_channel, write_state),
	STATE_U8(struct hv_pit_channel, write_latch),
	STATE_U8(struct hv_pit_channel, rw_mode),
	STATE_U8(struct hv_pit_channel, mode),
	STATE_U8(struct hv_pit_channel, bcd),
	STATE_U8(struct hv_pit_channel, gate),
	STATE_U64(struct hv_pit_channel, count_load_time),
};

static const struct state_field vm_fields[] = {
	STATE_U32(struct hv_vm_state, pit_flags),
	STATE_U64(struct hv_vm_state, clock),
};

/* Puts "@where: " before the line a getter left in @err. Returns -EINVAL. */
static int fail_in(char *err, size_t errlen, const char *fmt, ...)
{
	char where[64], line[256];
	va_list ap;

	if (!errlen)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(where, sizeof(where), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "%s: %s", where, err);
	snprintf(err, errlen, "%s", line);
	return -EINVAL;
}

static int save_object(json_t *obj, const char *key, const struct state_field *f, size_t n,
		       const void *src)
{
	json_t *o = state_add_object(obj, key);
	return o ? state_save_fields(o, f, n, src) : -ENOMEM;
}

static int load_object(const json_t *obj, const char *key, const struct state_field *f, size_t n,
		       void *dst, char *err, size_t errlen)
{
	const json_t *o;
	int r;

	r = state_get_object(obj, key, &o, err, errlen);
	if (r < 0)
		return r;
	r = state_load_fields(o, f, n, dst, err, errlen);
	return r == -EINVAL ? fail_in(err, errlen, "%s", key) : r;
}

/* An array of {"index", "value"} objects: MSRs and XCRs. */
static int save_msrs(json_t *obj, const char *key, const struct hv_msr *msrs, unsigned n)
{
	json_t *a = state_add_array(obj, key);

	if (!a)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		json_t *e = state_append_object(a);
		if (!e || state_save_fields(e, msr_fields, ARRAY_SIZE(msr_fields), &msrs[i]) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int load_msrs(const json_t *obj, const char *key, unsigned max, struct hv_msr *ret,
		     uint32_t *ret_n, char *err, size_t errlen)
{
	const json_t *a;
	size_t n;
	int r;

	r = state_get_array(obj, key, max, &a, err, errlen);
	if (r < 0)
		return r;
	n = json_array_size(a);
	for (size_t i = 0; i < n; i++) {
		r = state_load_fields(json_array_get(a, i), msr_fields, ARRAY_SIZE(msr_fields),
				      &ret[i], err, errlen);
		if (r < 0)
			return r == -EINVAL ? fail_in(err, errlen, "%s[%zu]", key, i) : r;
	}
	*ret_n = (uint32_t)n;
	return 0;
}

static int save_sregs(json_t *obj, const struct hv_sregs *s)
{
	json_t *o = state_add_object(obj, "sregs");
	int r;

	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < ARRAY_SIZE(sregs_parts); i++) {
		const void *p = (const uint8_t *)s + sregs_parts[i].offset;
		if (sregs_parts[i].dtable)
			r = save_object(o, sregs_parts[i].name, dtable_fields,
					ARRAY_SIZE(dtable_fields), p);
		else
			r = save_object(o, sregs_parts[i].name, segment_fields,
					ARRAY_SIZE(segment_fields), p);
		if (r < 0)
			return r;
	}
	return state_save_fields(o, sregs_fields, ARRAY_SIZE(sregs_fields), s);
}

static int load_sregs(const json_t *obj, struct hv_sregs *s, char *err, size_t errlen)
{
	const json_t *o;
	int r;

	r = state_get_object(obj, "sregs", &o, err, errlen);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(sregs_parts); i++) {
		void *p = (uint8_t *)s + sregs_parts[i].offset;
		if (sregs_parts[i].dtable)
			r = load_object(o, sregs_parts[i].name, dtable_fields,
					ARRAY_SIZE(dtable_fields), p, err, errlen);
		else
			r = load_object(o, sregs_parts[i].name, segment_fields,
					ARRAY_SIZE(segment_fields), p, err, errlen);
		if (r < 0)
			return r == -EINVAL ? fail_in(err, errlen, "sregs") : r;
	}
	r = state_load_fields(o, sregs_fields, ARRAY_SIZE(sregs_fields), s, err, errlen);
	return r == -EINVAL ? fail_in(err, errlen, "sregs") : r;
}

int snapshot_save_vcpu(json_t *obj, const struct hv_vcpu_state *st)
{
	if (save_object(obj, "regs", regs_fields, ARRAY_SIZE(regs_fields), &st->regs) < 0 ||
	    save_sregs(obj, &st->sregs) < 0 ||
	    state_set_blob(obj, "xsave", st->xsave, MIN(st->xsave_size, HV_XSAVE_MAX)) < 0 ||
	    save_msrs(obj, "xcrs", st->xcrs, MIN(st->nr_xcrs, HV_MAX_XCRS)) < 0 ||
	    save_msrs(obj, "msrs", st->msrs, MIN(st->nr_msrs, HV_MAX_MSRS)) < 0 ||
	    save_object(obj, "events", events_fields, ARRAY_SIZE(events_fields), &st->events) < 0 ||
	    state_save_fields(obj, vcpu_fields, ARRAY_SIZE(vcpu_fields), st) < 0)
		return -ENOMEM;
	return 0;
}

/* Everything but the FPU area, which snapshot_load_vcpu() reads. */
static int load_vcpu(const json_t *obj, struct hv_vcpu_state *st, char *err, size_t errlen)
{
	int r;

	r = load_object(obj, "regs", regs_fields, ARRAY_SIZE(regs_fields), &st->regs, err, errlen);
	if (r < 0)
		return r;
	r = load_sregs(obj, &st->sregs, err, errlen);
	if (r < 0)
		return r;
	r = load_msrs(obj, "xcrs", HV_MAX_XCRS, st->xcrs, &st->nr_xcrs, err, errlen);
	if (r < 0)
		return r;
	r = load_msrs(obj, "msrs", HV_MAX_MSRS, st->msrs, &st->nr_msrs, err, errlen);
	if (r < 0)
		return r;
	r = load_object(obj, "events", events_fields, ARRAY_SIZE(events_fields), &st->events, err,
			errlen);
	if (r < 0)
		return r;
	r = state_load_fields(obj, vcpu_fields, ARRAY_SIZE(vcpu_fields), st, err, errlen);
	if (r < 0)
		return r;
	if (st->mp_state > HV_MP_STATE_SIPI_RECEIVED) {
		snprintf(err, errlen, "field 'mp_state': expected an integer 0..%u",
			 HV_MP_STATE_SIPI_RECEIVED);
		return -EINVAL;
	}
	return 0;
}

int snapshot_load_vcpu(const json_t *obj, struct hv_vcpu_state *ret, char *err, size_t errlen)
{
	_cleanup_free_ struct hv_vcpu_state *st = calloc(1, sizeof(*st));
	size_t len;
	int r;

	if (!st)
		return -ENOMEM;
	if (!json_is_object(obj)) {
		snprintf(err, errlen, "vcpu: expected an object");
		return -EINVAL;
	}
	r = load_vcpu(obj, st, err, errlen);
	if (r < 0)
		return r;
	r = state_get_blob_max(obj, "xsave", st->xsave, HV_XSAVE_MAX, &len, err, errlen);
	if (r < 0)
		return r;
	if (len < SNAPSHOT_XSAVE_MIN) {
		snprintf(err, errlen, "field 'xsave': expected %u to %u bytes", SNAPSHOT_XSAVE_MIN,
			 HV_XSAVE_MAX);
		return -EINVAL;
	}
	st->xsave_size = (uint32_t)len;
	memcpy(ret, st, sizeof(*st));
	return 0;
}

int snapshot_save_vm(json_t *obj, const struct hv_vm_state *st)
{
	json_t *pit = NULL;

	if (save_object(obj, "pic_master", pic_fields, ARRAY_SIZE(pic_fields), &st->pic[0]) < 0 ||
	    save_object(obj, "pic_slave", pic_fields, ARRAY_SIZE(pic_fields), &st->pic[1]) < 0 ||
	    save_object(obj, "ioapic", ioapic_fields, ARRAY_SIZE(ioapic_fields), &st->ioapic) < 0 ||
	    !(pit = state_add_array(obj, "pit")))
		return -ENOMEM;
	for (size_t i = 0; i < ARRAY_SIZE(st->pit); i++) {
		json_t *c = state_append_object(pit);
		if (!c || state_save_fields(c, pit_fields, ARRAY_SIZE(pit_fields), &st->pit[i]) < 0)
			return -ENOMEM;
	}
	return state_save_fields(obj, vm_fields, ARRAY_SIZE(vm_fields), st);
}

int snapshot_load_vm(const json_t *obj, struct hv_vm_state *ret, char *err, size_t errlen)
{
	struct hv_vm_state st = { 0 };
	const json_t *pit;
	int r;

	if (!json_is_object(obj)) {
		snprintf(err, errlen, "vm: expected an object");
		return -EINVAL;
	}
	r = load_object(obj, "pic_master", pic_fields, ARRAY_SIZE(pic_fields), &st.pic[0], err,
			errlen);
	if (r < 0)
		return r;
	r = load_object(obj, "pic_slave", pic_fields, ARRAY_SIZE(pic_fields), &st.pic[1], err,
			errlen);
	if (r < 0)
		return r;
	r = load_object(obj, "ioapic", ioapic_fields, ARRAY_SIZE(ioapic_fields), &st.ioapic, err,
			errlen);
	if (r < 0)
		return r;
	r = state_get_array(obj, "pit", ARRAY_SIZE(st.pit), &pit, err, errlen);
	if (r < 0)
		return r;
	if (json_array_size(pit) != ARRAY_SIZE(st.pit)) {
		snprintf(err, errlen, "field 'pit': expected an array of %zu entries",
			 ARRAY_SIZE(st.pit));
		return -EINVAL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(st.pit); i++) {
		r = state_load_fields(json_array_get(pit, i), pit_fields, ARRAY_SIZE(pit_fields),
				      &st.pit[i], err, errlen);
		if (r < 0)
			return r == -EINVAL ? fail_in(err, errlen, "pit[%zu]", i) : r;
	}
	r = state_load_fields(obj, vm_fields, ARRAY_SIZE(vm_fields), &st, err, errlen);
	if (r < 0)
		return r;
	*ret = st;
	return 0;
}
