// nat_src: source translation after routing (Linux's POSTROUTING nat), inserted by the
// pipeline builder after `route` on ports that run `nat`. Rewrites the source of every
// packet whose flow translates it (source NAT, masquerade, replies of port forwards),
// the matching end of quoted packets in ICMP errors, and, for IPv6 leaving a port with
// an NPTv6 mapping, the inside prefix to the outside one. After routing, so the route
// stage's own ICMP errors go to the untranslated source and the egress port is known.
#pragma once

#include "pipeline/nat.h"
#include "pipeline/route.h"

namespace sluice::pipeline {

class NatSrcStage final : public Stage, public PostRouting {
 public:
  explicit NatSrcStage(const NatStageContext& context);
  void process(Burst& burst) override;
  void read_counters(NamedCounters& out) const override;
  // A packet the route stage parks for its neighbour: translated now (PostRouting), its
  // checksums in software (the router's queue may fragment it before TX).
  bool apply(rte_mbuf* m, Drop& reason) override;
  void quote_as_sent(rte_mbuf* error, uint32_t icmp_offset, const rte_mbuf* m) override;

 private:
  // Rewrites one packet; false when it must be dropped (`reason`). `may_offload`: the egress
  // port's TX checksum offloads may finish the checksums.
  // What a burst translated, committed to the counters once (commit).
  struct Counts {
    uint32_t translated = 0, errors = 0, nptv6 = 0;
  };
  bool translate(rte_mbuf* m, const nat::Policy& policy, Drop& reason, bool may_offload, Counts& counts);
  void commit(const Counts& counts);
  unsigned offload(rte_mbuf* m, const PacketMeta& pm, const nat::Ipv4Packet& p) const;

  NatStageContext ctx_;
  const std::array<uint64_t, RTE_MAX_ETHPORTS>& tx_offloads_;  // the ports' TX offloads (none when not given)
  Counter translated_, errors_translated_, nptv6_translated_, quotes_restored_;
};

// NPTv6 on one IPv6 packet (and, for an ICMPv6 error, the quoted packet's matching
// address): `outward` translates the source from the inside prefix of a mapping on
// `port_id`, else the destination from the outside prefix. Returns 1 translated, 0
// nothing to do, -1 the address cannot be mapped.
int nptv6_packet(rte_mbuf* m, const nat::Policy& policy, uint16_t port_id, bool outward);

}  // namespace sluice::pipeline
