// The ordered stages one worker runs for one ingress port, ending in `output`.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "pipeline/output.h"
#include "pipeline/route.h"
#include "pipeline/stage.h"

namespace sluice::pipeline {

class Pipeline {
 public:
  Pipeline(std::string port_name, std::vector<std::unique_ptr<Stage>> stages)
      : port_name_(std::move(port_name)), stages_(std::move(stages)) {}

  // Runs the burst through every stage; afterwards every packet is either in a TX
  // queue or in burst.discards, counted by the stage that dropped it.
  void run(Burst& burst) {
    for (auto& stage : stages_) {
      uint16_t in = burst.count;
      uint16_t discarded_before = burst.discarded;
      stage->process(burst);
      StageCounters& c = stage->counters();
      c.packets_in.add(in);
      c.packets_out.add(in - (burst.discarded - discarded_before));
      if (burst.count == 0) break;
    }
  }

  const std::string& port_name() const { return port_name_; }
  const std::vector<std::unique_ptr<Stage>>& stages() const { return stages_; }

 private:
  std::string port_name_;
  std::vector<std::unique_ptr<Stage>> stages_;
};

// Builds a port's pipeline from config. `port_ids` maps port names to DPDK port ids;
// `l3` is the worker's router context (null when no port routes). Config was
// validated, so unknown stages or peers here are programming errors.
std::unique_ptr<Pipeline> build_pipeline(const config::PortConfig& port,
                                         const std::map<std::string, uint16_t>& port_ids,
                                         const TxQueues* tx_queues, const L3Context* l3 = nullptr);

}  // namespace sluice::pipeline
