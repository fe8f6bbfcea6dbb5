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
#include "pipeline/packet_meta.h"
#include "pipeline/stage.h"

namespace sluice::pipeline {

// A packet as nat::rewrite sees it. Its L4 header's fixed part is contiguous (parse made
// sure): TCP 20 bytes, UDP and ICMP 8, all a rewrite touches.
inline nat::Ipv4Packet ipv4_packet(rte_mbuf* m) {
  const PacketMeta& pm = meta(m);
  nat::Ipv4Packet p;
  p.ip = rte_pktmbuf_mtod_offset(m, uint8_t*, pm.l3_offset);
  p.proto = pm.l4_proto;
  if (pm.l4_offset && !(pm.flags & kMetaLaterFragment)) [[likely]] {
    p.l4 = rte_pktmbuf_mtod_offset(m, uint8_t*, pm.l4_offset);
    p.l4_available = pm.l4_proto == 6 ? 20 : 8;
  }
  return p;
}
// The same with every contiguous byte of its L4 part counted: what an ICMP error's quoted
// packet needs.
inline nat::Ipv4Packet ipv4_packet_whole(rte_mbuf* m) {
  const PacketMeta& pm = meta(m);
  nat::Ipv4Packet p = ipv4_packet(m);
  if (p.l4) {
    const uint32_t end = pm.l3_offset + pm.l3_length;
    const uint32_t contiguous = rte_pktmbuf_data_len(m) < end ? rte_pktmbuf_data_len(m) : end;
    p.l4_available = contiguous > pm.l4_offset ? contiguous - pm.l4_offset : 0;
  }
  return p;
}

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
  // An entry of this burst's flows whose index changed under it: promoted to a pair, or
  // removed (translation refused, or evicted to make room for another's translation).
  struct Change {
    uint32_t plain;
    uint32_t now;  // the pair, or kNoEntry when the flow is gone
    Drop reason;
  };
  struct Changes {
    // Each new flow promotes (or removes) one entry and may evict two: room for all.
    Change list[kMaxBurst * 3];
    unsigned count = 0;
    uint64_t seen = 0;  // bit (plain index % 64) of every entry listed: most lookups end here
    void add(uint32_t plain, uint32_t now, Drop reason) {
      list[count++] = Change{plain, now, reason};
      seen |= uint64_t(1) << (plain & 63);
    }
    const Change* find(uint32_t plain) const {
      if (!((seen >> (plain & 63)) & 1)) [[likely]]
        return nullptr;
      for (unsigned k = 0; k < count; ++k)
        if (list[k].plain == plain) return &list[k];
      return nullptr;
    }
  };
  struct Outcome {
    uint32_t index;
    bool refused;
    Drop reason;
  };
  Outcome map_new(const FlowMeta& fm, const nat::Ipv4Packet& p, const nat::Policy& policy, Changes& changes);
  void forget_pair(Burst& burst, uint16_t& kept, Changes& changes, unsigned before, uint32_t pair);

  uint16_t port_id_;
  NatStageContext ctx_;
  Counter translated_, mapped_, errors_translated_;
};


}  // namespace sluice::pipeline
