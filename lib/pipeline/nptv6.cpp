#include "pipeline/nptv6.h"

#include "pipeline/nat_src.h"
#include "pipeline/packet_meta.h"

namespace sluice::pipeline {

Nptv6Stage::Nptv6Stage(uint16_t port_id, const NatStageContext& context)
    : Stage("nptv6"), port_id_(port_id), ctx_(context) {}

void Nptv6Stage::process(Burst& burst) {
  const nat::Policy& policy = *ctx_.policy->get();
  if (!policy.has_nptv6_on(port_id_)) return;  // a reload took the mapping away
  uint16_t kept = 0;
  uint32_t translated = 0;
  const uint16_t n = burst.count;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = burst.pkts[i];
    if (meta(m).l3 == L3::Ipv6) {
      const int done = nptv6_packet(m, policy, port_id_, false);
      if (done < 0) [[unlikely]] {
        drop(burst, m, Drop::Nptv6Untranslatable);
        continue;
      }
      translated += static_cast<uint32_t>(done);
    }
    burst.pkts[kept++] = m;
  }
  burst.count = kept;
  if (translated) {
    translated_.add(translated);
    ctx_.nat->counters().nptv6_translated.add(translated);
  }
}

void Nptv6Stage::read_counters(NamedCounters& out) const { out.emplace_back("translated", translated_.get()); }

}  // namespace sluice::pipeline
