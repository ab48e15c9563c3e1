/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VMM: what the API commands act on, on the loop thread. As in Cloud Hypervisor, vm.create
 * only stores the config; vm.boot builds the VM from it and starts it; vm.shutdown destroys the
 * VM and keeps the config (the VM is "Created" again and can be booted again); vm.delete drops
 * both. A guest power-off ends the VMM (Cloud Hypervisor exits), a guest reset reboots.
 */
#include "api/internal.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/json.h"
#include "core/loop.h"
#include "core/vm.h"
#include "security/landlock.h"
#include "snapshot/snapshot.h"
#include "util/log.h"
#include "util/util.h"
#include "version.h"

/* What vmm.ping reports as Cloud Hypervisor's version: the API cubicle speaks. */
#define VMM_API_VERSION "v28.0"

/* A vm.waitstart waiting for the guest's start signal, or its timer. */
struct vmm_waiter {
	struct vmm *vmm;
	struct api_cmd *cmd;
	int timerfd;
	uint64_t timeout_ms;
	struct vmm_waiter *next;
};

struct vmm {
	struct loop *loop;
	struct event_monitor *events;
	struct vm_config cfg;
	bool have_cfg;
	struct vm *vm; /* between vm.boot (or a restore) and vm.shutdown */
	enum seccomp_mode seccomp;
	struct vmm_waiter *waiters;
	struct vm_prewarm *prewarm; /* --prewarm: taken by the first VM */
	atomic_bool landlocked;	    /* the loop thread is under Landlock (for good) */
};

static void vmm_waiter_end(struct vmm_waiter *w, unsigned status, const char *msg);

/* Destroys the VM; every vm.waitstart still waiting for it is answered (409). */
static void vmm_drop_vm(struct vmm *vmm)
{
	while (vmm->waiters)
		vmm_waiter_end(vmm->waiters, 409,
			       "the VM was shut down before the guest signalled its start");
	vmm->vm = vm_destroy(vmm->vm);
}

static void vmm_on_vm_exit(void *opaque, enum vm_exit why)
{
	struct vmm *vmm = opaque;
	char err[CONFIG_ERR_MAX];

	switch (why) {
	case VM_EXIT_POWEROFF:
		log_info("vm: guest powered off");
		event_emit(vmm->events, "vm", "shutdown", NULL, NULL);
		loop_stop(vmm->loop, 0);
		return;
	case VM_EXIT_RESET:
		log_info("vm: guest reset, rebooting");
		event_emit(vmm->events, "vm", "rebooting", NULL, NULL);
		if (vm_reboot(vmm->vm, err, sizeof(err)) < 0) {
			log_error("reboot failed: %s", err);
			loop_stop(vmm->loop, 1);
			return;
		}
		event_emit(vmm->events, "vm", "rebooted", NULL, NULL);
		return;
	case VM_EXIT_ERROR:
		loop_stop(vmm->loop, 1);
		return;
	}
}

int vmm_create(struct loop *loop, const char *event_monitor, enum seccomp_mode seccomp,
	       struct vmm **ret, char *err, size_t errlen)
{
	struct vmm *vmm = calloc(1, sizeof(*vmm));
	if (!vmm)
		return error_set(err, errlen, -ENOMEM, "out of memory");
	vmm->loop = loop;
	vmm->seccomp = seccomp;
	vm_config_init(&vmm->cfg);
	if (event_monitor) {
		int r = event_monitor_open(loop, event_monitor, &vmm->events, err, errlen);
		if (r < 0) {
			vm_config_free(&vmm->cfg);
			free(vmm);
			return r;
		}
	}
	event_emit(vmm->events, "vmm", "starting", NULL, NULL);
	*ret = vmm;
	return 0;
}

struct vmm *vmm_destroy(struct vmm *vmm)
{
	if (!vmm)
		return NULL;
	vmm_drop_vm(vmm);
	vmm->prewarm = vm_prewarm_destroy(vmm->prewarm);
	vm_config_free(&vmm->cfg);
	vmm->events = event_monitor_close(vmm->events);
	free(vmm);
	return NULL;
}

int vmm_prewarm(struct vmm *vmm, uint64_t ram)
{
	vmm->prewarm = vm_prewarm_destroy(vmm->prewarm);
	return vm_prewarm_create(ram, &vmm->prewarm);
}

/* Builds and starts the VM from the stored config. */
static int vmm_boot(struct vmm *vmm, char *err, size_t errlen)
{
	event_emit(vmm->events, "vm", "booting", NULL, NULL);
	int r = vm_create(&vmm->cfg, vmm->loop, vmm_on_vm_exit, vmm, &vmm->prewarm, &vmm->vm, err,
			  errlen);
	if (r < 0)
		return r;
	r = vm_boot(vmm->vm);
	if (r < 0) {
		vmm_drop_vm(vmm);
		return error_set(err, errlen, r, "cannot start the vCPUs: %s", strerror(-r));
	}
	event_emit(vmm->events, "vm", "booted", NULL, NULL);
	return 0;
}

