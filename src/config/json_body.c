/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API's small request bodies (config/json.h): VmResize, VmResizeZone, VmRemoveDevice,
 * VmSnapshotConfig, RestoreConfig, the migration bodies and DeviceConfig.
 */
#include "config/json.h"
#include "config/json_read.h"
#include "util/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int vm_resize_from_json(const json_t *obj, struct vm_resize *ret, char *err, size_t errlen)
{
	struct json_reader r;
	struct vm_resize v = { 0 };
	uint64_t vcpus = 0;
	int rc;

	rc = json_reader_init(&r, obj, "", err, errlen);
	if (rc == 0)
		rc = json_read_u64(&r, "desired_vcpus", JSON_OPTIONAL, UINT8_MAX, &vcpus,
				   &v.has_desired_vcpus);
	if (rc == 0 && v.has_desired_vcpus && vcpus < 1)
		rc = json_field_error(&r, "desired_vcpus", "must be at least 1");
	if (rc == 0)
		rc = json_read_u64(&r, "desired_ram", JSON_OPTIONAL, UINT64_MAX, &v.desired_ram,
				   &v.has_desired_ram);
	if (rc == 0)
		rc = json_read_u64(&r, "desired_balloon", JSON_OPTIONAL, UINT64_MAX,
				   &v.desired_balloon, &v.has_desired_balloon);
	if (rc < 0)
		return rc;
	v.desired_vcpus = (uint8_t)vcpus;
	*ret = v;
	return 0;
}

void vm_resize_zone_free(struct vm_resize_zone *r)
{
	if (!r)
		return;
	free(r->id);
	r->id = NULL;
}

int vm_resize_zone_from_json(const json_t *obj, struct vm_resize_zone *ret, char *err,
			     size_t errlen)
{
	struct json_reader r;
	struct vm_resize_zone v = { 0 };
	int rc;

	rc = json_reader_init(&r, obj, "", err, errlen);
	if (rc == 0)
		rc = json_read_str(&r, "id", JSON_REQUIRED, &v.id);
	if (rc == 0)
		rc = json_read_u64(&r, "desired_ram", JSON_REQUIRED, UINT64_MAX, &v.desired_ram,
				   NULL);
	if (rc < 0) {
		vm_resize_zone_free(&v);
		return rc;
	}
	*ret = v;
	return 0;
}

/* A body of one required string field. */
static int one_string(const json_t *obj, const char *key, char **ret, char *err, size_t errlen)
{
	struct json_reader r;
	char *s = NULL;
	int rc;

	rc = json_reader_init(&r, obj, "", err, errlen);
	if (rc == 0)
		rc = json_read_str(&r, key, JSON_REQUIRED, &s);
	if (rc < 0)
		return rc;
	*ret = s;
	return 0;
}

int vm_remove_device_from_json(const json_t *obj, char **ret_id, char *err, size_t errlen)
{
	return one_string(obj, "id", ret_id, err, errlen);
}

int vm_snapshot_config_from_json(const json_t *obj, char **ret_destination_url, char *err,
				 size_t errlen)
{
	return one_string(obj, "destination_url", ret_destination_url, err, errlen);
}

int vm_waitstart_from_json(const json_t *obj, uint64_t max_ms, uint64_t *ret_ms, char *err,
			   size_t errlen)
{
	struct json_reader r;
	int rc = json_reader_init(&r, obj, "", err, errlen);
	if (rc == 0)
		rc = json_read_u64(&r, "timeout_ms", JSON_OPTIONAL, max_ms, ret_ms, NULL);
	return rc;
}

int receive_migration_from_json(const json_t *obj, char **ret_receiver_url, char *err,
				size_t errlen)
{
	return one_string(obj, "receiver_url", ret_receiver_url, err, errlen);
}

void send_migration_free(struct send_migration *s)
{
	if (!s)
		return;
	free(s->destination_url);
	s->destination_url = NULL;
}

