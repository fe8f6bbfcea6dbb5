// Shared by the NAT tests: IPv4 datagrams with every checksum computed in full (the
// reference the incremental updates are checked against), ICMP errors quoting them,
// fragments, and the full recomputations themselves (rte_ipv4_cksum,
// rte_ipv4_udptcp_cksum, the raw sum for ICMP).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include <rte_ip.h>
#include <rte_mbuf.h>

#include "l3_support.h"
#include "net/checksum.h"
#include "net/headers.h"

namespace sluice::test {

inline constexpr size_t kEthLen = 14;
inline constexpr uint32_t kIpChecksumAt = 10, kIpSrcAt = 12, kIpDstAt = 16;

// One IPv4 datagram. Addresses network order, ports host order (ICMP: the identifier in
// `sport`).
struct Datagram4 {
  uint32_t src = 0, dst = 0;
  uint8_t proto = net::kIpProtoUdp;
  uint16_t sport = 40000, dport = 53;
  uint8_t icmp_type = 8, icmp_code = 0;
  uint16_t icmp_seq = 1;
  uint8_t ihl = 5;  // options past 5 words: no-ops
  uint8_t tos = 0, ttl = 64;
  uint16_t id = 0x1234;
  uint16_t fragment = 0;      // flags and offset as on the wire
  bool l4_header = true;      // false: the payload follows the IP header (a later fragment)
  bool udp_checksum = true;   // false: UDP sent without one (0)
  std::vector<uint8_t> payload;
};

inline uint16_t l4_header_len(uint8_t proto) {
  return proto == net::kIpProtoTcp ? 20 : 8;  // UDP, ICMP
}

// The IPv4 header checksum recomputed over the header as it is now.
inline uint16_t ipv4_checksum_full(const uint8_t* ip) {
  const size_t len = (ip[0] & 0x0f) * 4u;
  std::vector<uint8_t> copy(ip, ip + len);
  copy[kIpChecksumAt] = copy[kIpChecksumAt + 1] = 0;
  return rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(copy.data()));
}

// The L4 checksum recomputed over the whole datagram (total length from the header):
// TCP/UDP with the pseudo-header, ICMP without. As stored (network order).
inline uint16_t l4_checksum_full(const uint8_t* ip) {
  const size_t header = (ip[0] & 0x0f) * 4u, total = get16(ip + 2);
  std::vector<uint8_t> copy(ip, ip + total);
  const uint8_t proto = copy[9];
  const size_t at = header + (proto == net::kIpProtoTcp ? 16 : proto == net::kIpProtoUdp ? 6 : 2);
  copy[at] = copy[at + 1] = 0;
  if (proto == net::kIpProtoIcmp) return static_cast<uint16_t>(~rte_raw_cksum(&copy[header], total - header));
  return rte_ipv4_udptcp_cksum(reinterpret_cast<const rte_ipv4_hdr*>(copy.data()), &copy[header]);
}

// Where a datagram's L4 checksum sits, from the start of its IP header.
inline size_t l4_checksum_at(const uint8_t* ip) {
  const size_t header = (ip[0] & 0x0f) * 4u;
  switch (ip[9]) {
    case net::kIpProtoTcp: return header + 16;
    case net::kIpProtoUdp: return header + 6;
    default: return header + 2;
  }
}
inline uint16_t stored16(const uint8_t* p) { return net::load16(p); }

// Makes a datagram's checksums right again (after a test changed it by hand); a UDP
// checksum of 0 (none) stays 0 unless `udp_none_stays`.
inline void refresh_checksums(std::vector<uint8_t>& d, bool l4 = true, bool udp_none_stays = true) {
  uint8_t* ip = d.data();
  net::store16(ip + kIpChecksumAt, 0);
  net::store16(ip + kIpChecksumAt, ipv4_checksum_full(ip));
  if (!l4) return;
  const size_t at = l4_checksum_at(ip);
  if (udp_none_stays && ip[9] == net::kIpProtoUdp && stored16(ip + at) == 0) return;
  net::store16(ip + at, l4_checksum_full(ip));
}

// The datagram, IP header first, every checksum computed in full.
inline std::vector<uint8_t> ipv4_datagram(const Datagram4& g) {
  const size_t header = g.ihl * 4u;
  const size_t l4 = g.l4_header ? l4_header_len(g.proto) : 0;
  std::vector<uint8_t> d(header + l4 + g.payload.size(), 0);
  d[0] = static_cast<uint8_t>(0x40 | g.ihl);
  d[1] = g.tos;
  put16(d, 2, static_cast<uint16_t>(d.size()));
  put16(d, 4, g.id);
  put16(d, 6, g.fragment);
  d[8] = g.ttl;
  d[9] = g.proto;
  net::store32(&d[kIpSrcAt], g.src);
  net::store32(&d[kIpDstAt], g.dst);
  for (size_t i = 20; i < header; ++i) d[i] = 1;  // NOP options
  uint8_t* p = &d[header];
  if (l4 && g.proto == net::kIpProtoIcmp) {
    p[0] = g.icmp_type;
    p[1] = g.icmp_code;
    put16(d, header + 4, g.sport);
    put16(d, header + 6, g.icmp_seq);
  } else if (l4) {
    put16(d, header, g.sport);
    put16(d, header + 2, g.dport);
    if (g.proto == net::kIpProtoUdp) {
      put16(d, header + 4, static_cast<uint16_t>(8 + g.payload.size()));
    } else {
      put16(d, header + 4, 0x1000);  // sequence number
      put16(d, header + 8, 0x2000);  // acknowledgement
      d[header + 12] = 5 << 4;
      d[header + 13] = 0x18;  // PSH ACK
      put16(d, header + 14, 0xffff);
    }
  }
  if (!g.payload.empty()) std::memcpy(&d[header + l4], g.payload.data(), g.payload.size());
  if (l4) {
    refresh_checksums(d, true, false);
    if (g.proto == net::kIpProtoUdp && !g.udp_checksum) net::store16(&d[header + 6], 0);
  } else {
    refresh_checksums(d, false);
  }
  return d;
}

