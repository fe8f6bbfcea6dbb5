// Everything the conntrack stage reads from configuration, published as one immutable
// object: a reload builds a new Policy on the control thread and swaps it in through
// RCU; a worker takes one snapshot per burst.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "config/config.h"
#include "firewall/ruleset.h"
#include "flow/settings.h"

namespace sluice::firewall {

struct Policy {
  uint32_t generation = 0;        // 1 at start, +1 per successful reload
  flow::FlowSettings flow;
  std::unique_ptr<Ruleset> rules;  // null: no firewall section, track only

  // Null with `error` set (one line, a JSON path first) when the rules do not compile.
  static std::unique_ptr<Policy> build(const config::Config& config, const Ruleset::PortIds& port_ids,
                                       uint32_t generation, std::string& error) {
    auto policy = std::make_unique<Policy>();
    policy->generation = generation;
    policy->flow = flow::FlowSettings::from(config.conntrack);
    if (config.firewall.enabled) {
      policy->rules = Ruleset::compile(config, port_ids, generation, error);
      if (!policy->rules) return nullptr;
    }
    return policy;
  }
};

}  // namespace sluice::firewall
