// spdlog is the one log: Sluice's own messages and DPDK's, redirected into it.
#pragma once

#include <string>

namespace sluice::runtime {

// Sets spdlog's level and DPDK's global log level to match; false for an unknown level.
bool set_log_level(const std::string& level);
// Sends DPDK's log stream (EAL, PMDs) through spdlog; call before rte_eal_init.
void redirect_dpdk_log();

}  // namespace sluice::runtime
