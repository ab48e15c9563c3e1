/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VM builder and lifecycle. A build acquires everything in a fixed order (hypervisor, RAM,
 * buses, devices, firmware tables, kernel, vCPUs) and a teardown releases it in reverse, so a
 * failed build, a reboot and a shutdown all use the same two functions.
 */
#include "core/vm.h"
#include "security/seccomp.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>

#include "arch/x86/x86.h"
#include "bus/bus.h"
#include "config/json.h"
#include "core/loop.h"
#include "core/vcpu.h"
#include "devices/device.h"
#include "devices/legacy/legacy.h"
#include "devices/virtio/virtio_devices.h"
#include "hv/hv.h"
#include "mem/guest_mem.h"
#include "pci/pci.h"
#include "snapshot/snapshot.h"
#include "snapshot/state_hv.h"
#include "util/log.h"
#include "util/state.h"
#include "util/util.h"

#define VM_MAX_DEVICES 32
#define VM_MAX_DEVMEM  32 /* device memory mappings (virtio-pmem) */
#define EXIT_NONE      (-1)

struct vm {
	const struct vm_config *cfg;
	struct loop *loop;
	vm_exit_cb on_exit;
	void *opaque;
	enum vm_state state;
	uint64_t start_ns;
	unsigned reboots;

	struct hv *hv;
	struct guest_mem mem;
	struct bus pio, mmio;
	struct irq_sink irq;
	struct x86_pci_layout pci_layout;
	struct pci_root *pci;
	struct dev_loop dloop;
	struct dev_ctx dctx;
	void *devs[VM_MAX_DEVICES];	   /* dev_table order; NULL = not configured */
	uint64_t devmem_base, devmem_size; /* the device memory area (dev_ctx.map_ram) */
	struct x86_ram_range devmem[VM_MAX_DEVMEM];
	unsigned nr_devmem;
	unsigned nr_realized;

	struct vcpu_group group;
	struct vcpu *vcpus;
	unsigned nr_vcpus;

	bool genid_pending; /* restored: a new VM generation ID at the first resume */
	int eventfd;	    /* wakes the loop thread when the guest stops itself */
	atomic_int pending; /* enum vm_exit, or EXIT_NONE */

	/* --sys-ctrl: set from a vCPU thread, acted on by the loop thread (vm_on_event). */
	atomic_bool started;	  /* the guest said so since the VM was built or restored */
	atomic_bool start_signal; /* a start signal the loop thread has not handled yet */
	void (*on_start)(void *); /* vm_on_guest_start(): loop thread only */
	void *on_start_opaque;
};

/* A file mapped read-only: kernels and initramfs images are not copied twice. */
struct mapped_file {
	void *data;
	size_t size;
};

static void mapped_file_close(struct mapped_file *f)
{
	if (f->data && f->size)
		munmap(f->data, f->size);
	f->data = NULL;
	f->size = 0;
}

static int mapped_file_open(const char *option, const char *path, struct mapped_file *ret,
			    char *err, size_t errlen)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0) {
		int r = -errno;
		snprintf(err, errlen, "%s: cannot open '%s': %s", option, path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		int r = -errno;
		snprintf(err, errlen, "%s: cannot stat '%s': %s", option, path, strerror(-r));
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: '%s' is not a regular file", option, path);
		return -EINVAL;
	}
	if (st.st_size == 0) {
		snprintf(err, errlen, "%s: '%s' is empty", option, path);
		return -ENOEXEC;
	}
	void *p = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		int r = -errno;
		snprintf(err, errlen, "%s: cannot map '%s': %s", option, path, strerror(-r));
		return r;
	}
	ret->data = p;
	ret->size = st.st_size;
	return 0;
}

/* hv → bus glue: exits are dispatched on the vCPU threads. */
static void vm_pio(void *opaque, uint16_t port, bool is_write, uint8_t *data, unsigned len)
{
	struct vm *vm = opaque;
	bus_access(&vm->pio, port, is_write, data, len);
}

static void vm_mmio(void *opaque, uint64_t addr, bool is_write, uint8_t *data, unsigned len)
{
	struct vm *vm = opaque;
	bus_access(&vm->mmio, addr, is_write, data, len);
}

static const struct hv_io_ops vm_io_ops = {
	.pio = vm_pio,
	.mmio = vm_mmio,
};

static int vm_irq_line(void *opaque, uint32_t gsi, bool level)
{
	struct vm *vm = opaque;
	return hv_irq_line(vm->hv, gsi, level);
}

static int vm_irq_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct vm *vm = opaque;
	return hv_msi(vm->hv, addr, data);
}

static int vm_irq_route_alloc(void *opaque, uint32_t *ret_gsi)
{
	struct vm *vm = opaque;
	return hv_msi_route_alloc(vm->hv, ret_gsi);
}

static int vm_irq_route_set(void *opaque, uint32_t gsi, uint64_t addr, uint32_t data)
{
	struct vm *vm = opaque;
	return hv_msi_route(vm->hv, gsi, addr, data);
}

static void vm_irq_route_free(void *opaque, uint32_t gsi)
{
	struct vm *vm = opaque;
	hv_msi_route_free(vm->hv, gsi);
}

