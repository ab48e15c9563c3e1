/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The small legacy devices (src/devices/legacy/: rtc.c, i8042.c, acpi_pm.c, debug_port.c) and
 * the device table (src/devices/devices.c), driven through a real port bus.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdio.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "bus/bus.h"
#include "config/config.h"
#include "devices/device.h"
#include "devices/legacy/legacy.h"
#include "mem/guest_mem.h"
#include "pci/pci.h"
#include "util/util.h"

#define RTC_INDEX 0x70
#define RTC_DATA  0x71
#define KBD_DATA  0x60
#define KBD_CMD	  0x64
#define PM_SLEEP  0x600
#define PM_STATUS 0x601
#define PM_RESET  0x604
#define POST_PORT 0x80

#define RAM_SIZE (1ULL << 20)

struct harness {
	struct bus pio, mmio;
	struct irq_sink irq;
	struct pci_root *pci;
	struct guest_mem mem;
	void *ram;
	struct vm_config cfg;
	struct dev_ctx ctx;
	unsigned poweroffs, resets;
};

static void fake_request(void *opaque, enum dev_request req)
{
	struct harness *h = opaque;

	if (req == DEV_REQUEST_POWEROFF)
		h->poweroffs++;
	else
		h->resets++;
}

static int setup(void **state)
{
	struct harness *h = calloc(1, sizeof(*h));

	assert_non_null(h);
	static const struct pci_layout layout = {
		.ecam_base = 0xe0000000,
		.ecam_size = 0x10000000,
		.mem32_base = 0xc0000000,
		.mem32_size = 0x20000000,
		.mem64_base = 0x100000000,
		.mem64_size = 1ULL << 36,
	};

	assert_non_null(h);
	bus_init(&h->pio, "pio");
	bus_init(&h->mmio, "mmio");
	assert_int_equal(pci_root_create(&h->pio, &h->mmio, &h->irq, &layout, &h->pci), 0);
	h->ram = calloc(1, RAM_SIZE);
	assert_non_null(h->ram);
	guest_mem_init(&h->mem);
	assert_int_equal(guest_mem_add_region(&h->mem, 0, RAM_SIZE, h->ram), 0);
	h->cfg.serial.mode = CONSOLE_NULL;
	h->cfg.console.mode = CONSOLE_NULL;
	h->cfg.memory.size = 512ULL << 20;
	h->ctx = (struct dev_ctx){ .pio = &h->pio,
				   .mmio = &h->mmio,
				   .irq = &h->irq,
				   .pci = h->pci,
				   .mem = &h->mem,
				   .cfg = &h->cfg,
				   .request = fake_request,
				   .request_opaque = h };
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	struct harness *h = *state;

	h->pci = pci_root_destroy(h->pci);
	free(h->ram);
	free(h);
	return 0;
}

static void outb(struct harness *h, uint16_t port, uint8_t v)
{
	assert_true(bus_access(&h->pio, port, true, &v, 1));
}

static uint8_t inb(struct harness *h, uint16_t port)
{
	uint8_t v = 0;

	assert_true(bus_access(&h->pio, port, false, &v, 1));
	return v;
}

static void *realize(struct harness *h, const struct dev_ops *ops)
{
	void *dev = NULL;

	assert_int_equal(ops->realize(&h->ctx, NULL, &dev), 0);
	assert_non_null(dev);
	return dev;
}

/* ---- RTC ---- */

static uint8_t cmos_read(struct harness *h, uint8_t index)
{
	outb(h, RTC_INDEX, index);
	return inb(h, RTC_DATA);
}

static unsigned from_bcd(uint8_t v)
{
	assert_true((v & 0x0f) < 10 && (v >> 4) < 10);
	return (v >> 4) * 10 + (v & 0x0f);
}

