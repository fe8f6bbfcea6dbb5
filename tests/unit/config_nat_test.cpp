// lib/config, NAT keys (the nat stage, "nat": snat, dnat, nptv6, fragments, log): every
// bad config yields exactly the lines an operator reads; a good one comes back as the
// structs lib/nat compiles, defaults filled in, with the addresses Sluice answers ARP
// for resolved (nat.proxy), and round-trips through to_json.
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.h"
#include "config_support.h"

namespace sluice::config {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Short-hands so each case shows only what it breaks.
//   $EAL    "eal": {"lcores": "0-1"} (one worker)
//   $LAN    port lan (net_ring0), zone inside, parse-conntrack-nat-route: 10.1.0.1/24, fd00:1::1/64
//   $WAN    port wan (net_ring1), zone outside, the same pipeline: 192.0.2.1/24, 2001:db8:ffff::1/64
//   $ISP2   port isp2 (net_ring2), zone outside, the same pipeline: 198.51.100.1/24
//   $V6ONLY port v6 (net_ring3), zone outside6, the same pipeline, IPv6 only: 2001:db8:fffe::1/64
//   $MGMT   port mgmt (net_ring4), routed, untracked, its own zone: 10.3.0.1/24
const fixtures::ConfigText kText({
      {"$EAL", R"("eal": {"lcores": "0-1"})"},
      {"$LAN",
       R"({"name": "lan", "device": "net_ring0", "zone": "inside", "ipv4": ["10.1.0.1/24"], "ipv6": ["fd00:1::1/64"], "pipeline": ["parse", "conntrack", "nat", "route"]})"},
      {"$WAN",
       R"({"name": "wan", "device": "net_ring1", "zone": "outside", "ipv4": ["192.0.2.1/24"], "ipv6": ["2001:db8:ffff::1/64"], "pipeline": ["parse", "conntrack", "nat", "route"]})"},
      {"$ISP2",
       R"({"name": "isp2", "device": "net_ring2", "zone": "outside", "ipv4": ["198.51.100.1/24"], "pipeline": ["parse", "conntrack", "nat", "route"]})"},
      {"$V6ONLY",
       R"({"name": "v6", "device": "net_ring3", "zone": "outside6", "ipv6": ["2001:db8:fffe::1/64"], "pipeline": ["parse", "conntrack", "nat", "route"]})"},
      {"$MGMT", R"({"name": "mgmt", "device": "net_ring4", "ipv4": ["10.3.0.1/24"], "pipeline": ["parse", "route"]})"},
});

Config parse_ok(const std::string& text) { return kText.parse_ok(text); }

using fixtures::BadConfig;

class BadNatConfigTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadNatConfigTest, ReportsExactlyTheseErrors) {
  fixtures::expect_exact_errors(kText, GetParam());
}

// A routed port `name` on net_ring<ring> with these members and pipeline.
std::string port(const std::string& name, int ring, const std::string& members, const std::string& pipeline) {
  return R"({"name": ")" + name + R"(", "device": "net_ring)" + std::to_string(ring) + R"(", )" + members +
         (members.empty() ? "" : ", ") + R"("pipeline": )" + pipeline + "}";
}
const char* const kTranslated = R"(["parse", "conntrack", "nat", "route"])";
const char* const kTracked = R"(["parse", "conntrack", "route"])";

// lan, wan and mgmt with this "nat" section.
std::string with_nat(const std::string& body) { return R"({$EAL, "ports": [$LAN, $WAN, $MGMT], "nat": )" + body + "}"; }
std::string with_snat(const std::string& rules) { return with_nat(R"({"snat": )" + rules + "}"); }
std::string with_dnat(const std::string& rules) { return with_nat(R"({"dnat": )" + rules + "}"); }
std::string with_nptv6(const std::string& rules) { return with_nat(R"({"nptv6": )" + rules + "}"); }
// These ports, masquerading out of every nat port.
std::string ports_masquerading(const std::string& ports) {
  return R"({$EAL, "ports": [)" + ports + R"(], "nat": {"snat": [{"masquerade": true}]}})";
}

std::string repeated(const std::string& item, size_t n) {
  std::string list;
  for (size_t i = 0; i < n; ++i) list += (list.empty() ? "" : ", ") + item;
  return "[" + list + "]";
}

const char* const kForward = R"({"protocol": "tcp", "port": 8080, "to_address": "10.1.0.10"})";

