// lib/config, router keys (ports[].ipv4/ipv6, routes, neighbours, icmp, neighbour):
// every bad router config yields exactly the lines an operator reads; a good one has
// its routes' and neighbours' ports resolved from the connected subnets and
// round-trips through to_json.
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.h"
#include "config_support.h"

namespace sluice::config {
namespace {

// Short-hands so each case shows only what it breaks.
//   $EAL  "eal": {"lcores": "0-1"}
//   $RW   routed port west: 10.1.0.1/24, fd00:1::1/64
//   $RE   routed port east: 10.2.0.1/24, fd00:2::1/64
//   $XN   port north (net_ring2), cross-connected to south
//   $XS   port south (net_ring3), cross-connected to north
const fixtures::ConfigText kText({
      {"$EAL", R"("eal": {"lcores": "0-1"})"},
      {"$RW",
       R"({"name": "west", "device": "net_ring0", "ipv4": ["10.1.0.1/24"], "ipv6": ["fd00:1::1/64"], "pipeline": ["parse", "route"]})"},
      {"$RE",
       R"({"name": "east", "device": "net_ring1", "ipv4": ["10.2.0.1/24"], "ipv6": ["fd00:2::1/64"], "pipeline": ["parse", "route"]})"},
      {"$XN", R"({"name": "north", "device": "net_ring2", "pipeline": ["parse", {"stage": "xconnect", "peer": "south"}]})"},
      {"$XS", R"({"name": "south", "device": "net_ring3", "pipeline": ["parse", {"stage": "xconnect", "peer": "north"}]})"},
});

Config parse_ok(const std::string& text) { return kText.parse_ok(text); }

// A port "west" on net_ring0 routing with these addresses (JSON members, e.g. `"ipv4": [...]`).
std::string west_with(const std::string& addresses) {
  return R"({"name": "west", "device": "net_ring0", )" + addresses + R"(, "pipeline": ["parse", "route"]})";
}

using fixtures::BadConfig;

class BadL3ConfigTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadL3ConfigTest, ReportsExactlyTheseErrors) {
  fixtures::expect_exact_errors(kText, GetParam());
}

std::string with_west(const std::string& addresses, const std::string& rest = "") {
  return R"({$EAL, "ports": [)" + west_with(addresses) + ", $RE]" + rest + "}";
}
std::string with_routes(const std::string& routes) { return R"({$EAL, "ports": [$RW, $RE], "routes": )" + routes + "}"; }
std::string with_neighbours(const std::string& list) {
  return R"({$EAL, "ports": [$RW, $RE], "neighbours": )" + list + "}";
}
std::string with_top(const std::string& members) { return R"({$EAL, "ports": [$RW, $RE], )" + members + "}"; }

std::string seventeen_hops() {
  std::string hops;
  for (int i = 2; i < 19; ++i) hops += std::string(hops.empty() ? "" : ", ") + R"({"via": "10.2.0.)" + std::to_string(i) + R"("})";
  return "[" + hops + "]";
}

std::string seventeen_addresses() {
  std::string list;
  for (int i = 1; i < 18; ++i) list += std::string(list.empty() ? "" : ", ") + "\"10.1.0." + std::to_string(i) + "/24\"";
  return R"("ipv4": [)" + list + "]";
}

const BadConfig kBadConfigs[] = {
    // Interface addresses: syntax.
    {"Ipv4NotAnArray", with_west(R"("ipv4": "10.1.0.1/24")"),
     {R"(ports[0].ipv4: must be an array of addresses like "10.1.0.1/24", got string)"}},
    {"Ipv6NotAnArray", with_west(R"("ipv6": {"a": 1})"),
     {R"(ports[0].ipv6: must be an array of addresses like "fd00:1::1/64", got object)"}},
    {"Ipv4EntryNotString", with_west(R"("ipv4": [10])"),
     {R"(ports[0].ipv4[0]: must be a string like "10.1.0.1/24", got integer)"}},
    {"TooManyAddresses", with_west(seventeen_addresses()), {"ports[0].ipv4: at most 16 addresses, got 17"}},
    {"BadCidrLength", with_west(R"("ipv4": ["10.1.0.1/33"])"),
     {"ports[0].ipv4[0]: must be an IPv4 address with its prefix length, got '10.1.0.1/33'"}},
    {"CidrWithoutLength", with_west(R"("ipv4": ["10.1.0.1"])"),
     {"ports[0].ipv4[0]: must be an IPv4 address with its prefix length, got '10.1.0.1'"}},
    {"CidrBadAddress", with_west(R"("ipv4": ["10.1.0.300/24"])"),
     {"ports[0].ipv4[0]: must be an IPv4 address with its prefix length, got '10.1.0.300/24'"}},
    {"Ipv6AddressInIpv4", with_west(R"("ipv4": ["fd00:1::1/64"])"),
     {"ports[0].ipv4[0]: must be an IPv4 address with its prefix length, got 'fd00:1::1/64'"}},
    {"Ipv4AddressInIpv6", with_west(R"("ipv6": ["10.1.0.1/24"])"),
     {"ports[0].ipv6[0]: must be an IPv6 address with its prefix length, got '10.1.0.1/24'"}},
    {"Ipv4LengthZero", with_west(R"("ipv4": ["10.1.0.1/0"])"),
     {"ports[0].ipv4[0]: prefix length must be at least 1, got '10.1.0.1/0'"}},
    {"Ipv6LengthZero", with_west(R"("ipv6": ["fd00:1::1/0"])"),
     {"ports[0].ipv6[0]: prefix length must be at least 1, got 'fd00:1::1/0'"}},

    // Interface addresses: values.
    {"NetworkAddress", with_west(R"("ipv4": ["10.1.0.0/24"])"),
     {"ports[0].ipv4[0]: 10.1.0.0/24 is the subnet's network or broadcast address"}},
    {"BroadcastAddress", with_west(R"("ipv4": ["10.1.0.255/24"])"),
     {"ports[0].ipv4[0]: 10.1.0.255/24 is the subnet's network or broadcast address"}},
    {"BroadcastAddressOfASlash30", with_west(R"("ipv4": ["10.1.0.3/30"])"),
     {"ports[0].ipv4[0]: 10.1.0.3/30 is the subnet's network or broadcast address"}},
    {"MulticastIpv4", with_west(R"("ipv4": ["224.0.0.5/24"])"),
     {"ports[0].ipv4[0]: must be a unicast address, got '224.0.0.5/24'"}},
    {"ClassEIpv4", with_west(R"("ipv4": ["240.0.0.1/24"])"),
     {"ports[0].ipv4[0]: must be a unicast address, got '240.0.0.1/24'"}},
    {"LoopbackIpv4", with_west(R"("ipv4": ["127.0.0.1/8"])"),
     {"ports[0].ipv4[0]: must be a unicast address, got '127.0.0.1/8'"}},
    {"ThisNetworkIpv4", with_west(R"("ipv4": ["0.1.0.1/24"])"),
     {"ports[0].ipv4[0]: must be a unicast address, got '0.1.0.1/24'"}},
    {"MulticastIpv6", with_west(R"("ipv6": ["ff02::1/64"])"),
     {"ports[0].ipv6[0]: must be a unicast address, got 'ff02::1/64'"}},
    {"LoopbackIpv6", with_west(R"("ipv6": ["::1/128"])"),
     {"ports[0].ipv6[0]: must be a unicast address, got '::1/128'"}},
    {"UnspecifiedIpv6", with_west(R"("ipv6": ["::/64"])"),
     {"ports[0].ipv6[0]: must be a unicast address, got '::/64'"}},
    {"EveryBadAddressIsReported", with_west(R"("ipv4": ["10.1.0.0/24", "10.1.0.1/24", "224.0.0.1/4"])"),
     {"ports[0].ipv4[0]: 10.1.0.0/24 is the subnet's network or broadcast address",
      "ports[0].ipv4[2]: must be a unicast address, got '224.0.0.1/4'"}},

    // Addresses against each other.
    {"OverlappingSubnetsAcrossPorts",
     R"({$EAL, "ports": [$RW, {"name": "east", "device": "net_ring1", "ipv4": ["10.1.0.2/16"], "pipeline": ["parse", "route"]}]})",
     {"ports[1].ipv4[0]: 10.1.0.2/16 overlaps ports[0].ipv4[0] 10.1.0.1/24 on another port"}},
    {"OverlappingIpv6SubnetsAcrossPorts",
     R"({$EAL, "ports": [$RW, {"name": "east", "device": "net_ring1", "ipv6": ["fd00:1::2/48"], "pipeline": ["parse", "route"]}]})",
     {"ports[1].ipv6[0]: fd00:1::2/48 overlaps ports[0].ipv6[0] fd00:1::1/64 on another port"}},
    {"NarrowerSubnetInsideAnotherPortsSubnet",
     R"({$EAL, "ports": [$RW, {"name": "east", "device": "net_ring1", "ipv4": ["10.1.0.129/25"], "pipeline": ["parse", "route"]}]})",
     {"ports[1].ipv4[0]: 10.1.0.129/25 overlaps ports[0].ipv4[0] 10.1.0.1/24 on another port"}},
    {"SameAddressTwiceOnOnePort", with_west(R"("ipv4": ["10.1.0.1/24", "10.1.0.1/16"])"),
     {"ports[0].ipv4[1]: 10.1.0.1 is already assigned at ports[0].ipv4[0]"}},

    // Addresses against pipelines.
    {"RouteStageWithoutAddresses",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "pipeline": ["parse", "route"]}, $RE]})",
     {"ports[0].pipeline: the route stage needs at least one address in ipv4 or ipv6"}},
    {"RouteStageWithEmptyAddressLists", with_west(R"("ipv4": [], "ipv6": [])"),
     {"ports[0].pipeline: the route stage needs at least one address in ipv4 or ipv6"}},
    {"AddressesWithoutRouteStage",
     R"({$EAL, "ports": [{"name": "north", "device": "net_ring2", "ipv4": ["10.5.0.1/24"], "pipeline": ["parse", {"stage": "xconnect", "peer": "south"}]}, $XS]})",
     {"ports[0]: addresses (ipv4, ipv6) need the route stage in the pipeline"}},
    {"RouteStageWithoutParse",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "ipv4": ["10.1.0.1/24"], "pipeline": ["route"]}, $RE]})",
     {"ports[0].pipeline: the route stage needs the parse stage first"}},
    {"RouteStageNotLast",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "ipv4": ["10.1.0.1/24"], "pipeline": ["parse", "route", {"stage": "xconnect", "peer": "east"}]}, $RE]})",
     {"ports[0].pipeline[1]: route sends packets out and must be the last stage"}},
    {"RouteStageWithPeer",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "ipv4": ["10.1.0.1/24"], "pipeline": ["parse", {"stage": "route", "peer": "east"}]}, $RE]})",
     {"ports[0].pipeline[1].peer: only the xconnect stage takes a peer"}},

    // routes: shape.
    {"RoutesNotAnArray", with_routes("{}"), {"routes: must be an array of routes, got object"}},
    {"RouteNotAnObject", with_routes(R"(["10.9.0.0/16"])"),
     {R"(routes[0]: must be an object {"prefix": ..., "via": ...}, got string)"}},
    {"RouteUnknownKey", with_routes(R"([{"prefix": "10.9.0.0/16", "via": "10.2.0.2", "gateway": "10.2.0.3"}])"),
     {"routes[0].gateway: unknown key (expected one of: prefix, via, port, nexthops)"}},
    {"RouteWithoutPrefix", with_routes(R"([{"via": "10.2.0.2"}])"), {"routes[0]: missing required key 'prefix'"}},
    {"RouteBadPrefix", with_routes(R"([{"prefix": "10.9.0.0", "via": "10.2.0.2"}])"),
     {"routes[0].prefix: must be an IPv4 or IPv6 prefix like 10.2.0.0/16, got '10.9.0.0'"}},
    {"RouteBadVia", with_routes(R"([{"prefix": "10.9.0.0/16", "via": "10.2.0"}])"),
     {"routes[0].via: must be an IPv4 or IPv6 address, got '10.2.0'"}},
    {"RouteWithoutViaOrPort", with_routes(R"([{"prefix": "10.9.0.0/16"}])"),
     {R"(routes[0].via: a next hop needs "via" (a gateway address), "port", or both)"}},
    {"NexthopsAndViaTogether",
     with_routes(R"([{"prefix": "10.9.0.0/16", "via": "10.2.0.2", "nexthops": [{"via": "10.2.0.3"}]}])"),
     {"routes[0].nexthops: give either nexthops or via/port, not both"}},
    {"NexthopsAndPortTogether",
     with_routes(R"([{"prefix": "10.9.0.0/16", "port": "east", "nexthops": [{"via": "10.2.0.3"}]}])"),
     {"routes[0].nexthops: give either nexthops or via/port, not both"}},
    {"NexthopsEmpty", with_routes(R"([{"prefix": "10.9.0.0/16", "nexthops": []}])"),
     {"routes[0].nexthops: must be an array of 1..16 next hops, got []"}},
    {"TooManyNexthops", with_routes(R"([{"prefix": "10.9.0.0/16", "nexthops": )" + seventeen_hops() + "}]"),
     {R"(routes[0].nexthops: must be an array of 1..16 next hops, got [{"via":"10.2.0.2"},{"via":"10.2.0.3"...)"}},
    {"NexthopNotAnObject", with_routes(R"([{"prefix": "10.9.0.0/16", "nexthops": ["10.2.0.2"]}])"),
     {R"(routes[0].nexthops[0]: must be an object {"via": ..., "port": ...}, got string)"}},
    {"NexthopUnknownKey", with_routes(R"([{"prefix": "10.9.0.0/16", "nexthops": [{"via": "10.2.0.2", "weight": 2}]}])"),
     {"routes[0].nexthops[0].weight: unknown key (expected one of: via, port)"}},
    {"NexthopWithoutViaOrPort",
     with_routes(R"([{"prefix": "10.9.0.0/16", "nexthops": [{"via": "10.2.0.2"}, {}]}])"),
     {R"(routes[0].nexthops[1].via: a next hop needs "via" (a gateway address), "port", or both)"}},

    // routes: references.
    {"ViaInNoConnectedSubnet", with_routes(R"([{"prefix": "10.9.0.0/16", "via": "10.5.0.1"}])"),
     {R"(routes[0].via: 10.5.0.1 is in no connected subnet; add "port")"}},
    {"Ipv6ViaInNoConnectedSubnet", with_routes(R"([{"prefix": "fd00:9::/48", "via": "fd00:5::1"}])"),
     {R"(routes[0].via: fd00:5::1 is in no connected subnet; add "port")"}},
    {"EcmpMemberInNoConnectedSubnet",
     with_routes(R"([{"prefix": "0.0.0.0/0", "nexthops": [{"via": "10.2.0.2"}, {"via": "10.5.0.1"}]}])"),
     {R"(routes[0].nexthops[1].via: 10.5.0.1 is in no connected subnet; add "port")"}},
    {"ViaFamilyMismatch", with_routes(R"([{"prefix": "10.9.0.0/16", "via": "fd00:2::2"}])"),
     {"routes[0].via: fd00:2::2 is not an IPv4 address like the prefix"}},
    {"Ipv6ViaFamilyMismatch", with_routes(R"([{"prefix": "fd00:9::/48", "via": "10.2.0.2"}])"),
     {"routes[0].via: 10.2.0.2 is not an IPv6 address like the prefix"}},
    {"RouteUnknownPort", with_routes(R"([{"prefix": "10.9.0.0/16", "via": "10.2.0.2", "port": "north"}])"),
     {"routes[0].port: unknown port 'north'"}},
    {"OnLinkRouteUnknownPort", with_routes(R"([{"prefix": "10.9.0.0/16", "port": "north"}])"),
     {"routes[0].port: unknown port 'north'"}},
    {"Ipv6RouteToAPortWithOnlyIpv4",
     R"({$EAL, "ports": [$RW, {"name": "v4only", "device": "net_ring2", "ipv4": ["10.3.0.1/24"], "pipeline": ["parse", "route"]}],
         "routes": [{"prefix": "fd00:9::/48", "via": "fd00:3::2", "port": "v4only"}]})",
     {"routes[0].port: port 'v4only' has no IPv6 address to resolve next hops from"}},
    {"RouteToAPortWithoutRouteStage",
     R"({$EAL, "ports": [$RW, $RE, $XN, $XS], "routes": [{"prefix": "10.9.0.0/16", "port": "north"}]})",
     {"routes[0].port: port 'north' has no route stage"}},
    {"DuplicatePrefix",
     with_routes(R"([{"prefix": "10.9.0.0/16", "via": "10.2.0.2"}, {"prefix": "10.9.0.0/16", "via": "10.2.0.3"}])"),
     {"routes[1].prefix: 10.9.0.0/16 is listed twice"}},
    {"DuplicatePrefixOnceHostBitsAreCleared",
     with_routes(R"([{"prefix": "10.9.0.0/16", "via": "10.2.0.2"}, {"prefix": "10.9.7.1/16", "via": "10.2.0.3"}])"),
     {"routes[1].prefix: 10.9.0.0/16 is listed twice"}},
    {"DuplicateIpv6Prefix",
     with_routes(R"([{"prefix": "fd00:9::/48", "via": "fd00:2::2"}, {"prefix": "fd00:9:0::1/48", "via": "fd00:2::3"}])"),
     {"routes[1].prefix: fd00:9::/48 is listed twice"}},
    {"EveryRouteMistakeIsReported",
     with_routes(R"([{"prefix": "10.9.0.0/16", "via": "10.5.0.1"}, {"prefix": "10.8.0.0/16", "via": "10.2.0.2", "port": "north"}])"),
     {R"(routes[0].via: 10.5.0.1 is in no connected subnet; add "port")", "routes[1].port: unknown port 'north'"}},

    // neighbours.
    {"NeighboursNotAnArray", with_neighbours(R"({"address": "10.2.0.2"})"),
     {"neighbours: must be an array of static neighbours, got object"}},
    {"NeighbourNotAnObject", with_neighbours(R"(["10.2.0.2"])"),
     {R"(neighbours[0]: must be an object {"address": ..., "mac": ...}, got string)"}},
    {"NeighbourMissingKeys", with_neighbours(R"([{}])"),
     {"neighbours[0]: missing required key 'address'", "neighbours[0]: missing required key 'mac'"}},
    {"NeighbourUnknownKey", with_neighbours(R"([{"address": "10.2.0.2", "mac": "02:00:00:00:02:02", "lladdr": 1}])"),
     {"neighbours[0].lladdr: unknown key (expected one of: address, mac, port)"}},
    {"NeighbourBadAddress", with_neighbours(R"([{"address": "10.2.0.2/32", "mac": "02:00:00:00:02:02"}])"),
     {"neighbours[0].address: must be an IPv4 or IPv6 address, got '10.2.0.2/32'"}},
    {"NeighbourShortMac", with_neighbours(R"([{"address": "10.2.0.2", "mac": "02:00:00:00:02"}])"),
     {"neighbours[0].mac: must be a unicast MAC like 02:00:00:00:00:01, got '02:00:00:00:02'"}},
    {"NeighbourMacWithBadDigits", with_neighbours(R"([{"address": "10.2.0.2", "mac": "02:00:00:00:02:0g"}])"),
     {"neighbours[0].mac: must be a unicast MAC like 02:00:00:00:00:01, got '02:00:00:00:02:0g'"}},
    {"NeighbourMacWithDashes", with_neighbours(R"([{"address": "10.2.0.2", "mac": "02-00-00-00-02-02"}])"),
     {"neighbours[0].mac: must be a unicast MAC like 02:00:00:00:00:01, got '02-00-00-00-02-02'"}},
    {"NeighbourMulticastMac", with_neighbours(R"([{"address": "10.2.0.2", "mac": "01:00:5e:00:00:01"}])"),
     {"neighbours[0].mac: must be a unicast MAC like 02:00:00:00:00:01, got '01:00:5e:00:00:01'"}},
    {"NeighbourInNoConnectedSubnet", with_neighbours(R"([{"address": "10.5.0.2", "mac": "02:00:00:00:02:02"}])"),
     {R"(neighbours[0].address: 10.5.0.2 is in no connected subnet; add "port")"}},
    {"NeighbourUnknownPort",
     with_neighbours(R"([{"address": "10.2.0.2", "mac": "02:00:00:00:02:02", "port": "north"}])"),
     {"neighbours[0].port: unknown port 'north'"}},
    {"NeighbourOnAPortWithoutRouteStage",
     R"({$EAL, "ports": [$RW, $RE, $XN, $XS], "neighbours": [{"address": "10.5.0.2", "mac": "02:00:00:00:02:02", "port": "south"}]})",
     {"neighbours[0].port: port 'south' has no route stage"}},

    // icmp and neighbour settings.
    {"IcmpNotAnObject", with_top(R"("icmp": 1000)"), {"icmp: must be an object, got integer"}},
    {"IcmpUnknownKey", with_top(R"("icmp": {"rate": 10})"),
     {"icmp.rate: unknown key (expected one of: rate_per_second, burst)"}},
    {"IcmpRateTooHigh", with_top(R"("icmp": {"rate_per_second": 1000001})"),
     {"icmp.rate_per_second: must be 0..1000000, got 1000001"}},
    {"IcmpRateNegative", with_top(R"("icmp": {"rate_per_second": -1})"),
     {"icmp.rate_per_second: must be 0..1000000, got -1"}},
    {"IcmpRateNotAnInteger", with_top(R"("icmp": {"rate_per_second": 1.5})"),
     {"icmp.rate_per_second: must be an integer, got number"}},
    {"IcmpBurstZero", with_top(R"("icmp": {"burst": 0})"), {"icmp.burst: must be 1..100000, got 0"}},
    {"IcmpBurstTooHigh", with_top(R"("icmp": {"burst": 100001})"), {"icmp.burst: must be 1..100000, got 100001"}},
    {"NeighbourSettingsNotAnObject", with_top(R"("neighbour": [])"), {"neighbour: must be an object, got array"}},
    {"NeighbourSettingsUnknownKey", with_top(R"("neighbour": {"gc_stale_time": 60})"),
     {"neighbour.gc_stale_time: unknown key (expected one of: reachable_ms, stale_ms, retransmit_ms, probes, "
      "queue_packets, capacity)"}},
    {"NeighbourSettingsOutOfRange",
     with_top(R"("neighbour": {"reachable_ms": 999, "stale_ms": 86400001, "retransmit_ms": 99, "probes": 0,
                               "queue_packets": 1025, "capacity": 63})"),
     {"neighbour.reachable_ms: must be 1000..3600000, got 999", "neighbour.stale_ms: must be 1000..86400000, got 86400001",
      "neighbour.retransmit_ms: must be 100..60000, got 99", "neighbour.probes: must be 1..10, got 0",
      "neighbour.queue_packets: must be 0..1024, got 1025", "neighbour.capacity: must be 64..1048576, got 63"}},
    {"NeighbourSettingsAboveMaximum",
     with_top(R"("neighbour": {"reachable_ms": 3600001, "retransmit_ms": 60001, "probes": 11, "capacity": 1048577})"),
     {"neighbour.reachable_ms: must be 1000..3600000, got 3600001", "neighbour.retransmit_ms: must be 100..60000, got 60001",
      "neighbour.probes: must be 1..10, got 11", "neighbour.capacity: must be 64..1048576, got 1048577"}},
};

