// NAT as the control plane shows it: per rule, per outside address (ports in use on each
// worker, exhaustion), the mappings and reassembly counters, and the event log. The
// single source of /nat, the "nat" part of /stats (so /metrics) and /sluice/nat.
#pragma once

#include <nlohmann/json.hpp>

#include "runtime/runtime.h"

namespace sluice::control {

// Null when no port runs nat. Thread-safe like collect_stats.
nlohmann::json nat_json(const runtime::Runtime& runtime);

}  // namespace sluice::control
