// The NAT stages in real pipelines, on real mbufs through ring ports: parse ->
// reassemble -> nptv6 -> conntrack -> nat -> route -> nat_src -> output for a two-port
// gateway, west (zone inside, 10.1.0.1/24, fd00:1::1/64) and east (zone outside,
// 10.2.0.1/24, fd00:2::1/64, gateway 10.2.0.2 / fd00:2::2 to 10.9.0.0/16 and
// fd00:9::/48). Inside hosts 10.1.0.10 and 10.1.0.20 (and fd00:1::10) behind west,
// servers 10.9.1.1 and 10.9.1.2 (fd00:9::1) behind east. Masquerade out of east from
// ports 20000-29999, a pool of one address and one port for UDP to 10.9.1.2, tcp 8080
// on east's address forwarded to 10.1.0.10:80 (hairpin on), NPTv6 fd00:1::/64 <->
// 2001:db8:1::/64 on east. Every checksum of what leaves is recomputed in full; worker
// 0's flow table runs on the fake clock; every mbuf is back in the pool at the end.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_byteorder.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "flow/flow_context.h"
#include "l3_fixture.h"
#include "l3_support.h"
#include "nat_support.h"
#include "pipeline/output.h"
#include "pipeline/packet_meta.h"
#include "pipeline/route.h"

