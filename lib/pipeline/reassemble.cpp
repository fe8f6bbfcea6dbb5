#include "pipeline/reassemble.h"

#include <rte_cycles.h>

#include "pipeline/packet_meta.h"

namespace sluice::pipeline {

ReassembleStage::ReassembleStage(nat::Reassembler* reassembler) : Stage("reassemble"), reassembler_(reassembler) {}

void ReassembleStage::process(Burst& burst) {
  uint16_t kept = 0;
  uint32_t held = 0, reassembled = 0;
  uint64_t now = 0;
  const uint16_t n = burst.count;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = burst.pkts[i];
    const PacketMeta& pm = meta(m);
    if (!(pm.flags & kMetaFragment) || pm.l3 != L3::Ipv4) [[likely]] {
      burst.pkts[kept++] = m;
      continue;
    }
    if (!now) now = rte_rdtsc();
    rte_mbuf* whole = nullptr;
    Drop reason = Drop::ReassemblyFailed;
    unsigned dropped_held = 0;
    bool m_freed = false;
    switch (reassembler_->add(m, pm.l3_offset, now, whole, reason, dropped_held, m_freed)) {
      case nat::Reassembler::Outcome::Held:
        ++held;  // handed to the reassembly table (counted out, as a punt is)
        break;
      case nat::Reassembler::Outcome::Dropped:
        // Fragments held for the same datagram went too, freed by the reassembler.
        if (dropped_held) counters_.drop(reason, dropped_held);
        if (!m_freed) drop(burst, m, reason);
        break;
      case nat::Reassembler::Outcome::Complete: {
        // The chain carries the first fragment's headers and meta: now one whole datagram.
        PacketMeta& whole_meta = meta(whole);
        const auto* ip = rte_pktmbuf_mtod_offset(whole, const uint8_t*, whole_meta.l3_offset);
        whole_meta.l3_length = static_cast<uint16_t>(ip[2] << 8 | ip[3]);
        whole_meta.flags &= static_cast<uint8_t>(~(kMetaFragment | kMetaLaterFragment));
        ++reassembled;
        burst.pkts[kept++] = whole;
        break;
      }
    }
  }
  burst.count = kept;
  if (held) held_.add(held);
  if (reassembled) reassembled_.add(reassembled);
}

void ReassembleStage::read_counters(NamedCounters& out) const {
  out.emplace_back("held", held_.get());
  out.emplace_back("reassembled", reassembled_.get());
}

}  // namespace sluice::pipeline
