/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP API server: one thread, libmicrohttpd driven from our own epoll loop.
 *
 * File descriptors (SCM_RIGHTS, e.g. TAP fds with vm.add-net, as Kata Containers sends them)
 * never reach libmicrohttpd, which reads with recv() and so would have the kernel drop them.
 * The thread therefore accepts connections itself and keeps each one until its first bytes
 * arrive; it then peeks at them with recvmsg(MSG_PEEK), which hands over duplicates of the
 * fds sent with those bytes, and only then gives the socket to libmicrohttpd
 * (MHD_add_connection). The fds stay with the connection until a request takes them; those
 * left are closed with the connection. A client sends the fds with the request's first bytes
 * on a new connection (what Kata and Cloud Hypervisor's ch-remote do); fds sent later on a
 * kept-alive connection are dropped by the kernel, never leaked. See docs/api.md.
 *
 * Requests are parsed here and posted to the VMM loop (loop_post); the thread waits for the
 * answer at most API_CMD_TIMEOUT_MS, except for an async route (vm.waitstart, which may answer
 * late): its connection is suspended and resumed once the answer is there. The loop never waits for a client: a slow client only
 * holds its own connection, closed after API_CONN_TIMEOUT_S.
 */
#include "api/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/loop.h"
#include "security/landlock.h"
#include "security/seccomp.h"
#include "util/log.h"
#include "util/util.h"

#define API_PREFIX "/api/v1/"

/* A connection accepted by the thread, until libmicrohttpd closes it. */
struct api_conn {
	int sock;	      /* -1: free slot */
	bool handed;	      /* given to libmicrohttpd */
	uint64_t deadline_ns; /* waiting for the first bytes until then */
	int fds[API_MAX_FDS];
	unsigned nr_fds;
};

struct api_server {
	struct vmm *vmm;
	struct loop *loop;
	int listen_fd;
	char *path; /* the socket file we created, removed at stop */
	int epfd;
	int wakefd;
	atomic_bool stopping;
	struct MHD_Daemon *mhd;
	struct api_req *pending; /* suspended requests of async routes (API thread only) */
	pthread_t thread;
	bool started;
	enum seccomp_mode seccomp;
	/* Landlock: the API thread never opens a file, so once the VMM is under Landlock it
	 * confines itself to none, before it handles anything more; the empty ruleset is made
	 * before its seccomp filter. */
	struct landlock_follower landlock; /* API thread only */
	struct api_conn conns[API_MAX_CONNECTIONS];
};

/* Per request (libmicrohttpd's con_cls). */
struct api_req {
	char *body;
	size_t len;
	bool answered; /* an early answer (413) is queued */
	bool stop_vmm;
	/* An async command on its way: the connection is suspended until it is done. */
	struct api_cmd *cmd;
	struct MHD_Connection *conn;
	uint64_t deadline_ns;
	bool suspended;
	struct api_req *next; /* in srv->pending while suspended */
};

static struct api_conn *conn_find(struct api_server *srv, int sock)
{
	for (unsigned i = 0; i < API_MAX_CONNECTIONS; i++)
		if (srv->conns[i].sock == sock)
			return &srv->conns[i];
	return NULL;
}

static void conn_release(struct api_conn *c)
{
	for (unsigned i = 0; i < c->nr_fds; i++)
		close(c->fds[i]);
	c->nr_fds = 0;
	c->sock = -1;
	c->handed = false;
}

static enum MHD_Result api_queue(struct MHD_Connection *c, unsigned status, char *json)
{
	struct MHD_Response *resp;

	if (json)
		resp = MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE);
	else
		resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(json);
		return MHD_NO;
	}
	if (json)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	enum MHD_Result r = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result api_fail(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum MHD_Result api_fail(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* The message may quote the client's URL or method: any byte that is not printable ASCII
	 * becomes '?', so the answer is always valid JSON (jansson refuses invalid UTF-8). */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	json_t *o = json_pack("{s:s}", "error", msg);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return api_queue(c, status, text);
}

/* On the loop thread. */
static void api_cmd_run(void *opaque)
{
	struct api_cmd *cmd = opaque;

	/* When the API thread gave up waiting (its client got 504), the command is not run. */
	if (atomic_load(&cmd->refs) > 1)
		cmd->route->run(cmd->vmm, cmd);
	if (cmd->deferred)
		api_cmd_put(cmd); /* the handler holds its own reference, and finishes later */
	else
		api_cmd_finish(cmd);
}

/* Posts @cmd to the loop: the loop holds a reference from here. 0 or -EAGAIN (queue full). */
static int api_cmd_post(struct api_server *srv, struct api_cmd *cmd)
{
	atomic_store(&cmd->refs, 2);
	int r = loop_post(srv->loop, api_cmd_run, cmd);
	if (r < 0)
		atomic_store(&cmd->refs, 1);
	return r;
}

/* Posts @cmd to the loop and waits for its answer; 0, or -ETIMEDOUT, -EAGAIN (queue full),
 * -ECANCELED (the server stops). */
static int api_cmd_exec(struct api_server *srv, struct api_cmd *cmd)
{
	struct timespec deadline;

	int r = api_cmd_post(srv, cmd);
	if (r < 0)
		return r;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	uint64_t end = deadline.tv_sec * 1000000000ull + deadline.tv_nsec +
		       API_CMD_TIMEOUT_MS * 1000000ull;
	pthread_mutex_lock(&cmd->lock);
	while (!cmd->done) {
		/* Short slices: a stopping server must not wait out a command's timeout. */
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		uint64_t now = deadline.tv_sec * 1000000000ull + deadline.tv_nsec;
		if (now >= end || atomic_load(&srv->stopping)) {
			r = now >= end ? -ETIMEDOUT : -ECANCELED;
			break;
		}
		uint64_t until = MIN(end, now + 100000000ull);
		deadline.tv_sec = until / 1000000000ull;
		deadline.tv_nsec = until % 1000000000ull;
		pthread_cond_timedwait(&cmd->cond, &cmd->lock, &deadline);
	}
	pthread_mutex_unlock(&cmd->lock);
	return r;
}

static struct api_cmd *api_cmd_new(struct api_server *srv, const struct api_route *route)
{
	struct api_cmd *cmd = calloc(1, sizeof(*cmd));
	if (!cmd)
		return NULL;
	atomic_init(&cmd->refs, 1);
	cmd->wakefd = -1;
	cmd->vmm = srv->vmm;
	cmd->route = route;
	pthread_mutex_init(&cmd->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&cmd->cond, &attr);
	pthread_condattr_destroy(&attr);
	return cmd;
}

/* Moves the fds that came with this connection into @cmd. */
static void api_take_fds(struct api_server *srv, struct MHD_Connection *c, struct api_cmd *cmd)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct api_conn *conn = ci ? conn_find(srv, ci->connect_fd) : NULL;
	if (!conn)
		return;
	memcpy(cmd->fds, conn->fds, conn->nr_fds * sizeof(int));
	cmd->nr_fds = conn->nr_fds;
	conn->nr_fds = 0;
}

