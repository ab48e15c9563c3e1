/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Intel MultiProcessor Specification 1.4 table: a floating pointer at the start of the EBDA
 * and a configuration table after it. Linux prefers ACPI's MADT when both are present, but it
 * looks for this table first: without one it scans the BIOS area 0xf0000-0xfffff for it, which
 * costs about 2.5 s of emulated guest-kernel time on kvm_pvm hosts (measured). It also gives
 * guests booted with acpi=off their CPUs and interrupt routing. Cloud Hypervisor and Firecracker
 * write one too.
 *
 * Layout: floating pointer at X86_MPTABLE_START (16 bytes), configuration table right after;
 * for 254 vCPUs the table takes 5.5 KiB, well inside the reserved range up to X86_ACPI_START.
 */
#include "arch/x86/x86.h"

#include <errno.h>
#include <string.h>

#include "util/util.h"

#define MP_SPEC_REV	  4 /* 1.4 */
#define MP_APIC_VERSION	  0x14
#define MP_IOAPIC_VERSION 0x11
#define MP_ENTRY_CPU	  0
#define MP_ENTRY_BUS	  1
#define MP_ENTRY_IOAPIC	  2
#define MP_ENTRY_INTSRC	  3
#define MP_ENTRY_LINTSRC  4
#define MP_CPU_ENABLED	  1
#define MP_CPU_BSP	  2
#define MP_IRQ_INT	  0
#define MP_IRQ_NMI	  1
#define MP_IRQ_EXTINT	  3
#define MP_ISA_IRQS	  16
#define MP_BUS_ISA	  0
#define MP_IOAPIC_ID	  0 /* what the MADT says and KVM's IOAPIC id register reads */
#define MP_ALL_LAPICS	  0xff

struct mp_floating {
	char signature[4]; /* "_MP_" */
	uint32_t physptr;
	uint8_t length; /* in 16-byte units */
	uint8_t spec_rev;
	uint8_t checksum;
	uint8_t feature[5];
} __attribute__((packed));

struct mp_header {
	char signature[4]; /* "PCMP" */
	uint16_t length;
	uint8_t spec_rev;
	uint8_t checksum;
	char oem[8];
	char product[12];
	uint32_t oem_table;
	uint16_t oem_table_size;
	uint16_t entry_count;
	uint32_t lapic_addr;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mp_cpu {
	uint8_t type, apic_id, apic_version, flags;
	uint32_t signature, features;
	uint32_t reserved[2];
} __attribute__((packed));

struct mp_bus {
	uint8_t type, bus_id;
	char bus_type[6];
} __attribute__((packed));

struct mp_ioapic {
	uint8_t type, apic_id, version, flags;
	uint32_t addr;
} __attribute__((packed));

struct mp_intsrc {
	uint8_t type, irq_type;
	uint16_t flags; /* 0: conforms to the bus */
	uint8_t src_bus, src_irq, dst_apic, dst_pin;
} __attribute__((packed));

_Static_assert(sizeof(struct mp_floating) == 16, "MP floating pointer");
_Static_assert(sizeof(struct mp_header) == 44, "MP header");
_Static_assert(sizeof(struct mp_cpu) == 20, "MP processor entry");
_Static_assert(sizeof(struct mp_intsrc) == 8, "MP interrupt entry");

size_t x86_mptable_size(unsigned nr_vcpus)
{
	return sizeof(struct mp_floating) + sizeof(struct mp_header) +
	       nr_vcpus * sizeof(struct mp_cpu) + sizeof(struct mp_bus) + sizeof(struct mp_ioapic) +
	       (MP_ISA_IRQS - 1 + 2) * sizeof(struct mp_intsrc);
}

/* Appends one entry at *@off of @buf. */
static void mp_put(uint8_t *buf, size_t *off, const void *entry, size_t len)
{
	memcpy(buf + *off, entry, len);
	*off += len;
}

int x86_mptable_build_buf(uint8_t *buf, size_t cap, uint64_t gpa, unsigned nr_vcpus,
			  size_t *ret_len)
{
	size_t need = x86_mptable_size(nr_vcpus);
	size_t off = sizeof(struct mp_floating) + sizeof(struct mp_header);
	unsigned entries = 0;

	if (nr_vcpus == 0 || nr_vcpus > CONFIG_MAX_VCPUS)
		return -EINVAL;
	if (need > cap)
		return -ENOSPC;
	memset(buf, 0, need);

	for (unsigned i = 0; i < nr_vcpus; i++, entries++) {
		struct mp_cpu cpu = {
			.type = MP_ENTRY_CPU,
			.apic_id = (uint8_t)i,
			.apic_version = MP_APIC_VERSION,
			.flags = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0),
			.signature = 0x600, /* family 6: what firmware writes when unsure */
			.features = 0x201,  /* FPU, APIC */
		};
		mp_put(buf, &off, &cpu, sizeof(cpu));
	}
	struct mp_bus bus = { .type = MP_ENTRY_BUS, .bus_id = MP_BUS_ISA };
	memcpy(bus.bus_type, "ISA   ", sizeof(bus.bus_type));
	mp_put(buf, &off, &bus, sizeof(bus));
	entries++;

