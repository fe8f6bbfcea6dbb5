// lib/config, connection tracking and firewall keys (the conntrack stage, ports[].zone,
// conntrack_zone, steering, "conntrack", "firewall"): every bad config yields exactly
// the lines an operator reads; a good one comes back as the structs the flow table and
// the ruleset read, defaults filled in, and round-trips through to_json.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "config/config.h"
#include "config_support.h"

namespace sluice::config {
namespace {

using ::testing::ElementsAre;

// Short-hands so each case shows only what it breaks.
//   $EAL  "eal": {"lcores": "0-1"}
//   $LAN  routed, tracked port lan (net_ring0) in zone inside: 10.1.0.1/24, fd00:1::1/64
//   $WAN  routed, tracked port wan (net_ring1) in zone outside: 10.2.0.1/24, fd00:2::1/64
//   $MGMT routed port mgmt (net_ring2) without conntrack, its own zone: 10.3.0.1/24
//   $XN   port north (net_ring3), tracked, cross-connected to south
//   $XS   port south (net_ring4), untracked, cross-connected to north
const fixtures::ConfigText kText({
      {"$EAL", R"("eal": {"lcores": "0-1"})"},
      {"$LAN",
       R"({"name": "lan", "device": "net_ring0", "zone": "inside", "ipv4": ["10.1.0.1/24"], "ipv6": ["fd00:1::1/64"], "pipeline": ["parse", "conntrack", "route"]})"},
      {"$WAN",
       R"({"name": "wan", "device": "net_ring1", "zone": "outside", "ipv4": ["10.2.0.1/24"], "ipv6": ["fd00:2::1/64"], "pipeline": ["parse", "conntrack", "route"]})"},
      {"$MGMT", R"({"name": "mgmt", "device": "net_ring2", "ipv4": ["10.3.0.1/24"], "pipeline": ["parse", "route"]})"},
      {"$XN",
       R"({"name": "north", "device": "net_ring3", "pipeline": ["parse", "conntrack", {"stage": "xconnect", "peer": "south"}]})"},
      {"$XS", R"({"name": "south", "device": "net_ring4", "pipeline": ["parse", {"stage": "xconnect", "peer": "north"}]})"},
});

std::string expand(const std::string& text) { return kText.expand(text); }

Config parse_ok(const std::string& text) { return kText.parse_ok(text); }

using fixtures::BadConfig;

class BadFlowConfigTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadFlowConfigTest, ReportsExactlyTheseErrors) {
  fixtures::expect_exact_errors(kText, GetParam());
}

// Port lan ($LAN) with other members (`"steering": "x"`) or another pipeline.
std::string lan_with(const std::string& members,
                     const std::string& pipeline = R"(["parse", "conntrack", "route"])") {
  return R"({"name": "lan", "device": "net_ring0", "ipv4": ["10.1.0.1/24"], )" + members +
         (members.empty() ? "" : ", ") + R"("pipeline": )" + pipeline + "}";
}
std::string ports_lan(const std::string& members, const std::string& pipeline = R"(["parse", "conntrack", "route"])") {
  return R"({$EAL, "ports": [)" + lan_with(members, pipeline) + ", $WAN]}";
}
// lan, wan and mgmt, with these top-level members.
std::string with_top(const std::string& members) { return R"({$EAL, "ports": [$LAN, $WAN, $MGMT], )" + members + "}"; }
std::string with_conntrack(const std::string& body) { return with_top(R"("conntrack": )" + body); }
std::string with_firewall(const std::string& body) { return with_top(R"("firewall": )" + body); }
std::string with_rules(const std::string& rules) { return with_firewall(R"({"rules": )" + rules + "}"); }
std::string with_rule(const std::string& members) { return with_rules("[{" + members + "}]"); }

std::string many_rules(size_t n) {
  std::string list;
  for (size_t i = 0; i < n; ++i) list += std::string(list.empty() ? "" : ", ") + R"({"action": "accept"})";
  return "[" + list + "]";
}

const BadConfig kBadConfigs[] = {
    // The conntrack stage.
    {"ConntrackStageWithoutParse",
     R"({$EAL, "ports": [{"name": "north", "device": "net_ring3", "pipeline": ["conntrack", {"stage": "xconnect", "peer": "south"}]}, $XS]})",
     {"ports[0].pipeline[0]: the conntrack stage needs the parse stage before it"}},
    {"ConntrackStageBeforeParse", ports_lan("", R"(["conntrack", "parse", "route"])"),
     {"ports[0].pipeline[0]: the conntrack stage needs the parse stage before it",
      "ports[0].pipeline: the route stage needs the parse stage first"}},
    {"ConntrackStageAfterTheOutput", ports_lan("", R"(["parse", "route", "conntrack"])"),
     {"ports[0].pipeline[1]: route sends packets out and must be the last stage",
      "ports[0].pipeline: must end with an output stage (xconnect or route), got 'conntrack'"}},
    {"ConntrackStageAlone", ports_lan("", R"(["parse", "conntrack"])"),
     {"ports[0].pipeline: must end with an output stage (xconnect or route), got 'conntrack'"}},
    {"ConntrackStageTwice", ports_lan("", R"(["parse", "conntrack", "conntrack", "route"])"),
     {"ports[0].pipeline[2]: stage 'conntrack' appears twice"}},
    {"ConntrackStageWithPeer", ports_lan("", R"(["parse", {"stage": "conntrack", "peer": "wan"}, "route"])"),
     {"ports[0].pipeline[1].peer: only the xconnect stage takes a peer"}},
    {"UnknownStageListsConntrack", ports_lan("", R"(["parse", "conntrak", "route"])"),
     {"ports[0].pipeline[1]: unknown stage 'conntrak' (known: parse, conntrack, lb, nat, xconnect, route)"}},

    // Port keys.
    {"ZoneBadSyntax", ports_lan(R"("zone": "in side")"),
     {"ports[0].zone: must start with a letter and have 1..32 of A-Z a-z 0-9 _ -, got 'in side'"}},
    {"ZoneTooLong", ports_lan(R"("zone": "z23456789012345678901234567890123")"),
     {"ports[0].zone: must start with a letter and have 1..32 of A-Z a-z 0-9 _ -, got "
      "'z23456789012345678901234567890123'"}},
    {"ZoneNotString", ports_lan(R"("zone": 1)"), {"ports[0].zone: must be a string, got integer"}},
    {"ConntrackZoneTooBig", ports_lan(R"("conntrack_zone": 65536)"),
     {"ports[0].conntrack_zone: must be 0..65535, got 65536"}},
    {"ConntrackZoneNegative", ports_lan(R"("conntrack_zone": -1)"),
     {"ports[0].conntrack_zone: must be 0..65535, got -1"}},
    {"SteeringUnknown", ports_lan(R"("steering": "rss")"),
     {"ports[0].steering: must be one of auto, hardware, software, got 'rss'"}},
    {"HardwareSteeringWithRssOff", ports_lan(R"("rss": "off", "steering": "hardware")"),
     {R"(ports[0].steering: hardware steering needs "rss": "symmetric")"}},
    {"SteeringOnAPortWithoutConntrack",
     R"({$EAL, "ports": [$LAN, $WAN, {"name": "mgmt", "device": "net_ring2", "ipv4": ["10.3.0.1/24"], "steering": "software", "pipeline": ["parse", "route"]}]})",
     {"ports[2].steering: only ports with the conntrack stage steer flows"}},
    {"ConntrackZoneOnAPortWithoutConntrack",
     R"({$EAL, "ports": [$LAN, $WAN, {"name": "mgmt", "device": "net_ring2", "ipv4": ["10.3.0.1/24"], "conntrack_zone": 0, "pipeline": ["parse", "route"]}]})",
     {"ports[2].conntrack_zone: only ports with the conntrack stage track flows"}},
    {"SteeringMixesHardwareAndSoftware",
     R"({$EAL, "ports": [
         {"name": "lan", "device": "net_ring0", "ipv4": ["10.1.0.1/24"], "steering": "software", "pipeline": ["parse", "conntrack", "route"]},
         {"name": "wan", "device": "net_ring1", "ipv4": ["10.2.0.1/24"], "pipeline": ["parse", "conntrack", "route"]},
         {"name": "dmz", "device": "net_ring2", "ipv4": ["10.3.0.1/24"], "steering": "hardware", "pipeline": ["parse", "conntrack", "route"]}]})",
     {"ports[2].steering: 'hardware' here but 'software' at ports[0]: every tracked port must steer the same way"}},
    {"PortUnknownKeyListsTheNewKeys", ports_lan(R"("zones": "inside")"),
     {"ports[0].zones: unknown key (expected one of: name, device, devargs, rx_queues, tx_queues, rx_descriptors, "
      "tx_descriptors, mtu, mac, promiscuous, rss, ipv4, ipv6, pipeline, zone, conntrack_zone, steering)"}},

    // "conntrack"
    {"ConntrackNotObject", with_conntrack("5"), {"conntrack: must be an object, got integer"}},
    {"ConntrackUnknownKey", with_conntrack(R"({"size": 4096})"),
     {"conntrack.size: unknown key (expected one of: capacity, capacity_ipv6, tcp_liberal, tcp_loose, "
      "later_fragments, timeouts)"}},
    {"CapacityTooSmall", with_conntrack(R"({"capacity": 1023})"),
     {"conntrack.capacity: must be 1024..67108864, got 1023"}},
    {"CapacityTooBig", with_conntrack(R"({"capacity": 67108865})"),
     {"conntrack.capacity: must be 1024..67108864, got 67108865"}},
    {"CapacityIpv6BelowMinimum", with_conntrack(R"({"capacity_ipv6": 100})"),
     {"conntrack.capacity_ipv6: must be 0 (no IPv6 tracking) or 1024..16777216, got 100"}},
    {"CapacityIpv6TooBig", with_conntrack(R"({"capacity_ipv6": 16777217})"),
     {"conntrack.capacity_ipv6: must be 0 (no IPv6 tracking) or 1024..16777216, got 16777217"}},
    {"TcpLiberalNotBool", with_conntrack(R"({"tcp_liberal": "yes"})"),
     {"conntrack.tcp_liberal: must be true or false, got string"}},
    {"TcpLooseNotBool", with_conntrack(R"({"tcp_loose": 1})"),
     {"conntrack.tcp_loose: must be true or false, got integer"}},
    {"LaterFragmentsUnknown", with_conntrack(R"({"later_fragments": "reassemble"})"),
     {"conntrack.later_fragments: must be one of accept, drop, got 'reassemble'"}},
    {"TimeoutsNotObject", with_conntrack(R"({"timeouts": [30]})"),
     {"conntrack.timeouts: must be an object, got array"}},
    {"TimeoutZero", with_conntrack(R"({"timeouts": {"tcp_established": 0}})"),
     {"conntrack.timeouts.tcp_established: must be 1..1728000, got 0"}},
    {"TimeoutAboveTwentyDays", with_conntrack(R"({"timeouts": {"udp": 1728001}})"),
     {"conntrack.timeouts.udp: must be 1..1728000, got 1728001"}},
    {"TimeoutNotInteger", with_conntrack(R"({"timeouts": {"icmp": "30s"}})"),
     {"conntrack.timeouts.icmp: must be an integer, got string"}},
    {"TimeoutUnknownName", with_conntrack(R"({"timeouts": {"tcp_estab": 60}})"),
     {"conntrack.timeouts.tcp_estab: unknown key (expected one of: tcp_syn_sent, tcp_syn_recv, tcp_established, "
      "tcp_fin_wait, tcp_close_wait, tcp_last_ack, tcp_time_wait, tcp_close, tcp_unacknowledged, udp, udp_stream, "
      "icmp, generic)"}},
    {"ConntrackWithoutATrackedPort", R"({$EAL, "ports": [$MGMT, {"name": "east", "device": "net_ring5", "ipv4": ["10.5.0.1/24"], "pipeline": ["parse", "route"]}], "conntrack": {}})",
     {"conntrack: no port's pipeline has the conntrack stage"}},
    {"TopLevelUnknownKeyListsTheNewSections", with_top(R"("conntrak": {})"),
     {"conntrak: unknown key (expected one of: eal, ports, workers, burst_size, mempool, control, logging, routes, "
      "neighbours, icmp, neighbour, conntrack, firewall, nat, polling, services)"}},

    // "firewall": the section.
    {"FirewallNotObject", with_firewall("[]"), {"firewall: must be an object, got array"}},
    {"FirewallUnknownKey", with_firewall(R"({"rule": []})"),
     {"firewall.rule: unknown key (expected one of: default_policy, policies, rules, reject_limit)"}},
    {"DefaultPolicyReject", with_firewall(R"({"default_policy": "reject"})"),
     {"firewall.default_policy: must be one of accept, drop, got 'reject'"}},
    {"FirewallWithoutATrackedPort", R"({$EAL, "ports": [$MGMT, $XS, {"name": "north", "device": "net_ring3", "pipeline": ["parse", {"stage": "xconnect", "peer": "south"}]}], "firewall": {}})",
     {"firewall: no port's pipeline has the conntrack stage"}},
    {"BothSectionsWithoutATrackedPort",
     R"({$EAL, "ports": [$MGMT, $XS, {"name": "north", "device": "net_ring3", "pipeline": ["parse", {"stage": "xconnect", "peer": "south"}]}], "conntrack": {}, "firewall": {}})",
     {"conntrack: no port's pipeline has the conntrack stage", "firewall: no port's pipeline has the conntrack stage"}},
    {"RejectLimitOutOfRange", with_firewall(R"({"reject_limit": {"rate_per_second": 1000001, "burst": 0}})"),
     {"firewall.reject_limit.rate_per_second: must be 0..1000000, got 1000001",
      "firewall.reject_limit.burst: must be 1..100000, got 0"}},
    {"RejectLimitUnknownKey", with_firewall(R"({"reject_limit": {"rate": 5}})"),
     {"firewall.reject_limit.rate: unknown key (expected one of: rate_per_second, burst)"}},

    // "firewall": policies.
    {"PoliciesNotArray", with_firewall(R"({"policies": {"from": "inside"}})"),
     {R"(firewall.policies: must be an array of {"from": ZONE, "to": ZONE, "action": ...}, got object)"}},
    {"PolicyNotObject", with_firewall(R"({"policies": ["inside"]})"),
     {R"(firewall.policies[0]: must be an object {"from": ZONE, "to": ZONE, "action": ...}, got string)"}},
    {"PolicyMissingKeys", with_firewall(R"({"policies": [{"from": "inside"}]})"),
     {"firewall.policies[0]: missing required key 'to'", "firewall.policies[0]: missing required key 'action'"}},
    {"PolicyUnknownKey", with_firewall(R"({"policies": [{"from": "inside", "to": "outside", "action": "drop", "log": true}]})"),
     {"firewall.policies[0].log: unknown key (expected one of: from, to, action)"}},
    {"PolicyBadAction", with_firewall(R"({"policies": [{"from": "inside", "to": "outside", "action": "allow"}]})"),
     {"firewall.policies[0].action: must be one of accept, drop, reject, got 'allow'"}},
    {"PolicyTwice",
     with_firewall(R"({"policies": [{"from": "inside", "to": "outside", "action": "accept"}, {"from": "inside", "to": "outside", "action": "drop"}]})"),
     {"firewall.policies[1]: duplicate policy from 'inside' to 'outside' (also firewall.policies[0])"}},
    {"PolicyUnknownZone", with_firewall(R"({"policies": [{"from": "inside", "to": "dmz", "action": "accept"}]})"),
     {"firewall.policies[0].to: unknown zone 'dmz' (known: inside, outside, mgmt)"}},
    {"PolicyFromAZoneWithoutConntrack",
     with_firewall(R"({"policies": [{"from": "mgmt", "to": "inside", "action": "accept"}]})"),
     {"firewall.policies[0].from: zone 'mgmt' has no port with the conntrack stage, so nothing from it is classified"}},

    // "firewall": rules, shape and names.
    {"RulesNotArray", with_firewall(R"({"rules": {"action": "drop"}})"),
     {"firewall.rules: must be an array of rules, got object"}},
    {"TooManyRules", with_rules(many_rules(4097)), {"firewall.rules: at most 4096 rules, got 4097"}},
    {"RuleNotObject", with_rules(R"(["drop"])"),
     {R"(firewall.rules[0]: must be an object {..., "action": ...}, got string)"}},
    {"RuleWithoutAction", with_rule(R"("protocol": "tcp")"), {"firewall.rules[0]: missing required key 'action'"}},
    {"RuleUnknownKey", with_rule(R"("port": 22, "action": "drop")"),
     {"firewall.rules[0].port: unknown key (expected one of: name, from, to, in_port, out_port, src, dst, protocol, "
      "src_ports, dst_ports, tcp_flags, state, action)"}},
    {"RuleBadAction", with_rule(R"("action": "deny")"),
     {"firewall.rules[0].action: must be one of accept, drop, reject, got 'deny'"}},
    {"RuleNameWithSpace", with_rule(R"("name": "ssh in", "action": "drop")"),
     {"firewall.rules[0].name: must be 1..64 characters of A-Z a-z 0-9 _ . -, got 'ssh in'"}},
    {"RuleNameTwice",
     with_rules(R"([{"action": "accept"}, {"name": "ssh", "action": "accept"}, {"action": "accept"}, {"name": "ssh", "action": "drop"}])"),
     {"firewall.rules[3].name: duplicate rule name 'ssh' (also firewall.rules[1])"}},
    {"RuleNameTakesALaterDefault", with_rules(R"([{"name": "rule1", "action": "accept"}, {"action": "drop"}])"),
     {R"(firewall.rules[1]: its default name 'rule1' is already taken by firewall.rules[0]; give it a "name")"}},
    {"RuleNameRepeatsAnEarlierDefault", with_rules(R"([{"action": "accept"}, {"name": "rule0", "action": "drop"}])"),
     {"firewall.rules[1].name: duplicate rule name 'rule0' (the default name of firewall.rules[0])"}},

    // "firewall": rules, zones and ports.
    {"FromNotAName", with_rule(R"("from": 5, "action": "drop")"),
     {"firewall.rules[0].from: must be a zone name or a non-empty array of zone names, got 5"}},
    {"FromEmptyArray", with_rule(R"("from": [], "action": "drop")"),
     {"firewall.rules[0].from: must be a zone name or a non-empty array of zone names, got []"}},
    {"FromElementNotString", with_rule(R"("from": ["inside", 3], "action": "drop")"),
     {"firewall.rules[0].from[1]: must be a string, got integer"}},
    {"InPortNotAName", with_rule(R"("in_port": {"name": "lan"}, "action": "drop")"),
     {R"(firewall.rules[0].in_port: must be a port name or a non-empty array of port names, got {"name":"lan"})"}},
    {"RuleUnknownZone", with_rule(R"("to": ["outside", "dmz"], "action": "drop")"),
     {"firewall.rules[0].to[1]: unknown zone 'dmz' (known: inside, outside, mgmt)"}},
    {"RuleFromAZoneWithoutConntrack", with_rule(R"("from": "mgmt", "action": "drop")"),
     {"firewall.rules[0].from: zone 'mgmt' has no port with the conntrack stage, so nothing from it is classified"}},
    {"RuleUnknownInPort", with_rule(R"("in_port": "eth0", "action": "drop")"),
     {"firewall.rules[0].in_port: unknown port 'eth0'"}},
    {"RuleInPortWithoutConntrack", with_rule(R"("in_port": "mgmt", "action": "drop")"),
     {"firewall.rules[0].in_port: port 'mgmt' has no conntrack stage, so nothing from it is classified"}},
    {"RuleUnknownOutPort", with_rule(R"("out_port": ["wan", "dmz"], "action": "drop")"),
     {"firewall.rules[0].out_port[1]: unknown port 'dmz'"}},
    {"ZonesAreCheckedOnlyOnceTheFieldsAreValid", with_rule(R"("from": "dmz", "protocol": "sctp", "action": "drop")"),
     {R"(firewall.rules[0].protocol: must be tcp, udp, icmp, icmpv6 or 0..255, got "sctp")"}},

    // "firewall": rules, addresses.
    {"SrcNotAPrefix", with_rule(R"("src": 10, "action": "drop")"),
     {"firewall.rules[0].src: must be a prefix or address, or a non-empty array of them, got 10"}},
    {"SrcBadPrefixLength", with_rule(R"("src": "10.0.0.0/33", "action": "drop")"),
     {"firewall.rules[0].src: must be an IPv4 or IPv6 prefix or address like 10.0.0.0/8, got '10.0.0.0/33'"}},
    {"DstElementNotString", with_rule(R"("dst": ["10.0.0.0/8", null], "action": "drop")"),
     {"firewall.rules[0].dst[1]: must be a string, got null"}},
    {"SrcHostBitsSet", with_rule(R"("src": ["10.1.0.0/24", "10.0.0.1/8"], "action": "drop")"),
     {"firewall.rules[0].src[1]: 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)"}},
    {"DstIpv6HostBitsSet", with_rule(R"("dst": "fd00:2::1/64", "action": "drop")"),
     {"firewall.rules[0].dst: fd00:2::1/64 has host bits set (did you mean fd00:2::/64?)"}},
    {"SrcAndDstOfDifferentFamilies",
     with_rules(R"([{"action": "accept"}, {"action": "accept"}, {"action": "accept"}, {"action": "accept"},
                    {"src": ["10.0.0.0/8", "192.168.0.0/16"], "dst": "fd00:2::/64", "action": "accept"}])"),
     {"firewall.rules[4]: src is IPv4 only and dst is IPv6 only: the rule can never match"}},
    {"IcmpToIpv6OnlyDestinations", with_rule(R"("src": ["10.0.0.0/8", "fd00::/8"], "dst": "fd00:2::/64", "protocol": "icmp", "action": "accept")"),
     {"firewall.rules[0]: protocol icmp is IPv4 only and dst is IPv6 only: the rule can never match (ICMP for IPv6 "
      "is icmpv6)"}},
    {"IcmpByNumberFromIpv6OnlySources", with_rule(R"("src": "fd00:1::/64", "protocol": 1, "action": "accept")"),
     {"firewall.rules[0]: protocol icmp is IPv4 only and src is IPv6 only: the rule can never match (ICMP for IPv6 "
      "is icmpv6)"}},
    {"Icmpv6BetweenIpv4Addresses", with_rule(R"("src": "10.1.0.0/24", "dst": "10.2.0.5", "protocol": "icmpv6", "action": "accept")"),
     {"firewall.rules[0]: protocol icmpv6 is IPv6 only and src and dst are IPv4 only: the rule can never match "
      "(ICMP for IPv4 is icmp)"}},

    // "firewall": rules, protocol and ports.
    {"ProtocolUnknownName", with_rule(R"("protocol": "sctp", "action": "drop")"),
     {R"(firewall.rules[0].protocol: must be tcp, udp, icmp, icmpv6 or 0..255, got "sctp")"}},
    {"ProtocolTooBig", with_rule(R"("protocol": 256, "action": "drop")"),
     {"firewall.rules[0].protocol: must be tcp, udp, icmp, icmpv6 or 0..255, got 256"}},
    {"ProtocolNegative", with_rule(R"("protocol": -1, "action": "drop")"),
     {"firewall.rules[0].protocol: must be tcp, udp, icmp, icmpv6 or 0..255, got -1"}},
    {"DstPortsWithoutProtocol",
     with_rules(R"([{"action": "accept"}, {"action": "accept"}, {"dst_ports": 22, "action": "drop"}])"),
     {R"(firewall.rules[2].dst_ports: needs "protocol": "tcp" or "udp")"}},
    {"SrcPortsWithIcmp", with_rule(R"("protocol": "icmp", "src_ports": [1, 2], "action": "drop")"),
     {R"(firewall.rules[0].src_ports: needs "protocol": "tcp" or "udp")"}},
    {"DstPortsAbove65535", with_rule(R"("protocol": "tcp", "dst_ports": 65536, "action": "drop")"),
     {R"(firewall.rules[0].dst_ports: must be a port 0..65535 or a range "a-b", got 65536)"}},
    {"DstPortsReversedRange", with_rule(R"("protocol": "tcp", "dst_ports": [80, "9000-8000"], "action": "drop")"),
     {"firewall.rules[0].dst_ports[1]: range '9000-8000' is reversed (the first port must not be above the last)"}},
    {"DstPortsHalfARange", with_rule(R"("protocol": "udp", "dst_ports": "80-", "action": "drop")"),
     {R"(firewall.rules[0].dst_ports: must be a port 0..65535 or a range "a-b", got "80-")"}},
    {"DstPortsRangeAbove65535", with_rule(R"("protocol": "udp", "dst_ports": "80-70000", "action": "drop")"),
     {R"(firewall.rules[0].dst_ports: must be a port 0..65535 or a range "a-b", got "80-70000")"}},
    {"DstPortsEmptyArray", with_rule(R"("protocol": "tcp", "dst_ports": [], "action": "drop")"),
     {R"(firewall.rules[0].dst_ports: must be a port 0..65535, a range "a-b", or a non-empty array of them, got [])"}},
    {"DstPortsNumberAsString", with_rule(R"("protocol": "tcp", "dst_ports": ["443"], "action": "drop")"),
     {R"(firewall.rules[0].dst_ports[0]: must be a port 0..65535 or a range "a-b", got "443")"}},

    // "firewall": rules, TCP flags and states.
    {"TcpFlagsWithUdp", with_rule(R"("protocol": "udp", "tcp_flags": {"mask": ["syn"], "set": ["syn"]}, "action": "drop")"),
     {R"(firewall.rules[0].tcp_flags: needs "protocol": "tcp")"}},
    {"TcpFlagsWithoutProtocol", with_rule(R"("tcp_flags": {"mask": ["rst"]}, "action": "drop")"),
     {R"(firewall.rules[0].tcp_flags: needs "protocol": "tcp")"}},
    {"TcpFlagsNotObject", with_rule(R"("protocol": "tcp", "tcp_flags": ["syn"], "action": "drop")"),
     {"firewall.rules[0].tcp_flags: must be an object, got array"}},
    {"TcpFlagsUnknownKey", with_rule(R"("protocol": "tcp", "tcp_flags": {"mask": ["syn"], "clear": ["ack"]}, "action": "drop")"),
     {"firewall.rules[0].tcp_flags.clear: unknown key (expected one of: mask, set)"}},
    {"TcpFlagsWithoutMask", with_rule(R"("protocol": "tcp", "tcp_flags": {"set": ["syn"]}, "action": "drop")"),
     {"firewall.rules[0].tcp_flags: missing required key 'mask'"}},
    {"TcpFlagsEmptyMask", with_rule(R"("protocol": "tcp", "tcp_flags": {"mask": []}, "action": "drop")"),
     {"firewall.rules[0].tcp_flags.mask: must be a non-empty array of fin, syn, rst, psh, ack, urg, ece, cwr, got []"}},
    {"TcpFlagsUnknownFlag", with_rule(R"("protocol": "tcp", "tcp_flags": {"mask": ["syn", "SYN"]}, "action": "drop")"),
     {"firewall.rules[0].tcp_flags.mask[1]: unknown TCP flag 'SYN' (known: fin, syn, rst, psh, ack, urg, ece, cwr)"}},
    {"TcpFlagsSetOutsideMask",
     with_rule(R"("protocol": "tcp", "tcp_flags": {"mask": ["syn", "rst"], "set": ["syn", "ack"]}, "action": "drop")"),
     {"firewall.rules[0].tcp_flags.set[1]: 'ack' is not in mask (set must be within mask)"}},
    {"TcpFlagsSetNotArray", with_rule(R"("protocol": "tcp", "tcp_flags": {"mask": ["syn"], "set": "syn"}, "action": "drop")"),
     {R"(firewall.rules[0].tcp_flags.set: must be an array of fin, syn, rst, psh, ack, urg, ece, cwr, got "syn")"}},
    {"StateEmpty", with_rule(R"("state": [], "action": "drop")"),
     {"firewall.rules[0].state: must be a non-empty array of new, established, related, invalid, got []"}},
    {"StateNotArray", with_rule(R"("state": "new", "action": "drop")"),
     {R"(firewall.rules[0].state: must be a non-empty array of new, established, related, invalid, got "new")"}},
    {"StateUnknown", with_rule(R"("state": ["new", "untracked"], "action": "drop")"),
     {"firewall.rules[0].state[1]: unknown state 'untracked' (known: new, established, related, invalid)"}},
    {"StateTwice", with_rule(R"("state": ["new", "invalid", "new"], "action": "drop")"),
     {"firewall.rules[0].state[2]: 'new' is listed twice"}},

    // Several problems at once: all of them, in order.
    {"SeveralFirewallProblems",
     with_firewall(R"({"default_policy": "deny",
                       "rules": [{"protocol": "tcp", "dst_ports": "22-21", "action": "drop"},
                                 {"src": "10.0.0.1/8", "state": ["new", "new"]}],
                       "reject_limit": {"burst": 0}})"),
     {"firewall.default_policy: must be one of accept, drop, got 'deny'",
      "firewall.rules[0].dst_ports: range '22-21' is reversed (the first port must not be above the last)",
      "firewall.rules[1]: missing required key 'action'",
      "firewall.rules[1].src: 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)",
      "firewall.rules[1].state[1]: 'new' is listed twice", "firewall.reject_limit.burst: must be 1..100000, got 0"}},
};

