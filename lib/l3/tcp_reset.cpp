#include "l3/tcp_reset.h"

#include <cstring>

#include <rte_ip.h>

#include "net/headers.h"

namespace sluice::l3 {

using net::EthernetHeader;
using net::Ipv4Header;
using net::Ipv6Header;
using net::TcpHeader;

namespace {

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10;
constexpr uint8_t kReplyTtl = 64;

// Drops every byte after `length`, freeing the segments behind the first.
void cut_frame(rte_mbuf* m, uint16_t length) {
  if (m->next) {
    rte_pktmbuf_free(m->next);
    m->next = nullptr;
    m->nb_segs = 1;
  }
  m->data_len = length;
  m->pkt_len = length;
}

}  // namespace

bool tcp_reset_in_place(rte_mbuf* m, uint16_t l3_offset, uint16_t l4_offset, bool ipv6, const rte_ether_addr* our_mac) {
  auto* l3 = rte_pktmbuf_mtod_offset(m, uint8_t*, l3_offset);
  auto* tcp = rte_pktmbuf_mtod_offset(m, TcpHeader*, l4_offset);
  if (tcp->flags & kRst) return false;

  // Sequence numbers from the segment as it came.
  uint32_t ip_payload;
  if (ipv6) ip_payload = reinterpret_cast<Ipv6Header*>(l3)->payload_length.value() - (l4_offset - l3_offset - 40u);
  else ip_payload = reinterpret_cast<Ipv4Header*>(l3)->total_length.value() - (l4_offset - l3_offset);
  const uint32_t seg_len = ip_payload - tcp->header_len() + ((tcp->flags & kSyn) ? 1 : 0) + ((tcp->flags & kFin) ? 1 : 0);
  const bool had_ack = tcp->flags & kAck;
  const uint32_t seq = tcp->seq.value(), ack = tcp->ack.value();
  const uint16_t sport = tcp->src_port.value(), dport = tcp->dst_port.value();

  // The reply has a bare IP header: the TCP header moves up over options/extensions.
  const uint16_t ip_header = ipv6 ? sizeof(Ipv6Header) : sizeof(Ipv4Header);
  auto* out_tcp = reinterpret_cast<TcpHeader*>(l3 + ip_header);
  std::memset(out_tcp, 0, sizeof(TcpHeader));  // also when it did not move: no options survive
  out_tcp->src_port.set(dport);
  out_tcp->dst_port.set(sport);
  if (had_ack) {
    out_tcp->seq.set(ack);
    out_tcp->flags = kRst;
  } else {
    out_tcp->ack.set(seq + seg_len);
    out_tcp->flags = kRst | kAck;
  }
  out_tcp->data_offset_reserved = 5 << 4;

  auto* eth = rte_pktmbuf_mtod(m, EthernetHeader*);
  const net::MacAddress from = eth->src;
  eth->src = our_mac ? *reinterpret_cast<const net::MacAddress*>(our_mac->addr_bytes) : eth->dst;
  eth->dst = from;

  if (ipv6) {
    auto* ip = reinterpret_cast<Ipv6Header*>(l3);
    uint8_t addr[16];
    std::memcpy(addr, ip->src, 16);
    std::memcpy(ip->src, ip->dst, 16);
    std::memcpy(ip->dst, addr, 16);
    ip->payload_length.set(sizeof(TcpHeader));
    ip->next_header = net::kIpProtoTcp;
    ip->hop_limit = kReplyTtl;
    out_tcp->checksum.raw = rte_ipv6_udptcp_cksum(reinterpret_cast<const rte_ipv6_hdr*>(ip), out_tcp);
  } else {
    auto* ip = reinterpret_cast<Ipv4Header*>(l3);
    const uint32_t src = ip->src.raw;
    ip->src.raw = ip->dst.raw;
    ip->dst.raw = src;
    ip->version_ihl = 0x45;
    ip->tos = 0;
    ip->total_length.set(sizeof(Ipv4Header) + sizeof(TcpHeader));
    ip->id.set(0);
    ip->fragment.set(0x4000);  // DF, as Linux's RSTs
    ip->ttl = kReplyTtl;
    ip->protocol = net::kIpProtoTcp;
    ip->checksum.raw = 0;
    ip->checksum.raw = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip));
    out_tcp->checksum.raw = rte_ipv4_udptcp_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip), out_tcp);
  }
  cut_frame(m, static_cast<uint16_t>(l3_offset + ip_header + sizeof(TcpHeader)));
  // No offload requests or RX verdicts survive; the flags saying whose buffer this is
  // (external, e.g. mlx5 MPRQ strides, or indirect) must, or its free would go wrong.
  m->ol_flags &= RTE_MBUF_F_EXTERNAL | RTE_MBUF_F_INDIRECT;
  return true;
}

}  // namespace sluice::l3
