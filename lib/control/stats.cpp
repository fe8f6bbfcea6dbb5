#include "control/stats.h"

#include <mutex>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "control/nat.h"
#include "control/services.h"

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
  if (!port.link_known.load()) j["link_known"] = false;
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

// Connection tracking, per worker and in total (nf_conntrack_count / _max and the
// conntrack -S counters).
nlohmann::json flows_json(const runtime::Runtime& runtime) {
  const auto& contexts = runtime.flow_contexts();
  nlohmann::json lcores = nlohmann::json::array();
  uint64_t active = 0, max = 0, memory = 0;
  std::array<uint64_t, flow::kStateSlots> states{};
  uint64_t created = 0, expired = 0, evicted = 0, flushed = 0, reopened = 0;
  for (size_t w = 0; w < contexts.size(); ++w) {
    const flow::FlowContext& ctx = *contexts[w];
    const flow::FlowCounters& c = ctx.counters();
    nlohmann::json by_state = nlohmann::json::object();
    for (unsigned slot = 0; slot < flow::kStateSlots; ++slot) {
      const uint64_t n = c.by_state[slot].get();
      states[slot] += n;
      if (n) by_state[std::string(flow::state_slot_name(slot))] = n;
    }
    nlohmann::json row = {{"lcore", runtime.workers()[w]->lcore_id()},
                          {"active", ctx.active()},
                          {"max", ctx.capacity()},
                          {"active_ipv4", ctx.table4().active()},
                          {"max_ipv4", ctx.table4().capacity()},
                          {"active_ipv6", ctx.table6() ? ctx.table6()->active() : 0},
                          {"max_ipv6", ctx.table6() ? ctx.table6()->capacity() : 0},
                          {"active_nat", ctx.table4().pairs_active()},
                          {"max_nat", ctx.table4().pair_capacity()},
                          {"unmapped", c.unmapped.get()},
                          {"created", c.created.get()},
                          {"expired", c.expired.get()},
                          {"evicted", c.evicted.get()},
                          {"flushed", c.flushed.get()},
                          {"reopened", c.reopened.get()},
                          {"states", std::move(by_state)}};
    active += ctx.active();
    max += ctx.capacity();
    memory += ctx.memory_bytes();
    created += c.created.get();
    expired += c.expired.get();
    evicted += c.evicted.get();
    flushed += c.flushed.get();
    reopened += c.reopened.get();
    lcores.push_back(std::move(row));
  }
  // Software steering: packets each worker handed to each other one.
  nlohmann::json handoffs = nlohmann::json::array();
  if (runtime.software_steering()) {
    const auto& workers = runtime.workers();
    for (size_t from = 0; from < workers.size(); ++from) {
      std::vector<uint64_t> to(workers.size(), 0);
      for (const auto& p : workers[from]->pipelines())
        for (const auto& stage : p->stages())
          if (stage->name() == "steer")
            for (size_t w = 0; w < workers.size(); ++w)
              to[w] += static_cast<const pipeline::SteerStage&>(*stage).handed_to(static_cast<unsigned>(w));
      for (size_t w = 0; w < workers.size(); ++w)
        if (w != from)
          handoffs.push_back({{"from", workers[from]->lcore_id()}, {"to", workers[w]->lcore_id()}, {"packets", to[w]}});
    }
  }
  nlohmann::json total_states = nlohmann::json::object();
  for (unsigned slot = 0; slot < flow::kStateSlots; ++slot)
    total_states[std::string(flow::state_slot_name(slot))] = states[slot];
  return {{"active", active},     {"max", max},          {"created", created},   {"expired", expired},
          {"evicted", evicted},   {"flushed", flushed},  {"reopened", reopened}, {"memory_bytes", memory},
          {"entry_bytes",
           {{"ipv4", sizeof(flow::FlowEntry4)}, {"ipv6", sizeof(flow::FlowEntry6)}, {"nat_ipv4", sizeof(flow::NatPair4)}}},
          {"steering", runtime.software_steering() ? "software"
                       : runtime.workers().size() > 1 ? "hardware"
                                                      : "none"},
          {"states", std::move(total_states)}, {"lcores", std::move(lcores)}, {"handoffs", std::move(handoffs)}};
}

const char* action_name(config::FirewallAction a) {
  switch (a) {
    case config::FirewallAction::Accept: return "accept";
    case config::FirewallAction::Drop: return "drop";
    default: return "reject";
  }
}

// Rule counters summed over the workers that have caught up with the current rules.
nlohmann::json firewall_json(const runtime::Runtime& runtime) {
  return runtime.with_policy([&](const firewall::Policy* policy) -> nlohmann::json {
    if (!policy || !policy->rules) return nullptr;
    const firewall::Ruleset& rules = *policy->rules;
    nlohmann::json list = nlohmann::json::array();
    for (uint32_t i = 1; i <= rules.rule_count(); ++i) {
      uint64_t packets = 0, bytes = 0;
      for (const auto& ctx : runtime.flow_contexts()) {
        if (ctx->rule_generation() != policy->generation) continue;  // still counting older rules
        packets += ctx->rule_counters()[i].packets.get();
        bytes += ctx->rule_counters()[i].bytes.get();
      }
      list.push_back({{"index", i},
                      {"name", rules.rule(i).name},
                      {"action", action_name(rules.rule(i).action)},
                      {"packets", packets},
                      {"bytes", bytes}});
    }
    return {{"generation", policy->generation}, {"rules", std::move(list)}};
  });
}

}  // namespace

double uptime_seconds(const runtime::Runtime& runtime) {
  return double(rte_rdtsc() - runtime.start_tsc()) / double(rte_get_tsc_hz());
}

nlohmann::json health_verdict(const std::vector<std::string>& ports_down) {
  if (ports_down.empty()) return {{"status", "ok"}};
  return {{"status", "degraded"}, {"ports_down", ports_down}};
}

nlohmann::json health_json(const runtime::Runtime& runtime) {
  std::vector<std::string> down;
  for (const auto& port : runtime.ports())
    if (!port->link_up.load(std::memory_order_relaxed)) down.push_back(port->name);
  nlohmann::json out = health_verdict(down);
  out["uptime_seconds"] = uptime_seconds(runtime);
  out["version"] = SLUICE_VERSION;
  return out;
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
                      {"idle_sleeps", c.idle_sleeps.get()},
                      {"idle_sleep_us", c.idle_sleep_us.get()},
                      {"inject_dropped", worker->injected_dropped()},
                      {"handoff_received", worker->handoff_received()},
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

  // NAT's reassembly tables, per worker: fragments dropped when their datagram timed out.
  if (!runtime.nat_contexts().empty()) {
    StageTotals& t = totals_for(stages, "nat", "reassembly");
    for (const auto& ctx : runtime.nat_contexts()) {
      t.drops[static_cast<size_t>(Drop::ReassemblyTimeout)] += ctx->reassembler().timeouts();
      t.drops[static_cast<size_t>(Drop::Shutdown)] += ctx->reassembler().flushed();
    }
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

  if (!runtime.flow_contexts().empty()) {
    out["flows"] = flows_json(runtime);
    nlohmann::json fw = firewall_json(runtime);
    if (!fw.is_null()) out["firewall"] = std::move(fw);
    nlohmann::json nat = nat_json(runtime);
    if (!nat.is_null()) out["nat"] = std::move(nat);
  }
  nlohmann::json services = services_json(runtime);
  if (!services.is_null()) out["services"] = std::move(services);

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
