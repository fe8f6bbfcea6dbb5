// ARP and IPv6 neighbour cache. Workers look MACs up in bursts and never write it
// (except a rate-limited "used" stamp); the control thread is its single writer.
// The index is an rte_hash in lock-free read/write mode; each entry's MAC lives in one
// 64-bit word written atomically, so a reader sees either the old or the new MAC.
// Deleted keys are recycled only after an RCU grace period (l3/rcu.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <rte_ether.h>
#include <rte_hash.h>
#include <rte_mbuf.h>

#include "config/config.h"
#include "l3/rcu.h"
#include "net/ip_addr.h"

namespace sluice::l3 {

struct NeighbourKey {
  uint8_t addr[16];  // IPv4 in the first 4 bytes, network order; the rest zero
  uint16_t port_id;
  uint8_t family;
  uint8_t zero;

  static NeighbourKey v4(uint16_t port, uint32_t network_order) {
    NeighbourKey k{};
    std::memcpy(k.addr, &network_order, 4);
    k.port_id = port;
    k.family = 4;
    return k;
  }
  static NeighbourKey v6(uint16_t port, const uint8_t* network_order) {
    NeighbourKey k{};
    std::memcpy(k.addr, network_order, 16);
    k.port_id = port;
    k.family = 6;
    return k;
  }
  static NeighbourKey of(uint16_t port, const net::IpAddr& a) {
    NeighbourKey k{};
    std::memcpy(k.addr, a.bytes.data(), a.family == 4 ? 4 : 16);
    k.port_id = port;
    k.family = a.family;
    return k;
  }
  net::IpAddr address() const {
    net::IpAddr a;
    a.family = family;
    std::memcpy(a.bytes.data(), addr, family == 4 ? 4 : 16);
    return a;
  }
  bool operator==(const NeighbourKey& o) const { return std::memcmp(this, &o, sizeof(*this)) == 0; }
};
static_assert(sizeof(NeighbourKey) == 20);

struct NeighbourKeyHash {
  size_t operator()(const NeighbourKey& k) const;
};

enum class NeighbourState : uint8_t { Incomplete, Reachable, Stale, Probe, Static };
const char* state_name(NeighbourState s);

// What a worker reads: bit 63 set when the MAC (low 48 bits) may be used.
inline constexpr uint64_t kMacValid = 1ull << 63;

inline uint64_t mac_word(const rte_ether_addr& mac) {
  uint64_t w = 0;
  std::memcpy(&w, mac.addr_bytes, 6);
  return w | kMacValid;
}
inline void write_mac(uint64_t word, rte_ether_addr& out) { std::memcpy(out.addr_bytes, &word, 6); }

struct alignas(16) NeighbourSlot {
  std::atomic<uint64_t> mac{0};
  std::atomic<uint64_t> used_tsc{0};  // refreshed by workers at most once a second
};

class NeighbourTable {
 public:
  NeighbourTable(const config::NeighbourSettings& settings, Qsbr& qsbr);
  ~NeighbourTable();
  NeighbourTable(const NeighbourTable&) = delete;
  NeighbourTable& operator=(const NeighbourTable&) = delete;

  // Fast path: positions[i] < 0 when absent.
  void lookup_bulk(const NeighbourKey** keys, unsigned n, int32_t* positions) const {
    rte_hash_lookup_bulk(hash_, reinterpret_cast<const void**>(keys), n, positions);
  }
  uint64_t mac(int32_t position) const { return slots_[position].mac.load(std::memory_order_acquire); }
  void touch(int32_t position, uint64_t now_tsc, uint64_t hz) const {
    auto& used = slots_[position].used_tsc;
    if (now_tsc - used.load(std::memory_order_relaxed) > hz) used.store(now_tsc, std::memory_order_relaxed);
  }

  // ---- control thread only ----
  struct Entry {
    NeighbourKey key;
    int32_t position = -1;
    NeighbourState state = NeighbourState::Incomplete;
    rte_ether_addr mac{};
    uint64_t changed_ms = 0;     // last state change
    uint64_t next_probe_ms = 0;  // Incomplete / Probe: when to (re)send
    uint64_t stale_used_tsc = 0; // used stamp when the entry went stale
    unsigned probes = 0;
    // A route's gateway: its position is compiled into the route table, so the entry is
    // never removed; it goes back to Incomplete instead.
    bool pinned = false;
    std::deque<rte_mbuf*> queue;  // packets waiting for resolution, newest last
  };

  Entry* find(const NeighbourKey& key);
  // Creates an Incomplete entry; null when the table is full.
  Entry* create(const NeighbourKey& key, uint64_t now_ms);
  // Sets the MAC and state; workers see it at once.
  void update(Entry& entry, NeighbourState state, const rte_ether_addr& mac, uint64_t now_ms);
  void set_state(Entry& entry, NeighbourState state, uint64_t now_ms);
  // Back to Incomplete: workers stop using the MAC at once.
  void forget_mac(Entry& entry, uint64_t now_ms);
  // Removes the entry (its queue must be empty); the key slot is recycled after a grace period.
  void remove(const NeighbourKey& key);
  // The same for many, waiting one grace period for all.
  void remove(const std::vector<NeighbourKey>& keys);
  uint64_t used_tsc(const Entry& e) const { return slots_[e.position].used_tsc.load(std::memory_order_relaxed); }

  std::unordered_map<NeighbourKey, Entry, NeighbourKeyHash>& entries() { return entries_; }
  const std::unordered_map<NeighbourKey, Entry, NeighbourKeyHash>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  size_t capacity() const { return capacity_; }

 private:
  Qsbr& qsbr_;
  size_t capacity_;
  rte_hash* hash_ = nullptr;
  NeighbourSlot* slots_ = nullptr;
  std::unordered_map<NeighbourKey, Entry, NeighbourKeyHash> entries_;
};

}  // namespace sluice::l3
