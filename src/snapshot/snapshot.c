/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The snapshot directory: writer, reader, checks (snapshot.h).
 *
 * The checksum covers every byte of state.json: the writer serialises the file with the
 * checksum's eight hex digits as zeros (keys sorted, so "checksum" is the first key), computes
 * the CRC-32 of those bytes and writes the digits in; the reader zeroes them again and compares.
 * A damaged byte anywhere, whitespace included, is caught before anything is parsed further.
 */
#include "snapshot/snapshot.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "config/json.h"
#include "mem/guest_mem.h"
#include "util/state.h"
#include "util/util.h"

#define PAGE		4096u
#define CHUNK		(2 * MiB) /* memory-ranges is scanned and written in pieces of this */
#define CHECKSUM_KEY	"\"checksum\": \""
#define CHECKSUM_DIGITS 8
#define CONFIG_FILE	"config.json"
#define STATE_FILE	"state.json"
#define MEMORY_FILE	"memory-ranges"
#define TMP_SUFFIX	".partial"

static const char *const snapshot_files[] = { MEMORY_FILE, CONFIG_FILE, STATE_FILE };

int snapshot_url_path(const char *url, char **ret, char *err, size_t errlen)
{
	const char *path = url;

	if (!url || !*url)
		return error_set(err, errlen, -EINVAL, "empty snapshot URL");
	if (strncmp(url, "file://", 7) == 0)
		path = url + 7;
	else if (strstr(url, "://"))
		return error_set(err, errlen, -EINVAL,
				 "snapshot URL '%s': only file:// URLs are supported", url);
	if (path[0] != '/')
		return error_set(err, errlen, -EINVAL,
				 "snapshot URL '%s': expected file:///an/absolute/path", url);
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}

/* Whole-file reads, bounded: the files come from wherever the user points us. */
static int read_file_at(int dirfd, const char *name, size_t max, char **ret, size_t *ret_len,
			char *err, size_t errlen)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t done = 0;

	if (fd < 0)
		return error_set(err, errlen, -errno, "%s: %s", name,
				 errno == ENOENT ? "missing: not a complete snapshot"
						 : strerror(errno));
	if (fstat(fd, &st) < 0)
		return error_set(err, errlen, -errno, "%s: %s", name, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return error_set(err, errlen, -EINVAL, "%s: not a regular file", name);
	if ((uint64_t)st.st_size > max)
		return error_set(err, errlen, -EFBIG,
				 "%s: %" PRIu64 " bytes, more than the %zu allowed", name,
				 (uint64_t)st.st_size, max);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error_set(err, errlen, -errno, "%s: %s", name, strerror(errno));
		if (n == 0)
			return error_set(err, errlen, -EIO, "%s: truncated while reading", name);
		done += (size_t)n;
	}
	buf[done] = '\0';
	*ret = ptr_take(&buf);
	*ret_len = done;
	return 0;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t acc = 0;

	for (unsigned i = 0; i < PAGE / 8; i += 8)
		acc |= w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] |
		       w[i + 7];
	return acc == 0;
}

/* Writes @size bytes at @host to @fd at @off, leaving zero pages as holes. */
static int write_sparse(int fd, const uint8_t *host, uint64_t size, uint64_t off)
{
	uint64_t run = 0, run_len = 0;

	for (uint64_t at = 0; at < size; at += PAGE) {
		if (!page_is_zero(host + at)) {
			if (run_len == 0)
				run = at;
			run_len += PAGE;
			if (run_len < CHUNK && at + PAGE < size)
				continue;
		}
		if (run_len) {
			int r = file_write_at(fd, host + run, run_len, off + run);
			if (r < 0)
				return r;
			run_len = 0;
		}
	}
	return 0;
}

static int write_file_at(int dirfd, const char *name, const char *data, size_t len)
{
	_cleanup_close_ int fd =
		openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	int r;

	if (fd < 0)
		return -errno;
	r = file_write_at(fd, data, len, 0);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	return r;
}