INSTANTIATE_TEST_SUITE_P(ConfigL3, BadL3ConfigTest, ::testing::ValuesIn(kBadConfigs),
                         [](const ::testing::TestParamInfo<BadConfig>& param_info) {
                           return std::string(param_info.param.name);
                         });

net::IpAddr ip(const char* text) { return net::parse_ip(text).value_or(net::IpAddr{}); }

TEST(ConfigL3Test, RouterConfigGetsEveryDefault) {
  Config c = parse_ok(R"({$EAL, "ports": [$RW, $RE]})");
  EXPECT_TRUE(c.routed());
  ASSERT_EQ(c.ports.size(), 2u);
  EXPECT_TRUE(c.ports[0].routed());
  ASSERT_EQ(c.ports[0].ipv4.size(), 1u);
  EXPECT_EQ(c.ports[0].ipv4[0].str(), "10.1.0.1/24") << "the interface address keeps its host bits";
  ASSERT_EQ(c.ports[0].ipv6.size(), 1u);
  EXPECT_EQ(c.ports[0].ipv6[0].str(), "fd00:1::1/64");
  ASSERT_EQ(c.ports[0].pipeline.size(), 2u);
  EXPECT_EQ(c.ports[0].pipeline[1].stage, "route");
  EXPECT_TRUE(c.routes.empty());
  EXPECT_TRUE(c.neighbours.empty());
  EXPECT_EQ(c.icmp.rate_per_second, 1000u);
  EXPECT_EQ(c.icmp.burst, 50u);
  EXPECT_EQ(c.neighbour.reachable_ms, 30000u);
  EXPECT_EQ(c.neighbour.stale_ms, 60000u);
  EXPECT_EQ(c.neighbour.retransmit_ms, 1000u);
  EXPECT_EQ(c.neighbour.probes, 3u);
  EXPECT_EQ(c.neighbour.queue_packets, 16u);
  EXPECT_EQ(c.neighbour.capacity, 16384u);
}