INSTANTIATE_TEST_SUITE_P(ConfigFlow, BadFlowConfigTest, ::testing::ValuesIn(kBadConfigs),
                         [](const ::testing::TestParamInfo<BadConfig>& param_info) {
                           return std::string(param_info.param.name);
                         });

net::IpPrefix prefix(const char* text) { return *net::parse_prefix(text); }

TEST(ConfigFlowTest, TheConntrackStageAloneGetsEveryDefault) {
  Config c = parse_ok(R"({$EAL, "ports": [
      {"name": "lan", "device": "net_ring0", "ipv4": ["10.1.0.1/24"], "pipeline": ["parse", "conntrack", "route"]},
      {"name": "wan", "device": "net_ring1", "ipv4": ["10.2.0.1/24"], "pipeline": ["parse", "route"]}]})");
  ASSERT_EQ(c.ports.size(), 2u);
  EXPECT_TRUE(c.tracked());
  EXPECT_TRUE(c.ports[0].tracked());
  EXPECT_FALSE(c.ports[1].tracked());
  ASSERT_EQ(c.ports[0].pipeline.size(), 3u);
  EXPECT_EQ(c.ports[0].pipeline[1].stage, "conntrack");
  EXPECT_EQ(c.ports[0].zone, "lan") << "a port is its own zone";
  EXPECT_EQ(c.ports[1].zone, "wan") << "also without conntrack";
  EXPECT_EQ(c.ports[0].conntrack_zone, 0u);
  EXPECT_EQ(c.ports[0].steering, Steering::Auto);

  const ConntrackConfig& ct = c.conntrack;
  EXPECT_EQ(ct.capacity, 262144u);
  EXPECT_EQ(ct.capacity_ipv6, 65536u);
  EXPECT_FALSE(ct.tcp_liberal);
  EXPECT_TRUE(ct.tcp_loose);
  EXPECT_EQ(ct.later_fragments, FragmentPolicy::Accept);
  // Linux nf_conntrack's defaults (net.netfilter.nf_conntrack_*_timeout*).
  EXPECT_EQ(ct.timeouts.tcp_syn_sent, 120u);
  EXPECT_EQ(ct.timeouts.tcp_syn_recv, 60u);
  EXPECT_EQ(ct.timeouts.tcp_established, 432000u);
  EXPECT_EQ(ct.timeouts.tcp_fin_wait, 120u);
  EXPECT_EQ(ct.timeouts.tcp_close_wait, 60u);
  EXPECT_EQ(ct.timeouts.tcp_last_ack, 30u);
  EXPECT_EQ(ct.timeouts.tcp_time_wait, 120u);
  EXPECT_EQ(ct.timeouts.tcp_close, 10u);
  EXPECT_EQ(ct.timeouts.tcp_unacknowledged, 300u);
  EXPECT_EQ(ct.timeouts.udp, 30u);
  EXPECT_EQ(ct.timeouts.udp_stream, 120u);
  EXPECT_EQ(ct.timeouts.icmp, 30u);
  EXPECT_EQ(ct.timeouts.generic, 600u);

  EXPECT_FALSE(c.firewall.enabled) << "no section: tracking only";
  EXPECT_TRUE(c.source_path.empty()) << "parse_config_text reads no file";
}