const BadConfig kBadConfigs[] = {
    // The nat stage in a pipeline.
    {"NatStageWithoutNatSection", R"({$EAL, "ports": [$LAN, $WAN]})",
     {R"(ports[0].pipeline: the nat stage needs a "nat" section (its rules))",
      R"(ports[1].pipeline: the nat stage needs a "nat" section (its rules))"}},
    {"NatSectionWithoutNatPort",
     R"({$EAL, "ports": [)" + port("lan", 0, R"("ipv4": ["10.1.0.1/24"])", kTracked) + ", " +
         port("wan", 1, R"("ipv4": ["192.0.2.1/24"])", kTracked) + R"(], "nat": {}})",
     {"nat: no port's pipeline has the nat stage"}},
    {"NatSectionWithoutAnyTrackedPort", R"({$EAL, "ports": [$MGMT], "nat": {"snat": [{"masquerade": true}]}})",
     {"nat: no port's pipeline has the nat stage"}},
    {"NatStageWithoutConntrack",
     ports_masquerading(port("lan", 0, R"("ipv4": ["10.1.0.1/24"])", R"(["parse", "nat", "route"])") + ", $WAN"),
     {"ports[0].pipeline[1]: the nat stage needs the conntrack stage before it (it translates the flows conntrack "
      "finds)"}},
    {"NatStageBeforeConntrack",
     ports_masquerading(port("lan", 0, R"("ipv4": ["10.1.0.1/24"])", R"(["parse", "nat", "conntrack", "route"])") +
                        ", $WAN"),
     {"ports[0].pipeline[1]: the nat stage needs the conntrack stage before it (it translates the flows conntrack "
      "finds)"}},
    {"NatStageOnACrossConnect",
     ports_masquerading(
         port("north", 0, "", R"(["parse", "conntrack", "nat", {"stage": "xconnect", "peer": "south"}])") + ", " +
         port("south", 1, "", R"(["parse", {"stage": "xconnect", "peer": "north"}])")),
     {"ports[0].pipeline: the nat stage needs the route stage after it (translation is for routed traffic)"}},
    {"NatStageLast", ports_masquerading(port("lan", 0, R"("ipv4": ["10.1.0.1/24"])", R"(["parse", "conntrack", "nat"])") + ", $WAN"),
     {"ports[0].pipeline: must end with an output stage (xconnect or route), got 'nat'",
      "ports[0].pipeline: the nat stage needs the route stage after it (translation is for routed traffic)"}},
    {"NatStageTwice",
     ports_masquerading(port("lan", 0, R"("ipv4": ["10.1.0.1/24"])", R"(["parse", "conntrack", "nat", "nat", "route"])") +
                        ", $WAN"),
     {"ports[0].pipeline[3]: stage 'nat' appears twice"}},
    {"TrackedPortWithoutNatStageWhenRulesExist",
     ports_masquerading("$LAN, $WAN, " + port("dmz", 2, R"("ipv4": ["10.4.0.1/24"])", kTracked)),
     {"ports[2].pipeline: port 'dmz' tracks flows without the nat stage, but the replies of flows translated "
      "elsewhere arrive here: add \"nat\" after \"conntrack\""}},
    {"TrackedPortWithoutNatStageWhenOnlyNptv6Exists",
     R"({$EAL, "ports": [$LAN, $WAN, )" + port("dmz", 2, R"("ipv4": ["10.4.0.1/24"])", kTracked) +
         R"(], "nat": {"nptv6": [{"port": "wan", "inside": "fd00:1::/48", "outside": "2001:db8:1::/48"}]}})",
     {"ports[2].pipeline: port 'dmz' tracks flows without the nat stage, but the replies of flows translated "
      "elsewhere arrive here: add \"nat\" after \"conntrack\""}},
    {"NatPortsInDifferentConntrackZones",
     ports_masquerading(port("lan", 0, R"("ipv4": ["10.1.0.1/24"], "conntrack_zone": 7)", kTranslated) + ", $WAN, $ISP2"),
     {"ports[1].conntrack_zone: every port with the nat stage must be in one conntrack zone (a translated flow's two "
      "tuples are in one table), got 0 here and 7 on port 'lan'",
      "ports[2].conntrack_zone: every port with the nat stage must be in one conntrack zone (a translated flow's two "
      "tuples are in one table), got 0 here and 7 on port 'lan'"}},
    {"HardwareSteeringWithSeveralWorkers",
     R"({"eal": {"lcores": "0-2"}, "ports": [)" +
         port("lan", 0, R"("ipv4": ["10.1.0.1/24"], "steering": "hardware")", kTranslated) + ", " +
         port("wan", 1, R"("ipv4": ["192.0.2.1/24"], "steering": "hardware")", kTranslated) +
         R"(], "nat": {"snat": [{"masquerade": true, "out_port": "wan"}]}})",
     {"ports[0].steering: with the nat stage and 2 workers only software steering brings a translated flow's replies "
      "(another tuple) to the worker that holds it: use \"auto\" or \"software\", got 'hardware'",
      "ports[1].steering: with the nat stage and 2 workers only software steering brings a translated flow's replies "
      "(another tuple) to the worker that holds it: use \"auto\" or \"software\", got 'hardware'"}},

    // The section's shape and unknown keys at every level.
    {"NatNotObject", with_nat("[]"), {"nat: must be an object, got array"}},
    {"NatUnknownKey", with_nat(R"({"snatt": []})"),
     {"nat.snatt: unknown key (expected one of: capacity, snat, dnat, nptv6, fragments, log)"}},
    {"SnatUnknownKey", with_snat(R"([{"masquerade": true, "port": "1024-2047"}])"),
     {"nat.snat[0].port: unknown key (expected one of: name, from, to, in_port, out_port, src, dst, protocol, "
      "masquerade, pool, ports, mapping)"}},
    {"DnatUnknownKey", with_dnat(R"([{"protocol": "tcp", "port": 80, "to_address": "10.1.0.10", "to": "inside"}])"),
     {"nat.dnat[0].to: unknown key (expected one of: name, from, in_port, src, dst, protocol, port, to_address, "
      "to_port, hairpin)"}},
    {"Nptv6UnknownKey",
     with_nptv6(R"([{"port": "wan", "inside": "fd00:1::/48", "outside": "2001:db8:1::/48", "prefix": "/48"}])"),
     {"nat.nptv6[0].prefix: unknown key (expected one of: name, port, inside, outside)"}},
    {"FragmentsUnknownKey", with_nat(R"({"fragments": {"timeout": 5}})"),
     {"nat.fragments.timeout: unknown key (expected one of: max_datagrams, max_fragments, timeout_ms)"}},
    {"LogUnknownKey", with_nat(R"({"log": {"file": "/var/log/sluice/nat.log", "level": "info"}})"),
     {"nat.log.level: unknown key (expected one of: file)"}},
    {"SnatNotArray", with_snat(R"({"masquerade": true})"), {"nat.snat: must be an array of snat rules, got object"}},
    {"DnatNotArray", with_dnat(kForward), {"nat.dnat: must be an array of port forwards, got object"}},
    {"Nptv6NotArray", with_nptv6(R"("fd00:1::/48")"), {"nat.nptv6: must be an array of NPTv6 mappings, got string"}},
    {"SnatRuleNotObject", with_snat(R"(["masquerade"])"),
     {"nat.snat[0]: must be an object (a snat rule), got string"}},
    {"DnatRuleNotObject", with_dnat("[8080]"), {"nat.dnat[0]: must be an object (a port forward), got integer"}},
    {"CapacityTooSmall", with_nat(R"({"capacity": 1023})"), {"nat.capacity: must be 1024..16777216, got 1023"}},
    {"CapacityTooBig", with_nat(R"({"capacity": 16777217})"), {"nat.capacity: must be 1024..16777216, got 16777217"}},
    {"CapacityNotInteger", with_nat(R"({"capacity": "64k"})"), {"nat.capacity: must be an integer, got string"}},
    {"TooManySnatRules", with_snat(repeated(R"({"masquerade": true})", 1025)),
     {"nat.snat: at most 1024 snat rules, got 1025"}},
    {"TooManySnatAndDnatRules",
     with_nat(R"({"snat": )" + repeated(R"({"masquerade": true})", 600) + R"(, "dnat": )" + repeated(kForward, 600) +
              "}"),
     {"nat.snat: snat and dnat together hold at most 1024 rules, got 1200"}},

    // "fragments" and "log".
    {"FragmentsNotObject", with_nat(R"({"fragments": 16})"), {"nat.fragments: must be an object, got integer"}},
    {"FragmentsOutOfRange",
     with_nat(R"({"fragments": {"max_datagrams": 0, "max_fragments": 1, "timeout_ms": 99}})"),
     {"nat.fragments.max_datagrams: must be 1..65536, got 0", "nat.fragments.max_fragments: must be 2..64, got 1",
      "nat.fragments.timeout_ms: must be 100..120000, got 99"}},
    {"FragmentsAboveRange",
     with_nat(R"({"fragments": {"max_datagrams": 65537, "max_fragments": 65, "timeout_ms": 120001}})"),
     {"nat.fragments.max_datagrams: must be 1..65536, got 65537", "nat.fragments.max_fragments: must be 2..64, got 65",
      "nat.fragments.timeout_ms: must be 100..120000, got 120001"}},
    {"LogNotObject", with_nat(R"({"log": "/var/log/sluice/nat.log"})"), {"nat.log: must be an object, got string"}},
    {"LogWithoutFile", with_nat(R"({"log": {}})"), {"nat.log: missing required key 'file'"}},
    {"LogFileRelative", with_nat(R"({"log": {"file": "nat.log"}})"),
     {"nat.log.file: must be an absolute path, got 'nat.log'"}},
    {"LogFileEmpty", with_nat(R"({"log": {"file": ""}})"), {"nat.log.file: must be an absolute path, got ''"}},
    {"LogFileNotString", with_nat(R"({"log": {"file": true}})"), {"nat.log.file: must be a string, got boolean"}},

    // "snat": masquerade or a pool.
    {"MasqueradeAndPool", with_snat(R"([{"masquerade": true, "pool": "192.0.2.100"}])"),
     {"nat.snat[0]: masquerade and pool exclude each other: translate to the egress port's address or to a pool"}},
    {"NeitherMasqueradeNorPool", with_snat(R"([{"from": "inside"}])"),
     {R"(nat.snat[0]: needs "masquerade": true (the egress port's address) or "pool": [addresses])"}},
    {"MasqueradeFalseWithoutPool", with_snat(R"([{"masquerade": false}])"),
     {R"(nat.snat[0]: needs "masquerade": true (the egress port's address) or "pool": [addresses])"}},
    {"MasqueradeNotBool", with_snat(R"([{"masquerade": "yes"}])"),
     {"nat.snat[0].masquerade: must be true or false, got string",
      R"(nat.snat[0]: needs "masquerade": true (the egress port's address) or "pool": [addresses])"}},
    {"PoolWithAnIpv6Prefix", with_snat(R"([{"pool": ["192.0.2.100", "2001:db8::/120"]}])"),
     {"nat.snat[0].pool: IPv4 only: snat and dnat translate IPv4 (IPv6 prefixes are translated by nptv6), got "
      "'2001:db8::/120'"}},
    {"PoolShorterThanSlash16", with_snat(R"([{"pool": "10.0.0.0/15"}])"),
     {"nat.snat[0].pool: at most 65536 addresses a prefix (a /16), got '10.0.0.0/15'"}},
    {"PoolEmpty", with_snat(R"([{"pool": []}])"),
     {"nat.snat[0].pool: must be a prefix or address, or a non-empty array of them, got []"}},
    {"PoolHostBits", with_snat(R"([{"pool": ["192.0.2.100", "203.0.113.1/29"]}])"),
     {"nat.snat[0].pool[1]: 203.0.113.1/29 has host bits set (did you mean 203.0.113.0/29?)"}},
    {"PoolNotAnAddress", with_snat(R"([{"pool": "203.0.113.x"}])"),
     {"nat.snat[0].pool: must be an IPv4 or IPv6 prefix or address like 10.0.0.0/8, got '203.0.113.x'"}},
    {"OverlappingPoolsAcrossRules",
     with_snat(R"([{"src": "10.1.0.0/25", "pool": "203.0.113.0/29"},
                   {"src": "10.1.0.128/25", "pool": ["198.51.100.7", "203.0.113.4/30"]}])"),
     {"nat.snat[1].pool[1]: 203.0.113.4/30 overlaps 203.0.113.0/29 of nat.snat[0]: an outside address belongs to "
      "one pool"}},
    {"OverlappingPoolsInOneRule", with_snat(R"([{"pool": ["203.0.113.0/29", "203.0.113.5"]}])"),
     {"nat.snat[0].pool[1]: 203.0.113.5/32 overlaps 203.0.113.0/29 of nat.snat[0]: an outside address belongs to "
      "one pool"}},
    {"PoolAloneOverTheAddressLimit", with_snat(R"([{"pool": "100.64.0.0/16"}])"),
     {"nat: 65536 outside addresses in all (pools, masqueraded and forwarded addresses); at most 4096"}},
    {"PoolsAndMasqueradeOverTheAddressLimit",
     with_snat(R"([{"out_port": "wan", "masquerade": true}, {"src": "10.1.0.0/25", "pool": "203.0.112.0/20"}])"),
     {"nat: 4097 outside addresses in all (pools, masqueraded and forwarded addresses); at most 4096"}},
    {"PoolAndForwardOverTheAddressLimit",
     with_nat(R"({"snat": [{"pool": "203.0.112.0/20"}],
                  "dnat": [{"dst": "198.51.100.80", "protocol": "tcp", "port": 80, "to_address": "10.1.0.10"}]})"),
     {"nat: 4097 outside addresses in all (pools, masqueraded and forwarded addresses); at most 4096"}},

    // "snat": ports, mapping and matching keys.
    {"PortRangeZero", with_snat(R"([{"masquerade": true, "ports": 0}])"), {"nat.snat[0].ports: ports start at 1, got 0"}},
    {"PortRangeFromZero", with_snat(R"([{"masquerade": true, "ports": "0-1023"}])"),
     {R"(nat.snat[0].ports: ports start at 1, got "0-1023")"}},
    {"PortRangeReversed", with_snat(R"([{"masquerade": true, "ports": "2000-1000"}])"),
     {R"(nat.snat[0].ports: the range is empty (first port above the last), got "2000-1000")"}},
    {"PortAbove65535", with_snat(R"([{"masquerade": true, "ports": 65536}])"),
     {R"(nat.snat[0].ports: must be a port (1..65535) or a range "first-last", got 65536)"}},
    {"PortRangeAbove65535", with_snat(R"([{"masquerade": true, "ports": "1024-70000"}])"),
     {R"(nat.snat[0].ports: must be a port (1..65535) or a range "first-last", got "1024-70000")"}},
    {"PortRangeNotANumber", with_snat(R"([{"masquerade": true, "ports": "high"}])"),
     {R"(nat.snat[0].ports: must be a port (1..65535) or a range "first-last", got "high")"}},
    {"PortRangeAList", with_snat(R"([{"masquerade": true, "ports": [1024, 2048]}])"),
     {R"(nat.snat[0].ports: must be a port (1..65535) or a range "first-last", got [1024,2048])"}},
    {"PortNegative", with_snat(R"([{"masquerade": true, "ports": -1}])"),
     {R"(nat.snat[0].ports: must be a port (1..65535) or a range "first-last", got -1)"}},
    {"MappingUnknown", with_snat(R"([{"masquerade": true, "mapping": "full-cone"}])"),
     {"nat.snat[0].mapping: must be one of endpoint-dependent, endpoint-independent, got 'full-cone'"}},
    {"SnatProtocolIcmpv6", with_snat(R"([{"masquerade": true, "protocol": "icmpv6"}])"),
     {"nat.snat[0].protocol: icmpv6 is IPv6: snat translates IPv4"}},
    {"SnatProtocolUnknown", with_snat(R"([{"masquerade": true, "protocol": "sctp"}])"),
     {R"(nat.snat[0].protocol: must be tcp, udp, icmp, icmpv6 or 0..255, got "sctp")"}},
    {"SnatSrcIpv6", with_snat(R"([{"masquerade": true, "src": ["10.1.0.0/24", "fd00:1::/64"]}])"),
     {"nat.snat[0].src: IPv4 only: snat and dnat translate IPv4 (IPv6 prefixes are translated by nptv6), got "
      "'fd00:1::/64'"}},
    {"SnatFromEmptyList", with_snat(R"([{"masquerade": true, "from": []}])"),
     {"nat.snat[0].from: must be a zone name or a non-empty array of zone names, got []"}},
    {"SnatNameWithSpace", with_snat(R"([{"name": "to the world", "masquerade": true}])"),
     {"nat.snat[0].name: must be 1..64 characters of A-Z a-z 0-9 _ . -, got 'to the world'"}},

    // "snat": zones and ports, checked once the fields are valid.
    {"SnatUnknownZone", with_snat(R"([{"masquerade": true, "from": "inside", "to": ["outside", "dmz"]}])"),
     {"nat.snat[0].to[1]: unknown zone 'dmz' (known: inside, outside, mgmt)"}},
    {"SnatUnknownZoneAlone", with_snat(R"([{"masquerade": true, "from": "lan"}])"),
     {"nat.snat[0].from: unknown zone 'lan' (known: inside, outside, mgmt)"}},
    {"SnatUnknownPort", with_snat(R"([{"masquerade": true, "out_port": ["wan", "wan3"]}])"),
     {"nat.snat[0].out_port[1]: unknown port 'wan3'"}},
    {"SnatInPortWithoutNatStage", with_snat(R"([{"masquerade": true, "in_port": "mgmt"}])"),
     {"nat.snat[0].in_port: port 'mgmt' has no nat stage"}},
    {"MasqueradeOnPortsWithoutIpv4",
     R"({$EAL, "ports": [$LAN, $WAN, $V6ONLY], "nat": {"snat": [{"masquerade": true, "to": "outside6"}]}})",
     {"nat.snat[0]: masquerade needs an IPv4 address on an egress port, and none of its ports has one"}},
    {"MasqueradedEndpointDependentAndIndependent",
     with_snat(R"([{"src": "10.1.0.0/25", "out_port": "wan", "masquerade": true},
                   {"src": "10.1.0.128/25", "out_port": "wan", "masquerade": true, "mapping": "endpoint-independent"}])"),
     {"nat.snat[1].mapping: the address of port 'wan' (192.0.2.1) is masqueraded endpoint-dependent by nat.snat[0]: "
      "one address, one mapping behaviour, got endpoint-independent"}},
    {"MasqueradedAddressInAPoolOfAnotherMapping",
     with_snat(R"([{"out_port": "wan", "masquerade": true, "mapping": "endpoint-independent"},
                   {"src": "10.1.0.0/25", "pool": "192.0.2.0/30"}])"),
     {"nat.snat[1].mapping: 192.0.2.1 is in its pool and masqueraded endpoint-independent by nat.snat[0]: one "
      "address, one mapping behaviour"}},

    // "dnat": port forwards.
    {"DnatWithoutAnything", with_dnat("[{}]"),
     {"nat.dnat[0]: missing required key 'protocol'", "nat.dnat[0]: missing required key 'port'",
      "nat.dnat[0]: missing required key 'to_address'"}},
    {"DnatWithoutToAddress", with_dnat(R"([{"protocol": "tcp", "port": 8080}])"),
     {"nat.dnat[0]: missing required key 'to_address'"}},
    {"DnatProtocolIcmp", with_dnat(R"([{"protocol": "icmp", "port": 8080, "to_address": "10.1.0.10"}])"),
     {R"(nat.dnat[0].protocol: a port forward is for "tcp" or "udp", got "icmp")"}},
    {"DnatProtocolByNumber", with_dnat(R"([{"protocol": 47, "port": 8080, "to_address": "10.1.0.10"}])"),
     {R"(nat.dnat[0].protocol: a port forward is for "tcp" or "udp", got 47)"}},
    {"DnatPortZero", with_dnat(R"([{"protocol": "tcp", "port": 0, "to_address": "10.1.0.10"}])"),
     {"nat.dnat[0].port: ports start at 1, got 0"}},
    {"DnatPortRangeReversed", with_dnat(R"([{"protocol": "tcp", "port": "8090-8080", "to_address": "10.1.0.10"}])"),
     {R"(nat.dnat[0].port: the range is empty (first port above the last), got "8090-8080")"}},
    {"DnatToAddressIpv6", with_dnat(R"([{"protocol": "tcp", "port": 8080, "to_address": "fd00:1::10"}])"),
     {R"(nat.dnat[0].to_address: must be an IPv4 address like "198.51.100.10", got 'fd00:1::10')"}},
    {"DnatToAddressAPrefix", with_dnat(R"([{"protocol": "tcp", "port": 8080, "to_address": "10.1.0.10/32"}])"),
     {R"(nat.dnat[0].to_address: must be an IPv4 address like "198.51.100.10", got '10.1.0.10/32')"}},
    {"DnatToAddressMulticast", with_dnat(R"([{"protocol": "udp", "port": 5004, "to_address": "239.1.1.1"}])"),
     {"nat.dnat[0].to_address: must be a unicast address, got '239.1.1.1'"}},
    {"DnatDstLoopback",
     with_dnat(R"([{"dst": "127.0.0.1", "protocol": "tcp", "port": 8080, "to_address": "10.1.0.10"}])"),
     {"nat.dnat[0].dst: must be a unicast address, got '127.0.0.1'"}},
    {"DnatDstAPrefix",
     with_dnat(R"([{"dst": "192.0.2.0/24", "protocol": "tcp", "port": 8080, "to_address": "10.1.0.10"}])"),
     {R"(nat.dnat[0].dst: must be an IPv4 address like "198.51.100.10", got '192.0.2.0/24')"}},
    {"DnatToPortZero", with_dnat(R"([{"protocol": "tcp", "port": 8080, "to_address": "10.1.0.10", "to_port": 0}])"),
     {"nat.dnat[0].to_port: must be 1..65535, got 0"}},
    {"DnatToPortPlusRangeOver65535",
     with_dnat(R"([{"protocol": "tcp", "port": "1000-1536", "to_address": "10.1.0.10", "to_port": 65000}])"),
     {R"(nat.dnat[0].to_port: 65000 + the 537 ports of "port" passes 65535)"}},
    {"DnatSrcIpv6",
     with_dnat(R"([{"src": "2001:db8::/32", "protocol": "tcp", "port": 8080, "to_address": "10.1.0.10"}])"),
     {"nat.dnat[0].src: IPv4 only: snat and dnat translate IPv4 (IPv6 prefixes are translated by nptv6), got "
      "'2001:db8::/32'"}},
    {"DnatHairpinNotBool",
     with_dnat(R"([{"protocol": "tcp", "port": 8080, "to_address": "10.1.0.10", "hairpin": "no"}])"),
     {"nat.dnat[0].hairpin: must be true or false, got string"}},
    {"DnatUnknownZone",
     with_dnat(R"([{"from": ["outside", "dmz"], "protocol": "tcp", "port": 8080, "to_address": "10.1.0.10"}])"),
     {"nat.dnat[0].from[1]: unknown zone 'dmz' (known: inside, outside, mgmt)"}},
    {"DnatUnknownPort",
     with_dnat(R"([{"in_port": "wan3", "dst": "192.0.2.10", "protocol": "tcp", "port": 8080, "to_address": "10.1.0.10"}])"),
     {"nat.dnat[0].in_port: unknown port 'wan3'"}},
    {"DnatInPortsWithoutNatStage",
     with_dnat(R"([{"in_port": ["wan", "mgmt"], "protocol": "tcp", "port": 8080, "to_address": "10.1.0.10"}])"),
     {"nat.dnat[0].in_port[1]: port 'mgmt' has no nat stage"}},
    {"DnatWithoutAnAddressToListenOn",
     R"({$EAL, "ports": [$LAN, $WAN, $V6ONLY], "nat": {"dnat": [{"in_port": "v6", "protocol": "tcp", "port": 8080, "to_address": "10.1.0.10"}]}})",
     {R"(nat.dnat[0]: no "dst", and its ingress ports have no IPv4 address to listen on)"}},
    {"OverlappingPortForwards",
     with_dnat(R"([{"in_port": "wan", "protocol": "tcp", "port": "8000-8010", "to_address": "10.1.0.10"},
                   {"in_port": "wan", "protocol": "udp", "port": 8010, "to_address": "10.1.0.11"},
                   {"in_port": "wan", "protocol": "tcp", "port": 8010, "to_address": "10.1.0.12"}])"),
     {"nat.dnat[2]: its ports overlap those of nat.dnat[0] on 192.0.2.1 (tcp): a port forwards to one place"}},
    {"OverlappingPortForwardsOnAWrittenAndAnImpliedAddress",
     with_dnat(R"([{"dst": "192.0.2.1", "protocol": "tcp", "port": 443, "to_address": "10.1.0.10"},
                   {"from": "outside", "protocol": "tcp", "port": "400-500", "to_address": "10.1.0.11"}])"),
     {"nat.dnat[1]: its ports overlap those of nat.dnat[0] on 192.0.2.1 (tcp): a port forwards to one place"}},

    // "nptv6"
    {"Nptv6WithoutKeys", with_nptv6("[{}]"),
     {"nat.nptv6[0]: missing required key 'port'", "nat.nptv6[0]: missing required key 'inside'",
      "nat.nptv6[0]: missing required key 'outside'"}},
    {"Nptv6PrefixesOfDifferentLengths",
     with_nptv6(R"([{"port": "wan", "inside": "fd00:1::/48", "outside": "2001:db8:1::/56"}])"),
     {"nat.nptv6[0]: inside is a /48 and outside a /56: NPTv6 maps prefixes of equal length (RFC 6296)"}},
    {"Nptv6PrefixSlash80",
     with_nptv6(R"([{"port": "wan", "inside": "fd00:1::/80", "outside": "2001:db8:1::/80"}])"),
     {"nat.nptv6[0].inside: prefix length must be 1..64 (RFC 6296 adjusts a word of the interface identifier at "
      "most), got 'fd00:1::/80'",
      "nat.nptv6[0].outside: prefix length must be 1..64 (RFC 6296 adjusts a word of the interface identifier at "
      "most), got '2001:db8:1::/80'"}},
    {"Nptv6HostBits", with_nptv6(R"([{"port": "wan", "inside": "fd00:1::1/48", "outside": "2001:db8:1::/48"}])"),
     {"nat.nptv6[0].inside: fd00:1::1/48 has host bits set (did you mean fd00:1::/48?)"}},
    {"Nptv6Ipv4Prefix", with_nptv6(R"([{"port": "wan", "inside": "10.1.0.0/24", "outside": "2001:db8:1::/48"}])"),
     {R"(nat.nptv6[0].inside: must be an IPv6 prefix like "fd00:1::/48", got '10.1.0.0/24')"}},
    {"Nptv6AddressWithoutLength",
     with_nptv6(R"([{"port": "wan", "inside": "fd00:1::/48", "outside": "2001:db8:1::"}])"),
     {R"(nat.nptv6[0].outside: must be an IPv6 prefix like "fd00:1::/48", got '2001:db8:1::')"}},
    {"Nptv6SamePrefix", with_nptv6(R"([{"port": "wan", "inside": "fd00:1::/48", "outside": "fd00:1::/48"}])"),
     {"nat.nptv6[0]: inside and outside are the same prefix: nothing to translate"}},
    {"Nptv6UnknownPort", with_nptv6(R"([{"port": "wan3", "inside": "fd00:1::/48", "outside": "2001:db8:1::/48"}])"),
     {"nat.nptv6[0].port: unknown port 'wan3'"}},
    {"Nptv6PortWithoutNatStage",
     with_nptv6(R"([{"port": "mgmt", "inside": "fd00:1::/48", "outside": "2001:db8:1::/48"}])"),
     {"nat.nptv6[0].port: port 'mgmt' has no nat stage"}},
    {"Nptv6PortBadName", with_nptv6(R"([{"port": "1wan", "inside": "fd00:1::/48", "outside": "2001:db8:1::/48"}])"),
     {"nat.nptv6[0].port: must start with a letter and have 1..32 of A-Z a-z 0-9 _ -, got '1wan'"}},
    {"Nptv6OverlappingInside",
     with_nptv6(R"([{"port": "wan", "inside": "fd00:1::/48", "outside": "2001:db8:1::/48"},
                    {"port": "wan", "inside": "fd00:1:0:1::/64", "outside": "2001:db8:2::/64"}])"),
     {"nat.nptv6[1]: its prefixes overlap those of nat.nptv6[0]"}},
    {"Nptv6OverlappingOutside",
     with_nptv6(R"([{"port": "wan", "inside": "fd00:1::/64", "outside": "2001:db8:1::/64"},
                    {"port": "wan", "inside": "fd00:2::/48", "outside": "2001:db8:1::/48"}])"),
     {"nat.nptv6[1]: its prefixes overlap those of nat.nptv6[0]"}},

    // Names, unique across snat, dnat and nptv6.
    {"DuplicateNameAcrossSnatAndDnat",
     with_nat(R"({"snat": [{"name": "web", "masquerade": true}],
                  "dnat": [{"name": "web", "protocol": "tcp", "port": 80, "to_address": "10.1.0.10"}]})"),
     {"nat.dnat[0].name: duplicate name 'web' (also nat.snat[0])"}},
    {"DuplicateNameAcrossDnatAndNptv6",
     with_nat(R"({"dnat": [{"name": "site", "protocol": "tcp", "port": 80, "to_address": "10.1.0.10"}],
                  "nptv6": [{"name": "site", "port": "wan", "inside": "fd00:1::/48", "outside": "2001:db8:1::/48"}]})"),
     {"nat.nptv6[0].name: duplicate name 'site' (also nat.dnat[0])"}},
    {"DefaultNameAlreadyTaken",
     with_nat(R"({"snat": [{"name": "dnat0", "masquerade": true}],
                  "dnat": [{"protocol": "tcp", "port": 80, "to_address": "10.1.0.10"}]})"),
     {R"(nat.dnat[0]: its default name 'dnat0' is already taken by nat.snat[0]; give it a "name")"}},
    {"NameRepeatsADefaultName",
     with_nat(R"({"snat": [{"masquerade": true}],
                  "nptv6": [{"name": "snat0", "port": "wan", "inside": "fd00:1::/48", "outside": "2001:db8:1::/48"}]})"),
     {"nat.nptv6[0].name: duplicate name 'snat0' (the default name of nat.snat[0])"}},

    // Several problems at once: all of them, in order.
    {"SeveralNatProblems",
     with_nat(R"({"capacity": 0,
                  "snat": [{"masquerade": true, "ports": "2-1"}, {"pool": "2001:db8::/64", "mapping": "cone"}],
                  "dnat": [{"protocol": "icmp", "port": 70000, "to_address": "10.1.0.10"}],
                  "nptv6": [{"port": "wan", "inside": "fd00:1::/48", "outside": "2001:db8:1::/64"}],
                  "fragments": {"timeout_ms": 0}, "log": {"file": "nat.log"}})"),
     {"nat.capacity: must be 1024..16777216, got 0",
      R"(nat.snat[0].ports: the range is empty (first port above the last), got "2-1")",
      "nat.snat[1].pool: IPv4 only: snat and dnat translate IPv4 (IPv6 prefixes are translated by nptv6), got "
      "'2001:db8::/64'",
      "nat.snat[1].mapping: must be one of endpoint-dependent, endpoint-independent, got 'cone'",
      R"(nat.dnat[0].protocol: a port forward is for "tcp" or "udp", got "icmp")",
      R"(nat.dnat[0].port: must be a port (1..65535) or a range "first-last", got 70000)",
      "nat.nptv6[0]: inside is a /48 and outside a /64: NPTv6 maps prefixes of equal length (RFC 6296)",
      "nat.fragments.timeout_ms: must be 100..120000, got 0", "nat.log.file: must be an absolute path, got 'nat.log'"}},
};

