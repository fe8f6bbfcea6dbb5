#include "nat/policy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include <rte_byteorder.h>

#include "net/headers.h"

namespace sluice::nat {

namespace {

uint32_t net_of(const net::IpAddr& a) {
  uint32_t v;
  std::memcpy(&v, a.bytes.data(), 4);
  return v;
}

Prefix4 prefix4(const net::IpPrefix& p) {
  Prefix4 out;
  out.mask = p.len == 0 ? 0 : ~uint32_t(0) << (32 - p.len);
  out.addr = ntohl(net_of(p.addr)) & out.mask;
  return out;
}

bool any_contains(const std::vector<Prefix4>& list, uint32_t host) {
  if (list.empty()) return true;
  for (const auto& p : list)
    if (p.contains(host)) return true;
  return false;
}

// Bits of the ports named, directly or by zone; of every port that runs nat when
// neither list names any (as config validation reads a rule).
uint64_t port_mask(const config::Config& config, const Policy::PortIds& port_ids, const std::vector<std::string>& ports,
                   const std::vector<std::string>& zones) {
  uint64_t mask = 0;
  for (const auto& pc : config.ports) {
    auto it = port_ids.find(pc.name);
    if (it == port_ids.end() || it->second >= 64) continue;
    const bool named = std::find(ports.begin(), ports.end(), pc.name) != ports.end() ||
                       std::find(zones.begin(), zones.end(), pc.zone) != zones.end();
    if (named || (ports.empty() && zones.empty() && pc.translated())) mask |= uint64_t(1) << it->second;
  }
  return mask;
}

uint16_t sum_words(const std::array<uint8_t, 16>& a) {
  uint32_t sum = 0;
  for (unsigned i = 0; i < 16; i += 2) sum += uint32_t(a[i]) << 8 | a[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

std::array<uint8_t, 16> prefix_bits(const net::IpPrefix& p) {
  std::array<uint8_t, 16> out{};
  for (unsigned bit = 0; bit < p.len; ++bit)
    if (p.addr.bytes[bit / 8] & (0x80 >> (bit % 8))) out[bit / 8] |= static_cast<uint8_t>(0x80 >> (bit % 8));
  return out;
}

}  // namespace

bool SnatRule::matches(uint16_t in_port, uint16_t out_port, uint32_t src_host, uint32_t dst_host, uint8_t proto) const {
  if (protocol >= 0 && proto != protocol) return false;
  if (in_port < 64 && !((in_ports >> in_port) & 1)) return false;
  if (out_port < 64 && !((out_ports >> out_port) & 1)) return false;
  return any_contains(src, src_host) && any_contains(dst, dst_host);
}

uint16_t AddressRegistry::slot_of(uint32_t addr_net) {
  auto it = slots_.find(addr_net);
  if (it != slots_.end()) return it->second;
  if (addresses_.size() >= config::kMaxNatAddresses) return kNoSlot;
  const uint16_t slot = static_cast<uint16_t>(addresses_.size());
  slots_.emplace(addr_net, slot);
  addresses_.push_back(addr_net);
  return slot;
}

OutsideAddress& Policy::add_outside(uint32_t addr, AddressRegistry& registry) {
  for (auto& o : outside_)
    if (o.addr == addr) return o;
  OutsideAddress o;
  o.addr = addr;
  o.slot = registry.slot_of(addr);
  outside_.push_back(o);
  return outside_.back();
}

const std::string& Policy::rule_name(uint16_t id) const {
  static const std::string none;
  if (id == 0) return none;
  if (id <= snat_.size()) return snat_[id - 1].name;
  if (id - snat_.size() <= dnat_.size()) return dnat_[id - 1 - snat_.size()].name;
  return none;
}

std::unique_ptr<Policy> Policy::build(const config::Config& config, const PortIds& port_ids, unsigned workers,
                                      uint32_t generation, AddressRegistry& registry, std::string& error) {
  auto policy = std::unique_ptr<Policy>(new Policy());
  Policy& p = *policy;
  p.generation_ = generation;
  p.workers_ = workers ? workers : 1;
  p.port_slot_.fill(kNoSlot);
  const config::NatConfig& nat = config.nat;

  // Zone ids as the firewall numbers them: by first appearance in the port list.
  std::map<std::string, uint16_t> zone_ids;
  for (const auto& pc : config.ports) {
    auto it = port_ids.find(pc.name);
    if (it == port_ids.end() || it->second >= RTE_MAX_ETHPORTS) continue;
    const uint16_t id = it->second;
    auto [z, fresh] = zone_ids.emplace(pc.zone, static_cast<uint16_t>(zone_ids.size()));
    (void)fresh;
    p.zone_id_[id] = z->second;
    p.ct_zone_[id] = static_cast<uint16_t>(pc.conntrack_zone);
    if (!pc.ipv4.empty()) p.port_address_[id] = net_of(pc.ipv4.front().addr);
  }

  uint16_t next_id = 1;
  for (const auto& r : nat.snat) {
    SnatRule rule;
    rule.id = next_id++;
    rule.name = r.name;
    rule.in_ports = port_mask(config, port_ids, r.in_ports, r.from_zones);
    rule.out_ports = port_mask(config, port_ids, r.out_ports, r.to_zones);
    for (const auto& s : r.src) rule.src.push_back(prefix4(s));
    for (const auto& d : r.dst) rule.dst.push_back(prefix4(d));
    rule.protocol = r.protocol;
    rule.masquerade = r.masquerade;
    rule.port_first = r.port_first;
    rule.port_last = r.port_last;
    rule.eim = r.mapping == config::NatMapping::EndpointIndependent;
    for (const auto& prefix : r.pool) {
      const Prefix4 range = prefix4(prefix);
      const uint64_t count = uint64_t(1) << (32 - prefix.len);
      for (uint64_t k = 0; k < count; ++k) {
        const uint32_t addr = htonl(range.addr + static_cast<uint32_t>(k));
        OutsideAddress& o = p.add_outside(addr, registry);
        if (o.slot == kNoSlot) {
          error = "nat: more than " + std::to_string(config::kMaxNatAddresses) + " outside addresses";
          return nullptr;
        }
        o.eim = rule.eim;
        rule.pool.push_back(addr);
        rule.pool_slots.push_back(o.slot);
      }
    }
    if (rule.masquerade) {
      for (const auto& pc : config.ports) {
        auto it = port_ids.find(pc.name);
        if (it == port_ids.end() || it->second >= 64 || !((rule.out_ports >> it->second) & 1) || pc.ipv4.empty())
          continue;
        OutsideAddress& o = p.add_outside(net_of(pc.ipv4.front().addr), registry);
        o.eim = o.eim || rule.eim;
        p.port_slot_[it->second] = o.slot;
      }
    }
    p.snat_.push_back(std::move(rule));
  }
  for (const auto& r : nat.dnat) {
    DnatRule rule;
    rule.id = next_id++;
    rule.name = r.name;
    rule.in_ports = port_mask(config, port_ids, r.in_ports, r.from_zones);
    for (const auto& s : r.src) rule.src.push_back(prefix4(s));
    rule.protocol = static_cast<uint8_t>(r.protocol);
    rule.port_first = r.port_first;
    rule.port_last = r.port_last;
    rule.to_address = net_of(r.to_address);
    rule.to_port = r.to_port;
    rule.hairpin = r.hairpin;
    if (r.dst.is_set()) {
      rule.dst.push_back(net_of(r.dst));
    } else {
      for (const auto& pc : config.ports) {
        auto it = port_ids.find(pc.name);
        if (it == port_ids.end() || it->second >= 64 || !((rule.in_ports >> it->second) & 1)) continue;
        for (const auto& a : pc.ipv4) rule.dst.push_back(net_of(a.addr));
      }
    }
    // Its addresses are outside addresses too: a hairpinned flow's source, and ports
    // the allocator must leave to the forward.
    for (uint32_t addr : rule.dst) {
      OutsideAddress& o = p.add_outside(addr, registry);
      if (o.slot == kNoSlot) {
        error = "nat: more than " + std::to_string(config::kMaxNatAddresses) + " outside addresses";
        return nullptr;
      }
      o.reserved.push_back({rule.protocol, rule.port_first, rule.port_last});
    }
    p.dnat_.push_back(std::move(rule));
  }
  for (const auto& r : nat.nptv6) {
    auto it = port_ids.find(r.port);
    if (it == port_ids.end()) {
      error = "nat.nptv6: port '" + r.port + "' is not running";
      return nullptr;
    }
    Nptv6Map map;
    map.name = r.name;
    map.port_id = it->second;
    map.length = static_cast<uint8_t>(r.inside.len);
    map.inside = prefix_bits(r.inside);
    map.outside = prefix_bits(r.outside);
    map.inside_sum = sum_words(map.inside);
    map.outside_sum = sum_words(map.outside);
    if (map.port_id < 64) p.nptv6_ports_ |= uint64_t(1) << map.port_id;
    p.nptv6_.push_back(map);
  }

  // The load balancer's full-NAT sources are outside addresses too: their ports are
  // allocated like a pool's, and steering sends replies to the port's owner.
  for (const auto& service : config.services) {
    if (service.mode != config::LbMode::FullNat) continue;
    for (const auto& prefix : service.local_addresses) {
      if (prefix.addr.family != 4) continue;
      const Prefix4 range = prefix4(prefix);
      const uint64_t count = uint64_t(1) << (32 - prefix.len);
      for (uint64_t k = 0; k < count; ++k)
        if (p.add_outside(htonl(range.addr + static_cast<uint32_t>(k)), registry).slot == kNoSlot) {
          error = "services: more than " + std::to_string(config::kMaxNatAddresses) +
                  " outside addresses with NAT's";
          return nullptr;
        }
    }
  }

  // The load balancer's health probes leave from the ports' own addresses on these TCP
  // ports and with this echo ident (lib/runtime/load_balancer.h): NAT leaves them alone.
  if (!config.services.empty())
    for (auto& o : p.outside_) {
      o.reserved.push_back({6, kLbProbePortFirst, kLbProbePortLast});
      o.reserved.push_back({1, kLbProbeEchoIdent, kLbProbeEchoIdent});
    }

  if (!p.outside_.empty()) {
    const size_t size = std::bit_ceil(p.outside_.size() * 2);
    p.outside_index_.assign(size, -1);
    for (size_t k = 0; k < p.outside_.size(); ++k) {
      const uint32_t mask = static_cast<uint32_t>(size - 1);
      uint32_t i = hash(p.outside_[k].addr) & mask;
      while (p.outside_index_[i] >= 0) i = (i + 1) & mask;
      p.outside_index_[i] = static_cast<int32_t>(k);
    }
  }
  return policy;
}

const DnatRule* Policy::match_dnat(uint16_t in_port, uint32_t src, uint32_t dst, uint8_t proto, uint16_t dport) const {
  const uint32_t src_host = ntohl(src);
  for (const auto& r : dnat_) {
    if (r.protocol != proto || dport < r.port_first || dport > r.port_last) continue;
    if (in_port < 64 && !((r.in_ports >> in_port) & 1)) continue;
    bool to_it = false;
    for (uint32_t a : r.dst) to_it = to_it || a == dst;
    if (!to_it || !any_contains(r.src, src_host)) continue;
    return &r;
  }
  return nullptr;
}

const SnatRule* Policy::match_snat(uint16_t in_port, uint16_t out_port, uint32_t src, uint32_t dst,
                                   uint8_t proto) const {
  const uint32_t src_host = ntohl(src), dst_host = ntohl(dst);
  for (const auto& r : snat_)
    if (r.matches(in_port, out_port, src_host, dst_host, proto)) return &r;
  return nullptr;
}

Policy::Steer Policy::steer(const flow::FlowKey4& key, uint16_t in_port) const {
  Steer out;
  if (outside_.empty() || workers_ <= 1) return out;
  if (key.proto != net::kIpProtoTcp && key.proto != net::kIpProtoUdp && key.proto != net::kIpProtoIcmp) {
    // Without ports only the address is translated, and a reply names no port to find
    // its owner by: every such flow lives on worker 0 (port 0's owner), both ways.
    out.kind = Steer::kOwner;
    out.value = 0;
    return out;
  }
  for (unsigned s = 0; s < 2; ++s) {
    const OutsideAddress* o = outside(key.addr[s]);
    if (!o) continue;
    const uint16_t port = rte_be_to_cpu_16(key.port[s]);
    if (!o->reserved.empty() && o->is_reserved(key.proto, port)) {
      // A port forward's address and port: the flow's owner is the translated key's.
      if (const DnatRule* r = match_dnat(in_port, key.addr[s ^ 1], key.addr[s], key.proto, port)) {
        flow::FlowKey4 translated;
        flow::make_key4(translated, key.addr[s ^ 1], r->to_address, key.port[s ^ 1],
                        rte_cpu_to_be_16(r->map_port(port)), key.proto, key.zone);
        out.kind = Steer::kHash;
        out.value = translated.hash();
        return out;
      }
    }
    out.kind = Steer::kOwner;
    out.value = port_owner(port, workers_);
    return out;
  }
  return out;
}

}  // namespace sluice::nat
