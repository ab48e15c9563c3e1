/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a device sees of the VM (DESIGN §5): guest memory, the two buses, an interrupt sink,
 * the VMM event loop and a way to ask the VM for power off or reset. Devices never include
 * hv.h or arch/: everything reaches them through this context, which is what lets a device be
 * tested against fake memory and a fake interrupt sink.
 *
 * A device is one const struct dev_ops, listed in the table in devices.c.
 */
#ifndef CUBICLE_DEVICES_DEVICE_H
#define CUBICLE_DEVICES_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/bus.h" /* struct bus, struct irq_sink, struct dev_loop */

struct guest_mem;
struct json_t; /* jansson: a device's saved state (util/state.h) */
struct pci_root;
struct vm_config;

/* What a device may ask of the VM (or tell it); safe from any thread. */
enum dev_request {
	DEV_REQUEST_POWEROFF,
	DEV_REQUEST_RESET,
	DEV_REQUEST_STARTED, /* --sys-ctrl: the guest says it has started; it keeps running */
};

struct dev_ctx {
	struct guest_mem *mem;
	struct bus *pio;
	struct bus *mmio;
	const struct irq_sink *irq;
	struct pci_root *pci; /* bus 0 of the PCI root complex (pci/pci.h) */
	const struct dev_loop *loop;
	const struct vm_config *cfg;
	bool rebooted; /* rebuilt after a guest reboot: keep what the first boot wrote */
	void (*request)(void *opaque, enum dev_request req);
	void *request_opaque;
	/*
	 * Confines the calling thread as a device worker (the VMM's seccomp filter for workers,
	 * --seccomp); a device's worker threads call it before their first request. NULL: nothing
	 * to do (tests). Returns 0 or -errno: a worker that cannot be confined must not do I/O.
	 * Safe to keep and call after realize.
	 */
	int (*confine_worker)(void *opaque, const char *name);
	void *confine_opaque;
	/*
	 * Device memory (virtio-pmem): places @size bytes of the device's own memory at @host
	 * (page aligned; it must outlive the mapping) in the VM's device memory area, at a
	 * guest-physical address aligned to @align (a power of two), as a memory slot of its own
	 * that the guest does not see as RAM (not in e820, not in ctx->mem). Returns 0 with
	 * *@ret_gpa, -ENOSPC when the area has no room, -EINVAL for a bad @align, or the
	 * hypervisor's -errno. unmap_ram() removes it (from unrealize). NULL when the VM has no
	 * such area (unit tests that do not provide one).
	 */
	int (*map_ram)(void *opaque, void *host, uint64_t size, uint64_t align, bool readonly,
		       uint64_t *ret_gpa);
	void (*unmap_ram)(void *opaque, uint64_t gpa);
	void *ram_opaque;
	/* Where realize() writes the one line a user sees when it fails ("--serial: cannot open
	 * 'x': ..."); empty on entry. Devices write here instead of logging (STYLE: only the top
	 * level logs errors); the VM builder falls back to a generic line when it stays empty.
	 * Valid only during realize(): a device that keeps a copy of the context must not use it
	 * later. */
	char *err;
	size_t errlen;
};

/*
 * One counter of one device instance, for vm.counters (Cloud Hypervisor's
 * {"_disk0": {"read_bytes": N, ...}}): @id is the instance's id, @name the counter's.
 */
typedef void (*dev_counter_fn)(void *opaque, const char *id, const char *name, uint64_t value);

/*
 * One node of vm.info's device tree: an instance's id as Cloud Hypervisor names it ("__rng",
 * "__console", "__serial", "_disk0"...) and its PCI slot on bus 0 (-1: not a PCI device).
 */
typedef void (*dev_node_fn)(void *opaque, const char *id, int pci_slot);

struct dev_ops {
	const char *name;
	/*
	 * Creates the device and registers its ranges. @state is NULL on a cold boot; on a
	 * restore it is the object save() filled (or NULL when the snapshot has none for this
	 * entry): the device is built from ctx->cfg as on a cold boot (backends opened, ranges
	 * registered), then takes its saved state, checked as hostile input (it comes from a
	 * file): a state that does not fit the config (another number of instances, queue sizes,
	 * PCI slots) fails with -EINVAL and a line in ctx->err naming the field. A restored
	 * device starts quiesced, as after pause(): vm_resume() calls resume(). Returns 0 with
	 * *@ret set, or -errno having undone everything. Returning 0 with *@ret == NULL means
	 * "not configured" (e.g. --serial off).
	 */
	int (*realize)(const struct dev_ctx *ctx, const struct json_t *state, void **ret);
	/* Unregisters and frees. Accepts NULL. */
	void (*unrealize)(void *dev);
	/* Back to power-on state (guest reboot). May be NULL. */
	void (*reset)(void *dev);
	/* Quiesce / resume device work (pause and snapshot). May be NULL. */
	void (*pause)(void *dev);
	void (*resume)(void *dev);
	/*
	 * Writes every instance's state into @state, an empty JSON object (util/state.h: named,
	 * typed fields), on the loop thread while paused. Saving twice without running in
	 * between gives the same object, and realize() from it then save() gives it again
	 * (the round-trip tests hold every device to that). Returns 0 or -errno with a line in
	 * @err. May be NULL: nothing beyond the config (the device restores as on a cold boot).
	 */
	int (*save)(void *dev, struct json_t *state, char *err, size_t errlen);
	/* Reports every counter of every instance this entry realized through @emit, on the loop
	 * thread. Counters count from realize (rx/tx bytes, frames, requests, drops...). May be
	 * NULL. */
	void (*counters)(void *dev, dev_counter_fn emit, void *opaque);
	/* Reports every instance this entry realized through @emit, on the loop thread. May be
	 * NULL (not listed in the device tree). */
	void (*nodes)(void *dev, dev_node_fn emit, void *opaque);
};

/* The device table: every device cubicle has, in realize order. */
extern const struct dev_ops *const dev_table[];
extern const unsigned dev_table_size;

#endif