TEST(ConfigFlowTest, ConntrackStageWorksOnACrossConnect) {
  Config c = parse_ok(R"({$EAL, "ports": [$XN, $XS]})");
  EXPECT_TRUE(c.ports[0].tracked());
  EXPECT_EQ(c.ports[0].pipeline.back().stage, "xconnect");
  EXPECT_EQ(c.ports[0].pipeline.back().peer, "south");
  EXPECT_EQ(c.ports[1].zone, "south");
}

TEST(ConfigFlowTest, PortKeysAreRead) {
  Config c = parse_ok(R"({$EAL, "ports": [
      {"name": "lan", "device": "net_ring0", "ipv4": ["10.1.0.1/24"], "zone": "inside", "conntrack_zone": 65535,
       "steering": "software", "pipeline": ["parse", "conntrack", "route"]},
      {"name": "lan2", "device": "net_ring1", "ipv4": ["10.2.0.1/24"], "zone": "inside", "conntrack_zone": 7,
       "steering": "software", "rss": "off", "pipeline": ["parse", "conntrack", "route"]},
      {"name": "wan", "device": "net_ring2", "ipv4": ["10.4.0.1/24"], "pipeline": ["parse", "conntrack", "route"]},
      {"name": "mgmt", "device": "net_ring3", "ipv4": ["10.3.0.1/24"], "zone": "management", "pipeline": ["parse", "route"]}]})");
  EXPECT_EQ(c.ports[0].zone, "inside");
  EXPECT_EQ(c.ports[0].conntrack_zone, 65535u);
  EXPECT_EQ(c.ports[0].steering, Steering::Software);
  EXPECT_EQ(c.ports[1].zone, "inside") << "two ports may share a zone";
  EXPECT_EQ(c.ports[1].conntrack_zone, 7u);
  EXPECT_EQ(c.ports[1].steering, Steering::Software) << "software steering needs no RSS";
  EXPECT_EQ(c.ports[2].steering, Steering::Auto) << "auto goes with either";
  EXPECT_EQ(c.ports[3].zone, "management") << "a port without conntrack may name its zone";
}

