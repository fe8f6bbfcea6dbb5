#include "pipeline/flow_keys.h"

#include <cstring>

#include "net/headers.h"

namespace sluice::pipeline {

using net::IcmpHeader;
using net::Ipv4Header;
using net::Ipv6Header;

namespace {

struct Quoted {
  bool ok = false;
  uint8_t proto = 0;
  uint16_t sport = 0, dport = 0;  // network order
};

// The L4 part of the packet an ICMP error quotes, as its sender sent it.
Quoted quoted_l4(const uint8_t* l4, uint32_t available, uint8_t proto, bool v6) {
  Quoted q;
  q.proto = proto;
  if (proto == net::kIpProtoTcp || proto == net::kIpProtoUdp) {
    if (available < 4) return q;  // RFC 792 quotes 8 bytes; the ports need 4
    std::memcpy(&q.sport, l4, 2);
    std::memcpy(&q.dport, l4 + 2, 2);
  } else if (proto == (v6 ? net::kIpProtoIcmpv6 : net::kIpProtoIcmp)) {
    if (available < 8) return q;
    const uint8_t type = reinterpret_cast<const IcmpHeader*>(l4)->type;
    uint16_t id;
    std::memcpy(&id, l4 + 4, 2);
    const bool query = v6 ? type == 128 : icmp4_query(type);
    const bool answer = v6 ? type == 129 : icmp4_answer(type);
    if (!query && !answer) return q;  // an error about an error relates to nothing
    q.sport = query ? id : 0;
    q.dport = query ? 0 : id;
  }
  q.ok = true;
  return q;
}

}  // namespace

PacketKey flow_key_of(const rte_mbuf* m, const PacketMeta& pm, uint16_t zone, bool track_ipv6, flow::FlowKey4& key4,
                      flow::FlowKey6& key6) {
  PacketKey k;
  if (pm.l3 != L3::Ipv4 && pm.l3 != L3::Ipv6) return k;
  const bool v6 = pm.l3 == L3::Ipv6;
  if (v6 && !track_ipv6) return k;
  if (pm.flags & kMetaLaterFragment) {
    k.kind = KeyKind::LaterFragment;
    return k;
  }
  const KeyKind family = v6 ? KeyKind::Ipv6 : KeyKind::Ipv4;
  const uint8_t* l3 = rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l3_offset);
  const uint8_t* src = v6 ? reinterpret_cast<const Ipv6Header*>(l3)->src : l3 + 12;
  const uint8_t* dst = v6 ? reinterpret_cast<const Ipv6Header*>(l3)->dst : l3 + 16;
  uint8_t proto = pm.l4_proto;
  uint16_t sport = 0, dport = 0;
  if (pm.l4_offset) {
    const uint8_t* l4 = rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l4_offset);
    if (proto == net::kIpProtoTcp || proto == net::kIpProtoUdp) {
      std::memcpy(&sport, l4, 2);
      std::memcpy(&dport, l4 + 2, 2);
    } else if (proto == (v6 ? net::kIpProtoIcmpv6 : net::kIpProtoIcmp)) {
      const uint8_t type = l4[0];
      if (v6 && icmp6_link_scope(type)) return k;
      if (v6 ? icmp6_error(type) : icmp4_error(type)) {
        // Related: the quoted packet (an IP header after the 8-byte ICMP header)
        // travelled the other way; its key is the flow's.
        const uint32_t inner_at = pm.l4_offset + sizeof(IcmpHeader);
        const uint32_t end = pm.l3_offset + pm.l3_length;
        const uint32_t contiguous = rte_pktmbuf_data_len(m) < end ? rte_pktmbuf_data_len(m) : end;
        const uint32_t ip_len = v6 ? sizeof(Ipv6Header) : sizeof(Ipv4Header);
        Quoted q;
        if (inner_at + ip_len <= contiguous) {
          const uint8_t* inner = rte_pktmbuf_mtod_offset(m, const uint8_t*, inner_at);
          uint32_t inner_header = ip_len;
          uint8_t inner_proto;
          if (v6) {
            inner_proto = reinterpret_cast<const Ipv6Header*>(inner)->next_header;  // extension headers not walked
          } else {
            inner_header = reinterpret_cast<const Ipv4Header*>(inner)->header_len();
            inner_proto = reinterpret_cast<const Ipv4Header*>(inner)->protocol;
          }
          if (inner_header >= ip_len && inner_at + inner_header <= contiguous) {
            q = quoted_l4(inner + inner_header, contiguous - inner_at - inner_header, inner_proto, v6);
            src = v6 ? reinterpret_cast<const Ipv6Header*>(inner)->src : inner + 12;
            dst = v6 ? reinterpret_cast<const Ipv6Header*>(inner)->dst : inner + 16;
          }
        }
        if (!q.ok) {
          k.kind = family;
          k.invalid = true;
          k.reason = Drop::IcmpNoFlow;
          return k;
        }
        k.related = true;
        proto = q.proto;
        sport = q.sport;
        dport = q.dport;
      } else {
        uint16_t id;
        std::memcpy(&id, l4 + 4, 2);
        const bool query = v6 ? type == 128 : icmp4_query(type);
        const bool answer = v6 ? type == 129 : icmp4_answer(type);
        if (query) {
          sport = id;
        } else if (answer) {
          dport = id;
        } else {
          // Opens nothing and answers nothing: nf_conntrack calls it invalid.
          k.kind = family;
          k.invalid = true;
          k.reason = Drop::IcmpBadType;
          return k;
        }
      }
    }
  }
  k.kind = family;
  if (!v6) {
    uint32_t s, d;
    std::memcpy(&s, src, 4);
    std::memcpy(&d, dst, 4);
    k.sender_slot = static_cast<uint8_t>(flow::make_key4(key4, s, d, sport, dport, proto, zone));
    k.hash = key4.hash();
  } else {
    k.sender_slot = static_cast<uint8_t>(flow::make_key6(key6, src, dst, sport, dport, proto, zone));
    k.hash = key6.hash();
  }
  // An error travels against the flow it quotes: its sender holds the other slot.
  if (k.related) k.sender_slot ^= 1;
  return k;
}

}  // namespace sluice::pipeline