static int vm_irq_irqfd(void *opaque, int fd, uint32_t gsi, bool assign)
{
	struct vm *vm = opaque;
	return hv_irqfd(vm->hv, fd, gsi, assign);
}

static int vm_ioeventfd(void *opaque, int fd, uint64_t addr, unsigned len, bool assign)
{
	struct vm *vm = opaque;
	return hv_ioeventfd(vm->hv, fd, addr, len, assign);
}

/* From any thread: the first reason wins; the vCPUs stop at once (a guest that asked for a
 * reset or power-off must not run on), and the loop thread acts on it. */
static void vm_note_exit(struct vm *vm, enum vm_exit why)
{
	int expected = EXIT_NONE;
	if (atomic_compare_exchange_strong(&vm->pending, &expected, (int)why)) {
		uint64_t one = 1;
		if (vm->vcpus)
			vcpu_group_halt(&vm->group, vm->vcpus, vm->nr_vcpus);
		(void)!write(vm->eventfd, &one, sizeof(one));
	}
}

static int vm_confine_worker(void *opaque, const char *name)
{
	struct vm *vm = opaque;
	int r = seccomp_apply(SECCOMP_THREAD_WORKER, vm->cfg->seccomp, name);
	if (r == 0)
		seccomp_selftest(SECCOMP_THREAD_WORKER);
	return r;
}

/* From a vCPU thread (sys_ctrl.c): note the start and wake the loop thread, which runs the
 * callback; the vCPUs keep running. */
static void vm_note_started(struct vm *vm)
{
	uint64_t one = 1;

	if (!atomic_load(&vm->started))
		log_debug("vm: the guest signalled its start (--sys-ctrl)");
	atomic_store(&vm->started, true);
	atomic_store(&vm->start_signal, true);
	(void)!write(vm->eventfd, &one, sizeof(one));
}

static void vm_device_request(void *opaque, enum dev_request req)
{
	switch (req) {
	case DEV_REQUEST_STARTED:
		vm_note_started(opaque);
		return;
	case DEV_REQUEST_POWEROFF:
		vm_note_exit(opaque, VM_EXIT_POWEROFF);
		return;
	case DEV_REQUEST_RESET:
		vm_note_exit(opaque, VM_EXIT_RESET);
		return;
	}
}

/* First fit in the device memory area: the lowest @align-aligned gap of @size bytes. */
static int vm_devmem_alloc(struct vm *vm, uint64_t size, uint64_t align, uint64_t *ret_gpa)
{
	uint64_t end = vm->devmem_base + vm->devmem_size;
	uint64_t gpa = ALIGN_UP(vm->devmem_base, align);

	for (unsigned i = 0; i < vm->nr_devmem; i++) {
		const struct x86_ram_range *r = &vm->devmem[i];

		if (gpa < r->gpa + r->size && r->gpa < gpa + size) {
			gpa = ALIGN_UP(r->gpa + r->size, align);
			i = UINT_MAX; /* ++ wraps to 0: look at every range again */
		}
	}
	if (gpa < vm->devmem_base || size > end - gpa)
		return -ENOSPC;
	*ret_gpa = gpa;
	return 0;
}

static int vm_map_ram(void *opaque, void *host, uint64_t size, uint64_t align, bool readonly,
		      uint64_t *ret_gpa)
{
	struct vm *vm = opaque;
	uint64_t gpa;
	int r;

	if (align < 4096 || (align & (align - 1)) || size == 0 || size > vm->devmem_size)
		return -EINVAL;
	if (vm->nr_devmem == VM_MAX_DEVMEM)
		return -ENOSPC;
	r = vm_devmem_alloc(vm, size, align, &gpa);
	if (r < 0)
		return r;
	r = hv_mem_map(vm->hv, gpa, size, host, readonly);
	if (r < 0)
		return r;
	vm->devmem[vm->nr_devmem++] = (struct x86_ram_range){ .gpa = gpa, .size = size };
	*ret_gpa = gpa;
	return 0;
}

static void vm_unmap_ram(void *opaque, uint64_t gpa)
{
	struct vm *vm = opaque;

	for (unsigned i = 0; i < vm->nr_devmem; i++) {
		if (vm->devmem[i].gpa != gpa)
			continue;
		(void)hv_mem_unmap(vm->hv, gpa);
		vm->devmem[i] = vm->devmem[--vm->nr_devmem];
		return;
	}
}

static void vm_vcpu_event(void *opaque, unsigned index, enum vcpu_event ev)
{
	static const enum vm_exit map[] = {
		[VCPU_EVENT_POWEROFF] = VM_EXIT_POWEROFF,
		[VCPU_EVENT_RESET] = VM_EXIT_RESET,
		[VCPU_EVENT_ERROR] = VM_EXIT_ERROR,
	};
	vm_note_exit(opaque, map[ev]);
}

/* On the control thread (loop_control): stopping the vCPUs, and what the owner does next
 * (a reboot rebuilds the VM, a power-off ends it). */
static void vm_exit_control(void *opaque)
{
	struct vm *vm = opaque;
	int why = atomic_load(&vm->pending);

	vm_shutdown(vm);
	vm->on_exit(vm->opaque, (enum vm_exit)why);
}