INSTANTIATE_TEST_SUITE_P(ConfigNat, BadNatConfigTest, ::testing::ValuesIn(kBadConfigs),
                         [](const ::testing::TestParamInfo<BadConfig>& param_info) {
                           return std::string(param_info.param.name);
                         });

net::IpPrefix prefix(const char* text) { return *net::parse_prefix(text); }
net::IpAddr ip(const char* text) { return net::parse_ip(text).value_or(net::IpAddr{}); }
NatProxyAddress proxy(const char* port_name, const char* address) { return {port_name, ip(address)}; }

// Good configs: what each one reads as.
struct GoodConfig {
  const char* name;
  std::string text;
};

void PrintTo(const GoodConfig& c, std::ostream* os) { *os << c.name; }

const GoodConfig kGoodConfigs[] = {
    {"EmptySection", with_nat("{}")},
    {"Masquerade", with_snat(R"([{"masquerade": true}])")},
    {"PoolsAsListAndPrefix",
     with_snat(R"([{"name": "pool-a", "from": "inside", "to": "outside", "src": "10.1.0.0/25", "dst": ["0.0.0.0/0"],
                    "protocol": "udp", "pool": ["192.0.2.100", "192.0.2.104/30"], "ports": "20000-29999",
                    "mapping": "endpoint-independent"},
                   {"in_port": "lan", "out_port": ["wan"], "protocol": 6, "pool": "203.0.113.0/24", "ports": 5000}])")},
    {"PortForwards",
     with_dnat(R"([{"name": "web", "from": "outside", "src": "203.0.113.0/24", "dst": "192.0.2.10", "protocol": "tcp",
                    "port": "8000-8009", "to_address": "10.1.0.10", "to_port": 80, "hairpin": false},
                   {"in_port": "wan", "protocol": "udp", "port": 53, "to_address": "10.1.0.53"}])")},
    {"Nptv6", with_nptv6(R"([{"name": "site", "port": "wan", "inside": "fd00:1::/48", "outside": "2001:db8:1::/48"},
                             {"port": "wan", "inside": "fd00:2::/64", "outside": "2001:db8:2::/64"}])")},
    {"FragmentsAndLog",
     with_nat(R"({"capacity": 16777216, "fragments": {"max_datagrams": 65536, "max_fragments": 2, "timeout_ms": 120000},
                  "log": {"file": "/var/log/sluice/nat.log"}})")},
    {"Everything",
     R"({$EAL, "ports": [$LAN, $WAN, $ISP2, $MGMT],
         "routes": [{"prefix": "0.0.0.0/0", "via": "192.0.2.254"}, {"prefix": "::/0", "via": "2001:db8:ffff::fe"}],
         "conntrack": {"capacity": 4096}, "firewall": {"policies": [{"from": "inside", "to": "outside", "action": "accept"}]},
         "nat": {"capacity": 4096,
                 "snat": [{"name": "office", "src": "10.1.0.0/24", "out_port": "isp2", "pool": "198.51.100.8/29",
                           "mapping": "endpoint-independent", "ports": "1024-60999"},
                          {"to": "outside", "masquerade": true}],
                 "dnat": [{"name": "cam", "in_port": "wan", "protocol": "tcp", "port": 8080, "to_address": "10.1.0.10",
                           "to_port": 80},
                          {"dst": "198.51.100.20", "protocol": "udp", "port": "60000-60099", "to_address": "10.1.0.11",
                           "hairpin": false}],
                 "nptv6": [{"port": "wan", "inside": "fd00:1::/48", "outside": "2001:db8:1::/48"}],
                 "fragments": {"max_datagrams": 256}, "log": {"file": "/var/log/sluice/nat.log"}}})"},
};

