/* SPDX-License-Identifier: Apache-2.0 */
/* The TAP backend of virtio-net (tap.h): /dev/net/tun queues with a vnet header. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/backend/tap.h"
#include "util/util.h"

#define TAP_DEV		 "/dev/net/tun"
#define TAP_NAME_PATTERN "vmtap%d" /* Cloud Hypervisor's: the kernel picks the number */

static_assert(TAP_OFFLOAD_CSUM == TUN_F_CSUM && TAP_OFFLOAD_TSO4 == TUN_F_TSO4 &&
		      TAP_OFFLOAD_TSO6 == TUN_F_TSO6 && TAP_OFFLOAD_TSO_ECN == TUN_F_TSO_ECN,
	      "TAP_OFFLOAD_* are TUN_F_*");

static int tap_prepare_fd(int fd)
{
	int hdr = TAP_VNET_HDR_LEN;
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0)
		return -errno;
	return tap_set_offload(fd, 0);
}

int tap_set_offload(int fd, unsigned flags)
{
	return ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0 ? -errno : 0;
}

int tap_set_queue_enabled(int fd, bool enable)
{
	struct ifreq ifr = { 0 };

	ifr.ifr_flags = enable ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
	return ioctl(fd, TUNSETQUEUE, &ifr) < 0 ? -errno : 0;
}

void tap_close(struct tap *t)
{
	if (t->owned) {
		for (unsigned i = 0; i < t->num_fds; i++)
			close(t->fds[i]);
	}
	t->num_fds = 0;
	t->owned = false;
}

/* fd=: the TAP queues someone else opened. */
static int tap_adopt(const struct net_config *n, unsigned pairs, struct tap *t, char *err,
		     size_t errlen)
{
	for (unsigned i = 0; i < pairs; i++) {
		struct ifreq ifr = { 0 };
		int fd = n->fds[i];
		int r;

		if (ioctl(fd, TUNGETIFF, &ifr) < 0)
			return error_set(err, errlen, -errno,
					 "--net: fd %d is not a TAP device (%s)", fd,
					 strerror(errno));
		if (!(ifr.ifr_flags & IFF_TAP) || !(ifr.ifr_flags & IFF_VNET_HDR) ||
		    !(ifr.ifr_flags & IFF_NO_PI))
			return error_set(err, errlen, -EINVAL,
					 "--net: fd %d: '%s' must be a TAP opened with "
					 "IFF_TAP|IFF_NO_PI|IFF_VNET_HDR",
					 fd, ifr.ifr_name);
		r = tap_prepare_fd(fd);
		if (r < 0)
			return error_set(err, errlen, r, "--net: fd %d: %s", fd, strerror(-r));
		t->fds[t->num_fds++] = fd;
		t->multi_queue = ifr.ifr_flags & IFF_MULTI_QUEUE;
		memcpy(t->name, ifr.ifr_name, sizeof(t->name) - 1);
	}
	return 0;
}

static int tap_open_queue(const char *name, bool mq, int *ret_fd, char *ret_name)
{
	struct ifreq ifr = { 0 };
	int fd = open(TAP_DEV, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	int r;

	if (fd < 0)
		return -errno;
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (mq ? IFF_MULTI_QUEUE : 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	r = tap_prepare_fd(fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	memcpy(ret_name, ifr.ifr_name, IFNAMSIZ);
	ret_name[IFNAMSIZ - 1] = '\0';
	*ret_fd = fd;
	return 0;
}

static int sock_ioctl(int sock, unsigned long req, struct ifreq *ifr)
{
	return ioctl(sock, req, ifr) < 0 ? -errno : 0;
}

static int set_in_addr(int sock, unsigned long req, const char *name, uint32_t be_addr)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = be_addr };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	memcpy(&ifr.ifr_addr, &sin, sizeof(sin));
	return sock_ioctl(sock, req, &ifr);
}

/* Address, host MAC, MTU, up: what Cloud Hypervisor does to a TAP it opens by name. */
static int tap_configure(const struct net_config *n, const char *name, char *err, size_t errlen)
{
	_cleanup_close_ int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = { 0 };
	uint32_t a;
	int r = 0;

	if (sock < 0)
		return error_set(err, errlen, -errno, "--net: socket: %s", strerror(errno));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (n->ip && config_parse_ipv4(n->ip, &a) == 0) {
		r = set_in_addr(sock, SIOCSIFADDR, name, a);
		if (r == 0 && config_parse_ipv4(n->mask ? n->mask : "255.255.255.0", &a) == 0)
			r = set_in_addr(sock, SIOCSIFNETMASK, name, a);
		if (r < 0)
			return error_set(err, errlen, r, "--net: cannot set address %s on '%s': %s",
					 n->ip, name, strerror(-r));
	}
	if (n->host_mac) {
		struct ifreq h = ifr;

		h.ifr_hwaddr.sa_family = ARPHRD_ETHER;
		(void)config_parse_mac(n->host_mac, (uint8_t *)h.ifr_hwaddr.sa_data);
		r = sock_ioctl(sock, SIOCSIFHWADDR, &h);
		if (r < 0)
			return error_set(err, errlen, r,
					 "--net: cannot set host_mac %s on '%s': %s", n->host_mac,
					 name, strerror(-r));
	}
	if (n->mtu) {
		struct ifreq m = ifr;

		m.ifr_mtu = n->mtu;
		r = sock_ioctl(sock, SIOCSIFMTU, &m);
		if (r < 0)
			return error_set(err, errlen, r, "--net: cannot set mtu %u on '%s': %s",
					 n->mtu, name, strerror(-r));
	}
	r = sock_ioctl(sock, SIOCGIFFLAGS, &ifr);
	if (r == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		r = sock_ioctl(sock, SIOCSIFFLAGS, &ifr);
	}
	if (r < 0)
		return error_set(err, errlen, r, "--net: cannot bring '%s' up: %s", name,
				 strerror(-r));
	return 0;
}

int tap_open(const struct net_config *n, unsigned pairs, struct tap *ret, char *err, size_t errlen)
{
	struct tap t = { .owned = true, .multi_queue = pairs > 1 };
	int r = 0;

	if (pairs == 0 || pairs > TAP_MAX_QUEUES)
		return error_set(err, errlen, -EINVAL, "--net: %u queue pairs", pairs);
	if (n->num_fds) {
		t.owned = false;
		if (n->num_fds < pairs)
			return error_set(err, errlen, -EINVAL, "--net: %u fds for %u queue pairs",
					 n->num_fds, pairs);
		r = tap_adopt(n, pairs, &t, err, errlen);
		if (r < 0)
			return r;
		*ret = t;
		return 0;
	}
	snprintf(t.name, sizeof(t.name), "%s", n->tap ? n->tap : TAP_NAME_PATTERN);
	for (unsigned i = 0; i < pairs && r == 0; i++) {
		r = tap_open_queue(t.name, t.multi_queue, &t.fds[i], t.name);
		if (r == 0)
			t.num_fds++;
	}
	if (r < 0) {
		tap_close(&t);
		return error_set(err, errlen, r, "--net: cannot open TAP '%s': %s%s",
				 n->tap ? n->tap : "(new)", strerror(-r),
				 r == -EINVAL && pairs > 1
					 ? " (was it created without multi_queue?)"
				 : r == -EBUSY ? " (is it in use, or multi_queue?)"
					       : "");
	}
	r = tap_configure(n, t.name, err, errlen);
	if (r < 0) {
		tap_close(&t);
		return r;
	}
	*ret = t;
	return 0;
}
