/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for src/arch/x86/loader.c: synthetic PVH ELF kernels and bzImages, well formed and
 * hostile, loaded into guest memory over a calloc'd buffer.
 */
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include "arch/x86/x86.h"
#include "util/util.h"

#define RAM_SIZE (64 * MiB)

struct fixture {
	struct guest_mem gm;
	uint8_t *ram;
	char err[256];
	struct x86_boot boot;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->ram = malloc(RAM_SIZE);
	assert_non_null(f->ram);
	memset(f->ram, 0xaa, RAM_SIZE); /* so that zeroing (bss, boot_params) is visible */
	guest_mem_init(&f->gm);
	assert_int_equal(guest_mem_add_region(&f->gm, 0, RAM_SIZE, f->ram), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	free(f->ram);
	free(f);
	return 0;
}

/* ---- synthetic PVH ELF ------------------------------------------------------------------- */

#define ELF_SIZE      0x3000
#define ELF_LOAD_OFF  0x1000
#define ELF_LOAD_ADDR 0x1000000ULL
#define ELF_FILESZ    0x800
#define ELF_MEMSZ     0x4000
#define ELF_ENTRY     (ELF_LOAD_ADDR + 0x10)
#define ELF_NOTE_OFF  0x200

struct elf {
	uint8_t *buf;
	size_t size;
	Elf64_Ehdr *eh;
	Elf64_Phdr *load, *note;
	Elf64_Nhdr *xen; /* the PVH note */
};

static void *put_note(uint8_t *p, const char *name, uint32_t type, const void *desc,
		      uint32_t descsz)
{
	Elf64_Nhdr nh = { .n_namesz = (uint32_t)strlen(name) + 1,
			  .n_descsz = descsz,
			  .n_type = type };
	memcpy(p, &nh, sizeof(nh));
	p += sizeof(nh);
	memcpy(p, name, nh.n_namesz);
	p += ALIGN_UP(nh.n_namesz, 4);
	memcpy(p, desc, descsz);
	return p + ALIGN_UP(descsz, 4);
}

static void elf_build(struct elf *e, unsigned descsz)
{
	e->size = ELF_SIZE;
	e->buf = calloc(1, e->size);
	assert_non_null(e->buf);
	e->eh = (Elf64_Ehdr *)e->buf;
	memcpy(e->eh->e_ident, ELFMAG, SELFMAG);
	e->eh->e_ident[EI_CLASS] = ELFCLASS64;
	e->eh->e_ident[EI_DATA] = ELFDATA2LSB;
	e->eh->e_ident[EI_VERSION] = EV_CURRENT;
	e->eh->e_type = ET_EXEC;
	e->eh->e_machine = EM_X86_64;
	e->eh->e_version = EV_CURRENT;
	e->eh->e_entry = 0xffffffff81000000ULL;
	e->eh->e_phoff = sizeof(Elf64_Ehdr);
	e->eh->e_ehsize = sizeof(Elf64_Ehdr);
	e->eh->e_phentsize = sizeof(Elf64_Phdr);
	e->eh->e_phnum = 2;

	e->load = (Elf64_Phdr *)(e->buf + e->eh->e_phoff);
	*e->load = (Elf64_Phdr){ .p_type = PT_LOAD,
				 .p_offset = ELF_LOAD_OFF,
				 .p_vaddr = 0xffffffff81000000ULL,
				 .p_paddr = ELF_LOAD_ADDR,
				 .p_filesz = ELF_FILESZ,
				 .p_memsz = ELF_MEMSZ,
				 .p_align = 0x1000 };
	for (unsigned i = 0; i < ELF_FILESZ; i++)
		e->buf[ELF_LOAD_OFF + i] = (uint8_t)(i * 7 + 1);

	/* A GNU note first, so that the walk must step over it. */
	uint8_t *p = e->buf + ELF_NOTE_OFF;
	uint8_t build_id[20] = { 1, 2, 3 };
	p = put_note(p, "GNU", NT_GNU_BUILD_ID, build_id, sizeof(build_id));
	e->xen = (Elf64_Nhdr *)p;
	uint64_t entry = ELF_ENTRY;
	p = put_note(p, "Xen", 18, &entry, descsz);

	e->note = e->load + 1;
	*e->note = (Elf64_Phdr){ .p_type = PT_NOTE,
				 .p_offset = ELF_NOTE_OFF,
				 .p_filesz = (uint64_t)(p - (e->buf + ELF_NOTE_OFF)),
				 .p_align = 4 };
}

static int load(struct fixture *f, const void *k, size_t ksize, const void *initrd, size_t isize,
		const char *cmdline)
{
	memset(f->err, 0, sizeof(f->err));
	return x86_load_kernel(&f->gm, k, ksize, initrd, isize, cmdline, X86_ACPI_START, &f->boot,
			       f->err, sizeof(f->err));
}

static int load_elf(struct fixture *f, struct elf *e)
{
	return load(f, e->buf, e->size, NULL, 0, "console=ttyS0");
}

/* hvm_start_info, as the PVH ABI lays it out. */
struct start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};

