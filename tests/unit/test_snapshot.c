/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The snapshot directory (src/snapshot/snapshot.c): what the writer leaves, what the reader
 * refuses. The VM's own state is the subject of the device and vCPU round-trip tests.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "config/json.h"
#include "mem/guest_mem.h"
#include "snapshot/snapshot.h"
#include "util/state.h"
#include "util/util.h"

#define RAM_LO (1 * MiB)
#define RAM_HI (2 * MiB)

struct fixture {
	char dir[64];
	uint8_t *lo, *hi;
	struct guest_mem mem;
	json_t *config, *state;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	strcpy(f->dir, "/tmp/cubicle-test-snapshot-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->lo = mmap(NULL, RAM_LO, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	f->hi = mmap(NULL, RAM_HI, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->lo != MAP_FAILED && f->hi != MAP_FAILED);
	/* A few patterned pages among zero pages, at both ends of each region. */
	memset(f->lo, 0xa5, 4096);
	memset(f->lo + 200 * 4096, 0x5a, 3 * 4096);
	memset(f->hi + RAM_HI - 4096, 0x11, 4096);
	f->hi[5 * 4096 + 17] = 1;
	guest_mem_init(&f->mem);
	assert_int_equal(guest_mem_add_region(&f->mem, 0, RAM_LO, f->lo), 0);
	assert_int_equal(guest_mem_add_region(&f->mem, 4 * GiB, RAM_HI, f->hi), 0);
	struct vm_config cfg;
	vm_config_init(&cfg);
	cfg.payload.kernel = strdup("/k");
	cfg.memory.size = 512 * MiB; /* the reader checks RAM against what the caller says */
	f->config = vm_config_to_json(&cfg);
	vm_config_free(&cfg);
	f->state = json_pack("{s:{s:i},s:[],s:{}}", "vm", "x", 1, "vcpus", "devices");
	assert_non_null(f->config);
	assert_non_null(f->state);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	munmap(f->lo, RAM_LO);
	munmap(f->hi, RAM_HI);
	json_decref(f->config);
	json_decref(f->state);
	free(f);
	return 0;
}

static void path_in(const struct fixture *f, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", f->dir, name);
}

static unsigned count_entries(const char *dir)
{
	char cmd[128];
	unsigned n = 0;
	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", dir);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%u", &n), 1);
	pclose(p);
	return n;
}

static void write_ok(struct fixture *f)
{
	char err[256] = "";
	int r = snapshot_write(f->dir, f->config, f->state, &f->mem, err, sizeof(err));
	if (r != 0)
		fail_msg("snapshot_write: %d %s", r, err);
}

