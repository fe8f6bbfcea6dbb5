#include "control/metrics.h"

#include <map>
#include <vector>

namespace sluice::control {

namespace {

// Samples are grouped per family, since the format wants each family in one block.
class Exposition {
 public:
  void family(const std::string& name, const std::string& type, const std::string& help) {
    if (!families_.count(name)) order_.push_back(name);
    families_[name].type = type;
    families_[name].help = help;
  }
  void sample(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels,
              const nlohmann::json& value) {
    std::string line = name;
    if (!labels.empty()) {
      line += '{';
      for (size_t i = 0; i < labels.size(); ++i) {
        if (i) line += ',';
        line += labels[i].first + "=\"" + escape_label(labels[i].second) + '"';
      }
      line += '}';
    }
    line += ' ';
    if (value.is_boolean()) line += value.get<bool>() ? "1" : "0";
    else if (value.is_number_float()) line += std::to_string(value.get<double>());
    else line += value.dump();
    families_[name].lines.push_back(std::move(line));
  }
  std::string text() const {
    std::string out;
    for (const auto& name : order_) {
      const Family& f = families_.at(name);
      out += "# HELP " + name + ' ' + f.help + '\n';
      out += "# TYPE " + name + ' ' + f.type + '\n';
      for (const auto& line : f.lines) out += line + '\n';
    }
    return out;
  }

