/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ACPI tables for a hardware-reduced x86 platform (ACPI 6.x §5.2): RSDP → XSDT → FADT, MADT;
 * FADT → DSDT. There is no FACS, no PM1/GPE blocks and no SCI: sleep and reset go through the
 * FADT's extended registers, which devices/legacy/acpi_pm.c implements with this map (system
 * I/O space, 8-bit registers, mirrored in x86.h next to X86_PORT_ACPI_PM):
 *
 *   0x600  X86_PORT_ACPI_PM + 0  SLEEP_CONTROL_REG: a write with SLP_EN (bit 5) set and SLP_TYP
 *                                (bits 2-4) == 5 is S5, power off. 5 is the SLP_TYP of the
 *                                DSDT's \_S5_ package, so Linux writes 0x34.
 *   0x601  X86_PORT_ACPI_PM + 1  SLEEP_STATUS_REG: reads 0 (WAK_STS, bit 7, is never set).
 *   0x604  X86_PORT_ACPI_PM + 4  RESET_REG: writing RESET_VALUE (1) resets the VM.
 *
 *   0x608  X86_PORT_GED_STATUS       the Generic Event Device's event status (below).
 *
 * The power button (hardware-reduced: no fixed button, FADT PWR_BUTTON) is a control method
 * device, \_SB_.PWRB (PNP0C0C). The VM Generation ID is \_SB_.VGEN: _CID "VM_Gen_Counter" as
 * Microsoft's spec says (Linux's vmgenid driver matches it as "VM_GEN_COUNTER": ACPICA upper-
 * cases _HID/_CID strings), a vendor _HID of the valid ACPI-ID form, and ADDR returning
 * Package { low DWORD, high DWORD } of X86_VMGENID_START, where vmgenid.c writes the ID.
 * Both are signalled through a Generic Event Device (ACPI 6.1 §5.6.9, \_SB_.GED_, ACPI0013) on
 * ISA IRQ X86_GED_IRQ: the VMM latches the event's bit in the status register and pulses the
 * line; the guest's GED driver runs _EVT, which reads the register once (reading clears it)
 * and does Notify (PWRB, 0x80), "button pressed", for bit 0 and Notify (VGEN, 0x80), "the ID
 * changed", for bit 1.
 *
 * With PCI, the MCFG table gives the ECAM window of segment 0 and the DSDT's \_SB_.PCI0 (a
 * PCI Express host bridge) the bus range, the 0xcf8 ports and the windows the PCI root assigns
 * BARs from: Linux then keeps those assignments instead of reallocating.
 *
 * Layout, from X86_ACPI_START (0xe0000, inside the legacy RSDP scan area 0xe0000-0xfffff, which
 * the e820 map reserves): RSDP, DSDT, then the XSDT's tables in xsdt_tables[] order, then the
 * XSDT; each 16-byte aligned. The tables are built in a host buffer (struct acpi_builder) and
 * copied into guest RAM in one write.
 */
#include "arch/x86/x86.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/aml.h"
#include "util/util.h"

#define ACPI_PM_SLEEP_CONTROL (X86_PORT_ACPI_PM + 0)
#define ACPI_PM_SLEEP_STATUS  (X86_PORT_ACPI_PM + 1)
#define ACPI_PM_RESET	      (X86_PORT_ACPI_PM + 4)
#define ACPI_RESET_VALUE      1
#define ACPI_SLP_TYP_S5	      5

#define ACPI_OEM_ID    "CUBICL"
#define ACPI_OEM_TABLE "CUBI" /* + the table's signature */
/* \_SB_.VGEN's _HID: an ACPI ID in form (4 vendor characters, 4 hex digits) for OSes that check it;
 * drivers match the _CID. */
#define ACPI_VMGENID_HID "CUBE0001"
#define ACPI_CREATOR_ID	 "CUBI"
#define ACPI_TABLE_ALIGN 16
#define ACPI_XSDT_MAX	 8

/* Legacy ISA devices the DSDT describes (COM1's IRQ is X86_UART_COM1_IRQ). */
#define ISA_IRQ_RTC   8
#define ISA_PORT_COM1 0x3f8
#define ISA_PORT_RTC  0x70

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_header) == 36, "ACPI table header");

