// "workers": "auto" (every port's RX queues spread over the lcores besides the main one)
// or which lcore polls which queue; checked against eal.lcores and the ports.
#include <algorithm>
#include <map>

#include "config/sections.h"

namespace sluice::config::detail {

void read_workers(const ObjectReader& top, Config& config, std::vector<std::string>& errors) {
  if (!top.has("workers")) return;
  const json& v = top.raw("workers");
  if (v.is_string()) {
    if (v.get<std::string>() != "auto") errors.push_back("workers: must be \"auto\" or an array of workers, got " + show(v));
    return;
  }
  if (!v.is_array() || v.empty()) {
    errors.push_back("workers: must be \"auto\" or a non-empty array of workers, got " + show(v));
    return;
  }
  config.workers_auto = false;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string path = "workers[" + std::to_string(i) + "]";
    if (!v[i].is_object()) {
      errors.push_back(path + ": must be an object {\"lcore\": N, \"rx\": [...]}, got " + type_name(v[i]));
      continue;
    }
    ObjectReader worker(v[i], path, errors);
    worker.allow_only({"lcore", "rx"});
    worker.required("lcore");
    worker.required("rx");
    WorkerConfig out;
    out.lcore = ~0u;
    worker.uint("lcore", out.lcore, 0, kMaxLcore);
    if (worker.has("rx")) {
      const json& rx = worker.raw("rx");
      if (!rx.is_array() || rx.empty()) {
        worker.error("rx", "must be a non-empty array of {\"port\": NAME, \"queue\": N}, got " + show(rx));
      } else {
        for (size_t j = 0; j < rx.size(); ++j) {
          std::string rx_path = worker.at("rx") + "[" + std::to_string(j) + "]";
          if (!rx[j].is_object()) {
            errors.push_back(rx_path + ": must be an object {\"port\": NAME, \"queue\": N}, got " + type_name(rx[j]));
            continue;
          }
          ObjectReader binding(rx[j], rx_path, errors);
          binding.allow_only({"port", "queue"});
          binding.required("port");
          RxBinding b;
          binding.string("port", b.port);
          binding.uint("queue", b.queue, 0, kMaxQueues - 1);
          out.rx.push_back(b);
        }
      }
    }
    config.workers.push_back(out);
  }
}

void resolve_workers(Config& config, std::vector<std::string>& errors) {
  const auto& lcores = config.eal.lcores;
  if (lcores.empty()) return;  // already reported
  std::vector<unsigned> worker_lcores;
  for (unsigned l : lcores)
    if (l != config.eal.main_lcore) worker_lcores.push_back(l);

  if (config.workers_auto) {
    if (worker_lcores.empty()) {
      errors.push_back("eal.lcores: need at least two lcores (the main lcore runs the control thread), got '" +
                       config.eal.lcores_spec + "'");
      return;
    }
    // Round-robin every (port, queue) over the worker lcores.
    size_t n = 0;
    std::vector<WorkerConfig> workers;
    for (unsigned l : worker_lcores) workers.push_back(WorkerConfig{l, {}});
    for (const auto& port : config.ports)
      for (unsigned q = 0; q < port.rx_queues; ++q) workers[n++ % workers.size()].rx.push_back(RxBinding{port.name, q});
    std::erase_if(workers, [](const WorkerConfig& w) { return w.rx.empty(); });
    config.workers = workers;
  } else {
    std::map<unsigned, size_t> seen_lcores;
    std::map<std::pair<std::string, unsigned>, size_t> owner;
    for (size_t i = 0; i < config.workers.size(); ++i) {
      const auto& worker = config.workers[i];
      std::string path = "workers[" + std::to_string(i) + "]";
      if (worker.lcore != ~0u) {
        if (worker.lcore == config.eal.main_lcore)
          errors.push_back(path + ".lcore: " + std::to_string(worker.lcore) +
                           " is the main lcore, which runs the control thread");
        else if (std::find(lcores.begin(), lcores.end(), worker.lcore) == lcores.end())
          errors.push_back(path + ".lcore: " + std::to_string(worker.lcore) + " is not in eal.lcores '" +
                           config.eal.lcores_spec + "'");
        if (!seen_lcores.emplace(worker.lcore, i).second)
          errors.push_back(path + ".lcore: lcore " + std::to_string(worker.lcore) + " is already used by workers[" +
                           std::to_string(seen_lcores[worker.lcore]) + "]");
      }
      for (size_t j = 0; j < worker.rx.size(); ++j) {
        const auto& b = worker.rx[j];
        std::string rx_path = path + ".rx[" + std::to_string(j) + "]";
        const PortConfig* port = config.find_port(b.port);
        if (b.port.empty()) continue;
        if (!port) {
          errors.push_back(rx_path + ".port: unknown port '" + b.port + "'");
          continue;
        }
        if (b.queue >= port->rx_queues) {
          errors.push_back(rx_path + ".queue: port '" + b.port + "' has " + std::to_string(port->rx_queues) +
                           " rx queue(s), got queue " + std::to_string(b.queue));
          continue;
        }
        auto [it, fresh] = owner.emplace(std::make_pair(b.port, b.queue), i);
        if (!fresh)
          errors.push_back(rx_path + ": queue " + std::to_string(b.queue) + " of port '" + b.port +
                           "' is already polled by workers[" + std::to_string(it->second) + "]");
      }
    }
    for (size_t i = 0; i < config.ports.size(); ++i)
      for (unsigned q = 0; q < config.ports[i].rx_queues; ++q)
        if (!config.ports[i].name.empty() && !owner.count({config.ports[i].name, q}))
          errors.push_back("ports[" + std::to_string(i) + "].rx_queues: queue " + std::to_string(q) +
                           " is polled by no worker");
  }

  // Every worker owns one TX queue on every port (queue index = worker index).
  unsigned worker_count = static_cast<unsigned>(config.workers.size());
  for (size_t i = 0; i < config.ports.size(); ++i) {
    auto& port = config.ports[i];
    if (port.tx_queues == 0) port.tx_queues = std::max(1u, worker_count);
    else if (port.tx_queues < worker_count)
      errors.push_back("ports[" + std::to_string(i) + "].tx_queues: must be at least the number of workers (" +
                       std::to_string(worker_count) + "), got " + std::to_string(port.tx_queues));
  }
}

void read_polling(const ObjectReader& top, PollingConfig& out) {
  std::optional<ObjectReader> storage;
  const ObjectReader* p = top.object("polling", storage);
  if (!p) return;
  p->allow_only({"idle", "sleep_after_polls", "max_sleep_us"});
  std::string idle;
  p->one_of("idle", idle, {"busy", "sleep"});
  if (!idle.empty()) out.sleep_when_idle = idle == "sleep";
  p->uint("sleep_after_polls", out.sleep_after_polls, 1, 100000000);
  p->uint("max_sleep_us", out.max_sleep_us, 1, 10000);
}

json polling_json(const PollingConfig& polling) {
  return {{"idle", polling.sleep_when_idle ? "sleep" : "busy"},
          {"sleep_after_polls", polling.sleep_after_polls},
          {"max_sleep_us", polling.max_sleep_us}};
}

json workers_json(const std::vector<WorkerConfig>& workers) {
  json out = json::array();
  for (const auto& worker : workers) {
    json w = {{"lcore", worker.lcore}, {"rx", json::array()}};
    for (const auto& b : worker.rx) w["rx"].push_back({{"port", b.port}, {"queue", b.queue}});
    out.push_back(w);
  }
  return out;
}

}  // namespace sluice::config::detail
