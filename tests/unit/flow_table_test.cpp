// FlowTable and FlowContext: keys, bulk lookups, early drop, the timer wheel, the
// control-thread mailbox. Time is a plain number the tests move (the fake clock).
#include <arpa/inet.h>

#include <algorithm>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "flow/flow_context.h"
#include "flow/flow_table.h"

namespace sluice::flow {
namespace {

FlowKey4 key4(uint32_t i, uint16_t zone = 0) {
  FlowKey4 k;
  make_key4(k, htonl(0x0a000000 + i), htonl(0xc0a80001), htons(static_cast<uint16_t>(1024 + i % 60000)), htons(80),
            6, zone);
  return k;
}

std::unique_ptr<FlowTable4> make_table(uint32_t capacity) {
  std::string error;
  static unsigned serial = 0;
  auto t = FlowTable4::create(capacity, SOCKET_ID_ANY, "ut_ft" + std::to_string(serial++), error);
  EXPECT_TRUE(t) << error;
  return t;
}

uint32_t insert(FlowTable4& t, const FlowKey4& k, uint32_t now, uint32_t timeout = 30000) {
  Victim v;
  uint32_t i = t.insert(k, k.hash(), now, v);
  if (i != kNoEntry) t.arm(i, now + timeout, now);
  return i;
}

TEST(FlowKey, BothDirectionsGiveOneKey) {
  FlowKey4 a, b;
  unsigned sa = make_key4(a, htonl(0x0a000001), htonl(0x0a000002), htons(1234), htons(80), 6, 3);
  unsigned sb = make_key4(b, htonl(0x0a000002), htonl(0x0a000001), htons(80), htons(1234), 6, 3);
  EXPECT_EQ(a, b);
  EXPECT_NE(sa, sb);
  EXPECT_EQ(a.hash(), b.hash());
}

TEST(FlowKey, SameAddressesOrderByPort) {
  FlowKey4 a, b;
  unsigned sa = make_key4(a, htonl(0x0a000001), htonl(0x0a000001), htons(5), htons(9), 17, 0);
  unsigned sb = make_key4(b, htonl(0x0a000001), htonl(0x0a000001), htons(9), htons(5), 17, 0);
  EXPECT_EQ(a, b);
  EXPECT_NE(sa, sb);
}

TEST(FlowKey, ZoneAndProtocolSeparateFlows) {
  FlowKey4 a, b, c;
  make_key4(a, 1, 2, 3, 4, 6, 0);
  make_key4(b, 1, 2, 3, 4, 6, 1);
  make_key4(c, 1, 2, 3, 4, 17, 0);
  EXPECT_FALSE(a == b);
  EXPECT_FALSE(a == c);
}

TEST(FlowKey, Ipv6BothDirectionsGiveOneKey) {
  uint8_t x[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  uint8_t y[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  FlowKey6 a, b;
  unsigned sa = make_key6(a, x, y, htons(1), htons(2), 17, 0);
  unsigned sb = make_key6(b, y, x, htons(2), htons(1), 17, 0);
  EXPECT_EQ(a, b);
  EXPECT_NE(sa, sb);
  EXPECT_EQ(direction(FlowBody{}, sa), 0u);
}

TEST(FlowEntry, Ipv4EntryIsOneCacheLine) {
  EXPECT_EQ(sizeof(FlowEntry4), 64u);
  EXPECT_EQ(alignof(FlowEntry4), 64u);
  EXPECT_EQ(sizeof(FlowBucket), 64u);
}

TEST(FlowTable, InsertThenFindAndRemove) {
  auto t = make_table(1024);
  const FlowKey4 k = key4(7);
  EXPECT_EQ(t->find(k, k.hash()), kNoEntry);
  uint32_t i = insert(*t, k, 1000);
  ASSERT_NE(i, kNoEntry);
  EXPECT_EQ(t->find(k, k.hash()), i);
  EXPECT_EQ(t->active(), 1u);
  t->remove(i);
  EXPECT_EQ(t->find(k, k.hash()), kNoEntry);
  EXPECT_EQ(t->active(), 0u);
}

TEST(FlowTable, FindBulkAgreesWithFind) {
  auto t = make_table(4096);
  std::vector<FlowKey4> keys;
  for (uint32_t i = 0; i < 3000; ++i) keys.push_back(key4(i));
  for (uint32_t i = 0; i < 3000; i += 2) ASSERT_NE(insert(*t, keys[i], 0), kNoEntry);
  for (uint32_t base = 0; base < 3000; base += 64) {
    const FlowKey4* ptrs[64];
    uint32_t hashes[64], out[64];
    unsigned n = 0;
    for (uint32_t i = base; i < base + 64 && i < 3000; ++i, ++n) {
      ptrs[n] = &keys[i];
      hashes[n] = keys[i].hash();
    }
    t->find_bulk(ptrs, hashes, n, out);
    for (unsigned j = 0; j < n; ++j) {
      EXPECT_EQ(out[j], t->find(*ptrs[j], hashes[j]));
      EXPECT_EQ(out[j] != kNoEntry, (base + j) % 2 == 0);
    }
  }
}

TEST(FlowTable, FillsToCapacityThenEvictsOldestUnprotected) {
  auto t = make_table(1024);
  uint32_t now = 0;
  uint32_t inserted = 0;
  for (uint32_t i = 0; i < 1024; ++i) {
    if (insert(*t, key4(i), now) != kNoEntry) ++inserted;
    if (i % 128 == 127) now += 1000;  // creation seconds advance
  }
  EXPECT_EQ(inserted, 1024u) << "capacity/4 buckets of 8 slots: every flow fits";
  EXPECT_EQ(t->active(), 1024u);
  // The pool is full: the next flow evicts an old unprotected one near its key.
  Victim v;
  const FlowKey4 k = key4(5000);
  uint32_t i = t->insert(k, k.hash(), now, v);
  ASSERT_NE(i, kNoEntry);
  EXPECT_TRUE(v.evicted);
  EXPECT_EQ(t->active(), 1024u);
}

TEST(FlowTable, ProtectedFlowsAreNeverEvicted) {
  auto t = make_table(1024);
  for (uint32_t i = 0; i < 1024; ++i) {
    uint32_t e = insert(*t, key4(i), 0);
    ASSERT_NE(e, kNoEntry);
    t->set_protected(e, true);
  }
  Victim v;
  const FlowKey4 k = key4(9999);
  EXPECT_EQ(t->insert(k, k.hash(), 1000, v), kNoEntry) << "nothing may be evicted: the new flow is refused";
  EXPECT_FALSE(v.evicted);
  for (uint32_t i = 0; i < 1024; ++i) EXPECT_NE(t->find(key4(i), key4(i).hash()), kNoEntry);
}

TEST(FlowTable, EarlyDropPrefersTheOldest) {
  auto t = make_table(1024);
  // Fill, with every flow protected except two near the key we will insert.
  std::vector<uint32_t> entries;
  for (uint32_t i = 0; i < 1024; ++i) entries.push_back(insert(*t, key4(i), i < 512 ? 0 : 60000));
  for (uint32_t e : entries) t->set_protected(e, true);
  // Unprotect everything: the oldest (created at 0 s) must go first.
  for (uint32_t e : entries) t->set_protected(e, false);
  Victim v;
  const FlowKey4 k = key4(7777);
  ASSERT_NE(t->insert(k, k.hash(), 61000, v), kNoEntry);
  ASSERT_TRUE(v.evicted);
  // Count survivors of each age: one old flow is gone, every young one stays.
  unsigned old_left = 0, young_left = 0;
  for (uint32_t i = 0; i < 1024; ++i)
    if (t->find(key4(i), key4(i).hash()) != kNoEntry) (i < 512 ? old_left : young_left)++;
  EXPECT_EQ(young_left, 512u);
  EXPECT_EQ(old_left, 511u);
}

TEST(FlowTable, ExpiresOnlyWhenDue) {
  auto t = make_table(64);
  const FlowKey4 k = key4(1);
  uint32_t i = insert(*t, k, 1000, 10000);  // due at 11000
  unsigned expired = 0;
  auto count = [&](const FlowEntry4&) { ++expired; };
  t->expire(10000, 100, count);
  EXPECT_EQ(expired, 0u);
  t->expire(11500, 100, count);
  EXPECT_EQ(expired, 1u);
  EXPECT_EQ(t->find(k, k.hash()), kNoEntry);
  (void)i;
}

TEST(FlowTable, RefreshedFlowOutlivesItsFirstDeadline) {
  auto t = make_table(64);
  const FlowKey4 k = key4(1);
  uint32_t i = insert(*t, k, 0, 1000);
  unsigned expired = 0;
  auto count = [&](const FlowEntry4&) { ++expired; };
  for (uint32_t now = 100; now < 20000; now += 100) {
    t->arm(i, now + 1000, now);  // a packet every 100 ms
    t->expire(now, 100, count);
  }
  EXPECT_EQ(expired, 0u);
  t->expire(22000, 1000, count);
  EXPECT_EQ(expired, 1u);
}

TEST(FlowTable, EarlierDeadlineRelinksAtOnce) {
  auto t = make_table(64);
  const FlowKey4 k = key4(1);
  uint32_t i = insert(*t, k, 0, 432000000);  // established: 5 days
  unsigned expired = 0;
  auto count = [&](const FlowEntry4&) { ++expired; };
  t->arm(i, 100 + 10000, 100);  // RST: close in 10 s
  t->expire(10000, 100, count);
  EXPECT_EQ(expired, 0u);
  t->expire(10300, 100, count);
  EXPECT_EQ(expired, 1u) << "a shortened timeout must not wait for the old slot";
}

TEST(FlowTable, LongTimeoutsBeyondTheWheelHorizon) {
  auto t = make_table(64);
  const FlowKey4 k = key4(1);
  insert(*t, k, 0, 600000);  // 600 s > 262 s horizon
  unsigned expired = 0;
  auto count = [&](const FlowEntry4&) { ++expired; };
  for (uint32_t now = 0; now <= 599000; now += 500) t->expire(now, 16, count);
  EXPECT_EQ(expired, 0u);
  for (uint32_t now = 599500; now <= 601000; now += 100) t->expire(now, 16, count);
  EXPECT_EQ(expired, 1u);
}

TEST(FlowTable, ExpiryWorkIsBoundedPerCall) {
  auto t = make_table(4096);
  for (uint32_t i = 0; i < 2000; ++i) insert(*t, key4(i), 0, 1000);
  unsigned expired = 0;
  auto count = [&](const FlowEntry4&) { ++expired; };
  unsigned got = t->expire(5000, 64, count);
  EXPECT_LE(got, 64u);
  unsigned rounds = 1;
  while (t->active() > 0 && rounds < 1000) {
    t->expire(5000 + rounds, 64, count);
    ++rounds;
  }
  EXPECT_EQ(expired, 2000u);
  EXPECT_GE(rounds, 2000u / 64);
}

TEST(FlowTable, ClockWrapsAroundTwoToThe32Ms) {
  auto t = make_table(64);
  const uint32_t start = 0xffffff00u;
  const FlowKey4 k = key4(3);
  insert(*t, k, start, 2000);  // due after the wrap
  unsigned expired = 0;
  auto count = [&](const FlowEntry4&) { ++expired; };
  t->expire(start + 1000, 16, count);
  EXPECT_EQ(expired, 0u);
  t->expire(start + 2200, 16, count);
  EXPECT_EQ(expired, 1u);
}

TEST(FlowTable, SweepEmptiesTheTable) {
  auto t = make_table(256);
  for (uint32_t i = 0; i < 200; ++i) insert(*t, key4(i), 0);
  unsigned seen = 0;
  EXPECT_EQ(t->sweep([&](const FlowEntry4&) { ++seen; }), 200u);
  EXPECT_EQ(seen, 200u);
  EXPECT_EQ(t->active(), 0u);
  // The pool is whole again.
  for (uint32_t i = 0; i < 256; ++i) EXPECT_NE(insert(*t, key4(1000 + i), 0), kNoEntry);
}

TEST(FlowTable, RandomOperationsKeepIndexAndPoolConsistent) {
  auto t = make_table(2048);
  std::mt19937 rng(42);
  std::set<uint32_t> present;
  uint32_t now = 0;
  for (int step = 0; step < 50000; ++step) {
    uint32_t id = rng() % 4000;
    const FlowKey4 k = key4(id);
    uint32_t found = t->find(k, k.hash());
    ASSERT_EQ(found != kNoEntry, present.count(id) == 1) << "step " << step;
    if (found != kNoEntry && rng() % 2) {
      t->remove(found);
      present.erase(id);
    } else if (found == kNoEntry) {
      Victim v;
      uint32_t i = t->insert(k, k.hash(), now, v);
      if (v.evicted) {
        // Find which one went.
        for (auto it = present.begin(); it != present.end();) {
          if (t->find(key4(*it), key4(*it).hash()) == kNoEntry) it = present.erase(it);
          else ++it;
        }
      }
      if (i != kNoEntry) {
        t->arm(i, now + 100000, now);
        present.insert(id);
      }
    }
    if (step % 100 == 0) now += 10;
    ASSERT_EQ(t->active(), present.size());
  }
}

// ---- FlowContext

class FlowContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ctx_ = FlowContext::create(serial_++ + 100, 4096, 1024, SOCKET_ID_ANY, error);
    ASSERT_TRUE(ctx_) << error;
  }
  void add(uint32_t i, uint8_t proto, uint8_t state) {
    FlowKey4 k;
    const unsigned opener = make_key4(k, htonl(0x0a000000 + i), htonl(0x0a010001),
                                      htons(static_cast<uint16_t>(2000 + i)), htons(443), proto, 0);
    Victim v;
    uint32_t e = ctx_->table4().insert(k, k.hash(), ctx_->now(), v);
    ASSERT_NE(e, kNoEntry);
    ctx_->table4().at(e).body.state = state;
    if (opener) ctx_->table4().at(e).body.flags |= kFlowOpenerSlot1;
    ctx_->table4().arm(e, ctx_->now() + 60000, ctx_->now());
    ctx_->counters().state_enter(state_slot(proto, state));
  }
  // Runs a request to completion the way the worker would, a slice per round.
  void run(FlowMailbox::Op op, const FlowFilter& filter, uint64_t cursor, uint32_t limit) {
    FlowMailbox& mb = ctx_->mailbox();
    records_.assign(limit, FlowRecord{});
    mb.op = op;
    mb.filter = filter;
    mb.cursor = cursor;
    mb.limit = limit;
    mb.records = records_.data();
    mb.count = 0;
    mb.matched = 0;
    mb.next_cursor = kCursorEnd;
    mb.posted.fetch_add(1, std::memory_order_release);
    for (int round = 0; mb.pending() && round < 1000; ++round) ctx_->serve_mailbox(100);
    ASSERT_FALSE(mb.pending());
  }
  static inline unsigned serial_ = 0;
  std::unique_ptr<FlowContext> ctx_;
  std::vector<FlowRecord> records_;
};

TEST_F(FlowContextTest, ListsEveryFlowAcrossPages) {
  for (uint32_t i = 0; i < 250; ++i) add(i, 6, static_cast<uint8_t>(TcpState::Established));
  std::set<uint16_t> ports;
  uint64_t cursor = 0;
  unsigned pages = 0;
  do {
    run(FlowMailbox::Op::List, FlowFilter{}, cursor, 40);
    for (uint32_t k = 0; k < ctx_->mailbox().count; ++k) ports.insert(records_[k].src_port);
    cursor = ctx_->mailbox().next_cursor;
    ++pages;
  } while (cursor != kCursorEnd && pages < 100);
  EXPECT_EQ(ports.size(), 250u);
  EXPECT_EQ(pages, 7u);  // 6 full pages of 40, one of 10
}

TEST_F(FlowContextTest, FiltersByStatePortAndAddress) {
  for (uint32_t i = 0; i < 10; ++i) add(i, 6, static_cast<uint8_t>(i < 4 ? TcpState::SynSent : TcpState::Established));
  add(100, 17, static_cast<uint8_t>(GenericState::Unreplied));
  FlowFilter f;
  f.state_mask = 1u << static_cast<unsigned>(TcpState::SynSent);
  run(FlowMailbox::Op::List, f, 0, 100);
  EXPECT_EQ(ctx_->mailbox().count, 4u);
  FlowFilter by_port;
  by_port.port = 2003;
  run(FlowMailbox::Op::List, by_port, 0, 100);
  ASSERT_EQ(ctx_->mailbox().count, 1u);
  EXPECT_EQ(records_[0].src_port, 2003);
  FlowFilter by_proto;
  by_proto.protocol = 17;
  run(FlowMailbox::Op::List, by_proto, 0, 100);
  EXPECT_EQ(ctx_->mailbox().count, 1u);
  FlowFilter by_addr;
  by_addr.has_prefix = true;
  by_addr.prefix = *net::parse_prefix("10.0.0.5/32");
  run(FlowMailbox::Op::List, by_addr, 0, 100);
  ASSERT_EQ(ctx_->mailbox().count, 1u);
  EXPECT_EQ(records_[0].src[3], 5);
}

TEST_F(FlowContextTest, FlushRemovesMatchingFlowsAndKeepsCountsRight) {
  for (uint32_t i = 0; i < 20; ++i) add(i, 6, static_cast<uint8_t>(TcpState::Established));
  for (uint32_t i = 20; i < 30; ++i) add(i, 17, static_cast<uint8_t>(GenericState::Unreplied));
  FlowFilter udp;
  udp.protocol = 17;
  run(FlowMailbox::Op::Flush, udp, 0, 0);
  EXPECT_EQ(ctx_->mailbox().count, 10u);
  EXPECT_EQ(ctx_->active(), 20u);
  EXPECT_EQ(ctx_->counters().flushed.get(), 10u);
  EXPECT_EQ(ctx_->counters().by_state[kUdpUnreplied].get(), 0u);
  EXPECT_EQ(ctx_->counters().by_state[static_cast<unsigned>(TcpState::Established)].get(), 20u);
}

TEST_F(FlowContextTest, ServiceExpiresDueFlows) {
  ctx_->set_now(1000);
  add(1, 17, static_cast<uint8_t>(GenericState::Unreplied));
  ctx_->set_now(1000 + 60000 + 500);
  for (int i = 0; i < 10; ++i) ctx_->service();
  EXPECT_EQ(ctx_->active(), 0u);
  EXPECT_EQ(ctx_->counters().expired.get(), 1u);
  EXPECT_EQ(ctx_->counters().by_state[kUdpUnreplied].get(), 0u);
}

TEST(FlowStateNames, SlotsHaveDistinctNames) {
  std::set<std::string_view> names;
  for (unsigned s = 0; s < kStateSlots; ++s) names.insert(state_slot_name(s));
  EXPECT_EQ(names.size(), static_cast<size_t>(kStateSlots));
  EXPECT_EQ(state_slot_name(kUdpReplied), "udp_replied");
}

}  // namespace
}  // namespace sluice::flow
