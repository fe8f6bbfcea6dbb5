#include "runtime/worker.h"

#include <sys/prctl.h>
#include <time.h>

#include <algorithm>

#include <rte_cycles.h>
#include <rte_pause.h>

namespace sluice::runtime {

void Worker::add_tx_queue(uint16_t port_id, uint16_t queue_id, const std::atomic<bool>* link_up) {
  tx_queues_.push_back(std::make_unique<pipeline::TxQueue>(port_id, queue_id, link_up));
  tx_by_port_[port_id] = tx_queues_.back().get();
}

void Worker::add_rx_queue(uint16_t port_id, uint16_t queue_id, std::unique_ptr<pipeline::Pipeline> pipeline) {
  rx_queues_.push_back(RxQueueBinding{port_id, queue_id, pipeline.get()});
  pipelines_.push_back(std::move(pipeline));
}

int Worker::launch(void* worker) { return static_cast<Worker*>(worker)->run(); }

// Control-thread packets (ARP/ND, resolved packets) leave on this worker's TX queues.
void Worker::drain_inject_ring() {
  rte_mbuf* pkts[pipeline::kMaxBurst];
  unsigned n = rte_ring_sc_dequeue_burst(inject_ring_, reinterpret_cast<void**>(pkts), pipeline::kMaxBurst, nullptr);
  for (unsigned i = 0; i < n; ++i) {
    uint16_t port = pipeline::meta(pkts[i]).out_port;
    pipeline::TxQueue* tx = port < RTE_MAX_ETHPORTS ? tx_by_port_[port] : nullptr;
    if (tx) {
      tx->push(pkts[i]);
    } else {
      injected_dropped_.inc();
      rte_pktmbuf_free(pkts[i]);
    }
  }
}

// Packets other workers steered here: each run of one ingress port continues through
// that port's pipeline from the stage after steer.
void Worker::run_handed(pipeline::Burst& burst, rte_mbuf** pkts, unsigned n) {
  unsigned i = 0;
  while (i < n) {
    const uint16_t port = pkts[i]->port;
    burst.count = 0;
    while (i < n && pkts[i]->port == port) burst.pkts[burst.count++] = pkts[i++];
    const HandoffTarget& target = port < RTE_MAX_ETHPORTS ? handoff_[port] : HandoffTarget{};
    if (target.pipeline) {
#ifndef SLUICE_NO_TRACER
      if (trace_ && trace_->armed()) [[unlikely]]
        pipeline::trace_run(*target.pipeline, burst, target.first_stage, *trace_, lcore_id_, true);
      else
#endif
        target.pipeline->run_from(burst, target.first_stage);
    } else {
      handoff_dropped_.add(burst.count);
      rte_pktmbuf_free_bulk(burst.pkts, burst.count);
    }
    burst.free_discards();
  }
}

uint32_t Worker::drain_handoff(pipeline::Burst& burst) {
  // A peer may hand over a burst per RX queue it polls in one round: up to four bursts
  // from each ring per round, so the rings drain at least as fast as they fill.
  constexpr unsigned kBurstsPerRing = 4;
  uint32_t total = 0;
  rte_mbuf* pkts[pipeline::kMaxBurst];
  for (rte_ring* ring : handoff_rings_) {
    for (unsigned round = 0; round < kBurstsPerRing; ++round) {
      const unsigned n = rte_ring_sc_dequeue_burst(ring, reinterpret_cast<void**>(pkts), burst_size_, nullptr);
      total += n;
      run_handed(burst, pkts, n);
      if (n < burst_size_) break;
    }
  }
  if (total) handoff_received_.add(total);
  return total;
}

int Worker::run() {
  pipeline::Burst burst;
  if (qsbr_) qsbr_->online(reader_id_);
  const uint64_t tsc_per_ms = rte_get_tsc_hz() / 1000;
  // Idle sleeping: the kernel's default 50 us timer slack would stretch every sleep.
  if (idle_.enabled) prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  uint32_t empty_rounds = 0, sleep_us = 1;
  // Locals, committed once per round: the hot loop touches no shared cache line.
  while (!stop_.load(std::memory_order_relaxed)) {
    const uint64_t round_start = rte_rdtsc();
    if (flows_) flows_->set_now(static_cast<uint32_t>(round_start / tsc_per_ms));
    uint32_t received = 0;
    for (const RxQueueBinding& rx : rx_queues_) {
      burst.count = rte_eth_rx_burst(rx.port_id, rx.queue_id, burst.pkts, burst_size_);
      if (burst.count == 0) continue;
      received += burst.count;
#ifndef SLUICE_NO_TRACER
      if (trace_ && trace_->armed()) [[unlikely]]
        pipeline::trace_run(*rx.pipeline, burst, 0, *trace_, lcore_id_, false);
      else
#endif
        rx.pipeline->run(burst);
      burst.free_discards();
    }
    const uint32_t handed_in = handoff_rings_.empty() ? 0 : drain_handoff(burst);
    if (inject_ring_) drain_inject_ring();
    for (auto& tx : tx_queues_) tx->flush();
    if (flows_) flows_->service();  // bounded: expiry and control requests
    if (nat_) nat_->service(round_start);  // bounded: fragments that waited too long
    if (qsbr_) qsbr_->quiescent(reader_id_);  // no table pointer is held past here
    counters_.polls.inc();
    if (received || handed_in) {
      counters_.busy_polls.inc();
      counters_.rx_packets.add(received);
      counters_.busy_cycles.add(rte_rdtsc() - round_start);
      empty_rounds = 0;
      sleep_us = 1;
    } else {
      counters_.idle_polls.inc();
      if (idle_.enabled && ++empty_rounds >= idle_.after_polls) [[unlikely]] {
        // Offline while asleep: an RCU writer (reload, route change) need not wait for it.
        const timespec pause{0, static_cast<long>(sleep_us) * 1000};
        if (qsbr_) qsbr_->offline(reader_id_);
        nanosleep(&pause, nullptr);
        if (qsbr_) qsbr_->online(reader_id_);
        counters_.idle_sleeps.inc();
        counters_.idle_sleep_us.add(sleep_us);
        sleep_us = std::min(sleep_us * 2, idle_.max_sleep_us);
      } else {
        rte_pause();
      }
    }
  }
  for (auto& tx : tx_queues_) tx->flush();
  if (qsbr_) qsbr_->offline(reader_id_);
  return 0;
}

}  // namespace sluice::runtime
