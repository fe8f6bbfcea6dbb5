// nat::Policy and nat::NatContext: a new flow's translation as the nat stage asks for
// it (masquerade, pools, port ranges per worker, endpoint-dependent and -independent
// mapping, port forwards, hairpin), the ports a port forward keeps from source NAT, and
// where software steering sends translated packets. Configs are parsed from JSON as an
// operator writes them; ports lan (id 0, zone inside) and wan (id 1, zone outside).
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/config.h"
#include "flow/flow_context.h"
#include "nat/event_log.h"
#include "nat/nat_context.h"
#include "nat/policy.h"
#include "nat/translate.h"
#include "nat_support.h"

namespace sluice::nat {
namespace {

using flow::FlowKey4;
using flow::kNoEntry;
using flow::NatTuple4;
using test::addr4_raw;

constexpr uint16_t kLan = 0, kWan = 1;
constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp = 1;

NatTuple4 tuple(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
  return NatTuple4{addr4_raw(src), addr4_raw(dst), htons(sport), htons(dport)};
}
uint16_t port_of(uint16_t net) { return ntohs(net); }

// The key the responder's packets carry, and the slot of it the responder holds.
FlowKey4 reply_key_of(const flow::NatExt4& x, uint16_t zone, uint8_t proto, unsigned* responder_slot = nullptr) {
  FlowKey4 k;
  const unsigned slot = flow::make_key4(k, x.reply.src, x.reply.dst, x.reply.sport, x.reply.dport, proto, zone);
  if (responder_slot) *responder_slot = slot;
  return k;
}

class NatContextTest : public ::testing::Test {
 protected:
  struct Worker {
    std::unique_ptr<flow::FlowContext> flows;  // outlives the NAT context, which observes its table
    std::unique_ptr<NatContext> nat;
    flow::FlowTable4& table() { return flows->table4(); }
  };

  // The ports, then `nat` as the section's members.
  void configure(const std::string& nat, unsigned workers = 1, unsigned capacity = 1024) {
    const std::string text = R"({"eal": {"lcores": "0-1"}, "ports": [
        {"name": "lan", "device": "net_ring0", "zone": "inside", "ipv4": ["192.168.1.1/24"],
         "pipeline": ["parse", "conntrack", "nat", "route"]},
        {"name": "wan", "device": "net_ring1", "zone": "outside", "ipv4": ["203.0.113.1/24"],
         "pipeline": ["parse", "conntrack", "nat", "route"]}],
      "nat": {"capacity": )" + std::to_string(capacity) + ", " + nat + "}}";
    config::ParseResult parsed = config::parse_config_text(text, "nat_context_test.json");
    ASSERT_TRUE(parsed.ok()) << ::testing::PrintToString(parsed.errors) << "\n" << text;
    config_ = *parsed.config;
    std::string error;
    workers_.clear();
    policy_ = Policy::build(config_, {{"lan", kLan}, {"wan", kWan}}, workers, ++generation_, registry_, error);
    ASSERT_TRUE(policy_) << error;
    for (unsigned w = 0; w < workers; ++w) {
      Worker worker;
      worker.flows = flow::FlowContext::create(w, std::max(4096u, capacity), 0, SOCKET_ID_ANY, error, config_.nat.capacity);
      ASSERT_TRUE(worker.flows) << error;
      worker.nat = NatContext::create(w, workers, config_.nat, *worker.flows, SOCKET_ID_ANY, error);
      ASSERT_TRUE(worker.nat) << error;
      worker.nat->see_policy(*policy_);
      workers_.push_back(std::move(worker));
    }
  }

  Worker& worker(unsigned w = 0) { return workers_.at(w); }

  // A new flow as conntrack makes it on `in_port`: a plain entry, armed.
  uint32_t open(Worker& w, uint16_t in_port, const NatTuple4& t, uint8_t proto) {
    FlowKey4 key;
    const unsigned opener = flow::make_key4(key, t.src, t.dst, t.sport, t.dport, proto, policy_->conntrack_zone(in_port));
    EXPECT_EQ(w.table().find(key, key.hash()), kNoEntry) << "a new flow";
    flow::Victim victim;
    const uint32_t index = w.table().insert(key, key.hash(), now_, victim);
    EXPECT_NE(index, kNoEntry);
    if (index == kNoEntry) return index;
    flow::FlowEntry4& e = w.table().at(index);
    e.body.state = static_cast<uint8_t>(flow::GenericState::Unreplied);
    if (opener) e.body.flags |= flow::kFlowOpenerSlot1;
    w.table().arm(index, now_ + 30000, now_);
    return index;
  }

  // Opens the flow and asks for its translation; a refused flow's entry goes, as the
  // nat stage removes it.
  NatContext::Mapped map(Worker& w, uint16_t in_port, uint16_t out_port, const NatTuple4& t, uint8_t proto) {
    const uint32_t plain = open(w, in_port, t, proto);
    NatContext::Mapped m = w.nat->map_flow(*policy_, in_port, out_port, plain, t, proto, now_);
    if (m.refused) w.table().remove(plain);
    return m;
  }
  NatContext::Mapped map(uint16_t in_port, uint16_t out_port, const NatTuple4& t, uint8_t proto) {
    return map(worker(), in_port, out_port, t, proto);
  }

  // The translation a mapped flow got; checks that both of its keys find it.
  const flow::NatExt4& ext(Worker& w, uint32_t index, uint8_t proto, uint16_t reply_zone = 0) {
    const flow::NatExt4& x = w.table().ext(index);
    const FlowKey4 reply = reply_key_of(x, reply_zone, proto);
    EXPECT_EQ(x.reply_key, reply);
    EXPECT_EQ(w.table().find(reply, reply.hash()), index | flow::kReplyBit) << "the reply key is in the table";
    return x;
  }
  const flow::NatExt4& ext(uint32_t index, uint8_t proto) { return ext(worker(), index, proto); }

  uint16_t slot_of(const char* addr) const {
    const OutsideAddress* o = policy_->outside(addr4_raw(addr));
    EXPECT_NE(o, nullptr) << addr << " is an outside address";
    return o ? o->slot : kNoSlot;
  }

  config::Config config_;
  AddressRegistry registry_;
  uint32_t generation_ = 0;
  std::unique_ptr<Policy> policy_;
  std::vector<Worker> workers_;
  uint32_t now_ = 1000;
};

