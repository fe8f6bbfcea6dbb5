// The routing table the workers read: rte_fib (DIR-24-8) and rte_fib6 (trie) mapping
// a destination to a next-hop group, the groups' next hops, and the routed ports'
// own addresses and MACs. Built whole by the control thread from a Config and
// published through RCU (l3/rcu.h): workers never see a table being changed.
#pragma once

#include <array>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <rte_ether.h>
#include <rte_fib.h>
#include <rte_fib6.h>

#include "config/config.h"
#include "net/ip_addr.h"

namespace sluice::l3 {

enum class HopKind : uint8_t {
  Local = 1,  // one of Sluice's own addresses
  Broadcast,  // a connected IPv4 subnet's broadcast address: not forwarded
  Neighbour,  // out of `port` to `gateway`, or to the destination itself when unset
};

struct NextHop {
  HopKind kind;
  uint16_t port_id;
  net::IpAddr gateway;     // unset: the destination is on the link (connected route)
  int32_t neighbour = -1;  // gateway's pinned neighbour-table position: no lookup per packet
};

struct HopGroup {
  uint16_t first;
  uint16_t count;
};

// A group the fast path can forward with one 16-byte load: one next hop, a gateway
// whose neighbour entry is pinned. Everything else (ECMP, on-link, local, broadcast)
// has `simple` 0 and takes the general lookup.
struct FastHop {
  uint16_t port_id;
  uint16_t mtu;
  int32_t neighbour;
  uint16_t src_mac_head;  // the egress MAC's first two bytes, as they sit in the frame
  uint8_t simple;
  uint8_t pad;
  uint32_t src_mac_tail;  // its last four

  void set_src_mac(const rte_ether_addr& mac) {
    std::memcpy(&src_mac_head, mac.addr_bytes, 2);
    std::memcpy(&src_mac_tail, mac.addr_bytes + 2, 4);
  }
};
static_assert(sizeof(FastHop) == 16);

// A routed port as the fast path needs it.
struct Interface {
  bool routed = false;
  uint16_t mtu = 0;
  rte_ether_addr mac{};
  uint64_t mac_word = 0;        // the MAC's 6 bytes, as load_mac() reads a frame's
  uint32_t ipv4 = 0;            // first IPv4 address, network order (ICMP errors' source); 0: none
  std::array<uint8_t, 16> ipv6{};  // first IPv6 address (ICMPv6 errors' source)
  bool has_ipv6 = false;
  std::vector<net::IpPrefix> addresses;  // all of them (control thread: ARP/ND targets)
  std::vector<net::IpAddr> proxy;        // NAT's outside addresses answered for here (ARP, echo)
};

inline constexpr uint64_t kNoRoute = 0;

// A frame's 6-byte MAC as one word, for a compare without memcmp.
inline uint64_t load_mac(const uint8_t* mac) {
  uint32_t hi;
  uint16_t lo;
  std::memcpy(&hi, mac, 4);
  std::memcpy(&lo, mac + 4, 2);
  return uint64_t(hi) | uint64_t(lo) << 32;
}

class RouteTable {
 public:
  using PortIds = std::map<std::string, uint16_t>;
  using PortMacs = std::array<rte_ether_addr, RTE_MAX_ETHPORTS>;
  // Gives a gateway's neighbour-table position, pinned for the table's lifetime (-1: none).
  using PinGateway = std::function<int32_t(uint16_t port_id, const net::IpAddr& gateway)>;

  // Null and `error` set when DPDK cannot allocate the tables.
  static std::unique_ptr<RouteTable> build(const config::Config& config, const PortIds& port_ids,
                                           const PortMacs& macs, std::string& error,
                                           const PinGateway& pin = nullptr);
  ~RouteTable();
  RouteTable(const RouteTable&) = delete;
  RouteTable& operator=(const RouteTable&) = delete;

  // Fast path. Addresses: IPv4 host order (rte_fib's convention), IPv6 network order.
  void lookup4(uint32_t* addrs, uint64_t* groups, unsigned n) const {
    if (fib4_) rte_fib_lookup_bulk(fib4_, addrs, groups, static_cast<int>(n));
    else for (unsigned i = 0; i < n; ++i) groups[i] = kNoRoute;
  }
  void lookup6(uint8_t (*addrs)[16], uint64_t* groups, unsigned n) const {
    if (fib6_) rte_fib6_lookup_bulk(fib6_, addrs, groups, static_cast<int>(n));
    else for (unsigned i = 0; i < n; ++i) groups[i] = kNoRoute;
  }
  // Picks a group member by a symmetric flow hash: a flow keeps its path both ways.
  const NextHop& pick(uint64_t group, uint32_t flow_hash) const {
    const HopGroup& g = groups_[group];
    return hops_[g.first + (g.count == 1 ? 0 : flow_hash % g.count)];
  }
  bool multipath(uint64_t group) const { return groups_[group].count > 1; }
  const FastHop& fast_hop(uint64_t group) const { return fast_[group]; }
  const Interface& interface(uint16_t port_id) const { return interfaces_[port_id]; }

  // Control thread: single lookups (slow path), and the listing for /routes.
  const NextHop* lookup(const net::IpAddr& dst, uint32_t flow_hash) const;
  struct Entry {
    net::IpPrefix prefix;
    std::vector<NextHop> hops;
  };
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  RouteTable() = default;
  uint64_t add_group(const std::vector<NextHop>& hops);

  rte_fib* fib4_ = nullptr;
  rte_fib6* fib6_ = nullptr;
  std::vector<NextHop> hops_;
  std::vector<HopGroup> groups_;
  std::vector<FastHop> fast_;  // by group, like groups_
  std::array<Interface, RTE_MAX_ETHPORTS> interfaces_{};
  std::vector<Entry> entries_;
};

}  // namespace sluice::l3
