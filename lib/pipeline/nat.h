// nat: network address translation before routing (Linux's PREROUTING nat), after
// conntrack. Per burst: for each packet of a flow conntrack just created, find its
// translation (port forward, source NAT, hairpin; an outside port from this worker's
// share) and turn its entry into a NAT pair; then rewrite the destination of every
// packet whose flow translates it (port forwards, replies to source-NATed flows) and
// the matching end of the packets ICMP errors quote. Sources are rewritten after
// routing, by nat_src.
#pragma once

#include <array>
#include <cstring>

#include <rte_ethdev.h>

#include "l3/rcu.h"
#include "lb/lb_context.h"
#include "lb/probe.h"
#include "lb/service_table.h"
#include "nat/nat_context.h"
#include "nat/policy.h"
#include "nat/translate.h"
#include "pipeline/packet_meta.h"
#include "pipeline/pair_changes.h"
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

// A packet's tuple as the flow key has it: TCP/UDP ports; an ICMP query's identifier
// and code word (only queries open ICMP flows); nothing for other protocols.
inline flow::NatTuple4 nat_tuple(const nat::Ipv4Packet& p) {
  flow::NatTuple4 t{};
  std::memcpy(&t.src, p.ip + 12, 4);
  std::memcpy(&t.dst, p.ip + 16, 4);
  if (!p.l4) return t;
  if ((p.proto == 6 || p.proto == 17) && p.l4_available >= 4) {
    std::memcpy(&t.sport, p.l4, 2);
    std::memcpy(&t.dport, p.l4 + 2, 2);
  } else if (p.proto == 1 && p.l4_available >= 8) {
    std::memcpy(&t.sport, p.l4 + 4, 2);
    t.dport = rte_cpu_to_be_16(p.l4[1]);
  }
  return t;
}

// What one worker's NAT stages share.
struct NatStageContext {
  nat::NatContext* nat = nullptr;
  const l3::Published<nat::Policy>* policy = nullptr;
  // The TX offloads each port negotiated (nat_src leaves the checksums it can to them).
  const std::array<uint64_t, RTE_MAX_ETHPORTS>* tx_offloads = nullptr;
  // The load balancer's services and this worker's state (null: no services section).
  const l3::Published<lb::ServiceTable>* services = nullptr;
  lb::LbContext* lb = nullptr;
  lb::ProbeMatch probe_match{};  // the health probes' ports and ident (probe intake)
};

class NatStage final : public Stage {
 public:
  NatStage(uint16_t port_id, const NatStageContext& context);
  void process(Burst& burst) override;
  void read_counters(NamedCounters& out) const override;

 private:
  struct Outcome {
    uint32_t index;
    bool refused;
    Drop reason;
  };
  Outcome map_new(const FlowMeta& fm, const nat::Ipv4Packet& p, const nat::Policy& policy, PairChanges& changes);

  uint16_t port_id_;
  NatStageContext ctx_;
  Counter translated_, mapped_, errors_translated_;
};


}  // namespace sluice::pipeline
