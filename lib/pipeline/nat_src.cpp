#include "pipeline/nat_src.h"

#include <rte_ip.h>

#include "nat/translate.h"
#include "net/checksum.h"
#include "net/headers.h"
#include "pipeline/packet_meta.h"

namespace sluice::pipeline {

using flow::kNoEntry;

namespace {
const std::array<uint64_t, RTE_MAX_ETHPORTS> kNoOffloads{};
}  // namespace

NatSrcStage::NatSrcStage(const NatStageContext& context)
    : Stage("nat_src"), ctx_(context), tx_offloads_(context.tx_offloads ? *context.tx_offloads : kNoOffloads) {}

int nptv6_packet(rte_mbuf* m, const nat::Policy& policy, uint16_t port_id, bool outward) {
  const PacketMeta& pm = meta(m);
  auto* ip = rte_pktmbuf_mtod_offset(m, net::Ipv6Header*, pm.l3_offset);
  uint8_t* addr = outward ? ip->src : ip->dst;
  for (const nat::Nptv6Map& map : policy.nptv6()) {
    if (map.port_id != port_id || !nat::npt_matches(addr, map, outward)) continue;
    if (!nat::npt_translate(addr, map, outward)) return -1;
    // An ICMPv6 error quotes a packet that travelled the other way: its other address is
    // this one. Checksum-neutral, so the ICMPv6 checksum stays right.
    if (pm.l4_proto == net::kIpProtoIcmpv6 && pm.l4_offset) {
      const uint8_t type = *rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l4_offset);
      const uint32_t inner_at = pm.l4_offset + 8;
      if (type >= 1 && type <= 4 && inner_at + sizeof(net::Ipv6Header) <= rte_pktmbuf_data_len(m)) {
        auto* inner = rte_pktmbuf_mtod_offset(m, net::Ipv6Header*, inner_at);
        uint8_t* quoted = outward ? inner->dst : inner->src;
        if (nat::npt_matches(quoted, map, outward)) nat::npt_translate(quoted, map, outward);
      }
    }
    return 1;
  }
  return 0;
}

// The usual packet is IPv4 of a pair whose source this direction rewrites; the rest
// (ICMP errors, NPTv6) leave the hot loop.
inline bool NatSrcStage::translate(rte_mbuf* m, const nat::Policy& policy, Drop& reason, bool may_offload,
                                   Counts& counts) {
  const PacketMeta& pm = meta(m);
  const FlowMeta& fm = flow_meta(m);
  if (pm.l3 == L3::Ipv4 && flow::is_pair(fm.entry)) [[likely]] {
    const flow::NatExt4& ext = ctx_.nat->flows().table4().ext(fm.entry);
    if (!flow::nat_rewrites_src(ext, fm.dir)) return true;
    const nat::Endpoint to = nat::target(ext, fm.dir, nat::Side::Source);
    if (fm.flags & kFlowMetaRelated) [[unlikely]] {
      const uint32_t icmp_length = pm.l3_offset + pm.l3_length - pm.l4_offset;
      if (nat::rewrite_error(m, ipv4_packet_whole(m), pm.l4_offset, icmp_length, nat::Side::Source, to)) ++counts.errors;
      return true;
    }
    const nat::Ipv4Packet p = ipv4_packet(m);
    const bool offloads = may_offload && pm.out_port < RTE_MAX_ETHPORTS && tx_offloads_[pm.out_port];
    const unsigned leave = offloads ? offload(m, pm, p) : 0;
    nat::rewrite<nat::Side::Source>(p, to, leave);
    if (leave & nat::kLeaveL4) [[unlikely]] {
      // The offload sums the segment onto the pseudo-header's sum, left in the field.
      const uint16_t phdr = rte_ipv4_phdr_cksum(reinterpret_cast<const rte_ipv4_hdr*>(p.ip), m->ol_flags);
      net::store16(p.l4 + (p.proto == net::kIpProtoTcp ? 16 : 6), phdr);
    }
    ++counts.translated;
    return true;
  }
  if (pm.l3 == L3::Ipv6 && policy.has_nptv6_on(pm.out_port)) [[unlikely]] {
    const int done = nptv6_packet(m, policy, pm.out_port, true);
    if (done < 0) {
      reason = Drop::Nptv6Untranslatable;
      return false;
    }
    counts.nptv6 += static_cast<uint32_t>(done);
  }
  return true;
}