/*
 * With landlock_enable, confines the loop thread to @cfg's files (and @restore_dir) before the
 * VM is built from it, as Cloud Hypervisor v41 does at vm.create: the vCPU, I/O worker and
 * set-up threads the build starts inherit it. Once on, it stays for the process's life (a
 * later VM's Landlock is stacked on it: only what both allow).
 */
static int vmm_landlock(struct vmm *vmm, const struct vm_config *cfg, const char *restore_dir,
			char *err, size_t errlen)
{
	if (!cfg->landlock_enable)
		return 0;
	int r = landlock_confine_vm(cfg, restore_dir, err, errlen);
	if (r == 0)
		atomic_store(&vmm->landlocked, true);
	return r;
}

bool vmm_landlocked(struct vmm *vmm)
{
	return atomic_load(&vmm->landlocked);
}

int vmm_create_and_boot(struct vmm *vmm, struct vm_config *cfg, char *err, size_t errlen)
{
	if (vmm->have_cfg)
		return error_set(err, errlen, -EEXIST, "a VM is already created");
	int r = vmm_landlock(vmm, cfg, NULL, err, errlen);
	if (r < 0)
		return r;
	vmm->cfg = *cfg;
	vmm->have_cfg = true;
	r = vmm_boot(vmm, err, errlen);
	if (r < 0) {
		*cfg = vmm->cfg; /* back to the caller */
		vm_config_init(&vmm->cfg);
		vmm->have_cfg = false;
		return r;
	}
	vm_config_init(cfg);
	return 0;
}

/* Cloud Hypervisor's state names; NULL when no VM is created. */
static const char *vmm_state(const struct vmm *vmm)
{
	if (!vmm->have_cfg)
		return NULL;
	return vmm->vm ? vm_state_name(vm_get_state(vmm->vm)) : vm_state_name(VM_CREATED);
}

static bool vmm_in(const struct vmm *vmm, enum vm_state state)
{
	if (!vmm->vm)
		return state == VM_CREATED && vmm->have_cfg;
	return vm_get_state(vmm->vm) == state;
}

/* 409 naming the command and the state it met. */
static unsigned vmm_wrong_state(struct vmm *vmm, struct api_cmd *cmd, const char *need)
{
	const char *state = vmm_state(vmm);
	if (!state)
		return api_cmd_error(cmd, 409, "%s: no VM is created (vm.create first)",
				     cmd->route->name);
	return api_cmd_error(cmd, 409, "%s: the VM is %s; it must be %s", cmd->route->name, state,
			     need);
}

unsigned vmm_cmd_ping(struct vmm *vmm, struct api_cmd *cmd)
{
	json_t *body =
		json_pack("{s:s, s:s, s:i, s:[]}", "build_version", "cubicle-" CUBICLE_VERSION,
			  "version", VMM_API_VERSION, "pid", (int)getpid(), "features");
	return api_cmd_reply(cmd, 200, body);
}

unsigned vmm_cmd_shutdown_vmm(struct vmm *vmm, struct api_cmd *cmd)
{
	if (vmm->vm) {
		vmm_drop_vm(vmm);
		event_emit(vmm->events, "vm", "shutdown", NULL, NULL);
	}
	event_emit(vmm->events, "vmm", "shutdown", NULL, NULL);
	cmd->stop_vmm = true;
	return api_cmd_reply(cmd, 200, NULL);
}

unsigned vmm_cmd_create(struct vmm *vmm, struct api_cmd *cmd)
{
	char err[CONFIG_ERR_MAX] = "";
	struct vm_config cfg;

	if (vmm->have_cfg)
		return api_cmd_error(cmd, 409, "vm.create: a VM is already created (%s)",
				     vmm_state(vmm));
	int r = vm_config_from_json(cmd->body, &cfg, err, sizeof(err));
	if (r == -ENOMEM)
		return api_cmd_error(cmd, 500, "vm.create: out of memory");
	if (r < 0)
		return api_cmd_error(cmd, 400, "vm.create: %s", err);
	r = vm_config_validate(&cfg, err, sizeof(err));
	if (r == 0 && vm_config_assign_ids(&cfg) < 0)
		r = error_set(err, sizeof(err), -ENOMEM, "out of memory");
	if (r == 0)
		r = vmm_landlock(vmm, &cfg, NULL, err, sizeof(err));
	if (r < 0) {
		vm_config_free(&cfg);
		/* 400: the config (a bad field, a path that is not there); 500: the host. */
		bool client = r == -EINVAL || r == -ENOENT || r == -ENOTDIR || r == -EACCES;
		return api_cmd_error(cmd, client ? 400 : 500, "vm.create: %s", err);
	}
	cfg.seccomp = vmm->seccomp;
	vmm->cfg = cfg;
	vmm->have_cfg = true;
	return api_cmd_reply(cmd, 204, NULL);
}

