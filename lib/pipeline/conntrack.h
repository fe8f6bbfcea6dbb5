// conntrack: connection tracking and the stateful firewall, after parse and before the
// stage that picks the output (route or xconnect). Per burst: build every packet's
// flow key, look the keys up in the worker's flow table in bulk, advance the state of
// the flows found (TCP state machine and windows, UDP/ICMP replies), and send what the
// table cannot decide alone (new connections, invalid packets) through the firewall's
// rte_acl rules in one classify call per family. Accepted new connections get an entry;
// established ones never touch the rules.
//
// Not tracked, passed on unchanged: non-IP, IPv6 neighbour discovery and MLD, packets
// for Sluice's own addresses, and, on a routed port, packets the route stage will drop
// or answer itself (no route, TTL exhausted, multicast/broadcast): no entry is made for
// a packet that will not be forwarded.
#pragma once

#include <rte_ether.h>

#include "firewall/policy.h"
#include "flow/flow_context.h"
#include "l3/icmp.h"
#include "l3/rcu.h"
#include "pipeline/nat.h"
#include "pipeline/output.h"
#include "pipeline/route.h"
#include "pipeline/stage.h"

namespace sluice::pipeline {

// What one worker's conntrack stages share.
struct ConntrackContext {
  flow::FlowContext* flows = nullptr;
  const l3::Published<firewall::Policy>* policy = nullptr;
  l3::TokenBucket* reject_bucket = nullptr;  // rate of RSTs/unreachables sent by reject
};

class ConntrackStage final : public Stage {
 public:
  // `l3`: the worker's router context when this port routes (egress found by route
  // lookup), else null and `peer_port` is the xconnect peer. `port_mac`: this port's
  // MAC, the source of reject replies on a routed port.
  // `nat`: the worker's NAT context when a nat stage follows on this port (new flows'
  // destinations are looked up as NAT will translate them; every packet's flow is
  // recorded in its FlowMeta), else null.
  ConntrackStage(uint16_t port_id, uint16_t conntrack_zone, const ConntrackContext& context, const L3Context* l3,
                 uint16_t peer_port, const TxQueues* tx_queues, const rte_ether_addr& port_mac,
                 const NatStageContext* nat = nullptr);
  void process(Burst& burst) override;
  void read_counters(NamedCounters& out) const override;
  void describe(const rte_mbuf* m, std::string& out) const override;  // conntrack_trace.cpp

  struct Work;          // one packet's scratch (conntrack.cpp)
  struct BurstScratch;  // one burst's: every packet's Work, keys and hashes, local counters

 private:
  // process() is these, in order, over one BurstScratch on its stack.
  void key_pass(Burst& burst, BurstScratch& s);       // 1: keys and hashes, buckets prefetched
  void lookup_pass(BurstScratch& s);                  // 2: candidate entries in bulk
  void state_pass(Burst& burst, BurstScratch& s);     // 3: what each packet is to its flow
  void classify_pass(Burst& burst, BurstScratch& s);  // 4: egress, one rte_acl classify per family
  void act_pass(Burst& burst, BurstScratch& s);       // 5: drop, reject, insert or keep
  void commit_counters(const BurstScratch& s);

  template <typename Entry>
  void meet_flow(BurstScratch& s, uint16_t i, rte_mbuf* m, const PacketMeta& pm, flow::FlowTable<Entry>& table,
                 const typename Entry::Key& key);
  firewall::Action rule_verdict(BurstScratch& s, const Work& w, const rte_mbuf* m);
  bool open_flow(Burst& burst, BurstScratch& s, uint16_t i, uint16_t kept, rte_mbuf* m, const PacketMeta& pm);
  bool nat_invalid(const BurstScratch& s, const Work& w, rte_mbuf* m);
  void forget_evicted(Burst& burst, const BurstScratch& s, uint16_t i, uint16_t kept, uint32_t index, bool v6);
  // NAT, when a nat stage follows: each packet's flow for it, and a new flow's real destination.
  void record_flow(rte_mbuf* m, const Work& w, const BurstScratch& s);
  nat::Destination nat_destination(const BurstScratch& s, const rte_mbuf* m, const PacketMeta& pm) const;
  nat::Destination lb_destination(const lb::ServiceTable& services, const flow::NatTuple4& tuple, uint8_t proto) const;
  const uint8_t* lb_destination6(const BurstScratch& s, const rte_mbuf* m, const PacketMeta& pm, Work& w) const;
  template <typename Entry>
  void track_hit(Work& w, Entry& e, rte_mbuf* m, const PacketMeta& pm, const flow::FlowSettings& settings,
                 flow::FlowTable<Entry>& table);
  template <typename Entry>
  bool insert(Work& w, rte_mbuf* m, const PacketMeta& pm, const flow::FlowSettings& settings,
              flow::FlowTable<Entry>& table, const typename Entry::Key& key, flow::Victim& victim);
  bool resolve_egress(Work& w, rte_mbuf* m, const PacketMeta& pm, const l3::RouteTable* routes, uint64_t group);
  void reject(Burst& burst, rte_mbuf* m, const PacketMeta& pm, const l3::RouteTable* routes);

  uint16_t port_id_;
  uint16_t zone_;
  ConntrackContext ctx_;
  L3Context l3_{};
  bool routed_;
  uint16_t peer_port_;
  const TxQueues* tx_queues_;
  rte_ether_addr port_mac_;
  NatStageContext nat_{};
  uint64_t hz_;

  Counter tracked_, established_, related_, new_flows_, invalid_, invalid_forwarded_, untracked_, reopened_,
      classified_, rule_hits_, policy_accepted_, policy_dropped_, resets_sent_, unreachables_sent_,
      reject_rate_limited_, later_fragments_;
};

}  // namespace sluice::pipeline
