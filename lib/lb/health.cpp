#include "lb/health.h"

namespace sluice::lb {

void HealthCheck::sent(uint64_t now_ms, uint32_t token) {
  in_flight_ = true;
  token_ = token;
  sent_ms_ = now_ms;
  // The next one an interval after this one's start, however long this one takes.
  next_probe_ms_ = now_ms + settings_.interval_ms;
  ++counters_.probes;
}

Transition HealthCheck::answered(uint64_t now_ms, uint32_t token, bool good) {
  if (!in_flight_ || token != token_) {
    ++counters_.late;
    return Transition::None;
  }
  in_flight_ = false;
  if (good) ++counters_.good;
  else ++counters_.failed;
  return record(now_ms, good);
}

Transition HealthCheck::expire(uint64_t now_ms) {
  if (!in_flight_ || now_ms - sent_ms_ < settings_.timeout_ms) return Transition::None;
  in_flight_ = false;
  ++counters_.timeouts;
  return record(now_ms, false);
}

Transition HealthCheck::record(uint64_t now_ms, bool good) {
  if (good) {
    failed_in_a_row_ = 0;
    if (up_ || ++good_in_a_row_ < settings_.rise) return Transition::None;
    up_ = true;
    good_in_a_row_ = 0;
    last_transition_ms_ = now_ms;
    ++counters_.went_up;
    return Transition::WentUp;
  }
  good_in_a_row_ = 0;
  if (!up_ || ++failed_in_a_row_ < settings_.fall) return Transition::None;
  up_ = false;
  failed_in_a_row_ = 0;
  last_transition_ms_ = now_ms;
  ++counters_.went_down;
  return Transition::WentDown;
}

std::vector<uint32_t> due_probes(const std::vector<HealthCheck>& checks, uint64_t now_ms, uint32_t budget,
                                 uint32_t& cursor) {
  std::vector<uint32_t> out;
  const uint32_t n = static_cast<uint32_t>(checks.size());
  if (n == 0 || budget == 0) return out;
  if (cursor >= n) cursor = 0;
  // One pass from the cursor; the next call starts after the last one taken, so a
  // backend skipped for want of budget is first in line next time.
  for (uint32_t k = 0; k < n && out.size() < budget; ++k) {
    const uint32_t i = cursor + k < n ? cursor + k : cursor + k - n;
    if (checks[i].due(now_ms)) out.push_back(i);
  }
  if (!out.empty()) cursor = out.back() + 1 < n ? out.back() + 1 : 0;
  return out;
}

uint64_t first_probe_ms(uint64_t now_ms, uint32_t interval_ms, uint64_t id_hash) {
  return interval_ms ? now_ms + id_hash % interval_ms : now_ms;
}

}  // namespace sluice::lb
