#include "lb/probe.h"

#include <algorithm>
#include <cstring>

#include <rte_ip.h>

#include "net/checksum.h"

namespace sluice::lb {

using net::EthernetHeader;
using net::IcmpHeader;
using net::IpAddr;
using net::Ipv4Header;
using net::Ipv6Header;
using net::TcpHeader;

namespace {

constexpr uint8_t kMssOption[2] = {2, 4};  // kind 2 (MSS), length 4 (RFC 9293 3.2)
constexpr uint16_t kMssOptionLen = 4;
constexpr uint8_t kEchoPayload[kProbeEchoPayload] = {'s', 'l', 'u', 'i', 'c', 'e', 'h', 'c'};
constexpr uint16_t kDontFragment = 0x4000;

bool same_family(const IpAddr& src, const IpAddr& dst) {
  return src.family == dst.family && (src.family == 4 || src.family == 6);
}

// A frame of Ethernet + IP header + `l4_len` bytes, the IP header filled in (IPv4's
// checksum too); returns the mbuf and where the L4 header goes, or null.
rte_mbuf* start_frame(rte_mempool* pool, const IpAddr& src, const IpAddr& dst, uint8_t proto, uint16_t l4_len,
                      uint8_t*& l4) {
  const bool v6 = src.family == 6;
  const uint16_t ip_len = v6 ? sizeof(Ipv6Header) : sizeof(Ipv4Header);
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  auto* frame = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, sizeof(EthernetHeader) + ip_len + l4_len));
  if (frame == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memset(frame, 0, sizeof(EthernetHeader) + ip_len + l4_len);
  auto* eth = reinterpret_cast<EthernetHeader*>(frame);
  eth->ether_type.set(v6 ? net::kEtherTypeIpv6 : net::kEtherTypeIpv4);
  uint8_t* l3 = frame + sizeof(EthernetHeader);
  if (v6) {
    auto* ip = reinterpret_cast<Ipv6Header*>(l3);
    ip->version_class_flow.set(6u << 28);
    ip->payload_length.set(l4_len);
    ip->next_header = proto;
    ip->hop_limit = kProbeTtl;
    std::memcpy(ip->src, src.bytes.data(), 16);
    std::memcpy(ip->dst, dst.bytes.data(), 16);
  } else {
    auto* ip = reinterpret_cast<Ipv4Header*>(l3);
    ip->version_ihl = 0x45;
    ip->total_length.set(static_cast<uint16_t>(sizeof(Ipv4Header) + l4_len));
    ip->fragment.set(kDontFragment);  // id 0: an atomic datagram needs none (RFC 6864)
    ip->ttl = kProbeTtl;
    ip->protocol = proto;
    ip->src.set(src.v4_host());
    ip->dst.set(dst.v4_host());
    ip->checksum.raw = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip));
  }
  l4 = l3 + ip_len;
  return m;
}

// The TCP or ICMPv6 checksum over the pseudo-header; the L4 header's checksum field is 0.
uint16_t pseudo_checksum(const rte_mbuf* m, const void* l4, bool v6) {
  const void* l3 = rte_pktmbuf_mtod_offset(m, const uint8_t*, sizeof(EthernetHeader));
  if (v6) return rte_ipv6_udptcp_cksum(static_cast<const rte_ipv6_hdr*>(l3), l4);
  return rte_ipv4_udptcp_cksum(static_cast<const rte_ipv4_hdr*>(l3), l4);
}

rte_mbuf* build_tcp(rte_mempool* pool, const IpAddr& src, const IpAddr& dst, uint16_t sport, uint16_t dport,
                    uint32_t seq, uint8_t flags) {
  if (!same_family(src, dst)) return nullptr;
  const bool syn = flags & flow::kTcpSyn;
  const uint16_t tcp_len = sizeof(TcpHeader) + (syn ? kMssOptionLen : 0);
  uint8_t* l4 = nullptr;
  rte_mbuf* m = start_frame(pool, src, dst, net::kIpProtoTcp, tcp_len, l4);
  if (m == nullptr) return nullptr;
  auto* tcp = reinterpret_cast<TcpHeader*>(l4);
  tcp->src_port.set(sport);
  tcp->dst_port.set(dport);
  tcp->seq.set(seq);
  tcp->data_offset_reserved = static_cast<uint8_t>((tcp_len / 4) << 4);
  tcp->flags = flags;
  if (syn) {
    tcp->window.set(kProbeWindow);
    uint8_t* option = l4 + sizeof(TcpHeader);
    std::memcpy(option, kMssOption, sizeof(kMssOption));
    net::be16 mss = net::be16::from(src.family == 6 ? kProbeMss6 : kProbeMss4);
    std::memcpy(option + 2, &mss, 2);
  }
  tcp->checksum.raw = pseudo_checksum(m, tcp, src.family == 6);
  return m;
}

