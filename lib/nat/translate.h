// Rewriting packets for NAT: IPv4 addresses and ports with incremental checksums
// (RFC 1624), ICMP errors with their quoted packet (RFC 5508), and NPTv6's
// checksum-neutral prefix translation (RFC 6296). Pure functions over packet bytes, so
// the unit tests check them against full recomputation.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

#include "flow/nat_entry.h"
#include "net/checksum.h"
#include "nat/policy.h"

namespace sluice::nat {

// Which end of a packet a rewrite changes.
enum class Side : uint8_t { Source, Destination };

// What a translation needs of one IPv4 packet: its IP header and, when it has one in
// the first segment, its L4 header (`l4` null for a later fragment or a protocol
// without ports).
struct Ipv4Packet {
  uint8_t* ip = nullptr;
  uint8_t* l4 = nullptr;
  uint32_t l4_available = 0;  // contiguous bytes from l4 (at least the L4 header's fixed part)
  uint8_t proto = 0;
};

// The address and "port" (as the flow key has it: TCP/UDP port, an ICMP query's
// identifier on the querier's side) a packet travelling in `dir` gets for `side`.
struct Endpoint {
  uint32_t addr;
  uint16_t port;
};
inline Endpoint target(const flow::NatExt4& x, unsigned dir, Side side) {
  // A packet from the opener becomes the reply tuple reversed; from the responder, the
  // original reversed.
  const flow::NatTuple4& t = dir == 0 ? x.reply : x.orig;
  return side == Side::Destination ? Endpoint{t.src, t.sport} : Endpoint{t.dst, t.dport};
}
inline bool rewrites(const flow::NatExt4& x, unsigned dir, Side side) {
  return side == Side::Destination ? flow::nat_rewrites_dst(x, dir) : flow::nat_rewrites_src(x, dir);
}

// Checksums a rewrite leaves alone, for the egress port's TX offload to fill in.
enum LeaveChecksum : unsigned { kLeaveIp = 1u << 0, kLeaveL4 = 1u << 1 };

// Which end of an ICMP query or answer carries the identifier (the querier's).
inline bool icmp_id_on(uint8_t type, Side side) {
  const bool query = type == 8 || type == 13 || type == 15 || type == 17;
  const bool answer = type == 0 || type == 14 || type == 16 || type == 18;
  return side == Side::Source ? query : answer;
}

// Sets one end of a packet to `to`, updating the IPv4 header checksum and the TCP/UDP
// checksum (a UDP checksum of zero stays zero) or, for ICMP queries and answers, the
// identifier (when `side` is the querier's) and the ICMP checksum; those in `leave` not.
// Inline with the end fixed at compile time: it runs for every translated packet.
template <Side kSide>
inline void rewrite(const Ipv4Packet& p, Endpoint to, unsigned leave = 0) {
  constexpr uint32_t kAddressAt = kSide == Side::Source ? 12 : 16, kPortAt = kSide == Side::Source ? 0 : 2;
  constexpr uint32_t kIpChecksum = 10, kTcpChecksum = 16, kUdpChecksum = 6, kIcmpChecksum = 2, kIcmpId = 4;
  uint8_t* ip = p.ip;
  const uint32_t old_addr = net::load32(ip + kAddressAt);
  uint32_t addr_delta = 0;
  // An unchanged field adds nothing: summing ~x + x would turn a checksum of 0xffff into 0.
  if (old_addr != to.addr) {
    addr_delta = net::csum_delta32(old_addr, to.addr);
    net::store32(ip + kAddressAt, to.addr);
    if (!(leave & kLeaveIp)) net::store16(ip + kIpChecksum, net::csum_apply(net::load16(ip + kIpChecksum), addr_delta));
  }
  uint8_t* l4 = p.l4;
  if (!l4) return;
  const uint32_t avail = p.l4_available;
  if (p.proto == 6 || p.proto == 17) [[likely]] {
    if (avail < 4) return;
    const uint16_t old_port = net::load16(l4 + kPortAt);
    const uint32_t delta = addr_delta + (old_port != to.port ? net::csum_delta16(old_port, to.port) : 0);
    net::store16(l4 + kPortAt, to.port);
    if (delta == 0 || (leave & kLeaveL4)) return;
    if (p.proto == 6) {
      if (avail >= kTcpChecksum + 2)
        net::store16(l4 + kTcpChecksum, net::csum_apply(net::load16(l4 + kTcpChecksum), delta));
    } else if (avail >= kUdpChecksum + 2) {
      const uint16_t sum = net::load16(l4 + kUdpChecksum);
      // No checksum (zero) stays none; a computed zero is sent as all ones (RFC 768).
      if (sum != 0) net::store16(l4 + kUdpChecksum, net::udp_checksum_nonzero(net::csum_apply(sum, delta)));
    }
  } else if (p.proto == 1) {
    // No pseudo-header: only the identifier, on the querier's end, is covered.
    if (avail < 8 || !icmp_id_on(l4[0], kSide)) return;
    const uint16_t old_id = net::load16(l4 + kIcmpId);
    if (old_id == to.port) return;
    net::store16(l4 + kIcmpId, to.port);
    net::store16(l4 + kIcmpChecksum, net::csum_apply(net::load16(l4 + kIcmpChecksum), net::csum_delta16(old_id, to.port)));
  }
}
inline void rewrite(const Ipv4Packet& p, Side side, Endpoint to, unsigned leave = 0) {
  if (side == Side::Source) rewrite<Side::Source>(p, to, leave);
  else rewrite<Side::Destination>(p, to, leave);
}

// An ICMP error (`p.l4` its ICMP header) that quotes a packet of a translated flow:
// `side` of the outer header becomes `to.addr`, and the quoted packet's other side (the
// same endpoint: the error travels against the packet it quotes) becomes `to`, with the
// quoted IP and L4 checksums and the ICMP checksum over the message made right again.
// `m`/`icmp_offset`/`icmp_length` locate the message for the ICMP checksum. Returns
// false when the quoted header is not there to rewrite (the packet is left as it was).
bool rewrite_error(rte_mbuf* m, const Ipv4Packet& p, uint32_t icmp_offset, uint32_t icmp_length, Side side,
                   Endpoint to);

// Only the quoted packet of an ICMP error (`p.l4` its ICMP header): its `side` becomes
// `to`, its checksums and the ICMP checksum made right; the outer header is left alone.
// For an error Sluice itself sends about a packet NAT had already rewritten, so that it
// quotes the packet as its sender sent it.
bool rewrite_quoted(rte_mbuf* m, const Ipv4Packet& p, uint32_t icmp_offset, uint32_t icmp_length, Side side,
                    Endpoint to);

// NPTv6: translates `addr` (16 bytes, network order) from `map`'s inside prefix to its
// outside one (`outward`) or back. False when the address cannot be mapped (the word
// to adjust is 0xffff).
bool npt_translate(uint8_t* addr, const Nptv6Map& map, bool outward);
// Whether `addr` lies in `map`'s inside (outward) or outside prefix.
bool npt_matches(const uint8_t* addr, const Nptv6Map& map, bool outward);

}  // namespace sluice::nat
