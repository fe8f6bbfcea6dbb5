#include "lb/lb_context.h"

namespace sluice::lb {

LbContext::LbContext()
    : backends_(new BackendCounters[kMaxBackendSlots]),
      services_(new ServiceCounters[kMaxServiceSlots]),
      cursors_(new uint32_t[kMaxServiceSlots]()),
      planned_(new uint16_t[kMaxBackendSlots]()) {}

uint16_t LbContext::pick(const Service& s, uint32_t hash) {
  switch (s.scheduler) {
    case config::LbScheduler::Maglev:
      return s.maglev.lookup(hash);
    case config::LbScheduler::RoundRobin: {
      if (s.eligible.empty()) return kNoBackend;
      // Weighted: a backend holds `weight` consecutive turns of the cursor's cycle.
      uint32_t total = 0;
      for (uint16_t i : s.eligible) total += s.backends[i].weight;
      uint32_t turn = cursors_[s.slot]++ % total;
      for (uint16_t i : s.eligible) {
        if (turn < s.backends[i].weight) return i;
        turn -= s.backends[i].weight;
      }
      return s.eligible.front();
    }
    case config::LbScheduler::LeastConnections: {
      // Fewest active connections per unit of weight (weighted least-connections).
      uint16_t best = kNoBackend;
      uint64_t best_active = 0, best_weight = 1;
      for (uint16_t i : s.eligible) {
        const Backend& b = s.backends[i];
        const uint64_t active = backends_[b.slot].active.get() + planned_[b.slot];
        if (best == kNoBackend || active * best_weight < best_active * b.weight) {
          best = i;
          best_active = active;
          best_weight = b.weight;
        }
      }
      if (best != kNoBackend) {
        const uint16_t slot = s.backends[best].slot;
        if (planned_[slot] == 0) {
          if (n_touched_ == kMaxTouched) return best;  // a burst never plans this many
          touched_[n_touched_++] = slot;
        }
        ++planned_[slot];
      }
      return best;
    }
  }
  return kNoBackend;
}

void LbContext::pair_removed(void* self, const flow::NatPair4& pair) {
  auto* ctx = static_cast<LbContext*>(self);
  if (pair.ext.backend < kMaxBackendSlots) ctx->backends_[pair.ext.backend].active.add(~uint64_t(0));
}

void LbContext::entry6_removed(void* self, const flow::FlowEntry6& entry) {
  auto* ctx = static_cast<LbContext*>(self);
  // Unopened: refused, or its first packet not yet at the lb stage; never counted active.
  if (entry.lb.service != flow::kLbUnopened && entry.lb.backend_slot < kMaxBackendSlots)
    ctx->backends_[entry.lb.backend_slot].active.add(~uint64_t(0));
}

}  // namespace sluice::lb
