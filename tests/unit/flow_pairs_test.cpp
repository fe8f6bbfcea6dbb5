// FlowTable4's NAT pairs: promote, both keys in the buckets, the encoded indices, the
// pair observer, the timer links a promoted entry keeps, pair eviction, scan and sweep.
// Time is a plain number the tests move (the fake clock).
#include <arpa/inet.h>

#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "flow/flow_table.h"

namespace sluice::flow {
namespace {

// One translated flow: inside host i -> server 198.51.100.1:53 (UDP), its reply from the
// server to the outside address 203.0.113.1, port `outside_port`.
struct PairFlow {
  FlowKey4 orig, reply;
  unsigned opener_slot = 0;        // the opener's slot in `orig`
  unsigned reply_sender_slot = 0;  // the server's slot in `reply`
};

PairFlow pair_flow(uint32_t i, uint16_t outside_port) {
  PairFlow f;
  const uint32_t inside = htonl(0x0a000000 + i), server = htonl(0xc6336401), outside = htonl(0xcb007101);
  f.opener_slot = make_key4(f.orig, inside, server, htons(static_cast<uint16_t>(40000 + i % 20000)), htons(53), 17, 0);
  f.reply_sender_slot = make_key4(f.reply, server, outside, htons(53), htons(outside_port), 17, 0);
  return f;
}

// Counts what the table tells its pair observer.
struct Observed {
  unsigned calls = 0;
  std::vector<FlowKey4> orig_keys, reply_keys;
  static void on_pair(void* self, const NatPair4& pair) {
    auto* o = static_cast<Observed*>(self);
    ++o->calls;
    o->orig_keys.push_back(pair.main.key);
    o->reply_keys.push_back(pair.ext.reply_key);
  }
};

class FlowPairsTest : public ::testing::Test {
 protected:
  void make(uint32_t capacity, uint32_t pairs) {
    std::string error;
    static unsigned serial = 0;
    table_ = FlowTable4::create(capacity, SOCKET_ID_ANY, "ut_fp" + std::to_string(serial++), error, pairs);
    ASSERT_TRUE(table_) << error;
    table_->set_pair_observer(&Observed::on_pair, &observed_);
  }

  // The flow as conntrack makes it: a plain entry, its opener's slot noted, armed.
  uint32_t open(const PairFlow& f, uint32_t now, uint32_t timeout = 30000) {
    Victim v;
    const uint32_t i = table_->insert(f.orig, f.orig.hash(), now, v);
    EXPECT_NE(i, kNoEntry);
    if (i == kNoEntry) return i;
    if (f.opener_slot) table_->at(i).body.flags |= kFlowOpenerSlot1;
    table_->arm(i, now + timeout, now);
    return i;
  }

  // As the nat stage does it: the plain entry becomes a pair with the reply key.
  uint32_t promote(uint32_t plain, const PairFlow& f, uint32_t now) {
    const uint32_t p = table_->promote(plain, f.reply, f.reply.hash(), now, [this](uint32_t index, const FlowEntry4& e) {
      evicted_.push_back(index);
      evicted_keys_.push_back(e.key);
    });
    if (p != kNoEntry) table_->ext(p).reply_sender_slot = static_cast<uint8_t>(f.reply_sender_slot);
    return p;
  }

  uint32_t find(const FlowKey4& k) const { return table_->find(k, k.hash()); }
  uint32_t bucket_of(const FlowKey4& k) const { return k.hash() & (table_->bucket_count() - 1); }

