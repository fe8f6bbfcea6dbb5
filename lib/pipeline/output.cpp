#include "pipeline/output.h"

namespace sluice::pipeline {

void TxQueue::flush() {
  if (count_ == 0) return;
  uint16_t sent = rte_eth_tx_burst(port_id_, queue_id_, pending_, count_);
  counters_.packets_in.add(count_);
  counters_.packets_out.add(sent);
  if (sent < count_) [[unlikely]] {
    // The PMD's ring is full: dropping now keeps the poll loop from stalling on one port.
    counters_.drop(Drop::TxQueueFull, count_ - sent);
    rte_pktmbuf_free_bulk(pending_ + sent, count_ - sent);
  }
  count_ = 0;
}

void TxQueue::process(Burst& burst) {
  for (uint16_t i = 0; i < burst.count; ++i) push(burst.pkts[i]);
  burst.count = 0;
  flush();
}

void OutputStage::process(Burst& burst) {
  const TxQueues& queues = *tx_queues_;
  for (uint16_t i = 0; i < burst.count; ++i) {
    rte_mbuf* m = burst.pkts[i];
    uint16_t port = meta(m).out_port;
    if (port >= RTE_MAX_ETHPORTS) [[unlikely]] {
      drop(burst, m, Drop::NoOutputPort);
      continue;
    }
    TxQueue* queue = queues[port];
    if (queue == nullptr) [[unlikely]] {
      drop(burst, m, Drop::OutputPortDown);
      continue;
    }
    queue->push(m);
  }
  burst.count = 0;  // every packet now belongs to a TX queue or the discard list
}

}  // namespace sluice::pipeline
