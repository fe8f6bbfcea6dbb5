// The control plane's view of the flow tables: listing and flushing flows on every
// worker through its mailbox (the worker answers within a poll round, the tables stay
// single-writer), and the query language /flows and /sluice/flows share.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/runtime.h"

namespace sluice::control {

// Query parameters: address (IP or prefix, either side), port (either side), protocol
// (tcp, udp, icmp, icmpv6 or a number), state (established, syn_sent, unreplied, ...
// or a state slot like udp_replied), zone (conntrack zone), limit (1..10000, default
// 100; listing only), cursor (from a previous page's next_cursor).
using FlowQuery = std::map<std::string, std::string>;

// The filter the query's parameters describe (limit and cursor are list_flows' own and
// pass here); false with `error` on an unknown parameter or a bad value.
bool read_flow_filter(const FlowQuery& query, flow::FlowFilter& filter, std::string& error);

// A page of flows as JSON: {"flows": [...], "count": N, "next_cursor": "..." or null}.
// On a bad parameter or a worker that does not answer: false, `error` and `status`
// (400 or 503) set.
bool list_flows(const runtime::Runtime& runtime, const FlowQuery& query, nlohmann::json& out, std::string& error,
                int& status);
// Removes the matching flows on every worker: {"flushed": N}.
bool flush_flows(const runtime::Runtime& runtime, const FlowQuery& query, nlohmann::json& out, std::string& error,
                 int& status);

// A decimal parameter no larger than `max`; false for anything else.
bool parse_number(const std::string& text, uint64_t max, uint64_t& out);
// tcp, udp, icmp, icmpv6 or 0..255 as a protocol number; nullopt for anything else.
std::optional<uint8_t> parse_protocol(const std::string& text);

// "a=b,c=d" (telemetry parameters) into a query; false on a malformed pair.
bool parse_query_list(const std::string& text, FlowQuery& out, std::string& error);

}  // namespace sluice::control
