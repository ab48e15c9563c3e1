/* SPDX-License-Identifier: Apache-2.0 */
/*
 * --pmem file=PATH[,size=S][,discard_writes=on|off][,iommu=on|off][,id=ID][,pci_segment=N]
 * (Cloud Hypervisor v28's PmemConfig; repeatable) and its validation. Whether the file exists
 * and how large it is are checked when the device is created (devices/virtio/pmem.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/kv.h"
#include "util/util.h"

#define OPT "--pmem"

static int parse_item(struct pmem_config *p, const struct kv *kv, char *err, size_t errlen)
{
	uint64_t v;
	int r;

	if (strcmp(kv->key, "file") == 0)
		return kv_str(OPT, kv, &p->file, err, errlen);
	if (strcmp(kv->key, "id") == 0) {
		r = kv_str(OPT, kv, &p->id, err, errlen);
		if (r == 0 && strlen(p->id) >= CONFIG_ID_MAX)
			r = error_set(err, errlen, -EINVAL, OPT ": id is longer than %u bytes",
				      CONFIG_ID_MAX - 1);
		return r;
	}
	if (strcmp(kv->key, "size") == 0)
		return kv_size(OPT, kv, &p->size, err, errlen);
	if (strcmp(kv->key, "discard_writes") == 0)
		return kv_bool(OPT, kv, &p->discard_writes, err, errlen);
	if (strcmp(kv->key, "iommu") == 0)
		return kv_bool(OPT, kv, &p->iommu, err, errlen);
	if (strcmp(kv->key, "pci_segment") == 0) {
		r = kv_u64(OPT, kv, UINT16_MAX, &v, err, errlen);
		if (r == 0)
			p->pci_segment = (uint16_t)v;
		return r;
	}
	return error_set(err, errlen, -EINVAL, OPT ": unknown key '%s'", kv->key);
}

int config_parse_pmem(struct vm_config *cfg, const char *arg, char *err, size_t errlen)
{
	struct pmem_config p = { 0 };
	struct kv_list l;
	int r;

	if (cfg->num_pmems == CONFIG_MAX_PMEMS)
		return error_set(err, errlen, -EINVAL, OPT ": more than %u devices",
				 CONFIG_MAX_PMEMS);
	r = kv_split(OPT, arg, &l, err, errlen);
	for (unsigned i = 0; r >= 0 && i < l.n; i++)
		r = parse_item(&p, &l.items[i], err, errlen);
	kv_free(&l);
	if (r == 0 && !p.file)
		r = error_set(err, errlen, -EINVAL, OPT ": file= is required");
	if (r < 0) {
		pmem_config_free(&p);
		return r;
	}
	cfg->pmems[cfg->num_pmems++] = p;
	return 0;
}

int config_validate_pmems(const struct vm_config *cfg, char *err, size_t errlen)
{
	for (unsigned i = 0; i < cfg->num_pmems; i++) {
		const struct pmem_config *p = &cfg->pmems[i];

		if (!p->file || !p->file[0])
			return error_set(err, errlen, -EINVAL, OPT ": file= is required");
		/* Cloud Hypervisor v28: "Pmem size is not aligned" (2 MiB). */
		if (!IS_ALIGNED(p->size, PMEM_ALIGN))
			return error_set(err, errlen, -EINVAL,
					 OPT ": size of '%s' must be a multiple of 2 MiB", p->file);
		if (p->iommu)
			return error_set(err, errlen, -EINVAL, OPT ": iommu=on: not supported yet");
		if (p->pci_segment)
			return error_set(err, errlen, -EINVAL,
					 OPT ": pci_segment %u: only segment 0 exists",
					 p->pci_segment);
		for (unsigned j = 0; j < i; j++) {
			if (p->id && cfg->pmems[j].id && strcmp(p->id, cfg->pmems[j].id) == 0)
				return error_set(err, errlen, -EINVAL, OPT ": id '%s' given twice",
						 p->id);
		}
	}
	return 0;
}