static void vm_on_event(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	uint64_t v;

	(void)!read(vm->eventfd, &v, sizeof(v));
	if (atomic_exchange(&vm->start_signal, false) && vm->on_start)
		vm->on_start(vm->on_start_opaque);
	int why = atomic_load(&vm->pending);
	if (why == EXIT_NONE || vm->state == VM_SHUTDOWN)
		return;
	loop_control(vm->loop, vm_exit_control, vm);
}

static void vm_teardown(struct vm *vm)
{
	if (vm->vcpus) {
		vcpu_group_stop(&vm->group, vm->vcpus, vm->nr_vcpus);
		for (unsigned i = 0; i < vm->nr_vcpus; i++)
			hv_vcpu_destroy(vm->vcpus[i].hv);
		free(vm->vcpus);
		vm->vcpus = NULL;
		vm->nr_vcpus = 0;
	}
	while (vm->nr_realized > 0) {
		unsigned i = --vm->nr_realized;
		if (vm->devs[i])
			dev_table[i]->unrealize(vm->devs[i]);
		vm->devs[i] = NULL;
	}
	vm->pci = pci_root_destroy(vm->pci);
	if (vm->eventfd >= 0) {
		loop_del_fd(vm->loop, vm->eventfd);
		close(vm->eventfd);
		vm->eventfd = -1;
	}
	vm->hv = hv_destroy(vm->hv);
}

static int vm_build_memory(struct vm *vm, char *err, size_t errlen)
{
	const struct memory_config *mc = &vm->cfg->memory;
	struct x86_ram_range ram[2];
	struct sysinfo si;
	unsigned flags = 0;

	if (sysinfo(&si) == 0 && mc->size > (uint64_t)si.totalram * si.mem_unit) {
		snprintf(err, errlen,
			 "--memory: size %" PRIu64 "M is more than the host's %" PRIu64 "M of RAM",
			 mc->size >> 20, ((uint64_t)si.totalram * si.mem_unit) >> 20);
		return -ENOMEM;
	}
	if (mc->shared)
		flags |= HV_RAM_SHARED;
	if (mc->hugepages)
		flags |= HV_RAM_HUGEPAGES;
	if (mc->prefault)
		flags |= HV_RAM_PREFAULT;
	if (mc->thp)
		flags |= HV_RAM_THP;

	guest_mem_init(&vm->mem);
	unsigned n = x86_layout_ram(mc->size, ram);
	for (unsigned i = 0; i < n; i++) {
		void *host;
		int r = hv_ram_add(vm->hv, ram[i].gpa, ram[i].size, flags, &host);
		if (r < 0) {
			snprintf(err, errlen,
				 "--memory: cannot allocate %" PRIu64 "M of guest RAM: %s%s",
				 ram[i].size >> 20, strerror(-r),
				 mc->hugepages
					 ? " (hugepages=on: are enough huge pages reserved in "
					   "/proc/sys/vm/nr_hugepages?)"
					 : "");
			return r;
		}
		r = guest_mem_add_region(&vm->mem, ram[i].gpa, ram[i].size, host);
		if (r < 0) {
			snprintf(err, errlen, "--memory: bad RAM layout: %s", strerror(-r));
			return r;
		}
	}
	return 0;
}

/*
 * Guest RAM from a snapshot: each range of memory-ranges mapped copy-on-write at its address
 * (the layout must be the one this config gives: the guest's page tables point into it), or
 * copied into fresh RAM with @prefault or where the backend cannot map files.
 */
static int vm_restore_memory(struct vm *vm, const struct snapshot *snap, bool prefault, char *err,
			     size_t errlen)
{
	const struct memory_config *mc = &vm->cfg->memory;
	struct x86_ram_range ram[2];
	unsigned n = x86_layout_ram(mc->size, ram);
	bool copy = prefault || mc->shared || mc->hugepages;

	if (n != snap->nr_ranges)
		return error_set(err, errlen, -EINVAL,
				 "snapshot: %u memory ranges, the config's layout has %u",
				 snap->nr_ranges, n);
	guest_mem_init(&vm->mem);
	for (unsigned i = 0; i < n; i++) {
		const struct snapshot_range *g = &snap->ranges[i];
		void *host;
		int r;

		if (g->gpa != ram[i].gpa || g->size != ram[i].size)
			return error_set(err, errlen, -EINVAL,
					 "snapshot: memory range %u (gpa %#" PRIx64 ", %" PRIu64
					 "M) does not match the config's layout",
					 i, g->gpa, g->size >> 20);
		r = copy ? -EOPNOTSUPP
			 : hv_ram_add_file(vm->hv, g->gpa, g->size, snap->memory_fd, g->offset, 0,
					   &host);
		if (r == -EOPNOTSUPP) {
			unsigned flags = (mc->shared ? HV_RAM_SHARED : 0) |
					 (mc->hugepages ? HV_RAM_HUGEPAGES : 0);
			r = hv_ram_add(vm->hv, g->gpa, g->size, flags, &host);
			if (r == 0)
				r = snapshot_copy_range(snap, g, host);
		}
		if (r < 0)
			return error_set(err, errlen, r, "snapshot: cannot map guest RAM: %s",
					 strerror(-r));
		r = guest_mem_add_region(&vm->mem, g->gpa, g->size, host);
		if (r < 0)
			return error_set(err, errlen, r, "snapshot: bad RAM layout: %s",
					 strerror(-r));
	}
	return 0;
}

