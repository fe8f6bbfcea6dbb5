// The lb stage in real pipelines, on real mbufs through ring ports: parse -> reassemble
// -> nptv6 -> probe_intake -> conntrack -> lb -> nat -> route -> nat_src -> output for a
// two-port load balancer. Clients (10.9.1.1, 10.9.1.2) are behind the gateway 10.2.0.2 on
// east (zone outside, 10.2.0.1/24); backends 10.1.0.11-13 behind west (zone inside,
// 10.1.0.1/24), with a plain host 10.1.0.20 beside them. Services: "web" tcp 80 on
// 10.2.0.50, full-NAT from 10.1.0.200 ports 30000-30999 to backends a and b on 8080;
// "web-dnat" tcp 80 on 10.2.0.51 to 10.1.0.11:8080; "dns" udp 53 on 10.2.0.52, full-NAT
// from 10.1.0.201 to 10.1.0.13; "dns-dnat" udp 53 on 10.2.0.53 to 10.1.0.13:5353;
// "web-dsr" tcp 80 on 10.2.0.54, ipip to 10.1.0.12 from west's 10.1.0.1; "web6" tcp 80
// on fd00:50::10, IPv6-in-IPv6 to fd00:1::11 and ::12 from west's fd00:1::1, for the
// client fd00:9::1 behind the gateway fd00:2::2. The
// services are published through RCU as the runtime's LoadBalancer does, worker 0's
// LbContext observes the NAT pairs' ends. Every checksum of what leaves is recomputed in
// full; every mbuf is back in the pool at the end (MbufTest).
#include <arpa/inet.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_byteorder.h>
#include <rte_mbuf.h>

#include "flow/flow_context.h"
#include "l3_fixture.h"
#include "l3_support.h"
#include "lb/lb_context.h"
#include "lb/service_table.h"
#include "nat/policy.h"
#include "nat_support.h"
#include "pipeline/packet_meta.h"

namespace sluice::pipeline {
namespace {

using test::Datagram4;
using test::data;
using test::get16;
using test::ip_of;
using test::kGatewayMac;
using test::l4_checksum_at;
using test::l4_checksum_full;
using test::Mac;
using test::mac_at;
using test::Sent;
using test::Side;
using test::stored16;

constexpr const char* kClient = "10.9.1.1";
constexpr const char* kClient2 = "10.9.1.2";
constexpr const char* kGateway = "10.2.0.2";
constexpr const char* kVip = "10.2.0.50";       // web: fullnat tcp 80
constexpr const char* kDnatVip = "10.2.0.51";   // web-dnat: dnat tcp 80
constexpr const char* kUdpVip = "10.2.0.52";    // dns: fullnat udp 53
constexpr const char* kDnatUdpVip = "10.2.0.53";  // dns-dnat: dnat udp 53
constexpr const char* kDsrVip = "10.2.0.54";      // web-dsr: ipip tcp 80
constexpr const char* kWestAddress = "10.1.0.1";  // the tunnel source toward the backends
constexpr const char* kWestAddress6 = "fd00:1::1";  // ... toward IPv6 ones
constexpr const char* kClient6 = "fd00:9::1";       // behind the gateway fd00:2::2 on east
constexpr const char* kVip6 = "fd00:50::10";        // web6: ipip tcp 80 (IPv6-in-IPv6)
constexpr const char* kBackend6A = "fd00:1::11";
constexpr const char* kBackend6B = "fd00:1::12";
constexpr const char* kBackendA = "10.1.0.11";
constexpr const char* kBackendB = "10.1.0.12";
constexpr const char* kBackendC = "10.1.0.13";
constexpr const char* kLocal = "10.1.0.200";     // web's full-NAT source
constexpr const char* kUdpLocal = "10.1.0.201";  // dns's
constexpr const char* kPlainHost = "10.1.0.20";  // behind west, no service
constexpr uint16_t kBackendPort = 8080, kFirstPort = 30000, kLastPort = 30999;
constexpr Mac kMacA = {0x02, 0, 0, 0, 0x0b, 0x11}, kMacB = {0x02, 0, 0, 0, 0x0b, 0x12},
              kMacC = {0x02, 0, 0, 0, 0x0b, 0x13}, kPlainMac = {0x02, 0, 0, 0, 0x0b, 0x20};

constexpr uint8_t kSyn = 0x02, kAck = 0x10, kPsh = 0x08;
constexpr uint32_t kClientIsn = 1000, kServerIsn = 500000;

const char* const kSections = R"(
  "routes": [{"prefix": "10.9.0.0/16", "via": "10.2.0.2"}, {"prefix": "fd00:9::/64", "via": "fd00:2::2"}],
  "conntrack": {"capacity": 1024, "capacity_ipv6": 1024},
  "firewall": {"default_policy": "drop",
    "policies": [{"from": "outside", "to": "inside", "action": "accept"},
                 {"from": "inside", "to": "outside", "action": "accept"}]},
  "nat": {"capacity": 1024},
  "services": [
    {"name": "web", "vip": "10.2.0.50", "protocol": "tcp", "port": 80, "mode": "fullnat",
     "local_addresses": ["10.1.0.200"], "ports": "30000-30999",
     "backends": [{"name": "a", "address": "10.1.0.11", "port": 8080},
                  {"name": "b", "address": "10.1.0.12", "port": 8080}]},
    {"name": "web-dnat", "vip": "10.2.0.51", "protocol": "tcp", "port": 80, "mode": "dnat",
     "backends": [{"address": "10.1.0.11", "port": 8080}]},
    {"name": "dns", "vip": "10.2.0.52", "protocol": "udp", "port": 53, "mode": "fullnat",
     "local_addresses": ["10.1.0.201"], "backends": [{"address": "10.1.0.13"}]},
    {"name": "dns-dnat", "vip": "10.2.0.53", "protocol": "udp", "port": 53, "mode": "dnat",
     "backends": [{"address": "10.1.0.13", "port": 5353}]},
    {"name": "web-dsr", "vip": "10.2.0.54", "protocol": "tcp", "port": 80, "mode": "ipip",
     "backends": [{"address": "10.1.0.12"}]},
    {"name": "web6", "vip": "fd00:50::10", "protocol": "tcp", "port": 80, "mode": "ipip",
     "backends": [{"address": "fd00:1::11"}, {"address": "fd00:1::12"}]}])";

test::TwoPortSpec lb_ports() {
  test::TwoPortSpec ports;
  ports.west.pipeline = {"parse", "conntrack", "lb", "nat", "route"};
  ports.east.pipeline = {"parse", "conntrack", "lb", "nat", "route"};
  return ports;
}

uint32_t ip4(const char* text) { return test::addr4_raw(text); }

using test::pattern;

struct Tcp {
  std::string src = kClient;
  uint16_t sport = 40000;
  std::string dst = kVip;
  uint16_t dport = 80;
  uint8_t flags = kSyn;
  uint32_t seq = kClientIsn, ack = 0;
  size_t payload = 0;
};

// A TCP segment as a host sends it, every checksum computed in full.
std::vector<uint8_t> tcp_datagram(const Tcp& t) {
  return test::tcp_datagram4(ip4(t.src.c_str()), t.sport, ip4(t.dst.c_str()), t.dport, t.flags, t.seq, t.ack, t.payload);
}

std::vector<uint8_t> udp_datagram(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport,
                                  bool checksum = true, size_t payload = 32) {
  Datagram4 g;
  g.src = ip4(src.c_str());
  g.dst = ip4(dst.c_str());
  g.proto = net::kIpProtoUdp;
  g.sport = sport;
  g.dport = dport;
  g.udp_checksum = checksum;
  g.payload = pattern(payload, 3);
  return test::ipv4_datagram(g);
}

// An Ethernet frame around a datagram (test::eth_frame, sized once: GCC 12 warns falsely
// about growing it).
std::vector<uint8_t> frame(const std::vector<uint8_t>& datagram) {
  test::Frame f;
  f.eth(net::kEtherTypeIpv4);
  std::vector<uint8_t> out = f.raw();
  out.resize(test::kEthLen + datagram.size());
  std::copy(datagram.begin(), datagram.end(), out.begin() + test::kEthLen);
  return out;
}

std::string src_of(const rte_mbuf* m) { return test::src4(ip_of(m)); }
std::string dst_of(const rte_mbuf* m) { return test::dst4(ip_of(m)); }
uint16_t sport_of(const rte_mbuf* m) { return get16(ip_of(m) + 20); }
uint16_t dport_of(const rte_mbuf* m) { return get16(ip_of(m) + 22); }
uint32_t seq_of(const rte_mbuf* m) { return rte_be_to_cpu_32(net::load32(ip_of(m) + 20 + 4)); }
bool in_range(uint16_t port) { return port >= kFirstPort && port <= kLastPort; }

// The IPv4 header checksum (also as a sum over the header) and the TCP/UDP checksum
// with its pseudo-header, against full recomputation. A UDP datagram sent without a
// checksum (0) must still have none.
void expect_checksums(const rte_mbuf* m, const std::string& what, bool udp_none = false) {
  const uint8_t* ip = ip_of(m);
  EXPECT_TRUE(test::ipv4_checksum_ok(ip)) << what << ": IPv4 header checksum";
  EXPECT_EQ(stored16(ip + test::kIpChecksumAt), test::ipv4_checksum_full(ip)) << what << ": IPv4 header checksum";
  const size_t at = l4_checksum_at(ip);
  if (ip[9] == net::kIpProtoUdp && udp_none) {
    EXPECT_EQ(stored16(ip + at), 0) << what << ": no UDP checksum stays none";
    return;
  }
  if (ip[9] == net::kIpProtoUdp) {
    EXPECT_NE(stored16(ip + at), 0) << what << ": a UDP checksum stays present";
  }
  EXPECT_EQ(stored16(ip + at), l4_checksum_full(ip)) << what << ": L4 checksum";
}

// What the backend's (or the client's) stack answers to a segment that reached it: the
// addresses and ports swapped, the next sequence numbers.
std::vector<uint8_t> answer(const rte_mbuf* m, uint8_t flags, uint32_t seq, uint32_t ack, size_t payload = 0) {
  return tcp_datagram({.src = dst_of(m), .sport = dport_of(m), .dst = src_of(m),
                       .dport = sport_of(m), .flags = flags, .seq = seq, .ack = ack, .payload = payload});
}

class LbStageTest : public test::TwoPortPipelineTest {
 protected:
  void SetUp() override {
    test::TwoPortPipelineTest::SetUp();
    if (HasFatalFailure()) return;
    add_neighbour(east_id_, kGateway, kGatewayMac);
    add_neighbour(west_id_, kBackendA, kMacA);
    add_neighbour(west_id_, kBackendB, kMacB);
    add_neighbour(west_id_, kBackendC, kMacC);
    add_neighbour(west_id_, kPlainHost, kPlainMac);
    add_neighbour(east_id_, "fd00:2::2", kGatewayMac);
    add_neighbour(west_id_, kBackend6A, kMacA);
    add_neighbour(west_id_, kBackend6B, kMacB);
    start_lb(test::two_port_config(lb_ports(), kSections));
  }

