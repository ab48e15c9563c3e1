/* SPDX-License-Identifier: Apache-2.0 */
/* Device identifiers across all device kinds (config/ids.h). */
#include "config/ids.h"

#include <errno.h>
#include <string.h>

#include "util/util.h"

/* Every device that can carry an id: at most the sum of the per-kind maxima, plus vsock. */
#define MAX_IDS (CONFIG_MAX_DISKS + CONFIG_MAX_NETS + CONFIG_MAX_PMEMS + 1)

static unsigned collect(const struct vm_config *cfg, const char **ids)
{
	unsigned n = 0;

	for (unsigned i = 0; i < cfg->num_disks && i < CONFIG_MAX_DISKS; i++)
		ids[n++] = cfg->disks[i].id;
	for (unsigned i = 0; i < cfg->num_nets && i < CONFIG_MAX_NETS; i++)
		ids[n++] = cfg->nets[i].id;
	for (unsigned i = 0; i < cfg->num_pmems && i < CONFIG_MAX_PMEMS; i++)
		ids[n++] = cfg->pmems[i].id;
	if (cfg->vsock)
		ids[n++] = cfg->vsock->id;
	return n;
}

int vm_config_validate_ids(const struct vm_config *cfg, char *err, size_t errlen)
{
	const char *ids[MAX_IDS];
	unsigned n = collect(cfg, ids);

	for (unsigned i = 0; i < n; i++) {
		if (!ids[i])
			continue;
		if (strncmp(ids[i], CONFIG_RESERVED_ID_PREFIX, strlen(CONFIG_RESERVED_ID_PREFIX)) ==
		    0)
			return error_set(err, errlen, -EINVAL,
					 "device id '%.*s' is reserved (ids starting with %s are "
					 "the VMM's)",
					 CONFIG_ID_MAX, ids[i], CONFIG_RESERVED_ID_PREFIX);
		if (strlen(ids[i]) >= CONFIG_ID_MAX)
			return error_set(err, errlen, -EINVAL,
					 "device id '%.20s...' is longer than %u bytes", ids[i],
					 CONFIG_ID_MAX - 1);
		for (unsigned j = 0; j < i; j++) {
			if (ids[j] && strcmp(ids[i], ids[j]) == 0)
				return error_set(err, errlen, -EINVAL,
						 "device id '%s' is used by more than one device",
						 ids[i]);
		}
	}
	return 0;
}