  std::unique_ptr<FlowTable4> table_;
  Observed observed_;
  std::vector<uint32_t> evicted_;
  std::vector<FlowKey4> evicted_keys_;
};

TEST_F(FlowPairsTest, CreateReservesThePairPoolBesideThePlainOne) {
  make(64, 16);
  EXPECT_EQ(table_->capacity(), 64u);
  EXPECT_EQ(table_->pair_capacity(), 16u);
  EXPECT_EQ(table_->active(), 0u);
  EXPECT_EQ(table_->pairs_active(), 0u);
  EXPECT_EQ(table_->scan_end(), 80u);
  // Buckets for 64 + 2 x 16 keys at half load: 96 / 4 = 24, rounded up to 32.
  EXPECT_EQ(table_->bucket_count(), 32u);
}

TEST_F(FlowPairsTest, MemoryCountsBothPoolsAndBucketsForBothKeys) {
  make(1024, 512);
  // 1024 + 2 x 512 keys: 512 buckets.
  EXPECT_EQ(table_->bucket_count(), 512u);
  EXPECT_EQ(table_->memory_bytes(), 1024u * 64 + 512u * 128 + 512u * 64);
  std::string error;
  auto plain_only = FlowTable4::create(1024, SOCKET_ID_ANY, "ut_fp_plain", error);
  ASSERT_TRUE(plain_only) << error;
  EXPECT_EQ(plain_only->memory_bytes(), 1024u * 64 + 256u * 64);
}

TEST_F(FlowPairsTest, PromoteNeedsAPairPoolAndAPlainEntry) {
  std::string error;
  auto plain_only = FlowTable4::create(64, SOCKET_ID_ANY, "ut_fp_none", error);
  ASSERT_TRUE(plain_only) << error;
  const PairFlow f = pair_flow(1, 5000);
  Victim v;
  const uint32_t i = plain_only->insert(f.orig, f.orig.hash(), 0, v);
  ASSERT_NE(i, kNoEntry);
  auto no_evict = [](uint32_t, const FlowEntry4&) { ADD_FAILURE() << "nothing to evict"; };
  EXPECT_EQ(plain_only->promote(i, f.reply, f.reply.hash(), 0, no_evict), kNoEntry);
  EXPECT_EQ(plain_only->find(f.orig, f.orig.hash()), i) << "the plain entry is left as it was";

  make(64, 4);
  const uint32_t plain = open(f, 0);
  const uint32_t p = promote(plain, f, 0);
  ASSERT_NE(p, kNoEntry);
  EXPECT_EQ(promote(p, pair_flow(2, 5001), 0), kNoEntry) << "a pair is not promoted again";
  EXPECT_EQ(table_->pairs_active(), 1u);
}

TEST_F(FlowPairsTest, OriginalKeyFindsThePairAfterPromote) {
  make(64, 8);
  const PairFlow f = pair_flow(7, 5007);
  const uint32_t plain = open(f, 1000);
  table_->at(plain).body.state = static_cast<uint8_t>(GenericState::Replied);
  table_->at(plain).body.rule = 42;
  const uint32_t expires = table_->at(plain).body.expires;
  const uint32_t p = promote(plain, f, 1000);
  ASSERT_NE(p, kNoEntry);
  EXPECT_TRUE(is_pair(p));
  EXPECT_FALSE(is_reply(p));
  EXPECT_EQ(p & ~kIndexMask, kPairBit);
  EXPECT_EQ(find(f.orig), p);
  EXPECT_EQ(table_->key_at(p), f.orig);
  // The state came along.
  const FlowEntry4& e = table_->at(p);
  EXPECT_EQ(e.key, f.orig);
  EXPECT_EQ(e.body.state, static_cast<uint8_t>(GenericState::Replied));
  EXPECT_EQ(e.body.rule, 42);
  EXPECT_EQ(e.body.expires, expires);
  EXPECT_TRUE(e.body.flags & kFlowInUse);
  EXPECT_EQ(bool(e.body.flags & kFlowOpenerSlot1), f.opener_slot == 1);
  // One flow, now a pair.
  EXPECT_EQ(table_->active(), 1u);
  EXPECT_EQ(table_->pairs_active(), 1u);
  EXPECT_TRUE(evicted_.empty());
  EXPECT_EQ(observed_.calls, 0u);
}

TEST_F(FlowPairsTest, ReplyKeyFindsThePairAfterPromote) {
  make(64, 8);
  const PairFlow f = pair_flow(7, 5007);
  EXPECT_EQ(find(f.reply), kNoEntry);
  const uint32_t p = promote(open(f, 1000), f, 1000);
  ASSERT_NE(p, kNoEntry);
  const uint32_t r = find(f.reply);
  EXPECT_EQ(r, p | kReplyBit);
  EXPECT_TRUE(is_pair(r));
  EXPECT_TRUE(is_reply(r));
  EXPECT_EQ(main_index(r), p);
  EXPECT_EQ(table_->key_at(r), f.reply);
  // Both indices name the same two lines.
  EXPECT_EQ(&table_->at(r), &table_->at(p));
  EXPECT_EQ(&table_->ext(r), &table_->ext(p));
  const NatExt4& x = table_->ext(p);
  EXPECT_EQ(x.reply_key, f.reply);
  EXPECT_EQ(x.address_slot, 0xffff);
  EXPECT_EQ(x.rule, 0);
  EXPECT_EQ(x.kind, 0);
  EXPECT_EQ(x.orig, NatTuple4{});
  // The bulk lookup agrees with find() for both keys.
  const FlowKey4* keys[2] = {&f.orig, &f.reply};
  const uint32_t hashes[2] = {f.orig.hash(), f.reply.hash()};
  uint32_t out[2];
  table_->find_bulk(keys, hashes, 2, out);
  EXPECT_EQ(out[0], p);
  EXPECT_EQ(out[1], r);
}

TEST_F(FlowPairsTest, PromoteGivesThePlainEntryBackToItsPool) {
  make(64, 8);
  const PairFlow f = pair_flow(1, 5001);
  const uint32_t plain = open(f, 0);
  ASSERT_NE(promote(plain, f, 0), kNoEntry);
  // The next new flow takes the line the promoted one left.
  EXPECT_EQ(open(pair_flow(2, 5002), 0), plain);
  EXPECT_EQ(table_->active(), 2u);
  EXPECT_EQ(table_->pairs_active(), 1u);
  // The whole plain pool is there beside the pair.
  for (uint32_t i = 3; i < 3 + 63; ++i) EXPECT_NE(open(pair_flow(i, 0), 0), kNoEntry);
  EXPECT_EQ(table_->active(), 65u);
}

TEST_F(FlowPairsTest, PairDirectionTellsOpenerResponderAndStrangers) {
  make(64, 8);
  std::set<unsigned> opener_slots, reply_slots;
  // The flow keys order addresses as stored: these two put the opener, and the server
  // in the reply key, in slot 0 and then in slot 1.
  struct Hosts {
    const char *inside, *server;
  } cases[] = {{"10.0.0.1", "198.51.100.1"}, {"10.0.0.250", "198.51.100.200"}};
  for (const Hosts& h : cases) {
    PairFlow f;
    in_addr inside, server, outside;
    ASSERT_EQ(inet_pton(AF_INET, h.inside, &inside), 1);
    ASSERT_EQ(inet_pton(AF_INET, h.server, &server), 1);
    ASSERT_EQ(inet_pton(AF_INET, "203.0.113.1", &outside), 1);
    f.opener_slot = make_key4(f.orig, inside.s_addr, server.s_addr, htons(40000), htons(53), 17, 0);
    f.reply_sender_slot = make_key4(f.reply, server.s_addr, outside.s_addr, htons(53), htons(6000), 17, 0);
    opener_slots.insert(f.opener_slot);
    reply_slots.insert(f.reply_sender_slot);
    const uint32_t p = promote(open(f, 0), f, 0);
    ASSERT_NE(p, kNoEntry);
    const uint32_t r = find(f.reply);
    ASSERT_EQ(r, p | kReplyBit);
    // By the original key: only the opener's packets belong to the translated flow.
    EXPECT_EQ(table_->pair_direction(p, f.opener_slot), 0);
    EXPECT_EQ(table_->pair_direction(p, f.opener_slot ^ 1), -1) << "the responder to the untranslated address";
    // By the reply key: only the responder's.
    EXPECT_EQ(table_->pair_direction(r, f.reply_sender_slot), 1);
    EXPECT_EQ(table_->pair_direction(r, f.reply_sender_slot ^ 1), -1) << "a packet from the outside address itself";
  }
  EXPECT_EQ(opener_slots.size(), 2u) << "both opener slots covered";
  EXPECT_EQ(reply_slots.size(), 2u) << "both reply slots covered";
}

TEST_F(FlowPairsTest, ExpiringAPairTellsTheObserverOnceAndFreesBothKeys) {
  make(64, 8);
  const PairFlow f = pair_flow(3, 5003);
  const uint32_t p = promote(open(f, 0, 60000), f, 0);
  ASSERT_NE(p, kNoEntry);
  // A reply packet shortens the deadline through the reply index.
  table_->arm(p | kReplyBit, 500 + 2000, 500);
  unsigned expired = 0;
  auto count = [&](const FlowEntry4& e) {
    ++expired;
    EXPECT_EQ(e.key, f.orig);
  };
  table_->expire(2000, 100, count);
  EXPECT_EQ(expired, 0u);
  EXPECT_EQ(observed_.calls, 0u);
  table_->expire(2700, 100, count);
  EXPECT_EQ(expired, 1u);
  ASSERT_EQ(observed_.calls, 1u);
  EXPECT_EQ(observed_.orig_keys[0], f.orig);
  EXPECT_EQ(observed_.reply_keys[0], f.reply);
  EXPECT_EQ(find(f.orig), kNoEntry);
  EXPECT_EQ(find(f.reply), kNoEntry);
  EXPECT_EQ(table_->active(), 0u);
  EXPECT_EQ(table_->pairs_active(), 0u);
  // Nothing more comes due.
  table_->expire(300000, 10000, count);
  EXPECT_EQ(expired, 1u);
  EXPECT_EQ(observed_.calls, 1u);
}

TEST_F(FlowPairsTest, RemoveByEitherIndexFreesThePair) {
  make(64, 8);
  const PairFlow a = pair_flow(1, 5001), b = pair_flow(2, 5002);
  const uint32_t pa = promote(open(a, 0), a, 0), pb = promote(open(b, 0), b, 0);
  ASSERT_NE(pa, kNoEntry);
  ASSERT_NE(pb, kNoEntry);
  EXPECT_EQ(table_->pairs_active(), 2u);

  table_->remove(pa);
  EXPECT_EQ(observed_.calls, 1u);
  EXPECT_EQ(find(a.orig), kNoEntry);
  EXPECT_EQ(find(a.reply), kNoEntry);
  EXPECT_EQ(find(b.orig), pb);

  table_->remove(find(b.reply));  // the reply index
  EXPECT_EQ(observed_.calls, 2u);
  EXPECT_EQ(observed_.orig_keys[1], b.orig);
  EXPECT_EQ(find(b.orig), kNoEntry);
  EXPECT_EQ(find(b.reply), kNoEntry);
  EXPECT_EQ(table_->active(), 0u);
  EXPECT_EQ(table_->pairs_active(), 0u);
  // Neither is left in the wheel.
  unsigned expired = 0;
  table_->expire(100000, 10000, [&](const FlowEntry4&) { ++expired; });
  EXPECT_EQ(expired, 0u);
  EXPECT_EQ(observed_.calls, 2u);
}

TEST_F(FlowPairsTest, SetProtectedOnAPairByEitherIndex) {
  make(64, 8);
  const PairFlow f = pair_flow(1, 5001);
  const uint32_t p = promote(open(f, 0), f, 0);
  ASSERT_NE(p, kNoEntry);
  table_->set_protected(p | kReplyBit, true);
  EXPECT_TRUE(table_->at(p).body.flags & kFlowProtected);
  table_->set_protected(p, false);
  EXPECT_FALSE(table_->at(p).body.flags & kFlowProtected);
  table_->set_protected(p, true);
  EXPECT_TRUE(table_->at(p).body.flags & kFlowProtected);
  // Both keys are still found: only the hint changed.
  EXPECT_EQ(find(f.orig), p);
  EXPECT_EQ(find(f.reply), p | kReplyBit);
}

TEST_F(FlowPairsTest, ProtectionOfAPlainEntrySurvivesPromote) {
  make(8, 1);
  const PairFlow f = pair_flow(1, 5001);
  const uint32_t plain = open(f, 0);
  table_->set_protected(plain, true);
  const uint32_t p = promote(plain, f, 0);
  ASSERT_NE(p, kNoEntry);
  EXPECT_TRUE(table_->at(p).body.flags & kFlowProtected);
  // The only pair is protected: the next flow cannot have its place (its reply key's
  // eviction range starts at the pair's bucket).
  PairFlow next = pair_flow(2, 0);
  for (uint16_t port = 6000; bucket_of(next.reply) != bucket_of(f.orig); ++port) next = pair_flow(2, port);
  EXPECT_EQ(promote(open(next, 5000), next, 5000), kNoEntry);
  EXPECT_EQ(find(f.reply), p | kReplyBit);
  EXPECT_EQ(observed_.calls, 0u);
  // Unprotected, it gives way.
  table_->set_protected(p, false);
  EXPECT_EQ(promote(find(next.orig), next, 6000), p);
  EXPECT_EQ(observed_.calls, 1u);
  EXPECT_EQ(find(f.orig), kNoEntry);
}

// A tiny table (8 buckets): the eviction range of a reply key whose primary bucket holds
// the oldest pair's original key always reaches it.
TEST_F(FlowPairsTest, FullPairPoolEvictsTheOldestUnprotectedPair) {
  make(8, 4);
  ASSERT_EQ(table_->bucket_count(), 8u);
  std::vector<PairFlow> flows;
  std::vector<uint32_t> pairs;
  for (uint32_t i = 0; i < 4; ++i) {
    flows.push_back(pair_flow(i + 1, static_cast<uint16_t>(5000 + i)));
    const uint32_t now = i * 1000;  // creation order: the first is the oldest
    pairs.push_back(promote(open(flows[i], now, 600000), flows[i], now));
    ASSERT_NE(pairs.back(), kNoEntry);
  }
  EXPECT_EQ(table_->pairs_active(), 4u);
  // A fifth flow, its reply key's primary bucket the oldest pair's.
  PairFlow next = pair_flow(9, 0);
  for (uint16_t port = 6000;; ++port) {
    next = pair_flow(9, port);
    if (bucket_of(next.reply) == bucket_of(flows[0].orig)) break;
  }
  const uint32_t plain = open(next, 10000);
  // A plan of evictions that could wrap around so small a pool is not made.
  EXPECT_EQ(table_->pairs_free(), 0u);
  table_->plan_pair_evictions(8, 10000);
  const uint32_t p = promote(plain, next, 10000);
  ASSERT_NE(p, kNoEntry);
  ASSERT_EQ(evicted_.size(), 1u);
  EXPECT_EQ(evicted_[0], pairs[0]) << "the oldest pair, by its original index";
  EXPECT_EQ(evicted_keys_[0], flows[0].orig);
  ASSERT_EQ(observed_.calls, 1u);
  EXPECT_EQ(observed_.reply_keys[0], flows[0].reply);
  EXPECT_EQ(find(flows[0].orig), kNoEntry);
  EXPECT_EQ(find(flows[0].reply), kNoEntry);
  for (unsigned i = 1; i < 4; ++i) {
    EXPECT_EQ(find(flows[i].orig), pairs[i]);
    EXPECT_EQ(find(flows[i].reply), pairs[i] | kReplyBit);
  }
  EXPECT_EQ(find(next.orig), p);
  EXPECT_EQ(find(next.reply), p | kReplyBit);
  EXPECT_EQ(p, pairs[0]) << "the new pair reuses the evicted pair's place";
  EXPECT_EQ(table_->pairs_active(), 4u);
  EXPECT_EQ(table_->active(), 4u);
  // The evicted pair left the wheel: only the four live ones expire.
  unsigned expired = 0;
  table_->expire(700000, 10000, [&](const FlowEntry4&) { ++expired; });
  EXPECT_EQ(expired, 4u);
  EXPECT_EQ(table_->active(), 0u);
}

// The lb stage plans a burst's evictions before it opens the connections: the plan's
// picks are the scan's, taken in order while each pair is as it was when planned.
TEST_F(FlowPairsTest, PlannedEvictionsAreTheScansPicksUntilAPairMoves) {
  make(1024, 256);
  std::vector<uint32_t> pairs;
  for (uint32_t i = 0; i < 256; ++i) {
    const PairFlow f = pair_flow(i + 1, static_cast<uint16_t>(5000 + i));
    pairs.push_back(promote(open(f, i, 600000), f, i));  // deadlines in creation order
    ASSERT_NE(pairs.back(), kNoEntry);
  }
  ASSERT_EQ(table_->pairs_free(), 0u);
  table_->plan_pair_evictions(3, 1000);  // the first of each run of 16: pairs 0, 16, 32
  table_->arm(pairs[16], 1000 + 900000, 1000);  // a packet of pair 16 came since
  for (uint32_t k = 0; k < 3; ++k) {
    const PairFlow f = pair_flow(2000 + k, static_cast<uint16_t>(9000 + k));
    ASSERT_NE(promote(open(f, 1000), f, 1000), kNoEntry);
  }
  ASSERT_EQ(evicted_.size(), 3u);
  EXPECT_EQ(evicted_[0], pairs[0]) << "the plan's first pick";
  EXPECT_EQ(evicted_[1], pairs[17]) << "pair 16 moved: its run looked at afresh";
  EXPECT_EQ(evicted_[2], pairs[32]) << "the scan goes on from there";
  table_->end_eviction_plan();
}

TEST_F(FlowPairsTest, FullPairPoolOfProtectedPairsRefusesPromote) {
  make(8, 4);
  std::vector<PairFlow> flows;
  for (uint32_t i = 0; i < 4; ++i) {
    flows.push_back(pair_flow(i + 1, static_cast<uint16_t>(5000 + i)));
    const uint32_t p = promote(open(flows[i], i * 1000), flows[i], i * 1000);
    ASSERT_NE(p, kNoEntry);
    table_->set_protected(i % 2 ? p : p | kReplyBit, true);
  }
  const PairFlow next = pair_flow(9, 6000);
  const uint32_t plain = open(next, 10000);
  EXPECT_EQ(promote(plain, next, 10000), kNoEntry);
  EXPECT_TRUE(evicted_.empty());
  EXPECT_EQ(observed_.calls, 0u);
  EXPECT_EQ(find(next.orig), plain) << "the plain entry is left as it was";
  EXPECT_EQ(find(next.reply), kNoEntry);
  EXPECT_EQ(table_->pairs_active(), 4u);
  EXPECT_EQ(table_->active(), 5u);
  for (const PairFlow& f : flows) {
    EXPECT_NE(find(f.orig), kNoEntry);
    EXPECT_NE(find(f.reply), kNoEntry);
  }
}

// Three flows due at the same time share one wheel slot (linked newest first); the one
// at `position` (0: the slot's head) is promoted, its neighbours' links must follow.
class FlowPairsWheelTest : public FlowPairsTest, public ::testing::WithParamInterface<unsigned> {};

TEST_P(FlowPairsWheelTest, PromoteKeepsTheWheelSlotLinked) {
  make(16, 4);
  std::vector<PairFlow> flows;
  std::vector<uint32_t> index;
  for (uint32_t i = 0; i < 3; ++i) {
    flows.push_back(pair_flow(i + 1, static_cast<uint16_t>(5000 + i)));
    index.push_back(open(flows[i], 0, 5000));
  }
  // Linked at the head, so the last opened is the slot's first.
  const unsigned promoted = 2 - GetParam();
  const uint32_t p = promote(index[promoted], flows[promoted], 10);
  ASSERT_NE(p, kNoEntry);
  index[promoted] = p;
  // Nothing is due early.
  std::vector<FlowKey4> expired;
  auto note = [&](const FlowEntry4& e) { expired.push_back(e.key); };
  table_->expire(4900, 100, note);
  EXPECT_TRUE(expired.empty());
  // All three come due together: each exactly once, the pair through its observer too.
  EXPECT_EQ(table_->expire(5200, 100, note), 3u);
  ASSERT_EQ(expired.size(), 3u);
  std::set<uint32_t> hosts;
  for (const FlowKey4& k : expired)
    for (const PairFlow& f : flows)
      if (k == f.orig) hosts.insert(static_cast<uint32_t>(&f - flows.data()));
  EXPECT_EQ(hosts.size(), 3u);
  EXPECT_EQ(observed_.calls, 1u);
  EXPECT_EQ(table_->active(), 0u);
  EXPECT_EQ(table_->pairs_active(), 0u);
  // Both pools are whole and the wheel clean: a full table of new flows, some of them
  // pairs, expires in full.
  std::vector<uint32_t> fresh;
  for (uint32_t i = 100; i < 116; ++i) {
    flows.push_back(pair_flow(i, static_cast<uint16_t>(7000 + i)));
    fresh.push_back(open(flows.back(), 6000, 1000));
    ASSERT_NE(fresh.back(), kNoEntry);
  }
  for (uint32_t k = 0; k < 4; ++k) ASSERT_NE(promote(fresh[k * 3], flows[3 + k * 3], 6000), kNoEntry);
  EXPECT_EQ(table_->expire(7500, 1000, note), 16u);
  EXPECT_EQ(observed_.calls, 5u);
  EXPECT_EQ(table_->active(), 0u);
}

std::string position_name(const ::testing::TestParamInfo<unsigned>& position) {
  static const char* const kNames[] = {"Head", "Middle", "Tail"};
  return kNames[position.param];
}
INSTANTIATE_TEST_SUITE_P(Positions, FlowPairsWheelTest, ::testing::Values(0u, 1u, 2u), position_name);

TEST_F(FlowPairsTest, NeighboursRemovedAroundAPromotedEntryLeaveItDueOnItsOwn) {
  make(16, 4);
  const PairFlow before = pair_flow(1, 5001), mid = pair_flow(2, 5002), after = pair_flow(3, 5003);
  const uint32_t b = open(before, 0, 5000);
  const uint32_t m = open(mid, 0, 5000);
  const uint32_t a = open(after, 0, 5000);
  const uint32_t p = promote(m, mid, 10);
  ASSERT_NE(p, kNoEntry);
  // Removing its neighbours writes into the pair's links, not the freed plain line.
  table_->remove(b);
  table_->remove(a);
  EXPECT_EQ(table_->active(), 1u);
  // The freed plain lines are reused at once, with deadlines of their own.
  const PairFlow x = pair_flow(4, 0), y = pair_flow(5, 0), z = pair_flow(6, 0);
  open(x, 20, 60000);
  open(y, 20, 60000);
  open(z, 20, 60000);
  std::vector<FlowKey4> expired;
  EXPECT_EQ(table_->expire(5200, 100, [&](const FlowEntry4& e) { expired.push_back(e.key); }), 1u);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0], mid.orig);
  EXPECT_EQ(observed_.calls, 1u);
  EXPECT_EQ(find(x.orig) != kNoEntry && find(y.orig) != kNoEntry && find(z.orig) != kNoEntry, true);
  EXPECT_EQ(table_->expire(61000, 1000, [&](const FlowEntry4& e) { expired.push_back(e.key); }), 3u);
  EXPECT_EQ(table_->active(), 0u);
}

