/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The snapshot directory (DESIGN §7), laid out like Cloud Hypervisor's: config.json (the
 * VmConfig), state.json (every component's state: vCPUs, interrupt controllers, clock,
 * devices) and memory-ranges (guest RAM, sparse: zero pages are holes).
 *
 * state.json is {"checksum": "<crc32 of the file with these 8 digits zeroed>",
 * "format": "cubicle-snapshot", "version": N, "memory": [...], "state": {...}}: the reader
 * refuses a file from another program, a newer version, a damaged byte anywhere, or one past
 * SNAPSHOT_MAX_STATE, each with one clear line. The writer puts every file under a temporary
 * name, fsyncs it, and renames them into place only when all are complete; a failure
 * removes what it wrote.
 */
#ifndef CUBICLE_SNAPSHOT_SNAPSHOT_H
#define CUBICLE_SNAPSHOT_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config/config.h"

struct guest_mem;

#define SNAPSHOT_FORMAT	    "cubicle-snapshot"
#define SNAPSHOT_VERSION    1
#define SNAPSHOT_MAX_STATE  (16 * 1024 * 1024) /* bytes of state.json */
#define SNAPSHOT_MAX_CONFIG (1024 * 1024)      /* bytes of config.json */
#define SNAPSHOT_MAX_RANGES 8		       /* RAM regions */

/* "file:///dir" (or a plain absolute path) → "/dir" in *@ret (malloc'd). Returns 0 or -EINVAL
 * with @err naming the URL. */
int snapshot_url_path(const char *url, char **ret, char *err, size_t errlen);

/*
 * Writes a snapshot into existing directory @dir: @config (VmConfig JSON), @state (the
 * components' state object) and the guest RAM of @mem. -ENOENT/-ENOTDIR when @dir is missing,
 * -EEXIST when it already holds a snapshot, -ENOSPC and friends from the file system; on any
 * failure nothing new is left in @dir. Returns 0 or -errno with one line in @err.
 */
int snapshot_write(const char *dir, const json_t *config, const json_t *state,
		   const struct guest_mem *mem, char *err, size_t errlen);

/*
 * Reads @dir/config.json into @ret (vm_config_from_json() and its validation) after checking
 * that @dir holds a complete snapshot this reader understands. Returns 0 or -errno with one
 * line in @err.
 */
int snapshot_read_config(const char *dir, struct vm_config *ret, char *err, size_t errlen);

/* One RAM region as memory-ranges holds it. */
struct snapshot_range {
	uint64_t gpa, size, offset; /* offset in memory-ranges */
};

/* A snapshot opened for restore. */
struct snapshot {
	json_t *root;	     /* state.json, checked */
	const json_t *state; /* root["state"] */
	struct snapshot_range ranges[SNAPSHOT_MAX_RANGES];
	unsigned nr_ranges;
	int memory_fd; /* memory-ranges, read-only */
	uint64_t memory_size;
};

/*
 * Opens @dir's state.json and memory-ranges and checks them against each other (every range
 * inside the file, page aligned, not overlapping) and against @memory_size, the config's RAM
 * size. Returns 0 or -errno with one line in @err ("state.json: checksum mismatch: the file
 * is damaged").
 */
int snapshot_open(const char *dir, uint64_t memory_size, struct snapshot *ret, char *err,
		  size_t errlen);
/*
 * Copies range @g of the memory file into @host (zeroed memory of g->size bytes, e.g. fresh
 * anonymous RAM): only the file's data extents are read (SEEK_DATA), and of those only pages
 * that are not zero are written, so that the untouched pages of a copied-in guest stay
 * unallocated. For prefault=on restores and RAM that cannot be a private file mapping.
 * Returns 0 or -errno.
 */
int snapshot_copy_range(const struct snapshot *s, const struct snapshot_range *g, uint8_t *host);

/* Accepts a struct left as { .memory_fd = -1 } by a failed snapshot_open(). */
void snapshot_close(struct snapshot *s);

/* Parses and checks a state.json held in memory (the fuzz target's entry). On success *@ret is
 * the root object. */
int snapshot_parse_state(const char *data, size_t len, json_t **ret, char *err, size_t errlen);

#endif
