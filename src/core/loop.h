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

/* Runs @cb(@opaque) on the loop thread soon. Bounded queue: -EAGAIN when full. */
int loop_post(struct loop *loop, loop_post_cb cb, void *opaque);

/* Runs until loop_stop() (also one called before loop_run()); returns its code. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop, int code);

/* struct dev_loop adapter for devices. */
struct dev_loop;
void loop_dev_loop(struct loop *loop, struct dev_loop *ret);

#endif
