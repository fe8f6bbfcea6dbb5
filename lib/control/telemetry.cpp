#include "control/telemetry.h"

#include <cctype>
#include <cerrno>
#include <mutex>
#include <shared_mutex>
#include <string>

#include <rte_telemetry.h>

#include "control/flows.h"
#include "control/nat.h"
#include "control/services.h"
#include "control/stats.h"

namespace sluice::control {

namespace {

// The telemetry thread may be inside a callback while the runtime shuts down; the
// exclusive lock in unregister waits for it. DPDK has no way to remove a command.
std::shared_mutex g_runtime_mutex;
const runtime::Runtime* g_runtime = nullptr;

// DPDK 22.11 takes dictionary names of letters, digits, '_' and '/' only: anything
// else (a rule named "web-in", a port "lan-1", an address) is spelled with '_'.
std::string tel_name(const std::string& key) {
  std::string name = key.substr(0, RTE_TEL_MAX_STRING_LEN - 1);
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '/') c = '_';
  return name;
}

void add_value(rte_tel_data* d, const std::string& key, const nlohmann::json& v) {
  std::string name = tel_name(key);
  if (v.is_boolean()) rte_tel_data_add_dict_u64(d, name.c_str(), v.get<bool>() ? 1 : 0);
  else if (v.is_number_unsigned()) rte_tel_data_add_dict_u64(d, name.c_str(), v.get<uint64_t>());
  else if (v.is_number_integer()) rte_tel_data_add_dict_int(d, name.c_str(), static_cast<int>(v.get<int64_t>()));
  else if (v.is_number_float()) rte_tel_data_add_dict_u64(d, name.c_str(), static_cast<uint64_t>(v.get<double>()));
  else if (v.is_string()) rte_tel_data_add_dict_string(d, name.c_str(), v.get<std::string>().substr(0, RTE_TEL_MAX_STRING_LEN - 1).c_str());
}

// One object's scalar members as a flat dict.
void add_flat(rte_tel_data* d, const nlohmann::json& object) {
  for (const auto& [key, value] : object.items())
    if (!value.is_structured()) add_value(d, key, value);
}

// One object's scalar members as a nested dict named `name`.
void add_nested(rte_tel_data* d, const std::string& name, const nlohmann::json& object) {
  rte_tel_data* inner = rte_tel_data_alloc();
  if (inner == nullptr) return;
  rte_tel_data_start_dict(inner);
  add_flat(inner, object);
  if (rte_tel_data_add_dict_container(d, tel_name(name).c_str(), inner, 0) != 0)
    rte_tel_data_free(inner);
}

template <typename Fill>
int with_stats(rte_tel_data* d, Fill fill) {
  std::shared_lock lock(g_runtime_mutex);
  if (g_runtime == nullptr) return -EAGAIN;
  nlohmann::json stats = collect_stats(*g_runtime);
  rte_tel_data_start_dict(d);
  return fill(stats);
}

int stats_cmd(const char*, const char*, rte_tel_data* d) {
  return with_stats(d, [d](const nlohmann::json& stats) {
    uint64_t rx = 0, tx = 0;
    for (const auto& p : stats["ports"]) {
      rx += p["rx_packets"].get<uint64_t>();
      tx += p["tx_packets"].get<uint64_t>();
    }
    add_value(d, "uptime_seconds", stats["uptime_seconds"]);
    add_value(d, "rx_packets", rx);
    add_value(d, "tx_packets", tx);
    add_value(d, "drops_total", stats["drops_total"]);
    for (const auto& mp : stats["mempools"]) {
      add_value(d, "mempool_" + mp["name"].get<std::string>() + "_in_use", mp["in_use"]);
      add_value(d, "mempool_" + mp["name"].get<std::string>() + "_free", mp["free"]);
    }
    for (const auto& [reason, value] : stats["drops"].items()) add_value(d, "drop_" + reason, value);
    return 0;
  });
}

// "/sluice/ports" lists every port; "/sluice/ports,NAME" (or ,ID) shows one.
int ports_cmd(const char*, const char* params, rte_tel_data* d) {
  std::string want = params ? params : "";
  return with_stats(d, [d, &want](const nlohmann::json& stats) {
    for (const auto& p : stats["ports"]) {
      if (want.empty()) {
        add_nested(d, p["name"].get<std::string>(), p);
      } else if (want == p["name"].get<std::string>() || want == std::to_string(p["port_id"].get<unsigned>())) {
        add_flat(d, p);
        for (const auto& [name, value] : p["xstats"].items()) add_value(d, "xstat_" + name, value);
        return 0;
      }
    }
    return want.empty() ? 0 : -EINVAL;
  });
}

// "/sluice/lcores" lists every worker lcore; "/sluice/lcores,N" shows one.
int lcores_cmd(const char*, const char* params, rte_tel_data* d) {
  std::string want = params ? params : "";
  return with_stats(d, [d, &want](const nlohmann::json& stats) {
    for (const auto& lc : stats["lcores"]) {
      std::string id = std::to_string(lc["lcore"].get<unsigned>());
      if (want.empty()) {
        add_nested(d, "lcore_" + id, lc);
      } else if (want == id) {
        add_flat(d, lc);
        return 0;
      }
    }
    return want.empty() ? 0 : -EINVAL;
  });
}

// "/sluice/neighbours": the ARP/ND cache, one nested dict per entry.
int neighbours_cmd(const char*, const char*, rte_tel_data* d) {
  std::shared_lock lock(g_runtime_mutex);
  if (g_runtime == nullptr) return -EAGAIN;
  rte_tel_data_start_dict(d);
  const router::Router* router = g_runtime->router();
  if (!router) return 0;
  nlohmann::json all = router->neighbours_json();
  add_value(d, "count", all["count"]);
  add_value(d, "capacity", all["capacity"]);
  for (const auto& n : all["neighbours"]) {
    nlohmann::json flat = n;
    if (flat["mac"].is_null()) flat["mac"] = "-";
    // Telemetry names allow letters, digits, '_' and '/' (tel_name): the address stays in the value.
    add_nested(d, n["port"].get<std::string>() + "_" + n["address"].get<std::string>(), flat);
  }
  return 0;
}

// "/sluice/flows[,key=value,...]": a page of flows (the /flows parameters), one nested
// dict per flow; "next_cursor" continues.
int flows_cmd(const char*, const char* params, rte_tel_data* d) {
  std::shared_lock lock(g_runtime_mutex);
  if (g_runtime == nullptr) return -EAGAIN;
  FlowQuery query;
  std::string error;
  if (params && !parse_query_list(params, query, error)) return -EINVAL;
  if (!query.count("limit")) query["limit"] = "20";  // a telemetry reply holds about 16 KiB
  nlohmann::json out;
  int status = 0;
  rte_tel_data_start_dict(d);
  if (!list_flows(*g_runtime, query, out, error, status)) {
    add_value(d, "error", error);
    return 0;
  }
  add_value(d, "count", out["count"]);
  add_value(d, "active", out["active"]);
  add_value(d, "next_cursor", out["next_cursor"].is_null() ? std::string("-") : out["next_cursor"].get<std::string>());
  unsigned i = 0;
  for (const auto& f : out["flows"]) add_nested(d, "flow_" + std::to_string(i++), f);
  return 0;
}

// "/sluice/flows_flush[,key=value,...]": removes the matching flows.
int flows_flush_cmd(const char*, const char* params, rte_tel_data* d) {
  std::shared_lock lock(g_runtime_mutex);
  if (g_runtime == nullptr) return -EAGAIN;
  FlowQuery query;
  std::string error;
  if (params && !parse_query_list(params, query, error)) return -EINVAL;
  nlohmann::json out;
  int status = 0;
  rte_tel_data_start_dict(d);
  if (!flush_flows(*g_runtime, query, out, error, status)) add_value(d, "error", error);
  else add_value(d, "flushed", out["flushed"]);
  return 0;
}

// "/sluice/firewall": rule counters and the flow totals.
int firewall_cmd(const char*, const char*, rte_tel_data* d) {
  return with_stats(d, [d](const nlohmann::json& stats) {
    if (stats.contains("flows")) {
      nlohmann::json totals = stats["flows"];
      totals.erase("lcores");
      add_flat(d, totals);
    }
    if (stats.contains("firewall")) {
      add_value(d, "generation", stats["firewall"]["generation"]);
      for (const auto& rule : stats["firewall"]["rules"]) add_nested(d, "rule_" + rule["name"].get<std::string>(), rule);
    }
    return 0;
  });
}

// "/sluice/nat": NAT totals, one nested dict per rule and per outside address.
int nat_cmd(const char*, const char*, rte_tel_data* d) {
  std::shared_lock lock(g_runtime_mutex);
  if (g_runtime == nullptr) return -EAGAIN;
  rte_tel_data_start_dict(d);
  const nlohmann::json nat = nat_json(*g_runtime);
  if (nat.is_null()) {
    add_value(d, "error", std::string("no port runs the nat stage"));
    return 0;
  }
  add_flat(d, nat);
  add_nested(d, "reassembly", nat["reassembly"]);
  for (const auto& rule : nat["rules"]) add_nested(d, "rule_" + rule["name"].get<std::string>(), rule);
  for (const auto& a : nat["addresses"]) add_nested(d, "address_" + a["address"].get<std::string>(), a);
  return 0;
}

// "/sluice/services" lists every service, one nested dict each; "/sluice/services,NAME"
// shows one with a nested dict per backend (its probe counters as probe_*).
int services_cmd(const char*, const char* params, rte_tel_data* d) {
  std::string want = params ? params : "";
  std::shared_lock lock(g_runtime_mutex);
  if (g_runtime == nullptr) return -EAGAIN;
  rte_tel_data_start_dict(d);
  const nlohmann::json services = services_json(*g_runtime);
  if (services.is_null()) {
    add_value(d, "error", std::string("no services configured"));
    return 0;
  }
  for (const auto& s : services) {
    if (want.empty()) {
      nlohmann::json row = s;
      uint64_t up = 0;
      for (const auto& b : s["backends"]) up += b["state"] == "up";
      row["backends"] = s["backends"].size();
      row["backends_up"] = up;
      add_nested(d, "service_" + s["name"].get<std::string>(), row);
    } else if (want == s["name"].get<std::string>()) {
      add_flat(d, s);
      for (const auto& b : s["backends"]) {
        nlohmann::json row = b;
        row.erase("maglev_share");  // a fraction: telemetry would print 0 (maglev_entries says it)
        if (b.contains("probe"))
          for (const auto& [key, value] : b["probe"].items()) row["probe_" + key] = value;
        add_nested(d, "backend_" + b["id"].get<std::string>(), row);
      }
      return 0;
    }
  }
  return want.empty() ? 0 : -EINVAL;
}

}  // namespace

