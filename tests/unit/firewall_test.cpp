// lib/firewall/ruleset: the rule compiler (zones, policies, list expansion, address
// families, errors with JSON paths) and rte_acl classification, checked rule by rule
// and against a scalar reference matcher on random rules and keys.
#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_byteorder.h>

#include "config/config.h"
#include "firewall/ruleset.h"
#include "net/ip_addr.h"

namespace sluice::firewall {
namespace {

using config::FirewallAction;
using config::FirewallRule;
using config::PortRange;

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10, kEce = 0x40, kCwr = 0x80;
constexpr int kTcp = 6, kUdp = 17, kIcmp = 1, kIcmpv6 = 58, kGre = 47;

// DPDK port ids of the test ports; "spare" is configured but not running.
constexpr uint8_t kLan0 = 0, kLan1 = 1, kWan = 2, kDmz = 5;

uint32_t next_generation() {
  static uint32_t generation = 1000;  // each compile names fresh rte_acl contexts
  return generation++;
}

net::IpPrefix pfx(const char* text) {
  auto p = net::parse_prefix(text, false);
  EXPECT_TRUE(p.has_value()) << text;
  return p ? p->network() : net::IpPrefix{};
}

config::PortConfig port(const char* name, const char* zone) {
  config::PortConfig p;
  p.name = name;
  p.zone = zone;
  return p;
}

// Zones: inside (lan0, lan1), outside (wan), dmz (its own name), spare (not running).
config::Config base_config() {
  config::Config c;
  c.ports = {port("lan0", "inside"), port("lan1", "inside"), port("wan", "outside"), port("dmz", ""),
             port("spare", "")};
  c.firewall.enabled = true;
  return c;
}

const Ruleset::PortIds kPortIds = {{"lan0", kLan0}, {"lan1", kLan1}, {"wan", kWan}, {"dmz", kDmz}};

// A packet as the fast path would describe it; zones default to the ports' zones.
struct Packet {
  std::string src = "10.0.0.1";
  std::string dst = "10.9.0.1";
  uint8_t proto = kTcp;
  uint16_t sport = 40000, dport = 80;
  uint8_t in_port = kLan0, out_port = kWan;
  int in_zone = -1, out_zone = -1;
  uint8_t state = config::kCtNew;
  uint8_t tcp_flags = 0;
};

template <typename Key>
void fill_common(const Ruleset& rs, const Packet& p, Key& k) {
  k.proto = p.proto;
  k.in_port = p.in_port;
  k.out_port = p.out_port;
  k.in_zone = p.in_zone >= 0 ? static_cast<uint8_t>(p.in_zone) : rs.zone_of_port(p.in_port);
  k.out_zone = p.out_zone >= 0 ? static_cast<uint8_t>(p.out_zone) : rs.zone_of_port(p.out_port);
  k.state = p.state;
  k.tcp_flags = p.tcp_flags;
  k.src_port = rte_cpu_to_be_16(p.sport);
  k.dst_port = rte_cpu_to_be_16(p.dport);
}

// The 1-based rule index the ruleset gives `p`, or 0.
uint32_t match(const Ruleset& rs, const Packet& p) {
  auto src = net::parse_ip(p.src), dst = net::parse_ip(p.dst);
  EXPECT_TRUE(src && dst && src->family == dst->family) << p.src << " " << p.dst;
  if (!src || !dst) return 0;
  uint32_t result = 0xdead;
  if (src->family == 4) {
    AclKey4 k{};
    fill_common(rs, p, k);
    std::memcpy(&k.src, src->bytes.data(), 4);  // IpAddr bytes are network order already
    std::memcpy(&k.dst, dst->bytes.data(), 4);
    const uint8_t* keys[1] = {reinterpret_cast<const uint8_t*>(&k)};
    rs.classify4(keys, &result, 1);
  } else {
    AclKey6 k{};
    fill_common(rs, p, k);
    std::memcpy(k.src, src->bytes.data(), 16);
    std::memcpy(k.dst, dst->bytes.data(), 16);
    const uint8_t* keys[1] = {reinterpret_cast<const uint8_t*>(&k)};
    rs.classify6(keys, &result, 1);
  }
  return result;
}

class FirewallTest : public ::testing::Test {
 protected:
  std::unique_ptr<Ruleset> compile(std::vector<FirewallRule> rules) {
    config_.firewall.rules = std::move(rules);
    std::string error;
    auto rs = Ruleset::compile(config_, kPortIds, next_generation(), error);
    EXPECT_NE(rs, nullptr) << error;
    EXPECT_EQ(error, "");
    return rs;
  }
  std::string compile_error(std::vector<FirewallRule> rules) {
    config_.firewall.rules = std::move(rules);
    std::string error;
    auto rs = Ruleset::compile(config_, kPortIds, next_generation(), error);
    EXPECT_EQ(rs, nullptr);
    return error;
  }

