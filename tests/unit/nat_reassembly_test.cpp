// nat::Reassembler with real mbufs: fragments built by hand (Ethernet + IPv4 + a slice of
// the payload, l3_offset 14) joined in any order into one chain; duplicates, overlaps,
// oversize datagrams, too many fragments, a full table and the timeout each dropped and
// counted as the design says; every mbuf back in the pool at the end of every test.
// Time is TSC ticks at a 1 kHz "TSC": one tick a millisecond.
#include <arpa/inet.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "nat/reassembly.h"
#include "nat_support.h"

namespace sluice::nat {
namespace {

using Outcome = Reassembler::Outcome;
using test::kEthLen;

constexpr uint64_t kTscHz = 1000;
constexpr Drop kNoReason = Drop::TruncatedEthernet;  // never a reassembly's: "no reason given"

class NatReassemblyTest : public test::MbufTest {
 protected:
  void SetUp() override {
    MbufTest::SetUp();
    payload_.resize(1000);
    for (size_t i = 0; i < payload_.size(); ++i) payload_[i] = static_cast<uint8_t>(i * 13 + 7);
    make(config::NatFragments{});
  }
  void TearDown() override {
    if (reassembler_) {
      EXPECT_EQ(reassembler_->in_progress(), 0u) << "the test left datagrams in reassembly";
      reassembler_.reset();
    }
    MbufTest::TearDown();
  }

  void make(const config::NatFragments& limits) {
    reassembler_.reset();
    reassembler_ = std::make_unique<Reassembler>(limits, kTscHz);
  }
  void make(unsigned max_datagrams, unsigned max_fragments, unsigned timeout_ms) {
    config::NatFragments limits;
    limits.max_datagrams = max_datagrams;
    limits.max_fragments = max_fragments;
    limits.timeout_ms = timeout_ms;
    make(limits);
  }

  // Bytes [offset, offset + n) of `payload_` (or `payload`) as a fragment of datagram `id`.
  rte_mbuf* frag(uint16_t id, size_t offset, size_t n, bool more, const std::vector<uint8_t>* payload = nullptr) {
    return make_mbuf(test::fragment_frame(kSrc, kDst, id, net::kIpProtoUdp, payload ? *payload : payload_, offset, n,
                                          more));
  }

  // One fragment in; what came of it is left in the members below.
  Outcome add(rte_mbuf* m, uint64_t now = 0) {
    whole_ = nullptr;
    reason_ = kNoReason;
    dropped_held_ = 0;
    m_freed_ = false;
    return reassembler_->add(m, kEthLen, now, whole_, reason_, dropped_held_, m_freed_);
  }
  // A fragment the reassembler dropped alone: still ours to free.
  void expect_dropped_alone(rte_mbuf* m, Drop why, uint64_t now = 0) {
    EXPECT_EQ(add(m, now), Outcome::Dropped);
    EXPECT_EQ(reason_, why);
    EXPECT_EQ(dropped_held_, 0u);
    EXPECT_FALSE(m_freed_);
    rte_pktmbuf_free(m);
  }

  // The reassembled datagram is the original: one IP header for all of it, then its bytes.
  void expect_whole(rte_mbuf* whole, uint16_t id, unsigned fragments, const std::vector<uint8_t>* payload = nullptr) {
    const std::vector<uint8_t>& want = payload ? *payload : payload_;
    ASSERT_NE(whole, nullptr);
    EXPECT_EQ(whole->nb_segs, fragments);
    EXPECT_EQ(rte_pktmbuf_pkt_len(whole), kEthLen + 20 + want.size());
    const std::vector<uint8_t> bytes = test::chain_bytes(whole);
    ASSERT_EQ(bytes.size(), kEthLen + 20 + want.size());
    const uint8_t* ip = bytes.data() + kEthLen;
    EXPECT_EQ(test::get16(bytes.data() + 12), net::kEtherTypeIpv4) << "the first fragment's Ethernet header";
    EXPECT_EQ(ip[0], 0x45);
    EXPECT_EQ(test::get16(ip + 2), 20 + want.size()) << "total length of the whole datagram";
    EXPECT_EQ(test::get16(ip + 4), id);
    EXPECT_EQ(test::get16(ip + 6), 0) << "no MF, offset 0";
    EXPECT_EQ(ip[9], net::kIpProtoUdp);
    EXPECT_EQ(net::load32(ip + 12), kSrc);
    EXPECT_EQ(net::load32(ip + 16), kDst);
    EXPECT_EQ(test::stored16(ip + test::kIpChecksumAt), test::ipv4_checksum_full(ip));
    EXPECT_TRUE(std::equal(want.begin(), want.end(), bytes.begin() + kEthLen + 20)) << "the payload, byte for byte";
  }