/* Reads the RTC's clock as a time_t, decoding per @binary and @h24. */
static time_t rtc_read_time(struct harness *h, bool binary, bool h24)
{
	struct tm tm = { 0 };
	uint8_t hour;
	unsigned century;

#define DEC(v) (binary ? (unsigned)(v) : from_bcd(v))
	tm.tm_sec = (int)DEC(cmos_read(h, 0x00));
	tm.tm_min = (int)DEC(cmos_read(h, 0x02));
	hour = cmos_read(h, 0x04);
	if (h24) {
		tm.tm_hour = (int)DEC(hour);
	} else {
		unsigned h12 = DEC(hour & 0x7f);

		assert_true(h12 >= 1 && h12 <= 12);
		tm.tm_hour = (int)(h12 % 12 + ((hour & 0x80) ? 12 : 0));
	}
	tm.tm_mday = (int)DEC(cmos_read(h, 0x07));
	tm.tm_mon = (int)DEC(cmos_read(h, 0x08)) - 1;
	century = DEC(cmos_read(h, 0x32));
	tm.tm_year = (int)(century * 100 + DEC(cmos_read(h, 0x09))) - 1900;
	assert_true(DEC(cmos_read(h, 0x06)) >= 1 && DEC(cmos_read(h, 0x06)) <= 7);
#undef DEC
	return timegm(&tm);
}

static void assert_close_to_now(time_t t)
{
	time_t now = time(NULL);

	assert_true(t <= now + 1 && t >= now - 2);
}

static void test_rtc_time(void **state)
{
	struct harness *h = *state;
	void *dev = realize(h, &rtc_ops);

	/* Power-on: 24 h, BCD; UIP never set; VRT set; no interrupt flags. */
	assert_int_equal(cmos_read(h, 0x0b), 0x02);
	assert_int_equal(cmos_read(h, 0x0a) & 0x80, 0);
	assert_int_equal(cmos_read(h, 0x0d), 0x80);
	assert_int_equal(cmos_read(h, 0x0c), 0);
	assert_close_to_now(rtc_read_time(h, false, true));

	outb(h, RTC_INDEX, 0x0b);
	outb(h, RTC_DATA, 0x06); /* binary, 24 h */
	assert_close_to_now(rtc_read_time(h, true, true));

	outb(h, RTC_INDEX, 0x0b);
	outb(h, RTC_DATA, 0x00); /* BCD, 12 h */
	assert_close_to_now(rtc_read_time(h, false, false));

	/* The guest cannot move the host's clock; the NMI mask bit of the index is ignored. */
	outb(h, RTC_INDEX, 0x80 | 0x09);
	outb(h, RTC_DATA, 0x00);
	outb(h, RTC_INDEX, 0x0b);
	outb(h, RTC_DATA, 0x02);
	assert_close_to_now(rtc_read_time(h, false, true));

	rtc_ops.unrealize(dev);
}

/* The RTC's own calendar arithmetic agrees with glibc's gmtime_r across leap years, century
 * rules, both sides of the epoch and far years. */
static void test_rtc_utc_matches_gmtime(void **state)
{
	static const int64_t points[] = {
		0,
		-1,
		86399,
		86400,
		951782400 /* 2000-02-29 */,
		951868800,
		4107542400 /* 2100-02-28 */,
		4107628800,
		1709164800 /* 2024-02-29 */,
		-2208988800 /* 1900-01-01 */,
		253402300799 /* 9999-12-31 23:59:59 */,
	};
	for (size_t i = 0; i < ARRAY_SIZE(points) + 20000; i++) {
		/* Then a spread from 1833 to 2400 in steps of ~330 days. */
		int64_t spread =
			(int64_t)(i - ARRAY_SIZE(points)) * 7919 * 3607 - (INT64_C(1) << 32);
		int64_t t = i < ARRAY_SIZE(points) ? points[i] : spread;
		time_t tt = (time_t)t;
		struct tm want, got;
		assert_non_null(gmtime_r(&tt, &want));
		rtc_utc(t, &got);
		assert_int_equal(got.tm_year, want.tm_year);
		assert_int_equal(got.tm_mon, want.tm_mon);
		assert_int_equal(got.tm_mday, want.tm_mday);
		assert_int_equal(got.tm_hour, want.tm_hour);
		assert_int_equal(got.tm_min, want.tm_min);
		assert_int_equal(got.tm_sec, want.tm_sec);
		assert_int_equal(got.tm_wday, want.tm_wday);
	}
}