  void TearDown() override {
    stop();  // the NAT context (whose pairs the LbContext observes) and the flow table first
    lb_.reset();
    services_.reset();
    test::TwoPortPipelineTest::TearDown();
  }

  // start() as the runtime does it with a services section: the routes, worker 0's flow
  // context, the firewall and NAT policies, its NAT context; then the services published
  // (LoadBalancer::create) and worker 0's LbContext observing the NAT pairs' ends, and
  // both ports' pipelines.
  void start_lb(const std::string& text) {
    stop();
    lb_.reset();
    services_.reset();
    load_config(text);
    if (HasFatalFailure()) return;
    publish_routes(config_);
    if (HasFatalFailure()) return;
    std::string error;
    flows_ = flow::FlowContext::create(0, config_.conntrack.capacity, config_.conntrack.capacity_ipv6, SOCKET_ID_ANY,
                                       error, config_.nat.capacity);
    ASSERT_NE(flows_, nullptr) << error;
    flows_->set_now(now_);
    policy_ = std::make_unique<l3::Published<firewall::Policy>>(*qsbr_);
    auto policy = firewall::Policy::build(config_, ids_, 1, error);
    ASSERT_NE(policy, nullptr) << error;
    policy_->publish(std::move(policy));
    reject_bucket_ = l3::TokenBucket(1000, 50, rte_get_tsc_hz());
    ct_ = pipeline::ConntrackContext{flows_.get(), policy_.get(), &reject_bucket_};
    nat_policy_ = std::make_unique<l3::Published<nat::Policy>>(*qsbr_);
    auto nat_policy = nat::Policy::build(config_, ids_, 1, 1, nat_registry_, error);
    ASSERT_NE(nat_policy, nullptr) << error;
    nat_policy_->publish(std::move(nat_policy));
    nat_ = nat::NatContext::create(0, 1, config_.nat, *flows_, SOCKET_ID_ANY, error);
    ASSERT_NE(nat_, nullptr) << error;

    services_ = std::make_unique<l3::Published<lb::ServiceTable>>(*qsbr_);
    publish_services(config_.services);
    if (HasFatalFailure()) return;
    lb_ = std::make_unique<lb::LbContext>();
    nat_->set_lb_observer(&lb::LbContext::pair_removed, lb_.get());
    nat_->set_lb6_observer(&lb::LbContext::entry6_removed, lb_.get());
    nat_ctx_ = pipeline::NatStageContext{nat_.get(), nat_policy_.get(), &tx_offloads_, services_.get(), lb_.get(),
                                         lb::ProbeMatch{nat::kLbProbePortFirst, nat::kLbProbePortLast,
                                                        nat::kLbProbeEchoIdent}};
    west_pipe_ = build("west", &ct_);
    east_pipe_ = build("east", &ct_);
  }

