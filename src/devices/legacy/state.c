/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Restoring a legacy device's saved state (legacy.h): every failure becomes one line in
 * ctx->err that names the device and the field.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "devices/legacy/legacy.h"
#include "util/state.h"

int legacy_state_fail(const struct dev_ctx *ctx, const char *dev, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (ctx->errlen)
		snprintf(ctx->err, ctx->errlen, "%s: saved state: %s", dev, what);
	return -EINVAL;
}

int legacy_state_load(const struct dev_ctx *ctx, const char *dev, const struct json_t *state,
		      const struct state_field *fields, size_t n, void *dst)
{
	char what[200] = "";
	int r = state_load_fields(state, fields, n, dst, what, sizeof(what));

	if (r < 0)
		return legacy_state_fail(ctx, dev, "%s", what);
	return 0;
}