  config::Config config_ = base_config();
};

TEST_F(FirewallTest, FirstMatchWinsAcrossOverlappingRules) {
  auto rs = compile({
      FirewallRule{.name = "web", .dst = {pfx("10.9.0.0/24")}, .protocol = kTcp, .dst_ports = {{80, 80}},
                   .action = FirewallAction::Accept},
      FirewallRule{.name = "net", .dst = {pfx("10.9.0.0/16")}, .action = FirewallAction::Drop},
      FirewallRule{.name = "web-again", .dst = {pfx("10.9.0.1/32")}, .protocol = kTcp, .dst_ports = {{80, 80}},
                   .action = FirewallAction::Reject},
      FirewallRule{.name = "all", .action = FirewallAction::Reject},
  });
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(match(*rs, {.dst = "10.9.0.1", .dport = 80}), 1u);
  EXPECT_EQ(match(*rs, {.dst = "10.9.0.1", .dport = 81}), 2u);  // a later, more specific rule never wins
  EXPECT_EQ(match(*rs, {.dst = "10.9.7.1", .dport = 80}), 2u);
  EXPECT_EQ(match(*rs, {.dst = "10.8.0.1"}), 4u);
  EXPECT_EQ(rs->rule_count(), 4u);
  EXPECT_EQ(rs->rule(1).name, "web");
  EXPECT_EQ(rs->rule(3).action, FirewallAction::Reject);
}

TEST_F(FirewallTest, MatchesIpv4PrefixesFromSlash0ToSlash32) {
  auto rs = compile({
      FirewallRule{.src = {pfx("192.168.1.7/32")}},
      FirewallRule{.src = {pfx("192.168.0.0/23")}},
      FirewallRule{.src = {pfx("128.0.0.0/1")}},
      FirewallRule{.src = {pfx("0.0.0.0/0")}},
  });
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(match(*rs, {.src = "192.168.1.7"}), 1u);
  EXPECT_EQ(match(*rs, {.src = "192.168.1.6"}), 2u);
  EXPECT_EQ(match(*rs, {.src = "192.168.0.0"}), 2u);
  EXPECT_EQ(match(*rs, {.src = "192.168.2.0"}), 3u);
  EXPECT_EQ(match(*rs, {.src = "255.255.255.255"}), 3u);
  EXPECT_EQ(match(*rs, {.src = "127.255.255.255"}), 4u);
  EXPECT_EQ(match(*rs, {.src = "0.0.0.0"}), 4u);
}

TEST_F(FirewallTest, MatchesIpv6PrefixesFromSlash0ToSlash128) {
  auto rs = compile({
      FirewallRule{.dst = {pfx("fd00:1::7/128")}},
      FirewallRule{.dst = {pfx("fd00:1::/32")}},
      FirewallRule{.dst = {pfx("::/0")}},
  });
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(match(*rs, {.src = "fd00::1", .dst = "fd00:1::7"}), 1u);
  EXPECT_EQ(match(*rs, {.src = "fd00::1", .dst = "fd00:1::6"}), 2u);
  EXPECT_EQ(match(*rs, {.src = "fd00::1", .dst = "fd00:1::1:7"}), 2u);
  EXPECT_EQ(match(*rs, {.src = "fd00::1", .dst = "fd00:1:ffff:ffff:ffff:ffff:ffff:ffff"}), 2u);
  EXPECT_EQ(match(*rs, {.src = "fd00::1", .dst = "fd00:2::7"}), 3u);
  EXPECT_EQ(match(*rs, {.src = "fd00::1", .dst = "::"}), 3u);
}

TEST_F(FirewallTest, Ipv6PrefixOf65BitsSplitsAcrossWords) {
  auto rs = compile({
      FirewallRule{.src = {pfx("2001:db8:1:2:8000::/65")}},
      FirewallRule{.src = {pfx("2001:db8:1:2::/64")}},
      FirewallRule{.src = {pfx("2001:db8::/33")}},
  });
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(match(*rs, {.src = "2001:db8:1:2:8000::", .dst = "fd00::1"}), 1u);
  EXPECT_EQ(match(*rs, {.src = "2001:db8:1:2:ffff:ffff:ffff:ffff", .dst = "fd00::1"}), 1u);
  EXPECT_EQ(match(*rs, {.src = "2001:db8:1:2:7fff:ffff:ffff:ffff", .dst = "fd00::1"}), 2u);
  EXPECT_EQ(match(*rs, {.src = "2001:db8:1:3:8000::", .dst = "fd00::1"}), 3u);
  EXPECT_EQ(match(*rs, {.src = "2001:db8:7fff::1", .dst = "fd00::1"}), 3u);
  EXPECT_EQ(match(*rs, {.src = "2001:db8:8000::1", .dst = "fd00::1"}), 0u);
}

TEST_F(FirewallTest, PortRangeEdgesAreInclusive) {
  auto rs = compile({
      FirewallRule{.protocol = kUdp, .src_ports = {{53, 53}}, .dst_ports = {{1000, 2000}}},
      FirewallRule{.protocol = kUdp, .dst_ports = {{0, 0}, {65535, 65535}}},
  });
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(match(*rs, {.proto = kUdp, .sport = 53, .dport = 999}), 0u);
  EXPECT_EQ(match(*rs, {.proto = kUdp, .sport = 53, .dport = 1000}), 1u);
  EXPECT_EQ(match(*rs, {.proto = kUdp, .sport = 53, .dport = 1500}), 1u);
  EXPECT_EQ(match(*rs, {.proto = kUdp, .sport = 53, .dport = 2000}), 1u);
  EXPECT_EQ(match(*rs, {.proto = kUdp, .sport = 53, .dport = 2001}), 0u);
  EXPECT_EQ(match(*rs, {.proto = kUdp, .sport = 52, .dport = 1000}), 0u);
  EXPECT_EQ(match(*rs, {.proto = kUdp, .sport = 54, .dport = 1000}), 0u);
  EXPECT_EQ(match(*rs, {.proto = kUdp, .sport = 54, .dport = 0}), 2u);
  EXPECT_EQ(match(*rs, {.proto = kUdp, .sport = 54, .dport = 65535}), 2u);
  EXPECT_EQ(match(*rs, {.proto = kTcp, .sport = 53, .dport = 1000}), 0u);  // the protocol counts too
}

TEST_F(FirewallTest, AnyProtocolMatchesAllAndSpecificOnlyItself) {
  auto rs = compile({
      FirewallRule{.protocol = kGre},
      FirewallRule{.protocol = 0},
      FirewallRule{.dst = {pfx("10.9.0.0/16")}},
  });
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(match(*rs, {.proto = kGre}), 1u);
  EXPECT_EQ(match(*rs, {.proto = 0}), 2u);
  for (uint8_t proto : {kTcp, kUdp, kIcmp, 255}) EXPECT_EQ(match(*rs, {.proto = proto}), 3u) << int(proto);
}

TEST_F(FirewallTest, TcpFlagsMatchSynWithoutAck) {
  auto rs = compile({
      FirewallRule{.protocol = kTcp, .tcp_flags_mask = kSyn | kAck, .tcp_flags_set = kSyn},
      FirewallRule{.protocol = kTcp, .tcp_flags_mask = kRst, .tcp_flags_set = kRst},
  });
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(match(*rs, {.tcp_flags = kSyn}), 1u);
  EXPECT_EQ(match(*rs, {.tcp_flags = kSyn | kEce | kCwr}), 1u);  // bits outside the mask do not matter
  EXPECT_EQ(match(*rs, {.tcp_flags = kSyn | kAck}), 0u);
  EXPECT_EQ(match(*rs, {.tcp_flags = kAck}), 0u);
  EXPECT_EQ(match(*rs, {.tcp_flags = kFin | kAck | kRst}), 2u);
  EXPECT_EQ(match(*rs, {.tcp_flags = 0}), 0u);
}

TEST_F(FirewallTest, StatesDefaultToNewAndRuleForNewMissesInvalid) {
  auto rs = compile({
      FirewallRule{.dst = {pfx("10.9.0.1/32")}},  // states default: new
      FirewallRule{.dst = {pfx("10.9.0.0/16")}, .states = config::kCtInvalid | config::kCtRelated},
  });
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(match(*rs, {.state = config::kCtNew}), 1u);
  EXPECT_EQ(match(*rs, {.state = config::kCtInvalid}), 2u);
  EXPECT_EQ(match(*rs, {.state = config::kCtRelated}), 2u);
  EXPECT_EQ(match(*rs, {.state = config::kCtEstablished}), 0u);
  EXPECT_EQ(match(*rs, {.dst = "10.8.0.1", .state = config::kCtInvalid}), 0u);
}

TEST_F(FirewallTest, ClassifiesEstablishedOnlyWhenSomeRuleNamesEstablishedOrRelated) {
  auto plain = compile({FirewallRule{.states = config::kCtNew | config::kCtInvalid}});
  ASSERT_NE(plain, nullptr);
  EXPECT_FALSE(plain->classifies_established());
  auto established = compile({FirewallRule{}, FirewallRule{.states = config::kCtEstablished}});
  ASSERT_NE(established, nullptr);
  EXPECT_TRUE(established->classifies_established());
  auto related = compile({FirewallRule{.states = config::kCtRelated}});
  ASSERT_NE(related, nullptr);
  EXPECT_TRUE(related->classifies_established());
}

TEST_F(FirewallTest, MatchesInAndOutPorts) {
  auto rs = compile({
      FirewallRule{.in_ports = {"lan1"}, .out_ports = {"dmz"}},
      FirewallRule{.in_ports = {"wan", "dmz"}},
      FirewallRule{.out_ports = {"lan0"}},
  });
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(match(*rs, {.in_port = kLan1, .out_port = kDmz}), 1u);
  EXPECT_EQ(match(*rs, {.in_port = kLan1, .out_port = kWan}), 0u);
  EXPECT_EQ(match(*rs, {.in_port = kWan, .out_port = kDmz}), 2u);
  EXPECT_EQ(match(*rs, {.in_port = kDmz, .out_port = kLan1}), 2u);
  EXPECT_EQ(match(*rs, {.in_port = kLan1, .out_port = kLan0}), 3u);
  EXPECT_EQ(match(*rs, {.in_port = kLan0, .out_port = kLan1}), 0u);
}

TEST_F(FirewallTest, MatchesZonesAndPortWithoutZoneIsItsOwnZone) {
  auto rs = compile({
      FirewallRule{.from_zones = {"outside"}, .to_zones = {"dmz"}},
      FirewallRule{.from_zones = {"inside"}},
  });
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(match(*rs, {.in_port = kWan, .out_port = kDmz}), 1u);
  EXPECT_EQ(match(*rs, {.in_port = kWan, .out_port = kLan0}), 0u);
  EXPECT_EQ(match(*rs, {.in_port = kLan0, .out_port = kWan}), 2u);
  EXPECT_EQ(match(*rs, {.in_port = kLan1, .out_port = kDmz}), 2u);
  EXPECT_EQ(match(*rs, {.in_port = kDmz, .out_port = kLan1}), 0u);
  // The key's zone bytes decide, not its port bytes: a port that is not a zone's.
  EXPECT_EQ(match(*rs, {.in_port = 9, .out_port = 9, .in_zone = 1, .out_zone = 2}), 1u);
  EXPECT_EQ(match(*rs, {.in_port = kLan0, .in_zone = kNoZone}), 0u);
}

TEST_F(FirewallTest, AssignsZoneIdsInOrderOfFirstAppearance) {
  auto rs = compile({});
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(rs->zone_of_port(kLan0), 0);
  EXPECT_EQ(rs->zone_of_port(kLan1), 0);
  EXPECT_EQ(rs->zone_of_port(kWan), 1);
  EXPECT_EQ(rs->zone_of_port(kDmz), 2);
  EXPECT_EQ(rs->zone_name(0), "inside");
  EXPECT_EQ(rs->zone_name(1), "outside");
  EXPECT_EQ(rs->zone_name(2), "dmz");
  EXPECT_EQ(rs->zone_name(3), "spare");  // a zone even though its port does not run
  EXPECT_EQ(rs->zone_of_port(3), kNoZone);
  EXPECT_EQ(rs->zone_of_port(RTE_MAX_ETHPORTS), kNoZone);
  EXPECT_GE(rs->generation(), 1000u);
}

TEST_F(FirewallTest, ZonePoliciesOverrideTheDefaultPolicy) {
  config_.firewall.default_policy = FirewallAction::Reject;
  config_.firewall.policies = {{"inside", "outside", FirewallAction::Accept},
                               {"outside", "dmz", FirewallAction::Drop},
                               {"dmz", "dmz", FirewallAction::Accept}};
  auto rs = compile({});
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(rs->policy(0, 1), FirewallAction::Accept);
  EXPECT_EQ(rs->policy(1, 2), FirewallAction::Drop);
  EXPECT_EQ(rs->policy(2, 2), FirewallAction::Accept);
  EXPECT_EQ(rs->policy(1, 0), FirewallAction::Reject);  // not symmetric
  EXPECT_EQ(rs->policy(0, 0), FirewallAction::Reject);
  EXPECT_EQ(rs->policy(kNoZone, 1), FirewallAction::Reject);
}

TEST_F(FirewallTest, DuplicateZonePairPolicyIsAnError) {
  config_.firewall.policies = {{"inside", "outside", FirewallAction::Accept},
                               {"outside", "inside", FirewallAction::Drop},
                               {"inside", "outside", FirewallAction::Drop}};
  EXPECT_EQ(compile_error({}),
            "firewall.policies[2]: zone pair inside -> outside already has a policy at firewall.policies[0]");
  config_.firewall.policies = {{"inside", "lab", FirewallAction::Accept}};
  EXPECT_EQ(compile_error({}), "firewall.policies[0].to: unknown zone 'lab' (known: inside, outside, dmz, spare)");
}

TEST_F(FirewallTest, SingleFamilyRuleNeverMatchesTheOtherFamily) {
  auto rs = compile({
      FirewallRule{.src = {pfx("0.0.0.0/0")}},
      FirewallRule{.dst = {pfx("::/0")}, .action = FirewallAction::Drop},
  });
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(match(*rs, {.src = "10.0.0.1", .dst = "10.9.0.1"}), 1u);
  EXPECT_EQ(match(*rs, {.src = "fd00::1", .dst = "fd00::2"}), 2u);
  EXPECT_EQ(match(*rs, {.src = "::a00:1", .dst = "::a09:1"}), 2u);  // IPv4-compatible bytes are still IPv6

  auto v4_only = compile({FirewallRule{.dst = {pfx("10.0.0.0/8")}}});
  ASSERT_NE(v4_only, nullptr);
  EXPECT_EQ(match(*v4_only, {.src = "fd00::1", .dst = "fd00::2"}), 0u);  // no IPv6 trie at all: zeros
}

TEST_F(FirewallTest, MixedFamilyListGivesEachFamilyItsPrefixes) {
  auto rs = compile({
      FirewallRule{.src = {pfx("10.0.0.0/24"), pfx("fd00:a::/64")}, .dst = {pfx("fd00:b::/64"), pfx("10.9.0.0/24")}},
      FirewallRule{.src = {pfx("10.0.0.0/8"), pfx("fd00::/16")}, .dst = {pfx("10.9.0.0/16")}},
  });
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(match(*rs, {.src = "10.0.0.1", .dst = "10.9.0.1"}), 1u);
  EXPECT_EQ(match(*rs, {.src = "fd00:a::1", .dst = "fd00:b::1"}), 1u);
  EXPECT_EQ(match(*rs, {.src = "10.0.1.1", .dst = "10.9.0.1"}), 2u);
  EXPECT_EQ(match(*rs, {.src = "fd00:c::1", .dst = "fd00:b::1"}), 0u);  // rule 1's dst is IPv4 only
}

TEST_F(FirewallTest, SrcIpv4OnlyAndDstIpv6OnlyIsAnError) {
  EXPECT_EQ(compile_error({FirewallRule{}, FirewallRule{.src = {pfx("10.0.0.0/8")}, .dst = {pfx("fd00::/8")}}}),
            "firewall.rules[1]: src and dst have no address family in common");
}

TEST_F(FirewallTest, IcmpIsIpv4OnlyAndIcmpv6IsIpv6Only) {
  auto rs = compile({
      FirewallRule{.protocol = kIcmp},
      FirewallRule{.protocol = kIcmpv6, .action = FirewallAction::Drop},
      FirewallRule{.src = {pfx("10.0.0.0/8"), pfx("fd00::/8")}, .protocol = kIcmp},
  });
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(match(*rs, {.proto = kIcmp}), 1u);
  EXPECT_EQ(match(*rs, {.src = "fd00::1", .dst = "fd00::2", .proto = kIcmp}), 0u);
  EXPECT_EQ(match(*rs, {.src = "fd00::1", .dst = "fd00::2", .proto = kIcmpv6}), 2u);
  EXPECT_EQ(match(*rs, {.proto = kIcmpv6}), 0u);

  EXPECT_EQ(compile_error({FirewallRule{.dst = {pfx("fd00::/8")}, .protocol = kIcmp}}),
            "firewall.rules[0]: protocol icmp is IPv4 only, but src/dst name only IPv6 addresses");
  EXPECT_EQ(compile_error({FirewallRule{.src = {pfx("10.0.0.0/8")}, .protocol = kIcmpv6}}),
            "firewall.rules[0]: protocol icmpv6 is IPv6 only, but src/dst name only IPv4 addresses");
}

TEST_F(FirewallTest, ExpandsEveryCombinationOfItsLists) {
  FirewallRule rule{.from_zones = {"inside", "dmz"},
                    .in_ports = {"lan0", "lan1", "dmz"},
                    .src = {pfx("10.0.0.0/24"), pfx("10.0.2.0/24")},
                    .dst = {pfx("10.9.0.1/32"), pfx("10.9.0.3/32")},
                    .protocol = kTcp,
                    .src_ports = {{1, 1}, {3, 3}},
                    .dst_ports = {{80, 80}, {443, 443}},
                    .states = config::kCtNew | config::kCtInvalid};
  auto rs = compile({rule});
  ASSERT_NE(rs, nullptr);
  unsigned hits = 0, checked = 0;
  for (uint8_t in : {kLan0, kLan1, kDmz, kWan})
    for (const char* src : {"10.0.0.9", "10.0.1.9", "10.0.2.9"})
      for (const char* dst : {"10.9.0.1", "10.9.0.2", "10.9.0.3"})
        for (uint16_t sport : {1, 2, 3})
          for (uint16_t dport : {80, 443, 8080})
            for (uint8_t state : {config::kCtNew, config::kCtEstablished, config::kCtInvalid}) {
              bool in_zone_ok = in != kWan;  // inside (lan0, lan1) or dmz
              bool expect = in_zone_ok && std::string(src) != "10.0.1.9" && std::string(dst) != "10.9.0.2" &&
                            sport != 2 && dport != 8080 && state != config::kCtEstablished;
              Packet p{.src = src, .dst = dst, .sport = sport, .dport = dport, .in_port = in, .state = state};
              EXPECT_EQ(match(*rs, p), expect ? 1u : 0u) << int(in) << " " << src << " " << dst << " " << sport
                                                         << " " << dport << " " << int(state);
              hits += expect;
              ++checked;
            }
  EXPECT_EQ(hits, 3u * 2 * 2 * 2 * 2 * 2);
  EXPECT_EQ(checked, 4u * 3 * 3 * 3 * 3 * 3);
}

TEST_F(FirewallTest, UnknownPortIsAnErrorWithItsJsonPath) {
  EXPECT_EQ(compile_error({FirewallRule{}, FirewallRule{.in_ports = {"lan0", "wan0"}}}),
            "firewall.rules[1].in_port: unknown port 'wan0'");
  EXPECT_EQ(compile_error({FirewallRule{.out_ports = {"spare"}}}),
            "firewall.rules[0].out_port: port 'spare' is not running (no DPDK port id)");
}

TEST_F(FirewallTest, UnknownZoneIsAnErrorListingTheKnownZones) {
  EXPECT_EQ(compile_error({FirewallRule{.from_zones = {"inside"}}, FirewallRule{}, FirewallRule{.to_zones = {"lab"}}}),
            "firewall.rules[2].to: unknown zone 'lab' (known: inside, outside, dmz, spare)");
  EXPECT_EQ(compile_error({FirewallRule{.from_zones = {"lan0"}}}),  // a port name is not a zone when it has one
            "firewall.rules[0].from: unknown zone 'lan0' (known: inside, outside, dmz, spare)");
}

TEST_F(FirewallTest, ExpansionBeyondTheLimitIsAnError) {
  FirewallRule wide;
  for (unsigned i = 0; i < 257; ++i) {
    wide.src.push_back(net::IpPrefix{net::IpAddr::v4(0x0a000000u + (i << 8)), 24});
    if (i < 256) wide.dst.push_back(net::IpPrefix{net::IpAddr::v4(0x0b000000u + (i << 8)), 24});
  }
  EXPECT_EQ(compile_error({wide}), "firewall.rules[0]: expands to 65792 ACL rules, at most 65536 in all");

  FirewallRule half = wide;  // 128 x 256 = 32768 each: two fill the limit, a third rule is one too many
  half.src.resize(128);
  EXPECT_EQ(compile_error({half, half, FirewallRule{}}),
            "firewall.rules[2]: expands to 2 ACL rules, 65538 with the rules before it, at most 65536 in all");
}

TEST_F(FirewallTest, RejectsWhatTheParserCannotCatch) {
  EXPECT_EQ(compile_error({FirewallRule{.states = 0}}), "firewall.rules[0].state: must list at least one state");
  EXPECT_EQ(compile_error({FirewallRule{.protocol = kUdp, .tcp_flags_mask = kSyn, .tcp_flags_set = kSyn}}),
            "firewall.rules[0].tcp_flags: needs protocol tcp");
  EXPECT_EQ(compile_error({FirewallRule{.protocol = kTcp, .tcp_flags_mask = kSyn, .tcp_flags_set = kAck}}),
            "firewall.rules[0].tcp_flags: set must be within mask");
  EXPECT_EQ(compile_error({FirewallRule{.dst_ports = {{80, 80}}}}),
            "firewall.rules[0].dst_ports: needs protocol tcp or udp");
  EXPECT_EQ(compile_error({FirewallRule{.protocol = kIcmp, .src_ports = {{80, 80}}}}),
            "firewall.rules[0].src_ports: needs protocol tcp or udp");
  EXPECT_EQ(compile_error({FirewallRule{.protocol = kTcp, .dst_ports = {{90, 80}}}}),
            "firewall.rules[0].dst_ports: range 90-80 ends before it starts");
  EXPECT_EQ(compile_error({FirewallRule{.src = {net::IpPrefix{}}}}),
            "firewall.rules[0].src[0]: not an IPv4 or IPv6 prefix");
}

TEST_F(FirewallTest, NamesRulesAndKeepsTheirActions) {
  auto rs = compile({FirewallRule{.action = FirewallAction::Drop}, FirewallRule{.name = "ssh", .action = FirewallAction::Reject}});
  ASSERT_NE(rs, nullptr);
  ASSERT_EQ(rs->rule_count(), 2u);
  EXPECT_EQ(rs->rule(1).name, "rule0");
  EXPECT_EQ(rs->rule(1).action, FirewallAction::Drop);
  EXPECT_EQ(rs->rule(2).name, "ssh");
  EXPECT_EQ(rs->rule(2).action, FirewallAction::Reject);
}

TEST_F(FirewallTest, NoRulesClassifiesEveryKeyToZero) {
  auto rs = compile({});
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(rs->rule_count(), 0u);
  EXPECT_EQ(match(*rs, {}), 0u);
  EXPECT_EQ(match(*rs, {.src = "fd00::1", .dst = "fd00::2"}), 0u);
}

TEST_F(FirewallTest, KeyFieldsAreNetworkOrderBytes) {
  auto rs = compile({FirewallRule{.src = {pfx("10.1.2.3/32")}, .dst = {pfx("192.168.0.0/16")}, .protocol = kTcp,
                                  .src_ports = {{0x1234, 0x1234}}, .dst_ports = {{0x0050, 0x0050}}}});
  ASSERT_NE(rs, nullptr);
  // Bytes as they sit in the IPv4 and TCP headers on the wire.
  const uint8_t wire[24] = {kTcp, 0, 0, 0, kLan0, kWan, 0, 1, config::kCtNew, 0, 0, 0,
                            10,   1, 2, 3, 192,   168,  7, 9, 0x12,          0x34, 0x00, 0x50};
  AclKey4 key;
  std::memcpy(&key, wire, sizeof key);
  const uint8_t* keys[1] = {reinterpret_cast<const uint8_t*>(&key)};
  uint32_t result = 0;
  rs->classify4(keys, &result, 1);
  EXPECT_EQ(result, 1u);
  // The same numbers in host order (little-endian here) miss.
  key.src = 0x0a010203;
  key.src_port = 0x1234;
  rs->classify4(keys, &result, 1);
  EXPECT_EQ(result, 0u);
}

TEST_F(FirewallTest, TwoGenerationsCoexistAndALiveGenerationIsNotReused) {
  std::string error;
  config_.firewall.rules = {FirewallRule{.dst = {pfx("10.9.0.0/16"), pfx("fd00::/8")}}};
  auto first = Ruleset::compile(config_, kPortIds, 1, error);
  ASSERT_NE(first, nullptr) << error;
  config_.firewall.rules = {FirewallRule{.dst = {pfx("10.8.0.0/16")}}, FirewallRule{.dst = {pfx("10.9.0.0/16")}}};
  auto second = Ruleset::compile(config_, kPortIds, 2, error);
  ASSERT_NE(second, nullptr) << error;
  EXPECT_EQ(match(*first, {.dst = "10.9.0.1"}), 1u);
  EXPECT_EQ(match(*second, {.dst = "10.9.0.1"}), 2u);
  EXPECT_EQ(match(*first, {.src = "fd00::1", .dst = "fd00::2"}), 1u);
  EXPECT_EQ(match(*second, {.src = "fd00::1", .dst = "fd00::2"}), 0u);

  EXPECT_EQ(Ruleset::compile(config_, kPortIds, 1, error), nullptr);
  EXPECT_EQ(error, "firewall: rte_acl context sl_fw4_g1 already exists: generation 1 is still in use");
  EXPECT_EQ(match(*first, {.dst = "10.9.0.1"}), 1u);  // the refused build left the live one alone

  first.reset();  // its contexts are freed: the generation can be built again
  error.clear();
  auto again = Ruleset::compile(config_, kPortIds, 1, error);
  ASSERT_NE(again, nullptr) << error;
  EXPECT_EQ(match(*again, {.dst = "10.9.0.1"}), 2u);
}

// ---- Differential test: rte_acl against a scalar loop over the config rules ----

// A key decoded back into numbers, either family.
struct RefKey {
  net::IpAddr src, dst;
  uint8_t proto, in_port, out_port, in_zone, out_zone, state, tcp_flags;
  uint16_t sport, dport;
};

template <typename Key>
RefKey decode(const Key& k) {
  RefKey r{};
  constexpr bool kV4 = sizeof(Key) == sizeof(AclKey4);
  r.src.family = r.dst.family = kV4 ? 4 : 6;
  std::memcpy(r.src.bytes.data(), &k.src, kV4 ? 4 : 16);
  std::memcpy(r.dst.bytes.data(), &k.dst, kV4 ? 4 : 16);
  r.proto = k.proto;
  r.in_port = k.in_port;
  r.out_port = k.out_port;
  r.in_zone = k.in_zone;
  r.out_zone = k.out_zone;
  r.state = k.state;
  r.tcp_flags = k.tcp_flags;
  r.sport = rte_be_to_cpu_16(k.src_port);
  r.dport = rte_be_to_cpu_16(k.dst_port);
  return r;
}

// First match wins, straight from the config's words.
class ReferenceMatcher {
 public:
  ReferenceMatcher(const config::Config& config, const Ruleset::PortIds& ids) : config_(config), ids_(ids) {
    for (const auto& p : config.ports) {
      const std::string& zone = p.zone.empty() ? p.name : p.zone;
      zones_.emplace(zone, static_cast<uint8_t>(zones_.size()));
    }
  }