  // A new table from `services` (the health checks' verdict `up`), published in place of
  // the last as a reload or a backend going down does; the slots stay the registry's.
  void publish_services(const std::vector<config::LbService>& services, const lb::ServiceTable::UpFn& up = nullptr) {
    std::string error;
    // The tunnel source as LoadBalancer finds it: the address of the port toward the backend.
    auto table = lb::ServiceTable::build(services, registry_, up, error, [](const net::IpAddr& backend) {
      return *net::parse_ip(backend.family == 6 ? kWestAddress6 : kWestAddress);
    });
    ASSERT_NE(table, nullptr) << error;
    services_->publish(std::move(table));  // no reader online: the old table goes at once
  }

  const lb::ServiceTable& table() const { return *services_->get(); }
  const lb::Service& service(const std::string& name) const {
    for (const auto& s : table().services())
      if (s.name == name) return s;
    ADD_FAILURE() << "no service " << name;
    return table().services().front();
  }
  // The backend slot of `service`'s backend at `address`.
  uint16_t backend_slot(const std::string& name, const char* address) const {
    for (const auto& b : service(name).backends)
      if (b.addr == ip4(address)) return b.slot;
    ADD_FAILURE() << "no backend " << address << " in " << name;
    return lb::kNoSlot;
  }
  const lb::BackendCounters& backend(const std::string& name, const char* address) const {
    return lb_->backend(backend_slot(name, address));
  }

  const Stage& stage(Side side, std::string_view name) const {
    const Stage* s = find_stage(pipe(side), name);
    EXPECT_NE(s, nullptr) << name;
    return *s;
  }
  uint64_t drops_at(Side side, std::string_view stage_name, Drop reason) const {
    return drops(stage(side, stage_name), reason);
  }
  uint64_t drops_total() const {
    uint64_t n = 0;
    for (Side side : {Side::West, Side::East})
      for (const auto& s : pipe(side).stages()) n += s->counters().drops_total();
    return n;
  }

  // A client's datagram arriving from the gateway on east; the one frame west sent for it.
  Sent to_backend(const std::vector<uint8_t>& datagram) {
    Sent sent = run_east({frame(datagram)});
    EXPECT_EQ(sent.west.size(), 1u) << "forwarded out of west, to a backend";
    EXPECT_TRUE(sent.east.empty());
    EXPECT_TRUE(sent.punted.empty());
    return sent;
  }
  // A backend's datagram arriving on west; the one frame east sent for it.
  Sent to_client(const std::vector<uint8_t>& datagram) {
    Sent sent = run({frame(datagram)});
    EXPECT_EQ(sent.east.size(), 1u) << "forwarded out of east, to the client";
    EXPECT_TRUE(sent.west.empty());
    EXPECT_TRUE(sent.punted.empty());
    return sent;
  }

