/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control plane (DESIGN §2): the VMM (what the API commands act on: one VM config and at
 * most one VM, the event monitor) and the HTTP API server on a Unix socket (Cloud Hypervisor
 * v28's routes under /api/v1/). The server's thread only parses requests and posts commands
 * to the VMM loop; every vmm_* function runs on the loop thread.
 */
#ifndef CUBICLE_API_API_H
#define CUBICLE_API_API_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

struct loop;
struct vmm;
struct api_server;

/*
 * The VMM on @loop. @event_monitor is NULL or "path=P" / "fd=N" (--event-monitor; the file is
 * opened here, created if missing, appended to). @seccomp (--seccomp) is given to every VM
 * created through the API (it is not part of VmConfig's JSON). Emits Cloud Hypervisor's
 * "vmm starting" event. On failure returns -errno with one line in @err.
 */
int vmm_create(struct loop *loop, const char *event_monitor, enum seccomp_mode seccomp,
	       struct vmm **ret, char *err, size_t errlen);
/* Shuts down and frees the VM if any, closes the monitor. Accepts NULL; returns NULL. */
struct vmm *vmm_destroy(struct vmm *vmm);

/*
 * --prewarm: prepares the hypervisor side of a VM with up to @ram bytes of RAM below 3 GiB
 * (vm_prewarm_create()), for the first VM this VMM builds (vm.boot, vm.restore,
 * vm.resume-from-snapshot). Returns 0 or -errno (the VMM works without it).
 */
int vmm_prewarm(struct vmm *vmm, uint64_t ram);

/*
 * vm.create then vm.boot for the command line: @cfg (validated, ids assigned) is moved into
 * the VMM on success (the caller's copy is zeroed) and left to the caller on failure.
 * Returns 0 or -errno with one line in @err.
 */
int vmm_create_and_boot(struct vmm *vmm, struct vm_config *cfg, char *err, size_t errlen);

/* Whether the VMM (loop) thread has confined itself with Landlock (--landlock, vm.create's
 * landlock_enable, or a restored config's). Any thread may ask. */
bool vmm_landlocked(struct vmm *vmm);

/*
 * --restore: builds the VM from the snapshot at @source_url ("file:///dir") instead of
 * booting one, and leaves it Paused (Cloud Hypervisor v28): vm.resume runs it. Returns 0 or
 * -errno with one line in @err.
 */
int vmm_restore(struct vmm *vmm, const char *source_url, bool prefault, char *err, size_t errlen);

/* Bounds on what one client can make the server hold (named, documented in docs/api.md). */
#define API_MAX_BODY	    (1u << 20) /* bytes of one request body */
#define API_MAX_CONNECTIONS 32	       /* open client connections */
#define API_MAX_FDS	    16	       /* fds (SCM_RIGHTS) with one request */
#define API_CONN_TIMEOUT_S  10	       /* an idle or stuck connection is closed after this */
#define API_CMD_TIMEOUT_MS  30000      /* a command the VMM loop has not answered by then: 504 */
/* vm.waitstart's wait for the guest's start signal: by default, and at most (below
 * API_CMD_TIMEOUT_MS, so that the answer is the command's own 504). */
#define VMM_WAITSTART_DEFAULT_MS 10000
#define VMM_WAITSTART_MAX_MS	 25000

/*
 * Starts the API server on its own thread. @spec is "path=P", "fd=N" or "P" (--api-socket).
 * With a path the socket is created (mode 0600; a stale socket file is replaced, a socket in
 * use or any other file refused); with fd=N, N is an already listening Unix stream socket. The
 * thread installs the API seccomp filter (@seccomp) before it serves anything; if it cannot, it
 * stops @loop with code 1. Returns 0 or -errno with one line in @err. vmm.shutdown stops @loop
 * (code 0) once its answer is sent.
 */
int api_server_start(struct vmm *vmm, struct loop *loop, const char *spec,
		     enum seccomp_mode seccomp, struct api_server **ret, char *err, size_t errlen);
/* Stops the thread, closes every connection (and fds they brought), removes the socket file
 * it created. Call before vmm_destroy(). Accepts NULL; returns NULL. */
struct api_server *api_server_stop(struct api_server *srv);

#endif