unsigned vmm_cmd_boot(struct vmm *vmm, struct api_cmd *cmd)
{
	char err[CONFIG_ERR_MAX] = "";

	if (!vmm_in(vmm, VM_CREATED))
		return vmm_wrong_state(vmm, cmd, "Created");
	int r = vmm_boot(vmm, err, sizeof(err));
	if (r < 0)
		return api_cmd_error(cmd, 500, "vm.boot: %s", err);
	return api_cmd_reply(cmd, 204, NULL);
}

/* Cloud Hypervisor's DeviceNode; pci_bdf only for PCI devices ("0000:00:03.0"). */
static void tree_emit(void *opaque, const char *id, int pci_slot)
{
	char bdf[24];
	json_t *node = json_pack("{s:s, s:[], s:[]}", "id", id, "resources", "children");
	if (node && pci_slot >= 0) {
		snprintf(bdf, sizeof(bdf), "0000:00:%02x.0", pci_slot);
		json_object_set_new(node, "pci_bdf", json_string(bdf));
	}
	if (node)
		json_object_set_new(opaque, id, node);
}

unsigned vmm_cmd_info(struct vmm *vmm, struct api_cmd *cmd)
{
	if (!vmm->have_cfg)
		return vmm_wrong_state(vmm, cmd, NULL);
	json_t *config = vm_config_to_json(&vmm->cfg);
	json_t *tree = json_object();
	/* As Cloud Hypervisor: the memory size less what the balloon holds. */
	uint64_t ballooned = vmm->vm ? vm_balloon_actual(vmm->vm) : 0;
	uint64_t actual_size = vmm->cfg.memory.size - MIN(ballooned, vmm->cfg.memory.size);
	if (vmm->vm && tree)
		vm_devices(vmm->vm, tree_emit, tree);
	json_t *body =
		json_pack("{s:o, s:s, s:I, s:o}", "config", config, "state", vmm_state(vmm),
			  "memory_actual_size", (json_int_t)actual_size, "device_tree", tree);
	return api_cmd_reply(cmd, 200, body);
}

struct counters_ctx {
	json_t *all;
	bool oom;
};

static void counters_emit(void *opaque, const char *id, const char *name, uint64_t value)
{
	struct counters_ctx *c = opaque;
	json_t *dev = json_object_get(c->all, id);
	if (!dev) {
		dev = json_object();
		if (!dev || json_object_set_new(c->all, id, dev) < 0) {
			c->oom = true;
			return;
		}
	}
	if (json_object_set_new(dev, name, json_integer((json_int_t)value)) < 0)
		c->oom = true;
}

unsigned vmm_cmd_counters(struct vmm *vmm, struct api_cmd *cmd)
{
	if (!vmm->vm)
		return vmm_wrong_state(vmm, cmd, "Running or Paused");
	struct counters_ctx c = { .all = json_object() };
	if (!c.all)
		return api_cmd_error(cmd, 500, "vm.counters: out of memory");
	vm_counters(vmm->vm, counters_emit, &c);
	if (c.oom) {
		json_decref(c.all);
		return api_cmd_error(cmd, 500, "vm.counters: out of memory");
	}
	return api_cmd_reply(cmd, 200, c.all);
}

unsigned vmm_cmd_pause(struct vmm *vmm, struct api_cmd *cmd)
{
	if (!vmm_in(vmm, VM_RUNNING))
		return vmm_wrong_state(vmm, cmd, "Running");
	event_emit(vmm->events, "vm", "pausing", NULL, NULL);
	int r = vm_pause(vmm->vm);
	if (r < 0)
		return api_cmd_error(cmd, 500, "vm.pause: %s", strerror(-r));
	event_emit(vmm->events, "vm", "paused", NULL, NULL);
	return api_cmd_reply(cmd, 204, NULL);
}

unsigned vmm_cmd_resume(struct vmm *vmm, struct api_cmd *cmd)
{
	if (!vmm_in(vmm, VM_PAUSED))
		return vmm_wrong_state(vmm, cmd, "Paused");
	event_emit(vmm->events, "vm", "resuming", NULL, NULL);
	int r = vm_resume(vmm->vm);
	if (r < 0)
		return api_cmd_error(cmd, 500, "vm.resume: %s", strerror(-r));
	event_emit(vmm->events, "vm", "resumed", NULL, NULL);
	return api_cmd_reply(cmd, 204, NULL);
}

unsigned vmm_cmd_shutdown(struct vmm *vmm, struct api_cmd *cmd)
{
	if (!vmm->vm)
		return vmm_wrong_state(vmm, cmd, "Running or Paused");
	vmm_drop_vm(vmm);
	event_emit(vmm->events, "vm", "shutdown", NULL, NULL);
	return api_cmd_reply(cmd, 204, NULL);
}

