// lib/l3/route_table: the table a config builds (connected, local, broadcast, static,
// ECMP routes; longest-prefix match; IPv6) with made-up port ids and MACs, and the
// symmetric flow hash ECMP picks members with.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/config.h"
#include "l3/route_table.h"
#include "l3_support.h"
#include "pipeline/parse.h"
#include "pipeline/route.h"
#include "test_support.h"

namespace sluice::l3 {
namespace {

using test::addr4_raw;

constexpr uint16_t kWest = 3, kEast = 5;  // any ids: the table never asks ethdev

config::Config parse_ok(const std::string& text) {
  config::ParseResult result = config::parse_config_text(text, "test.json");
  EXPECT_TRUE(result.ok()) << ::testing::PrintToString(result.errors);
  return result.ok() ? *result.config : config::Config{};
}

const char* kConfig = R"({"eal": {"lcores": "0-1"}, "ports": [
    {"name": "west", "device": "net_ring0", "ipv4": ["10.1.0.1/24", "10.11.0.0/31"], "ipv6": ["fd00:1::1/64"],
     "pipeline": ["parse", "route"]},
    {"name": "east", "device": "net_ring1", "mtu": 1400, "ipv4": ["10.2.0.1/24", "10.12.0.1/32"],
     "ipv6": ["fd00:2::1/64", "fd00:22::1/64"], "pipeline": ["parse", "route"]},
    {"name": "north", "device": "net_ring2", "pipeline": ["parse", {"stage": "xconnect", "peer": "south"}]},
    {"name": "south", "device": "net_ring3", "pipeline": ["parse", {"stage": "xconnect", "peer": "north"}]}],
  "routes": [
    {"prefix": "10.9.0.0/16", "via": "10.2.0.2"},
    {"prefix": "10.9.5.0/24", "via": "10.1.0.2"},
    {"prefix": "10.9.5.128/25", "via": "10.2.0.9"},
    {"prefix": "10.1.0.0/24", "via": "10.2.0.2"},
    {"prefix": "10.6.0.0/16", "port": "east"},
    {"prefix": "0.0.0.0/0", "nexthops": [{"via": "10.2.0.2"}, {"via": "10.2.0.3"}, {"via": "10.1.0.4"}]},
    {"prefix": "fd00:9::/48", "via": "fd00:2::2"},
    {"prefix": "fd00:9:1::/64", "via": "fd00:1::2"},
    {"prefix": "::/0", "nexthops": [{"via": "fd00:2::2"}, {"via": "fd00:2::3"}]}
  ]})";

class RouteTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = parse_ok(kConfig);
    macs_[kWest] = test::ether({0x02, 0, 0, 0, 0x0a, 0x01});
    macs_[kEast] = test::ether({0x02, 0, 0, 0, 0x0e, 0x01});
    std::string error;
    table_ = RouteTable::build(config_, ids_, macs_, error);
    ASSERT_NE(table_, nullptr) << error;
    EXPECT_EQ(error, "");
  }

  const NextHop* find(const char* dst, uint32_t hash = 0) const {
    auto a = net::parse_ip(dst);
    EXPECT_TRUE(a.has_value()) << dst;
    return table_->lookup(*a, hash);
  }
  // "local:3", "broadcast:5", "neighbour:5", "neighbour:5 via 10.2.0.2", or "none".
  std::string route(const char* dst, uint32_t hash = 0) const {
    const NextHop* hop = find(dst, hash);
    if (!hop) return "none";
    std::string kind = hop->kind == HopKind::Local ? "local" : hop->kind == HopKind::Broadcast ? "broadcast" : "neighbour";
    std::string text = kind + ":" + std::to_string(hop->port_id);
    if (hop->gateway.is_set()) text += " via " + hop->gateway.str();
    return text;
  }

  config::Config config_;
  RouteTable::PortIds ids_ = {{"west", kWest}, {"east", kEast}, {"north", 7}, {"south", 8}};
  RouteTable::PortMacs macs_{};
  std::unique_ptr<RouteTable> table_;
};

