/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernel loading: a PVH ELF vmlinux (Xen's PVH boot ABI, entered in 32-bit protected mode with
 * %ebx = struct hvm_start_info) or a bzImage (Linux boot protocol, entered at startup_64 in long
 * mode with %rsi = struct boot_params). The initramfs goes at the top of low RAM.
 *
 * The kernel file is as hostile as guest memory: every offset, size, count and address read from
 * it is bounds- and overflow-checked against the file and guest RAM before use, and the file
 * buffer is only read with memcpy (no alignment assumed).
 */
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86/x86.h"
#include "util/util.h"

/* Xen's PVH ELF note (xen/include/public/elfnote.h) and start of day structures
 * (xen/include/public/arch-x86/hvm/start_info.h). */
#define XEN_ELFNOTE_PHYS32_ENTRY  18
#define XEN_HVM_START_MAGIC_VALUE 0x336ec578u

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info layout");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry layout");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry layout");

/* Where the pieces of the PVH start of day data go, inside one page at X86_PVH_INFO_START. */
#define PVH_MODLIST_GPA (X86_PVH_INFO_START + 0x40)
#define PVH_MEMMAP_GPA	(X86_PVH_INFO_START + 0x80)
_Static_assert(PVH_MODLIST_GPA >= X86_PVH_INFO_START + sizeof(struct hvm_start_info),
	       "modlist overlaps start_info");
_Static_assert(PVH_MEMMAP_GPA >= PVH_MODLIST_GPA + sizeof(struct hvm_modlist_entry),
	       "memmap overlaps modlist");
_Static_assert(PVH_MEMMAP_GPA + X86_E820_MAX * sizeof(struct hvm_memmap_table_entry) <=
		       X86_PVH_INFO_START + 0x1000,
	       "PVH data exceeds its page");

/* Offsets in struct boot_params (Documentation/x86/zero-page.rst); the setup header part is at
 * the same offsets in the bzImage file (Documentation/x86/boot.rst). */
#define BP_SIZE		   0x1000
#define BP_ACPI_RSDP_ADDR  0x070
#define BP_E820_ENTRIES	   0x1e8
#define BP_SETUP_SECTS	   0x1f1
#define BP_BOOT_FLAG	   0x1fe
#define BP_JUMP		   0x200
#define BP_HEADER	   0x202
#define BP_VERSION	   0x206
#define BP_TYPE_OF_LOADER  0x210
#define BP_LOADFLAGS	   0x211
#define BP_RAMDISK_IMAGE   0x218
#define BP_RAMDISK_SIZE	   0x21c
#define BP_HEAP_END_PTR	   0x224
#define BP_CMD_LINE_PTR	   0x228
#define BP_INITRD_ADDR_MAX 0x22c
#define BP_XLOADFLAGS	   0x236
#define BP_CMDLINE_SIZE	   0x238
#define BP_PREF_ADDRESS	   0x258
#define BP_INIT_SIZE	   0x260
#define BP_HDR_END_MAX	   0x290 /* edd_mbr_sig_buffer follows the setup header */
#define BP_E820_TABLE	   0x2d0
#define BP_E820_TABLE_MAX  128
#define BP_E820_ENTRY_SIZE 20

#define BZ_MIN_VERSION	     0x0206 /* cmdline_size; 64-bit entry needs xloadflags (2.12) */
#define BZ_LOADED_HIGH	     0x01
#define BZ_CAN_USE_HEAP	     0x80
#define BZ_XLF_KERNEL_64     0x01
#define BZ_LOADER_UNDEFINED  0xff
#define BZ_HEAP_END	     0xfe00 /* setup heap end, relative to the real-mode code, - 0x200 */
#define BZ_STARTUP_64_OFFSET 0x200

#define ELF_MAX_PHNUM 64 /* vmlinux has ~5; anything far beyond is hostile */

_Static_assert(X86_CMDLINE_START + CONFIG_MAX_CMDLINE <= X86_EBDA_START,
	       "command line overlaps the EBDA");

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* True when [off, off+len) lies inside a file of @size bytes. */
static bool in_file(uint64_t off, uint64_t len, size_t size)
{
	return off <= size && len <= size - off;
}

