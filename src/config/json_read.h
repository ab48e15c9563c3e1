/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to config/: typed field readers for the JSON parsers (json.c, json_body.c), with
 * Cloud Hypervisor's serde rules for missing and null fields. Every reader returns 0, or
 * -EINVAL with "<path>.<key>: <problem>" in the reader's error buffer, or -ENOMEM.
 */
#ifndef CUBICLE_CONFIG_JSON_READ_H
#define CUBICLE_CONFIG_JSON_READ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_PATH_MAX	128
#define JSON_STRING_MAX 4096 /* a path, a URL, a command line: PATH_MAX bounds them all */

/* How a field may be absent, as serde treats Cloud Hypervisor's fields. */
enum json_presence {
	JSON_OPTIONAL, /* Option<T>: missing or null = not given */
	JSON_DEFAULT,  /* #[serde(default)] T: missing = the default; null is a type error */
	JSON_REQUIRED, /* T without a default: missing is an error, null a type error */
};

/* An object being read: @path names it in messages ("" for the body itself, "disks[1]"). */
struct json_reader {
	const json_t *obj;
	char path[JSON_PATH_MAX];
	char *err;
	size_t errlen;
};

/*
 * Starts reading @obj (which must be a JSON object: otherwise "<path>: expected an object", or
 * "body: expected an object" at the top) under @path.
 */
int json_reader_init(struct json_reader *r, const json_t *obj, const char *path, char *err,
		     size_t errlen);
/* A reader for the member @key of @parent (an object); *@ret_given is false when the member is
 * missing (or null, for JSON_OPTIONAL), and then @r is not initialised. */
int json_reader_child(const struct json_reader *parent, const char *key, enum json_presence p,
		      struct json_reader *r, bool *ret_given);
/* A reader for the @index-th element of the array member @key ("disks[1]"). */
int json_reader_elem(const struct json_reader *parent, const char *key, const json_t *elem,
		     size_t index, struct json_reader *r);

/* "<path>.<key>: <fmt...>" (just "<key>: " at the top); returns -EINVAL. */
int json_field_error(const struct json_reader *r, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Readers. Each leaves *ret unchanged and *ret_given false (when non-NULL) if the field is not
 * given. */
int json_read_u64(const struct json_reader *r, const char *key, enum json_presence p, uint64_t max,
		  uint64_t *ret, bool *ret_given);
int json_read_bool(const struct json_reader *r, const char *key, enum json_presence p, bool *ret);
/* A string without NUL bytes, at most JSON_STRING_MAX bytes; *ret is replaced by a heap copy
 * (the previous value freed). */
int json_read_str(const struct json_reader *r, const char *key, enum json_presence p, char **ret);
/* An enum given as one of the NULL-terminated @names (exact case, as serde); *ret = its index. */
int json_read_enum(const struct json_reader *r, const char *key, enum json_presence p,
		   const char *const *names, unsigned *ret);
/* The member @key as an array (or NULL when not given / null), at most @max elements. */
int json_read_array(const struct json_reader *r, const char *key, enum json_presence p, size_t max,
		    const json_t **ret);

/* For Cloud Hypervisor's structs with deny_unknown_fields: "<key>: unknown field (expected
 * a or b)" for the first member of the object not in the NULL-terminated @known. */
int json_refuse_unknown(const struct json_reader *r, const char *const *known);

/*
 * Refuses a field cubicle cannot honour yet: "<key>: not supported yet" unless it is missing,
 * null, false, 0, or an empty array or object.
 */
int json_refuse_unless_empty(const struct json_reader *r, const char *key);

#endif
