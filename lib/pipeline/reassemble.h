// reassemble: joins IPv4 fragments into their datagram before NAT (a later fragment
// has no ports to find its translation by), inserted by the pipeline builder after
// `parse` on ports that run `nat`. Fragments are held in the worker's reassembly table
// (nat::Reassembler: bounded, strict about overlaps) and leave as one packet, a chain
// of their mbufs, when the last arrives; the output stage refragments it to the egress
// MTU. Other packets pass untouched.
#pragma once

#include "nat/reassembly.h"
#include "pipeline/stage.h"

namespace sluice::pipeline {

class ReassembleStage final : public Stage {
 public:
  explicit ReassembleStage(nat::Reassembler* reassembler);
  void process(Burst& burst) override;
  void read_counters(NamedCounters& out) const override;

 private:
  nat::Reassembler* reassembler_;
  Counter held_, reassembled_;
};

}  // namespace sluice::pipeline
