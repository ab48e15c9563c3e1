/* SPDX-License-Identifier: Apache-2.0 */
/* MSI-X (src/pci/msix.c): capability, table, PBA, masking and delivery. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include "bus/bus.h"
#include "hv/hv.h"
#include "hv/mock.h"
#include "hv/routes.h"
#include "pci/pci.h"
#include "util/state.h"
#include "util/util.h"

#define ECAM	 0xe0000000ULL
#define BAR0	 0xc0000000ULL /* where the root assigns the first 32-bit BAR */
#define TABLE	 (BAR0 + 0x2000)
#define PBA	 (BAR0 + 0x3000)
#define NVEC	 4
#define SLOT	 1
#define MAX_MSIS 16

static const struct pci_layout layout = {
	.ecam_base = ECAM,
	.ecam_size = 0x10000000,
	.mem32_base = 0xc0000000,
	.mem32_size = 0x20000000,
	.mem64_base = 0x100000000,
	.mem64_size = 64 * GiB,
};

struct harness {
	struct bus pio, mmio;
	struct irq_sink irq;
	struct pci_root *root;
	struct pci_function *fn;
	unsigned cap; /* the MSI-X capability's offset */
	unsigned nr_msis;
	struct {
		uint64_t addr;
		uint32_t data;
	} msis[MAX_MSIS];
	unsigned bar_calls;
	uint64_t bar_offset;
	struct hv *hv; /* the routed path's backend (setup_routed) */
	int last_efd;  /* of the last irqfd assign */
	uint32_t last_gsi;
};

static int fake_route_alloc(void *opaque, uint32_t *ret_gsi)
{
	struct harness *h = opaque;
	return hv_msi_route_alloc(h->hv, ret_gsi);
}

static int fake_route_set(void *opaque, uint32_t gsi, uint64_t addr, uint32_t data)
{
	struct harness *h = opaque;
	return hv_msi_route(h->hv, gsi, addr, data);
}

static void fake_route_free(void *opaque, uint32_t gsi)
{
	struct harness *h = opaque;
	hv_msi_route_free(h->hv, gsi);
}

static int fake_irqfd(void *opaque, int fd, uint32_t gsi, bool assign)
{
	struct harness *h = opaque;

	if (assign) {
		h->last_efd = fd;
		h->last_gsi = gsi;
	}
	return hv_irqfd(h->hv, fd, gsi, assign);
}

static int fake_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct harness *h = opaque;

	assert_true(h->nr_msis < MAX_MSIS);
	h->msis[h->nr_msis].addr = addr;
	h->msis[h->nr_msis].data = data;
	h->nr_msis++;
	return 0;
}

static void fake_bar_rw(void *opaque, unsigned bar, uint64_t offset, bool is_write, uint8_t *data,
			unsigned len)
{
	struct harness *h = opaque;

	h->bar_calls++;
	h->bar_offset = offset;
	if (!is_write)
		memset(data, 0, len);
}

static const struct pci_function_ops ops = { .bar_rw = fake_bar_rw };

static uint64_t mmio_read(struct harness *h, uint64_t addr, unsigned len)
{
	uint8_t d[8];
	uint64_t v = 0;

	assert_true(bus_access(&h->mmio, addr, false, d, len));
	for (unsigned i = 0; i < len; i++)
		v |= (uint64_t)d[i] << (8 * i);
	return v;
}

