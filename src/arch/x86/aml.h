/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small AML byte-code builder (ACPI 6.x §20), internal to arch/x86: enough to write the DSDT
 * (names, integers, strings, packages, scopes, devices, methods, EISA ids and resource
 * templates). The output grows on the heap up to a fixed bound.
 *
 * Errors are sticky: every emitter is a no-op once one has failed, and aml_finish() reports the
 * first error. That keeps table code a straight list of calls with one check at the end.
 *
 * Objects with a PkgLength (Scope, Device, Method, Package, Buffer) are opened with a *_begin
 * call and closed with aml_end(); the length is back-patched on close with the shortest of the
 * 1..4 byte encodings.
 */
#ifndef CUBICLE_ARCH_X86_AML_H
#define CUBICLE_ARCH_X86_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH  16	   /* nested Scope/Device/Method/Package/Buffer */
#define AML_PKGLEN_MAX 0x0fffffffu /* 28 bits: the largest value a 4-byte PkgLength holds */

/* AML opcodes the builder and its callers use. */
#define AML_ZERO_OP	      0x00
#define AML_ONE_OP	      0x01
#define AML_NAME_OP	      0x08
#define AML_BYTE_PREFIX	      0x0a
#define AML_WORD_PREFIX	      0x0b
#define AML_DWORD_PREFIX      0x0c
#define AML_STRING_PREFIX     0x0d
#define AML_QWORD_PREFIX      0x0e
#define AML_SCOPE_OP	      0x10
#define AML_BUFFER_OP	      0x11
#define AML_PACKAGE_OP	      0x12
#define AML_METHOD_OP	      0x14
#define AML_DUAL_NAME_PREFIX  0x2e
#define AML_MULTI_NAME_PREFIX 0x2f
#define AML_EXT_OP_PREFIX     0x5b
#define AML_DEVICE_OP	      0x82 /* after AML_EXT_OP_PREFIX */
#define AML_ROOT_CHAR	      0x5c
#define AML_PARENT_PREFIX     0x5e
#define AML_RETURN_OP	      0xa4
#define AML_NOTIFY_OP	      0x86
#define AML_OP_REGION_OP      0x80 /* after AML_EXT_OP_PREFIX */
#define AML_FIELD_OP	      0x81 /* after AML_EXT_OP_PREFIX */
#define AML_LOCAL0_OP	      0x60 /* Local0..Local7: 0x60..0x67 */
#define AML_STORE_OP	      0x70
#define AML_AND_OP	      0x7b
#define AML_IF_OP	      0xa0

/* OperationRegion spaces and Field flags (ACPI 6.x §19.6.100, §19.6.48). */
#define AML_REGION_SYSTEM_MEMORY 0x00
#define AML_REGION_SYSTEM_IO	 0x01
#define AML_FIELD_BYTE_ACC	 0x01 /* AccessType ByteAcc; NoLock; UpdateRule Preserve */

enum aml_frame_kind {
	AML_FRAME_PKG,	    /* PkgLength only */
	AML_FRAME_BUFFER,   /* PkgLength, then BufferSize */
	AML_FRAME_RESOURCE, /* a Buffer that ends with an End Tag */
};

struct aml_frame {
	enum aml_frame_kind kind;
	size_t start; /* offset where the PkgLength goes */
};

struct aml {
	uint8_t *data;
	size_t len, cap, max;
	int err; /* first error, sticky */
	unsigned depth;
	struct aml_frame frames[AML_MAX_DEPTH];
};

/* Starts an empty builder whose output may grow to @max bytes (≤ AML_PKGLEN_MAX). */
void aml_init(struct aml *a, size_t max);

/* Frees the output. Safe on a zeroed or already freed builder. */
void aml_free(struct aml *a);

/*
 * Returns 0 when every emitter succeeded and every *_begin was closed; otherwise the first
 * error: -ENOSPC (output over the bound), -ENOMEM, -EINVAL (bad name, bad EISA id, unbalanced
 * aml_end, nesting deeper than AML_MAX_DEPTH).
 */
int aml_finish(const struct aml *a);

/* Raw bytes, e.g. an opcode. */
void aml_bytes(struct aml *a, const void *p, size_t n);
void aml_byte(struct aml *a, uint8_t b);

/*
 * A NameString: an optional leading '\' or '^'s, then 1..255 segments separated by '.'; each
 * segment is 1..4 characters of [A-Z0-9_] (first not a digit), padded with '_' to 4.
 * "\\_SB_.COM1", "_HID", "^PCI0" are valid.
 */
void aml_name_string(struct aml *a, const char *path);

/* An Integer with the shortest encoding: ZeroOp, OneOp, or Byte/Word/DWord/QWord prefix. */
void aml_integer(struct aml *a, uint64_t v);

