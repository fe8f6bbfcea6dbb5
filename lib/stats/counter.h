// Counters written by exactly one lcore and read by the control thread.
// The owner does a relaxed load+store (a plain add on x86, no lock prefix); the reader
// sees a value that is at most one burst old, never a torn one.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "stats/drop.h"

namespace sluice {

class Counter {
 public:
  void add(uint64_t n) { value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void inc() { add(1); }
  uint64_t get() const { return value_.load(std::memory_order_relaxed); }
  void reset() { value_.store(0, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// What every pipeline stage counts. Stage-specific counters live beside it in the stage.
struct alignas(64) StageCounters {
  Counter packets_in;
  Counter packets_out;
  std::array<Counter, kDropCount> drops;

  void drop(Drop reason, uint64_t n = 1) { drops[static_cast<size_t>(reason)].add(n); }
  uint64_t drops_total() const {
    uint64_t total = 0;
    for (const auto& c : drops) total += c.get();
    return total;
  }
};

// Per worker lcore: how hard it polls and how much it moves.
struct alignas(64) WorkerCounters {
  Counter polls;        // RX rounds over all of this worker's queues
  Counter busy_polls;   // rounds that received at least one packet
  Counter idle_polls;
  Counter rx_packets;
  Counter busy_cycles;  // TSC cycles spent in rounds that received packets
  Counter idle_sleeps;  // sleeps taken when idle ("polling": {"idle": "sleep"})
  Counter idle_sleep_us;  // microseconds asked of them
};

}  // namespace sluice