// Where an IP packet's L4 header starts and how many of its bytes are there.
struct L4View {
  const uint8_t* l3 = nullptr;
  const uint8_t* l4 = nullptr;
  uint32_t l4_len = 0;
  uint8_t proto = 0;
  bool v6 = false;
};

// The IP header at `l3` (`available` bytes of it in hand) and its upper layer, cut to
// the IP length; false for a header that does not fit and for a non-first IPv4
// fragment. An IPv6 extension header is left to fail the caller's protocol check.
bool view_ip(const uint8_t* l3, uint32_t available, L4View& view) {
  if (available < 1) return false;
  view.l3 = l3;
  switch (l3[0] >> 4) {
    case 4: {
      if (available < sizeof(Ipv4Header)) return false;
      const auto* ip = reinterpret_cast<const Ipv4Header*>(l3);
      const uint32_t header_len = ip->header_len();
      const uint32_t ip_len = std::min<uint32_t>(available, ip->total_length.value());
      if (header_len < sizeof(Ipv4Header) || header_len > ip_len || ip->fragment_offset() != 0) return false;
      view.l4 = l3 + header_len;
      view.l4_len = ip_len - header_len;
      view.proto = ip->protocol;
      view.v6 = false;
      return true;
    }
    case 6: {
      if (available < sizeof(Ipv6Header)) return false;
      const auto* ip = reinterpret_cast<const Ipv6Header*>(l3);
      view.l4 = l3 + sizeof(Ipv6Header);
      view.l4_len = std::min<uint32_t>(available - sizeof(Ipv6Header), ip->payload_length.value());
      view.proto = ip->next_header;
      view.v6 = true;
      return true;
    }
    default:
      return false;
  }
}

// Source and destination of the IP header in `view`.
void addresses(const L4View& view, IpAddr& src, IpAddr& dst) {
  if (view.v6) {
    const auto* ip = reinterpret_cast<const Ipv6Header*>(view.l3);
    src = IpAddr::v6(ip->src);
    dst = IpAddr::v6(ip->dst);
  } else {
    const auto* ip = reinterpret_cast<const Ipv4Header*>(view.l3);
    src = IpAddr::v4(ip->src.value());
    dst = IpAddr::v4(ip->dst.value());
  }
}

uint32_t echo_token(const IcmpHeader& icmp) { return icmp.rest.value(); }  // ident << 16 | seq
uint16_t echo_ident(const IcmpHeader& icmp) { return static_cast<uint16_t>(icmp.rest.value() >> 16); }

// The probe an unreachable quotes (RFC 792, RFC 4443 3.1: its IP header and at least 8
// bytes after it: the ports and sequence of a SYN, the whole echo header).
bool parse_quoted_probe(const uint8_t* quote, uint32_t quote_len, bool v6, const ProbeMatch& match,
                        ProbeReply& reply) {
  L4View quoted;
  if (!view_ip(quote, quote_len, quoted) || quoted.v6 != v6 || quoted.l4_len < 8) return false;
  if (quoted.proto == net::kIpProtoTcp) {
    const uint16_t sport = net::be16{net::load16(quoted.l4)}.value();
    if (!match.has_port(sport)) return false;
    reply.local_port = sport;
    reply.peer_port = net::be16{net::load16(quoted.l4 + 2)}.value();
    reply.token = net::be32{net::load32(quoted.l4 + 4)}.value();
  } else if (quoted.proto == (v6 ? net::kIpProtoIcmpv6 : net::kIpProtoIcmp)) {
    const auto* echo = reinterpret_cast<const IcmpHeader*>(quoted.l4);
    if (echo->type != (v6 ? l3::icmp6::kEchoRequest : l3::icmp4::kEchoRequest) || echo_ident(*echo) != match.echo_ident)
      return false;
    reply.token = echo_token(*echo);
  } else {
    return false;
  }
  addresses(quoted, reply.local, reply.peer);
  reply.kind = ProbeReply::Kind::Unreachable;
  return true;
}

}  // namespace

rte_mbuf* build_tcp_syn(rte_mempool* pool, const IpAddr& src, const IpAddr& dst, uint16_t sport, uint16_t dport,
                        uint32_t seq) {
  return build_tcp(pool, src, dst, sport, dport, seq, flow::kTcpSyn);
}