namespace sluice::pipeline {
namespace {

using flow::FlowRecord;
using flow::TcpState;
using test::Datagram4;
using test::data;
using test::get16;
using test::ip_of;
using test::kGatewayMac;
using test::kHostMac;
using test::kL3;
using test::l4_checksum_at;
using test::l4_checksum_full;
using test::Mac;
using test::mac_at;
using test::Sent;
using test::Side;
using test::stored16;

constexpr const char* kClient = "10.1.0.10";
constexpr const char* kClient2 = "10.1.0.20";  // the hairpin client
constexpr const char* kServer = "10.9.1.1";
constexpr const char* kPoolServer = "10.9.1.2";  // reached from the pool of one port
constexpr const char* kGateway = "10.2.0.2";
constexpr const char* kOutside = "10.2.0.1";  // east's address: masquerade and the port forward
constexpr const char* kPoolAddress = "10.2.0.100";
constexpr const char* kClient6 = "fd00:1::10";
constexpr const char* kServer6 = "fd00:9::1";
// fd00:1::10 through fd00:1::/64 -> 2001:db8:1::/64 (RFC 6296 3.2, by hand): word 4
// takes the prefixes' difference, fd00 + 0001 - (2001 + 0db8 + 0001) = cf47.
constexpr const char* kClient6Outside = "2001:db8:1:0:cf47::10";
constexpr uint16_t kFirstPort = 20000, kLastPort = 29999;
constexpr uint16_t kPoolPort = 2000;
constexpr Mac kHost2Mac = {0x02, 0, 0, 0, 0, 0x21};

constexpr uint8_t kSyn = 0x02, kAck = 0x10;
constexpr uint32_t kClientIsn = 1000, kServerIsn = 500000;

// Rule ids (1-based, snat then dnat).
constexpr uint16_t kRuleOnePort = 1, kRuleMasq = 2, kRuleWeb = 3;

constexpr const char* kSections = R"(
  "routes": [{"prefix": "10.9.0.0/16", "via": "10.2.0.2"}, {"prefix": "fd00:9::/48", "via": "fd00:2::2"}],
  "conntrack": {"capacity": 1024, "capacity_ipv6": 1024},
  "firewall": {"default_policy": "drop",
    "policies": [{"from": "inside", "to": "outside", "action": "accept"},
                 {"from": "inside", "to": "inside", "action": "accept"}],
    "rules": [{"name": "web-fwd", "from": "outside", "to": "inside", "protocol": "tcp", "dst": "10.1.0.10",
               "dst_ports": [80], "action": "accept"},
              {"name": "invalid-out", "from": "inside", "to": "outside", "src": "10.1.0.20", "state": ["invalid"],
               "action": "accept"}]},
  "nat": {"capacity": 1024,
    "snat": [{"name": "one-port", "out_port": "east", "protocol": "udp", "dst": "10.9.1.2",
              "pool": ["10.2.0.100"], "ports": "2000-2000"},
             {"name": "masq", "out_port": "east", "masquerade": true, "ports": "20000-29999"}],
    "dnat": [{"name": "web", "dst": "10.2.0.1", "protocol": "tcp", "port": 8080, "to_address": "10.1.0.10",
              "to_port": 80}],
    "nptv6": [{"name": "site6", "port": "east", "inside": "fd00:1::/64", "outside": "2001:db8:1::/64"}]})";

test::TwoPortSpec nat_ports() {
  test::TwoPortSpec ports;
  ports.west.pipeline = {"parse", "conntrack", "nat", "route"};
  ports.east.pipeline = {"parse", "conntrack", "nat", "route"};
  return ports;
}

uint32_t ip4(const char* text) { return test::addr4_raw(text); }

using test::pattern;

// Datagrams as hosts send them, every checksum computed in full (nat_support.h).
std::vector<uint8_t> udp_datagram(const char* src, uint16_t sport, const char* dst, uint16_t dport,
                                  size_t payload = 32, uint8_t ttl = 64, uint8_t seed = 0) {
  Datagram4 g;
  g.src = ip4(src);
  g.dst = ip4(dst);
  g.proto = net::kIpProtoUdp;
  g.sport = sport;
  g.dport = dport;
  g.ttl = ttl;
  g.payload = pattern(payload, seed);
  return test::ipv4_datagram(g);
}

struct Tcp {
  const char* src = kClient;
  uint16_t sport = 40000;
  const char* dst = kServer;
  uint16_t dport = 80;
  uint8_t flags = kSyn;
  uint32_t seq = kClientIsn, ack = 0;
  size_t payload = 0;
};

std::vector<uint8_t> tcp_datagram(const Tcp& t) {
  return test::tcp_datagram4(ip4(t.src), t.sport, ip4(t.dst), t.dport, t.flags, t.seq, t.ack, t.payload);
}

// An ICMP echo request (8) or reply (0) with identifier `id`.
std::vector<uint8_t> echo_datagram(const char* src, const char* dst, uint8_t type, uint16_t id) {
  Datagram4 g;
  g.src = ip4(src);
  g.dst = ip4(dst);
  g.proto = net::kIpProtoIcmp;
  g.icmp_type = type;
  g.sport = id;
  g.icmp_seq = 7;
  g.payload = pattern(24);
  return test::ipv4_datagram(g);
}

std::vector<uint8_t> frame(const std::vector<uint8_t>& datagram) { return test::eth_frame(datagram); }

// A UDP datagram over IPv6 with its checksum (conntrack refuses UDP/IPv6 without one).
std::vector<uint8_t> udp6_frame(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
  std::vector<uint8_t> b = test::ipv6_frame(
      {.src = src, .dst = dst, .proto = net::kIpProtoUdp, .payload = 40, .src_port = sport, .dst_port = dport});
  const uint8_t* ip = &b[kL3];
  const uint32_t len = get16(ip + 4);
  const size_t l4 = kL3 + 40;
  uint16_t sum = static_cast<uint16_t>(~test::sum16(&b[l4], len, test::pseudo6(ip, len, net::kIpProtoUdp)));
  test::put16(b, l4 + 6, sum == 0 ? 0xffff : sum);
  return b;
}

// What a sent single-segment IPv4 frame holds.
std::vector<uint8_t> datagram_of(const rte_mbuf* m) {
  EXPECT_EQ(m->nb_segs, 1);
  const uint8_t* ip = ip_of(m);
  return std::vector<uint8_t>(ip, ip + get16(ip + 2));
}
std::string src_of(const rte_mbuf* m) { return test::src4(ip_of(m)); }
std::string dst_of(const rte_mbuf* m) { return test::dst4(ip_of(m)); }
uint16_t sport_of(const rte_mbuf* m) { return get16(ip_of(m) + 20); }
uint16_t dport_of(const rte_mbuf* m) { return get16(ip_of(m) + 22); }
uint16_t icmp_id_of(const rte_mbuf* m) { return get16(ip_of(m) + 24); }

// The IPv4 header checksum and the L4 checksum (TCP/UDP with the pseudo-header, ICMP
// over the message) of a sent frame, against full recomputation.
void expect_checksums(const rte_mbuf* m, const std::string& what) {
  const uint8_t* ip = ip_of(m);
  EXPECT_EQ(stored16(ip + test::kIpChecksumAt), test::ipv4_checksum_full(ip)) << what << ": IPv4 header checksum";
  const size_t at = l4_checksum_at(ip);
  if (ip[9] == net::kIpProtoUdp) {
    EXPECT_NE(stored16(ip + at), 0) << what << ": a UDP checksum stays present";
  }
  EXPECT_EQ(stored16(ip + at), l4_checksum_full(ip)) << what << ": L4 checksum";
}

// The datagram as the next hop receives it from Sluice: TTL one less, header checksum
// made right (as a forwarding router leaves it).
std::vector<uint8_t> forwarded(std::vector<uint8_t> d) {
  --d[8];
  test::refresh_checksums(d, false);
  return d;
}

bool in_range(uint16_t port) { return port >= kFirstPort && port <= kLastPort; }

// The fragments of a sent datagram joined again: the first one's header (no MF, the
// whole length) and every payload in its place.
std::vector<uint8_t> rejoin(const std::vector<rte_mbuf*>& fragments) {
  std::vector<uint8_t> header, payload;
  for (const rte_mbuf* f : fragments) {
    const std::vector<uint8_t> bytes = test::chain_bytes(f, kL3);
    const size_t length = (bytes[0] & 0x0f) * 4u, total = get16(&bytes[2]);
    const size_t offset = (get16(&bytes[6]) & 0x1fff) * 8u;
    if (offset == 0) header.assign(bytes.begin(), bytes.begin() + static_cast<long>(length));
    if (payload.size() < offset + total - length) payload.resize(offset + total - length);
    std::copy(bytes.begin() + static_cast<long>(length), bytes.begin() + static_cast<long>(total),
              payload.begin() + static_cast<long>(offset));
  }
  std::vector<uint8_t> whole = header;
  whole.insert(whole.end(), payload.begin(), payload.end());
  test::put16(whole, 2, static_cast<uint16_t>(whole.size()));
  test::put16(whole, 6, 0);
  return whole;
}

// Each sent fragment: its header checksum, no offload asked for, within the MTU.
void expect_fragments(const std::vector<rte_mbuf*>& fragments, size_t n, uint16_t mtu) {
  ASSERT_EQ(fragments.size(), n);
  for (size_t i = 0; i < n; ++i) {
    const rte_mbuf* f = fragments[i];
    const std::vector<uint8_t> bytes = test::chain_bytes(f, kL3);
    EXPECT_LE(bytes.size(), mtu) << "fragment " << i;
    EXPECT_TRUE(test::ipv4_checksum_ok(bytes.data())) << "fragment " << i;
    EXPECT_EQ(test::src4(bytes.data()), kOutside) << "fragment " << i;
    EXPECT_EQ(get16(&bytes[6]) & 0x2000, i + 1 < n ? 0x2000 : 0) << "fragment " << i << ": MF";
    EXPECT_EQ(f->ol_flags & (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK), 0u) << "fragment " << i;
  }
}

class NatStageTest : public test::TwoPortPipelineTest {
 protected:
  void SetUp() override {
    test::TwoPortPipelineTest::SetUp();
    if (HasFatalFailure()) return;
    add_neighbour(east_id_, kGateway, kGatewayMac);
    add_neighbour(east_id_, "fd00:2::2", kGatewayMac);
    add_neighbour(west_id_, kClient, kHostMac);
    add_neighbour(west_id_, kClient2, kHost2Mac);
    add_neighbour(west_id_, kClient6, kHostMac);
    start(test::two_port_config(nat_ports(), kSections));
  }

  const Stage& stage(Side side, std::string_view name) const {
    const Stage* s = find_stage(pipe(side), name);
    EXPECT_NE(s, nullptr) << name;
    return *s;
  }
  uint64_t count(Side side, std::string_view stage_name, std::string_view counter_name) const {
    return counter(stage(side, stage_name), counter_name);
  }
  const nat::Policy& nat_policy() const { return *nat_policy_->get(); }
  const nat::AddressCounters& address(const char* addr) const {
    const nat::OutsideAddress* o = nat_policy().outside(ip4(addr));
    EXPECT_NE(o, nullptr) << addr << " is an outside address";
    return nat_->address(o ? o->slot : 0);
  }
  uint64_t by_state(unsigned slot) const { return flows_->counters().by_state[slot].get(); }

