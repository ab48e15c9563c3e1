/* A minimal virtio 1.x PCI driver (virtio.h). */
#include "virtio.h"

/* virtio-pci capability (cap id 9) and the common configuration structure's offsets. */
#define VIRTIO_PCI_CAP_COMMON 1
#define VIRTIO_PCI_CAP_NOTIFY 2
#define VIRTIO_PCI_CAP_ISR    3
#define VIRTIO_PCI_CAP_DEVICE 4
#define CAP_CFG_TYPE	      3
#define CAP_BAR		      4
#define CAP_OFFSET	      8
#define CAP_LENGTH	      12
#define CAP_NOTIFY_MULT	      16

#define MSI_ADDR	 0xfee00000u
#define RESET_TIMEOUT_MS 100

static bool cap_addr(struct virtio_dev *v, uint8_t cap, uint64_t *ret, uint32_t *ret_len)
{
	uint8_t bar = pci_cfg_read8(&v->pci, cap + CAP_BAR);
	uint32_t off = pci_cfg_read32(&v->pci, cap + CAP_OFFSET);
	uint32_t len = pci_cfg_read32(&v->pci, cap + CAP_LENGTH);
	if (bar >= PCI_BARS || !v->pci.bar[bar] || off > v->pci.bar_size[bar] ||
	    len > v->pci.bar_size[bar] - off)
		return false;
	*ret = v->pci.bar[bar] + off;
	*ret_len = len;
	return true;
}

bool virtio_find(struct virtio_dev *v, uint16_t modern_id, uint16_t transitional_id, char *why)
{
	const uint16_t ids[] = { modern_id, transitional_id };
	memset(v, 0, sizeof(*v));
	if (!pci_find(VIRTIO_VENDOR, ids, ARRAY_SIZE(ids), &v->pci)) {
		snprintf(why, WHY_MAX, "no device %04x:%04x on bus 0", VIRTIO_VENDOR, modern_id);
		return false;
	}
	if (!pci_setup_bars(&v->pci, why))
		return false;
	for (uint8_t cap = pci_find_cap(&v->pci, PCI_CAP_ID_VENDOR, 0); cap;
	     cap = pci_find_cap(&v->pci, PCI_CAP_ID_VENDOR, cap)) {
		uint64_t a;
		uint32_t len;
		uint8_t type = pci_cfg_read8(&v->pci, cap + CAP_CFG_TYPE);
		if (!cap_addr(v, cap, &a, &len))
			continue;
		if (type == VIRTIO_PCI_CAP_COMMON && !v->common) {
			v->common = a;
			v->common_len = len;
		} else if (type == VIRTIO_PCI_CAP_NOTIFY && !v->notify) {
			v->notify = a;
			v->notify_len = len;
			v->notify_mult = pci_cfg_read32(&v->pci, cap + CAP_NOTIFY_MULT);
		} else if (type == VIRTIO_PCI_CAP_ISR && !v->isr) {
			v->isr = a;
			v->isr_len = len;
		} else if (type == VIRTIO_PCI_CAP_DEVICE && !v->devcfg) {
			v->devcfg = a;
			v->devcfg_len = len;
		}
	}
	if (!v->common || !v->notify || !v->isr) {
		snprintf(why, WHY_MAX,
			 "00:%02x.%x: virtio capabilities missing (common %d notify %d isr %d)",
			 v->pci.dev, v->pci.fn, !!v->common, !!v->notify, !!v->isr);
		return false;
	}
	uint8_t msix = pci_find_cap(&v->pci, PCI_CAP_ID_MSIX, 0);
	if (!msix) {
		snprintf(why, WHY_MAX, "00:%02x.%x: no MSI-X capability", v->pci.dev, v->pci.fn);
		return false;
	}
	uint16_t ctrl = pci_cfg_read16(&v->pci, msix + MSIX_CTRL);
	uint32_t table = pci_cfg_read32(&v->pci, msix + MSIX_TABLE);
	uint8_t bir = table & 7;
	v->msix_entries = (ctrl & 0x7ff) + 1;
	if (bir >= PCI_BARS || !v->pci.bar[bir] || v->msix_entries < 2 ||
	    (table & ~7u) + (uint64_t)v->msix_entries * MSIX_ENTRY_SIZE > v->pci.bar_size[bir]) {
		snprintf(why, WHY_MAX, "MSI-X table (BAR%u, 0x%x, %u entries) unusable", bir,
			 table & ~7u, v->msix_entries);
		return false;
	}
	v->msix_table = v->pci.bar[bir] + (table & ~7u);
	static const uint8_t vectors[] = { VIRTIO_VEC_CONFIG, VIRTIO_VEC_QUEUE };
	for (unsigned i = 0; i < ARRAY_SIZE(vectors); i++) {
		uint64_t e = v->msix_table + i * MSIX_ENTRY_SIZE;
		mmio_write32(e, MSI_ADDR); /* destination: APIC id 0, physical */
		mmio_write32(e + 4, 0);
		mmio_write32(e + 8, vectors[i]); /* fixed delivery, edge */
		mmio_write32(e + 12, 0);	 /* unmasked */
	}
	pci_cfg_write16(&v->pci, msix + MSIX_CTRL, (ctrl & ~MSIX_CTRL_MASKALL) | MSIX_CTRL_ENABLE);
	return true;
}

uint8_t virtio_status(const struct virtio_dev *v)
{
	return mmio_read8(v->common + COMMON_STATUS);
}

void virtio_status_set(struct virtio_dev *v, uint8_t bits)
{
	mmio_write8(v->common + COMMON_STATUS, virtio_status(v) | bits);
}

