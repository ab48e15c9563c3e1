/* SPDX-License-Identifier: Apache-2.0 */
/* The hypervisor's state in state.json (snapshot/state_hv.c): vCPU and VM state survive save →
 * load → save byte for byte, every damaged field is refused with the destination untouched,
 * and the mock backend's get/set state round-trip through it. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "hv/hv.h"
#include "hv/mock.h"
#include "snapshot/state_hv.h"
#include "util/util.h"

static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rnd_state = rnd_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return rnd_state ^ (rnd_state >> 29);
}

static void fill(void *p, size_t n)
{
	uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rnd();
}

static void fill_segment(struct hv_segment *s)
{
	*s = (struct hv_segment){ .base = rnd(),
				  .limit = (uint32_t)rnd(),
				  .selector = (uint16_t)rnd(),
				  .type = (uint8_t)rnd(),
				  .present = 1,
				  .dpl = 3,
				  .db = 1,
				  .s = 1,
				  .l = 1,
				  .g = 1,
				  .avl = 1,
				  .unusable = (uint8_t)rnd() };
}

/* A vCPU state with every field set to something other than zero (on the heap: ~24 KiB). */
static struct hv_vcpu_state *vcpu_state_sample(void)
{
	struct hv_vcpu_state *st = calloc(1, sizeof(*st));

	assert_non_null(st);
	fill(&st->regs, sizeof(st->regs));
	fill_segment(&st->sregs.cs);
	fill_segment(&st->sregs.ds);
	fill_segment(&st->sregs.es);
	fill_segment(&st->sregs.fs);
	fill_segment(&st->sregs.gs);
	fill_segment(&st->sregs.ss);
	fill_segment(&st->sregs.tr);
	fill_segment(&st->sregs.ldt);
	st->sregs.gdt = (struct hv_dtable){ .base = rnd(), .limit = (uint16_t)rnd() };
	st->sregs.idt = (struct hv_dtable){ .base = rnd(), .limit = (uint16_t)rnd() };
	st->sregs.cr0 = rnd();
	st->sregs.cr2 = rnd();
	st->sregs.cr3 = rnd();
	st->sregs.cr4 = rnd();
	st->sregs.cr8 = rnd();
	st->sregs.efer = rnd();
	st->sregs.apic_base = rnd();
	fill(st->interrupt_bitmap, sizeof(st->interrupt_bitmap));
	st->xsave_size = 4096;
	fill(st->xsave, st->xsave_size);
	st->nr_xcrs = 1;
	st->xcrs[0] = (struct hv_msr){ .index = 0, .value = 7 };
	st->nr_msrs = 41;
	for (unsigned i = 0; i < st->nr_msrs; i++)
		st->msrs[i] = (struct hv_msr){ .index = (uint32_t)rnd(), .value = rnd() };
	st->msrs[0].index = UINT32_MAX;
	st->msrs[1].value = UINT64_MAX;
	fill(st->lapic, sizeof(st->lapic));
	st->mp_state = HV_MP_STATE_HALTED;
	st->events = (struct hv_vcpu_events){
		.exception_injected = 1,
		.exception_nr = 14,
		.exception_has_error_code = 1,
		.exception_pending = 0,
		.exception_error_code = 0xdeadbeef,
		.exception_has_payload = 1,
		.exception_payload = 0xffff888000001000ULL,
		.interrupt_injected = 1,
		.interrupt_nr = 0xec,
		.interrupt_soft = 0,
		.interrupt_shadow = 2,
		.nmi_injected = 0,
		.nmi_pending = 1,
		.nmi_masked = 1,
		.sipi_vector = 0x9f,
		.smi_smm = 0,
		.smi_pending = 0,
		.smi_inside_nmi = 1,
		.smi_latched_init = 0,
		.triple_fault_pending = 0,
		.flags = 0xd,
	};
	for (unsigned i = 0; i < 4; i++)
		st->db[i] = rnd();
	st->dr6 = 0xffff0ff0;
	st->dr7 = 0x400;
	return st;
}

static void vm_state_sample(struct hv_vm_state *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; i < 2; i++)
		fill(&st->pic[i], sizeof(st->pic[i])); /* all uint8_t */
	st->ioapic = (struct hv_ioapic_state){
		.base_address = 0xfec00000, .ioregsel = 0x10, .id = 0, .irr = 0x20
	};
	for (unsigned i = 0; i < HV_IOAPIC_PINS; i++)
		st->ioapic.redirtbl[i] = rnd();
	for (unsigned i = 0; i < 3; i++)
		st->pit[i] = (struct hv_pit_channel){ .count = 0x10000,
						      .latched_count = 0x1234,
						      .count_latched = 1,
						      .status_latched = 1,
						      .status = 0x36,
						      .read_state = 3,
						      .write_state = 3,
						      .write_latch = 0x9c,
						      .rw_mode = 3,
						      .mode = 2,
						      .bcd = 0,
						      .gate = 1,
						      .count_load_time = rnd() };
	st->pit_flags = 1;
	st->clock = 0x123456789abcULL;
}

