/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to config/: the sub-option list parser and typed value readers that every option
 * parser uses. Each reader returns 0, or -EINVAL with one line in @err naming the option, the
 * key and the problem ("--disk: invalid value 'x' for 'readonly' (expected on or off)").
 */
#ifndef CUBICLE_CONFIG_KV_H
#define CUBICLE_CONFIG_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/ratelimit.h"

#define KV_MAX_ITEMS 32

/*
 * Sub-option lists. Items are separated by commas, except inside [..] (Cloud Hypervisor's
 * lists such as affinity=[0@[0-1]] or fd=[3,4]).
 */
struct kv {
	char *key;
	char *value; /* NULL when the item has no '=' */
};

struct kv_list {
	char *buf;
	unsigned n;
	struct kv items[KV_MAX_ITEMS];
};

/* Splits @arg (a copy is cut in place); a key given twice is an error. Always kv_free() after. */
int kv_split(const char *option, const char *arg, struct kv_list *l, char *err, size_t errlen);
void kv_free(struct kv_list *l);
/* True if @key is in the NULL-terminated @list. */
bool key_in(const char *key, const char *const *list);
int kv_need_value(const char *option, const struct kv *kv, char *err, size_t errlen);
/* A decimal (or 0x) number ≤ @max. */
int kv_u64(const char *option, const struct kv *kv, uint64_t max, uint64_t *ret, char *err,
	   size_t errlen);
/* A string value (non-empty), copied into *@slot (the old one freed). -ENOMEM possible. */
int kv_str(const char *option, const struct kv *kv, char **slot, char *err, size_t errlen);
/* on/off, true/false. */
int kv_bool(const char *option, const struct kv *kv, bool *ret, char *err, size_t errlen);
/* A size with an optional K/M/G/T suffix. */
int kv_size(const char *option, const struct kv *kv, uint64_t *ret, char *err, size_t errlen);
/*
 * The rate limiter keys --disk and --net share (bw_size, bw_one_time_burst, bw_refill_time,
 * ops_size, ops_one_time_burst, ops_refill_time; refill times in ms). Sets *@ret_matched to
 * whether @kv is one of them; when it is, stores its value in @rl.
 */
int kv_rate_limiter(const char *option, const struct kv *kv, struct rate_limiter_config *rl,
		    bool *ret_matched, char *err, size_t errlen);

#endif