  // One datagram from the host behind west; the one frame east sent for it.
  Sent out(const std::vector<uint8_t>& datagram) {
    Sent sent = run({frame(datagram)});
    EXPECT_EQ(sent.east.size(), 1u) << "forwarded out of east";
    return sent;
  }
  // One datagram from the gateway behind east; the one frame west sent for it.
  Sent in(const std::vector<uint8_t>& datagram) {
    Sent sent = run_east({frame(datagram)});
    EXPECT_EQ(sent.west.size(), 1u) << "forwarded out of west";
    return sent;
  }
};

// ---- the pipeline the builder makes ----

TEST_F(NatStageTest, BuilderPutsReassembleAndNptv6AfterParseAndNatSrcAfterRoute) {
  for (Side side : {Side::West, Side::East}) {
    std::vector<std::string> names;
    for (const auto& s : pipe(side).stages()) names.push_back(s->name());
    EXPECT_EQ(names, (std::vector<std::string>{"parse", "reassemble", "nptv6", "conntrack", "nat", "route", "nat_src",
                                               "output"}));
  }
}

// ---- source NAT ----

TEST_F(NatStageTest, SnatGivesUdpTcpAndEchoEastsAddressAndAPortOfTheRangeAndRepliesComeBack) {
  const std::vector<uint8_t> udp = udp_datagram(kClient, 40000, kServer, 53);
  const std::vector<uint8_t> syn = tcp_datagram({.sport = 40001, .flags = kSyn});
  const std::vector<uint8_t> ping = echo_datagram(kClient, kServer, 8, 0x1234);
  Sent sent = run({frame(udp), frame(syn), frame(ping)});
  ASSERT_EQ(sent.east.size(), 3u);
  EXPECT_TRUE(sent.west.empty());
  uint16_t port[3];
  for (int i = 0; i < 3; ++i) {
    const rte_mbuf* m = sent.east[i];
    const uint8_t* ip = ip_of(m);
    const std::string what = "packet " + std::to_string(i);
    EXPECT_EQ(src_of(m), kOutside) << what << ": masqueraded to east's address";
    EXPECT_EQ(dst_of(m), kServer) << what;
    EXPECT_EQ(ip[8], 63) << what << ": routed";
    EXPECT_EQ(mac_at(data(m)), kGatewayMac) << what;
    EXPECT_EQ(mac_at(data(m) + 6), east_mac_) << what;
    port[i] = ip[9] == net::kIpProtoIcmp ? icmp_id_of(m) : sport_of(m);
    EXPECT_TRUE(in_range(port[i])) << what << ": outside port " << port[i] << " of 20000-29999";
    expect_checksums(m, what);
  }
  EXPECT_EQ(dport_of(sent.east[0]), 53);
  EXPECT_EQ(dport_of(sent.east[1]), 80);
  EXPECT_EQ(get16(ip_of(sent.east[2]) + 26), 7) << "the echo's sequence number untouched";
  // Apart from the addresses, ports and checksums, the datagrams are as the host sent them.
  std::vector<uint8_t> udp_out = datagram_of(sent.east[0]);
  EXPECT_TRUE(std::equal(udp.begin() + 28, udp.end(), udp_out.begin() + 28, udp_out.end())) << "the UDP payload";

  Sent replies = run_east({frame(udp_datagram(kServer, 53, kOutside, port[0])),
                           frame(tcp_datagram({.src = kServer, .sport = 80, .dst = kOutside, .dport = port[1],
                                               .flags = kSyn | kAck, .seq = kServerIsn, .ack = kClientIsn + 1})),
                           frame(echo_datagram(kServer, kOutside, 0, port[2]))});
  ASSERT_EQ(replies.west.size(), 3u);
  const uint16_t inside_port[3] = {40000, 40001, 0x1234};
  for (int i = 0; i < 3; ++i) {
    const rte_mbuf* m = replies.west[i];
    const std::string what = "reply " + std::to_string(i);
    EXPECT_EQ(src_of(m), kServer) << what;
    EXPECT_EQ(dst_of(m), kClient) << what << ": back to the inside host";
    EXPECT_EQ(mac_at(data(m)), kHostMac) << what;
    EXPECT_EQ(ip_of(m)[9] == net::kIpProtoIcmp ? icmp_id_of(m) : dport_of(m), inside_port[i]) << what;
    expect_checksums(m, what);
  }
  EXPECT_EQ(sport_of(replies.west[0]), 53);
  EXPECT_EQ(sport_of(replies.west[1]), 80);

  EXPECT_EQ(count(Side::West, "nat", "mapped"), 3u);
  EXPECT_EQ(count(Side::West, "nat_src", "translated"), 3u);
  EXPECT_EQ(count(Side::East, "nat", "translated"), 3u) << "the replies' destinations";
  EXPECT_EQ(count(Side::East, "nat_src", "translated"), 0u);
  EXPECT_EQ(nat_->rules()[kRuleMasq].translated.get(), 3u);
  EXPECT_EQ(address(kOutside).in_use.get(), 3u);
  for (Side side : {Side::West, Side::East})
    for (const auto& s : pipe(side).stages()) EXPECT_EQ(s->counters().drops_total(), 0u) << s->name();
}

TEST_F(NatStageTest, TranslatedFlowIsOnePairListedWithBothTuples) {
  Sent sent = out(udp_datagram(kClient, 40000, kServer, 53));
  ASSERT_EQ(sent.east.size(), 1u);
  const uint16_t port = sport_of(sent.east[0]);
  EXPECT_EQ(flows_->active(), 1u);
  EXPECT_EQ(flows_->table4().pairs_active(), 1u) << "the plain entry conntrack made became a pair";
  EXPECT_EQ(flows_->counters().created.get(), 1u);
  EXPECT_EQ(by_state(flow::kUdpUnreplied), 1u);
  Sent reply = in(udp_datagram(kServer, 53, kOutside, port));

  std::vector<FlowRecord> flows = list_flows();
  ASSERT_EQ(flows.size(), 1u);
  const FlowRecord& r = flows[0];
  EXPECT_EQ(r.protocol, net::kIpProtoUdp);
  EXPECT_EQ(test::ip4_text(r.src.data()), kClient) << "the opener's tuple as it sent it";
  EXPECT_EQ(r.src_port, 40000);
  EXPECT_EQ(test::ip4_text(r.dst.data()), kServer);
  EXPECT_EQ(r.dst_port, 53);
  EXPECT_TRUE(r.translated);
  EXPECT_EQ(r.nat_kind, flow::kNatSource);
  EXPECT_EQ(r.nat_rule, kRuleMasq);
  EXPECT_EQ(test::ip4_text(r.reply_src.data()), kServer) << "the reply tuple as the server sends it";
  EXPECT_EQ(r.reply_src_port, 53);
  EXPECT_EQ(test::ip4_text(r.reply_dst.data()), kOutside);
  EXPECT_EQ(r.reply_dst_port, port);
  EXPECT_EQ(flow::state_name(r.protocol, r.state), "replied") << "the reply found the pair by its reply key";
  EXPECT_EQ(by_state(flow::kUdpReplied), 1u);
  EXPECT_EQ(nat_->counters().mappings_created.get(), 1u);
  EXPECT_EQ(nat_->counters().mappings_removed.get(), 0u);

  // Gone with its timeout: both keys, the port and the counters.
  advance((config_.conntrack.timeouts.udp_stream + 1) * 1000);
  for (int round = 0; round < 10; ++round) flows_->service();
  EXPECT_EQ(flows_->active(), 0u);
  EXPECT_EQ(flows_->table4().pairs_active(), 0u);
  EXPECT_EQ(nat_->counters().mappings_removed.get(), 1u);
  EXPECT_EQ(address(kOutside).in_use.get(), 0u);
}

TEST_F(NatStageTest, TcpHandshakeThroughSnatIsTrackedToEstablished) {
  Sent syn = out(tcp_datagram({.sport = 40000, .flags = kSyn, .seq = kClientIsn}));
  ASSERT_EQ(syn.east.size(), 1u);
  const uint16_t port = sport_of(syn.east[0]);
  EXPECT_TRUE(in_range(port));
  expect_checksums(syn.east[0], "SYN");
  Sent syn_ack = in(tcp_datagram({.src = kServer, .sport = 80, .dst = kOutside, .dport = port, .flags = kSyn | kAck,
                                  .seq = kServerIsn, .ack = kClientIsn + 1}));
  ASSERT_EQ(syn_ack.west.size(), 1u);
  EXPECT_EQ(dport_of(syn_ack.west[0]), 40000);
  expect_checksums(syn_ack.west[0], "SYN/ACK");
  Sent ack = out(tcp_datagram({.sport = 40000, .flags = kAck, .seq = kClientIsn + 1, .ack = kServerIsn + 1}));
  ASSERT_EQ(ack.east.size(), 1u);
  EXPECT_EQ(sport_of(ack.east[0]), port) << "the same outside port for the whole connection";
  expect_checksums(ack.east[0], "ACK");
  Sent data_in = in(tcp_datagram({.src = kServer, .sport = 80, .dst = kOutside, .dport = port, .flags = kAck,
                                  .seq = kServerIsn + 1, .ack = kClientIsn + 1, .payload = 500}));
  ASSERT_EQ(data_in.west.size(), 1u);
  expect_checksums(data_in.west[0], "data from the server");

  std::vector<FlowRecord> flows = list_flows();
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].state, static_cast<uint8_t>(TcpState::Established));
  EXPECT_TRUE(flows[0].flags & flow::kFlowAssured);
  EXPECT_TRUE(flows[0].translated);
  EXPECT_EQ(flows[0].reply_dst_port, port);
  EXPECT_EQ(by_state(static_cast<unsigned>(TcpState::Established)), 1u);
  EXPECT_EQ(count(Side::West, "conntrack", "established"), 1u) << "the ACK";
  EXPECT_EQ(count(Side::East, "conntrack", "established"), 2u) << "the SYN/ACK and the data";
  EXPECT_EQ(count(Side::East, "conntrack", "invalid"), 0u);
}

