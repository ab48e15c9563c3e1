/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to the virtio-vsock device (vsock.c: the virtio side and the packet path;
 * vsock_conn.c: the connection table and the Unix-socket side). Everything here runs on the
 * loop thread with the transport's lock held (virtio ops callbacks, or fd callbacks that take
 * virtio_pci_lock()), so nothing below has its own locking.
 *
 * Hybrid vsock, as Cloud Hypervisor and Firecracker have it: the host side of every stream is a
 * Unix stream socket. cubicle listens on PATH; a host program connects, writes
 * "CONNECT <port>\n", and once the guest's listener on that port accepted, reads
 * "OK <local_port>\n" followed by the byte stream. A guest connecting to host port P is
 * connected to the Unix listener at "PATH_P".
 */
#ifndef CUBICLE_DEVICES_VIRTIO_VSOCK_H
#define CUBICLE_DEVICES_VIRTIO_VSOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "util/log.h"
#include "virtio/virtio.h"
#include "virtio/virtq.h"

/* Packet header (virtio 1.2 §5.10.6), little endian, packed. */
#define VSOCK_HDR_SIZE 44

#define VSOCK_TYPE_STREAM 1

#define VSOCK_OP_INVALID	0
#define VSOCK_OP_REQUEST	1
#define VSOCK_OP_RESPONSE	2
#define VSOCK_OP_RST		3
#define VSOCK_OP_SHUTDOWN	4
#define VSOCK_OP_RW		5
#define VSOCK_OP_CREDIT_UPDATE	6
#define VSOCK_OP_CREDIT_REQUEST 7

#define VSOCK_SHUTDOWN_RCV  1 /* the sender will receive no more */
#define VSOCK_SHUTDOWN_SEND 2 /* the sender will send no more */

#define VSOCK_HOST_CID 2

#define VSOCK_RXQ 0
#define VSOCK_TXQ 1
#define VSOCK_EVQ 2

/* struct virtio_vsock_event (§5.10.6.6): le32 id. */
#define VSOCK_EVENT_TRANSPORT_RESET 0
#define VSOCK_EVENT_SIZE	    4

/* Limits (every one a guest or a host client could otherwise push). */
#define VSOCK_MAX_CONNS	       128 /* open connections, both directions, handshakes included */
#define VSOCK_CONN_BUF_SIZE    (256 * 1024) /* buf_alloc: guest→host bytes held per connection */
#define VSOCK_MAX_PKT_LEN      (64 * 1024)  /* payload of one guest packet (Linux's maximum) */
#define VSOCK_RX_CHUNK	       (64 * 1024)  /* payload of one packet to the guest, at most */
#define VSOCK_CONNECT_LINE_MAX 32	    /* "CONNECT 4294967295\n" with room to spare */
#define VSOCK_MAX_PENDING_RST  64	    /* RSTs waiting for a receive buffer */
#define VSOCK_BATCH	       64	    /* packets per queue per turn, then a kick */
#define VSOCK_ACCEPT_BATCH     16	    /* host connections accepted per listener event */
#define VSOCK_CREDIT_THRESHOLD (VSOCK_CONN_BUF_SIZE / 4) /* fwd_cnt advance worth an update */
#define VSOCK_LOCAL_PORT_BASE  (1U << 30) /* host-side ports of host-initiated connections */
/* A host client's CONNECT line, and the guest's answer to a REQUEST, must come within this (the
 * guest's kernel may be emulated: generous); then the host client is closed without "OK". */
#define VSOCK_SETUP_TIMEOUT_NS (10ULL * 1000000000ULL)
#define VSOCK_TIMER_PERIOD_NS  (1000000000ULL) /* how often set-up deadlines are looked at */

struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

void vsock_hdr_decode(const uint8_t *b, struct vsock_hdr *h);
void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t *b);

enum vsock_counter {
	VSOCK_CNT_TX_PACKETS, /* guest → device */
	VSOCK_CNT_TX_BYTES,   /* payload bytes the guest sent */
	VSOCK_CNT_RX_PACKETS, /* device → guest */
	VSOCK_CNT_RX_BYTES,
	VSOCK_CNT_CONNS_OPENED,
	VSOCK_CNT_CONNS_REFUSED,  /* table full, no host listener, bad CONNECT line */
	VSOCK_CNT_DROP_MALFORMED, /* short header, bad length, unknown op or type */
	VSOCK_CNT_DROP_BAD_CID,
	VSOCK_CNT_DROP_UNKNOWN_CONN,
	VSOCK_CNT_DROP_BAD_STATE, /* a packet the connection's state does not allow */
	VSOCK_CNT_CREDIT_VIOLATIONS,
	VSOCK_CNT_RST_SENT,
	VSOCK_CNT_RST_DROPPED, /* no room in the pending RST queue */
	VSOCK_CNT_BAD_RX_BUFFERS,
	VSOCK_CNT_SETUP_TIMEOUTS, /* no CONNECT line, or no answer to a REQUEST, in time */
	VSOCK_CNT_COUNT,
};

enum vsock_conn_state {
	VSOCK_CONN_HANDSHAKE,	/* host client accepted, its CONNECT line not read yet */
	VSOCK_CONN_CONNECTING,	/* REQUEST sent (or to send) to the guest, no RESPONSE yet */
	VSOCK_CONN_ESTABLISHED, /* data both ways */
};

/* Control packets a connection owes the guest (struct vsock_conn.pend). */
#define VSOCK_PEND_REQUEST	  0x1
#define VSOCK_PEND_RESPONSE	  0x2
#define VSOCK_PEND_CREDIT_UPDATE  0x4
#define VSOCK_PEND_CREDIT_REQUEST 0x8

struct vsock;