static void test_elf_ok(void **state)
{
	struct fixture *f = *state;
	struct elf e;
	struct start_info si;
	uint8_t initrd[10000];

	elf_build(&e, 4);
	for (unsigned i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)(i ^ 0x5a);
	assert_int_equal(load(f, e.buf, e.size, initrd, sizeof(initrd), "console=ttyS0 quiet"), 0);
	assert_int_equal(f->boot.kind, X86_KERNEL_PVH);
	assert_int_equal(f->boot.entry, ELF_ENTRY);
	assert_int_equal(f->boot.boot_info, X86_PVH_INFO_START);
	assert_int_equal(f->boot.kernel_end, ELF_LOAD_ADDR + ELF_MEMSZ);

	/* Segment: file bytes, then zeroed bss. */
	assert_memory_equal(f->ram + ELF_LOAD_ADDR, e.buf + ELF_LOAD_OFF, ELF_FILESZ);
	for (uint64_t i = ELF_FILESZ; i < ELF_MEMSZ; i++)
		assert_int_equal(f->ram[ELF_LOAD_ADDR + i], 0);

	memcpy(&si, f->ram + X86_PVH_INFO_START, sizeof(si));
	assert_int_equal(si.magic, 0x336ec578);
	assert_int_equal(si.version, 1);
	assert_int_equal(si.flags, 0);
	assert_int_equal(si.cmdline_paddr, X86_CMDLINE_START);
	assert_string_equal((char *)f->ram + X86_CMDLINE_START, "console=ttyS0 quiet");
	assert_int_equal(si.rsdp_paddr, X86_ACPI_START);

	/* One module: the initramfs, page aligned at the top of RAM. */
	assert_int_equal(si.nr_modules, 1);
	uint64_t mod[4];
	memcpy(mod, f->ram + si.modlist_paddr, sizeof(mod));
	assert_int_equal(mod[0], ALIGN_DOWN(RAM_SIZE - sizeof(initrd), 4 * KiB));
	assert_int_equal(mod[1], sizeof(initrd));
	assert_int_equal(mod[2], 0);
	assert_memory_equal(f->ram + mod[0], initrd, sizeof(initrd));

	/* The memory map: 24-byte entries, same content as e820. */
	assert_int_equal(si.memmap_entries, 4);
	struct {
		uint64_t addr, size;
		uint32_t type, reserved;
	} mm[4];
	memcpy(mm, f->ram + si.memmap_paddr, sizeof(mm));
	assert_int_equal(mm[0].addr, 0);
	assert_int_equal(mm[0].size, X86_EBDA_START);
	assert_int_equal(mm[0].type, X86_E820_RAM);
	assert_int_equal(mm[1].type, X86_E820_RESERVED);
	assert_int_equal(mm[2].addr, X86_HIGH_MEM_START);
	assert_int_equal(mm[2].size, RAM_SIZE - X86_HIGH_MEM_START);
	assert_int_equal(mm[2].type, X86_E820_RAM);
	assert_int_equal(mm[3].addr, X86_PCI_MMCONFIG_START);
	assert_int_equal(mm[3].reserved, 0);
	/* The PVH data stays clear of the zero page and the command line. */
	assert_true(si.memmap_paddr + sizeof(mm) <= X86_ZERO_PAGE_START);
	free(e.buf);
}