/* What the kernel-specific parsers tell the common code. */
struct kernel_info {
	enum x86_kernel_kind kind;
	uint64_t entry;
	uint64_t end;	      /* first byte after the kernel's memory */
	uint64_t cmdline_max; /* bytes, without the NUL */
	uint64_t initrd_max;  /* last byte the initramfs may occupy */
	uint8_t *boot_params; /* bzImage: BP_SIZE bytes, setup header filled in */
};

/* Low RAM: the region holding the kernel load area, cut at 4 GiB (boot entry is 32-bit). */
static int low_ram_end(const struct guest_mem *gm, uint64_t *ret)
{
	for (unsigned i = 0; i < gm->nr_regions; i++) {
		const struct guest_mem_region *r = &gm->regions[i];
		if (r->gpa <= X86_HIGH_MEM_START && X86_HIGH_MEM_START - r->gpa < r->size) {
			*ret = MIN(r->gpa + r->size, X86_MEM_32BIT_HOLE_END);
			return 0;
		}
	}
	return -EFBIG;
}

/* Finds XEN_ELFNOTE_PHYS32_ENTRY in one PT_NOTE segment; *found stays false if absent. */
static int elf_find_pvh_note(const uint8_t *k, const Elf64_Phdr *ph, unsigned idx, bool *found,
			     uint64_t *entry, char *err, size_t errlen)
{
	uint64_t align = ph->p_align == 8 ? 8 : 4;
	const uint8_t *p = k + ph->p_offset;
	uint64_t left = ph->p_filesz;

	while (left >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		memcpy(&nh, p, sizeof(nh));
		uint64_t name_len = ALIGN_UP((uint64_t)nh.n_namesz, align);
		uint64_t desc_len = ALIGN_UP((uint64_t)nh.n_descsz, align);
		uint64_t total = sizeof(nh) + name_len + desc_len; /* no overflow: each < 2^33 */

		if (total > left)
			return error_set(
				err, errlen, -ENOEXEC,
				"kernel: truncated: a note in program header %u ends past its "
				"segment",
				idx);
		const uint8_t *name = p + sizeof(nh);
		const uint8_t *desc = name + name_len;
		if (nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh.n_namesz == 4 &&
		    memcmp(name, "Xen", 4) == 0) {
			/* Linux emits the address as a pointer-sized value (.quad), older ones
			 * and other kernels as .long; the entry is 32-bit either way. */
			if (nh.n_descsz == 4)
				*entry = get32(desc);
			else if (nh.n_descsz == 8)
				*entry = get64(desc);
			else
				return error_set(
					err, errlen, -ENOEXEC,
					"kernel: PVH entry note has a %u-byte value (4 or 8 "
					"expected)",
					nh.n_descsz);
			*found = true;
			return 0;
		}
		p += total;
		left -= total;
	}
	return 0;
}

static int elf_check_load(const Elf64_Phdr *ph, unsigned idx, size_t size, uint64_t low_end,
			  char *err, size_t errlen)
{
	if (range_overflows(ph->p_offset, ph->p_filesz) ||
	    !in_file(ph->p_offset, ph->p_filesz, size))
		return error_set(err, errlen, -ENOEXEC,
				 "kernel: truncated: program header %u ends past the file", idx);
	if (ph->p_filesz > ph->p_memsz)
		return error_set(err, errlen, -ENOEXEC,
				 "kernel: program header %u has more file bytes (%llu) than memory "
				 "bytes (%llu)",
				 idx, (unsigned long long)ph->p_filesz,
				 (unsigned long long)ph->p_memsz);
	if (range_overflows(ph->p_paddr, ph->p_memsz))
		return error_set(
			err, errlen, -ENOEXEC,
			"kernel: program header %u: address 0x%llx + size 0x%llx overflows", idx,
			(unsigned long long)ph->p_paddr, (unsigned long long)ph->p_memsz);
	if (ph->p_paddr < X86_HIGH_MEM_START)
		return error_set(
			err, errlen, -ENOEXEC,
			"kernel: program header %u loads at 0x%llx, inside the boot area below "
			"1 MiB",
			idx, (unsigned long long)ph->p_paddr);
	if (ph->p_paddr + ph->p_memsz > low_end)
		return error_set(
			err, errlen, -EFBIG,
			"kernel: program header %u [0x%llx-0x%llx) lies beyond guest RAM (low RAM "
			"ends at 0x%llx)",
			idx, (unsigned long long)ph->p_paddr,
			(unsigned long long)(ph->p_paddr + ph->p_memsz),
			(unsigned long long)low_end);
	return 0;
}