TEST_F(FlowPairsTest, ScanVisitsPairsAfterPlainEntriesWithTheirIndices) {
  make(16, 8);
  std::vector<uint32_t> expected;
  for (uint32_t i = 0; i < 5; ++i) {
    const PairFlow f = pair_flow(i + 1, static_cast<uint16_t>(5000 + i));
    const uint32_t plain = open(f, 0);
    if (i % 2 == 0) {
      const uint32_t p = promote(plain, f, 0);
      ASSERT_NE(p, kNoEntry);
    }
  }
  // Plain entries 0.. in pool order, then pairs 0.. with kPairBit.
  std::vector<uint32_t> seen;
  EXPECT_EQ(table_->scan(0, table_->scan_end(), [&](uint32_t index, FlowEntry4& e) {
    EXPECT_EQ(&e, &table_->at(index));
    seen.push_back(index);
    return true;
  }),
            table_->scan_end());
  ASSERT_EQ(seen.size(), 5u);
  unsigned plain = 0, pairs = 0;
  for (size_t k = 0; k < seen.size(); ++k) {
    if (is_pair(seen[k])) {
      EXPECT_FALSE(is_reply(seen[k])) << "a pair is visited once, by its original index";
      EXPECT_LT(seen[k] & kIndexMask, table_->pair_capacity());
      ++pairs;
    } else {
      EXPECT_EQ(pairs, 0u) << "plain entries come first";
      EXPECT_LT(seen[k], table_->capacity());
      ++plain;
    }
    if (k) {
      EXPECT_LT(seen[k - 1], seen[k]);
    }
  }
  EXPECT_EQ(plain, 2u);
  EXPECT_EQ(pairs, 3u);
  // A position at a time gives the same walk.
  std::vector<uint32_t> stepped;
  for (uint32_t at = 0; at < table_->scan_end();)
    at = table_->scan(at, 1, [&](uint32_t index, FlowEntry4&) {
      stepped.push_back(index);
      return true;
    });
  EXPECT_EQ(stepped, seen);
  // Stopping on a pair resumes after it.
  const uint32_t stop = table_->scan(0, table_->scan_end(), [&](uint32_t index, FlowEntry4&) { return !is_pair(index); });
  EXPECT_EQ(stop, table_->capacity() + (seen[2] & kIndexMask) + 1);
}

