// IP-in-IP encapsulation (RFC 2003; IPv6-in-IPv6, RFC 2473) for the load balancer's
// direct-server-return mode: the client's packet goes to the backend whole, inside an
// outer header from Sluice's tunnel source to the backend; the backend, holding the VIP
// on a loopback, decapsulates it and answers the client itself.
#pragma once

#include <cstdint>
#include <cstring>

#include <rte_ip.h>
#include <rte_mbuf.h>

#include "net/headers.h"

namespace sluice::lb {

inline constexpr uint8_t kIpProtoIpip = 4;
inline constexpr uint8_t kIpProtoIpv6 = 41;  // IPv6 encapsulated in IPv6 (next header)
inline constexpr uint16_t kOuter6 = sizeof(net::Ipv6Header);
inline constexpr uint8_t kTunnelTtl = 64;

// Prepends the outer header to the IPv4 packet at `l3_offset` of `m` (its link header,
// VLAN tags included, moves to the new front). `src`/`dst` network order; `id` the outer
// datagram's identification. The outer header has DF clear (RFC 2003 3.1 allows it): a
// packet that outgrows the path's MTU by the 20 bytes is fragmented by the route stage
// and put back together by the backend, never refused to a client that cannot be told
// (an ICMP error about the outer packet would reach Sluice, not the client). TOS copied
// from the inner header, TTL 64. False, `m` unchanged, when its headroom is too small or
// the inner header is not a whole IPv4 header in the first segment.
inline bool ipip_encapsulate(rte_mbuf* m, uint16_t l3_offset, uint32_t src, uint32_t dst, uint16_t id) {
  constexpr uint16_t kOuter = sizeof(net::Ipv4Header);
  if (rte_pktmbuf_headroom(m) < kOuter || uint32_t(l3_offset) + kOuter > rte_pktmbuf_data_len(m)) return false;
  const auto* inner = rte_pktmbuf_mtod_offset(m, const net::Ipv4Header*, l3_offset);
  const uint8_t tos = inner->tos;
  const uint16_t inner_len = inner->total_length.value();
  if (inner->version() != 4 || uint32_t(inner_len) + kOuter > 0xffff) return false;
  uint8_t* old_front = rte_pktmbuf_mtod(m, uint8_t*);
  auto* front = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, kOuter));
  std::memmove(front, old_front, l3_offset);
  auto* outer = reinterpret_cast<net::Ipv4Header*>(front + l3_offset);
  outer->version_ihl = 0x45;
  outer->tos = tos;
  outer->total_length.set(static_cast<uint16_t>(inner_len + kOuter));
  outer->id.set(id);
  outer->fragment.set(0);
  outer->ttl = kTunnelTtl;
  outer->protocol = kIpProtoIpip;
  outer->checksum.raw = 0;
  outer->src.raw = src;
  outer->dst.raw = dst;
  outer->checksum.raw = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(outer));
  return true;
}

// Prepends an outer IPv6 header (next header 41, hop limit 64, traffic class copied,
// `flow_label` (20 bits) so that routers hashing on it keep a connection on one path,
// RFC 6438) to the IPv6 packet at `l3_offset`; `src`/`dst` 16 bytes. No fragmentation:
// a packet the 40 bytes take over the egress MTU is the route stage's (ip6ip6_strip,
// then Packet Too Big to the client, RFC 2473 7.1). False, `m` unchanged, when the
// headroom is too small or the inner header is not a whole IPv6 header.
inline bool ip6ip6_encapsulate(rte_mbuf* m, uint16_t l3_offset, const uint8_t* src, const uint8_t* dst,
                               uint32_t flow_label) {
  if (rte_pktmbuf_headroom(m) < kOuter6 || uint32_t(l3_offset) + kOuter6 > rte_pktmbuf_data_len(m)) return false;
  const auto* inner = rte_pktmbuf_mtod_offset(m, const net::Ipv6Header*, l3_offset);
  const uint32_t inner_word = inner->version_class_flow.value();
  const uint32_t inner_len = kOuter6 + uint32_t(inner->payload_length.value());
  if (inner->version() != 6 || inner_len > 0xffff) return false;
  uint8_t* old_front = rte_pktmbuf_mtod(m, uint8_t*);
  auto* front = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, kOuter6));
  std::memmove(front, old_front, l3_offset);
  auto* outer = reinterpret_cast<net::Ipv6Header*>(front + l3_offset);
  outer->version_class_flow.set(6u << 28 | (inner_word & 0x0ff00000u) | (flow_label & 0xfffffu));
  outer->payload_length.set(static_cast<uint16_t>(inner_len));
  outer->next_header = kIpProtoIpv6;
  outer->hop_limit = kTunnelTtl;
  std::memcpy(outer->src, src, 16);
  std::memcpy(outer->dst, dst, 16);
  return true;
}

// Takes the outer IPv6 header off again (the link header moves up to the inner packet):
// the packet as the client sent it, for an ICMPv6 error about it. False when `m` does
// not hold an outer header and an inner IPv6 header at `l3_offset`.
inline bool ip6ip6_strip(rte_mbuf* m, uint16_t l3_offset) {
  if (uint32_t(l3_offset) + 2 * kOuter6 > rte_pktmbuf_data_len(m)) return false;
  const auto* outer = rte_pktmbuf_mtod_offset(m, const net::Ipv6Header*, l3_offset);
  if (outer->version() != 6 || outer->next_header != kIpProtoIpv6) return false;
  uint8_t* front = rte_pktmbuf_mtod(m, uint8_t*);
  std::memmove(front + kOuter6, front, l3_offset);
  rte_pktmbuf_adj(m, kOuter6);
  return true;
}

}  // namespace sluice::lb
