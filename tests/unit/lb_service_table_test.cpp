// The load balancer's published table and one worker's scheduler (lib/lb/service_table.h,
// lib/lb/lb_context.h), built from config::LbService lists by hand: lookup by VIP,
// protocol and port with the every-port fallback, stable service and backend slots
// across builds, down and weight-0 backends out of Maglev's entries and the small-pool
// candidates, and what each scheduler picks (round-robin's exact weighted cycle, least
// connections per weight, Maglev as its table says), with the active gauge a removed
// pair gives back.
#include <arpa/inet.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "flow/nat_entry.h"
#include "lb/lb_context.h"
#include "lb/service_table.h"
#include "net/headers.h"

namespace sluice::lb {
namespace {

using config::LbScheduler;

constexpr uint8_t kTcp = net::kIpProtoTcp, kUdp = net::kIpProtoUdp;

net::IpAddr ip(const char* text) { return *net::parse_ip(text); }
uint32_t raw(const char* text) { return htonl(ip(text).v4_host()); }  // network order, as packets carry it
uint16_t be(uint16_t port) { return htons(port); }

config::LbBackend backend(const char* address, uint16_t port = 0, unsigned weight = 1, const char* name = "") {
  config::LbBackend b;
  b.name = name;
  b.address = ip(address);
  b.port = port;
  b.weight = weight;
  return b;
}

config::LbService service(const char* name, const char* vip, int protocol, uint16_t port,
                          std::vector<config::LbBackend> backends, LbScheduler scheduler = LbScheduler::Maglev) {
  config::LbService s;
  s.name = name;
  s.vip = ip(vip);
  s.protocol = protocol;
  s.port = port;
  s.mode = config::LbMode::Dnat;
  s.scheduler = scheduler;
  s.table_size = 251;  // small and prime: the tests read every entry
  s.backends = std::move(backends);
  return s;
}

std::unique_ptr<ServiceTable> build(const std::vector<config::LbService>& services, SlotRegistry& registry,
                                    const ServiceTable::UpFn& up = nullptr) {
  std::string error;
  auto table = ServiceTable::build(services, registry, up, error);
  EXPECT_NE(table, nullptr) << error;
  return table;
}

const Service& by_name(const ServiceTable& t, const std::string& name) {
  for (const auto& s : t.services())
    if (s.name == name) return s;
  ADD_FAILURE() << "no service " << name;
  return t.services().front();
}

// The backend indices Maglev's table holds.
std::set<uint16_t> maglev_backends(const Service& s) {
  return std::set<uint16_t>(s.maglev.entries().begin(), s.maglev.entries().end());
}

// ---- ServiceTable ----

TEST(ServiceTableTest, FindsAServiceByVipProtocolAndPortAndFallsBackToItsEveryPortService) {
  SlotRegistry registry;
  auto t = build({service("web", "192.0.2.10", kTcp, 80, {backend("10.3.0.11")}),
                  service("web-udp", "192.0.2.10", kUdp, 80, {backend("10.3.0.12")}),
                  service("web-tls", "192.0.2.10", kTcp, 443, {backend("10.3.0.13")}),
                  service("any-tcp", "192.0.2.20", kTcp, 0, {backend("10.3.0.21")}),
                  service("dns", "192.0.2.20", kUdp, 53, {backend("10.3.0.22")})},
                 registry);
  ASSERT_NE(t, nullptr);
  auto name_of = [&](const char* vip, uint8_t proto, uint16_t port) -> std::string {
    const int s = t->find(raw(vip), proto, be(port));
    return s < 0 ? "-" : t->service(static_cast<uint16_t>(s)).name;
  };
  EXPECT_EQ(name_of("192.0.2.10", kTcp, 80), "web");
  EXPECT_EQ(name_of("192.0.2.10", kUdp, 80), "web-udp") << "the protocol is part of the key";
  EXPECT_EQ(name_of("192.0.2.10", kTcp, 443), "web-tls");
  EXPECT_EQ(name_of("192.0.2.10", kTcp, 81), "-") << "no service of every port on this VIP";
  EXPECT_EQ(name_of("192.0.2.20", kTcp, 1), "any-tcp") << "every port";
  EXPECT_EQ(name_of("192.0.2.20", kTcp, 65535), "any-tcp");
  EXPECT_EQ(name_of("192.0.2.20", kUdp, 53), "dns");
  EXPECT_EQ(name_of("192.0.2.20", kUdp, 54), "-") << "the every-port service is TCP's only";
  EXPECT_EQ(name_of("192.0.2.11", kTcp, 80), "-") << "not a VIP";
  EXPECT_TRUE(t->is_vip(raw("192.0.2.20")));
  EXPECT_FALSE(t->is_vip(raw("192.0.2.11")));

  // Fields the data path reads are in network order.
  const Service& web = by_name(*t, "web");
  EXPECT_EQ(web.vip, raw("192.0.2.10"));
  EXPECT_EQ(web.port, be(80));
  EXPECT_EQ(web.backends[0].addr, raw("10.3.0.11"));
  EXPECT_EQ(by_name(*t, "any-tcp").port, 0) << "every port";
}

TEST(ServiceTableTest, PortSpecificServiceComesBeforeTheEveryPortOneOfItsVip) {
  // The config refuses the two together (one owns the VIP and protocol); the lookup's
  // order still says which one a port meets.
  SlotRegistry registry;
  auto t = build({service("all", "192.0.2.30", kTcp, 0, {backend("10.3.0.11")}),
                  service("ssh", "192.0.2.30", kTcp, 22, {backend("10.3.0.12")})},
                 registry);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->service(static_cast<uint16_t>(t->find(raw("192.0.2.30"), kTcp, be(22)))).name, "ssh");
  EXPECT_EQ(t->service(static_cast<uint16_t>(t->find(raw("192.0.2.30"), kTcp, be(23)))).name, "all");
}

TEST(ServiceTableTest, EmptyTableFindsNothing) {
  SlotRegistry registry;
  auto t = build({}, registry);
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->empty());
  EXPECT_EQ(t->find(raw("192.0.2.10"), kTcp, be(80)), -1);
  EXPECT_EQ(t->find(0, kTcp, 0), -1);
  EXPECT_EQ(t->service_of_slot(0), -1);
  EXPECT_FALSE(t->has_backend_slot(0));
}