/* A String: ASCII 0x01-0x7f, else the error is -EINVAL. */
void aml_string(struct aml *a, const char *s);

/* Name(@path, ...): the caller emits the object that follows. */
void aml_name(struct aml *a, const char *path);

/* Return(...): the caller emits the operand that follows. */
void aml_return(struct aml *a);
/* Notify (@target, @value): inside a method body. */
void aml_notify(struct aml *a, const char *target, uint8_t value);

/* A DWordConst (whatever the value): where a table's reader expects a 32-bit integer. */
void aml_dword(struct aml *a, uint32_t v);

/* LocalN (@n < 8), as an operand or a target. */
void aml_local(struct aml *a, unsigned n);

/* Store (source, target): the caller emits the source, then the target. */
void aml_store(struct aml *a);

/* And (op1, op2, target): the caller emits both operands, then the target (AML_ZERO_OP for
 * none: the result is only the expression's value). */
void aml_and(struct aml *a);

/* OperationRegion (@name, @space, @offset, @len). */
void aml_op_region(struct aml *a, const char *name, uint8_t space, uint64_t offset, uint64_t len);

/* Field (@region, @flags) { ... }: the caller emits aml_field_unit()s, then aml_end(). */
void aml_field_begin(struct aml *a, const char *region, uint8_t flags);
/* One named field of @bits bits (1..AML_PKGLEN_MAX) in a Field; @name is one NameSeg. */
void aml_field_unit(struct aml *a, const char *name, uint32_t bits);

/* If (predicate) { ... }: the caller emits the predicate, then the body, then aml_end(). */
void aml_if_begin(struct aml *a);

/* Scope(@path) { ... } / Device(@path) { ... }, closed with aml_end(). */
void aml_scope_begin(struct aml *a, const char *path);
void aml_device_begin(struct aml *a, const char *path);

/* Method(@path, @nargs (0..7), Serialized or NotSerialized) { ... }, closed with aml_end(). */
void aml_method_begin(struct aml *a, const char *path, unsigned nargs, bool serialized);

/* Package(@count) { ... }: the caller emits @count (≤ 255) elements, then aml_end(). */
void aml_package_begin(struct aml *a, unsigned count);

/* Buffer() { bytes } with a computed size, closed with aml_end(). */
void aml_buffer_begin(struct aml *a);

/*
 * ResourceTemplate() { descriptors }: a Buffer whose End Tag (checksum 0, meaning "none") is
 * appended by aml_end(). Between begin and end, emit only aml_res_* descriptors.
 */
void aml_resource_begin(struct aml *a);
void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
void aml_res_irq(struct aml *a, unsigned irq); /* IRQNoFlags() { @irq }, @irq < 16 */
void aml_res_mem32_fixed(struct aml *a, uint32_t base, uint32_t len, bool writable);

/*
 * Address space descriptors (§6.4.3.5) for what a bridge passes through to its children:
 * producer, minimum and maximum fixed, positive decode, granularity and translation 0, length
 * @max - @min + 1. @min > @max sets -EINVAL (as does a QWord range of all 2^64 addresses).
 * WordBusNumber; WordIO (ISA and non-ISA ranges); DWordMemory / QWordMemory (read-write,
 * cacheable, or prefetchable with @prefetchable).
 */
void aml_res_word_bus_number(struct aml *a, uint16_t min, uint16_t max);
void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max);
void aml_res_dword_memory(struct aml *a, uint32_t min, uint32_t max, bool prefetchable);
void aml_res_qword_memory(struct aml *a, uint64_t min, uint64_t max, bool prefetchable);

/* Closes the innermost *_begin. */
void aml_end(struct aml *a);

/*
 * The compressed EISA id of a 7-character id "AAAhhhh" (3 upper-case letters, 4 hex digits), as
 * EISAID() in ASL: returns 0 with the DWORD value, or -EINVAL.
 */
int aml_eisaid_value(const char *id, uint32_t *ret);

/* EISAID(@id) as an Integer. A bad id sets the error (-EINVAL). */
void aml_eisaid(struct aml *a, const char *id);

/*
 * Encodes PkgLength @value (the length of the object including the PkgLength bytes themselves)
 * into @out with the shortest encoding: 1 byte up to 63, 2 up to 4095, 3 up to 2^20-1, 4 up to
 * AML_PKGLEN_MAX. Returns the byte count, or 0 when @value > AML_PKGLEN_MAX.
 */
unsigned aml_pkglen_encode(uint32_t value, uint8_t out[4]);

/* The PkgLength bytes needed for an object whose body (what follows the PkgLength) is @body. */
unsigned aml_pkglen_size(size_t body);

#endif
