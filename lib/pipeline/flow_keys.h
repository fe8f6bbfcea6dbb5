// The flow key of a parsed packet, shared by the conntrack stage (to find its flow) and
// the steer stage (to send it to the worker that owns that flow): the normalised
// 5-tuple plus the conntrack zone; for an ICMP error, the key of the packet it quotes;
// for an ICMP query or answer, the identifier in place of the ports.
#pragma once

#include <cstdint>
#include <cstring>

#include <rte_byteorder.h>
#include <rte_mbuf.h>

#include "flow/flow_key.h"
#include "pipeline/packet_meta.h"
#include "stats/drop.h"

namespace sluice::pipeline {

enum class KeyKind : uint8_t {
  Untracked,      // not IP, link-scope ICMPv6 (ND, MLD), or IPv6 without an IPv6 table
  Ipv4,           // key4 filled
  Ipv6,           // key6 filled
  LaterFragment,  // a non-first fragment: no ports, no key
};

struct PacketKey {
  KeyKind kind = KeyKind::Untracked;
  uint8_t sender_slot = 0;  // the key slot the packet's sender holds
  bool related = false;     // an ICMP error: the key is the quoted packet's
  bool invalid = false;     // IP, but no key can be made (reason says why); kind says the family
  Drop reason = Drop::IcmpNoFlow;
  uint32_t hash = 0;        // key hash (valid when kind is Ipv4/Ipv6 and !invalid)
};

// `track_ipv6` false: IPv6 packets are Untracked (no IPv6 table).
PacketKey flow_key_of_any(const rte_mbuf* m, const PacketMeta& pm, uint16_t zone, bool track_ipv6,
                          flow::FlowKey4& key4, flow::FlowKey6& key6);

// The key of an IPv4 TCP or UDP packet (nearly every packet), its sender's slot and its
// hash; false for any other packet (flow_key_of_any's). Results in scalars, not a
// PacketKey: a struct built a field at a time and read back whole stalls the hot loop
// on store forwarding.
inline bool ipv4_l4_key(const rte_mbuf* m, const PacketMeta& pm, uint16_t zone, flow::FlowKey4& key4,
                        uint8_t& sender_slot, uint32_t& hash) {
  if (pm.l3 != L3::Ipv4 || !pm.l4_offset || (pm.l4_proto != 6 && pm.l4_proto != 17)) [[unlikely]]
    return false;
  const uint8_t* l3 = rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l3_offset);
  const uint8_t* l4 = rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l4_offset);
  uint32_t src, dst;
  uint16_t sport, dport;
  std::memcpy(&src, l3 + 12, 4);
  std::memcpy(&dst, l3 + 16, 4);
  std::memcpy(&sport, l4, 2);
  std::memcpy(&dport, l4 + 2, 2);
  sender_slot = static_cast<uint8_t>(flow::make_key4(key4, src, dst, sport, dport, pm.l4_proto, zone));
  hash = key4.hash();
  return true;
}

// The same, with IPv4 TCP and UDP inline.
inline PacketKey flow_key_of(const rte_mbuf* m, const PacketMeta& pm, uint16_t zone, bool track_ipv6,
                             flow::FlowKey4& key4, flow::FlowKey6& key6) {
  PacketKey k;
  if (ipv4_l4_key(m, pm, zone, key4, k.sender_slot, k.hash)) [[likely]] {
    k.kind = KeyKind::Ipv4;
    return k;
  }
  return flow_key_of_any(m, pm, zone, track_ipv6, key4, key6);
}

// ICMP types: queries that open a flow and their answers, and errors that quote a
// packet (nf_conntrack_proto_icmp.c's valid_new / invmap, icmpv6's likewise).
inline bool icmp4_query(uint8_t type) { return type == 8 || type == 13 || type == 15 || type == 17; }
inline bool icmp4_answer(uint8_t type) { return type == 0 || type == 14 || type == 16 || type == 18; }
inline bool icmp4_error(uint8_t type) { return type == 3 || type == 4 || type == 5 || type == 11 || type == 12; }
inline bool icmp6_error(uint8_t type) { return type >= 1 && type <= 4; }
// ICMPv6 echo and node information (RFC 4620), nf_conntrack_proto_icmpv6's valid_new.
inline bool icmp6_query(uint8_t type) { return type == 128 || type == 139; }
inline bool icmp6_answer(uint8_t type) { return type == 129 || type == 140; }
// MLD, router/neighbour discovery, redirects and the like: link-scope, never tracked.
inline bool icmp6_link_scope(uint8_t type) {
  return (type >= 130 && type <= 137) || type == 143 || type == 148 || type == 149;
}

// Which of `workers` owns the flow with this key hash (bits independent of the
// flow table's bucket bits).
inline unsigned flow_owner(uint32_t hash, unsigned workers) {
  return static_cast<unsigned>((uint64_t(hash * 0x9e3779b1u) * workers) >> 32);
}

}  // namespace sluice::pipeline