static int vm_build_devices(struct vm *vm, const json_t *saved, char *err, size_t errlen)
{
	struct hv_caps caps;

	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");
	hv_get_caps(vm->hv, &caps);
	vm->irq = (struct irq_sink){ .set_line = vm_irq_line, .msi = vm_irq_msi, .opaque = vm };
	if (caps.irqfd) {
		vm->irq.route_alloc = vm_irq_route_alloc;
		vm->irq.route_set = vm_irq_route_set;
		vm->irq.route_free = vm_irq_route_free;
		vm->irq.irqfd = vm_irq_irqfd;
	}
	loop_dev_loop(vm->loop, &vm->dloop);
	if (caps.ioeventfd) {
		vm->dloop.ioeventfd = vm_ioeventfd;
		vm->dloop.ioeventfd_ctx = vm;
	}

	x86_layout_pci(vm->cfg->memory.size, &vm->pci_layout);
	const struct pci_layout pl = {
		.ecam_base = vm->pci_layout.ecam_base,
		.ecam_size = X86_PCI_MMCONFIG_SIZE,
		.mem32_base = vm->pci_layout.mem32_base,
		.mem32_size = vm->pci_layout.mem32_size,
		.mem64_base = vm->pci_layout.mem64_base,
		.mem64_size = vm->pci_layout.mem64_size,
	};
	vm->devmem_base = pl.mem64_base + pl.mem64_size;
	vm->devmem_size = X86_DEVMEM_SIZE;
	vm->nr_devmem = 0;
	int r = pci_root_create(&vm->pio, &vm->mmio, &vm->irq, &pl, &vm->pci);
	if (r < 0)
		return error_set(err, errlen, r, "cannot create the PCI root complex: %s",
				 strerror(-r));
	vm->dctx = (struct dev_ctx){
		.mem = &vm->mem,
		.pio = &vm->pio,
		.mmio = &vm->mmio,
		.irq = &vm->irq,
		.pci = vm->pci,
		.loop = &vm->dloop,
		.cfg = vm->cfg,
		.rebooted = vm->reboots > 0,
		.request = vm_device_request,
		.request_opaque = vm,
		.confine_worker = vm_confine_worker,
		.confine_opaque = vm,
		.map_ram = vm_map_ram,
		.unmap_ram = vm_unmap_ram,
		.ram_opaque = vm,
		.err = err,
		.errlen = errlen,
	};
	if (dev_table_size > VM_MAX_DEVICES) {
		snprintf(err, errlen, "internal: %u devices, at most %u", dev_table_size,
			 VM_MAX_DEVICES);
		return -E2BIG;
	}
	for (unsigned i = 0; i < dev_table_size; i++) {
		if (errlen)
			err[0] = '\0';
		const json_t *st = saved ? json_object_get(saved, dev_table[i]->name) : NULL;
		r = dev_table[i]->realize(&vm->dctx, st, &vm->devs[i]);
		if (r < 0) {
			if (errlen && !err[0])
				snprintf(err, errlen, "%s: cannot create the device: %s",
					 dev_table[i]->name, strerror(-r));
			else if (saved && errlen)
				error_prefix(err, errlen,
					     "snapshot: device '%s': ", dev_table[i]->name);
			return r;
		}
		if (saved && st && !vm->devs[i])
			return error_set(err, errlen, -EINVAL,
					 "snapshot: device '%s' is in the snapshot but not in "
					 "the config",
					 dev_table[i]->name);
		vm->nr_realized = i + 1;
	}
	vm->dctx.err = NULL; /* the caller's buffer: only for realize() */
	vm->dctx.errlen = 0;
	return 0;
}

static int vm_build_payload(struct vm *vm, struct x86_boot *boot, char *err, size_t errlen)
{
	const struct payload_config *p = &vm->cfg->payload;
	struct mapped_file kernel = { 0 }, initrd = { 0 };
	uint64_t rsdp;
	int r;

	r = x86_acpi_build(&vm->mem, vm->cfg->cpus.boot_vcpus, &vm->pci_layout, &rsdp);
	if (r < 0) {
		snprintf(err, errlen, "cannot build the ACPI tables: %s", strerror(-r));
		return r;
	}
	r = x86_mptable_build(&vm->mem, vm->cfg->cpus.boot_vcpus);
	if (r < 0) {
		snprintf(err, errlen, "cannot build the MP table: %s", strerror(-r));
		return r;
	}
	r = x86_vmgenid_update(&vm->mem);
	if (r < 0) {
		snprintf(err, errlen, "cannot write the VM generation ID: %s", strerror(-r));
		return r;
	}
	r = mapped_file_open("--kernel", p->kernel, &kernel, err, errlen);
	if (r < 0)
		return r;
	if (p->initramfs) {
		r = mapped_file_open("--initramfs", p->initramfs, &initrd, err, errlen);
		if (r < 0) {
			mapped_file_close(&kernel);
			return r;
		}
	}
	r = x86_load_kernel(&vm->mem, kernel.data, kernel.size, initrd.data, initrd.size,
			    p->cmdline ? p->cmdline : "", rsdp, boot, err, errlen);
	mapped_file_close(&initrd);
	mapped_file_close(&kernel);
	return r;
}

