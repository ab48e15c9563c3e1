/* SPDX-License-Identifier: Apache-2.0 */
/* PLACEHOLDER until wip-hv merges. */
#include "snapshot/state_hv.h"

#include <errno.h>

int snapshot_save_vcpu(json_t *obj, const struct hv_vcpu_state *st)
{
	return -ENOSYS;
}

int snapshot_load_vcpu(const json_t *obj, struct hv_vcpu_state *ret, char *err, size_t errlen)
{
	return -ENOSYS;
}

int snapshot_save_vm(json_t *obj, const struct hv_vm_state *st)
{
	return -ENOSYS;
}

int snapshot_load_vm(const json_t *obj, struct hv_vm_state *ret, char *err, size_t errlen)
{
	return -ENOSYS;
}
