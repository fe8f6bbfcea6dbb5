// The `services` section's reader (lib/config/services.cpp): what it reads, each error
// with its JSON path, the checks across services and against the ports, and the JSON it
// writes back. Not yet reachable from a config file (the load-balancer stage that runs it
// is still to come), so the reader is driven directly.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/sections.h"

namespace sluice::config {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

struct Read {
  std::vector<LbService> services;
  std::vector<std::string> errors;
};

Read read(const std::string& services_json) {
  Read out;
  const detail::json top = detail::json::parse(R"({"services": )" + services_json + "}");
  detail::ObjectReader reader(top, "", out.errors);
  detail::read_services(reader, out.services, out.errors);
  return out;
}

// One service around these members (written after the name).
std::string service(const std::string& members) { return R"([{"name": "web", )" + members + "}]"; }
const char* const kV4 =
    R"("vip": "192.0.2.10", "protocol": "tcp", "port": 80, "mode": "dnat", "backends": [{"address": "10.3.0.11"}, {"address": "10.3.0.12", "weight": 2}])";

TEST(ConfigServicesTest, ReadsAServiceWithItsDefaults) {
  const Read r = read(service(kV4));
  ASSERT_THAT(r.errors, ElementsAre());
  ASSERT_EQ(r.services.size(), 1u);
  const LbService& s = r.services[0];
  EXPECT_EQ(s.name, "web");
  EXPECT_EQ(s.vip.str(), "192.0.2.10");
  EXPECT_EQ(s.protocol, 6);
  EXPECT_EQ(s.port, 80);
  EXPECT_EQ(s.mode, LbMode::Dnat);
  EXPECT_EQ(s.scheduler, LbScheduler::Maglev);
  EXPECT_EQ(s.table_size, 65537u);
  EXPECT_EQ(s.on_backend_removed, LbRemoval::Drain);
  ASSERT_EQ(s.backends.size(), 2u);
  EXPECT_EQ(s.backends[0].address.str(), "10.3.0.11");
  EXPECT_EQ(s.backends[0].port, 0) << "the VIP's port";
  EXPECT_EQ(s.backends[0].weight, 1u);
  EXPECT_EQ(s.backends[1].weight, 2u);
  EXPECT_EQ(s.health.type, LbProbe::None);
  EXPECT_EQ(s.health.interval_ms, 2000u);
}

TEST(ConfigServicesTest, ReadsFullNatIpv6AllPortsAndHealth) {
  const Read r = read(R"([
    {"name": "api", "vip": "192.0.2.20", "protocol": "tcp", "port": 443, "mode": "fullnat",
     "local_addresses": ["10.3.0.200", "10.3.1.0/30"], "ports": "2000-60000", "scheduler": "least-connections",
     "on_backend_removed": "drop",
     "backends": [{"name": "a", "address": "10.3.0.11", "port": 8443}, {"name": "b", "address": "10.3.0.12", "port": 8443, "weight": 0}],
     "health": {"type": "tcp", "interval_ms": 500, "timeout_ms": 200, "rise": 1, "fall": 2}},
    {"name": "dns6", "vip": "2001:db8::53", "protocol": "udp", "port": "all", "mode": "ipip", "table_size": 251,
     "backends": [{"address": "2001:db8:1::11"}], "health": {"type": "icmp"}}])");
  ASSERT_THAT(r.errors, ElementsAre());
  ASSERT_EQ(r.services.size(), 2u);
  const LbService& api = r.services[0];
  EXPECT_EQ(api.mode, LbMode::FullNat);
  EXPECT_EQ(api.scheduler, LbScheduler::LeastConnections);
  EXPECT_EQ(api.on_backend_removed, LbRemoval::Drop);
  ASSERT_EQ(api.local_addresses.size(), 2u);
  EXPECT_EQ(api.local_addresses[1].str(), "10.3.1.0/30");
  EXPECT_EQ(api.port_first, 2000);
  EXPECT_EQ(api.port_last, 60000);
  EXPECT_EQ(api.backends[1].name, "b");
  EXPECT_EQ(api.backends[1].port, 8443);
  EXPECT_EQ(api.backends[1].weight, 0u);
  EXPECT_EQ(api.health.type, LbProbe::Tcp);
  EXPECT_EQ(api.health.timeout_ms, 200u);
  EXPECT_EQ(api.health.fall, 2u);
  const LbService& dns = r.services[1];
  EXPECT_EQ(dns.vip.family, 6);
  EXPECT_EQ(dns.protocol, 17);
  EXPECT_EQ(dns.port, 0) << "all";
  EXPECT_EQ(dns.mode, LbMode::Ipip);
  EXPECT_EQ(dns.table_size, 251u);
  EXPECT_EQ(dns.health.type, LbProbe::Icmp);
}