/* @boot NULL: a restore (CPUID only; the saved state follows). */
static int vm_build_vcpus(struct vm *vm, const struct x86_boot *boot, char *err, size_t errlen)
{
	const struct cpus_config *cc = &vm->cfg->cpus;

	vm->vcpus = calloc(cc->boot_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	for (unsigned i = 0; i < cc->boot_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		int r = hv_vcpu_create(vm->hv, i, &v->hv);
		if (r < 0) {
			snprintf(err, errlen, "--cpus: cannot create vCPU %u: %s", i, strerror(-r));
			return r;
		}
		v->group = &vm->group;
		v->index = i;
		vm->nr_vcpus = i + 1;
		if (boot)
			r = x86_vcpu_setup(vm->hv, v->hv, i, cc->boot_vcpus, &cc->topology,
					   &vm->mem, boot);
		else
			r = x86_vcpu_setup_cpuid(vm->hv, v->hv, i, cc->boot_vcpus, &cc->topology);
		if (r < 0) {
			snprintf(err, errlen, "cannot set up vCPU %u: %s", i, strerror(-r));
			return r;
		}
	}
	return 0;
}

/* Where build time goes, at debug level (-vv): the figure benchmarks care about. */
static void vm_phase(struct vm *vm, const char *what)
{
	if (log_get_level() >= LOG_DEBUG)
		log_debug("vm: %s done at +%.3f ms", what, (time_now_ns() - vm->start_ns) / 1e6);
}

/* The interrupt controllers, clock and every vCPU from the snapshot's state. */
static int vm_restore_cpus(struct vm *vm, const json_t *state, char *err, size_t errlen)
{
	_cleanup_free_ struct hv_vcpu_state *vs = malloc(sizeof(*vs));
	struct hv_vm_state ms;
	const json_t *obj, *arr;
	char sub[256];
	int r;

	if (!vs)
		return -ENOMEM;
	r = state_get_object(state, "vm", &obj, sub, sizeof(sub));
	if (r == 0)
		r = snapshot_load_vm(obj, &ms, sub, sizeof(sub));
	if (r < 0)
		return error_set(err, errlen, r, "snapshot: vm: %s", sub);
	r = hv_vm_set_state(vm->hv, &ms);
	if (r < 0)
		return error_set(err, errlen, r,
				 "snapshot: cannot load the interrupt controllers: %s",
				 strerror(-r));
	r = state_get_array(state, "vcpus", CONFIG_MAX_VCPUS, &arr, sub, sizeof(sub));
	if (r < 0)
		return error_set(err, errlen, r, "snapshot: %s", sub);
	if (json_array_size(arr) != vm->nr_vcpus)
		return error_set(err, errlen, -EINVAL,
				 "snapshot: %zu vCPUs saved, the config has %u",
				 json_array_size(arr), vm->nr_vcpus);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		r = snapshot_load_vcpu(json_array_get(arr, i), vs, sub, sizeof(sub));
		if (r < 0)
			return error_set(err, errlen, r, "snapshot: vcpu %u: %s", i, sub);
		r = hv_vcpu_set_state(vm->vcpus[i].hv, vs);
		if (r < 0)
			return error_set(err, errlen, r, "snapshot: cannot load vCPU %u: %s", i,
					 strerror(-r));
	}
	return 0;
}

/* @snap NULL: a cold boot. Otherwise a restore from it (RAM, devices, CPU state). */
struct vm_prewarm {
	struct hv *hv;
	uint64_t ram; /* bytes of low RAM its reservation holds */
};

int vm_prewarm_create(uint64_t ram, struct vm_prewarm **ret)
{
	struct vm_prewarm *p = calloc(1, sizeof(*p));
	struct x86_ram_range low[2];
	int r;

	if (!p)
		return -ENOMEM;
	x86_layout_ram(ram, low);
	p->ram = low[0].size;
	r = hv_create(&p->hv);
	if (r == 0)
		r = hv_ram_reserve(p->hv, low[0].gpa, p->ram);
	if (r == 0) {
		/* The CPUID the vCPUs will be built from: asked now, kept by the backend. */
		struct hv_cpuid_entry *c = calloc(HV_CPUID_MAX_ENTRIES, sizeof(*c));
		r = c ? hv_supported_cpuid(p->hv, c, HV_CPUID_MAX_ENTRIES) : -ENOMEM;
		free(c);
		r = r < 0 ? r : 0;
	}
	if (r < 0) {
		vm_prewarm_destroy(p);
		return r;
	}
	*ret = p;
	return 0;
}

struct vm_prewarm *vm_prewarm_destroy(struct vm_prewarm *p)
{
	if (p) {
		hv_destroy(p->hv);
		free(p);
	}
	return NULL;
}

/* The hypervisor for a new VM: the pre-warmed one when the VM's RAM fits its reservation. */
static int vm_hv_create(struct vm *vm, struct vm_prewarm **prewarm)
{
	struct vm_prewarm *p = prewarm ? ptr_take(prewarm) : NULL;
	const struct memory_config *mc = &vm->cfg->memory;
	struct x86_ram_range low[2];

	x86_layout_ram(mc->size, low);
	if (p && low[0].size <= p->ram && !mc->hugepages) {
		vm->hv = ptr_take(&p->hv);
		log_debug("vm: using the pre-warmed hypervisor (%" PRIu64 "M reserved)",
			  p->ram >> 20);
	}
	vm_prewarm_destroy(p);
	return vm->hv ? 0 : hv_create(&vm->hv);
}