TEST(ServiceTableTest, ManyServicesAreEachFoundUnderTheirOwnKey) {
  // Enough to collide in the open-addressed index (at most half full).
  SlotRegistry registry;
  std::vector<config::LbService> list;
  for (int i = 0; i < 100; ++i) {
    const std::string vip = "192.0.2." + std::to_string(i / 4 + 1);
    const std::string name = std::string("s").append(std::to_string(i));
    list.push_back(service(name.c_str(), vip.c_str(), i % 2 ? kUdp : kTcp,
                           static_cast<uint16_t>(1000 + i), {backend("10.3.0.11")}));
  }
  auto t = build(list, registry);
  ASSERT_NE(t, nullptr);
  for (int i = 0; i < 100; ++i) {
    const std::string vip = "192.0.2." + std::to_string(i / 4 + 1);
    const int s = t->find(raw(vip.c_str()), i % 2 ? kUdp : kTcp, be(static_cast<uint16_t>(1000 + i)));
    ASSERT_GE(s, 0) << i;
    EXPECT_EQ(t->service(static_cast<uint16_t>(s)).name, std::string("s").append(std::to_string(i)));
    EXPECT_EQ(t->find(raw(vip.c_str()), i % 2 ? kTcp : kUdp, be(static_cast<uint16_t>(1000 + i))), -1) << i;
  }
}

