// The ordered stages one worker runs for one ingress port, ending in `output`.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "pipeline/conntrack.h"
#include "pipeline/nat.h"
#include "pipeline/output.h"
#include "pipeline/route.h"
#include "pipeline/steer.h"
#include "pipeline/stage.h"

namespace sluice::pipeline {

class Pipeline {
 public:
  Pipeline(std::string port_name, std::vector<std::unique_ptr<Stage>> stages)
      : port_name_(std::move(port_name)), stages_(std::move(stages)) {}

  // Runs the burst through every stage; afterwards every packet is either in a TX
  // queue or in burst.discards, counted by the stage that dropped it.
  void run(Burst& burst) { run_from(burst, 0); }

  // From stage `first` on: a worker runs packets another worker steered to it from
  // the stage after `steer` (handoff_stage()).
  void run_from(Burst& burst, size_t first) {
    for (size_t s = first; s < stages_.size(); ++s) {
      run_stage(s, burst);
      if (burst.count == 0) break;
    }
  }
  // Stage `s` alone, counted (the tracer runs stages one at a time).
  void run_stage(size_t s, Burst& burst) {
    Stage& stage = *stages_[s];
    uint16_t in = burst.count;
    uint16_t discarded_before = burst.discarded;
    stage.process(burst);
    StageCounters& c = stage.counters();
    c.packets_in.add(in);
    c.packets_out.add(in - (burst.discarded - discarded_before));
  }
  // The index of the first stage after `steer`, or 0 when the pipeline does not steer.
  size_t handoff_stage() const {
    for (size_t s = 0; s < stages_.size(); ++s)
      if (stages_[s]->name() == "steer") return s + 1;
    return 0;
  }

  const std::string& port_name() const { return port_name_; }
  const std::vector<std::unique_ptr<Stage>>& stages() const { return stages_; }

 private:
  std::string port_name_;
  std::vector<std::unique_ptr<Stage>> stages_;
};

// Software steering for one worker: its rings to the other workers (index = worker,
// null for itself). Given, the builder puts a steer stage after parse.
struct SteerContext {
  unsigned self = 0;
  unsigned workers = 1;
  std::vector<rte_ring*> rings;
};

// Builds a port's pipeline from config. `port_ids` maps port names to DPDK port ids;
// `l3` is the worker's router context (null when no port routes), `conntrack` its
// connection-tracking context (null when no port tracks), `nat` its NAT context (null
// when no port runs nat). Config was validated, so unknown stages or peers here are
// programming errors.
std::unique_ptr<Pipeline> build_pipeline(const config::PortConfig& port,
                                         const std::map<std::string, uint16_t>& port_ids,
                                         const TxQueues* tx_queues, const L3Context* l3 = nullptr,
                                         const ConntrackContext* conntrack = nullptr,
                                         const SteerContext* steer = nullptr, const NatStageContext* nat = nullptr);

}  // namespace sluice::pipeline
