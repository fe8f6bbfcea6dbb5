// lib/pipeline/conntrack (and steer) on crafted frames through real pipelines: parse ->
// conntrack -> route -> output for a two-port router, west (zone "inside", 10.1.0.1/24,
// fd00:1::1/64) and east (zone "outside", 10.2.0.1/24, fd00:2::1/64, gateway 10.2.0.2 /
// fd00:2::2 to 10.9.0.0/16 and fd00:9::/48). The client 10.1.0.10 / fd00:1::10 sits
// behind west, servers 10.9.1.1 / fd00:9::1 behind east. One worker's FlowContext with a
// fake clock (set_now/service), the firewall policy published through RCU, TX queues on
// ring-backed ports; every mbuf is freed before the pool is checked.
#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_byteorder.h>
#include <rte_ip.h>

#include "flow/flow_context.h"
#include "l3_fixture.h"
#include "l3_support.h"
#include "pipeline/flow_keys.h"
#include "pipeline/output.h"
#include "pipeline/packet_meta.h"
#include "pipeline/pipeline.h"
#include "test_support.h"

namespace sluice::pipeline {
namespace {

using flow::FlowRecord;
using flow::TcpState;
using test::addr4_raw;
using test::data;
using test::dst4;
using test::fix_l4_checksum;
using test::get16;
using test::ip_of;
using test::ipv4_checksum_ok;
using test::ipv4_frame;
using test::ipv6_frame;
using test::kGatewayMac;  // 10.2.0.2 and fd00:2::2
using test::kHostMac;
using test::kL3;
using test::mac_at;
using test::put16;
using test::Sent;
using test::Side;
using test::src4;
using test::sum16;

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10;
constexpr uint32_t kClientIsn = 1000;
constexpr uint32_t kServerIsn = 500000;
constexpr const char* kClient = "10.1.0.10";
constexpr const char* kServer = "10.9.1.1";
constexpr const char* kClient6 = "fd00:1::10";
constexpr const char* kServer6 = "fd00:9::1";

// Through the gateway behind east, for ports that route.
constexpr const char* kRoutes =
    R"("routes": [{"prefix": "10.9.0.0/16", "via": "10.2.0.2"}, {"prefix": "fd00:9::/48", "via": "fd00:2::2"}])";

// Tracked, each port a wire to the other: no addresses, no routes.
test::TwoPortSpec xconnect_ports() {
  using Json = nlohmann::ordered_json;
  test::TwoPortSpec ports{.west = {.zone = "inside"}, .east = {.zone = "outside"}};
  ports.west.pipeline = {"parse", "conntrack", Json{{"stage", "xconnect"}, {"peer", "east"}}};
  ports.east.pipeline = {"parse", "conntrack", Json{{"stage", "xconnect"}, {"peer", "west"}}};
  return ports;
}
const test::TwoPortSpec kXconnectPorts = xconnect_ports();

constexpr const char* kConntrack = R"({"capacity": 1024, "capacity_ipv6": 1024})";

// Rules 1..3: web-in, ssh-refused, discard-refused.
constexpr const char* kFirewall = R"({"default_policy": "drop",
    "policies": [{"from": "inside", "to": "outside", "action": "accept"},
                 {"from": "outside", "to": "inside", "action": "drop"}],
    "rules": [
      {"name": "web-in", "from": "outside", "to": "inside", "protocol": "tcp", "dst": "10.1.0.10",
       "dst_ports": [8080], "action": "accept"},
      {"name": "ssh-refused", "protocol": "tcp", "dst_ports": 22, "action": "reject"},
      {"name": "discard-refused", "protocol": "udp", "dst_ports": 9, "action": "reject"}],
    "reject_limit": {"rate_per_second": 1000, "burst": 50}})";

std::string make_config(const std::string& conntrack = kConntrack, const std::string& firewall = kFirewall,
                        const test::TwoPortSpec& ports = {}) {
  std::string sections = R"("conntrack": )" + conntrack;
  if (ports.west.has_stage("route")) sections += std::string(", ") + kRoutes;
  if (!firewall.empty()) sections += R"(, "firewall": )" + firewall;
  return test::two_port_config(ports, sections);
}

// kFirewall with one more rule at the end.
std::string firewall_with(const std::string& rule) {
  std::string text = kFirewall;
  const std::string anchor = R"("action": "reject"}],)";
  text.replace(text.rfind(anchor), anchor.size(), R"("action": "reject"}, )" + rule + "],");
  return text;
}

void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  put16(b, at, uint16_t(v >> 16));
  put16(b, at + 2, uint16_t(v));
}
uint32_t get32(const uint8_t* p) { return uint32_t(get16(p)) << 16 | get16(p + 2); }

// One TCP segment; IPv4 unless the addresses say otherwise (tcp6).
struct Tcp {
  const char* src = kClient;
  const char* dst = kServer;
  uint16_t sport = 40000, dport = 80;
  uint8_t flags = kSyn;
  uint32_t seq = kClientIsn, ack = 0;
  uint16_t window = 64240;
  size_t payload = 0;
  uint8_t ttl = 64;
};

void fill_tcp(std::vector<uint8_t>& b, size_t l4, const Tcp& t) {
  put32(b, l4 + 4, t.seq);
  put32(b, l4 + 8, t.ack);
  b[l4 + 13] = t.flags;
  put16(b, l4 + 14, t.window);
}

std::vector<uint8_t> tcp4(const Tcp& t) {
  std::vector<uint8_t> b = ipv4_frame({.src = t.src, .dst = t.dst, .proto = net::kIpProtoTcp, .ttl = t.ttl,
                                       .payload = t.payload, .src_port = t.sport, .dst_port = t.dport});
  fill_tcp(b, kL3 + 20, t);
  fix_l4_checksum(b, false);
  return b;
}

std::vector<uint8_t> tcp6(const Tcp& t) {
  std::vector<uint8_t> b = ipv6_frame({.src = t.src, .dst = t.dst, .proto = net::kIpProtoTcp, .hop_limit = t.ttl,
                                       .payload = t.payload, .src_port = t.sport, .dst_port = t.dport});
  fill_tcp(b, kL3 + 40, t);
  fix_l4_checksum(b, true);
  return b;
}

std::vector<uint8_t> udp4(const char* src, const char* dst, uint16_t sport, uint16_t dport, uint8_t ttl = 64) {
  std::vector<uint8_t> b =
      ipv4_frame({.src = src, .dst = dst, .proto = net::kIpProtoUdp, .ttl = ttl, .src_port = sport, .dst_port = dport});
  fix_l4_checksum(b, false);
  return b;
}

void fix_icmp4_checksum(std::vector<uint8_t>& b) {
  const size_t l4 = kL3 + 20;
  put16(b, l4 + 2, 0);
  put16(b, l4 + 2, uint16_t(~sum16(&b[l4], b.size() - l4)));
}

// An ICMP echo request (8) or reply (0) with identifier `id`.
std::vector<uint8_t> echo4(const char* src, const char* dst, uint8_t type, uint16_t id = 1) {
  std::vector<uint8_t> b = ipv4_frame({.src = src, .dst = dst, .proto = net::kIpProtoIcmp, .icmp_type = type});
  put16(b, kL3 + 24, id);
  fix_icmp4_checksum(b);
  return b;
}

// An ICMP error from `src` to `dst` quoting the IP header and 8 bytes of `offending`.
std::vector<uint8_t> icmp4_error(const char* src, const char* dst, uint8_t type, uint8_t code,
                                 const std::vector<uint8_t>& offending) {
  constexpr size_t kQuote = 28;
  std::vector<uint8_t> b =
      ipv4_frame({.src = src, .dst = dst, .proto = net::kIpProtoIcmp, .payload = kQuote, .icmp_type = type});
  const size_t l4 = kL3 + 20;
  b[l4 + 1] = code;
  put32(b, l4 + 4, 0);
  std::copy(offending.begin() + kL3, offending.begin() + kL3 + kQuote, b.begin() + l4 + 8);
  fix_icmp4_checksum(b);
  return b;
}

// The frame with an 802.1Q tag after the MAC addresses.
std::vector<uint8_t> tagged(std::vector<uint8_t> frame, uint16_t vid) {
  const uint8_t tag[4] = {0x81, 0x00, uint8_t(vid >> 8), uint8_t(vid)};
  frame.insert(frame.begin() + 12, tag, tag + 4);
  return frame;
}

