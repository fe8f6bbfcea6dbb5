// lb: the L4 load balancer, after conntrack and before nat. Conntrack has already asked
// the published services where a new connection to a VIP goes (its egress and the
// firewall's rules are the backend's) and left the pick in the packet's FlowMeta; this
// stage makes that connection's entry a NAT pair whose reply side is the backend (and,
// in full-NAT, a local address and port of this worker's share), so the nat and
// nat_src stages rewrite every later packet from the pair and no packet of the
// connection consults the services again. Per burst:
//   1. follow: packets of entries this burst changed go with their pair, or are dropped;
//   2. open: a new connection to a service gets its pair (open_connection), and a DNAT
//      backend's reply met mid-stream (tcp_loose) the pair of its connection (pick_up_reply);
//   3. account: every packet of a load-balanced pair counts for its backend, and one
//      whose backend left a service that drops removed backends' connections is dropped;
//   4. tunnel: an ipip connection's packets from the client are encapsulated to the
//      backend (direct server return: its answers go to the client by another path).
// An IPv6 service (ipip only) needs no pair: its connection's IPv6 entry keeps the
// backend (flow::LbExt6), opened on the first packet and tunnelled IPv6-in-IPv6
// (forward6: open, account, tunnel). IPv6 fragments to an IPv6 VIP are dropped
// (fragment_to_vip6): Sluice does not reassemble IPv6.
#pragma once

#include "lb/lb_context.h"
#include "lb/service_table.h"
#include "pipeline/nat.h"
#include "pipeline/pair_changes.h"
#include "pipeline/stage.h"

namespace sluice::pipeline {

class LbStage final : public Stage {
 public:
  LbStage(uint16_t port_id, const NatStageContext& context);
  void process(Burst& burst) override;
  void read_counters(NamedCounters& out) const override;

 private:
  struct Opened {
    uint32_t index;  // the pair; kNoEntry when refused
    Drop reason;
  };
  void prefetch_openings(const Burst& burst, const lb::ServiceTable& services, flow::FlowTable4& table);
  Opened open_connection(rte_mbuf* m, const FlowMeta& fm, const lb::ServiceTable& services, PairChanges& changes);
  Opened pick_up_reply(rte_mbuf* m, const FlowMeta& fm, const lb::ServiceTable& services, PairChanges& changes);
  int full_nat_source(const lb::Service& s, const nat::Policy& policy, const flow::NatTuple4& toward, uint8_t proto,
                      uint16_t reply_zone, uint32_t& address, uint16_t& address_slot);
  bool account(rte_mbuf* m, const flow::NatExt4& ext, const lb::ServiceTable& services, uint32_t index);
  bool encapsulate(rte_mbuf* m, FlowMeta& fm, const flow::NatExt4& ext);
  bool forward6(rte_mbuf* m, FlowMeta& fm, const lb::ServiceTable& services, Drop& why);
  void remove6(const flow::FlowEntry6& e, uint32_t index);
  void count_opened(const lb::Service& s, const lb::Backend& b, bool mid_stream);
  bool fragment_to_vip6(rte_mbuf* m, const FlowMeta& fm, const lb::ServiceTable& services);
  bool open6(rte_mbuf* m, flow::FlowEntry6& e, const FlowMeta& fm, const lb::ServiceTable& services, Drop& why);
  bool account6(rte_mbuf* m, flow::FlowEntry6& e, uint32_t index, const lb::ServiceTable& services);
  bool encapsulate6(rte_mbuf* m, FlowMeta& fm, const flow::FlowEntry6& e);

  uint16_t port_id_;
  NatStageContext ctx_;
  Counter opened_, picked_up_, encapsulated_;
  uint16_t next_ip_id_ = 0;  // outer headers' identification (ipip), per worker
};

}  // namespace sluice::pipeline