class GoodNatConfigTest : public ::testing::TestWithParam<GoodConfig> {};

// --check-config prints to_json; feeding that back must give the same config.
TEST_P(GoodNatConfigTest, RoundTripsThroughToJson) {
  nlohmann::json first = to_json(parse_ok(GetParam().text));
  ASSERT_TRUE(first.contains("nat")) << first.dump(2);
  ParseResult again = parse_config_text(first.dump(2), "effective.json");
  ASSERT_TRUE(again.ok()) << ::testing::PrintToString(again.errors) << "\n" << first.dump(2);
  EXPECT_EQ(to_json(*again.config), first);
  EXPECT_EQ(again.config->nat.proxy, parse_ok(GetParam().text).nat.proxy) << "the same addresses answered for";
}

INSTANTIATE_TEST_SUITE_P(ConfigNat, GoodNatConfigTest, ::testing::ValuesIn(kGoodConfigs),
                         [](const ::testing::TestParamInfo<GoodConfig>& param_info) {
                           return std::string(param_info.param.name);
                         });

TEST(ConfigNatTest, AnEmptySectionGetsEveryDefault) {
  Config c = parse_ok(with_nat("{}"));
  const NatConfig& nat = c.nat;
  EXPECT_TRUE(nat.enabled);
  EXPECT_TRUE(c.translated());
  EXPECT_TRUE(c.ports[0].translated());
  EXPECT_FALSE(c.ports[2].translated());
  EXPECT_EQ(nat.capacity, 65536u);
  EXPECT_THAT(nat.snat, IsEmpty());
  EXPECT_THAT(nat.dnat, IsEmpty());
  EXPECT_THAT(nat.nptv6, IsEmpty());
  EXPECT_EQ(nat.fragments.max_datagrams, 256u);
  EXPECT_EQ(nat.fragments.max_fragments, 16u);
  EXPECT_EQ(nat.fragments.timeout_ms, 30000u) << "Linux ipfrag_time";
  EXPECT_TRUE(nat.log_file.empty()) << "no event log";
  EXPECT_THAT(nat.proxy, IsEmpty());
}