TEST(ServiceTableTest, ServiceSlotsAreStableAcrossBuildsAndARemovedServiceHasNone) {
  SlotRegistry registry;
  auto first = build({service("a", "192.0.2.1", kTcp, 80, {backend("10.3.0.11")}),
                      service("b", "192.0.2.2", kTcp, 80, {backend("10.3.0.12")})},
                     registry);
  ASSERT_NE(first, nullptr);
  const uint16_t slot_a = by_name(*first, "a").slot, slot_b = by_name(*first, "b").slot;
  EXPECT_NE(slot_a, slot_b);
  EXPECT_EQ(first->service_of_slot(slot_a), 0);
  EXPECT_EQ(first->service_of_slot(slot_b), 1);

  // Reordered, "a" gone, "c" new: "b" keeps its slot at its new index, "c" takes a fresh one.
  auto second = build({service("c", "192.0.2.3", kTcp, 80, {backend("10.3.0.13")}),
                       service("b", "192.0.2.2", kTcp, 80, {backend("10.3.0.12")})},
                      registry);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(by_name(*second, "b").slot, slot_b);
  const uint16_t slot_c = by_name(*second, "c").slot;
  EXPECT_NE(slot_c, slot_a);
  EXPECT_NE(slot_c, slot_b);
  EXPECT_EQ(second->service_of_slot(slot_b), 1);
  EXPECT_EQ(second->service_of_slot(slot_c), 0);
  EXPECT_EQ(second->service_of_slot(slot_a), -1) << "removed by the reload";
  EXPECT_EQ(second->service_of_slot(kNoSlot), -1);

  // Back again: its old slot.
  auto third = build({service("a", "192.0.2.1", kTcp, 80, {backend("10.3.0.11")})}, registry);
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(by_name(*third, "a").slot, slot_a);
}

TEST(ServiceTableTest, BackendSlotsFollowTheBackendsIdentityAndARemovedBackendIsNotPresent) {
  SlotRegistry registry;
  auto first = build({service("web", "192.0.2.10", kTcp, 80,
                              {backend("10.3.0.11"), backend("10.3.0.12"), backend("10.3.0.13", 0, 1, "named")}),
                      service("api", "192.0.2.11", kTcp, 80, {backend("10.3.0.11")})},
                     registry);
  ASSERT_NE(first, nullptr);
  const Service& web = by_name(*first, "web");
  const uint16_t s11 = web.backends[0].slot, s12 = web.backends[1].slot, named = web.backends[2].slot;
  const uint16_t api11 = by_name(*first, "api").backends[0].slot;
  EXPECT_EQ(std::set<uint16_t>({s11, s12, named, api11}).size(), 4u) << "one backend address in two services: two slots";
  for (uint16_t s : {s11, s12, named, api11}) EXPECT_TRUE(first->has_backend_slot(s)) << s;
  EXPECT_EQ(registry.backends_used(), 4u);

  // 10.3.0.12 removed, a new one added, the rest reordered; "named" moves address but keeps its name.
  auto second = build({service("web", "192.0.2.10", kTcp, 80,
                               {backend("10.3.0.14"), backend("10.3.0.99", 0, 1, "named"), backend("10.3.0.11")}),
                       service("api", "192.0.2.11", kTcp, 80, {backend("10.3.0.11")})},
                      registry);
  ASSERT_NE(second, nullptr);
  const Service& web2 = by_name(*second, "web");
  EXPECT_EQ(web2.backends[2].slot, s11) << "same address and port: same slot";
  EXPECT_EQ(web2.backends[1].slot, named) << "a named backend is its name";
  const uint16_t s14 = web2.backends[0].slot;
  EXPECT_EQ(std::set<uint16_t>({s11, s12, named, api11, s14}).size(), 5u) << "a new backend: a fresh slot";
  EXPECT_FALSE(second->has_backend_slot(s12)) << "removed by the rebuild";
  EXPECT_TRUE(second->has_backend_slot(s11));
  EXPECT_TRUE(second->has_backend_slot(s14));
  EXPECT_TRUE(second->has_backend_slot(api11));
  EXPECT_FALSE(second->has_backend_slot(kNoSlot));
  EXPECT_TRUE(first->has_backend_slot(s12)) << "the old table is unchanged";

  // The identity includes the port: the service's when the backend names none.
  EXPECT_EQ(backend_id(backend("10.3.0.11"), 80), "10.3.0.11:80");
  EXPECT_EQ(backend_id(backend("10.3.0.11", 8080), 80), "10.3.0.11:8080");
  EXPECT_EQ(backend_id(backend("10.3.0.11", 8080, 1, "x"), 80), "x");
}