  uint32_t classify(const RefKey& k) const {
    const auto& rules = config_.firewall.rules;
    for (size_t i = 0; i < rules.size(); ++i)
      if (matches(rules[i], k)) return static_cast<uint32_t>(i + 1);
    return 0;
  }

 private:
  bool matches(const FirewallRule& r, const RefKey& k) const {
    if (r.protocol >= 0 && r.protocol != k.proto) return false;
    if ((r.protocol == kIcmp && k.src.family != 4) || (r.protocol == kIcmpv6 && k.src.family != 6)) return false;
    auto in_prefixes = [](const std::vector<net::IpPrefix>& list, const net::IpAddr& a) {
      return list.empty() || std::any_of(list.begin(), list.end(), [&](const auto& p) { return p.contains(a); });
    };
    auto in_ranges = [](const std::vector<PortRange>& list, uint16_t port) {
      return list.empty() ||
             std::any_of(list.begin(), list.end(), [&](const auto& rg) { return rg.first <= port && port <= rg.last; });
    };
    auto port_is = [&](const std::vector<std::string>& names, uint8_t id) {
      return names.empty() || std::any_of(names.begin(), names.end(), [&](const auto& n) { return ids_.at(n) == id; });
    };
    auto zone_is = [&](const std::vector<std::string>& names, uint8_t id) {
      return names.empty() || std::any_of(names.begin(), names.end(), [&](const auto& n) { return zones_.at(n) == id; });
    };
    return in_prefixes(r.src, k.src) && in_prefixes(r.dst, k.dst) && in_ranges(r.src_ports, k.sport) &&
           in_ranges(r.dst_ports, k.dport) && (r.states & k.state) != 0 &&
           (k.tcp_flags & r.tcp_flags_mask) == r.tcp_flags_set && port_is(r.in_ports, k.in_port) &&
           port_is(r.out_ports, k.out_port) && zone_is(r.from_zones, k.in_zone) && zone_is(r.to_zones, k.out_zone);
  }