unsigned vmm_cmd_reboot(struct vmm *vmm, struct api_cmd *cmd)
{
	char err[CONFIG_ERR_MAX] = "";

	if (!vmm->vm)
		return vmm_wrong_state(vmm, cmd, "Running or Paused");
	event_emit(vmm->events, "vm", "rebooting", NULL, NULL);
	int r = vm_reboot(vmm->vm, err, sizeof(err));
	if (r < 0) {
		vmm_drop_vm(vmm);
		return api_cmd_error(cmd, 500, "vm.reboot: %s", err);
	}
	event_emit(vmm->events, "vm", "rebooted", NULL, NULL);
	return api_cmd_reply(cmd, 204, NULL);
}

unsigned vmm_cmd_delete(struct vmm *vmm, struct api_cmd *cmd)
{
	if (vmm->vm) {
		vmm_drop_vm(vmm);
		event_emit(vmm->events, "vm", "shutdown", NULL, NULL);
	}
	if (vmm->have_cfg) {
		vm_config_free(&vmm->cfg);
		vm_config_init(&vmm->cfg);
		vmm->have_cfg = false;
	}
	event_emit(vmm->events, "vm", "deleted", NULL, NULL);
	return api_cmd_reply(cmd, 204, NULL);
}

unsigned vmm_cmd_power_button(struct vmm *vmm, struct api_cmd *cmd)
{
	if (!vmm_in(vmm, VM_RUNNING))
		return vmm_wrong_state(vmm, cmd, "Running");
	int r = vm_power_button(vmm->vm);
	if (r == -ENOTSUP)
		return api_cmd_error(cmd, 501, "vm.power-button: not supported by cubicle yet");
	if (r < 0)
		return api_cmd_error(cmd, 500, "vm.power-button: %s", strerror(-r));
	event_emit(vmm->events, "vm", "power-button", NULL, NULL);
	return api_cmd_reply(cmd, 204, NULL);
}

/*
 * vm.add-*: before vm.boot the device joins the VM's config (Cloud Hypervisor answers 204 and
 * the device is there when the VM boots; Kata Containers adds its NICs this way). On a booted
 * VM it would be hotplug, which cubicle cannot do yet: 501. @add puts the parsed device into
 * @cfg (or fails with -ENOSPC when the config has no room); the whole config is validated again,
 * and on any failure it is left as it was.
 */
static unsigned vmm_add_device(struct vmm *vmm, struct api_cmd *cmd, int parse_rc, const char *err,
			       int (*add)(struct vm_config *cfg, void *dev),
			       void (*drop)(void *dev), void *dev)
{
	char verr[CONFIG_ERR_MAX] = "";
	const char *name = cmd->route->name;

	if (parse_rc < 0)
		return api_cmd_error(cmd, parse_rc == -ENOMEM ? 500 : 400, "%s: %s", name, err);
	if (!vmm->have_cfg) {
		drop(dev);
		return vmm_wrong_state(vmm, cmd, "Created");
	}
	if (vmm->vm) {
		drop(dev);
		return api_cmd_error(cmd, 501,
				     "%s: hotplug into a booted VM is not supported by cubicle yet "
				     "(add devices before vm.boot)",
				     name);
	}
	int r = add(&vmm->cfg, dev);
	if (r == -ENOSPC) {
		drop(dev);
		return api_cmd_error(cmd, 400, "%s: too many devices of this kind", name);
	}
	r = vm_config_validate(&vmm->cfg, verr, sizeof(verr));
	if (r == 0 && vm_config_assign_ids(&vmm->cfg) < 0)
		r = error_set(verr, sizeof(verr), -ENOMEM, "out of memory");
	if (r < 0) {
		/* The device just added is the last of its kind: take it out again. */
		add(&vmm->cfg, NULL);
		return api_cmd_error(cmd, r == -ENOMEM ? 500 : 400, "%s: %s", name, verr);
	}
	return api_cmd_reply(cmd, 204, NULL);
}

/* add(cfg, dev) appends; add(cfg, NULL) removes and frees the last one (a failed validation). */
static int add_net(struct vm_config *cfg, void *dev)
{
	if (!dev) {
		net_config_free(&cfg->nets[--cfg->num_nets]);
		return 0;
	}
	if (cfg->num_nets == CONFIG_MAX_NETS)
		return -ENOSPC;
	cfg->nets[cfg->num_nets++] = *(struct net_config *)dev;
	return 0;
}

static int add_disk(struct vm_config *cfg, void *dev)
{
	if (!dev) {
		disk_config_free(&cfg->disks[--cfg->num_disks]);
		return 0;
	}
	if (cfg->num_disks == CONFIG_MAX_DISKS)
		return -ENOSPC;
	cfg->disks[cfg->num_disks++] = *(struct disk_config *)dev;
	return 0;
}

static int add_pmem(struct vm_config *cfg, void *dev)
{
	if (!dev) {
		pmem_config_free(&cfg->pmems[--cfg->num_pmems]);
		return 0;
	}
	if (cfg->num_pmems == CONFIG_MAX_PMEMS)
		return -ENOSPC;
	cfg->pmems[cfg->num_pmems++] = *(struct pmem_config *)dev;
	return 0;
}