TEST(ServiceTableTest, DownAndWeightZeroBackendsHoldNoMaglevEntryAndAreNoCandidate) {
  for (LbScheduler scheduler : {LbScheduler::Maglev, LbScheduler::RoundRobin, LbScheduler::LeastConnections}) {
    SlotRegistry registry;
    const std::vector<config::LbService> list = {service(
        "web", "192.0.2.10", kTcp, 80,
        {backend("10.3.0.11"), backend("10.3.0.12"), backend("10.3.0.13", 0, 0), backend("10.3.0.14")}, scheduler)};
    auto all_up = build(list, registry);
    ASSERT_NE(all_up, nullptr);
    const uint16_t down_slot = all_up->service(0).backends[1].slot;
    auto t = build(list, registry, [&](uint16_t slot) { return slot != down_slot; });
    ASSERT_NE(t, nullptr);
    const Service& s = t->service(0);
    ASSERT_EQ(s.backends.size(), 4u) << "down or weight 0, a backend stays in its service";
    EXPECT_FALSE(s.backends[1].up);
    EXPECT_TRUE(s.backends[0].up && s.backends[2].up && s.backends[3].up);
    EXPECT_TRUE(t->has_backend_slot(down_slot)) << "down is not removed";
    if (scheduler == LbScheduler::Maglev) {
      EXPECT_EQ(maglev_backends(s), (std::set<uint16_t>{0, 3})) << "every entry is an up backend with weight";
      EXPECT_EQ(maglev_backends(all_up->service(0)), (std::set<uint16_t>{0, 1, 3}));
      EXPECT_TRUE(s.eligible.empty()) << "Maglev's candidates are its entries";
    } else {
      EXPECT_EQ(s.eligible, (std::vector<uint16_t>{0, 3}));
      EXPECT_EQ(all_up->service(0).eligible, (std::vector<uint16_t>{0, 1, 3}));
    }
  }
}

TEST(ServiceTableTest, EveryBackendDownLeavesNoCandidateAndEverySchedulerPicksNone) {
  LbContext ctx;
  for (LbScheduler scheduler : {LbScheduler::Maglev, LbScheduler::RoundRobin, LbScheduler::LeastConnections}) {
    SlotRegistry registry;
    auto t = build({service("web", "192.0.2.10", kTcp, 80, {backend("10.3.0.11"), backend("10.3.0.12")}, scheduler)},
                   registry, [](uint16_t) { return false; });
    ASSERT_NE(t, nullptr);
    const Service& s = t->service(0);
    EXPECT_TRUE(s.eligible.empty());
    EXPECT_EQ(maglev_backends(s), (std::set<uint16_t>{kNoBackend}));
    for (uint32_t h : {0u, 1u, 0x80000000u, 0xffffffffu}) EXPECT_EQ(ctx.pick(s, h), kNoBackend) << h;
    EXPECT_GE(t->find(raw("192.0.2.10"), kTcp, be(80)), 0) << "the service is still there, with no one to take it";
  }
}

