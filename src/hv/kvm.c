/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KVM backend of hv.h (DESIGN.md §3). The only file that includes <linux/kvm.h>.
 *
 * Kicks: hv_vcpu_kick() sets kvm_run.immediate_exit and sends KVM_KICK_SIGNAL (SIGUSR2) to the
 * thread inside hv_vcpu_run(). The signal only exists to pull that thread out of KVM_RUN; its
 * handler does nothing. immediate_exit closes the race of a signal that lands just before the
 * KVM_RUN ioctl: KVM checks it on entry and returns -EINTR. The handler is installed with
 * SA_RESTART: KVM_RUN returns a plain -EINTR, which the kernel never restarts, while other
 * system calls made from io callbacks on the vCPU thread (a serial write to a tty) get
 * restarted instead of failing with EINTR. A seccomp filter for vCPU threads must allow
 * rt_sigreturn.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/kvm_para.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hv/hv.h"
#include "hv/routes.h"
#include "util/log.h"
#include "util/util.h"

#define KVM_KICK_SIGNAL SIGUSR2

/* Guest addresses of the pages KVM needs on Intel for real mode and the TSS; just below the
 * 4 GiB boundary, inside the 32-bit PCI hole, where nothing else is placed. */
#define KVM_TSS_ADDR	      0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

/* RAM slots per VM: a few RAM ranges (below/above the PCI hole) plus hotplug. */
#define KVM_MAX_RAM_SLOTS 32
/* The kernel refuses KVM_SET_MSRS batches of 256 entries or more (MAX_IO_MSRS). */
#define KVM_MAX_SET_MSRS 255
/* Growth bound of the KVM_GET_SUPPORTED_CPUID buffer. */
#define KVM_MAX_SUPPORTED_CPUID 4096

#define PAGE_SIZE_4K   4096ULL
#define HUGE_PAGE_SIZE (2 * MiB)

#define APIC_LVT_LINT0	    0x350
#define APIC_LVT_LINT1	    0x360
#define APIC_DM_MASK	    (7u << 8)
#define APIC_DM_NMI	    (4u << 8)
#define APIC_DM_EXTINT	    (7u << 8)
#define FPU_CONTROL_DEFAULT 0x37f
#define MXCSR_DEFAULT	    0x1f80

struct kvm_ram_slot {
	uint64_t gpa;
	uint64_t size;
	void *host;
	int memfd; /* -1 unless HV_RAM_SHARED; kept for sharing with vhost-user backends */
};

/*
 * Set-up ioctls that mostly wait in the kernel (KVM_CREATE_PIT2 starts a kthread,
 * KVM_SET_USER_MEMORY_REGION waits for an SRCU grace period: milliseconds on some hosts) run
 * on short-lived threads while the VMM builds the rest of the VM; hv_ready() joins them.
 */
struct kvm_deferred {
	pthread_t thread;
	int fd;
	unsigned long req;
	union {
		struct kvm_pit_config pit;
		struct kvm_userspace_memory_region region;
	} arg;
	int result;
	const char *what;
};
#define KVM_MAX_DEFERRED (KVM_MAX_RAM_SLOTS + 1)

struct hv;
static int kvm_defer(struct hv *hv, unsigned long req, const void *arg, size_t len,
		     const char *what);

struct hv {
	int kvm_fd;
	int vm_fd;
	size_t run_size;
	struct hv_caps caps;
	struct hv_io_ops ops;
	void *opaque;
	bool pvm; /* kvm_pvm: software virtualisation with quirks of its own (kvm_pvm_quirks) */

	pthread_mutex_t slots_lock;
	struct kvm_ram_slot slots[KVM_MAX_RAM_SLOTS];
	unsigned n_slots;

	struct kvm_deferred deferred[KVM_MAX_DEFERRED]; /* under slots_lock */
	unsigned n_deferred;

	pthread_mutex_t routes_lock; /* guards routes and KVM_SET_GSI_ROUTING */
	struct hv_route_table routes;
};

struct hv_vcpu {
	struct hv *hv;
	unsigned index;
	int fd;
	struct kvm_run *run;
	/* The thread inside hv_vcpu_run(), valid while @in_run is set (kick target). */
	pthread_t thread;
	atomic_bool in_run;
};