static int add_vsock(struct vm_config *cfg, void *dev)
{
	if (!dev) {
		vsock_config_free(cfg->vsock);
		cfg->vsock = NULL;
		return 0;
	}
	if (cfg->vsock)
		return -ENOSPC; /* at most one, as in Cloud Hypervisor */
	cfg->vsock = dev;
	return 0;
}

static void drop_net(void *dev)
{
	net_config_free(dev);
}

static void drop_disk(void *dev)
{
	disk_config_free(dev);
}

static void drop_pmem(void *dev)
{
	pmem_config_free(dev);
}

static void drop_vsock(void *dev)
{
	vsock_config_free(dev);
}

/* The TAP fds sent with the request (SCM_RIGHTS) belong to @net from here: they are closed
 * with it if it is refused. As with --net fd=[..]: without num_queues in @body, one queue pair
 * per fd. */
static void vmm_take_tap_fds(struct api_cmd *cmd, struct net_config *net, const json_t *body)
{
	unsigned nfds = 0;
	for (unsigned i = 0; i < cmd->nr_fds && nfds < CONFIG_MAX_NET_FDS; i++) {
		net->fds[nfds++] = cmd->fds[i];
		cmd->fds[i] = -1;
	}
	net->num_fds = nfds;
	if (nfds && !json_object_get(body, "num_queues"))
		net->num_queues = (uint16_t)(2 * nfds);
}

/* An fd that is not a TAP queue: -EINVAL naming it. */
static int vmm_check_tap_fds(const struct net_config *net, char *err, size_t errlen)
{
	for (unsigned i = 0; i < net->num_fds; i++) {
		struct ifreq ifr;
		if (ioctl(net->fds[i], TUNGETIFF, &ifr) < 0)
			return error_set(err, errlen, -EINVAL,
					 "fd %u of %u sent with the request is not a TAP device",
					 i + 1, net->num_fds);
	}
	return 0;
}

unsigned vmm_cmd_add_net(struct vmm *vmm, struct api_cmd *cmd)
{
	char err[CONFIG_ERR_MAX] = "";
	struct net_config net;

	int r = net_config_from_json(cmd->body, &net, err, sizeof(err));
	if (r == 0) {
		vmm_take_tap_fds(cmd, &net, cmd->body);
		/* Refused now rather than at vm.boot (checked only when the device would be
		 * accepted; the state errors come first). */
		if (vmm->have_cfg && !vmm->vm)
			r = vmm_check_tap_fds(&net, err, sizeof(err));
		if (r < 0)
			net_config_free(&net);
	}
	return vmm_add_device(vmm, cmd, r, err, add_net, drop_net, &net);
}

unsigned vmm_cmd_add_disk(struct vmm *vmm, struct api_cmd *cmd)
{
	char err[CONFIG_ERR_MAX] = "";
	struct disk_config disk;

	int r = disk_config_from_json(cmd->body, &disk, err, sizeof(err));
	return vmm_add_device(vmm, cmd, r, err, add_disk, drop_disk, &disk);
}

unsigned vmm_cmd_add_pmem(struct vmm *vmm, struct api_cmd *cmd)
{
	char err[CONFIG_ERR_MAX] = "";
	struct pmem_config pmem;

	int r = pmem_config_from_json(cmd->body, &pmem, err, sizeof(err));
	return vmm_add_device(vmm, cmd, r, err, add_pmem, drop_pmem, &pmem);
}

unsigned vmm_cmd_add_vsock(struct vmm *vmm, struct api_cmd *cmd)
{
	char err[CONFIG_ERR_MAX] = "";
	struct vsock_config *vsock = calloc(1, sizeof(*vsock));

	if (!vsock)
		return api_cmd_error(cmd, 500, "vm.add-vsock: out of memory");
	int r = vsock_config_from_json(cmd->body, vsock, err, sizeof(err));
	if (r < 0)
		free(vsock);
	return vmm_add_device(vmm, cmd, r, err, add_vsock, drop_vsock, vsock);
}

/*
 * vm.resize: desired_balloon on a running (or paused) VM with --balloon sets the balloon's
 * target; the guest inflates or deflates on its own time. vCPU and memory resizing (hotplug)
 * are not there yet: 501, with nothing changed.
 */