constexpr const char* kMasquerade = R"("snat": [{"name": "out", "out_port": "wan", "masquerade": true, "ports": "20000-29999"}])";

TEST_F(NatContextTest, MasqueradeGivesTheWanAddressAndAPortInRange) {
  configure(kMasquerade);
  const NatTuple4 t = tuple("192.168.1.20", 40000, "8.8.8.8", 53);
  const NatContext::Mapped m = map(kLan, kWan, t, kUdp);
  ASSERT_FALSE(m.refused);
  ASSERT_NE(m.index, kNoEntry);
  EXPECT_TRUE(flow::is_pair(m.index));
  EXPECT_EQ(m.n_evicted, 0u);
  const flow::NatExt4& x = ext(m.index, kUdp);
  // The original tuple as the opener sent it; the reply as the server will send it.
  EXPECT_EQ(x.orig, t);
  EXPECT_EQ(x.reply.src, addr4_raw("8.8.8.8"));
  EXPECT_EQ(port_of(x.reply.sport), 53);
  EXPECT_EQ(x.reply.dst, addr4_raw("203.0.113.1"));
  EXPECT_GE(port_of(x.reply.dport), 20000);
  EXPECT_LE(port_of(x.reply.dport), 29999);
  EXPECT_EQ(x.kind, flow::kNatSource);
  EXPECT_EQ(x.rule, 1);
  EXPECT_EQ(policy_->rule_name(x.rule), "out");
  EXPECT_EQ(x.address_slot, slot_of("203.0.113.1"));
  EXPECT_EQ(policy_->port_address(kWan), addr4_raw("203.0.113.1"));
  // What the rewrites will make of each direction.
  EXPECT_TRUE(flow::nat_rewrites_src(x, 0));
  EXPECT_FALSE(flow::nat_rewrites_dst(x, 0));
  EXPECT_TRUE(flow::nat_rewrites_dst(x, 1));
  EXPECT_FALSE(flow::nat_rewrites_src(x, 1));
  const Endpoint out = target(x, 0, Side::Source);
  EXPECT_EQ(out.addr, addr4_raw("203.0.113.1"));
  EXPECT_EQ(out.port, x.reply.dport);
  const Endpoint back = target(x, 1, Side::Destination);
  EXPECT_EQ(back.addr, t.src);
  EXPECT_EQ(back.port, t.sport);
  // Both keys find the pair, each with its direction.
  flow::FlowTable4& table = worker().table();
  FlowKey4 orig_key;
  const unsigned opener = flow::make_key4(orig_key, t.src, t.dst, t.sport, t.dport, kUdp, 0);
  EXPECT_EQ(table.find(orig_key, orig_key.hash()), m.index);
  EXPECT_EQ(table.pair_direction(m.index, opener), 0);
  unsigned responder = 0;
  reply_key_of(x, 0, kUdp, &responder);
  EXPECT_EQ(table.pair_direction(m.index | flow::kReplyBit, responder), 1);
  // Counted once everywhere.
  EXPECT_EQ(worker().nat->counters().mappings_created.get(), 1u);
  EXPECT_EQ(worker().nat->address(x.address_slot).in_use.get(), 1u);
  EXPECT_EQ(worker().nat->address(x.address_slot).allocated.get(), 1u);
  EXPECT_EQ(worker().nat->rules()[1].translated.get(), 1u);
  // Gone, it is counted gone.
  table.remove(m.index);
  EXPECT_EQ(worker().nat->counters().mappings_removed.get(), 1u);
  EXPECT_EQ(worker().nat->address(x.address_slot).in_use.get(), 0u);
}

TEST_F(NatContextTest, MasqueradeKeepsTheInsidePortWhenItIsFree) {
  configure(R"("snat": [{"out_port": "wan", "masquerade": true}])");
  const NatContext::Mapped m = map(kLan, kWan, tuple("192.168.1.20", 40000, "8.8.8.8", 53), kUdp);
  ASSERT_NE(m.index, kNoEntry);
  EXPECT_EQ(port_of(ext(m.index, kUdp).reply.dport), 40000);
}

TEST_F(NatContextTest, IcmpQueryGetsAnIdentifierFromTheRange) {
  configure(kMasquerade);
  NatTuple4 t = tuple("192.168.1.20", 0x1234, "8.8.8.8", 0);  // identifier, code 0
  const NatContext::Mapped m = map(kLan, kWan, t, kIcmp);
  ASSERT_NE(m.index, kNoEntry);
  const flow::NatExt4& x = ext(m.index, kIcmp);
  EXPECT_EQ(x.reply.dst, addr4_raw("203.0.113.1"));
  EXPECT_GE(port_of(x.reply.dport), 20000);
  EXPECT_LE(port_of(x.reply.dport), 29999);
  EXPECT_EQ(x.reply.sport, 0) << "the code word, untouched";
}

