/* SPDX-License-Identifier: Apache-2.0 */
#include "core/vcpu.h"
#include "security/seccomp.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86/x86.h"
#include "hv/hv.h"
#include "mem/guest_mem.h"
#include "util/log.h"
#include "util/util.h"

int vcpu_group_init(struct vcpu_group *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	atomic_init(&g->pause, false);
	atomic_init(&g->stop, false);
	return 0;
}

void vcpu_group_destroy(struct vcpu_group *g)
{
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
}

/* Logs what the hypervisor could not run: exit reason, RIP, instruction bytes, registers. */
static void vcpu_report_failure(struct vcpu *v, const struct hv_exit *ex)
{
	struct hv_regs r;
	struct hv_sregs s;
	char bytes[16 * 3 + 1] = "";
	uint8_t insn[16];
	unsigned insn_len = 0;

	if (hv_vcpu_get_regs(v->hv, &r) < 0 || hv_vcpu_get_sregs(v->hv, &s) < 0) {
		log_error("vcpu%u: %s (code %" PRIu32 "); registers unavailable", v->index,
			  ex->description, ex->code);
		return;
	}
	if (ex->insn_len) {
		insn_len = MIN(ex->insn_len, sizeof(insn));
		memcpy(insn, ex->insn, insn_len);
	} else {
		uint64_t gpa;
		if (x86_gva_to_gpa(v->group->mem, &s, s.cs.base + r.rip, &gpa) == 0)
			for (; insn_len < sizeof(insn); insn_len++)
				if (guest_mem_read(v->group->mem, gpa + insn_len, &insn[insn_len],
						   1))
					break;
	}
	for (unsigned i = 0; i < insn_len; i++)
		snprintf(bytes + 3 * i, 4, "%02x ", insn[i]);

	log_error("vcpu%u: the hypervisor cannot run the guest: %s (code %" PRIu32 ")", v->index,
		  ex->description, ex->code);
	log_error("vcpu%u: RIP %#018" PRIx64 "  CS %#06x  CPL %u  instruction bytes: %s", v->index,
		  r.rip, s.cs.selector, s.cs.dpl, insn_len ? bytes : "(not readable)");
	log_error("vcpu%u: RAX %016" PRIx64 " RBX %016" PRIx64 " RCX %016" PRIx64
		  " RDX %016" PRIx64,
		  v->index, r.rax, r.rbx, r.rcx, r.rdx);
	log_error("vcpu%u: RSI %016" PRIx64 " RDI %016" PRIx64 " RSP %016" PRIx64
		  " RBP %016" PRIx64,
		  v->index, r.rsi, r.rdi, r.rsp, r.rbp);
	log_error("vcpu%u: R8  %016" PRIx64 " R9  %016" PRIx64 " R10 %016" PRIx64
		  " R11 %016" PRIx64,
		  v->index, r.r8, r.r9, r.r10, r.r11);
	log_error("vcpu%u: R12 %016" PRIx64 " R13 %016" PRIx64 " R14 %016" PRIx64
		  " R15 %016" PRIx64,
		  v->index, r.r12, r.r13, r.r14, r.r15);
	log_error("vcpu%u: RFLAGS %016" PRIx64 " CR0 %016" PRIx64 " CR3 %016" PRIx64
		  " CR4 %016" PRIx64 " EFER %016" PRIx64,
		  v->index, r.rflags, s.cr0, s.cr3, s.cr4, s.efer);
}

