// TCP connection tracking for a middlebox: the state machine and the sequence/window
// checks of Linux nf_conntrack (nf_conntrack_proto_tcp.c, after Guido van Rooij's
// "Real Stateful TCP Packet Filtering in IP Filter"), with RFC 5961's view of RSTs.
// Pure functions over the few bytes a flow entry keeps: no DPDK, no clock, no I/O,
// so the unit tests drive them with crafted segment sequences.
#pragma once

#include <cstdint>
#include <string_view>

namespace sluice::flow {

// nf_conntrack's TCP states (same order, sNO..sS2). The numbering is stored in flow
// entries and indexes the timeout table.
enum class TcpState : uint8_t {
  None = 0,     // no state yet (only before tcp_new succeeds)
  SynSent,      // SYN seen from the originator
  SynRecv,      // SYN/ACK seen in reply
  Established,  // the handshake completed
  FinWait,      // FIN seen in one direction
  CloseWait,    // ACK for that FIN seen
  LastAck,      // FIN seen in the other direction too
  TimeWait,     // last ACK seen
  Close,        // RST seen, or the close completed
  SynSent2,     // simultaneous open: SYN seen in both directions
  Count
};

std::string_view tcp_state_name(TcpState state);  // "syn_sent", "established", ...

inline constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08, kTcpAck = 0x10,
                         kTcpUrg = 0x20, kTcpEce = 0x40, kTcpCwr = 0x80;

// Per-direction window tracking (nf_conntrack's ip_ct_tcp_state), index 0 the
// original direction (the flow's opener), 1 the reply. 28 bytes, kept in the entry.
struct TcpWindow {
  uint32_t end[2];     // highest seq + len sent
  uint32_t maxend[2];  // highest ack + window (scaled) the peer has allowed
  uint32_t maxwin[2];  // largest window (scaled) advertised
  uint8_t scale[2];    // window scale shift (RFC 7323), 0 when not negotiated
  uint8_t flags[2];    // kTcpFlag* below
};
static_assert(sizeof(TcpWindow) == 28);

// TcpWindow::flags bits. 0x01-0x20 are nf_conntrack's IP_CT_TCP_FLAG_* bits; 0x40 and
// 0x80 hold what nf_conntrack keeps elsewhere in the conntrack (ct->status, last_flags).
inline constexpr uint8_t kTcpFlagWindowScale = 0x01;  // sent the window scale option
inline constexpr uint8_t kTcpFlagSackPerm = 0x02;     // sent SACK permitted
inline constexpr uint8_t kTcpFlagCloseInit = 0x04;    // this side sent the first FIN
inline constexpr uint8_t kTcpFlagLiberal = 0x08;      // picked up mid-stream: window failures accepted
                                                      // (never cleared, as Linux's BE_LIBERAL)
inline constexpr uint8_t kTcpFlagDataUnacked = 0x10;  // has data the peer has not acknowledged
inline constexpr uint8_t kTcpFlagMaxAckSet = 0x20;    // this side has sent an ACK that passed the window
                                                      // checks (Linux keeps td_maxack too; we have no room)
inline constexpr uint8_t kTcpFlagSeen = 0x40;         // a segment from this side was accepted;
                                                      // flags[1]: nf_conntrack's IPS_SEEN_REPLY
inline constexpr uint8_t kTcpFlagSimultaneousOpen = 0x80;  // flags[0] only: IP_CT_TCP_SIMULTANEOUS_OPEN
                                                           // (Linux's last_flags): went through SYN_SENT2
inline constexpr uint8_t kTcpFlagAssured = 0x80;      // flags[1] only: nf_conntrack's IPS_ASSURED, as
                                                      // nf_conntrack_tcp_packet() sets it (see tcp_assured)

// What Linux's tcp_packet() remembers of the last segment it tracked (ip_ct_tcp's last_index,
// last_dir, last_end, last_ack, last_flags, last_wscale), in the 2 bytes a flow entry has for it.
// Linux keeps 19 bytes (with last_seq, last_win, retrans); what is exact and what is a fingerprint:
//   dir_event bits 0-2  last_index, exactly (TcpEvent; None after tcp_new, as Linux's TCP_NONE_SET)
//   dir_event bit 3     last_dir, exactly
//   dir_event bits 4-7  after an ignored SYN: its window scale (15: no option), i.e. last_wscale and
//                       last_flags' WINDOW_SCALE; after an ACK the window checks passed: bits 8-11 of
//                       last_end; after an ignored reply ACK in SYN_SENT: bits 0-3 of last_ack;
//                       after other segments left as they were (Linux leaves those fields too)
//   end_mark bits 0-7   bits 0-7 of last_end; after an ignored SYN only bits 0-5, with bit 6 its SACK
//                       permitted option (last_flags' SACK_PERM) and bit 7 IP_CT_EXP_CHALLENGE_ACK
// So Linux's equality tests against last_end and last_ack compare 6 (last segment a SYN), 8 (an
// ignored ACK, SYN/ACK) or 12 bits (an ACK in the window): a segment whose number differs from Linux's
// only above those bits is taken as matching, with odds 1/64, 1/256, 1/4096 for an arbitrary number.
// last_seq, last_win and retrans are not kept (see tcp_track). The tracker owns the encoding.
enum class TcpEvent : uint8_t { None = 0, Syn, SynAck, Fin, Ack, Rst };

struct TcpLast {  // zero (TcpLast{}) is "no last segment"; trivial, so entries may be memset
  uint8_t dir_event;
  uint8_t end_mark;

