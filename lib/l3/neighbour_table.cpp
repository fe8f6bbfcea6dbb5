#include "l3/neighbour_table.h"

#include <atomic>
#include <new>
#include <stdexcept>

#include <rte_hash_crc.h>
#include <rte_malloc.h>

namespace sluice::l3 {

size_t NeighbourKeyHash::operator()(const NeighbourKey& k) const { return rte_hash_crc(&k, sizeof(k), 0); }

const char* state_name(NeighbourState s) {
  switch (s) {
    case NeighbourState::Incomplete: return "incomplete";
    case NeighbourState::Reachable: return "reachable";
    case NeighbourState::Stale: return "stale";
    case NeighbourState::Probe: return "probe";
    case NeighbourState::Static: return "static";
  }
  return "?";
}

namespace {
std::atomic<unsigned> g_serial{0};
}

NeighbourTable::NeighbourTable(const config::NeighbourSettings& settings, Qsbr& qsbr)
    : qsbr_(qsbr), capacity_(settings.capacity) {
  std::string name = "sl_neigh_" + std::to_string(g_serial.fetch_add(1));
  rte_hash_parameters params{};
  params.name = name.c_str();
  params.entries = static_cast<uint32_t>(capacity_);
  params.key_len = sizeof(NeighbourKey);
  params.hash_func = rte_hash_crc;
  params.socket_id = SOCKET_ID_ANY;
  // One writer (control thread), lock-free readers (workers).
  params.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF;
  hash_ = rte_hash_create(&params);
  if (!hash_) throw std::runtime_error("cannot allocate the neighbour table (" + std::to_string(capacity_) + " entries)");
  size_t slots = rte_hash_max_key_id(hash_) + 1;
  slots_ = static_cast<NeighbourSlot*>(rte_zmalloc("sl_neigh_slots", slots * sizeof(NeighbourSlot), RTE_CACHE_LINE_SIZE));
  if (!slots_) {
    rte_hash_free(hash_);
    throw std::runtime_error("cannot allocate the neighbour slots");
  }
}

NeighbourTable::~NeighbourTable() {
  for (auto& entry : entries_)
    for (rte_mbuf* m : entry.second.queue) rte_pktmbuf_free(m);
  rte_hash_free(hash_);
  rte_free(slots_);
}

NeighbourTable::Entry* NeighbourTable::find(const NeighbourKey& key) {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

NeighbourTable::Entry* NeighbourTable::create(const NeighbourKey& key, uint64_t now_ms) {
  if (entries_.size() >= capacity_) return nullptr;
  int32_t position = rte_hash_add_key(hash_, &key);
  if (position < 0) return nullptr;
  slots_[position].mac.store(0, std::memory_order_release);
  slots_[position].used_tsc.store(0, std::memory_order_relaxed);
  Entry& e = entries_[key];
  e.key = key;
  e.position = position;
  e.changed_ms = now_ms;
  return &e;
}

void NeighbourTable::update(Entry& entry, NeighbourState state, const rte_ether_addr& mac, uint64_t now_ms) {
  entry.mac = mac;
  slots_[entry.position].mac.store(mac_word(mac), std::memory_order_release);
  set_state(entry, state, now_ms);
}

void NeighbourTable::forget_mac(Entry& entry, uint64_t now_ms) {
  slots_[entry.position].mac.store(0, std::memory_order_release);
  set_state(entry, NeighbourState::Incomplete, now_ms);
  entry.probes = 0;
}

void NeighbourTable::set_state(Entry& entry, NeighbourState state, uint64_t now_ms) {
  if (state == NeighbourState::Stale) entry.stale_used_tsc = used_tsc(entry);
  if (state != entry.state) entry.probes = 0;
  entry.state = state;
  entry.changed_ms = now_ms;
}

void NeighbourTable::remove(const NeighbourKey& key) { remove(std::vector<NeighbourKey>{key}); }

void NeighbourTable::remove(const std::vector<NeighbourKey>& keys) {
  std::vector<int32_t> positions;
  positions.reserve(keys.size());
  for (const auto& key : keys) {
    auto it = entries_.find(key);
    if (it == entries_.end()) continue;
    int32_t position = rte_hash_del_key(hash_, &key);
    entries_.erase(it);
    if (position >= 0) positions.push_back(position);
  }
  if (positions.empty()) return;
  // A worker may still hold these positions from a lookup: wait it out before reuse.
  qsbr_.synchronize();
  for (int32_t position : positions) {
    slots_[position].mac.store(0, std::memory_order_release);
    rte_hash_free_key_with_position(hash_, position);
  }
}

}  // namespace sluice::l3
