// EAL arguments from config, with `sluice ... -- ARGS` overriding option by option.
#pragma once

#include <cstdint>
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

// The lcores `eal_args` give EAL (the last -l/--lcores: "0-3", "0,2,4-5") that are not
// among `usable` (the CPUs online and in Sluice's affinity mask), as a message naming
// them, the usable set and the fix; empty when all are usable, or when the list uses
// EAL's lcore@cpu mapping syntax (EAL checks that itself).
std::string eal_lcores_unusable(const std::vector<std::string>& eal_args, const std::vector<unsigned>& usable);
// The CPUs this process may run on (sched_getaffinity).
std::vector<unsigned> usable_cpus();

// Whether the hugepages EAL needs for `eal_args` are there: `meminfo` is /proc/meminfo's
// text, `mounted` whether a hugetlbfs is mounted, `reclaimable_mb` what files of this
// prefix hold (a killed run's, which EAL takes back). Empty when fine or not needed
// (--no-huge); else the message: none reserved, none mounted, or fewer free than -m asks.
std::string eal_hugepages_missing(const std::vector<std::string>& eal_args, const std::string& meminfo, bool mounted,
                                  uint64_t reclaimable_mb = 0);
// eal_hugepages_missing() on this host.
std::string eal_hugepages_missing(const std::vector<std::string>& eal_args);

}  // namespace sluice::runtime