int send_migration_from_json(const json_t *obj, struct send_migration *ret, char *err,
			     size_t errlen)
{
	struct json_reader r;
	struct send_migration v = { 0 };
	int rc;

	rc = json_reader_init(&r, obj, "", err, errlen);
	if (rc == 0)
		rc = json_read_str(&r, "destination_url", JSON_REQUIRED, &v.destination_url);
	if (rc == 0)
		rc = json_read_bool(&r, "local", JSON_DEFAULT, &v.local);
	if (rc < 0) {
		send_migration_free(&v);
		return rc;
	}
	*ret = v;
	return 0;
}

void restore_config_free(struct restore_config *r)
{
	if (!r)
		return;
	free(r->source_url);
	r->source_url = NULL;
	if (r->overrides) {
		vm_config_free(r->overrides);
		free(r->overrides);
		r->overrides = NULL;
	}
}

/* The overridable device arrays: RestoreConfig's key and what the messages call a device. */
enum override_kind { OV_DISK, OV_NET, OV_PMEM, OV_KINDS };
static const char *const ov_keys[OV_KINDS] = { "disks", "net", "pmem" };
static const char *const ov_names[OV_KINDS] = { "disk", "net device", "pmem device" };

static unsigned ov_count(const struct vm_config *c, enum override_kind k)
{
	return k == OV_DISK ? c->num_disks : k == OV_NET ? c->num_nets : c->num_pmems;
}

static const char *ov_id(const struct vm_config *c, enum override_kind k, unsigned i)
{
	return k == OV_DISK ? c->disks[i].id : k == OV_NET ? c->nets[i].id : c->pmems[i].id;
}

/* @dst's device @d is freed and replaced by @src's device @s, whose slot is left zeroed. */
static void ov_move(struct vm_config *dst, unsigned d, struct vm_config *src, unsigned s,
		    enum override_kind k)
{
	switch (k) {
	case OV_DISK:
		disk_config_free(&dst->disks[d]);
		dst->disks[d] = src->disks[s];
		memset(&src->disks[s], 0, sizeof(src->disks[s]));
		break;
	case OV_NET:
		/* Without a MAC of its own the clone keeps the snapshot's: the guest has it. */
		if (!src->nets[s].mac)
			src->nets[s].mac = ptr_take(&dst->nets[d].mac);
		net_config_free(&dst->nets[d]);
		dst->nets[d] = src->nets[s];
		memset(&src->nets[s], 0, sizeof(src->nets[s]));
		break;
	case OV_PMEM:
		pmem_config_free(&dst->pmems[d]);
		dst->pmems[d] = src->pmems[s];
		memset(&src->pmems[s], 0, sizeof(src->pmems[s]));
		break;
	case OV_KINDS:
		break;
	}
}

/* The index of @id among @c's devices of kind @k, or -1. */
static int ov_find(const struct vm_config *c, enum override_kind k, const char *id)
{
	for (unsigned i = 0; i < ov_count(c, k); i++)
		if (ov_id(c, k, i) && strcmp(ov_id(c, k, i), id) == 0)
			return (int)i;
	return -1;
}

int restore_config_from_json(const json_t *obj, struct restore_config *ret, char *err,
			     size_t errlen)
{
	static const char *const ov_all[] = { "disks", "net", "pmem", "vsock", NULL };
	struct json_reader r;
	struct restore_config v = { 0 };
	bool dirty_log = false, any = false;
	int rc;

	rc = json_reader_init(&r, obj, "", err, errlen);
	if (rc == 0)
		rc = json_read_str(&r, "source_url", JSON_REQUIRED, &v.source_url);
	if (rc == 0)
		rc = json_read_bool(&r, "prefault", JSON_DEFAULT, &v.prefault);
	if (rc == 0)
		rc = json_refuse_unless_empty(&r, "fs");
	if (rc == 0)
		rc = json_read_bool(&r, "dirty_log", JSON_DEFAULT, &dirty_log);
	if (rc == 0 && dirty_log)
		rc = json_field_error(&r, "dirty_log", "not supported yet");
	for (unsigned i = 0; rc == 0 && ov_all[i]; i++)
		any |= !json_is_null(json_object_get(obj, ov_all[i])) &&
		       json_object_get(obj, ov_all[i]);
	if (rc == 0 && any) {
		v.overrides = malloc(sizeof(*v.overrides));
		rc = v.overrides ? vm_config_devices_from_json(obj, v.overrides, err, errlen)
				 : -ENOMEM;
		if (rc < 0) {
			free(v.overrides);
			v.overrides = NULL;
		}
	}
	for (unsigned k = 0; rc == 0 && v.overrides && k < OV_KINDS; k++)
		for (unsigned i = 0; rc == 0 && i < ov_count(v.overrides, k); i++)
			if (!ov_id(v.overrides, k, i))
				rc = error_set(err, errlen, -EINVAL,
					       "%s[%u].id: missing (an override names the "
					       "snapshot's device it replaces)",
					       ov_keys[k], i);
	if (rc < 0) {
		restore_config_free(&v);
		return rc;
	}
	*ret = v;
	return 0;
}