TEST_F(RouteTableTest, ConnectedSubnetsResolveOnTheLink) {
  EXPECT_EQ(route("10.1.0.77"), "neighbour:3");
  EXPECT_EQ(route("10.1.0.0"), "neighbour:3") << "the network address is on the link";
  EXPECT_EQ(route("10.2.0.254"), "neighbour:5");
  EXPECT_EQ(route("10.11.0.1"), "neighbour:3") << "the other end of a /31";
  EXPECT_EQ(route("fd00:1::abcd"), "neighbour:3");
  EXPECT_EQ(route("fd00:22::5"), "neighbour:5") << "a second IPv6 subnet";
}

TEST_F(RouteTableTest, ConnectedSubnetBeatsAStaticRouteForTheSamePrefix) {
  // routes[3] says 10.1.0.0/24 via 10.2.0.2: the connected subnet replaces it.
  EXPECT_EQ(route("10.1.0.9"), "neighbour:3");
  int listed = 0;
  for (const auto& e : table_->entries()) {
    if (e.prefix.str() != "10.1.0.0/24") continue;
    ++listed;
    ASSERT_EQ(e.hops.size(), 1u);
    EXPECT_FALSE(e.hops[0].gateway.is_set());
  }
  EXPECT_EQ(listed, 1) << "the listing keeps only the winner";
}

TEST_F(RouteTableTest, OwnAddressesAreLocal) {
  EXPECT_EQ(route("10.1.0.1"), "local:3");
  EXPECT_EQ(route("10.11.0.0"), "local:3");
  EXPECT_EQ(route("10.2.0.1"), "local:5");
  EXPECT_EQ(route("10.12.0.1"), "local:5") << "a /32 address";
  EXPECT_EQ(route("fd00:1::1"), "local:3");
  EXPECT_EQ(route("fd00:2::1"), "local:5");
  EXPECT_EQ(route("fd00:22::1"), "local:5");
  EXPECT_EQ(route("fd00:1::2"), "neighbour:3") << "the /128 covers one address only";
}

TEST_F(RouteTableTest, SubnetBroadcastIsNotForwarded) {
  EXPECT_EQ(route("10.1.0.255"), "broadcast:3");
  EXPECT_EQ(route("10.2.0.255"), "broadcast:5");
  EXPECT_EQ(route("10.11.0.1"), "neighbour:3") << "a /31 has no broadcast address (RFC 3021)";
  EXPECT_EQ(route("10.12.0.1"), "local:5") << "nor has a /32";
}

TEST_F(RouteTableTest, StaticRoutesGoThroughTheirGateway) {
  EXPECT_EQ(route("10.9.200.1"), "neighbour:5 via 10.2.0.2");
  EXPECT_EQ(route("10.6.1.1"), "neighbour:5") << "an on-link route resolves the destination itself";
  EXPECT_EQ(route("fd00:9:5::1"), "neighbour:5 via fd00:2::2");
}

TEST_F(RouteTableTest, LongestPrefixWins) {
  EXPECT_EQ(route("10.9.4.255"), "neighbour:5 via 10.2.0.2");    // /16
  EXPECT_EQ(route("10.9.5.1"), "neighbour:3 via 10.1.0.2");      // /24
  EXPECT_EQ(route("10.9.5.127"), "neighbour:3 via 10.1.0.2");    // /24
  EXPECT_EQ(route("10.9.5.128"), "neighbour:5 via 10.2.0.9");    // /25
  EXPECT_EQ(route("10.9.5.255"), "neighbour:5 via 10.2.0.9");    // /25
  EXPECT_EQ(route("10.9.6.0"), "neighbour:5 via 10.2.0.2");      // /16 again
  EXPECT_EQ(route("fd00:9:1::7"), "neighbour:3 via fd00:1::2");  // /64 inside the /48
  EXPECT_EQ(route("fd00:9:2::7"), "neighbour:5 via fd00:2::2");
}