static int vm_build(struct vm *vm, const struct snapshot *snap, bool prefault,
		    struct vm_prewarm **prewarm, char *err, size_t errlen)
{
	struct hv_caps caps;
	struct x86_boot boot;
	int r;

	vm->start_ns = time_now_ns();
	vm->state = VM_CREATED;
	atomic_store(&vm->pending, EXIT_NONE);
	atomic_store(&vm->started, false);
	atomic_store(&vm->start_signal, false);
	atomic_store(&vm->group.stop, false);
	atomic_store(&vm->group.pause, false);
	vm->group.parked = 0;
	vm->group.start_ns = vm->start_ns;
	vm->group.mem = &vm->mem;
	vm->group.seccomp = vm->cfg->seccomp;
	vm->group.event = vm_vcpu_event;
	vm->group.opaque = vm;

	vm->eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->eventfd < 0) {
		r = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(-r));
		return r;
	}
	r = loop_add_fd(vm->loop, vm->eventfd, EPOLLIN, vm_on_event, vm);
	if (r < 0) {
		close(vm->eventfd);
		vm->eventfd = -1;
		snprintf(err, errlen, "event loop: %s", strerror(-r));
		return r;
	}

	r = vm_hv_create(vm, prewarm);
	if (r < 0) {
		snprintf(err, errlen, "cannot create the VM: %s", strerror(-r));
		return r;
	}
	vm_phase(vm, "hypervisor");
	hv_get_caps(vm->hv, &caps);
	if (vm->cfg->cpus.boot_vcpus > caps.max_vcpus) {
		snprintf(err, errlen, "--cpus: boot=%u is more than the %u vCPUs this host allows",
			 vm->cfg->cpus.boot_vcpus, caps.max_vcpus);
		return -EINVAL;
	}
	hv_set_io_ops(vm->hv, &vm_io_ops, vm);

	r = snap ? vm_restore_memory(vm, snap, prefault, err, errlen)
		 : vm_build_memory(vm, err, errlen);
	if (r < 0)
		return r;
	vm_phase(vm, "memory");
	const json_t *saved_devs = NULL;
	if (snap) {
		char sub[200];
		r = state_get_object(snap->state, "devices", &saved_devs, sub, sizeof(sub));
		if (r < 0)
			return error_set(err, errlen, r, "snapshot: %s", sub);
	}
	r = vm_build_devices(vm, saved_devs, err, errlen);
	if (r < 0)
		return r;
	vm_phase(vm, "devices");
	if (!snap) {
		r = vm_build_payload(vm, &boot, err, errlen);
		if (r < 0)
			return r;
		vm_phase(vm, "payload");
	}
	r = vm_build_vcpus(vm, snap ? NULL : &boot, err, errlen);
	if (r < 0)
		return r;
	if (snap) {
		r = vm_restore_cpus(vm, snap->state, err, errlen);
		if (r < 0)
			return r;
	}
	vm_phase(vm, "vcpus");
	r = hv_ready(vm->hv);
	if (r < 0) {
		snprintf(err, errlen, "cannot set up the VM: %s", strerror(-r));
		return r;
	}
	vm_phase(vm, "hypervisor ready");
	if (snap)
		log_info("vm: restored in %.3f ms (%u vCPUs, %" PRIu64 "M RAM)",
			 (time_now_ns() - vm->start_ns) / 1e6, vm->nr_vcpus,
			 vm->cfg->memory.size >> 20);
	else
		log_info("vm: built in %.3f ms (%u vCPUs, %" PRIu64 "M RAM, %s kernel)",
			 (time_now_ns() - vm->start_ns) / 1e6, vm->nr_vcpus,
			 vm->cfg->memory.size >> 20,
			 boot.kind == X86_KERNEL_PVH ? "PVH" : "bzImage");
	return 0;
}

static int vm_new(const struct vm_config *cfg, struct loop *loop, vm_exit_cb on_exit, void *opaque,
		  const struct snapshot *snap, bool prefault, struct vm_prewarm **prewarm,
		  struct vm **ret, char *err, size_t errlen)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	vm->cfg = cfg;
	vm->loop = loop;
	vm->on_exit = on_exit;
	vm->opaque = opaque;
	vm->eventfd = -1;
	vcpu_group_init(&vm->group);
	int r = vm_build(vm, snap, prefault, prewarm, err, errlen);
	if (r < 0) {
		vm_destroy(vm);
		return r;
	}
	*ret = vm;
	return 0;
}

int vm_create(const struct vm_config *cfg, struct loop *loop, vm_exit_cb on_exit, void *opaque,
	      struct vm_prewarm **prewarm, struct vm **ret, char *err, size_t errlen)
{
	return vm_new(cfg, loop, on_exit, opaque, NULL, false, prewarm, ret, err, errlen);
}

static int vm_vmgenid_changed(struct vm *vm);