/* Every override names a device of @cfg, once: 0, or -EINVAL naming the first that does not. */
static int restore_check(const struct vm_config *ov, const struct vm_config *cfg, char *err,
			 size_t errlen)
{
	for (unsigned k = 0; k < OV_KINDS; k++) {
		for (unsigned i = 0; i < ov_count(ov, k); i++) {
			const char *id = ov_id(ov, k, i);
			if (ov_find(cfg, k, id) < 0)
				return error_set(err, errlen, -EINVAL,
						 "%s[%u].id: the snapshot has no %s '%s'",
						 ov_keys[k], i, ov_names[k], id);
			for (unsigned j = 0; j < i; j++)
				if (strcmp(ov_id(ov, k, j), id) == 0)
					return error_set(err, errlen, -EINVAL,
							 "%s[%u].id: '%s' is overridden twice",
							 ov_keys[k], i, id);
		}
	}
	if (!ov->vsock)
		return 0;
	if (!cfg->vsock)
		return error_set(err, errlen, -EINVAL, "vsock: the snapshot has no vsock device");
	if (ov->vsock->id && cfg->vsock->id && strcmp(ov->vsock->id, cfg->vsock->id) != 0)
		return error_set(err, errlen, -EINVAL, "vsock.id: the snapshot's vsock is '%s'",
				 cfg->vsock->id);
	return 0;
}

int restore_config_apply(struct restore_config *r, struct vm_config *cfg, char *err, size_t errlen)
{
	struct vm_config *ov = r->overrides;

	if (!ov)
		return 0;
	int rc = restore_check(ov, cfg, err, errlen);
	if (rc < 0)
		return rc;
	for (unsigned k = 0; k < OV_KINDS; k++)
		for (unsigned i = 0; i < ov_count(ov, k); i++)
			ov_move(cfg, (unsigned)ov_find(cfg, k, ov_id(ov, k, i)), ov, i, k);
	if (ov->vsock) {
		if (!ov->vsock->id) {
			ov->vsock->id = cfg->vsock->id;
			cfg->vsock->id = NULL;
		}
		vsock_config_free(cfg->vsock);
		cfg->vsock = ov->vsock;
		ov->vsock = NULL;
	}
	return 0;
}

void device_config_free(struct device_config *d)
{
	if (!d)
		return;
	free(d->path);
	free(d->id);
	memset(d, 0, sizeof(*d));
}

int device_config_from_json(const json_t *obj, struct device_config *ret, char *err, size_t errlen)
{
	struct json_reader r;
	struct device_config d = { 0 };
	uint64_t segment = 0;
	int rc;

	rc = json_reader_init(&r, obj, "", err, errlen);
	if (rc == 0)
		rc = json_read_str(&r, "path", JSON_REQUIRED, &d.path);
	if (rc == 0)
		rc = json_read_bool(&r, "iommu", JSON_DEFAULT, &d.iommu);
	if (rc == 0)
		rc = json_read_str(&r, "id", JSON_OPTIONAL, &d.id);
	if (rc == 0)
		rc = json_read_u64(&r, "pci_segment", JSON_DEFAULT, UINT16_MAX, &segment, NULL);
	if (rc < 0) {
		device_config_free(&d);
		return rc;
	}
	d.pci_segment = (uint16_t)segment;
	*ret = d;
	return 0;
}
