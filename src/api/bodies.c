/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Request bodies of the routes cubicle does not serve yet: parsed as Cloud Hypervisor would
 * (config/json.h), so that a malformed body is a 400 naming the field, as there, before the
 * 501 that says the capability is missing.
 */
#include "api/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config/json.h"

static int check_disk(const json_t *b, char *err, size_t len)
{
	struct disk_config d;
	int r = disk_config_from_json(b, &d, err, len);
	if (r == 0)
		disk_config_free(&d);
	return r;
}

static int check_pmem(const json_t *b, char *err, size_t len)
{
	struct pmem_config p;
	int r = pmem_config_from_json(b, &p, err, len);
	if (r == 0)
		pmem_config_free(&p);
	return r;
}

static int check_vsock(const json_t *b, char *err, size_t len)
{
	struct vsock_config v;
	int r = vsock_config_from_json(b, &v, err, len);
	if (r == 0)
		vsock_config_clear(&v);
	return r;
}

static int check_device(const json_t *b, char *err, size_t len)
{
	struct device_config d;
	int r = device_config_from_json(b, &d, err, len);
	if (r == 0)
		device_config_free(&d);
	return r;
}

static int check_resize(const json_t *b, char *err, size_t len)
{
	struct vm_resize v;
	return vm_resize_from_json(b, &v, err, len);
}

static int check_resize_zone(const json_t *b, char *err, size_t len)
{
	struct vm_resize_zone z;
	int r = vm_resize_zone_from_json(b, &z, err, len);
	if (r == 0)
		vm_resize_zone_free(&z);
	return r;
}

static int check_string(int (*parse)(const json_t *, char **, char *, size_t), const json_t *b,
			char *err, size_t len)
{
	char *s = NULL;
	int r = parse(b, &s, err, len);
	free(s);
	return r;
}

static int check_remove(const json_t *b, char *err, size_t len)
{
	return check_string(vm_remove_device_from_json, b, err, len);
}

static int check_coredump(const json_t *b, char *err, size_t len)
{
	return check_string(vm_snapshot_config_from_json, b, err, len);
}

static int check_receive(const json_t *b, char *err, size_t len)
{
	return check_string(receive_migration_from_json, b, err, len);
}

static int check_send(const json_t *b, char *err, size_t len)
{
	struct send_migration s;
	int r = send_migration_from_json(b, &s, err, len);
	if (r == 0)
		send_migration_free(&s);
	return r;
}

int api_body_check(const char *route, const json_t *body, char *err, size_t errlen)
{
	static const struct {
		const char *route;
		int (*check)(const json_t *body, char *err, size_t errlen);
	} checks[] = {
		{ "vm.add-disk", check_disk },
		{ "vm.add-pmem", check_pmem },
		{ "vm.add-vsock", check_vsock },
		{ "vm.add-device", check_device },
		{ "vm.add-vdpa", check_device },
		{ "vm.resize", check_resize },
		{ "vm.resize-zone", check_resize_zone },
		{ "vm.remove-device", check_remove },
		{ "vm.coredump", check_coredump }, /* VmCoredumpData {destination_url} */
		{ "vm.receive-migration", check_receive },
		{ "vm.send-migration", check_send },
	};
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		if (strcmp(checks[i].route, route) == 0)
			return checks[i].check(body, err, errlen);
	return 0; /* vm.add-fs: FsConfig has no parser yet; the 501 says enough */
}