  const config::Config& config_;
  const Ruleset::PortIds& ids_;
  std::map<std::string, uint8_t> zones_;
};

// Random rules and keys over a small address space, so that rules overlap and keys hit.
class RandomFirewall {
 public:
  explicit RandomFirewall(uint32_t seed) : rng_(seed) {}

  FirewallRule rule(size_t index) {
    for (;;) {
      FirewallRule r;
      if (chance(0.3)) r.name = "r" + std::to_string(index);
      static constexpr int kProtocols[] = {-1, -1, kTcp, kTcp, kTcp, kUdp, kUdp, kIcmp, kIcmpv6, kGre};
      r.protocol = pick(kProtocols);
      r.src = prefixes();
      r.dst = prefixes();
      if (r.protocol == kTcp || r.protocol == kUdp) {
        r.src_ports = ranges(chance(0.7) ? 0 : 2);
        r.dst_ports = ranges(3);
      }
      if (r.protocol == kTcp && chance(0.4)) {
        r.tcp_flags_mask = static_cast<uint8_t>(below(256) | kSyn);
        r.tcp_flags_set = static_cast<uint8_t>(below(256) & r.tcp_flags_mask);
      }
      if (chance(0.5)) r.states = static_cast<uint8_t>(1 + below(15));
      r.in_ports = names(kPorts, chance(0.6) ? 0 : 2);
      r.out_ports = names(kPorts, chance(0.7) ? 0 : 2);
      r.from_zones = names(kZones, chance(0.6) ? 0 : 2);
      r.to_zones = names(kZones, chance(0.6) ? 0 : 2);
      r.action = static_cast<FirewallAction>(below(3));
      if (valid(r)) return r;
    }
  }