static void mmio_write(struct harness *h, uint64_t addr, uint64_t v, unsigned len)
{
	uint8_t d[8];

	for (unsigned i = 0; i < len; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	assert_true(bus_access(&h->mmio, addr, true, d, len));
}

static uint32_t cfg_read(struct harness *h, unsigned offset, unsigned len)
{
	uint8_t d[4];
	uint32_t v = 0;

	pci_config_access(h->root, 0, SLOT << 3, offset, false, d, len);
	for (unsigned i = 0; i < len; i++)
		v |= (uint32_t)d[i] << (8 * i);
	return v;
}

static void cfg_write(struct harness *h, unsigned offset, uint32_t v, unsigned len)
{
	uint8_t d[4];

	for (unsigned i = 0; i < len; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	pci_config_access(h->root, 0, SLOT << 3, offset, true, d, len);
}

static void set_control(struct harness *h, uint16_t ctl)
{
	cfg_write(h, h->cap + 2, ctl, 2);
}

/* Programs vector @v with an address/data pair derived from @v, leaving its mask as is. */
static void program(struct harness *h, unsigned v)
{
	uint64_t e = TABLE + 16 * v;

	mmio_write(h, e, 0xfee00000 | v << 12, 4);
	mmio_write(h, e + 4, 0, 4);
	mmio_write(h, e + 8, 0x4020 + v, 4);
}

static void unmask(struct harness *h, unsigned v)
{
	mmio_write(h, TABLE + 16 * v + 12, 0, 4);
}

/* The function with MSI-X, BAR0 decoded; @routed: with the routed path over the mock hv. */
static struct harness *harness_new(bool routed)
{
	struct harness *h = calloc(1, sizeof(*h));
	const struct pci_function_desc desc = {
		.name = "msix-test",
		.vendor_id = 0x1af4,
		.device_id = 0x1042,
		.class_code = 0x010000,
		.slot = SLOT,
		.bars = { [0] = { .kind = PCI_BAR_MEM32, .size = 16 * KiB } },
		.ops = &ops,
	};

	assert_non_null(h);
	bus_init(&h->pio, "pio");
	bus_init(&h->mmio, "mmio");
	h->irq = (struct irq_sink){ .msi = fake_msi, .opaque = h };
	h->last_efd = -1;
	if (routed) {
		assert_int_equal(hv_create(&h->hv), 0);
		h->irq.route_alloc = fake_route_alloc;
		h->irq.route_set = fake_route_set;
		h->irq.route_free = fake_route_free;
		h->irq.irqfd = fake_irqfd;
	}
	assert_int_equal(pci_root_create(&h->pio, &h->mmio, &h->irq, &layout, &h->root), 0);
	assert_int_equal(pci_register(h->root, &desc, h, &h->fn), 0);
	assert_int_equal(pci_bar_address(h->fn, 0), BAR0);
	assert_int_equal(msix_init(h->fn, NVEC, 0, 0x2000, 0, 0x3000), 0);
	/* decode BAR0 */
	cfg_write(h, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	/* find the capability the way a driver does */
	for (unsigned p = cfg_read(h, PCI_CAPABILITY_LIST, 1); p; p = cfg_read(h, p + 1, 1)) {
		if (cfg_read(h, p, 1) == PCI_CAP_ID_MSIX) {
			h->cap = p;
			break;
		}
	}
	assert_int_not_equal(h->cap, 0);
	return h;
}

static int setup(void **state)
{
	*state = harness_new(false);
	return 0;
}

static int setup_routed(void **state)
{
	*state = harness_new(true);
	return 0;
}

static int teardown(void **state)
{
	struct harness *h = *state;

	h->root = pci_root_destroy(h->root);
	hv_destroy(h->hv);
	free(h);
	return 0;
}

static void test_capability(void **state)
{
	struct harness *h = *state;

	assert_true(cfg_read(h, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	assert_int_equal(cfg_read(h, h->cap + 2, 2), NVEC - 1); /* table size, disabled */
	assert_int_equal(cfg_read(h, h->cap + 4, 4), 0x2000);	/* BIR 0 */
	assert_int_equal(cfg_read(h, h->cap + 8, 4), 0x3000);
	/* only enable and function mask are writable */
	cfg_write(h, h->cap + 2, 0xffff, 2);
	assert_int_equal(cfg_read(h, h->cap + 2, 2), 0xc000 | (NVEC - 1));
	cfg_write(h, h->cap + 4, 0xffffffff, 4);
	cfg_write(h, h->cap + 8, 0, 4);
	assert_int_equal(cfg_read(h, h->cap + 4, 4), 0x2000);
	assert_int_equal(cfg_read(h, h->cap + 8, 4), 0x3000);
	set_control(h, 0);
	assert_false(msix_enabled(h->fn));
	set_control(h, PCI_MSIX_CTRL_ENABLE);
	assert_true(msix_enabled(h->fn));
	/* second init */
	assert_int_equal(msix_init(h->fn, NVEC, 0, 0x1000, 0, 0x1800), -EEXIST);
}

static void test_table(void **state)
{
	struct harness *h = *state;

	/* reset state: every vector masked, the rest 0 */
	for (unsigned v = 0; v < NVEC; v++) {
		assert_int_equal(mmio_read(h, TABLE + 16 * v, 4), 0);
		assert_int_equal(mmio_read(h, TABLE + 16 * v + 8, 4), 0);
		assert_int_equal(mmio_read(h, TABLE + 16 * v + 12, 4), 1);
	}
	/* dword writes; the address's low 2 bits and the control's reserved bits are 0 */
	mmio_write(h, TABLE + 16, 0xfee01003, 4);
	mmio_write(h, TABLE + 20, 0x12345678, 4);
	mmio_write(h, TABLE + 24, 0x00004041, 4);
	mmio_write(h, TABLE + 28, 0xfffffffe, 4);
	assert_int_equal(mmio_read(h, TABLE + 16, 4), 0xfee01000);
	assert_int_equal(mmio_read(h, TABLE + 20, 4), 0x12345678);
	assert_int_equal(mmio_read(h, TABLE + 24, 4), 0x4041);
	assert_int_equal(mmio_read(h, TABLE + 28, 4), 0);
	/* qword accesses */
	mmio_write(h, TABLE + 32, 0x00000001fee02000ULL, 8);
	mmio_write(h, TABLE + 40, 0x0000000100004042ULL, 8);
	assert_int_equal(mmio_read(h, TABLE + 32, 8), 0x00000001fee02000ULL);
	assert_int_equal(mmio_read(h, TABLE + 40, 8), 0x0000000100004042ULL);
	assert_int_equal(mmio_read(h, TABLE + 16, 8), 0x12345678fee01000ULL);
	/* other widths and misaligned accesses: ignored, reads all ones */
	mmio_write(h, TABLE + 48, 0xffff, 2);
	mmio_write(h, TABLE + 49, 0xffffffff, 4);
	mmio_write(h, TABLE + 52, 0xffffffffffffffffULL, 8);
	assert_int_equal(mmio_read(h, TABLE + 48, 8), 0);
	assert_int_equal(mmio_read(h, TABLE + 48, 2), 0xffff);
	assert_int_equal(mmio_read(h, TABLE + 50, 4), 0xffffffff);
	assert_int_equal(mmio_read(h, TABLE + 4, 8), 0xffffffffffffffffULL);
	assert_int_equal(mmio_read(h, TABLE + 48, 1), 0xff);
	/* the rest of the BAR is the device's, with BAR-relative offsets */
	assert_int_equal(mmio_read(h, TABLE + 16 * NVEC, 4), 0);
	assert_int_equal(h->bar_calls, 1);
	assert_int_equal(h->bar_offset, 0x2000 + 16 * NVEC);
	mmio_write(h, BAR0 + 0x10, 1, 4);
	assert_int_equal(h->bar_offset, 0x10);
	assert_int_equal(h->bar_calls, 2);
}

static void test_delivery(void **state)
{
	struct harness *h = *state;

	for (unsigned v = 0; v < NVEC; v++)
		program(h, v);
	unmask(h, 0);
	/* MSI-X disabled: nothing is delivered nor left pending */
	assert_int_equal(msix_notify(h->fn, 0), 0);
	assert_int_equal(h->nr_msis, 0);
	assert_int_equal(mmio_read(h, PBA, 8), 0);

	set_control(h, PCI_MSIX_CTRL_ENABLE);
	assert_int_equal(msix_notify(h->fn, 0), 0);
	assert_int_equal(h->nr_msis, 1);
	assert_int_equal(h->msis[0].addr, 0xfee00000);
	assert_int_equal(h->msis[0].data, 0x4020);

	/* a masked vector goes pending; unmasking delivers it once */
	assert_int_equal(msix_notify(h->fn, 2), 0);
	assert_int_equal(msix_notify(h->fn, 2), 0);
	assert_int_equal(h->nr_msis, 1);
	assert_int_equal(mmio_read(h, PBA, 8), 1 << 2);
	assert_int_equal(mmio_read(h, PBA, 4), 1 << 2);
	unmask(h, 2);
	assert_int_equal(h->nr_msis, 2);
	assert_int_equal(h->msis[1].addr, 0xfee02000);
	assert_int_equal(h->msis[1].data, 0x4022);
	assert_int_equal(mmio_read(h, PBA, 8), 0);
	/* masking again, without a notification, leaves nothing pending */
	mmio_write(h, TABLE + 16 * 2 + 12, 1, 4);
	unmask(h, 2);
	assert_int_equal(h->nr_msis, 2);
}

static void test_function_mask(void **state)
{
	struct harness *h = *state;

	for (unsigned v = 0; v < NVEC; v++) {
		program(h, v);
		unmask(h, v);
	}
	set_control(h, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL);
	assert_int_equal(msix_notify(h->fn, 1), 0);
	assert_int_equal(msix_notify(h->fn, 3), 0);
	assert_int_equal(h->nr_msis, 0);
	assert_int_equal(mmio_read(h, PBA, 8), (1 << 1) | (1 << 3));
	/* the vector's own mask still holds vector 3 back after the function unmask */
	mmio_write(h, TABLE + 16 * 3 + 12, 1, 4);
	set_control(h, PCI_MSIX_CTRL_ENABLE);
	assert_int_equal(h->nr_msis, 1);
	assert_int_equal(h->msis[0].data, 0x4021);
	assert_int_equal(mmio_read(h, PBA, 8), 1 << 3);
	unmask(h, 3);
	assert_int_equal(h->nr_msis, 2);
	assert_int_equal(h->msis[1].data, 0x4023);
	assert_int_equal(mmio_read(h, PBA, 8), 0);
	/* enable off then on again with a pending vector under the function mask */
	set_control(h, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL);
	assert_int_equal(msix_notify(h->fn, 0), 0);
	set_control(h, 0);
	assert_int_equal(h->nr_msis, 2);
	set_control(h, PCI_MSIX_CTRL_ENABLE);
	assert_int_equal(h->nr_msis, 3);
	assert_int_equal(h->msis[2].data, 0x4020);
}

static void test_bad_vector_and_pba(void **state)
{
	struct harness *h = *state;

	set_control(h, PCI_MSIX_CTRL_ENABLE);
	for (unsigned i = 0; i < 100; i++) /* rate-limited log, no crash */
		assert_int_equal(msix_notify(h->fn, NVEC + i), -EINVAL);
	assert_int_equal(msix_notify(h->fn, UINT32_MAX), -EINVAL);
	assert_int_equal(h->nr_msis, 0);
	assert_int_equal(mmio_read(h, PBA, 8), 0);

	/* the PBA is read-only */
	assert_int_equal(msix_notify(h->fn, 1), 0);
	mmio_write(h, PBA, 0, 8);
	mmio_write(h, PBA, 0xffffffff, 4);
	assert_int_equal(mmio_read(h, PBA, 8), 1 << 1);
	assert_int_equal(mmio_read(h, PBA + 4, 4), 0);
	assert_int_equal(mmio_read(h, PBA, 2), 0xffff); /* odd width */
	assert_int_equal(h->bar_calls, 0);
	/* past the PBA's one qword: the device's again */
	assert_int_equal(mmio_read(h, PBA + 8, 4), 0);
	assert_int_equal(h->bar_calls, 1);
}

static void test_init_errors(void **state)
{
	struct bus pio, mmio;
	struct pci_root *root;
	struct pci_function *fn, *plain;
	struct irq_sink irq = { 0 };
	const struct pci_function_desc desc = {
		.name = "t",
		.bars = { [0] = { .kind = PCI_BAR_MEM32, .size = 4 * KiB },
			  [2] = { .kind = PCI_BAR_MEM64, .size = 64 * KiB } },
	};

	(void)state;
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	assert_int_equal(pci_root_create(&pio, &mmio, &irq, &layout, &root), 0);
	assert_int_equal(pci_register(root, &desc, NULL, &fn), 0);
	assert_int_equal(pci_register(root, &desc, NULL, &plain), 0);
	assert_int_equal(msix_init(fn, 0, 0, 0, 0, 0x800), -EINVAL);
	assert_int_equal(msix_init(fn, PCI_MSIX_MAX_VECTORS + 1, 2, 0, 2, 0x8000), -EINVAL);
	assert_int_equal(msix_init(fn, 8, 1, 0, 0, 0x800), -EINVAL);	 /* unused BAR */
	assert_int_equal(msix_init(fn, 8, 3, 0, 0, 0x800), -EINVAL);	 /* upper half */
	assert_int_equal(msix_init(fn, 8, 6, 0, 0, 0x800), -EINVAL);	 /* no such BAR */
	assert_int_equal(msix_init(fn, 8, 0, 4, 0, 0x800), -EINVAL);	 /* misaligned */
	assert_int_equal(msix_init(fn, 8, 0, 0xf88, 0, 0x800), -EINVAL); /* past the end */
	assert_int_equal(msix_init(fn, 8, 0, 0, 0, 0x78), -EINVAL);	 /* overlap */
	assert_int_equal(msix_init(fn, 8, 0, 0xf00, 0, 0xff8), 0);	 /* the PBA ends the BAR */
	/* without MSI-X */
	assert_int_equal(msix_notify(plain, 0), -EINVAL);
	assert_false(msix_enabled(plain));
	/* all 2048 vectors in the 64-bit BAR, the PBA in BAR 0 */
	assert_int_equal(pci_register(root, &desc, NULL, &fn), 0);
	assert_int_equal(msix_init(fn, PCI_MSIX_MAX_VECTORS, 2, 0, 0, 0xf00), 0);
	root = pci_root_destroy(root);
}

/* The eventfd's counter (0 when never written), consuming it. */
static uint64_t efd_take(int efd)
{
	uint64_t v = 0;

	if (read(efd, &v, sizeof(v)) < 0)
		return 0;
	return v;
}

static void assert_route(struct harness *h, uint32_t gsi, uint64_t addr, uint32_t data)
{
	uint64_t a;
	uint32_t d;

	assert_true(hv_mock_msi_route(h->hv, gsi, &a, &d));
	assert_int_equal(a, addr);
	assert_int_equal(d, data);
}

static void test_routed_delivery(void **state)
{
	struct harness *h = *state;
	uint32_t gsi;
	int efd;

	program(h, 1);
	set_control(h, PCI_MSIX_CTRL_ENABLE);
	/* masked vectors get nothing yet */
	assert_int_equal(hv_mock_irqfd_count(h->hv), 0);
	unmask(h, 1);
	assert_int_equal(hv_mock_irqfd_count(h->hv), 1);
	efd = h->last_efd;
	gsi = h->last_gsi;
	assert_true(gsi >= HV_IOAPIC_PINS);
	assert_route(h, gsi, 0xfee01000, 0x4021);

	/* delivery writes the eventfd, never irq->msi */
	assert_int_equal(msix_notify(h->fn, 1), 0);
	assert_int_equal(msix_notify(h->fn, 1), 0);
	assert_int_equal(h->nr_msis, 0);
	assert_int_equal(efd_take(efd), 2);

	/* rewritten while open: the route follows at once */
	mmio_write(h, TABLE + 16 + 8, 0x4031, 4);
	assert_route(h, gsi, 0xfee01000, 0x4031);
	/* rewritten while masked: at the unmask, before the pending message goes out */
	mmio_write(h, TABLE + 16 + 12, PCI_MSIX_ENTRY_MASKED, 4);
	assert_int_equal(msix_notify(h->fn, 1), 0);
	assert_int_equal(efd_take(efd), 0);
	assert_int_equal(mmio_read(h, PBA, 8), 1u << 1);
	mmio_write(h, TABLE + 16, 0xfee02000, 4);
	assert_route(h, gsi, 0xfee01000, 0x4031);
	unmask(h, 1);
	assert_route(h, gsi, 0xfee02000, 0x4031);
	assert_int_equal(efd_take(efd), 1);
	assert_int_equal(mmio_read(h, PBA, 8), 0);
	assert_int_equal(hv_mock_irqfd_count(h->hv), 1); /* the same binding */
	assert_int_equal(h->nr_msis, 0);

	/* MSI-X disabled: unbound (GSI kept); enabled again: bound again to the same GSI */
	set_control(h, 0);
	assert_int_equal(hv_mock_irqfd_count(h->hv), 0);
	set_control(h, PCI_MSIX_CTRL_ENABLE);
	assert_int_equal(hv_mock_irqfd_count(h->hv), 1);
	assert_true(hv_mock_irqfd(h->hv, efd, &gsi));
	assert_int_equal(gsi, h->last_gsi);

	/* removal unbinds and frees the route */
	h->root = pci_root_destroy(h->root);
	assert_int_equal(hv_mock_irqfd_count(h->hv), 0);
	assert_false(hv_mock_msi_route(h->hv, gsi, NULL, NULL));
}

static void test_routed_fallback(void **state)
{
	struct harness *h = *state;
	uint32_t gsi;

	/* a full routing table: the vector goes through irq->msi instead */
	while (hv_msi_route_alloc(h->hv, &gsi) == 0)
		;
	program(h, 0);
	set_control(h, PCI_MSIX_CTRL_ENABLE);
	unmask(h, 0);
	assert_int_equal(hv_mock_irqfd_count(h->hv), 0);
	assert_int_equal(msix_notify(h->fn, 0), 0);
	assert_int_equal(h->nr_msis, 1);
	assert_int_equal(h->msis[0].addr, 0xfee00000);
	assert_int_equal(h->msis[0].data, 0x4020);
}

/* ---- snapshot state (pci_function_save/load) ---- */

#define BAR0_MOVED 0xd0000000ULL

static char *state_dump(struct harness *h)
{
	json_t *o = json_object();
	char *s;

	assert_int_equal(pci_function_save(h->fn, o), 0);
	s = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
	assert_non_null(s);
	json_decref(o);
	return s;
}

/* Loads @text into a fresh routed function; returns it, or NULL with @err set. */
static struct harness *state_load(const char *text, char *err, size_t errlen)
{
	struct harness *h = harness_new(true);
	json_t *o = json_loads(text, 0, NULL);
	int r;

	assert_non_null(o);
	/* a freshly built function: memory space off, as at a cold boot */
	cfg_write(h, PCI_COMMAND, 0, 2);
	err[0] = 0;
	r = pci_function_load(h->fn, o, err, errlen);
	json_decref(o);
	if (r < 0) {
		assert_int_equal(r, -EINVAL);
		assert_true(err[0] != 0);
		h->root = pci_root_destroy(h->root);
		hv_destroy(h->hv);
		free(h);
		return NULL;
	}
	return h;
}

static void test_state_round_trip(void **state)
{
	struct harness *h = *state, *g;
	_cleanup_free_ char *saved = NULL, *again = NULL;
	char err[256];
	uint32_t gsi;
	int efd;

	/* the guest moves BAR0, opens vector 1, leaves vector 2 masked with a message pending */
	program(h, 1);
	program(h, 2);
	set_control(h, PCI_MSIX_CTRL_ENABLE);
	unmask(h, 1);
	assert_int_equal(msix_notify(h->fn, 2), 0);
	cfg_write(h, PCI_BAR0, (uint32_t)BAR0_MOVED, 4);
	cfg_write(h, PCI_INTERRUPT_LINE, 0x0b, 1);
	saved = state_dump(h);

	g = state_load(saved, err, sizeof(err));
	assert_non_null(g);
	/* the BAR decodes where the guest put it, and only there */
	assert_int_equal(cfg_read(g, PCI_BAR0, 4) & ~0xfu, BAR0_MOVED);
	assert_int_equal(cfg_read(g, PCI_INTERRUPT_LINE, 1), 0x0b);
	assert_int_equal(mmio_read(g, BAR0_MOVED + 0x2000 + 16, 4), 0xfee01000);
	uint8_t d[4];
	assert_false(bus_access(&g->mmio, BAR0 + 0x2000, false, d, 4));
	/* vector 1 has its route and irqfd back; vector 2 is still pending */
	assert_int_equal(hv_mock_irqfd_count(g->hv), 1);
	efd = g->last_efd;
	gsi = g->last_gsi;
	assert_route(g, gsi, 0xfee01000, 0x4021);
	assert_int_equal(msix_notify(g->fn, 1), 0);
	assert_int_equal(efd_take(efd), 1);
	assert_int_equal(mmio_read(g, BAR0_MOVED + 0x3000, 8), 1u << 2);
	assert_true(msix_enabled(g->fn));
	/* save → load → save is byte-identical */
	again = state_dump(g);
	assert_string_equal(saved, again);
	/* and the pending message goes out at the unmask */
	mmio_write(g, BAR0_MOVED + 0x2000 + 16 * 2 + 12, 0, 4);
	assert_int_equal(hv_mock_irqfd_count(g->hv), 2);
	g->root = pci_root_destroy(g->root);
	hv_destroy(g->hv);
	free(g);
}

/* @saved with @key of the top object (or of msix.vectors[0] when @vector) set to @v (NULL:
 * removed), loaded: must fail naming @want. */
static void expect_refused(const char *saved, bool vector, const char *key, json_t *v,
			   const char *want)
{
	json_t *o = json_loads(saved, 0, NULL), *target = o;
	_cleanup_free_ char *text = NULL;
	char err[256];

	assert_non_null(o);
	if (vector)
		target = json_array_get(json_object_get(json_object_get(o, "msix"), "vectors"), 0);
	if (v)
		json_object_set_new(target, key, v);
	else
		json_object_del(target, key);
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	assert_null(state_load(text, err, sizeof(err)));
	if (!strstr(err, want))
		fail_msg("error '%s' lacks '%s'", err, want);
}

static void test_state_refused(void **state)
{
	struct harness *h = *state;
	_cleanup_free_ char *saved = state_dump(h);
	uint8_t cfg[PCI_CFG_LEGACY];
	char hex[2 * PCI_CFG_LEGACY + 1];
	json_t *o = json_loads(saved, 0, NULL);

	expect_refused(saved, false, "slot", json_integer(SLOT + 1), "slot");
	expect_refused(saved, false, "slot", json_integer(99), "slot");
	expect_refused(saved, false, "slot", NULL, "'slot': missing");
	expect_refused(saved, false, "config", NULL, "'config': missing");
	expect_refused(saved, false, "config", json_string("00ff"), "config");
	expect_refused(saved, false, "msix", NULL, "'msix': missing");
	expect_refused(saved, false, "msix", json_pack("{s:[]}", "vectors"), "vectors");
	expect_refused(saved, true, "addr", json_integer(5), "addr");
	expect_refused(saved, true, "masked", NULL, "vector 0: field 'masked': missing");

	/* another device: a read-only byte (the device id) differs */
	assert_int_equal(state_get_blob(o, "config", cfg, sizeof(cfg), hex, sizeof(hex)), 0);
	cfg[PCI_DEVICE_ID] ^= 1;
	for (unsigned i = 0; i < sizeof(cfg); i++)
		snprintf(hex + 2 * i, 3, "%02x", cfg[i]);
	json_decref(o);
	expect_refused(saved, false, "config", json_string(hex), "read-only byte 0x02");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_capability, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_function_mask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_vector_and_pba, setup, teardown),
		cmocka_unit_test(test_init_errors),
		cmocka_unit_test_setup_teardown(test_routed_delivery, setup_routed, teardown),
		cmocka_unit_test_setup_teardown(test_routed_fallback, setup_routed, teardown),
		cmocka_unit_test_setup_teardown(test_state_round_trip, setup_routed, teardown),
		cmocka_unit_test_setup_teardown(test_state_refused, setup_routed, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