TEST_F(NatStageTest, PacketToTheInsideHostsUntranslatedAddressIsDroppedAsNatUntranslated) {
  Sent sent = out(udp_datagram(kClient, 40000, kServer, 53));
  ASSERT_EQ(sent.east.size(), 1u);
  // The server answering the inside address itself, as if NAT were not there.
  Sent sneaked = run_east({frame(udp_datagram(kServer, 53, kClient, 40000))});
  EXPECT_TRUE(sneaked.west.empty());
  EXPECT_TRUE(sneaked.east.empty());
  EXPECT_EQ(drops(stage(Side::East, "conntrack"), Drop::NatUntranslated), 1u);
  EXPECT_EQ(count(Side::East, "nat", "translated"), 0u);
  std::vector<FlowRecord> flows = list_flows();
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flow::state_name(flows[0].protocol, flows[0].state), "unreplied")
      << "the flow did not take it as its reply";
}

TEST_F(NatStageTest, InvalidPacketsTheRulesAcceptNeverLeaveWithTheInsideAddress) {
  // The rule invalid-out lets kClient2's invalid packets out. An ACK before any SYN/ACK
  // is invalid for its flow: it still goes through the flow's pair.
  Sent syn = out(tcp_datagram({.src = kClient2, .sport = 40100, .dport = 7, .flags = kSyn, .seq = kClientIsn}));
  ASSERT_EQ(syn.east.size(), 1u);
  const uint16_t port = sport_of(syn.east[0]);
  Sent early_ack =
      out(tcp_datagram({.src = kClient2, .sport = 40100, .dport = 7, .flags = kAck, .seq = kClientIsn + 1, .ack = 77}));
  ASSERT_EQ(early_ack.east.size(), 1u);
  EXPECT_EQ(count(Side::West, "conntrack", "invalid_forwarded"), 1u);
  EXPECT_EQ(src_of(early_ack.east[0]), kOutside) << "translated like its flow";
  EXPECT_EQ(sport_of(early_ack.east[0]), port);
  expect_checksums(early_ack.east[0], "invalid ACK");

  // An ICMP error about nothing conntrack knows: masquerade would have to hide its
  // source, and no flow could translate an answer back. Refused, not leaked.
  const std::vector<uint8_t> never_sent = udp_datagram(kServer, 53, kClient2, 40200);
  Sent stray = run({frame(test::icmp_error(ip4(kClient2), ip4(kServer), 3, 3, 0, never_sent, 28))});
  EXPECT_TRUE(stray.east.empty());
  EXPECT_EQ(drops(stage(Side::West, "conntrack"), Drop::NatUntranslated), 1u);
  EXPECT_EQ(count(Side::West, "conntrack", "invalid_forwarded"), 1u);
}

// ---- destination NAT ----