// How many frames left by each way over a pump() of many bursts (all freed).
struct Pumped {
  size_t west = 0, east = 0, punted = 0;
};

class ConntrackStageTest : public test::TwoPortPipelineTest {
 protected:
  void SetUp() override {
    test::TwoPortPipelineTest::SetUp();
    if (HasFatalFailure()) return;
    add_neighbour(east_id_, "10.2.0.2", kGatewayMac);
    add_neighbour(east_id_, "fd00:2::2", kGatewayMac);
    add_neighbour(west_id_, kClient, kHostMac);
    add_neighbour(west_id_, kClient6, kHostMac);
    start(make_config());
  }

  void TearDown() override {
    stop_steering();
    test::TwoPortPipelineTest::TearDown();
  }

  void stop_steering() {
    west1_pipe_.reset();
    test::free_ring(ring01_);
    test::free_ring(ring10_);
    flows1_.reset();
  }

  // (Re)builds everything from `text` (the fixture's start()). `steer`: worker 0 of
  // two, handing over to worker 1 (whose west pipeline is west1_pipe_).
  void start(const std::string& text, bool steer = false, unsigned ring_size = 1024) {
    stop_steering();
    if (!steer) {
      test::TwoPortPipelineTest::start(text);
    } else {
      static unsigned serial = 0;
      const std::string n = std::to_string(serial++);
      ring01_ = rte_ring_create(("ct_h01_" + n).c_str(), ring_size, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
      ring10_ = rte_ring_create(("ct_h10_" + n).c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
      ASSERT_TRUE(ring01_ && ring10_);
      const SteerContext steer0{0, 2, {nullptr, ring01_}};
      const SteerContext steer1{1, 2, {ring10_, nullptr}};
      test::TwoPortPipelineTest::start(text, &steer0);
      if (HasFatalFailure()) return;
      std::string error;
      flows1_ = flow::FlowContext::create(1, config_.conntrack.capacity, config_.conntrack.capacity_ipv6,
                                          SOCKET_ID_ANY, error);
      ASSERT_NE(flows1_, nullptr) << error;
      flows1_->set_now(now_);
      ct1_ = ConntrackContext{flows1_.get(), policy_.get(), &reject_bucket_};
      west1_pipe_ = build("west", &ct1_, &steer1);
    }
    if (HasFatalFailure()) return;
    ASSERT_NE(find_stage(*west_pipe_, "conntrack"), nullptr);
  }

  // Many frames, a full burst at a time, everything sent freed.
  Pumped pump(const std::vector<std::vector<uint8_t>>& frames, Side side) {
    Pumped out;
    for (size_t at = 0; at < frames.size(); at += kMaxBurst) {
      std::vector<std::vector<uint8_t>> chunk(frames.begin() + static_cast<long>(at),
                                              frames.begin() + static_cast<long>(std::min(frames.size(), at + kMaxBurst)));
      if (side == Side::East)
        for (auto& f : chunk) f = from_east(f);
      Sent sent = run(chunk, side);
      out.west += sent.west.size();
      out.east += sent.east.size();
      out.punted += sent.punted.size();
    }
    return out;
  }

  // Client kClient:sport (west) opens a connection to kServer:dport (east).
  void handshake(uint16_t sport = 40000, uint16_t dport = 80) {
    Sent syn = run({tcp4({.sport = sport, .dport = dport, .flags = kSyn, .seq = kClientIsn})});
    ASSERT_EQ(syn.east.size(), 1u) << "SYN forwarded";
    Sent syn_ack = run_east({tcp4({.src = kServer, .dst = kClient, .sport = dport, .dport = sport, .flags = kSyn | kAck,
                                   .seq = kServerIsn, .ack = kClientIsn + 1})});
    ASSERT_EQ(syn_ack.west.size(), 1u) << "SYN/ACK forwarded";
    Sent ack = run({tcp4({.sport = sport, .dport = dport, .flags = kAck, .seq = kClientIsn + 1, .ack = kServerIsn + 1})});
    ASSERT_EQ(ack.east.size(), 1u) << "ACK forwarded";
  }

  std::vector<FlowRecord> flows_on_port(int port) {
    flow::FlowFilter f;
    f.port = port;
    return list_flows(f);
  }

  const Stage& ct(Side side = Side::West) const { return *find_stage(pipe(side), "conntrack"); }
  const Stage& route(Side side = Side::West) const { return *find_stage(pipe(side), "route"); }
  uint64_t ct_counter(std::string_view name, Side side = Side::West) const { return counter(ct(side), name); }
  uint64_t by_state(unsigned slot) const { return flows_->counters().by_state[slot].get(); }
  static unsigned tcp_slot(TcpState s) { return static_cast<unsigned>(s); }
  uint64_t rule_packets(unsigned rule) const { return flows_->rule_counters()[rule].packets.get(); }
  uint32_t rule_generation() const {
    const flow::FlowContext& c = *flows_;
    return c.rule_generation();
  }

  // Software steering's worker 1 (start(text, true)).
  std::unique_ptr<flow::FlowContext> flows1_;
  ConntrackContext ct1_;
  rte_ring* ring01_ = nullptr;  // steering: worker 0 -> worker 1
  rte_ring* ring10_ = nullptr;
  std::unique_ptr<Pipeline> west1_pipe_;
};

// ---- TCP through the zone policy ----

TEST_F(ConntrackStageTest, TcpHandshakeFromInsideCreatesOneFlowThatReachesEstablished) {
  Sent syn = run({tcp4({.flags = kSyn})});
  ASSERT_EQ(syn.east.size(), 1u);
  EXPECT_EQ(ip_of(syn.east[0])[8], 63) << "then routed as before";
  EXPECT_EQ(mac_at(data(syn.east[0])), kGatewayMac);
  EXPECT_EQ(by_state(tcp_slot(TcpState::SynSent)), 1u);

  Sent syn_ack = run_east({tcp4({.src = kServer, .dst = kClient, .sport = 80, .dport = 40000, .flags = kSyn | kAck,
                                 .seq = kServerIsn, .ack = kClientIsn + 1})});
  ASSERT_EQ(syn_ack.west.size(), 1u);
  EXPECT_EQ(by_state(tcp_slot(TcpState::SynRecv)), 1u);
  Sent ack = run({tcp4({.flags = kAck, .seq = kClientIsn + 1, .ack = kServerIsn + 1})});
  ASSERT_EQ(ack.east.size(), 1u);

  std::vector<FlowRecord> flows = list_flows();
  ASSERT_EQ(flows.size(), 1u);
  const FlowRecord& r = flows[0];
  EXPECT_EQ(r.family, 4);
  EXPECT_EQ(r.protocol, net::kIpProtoTcp);
  EXPECT_EQ(test::ip4_text(r.src.data()), kClient) << "the opener's direction";
  EXPECT_EQ(test::ip4_text(r.dst.data()), kServer);
  EXPECT_EQ(r.src_port, 40000);
  EXPECT_EQ(r.dst_port, 80);
  EXPECT_EQ(r.state, static_cast<uint8_t>(TcpState::Established));
  EXPECT_EQ(flow::state_name(r.protocol, r.state), "established");
  EXPECT_TRUE(r.flags & flow::kFlowAssured);
  EXPECT_EQ(r.rule, 0) << "admitted by the zone policy";
  EXPECT_GT(r.expires_in_ms, 86400 * 1000) << "tcp_established timeout";

  const flow::FlowCounters& c = flows_->counters();
  EXPECT_EQ(c.created.get(), 1u);
  EXPECT_EQ(flows_->active(), 1u);
  EXPECT_EQ(by_state(tcp_slot(TcpState::Established)), 1u);
  EXPECT_EQ(by_state(tcp_slot(TcpState::SynSent)), 0u);
  EXPECT_EQ(by_state(tcp_slot(TcpState::SynRecv)), 0u);
  EXPECT_EQ(ct_counter("new_flows"), 1u);
  EXPECT_EQ(ct_counter("policy_accepted"), 1u);
  EXPECT_EQ(ct_counter("established"), 1u) << "the ACK";
  EXPECT_EQ(ct_counter("established", Side::East), 1u) << "the SYN/ACK";
  EXPECT_EQ(ct_counter("tracked") + ct_counter("tracked", Side::East), 3u);
}

TEST_F(ConntrackStageTest, RepliesAndDataFromOutsidePassOnAnEstablishedFlow) {
  handshake();
  Sent data_out = run({tcp4({.flags = kAck, .seq = kClientIsn + 1, .ack = kServerIsn + 1, .payload = 100})});
  ASSERT_EQ(data_out.east.size(), 1u);
  Sent data_in = run_east({tcp4({.src = kServer, .dst = kClient, .sport = 80, .dport = 40000, .flags = kAck,
                                 .seq = kServerIsn + 1, .ack = kClientIsn + 101, .payload = 1000})});
  ASSERT_EQ(data_in.west.size(), 1u);
  EXPECT_EQ(mac_at(data(data_in.west[0])), kHostMac);
  EXPECT_EQ(ct(Side::East).counters().drops_total(), 0u);
  EXPECT_EQ(ct_counter("classified", Side::East), 0u) << "established packets never touch the rules";
  EXPECT_EQ(flows_->active(), 1u);
}

TEST_F(ConntrackStageTest, SynFromOutsideIsDroppedByTheZonePolicyAndCreatesNoFlow) {
  Sent sent = run_east({tcp4({.src = kServer, .dst = kClient, .sport = 50000, .dport = 80, .flags = kSyn})});
  EXPECT_TRUE(sent.west.empty());
  EXPECT_TRUE(sent.east.empty());
  EXPECT_EQ(drops(ct(Side::East), Drop::FirewallDrop), 1u);
  EXPECT_EQ(ct_counter("policy_dropped", Side::East), 1u);
  EXPECT_EQ(flows_->active(), 0u);
  EXPECT_EQ(flows_->counters().created.get(), 0u);
}

TEST_F(ConntrackStageTest, AcceptRuleLetsOneOutsideServiceIn) {
  const std::vector<uint8_t> syn = tcp4({.src = kServer, .dst = kClient, .sport = 50000, .dport = 8080, .flags = kSyn});
  Sent in = run_east({syn});
  ASSERT_EQ(in.west.size(), 1u);
  EXPECT_EQ(mac_at(data(in.west[0])), kHostMac);
  std::vector<FlowRecord> flows = flows_on_port(8080);
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].rule, 1) << "web-in admitted it";
  EXPECT_EQ(test::ip4_text(flows[0].src.data()), kServer);
  EXPECT_EQ(rule_packets(1), 1u);
  EXPECT_EQ(flows_->rule_counters()[1].bytes.get(), syn.size());
  EXPECT_EQ(ct_counter("rule_hits", Side::East), 1u);