static void test_elf_no_initrd_quad_note(void **state)
{
	struct fixture *f = *state;
	struct elf e;
	struct start_info si;

	elf_build(&e, 8); /* Linux 6.x emits the entry as a .quad */
	assert_int_equal(load(f, e.buf, e.size, NULL, 0, NULL), 0);
	assert_int_equal(f->boot.entry, ELF_ENTRY);
	memcpy(&si, f->ram + X86_PVH_INFO_START, sizeof(si));
	assert_int_equal(si.nr_modules, 0);
	assert_int_equal(si.modlist_paddr, 0);
	assert_int_equal(f->ram[X86_CMDLINE_START], 0);
	free(e.buf);
}

static void expect_elf_fail(struct fixture *f, struct elf *e, int r, const char *msg)
{
	assert_int_equal(load_elf(f, e), r);
	if (msg)
		assert_string_equal(f->err, msg);
	else
		assert_true(strncmp(f->err, "kernel: ", 8) == 0);
	free(e->buf);
}

static void test_elf_truncated(void **state)
{
	struct fixture *f = *state;
	struct elf e;

	elf_build(&e, 4);
	e.size = 40;
	expect_elf_fail(f, &e, -ENOEXEC, "kernel: truncated: ELF header ends past the file");

	elf_build(&e, 4);
	e.size = ELF_LOAD_OFF + 0x10; /* segment data cut off */
	expect_elf_fail(f, &e, -ENOEXEC, "kernel: truncated: program header 0 ends past the file");
}

static void test_elf_phdr_past_end(void **state)
{
	struct fixture *f = *state;
	struct elf e;

	elf_build(&e, 4);
	e.eh->e_phoff = ELF_SIZE - 10;
	expect_elf_fail(f, &e, -ENOEXEC, "kernel: truncated: program header 0 ends past the file");

	elf_build(&e, 4);
	e.eh->e_phoff = UINT64_MAX - 8; /* offset + size wraps */
	expect_elf_fail(f, &e, -ENOEXEC, "kernel: truncated: program header 0 ends past the file");

	elf_build(&e, 4);
	e.eh->e_phnum = 3; /* third header read past a tiny file */
	e.size = sizeof(Elf64_Ehdr) + 2 * sizeof(Elf64_Phdr) + 8;
	e.note->p_offset = 0;
	e.note->p_filesz = 0;
	e.load->p_offset = 0;
	e.load->p_filesz = 0;
	expect_elf_fail(f, &e, -ENOEXEC, "kernel: truncated: program header 2 ends past the file");

	elf_build(&e, 4);
	e.load->p_offset = UINT64_MAX - 0x10; /* offset + filesz wraps */
	expect_elf_fail(f, &e, -ENOEXEC, "kernel: truncated: program header 0 ends past the file");
}

static void test_elf_phnum(void **state)
{
	struct fixture *f = *state;
	struct elf e;

	elf_build(&e, 4);
	e.eh->e_phnum = 0xffff;
	expect_elf_fail(f, &e, -ENOEXEC, NULL);
	elf_build(&e, 4);
	e.eh->e_phnum = 65;
	expect_elf_fail(f, &e, -ENOEXEC, NULL);
	elf_build(&e, 4);
	e.eh->e_phnum = 0;
	expect_elf_fail(f, &e, -ENOEXEC, NULL);
	elf_build(&e, 4);
	e.eh->e_phentsize = 32;
	expect_elf_fail(f, &e, -ENOEXEC, NULL);
}