unsigned vmm_cmd_resize(struct vmm *vmm, struct api_cmd *cmd)
{
	char err[CONFIG_ERR_MAX] = "";
	struct vm_resize rs;

	int r = vm_resize_from_json(cmd->body, &rs, err, sizeof(err));
	if (r < 0)
		return api_cmd_error(cmd, r == -ENOMEM ? 500 : 400, "vm.resize: %s", err);
	if (rs.has_desired_vcpus || rs.has_desired_ram)
		return api_cmd_error(cmd, 501,
				     "vm.resize: desired_vcpus and desired_ram (hotplug) are not "
				     "supported by cubicle yet; desired_balloon is");
	if (!rs.has_desired_balloon)
		return api_cmd_error(cmd, 400, "vm.resize: nothing to resize");
	if (!vmm->vm || !(vmm_in(vmm, VM_RUNNING) || vmm_in(vmm, VM_PAUSED)))
		return vmm_wrong_state(vmm, cmd, "Running or Paused");
	r = vm_balloon_resize(vmm->vm, rs.desired_balloon);
	if (r == -ENODEV)
		return api_cmd_error(cmd, 400, "vm.resize: the VM has no balloon (--balloon)");
	if (r == -EINVAL)
		return api_cmd_error(
			cmd, 400,
			"vm.resize: desired_balloon must be a multiple of 4 KiB and at "
			"most the memory size");
	if (r < 0)
		return api_cmd_error(cmd, 500, "vm.resize: %s", strerror(-r));
	return api_cmd_reply(cmd, 204, NULL);
}

unsigned vmm_cmd_unsupported(struct vmm *vmm, struct api_cmd *cmd)
{
	char err[CONFIG_ERR_MAX] = "";

	int r = api_body_check(cmd->route->name, cmd->body, err, sizeof(err));
	if (r < 0)
		return api_cmd_error(cmd, r == -ENOMEM ? 500 : 400, "%s: %s", cmd->route->name,
				     err);
	return api_cmd_error(cmd, 501, "%s: not supported by cubicle yet", cmd->route->name);
}

/*
 * Snapshot and restore (Cloud Hypervisor v28's vm.snapshot and vm.restore, CubeSandbox's
 * vm.pause2snapshot and vm.resume-from-snapshot). The status of a failure follows from the
 * errno vm_snapshot()/vm_restore() and the snapshot reader give: the client's mistake (a
 * missing directory, one that already holds a snapshot, a bad URL, a damaged or foreign
 * snapshot, an override naming nothing) is a 400, the VM's state a 409, the rest a 500.
 */
static unsigned vmm_errno_status(int r)
{
	switch (r) {
	case -EBUSY:
		return 409;
	case -EINVAL:
	case -ENOENT:
	case -ENOTDIR:
	case -EEXIST:
	case -ENOTEMPTY:
	case -EBADMSG:	       /* a damaged snapshot */
	case -EPROTONOSUPPORT: /* a snapshot of a newer version */
	case -ELOOP:	       /* a symbolic link where a snapshot file should be */
	case -EPROTO:
	case -E2BIG:
	case -EFBIG:
		return 400;
	case -ENOSYS:
	case -ENOTSUP:
		return 501;
	default:
		return 500;
	}
}

/* Writes the paused VM to @url ("file:///dir"), with the events Cloud Hypervisor emits. */
static int vmm_snapshot_to(struct vmm *vmm, const char *url, char *err, size_t errlen)
{
	char *dir = NULL;
	int r = snapshot_url_path(url, &dir, err, errlen);
	if (r < 0)
		return r;
	event_emit(vmm->events, "vm", "snapshotting", NULL, NULL);
	r = vm_snapshot(vmm->vm, dir, err, errlen);
	free(dir);
	if (r == 0)
		event_emit(vmm->events, "vm", "snapshotted", NULL, NULL);
	return r;
}

/* The body of vm.snapshot / vm.pause2snapshot: a 400 answer, or 0 and *@url (free it). */
static unsigned vmm_snapshot_body(struct api_cmd *cmd, char **url)
{
	char err[CONFIG_ERR_MAX] = "";
	int r = vm_snapshot_config_from_json(cmd->body, url, err, sizeof(err));
	if (r < 0)
		return api_cmd_error(cmd, r == -ENOMEM ? 500 : 400, "%s: %s", cmd->route->name,
				     err);
	return 0;
}

unsigned vmm_cmd_snapshot(struct vmm *vmm, struct api_cmd *cmd)
{
	char err[CONFIG_ERR_MAX] = "";
	char *url = NULL;
	unsigned status = vmm_snapshot_body(cmd, &url);

	if (status)
		return status;
	if (!vmm_in(vmm, VM_PAUSED)) {
		free(url);
		return vmm_wrong_state(vmm, cmd, "Paused (vm.pause first)");
	}
	int r = vmm_snapshot_to(vmm, url, err, sizeof(err));
	free(url);
	if (r < 0)
		return api_cmd_error(cmd, vmm_errno_status(r), "vm.snapshot: %s", err);
	return api_cmd_reply(cmd, 204, NULL);
}

/*
 * CubeSandbox's vm.pause2snapshot: pauses a running VM (a paused one is taken as it is) and
 * snapshots it; the VM stays paused. If the snapshot fails, a VM this command paused is
 * resumed: a failed command leaves the VM as it found it.
 */
