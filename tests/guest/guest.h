/*
 * The device test guest's small runtime (tests/guest/README.md). Everything here runs at CPL3
 * with IOPL=3 (port I/O allowed, no privileged instructions) unless it says CPL0.
 */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

#define ARRAY_SIZE(a)  (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a) (((x) + (a)-1) & ~((uint64_t)(a)-1))

/*
 * Port I/O. With IOPL=3 CPL3 may use in/out directly (hardware KVM, QEMU). kvm_pvm runs guest
 * CPL3 code as host user code and ignores IOPL: there each in/out raises #GP, which entry.S
 * emulates at CPL0 (decode, do it, skip it: ~30 emulated instructions). The port is always
 * in %dx (no immediate forms), which keeps that decoder small.
 */
static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "d"(port));
}
static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "d"(port));
}
static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "d"(port));
}
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "d"(port));
	return v;
}
static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "d"(port));
	return v;
}
static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "d"(port));
	return v;
}

/* MMIO: one access of exactly the given width (volatile, never merged or split). */
static inline uint8_t mmio_read8(uint64_t a)
{
	return *(volatile uint8_t *)a;
}
static inline uint16_t mmio_read16(uint64_t a)
{
	return *(volatile uint16_t *)a;
}
static inline uint32_t mmio_read32(uint64_t a)
{
	return *(volatile uint32_t *)a;
}
static inline void mmio_write8(uint64_t a, uint8_t v)
{
	*(volatile uint8_t *)a = v;
}
static inline void mmio_write16(uint64_t a, uint16_t v)
{
	*(volatile uint16_t *)a = v;
}
static inline void mmio_write32(uint64_t a, uint32_t v)
{
	*(volatile uint32_t *)a = v;
}
/* Two 32-bit halves, low first: what the virtio spec allows for 64-bit fields. */
static inline void mmio_write64(uint64_t a, uint64_t v)
{
	mmio_write32(a, (uint32_t)v);
	mmio_write32(a + 4, (uint32_t)(v >> 32));
}

static inline void barrier(void)
{
	__asm__ volatile("" : : : "memory");
}
/* Orders this CPU's stores to ring memory before a later store (x86 is TSO: a compiler
 * barrier suffices; mfence for the store-then-load case of event-index checks). */
static inline void mb(void)
{
	__asm__ volatile("mfence" : : : "memory");
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause");
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid"
			 : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(sub));
}

/* lib.c: memory and strings (the compiler may also call these). */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
bool str_eq(const char *a, const char *b);

/* lib.c: COM1 output (polls LSR.THRE with a bound, so a missing UART cannot hang us). */
void serial_putc(char c);
/* printf-lite: %s %c %d %u %x %lx %lu %ld %p, with optional 0-padding and width (%08x). */
void printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

/* lib.c: ACPI S5 through cubicle's sleep control register (0x34 to port 0x600); under QEMU,
 * port 0xf4 (isa-debug-exit, if present); then halts (hlt; at CPL3 the #GP handler halts). */
__attribute__((noreturn)) void poweroff(void);

/* lib.c: bump allocator over a static arena; memory is zeroed and never freed. Returns NULL
 * when the arena is exhausted. */
void *alloc_pages(size_t size, size_t align);

/* lib.c: the TSC. tsc_khz() is 0 when unknown (then timeouts assume 3 GHz). */
void tsc_init(void);
uint64_t tsc_khz(void);
uint64_t tsc_ms_to_cycles(uint64_t ms);
uint64_t tsc_deadline(uint64_t ms);
bool tsc_expired(uint64_t deadline);

/* main.c: the command line (hvm_start_info) and its key=value options. */
const char *cmdline(void);
/* Value of option `key=...` as a number (0x.. hex or decimal), or @def when absent. */
uint64_t cmdline_u64(const char *key, uint64_t def);
/* Copies the value of option `key=...` into @buf (truncated to @len - 1); false when absent. */
bool cmdline_str(const char *key, char *buf, size_t len);
uint64_t parse_u64(const char *s, const char **ret_end);
/* Top of guest RAM according to the hvm_start_info memory map (0 if there is none). */
uint64_t ram_end(void);

/* cpu.c: interrupt counters (incremented by the CPL0 stubs) and page mappings. */
extern volatile uint64_t irq_counts[256];
static inline uint64_t irq_count(unsigned vector)
{
	return irq_counts[vector & 0xff];
}
/* Identity-maps [addr, addr + len) with 2 MiB user pages if it is not mapped yet (0-4 GiB
 * always is). Returns false when the page-table pool is exhausted or addr is past 2^48. */
bool map_identity(uint64_t addr, uint64_t len);

/* A scenario: returns true on success; on failure writes why into @why (size WHY_MAX);
 * on success it may write a detail line into @why that follows "PASS name". */
#define WHY_MAX 256
struct scenario {
	const char *name;
	bool takes_arg; /* a following numeric word is its argument */
	uint64_t default_arg;
	bool (*run)(uint64_t arg, char *why);
};

#endif