static void test_elf_bad_load(void **state)
{
	struct fixture *f = *state;
	struct elf e;

	elf_build(&e, 4);
	e.load->p_paddr = 0xfffffffffffff000ULL; /* paddr + memsz overflows */
	expect_elf_fail(f, &e, -ENOEXEC, NULL);

	elf_build(&e, 4);
	e.load->p_paddr = RAM_SIZE - 0x1000; /* past the end of RAM */
	expect_elf_fail(f, &e, -EFBIG, NULL);

	elf_build(&e, 4);
	e.load->p_paddr = 8 * GiB; /* nowhere */
	expect_elf_fail(f, &e, -EFBIG, NULL);

	elf_build(&e, 4);
	e.load->p_memsz = ELF_FILESZ - 1; /* filesz > memsz */
	expect_elf_fail(f, &e, -ENOEXEC, NULL);

	elf_build(&e, 4);
	e.load->p_paddr = 0x8000; /* over the boot area (page tables, zero page) */
	expect_elf_fail(f, &e, -ENOEXEC, NULL);

	elf_build(&e, 4);
	e.load->p_type = PT_NULL;
	expect_elf_fail(f, &e, -ENOEXEC, "kernel: ELF has no loadable segment");
}

static void test_elf_notes(void **state)
{
	struct fixture *f = *state;
	struct elf e;

	elf_build(&e, 4);
	e.xen->n_type = 17;
	expect_elf_fail(f, &e, -ENOEXEC,
			"kernel: ELF has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");

	elf_build(&e, 4);
	e.note->p_type = PT_NULL;
	expect_elf_fail(f, &e, -ENOEXEC,
			"kernel: ELF has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");

	elf_build(&e, 4);
	e.xen->n_namesz = 0xffffffff; /* huge name: must not read past the segment */
	expect_elf_fail(f, &e, -ENOEXEC, NULL);

	elf_build(&e, 4);
	e.xen->n_descsz = 0xfffffffd;
	expect_elf_fail(f, &e, -ENOEXEC, NULL);

	elf_build(&e, 4);
	e.xen->n_descsz = 2; /* neither 4 nor 8 bytes */
	expect_elf_fail(f, &e, -ENOEXEC, NULL);

	elf_build(&e, 4);
	e.note->p_filesz = ELF_SIZE; /* note segment past the end of the file */
	expect_elf_fail(f, &e, -ENOEXEC, NULL);

	elf_build(&e, 4);
	uint32_t bad_entry = 0x200000; /* not inside a loaded segment */
	memcpy((uint8_t *)e.xen + sizeof(Elf64_Nhdr) + 4, &bad_entry, 4);
	expect_elf_fail(f, &e, -ENOEXEC, NULL);
}

static void test_not_a_kernel(void **state)
{
	struct fixture *f = *state;
	struct elf e;
	uint8_t junk[4096] = { 'M', 'Z' };

	assert_int_equal(load(f, junk, sizeof(junk), NULL, 0, NULL), -ENOEXEC);
	assert_string_equal(f->err, "kernel: not an ELF vmlinux or bzImage");
	assert_int_equal(load(f, junk, 0, NULL, 0, NULL), -ENOEXEC);
	assert_int_equal(load(f, ELFMAG, 4, NULL, 0, NULL), -ENOEXEC);

	elf_build(&e, 4);
	e.eh->e_ident[EI_CLASS] = ELFCLASS32;
	expect_elf_fail(f, &e, -ENOEXEC, NULL);
	elf_build(&e, 4);
	e.eh->e_machine = EM_386;
	expect_elf_fail(f, &e, -ENOEXEC, NULL);
}

