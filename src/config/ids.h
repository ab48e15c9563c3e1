/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Device identifiers across every kind of device, as Cloud Hypervisor v28 checks them
 * (validate_identifier in its config.rs).
 */
#ifndef CUBICLE_CONFIG_IDS_H
#define CUBICLE_CONFIG_IDS_H

#include <stddef.h>

#include "config/config.h"

/* The prefix Cloud Hypervisor keeps for the VMM's own devices ("__rng", "__console"...). */
#define CONFIG_RESERVED_ID_PREFIX "__"

/*
 * Checks the ids of every disk, net, pmem and vsock of @cfg (NULL ids are skipped: call after
 * vm_config_assign_ids to include the defaults): none starts with "__", none is longer than
 * CONFIG_ID_MAX - 1 bytes, no two devices share one. Returns 0, or -EINVAL with one line in @err
 * ("device id '__rng' is reserved (ids starting with __ are the VMM's)", "device id 'x' is
 * used by more than one device").
 */
int vm_config_validate_ids(const struct vm_config *cfg, char *err, size_t errlen);

#endif
