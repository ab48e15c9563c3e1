/* SPDX-License-Identifier: Apache-2.0 */
/*
 * --net: Cloud Hypervisor v28's NetConfig from the command line, and its validation.
 *
 * "tap=NAME,ip=ADDR,mask=MASK,mac=MAC,host_mac=MAC,mtu=N,iommu=on|off,num_queues=N,
 * queue_size=N,id=ID,fd=[a,b],vhost_user=on|off,socket=PATH,vhost_mode=client|server,
 * pci_segment=N" plus the rate limiter keys. Repeatable: each --net adds one NIC.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/kv.h"
#include "util/util.h"

#define OPT "--net"

int config_parse_mac(const char *s, uint8_t ret[6])
{
	uint8_t mac[6];

	if (!s)
		return -EINVAL;
	for (unsigned i = 0; i < 6; i++) {
		const char *p = s + 3 * i;

		if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]))
			return -EINVAL;
		if (p[2] != (i < 5 ? ':' : '\0'))
			return -EINVAL;
		char hex[3] = { p[0], p[1], '\0' };
		mac[i] = (uint8_t)strtoul(hex, NULL, 16);
	}
	memcpy(ret, mac, sizeof(mac));
	return 0;
}

int config_parse_ipv4(const char *s, uint32_t *ret)
{
	struct in_addr a;

	if (!s || inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	*ret = a.s_addr;
	return 0;
}

/* "[3,4]", "3" or "[3]": file descriptors this process was started with. */
static int parse_fds(const struct kv *kv, struct net_config *n, char *err, size_t errlen)
{
	char buf[256];
	char *p, *save = NULL;
	size_t len;
	int r = kv_need_value(OPT, kv, err, errlen);

	if (r < 0)
		return r;
	len = strlen(kv->value);
	if (len >= sizeof(buf))
		return error_set(err, errlen, -EINVAL, "%s: fd list '%s' is too long", OPT,
				 kv->value);
	memcpy(buf, kv->value, len + 1);
	p = buf;
	if (p[0] == '[') {
		if (len < 2 || p[len - 1] != ']')
			return error_set(err, errlen, -EINVAL, "%s: invalid fd list '%s'", OPT,
					 kv->value);
		p[len - 1] = '\0';
		p++;
	}
	n->num_fds = 0;
	for (char *t = strtok_r(p, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		uint64_t fd;

		if (n->num_fds == CONFIG_MAX_NET_FDS)
			return error_set(err, errlen, -EINVAL, "%s: more than %u fds in '%s'", OPT,
					 CONFIG_MAX_NET_FDS, kv->value);
		if (parse_u64(t, INT32_MAX, &fd) < 0)
			return error_set(err, errlen, -EINVAL, "%s: invalid fd '%s' in '%s'", OPT,
					 t, kv->value);
		for (unsigned i = 0; i < n->num_fds; i++) {
			if (n->fds[i] == (int)fd)
				return error_set(err, errlen, -EINVAL,
						 "%s: fd %llu given twice in '%s'", OPT,
						 (unsigned long long)fd, kv->value);
		}
		n->fds[n->num_fds++] = (int)fd;
	}
	if (n->num_fds == 0)
		return error_set(err, errlen, -EINVAL, "%s: empty fd list", OPT);
	return 0;
}

static int parse_u16(const struct kv *kv, uint16_t *ret, char *err, size_t errlen)
{
	uint64_t v;
	int r = kv_u64(OPT, kv, UINT16_MAX, &v, err, errlen);

	if (r == 0)
		*ret = (uint16_t)v;
	return r;
}

static int parse_item(const struct kv *kv, struct net_config *n, bool *ret_queues_given, char *err,
		      size_t errlen)
{
	bool matched;
	int r;

	if (strcmp(kv->key, "tap") == 0)
		return kv_str(OPT, kv, &n->tap, err, errlen);
	if (strcmp(kv->key, "ip") == 0)
		return kv_str(OPT, kv, &n->ip, err, errlen);
	if (strcmp(kv->key, "mask") == 0)
		return kv_str(OPT, kv, &n->mask, err, errlen);
	if (strcmp(kv->key, "mac") == 0)
		return kv_str(OPT, kv, &n->mac, err, errlen);
	if (strcmp(kv->key, "host_mac") == 0)
		return kv_str(OPT, kv, &n->host_mac, err, errlen);
	if (strcmp(kv->key, "id") == 0)
		return kv_str(OPT, kv, &n->id, err, errlen);
	if (strcmp(kv->key, "socket") == 0)
		return kv_str(OPT, kv, &n->vhost_socket, err, errlen);
	if (strcmp(kv->key, "mtu") == 0)
		return parse_u16(kv, &n->mtu, err, errlen);
	if (strcmp(kv->key, "num_queues") == 0) {
		*ret_queues_given = true;
		return parse_u16(kv, &n->num_queues, err, errlen);
	}
	if (strcmp(kv->key, "queue_size") == 0)
		return parse_u16(kv, &n->queue_size, err, errlen);
	if (strcmp(kv->key, "pci_segment") == 0)
		return parse_u16(kv, &n->pci_segment, err, errlen);
	if (strcmp(kv->key, "iommu") == 0)
		return kv_bool(OPT, kv, &n->iommu, err, errlen);
	if (strcmp(kv->key, "vhost_user") == 0)
		return kv_bool(OPT, kv, &n->vhost_user, err, errlen);
	if (strcmp(kv->key, "vhost_mode") == 0) {
		r = kv_need_value(OPT, kv, err, errlen);
		if (r == 0 && strcmp(kv->value, "client") != 0 && strcmp(kv->value, "server") != 0)
			r = error_set(err, errlen, -EINVAL,
				      "%s: invalid value '%s' for 'vhost_mode' (expected client or "
				      "server)",
				      OPT, kv->value);
		return r;
	}
	if (strcmp(kv->key, "fd") == 0)
		return parse_fds(kv, n, err, errlen);
	r = kv_rate_limiter(OPT, kv, &n->rate_limiter, &matched, err, errlen);
	if (r < 0 || matched)
		return r;
	return error_set(err, errlen, -EINVAL, "%s: unknown key '%s'", OPT, kv->key);
}

int config_parse_net(struct vm_config *cfg, const char *arg, char *err, size_t errlen)
{
	struct net_config n;
	struct kv_list l;
	bool queues_given = false;
	int r;

	if (cfg->num_nets == CONFIG_MAX_NETS)
		return error_set(err, errlen, -EINVAL, "%s: more than %u network devices", OPT,
				 CONFIG_MAX_NETS);
	net_config_init(&n);
	r = kv_split(OPT, arg, &l, err, errlen);
	for (unsigned i = 0; r >= 0 && i < l.n; i++)
		r = parse_item(&l.items[i], &n, &queues_given, err, errlen);
	kv_free(&l);
	if (r < 0) {
		n.num_fds = 0; /* not ours until the parse succeeds: the caller's fds stay open */
		net_config_free(&n);
		return r;
	}
	/* As Cloud Hypervisor: fd=[a,b] alone means one queue pair per fd. */
	if (n.num_fds && !queues_given)
		n.num_queues = (uint16_t)(2 * n.num_fds);
	cfg->nets[cfg->num_nets++] = n;
	return 0;
}

static int validate_addresses(const struct net_config *n, const char *who, char *err, size_t errlen)
{
	uint8_t mac[6];
	uint32_t a;

	if (n->mac && config_parse_mac(n->mac, mac) < 0)
		return error_set(err, errlen, -EINVAL,
				 "%s: invalid mac '%s' (expected six hex bytes, 12:34:56:78:9a:bc)",
				 who, n->mac);
	if (n->mac && (mac[0] & 1))
		return error_set(err, errlen, -EINVAL, "%s: mac '%s' is a multicast address", who,
				 n->mac);
	if (n->host_mac && config_parse_mac(n->host_mac, mac) < 0)
		return error_set(err, errlen, -EINVAL,
				 "%s: invalid host_mac '%s' (expected six hex bytes, "
				 "12:34:56:78:9a:bc)",
				 who, n->host_mac);
	if (n->host_mac && (mac[0] & 1))
		return error_set(err, errlen, -EINVAL, "%s: host_mac '%s' is a multicast address",
				 who, n->host_mac);
	if (n->ip && config_parse_ipv4(n->ip, &a) < 0)
		return error_set(err, errlen, -EINVAL,
				 "%s: invalid ip '%s' (expected an IPv4 address)", who, n->ip);
	if (n->mask && config_parse_ipv4(n->mask, &a) < 0)
		return error_set(err, errlen, -EINVAL,
				 "%s: invalid mask '%s' (expected an IPv4 netmask)", who, n->mask);
	if (n->mask && !config_netmask_valid(a))
		return error_set(err, errlen, -EINVAL,
				 "%s: mask '%s' is not a netmask (its one bits must come first)",
				 who, n->mask);
	if (n->mask && !n->ip)
		return error_set(err, errlen, -EINVAL, "%s: mask needs ip", who);
	return 0;
}

bool config_netmask_valid(uint32_t be_mask)
{
	uint32_t inv = ~ntohl(be_mask);

	return (inv & (inv + 1)) == 0; /* ones then zeros: the complement is 2^k - 1 */
}

int net_config_validate(const struct net_config *n, char *err, size_t errlen)
{
	const char *who = OPT;
	unsigned pairs = n->num_queues / 2;
	int r;

	if (n->vhost_user)
		return error_set(err, errlen, -EINVAL, "%s: vhost_user is not supported yet", who);
	if (n->vhost_socket)
		return error_set(err, errlen, -EINVAL,
				 "%s: socket is for vhost_user, which is not supported yet", who);
	if (n->iommu)
		return error_set(err, errlen, -EINVAL, "%s: iommu=on is not supported yet", who);
	if (n->pci_segment)
		return error_set(err, errlen, -EINVAL,
				 "%s: pci_segment %u does not exist (only segment 0)", who,
				 n->pci_segment);
	if (n->num_queues < 2 || n->num_queues % 2 || n->num_queues > CONFIG_MAX_NET_QUEUES)
		return error_set(err, errlen, -EINVAL,
				 "%s: num_queues %u must be even, from 2 to %u (one RX and one TX "
				 "queue per pair)",
				 who, n->num_queues, CONFIG_MAX_NET_QUEUES);
	if (n->queue_size < 2 || n->queue_size > CONFIG_MAX_NET_QUEUE_SIZE ||
	    (n->queue_size & (n->queue_size - 1)))
		return error_set(err, errlen, -EINVAL,
				 "%s: queue_size %u must be a power of two from 2 to %u", who,
				 n->queue_size, CONFIG_MAX_NET_QUEUE_SIZE);
	if (n->mtu && n->mtu < CONFIG_MIN_NET_MTU) /* the maximum is the field's */
		return error_set(err, errlen, -EINVAL, "%s: mtu %u must be from %u to %u", who,
				 n->mtu, CONFIG_MIN_NET_MTU, CONFIG_MAX_NET_MTU);
	if (n->tap && (!n->tap[0] || strlen(n->tap) >= CONFIG_NET_IFNAMSIZ))
		return error_set(err, errlen, -EINVAL,
				 "%s: tap name '%s' must be 1 to %u characters", who, n->tap,
				 CONFIG_NET_IFNAMSIZ - 1);
	if (n->tap && (strchr(n->tap, '/') || strchr(n->tap, ' ')))
		return error_set(err, errlen, -EINVAL, "%s: invalid tap name '%s'", who, n->tap);
	if (n->num_fds) {
		if (n->tap)
			return error_set(err, errlen, -EINVAL,
					 "%s: give either tap= or fd=, not both", who);
		if (n->ip || n->mask || n->host_mac)
			return error_set(err, errlen, -EINVAL,
					 "%s: ip, mask and host_mac cannot be set on a TAP passed "
					 "with fd= (configure it before handing it over)",
					 who);
		if (n->num_fds != pairs)
			return error_set(err, errlen, -EINVAL,
					 "%s: %u fds for %u queue pairs (num_queues %u): give one "
					 "TAP fd per queue pair",
					 who, n->num_fds, pairs, n->num_queues);
		for (unsigned i = 0; i < n->num_fds; i++) {
			if (n->fds[i] < 0)
				return error_set(err, errlen, -EINVAL, "%s: invalid fd %d", who,
						 n->fds[i]);
		}
	}
	r = validate_addresses(n, who, err, errlen);
	if (r < 0)
		return r;
	if (n->id && (!n->id[0] || strlen(n->id) >= CONFIG_ID_MAX))
		return error_set(err, errlen, -EINVAL, "%s: id must be 1 to %u characters", who,
				 CONFIG_ID_MAX - 1);
	return 0;
}

int config_validate_nets(const struct vm_config *cfg, char *err, size_t errlen)
{
	for (unsigned i = 0; i < cfg->num_nets; i++) {
		const struct net_config *n = &cfg->nets[i];
		int r = net_config_validate(n, err, errlen);

		if (r < 0)
			return r;
		for (unsigned j = 0; j < i; j++) {
			const struct net_config *o = &cfg->nets[j];

			if (n->id && o->id && strcmp(n->id, o->id) == 0)
				return error_set(err, errlen, -EINVAL, "%s: id '%s' is used twice",
						 OPT, n->id);
			if (n->tap && o->tap && strcmp(n->tap, o->tap) == 0)
				return error_set(err, errlen, -EINVAL,
						 "%s: tap '%s' is given to two devices", OPT,
						 n->tap);
		}
	}
	return 0;
}