static int kvm_ioctl_retry(int fd, unsigned long req, unsigned long arg)
{
	int r;

	do {
		r = ioctl(fd, req, arg);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

static int kvm_check_extension(struct hv *hv, long cap)
{
	int r = ioctl(hv->kvm_fd, KVM_CHECK_EXTENSION, cap);
	return r < 0 ? 0 : r;
}

struct hv *hv_destroy(struct hv *hv)
{
	if (!hv)
		return NULL;
	hv_ready(hv);
	if (hv->vm_fd >= 0)
		close(hv->vm_fd);
	for (unsigned i = 0; i < hv->n_slots; i++) {
		munmap(hv->slots[i].host, hv->slots[i].size);
		if (hv->slots[i].memfd >= 0)
			close(hv->slots[i].memfd);
	}
	if (hv->kvm_fd >= 0)
		close(hv->kvm_fd);
	pthread_mutex_destroy(&hv->slots_lock);
	pthread_mutex_destroy(&hv->routes_lock);
	free(hv);
	return NULL;
}

static int kvm_open(struct hv *hv)
{
	int r;

	hv->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (hv->kvm_fd < 0) {
		r = errno;
		log_error("cannot open /dev/kvm: %s (is KVM available and are you allowed to use "
			  "it?)",
			  strerror(r));
		return (r == ENOENT || r == EACCES || r == EPERM || r == ENXIO || r == ENODEV)
			       ? -ENODEV
			       : -r;
	}
	r = ioctl(hv->kvm_fd, KVM_GET_API_VERSION, 0);
	if (r != KVM_API_VERSION) {
		log_error("/dev/kvm: unsupported KVM API version %d (want %d)", r, KVM_API_VERSION);
		return -ENODEV;
	}
	r = ioctl(hv->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (r < (int)sizeof(struct kvm_run)) {
		log_debug("kvm: KVM_GET_VCPU_MMAP_SIZE: %d", r);
		return r < 0 ? -errno : -EINVAL;
	}
	hv->run_size = (size_t)r;
	return 0;
}

/* The in-kernel platform: LAPICs, IOAPIC, PICs and the PIT. */
static int kvm_create_platform(struct hv *hv)
{
	uint64_t ident = KVM_IDENTITY_MAP_ADDR;
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	int r;

	if (!kvm_check_extension(hv, KVM_CAP_IRQCHIP) ||
	    !kvm_check_extension(hv, KVM_CAP_USER_MEMORY)) {
		log_error("kvm: the in-kernel irqchip is not available");
		return -ENODEV;
	}
	/* Intel needs these two pages for real mode and vm86 emulation; AMD ignores them. */
	r = kvm_ioctl_retry(hv->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR);
	if (r < 0) {
		log_debug("kvm: KVM_SET_TSS_ADDR: %s", strerror(-r));
		return r;
	}
	if (kvm_check_extension(hv, KVM_CAP_SET_IDENTITY_MAP_ADDR)) {
		r = kvm_ioctl_retry(hv->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, (unsigned long)&ident);
		if (r < 0) {
			log_debug("kvm: KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(-r));
			return r;
		}
	}
	/* Also installs the default GSI routing: GSIs 0-15 to the PICs and IOAPIC, 16-23 to the
	 * IOAPIC. hv_msi(), KVM_SIGNAL_MSI, needs no route; the first hv_msi_route() replaces
	 * the table with the same legacy routes plus the MSI ones (routes.c). */
	r = kvm_ioctl_retry(hv->vm_fd, KVM_CREATE_IRQCHIP, 0);
	if (r < 0) {
		log_debug("kvm: KVM_CREATE_IRQCHIP: %s", strerror(-r));
		return r;
	}
	if (kvm_check_extension(hv, KVM_CAP_PIT2))
		return kvm_defer(hv, KVM_CREATE_PIT2, &pit, sizeof(pit), "KVM_CREATE_PIT2");
	return 0;
}

int hv_create(struct hv **ret)
{
	struct hv *hv;
	int r;

	hv = calloc(1, sizeof(*hv));
	if (!hv)
		return -ENOMEM;
	hv->kvm_fd = -1;
	hv->vm_fd = -1;
	pthread_mutex_init(&hv->slots_lock, NULL);
	pthread_mutex_init(&hv->routes_lock, NULL);

	r = kvm_open(hv);
	if (r < 0)
		goto fail;
	hv->pvm = access("/sys/module/kvm_pvm", F_OK) == 0;
	r = kvm_ioctl_retry(hv->kvm_fd, KVM_CREATE_VM, 0);
	if (r < 0) {
		log_debug("kvm: KVM_CREATE_VM: %s", strerror(-r));
		goto fail;
	}
	hv->vm_fd = r;
	r = kvm_create_platform(hv);
	if (r < 0)
		goto fail;

	hv->caps.irqchip = true;
	/* MSIs through irqfd need a route per vector: both capabilities, and room for the
	 * table hv_routes_build() writes. */
	hv->caps.irqfd = kvm_check_extension(hv, KVM_CAP_IRQFD) > 0 &&
			 kvm_check_extension(hv, KVM_CAP_IRQ_ROUTING) >= HV_ROUTES_MAX;
	hv->caps.ioeventfd = kvm_check_extension(hv, KVM_CAP_IOEVENTFD) > 0;
	/* KVM_GET_DIRTY_LOG is part of the base API (version 12); it has no capability of its
	 * own, but it needs the MMU notifier that KVM_CAP_SYNC_MMU advertises. */
	hv->caps.dirty_log = kvm_check_extension(hv, KVM_CAP_SYNC_MMU) > 0;
	r = kvm_check_extension(hv, KVM_CAP_MAX_VCPUS);
	if (r <= 0)
		r = kvm_check_extension(hv, KVM_CAP_NR_VCPUS);
	hv->caps.max_vcpus = r > 0 ? (uint32_t)r : 4; /* api.rst: assume 4 if neither exists */

	*ret = hv;
	return 0;
fail:
	hv_destroy(hv);
	return r;
}

void hv_get_caps(struct hv *hv, struct hv_caps *ret)
{
	*ret = hv->caps;
}

void hv_set_io_ops(struct hv *hv, const struct hv_io_ops *ops, void *opaque)
{
	hv->ops = *ops;
	hv->opaque = opaque;
}

/* Maps the memory for one slot; fills @slot->host and @slot->memfd. */
static int kvm_ram_map(struct kvm_ram_slot *slot, unsigned flags)
{
	/* Ordinary RAM is overcommitted (thousands of mostly idle guests); huge pages are
	 * reserved at mmap time, so a pool too small fails here instead of with SIGBUS later. */
	int mflags = (flags & HV_RAM_HUGEPAGES) ? 0 : MAP_NORESERVE;
	_cleanup_close_ int fd = -1;
	void *p;

	if (flags & HV_RAM_PREFAULT)
		mflags |= MAP_POPULATE;
	if (flags & HV_RAM_SHARED) {
		unsigned mfd_flags = MFD_CLOEXEC;
		if (flags & HV_RAM_HUGEPAGES)
			mfd_flags |= MFD_HUGETLB;
		fd = memfd_create("cubicle-ram", mfd_flags);
		if (fd < 0)
			return -errno;
		if (ftruncate(fd, (off_t)slot->size) < 0)
			return -errno;
		mflags |= MAP_SHARED;
	} else {
		mflags |= MAP_PRIVATE | MAP_ANONYMOUS;
		if (flags & HV_RAM_HUGEPAGES)
			mflags |= MAP_HUGETLB;
	}
	p = mmap(NULL, slot->size, PROT_READ | PROT_WRITE, mflags, fd, 0);
	if (p == MAP_FAILED)
		return -errno;

	/* Guest RAM must not end up in a core dump of the VMM. */
	if (madvise(p, slot->size, MADV_DONTDUMP) < 0)
		log_debug("kvm: madvise(MADV_DONTDUMP): %s", strerror(errno));
	if ((flags & HV_RAM_THP) && madvise(p, slot->size, MADV_HUGEPAGE) < 0)
		log_debug("kvm: madvise(MADV_HUGEPAGE): %s", strerror(errno));

	slot->host = p;
	slot->memfd = fd_take(&fd);
	return 0;
}

static bool kvm_ram_overlaps(struct hv *hv, uint64_t gpa, uint64_t size)
{
	for (unsigned i = 0; i < hv->n_slots; i++) {
		const struct kvm_ram_slot *s = &hv->slots[i];
		if (gpa < s->gpa + s->size && s->gpa < gpa + size)
			return true;
	}
	return false;
}

int hv_ram_add(struct hv *hv, uint64_t gpa, uint64_t size, unsigned flags, void **ret_host)
{
	uint64_t align = (flags & HV_RAM_HUGEPAGES) ? HUGE_PAGE_SIZE : PAGE_SIZE_4K;
	struct kvm_userspace_memory_region region;
	struct kvm_ram_slot slot = { .gpa = gpa, .size = size, .memfd = -1 };
	int r;

	if (size == 0 || !IS_ALIGNED(gpa, align) || !IS_ALIGNED(size, align) ||
	    range_overflows(gpa, size) || size > SIZE_MAX)
		return -EINVAL;

	pthread_mutex_lock(&hv->slots_lock);
	if (kvm_ram_overlaps(hv, gpa, size)) {
		r = -EINVAL;
		goto out;
	}
	if (hv->n_slots == KVM_MAX_RAM_SLOTS) {
		r = -ENOSPC;
		goto out;
	}
	r = kvm_ram_map(&slot, flags);
	if (r < 0)
		goto out;

	region = (struct kvm_userspace_memory_region){
		.slot = hv->n_slots,
		.flags = 0,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)slot.host,
	};
	/* A failure shows in hv_ready(); the mapping is released with the VM either way. */
	hv->slots[hv->n_slots++] = slot;
	pthread_mutex_unlock(&hv->slots_lock);
	r = kvm_defer(hv, KVM_SET_USER_MEMORY_REGION, &region, sizeof(region),
		      "KVM_SET_USER_MEMORY_REGION");
	if (r < 0)
		return r;
	*ret_host = slot.host;
	return 0;
	*ret_host = slot.host;
	r = 0;
out:
	pthread_mutex_unlock(&hv->slots_lock);
	return r;
}

static void *kvm_deferred_run(void *arg)
{
	struct kvm_deferred *d = arg;
	d->result = kvm_ioctl_retry(d->fd, d->req, (unsigned long)&d->arg);
	return NULL;
}

/* Runs a set-up ioctl on its own thread, or here when no thread can be had. */
static int kvm_defer(struct hv *hv, unsigned long req, const void *arg, size_t len,
		     const char *what)
{
	pthread_attr_t attr;
	int r = -EAGAIN;

	assert(len <= sizeof(((struct kvm_deferred *)0)->arg));
	pthread_mutex_lock(&hv->slots_lock);
	if (hv->n_deferred < KVM_MAX_DEFERRED) {
		struct kvm_deferred *d = &hv->deferred[hv->n_deferred];
		*d = (struct kvm_deferred){ .fd = hv->vm_fd, .req = req, .what = what };
		memcpy(&d->arg, arg, len);
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, 64 * 1024);
		r = -pthread_create(&d->thread, &attr, kvm_deferred_run, d);
		pthread_attr_destroy(&attr);
		if (r == 0)
			hv->n_deferred++;
	}
	pthread_mutex_unlock(&hv->slots_lock);
	if (r == 0)
		return 0;
	r = kvm_ioctl_retry(hv->vm_fd, req, (unsigned long)arg);
	if (r < 0)
		log_debug("kvm: %s: %s", what, strerror(-r));
	return r < 0 ? r : 0;
}

int hv_ready(struct hv *hv)
{
	int first = 0;

	pthread_mutex_lock(&hv->slots_lock);
	for (unsigned i = 0; i < hv->n_deferred; i++) {
		struct kvm_deferred *d = &hv->deferred[i];
		pthread_join(d->thread, NULL);
		if (d->result < 0) {
			log_debug("kvm: %s: %s", d->what, strerror(-d->result));
			if (!first)
				first = d->result;
		}
	}
	hv->n_deferred = 0;
	pthread_mutex_unlock(&hv->slots_lock);
	return first;
}

int hv_irq_line(struct hv *hv, uint32_t gsi, bool level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = level ? 1 : 0 };
	int r = kvm_ioctl_retry(hv->vm_fd, KVM_IRQ_LINE, (unsigned long)&irq);
	return r < 0 ? r : 0;
}

int hv_msi(struct hv *hv, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr,
		.address_hi = (uint32_t)(addr >> 32),
		.data = data,
	};
	/* Returns >0 when delivered, 0 when the guest blocked it: both are fine for a VMM. */
	int r = kvm_ioctl_retry(hv->vm_fd, KVM_SIGNAL_MSI, (unsigned long)&msi);
	return r < 0 ? r : 0;
}

