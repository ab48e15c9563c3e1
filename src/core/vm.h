/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VM: build from a validated config, lifecycle, teardown (DESIGN §2). The CLI and the API
 * call the same functions. Every function runs on the VMM loop thread.
 *
 * Lifecycle: Created → Running ⇄ Paused → Shutdown. A command in a state that does not allow it
 * returns -EBUSY (409-style) and changes nothing.
 */
#ifndef CUBICLE_CORE_VM_H
#define CUBICLE_CORE_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct loop;
struct vm;

enum vm_state {
	VM_CREATED,
	VM_RUNNING,
	VM_PAUSED,
	VM_SHUTDOWN,
};

/* Why the VM stopped running by itself, reported to the owner through vm_exit_cb. */
enum vm_exit {
	VM_EXIT_POWEROFF, /* the guest powered off */
	VM_EXIT_RESET,	  /* the guest rebooted: the owner calls vm_reboot() */
	VM_EXIT_ERROR,	  /* the hypervisor could not run the guest (already reported) */
};

typedef void (*vm_exit_cb)(void *opaque, enum vm_exit why);

/*
 * --prewarm: the hypervisor side of a VM with up to @ram bytes of RAM below the 32-bit hole (a
 * VM, its interrupt controllers and its RAM's memory slot, hv_ram_reserve()), prepared while
 * the VMM waits for its VM through the API: the slowest part of a VM's set-up, paid before
 * anyone waits for it. vm_create() and vm_restore() take it when given one and the VM's RAM
 * fits (and destroy it when it does not). Returns 0 or -errno (-EOPNOTSUPP: the backend cannot
 * pre-warm).
 */
struct vm_prewarm;
int vm_prewarm_create(uint64_t ram, struct vm_prewarm **ret);
/* Accepts NULL; returns NULL. */
struct vm_prewarm *vm_prewarm_destroy(struct vm_prewarm *p);

/*
 * Builds the VM from @cfg (copied by reference: it must outlive the VM): guest RAM, devices,
 * kernel and initramfs, ACPI tables, vCPUs. Does not start the vCPUs. On failure everything
 * built is undone in reverse and -errno returned with one line for the user in @err.
 * @on_exit runs on the loop thread. @prewarm: NULL, or a pre-warmed hypervisor (*@prewarm may
 * be NULL) that the build takes (*@prewarm becomes NULL either way).
 */
int vm_create(const struct vm_config *cfg, struct loop *loop, vm_exit_cb on_exit, void *opaque,
	      struct vm_prewarm **prewarm, struct vm **ret, char *err, size_t errlen);

/* Created → Running: starts the vCPU threads. */
int vm_boot(struct vm *vm);
/* Running → Paused: every vCPU parked outside the guest, devices quiesced. */
int vm_pause(struct vm *vm);
/* Paused → Running. */
int vm_resume(struct vm *vm);
/* Any → Shutdown: stops the vCPUs and devices; the VM can only be destroyed afterwards. */
int vm_shutdown(struct vm *vm);
/* Rebuilds the VM from its config and boots it again (guest reboot, as Cloud Hypervisor). */
int vm_reboot(struct vm *vm, char *err, size_t errlen);
/*
 * vm.snapshot: writes the paused VM into directory @dir (existing, without a snapshot in it):
 * config.json, state.json and memory-ranges (DESIGN §7), each written under a temporary name,
 * fsync'd, and renamed into place only when all are complete. Paused only (-EBUSY). On
 * failure nothing is left in @dir, the VM is as before, and -errno returned with one line in
 * @err.
 */
int vm_snapshot(struct vm *vm, const char *dir, char *err, size_t errlen);

/*
 * vm.restore: builds a VM from the snapshot in @dir instead of booting one. @cfg is the
 * snapshot's config.json (read by snapshot_read_config(), possibly with per-clone overrides of
 * net, disks, vsock and pmem); guest RAM is mapped copy-on-write from memory-ranges, or copied
 * in with @prefault. The VM is left Paused: vm_resume() runs it, and gives the guest a new VM
 * generation ID as it does (announced through the GED, so its RNG reseeds). Returns 0 or -errno
 * with one line in @err, everything undone.
 */
int vm_restore(const struct vm_config *cfg, const char *dir, bool prefault, struct loop *loop,
	       vm_exit_cb on_exit, void *opaque, struct vm_prewarm **prewarm, struct vm **ret,
	       char *err, size_t errlen);

/* Stops everything and frees. Accepts NULL; returns NULL. */
struct vm *vm_destroy(struct vm *vm);

/* vm.counters: every realized device's dev_ops.counters, through @emit (device id, counter
 * name, value). */
void vm_counters(struct vm *vm,
		 void (*emit)(void *opaque, const char *id, const char *name, uint64_t value),
		 void *opaque);
/* vm.info's device tree: every realized device's dev_ops.nodes (id, PCI slot on bus 0 or -1). */
void vm_devices(struct vm *vm, void (*emit)(void *opaque, const char *id, int pci_slot),
		void *opaque);
/* vm.power-button: presses the ACPI power button (a Generic Event Device interrupt; Running
 * only: -EBUSY). Returns 0 or the hypervisor's -errno. */
int vm_power_button(struct vm *vm);
/*
 * vm.resize desired_balloon: asks the guest's balloon to hold @bytes (a multiple of 4 KiB, at
 * most the memory size); the guest is told through a config-change interrupt and inflates or
 * deflates on its own time. Loop thread. Returns 0, -ENODEV without --balloon (or before the
 * devices exist), -EINVAL for a bad size.
 */
int vm_balloon_resize(struct vm *vm, uint64_t bytes);
/* What the guest's balloon holds in bytes (its driver's word, at most the RAM), 0 without
 * --balloon: vm.info's memory_actual_size is the memory size minus this. */
uint64_t vm_balloon_actual(struct vm *vm);

/*
 * --sys-ctrl (CubeSandbox): the guest signals "started" by writing to I/O port 0x680.
 * vm_guest_started() is true once it did, since the VM was built or restored.
 * vm_on_guest_start() sets a callback run on the loop thread at each such signal (NULL
 * removes it); the API's vm.waitstart waits through it.
 */
bool vm_guest_started(const struct vm *vm);
void vm_on_guest_start(struct vm *vm, void (*cb)(void *opaque), void *opaque);

enum vm_state vm_get_state(const struct vm *vm);
/* "Created", "Running", "Paused", "Shutdown" as Cloud Hypervisor's vm.info says it. */
const char *vm_state_name(enum vm_state state);

#endif
