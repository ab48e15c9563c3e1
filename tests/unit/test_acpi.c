/* SPDX-License-Identifier: Apache-2.0 */
/* ACPI tables (src/arch/x86/acpi.c) and the AML builder they use (src/arch/x86/aml.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/aml.h"
#include "arch/x86/x86.h"
#include "mem/guest_mem.h"
#include "util/util.h"

#define RAM_SIZE (2 * MiB)
#define HDR_LEN	 36

static uint8_t sum8(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t s = 0;
	for (size_t i = 0; i < len; i++)
		s = (uint8_t)(s + b[i]);
	return s;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static const uint8_t *find_bytes(const uint8_t *hay, size_t hlen, const void *needle, size_t nlen)
{
	for (size_t i = 0; i + nlen <= hlen; i++) {
		if (memcmp(hay + i, needle, nlen) == 0)
			return hay + i;
	}
	return NULL;
}

struct vm_ram {
	uint8_t *ram;
	struct guest_mem gm;
};

static void ram_init(struct vm_ram *v)
{
	v->ram = calloc(1, RAM_SIZE);
	assert_non_null(v->ram);
	guest_mem_init(&v->gm);
	assert_int_equal(guest_mem_add_region(&v->gm, 0, RAM_SIZE, v->ram), 0);
}

/* A table at @gpa inside the ACPI area: signature, length bounds and checksum checked. */
static const uint8_t *table_at(struct vm_ram *v, uint64_t gpa, const char *sig)
{
	assert_true(gpa >= X86_ACPI_START && gpa + HDR_LEN <= X86_ACPI_START + X86_ACPI_SIZE);
	const uint8_t *t = guest_mem_translate(&v->gm, gpa, HDR_LEN);
	assert_non_null(t);
	assert_memory_equal(t, sig, 4);
	uint32_t len = rd32(t + 4);
	assert_true(len >= HDR_LEN);
	assert_true(gpa + len <= X86_ACPI_START + X86_ACPI_SIZE);
	assert_int_equal(sum8(t, len), 0);
	assert_memory_equal(t + 10, "CUBICL", 6);
	return t;
}

static void gas_check(const uint8_t *g, uint64_t port)
{
	assert_int_equal(g[0], 1); /* system I/O */
	assert_int_equal(g[1], 8); /* bit width */
	assert_int_equal(g[2], 0); /* bit offset */
	assert_int_equal(g[3], 1); /* byte access */
	assert_int_equal(rd64(g + 4), port);
}

static void check_fadt(struct vm_ram *v, const uint8_t *f)
{
	assert_int_equal(rd32(f + 4), 276);
	assert_int_equal(f[8], 6);
	uint32_t flags = rd32(f + 112);
	assert_true(flags & (1u << 20));   /* HW_REDUCED_ACPI */
	assert_true(flags & (1u << 10));   /* RESET_REG_SUP */
	assert_int_equal(rd32(f + 36), 0); /* no FACS */
	assert_int_equal(rd64(f + 132), 0);
	gas_check(f + 116, 0x604);   /* RESET_REG */
	assert_int_equal(f[128], 1); /* RESET_VALUE */
	gas_check(f + 244, 0x600);   /* SLEEP_CONTROL_REG */
	gas_check(f + 256, 0x601);   /* SLEEP_STATUS_REG */
	assert_int_equal(X86_PORT_ACPI_PM, 0x600);
	assert_memory_equal(f + 268, "CUBICLE", 7);

	uint64_t dsdt_gpa = rd64(f + 140);
	const uint8_t *d = table_at(v, dsdt_gpa, "DSDT");
	uint32_t len = rd32(d + 4);
	assert_int_equal(d[8], 2);
	const uint8_t *aml = d + HDR_LEN;
	size_t aml_len = len - HDR_LEN;

	/* Name(\_S5_, Package(4) { 5, 5, 0, 0 }) */
	static const uint8_t s5[] = { 0x08, '\\', '_',	'S',  '5',  '_',  0x12, 0x08,
				      0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00 };
	assert_non_null(find_bytes(aml, aml_len, s5, sizeof(s5)));

	/* Device(COM1) { Name(_HID, EISAID("PNP0501")) ... } with IO 0x3f8/8 and IRQ 4. */
	const uint8_t *com1 = find_bytes(aml, aml_len, "COM1", 4);
	assert_non_null(com1);
	assert_true(com1 - aml >= 3);
	assert_int_equal(com1[-3], 0x5b);
	assert_int_equal(com1[-2], 0x82);
	static const uint8_t hid[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01 };
	assert_ptr_equal(find_bytes(com1, aml_len - (size_t)(com1 - aml), hid, sizeof(hid)),
			 com1 + 4);
	static const uint8_t crs[] = { 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01,
				       0x08, 0x22, 0x10, 0x00, 0x79, 0x00 };
	assert_non_null(find_bytes(com1, aml_len - (size_t)(com1 - aml), crs, sizeof(crs)));
	assert_non_null(find_bytes(aml, aml_len, "\\_SB_", 5));
	assert_non_null(find_bytes(aml, aml_len, "RTC_", 4));
}