static void test_rtc_cmos(void **state)
{
	struct harness *h = *state;
	void *dev = realize(h, &rtc_ops);

	outb(h, RTC_INDEX, 0x40);
	outb(h, RTC_DATA, 0xa5);
	assert_int_equal(cmos_read(h, 0x40), 0xa5);
	assert_int_equal(inb(h, RTC_INDEX), 0xff); /* write-only */
	/* Register A keeps what is written, but UIP reads 0. */
	outb(h, RTC_INDEX, 0x0a);
	outb(h, RTC_DATA, 0xa6);
	assert_int_equal(cmos_read(h, 0x0a), 0x26);
	/* Base memory 640 KiB; extended memory capped at 63 MiB. */
	assert_int_equal(cmos_read(h, 0x15) | cmos_read(h, 0x16) << 8, 640);
	assert_int_equal(cmos_read(h, 0x17) | cmos_read(h, 0x18) << 8, 63 * 1024);
	assert_int_equal(cmos_read(h, 0x30) | cmos_read(h, 0x31) << 8, 63 * 1024);

	rtc_ops.reset(dev);
	assert_int_equal(cmos_read(h, 0x40), 0xa5); /* battery-backed */
	assert_int_equal(cmos_read(h, 0x0b), 0x02);
	rtc_ops.unrealize(dev);
}

/* ---- i8042 ---- */

static void test_i8042(void **state)
{
	struct harness *h = *state;
	void *dev = realize(h, &i8042_ops);

	assert_int_equal(inb(h, KBD_CMD) & 0x03, 0); /* no data, input buffer free */

	outb(h, KBD_CMD, 0x20); /* read the configuration byte */
	assert_int_equal(inb(h, KBD_CMD) & 0x01, 0x01);
	assert_int_equal(inb(h, KBD_DATA), 0x45);
	assert_int_equal(inb(h, KBD_CMD) & 0x01, 0);

	outb(h, KBD_CMD, 0x60); /* write it */
	outb(h, KBD_DATA, 0x47);
	outb(h, KBD_CMD, 0x20);
	assert_int_equal(inb(h, KBD_DATA), 0x47);

	outb(h, KBD_CMD, 0xaa);
	assert_int_equal(inb(h, KBD_DATA), 0x55);
	outb(h, KBD_CMD, 0xa7); /* accepted, ignored */
	outb(h, KBD_CMD, 0xd4);
	outb(h, KBD_DATA, 0xff); /* a keyboard/mouse command: nobody answers */
	assert_int_equal(inb(h, KBD_CMD) & 0x01, 0);
	outb(h, KBD_CMD, 0xff); /* pulse nothing */
	assert_int_equal(h->resets, 0);

	outb(h, KBD_CMD, 0xfe);
	assert_int_equal(h->resets, 1);

	outb(h, KBD_CMD, 0xd1); /* output port write pulling the reset line */
	outb(h, KBD_DATA, 0xfe);
	assert_int_equal(h->resets, 2);
	assert_int_equal(h->poweroffs, 0);

	i8042_ops.reset(dev);
	outb(h, KBD_CMD, 0x20);
	assert_int_equal(inb(h, KBD_DATA), 0x45);
	i8042_ops.unrealize(dev);
}

/* ---- ACPI PM ---- */

static void test_acpi_pm(void **state)
{
	struct harness *h = *state;
	void *dev = realize(h, &acpi_pm_ops);

	assert_int_equal(inb(h, PM_STATUS), 0);
	assert_int_equal(inb(h, PM_SLEEP), 0);

	outb(h, PM_SLEEP, 5 << 2);	  /* S5 without SLP_EN */
	outb(h, PM_SLEEP, 0x20 | 3 << 2); /* S3: not supported */
	outb(h, PM_SLEEP, 0x20 | 1 << 2); /* S1 */
	outb(h, PM_SLEEP, 0x20);	  /* S0 */
	assert_int_equal(h->poweroffs, 0);
	outb(h, PM_SLEEP, 0x20 | 5 << 2);
	assert_int_equal(h->poweroffs, 1);

	outb(h, PM_RESET, 0x02);
	outb(h, PM_STATUS, 0x01);
	assert_int_equal(h->resets, 0);
	outb(h, PM_RESET, 0x01);
	assert_int_equal(h->resets, 1);
	assert_int_equal(h->poweroffs, 1);

	/* The whole 0x600-0x60f range is claimed. */
	assert_int_equal(inb(h, 0x60f), 0);
	acpi_pm_ops.unrealize(dev);
	uint8_t v;
	assert_false(bus_access(&h->pio, PM_SLEEP, false, &v, 1));
}