TEST(ConfigL3Test, XconnectOnlyConfigIsNotRouted) {
  Config c = parse_ok(R"({$EAL, "ports": [$XN, $XS]})");
  EXPECT_FALSE(c.routed());
  nlohmann::json j = to_json(c);
  EXPECT_FALSE(j.contains("routes"));
  EXPECT_FALSE(j.contains("icmp"));
  EXPECT_FALSE(j["ports"][0].contains("ipv4"));
}

TEST(ConfigL3Test, RoutedAndCrossConnectedPortsMix) {
  Config c = parse_ok(R"({$EAL, "ports": [$RW, $RE, $XN, $XS]})");
  EXPECT_TRUE(c.ports[1].routed());
  EXPECT_FALSE(c.ports[2].routed());
}

TEST(ConfigL3Test, RoutePortsAreResolvedFromTheConnectedSubnets) {
  Config c = parse_ok(R"({$EAL, "ports": [$RW, $RE], "routes": [
      {"prefix": "10.9.0.0/16", "via": "10.2.0.2"},
      {"prefix": "10.8.1.2/16", "via": "10.1.0.254"},
      {"prefix": "fd00:9::/48", "via": "fd00:1::2"},
      {"prefix": "0.0.0.0/0", "nexthops": [{"via": "10.2.0.2"}, {"via": "10.1.0.2"}]},
      {"prefix": "10.7.0.0/16", "via": "10.5.0.1", "port": "west"},
      {"prefix": "10.6.0.0/16", "port": "east"}]})");
  ASSERT_EQ(c.routes.size(), 6u);
  EXPECT_EQ(c.routes[0].prefix.str(), "10.9.0.0/16");
  ASSERT_EQ(c.routes[0].nexthops.size(), 1u);
  EXPECT_EQ(c.routes[0].nexthops[0].via, ip("10.2.0.2"));
  EXPECT_EQ(c.routes[0].nexthops[0].port, "east");
  EXPECT_EQ(c.routes[1].prefix.str(), "10.8.0.0/16") << "host bits cleared";
  EXPECT_EQ(c.routes[1].nexthops[0].port, "west");
  EXPECT_EQ(c.routes[2].nexthops[0].port, "west");
  ASSERT_EQ(c.routes[3].nexthops.size(), 2u);
  EXPECT_EQ(c.routes[3].prefix.len, 0);
  EXPECT_EQ(c.routes[3].nexthops[0].port, "east");
  EXPECT_EQ(c.routes[3].nexthops[1].port, "west");
  EXPECT_EQ(c.routes[4].nexthops[0].port, "west") << "a written port wins, even outside the subnets";
  EXPECT_EQ(c.routes[4].nexthops[0].via, ip("10.5.0.1"));
  EXPECT_EQ(c.routes[5].nexthops[0].port, "east");
  EXPECT_FALSE(c.routes[5].nexthops[0].via.is_set()) << "an on-link route has no gateway";
}