static void check_madt(const uint8_t *m, unsigned nr_vcpus)
{
	uint32_t len = rd32(m + 4);
	unsigned lapics = 0, ioapics = 0, isos = 0, nmis = 0;

	assert_int_equal(rd32(m + 36), 0xfee00000);
	assert_int_equal(rd32(m + 40), 0);
	for (uint32_t off = 44; off < len;) {
		const uint8_t *e = m + off;
		assert_true(off + 2 <= len);
		assert_true(e[1] >= 2 && off + e[1] <= len);
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], 8);
			assert_int_equal(e[2], lapics); /* processor UID */
			assert_int_equal(e[3], lapics); /* APIC id */
			assert_int_equal(rd32(e + 4), 1);
			lapics++;
			break;
		case 1:
			assert_int_equal(e[1], 12);
			assert_int_equal(rd32(e + 4), 0xfec00000);
			assert_int_equal(rd32(e + 8), 0);
			ioapics++;
			break;
		case 2:
			assert_int_equal(e[1], 10);
			assert_int_equal(e[2], 0); /* ISA */
			assert_int_equal(e[3], 0);
			assert_int_equal(rd32(e + 4), 2);
			isos++;
			break;
		case 4:
			assert_int_equal(e[1], 6);
			assert_int_equal(e[2], 0xff);
			assert_int_equal(e[5], 1); /* LINT1 */
			nmis++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", e[0]);
		}
		off += e[1];
	}
	assert_int_equal(lapics, nr_vcpus);
	assert_int_equal(ioapics, 1);
	assert_int_equal(isos, 1);
	assert_int_equal(nmis, 1);
}

/* The layout a 1 GiB guest gets. */
static const struct x86_pci_layout test_pci = {
	.ecam_base = 0xe0000000,
	.bus_start = 0,
	.bus_end = 0,
	.mem32_base = 0xc0000000,
	.mem32_size = 0x20000000,
	.mem64_base = 0x100000000,
	.mem64_size = 0x1000000000,
};

static void check_mcfg(const uint8_t *m)
{
	assert_int_equal(rd32(m + 4), 60);
	assert_int_equal(m[8], 1);
	assert_int_equal(rd64(m + 36), 0);	    /* reserved */
	assert_int_equal(rd64(m + 44), 0xe0000000); /* ECAM base */
	assert_int_equal(m[52] | m[53] << 8, 0);    /* segment */
	assert_int_equal(m[54], 0);		    /* start bus */
	assert_int_equal(m[55], 0);		    /* end bus */
}

/* \_SB_.PCI0 with its ids and the _CRS that declares exactly the windows of test_pci. */
static void check_pci0(const uint8_t *aml, size_t aml_len)
{
	const uint8_t *pci0 = find_bytes(aml, aml_len, "PCI0", 4);
	assert_non_null(pci0);
	size_t left = aml_len - (size_t)(pci0 - aml);
	uint32_t id;

	assert_int_equal(pci0[-4], 0x5b); /* DeviceOp, then a 2-byte PkgLength */
	assert_int_equal(pci0[-3], 0x82);
	assert_int_equal(pci0[-2] >> 6, 1);
	uint8_t hid[10] = { 0x08, '_', 'H', 'I', 'D', 0x0c };
	assert_int_equal(aml_eisaid_value("PNP0A08", &id), 0);
	memcpy(hid + 6, &id, 4);
	assert_ptr_equal(find_bytes(pci0, left, hid, sizeof(hid)), pci0 + 4);
	uint8_t cid[10] = { 0x08, '_', 'C', 'I', 'D', 0x0c };
	assert_int_equal(aml_eisaid_value("PNP0A03", &id), 0);
	memcpy(cid + 6, &id, 4);
	assert_non_null(find_bytes(pci0, left, cid, sizeof(cid)));
	assert_non_null(find_bytes(pci0, left, "\x08_ADR\x00", 6));
	assert_non_null(find_bytes(pci0, left, "\x08_SEG\x00", 6));
	assert_non_null(find_bytes(pci0, left, "\x08_UID\x00", 6));
	assert_non_null(find_bytes(pci0, left, "\x08_BBN\x00", 6));

	static const uint8_t crs[] = {
		/* WordBusNumber 0-0 */
		0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
		/* IO 0xcf8, length 8 */
		0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08,
		/* WordIO 0-0xcf7 */
		0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0, 0, 0xf7, 0x0c, 0, 0, 0xf8, 0x0c,
		/* WordIO 0xd00-0xffff */
		0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0x00, 0x0d, 0xff, 0xff, 0, 0, 0x00, 0xf3,
		/* DWordMemory 0xc0000000-0xdfffffff, cacheable, read-write */
		0x87, 0x17, 0x00, 0x00, 0x0c, 0x03, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0xc0, 0xff, 0xff,
		0xff, 0xdf, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x20,
		/* QWordMemory 4 GiB + 64 GiB */
		0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x00,
		0x01, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00,
		0x00, 0x00, 0x00, 0x10, 0, 0, 0,
		/* End Tag */
		0x79, 0x00
	};
	assert_non_null(find_bytes(pci0, left, crs, sizeof(crs)));
}

