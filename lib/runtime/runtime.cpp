#include "runtime/runtime.h"

#include <chrono>

#include <algorithm>
#include <bit>
#include <map>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <fmt/format.h>
#include <rte_mbuf.h>
#include <rte_pdump.h>
#include <spdlog/spdlog.h>

#include "pipeline/packet_meta.h"
#include "router/router.h"
#include "runtime/af_xdp.h"
#include "runtime/eal.h"

namespace sluice::runtime {

Runtime::~Runtime() {
  if (launched_) stop_workers();
  if (eal_ready_) {
    for (auto& port : ports_) stop_and_close(*port);
    ports_.clear();
    workers_.clear();
    lb_.reset();  // it holds the router's probe sink
    router_.reset();
    free_handoff_rings();
    nat_log_.reset();
    nat_contexts_.clear();  // before the flow tables they observe
    nat_policy_.reset();
    policy_.reset();
    flow_contexts_.clear();
    qsbr_.reset();
    if (pdump_ready_) rte_pdump_uninit();
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
  // The one refusal DPDK explains only in a log line, with rte_errno unset: said first.
  if (std::string in_use = eal_prefix_in_use(eal_args); !in_use.empty()) {
    error = std::move(in_use);
    return false;
  }
  // EAL's own words for these are "Invalid 'command line' arguments" and a page of usage,
  // or a mapping failure far down its log: the cause and the fix are said first.
  if (std::string lcores = eal_lcores_unusable(eal_args, usable_cpus()); !lcores.empty()) {
    error = std::move(lcores);
    return false;
  }
  if (std::string huge = eal_hugepages_missing(eal_args); !huge.empty()) {
    error = std::move(huge);
    return false;
  }
  int rc = rte_eal_init(static_cast<int>(argv.size() - 1), argv.data());
  if (rc < 0) {
    // Some failures leave rte_errno at 0, whose text would be "Success".
    error = std::string("EAL initialisation failed") + (rte_errno ? std::string(": ") + rte_strerror(rte_errno) : "") +
            " (see the EAL log above; hugepages missing? try `-- --no-huge`)";
    return false;
  }
  eal_ready_ = true;
  start_tsc_ = rte_rdtsc();
  if (!pipeline::register_packet_meta()) {
    error = std::string("cannot register the packet metadata mbuf field: ") + rte_strerror(rte_errno);
    return false;
  }
  init_pdump(eal_args);
  return true;
}

// dpdk-dumpcap (and dpdk-pdump) are secondary processes that ask this one, over EAL's
// IPC, to copy a port's packets to them: costs nothing until one asks. Without shared
// memory (--in-memory, --no-shconf) no secondary can attach; that is said, not fatal.
void Runtime::init_pdump(const std::vector<std::string>& eal_args) {
  const std::string prefix = eal_file_prefix(eal_args);
  for (const auto& arg : eal_args)
    if (arg == "--in-memory" || arg == "--no-shconf") {
      spdlog::info("pdump: off ({} leaves no shared memory for dpdk-dumpcap to attach to)", arg);
      return;
    }
  if (rte_pdump_init() != 0) {
    spdlog::warn("pdump: cannot initialise ({}): dpdk-dumpcap will not attach", rte_strerror(rte_errno));
    return;
  }
  pdump_ready_ = true;
  spdlog::info("pdump: ready: dpdk-dumpcap --file-prefix {} -i PORT -w FILE.pcapng captures a port", prefix);
}

unsigned Runtime::auto_mbuf_count(const config::Config& config) {
  uint64_t needed = 0;
  for (const auto& port : config.ports) {
    // net_af_xdp fills each RX queue's fill ring with its own count, not rx_descriptors.
    const uint64_t rx_held = port.device.rfind("net_af_xdp", 0) == 0 ? kAfXdpFillRingMbufs : port.rx_descriptors;
    needed += uint64_t(port.rx_queues) * rx_held + uint64_t(port.tx_queues) * port.tx_descriptors;
  }
  // Each worker can hold a burst in flight plus a full TX buffer per port.
  needed += config.workers.size() * (config::kMaxBurst + config.ports.size() * pipeline::kTxBufferSize);
  // The router's rings per worker (punted and injected packets). Its resolution queues
  // stop taking mbufs when a quarter of the pool is left (Router::handle_resolve).
  bool routed = std::any_of(config.ports.begin(), config.ports.end(), [](const auto& p) { return p.routed(); });
  if (routed) needed += config.workers.size() * (router::kPuntRingSize + router::kInjectRingSize);
  // Software steering's rings between every pair of workers.
  if (config.tracked() && config.workers.size() > 1)
    needed += config.workers.size() * (config.workers.size() - 1) * kHandoffRingSize;
  // NAT's reassembly: every worker's table full of fragments.
  if (config.translated())
    needed += config.workers.size() * uint64_t(config.nat.fragments.max_datagrams) * config.nat.fragments.max_fragments;
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

  std::map<std::string, uint16_t>& port_ids = port_ids_;
  for (size_t i = 0; i < config_.ports.size(); ++i) {
    auto port = std::make_unique<Port>();
    port->config = &config_.ports[i];
    port->name = port->config->name;
    port->kernel_iface = port->config->kernel_iface();
    if (!find_port(*port, error)) return false;
    port_ids[port->name] = port->port_id;
    ports_.push_back(std::move(port));
  }
  for (size_t i = 0; i < ports_.size(); ++i) {
    const std::set<int> xdp_sockets_before = af_xdp_socket_fds();
    if (!configure_and_start(*ports_[i], pool, "ports[" + std::to_string(i) + "]", error)) return false;
    if (is_af_xdp(*ports_[i])) log_af_xdp_modes(*ports_[i], xdp_sockets_before);
    if (ports_[i]->port_id < RTE_MAX_ETHPORTS) tx_offloads_[ports_[i]->port_id] = ports_[i]->tx_offloads;
  }

  const unsigned worker_count = static_cast<unsigned>(config_.workers.size());
  if (config_.routed() || config_.tracked()) {
    try {
      qsbr_ = std::make_unique<l3::Qsbr>(worker_count);
    } catch (const std::exception&) {
      error = "cannot allocate the RCU state for " + std::to_string(worker_count) + " workers (raise eal.memory_mb)";
      return false;
    }
  }
  if (config_.routed()) {
    l3::RouteTable::PortMacs macs{};
    for (const auto& port : ports_) macs[port->port_id] = port->mac();
    try {
      router_ = std::make_unique<router::Router>(config_, pool, worker_count, qsbr_.get());
    } catch (const std::exception& e) {
      error = std::string("router: ") + e.what() + " (raise eal.memory_mb)";
      return false;
    }
    if (!router_->start(port_ids, macs, error)) return false;
  }

  // Connection tracking: the policy (firewall rules, timeouts) published once now and
  // again on every reload; one flow table pair per worker, memory reserved up front.
  if (config_.tracked()) {
    policy_ = std::make_unique<l3::Published<firewall::Policy>>(*qsbr_);
    std::unique_ptr<firewall::Policy> policy = firewall::Policy::build(config_, port_ids, 1, error);
    if (!policy) return false;
    if (policy->rules)
      spdlog::info("firewall: {} rule(s), default policy {}", policy->rules->rule_count(),
                   config_.firewall.default_policy == config::FirewallAction::Accept ? "accept" : "drop");
    else
      spdlog::info("conntrack: no firewall section: tracking only, every connection accepted");
    policy_->publish(std::move(policy));
    for (unsigned w = 0; w < worker_count; ++w) {
      const unsigned lcore = config_.workers[w].lcore;
      const int worker_socket = static_cast<int>(rte_lcore_to_socket_id(lcore));
      const uint32_t nat_capacity = config_.translated() ? config_.nat.capacity : 0;
      auto flows = flow::FlowContext::create(w, config_.conntrack.capacity, config_.conntrack.capacity_ipv6,
                                             worker_socket, error, nat_capacity);
      if (!flows) return false;
      if (nat_capacity)
        spdlog::info("conntrack: lcore {}: {} IPv4 + {} IPv6 flows + {} NAT flows, {} MiB reserved", lcore,
                     config_.conntrack.capacity, config_.conntrack.capacity_ipv6, nat_capacity,
                     flows->memory_bytes() >> 20);
      else
        spdlog::info("conntrack: lcore {}: {} IPv4 + {} IPv6 flows, {} MiB reserved", lcore,
                     config_.conntrack.capacity, config_.conntrack.capacity_ipv6, flows->memory_bytes() >> 20);
      flow_contexts_.push_back(std::move(flows));
      const auto& limit = config_.firewall.reject_limit;
      reject_buckets_.push_back(std::make_unique<l3::TokenBucket>(limit.rate_per_second, limit.burst, rte_get_tsc_hz()));
    }
  }

  // NAT: its rules published like the firewall's, and each worker's allocator,
  // mappings and reassembly table beside its flow tables.
  if (config_.translated()) {
    nat_policy_ = std::make_unique<l3::Published<nat::Policy>>(*qsbr_);
    std::unique_ptr<nat::Policy> nat_policy =
        nat::Policy::build(config_, port_ids, worker_count, 1, nat_registry_, error);
    if (!nat_policy) return false;
    spdlog::info("nat: {} source rule(s), {} port forward(s), {} NPTv6 mapping(s), {} outside address(es); "
                 "{} NAT flows per worker",
                 nat_policy->snat().size(), nat_policy->dnat().size(), nat_policy->nptv6().size(),
                 nat_policy->outside_addresses().size(), config_.nat.capacity);
    nat_policy_->publish(std::move(nat_policy));
    if (!config_.nat.log_file.empty()) {
      nat_log_ = nat::EventLog::open(config_.nat.log_file, error);
      if (!nat_log_) return false;
      spdlog::info("nat: mapping events logged to {}", config_.nat.log_file);
    }
    for (unsigned w = 0; w < worker_count; ++w) {
      const int worker_socket = static_cast<int>(rte_lcore_to_socket_id(config_.workers[w].lcore));
      auto nat = nat::NatContext::create(w, worker_count, config_.nat, *flow_contexts_[w], worker_socket, error);
      if (!nat) return false;
      if (nat_log_) {
        nat->enable_events();
        nat_log_->add_ring(nat->events());
      }
      nat_contexts_.push_back(std::move(nat));
    }
  }

  // The load balancer: its services published like the NAT rules, its counters per
  // worker, its pairs' ends told to it through each worker's NAT context.
  if (!config_.services.empty()) {
    lb_ = LoadBalancer::create(config_, *qsbr_, worker_count, mempools_.front().pool, router_.get(), error);
    if (!lb_) return false;
    for (unsigned w = 0; w < worker_count; ++w) {
      nat_contexts_[w]->set_lb_observer(&lb::LbContext::pair_removed, lb_->context(w));
      nat_contexts_[w]->set_lb6_observer(&lb::LbContext::entry6_removed, lb_->context(w));
    }
  }

  if (config_.tracked() && !resolve_steering(error)) return false;

  std::vector<std::string> port_names;
  for (const auto& port : ports_) {
    if (port->port_id >= port_names.size()) port_names.resize(port->port_id + 1);
    port_names[port->port_id] = port->name;
  }
  trace_ = std::make_unique<pipeline::TraceSession>(std::move(port_names));

  // Worker i owns TX queue i on every port: no TX queue is ever shared.
  for (size_t w = 0; w < config_.workers.size(); ++w) {
    const config::WorkerConfig& wc = config_.workers[w];
    auto worker = std::make_unique<Worker>(wc.lcore, static_cast<uint16_t>(config_.burst_size));
    worker->attach_trace(trace_.get());
    worker->set_idle_sleep(IdleSleep{config_.polling.sleep_when_idle, config_.polling.sleep_after_polls,
                                     config_.polling.max_sleep_us});
    for (const auto& port : ports_) worker->add_tx_queue(port->port_id, static_cast<uint16_t>(w), &port->link_up);
    pipeline::L3Context l3;
    if (qsbr_) worker->attach_rcu(qsbr_.get(), static_cast<unsigned>(w));
    if (router_) {
      l3 = router_->context_for(static_cast<unsigned>(w));
      worker->attach_router(router_->inject_ring(static_cast<unsigned>(w)), qsbr_.get(), static_cast<unsigned>(w));
    }
    pipeline::ConntrackContext conntrack;
    if (policy_) {
      conntrack.flows = flow_contexts_[w].get();
      conntrack.policy = policy_.get();
      conntrack.reject_bucket = reject_buckets_[w].get();
      worker->attach_flows(conntrack.flows);
    }
    pipeline::NatStageContext nat;
    if (nat_policy_) {
      nat.nat = nat_contexts_[w].get();
      nat.policy = nat_policy_.get();
      nat.tx_offloads = &tx_offloads_;
      if (lb_) {
        nat.services = lb_->table();
        nat.lb = lb_->context(static_cast<unsigned>(w));
        nat.probe_match = LoadBalancer::probe_match();
      }
      worker->attach_nat(nat.nat);
    }
    pipeline::SteerContext steer;
    if (software_steering_) {
      steer.self = static_cast<unsigned>(w);
      steer.workers = worker_count;
      steer.rings = handoff_rings_[w];
      for (unsigned from = 0; from < worker_count; ++from)
        if (from != w) worker->add_handoff_ring(handoff_rings_[from][w]);
    }
    auto build = [&](const config::PortConfig& pc) {
      return pipeline::build_pipeline(pc, port_ids, &worker->tx_by_port(), router_ ? &l3 : nullptr,
                                      policy_ ? &conntrack : nullptr, software_steering_ ? &steer : nullptr,
                                      nat_policy_ ? &nat : nullptr);
    };
    for (const auto& rx : wc.rx) {
      const config::PortConfig& pc = *config_.find_port(rx.port);
      uint16_t port_id = port_ids.at(rx.port);
      worker->add_rx_queue(port_id, static_cast<uint16_t>(rx.queue), build(pc));
    }
    if (software_steering_) {
      // Any worker may own a flow of any tracked port: each can run every tracked
      // port's pipeline from the stage after steer.
      for (const auto& pc : config_.ports) {
        if (!pc.tracked()) continue;
        pipeline::Pipeline* p = worker->pipeline_for(pc.name);
        if (!p) p = worker->add_handoff_only_pipeline(build(pc));
        worker->set_handoff_pipeline(port_ids.at(pc.name), p, p->handoff_stage());
      }
    }
    workers_.push_back(std::move(worker));
  }
  return true;
}

// Both directions of a connection must reach the worker whose table holds it. The
// NIC does that (hardware) when every tracked port spreads flows with the same
// symmetric RSS over the same number of queues and one worker polls queue q of all of
// them; otherwise the workers steer in software.
bool Runtime::resolve_steering(std::string& error) {
  const unsigned worker_count = static_cast<unsigned>(config_.workers.size());
  bool want_hardware = false, want_software = false;
  std::string hardware_port;
  for (const auto& pc : config_.ports) {
    if (!pc.tracked()) continue;
    if (pc.steering == config::Steering::Hardware) {
      want_hardware = true;
      hardware_port = pc.name;
    }
    if (pc.steering == config::Steering::Software) want_software = true;
  }
  if (want_hardware && want_software) {
    error = "ports: steering mixes hardware and software; every tracked port must steer the same way";
    return false;
  }
  std::string why_not_hardware;
  if (worker_count > 1 && config_.translated())
    why_not_hardware = "NAT: a translated flow's replies carry another tuple than its packets, so only software "
                       "steering brings them to the worker that holds the flow";
  if (worker_count > 1 && why_not_hardware.empty()) {
    unsigned queues = 0;
    std::map<std::pair<std::string, unsigned>, unsigned> poller;
    for (size_t w = 0; w < config_.workers.size(); ++w)
      for (const auto& rx : config_.workers[w].rx) poller[{rx.port, rx.queue}] = static_cast<unsigned>(w);
    for (const auto& port : ports_) {
      const config::PortConfig& pc = *port->config;
      if (!pc.tracked()) continue;
      if (queues == 0) queues = pc.rx_queues;
      if (pc.rx_queues != queues) why_not_hardware = "tracked ports have different rx_queues";
      else if (pc.rx_queues > 1 && !port->rss_spreads) why_not_hardware = "port " + pc.name + " has no symmetric RSS";
      if (!why_not_hardware.empty()) break;
    }
    if (why_not_hardware.empty()) {
      for (unsigned q = 0; q < queues && why_not_hardware.empty(); ++q) {
        int owner = -1;
        for (const auto& pc : config_.ports) {
          if (!pc.tracked()) continue;
          const int w = static_cast<int>(poller.at({pc.name, q}));
          if (owner >= 0 && w != owner) why_not_hardware = "queue " + std::to_string(q) + " of the tracked ports is polled by different workers";
          owner = w;
        }
      }
    }
  }
  if (want_hardware && !why_not_hardware.empty()) {
    error = "ports: " + hardware_port + ": steering hardware cannot work: " + why_not_hardware +
            " (use \"auto\" or \"software\")";
    return false;
  }
  software_steering_ = worker_count > 1 && (want_software || !why_not_hardware.empty());
  if (software_steering_ && worker_count > pipeline::kMaxWorkers) {
    error = "workers: software steering handles at most " + std::to_string(pipeline::kMaxWorkers) + " workers";
    return false;
  }
  if (!software_steering_) {
    spdlog::info("conntrack: steering {}", worker_count == 1 ? "not needed (one worker)" : "hardware (symmetric RSS)");
    return true;
  }
  spdlog::info("conntrack: steering software across {} workers{}", worker_count,
               want_software ? "" : " (" + why_not_hardware + ")");
  handoff_rings_.assign(worker_count, std::vector<rte_ring*>(worker_count, nullptr));
  for (unsigned from = 0; from < worker_count; ++from) {
    for (unsigned to = 0; to < worker_count; ++to) {
      if (from == to) continue;
      const std::string name = "sl_ho_" + std::to_string(from) + "_" + std::to_string(to);
      rte_ring* ring = rte_ring_create(name.c_str(), kHandoffRingSize, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (!ring) {
        error = "cannot create ring " + name + ": " + rte_strerror(rte_errno) + " (raise eal.memory_mb)";
        return false;
      }
      handoff_rings_[from][to] = ring;
    }
  }
  return true;
}

// After the workers stopped: packets still in flight between workers are freed.
void Runtime::free_handoff_rings() {
  unsigned freed = 0;
  for (auto& row : handoff_rings_) {
    for (rte_ring* ring : row) {
      if (!ring) continue;
      void* m;
      while (rte_ring_sc_dequeue(ring, &m) == 0) {
        rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        ++freed;
      }
      rte_ring_free(ring);
    }
  }
  handoff_rings_.clear();
  if (freed) spdlog::info("steering: {} packet(s) in flight between workers freed at shutdown", freed);
}

void Runtime::launch() {
  for (auto& worker : workers_) {
    int rc = rte_eal_remote_launch(Worker::launch, worker.get(), worker->lcore_id());
    if (rc != 0) spdlog::error("lcore {}: cannot launch worker: {}", worker->lcore_id(), rte_strerror(-rc));
    else spdlog::info("lcore {}: worker polling {} rx queue(s)", worker->lcore_id(), worker->rx_queue_count());
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
  if (lb_) lb_->drain();
  free_handoff_rings();
  for (auto& nat : nat_contexts_) {
    const unsigned held = nat->reassembler().flush();
    if (held) spdlog::info("nat: lcore {}: {} fragment(s) waiting for reassembly freed at shutdown",
                           workers_[nat->worker()]->lcore_id(), held);
  }
  if (nat_log_) nat_log_->drain();
  for (size_t w = 0; w < flow_contexts_.size(); ++w) {
    // Every translated flow's removal reaches the NAT event log, however many there are.
    uint32_t swept = nat::sweep_logged(*flow_contexts_[w], nat_log_.get());
    if (swept) spdlog::info("conntrack: lcore {}: {} flow(s) removed at shutdown", workers_[w]->lcore_id(), swept);
  }
  // Every port takes its RX mbufs from the one pool: what net_af_xdp keeps is missing from it.
  const unsigned kept = settle_af_xdp_ports();
  for (auto& port : ports_) {
    stop_and_close(*port);
  }
  bool clean = true;
  for (const auto& pool : mempools_) {
    const unsigned kept_here = &pool == &mempools_.front() ? kept : 0;
    const PoolCheck check = check_pool(pool.pool->name, pool.size, rte_mempool_avail_count(pool.pool), kept_here);
    if (check.clean) spdlog::info("{}", check.message);
    else spdlog::error("{}", check.message);
    clean = clean && check.clean;
  }
  return clean;
}

PoolCheck check_pool(std::string_view name, unsigned size, unsigned free_count, unsigned kept) {
  const unsigned missing = size - free_count;
  if (missing == kept) {
    if (kept == 0) return {true, fmt::format("mempool {}: all {} mbufs returned", name, size)};
    return {true, fmt::format("mempool {}: all {} mbufs accounted for: {} returned, {} kept by net_af_xdp fill rings",
                              name, size, free_count, kept)};
  }
  if (missing > kept)
    return {false, fmt::format("mempool {}: {} mbufs not returned ({} of {} free){}", name, missing - kept, free_count,
                               size, kept ? fmt::format(" beyond the {} kept by net_af_xdp fill rings", kept) : "")};
  // Fewer missing than the PMD should keep: the PMD no longer behaves as counted here
  // (another DPDK than 22.11?), and a count that does not match proves nothing.
  return {false, fmt::format("mempool {}: {} mbufs missing, but net_af_xdp fill rings should keep {}: the PMD no "
                             "longer behaves as drivers-config/net_af_xdp.md says (another DPDK version?)",
                             name, missing, kept)};
}

// net_af_xdp: the mbufs each port's fill rings keep for good (logged, returned as the
// count the leak check expects), after the TX completions still waiting in the PMD's
// completion rings are reaped. The kernel completes a frame once its copy or DMA is
// done, so the reaping repeats (up to half a second) until only the fill rings remain.
unsigned Runtime::settle_af_xdp_ports() {
  unsigned kept = 0;
  for (const auto& port : ports_) {
    const unsigned n = mbufs_kept_at_close(*port);
    if (!n) continue;
    spdlog::info("port {}: net_af_xdp keeps {} mbufs in its fill ring{} at close ({} rx queue(s) x {}; DPDK 22.11's "
                 "PMD never frees them, drivers-config/net_af_xdp.md): accounted, not leaked",
                 port->name, n, port->config->rx_queues > 1 ? "s" : "", port->config->rx_queues, kAfXdpFillRingMbufs);
    kept += n;
  }
  if (!kept || mempools_.empty()) return kept;
  const MempoolInfo& pool = mempools_.front();
  const uint64_t deadline = rte_get_timer_cycles() + rte_get_timer_hz() / 2;
  unsigned missing = 0;
  for (;;) {
    for (const auto& port : ports_)
      if (is_af_xdp(*port)) reap_tx_completions(*port);
    missing = pool.size - rte_mempool_avail_count(pool.pool);
    if (missing <= kept || rte_get_timer_cycles() > deadline) break;
    rte_delay_us_sleep(1000);
  }
  if (missing > kept)
    spdlog::warn("net_af_xdp: {} mbufs beyond the fill rings still out after reaping TX completions for 500 ms",
                 missing - kept);
  return kept;
}

}  // namespace sluice::runtime

namespace sluice::runtime {

namespace {

// The top-level parts of a config a reload cannot change under running workers: the
// config's JSON without what the published policy (and the log level) carry.
nlohmann::json restart_part(const config::Config& config) {
  nlohmann::json j = config::to_json(config);
  // The reject rate lives in each worker's token bucket, set up at start.
  const nlohmann::json reject_limit = j.contains("firewall") ? j["firewall"]["reject_limit"] : nlohmann::json();
  j.erase("firewall");
  if (!reject_limit.is_null()) j["firewall_reject_limit"] = reject_limit;
  j.erase("logging");
  j.erase("routes");
  if (j.contains("conntrack")) {
    for (const char* key : {"timeouts", "tcp_liberal", "tcp_loose", "later_fragments"}) j["conntrack"].erase(key);
  }
  // NAT rules reload; the memory they run in (capacity, fragments) and the log do not.
  if (j.contains("nat")) {
    for (const char* key : {"snat", "dnat", "nptv6"}) j["nat"].erase(key);
  }
  // Services reload whole (backends, weights, modes, health checks).
  j.erase("services");
  return j;
}

}  // namespace

uint64_t Runtime::steady_now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

std::shared_ptr<const config::Config> Runtime::active_config() const {
  std::lock_guard lock(policy_mutex_);
  if (reloaded_) return reloaded_;
  // The start-up config is owned by main for the process's life: share it without a copy.
  return std::shared_ptr<const config::Config>(&config_, [](const config::Config*) {});
}

bool Runtime::reload(std::shared_ptr<const config::Config> next, std::string& error, uint32_t& generation) {
  std::lock_guard lock(policy_mutex_);
  const config::Config& current = reloaded_ ? *reloaded_ : config_;
  const nlohmann::json before = restart_part(current), after = restart_part(*next);
  if (before != after) {
    std::string changed;
    for (auto it = after.begin(); it != after.end(); ++it)
      if (!before.contains(it.key()) || before.at(it.key()) != it.value()) changed += (changed.empty() ? "" : ", ") + it.key();
    for (auto it = before.begin(); it != before.end(); ++it)
      if (!after.contains(it.key())) changed += (changed.empty() ? "" : ", ") + it.key();
    error = "reload refused: " + changed +
            " changed, which needs a restart (a reload applies routes, firewall, conntrack timeouts/tcp_liberal/"
            "tcp_loose/later_fragments, nat rules, services and logging); nothing was applied";
    return false;
  }
  generation = 0;
  // Everything is built before anything is published: a refusal changes nothing.
  std::unique_ptr<firewall::Policy> policy;
  if (policy_) {
    const uint32_t next_generation = policy_->get()->generation + 1;
    policy = firewall::Policy::build(*next, port_ids_, next_generation, error);
    if (!policy) {
      error = "reload refused: " + error + "; the running rules stay";
      return false;
    }
  }
  std::unique_ptr<nat::Policy> nat_policy;
  if (nat_policy_) {
    nat_policy = nat::Policy::build(*next, port_ids_, static_cast<unsigned>(workers_.size()),
                                    nat_policy_->get()->generation() + 1, nat_registry_, error);
    if (!nat_policy) {
      error = "reload refused: " + error + "; the running NAT rules stay";
      return false;
    }
  }
  if (lb_ && !lb_->prepare(*next, error)) {
    error = "reload refused: " + error + "; the running services stay";
    return false;
  }
  // NAT's outside addresses are in the route table too (Sluice answers for them).
  const bool routes_changed =
      to_json(current)["routes"] != to_json(*next)["routes"] || current.nat.proxy != next->nat.proxy;
  if (router_ && routes_changed && !router_->reload_routes(*next, error)) {
    // Nothing before this published: the prepared services (and their checks) go too.
    if (lb_) lb_->abort();
    error = "reload refused: " + error + "; the running routes, rules and services stay";
    return false;
  }
  if (policy) {
    generation = policy->generation;
    policy_->publish(std::move(policy));  // returns once no worker can hold the old one
  }
  if (nat_policy) nat_policy_->publish(std::move(nat_policy));
  if (lb_) lb_->commit();
  reloaded_ = std::move(next);
  return true;
}

}  // namespace sluice::runtime
