// The NAT event log (carrier-grade NAT logging, RFC 6888 REQ-12): each mapping's
// creation and removal, with the time and the inside and outside tuples. Workers write
// fixed-size records into their own single-producer ring, never waiting: a full ring
// drops the record and counts it. The control thread drains every ring to the file.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "stats/counter.h"

namespace sluice::flow {
class FlowContext;
}

namespace sluice::nat {

struct NatEvent {
  uint64_t tsc = 0;       // when (the worker's TSC)
  uint8_t created = 0;    // 1 created, 0 removed
  uint8_t protocol = 0;
  uint8_t kind = 0;       // flow::kNat* bits
  uint8_t worker = 0;
  uint16_t rule = 0;
  uint16_t pad = 0;
  // Both tuples (flow::NatTuple4's fields): the original as the opener sent it, the
  // reply as the responder sends it. Network order.
  uint32_t orig_src = 0, orig_dst = 0, reply_src = 0, reply_dst = 0;
  uint16_t orig_sport = 0, orig_dport = 0, reply_sport = 0, reply_dport = 0;
};
static_assert(sizeof(NatEvent) == 40);

// One worker's ring: the worker pushes, the control thread pops.
class EventRing {
 public:
  static constexpr uint32_t kSize = 8192;  // records; a power of two
  bool push(const NatEvent& e) {
    const uint32_t head = head_.load(std::memory_order_relaxed);
    if (head - tail_.load(std::memory_order_acquire) == kSize) {
      dropped_.inc();
      return false;
    }
    records_[head & (kSize - 1)] = e;
    head_.store(head + 1, std::memory_order_release);
    return true;
  }
  // Control thread: up to `max` records into `out`; returns how many.
  uint32_t pop(NatEvent* out, uint32_t max) {
    const uint32_t tail = tail_.load(std::memory_order_relaxed);
    const uint32_t available = head_.load(std::memory_order_acquire) - tail;
    const uint32_t n = available < max ? available : max;
    for (uint32_t i = 0; i < n; ++i) out[i] = records_[(tail + i) & (kSize - 1)];
    tail_.store(tail + n, std::memory_order_release);
    return n;
  }
  uint64_t dropped() const { return dropped_.get(); }

 private:
  alignas(64) std::atomic<uint32_t> head_{0};
  alignas(64) std::atomic<uint32_t> tail_{0};
  Counter dropped_;
  std::array<NatEvent, kSize> records_{};
};

// The control side: the file and the rings it drains.
class EventLog {
 public:
  // Null with `error` set when the file cannot be opened for appending.
  static std::unique_ptr<EventLog> open(const std::string& path, std::string& error);
  ~EventLog();
  void add_ring(const EventRing* ring) { rings_.push_back(const_cast<EventRing*>(ring)); }
  // Writes what the rings hold (control thread, a few times a second); returns records written.
  uint64_t drain();
  uint64_t written() const { return written_.load(std::memory_order_relaxed); }
  const std::string& path() const { return path_; }

 private:
  EventLog() = default;
  std::string path_;
  std::FILE* file_ = nullptr;
  std::vector<EventRing*> rings_;
  std::atomic<uint64_t> written_{0};
  uint64_t tsc_hz_ = 1;
  uint64_t start_tsc_ = 0;
  int64_t start_unix_ns_ = 0;
};

// Shutdown: empties `flows` a chunk at a time, draining `log` (if any) after each, so
// that every translated flow's removal is logged: one chunk's events fit the worker's
// ring, the whole table's would not. Returns the flows removed.
uint32_t sweep_logged(flow::FlowContext& flows, EventLog* log);

}  // namespace sluice::nat