void register_telemetry(const runtime::Runtime& runtime) {
  {
    std::unique_lock lock(g_runtime_mutex);
    g_runtime = &runtime;
  }
  static bool registered = false;
  if (registered) return;
  registered = true;
  rte_telemetry_register_cmd("/sluice/stats", stats_cmd,
                             "Sluice totals: packets, drops by reason, mempool use. Takes no parameters");
  rte_telemetry_register_cmd("/sluice/ports", ports_cmd,
                             "Sluice ports with stats and link. Parameters: optional port name or id");
  rte_telemetry_register_cmd("/sluice/neighbours", neighbours_cmd,
                             "Sluice ARP/ND cache: address, port, MAC, state, age. Takes no parameters");
  rte_telemetry_register_cmd("/sluice/lcores", lcores_cmd,
                             "Sluice worker lcores: polls, packets, cycles. Parameters: optional lcore id");
  rte_telemetry_register_cmd("/sluice/flows", flows_cmd,
                             "Sluice tracked flows. Parameters: key=value,... (address, port, protocol, state, zone, "
                             "limit, cursor)");
  rte_telemetry_register_cmd("/sluice/flows_flush", flows_flush_cmd,
                             "Removes tracked flows. Parameters: key=value,... (address, port, protocol, state, zone)");
  rte_telemetry_register_cmd("/sluice/firewall", firewall_cmd,
                             "Sluice flow totals and firewall rule counters. Takes no parameters");
  rte_telemetry_register_cmd("/sluice/nat", nat_cmd,
                             "Sluice NAT: mappings, rule counters, outside addresses' ports in use. Takes no parameters");
  rte_telemetry_register_cmd("/sluice/services", services_cmd,
                             "Sluice load-balanced services and their backends. Parameters: optional service name");
}

void unregister_telemetry() {
  std::unique_lock lock(g_runtime_mutex);
  g_runtime = nullptr;
}

}  // namespace sluice::control
