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
// 0x80 hold what nf_conntrack keeps elsewhere in the conntrack (ct->status, last_index).
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
inline constexpr uint8_t kTcpFlagIgnoredSyn = 0x80;   // flags[0]: the last segment tracked was a SYN the
                                                      // state machine ignored (Linux last_index == SYN)

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
  Reopen,   // a SYN on a closed/TIME_WAIT flow: the caller deletes the entry and treats
            // the packet as a new connection (nf_conntrack's "reopened" case). Also any
            // segment of a flow Linux has already deleted: one whose first RST came before
            // any reply was seen (nf_ct_kill in nf_conntrack_tcp_packet), so Linux looks the
            // next segment up as new.
};

// Whether `seg` may open a flow, and if so initialises `state`/`w` for the original
// direction (dir 0 is the sender of `seg`). Returns TcpInvalid::None on success. This
// also accounts for `seg` itself (a SYN gives SynSent, a picked-up ACK Established):
// do not pass the opening segment to tcp_track as well.
TcpInvalid tcp_new(TcpState& state, TcpWindow& w, const TcpSegment& seg, const TcpSettings& settings);

// Tracks one segment of an existing flow. `dir` 0: sent by the originator, 1: by the
// responder. Updates `state` only on Accept. Accept includes the segments Linux ignores
// (NF_ACCEPT without a state change: a SYN in ESTABLISHED, a retransmitted SYN/ACK, an
// ACK below the window): they are forwarded, `state` kept. `w` changes as Linux's does:
// on Accept, and also where Linux records before it judges (the first segment from a
// side initialises that side's window even when it then fails).
// RSTs, after RFC 5961 3.2: a RST whose seq is exactly the next expected one closes
// the flow (state Close); one elsewhere in the window is forwarded (the endpoint
// answers with a challenge ACK) without closing; outside the window it is invalid.
TcpVerdict tcp_track(TcpState& state, TcpWindow& w, unsigned dir, const TcpSegment& seg,
                     const TcpSettings& settings, TcpInvalid& why);

// Whether an assured TCP flow in `state` is shielded from early drop. As Linux's
// tcp_can_early_drop(): closing connections (FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT,
// CLOSE) may make room for new flows even once assured; established ones never do.
inline bool tcp_protected(TcpState state) { return state == TcpState::Established; }

}  // namespace sluice::flow