  // A key near what the rules name: often inside some rule's prefix and at its port edges.
  template <typename Key>
  Key key(const std::vector<FirewallRule>& rules, const Ruleset& rs) {
    constexpr unsigned family = sizeof(Key) == sizeof(AclKey4) ? 4 : 6;
    Key k{};
    static constexpr uint8_t kProtos[] = {kTcp, kTcp, kTcp, kUdp, kUdp, kIcmp, kIcmpv6, kGre, 0};
    k.proto = pick(kProtos);
    const FirewallRule& near = rules[below(static_cast<unsigned>(rules.size()))];
    if (near.protocol >= 0 && chance(0.6)) k.proto = static_cast<uint8_t>(near.protocol);
    net::IpAddr src = address(near.src, family), dst = address(near.dst, family);
    std::memcpy(&k.src, src.bytes.data(), family == 4 ? 4 : 16);
    std::memcpy(&k.dst, dst.bytes.data(), family == 4 ? 4 : 16);
    static constexpr uint8_t kIds[] = {kLan0, kLan1, kWan, kDmz, kDmz, 9};
    k.in_port = pick(kIds);
    k.out_port = pick(kIds);
    k.in_zone = chance(0.9) ? rs.zone_of_port(k.in_port) : static_cast<uint8_t>(below(5));
    k.out_zone = chance(0.9) ? rs.zone_of_port(k.out_port) : kNoZone;
    k.state = static_cast<uint8_t>(1u << below(4));
    if (k.proto == kTcp) {
      k.tcp_flags = static_cast<uint8_t>(below(256));
      if (chance(0.5)) k.tcp_flags = static_cast<uint8_t>((k.tcp_flags & ~near.tcp_flags_mask) | near.tcp_flags_set);
    }
    if (k.proto == kTcp || k.proto == kUdp) {
      k.src_port = rte_cpu_to_be_16(port_near(near.src_ports));
      k.dst_port = rte_cpu_to_be_16(port_near(near.dst_ports));
    }
    return k;
  }