static int elf_load(struct guest_mem *gm, const uint8_t *k, size_t size, uint64_t low_end,
		    struct kernel_info *ki, char *err, size_t errlen)
{
	Elf64_Ehdr eh;
	bool found = false, any_load = false;
	uint64_t entry = 0, end = 0;
	int r;

	if (size < sizeof(eh))
		return error_set(err, errlen, -ENOEXEC,
				 "kernel: truncated: ELF header ends past the file");
	memcpy(&eh, k, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != EM_X86_64 || (eh.e_type != ET_EXEC && eh.e_type != ET_DYN))
		return error_set(err, errlen, -ENOEXEC,
				 "kernel: ELF is not a 64-bit little-endian x86_64 executable");
	if (eh.e_phentsize != sizeof(Elf64_Phdr))
		return error_set(err, errlen, -ENOEXEC,
				 "kernel: ELF program header size is %u, not %zu", eh.e_phentsize,
				 sizeof(Elf64_Phdr));
	if (eh.e_phnum == 0 || eh.e_phnum > ELF_MAX_PHNUM)
		return error_set(err, errlen, -ENOEXEC,
				 "kernel: ELF has %u program headers (1 to %u expected)",
				 eh.e_phnum, ELF_MAX_PHNUM);

	/* First pass: check everything, so that nothing is loaded from a bad file. */
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		uint64_t off = eh.e_phoff + (uint64_t)i * sizeof(ph);

		if (range_overflows(eh.e_phoff, (uint64_t)(i + 1) * sizeof(ph)) ||
		    !in_file(off, sizeof(ph), size))
			return error_set(err, errlen, -ENOEXEC,
					 "kernel: truncated: program header %u ends past the file",
					 i);
		memcpy(&ph, k + off, sizeof(ph));
		if (ph.p_type == PT_LOAD) {
			r = elf_check_load(&ph, i, size, low_end, err, errlen);
			if (r < 0)
				return r;
			any_load = true;
			end = MAX(end, ph.p_paddr + ph.p_memsz);
		} else if (ph.p_type == PT_NOTE && !found) {
			if (range_overflows(ph.p_offset, ph.p_filesz) ||
			    !in_file(ph.p_offset, ph.p_filesz, size))
				return error_set(
					err, errlen, -ENOEXEC,
					"kernel: truncated: program header %u ends past the "
					"file",
					i);
			r = elf_find_pvh_note(k, &ph, i, &found, &entry, err, errlen);
			if (r < 0)
				return r;
		}
	}
	if (!any_load)
		return error_set(err, errlen, -ENOEXEC, "kernel: ELF has no loadable segment");
	if (!found)
		return error_set(err, errlen, -ENOEXEC,
				 "kernel: ELF has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");

	/* The entry must be code we load: anything else would run whatever RAM holds. */
	bool entry_ok = false;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, k + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_LOAD && entry >= ph.p_paddr && entry - ph.p_paddr < ph.p_memsz)
			entry_ok = true;
	}
	if (!entry_ok)
		return error_set(err, errlen, -ENOEXEC,
				 "kernel: PVH entry 0x%llx is outside the loaded segments",
				 (unsigned long long)entry);

	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, k + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		uint8_t *dst = guest_mem_translate(gm, ph.p_paddr, ph.p_memsz);
		if (!dst)
			return error_set(
				err, errlen, -EFBIG,
				"kernel: program header %u [0x%llx-0x%llx) is not guest RAM", i,
				(unsigned long long)ph.p_paddr,
				(unsigned long long)(ph.p_paddr + ph.p_memsz));
		memcpy(dst, k + ph.p_offset, ph.p_filesz);
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
	}

	ki->kind = X86_KERNEL_PVH;
	ki->entry = entry;
	ki->end = end;
	ki->cmdline_max = CONFIG_MAX_CMDLINE - 1;
	ki->initrd_max = UINT64_MAX;
	return 0;
}