  // The rule names one host and one port: its neighbours stay shut.
  Sent other_port = run_east({tcp4({.src = kServer, .dst = kClient, .sport = 50001, .dport = 8081, .flags = kSyn})});
  Sent other_host = run_east({tcp4({.src = kServer, .dst = "10.1.0.11", .sport = 50002, .dport = 8080, .flags = kSyn})});
  EXPECT_TRUE(other_port.west.empty());
  EXPECT_TRUE(other_host.west.empty());
  EXPECT_EQ(drops(ct(Side::East), Drop::FirewallDrop), 2u);
  EXPECT_EQ(flows_->active(), 1u);
}

// ---- reject ----

TEST_F(ConntrackStageTest, RejectedTcpSynComesBackOutOfTheIngressPortAsRstAck) {
  const std::vector<uint8_t> syn = tcp4({.dport = 22, .flags = kSyn, .seq = kClientIsn, .payload = 0});
  Sent sent = run({syn});
  EXPECT_TRUE(sent.east.empty());
  ASSERT_EQ(sent.west.size(), 1u);
  const rte_mbuf* m = sent.west[0];
  const uint8_t* f = data(m);
  EXPECT_EQ(m->pkt_len, kL3 + 40u) << "bare IPv4 and TCP headers, no data";
  EXPECT_EQ(m->pkt_len, m->data_len);
  EXPECT_EQ(mac_at(f), kHostMac) << "back to the Ethernet source";
  EXPECT_EQ(mac_at(f + 6), west_mac_) << "from the port's MAC";
  EXPECT_EQ(get16(f + 12), net::kEtherTypeIpv4);
  const uint8_t* ip = f + kL3;
  EXPECT_EQ(ip[0], 0x45);
  EXPECT_EQ(get16(ip + 2), 40);
  EXPECT_EQ(ip[9], net::kIpProtoTcp);
  EXPECT_EQ(ip[8], 64);
  EXPECT_EQ(src4(ip), kServer) << "as the refused destination";
  EXPECT_EQ(dst4(ip), kClient);
  EXPECT_TRUE(ipv4_checksum_ok(ip));
  const uint8_t* tcp = ip + 20;
  EXPECT_EQ(get16(tcp), 22);
  EXPECT_EQ(get16(tcp + 2), 40000);
  EXPECT_EQ(get32(tcp + 4), 0u) << "RFC 9293: no ACK in the SYN, so SEQ 0";
  EXPECT_EQ(get32(tcp + 8), kClientIsn + 1) << "ACK = SEG.SEQ + SEG.LEN (the SYN counts one)";
  EXPECT_EQ(tcp[12], 0x50);
  EXPECT_EQ(tcp[13], kRst | kAck);
  uint32_t pseudo = sum16(ip + 12, 8) + net::kIpProtoTcp + 20;
  EXPECT_EQ(sum16(tcp, 20, pseudo), 0xffff) << "TCP checksum over the pseudo-header";

  EXPECT_EQ(ct_counter("resets_sent"), 1u);
  EXPECT_EQ(drops(ct(), Drop::FirewallReject), 1u);
  EXPECT_EQ(rule_packets(2), 1u);
  EXPECT_EQ(flows_->active(), 0u);
}

TEST_F(ConntrackStageTest, RejectedSegmentWithAckGetsRstWithItsAckAsSequence) {
  // tcp_loose: a mid-stream ACK would open a flow, so it meets the reject rule.
  Sent sent = run({tcp4({.dport = 22, .flags = kAck, .seq = 7000, .ack = 9000, .payload = 10})});
  ASSERT_EQ(sent.west.size(), 1u);
  const uint8_t* tcp = ip_of(sent.west[0]) + 20;
  EXPECT_EQ(get32(tcp + 4), 9000u) << "SEQ = SEG.ACK";
  EXPECT_EQ(get32(tcp + 8), 0u);
  EXPECT_EQ(tcp[13], kRst);
  const uint8_t* ip = ip_of(sent.west[0]);
  EXPECT_EQ(sum16(tcp, 20, sum16(ip + 12, 8) + net::kIpProtoTcp + 20), 0xffff);
}

TEST_F(ConntrackStageTest, RejectedUdpGetsIcmpPortUnreachableQuotingIt) {
  const std::vector<uint8_t> datagram = udp4(kClient, kServer, 40000, 9);
  Sent sent = run({datagram});
  EXPECT_TRUE(sent.east.empty());
  ASSERT_EQ(sent.west.size(), 1u);
  const rte_mbuf* m = sent.west[0];
  const uint8_t* f = data(m);
  EXPECT_EQ(mac_at(f), kHostMac);
  EXPECT_EQ(mac_at(f + 6), west_mac_);
  const uint8_t* ip = f + kL3;
  EXPECT_EQ(ip[9], net::kIpProtoIcmp);
  EXPECT_EQ(src4(ip), "10.1.0.1") << "from the ingress port's address";
  EXPECT_EQ(dst4(ip), kClient);
  EXPECT_TRUE(ipv4_checksum_ok(ip));
  const uint8_t* icmp = ip + 20;
  EXPECT_EQ(icmp[0], 3);
  EXPECT_EQ(icmp[1], 3) << "port unreachable";
  EXPECT_EQ(rte_raw_cksum(icmp, m->pkt_len - kL3 - 20), 0xffff);
  const size_t quoted = m->pkt_len - kL3 - 28;
  ASSERT_EQ(quoted, datagram.size() - kL3);
  EXPECT_TRUE(std::equal(icmp + 8, icmp + 8 + quoted, datagram.begin() + kL3)) << "quotes the datagram";
  EXPECT_EQ(ct_counter("unreachables_sent"), 1u);
  EXPECT_EQ(drops(ct(), Drop::FirewallReject), 1u);
  EXPECT_EQ(rule_packets(3), 1u);
  EXPECT_EQ(flows_->active(), 0u);
}

