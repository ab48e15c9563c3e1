/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pwrbtn: the guest's ACPI power button handler (cubicle's vm.power-button). The kernel's
 * button driver reports a press as a generic netlink event (family "acpi_event", group
 * "acpi_mc_group", device class "button/power"), with or without evdev (which busybox's
 * acpid would need). On a press: sync, then power off (what `poweroff -f` does). Started in
 * the background by /init. No arguments.
 *
 * Freestanding (raw system calls, no libc): the initramfs is not compressed and every megabyte
 * costs seconds of boot on hosts that emulate the guest kernel (guest/README.md); this is a
 * few kilobytes where a static glibc binary is ~700 KB. Built by guest/build.sh.
 */
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/reboot.h>
#include <linux/socket.h>
#include <asm/unistd.h>
#include <stddef.h>

#include "sys.h"

#define AF_NETLINK_   16
#define SOCK_RAW_     3
#define SOCK_CLOEXEC_ 02000000
#define SOL_NETLINK_  270

static size_t slen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

static int sncmp(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i] != b[i])
			return (unsigned char)a[i] - (unsigned char)b[i];
		if (!a[i])
			return 0;
	}
	return 0;
}

/* The compiler may emit calls to these for struct copies and zeroing. */
void *memcpy(void *d, const void *s, size_t n);
void *memcpy(void *d, const void *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		((char *)d)[i] = ((const char *)s)[i];
	return d;
}

void *memset(void *d, int c, size_t n);
void *memset(void *d, int c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		((char *)d)[i] = (char)c;
	return d;
}

static void say(const char *s)
{
	sys(__NR_write, 1, (long)s, (long)slen(s), 0, 0, 0);
}

#define ACPI_GENL_ATTR_EVENT 1

/* drivers/acpi/event.c */
struct acpi_genl_event {
	char device_class[20];
	char bus_id[15];
	unsigned int type;
	unsigned int data;
};

struct nl_req {
	struct nlmsghdr n;
	struct genlmsghdr g;
	char buf[64];
};

static struct nlattr *attr_next(struct nlattr *a, int *left)
{
	int len = NLA_ALIGN(a->nla_len);
	*left -= len;
	return (struct nlattr *)((char *)a + len);
}

static int attr_ok(const struct nlattr *a, int left)
{
	return left >= (int)sizeof(*a) && a->nla_len >= sizeof(*a) && a->nla_len <= left;
}

/* The multicast group id of acpi_event/acpi_mc_group, or -1. */
static int acpi_group(int fd)
{
	static union {
		char buf[8192];
		struct nlmsghdr align;
	} u;
	struct nl_req req = { 0 };
	const char *family = "acpi_event";
	struct nlattr *na = (struct nlattr *)req.buf;

	na->nla_type = CTRL_ATTR_FAMILY_NAME;
	na->nla_len = NLA_HDRLEN + slen(family) + 1;
	memcpy((char *)na + NLA_HDRLEN, family, slen(family) + 1);
	req.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN) + NLA_ALIGN(na->nla_len);
	req.n.nlmsg_type = GENL_ID_CTRL;
	req.n.nlmsg_flags = NLM_F_REQUEST;
	req.g.cmd = CTRL_CMD_GETFAMILY;
	req.g.version = 1;
	if (sys(__NR_sendto, fd, (long)&req, req.n.nlmsg_len, 0, 0, 0) < 0)
		return -1;
	int n = (int)sys(__NR_recvfrom, fd, (long)u.buf, sizeof(u.buf), 0, 0, 0);
	struct nlmsghdr *h = &u.align;
	if (n < (int)NLMSG_LENGTH(GENL_HDRLEN) || !NLMSG_OK(h, (unsigned)n) ||
	    h->nlmsg_type == NLMSG_ERROR)
		return -1;
	int left = h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	for (struct nlattr *a = (struct nlattr *)((char *)NLMSG_DATA(h) + GENL_HDRLEN);
	     attr_ok(a, left); a = attr_next(a, &left)) {
		if ((a->nla_type & NLA_TYPE_MASK) != CTRL_ATTR_MCAST_GROUPS)
			continue;
		int gleft = a->nla_len - NLA_HDRLEN;
		for (struct nlattr *g = (struct nlattr *)((char *)a + NLA_HDRLEN);
		     attr_ok(g, gleft); g = attr_next(g, &gleft)) {
			int id = -1, match = 0, fleft = g->nla_len - NLA_HDRLEN;
			for (struct nlattr *f = (struct nlattr *)((char *)g + NLA_HDRLEN);
			     attr_ok(f, fleft); f = attr_next(f, &fleft)) {
				char *data = (char *)f + NLA_HDRLEN;
				if (f->nla_type == CTRL_ATTR_MCAST_GRP_ID)
					memcpy(&id, data, sizeof(id));
				if (f->nla_type == CTRL_ATTR_MCAST_GRP_NAME &&
				    sncmp(data, "acpi_mc_group", f->nla_len - NLA_HDRLEN) == 0)
					match = 1;
			}
			if (match)
				return id;
		}
	}
	return -1;
}

static int run(void)
{
	static union {
		char buf[4096];
		struct nlmsghdr align;
	} u;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK_ };
	int fd = (int)sys(__NR_socket, AF_NETLINK_, SOCK_RAW_ | SOCK_CLOEXEC_, NETLINK_GENERIC, 0,
			  0, 0);
	if (fd < 0 || sys(__NR_bind, fd, (long)&sa, sizeof(sa), 0, 0, 0) < 0) {
		say("pwrbtn: no netlink socket\n");
		return 1;
	}
	int group = acpi_group(fd);
	if (group < 0 || sys(__NR_setsockopt, fd, SOL_NETLINK_, NETLINK_ADD_MEMBERSHIP,
			     (long)&group, sizeof(group), 0) < 0) {
		say("pwrbtn: no ACPI event group\n");
		return 1;
	}
	/* Tests wait for this line before they press the button. */
	say("cubicle-guest: power button handler ready\n");
	for (;;) {
		int n = (int)sys(__NR_recvfrom, fd, (long)u.buf, sizeof(u.buf), 0, 0, 0);
		if (n <= 0)
			continue;
		for (struct nlmsghdr *h = &u.align; NLMSG_OK(h, (unsigned)n);
		     h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_len < NLMSG_LENGTH(GENL_HDRLEN))
				continue;
			int left = h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
			for (struct nlattr *a =
				     (struct nlattr *)((char *)NLMSG_DATA(h) + GENL_HDRLEN);
			     attr_ok(a, left); a = attr_next(a, &left)) {
				struct acpi_genl_event *e = (void *)((char *)a + NLA_HDRLEN);
				if (a->nla_type != ACPI_GENL_ATTR_EVENT ||
				    a->nla_len < NLA_HDRLEN + sizeof(*e) ||
				    sncmp(e->device_class, "button/power", 12) != 0)
					continue;
				say("cubicle-guest: power button pressed, powering off\n");
				sys(__NR_sync, 0, 0, 0, 0, 0, 0);
				sys(__NR_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
				    LINUX_REBOOT_CMD_POWER_OFF, 0, 0, 0);
			}
		}
	}
}

/* The process entry: %rsp is 16-byte aligned here, one call makes it what C code expects. */
void start_c(void);
void start_c(void)
{
	sys(__NR_exit, run(), 0, 0, 0, 0, 0);
	for (;;)
		;
}

__asm__(".globl _start\n"
	"_start:\n"
	"\txor %ebp, %ebp\n"
	"\tand $-16, %rsp\n"
	"\tcall start_c\n"
	"\thlt\n");
