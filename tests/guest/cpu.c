/*
 * CPU set-up of the device test guest: the IDT, the LAPIC and the legacy PIC (cpl0_setup, run
 * once at CPL0 by entry.S), the exception report (CPL0) and on-demand identity mappings (CPL3:
 * the page tables are user-writable memory like the rest of RAM; this is a test guest).
 */
#include "guest.h"

#define IDT_ENTRIES	256
#define GATE_INTR_DPL0	0x8e
#define PIC1_DATA	0x21
#define PIC2_DATA	0xa1
#define LVT_MASKED	0x10000
#define SVR_ENABLE	0x100
#define PAGE_POOL_PAGES 32
#define PTE_ADDR_MASK	0x000ffffffffff000ull
#define VA_LIMIT	(1ull << 48)

struct idt_gate {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t ist;
	uint8_t type;
	uint16_t off_mid;
	uint32_t off_hi;
	uint32_t zero;
} __attribute__((packed));

/* What isr_common pushed, lowest address first. */
struct exc_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error, rip, cs, rflags, rsp, ss;
};

extern char isr_stubs[];
extern uint64_t pml4[512];
extern unsigned passed_count, failed_count;
extern const char *current_scenario;

void cpl0_setup(void);
void exception_report(const struct exc_frame *f);

static struct idt_gate idt[IDT_ENTRIES] __attribute__((aligned(16)));

static void idt_set(unsigned v, uint64_t handler, uint8_t type)
{
	idt[v] = (struct idt_gate){ .off_lo = (uint16_t)handler,
				    .sel = SEL_KCODE,
				    .type = type,
				    .off_mid = (uint16_t)(handler >> 16),
				    .off_hi = (uint32_t)(handler >> 32) };
}

/* CPL0, emulated on kvm_pvm hosts: keep it short. */
void cpl0_setup(void)
{
	for (unsigned v = 0; v < IDT_ENTRIES; v++)
		idt_set(v, (uint64_t)isr_stubs + 16 * v, GATE_INTR_DPL0);
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = { sizeof(idt) - 1, (uint64_t)idt };
	__asm__ volatile("lidt %0" : : "m"(idtr));

	/* Only MSIs may interrupt us: mask the 8259s and the LAPIC's local lines. */
	outb(PIC1_DATA, 0xff);
	outb(PIC2_DATA, 0xff);
	mmio_write32(LAPIC_BASE + LAPIC_LVT_TIMER, LVT_MASKED);
	mmio_write32(LAPIC_BASE + LAPIC_LVT_LINT0, LVT_MASKED);
	mmio_write32(LAPIC_BASE + LAPIC_LVT_LINT1, LVT_MASKED);
	mmio_write32(LAPIC_BASE + LAPIC_LVT_ERROR, LVT_MASKED);
	mmio_write32(LAPIC_BASE + LAPIC_SVR, SVR_ENABLE | SPURIOUS_VECTOR);
}

void exception_report(const struct exc_frame *f)
{
	uint64_t cr2;
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	printf("FAIL %s: exception %lu at RIP 0x%lx (error 0x%lx, cr2 0x%lx, cs 0x%lx, rsp "
	       "0x%lx)\n",
	       current_scenario ? current_scenario : "boot", f->vector, f->rip, f->error, cr2,
	       f->cs, f->rsp);
	printf("DONE passed=%u failed=%u\n", passed_count, failed_count + 1);
	poweroff();
}

static uint64_t page_pool[PAGE_POOL_PAGES][512] __attribute__((aligned(4096)));
static unsigned page_pool_used;

/* The next-level table of entry @e, allocated (and linked) when not present. */
static uint64_t *table_next(uint64_t *e)
{
	if (*e & PTE_P)
		return (uint64_t *)(*e & PTE_ADDR_MASK);
	if (page_pool_used == PAGE_POOL_PAGES)
		return NULL;
	uint64_t *t = page_pool[page_pool_used++];
	memset(t, 0, 4096);
	barrier();
	*e = (uint64_t)t | PTE_USER_RW;
	return t;
}

/* A new mapping replaces only non-present entries, which the TLB never caches: no flush. */
bool map_identity(uint64_t addr, uint64_t len)
{
	if (addr >= VA_LIMIT || len > VA_LIMIT - addr)
		return false;
	for (uint64_t a = addr & ~0x1fffffull; a < addr + len; a += 0x200000) {
		uint64_t *pdpt = table_next(&pml4[(a >> 39) & 511]);
		if (!pdpt)
			return false;
		uint64_t *pd = table_next(&pdpt[(a >> 30) & 511]);
		if (!pd)
			return false;
		uint64_t *e = &pd[(a >> 21) & 511];
		if (!(*e & PTE_P))
			*e = a | PTE_USER_RW | PTE_PS;
	}
	return true;
}