TEST_F(RouteTableTest, DefaultRouteIsEcmpAndEveryMemberIsReachable) {
  std::set<std::string> seen;
  for (uint32_t hash = 0; hash < 1000; ++hash) {
    std::string r = route("192.0.2.1", hash * 2654435761u);
    seen.insert(r);
    EXPECT_EQ(route("192.0.2.1", hash * 2654435761u), r) << "the same hash picks the same member";
    EXPECT_EQ(route("198.51.100.7", hash * 2654435761u), r) << "the pick depends on the hash only";
  }
  EXPECT_EQ(seen, (std::set<std::string>{"neighbour:5 via 10.2.0.2", "neighbour:5 via 10.2.0.3",
                                         "neighbour:3 via 10.1.0.4"}));
  // The member is the hash modulo the member count, in the order configured.
  EXPECT_EQ(route("192.0.2.1", 0), "neighbour:5 via 10.2.0.2");
  EXPECT_EQ(route("192.0.2.1", 1), "neighbour:5 via 10.2.0.3");
  EXPECT_EQ(route("192.0.2.1", 2), "neighbour:3 via 10.1.0.4");
  EXPECT_EQ(route("192.0.2.1", 3), "neighbour:5 via 10.2.0.2");

  std::set<std::string> seen6;
  for (uint32_t hash = 0; hash < 100; ++hash) seen6.insert(route("2001:db8::1", hash));
  EXPECT_EQ(seen6, (std::set<std::string>{"neighbour:5 via fd00:2::2", "neighbour:5 via fd00:2::3"}));
}

TEST_F(RouteTableTest, FastPathLookupMatchesTheSlowPath) {
  const char* dsts[] = {"10.1.0.77", "10.1.0.1", "10.1.0.255", "10.9.5.200", "192.0.2.1", "10.9.5.1"};
  uint32_t addrs[6];
  uint64_t groups[6];
  for (int i = 0; i < 6; ++i) addrs[i] = net::parse_ip(dsts[i])->v4_host();
  table_->lookup4(addrs, groups, 6);
  for (int i = 0; i < 6; ++i) {
    ASSERT_NE(groups[i], kNoRoute) << dsts[i];
    EXPECT_EQ(&table_->pick(groups[i], 7), find(dsts[i], 7)) << dsts[i];
  }
  EXPECT_FALSE(table_->multipath(groups[0]));
  EXPECT_TRUE(table_->multipath(groups[4]));

  uint8_t addrs6[2][16];
  uint64_t groups6[2];
  auto a = test::addr6("fd00:1::1"), b = test::addr6("fd00:9::1");
  std::memcpy(addrs6[0], a.data(), 16);
  std::memcpy(addrs6[1], b.data(), 16);
  table_->lookup6(addrs6, groups6, 2);
  EXPECT_EQ(&table_->pick(groups6[0], 0), find("fd00:1::1"));
  EXPECT_EQ(&table_->pick(groups6[1], 0), find("fd00:9::1"));
}

TEST_F(RouteTableTest, InterfacesDescribeTheRoutedPorts) {
  const Interface& west = table_->interface(kWest);
  EXPECT_TRUE(west.routed);
  EXPECT_EQ(west.mtu, 1500);
  EXPECT_TRUE(rte_is_same_ether_addr(&west.mac, &macs_[kWest]));
  EXPECT_EQ(west.ipv4, addr4_raw("10.1.0.1")) << "the first address, network order";
  EXPECT_TRUE(west.has_ipv6);
  EXPECT_EQ(west.ipv6, test::addr6("fd00:1::1"));
  ASSERT_EQ(west.addresses.size(), 3u);
  EXPECT_EQ(west.addresses[0].str(), "10.1.0.1/24");
  EXPECT_EQ(west.addresses[1].str(), "10.11.0.0/31");
  EXPECT_EQ(west.addresses[2].str(), "fd00:1::1/64");

  const Interface& east = table_->interface(kEast);
  EXPECT_TRUE(east.routed);
  EXPECT_EQ(east.mtu, 1400);
  EXPECT_EQ(east.ipv4, addr4_raw("10.2.0.1"));
  EXPECT_EQ(east.ipv6, test::addr6("fd00:2::1"));

  EXPECT_FALSE(table_->interface(7).routed) << "a cross-connected port";
  EXPECT_FALSE(table_->interface(0).routed);
  EXPECT_EQ(table_->interface(7).ipv4, 0u);
}

