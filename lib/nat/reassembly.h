// IPv4 reassembly before NAT: a later fragment carries no ports, so the datagram is
// joined first and translated whole. Bounded in every dimension (datagrams in progress,
// fragments each, time held) and strict, as Linux's ip_defrag since 4.19: a fragment
// that overlaps another drops the whole datagram, an exact duplicate drops only
// itself, a datagram that would pass 65535 bytes or hold too many fragments is dropped.
// Owned by one worker; no locks, no allocation after create.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <rte_mbuf.h>

#include "config/nat_config.h"
#include "stats/counter.h"
#include "stats/drop.h"

namespace sluice::nat {

struct alignas(64) ReassemblyCounters {
  Counter fragments;     // fragments taken in
  Counter reassembled;   // datagrams completed
  Counter in_progress;   // gauge: datagrams waiting for fragments
  Counter held;          // gauge: fragments held
};

class Reassembler {
 public:
  // Where a fragment went.
  enum class Outcome : uint8_t {
    Held,      // kept until its datagram is complete
    Complete,  // completed a datagram: `whole` is it (a chain, the first fragment's headers first)
    Dropped,   // dropped, with `reason`, alone or with the fragments held for its datagram
  };

  Reassembler(const config::NatFragments& limits, uint64_t tsc_hz);
  ~Reassembler();
  Reassembler(const Reassembler&) = delete;
  Reassembler& operator=(const Reassembler&) = delete;

  // Takes fragment `m` (its IPv4 header at `l3_offset`, validated by parse). On Dropped,
  // `m` stays the caller's to drop, with `reason`; fragments held for the same datagram
  // that went with it are freed here, `dropped_held` of them (each also a `reason` drop).
  // On a failed join every fragment, `m` included, is freed: `dropped_held` counts them
  // all and `m` is gone (reason reassembly_failed; `whole` null and `m_freed` true).
  Outcome add(rte_mbuf* m, uint16_t l3_offset, uint64_t now_tsc, rte_mbuf*& whole, Drop& reason,
              unsigned& dropped_held, bool& m_freed);

  // Frees the datagrams that waited longer than the timeout (a few per call, bounded);
  // returns how many fragments were freed (each a reassembly_timeout drop).
  unsigned expire(uint64_t now_tsc);
  // Frees everything held (shutdown); returns how many fragments.
  unsigned flush();

  const ReassemblyCounters& counters() const { return counters_; }
  uint64_t timeouts() const { return timeouts_.get(); }  // fragments dropped by expire()
  uint64_t flushed() const { return flushed_.get(); }
  uint32_t in_progress() const { return in_progress_; }

 private:
  struct Fragment {
    rte_mbuf* m;
    uint16_t first;  // payload byte offset in the datagram
    uint16_t end;    // one past its last byte (first + payload length), at most 65535
    uint16_t l3_offset;
  };
  struct Datagram {
    uint32_t src, dst;  // network order
    uint16_t id;
    uint8_t proto;
    uint8_t used;       // slot in use
    uint8_t count;      // fragments held
    uint8_t have_last;  // the fragment without MF has come: `total` is known
    uint8_t count_at_join;
    uint32_t total;     // payload bytes of the whole datagram (once have_last)
    uint32_t received;  // payload bytes held
    uint64_t deadline;  // TSC
    uint32_t next_free;
  };

  int32_t find(uint32_t src, uint32_t dst, uint16_t id, uint8_t proto) const;
  int32_t create_slot(uint32_t src, uint32_t dst, uint16_t id, uint8_t proto, uint64_t now_tsc);
  void index_remove(uint32_t slot);
  unsigned free_datagram(uint32_t slot);  // frees its fragments, releases the slot; returns how many
  rte_mbuf* join(uint32_t slot);           // the chain, the slot released; null (all freed) on failure
  uint32_t hash(uint32_t src, uint32_t dst, uint16_t id, uint8_t proto) const;
  Fragment* fragments_of(uint32_t slot) { return &fragments_[size_t(slot) * max_fragments_]; }

  uint32_t max_datagrams_;
  uint32_t max_fragments_;
  uint64_t timeout_tsc_;
  std::vector<Datagram> datagrams_;
  std::vector<Fragment> fragments_;
  std::vector<int32_t> index_;  // open addressing over datagram slots, linear probing
  uint32_t index_mask_ = 0;
  uint32_t free_head_ = 0;
  uint32_t in_progress_ = 0;
  uint32_t expire_cursor_ = 0;
  ReassemblyCounters counters_;
  Counter timeouts_;
  Counter flushed_;
};

}  // namespace sluice::nat
