/* SPDX-License-Identifier: Apache-2.0 */
#include "core/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/device.h"
#include "util/util.h"

#define LOOP_MAX_POSTS 64
#define LOOP_BATCH     32

#define SLOT_FREE (-1)
#define SLOT_DEAD (-2) /* deleted in this round: an event may still point here */

struct loop_handler {
	int fd; /* or SLOT_FREE / SLOT_DEAD */
	loop_fd_cb cb;
	void *opaque;
};

struct loop_post_item {
	loop_post_cb cb;
	void *opaque;
};

struct loop {
	int epfd;
	int wakefd; /* eventfd: posts and stop */
	/* Devices re-arm their fds from vCPU threads (e.g. serial input once the guest drained its
	 * FIFO), so the table has a lock of its own; callbacks run without it. */
	pthread_mutex_t table_lock;
	struct loop_handler handlers[LOOP_MAX_FDS];

	pthread_mutex_t lock; /* posts, stop */
	struct loop_post_item posts[LOOP_MAX_POSTS];
	unsigned nr_posts;
	bool stopping;
	int stop_code;

	/* The control thread (loop_control_start); jobs are handed over one at a time. */
	pthread_mutex_t ctl_lock;
	pthread_cond_t ctl_cond;
	pthread_t ctl_thread;
	bool ctl_running;
	bool ctl_quit;
	bool ctl_busy; /* a caller owns the hand-over slot */
	loop_post_cb ctl_job;
	void *ctl_opaque;
	int (*ctl_confine)(void *opaque);
	void *ctl_confine_opaque;
	int ctl_start_error;
	bool ctl_start_done;
	loop_post_cb post_hook; /* loop_set_post_hook */
	void *post_hook_opaque;
};

/* The wake eventfd is tagged with this pointer in epoll data. */
static struct loop_handler wake_tag;

int loop_create(struct loop **ret)
{
	struct loop *loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	for (unsigned i = 0; i < LOOP_MAX_FDS; i++)
		loop->handlers[i].fd = SLOT_FREE;
	pthread_mutex_init(&loop->lock, NULL);
	pthread_mutex_init(&loop->table_lock, NULL);
	pthread_mutex_init(&loop->ctl_lock, NULL);
	pthread_cond_init(&loop->ctl_cond, NULL);
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->epfd < 0 || loop->wakefd < 0) {
		int r = -errno;
		loop_destroy(loop);
		return r;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &wake_tag };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) < 0) {
		int r = -errno;
		loop_destroy(loop);
		return r;
	}
	*ret = loop;
	return 0;
}

struct loop *loop_destroy(struct loop *loop)
{
	if (!loop)
		return NULL;
	loop_control_stop(loop);
	if (loop->epfd >= 0)
		close(loop->epfd);
	if (loop->wakefd >= 0)
		close(loop->wakefd);
	pthread_mutex_destroy(&loop->lock);
	pthread_mutex_destroy(&loop->table_lock);
	pthread_mutex_destroy(&loop->ctl_lock);
	pthread_cond_destroy(&loop->ctl_cond);
	free(loop);
	return NULL;
}

static struct loop_handler *loop_find(struct loop *loop, int fd)
{
	for (unsigned i = 0; i < LOOP_MAX_FDS; i++)
		if (loop->handlers[i].fd == fd)
			return &loop->handlers[i];
	return NULL;
}

int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb, void *opaque)
{
	int r = 0;

	if (fd < 0 || !cb)
		return -EINVAL;
	pthread_mutex_lock(&loop->table_lock);
	struct loop_handler *h = loop_find(loop, SLOT_FREE);
	if (loop_find(loop, fd)) {
		r = -EEXIST;
	} else if (!h) {
		r = -ENOSPC;
	} else {
		struct epoll_event ev = { .events = events, .data.ptr = h };
		if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			r = -errno;
		else
			*h = (struct loop_handler){ .fd = fd, .cb = cb, .opaque = opaque };
	}
	pthread_mutex_unlock(&loop->table_lock);
	return r;
}