static void tmp_name(char *buf, size_t len, const char *file)
{
	snprintf(buf, len, ".%s" TMP_SUFFIX, file);
}

static void unlink_tmps(int dirfd)
{
	char name[64];

	for (size_t i = 0; i < ARRAY_SIZE(snapshot_files); i++) {
		tmp_name(name, sizeof(name), snapshot_files[i]);
		unlinkat(dirfd, name, 0);
	}
}

static int write_memory(int dirfd, const struct guest_mem *mem, json_t *ranges, char *err,
			size_t errlen)
{
	char name[64];
	uint64_t off = 0;
	int r;

	tmp_name(name, sizeof(name), MEMORY_FILE);
	_cleanup_close_ int fd =
		openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return error_set(err, errlen, -errno, "%s: %s", MEMORY_FILE, strerror(errno));
	for (unsigned i = 0; i < mem->nr_regions; i++)
		off += mem->regions[i].size;
	/* The full size first: pages never written stay holes, and a clone maps them as zeros. */
	if (ftruncate(fd, (off_t)off) < 0)
		return error_set(err, errlen, -errno, "%s: %s", MEMORY_FILE, strerror(errno));
	off = 0;
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct guest_mem_region *g = &mem->regions[i];
		json_t *o = state_append_object(ranges);

		if (!o || state_set_u64(o, "gpa", g->gpa) < 0 ||
		    state_set_u64(o, "size", g->size) < 0 || state_set_u64(o, "offset", off) < 0)
			return -ENOMEM;
		r = write_sparse(fd, g->host, g->size, off);
		if (r < 0)
			return error_set(err, errlen, r, "%s: %s", MEMORY_FILE, strerror(-r));
		off += g->size;
	}
	if (fsync(fd) < 0)
		return error_set(err, errlen, -errno, "%s: %s", MEMORY_FILE, strerror(errno));
	return 0;
}

/* The state file's bytes, checksum filled in; malloc'd. */
static char *state_serialize(const json_t *state, json_t *ranges, size_t *ret_len)
{
	_cleanup_(json_decrefp) json_t *root = json_object();
	char digits[CHECKSUM_DIGITS + 1];
	char *s, *at;

	if (!root || state_set_str(root, "checksum", "00000000") < 0 ||
	    state_set_str(root, "format", SNAPSHOT_FORMAT) < 0 ||
	    state_set_u32(root, "version", SNAPSHOT_VERSION) < 0 ||
	    json_object_set(root, "memory", ranges) < 0 ||
	    json_object_set(root, "state", (json_t *)state) < 0)
		return NULL;
	s = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
	if (!s)
		return NULL;
	at = strstr(s, CHECKSUM_KEY);
	assert(at);
	at += strlen(CHECKSUM_KEY);
	*ret_len = strlen(s);
	snprintf(digits, sizeof(digits), "%08lx", crc32(0, (const Bytef *)s, (uInt)*ret_len));
	memcpy(at, digits, CHECKSUM_DIGITS);
	return s;
}

static int snapshot_check_empty(int dirfd, const char *dir, char *err, size_t errlen)
{
	for (size_t i = 0; i < ARRAY_SIZE(snapshot_files); i++) {
		struct stat st;
		if (fstatat(dirfd, snapshot_files[i], &st, AT_SYMLINK_NOFOLLOW) == 0)
			return error_set(err, errlen, -EEXIST,
					 "'%s' already holds a snapshot (%s): choose an empty "
					 "directory",
					 dir, snapshot_files[i]);
	}
	return 0;
}