struct Bad {
  const char* name;
  std::string services;
  std::vector<std::string> errors;
};
void PrintTo(const Bad& b, std::ostream* os) { *os << b.name; }

class BadServicesTest : public ::testing::TestWithParam<Bad> {};

TEST_P(BadServicesTest, ReportsExactlyTheseErrors) {
  const Bad& b = GetParam();
  EXPECT_THAT(read(b.services).errors, ElementsAreArray(b.errors)) << b.services;
}

const std::string kBackend = R"("backends": [{"address": "10.3.0.11"}])";
const std::string kWeb = R"("vip": "192.0.2.10", "protocol": "tcp", "port": 80, "mode": "dnat", )";

const Bad kBad[] = {
    {"NotAnArray", R"({"name": "web"})", {"services: must be an array of services, got object"}},
    {"MissingKeys",
     R"([{"name": "web"}])",
     {"services[0]: missing required key 'vip'", "services[0]: missing required key 'protocol'",
      "services[0]: missing required key 'port'", "services[0]: missing required key 'mode'",
      "services[0]: missing required key 'backends'"}},
    {"UnknownKey",
     service(kWeb + kBackend + R"(, "weight": 3)"),
     {"services[0].weight: unknown key (expected one of: name, vip, protocol, port, mode, scheduler, table_size, "
      "local_addresses, ports, on_backend_removed, backends, health)"}},
    {"BadVip",
     service(R"("vip": "224.0.0.1", "protocol": "tcp", "port": 80, "mode": "dnat", )" + kBackend),
     {"services[0].vip: must be a unicast address, got '224.0.0.1'"}},
    {"VipNotAnAddress",
     service(R"("vip": "web.example", "protocol": "tcp", "port": 80, "mode": "dnat", )" + kBackend),
     {"services[0].vip: must be an IPv4 or IPv6 address, got 'web.example'"}},
    {"Icmp",
     service(R"("vip": "192.0.2.10", "protocol": "icmp", "port": 80, "mode": "dnat", )" + kBackend),
     {"services[0].protocol: a service is \"tcp\" or \"udp\", got \"icmp\""}},
    {"PortZero",
     service(R"("vip": "192.0.2.10", "protocol": "tcp", "port": 0, "mode": "dnat", )" + kBackend),
     {"services[0].port: must be a port (1..65535) or \"all\", got 0"}},
    {"BadMode",
     service(R"("vip": "192.0.2.10", "protocol": "tcp", "port": 80, "mode": "nat", )" + kBackend),
     {"services[0].mode: must be one of fullnat, dnat, ipip, got 'nat'"}},
    {"TableNotPrime",
     service(kWeb + kBackend + R"(, "table_size": 65536)"),
     {"services[0].table_size: must be a prime (65537, 131071, 262139, ...), got 65536"}},
    {"TableForRoundRobin",
     service(kWeb + kBackend + R"(, "scheduler": "round-robin", "table_size": 251)"),
     {"services[0].table_size: is the Maglev table's: the service's scheduler is round-robin"}},
    {"FullNatWithoutLocalAddresses",
     service(R"("vip": "192.0.2.10", "protocol": "tcp", "port": 80, "mode": "fullnat", )" + kBackend),
     {"services[0].local_addresses: fullnat needs the addresses to translate sources to"}},
    {"LocalAddressesOutsideFullNat",
     service(kWeb + kBackend + R"(, "local_addresses": ["10.3.0.200"])"),
     {"services[0].local_addresses: only fullnat translates the source"}},
    {"LocalAddressOfTheOtherFamily",
     service(
         R"("vip": "192.0.2.10", "protocol": "tcp", "port": 80, "mode": "fullnat", "local_addresses": ["fd00::1"], )" +
         kBackend),
     {"services[0].local_addresses: fd00::1/128 is IPv6 and the VIP IPv4: translation between families is not "
      "supported"}},
    {"EmptyBackends",
     service(kWeb + R"("backends": [])"),
     {"services[0].backends: must be a non-empty array of backends, got []"}},
    {"BackendOfTheOtherFamily",
     service(kWeb + R"("backends": [{"address": "fd00::11"}])"),
     {"services[0].backends[0].address: fd00::11 is IPv6 and the VIP IPv4: a backend has the VIP's family"}},
    {"BackendTwice",
     service(kWeb + R"("backends": [{"address": "10.3.0.11", "port": 80}, {"address": "10.3.0.11"}])"),
     {"services[0].backends[1]: 10.3.0.11 port 80 is listed twice"}},
    {"BackendNameTwice",
     service(kWeb + R"("backends": [{"name": "a", "address": "10.3.0.11"}, {"name": "a", "address": "10.3.0.12"}])"),
     {"services[0].backends[1].name: duplicate name 'a' (also backends[0])"}},
    {"WeightTooHigh",
     service(kWeb + R"("backends": [{"address": "10.3.0.11", "weight": 70000}])"),
     {"services[0].backends[0].weight: must be 0..65535, got 70000"}},
    {"EveryWeightZero",
     service(kWeb + R"("backends": [{"address": "10.3.0.11", "weight": 0}])"),
     {"services[0].backends: every weight is 0: the service would take no connection"}},
    {"BackendPortOnAllPorts",
     service(
         R"("vip": "192.0.2.10", "protocol": "tcp", "port": "all", "mode": "dnat", "backends": [{"address": "10.3.0.11", "port": 8080}])"),
     {"services[0].backends[0].port: the service takes every port (\"all\"): a backend keeps the client's port"}},
    {"IpipBackendOnAnotherPort",
     service(
         R"("vip": "192.0.2.10", "protocol": "tcp", "port": 80, "mode": "ipip", "backends": [{"address": "10.3.0.11", "port": 8080}])"),
     {"services[0].backends[0].port: ipip delivers the packet as sent: the backend answers on the VIP's port 80, got "
      "8080"}},
    {"TimeoutOverInterval",
     service(kWeb + kBackend + R"(, "health": {"type": "tcp", "interval_ms": 500, "timeout_ms": 600})"),
     {"services[0].health.timeout_ms: must not exceed interval_ms (500): one probe at a time per backend, got 600"}},
    {"TcpProbeOnUdp",
     service(R"("vip": "192.0.2.10", "protocol": "udp", "port": 53, "mode": "dnat", )" + kBackend +
             R"(, "health": {"type": "tcp"})"),
     {"services[0].health.type: a tcp probe checks a TCP service (use icmp or none for udp)"}},
    {"TcpProbeWithoutAPort",
     service(R"("vip": "192.0.2.10", "protocol": "tcp", "port": "all", "mode": "dnat", )" + kBackend +
             R"(, "health": {"type": "tcp"})"),
     {"services[0].health.port: the service takes every port: a tcp probe needs a port"}},
    {"SmallPoolSchedulerOnALargePool",
     service(kWeb + R"("scheduler": "round-robin", "backends": [)" +
             [] {
               std::string list;
               for (int i = 1; i <= 65; ++i)
                 list += std::string(i > 1 ? ", " : "") + R"({"address": "10.3.1.)" + std::to_string(i) + R"("})";
               return list;
             }() +
             "]"),
     {"services[0].scheduler: round-robin is for pools of at most 64 backends (maglev spreads larger ones), got 65"}},
    {"DuplicateName",
     "[{\"name\": \"web\", " + kWeb + kBackend + "}, {\"name\": \"web\", " +
         R"("vip": "192.0.2.11", "protocol": "tcp", "port": 80, "mode": "dnat", )" + kBackend + "}]",
     {"services[1].name: duplicate name 'web' (also services[0])"}},
};