TEST_F(ConntrackStageTest, RejectIsRateLimitedByTheBucket) {
  std::string firewall = kFirewall;
  const std::string limit = R"("rate_per_second": 1000, "burst": 50)";
  firewall.replace(firewall.find(limit), limit.size(), R"("rate_per_second": 1, "burst": 2)");
  start(make_config(kConntrack, firewall));
  std::vector<std::vector<uint8_t>> syns;
  for (uint16_t port = 41000; port < 41005; ++port) syns.push_back(tcp4({.sport = port, .dport = 22, .flags = kSyn}));
  Sent sent = run(syns);
  EXPECT_EQ(sent.west.size(), 2u) << "the burst of two";
  EXPECT_TRUE(sent.east.empty());
  EXPECT_EQ(ct_counter("resets_sent"), 2u);
  EXPECT_EQ(ct_counter("reject_rate_limited"), 3u);
  EXPECT_EQ(drops(ct(), Drop::FirewallReject), 5u);
}

// ---- ICMP ----

TEST_F(ConntrackStageTest, EchoRequestCreatesAFlowAndItsReplyIsAccepted) {
  Sent request = run({echo4(kClient, kServer, 8, 0x4242)});
  ASSERT_EQ(request.east.size(), 1u);
  EXPECT_EQ(by_state(flow::kIcmpUnreplied), 1u);
  Sent reply = run_east({echo4(kServer, kClient, 0, 0x4242)});
  ASSERT_EQ(reply.west.size(), 1u);
  std::vector<FlowRecord> flows = list_flows();
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].protocol, net::kIpProtoIcmp);
  EXPECT_EQ(flows[0].src_port, 0x4242) << "the identifier";
  EXPECT_EQ(test::ip4_text(flows[0].src.data()), kClient);
  EXPECT_EQ(flow::state_name(flows[0].protocol, flows[0].state), "replied");
  EXPECT_EQ(by_state(flow::kIcmpReplied), 1u);
  EXPECT_EQ(by_state(flow::kIcmpUnreplied), 0u);
  EXPECT_EQ(ct_counter("established", Side::East), 1u);
}

TEST_F(ConntrackStageTest, EchoReplyWithoutARequestIsDroppedAsIcmpNoFlow) {
  run({echo4(kClient, kServer, 8, 1)});
  Sent reply = run_east({echo4(kServer, kClient, 0, 2)});  // another identifier
  EXPECT_TRUE(reply.west.empty());
  EXPECT_EQ(drops(ct(Side::East), Drop::IcmpNoFlow), 1u);
  EXPECT_EQ(ct_counter("invalid", Side::East), 1u);
  EXPECT_EQ(flows_->active(), 1u);
}

TEST_F(ConntrackStageTest, IcmpErrorsQuotingTrackedFlowsAreAcceptedAsRelated) {
  const std::vector<uint8_t> datagram = udp4(kClient, kServer, 40000, 53);
  ASSERT_EQ(run({datagram}).east.size(), 1u);
  const std::vector<uint8_t> syn = tcp4({.sport = 40001, .dport = 80, .flags = kSyn});
  ASSERT_EQ(run({syn}).east.size(), 1u);
  // The server refuses the datagram; a router on the way drops the SYN.
  Sent sent = run_east({icmp4_error(kServer, kClient, 3, 3, datagram), icmp4_error("10.9.0.254", kClient, 11, 0, syn)});
  ASSERT_EQ(sent.west.size(), 2u);
  EXPECT_EQ(ip_of(sent.west[0])[20], 3);
  EXPECT_EQ(ip_of(sent.west[1])[20], 11);
  EXPECT_EQ(ct_counter("related", Side::East), 2u);
  EXPECT_EQ(ct(Side::East).counters().drops_total(), 0u);
  EXPECT_EQ(flows_->active(), 2u) << "no flow of their own";
  EXPECT_EQ(by_state(flow::kUdpUnreplied), 1u) << "an error is not a reply";
  EXPECT_EQ(by_state(tcp_slot(TcpState::SynSent)), 1u);
}

TEST_F(ConntrackStageTest, IcmpErrorQuotingAnUnknownFlowIsDroppedAsIcmpNoFlow) {
  ASSERT_EQ(run({udp4(kClient, kServer, 40000, 53)}).east.size(), 1u);
  Sent sent = run_east({icmp4_error(kServer, kClient, 3, 3, udp4(kClient, kServer, 40001, 53))});
  EXPECT_TRUE(sent.west.empty());
  EXPECT_EQ(drops(ct(Side::East), Drop::IcmpNoFlow), 1u);
  EXPECT_EQ(ct_counter("related", Side::East), 0u);
}

// ---- TCP: invalid segments ----

TEST_F(ConntrackStageTest, SynFinIsDroppedAsTcpBadFlags) {
  Sent sent = run({tcp4({.flags = kSyn | kFin})});
  EXPECT_TRUE(sent.east.empty());
  EXPECT_EQ(drops(ct(), Drop::TcpBadFlags), 1u);
  EXPECT_EQ(ct_counter("invalid"), 1u);
  EXPECT_EQ(flows_->active(), 0u);
}

TEST_F(ConntrackStageTest, DataOutsideTheWindowIsDroppedAsTcpOutOfWindow) {
  handshake();
  Sent sent = run({tcp4({.flags = kAck, .seq = kClientIsn + 1 + 200000, .ack = kServerIsn + 1, .payload = 100})});
  EXPECT_TRUE(sent.east.empty());
  EXPECT_EQ(drops(ct(), Drop::TcpOutOfWindow), 1u);
  // The flow itself carries on.
  Sent ok = run({tcp4({.flags = kAck, .seq = kClientIsn + 1, .ack = kServerIsn + 1, .payload = 100})});
  EXPECT_EQ(ok.east.size(), 1u);
  EXPECT_EQ(by_state(tcp_slot(TcpState::Established)), 1u);
}

TEST_F(ConntrackStageTest, NonSynWithoutAFlowIsDroppedAsTcpNoFlowWhenNotLoose) {
  start(make_config(R"({"capacity": 1024, "capacity_ipv6": 1024, "tcp_loose": false})"));
  Sent sent = run({tcp4({.flags = kAck, .seq = 7000, .ack = 9000})});
  EXPECT_TRUE(sent.east.empty());
  EXPECT_EQ(drops(ct(), Drop::TcpNoFlow), 1u);
  EXPECT_EQ(flows_->active(), 0u);
  EXPECT_EQ(run({tcp4({.flags = kSyn})}).east.size(), 1u) << "a SYN still opens";
}

TEST_F(ConntrackStageTest, LooseModePicksUpAMidStreamConnection) {
  Sent sent = run({tcp4({.flags = kAck, .seq = 7000, .ack = 9000, .payload = 10})});
  ASSERT_EQ(sent.east.size(), 1u);
  std::vector<FlowRecord> flows = list_flows();
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].state, static_cast<uint8_t>(TcpState::Established));
  EXPECT_FALSE(flows[0].flags & flow::kFlowAssured) << "not assured until it sees a reply";
}

TEST_F(ConntrackStageTest, SegmentAfterTheSynOfANewFlowInOneBurstIsJudgedByThatFlow) {
  // Both in one burst: the ACK comes before any SYN/ACK, which the flow the SYN just
  // opened does not allow (as if they had come one burst each).
  Sent sent = run({tcp4({.flags = kSyn}), tcp4({.flags = kAck, .seq = kClientIsn + 1, .ack = kServerIsn + 1})});
  EXPECT_EQ(sent.east.size(), 1u);
  EXPECT_EQ(drops(ct(), Drop::TcpBadTransition), 1u);
  EXPECT_EQ(ct_counter("new_flows"), 1u);
  EXPECT_EQ(flows_->counters().created.get(), 1u);
  EXPECT_EQ(by_state(tcp_slot(TcpState::SynSent)), 1u);
}