TEST_F(NatContextTest, FlowMatchingNoRuleStaysUntranslated) {
  configure(kMasquerade);
  const NatTuple4 t = tuple("192.168.1.20", 40000, "192.168.1.30", 22);
  const uint32_t plain = open(worker(), kLan, t, kTcp);
  const NatContext::Mapped m = worker().nat->map_flow(*policy_, kLan, kLan, plain, t, kTcp, now_);
  EXPECT_EQ(m.index, kNoEntry);
  EXPECT_FALSE(m.refused);
  FlowKey4 key;
  flow::make_key4(key, t.src, t.dst, t.sport, t.dport, kTcp, 0);
  EXPECT_EQ(worker().table().find(key, key.hash()), plain) << "still the plain entry";
  EXPECT_EQ(worker().table().pairs_active(), 0u);
  EXPECT_EQ(worker().nat->counters().mappings_created.get(), 0u);
}

constexpr const char* kPoolOf100 =
    R"("snat": [{"name": "pool", "out_port": "wan", "pool": ["198.51.100.10/32"], "ports": "2000-2099"}])";

TEST_F(NatContextTest, PoolOfOneAddressGivesEachOfItsPortsOnceThenRefuses) {
  configure(kPoolOf100);
  const uint16_t slot = slot_of("198.51.100.10");
  std::map<uint16_t, uint32_t> by_port;  // outside port -> pair
  for (uint32_t i = 0; i < 100; ++i) {
    const std::string host = "10.0." + std::to_string(i / 200) + "." + std::to_string(10 + i % 200);
    const NatContext::Mapped m = map(kLan, kWan, tuple(host.c_str(), 40000, "8.8.8.8", 53), kUdp);
    ASSERT_FALSE(m.refused) << "flow " << i;
    const flow::NatExt4& x = ext(m.index, kUdp);
    EXPECT_EQ(x.reply.dst, addr4_raw("198.51.100.10"));
    const uint16_t port = port_of(x.reply.dport);
    EXPECT_GE(port, 2000);
    EXPECT_LE(port, 2099);
    EXPECT_TRUE(by_port.emplace(port, m.index).second) << "port " << port << " given twice";
  }
  EXPECT_EQ(by_port.size(), 100u);
  // The 101st finds none: refused, counted for the rule and the address.
  const NatContext::Mapped refused = map(kLan, kWan, tuple("10.0.1.1", 40000, "8.8.8.8", 53), kUdp);
  EXPECT_TRUE(refused.refused);
  EXPECT_EQ(refused.index, kNoEntry);
  EXPECT_EQ(refused.reason, Drop::NatNoPort);
  NatContext& nat = *worker().nat;
  EXPECT_EQ(nat.counters().no_port.get(), 1u);
  EXPECT_EQ(nat.rules()[1].no_port.get(), 1u);
  EXPECT_EQ(nat.rules()[1].translated.get(), 100u);
  EXPECT_EQ(nat.address(slot).exhausted.get(), 1u);
  EXPECT_EQ(nat.address(slot).in_use.get(), 100u);
  EXPECT_EQ(nat.address(slot).allocated.get(), 100u);
  // Another destination has all 100 ports free again (endpoint-dependent).
  EXPECT_FALSE(map(kLan, kWan, tuple("10.0.1.1", 40000, "8.8.4.4", 53), kUdp).refused);

  // Flows that leave give their ports back, however they leave.
  std::set<uint16_t> freed;
  unsigned k = 0;
  for (auto it = by_port.begin(); k < 10; ++it, ++k) {
    freed.insert(it->first);
    worker().table().remove(k % 2 ? it->second : it->second | flow::kReplyBit);
  }
  EXPECT_EQ(nat.address(slot).in_use.get(), 91u);
  EXPECT_EQ(nat.counters().mappings_removed.get(), 10u);
  std::set<uint16_t> again;
  for (uint32_t i = 0; i < 10; ++i) {
    const std::string host = "10.0.2." + std::to_string(10 + i);
    const NatContext::Mapped m = map(kLan, kWan, tuple(host.c_str(), 40000, "8.8.8.8", 53), kUdp);
    ASSERT_FALSE(m.refused) << "flow " << i;
    again.insert(port_of(ext(m.index, kUdp).reply.dport));
  }
  EXPECT_EQ(again, freed);
  EXPECT_TRUE(map(kLan, kWan, tuple("10.0.2.100", 40000, "8.8.8.8", 53), kUdp).refused);
  EXPECT_EQ(nat.counters().no_port.get(), 2u);
}

TEST_F(NatContextTest, ExpiredFlowsGiveTheirPortsBack) {
  configure(kPoolOf100);
  for (uint32_t i = 0; i < 100; ++i) {
    const std::string host = "10.0.0." + std::to_string(10 + i);
    ASSERT_FALSE(map(kLan, kWan, tuple(host.c_str(), 40000, "8.8.8.8", 53), kUdp).refused);
  }
  EXPECT_TRUE(map(kLan, kWan, tuple("10.0.1.1", 40000, "8.8.8.8", 53), kUdp).refused);
  // Past their deadline, the worker's service round expires them.
  flow::FlowContext& flows = *worker().flows;
  flows.set_now(now_ + 31000);
  for (int round = 0; round < 10; ++round) flows.service();
  EXPECT_EQ(flows.active(), 0u);
  EXPECT_EQ(worker().nat->counters().mappings_removed.get(), 100u);
  EXPECT_EQ(worker().nat->address(slot_of("198.51.100.10")).in_use.get(), 0u);
  now_ += 31000;
  EXPECT_FALSE(map(kLan, kWan, tuple("10.0.1.1", 40000, "8.8.8.8", 53), kUdp).refused);
}

