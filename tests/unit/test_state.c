/* SPDX-License-Identifier: Apache-2.0 */
/* Named, typed state fields (util/state.c): every type both ways, and every malformed value a
 * damaged or hostile file can hold refused with the field's name, the destination untouched. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/state.h"
#include "util/util.h"

struct sample {
	bool b;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	uint16_t a16[3];
	uint64_t a64[2];
	bool abool[2];
	uint8_t blob[4];
};

static const struct state_field sample_fields[] = {
	STATE_BOOL(struct sample, b),
	STATE_U8(struct sample, u8),
	STATE_U16(struct sample, u16),
	STATE_U32(struct sample, u32),
	STATE_U64(struct sample, u64),
	STATE_ARRAY(struct sample, a16, STATE_U16),
	STATE_ARRAY(struct sample, a64, STATE_U64),
	STATE_ARRAY(struct sample, abool, STATE_BOOL),
	STATE_BLOB(struct sample, blob),
};

static const struct sample sample_value = {
	.b = true,
	.u8 = 255,
	.u16 = 65535,
	.u32 = 4294967295u,
	.u64 = 0xffffffff81000000ULL,
	.a16 = { 0, 1, 65535 },
	.a64 = { 0, UINT64_MAX },
	.abool = { false, true },
	.blob = { 0x00, 0xab, 0x7f, 0xff },
};

static const char sample_json[] =
	"{\"a16\":[0,1,65535],\"a64\":[\"0x0\",\"0xffffffffffffffff\"],\"abool\":[false,true],"
	"\"b\":true,\"blob\":\"00ab7fff\",\"u16\":65535,\"u32\":4294967295,\"u64\":"
	"\"0xffffffff81000000\",\"u8\":255}";

static char *dump(const json_t *j)
{
	char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	assert_non_null(s);
	return s;
}

static json_t *sample_object(void)
{
	json_t *o = json_loads(sample_json, 0, NULL);
	assert_non_null(o);
	return o;
}

static void test_fields_round_trip(void **state)
{
	json_t *o = json_object();
	struct sample got;
	char err[128] = "";

	assert_int_equal(
		state_save_fields(o, sample_fields, ARRAY_SIZE(sample_fields), &sample_value), 0);
	char *s = dump(o);
	assert_string_equal(s, sample_json);

	memset(&got, 0x5a, sizeof(got));
	assert_int_equal(state_load_fields(o, sample_fields, ARRAY_SIZE(sample_fields), &got, err,
					   sizeof(err)),
			 0);
	assert_true(got.b == sample_value.b && got.u8 == sample_value.u8 &&
		    got.u16 == sample_value.u16 && got.u32 == sample_value.u32 &&
		    got.u64 == sample_value.u64);
	assert_memory_equal(got.a16, sample_value.a16, sizeof(got.a16));
	assert_memory_equal(got.a64, sample_value.a64, sizeof(got.a64));
	assert_memory_equal(got.abool, sample_value.abool, sizeof(got.abool));
	assert_memory_equal(got.blob, sample_value.blob, sizeof(got.blob));

	/* save → load → save is byte-identical */
	json_t *o2 = json_object();
	assert_int_equal(state_save_fields(o2, sample_fields, ARRAY_SIZE(sample_fields), &got), 0);
	char *s2 = dump(o2);
	assert_string_equal(s, s2);
	free(s);
	free(s2);
	json_decref(o);
	json_decref(o2);
}

/* Replaces @key of the sample with @bad (JSON text) and expects the load to fail, naming
 * @key, with the destination unchanged. */