TEST(ServiceTableTest, FullNatLocalPrefixIsEveryAddressInItAndPortsAreKept) {
  SlotRegistry registry;
  config::LbService s = service("web", "192.0.2.10", kTcp, 80, {backend("10.3.0.11", 8080)});
  s.mode = config::LbMode::FullNat;
  s.local_addresses = {*net::parse_prefix("10.3.0.200/32"), *net::parse_prefix("10.3.1.0/30")};
  s.port_first = 2000;
  s.port_last = 2999;
  auto t = build({s}, registry);
  ASSERT_NE(t, nullptr);
  const Service& built = t->service(0);
  EXPECT_EQ(built.mode, config::LbMode::FullNat);
  EXPECT_EQ(built.local, (std::vector<uint32_t>{raw("10.3.0.200"), raw("10.3.1.0"), raw("10.3.1.1"), raw("10.3.1.2"),
                                                raw("10.3.1.3")}));
  EXPECT_EQ(built.port_first, 2000) << "host order";
  EXPECT_EQ(built.port_last, 2999);
  EXPECT_EQ(built.backends[0].port, be(8080));
}

TEST(ServiceTableTest, Ipv6VipThatIsNotIpipIsRefusedWithAnError) {
  SlotRegistry registry;
  config::LbService v6 = service("web6", "2001:db8::10", kTcp, 80, {backend("2001:db8:1::11")});
  std::string error;
  auto t = ServiceTable::build({service("web", "192.0.2.10", kTcp, 80, {backend("10.3.0.11")}), v6}, registry, nullptr,
                               error);
  EXPECT_EQ(t, nullptr);
  EXPECT_NE(error.find("web6"), std::string::npos) << error;
  EXPECT_NE(error.find("ipip only"), std::string::npos) << error;
}

TEST(ServiceTableTest, Ipv6IpipServiceIsFoundByItsVipBesideIpv4OnesWithItsTunnelSources) {
  SlotRegistry registry;
  config::LbService v6 = service("web6", "2001:db8::10", kTcp, 80, {backend("2001:db8:1::11"), backend("2001:db8:1::12")});
  v6.mode = config::LbMode::Ipip;
  config::LbService all6 = service("any6", "2001:db8::20", kUdp, 0, {backend("2001:db8:1::13")});
  all6.mode = config::LbMode::Ipip;
  std::string error;
  auto t = ServiceTable::build({service("web", "192.0.2.10", kTcp, 80, {backend("10.3.0.11")}), v6, all6}, registry,
                               nullptr, error, [](const net::IpAddr& b) {
                                 return b.family == 6 ? ip("2001:db8:1::1") : ip("10.3.0.1");
                               });
  ASSERT_NE(t, nullptr) << error;
  ASSERT_TRUE(t->has_ipv6());
  const net::IpAddr vip = ip("2001:db8::10"), other = ip("2001:db8::11"), vip_all = ip("2001:db8::20");
  EXPECT_EQ(t->find6(vip.bytes.data(), kTcp, be(80)), 1);
  EXPECT_EQ(t->find6(vip.bytes.data(), kTcp, be(81)), -1);
  EXPECT_EQ(t->find6(vip.bytes.data(), kUdp, be(80)), -1);
  EXPECT_EQ(t->find6(other.bytes.data(), kTcp, be(80)), -1);
  EXPECT_EQ(t->find6(vip_all.bytes.data(), kUdp, be(5353)), 2) << "a service of every port";
  EXPECT_EQ(t->find(raw("192.0.2.10"), kTcp, be(80)), 0) << "IPv4 lookups unchanged";
  const Service& s = t->service(1);
  EXPECT_EQ(s.family, 6);
  ASSERT_EQ(s.backends.size(), 2u);
  EXPECT_EQ(s.backends[1].addr6, ip("2001:db8:1::12").bytes);
  EXPECT_TRUE(s.backends[1].tunnel6);
  EXPECT_EQ(s.backends[1].tunnel_src6, ip("2001:db8:1::1").bytes);
  EXPECT_FALSE(t->is_vip(0)) << "an IPv6 service leaves the IPv4 VIPs alone";
  // Without a route toward a backend (an unset source), its connections cannot be tunnelled.
  auto no_route = ServiceTable::build({v6}, registry, nullptr, error, [](const net::IpAddr&) { return net::IpAddr{}; });
  ASSERT_NE(no_route, nullptr) << error;
  EXPECT_FALSE(no_route->service(0).backends[0].tunnel6);
}

