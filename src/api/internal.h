/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to the api module: the commands the server posts to the VMM loop, the route
 * table, the VMM's command handlers and the event monitor.
 */
#ifndef CUBICLE_API_INTERNAL_H
#define CUBICLE_API_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/api.h"

/*
 * One API request on its way to the VMM loop and back. Shared by the API thread (which may
 * give up waiting) and the loop thread: two references, the last api_cmd_put() frees.
 */
struct api_cmd {
	atomic_int refs;
	struct vmm *vmm;
	const struct api_route *route;
	json_t *body; /* the parsed body (an object) or NULL */
	int fds[API_MAX_FDS];
	unsigned nr_fds; /* owned: a handler that keeps an fd sets its slot to -1 */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	unsigned status; /* HTTP status */
	char *resp;	 /* JSON text, or NULL for no body */
	bool stop_vmm;	 /* vmm.shutdown: stop the loop once the answer is out */
	bool deferred;	 /* the handler answers later (api_cmd_defer) */
	int wakefd;	 /* written when the answer is set (a suspended request), or -1 */
};

/* Sets the answer: @status with a JSON body {"error": "..."} (printf-style). Returns @status. */
unsigned api_cmd_error(struct api_cmd *cmd, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Sets the answer: @status with @body (stolen; NULL = no body). Returns @status, or 500 when
 * the body cannot be serialised. */
unsigned api_cmd_reply(struct api_cmd *cmd, unsigned status, json_t *body);
void api_cmd_put(struct api_cmd *cmd);
/*
 * For a handler that answers later without blocking the loop (vm.waitstart): takes a reference
 * and marks @cmd deferred; the handler then returns (its return value is not used) and
 * api_cmd_finish() is called later on the loop thread, after api_cmd_reply/api_cmd_error. The
 * API thread waits at most API_CMD_TIMEOUT_MS for it (then 504; finishing later is harmless).
 * A route that may defer is marked async: the server suspends its connection meanwhile
 * and serves other requests.
 */
void api_cmd_defer(struct api_cmd *cmd);
/* The answer is set: wakes the API thread waiting for it and drops the loop's reference. */
void api_cmd_finish(struct api_cmd *cmd);

enum api_body {
	API_BODY_NONE,	   /* a body is refused (400), as Cloud Hypervisor does */
	API_BODY_REQUIRED, /* a JSON object */
	API_BODY_OPTIONAL, /* a JSON object or nothing (cmd->body NULL) */
};

/* A route: runs on the loop thread, answers through api_cmd_error/api_cmd_reply. */
struct api_route {
	const char *name; /* "vm.boot": the path after /api/v1/ */
	const char *method;
	enum api_body body;
	unsigned (*run)(struct vmm *vmm, struct api_cmd *cmd);
	bool async; /* may answer late (api_cmd_defer); its connection is suspended
		     * while it waits, instead of holding the API thread */
};

const struct api_route *api_route_find(const char *name);

/* Command handlers (vmm.c). */
unsigned vmm_cmd_ping(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_shutdown_vmm(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_create(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_boot(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_info(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_counters(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_pause(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_resume(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_shutdown(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_reboot(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_delete(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_power_button(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_add_net(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_add_disk(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_add_pmem(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_add_vsock(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_snapshot(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_restore(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_pause2snapshot(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_resume_from_snapshot(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_waitstart(struct vmm *vmm, struct api_cmd *cmd);
/* The body of a route cubicle does not serve yet, parsed as Cloud Hypervisor would: 0, or
 * -EINVAL with one line in @err naming the field, or -ENOMEM (bodies.c). */
int api_body_check(const char *route, const json_t *body, char *err, size_t errlen);
/* Routes whose capability cubicle does not have yet: 400 for a malformed body, else 501 naming
 * the route. */
unsigned vmm_cmd_resize(struct vmm *vmm, struct api_cmd *cmd);
unsigned vmm_cmd_unsupported(struct vmm *vmm, struct api_cmd *cmd);

/*
 * The event monitor (--event-monitor): Cloud Hypervisor's events, as it writes them (pretty
 * JSON objects {"timestamp": {"secs", "nanos"}, "source", "event", "properties"}, each
 * followed by a blank line). Written from the loop thread without blocking it: what the
 * reader has not taken yet waits in a bounded buffer (EVENT_MAX_BUFFER), flushed when the fd
 * is writable; events that do not fit are dropped and counted.
 */
#define EVENT_MAX_BUFFER (256u << 10)

struct event_monitor;
int event_monitor_open(struct loop *loop, const char *spec, struct event_monitor **ret, char *err,
		       size_t errlen);
struct event_monitor *event_monitor_close(struct event_monitor *em);
/* Accepts a NULL monitor (no --event-monitor). @key/@value: one property, or NULL. */
void event_emit(struct event_monitor *em, const char *source, const char *event, const char *key,
		const char *value);

#endif