  TcpEvent event() const { return static_cast<TcpEvent>(dir_event & 0x07); }
  unsigned dir() const { return (dir_event >> 3) & 1u; }
};
static_assert(sizeof(TcpLast) == 2);

// nf_conntrack's IPS_ASSURED as the tracker sees it: a valid segment moved a replied flow from
// SYN_RECV or ESTABLISHED to ESTABLISHED.
inline bool tcp_assured(const TcpWindow& w) { return (w.flags[1] & kTcpFlagAssured) != 0; }

// What the tracker needs from one segment, read from the wire by tcp_segment().
struct TcpSegment {
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint16_t window = 0;      // as on the wire, unscaled
  uint8_t flags = 0;        // kTcp* bits
  uint8_t wscale = 0xff;    // window scale option value, 0xff when absent (SYNs only)
  bool sack_perm = false;   // SACK permitted option present (SYNs only)
  uint32_t payload = 0;     // data bytes after the TCP header
  uint32_t sack = 0;        // highest right edge of the first SACK option's blocks (at least ack)
  bool has_sack = false;    // `sack` is valid (a SACK option with whole blocks was present)
};

// Reads a TCP header (`header_len` bytes, options included, already validated by the
// parse stage) followed by `payload` data bytes. Never reads past header_len; a
// header_len under 20 gives a segment with no flags (judged BadFlags).
TcpSegment tcp_segment(const uint8_t* tcp_header, uint32_t header_len, uint32_t payload);

struct TcpSettings {
  bool liberal = false;  // nf_conntrack_tcp_be_liberal: only the state machine, no window checks
  bool loose = true;     // nf_conntrack_tcp_loose: a non-SYN segment may open (pick up) a flow
};

// Why a segment was judged invalid (each becomes a drop reason when no rule accepts it).
enum class TcpInvalid : uint8_t {
  None = 0,
  BadFlags,        // a flag combination no TCP sends (SYN+FIN, NULL, XMAS, ...)
  NoFlow,          // cannot open a flow: not a SYN (and loose is off) or a SYN+ACK/RST/FIN
  BadTransition,   // not valid in this state (e.g. SYN/ACK from the originator)
  OutOfWindow,     // sequence or acknowledgement outside the window
  RstOutOfWindow,  // RST whose sequence is outside the window
};

std::string_view tcp_invalid_name(TcpInvalid why);

enum class TcpVerdict : uint8_t {
  Accept,   // forward; state and windows updated
  Invalid,  // do not forward as part of the flow (`why` says what)
  Reopen,   // a SYN that replaces the flow (nf_conntrack's "reopened" case, nf_ct_kill and
            // NF_REPEAT): in TIME_WAIT, or in CLOSE when a side had sent a FIN or the last
            // segment tracked was a RST from this SYN's sender. The caller deletes the entry
            // and treats the packet as a new connection. Also any segment of a flow Linux
            // has already deleted: one whose first RST came before any reply was seen
            // (nf_ct_kill in nf_conntrack_tcp_packet), so Linux looks the next segment up as new.
};

// Whether `seg` may open a flow, and if so initialises `state`/`w`/`last` for the original
// direction (dir 0 is the sender of `seg`). Returns TcpInvalid::None on success. This
// also accounts for `seg` itself (a SYN gives SynSent, a picked-up ACK Established):
// do not pass the opening segment to tcp_track as well.
TcpInvalid tcp_new(TcpState& state, TcpWindow& w, TcpLast& last, const TcpSegment& seg,
                   const TcpSettings& settings);

// Tracks one segment of an existing flow: nf_conntrack_tcp_packet() and tcp_in_window().
// `dir` 0: sent by the originator, 1: by the responder. Updates `state` only on Accept.
// Accept includes the segments Linux ignores (NF_ACCEPT without a state change: a SYN in
// ESTABLISHED or in a CLOSE it does not reopen, a retransmitted SYN/ACK, an ACK below the
// window): they are forwarded, `state` kept. `w` and `last` change as Linux's do: on
// Accept, and also where Linux records before it judges (the first segment from a side
// initialises that side's window even when it then fails; an out-of-window FIN or RST of
// an assured flow becomes the last segment, as in nf_tcp_handle_invalid()).
// RSTs, after RFC 5961 3.2: a RST whose seq is exactly the peer's highest ACK, or that
// ends a data train (seq = the end of the sender's last ACK segment), closes the flow
// (state Close); one elsewhere in the window is forwarded (the endpoint answers with a
// challenge ACK) without closing; before the peer's highest ACK it is invalid.
//
// Where this is not Linux, for want of room in the entry:
// - `last`'s fingerprints (see TcpLast): equality with last_end/last_ack on 6-12 low bits.
//   Used to resync on the SYN/ACK answering an ignored SYN, for a RST answering an
//   ignored SYN or ACK (no window check), a RST ending a data train (closes), a RST
//   answering a challenge ACK in SYN_SENT (no window check).
// - On that resync the originator's window is rebuilt with the largest window a SYN
//   can carry (65535) instead of the ignored SYN's (last_win): the originator's
//   overshoot and old-retransmission allowances are looser until it next advertises.
// - td_maxack (the peer's highest ACK, for the RST checks) is known only when the peer
//   has acknowledged all the RST's sender sent (it is then that side's end); with data
//   unacknowledged a RST is never found below it, and one at exactly it is taken as
//   in-window-not-exact unless it ends a data train. A RST does not move its sender's end.
// - Timeouts are the caller's: Linux's RETRANS timeout (tcp_max_retrans identical ACKs,
//   or a zero last_win) and nf_tcp_handle_invalid()'s shortening to UNACK are not
//   applied, and `last` keeps neither last_seq, last_win nor retrans for them.
TcpVerdict tcp_track(TcpState& state, TcpWindow& w, TcpLast& last, unsigned dir, const TcpSegment& seg,
                     const TcpSettings& settings, TcpInvalid& why);

// The same without the history (a scratch TcpLast each call), for callers whose entries
// have no TcpLast yet. A CLOSE flow is reopened by any SYN from its originator (as if
// the last segment were that side's RST); a SYN/ACK never resyncs after an ignored SYN,
// a RST is never taken as a train's end or as answering an ignored SYN or ACK, and an
// ACK in LAST_ACK is never recognised as a challenge ACK. Switch to the overloads above.
TcpInvalid tcp_new(TcpState& state, TcpWindow& w, const TcpSegment& seg, const TcpSettings& settings);
TcpVerdict tcp_track(TcpState& state, TcpWindow& w, unsigned dir, const TcpSegment& seg,
                     const TcpSettings& settings, TcpInvalid& why);

// A connection of which only the originator's segments pass here (direct server return:
// the responder answers by another path), so there are no windows to check. As IPVS's
// input-only states: a SYN opens it (SYN_SENT), any other segment makes it ESTABLISHED,
// a FIN TIME_WAIT (the close's remaining segments and then a reused port's SYN), a RST
// CLOSE; a SYN (without ACK) on a connection that has closed or sent its FIN reopens it.
// Accept or Reopen.
TcpVerdict tcp_track_one_way(TcpState& state, const TcpSegment& seg);

// Whether an assured TCP flow in `state` is shielded from early drop. As Linux's
// tcp_can_early_drop(): closing connections (FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT,
// CLOSE) may make room for new flows even once assured; established ones never do.
inline bool tcp_protected(TcpState state) { return state == TcpState::Established; }

}  // namespace sluice::flow
