#include "control/trace.h"

#include <rte_cycles.h>

#include "pipeline/trace.h"

namespace sluice::control {

namespace {

bool parse_bool(const std::string& text, bool& out) {
  if (text == "1" || text == "true" || text == "yes" || text.empty()) out = true;
  else if (text == "0" || text == "false" || text == "no") out = false;
  else return false;
  return true;
}

nlohmann::json step_json(const pipeline::TraceStep& step) {
  nlohmann::json j{{"stage", step.stage}, {"outcome", pipeline::outcome_name(step.outcome)}};
  if (step.outcome == pipeline::TraceOutcome::Dropped) j["reason"] = drop_name(step.reason);
  if (!step.detail.empty()) j["detail"] = step.detail;
  if (!step.headers.empty()) j["headers"] = step.headers;
  j["cycles"] = step.cycles;
  j["burst"] = step.burst;
  return j;
}

nlohmann::json record_json(const pipeline::TraceRecord& r, uint64_t start_tsc, uint64_t hz) {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& step : r.steps) steps.push_back(step_json(step));
  nlohmann::json j{{"seq", r.seq},
                   {"lcore", r.lcore},
                   {"port", r.port},
                   {"handed_over", r.handed},
                   {"time_s", hz ? double(r.tsc - start_tsc) / double(hz) : 0.0},
                   {"ethernet", r.macs},
                   {"headers", r.headers},
                   {"outcome", pipeline::outcome_name(r.outcome)},
                   {"stage", r.where},
                   {"steps", std::move(steps)}};
  if (r.outcome == pipeline::TraceOutcome::Dropped) {
    j["reason"] = drop_name(r.reason);
    j["reason_description"] = drop_description(r.reason);
  }
  if (r.outcome == pipeline::TraceOutcome::Sent) j["egress"] = r.egress;
  return j;
}

}  // namespace

bool read_trace_query(const FlowQuery& query, const std::map<std::string, uint16_t>& port_ids,
                      pipeline::TraceFilter& filter, uint32_t& count, std::string& error) {
  filter = pipeline::TraceFilter{};
  uint64_t wanted = 10, n = 0;
  for (const auto& [key, value] : query) {
    if (key == "port") {
      if (!port_ids.count(value)) {
        std::string names;
        for (const auto& [name, id] : port_ids) names += (names.empty() ? "" : ", ") + name;
        error = "port: no port named '" + value + "' (ports: " + names + ")";
        return false;
      }
      filter.port = value;
    } else if (key == "count") {
      if (!parse_number(value, pipeline::TraceSession::kMaxCount, wanted) || wanted == 0) {
        error = "count: must be 1.." + std::to_string(pipeline::TraceSession::kMaxCount) + ", got '" + value + "'";
        return false;
      }
    } else if (key == "drops") {
      if (!parse_bool(value, filter.drops_only)) {
        error = "drops: must be 1, 0, true or false, got '" + value + "'";
        return false;
      }
    } else if (key == "proto") {
      if (auto proto = parse_protocol(value == "icmp6" ? "icmpv6" : value)) filter.proto = *proto;
      else {
        error = "proto: must be tcp, udp, icmp, icmpv6 or 0..255, got '" + value + "'";
        return false;
      }
    } else if (key == "src" || key == "dst" || key == "host") {
      auto prefix = net::parse_prefix(value, false);
      if (!prefix) {
        error = key + ": must be an IPv4 or IPv6 address or prefix, got '" + value + "'";
        return false;
      }
      (key == "src" ? filter.src : key == "dst" ? filter.dst : filter.host) = *prefix;
    } else if (key == "sport" || key == "dport" || key == "l4port") {
      if (!parse_number(value, 65535, n)) {
        error = key + ": must be 0..65535, got '" + value + "'";
        return false;
      }
      (key == "sport" ? filter.sport : key == "dport" ? filter.dport : filter.l4port) = static_cast<int>(n);
    } else {
      error = "unknown parameter '" + key + "' (port, count, drops, proto, src, dst, host, sport, dport, l4port)";
      return false;
    }
  }
  count = static_cast<uint32_t>(wanted);
  return true;
}

bool arm_trace(const runtime::Runtime& runtime, const FlowQuery& query, nlohmann::json& out, std::string& error,
               int& status) {
  status = 400;
  pipeline::TraceSession* session = runtime.trace();
  if (!session) {
    error = "the tracer is not running (no workers)";
    status = 503;
    return false;
  }
  pipeline::TraceFilter filter;
  uint32_t count = 0;
  if (!read_trace_query(query, runtime.port_ids(), filter, count, error)) return false;
  const uint64_t id = session->arm(filter, count);
  out = {{"id", id}, {"armed", true}, {"filter", filter.str()}, {"wanted", count}};
  status = 200;
  return true;
}

nlohmann::json trace_json(const runtime::Runtime& runtime) {
  const pipeline::TraceSession* session = runtime.trace();
  if (!session) return {{"id", 0}, {"armed", false}, {"packets", nlohmann::json::array()}};
  const auto snap = session->snapshot();
  nlohmann::json packets = nlohmann::json::array();
  const uint64_t hz = rte_get_tsc_hz();
  for (const auto& r : snap.records) packets.push_back(record_json(r, runtime.start_tsc(), hz));
  return {{"id", snap.id},
          {"armed", snap.armed},
          {"filter", snap.filter.str()},
          {"wanted", snap.wanted},
          {"captured", snap.records.size()},
          {"examined", snap.examined},
          {"matched", snap.matched},
          {"tsc_hz", hz},
          {"packets", std::move(packets)}};
}

nlohmann::json stop_trace(const runtime::Runtime& runtime) {
  pipeline::TraceSession* session = runtime.trace();
  if (session) session->stop();
  return trace_json(runtime);
}

}  // namespace sluice::control