/* Once the VMM has confined itself with Landlock, so does the API thread. */
static void api_landlock(struct api_server *srv)
{
	landlock_follow(&srv->landlock, vmm_landlocked(srv->vmm), "API");
}

/* The answer to @cmd given api_cmd_exec()'s @r. */
static enum MHD_Result api_answer(struct api_server *srv, struct MHD_Connection *c,
				  struct api_req *req, struct api_cmd *cmd, int r)
{
	const char *name = cmd->route->name;
	if (r == -EAGAIN)
		return api_fail(c, 503, "%s: the VMM is busy, try again", name);
	if (r == -ETIMEDOUT)
		return api_fail(c, 504, "%s: the VMM did not answer within %u ms", name,
				API_CMD_TIMEOUT_MS);
	if (r < 0)
		return api_fail(c, 503, "%s: the VMM is shutting down", name);
	req->stop_vmm = cmd->stop_vmm;
	api_landlock(srv); /* before a client can see the answer to vm.create */
	enum MHD_Result ret = api_queue(c, cmd->status, cmd->resp);
	cmd->resp = NULL; /* libmicrohttpd owns it now */
	return ret;
}

/*
 * An async route: the command is posted and the connection suspended, so that the thread
 * serves other requests while the command waits (vm.waitstart); api_check_pending() resumes
 * it once the loop has answered (it writes srv->wakefd), or at API_CMD_TIMEOUT_MS, or when
 * the server stops, and libmicrohttpd calls api_on_request() again, which answers.
 */
