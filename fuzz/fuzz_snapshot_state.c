/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for a snapshot's state reader (src/snapshot/snapshot.c, state_hv.c,
 * util/state.c): the input is a state.json as a user (or an attacker who controls the
 * snapshot directory) hands it to `--restore`. The checksum would stop almost every mutation
 * at the door, so when the input's first byte is odd the harness fixes the checksum up first
 * and the JSON goes on to the format checks and the vCPU and VM state readers. Whatever loads
 * must save and load back to the same JSON. ASan/UBSan catch memory errors; a broken round
 * trip aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "snapshot/snapshot.h"
#include "snapshot/state_hv.h"
#include "util/state.h"

#define KEY "\"checksum\": \""

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* Writes the right CRC-32 into a "checksum" value at the start, as the writer does. */
static void fix_checksum(char *s, size_t len)
{
	char *at = strstr(s, KEY);
	char digits[9];

	if (!at || (size_t)(at - s) > 8 || len - (size_t)(at - s) < strlen(KEY) + 8)
		return;
	at += strlen(KEY);
	memset(at, '0', 8);
	snprintf(digits, sizeof(digits), "%08lx", crc32(0, (const Bytef *)s, (uInt)len));
	memcpy(at, digits, 8);
}

static void vcpu_round_trip(const json_t *obj)
{
	static struct hv_vcpu_state st, again;
	char err[256];
	json_t *out, *out2;

	if (snapshot_load_vcpu(obj, &st, err, sizeof(err)) < 0)
		return;
	out = json_object();
	out2 = json_object();
	check(out && out2 && snapshot_save_vcpu(out, &st) == 0);
	check(snapshot_load_vcpu(out, &again, err, sizeof(err)) == 0);
	check(snapshot_save_vcpu(out2, &again) == 0 && json_equal(out, out2));
	json_decref(out);
	json_decref(out2);
}

static void vm_round_trip(const json_t *obj)
{
	struct hv_vm_state st, again;
	char err[256];
	json_t *out, *out2;

	if (snapshot_load_vm(obj, &st, err, sizeof(err)) < 0)
		return;
	out = json_object();
	out2 = json_object();
	check(out && out2 && snapshot_save_vm(out, &st) == 0);
	check(snapshot_load_vm(out, &again, err, sizeof(err)) == 0);
	check(snapshot_save_vm(out2, &again) == 0 && json_equal(out, out2));
	json_decref(out);
	json_decref(out2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	json_t *root = NULL;
	const json_t *state, *vcpus, *vm;
	char *s;

	if (size < 1 || size > (1 << 20))
		return 0;
	s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	if (data[0] & 1)
		fix_checksum(s, size - 1);
	if (snapshot_parse_state(s, size - 1, &root, err, sizeof(err)) == 0) {
		state = json_object_get(root, "state");
		check(json_is_object(state));
		if (state_get_array(state, "vcpus", 256, &vcpus, err, sizeof(err)) == 0)
			for (size_t i = 0; i < json_array_size(vcpus); i++)
				vcpu_round_trip(json_array_get(vcpus, i));
		if (state_get_object(state, "vm", &vm, err, sizeof(err)) == 0)
			vm_round_trip(vm);
		json_decref(root);
	}
	free(s);
	return 0;
}