static char *dump(const json_t *j)
{
	char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	assert_non_null(s);
	return s;
}

static char *vcpu_json(const struct hv_vcpu_state *st)
{
	json_t *o = json_object();
	assert_int_equal(snapshot_save_vcpu(o, st), 0);
	char *s = dump(o);
	json_decref(o);
	return s;
}

static char *vm_json(const struct hv_vm_state *st)
{
	json_t *o = json_object();
	assert_int_equal(snapshot_save_vm(o, st), 0);
	char *s = dump(o);
	json_decref(o);
	return s;
}

static void test_vcpu_round_trip(void **state)
{
	struct hv_vcpu_state *st = vcpu_state_sample();
	struct hv_vcpu_state *got = calloc(1, sizeof(*got));
	char err[256] = "";
	char *s = vcpu_json(st);
	json_t *o = json_loads(s, 0, NULL);

	assert_non_null(got);
	assert_non_null(o);
	assert_int_equal(snapshot_load_vcpu(o, got, err, sizeof(err)), 0);
	assert_memory_equal(got, st, sizeof(*st));
	char *s2 = vcpu_json(got);
	assert_string_equal(s, s2);
	/* Registers by name, MSRs as {index, value}, the XSAVE area as a blob of its size. */
	assert_non_null(strstr(s, "\"rip\":\"0x"));
	assert_non_null(strstr(s, "\"index\":4294967295"));
	assert_non_null(strstr(s, "\"value\":\"0xffffffffffffffff\""));
	assert_int_equal(json_string_length(json_object_get(o, "xsave")), 2 * 4096);
	assert_int_equal(json_array_size(json_object_get(o, "msrs")), 41);
	free(s);
	free(s2);
	json_decref(o);
	free(st);
	free(got);
}

static void test_vm_round_trip(void **state)
{
	struct hv_vm_state st, got;
	char err[256] = "";

	vm_state_sample(&st);
	char *s = vm_json(&st);
	json_t *o = json_loads(s, 0, NULL);
	assert_non_null(o);
	memset(&got, 0, sizeof(got));
	assert_int_equal(snapshot_load_vm(o, &got, err, sizeof(err)), 0);
	assert_memory_equal(&got, &st, sizeof(st));
	char *s2 = vm_json(&got);
	assert_string_equal(s, s2);
	assert_non_null(strstr(s, "\"pic_master\":{"));
	assert_non_null(strstr(s, "\"clock\":\"0x123456789abc\""));
	free(s);
	free(s2);
	json_decref(o);
}

typedef int (*load_fn)(const json_t *obj, void *ret, char *err, size_t errlen);

static int load_vcpu(const json_t *obj, void *ret, char *err, size_t errlen)
{
	return snapshot_load_vcpu(obj, ret, err, errlen);
}

static int load_vm(const json_t *obj, void *ret, char *err, size_t errlen)
{
	return snapshot_load_vm(obj, ret, err, errlen);
}

static unsigned refusals; /* expect_refused() calls, to show the damage walks really walk */

/* Expects @root to be refused by @load with a message, and the destination untouched. */
static void expect_refused(const json_t *root, load_fn load, size_t size, const char *what)
{
	uint8_t *dst = malloc(size), *before = malloc(size);
	char err[256] = "";

	assert_non_null(dst);
	assert_non_null(before);
	refusals++;
	memset(dst, 0xa5, size);
	memcpy(before, dst, size);
	if (load(root, dst, err, sizeof(err)) != -EINVAL)
		fail_msg("%s: accepted", what);
	if (!err[0])
		fail_msg("%s: refused without a message", what);
	if (memcmp(dst, before, size))
		fail_msg("%s: the destination changed", what);
	free(dst);
	free(before);
}

/*
 * Damages every value under @node in turn (replaced by null, then by a value of another type)
 * and every key (removed), each time expecting @root to be refused.
 */
