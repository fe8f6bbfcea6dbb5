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
  // Notes the pair every packet of `burst` names, so that forget_pair() passes over an
  // evicted pair nothing in the burst has named (nearly all of them) without a look.
  explicit PairChanges(const Burst& burst) {
    for (uint16_t i = 0; i < burst.count; ++i) {
      const uint32_t entry = flow_meta(burst.pkts[i]).entry;
      if (flow::is_pair(entry)) note(flow::main_index(entry));
    }
  }

  // Each new flow promotes (or removes) one entry and may evict three (two for room,
  // one ended flow holding its reply tuple): room for all.
  PairChange list[kMaxBurst * 4];
  unsigned count = 0;
  // A bit for every entry listed (a filter most lookups end at). 512 of them: a burst of
  // new flows against a full pool lists two entries a flow, and a filter much smaller
  // than that would send every packet of the burst through the list.
  uint64_t seen[8] = {};
  static unsigned seen_bit(uint32_t index) { return (index ^ (index >> 9)) & 511; }
  // The same for the pairs packets name: those the burst came with and those changes
  // before the current flow's made (a packet that follows its flow's change is given its
  // `now`). The current flow's own changes wait in `pending` until the next begin_flow():
  // its new pair usually sits where the pair it evicted was, which nothing named yet.
  uint64_t named[8] = {};
  uint64_t pending[8] = {};
  void note(uint32_t pair) {
    const unsigned bit = seen_bit(pair);
    named[bit >> 6] |= uint64_t(1) << (bit & 63);
  }
  // A new flow's changes start here: the index its forget_pair() calls take as `before`.
  unsigned begin_flow() {
    for (unsigned w = 0; w < 8; ++w) {
      named[w] |= pending[w];
      pending[w] = 0;
    }
    return count;
  }
  bool maybe_named(uint32_t pair) const {
    const unsigned bit = seen_bit(pair);
    return (named[bit >> 6] >> (bit & 63)) & 1;
  }
  void add(uint32_t plain, uint32_t now, Drop reason) {
    list[count++] = PairChange{plain, now, reason};
    const unsigned bit = seen_bit(plain);
    seen[bit >> 6] |= uint64_t(1) << (bit & 63);
    if (flow::is_pair(now)) {
      const unsigned now_bit = seen_bit(now);
      pending[now_bit >> 6] |= uint64_t(1) << (now_bit & 63);
    }
  }
  const PairChange* find(uint32_t plain) const {
    const unsigned bit = seen_bit(plain);
    if (!((seen[bit >> 6] >> (bit & 63)) & 1)) [[likely]]
      return nullptr;
    for (unsigned k = 0; k < count; ++k)
      if (list[k].plain == plain) return &list[k];
    return nullptr;
  }

  // Pair `pair` was evicted to make room for a new flow's translation, and that flow has
  // its place now: the packets of the burst kept so far that belong to it would leave
  // with what the later stages then find there, and a flow promoted into it earlier in
  // the burst (a change before `before`, begin_flow()'s) is gone. `drop(m)` drops one packet.
  template <typename DropFn>
  void forget_pair(Burst& burst, uint16_t& kept, unsigned before, uint32_t pair, DropFn&& drop) {
    // No packet named it, nor any change: a pair of another burst's flow, nothing to forget.
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
  }
};

}  // namespace sluice::pipeline
