// The load balancer's services as the data plane reads them: compiled from the
// `services` section and the health checks' verdicts on the control thread, published
// by RCU (a reload or a backend going up or down builds a new one). Workers read it
// for new connections only (which backend) and to learn whether an established
// connection's backend is still in its service: a connection's backend is in its flow
// entry, never looked up again.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "lb/maglev.h"

namespace sluice::lb {

// Stable slots: a service's (by name) and a backend's (by service and identity) keep
// theirs for the process's life, so per-worker counters survive reloads and a flow's
// entry can name its backend across table versions.
inline constexpr uint16_t kMaxServiceSlots = config::kMaxServices;
inline constexpr uint16_t kMaxBackendSlots = 16384;
inline constexpr uint16_t kNoSlot = 0xffff;

class SlotRegistry {
 public:
  // kNoSlot when every slot is taken.
  uint16_t service(const std::string& name);
  uint16_t backend(const std::string& service, const std::string& id);
  size_t backends_used() const { return backends_.size(); }

 private:
  std::map<std::string, uint16_t> services_;
  std::map<std::pair<std::string, std::string>, uint16_t> backends_;
};

// A backend's identity: its name, else "address:port" (what Maglev hashes).
std::string backend_id(const config::LbBackend& b, uint16_t service_port);

struct Backend {
  uint32_t addr = 0;    // network order (an IPv4 service's)
  uint16_t port = 0;    // network order; 0: the client's port (an "all" service)
  uint16_t slot = kNoSlot;
  uint32_t weight = 1;
  bool up = true;       // the health checks' verdict (always up without checks)
  uint32_t tunnel_src = 0;  // ipip: the outer header's source, network order (0: no route toward it)
  // An IPv6 service's (ipip only): the backend's address and the outer header's source
  // (network order; tunnel6 false when no route leads to the backend).
  std::array<uint8_t, 16> addr6{};
  std::array<uint8_t, 16> tunnel_src6{};
  bool tunnel6 = false;
};

struct Service {
  uint16_t slot = kNoSlot;
  std::string name;
  config::LbMode mode = config::LbMode::FullNat;
  config::LbScheduler scheduler = config::LbScheduler::Maglev;
  uint8_t protocol = 6;
  uint8_t family = 4;  // the VIP's; an IPv6 service (ipip only) has vip6 and its backends addr6
  uint32_t vip = 0;    // network order
  std::array<uint8_t, 16> vip6{};
  uint16_t port = 0;   // network order; 0: every port
  bool drop_on_removed = false;
  std::vector<Backend> backends;  // config order; "backend index" below is an index here
  MaglevTable maglev;              // entries are backend indices (up, weight > 0)
  std::vector<uint16_t> eligible;  // the small-pool schedulers' candidates: up, weight > 0
  std::vector<uint32_t> local;     // full-NAT source addresses, network order
  uint16_t port_first = 1024, port_last = 65535;  // full-NAT source ports, host order
};

class ServiceTable {
 public:
  // Whether backend `slot` is up (health checks); every backend is up without them.
  using UpFn = std::function<bool(uint16_t slot)>;
  // An ipip backend's tunnel source: the address of Sluice's port toward `backend`, of
  // the backend's family; unset (family 0) when no route leads there.
  using SourceFn = std::function<net::IpAddr(const net::IpAddr& backend)>;
  // Null with `error` set when a table cannot be built (slots exhausted).
  static std::unique_ptr<ServiceTable> build(const std::vector<config::LbService>& services, SlotRegistry& registry,
                                             const UpFn& up, std::string& error, const SourceFn& tunnel_source = nullptr);

  bool empty() const { return services_.empty(); }
  const std::vector<Service>& services() const { return services_; }
  const Service& service(uint16_t index) const { return services_[index]; }

  // The service a new connection to `vip` (network order) is for: its index, or -1.
  // `dport` network order.
  int find(uint32_t vip, uint8_t proto, uint16_t dport) const {
    if (!mask_) return -1;
    int s = probe(vip, proto, dport);
    return s >= 0 ? s : probe(vip, proto, 0);
  }
  // The same for an IPv6 VIP (16 bytes, network order).
  int find6(const uint8_t* vip, uint8_t proto, uint16_t dport) const {
    if (!mask6_) return -1;
    int s = probe6(vip, proto, dport);
    return s >= 0 ? s : probe6(vip, proto, 0);
  }
  bool has_ipv6() const { return mask6_ != 0; }
  // Whether `addr` (16 bytes) is an IPv6 service's VIP, whatever its protocol and port
  // (a linear scan, as is_vip's: for fragments only).
  bool is_vip6(const uint8_t* addr) const;
  // Whether `addr` (network order) is a VIP of any service (control side; a linear scan).
  bool is_vip(uint32_t addr) const;
  // The service of `slot`, or -1 when this table has none (removed by a reload).
  int service_of_slot(uint16_t slot) const { return slot < by_slot_.size() ? by_slot_[slot] : -1; }
  // Whether backend `slot` is in its service in this table (drain and drop: removed ones are not).
  bool has_backend_slot(uint16_t slot) const { return slot < backend_present_.size() && backend_present_[slot]; }
  // A DNAT service's backend by its address and port (network order), for a reply met
  // mid-stream (tcp_loose): the service and backend index, or false.
  bool has_dnat_backends() const { return !dnat_backends_.empty(); }
  bool find_dnat_backend(uint32_t addr, uint16_t port, uint8_t proto, uint16_t& service, uint16_t& backend) const {
    if (dnat_backends_.empty()) return false;
    auto it = dnat_backends_.find(backend_key(addr, port, proto));
    if (it == dnat_backends_.end()) return false;
    service = static_cast<uint16_t>(it->second >> 16);
    backend = static_cast<uint16_t>(it->second);
    return true;
  }
  // Whether any service drops its removed backends' connections (else none is checked).
  bool drops_removed() const { return drops_removed_; }
  // Which publication this is, modulo 8 (set by the publisher): a backend index planned
  // against one table is not read against the next (plan_code below).
  uint8_t tag() const { return tag_; }
  void set_tag(uint8_t tag) { tag_ = tag & 7; }