static void damage_each(json_t *root, json_t *node, load_fn load, size_t size, const char *path)
{
	char where[256];

	if (json_is_object(node)) {
		/* The keys first: removing and adding keys back reorders the object. */
		json_t *keys = json_array();
		const char *key;
		json_t *v;
		json_object_foreach(node, key, v) json_array_append_new(keys, json_string(key));
		for (size_t i = 0; i < json_array_size(keys); i++) {
			key = json_string_value(json_array_get(keys, i));
			v = json_object_get(node, key);
			json_t *keep = json_incref(v);
			snprintf(where, sizeof(where), "%s.%s", path, key);
			damage_each(root, v, load, size, where);
			json_object_set(node, key, json_null());
			expect_refused(root, load, size, where);
			json_object_set_new(node, key,
					    json_is_string(keep) ? json_integer(1)
								 : json_string("1"));
			expect_refused(root, load, size, where);
			json_object_del(node, key);
			expect_refused(root, load, size, where);
			json_object_set_new(node, key, keep);
		}
		json_decref(keys);
	} else if (json_is_array(node)) {
		for (size_t i = 0; i < json_array_size(node); i++) {
			json_t *keep = json_incref(json_array_get(node, i));
			snprintf(where, sizeof(where), "%s[%zu]", path, i);
			damage_each(root, keep, load, size, where);
			json_array_set(node, i, json_null());
			expect_refused(root, load, size, where);
			json_array_set_new(node, i, keep);
		}
	}
}

static void test_vcpu_every_field_refused(void **state)
{
	struct hv_vcpu_state *st = vcpu_state_sample();
	char *s = vcpu_json(st);
	json_t *o = json_loads(s, 0, NULL);

	refusals = 0;
	damage_each(o, o, load_vcpu, sizeof(*st), "vcpu");
	/* 806 with this sample: each key three ways, each array entry once */
	print_message("%u damaged vCPU states refused\n", refusals);
	assert_true(refusals > 800);
	/* undamaged after all that */
	char *s2 = dump(o);
	assert_string_equal(s, s2);
	expect_refused(NULL, load_vcpu, sizeof(*st), "null");
	json_t *a = json_array();
	expect_refused(a, load_vcpu, sizeof(*st), "an array");
	json_decref(a);
	free(s);
	free(s2);
	free(st);
	json_decref(o);
}

static void test_vm_every_field_refused(void **state)
{
	struct hv_vm_state st;

	vm_state_sample(&st);
	char *s = vm_json(&st);
	json_t *o = json_loads(s, 0, NULL);
	refusals = 0;
	damage_each(o, o, load_vm, sizeof(st), "vm");
	print_message("%u damaged VM states refused\n", refusals);
	assert_true(refusals > 200);
	char *s2 = dump(o);
	assert_string_equal(s, s2);
	expect_refused(NULL, load_vm, sizeof(st), "null");
	free(s);
	free(s2);
	json_decref(o);
}

/* Loads the sample's JSON with @key set to @bad (JSON text) in the object at @path ("" for the
 * top, else a key of the top). */
static void vcpu_bad(const char *path, const char *key, json_t *bad)
{
	struct hv_vcpu_state *st = vcpu_state_sample();
	char *s = vcpu_json(st);
	json_t *o = json_loads(s, 0, NULL);
	json_t *where = *path ? json_object_get(o, path) : o;
	char what[128];

	assert_non_null(where);
	json_object_set_new(where, key, bad);
	snprintf(what, sizeof(what), "%s.%s", path, key);
	expect_refused(o, load_vcpu, sizeof(*st), what);
	json_decref(o);
	free(s);
	free(st);
}

static json_t *msr_array(unsigned n)
{
	json_t *a = json_array();
	for (unsigned i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:i, s:s}", "index", i, "value", "0x1"));
	return a;
}

static json_t *hex_of(size_t bytes)
{
	char *h = malloc(2 * bytes + 1);
	assert_non_null(h);
	memset(h, 'a', 2 * bytes);
	h[2 * bytes] = 0;
	json_t *j = json_string(h);
	free(h);
	return j;
}

