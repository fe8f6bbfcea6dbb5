// lib/flow/tcp_tracker: nf_conntrack's TCP state machine and window checks, driven by
// crafted segment sequences (no packets, no DPDK), plus the option walk over raw bytes.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string_view>

#include <gtest/gtest.h>

#include "flow/tcp_tracker.h"

namespace sluice::flow {
namespace {

constexpr uint32_t kClientIsn = 1000;
constexpr uint32_t kServerIsn = 500000;
constexpr uint16_t kClientWindow = 64240;
constexpr uint16_t kServerWindow = 65160;
constexpr uint8_t kNoScale = 0xff;

TcpSegment segment(uint8_t flags, uint32_t seq, uint32_t ack, uint16_t window, uint32_t payload = 0) {
  TcpSegment seg;
  seg.flags = flags;
  seg.seq = seq;
  seg.ack = ack;
  seg.window = window;
  seg.payload = payload;
  return seg;
}

TcpSegment syn(uint32_t seq, uint16_t window = kClientWindow, uint8_t wscale = kNoScale, bool sack_perm = false) {
  TcpSegment seg = segment(kTcpSyn, seq, 0, window);
  seg.wscale = wscale;
  seg.sack_perm = sack_perm;
  return seg;
}

TcpSegment syn_ack(uint32_t seq, uint32_t ack, uint16_t window = kServerWindow, uint8_t wscale = kNoScale,
                   bool sack_perm = false) {
  TcpSegment seg = segment(kTcpSyn | kTcpAck, seq, ack, window);
  seg.wscale = wscale;
  seg.sack_perm = sack_perm;
  return seg;
}

TcpSegment ack(uint32_t seq, uint32_t ack_seq, uint16_t window, uint32_t payload = 0) {
  return segment(kTcpAck, seq, ack_seq, window, payload);
}

TcpSegment rst(uint32_t seq) { return segment(kTcpRst, seq, 0, 0); }

// One flow and the calls a conntrack stage makes on it.
struct Flow {
  TcpState state = TcpState::None;
  TcpWindow w{};
  TcpLast last{};
  TcpSettings settings{};
  TcpInvalid why = TcpInvalid::None;

  TcpInvalid open(const TcpSegment& seg) { return tcp_new(state, w, last, seg, settings); }
  TcpVerdict orig(const TcpSegment& seg) { return tcp_track(state, w, last, 0, seg, settings, why); }
  TcpVerdict reply(const TcpSegment& seg) { return tcp_track(state, w, last, 1, seg, settings, why); }
};

// Client kClientIsn, server kServerIsn; afterwards the client's next seq is c+1, the server's s+1.
Flow established(uint32_t c = kClientIsn, uint32_t s = kServerIsn, uint8_t client_scale = kNoScale,
                 uint8_t server_scale = kNoScale, uint16_t server_syn_window = kServerWindow) {
  Flow flow;
  EXPECT_EQ(flow.open(syn(c, kClientWindow, client_scale)), TcpInvalid::None);
  EXPECT_EQ(flow.reply(syn_ack(s, c + 1, server_syn_window, server_scale)), TcpVerdict::Accept);
  EXPECT_EQ(flow.orig(ack(c + 1, s + 1, kClientWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Established);
  return flow;
}

// --- opening -------------------------------------------------------------------------

TEST(TcpTracker, ThreeWayHandshakeReachesEstablished) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn)), TcpInvalid::None);
  EXPECT_EQ(flow.state, TcpState::SynSent);
  EXPECT_EQ(flow.reply(syn_ack(kServerIsn, kClientIsn + 1)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::SynRecv);
  EXPECT_EQ(flow.orig(ack(kClientIsn + 1, kServerIsn + 1, kClientWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Established);
  EXPECT_EQ(flow.why, TcpInvalid::None);

  // Each side may send up to what the other acknowledged plus its window.
  EXPECT_EQ(flow.w.end[0], kClientIsn + 1);
  EXPECT_EQ(flow.w.end[1], kServerIsn + 1);
  EXPECT_EQ(flow.w.maxend[0], kClientIsn + 1 + kServerWindow);
  EXPECT_EQ(flow.w.maxend[1], kServerIsn + 1 + kClientWindow);
  EXPECT_TRUE(flow.w.flags[1] & kTcpFlagSeen);
  EXPECT_TRUE(tcp_protected(flow.state));
}

TEST(TcpTracker, SynOpensSynSentWithOriginatorWindowAndReplyZeroed) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn, 29200, 7, true)), TcpInvalid::None);
  EXPECT_EQ(flow.state, TcpState::SynSent);
  EXPECT_EQ(flow.w.end[0], kClientIsn + 1);  // the SYN takes one sequence number
  EXPECT_EQ(flow.w.maxend[0], kClientIsn + 1);
  EXPECT_EQ(flow.w.maxwin[0], 29200u);
  EXPECT_EQ(flow.w.scale[0], 7);
  EXPECT_EQ(flow.w.flags[0] & (kTcpFlagWindowScale | kTcpFlagSackPerm), kTcpFlagWindowScale | kTcpFlagSackPerm);
  EXPECT_EQ(flow.w.end[1], 0u);
  EXPECT_EQ(flow.w.maxend[1], 0u);
  EXPECT_EQ(flow.w.maxwin[1], 0u);
  EXPECT_EQ(flow.w.scale[1], 0);
  EXPECT_EQ(flow.w.flags[1], 0);
  EXPECT_FALSE(tcp_protected(flow.state));
}

TEST(TcpTracker, SynWithZeroWindowCountsAsWindowOne) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn, 0)), TcpInvalid::None);
  EXPECT_EQ(flow.w.maxwin[0], 1u);
}

TEST(TcpTracker, RetransmittedSynStaysInSynSent) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn)), TcpInvalid::None);
  EXPECT_EQ(flow.orig(syn(kClientIsn)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::SynSent);
  EXPECT_EQ(flow.w.end[0], kClientIsn + 1);
}

