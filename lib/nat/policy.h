// The NAT rules as the data plane reads them: compiled from the `nat` section on the
// control thread and published by RCU like the firewall policy (a reload builds a new
// one; a worker takes one snapshot per burst). Rules are looked at only for new flows:
// a flow's translation is in its flow entry from then on.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <rte_ethdev.h>

#include "config/config.h"
#include "flow/flow_key.h"

namespace sluice::nat {

inline constexpr uint16_t kNoSlot = 0xffff;

// What the load balancer's health probes use on Sluice's own addresses: TCP source
// ports and an ICMP echo ident NAT never allocates (lib/runtime/load_balancer.h).
inline constexpr uint16_t kLbProbePortFirst = 65024;
inline constexpr uint16_t kLbProbePortLast = 65535;
inline constexpr uint16_t kLbProbeEchoIdent = 0x51ce;

// An IPv4 prefix in host order, for matching.
struct Prefix4 {
  uint32_t addr = 0;
  uint32_t mask = 0;
  bool contains(uint32_t host) const { return (host & mask) == addr; }
};

struct SnatRule {
  uint16_t id = 0;  // 1-based over snat then dnat rules: the rule counters' index
  std::string name;
  uint64_t in_ports = ~uint64_t(0);   // bit per DPDK port id
  uint64_t out_ports = ~uint64_t(0);
  std::vector<Prefix4> src, dst;
  int protocol = -1;
  bool masquerade = false;
  std::vector<uint32_t> pool;        // addresses, network order
  std::vector<uint16_t> pool_slots;  // their usage slots
  uint16_t port_first = 1024, port_last = 65535;  // host order
  bool eim = false;                  // endpoint-independent mapping and filtering

  bool matches(uint16_t in_port, uint16_t out_port, uint32_t src_host, uint32_t dst_host, uint8_t proto) const;
};

struct DnatRule {
  uint16_t id = 0;
  std::string name;
  uint64_t in_ports = ~uint64_t(0);
  std::vector<Prefix4> src;
  std::vector<uint32_t> dst;  // network order: the written address, or the ingress ports' own
  uint8_t protocol = 6;
  uint16_t port_first = 0, port_last = 0;  // host order
  uint32_t to_address = 0;                 // network order
  uint16_t to_port = 0;                    // host order; 0: the port unchanged
  bool hairpin = true;

  // The translated port (host order) for a matched destination port.
  uint16_t map_port(uint16_t port) const { return to_port ? static_cast<uint16_t>(to_port + (port - port_first)) : port; }
};

// One NPTv6 mapping on one port (RFC 6296).
struct Nptv6Map {
  std::string name;
  uint16_t port_id = 0;
  uint8_t length = 0;  // prefix length, 1..64
  std::array<uint8_t, 16> inside{}, outside{};  // prefix bits, the rest zero
  uint16_t inside_sum = 0, outside_sum = 0;     // one's-complement sums of the prefix words
};

// An address NAT puts on the wire as a source: a pool address, a masquerading port's
// address, a port forward's address (hairpin). Steering sends packets to it to the
// worker that owns its port; allocation skips the ports port forwards use on it.
struct OutsideAddress {
  uint32_t addr = 0;  // network order
  uint16_t slot = kNoSlot;
  bool eim = false;   // its ports are endpoint-independent mappings
  struct Reserved {
    uint8_t protocol;
    uint16_t first, last;  // host order
  };
  std::vector<Reserved> reserved;  // port forwards' ports on this address
  bool is_reserved(uint8_t proto, uint16_t port_host) const {
    for (const auto& r : reserved)
      if (r.protocol == proto && port_host >= r.first && port_host <= r.last) return true;
    return false;
  }
};

// Address usage slots, stable for the process's life so per-worker counters survive
// reloads: the control thread gives each outside address one the first time it sees it.
class AddressRegistry {
 public:
  // kNoSlot when every slot is taken (config validation caps addresses below that).
  uint16_t slot_of(uint32_t addr_net);
  const std::vector<uint32_t>& addresses() const { return addresses_; }  // by slot

 private:
  std::map<uint32_t, uint16_t> slots_;
  std::vector<uint32_t> addresses_;
};

class Policy {
 public:
  using PortIds = std::map<std::string, uint16_t>;
  // Null with `error` set when the rules cannot be compiled (validation catches what
  // it can; this is for what only the running ports know).
  static std::unique_ptr<Policy> build(const config::Config& config, const PortIds& port_ids, unsigned workers,
                                       uint32_t generation, AddressRegistry& registry, std::string& error);