int snapshot_write(const char *dir, const json_t *config, const json_t *state,
		   const struct guest_mem *mem, char *err, size_t errlen)
{
	_cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_(json_decrefp) json_t *ranges = json_array();
	_cleanup_free_ char *state_s = NULL, *config_s = NULL;
	char name[64];
	size_t state_len = 0;
	size_t renamed = 0;
	int r;

	if (dirfd < 0)
		return error_set(err, errlen, -errno, "snapshot destination '%s': %s", dir,
				 errno == ENOENT ? "no such directory (create it first)"
						 : strerror(errno));
	r = snapshot_check_empty(dirfd, dir, err, errlen);
	if (r < 0)
		return r;
	if (!ranges)
		return -ENOMEM;
	unlink_tmps(dirfd); /* left over by a crash during an earlier snapshot */

	r = write_memory(dirfd, mem, ranges, err, errlen);
	if (r < 0)
		goto fail;
	r = -ENOMEM;
	config_s = json_dumps(config, JSON_INDENT(2) | JSON_SORT_KEYS);
	state_s = state_serialize(state, ranges, &state_len);
	if (!config_s || !state_s) {
		error_set(err, errlen, r, "cannot serialise the snapshot: out of memory");
		goto fail;
	}
	tmp_name(name, sizeof(name), CONFIG_FILE);
	r = write_file_at(dirfd, name, config_s, strlen(config_s));
	if (r < 0) {
		error_set(err, errlen, r, "%s: %s", CONFIG_FILE, strerror(-r));
		goto fail;
	}
	tmp_name(name, sizeof(name), STATE_FILE);
	r = write_file_at(dirfd, name, state_s, state_len);
	if (r < 0) {
		error_set(err, errlen, r, "%s: %s", STATE_FILE, strerror(-r));
		goto fail;
	}
	/* All complete and on disk: into place, state.json last (its presence = a snapshot). */
	for (; renamed < ARRAY_SIZE(snapshot_files); renamed++) {
		tmp_name(name, sizeof(name), snapshot_files[renamed]);
		if (renameat(dirfd, name, dirfd, snapshot_files[renamed]) < 0) {
			r = error_set(err, errlen, -errno, "cannot rename %s into place: %s",
				      snapshot_files[renamed], strerror(errno));
			goto fail;
		}
	}
	if (fsync(dirfd) < 0) {
		r = error_set(err, errlen, -errno, "snapshot destination '%s': fsync: %s", dir,
			      strerror(errno));
		goto fail;
	}
	return 0;

fail:
	while (renamed > 0)
		unlinkat(dirfd, snapshot_files[--renamed], 0);
	unlink_tmps(dirfd);
	return r;
}

int snapshot_read_config(const char *dir, struct vm_config *ret, char *err, size_t errlen)
{
	_cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ char *data = NULL;
	_cleanup_(json_decrefp) json_t *obj = NULL;
	char sub[256];
	json_error_t jerr;
	struct stat st;
	size_t len;
	int r;

	if (dirfd < 0)
		return error_set(err, errlen, -errno, "snapshot '%s': %s", dir, strerror(errno));
	if (fstatat(dirfd, STATE_FILE, &st, 0) < 0 || fstatat(dirfd, MEMORY_FILE, &st, 0) < 0)
		return error_set(err, errlen, -ENOENT,
				 "snapshot '%s': not a complete snapshot (needs %s, %s and %s)",
				 dir, CONFIG_FILE, STATE_FILE, MEMORY_FILE);
	r = read_file_at(dirfd, CONFIG_FILE, SNAPSHOT_MAX_CONFIG, &data, &len, sub, sizeof(sub));
	if (r < 0)
		return error_set(err, errlen, r, "snapshot '%s': %s", dir, sub);
	obj = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj)
		return error_set(err, errlen, -EINVAL, "snapshot '%s': %s: line %d: %s", dir,
				 CONFIG_FILE, jerr.line, jerr.text);
	r = vm_config_from_json(obj, ret, sub, sizeof(sub));
	if (r < 0)
		return error_set(err, errlen, r, "snapshot '%s': %s: %s", dir, CONFIG_FILE, sub);
	return 0;
}