TEST_F(NatContextTest, EachWorkerAllocatesOnlyItsShareOfPorts) {
  configure(kPoolOf100, 2);
  for (unsigned w = 0; w < 2; ++w) {
    Worker& wk = worker(w);
    EXPECT_EQ(wk.nat->worker(), w);
    EXPECT_EQ(wk.nat->workers(), 2u);
    std::set<uint16_t> ports;
    // An inside port the worker owns is kept; one it does not own is not.
    const uint16_t own = static_cast<uint16_t>(2010 + w), other = static_cast<uint16_t>(2011 - w);
    NatContext::Mapped m = map(wk, kLan, kWan, tuple("10.0.0.1", own, "8.8.8.8", 53), kUdp);
    ASSERT_FALSE(m.refused);
    EXPECT_EQ(port_of(ext(wk, m.index, kUdp).reply.dport), own);
    ports.insert(own);
    m = map(wk, kLan, kWan, tuple("10.0.0.2", other, "8.8.8.8", 53), kUdp);
    ASSERT_FALSE(m.refused);
    EXPECT_NE(port_of(ext(wk, m.index, kUdp).reply.dport), other);
    ports.insert(port_of(ext(wk, m.index, kUdp).reply.dport));
    for (uint32_t i = 2; i < 50; ++i) {
      const std::string host = "10.0.0." + std::to_string(10 + i);
      m = map(wk, kLan, kWan, tuple(host.c_str(), 40000, "8.8.8.8", 53), kUdp);
      ASSERT_FALSE(m.refused) << "worker " << w << " flow " << i;
      ports.insert(port_of(ext(wk, m.index, kUdp).reply.dport));
    }
    EXPECT_EQ(ports.size(), 50u) << "half of the 100 ports";
    for (uint16_t p : ports) {
      EXPECT_EQ(p % 2, w) << "port " << p << " belongs to the other worker";
      EXPECT_EQ(port_owner(p, 2), w);
    }
    const NatContext::Mapped refused = map(wk, kLan, kWan, tuple("10.0.1.1", 40000, "8.8.8.8", 53), kUdp);
    EXPECT_TRUE(refused.refused) << "worker " << w << " has no port of its own left";
    EXPECT_EQ(refused.reason, Drop::NatNoPort);
  }
}

TEST_F(NatContextTest, EndpointDependentMappingMayGiveOneEndpointDifferentPorts) {
  configure(R"("snat": [{"out_port": "wan", "masquerade": true, "ports": "40000-40001"}])");
  // A keeps its port toward dest1, B takes the same port toward dest2, so A toward dest2
  // needs another: A's outside endpoint depends on where it sends.
  const NatContext::Mapped a1 = map(kLan, kWan, tuple("192.168.1.20", 40000, "8.8.8.8", 53), kUdp);
  const NatContext::Mapped b2 = map(kLan, kWan, tuple("192.168.1.21", 40000, "9.9.9.9", 53), kUdp);
  const NatContext::Mapped a2 = map(kLan, kWan, tuple("192.168.1.20", 40000, "9.9.9.9", 53), kUdp);
  ASSERT_NE(a1.index, kNoEntry);
  ASSERT_NE(b2.index, kNoEntry);
  ASSERT_NE(a2.index, kNoEntry);
  EXPECT_EQ(port_of(ext(a1.index, kUdp).reply.dport), 40000);
  EXPECT_EQ(port_of(ext(b2.index, kUdp).reply.dport), 40000);
  EXPECT_EQ(port_of(ext(a2.index, kUdp).reply.dport), 40001);
  EXPECT_FALSE(ext(a2.index, kUdp).kind & flow::kNatEim);
  EXPECT_EQ(worker().nat->eim_active(), 0u);
}

TEST_F(NatContextTest, EndpointDependentMappingNeverSharesAReplyTuple) {
  configure(kMasquerade);
  std::set<std::pair<uint32_t, uint16_t>> outside;
  std::set<FlowKey4, bool (*)(const FlowKey4&, const FlowKey4&)> replies(
      [](const FlowKey4& a, const FlowKey4& b) { return std::memcmp(&a, &b, sizeof(a)) < 0; });
  for (uint32_t i = 0; i < 300; ++i) {
    // Many hosts, one inside port, one server: every one needs its own outside port.
    const std::string host = "10.0." + std::to_string(i / 200) + "." + std::to_string(1 + i % 200);
    const NatContext::Mapped m = map(kLan, kWan, tuple(host.c_str(), 40000, "8.8.8.8", 53), kUdp);
    ASSERT_FALSE(m.refused);
    const flow::NatExt4& x = ext(m.index, kUdp);
    EXPECT_TRUE(outside.emplace(x.reply.dst, x.reply.dport).second) << "flow " << i;
    EXPECT_TRUE(replies.insert(x.reply_key).second);
  }
  EXPECT_EQ(worker().table().pairs_active(), 300u);
}

constexpr const char* kEim =
    R"("snat": [{"name": "cone", "out_port": "wan", "masquerade": true, "ports": "20000-29999", "mapping": "endpoint-independent"}])";

