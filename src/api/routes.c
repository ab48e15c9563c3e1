/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The route table: every route of Cloud Hypervisor v28's API (shared/anchors/
 * cloud-hypervisor-openapi.yaml) under /api/v1/, with its method, whether it takes a body and
 * the handler that runs on the VMM loop. Routes whose capability cubicle does not have yet
 * answer 501 naming the route, never a silent success.
 */
#include "api/internal.h"

#include <string.h>

#include "util/util.h"

static const struct api_route api_routes[] = {
	{ "vmm.ping", "GET", API_BODY_NONE, vmm_cmd_ping, false },
	{ "vmm.shutdown", "PUT", API_BODY_NONE, vmm_cmd_shutdown_vmm, false },
	{ "vm.info", "GET", API_BODY_NONE, vmm_cmd_info, false },
	{ "vm.counters", "GET", API_BODY_NONE, vmm_cmd_counters, false },
	{ "vm.create", "PUT", API_BODY_REQUIRED, vmm_cmd_create, false },
	{ "vm.delete", "PUT", API_BODY_NONE, vmm_cmd_delete, false },
	{ "vm.boot", "PUT", API_BODY_NONE, vmm_cmd_boot, false },
	{ "vm.pause", "PUT", API_BODY_NONE, vmm_cmd_pause, false },
	{ "vm.resume", "PUT", API_BODY_NONE, vmm_cmd_resume, false },
	{ "vm.shutdown", "PUT", API_BODY_NONE, vmm_cmd_shutdown, false },
	{ "vm.reboot", "PUT", API_BODY_NONE, vmm_cmd_reboot, false },
	{ "vm.power-button", "PUT", API_BODY_NONE, vmm_cmd_power_button, false },
	{ "vm.add-net", "PUT", API_BODY_REQUIRED, vmm_cmd_add_net, false },
	{ "vm.snapshot", "PUT", API_BODY_REQUIRED, vmm_cmd_snapshot, false },
	{ "vm.restore", "PUT", API_BODY_REQUIRED, vmm_cmd_restore, false },
	/* CubeSandbox's (shared/anchors/cube-hypervisor-openapi.yaml). */
	{ "vm.pause2snapshot", "PUT", API_BODY_REQUIRED, vmm_cmd_pause2snapshot, false },
	{ "vm.resume-from-snapshot", "PUT", API_BODY_REQUIRED, vmm_cmd_resume_from_snapshot,
	  false },
	{ "vm.waitstart", "PUT", API_BODY_OPTIONAL, vmm_cmd_waitstart, true },
	/* Not yet: hotplug, resize, migration, coredump. */
	{ "vm.resize", "PUT", API_BODY_REQUIRED, vmm_cmd_resize, false },
	{ "vm.resize-zone", "PUT", API_BODY_REQUIRED, vmm_cmd_unsupported, false },
	{ "vm.add-device", "PUT", API_BODY_REQUIRED, vmm_cmd_unsupported, false },
	{ "vm.remove-device", "PUT", API_BODY_REQUIRED, vmm_cmd_unsupported, false },
	{ "vm.add-disk", "PUT", API_BODY_REQUIRED, vmm_cmd_add_disk, false },
	{ "vm.add-fs", "PUT", API_BODY_REQUIRED, vmm_cmd_unsupported, false },
	{ "vm.add-pmem", "PUT", API_BODY_REQUIRED, vmm_cmd_add_pmem, false },
	{ "vm.add-vsock", "PUT", API_BODY_REQUIRED, vmm_cmd_add_vsock, false },
	{ "vm.add-vdpa", "PUT", API_BODY_REQUIRED, vmm_cmd_unsupported, false },
	{ "vm.coredump", "PUT", API_BODY_REQUIRED, vmm_cmd_unsupported, false },
	{ "vm.receive-migration", "PUT", API_BODY_REQUIRED, vmm_cmd_unsupported, false },
	{ "vm.send-migration", "PUT", API_BODY_REQUIRED, vmm_cmd_unsupported, false },
};

const struct api_route *api_route_find(const char *name)
{
	for (unsigned i = 0; i < ARRAY_SIZE(api_routes); i++)
		if (strcmp(api_routes[i].name, name) == 0)
			return &api_routes[i];
	return NULL;
}
