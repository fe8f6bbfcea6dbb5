// One worker lcore's load-balancer state: its counters per service and per backend
// (by their stable slots), the small-pool schedulers' cursors, and its count of
// active connections per backend. Written by that worker only; the control thread
// reads the counters.
#pragma once

#include <cstdint>
#include <memory>

#include "flow/nat_entry.h"
#include "lb/service_table.h"
#include "stats/counter.h"

namespace sluice::lb {

struct BackendCounters {
  Counter connections;  // new connections sent to it
  Counter active;       // gauge: its connections in this worker's flow table
  Counter packets;      // both directions
  Counter bytes;
};

struct ServiceCounters {
  Counter connections;  // new connections it took
  Counter no_backend;   // new connections refused: no backend up (dropped: lb_no_backend)
  Counter removed;      // packets of connections whose backend was removed, dropped (on_backend_removed: drop)
  Counter picked_up;    // mid-stream TCP connections picked up (tcp_loose)
};

class LbContext {
 public:
  LbContext();
  LbContext(const LbContext&) = delete;
  LbContext& operator=(const LbContext&) = delete;

  BackendCounters& backend(uint16_t slot) { return backends_[slot]; }
  const BackendCounters& backend(uint16_t slot) const { return backends_[slot]; }
  ServiceCounters& service(uint16_t slot) { return services_[slot]; }
  const ServiceCounters& service(uint16_t slot) const { return services_[slot]; }

  // The backend (index into the service's backends) a new connection of service `s`
  // goes to, or kNoBackend when none takes connections. `hash`: lb::flow_hash of its
  // tuple (Maglev's input). Round-robin and least-connections count this worker's
  // connections only: each worker balances its share.
  uint16_t pick(const Service& s, uint32_t hash);
  // The lb stage, after each burst: least-connections' picks of the burst are counted
  // as connections from here on (the stage opened them), no longer as planned ones.
  void end_burst() {
    for (unsigned k = 0; k < n_touched_; ++k) planned_[touched_[k]] = 0;
    n_touched_ = 0;
  }

  // The flow table's observer (through NatContext): a load-balanced pair ended.
  static void pair_removed(void* self, const flow::NatPair4& pair);
  // The IPv6 table's observer: a load-balanced (ipip) IPv6 connection ended.
  static void entry6_removed(void* self, const flow::FlowEntry6& entry);

 private:
  std::unique_ptr<BackendCounters[]> backends_;
  std::unique_ptr<ServiceCounters[]> services_;
  std::unique_ptr<uint32_t[]> cursors_;  // round-robin position per service slot
  // Least-connections: picks made in this burst (conntrack plans the whole burst before
  // the lb stage opens any), counted with `active` so one burst's new connections do
  // not all go to the same backend. Per backend slot; the touched ones listed.
  std::unique_ptr<uint16_t[]> planned_;
  static constexpr unsigned kMaxTouched = 256;
  uint16_t touched_[kMaxTouched];
  unsigned n_touched_ = 0;
};

}  // namespace sluice::lb
