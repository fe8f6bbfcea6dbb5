// TCP connection tracking after Linux 6.1 net/netfilter/nf_conntrack_proto_tcp.c: the
// same transition table, the same four window checks and the same ignore/invalid
// outcomes, over the 28 bytes of TcpWindow and the 2 of TcpLast a flow entry keeps.
// Where Linux consults per-conntrack history we have no room for (td_maxack, the high
// bits of last_end/last_ack, last_seq, last_win, retrans), the nearest thing we do keep
// stands in for it; each such place says so.
#include "flow/tcp_tracker.h"

#include <cstring>

#include "net/headers.h"

namespace sluice::flow {
namespace {

// Sequence space comparisons modulo 2^32 (include/net/tcp.h before()/after()).
constexpr bool before(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }
constexpr bool after(uint32_t a, uint32_t b) { return before(b, a); }

constexpr uint8_t kMaxWindowScale = 14;      // TCP_MAX_WSCALE (RFC 7323 2.3)
constexpr uint32_t kMaxAckWindow = 66000;    // MAXACKWINCONST
constexpr uint32_t kMaxSynWindow = 65535;    // a SYN's window is never scaled

constexpr uint8_t kOptEnd = 0, kOptNop = 1, kOptWindowScale = 3, kOptSackPerm = 4, kOptSack = 5;
constexpr uint8_t kOptWindowScaleLen = 3, kOptSackPermLen = 2, kOptSackBaseLen = 2, kOptSackBlockLen = 8;

// Bits tcp_options() keeps when it re-reads a side's SYN: Linux keeps BE_LIBERAL only;
// kTcpFlagSeen, kTcpFlagSimultaneousOpen and kTcpFlagAssured are our copies of
// conntrack-wide state (ct->status, last_flags).
constexpr uint8_t kFlagsConntrackWide = kTcpFlagSeen | kTcpFlagSimultaneousOpen | kTcpFlagAssured;
constexpr uint8_t kFlagsKeptOnReinit = kTcpFlagLiberal | kFlagsConntrackWide;

// The events of tcp_conntracks[][] (enum tcp_bit_set).
enum Event : uint8_t { kEvSyn, kEvSynAck, kEvFin, kEvAck, kEvRst, kEvNone, kEventCount };

// The value TcpLast keeps for an event (TcpEvent: None is 0, so a zeroed entry has no last segment).
TcpEvent last_event_of(Event event) {
  return event == kEvNone ? TcpEvent::None : static_cast<TcpEvent>(event + 1);
}

// get_conntrack_index(): RST wins over SYN wins over FIN wins over ACK.
Event event_of(uint8_t flags) {
  if (flags & kTcpRst) return kEvRst;
  if (flags & kTcpSyn) return (flags & kTcpAck) ? kEvSynAck : kEvSyn;
  if (flags & kTcpFin) return kEvFin;
  if (flags & kTcpAck) return kEvAck;
  return kEvNone;
}

// tcp_valid_flags[]: the combinations a TCP sends; PSH, ECE and CWR never matter.
bool valid_flags(uint8_t flags) {
  switch (flags & (kTcpFin | kTcpSyn | kTcpRst | kTcpAck | kTcpUrg)) {
    case kTcpSyn:
    case kTcpSyn | kTcpUrg:
    case kTcpSyn | kTcpAck:
    case kTcpRst:
    case kTcpRst | kTcpAck:
    case kTcpFin | kTcpAck:
    case kTcpFin | kTcpAck | kTcpUrg:
    case kTcpAck:
    case kTcpAck | kTcpUrg:
      return true;
    default:
      return false;
  }
}

// tcp_conntracks[2][6][TCP_CONNTRACK_MAX], verbatim. sIV: invalid; sIG: accept, no change.
constexpr uint8_t sNO = 0, sSS = 1, sSR = 2, sES = 3, sFW = 4, sCW = 5, sLA = 6, sTW = 7, sCL = 8, sS2 = 9;
constexpr uint8_t sIV = 10, sIG = 11;
constexpr int kStates = static_cast<int>(TcpState::Count);
static_assert(kStates == 10 && sS2 == static_cast<uint8_t>(TcpState::SynSent2));

constexpr uint8_t kTransitions[2][kEventCount][kStates] = {
    {
        // ORIGINAL  sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        /* syn    */ {sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2},
        /* synack */ {sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR},
        /* fin    */ {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
        /* ack    */ {sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV},
        /* rst    */ {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
        /* none   */ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
    },
    {
        // REPLY     sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        /* syn    */ {sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2},
        /* synack */ {sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR},
        /* fin    */ {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
        /* ack    */ {sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG},
        /* rst    */ {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
        /* none   */ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
    },
};

// segment_seq_plus_len(): SYN and FIN each take one sequence number.
uint32_t segment_end(const TcpSegment& seg) {
  return seg.seq + seg.payload + ((seg.flags & kTcpSyn) ? 1u : 0u) + ((seg.flags & kTcpFin) ? 1u : 0u);
}

// TcpLast's encoding (layout in tcp_tracker.h).
constexpr uint8_t kLastEventMask = 0x07, kLastDirBit = 0x08, kLastDetailShift = 4;
constexpr uint8_t kLastNoWindowScale = 0x0f;  // detail of an ignored SYN without the option
constexpr uint8_t kLastSynEndMask = 0x3f, kLastSynSackPerm = 0x40, kLastSynChallengeAck = 0x80;

uint8_t last_detail(const TcpLast& last) { return static_cast<uint8_t>(last.dir_event >> kLastDetailShift); }

void set_last_detail(TcpLast& last, uint32_t detail) {
  last.dir_event = static_cast<uint8_t>((last.dir_event & (kLastEventMask | kLastDirBit)) |
                                        ((detail & 0x0f) << kLastDetailShift));
}

// ct->proto.tcp.last_index and last_dir; the rest of what Linux keeps is left as it was.
void set_last(TcpLast& last, Event event, unsigned dir) {
  last.dir_event = static_cast<uint8_t>((last.dir_event & ~(kLastEventMask | kLastDirBit)) |
                                        static_cast<uint8_t>(last_event_of(event)) | (dir ? kLastDirBit : 0));
}

// tcp_in_window()'s "check retransmissions" record of an ACK: last_end, 12 bits of it.
void record_ack(TcpLast& last, uint32_t end) {
  last.end_mark = static_cast<uint8_t>(end);
  set_last_detail(last, end >> 8);
}

// Linux's `value == last_end`, on the bits TcpLast has for the last segment: 6 after a
// SYN, 12 after an ACK the window checks passed, 8 otherwise (an ignored SYN/ACK, or an
// ignored reply ACK: the only ACKs tracked in SYN_SENT and SYN_SENT2).
bool matches_last_end(const TcpLast& last, TcpState state, uint32_t value) {
  switch (last.event()) {
    case TcpEvent::Syn:
      return (value & kLastSynEndMask) == (last.end_mark & kLastSynEndMask);
    case TcpEvent::Ack:
      if (state != TcpState::SynSent && state != TcpState::SynSent2) {
        return (value & 0xfffu) == (last.end_mark | uint32_t{last_detail(last)} << 8);
      }
      [[fallthrough]];
    default:
      return static_cast<uint8_t>(value) == last.end_mark;
  }
}

// Linux's `value == last_ack` after an ignored reply ACK in SYN_SENT: 4 bits of it.
bool matches_last_ack(const TcpLast& last, uint32_t value) { return (value & 0x0f) == last_detail(last); }

// tcp_options() for one side's SYN: the scale it asked for and what it permits.
void apply_syn_options(TcpWindow& w, unsigned side, const TcpSegment& seg) {
  w.scale[side] = 0;
  w.flags[side] &= kFlagsKeptOnReinit;
  if (seg.sack_perm) w.flags[side] |= kTcpFlagSackPerm;
  if (seg.wscale != 0xff) {
    w.scale[side] = seg.wscale > kMaxWindowScale ? kMaxWindowScale : seg.wscale;
    w.flags[side] |= kTcpFlagWindowScale;
  }
}

// tcp_init_sender(): a side's window from its SYN or SYN/ACK.
void init_sender(TcpWindow& w, unsigned dir, const TcpSegment& seg, uint32_t end) {
  w.end[dir] = w.maxend[dir] = end;
  w.maxwin[dir] = seg.window == 0 ? 1 : seg.window;
  apply_syn_options(w, dir, seg);
  // RFC 7323: scaling is on in either direction only when both SYNs carried the option.
  if (dir == 1 && !((w.flags[0] & kTcpFlagWindowScale) && (w.flags[1] & kTcpFlagWindowScale))) {
    w.scale[0] = w.scale[1] = 0;
  }
}

uint32_t max_ack_window(const TcpWindow& w, unsigned side) {
  return w.maxwin[side] > kMaxAckWindow ? w.maxwin[side] : kMaxAckWindow;  // MAXACKWINDOW()
}

enum class WindowResult : uint8_t { Accept, Ignore, Invalid };

// tcp_in_window(). `state` is the flow's stored state (Linux reads ct->proto.tcp.state).
// Writes into `w` as Linux does, including on some paths that then fail; an ACK that
// passes is recorded in `last`.
WindowResult in_window(TcpState state, TcpWindow& w, TcpLast& last, Event event, unsigned dir,
                       const TcpSegment& seg, const TcpSettings& settings) {
  const unsigned snd = dir, rcv = dir ^ 1;
  const bool syn = seg.flags & kTcpSyn, has_ack = seg.flags & kTcpAck, rst = seg.flags & kTcpRst;
  uint32_t seq = seg.seq;
  uint32_t ack = seg.ack;
  uint32_t sack = seg.ack;
  uint32_t win = seg.window;
  uint32_t end = segment_end(seg);

  // nf_tcp_log_invalid(): a liberal sender passes, but nothing below is recorded.
  const auto judged = [&](WindowResult failure) {
    return (settings.liberal || (w.flags[snd] & kTcpFlagLiberal)) ? WindowResult::Accept : failure;
  };

  if ((w.flags[rcv] & kTcpFlagSackPerm) && seg.has_sack && after(seg.sack, sack)) sack = seg.sack;

  if (w.maxwin[snd] == 0) {
    if (syn) {
      // First SYN/ACK in reply, or the reply's own SYN in a simultaneous open.
      init_sender(w, snd, seg, end);
      if (!has_ack) return WindowResult::Accept;
    } else {
      // A side we have never seen (picked-up flow): believe what it says.
      w.end[snd] = end;
      const uint32_t swin = win << w.scale[snd];
      w.maxwin[snd] = swin == 0 ? 1 : swin;
      w.maxend[snd] = end + w.maxwin[snd];
      if (w.maxwin[rcv] == 0) {
        w.end[rcv] = w.maxend[rcv] = sack;  // so that checks III and IV pass until it speaks
      } else if (sack == w.end[rcv] + 1) {
        ++w.end[rcv];  // likely the answer to a keepalive
      }
    }
  } else if (syn && after(end, w.end[snd]) && (state == TcpState::SynSent || state == TcpState::SynRecv)) {
    // RFC 793: a reinitialised TCP may reuse the pair with a higher ISN; re-read its SYN.
    init_sender(w, snd, seg, end);
    if (dir == 1 && !has_ack) return WindowResult::Accept;
  }

  if (!has_ack) {
    ack = sack = w.end[rcv];  // no ACK: pretend it acknowledged everything
  } else if (rst && ack == 0) {
    ack = sack = w.end[rcv];  // stacks that set ACK on a RST with a zero ack number
  }
  if (rst && seq == 0 && state == TcpState::SynSent) seq = end = w.end[snd];  // RST answering the SYN

  // I. Upper bound for valid data: seq <= sender.maxend.
  if (!before(seq, w.maxend[snd] + 1)) {
    const uint32_t overshot = end - w.maxend[snd] + 1;
    const bool ack_ok = after(sack, w.end[rcv] - max_ack_window(w, snd) - 1);
    const bool in_recv_win = w.maxwin[rcv] != 0 && after(end, w.end[snd] - w.maxwin[rcv] - 1);
    if (in_recv_win && ack_ok && overshot <= w.maxwin[rcv] && before(sack, w.end[rcv] + 1)) {
      // A TCP sending a little beyond the receive window: pass it, and remember the data
      // so the peer's ACK for it is not judged over the upper bound later.
      if (!rst) {
        w.end[snd] = end;
        w.flags[snd] |= kTcpFlagDataUnacked;
      }
      return judged(WindowResult::Ignore);
    }
    return judged(WindowResult::Invalid);
  }
  // III. Upper bound for valid ack: no acknowledging data never sent.
  if (!before(sack, w.end[rcv] + 1)) return judged(WindowResult::Invalid);
  // II. Lower bound for valid data: an old retransmission is let through, not recorded.
  if (w.maxwin[rcv] != 0 && !after(end, w.end[snd] - w.maxwin[rcv] - 1)) return judged(WindowResult::Ignore);
  // IV. Lower bound for valid ack: an overly delayed ACK, likewise.
  if (!after(sack, w.end[rcv] - max_ack_window(w, snd) - 1)) return judged(WindowResult::Ignore);

  if (!syn) win <<= w.scale[snd];

  // The sender's side.
  const uint32_t swin = win + (sack - ack);
  if (w.maxwin[snd] < swin) w.maxwin[snd] = swin;
  // Linux moves td_end to a RST's seq too; a RST carries no data, and our end stands in
  // for the peer's td_maxack in the RFC 5961 check, so a not-exact RST must not move it.
  if (after(end, w.end[snd]) && !rst) {
    w.end[snd] = end;
    w.flags[snd] |= kTcpFlagDataUnacked;
  }
  if (has_ack) w.flags[snd] |= kTcpFlagMaxAckSet;

  // The receiver's side: what this segment allows it to send.
  if (w.maxwin[rcv] != 0 && after(end, w.maxend[snd])) w.maxwin[rcv] += end - w.maxend[snd];
  if (after(sack + win, w.maxend[rcv] - 1)) {
    w.maxend[rcv] = sack + win;
    if (win == 0) ++w.maxend[rcv];
  }
  if (ack == w.end[rcv]) w.flags[rcv] &= ~kTcpFlagDataUnacked;

  // Check retransmissions: Linux records the ACK (last_seq, last_ack, last_end, last_win)
  // or counts it as retransmitted when all four repeat. We keep last_end only, which is
  // the same in both cases; the count feeds only a timeout (see tcp_track).
  if (event == kEvAck) record_ack(last, end);
  return WindowResult::Accept;
}

// tcp_can_early_drop(): the closing states, where Linux takes any RST without checks.
bool closing(TcpState state) {
  switch (state) {
    case TcpState::FinWait:
    case TcpState::CloseWait:
    case TcpState::LastAck:
    case TcpState::TimeWait:
    case TcpState::Close:
      return true;
    default:
      return false;
  }
}

// tcp_packet()'s TCP_CONNTRACK_IGNORE record of a segment it lets through unjudged:
// last_index, last_dir, last_end (last_seq and last_win are not kept); for a SYN from the
// originator the options it asked for (last_flags, last_wscale, for the resync on its
// SYN/ACK) and whether the challenge ACK of LAST_ACK may follow; for a reply ACK in
// SYN_SENT its ack (last_ack, a possible challenge ACK). An ignored SYN restarts
// last_flags, which drops IP_CT_TCP_SIMULTANEOUS_OPEN.
void record_ignored(TcpLast& last, TcpWindow& w, TcpState state, Event event, unsigned dir, const TcpSegment& seg) {
  const uint32_t end = segment_end(seg);
  set_last(last, event, dir);
  if (event == kEvSyn && dir == 0) {
    w.flags[0] &= static_cast<uint8_t>(~kTcpFlagSimultaneousOpen);
    last.end_mark = static_cast<uint8_t>((end & kLastSynEndMask) | (seg.sack_perm ? kLastSynSackPerm : 0) |
                                         (state == TcpState::LastAck ? kLastSynChallengeAck : 0));
    set_last_detail(last, seg.wscale == 0xff ? kLastNoWindowScale
                                             : (seg.wscale > kMaxWindowScale ? kMaxWindowScale : seg.wscale));
    return;
  }
  last.end_mark = static_cast<uint8_t>(end);
  if (state == TcpState::SynSent && event == kEvAck && dir == 1) set_last_detail(last, seg.ack);
}

// nf_tcp_handle_invalid(): an assured flow takes an out-of-window FIN or RST as its last
// segment, unless it answers the peer's own FIN or RST (then Linux shortens the timeout
// to UNACK instead, which is the caller's business and not done).
void note_invalid(TcpLast& last, bool assured, Event event, unsigned dir) {
  if (!assured || (event != kEvFin && event != kEvRst)) return;
  const TcpEvent previous = last.event();
  if (last.dir() != dir && (previous == TcpEvent::Fin || previous == TcpEvent::Rst)) return;
  set_last(last, event, dir);
}

}  // namespace

std::string_view tcp_state_name(TcpState state) {
  switch (state) {
    case TcpState::None: return "none";
    case TcpState::SynSent: return "syn_sent";
    case TcpState::SynRecv: return "syn_recv";
    case TcpState::Established: return "established";
    case TcpState::FinWait: return "fin_wait";
    case TcpState::CloseWait: return "close_wait";
    case TcpState::LastAck: return "last_ack";
    case TcpState::TimeWait: return "time_wait";
    case TcpState::Close: return "close";
    case TcpState::SynSent2: return "syn_sent2";
    case TcpState::Count: break;
  }
  return "unknown";
}

std::string_view tcp_invalid_name(TcpInvalid why) {
  switch (why) {
    case TcpInvalid::None: return "ok";
    case TcpInvalid::BadFlags: return "tcp_bad_flags";
    case TcpInvalid::NoFlow: return "tcp_no_flow";
    case TcpInvalid::BadTransition: return "tcp_bad_transition";
    case TcpInvalid::OutOfWindow: return "tcp_out_of_window";
    case TcpInvalid::RstOutOfWindow: return "tcp_rst_out_of_window";
  }
  return "unknown";
}

TcpSegment tcp_segment(const uint8_t* tcp_header, uint32_t header_len, uint32_t payload) {
  TcpSegment seg;
  seg.payload = payload;
  if (tcp_header == nullptr || header_len < sizeof(net::TcpHeader)) return seg;

  net::TcpHeader th;
  std::memcpy(&th, tcp_header, sizeof(th));
  seg.seq = th.seq.value();
  seg.ack = th.ack.value();
  seg.window = th.window.value();
  seg.flags = th.flags;
  const bool syn = seg.flags & kTcpSyn;

  // tcp_options() and tcp_sack() in one walk; both stop at the same places.
  const uint8_t* opt = tcp_header + sizeof(net::TcpHeader);
  uint32_t left = header_len - static_cast<uint32_t>(sizeof(net::TcpHeader));
  while (left > 0) {
    const uint8_t kind = opt[0];
    if (kind == kOptEnd) break;
    if (kind == kOptNop) {
      ++opt;
      --left;
      continue;
    }
    if (left < 2) break;
    const uint8_t len = opt[1];
    if (len < 2 || len > left) break;  // a silly or partial option ends the walk
    if (syn && kind == kOptWindowScale && len == kOptWindowScaleLen) {
      seg.wscale = opt[2] > kMaxWindowScale ? kMaxWindowScale : opt[2];
    } else if (syn && kind == kOptSackPerm && len == kOptSackPermLen) {
      seg.sack_perm = true;
    } else if (kind == kOptSack && !seg.has_sack && len >= kOptSackBaseLen + kOptSackBlockLen &&
               (len - kOptSackBaseLen) % kOptSackBlockLen == 0) {
      // Only the first SACK option counts, as in tcp_sack(); keep the highest right edge.
      seg.sack = seg.ack;
      for (uint32_t at = kOptSackBaseLen; at < len; at += kOptSackBlockLen) {
        net::be32 right_edge;
        std::memcpy(&right_edge, opt + at + 4, sizeof(right_edge));
        if (after(right_edge.value(), seg.sack)) seg.sack = right_edge.value();
      }
      seg.has_sack = true;
    }
    opt += len;
    left -= len;
  }
  return seg;
}

// nf_conntrack's tcp_new(), plus the state the first pass of nf_conntrack_tcp_packet()
// gives it (tcp_conntracks[0][event][sNO]) and the last segment it then records.
TcpInvalid tcp_new(TcpState& state, TcpWindow& w, TcpLast& last, const TcpSegment& seg,
                   const TcpSettings& settings) {
  if (!valid_flags(seg.flags)) return TcpInvalid::BadFlags;
  const Event event = event_of(seg.flags);
  const uint8_t next = kTransitions[0][event][sNO];
  if (next == sIV) return TcpInvalid::NoFlow;  // SYN/ACK, RST, FIN: too late to open anything
  if (next != sSS && !settings.loose) return TcpInvalid::NoFlow;

  w = TcpWindow{};
  w.end[0] = segment_end(seg);
  w.maxwin[0] = seg.window == 0 ? 1 : seg.window;
  if (next == sSS) {
    w.maxend[0] = w.end[0];
    apply_syn_options(w, 0, seg);
  } else {
    // Mid-stream pickup: the history is lost, so assume SACK and skip window judgement
    // (the scale is unknown) on both sides for the life of the flow.
    w.maxend[0] = w.end[0] + w.maxwin[0];
    w.flags[0] = w.flags[1] = kTcpFlagSackPerm | kTcpFlagLiberal;
  }
  w.flags[0] |= kTcpFlagSeen;
  // memset() of ip_ct_tcp, then the opening segment is the last one tracked. A picked-up
  // ACK fails a check of tcp_in_window() (the reply's end is still 0) unless it acks
  // within 66000 below 0, and a liberal flow accepts it before the record: last_end stays 0.
  last = TcpLast{};
  set_last(last, event, 0);
  state = static_cast<TcpState>(next);
  return TcpInvalid::None;
}

// nf_conntrack_tcp_packet() for a flow that exists.
TcpVerdict tcp_track(TcpState& state, TcpWindow& w, TcpLast& last, unsigned dir, const TcpSegment& seg,
                     const TcpSettings& settings, TcpInvalid& why) {
  why = TcpInvalid::None;
  dir &= 1;
  if (!valid_flags(seg.flags)) {  // tcp_error()
    why = TcpInvalid::BadFlags;
    return TcpVerdict::Invalid;
  }
  // Linux deleted a flow whose RST came before any reply: the segment finds nothing.
  const bool seen_reply = w.flags[1] & kTcpFlagSeen;
  const bool assured = tcp_assured(w);
  if (state == TcpState::None || state >= TcpState::Count || (state == TcpState::Close && !seen_reply)) {
    return TcpVerdict::Reopen;
  }

  const Event event = event_of(seg.flags);
  TcpState from = state;  // the old state as the transition sees it (a resync rewrites it)
  uint8_t next = kTransitions[dir][event][static_cast<uint8_t>(state)];
  bool check_window = true;

  switch (next) {
    case sSS:
      if (state < TcpState::TimeWait) break;  // a retransmitted SYN
      // RFC 1122 4.2.2.13: a SYN may reopen a connection in TIME_WAIT; and an aborted
      // connection is replaced when its RST came from this SYN's side (the client that
      // reset starts again). A RST from the other side leaves the SYN ignored: the old
      // connection's segments are still judged in CLOSE.
      if (((w.flags[0] | w.flags[1]) & kTcpFlagCloseInit) ||
          (last.event() == TcpEvent::Rst && last.dir() == dir)) {
        return TcpVerdict::Reopen;
      }
      [[fallthrough]];
    case sIG:
      if (event == kEvSynAck && last.event() == TcpEvent::Syn && last.dir() != dir &&
          matches_last_end(last, state, seg.ack)) {
        // This SYN/ACK answers the SYN we ignored: the endpoints are in sync and we are
        // not. Rebuild the originator's side from the annotated SYN (its end is the ack
        // that matched; its window, last_win, is not kept: take the largest a SYN has)
        // and forget the responder's (nf_ct_tcp_state_reset()), then judge as in SYN_SENT.
        const uint8_t wscale = last_detail(last);
        w.end[0] = w.maxend[0] = seg.ack;
        w.maxwin[0] = kMaxSynWindow;
        w.scale[0] = wscale == kLastNoWindowScale ? 0 : wscale;
        w.flags[0] = static_cast<uint8_t>((w.flags[0] & kFlagsConntrackWide) |
                                          (wscale != kLastNoWindowScale ? kTcpFlagWindowScale : 0) |
                                          ((last.end_mark & kLastSynSackPerm) ? kTcpFlagSackPerm : 0));
        last.end_mark &= static_cast<uint8_t>(~kLastSynChallengeAck);
        w.end[1] = w.maxend[1] = w.maxwin[1] = 0;
        w.scale[1] = 0;
        w.flags[1] &= kTcpFlagLiberal | kFlagsConntrackWide;
        from = TcpState::SynSent;
        next = sSR;
        break;
      }
      // Ignored: our entry may be out of sync, so let through what may be the real
      // connection's packets; the endpoint answers a bad one with a RST we judge then.
      record_ignored(last, w, state, event, dir, seg);
      w.flags[dir] |= kTcpFlagSeen;
      return TcpVerdict::Accept;
    case sIV:
      why = TcpInvalid::BadTransition;
      return TcpVerdict::Invalid;
    case sTW:
      // RFC 5961 challenge ACK to a SYN ignored in LAST_ACK: it does not ack the last FIN.
      if (state == TcpState::LastAck && event == kEvAck && last.dir() != dir && last.event() == TcpEvent::Syn &&
          (last.end_mark & kLastSynChallengeAck)) {
        last.end_mark &= static_cast<uint8_t>(~kLastSynChallengeAck);
        w.flags[dir] |= kTcpFlagSeen;
        return TcpVerdict::Accept;
      }
      break;
    case sS2:
      w.flags[0] |= kTcpFlagSimultaneousOpen;  // before the window check, as Linux
      break;
    case sSR:
      // Simultaneous open: the reply's ACK completes it too.
      if (dir == 1 && event == kEvAck && (w.flags[0] & kTcpFlagSimultaneousOpen)) next = sES;
      break;
    case sCL: {
      if (event != kEvRst) break;
      if (closing(state)) {  // the tuple may already be reused: no checks
        check_window = false;
        break;
      }
      const unsigned peer = dir ^ 1;
      const bool established = state == TcpState::Established && assured;  // nf_conntrack_tcp_established()
      if ((w.flags[peer] & kTcpFlagMaxAckSet) && last.event() != TcpEvent::Syn) {
        // RFC 5961 3.2 against the peer's highest ACK (td_maxack). We know it exactly when
        // the peer has acknowledged all this side sent (it is then our end); otherwise
        // only that it is below our end.
        const bool maxack_known = !(w.flags[dir] & kTcpFlagDataUnacked);
        if (seg.seq == 0 && !established) break;
        if (maxack_known && before(seg.seq, w.end[dir])) {
          why = TcpInvalid::RstOutOfWindow;
          return TcpVerdict::Invalid;
        }
        if (!established || (maxack_known && seg.seq == w.end[dir])) break;
        // A RST ending a train: this side's last segment was an ACK ending where it starts.
        if (last.event() == TcpEvent::Ack && last.dir() == dir && matches_last_end(last, state, seg.seq)) break;
        next = static_cast<uint8_t>(state);  // in window, not exact: keep the flow for the challenge ACK
      }
      if (((seen_reply && last.event() == TcpEvent::Syn) || (!assured && last.event() == TcpEvent::Ack)) &&
          matches_last_end(last, state, seg.ack)) {
        check_window = false;  // RST answering the SYN or ACK we let through unjudged
        break;
      }
      if (state == TcpState::SynSent && last.event() == TcpEvent::Ack && last.dir() == 1 &&
          matches_last_ack(last, seg.seq)) {
        check_window = false;  // RST answering the challenge ACK we let through
      }
      break;
    }
    default:
      break;
  }

  if (check_window) {
    switch (in_window(state, w, last, event, dir, seg, settings)) {
      case WindowResult::Accept:
        break;
      case WindowResult::Ignore:
        w.flags[dir] |= kTcpFlagSeen;
        return TcpVerdict::Accept;
      case WindowResult::Invalid:
        note_invalid(last, assured, event, dir);
        why = (seg.flags & kTcpRst) ? TcpInvalid::RstOutOfWindow : TcpInvalid::OutOfWindow;
        return TcpVerdict::Invalid;
    }
  }

  set_last(last, event, dir);  // "From now on we have got in-window packets"
  state = static_cast<TcpState>(next);
  if (from != state && state == TcpState::FinWait) w.flags[dir] |= kTcpFlagCloseInit;
  if (!seen_reply && (seg.flags & kTcpRst)) {
    // Only a RST came back, or the opener gave up: Linux deletes the flow (nf_ct_kill).
    // Close without a seen reply marks it dead, and the next segment reopens.
    state = TcpState::Close;
    return TcpVerdict::Accept;
  }
  if (seen_reply && !assured && (from == TcpState::SynRecv || from == TcpState::Established) &&
      state == TcpState::Established) {
    w.flags[1] |= kTcpFlagAssured;
  }
  w.flags[dir] |= kTcpFlagSeen;
  return TcpVerdict::Accept;
}

// The overloads without history: a scratch TcpLast, which knows no last segment.
TcpInvalid tcp_new(TcpState& state, TcpWindow& w, const TcpSegment& seg, const TcpSettings& settings) {
  TcpLast scratch{};
  return tcp_new(state, w, scratch, seg, settings);
}

TcpVerdict tcp_track(TcpState& state, TcpWindow& w, unsigned dir, const TcpSegment& seg,
                     const TcpSettings& settings, TcpInvalid& why) {
  TcpLast scratch{};
  // As these callers always had it: any SYN from the originator reopens a RST-closed flow.
  if (state == TcpState::Close) set_last(scratch, kEvRst, dir & 1);
  return tcp_track(state, w, scratch, dir, seg, settings, why);
}

TcpVerdict tcp_track_one_way(TcpState& state, const TcpSegment& seg) {
  const uint8_t f = seg.flags;
  if (f & kTcpRst) {
    state = TcpState::Close;
    return TcpVerdict::Accept;
  }
  if ((f & (kTcpSyn | kTcpAck)) == kTcpSyn) {
    // A new connection on a port whose last one has ended (or is ending): the caller
    // plans it afresh, as a SYN reopening TIME_WAIT does.
    if (state == TcpState::TimeWait || state == TcpState::Close || state == TcpState::FinWait)
      return TcpVerdict::Reopen;
    if (state == TcpState::None) state = TcpState::SynSent;
    return TcpVerdict::Accept;  // a retransmitted SYN
  }
  if (f & kTcpFin) {
    state = TcpState::TimeWait;
    return TcpVerdict::Accept;
  }
  if (state == TcpState::None || state == TcpState::SynSent || state == TcpState::SynRecv) state = TcpState::Established;
  return TcpVerdict::Accept;
}

}  // namespace sluice::flow