  std::unique_ptr<l3::Published<lb::ServiceTable>> services_;
  std::unique_ptr<lb::LbContext> lb_;
  lb::SlotRegistry registry_;
};

// ---- the pipeline the builder makes ----

TEST_F(LbStageTest, BuilderPutsProbeIntakeBeforeConntrackAndLbBetweenConntrackAndNat) {
  for (Side side : {Side::West, Side::East}) {
    std::vector<std::string> names;
    for (const auto& s : pipe(side).stages()) names.push_back(s->name());
    EXPECT_EQ(names, (std::vector<std::string>{"parse", "reassemble", "nptv6", "probe_intake", "conntrack", "lb", "nat",
                                               "route", "nat_src", "output"}));
  }
}

// ---- full-NAT ----

TEST_F(LbStageTest, FullNatSynGoesToABackendFromTheLocalAddressAndTheSynAckComesBackFromTheVip) {
  Sent syn = to_backend(tcp_datagram({.sport = 40000, .flags = kSyn, .seq = kClientIsn}));
  ASSERT_EQ(syn.west.size(), 1u);
  const rte_mbuf* m = syn.west[0];
  const std::string picked = dst_of(m);
  EXPECT_TRUE(picked == kBackendA || picked == kBackendB) << picked;
  EXPECT_EQ(dport_of(m), kBackendPort) << "the backend's port";
  EXPECT_EQ(src_of(m), kLocal) << "full-NAT: from the service's local address";
  const uint16_t local_port = sport_of(m);
  EXPECT_TRUE(in_range(local_port)) << local_port << " of 30000-30999";
  EXPECT_EQ(ip_of(m)[8], 63) << "routed";
  EXPECT_EQ(mac_at(data(m)), picked == kBackendA ? kMacA : kMacB) << "to the backend's MAC";
  EXPECT_EQ(mac_at(data(m) + 6), west_mac_);
  EXPECT_EQ(seq_of(m), kClientIsn) << "sequence numbers untouched";
  expect_checksums(m, "SYN to the backend");

  // The backend answers the address and port it saw.
  Sent syn_ack = to_client(answer(m, kSyn | kAck, kServerIsn, kClientIsn + 1));
  ASSERT_EQ(syn_ack.east.size(), 1u);
  const rte_mbuf* r = syn_ack.east[0];
  EXPECT_EQ(src_of(r), kVip) << "the reply is the VIP's";
  EXPECT_EQ(sport_of(r), 80);
  EXPECT_EQ(dst_of(r), kClient);
  EXPECT_EQ(dport_of(r), 40000);
  EXPECT_EQ(mac_at(data(r)), kGatewayMac);
  EXPECT_EQ(ip_of(r)[13 + 20], kSyn | kAck);
  expect_checksums(r, "SYN-ACK to the client");

  // The handshake's last ACK and data follow the pair, to the same backend and local port.
  Sent ack = to_backend(tcp_datagram({.flags = kAck | kPsh, .seq = kClientIsn + 1, .ack = kServerIsn + 1, .payload = 100}));
  ASSERT_EQ(ack.west.size(), 1u);
  EXPECT_EQ(dst_of(ack.west[0]), picked);
  EXPECT_EQ(src_of(ack.west[0]), kLocal);
  EXPECT_EQ(sport_of(ack.west[0]), local_port);
  expect_checksums(ack.west[0], "data to the backend");

  const lb::Service& web = service("web");
  EXPECT_EQ(counter(stage(Side::East, "lb"), "connections"), 1u);
  EXPECT_EQ(lb_->service(web.slot).connections.get(), 1u);
  const lb::BackendCounters& b = backend("web", picked.c_str());
  EXPECT_EQ(b.connections.get(), 1u);
  EXPECT_EQ(b.active.get(), 1u);
  EXPECT_EQ(b.packets.get(), 3u) << "both directions";
  EXPECT_GT(b.bytes.get(), 100u);
  EXPECT_EQ(backend("web", picked == kBackendA ? kBackendB : kBackendA).connections.get(), 0u);
  EXPECT_EQ(flows_->table4().pairs_active(), 1u);
  EXPECT_EQ(drops_total(), 0u);
}

TEST_F(LbStageTest, FullNatConnectionIsListedWithTheBackendAndLocalTuple) {
  Sent syn = to_backend(tcp_datagram({.sport = 40000}));
  ASSERT_EQ(syn.west.size(), 1u);
  const std::vector<flow::FlowRecord> flows = list_flows();
  ASSERT_EQ(flows.size(), 1u);
  const flow::FlowRecord& f = flows[0];
  EXPECT_TRUE(f.translated);
  EXPECT_EQ(f.nat_kind & (flow::kNatDestination | flow::kNatSource | flow::kNatLb),
            flow::kNatDestination | flow::kNatSource | flow::kNatLb);
  EXPECT_EQ(test::ip4_text(f.src.data()), kClient);
  EXPECT_EQ(test::ip4_text(f.dst.data()), kVip);
  EXPECT_EQ(test::ip4_text(f.reply_src.data()), dst_of(syn.west[0]));
  EXPECT_EQ(f.reply_src_port, kBackendPort);
  EXPECT_EQ(test::ip4_text(f.reply_dst.data()), kLocal);
  EXPECT_EQ(f.reply_dst_port, sport_of(syn.west[0]));
}

TEST_F(LbStageTest, ManyClientsSpreadOverBothBackendsEachFromItsOwnLocalPort) {
  std::vector<std::vector<uint8_t>> frames;
  for (uint16_t i = 0; i < 32; ++i) frames.push_back(frame(tcp_datagram({.sport = static_cast<uint16_t>(41000 + i)})));
  Sent sent = run_east(frames);
  ASSERT_EQ(sent.west.size(), 32u);
  std::set<std::pair<std::string, uint16_t>> ports;
  unsigned to_a = 0;
  for (const rte_mbuf* m : sent.west) {
    ports.insert({dst_of(m), sport_of(m)});
    to_a += dst_of(m) == kBackendA;
    expect_checksums(m, "SYN " + std::to_string(sport_of(m)));
  }
  // Free means no connection to the same backend holds it: two backends may share one.
  EXPECT_EQ(ports.size(), 32u) << "one local port a connection to each backend";
  EXPECT_GT(to_a, 0u);
  EXPECT_LT(to_a, 32u);
  EXPECT_EQ(backend("web", kBackendA).connections.get(), to_a);
  EXPECT_EQ(backend("web", kBackendB).connections.get(), 32u - to_a);
  // Each went where Maglev's table says for its tuple.
  for (uint16_t i = 0; i < 32; ++i) {
    const lb::Service& web = service("web");
    const uint32_t h = lb::flow_hash(ip4(kClient), ip4(kVip), htons(static_cast<uint16_t>(41000 + i)), htons(80),
                                     net::kIpProtoTcp);
    const uint16_t index = web.maglev.lookup(h);
    ASSERT_LT(index, web.backends.size());
    EXPECT_EQ(dst_of(sent.west[i]), test::ip4_text(reinterpret_cast<const uint8_t*>(&web.backends[index].addr)))
        << "client port " << 41000 + i;
  }
}

// ---- DNAT ----

TEST_F(LbStageTest, DnatRewritesOnlyTheDestinationAndTheReplysSourceIsTheVipAgain) {
  Sent syn = to_backend(tcp_datagram({.sport = 40000, .dst = kDnatVip}));
  ASSERT_EQ(syn.west.size(), 1u);
  const rte_mbuf* m = syn.west[0];
  EXPECT_EQ(dst_of(m), kBackendA);
  EXPECT_EQ(dport_of(m), kBackendPort);
  EXPECT_EQ(src_of(m), kClient) << "dnat: the backend sees the client";
  EXPECT_EQ(sport_of(m), 40000);
  expect_checksums(m, "SYN to the backend");

  Sent syn_ack = to_client(answer(m, kSyn | kAck, kServerIsn, kClientIsn + 1));
  ASSERT_EQ(syn_ack.east.size(), 1u);
  const rte_mbuf* r = syn_ack.east[0];
  EXPECT_EQ(src_of(r), kDnatVip) << "the source restored to the VIP";
  EXPECT_EQ(sport_of(r), 80);
  EXPECT_EQ(dst_of(r), kClient);
  EXPECT_EQ(dport_of(r), 40000);
  expect_checksums(r, "SYN-ACK to the client");

  const std::vector<flow::FlowRecord> flows = list_flows();
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].nat_kind & flow::kNatSource, 0) << "dnat leaves the source alone";
  EXPECT_EQ(test::ip4_text(flows[0].reply_dst.data()), kClient);
  EXPECT_EQ(backend("web-dnat", kBackendA).packets.get(), 2u);
  EXPECT_EQ(drops_total(), 0u);
}

TEST_F(LbStageTest, DnatBackendsReplyMetMidStreamIsPickedUpAsItsConnection) {
  // No SYN seen (a flush, another box's failure): the backend's segment to the client,
  // tracked loosely, becomes the connection's pair; its source is the VIP's again.
  Sent reply = to_client(tcp_datagram({.src = kBackendA, .sport = kBackendPort, .dst = kClient, .dport = 40000,
                                       .flags = kAck | kPsh, .seq = kServerIsn + 1, .ack = kClientIsn + 1,
                                       .payload = 20}));
  ASSERT_EQ(reply.east.size(), 1u);
  EXPECT_EQ(src_of(reply.east[0]), kDnatVip);
  EXPECT_EQ(sport_of(reply.east[0]), 80);
  EXPECT_EQ(dst_of(reply.east[0]), kClient);
  EXPECT_EQ(dport_of(reply.east[0]), 40000);
  expect_checksums(reply.east[0], "picked-up reply");
  EXPECT_EQ(counter(stage(Side::West, "lb"), "picked_up"), 1u);
  EXPECT_EQ(lb_->service(service("web-dnat").slot).picked_up.get(), 1u);
  EXPECT_EQ(backend("web-dnat", kBackendA).active.get(), 1u);

  // The client's next segment to the VIP finds that pair.
  Sent next = to_backend(tcp_datagram({.sport = 40000, .dst = kDnatVip, .flags = kAck, .seq = kClientIsn + 1,
                                       .ack = kServerIsn + 21}));
  ASSERT_EQ(next.west.size(), 1u);
  EXPECT_EQ(dst_of(next.west[0]), kBackendA);
  EXPECT_EQ(dport_of(next.west[0]), kBackendPort);
  EXPECT_EQ(src_of(next.west[0]), kClient);
  expect_checksums(next.west[0], "the client's next segment");
  EXPECT_EQ(flows_->table4().pairs_active(), 1u);

  // A full-NAT service's backend is no DNAT one: its stray segment stays as it is.
  Sent stray = to_client(tcp_datagram({.src = kBackendB, .sport = kBackendPort, .dst = kClient2, .dport = 40000,
                                       .flags = kAck, .seq = kServerIsn + 1, .ack = kClientIsn + 1}));
  ASSERT_EQ(stray.east.size(), 1u);
  EXPECT_EQ(src_of(stray.east[0]), kBackendB);
  EXPECT_EQ(counter(stage(Side::West, "lb"), "picked_up"), 1u);
  EXPECT_EQ(drops_total(), 0u);
}

