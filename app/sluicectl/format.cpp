#include "format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace sluicectl {

using nlohmann::json;

namespace {

const json& member(const json& object, const char* key) {
  static const json null_value;
  if (!object.is_object()) return null_value;
  auto it = object.find(key);
  return it == object.end() ? null_value : *it;
}

const json& array_of(const json& object, const char* key) {
  static const json empty = json::array();
  const json& a = member(object, key);
  return a.is_array() ? a : empty;
}

// Drop reasons of an object {"reason": count}, biggest first, nonzero only.
std::vector<std::pair<std::string, double>> nonzero_sorted(const json& counts) {
  std::vector<std::pair<std::string, double>> out;
  if (!counts.is_object()) return out;
  for (const auto& [name, value] : counts.items())
    if (value.is_number() && value.get<double>() > 0) out.emplace_back(name, value.get<double>());
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

std::string reasons_line(const json& counts, size_t max_items) {
  auto reasons = nonzero_sorted(counts);
  std::string s;
  for (size_t i = 0; i < reasons.size() && i < max_items; ++i)
    s += (s.empty() ? "" : ", ") + reasons[i].first + " " + cell(json(reasons[i].second));
  if (reasons.size() > max_items) s += ", ...";
  return s.empty() ? "-" : s;
}

// Drops a port's pipeline counted: the sum of its stage rows.
double port_drops(const json& stats, const std::string& port) {
  double total = 0;
  for (const auto& row : array_of(stats, "stages"))
    if (field(row, "port") == port) total += number(row, "drops_total");
  return total;
}

}  // namespace

// ---------------------------------------------------------------- values

std::string cell(const json& value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return value.get<std::string>().empty() ? "-" : value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "yes" : "no";
  if (value.is_number_integer() || value.is_number_unsigned()) return value.dump();
  if (value.is_number_float()) {
    const double d = value.get<double>();
    if (!std::isfinite(d)) return "-";
    char buf[64];
    if (d == std::floor(d) && std::fabs(d) < 1e15) std::snprintf(buf, sizeof(buf), "%.0f", d);
    else std::snprintf(buf, sizeof(buf), "%.2f", d);
    return buf;
  }
  return value.dump();  // arrays and objects: compact JSON
}

std::string field(const json& object, const char* key) { return cell(member(object, key)); }

double number(const json& object, const char* key, double fallback) {
  const json& v = member(object, key);
  return v.is_number() ? v.get<double>() : fallback;
}

std::string human_count(double value) {
  if (!std::isfinite(value)) return "-";
  const char* units[] = {"", "k", "M", "G", "T", "P"};
  double v = value;
  int unit = 0;
  while (std::fabs(v) >= 1000 && unit < 5) {
    v /= 1000;
    ++unit;
  }
  char buf[32];
  if (unit == 0) std::snprintf(buf, sizeof(buf), "%.0f", v);
  else std::snprintf(buf, sizeof(buf), "%.2f%s", v, units[unit]);
  return buf;
}

std::string human_rate(double per_second) {
  if (!std::isfinite(per_second)) return "-";
  if (std::fabs(per_second) >= 1000) return human_count(per_second);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", per_second);
  return buf;
}

std::string human_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-";
  uint64_t s = static_cast<uint64_t>(seconds);
  const uint64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60;
  s %= 60;
  std::string out;
  if (d) out += std::to_string(d) + "d ";
  if (d || h) out += std::to_string(h) + "h ";
  if (d || h || m) out += std::to_string(m) + "m ";
  return out + std::to_string(s) + "s";
}

// ---------------------------------------------------------------- tables

Table::Table(std::vector<std::string> headers) {
  for (auto& h : headers) {
    const bool right = !h.empty() && h[0] == '>';
    right_.push_back(right);
    headers_.push_back(right ? h.substr(1) : h);
  }
}

void Table::add(std::vector<std::string> row) {
  row.resize(headers_.size());
  for (auto& c : row)
    if (c.empty()) c = "-";
  rows_.push_back(std::move(row));
}