/*
 * \_SB_.PWRB (PNP0C0C), \_SB_.VGEN (VM_Gen_Counter, ADDR → X86_VMGENID_START) and the GED
 * (ACPI0013) on X86_GED_IRQ, whose _EVT reads the status register X86_PORT_GED_STATUS once and
 * notifies PWRB for bit 0 and VGEN for bit 1.
 */
static void check_ged(const uint8_t *aml, size_t len)
{
	static const uint8_t irq[] = { 0x22, 1u << X86_GED_IRQ, 0 };
	static const uint8_t cid[] = "\x08_CID\x0dVM_Gen_Counter";
	static const uint8_t region[] = { 0x5b,
					  0x80,
					  'G',
					  'D',
					  'S',
					  'T',
					  0x01, /* SystemIO */
					  0x0b,
					  (uint8_t)X86_PORT_GED_STATUS,
					  (uint8_t)(X86_PORT_GED_STATUS >> 8),
					  0x01 };
	static const uint8_t field[] = { 'G', 'D', 'S', 'T', 0x01, 'G', 'D', 'A', 'T', 0x08 };
	static const uint8_t store[] = { 0x70, 'G', 'D', 'A', 'T', 0x60 };
	/* If (And (Local0, bit, Zero)) { Notify (target, 0x80) }: If's PkgLength, then these. */
	static const uint8_t if_pwrb[] = { 0x7b, 0x60, 0x01, 0x00, 0x86, '\\', 0x2e, '_', 'S',
					   'B',	 '_',  'P',  'W',  'R',	 'B',  0x0a, 0x80 };
	static const uint8_t if_vgen[] = { 0x7b, 0x60, 0x0a, 0x02, 0x00, 0x86, '\\', 0x2e, '_',
					   'S',	 'B',  '_',  'V',  'G',	 'E',  'N',  0x0a, 0x80 };
	const uint8_t *vgen = find_bytes(aml, len, "VGEN", 4), *evt, *p;
	uint8_t addr[16] = { 0x12, 0x0c, 0x02, 0x0c };

	/* ADDR: Method (ADDR, 0) { Return (Package (2) { DWord low, DWord high }) } */
	for (unsigned i = 0; i < 4; i++)
		addr[4 + i] = (uint8_t)(X86_VMGENID_START >> (8 * i));
	addr[8] = 0x0c;
	for (unsigned i = 0; i < 4; i++)
		addr[9 + i] = (uint8_t)(X86_VMGENID_START >> (32 + 8 * i));

	assert_non_null(find_bytes(aml, len, "PWRB", 4));
	assert_non_null(vgen);
	assert_non_null(find_bytes(vgen, len - (size_t)(vgen - aml), cid, sizeof(cid)));
	assert_non_null(find_bytes(vgen, len - (size_t)(vgen - aml), "ADDR\x00\xa4\x12", 7));
	assert_non_null(find_bytes(vgen, len - (size_t)(vgen - aml), addr, 13));
	assert_non_null(find_bytes(aml, len, "ACPI0013", 8));
	assert_non_null(find_bytes(aml, len, irq, sizeof(irq)));
	assert_non_null(find_bytes(aml, len, region, sizeof(region)));
	assert_non_null(find_bytes(aml, len, field, sizeof(field)));
	evt = find_bytes(aml, len, "_EVT\x09", 5); /* 1 argument, serialized */
	assert_non_null(evt);
	p = find_bytes(evt, len - (size_t)(evt - aml), store, sizeof(store));
	assert_ptr_equal(p, evt + 5);
	p = find_bytes(p, len - (size_t)(p - aml), if_pwrb, sizeof(if_pwrb));
	assert_non_null(p);
	assert_int_equal(p[-2], 0xa0); /* If, with a one-byte PkgLength */
	p = find_bytes(p, len - (size_t)(p - aml), if_vgen, sizeof(if_vgen));
	assert_non_null(p);
	assert_int_equal(p[-2], 0xa0);
}