// ---- UDP ----

TEST_F(LbStageTest, UdpFullNatAndDnatRewriteWithValidChecksumsBothWays) {
  Sent full = to_backend(udp_datagram(kClient, 5000, kUdpVip, 53));
  ASSERT_EQ(full.west.size(), 1u);
  const rte_mbuf* q = full.west[0];
  EXPECT_EQ(dst_of(q), kBackendC);
  EXPECT_EQ(dport_of(q), 53) << "a backend without a port takes the service's";
  EXPECT_EQ(src_of(q), kUdpLocal);
  const uint16_t local_port = sport_of(q);
  EXPECT_GE(local_port, 1024) << "the default range 1024-65535";
  expect_checksums(q, "fullnat query");
  // The payload crosses untouched.
  EXPECT_EQ(std::vector<uint8_t>(ip_of(q) + 28, ip_of(q) + 28 + 32), pattern(32, 3));

  Sent full_reply = to_client(udp_datagram(kBackendC, 53, kUdpLocal, local_port));
  ASSERT_EQ(full_reply.east.size(), 1u);
  const rte_mbuf* a = full_reply.east[0];
  EXPECT_EQ(src_of(a), kUdpVip);
  EXPECT_EQ(sport_of(a), 53);
  EXPECT_EQ(dst_of(a), kClient);
  EXPECT_EQ(dport_of(a), 5000);
  expect_checksums(a, "fullnat answer");

  Sent dnat = to_backend(udp_datagram(kClient, 5001, kDnatUdpVip, 53));
  ASSERT_EQ(dnat.west.size(), 1u);
  EXPECT_EQ(dst_of(dnat.west[0]), kBackendC);
  EXPECT_EQ(dport_of(dnat.west[0]), 5353);
  EXPECT_EQ(src_of(dnat.west[0]), kClient);
  EXPECT_EQ(sport_of(dnat.west[0]), 5001);
  expect_checksums(dnat.west[0], "dnat query");
  Sent dnat_reply = to_client(udp_datagram(kBackendC, 5353, kClient, 5001));
  ASSERT_EQ(dnat_reply.east.size(), 1u);
  EXPECT_EQ(src_of(dnat_reply.east[0]), kDnatUdpVip);
  EXPECT_EQ(sport_of(dnat_reply.east[0]), 53);
  expect_checksums(dnat_reply.east[0], "dnat answer");
  EXPECT_EQ(drops_total(), 0u);
}

TEST_F(LbStageTest, UdpWithoutAChecksumIsSentWithoutOneBothWays) {
  // nat::rewrite leaves a zero UDP checksum zero (RFC 768: none).
  Sent full = to_backend(udp_datagram(kClient, 5000, kUdpVip, 53, false));
  ASSERT_EQ(full.west.size(), 1u);
  EXPECT_EQ(dst_of(full.west[0]), kBackendC);
  EXPECT_EQ(src_of(full.west[0]), kUdpLocal);
  expect_checksums(full.west[0], "fullnat query", true);
  Sent reply = to_client(udp_datagram(kBackendC, 53, kUdpLocal, sport_of(full.west[0]), false));
  ASSERT_EQ(reply.east.size(), 1u);
  EXPECT_EQ(src_of(reply.east[0]), kUdpVip);
  expect_checksums(reply.east[0], "fullnat answer", true);

  Sent dnat = to_backend(udp_datagram(kClient, 5001, kDnatUdpVip, 53, false));
  ASSERT_EQ(dnat.west.size(), 1u);
  EXPECT_EQ(dport_of(dnat.west[0]), 5353);
  expect_checksums(dnat.west[0], "dnat query", true);
}

// ---- established connections and table changes ----

TEST_F(LbStageTest, EstablishedConnectionKeepsItsBackendWhenTheServiceTableChanges) {
  Sent syn = to_backend(tcp_datagram({.sport = 40000}));
  ASSERT_EQ(syn.west.size(), 1u);
  const std::string picked = dst_of(syn.west[0]);
  const uint16_t local_port = sport_of(syn.west[0]);
  Sent syn_ack = to_client(answer(syn.west[0], kSyn | kAck, kServerIsn, kClientIsn + 1));
  ASSERT_EQ(syn_ack.east.size(), 1u);

  // A reload: the picked backend leaves "web", a new one comes (drain: its connections live on).
  std::vector<config::LbService> next = config_.services;
  config::LbService& web = next[0];
  ASSERT_EQ(web.name, "web");
  web.backends.erase(web.backends.begin() + (picked == kBackendA ? 0 : 1));
  config::LbBackend c;
  c.name = "c";
  c.address = *net::parse_ip(kBackendC);
  c.port = kBackendPort;
  web.backends.push_back(c);
  const uint16_t picked_slot = backend_slot("web", picked.c_str());
  publish_services(next);
  ASSERT_FALSE(table().has_backend_slot(picked_slot));

  for (int i = 0; i < 3; ++i) {
    Sent data = to_backend(tcp_datagram({.flags = kAck | kPsh, .seq = kClientIsn + 1 + 10u * i,
                                         .ack = kServerIsn + 1, .payload = 10}));
    ASSERT_EQ(data.west.size(), 1u);
    EXPECT_EQ(dst_of(data.west[0]), picked) << "segment " << i << ": never moves";
    EXPECT_EQ(src_of(data.west[0]), kLocal);
    EXPECT_EQ(sport_of(data.west[0]), local_port);
    expect_checksums(data.west[0], "segment " + std::to_string(i));
  }
  EXPECT_EQ(lb_->backend(picked_slot).packets.get(), 5u);

  // A new connection meets the new set only.
  Sent fresh = run_east({frame(tcp_datagram({.src = kClient2, .sport = 40000})),
                         frame(tcp_datagram({.src = kClient2, .sport = 40001})),
                         frame(tcp_datagram({.src = kClient2, .sport = 40002})),
                         frame(tcp_datagram({.src = kClient2, .sport = 40003}))});
  ASSERT_EQ(fresh.west.size(), 4u);
  for (const rte_mbuf* m : fresh.west) EXPECT_NE(dst_of(m), picked) << "removed from the service";
  EXPECT_EQ(drops_total(), 0u);
}