int vm_restore(const struct vm_config *cfg, const char *dir, bool prefault, struct loop *loop,
	       vm_exit_cb on_exit, void *opaque, struct vm_prewarm **prewarm, struct vm **ret,
	       char *err, size_t errlen)
{
	struct snapshot snap = { .memory_fd = -1 };
	struct vm *vm;
	int r;

	r = snapshot_open(dir, cfg->memory.size, &snap, err, errlen);
	if (r < 0)
		return r;
	r = vm_new(cfg, loop, on_exit, opaque, &snap, prefault, prewarm, &vm, err, errlen);
	snapshot_close(&snap); /* the RAM mappings hold the file */
	if (r < 0)
		return r;
	/* A clone must not share its template's secrets: it gets a new generation ID when it
	 * first runs (vm_resume), so that a restored VM snapshotted again before it ran gives the
	 * same snapshot. */
	vm->genid_pending = true;
	/* Paused until vm_resume() (Cloud Hypervisor v28): the vCPU threads start and park. */
	atomic_store(&vm->group.pause, true);
	vm->state = VM_CREATED;
	r = vm_boot(vm);
	if (r < 0) {
		snprintf(err, errlen, "cannot start the vCPU threads: %s", strerror(-r));
		vm_destroy(vm);
		return r;
	}
	vm->state = VM_PAUSED;
	*ret = vm;
	return 0;
}

/* The state.json "state" object of a paused VM. */
static int vm_save_state(struct vm *vm, json_t *state, char *err, size_t errlen)
{
	_cleanup_free_ struct hv_vcpu_state *vs = malloc(sizeof(*vs));
	struct hv_vm_state ms;
	json_t *obj, *arr, *devs;
	int r;

	if (!vs)
		return -ENOMEM;
	r = hv_vm_get_state(vm->hv, &ms);
	if (r < 0)
		return error_set(err, errlen, r, "cannot read the interrupt controllers: %s",
				 strerror(-r));
	obj = state_add_object(state, "vm");
	if (!obj || snapshot_save_vm(obj, &ms) < 0)
		return -ENOMEM;
	arr = state_add_array(state, "vcpus");
	if (!arr)
		return -ENOMEM;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		r = hv_vcpu_get_state(vm->vcpus[i].hv, vs);
		if (r < 0)
			return error_set(err, errlen, r, "cannot read vCPU %u: %s", i,
					 strerror(-r));
		obj = state_append_object(arr);
		if (!obj || snapshot_save_vcpu(obj, vs) < 0)
			return -ENOMEM;
	}
	devs = state_add_object(state, "devices");
	if (!devs)
		return -ENOMEM;
	for (unsigned i = 0; i < vm->nr_realized; i++) {
		if (!vm->devs[i] || !dev_table[i]->save)
			continue;
		obj = state_add_object(devs, dev_table[i]->name);
		if (!obj)
			return -ENOMEM;
		r = dev_table[i]->save(vm->devs[i], obj, err, errlen);
		if (r < 0) {
			error_prefix(err, errlen, "device '%s': ", dev_table[i]->name);
			return r;
		}
	}
	return 0;
}

int vm_snapshot(struct vm *vm, const char *dir, char *err, size_t errlen)
{
	_cleanup_(json_decrefp) json_t *state = json_object();
	_cleanup_(json_decrefp) json_t *config = vm_config_to_json(vm->cfg);
	uint64_t t0 = time_now_ns();
	int r;

	if (vm->state != VM_PAUSED)
		return error_set(err, errlen, -EBUSY,
				 "the VM must be paused for a snapshot (it is %s)",
				 vm_state_name(vm->state));
	if (!state || !config)
		return error_set(err, errlen, -ENOMEM, "out of memory");
	if (errlen)
		err[0] = '\0';
	r = vm_save_state(vm, state, err, errlen);
	if (r < 0) {
		if (errlen && !err[0])
			snprintf(err, errlen, "cannot save the VM's state: %s", strerror(-r));
		return r;
	}
	r = snapshot_write(dir, config, state, &vm->mem, err, errlen);
	if (r < 0)
		return r;
	log_info("vm: snapshot written to %s in %.3f ms", dir, (time_now_ns() - t0) / 1e6);
	return 0;
}

int vm_boot(struct vm *vm)
{
	if (vm->state != VM_CREATED)
		return -EBUSY;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		int r = vcpu_start(&vm->vcpus[i]);
		if (r < 0) {
			log_error("vcpu%u: cannot start its thread: %s", i, strerror(-r));
			vcpu_group_stop(&vm->group, vm->vcpus, vm->nr_vcpus);
			return r;
		}
	}
	vm->state = VM_RUNNING;
	return 0;
}

int vm_pause(struct vm *vm)
{
	if (vm->state != VM_RUNNING)
		return -EBUSY;
	vcpu_group_pause(&vm->group, vm->vcpus, vm->nr_vcpus);
	for (unsigned i = 0; i < vm->nr_realized; i++)
		if (vm->devs[i] && dev_table[i]->pause)
			dev_table[i]->pause(vm->devs[i]);
	vm->state = VM_PAUSED;
	return 0;
}

