/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk (virtio 1.2 §5.2): one PCI function per --disk, on a disk image
 * (devices/block/image.h) with asynchronous data I/O (devices/block/io.h).
 *
 * Features offered: FLUSH, BLK_SIZE, SEG_MAX, SIZE_MAX, TOPOLOGY, MQ, GET_ID (the serial), RO on
 * a read-only disk, DISCARD and WRITE_ZEROES on a writable one; the transport adds VERSION_1,
 * EVENT_IDX and INDIRECT_DESC.
 *
 * Every request is checked before anything is done for it: a bad one completes with IOERR or
 * UNSUPP in its status byte (or, without a writable status byte, with nothing written) and the
 * device goes on serving the others. Data moves only between the image and the request's own
 * buffers. Reads, writes, and a raw image's discard and write-zeroes are asynchronous (the I/O
 * engine), also with direct=on on a disk whose blocks are larger than the guest's requests
 * (read-modify-write through bounce buffers). A flush completes only after everything taken
 * before it has completed and the image has been flushed (metadata in stages, each followed by
 * an fdatasync on the engine). A qcow2 image's discard, and write-zeroes over whole clusters,
 * change metadata on the loop thread. Each queue is served on its own: a slow request holds
 * only itself.
 */
#ifndef CUBICLE_DEVICES_VIRTIO_BLK_H
#define CUBICLE_DEVICES_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/device.h"

struct virtio_pci;
struct disk_config;

#define VIRTIO_ID_BLOCK 2

/* Request types, status values, feature bits (§5.2.3, §5.2.6). */
#define VIRTIO_BLK_T_IN		  0
#define VIRTIO_BLK_T_OUT	  1
#define VIRTIO_BLK_T_FLUSH	  4
#define VIRTIO_BLK_T_GET_ID	  8
#define VIRTIO_BLK_T_DISCARD	  11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_F_SIZE_MAX	  1
#define VIRTIO_BLK_F_SEG_MAX	  2
#define VIRTIO_BLK_F_RO		  5
#define VIRTIO_BLK_F_BLK_SIZE	  6
#define VIRTIO_BLK_F_FLUSH	  9
#define VIRTIO_BLK_F_TOPOLOGY	  10
#define VIRTIO_BLK_F_MQ		  12
#define VIRTIO_BLK_F_DISCARD	  13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_WZ_F_UNMAP 1 /* discard/write-zeroes segment flags */

#define BLK_SECTOR	    512
#define BLK_HDR_SIZE	    16	       /* type, ioprio, sector */
#define BLK_SEG_SIZE	    16	       /* one discard/write-zeroes segment */
#define BLK_ID_BYTES	    20	       /* GET_ID answer */
#define BLK_CONFIG_SIZE	    60	       /* through write_zeroes_may_unmap and its padding */
#define BLK_SIZE_MAX	    (1U << 20) /* bytes per segment, advertised (SIZE_MAX) */
#define BLK_MAX_DWZ_SEGS    32	       /* segments per discard / write-zeroes request */
#define BLK_MAX_DWZ_SECTORS (1U << 22) /* sectors per discard / write-zeroes segment (2 GiB) */
/* Largest read or write that needs a bounce buffer (O_DIRECT with guest buffers, offsets or
 * lengths not aligned to the disk's block); Linux's requests are at most 4 MiB. A larger one
 * gets IOERR. */
#define BLK_MAX_BOUNCE (8U << 20)

extern const struct dev_ops blk_ops;

/*
 * One virtio-blk for @d (ctx->loop may be NULL in tests: then blk_drain() completes the I/O).
 * Returns 0 with *@ret, or -errno with ctx->err naming --disk and the problem (missing, locked,
 * corrupt image...).
 */
int blk_create(const struct dev_ctx *ctx, const struct disk_config *d, void **ret);
void blk_destroy(void *dev);
struct virtio_pci *blk_transport(void *dev);
/* Waits for every read and write in flight and completes them (tests; pause). */
void blk_drain(void *dev);
/* Which engine serves the disk: "io_uring" or "thread-pool". */
const char *blk_engine(void *dev);
/* Disk @i (in --disk order) of what blk_ops.realize returned, or NULL (tests). */
void *blk_set_disk(void *set, unsigned i);

#endif
