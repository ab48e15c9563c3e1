/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hypervisor's state in state.json (DESIGN §7): a vCPU's (struct hv_vcpu_state) and the
 * VM's in-kernel platform (struct hv_vm_state) as named, typed fields (util/state.h).
 *
 * A vCPU is {"regs": {"rax": "0x..", ..., "rip", "rflags"}, "sregs": {"cs": {segment}, ...,
 * "gdt": {"base", "limit"}, "idt", "cr0", ..., "apic_base"}, "interrupt_bitmap": [4 x u64],
 * "xsave": hex (512..HV_XSAVE_MAX bytes), "xcrs": [{"index", "value"}], "msrs": [{"index",
 * "value"}], "lapic": hex (HV_LAPIC_SIZE bytes), "mp_state", "events": {"exception_injected",
 * ..., "flags"}, "db": [4 x u64], "dr6", "dr7"}. The VM is {"pic_master": {...},
 * "pic_slave": {...}, "ioapic": {"base_address", "ioregsel", "id", "irr", "redirtbl": [24]},
 * "pit": [3 x {channel}], "pit_flags", "clock"}.
 *
 * The loaders read hostile input: every count is bounded (HV_MAX_MSRS, HV_MAX_XCRS, the three
 * PIT channels), every value is range-checked against its C type; what only the hypervisor can
 * judge (is this MSR one it knows?) is checked again by hv_vcpu_set_state().
 */
#ifndef CUBICLE_SNAPSHOT_STATE_HV_H
#define CUBICLE_SNAPSHOT_STATE_HV_H

#include <stddef.h>

#include <jansson.h>

#include "hv/hv.h"

/* Smallest saved FPU state: a legacy FXSAVE image. */
#define SNAPSHOT_XSAVE_MIN 512

/* Writes @st into object @obj (its keys are replaced). Returns 0 or -ENOMEM. */
int snapshot_save_vcpu(json_t *obj, const struct hv_vcpu_state *st);
/*
 * Reads a vCPU's state written by snapshot_save_vcpu() into @ret (about 24 KiB). Returns 0,
 * -EINVAL with one line in @err naming the field ("msrs[3]: field 'value': expected ..."), or
 * -ENOMEM. @ret is unchanged on failure.
 */
int snapshot_load_vcpu(const json_t *obj, struct hv_vcpu_state *ret, char *err, size_t errlen);

/* The same for the VM's platform state. */
int snapshot_save_vm(json_t *obj, const struct hv_vm_state *st);
int snapshot_load_vm(const json_t *obj, struct hv_vm_state *ret, char *err, size_t errlen);

#endif