static void test_vcpu_bounds(void **state)
{
	char err[256];
	struct hv_vcpu_state *got = calloc(1, sizeof(*got));

	vcpu_bad("", "msrs", msr_array(HV_MAX_MSRS + 1));
	vcpu_bad("", "xcrs", msr_array(HV_MAX_XCRS + 1));
	vcpu_bad("", "xsave", hex_of(SNAPSHOT_XSAVE_MIN - 1));
	vcpu_bad("", "xsave", hex_of(HV_XSAVE_MAX + 1));
	vcpu_bad("", "xsave", json_string("abc"));
	vcpu_bad("", "lapic", hex_of(HV_LAPIC_SIZE - 1));
	vcpu_bad("", "lapic", hex_of(HV_LAPIC_SIZE + 1));
	vcpu_bad("", "mp_state", json_integer(HV_MP_STATE_SIPI_RECEIVED + 1));
	vcpu_bad("", "interrupt_bitmap", json_pack("[s,s,s]", "0x0", "0x0", "0x0"));
	vcpu_bad("", "db", json_pack("[s,s,s,s,s]", "0x0", "0x0", "0x0", "0x0", "0x0"));
	vcpu_bad("", "dr7", json_string("0x10000000000000000"));
	vcpu_bad("regs", "rip", json_string("0xRIP"));
	vcpu_bad("events", "exception_nr", json_integer(256));
	vcpu_bad("events", "flags", json_integer(-1));
	vcpu_bad("sregs", "cs", json_string("segment"));
	vcpu_bad("sregs", "efer", json_integer(0));
	json_t *bad_msr = msr_array(1);
	json_object_set_new(json_array_get(bad_msr, 0), "index", json_integer(1LL << 32));
	vcpu_bad("", "msrs", bad_msr);

	/* Limits that are fine: every MSR slot, the largest XSAVE area, the smallest. */
	struct hv_vcpu_state *st = vcpu_state_sample();
	st->nr_msrs = HV_MAX_MSRS;
	st->nr_xcrs = HV_MAX_XCRS;
	st->xsave_size = HV_XSAVE_MAX;
	char *s = vcpu_json(st);
	json_t *o = json_loads(s, 0, NULL);
	assert_int_equal(snapshot_load_vcpu(o, got, err, sizeof(err)), 0);
	assert_memory_equal(got, st, sizeof(*st));
	json_decref(o);
	free(s);
	st->xsave_size = SNAPSHOT_XSAVE_MIN;
	memset(st->xsave + SNAPSHOT_XSAVE_MIN, 0, HV_XSAVE_MAX - SNAPSHOT_XSAVE_MIN);
	s = vcpu_json(st);
	o = json_loads(s, 0, NULL);
	assert_int_equal(snapshot_load_vcpu(o, got, err, sizeof(err)), 0);
	assert_int_equal(got->xsave_size, SNAPSHOT_XSAVE_MIN);
	json_decref(o);
	free(s);
	free(st);
	free(got);
}

static void test_vm_bounds(void **state)
{
	struct hv_vm_state st;
	char what[64];
	json_t *bad[] = {
		json_pack("[{},{}]"),
		json_pack("[{},{},{},{}]"),
		json_string("pit"),
	};

	vm_state_sample(&st);
	char *s = vm_json(&st);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		json_t *o = json_loads(s, 0, NULL);
		json_object_set_new(o, "pit", bad[i]);
		snprintf(what, sizeof(what), "pit #%zu", i);
		expect_refused(o, load_vm, sizeof(st), what);
		json_decref(o);
	}
	json_t *o = json_loads(s, 0, NULL);
	json_object_set_new(json_object_get(o, "ioapic"), "redirtbl", json_pack("[s]", "0x0"));
	expect_refused(o, load_vm, sizeof(st), "redirtbl");
	json_decref(o);
	o = json_loads(s, 0, NULL);
	json_object_set_new(json_object_get(o, "pic_slave"), "elcr", json_integer(256));
	expect_refused(o, load_vm, sizeof(st), "elcr");
	json_decref(o);
	o = json_loads(s, 0, NULL);
	json_object_set_new(json_array_get(json_object_get(o, "pit"), 1), "latched_count",
			    json_integer(65536));
	expect_refused(o, load_vm, sizeof(st), "latched_count");
	json_decref(o);
	free(s);
}

