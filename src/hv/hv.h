/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hypervisor contract (DESIGN.md §3). One backend is linked per binary: kvm.c on Linux,
 * mock.c into unit tests; docs/bhyve.md maps every call to FreeBSD's libvmmapi. Nothing here
 * names a KVM type, so that map stays true.
 *
 * Errors are negative errno values. Unless a function says otherwise it may be called from any
 * thread, but the vCPU calls (hv_vcpu_*) only from the thread that runs that vCPU or while it
 * is parked outside hv_vcpu_run().
 */
#ifndef CUBICLE_HV_HV_H
#define CUBICLE_HV_HV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hv;
struct hv_vcpu;

/* What the backend can do beyond the required minimum (MSI and legacy IRQ lines). */
struct hv_caps {
	bool irqchip;	/* in-kernel LAPIC, IOAPIC, PIC and PIT */
	bool irqfd;	/* an eventfd can raise a GSI without a VMM thread */
	bool ioeventfd; /* a guest write can signal an eventfd without a vCPU exit */
	bool dirty_log; /* dirty page tracking of RAM slots */
	uint32_t max_vcpus;
};

/*
 * Port-I/O and MMIO exits are dispatched through these callbacks from inside hv_vcpu_run(),
 * on the vCPU's thread. @data holds @len (1, 2, 4 or 8) bytes, little endian: filled by the
 * callback on a read, to be consumed on a write. A callback cannot fail the vCPU: an access
 * nobody claims reads as all ones and its writes are dropped (the bus decides).
 */
struct hv_io_ops {
	void (*pio)(void *opaque, uint16_t port, bool is_write, uint8_t *data, unsigned len);
	void (*mmio)(void *opaque, uint64_t addr, bool is_write, uint8_t *data, unsigned len);
};

/* Opens the backend and creates an empty VM with its interrupt controllers.
 * Returns -ENODEV with a logged hint when the hypervisor device is missing. */
int hv_create(struct hv **ret);
/* Destroys the VM: its vCPUs must have been destroyed first. Accepts NULL; returns NULL. */
struct hv *hv_destroy(struct hv *hv);

void hv_get_caps(struct hv *hv, struct hv_caps *ret);

/*
 * The ioctl request numbers the backend issues, for the seccomp filters (security/): with
 * @vcpu_thread, those a vCPU thread makes (hv_vcpu_run and everything the exits' device
 * handlers call: interrupts, routes, ioeventfds); otherwise those of every other hv call.
 * Returns the count and sets *@ret to a static array. A backend without ioctls returns 0.
 */
size_t hv_seccomp_ioctls(bool vcpu_thread, const unsigned long **ret);

/* Sets the callbacks used by every vCPU's hv_vcpu_run(). Call before the first run. */
void hv_set_io_ops(struct hv *hv, const struct hv_io_ops *ops, void *opaque);

/* Guest RAM. */
enum hv_ram_flags {
	HV_RAM_SHARED = 1 << 0,	   /* MAP_SHARED on a memfd (vhost-user, snapshot sharing) */
	HV_RAM_HUGEPAGES = 1 << 1, /* hugetlbfs pages (memfd MFD_HUGETLB) */
	HV_RAM_PREFAULT = 1 << 2,  /* populate every page now */
	HV_RAM_THP = 1 << 3,	   /* madvise(MADV_HUGEPAGE) */
};

/*
 * Allocates @size bytes of guest RAM (page aligned) and maps it at guest-physical @gpa.
 * The backend owns the memory (bhyve allocates it in the kernel); the host address is returned
 * in @ret_host and stays valid until hv_destroy(). Returns -ENOMEM when the host cannot provide
 * the memory, -EINVAL for misaligned or overlapping ranges.
 */
int hv_ram_add(struct hv *hv, uint64_t gpa, uint64_t size, unsigned flags, void **ret_host);

/*
 * Guest RAM from a snapshot's memory file: @size bytes of @fd from @offset (page aligned)
 * mapped at @gpa copy-on-write (MAP_PRIVATE: the file never changes and every clone of one
 * snapshot shares its pages until it writes them). With HV_RAM_PREFAULT the pages are read in
 * now. HV_RAM_SHARED and HV_RAM_HUGEPAGES are refused (-EINVAL): such RAM is copied in by the
 * caller from hv_ram_add() memory instead. A backend that cannot map a file (bhyve: the kernel
 * owns guest RAM) returns -EOPNOTSUPP and the caller copies. @fd may be closed afterwards.
 */
int hv_ram_add_file(struct hv *hv, uint64_t gpa, uint64_t size, int fd, uint64_t offset,
		    unsigned flags, void **ret_host);