static int bzimage_load(struct guest_mem *gm, const uint8_t *k, size_t size, uint64_t low_end,
			struct kernel_info *ki, char *err, size_t errlen)
{
	uint8_t *bp = ki->boot_params;
	char s1[32];

	if (!in_file(0, BP_INIT_SIZE + 4, size))
		return error_set(err, errlen, -ENOEXEC,
				 "kernel: truncated: bzImage setup header ends past the file");
	uint16_t version = get16(k + BP_VERSION);
	if (version < BZ_MIN_VERSION)
		return error_set(err, errlen, -ENOEXEC,
				 "kernel: bzImage boot protocol %u.%02u is too old (2.06 or later "
				 "needed)",
				 version >> 8, version & 0xff);

	/* The setup header ends at 0x202 + the jump's displacement byte. */
	uint64_t hdr_end = BP_HEADER + (uint64_t)k[BP_JUMP + 1];
	hdr_end = MIN(hdr_end, (uint64_t)BP_HDR_END_MAX);
	if (hdr_end < BP_INIT_SIZE + 4)
		hdr_end = BP_INIT_SIZE + 4; /* 2.12+ (checked below) always has these fields */
	if (!in_file(0, hdr_end, size))
		return error_set(err, errlen, -ENOEXEC,
				 "kernel: truncated: bzImage setup header ends past the file");

	unsigned setup_sects = k[BP_SETUP_SECTS] ? k[BP_SETUP_SECTS] : 4;
	uint64_t setup_size = (setup_sects + 1ULL) * 512;
	if (setup_size >= size || setup_size < hdr_end)
		return error_set(err, errlen, -ENOEXEC,
				 "kernel: truncated: bzImage setup (%u sectors) ends past the file",
				 setup_sects);

	uint16_t xloadflags = version >= 0x020c ? get16(k + BP_XLOADFLAGS) : 0;
	if (!(xloadflags & BZ_XLF_KERNEL_64))
		return error_set(
			err, errlen, -ENOEXEC,
			"kernel: bzImage has no 64-bit entry point (XLF_KERNEL_64 not set)");
	if (!(k[BP_LOADFLAGS] & BZ_LOADED_HIGH))
		return error_set(
			err, errlen, -ENOEXEC,
			"kernel: zImage (not loaded high) is not supported, use a bzImage");

	/* Our kernels are not relocatable: load where the kernel asks, if that is sane. */
	uint64_t load = get64(k + BP_PREF_ADDRESS);
	if (load < X86_HIGH_MEM_START)
		load = X86_HIGH_MEM_START;
	if (!IS_ALIGNED(load, 4 * KiB))
		return error_set(err, errlen, -ENOEXEC,
				 "kernel: bzImage preferred address 0x%llx is not page aligned",
				 (unsigned long long)load);
	uint64_t payload = size - setup_size;
	uint64_t need = MAX(payload, (uint64_t)get32(k + BP_INIT_SIZE));
	if (range_overflows(load, need) || load + need > low_end ||
	    !guest_mem_range_ok(gm, load, need))
		return error_set(
			err, errlen, -EFBIG,
			"kernel: bzImage needs %s of RAM at 0x%llx, beyond guest RAM (low RAM "
			"ends at 0x%llx)",
			format_size(s1, sizeof(s1), need), (unsigned long long)load,
			(unsigned long long)low_end);
	if (guest_mem_write(gm, load, k + setup_size, payload) < 0)
		return error_set(err, errlen, -EFBIG,
				 "kernel: cannot write the bzImage to guest RAM");

	memset(bp, 0, BP_SIZE);
	memcpy(bp + BP_SETUP_SECTS, k + BP_SETUP_SECTS, hdr_end - BP_SETUP_SECTS);

