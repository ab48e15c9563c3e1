/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Named, typed state fields over jansson (state.h).
 */
#include "util/state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static int state_fail(char *err, size_t errlen, const char *key, const char *what)
{
	if (errlen)
		snprintf(err, errlen, "field '%s': %s", key, what);
	return -EINVAL;
}

static int state_set(json_t *obj, const char *key, json_t *v)
{
	if (!v || json_object_set_new(obj, key, v) < 0)
		return -ENOMEM;
	return 0;
}

static json_t *state_hex_u64(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
	return json_string(buf);
}

static json_t *state_hex_blob(const void *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *p = data;
	_cleanup_free_ char *s = malloc(2 * len + 1);

	if (!s)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		s[2 * i] = digits[p[i] >> 4];
		s[2 * i + 1] = digits[p[i] & 15];
	}
	return json_stringn(s, 2 * len);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* the writer uses lower case only: anything else is damage */
}

static int state_parse_u64(const json_t *v, uint64_t *ret)
{
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	uint64_t x = 0;

	if (!s || n < 3 || n > 18 || s[0] != '0' || s[1] != 'x')
		return -EINVAL;
	for (size_t i = 2; i < n; i++) {
		int d = hex_digit(s[i]);
		if (d < 0)
			return -EINVAL;
		x = x << 4 | (uint64_t)d;
	}
	*ret = x;
	return 0;
}

static int state_parse_blob(const json_t *v, uint8_t *ret, size_t max, size_t *ret_len)
{
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);

	if (!s || n % 2 || n / 2 > max)
		return -EINVAL;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		ret[i] = (uint8_t)(hi << 4 | lo);
	}
	*ret_len = n / 2;
	return 0;
}

int state_set_bool(json_t *obj, const char *key, bool v)
{
	return state_set(obj, key, json_boolean(v));
}

int state_set_u32(json_t *obj, const char *key, uint32_t v)
{
	return state_set(obj, key, json_integer(v));
}

int state_set_u64(json_t *obj, const char *key, uint64_t v)
{
	return state_set(obj, key, state_hex_u64(v));
}

int state_set_str(json_t *obj, const char *key, const char *v)
{
	return state_set(obj, key, json_string(v));
}

int state_set_blob(json_t *obj, const char *key, const void *data, size_t len)
{
	return state_set(obj, key, state_hex_blob(data, len));
}

json_t *state_add_object(json_t *obj, const char *key)
{
	json_t *o = json_object();
	if (!o || json_object_set_new(obj, key, o) < 0)
		return NULL;
	return o;
}

json_t *state_add_array(json_t *obj, const char *key)
{
	json_t *a = json_array();
	if (!a || json_object_set_new(obj, key, a) < 0)
		return NULL;
	return a;
}

json_t *state_append_object(json_t *array)
{
	json_t *o = json_object();
	if (!o || json_array_append_new(array, o) < 0)
		return NULL;
	return o;
}

static const json_t *state_need(const json_t *obj, const char *key, char *err, size_t errlen)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
	if (!v)
		state_fail(err, errlen, key, "missing");
	return v;
}

int state_get_bool(const json_t *obj, const char *key, bool *ret, char *err, size_t errlen)
{
	const json_t *v = state_need(obj, key, err, errlen);
	if (!v)
		return -EINVAL;
	if (!json_is_boolean(v))
		return state_fail(err, errlen, key, "expected true or false");
	*ret = json_is_true(v);
	return 0;
}

static int state_int(const json_t *v, const char *key, uint64_t max, uint64_t *ret, char *err,
		     size_t errlen)
{
	char what[64];
	json_int_t i = json_integer_value(v);

	if (!json_is_integer(v) || i < 0 || (uint64_t)i > max) {
		snprintf(what, sizeof(what), "expected an integer 0..%" PRIu64, max);
		return state_fail(err, errlen, key, what);
	}
	*ret = (uint64_t)i;
	return 0;
}

int state_get_u32(const json_t *obj, const char *key, uint32_t max, uint32_t *ret, char *err,
		  size_t errlen)
{
	const json_t *v = state_need(obj, key, err, errlen);
	uint64_t x;

	if (!v || state_int(v, key, max, &x, err, errlen) < 0)
		return -EINVAL;
	*ret = (uint32_t)x;
	return 0;
}