static enum MHD_Result api_dispatch_async(struct api_server *srv, struct MHD_Connection *c,
					  struct api_req *req, struct api_cmd *cmd)
{
	cmd->wakefd = srv->wakefd;
	if (api_cmd_post(srv, cmd) < 0) {
		enum MHD_Result ret = api_answer(srv, c, req, cmd, -EAGAIN);
		api_cmd_put(cmd);
		return ret;
	}
	req->cmd = cmd;
	req->conn = c;
	req->deadline_ns = time_now_ns() + API_CMD_TIMEOUT_MS * 1000000ull;
	req->suspended = true;
	req->next = srv->pending;
	srv->pending = req;
	MHD_suspend_connection(c);
	return MHD_YES;
}

/* Drops @req's command: no wakeup from the loop from here (the fd may close), one reference
 * less. */
static void api_req_drop_cmd(struct api_req *req)
{
	struct api_cmd *cmd = req->cmd;
	if (!cmd)
		return;
	pthread_mutex_lock(&cmd->lock);
	cmd->wakefd = -1;
	pthread_mutex_unlock(&cmd->lock);
	api_cmd_put(cmd);
	req->cmd = NULL;
}

/* A suspended request resumed: its answer (the command's, or 504/503). */
static enum MHD_Result api_answer_async(struct api_server *srv, struct MHD_Connection *c,
					struct api_req *req)
{
	struct api_cmd *cmd = req->cmd;
	pthread_mutex_lock(&cmd->lock);
	bool done = cmd->done;
	pthread_mutex_unlock(&cmd->lock);
	int r = done ? 0 : atomic_load(&srv->stopping) ? -ECANCELED : -ETIMEDOUT;
	enum MHD_Result ret = api_answer(srv, c, req, cmd, r);
	api_req_drop_cmd(req);
	return ret;
}

/* Resumes the suspended requests whose command is done or timed out (all when stopping). */
static void api_check_pending(struct api_server *srv)
{
	uint64_t now = time_now_ns();
	bool stopping = atomic_load(&srv->stopping);

	for (struct api_req **p = &srv->pending; *p;) {
		struct api_req *req = *p;
		pthread_mutex_lock(&req->cmd->lock);
		bool done = req->cmd->done;
		pthread_mutex_unlock(&req->cmd->lock);
		if (!done && !stopping && now < req->deadline_ns) {
			p = &req->next;
			continue;
		}
		*p = req->next;
		req->suspended = false;
		MHD_resume_connection(req->conn);
	}
}

static enum MHD_Result api_dispatch(struct api_server *srv, struct MHD_Connection *c,
				    struct api_req *req, const char *url, const char *method)
{
	if (strncmp(url, API_PREFIX, strlen(API_PREFIX)) != 0)
		return api_fail(c, 404, "unknown path '%.200s': routes are under %s", url,
				API_PREFIX);
	const char *name = url + strlen(API_PREFIX);
	const struct api_route *route = api_route_find(name);
	if (!route)
		return api_fail(c, 404, "unknown route '%.200s'", name);
	if (strcmp(method, route->method) != 0)
		return api_fail(c, 405, "%s: method %.16s not allowed (use %s)", route->name,
				method, route->method);

	json_t *body = NULL;
	if (route->body == API_BODY_NONE && req->len)
		return api_fail(c, 400, "%s: takes no request body", route->name);
	if (route->body == API_BODY_REQUIRED && !req->len)
		return api_fail(c, 400, "%s: a JSON request body is required", route->name);
	if (route->body != API_BODY_NONE && req->len) {
		json_error_t jerr;
		body = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &jerr);
		if (!body)
			return api_fail(c, 400, "%s: malformed JSON body: %s (line %d, column %d)",
					route->name, jerr.text, jerr.line, jerr.column);
		if (!json_is_object(body)) {
			json_decref(body);
			return api_fail(c, 400, "%s: the request body must be a JSON object",
					route->name);
		}
	}

	struct api_cmd *cmd = api_cmd_new(srv, route);
	if (!cmd) {
		json_decref(body);
		return api_fail(c, 500, "%s: out of memory", route->name);
	}
	cmd->body = body;
	api_take_fds(srv, c, cmd);
	if (route->async)
		return api_dispatch_async(srv, c, req, cmd);
	int r = api_cmd_exec(srv, cmd);
	enum MHD_Result ret = api_answer(srv, c, req, cmd, r);
	api_cmd_put(cmd);
	return ret;
}

