/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cloud Hypervisor v28's JSON request bodies (shared/anchors/cloud-hypervisor-openapi.yaml) to
 * and from the same structs the command line fills.
 *
 * What Cloud Hypervisor v28 does, and these parsers do too (its serde structs, vm_config.rs):
 * - unknown fields are ignored, except in rate_limiter_config (the one struct with
 *   deny_unknown_fields: "disks[0].rate_limiter_config.bw: unknown field (expected bandwidth
 *   or ops)");
 * - a field of the wrong JSON type, or an integer out of its Rust type's range, is an error;
 *   null stands for "not given" in fields that are Option<..> in Cloud Hypervisor and is a type
 *   error elsewhere;
 * - required fields (no serde default): cpus.boot_vcpus and cpus.max_vcpus when "cpus" is given,
 *   memory.size, rng.src, serial.mode / console.mode, pmem[].file, vsock.cid / vsock.socket,
 *   balloon.size, the four parts of cpus.topology, token buckets' size and refill_time;
 * - everything else takes Cloud Hypervisor's default.
 * On top of that, a section or field Cloud Hypervisor has and cubicle cannot honour yet (fs,
 * devices, user_devices, vdpa, sgx_epc, numa, tpm, iommu=true, watchdog=true, a non-default
 * platform, cpus.affinity, memory hotplug and zones, vhost-user...) is refused with
 * "<field>: not supported yet" rather than ignored. Net "fds" are refused in a body: TAP fds come
 * only with SCM_RIGHTS (the API server puts them into struct net_config; numbers in JSON would
 * name the VMM's own fds).
 *
 * Every error is -EINVAL with one line in @err naming the JSON field path, e.g.
 * "memory.size: must be a multiple of 4 KiB", "disks[1].path: missing",
 * "cpus.boot_vcpus: expected an integer from 0 to 255". Failures leave @ret untouched (and own
 * nothing); -ENOMEM when an allocation fails.
 */
#ifndef CUBICLE_CONFIG_JSON_H
#define CUBICLE_CONFIG_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* Nesting depth a VmConfig body needs (VmConfig.net[i].rate_limiter_config.bandwidth.size is
 * 4 levels); the API server may refuse deeper documents before parsing them. */
#define CONFIG_JSON_MAX_DEPTH 8

/*
 * Parses a VmConfig JSON object (vm.create's body) into @ret (initialised by the function),
 * with Cloud Hypervisor's defaults and the same validation as the CLI (vm_config_validate(),
 * its messages given JSON field names: "memory.size: must be a multiple of 4 KiB"), and assigns
 * the default device ids (vm_config_assign_ids). Returns 0, or -EINVAL with one line in @err,
 * or -ENOMEM. On failure @ret holds nothing that needs freeing.
 */
int vm_config_from_json(const json_t *obj, struct vm_config *ret, char *err, size_t errlen);

/*
 * The VmConfig object for vm.info (new reference), or NULL on ENOMEM. As Cloud Hypervisor
 * serialises it, defaults written out (max_phys_bits 46, rng src /dev/urandom, net ip/mask
 * 192.168.249.1/255.255.255.0...), except that what v28 writes as null (an Option that is None)
 * is left out, as the OpenAPI schema has no nulls. Parsing it back gives the same config.
 */
json_t *vm_config_to_json(const struct vm_config *cfg);

/*
 * vm_config_from_json()'s checks of a whole config, for one built otherwise (a snapshot's
 * config with RestoreConfig's overrides): vm_config_validate() with JSON field names in the
 * message, default ids, unique ids. Returns 0, -EINVAL with one line in @err, or -ENOMEM.
 */
int vm_config_check_json(struct vm_config *cfg, char *err, size_t errlen);

/*
 * Only the device sections of a VmConfig-shaped object ("disks", "net", "pmem" arrays and
 * "vsock"), each element read as in VmConfig (same messages: "net[0].mac: ..."), into @ret
 * (initialised here; the other sections keep their defaults). No ids are assigned and nothing
 * is validated across devices. Returns 0, -EINVAL with one line in @err, or -ENOMEM.
 */
int vm_config_devices_from_json(const json_t *obj, struct vm_config *ret, char *err, size_t errlen);

/*
 * Device bodies (vm.add-disk, vm.add-net, vm.add-pmem, vm.add-vsock): the same rules as the
 * elements of VmConfig's arrays; messages name the fields without a prefix ("path: missing").
 * They check what one element can be checked for alone (types, required fields, ranges,
 * unsupported features); checks against the rest of the VM (unique ids, totals) are the
 * caller's. On success the caller owns @ret (disk_config_free, net_config_free,
 * pmem_config_free, vsock_config_free of a heap copy, or vsock_config_clear below).
 */
