/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal HTTP/1.1 client for cubicle-remote (remote/http.h). Plain socket I/O rather than
 * libcurl: vm.add-net must pass TAP fds with SCM_RIGHTS, which only sendmsg() can do, and one
 * request per connection needs nothing more than this.
 */
#include "remote/http.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/util.h"

void http_response_free(struct http_response *r)
{
	if (!r)
		return;
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

static int connect_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return error_set(err, errlen, -ENAMETOOLONG,
				 "cannot connect to API socket %s: path too long", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return error_set(err, errlen, -errno, "cannot create a socket: %s",
				 strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return error_set(err, errlen, -e, "cannot connect to API socket %s: %s", path,
				 strerror(e));
	}
	return fd;
}

/* Writes all of @buf; the first sendmsg carries @fds. */
static int send_all(int fd, const char *buf, size_t len, const int *fds, unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * HTTP_MAX_FDS)];
		struct cmsghdr align;
	} control;
	bool fds_sent = nfds == 0;

	if (nfds > HTTP_MAX_FDS)
		return -E2BIG;
	while (len > 0 || !fds_sent) {
		struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (!fds_sent) {
			struct cmsghdr *c;

			memset(&control, 0, sizeof(control));
			msg.msg_control = control.buf;
			msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			c = CMSG_FIRSTHDR(&msg);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		fds_sent = true;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The value of header @name in the header block [@h, @end), or NULL. */
static const char *find_header(const char *h, const char *end, const char *name, size_t *ret_len)
{
	size_t nlen = strlen(name);

	while (h < end) {
		const char *eol = memmem(h, (size_t)(end - h), "\r\n", 2);

		if (!eol)
			eol = end;
		if ((size_t)(eol - h) > nlen && strncasecmp(h, name, nlen) == 0 && h[nlen] == ':') {
			const char *v = h + nlen + 1;

			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*ret_len = (size_t)(eol - v);
			return v;
		}
		h = eol + 2;
	}
	return NULL;
}

/* Decodes a chunked body [@p, @end) into @ret; -EAGAIN if incomplete. */
static int dechunk(const char *p, const char *end, struct http_response *ret)
{
	char *out = malloc((size_t)(end - p) + 1);
	size_t used = 0;

	if (!out)
		return -ENOMEM;
	for (;;) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		unsigned long long size;
		char *num_end;

		if (!eol)
			break;
		size = strtoull(p, &num_end, 16);
		if (num_end == p || (num_end != eol && *num_end != ';')) {
			free(out);
			return -EBADMSG;
		}
		p = eol + 2;
		if (size == 0) {
			out[used] = '\0';
			ret->body = out;
			ret->len = used;
			return 0;
		}
		if (size > (unsigned long long)(end - p) || (size_t)(end - p) - size < 2)
			break;
		memcpy(out + used, p, size);
		used += size;
		p += size + 2;
	}
	free(out);
	return -EAGAIN;
}

int http_parse_response(const char *buf, size_t len, int eof, struct http_response *ret)
{
	const char *hend = memmem(buf, len, "\r\n\r\n", 4), *end = buf + len, *body, *v;
	unsigned status;
	size_t vlen;
	char *copy;

	if (!hend)
		return eof || len > HTTP_MAX_HEADERS ? -EBADMSG : -EAGAIN;
	if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ' ||
	    sscanf(buf + 9, "%3u", &status) != 1 || status < 100 || status > 599)
		return -EBADMSG;
	body = hend + 4;
	ret->status = (int)status;
	v = find_header(buf, hend + 2, "Transfer-Encoding", &vlen);
	if (v && vlen >= 7 && strncasecmp(v, "chunked", 7) == 0) {
		int r = dechunk(body, end, ret);

		return r == -EAGAIN && eof ? -EBADMSG : r;
	}
	v = find_header(buf, hend + 2, "Content-Length", &vlen);
	if (v) {
		char num[24];
		uint64_t n;

		if (vlen == 0 || vlen >= sizeof(num))
			return -EBADMSG;
		memcpy(num, v, vlen);
		num[vlen] = '\0';
		if (parse_u64(num, HTTP_MAX_RESPONSE, &n) < 0)
			return -EBADMSG;
		if ((uint64_t)(end - body) < n)
			return eof ? -EBADMSG : -EAGAIN;
		end = body + n;
	} else if (!eof && status != 204 && status != 304 && status >= 200) {
		return -EAGAIN; /* the body runs to the end of the connection */
	} else if (status == 204 || status == 304) {
		end = body;
	}
	copy = malloc((size_t)(end - body) + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, body, (size_t)(end - body));
	copy[end - body] = '\0';
	ret->body = copy;
	ret->len = (size_t)(end - body);
	return 0;
}

static int read_response(int fd, const char *socket_path, struct http_response *ret, char *err,
			 size_t errlen)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	int r = -EAGAIN;

	if (!buf)
		return -ENOMEM;
	while (r == -EAGAIN) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (len == cap) {
			char *nb = cap >= HTTP_MAX_RESPONSE ? NULL : realloc(buf, cap * 2);

			if (!nb) {
				r = error_set(err, errlen,
					      cap >= HTTP_MAX_RESPONSE ? -EFBIG : -ENOMEM,
					      "API socket %s: response larger than %u bytes",
					      socket_path, HTTP_MAX_RESPONSE);
				break;
			}
			buf = nb;
			cap *= 2;
		}
		n = poll(&p, 1, HTTP_TIMEOUT_MS);
		if (n == 0) {
			r = error_set(err, errlen, -ETIMEDOUT,
				      "API socket %s: no answer within %u s", socket_path,
				      HTTP_TIMEOUT_MS / 1000);
			break;
		}
		n = n < 0 ? -1 : read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = error_set(err, errlen, -errno, "API socket %s: %s", socket_path,
				      strerror(errno));
			break;
		}
		len += (size_t)n;
		r = http_parse_response(buf, len, n == 0, ret);
		if (r == -EBADMSG && len == 0)
			r = error_set(err, errlen, -ECONNRESET,
				      "API socket %s: the server closed the connection without "
				      "answering",
				      socket_path);
		else if (r == -EBADMSG)
			r = error_set(err, errlen, -EBADMSG,
				      "API socket %s: malformed HTTP response", socket_path);
	}
	free(buf);
	return r;
}

int http_request(const char *socket_path, const char *method, const char *route, const char *body,
		 const int *fds, unsigned nfds, struct http_response *ret, char *err, size_t errlen)
{
	size_t blen = body ? strlen(body) : 0;
	bool with_length = body || strcmp(method, "GET") != 0;
	char *req = NULL;
	int fd, r, n;

	if (with_length)
		n = asprintf(&req,
			     "%s /api/v1/%s HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n%s"
			     "Content-Length: %zu\r\n\r\n%s",
			     method, route, body ? "Content-Type: application/json\r\n" : "", blen,
			     body ? body : "");
	else
		n = asprintf(&req,
			     "%s /api/v1/%s HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n",
			     method, route);
	if (n < 0)
		return -ENOMEM;
	fd = connect_unix(socket_path, err, errlen);
	if (fd < 0) {
		free(req);
		return fd;
	}
	r = send_all(fd, req, (size_t)n, fds, nfds);
	free(req);
	if (r < 0) {
		close(fd);
		return error_set(err, errlen, r, "API socket %s: cannot send the request: %s",
				 socket_path, strerror(-r));
	}
	r = read_response(fd, socket_path, ret, err, errlen);
	close(fd);
	return r;
}
