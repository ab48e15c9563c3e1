/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Typed JSON field readers with Cloud Hypervisor's serde rules (config/json_read.h).
 */
#include "config/json_read.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

int json_field_error(const struct json_reader *r, const char *key, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages quote what the client sent: keep them one printable line. */
	for (char *c = msg; *c; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	}
	if (!key)
		return error_set(r->err, r->errlen, -EINVAL, "%s: %s",
				 r->path[0] ? r->path : "body", msg);
	if (!r->path[0])
		return error_set(r->err, r->errlen, -EINVAL, "%s: %s", key, msg);
	return error_set(r->err, r->errlen, -EINVAL, "%s.%s: %s", r->path, key, msg);
}

int json_reader_init(struct json_reader *r, const json_t *obj, const char *path, char *err,
		     size_t errlen)
{
	r->obj = obj;
	snprintf(r->path, sizeof(r->path), "%s", path ? path : "");
	r->err = err;
	r->errlen = errlen;
	if (!json_is_object(obj))
		return json_field_error(r, NULL, "expected an object");
	return 0;
}

/* The member @key, or NULL when it is not given; the type error for null where serde has one. */
static int member(const struct json_reader *r, const char *key, enum json_presence p,
		  const json_t **ret)
{
	const json_t *v = json_object_get(r->obj, key);

	*ret = NULL;
	if (!v) {
		if (p == JSON_REQUIRED)
			return json_field_error(r, key, "missing");
		return 0;
	}
	if (json_is_null(v)) {
		if (p != JSON_OPTIONAL)
			return json_field_error(r, key, "must not be null");
		return 0;
	}
	*ret = v;
	return 0;
}

int json_reader_child(const struct json_reader *parent, const char *key, enum json_presence p,
		      struct json_reader *r, bool *ret_given)
{
	const json_t *v;
	char path[JSON_PATH_MAX];
	int rc = member(parent, key, p, &v), n;

	*ret_given = false;
	if (rc < 0 || !v)
		return rc;
	if (parent->path[0])
		n = snprintf(path, sizeof(path), "%s.%s", parent->path, key);
	else
		n = snprintf(path, sizeof(path), "%s", key);
	if (n < 0 || (size_t)n >= sizeof(path))
		return json_field_error(parent, key, "nested too deeply");
	rc = json_reader_init(r, v, path, parent->err, parent->errlen);
	if (rc < 0)
		return rc;
	*ret_given = true;
	return 0;
}

int json_reader_elem(const struct json_reader *parent, const char *key, const json_t *elem,
		     size_t index, struct json_reader *r)
{
	char path[JSON_PATH_MAX];
	int n;

	if (parent->path[0])
		n = snprintf(path, sizeof(path), "%s.%s[%zu]", parent->path, key, index);
	else
		n = snprintf(path, sizeof(path), "%s[%zu]", key, index);
	if (n < 0 || (size_t)n >= sizeof(path))
		return json_field_error(parent, key, "nested too deeply");
	return json_reader_init(r, elem, path, parent->err, parent->errlen);
}

int json_read_u64(const struct json_reader *r, const char *key, enum json_presence p, uint64_t max,
		  uint64_t *ret, bool *ret_given)
{
	const json_t *v;
	int rc = member(r, key, p, &v);
	json_int_t n;

	if (ret_given)
		*ret_given = false;
	if (rc < 0 || !v)
		return rc;
	/* jansson keeps integers in a signed 64-bit json_int_t: larger ones fail to parse. */
	if (max > (uint64_t)INT64_MAX)
		max = INT64_MAX;
	n = json_is_integer(v) ? json_integer_value(v) : -1;
	if (n < 0 || (uint64_t)n > max)
		return json_field_error(r, key, "expected an integer from 0 to %llu",
					(unsigned long long)max);
	*ret = (uint64_t)n;
	if (ret_given)
		*ret_given = true;
	return 0;
}

int json_read_bool(const struct json_reader *r, const char *key, enum json_presence p, bool *ret)
{
	const json_t *v;
	int rc = member(r, key, p, &v);

	if (rc < 0 || !v)
		return rc;
	if (!json_is_boolean(v))
		return json_field_error(r, key, "expected true or false");
	*ret = json_is_true(v);
	return 0;
}

int json_read_str(const struct json_reader *r, const char *key, enum json_presence p, char **ret)
{
	const json_t *v;
	int rc = member(r, key, p, &v);
	const char *s;
	size_t len;
	char *copy;

	if (rc < 0 || !v)
		return rc;
	if (!json_is_string(v))
		return json_field_error(r, key, "expected a string");
	s = json_string_value(v);
	len = json_string_length(v);
	if (strlen(s) != len)
		return json_field_error(r, key, "must not contain NUL characters");
	if (len > JSON_STRING_MAX)
		return json_field_error(r, key, "longer than %u bytes", JSON_STRING_MAX);
	copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	free(*ret);
	*ret = copy;
	return 0;
}

int json_read_enum(const struct json_reader *r, const char *key, enum json_presence p,
		   const char *const *names, unsigned *ret)
{
	const json_t *v;
	int rc = member(r, key, p, &v);
	char expected[128] = "";
	size_t used = 0;

	if (rc < 0 || !v)
		return rc;
	for (unsigned i = 0; names[i]; i++) {
		if (json_is_string(v) && strcmp(json_string_value(v), names[i]) == 0) {
			*ret = i;
			return 0;
		}
		used += (size_t)snprintf(expected + used, sizeof(expected) - used, "%s\"%s\"",
					 i == 0 ? "" : (names[i + 1] ? ", " : " or "), names[i]);
		if (used >= sizeof(expected))
			break;
	}
	return json_field_error(r, key, "expected %s", expected);
}

int json_read_array(const struct json_reader *r, const char *key, enum json_presence p, size_t max,
		    const json_t **ret)
{
	const json_t *v;
	int rc = member(r, key, p, &v);

	*ret = NULL;
	if (rc < 0 || !v)
		return rc;
	if (!json_is_array(v))
		return json_field_error(r, key, "expected an array");
	if (json_array_size(v) > max)
		return json_field_error(r, key, "more than %zu elements (the maximum)", max);
	*ret = v;
	return 0;
}

int json_refuse_unless_empty(const struct json_reader *r, const char *key)
{
	const json_t *v = json_object_get(r->obj, key);

	if (!v || json_is_null(v) || json_is_false(v))
		return 0;
	if (json_is_integer(v) && json_integer_value(v) == 0)
		return 0;
	if (json_is_array(v) && json_array_size(v) == 0)
		return 0;
	if (json_is_object(v) && json_object_size(v) == 0)
		return 0;
	return json_field_error(r, key, "not supported yet");
}

int json_refuse_unknown(const struct json_reader *r, const char *const *known)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)r->obj, key, v)
	{
		char expected[128] = "";
		size_t used = 0;
		unsigned i;

		for (i = 0; known[i] && strcmp(known[i], key) != 0; i++)
			;
		if (known[i])
			continue;
		for (i = 0; known[i] && used < sizeof(expected); i++)
			used += (size_t)snprintf(expected + used, sizeof(expected) - used, "%s%s",
						 i == 0 ? "" : (known[i + 1] ? ", " : " or "),
						 known[i]);
		return json_field_error(r, key, "unknown field (expected %s)", expected);
	}
	return 0;
}
