#include "l3_fixture.h"

#include <algorithm>

#include <rte_cycles.h>
#include <rte_ethdev.h>

namespace sluice::test {

using pipeline::Burst;
using pipeline::Pipeline;

bool PortSpec::has_stage(std::string_view name) const {
  return std::any_of(pipeline.begin(), pipeline.end(), [&](const nlohmann::ordered_json& s) {
    return s.is_string() ? s.get<std::string>() == name : s.value("stage", "") == name;
  });
}

TwoPortSpec routed_ports() {
  TwoPortSpec ports;
  for (PortSpec* port : {&ports.west, &ports.east}) {
    port->zone.clear();
    port->pipeline = {"parse", "route"};
  }
  ports.east.mtu = 1000;
  return ports;
}

std::string two_port_config(const TwoPortSpec& ports, const std::string& sections) {
  auto port = [](const char* name, const char* device, const PortSpec& spec) {
    nlohmann::ordered_json p = {{"name", name}, {"device", device}};
    if (!spec.zone.empty()) p["zone"] = spec.zone;
    if (spec.mtu) p["mtu"] = spec.mtu;
    if (!spec.ipv4.empty()) p["ipv4"] = spec.ipv4;
    if (!spec.ipv6.empty()) p["ipv6"] = spec.ipv6;
    p["pipeline"] = spec.pipeline;
    return p;
  };
  const auto list = nlohmann::ordered_json::array(
      {port("west", "net_ring0", ports.west), port("east", "net_ring1", ports.east)});
  std::string text = R"({"eal": {"lcores": "0-1"}, "ports": )" + list.dump();
  if (!sections.empty()) text += ", " + sections;
  return text + "}";
}

void free_ring(rte_ring*& ring) {
  if (!ring) return;
  void* m;
  while (rte_ring_dequeue(ring, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
  rte_ring_free(ring);
  ring = nullptr;
}

// ---- TwoPortTest ----

void TwoPortTest::SetUp() {
  MbufTest::SetUp();
  if (HasFatalFailure()) return;
  west_ = std::make_unique<RingPort>(pool_);
  east_ = std::make_unique<RingPort>(pool_);
  ASSERT_TRUE(west_->ok() && east_->ok());
  west_id_ = west_->port_id();
  east_id_ = east_->port_id();
  ids_ = {{"west", west_id_}, {"east", east_id_}};
  rte_ether_addr mac;
  ASSERT_EQ(rte_eth_macaddr_get(west_id_, &mac), 0);
  std::copy(mac.addr_bytes, mac.addr_bytes + 6, west_mac_.begin());
  ASSERT_EQ(rte_eth_macaddr_get(east_id_, &mac), 0);
  std::copy(mac.addr_bytes, mac.addr_bytes + 6, east_mac_.begin());

  queues_.fill(nullptr);
  west_tx_ = std::make_unique<pipeline::TxQueue>(west_id_, 0);
  east_tx_ = std::make_unique<pipeline::TxQueue>(east_id_, 0);
  queues_[west_id_] = west_tx_.get();
  queues_[east_id_] = east_tx_.get();
}

void TwoPortTest::TearDown() {
  if (west_tx_) west_tx_->flush();
  if (east_tx_) east_tx_->flush();
  west_.reset();  // frees what the port sent and nobody took
  east_.reset();
  MbufTest::TearDown();
}

void TwoPortTest::load_config(const std::string& text) {
  config::ParseResult parsed = config::parse_config_text(text, "two_port.json");
  ASSERT_TRUE(parsed.ok()) << ::testing::PrintToString(parsed.errors) << "\n" << text;
  config_ = *parsed.config;
}

l3::RouteTable::PortMacs TwoPortTest::port_macs() const {
  l3::RouteTable::PortMacs macs{};
  macs[west_id_] = ether(west_mac_);
  macs[east_id_] = ether(east_mac_);
  return macs;
}

// ---- TwoPortPipelineTest ----

void TwoPortPipelineTest::SetUp() {
  TwoPortTest::SetUp();
  if (HasFatalFailure()) return;
  qsbr_ = std::make_unique<l3::Qsbr>(2);
  routes_ = std::make_unique<l3::Published<l3::RouteTable>>(*qsbr_);
  config::NeighbourSettings settings;
  settings.capacity = 64;
  neighbours_ = std::make_unique<l3::NeighbourTable>(settings, *qsbr_);
  static unsigned serial = 0;
  punt_ring_ = rte_ring_create(("l3_punt_" + std::to_string(serial++)).c_str(), 256, SOCKET_ID_ANY,
                               RING_F_SP_ENQ | RING_F_SC_DEQ);
  ASSERT_NE(punt_ring_, nullptr);
  icmp_bucket_ = l3::TokenBucket(1000, 50, rte_get_tsc_hz());
  context_ = pipeline::L3Context{routes_.get(), neighbours_.get(), punt_ring_, &icmp_bucket_};
}

void TwoPortPipelineTest::TearDown() {
  // Everything that holds mbufs goes before the pool is checked.
  stop();
  free_ring(punt_ring_);
  neighbours_.reset();
  routes_.reset();
  qsbr_.reset();
  TwoPortTest::TearDown();
}

void TwoPortPipelineTest::stop() {
  west_pipe_.reset();
  east_pipe_.reset();
  nat_.reset();  // before the flow table it observes; frees the fragments it held
  nat_ctx_ = pipeline::NatStageContext{};
  flows_.reset();
  policy_.reset();  // frees the Ruleset: its rte_acl names may be used again
  nat_policy_.reset();
}

void TwoPortPipelineTest::start(const std::string& text, const pipeline::SteerContext* steer) {
  stop();
  load_config(text);
  if (HasFatalFailure()) return;
  if (config_.routed()) {
    publish_routes(config_);
    if (HasFatalFailure()) return;
  }
  if (config_.tracked()) {
    std::string error;
    flows_ = flow::FlowContext::create(0, config_.conntrack.capacity, config_.conntrack.capacity_ipv6, SOCKET_ID_ANY,
                                       error, config_.translated() ? config_.nat.capacity : 0);
    ASSERT_NE(flows_, nullptr) << error;
    flows_->set_now(now_);
    policy_ = std::make_unique<l3::Published<firewall::Policy>>(*qsbr_);
    auto policy = firewall::Policy::build(config_, ids_, 1, error);
    ASSERT_NE(policy, nullptr) << error;
    policy_->publish(std::move(policy));
    const auto& limit = config_.firewall.reject_limit;
    reject_bucket_ = l3::TokenBucket(limit.rate_per_second, limit.burst, rte_get_tsc_hz());
    ct_ = pipeline::ConntrackContext{flows_.get(), policy_.get(), &reject_bucket_};
  }
  if (config_.translated()) {
    // As the runtime does it for one worker: the rules published, the worker's NAT state
    // beside its flow table.
    std::string error;
    nat_policy_ = std::make_unique<l3::Published<nat::Policy>>(*qsbr_);
    auto nat_policy = nat::Policy::build(config_, ids_, 1, 1, nat_registry_, error);
    ASSERT_NE(nat_policy, nullptr) << error;
    nat_policy_->publish(std::move(nat_policy));
    nat_ = nat::NatContext::create(0, 1, config_.nat, *flows_, SOCKET_ID_ANY, error);
    ASSERT_NE(nat_, nullptr) << error;
    nat_ctx_ = pipeline::NatStageContext{nat_.get(), nat_policy_.get(), &tx_offloads_};
  }
  const pipeline::ConntrackContext* ct = config_.tracked() ? &ct_ : nullptr;
  west_pipe_ = build("west", ct, steer);
  east_pipe_ = build("east", ct, steer);
}

std::unique_ptr<Pipeline> TwoPortPipelineTest::build(const std::string& port, const pipeline::ConntrackContext* ct,
                                                     const pipeline::SteerContext* steer,
                                                     const pipeline::NatStageContext* nat) {
  const config::PortConfig& port_config = *config_.find_port(port);
  if (!nat && nat_) nat = &nat_ctx_;
  return pipeline::build_pipeline(port_config, ids_, &queues_, config_.routed() ? &context_ : nullptr, ct, steer, nat);
}

void TwoPortPipelineTest::publish_routes(const config::Config& config) {
  std::string error;
  auto table = l3::RouteTable::build(config, ids_, port_macs(), error);
  ASSERT_NE(table, nullptr) << error;
  routes_->publish(std::move(table));  // no reader online: the old table goes at once
}

void TwoPortPipelineTest::add_neighbour(uint16_t port, const char* address, const Mac& mac) {
  auto* e = neighbours_->create(l3::NeighbourKey::of(port, *net::parse_ip(address)), 0);
  ASSERT_NE(e, nullptr) << address;
  neighbours_->update(*e, l3::NeighbourState::Static, ether(mac), 0);
}

void TwoPortPipelineTest::publish_policy(const std::string& text, uint32_t generation) {
  config::ParseResult parsed = config::parse_config_text(text, "two_port.json");
  ASSERT_TRUE(parsed.ok()) << ::testing::PrintToString(parsed.errors);
  std::string error;
  auto policy = firewall::Policy::build(*parsed.config, ids_, generation, error);
  ASSERT_NE(policy, nullptr) << error;
  policy_->publish(std::move(policy));  // no reader online: the old one goes at once
}

void TwoPortPipelineTest::advance(uint32_t ms) {
  now_ += ms;
  flows_->set_now(now_);
  flows_->service();
}

std::vector<flow::FlowRecord> TwoPortPipelineTest::list_flows(const flow::FlowFilter& filter, flow::FlowContext* ctx) {
  flow::FlowContext& c = ctx ? *ctx : *flows_;
  flow::FlowMailbox& mb = c.mailbox();
  mb.op = flow::FlowMailbox::Op::List;
  mb.filter = filter;
  mb.cursor = 0;
  mb.limit = 2000;
  mb.records = c.page();
  mb.count = 0;
  mb.matched = 0;
  mb.next_cursor = flow::kCursorEnd;
  mb.posted.fetch_add(1, std::memory_order_release);
  for (int round = 0; round < 100 && mb.pending(); ++round) c.service();
  EXPECT_FALSE(mb.pending()) << "the worker answers within a few poll rounds";
  return {mb.records, mb.records + mb.count};
}

Sent TwoPortPipelineTest::run_mbufs(const std::vector<rte_mbuf*>& pkts, Pipeline& pipeline) {
  Burst burst;
  for (rte_mbuf* m : pkts) burst.pkts[burst.count++] = m;
  pipeline.run(burst);
  EXPECT_EQ(burst.count, 0) << "every packet is in a TX queue, a ring or the discards";
  burst.free_discards();
  return collect();
}

Sent TwoPortPipelineTest::run(const Frames& frames, Side side) {
  std::vector<rte_mbuf*> pkts;
  for (const auto& f : frames) pkts.push_back(make_mbuf(side == Side::West ? to_west(f) : f));
  return run_mbufs(pkts, pipe(side));
}

Sent TwoPortPipelineTest::run(const Frames& frames, Pipeline* pipeline) {
  std::vector<rte_mbuf*> pkts;
  for (const auto& f : frames) pkts.push_back(make_mbuf(f));
  return run_mbufs(pkts, *pipeline);
}

Sent TwoPortPipelineTest::run_east(const Frames& frames) {
  Frames arriving;
  for (const auto& f : frames) arriving.push_back(from_east(f));
  return run(arriving, Side::East);
}

Sent TwoPortPipelineTest::collect() {
  west_tx_->flush();
  east_tx_->flush();
  Sent sent;
  sent.west = west_->take_sent();
  sent.east = east_->take_sent();
  rte_mbuf* punted[pipeline::kMaxBurst];
  unsigned n;
  while ((n = rte_ring_dequeue_burst(punt_ring_, reinterpret_cast<void**>(punted), pipeline::kMaxBurst, nullptr)) > 0)
    sent.punted.insert(sent.punted.end(), punted, punted + n);
  return sent;
}

std::vector<uint8_t> TwoPortPipelineTest::to_west(std::vector<uint8_t> frame) const {
  if (mac_at(frame.data()) == kIngressMac) set_mac(frame, 0, west_mac_);
  return frame;
}

std::vector<uint8_t> TwoPortPipelineTest::from_east(std::vector<uint8_t> frame) const {
  set_mac(frame, 0, east_mac_);
  set_mac(frame, 6, kGatewayMac);
  return frame;
}

pipeline::Stage* TwoPortPipelineTest::find_stage(const Pipeline& pipeline, std::string_view name) {
  for (const auto& s : pipeline.stages())
    if (s->name() == name) return s.get();
  return nullptr;
}

uint64_t TwoPortPipelineTest::drops(const pipeline::Stage& stage, Drop reason) {
  return stage.counters().drops[static_cast<size_t>(reason)].get();
}

uint64_t TwoPortPipelineTest::counter(const pipeline::Stage& stage, std::string_view name) {
  pipeline::NamedCounters counters;
  stage.read_counters(counters);
  for (const auto& [n, v] : counters)
    if (n == name) return v;
  ADD_FAILURE() << "no counter " << name << " in " << stage.name();
  return 0;
}

}  // namespace sluice::test
