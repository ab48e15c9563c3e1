/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CubeSandbox's system control port (--sys-ctrl): the guest's agent writes I/O port 0x680 once
 * it is up, which is how vm.waitstart knows a sandbox (booted or restored) is ready to serve.
 *
 * - Write (any width, any value): "started". Reported through ctx->request as
 *   DEV_REQUEST_STARTED, at each write; the VM keeps running (core/vm.c sets its flag and runs
 *   the vm.waitstart callback on the loop thread).
 * - Read: SYS_CTRL_VERSION in the first byte, 0 in the others, so that an agent can tell the
 *   port is there (without --sys-ctrl nothing decodes 0x680 and a read gives 0xff).
 *
 * Present only with --sys-ctrl. No state: "started" is the VM's, reset at each build/restore.
 */
#include <errno.h>
#include <stdlib.h>

#include "bus/bus.h"
#include "config/config.h"
#include "devices/legacy/legacy.h"
#include "util/log.h"

struct sys_ctrl {
	struct bus *pio;
	void (*request)(void *opaque, enum dev_request req);
	void *request_opaque;
};

static void sys_ctrl_pio(void *opaque, uint64_t offset, bool is_write, uint8_t *data, unsigned len)
{
	struct sys_ctrl *sc = opaque;

	if (!is_write) {
		for (unsigned i = 0; i < len; i++)
			data[i] = offset + i == 0 ? SYS_CTRL_VERSION : 0;
		return;
	}
	log_debug("sys-ctrl: the guest says it has started");
	if (sc->request)
		sc->request(sc->request_opaque, DEV_REQUEST_STARTED);
}

static int sys_ctrl_realize(const struct dev_ctx *ctx, const struct json_t *state, void **ret)
{
	struct sys_ctrl *sc;
	int r;

	if (!ctx->cfg || !ctx->cfg->sys_ctrl) {
		*ret = NULL;
		return 0;
	}
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return -ENOMEM;
	sc->pio = ctx->pio;
	sc->request = ctx->request;
	sc->request_opaque = ctx->request_opaque;
	r = bus_register(ctx->pio, SYS_CTRL_PORT, 4, sys_ctrl_pio, sc, "sys-ctrl");
	if (r < 0) {
		free(sc);
		return r;
	}
	*ret = sc;
	return 0;
}

static void sys_ctrl_unrealize(void *dev)
{
	struct sys_ctrl *sc = dev;

	if (!sc)
		return;
	(void)bus_unregister(sc->pio, SYS_CTRL_PORT);
	free(sc);
}

const struct dev_ops sys_ctrl_ops = {
	.name = "sys-ctrl",
	.realize = sys_ctrl_realize,
	.unrealize = sys_ctrl_unrealize,
};
