/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tiny AF_VSOCK tool for the default guest (busybox has none): no libc, raw system calls, a
 * few KiB static, because every MiB of initramfs costs seconds of boot on an emulating host.
 *
 *   vsock-echo serve PORT        echo server: every connection gets its bytes back; one poll()
 *                                loop, so a peer that does not read stalls only its own
 *                                connection. Prints "vsock-echo: listening on PORT".
 *   vsock-echo send CID PORT MSG connects, writes MSG, half-closes, prints the reply until EOF
 *                                as "vsock-echo: reply: ..." (or "vsock-echo: connect failed").
 *
 * Built by guest/build.sh: gcc -static -nostdlib -Os.
 */
#include "sys.h"

typedef unsigned long size_t;
typedef long ssize_t;

#define AF_VSOCK       40
#define SOCK_STREAM    1
#define SOCK_NONBLOCK  04000
#define POLLIN	       0x1
#define POLLOUT	       0x4
#define SHUT_WR	       1
#define EAGAIN	       11
#define MAX_CONNS      64
#define BUF_SIZE       65536
#define VMADDR_CID_ANY 0xffffffffU

struct sockaddr_vm {
	unsigned short family, reserved1;
	unsigned int port, cid;
	unsigned char flags, zero[3];
};

struct pollfd {
	int fd;
	short events, revents;
};

/* gcc may call these for struct copies even without libc. */
void *memset(void *d, int c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		((volatile char *)d)[i] = (char)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		((volatile char *)d)[i] = ((const char *)s)[i];
	return d;
}

#define SYS_read     0
#define SYS_write    1
#define SYS_close    3
#define SYS_poll     7
#define SYS_socket   41
#define SYS_connect  42
#define SYS_shutdown 48
#define SYS_bind     49
#define SYS_listen   50
#define SYS_exit     231
#define SYS_accept4  288

static size_t slen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

static void out(const char *s)
{
	sys(SYS_write, 1, (long)s, (long)slen(s), 0, 0, 0);
}

static unsigned int num(const char *s)
{
	unsigned int v = 0;

	while (*s >= '0' && *s <= '9')
		v = v * 10 + (unsigned int)(*s++ - '0');
	return v;
}

static void die(const char *msg)
{
	out("vsock-echo: ");
	out(msg);
	out("\n");
	sys(SYS_exit, 1, 0, 0, 0, 0, 0);
}

struct conn {
	int fd;
	int eof;
	size_t len, off;
	char buf[BUF_SIZE];
};

static struct conn conns[MAX_CONNS];
static struct pollfd pfd[MAX_CONNS + 1];

static void drop(int i)
{
	sys(SYS_close, conns[i].fd, 0, 0, 0, 0, 0);
	conns[i].fd = -1;
}

/* One connection's turn: echo what it sent, stop reading while its echo is not taken. */
static void serve_conn(int i, short revents)
{
	struct conn *c = &conns[i];
	long n;

	if (c->len) {
		n = sys(SYS_write, c->fd, (long)(c->buf + c->off), (long)(c->len - c->off), 0, 0,
			0);
		if (n < 0 && n != -EAGAIN) {
			drop(i);
			return;
		}
		if (n > 0)
			c->off += (size_t)n;
		if (c->off == c->len)
			c->off = c->len = 0;
	} else if (revents) {
		n = sys(SYS_read, c->fd, (long)c->buf, BUF_SIZE, 0, 0, 0);
		if (n == -EAGAIN)
			return;
		if (n <= 0)
			c->eof = 1;
		else
			c->len = (size_t)n;
	}
	if (c->eof && !c->len)
		drop(i);
}

static void serve(unsigned int port)
{
	struct sockaddr_vm sa = { .family = AF_VSOCK, .port = port, .cid = VMADDR_CID_ANY };
	long lfd = sys(SYS_socket, AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK, 0, 0, 0, 0);

	if (lfd < 0 || sys(SYS_bind, lfd, (long)&sa, sizeof(sa), 0, 0, 0) < 0 ||
	    sys(SYS_listen, lfd, 64, 0, 0, 0, 0) < 0)
		die("cannot listen");
	for (int i = 0; i < MAX_CONNS; i++)
		conns[i].fd = -1;
	out("vsock-echo: listening\n");
	for (;;) {
		int n = 0;

		pfd[n++] = (struct pollfd){ .fd = (int)lfd, .events = POLLIN };
		for (int i = 0; i < MAX_CONNS; i++)
			pfd[n++] = (struct pollfd){ .fd = conns[i].fd,
						    .events = conns[i].len ? POLLOUT : POLLIN };
		if (sys(SYS_poll, (long)pfd, n, -1, 0, 0, 0) < 0)
			continue;
		if (pfd[0].revents) {
			long fd = sys(SYS_accept4, lfd, 0, 0, SOCK_NONBLOCK, 0, 0);

			for (int i = 0; fd >= 0 && i < MAX_CONNS; i++) {
				if (conns[i].fd < 0) {
					conns[i] = (struct conn){ .fd = (int)fd };
					fd = -1;
				}
			}
			if (fd >= 0)
				sys(SYS_close, fd, 0, 0, 0, 0, 0);
		}
		for (int i = 0; i < MAX_CONNS; i++) {
			if (conns[i].fd >= 0 && pfd[i + 1].revents)
				serve_conn(i, pfd[i + 1].revents);
		}
	}
}

static void send_msg(unsigned int cid, unsigned int port, const char *msg)
{
	struct sockaddr_vm sa = { .family = AF_VSOCK, .port = port, .cid = cid };
	long fd = sys(SYS_socket, AF_VSOCK, SOCK_STREAM, 0, 0, 0, 0);
	static char buf[4096];
	long n;

	if (fd < 0 || sys(SYS_connect, fd, (long)&sa, sizeof(sa), 0, 0, 0) < 0)
		die("connect failed");
	sys(SYS_write, fd, (long)msg, (long)slen(msg), 0, 0, 0);
	sys(SYS_shutdown, fd, SHUT_WR, 0, 0, 0, 0);
	out("vsock-echo: reply: ");
	while ((n = sys(SYS_read, fd, (long)buf, sizeof(buf), 0, 0, 0)) > 0)
		sys(SYS_write, 1, (long)buf, n, 0, 0, 0);
	out("\n");
	sys(SYS_close, fd, 0, 0, 0, 0, 0);
}

static int run(int argc, char **argv)
{
	if (argc == 3 && argv[1][0] == 's' && argv[1][1] == 'e' && argv[1][2] == 'r')
		serve(num(argv[2]));
	else if (argc == 5 && argv[1][0] == 's' && argv[1][1] == 'e' && argv[1][2] == 'n')
		send_msg(num(argv[2]), num(argv[3]), argv[4]);
	else
		die("usage: vsock-echo serve PORT | send CID PORT MSG");
	return 0;
}

/* The entry: the stack holds argc, then argv. */
__attribute__((used)) static void start_c(long *sp)
{
	sys(SYS_exit, run((int)sp[0], (char **)(sp + 1)), 0, 0, 0, 0, 0);
}

__asm__(".global _start\n"
	"_start:\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call start_c\n"
	"	hlt\n");
