/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the fake backend (mock.c) recorded, for unit tests: the interrupts raised and the vCPU
 * state that was set. hv_vcpu_get/set_state() and hv_vm_get/set_state() round-trip: get
 * returns what set stored (a new vCPU or VM starts from KVM's reset values), and the registers
 * and MSRs of a vCPU state are the ones below. Only tests include this header. Every pointer returned stays valid until
 * the vCPU or the hv is destroyed.
 */
#ifndef CUBICLE_HV_MOCK_H
#define CUBICLE_HV_MOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "hv/hv.h"
#include "hv/routes.h"

/* Distinct MSR indices remembered per vCPU (a later write to the same index overwrites). */
#define HV_MOCK_MAX_MSRS 256

/* hv_irq_line() calls, and the arguments of the last one (either pointer may be NULL). */
unsigned hv_mock_irq_count(struct hv *hv);
bool hv_mock_irq_last(struct hv *hv, uint32_t *ret_gsi, bool *ret_level);
/* The current level of a line: the last value passed for @gsi (false if never set). */
bool hv_mock_irq_level(struct hv *hv, uint32_t gsi);

/* hv_msi() calls, and the arguments of the last one. */
unsigned hv_mock_msi_count(struct hv *hv);
bool hv_mock_msi_last(struct hv *hv, uint64_t *ret_addr, uint32_t *ret_data);

/* The routing table as the KVM backend would install it: the legacy irqchip routes, then the
 * installed MSI routes. @ret needs room for HV_ROUTES_MAX entries; returns the count. */
unsigned hv_mock_routes(struct hv *hv, struct hv_route *ret);
/* The installed MSI route of @gsi; false when none. */
bool hv_mock_msi_route(struct hv *hv, uint32_t gsi, uint64_t *ret_addr, uint32_t *ret_data);

/* irqfd bindings now in place, and the GSI eventfd @fd is bound to (false when unbound). */
unsigned hv_mock_irqfd_count(struct hv *hv);
bool hv_mock_irqfd(struct hv *hv, int fd, uint32_t *ret_gsi);

/* ioeventfd bindings now in place, and the one at @addr (false when none). */
unsigned hv_mock_ioeventfd_count(struct hv *hv);
bool hv_mock_ioeventfd(struct hv *hv, uint64_t addr, int *ret_fd, unsigned *ret_len);

/* The registers as last set (or the x86 reset state before any set). Writable: a test may
 * also prepare what hv_vcpu_get_regs() returns. */
struct hv_regs *hv_mock_vcpu_regs(struct hv_vcpu *vcpu);
struct hv_sregs *hv_mock_vcpu_sregs(struct hv_vcpu *vcpu);

/* MSRs set so far, in first-set order; @ret_n gets the count. */
const struct hv_msr *hv_mock_vcpu_msrs(struct hv_vcpu *vcpu, unsigned *ret_n);
/* Looks up one MSR; false when it was never set. */
bool hv_mock_vcpu_msr(struct hv_vcpu *vcpu, uint32_t index, uint64_t *ret_value);

/* The CPUID table of the last hv_vcpu_set_cpuid(); @ret_n gets the count (0 if never set). */
const struct hv_cpuid_entry *hv_mock_vcpu_cpuid(struct hv_vcpu *vcpu, unsigned *ret_n);

/* Whether hv_vcpu_reset_fpu() / hv_vcpu_setup_lapic() were called. */
bool hv_mock_vcpu_fpu_reset(struct hv_vcpu *vcpu);
bool hv_mock_vcpu_lapic_setup(struct hv_vcpu *vcpu);

/* hv_vcpu_kick() calls. */
unsigned hv_mock_vcpu_kick_count(struct hv_vcpu *vcpu);

/* What the next hv_vcpu_run() returns when no kick is pending (default HV_EXIT_HALT). */
void hv_mock_vcpu_set_exit(struct hv_vcpu *vcpu, enum hv_exit_reason reason);

/* Feeds a guest access through the io ops given to hv_set_io_ops(), as a vCPU exit would. An
 * access with no ops set reads as all ones. */
void hv_mock_pio(struct hv *hv, uint16_t port, bool is_write, uint8_t *data, unsigned len);
void hv_mock_mmio(struct hv *hv, uint64_t addr, bool is_write, uint8_t *data, unsigned len);

#endif
