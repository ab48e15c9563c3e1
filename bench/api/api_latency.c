/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api-latency: request latency of cubicle's HTTP API, measured by a C client so that the
 * figures are the server's, not a Python client's. One kept-alive connection; each sample is
 * the time from writing the request(s) to reading the last byte of the answer(s).
 *
 * Usage: api-latency SOCKET N ROUTE[+ROUTE...]   e.g. vmm.ping, GET:vm.info, vm.pause+vm.resume
 * ROUTE is METHOD:NAME (METHOD defaults to PUT, GET for vmm.ping/vm.info/vm.counters). Prints
 * one line of JSON: {"route": ..., "n": N, "p50_us": ..., "p90_us": ..., "p99_us": ..., "max_us": ...}.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_STEPS 4

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* Reads one HTTP response; returns its status or -1. */
static int read_response(int fd)
{
	static char buf[65536];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return -1;
		len += n;
		buf[len] = 0;
		char *end = strstr(buf, "\r\n\r\n");
		if (!end)
			continue;
		size_t body = 0;
		char *cl = strcasestr(buf, "Content-Length:");
		if (cl && cl < end)
			body = strtoul(cl + 15, NULL, 10);
		size_t want = (end + 4 - buf) + body;
		while (len < want) {
			n = read(fd, buf + len, sizeof(buf) - 1 - len);
			if (n <= 0)
				return -1;
			len += n;
		}
		return atoi(buf + 9);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: api-latency SOCKET N ROUTE[+ROUTE...]\n");
		return 2;
	}
	unsigned n = atoi(argv[2]);
	char reqs[MAX_STEPS][256];
	unsigned steps = 0;
	char *spec = strdup(argv[3]);
	for (char *tok = strtok(spec, "+"); tok && steps < MAX_STEPS; tok = strtok(NULL, "+")) {
		const char *method = "PUT", *name = tok;
		char *colon = strchr(tok, ':');
		if (colon) {
			*colon = 0;
			method = tok;
			name = colon + 1;
		} else if (!strcmp(tok, "vmm.ping") || !strcmp(tok, "vm.info") ||
			   !strcmp(tok, "vm.counters")) {
			method = "GET";
		}
		snprintf(reqs[steps++], sizeof(reqs[0]),
			 "%s /api/v1/%s HTTP/1.1\r\nHost: localhost\r\n\r\n", method, name);
	}
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", argv[1]);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		perror("api-latency: connect");
		return 1;
	}
	uint64_t *lat = calloc(n, sizeof(*lat));
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		for (unsigned s = 0; s < steps; s++) {
			size_t len = strlen(reqs[s]);
			int status;
			if (write(fd, reqs[s], len) != (ssize_t)len ||
			    (status = read_response(fd)) < 200 || status >= 300) {
				fprintf(stderr, "api-latency: %s failed\n", argv[3]);
				return 1;
			}
		}
		lat[i] = now_ns() - t0;
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	printf("{\"route\": \"%s\", \"n\": %u, \"p50_us\": %.1f, \"p90_us\": %.1f, "
	       "\"p99_us\": %.1f, \"max_us\": %.1f}\n",
	       argv[3], n, lat[n / 2] / 1e3, lat[n * 9 / 10] / 1e3, lat[n * 99 / 100] / 1e3,
	       lat[n - 1] / 1e3);
	return 0;
}