TEST(ConfigFlowTest, HardwareSteeringIsRead) {
  Config c = parse_ok(R"({$EAL, "ports": [
      {"name": "lan", "device": "net_ring0", "ipv4": ["10.1.0.1/24"], "steering": "hardware", "pipeline": ["parse", "conntrack", "route"]},
      {"name": "wan", "device": "net_ring1", "ipv4": ["10.2.0.1/24"], "steering": "hardware", "pipeline": ["parse", "conntrack", "route"]}]})");
  EXPECT_EQ(c.ports[0].steering, Steering::Hardware);
  EXPECT_EQ(c.ports[1].steering, Steering::Hardware);
}

TEST(ConfigFlowTest, ConntrackSectionIsRead) {
  Config c = parse_ok(R"({$EAL, "ports": [$LAN, $WAN], "conntrack": {
      "capacity": 1024, "capacity_ipv6": 0, "tcp_liberal": true, "tcp_loose": false, "later_fragments": "drop",
      "timeouts": {"tcp_syn_sent": 1, "tcp_syn_recv": 2, "tcp_established": 1728000, "tcp_fin_wait": 4,
                   "tcp_close_wait": 5, "tcp_last_ack": 6, "tcp_time_wait": 7, "tcp_close": 8,
                   "tcp_unacknowledged": 9, "udp": 10, "udp_stream": 11, "icmp": 12, "generic": 13}}})");
  const ConntrackConfig& ct = c.conntrack;
  EXPECT_EQ(ct.capacity, 1024u);
  EXPECT_EQ(ct.capacity_ipv6, 0u) << "0: IPv6 passes untracked";
  EXPECT_TRUE(ct.tcp_liberal);
  EXPECT_FALSE(ct.tcp_loose);
  EXPECT_EQ(ct.later_fragments, FragmentPolicy::Drop);
  EXPECT_EQ(ct.timeouts.tcp_syn_sent, 1u);
  EXPECT_EQ(ct.timeouts.tcp_syn_recv, 2u);
  EXPECT_EQ(ct.timeouts.tcp_established, 1728000u);
  EXPECT_EQ(ct.timeouts.tcp_fin_wait, 4u);
  EXPECT_EQ(ct.timeouts.tcp_close_wait, 5u);
  EXPECT_EQ(ct.timeouts.tcp_last_ack, 6u);
  EXPECT_EQ(ct.timeouts.tcp_time_wait, 7u);
  EXPECT_EQ(ct.timeouts.tcp_close, 8u);
  EXPECT_EQ(ct.timeouts.tcp_unacknowledged, 9u);
  EXPECT_EQ(ct.timeouts.udp, 10u);
  EXPECT_EQ(ct.timeouts.udp_stream, 11u);
  EXPECT_EQ(ct.timeouts.icmp, 12u);
  EXPECT_EQ(ct.timeouts.generic, 13u);
}

