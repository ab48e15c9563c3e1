/* SPDX-License-Identifier: Apache-2.0 */
/* TEMPORARY: the interface of wip-apijson's src/config/json.h, until it lands. */
#ifndef CUBICLE_API_JSON_STUB_H
#define CUBICLE_API_JSON_STUB_H

#include <jansson.h>

#include "config/config.h"

int vm_config_from_json(const json_t *obj, struct vm_config *ret, char *err, size_t errlen);
json_t *vm_config_to_json(const struct vm_config *cfg);

#endif