TEST_F(LbStageTest, RemovedBackendsConnectionIsDroppedWhenTheServiceSaysDrop) {
  Sent syn = to_backend(tcp_datagram({.sport = 40000}));
  ASSERT_EQ(syn.west.size(), 1u);
  const std::string picked = dst_of(syn.west[0]);
  const uint16_t picked_slot = backend_slot("web", picked.c_str());
  EXPECT_EQ(lb_->backend(picked_slot).active.get(), 1u);

  std::vector<config::LbService> next = config_.services;
  next[0].on_backend_removed = config::LbRemoval::Drop;
  next[0].backends.erase(next[0].backends.begin() + (picked == kBackendA ? 0 : 1));
  publish_services(next);

  Sent answer_sent = run({frame(answer(syn.west[0], kSyn | kAck, kServerIsn, kClientIsn + 1))});
  EXPECT_TRUE(answer_sent.east.empty()) << "the removed backend's connection is gone";
  EXPECT_EQ(drops_at(Side::West, "lb", Drop::LbBackendRemoved), 1u);
  EXPECT_EQ(lb_->service(service("web").slot).removed.get(), 1u);
  EXPECT_EQ(flows_->table4().pairs_active(), 0u);
  EXPECT_EQ(lb_->backend(picked_slot).active.get(), 0u) << "its pair's end gave the connection back";
}

// ---- refusals and what is not a service ----

TEST_F(LbStageTest, SynIsDroppedAndCountedWhenNoBackendIsUp) {
  publish_services(config_.services, [](uint16_t) { return false; });
  Sent sent = run_east({frame(tcp_datagram({.sport = 40000}))});
  EXPECT_TRUE(sent.west.empty()) << "nowhere to go";
  EXPECT_TRUE(sent.east.empty()) << "not sent on to the VIP's own subnet";
  EXPECT_TRUE(sent.punted.empty()) << "not handed to the router to resolve the VIP";
  EXPECT_EQ(drops_at(Side::East, "lb", Drop::LbNoBackend), 1u);
  EXPECT_EQ(lb_->service(service("web").slot).no_backend.get(), 1u);
  EXPECT_EQ(flows_->active(), 0u) << "no entry left behind";
}

TEST_F(LbStageTest, NewConnectionToAnAddressThatIsNoVipPassesUntranslated) {
  Sent sent = to_backend(tcp_datagram({.sport = 40000, .dst = kPlainHost}));
  ASSERT_EQ(sent.west.size(), 1u);
  const rte_mbuf* m = sent.west[0];
  EXPECT_EQ(src_of(m), kClient);
  EXPECT_EQ(sport_of(m), 40000);
  EXPECT_EQ(dst_of(m), kPlainHost);
  EXPECT_EQ(dport_of(m), 80);
  EXPECT_EQ(mac_at(data(m)), kPlainMac);
  expect_checksums(m, "plain SYN");
  // A VIP's port that no service takes is no service either.
  Sent other_port = to_backend(tcp_datagram({.sport = 40001, .dst = kPlainHost, .dport = 81}));
  EXPECT_EQ(other_port.west.size(), 1u);
  EXPECT_EQ(counter(stage(Side::East, "lb"), "connections"), 0u);
  EXPECT_EQ(flows_->table4().pairs_active(), 0u);
  EXPECT_EQ(flows_->active(), 2u) << "tracked as plain flows";
  EXPECT_EQ(drops_total(), 0u);
}

TEST_F(LbStageTest, EndedConnectionGivesBackItsBackendsActiveCount) {
  Sent q = to_backend(udp_datagram(kClient, 5000, kUdpVip, 53));
  ASSERT_EQ(q.west.size(), 1u);
  const lb::BackendCounters& c = backend("dns", kBackendC);
  EXPECT_EQ(c.active.get(), 1u);
  EXPECT_EQ(c.connections.get(), 1u);
  advance((config_.conntrack.timeouts.udp_stream + 1) * 1000);
  for (int round = 0; round < 10; ++round) flows_->service();
  EXPECT_EQ(flows_->active(), 0u);
  EXPECT_EQ(c.active.get(), 0u) << "the pair's end (LbContext::pair_removed)";
  EXPECT_EQ(c.connections.get(), 1u) << "a total";
}

// ---- ipip (direct server return) ----

// The frame's outer IPv4 header (at the L3 offset) and the packet inside it.
const uint8_t* inner_of(const rte_mbuf* m) { return ip_of(m) + 20; }

TEST_F(LbStageTest, IpipConnectionGoesToItsBackendInsideAnOuterHeaderWithThePacketUntouched) {
  const std::vector<uint8_t> syn = tcp_datagram({.sport = 40000, .dst = kDsrVip, .flags = kSyn, .seq = kClientIsn});
  Sent sent = to_backend(syn);
  ASSERT_EQ(sent.west.size(), 1u);
  const rte_mbuf* m = sent.west[0];
  const uint8_t* outer = ip_of(m);
  EXPECT_EQ(mac_at(data(m)), kMacB) << "to the backend's MAC";
  EXPECT_EQ(outer[0], 0x45);
  EXPECT_EQ(outer[9], 4) << "IP-in-IP";
  EXPECT_EQ(test::src4(outer), kWestAddress);
  EXPECT_EQ(test::dst4(outer), kBackendB);
  EXPECT_EQ(outer[8], 63) << "TTL 64, less the route stage's hop";
  EXPECT_EQ(get16(outer + 6) & 0x4000, 0) << "DF clear: the route stage may fragment it";
  EXPECT_TRUE(test::ipv4_checksum_ok(outer));
  EXPECT_EQ(get16(outer + 2), syn.size() + 20) << "outer total length";
  EXPECT_EQ(rte_pktmbuf_pkt_len(m), test::kEthLen + 20 + syn.size());
  // The client's packet as it sent it: VIP, port, checksums; only its TTL is the client's.
  std::vector<uint8_t> inner(inner_of(m), inner_of(m) + syn.size());
  EXPECT_EQ(test::dst4(inner.data()), kDsrVip);
  EXPECT_EQ(get16(inner.data() + 22), 80);
  EXPECT_EQ(inner, syn) << "not rewritten";
  EXPECT_EQ(counter(stage(Side::East, "lb"), "encapsulated"), 1u);
  EXPECT_EQ(backend("web-dsr", kBackendB).connections.get(), 1u);

  // The client's next segments (the backend answered it directly): the same tunnel, and
  // conntrack, seeing one side only, takes them as the connection's (ESTABLISHED).
  for (uint32_t k = 0; k < 3; ++k) {
    Sent data_sent = to_backend(tcp_datagram({.sport = 40000, .dst = kDsrVip, .flags = kAck | kPsh,
                                              .seq = kClientIsn + 1 + k * 100, .ack = kServerIsn + 1, .payload = 100}));
    ASSERT_EQ(data_sent.west.size(), 1u);
    EXPECT_EQ(test::dst4(ip_of(data_sent.west[0])), kBackendB);
    EXPECT_EQ(test::dst4(inner_of(data_sent.west[0])), kDsrVip);
  }
  EXPECT_EQ(flows_->table4().pairs_active(), 1u);
  EXPECT_EQ(backend("web-dsr", kBackendB).packets.get(), 4u);
  EXPECT_EQ(drops_total(), 0u);
}

