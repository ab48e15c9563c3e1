/* PCI configuration access (CF8 and ECAM) and BAR set-up for the device test guest. */
#include "pci.h"

#define CF8_ADDR     0xcf8
#define CF8_DATA     0xcfc
#define CF8_ENABLE   0x80000000u
#define CAP_WALK_MAX 48 /* a capability list longer than this is a loop */

static uint64_t mmio32_next;

uint64_t pci_ecam_base(void)
{
	return cmdline_u64("ecam", PCI_ECAM_DEFAULT);
}

static uint64_t ecam_addr(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	return pci_ecam_base() + ((uint64_t)bus << 20) + ((uint64_t)dev << 15) +
	       ((uint64_t)fn << 12) + (off & 0xfff);
}

static uint32_t cf8_addr(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	return CF8_ENABLE | ((uint32_t)bus << 16) | ((uint32_t)dev << 11) | ((uint32_t)fn << 8) |
	       (off & 0xfc);
}

uint32_t pci_read32(enum pci_access a, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	if (a == PCI_ECAM)
		return mmio_read32(ecam_addr(bus, dev, fn, off & ~3));
	outl(CF8_ADDR, cf8_addr(bus, dev, fn, off));
	return inl(CF8_DATA);
}

void pci_write32(enum pci_access a, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint32_t v)
{
	if (a == PCI_ECAM) {
		mmio_write32(ecam_addr(bus, dev, fn, off & ~3), v);
		return;
	}
	outl(CF8_ADDR, cf8_addr(bus, dev, fn, off));
	outl(CF8_DATA, v);
}

uint32_t pci_cfg_read32(const struct pci_dev *d, uint16_t off)
{
	return pci_read32(d->access, d->bus, d->dev, d->fn, off);
}

uint16_t pci_cfg_read16(const struct pci_dev *d, uint16_t off)
{
	return (uint16_t)(pci_cfg_read32(d, off) >> ((off & 2) * 8));
}

uint8_t pci_cfg_read8(const struct pci_dev *d, uint16_t off)
{
	return (uint8_t)(pci_cfg_read32(d, off) >> ((off & 3) * 8));
}

void pci_cfg_write32(const struct pci_dev *d, uint16_t off, uint32_t v)
{
	pci_write32(d->access, d->bus, d->dev, d->fn, off, v);
}

/* A 16-bit access of its own: a read-modify-write of the dword could clear RW1C bits. */
void pci_cfg_write16(const struct pci_dev *d, uint16_t off, uint16_t v)
{
	if (d->access == PCI_ECAM) {
		mmio_write16(ecam_addr(d->bus, d->dev, d->fn, off), v);
		return;
	}
	outl(CF8_ADDR, cf8_addr(d->bus, d->dev, d->fn, off));
	outw(CF8_DATA + (off & 2), v);
}

static bool vendor_present(uint16_t v)
{
	return v != 0xffff && v != 0;
}

bool pci_find(uint16_t vendor, const uint16_t *devices, size_t n, struct pci_dev *ret)
{
	static const enum pci_access order[] = { PCI_ECAM, PCI_CF8 };
	for (size_t a = 0; a < ARRAY_SIZE(order); a++) {
		for (uint8_t dev = 0; dev < PCI_DEVICES; dev++) {
			for (uint8_t fn = 0; fn < PCI_FUNCTIONS; fn++) {
				uint32_t id = pci_read32(order[a], 0, dev, fn, PCI_VENDOR_ID);
				if (!vendor_present((uint16_t)id)) {
					if (fn == 0)
						break;
					continue;
				}
				for (size_t i = 0; i < n; i++) {
					if ((uint16_t)id != vendor || (id >> 16) != devices[i])
						continue;
					*ret = (struct pci_dev){ .access = order[a],
								 .dev = dev,
								 .fn = fn,
								 .vendor = (uint16_t)id,
								 .device = (uint16_t)(id >> 16) };
					ret->class_rev = pci_cfg_read32(ret, PCI_CLASS_REVISION);
					return true;
				}
				uint32_t hdr =
					pci_read32(order[a], 0, dev, 0, PCI_HEADER_TYPE & ~3);
				if (fn == 0 && !(hdr & (0x80u << 16)))
					break; /* single-function device */
			}
		}
	}
	return false;
}

uint8_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint8_t after)
{
	if (!(pci_cfg_read16(d, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return 0;
	uint8_t p = after ? pci_cfg_read8(d, after + 1) : pci_cfg_read8(d, PCI_CAP_PTR);
	for (int i = 0; i < CAP_WALK_MAX && p >= 0x40; i++) {
		p &= 0xfc;
		if (pci_cfg_read8(d, p) == id)
			return p;
		p = pci_cfg_read8(d, p + 1);
	}
	return 0;
}

bool pci_setup_bars(struct pci_dev *d, char *why)
{
	uint16_t cmd = pci_cfg_read16(d, PCI_COMMAND);
	pci_cfg_write16(d, PCI_COMMAND, cmd & ~(PCI_CMD_MEMORY | PCI_CMD_IO));
	if (!mmio32_next)
		mmio32_next = cmdline_u64("mmio32", PCI_MMIO32_DEFAULT);
	for (int i = 0; i < PCI_BARS; i++) {
		uint16_t off = PCI_BAR0 + 4 * i;
		uint32_t lo = pci_cfg_read32(d, off);
		d->bar[i] = d->bar_size[i] = 0;
		if (lo & 1)
			continue; /* I/O BAR */
		bool is64 = ((lo >> 1) & 3) == 2;
		uint64_t addr = lo & ~0xfull, mask;
		pci_cfg_write32(d, off, ~0u);
		mask = pci_cfg_read32(d, off) & ~0xfull;
		pci_cfg_write32(d, off, lo);
		if (is64 && i < PCI_BARS - 1) {
			uint32_t hi = pci_cfg_read32(d, off + 4);
			pci_cfg_write32(d, off + 4, ~0u);
			mask |= (uint64_t)pci_cfg_read32(d, off + 4) << 32;
			pci_cfg_write32(d, off + 4, hi);
			addr |= (uint64_t)hi << 32;
		} else if (mask) {
			mask |= 0xffffffff00000000ull;
		}
		uint64_t size = (uint32_t)mask || (is64 && mask) ? ~mask + 1 : 0;
		if (size) {
			if (!addr) {
				addr = ALIGN_UP(mmio32_next, size);
				if (addr + size > PCI_MMIO32_END) {
					snprintf(why, WHY_MAX, "no room for BAR%d (0x%lx bytes)", i,
						 size);
					return false;
				}
				mmio32_next = addr + size;
				pci_cfg_write32(d, off, (uint32_t)addr);
				if (is64)
					pci_cfg_write32(d, off + 4, 0);
			}
			if (!map_identity(addr, size)) {
				snprintf(why, WHY_MAX, "cannot map BAR%d at 0x%lx", i, addr);
				return false;
			}
			d->bar[i] = addr;
			d->bar_size[i] = size;
		}
		if (is64)
			i++;
	}
	pci_cfg_write16(d, PCI_COMMAND,
			(cmd & ~PCI_CMD_IO) | PCI_CMD_MEMORY | PCI_CMD_MASTER |
				PCI_CMD_INTX_DISABLE);
	return true;
}