TEST_F(NatContextTest, EndpointIndependentMappingGivesOneOutsideEndpointForEveryDestination) {
  configure(kEim);
  NatContext& nat = *worker().nat;
  std::vector<uint32_t> pairs;
  uint16_t mapped = 0;
  for (const char* server : {"8.8.8.8", "9.9.9.9", "1.1.1.1"}) {
    const NatContext::Mapped m = map(kLan, kWan, tuple("192.168.1.20", 40000, server, 53), kUdp);
    ASSERT_FALSE(m.refused) << server;
    const flow::NatExt4& x = ext(m.index, kUdp);
    EXPECT_EQ(x.reply.dst, addr4_raw("203.0.113.1"));
    if (!mapped) mapped = x.reply.dport;
    EXPECT_EQ(x.reply.dport, mapped) << "the same outside port toward " << server;
    EXPECT_EQ(x.kind, flow::kNatSource | flow::kNatEim);
    pairs.push_back(m.index);
  }
  EXPECT_EQ(nat.eim_active(), 1u);
  const EimMapping* mapping = nat.eim_by_inside(addr4_raw("192.168.1.20"), htons(40000), kUdp);
  ASSERT_NE(mapping, nullptr);
  EXPECT_EQ(mapping->outside_addr, addr4_raw("203.0.113.1"));
  EXPECT_EQ(mapping->outside_port, mapped);
  EXPECT_EQ(mapping->refs, 3u);
  EXPECT_EQ(nat.eim_by_outside(addr4_raw("203.0.113.1"), mapped, kUdp), mapping);
  // Another inside host never gets that outside port, whatever its destination.
  const NatContext::Mapped other = map(kLan, kWan, tuple("192.168.1.21", 40000, "4.4.4.4", 53), kUdp);
  ASSERT_FALSE(other.refused);
  EXPECT_NE(ext(other.index, kUdp).reply.dport, mapped);
  EXPECT_EQ(nat.eim_active(), 2u);

  // From outside, anyone may reach the mapped port (endpoint-independent filtering).
  for (const char* stranger : {"198.51.100.99", "8.8.8.8"}) {
    const NatTuple4 in{addr4_raw(stranger), addr4_raw("203.0.113.1"), htons(7777), mapped};
    const Destination d = nat.destination_of(*policy_, kWan, in, kUdp);
    EXPECT_EQ(d.kind, Destination::kMapping) << stranger;
    EXPECT_EQ(d.addr, addr4_raw("192.168.1.20"));
    EXPECT_EQ(d.port, htons(40000));
  }
  // Not another protocol, not an unmapped port.
  const NatTuple4 tcp_in{addr4_raw("198.51.100.99"), addr4_raw("203.0.113.1"), htons(7777), mapped};
  EXPECT_EQ(nat.destination_of(*policy_, kWan, tcp_in, kTcp).kind, Destination::kNone);
  uint16_t unmapped = 20000;
  while (htons(unmapped) == mapped || htons(unmapped) == ext(other.index, kUdp).reply.dport) ++unmapped;
  const NatTuple4 nothing{addr4_raw("198.51.100.99"), addr4_raw("203.0.113.1"), htons(7777), htons(unmapped)};
  EXPECT_EQ(nat.destination_of(*policy_, kWan, nothing, kUdp).kind, Destination::kNone);
}

TEST_F(NatContextTest, InboundFlowThroughAnEimMappingReachesTheInsideEndpoint) {
  configure(kEim);
  NatContext& nat = *worker().nat;
  const NatContext::Mapped out = map(kLan, kWan, tuple("192.168.1.20", 40000, "8.8.8.8", 53), kUdp);
  ASSERT_FALSE(out.refused);
  const uint16_t mapped = ext(out.index, kUdp).reply.dport;
  const NatTuple4 in{addr4_raw("198.51.100.99"), addr4_raw("203.0.113.1"), htons(7777), mapped};
  const NatContext::Mapped inbound = map(kWan, kLan, in, kUdp);
  ASSERT_FALSE(inbound.refused);
  ASSERT_NE(inbound.index, kNoEntry);
  const flow::NatExt4& x = ext(inbound.index, kUdp);
  EXPECT_EQ(x.kind, flow::kNatDestination | flow::kNatEim | flow::kNatInbound);
  EXPECT_EQ(x.orig, in);
  EXPECT_EQ(x.reply.src, addr4_raw("192.168.1.20"));
  EXPECT_EQ(x.reply.sport, htons(40000));
  EXPECT_EQ(x.reply.dst, in.src);
  EXPECT_EQ(x.reply.dport, in.sport);
  EXPECT_EQ(x.rule, 1) << "the mapping's rule";
  EXPECT_EQ(nat.counters().eim_inbound.get(), 1u);
  EXPECT_EQ(nat.eim_by_inside(addr4_raw("192.168.1.20"), htons(40000), kUdp)->refs, 2u);
  EXPECT_EQ(nat.eim_active(), 1u);
}

TEST_F(NatContextTest, EimMappingGoesWithItsLastFlow) {
  configure(kEim);
  NatContext& nat = *worker().nat;
  std::vector<uint32_t> pairs;
  for (const char* server : {"8.8.8.8", "9.9.9.9"}) {
    const NatContext::Mapped m = map(kLan, kWan, tuple("192.168.1.20", 40000, server, 53), kUdp);
    ASSERT_FALSE(m.refused);
    pairs.push_back(m.index);
  }
  const uint16_t mapped = ext(pairs[0], kUdp).reply.dport;
  const NatTuple4 in{addr4_raw("198.51.100.99"), addr4_raw("203.0.113.1"), htons(7777), mapped};
  const NatContext::Mapped inbound = map(kWan, kLan, in, kUdp);
  ASSERT_FALSE(inbound.refused);
  pairs.push_back(inbound.index);
  ASSERT_EQ(nat.eim_active(), 1u);
  // Removed by either key, the mapping stays while one flow holds it.
  worker().table().remove(pairs[0]);
  EXPECT_EQ(nat.eim_active(), 1u);
  worker().table().remove(pairs[2] | flow::kReplyBit);
  EXPECT_EQ(nat.eim_active(), 1u);
  EXPECT_EQ(nat.eim_by_inside(addr4_raw("192.168.1.20"), htons(40000), kUdp)->refs, 1u);
  worker().table().remove(pairs[1]);
  EXPECT_EQ(nat.eim_active(), 0u);
  EXPECT_EQ(nat.counters().eim_created.get(), 1u);
  EXPECT_EQ(nat.counters().eim_removed.get(), 1u);
  EXPECT_EQ(nat.eim_by_inside(addr4_raw("192.168.1.20"), htons(40000), kUdp), nullptr);
  EXPECT_EQ(nat.eim_by_outside(addr4_raw("203.0.113.1"), mapped, kUdp), nullptr);
  EXPECT_EQ(nat.destination_of(*policy_, kWan, in, kUdp).kind, Destination::kNone) << "no longer reachable";
  // A new flow makes a new mapping.
  EXPECT_FALSE(map(kLan, kWan, tuple("192.168.1.20", 40000, "8.8.8.8", 53), kUdp).refused);
  EXPECT_EQ(nat.eim_active(), 1u);
}