TEST(ConfigFlowTest, UnwrittenTimeoutsKeepTheirDefaults) {
  Config c = parse_ok(R"({$EAL, "ports": [$LAN, $WAN], "conntrack": {"capacity": 67108864, "capacity_ipv6": 16777216,
      "timeouts": {"tcp_established": 3600}}})");
  EXPECT_EQ(c.conntrack.capacity, 67108864u);
  EXPECT_EQ(c.conntrack.capacity_ipv6, 16777216u);
  EXPECT_EQ(c.conntrack.timeouts.tcp_established, 3600u);
  EXPECT_EQ(c.conntrack.timeouts.tcp_syn_sent, 120u);
  EXPECT_EQ(c.conntrack.timeouts.udp, 30u);
}

TEST(ConfigFlowTest, AnEmptyFirewallSectionDropsByDefault) {
  Config c = parse_ok(R"({$EAL, "ports": [$LAN, $WAN], "firewall": {}})");
  EXPECT_TRUE(c.firewall.enabled);
  EXPECT_EQ(c.firewall.default_policy, FirewallAction::Drop);
  EXPECT_TRUE(c.firewall.policies.empty());
  EXPECT_TRUE(c.firewall.rules.empty());
  EXPECT_EQ(c.firewall.reject_limit.rate_per_second, 1000u);
  EXPECT_EQ(c.firewall.reject_limit.burst, 50u);
}

