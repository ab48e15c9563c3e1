/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every VMM waits for before "exec -> first guest instruction" on this host: the KVM
 * ioctls it must make before a vCPU can run (create the VM and its irqchip, register guest RAM,
 * create a vCPU), timed one by one, without cubicle's code around them. (The memslot's SRCU
 * grace period varies from run to run; cubicle overlaps it with its own set-up.)
 * Prints one JSON object with the median of each, in milliseconds, over --runs N VMs.
 *
 * Usage: kvm-floor [RUNS] [RAM_MIB]
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 101
enum { CREATE_VM, IRQCHIP, MEMSLOT, VCPU, NR_STEPS };
static const char *const step_names[NR_STEPS] = { "create_vm", "irqchip", "memslot", "vcpu" };

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 7;
	size_t ram = (size_t)(argc > 2 ? atol(argv[2]) : 512) << 20;
	static double t[NR_STEPS][MAX_RUNS];
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (kvm < 0 || runs < 1 || runs > MAX_RUNS || ram == 0) {
		fprintf(stderr, "kvm-floor: needs /dev/kvm, 1..%d runs and a RAM size\n", MAX_RUNS);
		return 1;
	}
	for (int i = 0; i < runs; i++) {
		double t0 = now_ms();
		int vm = ioctl(kvm, KVM_CREATE_VM, 0);
		t[CREATE_VM][i] = now_ms() - t0;
		t0 = now_ms();
		int r = ioctl(vm, KVM_CREATE_IRQCHIP, 0);
		t[IRQCHIP][i] = now_ms() - t0;
		void *mem = mmap(NULL, ram, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		struct kvm_userspace_memory_region slot = {
			.memory_size = ram,
			.userspace_addr = (uintptr_t)mem,
		};
		t0 = now_ms();
		r |= ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot);
		t[MEMSLOT][i] = now_ms() - t0;
		t0 = now_ms();
		int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
		t[VCPU][i] = now_ms() - t0;
		if (vm < 0 || r < 0 || vcpu < 0 || mem == MAP_FAILED) {
			perror("kvm-floor");
			return 1;
		}
		close(vcpu);
		close(vm);
		munmap(mem, ram);
	}
	printf("{");
	for (int s = 0; s < NR_STEPS; s++) {
		qsort(t[s], runs, sizeof(double), cmp_double);
		printf("%s\"%s_ms\": %.3f", s ? ", " : "", step_names[s], t[s][runs / 2]);
	}
	printf("}\n");
	return 0;
}