constexpr const char* kForward = R"("snat": [{"name": "out", "out_port": "wan", "masquerade": true}],
    "dnat": [{"name": "web", "in_port": "wan", "protocol": "tcp", "port": "8000-8009", "to_address": "192.168.1.10", "to_port": 80},
             {"name": "ssh", "in_port": "wan", "protocol": "tcp", "port": 2222, "to_address": "192.168.1.11"}])";

TEST_F(NatContextTest, PortForwardMapsEachPortByItsOffset) {
  configure(kForward);
  NatContext& nat = *worker().nat;
  const NatTuple4 t = tuple("198.51.100.7", 50000, "203.0.113.1", 8005);
  const Destination d = nat.destination_of(*policy_, kWan, t, kTcp);
  EXPECT_EQ(d.kind, Destination::kForward);
  EXPECT_EQ(d.addr, addr4_raw("192.168.1.10"));
  EXPECT_EQ(port_of(d.port), 85) << "8005 is the sixth port: 80 + 5";
  ASSERT_NE(d.rule, nullptr);
  EXPECT_EQ(d.rule->name, "web");

  const NatContext::Mapped m = map(kWan, kLan, t, kTcp);
  ASSERT_FALSE(m.refused);
  ASSERT_NE(m.index, kNoEntry);
  const flow::NatExt4& x = ext(m.index, kTcp);
  EXPECT_EQ(x.kind, flow::kNatDestination) << "inbound: no source translation";
  EXPECT_EQ(x.rule, 2) << "snat rules first, then dnat";
  EXPECT_EQ(policy_->rule_name(x.rule), "web");
  EXPECT_EQ(x.orig, t);
  EXPECT_EQ(x.reply.src, addr4_raw("192.168.1.10"));
  EXPECT_EQ(port_of(x.reply.sport), 85);
  EXPECT_EQ(x.reply.dst, t.src);
  EXPECT_EQ(x.reply.dport, t.sport);
  EXPECT_TRUE(flow::nat_rewrites_dst(x, 0));
  EXPECT_FALSE(flow::nat_rewrites_src(x, 0));
  EXPECT_EQ(nat.rules()[2].translated.get(), 1u);
  // Each port of the range, by its offset; a forward without to_port keeps the port.
  for (uint16_t port = 8000; port <= 8009; ++port) {
    const Destination each = nat.destination_of(*policy_, kWan, tuple("198.51.100.8", 50000, "203.0.113.1", port), kTcp);
    EXPECT_EQ(port_of(each.port), 80 + (port - 8000));
  }
  const Destination ssh = nat.destination_of(*policy_, kWan, tuple("198.51.100.7", 50001, "203.0.113.1", 2222), kTcp);
  EXPECT_EQ(ssh.kind, Destination::kForward);
  EXPECT_EQ(ssh.addr, addr4_raw("192.168.1.11"));
  EXPECT_EQ(port_of(ssh.port), 2222);
  // Outside the range, another protocol, another ingress port: not forwarded.
  EXPECT_EQ(nat.destination_of(*policy_, kWan, tuple("198.51.100.7", 50000, "203.0.113.1", 8010), kTcp).kind,
            Destination::kNone);
  EXPECT_EQ(nat.destination_of(*policy_, kWan, tuple("198.51.100.7", 50000, "203.0.113.1", 8005), kUdp).kind,
            Destination::kNone);
  EXPECT_EQ(nat.destination_of(*policy_, kLan, tuple("192.168.1.20", 50000, "203.0.113.1", 8005), kTcp).kind,
            Destination::kNone);
  const NatContext::Mapped plain = map(kWan, kLan, tuple("198.51.100.7", 50000, "203.0.113.1", 8010), kTcp);
  EXPECT_FALSE(plain.refused);
  EXPECT_EQ(plain.index, kNoEntry) << "no rule: untranslated";
}

constexpr const char* kHairpin = R"("snat": [{"out_port": "wan", "masquerade": true}],
    "dnat": [{"name": "web", "dst": "203.0.113.1", "protocol": "tcp", "port": "8000-8009", "to_address": "192.168.1.10", "to_port": 80}])";

TEST_F(NatContextTest, HairpinTranslatesTheSourceToTheForwardsAddress) {
  configure(kHairpin);
  // An inside client reaches the inside server by its public address; the route sends
  // it back out of lan, the zone it came from.
  const NatTuple4 t = tuple("192.168.1.20", 40000, "203.0.113.1", 8005);
  const NatContext::Mapped m = map(kLan, kLan, t, kTcp);
  ASSERT_FALSE(m.refused);
  ASSERT_NE(m.index, kNoEntry);
  const flow::NatExt4& x = ext(m.index, kTcp);
  EXPECT_EQ(x.kind, flow::kNatSource | flow::kNatDestination | flow::kNatHairpin);
  EXPECT_EQ(x.reply.src, addr4_raw("192.168.1.10"));
  EXPECT_EQ(port_of(x.reply.sport), 85);
  EXPECT_EQ(x.reply.dst, addr4_raw("203.0.113.1")) << "the server answers the public address";
  EXPECT_EQ(port_of(x.reply.dport), 40000) << "the client's port, free there";
  EXPECT_EQ(x.address_slot, slot_of("203.0.113.1"));
  EXPECT_EQ(worker().nat->counters().hairpinned.get(), 1u);
  // Both ends rewritten both ways.
  EXPECT_TRUE(flow::nat_rewrites_src(x, 0));
  EXPECT_TRUE(flow::nat_rewrites_dst(x, 0));
  EXPECT_TRUE(flow::nat_rewrites_src(x, 1));
  EXPECT_TRUE(flow::nat_rewrites_dst(x, 1));
  // A second client with the same port needs another outside port.
  const NatContext::Mapped second = map(kLan, kLan, tuple("192.168.1.21", 40000, "203.0.113.1", 8005), kTcp);
  ASSERT_FALSE(second.refused);
  EXPECT_NE(ext(second.index, kTcp).reply.dport, x.reply.dport);
  // From outside, the same forward is no hairpin.
  const NatContext::Mapped outside = map(kWan, kLan, tuple("198.51.100.7", 50000, "203.0.113.1", 8005), kTcp);
  ASSERT_FALSE(outside.refused);
  EXPECT_EQ(ext(outside.index, kTcp).kind, flow::kNatDestination);
}

