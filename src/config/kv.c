/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cloud Hypervisor's "key=value,key=value" sub-option lists, shared by every option parser in
 * config/ (config/kv.h).
 */
#include "config/kv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/*
 * Sub-option lists. Items are separated by commas, except inside [..] (Cloud Hypervisor's
 * lists such as affinity=[0@[0-1]]). The buffer @buf is a copy of the argument, cut in place.
 */
int kv_split(const char *option, const char *arg, struct kv_list *l, char *err, size_t errlen)
{
	char *p, *item;
	int depth = 0;

	l->n = 0;
	l->buf = strdup(arg ? arg : "");
	if (!l->buf)
		return -ENOMEM;

	for (p = item = l->buf;; p++) {
		if (*p == '[') {
			depth++;
		} else if (*p == ']') {
			if (--depth < 0)
				return error_set(err, errlen, -EINVAL, "%s: unbalanced ']' in '%s'",
						 option, arg);
		} else if ((*p == ',' && depth == 0) || *p == '\0') {
			bool last = *p == '\0';

			if (last && depth > 0)
				return error_set(err, errlen, -EINVAL, "%s: unbalanced '[' in '%s'",
						 option, arg);
			*p = '\0';
			if (*item) { /* empty items (a trailing comma) are ignored */
				char *eq = strchr(item, '=');

				if (l->n == KV_MAX_ITEMS)
					return error_set(err, errlen, -EINVAL, "%s: too many items",
							 option);
				if (eq)
					*eq = '\0';
				l->items[l->n].key = item;
				l->items[l->n].value = eq ? eq + 1 : NULL;
				for (unsigned i = 0; i < l->n; i++) {
					if (strcmp(l->items[i].key, item) == 0)
						return error_set(err, errlen, -EINVAL,
								 "%s: key '%s' given twice", option,
								 item);
				}
				l->n++;
			}
			if (last)
				return 0;
			item = p + 1;
		}
	}
}

void kv_free(struct kv_list *l)
{
	free(l->buf);
	l->buf = NULL;
}

bool key_in(const char *key, const char *const *list)
{
	for (; *list; list++) {
		if (strcmp(key, *list) == 0)
			return true;
	}
	return false;
}

int kv_need_value(const char *option, const struct kv *kv, char *err, size_t errlen)
{
	if (!kv->value || !kv->value[0])
		return error_set(err, errlen, -EINVAL, "%s: '%s' needs a value", option, kv->key);
	return 0;
}

int kv_u64(const char *option, const struct kv *kv, uint64_t max, uint64_t *ret, char *err,
	   size_t errlen)
{
	int r = kv_need_value(option, kv, err, errlen);

	if (r < 0)
		return r;
	r = parse_u64(kv->value, max, ret);
	if (r == -ERANGE)
		return error_set(err, errlen, -EINVAL, "%s: %s=%s is out of range (at most %llu)",
				 option, kv->key, kv->value, (unsigned long long)max);
	if (r < 0)
		return error_set(err, errlen, -EINVAL, "%s: invalid number '%s' for '%s'", option,
				 kv->value, kv->key);
	return 0;
}

int kv_str(const char *option, const struct kv *kv, char **slot, char *err, size_t errlen)
{
	int r = kv_need_value(option, kv, err, errlen);

	if (r < 0)
		return r;
	free(*slot);
	*slot = strdup(kv->value);
	return *slot ? 0 : -ENOMEM;
}

int kv_bool(const char *option, const struct kv *kv, bool *ret, char *err, size_t errlen)
{
	int r = kv_need_value(option, kv, err, errlen);

	if (r < 0)
		return r;
	if (parse_bool(kv->value, ret) < 0)
		return error_set(err, errlen, -EINVAL,
				 "%s: invalid value '%s' for '%s' (expected on or off)", option,
				 kv->value, kv->key);
	return 0;
}

int kv_size(const char *option, const struct kv *kv, uint64_t *ret, char *err, size_t errlen)
{
	int r = kv_need_value(option, kv, err, errlen);

	if (r < 0)
		return r;
	r = parse_size(kv->value, ret);
	if (r == -ERANGE)
		return error_set(err, errlen, -EINVAL, "%s: %s=%s is too large", option, kv->key,
				 kv->value);
	if (r < 0)
		return error_set(err, errlen, -EINVAL, "%s: invalid size '%s' for '%s'", option,
				 kv->value, kv->key);
	return 0;
}

int kv_rate_limiter(const char *option, const struct kv *kv, struct rate_limiter_config *rl,
		    bool *ret_matched, char *err, size_t errlen)
{
	static const struct {
		const char *key;
		size_t offset;
	} keys[] = {
		{ "bw_size", offsetof(struct rate_limiter_config, bandwidth.size) },
		{ "bw_one_time_burst",
		  offsetof(struct rate_limiter_config, bandwidth.one_time_burst) },
		{ "bw_refill_time", offsetof(struct rate_limiter_config, bandwidth.refill_time) },
		{ "ops_size", offsetof(struct rate_limiter_config, ops.size) },
		{ "ops_one_time_burst", offsetof(struct rate_limiter_config, ops.one_time_burst) },
		{ "ops_refill_time", offsetof(struct rate_limiter_config, ops.refill_time) },
	};

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (strcmp(kv->key, keys[i].key) == 0) {
			*ret_matched = true;
			return kv_u64(option, kv, UINT64_MAX,
				      (uint64_t *)((char *)rl + keys[i].offset), err, errlen);
		}
	}
	*ret_matched = false;
	return 0;
}
