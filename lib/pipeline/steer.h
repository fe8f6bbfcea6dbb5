// steer: software flow steering (the kernel's RPS/RFS idea) for devices that cannot
// send both directions of a connection to one queue. Right after parse, each packet's
// flow key is hashed and the packet goes to the worker that owns that hash: kept in
// the burst when that is this worker, otherwise handed over a lock-free single-
// producer/single-consumer ring to the owner, which runs the rest of the pipeline
// (conntrack onwards) on it. The pipeline builder inserts this stage; it is not
// written in configs.
#pragma once

#include <array>
#include <vector>

#include <rte_ring.h>

#include "l3/rcu.h"
#include "lb/service_table.h"
#include "nat/policy.h"
#include "pipeline/stage.h"

namespace sluice::pipeline {

inline constexpr unsigned kMaxWorkers = 64;

class SteerStage final : public Stage {
 public:
  // `rings[w]`: this worker's ring to worker w (null for itself). `nat`: the NAT policy
  // when this port translates (a translated flow's replies go to the worker that owns
  // the flow's outside port), else null.
  SteerStage(uint16_t port_id, uint16_t conntrack_zone, unsigned self, unsigned workers, bool track_ipv6,
             std::vector<rte_ring*> rings, const l3::Published<nat::Policy>* nat = nullptr,
             const l3::Published<lb::ServiceTable>* services = nullptr);
  void process(Burst& burst) override;
  void read_counters(NamedCounters& out) const override;

  // Packets handed to worker w (read by the stats).
  uint64_t handed_to(unsigned w) const { return handed_[w].get(); }
  unsigned self() const { return self_; }
  unsigned workers() const { return workers_; }

 private:
  uint16_t port_id_;
  uint16_t zone_;
  unsigned self_;
  unsigned workers_;
  bool track_ipv6_;
  std::vector<rte_ring*> rings_;
  const l3::Published<nat::Policy>* nat_;
  const l3::Published<lb::ServiceTable>* services_;
  static int lb_owner(const lb::ServiceTable& services, const flow::FlowKey4& key, unsigned workers);
  std::array<Counter, kMaxWorkers> handed_;
  Counter kept_;
};

}  // namespace sluice::pipeline
