// Flow keys and entries. A key is the normalised 5-tuple plus a zone: the (address,
// port) pair that compares lower sits in slot 0, so a packet and its reply build the
// same key. The entry remembers which slot the connection's opener holds.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

#include <rte_hash_crc.h>

#include "flow/tcp_tracker.h"

namespace sluice::flow {

struct FlowKey4 {
  uint32_t addr[2];  // network order
  uint16_t port[2];  // network order; ICMP query: identifier on the querier's side, the code on the other
  uint8_t proto;
  uint8_t pad;
  uint16_t zone;

  friend bool operator==(const FlowKey4& a, const FlowKey4& b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }
  uint32_t hash() const {
    uint64_t w[2];
    std::memcpy(w, this, sizeof(w));
    return rte_hash_crc_8byte(w[1], rte_hash_crc_8byte(w[0], 0x9e3779b9));
  }
};
static_assert(sizeof(FlowKey4) == 16);

struct FlowKey6 {
  uint8_t addr[2][16];
  uint16_t port[2];
  uint8_t proto;
  uint8_t pad;
  uint16_t zone;

  friend bool operator==(const FlowKey6& a, const FlowKey6& b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }
  uint32_t hash() const {
    uint64_t w[5];
    std::memcpy(w, this, sizeof(w));
    uint32_t h = 0x9e3779b9;
    for (uint64_t word : w) h = rte_hash_crc_8byte(word, h);
    return h;
  }
};
static_assert(sizeof(FlowKey6) == 40);

// Fills `key` from one packet's tuple; returns the slot (0 or 1) the packet's sender
// takes. Any total order works as long as both directions use the same one.
inline unsigned make_key4(FlowKey4& key, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint8_t proto,
                          uint16_t zone) {
  // (address, port) as one number each: one compare, and moves the compiler makes
  // conditional rather than branches.
  const uint64_t a = uint64_t(src) << 16 | sport, b = uint64_t(dst) << 16 | dport;
  const bool sender_low = a <= b;
  const uint64_t low = sender_low ? a : b, high = sender_low ? b : a;
  // Written as the two 8-byte words hash() reads back, so the loads forward from these
  // stores instead of stalling on four narrower ones (little-endian layout of the key).
  static_assert(std::endian::native == std::endian::little);
  const uint64_t w0 = (low >> 16) | (high >> 16) << 32;
  const uint64_t w1 = (low & 0xffff) | (high & 0xffff) << 16 | uint64_t(proto) << 32 | uint64_t(zone) << 48;
  std::memcpy(&key, &w0, 8);
  std::memcpy(reinterpret_cast<uint8_t*>(&key) + 8, &w1, 8);
  return sender_low ? 0 : 1;
}

inline unsigned make_key6(FlowKey6& key, const uint8_t* src, const uint8_t* dst, uint16_t sport, uint16_t dport,
                          uint8_t proto, uint16_t zone) {
  const int order = std::memcmp(src, dst, 16);
  const bool sender_low = order < 0 || (order == 0 && sport <= dport);
  std::memcpy(key.addr[0], sender_low ? src : dst, 16);
  std::memcpy(key.addr[1], sender_low ? dst : src, 16);
  key.port[0] = sender_low ? sport : dport;
  key.port[1] = sender_low ? dport : sport;
  key.proto = proto;
  key.pad = 0;
  key.zone = zone;
  return sender_low ? 0 : 1;
}

// Entry flags.
inline constexpr uint8_t kFlowInUse = 0x01;
inline constexpr uint8_t kFlowOpenerSlot1 = 0x02;  // the connection's opener holds key slot 1
inline constexpr uint8_t kFlowSeenReply = 0x04;
inline constexpr uint8_t kFlowAssured = 0x08;      // nf_conntrack's IPS_ASSURED
inline constexpr uint8_t kFlowProtected = 0x10;    // may not be evicted (mirrors the bucket hint)
// Only the opener's packets pass here (a load balancer's direct-server-return connection:
// the backend answers the client itself): TCP is tracked by tcp_track_one_way.
inline constexpr uint8_t kFlowOneWay = 0x20;
// An IPv6 load-balanced (ipip) connection: the entry's `lb` holds its backend (IPv6
// entries only; an IPv4 one is a NAT pair instead).
inline constexpr uint8_t kFlowLb = 0x40;

// States of non-TCP flows (TCP flows hold a TcpState).
enum class GenericState : uint8_t { Unreplied = 1, Replied = 2 };

// The fields every entry has after its key; kept identical for both families.
struct FlowBody {
  uint32_t timer_next;  // timer wheel list, or the free list while unused
  uint32_t timer_prev;
  uint32_t expires;     // ms (the table's clock), wraps: compared as a signed difference
  uint16_t timer_slot;  // the wheel slot it is linked in
  uint8_t state;        // TcpState for TCP, GenericState otherwise
  uint8_t flags;        // kFlow*
  TcpWindow tcp;        // TCP only
  uint16_t rule;        // firewall rule (1-based) that admitted it; 0: a policy or no firewall
  TcpLast tcp_last;     // TCP only: what nf_conntrack remembers of the last segment
};
static_assert(sizeof(FlowBody) == 48);

// Flows other than TCP keep the time they were made (ms) where TCP keeps its windows.
inline uint32_t& created_ms(FlowBody& body) { return body.tcp.end[0]; }
inline uint32_t created_ms(const FlowBody& body) { return body.tcp.end[0]; }

// One cache line for IPv4.
struct alignas(64) FlowEntry4 {
  using Key = FlowKey4;
  FlowKey4 key;
  FlowBody body;
};
static_assert(sizeof(FlowEntry4) == 64);

// What an IPv6 entry of a load-balanced connection (kFlowLb) keeps of its backend, in
// the 40 bytes its two lines leave after the key and body: IPv6 services are ipip only
// (nothing rewritten, no reply key), so the backend and the tunnel are all it needs.
struct LbExt6 {
  uint8_t backend[16];     // the outer header's destination
  uint8_t tunnel_src[16];  // its source: Sluice's address toward the backend
  uint16_t service;        // the service's slot (lib/lb); kLbUnopened until the lb stage opens it
  uint16_t backend_slot;   // the backend's slot, for its counters
  uint32_t flow_label;     // the outer header's (a hash of the connection, RFC 6438)
};
static_assert(sizeof(LbExt6) == 40);
inline constexpr uint16_t kLbUnopened = 0xffff;

struct alignas(64) FlowEntry6 {
  using Key = FlowKey6;
  FlowKey6 key;
  FlowBody body;
  LbExt6 lb;  // kFlowLb only
};
static_assert(sizeof(FlowEntry6) == 128);

// The direction of a packet within its flow: 0 sent by the opener, 1 by the responder.
inline unsigned direction(const FlowBody& body, unsigned sender_slot) {
  return sender_slot ^ ((body.flags & kFlowOpenerSlot1) ? 1u : 0u);
}

}  // namespace sluice::flow