static uint32_t kvm_irqchip_of(enum hv_route_kind kind)
{
	if (kind == HV_ROUTE_PIC_MASTER)
		return KVM_IRQCHIP_PIC_MASTER;
	if (kind == HV_ROUTE_PIC_SLAVE)
		return KVM_IRQCHIP_PIC_SLAVE;
	return KVM_IRQCHIP_IOAPIC;
}

/* Replaces KVM's routing table with hv->routes. routes_lock held. */
static int kvm_routes_commit(struct hv *hv)
{
	_cleanup_free_ struct hv_route *routes = calloc(HV_ROUTES_MAX, sizeof(*routes));
	_cleanup_free_ struct kvm_irq_routing *k = NULL;
	unsigned n;
	int r;

	k = calloc(1, sizeof(*k) + HV_ROUTES_MAX * sizeof(k->entries[0]));
	if (!routes || !k)
		return -ENOMEM;
	n = hv_routes_build(&hv->routes, routes);
	for (unsigned i = 0; i < n; i++) {
		const struct hv_route *rt = &routes[i];
		struct kvm_irq_routing_entry *e = &k->entries[i];

		e->gsi = rt->gsi;
		switch (rt->kind) {
		case HV_ROUTE_MSI:
			e->type = KVM_IRQ_ROUTING_MSI;
			e->u.msi.address_lo = (uint32_t)rt->addr;
			e->u.msi.address_hi = (uint32_t)(rt->addr >> 32);
			e->u.msi.data = rt->data;
			break;
		case HV_ROUTE_IOAPIC:
		case HV_ROUTE_PIC_MASTER:
		case HV_ROUTE_PIC_SLAVE:
			e->type = KVM_IRQ_ROUTING_IRQCHIP;
			e->u.irqchip.irqchip = kvm_irqchip_of(rt->kind);
			e->u.irqchip.pin = rt->pin;
			break;
		}
	}
	k->nr = n;
	r = kvm_ioctl_retry(hv->vm_fd, KVM_SET_GSI_ROUTING, (unsigned long)k);
	if (r < 0)
		log_debug("kvm: KVM_SET_GSI_ROUTING (%u entries): %s", n, strerror(-r));
	return r < 0 ? r : 0;
}