struct acpi_rsdp {
	char signature[8];
	uint8_t checksum; /* over the first 20 bytes (the ACPI 1.0 structure) */
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t extended_checksum; /* over all of it */
	uint8_t reserved[3];
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP");

/* Generic Address Structure (§5.2.3.2). */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_gas) == 12, "GAS");

#define ACPI_GAS_SYSTEM_IO   1
#define ACPI_GAS_ACCESS_BYTE 1

/* FADT revision 6 (§5.2.9). Fields a hardware-reduced platform leaves 0 keep their names. */
struct acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk, pm2_cnt_blk, pm_tmr_blk;
	uint32_t gpe0_blk, gpe1_blk;
	uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len, gpe0_blk_len, gpe1_blk_len;
	uint8_t gpe1_base, cst_cnt;
	uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk, x_pm_tmr_blk, x_gpe0_blk, x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	char hypervisor_vendor_id[8];
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT revision 6");
_Static_assert(offsetof(struct acpi_fadt, flags) == 112, "FADT flags");
_Static_assert(offsetof(struct acpi_fadt, x_dsdt) == 140, "FADT X_DSDT");
_Static_assert(offsetof(struct acpi_fadt, sleep_control_reg) == 244, "FADT sleep control");

#define FADT_F_PWR_BUTTON      (1u << 4) /* no fixed power button */
#define FADT_F_SLP_BUTTON      (1u << 5) /* no fixed sleep button */
#define FADT_F_RESET_REG_SUP   (1u << 10)
#define FADT_F_HW_REDUCED_ACPI (1u << 20)
#define FADT_BOOT_NO_VGA       (1u << 2) /* IAPC_BOOT_ARCH: do not probe VGA */

/* MADT (§5.2.12) and the interrupt controller structures it holds. */
struct acpi_madt {
	struct acpi_header h;
	uint32_t lapic_address;
	uint32_t flags;
} __attribute__((packed));

struct madt_lapic {
	uint8_t type, length, processor_uid, apic_id;
	uint32_t flags;
} __attribute__((packed));

struct madt_ioapic {
	uint8_t type, length, ioapic_id, reserved;
	uint32_t address, gsi_base;
} __attribute__((packed));

struct madt_irq_override {
	uint8_t type, length, bus, source;
	uint32_t gsi;
	uint16_t flags;
} __attribute__((packed));

struct madt_lapic_nmi {
	uint8_t type, length, processor_uid;
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

#define MADT_LAPIC	    0
#define MADT_IOAPIC	    1
#define MADT_IRQ_OVERRIDE   2
#define MADT_LAPIC_NMI	    4
#define MADT_LAPIC_ENABLED  1u
#define MADT_ALL_PROCESSORS 0xff
/*
 * The IOAPIC's id. IOAPIC and LAPIC ids are separate name spaces since the xAPIC (there is no
 * APIC bus), and KVM's IOAPIC reports id 0 in its 4-bit ID register: the table says the same.
 */
#define MADT_IOAPIC_ID 0

struct acpi_builder {
	uint8_t *buf;
	size_t cap, len;
	uint64_t gpa; /* guest address of buf[0] */
};

struct acpi_ctx {
	unsigned nr_vcpus;
	const struct x86_pci_layout *pci; /* NULL: no PCI */
	uint64_t dsdt;
};

/* MCFG (PCI Firmware Specification 3.x §4.1.2): one allocation for segment 0. */
struct acpi_mcfg {
	struct acpi_header h;
	uint64_t reserved;
	uint64_t base;
	uint16_t segment;
	uint8_t bus_start, bus_end;
	uint32_t reserved2;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_mcfg) == 60, "MCFG with one allocation");

#define PCI_PORT_CF8	0xcf8
#define PCI_PORT_CF8_SZ 8

/* Reserves @size zeroed bytes, 16-byte aligned; returns NULL when they do not fit. */
static void *acpi_alloc(struct acpi_builder *b, size_t size, uint64_t *ret_gpa)
{
	size_t off = ALIGN_UP(b->len, (size_t)ACPI_TABLE_ALIGN);

	if (off > b->cap || size > b->cap - off)
		return NULL;
	memset(b->buf + b->len, 0, off + size - b->len);
	b->len = off + size;
	*ret_gpa = b->gpa + off;
	return b->buf + off;
}