TEST_F(NatStageTest, PortForwardTranslatesTheDestinationInAndTheSourceOfRepliesOut) {
  Sent syn = in(tcp_datagram({.src = kServer, .sport = 50000, .dst = kOutside, .dport = 8080, .flags = kSyn,
                              .seq = kServerIsn}));
  ASSERT_EQ(syn.west.size(), 1u);
  const rte_mbuf* m = syn.west[0];
  EXPECT_EQ(dst_of(m), kClient) << "forwarded to the inside server";
  EXPECT_EQ(dport_of(m), 80);
  EXPECT_EQ(src_of(m), kServer) << "the outside client is seen as itself";
  EXPECT_EQ(sport_of(m), 50000);
  EXPECT_EQ(mac_at(data(m)), kHostMac);
  expect_checksums(m, "forwarded SYN");

  Sent syn_ack = out(tcp_datagram({.src = kClient, .sport = 80, .dst = kServer, .dport = 50000,
                                   .flags = kSyn | kAck, .seq = kClientIsn, .ack = kServerIsn + 1}));
  ASSERT_EQ(syn_ack.east.size(), 1u);
  m = syn_ack.east[0];
  EXPECT_EQ(src_of(m), kOutside) << "the reply comes from the forward's address";
  EXPECT_EQ(sport_of(m), 8080);
  EXPECT_EQ(dst_of(m), kServer);
  EXPECT_EQ(dport_of(m), 50000);
  expect_checksums(m, "SYN/ACK out");
  Sent ack = in(tcp_datagram({.src = kServer, .sport = 50000, .dst = kOutside, .dport = 8080, .flags = kAck,
                              .seq = kServerIsn + 1, .ack = kClientIsn + 1}));
  ASSERT_EQ(ack.west.size(), 1u);

  std::vector<FlowRecord> flows = list_flows();
  ASSERT_EQ(flows.size(), 1u);
  const FlowRecord& r = flows[0];
  EXPECT_EQ(test::ip4_text(r.dst.data()), kOutside);
  EXPECT_EQ(r.dst_port, 8080);
  EXPECT_EQ(r.nat_kind, flow::kNatDestination);
  EXPECT_EQ(r.nat_rule, kRuleWeb);
  EXPECT_EQ(test::ip4_text(r.reply_src.data()), kClient);
  EXPECT_EQ(r.reply_src_port, 80);
  EXPECT_EQ(r.rule, 1) << "admitted by web-fwd, which names the translated destination";
  EXPECT_EQ(r.state, static_cast<uint8_t>(TcpState::Established));
  EXPECT_EQ(nat_->rules()[kRuleWeb].translated.get(), 1u);
  EXPECT_EQ(count(Side::East, "nat", "translated"), 2u) << "the SYN and the ACK";
  EXPECT_EQ(count(Side::West, "nat_src", "translated"), 1u) << "the SYN/ACK";
}

TEST_F(NatStageTest, HairpinHidesTheInsideClientBehindTheForwardsAddress) {
  Sent syn = run({frame(tcp_datagram({.src = kClient2, .sport = 45000, .dst = kOutside, .dport = 8080,
                                      .flags = kSyn, .seq = kClientIsn}))});
  ASSERT_EQ(syn.west.size(), 1u) << "back out of west, to the inside server";
  EXPECT_TRUE(syn.east.empty());
  const rte_mbuf* m = syn.west[0];
  EXPECT_EQ(dst_of(m), kClient);
  EXPECT_EQ(dport_of(m), 80);
  EXPECT_EQ(src_of(m), kOutside) << "the client hidden behind the public address, so the server answers through us";
  const uint16_t port = sport_of(m);
  EXPECT_EQ(mac_at(data(m)), kHostMac);
  expect_checksums(m, "hairpinned SYN");

  Sent syn_ack = run({frame(tcp_datagram({.src = kClient, .sport = 80, .dst = kOutside, .dport = port,
                                          .flags = kSyn | kAck, .seq = kServerIsn, .ack = kClientIsn + 1}))});
  ASSERT_EQ(syn_ack.west.size(), 1u);
  m = syn_ack.west[0];
  EXPECT_EQ(dst_of(m), kClient2);
  EXPECT_EQ(dport_of(m), 45000);
  EXPECT_EQ(src_of(m), kOutside) << "as the client addressed it";
  EXPECT_EQ(sport_of(m), 8080);
  EXPECT_EQ(mac_at(data(m)), kHost2Mac);
  expect_checksums(m, "hairpinned SYN/ACK");

  std::vector<FlowRecord> flows = list_flows();
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].nat_kind, flow::kNatDestination | flow::kNatSource | flow::kNatHairpin);
  EXPECT_EQ(test::ip4_text(flows[0].reply_dst.data()), kOutside);
  EXPECT_EQ(flows[0].reply_dst_port, port);
  EXPECT_EQ(nat_->counters().hairpinned.get(), 1u);
}

// ---- ICMP errors (RFC 5508) ----

TEST_F(NatStageTest, TimeExceededQuotingATranslatedPacketReachesTheInsideHostDetranslated) {
  // TTL 2: Sluice forwards it with 1, the gateway's router answers time exceeded.
  const std::vector<uint8_t> sent_by_client = udp_datagram(kClient, 40000, kServer, 53, 32, 2);
  Sent sent = out(sent_by_client);
  ASSERT_EQ(sent.east.size(), 1u);
  const std::vector<uint8_t> on_the_wire = datagram_of(sent.east[0]);
  const std::vector<uint8_t> error = test::icmp_error(ip4(kGateway), ip4(kOutside), 11, 0, 0, on_the_wire, 28);
  Sent back = in(error);
  ASSERT_EQ(back.west.size(), 1u);
  const rte_mbuf* m = back.west[0];
  const uint8_t* ip = ip_of(m);
  EXPECT_EQ(src_of(m), kGateway) << "the router that sent it";
  EXPECT_EQ(dst_of(m), kClient) << "to the inside host";
  EXPECT_EQ(ip[20], 11);
  expect_checksums(m, "time exceeded");
  // The quote: the client's own datagram as Sluice forwarded it (TTL 1), before translation.
  const std::vector<uint8_t> expected = forwarded(sent_by_client);
  const std::vector<uint8_t> quote(ip + 28, ip + 28 + 28);
  EXPECT_EQ(quote, std::vector<uint8_t>(expected.begin(), expected.begin() + 28))
      << "the quoted header with the inside source, its port and both of its checksums";
  EXPECT_EQ(count(Side::East, "conntrack", "related"), 1u);
  EXPECT_EQ(count(Side::East, "nat", "icmp_errors_translated"), 1u);
  EXPECT_EQ(nat_->counters().icmp_errors.get(), 1u);
}

