// Health checks' state machine (lib/lb/health.h) on a fake clock: rise and fall counts,
// timeouts, late and stray answers, the probe schedule and its budget.
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lb/health.h"
#include "lb/maglev.h"

namespace sluice::lb {
namespace {

constexpr HealthSettings kSettings{.interval_ms = 1000, .timeout_ms = 300, .rise = 2, .fall = 3};

// One probe at `now`: sent, then answered `good` 10 ms later, or left to time out.
Transition probe(HealthCheck& h, uint64_t& now, bool answered, bool good = true) {
  EXPECT_TRUE(h.due(now)) << "at " << now;
  static uint32_t token = 100;
  h.sent(now, ++token);
  Transition t;
  if (answered) {
    t = h.answered(now + 10, token, good);
  } else {
    EXPECT_EQ(h.expire(now + kSettings.timeout_ms - 1), Transition::None) << "not yet timed out";
    t = h.expire(now + kSettings.timeout_ms);
  }
  now += kSettings.interval_ms;
  return t;
}

TEST(LbHealthTest, StartsUpAndGoesDownAfterFallFailuresInARow) {
  uint64_t now = 5000;
  HealthCheck h(kSettings, now);
  EXPECT_TRUE(h.up());
  EXPECT_EQ(probe(h, now, false), Transition::None);
  EXPECT_EQ(probe(h, now, true, false), Transition::None) << "a RST: failed";
  EXPECT_EQ(probe(h, now, true, true), Transition::None) << "a good one resets the count";
  EXPECT_EQ(probe(h, now, false), Transition::None);
  EXPECT_EQ(probe(h, now, false), Transition::None);
  EXPECT_TRUE(h.up());
  const uint64_t third_failure_at = now;
  EXPECT_EQ(probe(h, now, false), Transition::WentDown);
  EXPECT_FALSE(h.up());
  EXPECT_EQ(h.last_transition_ms(), third_failure_at + kSettings.timeout_ms);
  EXPECT_EQ(h.counters().probes, 6u);
  EXPECT_EQ(h.counters().timeouts, 4u);
  EXPECT_EQ(h.counters().failed, 1u);
  EXPECT_EQ(h.counters().good, 1u);
  EXPECT_EQ(h.counters().went_down, 1u);
}

TEST(LbHealthTest, ComesBackAfterRiseGoodProbesInARow) {
  uint64_t now = 0;
  HealthCheck h(kSettings, now);
  for (int i = 0; i < 3; ++i) probe(h, now, false);
  ASSERT_FALSE(h.up());
  EXPECT_EQ(probe(h, now, true), Transition::None);
  EXPECT_EQ(probe(h, now, false), Transition::None) << "a failure resets the rise count";
  EXPECT_EQ(probe(h, now, true), Transition::None);
  EXPECT_EQ(probe(h, now, true), Transition::WentUp);
  EXPECT_TRUE(h.up());
  EXPECT_EQ(h.counters().went_up, 1u);
  EXPECT_EQ(h.counters().went_down, 1u);
}

TEST(LbHealthTest, DownWithinFallTimesIntervalPlusTimeout) {
  // What the integration test checks end to end: a backend dead from time t is down by
  // t + fall x interval + timeout, whatever the phase of its probes.
  for (uint64_t phase : {0u, 1u, 499u, 999u}) {
    HealthCheck h(kSettings, phase);
    const uint64_t dies = 0;
    uint64_t down_at = 0;
    for (uint64_t t = dies; t < 10000 && !down_at; ++t) {
      if (h.expire(t) == Transition::WentDown) down_at = t;
      if (h.due(t)) h.sent(t, static_cast<uint32_t>(t));  // never answered
    }
    ASSERT_NE(down_at, 0u) << "phase " << phase;
    EXPECT_LE(down_at - dies, uint64_t(kSettings.fall) * kSettings.interval_ms + kSettings.timeout_ms)
        << "phase " << phase;
  }
}

TEST(LbHealthTest, LateAndStrayAnswersChangeNothing) {
  uint64_t now = 0;
  HealthCheck h(kSettings, now);
  h.sent(now, 7);
  EXPECT_EQ(h.answered(now + 5, 8, true), Transition::None) << "another token";
  EXPECT_TRUE(h.in_flight());
  EXPECT_EQ(h.expire(now + kSettings.timeout_ms), Transition::None);
  EXPECT_FALSE(h.in_flight());
  EXPECT_EQ(h.answered(now + kSettings.timeout_ms + 50, 7, true), Transition::None) << "after its timeout";
  EXPECT_EQ(h.counters().late, 2u);
  EXPECT_EQ(h.counters().timeouts, 1u);
  EXPECT_EQ(h.counters().good, 0u);
}

TEST(LbHealthTest, OneProbeAtATimeAndTheNextAnIntervalAfterTheLastStart) {
  HealthCheck h(kSettings, 100);
  EXPECT_FALSE(h.due(99));
  EXPECT_TRUE(h.due(100));
  h.sent(150, 1);
  EXPECT_FALSE(h.due(150 + kSettings.interval_ms)) << "still in flight";
  h.answered(160, 1, true);
  EXPECT_FALSE(h.due(150 + kSettings.interval_ms - 1));
  EXPECT_TRUE(h.due(150 + kSettings.interval_ms));
}

TEST(LbHealthTest, DueProbesAreBoundedAndNoBackendStarves) {
  std::vector<HealthCheck> checks;
  for (int i = 0; i < 10; ++i) checks.emplace_back(kSettings, 0);
  uint32_t cursor = 0;
  std::set<uint32_t> probed;
  for (int round = 0; round < 4; ++round) {
    const std::vector<uint32_t> due = due_probes(checks, 0, 3, cursor);
    ASSERT_LE(due.size(), 3u);
    for (uint32_t i : due) {
      EXPECT_TRUE(probed.insert(i).second) << "backend " << i << " twice before all had one";
      checks[i].sent(0, i);
    }
  }
  EXPECT_EQ(probed.size(), 10u) << "ten due backends, three a call: all in four calls";
  EXPECT_TRUE(due_probes(checks, 0, 3, cursor).empty()) << "all in flight";
}

TEST(LbHealthTest, FirstProbesAreSpreadOverAnInterval) {
  std::set<uint64_t> starts;
  for (uint64_t id = 0; id < 100; ++id) {
    const uint64_t at = first_probe_ms(10000, 1000, maglev_hash("10.0.0." + std::to_string(id) + ":80", 0));
    EXPECT_GE(at, 10000u);
    EXPECT_LT(at, 11000u);
    starts.insert(at);
  }
  EXPECT_GT(starts.size(), 90u);
}

}  // namespace
}  // namespace sluice::lb