uint8_t x86_checksum8(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + b[i]);
	return (uint8_t)(0x100 - sum);
}

static void acpi_header_init(struct acpi_header *h, const char sig[4], uint32_t length,
			     uint8_t revision)
{
	memcpy(h->signature, sig, 4);
	h->length = length;
	h->revision = revision;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE, 4);
	memcpy(h->oem_table_id + 4, sig, 4);
	h->oem_revision = 1;
	memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
	h->creator_revision = 1;
}

/* Call last, once the whole table is written. */
static void acpi_table_seal(struct acpi_header *h)
{
	h->checksum = 0;
	h->checksum = x86_checksum8(h, h->length);
}

static struct acpi_gas gas_io8(uint16_t port)
{
	return (struct acpi_gas){ .space_id = ACPI_GAS_SYSTEM_IO,
				  .bit_width = 8,
				  .access_size = ACPI_GAS_ACCESS_BYTE,
				  .address = port };
}

/* A device with _HID @eisaid, _UID @uid and _CRS { IO @port/@len; IRQ @irq (if ≥ 0) }. */
static void dsdt_isa_device(struct aml *a, const char *name, const char *eisaid, unsigned uid,
			    uint16_t port, uint8_t len, int irq)
{
	aml_device_begin(a, name);
	aml_name(a, "_HID");
	aml_eisaid(a, eisaid);
	aml_name(a, "_UID");
	aml_integer(a, uid);
	aml_name(a, "_CRS");
	aml_resource_begin(a);
	aml_res_io(a, port, port, 1, len);
	if (irq >= 0)
		aml_res_irq(a, (unsigned)irq);
	aml_end(a);
	aml_end(a);
}

/* \_SB_.PCI0: the PCI Express host bridge of segment 0 and what it decodes. */
static void dsdt_pci_host(struct aml *a, const struct x86_pci_layout *pci)
{
	aml_device_begin(a, "PCI0");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0A08");
	aml_name(a, "_CID");
	aml_eisaid(a, "PNP0A03");
	aml_name(a, "_ADR");
	aml_integer(a, 0);
	aml_name(a, "_SEG");
	aml_integer(a, 0);
	aml_name(a, "_UID");
	aml_integer(a, 0);
	aml_name(a, "_BBN");
	aml_integer(a, pci->bus_start);
	aml_name(a, "_CRS");
	aml_resource_begin(a);
	aml_res_word_bus_number(a, pci->bus_start, pci->bus_end);
	aml_res_io(a, PCI_PORT_CF8, PCI_PORT_CF8, 1, PCI_PORT_CF8_SZ);
	aml_res_word_io(a, 0, PCI_PORT_CF8 - 1);
	aml_res_word_io(a, PCI_PORT_CF8 + PCI_PORT_CF8_SZ, 0xffff);
	aml_res_dword_memory(a, (uint32_t)pci->mem32_base,
			     (uint32_t)(pci->mem32_base + pci->mem32_size - 1), false);
	aml_res_qword_memory(a, pci->mem64_base, pci->mem64_base + pci->mem64_size - 1, false);
	aml_end(a);
	aml_end(a);
}

/* If (And (Local0, @bit)) { Notify (@target, 0x80) } */
static void dsdt_ged_dispatch(struct aml *a, uint8_t bit, const char *target)
{
	aml_if_begin(a);
	aml_and(a);
	aml_local(a, 0);
	aml_integer(a, bit);
	aml_byte(a, AML_ZERO_OP); /* no target */
	aml_notify(a, target, 0x80);
	aml_end(a);
}

