// The load balancer's control side, run by the control thread: it builds the services
// table from the config and the health checks' verdicts and publishes it by RCU, owns
// each worker's LbContext (counters, schedulers), and runs the health checks: probes
// built by Sluice and sent through its own ports by the router, answers taken out of
// the data path before conntrack (the probe intake) and handed back here through the
// router's punt path. A backend going down or up rebuilds and republishes the table.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <rte_mempool.h>

#include "config/config.h"
#include "l3/rcu.h"
#include "lb/health.h"
#include "lb/lb_context.h"
#include "lb/probe.h"
#include "lb/service_table.h"
#include "nat/policy.h"
#include "router/router.h"

namespace sluice::runtime {

// Probes leave from these TCP ports of Sluice's own addresses, and echoes carry this
// ident: NAT never allocates them (lib/nat/policy.cpp reserves them on its addresses).
inline constexpr uint16_t kProbePortFirst = nat::kLbProbePortFirst;
inline constexpr uint16_t kProbePortLast = nat::kLbProbePortLast;
inline constexpr uint16_t kProbeEchoIdent = nat::kLbProbeEchoIdent;
// At most this many probes leave per control-loop pass (about 1 ms): bounded probe traffic.
inline constexpr uint32_t kProbesPerPass = 16;

class LoadBalancer {
 public:
  // Null with `error` set when the services cannot be built.
  static std::unique_ptr<LoadBalancer> create(const config::Config& config, l3::Qsbr& qsbr, unsigned workers,
                                              rte_mempool* pool, router::Router* router, std::string& error);
  ~LoadBalancer();
  LoadBalancer(const LoadBalancer&) = delete;
  LoadBalancer& operator=(const LoadBalancer&) = delete;

  const l3::Published<lb::ServiceTable>* table() const { return table_.get(); }
  lb::LbContext* context(unsigned worker) { return contexts_[worker].get(); }
  static lb::ProbeMatch probe_match() { return lb::ProbeMatch{kProbePortFirst, kProbePortLast, kProbeEchoIdent}; }

  // Reload: checks `next`'s services (false and `error`: nothing changes), then applies
  // them (health checks kept for backends that stay, made for new ones).
  bool prepare(const config::Config& next, std::string& error);
  void commit();
  // A reload refused after prepare() (a later section failed): the health checks go back
  // to the running services' and the prepared table is dropped, so nothing of it leaks.
  void abort();

  // Control loop, every pass: probes due, answers received, timeouts, transitions.
  void poll(uint64_t now_ms);
  // The router's probe sink: an answer punted by a worker's probe intake (freed here).
  static void probe_reply(void* self, rte_mbuf* m, uint64_t now_ms);

  // After the workers stopped: frees the answers and RSTs not handled yet.
  void drain();

  // Readers on other threads (HTTP, telemetry, metrics).
  nlohmann::json services_json() const;
  struct BackendView {
    std::string service, backend;  // names (a backend's identity when it has no name)
    bool up;
    uint32_t weight;
    uint64_t active, connections, packets, bytes, probes, good, failed, timeouts, went_up, went_down;
  };
  struct ServiceView {
    std::string name;
    uint64_t connections, no_backend, removed, picked_up;
  };
  void read(std::vector<ServiceView>& services, std::vector<BackendView>& backends) const;

 private:
  LoadBalancer(l3::Qsbr& qsbr, rte_mempool* pool, router::Router* router) : qsbr_(qsbr), pool_(pool), router_(router) {}
  struct Check {
    uint16_t slot;
    std::string service, backend;  // names for the log
    config::LbProbe type;
    net::IpAddr address;
    uint16_t port;  // TCP probes' destination port
    lb::HealthCheck health;
    uint32_t token = 0;       // the probe in flight's
    uint16_t local_port = 0;  // TCP: the port it left from
    std::string last_result = "none";
  };
  std::unique_ptr<lb::ServiceTable> build(const std::vector<config::LbService>& services, std::string& error);
  void read_locked(std::vector<ServiceView>& services, std::vector<BackendView>& backends) const;
  void sync_checks(const std::vector<config::LbService>& services, uint64_t now_ms);
  void send_probe(Check& c, uint64_t now_ms);
  void answered(const lb::ProbeReply& reply, uint64_t now_ms);
  void transition(Check& c, lb::Transition t, uint64_t now_ms);
  void rebuild();
  void publish(std::unique_ptr<lb::ServiceTable> table);  // tagged, then published by RCU
  uint32_t next_random();

  l3::Qsbr& qsbr_;
  rte_mempool* pool_;
  router::Router* router_;
  std::unique_ptr<l3::Published<lb::ServiceTable>> table_;
  std::vector<std::unique_ptr<lb::LbContext>> contexts_;
  lb::SlotRegistry registry_;
  // ipip backends with no route toward them at the last build: logged when one joins or
  // leaves, not at every rebuild (a health change rebuilds the table).
  std::set<std::string> unroutable_;
  std::vector<config::LbService> services_;  // in force
  std::vector<config::LbService> pending_;   // prepared by a reload
  std::unique_ptr<lb::ServiceTable> pending_table_;
  std::vector<Check> checks_;
  std::map<uint16_t, size_t> check_of_slot_;
  std::vector<Check> saved_checks_;  // checks_ and check_of_slot_ before prepare(), for abort()
  std::map<uint16_t, size_t> saved_check_of_slot_;
  std::vector<rte_mbuf*> replies_;     // punted answers, handled in poll()
  std::vector<rte_mbuf*> rsts_;        // RSTs answering SYN-ACKs, sent in poll()
  uint32_t probe_cursor_ = 0;
  uint16_t next_local_port_ = kProbePortFirst;
  uint16_t next_echo_seq_ = 1;
  uint64_t rng_ = 0x2545f4914f6cdd1dull;
  bool rebuild_needed_ = false;
  uint32_t published_ = 0;  // tables published: the next one's tag
  mutable std::mutex mutex_;  // checks and services vs. the readers
  // replies_ vs. the router's sink, which runs under the router's lock: a lock of its own,
  // never held while calling the router (mutex_ is, to find probe and tunnel sources:
  // one lock for both made a cycle, router -> lb in the sink, lb -> router in a reload).
  std::mutex replies_mutex_;
};

}  // namespace sluice::runtime
