/* smoke: the guest itself works (boot, CPL3, serial, command line). */
#include "scenarios.h"

bool scenario_smoke(uint64_t arg, char *why)
{
	printf("smoke: cmdline \"%s\", ram end 0x%lx\n", cmdline(), ram_end());
	return true;
}
