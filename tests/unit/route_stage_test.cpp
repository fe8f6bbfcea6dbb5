// lib/pipeline/route (with parse and output): the router's fast path on crafted frames,
// with a real RouteTable published through RCU, a neighbour table holding static
// entries, a punt ring, an ICMP token bucket and TX queues on ring-backed ports.
// West (ingress) has 10.1.0.1/24 and fd00:1::1/64, east (MTU 1000) 10.2.0.1/24 and
// fd00:2::1/64; every frame comes from the host 10.1.0.10 / fd00:1::10 behind west.
#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_cycles.h>
#include <rte_ip.h>

#include "config/config.h"
#include "l3/icmp.h"
#include "l3/neighbour_table.h"
#include "l3/rcu.h"
#include "l3/route_table.h"
#include "l3_fixture.h"
#include "l3_support.h"
#include "pipeline/output.h"
#include "pipeline/packet_meta.h"
#include "pipeline/pipeline.h"
#include "pipeline/route.h"
#include "test_support.h"

namespace sluice::pipeline {
namespace {

using test::data;
using test::dst4;
using test::dst6;
using test::ether;
using test::Frame;
using test::get16;
using test::ip_of;
using test::ipv4_checksum_ok;
using test::ipv4_frame;
using test::ipv6_frame;
using test::kGatewayMac;  // 10.2.0.2
using test::kHostMac;
using test::kIngressMac;
using test::kL3;
using test::Mac;
using test::mac_at;
using test::Sent;
using test::src4;
using test::src6;
using test::V4;
using test::V6;

constexpr Mac kEastMac = {0x02, 0, 0, 0, 0x0e, 0x01};
constexpr Mac kGateway3Mac = {0x02, 0, 0, 0, 0x0e, 0x03};  // 10.2.0.3
constexpr Mac kEastHostMac = {0x02, 0, 0, 0, 0x0e, 0x05};  // 10.2.0.5
constexpr Mac kGateway6Mac = {0x02, 0, 0, 0, 0x0e, 0x62};  // fd00:2::2
constexpr uint16_t kEastMtu = 1000;

const std::string kConfig = test::two_port_config(test::routed_ports(), R"("routes": [
    {"prefix": "10.9.0.0/16", "via": "10.2.0.2"},
    {"prefix": "10.8.0.0/16", "nexthops": [{"via": "10.2.0.2"}, {"via": "10.2.0.3"}]},
    {"prefix": "10.7.0.0/16", "via": "10.2.0.7"},
    {"prefix": "fd00:9::/48", "via": "fd00:2::2"}])");

class RouteStageTest : public test::TwoPortPipelineTest {
 protected:
  void SetUp() override {
    test::TwoPortPipelineTest::SetUp();
    if (HasFatalFailure()) return;
    west_mac_ = kIngressMac;  // what Frame::eth() addresses
    east_mac_ = kEastMac;
    start(kConfig);
    if (HasFatalFailure()) return;
    add_neighbour(east_id_, "10.2.0.2", kGatewayMac);
    add_neighbour(east_id_, "10.2.0.3", kGateway3Mac);
    add_neighbour(east_id_, "10.2.0.5", kEastHostMac);
    add_neighbour(east_id_, "fd00:2::2", kGateway6Mac);
    // 10.2.0.7: being resolved, no MAC yet.
    ASSERT_NE(neighbours_->create(l3::NeighbourKey::of(east_id_, *net::parse_ip("10.2.0.7")), 0), nullptr);
    ASSERT_EQ(west_pipe_->stages().size(), 3u);
    ASSERT_EQ(west_pipe_->stages()[1]->name(), "route");
  }

  void TearDown() override {
    other_pipeline_.reset();
    test::TwoPortPipelineTest::TearDown();
  }

  const Stage& parse_stage() const { return *west_pipe_->stages()[0]; }
  const Stage& route_stage() const { return *west_pipe_->stages()[1]; }
  const Stage& output_stage() const { return *west_pipe_->stages()[2]; }
  uint64_t route_drops(Drop reason) const { return drops(route_stage(), reason); }
  uint64_t route_counter(std::string_view name) const { return counter(route_stage(), name); }

  // The ICMPv4 error in `m` (sent back to the host from west's address): checks the
  // headers and returns the ICMP header's offset in the frame.
  size_t expect_icmp4_error(const rte_mbuf* m, uint8_t type, uint8_t code, const std::vector<uint8_t>& original) {
    const uint8_t* f = data(m);
    EXPECT_EQ(m->pkt_len, m->data_len);
    EXPECT_EQ(mac_at(f), kHostMac) << "back to the Ethernet source";
    EXPECT_EQ(mac_at(f + 6), kIngressMac);
    EXPECT_EQ(get16(f + 12), net::kEtherTypeIpv4);
    const uint8_t* ip = f + kL3;
    EXPECT_EQ(ip[0], 0x45);
    EXPECT_EQ(ip[9], net::kIpProtoIcmp);
    EXPECT_EQ(ip[8], 64) << "a fresh TTL";
    EXPECT_EQ(src4(ip), "10.1.0.1") << "from the ingress port's first address";
    EXPECT_EQ(dst4(ip), "10.1.0.10");
    EXPECT_TRUE(ipv4_checksum_ok(ip));
    EXPECT_EQ(get16(ip + 2), m->pkt_len - kL3);
    const uint8_t* icmp = ip + 20;
    EXPECT_EQ(icmp[0], type);
    EXPECT_EQ(icmp[1], code);
    EXPECT_EQ(rte_raw_cksum(icmp, m->pkt_len - kL3 - 20), 0xffff) << "ICMP checksum";
    // The quote: the offending packet as it arrived, up to 576 bytes of error in all.
    size_t quoted = m->pkt_len - kL3 - 28;
    size_t expected = std::min<size_t>(original.size() - kL3, 576 - 28);
    EXPECT_EQ(quoted, expected);
    EXPECT_TRUE(std::equal(icmp + 8, icmp + 8 + quoted, original.begin() + kL3)) << "quotes the original";
    return kL3 + 20;
  }