TEST(ConfigNatTest, NoSectionNoNat) {
  Config c = parse_ok(R"({$EAL, "ports": [)" + port("lan", 0, R"("ipv4": ["10.1.0.1/24"])", kTracked) + "]}");
  EXPECT_FALSE(c.nat.enabled);
  EXPECT_FALSE(c.translated());
  EXPECT_FALSE(to_json(c).contains("nat"));
}

TEST(ConfigNatTest, WithoutRulesATrackedPortMaySkipTheNatStage) {
  Config c = parse_ok(R"({$EAL, "ports": [$LAN, )" + port("dmz", 2, R"("ipv4": ["10.4.0.1/24"], "conntrack_zone": 5)", kTracked) +
                      R"(], "nat": {"capacity": 1024}})");
  EXPECT_TRUE(c.ports[1].tracked());
  EXPECT_FALSE(c.ports[1].translated());
  EXPECT_EQ(c.ports[1].conntrack_zone, 5u) << "only ports with the nat stage share one conntrack zone";
}

TEST(ConfigNatTest, NatPortsMayShareAnyOneConntrackZone) {
  Config c = parse_ok(R"({$EAL, "ports": [)" + port("lan", 0, R"("ipv4": ["10.1.0.1/24"], "conntrack_zone": 9)", kTranslated) +
                      ", " + port("wan", 1, R"("ipv4": ["192.0.2.1/24"], "conntrack_zone": 9)", kTranslated) +
                      R"(], "nat": {"snat": [{"masquerade": true}]}})");
  EXPECT_EQ(c.ports[0].conntrack_zone, 9u);
  EXPECT_EQ(c.ports[1].conntrack_zone, 9u);
}

