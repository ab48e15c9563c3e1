/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the snapshot tests of net, vsock, balloon and pmem share (include after
 * virtio_harness.h): saving a device to the text the round trips compare, and checking that a
 * hostile edit of a saved state is refused with the right error.
 */
#ifndef CUBICLE_TESTS_VDEV_STATE_HARNESS_H
#define CUBICLE_TESTS_VDEV_STATE_HARNESS_H

/* dev_ops.save, or one instance's X_state_save. */
typedef int (*vs_save_fn)(void *dev, json_t *obj, char *err, size_t errlen);

/* @dev's state as the round-trip tests compare it (caller frees). */
static inline char *vs_save(vs_save_fn save, void *dev)
{
	json_t *o = json_object();
	char err[256] = "", *s;

	assert_non_null(o);
	if (save(dev, o, err, sizeof(err)) < 0)
		fail_msg("save: %s", err);
	s = vh_dump(o);
	json_decref(o);
	return s;
}

/* @text parsed, with @key of the object at @path set to @v (removed when @v is NULL; see
 * vh_edit); @key NULL: as is. */
static inline json_t *vs_load(const char *text, const char *path, const char *key, json_t *v)
{
	json_t *o = key ? vh_edit(text, path, key, v) : json_loads(text, 0, NULL);

	assert_non_null(o);
	return o;
}

/*
 * A test's restore of @text edited as vs_load() does, into the device of its fixture @fx:
 * 0 (the fixture then has the restored device), or -errno with the error in @err (the fixture
 * unchanged).
 */
typedef int (*vs_restore_fn)(void *fx, const char *text, const char *path, const char *key,
			     json_t *v, char *err, size_t errlen);

/* The edit must be refused with an error that contains @want. */
static inline void vs_expect_refused(vs_restore_fn restore, void *fx, const char *saved,
				     const char *path, const char *key, json_t *v, const char *want)
{
	char err[256];

	if (restore(fx, saved, path, key, v, err, sizeof(err)) == 0)
		fail_msg("'%s/%s' accepted", path, key ? key : "");
	if (!strstr(err, want))
		fail_msg("error '%s' lacks '%s'", err, want);
}

/*
 * Damage: each alphanumeric byte of @saved changed in turn (a digit to another, a letter to
 * 'q' or '9'), every result that still parses restored: it must load or be refused with
 * -EINVAL, never crash (the ASan build runs this). Returns how many loaded.
 */
static inline unsigned vs_damage(vs_restore_fn restore, void *fx, const char *saved)
{
	size_t len = strlen(saved);
	char *t = malloc(len + 1), err[256];
	unsigned loaded = 0;

	assert_non_null(t);
	for (size_t i = 0; i < len; i++) {
		char c = saved[i];
		json_t *o;
		int r;

		if (c >= '0' && c <= '9')
			c = (char)('0' + (c - '0' + 7) % 10);
		else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
			c = c == 'q' ? '9' : 'q';
		else
			continue;
		memcpy(t, saved, len + 1);
		t[i] = c;
		o = json_loads(t, 0, NULL);
		if (!o)
			continue;
		json_decref(o);
		r = restore(fx, t, "", NULL, NULL, err, sizeof(err));
		if (r != 0 && r != -EINVAL)
			fail_msg("byte %zu: %d (%s)", i, r, err);
		loaded += r == 0;
	}
	free(t);
	return loaded;
}

#endif