	ki->kind = X86_KERNEL_BZIMAGE;
	ki->entry = load + BZ_STARTUP_64_OFFSET;
	ki->end = load + need;
	ki->cmdline_max = MIN((uint64_t)get32(k + BP_CMDLINE_SIZE), CONFIG_MAX_CMDLINE - 1ULL);
	ki->initrd_max = get32(k + BP_INITRD_ADDR_MAX);
	return 0;
}

static int write_pvh_info(struct guest_mem *gm, uint64_t rsdp_gpa, uint64_t initrd_gpa,
			  uint64_t initrd_size, const struct x86_e820_entry *e820, unsigned n)
{
	struct hvm_start_info si = {
		.magic = XEN_HVM_START_MAGIC_VALUE,
		.version = 1,
		.cmdline_paddr = X86_CMDLINE_START,
		.rsdp_paddr = rsdp_gpa,
		.memmap_paddr = PVH_MEMMAP_GPA,
		.memmap_entries = n,
	};
	struct hvm_memmap_table_entry mm[X86_E820_MAX] = { 0 };
	int r;

	if (initrd_size) {
		struct hvm_modlist_entry mod = { .paddr = initrd_gpa, .size = initrd_size };
		si.nr_modules = 1;
		si.modlist_paddr = PVH_MODLIST_GPA;
		r = guest_mem_write(gm, PVH_MODLIST_GPA, &mod, sizeof(mod));
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < n; i++)
		mm[i] = (struct hvm_memmap_table_entry){ .addr = e820[i].addr,
							 .size = e820[i].size,
							 .type = e820[i].type };
	r = guest_mem_write(gm, PVH_MEMMAP_GPA, mm, n * sizeof(mm[0]));
	if (r < 0)
		return r;
	return guest_mem_write(gm, X86_PVH_INFO_START, &si, sizeof(si));
}

static int write_boot_params(struct guest_mem *gm, uint8_t *bp, uint64_t rsdp_gpa,
			     uint64_t initrd_gpa, uint64_t initrd_size,
			     const struct x86_e820_entry *e820, unsigned n)
{
	bp[BP_TYPE_OF_LOADER] = BZ_LOADER_UNDEFINED;
	bp[BP_LOADFLAGS] |= BZ_LOADED_HIGH | BZ_CAN_USE_HEAP;
	put16(bp + BP_HEAP_END_PTR, BZ_HEAP_END);
	put32(bp + BP_CMD_LINE_PTR, (uint32_t)X86_CMDLINE_START);
	put32(bp + BP_RAMDISK_IMAGE, (uint32_t)initrd_gpa); /* below 4 GiB: checked by caller */
	put32(bp + BP_RAMDISK_SIZE, (uint32_t)initrd_size);
	put64(bp + BP_ACPI_RSDP_ADDR, rsdp_gpa);
	bp[BP_E820_ENTRIES] = (uint8_t)n;
	for (unsigned i = 0; i < n && i < BP_E820_TABLE_MAX; i++)
		memcpy(bp + BP_E820_TABLE + i * BP_E820_ENTRY_SIZE, &e820[i], BP_E820_ENTRY_SIZE);
	return guest_mem_write(gm, X86_ZERO_PAGE_START, bp, BP_SIZE);
}

_Static_assert(sizeof(struct x86_e820_entry) == BP_E820_ENTRY_SIZE, "e820 entry layout");

/* Places the initramfs page-aligned at the top of RAM it may use, above the kernel. */
static int place_initrd(struct guest_mem *gm, const struct kernel_info *ki, uint64_t low_end,
			size_t initrd_size, uint64_t *ret_gpa, char *err, size_t errlen)
{
	char s1[32], s2[32];
	uint64_t top = MIN(low_end, X86_MEM_32BIT_HOLE_END);
	uint64_t bottom = ALIGN_UP(ki->end, 4 * KiB);

	if (ki->initrd_max != UINT64_MAX)
		top = MIN(top, ki->initrd_max + 1);
	top = ALIGN_DOWN(top, 4 * KiB);
	if (initrd_size > top || ALIGN_DOWN(top - initrd_size, 4 * KiB) < bottom)
		return error_set(
			err, errlen, -EFBIG,
			"initramfs: %s does not fit in %s of guest RAM (free between the kernel "
			"end 0x%llx and 0x%llx)",
			format_size(s1, sizeof(s1), initrd_size),
			format_size(s2, sizeof(s2), guest_mem_total(gm)),
			(unsigned long long)bottom, (unsigned long long)top);
	*ret_gpa = ALIGN_DOWN(top - initrd_size, 4 * KiB);
	return 0;
}