TEST(ConfigNatTest, HardwareSteeringWithOneWorkerIsAccepted) {
  Config c = parse_ok(R"({$EAL, "ports": [)" + port("lan", 0, R"("ipv4": ["10.1.0.1/24"], "steering": "hardware")", kTranslated) +
                      ", " + port("wan", 1, R"("ipv4": ["192.0.2.1/24"], "steering": "hardware")", kTranslated) +
                      R"(], "nat": {"snat": [{"masquerade": true}]}})");
  EXPECT_EQ(c.workers.size(), 1u);
  EXPECT_EQ(c.ports[0].steering, Steering::Hardware) << "one worker: nothing to steer";
}

TEST(ConfigNatTest, SoftwareSteeringWithSeveralWorkersIsAccepted) {
  Config c = parse_ok(R"({"eal": {"lcores": "0-2"}, "ports": [)" +
                      port("lan", 0, R"("ipv4": ["10.1.0.1/24"], "steering": "software")", kTranslated) + ", " +
                      port("wan", 1, R"("ipv4": ["192.0.2.1/24"])", kTranslated) +
                      R"(], "nat": {"snat": [{"masquerade": true}]}})");
  EXPECT_EQ(c.workers.size(), 2u);
}

TEST(ConfigNatTest, MasqueradeGetsEveryDefault) {
  Config c = parse_ok(with_snat(R"([{"masquerade": true}])"));
  ASSERT_EQ(c.nat.snat.size(), 1u);
  const SnatRule& r = c.nat.snat[0];
  EXPECT_EQ(r.name, "snat0") << "named after its index";
  EXPECT_TRUE(r.masquerade);
  EXPECT_THAT(r.pool, IsEmpty());
  EXPECT_THAT(r.from_zones, IsEmpty());
  EXPECT_THAT(r.to_zones, IsEmpty());
  EXPECT_THAT(r.in_ports, IsEmpty());
  EXPECT_THAT(r.out_ports, IsEmpty());
  EXPECT_THAT(r.src, IsEmpty());
  EXPECT_THAT(r.dst, IsEmpty());
  EXPECT_EQ(r.protocol, -1);
  EXPECT_EQ(r.port_first, 1024);
  EXPECT_EQ(r.port_last, 65535);
  EXPECT_EQ(r.mapping, NatMapping::EndpointDependent) << "Linux masquerade's behaviour";
  EXPECT_THAT(c.nat.proxy, IsEmpty()) << "a port's own address is answered for anyway";
}

TEST(ConfigNatTest, PoolsAreReadAsListsAndPrefixes) {
  Config c = parse_ok(with_snat(R"([
      {"name": "pool-a", "from": "inside", "to": "outside", "src": "10.1.0.0/25", "dst": ["0.0.0.0/0"],
       "protocol": "udp", "pool": ["192.0.2.100", "192.0.2.104/30"], "ports": "20000-29999",
       "mapping": "endpoint-independent"},
      {"in_port": "lan", "out_port": ["wan"], "protocol": 6, "pool": "203.0.113.0/24", "ports": 5000},
      {"src": "10.1.0.128/25", "pool": "100.64.0.0/22", "ports": "1-65535"}])"));
  ASSERT_EQ(c.nat.snat.size(), 3u);
  const SnatRule& a = c.nat.snat[0];
  EXPECT_EQ(a.name, "pool-a");
  EXPECT_THAT(a.from_zones, ElementsAre("inside"));
  EXPECT_THAT(a.to_zones, ElementsAre("outside"));
  EXPECT_THAT(a.src, ElementsAre(prefix("10.1.0.0/25")));
  EXPECT_THAT(a.dst, ElementsAre(prefix("0.0.0.0/0")));
  EXPECT_EQ(a.protocol, 17);
  EXPECT_FALSE(a.masquerade);
  EXPECT_THAT(a.pool, ElementsAre(prefix("192.0.2.100/32"), prefix("192.0.2.104/30"))) << "a bare address is one";
  EXPECT_EQ(a.port_first, 20000);
  EXPECT_EQ(a.port_last, 29999);
  EXPECT_EQ(a.mapping, NatMapping::EndpointIndependent);

  const SnatRule& b = c.nat.snat[1];
  EXPECT_EQ(b.name, "snat1");
  EXPECT_THAT(b.in_ports, ElementsAre("lan"));
  EXPECT_THAT(b.out_ports, ElementsAre("wan"));
  EXPECT_EQ(b.protocol, 6);
  EXPECT_THAT(b.pool, ElementsAre(prefix("203.0.113.0/24")));
  EXPECT_EQ(b.port_first, 5000) << "one port is a range of one";
  EXPECT_EQ(b.port_last, 5000);
  EXPECT_EQ(b.mapping, NatMapping::EndpointDependent);

  EXPECT_EQ(c.nat.snat[2].port_first, 1);
  EXPECT_THAT(c.nat.snat[2].pool, ElementsAre(prefix("100.64.0.0/22")));
}

