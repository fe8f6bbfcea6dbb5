// A pipeline stage: one job, one file, one hot `process(burst)`.
// Each instance belongs to one worker lcore and one ingress port; nothing in it is
// written by another thread, the control plane only reads its counters.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pipeline/burst.h"
#include "stats/counter.h"

namespace sluice::pipeline {

using NamedCounters = std::vector<std::pair<std::string_view, uint64_t>>;

class Stage {
 public:
  explicit Stage(std::string name) : name_(std::move(name)) {}
  virtual ~Stage() = default;
  Stage(const Stage&) = delete;
  Stage& operator=(const Stage&) = delete;

  // Runs the burst; on return burst.pkts[0..count) are the packets kept, in order.
  virtual void process(Burst& burst) = 0;

  // Stage-specific counters, appended for the stats readers (control thread).
  virtual void read_counters(NamedCounters& /*out*/) const {}

  // The packet tracer only (never the fast path): what this stage decided for `m`, a
  // packet it just kept, in a few words ("flow 17 established, rule 3 'web'").
  virtual void describe(const rte_mbuf* /*m*/, std::string& /*out*/) const {}

  const std::string& name() const { return name_; }
  StageCounters& counters() { return counters_; }
  const StageCounters& counters() const { return counters_; }

 protected:
  void drop(Burst& burst, rte_mbuf* m, Drop reason) {
    counters_.drop(reason);
    burst.discard(m, reason);
  }

  StageCounters counters_;

 private:
  std::string name_;
};

}  // namespace sluice::pipeline