int hv_msi_route_alloc(struct hv *hv, uint32_t *ret_gsi)
{
	int r;

	if (!hv->caps.irqfd)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&hv->routes_lock);
	r = hv_routes_alloc(&hv->routes, ret_gsi);
	pthread_mutex_unlock(&hv->routes_lock);
	return r;
}

int hv_msi_route(struct hv *hv, uint32_t gsi, uint64_t addr, uint32_t data)
{
	struct hv_msi_slot *s, old;
	int r = -EINVAL;

	if (!hv->caps.irqfd)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&hv->routes_lock);
	s = hv_routes_slot(&hv->routes, gsi);
	if (s) {
		old = *s;
		*s = (struct hv_msi_slot){
			.used = true, .installed = true, .addr = addr, .data = data
		};
		r = kvm_routes_commit(hv);
		if (r < 0)
			*s = old;
	}
	pthread_mutex_unlock(&hv->routes_lock);
	return r;
}

void hv_msi_route_free(struct hv *hv, uint32_t gsi)
{
	struct hv_msi_slot *s;

	pthread_mutex_lock(&hv->routes_lock);
	s = hv_routes_slot(&hv->routes, gsi);
	if (s) {
		bool installed = s->installed;
		*s = (struct hv_msi_slot){ 0 };
		/* A stale route left in KVM is harmless (nothing is bound to the GSI any more) and
		 * is dropped by the next commit. */
		if (installed)
			(void)kvm_routes_commit(hv);
	}
	pthread_mutex_unlock(&hv->routes_lock);
}

