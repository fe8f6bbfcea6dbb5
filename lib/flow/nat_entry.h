// A translated (NAT) flow: a pair of cache lines, the first an ordinary FlowEntry4 (its
// original tuple's key and the state body), the second what translation needs: the
// reply tuple's key, indexed in the table's buckets beside the original one, and both
// tuples as they are on the wire (nf_conntrack's tuplehash[ORIGINAL] and [REPLY]).
// The flow table stores and indexes pairs; lib/nat gives them their meaning.
#pragma once

#include <cstdint>

#include "flow/flow_key.h"

namespace sluice::flow {

// NatExt4::kind bits: what the pair rewrites.
inline constexpr uint8_t kNatSource = 0x01;       // the opener's source (SNAT, masquerade)
inline constexpr uint8_t kNatDestination = 0x02;  // the responder's address (DNAT, port forward)
inline constexpr uint8_t kNatEim = 0x04;          // holds a reference on an endpoint-independent mapping
inline constexpr uint8_t kNatHairpin = 0x08;      // a port forward reached from the inside, source translated too
inline constexpr uint8_t kNatInbound = 0x10;      // opened from outside through an EIM mapping (EIF)
inline constexpr uint8_t kNatLb = 0x20;           // a load-balanced connection: rule is its service's slot
// Encapsulated IP-in-IP to the backend (reply.src) from tunnel_src, never rewritten; the
// reply tuple is the one the backend would use without direct server return.
inline constexpr uint8_t kNatTunnel = 0x40;

// One direction's tuple as it appears on the wire. Addresses and "ports" in network
// order; ports as the flow key has them (TCP/UDP ports; an ICMP query's identifier on
// the querier's side and the code word on the other).
struct NatTuple4 {
  uint32_t src;
  uint32_t dst;
  uint16_t sport;
  uint16_t dport;
  friend bool operator==(const NatTuple4&, const NatTuple4&) = default;
};
static_assert(sizeof(NatTuple4) == 12);

struct NatExt4 {
  FlowKey4 reply_key;        // the reply tuple's key (normalised), indexed in the buckets
  NatTuple4 orig;            // as the opener sends it (before translation)
  NatTuple4 reply;           // as the responder sends it (what the opener's packets became, reversed)
  uint16_t rule;             // NAT rule (1-based: snat rules, then dnat rules) that made it
  uint16_t address_slot;     // usage counters of the outside address it took (lib/nat), 0xffff none
  uint8_t kind;              // kNat*
  uint8_t reply_sender_slot;  // the slot of reply_key the responder's packets hold
  uint8_t rewrites;           // what a packet of each direction has rewritten (nat_rewrite_bits)
  uint8_t pad0;
  uint16_t backend;           // kNatLb: the backend's slot (lib/lb)
  uint16_t pad1;
  uint32_t tunnel_src;        // kNatTunnel: the outer header's source (network order)
  uint8_t pad[8];
};
static_assert(sizeof(NatExt4) == 64);

struct alignas(64) NatPair4 {
  FlowEntry4 main;
  NatExt4 ext;
};
static_assert(sizeof(NatPair4) == 128);

// Whether a pair rewrites the destination / the source of a packet travelling in
// direction `dir` (0: from the opener), worked out from its tuples once, when the pair
// is made: bit dir for the destination, bit 2 + dir for the source.
inline uint8_t nat_rewrite_bits(const NatExt4& x) {
  if (x.kind & kNatTunnel) return 0;  // delivered as sent, inside an outer header
  const bool dst0 = x.orig.dst != x.reply.src || x.orig.dport != x.reply.sport;
  const bool dst1 = x.reply.dst != x.orig.src || x.reply.dport != x.orig.sport;
  const bool src0 = x.orig.src != x.reply.dst || x.orig.sport != x.reply.dport;
  const bool src1 = x.reply.src != x.orig.dst || x.reply.sport != x.orig.dport;
  return static_cast<uint8_t>(dst0 | dst1 << 1 | src0 << 2 | src1 << 3);
}
inline bool nat_rewrites_dst(const NatExt4& x, unsigned dir) { return (x.rewrites >> dir) & 1; }
inline bool nat_rewrites_src(const NatExt4& x, unsigned dir) { return (x.rewrites >> (2 + dir)) & 1; }

}  // namespace sluice::flow
