/*
 * The device test guest's main (CPL3): reads the command line from hvm_start_info and runs the
 * scenarios it names, in order. Words: a scenario name, optionally followed by a number (its
 * argument), or an option `key=value` (ecam=, mmio32=, tsc_khz=) read by whoever needs it.
 * Every scenario prints `PASS name ...` or `FAIL name: why`; then `DONE passed=N failed=M`.
 */
#include "guest.h"
#include "scenarios/scenarios.h"

#define HVM_START_MAGIC 0x336ec578
#define CMDLINE_MAX	4096
#define WORD_MAX	64
#define E820_RAM	1

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

extern uint64_t start_info_paddr;
void guest_main(void);

unsigned passed_count, failed_count;
const char *current_scenario;

static char cmdline_buf[CMDLINE_MAX + 1];
static uint64_t ram_top;

const char *cmdline(void)
{
	return cmdline_buf;
}

uint64_t ram_end(void)
{
	return ram_top;
}

static const struct scenario scenarios[] = {
	{ "smoke", false, 0, scenario_smoke },
	{ "pci-enum", false, 0, scenario_pci_enum },
	{ "virtio-rng", true, 100, scenario_virtio_rng },
	{ "virtio-blk", false, 0, scenario_virtio_blk },
	{ "blk-bench", true, 10000, scenario_blk_bench },
	{ "virtio-net", true, 100, scenario_virtio_net },
	{ "virtio-net-tx", true, 100000, scenario_virtio_net_tx },
	{ "virtio-net-rx", true, 100000, scenario_virtio_net_rx },
	{ "virtio-vsock", true, 100, scenario_virtio_vsock },
	{ "virtio-balloon", true, 0, scenario_virtio_balloon },
	{ "virtio-pmem", false, 0, scenario_virtio_pmem },
	{ "snapshot-ticker", true, 100, scenario_snapshot_ticker },
	{ "sys-ctrl", false, 0, scenario_sys_ctrl },
	{ "hostile-loop", false, 0, scenario_hostile_loop },
	{ "hostile-oob", false, 0, scenario_hostile_oob },
	{ "hostile-overflow", false, 0, scenario_hostile_overflow },
	{ "hostile-avail-jump", false, 0, scenario_hostile_avail_jump },
	{ "hostile-nested-indirect", false, 0, scenario_hostile_nested_indirect },
	{ "hostile-ro-write", false, 0, scenario_hostile_ro_write },
	{ "hostile-notify-early", false, 0, scenario_hostile_notify_early },
	{ "hostile-features", false, 0, scenario_hostile_features },
	{ "hostile-msix", false, 0, scenario_hostile_msix },
	{ "hostile-config", false, 0, scenario_hostile_config },
	{ "hostile-queue-size", false, 0, scenario_hostile_queue_size },
};

uint64_t parse_u64(const char *s, const char **ret_end)
{
	uint64_t v = 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		for (s += 2;; s++) {
			char c = *s;
			int d = c >= '0' && c <= '9'   ? c - '0'
				: c >= 'a' && c <= 'f' ? c - 'a' + 10
				: c >= 'A' && c <= 'F' ? c - 'A' + 10
						       : -1;
			if (d < 0)
				break;
			v = v * 16 + (uint64_t)d;
		}
	} else {
		for (; *s >= '0' && *s <= '9'; s++)
			v = v * 10 + (uint64_t)(*s - '0');
	}
	if (ret_end)
		*ret_end = s;
	return v;
}

/* Copies the next space-separated word of *p into @word; false at the end. */
static bool next_word(const char **p, char word[WORD_MAX])
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t' || *s == '\n')
		s++;
	if (!*s)
		return false;
	size_t n = 0;
	while (*s && *s != ' ' && *s != '\t' && *s != '\n') {
		if (n + 1 < WORD_MAX)
			word[n++] = *s;
		s++;
	}
	word[n] = '\0';
	*p = s;
	return true;
}

static bool is_number(const char *w)
{
	const char *end;
	if (!(*w >= '0' && *w <= '9'))
		return false;
	parse_u64(w, &end);
	return *end == '\0';
}

uint64_t cmdline_u64(const char *key, uint64_t def)
{
	const char *p = cmdline_buf;
	char word[WORD_MAX];
	size_t klen = strlen(key);
	while (next_word(&p, word))
		if (memcmp(word, key, klen) == 0 && word[klen] == '=')
			return parse_u64(word + klen + 1, NULL);
	return def;
}

bool cmdline_str(const char *key, char *buf, size_t len)
{
	const char *p = cmdline_buf;
	char word[WORD_MAX];
	size_t klen = strlen(key);
	while (next_word(&p, word)) {
		if (memcmp(word, key, klen) == 0 && word[klen] == '=') {
			size_t n = strlen(word + klen + 1);
			if (n >= len)
				n = len - 1;
			memcpy(buf, word + klen + 1, n);
			buf[n] = '\0';
			return true;
		}
	}
	return false;
}

static void read_start_info(void)
{
	const struct hvm_start_info *si = (const void *)start_info_paddr;
	if (!si || si->magic != HVM_START_MAGIC) {
		printf("testguest: bad hvm_start_info at 0x%lx\n", start_info_paddr);
		return;
	}
	if (si->cmdline_paddr) {
		const char *c = (const char *)si->cmdline_paddr;
		size_t n = 0;
		while (n < CMDLINE_MAX && c[n])
			n++;
		memcpy(cmdline_buf, c, n);
	}
	if (si->version >= 1 && si->memmap_paddr) {
		const struct hvm_memmap_entry *m = (const void *)si->memmap_paddr;
		for (uint32_t i = 0; i < si->memmap_entries && i < 128; i++)
			if (m[i].type == E820_RAM && m[i].addr + m[i].size > ram_top)
				ram_top = m[i].addr + m[i].size;
	}
}

static void run(const struct scenario *s, uint64_t arg)
{
	char why[WHY_MAX] = "";
	current_scenario = s->name;
	if (s->run(arg, why)) {
		passed_count++;
		printf("PASS %s%s%s\n", s->name, why[0] ? " " : "", why);
	} else {
		failed_count++;
		printf("FAIL %s: %s\n", s->name, why[0] ? why : "failed");
	}
	current_scenario = NULL;
}

void guest_main(void)
{
	read_start_info();
	tsc_init();
	printf("testguest: cmdline \"%s\", tsc %lu kHz\n", cmdline_buf, tsc_khz());

	const char *p = cmdline_buf;
	char word[WORD_MAX];
	bool have_word = next_word(&p, word);
	while (have_word) {
		const struct scenario *s = NULL;
		for (size_t i = 0; i < ARRAY_SIZE(scenarios); i++)
			if (str_eq(word, scenarios[i].name))
				s = &scenarios[i];
		if (!s) {
			const char *eq = word;
			while (*eq && *eq != '=')
				eq++;
			if (!*eq) { /* not an option: an unknown scenario */
				failed_count++;
				printf("FAIL %s: unknown scenario\n", word);
			}
			have_word = next_word(&p, word);
			continue;
		}
		uint64_t arg = s->default_arg;
		have_word = next_word(&p, word);
		if (s->takes_arg && have_word && is_number(word)) {
			arg = parse_u64(word, NULL);
			have_word = next_word(&p, word);
		}
		run(s, arg);
	}
	printf("DONE passed=%u failed=%u\n", passed_count, failed_count);
}