TEST_F(RouteTableTest, EntriesListEveryPrefixOnce) {
  std::map<std::string, size_t> hops;
  for (const auto& e : table_->entries()) {
    EXPECT_EQ(hops.count(e.prefix.str()), 0u) << e.prefix.str() << " listed twice";
    hops[e.prefix.str()] = e.hops.size();
  }
  // 9 routes, one replaced by a connected subnet; west: 2 subnets, 2 locals, 1
  // broadcast, IPv6 subnet and local; east: subnet, local, broadcast, /32 (subnet and
  // local are one prefix), 2 IPv6 subnets and locals.
  EXPECT_EQ(hops.size(), 8u + 7u + 8u);
  EXPECT_EQ(hops["0.0.0.0/0"], 3u);
  EXPECT_EQ(hops["::/0"], 2u);
  EXPECT_EQ(hops["10.1.0.255/32"], 1u);
  EXPECT_EQ(hops["10.12.0.1/32"], 1u);
  EXPECT_EQ(hops["fd00:2::1/128"], 1u);
}

TEST_F(RouteTableTest, NoRouteWithoutADefault) {
  config::Config c = parse_ok(R"({"eal": {"lcores": "0-1"}, "ports": [
      {"name": "west", "device": "net_ring0", "ipv4": ["10.1.0.1/24"], "pipeline": ["parse", "route"]}]})");
  std::string error;
  auto table = RouteTable::build(c, {{"west", 0}}, macs_, error);
  ASSERT_NE(table, nullptr) << error;
  EXPECT_EQ(table->lookup(*net::parse_ip("192.0.2.1"), 0), nullptr);
  EXPECT_EQ(table->lookup(*net::parse_ip("10.1.0.5"), 0)->kind, HopKind::Neighbour);
  // No IPv6 address anywhere: no IPv6 FIB, and every IPv6 lookup misses.
  EXPECT_EQ(table->lookup(*net::parse_ip("fd00::1"), 0), nullptr);
  uint8_t addrs6[1][16] = {};
  uint64_t groups6[1] = {99};
  table->lookup6(addrs6, groups6, 1);
  EXPECT_EQ(groups6[0], kNoRoute);
  EXPECT_FALSE(table->interface(0).has_ipv6);
}

TEST_F(RouteTableTest, Ipv6OnlyTableMissesEveryIpv4Destination) {
  config::Config c = parse_ok(R"({"eal": {"lcores": "0-1"}, "ports": [
      {"name": "west", "device": "net_ring0", "ipv6": ["fd00:1::1/64"], "pipeline": ["parse", "route"]}]})");
  std::string error;
  auto table = RouteTable::build(c, {{"west", 0}}, macs_, error);
  ASSERT_NE(table, nullptr) << error;
  EXPECT_EQ(table->lookup(*net::parse_ip("10.1.0.1"), 0), nullptr);
  EXPECT_EQ(table->lookup(*net::parse_ip("fd00:1::1"), 0)->kind, HopKind::Local);
  EXPECT_EQ(table->interface(0).ipv4, 0u) << "no source for ICMPv4 errors";
}

// ---- RouteStage::flow_hash on crafted, parsed packets ----