	struct mp_ioapic ioapic = {
		.type = MP_ENTRY_IOAPIC,
		.apic_id = MP_IOAPIC_ID,
		.version = MP_IOAPIC_VERSION,
		.flags = 1,
		.addr = (uint32_t)X86_IOAPIC_START,
	};
	mp_put(buf, &off, &ioapic, sizeof(ioapic));
	entries++;
	/* ISA IRQ n on IOAPIC pin n, except the timer: IRQ 0 on pin 2, as the MADT overrides. */
	for (unsigned irq = 0; irq < MP_ISA_IRQS; irq++) {
		if (irq == 2)
			continue; /* pin 2 carries IRQ 0; the cascade has no pin */
		struct mp_intsrc src = {
			.type = MP_ENTRY_INTSRC,
			.irq_type = MP_IRQ_INT,
			.src_bus = MP_BUS_ISA,
			.src_irq = (uint8_t)irq,
			.dst_apic = MP_IOAPIC_ID,
			.dst_pin = (uint8_t)(irq == 0 ? 2 : irq),
		};
		mp_put(buf, &off, &src, sizeof(src));
		entries++;
	}
	struct mp_intsrc lint[2] = {
		{ .type = MP_ENTRY_LINTSRC,
		  .irq_type = MP_IRQ_EXTINT,
		  .dst_apic = MP_ALL_LAPICS,
		  .dst_pin = 0 },
		{ .type = MP_ENTRY_LINTSRC,
		  .irq_type = MP_IRQ_NMI,
		  .dst_apic = MP_ALL_LAPICS,
		  .dst_pin = 1 },
	};
	mp_put(buf, &off, lint, sizeof(lint));
	entries += 2;

	struct mp_header *h = (struct mp_header *)(buf + sizeof(struct mp_floating));
	memcpy(h->signature, "PCMP", 4);
	h->length = (uint16_t)(off - sizeof(struct mp_floating));
	h->spec_rev = MP_SPEC_REV;
	memcpy(h->oem, "CUBICLE ", 8);
	memcpy(h->product, "MICROVM     ", 12);
	h->entry_count = (uint16_t)entries;
	h->lapic_addr = (uint32_t)X86_LAPIC_START;
	h->checksum = x86_checksum8(h, h->length);

	struct mp_floating *f = (struct mp_floating *)buf;
	memcpy(f->signature, "_MP_", 4);
	f->physptr = (uint32_t)(gpa + sizeof(*f));
	f->length = 1;
	f->spec_rev = MP_SPEC_REV;
	f->checksum = x86_checksum8(buf, sizeof(*f));

	*ret_len = off;
	return 0;
}

int x86_mptable_build(struct guest_mem *gm, unsigned nr_vcpus)
{
	uint8_t buf[X86_MPTABLE_MAX];
	size_t len;
	int r = x86_mptable_build_buf(buf, sizeof(buf), X86_MPTABLE_START, nr_vcpus, &len);
	if (r < 0)
		return r;
	return guest_mem_write(gm, X86_MPTABLE_START, buf, len);
}