TEST(ServiceTableTest, FlowHash6IsAFixedFunctionOfTheTuple) {
  const net::IpAddr src = ip("2001:db8:5::7"), dst = ip("2001:db8::10"), src2 = ip("2001:db8:5::8");
  const uint32_t h = flow_hash6(src.bytes.data(), dst.bytes.data(), be(40000), be(80), kTcp);
  EXPECT_EQ(h, flow_hash6(src.bytes.data(), dst.bytes.data(), be(40000), be(80), kTcp));
  EXPECT_EQ(h, 0xef5528f3u) << "pinned: another Sluice must pick the same backend";
  EXPECT_NE(h, flow_hash6(src2.bytes.data(), dst.bytes.data(), be(40000), be(80), kTcp));
  EXPECT_NE(h, flow_hash6(dst.bytes.data(), src.bytes.data(), be(40000), be(80), kTcp)) << "direction matters";
  EXPECT_NE(h, flow_hash6(src.bytes.data(), dst.bytes.data(), be(40001), be(80), kTcp));
  EXPECT_NE(h, flow_hash6(src.bytes.data(), dst.bytes.data(), be(40000), be(80), kUdp));
}

TEST(ServiceTableTest, MaglevTableSizeThatIsNotPrimeIsRefusedNamingTheService) {
  SlotRegistry registry;
  config::LbService s = service("web", "192.0.2.10", kTcp, 80, {backend("10.3.0.11")});
  s.table_size = 250;
  std::string error;
  EXPECT_EQ(ServiceTable::build({s}, registry, nullptr, error), nullptr);
  EXPECT_EQ(error.rfind("service 'web': ", 0), 0u) << error;
}

TEST(ServiceTableTest, FlowHashIsAFixedFunctionOfTheTuple) {
  const uint32_t src = raw("198.51.100.7"), dst = raw("192.0.2.10");
  const uint32_t h = flow_hash(src, dst, be(40000), be(80), kTcp);
  EXPECT_EQ(h, flow_hash(src, dst, be(40000), be(80), kTcp));
  // Pinned: another Sluice (another build, another machine) must pick the same backend.
  EXPECT_EQ(h, 0x4c5c143du);
  EXPECT_NE(h, flow_hash(src + 1, dst, be(40000), be(80), kTcp));
  EXPECT_NE(h, flow_hash(src, dst + 1, be(40000), be(80), kTcp));
  EXPECT_NE(h, flow_hash(src, dst, be(40001), be(80), kTcp));
  EXPECT_NE(h, flow_hash(src, dst, be(40000), be(81), kTcp));
  EXPECT_NE(h, flow_hash(src, dst, be(40000), be(80), kUdp));
}

TEST(ServiceTableTest, PlannedBackendIsReadOnlyAgainstTheTableItWasPlannedOn) {
  for (uint8_t tag = 0; tag < 8; ++tag) {
    for (uint16_t backend : {uint16_t{0}, uint16_t{1}, uint16_t{4095}, kNoBackend}) {
      const uint16_t code = plan_code(backend, tag);
      uint16_t got = 1234;
      ASSERT_TRUE(planned_backend(code, tag, got)) << int(tag) << " " << backend;
      EXPECT_EQ(got, backend);
      EXPECT_FALSE(planned_backend(code, static_cast<uint8_t>((tag + 1) & 7), got)) << "another publication";
    }
  }
  SlotRegistry registry;
  auto t = build({service("web", "192.0.2.10", kTcp, 80, {backend("10.3.0.11")})}, registry);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->tag(), 0);
  t->set_tag(9);
  EXPECT_EQ(t->tag(), 1) << "modulo 8";
}

// ---- LbContext::pick ----