  uint32_t generation() const { return generation_; }
  unsigned workers() const { return workers_; }
  const std::vector<SnatRule>& snat() const { return snat_; }
  const std::vector<DnatRule>& dnat() const { return dnat_; }
  const std::vector<Nptv6Map>& nptv6() const { return nptv6_; }
  bool has_nptv6_on(uint16_t port_id) const { return port_id < 64 && (nptv6_ports_ >> port_id) & 1; }
  size_t rule_count() const { return snat_.size() + dnat_.size(); }
  // The name of rule `id` (1-based, snat then dnat), or "" when out of range.
  const std::string& rule_name(uint16_t id) const;

  // First rule that takes a new connection, or null. Addresses network order, ports
  // host order.
  const DnatRule* match_dnat(uint16_t in_port, uint32_t src, uint32_t dst, uint8_t proto, uint16_t dport) const;
  const SnatRule* match_snat(uint16_t in_port, uint16_t out_port, uint32_t src, uint32_t dst, uint8_t proto) const;

  // A port's address for masquerade (network order) and its slot; 0 when it has none.
  uint32_t port_address(uint16_t port_id) const { return port_id < RTE_MAX_ETHPORTS ? port_address_[port_id] : 0; }
  uint16_t port_address_slot(uint16_t port_id) const { return port_id < RTE_MAX_ETHPORTS ? port_slot_[port_id] : kNoSlot; }
  // The outside address entry for `addr` (network order), or null.
  const OutsideAddress* outside(uint32_t addr) const {
    if (outside_index_.empty()) return nullptr;
    const uint32_t mask = static_cast<uint32_t>(outside_index_.size() - 1);
    for (uint32_t i = hash(addr) & mask;; i = (i + 1) & mask) {
      const int32_t at = outside_index_[i];
      if (at < 0) return nullptr;
      if (outside_[at].addr == addr) return &outside_[at];
    }
  }
  const std::vector<OutsideAddress>& outside_addresses() const { return outside_; }
  // Software steering of a packet whose flow key is `key`, arriving on `in_port`: a key
  // with an outside address (a translated flow's reply, an ICMP error quoting one, an
  // inbound EIM packet) belongs to the worker owning that address's port (`owner`); a
  // key a port forward matches belongs to the owner of the translated key (`hash` is
  // its hash); otherwise the key's own hash decides (kind None).
  struct Steer {
    enum Kind : uint8_t { kNone, kOwner, kHash } kind = kNone;
    uint32_t value = 0;
  };
  Steer steer(const flow::FlowKey4& key, uint16_t in_port) const;

  // Conntrack zone of each port (the reply key of a translated flow is in the egress
  // port's zone) and firewall zone ids (hairpin: same zone both ways).
  uint16_t conntrack_zone(uint16_t port_id) const { return port_id < RTE_MAX_ETHPORTS ? ct_zone_[port_id] : 0; }
  uint16_t zone_id(uint16_t port_id) const { return port_id < RTE_MAX_ETHPORTS ? zone_id_[port_id] : 0; }

 private:
  static uint32_t hash(uint32_t addr) { return (addr * 0x9e3779b1u) >> 7; }
  OutsideAddress& add_outside(uint32_t addr, AddressRegistry& registry);

  uint32_t generation_ = 0;
  unsigned workers_ = 1;
  std::vector<SnatRule> snat_;
  std::vector<DnatRule> dnat_;
  std::vector<Nptv6Map> nptv6_;
  uint64_t nptv6_ports_ = 0;
  std::array<uint32_t, RTE_MAX_ETHPORTS> port_address_{};
  std::array<uint16_t, RTE_MAX_ETHPORTS> port_slot_{};
  std::array<uint16_t, RTE_MAX_ETHPORTS> ct_zone_{};
  std::array<uint16_t, RTE_MAX_ETHPORTS> zone_id_{};
  std::vector<OutsideAddress> outside_;
  std::vector<int32_t> outside_index_;  // open addressing over outside_, power-of-two size
};

// Which of `workers` owns outside port `port_host` of any outside address.
inline unsigned port_owner(uint16_t port_host, unsigned workers) { return workers <= 1 ? 0 : port_host % workers; }

}  // namespace sluice::nat
