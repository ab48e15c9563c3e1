/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The small legacy devices (src/devices/legacy/: rtc.c, i8042.c, acpi_pm.c, debug_port.c,
 * sys_ctrl.c), the saved state of those and of serial.c, and the device table
 * (src/devices/devices.c), driven through a real port bus.
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

#include <jansson.h>

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
	unsigned poweroffs, resets, starts;
	unsigned ged_edges; /* rising edges on the GED's line */
	bool ged_level;
};

static void fake_request(void *opaque, enum dev_request req)
{
	struct harness *h = opaque;

	if (req == DEV_REQUEST_POWEROFF)
		h->poweroffs++;
	else if (req == DEV_REQUEST_RESET)
		h->resets++;
	else
		h->starts++;
}

static int fake_set_line(void *opaque, uint32_t gsi, bool level)
{
	struct harness *h = opaque;

	if (gsi == ACPI_GED_GSI) {
		if (level && !h->ged_level)
			h->ged_edges++;
		h->ged_level = level;
	}
	return 0;
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
	h->irq = (struct irq_sink){ .set_line = fake_set_line, .opaque = h };
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

/* ---- saved state ---- */

#define DUMP_FLAGS (JSON_SORT_KEYS | JSON_COMPACT)

static json_t *save_state(const struct dev_ops *ops, void *dev)
{
	json_t *st = json_object();
	char err[256] = "";

	assert_non_null(st);
	assert_int_equal(ops->save(dev, st, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	return st;
}

/* save → unrealize → realize(state) → save is byte-identical; returns the restored device. */
static void *round_trip(struct harness *h, const struct dev_ops *ops, void *dev)
{
	json_t *st = save_state(ops, dev);
	char *before = json_dumps(st, DUMP_FLAGS), *after;
	void *restored = NULL;

	assert_non_null(before);
	ops->unrealize(dev);
	assert_int_equal(ops->realize(&h->ctx, st, &restored), 0);
	assert_non_null(restored);
	json_decref(st);
	st = save_state(ops, restored);
	after = json_dumps(st, DUMP_FLAGS);
	assert_string_equal(before, after);
	free(before);
	free(after);
	json_decref(st);
	return restored;
}

/* realize(@st) fails with -EINVAL, a line naming @needle, and nothing left on the bus. */
static void expect_refused(struct harness *h, const struct dev_ops *ops, const json_t *st,
			   const char *needle)
{
	char err[256] = "";
	void *dev = NULL;
	unsigned nr = h->pio.nr;

	h->ctx.err = err;
	h->ctx.errlen = sizeof(err);
	assert_int_equal(ops->realize(&h->ctx, st, &dev), -EINVAL);
	assert_null(dev);
	assert_non_null(strstr(err, needle));
	assert_non_null(strstr(err, ops->name));
	assert_int_equal(h->pio.nr, nr);
	h->ctx.err = NULL;
	h->ctx.errlen = 0;
}

/* A copy of @good with @key replaced by @v (NULL: removed). */
static json_t *mutated(const json_t *good, const char *key, json_t *v)
{
	json_t *st = json_deep_copy(good);

	assert_non_null(st);
	if (v)
		assert_int_equal(json_object_set_new(st, key, v), 0);
	else
		assert_int_equal(json_object_del(st, key), 0);
	return st;
}

static void expect_mutation_refused(struct harness *h, const struct dev_ops *ops,
				    const json_t *good, const char *key, json_t *v)
{
	json_t *st = mutated(good, key, v);

	expect_refused(h, ops, st, key);
	json_decref(st);
}

static void test_rtc_state(void **state)
{
	struct harness *h = *state;
	void *dev = realize(h, &rtc_ops);
	json_t *good;

	outb(h, RTC_INDEX, 0x40);
	outb(h, RTC_DATA, 0xa5);
	outb(h, RTC_INDEX, 0x0b);
	outb(h, RTC_DATA, 0x06);  /* binary, 24 h */
	outb(h, RTC_INDEX, 0x41); /* left selected */
	dev = round_trip(h, &rtc_ops, dev);

	/* The index survived: a data read without writing the index gives CMOS byte 0x41. */
	outb(h, RTC_INDEX, 0x41);
	outb(h, RTC_DATA, 0x5a);
	good = save_state(&rtc_ops, dev);
	rtc_ops.unrealize(dev);
	dev = NULL;
	assert_int_equal(rtc_ops.realize(&h->ctx, good, &dev), 0);
	assert_int_equal(inb(h, RTC_DATA), 0x5a);
	assert_int_equal(cmos_read(h, 0x40), 0xa5);
	/* The clock continues from the host's, in the restored mode. */
	assert_close_to_now(rtc_read_time(h, true, true));
	rtc_ops.unrealize(dev);

	expect_mutation_refused(h, &rtc_ops, good, "index", json_integer(0x80));
	expect_mutation_refused(h, &rtc_ops, good, "index", json_integer(-1));
	expect_mutation_refused(h, &rtc_ops, good, "index", NULL);
	expect_mutation_refused(h, &rtc_ops, good, "cmos", json_string("00ff"));
	expect_mutation_refused(h, &rtc_ops, good, "cmos", json_integer(0));
	expect_mutation_refused(h, &rtc_ops, good, "cmos", NULL);
	/* 128 bytes with UIP set in register A. */
	char cmos[2 * 128 + 1];
	memset(cmos, '0', 256);
	cmos[256] = '\0';
	cmos[2 * 0x0a] = '8';
	expect_mutation_refused(h, &rtc_ops, good, "cmos", json_string(cmos));
	json_t *not_object = json_array();
	expect_refused(h, &rtc_ops, not_object, "object");
	json_decref(not_object);
	json_decref(good);

	/* No saved state for this entry: a cold boot. */
	dev = NULL;
	assert_int_equal(rtc_ops.realize(&h->ctx, NULL, &dev), 0);
	assert_int_equal(cmos_read(h, 0x0b), 0x02);
	rtc_ops.unrealize(dev);
}

static void test_i8042_state(void **state)
{
	struct harness *h = *state;
	void *dev = realize(h, &i8042_ops);
	json_t *good;

	outb(h, KBD_CMD, 0xaa); /* a reply waits */
	dev = round_trip(h, &i8042_ops, dev);
	assert_int_equal(inb(h, KBD_CMD) & 0x01, 0x01);
	assert_int_equal(inb(h, KBD_DATA), 0x55);

	outb(h, KBD_CMD, 0x60); /* a command waits for its data byte */
	dev = round_trip(h, &i8042_ops, dev);
	outb(h, KBD_DATA, 0x47);
	outb(h, KBD_CMD, 0x20);
	assert_int_equal(inb(h, KBD_DATA), 0x47);

	outb(h, KBD_CMD, 0xd1);
	good = save_state(&i8042_ops, dev);
	dev = round_trip(h, &i8042_ops, dev);
	outb(h, KBD_DATA, 0xfe); /* the output port write: reset */
	assert_int_equal(h->resets, 1);
	i8042_ops.unrealize(dev);

	expect_mutation_refused(h, &i8042_ops, good, "pending_cmd", json_integer(0xaa));
	expect_mutation_refused(h, &i8042_ops, good, "ctr", json_integer(256));
	expect_mutation_refused(h, &i8042_ops, good, "out_full", json_string("yes"));
	expect_mutation_refused(h, &i8042_ops, good, "out", NULL);
	json_decref(good);
}

static void test_acpi_pm_state(void **state)
{
	struct harness *h = *state;
	void *dev = realize(h, &acpi_pm_ops);
	json_t *good;

	/* The GED register: raised bits, one edge per raise, read-to-clear. */
	assert_int_equal(inb(h, ACPI_GED_PORT), 0);
	assert_int_equal(acpi_pm_ged_raise(dev, ACPI_GED_PWR_BUTTON), 0);
	assert_int_equal(h->ged_edges, 1);
	assert_false(h->ged_level);
	assert_int_equal(acpi_pm_ged_raise(dev, ACPI_GED_VMGENID | 0x80), 0);
	assert_int_equal(h->ged_edges, 2);
	outb(h, ACPI_GED_PORT, 0xff); /* ignored */
	assert_int_equal(inb(h, ACPI_GED_PORT), ACPI_GED_PWR_BUTTON | ACPI_GED_VMGENID);
	assert_int_equal(inb(h, ACPI_GED_PORT), 0);

	/* A pending event survives a snapshot; a reboot drops it. */
	assert_int_equal(acpi_pm_ged_raise(dev, ACPI_GED_VMGENID), 0);
	good = save_state(&acpi_pm_ops, dev);
	dev = round_trip(h, &acpi_pm_ops, dev);
	assert_int_equal(h->ged_edges, 3); /* restoring raises nothing by itself */
	assert_int_equal(inb(h, ACPI_GED_PORT), ACPI_GED_VMGENID);
	assert_int_equal(acpi_pm_ged_raise(dev, ACPI_GED_PWR_BUTTON), 0);
	acpi_pm_ops.reset(dev);
	assert_int_equal(inb(h, ACPI_GED_PORT), 0);
	/* The PM registers still work after a restore. */
	outb(h, PM_RESET, 0x01);
	assert_int_equal(h->resets, 1);
	acpi_pm_ops.unrealize(dev);

	expect_mutation_refused(h, &acpi_pm_ops, good, "ged_status", json_integer(4));
	expect_mutation_refused(h, &acpi_pm_ops, good, "ged_status", json_true());
	expect_mutation_refused(h, &acpi_pm_ops, good, "ged_status", NULL);
	json_decref(good);

	/* The debug port has nothing to save: it restores as on a cold boot. */
	assert_null(debug_port_ops.save);
}

#define COM1_THR (SERIAL_PORT_BASE + 0)
#define COM1_IER (SERIAL_PORT_BASE + 1)
#define COM1_IIR (SERIAL_PORT_BASE + 2)
#define COM1_LCR (SERIAL_PORT_BASE + 3)
#define COM1_MCR (SERIAL_PORT_BASE + 4)
#define COM1_LSR (SERIAL_PORT_BASE + 5)
#define COM1_SCR (SERIAL_PORT_BASE + 7)

static void test_serial_state(void **state)
{
	struct harness *h = *state;
	void *dev = realize(h, &serial_ops);
	json_t *good;
	char fifo[2 * 65 + 1];

	/* Divisor, line settings, FIFOs on (trigger 14), loopback: written bytes land in RX. */
	outb(h, COM1_LCR, 0x80);
	outb(h, COM1_THR, 0x01); /* DLL: 115200 baud */
	outb(h, COM1_LCR, 0x03);
	outb(h, COM1_IIR, 0xc1);
	outb(h, COM1_MCR, 0x10 | 0x0b);
	outb(h, COM1_SCR, 0x5c);
	outb(h, COM1_THR, 'a');
	outb(h, COM1_THR, 'b');
	outb(h, COM1_THR, 'c');
	outb(h, COM1_IER, 0x03); /* RDA and THRE interrupts */
	good = save_state(&serial_ops, dev);
	dev = round_trip(h, &serial_ops, dev);

	/* The FIFO's bytes below the trigger level: a timeout interrupt first, then THRE. */
	assert_int_equal(inb(h, COM1_IIR), 0xc0 | 0x0c);
	assert_int_equal(inb(h, COM1_LSR) & 0x61, 0x61);
	assert_int_equal(inb(h, COM1_THR), 'a');
	assert_int_equal(inb(h, COM1_THR), 'b');
	assert_int_equal(inb(h, COM1_THR), 'c');
	assert_int_equal(inb(h, COM1_IIR), 0xc0 | 0x02);
	assert_int_equal(inb(h, COM1_IIR), 0xc1);
	assert_int_equal(inb(h, COM1_SCR), 0x5c);
	assert_int_equal(inb(h, COM1_LCR), 0x03);
	outb(h, COM1_LCR, 0x83);
	assert_int_equal(inb(h, COM1_THR), 0x01);
	outb(h, COM1_LCR, 0x03);
	serial_ops.resume(dev);
	serial_ops.unrealize(dev);

	memset(fifo, '6', sizeof(fifo) - 1);
	fifo[sizeof(fifo) - 1] = '\0';
	expect_mutation_refused(h, &serial_ops, good, "rx_fifo", json_string(fifo));
	expect_mutation_refused(h, &serial_ops, good, "rx_fifo", json_string("6x"));
	expect_mutation_refused(h, &serial_ops, good, "rx_fifo", NULL);
	expect_mutation_refused(h, &serial_ops, good, "ier", json_integer(0x10));
	expect_mutation_refused(h, &serial_ops, good, "mcr", json_integer(0x20));
	expect_mutation_refused(h, &serial_ops, good, "fcr", json_integer(0x08));
	expect_mutation_refused(h, &serial_ops, good, "lsr_err", json_integer(0x01));
	expect_mutation_refused(h, &serial_ops, good, "thre_pending", NULL);
	expect_mutation_refused(h, &serial_ops, good, "lcr", json_integer(300));
	/* FIFOs off: one byte at most. */
	json_t *st = mutated(good, "fcr", json_integer(0));
	expect_refused(h, &serial_ops, st, "rx_fifo");
	json_decref(st);
	json_decref(good);
}

/* ---- sys-ctrl ---- */

static void test_sys_ctrl(void **state)
{
	struct harness *h = *state;
	void *dev = NULL;
	uint8_t v = 0;

	/* Without --sys-ctrl: no device, the port is nobody's. */
	assert_int_equal(sys_ctrl_ops.realize(&h->ctx, NULL, &dev), 0);
	assert_null(dev);
	assert_false(bus_access(&h->pio, SYS_CTRL_PORT, true, &v, 1));

	h->cfg.sys_ctrl = true;
	dev = realize(h, &sys_ctrl_ops);
	assert_int_equal(inb(h, SYS_CTRL_PORT), SYS_CTRL_VERSION);
	assert_int_equal(h->starts, 0);
	outb(h, SYS_CTRL_PORT, 0x01);
	assert_int_equal(h->starts, 1);
	uint32_t word = 0xdeadbeef;
	assert_true(bus_access(&h->pio, SYS_CTRL_PORT, true, (uint8_t *)&word, 4));
	assert_int_equal(h->starts, 2);
	assert_int_equal(h->resets + h->poweroffs, 0);
	sys_ctrl_ops.unrealize(dev);
	assert_false(bus_access(&h->pio, SYS_CTRL_PORT, false, &v, 1));
	h->cfg.sys_ctrl = false;
}

/* ---- the table ---- */

/* Devices that exist only when their option is given (--disk, --net, ...). */
static bool optional_device(const char *name)
{
	static const char *const optional[] = { "virtio-blk",	  "virtio-net",	 "virtio-vsock",
						"virtio-balloon", "virtio-pmem", "sys-ctrl" };
	for (size_t i = 0; i < ARRAY_SIZE(optional); i++)
		if (strcmp(name, optional[i]) == 0)
			return true;
	return false;
}

static void test_dev_table(void **state)
{
	struct harness *h = *state;
	static const char *const expected[] = {
		"serial",     "rtc",	    "i8042",	    "acpi-pm",
		"debug-port", "sys-ctrl",   "virtio-rng",   "virtio-console",
		"virtio-blk", "virtio-net", "virtio-vsock", "virtio-balloon",
		"virtio-pmem"
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
		cmocka_unit_test_setup_teardown(test_rtc_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_i8042_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acpi_pm_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_serial_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sys_ctrl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dev_table, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
