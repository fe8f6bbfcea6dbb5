#include "lb/service_table.h"

#include <arpa/inet.h>

#include <cstring>

namespace sluice::lb {

uint16_t SlotRegistry::service(const std::string& name) {
  auto it = services_.find(name);
  if (it != services_.end()) return it->second;
  if (services_.size() >= kMaxServiceSlots) return kNoSlot;
  const auto slot = static_cast<uint16_t>(services_.size());
  services_.emplace(name, slot);
  return slot;
}

uint16_t SlotRegistry::backend(const std::string& service, const std::string& id) {
  auto key = std::make_pair(service, id);
  auto it = backends_.find(key);
  if (it != backends_.end()) return it->second;
  if (backends_.size() >= kMaxBackendSlots) return kNoSlot;
  const auto slot = static_cast<uint16_t>(backends_.size());
  backends_.emplace(std::move(key), slot);
  return slot;
}

std::string backend_id(const config::LbBackend& b, uint16_t service_port) {
  if (!b.name.empty()) return b.name;
  return b.address.str() + ":" + std::to_string(b.port ? b.port : service_port);
}

std::unique_ptr<ServiceTable> ServiceTable::build(const std::vector<config::LbService>& services,
                                                  SlotRegistry& registry, const UpFn& up, std::string& error,
                                                  const SourceFn& tunnel_source) {
  auto table = std::unique_ptr<ServiceTable>(new ServiceTable());
  table->by_slot_.assign(kMaxServiceSlots, -1);
  table->backend_present_.assign(kMaxBackendSlots, 0);
  for (const auto& cs : services) {
    if (cs.vip.family == 6 && cs.mode != config::LbMode::Ipip) {
      error = "service '" + cs.name + "': an IPv6 service is ipip only";
      return nullptr;
    }
    Service s;
    s.slot = registry.service(cs.name);
    if (s.slot == kNoSlot) {
      error = "service '" + cs.name + "': no service slot left (at most " + std::to_string(kMaxServiceSlots) +
              " service names in one process's life: restart Sluice)";
      return nullptr;
    }
    s.name = cs.name;
    s.mode = cs.mode;
    s.scheduler = cs.scheduler;
    s.protocol = static_cast<uint8_t>(cs.protocol);
    s.family = cs.vip.family;
    if (s.family == 6) s.vip6 = cs.vip.bytes;
    else s.vip = htonl(cs.vip.v4_host());
    s.port = htons(cs.port);
    s.drop_on_removed = cs.on_backend_removed == config::LbRemoval::Drop;
    table->drops_removed_ = table->drops_removed_ || s.drop_on_removed;
    s.port_first = cs.port_first;
    s.port_last = cs.port_last;
    for (const auto& p : cs.local_addresses) {
      // A prefix is every address in it; its network and broadcast too, like a pool's.
      const uint32_t first = p.addr.v4_host() & (p.len ? ~uint32_t(0) << (32 - p.len) : 0);
      const uint64_t count = uint64_t(1) << (32 - p.len);
      for (uint64_t k = 0; k < count; ++k) s.local.push_back(htonl(static_cast<uint32_t>(first + k)));
    }
    std::vector<MaglevBackend> maglev;
    for (const auto& cb : cs.backends) {
      Backend b;
      if (s.family == 6) b.addr6 = cb.address.bytes;
      else b.addr = htonl(cb.address.v4_host());
      b.port = htons(cb.port);
      b.weight = cb.weight;
      const std::string id = backend_id(cb, cs.port);
      b.slot = registry.backend(cs.name, id);
      if (b.slot == kNoSlot) {
        error = "service '" + cs.name + "': no backend slot left (at most " + std::to_string(kMaxBackendSlots) +
                " backends in one process's life: restart Sluice)";
        return nullptr;
      }
      b.up = up ? up(b.slot) : true;
      if (s.mode == config::LbMode::Ipip && tunnel_source) {
        const net::IpAddr src = tunnel_source(cb.address);
        if (s.family == 6 && src.family == 6) {
          b.tunnel_src6 = src.bytes;
          b.tunnel6 = true;
        } else if (s.family == 4 && src.family == 4) {
          b.tunnel_src = htonl(src.v4_host());
        }
      }
      table->backend_present_[b.slot] = 1;
      const bool takes = b.up && b.weight > 0;
      if (takes && s.scheduler != config::LbScheduler::Maglev)
        s.eligible.push_back(static_cast<uint16_t>(s.backends.size()));
      maglev.push_back(MaglevBackend{id, takes ? b.weight : 0});
      s.backends.push_back(b);
    }
    if (s.scheduler == config::LbScheduler::Maglev && !s.maglev.build(maglev, cs.table_size, error)) {
      error = "service '" + cs.name + "': " + error;
      return nullptr;
    }
    // A DNAT service's backends with their own port, for replies met mid-stream: a
    // backend shared by two such services is ambiguous and left out.
    if (s.mode == config::LbMode::Dnat && s.scheduler == config::LbScheduler::Maglev && s.port)
      for (size_t k = 0; k < s.backends.size(); ++k) {
        const Backend& b = s.backends[k];
        const uint64_t key = backend_key(b.addr, b.port ? b.port : s.port, s.protocol);
        const uint32_t value = uint32_t(table->services_.size()) << 16 | static_cast<uint32_t>(k);
        auto [it, fresh] = table->dnat_backends_.emplace(key, value);
        if (!fresh) it->second = 0xffffffffu;  // ambiguous
      }
    table->by_slot_[s.slot] = static_cast<int16_t>(table->services_.size());
    table->services_.push_back(std::move(s));
  }
  std::erase_if(table->dnat_backends_, [](const auto& kv) { return kv.second == 0xffffffffu; });
  if (!table->services_.empty()) {
    uint32_t size = 8;
    while (size < table->services_.size() * 2) size <<= 1;
    table->index_.assign(size, Slot{});
    table->mask_ = size - 1;
    size_t v6 = 0;
    for (size_t i = 0; i < table->services_.size(); ++i) {
      const Service& s = table->services_[i];
      if (s.family == 6) {
        ++v6;
        continue;
      }
      uint32_t at = hash(s.vip, s.protocol, s.port) & table->mask_;
      while (table->index_[at].service >= 0) at = (at + 1) & table->mask_;
      table->index_[at] = Slot{s.vip, s.port, s.protocol, static_cast<int32_t>(i)};
    }
    if (v6) {
      uint32_t size6 = 8;
      while (size6 < v6 * 2) size6 <<= 1;
      table->index6_.assign(size6, -1);
      table->mask6_ = size6 - 1;
      for (size_t i = 0; i < table->services_.size(); ++i) {
        const Service& s = table->services_[i];
        if (s.family != 6) continue;
        uint32_t at = hash6(s.vip6.data(), s.protocol, s.port) & table->mask6_;
        while (table->index6_[at] >= 0) at = (at + 1) & table->mask6_;
        table->index6_[at] = static_cast<int32_t>(i);
      }
    }
  }
  return table;
}

bool ServiceTable::is_vip(uint32_t addr) const {
  for (const auto& s : services_)
    if (s.family == 4 && s.vip == addr) return true;
  return false;
}

bool ServiceTable::is_vip6(const uint8_t* addr) const {
  for (const auto& s : services_)
    if (s.family == 6 && std::memcmp(s.vip6.data(), addr, 16) == 0) return true;
  return false;
}

}  // namespace sluice::lb