TEST(ConfigFlowTest, FirewallIsReadAsResolved) {
  Config c = parse_ok(R"({$EAL, "ports": [$LAN, $WAN, $MGMT], "firewall": {
      "default_policy": "accept",
      "policies": [{"from": "inside", "to": "outside", "action": "accept"},
                   {"from": "outside", "to": "mgmt", "action": "reject"}],
      "rules": [
        {"name": "web-in", "from": "outside", "to": ["inside", "mgmt"], "protocol": "tcp",
         "dst": ["10.1.0.10", "fd00:1::/64"], "dst_ports": [80, 443, "8000-8080"], "action": "accept"},
        {"in_port": "wan", "out_port": ["lan", "mgmt"], "protocol": "udp", "src": "10.2.0.0/16",
         "src_ports": "1024-65535", "dst_ports": 53, "action": "drop"},
        {"name": "syn-only", "protocol": 6, "tcp_flags": {"mask": ["syn", "ack"], "set": ["syn"]}, "action": "accept"},
        {"name": "rst-clear", "protocol": "tcp", "tcp_flags": {"mask": ["rst"]}, "action": "accept"},
        {"protocol": "icmp", "state": ["invalid", "established"], "action": "reject"},
        {"protocol": 47, "src": "0.0.0.0/0", "action": "drop"},
        {"protocol": "icmpv6", "state": ["related"], "action": "accept"}],
      "reject_limit": {"rate_per_second": 0, "burst": 100000}}})");
  const FirewallConfig& fw = c.firewall;
  EXPECT_TRUE(fw.enabled);
  EXPECT_EQ(fw.default_policy, FirewallAction::Accept);
  ASSERT_EQ(fw.policies.size(), 2u);
  EXPECT_EQ(fw.policies[0].from, "inside");
  EXPECT_EQ(fw.policies[0].to, "outside");
  EXPECT_EQ(fw.policies[0].action, FirewallAction::Accept);
  EXPECT_EQ(fw.policies[1].to, "mgmt") << "a zone without conntrack may be an egress";
  EXPECT_EQ(fw.policies[1].action, FirewallAction::Reject);
  EXPECT_EQ(fw.reject_limit.rate_per_second, 0u);
  EXPECT_EQ(fw.reject_limit.burst, 100000u);
  ASSERT_EQ(fw.rules.size(), 7u);

  const FirewallRule& web = fw.rules[0];
  EXPECT_EQ(web.name, "web-in");
  EXPECT_THAT(web.from_zones, ElementsAre("outside"));
  EXPECT_THAT(web.to_zones, ElementsAre("inside", "mgmt"));
  EXPECT_TRUE(web.in_ports.empty());
  EXPECT_EQ(web.protocol, 6);
  EXPECT_THAT(web.dst, ElementsAre(prefix("10.1.0.10/32"), prefix("fd00:1::/64"))) << "a bare address is a host";
  EXPECT_TRUE(web.src.empty());
  EXPECT_THAT(web.dst_ports, ElementsAre(PortRange{80, 80}, PortRange{443, 443}, PortRange{8000, 8080}));
  EXPECT_TRUE(web.src_ports.empty());
  EXPECT_EQ(web.tcp_flags_mask, 0);
  EXPECT_EQ(web.states, kCtNew) << "new connections only by default";
  EXPECT_EQ(web.action, FirewallAction::Accept);

  const FirewallRule& dns = fw.rules[1];
  EXPECT_EQ(dns.name, "rule1") << "named after its index";
  EXPECT_THAT(dns.in_ports, ElementsAre("wan"));
  EXPECT_THAT(dns.out_ports, ElementsAre("lan", "mgmt"));
  EXPECT_EQ(dns.protocol, 17);
  EXPECT_THAT(dns.src, ElementsAre(prefix("10.2.0.0/16")));
  EXPECT_THAT(dns.src_ports, ElementsAre(PortRange{1024, 65535}));
  EXPECT_THAT(dns.dst_ports, ElementsAre(PortRange{53, 53}));
  EXPECT_EQ(dns.action, FirewallAction::Drop);

  EXPECT_EQ(fw.rules[2].protocol, 6) << "a number is taken as it is";
  EXPECT_EQ(fw.rules[2].tcp_flags_mask, 0x12) << "SYN|ACK";
  EXPECT_EQ(fw.rules[2].tcp_flags_set, 0x02) << "SYN";
  EXPECT_EQ(fw.rules[3].tcp_flags_mask, 0x04) << "RST";
  EXPECT_EQ(fw.rules[3].tcp_flags_set, 0) << "no set: every masked flag clear";
  EXPECT_EQ(fw.rules[4].name, "rule4");
  EXPECT_EQ(fw.rules[4].protocol, 1);
  EXPECT_EQ(fw.rules[4].states, kCtInvalid | kCtEstablished);
  EXPECT_EQ(fw.rules[4].action, FirewallAction::Reject);
  EXPECT_EQ(fw.rules[5].protocol, 47);
  EXPECT_THAT(fw.rules[5].src, ElementsAre(prefix("0.0.0.0/0"))) << "IPv4 only";
  EXPECT_EQ(fw.rules[6].protocol, 58);
  EXPECT_EQ(fw.rules[6].states, kCtRelated);
}