int state_get_u64(const json_t *obj, const char *key, uint64_t *ret, char *err, size_t errlen)
{
	const json_t *v = state_need(obj, key, err, errlen);
	if (!v)
		return -EINVAL;
	if (state_parse_u64(v, ret) < 0)
		return state_fail(err, errlen, key, "expected a hex string \"0x...\" of 64 bits");
	return 0;
}

int state_get_str(const json_t *obj, const char *key, size_t max, const char **ret, char *err,
		  size_t errlen)
{
	const json_t *v = state_need(obj, key, err, errlen);
	if (!v)
		return -EINVAL;
	if (!json_is_string(v) || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return state_fail(err, errlen, key, "expected a short string");
	*ret = json_string_value(v);
	return 0;
}

int state_get_blob_max(const json_t *obj, const char *key, void *ret, size_t max, size_t *ret_len,
		       char *err, size_t errlen)
{
	const json_t *v = state_need(obj, key, err, errlen);
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;

	if (!v)
		return -EINVAL;
	if (max > STATE_MAX_BLOB)
		max = STATE_MAX_BLOB;
	buf = malloc(max ? max : 1);
	if (!buf)
		return -ENOMEM;
	if (state_parse_blob(v, buf, max, &len) < 0) {
		char what[80];
		snprintf(what, sizeof(what), "expected a hex string of at most %zu bytes", max);
		return state_fail(err, errlen, key, what);
	}
	memcpy(ret, buf, len);
	*ret_len = len;
	return 0;
}

int state_get_blob(const json_t *obj, const char *key, void *ret, size_t len, char *err,
		   size_t errlen)
{
	const json_t *v = state_need(obj, key, err, errlen);
	char what[80];

	if (!v)
		return -EINVAL;
	snprintf(what, sizeof(what), "expected a hex string of %zu bytes", len);
	if (!json_is_string(v) || json_string_length(v) != 2 * len)
		return state_fail(err, errlen, key, what);
	return state_get_blob_max(obj, key, ret, len, &(size_t){ 0 }, err, errlen);
}

int state_get_object(const json_t *obj, const char *key, const json_t **ret, char *err,
		     size_t errlen)
{
	const json_t *v = state_need(obj, key, err, errlen);
	if (!v)
		return -EINVAL;
	if (!json_is_object(v))
		return state_fail(err, errlen, key, "expected an object");
	*ret = v;
	return 0;
}

int state_get_array(const json_t *obj, const char *key, size_t max, const json_t **ret, char *err,
		    size_t errlen)
{
	const json_t *v = state_need(obj, key, err, errlen);
	char what[64];

	if (!v)
		return -EINVAL;
	if (max > STATE_MAX_ARRAY)
		max = STATE_MAX_ARRAY;
	snprintf(what, sizeof(what), "expected an array of at most %zu entries", max);
	if (!json_is_array(v) || json_array_size(v) > max)
		return state_fail(err, errlen, key, what);
	*ret = v;
	return 0;
}

/* Field tables. */

static size_t state_type_size(enum state_type t)
{
	switch (t) {
	case STATE_BOOL:
		return sizeof(bool);
	case STATE_U8:
	case STATE_BLOB:
		return 1;
	case STATE_U16:
		return 2;
	case STATE_U32:
		return 4;
	case STATE_U64:
		return 8;
	}
	return 0;
}

static json_t *state_value_out(enum state_type t, const uint8_t *p)
{
	switch (t) {
	case STATE_BOOL:
		return json_boolean(*(const bool *)p);
	case STATE_U8:
		return json_integer(*p);
	case STATE_U16:
		return json_integer(*(const uint16_t *)p);
	case STATE_U32:
		return json_integer(*(const uint32_t *)p);
	case STATE_U64:
		return state_hex_u64(*(const uint64_t *)p);
	case STATE_BLOB:
		break;
	}
	return NULL;
}

static int state_value_in(enum state_type t, const json_t *v, uint8_t *p)
{
	static const uint64_t max[] = {
		[STATE_U8] = UINT8_MAX, [STATE_U16] = UINT16_MAX, [STATE_U32] = UINT32_MAX
	};
	json_int_t i = json_integer_value(v);
	uint64_t x;

	switch (t) {
	case STATE_BOOL:
		if (!json_is_boolean(v))
			return -EINVAL;
		*(bool *)p = json_is_true(v);
		return 0;
	case STATE_U8:
	case STATE_U16:
	case STATE_U32:
		if (!json_is_integer(v) || i < 0 || (uint64_t)i > max[t])
			return -EINVAL;
		if (t == STATE_U8)
			*p = (uint8_t)i;
		else if (t == STATE_U16)
			*(uint16_t *)p = (uint16_t)i;
		else
			*(uint32_t *)p = (uint32_t)i;
		return 0;
	case STATE_U64:
		if (state_parse_u64(v, &x) < 0)
			return -EINVAL;
		*(uint64_t *)p = x;
		return 0;
	case STATE_BLOB:
		break;
	}
	return -EINVAL;
}

static const char *state_type_what(enum state_type t)
{
	switch (t) {
	case STATE_BOOL:
		return "true or false";
	case STATE_U8:
		return "an integer 0..255";
	case STATE_U16:
		return "an integer 0..65535";
	case STATE_U32:
		return "an integer 0..4294967295";
	case STATE_U64:
		return "a hex string \"0x...\" of 64 bits";
	case STATE_BLOB:
		return "a hex string";
	}
	return "?";
}

int state_save_fields(json_t *obj, const struct state_field *fields, size_t n, const void *src)
{
	const uint8_t *base = src;

	for (size_t i = 0; i < n; i++) {
		const struct state_field *f = &fields[i];
		const uint8_t *p = base + f->offset;
		json_t *v;

		if (f->type == STATE_BLOB) {
			v = state_hex_blob(p, f->count);
		} else if (f->count == 1) {
			v = state_value_out(f->type, p);
		} else {
			v = json_array();
			for (size_t k = 0; v && k < f->count; k++) {
				json_t *e =
					state_value_out(f->type, p + k * state_type_size(f->type));
				if (!e || json_array_append_new(v, e) < 0) {
					json_decref(v);
					v = NULL;
				}
			}
		}
		if (state_set(obj, f->name, v) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int state_load_one(const json_t *obj, const struct state_field *f, uint8_t *base, char *err,
			  size_t errlen)
{
	const json_t *v = state_need(obj, f->name, err, errlen);
	uint8_t *p = base + f->offset;
	char what[96];

	if (!v)
		return -EINVAL;
	if (f->type == STATE_BLOB)
		return state_get_blob(obj, f->name, p, f->count, err, errlen);
	if (f->count == 1) {
		if (state_value_in(f->type, v, p) < 0) {
			snprintf(what, sizeof(what), "expected %s", state_type_what(f->type));
			return state_fail(err, errlen, f->name, what);
		}
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) != f->count) {
		snprintf(what, sizeof(what), "expected an array of %zu entries", f->count);
		return state_fail(err, errlen, f->name, what);
	}
	for (size_t k = 0; k < f->count; k++) {
		if (state_value_in(f->type, json_array_get(v, k),
				   p + k * state_type_size(f->type)) < 0) {
			snprintf(what, sizeof(what), "entry %zu: expected %s", k,
				 state_type_what(f->type));
			return state_fail(err, errlen, f->name, what);
		}
	}
	return 0;
}

int state_load_fields(const json_t *obj, const struct state_field *fields, size_t n, void *dst,
		      char *err, size_t errlen)
{
	size_t size = 0;

	if (!json_is_object(obj)) {
		if (errlen)
			snprintf(err, errlen, "expected an object");
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		size_t end = fields[i].offset + fields[i].count * state_type_size(fields[i].type);
		size = MAX(size, end);
	}
	/* Read into a copy: @dst changes only when every field was good. */
	_cleanup_free_ uint8_t *tmp = malloc(size ? size : 1);
	if (!tmp)
		return -ENOMEM;
	memcpy(tmp, dst, size);
	for (size_t i = 0; i < n; i++) {
		int r = state_load_one(obj, &fields[i], tmp, err, errlen);
		if (r < 0)
			return r;
	}
	memcpy(dst, tmp, size);
	return 0;
}