int hv_irqfd(struct hv *hv, int fd, uint32_t gsi, bool assign)
{
	struct kvm_irqfd k = {
		.fd = (uint32_t)fd,
		.gsi = gsi,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};
	int r;

	if (!hv->caps.irqfd)
		return -EOPNOTSUPP;
	r = kvm_ioctl_retry(hv->vm_fd, KVM_IRQFD, (unsigned long)&k);
	if (r < 0)
		log_debug("kvm: KVM_IRQFD fd %d gsi %u %s: %s", fd, gsi,
			  assign ? "assign" : "deassign", strerror(-r));
	return r < 0 ? r : 0;
}

int hv_ioeventfd(struct hv *hv, int fd, uint64_t addr, unsigned len, bool assign)
{
	struct kvm_ioeventfd k = {
		.addr = addr,
		.len = len,
		.fd = fd,
		.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};
	int r;

	if (!hv->caps.ioeventfd)
		return -EOPNOTSUPP;
	if (len != 1 && len != 2 && len != 4 && len != 8)
		return -EINVAL;
	r = kvm_ioctl_retry(hv->vm_fd, KVM_IOEVENTFD, (unsigned long)&k);
	if (r < 0)
		log_debug("kvm: KVM_IOEVENTFD fd %d at %#llx/%u %s: %s", fd,
			  (unsigned long long)addr, len, assign ? "assign" : "deassign",
			  strerror(-r));
	return r < 0 ? r : 0;
}

static struct kvm_cpuid2 *kvm_cpuid2_alloc(unsigned n)
{
	struct kvm_cpuid2 *c;

	c = calloc(1, sizeof(*c) + (size_t)n * sizeof(c->entries[0]));
	if (c)
		c->nent = n;
	return c;
}

/*
 * kvm_pvm (software virtualisation) lists features it cannot deliver. PV_SEND_IPI: a guest
 * that uses the hypercall to send IPIs stalls bringing up its secondary CPUs ("Booting SMP
 * configuration"), seen with Linux 6.1; without it Linux falls back to the LAPIC and SMP boots.
 */
static void kvm_pvm_quirks(struct kvm_cpuid_entry2 *e)
{
	if (e->function == KVM_CPUID_FEATURES)
		e->eax &= ~(1u << KVM_FEATURE_PV_SEND_IPI);
}

int hv_supported_cpuid(struct hv *hv, struct hv_cpuid_entry *ret, unsigned max)
{
	_cleanup_free_ struct kvm_cpuid2 *c = NULL;
	unsigned n = HV_CPUID_MAX_ENTRIES;
	int r;

	for (;;) {
		free(c);
		c = kvm_cpuid2_alloc(n);
		if (!c)
			return -ENOMEM;
		r = kvm_ioctl_retry(hv->kvm_fd, KVM_GET_SUPPORTED_CPUID, (unsigned long)c);
		if (r == 0)
			break;
		if (r != -E2BIG || n >= KVM_MAX_SUPPORTED_CPUID)
			return r;
		n *= 2;
	}
	if (c->nent > max)
		log_debug("kvm: %u supported CPUID entries, keeping %u", c->nent, max);
	n = MIN(c->nent, max);
	for (unsigned i = 0; i < n; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (hv->pvm)
			kvm_pvm_quirks(e);
		ret[i] = (struct hv_cpuid_entry){
			.function = e->function,
			.index = e->index,
			.flags = (e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX)
					 ? HV_CPUID_SIGNIFICANT_INDEX
					 : 0,
			.eax = e->eax,
			.ebx = e->ebx,
			.ecx = e->ecx,
			.edx = e->edx,
		};
	}
	return (int)n;
}

/* vCPUs */