TEST(TcpTracker, SynWithHigherIsnInSynSentReinitialisesTheOriginator) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn, kClientWindow, 2)), TcpInvalid::None);
  EXPECT_EQ(flow.orig(syn(kClientIsn + 5000, 1000)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::SynSent);
  EXPECT_EQ(flow.w.end[0], kClientIsn + 5001);
  EXPECT_EQ(flow.w.maxwin[0], 1000u);
  EXPECT_EQ(flow.w.scale[0], 0);  // the new SYN has no window scale option
  EXPECT_EQ(flow.reply(syn_ack(kServerIsn, kClientIsn + 5001)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::SynRecv);
}

TEST(TcpTracker, SynAckAsFirstPacketIsNoFlow) {
  Flow flow;
  EXPECT_EQ(flow.open(syn_ack(kServerIsn, kClientIsn + 1)), TcpInvalid::NoFlow);
  EXPECT_EQ(flow.state, TcpState::None);
}

TEST(TcpTracker, RstAndFinAsFirstPacketAreNoFlow) {
  Flow flow;
  EXPECT_EQ(flow.open(rst(kClientIsn)), TcpInvalid::NoFlow);
  EXPECT_EQ(flow.open(segment(kTcpRst | kTcpAck, kClientIsn, 7, 0)), TcpInvalid::NoFlow);
  EXPECT_EQ(flow.open(segment(kTcpFin | kTcpAck, kClientIsn, 7, 100)), TcpInvalid::NoFlow);
}

TEST(TcpTracker, LoosePicksUpMidStreamAckAsEstablishedAndLiberal) {
  Flow flow;
  ASSERT_EQ(flow.open(ack(kClientIsn, kServerIsn, kClientWindow, 100)), TcpInvalid::None);
  EXPECT_EQ(flow.state, TcpState::Established);
  EXPECT_EQ(flow.w.end[0], kClientIsn + 100);
  EXPECT_EQ(flow.w.maxend[0], kClientIsn + 100 + kClientWindow);
  for (unsigned side : {0u, 1u}) {
    EXPECT_TRUE(flow.w.flags[side] & kTcpFlagLiberal) << side;
    EXPECT_TRUE(flow.w.flags[side] & kTcpFlagSackPerm) << side;
  }
  EXPECT_EQ(flow.w.maxwin[1], 0u);  // the responder is learnt from its first segment
  EXPECT_EQ(flow.reply(ack(kServerIsn, kClientIsn + 100, kServerWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Established);
  EXPECT_EQ(flow.w.maxwin[1], uint32_t{kServerWindow});
}

TEST(TcpTracker, StrictModeRefusesMidStreamAckButOpensWithSyn) {
  Flow flow;
  flow.settings.loose = false;
  EXPECT_EQ(flow.open(ack(kClientIsn, kServerIsn, kClientWindow)), TcpInvalid::NoFlow);
  EXPECT_EQ(flow.open(syn(kClientIsn)), TcpInvalid::None);
  EXPECT_EQ(flow.state, TcpState::SynSent);
}

TEST(TcpTracker, PickedUpFlowAcceptsSegmentsOutsideTheWindow) {
  Flow flow;
  ASSERT_EQ(flow.open(ack(kClientIsn, kServerIsn, kClientWindow)), TcpInvalid::None);
  ASSERT_EQ(flow.reply(ack(kServerIsn, kClientIsn, kServerWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.orig(ack(kClientIsn + 10'000'000, kServerIsn, kClientWindow, 100)), TcpVerdict::Accept);
  EXPECT_EQ(flow.reply(ack(kServerIsn, kClientIsn + 20'000'000, kServerWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Established);
}

// --- flags and transitions ---------------------------------------------------------

TEST(TcpTracker, ImpossibleFlagCombinationsAreBadFlags) {
  const uint8_t bad[] = {
      kTcpSyn | kTcpFin,                      // SYN+FIN
      0,                                      // NULL scan
      kTcpFin | kTcpPsh | kTcpUrg,            // XMAS
      kTcpSyn | kTcpRst,                      // SYN+RST
      kTcpFin,                                // FIN without ACK
      kTcpPsh,                                // PSH alone
      kTcpSyn | kTcpAck | kTcpUrg,            // not in tcp_valid_flags[]
      kTcpRst | kTcpUrg,                      // not in tcp_valid_flags[]
      kTcpFin | kTcpSyn | kTcpRst | kTcpPsh | kTcpAck | kTcpUrg,
  };
  for (uint8_t flags : bad) {
    Flow flow;
    EXPECT_EQ(flow.open(segment(flags, kClientIsn, 0, 100)), TcpInvalid::BadFlags) << int{flags};
    Flow live = established();
    EXPECT_EQ(live.orig(segment(flags, kClientIsn + 1, kServerIsn + 1, 100)), TcpVerdict::Invalid) << int{flags};
    EXPECT_EQ(live.why, TcpInvalid::BadFlags);
    EXPECT_EQ(live.state, TcpState::Established);
  }
}

TEST(TcpTracker, PshEceAndCwrDoNotAffectFlagValidity) {
  Flow flow;
  EXPECT_EQ(flow.open(syn(kClientIsn)), TcpInvalid::None);
  TcpSegment ecn_syn = syn(kClientIsn);
  ecn_syn.flags |= kTcpEce | kTcpCwr;
  Flow ecn;
  EXPECT_EQ(ecn.open(ecn_syn), TcpInvalid::None);
  Flow live = established();
  EXPECT_EQ(live.orig(segment(kTcpAck | kTcpPsh | kTcpEce, kClientIsn + 1, kServerIsn + 1, 100, 10)),
            TcpVerdict::Accept);
}

TEST(TcpTracker, AckFromOriginatorBeforeSynAckIsBadTransition) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn)), TcpInvalid::None);
  EXPECT_EQ(flow.orig(ack(kClientIsn + 1, kServerIsn + 1, kClientWindow)), TcpVerdict::Invalid);
  EXPECT_EQ(flow.why, TcpInvalid::BadTransition);
  EXPECT_EQ(flow.state, TcpState::SynSent);
  EXPECT_EQ(flow.orig(segment(kTcpFin | kTcpAck, kClientIsn + 1, kServerIsn + 1, 100)), TcpVerdict::Invalid);
  EXPECT_EQ(flow.why, TcpInvalid::BadTransition);
}

TEST(TcpTracker, SynAckFromTheOriginatorIsBadTransition) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn)), TcpInvalid::None);
  EXPECT_EQ(flow.orig(syn_ack(kClientIsn, kServerIsn)), TcpVerdict::Invalid);
  EXPECT_EQ(flow.why, TcpInvalid::BadTransition);
  Flow live = established();
  EXPECT_EQ(live.orig(syn_ack(kClientIsn + 1, kServerIsn + 1)), TcpVerdict::Invalid);
  EXPECT_EQ(live.why, TcpInvalid::BadTransition);
}

TEST(TcpTracker, ReplyAckInSynSentIsIgnoredButForwarded) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn)), TcpInvalid::None);
  EXPECT_EQ(flow.reply(ack(777, 12345, 100)), TcpVerdict::Accept);  // maybe a challenge ACK
  EXPECT_EQ(flow.state, TcpState::SynSent);
  EXPECT_EQ(flow.w.maxwin[1], 0u);  // ignored: nothing learnt from it
}