int loop_mod_fd(struct loop *loop, int fd, uint32_t events)
{
	int r = 0;

	pthread_mutex_lock(&loop->table_lock);
	struct loop_handler *h = loop_find(loop, fd);
	if (!h) {
		r = -ENOENT;
	} else {
		struct epoll_event ev = { .events = events, .data.ptr = h };
		if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
			r = -errno;
	}
	pthread_mutex_unlock(&loop->table_lock);
	return r;
}

int loop_del_fd(struct loop *loop, int fd)
{
	pthread_mutex_lock(&loop->table_lock);
	struct loop_handler *h = loop_find(loop, fd);
	if (h) {
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
		/* An event of this round may still point at @h: the slot stays dead (skipped,
		 * not reused) until the round ends. */
		h->fd = SLOT_DEAD;
		h->cb = NULL;
	}
	pthread_mutex_unlock(&loop->table_lock);
	return h ? 0 : -ENOENT;
}

int loop_post(struct loop *loop, loop_post_cb cb, void *opaque)
{
	pthread_mutex_lock(&loop->lock);
	if (loop->nr_posts == LOOP_MAX_POSTS) {
		pthread_mutex_unlock(&loop->lock);
		return -EAGAIN;
	}
	loop->posts[loop->nr_posts++] = (struct loop_post_item){ cb, opaque };
	pthread_mutex_unlock(&loop->lock);
	uint64_t one = 1;
	(void)!write(loop->wakefd, &one, sizeof(one));
	return 0;
}

void loop_stop(struct loop *loop, int code)
{
	pthread_mutex_lock(&loop->lock);
	if (!loop->stopping) {
		loop->stopping = true;
		loop->stop_code = code;
	}
	pthread_mutex_unlock(&loop->lock);
	uint64_t one = 1;
	(void)!write(loop->wakefd, &one, sizeof(one));
}

/* Runs queued posts; returns true when the loop should stop. */
static bool loop_drain_wake(struct loop *loop)
{
	uint64_t v;
	(void)!read(loop->wakefd, &v, sizeof(v));
	for (;;) {
		pthread_mutex_lock(&loop->lock);
		if (loop->nr_posts == 0) {
			bool stop = loop->stopping;
			pthread_mutex_unlock(&loop->lock);
			return stop;
		}
		struct loop_post_item item = loop->posts[0];
		loop->nr_posts--;
		for (unsigned i = 0; i < loop->nr_posts; i++)
			loop->posts[i] = loop->posts[i + 1];
		pthread_mutex_unlock(&loop->lock);
		loop_control(loop, item.cb, item.opaque);
		if (loop->post_hook)
			loop->post_hook(loop->post_hook_opaque);
	}
}

void loop_set_post_hook(struct loop *loop, loop_post_cb after, void *opaque)
{
	loop->post_hook = after;
	loop->post_hook_opaque = opaque;
}

static void *loop_control_thread(void *opaque)
{
	struct loop *loop = opaque;

	pthread_setname_np(pthread_self(), "ctl");
	int r = loop->ctl_confine ? loop->ctl_confine(loop->ctl_confine_opaque) : 0;
	pthread_mutex_lock(&loop->ctl_lock);
	loop->ctl_start_error = r;
	loop->ctl_start_done = true;
	pthread_cond_broadcast(&loop->ctl_cond);
	while (r == 0) {
		while (!loop->ctl_job && !loop->ctl_quit)
			pthread_cond_wait(&loop->ctl_cond, &loop->ctl_lock);
		if (!loop->ctl_job)
			break;
		loop_post_cb job = loop->ctl_job;
		pthread_mutex_unlock(&loop->ctl_lock);
		job(loop->ctl_opaque);
		pthread_mutex_lock(&loop->ctl_lock);
		loop->ctl_job = NULL;
		pthread_cond_broadcast(&loop->ctl_cond);
	}
	pthread_mutex_unlock(&loop->ctl_lock);
	return NULL;
}

