/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal i8042 keyboard controller at 0x60 (data) and 0x64 (status/command), there for one
 * thing: the reset line ("reboot=k", and Linux's fallback reboot path). There is no keyboard or
 * mouse behind it.
 *
 * - Status (0x64 read): output-buffer-full when a reply waits, plus the system flag; the input
 *   buffer is never busy, so a driver polling it never waits.
 * - Commands (0x64 write): 0x20 reads the configuration byte, 0x60 writes it, 0xaa (self
 *   test) answers 0x55, 0xab (keyboard interface test) answers 0x00, 0xad/0xae/0xa7/0xa8 flip
 *   the disable bits; 0xfe (and any 0xf0-0xff pulse that pulls bit 0, the reset line) and a
 *   0xd1 output-port write with bit 0 clear ask the VM for a reset. Everything else is
 *   accepted and ignored.
 * - Data written to 0x60 outside a command would go to the keyboard: there is none, ignored.
 *
 * Saved state: the four registers of struct i8042_regs.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include <jansson.h>

#include "bus/bus.h"
#include "devices/legacy/legacy.h"
#include "util/log.h"
#include "util/state.h"
#include "util/util.h"

#define I8042_DATA_PORT	   0x60
#define I8042_COMMAND_PORT 0x64

#define I8042_STATUS_OBF 0x01 /* output buffer full: read 0x60 */
#define I8042_STATUS_SYS 0x04 /* system flag: self test passed */

#define I8042_CMD_READ_CTR    0x20
#define I8042_CMD_WRITE_CTR   0x60
#define I8042_CMD_AUX_DISABLE 0xa7
#define I8042_CMD_AUX_ENABLE  0xa8
#define I8042_CMD_SELF_TEST   0xaa
#define I8042_CMD_KBD_TEST    0xab
#define I8042_CMD_KBD_DISABLE 0xad
#define I8042_CMD_KBD_ENABLE  0xae
#define I8042_CMD_WRITE_OUT   0xd1
#define I8042_CMD_PULSE	      0xf0 /* 0xf0-0xff: pulse output lines whose bit is clear */

#define I8042_CTR_KBD_DISABLE 0x10
#define I8042_CTR_AUX_DISABLE 0x20
#define I8042_CTR_DEFAULT     0x45 /* keyboard interrupt, system flag, scancode translation */
#define I8042_SELF_TEST_OK    0x55
#define I8042_OUT_RESET_LINE  0x01 /* output port bit 0, active low */

struct i8042_regs {
	uint8_t ctr;
	uint8_t pending_cmd; /* a command waiting for its data byte, or 0 */
	uint8_t out;
	bool out_full;
};

static const struct state_field i8042_fields[] = {
	STATE_U8(struct i8042_regs, ctr),
	STATE_U8(struct i8042_regs, pending_cmd),
	STATE_U8(struct i8042_regs, out),
	STATE_BOOL(struct i8042_regs, out_full),
};

struct i8042 {
	pthread_mutex_t lock;
	struct dev_ctx ctx;
	struct i8042_regs regs;
};

static void i8042_reply(struct i8042 *k, uint8_t v)
{
	k->regs.out = v;
	k->regs.out_full = true;
}

/* Returns true when the guest asked for a reset. */
static bool i8042_command(struct i8042 *k, uint8_t cmd)
{
	k->regs.pending_cmd = 0;
	switch (cmd) {
	case I8042_CMD_READ_CTR:
		i8042_reply(k, k->regs.ctr);
		return false;
	case I8042_CMD_WRITE_CTR:
	case I8042_CMD_WRITE_OUT:
		k->regs.pending_cmd = cmd;
		return false;
	case I8042_CMD_SELF_TEST:
		i8042_reply(k, I8042_SELF_TEST_OK);
		return false;
	case I8042_CMD_KBD_TEST:
		i8042_reply(k, 0x00);
		return false;
	case I8042_CMD_KBD_DISABLE:
		k->regs.ctr |= I8042_CTR_KBD_DISABLE;
		return false;
	case I8042_CMD_KBD_ENABLE:
		k->regs.ctr &= (uint8_t)~I8042_CTR_KBD_DISABLE;
		return false;
	case I8042_CMD_AUX_DISABLE:
		k->regs.ctr |= I8042_CTR_AUX_DISABLE;
		return false;
	case I8042_CMD_AUX_ENABLE:
		k->regs.ctr &= (uint8_t)~I8042_CTR_AUX_DISABLE;
		return false;
	default:
		return (cmd & 0xf0) == I8042_CMD_PULSE && !(cmd & I8042_OUT_RESET_LINE);
	}
}

static bool i8042_data(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->regs.pending_cmd;

	k->regs.pending_cmd = 0;
	if (cmd == I8042_CMD_WRITE_CTR)
		k->regs.ctr = v;
	else if (cmd == I8042_CMD_WRITE_OUT)
		return !(v & I8042_OUT_RESET_LINE);
	return false;
}

static void i8042_access(struct i8042 *k, bool command_port, bool is_write, uint8_t *data)
{
	bool reset = false;

	pthread_mutex_lock(&k->lock);
	if (!is_write && command_port) {
		data[0] = I8042_STATUS_SYS | (k->regs.out_full ? I8042_STATUS_OBF : 0);
	} else if (!is_write) {
		data[0] = k->regs.out; /* the last byte stays readable, as on the real part */
		k->regs.out_full = false;
	} else if (command_port) {
		reset = i8042_command(k, data[0]);
	} else {
		reset = i8042_data(k, data[0]);
	}
	pthread_mutex_unlock(&k->lock);

	/* Outside the lock: the VM may stop vCPUs, this one included, to reset. */
	if (reset && k->ctx.request) {
		log_info("i8042: guest requested reset");
		k->ctx.request(k->ctx.request_opaque, DEV_REQUEST_RESET);
	}
}

static void i8042_pio(void *opaque, uint64_t offset, bool is_write, uint8_t *data, unsigned len,
		      bool command_port)
{
	/* Only the first byte of a wider access reaches the 8-bit register. */
	for (unsigned i = 1; i < len; i++) {
		if (!is_write)
			data[i] = 0xff;
	}
	if (offset == 0 && len)
		i8042_access(opaque, command_port, is_write, data);
}

static void i8042_data_pio(void *opaque, uint64_t offset, bool is_write, uint8_t *data,
			   unsigned len)
{
	i8042_pio(opaque, offset, is_write, data, len, false);
}

static void i8042_command_pio(void *opaque, uint64_t offset, bool is_write, uint8_t *data,
			      unsigned len)
{
	i8042_pio(opaque, offset, is_write, data, len, true);
}

static void i8042_power_on(struct i8042 *k)
{
	k->regs.ctr = I8042_CTR_DEFAULT;
	k->regs.pending_cmd = 0;
	k->regs.out = 0;
	k->regs.out_full = false;
}

static int i8042_restore(struct i8042 *k, const struct dev_ctx *ctx, const json_t *state)
{
	struct i8042_regs tmp = k->regs;
	int r = legacy_state_load(ctx, "i8042", state, i8042_fields, ARRAY_SIZE(i8042_fields),
				  &tmp);

	if (r < 0)
		return r;
	if (tmp.pending_cmd && tmp.pending_cmd != I8042_CMD_WRITE_CTR &&
	    tmp.pending_cmd != I8042_CMD_WRITE_OUT)
		return legacy_state_fail(ctx, "i8042",
					 "field 'pending_cmd': 0x%02x does not take a data byte",
					 tmp.pending_cmd);
	k->regs = tmp;
	return 0;
}

static int i8042_realize(const struct dev_ctx *ctx, const struct json_t *state, void **ret)
{
	struct i8042 *k;
	int r;

	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	pthread_mutex_init(&k->lock, NULL);
	k->ctx = *ctx;
	k->ctx.err = NULL; /* only valid during realize */
	k->ctx.errlen = 0;
	i8042_power_on(k);
	r = state ? i8042_restore(k, ctx, state) : 0;
	if (r == 0)
		r = bus_register(ctx->pio, I8042_DATA_PORT, 1, i8042_data_pio, k, "i8042-data");
	if (r < 0)
		goto fail;
	r = bus_register(ctx->pio, I8042_COMMAND_PORT, 1, i8042_command_pio, k, "i8042-cmd");
	if (r < 0) {
		(void)bus_unregister(ctx->pio, I8042_DATA_PORT);
		goto fail;
	}
	*ret = k;
	return 0;
fail:
	pthread_mutex_destroy(&k->lock);
	free(k);
	return r;
}

static void i8042_unrealize(void *dev)
{
	struct i8042 *k = dev;

	if (!k)
		return;
	(void)bus_unregister(k->ctx.pio, I8042_COMMAND_PORT);
	(void)bus_unregister(k->ctx.pio, I8042_DATA_PORT);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

static void i8042_reset(void *dev)
{
	struct i8042 *k = dev;

	pthread_mutex_lock(&k->lock);
	i8042_power_on(k);
	pthread_mutex_unlock(&k->lock);
}

static int i8042_save(void *dev, json_t *state, char *err, size_t errlen)
{
	struct i8042 *k = dev;
	int r;

	pthread_mutex_lock(&k->lock);
	r = state_save_fields(state, i8042_fields, ARRAY_SIZE(i8042_fields), &k->regs);
	pthread_mutex_unlock(&k->lock);
	return r < 0 ? error_set(err, errlen, r, "i8042: out of memory") : 0;
}

const struct dev_ops i8042_ops = {
	.name = "i8042",
	.realize = i8042_realize,
	.unrealize = i8042_unrealize,
	.reset = i8042_reset,
	.save = i8042_save,
};