// Which checksums the egress port computes on transmit, its mbuf fields set for them:
// the IPv4 header's, and TCP's or UDP's (with the pseudo-header sum in place, as the
// offload wants; not for a UDP packet without a checksum). None for a packet the
// output stage will fragment: its fragments are summed there, in software.
unsigned NatSrcStage::offload(rte_mbuf* m, const PacketMeta& pm, const nat::Ipv4Packet& p) const {
  if (pm.flags & kMetaFragmentOnOutput) return 0;
  const uint64_t offloads = tx_offloads_[pm.out_port];
  if (!(offloads & (RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM)))
    [[likely]]
    return 0;
  unsigned leave = 0;
  uint64_t flags = RTE_MBUF_F_TX_IPV4;
  if (offloads & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) {
    leave |= nat::kLeaveIp;
    flags |= RTE_MBUF_F_TX_IP_CKSUM;
  }
  if (p.l4 && !(pm.flags & kMetaFragment)) {
    if (p.proto == net::kIpProtoTcp && (offloads & RTE_ETH_TX_OFFLOAD_TCP_CKSUM) && p.l4_available >= 18) {
      flags |= RTE_MBUF_F_TX_TCP_CKSUM;
      leave |= nat::kLeaveL4;
    } else if (p.proto == net::kIpProtoUdp && (offloads & RTE_ETH_TX_OFFLOAD_UDP_CKSUM) && p.l4_available >= 8 &&
               net::load16(p.l4 + 6) != 0) {
      flags |= RTE_MBUF_F_TX_UDP_CKSUM;
      leave |= nat::kLeaveL4;
    }
  }
  if (!leave) return 0;
  m->l2_len = pm.l3_offset;
  m->l3_len = (p.ip[0] & 0x0f) * 4u;
  m->ol_flags |= flags;
  if (leave & nat::kLeaveIp) net::store16(p.ip + 10, 0);
  return leave;
}

void NatSrcStage::process(Burst& burst) {
  const nat::Policy& policy = *ctx_.policy->get();
  Counts counts;
  uint16_t kept = 0;
  const uint16_t n = burst.count;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = burst.pkts[i];
    Drop reason;
    if (!translate(m, policy, reason, true, counts)) [[unlikely]] {
      drop(burst, m, reason);
      continue;
    }
    burst.pkts[kept++] = m;
  }
  burst.count = kept;
  commit(counts);
}

void NatSrcStage::commit(const Counts& counts) {
  if (counts.translated) translated_.add(counts.translated);
  if (counts.errors) {
    errors_translated_.add(counts.errors);
    ctx_.nat->counters().icmp_errors.add(counts.errors);
  }
  if (counts.nptv6) {
    nptv6_translated_.add(counts.nptv6);
    ctx_.nat->counters().nptv6_translated.add(counts.nptv6);
  }
}

bool NatSrcStage::apply(rte_mbuf* m, Drop& reason) {
  // Called from the route stage, within this worker's burst and RCU snapshot. No TX
  // offload: a packet over the egress MTU is fragmented by the router in software, and
  // the fragments of a datagram whose L4 field holds only the pseudo-header sum would
  // reach the host with a wrong checksum.
  Counts counts;
  const bool keep = translate(m, *ctx_.policy->get(), reason, false, counts);
  commit(counts);
  return keep;
}

void NatSrcStage::quote_as_sent(rte_mbuf* error, uint32_t icmp_offset, const rte_mbuf* m) {
  const FlowMeta& fm = flow_meta(m);
  if (fm.entry == kNoEntry || !flow::is_pair(fm.entry) || (fm.flags & kFlowMetaRelated)) return;
  const flow::NatExt4& ext = ctx_.nat->flows().table4().ext(fm.entry);
  if (!nat::rewrites(ext, fm.dir, nat::Side::Destination)) return;
  // The destination the packet arrived with: the tuple its sender sent.
  const flow::NatTuple4& sent = fm.dir == 0 ? ext.orig : ext.reply;
  const uint32_t icmp_length = rte_pktmbuf_pkt_len(error) - icmp_offset;
  nat::Ipv4Packet p;
  p.ip = rte_pktmbuf_mtod_offset(error, uint8_t*, icmp_offset - sizeof(net::Ipv4Header));
  p.l4 = rte_pktmbuf_mtod_offset(error, uint8_t*, icmp_offset);
  p.l4_available = rte_pktmbuf_data_len(error) - icmp_offset;
  p.proto = net::kIpProtoIcmp;
  if (nat::rewrite_quoted(error, p, icmp_offset, icmp_length, nat::Side::Destination, {sent.dst, sent.dport}))
    quotes_restored_.inc();
}

void NatSrcStage::read_counters(NamedCounters& out) const {
  out.emplace_back("translated", translated_.get());
  out.emplace_back("icmp_errors_translated", errors_translated_.get());
  out.emplace_back("nptv6_translated", nptv6_translated_.get());
  out.emplace_back("quotes_restored", quotes_restored_.get());
}

}  // namespace sluice::pipeline