std::string Table::str() const {
  std::vector<size_t> width(headers_.size());
  for (size_t i = 0; i < headers_.size(); ++i) width[i] = headers_[i].size();
  for (const auto& row : rows_)
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t i = 0; i < cells.size(); ++i) {
      const std::string pad(width[i] - cells[i].size(), ' ');
      if (i) l += "  ";
      l += right_[i] ? pad + cells[i] : (i + 1 == cells.size() ? cells[i] : cells[i] + pad);
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(headers_);
  for (const auto& row : rows_) line(row);
  return out;
}

// ---------------------------------------------------------------- views

std::string render_status(const json& health, const json& stats, const std::string& address) {
  std::ostringstream out;
  const json& ports = array_of(stats, "ports");
  size_t up = 0;
  std::string links;
  for (const auto& p : ports) {
    const bool is_up = member(p, "link_up").is_boolean() && member(p, "link_up").get<bool>();
    up += is_up;
    links += (links.empty() ? "" : ", ") + field(p, "name") + " " + (is_up ? "up" : "DOWN");
  }
  out << "Sluice at " << address << ": " << field(health, "status");
  out << ", up " << human_duration(number(health, "uptime_seconds", -1));
  out << ", version " << field(health, "version") << "\n";
  out << "ports:    " << ports.size() << " (" << up << " up, " << ports.size() - up << " down)";
  if (!links.empty()) out << ": " << links;
  out << "\n";
  const json& lcores = array_of(stats, "lcores");
  std::string ids;
  for (const auto& l : lcores) ids += (ids.empty() ? "" : ", ") + field(l, "lcore");
  out << "workers:  " << lcores.size();
  if (!ids.empty()) out << " (lcore" << (lcores.size() == 1 ? " " : "s ") << ids << ")";
  out << "\n";
  double rx = 0, tx = 0;
  for (const auto& p : ports) {
    rx += number(p, "rx_packets");
    tx += number(p, "tx_packets");
  }
  out << "packets:  " << human_count(rx) << " received, " << human_count(tx) << " sent\n";
  const json& flows = member(stats, "flows");
  if (flows.is_object()) out << "flows:    " << field(flows, "active") << " active of " << field(flows, "max") << "\n";
  out << "drops:    " << field(stats, "drops_total");
  if (number(stats, "drops_total") > 0) out << " (" << reasons_line(member(stats, "drops"), 4) << ")";
  out << "\n";
  return out.str();
}

std::string render_ports(const json& stats) {
  Table t({"NAME", ">ID", "DEVICE", "LINK", ">SPEED", ">RX-PACKETS", ">TX-PACKETS", ">RX-MISSED", ">RX-ERRORS",
           ">TX-ERRORS", ">DROPS"});
  for (const auto& p : array_of(stats, "ports")) {
    const json& link = member(p, "link_up");
    const std::string speed = number(p, "link_speed_mbps") > 0 ? field(p, "link_speed_mbps") + "M" : "-";
    t.add({field(p, "name"), field(p, "port_id"), field(p, "device"),
           link.is_boolean() ? (link.get<bool>() ? "up" : "down") : "-", speed, field(p, "rx_packets"),
           field(p, "tx_packets"), field(p, "rx_missed"), field(p, "rx_errors"), field(p, "tx_errors"),
           cell(json(port_drops(stats, field(p, "name"))))});
  }
  return t.str();
}

std::vector<std::string> port_names(const json& stats) {
  std::vector<std::string> names;
  for (const auto& p : array_of(stats, "ports"))
    if (member(p, "name").is_string()) names.push_back(member(p, "name").get<std::string>());
  return names;
}

