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
	{ "vmm.ping", "GET", API_BODY_NONE, vmm_cmd_ping },
	{ "vmm.shutdown", "PUT", API_BODY_NONE, vmm_cmd_shutdown_vmm },
	{ "vm.info", "GET", API_BODY_NONE, vmm_cmd_info },
	{ "vm.counters", "GET", API_BODY_NONE, vmm_cmd_counters },
	{ "vm.create", "PUT", API_BODY_REQUIRED, vmm_cmd_create },
	{ "vm.delete", "PUT", API_BODY_NONE, vmm_cmd_delete },
	{ "vm.boot", "PUT", API_BODY_NONE, vmm_cmd_boot },
	{ "vm.pause", "PUT", API_BODY_NONE, vmm_cmd_pause },
	{ "vm.resume", "PUT", API_BODY_NONE, vmm_cmd_resume },
	{ "vm.shutdown", "PUT", API_BODY_NONE, vmm_cmd_shutdown },
	{ "vm.reboot", "PUT", API_BODY_NONE, vmm_cmd_reboot },
	{ "vm.power-button", "PUT", API_BODY_NONE, vmm_cmd_power_button },
	{ "vm.add-net", "PUT", API_BODY_REQUIRED, vmm_cmd_add_net },
	{ "vm.snapshot", "PUT", API_BODY_REQUIRED, vmm_cmd_snapshot },
	{ "vm.restore", "PUT", API_BODY_REQUIRED, vmm_cmd_restore },
	/* CubeSandbox's (shared/anchors/cube-hypervisor-openapi.yaml). */
	{ "vm.pause2snapshot", "PUT", API_BODY_REQUIRED, vmm_cmd_pause2snapshot },
	{ "vm.resume-from-snapshot", "PUT", API_BODY_REQUIRED, vmm_cmd_resume_from_snapshot },
	{ "vm.waitstart", "PUT", API_BODY_OPTIONAL, vmm_cmd_waitstart },
	/* Not yet: hotplug, resize, migration, coredump. */
	{ "vm.resize", "PUT", API_BODY_REQUIRED, vmm_cmd_resize },
	{ "vm.resize-zone", "PUT", API_BODY_REQUIRED, vmm_cmd_unsupported },
	{ "vm.add-device", "PUT", API_BODY_REQUIRED, vmm_cmd_unsupported },
	{ "vm.remove-device", "PUT", API_BODY_REQUIRED, vmm_cmd_unsupported },
	{ "vm.add-disk", "PUT", API_BODY_REQUIRED, vmm_cmd_add_disk },
	{ "vm.add-fs", "PUT", API_BODY_REQUIRED, vmm_cmd_unsupported },
	{ "vm.add-pmem", "PUT", API_BODY_REQUIRED, vmm_cmd_add_pmem },
	{ "vm.add-vsock", "PUT", API_BODY_REQUIRED, vmm_cmd_add_vsock },
	{ "vm.add-vdpa", "PUT", API_BODY_REQUIRED, vmm_cmd_unsupported },
	{ "vm.coredump", "PUT", API_BODY_REQUIRED, vmm_cmd_unsupported },
	{ "vm.receive-migration", "PUT", API_BODY_REQUIRED, vmm_cmd_unsupported },
	{ "vm.send-migration", "PUT", API_BODY_REQUIRED, vmm_cmd_unsupported },
};

const struct api_route *api_route_find(const char *name)
{
	for (unsigned i = 0; i < ARRAY_SIZE(api_routes); i++)
		if (strcmp(api_routes[i].name, name) == 0)
			return &api_routes[i];
	return NULL;
}
