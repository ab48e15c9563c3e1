/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API's small request bodies (config/json.h): VmResize, VmResizeZone, VmRemoveDevice,
 * VmSnapshotConfig, RestoreConfig, the migration bodies and DeviceConfig.
 */
#include "config/json.h"
#include "config/json_read.h"

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
}

int restore_config_from_json(const json_t *obj, struct restore_config *ret, char *err,
			     size_t errlen)
{
	struct json_reader r;
	struct restore_config v = { 0 };
	int rc;

	rc = json_reader_init(&r, obj, "", err, errlen);
	if (rc == 0)
		rc = json_read_str(&r, "source_url", JSON_REQUIRED, &v.source_url);
	if (rc == 0)
		rc = json_read_bool(&r, "prefault", JSON_DEFAULT, &v.prefault);
	if (rc < 0) {
		restore_config_free(&v);
		return rc;
	}
	*ret = v;
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
