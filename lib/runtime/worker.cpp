#include "runtime/worker.h"

#include <rte_cycles.h>
#include <rte_pause.h>

namespace sluice::runtime {

void Worker::add_tx_queue(uint16_t port_id, uint16_t queue_id) {
  tx_queues_.push_back(std::make_unique<pipeline::TxQueue>(port_id, queue_id));
  tx_by_port_[port_id] = tx_queues_.back().get();
}

void Worker::add_rx_queue(uint16_t port_id, uint16_t queue_id, std::unique_ptr<pipeline::Pipeline> pipeline) {
  rx_queues_.push_back(RxQueueBinding{port_id, queue_id, pipeline.get()});
  pipelines_.push_back(std::move(pipeline));
}

int Worker::launch(void* worker) { return static_cast<Worker*>(worker)->run(); }

int Worker::run() {
  pipeline::Burst burst;
  // Locals, committed once per round: the hot loop touches no shared cache line.
  while (!stop_.load(std::memory_order_relaxed)) {
    const uint64_t round_start = rte_rdtsc();
    uint32_t received = 0;
    for (const RxQueueBinding& rx : rx_queues_) {
      burst.count = rte_eth_rx_burst(rx.port_id, rx.queue_id, burst.pkts, burst_size_);
      if (burst.count == 0) continue;
      received += burst.count;
      rx.pipeline->run(burst);
      burst.free_discards();
    }
    for (auto& tx : tx_queues_) tx->flush();
    counters_.polls.inc();
    if (received) {
      counters_.busy_polls.inc();
      counters_.rx_packets.add(received);
      counters_.busy_cycles.add(rte_rdtsc() - round_start);
    } else {
      counters_.idle_polls.inc();
      rte_pause();
    }
  }
  for (auto& tx : tx_queues_) tx->flush();
  return 0;
}

}  // namespace sluice::runtime