static void check_tables(unsigned nr_vcpus, const struct x86_pci_layout *pci)
{
	struct vm_ram v;
	uint64_t rsdp_gpa = 0;

	ram_init(&v);
	assert_int_equal(x86_acpi_build(&v.gm, nr_vcpus, pci, &rsdp_gpa), 0);
	assert_int_equal(rsdp_gpa, X86_ACPI_START);
	assert_true(IS_ALIGNED(rsdp_gpa, 16));

	const uint8_t *rsdp = guest_mem_translate(&v.gm, rsdp_gpa, 36);
	assert_non_null(rsdp);
	assert_memory_equal(rsdp, "RSD PTR ", 8);
	assert_int_equal(sum8(rsdp, 20), 0);
	assert_int_equal(rsdp[15], 2); /* revision */
	assert_int_equal(rd32(rsdp + 20), 36);
	assert_int_equal(sum8(rsdp, 36), 0);

	const uint8_t *xsdt = table_at(&v, rd64(rsdp + 24), "XSDT");
	uint32_t xlen = rd32(xsdt + 4);
	assert_int_equal(xlen, HDR_LEN + (pci ? 3 : 2) * 8);
	const uint8_t *fadt = table_at(&v, rd64(xsdt + HDR_LEN), "FACP");
	const uint8_t *madt = table_at(&v, rd64(xsdt + HDR_LEN + 8), "APIC");
	check_fadt(&v, fadt);
	check_madt(madt, nr_vcpus);
	const uint8_t *dsdt = table_at(&v, rd64(fadt + 140), "DSDT");
	const uint8_t *aml = dsdt + HDR_LEN;
	size_t aml_len = rd32(dsdt + 4) - HDR_LEN;
	check_ged(aml, aml_len);
	if (pci) {
		check_mcfg(table_at(&v, rd64(xsdt + HDR_LEN + 16), "MCFG"));
		check_pci0(aml, aml_len);
	} else {
		assert_null(find_bytes(aml, aml_len, "PCI0", 4));
	}
	free(v.ram);
}

static void test_tables_1(void **state)
{
	check_tables(1, NULL);
	check_tables(1, &test_pci);
}

static void test_tables_2(void **state)
{
	check_tables(2, &test_pci);
}

static void test_tables_64(void **state)
{
	check_tables(64, &test_pci);
}

static void test_tables_max(void **state)
{
	check_tables(CONFIG_MAX_VCPUS, &test_pci);
}

static void test_bad_vcpus(void **state)
{
	struct vm_ram v;
	uint64_t rsdp = 0x1234;

	ram_init(&v);
	assert_int_equal(x86_acpi_build(&v.gm, 0, NULL, &rsdp), -EINVAL);
	assert_int_equal(x86_acpi_build(&v.gm, CONFIG_MAX_VCPUS + 1, &test_pci, &rsdp), -EINVAL);
	struct x86_pci_layout bad = test_pci;
	bad.bus_start = 1;
	assert_int_equal(x86_acpi_build(&v.gm, 1, &bad, &rsdp), -EINVAL);
	bad = test_pci;
	bad.mem32_size = 0x40000001;
	assert_int_equal(x86_acpi_build(&v.gm, 1, &bad, &rsdp), -EINVAL);
	bad = test_pci;
	bad.mem64_size = 0;
	assert_int_equal(x86_acpi_build(&v.gm, 1, &bad, &rsdp), -EINVAL);
	assert_int_equal(rsdp, 0x1234);
	free(v.ram);
}

/* Every buffer one byte short of what the tables need fails cleanly; the exact size works. */
static void test_enospc(void **state)
{
	static uint8_t buf[64 * KiB], ref[64 * KiB];
	size_t need, len;
	uint64_t rsdp;

	assert_int_equal(
		x86_acpi_build_buf(ref, sizeof(ref), X86_ACPI_START, 8, &test_pci, &need, &rsdp),
		0);
	assert_true(need > 36 && need < sizeof(ref));
	for (size_t cap = 0; cap < need; cap++) {
		assert_int_equal(
			x86_acpi_build_buf(buf, cap, X86_ACPI_START, 8, &test_pci, &len, &rsdp),
			-ENOSPC);
	}
	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(x86_acpi_build_buf(buf, need, X86_ACPI_START, 8, &test_pci, &len, &rsdp),
			 0);
	assert_int_equal(len, need);
	assert_memory_equal(buf, ref, need); /* deterministic, and padding is zeroed */
}

static void test_not_ram(void **state)
{
	struct guest_mem gm;
	uint8_t *ram = calloc(1, 512 * KiB);
	uint64_t rsdp;

	assert_non_null(ram);
	guest_mem_init(&gm);
	assert_int_equal(guest_mem_add_region(&gm, 0, 512 * KiB, ram), 0);
	assert_int_equal(x86_acpi_build(&gm, 1, NULL, &rsdp), -EFAULT);
	free(ram);
}

/* ---- AML builder ---- */