TEST_F(NatContextTest, HairpinOffLeavesTheSourceAlone) {
  configure(R"("snat": [{"out_port": "wan", "masquerade": true}],
    "dnat": [{"dst": "203.0.113.1", "protocol": "tcp", "port": 8000, "to_address": "192.168.1.10", "hairpin": false}])");
  const NatContext::Mapped m = map(kLan, kLan, tuple("192.168.1.20", 40000, "203.0.113.1", 8000), kTcp);
  ASSERT_NE(m.index, kNoEntry);
  const flow::NatExt4& x = ext(m.index, kTcp);
  EXPECT_EQ(x.kind, flow::kNatDestination);
  EXPECT_EQ(x.reply.dst, addr4_raw("192.168.1.20"));
  EXPECT_EQ(worker().nat->counters().hairpinned.get(), 0u);
}

TEST_F(NatContextTest, PortForwardsPortsAreNeverAllocatedForSourceNat) {
  configure(R"("snat": [{"out_port": "wan", "masquerade": true, "ports": "8000-8019"}],
    "dnat": [{"in_port": "wan", "protocol": "tcp", "port": "8000-8009", "to_address": "192.168.1.10"}])");
  const OutsideAddress* wan = policy_->outside(addr4_raw("203.0.113.1"));
  ASSERT_NE(wan, nullptr);
  EXPECT_TRUE(wan->is_reserved(kTcp, 8000));
  EXPECT_TRUE(wan->is_reserved(kTcp, 8009));
  EXPECT_FALSE(wan->is_reserved(kTcp, 8010));
  EXPECT_FALSE(wan->is_reserved(kUdp, 8005));
  std::set<uint16_t> tcp_ports;
  for (uint32_t i = 0; i < 10; ++i) {
    // The first asks for its own port, 8003, which the forward holds.
    const std::string host = "192.168.1." + std::to_string(20 + i);
    const NatContext::Mapped m = map(kLan, kWan, tuple(host.c_str(), i == 0 ? 8003 : 40000, "8.8.8.8", 443), kTcp);
    ASSERT_FALSE(m.refused) << "flow " << i;
    tcp_ports.insert(port_of(ext(m.index, kTcp).reply.dport));
  }
  EXPECT_EQ(tcp_ports.size(), 10u);
  EXPECT_EQ(*tcp_ports.begin(), 8010);
  EXPECT_EQ(*tcp_ports.rbegin(), 8019);
  EXPECT_TRUE(map(kLan, kWan, tuple("192.168.1.99", 40000, "8.8.8.8", 443), kTcp).refused)
      << "the forward's ten ports are not for source NAT";
  // UDP may use all twenty: the forward is TCP.
  std::set<uint16_t> udp_ports;
  for (uint32_t i = 0; i < 20; ++i) {
    const std::string host = "192.168.1." + std::to_string(100 + i);
    const NatContext::Mapped m = map(kLan, kWan, tuple(host.c_str(), 40000, "8.8.8.8", 53), kUdp);
    ASSERT_FALSE(m.refused) << "flow " << i;
    udp_ports.insert(port_of(ext(m.index, kUdp).reply.dport));
  }
  EXPECT_EQ(udp_ports.size(), 20u);
}

TEST_F(NatContextTest, AReservedBlockLongerThanTheProbeBoundNeverExhaustsTheSearch) {
  // Ten thousand forwarded ports: a random start inside them used to spend every probe
  // on reserved ports and refuse with tens of thousands free (the lb probe block, 512).
  configure(R"("snat": [{"out_port": "wan", "masquerade": true, "ports": "1024-65535"}],
    "dnat": [{"in_port": "wan", "protocol": "tcp", "port": "2000-11999", "to_address": "192.168.1.10"}])");
  for (uint32_t i = 0; i < 400; ++i) {
    const std::string host = "192.168.1." + std::to_string(20 + i % 200);
    // Inside port 5000: reserved, so every flow searches from a random place.
    const NatContext::Mapped m = map(kLan, kWan, tuple(host.c_str(), 5000, "8.8.8.8", 443 + i / 200), kTcp);
    ASSERT_FALSE(m.refused) << "flow " << i;
    const uint16_t port = port_of(ext(m.index, kTcp).reply.dport);
    EXPECT_TRUE(port < 2000 || port > 11999) << port;
  }
}