static void test_elf_cmdline(void **state)
{
	struct fixture *f = *state;
	struct elf e;
	char line[CONFIG_MAX_CMDLINE + 1];

	elf_build(&e, 4);
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	assert_int_equal(load(f, e.buf, e.size, NULL, 0, line), -E2BIG);
	line[CONFIG_MAX_CMDLINE - 1] = '\0'; /* 2047 bytes fit */
	assert_int_equal(load(f, e.buf, e.size, NULL, 0, line), 0);
	assert_int_equal(strlen((char *)f->ram + X86_CMDLINE_START), CONFIG_MAX_CMDLINE - 1);
	free(e.buf);
}

/* ---- synthetic bzImage -------------------------------------------------------------------- */

#define BZ_SETUP_SECTS 4
#define BZ_PAYLOAD     0x3000
#define BZ_PREF	       0x1000000ULL
#define BZ_INIT_SIZE   0x400000U

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static uint8_t *bz_build(size_t *size)
{
	size_t setup = (BZ_SETUP_SECTS + 1) * 512;
	uint8_t *k = calloc(1, setup + BZ_PAYLOAD);

	assert_non_null(k);
	*size = setup + BZ_PAYLOAD;
	k[0x1f1] = BZ_SETUP_SECTS;
	put16(k + 0x1fa, 0xffff); /* vid_mode */
	put16(k + 0x1fe, 0xaa55);
	k[0x200] = 0xeb;
	k[0x201] = 0x6a; /* header ends at 0x26c */
	memcpy(k + 0x202, "HdrS", 4);
	put16(k + 0x206, 0x020f);
	k[0x211] = 0x01;		/* LOADED_HIGH */
	put32(k + 0x214, 0x100000);	/* code32_start */
	put32(k + 0x22c, 0x7fffffff);	/* initrd_addr_max */
	put32(k + 0x230, 0x200000);	/* kernel_alignment */
	put16(k + 0x236, 0x1);		/* XLF_KERNEL_64 */
	put32(k + 0x238, 2047);		/* cmdline_size */
	put64(k + 0x258, BZ_PREF);	/* pref_address */
	put32(k + 0x260, BZ_INIT_SIZE); /* init_size */
	k[0x270] = 0x77;		/* past the header: must not be copied */
	for (unsigned i = 0; i < BZ_PAYLOAD; i++)
		k[setup + i] = (uint8_t)(i * 13 + 5);
	return k;
}

static void test_bz_ok(void **state)
{
	struct fixture *f = *state;
	size_t size;
	uint8_t *k = bz_build(&size);
	uint8_t initrd[5000] = { 1, 2, 3 };
	const uint8_t *bp = f->ram + X86_ZERO_PAGE_START;

	assert_int_equal(load(f, k, size, initrd, sizeof(initrd), "root=/dev/vda"), 0);
	assert_int_equal(f->boot.kind, X86_KERNEL_BZIMAGE);
	assert_int_equal(f->boot.entry, BZ_PREF + 0x200);
	assert_int_equal(f->boot.boot_info, X86_ZERO_PAGE_START);
	assert_int_equal(f->boot.kernel_end, BZ_PREF + BZ_INIT_SIZE);
	assert_memory_equal(f->ram + BZ_PREF, k + (BZ_SETUP_SECTS + 1) * 512, BZ_PAYLOAD);

	/* Setup header copied, loader fields filled, the rest zeroed. */
	assert_int_equal(bp[0x1f1], BZ_SETUP_SECTS);
	assert_int_equal(get16(bp + 0x1fa), 0xffff);
	assert_memory_equal(bp + 0x202, "HdrS", 4);
	assert_int_equal(get16(bp + 0x206), 0x020f);
	assert_int_equal(bp[0x210], 0xff);
	assert_int_equal(bp[0x211], 0x81);
	assert_int_equal(get16(bp + 0x224), 0xfe00);
	assert_int_equal(get32(bp + 0x228), X86_CMDLINE_START);
	assert_int_equal(get64(bp + 0x258), BZ_PREF);
	assert_int_equal(bp[0x270], 0);
	assert_int_equal(bp[0x000], 0);
	assert_int_equal(get64(bp + 0x070), X86_ACPI_START);
	assert_string_equal((char *)f->ram + X86_CMDLINE_START, "root=/dev/vda");

	uint32_t rd = get32(bp + 0x218);
	assert_int_equal(rd, ALIGN_DOWN(RAM_SIZE - sizeof(initrd), 4 * KiB));
	assert_int_equal(get32(bp + 0x21c), sizeof(initrd));
	assert_memory_equal(f->ram + rd, initrd, sizeof(initrd));

	assert_int_equal(bp[0x1e8], 4);
	struct x86_e820_entry e[4];
	memcpy(e, bp + 0x2d0, sizeof(e));
	assert_int_equal(e[0].addr, 0);
	assert_int_equal(e[0].size, X86_EBDA_START);
	assert_int_equal(e[0].type, X86_E820_RAM);
	assert_int_equal(e[2].addr, X86_HIGH_MEM_START);
	assert_int_equal(e[2].size, RAM_SIZE - X86_HIGH_MEM_START);
	assert_int_equal(e[3].type, X86_E820_RESERVED);
	free(k);
}