TEST(TcpTracker, SimultaneousOpenGoesThroughSynSent2) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn)), TcpInvalid::None);
  EXPECT_EQ(flow.reply(syn(kServerIsn, kServerWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::SynSent2);
  EXPECT_EQ(flow.w.end[1], kServerIsn + 1);
  EXPECT_EQ(flow.orig(syn_ack(kClientIsn, kServerIsn + 1, kClientWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::SynRecv);
  EXPECT_EQ(flow.reply(syn_ack(kServerIsn, kClientIsn + 1)), TcpVerdict::Accept);  // ignored, forwarded
  EXPECT_EQ(flow.state, TcpState::SynRecv);
  // In a simultaneous open the responder's ACK completes the handshake too.
  EXPECT_EQ(flow.reply(ack(kServerIsn + 1, kClientIsn + 1, kServerWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Established);
}

TEST(TcpTracker, ResponderAckInNormalSynRecvDoesNotEstablish) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn)), TcpInvalid::None);
  ASSERT_EQ(flow.reply(syn_ack(kServerIsn, kClientIsn + 1)), TcpVerdict::Accept);
  EXPECT_EQ(flow.reply(ack(kServerIsn + 1, kClientIsn + 1, kServerWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::SynRecv);
}

// --- closing -------------------------------------------------------------------------

TEST(TcpTracker, FourWayCloseGoesThroughFinWaitCloseWaitLastAckTimeWait) {
  Flow flow = established();
  const uint32_t c = kClientIsn + 1, s = kServerIsn + 1;
  EXPECT_EQ(flow.orig(segment(kTcpFin | kTcpAck, c, s, kClientWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::FinWait);
  EXPECT_TRUE(flow.w.flags[0] & kTcpFlagCloseInit);
  EXPECT_FALSE(flow.w.flags[1] & kTcpFlagCloseInit);
  EXPECT_EQ(flow.w.end[0], c + 1);  // the FIN takes one sequence number
  EXPECT_EQ(flow.reply(ack(s, c + 1, kServerWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::CloseWait);
  // Half closed: the responder still sends data.
  EXPECT_EQ(flow.reply(ack(s, c + 1, kServerWindow, 500)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::CloseWait);
  EXPECT_EQ(flow.orig(ack(c + 1, s + 500, kClientWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.reply(segment(kTcpFin | kTcpAck, s + 500, c + 1, kServerWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::LastAck);
  EXPECT_EQ(flow.orig(ack(c + 1, s + 501, kClientWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::TimeWait);
  EXPECT_FALSE(tcp_protected(flow.state));
}

TEST(TcpTracker, FinsCrossingReachLastAckThenTimeWait) {
  Flow flow = established();
  const uint32_t c = kClientIsn + 1, s = kServerIsn + 1;
  EXPECT_EQ(flow.orig(segment(kTcpFin | kTcpAck, c, s, kClientWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.reply(segment(kTcpFin | kTcpAck, s, c + 1, kServerWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::LastAck);
  EXPECT_EQ(flow.reply(segment(kTcpFin | kTcpAck, s, c + 1, kServerWindow)), TcpVerdict::Accept);  // retransmitted
  EXPECT_EQ(flow.state, TcpState::LastAck);
  EXPECT_EQ(flow.orig(ack(c + 1, s + 1, kClientWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::TimeWait);
}

TEST(TcpTracker, SynInTimeWaitFromEitherSideReopens) {
  for (unsigned side : {0u, 1u}) {
    Flow flow = established();
    const uint32_t c = kClientIsn + 1, s = kServerIsn + 1;
    ASSERT_EQ(flow.orig(segment(kTcpFin | kTcpAck, c, s, kClientWindow)), TcpVerdict::Accept);
    ASSERT_EQ(flow.reply(segment(kTcpFin | kTcpAck, s, c + 1, kServerWindow)), TcpVerdict::Accept);
    ASSERT_EQ(flow.orig(ack(c + 1, s + 1, kClientWindow)), TcpVerdict::Accept);
    ASSERT_EQ(flow.state, TcpState::TimeWait);
    const TcpSegment new_syn = syn(side == 0 ? c + 100000 : s + 100000);
    EXPECT_EQ(side == 0 ? flow.orig(new_syn) : flow.reply(new_syn), TcpVerdict::Reopen) << side;
    EXPECT_EQ(flow.state, TcpState::TimeWait);  // the caller replaces the entry
  }
}

TEST(TcpTracker, SynFromOriginatorAfterRstReopens) {
  Flow flow = established();
  ASSERT_EQ(flow.orig(rst(kClientIsn + 1)), TcpVerdict::Accept);
  ASSERT_EQ(flow.state, TcpState::Close);
  EXPECT_EQ(flow.orig(syn(kClientIsn + 70000)), TcpVerdict::Reopen);
}

TEST(TcpTracker, SynFromResponderInCloseIsBadTransition) {
  Flow flow = established();
  ASSERT_EQ(flow.orig(rst(kClientIsn + 1)), TcpVerdict::Accept);
  EXPECT_EQ(flow.reply(syn(kServerIsn + 70000)), TcpVerdict::Invalid);
  EXPECT_EQ(flow.why, TcpInvalid::BadTransition);
}

// --- reopening a closed flow (Linux's last_dir/last_index) -------------------------

TEST(TcpTracker, SynAfterServerRstIsIgnoredAndTheOldWindowStillJudges) {
  // The differential test's tcp_syn_after_server_rst: the RST came from the other side,
  // so Linux ignores the SYN and goes on judging the old connection in CLOSE.
  Flow flow = established();
  const uint32_t c = kClientIsn + 1, s = kServerIsn + 1;
  ASSERT_EQ(flow.orig(ack(c, s, kClientWindow, 3)), TcpVerdict::Accept);
  ASSERT_EQ(flow.reply(rst(s)), TcpVerdict::Accept);
  ASSERT_EQ(flow.state, TcpState::Close);
  EXPECT_EQ(flow.orig(syn(c + 3)), TcpVerdict::Accept);  // ignored, not reopened
  EXPECT_EQ(flow.state, TcpState::Close);
  EXPECT_EQ(flow.last.event(), TcpEvent::Syn);
  EXPECT_EQ(flow.orig(ack(c + 3, s, kClientWindow)), TcpVerdict::Accept);  // in the old window
  EXPECT_EQ(flow.reply(ack(s, c + 3, kServerWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Close);
  EXPECT_EQ(flow.orig(ack(c + 3, s + 5000, kClientWindow)), TcpVerdict::Invalid);  // still judged
  EXPECT_EQ(flow.why, TcpInvalid::OutOfWindow);
}

TEST(TcpTracker, SynAfterServerRstResyncsOnTheSynAckAnsweringIt) {
  // tcp_rst_then_new_syn: the new connection is followed through the resync, with the
  // options of the SYN that was ignored.
  Flow flow = established();
  ASSERT_EQ(flow.reply(rst(kServerIsn + 1)), TcpVerdict::Accept);
  const uint32_t new_client = 2'000'000, new_server = 9'000'000;
  ASSERT_EQ(flow.orig(syn(new_client, kClientWindow, 7, true)), TcpVerdict::Accept);
  ASSERT_EQ(flow.state, TcpState::Close);
  EXPECT_EQ(flow.reply(syn_ack(new_server, new_client + 1, kServerWindow, 7, true)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::SynRecv);
  EXPECT_EQ(flow.w.end[0], new_client + 1);
  EXPECT_EQ(flow.w.scale[0], 7);
  EXPECT_EQ(flow.w.scale[1], 7);
  EXPECT_EQ(flow.w.flags[0] & (kTcpFlagWindowScale | kTcpFlagSackPerm), kTcpFlagWindowScale | kTcpFlagSackPerm);
  EXPECT_EQ(flow.w.end[1], new_server + 1);
  EXPECT_EQ(flow.orig(ack(new_client + 1, new_server + 1, 500)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Established);
  EXPECT_EQ(flow.w.maxend[1], new_server + 1 + (500u << 7));  // the client's scale from its ignored SYN
}

TEST(TcpTracker, SynAckNotAnsweringTheIgnoredSynIsIgnored) {
  Flow flow = established();
  ASSERT_EQ(flow.reply(rst(kServerIsn + 1)), TcpVerdict::Accept);
  ASSERT_EQ(flow.orig(syn(2'000'000)), TcpVerdict::Accept);
  const TcpWindow before = flow.w;
  EXPECT_EQ(flow.reply(syn_ack(9'000'000, 2'000'002)), TcpVerdict::Accept);  // acks one more than the SYN
  EXPECT_EQ(flow.state, TcpState::Close);
  EXPECT_EQ(flow.w.end[0], before.end[0]);
  EXPECT_EQ(flow.w.end[1], before.end[1]);
}

TEST(TcpTracker, SynAfterOwnRstReopensOnlyWhileThatRstIsTheLastSegment) {
  Flow flow = established();
  const uint32_t c = kClientIsn + 1, s = kServerIsn + 1;
  ASSERT_EQ(flow.orig(rst(c)), TcpVerdict::Accept);
  ASSERT_EQ(flow.state, TcpState::Close);
  // A segment from the server in between: the RST is no longer the last segment.
  EXPECT_EQ(flow.reply(ack(s, c, kServerWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.orig(syn(c + 70000)), TcpVerdict::Accept);  // ignored
  EXPECT_EQ(flow.state, TcpState::Close);
}

TEST(TcpTracker, SynAfterFinAndServerRstReopens) {
  // IP_CT_TCP_FLAG_CLOSE_INIT: a flow closed with a FIN reopens whoever sent the RST.
  Flow flow = established();
  const uint32_t c = kClientIsn + 1, s = kServerIsn + 1;
  ASSERT_EQ(flow.orig(segment(kTcpFin | kTcpAck, c, s, kClientWindow)), TcpVerdict::Accept);
  ASSERT_EQ(flow.reply(rst(s)), TcpVerdict::Accept);
  ASSERT_EQ(flow.state, TcpState::Close);
  EXPECT_EQ(flow.orig(syn(c + 70000)), TcpVerdict::Reopen);
}

TEST(TcpTracker, OutOfWindowFinAfterOwnRstStopsItsSynFromReopening) {
  // nf_tcp_handle_invalid(): an assured flow takes an invalid FIN or RST as its last
  // segment, unless it answers the peer's FIN or RST.
  Flow own = established();
  const uint32_t c = kClientIsn + 1, s = kServerIsn + 1;
  ASSERT_EQ(own.orig(rst(c)), TcpVerdict::Accept);
  EXPECT_EQ(own.orig(segment(kTcpFin | kTcpAck, c + 200000, s, kClientWindow)), TcpVerdict::Invalid);
  EXPECT_EQ(own.last.event(), TcpEvent::Fin);
  EXPECT_EQ(own.orig(syn(c + 70000)), TcpVerdict::Accept);  // ignored
  EXPECT_EQ(own.state, TcpState::Close);

  Flow peer = established();
  ASSERT_EQ(peer.orig(rst(c)), TcpVerdict::Accept);
  EXPECT_EQ(peer.reply(segment(kTcpFin | kTcpAck, s + 200000, c, kServerWindow)), TcpVerdict::Invalid);
  EXPECT_EQ(peer.last.event(), TcpEvent::Rst);  // answers the client's RST: kept
  EXPECT_EQ(peer.orig(syn(c + 70000)), TcpVerdict::Reopen);
}

TEST(TcpTracker, MatchesLinuxOnTheDifferentialTestsRandomSeedSeven) {
  // tcp_random_7 from tests/conntrack/diff_cases.py, with Linux 6.1's verdicts (steps 11,
  // 14 and 15 differed while any SYN reopened a RST-closed flow).
  struct Step {
    unsigned dir;
    TcpSegment seg;
    bool pass;
  };
  constexpr uint8_t kPa = kTcpPsh | kTcpAck, kSa = kTcpSyn | kTcpAck;
  const uint16_t cw = 29200, sw = 28960;
  const Step steps[] = {
      {1, segment(kSa, 500000, 1001, sw), true},
      {0, segment(kTcpAck, 1001, 500001, cw), true},
      {0, segment(kPa, 4294878297u, 500001, cw, 1000), true},
      {0, segment(kTcpSyn, 1001, 500000, cw), true},
      {0, segment(kTcpAck, 1002, 500001, cw, 1), true},
      {1, segment(kTcpRst, 500001, 1003, sw), true},
      {0, segment(kTcpSyn, 1004, 500001, cw), true},
      {0, segment(kPa, 4294878299u, 800001, cw, 1), false},
      {0, segment(kSa, 91003, 500002, cw), false},
      {0, segment(kPa, 4003, 500001, cw), true},
      {0, segment(kTcpRst, 1003, 495001, cw), true},
      {0, segment(kSa, 1003, 495001, cw), false},
      {1, segment(kPa, 500000, 1004, sw, 1), true},
      {0, segment(kPa, 91004, 500001, cw), false},
      {1, segment(kTcpSyn, 500002, 1003, sw), false},
      {1, segment(kSa, 497001, 1003, sw), true},
  };
  Flow flow;
  ASSERT_EQ(flow.open(segment(kTcpSyn, 1000, 0, cw)), TcpInvalid::None);
  int step = 2;
  for (const Step& s : steps) {
    const TcpVerdict verdict = s.dir == 0 ? flow.orig(s.seg) : flow.reply(s.seg);
    EXPECT_EQ(verdict, s.pass ? TcpVerdict::Accept : TcpVerdict::Invalid) << "step " << step;
    ++step;
  }
  EXPECT_EQ(flow.state, TcpState::Close);
}

TEST(TcpTracker, OverloadsWithoutHistoryStillTrackAndReopenAnyRstClosedFlow) {
  // For callers whose entries have no TcpLast yet: the old approximation.
  TcpState state = TcpState::None;
  TcpWindow w{};
  TcpInvalid why = TcpInvalid::None;
  const TcpSettings settings{};
  ASSERT_EQ(tcp_new(state, w, syn(kClientIsn), settings), TcpInvalid::None);
  ASSERT_EQ(tcp_track(state, w, 1, syn_ack(kServerIsn, kClientIsn + 1), settings, why), TcpVerdict::Accept);
  ASSERT_EQ(tcp_track(state, w, 0, ack(kClientIsn + 1, kServerIsn + 1, kClientWindow), settings, why),
            TcpVerdict::Accept);
  EXPECT_EQ(state, TcpState::Established);
  ASSERT_EQ(tcp_track(state, w, 1, rst(kServerIsn + 1), settings, why), TcpVerdict::Accept);
  EXPECT_EQ(state, TcpState::Close);
  EXPECT_EQ(tcp_track(state, w, 0, syn(kClientIsn + 70000), settings, why), TcpVerdict::Reopen);
}

// --- RST -----------------------------------------------------------------------------

TEST(TcpTracker, RstWithExactSequenceClosesEstablishedFlow) {
  Flow from_client = established();
  EXPECT_EQ(from_client.orig(rst(kClientIsn + 1)), TcpVerdict::Accept);
  EXPECT_EQ(from_client.state, TcpState::Close);
  Flow from_server = established();
  EXPECT_EQ(from_server.reply(segment(kTcpRst | kTcpAck, kServerIsn + 1, kClientIsn + 1, 0)), TcpVerdict::Accept);
  EXPECT_EQ(from_server.state, TcpState::Close);
}

TEST(TcpTracker, RstInWindowButNotExactIsForwardedWithoutClosing) {
  Flow flow = established();
  EXPECT_EQ(flow.orig(rst(kClientIsn + 1 + 1000)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Established);  // the endpoint answers with a challenge ACK
  EXPECT_EQ(flow.why, TcpInvalid::None);
  // ... and the RST with the right sequence number that follows it closes.
  EXPECT_EQ(flow.orig(rst(kClientIsn + 1)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Close);
}

TEST(TcpTracker, RstBeforeTheAcknowledgedSequenceIsInvalid) {
  Flow flow = established();
  EXPECT_EQ(flow.orig(rst(kClientIsn + 1 - 10)), TcpVerdict::Invalid);
  EXPECT_EQ(flow.why, TcpInvalid::RstOutOfWindow);
  EXPECT_EQ(flow.state, TcpState::Established);
}

TEST(TcpTracker, RstBeyondTheWindowIsInvalid) {
  Flow flow = established();
  EXPECT_EQ(flow.orig(rst(kClientIsn + 1 + 200000)), TcpVerdict::Invalid);
  EXPECT_EQ(flow.why, TcpInvalid::RstOutOfWindow);
  EXPECT_EQ(flow.reply(rst(kServerIsn + 1 + 300000)), TcpVerdict::Invalid);
  EXPECT_EQ(flow.why, TcpInvalid::RstOutOfWindow);
  EXPECT_EQ(flow.state, TcpState::Established);
}

TEST(TcpTracker, RstAnsweringSynClosesAndLinuxForgetsTheFlow) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn)), TcpInvalid::None);
  // Port closed: RST|ACK with seq 0 acknowledging the SYN.
  EXPECT_EQ(flow.reply(segment(kTcpRst | kTcpAck, 0, kClientIsn + 1, 0)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Close);
  // No reply but the RST: Linux deleted the conntrack, so anything next starts afresh.
  EXPECT_EQ(flow.orig(syn(kClientIsn)), TcpVerdict::Reopen);
  EXPECT_EQ(flow.orig(ack(kClientIsn + 1, 1, kClientWindow)), TcpVerdict::Reopen);
}

TEST(TcpTracker, RstInSynSentMustNotAcknowledgeBeyondTheSyn) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn)), TcpInvalid::None);
  EXPECT_EQ(flow.reply(segment(kTcpRst | kTcpAck, 0, kClientIsn + 100, 0)), TcpVerdict::Invalid);
  EXPECT_EQ(flow.why, TcpInvalid::RstOutOfWindow);
  EXPECT_EQ(flow.state, TcpState::SynSent);
}

TEST(TcpTracker, OpenerRstBeforeAnyReplyLeavesADeadFlow) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn)), TcpInvalid::None);
  EXPECT_EQ(flow.orig(rst(kClientIsn + 1)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Close);
  EXPECT_EQ(flow.reply(syn_ack(kServerIsn, kClientIsn + 1)), TcpVerdict::Reopen);  // caller: tcp_new -> NoFlow
}

TEST(TcpTracker, RstAnsweringAnIgnoredChallengeAckCloses) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn)), TcpInvalid::None);
  // The server still has an old connection on this pair: it answers with a challenge
  // ACK and the client resets that connection with the ACK's ack number.
  ASSERT_EQ(flow.reply(ack(90000, 4000000, kServerWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.orig(rst(4000000)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Close);
  EXPECT_EQ(flow.orig(syn(kClientIsn)), TcpVerdict::Reopen);  // and the retried SYN opens a new flow
}

TEST(TcpTracker, RstWhileClosingIsTakenWithoutWindowChecks) {
  Flow flow = established();
  ASSERT_EQ(flow.orig(segment(kTcpFin | kTcpAck, kClientIsn + 1, kServerIsn + 1, kClientWindow)), TcpVerdict::Accept);
  ASSERT_EQ(flow.state, TcpState::FinWait);
  EXPECT_EQ(flow.reply(rst(kServerIsn + 5'000'000)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Close);
}

TEST(TcpTracker, RstEndingTheSendersDataTrainCloses) {
  // tcp_rst_after_data: the server's data is unacknowledged, so the RST is not at the
  // client's highest ACK; it starts where the server's last segment ended.
  Flow flow = established();
  const uint32_t c = kClientIsn + 1, s = kServerIsn + 1;
  ASSERT_EQ(flow.reply(ack(s, c, kServerWindow, 19)), TcpVerdict::Accept);
  EXPECT_EQ(flow.reply(segment(kTcpRst | kTcpAck, s + 19, c, 0)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Close);
}

TEST(TcpTracker, RstAtTheSendersEndAfterThePeerSpokeKeepsTheFlow) {
  // The same RST once the client has sent a segment: neither the client's highest ACK
  // nor a train, so Linux keeps the flow for the challenge ACK.
  Flow flow = established();
  const uint32_t c = kClientIsn + 1, s = kServerIsn + 1;
  ASSERT_EQ(flow.reply(ack(s, c, kServerWindow, 19)), TcpVerdict::Accept);
  ASSERT_EQ(flow.orig(ack(c, s, kClientWindow, 10)), TcpVerdict::Accept);  // does not ack the 19 bytes
  EXPECT_EQ(flow.reply(segment(kTcpRst | kTcpAck, s + 19, c + 10, 0)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Established);
}

TEST(TcpTracker, RstAnsweringTheIgnoredSynClosesWithoutWindowChecks) {
  Flow flow = established();
  const uint32_t new_client = 9'000'000;
  ASSERT_EQ(flow.orig(syn(new_client)), TcpVerdict::Accept);  // ignored
  // An older stack resets the unexpected SYN: RST|ACK, seq 0, acking the SYN.
  EXPECT_EQ(flow.reply(segment(kTcpRst | kTcpAck, 0, new_client + 1, 0)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Close);
}

TEST(TcpTracker, RstNotAnsweringTheIgnoredSynIsJudgedByTheWindow) {
  Flow flow = established();
  const uint32_t new_client = 9'000'000;
  ASSERT_EQ(flow.orig(syn(new_client)), TcpVerdict::Accept);
  EXPECT_EQ(flow.reply(segment(kTcpRst | kTcpAck, 0, new_client + 2, 0)), TcpVerdict::Invalid);
  EXPECT_EQ(flow.why, TcpInvalid::RstOutOfWindow);
  EXPECT_EQ(flow.state, TcpState::Established);
}

TEST(TcpTracker, RstNotAnsweringTheIgnoredChallengeAckIsJudgedByTheWindow) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn)), TcpInvalid::None);
  ASSERT_EQ(flow.reply(ack(90000, 4000000, kServerWindow)), TcpVerdict::Accept);  // ignored
  EXPECT_EQ(flow.orig(rst(4000001)), TcpVerdict::Invalid);  // not the challenge ACK's ack
  EXPECT_EQ(flow.why, TcpInvalid::RstOutOfWindow);
  EXPECT_EQ(flow.state, TcpState::SynSent);
}

// --- windows -------------------------------------------------------------------------

TEST(TcpTracker, DataInsideTheWindowAdvancesTheSenderEnd) {
  Flow flow = established();
  EXPECT_EQ(flow.orig(ack(kClientIsn + 1, kServerIsn + 1, kClientWindow, 1460)), TcpVerdict::Accept);
  EXPECT_EQ(flow.w.end[0], kClientIsn + 1 + 1460);
  EXPECT_TRUE(flow.w.flags[0] & kTcpFlagDataUnacked);
  EXPECT_EQ(flow.reply(ack(kServerIsn + 1, kClientIsn + 1 + 1460, kServerWindow)), TcpVerdict::Accept);
  EXPECT_FALSE(flow.w.flags[0] & kTcpFlagDataUnacked);
  EXPECT_EQ(flow.w.maxend[0], kClientIsn + 1 + 1460 + kServerWindow);
}

TEST(TcpTracker, DataFarBeyondTheWindowIsInvalid) {
  Flow flow = established();
  const TcpWindow before = flow.w;
  EXPECT_EQ(flow.orig(ack(kClientIsn + 1 + 200000, kServerIsn + 1, kClientWindow, 100)), TcpVerdict::Invalid);
  EXPECT_EQ(flow.why, TcpInvalid::OutOfWindow);
  EXPECT_EQ(flow.state, TcpState::Established);
  EXPECT_EQ(flow.w.end[0], before.end[0]);
}

TEST(TcpTracker, DataJustBeyondTheWindowIsLetThroughAndRemembered) {
  // Linux's workaround for TCPs overshooting the receive window by less than a window.
  Flow flow = established();
  const uint32_t right_edge = kClientIsn + 1 + kServerWindow;
  EXPECT_EQ(flow.orig(ack(right_edge + 10, kServerIsn + 1, kClientWindow, 100)), TcpVerdict::Accept);
  EXPECT_EQ(flow.w.end[0], right_edge + 110);
  EXPECT_TRUE(flow.w.flags[0] & kTcpFlagDataUnacked);
  // So the peer's ACK for that data is not over the upper bound.
  EXPECT_EQ(flow.reply(ack(kServerIsn + 1, right_edge + 110, kServerWindow)), TcpVerdict::Accept);
}

TEST(TcpTracker, AckForDataNeverSentIsInvalid) {
  Flow flow = established();
  EXPECT_EQ(flow.reply(ack(kServerIsn + 1, kClientIsn + 1 + 5000, kServerWindow)), TcpVerdict::Invalid);
  EXPECT_EQ(flow.why, TcpInvalid::OutOfWindow);
}

TEST(TcpTracker, AckOlderThanMaxAckWindowIsIgnoredNotDropped) {
  // Linux 6.x: "ignored ACK under lower bound (possible overly delayed)" is NF_ACCEPT
  // without recording anything; only upper-bound failures are invalid.
  Flow flow = established();
  ASSERT_EQ(flow.orig(ack(kClientIsn + 1, kServerIsn + 1, kClientWindow, 1000)), TcpVerdict::Accept);
  ASSERT_EQ(flow.reply(ack(kServerIsn + 1, kClientIsn + 1001, kServerWindow)), TcpVerdict::Accept);
  for (int i = 0; i < 80; ++i) {  // 80 kB from the client, each acknowledged
    const uint32_t seq = kClientIsn + 1001 + i * 1000;
    ASSERT_EQ(flow.orig(ack(seq, kServerIsn + 1, kClientWindow, 1000)), TcpVerdict::Accept) << i;
    ASSERT_EQ(flow.reply(ack(kServerIsn + 1, seq + 1000, kServerWindow)), TcpVerdict::Accept) << i;
  }
  const TcpWindow before = flow.w;
  // An ACK from long ago: more than MAXACKWINDOW (66000) below the client's end.
  EXPECT_EQ(flow.reply(ack(kServerIsn + 1, kClientIsn + 1001, kServerWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.why, TcpInvalid::None);
  EXPECT_EQ(flow.w.maxend[0], before.maxend[0]);
  EXPECT_EQ(flow.w.maxwin[1], before.maxwin[1]);
  EXPECT_EQ(flow.state, TcpState::Established);
}

TEST(TcpTracker, RetransmissionBelowTheWindowIsIgnoredNotDropped) {
  Flow flow = established();
  for (int i = 0; i < 100; ++i) {
    const uint32_t seq = kClientIsn + 1 + i * 1000;
    ASSERT_EQ(flow.orig(ack(seq, kServerIsn + 1, kClientWindow, 1000)), TcpVerdict::Accept) << i;
    ASSERT_EQ(flow.reply(ack(kServerIsn + 1, seq + 1000, kServerWindow)), TcpVerdict::Accept) << i;
  }
  const TcpWindow before = flow.w;
  EXPECT_EQ(flow.orig(ack(kClientIsn + 1, kServerIsn + 1, kClientWindow, 1000)), TcpVerdict::Accept);
  EXPECT_EQ(flow.w.end[0], before.end[0]);
  EXPECT_EQ(flow.w.maxend[1], before.maxend[1]);
}

TEST(TcpTracker, WindowScaleAppliesWhenBothSidesSendTheOption) {
  Flow flow = established(kClientIsn, kServerIsn, 7, 7, 1000);
  EXPECT_EQ(flow.w.scale[0], 7);
  EXPECT_EQ(flow.w.scale[1], 7);
  // The server's raw window 1000 means 128000 bytes once scaled.
  ASSERT_EQ(flow.reply(ack(kServerIsn + 1, kClientIsn + 1, 1000)), TcpVerdict::Accept);
  EXPECT_EQ(flow.w.maxend[0], kClientIsn + 1 + 128000);
  EXPECT_EQ(flow.orig(ack(kClientIsn + 1 + 100000, kServerIsn + 1, 500, 1000)), TcpVerdict::Accept);
  EXPECT_EQ(flow.w.end[0], kClientIsn + 1 + 101000);
}

TEST(TcpTracker, WindowScaleIsOffWhenOnlyOneSideSendsTheOption) {
  Flow flow = established(kClientIsn, kServerIsn, 7, kNoScale, 1000);
  EXPECT_EQ(flow.w.scale[0], 0);
  EXPECT_EQ(flow.w.scale[1], 0);
  EXPECT_TRUE(flow.w.flags[0] & kTcpFlagWindowScale);
  EXPECT_FALSE(flow.w.flags[1] & kTcpFlagWindowScale);
  ASSERT_EQ(flow.reply(ack(kServerIsn + 1, kClientIsn + 1, 1000)), TcpVerdict::Accept);
  EXPECT_EQ(flow.w.maxend[0], kClientIsn + 1 + 1000);
  EXPECT_EQ(flow.orig(ack(kClientIsn + 1 + 100000, kServerIsn + 1, 500, 1000)), TcpVerdict::Invalid);
  EXPECT_EQ(flow.why, TcpInvalid::OutOfWindow);
}

TEST(TcpTracker, WindowScaleAboveFourteenIsCapped) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn, kClientWindow, 20)), TcpInvalid::None);
  EXPECT_EQ(flow.w.scale[0], 14);
}

TEST(TcpTracker, SequenceNumbersWrapAroundTwoToThe32) {
  const uint32_t c = 0xFFFFFFF0u, s = 0xFFFFFF00u;
  Flow flow = established(c, s);
  EXPECT_EQ(flow.orig(ack(c + 1, s + 1, kClientWindow, 100)), TcpVerdict::Accept);  // crosses 0
  EXPECT_EQ(flow.w.end[0], 0x55u);
  EXPECT_EQ(flow.reply(ack(s + 1, 0x55u, kServerWindow, 1000)), TcpVerdict::Accept);  // crosses 0 too
  EXPECT_EQ(flow.w.end[1], s + 1 + 1000);
  EXPECT_EQ(flow.orig(ack(0x55u, s + 1001, kClientWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.reply(ack(s + 1001, 0x55u + 10, kServerWindow)), TcpVerdict::Invalid);  // acks unsent data
  EXPECT_EQ(flow.orig(rst(0x55u)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Close);
}

TEST(TcpTracker, LiberalSettingAcceptsOutOfWindowSegments) {
  Flow flow = established();
  flow.settings.liberal = true;
  EXPECT_EQ(flow.orig(ack(kClientIsn + 1 + 200000, kServerIsn + 1, kClientWindow, 100)), TcpVerdict::Accept);
  EXPECT_EQ(flow.reply(ack(kServerIsn + 1, kClientIsn + 1 + 900000, kServerWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Established);
  // The state machine still applies.
  EXPECT_EQ(flow.orig(syn_ack(kClientIsn + 1, kServerIsn + 1)), TcpVerdict::Invalid);
  EXPECT_EQ(flow.why, TcpInvalid::BadTransition);
}

TEST(TcpTracker, SackEdgeBeyondSentDataIsInvalidWhenSackPermitted) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn, kClientWindow, kNoScale, true)), TcpInvalid::None);
  ASSERT_EQ(flow.reply(syn_ack(kServerIsn, kClientIsn + 1, kServerWindow, kNoScale, true)), TcpVerdict::Accept);
  ASSERT_EQ(flow.orig(ack(kClientIsn + 1, kServerIsn + 1, kClientWindow, 3000)), TcpVerdict::Accept);
  TcpSegment sacked = ack(kServerIsn + 1, kClientIsn + 1, kServerWindow);
  sacked.has_sack = true;
  sacked.sack = kClientIsn + 3001;  // SACKs all that was sent
  EXPECT_EQ(flow.reply(sacked), TcpVerdict::Accept);
  sacked.sack = kClientIsn + 9001;  // SACKs what was never sent
  EXPECT_EQ(flow.reply(sacked), TcpVerdict::Invalid);
  EXPECT_EQ(flow.why, TcpInvalid::OutOfWindow);
}

// --- resynchronisation -------------------------------------------------------------

TEST(TcpTracker, SynOnEstablishedFlowIsIgnoredAndItsSynAckResyncs) {
  Flow flow = established();
  const uint32_t new_client = 9'000'000, new_server = 7'000'000;
  EXPECT_EQ(flow.orig(syn(new_client)), TcpVerdict::Accept);  // ignored: maybe a new connection
  EXPECT_EQ(flow.state, TcpState::Established);
  EXPECT_EQ(flow.last.event(), TcpEvent::Syn);
  EXPECT_EQ(flow.last.dir(), 0u);
  // The server had lost the old connection and answers: both ends are in sync, we follow.
  EXPECT_EQ(flow.reply(syn_ack(new_server, new_client + 1)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::SynRecv);
  EXPECT_EQ(flow.orig(ack(new_client + 1, new_server + 1, kClientWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Established);
}

TEST(TcpTracker, SynAckRetransmittedOnEstablishedFlowIsIgnored) {
  Flow flow = established();
  EXPECT_EQ(flow.reply(syn_ack(kServerIsn, kClientIsn + 1)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::Established);
}

TEST(TcpTracker, ChallengeAckToSynInLastAckDoesNotEndTheFlow) {
  Flow flow = established();
  const uint32_t c = kClientIsn + 1, s = kServerIsn + 1;
  ASSERT_EQ(flow.orig(segment(kTcpFin | kTcpAck, c, s, kClientWindow)), TcpVerdict::Accept);
  ASSERT_EQ(flow.reply(segment(kTcpFin | kTcpAck, s, c + 1, kServerWindow)), TcpVerdict::Accept);
  ASSERT_EQ(flow.state, TcpState::LastAck);
  EXPECT_EQ(flow.orig(syn(c + 100000)), TcpVerdict::Accept);  // ignored
  EXPECT_EQ(flow.reply(ack(s + 1, c + 1, kServerWindow)), TcpVerdict::Accept);  // the challenge ACK
  EXPECT_EQ(flow.state, TcpState::LastAck);
  EXPECT_EQ(flow.orig(ack(c + 1, s + 1, kClientWindow)), TcpVerdict::Accept);  // the real last ACK
  EXPECT_EQ(flow.state, TcpState::TimeWait);
}

TEST(TcpTracker, OnlyOneChallengeAckIsExpectedPerIgnoredSyn) {
  Flow flow = established();
  const uint32_t c = kClientIsn + 1, s = kServerIsn + 1;
  ASSERT_EQ(flow.orig(segment(kTcpFin | kTcpAck, c, s, kClientWindow)), TcpVerdict::Accept);
  ASSERT_EQ(flow.reply(segment(kTcpFin | kTcpAck, s, c + 1, kServerWindow)), TcpVerdict::Accept);
  ASSERT_EQ(flow.orig(syn(c + 100000)), TcpVerdict::Accept);
  ASSERT_EQ(flow.reply(ack(s + 1, c + 1, kServerWindow)), TcpVerdict::Accept);  // the challenge ACK
  ASSERT_EQ(flow.state, TcpState::LastAck);
  EXPECT_EQ(flow.reply(ack(s + 1, c + 1, kServerWindow)), TcpVerdict::Accept);  // a second one is not
  EXPECT_EQ(flow.state, TcpState::TimeWait);
}

TEST(TcpTracker, SynAckFromTheOriginatorInNormalSynRecvIsNoSimultaneousOpen) {
  // Linux marks a simultaneous open when the flow enters SYN_SENT2, and only then may the
  // responder's ACK complete the handshake.
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn)), TcpInvalid::None);
  ASSERT_EQ(flow.reply(syn_ack(kServerIsn, kClientIsn + 1)), TcpVerdict::Accept);
  EXPECT_EQ(flow.orig(syn_ack(kClientIsn, kServerIsn + 1, kClientWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::SynRecv);
  EXPECT_EQ(flow.reply(ack(kServerIsn + 1, kClientIsn + 1, kServerWindow)), TcpVerdict::Accept);
  EXPECT_EQ(flow.state, TcpState::SynRecv);
  EXPECT_FALSE(flow.w.flags[0] & kTcpFlagSimultaneousOpen);
}

TEST(TcpTracker, AssuredOnceAValidSegmentTakesARepliedFlowToEstablished) {
  Flow flow;
  ASSERT_EQ(flow.open(syn(kClientIsn)), TcpInvalid::None);
  ASSERT_EQ(flow.reply(syn_ack(kServerIsn, kClientIsn + 1)), TcpVerdict::Accept);
  EXPECT_FALSE(tcp_assured(flow.w));
  ASSERT_EQ(flow.orig(ack(kClientIsn + 1, kServerIsn + 1, kClientWindow)), TcpVerdict::Accept);
  EXPECT_TRUE(tcp_assured(flow.w));

  // Picked up: the first reply is not yet "seen" when it is tracked; the next segment assures.
  Flow picked;
  ASSERT_EQ(picked.open(ack(kClientIsn, kServerIsn, kClientWindow)), TcpInvalid::None);
  ASSERT_EQ(picked.reply(ack(kServerIsn, kClientIsn, kServerWindow)), TcpVerdict::Accept);
  EXPECT_FALSE(tcp_assured(picked.w));
  ASSERT_EQ(picked.orig(ack(kClientIsn, kServerIsn, kClientWindow)), TcpVerdict::Accept);
  EXPECT_TRUE(tcp_assured(picked.w));
}

// --- parsing raw headers -----------------------------------------------------------

// A TCP header with `options` after the fixed 20 bytes; `len` is the header length.
struct RawHeader {
  std::array<uint8_t, 60> bytes{};
  uint32_t len = 0;
};

RawHeader raw_header(uint8_t flags, std::initializer_list<uint8_t> options) {
  RawHeader header;
  const uint8_t fixed[] = {
      0x30, 0x39, 0x00, 0x50,  // ports 12345 -> 80
      0x01, 0x02, 0x03, 0x04,  // seq
      0xa0, 0xb0, 0xc0, 0xd0,  // ack
      0x50, flags,             // data offset (not read: header_len is given), flags
      0x12, 0x34,              // window
      0x00, 0x00, 0x00, 0x00,  // checksum, urgent
  };
  for (uint8_t byte : fixed) header.bytes[header.len++] = byte;
  for (uint8_t byte : options) header.bytes[header.len++] = byte;
  header.bytes[12] = static_cast<uint8_t>(((header.len + 3) / 4) << 4);
  return header;
}

TcpSegment parse(const RawHeader& header, uint32_t payload = 0) {
  return tcp_segment(header.bytes.data(), header.len, payload);
}

TEST(TcpTracker, ParsesSequenceAckWindowFlagsAndPayload) {
  const TcpSegment seg = parse(raw_header(kTcpAck | kTcpPsh, {}), 77);
  EXPECT_EQ(seg.seq, 0x01020304u);
  EXPECT_EQ(seg.ack, 0xa0b0c0d0u);
  EXPECT_EQ(seg.window, 0x1234);
  EXPECT_EQ(seg.flags, kTcpAck | kTcpPsh);
  EXPECT_EQ(seg.payload, 77u);
  EXPECT_EQ(seg.wscale, kNoScale);
  EXPECT_FALSE(seg.sack_perm);
  EXPECT_FALSE(seg.has_sack);
}

TEST(TcpTracker, ParsesWindowScaleAndSackPermittedOnSyn) {
  // A Linux SYN: MSS, SACK permitted, timestamps, NOP, window scale 7.
  const TcpSegment seg = parse(raw_header(kTcpSyn, {2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7}));
  EXPECT_EQ(seg.wscale, 7);
  EXPECT_TRUE(seg.sack_perm);
}

TEST(TcpTracker, ParsedSynOpensFlowWithItsOptions) {
  Flow flow;
  ASSERT_EQ(flow.open(parse(raw_header(kTcpSyn, {1, 3, 3, 9, 4, 2}))), TcpInvalid::None);
  EXPECT_EQ(flow.w.scale[0], 9);
  EXPECT_EQ(flow.w.end[0], 0x01020305u);
  EXPECT_EQ(flow.w.flags[0] & (kTcpFlagWindowScale | kTcpFlagSackPerm), kTcpFlagWindowScale | kTcpFlagSackPerm);
}

TEST(TcpTracker, ParsedWindowScaleIsCappedAtFourteen) {
  EXPECT_EQ(parse(raw_header(kTcpSyn, {3, 3, 20, 0})).wscale, 14);
}

TEST(TcpTracker, SynOptionsAreNotReadFromNonSynSegments) {
  const TcpSegment seg = parse(raw_header(kTcpAck, {3, 3, 7, 4, 2, 0}));
  EXPECT_EQ(seg.wscale, kNoScale);
  EXPECT_FALSE(seg.sack_perm);
}

TEST(TcpTracker, EndOfOptionListStopsTheWalk) {
  const TcpSegment seg = parse(raw_header(kTcpSyn, {1, 0, 3, 3, 7, 0, 0, 0}));
  EXPECT_EQ(seg.wscale, kNoScale);
}

TEST(TcpTracker, OptionsPastHeaderLengthAreNeverRead) {
  // The window scale option lies in the buffer but beyond header_len.
  const RawHeader header = raw_header(kTcpSyn, {1, 1, 3, 3, 7});
  EXPECT_EQ(tcp_segment(header.bytes.data(), 22, 0).wscale, kNoScale);
  EXPECT_EQ(tcp_segment(header.bytes.data(), 24, 0).wscale, kNoScale);  // kind and length only: partial
  EXPECT_EQ(tcp_segment(header.bytes.data(), 25, 0).wscale, 7);
}

TEST(TcpTracker, OptionLengthBelowTwoStopsTheWalk) {
  EXPECT_EQ(parse(raw_header(kTcpSyn, {2, 1, 3, 3, 7, 0})).wscale, kNoScale);
  EXPECT_EQ(parse(raw_header(kTcpSyn, {8, 0, 3, 3, 7, 0})).wscale, kNoScale);
}

TEST(TcpTracker, OptionLongerThanTheHeaderStopsTheWalk) {
  const TcpSegment seg = parse(raw_header(kTcpSyn, {4, 2, 2, 40, 3, 3, 7, 0}));
  EXPECT_TRUE(seg.sack_perm);  // read before the bad option
  EXPECT_EQ(seg.wscale, kNoScale);
}

TEST(TcpTracker, LoneKindByteAtTheEndIsNotRead) {
  EXPECT_EQ(parse(raw_header(kTcpSyn, {1, 1, 1, 3})).wscale, kNoScale);
}

TEST(TcpTracker, WindowScaleWithWrongLengthIsSkipped) {
  const TcpSegment seg = parse(raw_header(kTcpSyn, {3, 4, 7, 0, 4, 2, 1, 1}));
  EXPECT_EQ(seg.wscale, kNoScale);
  EXPECT_TRUE(seg.sack_perm);  // the walk went on past it
}

TEST(TcpTracker, ParsesHighestRightEdgeOfFirstSackOption) {
  const TcpSegment seg = parse(raw_header(kTcpAck, {1, 1, 5, 18,                       //
                                                    0xa0, 0xb0, 0xc8, 0x00, 0xa0, 0xb0, 0xcc, 0x00,  // block 1
                                                    0xa0, 0xb0, 0xd0, 0x00, 0xa0, 0xb0, 0xd4, 0x00,  // block 2
                                                    1, 1, 5, 10, 0xa0, 0xb0, 0xf0, 0x00, 0xa0, 0xb0, 0xff, 0x00}));
  ASSERT_TRUE(seg.has_sack);
  EXPECT_EQ(seg.sack, 0xa0b0d400u);  // the second SACK option is not read, as in Linux
}

TEST(TcpTracker, SackOptionWithPartialBlockIsIgnored) {
  const TcpSegment seg = parse(raw_header(kTcpAck, {5, 12, 0xa0, 0xb0, 0xc8, 0x00, 0xa0, 0xb0, 0xcc, 0x00, 0, 0}));
  EXPECT_FALSE(seg.has_sack);
}

TEST(TcpTracker, HeaderShorterThanTwentyBytesReadsNothing) {
  const RawHeader header = raw_header(kTcpSyn, {});
  const TcpSegment seg = tcp_segment(header.bytes.data(), 12, 0);
  EXPECT_EQ(seg.flags, 0);
  Flow flow;
  EXPECT_EQ(flow.open(seg), TcpInvalid::BadFlags);
}

// --- names ---------------------------------------------------------------------------

TEST(TcpTracker, StateNamesFollowConntrack) {
  const std::string_view names[] = {"none",       "syn_sent", "syn_recv",  "established", "fin_wait",
                                    "close_wait", "last_ack", "time_wait", "close",       "syn_sent2"};
  for (int i = 0; i < static_cast<int>(TcpState::Count); ++i) {
    EXPECT_EQ(tcp_state_name(static_cast<TcpState>(i)), names[i]);
  }
}

TEST(TcpTracker, InvalidNamesAreTheDropReasons) {
  EXPECT_EQ(tcp_invalid_name(TcpInvalid::None), "ok");
  EXPECT_EQ(tcp_invalid_name(TcpInvalid::BadFlags), "tcp_bad_flags");
  EXPECT_EQ(tcp_invalid_name(TcpInvalid::NoFlow), "tcp_no_flow");
  EXPECT_EQ(tcp_invalid_name(TcpInvalid::BadTransition), "tcp_bad_transition");
  EXPECT_EQ(tcp_invalid_name(TcpInvalid::OutOfWindow), "tcp_out_of_window");
  EXPECT_EQ(tcp_invalid_name(TcpInvalid::RstOutOfWindow), "tcp_rst_out_of_window");
}

// --- one way (direct server return) ---------------------------------------------------

TEST(TcpTracker, OneWayConnectionFollowsTheOriginatorsSegmentsOnly) {
  auto seg = [](uint8_t flags) {
    TcpSegment s;
    s.flags = flags;
    return s;
  };
  TcpState state = TcpState::None;
  EXPECT_EQ(tcp_track_one_way(state, seg(kTcpSyn)), TcpVerdict::Accept);
  EXPECT_EQ(state, TcpState::SynSent);
  EXPECT_EQ(tcp_track_one_way(state, seg(kTcpSyn)), TcpVerdict::Accept) << "a retransmitted SYN";
  EXPECT_EQ(state, TcpState::SynSent);
  EXPECT_EQ(tcp_track_one_way(state, seg(kTcpAck)), TcpVerdict::Accept) << "the handshake's ACK, never seen answered";
  EXPECT_EQ(state, TcpState::Established);
  EXPECT_EQ(tcp_track_one_way(state, seg(kTcpAck | kTcpPsh)), TcpVerdict::Accept);
  EXPECT_EQ(state, TcpState::Established);
  EXPECT_EQ(tcp_track_one_way(state, seg(kTcpAck | kTcpFin)), TcpVerdict::Accept);
  EXPECT_EQ(state, TcpState::TimeWait);
  EXPECT_EQ(tcp_track_one_way(state, seg(kTcpAck)), TcpVerdict::Accept) << "the close's last ACK";
  EXPECT_EQ(state, TcpState::TimeWait);
  EXPECT_EQ(tcp_track_one_way(state, seg(kTcpSyn)), TcpVerdict::Reopen) << "the port reused";

  state = TcpState::Established;
  EXPECT_EQ(tcp_track_one_way(state, seg(kTcpSyn | kTcpAck)), TcpVerdict::Accept) << "not a new connection";
  EXPECT_EQ(state, TcpState::Established);
  EXPECT_EQ(tcp_track_one_way(state, seg(kTcpRst)), TcpVerdict::Accept);
  EXPECT_EQ(state, TcpState::Close);
  EXPECT_EQ(tcp_track_one_way(state, seg(kTcpSyn)), TcpVerdict::Reopen);

  state = TcpState::Established;  // picked up mid-stream (tcp_loose)
  EXPECT_EQ(tcp_track_one_way(state, seg(kTcpSyn)), TcpVerdict::Accept) << "a SYN on a live connection is not a reopen";
}

}  // namespace
}  // namespace sluice::flow