/* Checks the checksum over the raw bytes (see the top of the file); @data is modified. */
static int state_check_sum(char *data, size_t len, char *err, size_t errlen)
{
	char *at = strstr(data, CHECKSUM_KEY);
	char want[CHECKSUM_DIGITS + 1], got[CHECKSUM_DIGITS + 1];

	if (!at || (size_t)(at - data) > 8 ||
	    len - (size_t)(at - data) < strlen(CHECKSUM_KEY) + CHECKSUM_DIGITS)
		return error_set(err, errlen, -EINVAL,
				 "no checksum at its start: not a cubicle snapshot, or damaged");
	at += strlen(CHECKSUM_KEY);
	memcpy(want, at, CHECKSUM_DIGITS);
	want[CHECKSUM_DIGITS] = '\0';
	memset(at, '0', CHECKSUM_DIGITS);
	snprintf(got, sizeof(got), "%08lx", crc32(0, (const Bytef *)data, (uInt)len));
	memcpy(at, want, CHECKSUM_DIGITS);
	if (strcmp(want, got) != 0)
		return error_set(err, errlen, -EBADMSG,
				 "checksum mismatch (file says %s, contents give %s): the file is "
				 "damaged",
				 want, got);
	return 0;
}

int snapshot_parse_state(const char *data, size_t len, json_t **ret, char *err, size_t errlen)
{
	_cleanup_free_ char *copy = NULL;
	_cleanup_(json_decrefp) json_t *root = NULL;
	const json_t *state;
	const char *format;
	json_error_t jerr;
	uint32_t version;
	char sub[200];
	int r;

	if (len > SNAPSHOT_MAX_STATE)
		return error_set(err, errlen, -EFBIG, "more than %u bytes", SNAPSHOT_MAX_STATE);
	if (memchr(data, '\0', len))
		return error_set(err, errlen, -EINVAL, "a NUL byte: damaged");
	copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, data, len);
	copy[len] = '\0';
	r = state_check_sum(copy, len, err, errlen);
	if (r < 0)
		return r;
	root = json_loadb(copy, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return error_set(err, errlen, -EINVAL, "line %d: %s", jerr.line, jerr.text);
	if (state_get_str(root, "format", 64, &format, sub, sizeof(sub)) < 0 ||
	    strcmp(format, SNAPSHOT_FORMAT) != 0)
		return error_set(err, errlen, -EINVAL, "not a %s file", SNAPSHOT_FORMAT);
	r = state_get_u32(root, "version", UINT32_MAX, &version, sub, sizeof(sub));
	if (r < 0)
		return error_set(err, errlen, r, "%s", sub);
	if (version != SNAPSHOT_VERSION)
		return error_set(err, errlen, -EPROTONOSUPPORT,
				 "format version %u, this cubicle reads version %u%s", version,
				 SNAPSHOT_VERSION,
				 version > SNAPSHOT_VERSION ? " (written by a newer cubicle)" : "");
	r = state_get_object(root, "state", &state, sub, sizeof(sub));
	if (r < 0)
		return error_set(err, errlen, r, "%s", sub);
	*ret = ptr_take(&root);
	return 0;
}

static int snapshot_read_ranges(struct snapshot *s, uint64_t memory_size, char *err, size_t errlen)
{
	const json_t *arr;
	uint64_t total = 0;
	int r;

	r = state_get_array(s->root, "memory", SNAPSHOT_MAX_RANGES, &arr, err, errlen);
	if (r < 0)
		return r;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		const json_t *o = json_array_get(arr, i);
		struct snapshot_range *g = &s->ranges[i];

		if (state_get_u64(o, "gpa", &g->gpa, err, errlen) < 0 ||
		    state_get_u64(o, "size", &g->size, err, errlen) < 0 ||
		    state_get_u64(o, "offset", &g->offset, err, errlen) < 0)
			return -EINVAL;
		if (g->size == 0 || !IS_ALIGNED(g->gpa | g->size | g->offset, PAGE) ||
		    range_overflows(g->gpa, g->size) || g->offset > s->memory_size ||
		    g->size > s->memory_size - g->offset)
			return error_set(
				err, errlen, -EINVAL,
				"memory range %zu (gpa %#" PRIx64 ", %" PRIu64
				" bytes at offset %" PRIu64 ") does not fit %s (%" PRIu64 " bytes)",
				i, g->gpa, g->size, g->offset, MEMORY_FILE, s->memory_size);
		for (size_t k = 0; k < i; k++) {
			const struct snapshot_range *h = &s->ranges[k];
			if (g->gpa < h->gpa + h->size && h->gpa < g->gpa + g->size)
				return error_set(err, errlen, -EINVAL,
						 "memory ranges %zu and %zu overlap", k, i);
		}
		total += g->size;
		s->nr_ranges = (unsigned)i + 1;
	}
	if (total != memory_size)
		return error_set(err, errlen, -EINVAL,
				 "the snapshot holds %" PRIu64
				 "M of RAM but its config says %" PRIu64 "M",
				 total >> 20, memory_size >> 20);
	return 0;
}

