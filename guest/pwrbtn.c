/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pwrbtn: the guest's ACPI power button handler (cubicle's vm.power-button). The kernel's
 * button driver reports a press as a generic netlink event (family "acpi_event", group
 * "acpi_mc_group", device class "button/power"); the guest kernel has no evdev, so busybox's
 * acpid cannot see it. On a press: sync, then power off (what `poweroff -f` does).
 * Started in the background by /init. Static, no arguments.
 */
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <unistd.h>

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
	na->nla_len = NLA_HDRLEN + strlen(family) + 1;
	memcpy((char *)na + NLA_HDRLEN, family, strlen(family) + 1);
	req.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN) + NLA_ALIGN(na->nla_len);
	req.n.nlmsg_type = GENL_ID_CTRL;
	req.n.nlmsg_flags = NLM_F_REQUEST;
	req.g.cmd = CTRL_CMD_GETFAMILY;
	req.g.version = 1;
	if (send(fd, &req, req.n.nlmsg_len, 0) < 0)
		return -1;
	int n = recv(fd, u.buf, sizeof(u.buf), 0);
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
				    strncmp(data, "acpi_mc_group", f->nla_len - NLA_HDRLEN) == 0)
					match = 1;
			}
			if (match)
				return id;
		}
	}
	return -1;
}

int main(void)
{
	static union {
		char buf[4096];
		struct nlmsghdr align;
	} u;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("pwrbtn: netlink");
		return 1;
	}
	int group = acpi_group(fd);
	if (group < 0 ||
	    setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) < 0) {
		fprintf(stderr, "pwrbtn: no ACPI event group\n");
		return 1;
	}
	/* Tests wait for this line before they press the button. */
	printf("cubicle-guest: power button handler ready\n");
	fflush(stdout);
	for (;;) {
		int n = recv(fd, u.buf, sizeof(u.buf), 0);
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
				    strncmp(e->device_class, "button/power", 12) != 0)
					continue;
				printf("cubicle-guest: power button pressed, powering off\n");
				fflush(stdout);
				sync();
				reboot(RB_POWER_OFF);
			}
		}
	}
}