  size_t expect_icmp6_error(const rte_mbuf* m, uint8_t type, uint8_t code, const std::vector<uint8_t>& original) {
    const uint8_t* f = data(m);
    EXPECT_EQ(mac_at(f), kHostMac);
    EXPECT_EQ(mac_at(f + 6), kIngressMac);
    EXPECT_EQ(get16(f + 12), net::kEtherTypeIpv6);
    const uint8_t* ip = f + kL3;
    EXPECT_EQ(ip[6], net::kIpProtoIcmpv6);
    EXPECT_EQ(ip[7], 64);
    EXPECT_EQ(src6(ip), "fd00:1::1");
    EXPECT_EQ(dst6(ip), "fd00:1::10");
    EXPECT_EQ(get16(ip + 4), m->pkt_len - kL3 - 40);
    EXPECT_TRUE(test::icmp6_checksum_ok(ip)) << "ICMPv6 checksum";
    const uint8_t* icmp = ip + 40;
    EXPECT_EQ(icmp[0], type);
    EXPECT_EQ(icmp[1], code);
    size_t quoted = m->pkt_len - kL3 - 48;
    EXPECT_EQ(quoted, std::min<size_t>(original.size() - kL3, 1280 - 48));
    EXPECT_TRUE(std::equal(icmp + 8, icmp + 8 + quoted, original.begin() + kL3));
    return kL3 + 40;
  }

