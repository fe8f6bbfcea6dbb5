#include "pipeline/pipeline.h"

#include <stdexcept>

#include "pipeline/parse.h"
#include "pipeline/xconnect.h"

namespace sluice::pipeline {

std::unique_ptr<Pipeline> build_pipeline(const config::PortConfig& port,
                                         const std::map<std::string, uint16_t>& port_ids,
                                         const TxQueues* tx_queues, const L3Context* l3) {
  std::vector<std::unique_ptr<Stage>> stages;
  for (const auto& stage : port.pipeline) {
    if (stage.stage == "parse") {
      stages.push_back(std::make_unique<ParseStage>());
    } else if (stage.stage == "route") {
      if (!l3) throw std::logic_error("route stage without a router context");
      stages.push_back(std::make_unique<RouteStage>(port_ids.at(port.name), *l3, tx_queues));
    } else if (stage.stage == "xconnect") {
      stages.push_back(std::make_unique<XconnectStage>(port_ids.at(stage.peer)));
    } else {
      throw std::logic_error("unknown stage '" + stage.stage + "' passed validation");
    }
  }
  stages.push_back(std::make_unique<OutputStage>(tx_queues));
  return std::make_unique<Pipeline>(port.name, std::move(stages));
}

}  // namespace sluice::pipeline
