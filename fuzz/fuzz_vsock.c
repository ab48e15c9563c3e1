/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the virtio-vsock packet path (src/devices/virtio/vsock.c, vsock_conn.c):
 * the real device on the real virtio-PCI transport and PCI root, 1 MiB of fake guest RAM (the
 * unit tests' harness), real Unix sockets on the host side. The input is a script of guest and
 * host actions; ASan/UBSan catch any access outside the guest's buffers, the harness checks
 * that the device never hangs (every step is bounded) and that the connection table and its
 * buffers stay within their limits.
 *
 * Input: a sequence of steps, each an opcode byte and its operands:
 *   0 LEN(u16) BYTES   a raw transmit packet (header + payload) as one descriptor,
 *                      or two when bit 15 of LEN is set (split in the middle)
 *   1 OP FLAGS GP HP LEN(u16) BUF_ALLOC(u32) FWD(u32) BYTES
 *                      a well-formed header from the guest's cid to the host: guest port GP,
 *                      host port HP (bit 7 set: 2^30 + the rest, a host-initiated one)
 *   2 PORT             the host connects to the listener and asks for guest port PORT
 *   3 K LEN BYTES      host connection K writes LEN bytes
 *   4 K                host connection K reads what there is
 *   5 K HOW            host connection K: shutdown(HOW & 3) or close (HOW & 4)
 *   6 N SIZE(u16)      the guest posts N receive buffers of SIZE bytes
 *   7                  the loop runs (every ready fd's callback, bounded)
 *   8                  device reset by the driver, then set up again
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness_traps.h"
#include "../tests/unit/virtio_harness.h"

#include "devices/virtio/virtio_devices.h"
#include "devices/virtio/vsock.h"
#include "util/util.h"

#define QSIZE	    64
#define RX_BUF	    0x40000
#define RX_MAX	    0x1000 /* per buffer */
#define TX_BUF	    0x80000
#define TX_MAX	    0x11000
#define MAX_HOST    8
#define MAX_STEPS   256
#define LOOP_ROUNDS 64
#define GUEST_CID   3

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	struct vh *h;
	void *dev;
	char path[108];
	int host[MAX_HOST];
	int listener; /* PATH_7: a host service the guest can reach */
	uint16_t rx_desc, tx_desc;
	const uint8_t *in;
	size_t left;
};

static unsigned take(struct fz *f, unsigned n)
{
	unsigned v = 0;

	for (unsigned i = 0; i < n && f->left; i++, f->left--)
		v |= (unsigned)*f->in++ << (8 * i);
	return v;
}

static void run_loop(struct fz *f)
{
	for (unsigned round = 0; round < LOOP_ROUNDS; round++) {
		bool any = false;

		for (unsigned i = 0; i < VH_MAX_FDS; i++) {
			struct vh_fd *fd = &f->h->fds[i];
			struct pollfd p;

			if (!fd->used)
				continue;
			p = (struct pollfd){ .fd = fd->fd, .events = (short)fd->events };
			if (poll(&p, 1, 0) == 1 && p.revents) {
				fd->cb(fd->opaque, (uint32_t)p.revents);
				any = true;
			}
		}
		if (!any)
			return;
	}
}

static void setup_queues(struct fz *f)
{
	if (!(vh_negotiate(f->h, VH_VERSION_1) & VIRTIO_STATUS_FEATURES_OK))
		__builtin_trap();
	for (unsigned q = 0; q < 3; q++)
		vh_setup_queue(f->h, q, QSIZE);
	vh_driver_ok(f->h);
	memset(f->h->avail_idx, 0, sizeof(f->h->avail_idx));
}

static void guest_tx(struct fz *f, const uint8_t *pkt, size_t len, bool split)
{
	uint16_t d = (uint16_t)(f->tx_desc++ % (QSIZE / 2) * 2);
	uint64_t gpa = TX_BUF;

	memcpy(f->h->ram + gpa, pkt, len);
	if (split && len > 1) {
		vh_desc(f->h, VSOCK_TXQ, d, gpa, (uint32_t)len / 2, VIRTQ_DESC_F_NEXT,
			(uint16_t)(d + 1));
		vh_desc(f->h, VSOCK_TXQ, d + 1, gpa + len / 2, (uint32_t)(len - len / 2), 0, 0);
	} else {
		vh_desc(f->h, VSOCK_TXQ, d, gpa, (uint32_t)len, 0, 0);
	}
	vh_avail(f->h, VSOCK_TXQ, QSIZE, d);
	vh_notify(f->h, VSOCK_TXQ);
	run_loop(f);
}

static void step_raw(struct fz *f)
{
	static uint8_t pkt[TX_MAX];
	unsigned len = take(f, 2);
	size_t n = MIN((size_t)(len & 0x7fff), f->left);

	memcpy(pkt, f->in, n);
	f->in += n;
	f->left -= n;
	guest_tx(f, pkt, n, len & 0x8000);
}

static void step_hdr(struct fz *f)
{
	static uint8_t pkt[VSOCK_HDR_SIZE + VSOCK_MAX_PKT_LEN];
	struct vsock_hdr h = { .src_cid = GUEST_CID,
			       .dst_cid = VSOCK_HOST_CID,
			       .type = VSOCK_TYPE_STREAM };
	unsigned hp, len;
	size_t n;

	h.op = (uint16_t)take(f, 1);
	h.flags = take(f, 1);
	h.src_port = take(f, 1);
	hp = take(f, 1);
	h.dst_port = hp & 0x80 ? VSOCK_LOCAL_PORT_BASE + (hp & 0x7f) : hp;
	len = take(f, 2);
	h.buf_alloc = take(f, 4);
	h.fwd_cnt = take(f, 4);
	n = MIN((size_t)len, f->left);
	h.len = len; /* may claim more than follows: the device must notice */
	vsock_hdr_encode(&h, pkt);
	memcpy(pkt + VSOCK_HDR_SIZE, f->in, n);
	f->in += n;
	f->left -= n;
	guest_tx(f, pkt, VSOCK_HDR_SIZE + n, false);
}

static void step_connect(struct fz *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char line[32];
	unsigned port = take(f, 1);
	int fd;

	for (unsigned k = 0; k < MAX_HOST; k++) {
		if (f->host[k] >= 0)
			continue;
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		memcpy(sa.sun_path, f->path, strlen(f->path) + 1);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			if (fd >= 0)
				close(fd);
			return;
		}
		snprintf(line, sizeof(line), "CONNECT %u\n", port);
		(void)!write(fd, line, strlen(line));
		f->host[k] = fd;
		run_loop(f);
		return;
	}
}

