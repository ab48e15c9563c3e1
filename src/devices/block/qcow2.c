/* SPDX-License-Identifier: Apache-2.0 */
/* qcow2 images: not yet; refused at open. */
#include <errno.h>

#include "devices/block/image_priv.h"
#include "util/util.h"

int qcow2_open(struct disk_image *img, char *err, size_t errlen)
{
	return error_set(err, errlen, -ENOTSUP, "'%s': qcow2 images are not supported yet",
			 img->path);
}

const struct disk_format_ops disk_qcow2_ops = {
	.name = "qcow2",
};
