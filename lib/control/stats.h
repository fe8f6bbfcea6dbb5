// One consistent snapshot of every counter, as JSON: the single source that /stats,
// /metrics and the telemetry commands all render, so they can never disagree.
// Runs on control-side threads only; reads the workers' counters without locking them.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/runtime.h"

namespace sluice::control {

// Thread-safe: HTTP workers and the telemetry thread may call it at once.
nlohmann::json collect_stats(const runtime::Runtime& runtime);

double uptime_seconds(const runtime::Runtime& runtime);

// GET /health: {"status": "ok"}, or "degraded" with "ports_down" naming each port whose
// link is down (Sluice forwards on the others); uptime and version either way.
nlohmann::json health_json(const runtime::Runtime& runtime);
// The verdict part of it, from the names of the ports whose link is down.
nlohmann::json health_verdict(const std::vector<std::string>& ports_down);

}  // namespace sluice::control
