// The router's control side, run by the control thread: it builds and publishes the
// route table, owns the neighbour cache (the single writer), answers and sends ARP
// and neighbour discovery, holds packets waiting for resolution, and ages entries.
// Workers reach it only through their punt rings; it reaches the wire only through
// each worker's inject ring (the worker transmits on its own TX queues).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "config/config.h"
#include "l3/icmp.h"
#include "l3/neighbour_table.h"
#include "l3/rcu.h"
#include "l3/route_table.h"
#include "pipeline/route.h"
#include "pipeline/stage.h"

namespace sluice::router {

inline constexpr unsigned kPuntRingSize = 1024;
inline constexpr unsigned kInjectRingSize = 1024;

class Router {
 public:
  // `qsbr`: the runtime's RCU state shared with other published tables; null makes one.
  Router(const config::Config& config, rte_mempool* pool, unsigned worker_count, l3::Qsbr* qsbr = nullptr);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Builds and publishes the tables, installs static neighbours. Before workers launch.
  bool start(const l3::RouteTable::PortIds& port_ids, const l3::RouteTable::PortMacs& macs, std::string& error);
  // Announces our addresses (gratuitous ARP, unsolicited NA). After workers launch.
  void announce();
  // Reload: builds the route table of `next` (same ports; its routes may differ) and
  // publishes it under running workers. New gateways are pinned and resolved like at
  // start; gateways no route uses any more are unpinned and age out. Any thread.
  bool reload_routes(const config::Config& next, std::string& error);

  pipeline::L3Context context_for(unsigned worker) const;
  rte_ring* inject_ring(unsigned worker) const { return inject_rings_[worker]; }
  l3::Qsbr& qsbr() { return *qsbr_; }
  const l3::Published<l3::RouteTable>& routes() const { return *routes_; }

  // Packets Sluice itself originates (the load balancer's health probes): `dst`'s egress
  // port and the source address to send from there; false without a route.
  bool source_for_destination(const net::IpAddr& dst, net::IpAddr& src) const;
  // Sends an IP packet built with a zeroed Ethernet header: routed, its next hop resolved
  // (or queued for it) like a forwarded packet's. Any thread.
  void originate(rte_mbuf* m);
  // Where punted health-probe replies go (the control thread's load balancer); they are
  // the sink's to free. Set before workers launch.
  using ProbeSink = void (*)(void* user, rte_mbuf* m, uint64_t now_ms);
  void set_probe_sink(ProbeSink sink, void* user) {
    probe_sink_ = sink;
    probe_sink_user_ = user;
  }

  // Control loop: drains the punt rings and runs the neighbour timers.
  void poll();
  // poll() at a given steady-clock time in ms: a seam for tests that drive the timers.
  void poll_at(uint64_t now_ms);
  // After the workers stopped: frees every held packet (counted) and ring content.
  void drain();

  // Readers on other threads (HTTP, telemetry).
  nlohmann::json neighbours_json() const;
  nlohmann::json routes_json() const;
  const StageCounters& counters() const { return counters_; }
  void read_counters(pipeline::NamedCounters& out) const;
  size_t neighbour_count() const;

 private:
  using Entry = l3::NeighbourTable::Entry;
  void handle(rte_mbuf* m, uint64_t now_ms);
  void handle_arp(rte_mbuf* m, uint64_t now_ms);
  void handle_nd(rte_mbuf* m, uint64_t now_ms);
  void handle_resolve(rte_mbuf* m, uint64_t now_ms);
  void run_timers(uint64_t now_ms);
  void learn(const l3::NeighbourKey& key, const rte_ether_addr& mac, l3::NeighbourState state, bool create,
             uint64_t now_ms);
  void flush_queue(Entry& e);
  void solicit(Entry& e, bool unicast);
  void send(rte_mbuf* m, uint16_t port);
  void drop(rte_mbuf* m, Drop reason);
  const uint8_t* source_for(uint16_t port, const l3::NeighbourKey& target) const;
  ProbeSink probe_sink_ = nullptr;
  void* probe_sink_user_ = nullptr;

  const config::Config& config_;
  rte_mempool* pool_;
  unsigned worker_count_;
  uint64_t hz_;
  std::unique_ptr<l3::Qsbr> own_qsbr_;
  l3::Qsbr* qsbr_ = nullptr;
  std::unique_ptr<l3::Published<l3::RouteTable>> routes_;
  std::unique_ptr<l3::NeighbourTable> neighbours_;
  std::vector<rte_ring*> punt_rings_;
  std::vector<rte_ring*> inject_rings_;
  std::vector<std::unique_ptr<l3::TokenBucket>> icmp_buckets_;
  std::map<uint16_t, std::string> port_names_;
  l3::RouteTable::PortIds port_ids_;
  l3::RouteTable::PortMacs macs_{};
  uint64_t last_timer_ms_ = 0;
  mutable std::mutex mutex_;  // entries vs. the HTTP/telemetry readers

  StageCounters counters_;
  Counter arp_requests_in_, arp_replies_in_, arp_requests_out_, arp_replies_out_, ns_in_, na_in_, ns_out_, na_out_,
      queued_, resolved_, resolution_failures_, expired_;
};

}  // namespace sluice::router
