/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Saved state of the virtio devices that have several instances or a state of their own
 * (virtio_devices.h: vdev_state_*): one instance is its transport's object (virtio_pci_save)
 * with the device's own fields beside it under "device"; a dev_ops entry with many instances
 * keeps them in an array named after the config's ("nets", "pmems", as blk's "disks"), in
 * config order.
 */
#include <errno.h>
#include <stdio.h>

#include "devices/virtio/virtio_devices.h"
#include "util/state.h"
#include "util/util.h"
#include "virtio/virtio.h"

int vdev_state_save(struct virtio_pci *vp, void *dev, vdev_save_fn save, json_t *obj, char *err,
		    size_t errlen)
{
	json_t *own;
	int r = virtio_pci_save(vp, obj, err, errlen);

	if (r < 0)
		return r;
	own = state_add_object(obj, "device");
	if (!own || save(dev, own) < 0)
		return error_set(err, errlen, -ENOMEM, "out of memory");
	return 0;
}

int vdev_state_load(struct virtio_pci *vp, void *dev, vdev_load_fn load, const json_t *obj,
		    char *err, size_t errlen)
{
	const json_t *own;
	char why[256];
	int r = state_get_object(obj, "device", &own, err, errlen);

	/* The transport first (virtio.h has the device's own state first; these four need the
	 * other order): loading it calls the device's activate() as the driver's DRIVER_OK did
	 * (net resets its offloads and queue pairs there), and the device's own state goes on
	 * top of what that set up and is checked against the restored status and features. */
	if (r == 0)
		r = virtio_pci_load(vp, obj, err, errlen);
	if (r == 0) {
		r = load(dev, own, why, sizeof(why));
		if (r < 0)
			error_set(err, errlen, r, "device: %s", why);
	}
	return r;
}

int vdev_state_save_named(json_t *obj, vdev_state_save_fn save, void *dev, const char *name,
			  char *err, size_t errlen)
{
	char why[256];
	int r = save(dev, obj, why, sizeof(why));

	if (r < 0)
		return error_set(err, errlen, r, "%s: %s", name, why);
	return 0;
}

int vdev_state_append(json_t *state, const char *key, vdev_state_save_fn save, void *dev,
		      const char *name, const char *id, char *err, size_t errlen)
{
	json_t *a = json_object_get(state, key);
	json_t *o;
	char what[128];

	if (!a)
		a = state_add_array(state, key);
	o = a ? state_append_object(a) : NULL;
	snprintf(what, sizeof(what), "%s %s", name, id);
	if (!o)
		return error_set(err, errlen, -ENOMEM, "%s: out of memory", what);
	return vdev_state_save_named(o, save, dev, what, err, errlen);
}

int vdev_state_get_instances(const json_t *state, const char *key, unsigned n, const json_t **ret,
			     char *err, size_t errlen)
{
	const json_t *a;
	int r;

	if (!n && !json_object_get(state, key)) {
		*ret = NULL; /* saved without any */
		return 0;
	}
	r = state_get_array(state, key, VDEV_STATE_MAX_INSTANCES, &a, err, errlen);
	if (r < 0)
		return r;
	if (json_array_size(a) != n)
		return error_set(err, errlen, -EINVAL, "field '%s': %zu saved, the config has %u",
				 key, json_array_size(a), n);
	*ret = a;
	return 0;
}