TEST_F(NatStageTest, PortUnreachableFromTheInsideHostAboutAReplyLeavesTranslated) {
  Sent sent = out(udp_datagram(kClient, 40000, kServer, 53));
  ASSERT_EQ(sent.east.size(), 1u);
  const uint16_t port = sport_of(sent.east[0]);
  const std::vector<uint8_t> sent_by_server = udp_datagram(kServer, 53, kOutside, port, 48);
  Sent reply = in(sent_by_server);
  ASSERT_EQ(reply.west.size(), 1u);
  // The inside host has closed its socket: port unreachable, quoting the reply it got.
  const std::vector<uint8_t> received = datagram_of(reply.west[0]);
  Sent error = out(test::icmp_error(ip4(kClient), ip4(kServer), 3, 3, 0, received, 28));
  ASSERT_EQ(error.east.size(), 1u);
  const rte_mbuf* m = error.east[0];
  const uint8_t* ip = ip_of(m);
  EXPECT_EQ(src_of(m), kOutside) << "from the outside address, as the server knows its peer";
  EXPECT_EQ(dst_of(m), kServer);
  EXPECT_EQ(ip[20], 3);
  EXPECT_EQ(ip[21], 3);
  expect_checksums(m, "port unreachable");
  // The quote: the server's reply as it left the server's side of Sluice (TTL one less).
  const std::vector<uint8_t> expected = forwarded(sent_by_server);
  const std::vector<uint8_t> quote(ip + 28, ip + 28 + 28);
  EXPECT_EQ(quote, std::vector<uint8_t>(expected.begin(), expected.begin() + 28))
      << "the quoted reply to the outside address and port, checksums as the server sent them";
  EXPECT_EQ(count(Side::West, "nat_src", "icmp_errors_translated"), 1u);
  EXPECT_EQ(count(Side::West, "conntrack", "related"), 1u);
}

// ---- the route stage's parked packets ----

TEST_F(NatStageTest, PacketParkedForItsNeighbourIsTranslatedBeforeItIsPunted) {
  // 10.2.0.77 is on east's link and unresolved: the route stage parks the packet, and
  // the router's queue sends it to TX later, past nat_src.
  Sent sent = run({frame(udp_datagram(kClient, 40000, "10.2.0.77", 53))});
  EXPECT_TRUE(sent.east.empty());
  ASSERT_EQ(sent.punted.size(), 1u);
  const rte_mbuf* m = sent.punted[0];
  EXPECT_EQ(meta(m).aux, kPuntResolve);
  EXPECT_EQ(meta(m).out_port, east_id_);
  EXPECT_EQ(src_of(m), kOutside) << "translated before it was punted";
  EXPECT_TRUE(in_range(sport_of(m)));
  EXPECT_EQ(ip_of(m)[8], 63);
  expect_checksums(m, "parked packet");
  EXPECT_EQ(count(Side::West, "route", "punted"), 1u);
  EXPECT_EQ(count(Side::West, "nat_src", "translated"), 1u);
}

TEST_F(NatStageTest, ParkedPacketOverTheMtuLeavesNoChecksumToTheTxOffloadSinceTheRouterFragmentsIt) {
  tx_offloads_[east_id_] =
      RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
  // 1800 bytes without DF over east's 1500, to an unresolved neighbour.
  const std::vector<uint8_t> sent_by_client = udp_datagram(kClient, 40000, "10.2.0.77", 53, 1800 - 28);
  Sent sent = run({frame(sent_by_client)});
  ASSERT_EQ(sent.punted.size(), 1u);
  rte_mbuf* m = sent.punted[0];
  sent.punted.clear();
  EXPECT_EQ(src_of(m), kOutside);
  EXPECT_EQ(m->ol_flags & (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK), 0u) << "nothing left to the NIC";
  expect_checksums(m, "parked packet over the MTU");
  // What the router's queue does with it once the neighbour answers (router.cpp,
  // flush_queue): fragments in software, straight to TX. A NIC cannot sum a datagram it
  // sends in pieces, so its fragments must join into a datagram whose checksum is right.
  rte_mbuf* pieces[kMaxFragments];
  unsigned lost = 0;
  const int n = fragment_ipv4(m, meta(m).l3_offset, 1500, pieces, lost);
  ASSERT_EQ(n, 2);
  EXPECT_EQ(lost, 0u);
  std::vector<rte_mbuf*> fragments(pieces, pieces + n);
  expect_fragments(fragments, 2, 1500);
  const std::vector<uint8_t> whole = rejoin(fragments);
  EXPECT_EQ(stored16(&whole[26]), l4_checksum_full(whole.data())) << "the UDP checksum of the datagram that arrives";
  EXPECT_TRUE(std::equal(sent_by_client.begin() + 28, sent_by_client.end(), whole.begin() + 28, whole.end()));
  test::free_all(fragments);
}

// ---- refusals and bursts ----

TEST_F(NatStageTest, NewFlowRefusedForWantOfPortsIsDroppedWithItsEntryAndItsNextPacketInTheBurst) {
  // Rule one-port: UDP to 10.9.1.2 from 10.2.0.100 port 2000 only.
  Sent first = out(udp_datagram(kClient, 40000, kPoolServer, 7000));
  ASSERT_EQ(first.east.size(), 1u);
  EXPECT_EQ(src_of(first.east[0]), kPoolAddress);
  EXPECT_EQ(sport_of(first.east[0]), kPoolPort);
  expect_checksums(first.east[0], "the pool's one flow");

  // A second flow to the same endpoint finds the port taken; its second packet rides in
  // the same burst; a flow of another rule behind them is translated as usual.
  Sent burst = run({frame(udp_datagram(kClient, 40001, kPoolServer, 7000, 32, 64, 1)),
                    frame(udp_datagram(kClient, 40001, kPoolServer, 7000, 32, 64, 2)),
                    frame(udp_datagram(kClient, 40002, kServer, 53))});
  ASSERT_EQ(burst.east.size(), 1u);
  EXPECT_EQ(dst_of(burst.east[0]), kServer);
  EXPECT_EQ(src_of(burst.east[0]), kOutside);
  EXPECT_EQ(drops(stage(Side::West, "nat"), Drop::NatNoPort), 2u) << "the refused packet and its next";
  EXPECT_EQ(stage(Side::West, "nat").counters().drops_total(), 2u);
  // Its entry went with it: counted unmapped, the gauges and the table agree.
  const flow::FlowCounters& c = flows_->counters();
  EXPECT_EQ(c.created.get(), 3u);
  EXPECT_EQ(c.unmapped.get(), 1u);
  EXPECT_EQ(flows_->active(), 2u);
  EXPECT_EQ(flows_->table4().pairs_active(), 2u);
  EXPECT_EQ(by_state(flow::kUdpUnreplied), 2u);
  EXPECT_EQ(c.created.get() - c.expired.get() - c.evicted.get() - c.unmapped.get(), flows_->active());
  for (const FlowRecord& r : list_flows()) EXPECT_NE(r.src_port, 40001) << "no entry left for the refused flow";
  EXPECT_EQ(nat_->counters().no_port.get(), 1u);
  EXPECT_EQ(nat_->rules()[kRuleOnePort].no_port.get(), 1u);
  EXPECT_EQ(nat_->rules()[kRuleOnePort].translated.get(), 1u);
  EXPECT_EQ(address(kPoolAddress).exhausted.get(), 1u);
  EXPECT_EQ(address(kPoolAddress).in_use.get(), 1u);

  // A later packet of the refused flow is a new flow again, refused again.
  Sent again = run({frame(udp_datagram(kClient, 40001, kPoolServer, 7000))});
  EXPECT_TRUE(again.east.empty());
  EXPECT_EQ(drops(stage(Side::West, "nat"), Drop::NatNoPort), 3u);
  EXPECT_EQ(c.unmapped.get(), 2u);
  EXPECT_EQ(flows_->active(), 2u);
}