TEST(ConfigFlowTest, RulesMayMixFamiliesWhereSomeFamilyIsCommon) {
  Config c = parse_ok(R"({$EAL, "ports": [$LAN, $WAN], "firewall": {"rules": [
      {"src": ["10.0.0.0/8", "fd00::/8"], "dst": "fd00:2::/64", "action": "accept"},
      {"src": ["10.0.0.0/8", "fd00::/8"], "protocol": "icmp", "action": "accept"},
      {"dst": "fd00:2::5", "protocol": "icmpv6", "action": "accept"},
      {"src": "10.0.0.0/8", "dst": "10.2.0.0/16", "protocol": "icmp", "action": "accept"}]}})");
  EXPECT_EQ(c.firewall.rules.size(), 4u);
  EXPECT_THAT(c.firewall.rules[2].dst, ElementsAre(prefix("fd00:2::5/128")));
}

TEST(ConfigFlowTest, ZonesAndPortsMayBeNamedAloneOrInLists) {
  Config c = parse_ok(R"({$EAL, "ports": [$LAN, $WAN, $XN, $XS], "firewall": {"rules": [
      {"from": ["inside", "north"], "to": "south", "in_port": ["lan", "north"], "out_port": "south", "action": "accept"}]}})");
  const FirewallRule& rule = c.firewall.rules[0];
  EXPECT_THAT(rule.from_zones, ElementsAre("inside", "north"));
  EXPECT_THAT(rule.to_zones, ElementsAre("south")) << "south has no conntrack but is an egress";
  EXPECT_THAT(rule.in_ports, ElementsAre("lan", "north"));
  EXPECT_THAT(rule.out_ports, ElementsAre("south"));
}

TEST(ConfigFlowTest, LoadingAFileRemembersItsPath) {
  char path[] = "/tmp/sluice-unit-config-flow-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path);
    out << expand(R"({$EAL, "ports": [$LAN, $WAN]})");
  }
  ParseResult result = load_config_file(path);
  ASSERT_TRUE(result.ok()) << ::testing::PrintToString(result.errors);
  EXPECT_EQ(result.config->source_path, path);
  std::remove(path);
}

TEST(ConfigFlowTest, EffectiveConfigShowsPortsAndConntrack) {
  nlohmann::json j = to_json(parse_ok(R"({$EAL, "ports": [$LAN, $WAN, $MGMT],
      "conntrack": {"capacity_ipv6": 0, "timeouts": {"udp": 45}}})"));
  EXPECT_EQ(j["ports"][0]["zone"], "inside");
  EXPECT_EQ(j["ports"][0]["conntrack_zone"], 0);
  EXPECT_EQ(j["ports"][0]["steering"], "auto");
  EXPECT_EQ(j["ports"][2]["zone"], "mgmt") << "the default is printed";
  EXPECT_FALSE(j["ports"][2].contains("conntrack_zone")) << "only tracked ports have flows";
  EXPECT_FALSE(j["ports"][2].contains("steering"));
  EXPECT_EQ(j["ports"][0]["pipeline"],
            nlohmann::json::parse(R"([{"stage": "parse"}, {"stage": "conntrack"}, {"stage": "route"}])"));
  EXPECT_EQ(j["conntrack"], nlohmann::json::parse(R"({
      "capacity": 262144, "capacity_ipv6": 0, "tcp_liberal": false, "tcp_loose": true, "later_fragments": "accept",
      "timeouts": {"tcp_syn_sent": 120, "tcp_syn_recv": 60, "tcp_established": 432000, "tcp_fin_wait": 120,
                   "tcp_close_wait": 60, "tcp_last_ack": 30, "tcp_time_wait": 120, "tcp_close": 10,
                   "tcp_unacknowledged": 300, "udp": 45, "udp_stream": 120, "icmp": 30, "generic": 600}})"));
  EXPECT_FALSE(j.contains("firewall"));
}

