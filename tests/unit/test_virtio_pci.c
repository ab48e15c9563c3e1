/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The virtio-PCI transport (src/virtio/virtio_pci.c): identity and capabilities, feature
 * negotiation, the status state machine, queue setup, notifications and interrupts, and
 * NEEDS_RESET for a driver that breaks the rules, through BAR 0 as a guest drives it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "hv/hv.h"
#include "hv/mock.h"
#include "virtio_harness.h"

#define QSIZE 16
#define BUF   0x40000

/* A fake device: two queues; queue work completes every element with its writable length. */
struct fake {
	struct virtio_pci *vp;
	unsigned notifies, activates, resets;
	uint64_t features;
	struct virtq_elem elem;
};

static void fake_config_read(void *opaque, uint32_t offset, uint8_t *data, unsigned len)
{
	for (unsigned i = 0; i < len; i++)
		data[i] = (uint8_t)(0xa0 + offset + i);
}

static void fake_queue_notify(void *opaque, unsigned q)
{
	struct fake *f = opaque;

	f->notifies++;
	while (virtio_pci_pop(f->vp, q, &f->elem) > 0)
		assert_int_equal(virtio_pci_push(f->vp, q, &f->elem, f->elem.in_len), 0);
	virtio_pci_notify(f->vp, q);
}

static void fake_activate(void *opaque, uint64_t features)
{
	struct fake *f = opaque;

	f->activates++;
	f->features = features;
}

static void fake_reset(void *opaque)
{
	((struct fake *)opaque)->resets++;
}

static const struct virtio_dev_ops fake_ops = {
	.name = "virtio-fake",
	.device_id = VIRTIO_ID_RNG,
	.class_code = 0xff0000,
	.features = 1ULL << 3, /* one device-specific feature */
	.num_queues = 2,
	.max_queue_size = QSIZE,
	.config_size = 8,
	.config_read = fake_config_read,
	.queue_notify = fake_queue_notify,
	.activate = fake_activate,
	.reset = fake_reset,
};

struct fx {
	struct vh *h;
	struct fake f;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	x->h = vh_create(false);
	assert_int_equal(
		virtio_pci_create(x->h->root, &x->h->mem, NULL, &fake_ops, &x->f, &x->f.vp), 0);
	vh_attach(x->h, virtio_pci_function(x->f.vp), 3);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;

	x->f.vp = virtio_pci_destroy(x->f.vp);
	vh_destroy(x->h);
	free(x);
	return 0;
}

