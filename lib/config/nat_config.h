// The `nat` section: source NAT (masquerade, pools), destination NAT (port forwards),
// NPTv6, reassembly limits and the event log. Read and validated by nat.cpp; the rules
// are compiled into lib/nat's NatPolicy.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "net/ip_addr.h"

namespace sluice::config {

struct PortRange;  // config.h

// RFC 4787: endpoint-dependent mapping (a new outside port per destination, Linux
// masquerade's behaviour) or endpoint-independent mapping and filtering ("full cone").
enum class NatMapping { EndpointDependent, EndpointIndependent };

// Source NAT: matches new IPv4 connections, translates their source to the egress
// port's address (masquerade) or to an address of a pool, and a port of `ports`.
struct SnatRule {
  std::string name;                      // "snat<N>" when not written
  std::vector<std::string> from_zones;   // ingress zone
  std::vector<std::string> to_zones;     // egress zone
  std::vector<std::string> in_ports;     // ingress port names
  std::vector<std::string> out_ports;    // egress port names
  std::vector<net::IpPrefix> src, dst;   // IPv4; empty: any
  int protocol = -1;                     // IP protocol number, -1: any
  bool masquerade = false;               // the egress port's first IPv4 address
  std::vector<net::IpPrefix> pool;       // otherwise: these addresses (a prefix is all its addresses)
  uint16_t port_first = 1024;            // outside ports (ICMP identifiers) to allocate from
  uint16_t port_last = 65535;
  NatMapping mapping = NatMapping::EndpointDependent;
};

// Destination NAT (a port forward): new connections to `dst` (or, unset, to an address of
// the ingress port) on `protocol` and a port in [port_first, port_last] go to
// `to_address`, port `to_port + (port - port_first)` (`to_port` 0: the port unchanged).
struct DnatRule {
  std::string name;                     // "dnat<N>" when not written
  std::vector<std::string> from_zones;  // ingress zone
  std::vector<std::string> in_ports;    // ingress port names
  std::vector<net::IpPrefix> src;       // who may use it (IPv4); empty: anyone
  net::IpAddr dst;                      // unset: the ingress port's own IPv4 addresses
  int protocol = 6;                     // 6 (tcp) or 17 (udp)
  uint16_t port_first = 0;
  uint16_t port_last = 0;
  net::IpAddr to_address;
  uint16_t to_port = 0;
  bool hairpin = true;  // reached from the port it forwards to: source translated too, so replies come back
};

// NPTv6 (RFC 6296): stateless, checksum-neutral translation between an inside and an
// outside prefix of the same length on one port: sources leaving `port` in `inside`
// become `outside`, destinations arriving on `port` in `outside` become `inside`.
struct Nptv6Rule {
  std::string name;  // "nptv6<N>" when not written
  std::string port;
  net::IpPrefix inside;
  net::IpPrefix outside;
};

// Per-worker IPv4 reassembly before translation (a later fragment has no ports).
struct NatFragments {
  unsigned max_datagrams = 256;   // datagrams being reassembled at once, per worker
  unsigned max_fragments = 16;    // fragments per datagram
  unsigned timeout_ms = 30000;    // an incomplete datagram is dropped after this (Linux ipfrag_time)
};

// An address Sluice answers ARP for (and echo requests to) though it is not a port
// address: a pool address on the ports its rule sends through, a port forward's
// address on the ports it listens on. Resolved from the rules.
struct NatProxyAddress {
  std::string port;
  net::IpAddr address;
  friend bool operator==(const NatProxyAddress&, const NatProxyAddress&) = default;
};

struct NatConfig {
  bool enabled = false;        // the section is present
  unsigned capacity = 65536;   // translated (IPv4) flows per worker lcore, memory reserved at start
  std::vector<SnatRule> snat;
  std::vector<DnatRule> dnat;
  std::vector<Nptv6Rule> nptv6;
  NatFragments fragments;
  std::string log_file;        // mapping events appended here; empty: no event log
  std::vector<NatProxyAddress> proxy;  // resolved
};

inline constexpr unsigned kMaxNatRules = 1024;       // snat + dnat rules
inline constexpr unsigned kMaxNatAddresses = 4096;   // distinct outside addresses over all pools

}  // namespace sluice::config