TEST_F(ConntrackStageTest, SegmentRefusedByAFlowOpenedInTheSameBurstMeetsTheInvalidRules) {
  start(make_config(kConntrack, firewall_with(
                                    R"({"name": "allow-invalid-tcp", "protocol": "tcp", "state": ["invalid"], "action": "accept"})")));
  Sent sent = run({tcp4({.flags = kSyn}), tcp4({.flags = kAck, .seq = kClientIsn + 1, .ack = kServerIsn + 1})});
  EXPECT_EQ(sent.east.size(), 2u);
  EXPECT_EQ(ct_counter("invalid"), 1u);
  EXPECT_EQ(ct_counter("invalid_forwarded"), 1u);
  EXPECT_EQ(rule_packets(4), 1u);
  EXPECT_EQ(flows_->active(), 1u);
}

TEST_F(ConntrackStageTest, TwoDatagramsOfANewFlowInOneBurstMakeOneFlow) {
  Sent sent = run({udp4(kClient, kServer, 40000, 53), udp4(kClient, kServer, 40000, 53)});
  EXPECT_EQ(sent.east.size(), 2u);
  EXPECT_EQ(ct_counter("new_flows"), 1u);
  EXPECT_EQ(ct_counter("established"), 1u) << "the second joined the first's flow";
  EXPECT_EQ(flows_->counters().created.get(), 1u);
  EXPECT_EQ(flows_->active(), 1u);
}

TEST_F(ConntrackStageTest, RuleForTheInvalidStateLetsInvalidPacketsThrough) {
  start(make_config(kConntrack, firewall_with(
                                    R"({"name": "allow-invalid-icmp", "protocol": "icmp", "state": ["invalid"], "action": "accept"})")));
  Sent sent = run_east({echo4(kServer, kClient, 0, 7)});
  ASSERT_EQ(sent.west.size(), 1u) << "an unrequested echo reply, let through";
  EXPECT_EQ(ct_counter("invalid", Side::East), 1u);
  EXPECT_EQ(ct_counter("invalid_forwarded", Side::East), 1u);
  EXPECT_EQ(rule_packets(4), 1u);
  EXPECT_EQ(flows_->active(), 0u) << "an invalid packet opens nothing";
  // Other invalid packets are still dropped.
  Sent bad = run({tcp4({.flags = kSyn | kFin})});
  EXPECT_TRUE(bad.east.empty());
  EXPECT_EQ(drops(ct(), Drop::TcpBadFlags), 1u);
}

TEST_F(ConntrackStageTest, WithoutAFirewallEveryConnectionIsAcceptedAndInvalidPacketsAreForwarded) {
  start(make_config(kConntrack, ""));
  Sent in = run_east({tcp4({.src = kServer, .dst = kClient, .sport = 50000, .dport = 80, .flags = kSyn})});
  EXPECT_EQ(in.west.size(), 1u) << "outside -> inside too";
  Sent ssh = run({tcp4({.dport = 22, .flags = kSyn})});
  EXPECT_EQ(ssh.east.size(), 1u);
  Sent bad = run({tcp4({.sport = 40001, .flags = kSyn | kFin})});
  EXPECT_EQ(bad.east.size(), 1u) << "tracking only: invalid is forwarded";
  EXPECT_EQ(ct_counter("invalid"), 1u);
  EXPECT_EQ(ct_counter("invalid_forwarded"), 1u);
  EXPECT_EQ(ct_counter("classified"), 0u);
  EXPECT_EQ(flows_->active(), 2u);
}

// ---- a full table ----

std::vector<std::vector<uint8_t>> udp_requests(uint16_t first, unsigned n) {
  std::vector<std::vector<uint8_t>> frames;
  for (unsigned i = 0; i < n; ++i) frames.push_back(udp4(kClient, kServer, uint16_t(first + i), 53));
  return frames;
}
std::vector<std::vector<uint8_t>> udp_replies(uint16_t first, unsigned n) {
  std::vector<std::vector<uint8_t>> frames;
  for (unsigned i = 0; i < n; ++i) frames.push_back(udp4(kServer, kClient, 53, uint16_t(first + i)));
  return frames;
}

TEST_F(ConntrackStageTest, FullTableEvictsAnUnassuredFlowForANewOne) {
  ASSERT_EQ(pump(udp_requests(1000, 1024), Side::West).east, 1024u);
  ASSERT_EQ(flows_->active(), 1024u);
  ASSERT_EQ(flows_->counters().evicted.get(), 0u) << "the table holds its capacity";
  Sent sent = run({udp4(kClient, kServer, 5000, 53)});
  EXPECT_EQ(sent.east.size(), 1u);
  EXPECT_EQ(flows_->counters().evicted.get(), 1u);
  EXPECT_EQ(flows_->active(), 1024u);
  EXPECT_EQ(flows_on_port(5000).size(), 1u);
  EXPECT_EQ(by_state(flow::kUdpUnreplied), 1024u) << "the gauge follows the eviction";
}

TEST_F(ConntrackStageTest, FullTableOfUdpStreamsDropsANewFlow) {
  ASSERT_EQ(pump(udp_requests(1000, 1024), Side::West).east, 1024u);
  ASSERT_EQ(pump(udp_replies(1000, 1024), Side::East).west, 1024u);
  advance(3000);  // still talking 2 s on: streams, assured (nf_conntrack_udp_packet)
  ASSERT_EQ(pump(udp_requests(1000, 1024), Side::West).east, 1024u);
  ASSERT_EQ(by_state(flow::kUdpReplied), 1024u);
  Sent sent = run({udp4(kClient, kServer, 5000, 53)});
  EXPECT_TRUE(sent.east.empty());
  EXPECT_EQ(drops(ct(), Drop::FlowTableFull), 1u);
  EXPECT_EQ(flows_->counters().evicted.get(), 0u);
  EXPECT_EQ(run({udp4(kClient, kServer, 1500, 53)}).east.size(), 1u) << "the assured flows pass";
  EXPECT_EQ(flows_->active(), 1024u);
}

TEST_F(ConntrackStageTest, FullTableOfEstablishedTcpFlowsDropsANewOneAndTheOldKeepPassing) {
  std::vector<std::vector<uint8_t>> syns, syn_acks, acks;
  for (uint16_t i = 0; i < 1024; ++i) {
    const uint16_t port = uint16_t(1000 + i);
    syns.push_back(tcp4({.sport = port, .flags = kSyn}));
    syn_acks.push_back(tcp4({.src = kServer, .dst = kClient, .sport = 80, .dport = port, .flags = kSyn | kAck,
                             .seq = kServerIsn, .ack = kClientIsn + 1}));
    acks.push_back(tcp4({.sport = port, .flags = kAck, .seq = kClientIsn + 1, .ack = kServerIsn + 1}));
  }
  ASSERT_EQ(pump(syns, Side::West).east, 1024u);
  ASSERT_EQ(pump(syn_acks, Side::East).west, 1024u);
  ASSERT_EQ(pump(acks, Side::West).east, 1024u);
  ASSERT_EQ(by_state(tcp_slot(TcpState::Established)), 1024u);
  Sent sent = run({tcp4({.sport = 6000, .flags = kSyn})});
  EXPECT_TRUE(sent.east.empty());
  EXPECT_EQ(drops(ct(), Drop::FlowTableFull), 1u);
  Sent old = run({tcp4({.sport = 1234, .flags = kAck, .seq = kClientIsn + 1, .ack = kServerIsn + 1, .payload = 10})});
  EXPECT_EQ(old.east.size(), 1u);
  EXPECT_EQ(flows_->active(), 1024u);
  EXPECT_EQ(flows_->counters().evicted.get(), 0u);
}

// ---- timeouts on the fake clock ----

