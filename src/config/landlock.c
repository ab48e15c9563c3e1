/* SPDX-License-Identifier: Apache-2.0 */
/*
 * --landlock-rules path=P,access=[rw] (Cloud Hypervisor v41's LandlockConfig; repeatable) and
 * its checks. What the rules grant, and when they are applied, is security/landlock.c's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/kv.h"
#include "util/util.h"

#define OPT "--landlock-rules"

void landlock_rule_free(struct landlock_rule_config *rule)
{
	free(rule->path);
	free(rule->access);
	*rule = (struct landlock_rule_config){ 0 };
}

int landlock_rule_validate(const struct landlock_rule_config *rule, char *err, size_t errlen)
{
	const char *a = rule->access;

	if (!rule->path || !rule->path[0])
		return error_set(err, errlen, -EINVAL, OPT ": path= is required");
	if (!a || !a[0])
		return error_set(err, errlen, -EINVAL, OPT ": access= is required (r, w or rw)");
	/* As Cloud Hypervisor: at most two letters, each r or w. */
	if (strlen(a) > 2 || strspn(a, "rw") != strlen(a))
		return error_set(err, errlen, -EINVAL,
				 OPT ": invalid access '%s' for '%s' (expected r, w or rw)", a,
				 rule->path);
	return 0;
}

int config_parse_landlock_rule(struct vm_config *cfg, const char *arg, char *err, size_t errlen)
{
	struct landlock_rule_config rule = { 0 };
	struct kv_list l;
	int r;

	if (cfg->num_landlock_rules == CONFIG_MAX_LANDLOCK_RULES)
		return error_set(err, errlen, -EINVAL, OPT ": more than %u rules",
				 CONFIG_MAX_LANDLOCK_RULES);
	r = kv_split(OPT, arg, &l, err, errlen);
	for (unsigned i = 0; r >= 0 && i < l.n; i++) {
		const struct kv *kv = &l.items[i];

		if (strcmp(kv->key, "path") == 0)
			r = kv_str(OPT, kv, &rule.path, err, errlen);
		else if (strcmp(kv->key, "access") == 0)
			r = kv_str(OPT, kv, &rule.access, err, errlen);
		else
			r = error_set(err, errlen, -EINVAL,
				      OPT ": unknown key '%s' (expected path or access)", kv->key);
	}
	kv_free(&l);
	if (r >= 0)
		r = landlock_rule_validate(&rule, err, errlen);
	if (r < 0) {
		landlock_rule_free(&rule);
		return r;
	}
	cfg->landlock_rules[cfg->num_landlock_rules++] = rule;
	return 0;
}