TEST(ConfigL3Test, ViaResolvesToTheLongestMatchingSubnet) {
  Config c = parse_ok(R"({$EAL, "ports": [
      {"name": "west", "device": "net_ring0", "ipv4": ["10.1.0.1/16", "10.1.5.1/24"], "pipeline": ["parse", "route"]},
      {"name": "east", "device": "net_ring1", "ipv4": ["10.2.0.1/24"], "pipeline": ["parse", "route"]}],
      "routes": [{"prefix": "10.9.0.0/16", "via": "10.1.5.9"}]})");
  EXPECT_EQ(c.routes[0].nexthops[0].port, "west");
}

TEST(ConfigL3Test, NeighbourPortsAreResolvedFromTheConnectedSubnets) {
  Config c = parse_ok(R"({$EAL, "ports": [$RW, $RE], "neighbours": [
      {"address": "10.2.0.3", "mac": "02:00:00:00:02:03"},
      {"address": "fd00:1::9", "mac": "02:AB:00:00:01:09"},
      {"address": "10.5.0.1", "mac": "02:00:00:00:05:01", "port": "west"}]})");
  ASSERT_EQ(c.neighbours.size(), 3u);
  EXPECT_EQ(c.neighbours[0].address, ip("10.2.0.3"));
  EXPECT_EQ(c.neighbours[0].port, "east");
  EXPECT_EQ(c.neighbours[0].mac, (std::array<uint8_t, 6>{0x02, 0, 0, 0, 0x02, 0x03}));
  EXPECT_EQ(c.neighbours[1].port, "west");
  EXPECT_EQ(c.neighbours[1].mac, (std::array<uint8_t, 6>{0x02, 0xab, 0, 0, 0x01, 0x09}));
  EXPECT_EQ(c.neighbours[2].port, "west");
}

