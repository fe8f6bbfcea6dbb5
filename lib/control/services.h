// The load balancer as the control plane shows it: per service its connections and
// refusals, per backend its state, weight, traffic and health probes. The single source
// of /services, the "services" part of /stats (so /metrics) and /sluice/services.
#pragma once

#include <nlohmann/json.hpp>

#include "runtime/runtime.h"

namespace sluice::control {

// Null when the config has no services. Thread-safe: the load balancer takes its lock.
nlohmann::json services_json(const runtime::Runtime& runtime);

}  // namespace sluice::control
