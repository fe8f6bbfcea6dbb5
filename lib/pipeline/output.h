// output: the last stage of every pipeline. Moves each packet into the worker's TX
// buffer for the port an earlier stage chose; the worker flushes those buffers once per
// poll round, so packets from all of its RX queues leave in as few TX bursts as possible
// (l3fwd's per-port TX buffers).
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <vector>

#include <rte_ethdev.h>

#include "pipeline/packet_meta.h"
#include "pipeline/stage.h"

namespace sluice::pipeline {

inline constexpr uint16_t kTxBufferSize = 2 * kMaxBurst;

inline constexpr uint16_t kMaxFragments = 16;

// IPv4 fragmentation (RFC 791) of the frame `m` (IP header at `l3_offset`) to `mtu`.
// Consumes `m`. Returns how many fragments it wrote to `out`, each a whole frame with
// m's Ethernet header and a valid checksum, or -1 when `m` cannot be fragmented (DF,
// no mbufs, more than kMaxFragments). Fragments that got no room for their Ethernet
// header are freed and counted in `lost`.
int fragment_ipv4(rte_mbuf* m, uint16_t l3_offset, uint16_t mtu, rte_mbuf* (&out)[kMaxFragments], unsigned& lost);

// One worker's TX queue on one port, with the "tx" stage counters for that port:
// packets_in offered, packets_out accepted by the PMD, drops tx_queue_full, and
// link_down while the port's link flag (the control thread's reading) says down.
class TxQueue final : public Stage {
 public:
  TxQueue(uint16_t port_id, uint16_t queue_id, const std::atomic<bool>* link_up = nullptr)
      : Stage("tx"), port_id_(port_id), queue_id_(queue_id), link_up_(link_up) {}

  void process(Burst& burst) override;  // sends a whole burst (used by tests)

  void push(rte_mbuf* m) {
    if (count_ == kTxBufferSize) [[unlikely]]
      flush();
    pending_[count_++] = m;
  }
  void flush();
  uint16_t pending() const { return count_; }
  uint16_t port_id() const { return port_id_; }

 private:
  uint16_t port_id_;
  uint16_t queue_id_;
  const std::atomic<bool>* link_up_;  // null: no link to watch (tests)
  uint16_t count_ = 0;
  rte_mbuf* pending_[kTxBufferSize];
};

// The worker's TX queues, indexed by DPDK port id; null where the worker has none.
using TxQueues = std::array<TxQueue*, RTE_MAX_ETHPORTS>;

class OutputStage final : public Stage {
 public:
  explicit OutputStage(const TxQueues* tx_queues) : Stage("output"), tx_queues_(tx_queues) {}
  void process(Burst& burst) override;
  void read_counters(NamedCounters& out) const override;

 private:
  void fragment(rte_mbuf* m, TxQueue* queue);

  const TxQueues* tx_queues_;
  Counter fragmented_, fragments_;
};

}  // namespace sluice::pipeline