TEST(ConfigL3Test, PointToPointAndHostAddressesAreAccepted) {
  // /31 (RFC 3021) and /32 have no network or broadcast address to avoid.
  Config c = parse_ok(
      R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "ipv4": ["10.1.0.0/31", "10.3.0.5/32"], "ipv6": ["fd00:1::/127"], "pipeline": ["parse", "route"]}, $RE]})");
  ASSERT_EQ(c.ports[0].ipv4.size(), 2u);
  EXPECT_EQ(c.ports[0].ipv4[0].str(), "10.1.0.0/31");
  EXPECT_EQ(c.ports[0].ipv4[1].str(), "10.3.0.5/32");
  EXPECT_EQ(c.ports[0].ipv6[0].str(), "fd00:1::/127");
}

TEST(ConfigL3Test, SeveralSubnetsOnOnePortMayNest) {
  Config c = parse_ok(R"({$EAL, "ports": [
      {"name": "west", "device": "net_ring0", "ipv4": ["10.1.0.1/16", "10.1.0.2/24"], "pipeline": ["parse", "route"]}, $RE]})");
  EXPECT_EQ(c.ports[0].ipv4.size(), 2u);
}

TEST(ConfigL3Test, SettingsAtTheirLimitsAreAccepted) {
  Config c = parse_ok(R"({$EAL, "ports": [$RW, $RE], "icmp": {"rate_per_second": 0, "burst": 1},
      "neighbour": {"reachable_ms": 1000, "stale_ms": 86400000, "retransmit_ms": 100, "probes": 10,
                    "queue_packets": 0, "capacity": 64}})");
  EXPECT_EQ(c.icmp.rate_per_second, 0u) << "0: no ICMP errors at all";
  EXPECT_EQ(c.icmp.burst, 1u);
  EXPECT_EQ(c.neighbour.reachable_ms, 1000u);
  EXPECT_EQ(c.neighbour.stale_ms, 86400000u);
  EXPECT_EQ(c.neighbour.retransmit_ms, 100u);
  EXPECT_EQ(c.neighbour.probes, 10u);
  EXPECT_EQ(c.neighbour.queue_packets, 0u);
  EXPECT_EQ(c.neighbour.capacity, 64u);
}

