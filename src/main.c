/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cubicle: argv → config → VMM (VM booted or restored, API server) → event loop. Every error that a user, a file or the guest can
 * cause ends here as one line on stderr and exit status 1.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <malloc.h>
#include <unistd.h>

#include "api/api.h"
#include "config/config.h"
#include "core/loop.h"
#include "security/landlock.h"
#include "security/seccomp.h"
#include "util/log.h"
#include "util/util.h"
#include "version.h"

struct cli_vmm {
	struct loop *loop;
	int sigfd;
	struct vmm *vmm;
	struct landlock_follower landlock; /* the loop thread's */
};

/* The loop thread opens no file: once the VMM is under Landlock (at start from the command
 * line, or later by a command on the control thread), it follows with no file access. */
static void loop_follow_landlock(void *opaque)
{
	struct cli_vmm *cv = opaque;
	landlock_follow(&cv->landlock, vmm_landlocked(cv->vmm), "loop");
}

/* Before the loop thread's filter, with the control thread already started (it must not
 * inherit the loop's empty ruleset): the ruleset made, the command line's Landlock followed at
 * once, the API's after each command. */
static void loop_landlock_start(struct cli_vmm *cv, struct vmm *vmm)
{
	cv->vmm = vmm;
	landlock_follower_init(&cv->landlock);
	loop_follow_landlock(cv);
	loop_set_post_hook(cv->loop, loop_follow_landlock, cv);
}

static void vmm_on_signal(void *opaque, uint32_t events)
{
	struct cli_vmm *vmm = opaque;
	struct signalfd_siginfo si;

	if (read(vmm->sigfd, &si, sizeof(si)) != sizeof(si))
		return;
	log_info("received %s, shutting down", strsignal(si.ssi_signo));
	loop_stop(vmm->loop, 0);
}

/* The signals that end cubicle are read from a signalfd by the loop; every thread created
 * afterwards inherits them blocked. */
static int vmm_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGQUIT);
	signal(SIGPIPE, SIG_IGN);
	if (sigprocmask(SIG_BLOCK, set, NULL) < 0)
		return -errno;
	int fd = signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

/* The control thread's filter (core/loop.h: builds, rebuilds, snapshots, API commands). */
static int confine_control(void *opaque)
{
	const enum seccomp_mode *mode = opaque;
	int r = seccomp_apply(SECCOMP_THREAD_CTL, *mode, "ctl");
	if (r == 0)
		seccomp_selftest(SECCOMP_THREAD_CTL);
	return r;
}

struct teardown {
	struct api_server *api;
	struct vmm *vmm;
};

static void teardown(void *opaque)
{
	struct teardown *td = opaque;
	api_server_stop(td->api);
	vmm_destroy(td->vmm);
}

/* The VM from the command line (if a kernel was given), the API (if --api-socket), the loop. */
static int vmm_start(struct cli_args *args, struct vmm *vmm, struct loop *loop,
		     enum seccomp_mode seccomp, struct api_server **ret_api)
{
	char err[CONFIG_ERR_MAX] = "";
	bool api_first = args->api_socket && (args->cfg.landlock_enable || args->restore);
	int r;

	/* Under Landlock (--landlock, or a snapshot's config) the VMM may not create files
	 * outside the VM's own: the API socket is made first (its thread confines itself once
	 * the VMM is). */
	if (api_first) {
		r = api_server_start(vmm, loop, args->api_socket, seccomp, ret_api, err,
				     sizeof(err));
		if (r < 0) {
			log_error("%s", err);
			return r;
		}
	}
	if (args->cfg.payload.kernel) {
		r = vmm_create_and_boot(vmm, &args->cfg, err, sizeof(err));
		if (r < 0) {
			log_error("%s", err);
			return r;
		}
	}
	if (args->prewarm) {
		/* The slow set-up calls run in the background (hv_ready() joins them). */
		r = vmm_prewarm(vmm, args->prewarm);
		if (r < 0)
			log_warn("--prewarm: cannot prepare the hypervisor: %s (going on without)",
				 strerror(-r));
	}
	if (args->restore) {
		/* Cloud Hypervisor v28 allows it, but nothing could ever resume the VM. */
		if (!args->api_socket)
			log_warn("--restore without --api-socket: the restored VM stays Paused "
				 "and nothing can resume it");
		r = vmm_restore(vmm, args->restore, args->restore_prefault, err, sizeof(err));
		if (r < 0) {
			log_error("%s", err);
			return r;
		}
	}
	if (args->api_socket && !api_first) {
		r = api_server_start(vmm, loop, args->api_socket, seccomp, ret_api, err,
				     sizeof(err));
		if (r < 0) {
			log_error("%s", err);
			return r;
		}
	}
	return 0;
}