static void test_identity(void **state)
{
	struct fx *x = *state;
	struct vh *h = x->h;
	unsigned seen = 0, cap = 0;

	assert_int_equal(vh_cfg_read(h, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(vh_cfg_read(h, PCI_DEVICE_ID, 2), 0x1044);
	assert_int_equal(vh_cfg_read(h, PCI_SUBSYSTEM_VID, 2), 0x1af4);
	assert_int_equal(vh_cfg_read(h, PCI_SUBSYSTEM_ID, 2), 0x1044);
	assert_int_equal(vh_cfg_read(h, PCI_REVISION_ID, 1), 1);
	assert_int_equal(vh_cfg_read(h, PCI_REVISION_ID, 4) >> 8, 0xff0000);
	/* BAR 0: 64-bit memory, not prefetchable */
	assert_int_equal(vh_cfg_read(h, PCI_BAR0, 4) & 0xf, PCI_BAR_MEM_TYPE_64);
	while ((cap = vh_find_cap(h, PCI_CAP_ID_VNDR, cap)) != 0) {
		unsigned type = vh_cfg_read(h, cap + 3, 1);

		assert_int_equal(vh_cfg_read(h, cap + 4, 1), 0); /* bar */
		seen |= 1u << type;
		if (type == VIRTIO_PCI_CAP_COMMON_CFG)
			assert_int_equal(vh_cfg_read(h, cap + 8, 4), VIRTIO_PCI_COMMON_OFF);
		if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
			assert_int_equal(vh_cfg_read(h, cap + 2, 1), 20);
			assert_int_equal(vh_cfg_read(h, cap + 8, 4), VIRTIO_PCI_NOTIFY_OFF);
			assert_int_equal(vh_cfg_read(h, cap + 16, 4), 4); /* multiplier */
		}
		if (type == VIRTIO_PCI_CAP_DEVICE_CFG)
			assert_int_equal(vh_cfg_read(h, cap + 12, 4), 8);
	}
	assert_int_equal(seen, 0x1e); /* types 1..4 */
	assert_int_not_equal(vh_find_cap(h, PCI_CAP_ID_MSIX, 0), 0);
	/* device config through the device's hook; past its end reads 0 */
	assert_int_equal(vh_rd(h, VIRTIO_PCI_DEVCFG_OFF + 2, 2), 0xa3a2);
	assert_int_equal(vh_rd(h, VIRTIO_PCI_DEVCFG_OFF + 8, 4), 0);
	assert_int_equal(vh_rd(h, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
}

static void test_features(void **state)
{
	struct fx *x = *state;
	struct vh *h = x->h;
	uint64_t offered;

	vh_wr(h, VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
	offered = vh_rd(h, VIRTIO_PCI_COMMON_DF, 4);
	vh_wr(h, VIRTIO_PCI_COMMON_DFSELECT, 1, 4);
	offered |= vh_rd(h, VIRTIO_PCI_COMMON_DF, 4) << 32;
	vh_wr(h, VIRTIO_PCI_COMMON_DFSELECT, 2, 4);
	assert_int_equal(vh_rd(h, VIRTIO_PCI_COMMON_DF, 4), 0);
	assert_int_equal(offered, VH_VERSION_1 | (1ULL << VIRTIO_F_EVENT_IDX) |
					  (1ULL << VIRTIO_F_INDIRECT_DESC) | (1ULL << 3));

	/* VERSION_1 is required */
	assert_false(vh_negotiate(h, 1ULL << 3) & VIRTIO_STATUS_FEATURES_OK);
	/* a bit never offered: refused, also ACCESS_PLATFORM */
	assert_false(vh_negotiate(h, VH_VERSION_1 | (1ULL << 5)) & VIRTIO_STATUS_FEATURES_OK);
	assert_false(vh_negotiate(h, VH_VERSION_1 | (1ULL << VIRTIO_F_ACCESS_PLATFORM)) &
		     VIRTIO_STATUS_FEATURES_OK);
	/* any subset with VERSION_1 */
	assert_true(vh_negotiate(h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	assert_true(vh_negotiate(h, offered) & VIRTIO_STATUS_FEATURES_OK);
	/* fixed once accepted */
	vh_wr(h, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	vh_wr(h, VIRTIO_PCI_COMMON_GF, 0, 4);
	assert_int_equal(vh_rd(h, VIRTIO_PCI_COMMON_GF, 4), (uint32_t)offered);
	vh_setup_queue(h, 0, QSIZE);
	vh_driver_ok(h);
	assert_int_equal(x->f.activates, 1);
	assert_int_equal(x->f.features, offered);
}

static void test_status_machine(void **state)
{
	struct fx *x = *state;
	struct vh *h = x->h;
	unsigned resets = x->f.resets;

	/* DRIVER_OK without FEATURES_OK is not taken */
	vh_wr(h, VIRTIO_PCI_COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER_OK, 1);
	assert_int_equal(vh_status(h), VIRTIO_STATUS_ACKNOWLEDGE);
	/* the driver neither sets NEEDS_RESET nor clears a bit */
	vh_wr(h, VIRTIO_PCI_COMMON_STATUS, VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_DRIVER, 1);
	assert_int_equal(vh_status(h), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	/* 0 resets: registers back to their defaults, the device told */
	vh_wr(h, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_SIZE, 4, 2);
	vh_wr(h, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_int_equal(vh_status(h), 0);
	assert_int_equal(x->f.resets, resets + 1);
	assert_int_equal(vh_rd(h, VIRTIO_PCI_COMMON_Q_SELECT, 2), 0);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
	assert_int_equal(vh_rd(h, VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE);
	assert_int_equal(vh_rd(h, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
}

static void test_queue_registers(void **state)
{
	struct fx *x = *state;
	struct vh *h = x->h;

	vh_negotiate(h, VH_VERSION_1);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
	assert_int_equal(vh_rd(h, VIRTIO_PCI_COMMON_Q_NOFF, 2), 1);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_DESC, 0x123456789abcdef0ULL, 8);
	assert_int_equal(vh_rd(h, VIRTIO_PCI_COMMON_Q_DESC, 4), 0x9abcdef0);
	assert_int_equal(vh_rd(h, VIRTIO_PCI_COMMON_Q_DESC + 4, 4), 0x12345678);
	/* a vector the table lacks reads back as NO_VECTOR */
	vh_wr(h, VIRTIO_PCI_COMMON_Q_MSIX, 3, 2);
	assert_int_equal(vh_rd(h, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_MSIX, 2, 2);
	assert_int_equal(vh_rd(h, VIRTIO_PCI_COMMON_Q_MSIX, 2), 2);
	/* no queue 2: size 0, writes dropped */
	vh_wr(h, VIRTIO_PCI_COMMON_Q_SELECT, 2, 2);
	assert_int_equal(vh_rd(h, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	assert_int_equal(vh_rd(h, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_int_equal(vh_status(h) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

/* One writable 64-byte buffer on queue 0, notified; returns the used length. */
static uint32_t one_request(struct fx *x)
{
	struct vh *h = x->h;
	uint16_t used = vh_used_idx(h, 0);

	vh_desc(h, 0, 0, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(h, 0, QSIZE, 0);
	vh_notify(h, 0);
	virtio_pci_run_notify(x->f.vp, 0);
	assert_int_equal(vh_used_idx(h, 0), (uint16_t)(used + 1));
	return vh_used_len(h, 0, used, QSIZE);
}

static void test_request_and_interrupt(void **state)
{
	struct fx *x = *state;
	struct vh *h = x->h;

	assert_true(vh_negotiate(h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_setup_queue(h, 0, QSIZE);
	vh_driver_ok(h);
	assert_int_equal(vh_status(h) & VIRTIO_STATUS_DRIVER_OK, VIRTIO_STATUS_DRIVER_OK);
	h->nr_msis = 0;
	assert_int_equal(one_request(x), 64);
	assert_int_equal(h->nr_msis, 1);
	assert_int_equal(h->msi_data[0], 1); /* queue 0's vector */
	assert_int_equal(vh_rd(h, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_ISR_QUEUE);
	assert_int_equal(vh_rd(h, VIRTIO_PCI_ISR_OFF, 1), 0); /* read clears */
}

static void test_bad_ring_needs_reset(void **state)
{
	struct fx *x = *state;
	struct vh *h = x->h;

	assert_true(vh_negotiate(h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_wr(h, VIRTIO_PCI_COMMON_MSIX, 0, 2);
	h->nr_msis = 0;
	vh_wr(h, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_SIZE, 3, 2); /* not a power of two */
	vh_wr(h, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	assert_true(vh_status(h) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(h->nr_msis, 1); /* config change, vector 0 */
	assert_int_equal(h->msi_data[0], 0);
	assert_int_equal(vh_rd(h, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_ISR_CONFIG);
	/* DRIVER_OK is not taken in that state */
	vh_driver_ok(h);
	assert_false(vh_status(h) & VIRTIO_STATUS_DRIVER_OK);

	/* a ring outside RAM is refused the same way */
	vh_negotiate(h, VH_VERSION_1);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_SIZE, QSIZE, 2);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_DESC, VH_RAM_SIZE, 8);
	vh_wr(h, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	assert_true(vh_status(h) & VIRTIO_STATUS_NEEDS_RESET);

	/* reset, then everything works again */
	assert_true(vh_negotiate(h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_setup_queue(h, 0, QSIZE);
	vh_driver_ok(h);
	assert_int_equal(vh_status(h) & VIRTIO_STATUS_NEEDS_RESET, 0);
	assert_int_equal(one_request(x), 64);
}

static void test_bad_chain_needs_reset(void **state)
{
	struct fx *x = *state;
	struct vh *h = x->h;

	assert_true(vh_negotiate(h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_setup_queue(h, 0, QSIZE);
	vh_driver_ok(h);
	/* a loop 0 -> 1 -> 0 */
	vh_desc(h, 0, 0, BUF, 64, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	vh_desc(h, 0, 1, BUF, 64, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
	vh_avail(h, 0, QSIZE, 0);
	h->nr_msis = 0;
	vh_notify(h, 0);
	virtio_pci_run_notify(x->f.vp, 0);
	assert_true(vh_status(h) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(vh_used_idx(h, 0), 0);
	assert_int_equal(h->nr_msis, 1);
	/* further notifies do nothing */
	vh_notify(h, 0);
	virtio_pci_run_notify(x->f.vp, 0);
	assert_int_equal(vh_used_idx(h, 0), 0);

	memset(h->ram + VH_AVAIL, 0, 0x100);
	memset(h->ram + VH_USED, 0, 0x100);
	h->avail_idx[0] = 0;
	assert_true(vh_negotiate(h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_setup_queue(h, 0, QSIZE);
	vh_driver_ok(h);
	assert_int_equal(one_request(x), 64);
}

static void test_notify_before_driver_ok(void **state)
{
	struct fx *x = *state;
	struct vh *h = x->h;

	assert_true(vh_negotiate(h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_setup_queue(h, 0, QSIZE);
	/* ignored (Linux's virtio-balloon does it), and served once DRIVER_OK comes */
	vh_notify(h, 0);
	assert_int_equal(vh_status(h) & VIRTIO_STATUS_NEEDS_RESET, 0);
	virtio_pci_run_notify(x->f.vp, 0);
	assert_int_equal(x->f.notifies, 0);
	vh_driver_ok(h);
	virtio_pci_run_notify(x->f.vp, 0);
	assert_int_equal(x->f.notifies, 1);
	/* a queue enabled before FEATURES_OK is a driver error too */
	vh_wr(h, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	vh_wr(h, VIRTIO_PCI_COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	vh_setup_queue(h, 0, QSIZE);
	assert_true(vh_status(h) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_pause_defers(void **state)
{
	struct fx *x = *state;
	struct vh *h = x->h;

	assert_true(vh_negotiate(h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_setup_queue(h, 0, QSIZE);
	vh_driver_ok(h);
	virtio_pci_pause(x->f.vp);
	vh_desc(h, 0, 0, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(h, 0, QSIZE, 0);
	vh_notify(h, 0);
	virtio_pci_run_notify(x->f.vp, 0);
	assert_int_equal(vh_used_idx(h, 0), 0);
	virtio_pci_resume(x->f.vp);
	virtio_pci_run_notify(x->f.vp, 0);
	assert_int_equal(vh_used_idx(h, 0), 1);
}

static int mock_ioeventfd(void *ctx, int fd, uint64_t addr, unsigned len, bool assign)
{
	return hv_ioeventfd(ctx, fd, addr, len, assign);
}

/* Queue @q's ioeventfd is at @bar's notify address, 2 bytes wide. */
static void assert_ioev(struct hv *hv, uint64_t bar, unsigned q)
{
	unsigned len;
	int fd;

	assert_true(hv_mock_ioeventfd(hv, bar + VIRTIO_PCI_NOTIFY_OFF + 4 * q, &fd, &len));
	assert_true(fd >= 0);
	assert_int_equal(len, 2);
}

static void test_ioeventfd(void **state)
{
	struct vh *h = vh_create(true);
	struct fake f = { 0 };
	uint64_t moved;
	struct hv *hv;

	(void)state;
	assert_int_equal(hv_create(&hv), 0);
	h->loop.ioeventfd = mock_ioeventfd;
	h->loop.ioeventfd_ctx = hv;
	assert_int_equal(virtio_pci_create(h->root, &h->mem, &h->loop, &fake_ops, &f, &f.vp), 0);
	vh_attach(h, virtio_pci_function(f.vp), 3);
	/* not before DRIVER_OK: an early notify must still reach the handler (NEEDS_RESET) */
	assert_true(vh_negotiate(h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_setup_queue(h, 0, QSIZE);
	assert_int_equal(hv_mock_ioeventfd_count(hv), 0);
	vh_driver_ok(h);
	assert_int_equal(hv_mock_ioeventfd_count(hv), 2);
	assert_ioev(hv, h->bar, 0);
	assert_ioev(hv, h->bar, 1);

	/* the guest moves the BAR: the ioeventfds follow */
	moved = h->bar + 0x100000;
	vh_cfg_write(h, PCI_BAR0, (uint32_t)moved, 4);
	vh_cfg_write(h, PCI_BAR0 + 4, (uint32_t)(moved >> 32), 4);
	assert_int_equal(hv_mock_ioeventfd_count(hv), 2);
	assert_ioev(hv, moved, 0);
	assert_ioev(hv, moved, 1);
	/* memory decoding off: none; on again: back */
	vh_cfg_write(h, PCI_COMMAND, PCI_COMMAND_MASTER, 2);
	assert_int_equal(hv_mock_ioeventfd_count(hv), 0);
	vh_cfg_write(h, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	assert_ioev(hv, moved, 1);
	h->bar = moved;

	/* a device reset removes them, DRIVER_OK brings them back, destroy removes them */
	vh_wr(h, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_int_equal(hv_mock_ioeventfd_count(hv), 0);
	assert_true(vh_negotiate(h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_driver_ok(h);
	assert_int_equal(hv_mock_ioeventfd_count(hv), 2);
	f.vp = virtio_pci_destroy(f.vp);
	assert_int_equal(hv_mock_ioeventfd_count(hv), 0);
	vh_destroy(h);
	hv_destroy(hv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_machine, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_and_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_ring_needs_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_chain_needs_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_before_driver_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_defers, setup, teardown),
		cmocka_unit_test(test_ioeventfd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
