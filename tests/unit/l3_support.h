// Shared by the router tests: crafted IPv4/IPv6/ARP/ND frames with real addresses and
// valid checksums, and readers for the frames the router sends.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "net/headers.h"
#include "net/ip_addr.h"
#include "test_support.h"

namespace sluice::test {

using Mac = std::array<uint8_t, 6>;

// Frame::eth() writes these: a host (src) sending to the router's ingress port (dst).
inline constexpr Mac kHostMac = {0x02, 0, 0, 0, 0, 0x01};
inline constexpr Mac kIngressMac = {0x02, 0, 0, 0, 0, 0x02};

inline rte_ether_addr ether(const Mac& mac) {
  rte_ether_addr a;
  std::memcpy(a.addr_bytes, mac.data(), 6);
  return a;
}

inline Mac mac_at(const uint8_t* p) {
  Mac mac;
  std::memcpy(mac.data(), p, 6);
  return mac;
}

inline std::array<uint8_t, 16> addr6(const char* text) {
  std::array<uint8_t, 16> a{};
  EXPECT_EQ(inet_pton(AF_INET6, text, a.data()), 1) << text;
  return a;
}
inline std::array<uint8_t, 4> addr4(const char* text) {
  std::array<uint8_t, 4> a{};
  EXPECT_EQ(inet_pton(AF_INET, text, a.data()), 1) << text;
  return a;
}
// Network order, as it sits in a header (and in l3::Interface::ipv4).
inline uint32_t addr4_raw(const char* text) {
  uint32_t raw;
  auto a = addr4(text);
  std::memcpy(&raw, a.data(), 4);
  return raw;
}
inline std::string ip4_text(const uint8_t* p) {
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, p, text, sizeof(text));
  return text;
}
inline std::string ip6_text(const uint8_t* p) {
  char text[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, p, text, sizeof(text));
  return text;
}

// Reading a sent frame: its bytes, its IP header (after an untagged Ethernet header),
// the addresses in that header as text, and whether an IPv4 header checksum verifies.
inline constexpr size_t kL3 = sizeof(net::EthernetHeader);
inline const uint8_t* data(const rte_mbuf* m) { return rte_pktmbuf_mtod(m, const uint8_t*); }
inline const uint8_t* ip_of(const rte_mbuf* m) { return data(m) + kL3; }
inline std::string src4(const uint8_t* ip) { return ip4_text(ip + 12); }
inline std::string dst4(const uint8_t* ip) { return ip4_text(ip + 16); }
inline std::string src6(const uint8_t* ip) { return ip6_text(ip + 8); }
inline std::string dst6(const uint8_t* ip) { return ip6_text(ip + 24); }
inline bool ipv4_checksum_ok(const uint8_t* ip) { return rte_raw_cksum(ip, (ip[0] & 0x0f) * 4u) == 0xffff; }

// One's complement sum, folded, not complemented (as rte_raw_cksum).
inline uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
  if (n & 1) sum += uint32_t(p[n - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum;
}
inline void put16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  b.at(at) = uint8_t(v >> 8);
  b.at(at + 1) = uint8_t(v);
}
inline uint16_t get16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

// An IPv4 packet from a host behind the ingress port. Checksums (IPv4 header, ICMP)
// are valid unless a test breaks them afterwards.
struct V4 {
  const char* src = "10.1.0.10";
  const char* dst = "10.9.1.1";
  uint8_t proto = net::kIpProtoUdp;
  uint8_t ttl = 64;
  uint16_t fragment = 0;  // flags and offset as on the wire (0x4000: DF)
  uint8_t ihl = 5;
  size_t payload = 18;
  uint8_t icmp_type = 8;  // for proto ICMP
  uint16_t src_port = 40000, dst_port = 53;
  uint16_t id = 0x1234;
};

inline std::vector<uint8_t> ipv4_frame(const V4& v) {
  Frame f;
  f.eth(net::kEtherTypeIpv4).ipv4(v.proto, v.fragment, v.ihl);
  const size_t ip = f.ip_offset();
  bool later_fragment = (v.fragment & 0x1fff) != 0;
  if (!later_fragment && v.proto == net::kIpProtoUdp) f.udp();
  else if (!later_fragment && v.proto == net::kIpProtoTcp) f.tcp();
  else if (!later_fragment && v.proto == net::kIpProtoIcmp) f.icmp(v.icmp_type);
  f.payload(v.payload);
  std::vector<uint8_t> b = f.build();
  b[ip + 8] = v.ttl;
  put16(b, ip + 4, v.id);
  auto s = addr4(v.src), d = addr4(v.dst);
  std::memcpy(&b[ip + 12], s.data(), 4);
  std::memcpy(&b[ip + 16], d.data(), 4);
  size_t l4 = ip + v.ihl * 4u;
  if (!later_fragment && (v.proto == net::kIpProtoUdp || v.proto == net::kIpProtoTcp)) {
    put16(b, l4, v.src_port);
    put16(b, l4 + 2, v.dst_port);
  }
  if (!later_fragment && v.proto == net::kIpProtoIcmp) put16(b, l4 + 2, uint16_t(~sum16(&b[l4], b.size() - l4)));
  put16(b, ip + 10, uint16_t(~sum16(&b[ip], v.ihl * 4u)));
  return b;
}

