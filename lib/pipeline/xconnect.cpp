#include "pipeline/xconnect.h"

namespace sluice::pipeline {

void XconnectStage::process(Burst& burst) {
  for (uint16_t i = 0; i < burst.count; ++i) meta(burst.pkts[i]).out_port = peer_port_id_;
}

}  // namespace sluice::pipeline
