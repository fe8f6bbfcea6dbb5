// Shared by the tests of the L3 stages (route, the router's slow path, conntrack, and
// the NAT stages around them): two ring-backed ports, west and east, with their TX
// queues and the config that names them (TwoPortTest); and the tables, rings and
// contexts a routed, tracked, translated pipeline reads, both ports' pipelines, and a
// runner that collects what each port sent (TwoPortPipelineTest). TearDown frees every
// mbuf before MbufTest checks that the pool is whole again.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "config/config.h"
#include "firewall/policy.h"
#include "flow/flow_context.h"
#include "l3/icmp.h"
#include "l3/neighbour_table.h"
#include "l3/rcu.h"
#include "l3/route_table.h"
#include "l3_support.h"
#include "nat/nat_context.h"
#include "nat/policy.h"
#include "pipeline/nat.h"
#include "pipeline/pipeline.h"
#include "test_support.h"

namespace sluice::test {

// One port as the config writes it (its device and name are the fixture's).
struct PortSpec {
  std::vector<std::string> ipv4;  // interface addresses with their subnet: "10.1.0.1/24"
  std::vector<std::string> ipv6;
  std::string zone;  // firewall zone; empty: the port's own name
  unsigned mtu = 0;  // 0: the config's default
  // The stages before output, as the config lists them: a name, or an object such as
  // {"stage": "xconnect", "peer": "east"}.
  std::vector<nlohmann::ordered_json> pipeline = {"parse", "conntrack", "route"};

  bool has_stage(std::string_view name) const;
};

// The two ports. By default routed and tracked: west 10.1.0.1/24 and fd00:1::1/64 in
// zone "inside", east 10.2.0.1/24 and fd00:2::1/64 in zone "outside".
struct TwoPortSpec {
  PortSpec west{.ipv4 = {"10.1.0.1/24"}, .ipv6 = {"fd00:1::1/64"}, .zone = "inside"};
  PortSpec east{.ipv4 = {"10.2.0.1/24"}, .ipv6 = {"fd00:2::1/64"}, .zone = "outside"};
};

// The router's ports: the default addresses, parse and route only, no zones, and an
// east MTU of 1000.
TwoPortSpec routed_ports();

// A whole config: EAL on lcores 0-1, west (device net_ring0) and east (net_ring1) as
// `ports` says, then `sections` as written ("routes": [...], "conntrack": {...}, ...).
std::string two_port_config(const TwoPortSpec& ports, const std::string& sections = "");

// The gateway behind east (10.2.0.2 and fd00:2::2 where a test routes through it).
inline constexpr Mac kGatewayMac = {0x02, 0, 0, 0, 0x0e, 0x02};

enum class Side { West, East };

// What one run left behind; every mbuf is freed when it goes out of scope.
struct Sent {
  std::vector<rte_mbuf*> west, east, punted;
  Sent() = default;
  Sent(const Sent&) = delete;
  Sent& operator=(const Sent&) = delete;
  Sent(Sent&&) = default;
  ~Sent() {
    free_all(west);
    free_all(east);
    free_all(punted);
  }
};

// Drains `ring` (freeing the mbufs in it), frees it and forgets it.
void free_ring(rte_ring*& ring);

// West and east on rings, with TX queue 0 of each in queues_.
class TwoPortTest : public MbufTest {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Parses `text` into config_; a fatal failure when it does not parse.
  void load_config(const std::string& text);
  // west_mac_ and east_mac_, as a route table takes them.
  l3::RouteTable::PortMacs port_macs() const;

  config::Config config_;
  std::map<std::string, uint16_t> ids_;  // "west" and "east"
  std::unique_ptr<RingPort> west_, east_;
  uint16_t west_id_ = 0, east_id_ = 0;
  // The route table's MACs for the ports: the ethdevs' own, which the conntrack stage
  // reads for its rejects (net_ring cannot change them); a test may set others before
  // it builds a route table.
  Mac west_mac_{}, east_mac_{};
  pipeline::TxQueues queues_;
  std::unique_ptr<pipeline::TxQueue> west_tx_, east_tx_;
};

// The two ports with a route table (published through RCU), a neighbour table, a punt
// ring and an ICMP token bucket (context_), worker 0's flow table on a fake clock with
// the firewall policy and a reject bucket (ct_), and each port's pipeline from the
// config start() was given. When a port's pipeline has "nat", worker 0's NAT context
// too (the NAT policy published through RCU, the NAT state beside the flow table, the
// ports' TX offloads: nat_ctx_), and the builder adds reassemble, nptv6 and nat_src.
class TwoPortPipelineTest : public TwoPortTest {
 protected:
  using Frames = std::vector<std::vector<uint8_t>>;

