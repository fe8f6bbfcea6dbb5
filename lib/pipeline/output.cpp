#include "pipeline/output.h"

#include <rte_ip.h>
#include <rte_ip_frag.h>

#include "net/headers.h"

namespace sluice::pipeline {

void TxQueue::flush() {
  if (count_ == 0) return;
  if (link_up_ && !link_up_->load(std::memory_order_relaxed)) [[unlikely]] {
    // A down link takes nothing, and some PMDs (net_af_packet's TX ring) would hold the
    // frames or block on them: counted and freed here, the other ports go on.
    counters_.packets_in.add(count_);
    counters_.drop(Drop::LinkDown, count_);
    rte_pktmbuf_free_bulk(pending_, count_);
    count_ = 0;
    return;
  }
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
    if (meta(m).flags & kMetaFragmentOnOutput) [[unlikely]] {
      fragment(m, queue);
      continue;
    }
    queue->push(m);
  }
  burst.count = 0;  // every packet now belongs to a TX queue or the discard list
}

int fragment_ipv4(rte_mbuf* m, uint16_t l3_offset, uint16_t mtu, rte_mbuf* (&out)[kMaxFragments], unsigned& lost) {
  const net::EthernetHeader eth = *rte_pktmbuf_mtod(m, const net::EthernetHeader*);
  rte_pktmbuf_adj(m, l3_offset);
  rte_mbuf* frags[kMaxFragments];
  int32_t count = rte_ipv4_fragment_packet(m, frags, kMaxFragments, mtu, m->pool, m->pool);
  rte_pktmbuf_free(m);  // the fragments hold their own references to its data
  if (count < 0) return -1;
  int kept = 0;
  for (int32_t i = 0; i < count; ++i) {
    rte_mbuf* f = frags[i];
    auto* ip = rte_pktmbuf_mtod(f, net::Ipv4Header*);
    ip->checksum.raw = 0;
    ip->checksum.raw = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip));
    auto* l2 = reinterpret_cast<net::EthernetHeader*>(rte_pktmbuf_prepend(f, sizeof(net::EthernetHeader)));
    if (!l2) {
      rte_pktmbuf_free(f);
      ++lost;
      continue;
    }
    *l2 = eth;
    out[kept++] = f;
  }
  return kept;
}

// A packet the route stage found over the egress MTU without DF (its MTU in aux). The
// fragments reference the original's data (indirect mbufs).
void OutputStage::fragment(rte_mbuf* m, TxQueue* queue) {
  const PacketMeta pm = meta(m);
  rte_mbuf* frags[kMaxFragments];
  unsigned lost = 0;
  int count = fragment_ipv4(m, pm.l3_offset, pm.aux, frags, lost);
  if (lost) counters_.drop(Drop::FragmentFailed, lost);
  if (count < 0) {
    counters_.drop(Drop::FragmentFailed);
    return;
  }
  fragmented_.inc();
  for (int i = 0; i < count; ++i) {
    meta(frags[i]) = PacketMeta{};
    meta(frags[i]).out_port = pm.out_port;
    fragments_.inc();
    queue->push(frags[i]);
  }
}

void OutputStage::read_counters(NamedCounters& out) const {
  out.emplace_back("fragmented", fragmented_.get());
  out.emplace_back("fragments", fragments_.get());
}

}  // namespace sluice::pipeline
