/* SPDX-License-Identifier: Apache-2.0 */
/*
 * --balloon size=S[,deflate_on_oom=on|off][,free_page_reporting=on|off] (Cloud Hypervisor v28's
 * BalloonConfig) and its validation.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/kv.h"
#include "util/util.h"

#define OPT "--balloon"

int config_parse_balloon(struct vm_config *cfg, const char *arg, char *err, size_t errlen)
{
	struct balloon_config c = { 0 }, *b;
	struct kv_list l;
	int r;

	r = kv_split(OPT, arg, &l, err, errlen);
	for (unsigned i = 0; r >= 0 && i < l.n; i++) {
		const struct kv *kv = &l.items[i];

		if (strcmp(kv->key, "size") == 0)
			r = kv_size(OPT, kv, &c.size, err, errlen);
		else if (strcmp(kv->key, "deflate_on_oom") == 0)
			r = kv_bool(OPT, kv, &c.deflate_on_oom, err, errlen);
		else if (strcmp(kv->key, "free_page_reporting") == 0)
			r = kv_bool(OPT, kv, &c.free_page_reporting, err, errlen);
		else
			r = error_set(err, errlen, -EINVAL, OPT ": unknown key '%s'", kv->key);
	}
	kv_free(&l);
	if (r < 0)
		return r;
	b = malloc(sizeof(*b));
	if (!b)
		return -ENOMEM;
	*b = c;
	free(cfg->balloon);
	cfg->balloon = b;
	return 0;
}

int config_validate_balloon(const struct vm_config *cfg, char *err, size_t errlen)
{
	const struct balloon_config *b = cfg->balloon;

	if (!b)
		return 0;
	/* Cloud Hypervisor v28: "Balloon size must be smaller than RAM size". */
	if (b->size >= cfg->memory.size)
		return error_set(err, errlen, -EINVAL,
				 OPT ": size %" PRIu64 "M must be smaller than the memory size "
				     "%" PRIu64 "M",
				 b->size >> 20, cfg->memory.size >> 20);
	if (!IS_ALIGNED(b->size, BALLOON_PAGE_SIZE))
		return error_set(err, errlen, -EINVAL, OPT ": size must be a multiple of 4 KiB");
	return 0;
}