TEST(ConfigL3Test, EffectiveConfigShowsTheRouterAsResolved) {
  nlohmann::json j = to_json(parse_ok(R"({$EAL, "ports": [$RW, $RE],
      "routes": [{"prefix": "10.9.1.1/16", "via": "10.2.0.2"}, {"prefix": "10.6.0.0/16", "port": "east"}],
      "neighbours": [{"address": "10.2.0.3", "mac": "02:00:00:00:02:03"}]})"));
  EXPECT_EQ(j["ports"][0]["ipv4"], nlohmann::json::parse(R"(["10.1.0.1/24"])"));
  EXPECT_EQ(j["ports"][0]["ipv6"], nlohmann::json::parse(R"(["fd00:1::1/64"])"));
  EXPECT_EQ(j["routes"], nlohmann::json::parse(R"([
      {"prefix": "10.9.0.0/16", "nexthops": [{"via": "10.2.0.2", "port": "east"}]},
      {"prefix": "10.6.0.0/16", "nexthops": [{"port": "east"}]}])"));
  EXPECT_EQ(j["neighbours"],
            nlohmann::json::parse(R"([{"address": "10.2.0.3", "mac": "02:00:00:00:02:03", "port": "east"}])"));
  EXPECT_EQ(j["icmp"], nlohmann::json::parse(R"({"rate_per_second": 1000, "burst": 50})"));
  EXPECT_EQ(j["neighbour"], nlohmann::json::parse(R"({"reachable_ms": 30000, "stale_ms": 60000,
      "retransmit_ms": 1000, "probes": 3, "queue_packets": 16, "capacity": 16384})"));
}