/*
 * Pre-warming, for a VMM that waits for its VM (a pooled `cubicle --api-socket --prewarm`):
 * registers guest-physical [@gpa, @gpa + @size) now as one memory slot over address space not
 * yet backed, so that the hypervisor's slowest set-up call (a memory slot: ~7 ms on kvm_pvm
 * hosts, whatever its size) is paid before the VM is asked for. A later hv_ram_add() or
 * hv_ram_add_file() at the same @gpa of at most @size bytes, without HV_RAM_HUGEPAGES, backs
 * the start of it with no hypervisor call; the rest stays unbacked (a vCPU touching it fails,
 * as a guest touching what its memory map does not offer deserves). Any other range that
 * overlaps it is refused (-EINVAL): a caller whose RAM does not fit destroys this VM and
 * creates another. The slot's bookkeeping costs host memory in proportion to @size (about
 * 2 KiB per MiB on kvm_pvm), so reserve what the expected guests need. Returns 0, -EINVAL,
 * -ENOSPC, or -EOPNOTSUPP when the backend cannot (bhyve, the mock).
 */
int hv_ram_reserve(struct hv *hv, uint64_t gpa, uint64_t size);

/*
 * Device memory (virtio-pmem): maps @size bytes of the caller's memory at @host (page aligned;
 * it stays the caller's and must outlive the mapping) at guest-physical @gpa as a memory slot
 * of its own, read-only to the guest when @readonly. Synchronous. Returns 0, -EINVAL for
 * misaligned ranges, -EEXIST when it overlaps another slot, -ENOSPC when no slot is left,
 * -EOPNOTSUPP for @readonly without the backend's support, or the kernel's error.
 */
int hv_mem_map(struct hv *hv, uint64_t gpa, uint64_t size, void *host, bool readonly);
/* Removes the slot hv_mem_map() put at @gpa; the guest no longer sees it. Returns 0, -ENOENT
 * when there is none (RAM from hv_ram_add() is never removed), or the kernel's error. */
int hv_mem_unmap(struct hv *hv, uint64_t gpa);

/*
 * Waits for the set-up that hv_create() and hv_ram_add() may have left running in the
 * background (a backend may overlap slow kernel calls with the rest of the VM build). Call once
 * the VM is built, before the first hv_vcpu_run(). Returns 0, or the first -errno of that work.
 */
int hv_ready(struct hv *hv);

/* Interrupts. */
/* Sets legacy interrupt line @gsi (IOAPIC pin) to @level. */
int hv_irq_line(struct hv *hv, uint32_t gsi, bool level);
/* Sends a message-signalled interrupt. */
int hv_msi(struct hv *hv, uint64_t addr, uint32_t data);

/*
 * The routed interrupt path, present when hv_caps.irqfd (otherwise every call returns
 * -EOPNOTSUPP and the caller keeps using hv_msi()). An MSI route gives an (address, data) pair
 * a GSI of its own, above the IOAPIC's HV_IOAPIC_PINS; an eventfd bound to a GSI raises it when
 * written, from any thread, without a VMM call. The backend keeps the whole routing table,
 * including the legacy lines' routes, so a route change never disturbs hv_irq_line().
 */
#define HV_IOAPIC_PINS 24

/* Reserves a GSI for an MSI route (not yet installed). Returns 0 with *@ret_gsi, -ENOSPC when
 * the routing table is full. */
int hv_msi_route_alloc(struct hv *hv, uint32_t *ret_gsi);
/* Installs or replaces the route of a reserved @gsi: raising it sends the MSI (@addr, @data).
 * Returns 0, -EINVAL for a GSI that hv_msi_route_alloc() did not return, or the kernel's error
 * (the table is then as before the call). */
int hv_msi_route(struct hv *hv, uint32_t gsi, uint64_t addr, uint32_t data);
/* Removes @gsi's route and releases it; unbind its eventfds first. Unknown GSIs are ignored. */
void hv_msi_route_free(struct hv *hv, uint32_t gsi);
/* Binds (@assign) or unbinds eventfd @fd to @gsi: each write to @fd raises the GSI once.
 * Returns 0, -EEXIST when already bound, -ENOENT when unbinding something never bound. */
int hv_irqfd(struct hv *hv, int fd, uint32_t gsi, bool assign);
/*
 * Present when hv_caps.ioeventfd. A guest write of @len bytes (1, 2, 4 or 8) at guest-physical
 * MMIO address @addr signals eventfd @fd instead of reaching hv_io_ops.mmio; an access of any
 * other length still exits to the io ops. No data match: the write's value is discarded.
 * @assign false removes the same (fd, addr, len) binding. Returns 0, -EEXIST, -ENOENT, -EINVAL.
 */
int hv_ioeventfd(struct hv *hv, int fd, uint64_t addr, unsigned len, bool assign);

/* x86 register state, our own layout (DESIGN §3): the backend converts. */
struct hv_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags;
};