TEST_F(ConntrackStageTest, UnrepliedUdpFlowExpiresAfterThirtySecondsAndAStreamLater) {
  // 40000 is never answered, 40001 at once (a question and its answer: still udp), and
  // talks on 3 s later: a stream (udp_stream).
  ASSERT_EQ(run({udp4(kClient, kServer, 40000, 53), udp4(kClient, kServer, 40001, 53),
                 udp4(kClient, kServer, 40002, 53)})
                .east.size(),
            3u);
  ASSERT_EQ(run_east({udp4(kServer, kClient, 53, 40001), udp4(kServer, kClient, 53, 40002)}).west.size(), 2u);
  advance(3000);
  ASSERT_EQ(run({udp4(kClient, kServer, 40002, 53)}).east.size(), 1u);
  advance(26000);
  EXPECT_EQ(flows_->active(), 3u);
  advance(1200);  // 30.2 s
  EXPECT_EQ(flows_->active(), 1u) << "udp: 30 s, replied or not";
  EXPECT_EQ(flows_->counters().expired.get(), 2u);
  EXPECT_EQ(by_state(flow::kUdpUnreplied), 0u);
  ASSERT_EQ(flows_on_port(40002).size(), 1u) << "udp_stream: 120 s";
  EXPECT_TRUE(flows_on_port(40002)[0].flags & flow::kFlowAssured);
  for (int i = 0; i < 9; ++i) advance(10000);  // 120.2 s: the stream's last packet was at 3 s
  EXPECT_EQ(flows_->active(), 1u);
  advance(3000);
  EXPECT_EQ(flows_->active(), 0u);
  EXPECT_EQ(by_state(flow::kUdpReplied), 0u);
  EXPECT_EQ(flows_->counters().expired.get(), 3u);
}

TEST_F(ConntrackStageTest, EstablishedTcpFlowOutlivesTheShortTimeoutsAndTheWheel) {
  handshake();
  for (int i = 0; i < 60; ++i) advance(10000);  // 600 s: past syn_sent, udp_stream and the wheel's 262 s
  ASSERT_EQ(flows_->active(), 1u);
  EXPECT_EQ(list_flows()[0].state, static_cast<uint8_t>(TcpState::Established));
  Sent sent = run({tcp4({.flags = kAck, .seq = kClientIsn + 1, .ack = kServerIsn + 1, .payload = 10})});
  EXPECT_EQ(sent.east.size(), 1u);
}

TEST_F(ConntrackStageTest, RstClosesTheFlowWhichGoesAfterTcpClose) {
  handshake();
  Sent rst = run({tcp4({.flags = kRst, .seq = kClientIsn + 1})});
  ASSERT_EQ(rst.east.size(), 1u);
  EXPECT_EQ(by_state(tcp_slot(TcpState::Close)), 1u);
  EXPECT_EQ(by_state(tcp_slot(TcpState::Established)), 0u);
  advance(9000);
  EXPECT_EQ(flows_->active(), 1u);
  advance(1200);
  EXPECT_EQ(flows_->active(), 0u) << "tcp_close: 10 s";
  EXPECT_EQ(by_state(tcp_slot(TcpState::Close)), 0u);
}

TEST_F(ConntrackStageTest, TwoPacketsOfAnExpiredFlowInOneBurstReplaceItOnce) {
  ASSERT_EQ(run({udp4(kClient, kServer, 40000, 53)}).east.size(), 1u);
  now_ += 31000;
  flows_->set_now(now_);  // due, but no poll round has reaped it yet
  Sent sent = run({udp4(kClient, kServer, 40000, 53), udp4(kClient, kServer, 40000, 53)});
  EXPECT_EQ(sent.east.size(), 2u);
  EXPECT_EQ(flows_->counters().expired.get(), 1u);
  EXPECT_EQ(flows_->counters().created.get(), 2u);
  EXPECT_EQ(flows_->active(), 1u);
  EXPECT_EQ(by_state(flow::kUdpUnreplied), 1u);
  // The table is sound: more flows get entries of their own.
  ASSERT_EQ(run({udp4(kClient, kServer, 40001, 53), udp4(kClient, kServer, 40002, 53)}).east.size(), 2u);
  std::vector<FlowRecord> flows = list_flows();
  std::set<uint16_t> ports;
  for (const auto& r : flows) ports.insert(r.src_port);
  EXPECT_EQ(ports, (std::set<uint16_t>{40000, 40001, 40002}));
  EXPECT_EQ(flows_->active(), 3u);
}

class ConntrackTimeWaitTest : public ConntrackStageTest {
 protected:
  // After the handshake the client and the server close: FIN, FIN, ACK.
  void to_time_wait() {
    handshake();
    ASSERT_EQ(run({tcp4({.flags = kFin | kAck, .seq = kClientIsn + 1, .ack = kServerIsn + 1})}).east.size(), 1u);
    ASSERT_EQ(run_east({tcp4({.src = kServer, .dst = kClient, .sport = 80, .dport = 40000, .flags = kFin | kAck,
                              .seq = kServerIsn + 1, .ack = kClientIsn + 2})})
                  .west.size(),
              1u);
    ASSERT_EQ(run({tcp4({.flags = kAck, .seq = kClientIsn + 2, .ack = kServerIsn + 2})}).east.size(), 1u);
    ASSERT_EQ(by_state(tcp_slot(TcpState::TimeWait)), 1u);
  }
};

TEST_F(ConntrackTimeWaitTest, NewSynReusesATimeWaitFlow) {
  to_time_wait();
  Sent sent = run({tcp4({.flags = kSyn, .seq = kClientIsn + 100000})});
  ASSERT_EQ(sent.east.size(), 1u);
  EXPECT_EQ(flows_->counters().reopened.get(), 1u);
  EXPECT_EQ(flows_->counters().created.get(), 2u);
  EXPECT_EQ(flows_->active(), 1u);
  EXPECT_EQ(by_state(tcp_slot(TcpState::TimeWait)), 0u);
  EXPECT_EQ(by_state(tcp_slot(TcpState::SynSent)), 1u);
  EXPECT_EQ(list_flows()[0].state, static_cast<uint8_t>(TcpState::SynSent));
}

TEST_F(ConntrackTimeWaitTest, TwoSynsReopeningATimeWaitFlowInOneBurstMakeOneFlow) {
  to_time_wait();
  const std::vector<uint8_t> syn = tcp4({.flags = kSyn, .seq = kClientIsn + 100000});
  Sent sent = run({syn, syn});  // the SYN and its retransmission
  EXPECT_EQ(sent.east.size(), 2u);
  EXPECT_EQ(flows_->counters().reopened.get(), 1u);
  EXPECT_EQ(flows_->counters().created.get(), 2u);
  EXPECT_EQ(flows_->active(), 1u);
  EXPECT_EQ(by_state(tcp_slot(TcpState::SynSent)), 1u);
  EXPECT_EQ(by_state(tcp_slot(TcpState::TimeWait)), 0u);
  ASSERT_EQ(run({udp4(kClient, kServer, 40001, 53), udp4(kClient, kServer, 40002, 53)}).east.size(), 2u);
  EXPECT_EQ(list_flows().size(), 3u);
  EXPECT_EQ(flows_->active(), 3u);
}

// ---- fragments ----

TEST_F(ConntrackStageTest, LaterFragmentsAreAcceptedByDefault) {
  Sent sent = run({ipv4_frame({.fragment = 0x2000, .payload = 64}), ipv4_frame({.fragment = 0x0010, .payload = 64})});
  EXPECT_EQ(sent.east.size(), 2u);
  EXPECT_EQ(ct_counter("later_fragments"), 1u);
  EXPECT_EQ(flows_->active(), 1u) << "the first fragment has the ports and is tracked";
}

TEST_F(ConntrackStageTest, LaterFragmentsAreDroppedWhenConfigured) {
  start(make_config(R"({"capacity": 1024, "capacity_ipv6": 1024, "later_fragments": "drop"})"));
  Sent sent = run({ipv4_frame({.fragment = 0x2000, .payload = 64}), ipv4_frame({.fragment = 0x0010, .payload = 64}),
                   ipv6_frame({.payload = 64, .fragment_offset = 9})});
  EXPECT_EQ(sent.east.size(), 1u);
  EXPECT_EQ(drops(ct(), Drop::LaterFragment), 2u);
  EXPECT_EQ(ct_counter("later_fragments"), 2u);
}

// ---- what conntrack leaves alone ----

