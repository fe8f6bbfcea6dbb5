// sluicectl's pure parts: turning the HTTP API's JSON into tables and lines, rates from
// two /stats snapshots, the packet tracer's rendering, and the mapping of command-line
// words onto query parameters. No I/O here, so the unit tests need no server.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sluicectl {

using Query = std::map<std::string, std::string>;

// ---------------------------------------------------------------- values

// A JSON value as a table cell: strings as they are, numbers without a trailing ".0",
// booleans as yes/no, null or missing as "-".
std::string cell(const nlohmann::json& value);
// The member `key` of an object as a cell; "-" when `object` is no object or lacks it.
std::string field(const nlohmann::json& object, const char* key);
// A member as a number; `fallback` when missing or not a number.
double number(const nlohmann::json& object, const char* key, double fallback = 0);
// 1234567 -> "1.23M", 999 -> "999"; rates keep one decimal below 1000 ("12.5").
std::string human_count(double value);
std::string human_rate(double per_second);
// 3725.2 -> "1h 2m 5s"
std::string human_duration(double seconds);

// ---------------------------------------------------------------- tables

// Columns sized to their widest cell; a column whose header starts with '>' (the '>'
// is not printed) is right-aligned, for numbers.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void add(std::vector<std::string> row);
  bool empty() const { return rows_.empty(); }
  std::string str() const;

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// ---------------------------------------------------------------- views of one answer

std::string render_status(const nlohmann::json& health, const nlohmann::json& stats, const std::string& address);
std::string render_ports(const nlohmann::json& stats);
std::vector<std::string> port_names(const nlohmann::json& stats);
std::string render_stats(const nlohmann::json& stats);
std::string render_routes(const nlohmann::json& routes);
std::string render_neighbours(const nlohmann::json& neighbours);
std::string render_flows(const nlohmann::json& flows);
std::string render_nat(const nlohmann::json& nat);
std::string render_services(const nlohmann::json& services);
std::string render_reload(const nlohmann::json& reload);
// The error text of a refusal: `error`, or each of `errors` on its own line.
std::string error_text(const nlohmann::json& body);

// ---------------------------------------------------------------- stats --watch

struct Rate {
  std::string port, stage;  // stage empty for a port row
  double rx_pps = 0, tx_pps = 0, rx_bps = 0, tx_bps = 0, missed_ps = 0, errors_ps = 0;  // ports
  double in_pps = 0, out_pps = 0, drops_ps = 0;                                         // stages and ports
};
struct Rates {
  double seconds = 0;  // between the two snapshots
  std::vector<Rate> ports, stages;
  double drops_ps = 0;
  std::vector<std::pair<std::string, double>> drop_reasons;  // reasons that moved, per second
};
// Rates between two /stats answers taken `seconds` apart (their uptime_seconds when both
// have one). Rows are matched by name, not position; a counter that went backwards (a
// restart) counts as 0.
Rates compute_rates(const nlohmann::json& before, const nlohmann::json& after, double wall_seconds);
std::string render_rates(const Rates& rates, const nlohmann::json& after);
nlohmann::json rates_json(const Rates& rates);

// ---------------------------------------------------------------- trace

// "proto tcp dst 10.2.0.0/24 dport 80" -> {proto: tcp, dst: 10.2.0.0/24, dport: 80}.
// Keys: proto, src, dst, host, sport, dport, l4port (also "port"); a bare tcp, udp, icmp
// or icmpv6 is a proto. False with `error` on anything else.
bool parse_trace_filter(const std::string& text, Query& out, std::string& error);
// VPP-like lines for every packet of a GET /trace answer.
std::string render_trace(const nlohmann::json& trace);
// One packet: header line, one line a step, the verdict.
std::string render_trace_packet(const nlohmann::json& packet);

// ---------------------------------------------------------------- flows

struct FlowFilterArgs {
  std::optional<std::string> prefix, port, protocol, state, zone, limit, cursor;
};
// The /flows (and /flows/flush) query of the command's filters.
Query flow_query(const FlowFilterArgs& args);

// ---------------------------------------------------------------- address and capture

// "HOST:PORT", "[v6]:PORT", "HOST" (port 9180), with an optional "http://".
bool parse_address(const std::string& text, std::string& host, int& port, std::string& error);

struct CaptureArgs {
  std::string port, file;
  std::optional<uint64_t> count;
  std::optional<uint64_t> duration;  // seconds
};
// The dpdk-dumpcap command line (argv[0] = `dumpcap`) for a port of /stats and the EAL
// file prefix of /config; false with `error` for a port /stats does not list.
bool capture_command(const CaptureArgs& args, const nlohmann::json& stats, const nlohmann::json& config,
                     const std::string& dumpcap, std::vector<std::string>& argv, std::string& error);
// The EAL file prefix a /config answer names ("sluice" when it names none).
std::string eal_file_prefix(const nlohmann::json& config);

}  // namespace sluicectl