TEST_F(LbStageTest, IpipPacketOverTheMtuWithItsOuterHeaderIsFragmentedNotRefused) {
  // 1500 bytes from the client (DF set, as TCP sends): 1520 with the outer header.
  to_backend(tcp_datagram({.sport = 40001, .dst = kDsrVip, .flags = kSyn, .seq = kClientIsn}));
  std::vector<uint8_t> big = tcp_datagram({.sport = 40001, .dst = kDsrVip, .flags = kAck | kPsh,
                                           .seq = kClientIsn + 1, .ack = kServerIsn + 1, .payload = 1460});
  ASSERT_EQ(big.size(), 1500u);
  Sent sent = run_east({frame(big)});
  ASSERT_EQ(sent.west.size(), 2u) << "the outer packet in two fragments";
  size_t carried = 0;
  for (const rte_mbuf* f : sent.west) {
    const uint8_t* outer = ip_of(f);
    EXPECT_EQ(outer[9], 4);
    EXPECT_EQ(test::dst4(outer), kBackendB);
    EXPECT_TRUE(test::ipv4_checksum_ok(outer));
    carried += get16(outer + 2) - 20u;
  }
  EXPECT_EQ(carried, big.size()) << "the whole inner packet";
  EXPECT_TRUE(sent.east.empty()) << "no ICMP too-big to the client";
  EXPECT_EQ(drops_total(), 0u);
}

TEST_F(LbStageTest, IpipFinEndsTheConnectionAndANewSynOnThePortIsANewConnection) {
  to_backend(tcp_datagram({.sport = 40002, .dst = kDsrVip, .flags = kSyn, .seq = kClientIsn}));
  to_backend(tcp_datagram({.sport = 40002, .dst = kDsrVip, .flags = kAck, .seq = kClientIsn + 1, .ack = kServerIsn + 1}));
  to_backend(tcp_datagram({.sport = 40002, .dst = kDsrVip, .flags = kAck | 0x01, .seq = kClientIsn + 1,
                           .ack = kServerIsn + 1}));
  EXPECT_EQ(backend("web-dsr", kBackendB).connections.get(), 1u);
  Sent again = to_backend(tcp_datagram({.sport = 40002, .dst = kDsrVip, .flags = kSyn, .seq = kClientIsn + 90000}));
  ASSERT_EQ(again.west.size(), 1u);
  EXPECT_EQ(test::dst4(ip_of(again.west[0])), kBackendB);
  EXPECT_EQ(backend("web-dsr", kBackendB).connections.get(), 2u) << "reopened: a new connection";
  EXPECT_EQ(flows_->counters().reopened.get(), 1u);
  EXPECT_EQ(drops_total(), 0u);
}

// ---- IPv6 services: ipip, IPv6-in-IPv6 ----

// A TCP segment from the IPv6 client in an Ethernet frame, its checksum computed in full.
std::vector<uint8_t> tcp6_frame(uint16_t sport, uint8_t flags, uint32_t seq, uint32_t ack = 0, size_t payload = 0) {
  test::V6 v;
  v.src = kClient6;
  v.dst = kVip6;
  v.proto = net::kIpProtoTcp;
  v.payload = payload;
  v.src_port = sport;
  v.dst_port = 80;
  std::vector<uint8_t> b = test::ipv6_frame(v);
  const size_t ip = test::kEthLen, l4 = ip + 40;
  b[l4 + 13] = flags;
  for (int k = 0; k < 4; ++k) {
    b[l4 + 4 + k] = static_cast<uint8_t>(seq >> (24 - 8 * k));
    b[l4 + 8 + k] = static_cast<uint8_t>(ack >> (24 - 8 * k));
  }
  test::put16(b, l4 + 16, 0);
  const uint32_t len = static_cast<uint32_t>(b.size() - l4);
  test::put16(b, l4 + 16, static_cast<uint16_t>(~test::sum16(&b[l4], len, test::pseudo6(&b[ip], len, net::kIpProtoTcp))));
  return b;
}

std::string addr6_at(const uint8_t* p) {
  net::IpAddr a = net::IpAddr::v6(p);
  return a.str();
}

TEST_F(LbStageTest, Ipv6IpipConnectionGoesToItsBackendInsideAnOuterIpv6HeaderUntouched) {
  const std::vector<uint8_t> syn = tcp6_frame(40000, kSyn, kClientIsn);
  Sent sent = run_east({syn});
  ASSERT_EQ(sent.west.size(), 1u) << "tunnelled out of west";
  EXPECT_TRUE(sent.east.empty());
  const rte_mbuf* m = sent.west[0];
  const uint8_t* outer = data(m) + test::kEthLen;
  EXPECT_EQ(get16(data(m) + 12), net::kEtherTypeIpv6);
  EXPECT_EQ(outer[0] >> 4, 6);
  EXPECT_EQ(outer[6], 41) << "IPv6 in IPv6";
  EXPECT_EQ(outer[7], 63) << "hop limit 64, less the route stage's hop";
  EXPECT_EQ(addr6_at(outer + 8), kWestAddress6);
  const std::string backend = addr6_at(outer + 24);
  ASSERT_TRUE(backend == kBackend6A || backend == kBackend6B) << backend;
  EXPECT_EQ(mac_at(data(m)), backend == kBackend6A ? kMacA : kMacB) << "to the backend's MAC";
  const size_t inner_len = syn.size() - test::kEthLen;
  EXPECT_EQ(get16(outer + 4), inner_len) << "outer payload length: the whole client packet";
  EXPECT_NE(rte_be_to_cpu_32(net::load32(outer)) & 0xfffff, 0u) << "a flow label for the connection (RFC 6438)";
  ASSERT_EQ(rte_pktmbuf_pkt_len(m), syn.size() + 40);
  const std::vector<uint8_t> inner(outer + 40, outer + 40 + inner_len);
  EXPECT_EQ(inner, std::vector<uint8_t>(syn.begin() + test::kEthLen, syn.end())) << "the client's packet as sent";
  const uint32_t label = rte_be_to_cpu_32(net::load32(outer)) & 0xfffff;

  // The client's next segments: the same backend, the same label, with no table lookup.
  for (uint32_t k = 0; k < 3; ++k) {
    Sent next = run_east({tcp6_frame(40000, kAck | kPsh, kClientIsn + 1 + k * 100, kServerIsn + 1, 100)});
    ASSERT_EQ(next.west.size(), 1u);
    const uint8_t* o = data(next.west[0]) + test::kEthLen;
    EXPECT_EQ(addr6_at(o + 24), backend);
    EXPECT_EQ(rte_be_to_cpu_32(net::load32(o)) & 0xfffff, label);
  }
  const lb::BackendCounters& c = lb_->backend(service("web6").backends[backend == kBackend6A ? 0 : 1].slot);
  EXPECT_EQ(c.connections.get(), 1u);
  EXPECT_EQ(c.active.get(), 1u);
  EXPECT_EQ(c.packets.get(), 4u);
  EXPECT_EQ(lb_->service(service("web6").slot).connections.get(), 1u);
  EXPECT_EQ(counter(stage(Side::East, "lb"), "encapsulated"), 4u);
  EXPECT_EQ(flows_->table6()->active(), 1u);
  EXPECT_EQ(drops_total(), 0u);
  // /flows shows the tunnel it travels in.
  const std::vector<flow::FlowRecord> listed = list_flows();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_TRUE(listed[0].tunnel);
  EXPECT_EQ(net::IpAddr::v6(listed[0].tunnel_dst.data()).str(), backend);
  EXPECT_EQ(net::IpAddr::v6(listed[0].tunnel_src.data()).str(), kWestAddress6);

  // Its end (a reset, then the close timeout) gives the backend's active count back.
  run_east({tcp6_frame(40000, kAck | 0x04, kClientIsn + 301, kServerIsn + 1)});
  advance(20000);
  for (int round = 0; round < 10; ++round) flows_->service();
  EXPECT_EQ(flows_->table6()->active(), 0u);
  EXPECT_EQ(c.active.get(), 0u) << "LbContext::entry6_removed";
}

