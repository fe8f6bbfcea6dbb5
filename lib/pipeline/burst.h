// A burst of packets moving through one pipeline. Stages compact `pkts` in place and
// hand what they discard to `discard()`; the worker frees discards in one bulk call.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

#include "config/config.h"
#include "stats/drop.h"

namespace sluice::pipeline {

inline constexpr uint16_t kMaxBurst = config::kMaxBurst;

struct Burst {
  uint16_t count = 0;
  uint16_t discarded = 0;
  rte_mbuf* pkts[kMaxBurst];
  rte_mbuf* discards[kMaxBurst];
  Drop discard_reasons[kMaxBurst];  // why each discard went: the tracer reads them

  void discard(rte_mbuf* m, Drop reason) {
    discard_reasons[discarded] = reason;
    discards[discarded++] = m;
  }
  void free_discards() {
    if (discarded) rte_pktmbuf_free_bulk(discards, discarded);
    discarded = 0;
  }
};

}  // namespace sluice::pipeline
