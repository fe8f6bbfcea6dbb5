#include "l3/icmp.h"

#include <algorithm>
#include <cstring>

#include <rte_cycles.h>
#include <rte_ip.h>

#include "net/headers.h"

namespace sluice::l3 {

using net::EthernetHeader;
using net::IcmpHeader;
using net::Ipv4Header;
using net::Ipv6Header;

namespace {

// RFC 1812 4.3.2.3: quote as much as fits in 576 bytes. RFC 4443 2.4 c: as much as
// fits in the minimum MTU of 1280.
constexpr uint16_t kQuote4 = 576 - sizeof(Ipv4Header) - sizeof(IcmpHeader);
constexpr uint16_t kQuote6 = 1280 - sizeof(Ipv6Header) - sizeof(IcmpHeader);

bool is_icmp4_error(uint8_t type) { return type == 3 || type == 4 || type == 5 || type == 11 || type == 12; }

void fill_ethernet(rte_mbuf* out, const rte_mbuf* orig, const rte_ether_addr& our_mac, uint16_t ether_type) {
  auto* eth = rte_pktmbuf_mtod(out, EthernetHeader*);
  const auto* orig_eth = rte_pktmbuf_mtod(orig, const EthernetHeader*);
  eth->dst = orig_eth->src;
  std::memcpy(eth->src.bytes, our_mac.addr_bytes, 6);
  eth->ether_type.set(ether_type);
}

uint16_t ip_length(const rte_mbuf* m, uint16_t l3_offset, bool v6) {
  const uint8_t* l3 = rte_pktmbuf_mtod_offset(m, const uint8_t*, l3_offset);
  if (v6) return static_cast<uint16_t>(sizeof(Ipv6Header) + reinterpret_cast<const Ipv6Header*>(l3)->payload_length.value());
  return reinterpret_cast<const Ipv4Header*>(l3)->total_length.value();
}

// Copies the quote into `to`; returns its length.
uint16_t copy_quote(const rte_mbuf* orig, uint16_t l3_offset, uint16_t max, uint8_t* to, bool v6) {
  uint16_t len = std::min<uint16_t>(max, ip_length(orig, l3_offset, v6));
  len = static_cast<uint16_t>(std::min<uint32_t>(len, orig->pkt_len - l3_offset));
  const void* data = rte_pktmbuf_read(orig, l3_offset, len, to);
  if (data != to) std::memcpy(to, data, len);
  return len;
}

}  // namespace

bool icmp4_error_allowed(const rte_mbuf* m, uint16_t l3_offset, uint16_t l4_offset, bool later_fragment) {
  if (later_fragment) return false;
  const auto* ip = rte_pktmbuf_mtod_offset(m, const Ipv4Header*, l3_offset);
  uint32_t src = ip->src.value();
  // Not a single host (RFC 1812 4.3.2.7): zero, loopback, multicast, class E and the
  // limited broadcast (both in 240/4).
  if (src == 0 || (src >> 24) == 127 || (src >> 28) >= 0xe) return false;
  if (ip->protocol == net::kIpProtoIcmp && l4_offset) {
    const auto* icmp = rte_pktmbuf_mtod_offset(m, const IcmpHeader*, l4_offset);
    if (is_icmp4_error(icmp->type)) return false;
  }
  return true;
}

bool icmp6_error_allowed(const rte_mbuf* m, uint16_t l3_offset, uint16_t l4_offset, uint8_t l4_proto,
                         bool later_fragment) {
  if (later_fragment) return false;
  const auto* ip = rte_pktmbuf_mtod_offset(m, const Ipv6Header*, l3_offset);
  // Not a single node (RFC 4443 2.4 e): unspecified, multicast; nor the loopback address,
  // which never leaves a node (RFC 4291 2.5.3), as 127/8 for IPv4.
  static const uint8_t zero[16] = {}, loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  if (ip->src[0] == 0xff || std::memcmp(ip->src, zero, 16) == 0 || std::memcmp(ip->src, loopback, 16) == 0)
    return false;
  if (l4_proto == net::kIpProtoIcmpv6 && l4_offset) {
    const auto* icmp = rte_pktmbuf_mtod_offset(m, const IcmpHeader*, l4_offset);
    if (icmp->type < 128) return false;
  }
  return true;
}

rte_mbuf* icmp4_error(const rte_mbuf* orig, uint16_t l3_offset, uint8_t type, uint8_t code, uint32_t rest,
                      uint32_t src_addr_net, const rte_ether_addr& our_mac) {
  rte_mbuf* out = rte_pktmbuf_alloc(orig->pool);
  if (!out) return nullptr;
  constexpr uint16_t kHeaders = sizeof(EthernetHeader) + sizeof(Ipv4Header) + sizeof(IcmpHeader);
  uint8_t* frame = rte_pktmbuf_mtod(out, uint8_t*);
  uint16_t quoted = copy_quote(orig, l3_offset, kQuote4, frame + kHeaders, false);
  fill_ethernet(out, orig, our_mac, net::kEtherTypeIpv4);

  const auto* orig_ip = rte_pktmbuf_mtod_offset(orig, const Ipv4Header*, l3_offset);
  auto* ip = reinterpret_cast<Ipv4Header*>(frame + sizeof(EthernetHeader));
  ip->version_ihl = 0x45;
  ip->tos = 0xc0;  // internetwork control, as Linux sends its ICMP errors
  ip->total_length.set(static_cast<uint16_t>(sizeof(Ipv4Header) + sizeof(IcmpHeader) + quoted));
  ip->id.set(0);
  ip->fragment.set(0);
  ip->ttl = 64;
  ip->protocol = net::kIpProtoIcmp;
  ip->checksum.raw = 0;
  ip->src.raw = src_addr_net;
  ip->dst = orig_ip->src;
  ip->checksum.raw = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip));

  auto* icmp = reinterpret_cast<IcmpHeader*>(ip + 1);
  icmp->type = type;
  icmp->code = code;
  icmp->checksum.raw = 0;
  icmp->rest.set(rest);
  icmp->checksum.raw = static_cast<uint16_t>(~rte_raw_cksum(icmp, sizeof(IcmpHeader) + quoted));

  out->data_len = out->pkt_len = kHeaders + quoted;
  out->port = orig->port;
  return out;
}