 private:
  static constexpr const char* kPorts[] = {"lan0", "lan1", "wan", "dmz"};
  static constexpr const char* kZones[] = {"inside", "outside", "dmz"};

  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  unsigned below(unsigned n) { return std::uniform_int_distribution<unsigned>(0, n - 1)(rng_); }
  template <typename T, size_t N>
  T pick(const T (&items)[N]) {
    return items[below(N)];
  }

  // Few distinct networks, lengths that cross byte and word edges.
  net::IpPrefix prefix(unsigned family) {
    net::IpPrefix p;
    p.addr.family = static_cast<uint8_t>(family);
    if (family == 4) {
      static constexpr uint8_t kFirst[] = {10, 10, 192, 0, 255};
      p.addr.bytes = {pick(kFirst), static_cast<uint8_t>(below(3)), static_cast<uint8_t>(below(4)),
                      static_cast<uint8_t>(below(256))};
      static constexpr uint8_t kLens[] = {0, 1, 8, 15, 16, 23, 24, 25, 30, 31, 32};
      p.len = chance(0.8) ? pick(kLens) : static_cast<uint8_t>(below(33));
    } else {
      p.addr.bytes = {0xfd, 0x00, 0, static_cast<uint8_t>(below(3))};
      for (unsigned b = 4; b < 16; ++b) p.addr.bytes[b] = chance(0.7) ? 0 : static_cast<uint8_t>(below(256));
      p.addr.bytes[8] = static_cast<uint8_t>(below(2) << 7 | below(2));
      static constexpr uint8_t kLens[] = {0, 7, 8, 31, 32, 33, 48, 63, 64, 65, 96, 97, 127, 128};
      p.len = chance(0.8) ? pick(kLens) : static_cast<uint8_t>(below(129));
    }
    return p.network();
  }
  std::vector<net::IpPrefix> prefixes() {
    std::vector<net::IpPrefix> list;
    unsigned n = chance(0.35) ? 0 : 1 + below(2);
    unsigned family = chance(0.5) ? 4 : 6;
    for (unsigned i = 0; i < n; ++i) list.push_back(prefix(chance(0.8) ? family : 10 - family));
    return list;
  }
  std::vector<PortRange> ranges(unsigned most) {
    std::vector<PortRange> list;
    unsigned n = below(most + 1);
    static constexpr uint16_t kEdges[] = {0, 1, 53, 80, 443, 1023, 1024, 8080, 65534, 65535};
    for (unsigned i = 0; i < n; ++i) {
      uint16_t a = chance(0.5) ? pick(kEdges) : static_cast<uint16_t>(below(65536));
      uint16_t b = chance(0.3) ? a : chance(0.5) ? pick(kEdges) : static_cast<uint16_t>(below(65536));
      list.push_back(PortRange{std::min(a, b), std::max(a, b)});
    }
    return list;
  }
  template <size_t N>
  std::vector<std::string> names(const char* const (&all)[N], unsigned most) {
    std::vector<std::string> list;
    unsigned n = below(most + 1);
    for (unsigned i = 0; i < n; ++i) list.push_back(pick(all));
    return list;
  }

