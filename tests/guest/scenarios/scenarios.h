/* The scenarios of the device test guest, one file each; main.c holds the name table. */
#ifndef GUEST_SCENARIOS_H
#define GUEST_SCENARIOS_H

#include "../guest.h"

bool scenario_smoke(uint64_t arg, char *why);
bool scenario_pci_enum(uint64_t arg, char *why);
bool scenario_virtio_rng(uint64_t arg, char *why);
bool scenario_virtio_blk(uint64_t arg, char *why);
bool scenario_blk_bench(uint64_t arg, char *why);
bool scenario_virtio_net(uint64_t arg, char *why);
bool scenario_virtio_net_tx(uint64_t arg, char *why);
bool scenario_virtio_net_rx(uint64_t arg, char *why);
bool scenario_virtio_vsock(uint64_t arg, char *why);
bool scenario_virtio_balloon(uint64_t arg, char *why);
bool scenario_virtio_pmem(uint64_t arg, char *why);
bool scenario_snapshot_ticker(uint64_t arg, char *why);
bool scenario_sys_ctrl(uint64_t arg, char *why);
bool scenario_hostile_loop(uint64_t arg, char *why);
bool scenario_hostile_oob(uint64_t arg, char *why);
bool scenario_hostile_overflow(uint64_t arg, char *why);
bool scenario_hostile_avail_jump(uint64_t arg, char *why);
bool scenario_hostile_nested_indirect(uint64_t arg, char *why);
bool scenario_hostile_ro_write(uint64_t arg, char *why);
bool scenario_hostile_notify_early(uint64_t arg, char *why);
bool scenario_hostile_features(uint64_t arg, char *why);
bool scenario_hostile_msix(uint64_t arg, char *why);
bool scenario_hostile_config(uint64_t arg, char *why);
bool scenario_hostile_queue_size(uint64_t arg, char *why);

#endif