// --check-config prints to_json; feeding that back must give the same config.
void expect_round_trip(const std::string& text) {
  nlohmann::json first = to_json(parse_ok(text));
  ParseResult again = parse_config_text(first.dump(2), "effective.json");
  ASSERT_TRUE(again.ok()) << ::testing::PrintToString(again.errors) << "\n" << first.dump(2);
  EXPECT_EQ(to_json(*again.config), first);
}

TEST(ConfigL3Test, MinimalRouterConfigRoundTrips) { expect_round_trip(R"({$EAL, "ports": [$RW, $RE]})"); }

TEST(ConfigL3Test, FullRouterConfigRoundTrips) {
  // The example from docs/routing.md, with every router key set.
  expect_round_trip(R"({
    "eal": {"lcores": "0-1", "file_prefix": "router"},
    "ports": [
      {"name": "west", "device": "net_af_packet0", "devargs": "iface=veth-w",
       "ipv4": ["10.1.0.1/24", "10.11.0.1/30"], "ipv6": ["fd00:1::1/64"], "pipeline": ["parse", "route"]},
      {"name": "east", "device": "net_af_packet1", "devargs": "iface=veth-e", "mtu": 1400,
       "ipv4": ["10.2.0.1/24"], "ipv6": ["fd00:2::1/64"], "pipeline": ["parse", "route"]},
      $XN, $XS
    ],
    "routes": [
      {"prefix": "10.9.0.0/16", "via": "10.2.0.2"},
      {"prefix": "0.0.0.0/0", "nexthops": [{"via": "10.2.0.2"}, {"via": "10.2.0.3"}]},
      {"prefix": "fd00:9::/48", "via": "fd00:2::2", "port": "east"},
      {"prefix": "10.6.0.0/16", "port": "west"}
    ],
    "neighbours": [{"address": "10.2.0.3", "mac": "02:00:00:00:02:03"},
                   {"address": "fd00:2::2", "mac": "02:00:00:00:02:02", "port": "east"}],
    "icmp": {"rate_per_second": 0, "burst": 7},
    "neighbour": {"reachable_ms": 20000, "stale_ms": 50000, "retransmit_ms": 500, "probes": 5,
                  "queue_packets": 0, "capacity": 1024}
  })");
}

}  // namespace
}  // namespace sluice::config
