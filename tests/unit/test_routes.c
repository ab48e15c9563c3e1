/* SPDX-License-Identifier: Apache-2.0 */
/* The GSI routing table (src/hv/routes.c), through the mock backend's hv_msi_route*(). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>

#include "hv/hv.h"
#include "hv/mock.h"
#include "hv/routes.h"

/* The route of @gsi of @kind in @r[0..n), or NULL. */
static const struct hv_route *find(const struct hv_route *r, unsigned n, uint32_t gsi,
				   enum hv_route_kind kind)
{
	for (unsigned i = 0; i < n; i++) {
		if (r[i].gsi == gsi && r[i].kind == kind)
			return &r[i];
	}
	return NULL;
}

static void assert_legacy_routes(const struct hv_route *r, unsigned n)
{
	for (uint32_t gsi = 0; gsi < HV_IOAPIC_PINS; gsi++) {
		const struct hv_route *e = find(r, n, gsi, HV_ROUTE_IOAPIC);
		assert_non_null(e);
		assert_int_equal(e->pin, gsi);
	}
	for (uint32_t gsi = 0; gsi < HV_PIC_PINS; gsi++) {
		enum hv_route_kind k = gsi < 8 ? HV_ROUTE_PIC_MASTER : HV_ROUTE_PIC_SLAVE;
		const struct hv_route *e = find(r, n, gsi, k);
		if (gsi == 2) {
			assert_null(e); /* the cascade */
			continue;
		}
		assert_non_null(e);
		assert_int_equal(e->pin, gsi % 8);
	}
}

static void test_default_table(void **state)
{
	struct hv_route *r = calloc(HV_ROUTES_MAX, sizeof(*r));
	struct hv *hv;
	unsigned n;

	(void)state;
	assert_int_equal(hv_create(&hv), 0);
	n = hv_mock_routes(hv, r);
	assert_int_equal(n, HV_IOAPIC_PINS + HV_PIC_PINS - 1);
	assert_legacy_routes(r, n);
	hv_destroy(hv);
	free(r);
}

static void test_msi_routes_keep_legacy(void **state)
{
	struct hv_route *r = calloc(HV_ROUTES_MAX, sizeof(*r));
	uint32_t a, b, data;
	uint64_t addr;
	struct hv *hv;
	unsigned n;

	(void)state;
	assert_int_equal(hv_create(&hv), 0);
	assert_int_equal(hv_msi_route_alloc(hv, &a), 0);
	assert_int_equal(hv_msi_route_alloc(hv, &b), 0);
	assert_int_equal(a, HV_IOAPIC_PINS);
	assert_int_equal(b, HV_IOAPIC_PINS + 1);
	/* reserved but not installed: not in the table */
	assert_false(hv_mock_msi_route(hv, a, NULL, NULL));
	assert_int_equal(hv_msi_route(hv, b, 0xfee01000, 0x4041), 0);
	assert_true(hv_mock_msi_route(hv, b, &addr, &data));
	assert_int_equal(addr, 0xfee01000);
	assert_int_equal(data, 0x4041);
	n = hv_mock_routes(hv, r);
	assert_int_equal(n, HV_IOAPIC_PINS + HV_PIC_PINS - 1 + 1);
	assert_legacy_routes(r, n);
	assert_non_null(find(r, n, b, HV_ROUTE_MSI));

	/* a legacy GSI or one never reserved cannot take an MSI route */
	assert_int_equal(hv_msi_route(hv, 5, 0xfee00000, 0x30), -EINVAL);
	assert_int_equal(hv_msi_route(hv, b + 1, 0xfee00000, 0x30), -EINVAL);

	hv_msi_route_free(hv, b);
	assert_false(hv_mock_msi_route(hv, b, NULL, NULL));
	assert_int_equal(hv_mock_routes(hv, r), HV_IOAPIC_PINS + HV_PIC_PINS - 1);
	/* the freed GSI is handed out again */
	assert_int_equal(hv_msi_route_alloc(hv, &a), 0);
	assert_int_equal(a, HV_IOAPIC_PINS + 1);
	hv_destroy(hv);
	free(r);
}

static void test_table_full(void **state)
{
	struct hv *hv;
	uint32_t gsi;

	(void)state;
	assert_int_equal(hv_create(&hv), 0);
	for (unsigned i = 0; i < HV_MAX_MSI_ROUTES; i++)
		assert_int_equal(hv_msi_route_alloc(hv, &gsi), 0);
	assert_int_equal(gsi, HV_IOAPIC_PINS + HV_MAX_MSI_ROUTES - 1);
	assert_int_equal(hv_msi_route_alloc(hv, &gsi), -ENOSPC);
	hv_destroy(hv);
}

static void test_irqfd_ioeventfd_bindings(void **state)
{
	unsigned len;
	uint32_t gsi;
	struct hv *hv;
	int fd;

	(void)state;
	assert_int_equal(hv_create(&hv), 0);
	assert_int_equal(hv_irqfd(hv, 7, 30, true), 0);
	assert_int_equal(hv_irqfd(hv, 7, 30, true), -EBUSY);
	assert_true(hv_mock_irqfd(hv, 7, &gsi));
	assert_int_equal(gsi, 30);
	assert_int_equal(hv_irqfd(hv, 7, 31, false), -ENOENT);
	assert_int_equal(hv_irqfd(hv, 7, 30, false), 0);
	assert_int_equal(hv_mock_irqfd_count(hv), 0);

	assert_int_equal(hv_ioeventfd(hv, 9, 0xc0002000, 3, true), -EINVAL);
	assert_int_equal(hv_ioeventfd(hv, 9, 0xc0002000, 2, true), 0);
	assert_int_equal(hv_ioeventfd(hv, 9, 0xc0002000, 2, true), -EEXIST);
	assert_true(hv_mock_ioeventfd(hv, 0xc0002000, &fd, &len));
	assert_int_equal(fd, 9);
	assert_int_equal(len, 2);
	assert_int_equal(hv_ioeventfd(hv, 9, 0xc0002000, 2, false), 0);
	assert_int_equal(hv_mock_ioeventfd_count(hv), 0);
	hv_destroy(hv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_table),
		cmocka_unit_test(test_msi_routes_keep_legacy),
		cmocka_unit_test(test_table_full),
		cmocka_unit_test(test_irqfd_ioeventfd_bindings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