TEST_F(NatStageTest, ThreePacketsOfANewFlowInOneBurstAreTranslatedAlike) {
  const std::vector<uint8_t> a = udp_datagram(kClient, 40000, kServer, 53, 32, 64, 1);
  const std::vector<uint8_t> b = udp_datagram(kClient, 40000, kServer, 53, 100, 64, 2);
  const std::vector<uint8_t> c = udp_datagram(kClient, 40000, kServer, 53, 7, 64, 3);
  Sent sent = run({frame(a), frame(b), frame(c)});
  ASSERT_EQ(sent.east.size(), 3u);
  const uint16_t port = sport_of(sent.east[0]);
  EXPECT_TRUE(in_range(port));
  const std::vector<uint8_t>* sent_by_client[3] = {&a, &b, &c};
  for (int i = 0; i < 3; ++i) {
    const rte_mbuf* m = sent.east[i];
    const std::string what = "packet " + std::to_string(i);
    EXPECT_EQ(src_of(m), kOutside) << what;
    EXPECT_EQ(sport_of(m), port) << what << ": one flow, one outside port";
    expect_checksums(m, what);
    const std::vector<uint8_t> d = datagram_of(m);
    EXPECT_TRUE(std::equal(sent_by_client[i]->begin() + 28, sent_by_client[i]->end(), d.begin() + 28, d.end()))
        << what << ": its own payload, in order";
  }
  EXPECT_EQ(count(Side::West, "nat", "mapped"), 1u);
  EXPECT_EQ(count(Side::West, "nat_src", "translated"), 3u);
  EXPECT_EQ(flows_->counters().created.get(), 1u);
  EXPECT_EQ(flows_->table4().pairs_active(), 1u);
  EXPECT_EQ(nat_->counters().mappings_created.get(), 1u);
}

// ---- TX checksum offload ----

// What a NIC does with the IPv4 and L4 checksum offloads: sums the header, and sums the
// segment onto the pseudo-header sum left in the L4 field.
std::vector<uint8_t> as_the_nic_sends_it(std::vector<uint8_t> d) {
  net::store16(&d[test::kIpChecksumAt], 0);
  net::store16(&d[test::kIpChecksumAt], rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(d.data())));
  const size_t at = l4_checksum_at(d.data());
  const uint16_t sum = rte_raw_cksum(&d[20], d.size() - 20);
  uint16_t sent = static_cast<uint16_t>(~sum);
  if (sent == 0 && d[9] == net::kIpProtoUdp) sent = 0xffff;
  net::store16(&d[at], sent);
  return d;
}

TEST_F(NatStageTest, TxChecksumOffloadLeavesThePseudoHeaderSumAndZeroIpChecksumForTheNic) {
  tx_offloads_[east_id_] =
      RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
  Sent sent = run({frame(udp_datagram(kClient, 40000, kServer, 53)), frame(tcp_datagram({.sport = 40001}))});
  ASSERT_EQ(sent.east.size(), 2u);
  const uint64_t l4_flag[2] = {RTE_MBUF_F_TX_UDP_CKSUM, RTE_MBUF_F_TX_TCP_CKSUM};
  for (int i = 0; i < 2; ++i) {
    const rte_mbuf* m = sent.east[i];
    const std::string what = i == 0 ? "UDP" : "TCP";
    EXPECT_EQ(m->ol_flags & (RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK),
              RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | l4_flag[i])
        << what;
    EXPECT_EQ(static_cast<size_t>(m->l2_len), kL3) << what;
    EXPECT_EQ(static_cast<unsigned>(m->l3_len), 20u) << what;
    const std::vector<uint8_t> d = datagram_of(m);
    EXPECT_EQ(stored16(&d[test::kIpChecksumAt]), 0) << what << ": the IPv4 checksum left to the NIC";
    EXPECT_EQ(stored16(&d[l4_checksum_at(d.data())]),
              rte_ipv4_phdr_cksum(reinterpret_cast<const rte_ipv4_hdr*>(d.data()), m->ol_flags))
        << what << ": the pseudo-header sum (translated addresses) in the L4 field";
    // What leaves the NIC: every checksum right for the translated packet.
    const std::vector<uint8_t> wire = as_the_nic_sends_it(d);
    EXPECT_EQ(stored16(&wire[test::kIpChecksumAt]), test::ipv4_checksum_full(wire.data())) << what;
    EXPECT_EQ(stored16(&wire[l4_checksum_at(wire.data())]), l4_checksum_full(wire.data())) << what;
    EXPECT_EQ(test::src4(wire.data()), kOutside) << what;
    EXPECT_TRUE(in_range(get16(&wire[20]))) << what;
  }
  // West has no offload: the replies there carry their checksums.
  Sent reply = in(udp_datagram(kServer, 53, kOutside, sport_of(sent.east[0])));
  ASSERT_EQ(reply.west.size(), 1u);
  EXPECT_EQ(reply.west[0]->ol_flags & (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK), 0u);
  expect_checksums(reply.west[0], "reply out of west");
}

