/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Saved state as named, typed fields (DESIGN §7): every component of a snapshot writes its
 * state into a JSON object (jansson) and reads it back through these helpers, never as a raw
 * struct dump, so that the format is readable, versioned and checked field by field.
 *
 * Encoding: booleans are JSON booleans; unsigned integers of up to 32 bits are JSON integers;
 * 64-bit values are strings of hex digits ("0xffffffff81000000"), because JSON numbers are not
 * exact past 2^53; byte blobs (an XSAVE area, a LAPIC page) are strings of hex digits of a
 * fixed length; arrays of any of these are JSON arrays of a fixed length.
 *
 * Readers are the guest's and the file's adversary: every getter checks the type, the range
 * and the length, and fails with -EINVAL and one line in @err naming the field
 * ("field 'last_avail_idx': expected an integer 0..65535"). Nothing is written to the
 * destination unless the whole read succeeded (state_load_fields()).
 */
#ifndef CUBICLE_UTIL_STATE_H
#define CUBICLE_UTIL_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Limits on what a reader accepts, whatever the file says. */
#define STATE_MAX_BLOB	(64 * 1024) /* bytes of one hex blob */
#define STATE_MAX_ARRAY 4096	    /* entries of one array */

enum state_type {
	STATE_BOOL, /* bool */
	STATE_U8,   /* uint8_t */
	STATE_U16,  /* uint16_t */
	STATE_U32,  /* uint32_t */
	STATE_U64,  /* uint64_t, as a hex string */
	STATE_BLOB, /* uint8_t[count], one hex string */
};

/*
 * One field of a C struct: its JSON name, type, offset, and @count (> 1: a fixed-length array
 * of that many elements, or the size in bytes of a STATE_BLOB). Build tables with the macros.
 */
struct state_field {
	const char *name;
	enum state_type type;
	size_t offset;
	size_t count;
};

#define STATE_FIELD_(st, member, type_, n)                  \
	{                                                   \
#member, (type_), offsetof(st, member), (n) \
	}
#define STATE_BOOL(st, m) STATE_FIELD_(st, m, STATE_BOOL, 1)
#define STATE_U8(st, m)	  STATE_FIELD_(st, m, STATE_U8, 1)
#define STATE_U16(st, m)  STATE_FIELD_(st, m, STATE_U16, 1)
#define STATE_U32(st, m)  STATE_FIELD_(st, m, STATE_U32, 1)
#define STATE_U64(st, m)  STATE_FIELD_(st, m, STATE_U64, 1)
/* An array member: every element is saved (e.g. uint64_t redirtbl[24]). */
#define STATE_ARRAY(st, m, type_) \
	STATE_FIELD_(st, m, type_, sizeof(((st *)0)->m) / sizeof(((st *)0)->m[0]))
/* A byte array member saved as one hex string (e.g. uint8_t regs[1024]). */
#define STATE_BLOB(st, m) STATE_FIELD_(st, m, STATE_BLOB, sizeof(((st *)0)->m))

/*
 * Writes every field of @src described by @fields into object @obj (existing keys are
 * replaced). Returns 0 or -ENOMEM.
 */
int state_save_fields(json_t *obj, const struct state_field *fields, size_t n, const void *src);
/*
 * Reads every field of @fields from @obj into @dst: all must be present with their type, range
 * and length (other keys of @obj are the caller's: nested objects; a newer writer is refused
 * by the snapshot's format version, not here). On failure @dst is unchanged.
 * Returns 0 or -EINVAL with @err set.
 */
int state_load_fields(const json_t *obj, const struct state_field *fields, size_t n, void *dst,
		      char *err, size_t errlen);

/* Single values, for state that is not a flat struct. Setters return 0 or -ENOMEM. */
int state_set_bool(json_t *obj, const char *key, bool v);
int state_set_u32(json_t *obj, const char *key, uint32_t v);
int state_set_u64(json_t *obj, const char *key, uint64_t v);
int state_set_str(json_t *obj, const char *key, const char *v);
int state_set_blob(json_t *obj, const char *key, const void *data, size_t len);
/* Adds a new empty object (array) under @key; returns it (owned by @obj) or NULL. */
json_t *state_add_object(json_t *obj, const char *key);
json_t *state_add_array(json_t *obj, const char *key);
/* Appends a new empty object to @array; returns it or NULL. */
json_t *state_append_object(json_t *array);

/* Getters: 0, or -EINVAL with @err naming @key (missing, wrong type, out of range). */
int state_get_bool(const json_t *obj, const char *key, bool *ret, char *err, size_t errlen);
/* An integer in 0..@max. */
int state_get_u32(const json_t *obj, const char *key, uint32_t max, uint32_t *ret, char *err,
		  size_t errlen);
int state_get_u64(const json_t *obj, const char *key, uint64_t *ret, char *err, size_t errlen);
/* A string of at most @max bytes; *@ret points into @obj. */
int state_get_str(const json_t *obj, const char *key, size_t max, const char **ret, char *err,
		  size_t errlen);
/* A blob of exactly @len bytes (a hex string of 2 * @len digits). */
int state_get_blob(const json_t *obj, const char *key, void *ret, size_t len, char *err,
		   size_t errlen);
/* A blob of at most @max bytes; *@ret_len is its length. */
int state_get_blob_max(const json_t *obj, const char *key, void *ret, size_t max, size_t *ret_len,
		       char *err, size_t errlen);
/* An object; *@ret points into @obj. */
int state_get_object(const json_t *obj, const char *key, const json_t **ret, char *err,
		     size_t errlen);
/* An array of at most @max entries (and at most STATE_MAX_ARRAY); *@ret points into @obj. */
int state_get_array(const json_t *obj, const char *key, size_t max, const json_t **ret, char *err,
		    size_t errlen);

#endif