static int vmm_run(struct cli_args *args)
{
	struct cli_vmm cv = { .sigfd = -1, .landlock = { .fd = -1 } };
	struct vmm *vmm = NULL;
	struct api_server *api = NULL;
	char err[CONFIG_ERR_MAX] = "";
	sigset_t set;
	int r;

	cv.sigfd = vmm_signals(&set);
	if (cv.sigfd < 0) {
		log_error("cannot set up signal handling: %s", strerror(-cv.sigfd));
		return 1;
	}
	r = loop_create(&cv.loop);
	if (r >= 0)
		r = loop_add_fd(cv.loop, cv.sigfd, EPOLLIN, vmm_on_signal, &cv);
	if (r < 0) {
		log_error("cannot create the event loop: %s", strerror(-r));
		close(cv.sigfd);
		loop_destroy(cv.loop);
		return 1;
	}

	/* --seccomp: for every thread, also those of a VM created later through the API. */
	enum seccomp_mode seccomp = args->cfg.seccomp;
	int status = 1;
	r = vmm_create(cv.loop, args->event_monitor, seccomp, &vmm, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
	} else if (vmm_start(args, vmm, cv.loop, seccomp, &api) < 0) {
		/* reported */
	} else if ((r = loop_control_start(cv.loop, confine_control, &seccomp)) < 0) {
		log_error("cannot start the control thread: %s", strerror(-r));
	} else {
		loop_landlock_start(&cv, vmm);
		r = seccomp_apply(SECCOMP_THREAD_VMM, seccomp, "vmm");
		if (r < 0) {
			log_error("cannot install the seccomp filter of the VMM thread: %s",
				  strerror(-r));
		} else {
			seccomp_selftest(SECCOMP_THREAD_VMM);
			status = loop_run(cv.loop);
			if (status < 0) {
				log_error("event loop failed: %s", strerror(-status));
				status = 1;
			}
		}
	}
	/* The teardown closes, unmaps and unlinks: the control thread's work. */
	struct teardown td = { api, vmm };
	loop_control(cv.loop, teardown, &td);
	loop_destroy(cv.loop);
	landlock_follower_free(&cv.landlock);
	close(cv.sigfd);
	return status;
}

int main(int argc, char *argv[])
{
	struct cli_args args;
	char err[CONFIG_ERR_MAX] = "";
	int status;

	/* glibc loads the time zone on the first time conversion of the process (an open() of
	 * /etc/localtime), whichever thread does it: load it now, before any seccomp filter. */
	tzset();
	/* One malloc arena for every thread: each extra arena is address space and free memory of
	 * its own (density), and shrinking one reads /proc/sys/vm/overcommit_memory, an open() that
	 * the API, vCPU and worker filters forbid. No thread of cubicle allocates on a hot path. */
	mallopt(M_ARENA_MAX, 1);
	if (cli_parse(argc, argv, &args, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return 1;
	}
	if (args.help) {
		cli_print_help(stdout);
		cli_args_free(&args);
		return 0;
	}
	if (args.version) {
		printf("cubicle v%s\n", CUBICLE_VERSION);
		cli_args_free(&args);
		return 0;
	}
	log_set_level(MIN(LOG_WARN + args.verbosity, LOG_TRACE));
	if (args.log_file) {
		int r = log_open_file(args.log_file);
		if (r < 0) {
			log_error("--log-file: cannot open '%s': %s", args.log_file, strerror(-r));
			cli_args_free(&args);
			return 1;
		}
	}
	/* With only --api-socket, the VMM waits for vm.create (as Kata Containers starts it);
	 * with --restore the VM's config comes from the snapshot. */
	bool api_only = args.api_socket && !args.cfg.payload.kernel;
	if (!api_only && !args.restore && vm_config_validate(&args.cfg, err, sizeof(err)) < 0) {
		log_error("%s", err);
		cli_args_free(&args);
		return 1;
	}
	if (vm_config_assign_ids(&args.cfg) < 0) {
		log_error("out of memory");
		cli_args_free(&args);
		return 1;
	}
	status = vmm_run(&args);
	cli_args_free(&args);
	log_close_file();
	return status;
}
