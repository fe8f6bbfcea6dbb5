#include "control/stats.h"

#include <mutex>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_ethdev.h>

namespace sluice::control {

namespace {

// ethdev stats calls are not documented as thread-safe against each other.
std::mutex g_ethdev_mutex;

// Sums one (port, stage) over every worker that runs it.
struct StageTotals {
  std::string port;
  std::string stage;
  uint64_t packets_in = 0;
  uint64_t packets_out = 0;
  std::array<uint64_t, kDropCount> drops{};
  std::vector<std::pair<std::string, uint64_t>> counters;

  void add(const pipeline::Stage& s) {
    const StageCounters& c = s.counters();
    packets_in += c.packets_in.get();
    packets_out += c.packets_out.get();
    for (size_t i = 0; i < kDropCount; ++i) drops[i] += c.drops[i].get();
    pipeline::NamedCounters named;
    s.read_counters(named);
    for (const auto& entry : named) {
      auto it = std::find_if(counters.begin(), counters.end(),
                             [&](const auto& p) { return p.first == entry.first; });
      if (it == counters.end()) counters.emplace_back(std::string(entry.first), entry.second);
      else it->second += entry.second;
    }
  }
};

StageTotals& totals_for(std::vector<StageTotals>& all, const std::string& port, const std::string& stage) {
  for (auto& t : all)
    if (t.port == port && t.stage == stage) return t;
  all.push_back(StageTotals{port, stage});
  return all.back();
}

nlohmann::json port_json(const runtime::Port& port) {
  nlohmann::json j;
  j["name"] = port.name;
  j["port_id"] = port.port_id;
  j["device"] = port.config->device;
  j["link_up"] = port.link_up.load();
  j["link_speed_mbps"] = port.link_speed_mbps.load();
  rte_eth_stats st{};
  std::vector<rte_eth_xstat> xstats;
  std::vector<rte_eth_xstat_name> names;
  if (!port.closed) {
    rte_eth_stats_get(port.port_id, &st);
    int n = rte_eth_xstats_get_names(port.port_id, nullptr, 0);
    if (n > 0) {
      names.resize(n);
      xstats.resize(n);
      int got_names = rte_eth_xstats_get_names(port.port_id, names.data(), n);
      int got = rte_eth_xstats_get(port.port_id, xstats.data(), n);
      if (got_names != n || got != n) xstats.clear();
    }
  }
  j["rx_packets"] = st.ipackets;
  j["tx_packets"] = st.opackets;
  j["rx_bytes"] = st.ibytes;
  j["tx_bytes"] = st.obytes;
  j["rx_missed"] = st.imissed;
  j["rx_errors"] = st.ierrors;
  j["tx_errors"] = st.oerrors;
  j["rx_nombuf"] = st.rx_nombuf;
  nlohmann::json x = nlohmann::json::object();
  for (const auto& xs : xstats)
    if (xs.id < names.size()) x[names[xs.id].name] = xs.value;
  j["xstats"] = std::move(x);
  return j;
}

}  // namespace

double uptime_seconds(const runtime::Runtime& runtime) {
  return double(rte_rdtsc() - runtime.start_tsc()) / double(rte_get_tsc_hz());
}

nlohmann::json collect_stats(const runtime::Runtime& runtime) {
  nlohmann::json out;
  out["uptime_seconds"] = uptime_seconds(runtime);

  {
    std::lock_guard lock(g_ethdev_mutex);
    nlohmann::json ports = nlohmann::json::array();
    for (const auto& port : runtime.ports()) ports.push_back(port_json(*port));
    out["ports"] = std::move(ports);
  }

  // Stage rows in config order: each port's pipeline, then the per-egress "tx" rows.
  std::vector<StageTotals> stages;
  for (const auto& pc : runtime.config().ports) {
    for (const auto& sc : pc.pipeline) totals_for(stages, pc.name, sc.stage);
    totals_for(stages, pc.name, "output");
  }
  for (const auto& pc : runtime.config().ports) totals_for(stages, pc.name, "tx");

  nlohmann::json lcores = nlohmann::json::array();
  for (const auto& worker : runtime.workers()) {
    for (const auto& pipeline : worker->pipelines())
      for (const auto& stage : pipeline->stages()) totals_for(stages, pipeline->port_name(), stage->name()).add(*stage);
    uint64_t tx_packets = 0;
    for (const auto& tx : worker->tx_queues()) {
      tx_packets += tx->counters().packets_out.get();
      for (const auto& port : runtime.ports())
        if (port->port_id == tx->port_id()) totals_for(stages, port->name, "tx").add(*tx);
    }
    const WorkerCounters& c = worker->counters();
    uint64_t rx = c.rx_packets.get();
    uint64_t busy_cycles = c.busy_cycles.get();
    lcores.push_back({{"lcore", worker->lcore_id()},
                      {"polls", c.polls.get()},
                      {"busy_polls", c.busy_polls.get()},
                      {"idle_polls", c.idle_polls.get()},
                      {"rx_packets", rx},
                      {"tx_packets", tx_packets},
                      {"busy_cycles", busy_cycles},
                      {"inject_dropped", worker->injected_dropped()},
                      {"cycles_per_packet", rx ? double(busy_cycles) / double(rx) : 0.0}});
  }
  out["lcores"] = std::move(lcores);

  // The router's slow path on the control thread: ARP/ND and packets held for a neighbour.
  if (const router::Router* router = runtime.router()) {
    StageTotals& t = totals_for(stages, "control", "slowpath");
    const StageCounters& c = router->counters();
    t.packets_in += c.packets_in.get();
    t.packets_out += c.packets_out.get();
    for (size_t i = 0; i < kDropCount; ++i) t.drops[i] += c.drops[i].get();
    pipeline::NamedCounters named;
    router->read_counters(named);
    for (const auto& entry : named) t.counters.emplace_back(std::string(entry.first), entry.second);
    t.counters.emplace_back("neighbours", router->neighbour_count());
  }

  std::array<uint64_t, kDropCount> drop_totals{};
  nlohmann::json stage_rows = nlohmann::json::array();
  for (const auto& t : stages) {
    nlohmann::json drops = nlohmann::json::object();
    uint64_t total = 0;
    for (size_t i = 0; i < kDropCount; ++i) {
      if (t.drops[i] == 0) continue;
      drops[kDropInfo[i].name] = t.drops[i];
      drop_totals[i] += t.drops[i];
      total += t.drops[i];
    }
    nlohmann::json row = {{"port", t.port},        {"stage", t.stage}, {"packets_in", t.packets_in},
                          {"packets_out", t.packets_out}, {"drops_total", total}, {"drops", std::move(drops)}};
    if (!t.counters.empty()) {
      nlohmann::json counters = nlohmann::json::object();
      for (const auto& [name, value] : t.counters) counters[name] = value;
      row["counters"] = std::move(counters);
    }
    stage_rows.push_back(std::move(row));
  }
  out["stages"] = std::move(stage_rows);

  nlohmann::json drops = nlohmann::json::object();
  uint64_t drops_total = 0;
  for (size_t i = 0; i < kDropCount; ++i) {
    drops[kDropInfo[i].name] = drop_totals[i];
    drops_total += drop_totals[i];
  }
  out["drops"] = std::move(drops);
  out["drops_total"] = drops_total;

  nlohmann::json pools = nlohmann::json::array();
  for (const auto& mp : runtime.mempools()) {
    unsigned free_count = rte_mempool_avail_count(mp.pool);
    pools.push_back({{"name", mp.pool->name},
                     {"socket", mp.pool->socket_id},
                     {"size", mp.size},
                     {"in_use", mp.size - free_count},
                     {"free", free_count}});
  }
  out["mempools"] = std::move(pools);
  return out;
}

}  // namespace sluice::control