TEST_F(ConntrackStageTest, TtlOneAndNoRoutePassUntrackedForTheRouteStageToAnswer) {
  Sent sent = run({udp4(kClient, kServer, 40000, 53, 1), udp4(kClient, "192.0.2.1", 40001, 53),
                   tcp4({.dport = 22, .flags = kSyn, .ttl = 1})});
  EXPECT_TRUE(sent.east.empty());
  ASSERT_EQ(sent.west.size(), 3u);
  EXPECT_EQ(ip_of(sent.west[0])[20], 11) << "time exceeded";
  EXPECT_EQ(ip_of(sent.west[1])[20], 3) << "net unreachable";
  EXPECT_EQ(ip_of(sent.west[1])[21], 0);
  EXPECT_EQ(ip_of(sent.west[2])[9], net::kIpProtoIcmp) << "not a RST: the router never forwards it";
  EXPECT_EQ(ct_counter("untracked"), 3u);
  EXPECT_EQ(ct_counter("resets_sent"), 0u);
  EXPECT_EQ(flows_->active(), 0u);
  EXPECT_EQ(drops(route(), Drop::TtlExceeded), 2u);
  EXPECT_EQ(drops(route(), Drop::NoRoute), 1u);
}

TEST_F(ConntrackStageTest, EchoToTheRoutersOwnAddressesPassesUntracked) {
  Sent sent = run({echo4(kClient, "10.1.0.1", 8), echo4(kClient, "10.2.0.1", 8)});
  ASSERT_EQ(sent.west.size(), 2u);
  EXPECT_EQ(ip_of(sent.west[0])[20], 0) << "the route stage's echo reply";
  EXPECT_EQ(src4(ip_of(sent.west[1])), "10.2.0.1");
  EXPECT_EQ(ct_counter("untracked"), 2u);
  EXPECT_EQ(flows_->active(), 0u);
}

TEST_F(ConntrackStageTest, PacketsTheRouteStageDropsOpenNothingAndAreNeverAnswered) {
  std::vector<uint8_t> bad_checksum = tcp4({.dport = 22, .flags = kSyn});
  bad_checksum[kL3 + 10] ^= 0xff;
  std::vector<uint8_t> other_mac = tcp4({.sport = 40001, .dport = 22, .flags = kSyn});
  test::set_mac(other_mac, 0, {0x02, 0, 0, 0, 0, 0x99});
  std::vector<uint8_t> broadcast = udp4(kClient, kServer, 40002, 53);
  test::set_mac(broadcast, 0, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
  const std::vector<uint8_t> martian = tcp4({.src = "127.0.0.1", .dport = 22, .flags = kSyn});
  const std::vector<uint8_t> vlan = tagged(udp4(kClient, kServer, 40003, 9), 10);
  Sent sent = run({bad_checksum, other_mac, broadcast, martian, vlan});
  EXPECT_TRUE(sent.east.empty());
  EXPECT_TRUE(sent.west.empty()) << "no RST, no unreachable";
  EXPECT_EQ(drops(route(), Drop::BadIpv4Checksum), 1u);
  EXPECT_EQ(drops(route(), Drop::NotForUs), 1u);
  EXPECT_EQ(drops(route(), Drop::NotRoutable), 1u);
  EXPECT_EQ(drops(route(), Drop::MartianSource), 1u);
  EXPECT_EQ(drops(route(), Drop::TaggedFrame), 1u);
  EXPECT_EQ(ct().counters().drops_total(), 0u);
  EXPECT_EQ(ct_counter("untracked"), 5u);
  EXPECT_EQ(flows_->active(), 0u);
}

// ---- IPv6 ----

TEST_F(ConntrackStageTest, Ipv6TcpIsTrackedInTheIpv6Table) {
  ASSERT_EQ(run({tcp6({.src = kClient6, .dst = kServer6, .flags = kSyn})}).east.size(), 1u);
  ASSERT_EQ(run_east({tcp6({.src = kServer6, .dst = kClient6, .sport = 80, .dport = 40000, .flags = kSyn | kAck,
                            .seq = kServerIsn, .ack = kClientIsn + 1})})
                .west.size(),
            1u);
  ASSERT_EQ(run({tcp6({.src = kClient6, .dst = kServer6, .flags = kAck, .seq = kClientIsn + 1, .ack = kServerIsn + 1})})
                .east.size(),
            1u);
  EXPECT_EQ(flows_->table6()->active(), 1u);
  EXPECT_EQ(flows_->table4().active(), 0u);
  std::vector<FlowRecord> flows = list_flows();
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].family, 6);
  EXPECT_EQ(test::ip6_text(flows[0].src.data()), kClient6);
  EXPECT_EQ(flows[0].state, static_cast<uint8_t>(TcpState::Established));
  // And the IPv6 zone policy applies too.
  Sent in = run_east({tcp6({.src = kServer6, .dst = kClient6, .sport = 50000, .dport = 80, .flags = kSyn})});
  EXPECT_TRUE(in.west.empty());
  EXPECT_EQ(drops(ct(Side::East), Drop::FirewallDrop), 1u);
}

TEST_F(ConntrackStageTest, Icmpv6EchoIsTrackedInTheIpv6Table) {
  ASSERT_EQ(run({ipv6_frame({.src = kClient6, .dst = kServer6, .proto = net::kIpProtoIcmpv6, .icmp_type = 128})})
                .east.size(),
            1u);
  Sent reply =
      run_east({ipv6_frame({.src = kServer6, .dst = kClient6, .proto = net::kIpProtoIcmpv6, .icmp_type = 129})});
  ASSERT_EQ(reply.west.size(), 1u);
  EXPECT_EQ(flows_->table6()->active(), 1u);
  EXPECT_EQ(by_state(flow::kIcmpReplied), 1u);
  Sent unrequested =
      run_east({ipv6_frame({.src = "fd00:9::2", .dst = kClient6, .proto = net::kIpProtoIcmpv6, .icmp_type = 129})});
  EXPECT_TRUE(unrequested.west.empty());
  EXPECT_EQ(drops(ct(Side::East), Drop::IcmpNoFlow), 1u);
}

TEST_F(ConntrackStageTest, Ipv6NeighbourDiscoveryPassesUntracked) {
  std::vector<uint8_t> ns = ipv6_frame({.src = kClient6, .dst = "ff02::1:ff00:1", .proto = net::kIpProtoIcmpv6,
                                        .hop_limit = 255, .payload = 24, .icmp_type = 135});
  test::set_mac(ns, 0, {0x33, 0x33, 0xff, 0, 0, 0x01});
  std::vector<uint8_t> na = ipv6_frame({.src = kClient6, .dst = "fd00:1::1", .proto = net::kIpProtoIcmpv6,
                                        .hop_limit = 255, .payload = 24, .icmp_type = 136});
  Sent sent = run({ns, na});
  EXPECT_EQ(sent.punted.size(), 2u) << "on to the slow path";
  EXPECT_EQ(ct_counter("untracked"), 2u);
  EXPECT_EQ(ct_counter("tracked"), 0u);
  EXPECT_EQ(flows_->active(), 0u);
}

// ---- reload ----

TEST_F(ConntrackStageTest, PolicySwapChangesNewConnectionsButEstablishedFlowsKeepPassing) {
  handshake();
  ASSERT_EQ(run_east({tcp4({.src = kServer, .dst = kClient, .sport = 50000, .dport = 8080, .flags = kSyn})}).west.size(),
            1u);
  ASSERT_EQ(rule_packets(1), 1u);
  ASSERT_EQ(rule_generation(), 1u);

  std::string firewall = kFirewall;
  const std::string accept = R"({"from": "inside", "to": "outside", "action": "accept"})";
  firewall.replace(firewall.find(accept), accept.size(), R"({"from": "inside", "to": "outside", "action": "drop"})");
  publish_policy(make_config(kConntrack, firewall), 2);

  Sent old = run({tcp4({.flags = kAck, .seq = kClientIsn + 1, .ack = kServerIsn + 1, .payload = 10})});
  EXPECT_EQ(old.east.size(), 1u) << "the established flow keeps passing";
  EXPECT_EQ(rule_generation(), 2u);
  EXPECT_EQ(rule_packets(1), 0u) << "the counters count the new rules, from zero";
  EXPECT_EQ(flows_->rule_counters()[1].bytes.get(), 0u);
  Sent fresh = run({tcp4({.sport = 40001, .flags = kSyn})});
  EXPECT_TRUE(fresh.east.empty()) << "new connections meet the new policy";
  EXPECT_EQ(drops(ct(), Drop::FirewallDrop), 1u);
  ASSERT_EQ(run_east({tcp4({.src = kServer, .dst = kClient, .sport = 50001, .dport = 8080, .flags = kSyn})}).west.size(),
            1u);
  EXPECT_EQ(rule_packets(1), 1u);
  EXPECT_EQ(flows_->active(), 3u);
}