std::string render_stats(const json& stats) {
  std::string out = "uptime " + human_duration(number(stats, "uptime_seconds", -1)) + "\n\nports\n";
  Table ports({"NAME", ">RX-PACKETS", ">TX-PACKETS", ">RX-BYTES", ">TX-BYTES", ">RX-MISSED", ">RX-ERRORS",
               ">TX-ERRORS", ">RX-NOMBUF"});
  for (const auto& p : array_of(stats, "ports"))
    ports.add({field(p, "name"), field(p, "rx_packets"), field(p, "tx_packets"), field(p, "rx_bytes"),
               field(p, "tx_bytes"), field(p, "rx_missed"), field(p, "rx_errors"), field(p, "tx_errors"),
               field(p, "rx_nombuf")});
  out += ports.str() + "\nstages\n";
  Table stages({"PORT", "STAGE", ">PACKETS-IN", ">PACKETS-OUT", ">DROPS", "DROP REASONS"});
  for (const auto& s : array_of(stats, "stages"))
    stages.add({field(s, "port"), field(s, "stage"), field(s, "packets_in"), field(s, "packets_out"),
                field(s, "drops_total"), reasons_line(member(s, "drops"), 3)});
  out += stages.str() + "\nworkers\n";
  Table lcores({">LCORE", ">RX-PACKETS", ">TX-PACKETS", ">BUSY-POLLS", ">IDLE-POLLS", ">CYCLES/PKT"});
  for (const auto& l : array_of(stats, "lcores"))
    lcores.add({field(l, "lcore"), field(l, "rx_packets"), field(l, "tx_packets"), field(l, "busy_polls"),
                field(l, "idle_polls"), field(l, "cycles_per_packet")});
  out += lcores.str();
  out += "\ndrops: " + field(stats, "drops_total");
  if (number(stats, "drops_total") > 0) out += " (" + reasons_line(member(stats, "drops"), 100) + ")";
  return out + "\n";
}

std::string render_routes(const json& routes) {
  Table t({"PREFIX", "TYPE", "VIA", "PORT"});
  for (const auto& r : array_of(routes, "routes")) {
    const json& hops = array_of(r, "nexthops");
    if (hops.empty()) t.add({field(r, "prefix")});
    for (const auto& h : hops) t.add({field(r, "prefix"), field(h, "type"), field(h, "via"), field(h, "port")});
  }
  return t.empty() ? "no routes\n" : t.str();
}

std::string render_neighbours(const json& neighbours) {
  Table t({"ADDRESS", "PORT", "STATE", "MAC", ">AGE", ">QUEUED", "GATEWAY"});
  for (const auto& n : array_of(neighbours, "neighbours")) {
    const double age_ms = number(n, "age_ms", -1);
    t.add({field(n, "address"), field(n, "port"), field(n, "state"), field(n, "mac"),
           age_ms < 0 ? "-" : human_duration(age_ms / 1000), field(n, "queued"), field(n, "gateway")});
  }
  std::string out = t.empty() ? "no neighbours\n" : t.str();
  return out + field(neighbours, "count") + " of " + field(neighbours, "capacity") + " entries\n";
}

std::string render_flows(const json& flows) {
  Table t({">LCORE", "PROTO", "SOURCE", "DESTINATION", "STATE", ">ZONE", ">EXPIRES", ">RULE", "FLAGS", "NAT"});
  auto endpoint = [](const json& f, const char* addr, const char* port) {
    std::string a = field(f, addr);
    if (a.find(':') != std::string::npos) a = "[" + a + "]";
    if (member(f, port).is_number()) return a + ":" + field(f, port);
    if (member(f, "icmp_id").is_number()) return a + " id " + field(f, "icmp_id");
    return a;
  };
  for (const auto& f : array_of(flows, "flows")) {
    std::string flags;
    if (member(f, "assured") == true) flags += "assured";
    if (member(f, "seen_reply") == true) flags += std::string(flags.empty() ? "" : ",") + "replied";
    std::string nat;
    const json& n = member(f, "nat");
    for (const auto& k : array_of(n, "kind")) {
      if (!nat.empty()) nat += '+';
      nat += cell(k);
    }
    const json& reply = member(f, "reply");
    if (reply.is_object()) nat += " reply " + endpoint(reply, "src", "src_port") + " > " + endpoint(reply, "dst", "dst_port");
    const double expires = number(f, "expires_in_s", -1);
    t.add({field(f, "lcore"), field(f, "protocol"), endpoint(f, "src", "src_port"), endpoint(f, "dst", "dst_port"),
           field(f, "state"), field(f, "zone"), expires < 0 ? "-" : human_duration(expires), field(f, "rule"), flags,
           nat});
  }
  std::string out = t.empty() ? "no flows match\n" : t.str();
  out += field(flows, "count") + " shown, " + field(flows, "active") + " active in all\n";
  if (member(flows, "next_cursor").is_string())
    out += "more: add --cursor " + member(flows, "next_cursor").get<std::string>() + "\n";
  return out;
}