int hv_vcpu_create(struct hv *hv, unsigned index, struct hv_vcpu **ret)
{
	struct hv_vcpu *vcpu;
	void *run;
	int r;

	if (index >= hv->caps.max_vcpus)
		return -EINVAL;
	vcpu = calloc(1, sizeof(*vcpu));
	if (!vcpu)
		return -ENOMEM;
	vcpu->hv = hv;
	vcpu->index = index;
	atomic_init(&vcpu->in_run, false);

	/* The vCPU fd comes with O_CLOEXEC from the kernel. */
	r = kvm_ioctl_retry(hv->vm_fd, KVM_CREATE_VCPU, index);
	if (r < 0) {
		log_debug("kvm: KVM_CREATE_VCPU %u: %s", index, strerror(-r));
		free(vcpu);
		return r;
	}
	vcpu->fd = r;
	run = mmap(NULL, hv->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (run == MAP_FAILED) {
		r = -errno;
		close(vcpu->fd);
		free(vcpu);
		return r;
	}
	vcpu->run = run;
	*ret = vcpu;
	return 0;
}

struct hv_vcpu *hv_vcpu_destroy(struct hv_vcpu *vcpu)
{
	if (!vcpu)
		return NULL;
	munmap(vcpu->run, vcpu->hv->run_size);
	close(vcpu->fd);
	free(vcpu);
	return NULL;
}

int hv_vcpu_get_regs(struct hv_vcpu *vcpu, struct hv_regs *ret)
{
	struct kvm_regs k;
	int r;

	r = kvm_ioctl_retry(vcpu->fd, KVM_GET_REGS, (unsigned long)&k);
	if (r < 0)
		return r;
	/* clang-format off */
	*ret = (struct hv_regs){
		.rax = k.rax, .rbx = k.rbx, .rcx = k.rcx, .rdx = k.rdx,
		.rsi = k.rsi, .rdi = k.rdi, .rsp = k.rsp, .rbp = k.rbp,
		.r8 = k.r8, .r9 = k.r9, .r10 = k.r10, .r11 = k.r11,
		.r12 = k.r12, .r13 = k.r13, .r14 = k.r14, .r15 = k.r15,
		.rip = k.rip, .rflags = k.rflags,
	};
	/* clang-format on */
	return 0;
}

int hv_vcpu_set_regs(struct hv_vcpu *vcpu, const struct hv_regs *regs)
{
	/* clang-format off */
	struct kvm_regs k = {
		.rax = regs->rax, .rbx = regs->rbx, .rcx = regs->rcx, .rdx = regs->rdx,
		.rsi = regs->rsi, .rdi = regs->rdi, .rsp = regs->rsp, .rbp = regs->rbp,
		.r8 = regs->r8, .r9 = regs->r9, .r10 = regs->r10, .r11 = regs->r11,
		.r12 = regs->r12, .r13 = regs->r13, .r14 = regs->r14, .r15 = regs->r15,
		.rip = regs->rip, .rflags = regs->rflags,
	};
	/* clang-format on */
	int r = kvm_ioctl_retry(vcpu->fd, KVM_SET_REGS, (unsigned long)&k);
	return r < 0 ? r : 0;
}

static void seg_from_kvm(struct hv_segment *s, const struct kvm_segment *k)
{
	*s = (struct hv_segment){
		.base = k->base,
		.limit = k->limit,
		.selector = k->selector,
		.type = k->type,
		.present = k->present,
		.dpl = k->dpl,
		.db = k->db,
		.s = k->s,
		.l = k->l,
		.g = k->g,
		.avl = k->avl,
		.unusable = k->unusable,
	};
}

static void seg_to_kvm(struct kvm_segment *k, const struct hv_segment *s)
{
	*k = (struct kvm_segment){
		.base = s->base,
		.limit = s->limit,
		.selector = s->selector,
		.type = s->type,
		.present = s->present,
		.dpl = s->dpl,
		.db = s->db,
		.s = s->s,
		.l = s->l,
		.g = s->g,
		.avl = s->avl,
		.unusable = s->unusable,
	};
}

int hv_vcpu_get_sregs(struct hv_vcpu *vcpu, struct hv_sregs *ret)
{
	struct kvm_sregs k;
	int r;

	r = kvm_ioctl_retry(vcpu->fd, KVM_GET_SREGS, (unsigned long)&k);
	if (r < 0)
		return r;
	seg_from_kvm(&ret->cs, &k.cs);
	seg_from_kvm(&ret->ds, &k.ds);
	seg_from_kvm(&ret->es, &k.es);
	seg_from_kvm(&ret->fs, &k.fs);
	seg_from_kvm(&ret->gs, &k.gs);
	seg_from_kvm(&ret->ss, &k.ss);
	seg_from_kvm(&ret->tr, &k.tr);
	seg_from_kvm(&ret->ldt, &k.ldt);
	ret->gdt = (struct hv_dtable){ .base = k.gdt.base, .limit = k.gdt.limit };
	ret->idt = (struct hv_dtable){ .base = k.idt.base, .limit = k.idt.limit };
	ret->cr0 = k.cr0;
	ret->cr2 = k.cr2;
	ret->cr3 = k.cr3;
	ret->cr4 = k.cr4;
	ret->cr8 = k.cr8;
	ret->efer = k.efer;
	ret->apic_base = k.apic_base;
	return 0;
}

int hv_vcpu_set_sregs(struct hv_vcpu *vcpu, const struct hv_sregs *sregs)
{
	struct kvm_sregs k;
	int r;

	/* Read first so that the pending-interrupt bitmap, which hv_sregs does not carry, is
	 * written back unchanged. */
	r = kvm_ioctl_retry(vcpu->fd, KVM_GET_SREGS, (unsigned long)&k);
	if (r < 0)
		return r;
	seg_to_kvm(&k.cs, &sregs->cs);
	seg_to_kvm(&k.ds, &sregs->ds);
	seg_to_kvm(&k.es, &sregs->es);
	seg_to_kvm(&k.fs, &sregs->fs);
	seg_to_kvm(&k.gs, &sregs->gs);
	seg_to_kvm(&k.ss, &sregs->ss);
	seg_to_kvm(&k.tr, &sregs->tr);
	seg_to_kvm(&k.ldt, &sregs->ldt);
	k.gdt = (struct kvm_dtable){ .base = sregs->gdt.base, .limit = sregs->gdt.limit };
	k.idt = (struct kvm_dtable){ .base = sregs->idt.base, .limit = sregs->idt.limit };
	k.cr0 = sregs->cr0;
	k.cr2 = sregs->cr2;
	k.cr3 = sregs->cr3;
	k.cr4 = sregs->cr4;
	k.cr8 = sregs->cr8;
	k.efer = sregs->efer;
	k.apic_base = sregs->apic_base;
	r = kvm_ioctl_retry(vcpu->fd, KVM_SET_SREGS, (unsigned long)&k);
	return r < 0 ? r : 0;
}

int hv_vcpu_set_msrs(struct hv_vcpu *vcpu, const struct hv_msr *msrs, unsigned n)
{
	_cleanup_free_ struct kvm_msrs *k = NULL;
	int r;

	if (n == 0)
		return 0;
	if (n > KVM_MAX_SET_MSRS)
		return -E2BIG;
	k = calloc(1, sizeof(*k) + n * sizeof(k->entries[0]));
	if (!k)
		return -ENOMEM;
	k->nmsrs = n;
	for (unsigned i = 0; i < n; i++) {
		k->entries[i].index = msrs[i].index;
		k->entries[i].data = msrs[i].value;
	}
	r = kvm_ioctl_retry(vcpu->fd, KVM_SET_MSRS, (unsigned long)k);
	if (r < 0)
		return r;
	/* KVM stops at the first MSR it refuses and returns how many it set. */
	if ((unsigned)r != n) {
		log_debug("kvm: vcpu %u: KVM_SET_MSRS refused MSR 0x%x (entry %d of %u)",
			  vcpu->index, msrs[r].index, r, n);
		return -EINVAL;
	}
	return 0;
}

int hv_vcpu_set_cpuid(struct hv_vcpu *vcpu, const struct hv_cpuid_entry *e, unsigned n)
{
	_cleanup_free_ struct kvm_cpuid2 *c = NULL;
	int r;

	if (n > HV_CPUID_MAX_ENTRIES)
		return -E2BIG;
	c = kvm_cpuid2_alloc(n);
	if (!c)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		c->entries[i] = (struct kvm_cpuid_entry2){
			.function = e[i].function,
			.index = e[i].index,
			.flags = (e[i].flags & HV_CPUID_SIGNIFICANT_INDEX)
					 ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX
					 : 0,
			.eax = e[i].eax,
			.ebx = e[i].ebx,
			.ecx = e[i].ecx,
			.edx = e[i].edx,
		};
	}
	r = kvm_ioctl_retry(vcpu->fd, KVM_SET_CPUID2, (unsigned long)c);
	return r < 0 ? r : 0;
}