// ---- xconnect ----

TEST_F(ConntrackStageTest, XconnectPipelineUsesThePeerPortAsEgressForZonePolicies) {
  start(make_config(kConntrack, kFirewall, kXconnectPorts));
  ASSERT_EQ(find_stage(*west_pipe_, "xconnect") != nullptr, true);
  const std::vector<uint8_t> syn = tcp4({.flags = kSyn});
  Sent out = run({syn});
  ASSERT_EQ(out.east.size(), 1u) << "inside -> outside: accepted";
  const std::vector<uint8_t> arrived = to_west(syn);
  EXPECT_TRUE(std::equal(arrived.begin(), arrived.end(), data(out.east[0]))) << "a wire: the frame as it came";
  Sent back = run({tcp4({.src = kServer, .dst = kClient, .sport = 80, .dport = 40000, .flags = kSyn | kAck,
                         .seq = kServerIsn, .ack = kClientIsn + 1})},
                  Side::East);
  EXPECT_EQ(back.west.size(), 1u);
  Sent in = run({tcp4({.src = kServer, .dst = kClient, .sport = 50000, .dport = 80, .flags = kSyn})}, Side::East);
  EXPECT_TRUE(in.west.empty()) << "outside -> inside: dropped";
  EXPECT_EQ(drops(ct(Side::East), Drop::FirewallDrop), 1u);
  Sent web = run({tcp4({.src = kServer, .dst = kClient, .sport = 50001, .dport = 8080, .flags = kSyn})}, Side::East);
  EXPECT_EQ(web.west.size(), 1u) << "web-in names the zones";
  // A reject on a wire answers as the host it protects.
  Sent rst = run({tcp4({.sport = 40002, .dport = 22, .flags = kSyn})});
  ASSERT_EQ(rst.west.size(), 1u);
  EXPECT_EQ(mac_at(data(rst.west[0])), kHostMac);
  EXPECT_EQ(mac_at(data(rst.west[0]) + 6), west_mac_) << "the refused frame's destination";
  EXPECT_EQ(flows_->active(), 2u);
}

// ---- software steering ----

unsigned owner_of(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t proto) {
  flow::FlowKey4 key;
  flow::make_key4(key, addr4_raw(src), addr4_raw(dst), rte_cpu_to_be_16(sport), rte_cpu_to_be_16(dport), proto, 0);
  return flow_owner(key.hash(), 2);
}

std::vector<rte_mbuf*> drain(rte_ring* ring) {
  std::vector<rte_mbuf*> out(rte_ring_count(ring));
  out.resize(rte_ring_dequeue_burst(ring, reinterpret_cast<void**>(out.data()), unsigned(out.size()), nullptr));
  return out;
}

// Worker 0 of two, steering in software; west1_pipe_ is worker 1's west pipeline.
class SteerStageTest : public ConntrackStageTest {
 protected:
  void SetUp() override {
    ConntrackStageTest::SetUp();
    if (HasFatalFailure()) return;
    start(make_config(), true);
  }
};

TEST_F(SteerStageTest, HandsFlowsOwnedByTheOtherWorkerToItsRing) {
  ASSERT_EQ(west_pipe_->stages()[1]->name(), "steer");
  std::vector<std::vector<uint8_t>> frames;
  std::vector<uint16_t> theirs, ours;
  for (uint16_t port = 30000; port < 30040; ++port) {
    frames.push_back(udp4(kClient, kServer, port, 53));
    (owner_of(kClient, port, kServer, 53, net::kIpProtoUdp) == 1 ? theirs : ours).push_back(port);
  }
  ASSERT_FALSE(theirs.empty());
  ASSERT_FALSE(ours.empty());
  Sent sent = run(frames);
  EXPECT_EQ(sent.east.size(), ours.size()) << "ours go on through this worker's conntrack and route";
  std::vector<rte_mbuf*> handed = drain(ring01_);
  ASSERT_EQ(handed.size(), theirs.size());
  for (size_t i = 0; i < handed.size(); ++i) {
    EXPECT_EQ(get16(ip_of(handed[i]) + 20), theirs[i]) << "in order";
    EXPECT_EQ(handed[i]->port, west_id_) << "the owner runs the ingress port's pipeline";
  }
  const auto& steer = static_cast<const SteerStage&>(*west_pipe_->stages()[1]);
  EXPECT_EQ(steer.handed_to(1), theirs.size());
  EXPECT_EQ(steer.handed_to(0), 0u);
  EXPECT_EQ(counter(steer, "kept"), ours.size());
  EXPECT_EQ(flows_->active(), ours.size()) << "only this worker's own flows";
  test::free_all(handed);
}

TEST_F(SteerStageTest, SendsBothDirectionsOfAFlowToTheSameOwner) {
  unsigned handed_flows = 0;
  for (uint16_t port = 30000; port < 30016; ++port) {
    Sent request = run({udp4(kClient, kServer, port, 53)});
    std::vector<rte_mbuf*> request_handed = drain(ring01_);
    Sent reply = run_east({udp4(kServer, kClient, 53, port)});
    std::vector<rte_mbuf*> reply_handed = drain(ring01_);
    EXPECT_EQ(request_handed.size(), reply_handed.size()) << "port " << port;
    EXPECT_EQ(request.east.size(), reply.west.size()) << "port " << port;
    EXPECT_EQ(request_handed.size() + request.east.size(), 1u);
    handed_flows += static_cast<unsigned>(request_handed.size());
    test::free_all(request_handed);
    test::free_all(reply_handed);
  }
  EXPECT_GT(handed_flows, 0u);
  EXPECT_LT(handed_flows, 16u);
  EXPECT_EQ(by_state(flow::kUdpReplied), 16u - handed_flows) << "the replies met their flows here";
}

TEST_F(SteerStageTest, KeepsArpLocal) {
  Sent sent = run({test::Frame().eth(net::kEtherTypeArp).arp().payload(18).build()});
  EXPECT_EQ(sent.punted.size(), 1u);
  EXPECT_EQ(rte_ring_count(ring01_), 0u);
  EXPECT_EQ(counter(*west_pipe_->stages()[1], "handed_off"), 0u);
}

TEST_F(SteerStageTest, DropsWhenTheOwnersRingIsFull) {
  start(make_config(), true, 4);  // holds 3
  std::vector<std::vector<uint8_t>> frames;
  for (uint16_t port = 30000; frames.size() < 8; ++port)
    if (owner_of(kClient, port, kServer, 53, net::kIpProtoUdp) == 1) frames.push_back(udp4(kClient, kServer, port, 53));
  Sent sent = run(frames);
  EXPECT_TRUE(sent.east.empty());
  EXPECT_EQ(rte_ring_count(ring01_), 3u);
  const auto& steer = static_cast<const SteerStage&>(*west_pipe_->stages()[1]);
  EXPECT_EQ(steer.handed_to(1), 3u);
  EXPECT_EQ(drops(steer, Drop::HandoffRingFull), 5u);
}

TEST_F(SteerStageTest, HandedOverPacketsRunOnTheOwnerFromTheStageAfterSteer) {
  std::vector<std::vector<uint8_t>> frames;
  for (uint16_t port = 30000; port < 30032; ++port) frames.push_back(udp4(kClient, kServer, port, 53));
  Sent here = run(frames);
  std::vector<rte_mbuf*> handed = drain(ring01_);
  ASSERT_FALSE(handed.empty());
  Burst burst;
  for (rte_mbuf* m : handed) burst.pkts[burst.count++] = m;
  const size_t from = west1_pipe_->handoff_stage();
  ASSERT_EQ(west1_pipe_->stages()[from]->name(), "conntrack");
  west1_pipe_->run_from(burst, from);
  EXPECT_EQ(burst.count, 0);
  burst.free_discards();
  Sent there = collect();
  EXPECT_EQ(there.east.size(), handed.size());
  EXPECT_EQ(flows1_->active(), handed.size()) << "the owner tracks them";
  EXPECT_EQ(flows_->active(), here.east.size());
  EXPECT_EQ(flows_->active() + flows1_->active(), frames.size());
}

}  // namespace
}  // namespace sluice::pipeline
