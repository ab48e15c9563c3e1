/* SPDX-License-Identifier: Apache-2.0 */
/* PLACEHOLDER until wip-hv merges: the hv state's JSON form (state_hv.c). */
#ifndef CUBICLE_SNAPSHOT_STATE_HV_H
#define CUBICLE_SNAPSHOT_STATE_HV_H

#include <jansson.h>

#include "hv/hv.h"

int snapshot_save_vcpu(json_t *obj, const struct hv_vcpu_state *st);
int snapshot_load_vcpu(const json_t *obj, struct hv_vcpu_state *ret, char *err, size_t errlen);
int snapshot_save_vm(json_t *obj, const struct hv_vm_state *st);
int snapshot_load_vm(const json_t *obj, struct hv_vm_state *ret, char *err, size_t errlen);

#endif