  std::unique_ptr<Pipeline> other_pipeline_;  // a test's own, with another context
};

// ---- forwarding ----

TEST_F(RouteStageTest, ForwardsIpv4WithTtlDecrementedAndMacsRewritten) {
  std::vector<uint8_t> frame = ipv4_frame({.ttl = 64});
  Sent sent = run({frame});
  ASSERT_EQ(sent.east.size(), 1u);
  EXPECT_TRUE(sent.west.empty());
  const uint8_t* f = data(sent.east[0]);
  EXPECT_EQ(mac_at(f), kGatewayMac) << "to the gateway of 10.9.0.0/16";
  EXPECT_EQ(mac_at(f + 6), kEastMac);
  EXPECT_EQ(get16(f + 12), net::kEtherTypeIpv4);
  const uint8_t* ip = f + kL3;
  EXPECT_EQ(ip[8], 63);
  EXPECT_TRUE(ipv4_checksum_ok(ip)) << "incremental checksum update";
  EXPECT_EQ(src4(ip), "10.1.0.10");
  EXPECT_EQ(dst4(ip), "10.9.1.1");
  EXPECT_EQ(sent.east[0]->pkt_len, frame.size());
  EXPECT_TRUE(std::equal(frame.begin() + kL3 + 12, frame.end(), ip + 12)) << "addresses and payload untouched";
  EXPECT_EQ(route_counter("ipv4_forwarded"), 1u);
  EXPECT_EQ(route_stage().counters().drops_total(), 0u);
  EXPECT_EQ(output_stage().counters().packets_in.get(), 1u);
}

TEST_F(RouteStageTest, ChecksumStaysValidForEveryTtl) {
  std::vector<std::vector<uint8_t>> frames;
  for (int ttl = 2; ttl < 256; ttl += 7) frames.push_back(ipv4_frame({.ttl = uint8_t(ttl), .id = uint16_t(ttl * 977)}));
  Sent sent = run(frames);
  ASSERT_EQ(sent.east.size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    const uint8_t* ip = ip_of(sent.east[i]);
    EXPECT_EQ(ip[8], frames[i][kL3 + 8] - 1) << "order kept";
    EXPECT_TRUE(ipv4_checksum_ok(ip)) << "TTL " << int(frames[i][kL3 + 8]);
  }
}

TEST_F(RouteStageTest, ForwardsToAConnectedHost) {
  Sent sent = run({ipv4_frame({.dst = "10.2.0.5"})});
  ASSERT_EQ(sent.east.size(), 1u);
  EXPECT_EQ(mac_at(data(sent.east[0])), kEastHostMac) << "the destination is its own next hop";
  EXPECT_EQ(meta(sent.east[0]).out_port, east_id_);
}

TEST_F(RouteStageTest, ForwardsIpv6WithHopLimitDecremented) {
  std::vector<uint8_t> frame = ipv6_frame({.hop_limit = 2});
  Sent sent = run({frame});
  ASSERT_EQ(sent.east.size(), 1u);
  const uint8_t* f = data(sent.east[0]);
  EXPECT_EQ(mac_at(f), kGateway6Mac);
  EXPECT_EQ(mac_at(f + 6), kEastMac);
  EXPECT_EQ(f[kL3 + 7], 1);
  EXPECT_EQ(src6(f + kL3), "fd00:1::10");
  EXPECT_EQ(dst6(f + kL3), "fd00:9::1");
  EXPECT_EQ(route_counter("ipv6_forwarded"), 1u);
}

TEST_F(RouteStageTest, ForwardsIpv4WithOptions) {
  std::vector<uint8_t> frame = ipv4_frame({.ihl = 6});
  Sent sent = run({frame});
  ASSERT_EQ(sent.east.size(), 1u);
  const uint8_t* ip = ip_of(sent.east[0]);
  EXPECT_EQ(ip[0], 0x46);
  EXPECT_EQ(ip[8], 63);
  EXPECT_TRUE(ipv4_checksum_ok(ip)) << "the checksum covers the options";
  EXPECT_TRUE(std::equal(frame.begin() + kL3 + 20, frame.end(), ip + 20)) << "options forwarded untouched";
}

TEST_F(RouteStageTest, EcmpSpreadsFlowsAndKeepsEachOnOnePath) {
  std::vector<std::vector<uint8_t>> frames;
  for (uint16_t port = 1000; port < 1032; ++port) frames.push_back(ipv4_frame({.dst = "10.8.1.1", .src_port = port}));
  Sent first = run(frames);
  Sent again = run(frames);
  ASSERT_EQ(first.east.size(), frames.size());
  ASSERT_EQ(again.east.size(), frames.size());
  std::set<Mac> gateways;
  for (size_t i = 0; i < frames.size(); ++i) {
    gateways.insert(mac_at(data(first.east[i])));
    EXPECT_EQ(mac_at(data(again.east[i])), mac_at(data(first.east[i]))) << "a flow keeps its path";
  }
  EXPECT_EQ(gateways, (std::set<Mac>{kGatewayMac, kGateway3Mac}));
}

TEST_F(RouteStageTest, ForwardsFragmentsAsTheyAre) {
  Sent sent = run({ipv4_frame({.fragment = 0x2000, .payload = 64}), ipv4_frame({.fragment = 0x0010, .payload = 64}),
                   ipv6_frame({.payload = 64, .fragment_offset = 0, .more_fragments = true}),
                   ipv6_frame({.payload = 64, .fragment_offset = 9})});
  ASSERT_EQ(sent.east.size(), 4u);
  EXPECT_EQ(get16(ip_of(sent.east[0]) + 6), 0x2000);
  EXPECT_EQ(get16(ip_of(sent.east[1]) + 6), 0x0010);
  EXPECT_EQ(ip_of(sent.east[1])[8], 63);
  EXPECT_TRUE(ipv4_checksum_ok(ip_of(sent.east[1])));
  EXPECT_EQ(ip_of(sent.east[3])[7], 63);
  EXPECT_EQ(route_counter("ipv4_forwarded"), 2u);
  EXPECT_EQ(route_counter("ipv6_forwarded"), 2u);
}

// ---- TTL ----

TEST_F(RouteStageTest, DropsTtlOneWithIcmpTimeExceeded) {
  std::vector<uint8_t> frame = ipv4_frame({.ttl = 1});
  Sent sent = run({frame});
  EXPECT_TRUE(sent.east.empty());
  ASSERT_EQ(sent.west.size(), 1u) << "the error leaves the ingress port";
  expect_icmp4_error(sent.west[0], 11, 0, frame);
  EXPECT_EQ(meta(sent.west[0]).out_port, west_id_);
  EXPECT_EQ(route_drops(Drop::TtlExceeded), 1u);
  EXPECT_EQ(route_counter("icmp_time_exceeded"), 1u);
  EXPECT_EQ(route_counter("ipv4_forwarded"), 0u);
}

TEST_F(RouteStageTest, DropsTtlZeroWithIcmpTimeExceeded) {
  std::vector<uint8_t> frame = ipv4_frame({.ttl = 0});
  Sent sent = run({frame});
  ASSERT_EQ(sent.west.size(), 1u);
  expect_icmp4_error(sent.west[0], 11, 0, frame);
  EXPECT_EQ(route_drops(Drop::TtlExceeded), 1u);
}

TEST_F(RouteStageTest, DropsHopLimitOneWithIcmpv6TimeExceeded) {
  std::vector<uint8_t> frame = ipv6_frame({.hop_limit = 1});
  Sent sent = run({frame});
  ASSERT_EQ(sent.west.size(), 1u);
  expect_icmp6_error(sent.west[0], 3, 0, frame);
  EXPECT_EQ(route_drops(Drop::TtlExceeded), 1u);
  EXPECT_EQ(route_counter("icmp_time_exceeded"), 1u);
}

TEST_F(RouteStageTest, NoIcmpErrorAboutAnIcmpErrorOrALaterFragment) {
  Sent sent = run({ipv4_frame({.proto = net::kIpProtoIcmp, .ttl = 1, .icmp_type = 3}),
                   ipv4_frame({.ttl = 1, .fragment = 0x0010}), ipv6_frame({.proto = net::kIpProtoIcmpv6, .hop_limit = 1,
                                                                          .icmp_type = 1}),
                   ipv6_frame({.hop_limit = 1, .fragment_offset = 9})});
  EXPECT_TRUE(sent.west.empty());
  EXPECT_EQ(route_drops(Drop::TtlExceeded), 4u);
  EXPECT_EQ(route_counter("icmp_time_exceeded"), 0u);
}

TEST_F(RouteStageTest, TtlOneToOurOwnAddressIsStillAnswered) {
  Sent sent = run({ipv4_frame({.dst = "10.1.0.1", .proto = net::kIpProtoIcmp, .ttl = 1})});
  ASSERT_EQ(sent.west.size(), 1u);
  EXPECT_EQ(ip_of(sent.west[0])[20], 0) << "an echo reply, not time exceeded";
}

// ---- header checks ----

TEST_F(RouteStageTest, DropsABadIpv4Checksum) {
  std::vector<uint8_t> frame = ipv4_frame({});
  frame[kL3 + 10] ^= 0x5a;
  Sent sent = run({frame});
  EXPECT_TRUE(sent.east.empty());
  EXPECT_TRUE(sent.west.empty()) << "no ICMP about a corrupt header";
  EXPECT_EQ(route_drops(Drop::BadIpv4Checksum), 1u);
}

TEST_F(RouteStageTest, TrustsTheDevicesChecksumVerdict) {
  std::vector<uint8_t> bad = ipv4_frame({});
  bad[kL3 + 10] ^= 0x5a;
  rte_mbuf* good_by_device = make_mbuf(bad);
  good_by_device->ol_flags |= RTE_MBUF_F_RX_IP_CKSUM_GOOD;
  rte_mbuf* bad_by_device = make_mbuf(ipv4_frame({}));
  bad_by_device->ol_flags |= RTE_MBUF_F_RX_IP_CKSUM_BAD;
  Sent sent = run_mbufs({good_by_device, bad_by_device});
  ASSERT_EQ(sent.east.size(), 1u);
  EXPECT_EQ(sent.east[0], good_by_device);
  EXPECT_EQ(route_drops(Drop::BadIpv4Checksum), 1u);
}

TEST_F(RouteStageTest, ParseDropsShortHeadersWithTheirReason) {
  std::vector<uint8_t> ihl4 = ipv4_frame({});
  ihl4[kL3] = 0x44;
  std::vector<uint8_t> truncated = ipv4_frame({});
  truncated.resize(kL3 + 12);
  std::vector<uint8_t> long_length = ipv4_frame({});
  test::put16(long_length, kL3 + 2, uint16_t(long_length.size()));
  std::vector<uint8_t> truncated6 = ipv6_frame({});
  truncated6.resize(kL3 + 30);
  Sent sent = run({ihl4, truncated, long_length, truncated6});
  EXPECT_TRUE(sent.east.empty());
  EXPECT_TRUE(sent.west.empty());
  EXPECT_EQ(drops(parse_stage(), Drop::BadIpv4Ihl), 1u);
  EXPECT_EQ(drops(parse_stage(), Drop::TruncatedIpv4), 1u);
  EXPECT_EQ(drops(parse_stage(), Drop::BadIpv4TotalLength), 1u);
  EXPECT_EQ(drops(parse_stage(), Drop::TruncatedIpv6), 1u);
  EXPECT_EQ(route_stage().counters().packets_in.get(), 0u) << "never reached the route stage";
}

struct AddressCase {
  const char* src;
  const char* dst;
  Drop reason;
};

TEST_F(RouteStageTest, DropsMartianAndUnroutableIpv4Addresses) {
  const AddressCase cases[] = {
      {"127.0.0.1", "10.9.1.1", Drop::MartianSource},     {"0.1.2.3", "10.9.1.1", Drop::MartianSource},
      {"224.0.0.9", "10.9.1.1", Drop::MartianSource},     {"240.0.0.1", "10.9.1.1", Drop::MartianSource},
      {"255.255.255.255", "10.9.1.1", Drop::MartianSource}, {"10.1.0.10", "0.0.0.7", Drop::MartianDestination},
      {"10.1.0.10", "127.0.0.1", Drop::MartianDestination}, {"10.1.0.10", "224.0.0.5", Drop::NotRoutable},
      {"10.1.0.10", "239.1.2.3", Drop::NotRoutable},      {"10.1.0.10", "255.255.255.255", Drop::NotRoutable},
      {"10.1.0.10", "169.254.1.1", Drop::NotRoutable},    {"169.254.3.3", "10.9.1.1", Drop::NotRoutable},
      {"10.1.0.10", "10.2.0.255", Drop::NotRoutable},     {"10.1.0.10", "10.1.0.255", Drop::NotRoutable},
  };
  for (const auto& c : cases) {
    Sent sent = run({ipv4_frame({.src = c.src, .dst = c.dst})});
    EXPECT_TRUE(sent.east.empty()) << c.src << " -> " << c.dst;
    EXPECT_TRUE(sent.west.empty()) << c.src << " -> " << c.dst;
  }
  EXPECT_EQ(route_drops(Drop::MartianSource), 5u);
  EXPECT_EQ(route_drops(Drop::MartianDestination), 2u);
  EXPECT_EQ(route_drops(Drop::NotRoutable), 7u);
  EXPECT_EQ(route_counter("icmp_unreachable"), 0u);
}

TEST_F(RouteStageTest, DropsMartianAndUnroutableIpv6Addresses) {
  const AddressCase cases[] = {
      {"ff02::1", "fd00:9::1", Drop::MartianSource},     {"::", "fd00:9::1", Drop::MartianSource},
      {"::1", "fd00:9::1", Drop::MartianSource},         {"fd00:1::10", "::", Drop::MartianDestination},
      {"fd00:1::10", "::1", Drop::MartianDestination},   {"fd00:1::10", "ff02::2", Drop::NotRoutable},
      {"::", "ff02::16", Drop::NotRoutable},             {"fd00:1::10", "ff0e::1", Drop::NotRoutable},
      {"fd00:1::10", "fe80::1", Drop::NotRoutable},      {"fe80::10", "fd00:9::1", Drop::NotRoutable},
  };
  for (const auto& c : cases) {
    Sent sent = run({ipv6_frame({.src = c.src, .dst = c.dst})});
    EXPECT_TRUE(sent.east.empty()) << c.src << " -> " << c.dst;
    EXPECT_TRUE(sent.west.empty()) << c.src << " -> " << c.dst;
  }
  EXPECT_EQ(route_drops(Drop::MartianSource), 3u);
  EXPECT_EQ(route_drops(Drop::MartianDestination), 2u);
  EXPECT_EQ(route_drops(Drop::NotRoutable), 5u);
}

TEST_F(RouteStageTest, DropsUnicastIpInALinkLayerBroadcast) {
  std::vector<uint8_t> v4 = ipv4_frame({});
  test::set_mac(v4, 0, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
  std::vector<uint8_t> v6 = ipv6_frame({});
  test::set_mac(v6, 0, {0x33, 0x33, 0, 0, 0, 0x01});
  Sent sent = run({v4, v6});
  EXPECT_TRUE(sent.east.empty());
  EXPECT_EQ(route_drops(Drop::NotRoutable), 2u);
}

TEST_F(RouteStageTest, DropsFramesForAnotherMac) {
  std::vector<uint8_t> frame = ipv4_frame({});
  test::set_mac(frame, 0, {0x02, 0, 0, 0, 0, 0x99});
  Sent sent = run({frame});
  EXPECT_TRUE(sent.east.empty());
  EXPECT_EQ(route_drops(Drop::NotForUs), 1u);
}

TEST_F(RouteStageTest, DropsVlanTaggedFrames) {
  std::vector<uint8_t> frame = Frame().eth(net::kEtherTypeVlan).vlan(10, net::kEtherTypeIpv4).ipv4(net::kIpProtoUdp).udp().payload(8).build();
  Sent sent = run({frame});
  EXPECT_TRUE(sent.east.empty());
  EXPECT_EQ(route_drops(Drop::TaggedFrame), 1u);
}

TEST_F(RouteStageTest, DropsWhatIsNeitherIpNorArp) {
  Sent sent = run({Frame().eth(0x88cc).payload(46).build()});  // LLDP
  EXPECT_EQ(route_drops(Drop::NotIp), 1u);
}

// ---- no route ----

TEST_F(RouteStageTest, NoRouteAnswersNetUnreachable) {
  std::vector<uint8_t> frame = ipv4_frame({.dst = "192.0.2.1"});
  Sent sent = run({frame});
  EXPECT_TRUE(sent.east.empty());
  ASSERT_EQ(sent.west.size(), 1u);
  size_t icmp = expect_icmp4_error(sent.west[0], 3, 0, frame);
  EXPECT_EQ(get16(data(sent.west[0]) + icmp + 4), 0);
  EXPECT_EQ(get16(data(sent.west[0]) + icmp + 6), 0);
  EXPECT_EQ(route_drops(Drop::NoRoute), 1u);
  EXPECT_EQ(route_counter("route_misses"), 1u);
  EXPECT_EQ(route_counter("icmp_unreachable"), 1u);
}

TEST_F(RouteStageTest, NoIpv6RouteAnswersNoRouteToDestination) {
  std::vector<uint8_t> frame = ipv6_frame({.dst = "2001:db8::1"});
  Sent sent = run({frame});
  ASSERT_EQ(sent.west.size(), 1u);
  expect_icmp6_error(sent.west[0], 1, 0, frame);
  EXPECT_EQ(route_drops(Drop::NoRoute), 1u);
  EXPECT_EQ(route_counter("icmp_unreachable"), 1u);
}

TEST_F(RouteStageTest, IcmpErrorWithoutAnIngressTxQueueIsFreed) {
  queues_[west_id_] = nullptr;
  Sent sent = run({ipv4_frame({.dst = "192.0.2.1"})});
  EXPECT_TRUE(sent.west.empty());
  EXPECT_EQ(route_drops(Drop::NoRoute), 1u);
  queues_[west_id_] = west_tx_.get();
}

// ---- MTU ----

TEST_F(RouteStageTest, OversizeWithDfAnswersFragmentationNeededWithTheMtu) {
  std::vector<uint8_t> frame = ipv4_frame({.fragment = 0x4000, .payload = 1200});
  Sent sent = run({frame});
  EXPECT_TRUE(sent.east.empty());
  ASSERT_EQ(sent.west.size(), 1u);
  size_t icmp = expect_icmp4_error(sent.west[0], 3, 4, frame);
  EXPECT_EQ(get16(data(sent.west[0]) + icmp + 4), 0) << "unused";
  EXPECT_EQ(get16(data(sent.west[0]) + icmp + 6), kEastMtu) << "next-hop MTU (RFC 1191)";
  EXPECT_EQ(sent.west[0]->pkt_len, kL3 + 576) << "the error is 576 bytes of IP";
  EXPECT_EQ(route_drops(Drop::TooBig), 1u);
  EXPECT_EQ(route_counter("icmp_too_big"), 1u);
}

TEST_F(RouteStageTest, ExactlyTheMtuIsForwardedWhole) {
  Sent sent = run({ipv4_frame({.fragment = 0x4000, .payload = kEastMtu - 28}), ipv6_frame({.payload = kEastMtu - 48})});
  ASSERT_EQ(sent.east.size(), 2u);
  EXPECT_EQ(sent.east[0]->pkt_len, kL3 + kEastMtu);
  EXPECT_EQ(sent.east[1]->pkt_len, kL3 + kEastMtu);
  EXPECT_EQ(route_drops(Drop::TooBig), 0u);
}

TEST_F(RouteStageTest, OversizeWithoutDfIsFragmentedOnTheEgress) {
  std::vector<uint8_t> frame = ipv4_frame({.payload = 1200, .id = 0x7777});
  Sent sent = run({frame, ipv4_frame({.id = 0x8888})});
  EXPECT_TRUE(sent.west.empty());
  // 1208 bytes of IP payload over 976-byte fragments (980 rounded down to 8).
  ASSERT_EQ(sent.east.size(), 3u);
  std::vector<uint8_t> payload;
  const uint16_t offsets[] = {0, 976 / 8};
  const uint16_t lengths[] = {996, 20 + 232};
  for (size_t i = 0; i < 2; ++i) {
    rte_mbuf* m = sent.east[i];
    std::vector<uint8_t> bytes(m->pkt_len);
    const uint8_t* f = static_cast<const uint8_t*>(rte_pktmbuf_read(m, 0, m->pkt_len, bytes.data()));
    EXPECT_EQ(mac_at(f), kGatewayMac);
    EXPECT_EQ(mac_at(f + 6), kEastMac);
    EXPECT_EQ(get16(f + 12), net::kEtherTypeIpv4);
    const uint8_t* ip = f + kL3;
    EXPECT_EQ(get16(ip + 2), lengths[i]);
    EXPECT_EQ(m->pkt_len, kL3 + lengths[i]);
    EXPECT_LE(get16(ip + 2), kEastMtu);
    EXPECT_EQ(get16(ip + 4), 0x7777) << "the datagram's id";
    EXPECT_EQ(get16(ip + 6) & 0x1fff, offsets[i]);
    EXPECT_EQ((get16(ip + 6) & 0x2000) != 0, i == 0) << "more fragments on all but the last";
    EXPECT_EQ(ip[8], 63);
    EXPECT_TRUE(ipv4_checksum_ok(ip)) << "fragment " << i;
    payload.insert(payload.end(), ip + 20, ip + get16(ip + 2));
  }
  EXPECT_TRUE(std::equal(payload.begin(), payload.end(), frame.begin() + kL3 + 20, frame.end()))
      << "the fragments carry the datagram";
  EXPECT_EQ(payload.size(), frame.size() - kL3 - 20);
  EXPECT_EQ(get16(ip_of(sent.east[2]) + 4), 0x8888) << "the next packet leaves after the fragments, in order";
  EXPECT_EQ(counter(output_stage(), "fragmented"), 1u);
  EXPECT_EQ(counter(output_stage(), "fragments"), 2u);
  EXPECT_EQ(route_drops(Drop::TooBig), 0u);
}

TEST_F(RouteStageTest, Ipv6OversizeAnswersPacketTooBig) {
  std::vector<uint8_t> frame = ipv6_frame({.payload = 1300});
  Sent sent = run({frame});
  EXPECT_TRUE(sent.east.empty());
  ASSERT_EQ(sent.west.size(), 1u);
  size_t icmp = expect_icmp6_error(sent.west[0], 2, 0, frame);
  EXPECT_EQ(get16(data(sent.west[0]) + icmp + 4), 0);
  EXPECT_EQ(get16(data(sent.west[0]) + icmp + 6), kEastMtu);
  EXPECT_EQ(sent.west[0]->pkt_len, kL3 + 1280) << "the error fills the minimum MTU";
  EXPECT_EQ(route_drops(Drop::TooBig), 1u);
  EXPECT_EQ(route_counter("icmp_too_big"), 1u);
}

// ---- our own addresses ----

TEST_F(RouteStageTest, AnswersEchoRequestsInPlace) {
  std::vector<uint8_t> request = ipv4_frame({.dst = "10.1.0.1", .proto = net::kIpProtoIcmp, .ttl = 17, .payload = 56});
  rte_mbuf* m = make_mbuf(request);
  Sent sent = run_mbufs({m});
  ASSERT_EQ(sent.west.size(), 1u);
  EXPECT_EQ(sent.west[0], m) << "the request's own mbuf";
  const uint8_t* f = data(m);
  EXPECT_EQ(mac_at(f), kHostMac);
  EXPECT_EQ(mac_at(f + 6), kIngressMac);
  const uint8_t* ip = f + kL3;
  EXPECT_EQ(src4(ip), "10.1.0.1");
  EXPECT_EQ(dst4(ip), "10.1.0.10");
  EXPECT_EQ(ip[8], 64);
  EXPECT_TRUE(ipv4_checksum_ok(ip));
  const uint8_t* icmp = ip + 20;
  EXPECT_EQ(icmp[0], 0) << "echo reply";
  EXPECT_EQ(icmp[1], 0);
  EXPECT_EQ(rte_raw_cksum(icmp, request.size() - kL3 - 20), 0xffff) << "ICMP checksum";
  EXPECT_TRUE(std::equal(icmp + 4, f + request.size(), request.begin() + kL3 + 24)) << "id, sequence, data echoed";
  EXPECT_EQ(route_counter("ipv4_local"), 1u);
  EXPECT_EQ(route_counter("icmp_echo_replies"), 1u);
}

TEST_F(RouteStageTest, AnswersPingsToAnotherPortsAddressOutOfTheIngress) {
  Sent sent = run({ipv4_frame({.dst = "10.2.0.1", .proto = net::kIpProtoIcmp})});
  ASSERT_EQ(sent.west.size(), 1u);
  EXPECT_TRUE(sent.east.empty());
  EXPECT_EQ(src4(ip_of(sent.west[0])), "10.2.0.1");
  EXPECT_EQ(mac_at(data(sent.west[0]) + 6), kIngressMac);
}

TEST_F(RouteStageTest, AnswersIpv6EchoRequestsInPlace) {
  std::vector<uint8_t> request = ipv6_frame({.dst = "fd00:1::1", .proto = net::kIpProtoIcmpv6, .payload = 56});
  Sent sent = run({request});
  ASSERT_EQ(sent.west.size(), 1u);
  const uint8_t* f = data(sent.west[0]);
  EXPECT_EQ(mac_at(f), kHostMac);
  EXPECT_EQ(mac_at(f + 6), kIngressMac);
  const uint8_t* ip = f + kL3;
  EXPECT_EQ(src6(ip), "fd00:1::1");
  EXPECT_EQ(dst6(ip), "fd00:1::10");
  EXPECT_EQ(ip[7], 64);
  EXPECT_EQ(ip[40], 129) << "echo reply";
  EXPECT_TRUE(test::icmp6_checksum_ok(ip));
  EXPECT_EQ(route_counter("ipv6_local"), 1u);
  EXPECT_EQ(route_counter("icmp_echo_replies"), 1u);
}

TEST_F(RouteStageTest, OtherTrafficToUsIsLocalUnhandled) {
  Sent sent = run({ipv4_frame({.dst = "10.1.0.1"}), ipv4_frame({.dst = "10.1.0.1", .proto = net::kIpProtoTcp}),
                   ipv4_frame({.dst = "10.1.0.1", .proto = net::kIpProtoIcmp, .icmp_type = 0}),
                   ipv4_frame({.dst = "10.1.0.1", .proto = net::kIpProtoIcmp, .fragment = 0x2000}),
                   ipv6_frame({.dst = "fd00:1::1"}), ipv4_frame({.dst = "10.1.0.1", .proto = 47})});
  EXPECT_TRUE(sent.west.empty());
  EXPECT_TRUE(sent.east.empty());
  EXPECT_EQ(route_drops(Drop::LocalUnhandled), 6u);
  EXPECT_EQ(route_counter("icmp_echo_replies"), 0u);
}

// ---- the slow path ----

TEST_F(RouteStageTest, PuntsArpWithItsReason) {
  std::vector<uint8_t> arp = Frame().eth(net::kEtherTypeArp).arp().payload(18).build();
  std::vector<uint8_t> broadcast = arp;
  test::set_mac(broadcast, 0, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
  Sent sent = run({arp, broadcast});
  ASSERT_EQ(sent.punted.size(), 2u);
  for (rte_mbuf* m : sent.punted) {
    EXPECT_EQ(meta(m).aux, kPuntArp);
    EXPECT_EQ(meta(m).l3, L3::Arp);
    EXPECT_EQ(m->port, west_id_) << "the slow path learns which port it came in on";
  }
  EXPECT_EQ(route_counter("punted"), 2u);
  EXPECT_EQ(route_stage().counters().drops_total(), 0u);
}

TEST_F(RouteStageTest, PuntsNeighbourDiscoveryWithItsReason) {
  std::vector<uint8_t> ns = ipv6_frame({.dst = "ff02::1:ff00:1", .proto = net::kIpProtoIcmpv6, .hop_limit = 255,
                                        .payload = 24, .icmp_type = 135});
  test::set_mac(ns, 0, {0x33, 0x33, 0xff, 0, 0, 0x01});
  std::vector<uint8_t> na = ipv6_frame({.dst = "fd00:1::1", .proto = net::kIpProtoIcmpv6, .hop_limit = 255,
                                        .payload = 24, .icmp_type = 136});
  std::vector<uint8_t> dad = ipv6_frame({.src = "::", .dst = "ff02::1:ff00:1", .proto = net::kIpProtoIcmpv6,
                                         .hop_limit = 255, .payload = 16, .icmp_type = 135});
  test::set_mac(dad, 0, {0x33, 0x33, 0xff, 0, 0, 0x01});
  Sent sent = run({ns, na, dad});
  ASSERT_EQ(sent.punted.size(), 3u);
  for (rte_mbuf* m : sent.punted) {
    EXPECT_EQ(meta(m).aux, kPuntNd);
    EXPECT_EQ(m->port, west_id_);
  }
}

TEST_F(RouteStageTest, UnknownNeighbourIsPuntedForResolution) {
  Sent sent = run({ipv4_frame({.dst = "10.2.0.99"}), ipv4_frame({.dst = "10.7.1.1"}),
                   ipv6_frame({.dst = "fd00:2::99"})});
  EXPECT_TRUE(sent.east.empty());
  ASSERT_EQ(sent.punted.size(), 3u);
  for (rte_mbuf* m : sent.punted) {
    EXPECT_EQ(meta(m).aux, kPuntResolve);
    EXPECT_EQ(meta(m).out_port, east_id_);
  }
  EXPECT_EQ(ip_of(sent.punted[0])[8], 63) << "TTL already decremented: the slow path only rewrites MACs";
  EXPECT_TRUE(ipv4_checksum_ok(ip_of(sent.punted[0])));
  EXPECT_EQ(ip_of(sent.punted[2])[7], 63);
  EXPECT_EQ(mac_at(data(sent.punted[0])), kIngressMac) << "MACs not rewritten yet";
  EXPECT_EQ(route_counter("neighbour_misses"), 3u) << "10.2.0.7 is incomplete: no usable MAC either";
  EXPECT_EQ(route_counter("punted"), 3u);
}

TEST_F(RouteStageTest, FullPuntRingDrops) {
  rte_ring* small = rte_ring_create("unit_punt_small", 4, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  ASSERT_NE(small, nullptr);
  L3Context ctx = context_;
  ctx.punt_ring = small;
  other_pipeline_ = build_pipeline(config_.ports[0], ids_, &queues_, &ctx);
  std::vector<std::vector<uint8_t>> frames(5, Frame().eth(net::kEtherTypeArp).arp().build());
  Sent sent = run(frames, other_pipeline_.get());
  EXPECT_EQ(rte_ring_count(small), 3u) << "a ring of 4 holds 3";
  EXPECT_EQ(drops(*other_pipeline_->stages()[1], Drop::PuntRingFull), 2u);
  EXPECT_EQ(counter(*other_pipeline_->stages()[1], "punted"), 3u);
  void* m;
  while (rte_ring_dequeue(small, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
  rte_ring_free(small);
}

// ---- ICMP rate limit ----

TEST_F(RouteStageTest, RateZeroSendsNoIcmpErrorsButStillDrops) {
  l3::TokenBucket none(0, 50, rte_get_tsc_hz());
  L3Context ctx = context_;
  ctx.icmp_bucket = &none;
  other_pipeline_ = build_pipeline(config_.ports[0], ids_, &queues_, &ctx);
  Sent sent = run({ipv4_frame({.ttl = 1}), ipv4_frame({.dst = "192.0.2.1"}), ipv6_frame({.hop_limit = 1}),
                   ipv4_frame({.fragment = 0x4000, .payload = 1200}),
                   ipv4_frame({.dst = "10.1.0.1", .proto = net::kIpProtoIcmp})},
                  other_pipeline_.get());
  const Stage& route = *other_pipeline_->stages()[1];
  ASSERT_EQ(sent.west.size(), 1u) << "echo replies are not limited";
  EXPECT_EQ(ip_of(sent.west[0])[20], 0);
  EXPECT_EQ(drops(route, Drop::TtlExceeded), 2u);
  EXPECT_EQ(drops(route, Drop::NoRoute), 1u);
  EXPECT_EQ(drops(route, Drop::TooBig), 1u);
  EXPECT_EQ(counter(route, "icmp_rate_limited"), 4u);
  EXPECT_EQ(counter(route, "icmp_time_exceeded"), 0u);
  EXPECT_EQ(counter(route, "icmp_unreachable"), 0u);
  EXPECT_EQ(counter(route, "icmp_too_big"), 0u);
  EXPECT_EQ(counter(route, "icmp_echo_replies"), 1u);
}

TEST_F(RouteStageTest, BurstLimitsIcmpErrors) {
  l3::TokenBucket two(1, 2, rte_get_tsc_hz());  // one a second, two at once
  L3Context ctx = context_;
  ctx.icmp_bucket = &two;
  other_pipeline_ = build_pipeline(config_.ports[0], ids_, &queues_, &ctx);
  std::vector<std::vector<uint8_t>> frames(5, ipv4_frame({.ttl = 1}));
  Sent sent = run(frames, other_pipeline_.get());
  const Stage& route = *other_pipeline_->stages()[1];
  EXPECT_EQ(sent.west.size(), 2u);
  EXPECT_EQ(counter(route, "icmp_time_exceeded"), 2u);
  EXPECT_EQ(counter(route, "icmp_rate_limited"), 3u);
  EXPECT_EQ(drops(route, Drop::TtlExceeded), 5u);
}

TEST_F(RouteStageTest, NoIcmpMbufIsCounted) {
  std::vector<rte_mbuf*> hoard;
  rte_mbuf* m = make_mbuf(ipv4_frame({.ttl = 1}));
  while (rte_mbuf* extra = rte_pktmbuf_alloc(pool_)) hoard.push_back(extra);
  Sent sent = run_mbufs({m});
  EXPECT_TRUE(sent.west.empty());
  EXPECT_EQ(route_counter("icmp_no_mbuf"), 1u);
  EXPECT_EQ(route_drops(Drop::TtlExceeded), 1u);
  test::free_all(hoard);
}

// ---- publication ----

TEST_F(RouteStageTest, SeesANewlyPublishedTable) {
  Sent before = run({ipv4_frame({.dst = "192.0.2.1"})});
  EXPECT_EQ(route_drops(Drop::NoRoute), 1u);
  std::string text = kConfig;
  text.insert(text.find(R"({"prefix": "10.9.0.0/16")"), R"({"prefix": "192.0.2.0/24", "via": "10.2.0.2"}, )");
  config::ParseResult parsed = config::parse_config_text(text, "route_stage.json");
  ASSERT_TRUE(parsed.ok()) << ::testing::PrintToString(parsed.errors);
  l3::RouteTable::PortMacs macs{};
  macs[west_id_] = ether(kIngressMac);
  macs[east_id_] = ether(kEastMac);
  std::string error;
  auto table = l3::RouteTable::build(*parsed.config, ids_, macs, error);
  ASSERT_NE(table, nullptr) << error;
  routes_->publish(std::move(table));  // no reader online: the old table goes at once
  Sent after = run({ipv4_frame({.dst = "192.0.2.1"})});
  ASSERT_EQ(after.east.size(), 1u);
  EXPECT_EQ(mac_at(data(after.east[0])), kGatewayMac);
}

// The fast path with the gateways pinned as the router pins them: pinned gateways,
// connected hosts (runs of equal neighbour keys) and an ECMP group in one burst, then a
// burst where one packet waits on resolution, which must leave every other one as the
// general path would.
TEST_F(RouteStageTest, MixedBurstThroughPinnedGateways) {
  l3::RouteTable::PortMacs macs{};
  macs[west_id_] = ether(kIngressMac);
  macs[east_id_] = ether(kEastMac);
  auto pin = [&](uint16_t port, const net::IpAddr& gateway) -> int32_t {
    auto* e = neighbours_->find(l3::NeighbourKey::of(port, gateway));
    return e ? e->position : -1;
  };
  std::string error;
  auto table = l3::RouteTable::build(config_, ids_, macs, error, pin);
  ASSERT_NE(table, nullptr) << error;
  routes_->publish(std::move(table));

  struct Case {
    const char* dst;
    Mac mac;
  };
  const std::vector<Case> cases = {{"10.9.1.1", kGatewayMac},   {"10.2.0.5", kEastHostMac}, {"10.2.0.5", kEastHostMac},
                                   {"10.9.2.2", kGatewayMac},   {"10.2.0.3", kGateway3Mac}, {"10.2.0.5", kEastHostMac},
                                   {"10.9.3.3", kGatewayMac},   {"10.2.0.2", kGatewayMac}};
  std::vector<std::vector<uint8_t>> frames;
  for (const auto& c : cases) frames.push_back(ipv4_frame({.dst = c.dst, .ttl = 9}));
  for (uint16_t port = 1000; port < 1008; ++port)
    frames.push_back(ipv4_frame({.dst = "10.8.1.1", .ttl = 9, .src_port = port}));
  Sent sent = run(frames);
  ASSERT_EQ(sent.east.size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    const uint8_t* f = data(sent.east[i]);
    if (i < cases.size()) EXPECT_EQ(mac_at(f), cases[i].mac) << cases[i].dst;
    else EXPECT_TRUE(mac_at(f) == kGatewayMac || mac_at(f) == kGateway3Mac) << "ECMP to one of the two";
    EXPECT_EQ(mac_at(f + 6), kEastMac);
    EXPECT_EQ(f[kL3 + 8], 8);
    EXPECT_TRUE(ipv4_checksum_ok(f + kL3));
    EXPECT_EQ(meta(sent.east[i]).out_port, east_id_);
  }
  EXPECT_EQ(route_counter("ipv4_forwarded"), frames.size());

  // 10.7.0.0/16's gateway is pinned but has no MAC yet: that packet is punted, and the
  // others go out exactly as before.
  Sent mixed = run({ipv4_frame({.dst = "10.9.1.1", .ttl = 9}), ipv4_frame({.dst = "10.7.1.1", .ttl = 9}),
                    ipv4_frame({.dst = "10.2.0.5", .ttl = 9})});
  ASSERT_EQ(mixed.east.size(), 2u);
  ASSERT_EQ(mixed.punted.size(), 1u);
  EXPECT_EQ(mac_at(data(mixed.east[0])), kGatewayMac);
  EXPECT_EQ(mac_at(data(mixed.east[1])), kEastHostMac);
  for (rte_mbuf* m : mixed.east) {
    EXPECT_EQ(ip_of(m)[8], 8) << "decremented once";
    EXPECT_TRUE(ipv4_checksum_ok(ip_of(m)));
  }
  EXPECT_EQ(meta(mixed.punted[0]).aux, kPuntResolve);
}

}  // namespace
}  // namespace sluice::pipeline