/* The mock keeps what set_state stored; through state.json and back it is the same. */
static void test_mock_round_trip(void **state)
{
	struct hv *hv;
	struct hv_vcpu *vcpu;
	struct hv_vcpu_state *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct hv_vm_state vm, vm2;
	char err[256] = "";
	uint64_t v;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(hv_create(&hv), 0);
	assert_int_equal(hv_vcpu_create(hv, 1, &vcpu), 0);
	/* A new vCPU: the reset state, an AP waiting for INIT/SIPI. */
	assert_int_equal(hv_vcpu_get_state(vcpu, a), 0);
	assert_int_equal(a->mp_state, HV_MP_STATE_UNINITIALIZED);
	assert_true(a->regs.rip == 0xfff0);
	assert_true(a->xsave_size > 0);

	/* A state from elsewhere, through JSON, into the vCPU and out again. */
	struct hv_vcpu_state *st = vcpu_state_sample();
	char *s = vcpu_json(st);
	json_t *o = json_loads(s, 0, NULL);
	assert_int_equal(snapshot_load_vcpu(o, a, err, sizeof(err)), 0);
	assert_int_equal(hv_vcpu_set_state(vcpu, a), 0);
	assert_int_equal(hv_vcpu_get_state(vcpu, b), 0);
	assert_memory_equal(a, b, sizeof(*a));
	char *s2 = vcpu_json(b);
	assert_string_equal(s, s2);
	/* The registers and MSRs are those the rest of the mock shows. */
	assert_true(hv_mock_vcpu_regs(vcpu)->rip == st->regs.rip);
	assert_true(hv_mock_vcpu_msr(vcpu, st->msrs[5].index, &v));
	assert_true(v == st->msrs[5].value);

	/* Refused as KVM would: the vCPU keeps its state. */
	*b = *a;
	b->xsave_size = 100;
	assert_int_equal(hv_vcpu_set_state(vcpu, b), -EINVAL);
	b->xsave_size = a->xsave_size;
	b->nr_msrs = HV_MAX_MSRS + 1;
	assert_int_equal(hv_vcpu_set_state(vcpu, b), -EINVAL);
	b->nr_msrs = a->nr_msrs;
	b->mp_state = 5;
	assert_int_equal(hv_vcpu_set_state(vcpu, b), -EINVAL);
	assert_int_equal(hv_vcpu_get_state(vcpu, b), 0);
	assert_memory_equal(a, b, sizeof(*a));

	/* The VM: KVM's reset platform first, then what was set. */
	assert_int_equal(hv_vm_get_state(hv, &vm), 0);
	assert_true(vm.ioapic.base_address == 0xfec00000);
	assert_int_equal(vm.pic[0].elcr_mask, 0xf8);
	vm_state_sample(&vm);
	assert_int_equal(hv_vm_set_state(hv, &vm), 0);
	assert_int_equal(hv_vm_get_state(hv, &vm2), 0);
	assert_memory_equal(&vm, &vm2, sizeof(vm));
	vm2.ioapic.base_address = 0;
	assert_int_equal(hv_vm_set_state(hv, &vm2), -EINVAL);

	json_decref(o);
	free(s);
	free(s2);
	free(st);
	free(a);
	free(b);
	hv_vcpu_destroy(vcpu);
	hv_destroy(hv);
}

static void test_mock_ram_file(void **state)
{
	char path[] = "/tmp/cubicle-test-state-hv-XXXXXX";
	int fd = mkstemp(path);
	struct hv *hv;
	void *host;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 3 * 4096), 0);
	assert_int_equal(pwrite(fd, "snap", 4, 4096), 4);
	/* The snapshot reader opens memory-ranges read-only: enough for a private mapping. */
	close(fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(hv_create(&hv), 0);
	/* Past the end of the file, misaligned, shared: refused. */
	assert_int_equal(hv_ram_add_file(hv, 0, 3 * 4096, fd, 4096, 0, &host), -EINVAL);
	assert_int_equal(hv_ram_add_file(hv, 0, 4096, fd, 100, 0, &host), -EINVAL);
	assert_int_equal(hv_ram_add_file(hv, 0, 4096, fd, 0, HV_RAM_SHARED, &host), -EINVAL);
	assert_int_equal(hv_ram_add_file(hv, 0, 4096, -1, 0, 0, &host), -EINVAL);
	/* Copy-on-write: the guest's writes never reach the file. */
	assert_int_equal(hv_ram_add_file(hv, 0, 2 * 4096, fd, 4096, HV_RAM_PREFAULT, &host), 0);
	assert_memory_equal(host, "snap", 4);
	memcpy(host, "SNAP", 4);
	char buf[4];
	assert_int_equal(pread(fd, buf, 4, 4096), 4);
	assert_memory_equal(buf, "snap", 4);
	/* Overlaps are refused as for hv_ram_add(). */
	assert_int_equal(hv_ram_add_file(hv, 4096, 4096, fd, 0, 0, &host), -EINVAL);
	hv_destroy(hv);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vcpu_round_trip),
		cmocka_unit_test(test_vm_round_trip),
		cmocka_unit_test(test_vcpu_every_field_refused),
		cmocka_unit_test(test_vm_every_field_refused),
		cmocka_unit_test(test_vcpu_bounds),
		cmocka_unit_test(test_vm_bounds),
		cmocka_unit_test(test_mock_round_trip),
		cmocka_unit_test(test_mock_ram_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
