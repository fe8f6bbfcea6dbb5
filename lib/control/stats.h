// One consistent snapshot of every counter, as JSON: the single source that /stats,
// /metrics and the telemetry commands all render, so they can never disagree.
// Runs on control-side threads only; reads the workers' counters without locking them.
#pragma once

#include <nlohmann/json.hpp>

#include "runtime/runtime.h"

namespace sluice::control {

// Thread-safe: HTTP workers and the telemetry thread may call it at once.
nlohmann::json collect_stats(const runtime::Runtime& runtime);

double uptime_seconds(const runtime::Runtime& runtime);

}  // namespace sluice::control