class FlowHashTest : public test::MbufTest {
 protected:
  uint32_t hash_of(const std::vector<uint8_t>& frame) {
    rte_mbuf* m = make_mbuf(frame);
    pipeline::ParseCounts counts;
    EXPECT_EQ(pipeline::ParseStage::parse_packet(m, counts), std::nullopt);
    uint32_t h = pipeline::RouteStage::flow_hash(m, pipeline::meta(m));
    rte_pktmbuf_free(m);
    return h;
  }
};

TEST_F(FlowHashTest, Ipv4IsSymmetric) {
  for (uint8_t proto : {net::kIpProtoUdp, net::kIpProtoTcp}) {
    uint32_t forward = hash_of(test::ipv4_frame(
        {.src = "10.1.0.10", .dst = "10.9.1.1", .proto = proto, .src_port = 40000, .dst_port = 443}));
    uint32_t reverse = hash_of(test::ipv4_frame(
        {.src = "10.9.1.1", .dst = "10.1.0.10", .proto = proto, .src_port = 443, .dst_port = 40000}));
    EXPECT_EQ(forward, reverse) << int(proto);
  }
  uint32_t icmp = hash_of(test::ipv4_frame({.src = "10.1.0.10", .dst = "10.9.1.1", .proto = net::kIpProtoIcmp}));
  uint32_t icmp_back = hash_of(test::ipv4_frame({.src = "10.9.1.1", .dst = "10.1.0.10", .proto = net::kIpProtoIcmp}));
  EXPECT_EQ(icmp, icmp_back);
}

TEST_F(FlowHashTest, Ipv6IsSymmetric) {
  for (uint8_t proto : {net::kIpProtoUdp, net::kIpProtoTcp}) {
    uint32_t forward = hash_of(test::ipv6_frame(
        {.src = "fd00:1::10", .dst = "2001:db8:5::1", .proto = proto, .src_port = 40000, .dst_port = 443}));
    uint32_t reverse = hash_of(test::ipv6_frame(
        {.src = "2001:db8:5::1", .dst = "fd00:1::10", .proto = proto, .src_port = 443, .dst_port = 40000}));
    EXPECT_EQ(forward, reverse) << int(proto);
  }
}

TEST_F(FlowHashTest, FlowsSpreadOverPortsAndAddresses) {
  std::set<uint32_t> hashes;
  for (uint16_t port = 40000; port < 40064; ++port)
    hashes.insert(hash_of(test::ipv4_frame({.src = "10.1.0.10", .dst = "10.9.1.1", .src_port = port})));
  EXPECT_GT(hashes.size(), 60u) << "source ports change the hash";
  std::set<uint32_t> by_address;
  for (int host = 1; host < 65; ++host) {
    std::string dst = "10.9.1." + std::to_string(host);
    by_address.insert(hash_of(test::ipv4_frame({.src = "10.1.0.10", .dst = dst.c_str()})));
  }
  EXPECT_GT(by_address.size(), 60u) << "addresses change the hash";
  uint32_t udp = hash_of(test::ipv4_frame({.proto = net::kIpProtoUdp}));
  uint32_t tcp = hash_of(test::ipv4_frame({.proto = net::kIpProtoTcp}));
  EXPECT_NE(udp, tcp) << "the protocol is part of the flow";
}

TEST_F(FlowHashTest, EveryFragmentOfADatagramHashesAlike) {
  // Later fragments carry no ports; the first must not use them either, or ECMP would
  // send one datagram's fragments down different paths.
  uint32_t first = hash_of(test::ipv4_frame({.fragment = 0x2000, .payload = 64}));
  uint32_t later = hash_of(test::ipv4_frame({.fragment = 0x0008, .payload = 64}));
  EXPECT_EQ(first, later);
  uint32_t first6 = hash_of(test::ipv6_frame({.payload = 64, .fragment_offset = 0, .more_fragments = true}));
  uint32_t later6 = hash_of(test::ipv6_frame({.payload = 64, .fragment_offset = 9}));
  EXPECT_EQ(first6, later6);
}

}  // namespace
}  // namespace sluice::l3