TEST(ConfigNatTest, PortForwardsAreRead) {
  Config c = parse_ok(with_dnat(R"([
      {"name": "web", "from": "outside", "src": "203.0.113.0/24", "dst": "192.0.2.10", "protocol": "tcp",
       "port": "8000-8009", "to_address": "10.1.0.10", "to_port": 80, "hairpin": false},
      {"in_port": "wan", "protocol": "udp", "port": 53, "to_address": "10.1.0.53"},
      {"protocol": 6, "port": "65000-65535", "to_address": "10.1.0.54", "to_port": 1}])"));
  ASSERT_EQ(c.nat.dnat.size(), 3u);
  const DnatRule& web = c.nat.dnat[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_THAT(web.from_zones, ElementsAre("outside"));
  EXPECT_THAT(web.in_ports, IsEmpty());
  EXPECT_THAT(web.src, ElementsAre(prefix("203.0.113.0/24")));
  EXPECT_EQ(web.dst, ip("192.0.2.10"));
  EXPECT_EQ(web.protocol, 6);
  EXPECT_EQ(web.port_first, 8000);
  EXPECT_EQ(web.port_last, 8009);
  EXPECT_EQ(web.to_address, ip("10.1.0.10"));
  EXPECT_EQ(web.to_port, 80) << "8000..8009 -> 80..89";
  EXPECT_FALSE(web.hairpin);

  const DnatRule& dns = c.nat.dnat[1];
  EXPECT_EQ(dns.name, "dnat1");
  EXPECT_THAT(dns.in_ports, ElementsAre("wan"));
  EXPECT_FALSE(dns.dst.is_set()) << "unset: the ingress port's own addresses";
  EXPECT_EQ(dns.protocol, 17);
  EXPECT_EQ(dns.port_first, 53);
  EXPECT_EQ(dns.port_last, 53);
  EXPECT_EQ(dns.to_port, 0) << "0: the port unchanged";
  EXPECT_TRUE(dns.hairpin) << "hairpin by default";

  EXPECT_EQ(c.nat.dnat[2].to_port, 1) << "1 + 535 ports ends at 536: within range";
}

TEST(ConfigNatTest, PortForwardsMayShareAPortOnDifferentAddressesOrProtocols) {
  Config c = parse_ok(with_dnat(R"([
      {"in_port": "wan", "protocol": "tcp", "port": 80, "to_address": "10.1.0.10"},
      {"dst": "192.0.2.10", "protocol": "tcp", "port": 80, "to_address": "10.1.0.11"},
      {"in_port": "lan", "protocol": "tcp", "port": 80, "to_address": "10.1.0.12"},
      {"in_port": "wan", "protocol": "udp", "port": 80, "to_address": "10.1.0.13"},
      {"in_port": "wan", "protocol": "tcp", "port": 81, "to_address": "10.1.0.14"}])"));
  EXPECT_EQ(c.nat.dnat.size(), 5u);
}

TEST(ConfigNatTest, Nptv6MappingsAreRead) {
  Config c = parse_ok(with_nptv6(R"([
      {"name": "site", "port": "wan", "inside": "fd00:1::/48", "outside": "2001:db8:1::/48"},
      {"port": "wan", "inside": "fd00:2::/64", "outside": "2001:db8:2::/64"},
      {"port": "lan", "inside": "fd00:8000::/33", "outside": "2001:db8:8000::/33"}])"));
  ASSERT_EQ(c.nat.nptv6.size(), 3u);
  EXPECT_EQ(c.nat.nptv6[0].name, "site");
  EXPECT_EQ(c.nat.nptv6[0].port, "wan");
  EXPECT_EQ(c.nat.nptv6[0].inside, prefix("fd00:1::/48"));
  EXPECT_EQ(c.nat.nptv6[0].outside, prefix("2001:db8:1::/48"));
  EXPECT_EQ(c.nat.nptv6[1].name, "nptv61");
  EXPECT_EQ(c.nat.nptv6[1].inside, prefix("fd00:2::/64")) << "the longest prefix NPTv6 takes";
  EXPECT_EQ(c.nat.nptv6[2].port, "lan");
}

TEST(ConfigNatTest, FragmentsCapacityAndLogAreRead) {
  Config c = parse_ok(with_nat(R"({"capacity": 1024,
      "fragments": {"max_datagrams": 1, "max_fragments": 64, "timeout_ms": 100},
      "log": {"file": "/var/log/sluice/nat.log"}})"));
  EXPECT_EQ(c.nat.capacity, 1024u);
  EXPECT_EQ(c.nat.fragments.max_datagrams, 1u);
  EXPECT_EQ(c.nat.fragments.max_fragments, 64u);
  EXPECT_EQ(c.nat.fragments.timeout_ms, 100u);
  EXPECT_EQ(c.nat.log_file, "/var/log/sluice/nat.log");

  Config top = parse_ok(with_nat(R"({"capacity": 16777216,
      "fragments": {"max_datagrams": 65536, "max_fragments": 2, "timeout_ms": 120000}})"));
  EXPECT_EQ(top.nat.capacity, 16777216u);
  EXPECT_EQ(top.nat.fragments.max_datagrams, 65536u);
  EXPECT_EQ(top.nat.fragments.max_fragments, 2u);
  EXPECT_EQ(top.nat.fragments.timeout_ms, 120000u);

  Config some = parse_ok(with_nat(R"({"fragments": {"timeout_ms": 5000}})"));
  EXPECT_EQ(some.nat.fragments.timeout_ms, 5000u);
  EXPECT_EQ(some.nat.fragments.max_datagrams, 256u) << "keys not written keep their default";
}

TEST(ConfigNatTest, OneMappingBehaviourAnAddressMayBeWrittenTwice) {
  Config c = parse_ok(with_snat(R"([
      {"src": "10.1.0.0/25", "out_port": "wan", "masquerade": true, "mapping": "endpoint-independent"},
      {"src": "10.1.0.128/25", "out_port": "wan", "masquerade": true, "mapping": "endpoint-independent"},
      {"src": "10.9.0.0/16", "pool": "192.0.2.1", "mapping": "endpoint-independent"}])"));
  EXPECT_EQ(c.nat.snat.size(), 3u);
}

TEST(ConfigNatTest, AMasqueradedOrForwardedAddressInAPoolCountsOnce) {
  // 4096 pool addresses, wan's own (masqueraded, forwarded) among them: 4096 outside addresses.
  Config c = parse_ok(with_nat(R"({"snat": [{"out_port": "wan", "masquerade": true}, {"src": "10.1.0.0/25", "pool": "192.0.0.0/20"}],
      "dnat": [{"in_port": "wan", "protocol": "tcp", "port": 80, "to_address": "10.1.0.10"}]})"));
  EXPECT_EQ(c.nat.snat.size(), 2u);
}

// nat.proxy: the addresses Sluice answers ARP for though no port has them.
TEST(ConfigNatTest, PoolAddressesAreAnsweredOnThePortsNamedForThem) {
  Config c = parse_ok(R"({$EAL, "ports": [$LAN, $WAN, $ISP2], "nat": {"snat": [
      {"src": "10.1.0.0/26", "out_port": "isp2", "pool": "203.0.113.0/30"},
      {"src": "10.1.0.64/26", "to": "outside", "pool": "203.0.113.8/31"}]}})");
  EXPECT_THAT(c.nat.proxy,
              ElementsAre(proxy("isp2", "203.0.113.0"), proxy("isp2", "203.0.113.1"), proxy("isp2", "203.0.113.2"),
                          proxy("isp2", "203.0.113.3"), proxy("wan", "203.0.113.8"), proxy("isp2", "203.0.113.8"),
                          proxy("wan", "203.0.113.9"), proxy("isp2", "203.0.113.9")))
      << "named by port or by zone, even outside the port's subnet";
}

TEST(ConfigNatTest, PoolAddressesWithoutNamedPortsAreAnsweredWhereTheirSubnetIs) {
  Config c = parse_ok(R"({$EAL, "ports": [$LAN, $WAN, $ISP2], "nat": {"snat": [
      {"src": "10.1.0.0/26", "pool": ["192.0.2.128/31", "198.51.100.9"]},
      {"src": "10.1.0.64/26", "pool": "203.0.113.0/30"}]}})");
  EXPECT_THAT(c.nat.proxy,
              ElementsAre(proxy("wan", "192.0.2.128"), proxy("wan", "192.0.2.129"), proxy("isp2", "198.51.100.9")))
      << "203.0.113.0/30 is in no port's subnet: it must be routed to Sluice";
}