static enum MHD_Result api_on_request(void *cls, struct MHD_Connection *c, const char *url,
				      const char *method, const char *version,
				      const char *upload_data, size_t *upload_data_size,
				      void **con_cls)
{
	struct api_server *srv = cls;
	struct api_req *req = *con_cls;

	if (!req) {
		req = calloc(1, sizeof(*req));
		if (!req)
			return MHD_NO;
		*con_cls = req;
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > API_MAX_BODY) {
			req->answered = true;
			return api_fail(c, 413, "request body larger than %u bytes", API_MAX_BODY);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (req->answered)
			return MHD_YES;
		if (req->len + n > API_MAX_BODY) {
			req->answered = true;
			return api_fail(c, 413, "request body larger than %u bytes", API_MAX_BODY);
		}
		char *b = realloc(req->body, req->len + n);
		if (!b)
			return MHD_NO;
		memcpy(b + req->len, upload_data, n);
		req->body = b;
		req->len += n;
		return MHD_YES;
	}
	if (req->cmd)
		return api_answer_async(srv, c, req);
	if (req->answered)
		return MHD_YES;
	req->answered = true;
	return api_dispatch(srv, c, req, url, method);
}

static void api_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			     enum MHD_RequestTerminationCode toe)
{
	struct api_server *srv = cls;
	struct api_req *req = *con_cls;

	if (!req)
		return;
	if (req->stop_vmm)
		loop_stop(srv->loop, 0);
	if (req->suspended) {
		for (struct api_req **p = &srv->pending; *p; p = &(*p)->next) {
			if (*p == req) {
				*p = req->next;
				break;
			}
		}
	}
	api_req_drop_cmd(req);
	free(req->body);
	free(req);
	*con_cls = NULL;
}

static void api_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			      enum MHD_ConnectionNotificationCode toe)
{
	struct api_server *srv = cls;

	if (toe != MHD_CONNECTION_NOTIFY_CLOSED)
		return;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct api_conn *conn = ci ? conn_find(srv, ci->connect_fd) : NULL;
	if (conn)
		conn_release(conn);
}

static void api_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* libmicrohttpd's notes (TCP options it cannot set on a Unix socket, clients that went
	 * away): not errors of ours, visible at -vvvv. */
	log_msg(LOG_TRACE, "api: %s", msg);
}

/* A new client: kept until its first bytes arrive (or API_CONN_TIMEOUT_S). */
static void api_accept(struct api_server *srv)
{
	for (;;) {
		int s = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (s < 0)
			return; /* EAGAIN, or a client that went away: nothing to do */
		struct api_conn *conn = conn_find(srv, -1);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = s };
		if (!conn || epoll_ctl(srv->epfd, EPOLL_CTL_ADD, s, &ev) < 0) {
			close(s); /* API_MAX_CONNECTIONS reached */
			continue;
		}
		conn->sock = s;
		conn->handed = false;
		conn->nr_fds = 0;
		conn->deadline_ns = time_now_ns() + API_CONN_TIMEOUT_S * 1000000000ull;
	}
}

