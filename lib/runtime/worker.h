// A worker lcore: polls its RX queues, runs each burst through the ingress port's
// pipeline, and flushes its TX queues once per round. Everything here belongs to
// this lcore; the control thread only reads counters.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "pipeline/output.h"
#include "l3/rcu.h"
#include "pipeline/pipeline.h"
#include "stats/counter.h"

namespace sluice::runtime {

struct RxQueueBinding {
  uint16_t port_id;
  uint16_t queue_id;
  pipeline::Pipeline* pipeline;
};

class Worker {
 public:
  Worker(unsigned lcore_id, uint16_t burst_size) : lcore_id_(lcore_id), burst_size_(burst_size) {
    tx_by_port_.fill(nullptr);
  }

  // Set-up, before launch.
  void add_tx_queue(uint16_t port_id, uint16_t queue_id);
  void add_rx_queue(uint16_t port_id, uint16_t queue_id, std::unique_ptr<pipeline::Pipeline> pipeline);
  // Router: packets the control thread hands over for TX, and the RCU reader id.
  void attach_router(rte_ring* inject_ring, l3::Qsbr* qsbr, unsigned reader_id) {
    inject_ring_ = inject_ring;
    qsbr_ = qsbr;
    reader_id_ = reader_id;
  }

  // The poll loop; returns when stop() is called, with every TX buffer flushed.
  int run();
  void stop() { stop_.store(true, std::memory_order_relaxed); }
  static int launch(void* worker);  // rte_eal_remote_launch entry

  unsigned lcore_id() const { return lcore_id_; }
  const WorkerCounters& counters() const { return counters_; }
  uint64_t injected_dropped() const { return injected_dropped_.get(); }
  const std::vector<std::unique_ptr<pipeline::Pipeline>>& pipelines() const { return pipelines_; }
  const std::vector<std::unique_ptr<pipeline::TxQueue>>& tx_queues() const { return tx_queues_; }
  const pipeline::TxQueues& tx_by_port() const { return tx_by_port_; }

 private:
  unsigned lcore_id_;
  uint16_t burst_size_;
  std::atomic<bool> stop_{false};
  std::vector<RxQueueBinding> rx_queues_;
  std::vector<std::unique_ptr<pipeline::Pipeline>> pipelines_;
  std::vector<std::unique_ptr<pipeline::TxQueue>> tx_queues_;
  pipeline::TxQueues tx_by_port_;
  WorkerCounters counters_;
  rte_ring* inject_ring_ = nullptr;
  Counter injected_dropped_;  // out_port without a TX queue here: a bug, but counted
  l3::Qsbr* qsbr_ = nullptr;
  unsigned reader_id_ = 0;
  void drain_inject_ring();
};

}  // namespace sluice::runtime
