// What the stages that make NAT pairs (nat, lb) keep for one burst: the entries whose
// index changed under the packets that follow (promoted to a pair, removed, or evicted
// to make room), so that those packets follow their flow or are dropped with it.
#pragma once

#include <cstdint>

#include "flow/flow_table.h"
#include "pipeline/burst.h"
#include "pipeline/packet_meta.h"
#include "stats/drop.h"

namespace sluice::pipeline {

struct PairChange {
  uint32_t plain;
  uint32_t now;  // the pair, or kNoEntry when the flow is gone
  Drop reason;
};

struct PairChanges {
  // Each new flow promotes (or removes) one entry and may evict three (two for room,
  // one ended flow holding its reply tuple): room for all.
  PairChange list[kMaxBurst * 4];
  unsigned count = 0;
  // A bit for every entry listed (a filter most lookups end at). 512 of them: a burst of
  // new flows against a full pool lists two entries a flow, and a filter much smaller
  // than that would send every packet of the burst through the list.
  uint64_t seen[8] = {};
  static unsigned seen_bit(uint32_t index) { return (index ^ (index >> 9)) & 511; }
  void add(uint32_t plain, uint32_t now, Drop reason) {
    list[count++] = PairChange{plain, now, reason};
    const unsigned bit = seen_bit(plain);
    seen[bit >> 6] |= uint64_t(1) << (bit & 63);
  }
  const PairChange* find(uint32_t plain) const {
    const unsigned bit = seen_bit(plain);
    if (!((seen[bit >> 6] >> (bit & 63)) & 1)) [[likely]]
      return nullptr;
    for (unsigned k = 0; k < count; ++k)
      if (list[k].plain == plain) return &list[k];
    return nullptr;
  }

  // The same filter for the pairs forget_pair() may have to undo: those the kept packets
  // name (`burst.pkts[0, named_packets)`) and those earlier flows' changes made
  // (`list[0, named_changes)`), noted by forget_pair() as far as it needs, so that a burst
  // without evictions pays nothing for it.
  uint64_t named[8] = {};
  uint16_t named_packets = 0;
  unsigned named_changes = 0;
  void note(uint32_t pair) {
    const unsigned bit = seen_bit(pair);
    named[bit >> 6] |= uint64_t(1) << (bit & 63);
  }
  bool maybe_named(uint32_t pair) const {
    const unsigned bit = seen_bit(pair);
    return (named[bit >> 6] >> (bit & 63)) & 1;
  }

  // Pair `pair` was evicted to make room for a new flow's translation, and that flow has
  // its place now: the packets of the burst kept so far that belong to it would leave
  // with what the later stages then find there, and a flow promoted into it earlier in
  // the burst (a change before `before`, where the new flow's own begin) is gone.
  // `drop(m)` drops one packet.
  template <typename DropFn>
  void forget_pair(Burst& burst, uint16_t& kept, unsigned before, uint32_t pair, DropFn&& drop) {
    for (; named_packets < kept; ++named_packets) {
      const uint32_t entry = flow_meta(burst.pkts[named_packets]).entry;
      if (flow::is_pair(entry)) note(flow::main_index(entry));
    }
    // Not the new flow's own changes: its new pair usually sits where the evicted one was.
    for (; named_changes < before; ++named_changes)
      if (flow::is_pair(list[named_changes].now)) note(list[named_changes].now);
    // Named by no kept packet and no earlier change: another burst's flow, nothing to forget.
    if (!maybe_named(pair)) [[likely]]
      return;
    for (unsigned k = 0; k < before; ++k) {
      if (list[k].now != pair) continue;
      list[k].now = flow::kNoEntry;
      list[k].reason = Drop::NatTableFull;
    }
    uint16_t still = 0;
    for (uint16_t j = 0; j < kept; ++j) {
      rte_mbuf* m = burst.pkts[j];
      if (flow::main_index(flow_meta(m).entry) == pair) drop(m);
      else burst.pkts[still++] = m;
    }
    kept = still;
    named_packets = still;  // those left were noted; the filter keeps the others' bits
  }
};

}  // namespace sluice::pipeline
