/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AML byte-code builder. Encodings follow ACPI 6.x §20.2 (AML grammar) and §6.4 (resource
 * descriptors). Objects with a PkgLength are written body first and the length is inserted at
 * the object's start on aml_end(): the body's size decides how many PkgLength bytes it needs,
 * and a memmove of a DSDT-sized buffer costs nothing next to guest boot.
 */
#include "arch/x86/aml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define AML_INITIAL_CAP 512

/* Small resource descriptor tags (ACPI 6.x §6.4.2) and large ones (§6.4.3). */
#define AML_RES_IRQ_NO_FLAGS 0x22 /* IRQ, length 2 */
#define AML_RES_IO	     0x47 /* I/O port, length 7 */
#define AML_RES_END_TAG	     0x79 /* End Tag, length 1 */
#define AML_RES_MEM32_FIXED  0x86 /* Fixed Memory32, length 9 */
#define AML_RES_DWORD_SPACE  0x87 /* DWord Address Space, length 23 */
#define AML_RES_WORD_SPACE   0x88 /* Word Address Space, length 13 */
#define AML_RES_QWORD_SPACE  0x8a /* QWord Address Space, length 43 */

/* Address space descriptor fields (§6.4.3.5). */
#define AML_SPACE_MEMORY	0
#define AML_SPACE_IO		1
#define AML_SPACE_BUS_NUMBER	2
#define AML_SPACE_FIXED_MINMAX	0x0c /* general flags: _MAF | _MIF; producer, positive decode */
#define AML_SPACE_IO_ENTIRE	0x03 /* I/O type flags: _RNG = ISA and non-ISA ranges */
#define AML_SPACE_MEM_RW	0x01 /* memory type flags: _RW */
#define AML_SPACE_MEM_CACHEABLE 0x02 /* _MEM = 1 */
#define AML_SPACE_MEM_PREFETCH	0x06 /* _MEM = 3 */

static void aml_fail(struct aml *a, int err)
{
	if (a->err == 0)
		a->err = err;
}

/* Makes room for @n more bytes; false (with the error set) when that is not possible. */
static bool aml_reserve(struct aml *a, size_t n)
{
	if (a->err)
		return false;
	if (n > a->max || a->len > a->max - n) {
		aml_fail(a, -ENOSPC);
		return false;
	}
	if (a->len + n <= a->cap)
		return true;
	size_t cap = a->cap ? a->cap : AML_INITIAL_CAP;
	while (cap < a->len + n)
		cap *= 2;
	if (cap > a->max)
		cap = a->max;
	uint8_t *p = realloc(a->data, cap);
	if (!p) {
		aml_fail(a, -ENOMEM);
		return false;
	}
	a->data = p;
	a->cap = cap;
	return true;
}

/* Inserts @n bytes at offset @pos (≤ len), moving what follows. */
static void aml_insert(struct aml *a, size_t pos, const uint8_t *p, size_t n)
{
	if (!aml_reserve(a, n))
		return;
	memmove(a->data + pos + n, a->data + pos, a->len - pos);
	memcpy(a->data + pos, p, n);
	a->len += n;
}

void aml_init(struct aml *a, size_t max)
{
	memset(a, 0, sizeof(*a));
	a->max = max < AML_PKGLEN_MAX ? max : AML_PKGLEN_MAX;
}

void aml_free(struct aml *a)
{
	free(a->data);
	a->data = NULL;
	a->len = a->cap = 0;
}