/* ---- debug port ---- */

static void test_debug_port(void **state)
{
	struct harness *h = *state;
	struct debug_port_info info;
	void *dev = realize(h, &debug_port_ops);

	debug_port_get_info(dev, &info);
	assert_int_equal(info.writes, 0);

	outb(h, POST_PORT, 0x41);
	outb(h, POST_PORT, 0x7f);
	debug_port_get_info(dev, &info);
	assert_int_equal(info.writes, 2);
	assert_int_equal(info.first_code, 0x41);
	assert_int_equal(info.last_code, 0x7f);
	assert_true(info.last_ns >= info.first_ns);
	assert_true(info.first_ns < 10ULL * 1000000000ULL);
	assert_int_equal(inb(h, POST_PORT), 0x7f);
	debug_port_ops.unrealize(dev);
}

/* ---- the table ---- */

/* Devices that exist only when their option is given (--disk, --net, ...). */
static bool optional_device(const char *name)
{
	static const char *const optional[] = { "virtio-blk", "virtio-net", "virtio-vsock",
						"virtio-balloon", "virtio-pmem" };
	for (size_t i = 0; i < ARRAY_SIZE(optional); i++)
		if (strcmp(name, optional[i]) == 0)
			return true;
	return false;
}

static void test_dev_table(void **state)
{
	struct harness *h = *state;
	static const char *const expected[] = {
		"serial",     "rtc",	      "i8042",		"acpi-pm",
		"debug-port", "virtio-rng",   "virtio-console", "virtio-blk",
		"virtio-net", "virtio-vsock", "virtio-balloon", "virtio-pmem"
	};
	void *devs[16] = { 0 };
	char sock[64];
	unsigned pio_nr = h->pio.nr, mmio_nr = h->mmio.nr; /* the PCI root's own ranges */

	assert_int_equal(dev_table_size, ARRAY_SIZE(expected));
	assert_true(dev_table_size <= 16);
	/* Optional devices configured, so that every entry realizes something. */
	snprintf(sock, sizeof(sock), "/tmp/test_legacy.%d.vsock", (int)getpid());
	h->cfg.vsock = calloc(1, sizeof(*h->cfg.vsock));
	assert_non_null(h->cfg.vsock);
	h->cfg.vsock->cid = 3;
	h->cfg.vsock->socket = strdup(sock);
	for (unsigned i = 0; i < dev_table_size; i++) {
		assert_string_equal(dev_table[i]->name, expected[i]);
		/* All of them together on one bus: no overlapping ranges. */
		assert_int_equal(dev_table[i]->realize(&h->ctx, NULL, &devs[i]), 0);
		if (!optional_device(expected[i])) /* needs its option: not configured */
			assert_non_null(devs[i]);
	}
	assert_int_equal(cmos_read(h, 0x0d), 0x80);
	assert_int_equal(inb(h, 0x3f8 + 5) & 0x60, 0x60);
	for (unsigned i = dev_table_size; i-- > 0;) {
		if (devs[i] && dev_table[i]->reset)
			dev_table[i]->reset(devs[i]);
		dev_table[i]->unrealize(devs[i]);
	}
	assert_int_equal(access(sock, F_OK), -1); /* the vsock listener is gone with its device */
	vsock_config_free(h->cfg.vsock);
	h->cfg.vsock = NULL;
	assert_int_equal(h->pio.nr, pio_nr);
	assert_int_equal(h->mmio.nr, mmio_nr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rtc_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rtc_cmos, setup, teardown),
		cmocka_unit_test(test_rtc_utc_matches_gmtime),
		cmocka_unit_test_setup_teardown(test_i8042, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acpi_pm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_debug_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dev_table, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