/* Parks while the group is paused; returns false when the thread must end. */
static bool vcpu_wait_requests(struct vcpu *v)
{
	struct vcpu_group *g = v->group;

	if (atomic_load(&g->stop))
		return false;
	if (!atomic_load(&g->pause))
		return true;
	pthread_mutex_lock(&g->lock);
	g->parked++;
	pthread_cond_broadcast(&g->cond);
	while (atomic_load(&g->pause) && !atomic_load(&g->stop))
		pthread_cond_wait(&g->cond, &g->lock);
	g->parked--;
	pthread_mutex_unlock(&g->lock);
	return !atomic_load(&g->stop);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vcpu_group *g = v->group;
	bool first = true;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", v->index);
	pthread_setname_np(pthread_self(), name);
	if (hv_vcpu_thread_init() < 0)
		log_warn("vcpu%u: cannot set up kick signal", v->index);
	int r = seccomp_apply(SECCOMP_THREAD_VCPU, g->seccomp, name);
	if (r < 0) {
		/* The user asked for confinement: never run the guest without it. */
		log_error("vcpu%u: cannot install the seccomp filter: %s", v->index, strerror(-r));
		g->event(g->opaque, v->index, VCPU_EVENT_ERROR);
		goto out;
	}
	seccomp_selftest(SECCOMP_THREAD_VCPU);

	for (;;) {
		struct hv_exit ex;

		hv_vcpu_clear_kick(v->hv);
		if (!vcpu_wait_requests(v))
			break;
		if (first && v->index == 0) {
			uint64_t now = time_now_ns();
			log_info("vcpu0: first guest entry at +%.3f ms after start (monotonic "
				 "%" PRIu64 ".%09" PRIu64 " s)",
				 (now - g->start_ns) / 1e6, now / 1000000000, now % 1000000000);
		}
		first = false;
		r = hv_vcpu_run(v->hv, &ex);
		if (r < 0) {
			log_error("vcpu%u: running the guest failed: %s", v->index, strerror(-r));
			g->event(g->opaque, v->index, VCPU_EVENT_ERROR);
			break;
		}
		switch (ex.reason) {
		case HV_EXIT_KICKED:
		case HV_EXIT_HALT:
			continue;
		case HV_EXIT_POWEROFF:
			g->event(g->opaque, v->index, VCPU_EVENT_POWEROFF);
			break;
		case HV_EXIT_SHUTDOWN:
			log_info("vcpu%u: triple fault, resetting the VM", v->index);
			/* fall through */
		case HV_EXIT_RESET:
			g->event(g->opaque, v->index, VCPU_EVENT_RESET);
			break;
		case HV_EXIT_INTERNAL:
		case HV_EXIT_FAIL_ENTRY:
			vcpu_report_failure(v, &ex);
			g->event(g->opaque, v->index, VCPU_EVENT_ERROR);
			break;
		}
		break;
	}

out:
	if (log_get_level() >= LOG_DEBUG) {
		struct hv_regs regs;
		struct hv_sregs sr;
		if (hv_vcpu_get_regs(v->hv, &regs) == 0 && hv_vcpu_get_sregs(v->hv, &sr) == 0)
			log_debug("vcpu%u: stopped at RIP %#" PRIx64 " CS %#x CR0 %#" PRIx64
				  " EFER %#" PRIx64,
				  v->index, regs.rip, sr.cs.selector, sr.cr0, sr.efer);
	}
	pthread_mutex_lock(&g->lock);
	g->running--;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	pthread_attr_t attr;
	int r;

	pthread_attr_init(&attr);
	/* vCPU threads use little stack: device handlers are small and never recurse. */
	pthread_attr_setstacksize(&attr, 256 * KiB);
	pthread_mutex_lock(&v->group->lock);
	v->group->running++;
	pthread_mutex_unlock(&v->group->lock);
	r = -pthread_create(&v->thread, &attr, vcpu_thread, v);
	pthread_attr_destroy(&attr);
	if (r < 0) {
		pthread_mutex_lock(&v->group->lock);
		v->group->running--;
		pthread_mutex_unlock(&v->group->lock);
		return r;
	}
	v->started = true;
	return 0;
}

void vcpu_group_pause(struct vcpu_group *g, struct vcpu *vcpus, unsigned n)
{
	atomic_store(&g->pause, true);
	for (unsigned i = 0; i < n; i++)
		if (vcpus[i].started)
			hv_vcpu_kick(vcpus[i].hv);
	pthread_mutex_lock(&g->lock);
	while (g->parked < g->running)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

void vcpu_group_resume(struct vcpu_group *g)
{
	pthread_mutex_lock(&g->lock);
	atomic_store(&g->pause, false);
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

void vcpu_group_stop(struct vcpu_group *g, struct vcpu *vcpus, unsigned n)
{
	pthread_mutex_lock(&g->lock);
	atomic_store(&g->stop, true);
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	for (unsigned i = 0; i < n; i++) {
		if (!vcpus[i].started)
			continue;
		hv_vcpu_kick(vcpus[i].hv);
		pthread_join(vcpus[i].thread, NULL);
		vcpus[i].started = false;
	}
}
