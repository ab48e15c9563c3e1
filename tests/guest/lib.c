/* The device test guest's runtime: strings, COM1, printf-lite, power-off, allocator, TSC. */
#include "guest.h"

#define COM1	   0x3f8
#define COM1_LSR   (COM1 + 5)
#define LSR_THRE   0x20
#define THRE_SPINS 100000

#define ACPI_SLP_CTL	0x600
#define SLP_S5_EN	0x34 /* SLP_TYP=5 << 2 | SLP_EN */
#define QEMU_DEBUG_EXIT 0xf4

#define ARENA_SIZE (8u << 20)

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;
	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *p = a, *q = b;
	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p < *q ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

bool str_eq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

void serial_putc(char c)
{
	if (c == '\n')
		serial_putc('\r');
	for (int i = 0; i < THRE_SPINS && !(inb(COM1_LSR) & LSR_THRE); i++)
		cpu_relax();
	outb(COM1, (uint8_t)c);
}

struct sink {
	char *buf; /* NULL: COM1 */
	size_t size, len;
};

static void sink_put(struct sink *s, char c)
{
	if (!s->buf)
		serial_putc(c);
	else if (s->len + 1 < s->size)
		s->buf[s->len] = c;
	s->len++;
}

static void put_num(struct sink *s, uint64_t v, unsigned base, bool neg, int width, char pad)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	for (int i = n; i < width; i++)
		sink_put(s, pad);
	while (n)
		sink_put(s, tmp[--n]);
}

static void format(struct sink *s, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			sink_put(s, *fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int width = 0, longs = 0;
		if (*fmt == '0')
			pad = '0', fmt++;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l')
			longs++, fmt++;
		switch (*fmt) {
		case 's': {
			const char *str = va_arg(ap, const char *);
			if (!str)
				str = "(null)";
			for (int n = (int)strlen(str); n < width; n++)
				sink_put(s, ' ');
			while (*str)
				sink_put(s, *str++);
			break;
		}
		case 'c':
			sink_put(s, (char)va_arg(ap, int));
			break;
		case 'd': {
			int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
			put_num(s, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, v < 0, width, pad);
			break;
		}
		case 'u':
		case 'x': {
			uint64_t v = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int);
			put_num(s, v, *fmt == 'u' ? 10 : 16, false, width, pad);
			break;
		}
		case 'p':
			sink_put(s, '0');
			sink_put(s, 'x');
			put_num(s, (uint64_t)va_arg(ap, void *), 16, false, width, pad);
			break;
		case '%':
			sink_put(s, '%');
			break;
		case '\0':
			return;
		default:
			sink_put(s, '%');
			sink_put(s, *fmt);
		}
	}
}

void printf(const char *fmt, ...)
{
	struct sink s = { 0 };
	va_list ap;
	va_start(ap, fmt);
	format(&s, fmt, ap);
	va_end(ap);
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct sink s = { .buf = buf, .size = size };
	format(&s, fmt, ap);
	if (size)
		buf[s.len < size ? s.len : size - 1] = '\0';
	return (int)s.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

void poweroff(void)
{
	outb(ACPI_SLP_CTL, SLP_S5_EN);
	outb(QEMU_DEBUG_EXIT, 0);
	for (;;)
		__asm__ volatile("hlt");
}

static uint8_t arena[ARENA_SIZE] __attribute__((aligned(4096)));
static size_t arena_used;

void *alloc_pages(size_t size, size_t align)
{
	size_t start = ALIGN_UP(arena_used, align ? align : 1);
	if (start > ARENA_SIZE || size > ARENA_SIZE - start)
		return NULL;
	arena_used = start + size;
	memset(arena + start, 0, size);
	return arena + start;
}

static uint64_t tsc_freq_khz;

void tsc_init(void)
{
	uint32_t r[4];
	tsc_freq_khz = cmdline_u64("tsc_khz", 0);
	if (tsc_freq_khz)
		return;
	cpuid(0, 0, r);
	uint32_t max = r[0];
	if (max >= 0x15) {
		cpuid(0x15, 0, r); /* TSC = crystal (ecx Hz) * ebx / eax */
		if (r[0] && r[1] && r[2]) {
			tsc_freq_khz = (uint64_t)r[2] * r[1] / r[0] / 1000;
			return;
		}
	}
	if (max >= 0x16) {
		cpuid(0x16, 0, r); /* base frequency, MHz */
		if (r[0]) {
			tsc_freq_khz = (uint64_t)r[0] * 1000;
			return;
		}
	}
	cpuid(0x40000000, 0, r); /* hypervisor timing leaf (VMware-style), if offered */
	if (r[0] >= 0x40000010 && r[0] < 0x40000100) {
		cpuid(0x40000010, 0, r);
		tsc_freq_khz = r[0];
	}
}

uint64_t tsc_khz(void)
{
	return tsc_freq_khz;
}

uint64_t tsc_ms_to_cycles(uint64_t ms)
{
	return ms * (tsc_freq_khz ? tsc_freq_khz : 3000000);
}

uint64_t tsc_deadline(uint64_t ms)
{
	return rdtsc() + tsc_ms_to_cycles(ms);
}

bool tsc_expired(uint64_t deadline)
{
	return (int64_t)(rdtsc() - deadline) >= 0;
}
