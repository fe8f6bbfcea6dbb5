// The packet tracer's control side: POST /trace arms it (query parameters: the
// filter and the count), GET /trace reads what the workers recorded, POST /trace/stop
// disarms it. The telemetry command /sluice/trace reads the same.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "control/flows.h"
#include "pipeline/trace.h"
#include "runtime/runtime.h"

namespace sluice::control {

// The filter and count (`count`, 1..1000, default 10) the parameters below describe,
// `port_ids` the names a port parameter may give; false with `error` on a bad one.
bool read_trace_query(const FlowQuery& query, const std::map<std::string, uint16_t>& port_ids,
                      pipeline::TraceFilter& filter, uint32_t& count, std::string& error);
// Parameters: port (an ingress port's name), count (1..1000, default 10), drops
// (1/true: only packets that end dropped), proto (tcp, udp, icmp, icmpv6 or 0..255),
// src, dst, host (an address or prefix; host: either side), sport, dport, l4port
// (0..65535; l4port: either side). False with `error` and `status` 400 on a bad one.
bool arm_trace(const runtime::Runtime& runtime, const FlowQuery& query, nlohmann::json& out, std::string& error,
               int& status);
// {"id", "armed", "filter", "wanted", "captured", "examined", "matched", "packets": [...]}
nlohmann::json trace_json(const runtime::Runtime& runtime);
nlohmann::json stop_trace(const runtime::Runtime& runtime);

}  // namespace sluice::control