TEST(LbContextTest, WeightedRoundRobinRepeatsItsCycleExactly) {
  SlotRegistry registry;
  auto t = build({service("rr", "192.0.2.10", kTcp, 80, {backend("10.3.0.11", 0, 1), backend("10.3.0.12", 0, 2)},
                          LbScheduler::RoundRobin),
                  service("other", "192.0.2.11", kTcp, 80, {backend("10.3.0.21"), backend("10.3.0.22")},
                          LbScheduler::RoundRobin)},
                 registry);
  ASSERT_NE(t, nullptr);
  LbContext ctx;
  const Service& rr = t->service(0);
  const Service& other = t->service(1);
  std::vector<uint16_t> picks;
  for (int i = 0; i < 9; ++i) {
    picks.push_back(ctx.pick(rr, static_cast<uint32_t>(i * 7919)));  // the hash plays no part
    if (i % 2) ctx.pick(other, 0);  // another service's turns do not move this one's
  }
  EXPECT_EQ(picks, (std::vector<uint16_t>{0, 1, 1, 0, 1, 1, 0, 1, 1}));
  EXPECT_EQ(ctx.pick(other, 0), 0) << "its own cursor: 4 turns taken (0 1 0 1), the fifth is 0's again";
  EXPECT_EQ(ctx.pick(rr, 0), 0) << "and this one's tenth starts its cycle again";
}

TEST(LbContextTest, RoundRobinSkipsADownBackend) {
  SlotRegistry registry;
  const std::vector<config::LbService> list = {service(
      "rr", "192.0.2.10", kTcp, 80, {backend("10.3.0.11"), backend("10.3.0.12"), backend("10.3.0.13")},
      LbScheduler::RoundRobin)};
  auto up = build(list, registry);
  ASSERT_NE(up, nullptr);
  const uint16_t middle = up->service(0).backends[1].slot;
  auto t = build(list, registry, [&](uint16_t slot) { return slot != middle; });
  ASSERT_NE(t, nullptr);
  LbContext ctx;
  std::vector<uint16_t> picks;
  for (int i = 0; i < 4; ++i) picks.push_back(ctx.pick(t->service(0), 0));
  EXPECT_EQ(picks, (std::vector<uint16_t>{0, 2, 0, 2}));
}

// Three backends weighing 1, 2 and 1.
config::LbService weighted_least_connections() {
  return service("lc", "192.0.2.10", kTcp, 80,
                 {backend("10.3.0.11", 0, 1), backend("10.3.0.12", 0, 2), backend("10.3.0.13", 0, 1)},
                 LbScheduler::LeastConnections);
}

TEST(LbContextTest, LeastConnectionsPicksFewestActivePerWeight) {
  SlotRegistry registry;
  auto t = build({weighted_least_connections()}, registry);
  ASSERT_NE(t, nullptr);
  const Service& s = t->service(0);
  LbContext ctx;
  auto set_active = [&](uint64_t a, uint64_t b, uint64_t c) {
    const uint64_t values[3] = {a, b, c};
    for (int i = 0; i < 3; ++i) {
      Counter& active = ctx.backend(s.backends[i].slot).active;
      active.reset();
      active.add(values[i]);
    }
  };
  // Each pick its own burst (the lb stage ends each): only `active` counts.
  auto pick = [&](uint32_t hash) {
    const uint16_t b = ctx.pick(s, hash);
    ctx.end_burst();
    return b;
  };
  set_active(0, 0, 0);
  EXPECT_EQ(pick(0), 0) << "a tie goes to the first";
  set_active(1, 0, 1);
  EXPECT_EQ(pick(0), 1);
  set_active(1, 1, 1);
  EXPECT_EQ(pick(0), 1) << "1 per 2 weight is fewer than 1 per 1";
  set_active(1, 2, 1);
  EXPECT_EQ(pick(0), 0) << "2 per 2 ties 1 per 1: the first of them";
  set_active(2, 3, 1);
  EXPECT_EQ(pick(0), 2);
  set_active(5, 9, 5);
  EXPECT_EQ(pick(0), 1) << "4.5 per unit of weight against 5";
  set_active(3, 0, 3);
  EXPECT_EQ(pick(0xdeadbeef), 1) << "the hash plays no part";
  EXPECT_EQ(ctx.backend(s.backends[1].slot).active.get(), 0u) << "picking does not count: the lb stage does";
}