struct hv_segment {
	uint64_t base;
	uint32_t limit;
	uint16_t selector;
	uint8_t type, present, dpl, db, s, l, g, avl, unusable;
};

struct hv_dtable {
	uint64_t base;
	uint16_t limit;
};

struct hv_sregs {
	struct hv_segment cs, ds, es, fs, gs, ss, tr, ldt;
	struct hv_dtable gdt, idt;
	uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
};

struct hv_msr {
	uint32_t index;
	uint64_t value;
};

struct hv_cpuid_entry {
	uint32_t function, index;
	uint32_t flags; /* HV_CPUID_SIGNIFICANT_INDEX when @index matters */
	uint32_t eax, ebx, ecx, edx;
};
#define HV_CPUID_SIGNIFICANT_INDEX 1u
#define HV_CPUID_MAX_ENTRIES	   256

/*
 * The CPUID leaves the host can offer a guest (KVM_GET_SUPPORTED_CPUID). Fills at most @max
 * entries of @ret; returns the count, or -errno. The backend asks the host once per VM.
 */
int hv_supported_cpuid(struct hv *hv, struct hv_cpuid_entry *ret, unsigned max);

/* vCPUs. @index 0 is the boot processor; the others wait for INIT/SIPI from the guest. */
int hv_vcpu_create(struct hv *hv, unsigned index, struct hv_vcpu **ret);
/* Accepts NULL; returns NULL. The vCPU must not be running. */
struct hv_vcpu *hv_vcpu_destroy(struct hv_vcpu *vcpu);

int hv_vcpu_get_regs(struct hv_vcpu *vcpu, struct hv_regs *ret);
int hv_vcpu_set_regs(struct hv_vcpu *vcpu, const struct hv_regs *regs);
int hv_vcpu_get_sregs(struct hv_vcpu *vcpu, struct hv_sregs *ret);
int hv_vcpu_set_sregs(struct hv_vcpu *vcpu, const struct hv_sregs *sregs);
int hv_vcpu_set_msrs(struct hv_vcpu *vcpu, const struct hv_msr *msrs, unsigned n);
int hv_vcpu_set_cpuid(struct hv_vcpu *vcpu, const struct hv_cpuid_entry *e, unsigned n);
/* x87 control word 0x37f, MXCSR 0x1f80: the reset values Linux expects at entry. */
int hv_vcpu_reset_fpu(struct hv_vcpu *vcpu);
/* LAPIC LINT0 = ExtINT, LINT1 = NMI, as firmware leaves them. */
int hv_vcpu_setup_lapic(struct hv_vcpu *vcpu);

/*
 * Everything a vCPU's snapshot holds (DESIGN §3, §7), in our own layout: the backend converts
 * to and from its own. Architectural formats (the XSAVE area, the LAPIC register page) are kept
 * as bytes; everything else is a named field. Get and set only while the vCPU is parked outside
 * hv_vcpu_run() (the VM paused, or not yet started).
 */
#define HV_XSAVE_MAX	    16384 /* bytes of the XSAVE area (4096 without AMX) */
#define HV_LAPIC_SIZE	    1024  /* the LAPIC register page */
#define HV_MAX_MSRS	    256
#define HV_MAX_XCRS	    16
#define HV_IRQ_BITMAP_WORDS 4 /* 256 vectors: external interrupts pending injection */

struct hv_vcpu_events {
	uint8_t exception_injected, exception_nr, exception_has_error_code, exception_pending;
	uint32_t exception_error_code;
	uint8_t exception_has_payload;
	uint64_t exception_payload;
	uint8_t interrupt_injected, interrupt_nr, interrupt_soft, interrupt_shadow;
	uint8_t nmi_injected, nmi_pending, nmi_masked;
	uint32_t sipi_vector;
	uint8_t smi_smm, smi_pending, smi_inside_nmi, smi_latched_init;
	uint8_t triple_fault_pending;
	uint32_t flags; /* backend's validity flags for the groups above */
};

struct hv_vcpu_state {
	struct hv_regs regs;
	struct hv_sregs sregs;
	uint64_t interrupt_bitmap[HV_IRQ_BITMAP_WORDS];
	/* bytes used in xsave: the host's XSAVE size (KVM: 4096 or KVM_CAP_XSAVE2), or 512 for
	 * a legacy FXSAVE image on a host without XSAVE; set_state wants the host's size */
	uint32_t xsave_size;
	uint8_t xsave[HV_XSAVE_MAX];
	uint32_t nr_xcrs;		 /* 0 on a host without XSAVE */
	struct hv_msr xcrs[HV_MAX_XCRS]; /* index = XCR number */
	/* The MSRs the backend saves (KVM: those of KVM_GET_MSR_INDEX_LIST this vCPU has);
	 * set_state refuses any other. */
	uint32_t nr_msrs;
	struct hv_msr msrs[HV_MAX_MSRS];
	uint8_t lapic[HV_LAPIC_SIZE];
	uint32_t mp_state; /* HV_MP_STATE_* */
	struct hv_vcpu_events events;
	uint64_t db[4], dr6, dr7;
};

