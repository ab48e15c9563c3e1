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
	bool hold;	/* queue 0's work pops one element and keeps it */
	unsigned held;	/* elements kept */
	bool hide_held; /* held() says 0 (a device that forgets to declare) */
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
	if (f->hold && q == 0) {
		if (!f->held && virtio_pci_pop(f->vp, q, &f->elem) > 0)
			f->held = 1;
		return;
	}
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
	((struct fake *)opaque)->held = 0;
}

static unsigned fake_held(void *opaque, unsigned q)
{
	struct fake *f = opaque;

	return q == 0 && !f->hide_held ? f->held : 0;
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
	.held = fake_held,
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

/* ---- snapshot state (virtio_pci_save/load) ---- */

static char *save_state(struct fake *f)
{
	json_t *o = json_object();
	char err[200] = "", *s;

	assert_int_equal(virtio_pci_save(f->vp, o, err, sizeof(err)), 0);
	s = vh_dump(o);
	json_decref(o);
	return s;
}

/* A restore target: a new machine with @h's RAM and a fresh fake device on it. */
struct restored {
	struct vh *h;
	struct fake f;
};

static void restored_free(struct restored *r)
{
	r->f.vp = virtio_pci_destroy(r->f.vp);
	vh_destroy(r->h);
	free(r);
}

/* Loads @o (consumed) into a new device; NULL with @err set when refused. */
static struct restored *restore_obj(const struct vh *h, json_t *o, char *err, size_t errlen)
{
	struct restored *r = calloc(1, sizeof(*r));
	int ret;

	assert_non_null(r);
	r->h = vh_clone(h, false);
	assert_int_equal(
		virtio_pci_create(r->h->root, &r->h->mem, NULL, &fake_ops, &r->f, &r->f.vp), 0);
	err[0] = 0;
	ret = virtio_pci_load(r->f.vp, o, err, errlen);
	json_decref(o);
	if (ret < 0) {
		assert_int_equal(ret, -EINVAL);
		assert_true(err[0] != 0);
		restored_free(r);
		return NULL;
	}
	vh_adopt(r->h, virtio_pci_function(r->f.vp));
	return r;
}

static struct restored *restore(const struct vh *h, const char *text)
{
	char err[256];
	struct restored *r = restore_obj(h, json_loads(text, 0, NULL), err, sizeof(err));

	_cleanup_free_ char *again = NULL;

	if (!r)
		fail_msg("refused: %s", err);
	/* save → load → save is byte-identical */
	again = save_state(&r->f);
	assert_string_equal(text, again);
	return r;
}

/* Makes a 64-byte writable buffer available as head @i on queue 0. */
static void offer(struct vh *h, unsigned i)
{
	vh_desc(h, 0, i, BUF + 0x100 * i, 64, VIRTQ_DESC_F_WRITE, 0);
	vh_avail(h, 0, QSIZE, (uint16_t)i);
}

static void bring_up(struct fx *x, uint64_t features)
{
	struct vh *h = x->h;

	assert_true(vh_negotiate(h, VH_VERSION_1 | features) & VIRTIO_STATUS_FEATURES_OK);
	vh_setup_queue(h, 0, QSIZE);
	vh_setup_queue(h, 1, QSIZE / 2);
	vh_driver_ok(h);
	for (unsigned i = 0; i < 3; i++)
		offer(h, i);
	vh_notify(h, 0);
	virtio_pci_run_notify(x->f.vp, 0);
	assert_int_equal(vh_used_idx(h, 0), 3);
}

static void test_state_round_trip(void **state)
{
	struct fx *x = *state;
	struct vh *h = x->h;
	_cleanup_free_ char *saved = NULL;
	struct restored *r;

	bring_up(x, 1ULL << VIRTIO_F_EVENT_IDX);
	/* two more requests the device has not seen yet */
	offer(h, 3);
	offer(h, 4);
	virtio_pci_pause(x->f.vp);
	saved = save_state(&x->f);

	r = restore(h, saved);
	/* as the driver left it, activated with the negotiated features, paused */
	assert_int_equal(vh_status(r->h), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
						  VIRTIO_STATUS_FEATURES_OK |
						  VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(r->f.activates, 1);
	assert_int_equal(r->f.features, x->f.features);
	assert_int_equal(r->h->bar, h->bar);
	vh_wr(r->h, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
	assert_int_equal(vh_rd(r->h, VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE / 2);
	assert_int_equal(vh_rd(r->h, VIRTIO_PCI_COMMON_Q_AVAIL, 8), VH_AVAIL + VH_RING_STEP);

	/* nothing moves while paused; resume serves the next avail entries */
	virtio_pci_run_notify(r->f.vp, 0);
	assert_int_equal(vh_used_idx(r->h, 0), 3);
	r->h->nr_msis = 0;
	virtio_pci_resume(r->f.vp);
	virtio_pci_run_notify(r->f.vp, 0);
	assert_int_equal(vh_used_idx(r->h, 0), 5);
	assert_int_equal(vh_get32(r->h, VH_USED + 4 + 8 * 3), 3); /* used ring: heads 3, 4 */
	assert_int_equal(vh_get32(r->h, VH_USED + 4 + 8 * 4), 4);
	assert_int_equal(vh_used_len(r->h, 0, 4, QSIZE), 64);
	/* and the next ones after them */
	offer(r->h, 5);
	vh_notify(r->h, 0);
	virtio_pci_run_notify(r->f.vp, 0);
	assert_int_equal(vh_used_idx(r->h, 0), 6);
	assert_int_equal(vh_get32(r->h, VH_USED + 4 + 8 * 5), 5);
	restored_free(r);
}

static void test_state_held_replayed(void **state)
{
	struct fx *x = *state;
	struct vh *h = x->h;
	_cleanup_free_ char *saved = NULL;
	struct restored *r;
	json_t *o = json_object();
	char err[200];

	bring_up(x, 0);
	/* the device pops head 3 and keeps it across the pause */
	x->f.hold = true;
	offer(h, 3);
	vh_notify(h, 0);
	virtio_pci_run_notify(x->f.vp, 0);
	assert_int_equal(x->f.held, 1);
	virtio_pci_pause(x->f.vp);
	/* undeclared, it would be lost: refused */
	x->f.hide_held = true;
	assert_int_equal(virtio_pci_save(x->f.vp, o, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "in flight"));
	json_decref(o);
	x->f.hide_held = false;
	saved = save_state(&x->f);

	/* the restored device pops head 3 again and completes it */
	r = restore(h, saved);
	virtio_pci_resume(r->f.vp);
	virtio_pci_run_notify(r->f.vp, 0);
	assert_int_equal(vh_used_idx(r->h, 0), 4);
	assert_int_equal(vh_get32(r->h, VH_USED + 4 + 8 * 3), 3);
	restored_free(r);

	/* the original completes it itself after resume */
	virtio_pci_resume(x->f.vp);
	assert_int_equal(virtio_pci_push(x->f.vp, 0, &x->f.elem, 64), 0);
	assert_int_equal(vh_used_idx(h, 0), 4);
}

/* @saved edited at @path/@key, loaded: refused with @want in the error. */
static void expect_refused(struct vh *h, const char *saved, const char *path, const char *key,
			   json_t *v, const char *want)
{
	char err[256];
	struct restored *r = restore_obj(h, vh_edit(saved, path, key, v), err, sizeof(err));

	if (r) {
		restored_free(r);
		fail_msg("'%s/%s' accepted", path, key);
	}
	if (!strstr(err, want))
		fail_msg("error '%s' lacks '%s'", err, want);
}

static void test_state_refused(void **state)
{
	struct fx *x = *state;
	struct vh *h = x->h;
	_cleanup_free_ char *saved = NULL;
	struct restored *r;
	char err[200];

	bring_up(x, 0);
	virtio_pci_pause(x->f.vp);
	saved = save_state(&x->f);

	/* rings: outside RAM, misaligned, size not a power of two or above the maximum */
	expect_refused(h, saved, "queues/0", "desc", json_string("0x100000"), "queue 0: fields");
	expect_refused(h, saved, "queues/1", "used", json_string("0xfffffffffffff000"),
		       "queue 1: fields 'size', 'desc'");
	expect_refused(h, saved, "queues/0", "avail", json_string("0x2001"), "rejected");
	expect_refused(h, saved, "queues/0", "size", json_integer(12), "ring of 12 entries");
	expect_refused(h, saved, "queues/0", "size", json_integer(2 * QSIZE), "rejected");
	/* more in flight than the ring holds */
	expect_refused(h, saved, "queues/0", "last_avail_idx", json_integer(3 + QSIZE + 1),
		       "last_avail_idx");
	/* fields missing or of the wrong type */
	expect_refused(h, saved, "queues/1", "used_idx", NULL,
		       "queue 1: field 'used_idx': missing");
	expect_refused(h, saved, "", "status", NULL, "field 'status': missing");
	expect_refused(h, saved, "", "status", json_integer(256), "field 'status'");
	expect_refused(h, saved, "", "queues", json_array(), "field 'queues': 0 queues");
	expect_refused(h, saved, "", "pci", NULL, "field 'pci': missing");
	expect_refused(h, saved, "queues/0", "enabled", json_string("yes"), "'enabled'");
	/* not this device, or not a state a driver can reach */
	expect_refused(h, saved, "", "device_features", json_string("0x1"), "device_features");
	expect_refused(h, saved, "", "status", json_integer(VIRTIO_STATUS_DRIVER_OK), "DRIVER_OK");
	expect_refused(h, saved, "", "driver_features", json_string("0x100000010"),
		       "driver_features");
	expect_refused(h, saved, "", "msix_config", json_integer(3), "msix_config");
	expect_refused(h, saved, "queues/1", "msix_vector", json_integer(7), "msix_vector");
	expect_refused(h, saved, "queues/0", "enabled", json_false(), "'ready'");
	expect_refused(h, saved, "queues/1", "broken", json_true(), "broken");
	expect_refused(h, saved, "pci", "slot", json_integer(pci_function_slot(h->fn) + 1),
		       "pci: field 'slot'");
	assert_null(restore_obj(h, json_array(), err, sizeof(err)));

	/* last_avail_idx far ahead of the avail ring in guest memory is loaded (the ring is not
	 * read): the first pop finds the driver "broke" the queue and the device needs reset */
	json_t *o = vh_edit(saved, "queues/0", "last_avail_idx", json_integer(1000));
	json_object_set_new(json_array_get(json_object_get(o, "queues"), 0), "used_idx",
			    json_integer(1000));
	json_object_set_new(json_array_get(json_object_get(o, "queues"), 0), "signalled_used",
			    json_integer(1000));
	r = restore_obj(h, o, err, sizeof(err));
	assert_non_null(r);
	virtio_pci_resume(r->f.vp);
	virtio_pci_run_notify(r->f.vp, 0);
	assert_true(vh_status(r->h) & VIRTIO_STATUS_NEEDS_RESET);
	restored_free(r);

	/* the untouched state still loads */
	r = restore(h, saved);
	restored_free(r);
}

/* A device that was never driven (or was reset) round-trips too. */
static void test_state_fresh(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *saved = save_state(&x->f);
	struct restored *r = restore(x->h, saved);

	assert_int_equal(r->f.activates, 0);
	assert_int_equal(vh_status(r->h), 0);
	/* a driver can bring it up as usual */
	assert_true(vh_negotiate(r->h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	restored_free(r);
}

/* Restored with a loop that has ioeventfds: they are back at the BAR as the guest moved it. */
static void test_state_ioeventfds(void **state)
{
	struct vh *h = vh_create(true), *g;
	struct fake f = { 0 }, f2 = { 0 };
	_cleanup_free_ char *saved = NULL;
	struct hv *hv, *hv2;
	char err[256];
	uint64_t moved;
	json_t *o;

	(void)state;
	assert_int_equal(hv_create(&hv), 0);
	assert_int_equal(hv_create(&hv2), 0);
	h->loop.ioeventfd = mock_ioeventfd;
	h->loop.ioeventfd_ctx = hv;
	assert_int_equal(virtio_pci_create(h->root, &h->mem, &h->loop, &fake_ops, &f, &f.vp), 0);
	vh_attach(h, virtio_pci_function(f.vp), 3);
	moved = h->bar + 0x100000;
	vh_cfg_write(h, PCI_BAR0, (uint32_t)moved, 4);
	vh_cfg_write(h, PCI_BAR0 + 4, (uint32_t)(moved >> 32), 4);
	h->bar = moved;
	assert_true(vh_negotiate(h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	vh_setup_queue(h, 0, QSIZE);
	vh_driver_ok(h);
	virtio_pci_pause(f.vp);
	saved = save_state(&f);

	g = vh_clone(h, true);
	g->loop.ioeventfd = mock_ioeventfd;
	g->loop.ioeventfd_ctx = hv2;
	assert_int_equal(virtio_pci_create(g->root, &g->mem, &g->loop, &fake_ops, &f2, &f2.vp), 0);
	o = json_loads(saved, 0, NULL);
	assert_int_equal(virtio_pci_load(f2.vp, o, err, sizeof(err)), 0);
	json_decref(o);
	assert_int_equal(hv_mock_ioeventfd_count(hv2), 2);
	assert_ioev(hv2, moved, 0);
	assert_ioev(hv2, moved, 1);
	vh_adopt(g, virtio_pci_function(f2.vp));
	assert_int_equal(g->bar, moved);
	/* a device reset takes them away as usual */
	vh_wr(g, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_int_equal(hv_mock_ioeventfd_count(hv2), 0);

	f2.vp = virtio_pci_destroy(f2.vp);
	f.vp = virtio_pci_destroy(f.vp);
	vh_destroy(g);
	vh_destroy(h);
	hv_destroy(hv2);
	hv_destroy(hv);
}

/* A device that needs reset, with a broken queue, round-trips and still needs reset. */
static void test_state_needs_reset(void **state)
{
	struct fx *x = *state;
	struct vh *h = x->h;
	_cleanup_free_ char *saved = NULL;
	struct restored *r;

	bring_up(x, 0);
	/* a loop 5 -> 6 -> 5 breaks queue 0 */
	vh_desc(h, 0, 5, BUF, 64, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 6);
	vh_desc(h, 0, 6, BUF, 64, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 5);
	vh_avail(h, 0, QSIZE, 5);
	vh_notify(h, 0);
	virtio_pci_run_notify(x->f.vp, 0);
	assert_true(vh_status(h) & VIRTIO_STATUS_NEEDS_RESET);
	virtio_pci_pause(x->f.vp);
	saved = save_state(&x->f);
	assert_non_null(strstr(saved, "\"broken\":true"));
	r = restore(h, saved);
	virtio_pci_resume(r->f.vp);
	virtio_pci_run_notify(r->f.vp, 0);
	assert_int_equal(vh_used_idx(r->h, 0), 3);
	assert_true(vh_status(r->h) & VIRTIO_STATUS_NEEDS_RESET);
	/* the driver's reset brings it back */
	assert_true(vh_negotiate(r->h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	restored_free(r);
}

/* Damaged states (one byte changed, anywhere) load or are refused, never crash (ASan). */
static void test_state_damaged(void **state)
{
	struct fx *x = *state;
	_cleanup_free_ char *saved = NULL;
	static const char subst[] = "0189afz\"{}[],:-tn ";
	unsigned seed = 7, refused = 0;
	char err[256];

	bring_up(x, 1ULL << VIRTIO_F_EVENT_IDX);
	virtio_pci_pause(x->f.vp);
	saved = save_state(&x->f);
	for (unsigned i = 0; i < 300; i++) {
		_cleanup_free_ char *text = strdup(saved);
		size_t len = strlen(text);
		json_t *o;
		struct restored *r;

		seed = seed * 1103515245u + 12345u;
		text[(seed >> 8) % len] = subst[(seed >> 20) % (sizeof(subst) - 1)];
		o = json_loads(text, 0, NULL);
		if (!o)
			continue;
		r = restore_obj(x->h, o, err, sizeof(err));
		if (!r) {
			refused++;
			continue;
		}
		virtio_pci_resume(r->f.vp);
		virtio_pci_run_notify(r->f.vp, 0);
		virtio_pci_run_notify(r->f.vp, 1);
		restored_free(r);
	}
	assert_true(refused > 0);
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
		cmocka_unit_test_setup_teardown(test_state_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_held_replayed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_fresh, setup, teardown),
		cmocka_unit_test(test_state_ioeventfds),
		cmocka_unit_test_setup_teardown(test_state_needs_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_damaged, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