int hv_vcpu_reset_fpu(struct hv_vcpu *vcpu)
{
	struct kvm_fpu fpu = { .fcw = FPU_CONTROL_DEFAULT, .mxcsr = MXCSR_DEFAULT };
	int r = kvm_ioctl_retry(vcpu->fd, KVM_SET_FPU, (unsigned long)&fpu);
	return r < 0 ? r : 0;
}

static void lapic_set_delivery_mode(struct kvm_lapic_state *lapic, unsigned reg, uint32_t mode)
{
	uint32_t v;

	memcpy(&v, &lapic->regs[reg], sizeof(v));
	v = (v & ~APIC_DM_MASK) | mode;
	memcpy(&lapic->regs[reg], &v, sizeof(v));
}

int hv_vcpu_setup_lapic(struct hv_vcpu *vcpu)
{
	struct kvm_lapic_state lapic;
	int r;

	r = kvm_ioctl_retry(vcpu->fd, KVM_GET_LAPIC, (unsigned long)&lapic);
	if (r < 0)
		return r;
	lapic_set_delivery_mode(&lapic, APIC_LVT_LINT0, APIC_DM_EXTINT);
	lapic_set_delivery_mode(&lapic, APIC_LVT_LINT1, APIC_DM_NMI);
	r = kvm_ioctl_retry(vcpu->fd, KVM_SET_LAPIC, (unsigned long)&lapic);
	return r < 0 ? r : 0;
}

/* Running */

static void kvm_exit_pio(struct hv_vcpu *vcpu)
{
	const struct hv *hv = vcpu->hv;
	struct kvm_run *run = vcpu->run;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
	unsigned size = run->io.size;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	/* String I/O (rep ins/outs) hands over io.count elements at once; KVM keeps them inside
	 * the kvm_run page, so the bound below only guards against a confused kernel. */
	if (size > 8 || run->io.data_offset + (uint64_t)run->io.count * size > hv->run_size)
		return;
	for (uint32_t i = 0; i < run->io.count; i++) {
		uint8_t *d = data + (size_t)i * size;
		if (hv->ops.pio)
			hv->ops.pio(hv->opaque, run->io.port, is_write, d, size);
		else if (!is_write)
			memset(d, 0xff, size);
	}
}

static void kvm_exit_mmio(struct hv_vcpu *vcpu)
{
	const struct hv *hv = vcpu->hv;
	struct kvm_run *run = vcpu->run;
	unsigned len = run->mmio.len;

	if (len > sizeof(run->mmio.data))
		return;
	if (hv->ops.mmio)
		hv->ops.mmio(hv->opaque, run->mmio.phys_addr, run->mmio.is_write, run->mmio.data,
			     len);
	else if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, len);
}

