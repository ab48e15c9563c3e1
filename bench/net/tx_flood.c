/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host side of bench/net's receive cases: floods a TAP's host side with Ethernet frames
 * of one size, addressed to the guest, so that what the guest receives per second is set by the
 * VMM's receive path and not by the sender (the Python sender this replaces topped out first).
 *
 * Frames go out on an AF_PACKET socket bound to the TAP, in batches of FLOOD_BATCH through
 * sendmmsg(), straight to the device (PACKET_QDISC_BYPASS). The TAP queues them for its reader
 * (txqueuelen frames) and drops what does not fit. Spinning on a full queue would only take a
 * CPU away from the VMM under test, so after each batch the sender looks at the TAP's
 * tx_dropped counter: when it grew, the queue is full and the sender sleeps FLOOD_SLEEP_US, a
 * small part of what a full queue of 10,000 frames holds at any rate measured here.
 *
 * Frames: to DST_MAC from the TAP's MAC, EtherType 0x88b5 (what the test guest counts), a magic,
 * a zero sequence number and the length, then a fixed pattern.
 *
 * With COUNT, it stops once the TAP has taken COUNT frames (sent less dropped): started
 * before the guest reads and with a TAP queue (txqueuelen) longer than COUNT, the guest then
 * drains a queue filled ahead, and the sender hardly competes with the VMM for the host's CPUs
 * while it is measured.
 *
 * Usage: tx-flood IFACE DST_MAC SIZE SECONDS [COUNT]
 * Prints "ready" once bound, then "sent N frames, D dropped by the TAP" when SECONDS have
 * passed, COUNT frames went in, or on SIGTERM/SIGINT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FLOOD_BATCH	64
#define FLOOD_SLEEP_US	200
#define FLOOD_MIN	60
#define FLOOD_MAX	1514
#define FLOOD_ETHERTYPE 0x88b5
#define FLOOD_MAGIC	0x4e425543u

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int parse_mac(const char *s, uint8_t *mac)
{
	unsigned v[6];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		return -1;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 0xff)
			return -1;
		mac[i] = (uint8_t)v[i];
	}
	return 0;
}

/* Reads one of the interface's statistics from sysfs; 0 when it cannot. */
static uint64_t if_stat(const char *iface, const char *name)
{
	char path[128], buf[32];
	FILE *f;
	uint64_t v = 0;

	snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s", iface, name);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f))
		v = strtoull(buf, NULL, 10);
	fclose(f);
	return v;
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void build_frame(uint8_t *f, size_t len, const uint8_t *dst, const uint8_t *src)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = FLOOD_ETHERTYPE >> 8;
	f[13] = FLOOD_ETHERTYPE & 0xff;
	for (int i = 0; i < 4; i++) {
		f[14 + i] = (uint8_t)(FLOOD_MAGIC >> (24 - 8 * i));
		f[18 + i] = 0;
		f[22 + i] = (uint8_t)(len >> (24 - 8 * i));
	}
	for (size_t i = 26; i < len; i++)
		f[i] = (uint8_t)(i * 7u + (i >> 8));
}

/* Waits until the TAP has a carrier (the VMM opened it) and returns its MAC. */
static int wait_carrier(const char *iface, uint8_t *ret_mac)
{
	char path[128], buf[32];

	for (int i = 0; i < 6000; i++) {
		FILE *f;
		int up = 0;

		snprintf(path, sizeof(path), "/sys/class/net/%s/carrier", iface);
		f = fopen(path, "r");
		if (f) {
			up = fgets(buf, sizeof(buf), f) && buf[0] == '1';
			fclose(f);
		}
		if (up) {
			snprintf(path, sizeof(path), "/sys/class/net/%s/address", iface);
			f = fopen(path, "r");
			if (!f)
				return -1;
			up = fgets(buf, sizeof(buf), f) && parse_mac(buf, ret_mac) == 0;
			fclose(f);
			return up ? 0 : -1;
		}
		usleep(10000);
	}
	return -1;
}

int main(int argc, char **argv)
{
	static uint8_t frame[FLOOD_MAX];
	struct mmsghdr msgs[FLOOD_BATCH];
	struct iovec iov = { frame, 0 };
	struct sockaddr_ll addr = { .sll_family = AF_PACKET };
	uint8_t dst[6], src[6];
	uint64_t sent = 0, count = UINT64_MAX, dropped0, dropped;
	double seconds, end;
	long size;
	int one = 1, fd;

	if (argc == 6)
		count = strtoull(argv[5], NULL, 10);
	if (argc < 5 || argc > 6 || count == 0 || parse_mac(argv[2], dst) < 0 ||
	    (size = strtol(argv[3], NULL, 10)) < FLOOD_MIN || size > FLOOD_MAX ||
	    (seconds = strtod(argv[4], NULL)) <= 0) {
		fprintf(stderr, "usage: tx-flood IFACE DST_MAC SIZE(%d..%d) SECONDS [COUNT]\n",
			FLOOD_MIN, FLOOD_MAX);
		return 2;
	}
	if (wait_carrier(argv[1], src) < 0) {
		fprintf(stderr, "tx-flood: %s: no carrier within 60 s\n", argv[1]);
		return 1;
	}
	fd = socket(AF_PACKET, SOCK_RAW, 0); /* send only: no protocol, nothing received */
	addr.sll_ifindex = (int)if_nametoindex(argv[1]);
	if (fd < 0 || !addr.sll_ifindex ||
	    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fprintf(stderr, "tx-flood: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	build_frame(frame, (size_t)size, dst, src);
	iov.iov_len = (size_t)size;
	for (int i = 0; i < FLOOD_BATCH; i++)
		msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov, .msg_iovlen = 1 } };
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	dropped0 = dropped = if_stat(argv[1], "tx_dropped");
	printf("ready\n");
	fflush(stdout);
	end = now_s() + seconds;
	while (!stop && now_s() < end && sent - (dropped - dropped0) < count) {
		uint64_t left = count - (sent - (dropped - dropped0));
		int r = sendmmsg(fd, msgs, left < FLOOD_BATCH ? (unsigned)left : FLOOD_BATCH, 0);
		uint64_t d;

		if (r < 0 && errno != EINTR && errno != ENOBUFS && errno != EAGAIN) {
			fprintf(stderr, "tx-flood: send: %s\n", strerror(errno));
			return 1;
		}
		sent += r > 0 ? (uint64_t)r : 0;
		d = if_stat(argv[1], "tx_dropped");
		if (d != dropped || r <= 0)
			usleep(FLOOD_SLEEP_US);
		dropped = d;
	}
	printf("sent %lu frames, %lu dropped by the TAP\n", (unsigned long)sent,
	       (unsigned long)(dropped - dropped0));
	return 0;
}