INSTANTIATE_TEST_SUITE_P(Services, BadServicesTest, ::testing::ValuesIn(kBad),
                         [](const ::testing::TestParamInfo<Bad>& info) { return std::string(info.param.name); });

TEST(ConfigServicesTest, OneServiceAVipProtocolAndPortAndNoVipOnAPortsAddress) {
  Config config;
  PortConfig wan;
  wan.name = "wan";
  wan.ipv4.push_back(*net::parse_prefix("192.0.2.1/24"));
  wan.pipeline = {{"parse", ""}, {"conntrack", ""}, {"lb", ""}, {"nat", ""}, {"route", ""}};
  config.ports.push_back(wan);
  const Read r = read(
      "[{\"name\": \"a\", " + kWeb + kBackend + "}, " +
      R"({"name": "b", "vip": "192.0.2.10", "protocol": "tcp", "port": "all", "mode": "dnat", )" + kBackend + "}, " +
      R"({"name": "c", "vip": "192.0.2.10", "protocol": "udp", "port": 80, "mode": "dnat", )" + kBackend + "}, " +
      R"({"name": "d", "vip": "192.0.2.1", "protocol": "tcp", "port": 80, "mode": "dnat", )" + kBackend + "}]");
  ASSERT_THAT(r.errors, ElementsAre());
  config.services = r.services;
  std::vector<std::string> errors;
  detail::resolve_services(config, errors);
  EXPECT_THAT(errors, ElementsAre("services[1]: 192.0.2.10 tcp (every port) is already services[0] ('a')",
                                  "services[3].vip: 192.0.2.1 is port 'wan''s own address: a VIP is an address of "
                                  "its own"));
}