/* The power button, the VM generation ID and the Generic Event Device that signals them. */
static void dsdt_ged(struct aml *a)
{
	aml_device_begin(a, "PWRB");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0C0C");
	aml_name(a, "_UID");
	aml_integer(a, 0);
	aml_end(a);

	aml_device_begin(a, "VGEN");
	aml_name(a, "_HID");
	aml_string(a, ACPI_VMGENID_HID);
	aml_name(a, "_CID");
	aml_string(a, "VM_Gen_Counter");
	aml_name(a, "_DDN");
	aml_string(a, "VM_Gen_Counter");
	aml_method_begin(a, "ADDR", 0, false);
	aml_return(a);
	aml_package_begin(a, 2);
	aml_dword(a, (uint32_t)X86_VMGENID_START);
	aml_dword(a, (uint32_t)(X86_VMGENID_START >> 32));
	aml_end(a);
	aml_end(a);
	aml_end(a);

	aml_device_begin(a, "GED_");
	aml_name(a, "_HID");
	aml_string(a, "ACPI0013");
	aml_name(a, "_UID");
	aml_integer(a, 0);
	aml_name(a, "_CRS");
	aml_resource_begin(a);
	aml_res_irq(a, X86_GED_IRQ);
	aml_end(a);
	aml_op_region(a, "GDST", AML_REGION_SYSTEM_IO, X86_PORT_GED_STATUS, 1);
	aml_field_begin(a, "GDST", AML_FIELD_BYTE_ACC);
	aml_field_unit(a, "GDAT", 8);
	aml_end(a);
	aml_method_begin(a, "_EVT", 1, true);
	aml_store(a); /* one read: it clears the register */
	aml_name_string(a, "GDAT");
	aml_local(a, 0);
	dsdt_ged_dispatch(a, X86_GED_EVENT_POWER_BUTTON, "\\_SB_.PWRB"); /* button pressed */
	dsdt_ged_dispatch(a, X86_GED_EVENT_VMGENID, "\\_SB_.VGEN");	 /* the ID changed */
	aml_end(a);
	aml_end(a);
}

static void dsdt_body(struct aml *a, const struct acpi_ctx *ctx)
{
	/* \_S5_: SLP_TYPa, SLP_TYPb, reserved, reserved. SLP_TYP 5 is what acpi_pm decodes. */
	aml_name(a, "\\_S5_");
	aml_package_begin(a, 4);
	aml_integer(a, ACPI_SLP_TYP_S5);
	aml_integer(a, ACPI_SLP_TYP_S5);
	aml_integer(a, 0);
	aml_integer(a, 0);
	aml_end(a);

	aml_scope_begin(a, "\\_SB_");
	dsdt_isa_device(a, "COM1", "PNP0501", 0, ISA_PORT_COM1, 8, X86_UART_COM1_IRQ);
	dsdt_isa_device(a, "RTC_", "PNP0B00", 0, ISA_PORT_RTC, 2, ISA_IRQ_RTC);
	/* Motherboard resources: keeps the PM registers out of what the OS hands to devices. */
	dsdt_isa_device(a, "PMRS", "PNP0C02", 0, X86_PORT_ACPI_PM, X86_PORT_ACPI_PM_SIZE, -1);
	dsdt_ged(a);
	if (ctx->pci)
		dsdt_pci_host(a, ctx->pci);
	aml_end(a);
}

static int acpi_build_dsdt(struct acpi_builder *b, const struct acpi_ctx *ctx, uint64_t *ret_gpa)
{
	struct aml a;
	struct acpi_header *h;
	uint64_t gpa;
	int r;

	aml_init(&a, b->cap);
	dsdt_body(&a, ctx);
	r = aml_finish(&a);
	if (r == 0 && a.len > UINT32_MAX - sizeof(*h))
		r = -ENOSPC;
	if (r == 0) {
		h = acpi_alloc(b, sizeof(*h) + a.len, &gpa);
		if (!h) {
			r = -ENOSPC;
		} else {
			/* Revision 2: AML integers are 64 bits wide. */
			acpi_header_init(h, "DSDT", (uint32_t)(sizeof(*h) + a.len), 2);
			memcpy(h + 1, a.data, a.len);
			acpi_table_seal(h);
			*ret_gpa = gpa;
		}
	}
	aml_free(&a);
	return r;
}