struct vsock_conn {
	struct vsock *vs;
	int fd;
	bool watched;	/* fd is in the loop */
	uint32_t armed; /* epoll interest set */
	bool hup;	/* the host hung up: fd left the loop, reads and writes go on until EOF */
	bool queued;	/* on vs's work list */
	struct vsock_conn *next_work;
	enum vsock_conn_state state;
	uint32_t host_port, guest_port;
	unsigned pend; /* VSOCK_PEND_* */
	/* guest → host: a ring of what the host socket did not take yet */
	uint8_t *buf; /* VSOCK_CONN_BUF_SIZE bytes, allocated when first needed */
	uint32_t buf_head, buf_len;
	uint32_t guest_tx_cnt; /* payload bytes received from the guest */
	uint32_t fwd_cnt;      /* ... of which written to the host socket */
	uint32_t fwd_cnt_sent; /* the fwd_cnt the guest was last told */
	bool guest_shut_send, guest_shut_rcv;
	bool host_wr_shut; /* shutdown(SHUT_WR) done after the guest's SHUTDOWN SEND */
	/* host → guest */
	uint32_t peer_buf_alloc, peer_fwd_cnt; /* the guest's last word on its receive buffer */
	uint32_t rx_cnt;		       /* payload bytes sent to the guest */
	bool host_readable;		       /* EPOLLIN seen and not drained to EAGAIN */
	bool host_eof;
	bool credit_requested;
	uint64_t deadline_ns; /* set-up must be done by then (time_now_ns); 0: none */
	/* handshake */
	char line[VSOCK_CONNECT_LINE_MAX];
};

struct vsock_rst {
	uint32_t host_port, guest_port;
};

struct vsock {
	struct virtio_pci *vp;
	const struct dev_loop *loop;
	uint64_t guest_cid;
	char *id;
	char *path; /* the listener's path; PATH_P for guest connections */
	int listen_fd;
	bool listen_watched;
	int timer_fd; /* set-up deadlines; armed while a connection has one */
	bool timer_watched, timer_armed;
	bool paused;
	/* Restored with the driver running: its connections are gone, and it learns so from a
	 * TRANSPORT_RESET event on the event queue once resumed (vsock_send_reset). */
	bool reset_pending;
	struct vsock_conn *conns[VSOCK_MAX_CONNS];
	unsigned nr_conns;
	struct vsock_conn *work_head, *work_tail; /* connections owing the guest a packet */
	struct vsock_rst rst[VSOCK_MAX_PENDING_RST];
	unsigned rst_head, rst_len;
	uint32_t next_local_port;
	bool rx_held;
	uint64_t cnt[VSOCK_CNT_COUNT];
	struct log_ratelimit rl;
	struct virtq_elem rx, tx;
	uint8_t pkt[VSOCK_HDR_SIZE + VSOCK_MAX_PKT_LEN]; /* staging for either direction */
};

/* ---- vsock_conn.c: the connection table and the host sockets ---- */

/* Binds and listens on vs->path (a stale socket there is replaced). Returns fd or -errno. */
int vsock_listen(const char *path);
/* The listener is readable: accepts up to VSOCK_ACCEPT_BATCH host connections. */
void vsock_accept(struct vsock *vs);
struct vsock_conn *vsock_conn_find(struct vsock *vs, uint32_t host_port, uint32_t guest_port);
/* The guest's REQUEST from @guest_port to host port @host_port: connects to PATH_P; on failure
 * queues an RST. */
void vsock_conn_guest_connect(struct vsock *vs, uint32_t host_port, uint32_t guest_port,
			      const struct vsock_hdr *h);
/* The guest's RESPONSE to our REQUEST: "OK <port>\n" to the host client. */
void vsock_conn_established(struct vsock_conn *c);
/* Guest payload for the host socket: written through, the rest buffered. The caller checked
 * credit: @len fits what the buffer has room for. */
void vsock_conn_write(struct vsock_conn *c, const uint8_t *data, uint32_t len);
/* The guest's SHUTDOWN flags. */
void vsock_conn_shutdown(struct vsock_conn *c, uint32_t flags);
/* Reads host bytes into @buf (at most @len): >0 bytes, 0 EOF, -EAGAIN, or -errno. */
long vsock_conn_read(struct vsock_conn *c, uint8_t *buf, uint32_t len);
/* Frees @c, closing its socket; @send_rst queues an RST for the guest first. */
void vsock_conn_close(struct vsock_conn *c, bool send_rst);
/* Closes every connection, no RST (device reset). */
void vsock_conn_close_all(struct vsock *vs);
/* Re-evaluates @c: its epoll interest, its place on the work list, whether it is finished. */
void vsock_conn_refresh(struct vsock_conn *c);
/* Credit the guest has for host → guest bytes on @c. */
uint32_t vsock_conn_peer_free(const struct vsock_conn *c);
/* Whether @c owes the guest a packet now. */
bool vsock_conn_wants_rx(const struct vsock_conn *c);
/* Re-arms every fd (pause and resume). */
void vsock_arm_all(struct vsock *vs);
/* Closes the connections whose set-up deadline is before @now_ns (an RST to the guest for a
 * REQUEST it did not answer; the host client sees EOF without "OK"), then arms or disarms
 * the timer for what is left. */
void vsock_expire(struct vsock *vs, uint64_t now_ns);

/* ---- vsock.c ---- */

/* Queues an RST for the guest (dropped and counted when VSOCK_MAX_PENDING_RST wait). */
void vsock_queue_rst(struct vsock *vs, uint32_t host_port, uint32_t guest_port);
/* Sends what the connections owe the guest, as far as receive buffers allow. */
void vsock_rx_pump(struct vsock *vs);
/* Puts @c on the work list (once). */
void vsock_work_add(struct vsock *vs, struct vsock_conn *c);

#endif