int loop_control_start(struct loop *loop, int (*confine)(void *opaque), void *opaque)
{
	if (loop->ctl_running)
		return -EBUSY;
	loop->ctl_confine = confine;
	loop->ctl_confine_opaque = opaque;
	loop->ctl_start_done = false;
	loop->ctl_quit = false;
	int r = pthread_create(&loop->ctl_thread, NULL, loop_control_thread, loop);
	if (r)
		return -r;
	pthread_mutex_lock(&loop->ctl_lock);
	while (!loop->ctl_start_done)
		pthread_cond_wait(&loop->ctl_cond, &loop->ctl_lock);
	r = loop->ctl_start_error;
	pthread_mutex_unlock(&loop->ctl_lock);
	if (r < 0) {
		pthread_join(loop->ctl_thread, NULL);
		return r;
	}
	loop->ctl_running = true;
	return 0;
}

void loop_control_stop(struct loop *loop)
{
	if (!loop->ctl_running)
		return;
	pthread_mutex_lock(&loop->ctl_lock);
	loop->ctl_quit = true;
	pthread_cond_broadcast(&loop->ctl_cond);
	pthread_mutex_unlock(&loop->ctl_lock);
	pthread_join(loop->ctl_thread, NULL);
	loop->ctl_running = false;
}

void loop_control(struct loop *loop, loop_post_cb cb, void *opaque)
{
	/* No control thread, or already on it (a job that calls back in): run here. */
	if (!loop->ctl_running || pthread_equal(pthread_self(), loop->ctl_thread)) {
		cb(opaque);
		return;
	}
	pthread_mutex_lock(&loop->ctl_lock);
	while (loop->ctl_busy)
		pthread_cond_wait(&loop->ctl_cond, &loop->ctl_lock);
	loop->ctl_busy = true;
	loop->ctl_job = cb;
	loop->ctl_opaque = opaque;
	pthread_cond_broadcast(&loop->ctl_cond);
	while (loop->ctl_job)
		pthread_cond_wait(&loop->ctl_cond, &loop->ctl_lock);
	loop->ctl_busy = false;
	pthread_cond_broadcast(&loop->ctl_cond);
	pthread_mutex_unlock(&loop->ctl_lock);
}

int loop_run(struct loop *loop)
{
	struct epoll_event evs[LOOP_BATCH];

	for (;;) {
		int n = epoll_wait(loop->epfd, evs, LOOP_BATCH, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		bool stop = false;
		for (int i = 0; i < n; i++) {
			struct loop_handler *h = evs[i].data.ptr;
			if (h == &wake_tag) {
				stop |= loop_drain_wake(loop);
				continue;
			}
			pthread_mutex_lock(&loop->table_lock);
			loop_fd_cb cb = h->fd >= 0 ? h->cb : NULL;
			void *opaque = h->opaque;
			pthread_mutex_unlock(&loop->table_lock);
			if (cb)
				cb(opaque, evs[i].events);
		}
		pthread_mutex_lock(&loop->table_lock);
		for (unsigned i = 0; i < LOOP_MAX_FDS; i++)
			if (loop->handlers[i].fd == SLOT_DEAD)
				loop->handlers[i].fd = SLOT_FREE;
		pthread_mutex_unlock(&loop->table_lock);
		if (stop) {
			/* A stop is consumed by the run it ends: the loop can run again. */
			pthread_mutex_lock(&loop->lock);
			int code = loop->stop_code;
			loop->stopping = false;
			loop->stop_code = 0;
			pthread_mutex_unlock(&loop->lock);
			return code;
		}
	}
}

static int dev_loop_add(void *l, int fd, uint32_t events, dev_fd_cb cb, void *opaque)
{
	return loop_add_fd(l, fd, events, cb, opaque);
}

static int dev_loop_mod(void *l, int fd, uint32_t events)
{
	return loop_mod_fd(l, fd, events);
}

static int dev_loop_del(void *l, int fd)
{
	return loop_del_fd(l, fd);
}

void loop_dev_loop(struct loop *loop, struct dev_loop *ret)
{
	*ret = (struct dev_loop){
		.add_fd = dev_loop_add,
		.mod_fd = dev_loop_mod,
		.del_fd = dev_loop_del,
		.loop = loop,
	};
}