rte_mbuf* icmp6_error(const rte_mbuf* orig, uint16_t l3_offset, uint8_t type, uint8_t code, uint32_t rest,
                      const uint8_t* src_addr, const rte_ether_addr& our_mac) {
  rte_mbuf* out = rte_pktmbuf_alloc(orig->pool);
  if (!out) return nullptr;
  constexpr uint16_t kHeaders = sizeof(EthernetHeader) + sizeof(Ipv6Header) + sizeof(IcmpHeader);
  uint8_t* frame = rte_pktmbuf_mtod(out, uint8_t*);
  uint16_t quoted = copy_quote(orig, l3_offset, kQuote6, frame + kHeaders, true);
  fill_ethernet(out, orig, our_mac, net::kEtherTypeIpv6);

  const auto* orig_ip = rte_pktmbuf_mtod_offset(orig, const Ipv6Header*, l3_offset);
  auto* ip = reinterpret_cast<Ipv6Header*>(frame + sizeof(EthernetHeader));
  ip->version_class_flow.set(6u << 28);
  ip->payload_length.set(static_cast<uint16_t>(sizeof(IcmpHeader) + quoted));
  ip->next_header = net::kIpProtoIcmpv6;
  ip->hop_limit = 64;
  std::memcpy(ip->src, src_addr, 16);
  std::memcpy(ip->dst, orig_ip->src, 16);

  auto* icmp = reinterpret_cast<IcmpHeader*>(ip + 1);
  icmp->type = type;
  icmp->code = code;
  icmp->checksum.raw = 0;
  icmp->rest.set(rest);
  icmp->checksum.raw = rte_ipv6_udptcp_cksum(reinterpret_cast<const rte_ipv6_hdr*>(ip), icmp);

  out->data_len = out->pkt_len = kHeaders + quoted;
  out->port = orig->port;
  return out;
}

void icmp4_echo_reply(rte_mbuf* m, uint16_t l3_offset, uint16_t l4_offset, const rte_ether_addr& our_mac) {
  auto* eth = rte_pktmbuf_mtod(m, EthernetHeader*);
  eth->dst = eth->src;
  std::memcpy(eth->src.bytes, our_mac.addr_bytes, 6);
  auto* ip = rte_pktmbuf_mtod_offset(m, Ipv4Header*, l3_offset);
  std::swap(ip->src, ip->dst);
  ip->ttl = 64;
  ip->checksum.raw = 0;
  ip->checksum.raw = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip));
  auto* icmp = rte_pktmbuf_mtod_offset(m, IcmpHeader*, l4_offset);
  uint16_t old_word = *reinterpret_cast<const uint16_t*>(icmp);
  icmp->type = icmp4::kEchoReply;
  icmp->checksum.raw = checksum_adjust(icmp->checksum.raw, old_word, *reinterpret_cast<const uint16_t*>(icmp));
}

void icmp6_echo_reply(rte_mbuf* m, uint16_t l3_offset, uint16_t l4_offset, const rte_ether_addr& our_mac) {
  auto* eth = rte_pktmbuf_mtod(m, EthernetHeader*);
  eth->dst = eth->src;
  std::memcpy(eth->src.bytes, our_mac.addr_bytes, 6);
  auto* ip = rte_pktmbuf_mtod_offset(m, Ipv6Header*, l3_offset);
  uint8_t tmp[16];
  std::memcpy(tmp, ip->src, 16);
  std::memcpy(ip->src, ip->dst, 16);
  std::memcpy(ip->dst, tmp, 16);
  ip->hop_limit = 64;
  auto* icmp = rte_pktmbuf_mtod_offset(m, IcmpHeader*, l4_offset);
  uint16_t old_word = *reinterpret_cast<const uint16_t*>(icmp);
  icmp->type = icmp6::kEchoReply;
  // Swapping source and destination leaves the pseudo-header sum as it was.
  icmp->checksum.raw = checksum_adjust(icmp->checksum.raw, old_word, *reinterpret_cast<const uint16_t*>(icmp));
}

TokenBucket::TokenBucket(unsigned rate_per_second, unsigned burst, uint64_t hz)
    : rate_(rate_per_second), burst_(burst), tokens_(burst), last_tsc_(rte_rdtsc()) {
  cycles_per_token_ = rate_per_second ? std::max<uint64_t>(1, hz / rate_per_second) : 1;
}

}  // namespace sluice::l3