TEST_F(NatStageTest, NoTxChecksumOffloadForAPacketTheOutputStageFragments) {
  tx_offloads_[east_id_] =
      RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
  // 1800 bytes without DF over east's MTU of 1500: marked kMetaFragmentOnOutput.
  const std::vector<uint8_t> sent_by_client = udp_datagram(kClient, 40000, kServer, 53, 1800 - 28);
  Sent sent = run({frame(sent_by_client)});
  expect_fragments(sent.east, 2, 1500);
  if (HasFatalFailure()) return;
  const std::vector<uint8_t> whole = rejoin(sent.east);
  ASSERT_EQ(whole.size(), sent_by_client.size());
  EXPECT_TRUE(in_range(get16(&whole[20])));
  EXPECT_EQ(stored16(&whole[26]), l4_checksum_full(whole.data())) << "the UDP checksum of the translated datagram";
  EXPECT_TRUE(std::equal(sent_by_client.begin() + 28, sent_by_client.end(), whole.begin() + 28, whole.end()));
  EXPECT_EQ(count(Side::West, "output", "fragmented"), 1u);
  EXPECT_EQ(count(Side::West, "nat_src", "translated"), 1u);
}

// ---- reassembly ----

class NatStageReassemblyTest : public NatStageTest {
 protected:
  // A 2420-byte UDP datagram from the client in three fragments of 800 payload bytes.
  void SetUp() override {
    NatStageTest::SetUp();
    if (HasFatalFailure()) return;
    datagram_ = udp_datagram(kClient, 40000, kServer, 53, 2400 - 8);
    const std::vector<uint8_t> payload(datagram_.begin() + 20, datagram_.end());
    for (size_t k = 0; k < 3; ++k)
      fragments_.push_back(test::fragment_frame(ip4(kClient), ip4(kServer), 0x4242, net::kIpProtoUdp, payload,
                                                k * 800, 800, k < 2));
  }

  // East's output for the joined datagram: 2 fragments of east's 1500-byte MTU, which
  // join into the client's datagram translated.
  void expect_translated_datagram(const Sent& sent) {
    expect_fragments(sent.east, 2, 1500);
    if (HasFatalFailure()) return;
    const std::vector<uint8_t> whole = rejoin(sent.east);
    ASSERT_EQ(whole.size(), datagram_.size());
    EXPECT_EQ(test::src4(whole.data()), kOutside);
    EXPECT_EQ(test::dst4(whole.data()), kServer);
    EXPECT_TRUE(in_range(get16(&whole[20])));
    EXPECT_EQ(get16(&whole[22]), 53);
    EXPECT_EQ(stored16(&whole[26]), l4_checksum_full(whole.data())) << "the joined datagram's UDP checksum";
    EXPECT_TRUE(std::equal(datagram_.begin() + 28, datagram_.end(), whole.begin() + 28, whole.end())) << "the payload";
    EXPECT_EQ(count(Side::West, "reassemble", "reassembled"), 1u);
    EXPECT_EQ(count(Side::West, "reassemble", "held"), 2u);
    EXPECT_EQ(count(Side::West, "output", "fragmented"), 1u) << "the route stage marked it for east's MTU";
    EXPECT_EQ(count(Side::West, "nat", "mapped"), 1u);
    EXPECT_EQ(count(Side::West, "conntrack", "later_fragments"), 0u) << "conntrack saw one whole datagram";
    EXPECT_EQ(nat_->reassembler().in_progress(), 0u);
  }

  std::vector<uint8_t> datagram_;
  Frames fragments_;
};

TEST_F(NatStageReassemblyTest, ThreeFragmentsInOneBurstLeaveAsOneTranslatedDatagram) {
  Sent sent = run(fragments_);
  EXPECT_TRUE(sent.punted.empty());
  expect_translated_datagram(sent);
}

TEST_F(NatStageReassemblyTest, FragmentsAcrossBurstsLeaveAsOneTranslatedDatagram) {
  Sent first = run({fragments_[2]});
  EXPECT_TRUE(first.east.empty());
  Sent second = run({fragments_[0]});
  EXPECT_TRUE(second.east.empty());
  EXPECT_EQ(nat_->reassembler().in_progress(), 1u);
  EXPECT_EQ(in_use(), 2u) << "the two fragments held";
  Sent last = run({fragments_[1]});
  expect_translated_datagram(last);
}

TEST_F(NatStageReassemblyTest, FragmentsStillHeldAtTheEndAreFreedWithTheNatContext) {
  Sent sent = run({fragments_[0], fragments_[1]});
  EXPECT_TRUE(sent.east.empty());
  EXPECT_EQ(in_use(), 2u);
  stop();
  EXPECT_EQ(in_use(), 0u);
}

// ---- NPTv6 ----

TEST_F(NatStageTest, Nptv6TranslatesOutboundSourcesInNatSrcAndInboundDestinationsBeforeConntrack) {
  const std::vector<uint8_t> request = udp6_frame(kClient6, 40000, kServer6, 53);
  Sent sent = run({request});
  ASSERT_EQ(sent.east.size(), 1u);
  const uint8_t* ip = ip_of(sent.east[0]);
  EXPECT_EQ(test::src6(ip), kClient6Outside) << "the inside prefix swapped for the outside one";
  EXPECT_EQ(test::dst6(ip), kServer6);
  EXPECT_TRUE(test::icmp6_checksum_ok(ip)) << "the UDP checksum verifies over the new source";
  EXPECT_EQ(get16(ip + 40 + 6), get16(&request[kL3 + 40 + 6])) << "checksum-neutral: the UDP checksum untouched";
  EXPECT_EQ(get16(ip + 40), 40000) << "ports are not NPTv6's";

  Sent reply = run_east({udp6_frame(kServer6, 53, kClient6Outside, 40000)});
  ASSERT_EQ(reply.west.size(), 1u);
  ip = ip_of(reply.west[0]);
  EXPECT_EQ(test::dst6(ip), kClient6);
  EXPECT_EQ(test::src6(ip), kServer6);
  EXPECT_TRUE(test::icmp6_checksum_ok(ip));
  EXPECT_EQ(mac_at(data(reply.west[0])), kHostMac);

  // Conntrack saw the inside address both ways: one flow, its reply seen.
  std::vector<FlowRecord> flows = list_flows();
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].family, 6);
  EXPECT_EQ(test::ip6_text(flows[0].src.data()), kClient6);
  EXPECT_FALSE(flows[0].translated) << "NPTv6 keeps no state";
  EXPECT_EQ(flow::state_name(flows[0].protocol, flows[0].state), "replied");
  EXPECT_EQ(count(Side::East, "nptv6", "translated"), 1u);
  EXPECT_EQ(count(Side::West, "nat_src", "nptv6_translated"), 1u);
  EXPECT_EQ(count(Side::West, "nptv6", "translated"), 0u) << "west has no mapping";
  EXPECT_EQ(nat_->counters().nptv6_translated.get(), 2u);
}

}  // namespace
}  // namespace sluice::pipeline