static void kvm_exit_internal(struct hv_vcpu *vcpu, struct hv_exit *e)
{
	struct kvm_run *run = vcpu->run;
	const char *what;

	e->reason = HV_EXIT_INTERNAL;
	e->code = run->internal.suberror;
	switch (run->internal.suberror) {
	case KVM_INTERNAL_ERROR_EMULATION:
		what = "emulation failure";
		break;
	case KVM_INTERNAL_ERROR_SIMUL_EX:
		what = "simultaneous exception";
		break;
	case KVM_INTERNAL_ERROR_DELIVERY_EV:
		what = "exit during event delivery";
		break;
	case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
		what = "unexpected exit reason";
		break;
	default:
		what = "internal error";
		break;
	}
	snprintf(e->description, sizeof(e->description), "%s (suberror %u)", what,
		 run->internal.suberror);
#ifdef KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES
	/* ndata counts the u64 words after itself: flags, then the 16 instruction bytes. */
	if (run->emulation_failure.suberror == KVM_INTERNAL_ERROR_EMULATION &&
	    run->emulation_failure.ndata >= 3 &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		unsigned n = MIN(run->emulation_failure.insn_size,
				 sizeof(run->emulation_failure.insn_bytes));
		memcpy(e->insn, run->emulation_failure.insn_bytes, n);
		e->insn_len = (uint8_t)n;
	}
#endif
}

/* Fills @e for a system event; returns false when the event needs no VMM action. */
static bool kvm_exit_system_event(struct hv_vcpu *vcpu, struct hv_exit *e)
{
	uint32_t type = vcpu->run->system_event.type;

	switch (type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		e->reason = HV_EXIT_POWEROFF;
		return true;
	case KVM_SYSTEM_EVENT_RESET:
		e->reason = HV_EXIT_RESET;
		return true;
	case KVM_SYSTEM_EVENT_WAKEUP:
		return false;
	case KVM_SYSTEM_EVENT_CRASH:
		/* hv.h has no crash exit: report it like an internal error, with its name. */
		e->reason = HV_EXIT_INTERNAL;
		e->code = type;
		snprintf(e->description, sizeof(e->description), "guest crash (system event)");
		return true;
	default:
		e->reason = HV_EXIT_INTERNAL;
		e->code = type;
		snprintf(e->description, sizeof(e->description), "unhandled system event %u", type);
		return true;
	}
}

int hv_vcpu_run(struct hv_vcpu *vcpu, struct hv_exit *ret)
{
	struct kvm_run *run = vcpu->run;
	struct hv_exit e = { 0 };
	int r = 0;

	vcpu->thread = pthread_self();
	atomic_store(&vcpu->in_run, true);
	for (;;) {
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			/* A kick, or any other signal: the caller checks its requests. */
			if (errno == EINTR || errno == EAGAIN) {
				e.reason = HV_EXIT_KICKED;
				break;
			}
			r = -errno;
			break;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			kvm_exit_pio(vcpu);
			continue;
		case KVM_EXIT_MMIO:
			kvm_exit_mmio(vcpu);
			continue;
		case KVM_EXIT_INTR:
			e.reason = HV_EXIT_KICKED;
			break;
		case KVM_EXIT_HLT:
			e.reason = HV_EXIT_HALT;
			break;
		case KVM_EXIT_SHUTDOWN:
			e.reason = HV_EXIT_SHUTDOWN;
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			if (!kvm_exit_system_event(vcpu, &e))
				continue;
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			kvm_exit_internal(vcpu, &e);
			break;
		case KVM_EXIT_FAIL_ENTRY:
			e.reason = HV_EXIT_FAIL_ENTRY;
			e.code = (uint32_t)run->fail_entry.hardware_entry_failure_reason;
			snprintf(e.description, sizeof(e.description),
				 "entry failed: hardware reason 0x%llx",
				 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			break;
		default:
			e.reason = HV_EXIT_INTERNAL;
			e.code = run->exit_reason;
			snprintf(e.description, sizeof(e.description), "unhandled KVM exit %u",
				 run->exit_reason);
			break;
		}
		break;
	}
	atomic_store(&vcpu->in_run, false);
	if (r < 0)
		return r;
	*ret = e;
	return 0;
}

void hv_vcpu_kick(struct hv_vcpu *vcpu)
{
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	/* The thread may have left hv_vcpu_run() just after this check: then the signal lands
	 * outside KVM_RUN and does nothing (the handler is empty, SA_RESTART). */
	if (atomic_load(&vcpu->in_run))
		pthread_kill(vcpu->thread, KVM_KICK_SIGNAL);
}

void hv_vcpu_clear_kick(struct hv_vcpu *vcpu)
{
	__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

static void kvm_kick_handler(int sig)
{
	(void)sig;
}

int hv_vcpu_thread_init(void)
{
	struct sigaction sa = { .sa_handler = kvm_kick_handler, .sa_flags = SA_RESTART };
	sigset_t set;
	int r;

	sigemptyset(&sa.sa_mask);
	if (sigaction(KVM_KICK_SIGNAL, &sa, NULL) < 0)
		return -errno;
	sigemptyset(&set);
	sigaddset(&set, KVM_KICK_SIGNAL);
	r = pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return -r;
}
