/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cubicle-remote's HTTP/1.1 client over a Unix socket: one request per connection, as
 * ch-remote does, written with sendmsg so that file descriptors can travel with it
 * (SCM_RIGHTS, for vm.add-net's TAP fds).
 */
#ifndef CUBICLE_REMOTE_HTTP_H
#define CUBICLE_REMOTE_HTTP_H

#include <stddef.h>

#define HTTP_MAX_RESPONSE (16u << 20) /* bytes of headers + body accepted from the server */
#define HTTP_MAX_HEADERS  (64u << 10)
#define HTTP_TIMEOUT_MS	  120000 /* no answer for this long: the VMM is stuck */
#define HTTP_MAX_FDS	  16	 /* fds sent with one request */

struct http_response {
	int status; /* 200, 204, 400... */
	char *body; /* NUL-terminated (the body may itself hold NULs: see len) */
	size_t len;
};

/*
 * Sends "@method /api/v1/@route" with @body (NULL: none; then PUT still says Content-Length: 0)
 * and @nfds fds over the Unix socket @socket_path, and reads the whole answer into @ret.
 * Returns 0 for any HTTP status (the caller judges it), or a negative errno with one line in
 * @err: "cannot connect to API socket P: Connection refused", "API socket P: the server closed
 * the connection before answering", "... malformed response"...
 */
int http_request(const char *socket_path, const char *method, const char *route, const char *body,
		 const int *fds, unsigned nfds, struct http_response *ret, char *err,
		 size_t errlen);
void http_response_free(struct http_response *r);

/*
 * Parses a complete response in @buf (@len bytes): status line, headers, and a body delimited
 * by Content-Length, chunked transfer coding, or the end of @buf. Returns 0, -EAGAIN when @buf
 * is not complete yet (@eof false), or -EBADMSG. Exposed for the unit tests.
 */
int http_parse_response(const char *buf, size_t len, int eof, struct http_response *ret);

#endif