// An IPv6 packet; ICMPv6 checksums are valid.
struct V6 {
  const char* src = "fd00:1::10";
  const char* dst = "fd00:9::1";
  uint8_t proto = net::kIpProtoUdp;
  uint8_t hop_limit = 64;
  size_t payload = 18;
  uint8_t icmp_type = 128;
  uint16_t src_port = 40000, dst_port = 53;
  int fragment_offset = -1;  // >= 0: a fragment header with this offset (8-octet units)
  bool more_fragments = false;
};

inline uint32_t pseudo6(const uint8_t* ip, uint32_t upper_len, uint8_t next) {
  uint32_t sum = sum16(ip + 8, 32);
  sum += upper_len >> 16;
  sum += upper_len & 0xffff;
  sum += next;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum;
}

inline std::vector<uint8_t> ipv6_frame(const V6& v) {
  Frame f;
  const bool fragment = v.fragment_offset >= 0;
  f.eth(net::kEtherTypeIpv6).ipv6(fragment ? net::kIpProtoFragment : v.proto);
  const size_t ip = f.ip_offset();
  if (fragment) f.frag6(v.proto, uint16_t(v.fragment_offset), v.more_fragments);
  const size_t l4 = f.size();
  bool headers = v.fragment_offset <= 0;
  if (headers && v.proto == net::kIpProtoUdp) f.udp();
  else if (headers && v.proto == net::kIpProtoTcp) f.tcp();
  else if (headers && v.proto == net::kIpProtoIcmpv6) f.icmp(v.icmp_type);
  f.payload(v.payload);
  std::vector<uint8_t> b = f.build();
  b[ip + 7] = v.hop_limit;
  auto s = addr6(v.src), d = addr6(v.dst);
  std::memcpy(&b[ip + 8], s.data(), 16);
  std::memcpy(&b[ip + 24], d.data(), 16);
  if (headers && (v.proto == net::kIpProtoUdp || v.proto == net::kIpProtoTcp)) {
    put16(b, l4, v.src_port);
    put16(b, l4 + 2, v.dst_port);
  }
  if (headers && v.proto == net::kIpProtoIcmpv6) {
    uint32_t sum = pseudo6(&b[ip], uint32_t(b.size() - l4), net::kIpProtoIcmpv6);
    put16(b, l4 + 2, uint16_t(~sum16(&b[l4], b.size() - l4, sum)));
  }
  return b;
}

// Whether the upper-layer checksum of an IPv6 packet (no extension headers) verifies.
// The TCP or UDP checksum of an IPv4 (no options) or IPv6 (no extension headers) frame,
// filled in: conntrack checks it on segments that open or change a flow.
inline void fix_l4_checksum(std::vector<uint8_t>& b, bool v6) {
  const uint8_t* ip = &b[kL3];
  const size_t l4 = kL3 + (v6 ? 40 : 20);
  const uint8_t proto = v6 ? ip[6] : ip[9];
  const auto len = static_cast<uint32_t>(v6 ? get16(ip + 4) : get16(ip + 2) - 20u);
  const size_t at = l4 + (proto == net::kIpProtoTcp ? 16 : 6);
  put16(b, at, 0);
  const uint32_t pseudo = v6 ? pseudo6(ip, len, proto) : sum16(ip + 12, 8) + proto + len;
  uint16_t sum = uint16_t(~sum16(&b[l4], len, pseudo));
  if (sum == 0 && proto == net::kIpProtoUdp) sum = 0xffff;  // 0 means "none" in UDP
  put16(b, at, sum);
}

inline bool icmp6_checksum_ok(const uint8_t* ip) {
  uint32_t len = get16(ip + 4);
  return sum16(ip + 40, len, pseudo6(ip, len, ip[6])) == 0xffff;
}

inline void set_mac(std::vector<uint8_t>& frame, size_t at, const Mac& mac) {
  std::memcpy(&frame.at(at), mac.data(), 6);
}

}  // namespace sluice::test