  // What compile accepts (families in common, ICMP's family), at most 64 ACL rules, and
  // narrow enough (two conditions at least) that one early rule does not catch every key.
  static bool valid(const FirewallRule& r) {
    unsigned conditions = (r.protocol >= 0) + !r.src.empty() + !r.dst.empty() + !r.src_ports.empty() +
                          !r.dst_ports.empty() + (r.tcp_flags_mask != 0) + (r.states != 15) + !r.in_ports.empty() +
                          !r.out_ports.empty() + !r.from_zones.empty() + !r.to_zones.empty();
    if (conditions < 2) return false;
    auto has = [](const std::vector<net::IpPrefix>& l, unsigned f) {
      return l.empty() || std::any_of(l.begin(), l.end(), [&](const auto& p) { return p.addr.family == f; });
    };
    bool v4 = has(r.src, 4) && has(r.dst, 4) && r.protocol != kIcmpv6;
    bool v6 = has(r.src, 6) && has(r.dst, 6) && r.protocol != kIcmp;
    if (!v4 && !v6) return false;
    size_t product = std::max<size_t>(1, r.src.size()) * std::max<size_t>(1, r.dst.size()) *
                     std::max<size_t>(1, r.src_ports.size()) * std::max<size_t>(1, r.dst_ports.size()) *
                     std::max<size_t>(1, r.in_ports.size()) * std::max<size_t>(1, r.out_ports.size()) *
                     std::max<size_t>(1, r.from_zones.size()) * std::max<size_t>(1, r.to_zones.size()) *
                     static_cast<size_t>(__builtin_popcount(r.states));
    return product <= 64;
  }