 private:
  int probe(uint32_t vip, uint8_t proto, uint16_t port) const {
    for (uint32_t i = hash(vip, proto, port) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = index_[i];
      if (s.service < 0) return -1;
      if (s.vip == vip && s.proto == proto && s.port == port) return s.service;
    }
  }
  static uint32_t hash(uint32_t vip, uint8_t proto, uint16_t port) {
    return static_cast<uint32_t>(((uint64_t(vip) << 24 | uint64_t(port) << 8 | proto) * 0x9e3779b97f4a7c15ull) >> 40);
  }
  int probe6(const uint8_t* vip, uint8_t proto, uint16_t port) const {
    for (uint32_t i = hash6(vip, proto, port) & mask6_;; i = (i + 1) & mask6_) {
      const int32_t service = index6_[i];
      if (service < 0) return -1;
      const Service& s = services_[service];
      if (s.protocol == proto && s.port == port && std::memcmp(s.vip6.data(), vip, 16) == 0) return service;
    }
  }
  static uint32_t hash6(const uint8_t* vip, uint8_t proto, uint16_t port) {
    uint64_t w[2];
    std::memcpy(w, vip, 16);
    return static_cast<uint32_t>(((w[0] ^ w[1] ^ (uint64_t(port) << 8 | proto)) * 0x9e3779b97f4a7c15ull) >> 40);
  }

  struct Slot {
    uint32_t vip = 0;
    uint16_t port = 0;
    uint8_t proto = 0;
    int32_t service = -1;
  };
  std::vector<Service> services_;
  std::vector<Slot> index_;  // open addressing, power-of-two size, at most half full
  uint32_t mask_ = 0;
  std::vector<int32_t> index6_;  // IPv6 services (index into services_; -1 free), the same way
  uint32_t mask6_ = 0;
  std::vector<int16_t> by_slot_;
  std::vector<uint8_t> backend_present_;
  bool drops_removed_ = false;
  uint8_t tag_ = 0;
  static uint64_t backend_key(uint32_t addr, uint16_t port, uint8_t proto) {
    return uint64_t(addr) << 32 | uint64_t(port) << 8 | proto;
  }
  std::unordered_map<uint64_t, uint32_t> dnat_backends_;  // (service << 16 | backend); only unambiguous ones
};

// A backend index (kNoBackend: none up) conntrack planned against the table tagged
// `tag`, as PacketMeta::aux carries it to the lb stage: index + 1 in the low 13 bits
// (services have at most 4096 backends), the tag above.
inline uint16_t plan_code(uint16_t backend, uint8_t tag) {
  return static_cast<uint16_t>(((backend + 1u) & 0x1fffu) | unsigned(tag & 7) << 13);
}
// The planned backend if `code` was planned against the table tagged `tag`; false when
// another table was in force then (a publication between conntrack and the lb stage:
// its index may name another backend now), and the caller picks again.
inline bool planned_backend(uint16_t code, uint8_t tag, uint16_t& backend) {
  if ((code >> 13) != (tag & 7)) return false;
  const uint16_t index = code & 0x1fff;
  backend = index ? static_cast<uint16_t>(index - 1) : kNoBackend;
  return true;
}

// A connection's hash for Maglev: a fixed function of its 5-tuple (as the client sent
// it), the same on every Sluice so that another box picks the same backend.
// The addresses are mixed (into `h`) before the ports join: a client whose address and
// port step together (a NAT pool, a test generator) must not cancel out.
inline uint32_t finish_flow_hash(uint64_t h, uint16_t sport, uint16_t dport, uint8_t proto) {
  h ^= uint64_t(sport) << 24 | uint64_t(dport) << 8 | proto;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return static_cast<uint32_t>(h);
}

inline uint32_t flow_hash(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint8_t proto) {
  uint64_t h = (uint64_t(src) << 32 | dst) * 0x9e3779b97f4a7c15ull;
  h ^= h >> 29;
  return finish_flow_hash(h, sport, dport, proto);
}

// The same for an IPv6 connection (16-byte addresses, network order).
inline uint32_t flow_hash6(const uint8_t* src, const uint8_t* dst, uint16_t sport, uint16_t dport, uint8_t proto) {
  uint64_t w[4];
  std::memcpy(w, src, 16);
  std::memcpy(w + 2, dst, 16);
  uint64_t h = 0;
  for (uint64_t word : w) {
    h = (h ^ word) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
  }
  return finish_flow_hash(h, sport, dport, proto);
}

}  // namespace sluice::lb
