// PairChanges, what the nat and lb stages keep of a burst's promoted, removed and evicted
// entries: every entry listed is found, whatever the filter in front of the list says.
#include <gtest/gtest.h>

#include "pipeline/pair_changes.h"

namespace sluice::pipeline {
namespace {

// A burst of new flows against a full pool lists two entries a flow (the plain entry
// promoted, a pair evicted), more than a 64-bit filter could tell apart.
TEST(PairChangesTest, FindsEveryEntryOfAFullBurst) {
  PairChanges changes;
  const unsigned flows = kMaxBurst;
  for (uint32_t k = 0; k < flows; ++k) {
    changes.add(100 + k * 7, flow::kPairBit | (5000 + k), Drop::NatTableFull);  // promoted
    changes.add(flow::kPairBit | (9000 + k), flow::kNoEntry, Drop::NatTableFull);  // evicted
  }
  ASSERT_EQ(changes.count, 2 * flows);
  for (uint32_t k = 0; k < flows; ++k) {
    const PairChange* promoted = changes.find(100 + k * 7);
    ASSERT_NE(promoted, nullptr);
    EXPECT_EQ(promoted->now, flow::kPairBit | (5000 + k));
    const PairChange* evicted = changes.find(flow::kPairBit | (9000 + k));
    ASSERT_NE(evicted, nullptr);
    EXPECT_EQ(evicted->now, flow::kNoEntry);
  }
  // Entries never listed are not found, however many the filter lets through to the list.
  unsigned passed_filter = 0;
  for (uint32_t plain = 0; plain < 4096; ++plain) {
    if (plain >= 100 && plain < 100 + flows * 7 && (plain - 100) % 7 == 0) continue;
    EXPECT_EQ(changes.find(plain), nullptr) << plain;
    const unsigned bit = PairChanges::seen_bit(plain);
    passed_filter += (changes.seen[bit >> 6] >> (bit & 63)) & 1;
  }
  // 64 entries in 512 bits: most absent entries end at the filter.
  EXPECT_LT(passed_filter, 4096u / 4);
}

}  // namespace
}  // namespace sluice::pipeline
