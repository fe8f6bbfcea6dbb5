// The packets of the load balancer's active health checks, which Sluice sends itself
// through its DPDK ports: a TCP SYN (answered by a SYN-ACK, a RST or an ICMP
// unreachable), the RST that releases the backend's half-open connection after its
// SYN-ACK, and an ICMP/ICMPv6 echo request. The state machine they feed is health.h;
// each probe carries a token (the SYN's sequence number, the echo's ident and sequence)
// that parse_probe_reply() reads back out of the answer.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

#include "flow/tcp_tracker.h"
#include "l3/icmp.h"
#include "net/headers.h"
#include "net/ip_addr.h"

namespace sluice::lb {

inline constexpr uint16_t kProbeMss4 = 1460;  // 1500 - 20 - 20
inline constexpr uint16_t kProbeMss6 = 1440;  // 1500 - 40 - 20
inline constexpr uint16_t kProbeWindow = 64240;  // Linux's initial window: 44 x 1460
inline constexpr uint8_t kProbeTtl = 64;
inline constexpr uint16_t kProbeEchoPayload = 8;

// Frames start with a 14-byte Ethernet header whose MAC addresses are zero (the router
// fills them when it resolves the next hop), then the IP packet with IPv4 TTL 64 and DF,
// or IPv6 hop limit 64, and every checksum computed in software. IPv4 or IPv6 by the
// addresses' family; null when the pool is empty, or the families differ or are unset.
// Ports are in host order.

// A SYN with an MSS option (kProbeMss4/6) and window kProbeWindow; `seq` is its token.
rte_mbuf* build_tcp_syn(rte_mempool* pool, const net::IpAddr& src, const net::IpAddr& dst, uint16_t sport,
                        uint16_t dport, uint32_t seq);
// A bare RST (no ACK) with sequence `seq`: the answer to a SYN-ACK (seq = its ack number,
// ProbeReply::ack_for_rst), so the backend frees its half-open connection.
rte_mbuf* build_tcp_rst(rte_mempool* pool, const net::IpAddr& src, const net::IpAddr& dst, uint16_t sport,
                        uint16_t dport, uint32_t seq);
// An echo request (ICMP for IPv4, ICMPv6 for IPv6) with kProbeEchoPayload bytes of
// payload; its token is (ident << 16) | seq.
rte_mbuf* build_icmp_echo(rte_mempool* pool, const net::IpAddr& src, const net::IpAddr& dst, uint16_t ident,
                          uint16_t seq);

// What is ours: the source ports Sluice's SYNs leave from, the ident of its echoes.
struct ProbeMatch {
  uint16_t port_first = 0, port_last = 0;  // host order, inclusive
  uint16_t echo_ident = 0;

  bool has_port(uint16_t port) const { return port >= port_first && port <= port_last; }
};

struct ProbeReply {
  enum class Kind : uint8_t { None, SynAck, Rst, EchoReply, Unreachable, Stray };
  Kind kind = Kind::None;
  net::IpAddr peer;   // the backend (for Unreachable: the quoted probe's destination)
  net::IpAddr local;  // our address the probe left from
  uint16_t peer_port = 0, local_port = 0;  // host order; 0 for echoes
  // SynAck/Rst: their ack number minus 1 (our SYN's seq); EchoReply: (ident << 16) | seq;
  // Unreachable: the quoted probe's token (TCP seq, or ident and seq of an echo).
  uint32_t token = 0;
  uint32_t ack_for_rst = 0;  // SynAck, Stray: the sequence number of the RST answering it
};

// Whether the IP packet at `l3_offset` (in the first segment) answers one of our probes:
// a SYN-ACK, or a RST with ACK (one without carries no token, and RFC 9293 3.10.7.3 has
// a SYN-SENT socket ignore it), or any other segment with ACK (Stray: no probe waits for
// it, it gets a RST), to a port in the range; an echo reply with our ident; a
// destination unreachable (ICMP type 3, ICMPv6 type 1) quoting one of our SYNs or echoes.
// Reads nothing past the first segment's data or the IP length; IPv4 non-first
// fragments and IPv6 extension headers never match. `out` is written only on true.
bool parse_probe_reply(const rte_mbuf* m, uint16_t l3_offset, const ProbeMatch& match, ProbeReply& out);

// The per-packet pre-check for the data path, from what the parse stage found (`l4` may
// be null, `l4_proto` is the protocol after any IPv6 extension headers): true for every
// packet parse_probe_reply() accepts and few others (any ICMP unreachable is a
// candidate; its quote is left to the full check).
inline bool probe_reply_candidate(const uint8_t* l3, uint16_t l3_len, bool ipv6, uint8_t l4_proto, const uint8_t* l4,
                                  uint16_t l4_len, const ProbeMatch& match) {
  if (l4 == nullptr) return false;
  if (ipv6) {
    // Replies carry no extension headers.
    if (l3_len < sizeof(net::Ipv6Header) || reinterpret_cast<const net::Ipv6Header*>(l3)->next_header != l4_proto)
      return false;
  } else if (l3_len < sizeof(net::Ipv4Header) ||
             reinterpret_cast<const net::Ipv4Header*>(l3)->fragment_offset() != 0) {
    return false;
  }
  if (l4_proto == net::kIpProtoTcp) {
    if (l4_len < sizeof(net::TcpHeader)) return false;
    const auto* tcp = reinterpret_cast<const net::TcpHeader*>(l4);
    const uint8_t flags = tcp->flags;
    return (flags & flow::kTcpAck) && match.has_port(tcp->dst_port.value());
  }
  const uint8_t icmp_proto = ipv6 ? net::kIpProtoIcmpv6 : net::kIpProtoIcmp;
  if (l4_proto != icmp_proto || l4_len < sizeof(net::IcmpHeader)) return false;
  const auto* icmp = reinterpret_cast<const net::IcmpHeader*>(l4);
  const uint8_t echo_reply = ipv6 ? l3::icmp6::kEchoReply : l3::icmp4::kEchoReply;
  const uint8_t unreachable = ipv6 ? l3::icmp6::kUnreachable : l3::icmp4::kUnreachable;
  if (icmp->type == unreachable) return true;
  return icmp->type == echo_reply && (icmp->rest.value() >> 16) == match.echo_ident;
}

}  // namespace sluice::lb
