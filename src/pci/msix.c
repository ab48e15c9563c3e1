/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MSI-X (PCI Local Bus 3.0 §6.8.2): the capability (message control with the table size,
 * function mask and enable bits; table and PBA offset/BIR), the table (16 bytes per vector:
 * message address low/high, data, vector control) and the pending bit array, in the device's
 * BARs.
 *
 * Delivery. Without the routed path (irq->route_alloc NULL: no irqfd in the hypervisor) every
 * message goes through irq->msi (KVM_SIGNAL_MSI underneath). With it, a vector gets a GSI route
 * to its (address, data) and an eventfd bound to that GSI (irqfd) the first time it is open
 * (MSI-X enabled, function and vector unmasked); msix_notify() then only writes the eventfd.
 * The route follows the guest's rewrites of the entry: at once while the vector is open, at the
 * next open otherwise (a closed vector is never signalled, only marked pending). Disabling
 * MSI-X unbinds the eventfds; the function's removal also frees the GSIs. A vector whose route
 * cannot be set up (routing table full) falls back to irq->msi.
 *
 * The table and PBA accept 4-byte accesses on 4-byte boundaries and 8-byte ones on 8-byte
 * boundaries; other accesses read all ones and write nothing. The PBA is read-only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bus/bus.h"
#include "pci/internal.h"
#include "util/state.h"
#include "util/util.h"

/* Capability layout. */
#define MSIX_CAP_CONTROL 2
#define MSIX_CAP_TABLE	 4
#define MSIX_CAP_PBA	 8
#define MSIX_CAP_LEN	 12
#define MSIX_BIR_MASK	 0x7u

/* Table entry dwords. */
#define MSIX_ADDR_LO 0
#define MSIX_ADDR_HI 1
#define MSIX_DATA    2
#define MSIX_CTRL    3

static uint16_t msix_control(const struct pci_function *fn)
{
	const uint8_t *c = fn->cfg + fn->msix->cap_offset + MSIX_CAP_CONTROL;
	return (uint16_t)(c[0] | c[1] << 8);
}

static bool irq_routed(const struct irq_sink *irq)
{
	return irq && irq->route_alloc && irq->route_set && irq->route_free && irq->irqfd;
}

/* Whether @v would be delivered now. Lock held. */
static bool vector_open(const struct pci_function *fn, unsigned v)
{
	uint16_t ctl = msix_control(fn);

	return (ctl & PCI_MSIX_CTRL_ENABLE) && !(ctl & PCI_MSIX_CTRL_MASKALL) &&
	       !(fn->msix->table[4 * v + MSIX_CTRL] & PCI_MSIX_ENTRY_MASKED);
}

static uint64_t vector_addr(const struct msix *m, unsigned v)
{
	return (uint64_t)m->table[4 * v + MSIX_ADDR_HI] << 32 | m->table[4 * v + MSIX_ADDR_LO];
}

static void route_unbind(struct pci_function *fn, struct msix_route *rt)
{
	const struct irq_sink *irq = fn->root->irq;

	if (rt->bound)
		(void)irq->irqfd(irq->opaque, rt->efd, rt->gsi, false);
	rt->bound = false;
}

/*
 * Gives open vector @v a route to its current entry and a bound eventfd (see the top of the
 * file). On failure the vector is left unbound and irq->msi delivers it. Lock held.
 */
static void route_sync(struct pci_function *fn, unsigned v)
{
	struct msix *m = fn->msix;
	const struct irq_sink *irq = fn->root->irq;
	struct msix_route *rt;
	uint64_t addr;
	uint32_t data;
	int r;

	if (!m->routes || !vector_open(fn, v))
		return;
	rt = &m->routes[v];
	addr = vector_addr(m, v);
	data = m->table[4 * v + MSIX_DATA];
	if (rt->bound && rt->addr == addr && rt->data == data)
		return;
	if (rt->efd < 0) {
		rt->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (rt->efd < 0) {
			r = -errno;
			goto fail;
		}
	}
	if (!rt->has_gsi) {
		r = irq->route_alloc(irq->opaque, &rt->gsi);
		if (r < 0)
			goto fail;
		rt->has_gsi = true;
	}
	r = irq->route_set(irq->opaque, rt->gsi, addr, data);
	if (r < 0)
		goto fail;
	rt->addr = addr;
	rt->data = data;
	if (!rt->bound) {
		r = irq->irqfd(irq->opaque, rt->efd, rt->gsi, true);
		if (r < 0)
			goto fail;
		rt->bound = true;
	}
	return;
fail:
	/* An eventfd still bound would raise the old route. */
	route_unbind(fn, rt);
	log_ratelimited(&fn->root->rl, LOG_WARN,
			"pci: %s MSI-X vector %u: no interrupt route (%s); using the slow path",
			fn->name, v, strerror(-r));
}