/* The first bytes are there: take the fds that came with them, hand the socket over. */
static void api_first_bytes(struct api_server *srv, struct api_conn *conn)
{
	union {
		char buf[CMSG_SPACE(API_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	char byte;
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };

	epoll_ctl(srv->epfd, EPOLL_CTL_DEL, conn->sock, NULL);
	ssize_t n = recvmsg(conn->sock, &msg, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	for (struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL; cm;
	     cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		unsigned nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *fds = (int *)CMSG_DATA(cm);
		for (unsigned i = 0; i < nfds; i++) {
			if (conn->nr_fds < API_MAX_FDS)
				conn->fds[conn->nr_fds++] = fds[i];
			else
				close(fds[i]);
		}
	}
	/* More fds than API_MAX_FDS: the kernel closed the rest (MSG_CTRUNC); the request is
	 * then answered with what fits, and the handler sees the count. */
	if (n <= 0) {
		close(conn->sock); /* closed before sending anything */
		conn_release(conn);
		return;
	}
	conn->handed = true;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (MHD_add_connection(srv->mhd, conn->sock, (struct sockaddr *)&addr, sizeof(addr)) !=
	    MHD_YES)
		conn_release(conn); /* libmicrohttpd closed the socket */
}

static void api_expire(struct api_server *srv)
{
	uint64_t now = time_now_ns();
	for (unsigned i = 0; i < API_MAX_CONNECTIONS; i++) {
		struct api_conn *conn = &srv->conns[i];
		if (conn->sock >= 0 && !conn->handed && now >= conn->deadline_ns) {
			epoll_ctl(srv->epfd, EPOLL_CTL_DEL, conn->sock, NULL);
			close(conn->sock);
			conn_release(conn);
		}
	}
}

static int api_timeout_ms(struct api_server *srv)
{
	MHD_UNSIGNED_LONG_LONG mhd_ms;
	uint64_t ms = 1000; /* pending connections are checked at least this often */

	if (MHD_get_timeout(srv->mhd, &mhd_ms) == MHD_YES)
		ms = MIN(ms, mhd_ms);
	return (int)ms;
}

#define API_LISTEN_TAG (-2)
#define API_MHD_TAG    (-3)
#define API_WAKE_TAG   (-4)

static void *api_thread(void *opaque)
{
	struct api_server *srv = opaque;
	struct epoll_event evs[16];

	pthread_setname_np(pthread_self(), "api");
	/* (libmicrohttpd's Date header needs the time zone glibc loads with an open(): main()
	 * loaded it before any thread started.) */
	landlock_follower_init(&srv->landlock);
	api_landlock(srv);
	int r = seccomp_apply(SECCOMP_THREAD_API, srv->seccomp, "api");
	if (r < 0) {
		log_error("cannot install the seccomp filter of the API thread: %s", strerror(-r));
		loop_stop(srv->loop, 1);
		return NULL;
	}
	seccomp_selftest(SECCOMP_THREAD_API);

	while (!atomic_load(&srv->stopping)) {
		int n = epoll_wait(srv->epfd, evs, ARRAY_SIZE(evs), api_timeout_ms(srv));
		api_landlock(srv);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == API_LISTEN_TAG) {
				api_accept(srv);
			} else if (fd == API_WAKE_TAG) {
				uint64_t count;
				(void)!read(srv->wakefd, &count, sizeof(count));
			} else if (fd >= 0) {
				struct api_conn *conn = conn_find(srv, fd);
				if (conn && !conn->handed)
					api_first_bytes(srv, conn);
			}
		}
		api_check_pending(srv);
		MHD_run(srv->mhd);
		api_expire(srv);
	}
	/* Suspended requests are answered (503) before the thread goes. */
	api_check_pending(srv);
	MHD_run(srv->mhd);
	return NULL;
}

/* Whether something listens on @addr (a stale socket file refuses the connection). */
static bool api_socket_live(const struct sockaddr_un *addr)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live = s >= 0 && connect(s, (const struct sockaddr *)addr, sizeof(*addr)) == 0;
	if (s >= 0)
		close(s);
	return live;
}

/* "path=P", "fd=N" or "P": a listening socket, created with mode 0600 for a path. */
static int api_listen(struct api_server *srv, const char *spec, char *err, size_t errlen)
{
	if (strncmp(spec, "fd=", 3) == 0) {
		char *end;
		int type;
		socklen_t len = sizeof(type);
		errno = 0;
		long fd = strtol(spec + 3, &end, 10);
		if (errno || end == spec + 3 || *end || fd < 0 || fd > INT32_MAX)
			return error_set(err, errlen, -EINVAL,
					 "--api-socket: fd must be a number, not '%s'", spec + 3);
		if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
		    type != SOCK_STREAM)
			return error_set(err, errlen, -EBADF,
					 "--api-socket: fd %ld is not a stream socket", fd);
		fcntl((int)fd, F_SETFD, FD_CLOEXEC);
		fcntl((int)fd, F_SETFL, fcntl((int)fd, F_GETFL) | O_NONBLOCK);
		srv->listen_fd = (int)fd;
		return 0;
	}
	const char *path = strncmp(spec, "path=", 5) == 0 ? spec + 5 : spec;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;

	if (!path[0] || strchr(path, ','))
		return error_set(err, errlen, -EINVAL,
				 "--api-socket: expected path=<socket> or fd=<fd>, not '%s'", spec);
	if (strlen(path) >= sizeof(addr.sun_path))
		return error_set(err, errlen, -ENAMETOOLONG,
				 "--api-socket: path longer than %zu bytes",
				 sizeof(addr.sun_path) - 1);
	strcpy(addr.sun_path, path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return error_set(err, errlen, -EEXIST,
					 "--api-socket: '%s' exists and is not a socket", path);
		if (api_socket_live(&addr))
			return error_set(err, errlen, -EADDRINUSE,
					 "--api-socket: '%s' is in use by another process", path);
		unlink(path); /* a stale socket from an earlier run */
	}
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return error_set(err, errlen, -errno, "--api-socket: socket: %s", strerror(errno));
	/* 0600 from the start: no window in which another user could connect. */
	mode_t old = umask(0177);
	int r = bind(s, (struct sockaddr *)&addr, sizeof(addr));
	umask(old);
	if (r < 0 || listen(s, API_MAX_CONNECTIONS) < 0) {
		r = -errno;
		close(s);
		return error_set(err, errlen, r, "--api-socket: cannot listen on '%s': %s", path,
				 strerror(-r));
	}
	srv->path = strdup(path);
	srv->listen_fd = s;
	return srv->path ? 0 : error_set(err, errlen, -ENOMEM, "out of memory");
}