static int acpi_build_fadt(struct acpi_builder *b, const struct acpi_ctx *ctx, uint64_t *ret_gpa)
{
	struct acpi_fadt *f = acpi_alloc(b, sizeof(*f), ret_gpa);

	if (!f)
		return -ENOSPC;
	acpi_header_init(&f->h, "FACP", sizeof(*f), 6);
	/*
	 * No SCI in hardware-reduced mode, but Linux takes an interrupt source override whose
	 * source equals SCI_INT for the SCI's: keep it off the IRQ 0 override with the usual 9.
	 */
	f->sci_int = 9;
	f->iapc_boot_arch = FADT_BOOT_NO_VGA;
	f->flags = FADT_F_HW_REDUCED_ACPI | FADT_F_RESET_REG_SUP | FADT_F_PWR_BUTTON |
		   FADT_F_SLP_BUTTON;
	f->reset_reg = gas_io8(ACPI_PM_RESET);
	f->reset_value = ACPI_RESET_VALUE;
	f->minor_version = 0;
	/* Only the 64-bit pointer: with both set, OSPM must ignore DSDT and ACPICA warns. */
	f->x_dsdt = ctx->dsdt;
	f->sleep_control_reg = gas_io8(ACPI_PM_SLEEP_CONTROL);
	f->sleep_status_reg = gas_io8(ACPI_PM_SLEEP_STATUS);
	memcpy(f->hypervisor_vendor_id, "CUBICLE", 7);
	acpi_table_seal(&f->h);
	return 0;
}

static int acpi_build_madt(struct acpi_builder *b, const struct acpi_ctx *ctx, uint64_t *ret_gpa)
{
	size_t size = sizeof(struct acpi_madt) + ctx->nr_vcpus * sizeof(struct madt_lapic) +
		      sizeof(struct madt_ioapic) + sizeof(struct madt_irq_override) +
		      sizeof(struct madt_lapic_nmi);
	struct acpi_madt *m = acpi_alloc(b, size, ret_gpa);

	if (!m)
		return -ENOSPC;
	/* Revision 5 (ACPI 6.3+); flags 0: no PC-AT 8259s for the OS to mask. */
	acpi_header_init(&m->h, "APIC", (uint32_t)size, 5);
	m->lapic_address = (uint32_t)X86_LAPIC_START;
	m->flags = 0;

	uint8_t *p = (uint8_t *)(m + 1);
	for (unsigned i = 0; i < ctx->nr_vcpus; i++) {
		/* ACPI processor UID = APIC id = vCPU index, as x86_cpuid_build() reports it. */
		const struct madt_lapic l = { .type = MADT_LAPIC,
					      .length = sizeof(l),
					      .processor_uid = (uint8_t)i,
					      .apic_id = (uint8_t)i,
					      .flags = MADT_LAPIC_ENABLED };
		memcpy(p, &l, sizeof(l));
		p += sizeof(l);
	}
	const struct madt_ioapic io = { .type = MADT_IOAPIC,
					.length = sizeof(io),
					.ioapic_id = MADT_IOAPIC_ID,
					.address = (uint32_t)X86_IOAPIC_START,
					.gsi_base = 0 };
	memcpy(p, &io, sizeof(io));
	p += sizeof(io);
	/* The PC convention: the PIT's ISA IRQ 0 is wired to GSI 2; flags 0 = ISA's edge/high. */
	const struct madt_irq_override iso = {
		.type = MADT_IRQ_OVERRIDE, .length = sizeof(iso), .bus = 0, .source = 0, .gsi = 2
	};
	memcpy(p, &iso, sizeof(iso));
	p += sizeof(iso);
	const struct madt_lapic_nmi nmi = { .type = MADT_LAPIC_NMI,
					    .length = sizeof(nmi),
					    .processor_uid = MADT_ALL_PROCESSORS,
					    .flags = 0,
					    .lint = 1 };
	memcpy(p, &nmi, sizeof(nmi));
	acpi_table_seal(&m->h);
	return 0;
}

/* Sets *@ret_gpa to 0 (not listed) without PCI. */
static int acpi_build_mcfg(struct acpi_builder *b, const struct acpi_ctx *ctx, uint64_t *ret_gpa)
{
	struct acpi_mcfg *m;

	*ret_gpa = 0;
	if (!ctx->pci)
		return 0;
	m = acpi_alloc(b, sizeof(*m), ret_gpa);
	if (!m)
		return -ENOSPC;
	acpi_header_init(&m->h, "MCFG", sizeof(*m), 1);
	m->base = ctx->pci->ecam_base;
	m->segment = 0;
	m->bus_start = ctx->pci->bus_start;
	m->bus_end = ctx->pci->bus_end;
	acpi_table_seal(&m->h);
	return 0;
}

