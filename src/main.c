/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cubicle: argv → config → VM → event loop. Every error that a user, a file or the guest can
 * cause ends here as one line on stderr and exit status 1.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "config/config.h"
#include "core/loop.h"
#include "core/vm.h"
#include "security/seccomp.h"
#include "util/log.h"
#include "util/util.h"
#include "version.h"

struct vmm {
	struct loop *loop;
	struct vm *vm;
	int sigfd;
};

static void vmm_on_vm_exit(void *opaque, enum vm_exit why)
{
	struct vmm *vmm = opaque;
	char err[CONFIG_ERR_MAX];

	switch (why) {
	case VM_EXIT_POWEROFF:
		log_info("vm: guest powered off");
		loop_stop(vmm->loop, 0);
		return;
	case VM_EXIT_RESET:
		log_info("vm: guest reset, rebooting");
		if (vm_reboot(vmm->vm, err, sizeof(err)) < 0) {
			log_error("reboot failed: %s", err);
			loop_stop(vmm->loop, 1);
		}
		return;
	case VM_EXIT_ERROR:
		loop_stop(vmm->loop, 1);
		return;
	}
}

static void vmm_on_signal(void *opaque, uint32_t events)
{
	struct vmm *vmm = opaque;
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

static int vmm_run(const struct vm_config *cfg)
{
	struct vmm vmm = { .sigfd = -1 };
	char err[CONFIG_ERR_MAX] = "";
	sigset_t set;
	int r;

	vmm.sigfd = vmm_signals(&set);
	if (vmm.sigfd < 0) {
		log_error("cannot set up signal handling: %s", strerror(-vmm.sigfd));
		return 1;
	}
	r = loop_create(&vmm.loop);
	if (r >= 0)
		r = loop_add_fd(vmm.loop, vmm.sigfd, EPOLLIN, vmm_on_signal, &vmm);
	if (r < 0) {
		log_error("cannot create the event loop: %s", strerror(-r));
		close(vmm.sigfd);
		loop_destroy(vmm.loop);
		return 1;
	}

	int status = 1;
	r = vm_create(cfg, vmm.loop, vmm_on_vm_exit, &vmm, &vmm.vm, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
	} else if ((r = vm_boot(vmm.vm)) < 0) {
		log_error("cannot boot the VM: %s", strerror(-r));
	} else if ((r = seccomp_apply(SECCOMP_THREAD_VMM, cfg->seccomp, "vmm")) < 0) {
		log_error("cannot install the seccomp filter of the VMM thread: %s", strerror(-r));
	} else {
		seccomp_selftest(SECCOMP_THREAD_VMM);
		status = loop_run(vmm.loop);
		if (status < 0) {
			log_error("event loop failed: %s", strerror(-status));
			status = 1;
		}
	}
	vm_destroy(vmm.vm);
	loop_destroy(vmm.loop);
	close(vmm.sigfd);
	return status;
}

int main(int argc, char *argv[])
{
	struct cli_args args;
	char err[CONFIG_ERR_MAX] = "";
	int status;

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
	if (vm_config_validate(&args.cfg, err, sizeof(err)) < 0) {
		log_error("%s", err);
		cli_args_free(&args);
		return 1;
	}
	if (vm_config_assign_ids(&args.cfg) < 0) {
		log_error("out of memory");
		cli_args_free(&args);
		return 1;
	}
	status = vmm_run(&args.cfg);
	cli_args_free(&args);
	log_close_file();
	return status;
}