static int api_epoll_add(struct api_server *srv, int fd, int tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = tag };
	return epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int api_mhd_start(struct api_server *srv, char *err, size_t errlen)
{
	srv->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG |
					    MHD_ALLOW_SUSPEND_RESUME,
				    0, NULL, NULL, api_on_request, srv, MHD_OPTION_EXTERNAL_LOGGER,
				    api_mhd_log, srv, MHD_OPTION_CONNECTION_LIMIT,
				    (unsigned)API_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
				    (unsigned)API_CONN_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED,
				    api_on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION,
				    api_on_connection, srv, MHD_OPTION_END);
	if (!srv->mhd)
		return error_set(err, errlen, -ENOMEM,
				 "--api-socket: cannot start the HTTP server");
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	int r = di ? api_epoll_add(srv, di->epoll_fd, API_MHD_TAG) : -EINVAL;
	if (r < 0)
		return error_set(err, errlen, r, "--api-socket: epoll: %s", strerror(-r));
	return 0;
}

int api_server_start(struct vmm *vmm, struct loop *loop, const char *spec,
		     enum seccomp_mode seccomp, struct api_server **ret, char *err, size_t errlen)
{
	/* jansson seeds its hash function from /dev/urandom on first use, whichever thread that
	 * is; seed it here, before the API thread's filter forbids open() (and as jansson asks of
	 * threaded programs). */
	json_object_seed(0);

	struct api_server *srv = calloc(1, sizeof(*srv));
	int r;

	if (!srv)
		return error_set(err, errlen, -ENOMEM, "out of memory");
	srv->vmm = vmm;
	srv->loop = loop;
	srv->seccomp = seccomp;
	srv->listen_fd = srv->epfd = srv->wakefd = srv->landlock.fd = -1;
	for (unsigned i = 0; i < API_MAX_CONNECTIONS; i++)
		srv->conns[i].sock = -1;
	r = api_listen(srv, spec, err, errlen);
	if (r < 0)
		goto fail;
	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	srv->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (srv->epfd < 0 || srv->wakefd < 0 ||
	    (r = api_epoll_add(srv, srv->listen_fd, API_LISTEN_TAG)) < 0 ||
	    (r = api_epoll_add(srv, srv->wakefd, API_WAKE_TAG)) < 0) {
		r = error_set(err, errlen, r < 0 ? r : -errno, "--api-socket: epoll: %s",
			      strerror(errno));
		goto fail;
	}
	r = api_mhd_start(srv, err, errlen);
	if (r < 0)
		goto fail;
	r = -pthread_create(&srv->thread, NULL, api_thread, srv);
	if (r < 0) {
		error_set(err, errlen, r, "--api-socket: cannot start its thread: %s",
			  strerror(-r));
		goto fail;
	}
	srv->started = true;
	*ret = srv;
	return 0;
fail:
	api_server_stop(srv);
	return r;
}

struct api_server *api_server_stop(struct api_server *srv)
{
	if (!srv)
		return NULL;
	atomic_store(&srv->stopping, true);
	if (srv->started) {
		uint64_t one = 1;
		(void)!write(srv->wakefd, &one, sizeof(one));
		pthread_join(srv->thread, NULL);
	}
	if (srv->mhd)
		MHD_stop_daemon(srv->mhd); /* closes its connections (and their fds, notified) */
	for (unsigned i = 0; i < API_MAX_CONNECTIONS; i++) {
		struct api_conn *conn = &srv->conns[i];
		if (conn->sock >= 0 && !conn->handed)
			close(conn->sock);
		if (conn->sock >= 0)
			conn_release(conn);
	}
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->path)
		unlink(srv->path);
	free(srv->path);
	if (srv->epfd >= 0)
		close(srv->epfd);
	if (srv->wakefd >= 0)
		close(srv->wakefd);
	landlock_follower_free(&srv->landlock);
	free(srv);
	return NULL;
}
