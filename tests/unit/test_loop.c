/* Unit tests of the VMM event loop (src/core/loop.c): fd dispatch, deletion during a round,
 * posts from other threads, stop codes, bounds. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/loop.h"

struct counter {
	struct loop *loop;
	int fd;
	int calls;
	int other_fd; /* deleted by the callback when >= 0 */
	int stop_after;
};

static void on_ready(void *opaque, uint32_t events)
{
	struct counter *c = opaque;
	uint64_t v;

	assert_true(events & EPOLLIN);
	(void)!read(c->fd, &v, sizeof(v));
	c->calls++;
	if (c->other_fd >= 0) {
		assert_int_equal(loop_del_fd(c->loop, c->other_fd), 0);
		c->other_fd = -1;
	}
	if (c->calls == c->stop_after)
		loop_stop(c->loop, 7);
}

static void kick(int fd)
{
	uint64_t one = 1;
	assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

static void test_dispatch_and_stop_code(void **state)
{
	struct loop *loop;
	struct counter c = { .other_fd = -1, .stop_after = 1 };

	assert_int_equal(loop_create(&loop), 0);
	c.loop = loop;
	c.fd = eventfd(0, EFD_NONBLOCK);
	assert_int_equal(loop_add_fd(loop, c.fd, EPOLLIN, on_ready, &c), 0);
	assert_int_equal(loop_add_fd(loop, c.fd, EPOLLIN, on_ready, &c), -EEXIST);
	kick(c.fd);
	assert_int_equal(loop_run(loop), 7);
	assert_int_equal(c.calls, 1);
	assert_int_equal(loop_del_fd(loop, c.fd), 0);
	assert_int_equal(loop_del_fd(loop, c.fd), -ENOENT);
	assert_int_equal(loop_mod_fd(loop, c.fd, EPOLLIN), -ENOENT);
	close(c.fd);
	loop_destroy(loop);
}

/* Both fds are ready in the same round; the first callback deletes the second, which must not
 * run afterwards (its event is stale). */
static void test_delete_pending_in_same_round(void **state)
{
	struct loop *loop;
	struct counter a = { .other_fd = -1, .stop_after = 1 }, b = { .other_fd = -1 };

	assert_int_equal(loop_create(&loop), 0);
	a.loop = b.loop = loop;
	a.fd = eventfd(0, EFD_NONBLOCK);
	b.fd = eventfd(0, EFD_NONBLOCK);
	assert_int_equal(loop_add_fd(loop, a.fd, EPOLLIN, on_ready, &a), 0);
	assert_int_equal(loop_add_fd(loop, b.fd, EPOLLIN, on_ready, &b), 0);
	a.other_fd = b.fd;
	b.other_fd = a.fd;
	b.stop_after = 1;
	kick(a.fd);
	kick(b.fd);
	assert_int_equal(loop_run(loop), 7);
	/* exactly one of them ran: whichever came first removed the other */
	assert_int_equal(a.calls + b.calls, 1);
	close(a.fd);
	close(b.fd);
	loop_destroy(loop);
}

static void test_quiet_registration(void **state)
{
	struct loop *loop;
	struct counter c = { .other_fd = -1, .stop_after = 1 };

	assert_int_equal(loop_create(&loop), 0);
	c.loop = loop;
	c.fd = eventfd(0, EFD_NONBLOCK);
	/* registered with no events: a ready fd is not dispatched until re-armed */
	assert_int_equal(loop_add_fd(loop, c.fd, 0, on_ready, &c), 0);
	kick(c.fd);
	loop_stop(loop, 3);
	assert_int_equal(loop_run(loop), 3);
	assert_int_equal(c.calls, 0);
	assert_int_equal(loop_mod_fd(loop, c.fd, EPOLLIN), 0);
	assert_int_equal(loop_run(loop), 7);
	assert_int_equal(c.calls, 1);
	close(c.fd);
	loop_destroy(loop);
}

struct post_ctx {
	struct loop *loop;
	int ran;
};

static void on_post(void *opaque)
{
	struct post_ctx *p = opaque;
	if (++p->ran == 100)
		loop_stop(p->loop, 0);
}

static void *poster(void *arg)
{
	struct post_ctx *p = arg;
	for (int i = 0; i < 100; i++)
		while (loop_post(p->loop, on_post, p) == -EAGAIN)
			usleep(100);
	return NULL;
}

static void test_posts_from_another_thread(void **state)
{
	struct post_ctx p = { 0 };
	pthread_t t;

	assert_int_equal(loop_create(&p.loop), 0);
	assert_int_equal(pthread_create(&t, NULL, poster, &p), 0);
	assert_int_equal(loop_run(p.loop), 0);
	pthread_join(t, NULL);
	assert_int_equal(p.ran, 100);
	loop_destroy(p.loop);
}

static void noop_post(void *opaque)
{
}

static void test_bounds(void **state)
{
	struct loop *loop;
	int fds[LOOP_MAX_FDS + 1];
	struct counter c = { .other_fd = -1 };
	int i, r = 0;

	assert_int_equal(loop_create(&loop), 0);
	for (i = 0; i <= LOOP_MAX_FDS; i++) {
		fds[i] = eventfd(0, EFD_NONBLOCK);
		r = loop_add_fd(loop, fds[i], EPOLLIN, on_ready, &c);
		if (r < 0)
			break;
	}
	assert_int_equal(r, -ENOSPC);
	assert_int_equal(i, LOOP_MAX_FDS);
	for (int j = 0; j <= i; j++)
		close(fds[j]);
	assert_int_equal(loop_add_fd(loop, -1, EPOLLIN, on_ready, &c), -EINVAL);

	int posted = 0;
	while (loop_post(loop, noop_post, NULL) == 0)
		posted++;
	assert_true(posted > 0 && posted < 1000);
	loop_destroy(loop);
}

struct ctl_probe {
	pthread_t ran_on;
	int runs;
	struct loop *loop;
	bool nested;
};

static void ctl_job(void *opaque)
{
	struct ctl_probe *p = opaque;
	p->ran_on = pthread_self();
	p->runs++;
	if (p->nested) {
		p->nested = false;
		loop_control(p->loop, ctl_job, p); /* from the control thread: runs inline */
	}
}

static int confine_calls;
static int confine_ok(void *opaque)
{
	confine_calls++;
	return *(int *)opaque;
}

/* loop_control: inline without a control thread; on it once started (confined first); a job
 * that calls back in runs inline instead of waiting for itself; posts go through it. */
static void test_control_thread(void **state)
{
	struct loop *loop;
	struct ctl_probe p = { 0 };
	int ok = 0, refuse = -EPERM;

	assert_int_equal(loop_create(&loop), 0);
	p.loop = loop;
	loop_control(loop, ctl_job, &p);
	assert_true(pthread_equal(p.ran_on, pthread_self()));

	assert_int_equal(loop_control_start(loop, confine_ok, &refuse), -EPERM);
	loop_control(loop, ctl_job, &p); /* a refused start leaves no thread */
	assert_true(pthread_equal(p.ran_on, pthread_self()));

	assert_int_equal(loop_control_start(loop, confine_ok, &ok), 0);
	assert_int_equal(confine_calls, 2);
	assert_int_equal(loop_control_start(loop, confine_ok, &ok), -EBUSY);
	p.runs = 0;
	p.nested = true;
	loop_control(loop, ctl_job, &p);
	assert_int_equal(p.runs, 2);
	assert_false(pthread_equal(p.ran_on, pthread_self()));
	pthread_t ctl = p.ran_on;

	/* A post runs on the control thread while the loop thread waits. */
	assert_int_equal(loop_post(loop, ctl_job, &p), 0);
	loop_stop(loop, 5);
	assert_int_equal(loop_run(loop), 5);
	assert_int_equal(p.runs, 3);
	assert_true(pthread_equal(p.ran_on, ctl));

	loop_control_stop(loop);
	loop_control(loop, ctl_job, &p);
	assert_true(pthread_equal(p.ran_on, pthread_self()));
	loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch_and_stop_code),
		cmocka_unit_test(test_delete_pending_in_same_round),
		cmocka_unit_test(test_quiet_registration),
		cmocka_unit_test(test_posts_from_another_thread),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_control_thread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