  // Three fragments, 400 + 400 + 200 bytes, added in `order`; the last completes.
  void join_in_order(const std::vector<unsigned>& order) {
    const size_t offset[3] = {0, 400, 800}, length[3] = {400, 400, 200};
    for (size_t k = 0; k < order.size(); ++k) {
      const unsigned f = order[k];
      const Outcome o = add(frag(7, offset[f], length[f], f != 2));
      if (k + 1 < order.size()) {
        EXPECT_EQ(o, Outcome::Held) << "fragment " << f;
        EXPECT_EQ(reassembler_->in_progress(), 1u);
        EXPECT_EQ(reassembler_->counters().held.get(), k + 1);
      } else {
        ASSERT_EQ(o, Outcome::Complete);
      }
    }
    expect_whole(whole_, 7, 3);
    rte_pktmbuf_free(whole_);
    EXPECT_EQ(reassembler_->in_progress(), 0u);
    EXPECT_EQ(reassembler_->counters().fragments.get(), 3u);
    EXPECT_EQ(reassembler_->counters().reassembled.get(), 1u);
    EXPECT_EQ(reassembler_->counters().in_progress.get(), 0u);
    EXPECT_EQ(reassembler_->counters().held.get(), 0u);
    EXPECT_EQ(in_use(), 0u);
  }