bool virtio_reset(struct virtio_dev *v, char *why)
{
	mmio_write8(v->common + COMMON_STATUS, 0);
	uint64_t deadline = tsc_deadline(RESET_TIMEOUT_MS);
	while (virtio_status(v) != 0) {
		if (tsc_expired(deadline)) {
			snprintf(why, WHY_MAX, "reset: status still 0x%x after %u ms",
				 virtio_status(v), RESET_TIMEOUT_MS);
			return false;
		}
		cpu_relax();
	}
	return true;
}

bool virtio_start(struct virtio_dev *v, uint64_t features, char *why)
{
	if (!virtio_reset(v, why))
		return false;
	virtio_status_set(v, VIRTIO_STATUS_ACK);
	virtio_status_set(v, VIRTIO_STATUS_DRIVER);
	mmio_write32(v->common + COMMON_DFSELECT, 1);
	uint64_t offered = (uint64_t)mmio_read32(v->common + COMMON_DF) << 32;
	mmio_write32(v->common + COMMON_DFSELECT, 0);
	offered |= mmio_read32(v->common + COMMON_DF);
	if (!(offered & VIRTIO_F_VERSION_1)) {
		snprintf(why, WHY_MAX, "device does not offer VERSION_1 (features 0x%lx)", offered);
		return false;
	}
	features &= offered;
	mmio_write32(v->common + COMMON_GFSELECT, 0);
	mmio_write32(v->common + COMMON_GF, (uint32_t)features);
	mmio_write32(v->common + COMMON_GFSELECT, 1);
	mmio_write32(v->common + COMMON_GF, (uint32_t)(features >> 32));
	virtio_status_set(v, VIRTIO_STATUS_FEATURES_OK);
	if (!(virtio_status(v) & VIRTIO_STATUS_FEATURES_OK)) {
		snprintf(why, WHY_MAX, "FEATURES_OK not accepted (status 0x%x)", virtio_status(v));
		return false;
	}
	mmio_write16(v->common + COMMON_MSIX, 0);
	if (mmio_read16(v->common + COMMON_MSIX) != 0) {
		snprintf(why, WHY_MAX, "config MSI-X vector not accepted");
		return false;
	}
	return true;
}

bool virtio_queue_configure(struct virtio_dev *v, uint16_t index, uint16_t size, struct virtq *q,
			    char *why)
{
	memset(q, 0, sizeof(*q));
	mmio_write16(v->common + COMMON_Q_SELECT, index);
	uint16_t max = mmio_read16(v->common + COMMON_Q_SIZE);
	if (!max) {
		snprintf(why, WHY_MAX, "queue %u does not exist", index);
		return false;
	}
	if (size > max)
		size = max;
	if (size > VIRTQ_MAX_SIZE)
		size = VIRTQ_MAX_SIZE;
	while (size & (size - 1)) /* a power of 2, as split rings need */
		size &= size - 1;
	q->index = index;
	q->size = size;
	q->desc = alloc_pages(sizeof(struct virtq_desc) * size, 4096);
	q->avail = alloc_pages(6 + 2u * size, 4096);
	q->used = alloc_pages(6 + sizeof(struct virtq_used_elem) * size, 4096);
	if (!q->desc || !q->avail || !q->used) {
		snprintf(why, WHY_MAX, "out of guest memory for queue %u", index);
		return false;
	}
	mmio_write16(v->common + COMMON_Q_SIZE, size);
	mmio_write64(v->common + COMMON_Q_DESC, (uint64_t)q->desc);
	mmio_write64(v->common + COMMON_Q_DRIVER, (uint64_t)q->avail);
	mmio_write64(v->common + COMMON_Q_DEVICE, (uint64_t)q->used);
	mmio_write16(v->common + COMMON_Q_MSIX, 1);
	if (mmio_read16(v->common + COMMON_Q_MSIX) != 1) {
		snprintf(why, WHY_MAX, "queue %u: MSI-X vector not accepted", index);
		return false;
	}
	uint16_t noff = mmio_read16(v->common + COMMON_Q_NOFF);
	q->notify_addr = v->notify + (uint64_t)noff * v->notify_mult;
	return true;
}

bool virtio_queue_setup(struct virtio_dev *v, uint16_t index, uint16_t size, struct virtq *q,
			char *why)
{
	if (!virtio_queue_configure(v, index, size, q, why))
		return false;
	mmio_write16(v->common + COMMON_Q_ENABLE, 1);
	return true;
}

void virtio_driver_ok(struct virtio_dev *v)
{
	virtio_status_set(v, VIRTIO_STATUS_DRIVER_OK);
}

void virtq_publish(struct virtq *q, uint16_t head)
{
	q->avail->ring[q->avail_idx & (q->size - 1)] = head;
	barrier(); /* the ring entry before the index (x86 keeps stores in order) */
	q->avail->idx = ++q->avail_idx;
}

void virtq_notify(struct virtq *q)
{
	mb(); /* the avail index is visible before the device looks */
	mmio_write16(q->notify_addr, q->index);
}

void virtq_notify_if_wanted(struct virtq *q)
{
	mb(); /* the avail index before our look at the flags (store→load) */
	if (!(q->used->flags & VIRTQ_USED_F_NO_NOTIFY))
		mmio_write16(q->notify_addr, q->index);
}

bool virtq_get_used(struct virtq *q, struct virtq_used_elem *ret)
{
	if (q->used->idx == q->last_used)
		return false;
	barrier();
	ret->id = q->used->ring[q->last_used & (q->size - 1)].id;
	ret->len = q->used->ring[q->last_used & (q->size - 1)].len;
	q->last_used++;
	return true;
}