static void expect_refused(const char *key, const char *bad)
{
	json_t *o = sample_object();
	json_t *v = json_loads(bad, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	struct sample dst, before;
	char err[160] = "", want[64];

	assert_non_null(v);
	assert_int_equal(json_object_set_new(o, key, v), 0);
	memset(&dst, 0x33, sizeof(dst));
	before = dst;
	if (state_load_fields(o, sample_fields, ARRAY_SIZE(sample_fields), &dst, err,
			      sizeof(err)) != -EINVAL)
		fail_msg("%s = %s was accepted", key, bad);
	snprintf(want, sizeof(want), "field '%s'", key);
	if (!strstr(err, want))
		fail_msg("%s = %s: error \"%s\" does not name the field", key, bad, err);
	assert_memory_equal(&dst, &before, sizeof(dst));
	json_decref(o);
}

static void test_bad_types(void **state)
{
	expect_refused("b", "1");
	expect_refused("b", "\"true\"");
	expect_refused("b", "null");
	expect_refused("u8", "true");
	expect_refused("u8", "1.0");
	expect_refused("u8", "\"1\"");
	expect_refused("u32", "[]");
	expect_refused("u64", "1");
	expect_refused("u64", "{}");
	expect_refused("a16", "{}");
	expect_refused("a16", "1");
	expect_refused("blob", "[0,171,127,255]");
	expect_refused("blob", "null");
}

static void test_bad_ranges(void **state)
{
	expect_refused("u8", "256");
	expect_refused("u8", "-1");
	expect_refused("u16", "65536");
	expect_refused("u32", "4294967296");
	expect_refused("u32", "-4294967295");
	expect_refused("a16", "[0,1,65536]");
	expect_refused("a16", "[0,-1,2]");
	expect_refused("a64", "[\"0x0\",1]");
	expect_refused("abool", "[false,0]");
}

static void test_bad_lengths(void **state)
{
	expect_refused("a16", "[0,1]");
	expect_refused("a16", "[0,1,2,3]");
	expect_refused("a16", "[]");
	expect_refused("a64", "[\"0x0\"]");
	expect_refused("blob", "\"00ab7f\"");
	expect_refused("blob", "\"00ab7fff00\"");
	expect_refused("blob", "\"00ab7ff\""); /* odd digit count */
	expect_refused("blob", "\"\"");
}

static void test_hex_edges(void **state)
{
	/* u64: "0x" and 1..16 lower-case hex digits, nothing else */
	expect_refused("u64", "\"0x\"");
	expect_refused("u64", "\"0X1\"");
	expect_refused("u64", "\"1\"");
	expect_refused("u64", "\"x1\"");
	expect_refused("u64", "\"0xFF\"");
	expect_refused("u64", "\"0x-1\"");
	expect_refused("u64", "\"0x 1\"");
	expect_refused("u64", "\"0x1g\"");
	expect_refused("u64", "\"0x10000000000000000\""); /* 17 digits */
	expect_refused("u64", "\"0x1\\u0000\"");	  /* an embedded NUL */
	expect_refused("u64", "\"\"");
	/* blobs: lower-case hex digit pairs */
	expect_refused("blob", "\"00AB7FFF\"");
	expect_refused("blob", "\"00ab7fzz\"");
	expect_refused("blob", "\"0xab7fff\"");
	expect_refused("blob", "\"00ab7f\\u0000f\"");

	/* Leading zeros up to 16 digits, and both ends of the range, are fine. */
	json_t *o = json_pack("{s:s, s:s, s:s}", "a", "0x0000000000000001", "b", "0x0", "c",
			      "0xffffffffffffffff");
	uint64_t v;
	char err[128];
	assert_int_equal(state_get_u64(o, "a", &v, err, sizeof(err)), 0);
	assert_true(v == 1);
	assert_int_equal(state_get_u64(o, "b", &v, err, sizeof(err)), 0);
	assert_true(v == 0);
	assert_int_equal(state_get_u64(o, "c", &v, err, sizeof(err)), 0);
	assert_true(v == UINT64_MAX);
	json_decref(o);
}

static void test_missing_and_not_object(void **state)
{
	struct sample dst = { 0 }, before = dst;
	char err[128] = "";

	for (size_t i = 0; i < ARRAY_SIZE(sample_fields); i++) {
		json_t *o = sample_object();
		char want[64];
		assert_int_equal(json_object_del(o, sample_fields[i].name), 0);
		assert_int_equal(state_load_fields(o, sample_fields, ARRAY_SIZE(sample_fields),
						   &dst, err, sizeof(err)),
				 -EINVAL);
		snprintf(want, sizeof(want), "field '%s': missing", sample_fields[i].name);
		assert_string_equal(err, want);
		json_decref(o);
	}
	json_t *a = json_array();
	assert_int_equal(state_load_fields(a, sample_fields, ARRAY_SIZE(sample_fields), &dst, err,
					   sizeof(err)),
			 -EINVAL);
	assert_int_equal(state_load_fields(NULL, sample_fields, ARRAY_SIZE(sample_fields), &dst,
					   err, sizeof(err)),
			 -EINVAL);
	/* No room for a message: still refused, nothing written. */
	assert_int_equal(
		state_load_fields(a, sample_fields, ARRAY_SIZE(sample_fields), &dst, NULL, 0),
		-EINVAL);
	assert_memory_equal(&dst, &before, sizeof(dst));
	/* Keys the table does not name are the caller's. */
	json_t *o = sample_object();
	assert_int_equal(json_object_set_new(o, "nested", json_object()), 0);
	assert_int_equal(state_load_fields(o, sample_fields, ARRAY_SIZE(sample_fields), &dst, err,
					   sizeof(err)),
			 0);
	json_decref(o);
	json_decref(a);
}

static void test_error_names_entry(void **state)
{
	json_t *o = sample_object();
	struct sample dst;
	char err[128] = "";

	assert_int_equal(json_object_set_new(o, "a16", json_loads("[0,\"x\",2]", 0, NULL)), 0);
	assert_int_equal(state_load_fields(o, sample_fields, ARRAY_SIZE(sample_fields), &dst, err,
					   sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "field 'a16': entry 1: expected an integer 0..65535");
	json_decref(o);
}

static void test_setters(void **state)
{
	json_t *o = json_object();
	const uint8_t bytes[] = { 0xde, 0xad, 0x00 };

	assert_int_equal(state_set_bool(o, "b", false), 0);
	assert_int_equal(state_set_u32(o, "n", 4294967295u), 0);
	assert_int_equal(state_set_u64(o, "x", 0), 0);
	assert_int_equal(state_set_str(o, "s", "hi"), 0);
	assert_int_equal(state_set_blob(o, "blob", bytes, sizeof(bytes)), 0);
	assert_int_equal(state_set_blob(o, "empty", bytes, 0), 0);
	json_t *sub = state_add_object(o, "sub");
	assert_non_null(sub);
	assert_int_equal(state_set_u32(sub, "k", 1), 0);
	json_t *arr = state_add_array(o, "arr");
	assert_non_null(arr);
	json_t *e = state_append_object(arr);
	assert_non_null(e);
	assert_int_equal(state_set_u64(e, "v", 0xabc), 0);
	/* A setter replaces an existing key. */
	assert_int_equal(state_set_u32(o, "n", 7), 0);
	char *s = dump(o);
	assert_string_equal(s,
			    "{\"arr\":[{\"v\":\"0xabc\"}],\"b\":false,\"blob\":\"dead00\","
			    "\"empty\":\"\",\"n\":7,\"s\":\"hi\",\"sub\":{\"k\":1},\"x\":\"0x0\"}");
	free(s);
	json_decref(o);
}

static void test_getters(void **state)
{
	json_t *o = json_loads("{\"b\":true,\"n\":10,\"x\":\"0x10\",\"s\":\"hello\","
			       "\"blob\":\"0102\",\"o\":{},\"a\":[1,2,3],\"z\":null}",
			       0, NULL);
	bool b = false;
	uint32_t n = 0;
	uint64_t x = 0;
	const char *s = NULL;
	uint8_t blob[4] = { 0 };
	size_t len = 0;
	const json_t *j = NULL;
	char err[128];

	assert_non_null(o);
	assert_int_equal(state_get_bool(o, "b", &b, err, sizeof(err)), 0);
	assert_true(b);
	assert_int_equal(state_get_bool(o, "n", &b, err, sizeof(err)), -EINVAL);
	assert_int_equal(state_get_u32(o, "n", 10, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 10);
	n = 99;
	assert_int_equal(state_get_u32(o, "n", 9, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "field 'n': expected an integer 0..9");
	assert_int_equal(n, 99); /* unchanged */
	assert_int_equal(state_get_u32(o, "x", 9, &n, err, sizeof(err)), -EINVAL);
	assert_int_equal(state_get_u64(o, "x", &x, err, sizeof(err)), 0);
	assert_true(x == 16);
	assert_int_equal(state_get_u64(o, "n", &x, err, sizeof(err)), -EINVAL);
	assert_int_equal(state_get_str(o, "s", 5, &s, err, sizeof(err)), 0);
	assert_string_equal(s, "hello");
	assert_int_equal(state_get_str(o, "s", 4, &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(state_get_str(o, "n", 10, &s, err, sizeof(err)), -EINVAL);

	assert_int_equal(state_get_blob(o, "blob", blob, 2, err, sizeof(err)), 0);
	assert_int_equal(blob[0], 1);
	assert_int_equal(blob[1], 2);
	assert_int_equal(state_get_blob(o, "blob", blob, 3, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "field 'blob': expected a hex string of 3 bytes");
	assert_int_equal(state_get_blob(o, "blob", blob, 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(state_get_blob_max(o, "blob", blob, 4, &len, err, sizeof(err)), 0);
	assert_int_equal(len, 2);
	memset(blob, 0xee, sizeof(blob));
	assert_int_equal(state_get_blob_max(o, "blob", blob, 1, &len, err, sizeof(err)), -EINVAL);
	assert_int_equal(blob[0], 0xee); /* nothing written on failure */

	assert_int_equal(state_get_object(o, "o", &j, err, sizeof(err)), 0);
	assert_true(json_is_object(j));
	assert_int_equal(state_get_object(o, "a", &j, err, sizeof(err)), -EINVAL);
	assert_int_equal(state_get_array(o, "a", 3, &j, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(j), 3);
	assert_int_equal(state_get_array(o, "a", 2, &j, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "field 'a': expected an array of at most 2 entries");
	assert_int_equal(state_get_array(o, "o", 3, &j, err, sizeof(err)), -EINVAL);

	/* null is a value of the wrong type, not a missing key */
	assert_int_equal(state_get_u32(o, "z", 1, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "field 'z': expected an integer 0..1");
	assert_int_equal(state_get_u32(o, "nope", 1, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "field 'nope': missing");
	/* on something that is not an object, every key is missing */
	assert_int_equal(state_get_u32(NULL, "n", 1, &n, err, sizeof(err)), -EINVAL);
	assert_int_equal(state_get_u64(j, "x", &x, err, sizeof(err)), -EINVAL);
	json_decref(o);
}

static void test_limits(void **state)
{
	/* Arrays past STATE_MAX_ARRAY and blobs past STATE_MAX_BLOB are refused whatever the
	 * caller's maximum. */
	json_t *o = json_object();
	json_t *a = json_array();
	const json_t *j;
	char err[128];

	for (unsigned i = 0; i <= STATE_MAX_ARRAY; i++)
		assert_int_equal(json_array_append_new(a, json_integer(i)), 0);
	assert_int_equal(json_object_set_new(o, "a", a), 0);
	assert_int_equal(state_get_array(o, "a", SIZE_MAX, &j, err, sizeof(err)), -EINVAL);
	json_array_remove(a, 0);
	assert_int_equal(state_get_array(o, "a", SIZE_MAX, &j, err, sizeof(err)), 0);

	size_t n = STATE_MAX_BLOB + 1;
	char *hex = malloc(2 * n + 1);
	uint8_t *buf = malloc(n);
	size_t len;
	assert_non_null(hex);
	assert_non_null(buf);
	memset(hex, '0', 2 * n);
	hex[2 * n] = 0;
	assert_int_equal(state_set_str(o, "big", hex), 0);
	assert_int_equal(state_get_blob_max(o, "big", buf, n, &len, err, sizeof(err)), -EINVAL);
	hex[2 * (n - 1)] = 0;
	assert_int_equal(state_set_str(o, "big", hex), 0);
	assert_int_equal(state_get_blob_max(o, "big", buf, n, &len, err, sizeof(err)), 0);
	assert_int_equal(len, STATE_MAX_BLOB);
	free(hex);
	free(buf);
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields_round_trip),
		cmocka_unit_test(test_bad_types),
		cmocka_unit_test(test_bad_ranges),
		cmocka_unit_test(test_bad_lengths),
		cmocka_unit_test(test_hex_edges),
		cmocka_unit_test(test_missing_and_not_object),
		cmocka_unit_test(test_error_names_entry),
		cmocka_unit_test(test_setters),
		cmocka_unit_test(test_getters),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
