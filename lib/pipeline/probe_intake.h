// probe_intake: takes the answers to the load balancer's health probes (a SYN-ACK or
// RST to Sluice's probe ports, an echo reply with its ident, an ICMP unreachable
// quoting a probe) out of the data path before conntrack, and punts them to the
// control thread, whose health checks read them. Everything else passes untouched at
// the cost of a few compares. The pipeline builder inserts it on ports with the lb
// stage; it is not written in configs.
#pragma once

#include "lb/probe.h"
#include "pipeline/route.h"
#include "pipeline/stage.h"

namespace sluice::pipeline {

class ProbeIntakeStage final : public Stage {
 public:
  ProbeIntakeStage(uint16_t port_id, const L3Context& l3, const lb::ProbeMatch& match);
  void process(Burst& burst) override;
  void read_counters(NamedCounters& out) const override;

 private:
  bool is_probe_reply(rte_mbuf* m) const;

  uint16_t port_id_;
  L3Context l3_;
  lb::ProbeMatch match_;
  Counter taken_;
};

}  // namespace sluice::pipeline
