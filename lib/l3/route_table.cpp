#include "l3/route_table.h"

#include <atomic>

#include <rte_errno.h>

namespace sluice::l3 {

namespace {

std::atomic<unsigned> g_table_serial{0};

// DIR-24-8 with 2-byte next hops: 32 MiB for tbl24, 15 bits of group id.
constexpr uint64_t kMaxGroups = (1u << 15) - 1;
constexpr uint32_t kTbl8Groups4 = 1u << 12;
constexpr uint32_t kTbl8Groups6 = 1u << 14;

}  // namespace

RouteTable::~RouteTable() {
  if (fib4_) rte_fib_free(fib4_);
  if (fib6_) rte_fib6_free(fib6_);
}

uint64_t RouteTable::add_group(const std::vector<NextHop>& hops) {
  groups_.push_back(HopGroup{static_cast<uint16_t>(hops_.size()), static_cast<uint16_t>(hops.size())});
  hops_.insert(hops_.end(), hops.begin(), hops.end());
  FastHop fast{};
  if (hops.size() == 1 && hops[0].kind == HopKind::Neighbour && hops[0].neighbour >= 0) {
    const Interface& out = interfaces_[hops[0].port_id];
    fast.port_id = hops[0].port_id;
    fast.mtu = out.mtu;
    fast.neighbour = hops[0].neighbour;
    fast.set_src_mac(out.mac);
    fast.simple = 1;
  }
  fast_.push_back(fast);
  return groups_.size() - 1;
}

std::unique_ptr<RouteTable> RouteTable::build(const config::Config& config, const PortIds& port_ids,
                                              const PortMacs& macs, std::string& error, const PinGateway& pin) {
  std::unique_ptr<RouteTable> table(new RouteTable());
  table->groups_.push_back(HopGroup{0, 0});  // group 0: no route
  table->fast_.push_back(FastHop{});

  // Everything to install, most specific last wins nothing: rte_fib keeps one next hop
  // per prefix, so later entries for the same prefix replace earlier ones. Static routes
  // go first; connected subnets and own addresses override them.
  struct Pending {
    net::IpPrefix prefix;
    std::vector<NextHop> hops;
  };
  std::vector<Pending> pending;
  for (const auto& route : config.routes) {
    Pending p{route.prefix, {}};
    for (const auto& hop : route.nexthops)
      p.hops.push_back(NextHop{HopKind::Neighbour, port_ids.at(hop.port), hop.via,
                               hop.via.is_set() && pin ? pin(port_ids.at(hop.port), hop.via) : -1});
    pending.push_back(std::move(p));
  }
  for (const auto& port : config.ports) {
    if (!port.routed()) continue;
    uint16_t id = port_ids.at(port.name);
    Interface& itf = table->interfaces_[id];
    itf.routed = true;
    itf.mtu = static_cast<uint16_t>(port.mtu);
    itf.mac = macs[id];
    itf.mac_word = load_mac(itf.mac.addr_bytes);
    for (const auto* list : {&port.ipv4, &port.ipv6}) {
      for (const auto& a : *list) {
        itf.addresses.push_back(a);
        if (a.addr.family == 4 && itf.ipv4 == 0) std::memcpy(&itf.ipv4, a.addr.bytes.data(), 4);
        if (a.addr.family == 6 && !itf.has_ipv6) {
          itf.ipv6 = a.addr.bytes;
          itf.has_ipv6 = true;
        }
        pending.push_back(Pending{a.network(), {NextHop{HopKind::Neighbour, id, {}}}});
        uint8_t host_len = a.addr.family == 4 ? 32 : 128;
        if (a.addr.family == 4 && a.len <= 30) {
          net::IpAddr broadcast = net::IpAddr::v4(a.addr.v4_host() | ((1u << (32 - a.len)) - 1));
          pending.push_back(Pending{{broadcast, 32}, {NextHop{HopKind::Broadcast, id, {}}}});
        }
        pending.push_back(Pending{{a.addr, host_len}, {NextHop{HopKind::Local, id, {}}}});
      }
    }
  }
  // NAT's pool and port-forward addresses: Sluice's own on the ports that carry them.
  for (const auto& proxy : config.nat.proxy) {
    auto it = port_ids.find(proxy.port);
    if (it == port_ids.end()) continue;
    Interface& itf = table->interfaces_[it->second];
    if (!itf.routed) continue;
    itf.proxy.push_back(proxy.address);
    pending.push_back(Pending{{proxy.address, 32}, {NextHop{HopKind::Local, it->second, {}}}});
  }
  if (pending.size() + 1 > kMaxGroups) {
    error = "routes: " + std::to_string(pending.size()) + " routes and addresses exceed the table's " +
            std::to_string(kMaxGroups) + " next-hop groups";
    return nullptr;
  }

  unsigned count4 = 0, count6 = 0;
  for (const auto& p : pending) (p.prefix.addr.family == 4 ? count4 : count6)++;
  unsigned serial = g_table_serial.fetch_add(1);
  if (count4) {
    rte_fib_conf conf{};
    conf.type = RTE_FIB_DIR24_8;
    conf.default_nh = kNoRoute;
    conf.max_routes = static_cast<int>(count4 + 16);
    conf.dir24_8.nh_sz = RTE_FIB_DIR24_8_2B;
    conf.dir24_8.num_tbl8 = kTbl8Groups4;
    std::string name = "sl_fib4_" + std::to_string(serial);
    table->fib4_ = rte_fib_create(name.c_str(), SOCKET_ID_ANY, &conf);
    if (!table->fib4_) {
      error = "routes: cannot allocate the IPv4 FIB (" + std::string(rte_strerror(rte_errno)) +
              "; it needs about 34 MiB of DPDK memory, see eal.memory_mb)";
      return nullptr;
    }
  }
  if (count6) {
    rte_fib6_conf conf{};
    conf.type = RTE_FIB6_TRIE;
    conf.default_nh = kNoRoute;
    conf.max_routes = static_cast<int>(count6 + 16);
    conf.trie.nh_sz = RTE_FIB6_TRIE_2B;
    conf.trie.num_tbl8 = kTbl8Groups6;
    std::string name = "sl_fib6_" + std::to_string(serial);
    table->fib6_ = rte_fib6_create(name.c_str(), SOCKET_ID_ANY, &conf);
    if (!table->fib6_) {
      error = "routes: cannot allocate the IPv6 FIB (" + std::string(rte_strerror(rte_errno)) +
              "; it needs about 40 MiB of DPDK memory, see eal.memory_mb)";
      return nullptr;
    }
  }

  for (auto& p : pending) {
    uint64_t group = table->add_group(p.hops);
    int rc = p.prefix.addr.family == 4
                 ? rte_fib_add(table->fib4_, p.prefix.addr.v4_host(), p.prefix.len, group)
                 : rte_fib6_add(table->fib6_, p.prefix.addr.bytes.data(), p.prefix.len, group);
    if (rc != 0) {
      error = "routes: cannot add " + p.prefix.str() + " (" + rte_strerror(-rc) + ")";
      return nullptr;
    }
    // The listing keeps the winner for each prefix.
    std::erase_if(table->entries_, [&](const Entry& e) { return e.prefix == p.prefix; });
    table->entries_.push_back(Entry{p.prefix, std::move(p.hops)});
  }
  return table;
}

const NextHop* RouteTable::lookup(const net::IpAddr& dst, uint32_t flow_hash) const {
  uint64_t group = kNoRoute;
  if (dst.family == 4) {
    uint32_t addr = dst.v4_host();
    lookup4(&addr, &group, 1);
  } else {
    uint8_t addr[1][16];
    std::memcpy(addr[0], dst.bytes.data(), 16);
    lookup6(addr, &group, 1);
  }
  if (group == kNoRoute) return nullptr;
  return &pick(group, flow_hash);
}

}  // namespace sluice::l3