enum hv_mp_state {
	HV_MP_STATE_RUNNABLE = 0,
	HV_MP_STATE_UNINITIALIZED = 1,
	HV_MP_STATE_INIT_RECEIVED = 2,
	HV_MP_STATE_HALTED = 3,
	HV_MP_STATE_SIPI_RECEIVED = 4,
};

/* Fills @ret (about 24 KiB: keep it off small stacks). Returns 0 or -errno. */
int hv_vcpu_get_state(struct hv_vcpu *vcpu, struct hv_vcpu_state *ret);
/*
 * Loads @st into a vCPU created by hv_vcpu_create() (after its CPUID is set). Returns 0,
 * -EINVAL for a state the backend refuses (an MSR it does not know, a bad XSAVE size), or
 * -errno.
 */
int hv_vcpu_set_state(struct hv_vcpu *vcpu, const struct hv_vcpu_state *st);

/* The VM-wide state with hv_caps.irqchip: 8259 PICs, IOAPIC, PIT, and the guest clock. */
struct hv_pic_state {
	uint8_t last_irr, irr, imr, isr, priority_add, irq_base, read_reg_select, poll,
		special_mask, init_state, auto_eoi, rotate_on_auto_eoi, special_fully_nested_mode,
		init4, elcr, elcr_mask;
};

struct hv_ioapic_state {
	uint64_t base_address;
	uint32_t ioregsel, id, irr;
	uint64_t redirtbl[HV_IOAPIC_PINS];
};

struct hv_pit_channel {
	uint32_t count;
	uint16_t latched_count;
	uint8_t count_latched, status_latched, status, read_state, write_state, write_latch,
		rw_mode, mode, bcd, gate;
	uint64_t count_load_time; /* backend's clock: rebased by the backend on set */
};

struct hv_vm_state {
	struct hv_pic_state pic[2]; /* master, slave */
	struct hv_ioapic_state ioapic;
	struct hv_pit_channel pit[3];
	uint32_t pit_flags;
	uint64_t clock; /* the guest's clock (kvmclock), ns */
};

/* Fills @ret. Returns 0, -EOPNOTSUPP without an in-kernel irqchip, or -errno. */
int hv_vm_get_state(struct hv *hv, struct hv_vm_state *ret);
/* Loads @st, before the first hv_vcpu_set_state(); waits for hv_ready() first. Returns 0,
 * -EINVAL for a state the backend refuses (a value no hypervisor writes), or -errno. */
int hv_vm_set_state(struct hv *hv, const struct hv_vm_state *st);

enum hv_exit_reason {
	HV_EXIT_KICKED,	  /* hv_vcpu_kick() or a signal: check for requests, run again */
	HV_EXIT_HALT,	  /* HLT without an in-kernel LAPIC to wait in */
	HV_EXIT_SHUTDOWN, /* triple fault: treat as reset (what hardware does) */
	HV_EXIT_RESET,	  /* the guest asked for a reset through the hypervisor */
	HV_EXIT_POWEROFF, /* the guest asked for power off through the hypervisor */
	HV_EXIT_INTERNAL, /* the hypervisor could not run the guest: see hv_exit.internal */
	HV_EXIT_FAIL_ENTRY,
};

struct hv_exit {
	enum hv_exit_reason reason;
	/* HV_EXIT_INTERNAL / HV_EXIT_FAIL_ENTRY: what went wrong, for the report */
	uint32_t code;	  /* backend's sub-error (KVM_INTERNAL_ERROR_*, entry failure) */
	uint8_t insn[16]; /* instruction bytes at RIP when the backend has them */
	uint8_t insn_len;
	char description[64];
};

/*
 * Runs the vCPU until an exit that the VMM must handle; I/O exits are dispatched through the
 * io ops and never returned. Returns 0 with @ret filled, or -errno when the backend failed.
 */
int hv_vcpu_run(struct hv_vcpu *vcpu, struct hv_exit *ret);

/*
 * Makes the vCPU leave hv_vcpu_run() soon with HV_EXIT_KICKED, or return it at once from the
 * next call if it is not inside it. Async-signal-safe; callable from any thread. The caller
 * checks its own request flags after the kick.
 */
void hv_vcpu_kick(struct hv_vcpu *vcpu);
/* Clears a pending kick, before re-entering the guest after handling requests. */
void hv_vcpu_clear_kick(struct hv_vcpu *vcpu);

/* Prepares the calling thread to run a vCPU (signal set-up for kicks). Call once per thread. */
int hv_vcpu_thread_init(void);

#endif