unsigned vmm_cmd_pause2snapshot(struct vmm *vmm, struct api_cmd *cmd)
{
	char err[CONFIG_ERR_MAX] = "";
	char *url = NULL;
	unsigned status = vmm_snapshot_body(cmd, &url);

	if (status)
		return status;
	bool was_running = vmm_in(vmm, VM_RUNNING);
	if (!was_running && !vmm_in(vmm, VM_PAUSED)) {
		free(url);
		return vmm_wrong_state(vmm, cmd, "Running or Paused");
	}
	int r = 0;
	if (was_running) {
		event_emit(vmm->events, "vm", "pausing", NULL, NULL);
		r = vm_pause(vmm->vm);
		if (r < 0)
			error_set(err, sizeof(err), r, "cannot pause: %s", strerror(-r));
		else
			event_emit(vmm->events, "vm", "paused", NULL, NULL);
	}
	if (r == 0)
		r = vmm_snapshot_to(vmm, url, err, sizeof(err));
	free(url);
	if (r < 0 && was_running && vmm_in(vmm, VM_PAUSED)) {
		event_emit(vmm->events, "vm", "resuming", NULL, NULL);
		if (vm_resume(vmm->vm) == 0)
			event_emit(vmm->events, "vm", "resumed", NULL, NULL);
	}
	if (r < 0)
		return api_cmd_error(cmd, vmm_errno_status(r), "vm.pause2snapshot: %s", err);
	return api_cmd_reply(cmd, 204, NULL);
}

/*
 * Builds the VM from the snapshot @rc names, with its overrides: Paused, or Running with
 * @resume. Needs a VMM without a VM config (-EEXIST). Returns 0 or -errno with one line in
 * @err; on failure the VMM is as it was (a failed resume after a good restore leaves the
 * restored VM Paused).
 */
static int vmm_restore_from(struct vmm *vmm, struct restore_config *rc, bool resume, char *err,
			    size_t errlen)
{
	struct vm_config cfg;
	char *dir = NULL;
	int r;

	if (vmm->have_cfg)
		return error_set(err, errlen, -EEXIST, "a VM is already created (%s)",
				 vmm_state(vmm));
	r = snapshot_url_path(rc->source_url, &dir, err, errlen);
	if (r < 0)
		return r;
	r = snapshot_read_config(dir, &cfg, err, errlen);
	if (r < 0) {
		free(dir);
		return r;
	}
	r = restore_config_apply(rc, &cfg, err, errlen);
	if (r == 0)
		r = vm_config_check_json(&cfg, err, errlen);
	if (r < 0) {
		vm_config_free(&cfg);
		free(dir);
		return r;
	}
	r = vmm_landlock(vmm, &cfg, dir, err, errlen);
	if (r < 0) {
		vm_config_free(&cfg);
		free(dir);
		return r;
	}
	cfg.seccomp = vmm->seccomp;
	vmm->cfg = cfg;
	vmm->have_cfg = true;
	event_emit(vmm->events, "vm", "restoring", NULL, NULL);
	r = vm_restore(&vmm->cfg, dir, rc->prefault, vmm->loop, vmm_on_vm_exit, vmm, &vmm->prewarm,
		       &vmm->vm, err, errlen);
	free(dir);
	if (r < 0) {
		vm_config_free(&vmm->cfg);
		vm_config_init(&vmm->cfg);
		vmm->have_cfg = false;
		return r;
	}
	event_emit(vmm->events, "vm", "restored", NULL, NULL);
	if (!resume)
		return 0;
	event_emit(vmm->events, "vm", "resuming", NULL, NULL);
	r = vm_resume(vmm->vm);
	if (r < 0)
		return error_set(err, errlen, r, "restored, but cannot resume: %s", strerror(-r));
	event_emit(vmm->events, "vm", "resumed", NULL, NULL);
	return 0;
}

int vmm_restore(struct vmm *vmm, const char *source_url, bool prefault, char *err, size_t errlen)
{
	struct restore_config rc = { .source_url = (char *)source_url, .prefault = prefault };
	int r = vmm_restore_from(vmm, &rc, false, err, errlen);
	if (r < 0) {
		char msg[CONFIG_ERR_MAX];
		snprintf(msg, sizeof(msg), "%s", err);
		error_set(err, errlen, r, "--restore: %s", msg);
	}
	return r;
}