TEST(ConfigServicesTest, Ipv6ServiceIsIpipOnlyAndItsVipOutsideThePortsSubnets) {
  Config config;
  PortConfig wan;
  wan.name = "wan";
  wan.ipv4.push_back(*net::parse_prefix("192.0.2.1/24"));
  wan.ipv6.push_back(*net::parse_prefix("2001:db8:0:1::1/64"));
  wan.pipeline = {{"parse", ""}, {"conntrack", ""}, {"lb", ""}, {"nat", ""}, {"route", ""}};
  config.ports.push_back(wan);
  const std::string b6 = R"("backends": [{"address": "2001:db8:1::11"}])";
  const Read r = read(
      R"([{"name": "a", "vip": "2001:db8::10", "protocol": "tcp", "port": 80, "mode": "ipip", )" + b6 + "}, " +
      R"({"name": "b", "vip": "2001:db8::11", "protocol": "tcp", "port": 80, "mode": "dnat", )" + b6 + "}, " +
      R"({"name": "c", "vip": "2001:db8::12", "protocol": "tcp", "port": 80, "mode": "fullnat", )"
      R"("local_addresses": ["2001:db8:1::200"], )" + b6 + "}, " +
      R"({"name": "d", "vip": "2001:db8:0:1::99", "protocol": "udp", "port": 53, "mode": "ipip", )" + b6 + "}]");
  ASSERT_THAT(r.errors, ElementsAre());
  config.services = r.services;
  std::vector<std::string> errors;
  detail::resolve_services(config, errors);
  EXPECT_THAT(errors,
              ElementsAre("services[1].mode: an IPv6 service (2001:db8::11) is ipip only: dnat translates addresses, "
                          "and NAT translates IPv4 (use mode ipip, or an IPv4 VIP)",
                          "services[2].mode: an IPv6 service (2001:db8::12) is ipip only: fullnat translates "
                          "addresses, and NAT translates IPv4 (use mode ipip, or an IPv4 VIP)",
                          "services[3].vip: 2001:db8:0:1::99 is in port wan's subnet 2001:db8:0:1::1/64: Sluice does "
                          "not answer neighbour solicitations for an IPv6 VIP; use an address outside the ports' "
                          "subnets, routed to Sluice"));
}

TEST(ConfigServicesTest, WrittenBackTheServicesReadTheSame) {
  const Read first = read(R"([
    {"name": "api", "vip": "192.0.2.20", "protocol": "tcp", "port": 443, "mode": "fullnat",
     "local_addresses": ["10.3.0.200"], "backends": [{"name": "a", "address": "10.3.0.11", "port": 8443, "weight": 3}],
     "health": {"type": "tcp", "port": 8080}},
    {"name": "dns6", "vip": "2001:db8::53", "protocol": "udp", "port": "all", "mode": "ipip",
     "backends": [{"address": "2001:db8:1::11"}]}])");
  ASSERT_THAT(first.errors, ElementsAre());
  const detail::json written = detail::services_json(first.services);
  const Read again = read(written.dump());
  ASSERT_THAT(again.errors, ElementsAre()) << written.dump(2);
  EXPECT_EQ(detail::services_json(again.services), written);
  EXPECT_EQ(written[0]["ports"], "1024-65535");
  EXPECT_EQ(written[1]["port"], "all");
}

}  // namespace
}  // namespace sluice::config