rte_mbuf* build_tcp_rst(rte_mempool* pool, const IpAddr& src, const IpAddr& dst, uint16_t sport, uint16_t dport,
                        uint32_t seq) {
  return build_tcp(pool, src, dst, sport, dport, seq, flow::kTcpRst);
}

rte_mbuf* build_icmp_echo(rte_mempool* pool, const IpAddr& src, const IpAddr& dst, uint16_t ident, uint16_t seq) {
  if (!same_family(src, dst)) return nullptr;
  const bool v6 = src.family == 6;
  constexpr uint16_t kIcmpLen = sizeof(IcmpHeader) + kProbeEchoPayload;
  uint8_t* l4 = nullptr;
  rte_mbuf* m = start_frame(pool, src, dst, v6 ? net::kIpProtoIcmpv6 : net::kIpProtoIcmp, kIcmpLen, l4);
  if (m == nullptr) return nullptr;
  auto* icmp = reinterpret_cast<IcmpHeader*>(l4);
  icmp->type = v6 ? l3::icmp6::kEchoRequest : l3::icmp4::kEchoRequest;
  icmp->rest.set(uint32_t(ident) << 16 | seq);
  std::memcpy(l4 + sizeof(IcmpHeader), kEchoPayload, kProbeEchoPayload);
  // ICMPv6 sums a pseudo-header (RFC 4443 2.3); ICMP for IPv4 only the message.
  icmp->checksum.raw = v6 ? pseudo_checksum(m, icmp, true) : static_cast<uint16_t>(~rte_raw_cksum(icmp, kIcmpLen));
  return m;
}

// Checksums are not verified: a forged SYN-ACK is the same risk as a forged connection
// (anyone on the path can send either), and it must carry the token of the probe in
// flight to count, which a corrupted one will not.
bool parse_probe_reply(const rte_mbuf* m, uint16_t l3_offset, const ProbeMatch& match, ProbeReply& out) {
  if (l3_offset >= m->data_len) return false;
  L4View view;
  if (!view_ip(rte_pktmbuf_mtod_offset(m, const uint8_t*, l3_offset), m->data_len - l3_offset, view)) return false;

  ProbeReply reply;
  if (view.proto == net::kIpProtoTcp) {
    if (view.l4_len < sizeof(TcpHeader)) return false;
    const auto* tcp = reinterpret_cast<const TcpHeader*>(view.l4);
    if (tcp->header_len() < sizeof(TcpHeader) || tcp->header_len() > view.l4_len) return false;
    const uint16_t dport = tcp->dst_port.value();
    const uint8_t flags = tcp->flags;
    // Only an ACK's ack number says which SYN it answers.
    if (!match.has_port(dport) || !(flags & flow::kTcpAck)) return false;
    if (flags & flow::kTcpRst) {
      reply.kind = ProbeReply::Kind::Rst;
    } else {
      // A SYN-ACK, or any other segment of a connection we never keep (the backend's
      // half-open one meeting a reused probe port answers a SYN with a bare ACK): both
      // get a RST at SEG.ACK (RFC 9293 3.10.7.1), so the backend forgets it.
      reply.kind = (flags & flow::kTcpSyn) ? ProbeReply::Kind::SynAck : ProbeReply::Kind::Stray;
      reply.ack_for_rst = tcp->ack.value();
    }
    reply.token = tcp->ack.value() - 1;
    reply.peer_port = tcp->src_port.value();
    reply.local_port = dport;
    addresses(view, reply.peer, reply.local);
    out = reply;
    return true;
  }

  if (view.proto != (view.v6 ? net::kIpProtoIcmpv6 : net::kIpProtoIcmp) || view.l4_len < sizeof(IcmpHeader))
    return false;
  const auto* icmp = reinterpret_cast<const IcmpHeader*>(view.l4);
  const uint8_t echo_reply = view.v6 ? l3::icmp6::kEchoReply : l3::icmp4::kEchoReply;
  const uint8_t unreachable = view.v6 ? l3::icmp6::kUnreachable : l3::icmp4::kUnreachable;
  if (icmp->type == echo_reply) {
    if (echo_ident(*icmp) != match.echo_ident) return false;
    reply.kind = ProbeReply::Kind::EchoReply;
    reply.token = echo_token(*icmp);
    addresses(view, reply.peer, reply.local);
  } else if (icmp->type == unreachable) {
    if (!parse_quoted_probe(view.l4 + sizeof(IcmpHeader), view.l4_len - sizeof(IcmpHeader), view.v6, match, reply))
      return false;
  } else {
    return false;
  }
  out = reply;
  return true;
}

}  // namespace sluice::lb
