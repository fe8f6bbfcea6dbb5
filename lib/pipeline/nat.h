// nat: network address translation before routing (Linux's PREROUTING nat), after
// conntrack. Per burst: for each packet of a flow conntrack just created, find its
// translation (port forward, source NAT, hairpin; an outside port from this worker's
// share) and turn its entry into a NAT pair; then rewrite the destination of every
// packet whose flow translates it (port forwards, replies to source-NATed flows) and
// the matching end of the packets ICMP errors quote. Sources are rewritten after
// routing, by nat_src.
#pragma once

#include <array>

#include <rte_ethdev.h>

#include "l3/rcu.h"
#include "nat/nat_context.h"
#include "nat/policy.h"
#include "nat/translate.h"
#include "pipeline/stage.h"

namespace sluice::pipeline {

// What one worker's NAT stages share.
struct NatStageContext {
  nat::NatContext* nat = nullptr;
  const l3::Published<nat::Policy>* policy = nullptr;
  // The TX offloads each port negotiated (nat_src leaves the checksums it can to them).
  const std::array<uint64_t, RTE_MAX_ETHPORTS>* tx_offloads = nullptr;
};

class NatStage final : public Stage {
 public:
  NatStage(uint16_t port_id, const NatStageContext& context);
  void process(Burst& burst) override;
  void read_counters(NamedCounters& out) const override;

 private:
  struct Promoted;
  struct Outcome {
    uint32_t index;
    bool refused;
    Drop reason;
  };
  Outcome map_new(rte_mbuf* m, const nat::Policy& policy, Promoted* promoted, unsigned& n_promoted);

  uint16_t port_id_;
  NatStageContext ctx_;
  Counter translated_, mapped_, errors_translated_;
};

// The same packet as nat::rewrite sees it.
nat::Ipv4Packet ipv4_packet(rte_mbuf* m);

}  // namespace sluice::pipeline