int vm_resume(struct vm *vm)
{
	if (vm->state != VM_PAUSED)
		return -EBUSY;
	if (vm->genid_pending) {
		/* The guest takes the GED interrupt and reseeds its RNG as it resumes. */
		int r = vm_vmgenid_changed(vm);
		if (r < 0)
			return r;
		vm->genid_pending = false;
	}
	for (unsigned i = 0; i < vm->nr_realized; i++)
		if (vm->devs[i] && dev_table[i]->resume)
			dev_table[i]->resume(vm->devs[i]);
	vcpu_group_resume(&vm->group);
	vm->state = VM_RUNNING;
	return 0;
}

int vm_shutdown(struct vm *vm)
{
	if (vm->state == VM_SHUTDOWN)
		return -EBUSY;
	vcpu_group_stop(&vm->group, vm->vcpus, vm->nr_vcpus);
	vm->state = VM_SHUTDOWN;
	return 0;
}

int vm_reboot(struct vm *vm, char *err, size_t errlen)
{
	vm_teardown(vm);
	vm->reboots++;
	int r = vm_build(vm, NULL, false, NULL, err, errlen);
	if (r < 0) {
		vm_teardown(vm);
		vm->state = VM_SHUTDOWN;
		return r;
	}
	return vm_boot(vm);
}

struct vm *vm_destroy(struct vm *vm)
{
	if (!vm)
		return NULL;
	vm_teardown(vm);
	vcpu_group_destroy(&vm->group);
	free(vm);
	return NULL;
}

void vm_counters(struct vm *vm,
		 void (*emit)(void *opaque, const char *id, const char *name, uint64_t value),
		 void *opaque)
{
	for (unsigned i = 0; i < vm->nr_realized; i++)
		if (vm->devs[i] && dev_table[i]->counters)
			dev_table[i]->counters(vm->devs[i], emit, opaque);
}

void vm_devices(struct vm *vm, void (*emit)(void *opaque, const char *id, int pci_slot),
		void *opaque)
{
	for (unsigned i = 0; i < vm->nr_realized; i++)
		if (vm->devs[i] && dev_table[i]->nodes)
			dev_table[i]->nodes(vm->devs[i], emit, opaque);
}

/* devices/legacy mirrors the GED's map (devices do not include arch/). */
_Static_assert(ACPI_GED_PORT == X86_PORT_GED_STATUS && ACPI_GED_GSI == X86_GED_IRQ &&
		       ACPI_GED_PWR_BUTTON == X86_GED_EVENT_POWER_BUTTON &&
		       ACPI_GED_VMGENID == X86_GED_EVENT_VMGENID,
	       "legacy.h and x86.h disagree on the GED");

/* The realized instance of @ops, or NULL (not configured, or the devices do not exist). */
static void *vm_device(struct vm *vm, const struct dev_ops *ops)
{
	for (unsigned i = 0; i < vm->nr_realized; i++) {
		if (dev_table[i] == ops)
			return vm->devs[i];
	}
	return NULL;
}

/*
 * Latches @events (ACPI_GED_*) in the GED's status register and pulses its line: the guest
 * runs \_SB_.GED_._EVT (arch/x86/acpi.c), which notifies the devices whose bits it finds.
 */
static int vm_ged_raise(struct vm *vm, uint8_t events)
{
	void *pm = vm_device(vm, &acpi_pm_ops);

	return pm ? acpi_pm_ged_raise(pm, events) : -ENODEV;
}

/*
 * Restore (issue 7): gives the guest a new VM generation ID and tells it (GED event
 * ACPI_GED_VMGENID: Notify (\_SB_.VGEN, 0x80)), so that a clone's kernel reseeds its RNG
 * instead of sharing the template's. Call once guest RAM, the interrupt controllers and the
 * devices are restored (the edge must reach the restored irqchip); the guest takes the
 * interrupt when it runs. Returns 0 or -errno.
 */
static int vm_vmgenid_changed(struct vm *vm)
{
	int r = x86_vmgenid_update(&vm->mem);

	return r < 0 ? r : vm_ged_raise(vm, ACPI_GED_VMGENID);
}

int vm_power_button(struct vm *vm)
{
	if (vm->state != VM_RUNNING)
		return -EBUSY;
	return vm_ged_raise(vm, ACPI_GED_PWR_BUTTON);
}

int vm_balloon_resize(struct vm *vm, uint64_t bytes)
{
	void *balloon = vm_device(vm, &balloon_ops);

	return balloon ? balloon_set_target(balloon, bytes) : -ENODEV;
}

uint64_t vm_balloon_actual(struct vm *vm)
{
	return balloon_actual_bytes(vm_device(vm, &balloon_ops));
}

enum vm_state vm_get_state(const struct vm *vm)
{
	return vm->state;
}

const char *vm_state_name(enum vm_state state)
{
	static const char *const names[] = {
		[VM_CREATED] = "Created",
		[VM_RUNNING] = "Running",
		[VM_PAUSED] = "Paused",
		[VM_SHUTDOWN] = "Shutdown",
	};
	return state < ARRAY_SIZE(names) ? names[state] : "Unknown";
}

bool vm_guest_started(const struct vm *vm)
{
	return atomic_load(&vm->started);
}

void vm_on_guest_start(struct vm *vm, void (*cb)(void *opaque), void *opaque)
{
	vm->on_start = cb;
	vm->on_start_opaque = opaque;
}
