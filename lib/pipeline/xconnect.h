// xconnect: an L2 wire. Every packet leaves on the peer port, unchanged.
#pragma once

#include "pipeline/packet_meta.h"
#include "pipeline/stage.h"

namespace sluice::pipeline {

class XconnectStage final : public Stage {
 public:
  explicit XconnectStage(uint16_t peer_port_id) : Stage("xconnect"), peer_port_id_(peer_port_id) {}
  void process(Burst& burst) override;

 private:
  uint16_t peer_port_id_;
};

}  // namespace sluice::pipeline
