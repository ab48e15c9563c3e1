/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KVM backend of hv.h (DESIGN.md §3), VM half: the VM and its in-kernel platform, guest
 * RAM, interrupts and GSI routing, CPUID. kvm_vcpu.c has the vCPUs. Only these two files (and
 * their kvm.h) include <linux/kvm.h>.
 *
 * Kicks (kvm_vcpu.c): hv_vcpu_kick() sets kvm_run.immediate_exit and sends KVM_KICK_SIGNAL (SIGUSR2) to the
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
#include "hv/kvm.h"
#include "hv/routes.h"
#include "util/log.h"
#include "util/util.h"

static int kvm_defer(struct hv *hv, unsigned long req, const void *arg, size_t len,
		     const char *what);

struct hv *hv_destroy(struct hv *hv)
{
	if (!hv)
		return NULL;
	hv_ready(hv);
	if (hv->vm_fd >= 0)
		close(hv->vm_fd);
	for (unsigned i = 0; i < hv->n_slots; i++) {
		if (hv->slots[i].borrowed)
			continue;
		munmap(hv->slots[i].host, hv->slots[i].size);
		if (hv->slots[i].memfd >= 0)
			close(hv->slots[i].memfd);
	}
	if (hv->kvm_fd >= 0)
		close(hv->kvm_fd);
	pthread_mutex_destroy(&hv->slots_lock);
	pthread_mutex_destroy(&hv->routes_lock);
	free(hv->msr_list);
	free(hv->cpuid);
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
	kvm_state_init(hv);

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

/* What a vCPU thread issues: KVM_RUN, register reads for reports, and what the exits' device
 * handlers call (interrupt lines, MSIs, MSI-X routes and irqfds, ioeventfds on DRIVER_OK). */
static const unsigned long kvm_vcpu_ioctls[] = {
	KVM_RUN,	KVM_GET_REGS,	     KVM_GET_SREGS, KVM_IRQ_LINE,
	KVM_SIGNAL_MSI, KVM_SET_GSI_ROUTING, KVM_IRQFD,	    KVM_IOEVENTFD,
};

/* Everything else: building the VM and its vCPUs (also after a guest reboot), and the state of
 * both for snapshot and restore (kvm_state.c), which the VMM loop does while the vCPUs are
 * parked. */
static const unsigned long kvm_other_ioctls[] = {
	KVM_GET_API_VERSION,
	KVM_GET_MSR_INDEX_LIST,
	KVM_CHECK_EXTENSION,
	KVM_CREATE_VM,
	KVM_GET_VCPU_MMAP_SIZE,
	KVM_GET_SUPPORTED_CPUID,
	KVM_SET_TSS_ADDR,
	KVM_SET_IDENTITY_MAP_ADDR,
	KVM_CREATE_IRQCHIP,
	KVM_CREATE_PIT2,
	KVM_SET_USER_MEMORY_REGION,
	KVM_GET_DIRTY_LOG,
	KVM_CREATE_VCPU,
	KVM_SET_REGS,
	KVM_SET_SREGS,
	KVM_SET_MSRS,
	KVM_SET_CPUID2,
	KVM_SET_FPU,
	KVM_GET_LAPIC,
	KVM_SET_LAPIC,
	/* KVM_GET_REGS and KVM_GET_SREGS: in the vCPU set, which the VMM loop holds too */
	KVM_GET_MSRS,
	KVM_GET_FPU,
	KVM_GET_XSAVE,
	KVM_GET_XSAVE2,
	KVM_SET_XSAVE,
	KVM_GET_XCRS,
	KVM_SET_XCRS,
	KVM_GET_MP_STATE,
	KVM_SET_MP_STATE,
	KVM_GET_VCPU_EVENTS,
	KVM_SET_VCPU_EVENTS,
	KVM_GET_DEBUGREGS,
	KVM_SET_DEBUGREGS,
	KVM_GET_IRQCHIP,
	KVM_SET_IRQCHIP,
	KVM_GET_PIT2,
	KVM_SET_PIT2,
	KVM_GET_CLOCK,
	KVM_SET_CLOCK,
};

size_t hv_seccomp_ioctls(bool vcpu_thread, const unsigned long **ret)
{
	*ret = vcpu_thread ? kvm_vcpu_ioctls : kvm_other_ioctls;
	return vcpu_thread ? ARRAY_SIZE(kvm_vcpu_ioctls) : ARRAY_SIZE(kvm_other_ioctls);
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

/* Guest RAM must not end up in a core dump of the VMM; THP when asked for. */
static void kvm_ram_advise(void *p, uint64_t size, unsigned flags)
{
	if (madvise(p, size, MADV_DONTDUMP) < 0)
		log_debug("kvm: madvise(MADV_DONTDUMP): %s", strerror(errno));
	if ((flags & HV_RAM_THP) && madvise(p, size, MADV_HUGEPAGE) < 0)
		log_debug("kvm: madvise(MADV_HUGEPAGE): %s", strerror(errno));
}

/* Maps the memory for one slot (at @at, a reservation, when not NULL); fills @slot->host and
 * @slot->memfd. */
static int kvm_ram_map(struct kvm_ram_slot *slot, unsigned flags, void *at)
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
	p = mmap(at, slot->size, PROT_READ | PROT_WRITE, mflags | (at ? MAP_FIXED : 0), fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	kvm_ram_advise(p, slot->size, flags);
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

/* The lowest KVM slot number no slot uses (slots are removed by hv_mem_unmap). */
static uint32_t kvm_free_slot_id(struct hv *hv)
{
	uint32_t id = 0;

	for (bool again = true; again;) {
		again = false;
		for (unsigned i = 0; i < hv->n_slots; i++) {
			if (hv->slots[i].id == id) {
				id++;
				again = true;
			}
		}
	}
	return id;
}

/* Maps @size bytes of @fd from @offset copy-on-write for a slot; fills @slot->host. */
static int kvm_ram_map_file(struct kvm_ram_slot *slot, int fd, uint64_t offset, unsigned flags,
			    void *at)
{
	int mflags = MAP_PRIVATE | MAP_NORESERVE | (at ? MAP_FIXED : 0);
	void *p;

	if (flags & HV_RAM_PREFAULT)
		mflags |= MAP_POPULATE;
	p = mmap(at, slot->size, PROT_READ | PROT_WRITE, mflags, fd, (off_t)offset);
	if (p == MAP_FAILED)
		return -errno;
	kvm_ram_advise(p, slot->size, flags);
	slot->host = p;
	return 0;
}

/* The unbacked reservation that RAM at @gpa of @size bytes can take, or NULL. */
static struct kvm_ram_slot *kvm_ram_reservation(struct hv *hv, uint64_t gpa, uint64_t size,
						unsigned flags)
{
	for (unsigned i = 0; i < hv->n_slots; i++) {
		struct kvm_ram_slot *s = &hv->slots[i];
		if (s->reserved && s->gpa == gpa && size <= s->size && !(flags & HV_RAM_HUGEPAGES))
			return s;
	}
	return NULL;
}

int hv_ram_reserve(struct hv *hv, uint64_t gpa, uint64_t size)
{
	struct kvm_userspace_memory_region region;
	struct kvm_ram_slot slot = { .gpa = gpa, .size = size, .memfd = -1, .reserved = true };
	int r = 0;

	if (size == 0 || !IS_ALIGNED(gpa, PAGE_SIZE_4K) || !IS_ALIGNED(size, PAGE_SIZE_4K) ||
	    range_overflows(gpa, size) || size > SIZE_MAX)
		return -EINVAL;
	pthread_mutex_lock(&hv->slots_lock);
	if (kvm_ram_overlaps(hv, gpa, size))
		r = -EINVAL;
	else if (hv->n_slots == KVM_MAX_RAM_SLOTS)
		r = -ENOSPC;
	if (r == 0) {
		/* Address space only: no memory, no commit charge until backed. */
		slot.host = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				 -1, 0);
		if (slot.host == MAP_FAILED)
			r = -errno;
	}
	if (r < 0) {
		pthread_mutex_unlock(&hv->slots_lock);
		return r;
	}
	slot.id = kvm_free_slot_id(hv);
	region = (struct kvm_userspace_memory_region){
		.slot = slot.id,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)slot.host,
	};
	hv->slots[hv->n_slots++] = slot;
	pthread_mutex_unlock(&hv->slots_lock);
	return kvm_defer(hv, KVM_SET_USER_MEMORY_REGION, &region, sizeof(region),
			 "KVM_SET_USER_MEMORY_REGION");
}

/* hv_ram_add() (@fd < 0) and hv_ram_add_file(): a new slot, registered in the background, or
 * the start of a reservation. */
static int kvm_ram_add(struct hv *hv, uint64_t gpa, uint64_t size, unsigned flags, int fd,
		       uint64_t offset, void **ret_host)
{
	uint64_t align = (flags & HV_RAM_HUGEPAGES) ? HUGE_PAGE_SIZE : PAGE_SIZE_4K;
	struct kvm_userspace_memory_region region;
	struct kvm_ram_slot slot = { .gpa = gpa, .size = size, .memfd = -1 };
	int r;

	if (size == 0 || !IS_ALIGNED(gpa, align) || !IS_ALIGNED(size, align) ||
	    range_overflows(gpa, size) || size > SIZE_MAX)
		return -EINVAL;

	pthread_mutex_lock(&hv->slots_lock);
	struct kvm_ram_slot *res = kvm_ram_reservation(hv, gpa, size, flags);
	if (res) {
		/* Pre-warmed: back the start of the registered slot, no hypervisor call. */
		r = fd < 0 ? kvm_ram_map(&slot, flags, res->host)
			   : kvm_ram_map_file(&slot, fd, offset, flags, res->host);
		if (r == 0) {
			res->reserved = false;
			res->memfd = slot.memfd;
			*ret_host = slot.host;
		}
		goto out;
	}
	if (kvm_ram_overlaps(hv, gpa, size)) {
		r = -EINVAL;
		goto out;
	}
	if (hv->n_slots == KVM_MAX_RAM_SLOTS) {
		r = -ENOSPC;
		goto out;
	}
	r = fd < 0 ? kvm_ram_map(&slot, flags, NULL)
		   : kvm_ram_map_file(&slot, fd, offset, flags, NULL);
	if (r < 0)
		goto out;
	slot.id = kvm_free_slot_id(hv);

	region = (struct kvm_userspace_memory_region){
		.slot = slot.id,
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
out:
	pthread_mutex_unlock(&hv->slots_lock);
	return r;
}

int hv_ram_add(struct hv *hv, uint64_t gpa, uint64_t size, unsigned flags, void **ret_host)
{
	return kvm_ram_add(hv, gpa, size, flags, -1, 0, ret_host);
}

int hv_ram_add_file(struct hv *hv, uint64_t gpa, uint64_t size, int fd, uint64_t offset,
		    unsigned flags, void **ret_host)
{
	struct stat st;

	if ((flags & (HV_RAM_SHARED | HV_RAM_HUGEPAGES)) || fd < 0 ||
	    !IS_ALIGNED(offset, PAGE_SIZE_4K) || range_overflows(offset, size) ||
	    offset + size > (uint64_t)INT64_MAX)
		return -EINVAL;
	/* Pages past the end of the file would fault with SIGBUS when touched. */
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < offset + size)
		return -EINVAL;
	return kvm_ram_add(hv, gpa, size, flags, fd, offset, ret_host);
}

int hv_mem_map(struct hv *hv, uint64_t gpa, uint64_t size, void *host, bool readonly)
{
	struct kvm_userspace_memory_region region;
	struct kvm_ram_slot slot = { .gpa = gpa, .size = size, .host = host, .memfd = -1 };
	int r;

	if (size == 0 || !IS_ALIGNED(gpa, PAGE_SIZE_4K) || !IS_ALIGNED(size, PAGE_SIZE_4K) ||
	    !IS_ALIGNED((uintptr_t)host, PAGE_SIZE_4K) || range_overflows(gpa, size))
		return -EINVAL;
	if (readonly && !kvm_check_extension(hv, KVM_CAP_READONLY_MEM))
		return -EOPNOTSUPP;
	pthread_mutex_lock(&hv->slots_lock);
	if (kvm_ram_overlaps(hv, gpa, size)) {
		r = -EEXIST;
		goto out;
	}
	if (hv->n_slots == KVM_MAX_RAM_SLOTS) {
		r = -ENOSPC;
		goto out;
	}
	slot.id = kvm_free_slot_id(hv);
	slot.borrowed = true;
	region = (struct kvm_userspace_memory_region){
		.slot = slot.id,
		.flags = readonly ? KVM_MEM_READONLY : 0,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)host,
	};
	r = kvm_ioctl_retry(hv->vm_fd, KVM_SET_USER_MEMORY_REGION, (unsigned long)&region);
	if (r == 0)
		hv->slots[hv->n_slots++] = slot;
out:
	pthread_mutex_unlock(&hv->slots_lock);
	return r;
}