TEST_F(FlowPairsTest, SweepRemovesPlainEntriesAndPairs) {
  make(16, 8);
  for (uint32_t i = 0; i < 10; ++i) {
    const PairFlow f = pair_flow(i + 1, static_cast<uint16_t>(5000 + i));
    const uint32_t plain = open(f, 0);
    if (i < 6) {
      ASSERT_NE(promote(plain, f, 0), kNoEntry);
    }
  }
  EXPECT_EQ(table_->active(), 10u);
  EXPECT_EQ(table_->pairs_active(), 6u);
  unsigned seen = 0;
  EXPECT_EQ(table_->sweep([&](const FlowEntry4&) { ++seen; }), 10u);
  EXPECT_EQ(seen, 10u);
  EXPECT_EQ(observed_.calls, 6u);
  EXPECT_EQ(table_->active(), 0u);
  EXPECT_EQ(table_->pairs_active(), 0u);
  // Both pools whole again.
  for (uint32_t i = 0; i < 8; ++i) {
    const PairFlow f = pair_flow(100 + i, static_cast<uint16_t>(6000 + i));
    ASSERT_NE(promote(open(f, 0), f, 0), kNoEntry);
  }
  for (uint32_t i = 0; i < 16; ++i) EXPECT_NE(open(pair_flow(200 + i, 0), 0), kNoEntry);
  EXPECT_EQ(table_->active(), 24u);
}

