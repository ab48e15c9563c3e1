/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the API's request path into the config (src/config/json*.c): the input
 * is a request body as a client sends it. The harness parses it as the server does, runs
 * vm_config_from_json (which validates), and for a config that passes checks the round trip:
 * vm_config_to_json's output must parse back into a config whose JSON is the same. The same
 * body also goes through every other body parser (vm.add-disk, vm.add-net, vm.resize, ...).
 * ASan/UBSan catch memory errors, leaks fail the run, and a broken round trip aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/json.h"

#define FUZZ_MAX_BODY (64 << 10) /* bodies past this only slow the fuzzer down */

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* to_json(from_json(to_json(cfg))) == to_json(cfg). */
static void round_trip(const struct vm_config *cfg)
{
	char err[CONFIG_ERR_MAX];
	struct vm_config again;
	json_t *out = vm_config_to_json(cfg), *out2;

	if (!out)
		return; /* ENOMEM */
	check(vm_config_from_json(out, &again, err, sizeof(err)) == 0);
	out2 = vm_config_to_json(&again);
	check(out2 && json_equal(out, out2));
	json_decref(out2);
	json_decref(out);
	vm_config_free(&again);
}

static void other_bodies(const json_t *j)
{
	char err[CONFIG_ERR_MAX], *s = NULL;
	struct disk_config d;
	struct net_config n;
	struct pmem_config p;
	struct vsock_config v;
	struct balloon_config b;
	struct vm_resize rs;
	struct vm_resize_zone rz;
	struct restore_config rc;
	struct send_migration sm;
	struct device_config dc;

	if (disk_config_from_json(j, &d, err, sizeof(err)) == 0) {
		json_decref(disk_config_to_json(&d));
		disk_config_free(&d);
	}
	if (net_config_from_json(j, &n, err, sizeof(err)) == 0) {
		check(n.num_fds == 0); /* fds come only with SCM_RIGHTS */
		json_decref(net_config_to_json(&n));
		net_config_free(&n);
	}
	if (pmem_config_from_json(j, &p, err, sizeof(err)) == 0) {
		json_decref(pmem_config_to_json(&p));
		pmem_config_free(&p);
	}
	if (vsock_config_from_json(j, &v, err, sizeof(err)) == 0) {
		json_decref(vsock_config_to_json(&v));
		vsock_config_clear(&v);
	}
	(void)balloon_config_from_json(j, &b, err, sizeof(err));
	(void)vm_resize_from_json(j, &rs, err, sizeof(err));
	if (vm_resize_zone_from_json(j, &rz, err, sizeof(err)) == 0)
		vm_resize_zone_free(&rz);
	if (vm_remove_device_from_json(j, &s, err, sizeof(err)) == 0)
		free(s);
	if (vm_snapshot_config_from_json(j, &s, err, sizeof(err)) == 0)
		free(s);
	if (receive_migration_from_json(j, &s, err, sizeof(err)) == 0)
		free(s);
	if (send_migration_from_json(j, &sm, err, sizeof(err)) == 0)
		send_migration_free(&sm);
	if (restore_config_from_json(j, &rc, err, sizeof(err)) == 0)
		restore_config_free(&rc);
	if (device_config_from_json(j, &dc, err, sizeof(err)) == 0)
		device_config_free(&dc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CONFIG_ERR_MAX];
	struct vm_config cfg;
	json_error_t je;
	json_t *j;
	int r;

	if (size > FUZZ_MAX_BODY)
		return 0;
	j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!j)
		return 0;
	err[0] = '\0';
	r = vm_config_from_json(j, &cfg, err, sizeof(err));
	check(r == 0 || r == -EINVAL || r == -ENOMEM);
	check(r != -EINVAL || (err[0] != '\0' && !strchr(err, '\n')));
	if (r == 0) {
		check(vm_config_validate(&cfg, err, sizeof(err)) == 0);
		round_trip(&cfg);
		vm_config_free(&cfg);
	}
	other_bodies(j);
	json_decref(j);
	return 0;
}