static unsigned e820_from_gm(const struct guest_mem *gm, struct x86_e820_entry ret[X86_E820_MAX])
{
	struct x86_ram_range ram[GUEST_MEM_MAX_REGIONS];
	unsigned n = MIN(gm->nr_regions, (unsigned)GUEST_MEM_MAX_REGIONS);

	for (unsigned i = 0; i < n; i++)
		ram[i] = (struct x86_ram_range){ .gpa = gm->regions[i].gpa,
						 .size = gm->regions[i].size };
	return x86_e820_build(ram, n, ret);
}

int x86_load_kernel(struct guest_mem *gm, const void *kernel, size_t kernel_size,
		    const void *initrd, size_t initrd_size, const char *cmdline, uint64_t rsdp_gpa,
		    struct x86_boot *ret, char *err, size_t errlen)
{
	const uint8_t *k = kernel;
	uint8_t boot_params[BP_SIZE];
	struct kernel_info ki = { .boot_params = boot_params };
	struct x86_e820_entry e820[X86_E820_MAX];
	uint64_t low_end, initrd_gpa = 0;
	size_t cmdline_len;
	unsigned n;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (!initrd)
		initrd_size = 0;
	if (low_ram_end(gm, &low_end) < 0 || !guest_mem_range_ok(gm, 0, X86_HIGH_MEM_START))
		return error_set(err, errlen, -EFBIG,
				 "kernel: guest RAM does not cover the first MiB");

	if (kernel && kernel_size >= SELFMAG && memcmp(k, ELFMAG, SELFMAG) == 0)
		r = elf_load(gm, k, kernel_size, low_end, &ki, err, errlen);
	else if (kernel && kernel_size >= BP_HEADER + 4 && memcmp(k + BP_HEADER, "HdrS", 4) == 0)
		r = bzimage_load(gm, k, kernel_size, low_end, &ki, err, errlen);
	else
		r = error_set(err, errlen, -ENOEXEC, "kernel: not an ELF vmlinux or bzImage");
	if (r < 0)
		return r;

	cmdline_len = cmdline ? strlen(cmdline) : 0;
	if (cmdline_len > ki.cmdline_max)
		return error_set(
			err, errlen, -E2BIG,
			"kernel: command line is %zu bytes, the kernel accepts at most %llu",
			cmdline_len, (unsigned long long)ki.cmdline_max);
	r = guest_mem_write(gm, X86_CMDLINE_START, cmdline ? cmdline : "", cmdline_len);
	if (r >= 0)
		r = guest_mem_write(gm, X86_CMDLINE_START + cmdline_len, "", 1);
	if (r < 0)
		return error_set(err, errlen, -EFBIG, "kernel: cannot write the command line");

	if (initrd_size) {
		r = place_initrd(gm, &ki, low_end, initrd_size, &initrd_gpa, err, errlen);
		if (r < 0)
			return r;
		if (guest_mem_write(gm, initrd_gpa, initrd, initrd_size) < 0)
			return error_set(err, errlen, -EFBIG,
					 "initramfs: cannot write it to guest RAM");
	}

	n = e820_from_gm(gm, e820);
	if (ki.kind == X86_KERNEL_PVH)
		r = write_pvh_info(gm, rsdp_gpa, initrd_gpa, initrd_size, e820, n);
	else
		r = write_boot_params(gm, boot_params, rsdp_gpa, initrd_gpa, initrd_size, e820, n);
	if (r < 0)
		return error_set(err, errlen, -EFBIG, "kernel: cannot write the boot information");

	*ret = (struct x86_boot){
		.kind = ki.kind,
		.entry = ki.entry,
		.boot_info = ki.kind == X86_KERNEL_PVH ? X86_PVH_INFO_START : X86_ZERO_PAGE_START,
		.kernel_end = ki.end,
	};
	return 0;
}
