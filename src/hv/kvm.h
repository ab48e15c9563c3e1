/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to the KVM backend (kvm.c: the VM, RAM, interrupts, routing; kvm_vcpu.c: vCPUs,
 * their state and KVM_RUN): the structs both halves share. Nothing outside src/hv/ includes it.
 */
#ifndef CUBICLE_HV_KVM_H
#define CUBICLE_HV_KVM_H

#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include "hv/hv.h"
#include "hv/routes.h"
#include "util/util.h"

/* Guest addresses of the pages KVM needs on Intel for real mode and the TSS; just below the
 * 4 GiB boundary, inside the 32-bit PCI hole, where nothing else is placed. */
#define KVM_TSS_ADDR	      0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

/* RAM slots per VM: a few RAM ranges (below/above the PCI hole) plus hotplug. */
#define KVM_MAX_RAM_SLOTS 32
/* Growth bound of the KVM_GET_SUPPORTED_CPUID buffer. */
#define KVM_MAX_SUPPORTED_CPUID 4096
/* Bound of the KVM_GET_MSR_INDEX_LIST answer (Linux 6.x lists about 100). */
#define KVM_MAX_MSR_LIST 1024
/* The kernel refuses KVM_GET/SET_MSRS batches of 256 entries or more (MAX_IO_MSRS). */
#define KVM_MAX_IO_MSRS 255

#define PAGE_SIZE_4K   4096ULL
#define HUGE_PAGE_SIZE (2 * MiB)

struct kvm_ram_slot {
	uint64_t gpa;
	uint64_t size;
	void *host;
	int memfd;     /* -1 unless HV_RAM_SHARED; kept for sharing with vhost-user backends */
	uint32_t id;   /* KVM's slot number */
	bool borrowed; /* hv_mem_map(): the memory is the caller's, never unmapped here */
	bool reserved; /* hv_ram_reserve(): registered, @host not backed until hv_ram_add*() */
};

/*
 * Set-up ioctls that mostly wait in the kernel (KVM_CREATE_PIT2 starts a kthread,
 * KVM_SET_USER_MEMORY_REGION waits for an SRCU grace period: milliseconds on some hosts) run
 * on short-lived threads while the VMM builds the rest of the VM; hv_ready() joins them.
 */
struct kvm_deferred {
	pthread_t thread;
	int fd;
	unsigned long req;
	union {
		struct kvm_pit_config pit;
		struct kvm_userspace_memory_region region;
	} arg;
	int result;
	const char *what;
};
#define KVM_MAX_DEFERRED (KVM_MAX_RAM_SLOTS + 1)

struct hv {
	int kvm_fd;
	int vm_fd;
	size_t run_size;
	struct hv_caps caps;
	struct hv_io_ops ops;
	void *opaque;
	bool pvm; /* kvm_pvm: software virtualisation with quirks of its own (kvm_pvm_quirks) */

	pthread_mutex_t slots_lock;
	struct kvm_ram_slot slots[KVM_MAX_RAM_SLOTS];
	unsigned n_slots;

	struct kvm_deferred deferred[KVM_MAX_DEFERRED]; /* under slots_lock */
	unsigned n_deferred;

	pthread_mutex_t routes_lock; /* guards routes and KVM_SET_GSI_ROUTING */
	struct hv_route_table routes;

	/* For vCPU state (kvm_state.c), fixed at hv_create(): the MSRs KVM can save and
	 * restore (KVM_GET_MSR_INDEX_LIST), and the XSAVE area's size in bytes, 0 without
	 * XSAVE (the FPU then goes through KVM_GET_FPU as a legacy FXSAVE image). */
	uint32_t *msr_list;
	unsigned n_msr_list;
	uint32_t xsave_size;
	int state_err; /* -errno when the list could not be had: vCPU state calls fail */

	/* KVM_GET_SUPPORTED_CPUID's answer (~0.4 ms on kvm_pvm hosts), asked once per VM: every
	 * vCPU's CPUID is built from it. NULL until the first hv_supported_cpuid(). */
	struct hv_cpuid_entry *cpuid;
	unsigned n_cpuid;
};

struct hv_vcpu {
	struct hv *hv;
	unsigned index;
	int fd;
	struct kvm_run *run;
	/* The thread inside hv_vcpu_run(), valid while @in_run is set (kick target). */
	pthread_t thread;
	atomic_bool in_run;
};

static inline int kvm_ioctl_retry(int fd, unsigned long req, unsigned long arg)
{
	int r;

	do {
		r = ioctl(fd, req, arg);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

static inline int kvm_check_extension(struct hv *hv, long cap)
{
	int r = ioctl(hv->kvm_fd, KVM_CHECK_EXTENSION, cap);
	return r < 0 ? 0 : r;
}

/* kvm_vcpu.c: conversions shared with kvm_state.c. */
void kvm_sregs_from(struct hv_sregs *ret, const struct kvm_sregs *k);
void kvm_sregs_to(struct kvm_sregs *k, const struct hv_sregs *s);
/* KVM_SET_MSRS in batches the kernel accepts; -EINVAL when it refuses one. */
int kvm_set_msrs(struct hv_vcpu *vcpu, const struct hv_msr *msrs, unsigned n);

/* kvm_state.c: fills hv->msr_list and hv->xsave_size (hv_create()); a failure is kept in
 * hv->state_err for the state calls. */
void kvm_state_init(struct hv *hv);

static inline struct kvm_cpuid2 *kvm_cpuid2_alloc(unsigned n)
{
	struct kvm_cpuid2 *c;

	c = calloc(1, sizeof(*c) + (size_t)n * sizeof(c->entries[0]));
	if (c)
		c->nent = n;
	return c;
}

#endif