static void test_pkglen_encode(void **state)
{
	static const struct {
		uint32_t value;
		unsigned n;
		uint8_t bytes[4];
	} cases[] = {
		{ 0, 1, { 0x00 } },
		{ 63, 1, { 0x3f } },
		{ 64, 2, { 0x40, 0x04 } },
		{ 4095, 2, { 0x4f, 0xff } },
		{ 4096, 3, { 0x80, 0x00, 0x01 } },
		{ 0xfffff, 3, { 0x8f, 0xff, 0xff } },
		{ 0x100000, 4, { 0xc0, 0x00, 0x00, 0x01 } },
		{ AML_PKGLEN_MAX, 4, { 0xcf, 0xff, 0xff, 0xff } },
	};
	uint8_t out[4];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_int_equal(aml_pkglen_encode(cases[i].value, out), cases[i].n);
		assert_memory_equal(out, cases[i].bytes, cases[i].n);
	}
	assert_int_equal(aml_pkglen_encode(AML_PKGLEN_MAX + 1, out), 0);
	/* The PkgLength counts itself: a 63-byte body needs 2 bytes (63 + 1 > 63). */
	assert_int_equal(aml_pkglen_size(62), 1);
	assert_int_equal(aml_pkglen_size(63), 2);
	assert_int_equal(aml_pkglen_size(4093), 2);
	assert_int_equal(aml_pkglen_size(4094), 3);
	assert_int_equal(aml_pkglen_size(0xfffff - 3), 3);
	assert_int_equal(aml_pkglen_size(0xfffff - 2), 4);
	assert_int_equal(aml_pkglen_size(AML_PKGLEN_MAX - 4), 4);
	assert_int_equal(aml_pkglen_size(AML_PKGLEN_MAX - 3), 0);
}

/* Decodes a PkgLength at @p: returns its value, *n its byte count. */
static uint32_t pkglen_decode(const uint8_t *p, unsigned *n)
{
	unsigned follow = p[0] >> 6;
	if (follow == 0) {
		*n = 1;
		return p[0] & 0x3f;
	}
	uint32_t v = p[0] & 0x0f;
	for (unsigned i = 1; i <= follow; i++)
		v |= (uint32_t)p[i] << (4 + 8 * (i - 1));
	*n = follow + 1;
	return v;
}

/* Scope(_SB_) { @extra raw bytes }: the back-patched PkgLength at the 1/2/3-byte edges. */
static void test_pkglen_backpatch(void **state)
{
	static const struct {
		size_t extra;
		unsigned n;
	} cases[] = { { 57, 1 },   { 58, 1 },	{ 59, 2 },   { 60, 2 },
		      { 4088, 2 }, { 4089, 2 }, { 4090, 3 }, { 5000, 3 } };
	uint8_t *filler = calloc(1, 8192);

	assert_non_null(filler);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct aml a;
		unsigned n;
		aml_init(&a, 64 * KiB);
		aml_scope_begin(&a, "_SB_");
		aml_bytes(&a, filler, cases[i].extra);
		aml_end(&a);
		assert_int_equal(aml_finish(&a), 0);
		assert_int_equal(a.data[0], AML_SCOPE_OP);
		uint32_t v = pkglen_decode(a.data + 1, &n);
		assert_int_equal(n, cases[i].n);
		assert_int_equal(v, a.len - 1);
		assert_int_equal(a.len, 1 + n + 4 + cases[i].extra);
		assert_memory_equal(a.data + 1 + n, "_SB_", 4);
		aml_free(&a);
	}
	free(filler);
}

/* Nested objects: each PkgLength covers exactly its own object after inner ones grew. */
static void test_nested(void **state)
{
	uint8_t filler[100] = { 0 };
	struct aml a;
	unsigned n1, n2;

	aml_init(&a, 4096);
	aml_scope_begin(&a, "\\_SB_");
	aml_device_begin(&a, "DEV0");
	aml_bytes(&a, filler, sizeof(filler));
	aml_end(&a);
	aml_end(&a);
	assert_int_equal(aml_finish(&a), 0);

	assert_int_equal(a.data[0], AML_SCOPE_OP);
	uint32_t outer = pkglen_decode(a.data + 1, &n1);
	assert_int_equal(outer, a.len - 1);
	const uint8_t *dev = a.data + 1 + n1 + 5;
	assert_int_equal(dev[0], AML_EXT_OP_PREFIX);
	assert_int_equal(dev[1], AML_DEVICE_OP);
	uint32_t inner = pkglen_decode(dev + 2, &n2);
	assert_int_equal(n2, 2);
	assert_int_equal(inner, n2 + 4 + sizeof(filler));
	assert_memory_equal(dev + 2 + n2, "DEV0", 4);
	assert_int_equal((size_t)(dev - a.data) + 2 + inner, a.len);
	aml_free(&a);
}