TEST_F(LbStageTest, Ipv6ConnectionsSpreadOverBothBackendsAsMaglevSays) {
  std::set<std::string> seen;
  for (uint16_t port = 41000; port < 41064; ++port) {
    Sent sent = run_east({tcp6_frame(port, kSyn, kClientIsn)});
    ASSERT_EQ(sent.west.size(), 1u);
    const uint8_t* outer = data(sent.west[0]) + test::kEthLen;
    const std::string backend = addr6_at(outer + 24);
    seen.insert(backend);
    // Every box with this config picks the same: Maglev's entry for the IPv6 5-tuple.
    const net::IpAddr src = *net::parse_ip(kClient6), dst = *net::parse_ip(kVip6);
    const lb::Service& s = service("web6");
    const uint16_t expect =
        s.maglev.lookup(lb::flow_hash6(src.bytes.data(), dst.bytes.data(), htons(port), htons(80), net::kIpProtoTcp));
    EXPECT_EQ(backend, net::IpAddr::v6(s.backends[expect].addr6.data()).str()) << port;
  }
  EXPECT_EQ(seen.size(), 2u) << "64 connections reach both backends";
  EXPECT_EQ(drops_total(), 0u);
}

TEST_F(LbStageTest, Ipv6PacketOverTheMtuWithItsOuterHeaderGetsPacketTooBigForTheClient) {
  run_east({tcp6_frame(40010, kSyn, kClientIsn)});
  // 1500 bytes from the client: 1540 in the tunnel, over west's 1500.
  const std::vector<uint8_t> big = tcp6_frame(40010, kAck | kPsh, kClientIsn + 1, kServerIsn + 1, 1440);
  ASSERT_EQ(big.size() - test::kEthLen, 1500u);
  Sent sent = run_east({big});
  EXPECT_TRUE(sent.west.empty()) << "not sent: IPv6 is not fragmented on the way";
  ASSERT_EQ(sent.east.size(), 1u) << "Packet Too Big back toward the client";
  const uint8_t* ip = data(sent.east[0]) + test::kEthLen;
  EXPECT_EQ(ip[6], net::kIpProtoIcmpv6);
  EXPECT_EQ(addr6_at(ip + 24), kClient6);
  EXPECT_EQ(ip[40], 2) << "Packet Too Big";
  EXPECT_EQ(rte_be_to_cpu_32(net::load32(ip + 44)), 1460u) << "the MTU the tunnel leaves";
  EXPECT_TRUE(test::icmp6_checksum_ok(ip));
  // It quotes the client's own packet (to the VIP), not the outer one.
  EXPECT_EQ(addr6_at(ip + 48 + 8), kClient6);
  EXPECT_EQ(addr6_at(ip + 48 + 24), kVip6);
  EXPECT_EQ(drops_at(Side::East, "route", Drop::TooBig), 1u);
  // A segment that fits still goes.
  Sent fits = run_east({tcp6_frame(40010, kAck | kPsh, kClientIsn + 1, kServerIsn + 1, 1400)});
  EXPECT_EQ(fits.west.size(), 1u);
}

TEST_F(LbStageTest, Ipv6SynIsDroppedAndCountedWhenNoBackendIsUpAndLeavesNoEntry) {
  publish_services(config_.services, [](uint16_t) { return false; });
  Sent sent = run_east({tcp6_frame(40020, kSyn, kClientIsn), tcp6_frame(40020, kSyn, kClientIsn)});
  EXPECT_TRUE(sent.west.empty());
  EXPECT_TRUE(sent.east.empty());
  EXPECT_EQ(drops_at(Side::East, "lb", Drop::LbNoBackend), 2u) << "the SYN and its retransmission in the same burst";
  EXPECT_EQ(lb_->service(service("web6").slot).no_backend.get(), 1u);
  EXPECT_EQ(flows_->table6()->active(), 0u) << "no entry left behind";
}

TEST_F(LbStageTest, Ipv6FragmentsToAVipAreDroppedAndCountedAndOpenNoConnection) {
  test::V6 first;
  first.src = kClient6;
  first.dst = kVip6;
  first.proto = net::kIpProtoTcp;
  first.dst_port = 80;
  first.payload = 200;
  first.fragment_offset = 0;
  first.more_fragments = true;
  test::V6 later = first;
  later.fragment_offset = 26;
  later.more_fragments = false;
  Sent sent = run_east({test::ipv6_frame(first), test::ipv6_frame(later)});
  EXPECT_TRUE(sent.west.empty()) << "neither fragment reaches a backend";
  EXPECT_TRUE(sent.east.empty());
  EXPECT_EQ(drops_at(Side::East, "lb", Drop::LbIpv6Fragment), 2u);
  EXPECT_EQ(flows_->table6()->active(), 0u) << "the first fragment's connection removed again";
  EXPECT_EQ(lb_->service(service("web6").slot).connections.get(), 0u);
  // A whole segment of the same connection afterwards is scheduled as usual.
  EXPECT_EQ(run_east({tcp6_frame(40000, kSyn, kClientIsn)}).west.size(), 1u);
}

}  // namespace
}  // namespace sluice::pipeline
