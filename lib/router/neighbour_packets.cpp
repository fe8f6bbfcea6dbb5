#include "router/neighbour_packets.h"

#include <cstring>

#include <rte_ip.h>

namespace sluice::router {

using net::ArpHeader;
using net::EthernetHeader;
using net::Ipv6Header;

namespace {

constexpr uint8_t kOptSourceLinkAddr = 1, kOptTargetLinkAddr = 2;

struct [[gnu::packed]] NdHeader {
  uint8_t type;
  uint8_t code;
  uint16_t checksum;
  uint8_t flags;  // NA: R S O
  uint8_t reserved[3];
  uint8_t target[16];
};
static_assert(sizeof(NdHeader) == 24);

struct [[gnu::packed]] LinkAddrOption {
  uint8_t type;
  uint8_t length;  // in 8-octet units
  uint8_t mac[6];
};

rte_mbuf* frame(rte_mempool* pool, uint16_t len) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (!m) return nullptr;
  std::memset(rte_pktmbuf_mtod(m, void*), 0, len);
  m->data_len = m->pkt_len = len;
  return m;
}

void ethernet(rte_mbuf* m, const rte_ether_addr& dst, const rte_ether_addr& src, uint16_t type) {
  auto* eth = rte_pktmbuf_mtod(m, EthernetHeader*);
  std::memcpy(eth->dst.bytes, dst.addr_bytes, 6);
  std::memcpy(eth->src.bytes, src.addr_bytes, 6);
  eth->ether_type.set(type);
}

rte_mbuf* build_nd(rte_mempool* pool, uint8_t type, uint8_t flags, const rte_ether_addr& src_mac,
                   const uint8_t* src_ip, const uint8_t* dst_ip, const rte_ether_addr& dst_mac, const uint8_t* target,
                   uint8_t option) {
  constexpr uint16_t kLen = sizeof(EthernetHeader) + sizeof(Ipv6Header) + sizeof(NdHeader) + sizeof(LinkAddrOption);
  rte_mbuf* m = frame(pool, kLen);
  if (!m) return nullptr;
  ethernet(m, dst_mac, src_mac, net::kEtherTypeIpv6);
  auto* ip = rte_pktmbuf_mtod_offset(m, Ipv6Header*, sizeof(EthernetHeader));
  ip->version_class_flow.set(6u << 28);
  ip->payload_length.set(sizeof(NdHeader) + sizeof(LinkAddrOption));
  ip->next_header = net::kIpProtoIcmpv6;
  ip->hop_limit = 255;
  std::memcpy(ip->src, src_ip, 16);
  std::memcpy(ip->dst, dst_ip, 16);
  auto* nd = reinterpret_cast<NdHeader*>(ip + 1);
  nd->type = type;
  nd->flags = flags;
  std::memcpy(nd->target, target, 16);
  auto* opt = reinterpret_cast<LinkAddrOption*>(nd + 1);
  opt->type = option;
  opt->length = 1;
  std::memcpy(opt->mac, src_mac.addr_bytes, 6);
  nd->checksum = rte_ipv6_udptcp_cksum(reinterpret_cast<const rte_ipv6_hdr*>(ip), nd);
  return m;
}

}  // namespace

rte_mbuf* build_arp(rte_mempool* pool, uint16_t opcode, const rte_ether_addr& src_mac, uint32_t sender_ip_net,
                    const rte_ether_addr& target_mac, uint32_t target_ip_net, const rte_ether_addr& eth_dst) {
  rte_mbuf* m = frame(pool, RTE_ETHER_MIN_LEN - RTE_ETHER_CRC_LEN);  // 60: padded like every ARP on the wire
  if (!m) return nullptr;
  ethernet(m, eth_dst, src_mac, net::kEtherTypeArp);
  auto* arp = rte_pktmbuf_mtod_offset(m, ArpHeader*, sizeof(EthernetHeader));
  arp->hardware_type.set(1);
  arp->protocol_type.set(net::kEtherTypeIpv4);
  arp->hardware_len = 6;
  arp->protocol_len = 4;
  arp->opcode.set(opcode);
  std::memcpy(arp->sender_mac.bytes, src_mac.addr_bytes, 6);
  arp->sender_ip.raw = sender_ip_net;
  std::memcpy(arp->target_mac.bytes, target_mac.addr_bytes, 6);
  arp->target_ip.raw = target_ip_net;
  return m;
}