TEST_F(NatContextTest, SteerSendsOutsideAddressesToTheirPortsOwner) {
  configure(kForward, 2);
  // A translated flow's reply: the owner of its outside port.
  for (uint16_t port : {20000, 20001, 33333}) {
    FlowKey4 reply;
    flow::make_key4(reply, addr4_raw("8.8.8.8"), addr4_raw("203.0.113.1"), htons(53), htons(port), kUdp, 0);
    const Policy::Steer s = policy_->steer(reply, kWan);
    EXPECT_EQ(s.kind, Policy::Steer::kOwner) << port;
    EXPECT_EQ(s.value, port % 2u) << port;
  }
  // A packet to a port forward: the owner of the translated key, where its replies hash.
  const NatTuple4 t = tuple("198.51.100.7", 50000, "203.0.113.1", 8005);
  FlowKey4 key;
  flow::make_key4(key, t.src, t.dst, t.sport, t.dport, kTcp, 0);
  const Policy::Steer s = policy_->steer(key, kWan);
  EXPECT_EQ(s.kind, Policy::Steer::kHash);
  FlowKey4 translated;
  flow::make_key4(translated, t.src, addr4_raw("192.168.1.10"), t.sport, htons(85), kTcp, 0);
  EXPECT_EQ(s.value, translated.hash());
  // That is the reply key of the pair the forward makes.
  const NatContext::Mapped m = map(worker(0), kWan, kLan, t, kTcp);
  ASSERT_NE(m.index, kNoEntry);
  EXPECT_EQ(ext(worker(0), m.index, kTcp).reply_key.hash(), s.value);
  // A port of that address the forward does not hold: the port's owner.
  FlowKey4 other;
  flow::make_key4(other, t.src, t.dst, t.sport, htons(8011), kTcp, 0);
  EXPECT_EQ(policy_->steer(other, kWan).kind, Policy::Steer::kOwner);
  EXPECT_EQ(policy_->steer(other, kWan).value, 1u);
  // No outside address in the key: its own hash decides.
  FlowKey4 inside;
  flow::make_key4(inside, addr4_raw("192.168.1.20"), addr4_raw("8.8.8.8"), htons(40000), htons(53), kUdp, 0);
  EXPECT_EQ(policy_->steer(inside, kLan).kind, Policy::Steer::kNone);
}

TEST_F(NatContextTest, SteerKeepsEveryFlowWithoutPortsOnWorkerZero) {
  configure(kForward, 2);
  constexpr uint8_t kGre = 47, kEsp = 50;
  for (uint8_t proto : {kGre, kEsp}) {
    // Out from inside, where no outside address is in the key, and the reply to the
    // masquerade address: both on the worker that owns port 0, whatever their hash.
    FlowKey4 out, reply;
    flow::make_key4(out, addr4_raw("192.168.1.20"), addr4_raw("8.8.8.8"), 0, 0, proto, 0);
    flow::make_key4(reply, addr4_raw("8.8.8.8"), addr4_raw("203.0.113.1"), 0, 0, proto, 0);
    for (const FlowKey4& key : {out, reply}) {
      const Policy::Steer s = policy_->steer(key, kLan);
      EXPECT_EQ(s.kind, Policy::Steer::kOwner) << int(proto);
      EXPECT_EQ(s.value, 0u) << int(proto);
    }
  }
}

TEST_F(NatContextTest, EveryRemovalAtShutdownReachesTheEventLogBeyondOneRingsWorth) {
  configure(kMasquerade, 1, 16384);
  Worker& w = worker();
  w.nat->enable_events();
  char path[] = "/tmp/sluice-nat-events-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::string error;
  std::unique_ptr<EventLog> log = EventLog::open(path, error);
  ASSERT_TRUE(log) << error;
  log->add_ring(w.nat->events());
  // More translated flows than the worker's ring holds (EventRing::kSize), the log
  // drained as the control thread drains it while they are made.
  const unsigned flows = EventRing::kSize + 1808;
  for (unsigned i = 0; i < flows; ++i) {
    const std::string host = "192.168.1." + std::to_string(2 + i % 250);
    ASSERT_FALSE(map(kLan, kWan, tuple(host.c_str(), static_cast<uint16_t>(1024 + i / 250), "8.8.8.8", static_cast<uint16_t>(1000 + i % 1000)), kUdp).refused)
        << "flow " << i;
    if (i % 4096 == 4095) log->drain();
  }
  EXPECT_EQ(sweep_logged(*w.flows, log.get()), flows);
  EXPECT_EQ(w.flows->active(), 0u);
  EXPECT_EQ(w.nat->events()->dropped(), 0u) << "no removal lost to a full ring";
  log.reset();  // closes the file
  std::ifstream in(path);
  unsigned created = 0, removed = 0;
  for (std::string line; std::getline(in, line);) {
    created += line.find(" created ") != std::string::npos;
    removed += line.find(" removed ") != std::string::npos;
  }
  unlink(path);
  EXPECT_EQ(created, flows);
  EXPECT_EQ(removed, flows);
}

TEST_F(NatContextTest, OneWorkerSteersNothing) {
  configure(kForward, 1);
  FlowKey4 reply;
  flow::make_key4(reply, addr4_raw("8.8.8.8"), addr4_raw("203.0.113.1"), htons(53), htons(20001), kUdp, 0);
  EXPECT_EQ(policy_->steer(reply, kWan).kind, Policy::Steer::kNone);
}

TEST_F(NatContextTest, RuleCountersStartOverWithANewPolicy) {
  configure(kMasquerade);
  ASSERT_FALSE(map(kLan, kWan, tuple("192.168.1.20", 40000, "8.8.8.8", 53), kUdp).refused);
  NatContext& nat = *worker().nat;
  EXPECT_EQ(nat.rules()[1].translated.get(), 1u);
  EXPECT_EQ(nat.rule_generation(), generation_);
  nat.see_policy(*policy_);
  EXPECT_EQ(nat.rules()[1].translated.get(), 1u) << "the same policy keeps them";
  std::string error;
  auto reloaded = Policy::build(config_, {{"lan", kLan}, {"wan", kWan}}, 1, generation_ + 1, registry_, error);
  ASSERT_TRUE(reloaded) << error;
  EXPECT_EQ(reloaded->outside(addr4_raw("203.0.113.1"))->slot, slot_of("203.0.113.1")) << "address slots are stable";
  nat.see_policy(*reloaded);
  EXPECT_EQ(nat.rules()[1].translated.get(), 0u);
  EXPECT_EQ(nat.rule_generation(), generation_ + 1);
}

}  // namespace
}  // namespace sluice::nat