static void test_write_and_open(void **state)
{
	struct fixture *f = *state;
	struct snapshot s = { .memory_fd = -1 };
	char err[256], p[128];
	struct stat st;

	write_ok(f);
	assert_int_equal(count_entries(f->dir), 3); /* no temporary file left behind */
	path_in(f, "memory-ranges", p, sizeof(p));
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, RAM_LO + RAM_HI);
	/* Sparse: 6 patterned pages written, the rest holes (allow the file system some slack). */
	assert_true((uint64_t)st.st_blocks * 512 <= 64 * 4096);

	assert_int_equal(snapshot_open(f->dir, RAM_LO + RAM_HI, &s, err, sizeof(err)), 0);
	assert_int_equal(s.nr_ranges, 2);
	assert_int_equal(s.ranges[0].gpa, 0);
	assert_int_equal(s.ranges[0].offset, 0);
	assert_int_equal(s.ranges[1].gpa, 4 * GiB);
	assert_int_equal(s.ranges[1].offset, RAM_LO);
	assert_true(json_equal(s.state, f->state));
	/* The file holds the RAM byte for byte. */
	uint8_t *buf = malloc(RAM_HI);
	assert_int_equal(file_read_at(s.memory_fd, buf, RAM_LO, 0), 0);
	assert_memory_equal(buf, f->lo, RAM_LO);
	assert_int_equal(file_read_at(s.memory_fd, buf, RAM_HI, RAM_LO), 0);
	assert_memory_equal(buf, f->hi, RAM_HI);
	free(buf);
	/* Copied in (prefault=on): the same bytes, and the zero pages never touched. */
	uint8_t *lo =
		mmap(NULL, RAM_LO, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *hi =
		mmap(NULL, RAM_HI, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_int_equal(snapshot_copy_range(&s, &s.ranges[0], lo), 0);
	assert_int_equal(snapshot_copy_range(&s, &s.ranges[1], hi), 0);
	unsigned char vec[RAM_HI / 4096];
	assert_int_equal(mincore(hi, RAM_HI, vec), 0);
	unsigned resident = 0;
	for (size_t i = 0; i < sizeof(vec); i++)
		resident += vec[i] & 1;
	assert_true(resident <= 2); /* the two patterned pages of the high region */
	assert_memory_equal(lo, f->lo, RAM_LO);
	assert_memory_equal(hi, f->hi, RAM_HI);
	munmap(lo, RAM_LO);
	munmap(hi, RAM_HI);
	snapshot_close(&s);
	snapshot_close(&s); /* twice is harmless */

	struct vm_config cfg;
	if (snapshot_read_config(f->dir, &cfg, err, sizeof(err)) != 0)
		fail_msg("snapshot_read_config: %s", err);
	assert_string_equal(cfg.payload.kernel, "/k");
	assert_int_equal(cfg.memory.size, 512 * MiB);
	vm_config_free(&cfg);
}

static void test_destination_errors(void **state)
{
	struct fixture *f = *state;
	char err[256], p[128];

	path_in(f, "missing", p, sizeof(p));
	assert_int_equal(snapshot_write(p, f->config, f->state, &f->mem, err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "no such directory"));
	write_ok(f);
	assert_int_equal(snapshot_write(f->dir, f->config, f->state, &f->mem, err, sizeof(err)),
			 -EEXIST);
	assert_non_null(strstr(err, "already holds a snapshot"));
	assert_int_equal(count_entries(f->dir), 3);
}

/* A file-size limit makes the memory write fail half way, as a full disk does. */
static void test_write_failure_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct rlimit old, lim = { .rlim_cur = 64 * 1024, .rlim_max = RLIM_INFINITY };
	char err[256];

	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim.rlim_max = old.rlim_max;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	int r = snapshot_write(f->dir, f->config, f->state, &f->mem, err, sizeof(err));
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_true(r == -EFBIG || r == -ENOSPC);
	assert_non_null(strstr(err, "memory-ranges"));
	assert_int_equal(count_entries(f->dir), 0);
	write_ok(f); /* and the directory is usable afterwards */
}

static void test_url(void **state)
{
	char err[256], *p = NULL;

	assert_int_equal(snapshot_url_path("file:///a/b", &p, err, sizeof(err)), 0);
	assert_string_equal(p, "/a/b");
	free(p);
	assert_int_equal(snapshot_url_path("/a", &p, err, sizeof(err)), 0);
	assert_string_equal(p, "/a");
	free(p);
	assert_int_equal(snapshot_url_path("http://x/y", &p, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "only file://"));
	assert_int_equal(snapshot_url_path("file://rel", &p, err, sizeof(err)), -EINVAL);
	assert_int_equal(snapshot_url_path("", &p, err, sizeof(err)), -EINVAL);
}

static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	char *b = malloc(st.st_size + 1);
	assert_int_equal(file_read_at(fd, b, st.st_size, 0), 0);
	b[st.st_size] = '\0';
	close(fd);
	*len = st.st_size;
	return b;
}