int hv_mem_unmap(struct hv *hv, uint64_t gpa)
{
	struct kvm_userspace_memory_region region = { 0 };
	int r = -ENOENT;

	pthread_mutex_lock(&hv->slots_lock);
	for (unsigned i = 0; i < hv->n_slots; i++) {
		if (!hv->slots[i].borrowed || hv->slots[i].gpa != gpa)
			continue;
		region.slot = hv->slots[i].id;
		region.guest_phys_addr = gpa;
		r = kvm_ioctl_retry(hv->vm_fd, KVM_SET_USER_MEMORY_REGION, (unsigned long)&region);
		if (r < 0)
			break;
		memmove(&hv->slots[i], &hv->slots[i + 1],
			(hv->n_slots - i - 1) * sizeof(hv->slots[0]));
		hv->n_slots--;
		break;
	}
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

static int kvm_supported_cpuid(struct hv *hv, struct hv_cpuid_entry *ret, unsigned max);

int hv_supported_cpuid(struct hv *hv, struct hv_cpuid_entry *ret, unsigned max)
{
	if (!hv->cpuid) {
		struct hv_cpuid_entry *all = calloc(HV_CPUID_MAX_ENTRIES, sizeof(*all));
		if (!all)
			return -ENOMEM;
		int n = kvm_supported_cpuid(hv, all, HV_CPUID_MAX_ENTRIES);
		if (n < 0) {
			free(all);
			return n;
		}
		hv->cpuid = all;
		hv->n_cpuid = (unsigned)n;
	}
	unsigned n = MIN(hv->n_cpuid, max);
	memcpy(ret, hv->cpuid, n * sizeof(*ret));
	return (int)n;
}

static int kvm_supported_cpuid(struct hv *hv, struct hv_cpuid_entry *ret, unsigned max)
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
