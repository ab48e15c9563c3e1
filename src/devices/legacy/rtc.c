/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MC146818 CMOS RTC at 0x70 (index) / 0x71 (data): the host's wall clock in UTC, plus 128 bytes
 * of CMOS memory.
 *
 * - The clock registers are computed from the host clock at each read, in BCD or binary per
 *   register B's DM bit, 24- or 12-hour per its 24/12 bit (24 h BCD at power-on, as Linux
 *   expects). The guest cannot set the clock: writes to the time registers are ignored, the
 *   host is authoritative (Linux only writes the RTC when NTP-synced, and then it agrees).
 * - Update-in-progress (register A bit 7) always reads 0: the values are consistent at the
 *   instant of each read, and a reader that checks UIP never waits.
 * - Register C reads 0 and register D reads VRT (battery good). There are no periodic, alarm
 *   or update-ended interrupts and no IRQ 8; the alarm registers are plain CMOS bytes.
 * - CMOS bytes 0x15-0x18 and 0x30-0x31 hold the base and extended (1-64 MiB) memory sizes in
 *   KiB, as a BIOS leaves them; bytes above 16 MiB and 4 GiB are not reported (they depend on
 *   the PCI hole, which is arch's business; Linux reads the e820 map instead).
 *
 * Saved state: the index register and the 128 CMOS bytes (the alarm registers and A/B among
 * them). There is no periodic, alarm or update-ended state to save (none of it exists, above),
 * and no time base: as in Cloud Hypervisor, whose RTC also reads the host's clock, a restored
 * guest's clock continues from the host's clock, i.e. it jumps forward by the time the
 * snapshot spent on disk. The guest cannot set this RTC, so there is no offset to keep.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "bus/bus.h"
#include "config/config.h"
#include "devices/legacy/legacy.h"
#include "util/state.h"
#include "util/util.h"

#define RTC_PORT_BASE 0x70
#define RTC_PORT_SIZE 2
#define RTC_CMOS_SIZE 128

#define RTC_SECONDS	 0x00
#define RTC_MINUTES	 0x02
#define RTC_HOURS	 0x04
#define RTC_DAY_OF_WEEK	 0x06
#define RTC_DAY_OF_MONTH 0x07
#define RTC_MONTH	 0x08
#define RTC_YEAR	 0x09
#define RTC_REG_A	 0x0a
#define RTC_REG_B	 0x0b
#define RTC_REG_C	 0x0c
#define RTC_REG_D	 0x0d
#define RTC_CENTURY	 0x32 /* the IBM PC convention; ACPI's FADT may point here */

#define RTC_A_UIP     0x80
#define RTC_A_DEFAULT 0x26 /* 32.768 kHz time base, 1024 Hz rate */
#define RTC_B_DM_BIN  0x04
#define RTC_B_24H     0x02
#define RTC_B_DEFAULT RTC_B_24H
#define RTC_D_VRT     0x80
#define RTC_HOUR_PM   0x80 /* 12-hour mode */

#define RTC_INDEX_MASK 0x7f /* bit 7 of the index port masks NMIs on a PC: ignored */

/* Memory size bytes, in KiB. */
#define CMOS_BASE_MEM_LO     0x15
#define CMOS_BASE_MEM_HI     0x16
#define CMOS_EXT_MEM_LO	     0x17
#define CMOS_EXT_MEM_HI	     0x18
#define CMOS_EXT_MEM2_LO     0x30
#define CMOS_EXT_MEM2_HI     0x31
#define CMOS_BASE_MEM_KIB    640
#define CMOS_EXT_MEM_MAX_KIB (63 * 1024) /* 1 MiB to 64 MiB */

/* What the guest can change, and what a snapshot saves. */
struct rtc_regs {
	uint8_t index;
	uint8_t cmos[RTC_CMOS_SIZE];
};

static const struct state_field rtc_fields[] = {
	STATE_U8(struct rtc_regs, index),
	STATE_BLOB(struct rtc_regs, cmos),
};

struct rtc {
	pthread_mutex_t lock;
	struct bus *pio;
	struct rtc_regs regs;
};

static bool rtc_is_clock_reg(uint8_t index)
{
	switch (index) {
	case RTC_SECONDS:
	case RTC_MINUTES:
	case RTC_HOURS:
	case RTC_DAY_OF_WEEK:
	case RTC_DAY_OF_MONTH:
	case RTC_MONTH:
	case RTC_YEAR:
	case RTC_CENTURY:
		return true;
	default:
		return false;
	}
}

static uint8_t rtc_encode(const struct rtc *rtc, unsigned v)
{
	if (rtc->regs.cmos[RTC_REG_B] & RTC_B_DM_BIN)
		return (uint8_t)v;
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

/*
 * UTC calendar fields from Unix time, by arithmetic only: glibc's gmtime_r() loads the time zone
 * database on its first call (an open() of /etc/localtime), which a vCPU thread's seccomp
 * filter rightly forbids. Proleptic Gregorian calendar, counted in 400-year eras of 146097
 * days from 0000-03-01 so that leap days fall at the end of each era-year.
 */
void rtc_utc(int64_t secs, struct tm *tm)
{
	int64_t days = secs / 86400, rem = secs % 86400;
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	tm->tm_hour = (int)(rem / 3600);
	tm->tm_min = (int)(rem % 3600 / 60);
	tm->tm_sec = (int)(rem % 60);
	tm->tm_wday = (int)(((days + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */

	int64_t z = days + 719468; /* days since 0000-03-01 */
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;					     /* 0..146096 */
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* 0..399 */
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);		     /* 0..365 */
	int64_t mp = (5 * doy + 2) / 153;				     /* 0 = March */
	int64_t mday = doy - (153 * mp + 2) / 5 + 1;
	int64_t mon = mp < 10 ? mp + 3 : mp - 9; /* 1..12 */
	int64_t year = yoe + era * 400 + (mon <= 2);
	tm->tm_mday = (int)mday;
	tm->tm_mon = (int)mon - 1;
	tm->tm_year = (int)(year - 1900);
}

static uint8_t rtc_read_clock(const struct rtc *rtc, uint8_t index)
{
	struct timespec ts;
	struct tm tm;
	unsigned hour, year;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return 0;
	rtc_utc(ts.tv_sec, &tm);
	year = (unsigned)tm.tm_year + 1900;
	switch (index) {
	case RTC_SECONDS:
		return rtc_encode(rtc, (unsigned)MIN(tm.tm_sec, 59)); /* a leap second reads 59 */
	case RTC_MINUTES:
		return rtc_encode(rtc, (unsigned)tm.tm_min);
	case RTC_HOURS:
		hour = (unsigned)tm.tm_hour;
		if (rtc->regs.cmos[RTC_REG_B] & RTC_B_24H)
			return rtc_encode(rtc, hour);
		/* 12-hour mode: 12, 1..11 with the PM flag in bit 7, whatever the encoding. */
		return rtc_encode(rtc, hour % 12 ? hour % 12 : 12) | (hour >= 12 ? RTC_HOUR_PM : 0);
	case RTC_DAY_OF_WEEK:
		return rtc_encode(rtc, (unsigned)tm.tm_wday + 1); /* 1 = Sunday */
	case RTC_DAY_OF_MONTH:
		return rtc_encode(rtc, (unsigned)tm.tm_mday);
	case RTC_MONTH:
		return rtc_encode(rtc, (unsigned)tm.tm_mon + 1);
	case RTC_YEAR:
		return rtc_encode(rtc, year % 100);
	default: /* RTC_CENTURY */
		return rtc_encode(rtc, (year / 100) % 100);
	}
}

static uint8_t rtc_read_data(struct rtc *rtc)
{
	uint8_t index = rtc->regs.index;

	if (rtc_is_clock_reg(index))
		return rtc_read_clock(rtc, index);
	switch (index) {
	case RTC_REG_A:
		return rtc->regs.cmos[RTC_REG_A] & (uint8_t)~RTC_A_UIP;
	case RTC_REG_C:
		return 0; /* no interrupt flags, ever */
	case RTC_REG_D:
		return RTC_D_VRT;
	default:
		return rtc->regs.cmos[index];
	}
}

static void rtc_write_data(struct rtc *rtc, uint8_t v)
{
	uint8_t index = rtc->regs.index;

	if (rtc_is_clock_reg(index))
		return; /* the host clock is authoritative */
	switch (index) {
	case RTC_REG_A:
		rtc->regs.cmos[RTC_REG_A] = v & (uint8_t)~RTC_A_UIP;
		return;
	case RTC_REG_C:
	case RTC_REG_D:
		return; /* read-only */
	default:
		rtc->regs.cmos[index] = v;
		return;
	}
}

static void rtc_pio(void *opaque, uint64_t offset, bool is_write, uint8_t *data, unsigned len)
{
	struct rtc *rtc = opaque;

	pthread_mutex_lock(&rtc->lock);
	for (unsigned i = 0; i < len; i++) {
		uint64_t port = offset + i;

		if (port == 0) {
			if (is_write)
				rtc->regs.index = data[i] & RTC_INDEX_MASK;
			else
				data[i] = 0xff; /* the index port is write-only */
		} else if (port == 1) {
			if (is_write)
				rtc_write_data(rtc, data[i]);
			else
				data[i] = rtc_read_data(rtc);
		} else if (!is_write) {
			data[i] = 0xff;
		}
	}
	pthread_mutex_unlock(&rtc->lock);
}

static void rtc_power_on(struct rtc *rtc, uint64_t mem_size)
{
	uint64_t ext_kib = 0;

	memset(rtc->regs.cmos, 0, sizeof(rtc->regs.cmos));
	rtc->regs.index = 0;
	rtc->regs.cmos[RTC_REG_A] = RTC_A_DEFAULT;
	rtc->regs.cmos[RTC_REG_B] = RTC_B_DEFAULT;
	rtc->regs.cmos[CMOS_BASE_MEM_LO] = CMOS_BASE_MEM_KIB & 0xff;
	rtc->regs.cmos[CMOS_BASE_MEM_HI] = CMOS_BASE_MEM_KIB >> 8;
	if (mem_size > MiB)
		ext_kib = MIN((mem_size - MiB) / KiB, (uint64_t)CMOS_EXT_MEM_MAX_KIB);
	rtc->regs.cmos[CMOS_EXT_MEM_LO] = rtc->regs.cmos[CMOS_EXT_MEM2_LO] =
		(uint8_t)(ext_kib & 0xff);
	rtc->regs.cmos[CMOS_EXT_MEM_HI] = rtc->regs.cmos[CMOS_EXT_MEM2_HI] =
		(uint8_t)(ext_kib >> 8);
}

/* The saved index and CMOS bytes, as hostile input: the index within CMOS, register A's UIP
 * bit clear (it is never stored). */
static int rtc_restore(struct rtc *rtc, const struct dev_ctx *ctx, const json_t *state)
{
	struct rtc_regs tmp = rtc->regs;
	int r = legacy_state_load(ctx, "rtc", state, rtc_fields, ARRAY_SIZE(rtc_fields), &tmp);

	if (r < 0)
		return r;
	if (tmp.index > RTC_INDEX_MASK)
		return legacy_state_fail(ctx, "rtc", "field 'index': expected 0..%u, got %u",
					 RTC_INDEX_MASK, tmp.index);
	if (tmp.cmos[RTC_REG_A] & RTC_A_UIP)
		return legacy_state_fail(ctx, "rtc", "field 'cmos': register A has UIP set");
	rtc->regs = tmp;
	return 0;
}

static int rtc_realize(const struct dev_ctx *ctx, const struct json_t *state, void **ret)
{
	struct rtc *rtc;
	int r;

	rtc = calloc(1, sizeof(*rtc));
	if (!rtc)
		return -ENOMEM;
	pthread_mutex_init(&rtc->lock, NULL);
	rtc->pio = ctx->pio;
	rtc_power_on(rtc, ctx->cfg ? ctx->cfg->memory.size : 0);
	r = state ? rtc_restore(rtc, ctx, state) : 0;
	if (r == 0)
		r = bus_register(ctx->pio, RTC_PORT_BASE, RTC_PORT_SIZE, rtc_pio, rtc, "rtc");
	if (r < 0) {
		pthread_mutex_destroy(&rtc->lock);
		free(rtc);
		return r;
	}
	*ret = rtc;
	return 0;
}

static void rtc_unrealize(void *dev)
{
	struct rtc *rtc = dev;

	if (!rtc)
		return;
	(void)bus_unregister(rtc->pio, RTC_PORT_BASE);
	pthread_mutex_destroy(&rtc->lock);
	free(rtc);
}

/* CMOS memory survives a reboot (it is battery-backed); only the index and the control
 * registers go back to their power-on values. */
static void rtc_reset(void *dev)
{
	struct rtc *rtc = dev;

	pthread_mutex_lock(&rtc->lock);
	rtc->regs.index = 0;
	rtc->regs.cmos[RTC_REG_A] = RTC_A_DEFAULT;
	rtc->regs.cmos[RTC_REG_B] = RTC_B_DEFAULT;
	pthread_mutex_unlock(&rtc->lock);
}

static int rtc_save(void *dev, json_t *state, char *err, size_t errlen)
{
	struct rtc *rtc = dev;
	int r;

	pthread_mutex_lock(&rtc->lock);
	r = state_save_fields(state, rtc_fields, ARRAY_SIZE(rtc_fields), &rtc->regs);
	pthread_mutex_unlock(&rtc->lock);
	return r < 0 ? error_set(err, errlen, r, "rtc: out of memory") : 0;
}

const struct dev_ops rtc_ops = {
	.name = "rtc",
	.realize = rtc_realize,
	.unrealize = rtc_unrealize,
	.reset = rtc_reset,
	.save = rtc_save,
};