rte_mbuf* build_ns(rte_mempool* pool, const rte_ether_addr& src_mac, const uint8_t* src_ip, const uint8_t* target,
                   const rte_ether_addr* unicast_mac) {
  uint8_t dst_ip[16];
  rte_ether_addr dst_mac;
  if (unicast_mac) {
    std::memcpy(dst_ip, target, 16);
    dst_mac = *unicast_mac;
  } else {
    // Solicited-node multicast ff02::1:ffXX:XXXX and its MAC 33:33:ff:XX:XX:XX.
    static const uint8_t prefix[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
    std::memcpy(dst_ip, prefix, 13);
    std::memcpy(dst_ip + 13, target + 13, 3);
    dst_mac = rte_ether_addr{{0x33, 0x33, dst_ip[12], dst_ip[13], dst_ip[14], dst_ip[15]}};
  }
  return build_nd(pool, 135, 0, src_mac, src_ip, dst_ip, dst_mac, target, kOptSourceLinkAddr);
}

rte_mbuf* build_na(rte_mempool* pool, const rte_ether_addr& src_mac, const uint8_t* target, const uint8_t* dst_ip,
                   const rte_ether_addr& dst_mac, bool solicited, bool override_flag) {
  uint8_t flags = 0x80;  // R: a router
  if (solicited) flags |= 0x40;
  if (override_flag) flags |= 0x20;
  return build_nd(pool, 136, flags, src_mac, target, dst_ip, dst_mac, target, kOptTargetLinkAddr);
}

std::optional<NdMessage> parse_nd(const rte_mbuf* m, uint16_t l3_offset, uint16_t l4_offset) {
  if (rte_pktmbuf_data_len(m) != rte_pktmbuf_pkt_len(m)) return std::nullopt;  // ND is small: one segment
  const auto* ip = rte_pktmbuf_mtod_offset(m, const Ipv6Header*, l3_offset);
  uint32_t end = l3_offset + sizeof(Ipv6Header) + ip->payload_length.value();
  if (ip->hop_limit != 255 || end > m->data_len || end < uint32_t(l4_offset) + sizeof(NdHeader)) return std::nullopt;
  const auto* nd = rte_pktmbuf_mtod_offset(m, const NdHeader*, l4_offset);
  if (nd->code != 0 || (nd->type != 135 && nd->type != 136) || nd->target[0] == 0xff) return std::nullopt;
  uint32_t sum = rte_ipv6_phdr_cksum(reinterpret_cast<const rte_ipv6_hdr*>(ip), 0) +
                 rte_raw_cksum(nd, end - l4_offset);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  if (sum != 0xffff) return std::nullopt;
  NdMessage msg{nd->type, ip->src, nd->target};
  msg.solicited = nd->flags & 0x40;
  msg.override_flag = nd->flags & 0x20;
  // Options: every one at least 8 bytes and inside the packet.
  uint32_t at = l4_offset + sizeof(NdHeader);
  const uint8_t* data = rte_pktmbuf_mtod(m, const uint8_t*);
  while (at + 2 <= end) {
    uint32_t len = uint32_t(data[at + 1]) * 8;
    if (len == 0 || at + len > end) return std::nullopt;
    uint8_t type = data[at];
    if (len == 8 && ((nd->type == 135 && type == kOptSourceLinkAddr) || (nd->type == 136 && type == kOptTargetLinkAddr))) {
      rte_ether_addr mac;
      std::memcpy(mac.addr_bytes, data + at + 2, 6);
      msg.link_addr = mac;
    }
    at += len;
  }
  static const uint8_t zero[16] = {};
  if (nd->type == 135 && std::memcmp(ip->src, zero, 16) == 0 && msg.link_addr) return std::nullopt;
  return msg;
}

}  // namespace sluice::router
