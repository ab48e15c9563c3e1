/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VMM event loop (DESIGN §2): one epoll loop on the main thread runs device work, signals
 * and commands. Internal to core; devices reach it through struct dev_loop (devices/device.h).
 *
 * loop_run is for the loop's own thread. loop_add_fd/mod_fd/del_fd, loop_stop and loop_post
 * may be called from any thread (devices re-arm their fds from vCPU threads); a callback may
 * still run once after its fd was deleted from another thread during the same round.
 */
#ifndef CUBICLE_CORE_LOOP_H
#define CUBICLE_CORE_LOOP_H

#include <stdint.h>

#define LOOP_MAX_FDS 256 /* devices, backends, signals: far more than one VM needs */

struct loop;
typedef void (*loop_fd_cb)(void *opaque, uint32_t events);
typedef void (*loop_post_cb)(void *opaque);

/* Returns 0 or -errno. */
int loop_create(struct loop **ret);
/* Accepts NULL; returns NULL. Callbacks registered are dropped, their fds are not closed. */
struct loop *loop_destroy(struct loop *loop);

/* Watches @fd for @events (EPOLLIN, EPOLLOUT; 0 = registered but quiet). -EEXIST, -ENOSPC. */
int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb, void *opaque);
int loop_mod_fd(struct loop *loop, int fd, uint32_t events);
/* Safe inside a callback, also for an fd whose event is pending in the same round. -ENOENT. */
int loop_del_fd(struct loop *loop, int fd);

/* Runs @cb(@opaque) soon through loop_control() (posts are commands: the API's). Bounded
 * queue: -EAGAIN when full. */
int loop_post(struct loop *loop, loop_post_cb cb, void *opaque);

/*
 * The control thread (docs/seccomp.md, "Two threads, two filters"). The loop thread serves the
 * devices, that is data a guest controls, under a short seccomp filter; everything that builds,
 * rebuilds, snapshots, restores or tears down a VM, and every API command, runs on the control
 * thread, whose filter allows what that needs (opening files, creating threads, memory slots).
 *
 * loop_control_start() creates the thread, which calls @confine (its filter; NULL = none)
 * before taking work: 0, or @confine's / pthread's -errno. loop_control() runs @cb(@opaque) on
 * it and returns once @cb returned; the caller waits meanwhile, so @cb may touch whatever the
 * caller could (the loop thread is parked in the call, not running devices). Without a control
 * thread, or when called from it, @cb runs on the caller. loop_control_stop() ends the thread
 * (loop_destroy() does it too).
 */
int loop_control_start(struct loop *loop, int (*confine)(void *opaque), void *opaque);
void loop_control(struct loop *loop, loop_post_cb cb, void *opaque);
void loop_control_stop(struct loop *loop);
/* @after(@opaque) runs on the loop thread each time a posted command has come back from the
 * control thread (main.c: the loop thread follows the VMM under Landlock). NULL = none. */
void loop_set_post_hook(struct loop *loop, loop_post_cb after, void *opaque);

/* Runs until loop_stop() (also one called before loop_run()); returns its code. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop, int code);

/* struct dev_loop adapter for devices. */
struct dev_loop;
void loop_dev_loop(struct loop *loop, struct dev_loop *ret);

#endif