TEST_F(FlowPairsTest, PlainPoolEvictionNeverTakesAPair) {
  make(64, 32);
  std::vector<PairFlow> flows;
  for (uint32_t i = 0; i < 32; ++i) {
    flows.push_back(pair_flow(i + 1, static_cast<uint16_t>(5000 + i)));
    ASSERT_NE(promote(open(flows[i], 0, 600000), flows[i], 0), kNoEntry);  // the oldest flows of all
  }
  uint32_t now = 60000;
  for (uint32_t i = 0; i < 64; ++i) ASSERT_NE(open(pair_flow(1000 + i, 0), now, 600000), kNoEntry);
  EXPECT_EQ(table_->active(), 96u);
  unsigned evictions = 0;
  for (uint32_t i = 0; i < 500; ++i) {
    now += 100;
    const PairFlow f = pair_flow(2000 + i, 0);
    Victim v;
    const uint32_t e = table_->insert(f.orig, f.orig.hash(), now, v);
    if (e == kNoEntry) continue;
    ASSERT_FALSE(is_pair(e));
    table_->arm(e, now + 600000, now);
    if (v.evicted) {
      ++evictions;
      EXPECT_EQ(v.proto, 17);
    }
  }
  EXPECT_GT(evictions, 400u);
  EXPECT_EQ(observed_.calls, 0u) << "no pair was evicted";
  EXPECT_EQ(table_->pairs_active(), 32u);
  for (const PairFlow& f : flows) {
    EXPECT_TRUE(is_pair(find(f.orig)));
    EXPECT_TRUE(is_reply(find(f.reply)));
  }
}

}  // namespace
}  // namespace sluice::flow
