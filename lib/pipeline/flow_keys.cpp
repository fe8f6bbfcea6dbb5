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

// An ICMP query or answer's "ports": the identifier on the querier's side and the code
// on the other, as nf_conntrack's ICMP tuple (id, type, code): a reply with another
// code than its request's is not its reply.
bool icmp_ports(const uint8_t* icmp, bool v6, uint16_t& sport, uint16_t& dport) {
  const uint8_t type = icmp[0];
  const uint16_t code = rte_cpu_to_be_16(icmp[1]);
  uint16_t id;
  std::memcpy(&id, icmp + 4, 2);
  if (v6 ? icmp6_query(type) : icmp4_query(type)) {
    sport = id;
    dport = code;
    return true;
  }
  if (v6 ? icmp6_answer(type) : icmp4_answer(type)) {
    sport = code;
    dport = id;
    return true;
  }
  return false;
}

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
    // An error about an error (or about anything but a query) relates to nothing.
    if (!icmp_ports(l4, v6, q.sport, q.dport)) return q;
  }
  q.ok = true;
  return q;
}

// Walks the quoted IPv6 packet's extension headers (as nf_conntrack's ipv6_skip_exthdr)
// to its upper-layer header; false when they run past what was quoted.
bool skip_ipv6_extensions(const uint8_t* packet, uint32_t available, uint8_t& proto, uint32_t& offset) {
  for (unsigned n = 0; n < 8; ++n) {
    switch (proto) {
      case net::kIpProtoHopByHop:
      case net::kIpProtoRouting:
      case net::kIpProtoDestOpts:
      case net::kIpProtoFragment:
      case net::kIpProtoAh: {
        if (offset + 8 > available) return false;
        const uint8_t* ext = packet + offset;
        uint32_t len;
        if (proto == net::kIpProtoFragment) {
          // A later fragment quotes no L4 header: nothing to relate it to.
          uint16_t offset_flags;
          std::memcpy(&offset_flags, ext + 2, 2);
          if (rte_be_to_cpu_16(offset_flags) >> 3) return false;
          len = 8;
        } else {
          len = proto == net::kIpProtoAh ? (ext[1] + 2u) * 4u : (ext[1] + 1u) * 8u;
        }
        proto = ext[0];
        offset += len;
        continue;
      }
      default:
        return true;
    }
  }
  return false;
}

}  // namespace

PacketKey flow_key_of_any(const rte_mbuf* m, const PacketMeta& pm, uint16_t zone, bool track_ipv6,
                          flow::FlowKey4& key4, flow::FlowKey6& key6) {
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
  const uint32_t addr_len = v6 ? 16 : 4;
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
        const uint8_t* inner = nullptr;
        if (inner_at + ip_len <= contiguous) {
          inner = rte_pktmbuf_mtod_offset(m, const uint8_t*, inner_at);
          const uint32_t available = contiguous - inner_at;
          uint32_t inner_header = ip_len;
          uint8_t inner_proto;
          bool walked = true;
          if (v6) {
            inner_proto = reinterpret_cast<const Ipv6Header*>(inner)->next_header;
            walked = skip_ipv6_extensions(inner, available, inner_proto, inner_header);
          } else {
            inner_header = reinterpret_cast<const Ipv4Header*>(inner)->header_len();
            inner_proto = reinterpret_cast<const Ipv4Header*>(inner)->protocol;
            // A quoted later fragment has no L4 header to relate it by.
            uint16_t fragment;
            std::memcpy(&fragment, inner + 6, 2);
            walked = (rte_be_to_cpu_16(fragment) & 0x1fff) == 0;
          }
          if (walked && inner_header >= ip_len && inner_header <= available)
            q = quoted_l4(inner + inner_header, available - inner_header, inner_proto, v6);
        }
        if (!q.ok) {
          k.kind = family;
          k.invalid = true;
          k.reason = Drop::IcmpNoFlow;
          return k;
        }
        const uint8_t* inner_src = v6 ? reinterpret_cast<const Ipv6Header*>(inner)->src : inner + 12;
        const uint8_t* inner_dst = v6 ? reinterpret_cast<const Ipv6Header*>(inner)->dst : inner + 16;
        // nf_conntrack_inet_error(): an error goes back to the quoted packet's sender;
        // one addressed elsewhere is invalid, whatever flow it names.
        if (std::memcmp(dst, inner_src, addr_len) != 0) {
          k.kind = family;
          k.invalid = true;
          k.reason = Drop::IcmpErrorMismatch;
          return k;
        }
        k.related = true;
        src = inner_src;
        dst = inner_dst;
        proto = q.proto;
        sport = q.sport;
        dport = q.dport;
      } else if (!icmp_ports(l4, v6, sport, dport)) {
        // Opens nothing and answers nothing: nf_conntrack calls it invalid.
        k.kind = family;
        k.invalid = true;
        k.reason = Drop::IcmpBadType;
        return k;
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
