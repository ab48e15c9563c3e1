/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for virtio-net (src/devices/virtio/net.c, net_rxtx.c) through the real
 * virtio-PCI transport: the input is a driver that negotiates features, fills the transmit
 * queue (and the receive and control queues) with descriptors and bytes of its choosing, and a
 * host that sends frames back. A SOCK_SEQPACKET socket pair stands in for the TAP. ASan and
 * UBSan catch any access outside guest RAM or the device's buffers; the device must also never
 * claim more transmitted bytes than the frames it accepted.
 *
 * Input: a 8-byte header, then records of 8 bytes (one descriptor each), then bytes that fill
 * the data area of guest RAM and the host frames.
 *   0  u32 driver features (low 32 bits; VERSION_1 is always added)
 *   4  u8  descriptors on the transmit queue (0..16), u8 on the receive queue, u8 on control
 *   7  u8  host frames to send (each up to 2 KiB, cut from the tail of the input)
 * Descriptor record: u16 len, u8 flags, u8 next, u32 addr (below 2 MiB: RAM is 1 MiB;
 * bit 31 set: the address is pushed past 4 GiB).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* The unit-test harness, with its checks turned into traps. */
#include "harness_traps.h"
#include "../tests/unit/virtio_harness.h"

#include "devices/virtio/net.h"
#include "util/log.h"
#include "util/util.h"

#define QSIZE	  16
#define DATA	  0x40000
#define DATA_SIZE 0x40000
#define MAX_FRAME 2048
#define REC	  8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Descriptors @n of queue @q from the records at *@p; each chain head made available. */
static void fill_queue(struct vh *h, unsigned q, unsigned n, const uint8_t **p, const uint8_t *end)
{
	for (unsigned i = 0; i < n && *p + REC <= end; i++, *p += REC) {
		const uint8_t *r = *p;
		uint64_t addr = get32(r + 4);

		if (addr & 0x80000000u)
			addr = (addr & 0x7fffffffu) << 3;
		else
			addr &= 0x1fffff;
		vh_desc(h, q, i, addr, (uint32_t)(r[0] | r[1] << 8) * 2, r[2] & 7, r[3] % QSIZE);
		if (!(r[2] & 0x80))
			vh_avail(h, q, QSIZE, (uint16_t)i);
	}
}

static void drain(int fd)
{
	uint8_t buf[MAX_FRAME];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data + 8, *end = data + size;
	struct net_config cfg;
	struct vh *h;
	void *dev = NULL;
	int sp[2];
	unsigned ntx, nrx, nctrl, nframes;
	struct net_counters c;

	if (size < 8)
		return 0;
	log_set_level(LOG_ERROR);
	ntx = data[4] % (QSIZE + 1);
	nrx = data[5] % (QSIZE + 1);
	nctrl = data[6] % (QSIZE + 1);
	nframes = data[7] % 8;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0)
		return 0;
	h = vh_create(true);
	net_config_init(&cfg);
	cfg.queue_size = QSIZE;
	if (net_create_with_fds(&h->ctx, &cfg, sp, 1, &dev) < 0)
		__builtin_trap();
	vh_attach(h, virtio_pci_function(net_transport(dev)), 4);
	vh_negotiate(h, VH_VERSION_1 | get32(data));
	for (unsigned q = 0; q < 3; q++)
		vh_setup_queue(h, q, QSIZE);
	vh_driver_ok(h);

	fill_queue(h, 0, nrx, &p, end);
	fill_queue(h, 1, ntx, &p, end);
	fill_queue(h, 2, nctrl, &p, end);
	if (p < end)
		memcpy(h->ram + DATA, p, MIN((size_t)(end - p), (size_t)DATA_SIZE));

	for (unsigned q = 0; q < 3; q++) {
		vh_notify(h, q);
		virtio_pci_run_notify(net_transport(dev), q);
	}
	drain(sp[1]);
	for (unsigned i = 0; i < nframes && p < end; i++) {
		size_t len = MIN((size_t)(end - p), (size_t)MAX_FRAME);

		if (send(sp[1], p, len, MSG_DONTWAIT) < 0)
			break;
		p += len / 2 + 1;
	}
	vh_fire(h, sp[0], EPOLLIN | EPOLLOUT);
	virtio_pci_run_notify(net_transport(dev), 0);
	virtio_pci_run_notify(net_transport(dev), 1);
	drain(sp[1]);

	net_get_counters(dev, &c);
	if (c.tx_bytes > (uint64_t)c.tx_frames * NET_MAX_FRAME)
		__builtin_trap();
	net_destroy(dev);
	net_config_free(&cfg);
	close(sp[0]);
	close(sp[1]);
	vh_destroy(h);
	return 0;
}
