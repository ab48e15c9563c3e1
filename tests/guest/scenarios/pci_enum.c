/*
 * pci-enum: lists bus 0 through 0xCF8/0xCFC and through ECAM (`ecam=`, default 0xe0000000),
 * compares the two when both see devices, and passes if the host bridge 00:00.0 is found.
 * (QEMU microvm's PCIe host has ECAM only; cubicle, like Cloud Hypervisor, has both.)
 */
#include "../pci.h"
#include "scenarios.h"

#define MAX_FUNCS 64

struct func {
	uint8_t dev, fn;
	uint32_t id, class_rev;
};

static size_t scan(enum pci_access a, struct func *out)
{
	size_t n = 0;
	for (uint8_t dev = 0; dev < PCI_DEVICES; dev++) {
		for (uint8_t fn = 0; fn < PCI_FUNCTIONS && n < MAX_FUNCS; fn++) {
			uint32_t id = pci_read32(a, 0, dev, fn, PCI_VENDOR_ID);
			if ((uint16_t)id == 0xffff || (uint16_t)id == 0) {
				if (fn == 0)
					break;
				continue;
			}
			out[n++] = (struct func){ dev, fn, id,
						  pci_read32(a, 0, dev, fn, PCI_CLASS_REVISION) };
			if (fn == 0 && !(pci_read32(a, 0, dev, 0, 0x0c) & (0x80u << 16)))
				break;
		}
	}
	return n;
}

static void print_func(const char *how, enum pci_access a, const struct func *f)
{
	printf("pci %02x:%02x.%x %04x:%04x class %06x (%s) bars", 0, f->dev, f->fn, f->id & 0xffff,
	       f->id >> 16, f->class_rev >> 8, how);
	for (int i = 0; i < PCI_BARS; i++)
		printf(" %08x", pci_read32(a, 0, f->dev, f->fn, PCI_BAR0 + 4 * i));
	printf("\n");
}

bool scenario_pci_enum(uint64_t arg, char *why)
{
	static struct func cf8[MAX_FUNCS], ecam[MAX_FUNCS];
	size_t ncf8 = scan(PCI_CF8, cf8);
	size_t necam = scan(PCI_ECAM, ecam);
	printf("pci-enum: %u functions through 0xcf8, %u through ECAM at 0x%lx\n", (unsigned)ncf8,
	       (unsigned)necam, pci_ecam_base());
	for (size_t i = 0; i < ncf8; i++)
		print_func("cf8", PCI_CF8, &cf8[i]);
	for (size_t i = 0; i < necam; i++)
		print_func("ecam", PCI_ECAM, &ecam[i]);
	if (ncf8 && necam) {
		if (ncf8 != necam) {
			snprintf(why, WHY_MAX, "0xcf8 sees %u functions, ECAM %u", (unsigned)ncf8,
				 (unsigned)necam);
			return false;
		}
		for (size_t i = 0; i < ncf8; i++) {
			if (memcmp(&cf8[i], &ecam[i], sizeof(cf8[i])) != 0) {
				snprintf(why, WHY_MAX, "00:%02x.%x differs between 0xcf8 and ECAM",
					 cf8[i].dev, cf8[i].fn);
				return false;
			}
		}
	}
	const struct func *f = ncf8 ? cf8 : ecam;
	size_t n = ncf8 ? ncf8 : necam;
	if (!n || f[0].dev != 0 || f[0].fn != 0) {
		snprintf(why, WHY_MAX, "no host bridge at 00:00.0 (0xcf8 and ECAM at 0x%lx)",
			 pci_ecam_base());
		return false;
	}
	snprintf(why, WHY_MAX, "%u functions (0xcf8: %u, ECAM: %u), host bridge %04x:%04x",
		 (unsigned)n, (unsigned)ncf8, (unsigned)necam, f[0].id & 0xffff, f[0].id >> 16);
	return true;
}
