// PairChanges, what the nat and lb stages keep of a burst's promoted, removed and evicted
// entries: every entry listed is found, whatever the filter in front of the list says.
#include <gtest/gtest.h>

#include "pipeline/pair_changes.h"
#include "test_support.h"

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

// forget_pair() of an evicted pair: a flow promoted into it earlier in the burst is gone
// (its change now says so); a pair nothing named is passed over.
TEST(PairChangesTest, ForgetPairUndoesOnlyWhatNamedThePair) {
  Burst burst;  // no packets: the changes alone name pairs
  PairChanges changes;
  const uint32_t pair = flow::kPairBit | 42, other = flow::kPairBit | 43;
  changes.add(7, pair, Drop::NatTableFull);  // plain 7 became the pair: the flow's changes start at 0
  uint16_t kept = 0;
  unsigned dropped = 0;
  changes.forget_pair(burst, kept, 0, other, [&](rte_mbuf*) { ++dropped; });  // that flow evicts
  EXPECT_FALSE(changes.maybe_named(pair)) << "a flow's own new pair names nothing until the next flow";
  const unsigned before = changes.count;  // a later flow evicts
  changes.forget_pair(burst, kept, before, other, [&](rte_mbuf*) { ++dropped; });
  EXPECT_TRUE(changes.maybe_named(pair));
  EXPECT_EQ(changes.find(7)->now, pair) << "another pair's eviction changes nothing";
  changes.forget_pair(burst, kept, before, pair, [&](rte_mbuf*) { ++dropped; });
  EXPECT_EQ(changes.find(7)->now, flow::kNoEntry) << "the flow promoted into the evicted pair is gone";
  EXPECT_EQ(changes.find(7)->reason, Drop::NatTableFull);
  EXPECT_EQ(dropped, 0u);
}

// With packets: those kept so far that name the evicted pair leave the burst, whether
// they came naming it or were given it by a change of this burst; others stay.
class PairChangesBurstTest : public test::MbufTest {};

TEST_F(PairChangesBurstTest, ForgetPairDropsTheKeptPacketsThatNameThePair) {
  ASSERT_TRUE(register_packet_meta());
  const uint32_t victim = flow::kPairBit | 7, other = flow::kPairBit | 8, made = flow::kPairBit | 9;
  Burst burst;
  const uint32_t entries[] = {victim, other, victim | flow::kReplyBit, 5};
  for (uint32_t entry : entries) {
    rte_mbuf* m = make_mbuf(std::vector<uint8_t>(64, 0));
    ASSERT_NE(m, nullptr);
    flow_meta(m) = FlowMeta{entry, kNoPort, 0, 0};
    burst.pkts[burst.count++] = m;
  }
  PairChanges changes;
  std::vector<rte_mbuf*> dropped;
  auto drop = [&](rte_mbuf* m) { dropped.push_back(m); };
  uint16_t kept = burst.count;

  changes.forget_pair(burst, kept, changes.count, flow::kPairBit | 1000, drop);  // named by nothing
  EXPECT_EQ(kept, 4u);
  EXPECT_TRUE(dropped.empty());

  // Packet 3's plain entry became `made` (the stage gives the packet its change's now).
  changes.add(5, made, Drop::NatTableFull);
  flow_meta(burst.pkts[3]).entry = made;
  const unsigned before = changes.count;  // a later flow evicts
  changes.forget_pair(burst, kept, before, victim, drop);  // by either key
  ASSERT_EQ(dropped.size(), 2u);
  EXPECT_EQ(flow_meta(dropped[0]).entry, victim);
  EXPECT_EQ(flow_meta(dropped[1]).entry, victim | flow::kReplyBit);
  changes.forget_pair(burst, kept, before, made, drop);
  ASSERT_EQ(dropped.size(), 3u);
  EXPECT_EQ(flow_meta(dropped[2]).entry, made);
  ASSERT_EQ(kept, 1u);
  EXPECT_EQ(flow_meta(burst.pkts[0]).entry, other);
  for (rte_mbuf* m : dropped) rte_pktmbuf_free(m);
  rte_pktmbuf_free(burst.pkts[0]);
}

}  // namespace
}  // namespace sluice::pipeline