static unsigned vmm_restore_cmd(struct vmm *vmm, struct api_cmd *cmd, bool resume)
{
	char err[CONFIG_ERR_MAX] = "";
	struct restore_config rc;
	const char *name = cmd->route->name;

	int r = restore_config_from_json(cmd->body, &rc, err, sizeof(err));
	if (r < 0)
		return api_cmd_error(cmd, r == -ENOMEM ? 500 : 400, "%s: %s", name, err);
	if (vmm->have_cfg) {
		restore_config_free(&rc);
		return api_cmd_error(cmd, 409, "%s: a VM is already created (%s; vm.delete first)",
				     name, vmm_state(vmm));
	}
	/* TAP fds (SCM_RIGHTS) are for the one net override, as for vm.add-net. */
	struct vm_config *ov = rc.overrides;
	if (cmd->nr_fds && (!ov || ov->num_nets != 1)) {
		restore_config_free(&rc);
		return api_cmd_error(cmd, 400,
				     "%s: TAP fds were sent with the request: they need exactly "
				     "one net override",
				     name);
	}
	if (cmd->nr_fds) {
		vmm_take_tap_fds(cmd, &ov->nets[0],
				 json_array_get(json_object_get(cmd->body, "net"), 0));
		r = vmm_check_tap_fds(&ov->nets[0], err, sizeof(err));
	}
	if (r == 0)
		r = vmm_restore_from(vmm, &rc, resume, err, sizeof(err));
	restore_config_free(&rc);
	if (r < 0)
		return api_cmd_error(cmd, vmm_errno_status(r), "%s: %s", name, err);
	return api_cmd_reply(cmd, 204, NULL);
}

unsigned vmm_cmd_restore(struct vmm *vmm, struct api_cmd *cmd)
{
	return vmm_restore_cmd(vmm, cmd, false);
}

unsigned vmm_cmd_resume_from_snapshot(struct vmm *vmm, struct api_cmd *cmd)
{
	return vmm_restore_cmd(vmm, cmd, true);
}

/*
 * CubeSandbox's vm.waitstart (--sys-ctrl): 204 once the guest has signalled its start (at
 * once if it already did), 504 if it does not within the timeout, 409 if the VM goes away
 * first. The loop never waits: the command is deferred (api_cmd_defer) and answered from the
 * guest's signal (vm_on_guest_start) or a timerfd.
 */
static void vmm_waiter_end(struct vmm_waiter *w, unsigned status, const char *msg)
{
	struct vmm *vmm = w->vmm;

	for (struct vmm_waiter **p = &vmm->waiters; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			break;
		}
	}
	if (!vmm->waiters && vmm->vm)
		vm_on_guest_start(vmm->vm, NULL, NULL);
	if (w->timerfd >= 0) {
		loop_del_fd(vmm->loop, w->timerfd);
		close(w->timerfd);
	}
	if (msg)
		api_cmd_error(w->cmd, status, "vm.waitstart: %s", msg);
	else
		api_cmd_reply(w->cmd, status, NULL);
	api_cmd_finish(w->cmd);
	free(w);
}

static void vmm_on_guest_start(void *opaque)
{
	struct vmm *vmm = opaque;

	while (vmm->waiters)
		vmm_waiter_end(vmm->waiters, 204, NULL);
}

static void vmm_waiter_timeout(void *opaque, uint32_t events)
{
	struct vmm_waiter *w = opaque;
	char msg[96];

	snprintf(msg, sizeof(msg), "the guest did not signal its start within %llu ms",
		 (unsigned long long)w->timeout_ms);
	vmm_waiter_end(w, 504, msg);
}

unsigned vmm_cmd_waitstart(struct vmm *vmm, struct api_cmd *cmd)
{
	char err[CONFIG_ERR_MAX] = "";
	uint64_t timeout_ms = VMM_WAITSTART_DEFAULT_MS;

	int r = vm_waitstart_from_json(cmd->body, VMM_WAITSTART_MAX_MS, &timeout_ms, err,
				       sizeof(err));
	if (cmd->body && r < 0)
		return api_cmd_error(cmd, r == -ENOMEM ? 500 : 400, "vm.waitstart: %s", err);
	if (!vmm->vm)
		return vmm_wrong_state(vmm, cmd, "Running or Paused");
	if (vm_guest_started(vmm->vm))
		return api_cmd_reply(cmd, 204, NULL);

	struct vmm_waiter *w = calloc(1, sizeof(*w));
	if (!w)
		return api_cmd_error(cmd, 500, "vm.waitstart: out of memory");
	w->vmm = vmm;
	w->cmd = cmd;
	w->timeout_ms = timeout_ms;
	w->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	struct itimerspec its = { .it_value = { .tv_sec = (time_t)(timeout_ms / 1000),
						.tv_nsec = (long)(timeout_ms % 1000) * 1000000 } };
	if (timeout_ms == 0)
		its.it_value.tv_nsec = 1; /* 0 would disarm it: expire at once */
	r = w->timerfd < 0 ? -errno : 0;
	if (r == 0 && timerfd_settime(w->timerfd, 0, &its, NULL) < 0)
		r = -errno;
	if (r == 0)
		r = loop_add_fd(vmm->loop, w->timerfd, EPOLLIN, vmm_waiter_timeout, w);
	if (r < 0) {
		if (w->timerfd >= 0)
			close(w->timerfd);
		free(w);
		return api_cmd_error(cmd, 500, "vm.waitstart: cannot arm its timer: %s",
				     strerror(-r));
	}
	if (!vmm->waiters)
		vm_on_guest_start(vmm->vm, vmm_on_guest_start, vmm);
	w->next = vmm->waiters;
	vmm->waiters = w;
	api_cmd_defer(cmd);
	return 0;
}