  void SetUp() override;  // the tables and rings; start() builds the pipelines
  void TearDown() override;

  // (Re)builds from `text`: the route table when a port routes; worker 0's flow
  // context, the policy (generation 1) and the reject bucket when a port tracks; the
  // NAT policy (generation 1) and worker 0's NAT context when a port translates; then
  // west_pipe_ and east_pipe_, steering with `steer` when given.
  void start(const std::string& text, const pipeline::SteerContext* steer = nullptr);
  // Drops the pipelines, the NAT context (and the fragments it held), the flow context
  // and the policies (their rte_acl and rte_hash names free again).
  void stop();
  // `port`'s pipeline from config_; a translated port's NAT stages use `nat`, else
  // worker 0's (nat_ctx_).
  std::unique_ptr<pipeline::Pipeline> build(const std::string& port, const pipeline::ConntrackContext* ct,
                                            const pipeline::SteerContext* steer = nullptr,
                                            const pipeline::NatStageContext* nat = nullptr);

  // A route table from `config` with port_macs(), published in place of the last.
  void publish_routes(const config::Config& config);
  // A static entry: resolved, never aged.
  void add_neighbour(uint16_t port, const char* address, const Mac& mac);
  // A new policy built from `text` while the pipelines keep running.
  void publish_policy(const std::string& text, uint32_t generation);
  // The fake clock: forward by `ms`, then one poll round's expiry.
  void advance(uint32_t ms);
  // /flows as the control thread asks it: a mailbox request served by the worker
  // (worker 0's flow context unless `ctx`).
  std::vector<flow::FlowRecord> list_flows(const flow::FlowFilter& filter = {}, flow::FlowContext* ctx = nullptr);

  // One burst through `pipeline`; then what each port sent and what was punted.
  Sent run_mbufs(const std::vector<rte_mbuf*>& pkts, pipeline::Pipeline& pipeline);
  Sent run_mbufs(const std::vector<rte_mbuf*>& pkts, Side side = Side::West) { return run_mbufs(pkts, pipe(side)); }
  // One burst into west (frames from the host behind it, to west's MAC) or east
  // (frames as they are: run_east() for frames from the gateway).
  Sent run(const Frames& frames, Side side = Side::West);
  // Frames as they are through a test's own pipeline.
  Sent run(const Frames& frames, pipeline::Pipeline* pipeline);
  Sent run_east(const Frames& frames);
  // What the ports sent and what was punted since the last look.
  Sent collect();

  // Frame::eth() addresses kIngressMac: to west's own MAC instead.
  std::vector<uint8_t> to_west(std::vector<uint8_t> frame) const;
  // A frame as the gateway behind east sends it to the router.
  std::vector<uint8_t> from_east(std::vector<uint8_t> frame) const;

  pipeline::Pipeline& pipe(Side side) const { return side == Side::West ? *west_pipe_ : *east_pipe_; }
  static pipeline::Stage* find_stage(const pipeline::Pipeline& pipeline, std::string_view name);
  static uint64_t drops(const pipeline::Stage& stage, Drop reason);
  static uint64_t counter(const pipeline::Stage& stage, std::string_view name);

  std::unique_ptr<l3::Qsbr> qsbr_;
  std::unique_ptr<l3::Published<l3::RouteTable>> routes_;
  std::unique_ptr<l3::NeighbourTable> neighbours_;
  rte_ring* punt_ring_ = nullptr;
  l3::TokenBucket icmp_bucket_;
  pipeline::L3Context context_;

  uint32_t now_ = 100000;  // ms
  std::unique_ptr<flow::FlowContext> flows_;
  std::unique_ptr<l3::Published<firewall::Policy>> policy_;
  l3::TokenBucket reject_bucket_;
  pipeline::ConntrackContext ct_;

  // NAT (a port with the nat stage). The TX offloads each port negotiated, as the
  // runtime records them: none unless a test says so (nat_src reads them per packet).
  nat::AddressRegistry nat_registry_;
  std::unique_ptr<l3::Published<nat::Policy>> nat_policy_;
  std::unique_ptr<nat::NatContext> nat_;
  std::array<uint64_t, RTE_MAX_ETHPORTS> tx_offloads_{};
  pipeline::NatStageContext nat_ctx_;

  std::unique_ptr<pipeline::Pipeline> west_pipe_, east_pipe_;
};

}  // namespace sluice::test
