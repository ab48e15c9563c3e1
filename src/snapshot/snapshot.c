/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The snapshot directory: writer, reader, checks (snapshot.h).
 */
#include "snapshot/snapshot.h"

#include <errno.h>
#include <stdio.h>

int snapshot_url_path(const char *url, char **ret, char *err, size_t errlen)
{
	snprintf(err, errlen, "snapshots: not implemented yet");
	return -ENOSYS; /* TODO(issue 7) */
}

int snapshot_read_config(const char *dir, struct vm_config *ret, char *err, size_t errlen)
{
	snprintf(err, errlen, "snapshots: not implemented yet");
	return -ENOSYS; /* TODO(issue 7) */
}