int snapshot_open(const char *dir, uint64_t memory_size, struct snapshot *ret, char *err,
		  size_t errlen)
{
	_cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ char *data = NULL;
	struct snapshot s = { .memory_fd = -1 };
	char sub[256];
	struct stat st;
	size_t len;
	int r;

	if (dirfd < 0)
		return error_set(err, errlen, -errno, "snapshot '%s': %s", dir, strerror(errno));
	r = read_file_at(dirfd, STATE_FILE, SNAPSHOT_MAX_STATE, &data, &len, sub, sizeof(sub));
	if (r < 0)
		return error_set(err, errlen, r, "snapshot '%s': %s", dir, sub);
	r = snapshot_parse_state(data, len, &s.root, sub, sizeof(sub));
	if (r < 0)
		return error_set(err, errlen, r, "snapshot '%s': %s: %s", dir, STATE_FILE, sub);
	s.state = json_object_get(s.root, "state");
	s.memory_fd = openat(dirfd, MEMORY_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (s.memory_fd < 0 || fstat(s.memory_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = error_set(err, errlen, s.memory_fd < 0 ? -errno : -EINVAL,
			      "snapshot '%s': %s: %s", dir, MEMORY_FILE,
			      s.memory_fd < 0 ? strerror(errno) : "not a regular file");
		goto fail;
	}
	s.memory_size = (uint64_t)st.st_size;
	r = snapshot_read_ranges(&s, memory_size, sub, sizeof(sub));
	if (r < 0) {
		error_set(err, errlen, r, "snapshot '%s': %s: %s", dir, STATE_FILE, sub);
		goto fail;
	}
	*ret = s;
	return 0;

fail:
	snapshot_close(&s);
	return r;
}

int snapshot_copy_range(const struct snapshot *s, const struct snapshot_range *g, uint8_t *host)
{
	_cleanup_free_ uint8_t *buf = malloc(CHUNK);
	uint64_t at = 0;

	if (!buf)
		return -ENOMEM;
	while (at < g->size) {
		off_t data = lseek(s->memory_fd, (off_t)(g->offset + at), SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break; /* only holes from here */
		if (data < 0)
			data = (off_t)(g->offset + at); /* no SEEK_DATA here: read everything */
		if ((uint64_t)data >= g->offset + g->size)
			break;
		at = ALIGN_DOWN((uint64_t)data - g->offset, PAGE);
		off_t hole = lseek(s->memory_fd, (off_t)(g->offset + at), SEEK_HOLE);
		uint64_t end = hole < 0 ? g->size : MIN(g->size, (uint64_t)hole - g->offset);
		end = ALIGN_UP(end, PAGE);
		if (end > g->size)
			end = g->size;
		while (at < end) {
			size_t n = (size_t)MIN(end - at, CHUNK);
			int r = file_read_at(s->memory_fd, buf, n, g->offset + at);
			if (r < 0)
				return r;
			for (size_t p = 0; p < n; p += PAGE)
				if (!page_is_zero(buf + p))
					memcpy(host + at + p, buf + p, PAGE);
			at += n;
		}
	}
	return 0;
}

void snapshot_close(struct snapshot *s)
{
	json_decref(s->root);
	s->root = NULL;
	s->state = NULL;
	if (s->memory_fd >= 0)
		close(s->memory_fd);
	s->memory_fd = -1;
}
