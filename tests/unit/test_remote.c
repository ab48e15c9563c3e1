/* SPDX-License-Identifier: Apache-2.0 */
/* cubicle-remote's response parser (src/remote/http.c) and device syntax → JSON (body.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "remote/body.h"
#include "remote/http.h"

static int parse(const char *text, int eof, struct http_response *r)
{
	memset(r, 0, sizeof(*r));
	return http_parse_response(text, strlen(text), eof, r);
}

static void test_content_length(void **state)
{
	struct http_response r;

	(void)state;
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{}\r\n", 0, &r), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 4);
	assert_string_equal(r.body, "{}\r\n");
	http_response_free(&r);
	/* Header names are case-insensitive; bytes past the body are not part of it. */
	assert_int_equal(parse("HTTP/1.1 400 Bad\r\ncontent-length:  2\r\n\r\nabXYZ", 0, &r), 0);
	assert_int_equal(r.status, 400);
	assert_string_equal(r.body, "ab");
	http_response_free(&r);
	/* Not all there yet: wait, unless the server has closed. */
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", 0, &r), -EAGAIN);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", 1, &r), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Len", 0, &r), -EAGAIN);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Len", 1, &r), -EBADMSG);
}

static void test_no_length(void **state)
{
	struct http_response r;

	(void)state;
	assert_int_equal(parse("HTTP/1.1 204 No Content\r\n\r\n", 0, &r), 0);
	assert_int_equal(r.status, 204);
	assert_int_equal(r.len, 0);
	http_response_free(&r);
	/* A body to the end of the connection. */
	assert_int_equal(parse("HTTP/1.0 200 OK\r\n\r\nhello", 0, &r), -EAGAIN);
	assert_int_equal(parse("HTTP/1.0 200 OK\r\n\r\nhello", 1, &r), 0);
	assert_string_equal(r.body, "hello");
	http_response_free(&r);
}

static void test_chunked(void **state)
{
	struct http_response r;

	(void)state;
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			       "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
			       0, &r),
			 0);
	assert_string_equal(r.body, "abcde");
	assert_int_equal(r.len, 5);
	http_response_free(&r);
	assert_int_equal(
		parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", 0, &r),
		-EAGAIN);
	assert_int_equal(
		parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", 1, &r),
		-EBADMSG);
	assert_int_equal(
		parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, &r),
		-EBADMSG);
	/* A chunk size past the data: waits, never reads beyond the buffer. */
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			       "ffffffffffffffff\r\nab\r\n",
			       0, &r),
			 -EAGAIN);
}

static void test_malformed(void **state)
{
	struct http_response r;

	(void)state;
	assert_int_equal(parse("garbage\r\n\r\n", 0, &r), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 99 Low\r\n\r\n", 0, &r), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 abc\r\n\r\n", 0, &r), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 0, &r), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", 0, &r),
			 -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", 0, &r), -EBADMSG);
}

static json_t *body(enum remote_body kind, const char *arg, int *fds, unsigned *nfds)
{
	char err[256] = "";
	json_t *j = NULL;
	int r = remote_body_from_cli(kind, "add-x", arg, &j, fds, nfds, err, sizeof(err));

	if (r != 0)
		fail_msg("%s: %d %s", arg, r, err);
	return j;
}

static void expect_body_error(enum remote_body kind, const char *arg, const char *msg)
{
	char err[256] = "";
	json_t *j = NULL;
	int fds[CONFIG_MAX_NET_FDS];
	unsigned nfds = 0;

	assert_int_equal(remote_body_from_cli(kind, "add-x", arg, &j, fds, &nfds, err, sizeof(err)),
			 -EINVAL);
	assert_null(j);
	assert_string_equal(err, msg);
}

static void test_bodies(void **state)
{
	int fds[CONFIG_MAX_NET_FDS], p[2];
	unsigned nfds = 0;
	char arg[64];
	json_t *j, *want;

	(void)state;
	j = body(BODY_DISK, "path=/a,readonly=on,bw_size=5,bw_refill_time=7,socket=/s", NULL, NULL);
	want = json_pack("{s:s, s:b, s:{s:{s:i, s:i}}, s:s}", "path", "/a", "readonly", 1,
			 "rate_limiter_config", "bandwidth", "size", 5, "refill_time", 7,
			 "vhost_socket", "/s");
	assert_true(json_equal(j, want));
	json_decref(j);
	json_decref(want);

	j = body(BODY_PMEM, "file=/p,size=2M", NULL, NULL);
	assert_int_equal(json_integer_value(json_object_get(j, "size")), 2 << 20);
	json_decref(j);

	assert_int_equal(pipe(p), 0);
	snprintf(arg, sizeof(arg), "fd=[%d,%d],vhost_mode=Server", p[0], p[1]);
	j = body(BODY_NET, arg, fds, &nfds);
	assert_int_equal(nfds, 2);
	assert_int_equal(fds[0], p[0]);
	assert_int_equal(fds[1], p[1]);
	assert_null(json_object_get(j, "fd"));
	assert_null(json_object_get(j, "fds"));
	assert_string_equal(json_string_value(json_object_get(j, "vhost_mode")), "Server");
	json_decref(j);
	close(p[1]);
	snprintf(arg, sizeof(arg), "fd=%d", p[0]);
	j = body(BODY_NET, arg, fds, &nfds);
	assert_int_equal(nfds, 1);
	json_decref(j);
	close(p[0]);

	expect_body_error(BODY_DISK, "path=/a,bogus=1", "add-x: unknown key 'bogus'");
	expect_body_error(BODY_DISK, "path=/a,path=/b", "add-x: key 'path' given twice");
	expect_body_error(BODY_DISK, "num_queues=many",
			  "add-x: invalid number 'many' for 'num_queues'");
	expect_body_error(BODY_NET, "fd=[x]", "add-x: invalid fd 'x'");
	expect_body_error(BODY_NET, "fd=[3", "add-x: unbalanced '[' in 'fd=[3'");
	expect_body_error(BODY_NET, "fd=[100000]", "add-x: fd 100000 is not open");
	expect_body_error(BODY_VSOCK, "cid=3,path=/x", "add-x: unknown key 'path'");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content_length), cmocka_unit_test(test_no_length),
		cmocka_unit_test(test_chunked),	       cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_bodies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
