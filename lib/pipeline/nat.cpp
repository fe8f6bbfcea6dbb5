#include "pipeline/nat.h"

#include <rte_byteorder.h>

#include "nat/translate.h"
#include "net/checksum.h"
#include "net/headers.h"
#include "pipeline/flow_keys.h"
#include "pipeline/packet_meta.h"

namespace sluice::pipeline {

using flow::kNoEntry;



NatStage::NatStage(uint16_t port_id, const NatStageContext& context) : Stage("nat"), port_id_(port_id), ctx_(context) {}

// The translation of the flow `m` just opened: its pair's index, kNoEntry when no rule
// applies, or refused (the entry is removed; the caller drops the packet).
NatStage::Outcome NatStage::map_new(const FlowMeta& fm, const nat::Ipv4Packet& p, const nat::Policy& policy,
                                    PairChanges& changes) {
  nat::NatContext& nat = *ctx_.nat;
  flow::FlowContext& flows = nat.flows();
  const uint32_t plain = fm.entry;
  const nat::NatContext::Mapped mapped = nat.map_flow(policy, port_id_, fm.egress, plain, nat_tuple(p), p.proto,
                                                      flows.now(), !(fm.flags & kFlowMetaDestinationKept));
  for (unsigned k = 0; k < mapped.n_evicted; ++k) changes.add(mapped.evicted[k], kNoEntry, Drop::NatTableFull);
  if (mapped.refused) {
    flow::FlowTable4& table = flows.table4();
    const flow::FlowEntry4& e = table.at(plain);
    flows.counters().state_leave(flow::state_slot(e.key.proto, e.body.state));
    flows.counters().unmapped.inc();
    table.remove(plain);
    changes.add(plain, kNoEntry, mapped.reason);
    return Outcome{kNoEntry, true, mapped.reason};
  }
  if (mapped.index != kNoEntry) {
    changes.add(plain, mapped.index, Drop::NatTableFull);
    mapped_.inc();
  }
  return Outcome{mapped.index, false, Drop::NatNoPort};
}

void NatStage::process(Burst& burst) {
  const nat::Policy& policy = *ctx_.policy->get();
  nat::NatContext& nat = *ctx_.nat;
  nat.see_policy(policy);
  flow::FlowTable4& table = nat.flows().table4();
  PairChanges changes;
  uint32_t translated = 0, errors = 0;
  uint16_t kept = 0;
  const uint16_t n = burst.count;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = burst.pkts[i];
    FlowMeta& fm = flow_meta(m);
    uint32_t index = fm.entry;
    if (index == kNoEntry || meta(m).l3 != L3::Ipv4) [[unlikely]] {
      if (fm.flags & kFlowMetaEvicted) {
        drop(burst, m, Drop::FlowTableFull);  // conntrack gave its flow's entry to a later one
        continue;
      }
      burst.pkts[kept++] = m;
      continue;
    }
    if (!flow::is_pair(index)) {
      // A flow of this burst: follow what happened to its entry, or make its translation.
      if (const PairChange* change = changes.find(index)) {
        if (change->now == kNoEntry) {
          drop(burst, m, change->reason);
          continue;
        }
        index = change->now;
      } else if (fm.flags & kFlowMetaNew) {
        const unsigned before = changes.count;
        const Outcome made = map_new(fm, ipv4_packet(m), policy, changes);
        for (unsigned k = before; k < changes.count; ++k)
          if (flow::is_pair(changes.list[k].plain)) [[unlikely]]
            changes.forget_pair(burst, kept, before, changes.list[k].plain,
                                [&](rte_mbuf* gone) { drop(burst, gone, Drop::NatTableFull); });
        if (made.refused) {
          drop(burst, m, made.reason);
          continue;
        }
        index = made.index;
      }
      if (!flow::is_pair(index)) {  // untranslated
        burst.pkts[kept++] = m;
        continue;
      }
      fm.entry = index;  // nat_src finds the pair
    } else if (changes.find(flow::main_index(index))) [[unlikely]] {
      // Its pair was evicted in this burst for a new flow's translation, which may hold it now.
      drop(burst, m, Drop::NatTableFull);
      continue;
    }
    const flow::NatExt4& ext = table.ext(index);
    if (nat::rewrites(ext, fm.dir, nat::Side::Destination)) {
      const nat::Endpoint to = nat::target(ext, fm.dir, nat::Side::Destination);
      if (fm.flags & kFlowMetaRelated) [[unlikely]] {
        const PacketMeta& pm = meta(m);
        const uint32_t icmp_length = pm.l3_offset + pm.l3_length - pm.l4_offset;
        if (nat::rewrite_error(m, ipv4_packet_whole(m), pm.l4_offset, icmp_length, nat::Side::Destination, to))
          ++errors;
      } else {
        nat::rewrite<nat::Side::Destination>(ipv4_packet(m), to);
        ++translated;
      }
    }
    burst.pkts[kept++] = m;
  }
  burst.count = kept;
  if (translated) translated_.add(translated);
  if (errors) {
    errors_translated_.add(errors);
    nat.counters().icmp_errors.add(errors);
  }
}

void NatStage::read_counters(NamedCounters& out) const {
  out.emplace_back("mapped", mapped_.get());
  out.emplace_back("translated", translated_.get());
  out.emplace_back("icmp_errors_translated", errors_translated_.get());
}

}  // namespace sluice::pipeline