TEST(ConfigNatTest, OwnAndLargePoolAddressesAreNotProxied) {
  Config c = parse_ok(with_snat(R"([
      {"src": "10.1.0.0/26", "out_port": "wan", "pool": ["192.0.2.1", "192.0.2.2"]},
      {"src": "10.1.0.64/26", "out_port": "wan", "pool": "100.64.0.0/23"},
      {"src": "10.1.0.128/26", "out_port": "wan", "pool": "100.64.4.0/24"}])"));
  ASSERT_EQ(c.nat.proxy.size(), 1u + 256u) << "a /23 (512 addresses) is routed to Sluice, a /24 still answered";
  EXPECT_EQ(c.nat.proxy[0], proxy("wan", "192.0.2.2")) << "192.0.2.1 is wan's own";
  EXPECT_EQ(c.nat.proxy[1], proxy("wan", "100.64.4.0"));
  EXPECT_EQ(c.nat.proxy[256], proxy("wan", "100.64.4.255"));
}

TEST(ConfigNatTest, PortForwardAddressesAreProxiedOnce) {
  Config c = parse_ok(R"({$EAL, "ports": [$LAN, $WAN, $ISP2], "nat": {"dnat": [
      {"dst": "192.0.2.10", "protocol": "tcp", "port": 80, "to_address": "10.1.0.10"},
      {"dst": "192.0.2.10", "protocol": "tcp", "port": 443, "to_address": "10.1.0.10"},
      {"in_port": "isp2", "dst": "203.0.113.9", "protocol": "udp", "port": 53, "to_address": "10.1.0.53"},
      {"dst": "198.51.100.1", "protocol": "tcp", "port": 22, "to_address": "10.1.0.22"},
      {"in_port": "wan", "protocol": "tcp", "port": 8080, "to_address": "10.1.0.80"},
      {"dst": "203.0.113.77", "protocol": "tcp", "port": 25, "to_address": "10.1.0.25"}]}})");
  EXPECT_THAT(c.nat.proxy, ElementsAre(proxy("wan", "192.0.2.10"), proxy("isp2", "203.0.113.9")))
      << "198.51.100.1 is isp2's own; no dst: the port's own; 203.0.113.77: routed to Sluice";
}

TEST(ConfigNatTest, ProxiedAddressesOfPoolsAndForwardsAreListedOncePerPort) {
  Config c = parse_ok(with_nat(R"({"snat": [{"out_port": "wan", "pool": "192.0.2.10"}],
      "dnat": [{"dst": "192.0.2.10", "protocol": "tcp", "port": 80, "to_address": "10.1.0.10"}]})"));
  EXPECT_THAT(c.nat.proxy, ElementsAre(proxy("wan", "192.0.2.10")));
}

TEST(ConfigNatTest, EffectiveConfigShowsTheSectionAsResolved) {
  nlohmann::json j = to_json(parse_ok(with_nat(R"({
      "snat": [{"from": "inside", "masquerade": true},
               {"name": "pool", "to": ["outside"], "in_port": "lan", "out_port": "wan", "src": "10.1.0.0/24",
                "dst": "203.0.113.0/24", "protocol": 17, "pool": ["198.51.100.8/30", "198.51.100.20"], "ports": 5000,
                "mapping": "endpoint-independent"}],
      "dnat": [{"in_port": "wan", "protocol": "tcp", "port": 8080, "to_address": "10.1.0.10", "to_port": 80},
               {"name": "games", "from": "outside", "src": "203.0.113.0/24", "dst": "192.0.2.10", "protocol": "udp",
                "port": "27000-27015", "to_address": "10.1.0.11", "hairpin": false}],
      "nptv6": [{"port": "wan", "inside": "fd00:1::/48", "outside": "2001:db8:1::/48"}],
      "log": {"file": "/var/log/sluice/nat.log"}})")));
  EXPECT_EQ(j["nat"], nlohmann::json::parse(R"({
      "capacity": 65536,
      "snat": [
        {"name": "snat0", "from": ["inside"], "masquerade": true, "ports": "1024-65535", "mapping": "endpoint-dependent"},
        {"name": "pool", "to": ["outside"], "in_port": ["lan"], "out_port": ["wan"], "src": ["10.1.0.0/24"],
         "dst": ["203.0.113.0/24"], "protocol": "udp", "pool": ["198.51.100.8/30", "198.51.100.20/32"],
         "ports": "5000-5000", "mapping": "endpoint-independent"}],
      "dnat": [
        {"name": "dnat0", "in_port": ["wan"], "protocol": "tcp", "port": 8080, "to_address": "10.1.0.10",
         "to_port": 80, "hairpin": true},
        {"name": "games", "from": ["outside"], "src": ["203.0.113.0/24"], "dst": "192.0.2.10", "protocol": "udp",
         "port": "27000-27015", "to_address": "10.1.0.11", "hairpin": false}],
      "nptv6": [{"name": "nptv60", "port": "wan", "inside": "fd00:1::/48", "outside": "2001:db8:1::/48"}],
      "fragments": {"max_datagrams": 256, "max_fragments": 16, "timeout_ms": 30000},
      "log": {"file": "/var/log/sluice/nat.log"}})"));
  EXPECT_EQ(j["ports"][0]["pipeline"], nlohmann::json::parse(
                                           R"([{"stage": "parse"}, {"stage": "conntrack"}, {"stage": "nat"}, {"stage": "route"}])"))
      << "reassemble, nptv6 and nat_src are the builder's, never written";
}

TEST(ConfigNatTest, EffectiveConfigOfAnEmptySectionShowsEveryDefault) {
  nlohmann::json j = to_json(parse_ok(with_nat("{}")));
  EXPECT_EQ(j["nat"], nlohmann::json::parse(R"({
      "capacity": 65536, "snat": [], "dnat": [], "nptv6": [],
      "fragments": {"max_datagrams": 256, "max_fragments": 16, "timeout_ms": 30000}})"))
      << "no log file: no \"log\"";
}

// The shipped example: a home/site gateway (also checked by
// tests/integration/test_check_config.sh through the CLI, as every conf/*.json).
TEST(ConfigNatTest, TheNatGatewayExampleLoadsAndRoundTrips) {
  std::string source = __FILE__;  // .../tests/unit/config_nat_test.cpp, often relative to the build dir
  std::string root = source.substr(0, source.rfind("tests/unit/"));
  std::string found;
  for (const std::string& candidate : {root, std::string(), std::string("../")}) {
    std::string path = candidate + "conf/nat-gateway-af_packet.json";
    if (std::ifstream(path)) {
      found = path;
      break;
    }
  }
  if (found.empty()) GTEST_SKIP() << "conf/nat-gateway-af_packet.json not found from " << source;
  ParseResult result = load_config_file(found);
  ASSERT_TRUE(result.ok()) << ::testing::PrintToString(result.errors);
  const Config& c = *result.config;
  EXPECT_TRUE(c.translated());
  EXPECT_TRUE(c.firewall.enabled);
  ASSERT_EQ(c.nat.snat.size(), 1u);
  EXPECT_TRUE(c.nat.snat[0].masquerade);
  ASSERT_EQ(c.nat.dnat.size(), 1u);
  EXPECT_EQ(c.nat.dnat[0].dst, ip("192.0.2.1"));
  EXPECT_TRUE(c.nat.dnat[0].hairpin);
  ASSERT_EQ(c.nat.nptv6.size(), 1u);
  EXPECT_EQ(c.nat.nptv6[0].port, "wan");
  EXPECT_EQ(c.nat.log_file, "/var/log/sluice/nat.log");
  EXPECT_THAT(c.nat.proxy, IsEmpty()) << "the forward listens on wan's own address";
  nlohmann::json first = to_json(c);
  ParseResult again = parse_config_text(first.dump(2), "effective.json");
  ASSERT_TRUE(again.ok()) << ::testing::PrintToString(again.errors);
  EXPECT_EQ(to_json(*again.config), first);
}

}  // namespace
}  // namespace sluice::config
