/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vCPU threads (internal to core). One thread per vCPU loops in hv_vcpu_run(). Pause is a
 * request flag plus a kick; the thread parks until released. Stop ends the thread.
 */
#ifndef CUBICLE_CORE_VCPU_H
#define CUBICLE_CORE_VCPU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

struct hv;
struct hv_vcpu;
struct guest_mem;

/* What a vCPU thread reports when it stops running the guest by itself. */
enum vcpu_event {
	VCPU_EVENT_POWEROFF,
	VCPU_EVENT_RESET,
	VCPU_EVENT_ERROR,
};

/* Shared by all vCPUs of one VM. */
struct vcpu_group {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_bool pause; /* park at the next chance */
	atomic_bool stop;  /* leave the thread */
	unsigned parked;   /* under lock */
	unsigned running;  /* threads alive, under lock */
	uint64_t start_ns; /* the process's start, for the first-entry log line */
	struct guest_mem *mem;
	enum seccomp_mode seccomp; /* each vCPU thread confines itself before its first run */
	void (*event)(void *opaque, unsigned index, enum vcpu_event ev);
	void *opaque;
};

struct vcpu {
	struct vcpu_group *group;
	struct hv_vcpu *hv;
	unsigned index;
	pthread_t thread;
	bool started;
};

int vcpu_group_init(struct vcpu_group *g);
void vcpu_group_destroy(struct vcpu_group *g);

/* Starts the thread of @v. Returns 0 or -errno. */
int vcpu_start(struct vcpu *v);
/* Parks every started vCPU of @vcpus and waits until they are parked. */
void vcpu_group_pause(struct vcpu_group *g, struct vcpu *vcpus, unsigned n);
void vcpu_group_resume(struct vcpu_group *g);
/* Ends and joins every started thread. */
void vcpu_group_stop(struct vcpu_group *g, struct vcpu *vcpus, unsigned n);

#endif