int aml_finish(const struct aml *a)
{
	if (a->err)
		return a->err;
	return a->depth ? -EINVAL : 0;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (!aml_reserve(a, n))
		return;
	memcpy(a->data + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static bool name_lead_char(char c)
{
	return (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char(char c)
{
	return name_lead_char(c) || (c >= '0' && c <= '9');
}

void aml_name_string(struct aml *a, const char *path)
{
	uint8_t segs[255][4];
	unsigned nsegs = 0;
	const char *p = path;

	if (*p == '\\') {
		aml_byte(a, AML_ROOT_CHAR);
		p++;
	} else {
		while (*p == '^') {
			aml_byte(a, AML_PARENT_PREFIX);
			p++;
		}
	}
	for (;;) {
		unsigned n = 0;
		if (nsegs == ARRAY_SIZE(segs) || !name_lead_char(*p)) {
			aml_fail(a, -EINVAL);
			return;
		}
		while (n < 4 && name_char(*p))
			segs[nsegs][n++] = (uint8_t)*p++;
		while (n < 4)
			segs[nsegs][n++] = '_';
		nsegs++;
		if (*p == '\0')
			break;
		if (*p++ != '.') {
			aml_fail(a, -EINVAL);
			return;
		}
	}
	if (nsegs == 2) {
		aml_byte(a, AML_DUAL_NAME_PREFIX);
	} else if (nsegs > 2) {
		aml_byte(a, AML_MULTI_NAME_PREFIX);
		aml_byte(a, (uint8_t)nsegs);
	}
	aml_bytes(a, segs, 4 * (size_t)nsegs);
}

/* Writes the shortest Integer encoding of @v into @out (9 bytes at most); returns its size. */
static size_t integer_encode(uint64_t v, uint8_t out[9])
{
	size_t n;

	if (v <= 1) {
		out[0] = v ? AML_ONE_OP : AML_ZERO_OP;
		return 1;
	}
	if (v <= UINT8_MAX) {
		out[0] = AML_BYTE_PREFIX;
		n = 1;
	} else if (v <= UINT16_MAX) {
		out[0] = AML_WORD_PREFIX;
		n = 2;
	} else if (v <= UINT32_MAX) {
		out[0] = AML_DWORD_PREFIX;
		n = 4;
	} else {
		out[0] = AML_QWORD_PREFIX;
		n = 8;
	}
	for (size_t i = 0; i < n; i++)
		out[1 + i] = (uint8_t)(v >> (8 * i));
	return 1 + n;
}

void aml_integer(struct aml *a, uint64_t v)
{
	uint8_t buf[9];
	aml_bytes(a, buf, integer_encode(v, buf));
}

void aml_string(struct aml *a, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p > 0x7f) {
			aml_fail(a, -EINVAL);
			return;
		}
	}
	aml_byte(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

void aml_name(struct aml *a, const char *path)
{
	aml_byte(a, AML_NAME_OP);
	aml_name_string(a, path);
}

void aml_return(struct aml *a)
{
	aml_byte(a, AML_RETURN_OP);
}

void aml_notify(struct aml *a, const char *target, uint8_t value)
{
	aml_byte(a, AML_NOTIFY_OP);
	aml_name_string(a, target);
	aml_integer(a, value);
}

void aml_dword(struct aml *a, uint32_t v)
{
	const uint8_t d[5] = { AML_DWORD_PREFIX, (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
			       (uint8_t)(v >> 24) };
	aml_bytes(a, d, sizeof(d));
}

void aml_local(struct aml *a, unsigned n)
{
	if (n > 7) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_byte(a, (uint8_t)(AML_LOCAL0_OP + n));
}

void aml_store(struct aml *a)
{
	aml_byte(a, AML_STORE_OP);
}

void aml_and(struct aml *a)
{
	aml_byte(a, AML_AND_OP);
}

void aml_op_region(struct aml *a, const char *name, uint8_t space, uint64_t offset, uint64_t len)
{
	aml_byte(a, AML_EXT_OP_PREFIX);
	aml_byte(a, AML_OP_REGION_OP);
	aml_name_string(a, name);
	aml_byte(a, space);
	aml_integer(a, offset);
	aml_integer(a, len);
}

void aml_field_unit(struct aml *a, const char *name, uint32_t bits)
{
	uint8_t len[4];
	unsigned n = aml_pkglen_encode(bits, len);
	size_t before = a->len;

	if (n == 0 || bits == 0) {
		aml_fail(a, -EINVAL);
		return;
	}
	/* A NameSeg, not a path: exactly 4 bytes, no prefix. */
	aml_name_string(a, name);
	if (!a->err && a->len - before != 4)
		aml_fail(a, -EINVAL);
	aml_bytes(a, len, n);
}

static void aml_open(struct aml *a, enum aml_frame_kind kind)
{
	if (a->err)
		return;
	if (a->depth == AML_MAX_DEPTH) {
		aml_fail(a, -EINVAL);
		return;
	}
	a->frames[a->depth].kind = kind;
	a->frames[a->depth].start = a->len;
	a->depth++;
}

void aml_scope_begin(struct aml *a, const char *path)
{
	aml_byte(a, AML_SCOPE_OP);
	aml_open(a, AML_FRAME_PKG);
	aml_name_string(a, path);
}

void aml_device_begin(struct aml *a, const char *path)
{
	aml_byte(a, AML_EXT_OP_PREFIX);
	aml_byte(a, AML_DEVICE_OP);
	aml_open(a, AML_FRAME_PKG);
	aml_name_string(a, path);
}

void aml_field_begin(struct aml *a, const char *region, uint8_t flags)
{
	aml_byte(a, AML_EXT_OP_PREFIX);
	aml_byte(a, AML_FIELD_OP);
	aml_open(a, AML_FRAME_PKG);
	aml_name_string(a, region);
	aml_byte(a, flags);
}

void aml_if_begin(struct aml *a)
{
	aml_byte(a, AML_IF_OP);
	aml_open(a, AML_FRAME_PKG);
}

void aml_method_begin(struct aml *a, const char *path, unsigned nargs, bool serialized)
{
	if (nargs > 7) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_byte(a, AML_METHOD_OP);
	aml_open(a, AML_FRAME_PKG);
	aml_name_string(a, path);
	/* MethodFlags: bits 0-2 ArgCount, bit 3 SerializeFlag, bits 4-7 SyncLevel (0). */
	aml_byte(a, (uint8_t)(nargs | (serialized ? 0x08 : 0)));
}

void aml_package_begin(struct aml *a, unsigned count)
{
	if (count > UINT8_MAX) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_byte(a, AML_PACKAGE_OP);
	aml_open(a, AML_FRAME_PKG);
	aml_byte(a, (uint8_t)count);
}

void aml_buffer_begin(struct aml *a)
{
	aml_byte(a, AML_BUFFER_OP);
	aml_open(a, AML_FRAME_BUFFER);
}

void aml_resource_begin(struct aml *a)
{
	aml_byte(a, AML_BUFFER_OP);
	aml_open(a, AML_FRAME_RESOURCE);
}

/* Resource descriptors only make sense inside a ResourceTemplate. */
static bool in_resource(struct aml *a)
{
	if (a->err)
		return false;
	if (a->depth == 0 || a->frames[a->depth - 1].kind != AML_FRAME_RESOURCE) {
		aml_fail(a, -EINVAL);
		return false;
	}
	return true;
}

void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	if (!in_resource(a))
		return;
	/* Information bit 0: the device decodes all 16 address bits. */
	const uint8_t d[8] = { AML_RES_IO,   0x01,
			       (uint8_t)min, (uint8_t)(min >> 8),
			       (uint8_t)max, (uint8_t)(max >> 8),
			       align,	     len };
	aml_bytes(a, d, sizeof(d));
}

void aml_res_irq(struct aml *a, unsigned irq)
{
	if (!in_resource(a))
		return;
	if (irq >= 16) {
		aml_fail(a, -EINVAL);
		return;
	}
	uint16_t mask = (uint16_t)(1u << irq);
	const uint8_t d[3] = { AML_RES_IRQ_NO_FLAGS, (uint8_t)mask, (uint8_t)(mask >> 8) };
	aml_bytes(a, d, sizeof(d));
}

void aml_res_mem32_fixed(struct aml *a, uint32_t base, uint32_t len, bool writable)
{
	if (!in_resource(a))
		return;
	uint8_t d[12] = { AML_RES_MEM32_FIXED, 9, 0, writable ? 1 : 0 };
	for (unsigned i = 0; i < 4; i++) {
		d[4 + i] = (uint8_t)(base >> (8 * i));
		d[8 + i] = (uint8_t)(len >> (8 * i));
	}
	aml_bytes(a, d, sizeof(d));
}

/*
 * One address space descriptor whose five numeric fields (granularity, min, max, translation,
 * length) are @width bytes each.
 */
static void res_space(struct aml *a, uint8_t tag, unsigned width, uint8_t type, uint8_t tflags,
		      uint64_t min, uint64_t max)
{
	const uint64_t fields[5] = { 0, min, max, 0, max - min + 1 };
	uint8_t d[3 + 3 + 5 * 8];
	size_t n = 0;

	if (!in_resource(a))
		return;
	if (min > max || max - min + 1 == 0) {
		aml_fail(a, -EINVAL);
		return;
	}
	unsigned body = 3 + 5 * width;
	d[n++] = tag;
	d[n++] = (uint8_t)body;
	d[n++] = (uint8_t)(body >> 8);
	d[n++] = type;
	d[n++] = AML_SPACE_FIXED_MINMAX;
	d[n++] = tflags;
	for (unsigned f = 0; f < 5; f++)
		for (unsigned i = 0; i < width; i++)
			d[n++] = (uint8_t)(fields[f] >> (8 * i));
	aml_bytes(a, d, n);
}

void aml_res_word_bus_number(struct aml *a, uint16_t min, uint16_t max)
{
	res_space(a, AML_RES_WORD_SPACE, 2, AML_SPACE_BUS_NUMBER, 0, min, max);
}

void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max)
{
	res_space(a, AML_RES_WORD_SPACE, 2, AML_SPACE_IO, AML_SPACE_IO_ENTIRE, min, max);
}

static uint8_t mem_flags(bool prefetchable)
{
	return AML_SPACE_MEM_RW | (prefetchable ? AML_SPACE_MEM_PREFETCH : AML_SPACE_MEM_CACHEABLE);
}

void aml_res_dword_memory(struct aml *a, uint32_t min, uint32_t max, bool prefetchable)
{
	res_space(a, AML_RES_DWORD_SPACE, 4, AML_SPACE_MEMORY, mem_flags(prefetchable), min, max);
}

void aml_res_qword_memory(struct aml *a, uint64_t min, uint64_t max, bool prefetchable)
{
	res_space(a, AML_RES_QWORD_SPACE, 8, AML_SPACE_MEMORY, mem_flags(prefetchable), min, max);
}

unsigned aml_pkglen_encode(uint32_t value, uint8_t out[4])
{
	unsigned n;

	if (value <= 0x3f) {
		out[0] = (uint8_t)value;
		return 1;
	}
	if (value <= 0xfff)
		n = 2;
	else if (value <= 0xfffff)
		n = 3;
	else if (value <= AML_PKGLEN_MAX)
		n = 4;
	else
		return 0;
	/* Lead byte: bits 7-6 the count of following bytes, bits 3-0 the low nibble. */
	out[0] = (uint8_t)(((n - 1) << 6) | (value & 0x0f));
	for (unsigned i = 1; i < n; i++)
		out[i] = (uint8_t)(value >> (4 + 8 * (i - 1)));
	return n;
}

unsigned aml_pkglen_size(size_t body)
{
	static const uint32_t limit[4] = { 0x3f, 0xfff, 0xfffff, AML_PKGLEN_MAX };

	for (unsigned n = 1; n <= 4; n++) {
		if (body <= limit[n - 1] - n)
			return n;
	}
	return 0;
}

void aml_end(struct aml *a)
{
	if (a->err)
		return;
	if (a->depth == 0) {
		aml_fail(a, -EINVAL);
		return;
	}
	struct aml_frame f = a->frames[--a->depth];

	if (f.kind == AML_FRAME_RESOURCE) {
		/* Checksum 0: "treat as if the checksum operation succeeded" (§6.4.2.9). */
		const uint8_t end[2] = { AML_RES_END_TAG, 0 };
		aml_bytes(a, end, sizeof(end));
	}
	if (f.kind != AML_FRAME_PKG) {
		uint8_t size[9];
		aml_insert(a, f.start, size, integer_encode(a->len - f.start, size));
	}
	if (a->err)
		return;

	size_t body = a->len - f.start;
	unsigned n = aml_pkglen_size(body);
	uint8_t pkglen[4];
	if (n == 0 || aml_pkglen_encode((uint32_t)(body + n), pkglen) != n) {
		aml_fail(a, -ENOSPC);
		return;
	}
	aml_insert(a, f.start, pkglen, n);
}

int aml_eisaid_value(const char *id, uint32_t *ret)
{
	uint32_t v = 0;

	if (strlen(id) != 7)
		return -EINVAL;
	for (unsigned i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z')
			return -EINVAL;
		v = (v << 5) | (uint32_t)(id[i] - 'A' + 1);
	}
	for (unsigned i = 3; i < 7; i++) {
		char c = id[i];
		uint32_t d;
		if (c >= '0' && c <= '9')
			d = (uint32_t)(c - '0');
		else if (c >= 'A' && c <= 'F')
			d = (uint32_t)(c - 'A' + 10);
		else
			return -EINVAL;
		v = (v << 4) | d;
	}
	/* 31 significant bits, most significant byte first in memory: byte-swap to a DWORD. */
	*ret = __builtin_bswap32(v);
	return 0;
}

void aml_eisaid(struct aml *a, const char *id)
{
	uint32_t v;

	if (aml_eisaid_value(id, &v) < 0) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_integer(a, v);
}