// A payload whose every byte is known: seed + 7 i.
inline std::vector<uint8_t> pattern(size_t n, uint8_t seed = 0) {
  std::vector<uint8_t> p(n);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(seed + i * 7);
  return p;
}

// A TCP segment as a host sends it (addresses in network order, window 64240, no
// options, pattern() payload), every checksum computed in full.
inline std::vector<uint8_t> tcp_datagram4(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, uint8_t flags,
                                          uint32_t seq, uint32_t ack, size_t payload) {
  Datagram4 g;
  g.src = src;
  g.dst = dst;
  g.proto = net::kIpProtoTcp;
  g.sport = sport;
  g.dport = dport;
  g.payload = pattern(payload);
  std::vector<uint8_t> d = ipv4_datagram(g);
  net::store32(&d[20 + 4], rte_cpu_to_be_32(seq));
  net::store32(&d[20 + 8], rte_cpu_to_be_32(ack));
  d[20 + 13] = flags;
  put16(d, 20 + 14, 64240);
  refresh_checksums(d);
  return d;
}

// An Ethernet frame around a datagram (IPv4 at kEthLen).
inline std::vector<uint8_t> eth_frame(const std::vector<uint8_t>& datagram) {
  Frame f;
  f.eth(net::kEtherTypeIpv4);
  std::vector<uint8_t> out = f.raw();
  out.insert(out.end(), datagram.begin(), datagram.end());
  return out;
}

// An ICMP error from `src` to `dst` quoting the first `quoted_bytes` of `quoted` (its IP
// header and as much after it as routers quote); `word` the second ICMP word (the next-hop
// MTU of a fragmentation-needed error in its low half). Checksums computed in full.
inline std::vector<uint8_t> icmp_error(uint32_t src, uint32_t dst, uint8_t type, uint8_t code, uint32_t word,
                                       const std::vector<uint8_t>& quoted, size_t quoted_bytes) {
  Datagram4 g;
  g.src = src;
  g.dst = dst;
  g.proto = net::kIpProtoIcmp;
  g.l4_header = false;
  g.payload.assign(8, 0);
  g.payload[0] = type;
  g.payload[1] = code;
  g.payload[4] = static_cast<uint8_t>(word >> 24);
  g.payload[5] = static_cast<uint8_t>(word >> 16);
  g.payload[6] = static_cast<uint8_t>(word >> 8);
  g.payload[7] = static_cast<uint8_t>(word);
  g.payload.insert(g.payload.end(), quoted.begin(), quoted.begin() + static_cast<long>(quoted_bytes));
  std::vector<uint8_t> d = ipv4_datagram(g);
  net::store16(&d[20 + 2], l4_checksum_full(d.data()));
  return d;
}

// An IPv4 fragment of a datagram whose payload (everything after the IP header) is
// `payload`: bytes [offset, offset + n), MF as `more`. Ethernet in front.
inline std::vector<uint8_t> fragment_frame(uint32_t src, uint32_t dst, uint16_t id, uint8_t proto,
                                           const std::vector<uint8_t>& payload, size_t offset, size_t n, bool more) {
  Datagram4 g;
  g.src = src;
  g.dst = dst;
  g.proto = proto;
  g.id = id;
  g.l4_header = false;
  g.fragment = static_cast<uint16_t>((more ? 0x2000 : 0) | (offset / 8));
  g.payload.assign(payload.begin() + static_cast<long>(offset), payload.begin() + static_cast<long>(offset + n));
  return eth_frame(ipv4_datagram(g));
}

// Every byte of a chain from `offset` on.
inline std::vector<uint8_t> chain_bytes(const rte_mbuf* m, uint32_t offset = 0) {
  std::vector<uint8_t> out;
  for (const rte_mbuf* seg = m; seg; seg = seg->next) {
    const uint8_t* data = rte_pktmbuf_mtod(seg, const uint8_t*);
    const uint32_t len = rte_pktmbuf_data_len(seg);
    if (offset >= len) {
      offset -= len;
      continue;
    }
    out.insert(out.end(), data + offset, data + len);
    offset = 0;
  }
  return out;
}

}  // namespace sluice::test