static void spit(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* Every byte counts: a change anywhere in state.json is refused, never half-read. */
static void test_corrupt_bytes(void **state)
{
	struct fixture *f = *state;
	struct snapshot s = { .memory_fd = -1 };
	char err[256], p[128];
	size_t len;

	write_ok(f);
	path_in(f, "state.json", p, sizeof(p));
	char *good = slurp(p, &len);
	srand(7);
	for (int i = 0; i < 200; i++) {
		char *bad = malloc(len);
		size_t at = (size_t)rand() % len;
		memcpy(bad, good, len);
		bad[at] ^= (char)(1 + rand() % 255);
		spit(p, bad, len);
		int r = snapshot_open(f->dir, RAM_LO + RAM_HI, &s, err, sizeof(err));
		if (r == 0)
			fail_msg("byte %zu changed, but the snapshot opened", at);
		assert_non_null(strstr(err, "state.json"));
		free(bad);
	}
	spit(p, good, len / 2); /* truncated */
	assert_true(snapshot_open(f->dir, RAM_LO + RAM_HI, &s, err, sizeof(err)) < 0);
	spit(p, good, len);
	assert_int_equal(snapshot_open(f->dir, RAM_LO + RAM_HI, &s, err, sizeof(err)), 0);
	snapshot_close(&s);
	free(good);
}

/* A state.json with @from replaced by @to and a correct checksum. */
static void rewrite_state(struct fixture *f, const char *from, const char *to)
{
	char p[128], digits[9];
	size_t len;

	path_in(f, "state.json", p, sizeof(p));
	char *s = slurp(p, &len);
	char *at = strstr(s, from);
	assert_non_null(at);
	char *out = malloc(len + strlen(to) + 1);
	size_t head = at - s;
	memcpy(out, s, head);
	strcpy(out + head, to);
	strcat(out, at + strlen(from));
	len = strlen(out);
	char *sum = strstr(out, "\"checksum\": \"") + strlen("\"checksum\": \"");
	memset(sum, '0', 8);
	snprintf(digits, sizeof(digits), "%08lx", crc32(0, (const Bytef *)out, (uInt)len));
	memcpy(sum, digits, 8);
	spit(p, out, len);
	free(out);
	free(s);
}

static void expect_open_error(struct fixture *f, uint64_t size, const char *what)
{
	struct snapshot s = { .memory_fd = -1 };
	char err[256] = "";
	int r = snapshot_open(f->dir, size, &s, err, sizeof(err));
	if (r == 0 || !strstr(err, what))
		fail_msg("expected an error with '%s', got %d '%s'", what, r, err);
}

static void test_version_and_format(void **state)
{
	struct fixture *f = *state;

	write_ok(f);
	rewrite_state(f, "\"version\": 1", "\"version\": 2");
	expect_open_error(f, RAM_LO + RAM_HI, "written by a newer cubicle");
	rewrite_state(f, "\"version\": 2", "\"version\": 1");
	expect_open_error(f, RAM_LO + 4096, "config says");
	rewrite_state(f, "cubicle-snapshot", "cloud-hypervisor");
	expect_open_error(f, RAM_LO + RAM_HI, "not a cubicle-snapshot file");
}

static void test_memory_file_checks(void **state)
{
	struct fixture *f = *state;
	char p[128];

	write_ok(f);
	path_in(f, "memory-ranges", p, sizeof(p));
	assert_int_equal(truncate(p, RAM_LO), 0);
	expect_open_error(f, RAM_LO + RAM_HI, "does not fit memory-ranges");
	assert_int_equal(truncate(p, RAM_LO + RAM_HI), 0);
	rewrite_state(f, "\"offset\": \"0x100000\"", "\"offset\": \"0x100\"");
	expect_open_error(f, RAM_LO + RAM_HI, "does not fit");
	rewrite_state(f, "\"offset\": \"0x100\"", "\"offset\": \"0x100000\"");
	rewrite_state(f, "\"gpa\": \"0x100000000\"", "\"gpa\": \"0x0\"");
	expect_open_error(f, RAM_LO + RAM_HI, "overlap");
	unlink(p);
	expect_open_error(f, RAM_LO + RAM_HI, "memory-ranges");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_and_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destination_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_failure_leaves_nothing, setup, teardown),
		cmocka_unit_test(test_url),
		cmocka_unit_test_setup_teardown(test_corrupt_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_and_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_file_checks, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
