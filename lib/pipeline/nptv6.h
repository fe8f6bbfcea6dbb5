// nptv6: the inbound half of NPTv6 (RFC 6296), inserted by the pipeline builder after
// `parse` (before steer and conntrack) on every port whose pipeline lists nat (it passes
// everything on where no NPTv6 mapping names the port): a destination in
// the mapping's outside prefix becomes the inside one, so steering, conntrack and the
// firewall see inside addresses both ways. The outbound half is nat_src's.
#pragma once

#include "pipeline/nat.h"

namespace sluice::pipeline {

class Nptv6Stage final : public Stage {
 public:
  Nptv6Stage(uint16_t port_id, const NatStageContext& context);
  void process(Burst& burst) override;
  void read_counters(NamedCounters& out) const override;

 private:
  uint16_t port_id_;
  NatStageContext ctx_;
  Counter translated_;
};

}  // namespace sluice::pipeline
