// DPDK telemetry commands (/sluice/stats, /sluice/ports, /sluice/lcores), so
// `dpdk-telemetry.py -f PREFIX` shows the same numbers as the HTTP endpoint.
#pragma once

#include "runtime/runtime.h"

namespace sluice::control {

// Registers the commands; they read `runtime` until unregister (process exit).
void register_telemetry(const runtime::Runtime& runtime);
void unregister_telemetry();

}  // namespace sluice::control
