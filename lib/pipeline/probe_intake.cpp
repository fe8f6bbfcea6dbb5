#include "pipeline/probe_intake.h"

#include <algorithm>
#include <cstring>

#include <rte_ring.h>

#include "pipeline/packet_meta.h"

namespace sluice::pipeline {

ProbeIntakeStage::ProbeIntakeStage(uint16_t port_id, const L3Context& l3, const lb::ProbeMatch& match)
    : Stage("probe_intake"), port_id_(port_id), l3_(l3), match_(match) {}

// An answer to one of our probes: addressed to one of this port's own addresses (the
// probes leave from them), and, for an ICMP unreachable (which NAT's flows to the same
// addresses also get), quoting a probe.
inline bool ProbeIntakeStage::is_probe_reply(rte_mbuf* m) const {
  const PacketMeta& pm = meta(m);
  if ((pm.l3 != L3::Ipv4 && pm.l3 != L3::Ipv6) || !pm.l4_offset) [[likely]]
    return false;
  const uint32_t end = std::min<uint32_t>(rte_pktmbuf_data_len(m), uint32_t(pm.l3_offset) + pm.l3_length);
  if (end <= pm.l4_offset) return false;
  const uint8_t* l3 = rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l3_offset);
  const uint8_t* l4 = rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l4_offset);
  const bool ipv6 = pm.l3 == L3::Ipv6;
  if (!lb::probe_reply_candidate(l3, static_cast<uint16_t>(end - pm.l3_offset), ipv6, pm.l4_proto, l4,
                                 static_cast<uint16_t>(end - pm.l4_offset), match_))
    return false;
  const l3::Interface& itf = l3_.routes->get()->interface(port_id_);
  bool ours = false;
  for (const auto& a : itf.addresses) {
    if (a.addr.family != (ipv6 ? 6 : 4)) continue;
    ours = ours || std::memcmp(a.addr.bytes.data(), l3 + (ipv6 ? 24 : 16), ipv6 ? 16 : 4) == 0;
  }
  if (!ours) return false;
  lb::ProbeReply reply;
  return lb::parse_probe_reply(m, pm.l3_offset, match_, reply);
}

void ProbeIntakeStage::process(Burst& burst) {
  rte_mbuf* punts[kMaxBurst];
  unsigned n_punts = 0;
  uint16_t kept = 0;
  for (uint16_t i = 0; i < burst.count; ++i) {
    rte_mbuf* m = burst.pkts[i];
    if (is_probe_reply(m)) [[unlikely]] {
      meta(m).aux = kPuntProbe;
      m->port = port_id_;
      punts[n_punts++] = m;
      continue;
    }
    burst.pkts[kept++] = m;
  }
  burst.count = kept;
  if (!n_punts) [[likely]]
    return;
  const unsigned queued = rte_ring_sp_enqueue_burst(l3_.punt_ring, reinterpret_cast<void* const*>(punts), n_punts, nullptr);
  taken_.add(queued);
  for (unsigned k = queued; k < n_punts; ++k) drop(burst, punts[k], Drop::PuntRingFull);
}

void ProbeIntakeStage::read_counters(NamedCounters& out) const { out.emplace_back("probe_replies", taken_.get()); }

}  // namespace sluice::pipeline
