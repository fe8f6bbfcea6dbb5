// The running appliance: EAL, the mbuf pool, ports and worker lcores, built from one
// validated Config. Owned by the control thread (main lcore); workers only see the
// Worker object launched on their lcore.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <rte_mempool.h>

#include "config/config.h"
#include "firewall/policy.h"
#include "flow/flow_context.h"
#include "l3/icmp.h"
#include "l3/rcu.h"
#include "nat/event_log.h"
#include "nat/nat_context.h"
#include "nat/policy.h"
#include "router/router.h"
#include "runtime/load_balancer.h"
#include "runtime/port.h"
#include "runtime/worker.h"

namespace sluice::runtime {

struct MempoolInfo {
  rte_mempool* pool = nullptr;
  unsigned size = 0;
};

// The shutdown's verdict on one pool: every mbuf back but `kept`, the count the drivers
// are known to hold for good (net_af_xdp's fill rings), exactly; and the line it logs.
struct PoolCheck {
  bool clean = false;
  std::string message;
};
PoolCheck check_pool(std::string_view name, unsigned size, unsigned free_count, unsigned kept);

class Runtime {
 public:
  explicit Runtime(const config::Config& config) : config_(config) {}
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // rte_eal_init with these arguments (argv[0] included).
  bool init_eal(const std::vector<std::string>& eal_args, std::string& error);
  // Mempool, ports (configured and started), workers with their pipelines.
  bool setup(std::string& error);
  // Starts every worker on its lcore.
  void launch();
  // Control thread, about once a second.
  void poll_links();
  // Control thread, every loop (about 1 ms): the router's slow path and timers.
  void poll_router() {
    if (router_) router_->poll();
    if (lb_) lb_->poll(steady_now_ms());
  }
  // The load balancer's control side (null without services).
  const LoadBalancer* load_balancer() const { return lb_.get(); }
  const router::Router* router() const { return router_.get(); }
  // The packet tracer (null before the workers are built): armed and read by the control thread.
  pipeline::TraceSession* trace() const { return trace_.get(); }

  // Connection tracking: one flow context per worker (index = worker index), empty
  // when no port tracks. The control thread reads their counters and uses their
  // mailboxes; it never touches the tables.
  const std::vector<std::unique_ptr<flow::FlowContext>>& flow_contexts() const { return flow_contexts_; }
  // NAT: one context per worker (empty when no port runs nat), the outside addresses'
  // usage slots, and the event log (null when off).
  const std::vector<std::unique_ptr<nat::NatContext>>& nat_contexts() const { return nat_contexts_; }
  const nat::AddressRegistry& nat_addresses() const { return nat_registry_; }
  // Runs `read(policy)` on the published NAT policy (null when no port runs nat).
  template <typename Read>
  auto with_nat_policy(Read&& read) const {
    std::lock_guard lock(policy_mutex_);
    return read(nat_policy_ ? nat_policy_->get() : static_cast<const nat::Policy*>(nullptr));
  }
  // Control thread, a few times a second: the NAT event log's records to its file.
  void drain_nat_log() {
    if (nat_log_) nat_log_->drain();
  }
  const nat::EventLog* nat_log() const { return nat_log_.get(); }
  // Runs `read(policy)` on the published firewall policy (null when no port tracks),
  // excluding a concurrent reload from freeing it meanwhile.
  template <typename Read>
  auto with_policy(Read&& read) const {
    std::lock_guard lock(policy_mutex_);
    return read(policy_ ? policy_->get() : static_cast<const firewall::Policy*>(nullptr));
  }
  // Reload: validates `next` against the running config (only the firewall, conntrack
  // timeouts and flags, and logging may change), builds its policy and publishes it
  // while the workers run. On refusal nothing changes and `error` says why.
  bool reload(std::shared_ptr<const config::Config> next, std::string& error, uint32_t& generation);
  // The configuration in force: the one started with, or the last reloaded.
  std::shared_ptr<const config::Config> active_config() const;
  const std::map<std::string, uint16_t>& port_ids() const { return port_ids_; }
  bool software_steering() const { return software_steering_; }
  static constexpr unsigned kHandoffRingSize = 1024;
  // Asks workers to stop and waits for them; their TX buffers are flushed on return.
  void stop_workers();
  // Stops and closes ports, then checks that every mbuf is back in its pool, but for
  // the fill rings net_af_xdp keeps (exactly kAfXdpFillRingMbufs per RX queue).
  // Returns false (and logs which pool) on a leak.
  bool shutdown();

  const config::Config& config() const { return config_; }
  const std::vector<std::unique_ptr<Port>>& ports() const { return ports_; }
  const std::vector<std::unique_ptr<Worker>>& workers() const { return workers_; }
  const std::vector<MempoolInfo>& mempools() const { return mempools_; }
  uint64_t start_tsc() const { return start_tsc_; }

  // The mbuf count `auto` sizing picks: every descriptor, every worker's TX buffers
  // and burst, every lcore cache, rounded up to 2^k - 1 (the mempool's best size).
  static unsigned auto_mbuf_count(const config::Config& config);

 private:
  const config::Config& config_;
  bool eal_ready_ = false;
  bool launched_ = false;
  uint64_t start_tsc_ = 0;
  std::vector<std::unique_ptr<Port>> ports_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<MempoolInfo> mempools_;
  std::map<std::string, uint16_t> port_ids_;
  std::unique_ptr<l3::Qsbr> qsbr_;  // every table published to the workers
  std::unique_ptr<router::Router> router_;
  std::unique_ptr<l3::Published<firewall::Policy>> policy_;
  std::vector<std::unique_ptr<flow::FlowContext>> flow_contexts_;
  nat::AddressRegistry nat_registry_;
  std::array<uint64_t, RTE_MAX_ETHPORTS> tx_offloads_{};  // what each port negotiated, by port id
  std::unique_ptr<l3::Published<nat::Policy>> nat_policy_;
  std::vector<std::unique_ptr<nat::NatContext>> nat_contexts_;
  std::unique_ptr<nat::EventLog> nat_log_;
  std::unique_ptr<LoadBalancer> lb_;
  std::vector<std::unique_ptr<l3::TokenBucket>> reject_buckets_;
  std::unique_ptr<pipeline::TraceSession> trace_;  // the packet tracer every worker looks at
  static uint64_t steady_now_ms();
  bool software_steering_ = false;
  bool pdump_ready_ = false;
  void init_pdump(const std::vector<std::string>& eal_args);
  std::vector<std::vector<rte_ring*>> handoff_rings_;  // [from][to], null on the diagonal
  bool resolve_steering(std::string& error);
  unsigned settle_af_xdp_ports();
  void free_handoff_rings();
  mutable std::mutex policy_mutex_;  // reload vs. readers of the policy on control threads
  std::shared_ptr<const config::Config> reloaded_;  // under policy_mutex_
};

}  // namespace sluice::runtime