  net::IpAddr address(const std::vector<net::IpPrefix>& near, unsigned family) {
    net::IpPrefix base = prefix(family);
    std::vector<const net::IpPrefix*> same;
    for (const auto& p : near)
      if (p.addr.family == family) same.push_back(&p);
    if (!same.empty() && chance(0.7)) base = *same[below(static_cast<unsigned>(same.size()))];
    // Keep the network bits, randomise the rest; now and then flip the last network bit.
    net::IpAddr a = base.addr;
    unsigned bits = family == 4 ? 32 : 128;
    for (unsigned bit = base.len; bit < bits; ++bit)
      if (chance(0.5)) a.bytes[bit / 8] ^= static_cast<uint8_t>(0x80u >> (bit % 8));
    if (base.len > 0 && chance(0.15)) a.bytes[(base.len - 1) / 8] ^= static_cast<uint8_t>(0x80u >> ((base.len - 1) % 8));
    return a;
  }

  uint16_t port_near(const std::vector<PortRange>& near) {
    if (near.empty() || chance(0.2)) return static_cast<uint16_t>(below(65536));
    const PortRange& r = near[below(static_cast<unsigned>(near.size()))];
    switch (below(5)) {
      case 0: return r.first;
      case 1: return r.last;
      case 2: return static_cast<uint16_t>(r.first - 1);  // wraps at 0: still a valid port
      case 3: return static_cast<uint16_t>(r.last + 1);
      default: return static_cast<uint16_t>(r.first + below(r.last - r.first + 1u));
    }
  }

  std::mt19937 rng_;
};

std::string describe(const RefKey& k) {
  return "src " + k.src.str() + " dst " + k.dst.str() + " proto " + std::to_string(k.proto) + " ports " +
         std::to_string(k.sport) + "->" + std::to_string(k.dport) + " in " + std::to_string(k.in_port) + "/z" +
         std::to_string(k.in_zone) + " out " + std::to_string(k.out_port) + "/z" + std::to_string(k.out_zone) +
         " state " + std::to_string(k.state) + " flags " + std::to_string(k.tcp_flags);
}

// Classifies `count` random keys of one family in bursts of 64; returns how many matched a rule.
template <typename Key>
unsigned check_family(RandomFirewall& random, const config::Config& config, const Ruleset& rs,
                      const ReferenceMatcher& reference, unsigned count, std::set<uint32_t>& rules_hit) {
  constexpr bool kV4 = sizeof(Key) == sizeof(AclKey4);
  unsigned matched = 0, mismatches = 0;
  for (unsigned done = 0; done < count; done += config::kMaxBurst) {
    std::vector<Key> keys(config::kMaxBurst);
    const uint8_t* ptrs[config::kMaxBurst];
    uint32_t results[config::kMaxBurst];
    for (unsigned i = 0; i < config::kMaxBurst; ++i) {
      keys[i] = random.key<Key>(config.firewall.rules, rs);
      ptrs[i] = reinterpret_cast<const uint8_t*>(&keys[i]);
    }
    if constexpr (kV4)
      rs.classify4(ptrs, results, config::kMaxBurst);
    else
      rs.classify6(ptrs, results, config::kMaxBurst);
    for (unsigned i = 0; i < config::kMaxBurst; ++i) {
      RefKey k = decode(keys[i]);
      uint32_t expected = reference.classify(k);
      if (results[i] != expected && ++mismatches <= 10)
        ADD_FAILURE() << "rte_acl says rule " << results[i] << ", the reference " << expected << ": " << describe(k);
      matched += expected != 0;
      rules_hit.insert(expected);
    }
  }
  EXPECT_EQ(mismatches, 0u);
  return matched;
}

TEST(FirewallDifferential, BurstClassifyAgreesWithScalarReferenceOnRandomRules) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    RandomFirewall random(seed);
    config::Config config = base_config();
    for (size_t i = 0; i < 50; ++i) config.firewall.rules.push_back(random.rule(i));
    std::string error;
    auto rs = Ruleset::compile(config, kPortIds, next_generation(), error);
    ASSERT_NE(rs, nullptr) << error;
    ReferenceMatcher reference(config, kPortIds);
    std::set<uint32_t> rules_hit;
    unsigned matched4 = check_family<AclKey4>(random, config, *rs, reference, 2048, rules_hit);
    unsigned matched6 = check_family<AclKey6>(random, config, *rs, reference, 2048, rules_hit);
    // The keys must exercise the rules, not just fall through to "no match".
    EXPECT_GT(matched4, 200u);
    EXPECT_GT(matched6, 200u);
    EXPECT_GT(rules_hit.size(), 10u);
  }
}

}  // namespace
}  // namespace sluice::firewall