static int vector_send(struct pci_function *fn, unsigned v)
{
	const struct msix *m = fn->msix;
	const struct irq_sink *irq = fn->root->irq;
	uint64_t one = 1;

	if (m->routes && m->routes[v].bound) {
		/* A full counter means the interrupt is already on its way: EAGAIN is fine. */
		if (write(m->routes[v].efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			return -errno;
		return 0;
	}
	if (!irq || !irq->msi)
		return -ENODEV;
	return irq->msi(irq->opaque, vector_addr(m, v), m->table[4 * v + MSIX_DATA]);
}

static bool pending(const struct msix *m, unsigned v)
{
	return m->pba[v / 64] & (1ULL << (v % 64));
}

static void set_pending(struct msix *m, unsigned v, bool on)
{
	if (on)
		m->pba[v / 64] |= 1ULL << (v % 64);
	else
		m->pba[v / 64] &= ~(1ULL << (v % 64));
}

/* Delivers the pending vectors in [first, end) that are now open. Lock held. */
static void flush_pending(struct pci_function *fn, unsigned first, unsigned end)
{
	struct msix *m = fn->msix;

	for (unsigned v = first; v < end; v++) {
		route_sync(fn, v);
		if (pending(m, v) && vector_open(fn, v)) {
			set_pending(m, v, false);
			vector_send(fn, v);
		}
	}
}

/* The guest wrote the capability: enable or function mask may have opened vectors. */
static void cap_write(void *opaque, unsigned offset, const uint8_t *data, unsigned len)
{
	struct pci_function *fn = opaque;
	struct msix *m = fn->msix;

	if (offset > MSIX_CAP_CONTROL + 1 || offset + len <= MSIX_CAP_CONTROL)
		return;
	/* Disabled: the driver let go of its vectors (unload, reset); bind again on next use. */
	if (!(msix_control(fn) & PCI_MSIX_CTRL_ENABLE) && m->routes) {
		for (unsigned v = 0; v < m->nr; v++)
			route_unbind(fn, &m->routes[v]);
	}
	flush_pending(fn, 0, m->nr);
}

static const struct pci_cap_ops msix_cap_ops = { .write = cap_write };

static void table_write(struct pci_function *fn, unsigned dword, uint32_t val)
{
	struct msix *m = fn->msix;
	unsigned v = dword / 4, field = dword % 4;

	switch (field) {
	case MSIX_ADDR_LO:
		m->table[dword] = val & ~3u; /* dword aligned: bits 1:0 are read-only 0 */
		break;
	case MSIX_CTRL:
		m->table[dword] = val & PCI_MSIX_ENTRY_MASKED;
		if (!(val & PCI_MSIX_ENTRY_MASKED))
			flush_pending(fn, v, v + 1);
		return;
	default:
		m->table[dword] = val;
	}
	/* Rewritten while open: the route follows now (no-op when closed or unchanged). */
	route_sync(fn, v);
}

bool msix_bar_access(struct pci_function *fn, unsigned bar, uint64_t offset, bool is_write,
		     uint8_t *data, unsigned len)
{
	struct msix *m = fn->msix;
	bool table = bar == m->table_bar && offset >= m->table_off &&
		     offset - m->table_off < m->table_len;
	bool pba = bar == m->pba_bar && offset >= m->pba_off && offset - m->pba_off < m->pba_len;

	if (!table && !pba)
		return false;
	uint64_t off = table ? offset - m->table_off : offset - m->pba_off;
	uint64_t limit = table ? m->table_len : m->pba_len;
	if ((len != 4 && len != 8) || !IS_ALIGNED(off, len) || len > limit - off) {
		if (!is_write)
			memset(data, 0xff, len);
		return true;
	}
	pthread_mutex_lock(&fn->root->lock);
	if (table) {
		unsigned d = (unsigned)(off / 4);
		for (unsigned i = 0; i < len / 4; i++) {
			if (is_write)
				table_write(fn, d + i, pci_rd32(data + 4 * i));
			else
				pci_wr32(data + 4 * i, m->table[d + i]);
		}
	} else if (!is_write) {
		for (unsigned i = 0; i < len; i++)
			data[i] = (uint8_t)(m->pba[(off + i) / 8] >> (8 * ((off + i) % 8)));
	}
	pthread_mutex_unlock(&fn->root->lock);
	return true;
}

/* The byte range [off, off+len) of memory BAR @bar, or false. */
static bool in_bar(const struct pci_function *fn, unsigned bar, uint64_t off, uint64_t len)
{
	return bar < PCI_NUM_BARS && fn->bars[bar].kind != PCI_BAR_UNUSED &&
	       off <= fn->bars[bar].size && len <= fn->bars[bar].size - off;
}

int msix_init(struct pci_function *fn, unsigned nr_vectors, unsigned table_bar, uint32_t table_off,
	      unsigned pba_bar, uint32_t pba_off)
{
	uint64_t table_len = (uint64_t)nr_vectors * PCI_MSIX_ENTRY_SIZE;
	uint64_t pba_len = ALIGN_UP((uint64_t)nr_vectors, 64u) / 8;
	uint8_t body[MSIX_CAP_LEN] = { 0 }, wmask[MSIX_CAP_LEN] = { 0 };
	struct msix *m;
	int r;

	if (fn->msix)
		return -EEXIST;
	if (nr_vectors == 0 || nr_vectors > PCI_MSIX_MAX_VECTORS || !IS_ALIGNED(table_off, 8) ||
	    !IS_ALIGNED(pba_off, 8) || !in_bar(fn, table_bar, table_off, table_len) ||
	    !in_bar(fn, pba_bar, pba_off, pba_len))
		return -EINVAL;
	if (table_bar == pba_bar && pba_off < table_off + table_len &&
	    table_off < pba_off + pba_len)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->table = calloc(nr_vectors, PCI_MSIX_ENTRY_SIZE);
	m->pba = calloc(pba_len / 8, sizeof(uint64_t));
	if (irq_routed(fn->root->irq))
		m->routes = calloc(nr_vectors, sizeof(*m->routes));
	if (!m->table || !m->pba || (irq_routed(fn->root->irq) && !m->routes)) {
		free(m->table);
		free(m->pba);
		free(m->routes);
		free(m);
		return -ENOMEM;
	}
	for (unsigned v = 0; m->routes && v < nr_vectors; v++)
		m->routes[v].efd = -1;
	m->nr = nr_vectors;
	m->table_bar = table_bar;
	m->pba_bar = pba_bar;
	m->table_off = table_off;
	m->table_len = table_len;
	m->pba_off = pba_off;
	m->pba_len = pba_len;
	for (unsigned v = 0; v < nr_vectors; v++)
		m->table[4 * v + MSIX_CTRL] = PCI_MSIX_ENTRY_MASKED;

	pci_wr16(body + MSIX_CAP_CONTROL, (uint16_t)(nr_vectors - 1));
	pci_wr32(body + MSIX_CAP_TABLE, table_off | table_bar);
	pci_wr32(body + MSIX_CAP_PBA, pba_off | pba_bar);
	wmask[MSIX_CAP_CONTROL + 1] = (PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL) >> 8;

	/* The capability's hook may run as soon as it is linked: publish the state first. */
	fn->msix = m;
	r = pci_cap_add(fn, PCI_CAP_ID_MSIX, body, wmask, sizeof(body), &msix_cap_ops, fn,
			&m->cap_offset);
	if (r < 0) {
		fn->msix = NULL;
		free(m->table);
		free(m->pba);
		free(m->routes);
		free(m);
	}
	return r;
}

void msix_free(struct pci_function *fn)
{
	struct msix *m = fn->msix;
	const struct irq_sink *irq = fn->root->irq;

	if (!m)
		return;
	for (unsigned v = 0; m->routes && v < m->nr; v++) {
		struct msix_route *rt = &m->routes[v];

		route_unbind(fn, rt);
		if (rt->has_gsi)
			irq->route_free(irq->opaque, rt->gsi);
		if (rt->efd >= 0)
			close(rt->efd);
	}
	free(m->routes);
	free(fn->msix->table);
	free(fn->msix->pba);
	free(fn->msix);
	fn->msix = NULL;
}

int msix_notify(struct pci_function *fn, unsigned vector)
{
	struct msix *m = fn->msix;
	int r = 0;

	if (!m)
		return -EINVAL;
	pthread_mutex_lock(&fn->root->lock);
	if (vector >= m->nr) {
		log_ratelimited(&fn->root->rl, LOG_WARN,
				"pci: %s signalled MSI-X vector %u of %u: ignored", fn->name,
				vector, m->nr);
		r = -EINVAL;
	} else if (msix_control(fn) & PCI_MSIX_CTRL_ENABLE) {
		if (vector_open(fn, vector))
			r = vector_send(fn, vector);
		else
			set_pending(m, vector, true);
	}
	pthread_mutex_unlock(&fn->root->lock);
	return r;
}

bool msix_enabled(struct pci_function *fn)
{
	bool on = false;

	pthread_mutex_lock(&fn->root->lock);
	if (fn->msix)
		on = msix_control(fn) & PCI_MSIX_CTRL_ENABLE;
	pthread_mutex_unlock(&fn->root->lock);
	return on;
}

int msix_save(struct pci_function *fn, json_t *obj)
{
	struct msix *m = fn->msix;
	json_t *o = state_add_object(obj, "msix");
	json_t *vectors = o ? state_add_array(o, "vectors") : NULL;

	if (!vectors)
		return -ENOMEM;
	for (unsigned v = 0; v < m->nr; v++) {
		json_t *e = state_append_object(vectors);

		if (!e || state_set_u64(e, "addr", vector_addr(m, v)) < 0 ||
		    state_set_u32(e, "data", m->table[4 * v + MSIX_DATA]) < 0 ||
		    state_set_bool(e, "masked",
				   m->table[4 * v + MSIX_CTRL] & PCI_MSIX_ENTRY_MASKED) < 0 ||
		    state_set_bool(e, "pending", pending(m, v)) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* One saved vector into @table / @pba (scratch copies). */
static int vector_load(const json_t *e, unsigned v, uint32_t *table, uint64_t *pba, char *err,
		       size_t errlen)
{
	uint64_t addr;
	uint32_t data;
	bool masked, pend;
	int r;

	r = state_get_u64(e, "addr", &addr, err, errlen);
	if (r == 0)
		r = state_get_u32(e, "data", UINT32_MAX, &data, err, errlen);
	if (r == 0)
		r = state_get_bool(e, "masked", &masked, err, errlen);
	if (r == 0)
		r = state_get_bool(e, "pending", &pend, err, errlen);
	if (r < 0)
		return r;
	/* As table_write() stores them. */
	table[4 * v + MSIX_ADDR_LO] = (uint32_t)addr & ~3u;
	table[4 * v + MSIX_ADDR_HI] = (uint32_t)(addr >> 32);
	table[4 * v + MSIX_DATA] = data;
	table[4 * v + MSIX_CTRL] = masked ? PCI_MSIX_ENTRY_MASKED : 0;
	if (pend)
		pba[v / 64] |= 1ULL << (v % 64);
	return 0;
}

int msix_load(struct pci_function *fn, const json_t *obj, char *err, size_t errlen)
{
	struct msix *m = fn->msix;
	const json_t *o, *vectors;
	_cleanup_free_ uint32_t *table = calloc(m->nr, PCI_MSIX_ENTRY_SIZE);
	_cleanup_free_ uint64_t *pba = calloc(m->pba_len / 8, sizeof(uint64_t));
	char why[160];
	int r;

	if (!table || !pba) {
		snprintf(err, errlen, "MSI-X: out of memory");
		return -ENOMEM;
	}
	r = state_get_object(obj, "msix", &o, err, errlen);
	if (r == 0)
		r = state_get_array(o, "vectors", m->nr, &vectors, err, errlen);
	if (r < 0)
		return r;
	if (json_array_size(vectors) != m->nr) {
		snprintf(err, errlen, "field 'vectors': %zu MSI-X vectors, the device has %u",
			 json_array_size(vectors), m->nr);
		return -EINVAL;
	}
	for (unsigned v = 0; v < m->nr; v++) {
		r = vector_load(json_array_get(vectors, v), v, table, pba, why, sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "MSI-X vector %u: %s", v, why);
			return r;
		}
	}
	memcpy(m->table, table, (size_t)m->nr * PCI_MSIX_ENTRY_SIZE);
	memcpy(m->pba, pba, m->pba_len);
	return 0;
}