static void test_bz_initrd_addr_max(void **state)
{
	struct fixture *f = *state;
	size_t size;
	uint8_t *k = bz_build(&size);
	uint8_t initrd[5000] = { 0 };

	put32(k + 0x22c, 32 * MiB - 1);
	assert_int_equal(load(f, k, size, initrd, sizeof(initrd), NULL), 0);
	uint32_t rd = get32(f->ram + X86_ZERO_PAGE_START + 0x218);
	assert_true(rd + sizeof(initrd) <= 32 * MiB);
	assert_true(rd >= BZ_PREF + BZ_INIT_SIZE);
	assert_int_equal(rd % 4096, 0);

	put32(k + 0x22c, BZ_PREF); /* no room between the kernel and the limit */
	assert_int_equal(load(f, k, size, initrd, sizeof(initrd), NULL), -EFBIG);
	free(k);
}

static void expect_bz_fail(struct fixture *f, uint8_t *k, size_t size, int r, const char *msg)
{
	assert_int_equal(load(f, k, size, NULL, 0, NULL), r);
	if (msg)
		assert_string_equal(f->err, msg);
	else
		assert_true(strncmp(f->err, "kernel: ", 8) == 0);
	free(k);
}

static void test_bz_hostile(void **state)
{
	struct fixture *f = *state;
	size_t size;
	uint8_t *k;

	k = bz_build(&size);
	put16(k + 0x206, 0x0205);
	expect_bz_fail(f, k, size, -ENOEXEC,
		       "kernel: bzImage boot protocol 2.05 is too old (2.06 or later needed)");

	k = bz_build(&size);
	put16(k + 0x236, 0);
	expect_bz_fail(f, k, size, -ENOEXEC,
		       "kernel: bzImage has no 64-bit entry point (XLF_KERNEL_64 not set)");

	k = bz_build(&size);
	put16(k + 0x206, 0x0206); /* 2.06..2.11 have no xloadflags */
	expect_bz_fail(f, k, size, -ENOEXEC, NULL);

	k = bz_build(&size);
	k[0x1f1] = 200; /* setup past the file */
	expect_bz_fail(f, k, size, -ENOEXEC,
		       "kernel: truncated: bzImage setup (200 sectors) ends past the file");

	k = bz_build(&size);
	expect_bz_fail(f, k, 0x230, -ENOEXEC, NULL); /* header cut */

	k = bz_build(&size);
	k[0x211] = 0; /* zImage */
	expect_bz_fail(f, k, size, -ENOEXEC, NULL);

	k = bz_build(&size);
	put64(k + 0x258, RAM_SIZE - 2 * MiB); /* init_size runs past RAM */
	expect_bz_fail(f, k, size, -EFBIG, NULL);

	k = bz_build(&size);
	put64(k + 0x258, 0xfffffffffffff000ULL); /* overflows */
	expect_bz_fail(f, k, size, -EFBIG, NULL);

	k = bz_build(&size);
	put64(k + 0x258, BZ_PREF + 1); /* misaligned */
	expect_bz_fail(f, k, size, -ENOEXEC, NULL);

	k = bz_build(&size);
	put32(k + 0x260, 0xffffffff); /* init_size 4 GiB */
	expect_bz_fail(f, k, size, -EFBIG, NULL);

	/* pref_address below 1 MiB is not honoured: the kernel goes to 1 MiB. */
	k = bz_build(&size);
	put64(k + 0x258, 0x1000);
	assert_int_equal(load(f, k, size, NULL, 0, NULL), 0);
	assert_int_equal(f->boot.entry, X86_HIGH_MEM_START + 0x200);
	free(k);
}

