/* SPDX-License-Identifier: Apache-2.0 */
/* Commands: the answer a handler writes on the loop thread, and their shared lifetime. */
#include "api/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

unsigned api_cmd_reply(struct api_cmd *cmd, unsigned status, json_t *body)
{
	free(cmd->resp);
	cmd->resp = NULL;
	if (body) {
		cmd->resp = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(body);
	}
	/* A body that could not be built or written (ENOMEM); a 200 always has one, except
	 * vmm.shutdown's. */
	if ((body && !cmd->resp) || (!body && status == 200 && !cmd->stop_vmm)) {
		cmd->resp = strdup("{\"error\":\"out of memory\"}");
		status = 500;
	}
	cmd->status = status;
	return status;
}

unsigned api_cmd_error(struct api_cmd *cmd, unsigned status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return api_cmd_reply(cmd, status, json_pack("{s:s}", "error", msg));
}

void api_cmd_put(struct api_cmd *cmd)
{
	if (!cmd || atomic_fetch_sub(&cmd->refs, 1) != 1)
		return;
	json_decref(cmd->body);
	for (unsigned i = 0; i < cmd->nr_fds; i++)
		if (cmd->fds[i] >= 0)
			close(cmd->fds[i]);
	free(cmd->resp);
	pthread_mutex_destroy(&cmd->lock);
	pthread_cond_destroy(&cmd->cond);
	free(cmd);
}

void api_cmd_defer(struct api_cmd *cmd)
{
	atomic_fetch_add(&cmd->refs, 1);
	cmd->deferred = true;
}

void api_cmd_finish(struct api_cmd *cmd)
{
	static const uint64_t one = 1;

	pthread_mutex_lock(&cmd->lock);
	cmd->done = true;
	pthread_cond_signal(&cmd->cond);
	/* Under the lock: the server clears wakefd (under it) before it closes the fd. */
	if (cmd->wakefd >= 0)
		(void)!write(cmd->wakefd, &one, sizeof(one));
	pthread_mutex_unlock(&cmd->lock);
	api_cmd_put(cmd);
}
