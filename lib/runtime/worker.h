// A worker lcore: polls its RX queues, runs each burst through the ingress port's
// pipeline, and flushes its TX queues once per round. Everything here belongs to
// this lcore; the control thread only reads counters.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <vector>

#include "flow/flow_context.h"
#include "nat/nat_context.h"
#include "pipeline/output.h"
#include "l3/rcu.h"
#include "pipeline/pipeline.h"
#include "pipeline/trace.h"
#include "stats/counter.h"

namespace sluice::runtime {

// "polling": {"idle": "sleep"}: after `after_polls` empty rounds the worker sleeps,
// 1 us, then twice as long each empty round up to `max_sleep_us`; a packet brings it
// back to polling at once.
struct IdleSleep {
  bool enabled = false;
  uint32_t after_polls = 1000;
  uint32_t max_sleep_us = 100;
};

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
  // `link_up` (the port's, written by the control thread; null: always up) gates the queue.
  void add_tx_queue(uint16_t port_id, uint16_t queue_id, const std::atomic<bool>* link_up = nullptr);
  void add_rx_queue(uint16_t port_id, uint16_t queue_id, std::unique_ptr<pipeline::Pipeline> pipeline);
  // Router: packets the control thread hands over for TX, and the RCU reader id.
  void attach_router(rte_ring* inject_ring, l3::Qsbr* qsbr, unsigned reader_id) {
    inject_ring_ = inject_ring;
    attach_rcu(qsbr, reader_id);
  }
  // The RCU state of every table this worker reads (routes, neighbours, firewall policy).
  void attach_rcu(l3::Qsbr* qsbr, unsigned reader_id) {
    qsbr_ = qsbr;
    reader_id_ = reader_id;
  }
  // Connection tracking: the worker runs its flow context's clock and housekeeping.
  void attach_flows(flow::FlowContext* flows) { flows_ = flows; }
  flow::FlowContext* flows() const { return flows_; }
  // NAT: the worker runs its reassembly timeouts.
  void attach_nat(nat::NatContext* nat) { nat_ = nat; }
  void set_idle_sleep(const IdleSleep& idle) { idle_ = idle; }
  // The packet tracer: while armed, this worker's bursts run through trace_run().
  void attach_trace(pipeline::TraceSession* trace) { trace_ = trace; }
  // Software steering: a ring another worker hands this one packets on, and, per
  // ingress port, the pipeline and stage they continue at. `owned` pipelines run only
  // for handed-over packets (this worker polls no queue of that port).
  void add_handoff_ring(rte_ring* ring) { handoff_rings_.push_back(ring); }
  void set_handoff_pipeline(uint16_t port_id, pipeline::Pipeline* pipeline, size_t first_stage) {
    handoff_[port_id] = HandoffTarget{pipeline, first_stage};
  }
  pipeline::Pipeline* add_handoff_only_pipeline(std::unique_ptr<pipeline::Pipeline> pipeline) {
    pipelines_.push_back(std::move(pipeline));
    return pipelines_.back().get();
  }
  bool has_pipeline_for(const std::string& port_name) const {
    for (const auto& p : pipelines_)
      if (p->port_name() == port_name) return true;
    return false;
  }
  pipeline::Pipeline* pipeline_for(const std::string& port_name) const {
    for (const auto& p : pipelines_)
      if (p->port_name() == port_name) return p.get();
    return nullptr;
  }
  uint64_t handoff_received() const { return handoff_received_.get(); }
  size_t rx_queue_count() const { return rx_queues_.size(); }

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
  flow::FlowContext* flows_ = nullptr;
  nat::NatContext* nat_ = nullptr;
  IdleSleep idle_;
  pipeline::TraceSession* trace_ = nullptr;
  struct HandoffTarget {
    pipeline::Pipeline* pipeline = nullptr;
    size_t first_stage = 0;
  };
  std::vector<rte_ring*> handoff_rings_;
  std::array<HandoffTarget, RTE_MAX_ETHPORTS> handoff_{};
  Counter handoff_received_;
  Counter handoff_dropped_;  // for a port this worker has no pipeline for: a bug, but counted
  void drain_inject_ring();
  uint32_t drain_handoff(pipeline::Burst& burst);
  void run_handed(pipeline::Burst& burst, rte_mbuf** pkts, unsigned n);
};

}  // namespace sluice::runtime
