/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ch-remote's device syntax to JSON bodies (remote/body.h). One table per body: the CLI key,
 * the JSON field ("a/b" for a nested one, as the rate limiter's buckets), and the value's type.
 * The sub-option lists are split by config/kv.c, the same splitter as cubicle's own options.
 */
#include "remote/body.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/kv.h"
#include "util/util.h"

enum value_kind {
	V_STR,
	V_BOOL,
	V_INT,
	V_SIZE,	      /* a size with a K/M/G suffix, sent in bytes */
	V_VHOST_MODE, /* client|server -> "Client"|"Server" */
	V_FDS,	      /* fd=[3,4]: SCM_RIGHTS, not JSON */
};

struct body_key {
	const char *key, *field;
	enum value_kind kind;
};

#define RATE_LIMITER_KEYS                                                                       \
	{ "bw_size", "rate_limiter_config/bandwidth/size", V_INT },                             \
		{ "bw_one_time_burst", "rate_limiter_config/bandwidth/one_time_burst", V_INT }, \
		{ "bw_refill_time", "rate_limiter_config/bandwidth/refill_time", V_INT },       \
		{ "ops_size", "rate_limiter_config/ops/size", V_INT },                          \
		{ "ops_one_time_burst", "rate_limiter_config/ops/one_time_burst", V_INT },      \
	{                                                                                       \
		"ops_refill_time", "rate_limiter_config/ops/refill_time", V_INT                 \
	}

static const struct body_key device_keys[] = {
	{ "path", "path", V_STR }, { "iommu", "iommu", V_BOOL },
	{ "id", "id", V_STR },	   { "pci_segment", "pci_segment", V_INT },
	{ NULL, NULL, V_STR },
};

static const struct body_key disk_keys[] = {
	{ "path", "path", V_STR },
	{ "readonly", "readonly", V_BOOL },
	{ "direct", "direct", V_BOOL },
	{ "iommu", "iommu", V_BOOL },
	{ "queue_size", "queue_size", V_INT },
	{ "num_queues", "num_queues", V_INT },
	{ "vhost_user", "vhost_user", V_BOOL },
	{ "socket", "vhost_socket", V_STR },
	RATE_LIMITER_KEYS,
	{ "id", "id", V_STR },
	{ "_disable_io_uring", "disable_io_uring", V_BOOL },
	{ "pci_segment", "pci_segment", V_INT },
	{ "serial", "serial", V_STR },
	{ NULL, NULL, V_STR },
};

static const struct body_key fs_keys[] = {
	{ "tag", "tag", V_STR },
	{ "queue_size", "queue_size", V_INT },
	{ "num_queues", "num_queues", V_INT },
	{ "socket", "socket", V_STR },
	{ "id", "id", V_STR },
	{ "pci_segment", "pci_segment", V_INT },
	{ NULL, NULL, V_STR },
};

static const struct body_key pmem_keys[] = {
	{ "size", "size", V_SIZE },   { "file", "file", V_STR },
	{ "iommu", "iommu", V_BOOL }, { "discard_writes", "discard_writes", V_BOOL },
	{ "id", "id", V_STR },	      { "pci_segment", "pci_segment", V_INT },
	{ NULL, NULL, V_STR },
};

static const struct body_key net_keys[] = {
	{ "tap", "tap", V_STR },
	{ "ip", "ip", V_STR },
	{ "mask", "mask", V_STR },
	{ "mac", "mac", V_STR },
	{ "host_mac", "host_mac", V_STR },
	{ "mtu", "mtu", V_INT },
	{ "iommu", "iommu", V_BOOL },
	{ "queue_size", "queue_size", V_INT },
	{ "num_queues", "num_queues", V_INT },
	{ "vhost_user", "vhost_user", V_BOOL },
	{ "socket", "vhost_socket", V_STR },
	{ "vhost_mode", "vhost_mode", V_VHOST_MODE },
	{ "id", "id", V_STR },
	{ "fd", NULL, V_FDS },
	RATE_LIMITER_KEYS,
	{ "pci_segment", "pci_segment", V_INT },
	{ NULL, NULL, V_STR },
};

static const struct body_key user_device_keys[] = {
	{ "socket", "socket", V_STR },
	{ "id", "id", V_STR },
	{ "pci_segment", "pci_segment", V_INT },
	{ NULL, NULL, V_STR },
};

static const struct body_key vdpa_keys[] = {
	{ "path", "path", V_STR },
	{ "num_queues", "num_queues", V_INT },
	{ "iommu", "iommu", V_BOOL },
	{ "id", "id", V_STR },
	{ "pci_segment", "pci_segment", V_INT },
	{ NULL, NULL, V_STR },
};

static const struct body_key vsock_keys[] = {
	{ "socket", "socket", V_STR },
	{ "cid", "cid", V_INT },
	{ "iommu", "iommu", V_BOOL },
	{ "id", "id", V_STR },
	{ "pci_segment", "pci_segment", V_INT },
	{ NULL, NULL, V_STR },
};

static const struct body_key restore_keys[] = {
	{ "source_url", "source_url", V_STR },
	{ "prefault", "prefault", V_BOOL },
	{ NULL, NULL, V_STR },
};

static const struct body_key *const tables[] = {
	[BODY_DEVICE] = device_keys,   [BODY_DISK] = disk_keys,
	[BODY_FS] = fs_keys,	       [BODY_PMEM] = pmem_keys,
	[BODY_NET] = net_keys,	       [BODY_USER_DEVICE] = user_device_keys,
	[BODY_VDPA] = vdpa_keys,       [BODY_VSOCK] = vsock_keys,
	[BODY_RESTORE] = restore_keys,
};

/* Sets @value at the "a/b/c" @field of @obj, creating the intermediate objects. */
static int set_field(json_t *obj, const char *field, json_t *value)
{
	const char *slash = strchr(field, '/');
	char name[64];
	json_t *child;

	if (!value)
		return -ENOMEM;
	if (!slash)
		return json_object_set_new(obj, field, value) < 0 ? -ENOMEM : 0;
	snprintf(name, sizeof(name), "%.*s", (int)(slash - field), field);
	child = json_object_get(obj, name);
	if (!child) {
		child = json_object();
		if (!child || json_object_set_new(obj, name, child) < 0) {
			json_decref(value);
			return -ENOMEM;
		}
	}
	return set_field(child, slash + 1, value);
}

/* fd=[3,4] or fd=3: fds open in this process, handed over with SCM_RIGHTS. */
static int parse_fds(const char *option, const struct kv *kv, int *fds, unsigned *nfds, char *err,
		     size_t errlen)
{
	char list[256], *p, *save = NULL;
	size_t n;
	int r = kv_need_value(option, kv, err, errlen);

	if (r < 0)
		return r;
	n = strlen(kv->value);
	if (n >= sizeof(list))
		return error_set(err, errlen, -EINVAL, "%s: fd list too long", option);
	if (kv->value[0] == '[') {
		if (n < 2 || kv->value[n - 1] != ']')
			return error_set(err, errlen, -EINVAL, "%s: invalid fd list '%s'", option,
					 kv->value);
		snprintf(list, sizeof(list), "%.*s", (int)(n - 2), kv->value + 1);
	} else {
		snprintf(list, sizeof(list), "%s", kv->value);
	}
	for (p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		uint64_t v;

		if (parse_u64(p, INT32_MAX, &v) < 0)
			return error_set(err, errlen, -EINVAL, "%s: invalid fd '%s'", option, p);
		if (*nfds == CONFIG_MAX_NET_FDS)
			return error_set(err, errlen, -EINVAL, "%s: more than %u fds", option,
					 CONFIG_MAX_NET_FDS);
		if (fcntl((int)v, F_GETFD) < 0)
			return error_set(err, errlen, -EINVAL, "%s: fd %llu is not open", option,
					 (unsigned long long)v);
		fds[(*nfds)++] = (int)v;
	}
	return 0;
}

static int key_value(const char *option, const struct kv *kv, const struct body_key *k, json_t *obj,
		     int *fds, unsigned *nfds, char *err, size_t errlen)
{
	uint64_t n = 0;
	bool b = false;
	int r;

	switch (k->kind) {
	case V_STR:
		r = kv_need_value(option, kv, err, errlen);
		return r < 0 ? r : set_field(obj, k->field, json_string(kv->value));
	case V_BOOL:
		r = kv_bool(option, kv, &b, err, errlen);
		return r < 0 ? r : set_field(obj, k->field, json_boolean(b));
	case V_INT:
		r = kv_u64(option, kv, INT64_MAX, &n, err, errlen);
		return r < 0 ? r : set_field(obj, k->field, json_integer((json_int_t)n));
	case V_SIZE:
		r = kv_size(option, kv, &n, err, errlen);
		if (r == 0 && n > INT64_MAX)
			r = error_set(err, errlen, -EINVAL, "%s: %s=%s is too large", option,
				      kv->key, kv->value);
		return r < 0 ? r : set_field(obj, k->field, json_integer((json_int_t)n));
	case V_VHOST_MODE:
		r = kv_need_value(option, kv, err, errlen);
		if (r == 0 && strcasecmp(kv->value, "client") && strcasecmp(kv->value, "server"))
			r = error_set(err, errlen, -EINVAL,
				      "%s: invalid vhost_mode '%s' (expected client or server)",
				      option, kv->value);
		if (r < 0)
			return r;
		return set_field(
			obj, k->field,
			json_string(strcasecmp(kv->value, "client") ? "Server" : "Client"));
	case V_FDS:
		return parse_fds(option, kv, fds, nfds, err, errlen);
	}
	return -EINVAL;
}

int remote_body_from_cli(enum remote_body kind, const char *option, const char *arg, json_t **ret,
			 int *fds, unsigned *ret_nfds, char *err, size_t errlen)
{
	const struct body_key *keys = tables[kind];
	json_t *obj = json_object();
	unsigned nfds = 0;
	struct kv_list l;
	int r;

	if (!obj)
		return -ENOMEM;
	r = kv_split(option, arg, &l, err, errlen);
	for (unsigned i = 0; r >= 0 && i < l.n; i++) {
		const struct body_key *k = keys;

		while (k->key && strcmp(k->key, l.items[i].key) != 0)
			k++;
		if (!k->key)
			r = error_set(err, errlen, -EINVAL, "%s: unknown key '%s'", option,
				      l.items[i].key);
		else
			r = key_value(option, &l.items[i], k, obj, fds, &nfds, err, errlen);
	}
	kv_free(&l);
	if (r < 0) {
		json_decref(obj);
		return r;
	}
	*ret = obj;
	if (ret_nfds)
		*ret_nfds = nfds;
	return 0;
}
