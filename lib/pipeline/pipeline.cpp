#include "pipeline/pipeline.h"

#include <stdexcept>

#include <rte_ethdev.h>

#include "pipeline/lb.h"
#include "pipeline/nat_src.h"
#include "pipeline/nptv6.h"
#include "pipeline/probe_intake.h"
#include "pipeline/parse.h"
#include "pipeline/reassemble.h"
#include "pipeline/steer.h"
#include "pipeline/xconnect.h"

namespace sluice::pipeline {

std::unique_ptr<Pipeline> build_pipeline(const config::PortConfig& port,
                                         const std::map<std::string, uint16_t>& port_ids,
                                         const TxQueues* tx_queues, const L3Context* l3,
                                         const ConntrackContext* conntrack, const SteerContext* steer,
                                         const NatStageContext* nat) {
  const uint16_t port_id = port_ids.at(port.name);
  const bool translated = nat && port.translated();
  if (port.translated() && !nat) throw std::logic_error("nat stage without a NAT context");
  std::vector<std::unique_ptr<Stage>> stages;
  for (const auto& stage : port.pipeline) {
    if (stage.stage == "parse") {
      stages.push_back(std::make_unique<ParseStage>());
      if (translated) {
        // Before steering: a datagram's ports (its owner) are in its first fragment, and
        // NPTv6's inside address is the one conntrack keys the flow by.
        stages.push_back(std::make_unique<ReassembleStage>(&nat->nat->reassembler()));
        stages.push_back(std::make_unique<Nptv6Stage>(port_id, *nat));
      }
      if (steer && port.tracked())
        stages.push_back(std::make_unique<SteerStage>(port_id, static_cast<uint16_t>(port.conntrack_zone), steer->self,
                                                      steer->workers, conntrack && conntrack->flows->table6(),
                                                      steer->rings, translated ? nat->policy : nullptr,
                                                      translated ? nat->services : nullptr));
    } else if (stage.stage == "conntrack") {
      if (!conntrack) throw std::logic_error("conntrack stage without a conntrack context");
      // Health probes' answers never meet conntrack: they are the control thread's.
      if (port.balanced() && l3) stages.push_back(std::make_unique<ProbeIntakeStage>(port_id, *l3, nat->probe_match));
      uint16_t peer = kNoPort;
      for (const auto& s : port.pipeline)
        if (s.stage == "xconnect") peer = port_ids.at(s.peer);
      if (!port.routed() && !l3 && peer == kNoPort) throw std::logic_error("conntrack stage without an output stage");
      rte_ether_addr mac{};
      rte_eth_macaddr_get(port_id, &mac);
      // Only a port with the lb stage plans connections to services.
      NatStageContext conntrack_nat;
      if (translated) {
        conntrack_nat = *nat;
        if (!port.balanced()) conntrack_nat.services = nullptr;
      }
      stages.push_back(std::make_unique<ConntrackStage>(port_id, static_cast<uint16_t>(port.conntrack_zone), *conntrack,
                                                        port.routed() ? l3 : nullptr, peer, tx_queues, mac,
                                                        translated ? &conntrack_nat : nullptr));
    } else if (stage.stage == "lb") {
      if (!nat || !nat->services || !nat->lb) throw std::logic_error("lb stage without the load balancer's context");
      stages.push_back(std::make_unique<LbStage>(port_id, *nat));
    } else if (stage.stage == "nat") {
      stages.push_back(std::make_unique<NatStage>(port_id, *nat));
    } else if (stage.stage == "route") {
      if (!l3) throw std::logic_error("route stage without a router context");
      auto route = std::make_unique<RouteStage>(port_ids.at(port.name), *l3, tx_queues);
      if (translated) {
        auto nat_src = std::make_unique<NatSrcStage>(*nat);
        route->set_post_routing(nat_src.get());
        stages.push_back(std::move(route));
        stages.push_back(std::move(nat_src));
      } else {
        stages.push_back(std::move(route));
      }
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