std::string render_nat(const json& nat) {
  std::ostringstream out;
  out << "mappings: " << field(nat, "active") << " active of " << field(nat, "max") << ", created "
      << field(nat, "created") << ", removed " << field(nat, "removed") << ", no port " << field(nat, "no_port")
      << ", no room " << field(nat, "no_room") << "\n";
  out << "endpoint-independent: " << field(nat, "eim_active") << " active, hairpinned " << field(nat, "hairpinned")
      << ", ICMP errors translated " << field(nat, "icmp_errors_translated") << ", NPTv6 "
      << field(nat, "nptv6_translated") << ", policy generation " << field(nat, "generation") << "\n";
  Table rules({">ID", "NAME", "KIND", "TRANSLATE", "MAPPING", "PORTS", "TO", ">TRANSLATED", ">NO-PORT"});
  for (const auto& r : array_of(nat, "rules"))
    rules.add({field(r, "id"), field(r, "name"), field(r, "kind"), field(r, "translate"), field(r, "mapping"),
               field(r, "ports"), field(r, "to_address"), field(r, "translated"), field(r, "no_port")});
  out << "\nrules\n" << (rules.empty() ? "none\n" : rules.str());
  Table addresses({"ADDRESS", "MAPPING", "PORTS", ">IN-USE", ">ALLOCATED", ">EXHAUSTED"});
  for (const auto& a : array_of(nat, "addresses"))
    addresses.add({field(a, "address"), field(a, "mapping"), field(a, "ports"), field(a, "in_use"),
                   field(a, "allocated"), field(a, "exhausted")});
  out << "\noutside addresses\n" << (addresses.empty() ? "none\n" : addresses.str());
  const json& r = member(nat, "reassembly");
  out << "\nreassembly: " << field(r, "fragments") << " fragments, " << field(r, "reassembled") << " reassembled, "
      << field(r, "in_progress") << " in progress, " << field(r, "timeouts") << " timed out\n";
  return out.str();
}

std::string render_services(const json& services) {
  std::string out;
  for (const auto& s : array_of(services, "services")) {
    out += field(s, "name") + ": " + field(s, "protocol") + " " + field(s, "vip") + ":" + field(s, "port") + ", " +
           field(s, "mode") + ", " + field(s, "scheduler") + ", health " + field(s, "health") + "; " +
           field(s, "connections") + " connections, " + field(s, "no_backend") + " without a backend\n";
    Table t({"BACKEND", "ADDRESS", ">PORT", ">WEIGHT", "STATE", ">ACTIVE", ">CONNECTIONS", ">PACKETS", ">BYTES", "PROBE"});
    for (const auto& b : array_of(s, "backends")) {
      const json& probe = member(b, "probe");
      t.add({field(b, "id"), field(b, "address"), field(b, "port"), field(b, "weight"), field(b, "state"),
             field(b, "active_connections"), field(b, "connections"), field(b, "packets"), field(b, "bytes"),
             probe.is_object() ? field(probe, "last_result") : "-"});
    }
    out += (t.empty() ? std::string("  no backends\n") : t.str()) + "\n";
  }
  return out.empty() ? "no services\n" : out;
}

std::string render_reload(const json& reload) {
  if (member(reload, "reloaded") == true) return "reloaded: policy generation " + field(reload, "generation") + "\n";
  return "reload refused (generation " + field(reload, "generation") + " stays):\n" + error_text(reload);
}

std::string error_text(const json& body) {
  std::string out;
  if (member(body, "error").is_string()) out += member(body, "error").get<std::string>() + "\n";
  for (const auto& e : array_of(body, "errors")) out += "  " + cell(e) + "\n";
  return out;
}

}  // namespace sluicectl