int disk_config_from_json(const json_t *obj, struct disk_config *ret, char *err, size_t errlen);
int net_config_from_json(const json_t *obj, struct net_config *ret, char *err, size_t errlen);
int pmem_config_from_json(const json_t *obj, struct pmem_config *ret, char *err, size_t errlen);
int vsock_config_from_json(const json_t *obj, struct vsock_config *ret, char *err, size_t errlen);
int balloon_config_from_json(const json_t *obj, struct balloon_config *ret, char *err,
			     size_t errlen);
/* Frees the strings of a vsock config that is not on the heap (the struct stays). */
void vsock_config_clear(struct vsock_config *v);

/* The JSON of one device, as in vm.info (new reference), or NULL on ENOMEM. */
json_t *disk_config_to_json(const struct disk_config *d);
json_t *net_config_to_json(const struct net_config *n);
json_t *pmem_config_to_json(const struct pmem_config *p);
json_t *vsock_config_to_json(const struct vsock_config *v);

/*
 * The other request bodies. Strings are heap copies the caller frees with the matching
 * *_free() (which accepts a zeroed struct).
 */

/* VmResize: each field is optional; has_* says whether it was given. */
struct vm_resize {
	bool has_desired_vcpus, has_desired_ram, has_desired_balloon;
	uint8_t desired_vcpus; /* ≥ 1 */
	uint64_t desired_ram;
	uint64_t desired_balloon;
};
int vm_resize_from_json(const json_t *obj, struct vm_resize *ret, char *err, size_t errlen);

/* VmResizeZone {id, desired_ram}: both required (Cloud Hypervisor's serde struct). */
struct vm_resize_zone {
	char *id;
	uint64_t desired_ram;
};
int vm_resize_zone_from_json(const json_t *obj, struct vm_resize_zone *ret, char *err,
			     size_t errlen);
void vm_resize_zone_free(struct vm_resize_zone *r);

/* VmRemoveDevice {id} (required), VmSnapshotConfig {destination_url} (required), and the
 * migration bodies: one required string each. @ret_str is a heap copy; free() it. */
int vm_remove_device_from_json(const json_t *obj, char **ret_id, char *err, size_t errlen);
int vm_snapshot_config_from_json(const json_t *obj, char **ret_destination_url, char *err,
				 size_t errlen);
/* vm.waitstart's optional body {timeout_ms} (cubicle's: CubeSandbox sends none): *@ret_ms is
 * left as it is when the field is not given; at most @max_ms. */
int vm_waitstart_from_json(const json_t *obj, uint64_t max_ms, uint64_t *ret_ms, char *err,
			   size_t errlen);
int receive_migration_from_json(const json_t *obj, char **ret_receiver_url, char *err,
				size_t errlen);

/* SendMigrationData {destination_url (required), local (default false)}. */
struct send_migration {
	char *destination_url;
	bool local;
};
int send_migration_from_json(const json_t *obj, struct send_migration *ret, char *err,
			     size_t errlen);
void send_migration_free(struct send_migration *s);

/* RestoreConfig {source_url (required), prefault (default false)}. */
struct restore_config {
	char *source_url;
	bool prefault;
	/*
	 * CubeSandbox's per-clone overrides ("net", "disks", "pmem" arrays and "vsock", each as
	 * in VmConfig): NULL when none is given. Only the device sections are used.
	 */
	struct vm_config *overrides;
};
/*
 * RestoreConfig {source_url (required), prefault (default false), and CubeSandbox's net,
 * disks, pmem, vsock overrides}. CubeSandbox's "fs" and "dirty_log" are refused unless
 * empty/false ("fs: not supported yet"). Every element of "net", "disks" and "pmem" must have
 * an "id" (the device of the snapshot it replaces): "net[0].id: missing (an override names
 * the snapshot's device it replaces)".
 */
int restore_config_from_json(const json_t *obj, struct restore_config *ret, char *err,
			     size_t errlen);
void restore_config_free(struct restore_config *r);
/*
 * Applies @r's overrides to @cfg (a snapshot's config): each override device replaces the
 * device of @cfg with the same id (moved out of @r, the replaced one freed); the vsock override
 * replaces @cfg's vsock (its id, when given, must be that vsock's; when not, it takes it). The
 * number of devices never changes. An id that matches nothing, an id given twice, or a vsock
 * override for a snapshot without vsock is -EINVAL with one line naming the field
 * ("disks[1].id: the snapshot has no disk 'data'"), and then nothing is changed.
 */
int restore_config_apply(struct restore_config *r, struct vm_config *cfg, char *err, size_t errlen);

/*
 * DeviceConfig (vm.add-device, VFIO) {path (required), iommu, id, pci_segment}; also used for
 * the fields VdpaConfig, FsConfig and UserDeviceConfig share, so that a route can parse its
 * body properly before saying the device kind is not supported yet.
 */
struct device_config {
	char *path;
	bool iommu;
	char *id;
	uint16_t pci_segment;
};
int device_config_from_json(const json_t *obj, struct device_config *ret, char *err, size_t errlen);
void device_config_free(struct device_config *d);

#endif
