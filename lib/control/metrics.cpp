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
    for (const auto& port : stats["ports"]) e.sample(pm.metric, {{"port", port["name"]}}, port[pm.key]);
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
      {"inject_dropped", "Slow-path packets for a port this worker has no TX queue on (freed; a bug if not 0)."},
      {"handoff_received", "Packets other workers steered to this one (software steering)."},
  };
  for (const auto& [key, help] : lcore_metrics) {
    std::string metric = std::string("sluice_lcore_") + key + "_total";
    e.family(metric, "counter", help);
    for (const auto& lc : stats["lcores"]) e.sample(metric, {{"lcore", std::to_string(lc["lcore"].get<unsigned>())}}, lc[key]);
  }

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
        e.sample(std::string("sluice_flows_") + key + "_total", {{"lcore", lcore}}, lc[key]);
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