static void test_integers(void **state)
{
	static const struct {
		uint64_t v;
		size_t n;
		uint8_t bytes[9];
	} cases[] = {
		{ 0, 1, { 0x00 } },
		{ 1, 1, { 0x01 } },
		{ 2, 2, { 0x0a, 0x02 } },
		{ 0xff, 2, { 0x0a, 0xff } },
		{ 0x100, 3, { 0x0b, 0x00, 0x01 } },
		{ 0xffff, 3, { 0x0b, 0xff, 0xff } },
		{ 0x10000, 5, { 0x0c, 0x00, 0x00, 0x01, 0x00 } },
		{ 0xffffffff, 5, { 0x0c, 0xff, 0xff, 0xff, 0xff } },
		{ 1ULL << 32, 9, { 0x0e, 0, 0, 0, 0, 0x01, 0, 0, 0 } },
		{ UINT64_MAX, 9, { 0x0e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct aml a;
		aml_init(&a, 64);
		aml_integer(&a, cases[i].v);
		assert_int_equal(aml_finish(&a), 0);
		assert_int_equal(a.len, cases[i].n);
		assert_memory_equal(a.data, cases[i].bytes, cases[i].n);
		aml_free(&a);
	}
}

static void test_eisaid(void **state)
{
	uint32_t v = 0;
	struct aml a;

	assert_int_equal(aml_eisaid_value("PNP0501", &v), 0);
	assert_int_equal(v, 0x0105d041);
	assert_int_equal(aml_eisaid_value("PNP0B00", &v), 0);
	assert_int_equal(v, 0x000bd041);
	assert_int_equal(aml_eisaid_value("pnp0501", &v), -EINVAL);
	assert_int_equal(aml_eisaid_value("PNP050", &v), -EINVAL);
	assert_int_equal(aml_eisaid_value("PNP050G", &v), -EINVAL);
	assert_int_equal(aml_eisaid_value("PNP05011", &v), -EINVAL);

	aml_init(&a, 64);
	aml_eisaid(&a, "PNP0501");
	assert_int_equal(aml_finish(&a), 0);
	static const uint8_t want[] = { 0x0c, 0x41, 0xd0, 0x05, 0x01 };
	assert_int_equal(a.len, sizeof(want));
	assert_memory_equal(a.data, want, sizeof(want));
	aml_eisaid(&a, "bad");
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_free(&a);
}

static void expect_name(const char *path, const void *want, size_t n)
{
	struct aml a;

	aml_init(&a, 1024);
	aml_name_string(&a, path);
	assert_int_equal(aml_finish(&a), 0);
	assert_int_equal(a.len, n);
	assert_memory_equal(a.data, want, n);
	aml_free(&a);
}

static void expect_bad_name(const char *path)
{
	struct aml a;

	aml_init(&a, 1024);
	aml_name_string(&a, path);
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_free(&a);
}

static void test_names(void **state)
{
	expect_name("_HID", "_HID", 4);
	expect_name("RTC", "RTC_", 4);
	expect_name("\\_SB_", "\\_SB_", 5);
	expect_name("\\_SB_.COM1", "\\\x2e_SB_COM1", 10);
	expect_name("_SB.PCI0.S08", "\x2f\x03_SB_PCI0S08_", 14);
	expect_name("^^FOO", "^^FOO_", 6);
	expect_bad_name("");
	expect_bad_name("\\");
	expect_bad_name("1ABC");
	expect_bad_name("abc");
	expect_bad_name("ABCDE");
	expect_bad_name("_SB_.");
	expect_bad_name("_SB_..COM1");
	expect_bad_name("\\^FOO");
}

static void test_string_package_method(void **state)
{
	struct aml a;

	aml_init(&a, 1024);
	aml_name(&a, "_STR");
	aml_string(&a, "ab");
	aml_name(&a, "PKG0");
	aml_package_begin(&a, 2);
	aml_integer(&a, 0x0f);
	aml_string(&a, "");
	aml_end(&a);
	aml_method_begin(&a, "_STA", 0, false);
	aml_return(&a);
	aml_integer(&a, 0x0f);
	aml_end(&a);
	aml_method_begin(&a, "M001", 2, true);
	aml_end(&a);
	assert_int_equal(aml_finish(&a), 0);
	static const uint8_t want[] = {
		0x08, '_',  'S',  'T',	'R',  0x0d, 'a',  'b',	0x00, 0x08, 'P', 'K',  'G',
		'0',  0x12, 0x06, 0x02, 0x0a, 0x0f, 0x0d, 0x00, 0x14, 0x09, '_', 'S',  'T',
		'A',  0x00, 0xa4, 0x0a, 0x0f, 0x14, 0x06, 'M',	'0',  '0',  '1', 0x0a,
	};
	assert_int_equal(a.len, sizeof(want));
	assert_memory_equal(a.data, want, sizeof(want));
	aml_free(&a);
}

/* OperationRegion, Field, Store, And, If and LocalN: what the GED's _EVT is made of. */
static void test_region_field_if(void **state)
{
	struct aml a;

	aml_init(&a, 1024);
	aml_op_region(&a, "REG0", AML_REGION_SYSTEM_IO, 0x608, 1);
	aml_field_begin(&a, "REG0", AML_FIELD_BYTE_ACC);
	aml_field_unit(&a, "FLD0", 8);
	aml_field_unit(&a, "FLD1", 0x100); /* a two-byte PkgLength */
	aml_end(&a);
	aml_store(&a);
	aml_name_string(&a, "FLD0");
	aml_local(&a, 7);
	aml_if_begin(&a);
	aml_and(&a);
	aml_local(&a, 7);
	aml_dword(&a, 2);
	aml_byte(&a, AML_ZERO_OP);
	aml_end(&a);
	assert_int_equal(aml_finish(&a), 0);
	static const uint8_t want[] = {
		0x5b, 0x80, 'R',  'E',	'G',  '0',  0x01, 0x0b, 0x08, 0x06, 0x01, /* region */
		0x5b, 0x81, 0x11, 'R',	'E',  'G',  '0',  0x01, 'F',  'L',  'D',
		'0',  0x08, 'F',  'L',	'D',  '1',  0x40, 0x10,		    /* field */
		0x70, 'F',  'L',  'D',	'0',  0x67,			    /* store */
		0xa0, 0x09, 0x7b, 0x67, 0x0c, 0x02, 0x00, 0x00, 0x00, 0x00, /* if */
	};
	assert_int_equal(a.len, sizeof(want));
	assert_memory_equal(a.data, want, sizeof(want));
	aml_free(&a);

	/* A field's name is one NameSeg; it has at least one bit; there are 8 locals. */
	static const char *const bad_names[] = { "\\FLD0", "A.B", "^FLD", "1ABC" };
	for (size_t i = 0; i < ARRAY_SIZE(bad_names); i++) {
		aml_init(&a, 64);
		aml_field_unit(&a, bad_names[i], 8);
		assert_int_equal(aml_finish(&a), -EINVAL);
		aml_free(&a);
	}
	aml_init(&a, 64);
	aml_field_unit(&a, "FLD0", 0);
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_free(&a);
	aml_init(&a, 64);
	aml_local(&a, 8);
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_free(&a);
}

/* The generation ID: 16 random bytes in the page the tables leave free, new at each update. */
static void test_vmgenid(void **state)
{
	struct vm_ram v;
	uint8_t first[X86_VMGENID_SIZE], second[X86_VMGENID_SIZE], zero[X86_VMGENID_SIZE] = { 0 };
	uint64_t rsdp;

	assert_true(X86_VMGENID_START >= X86_ACPI_START + X86_ACPI_TABLES_SIZE);
	assert_true(X86_VMGENID_START + X86_VMGENID_SIZE <= X86_ACPI_START + X86_ACPI_SIZE);
	ram_init(&v);
	assert_int_equal(x86_acpi_build(&v.gm, CONFIG_MAX_VCPUS, &test_pci, &rsdp), 0);
	assert_int_equal(guest_mem_read(&v.gm, X86_VMGENID_START, first, sizeof(first)), 0);
	assert_memory_equal(first, zero, sizeof(zero)); /* the tables stay out of its page */

	assert_int_equal(x86_vmgenid_update(&v.gm), 0);
	assert_int_equal(guest_mem_read(&v.gm, X86_VMGENID_START, first, sizeof(first)), 0);
	assert_int_equal(x86_vmgenid_update(&v.gm), 0);
	assert_int_equal(guest_mem_read(&v.gm, X86_VMGENID_START, second, sizeof(second)), 0);
	assert_memory_not_equal(first, zero, sizeof(zero));
	assert_memory_not_equal(first, second, sizeof(first));
	free(v.ram);

	/* Below 1 MiB of RAM: not there. */
	struct guest_mem gm;
	uint8_t *ram = calloc(1, 512 * KiB);
	assert_non_null(ram);
	guest_mem_init(&gm);
	assert_int_equal(guest_mem_add_region(&gm, 0, 512 * KiB, ram), 0);
	assert_int_equal(x86_vmgenid_update(&gm), -EFAULT);
	free(ram);
}

static void test_resources(void **state)
{
	struct aml a;

	aml_init(&a, 1024);
	aml_resource_begin(&a);
	aml_res_io(&a, 0x3f8, 0x3f8, 1, 8);
	aml_res_irq(&a, 4);
	aml_res_mem32_fixed(&a, 0xfec00000, 0x1000, true);
	aml_end(&a);
	aml_buffer_begin(&a);
	aml_byte(&a, 0xaa);
	aml_end(&a);
	assert_int_equal(aml_finish(&a), 0);
	static const uint8_t want[] = {
		0x11, 0x1c, 0x0a, 0x19, /* Buffer, PkgLength 28, BufferSize 25 */
		0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, /* IO */
		0x22, 0x10, 0x00,				/* IRQNoFlags {4} */
		0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0xc0, 0xfe,
		0x00, 0x10, 0x00, 0x00, /* Mem32Fixed */
		0x79, 0x00,		/* End Tag */
		0x11, 0x03, 0x01, 0xaa, /* Buffer (One) { 0xaa } */
	};
	assert_int_equal(a.len, sizeof(want));
	assert_memory_equal(a.data, want, sizeof(want));
	aml_free(&a);
}

static void test_address_space_resources(void **state)
{
	struct aml a;

	aml_init(&a, 1024);
	aml_resource_begin(&a);
	aml_res_word_bus_number(&a, 0, 0xff);
	aml_res_word_io(&a, 0xd00, 0xffff);
	aml_res_dword_memory(&a, 0xc0000000, 0xdfffffff, true);
	aml_res_qword_memory(&a, 0x240000000, 0x103fffffffff, false);
	aml_end(&a);
	assert_int_equal(aml_finish(&a), 0);
	static const uint8_t want[] = {
		0x11, 0x4e, 0x06, 0x0a, 0x6a, /* Buffer, PkgLength 110, BufferSize 106 */
		/* WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0xff, 0, 0x100) */
		0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00,
		0x00, 0x01,
		/* WordIO(..., EntireRange, 0, 0xd00, 0xffff, 0, 0xf300) */
		0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x0d, 0xff, 0xff, 0x00, 0x00,
		0x00, 0xf3,
		/* DWordMemory(..., Prefetchable, ReadWrite, 0, 0xc0000000, 0xdfffffff, 0, 0x20000000) */
		0x87, 0x17, 0x00, 0x00, 0x0c, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0,
		0xff, 0xff, 0xff, 0xdf, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20,
		/* QWordMemory(..., Cacheable, ReadWrite, 0, 9 GiB, 16 TiB + 64 GiB - 1, 0, len) */
		0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x40,
		0x02, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x3f, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x00, 0x00, 0x00, 0xc0, 0x3d, 0x10, 0, 0, 0x79, 0x00, /* End Tag */
	};
	assert_int_equal(a.len, sizeof(want));
	assert_memory_equal(a.data, want, sizeof(want));
	aml_free(&a);

	/* min > max, all 2^64 addresses, outside a ResourceTemplate */
	aml_init(&a, 1024);
	aml_resource_begin(&a);
	aml_res_word_io(&a, 0x10, 0xf);
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_free(&a);
	aml_init(&a, 1024);
	aml_resource_begin(&a);
	aml_res_qword_memory(&a, 0, UINT64_MAX, false);
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_free(&a);
	aml_init(&a, 1024);
	aml_res_dword_memory(&a, 0, 0xfff, false);
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_free(&a);
}

static void test_errors(void **state)
{
	struct aml a;

	aml_init(&a, 64);
	aml_end(&a);
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_free(&a);

	aml_init(&a, 64);
	aml_scope_begin(&a, "_SB_");
	assert_int_equal(aml_finish(&a), -EINVAL); /* left open */
	aml_end(&a);
	assert_int_equal(aml_finish(&a), 0);
	aml_free(&a);

	aml_init(&a, 64);
	aml_res_io(&a, 0x60, 0x60, 1, 1); /* outside a ResourceTemplate */
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_free(&a);

	aml_init(&a, 64);
	aml_resource_begin(&a);
	aml_res_irq(&a, 16);
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_free(&a);

	aml_init(&a, 64);
	aml_method_begin(&a, "M000", 8, false);
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_free(&a);

	aml_init(&a, 1024);
	for (unsigned i = 0; i <= AML_MAX_DEPTH; i++)
		aml_scope_begin(&a, "S");
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_free(&a);

	/* The bound holds, including the bytes a PkgLength adds when it is patched in. */
	uint8_t filler[16] = { 0 };
	aml_init(&a, 16);
	aml_bytes(&a, filler, 16);
	assert_int_equal(aml_finish(&a), 0);
	aml_byte(&a, 0);
	assert_int_equal(aml_finish(&a), -ENOSPC);
	aml_integer(&a, 5); /* sticky: no-op after an error */
	assert_int_equal(a.len, 16);
	aml_free(&a);

	aml_init(&a, 10);
	aml_scope_begin(&a, "_SB_");
	aml_bytes(&a, filler, 4); /* 9 bytes so far; the PkgLength makes 10 */
	aml_end(&a);
	assert_int_equal(aml_finish(&a), 0);
	aml_free(&a);
	aml_init(&a, 10);
	aml_scope_begin(&a, "_SB_");
	aml_bytes(&a, filler, 5);
	aml_end(&a);
	assert_int_equal(aml_finish(&a), -ENOSPC);
	aml_free(&a);
	aml_free(&a); /* twice is fine */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables_1),
		cmocka_unit_test(test_tables_2),
		cmocka_unit_test(test_tables_64),
		cmocka_unit_test(test_tables_max),
		cmocka_unit_test(test_bad_vcpus),
		cmocka_unit_test(test_enospc),
		cmocka_unit_test(test_not_ram),
		cmocka_unit_test(test_pkglen_encode),
		cmocka_unit_test(test_pkglen_backpatch),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_eisaid),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_string_package_method),
		cmocka_unit_test(test_region_field_if),
		cmocka_unit_test(test_vmgenid),
		cmocka_unit_test(test_resources),
		cmocka_unit_test(test_address_space_resources),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
