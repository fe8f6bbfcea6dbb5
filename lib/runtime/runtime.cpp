#include "runtime/runtime.h"

#include <algorithm>
#include <bit>
#include <map>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <spdlog/spdlog.h>

#include "pipeline/packet_meta.h"
#include "router/router.h"

namespace sluice::runtime {

Runtime::~Runtime() {
  if (launched_) stop_workers();
  if (eal_ready_) {
    for (auto& port : ports_) stop_and_close(*port);
    ports_.clear();
    workers_.clear();
    router_.reset();
    for (auto& pool : mempools_) rte_mempool_free(pool.pool);
    mempools_.clear();
    rte_eal_cleanup();
  }
}

bool Runtime::init_eal(const std::vector<std::string>& eal_args, std::string& error) {
  std::vector<std::string> args_copy = eal_args;  // rte_eal_init may permute argv
  std::vector<char*> argv;
  for (auto& arg : args_copy) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::string joined;
  for (const auto& arg : eal_args) joined += (joined.empty() ? "" : " ") + arg;
  spdlog::info("EAL arguments: {}", joined);
  int rc = rte_eal_init(static_cast<int>(argv.size() - 1), argv.data());
  if (rc < 0) {
    error = std::string("EAL initialisation failed: ") + rte_strerror(rte_errno) +
            " (see the EAL log above; hugepages missing? try `-- --no-huge`)";
    return false;
  }
  eal_ready_ = true;
  start_tsc_ = rte_rdtsc();
  if (!pipeline::register_packet_meta()) {
    error = std::string("cannot register the packet metadata mbuf field: ") + rte_strerror(rte_errno);
    return false;
  }
  return true;
}

unsigned Runtime::auto_mbuf_count(const config::Config& config) {
  uint64_t needed = 0;
  for (const auto& port : config.ports)
    needed += uint64_t(port.rx_queues) * port.rx_descriptors + uint64_t(port.tx_queues) * port.tx_descriptors;
  // Each worker can hold a burst in flight plus a full TX buffer per port.
  needed += config.workers.size() * (config::kMaxBurst + config.ports.size() * pipeline::kTxBufferSize);
  // The router's rings per worker (punted and injected packets). Its resolution queues
  // stop taking mbufs when a quarter of the pool is left (Router::handle_resolve).
  bool routed = std::any_of(config.ports.begin(), config.ports.end(), [](const auto& p) { return p.routed(); });
  if (routed) needed += config.workers.size() * (router::kPuntRingSize + router::kInjectRingSize);
  // Per-lcore caches can hold up to 1.5x cache_size each.
  needed += config.eal.lcores.size() * (config.mempool.cache_size * 3 / 2);
  needed = std::max<uint64_t>(needed, 8191);
  return static_cast<unsigned>(std::bit_ceil(needed + 1) - 1);
}

bool Runtime::setup(std::string& error) {
  // Every EAL-visible lcore the config names must exist (EAL checked -l already).
  for (const auto& w : config_.workers) {
    if (!rte_lcore_is_enabled(w.lcore)) {
      error = "workers: lcore " + std::to_string(w.lcore) + " is not enabled in EAL";
      return false;
    }
    if (w.lcore == rte_get_main_lcore()) {
      error = "workers: lcore " + std::to_string(w.lcore) + " is EAL's main lcore (the control thread); check -- overrides";
      return false;
    }
  }

  // One pool on the main lcore's socket. (Per-socket pools come with multi-socket hosts.)
  const unsigned mbufs = config_.mempool.mbufs ? config_.mempool.mbufs : auto_mbuf_count(config_);
  const int socket = static_cast<int>(rte_socket_id());
  const std::string pool_name = "sluice_mbuf_s" + std::to_string(socket < 0 ? 0 : socket);
  rte_mempool* pool = rte_pktmbuf_pool_create(pool_name.c_str(), mbufs, config_.mempool.cache_size, 0,
                                              static_cast<uint16_t>(config_.mempool.data_room), socket);
  if (pool == nullptr) {
    error = "mempool " + pool_name + ": cannot allocate " + std::to_string(mbufs) + " mbufs of " +
            std::to_string(config_.mempool.data_room) + " bytes: " + rte_strerror(rte_errno) +
            " (raise eal.memory_mb or reserve more hugepages)";
    return false;
  }
  mempools_.push_back({pool, mbufs});
  spdlog::info("mempool {}: {} mbufs, data room {}, cache {}", pool_name, mbufs, config_.mempool.data_room,
               config_.mempool.cache_size);

  std::map<std::string, uint16_t> port_ids;
  for (size_t i = 0; i < config_.ports.size(); ++i) {
    auto port = std::make_unique<Port>();
    port->config = &config_.ports[i];
    port->name = port->config->name;
    if (!find_port(*port, error)) return false;
    port_ids[port->name] = port->port_id;
    ports_.push_back(std::move(port));
  }
  for (size_t i = 0; i < ports_.size(); ++i)
    if (!configure_and_start(*ports_[i], pool, "ports[" + std::to_string(i) + "]", error)) return false;

  if (config_.routed()) {
    l3::RouteTable::PortMacs macs{};
    for (const auto& port : ports_) macs[port->port_id] = port->mac();
    try {
      router_ = std::make_unique<router::Router>(config_, pool, static_cast<unsigned>(config_.workers.size()));
    } catch (const std::exception& e) {
      error = std::string("router: ") + e.what() + " (raise eal.memory_mb)";
      return false;
    }
    if (!router_->start(port_ids, macs, error)) return false;
  }

  // Worker i owns TX queue i on every port: no TX queue is ever shared.
  for (size_t w = 0; w < config_.workers.size(); ++w) {
    const config::WorkerConfig& wc = config_.workers[w];
    auto worker = std::make_unique<Worker>(wc.lcore, static_cast<uint16_t>(config_.burst_size));
    for (const auto& port : ports_) worker->add_tx_queue(port->port_id, static_cast<uint16_t>(w));
    pipeline::L3Context l3;
    if (router_) {
      l3 = router_->context_for(static_cast<unsigned>(w));
      worker->attach_router(router_->inject_ring(static_cast<unsigned>(w)), &router_->qsbr(), static_cast<unsigned>(w));
    }
    for (const auto& rx : wc.rx) {
      const config::PortConfig& pc = *config_.find_port(rx.port);
      uint16_t port_id = port_ids.at(rx.port);
      worker->add_rx_queue(port_id, static_cast<uint16_t>(rx.queue),
                           pipeline::build_pipeline(pc, port_ids, &worker->tx_by_port(), router_ ? &l3 : nullptr));
    }
    workers_.push_back(std::move(worker));
  }
  return true;
}

void Runtime::launch() {
  for (auto& worker : workers_) {
    int rc = rte_eal_remote_launch(Worker::launch, worker.get(), worker->lcore_id());
    if (rc != 0) spdlog::error("lcore {}: cannot launch worker: {}", worker->lcore_id(), rte_strerror(-rc));
    else spdlog::info("lcore {}: worker polling {} rx queue(s)", worker->lcore_id(), worker->pipelines().size());
  }
  launched_ = true;
  if (router_) router_->announce();
}

void Runtime::poll_links() {
  for (auto& port : ports_) poll_link(*port);
}

void Runtime::stop_workers() {
  if (!launched_) return;
  for (auto& worker : workers_) worker->stop();
  rte_eal_mp_wait_lcore();
  launched_ = false;
}

bool Runtime::shutdown() {
  stop_workers();
  if (router_) router_->drain();
  for (auto& port : ports_) {
    stop_and_close(*port);
  }
  bool clean = true;
  for (const auto& pool : mempools_) {
    unsigned free_count = rte_mempool_avail_count(pool.pool);
    if (free_count != pool.size) {
      spdlog::error("mempool {}: {} mbufs not returned ({} of {} free)", pool.pool->name, pool.size - free_count,
                    free_count, pool.size);
      clean = false;
    } else {
      spdlog::info("mempool {}: all {} mbufs returned", pool.pool->name, pool.size);
    }
  }
  return clean;
}

}  // namespace sluice::runtime
