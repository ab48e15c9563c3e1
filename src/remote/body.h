/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cubicle-remote: ch-remote's device syntax ("path=/a.img,readonly=on") to the JSON bodies of
 * the API (DiskConfig, NetConfig, ...), key for key as Cloud Hypervisor v28's parsers name
 * them. Only the keys given go into the body: the server fills the defaults and validates.
 */
#ifndef CUBICLE_REMOTE_BODY_H
#define CUBICLE_REMOTE_BODY_H

#include <jansson.h>
#include <stddef.h>

#include "config/config.h"

enum remote_body {
	BODY_DEVICE,	  /* add-device: DeviceConfig (VFIO) */
	BODY_DISK,	  /* add-disk */
	BODY_FS,	  /* add-fs */
	BODY_PMEM,	  /* add-pmem */
	BODY_NET,	  /* add-net; fd=[..] become SCM_RIGHTS fds */
	BODY_USER_DEVICE, /* add-user-device */
	BODY_VDPA,	  /* add-vdpa */
	BODY_VSOCK,	  /* add-vsock */
	BODY_RESTORE,	  /* restore: RestoreConfig */
};

/*
 * Builds the body for @kind from @arg into *@ret (a new object). For BODY_NET the fds of fd=[..]
 * (which must be open in this process) go into @fds/@ret_nfds (room for CONFIG_MAX_NET_FDS),
 * not into the JSON. @option names the subcommand in messages ("add-disk: unknown key 'x'").
 * Returns 0, -EINVAL with one line in @err, or -ENOMEM.
 */
int remote_body_from_cli(enum remote_body kind, const char *option, const char *arg, json_t **ret,
			 int *fds, unsigned *ret_nfds, char *err, size_t errlen);

#endif
