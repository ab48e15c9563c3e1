/* SPDX-License-Identifier: Apache-2.0 */
/*
 * --vsock (Cloud Hypervisor's VsockConfig): "cid=N,socket=PATH[,iommu=on|off][,id=ID]
 * [,pci_segment=0]", and its validation.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/kv.h"
#include "util/util.h"

#define OPT "--vsock"

static int vsock_parse_item(struct vsock_config *v, const struct kv *kv, bool *ret_cid, char *err,
			    size_t errlen)
{
	uint64_t seg;
	int r;

	if (strcmp(kv->key, "cid") == 0) {
		r = kv_u64(OPT, kv, UINT64_MAX, &v->cid, err, errlen);
		if (r == 0)
			*ret_cid = true;
		return r;
	}
	if (strcmp(kv->key, "socket") == 0 || strcmp(kv->key, "id") == 0) {
		char **slot = kv->key[0] == 's' ? &v->socket : &v->id;

		r = kv_need_value(OPT, kv, err, errlen);
		if (r < 0)
			return r;
		*slot = strdup(kv->value);
		return *slot ? 0 : -ENOMEM;
	}
	if (strcmp(kv->key, "iommu") == 0)
		return kv_bool(OPT, kv, &v->iommu, err, errlen);
	if (strcmp(kv->key, "pci_segment") == 0) {
		r = kv_u64(OPT, kv, UINT16_MAX, &seg, err, errlen);
		if (r == 0)
			v->pci_segment = (uint16_t)seg;
		return r;
	}
	return error_set(err, errlen, -EINVAL, OPT ": unknown key '%s'", kv->key);
}

int config_parse_vsock(struct vm_config *cfg, const char *arg, char *err, size_t errlen)
{
	struct vsock_config *v;
	struct kv_list l;
	bool has_cid = false;
	int r;

	if (cfg->vsock)
		return error_set(err, errlen, -EINVAL, OPT ": given more than once");
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	r = kv_split(OPT, arg, &l, err, errlen);
	for (unsigned i = 0; r >= 0 && i < l.n; i++)
		r = vsock_parse_item(v, &l.items[i], &has_cid, err, errlen);
	kv_free(&l);
	if (r >= 0 && !has_cid)
		r = error_set(err, errlen, -EINVAL, OPT ": 'cid' is required");
	if (r >= 0 && !v->socket)
		r = error_set(err, errlen, -EINVAL, OPT ": 'socket' is required");
	if (r < 0) {
		vsock_config_free(v);
		return r;
	}
	cfg->vsock = v;
	return 0;
}

int vsock_config_validate(const struct vsock_config *v, char *err, size_t errlen)
{
	if (!v)
		return 0;
	/* 0 and 1 are reserved, 2 is the host, U32_MAX is VMADDR_CID_ANY (as Cloud Hypervisor). */
	if (v->cid < CONFIG_VSOCK_MIN_CID || v->cid > CONFIG_VSOCK_MAX_CID)
		return error_set(err, errlen, -EINVAL,
				 OPT ": cid %llu is out of range (%u to %u; 0-2 are reserved)",
				 (unsigned long long)v->cid, CONFIG_VSOCK_MIN_CID,
				 CONFIG_VSOCK_MAX_CID);
	if (!v->socket || !v->socket[0])
		return error_set(err, errlen, -EINVAL, OPT ": 'socket' is required");
	if (strlen(v->socket) > CONFIG_VSOCK_PATH_MAX)
		return error_set(err, errlen, -EINVAL,
				 OPT ": socket path is %zu bytes, longer than the maximum of %u "
				     "(a Unix socket path, with room for the _PORT suffix)",
				 strlen(v->socket), CONFIG_VSOCK_PATH_MAX);
	if (v->pci_segment != 0)
		return error_set(err, errlen, -EINVAL,
				 OPT ": pci_segment %u: only segment 0 exists", v->pci_segment);
	if (v->iommu)
		return error_set(err, errlen, -EINVAL, OPT ": iommu=on is not supported yet");
	return 0;
}