TEST(LbContextTest, LeastConnectionsSpreadsOneBurstsNewConnections) {
  // Conntrack plans a whole burst before the lb stage opens (and counts) any of it: the
  // burst's own picks count, or all of them would go to the same backend.
  SlotRegistry registry;
  auto t = build({weighted_least_connections()}, registry);
  ASSERT_NE(t, nullptr);
  const Service& s = t->service(0);
  LbContext ctx;
  std::vector<int> picked(3, 0);
  for (int i = 0; i < 32; ++i) ++picked.at(ctx.pick(s, static_cast<uint32_t>(i)));
  EXPECT_EQ(picked, (std::vector<int>{8, 16, 8})) << "by weight within one burst";
  ctx.end_burst();
  EXPECT_EQ(ctx.pick(s, 0), 0) << "planned picks end with the burst: nothing active, a tie";
  ctx.end_burst();
}

TEST(LbContextTest, LeastConnectionsNeverPicksADownBackend) {
  SlotRegistry registry;
  const std::vector<config::LbService> list = {service(
      "lc", "192.0.2.10", kTcp, 80, {backend("10.3.0.11"), backend("10.3.0.12")}, LbScheduler::LeastConnections)};
  auto up = build(list, registry);
  ASSERT_NE(up, nullptr);
  const uint16_t idle = up->service(0).backends[0].slot;
  auto t = build(list, registry, [&](uint16_t slot) { return slot != idle; });
  ASSERT_NE(t, nullptr);
  LbContext ctx;
  ctx.backend(t->service(0).backends[1].slot).active.add(100);
  EXPECT_EQ(ctx.pick(t->service(0), 0), 1) << "the busy one, not the idle one that is down";
}

TEST(LbContextTest, MaglevPickIsTheTablesEntryForTheFlowHash) {
  SlotRegistry registry;
  auto t = build({service("web", "192.0.2.10", kTcp, 80,
                          {backend("10.3.0.11"), backend("10.3.0.12", 0, 3), backend("10.3.0.13")})},
                 registry);
  ASSERT_NE(t, nullptr);
  const Service& s = t->service(0);
  LbContext ctx;
  std::vector<unsigned> per_backend(3);
  for (uint32_t i = 0; i < 3000; ++i) {
    const uint32_t h = flow_hash(raw("198.51.100.7") + htonl(i), s.vip, be(static_cast<uint16_t>(1024 + i)), s.port, kTcp);
    const uint16_t picked = ctx.pick(s, h);
    ASSERT_EQ(picked, s.maglev.lookup(h)) << i;
    ASSERT_LT(picked, 3) << i;
    EXPECT_EQ(ctx.pick(s, h), picked) << "the same flow, the same backend";
    ++per_backend[picked];
  }
  EXPECT_GT(per_backend[1], per_backend[0] + per_backend[2]) << "weight 3 of 5";
}

TEST(LbContextTest, RemovedPairGivesBackItsBackendsActiveConnection) {
  LbContext ctx;
  constexpr uint16_t kSlot = 42;
  ctx.backend(kSlot).active.add(3);
  flow::NatPair4 pair{};
  pair.ext.kind = flow::kNatDestination | flow::kNatLb;
  pair.ext.backend = kSlot;
  LbContext::pair_removed(&ctx, pair);
  EXPECT_EQ(ctx.backend(kSlot).active.get(), 2u);
  LbContext::pair_removed(&ctx, pair);
  EXPECT_EQ(ctx.backend(kSlot).active.get(), 1u);
  pair.ext.backend = kNoSlot;  // not a backend's: nothing to give back
  LbContext::pair_removed(&ctx, pair);
  EXPECT_EQ(ctx.backend(kSlot).active.get(), 1u);
}

}  // namespace
}  // namespace sluice::lb