TEST(ConfigFlowTest, EffectiveConfigLeavesOutConntrackWithoutTrackedPorts) {
  nlohmann::json j = to_json(parse_ok(R"({$EAL, "ports": [$MGMT, {"name": "east", "device": "net_ring5", "ipv4": ["10.5.0.1/24"], "pipeline": ["parse", "route"]}]})"));
  EXPECT_FALSE(j.contains("conntrack"));
  EXPECT_FALSE(j.contains("firewall"));
  EXPECT_EQ(j["ports"][1]["zone"], "east");
}

TEST(ConfigFlowTest, EffectiveConfigShowsRulesAsResolved) {
  nlohmann::json j = to_json(parse_ok(R"({$EAL, "ports": [$LAN, $WAN], "firewall": {
      "policies": [{"from": "inside", "to": "outside", "action": "accept"}],
      "rules": [
        {"name": "web-in", "from": "outside", "protocol": 6, "dst": "10.1.0.10", "dst_ports": [80, "8000-8080"], "action": "accept"},
        {"in_port": "wan", "protocol": 17, "src_ports": "53-53", "state": ["established", "new"], "action": "reject"},
        {"protocol": "tcp", "tcp_flags": {"mask": ["ack", "syn"], "set": ["syn"]}, "action": "drop"},
        {"protocol": 47, "action": "drop"}]}})"));
  EXPECT_EQ(j["firewall"], nlohmann::json::parse(R"({
      "default_policy": "drop",
      "policies": [{"from": "inside", "to": "outside", "action": "accept"}],
      "rules": [
        {"name": "web-in", "from": ["outside"], "protocol": "tcp", "dst": ["10.1.0.10/32"],
         "dst_ports": [80, "8000-8080"], "state": ["new"], "action": "accept"},
        {"name": "rule1", "in_port": ["wan"], "protocol": "udp", "src_ports": [53],
         "state": ["new", "established"], "action": "reject"},
        {"name": "rule2", "protocol": "tcp", "tcp_flags": {"mask": ["syn", "ack"], "set": ["syn"]}, "state": ["new"],
         "action": "drop"},
        {"name": "rule3", "protocol": 47, "state": ["new"], "action": "drop"}],
      "reject_limit": {"rate_per_second": 1000, "burst": 50}})"));
}

// --check-config prints to_json; feeding that back must give the same config.
void expect_round_trip(const std::string& text) {
  nlohmann::json first = to_json(parse_ok(text));
  ParseResult again = parse_config_text(first.dump(2), "effective.json");
  ASSERT_TRUE(again.ok()) << ::testing::PrintToString(again.errors) << "\n" << first.dump(2);
  EXPECT_EQ(to_json(*again.config), first);
}

TEST(ConfigFlowTest, TrackingOnlyConfigRoundTrips) { expect_round_trip(R"({$EAL, "ports": [$LAN, $WAN, $MGMT]})"); }

TEST(ConfigFlowTest, TrackedCrossConnectRoundTrips) {
  expect_round_trip(R"({$EAL, "ports": [$XN, $XS], "conntrack": {"later_fragments": "drop"}})");
}

TEST(ConfigFlowTest, FullFirewallConfigRoundTrips) {
  expect_round_trip(R"({$EAL,
    "ports": [
      {"name": "lan", "device": "net_ring0", "zone": "inside", "conntrack_zone": 3, "steering": "software",
       "ipv4": ["10.1.0.1/24"], "ipv6": ["fd00:1::1/64"], "pipeline": ["parse", "conntrack", "route"]},
      {"name": "wan", "device": "net_ring1", "zone": "outside", "steering": "software",
       "ipv4": ["10.2.0.1/24"], "ipv6": ["fd00:2::1/64"], "pipeline": ["parse", "conntrack", "route"]},
      $MGMT, $XN, $XS],
    "routes": [{"prefix": "0.0.0.0/0", "via": "10.2.0.2"}],
    "conntrack": {"capacity": 4096, "capacity_ipv6": 0, "tcp_liberal": true, "tcp_loose": false,
                  "later_fragments": "drop", "timeouts": {"tcp_established": 7200, "generic": 60}},
    "firewall": {
      "default_policy": "accept",
      "policies": [{"from": "inside", "to": "outside", "action": "accept"},
                   {"from": "outside", "to": "mgmt", "action": "reject"}],
      "rules": [
        {"name": "web-in", "from": "outside", "to": ["inside", "mgmt"], "protocol": "tcp",
         "src": ["0.0.0.0/0", "::/0"], "dst": ["10.1.0.10", "fd00:1::/64"], "dst_ports": [80, 443, "8000-8080"],
         "action": "accept"},
        {"in_port": ["wan", "north"], "out_port": "south", "protocol": "udp", "src_ports": ["1024-65535", 7],
         "action": "drop"},
        {"name": "syn-only", "protocol": "tcp", "tcp_flags": {"mask": ["syn", "ack", "cwr"], "set": ["syn"]},
         "action": "accept"},
        {"protocol": "icmp", "state": ["invalid", "related", "established", "new"], "action": "accept"},
        {"protocol": 132, "action": "reject"},
        {"protocol": 0, "action": "drop"}],
      "reject_limit": {"rate_per_second": 5, "burst": 1}}})");
}

// The shipped example: a router with conntrack and a firewall (also checked by
// tests/integration/test_check_config.sh through the CLI).
TEST(ConfigFlowTest, TheFirewallExampleLoadsAndRoundTrips) {
  std::string source = __FILE__;  // .../tests/unit/config_flow_test.cpp, often relative to the build dir
  std::string root = source.substr(0, source.rfind("tests/unit/"));
  std::string found;
  for (const std::string& candidate : {root, std::string(), std::string("../")}) {
    std::string path = candidate + "conf/firewall-af_packet.json";
    if (std::ifstream(path)) {
      found = path;
      break;
    }
  }
  if (found.empty()) GTEST_SKIP() << "conf/firewall-af_packet.json not found from " << source;
  ParseResult result = load_config_file(found);
  ASSERT_TRUE(result.ok()) << ::testing::PrintToString(result.errors);
  const Config& c = *result.config;
  EXPECT_EQ(c.source_path, found);
  EXPECT_TRUE(c.tracked());
  EXPECT_TRUE(c.firewall.enabled);
  EXPECT_EQ(c.ports[0].zone, "inside");
  EXPECT_EQ(c.ports[1].zone, "outside");
  nlohmann::json first = to_json(c);
  ParseResult again = parse_config_text(first.dump(2), "effective.json");
  ASSERT_TRUE(again.ok()) << ::testing::PrintToString(again.errors);
  EXPECT_EQ(to_json(*again.config), first);
}

}  // namespace
}  // namespace sluice::config