static void test_bz_cmdline(void **state)
{
	struct fixture *f = *state;
	size_t size;
	uint8_t *k = bz_build(&size);
	char line[CONFIG_MAX_CMDLINE + 1];

	memset(line, 'y', sizeof(line) - 1);
	line[CONFIG_MAX_CMDLINE] = '\0';
	assert_int_equal(load(f, k, size, NULL, 0, line), -E2BIG);
	line[2047] = '\0';
	assert_int_equal(load(f, k, size, NULL, 0, line), 0);

	put32(k + 0x238, 100); /* the kernel's own limit is smaller */
	line[101] = '\0';
	assert_int_equal(load(f, k, size, NULL, 0, line), -E2BIG);
	assert_string_equal(f->err,
			    "kernel: command line is 101 bytes, the kernel accepts at most 100");
	line[100] = '\0';
	assert_int_equal(load(f, k, size, NULL, 0, line), 0);
	assert_int_equal(strlen((char *)f->ram + X86_CMDLINE_START), 100);
	free(k);
}

static void test_initrd_too_big(void **state)
{
	struct fixture *f = *state;
	size_t size;
	uint8_t *k = bz_build(&size);
	size_t big = 100 * MiB;
	uint8_t *initrd = malloc(big); /* never touched: placement fails first */

	assert_non_null(initrd);
	assert_int_equal(load(f, k, size, initrd, big, NULL), -EFBIG);
	assert_true(strncmp(f->err, "initramfs: 100M does not fit in 64M of guest RAM", 48) == 0);

	/* Fits in RAM, but not above the kernel (which ends at 20M). */
	assert_int_equal(load(f, k, size, initrd, 45 * MiB, NULL), -EFBIG);
	assert_true(strncmp(f->err, "initramfs: 45M does not fit", 27) == 0);
	assert_int_equal(load(f, k, size, initrd, 44 * MiB, NULL), 0);
	free(initrd);
	free(k);
}

static void test_no_low_ram(void **state)
{
	struct fixture *f = *state;
	size_t size;
	uint8_t *k = bz_build(&size);
	struct guest_mem gm;
	struct x86_boot boot;
	char err[128];

	guest_mem_init(&gm);
	assert_int_equal(guest_mem_add_region(&gm, 4 * GiB, RAM_SIZE, f->ram), 0);
	assert_int_equal(x86_load_kernel(&gm, k, size, NULL, 0, NULL, 0, &boot, err, sizeof(err)),
			 -EFBIG);
	free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_elf_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_no_initrd_quad_note, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_phdr_past_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_phnum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_bad_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_notes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_kernel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_cmdline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bz_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bz_initrd_addr_max, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bz_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bz_cmdline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_initrd_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_low_ram, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