  const uint32_t kSrc = test::addr4_raw("198.51.100.7");
  const uint32_t kDst = test::addr4_raw("203.0.113.1");
  std::vector<uint8_t> payload_;
  std::unique_ptr<Reassembler> reassembler_;
  rte_mbuf* whole_ = nullptr;
  Drop reason_ = kNoReason;
  unsigned dropped_held_ = 0;
  bool m_freed_ = false;
};

TEST_F(NatReassemblyTest, InOrderFragmentsJoinIntoOneDatagram) { join_in_order({0, 1, 2}); }

TEST_F(NatReassemblyTest, OutOfOrderFragmentsJoinIntoOneDatagram) { join_in_order({1, 0, 2}); }

TEST_F(NatReassemblyTest, LastFragmentFirstJoins) { join_in_order({2, 0, 1}); }

TEST_F(NatReassemblyTest, ReversedFragmentsJoinIntoOneDatagram) { join_in_order({2, 1, 0}); }

TEST_F(NatReassemblyTest, EthernetPaddingOfAShortFragmentIsNotDatagram) {
  // The last fragment carries 8 bytes: its frame is padded to the Ethernet minimum.
  std::vector<uint8_t> payload(408);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i ^ 0x5a);
  std::vector<uint8_t> last = test::fragment_frame(kSrc, kDst, 9, net::kIpProtoUdp, payload, 400, 8, false);
  last.resize(60, 0xee);
  EXPECT_EQ(add(make_mbuf(last)), Outcome::Held);
  ASSERT_EQ(add(frag(9, 0, 400, true, &payload)), Outcome::Complete);
  expect_whole(whole_, 9, 2, &payload);
  rte_pktmbuf_free(whole_);
}

TEST_F(NatReassemblyTest, ExactDuplicateIsDroppedAloneAndTheDatagramCompletes) {
  EXPECT_EQ(add(frag(7, 0, 400, true)), Outcome::Held);
  EXPECT_EQ(add(frag(7, 400, 400, true)), Outcome::Held);
  expect_dropped_alone(frag(7, 400, 400, true), Drop::FragmentDuplicate);
  expect_dropped_alone(frag(7, 0, 400, true), Drop::FragmentDuplicate);
  EXPECT_EQ(reassembler_->in_progress(), 1u);
  EXPECT_EQ(reassembler_->counters().held.get(), 2u);
  ASSERT_EQ(add(frag(7, 800, 200, false)), Outcome::Complete);
  expect_whole(whole_, 7, 3);
  rte_pktmbuf_free(whole_);
  EXPECT_EQ(reassembler_->counters().fragments.get(), 5u);
  EXPECT_EQ(reassembler_->counters().reassembled.get(), 1u);
}

TEST_F(NatReassemblyTest, OverlappingFragmentDropsTheWholeDatagram) {
  EXPECT_EQ(add(frag(7, 0, 400, true)), Outcome::Held);
  EXPECT_EQ(add(frag(7, 800, 200, false)), Outcome::Held);
  rte_mbuf* overlap = frag(7, 392, 16, true);  // one 8-byte block into the first
  EXPECT_EQ(add(overlap), Outcome::Dropped);
  EXPECT_EQ(reason_, Drop::FragmentOverlap);
  EXPECT_EQ(dropped_held_, 2u) << "both held fragments went with it";
  EXPECT_FALSE(m_freed_);
  rte_pktmbuf_free(overlap);
  EXPECT_EQ(reassembler_->in_progress(), 0u);
  EXPECT_EQ(reassembler_->counters().held.get(), 0u);
  EXPECT_EQ(in_use(), 0u);
  // The rest of the datagram starts a new one, which never completes without the others.
  EXPECT_EQ(add(frag(7, 400, 400, true)), Outcome::Held);
  EXPECT_EQ(reassembler_->flush(), 1u);
}

TEST_F(NatReassemblyTest, FragmentBeyondTheLastOneDropsTheDatagram) {
  EXPECT_EQ(add(frag(7, 800, 200, false)), Outcome::Held);
  std::vector<uint8_t> longer = payload_;
  longer.resize(1008, 1);
  rte_mbuf* beyond = frag(7, 1000, 8, true, &longer);
  EXPECT_EQ(add(beyond), Outcome::Dropped);
  EXPECT_EQ(reason_, Drop::FragmentOverlap);
  EXPECT_EQ(dropped_held_, 1u);
  rte_pktmbuf_free(beyond);
  // A second last fragment ending elsewhere.
  EXPECT_EQ(add(frag(8, 800, 200, false)), Outcome::Held);
  rte_mbuf* other_last = frag(8, 400, 200, false);
  EXPECT_EQ(add(other_last), Outcome::Dropped);
  EXPECT_EQ(reason_, Drop::FragmentOverlap);
  EXPECT_EQ(dropped_held_, 1u);
  rte_pktmbuf_free(other_last);
  EXPECT_EQ(reassembler_->in_progress(), 0u);
}

TEST_F(NatReassemblyTest, MisalignedFragmentIsDroppedAlone) {
  EXPECT_EQ(add(frag(7, 0, 400, true)), Outcome::Held);
  // Not the last, yet not a multiple of 8 bytes.
  expect_dropped_alone(frag(7, 400, 100, true), Drop::FragmentOverlap);
  EXPECT_EQ(reassembler_->in_progress(), 1u) << "the datagram is still there";
  EXPECT_EQ(add(frag(7, 400, 400, true)), Outcome::Held);
  ASSERT_EQ(add(frag(7, 800, 200, false)), Outcome::Complete);
  expect_whole(whole_, 7, 3);
  rte_pktmbuf_free(whole_);
}

TEST_F(NatReassemblyTest, FragmentReachingPast65535BytesDropsTheDatagram) {
  std::vector<uint8_t> big(65544);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(add(frag(7, 0, 400, true, &big)), Outcome::Held);
  // 20 + 65512 + 16 > 65535 (the ping of death).
  rte_mbuf* too_long = frag(7, 65512 + 16, 16, false, &big);
  EXPECT_EQ(add(too_long), Outcome::Dropped);
  EXPECT_EQ(reason_, Drop::FragmentTooLong);
  EXPECT_EQ(dropped_held_, 1u);
  rte_pktmbuf_free(too_long);
  EXPECT_EQ(reassembler_->in_progress(), 0u);
  // Alone, with nothing held for its datagram.
  expect_dropped_alone(frag(8, 65512, 24, false, &big), Drop::FragmentTooLong);
  // Exactly 65535 bytes is still a datagram.
  EXPECT_EQ(add(frag(9, 65512, 3, false, &big)), Outcome::Held);
  EXPECT_EQ(reassembler_->flush(), 1u);
}

TEST_F(NatReassemblyTest, MoreThanMaxFragmentsDropsTheDatagram) {
  make(16, 4, 30000);
  for (size_t k = 0; k < 4; ++k) EXPECT_EQ(add(frag(7, k * 8, 8, true)), Outcome::Held);
  rte_mbuf* fifth = frag(7, 32, 8, true);
  EXPECT_EQ(add(fifth), Outcome::Dropped);
  EXPECT_EQ(reason_, Drop::FragmentTooMany);
  EXPECT_EQ(dropped_held_, 4u);
  rte_pktmbuf_free(fifth);
  EXPECT_EQ(reassembler_->in_progress(), 0u);
  EXPECT_EQ(in_use(), 0u);
  // Four are allowed: a datagram in four completes.
  for (size_t k = 0; k < 3; ++k) EXPECT_EQ(add(frag(8, k * 8, 8, true)), Outcome::Held);
  ASSERT_EQ(add(frag(8, 24, 976, false)), Outcome::Complete);
  expect_whole(whole_, 8, 4);
  rte_pktmbuf_free(whole_);
}

TEST_F(NatReassemblyTest, FullTableRefusesANewDatagram) {
  make(2, 16, 30000);
  EXPECT_EQ(add(frag(1, 0, 400, true)), Outcome::Held);
  EXPECT_EQ(add(frag(2, 0, 400, true)), Outcome::Held);
  expect_dropped_alone(frag(3, 0, 400, true), Drop::ReassemblyFull);
  EXPECT_EQ(reassembler_->in_progress(), 2u);
  // The datagrams in progress go on; the one that completes frees its place.
  EXPECT_EQ(add(frag(1, 400, 400, true)), Outcome::Held);
  ASSERT_EQ(add(frag(1, 800, 200, false)), Outcome::Complete);
  expect_whole(whole_, 1, 3);
  rte_pktmbuf_free(whole_);
  EXPECT_EQ(add(frag(3, 0, 400, true)), Outcome::Held);
  EXPECT_EQ(reassembler_->flush(), 2u);
}

TEST_F(NatReassemblyTest, ExpireFreesIncompleteDatagramsAfterTheTimeout) {
  make(8, 16, 100);
  EXPECT_EQ(add(frag(1, 0, 400, true), 0), Outcome::Held);
  EXPECT_EQ(add(frag(1, 400, 400, true), 20), Outcome::Held);  // the deadline runs from the first
  EXPECT_EQ(add(frag(2, 0, 400, true), 50), Outcome::Held);
  EXPECT_EQ(reassembler_->expire(99), 0u);
  EXPECT_EQ(reassembler_->expire(100), 2u);
  EXPECT_EQ(reassembler_->timeouts(), 2u);
  EXPECT_EQ(reassembler_->in_progress(), 1u);
  EXPECT_EQ(in_use(), 1u);
  EXPECT_EQ(reassembler_->expire(149), 0u);
  EXPECT_EQ(reassembler_->expire(150), 1u);
  EXPECT_EQ(reassembler_->timeouts(), 3u);
  EXPECT_EQ(reassembler_->in_progress(), 0u);
  EXPECT_EQ(reassembler_->counters().in_progress.get(), 0u);
  EXPECT_EQ(reassembler_->counters().held.get(), 0u);
  EXPECT_EQ(in_use(), 0u);
  // A late fragment of an expired datagram starts over.
  EXPECT_EQ(add(frag(1, 800, 200, false), 200), Outcome::Held);
  EXPECT_EQ(reassembler_->expire(299), 0u);
  EXPECT_EQ(reassembler_->expire(300), 1u);
}

TEST_F(NatReassemblyTest, ExpireWorksThroughABigTableAFewSlotsACall) {
  make(256, 4, 100);
  for (uint16_t id = 0; id < 200; ++id) EXPECT_EQ(add(frag(id, 0, 8, true), id % 2 ? 0 : 500), Outcome::Held);
  unsigned freed = 0;
  for (int call = 0; call < 100; ++call) freed += reassembler_->expire(150);
  EXPECT_EQ(freed, 100u) << "only the datagrams begun at 0";
  EXPECT_EQ(reassembler_->in_progress(), 100u);
  for (int call = 0; call < 100; ++call) freed += reassembler_->expire(600);
  EXPECT_EQ(freed, 200u);
  EXPECT_EQ(in_use(), 0u);
}

TEST_F(NatReassemblyTest, FlushFreesEverythingHeld) {
  EXPECT_EQ(add(frag(1, 0, 400, true)), Outcome::Held);
  EXPECT_EQ(add(frag(2, 0, 400, true)), Outcome::Held);
  EXPECT_EQ(add(frag(2, 800, 200, false)), Outcome::Held);
  EXPECT_EQ(add(frag(3, 400, 400, true)), Outcome::Held);
  EXPECT_EQ(in_use(), 4u);
  EXPECT_EQ(reassembler_->flush(), 4u);
  EXPECT_EQ(reassembler_->flushed(), 4u);
  EXPECT_EQ(reassembler_->in_progress(), 0u);
  EXPECT_EQ(reassembler_->counters().held.get(), 0u);
  EXPECT_EQ(in_use(), 0u);
  EXPECT_EQ(reassembler_->flush(), 0u);
}

TEST_F(NatReassemblyTest, DestroyingTheReassemblerFreesWhatItHolds) {
  EXPECT_EQ(add(frag(1, 0, 400, true)), Outcome::Held);
  EXPECT_EQ(add(frag(2, 400, 400, true)), Outcome::Held);
  reassembler_.reset();
  EXPECT_EQ(in_use(), 0u);
}

TEST_F(NatReassemblyTest, DatagramsAreToldApartBySourceDestinationIdAndProtocol) {
  // Same id, other source: a different datagram.
  EXPECT_EQ(add(frag(7, 0, 400, true)), Outcome::Held);
  rte_mbuf* other = make_mbuf(test::fragment_frame(test::addr4_raw("198.51.100.8"), kDst, 7, net::kIpProtoUdp, payload_,
                                                   400, 400, true));
  EXPECT_EQ(add(other), Outcome::Held);
  rte_mbuf* tcp = make_mbuf(test::fragment_frame(kSrc, kDst, 7, net::kIpProtoTcp, payload_, 400, 400, true));
  EXPECT_EQ(add(tcp), Outcome::Held);
  EXPECT_EQ(reassembler_->in_progress(), 3u);
  EXPECT_EQ(add(frag(7, 400, 400, true)), Outcome::Held);
  ASSERT_EQ(add(frag(7, 800, 200, false)), Outcome::Complete);
  expect_whole(whole_, 7, 3);
  rte_pktmbuf_free(whole_);
  EXPECT_EQ(reassembler_->flush(), 2u);
}

TEST_F(NatReassemblyTest, ManyInterleavedDatagramsAllComplete) {
  make(64, 8, 30000);
  std::mt19937 rng(5);
  for (int round = 0; round < 3; ++round) {
    // 60 datagrams of 3 fragments each, every fragment in a random place of the stream.
    struct Piece {
      uint16_t id;
      unsigned f;
    };
    std::vector<Piece> pieces;
    for (uint16_t id = 0; id < 60; ++id)
      for (unsigned f = 0; f < 3; ++f) pieces.push_back({static_cast<uint16_t>(id + round * 1000), f});
    std::shuffle(pieces.begin(), pieces.end(), rng);
    const size_t offset[3] = {0, 400, 800}, length[3] = {400, 400, 200};
    unsigned completed = 0;
    for (const Piece& p : pieces) {
      const Outcome o = add(frag(p.id, offset[p.f], length[p.f], p.f != 2));
      ASSERT_NE(o, Outcome::Dropped) << drop_name(reason_);
      if (o == Outcome::Complete) {
        ++completed;
        expect_whole(whole_, p.id, 3);
        rte_pktmbuf_free(whole_);
      }
    }
    EXPECT_EQ(completed, 60u);
    EXPECT_EQ(reassembler_->in_progress(), 0u);
    EXPECT_EQ(in_use(), 0u);
  }
}

}  // namespace
}  // namespace sluice::nat
