// EAL arguments from config, with `sluice ... -- ARGS` overriding option by option.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace sluice::runtime {

std::vector<std::string> build_eal_args(const config::Config& config, const std::vector<std::string>& cli_args);

// The file prefix `eal_args` give EAL (the last --file-prefix; DPDK's "rte" without one),
// and the runtime directory DPDK keeps for it (/var/run/dpdk/PREFIX for root).
std::string eal_file_prefix(const std::vector<std::string>& eal_args);
std::string eal_runtime_dir(const std::string& prefix);

// A primary DPDK process holds a lock on its runtime directory's `config` file while it
// runs. Empty when no process holds the one `eal_args` would use (or the args name no
// shared config: --in-memory, --no-shconf, a secondary); else why EAL would refuse to
// start, naming the prefix, the holder's pid and the fix. DPDK itself only logs "Cannot
// create lock" and leaves rte_errno unset.
std::string eal_prefix_in_use(const std::vector<std::string>& eal_args);

}  // namespace sluice::runtime