static void step_host(struct fz *f, unsigned op)
{
	static uint8_t buf[65536];
	unsigned k = take(f, 1) % MAX_HOST, n, how;
	int fd = f->host[k];

	switch (op) {
	case 3:
		n = MIN((size_t)take(f, 1) * 64, sizeof(buf));
		memset(buf, 'h', n);
		if (fd >= 0)
			(void)!send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		break;
	case 4:
		if (fd >= 0)
			(void)!recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		break;
	default:
		how = take(f, 1);
		if (fd < 0)
			break;
		if (how & 4) {
			close(fd);
			f->host[k] = -1;
		} else {
			(void)shutdown(fd, (int)(how % 3));
		}
		break;
	}
	run_loop(f);
}

static void step_rx(struct fz *f)
{
	unsigned n = take(f, 1) % 8, size = take(f, 2) % (RX_MAX + 1);

	for (unsigned i = 0; i < n; i++) {
		uint16_t d = (uint16_t)(f->rx_desc++ % QSIZE);

		vh_desc(f->h, VSOCK_RXQ, d, RX_BUF + (uint64_t)(d % 16) * RX_MAX, size,
			VIRTQ_DESC_F_WRITE, 0);
		vh_avail(f->h, VSOCK_RXQ, QSIZE, d);
	}
	vh_notify(f->h, VSOCK_RXQ);
	run_loop(f);
}

static int listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { .in = data, .left = size, .listener = -1 };
	struct vsock_config cfg = { .cid = GUEST_CID };
	char svc[128];

	snprintf(f.path, sizeof(f.path), "/tmp/fuzz_vsock.%d.sock", (int)getpid());
	snprintf(svc, sizeof(svc), "%s_7", f.path);
	cfg.socket = f.path;
	for (unsigned k = 0; k < MAX_HOST; k++)
		f.host[k] = -1;
	f.h = vh_create(true);
	if (vsock_create(&f.h->ctx, &cfg, &f.dev) < 0)
		__builtin_trap();
	f.listener = listen_at(svc);
	vh_attach(f.h, virtio_pci_function(vsock_transport(f.dev)), 4);
	setup_queues(&f);
	for (unsigned s = 0; s < MAX_STEPS && f.left; s++) {
		unsigned op = take(&f, 1) % 9;

		switch (op) {
		case 0:
			step_raw(&f);
			break;
		case 1:
			step_hdr(&f);
			break;
		case 2:
			step_connect(&f);
			break;
		case 3:
		case 4:
		case 5:
			step_host(&f, op);
			break;
		case 6:
			step_rx(&f);
			break;
		case 7:
			run_loop(&f);
			break;
		default:
			vh_wr(f.h, VIRTIO_PCI_COMMON_STATUS, 0, 1);
			setup_queues(&f);
			break;
		}
		if (((struct vsock *)f.dev)->nr_conns > VSOCK_MAX_CONNS)
			__builtin_trap();
		for (unsigned i = 0; i < ((struct vsock *)f.dev)->nr_conns; i++) {
			if (((struct vsock *)f.dev)->conns[i]->buf_len > VSOCK_CONN_BUF_SIZE)
				__builtin_trap();
		}
	}
	vsock_ops.unrealize(f.dev);
	vh_destroy(f.h);
	for (unsigned k = 0; k < MAX_HOST; k++) {
		if (f.host[k] >= 0)
			close(f.host[k]);
	}
	if (f.listener >= 0) {
		/* guest connections to the service were accepted by nobody: drop them */
		for (int fd; (fd = accept(f.listener, NULL, NULL)) >= 0;)
			close(fd);
		close(f.listener);
		unlink(svc);
	}
	return 0;
}
