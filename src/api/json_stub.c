/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TEMPORARY: a minimal VmConfig JSON mapping until wip-apijson's src/config/json.c lands (it
 * owns the real one, with every field and Cloud Hypervisor's validation). Only what the API
 * tests need: payload, cpus.boot_vcpus/max_vcpus, memory.size, serial/console mode and file,
 * rng.src. Deleted at the merge.
 */
#include "api/json_stub.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/util.h"

static int take_string(json_t *obj, const char *key, char **slot, const char *what, char *err,
		       size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return error_set(err, errlen, -EINVAL, "%s.%s: must be a string", what, key);
	free(*slot);
	*slot = strdup(json_string_value(v));
	return *slot ? 0 : -ENOMEM;
}

static int take_uint(json_t *obj, const char *key, uint64_t max, uint64_t *ret, const char *what,
		     char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return error_set(err, errlen, -EINVAL, "%s.%s: must be an integer in 0..%llu", what,
				 key, (unsigned long long)max);
	*ret = json_integer_value(v);
	return 0;
}

static int take_console(json_t *obj, const char *key, struct console_config *c, char *err,
			size_t errlen)
{
	static const char *const modes[] = { "Off", "Null", "Tty", "File", "Pty" };
	json_t *o = json_object_get(obj, key);
	if (!o)
		return 0;
	if (!json_is_object(o))
		return error_set(err, errlen, -EINVAL, "%s: must be an object", key);
	json_t *m = json_object_get(o, "mode");
	if (!json_is_string(m))
		return error_set(err, errlen, -EINVAL, "%s.mode: must be a string", key);
	for (unsigned i = 0; i < ARRAY_SIZE(modes); i++) {
		if (strcmp(json_string_value(m), modes[i]) == 0) {
			c->mode = (enum console_mode)i;
			return take_string(o, "file", &c->file, key, err, errlen);
		}
	}
	return error_set(err, errlen, -EINVAL, "%s.mode: unknown mode '%s'", key,
			 json_string_value(m));
}

int vm_config_from_json(const json_t *cobj, struct vm_config *ret, char *err, size_t errlen)
{
	json_t *obj = (json_t *)cobj, *o;
	uint64_t v;
	int r = 0;

	vm_config_init(ret);
	if (!json_is_object(obj))
		return error_set(err, errlen, -EINVAL, "VmConfig: must be an object");
	o = json_object_get(obj, "payload");
	if (!json_is_object(o)) {
		r = error_set(err, errlen, -EINVAL, "payload: required object");
		goto out;
	}
	if ((r = take_string(o, "kernel", &ret->payload.kernel, "payload", err, errlen)) < 0 ||
	    (r = take_string(o, "initramfs", &ret->payload.initramfs, "payload", err, errlen)) <
		    0 ||
	    (r = take_string(o, "cmdline", &ret->payload.cmdline, "payload", err, errlen)) < 0)
		goto out;
	o = json_object_get(obj, "cpus");
	if (json_is_object(o)) {
		v = ret->cpus.boot_vcpus;
		if ((r = take_uint(o, "boot_vcpus", 255, &v, "cpus", err, errlen)) < 0)
			goto out;
		ret->cpus.boot_vcpus = ret->cpus.max_vcpus = v;
		v = ret->cpus.max_vcpus;
		if ((r = take_uint(o, "max_vcpus", 255, &v, "cpus", err, errlen)) < 0)
			goto out;
		ret->cpus.max_vcpus = v;
	}
	o = json_object_get(obj, "memory");
	if (json_is_object(o) && (r = take_uint(o, "size", UINT64_MAX >> 1, &ret->memory.size,
						"memory", err, errlen)) < 0)
		goto out;
	if ((r = take_console(obj, "serial", &ret->serial, err, errlen)) < 0 ||
	    (r = take_console(obj, "console", &ret->console, err, errlen)) < 0)
		goto out;
	o = json_object_get(obj, "rng");
	if (json_is_object(o) && (r = take_string(o, "src", &ret->rng.src, "rng", err, errlen)) < 0)
		goto out;
	return 0;
out:
	vm_config_free(ret);
	return r;
}

static json_t *console_to_json(const struct console_config *c)
{
	return json_pack("{s:s, s:s*, s:b}", "mode", console_mode_name(c->mode), "file", c->file,
			 "iommu", c->iommu);
}

json_t *vm_config_to_json(const struct vm_config *cfg)
{
	return json_pack("{s:{s:i, s:i}, s:{s:I, s:b, s:b}, s:{s:s*, s:s*, s:s*}, s:o, s:o, "
			 "s:{s:s, s:b}}",
			 "cpus", "boot_vcpus", (int)cfg->cpus.boot_vcpus, "max_vcpus",
			 (int)cfg->cpus.max_vcpus, "memory", "size", (json_int_t)cfg->memory.size,
			 "shared", cfg->memory.shared, "hugepages", cfg->memory.hugepages,
			 "payload", "kernel", cfg->payload.kernel, "initramfs",
			 cfg->payload.initramfs, "cmdline", cfg->payload.cmdline, "serial",
			 console_to_json(&cfg->serial), "console", console_to_json(&cfg->console),
			 "rng", "src", config_rng_src(cfg), "iommu", cfg->rng.iommu);
}