/*
 * The tables the XSDT lists, in this order. A new table is one line here; a builder that sets
 * its address to 0 is left out.
 */
static const struct {
	int (*build)(struct acpi_builder *b, const struct acpi_ctx *ctx, uint64_t *ret_gpa);
} xsdt_tables[] = {
	{ acpi_build_fadt },
	{ acpi_build_madt },
	{ acpi_build_mcfg },
};
_Static_assert(ARRAY_SIZE(xsdt_tables) <= ACPI_XSDT_MAX, "XSDT entries");

static int acpi_build_xsdt(struct acpi_builder *b, const uint64_t *entries, unsigned n,
			   uint64_t *ret_gpa)
{
	size_t size = sizeof(struct acpi_header) + n * sizeof(uint64_t);
	struct acpi_header *h = acpi_alloc(b, size, ret_gpa);

	if (!h)
		return -ENOSPC;
	acpi_header_init(h, "XSDT", (uint32_t)size, 1);
	memcpy(h + 1, entries, n * sizeof(uint64_t)); /* unaligned 64-bit fields: memcpy */
	acpi_table_seal(h);
	return 0;
}

static bool pci_layout_ok(const struct x86_pci_layout *p)
{
	return p->bus_start <= p->bus_end && IS_ALIGNED(p->ecam_base, 1 * MiB) && p->mem32_size &&
	       p->mem32_base + p->mem32_size <= (1ULL << 32) && p->mem64_size &&
	       !range_overflows(p->mem64_base, p->mem64_size);
}

int x86_acpi_build_buf(void *buf, size_t cap, uint64_t gpa, unsigned nr_vcpus,
		       const struct x86_pci_layout *pci, size_t *ret_len, uint64_t *ret_rsdp)
{
	struct acpi_builder b = { .buf = buf, .cap = cap, .gpa = gpa };
	struct acpi_ctx ctx = { .nr_vcpus = nr_vcpus, .pci = pci };
	uint64_t entries[ACPI_XSDT_MAX];
	uint64_t rsdp_gpa, xsdt_gpa;
	struct acpi_rsdp *rsdp;
	unsigned n = 0;
	int r;

	if (nr_vcpus == 0 || nr_vcpus > CONFIG_MAX_VCPUS || (pci && !pci_layout_ok(pci)))
		return -EINVAL;
	rsdp = acpi_alloc(&b, sizeof(*rsdp), &rsdp_gpa);
	if (!rsdp)
		return -ENOSPC;
	r = acpi_build_dsdt(&b, &ctx, &ctx.dsdt);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < ARRAY_SIZE(xsdt_tables); i++) {
		r = xsdt_tables[i].build(&b, &ctx, &entries[n]);
		if (r < 0)
			return r;
		if (entries[n])
			n++;
	}
	r = acpi_build_xsdt(&b, entries, n, &xsdt_gpa);
	if (r < 0)
		return r;

	memcpy(rsdp->signature, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, ACPI_OEM_ID, 6);
	rsdp->revision = 2;
	rsdp->length = sizeof(*rsdp);
	rsdp->xsdt_address = xsdt_gpa;
	rsdp->checksum = x86_checksum8(rsdp, offsetof(struct acpi_rsdp, length));
	rsdp->extended_checksum = x86_checksum8(rsdp, sizeof(*rsdp));

	*ret_len = b.len;
	*ret_rsdp = rsdp_gpa;
	return 0;
}

int x86_acpi_build(struct guest_mem *gm, unsigned nr_vcpus, const struct x86_pci_layout *pci,
		   uint64_t *ret_rsdp)
{
	_cleanup_free_ uint8_t *buf = malloc(X86_ACPI_TABLES_SIZE);
	uint64_t rsdp;
	size_t len;
	int r;

	if (!buf)
		return -ENOMEM;
	r = x86_acpi_build_buf(buf, X86_ACPI_TABLES_SIZE, X86_ACPI_START, nr_vcpus, pci, &len,
			       &rsdp);
	if (r < 0)
		return r;
	r = guest_mem_write(gm, X86_ACPI_START, buf, len);
	if (r < 0)
		return r;
	*ret_rsdp = rsdp;
	return 0;
}