 private:
  struct Family {
    std::string type, help;
    std::vector<std::string> lines;
  };
  std::vector<std::string> order_;
  std::map<std::string, Family> families_;
};

}  // namespace

std::string escape_label(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

namespace {

// A member of a stats object, 0 when it has none: a const json's operator[] on a
// missing key is undefined behaviour, and a table of names must not rely on every row.
const nlohmann::json& field(const nlohmann::json& object, const char* key) {
  static const nlohmann::json zero = 0;
  auto it = object.find(key);
  return it == object.end() ? zero : *it;
}

}  // namespace

std::string render_prometheus(const nlohmann::json& stats) {
  Exposition e;
  e.family("sluice_uptime_seconds", "gauge", "Seconds since the data plane started.");
  e.sample("sluice_uptime_seconds", {}, stats["uptime_seconds"]);

  struct PortMetric {
    const char* key;
    const char* metric;
    const char* help;
  };
  static const PortMetric port_metrics[] = {
      {"rx_packets", "sluice_port_rx_packets_total", "Packets received by the port (ethdev ipackets)."},
      {"tx_packets", "sluice_port_tx_packets_total", "Packets sent by the port (ethdev opackets)."},
      {"rx_bytes", "sluice_port_rx_bytes_total", "Bytes received by the port."},
      {"tx_bytes", "sluice_port_tx_bytes_total", "Bytes sent by the port."},
      {"rx_missed", "sluice_port_rx_missed_total", "Packets the NIC dropped because RX queues were full."},
      {"rx_errors", "sluice_port_rx_errors_total", "Erroneous packets received."},
      {"tx_errors", "sluice_port_tx_errors_total", "Packets that failed to transmit."},
      {"rx_nombuf", "sluice_port_rx_nombuf_total", "RX mbuf allocation failures."},
  };
  for (const auto& pm : port_metrics) {
    e.family(pm.metric, "counter", pm.help);
    for (const auto& port : stats["ports"]) e.sample(pm.metric, {{"port", port["name"]}}, field(port, pm.key));
  }
  e.family("sluice_port_link_up", "gauge", "1 when the port's link is up.");
  e.family("sluice_port_link_speed_mbps", "gauge", "Negotiated link speed in Mbit/s (0 if unknown).");
  e.family("sluice_port_xstat_total", "counter", "Driver extended statistics (rte_eth_xstats), by name.");
  for (const auto& port : stats["ports"]) {
    e.sample("sluice_port_link_up", {{"port", port["name"]}}, port["link_up"]);
    e.sample("sluice_port_link_speed_mbps", {{"port", port["name"]}}, port["link_speed_mbps"]);
    for (const auto& [name, value] : port["xstats"].items())
      e.sample("sluice_port_xstat_total", {{"port", port["name"]}, {"stat", name}}, value);
  }

  static const std::pair<const char*, const char*> lcore_metrics[] = {
      {"polls", "Poll rounds over all of the worker's RX queues."},
      {"busy_polls", "Poll rounds that received at least one packet."},
      {"idle_polls", "Poll rounds that received nothing."},
      {"rx_packets", "Packets the worker received."},
      {"tx_packets", "Packets the worker's TX queues handed to the PMD."},
      {"busy_cycles", "TSC cycles spent in busy poll rounds."},
      {"idle_sleeps", "Sleeps the worker took when idle (polling.idle sleep)."},
      {"inject_dropped", "Slow-path packets for a port this worker has no TX queue on (freed; a bug if not 0)."},
      {"handoff_received", "Packets other workers steered to this one (software steering)."},
  };
  for (const auto& [key, help] : lcore_metrics) {
    std::string metric = std::string("sluice_lcore_") + key + "_total";
    e.family(metric, "counter", help);
    for (const auto& lc : stats["lcores"]) e.sample(metric, {{"lcore", std::to_string(lc["lcore"].get<unsigned>())}}, field(lc, key));
  }
  // In seconds, as Prometheus names time (/stats keeps the microseconds).
  e.family("sluice_lcore_idle_sleep_seconds_total", "counter", "Time the worker asked to sleep when idle.");
  for (const auto& lc : stats["lcores"])
    e.sample("sluice_lcore_idle_sleep_seconds_total", {{"lcore", std::to_string(lc["lcore"].get<unsigned>())}},
             double(field(lc, "idle_sleep_us").get<uint64_t>()) / 1e6);

  e.family("sluice_stage_packets_in_total", "counter", "Packets that entered the stage.");
  e.family("sluice_stage_packets_out_total", "counter", "Packets the stage passed on (in minus drops).");
  e.family("sluice_stage_drops_total", "counter", "Packets the stage dropped, by reason.");
  e.family("sluice_stage_events_total", "counter", "Stage-specific counters.");
  for (const auto& st : stats["stages"]) {
    std::vector<std::pair<std::string, std::string>> labels = {{"port", st["port"]}, {"stage", st["stage"]}};
    e.sample("sluice_stage_packets_in_total", labels, st["packets_in"]);
    e.sample("sluice_stage_packets_out_total", labels, st["packets_out"]);
    for (const auto& [reason, value] : st["drops"].items()) {
      auto l = labels;
      l.emplace_back("reason", reason);
      e.sample("sluice_stage_drops_total", l, value);
    }
    if (st.contains("counters"))
      for (const auto& [name, value] : st["counters"].items()) {
        auto l = labels;
        l.emplace_back("counter", name);
        e.sample("sluice_stage_events_total", l, value);
      }
  }

  e.family("sluice_drops_total", "counter", "Packets dropped anywhere in the pipeline, by reason.");
  for (const auto& [reason, value] : stats["drops"].items()) e.sample("sluice_drops_total", {{"reason", reason}}, value);

  if (stats.contains("flows")) {
    const nlohmann::json& flows = stats["flows"];
    e.family("sluice_flows_active", "gauge", "Flows in the worker's flow tables (nf_conntrack_count).");
    e.family("sluice_flows_max", "gauge", "Flow table capacity of the worker, IPv4 and IPv6 (nf_conntrack_max).");
    static const std::pair<const char*, const char*> flow_counters[] = {
        {"created", "Flows created."},
        {"expired", "Flows removed by their timeout."},
        {"evicted", "Unassured flows removed to make room for new ones (early drop)."},
        {"flushed", "Flows removed by a flush request."},
        {"reopened", "Closed or TIME_WAIT TCP flows replaced by a new connection on the same tuple."},
    };
    for (const auto& [key, help] : flow_counters) e.family(std::string("sluice_flows_") + key + "_total", "counter", help);
    e.family("sluice_flows_state", "gauge", "Flows by protocol and state.");
    for (const auto& lc : flows["lcores"]) {
      const std::string lcore = std::to_string(lc["lcore"].get<unsigned>());
      e.sample("sluice_flows_active", {{"lcore", lcore}}, lc["active"]);
      e.sample("sluice_flows_max", {{"lcore", lcore}}, lc["max"]);
      for (const auto& [key, help] : flow_counters)
        e.sample(std::string("sluice_flows_") + key + "_total", {{"lcore", lcore}}, field(lc, key));
      for (const auto& [state, value] : lc["states"].items())
        e.sample("sluice_flows_state", {{"lcore", lcore}, {"state", state}}, value);
    }
    e.family("sluice_handoff_packets_total", "counter", "Packets software steering handed from one worker to another.");
    for (const auto& h : flows["handoffs"])
      e.sample("sluice_handoff_packets_total",
               {{"from", std::to_string(h["from"].get<unsigned>())}, {"to", std::to_string(h["to"].get<unsigned>())}},
               h["packets"]);
    e.family("sluice_flows_memory_bytes", "gauge", "Memory reserved for the flow tables, all workers.");
    e.sample("sluice_flows_memory_bytes", {}, flows["memory_bytes"]);
  }
  if (stats.contains("firewall")) {
    const nlohmann::json& fw = stats["firewall"];
    e.family("sluice_firewall_generation", "gauge", "Generation of the firewall rules in force (1 at start, +1 per reload).");
    e.sample("sluice_firewall_generation", {}, fw["generation"]);
    e.family("sluice_firewall_rule_packets_total", "counter", "Packets matched by the rule since it was loaded.");
    e.family("sluice_firewall_rule_bytes_total", "counter", "Bytes matched by the rule since it was loaded.");
    for (const auto& rule : fw["rules"]) {
      std::vector<std::pair<std::string, std::string>> labels = {{"rule", rule["name"]}, {"action", rule["action"]}};
      e.sample("sluice_firewall_rule_packets_total", labels, rule["packets"]);
      e.sample("sluice_firewall_rule_bytes_total", labels, rule["bytes"]);
    }
  }

  if (stats.contains("nat")) {
    const nlohmann::json& nat = stats["nat"];
    e.family("sluice_nat_active", "gauge", "Translated flows in the worker's table.");
    e.family("sluice_nat_max", "gauge", "Translated flows the worker's table can hold (nat.capacity).");
    e.family("sluice_nat_eim_active", "gauge", "Endpoint-independent mappings held by the worker.");
    static const std::pair<const char*, const char*> nat_counters[] = {
        {"created", "Translated flows made."},
        {"removed", "Translated flows gone (expired, evicted, flushed, closed)."},
        {"no_port", "New flows refused: no outside port free (drop nat_no_port)."},
        {"no_room", "New flows refused: no room for the translation (drop nat_table_full)."},
    };
    for (const auto& [key, help] : nat_counters) e.family(std::string("sluice_nat_") + key + "_total", "counter", help);
    for (const auto& lc : nat["lcores"]) {
      const std::string lcore = std::to_string(lc["lcore"].get<unsigned>());
      e.sample("sluice_nat_active", {{"lcore", lcore}}, lc["active"]);
      e.sample("sluice_nat_max", {{"lcore", lcore}}, lc["max"]);
      e.sample("sluice_nat_eim_active", {{"lcore", lcore}}, lc["eim_active"]);
      for (const auto& [key, help] : nat_counters)
        e.sample(std::string("sluice_nat_") + key + "_total", {{"lcore", lcore}}, field(lc, key));
    }
    static const std::pair<const char*, const char*> nat_totals[] = {
        {"eim_inbound", "Flows opened from outside through an endpoint-independent mapping."},
        {"hairpinned", "Port-forwarded flows from the inside, their source translated too."},
        {"icmp_errors_translated", "ICMP errors translated with the packet they quote (RFC 5508)."},
        {"nptv6_translated", "IPv6 packets whose prefix NPTv6 translated."},
    };
    for (const auto& [key, help] : nat_totals) {
      const std::string metric = std::string("sluice_nat_") + key + "_total";
      e.family(metric, "counter", help);
      e.sample(metric, {}, field(nat, key));
    }
    e.family("sluice_nat_rule_translated_total", "counter", "Flows the NAT rule translated since it was loaded.");
    e.family("sluice_nat_rule_no_port_total", "counter", "Flows the NAT rule refused for want of a port since it was loaded.");
    for (const auto& rule : nat["rules"]) {
      std::vector<std::pair<std::string, std::string>> labels = {{"rule", rule["name"]}, {"kind", rule["kind"]}};
      e.sample("sluice_nat_rule_translated_total", labels, rule["translated"]);
      e.sample("sluice_nat_rule_no_port_total", labels, rule["no_port"]);
    }
    e.family("sluice_nat_address_ports_in_use", "gauge", "Translated flows holding an outside port of the address, per worker (endpoint-dependent flows may share a port).");
    e.family("sluice_nat_address_ports", "gauge", "Outside ports of the address in the worker's share.");
    e.family("sluice_nat_address_exhausted_total", "counter", "New flows the worker refused: none of its ports of the address free.");
    for (const auto& a : nat["addresses"]) {
      for (const auto& w : a["lcores"]) {
        std::vector<std::pair<std::string, std::string>> labels = {
            {"address", a["address"]}, {"lcore", std::to_string(w["lcore"].get<unsigned>())}};
        e.sample("sluice_nat_address_ports_in_use", labels, w["in_use"]);
        e.sample("sluice_nat_address_ports", labels, w["ports"]);
        e.sample("sluice_nat_address_exhausted_total", labels, w["exhausted"]);
      }
    }
    const nlohmann::json& r = nat["reassembly"];
    e.family("sluice_nat_fragments_total", "counter", "IPv4 fragments taken into reassembly.");
    e.sample("sluice_nat_fragments_total", {}, r["fragments"]);
    e.family("sluice_nat_reassembled_total", "counter", "IPv4 datagrams reassembled before translation.");
    e.sample("sluice_nat_reassembled_total", {}, r["reassembled"]);
    e.family("sluice_nat_reassembly_in_progress", "gauge", "Datagrams waiting for fragments.");
    e.sample("sluice_nat_reassembly_in_progress", {}, r["in_progress"]);
  }

  if (stats.contains("services")) {
    e.family("sluice_lb_service_connections_total", "counter", "New connections the service gave a backend.");
    e.family("sluice_lb_service_no_backend_total", "counter",
             "New connections the service refused: no backend up (drop lb_no_backend).");
    e.family("sluice_lb_backend_up", "gauge", "1 when the backend is up (always, without health checks), 0 when down.");
    e.family("sluice_lb_backend_weight", "gauge", "The backend's configured weight.");
    e.family("sluice_lb_backend_active_connections", "gauge", "Connections to the backend in the flow tables.");
    e.family("sluice_lb_backend_connections_total", "counter", "New connections given to the backend.");
    e.family("sluice_lb_backend_packets_total", "counter", "Packets of the backend's connections, both directions.");
    e.family("sluice_lb_backend_bytes_total", "counter", "Bytes of the backend's connections, both directions.");
    e.family("sluice_lb_backend_probes_total", "counter",
             "Health probes by outcome: answered good, answered failed, or timed out.");
    e.family("sluice_lb_backend_transitions_total", "counter", "Times health checks turned the backend up or down.");
    for (const auto& service : stats["services"]) {
      const std::string name = service["name"];
      e.sample("sluice_lb_service_connections_total", {{"service", name}}, field(service, "connections"));
      e.sample("sluice_lb_service_no_backend_total", {{"service", name}}, field(service, "no_backend"));
      for (const auto& b : service["backends"]) {
        std::vector<std::pair<std::string, std::string>> labels = {{"service", name}, {"backend", b["id"]}};
        e.sample("sluice_lb_backend_up", labels, b["state"] == "up");
        e.sample("sluice_lb_backend_weight", labels, field(b, "weight"));
        e.sample("sluice_lb_backend_active_connections", labels, field(b, "active_connections"));
        e.sample("sluice_lb_backend_connections_total", labels, field(b, "connections"));
        e.sample("sluice_lb_backend_packets_total", labels, field(b, "packets"));
        e.sample("sluice_lb_backend_bytes_total", labels, field(b, "bytes"));
        // Only health-checked backends have probes and transitions to count.
        if (!b.contains("probe")) continue;
        const nlohmann::json& probe = b["probe"];
        for (const auto& [result, key] : {std::pair{"good", "good"}, {"failed", "failed"}, {"timeout", "timeouts"}}) {
          auto l = labels;
          l.emplace_back("result", result);
          e.sample("sluice_lb_backend_probes_total", l, field(probe, key));
        }
        for (const auto& [to, key] : {std::pair{"up", "went_up"}, {"down", "went_down"}}) {
          auto l = labels;
          l.emplace_back("to", to);
          e.sample("sluice_lb_backend_transitions_total", l, field(probe, key));
        }
      }
    }
  }

  e.family("sluice_mempool_size", "gauge", "Mbufs in the pool.");
  e.family("sluice_mempool_in_use", "gauge", "Mbufs currently taken from the pool.");
  e.family("sluice_mempool_free", "gauge", "Mbufs available in the pool (caches included).");
  for (const auto& mp : stats["mempools"]) {
    e.sample("sluice_mempool_size", {{"pool", mp["name"]}}, mp["size"]);
    e.sample("sluice_mempool_in_use", {{"pool", mp["name"]}}, mp["in_use"]);
    e.sample("sluice_mempool_free", {{"pool", mp["name"]}}, mp["free"]);
  }
  return e.text();
}

}  // namespace sluice::control
