// lib/router: the control side of the router on ring-backed ports. Frames from the
// wire go through the real route stage (which punts them to the router's punt ring
// with their reason), the router polls, and what it sends is read off its inject ring:
// ARP and neighbour discovery answers, resolution with queued packets, the neighbour
// timers (driven by poll_at with a test clock), and drain() at shutdown.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_ip.h>

#include "config/config.h"
#include "l3_fixture.h"
#include "l3_support.h"
#include "pipeline/output.h"
#include "pipeline/packet_meta.h"
#include "pipeline/parse.h"
#include "pipeline/route.h"
#include "router/neighbour_packets.h"
#include "router/router.h"
#include "test_support.h"

namespace sluice::router {
namespace {

using pipeline::meta;
using test::data;
using test::Frame;
using test::get16;
using test::ipv4_frame;
using test::ipv6_frame;
using test::kHostMac;
using test::kIngressMac;
using test::kL3;
using test::Mac;
using test::mac_at;

constexpr Mac kWestMac = kIngressMac;
constexpr Mac kEastMac = {0x02, 0, 0, 0, 0x0e, 0x01};
constexpr Mac kNeighbourMac = {0x02, 0, 0, 0, 0x0e, 0x99};  // 10.2.0.99 / fd00:2::99
constexpr Mac kStaticMac = {0x02, 0, 0, 0, 0x0e, 0x05};     // 10.2.0.5
constexpr Mac kBroadcastMac = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr Mac kZeroMac = {};
constexpr uint64_t kStart = 1'000'000;  // the test clock, in ms

const std::string kNeighbourSettings = R"("neighbour": {"queue_packets": 2, "retransmit_ms": 1000, "probes": 3,
    "reachable_ms": 30000, "stale_ms": 60000})";

// The route's gateway is the static neighbour, so no resolution runs unless a test asks.
const std::string kConfig = test::two_port_config(
    test::routed_ports(), R"("routes": [{"prefix": "10.9.0.0/16", "via": "10.2.0.5"}],
  "neighbours": [{"address": "10.2.0.5", "mac": "02:00:00:00:0e:05"}], )" + kNeighbourSettings);

// A gateway nobody configured a MAC for: the router resolves it by itself.
const std::string kGatewayConfig = test::two_port_config(
    test::routed_ports(), R"("routes": [{"prefix": "10.9.0.0/16", "via": "10.2.0.99"}], )" + kNeighbourSettings);

// Owns mbufs a test took; frees them when it goes.
struct Taken {
  std::vector<rte_mbuf*> pkts;
  Taken() = default;
  Taken(const Taken&) = delete;
  Taken& operator=(const Taken&) = delete;
  Taken(Taken&&) = default;
  ~Taken() { test::free_all(pkts); }
  size_t size() const { return pkts.size(); }
  rte_mbuf* operator[](size_t i) const { return pkts.at(i); }
};

std::vector<uint8_t> arp_frame(uint16_t op, const Mac& sender_mac, const char* sender_ip, const Mac& target_mac,
                               const char* target_ip, const Mac& eth_dst) {
  Frame f;
  f.eth(net::kEtherTypeArp).u16(1).u16(net::kEtherTypeIpv4).u8(6).u8(4).u16(op);
  f.zeros(6);
  for (uint8_t b : test::addr4(sender_ip)) f.u8(b);
  f.zeros(6);
  for (uint8_t b : test::addr4(target_ip)) f.u8(b);
  f.zeros(60 - f.size());  // padded as on the wire
  std::vector<uint8_t> b = f.build();
  test::set_mac(b, 0, eth_dst);
  test::set_mac(b, 6, sender_mac);
  test::set_mac(b, kL3 + 8, sender_mac);
  test::set_mac(b, kL3 + 18, target_mac);
  return b;
}

// A neighbour solicitation (135) or advertisement (136), valid unless a test breaks it.
struct Nd {
  uint8_t type = 135;
  const char* src = "fd00:1::10";
  const char* dst = "ff02::1:ff00:1";
  const char* target = "fd00:1::1";
  uint8_t flags = 0;        // NA: 0x80 R, 0x40 S, 0x20 O
  uint8_t option = 1;       // 1 SLLA, 2 TLLA, 0 none
  uint8_t option_len = 1;   // in 8-octet units
  Mac option_mac = kHostMac;
  Mac eth_dst = {0x33, 0x33, 0xff, 0, 0, 0x01};
  Mac eth_src = kHostMac;
  uint8_t hop_limit = 255;
  uint8_t code = 0;
};

std::vector<uint8_t> nd_frame(const Nd& nd) {
  Frame f;
  f.eth(net::kEtherTypeIpv6).ipv6(net::kIpProtoIcmpv6);
  const size_t ip = f.ip_offset();
  const size_t l4 = f.size();
  f.u8(nd.type).u8(nd.code).u16(0).u8(nd.flags).zeros(3);
  for (uint8_t b : test::addr6(nd.target)) f.u8(b);
  if (nd.option) {
    f.u8(nd.option).u8(nd.option_len);
    for (uint8_t b : nd.option_mac) f.u8(b);
  }
  std::vector<uint8_t> b = f.build();
  b[ip + 7] = nd.hop_limit;
  auto s = test::addr6(nd.src), d = test::addr6(nd.dst);
  std::memcpy(&b[ip + 8], s.data(), 16);
  std::memcpy(&b[ip + 24], d.data(), 16);
  test::set_mac(b, 0, nd.eth_dst);
  test::set_mac(b, 6, nd.eth_src);
  uint32_t sum = test::pseudo6(&b[ip], uint32_t(b.size() - l4), net::kIpProtoIcmpv6);
  test::put16(b, l4 + 2, uint16_t(~test::sum16(&b[l4], b.size() - l4, sum)));
  return b;
}

// A frame from a host behind east, to east's MAC.
std::vector<uint8_t> to_east(std::vector<uint8_t> frame) {
  test::set_mac(frame, 0, kEastMac);
  test::set_mac(frame, 6, {0x02, 0, 0, 0, 0x0e, 0x50});
  return frame;
}

class RouterTest : public test::TwoPortTest {
 protected:
  virtual const std::string& config_text() const { return kConfig; }
  void SetUp() override {
    test::TwoPortTest::SetUp();
    if (HasFatalFailure()) return;
    load_config(config_text());
    if (HasFatalFailure()) return;
    west_mac_ = kWestMac;
    east_mac_ = kEastMac;
    router_ = std::make_unique<Router>(config_, pool_, 1);
    std::string error;
    ASSERT_TRUE(router_->start(ids_, port_macs(), error)) << error;
    queues_.fill(nullptr);  // ICMP errors, if any, are freed
    context_ = router_->context_for(0);
    ASSERT_NE(context_.punt_ring, nullptr);
    ASSERT_NE(router_->inject_ring(0), nullptr);
    stages_[west_id_] = std::make_unique<pipeline::RouteStage>(west_id_, context_, &queues_);
    stages_[east_id_] = std::make_unique<pipeline::RouteStage>(east_id_, context_, &queues_);
  }

  void TearDown() override {
    stages_.clear();
    router_.reset();  // drains what it holds
    test::TwoPortTest::TearDown();
  }

  // Frames arriving on `port`: parsed, then through that port's route stage, which
  // punts what the slow path handles. Returns what the fast path forwarded.
  Taken arrive(uint16_t port, const std::vector<std::vector<uint8_t>>& frames) {
    pipeline::Burst burst;
    pipeline::ParseCounts counts;
    for (const auto& f : frames) {
      rte_mbuf* m = make_mbuf(f);
      EXPECT_EQ(pipeline::ParseStage::parse_packet(m, counts), std::nullopt);
      burst.pkts[burst.count++] = m;
    }
    stages_.at(port)->process(burst);
    burst.free_discards();
    Taken forwarded;
    forwarded.pkts.assign(burst.pkts, burst.pkts + burst.count);
    return forwarded;
  }
  // What the router handed to worker 0 for TX.
  Taken injected() {
    Taken out;
    rte_mbuf* pkts[64];
    unsigned n;
    while ((n = rte_ring_dequeue_burst(router_->inject_ring(0), reinterpret_cast<void**>(pkts), 64, nullptr)) > 0)
      out.pkts.insert(out.pkts.end(), pkts, pkts + n);
    return out;
  }

  uint64_t counter(std::string_view name) const {
    pipeline::NamedCounters counters;
    router_->read_counters(counters);
    for (const auto& [n, v] : counters)
      if (n == name) return v;
    ADD_FAILURE() << "no router counter " << name;
    return 0;
  }
  uint64_t drops(Drop reason) const { return router_->counters().drops[static_cast<size_t>(reason)].get(); }

  // The /neighbours entry for `address`, or null.
  nlohmann::json neighbour(const std::string& address) const {
    const nlohmann::json listing = router_->neighbours_json();
    for (const auto& n : listing["neighbours"])
      if (n["address"] == address) return n;
    return nullptr;
  }

  // Checks an ARP frame the router sent; returns nothing, fails the test on a mismatch.
  void expect_arp(const rte_mbuf* m, uint16_t out_port, uint16_t op, const Mac& eth_dst, const Mac& sender_mac,
                  const char* sender_ip, const Mac& target_mac, const char* target_ip) {
    EXPECT_EQ(meta(m).out_port, out_port);
    EXPECT_EQ(m->pkt_len, 60u) << "padded to the minimum frame";
    const uint8_t* f = data(m);
    EXPECT_EQ(mac_at(f), eth_dst);
    EXPECT_EQ(mac_at(f + 6), sender_mac);
    EXPECT_EQ(get16(f + 12), net::kEtherTypeArp);
    const uint8_t* arp = f + kL3;
    EXPECT_EQ(get16(arp), 1);
    EXPECT_EQ(get16(arp + 2), net::kEtherTypeIpv4);
    EXPECT_EQ(arp[4], 6);
    EXPECT_EQ(arp[5], 4);
    EXPECT_EQ(get16(arp + 6), op);
    EXPECT_EQ(mac_at(arp + 8), sender_mac);
    EXPECT_EQ(test::ip4_text(arp + 14), sender_ip);
    EXPECT_EQ(mac_at(arp + 18), target_mac);
    EXPECT_EQ(test::ip4_text(arp + 24), target_ip);
  }

  // Checks an ND message the router sent; returns a pointer to its ICMPv6 header.
  const uint8_t* expect_nd(const rte_mbuf* m, uint16_t out_port, uint8_t type, const Mac& eth_dst, const Mac& eth_src,
                           const char* src, const char* dst, const char* target) {
    EXPECT_EQ(meta(m).out_port, out_port);
    const uint8_t* f = data(m);
    EXPECT_EQ(mac_at(f), eth_dst);
    EXPECT_EQ(mac_at(f + 6), eth_src);
    EXPECT_EQ(get16(f + 12), net::kEtherTypeIpv6);
    const uint8_t* ip = f + kL3;
    EXPECT_EQ(ip[6], net::kIpProtoIcmpv6);
    EXPECT_EQ(ip[7], 255) << "ND is link-local: hop limit 255";
    EXPECT_EQ(test::ip6_text(ip + 8), src);
    EXPECT_EQ(test::ip6_text(ip + 24), dst);
    EXPECT_EQ(get16(ip + 4), 32) << "24 bytes of message and one link-layer address option";
    EXPECT_EQ(m->pkt_len, kL3 + 40 + 32);
    EXPECT_TRUE(test::icmp6_checksum_ok(ip));
    const uint8_t* nd = ip + 40;
    EXPECT_EQ(nd[0], type);
    EXPECT_EQ(nd[1], 0);
    EXPECT_EQ(test::ip6_text(nd + 8), target);
    EXPECT_EQ(nd[24], type == 135 ? 1 : 2) << "source or target link-layer address";
    EXPECT_EQ(nd[25], 1);
    EXPECT_EQ(mac_at(nd + 26), eth_src);
    EXPECT_TRUE(parse_nd(m, kL3, kL3 + 40).has_value()) << "our own validation accepts it";
    return nd;
  }

  // A packet from west's host to `dst`, through the fast path: punted for resolution
  // when the neighbour is unknown.
  void send_to(const char* dst, uint16_t id = 0x1234, size_t payload = 18) {
    Taken forwarded = arrive(west_id_, {ipv4_frame({.dst = dst, .payload = payload, .id = id})});
    EXPECT_EQ(forwarded.size(), 0u) << dst << " was expected to need resolution";
  }
  void arp_reply_from_neighbour(const Mac& mac = kNeighbourMac) {
    arrive(east_id_, {arp_frame(kArpReply, mac, "10.2.0.99", kEastMac, "10.2.0.1", kEastMac)});
  }

  std::unique_ptr<Router> router_;
  pipeline::L3Context context_;
  std::map<uint16_t, std::unique_ptr<pipeline::RouteStage>> stages_;
};

// ---- ARP ----

TEST_F(RouterTest, AnswersArpRequestsForItsAddressAndLearnsTheSender) {
  arrive(west_id_, {arp_frame(kArpRequest, kHostMac, "10.1.0.10", kZeroMac, "10.1.0.1", kBroadcastMac)});
  EXPECT_EQ(rte_ring_count(context_.punt_ring), 1u) << "the route stage punted it";
  router_->poll_at(kStart);
  EXPECT_EQ(rte_ring_count(context_.punt_ring), 0u);
  Taken sent = injected();
  ASSERT_EQ(sent.size(), 1u);
  expect_arp(sent[0], west_id_, kArpReply, kHostMac, kWestMac, "10.1.0.1", kHostMac, "10.1.0.10");

  nlohmann::json n = neighbour("10.1.0.10");
  ASSERT_FALSE(n.is_null()) << router_->neighbours_json().dump();
  EXPECT_EQ(n["port"], "west");
  EXPECT_EQ(n["state"], "stale") << "a request only says the sender was alive";
  EXPECT_EQ(n["mac"], "02:00:00:00:00:01");
  EXPECT_EQ(n["queued"], 0);
  EXPECT_EQ(counter("arp_requests_received"), 1u);
  EXPECT_EQ(counter("arp_replies_sent"), 1u);
  EXPECT_EQ(router_->counters().drops_total(), 0u);
}

TEST_F(RouterTest, AnswersForAnotherPortsAddressOnlyOnThatPort) {
  // 10.2.0.1 belongs to east: asked on west, nobody answers.
  arrive(west_id_, {arp_frame(kArpRequest, kHostMac, "10.1.0.10", kZeroMac, "10.2.0.1", kBroadcastMac)});
  router_->poll_at(kStart);
  EXPECT_EQ(injected().size(), 0u);
}

TEST_F(RouterTest, ArpForSomeoneElseIsNeitherAnsweredNorLearnt) {
  arrive(west_id_, {arp_frame(kArpRequest, kHostMac, "10.1.0.10", kZeroMac, "10.1.0.99", kBroadcastMac)});
  router_->poll_at(kStart);
  EXPECT_EQ(injected().size(), 0u);
  EXPECT_TRUE(neighbour("10.1.0.10").is_null()) << "only an entry we have is refreshed";
  EXPECT_EQ(counter("arp_requests_received"), 1u);
}

TEST_F(RouterTest, ArpFromOutsideTheSubnetIsAnsweredButNotLearnt) {
  arrive(west_id_, {arp_frame(kArpRequest, kHostMac, "10.5.0.9", kZeroMac, "10.1.0.1", kBroadcastMac)});
  router_->poll_at(kStart);
  Taken sent = injected();
  ASSERT_EQ(sent.size(), 1u);
  expect_arp(sent[0], west_id_, kArpReply, kHostMac, kWestMac, "10.1.0.1", kHostMac, "10.5.0.9");
  EXPECT_TRUE(neighbour("10.5.0.9").is_null());
}

TEST_F(RouterTest, MalformedArpIsDropped) {
  std::vector<uint8_t> bad_op = arp_frame(3, kHostMac, "10.1.0.10", kZeroMac, "10.1.0.1", kBroadcastMac);
  std::vector<uint8_t> group_sender =
      arp_frame(kArpRequest, {0x01, 0, 0x5e, 0, 0, 1}, "10.1.0.10", kZeroMac, "10.1.0.1", kBroadcastMac);
  arrive(west_id_, {bad_op, group_sender});
  router_->poll_at(kStart);
  EXPECT_EQ(injected().size(), 0u);
  EXPECT_EQ(drops(Drop::BadNeighbourPacket), 2u);
  EXPECT_TRUE(neighbour("10.1.0.10").is_null());
}

// ---- resolution ----

TEST_F(RouterTest, UnknownNeighbourIsResolvedAndItsPacketFlushed) {
  send_to("10.2.0.99", 0x4242);
  router_->poll_at(kStart);
  Taken request = injected();
  ASSERT_EQ(request.size(), 1u);
  expect_arp(request[0], east_id_, kArpRequest, kBroadcastMac, kEastMac, "10.2.0.1", kZeroMac, "10.2.0.99");
  nlohmann::json n = neighbour("10.2.0.99");
  ASSERT_FALSE(n.is_null());
  EXPECT_EQ(n["state"], "incomplete");
  EXPECT_TRUE(n["mac"].is_null());
  EXPECT_EQ(n["queued"], 1);
  EXPECT_EQ(counter("arp_requests_sent"), 1u);
  EXPECT_EQ(counter("packets_queued"), 1u);

  arp_reply_from_neighbour();
  router_->poll_at(kStart + 10);
  Taken flushed = injected();
  ASSERT_EQ(flushed.size(), 1u);
  const uint8_t* f = data(flushed[0]);
  EXPECT_EQ(meta(flushed[0]).out_port, east_id_);
  EXPECT_EQ(mac_at(f), kNeighbourMac);
  EXPECT_EQ(mac_at(f + 6), kEastMac);
  EXPECT_EQ(get16(f + kL3 + 4), 0x4242);
  EXPECT_EQ(f[kL3 + 8], 63) << "decremented once, by the fast path";
  EXPECT_EQ(rte_raw_cksum(f + kL3, 20), 0xffff);
  n = neighbour("10.2.0.99");
  EXPECT_EQ(n["state"], "reachable");
  EXPECT_EQ(n["mac"], "02:00:00:00:0e:99");
  EXPECT_EQ(n["queued"], 0);
  EXPECT_EQ(counter("arp_replies_received"), 1u);
  EXPECT_EQ(counter("packets_resolved"), 1u);

  // Now the fast path finds the MAC itself; the route's (static) gateway too.
  Taken forwarded = arrive(west_id_, {ipv4_frame({.dst = "10.2.0.99"}), ipv4_frame({.dst = "10.9.3.3"})});
  ASSERT_EQ(forwarded.size(), 2u);
  EXPECT_EQ(mac_at(data(forwarded[0])), kNeighbourMac);
  EXPECT_EQ(mac_at(data(forwarded[1])), kStaticMac);
  EXPECT_EQ(rte_ring_count(context_.punt_ring), 0u);
}

TEST_F(RouterTest, Ipv6NeighbourIsSolicitedAndItsPacketFlushed) {
  Taken forwarded = arrive(west_id_, {ipv6_frame({.dst = "fd00:2::99"})});
  ASSERT_EQ(forwarded.size(), 0u);
  router_->poll_at(kStart);
  Taken ns = injected();
  ASSERT_EQ(ns.size(), 1u);
  const uint8_t* nd = expect_nd(ns[0], east_id_, 135, {0x33, 0x33, 0xff, 0, 0, 0x99}, kEastMac, "fd00:2::1",
                                "ff02::1:ff00:99", "fd00:2::99");
  EXPECT_EQ(nd[4], 0) << "no flags in a solicitation";
  EXPECT_EQ(neighbour("fd00:2::99")["state"], "incomplete");
  EXPECT_EQ(counter("nd_solicitations_sent"), 1u);

  arrive(east_id_, {nd_frame({.type = 136, .src = "fd00:2::99", .dst = "fd00:2::1", .target = "fd00:2::99",
                              .flags = 0xe0, .option = 2, .option_mac = kNeighbourMac, .eth_dst = kEastMac,
                              .eth_src = kNeighbourMac})});
  router_->poll_at(kStart + 10);
  Taken flushed = injected();
  ASSERT_EQ(flushed.size(), 1u);
  EXPECT_EQ(mac_at(data(flushed[0])), kNeighbourMac);
  EXPECT_EQ(mac_at(data(flushed[0]) + 6), kEastMac);
  EXPECT_EQ(data(flushed[0])[kL3 + 7], 63);
  EXPECT_EQ(neighbour("fd00:2::99")["state"], "reachable");
  EXPECT_EQ(counter("nd_advertisements_received"), 1u);
}

TEST_F(RouterTest, AdvertisementOfAnotherMacWithoutOverrideOnlyMakesTheEntryStale) {
  arrive(west_id_, {ipv6_frame({.dst = "fd00:2::99"})});
  router_->poll_at(kStart);
  injected();
  auto advert = [&](uint8_t flags, const Mac& mac) {
    arrive(east_id_, {nd_frame({.type = 136, .src = "fd00:2::99", .dst = "fd00:2::1", .target = "fd00:2::99",
                                .flags = flags, .option = 2, .option_mac = mac, .eth_dst = kEastMac, .eth_src = mac})});
    router_->poll_at(kStart + 10);
  };
  advert(0xe0, kNeighbourMac);
  injected();
  ASSERT_EQ(neighbour("fd00:2::99")["state"], "reachable");
  const Mac other = {0x02, 0, 0, 0, 0x0e, 0x77};
  advert(0xc0, other);  // router + solicited, no override (RFC 4861 7.2.5)
  nlohmann::json n = neighbour("fd00:2::99");
  EXPECT_EQ(n["state"], "stale");
  EXPECT_EQ(n["mac"], "02:00:00:00:0e:99") << "kept";
  advert(0xe0, other);  // with override: replaced
  n = neighbour("fd00:2::99");
  EXPECT_EQ(n["state"], "reachable");
  EXPECT_EQ(n["mac"], "02:00:00:00:0e:77");
}

TEST_F(RouterTest, FullQueueDropsTheOldest) {
  // queue_packets is 2: of four packets the two newest wait.
  Taken forwarded = arrive(west_id_, {ipv4_frame({.dst = "10.2.0.99", .id = 1}), ipv4_frame({.dst = "10.2.0.99", .id = 2}),
                                      ipv4_frame({.dst = "10.2.0.99", .id = 3}), ipv4_frame({.dst = "10.2.0.99", .id = 4})});
  ASSERT_EQ(forwarded.size(), 0u);
  router_->poll_at(kStart);
  EXPECT_EQ(injected().size(), 1u) << "one request for all four";
  EXPECT_EQ(drops(Drop::NoNeighbour), 2u);
  EXPECT_EQ(neighbour("10.2.0.99")["queued"], 2);
  EXPECT_EQ(counter("packets_queued"), 4u);
  EXPECT_EQ(in_use(), 2u) << "the dropped ones are back in the pool";

  arp_reply_from_neighbour();
  router_->poll_at(kStart + 10);
  Taken flushed = injected();
  ASSERT_EQ(flushed.size(), 2u);
  EXPECT_EQ(get16(data(flushed[0]) + kL3 + 4), 3) << "in arrival order";
  EXPECT_EQ(get16(data(flushed[1]) + kL3 + 4), 4);
}

TEST_F(RouterTest, ResolvedPacketOverTheMtuIsFragmented) {
  // East's MTU is 1000; without DF the output stage would fragment this, but a packet
  // that waited for its neighbour leaves through the inject ring.
  send_to("10.2.0.99", 0x5151, 1200);
  router_->poll_at(kStart);
  Taken request = injected();
  arp_reply_from_neighbour();
  router_->poll_at(kStart + 10);
  Taken flushed = injected();
  ASSERT_EQ(flushed.size(), 2u);
  size_t payload = 0;
  for (size_t i = 0; i < flushed.size(); ++i) {
    rte_mbuf* m = flushed[i];
    std::vector<uint8_t> bytes(m->pkt_len);
    const uint8_t* f = static_cast<const uint8_t*>(rte_pktmbuf_read(m, 0, m->pkt_len, bytes.data()));
    EXPECT_EQ(meta(m).out_port, east_id_);
    EXPECT_EQ(mac_at(f), kNeighbourMac);
    EXPECT_EQ(mac_at(f + 6), kEastMac);
    const uint8_t* ip = f + kL3;
    EXPECT_LE(get16(ip + 2), 1000);
    EXPECT_EQ(get16(ip + 4), 0x5151);
    EXPECT_EQ(ip[8], 63);
    EXPECT_EQ(rte_raw_cksum(ip, 20), 0xffff);
    payload += get16(ip + 2) - 20u;
  }
  EXPECT_EQ(payload, 1208u);
  EXPECT_EQ(get16(data(flushed[0]) + kL3 + 6), 0x2000);
  EXPECT_EQ(get16(data(flushed[1]) + kL3 + 6), 976 / 8);
}

TEST_F(RouterTest, ResolutionGivesUpAfterItsProbes) {
  send_to("10.2.0.99");
  router_->poll_at(kStart);
  EXPECT_EQ(injected().size(), 1u) << "probe 1";
  router_->poll_at(kStart + 900);
  EXPECT_EQ(injected().size(), 0u) << "retransmit_ms not over";
  router_->poll_at(kStart + 1000);
  {
    Taken second = injected();
    ASSERT_EQ(second.size(), 1u) << "probe 2";
    expect_arp(second[0], east_id_, kArpRequest, kBroadcastMac, kEastMac, "10.2.0.1", kZeroMac, "10.2.0.99");
  }
  router_->poll_at(kStart + 2000);
  EXPECT_EQ(injected().size(), 1u) << "probe 3";
  EXPECT_EQ(neighbour("10.2.0.99")["queued"], 1);
  router_->poll_at(kStart + 3000);
  EXPECT_EQ(injected().size(), 0u) << "no fourth";
  EXPECT_TRUE(neighbour("10.2.0.99").is_null()) << "the entry is gone";
  EXPECT_EQ(drops(Drop::NoNeighbour), 1u) << "with its queued packet";
  EXPECT_EQ(counter("resolution_failures"), 1u);
  EXPECT_EQ(counter("arp_requests_sent"), 3u);
  EXPECT_EQ(in_use(), 0u);
}

TEST_F(RouterTest, ZeroQueueDropsButStillResolves) {
  config_.neighbour.queue_packets = 0;  // the router reads its config live
  send_to("10.2.0.99");
  router_->poll_at(kStart);
  EXPECT_EQ(injected().size(), 1u);
  EXPECT_EQ(drops(Drop::NoNeighbour), 1u);
  EXPECT_EQ(neighbour("10.2.0.99")["state"], "incomplete");
}

// ---- neighbour discovery ----

TEST_F(RouterTest, AnswersSolicitationsForItsAddress) {
  arrive(west_id_, {nd_frame({})});
  router_->poll_at(kStart);
  Taken sent = injected();
  ASSERT_EQ(sent.size(), 1u);
  const uint8_t* nd = expect_nd(sent[0], west_id_, 136, kHostMac, kWestMac, "fd00:1::1", "fd00:1::10", "fd00:1::1");
  EXPECT_EQ(nd[4], 0xe0) << "router, solicited, override";
  nlohmann::json n = neighbour("fd00:1::10");
  ASSERT_FALSE(n.is_null());
  EXPECT_EQ(n["state"], "stale");
  EXPECT_EQ(n["mac"], "02:00:00:00:00:01");
  EXPECT_EQ(counter("nd_solicitations_received"), 1u);
  EXPECT_EQ(counter("nd_advertisements_sent"), 1u);
}

TEST_F(RouterTest, AnswersAUnicastSolicitationWithoutALinkLayerAddress) {
  arrive(west_id_, {nd_frame({.dst = "fd00:1::1", .option = 0, .eth_dst = kWestMac})});
  router_->poll_at(kStart);
  Taken sent = injected();
  ASSERT_EQ(sent.size(), 1u);
  expect_nd(sent[0], west_id_, 136, kHostMac, kWestMac, "fd00:1::1", "fd00:1::10", "fd00:1::1");
  EXPECT_TRUE(neighbour("fd00:1::10").is_null()) << "nothing to learn without its link-layer address";
}

TEST_F(RouterTest, AnswersDuplicateAddressDetectionToAllNodes) {
  arrive(west_id_, {nd_frame({.src = "::", .option = 0})});
  router_->poll_at(kStart);
  Taken sent = injected();
  ASSERT_EQ(sent.size(), 1u);
  const uint8_t* nd =
      expect_nd(sent[0], west_id_, 136, {0x33, 0x33, 0, 0, 0, 1}, kWestMac, "fd00:1::1", "ff02::1", "fd00:1::1");
  EXPECT_EQ(nd[4], 0xa0) << "router, override, not solicited";
  EXPECT_EQ(router_->neighbours_json()["count"], 1) << "only the static neighbour";
}

TEST_F(RouterTest, SolicitationForAnotherAddressIsIgnored) {
  arrive(west_id_, {nd_frame({.target = "fd00:1::77"})});
  router_->poll_at(kStart);
  EXPECT_EQ(injected().size(), 0u);
  EXPECT_EQ(counter("nd_solicitations_received"), 1u);
}

TEST_F(RouterTest, MalformedNeighbourDiscoveryIsDropped) {
  std::vector<uint8_t> bad_checksum = nd_frame({});
  bad_checksum[kL3 + 40 + 2] ^= 0x01;
  arrive(west_id_, {nd_frame({.hop_limit = 254}), bad_checksum, nd_frame({.code = 1}),
                    nd_frame({.option_len = 0}), nd_frame({.option_len = 2}), nd_frame({.src = "::"}),
                    nd_frame({.target = "ff02::1"})});
  EXPECT_EQ(rte_ring_count(context_.punt_ring), 7u);
  router_->poll_at(kStart);
  EXPECT_EQ(injected().size(), 0u);
  EXPECT_EQ(drops(Drop::BadNeighbourPacket), 7u);
  EXPECT_TRUE(neighbour("fd00:1::10").is_null());
  EXPECT_EQ(counter("nd_solicitations_received"), 0u);
}

TEST_F(RouterTest, UnsolicitedAdvertisementDoesNotCreateAnEntry) {
  arrive(east_id_, {nd_frame({.type = 136, .src = "fd00:2::99", .dst = "ff02::1", .target = "fd00:2::99",
                              .flags = 0x20, .option = 2, .option_mac = kNeighbourMac,
                              .eth_dst = {0x33, 0x33, 0, 0, 0, 1}, .eth_src = kNeighbourMac})});
  router_->poll_at(kStart);
  EXPECT_TRUE(neighbour("fd00:2::99").is_null());
  EXPECT_EQ(counter("nd_advertisements_received"), 1u);
}

// ---- static neighbours and aging ----

TEST_F(RouterTest, StaticNeighboursAreUsedAndNeverReplacedOrAged) {
  nlohmann::json n = neighbour("10.2.0.5");
  ASSERT_FALSE(n.is_null());
  EXPECT_EQ(n["state"], "static");
  EXPECT_EQ(n["port"], "east");
  Taken forwarded = arrive(west_id_, {ipv4_frame({.dst = "10.2.0.5"})});
  ASSERT_EQ(forwarded.size(), 1u);
  EXPECT_EQ(mac_at(data(forwarded[0])), kStaticMac);

  arrive(east_id_, {arp_frame(kArpReply, kNeighbourMac, "10.2.0.5", kEastMac, "10.2.0.1", kEastMac)});
  router_->poll_at(kStart);
  router_->poll_at(kStart + 100'000'000);
  n = neighbour("10.2.0.5");
  ASSERT_FALSE(n.is_null());
  EXPECT_EQ(n["mac"], "02:00:00:00:0e:05") << "the wire does not override configuration";
  EXPECT_EQ(n["state"], "static");
}

TEST_F(RouterTest, ReachableGoesStaleThenExpiresUnused) {
  send_to("10.2.0.99");
  router_->poll_at(kStart);
  arp_reply_from_neighbour();
  router_->poll_at(kStart + 100);
  Taken sent = injected();
  EXPECT_EQ(neighbour("10.2.0.99")["state"], "reachable");
  router_->poll_at(kStart + 100 + 29'900);
  EXPECT_EQ(neighbour("10.2.0.99")["state"], "reachable");
  router_->poll_at(kStart + 100 + 30'000);
  EXPECT_EQ(neighbour("10.2.0.99")["state"], "stale");
  router_->poll_at(kStart + 100 + 30'000 + 59'900);
  EXPECT_EQ(neighbour("10.2.0.99")["state"], "stale");
  router_->poll_at(kStart + 100 + 30'000 + 60'000);
  EXPECT_TRUE(neighbour("10.2.0.99").is_null());
  EXPECT_EQ(counter("neighbours_expired"), 1u);
  EXPECT_EQ(injected().size(), 0u) << "an unused entry is not probed";
}

TEST_F(RouterTest, StaleEntryInUseIsProbedByUnicastAndRemovedWithoutAnswer) {
  arrive(west_id_, {arp_frame(kArpRequest, kHostMac, "10.1.0.10", kZeroMac, "10.1.0.1", kBroadcastMac)});
  router_->poll_at(kStart);
  Taken reply = injected();
  EXPECT_EQ(neighbour("10.1.0.10")["state"], "stale");
  // The fast path uses the entry (east to west), which stamps it.
  Taken forwarded = arrive(east_id_, {to_east(ipv4_frame({.src = "10.2.0.50", .dst = "10.1.0.10"}))});
  ASSERT_EQ(forwarded.size(), 1u);
  EXPECT_EQ(mac_at(data(forwarded[0])), kHostMac);
  router_->poll_at(kStart + 4900);
  EXPECT_EQ(injected().size(), 0u) << "DELAY_FIRST_PROBE_TIME is 5 s";
  router_->poll_at(kStart + 5000);
  EXPECT_EQ(neighbour("10.1.0.10")["state"], "probe");
  Taken probe = injected();
  ASSERT_EQ(probe.size(), 1u);
  expect_arp(probe[0], west_id_, kArpRequest, kHostMac, kWestMac, "10.1.0.1", kHostMac, "10.1.0.10");
  router_->poll_at(kStart + 6000);
  EXPECT_EQ(injected().size(), 1u);
  router_->poll_at(kStart + 7000);
  EXPECT_EQ(injected().size(), 1u);
  router_->poll_at(kStart + 8000);
  EXPECT_TRUE(neighbour("10.1.0.10").is_null());
  EXPECT_EQ(counter("resolution_failures"), 0u) << "it had been resolved";
}

TEST_F(RouterTest, AnsweredProbeMakesTheEntryReachableAgain) {
  arrive(west_id_, {arp_frame(kArpRequest, kHostMac, "10.1.0.10", kZeroMac, "10.1.0.1", kBroadcastMac)});
  router_->poll_at(kStart);
  arrive(east_id_, {to_east(ipv4_frame({.src = "10.2.0.50", .dst = "10.1.0.10"}))});
  router_->poll_at(kStart + 5000);
  EXPECT_EQ(neighbour("10.1.0.10")["state"], "probe");
  arrive(west_id_, {arp_frame(kArpReply, kHostMac, "10.1.0.10", kWestMac, "10.1.0.1", kWestMac)});
  router_->poll_at(kStart + 5100);
  EXPECT_EQ(neighbour("10.1.0.10")["state"], "reachable");
  Taken sent = injected();
  EXPECT_EQ(sent.size(), 2u) << "the ARP reply and one probe";
}

// ---- start, announce, listings, shutdown ----

TEST_F(RouterTest, AnnouncesEveryAddress) {
  router_->announce();
  Taken sent = injected();
  ASSERT_EQ(sent.size(), 4u);
  std::map<std::string, const rte_mbuf*> by_address;
  for (const rte_mbuf* m : sent.pkts) {
    const uint8_t* f = data(m);
    if (get16(f + 12) == net::kEtherTypeArp) by_address[test::ip4_text(f + kL3 + 14)] = m;
    else by_address[test::ip6_text(f + kL3 + 40 + 8)] = m;
  }
  ASSERT_EQ(by_address.size(), 4u);
  for (const char* a : {"10.1.0.1", "10.2.0.1", "fd00:1::1", "fd00:2::1"}) ASSERT_TRUE(by_address.count(a)) << a;
  expect_arp(by_address["10.1.0.1"], west_id_, kArpRequest, kBroadcastMac, kWestMac, "10.1.0.1", kZeroMac, "10.1.0.1");
  expect_arp(by_address["10.2.0.1"], east_id_, kArpRequest, kBroadcastMac, kEastMac, "10.2.0.1", kZeroMac, "10.2.0.1");
  const uint8_t* nd = expect_nd(by_address["fd00:2::1"], east_id_, 136, {0x33, 0x33, 0, 0, 0, 1}, kEastMac,
                                "fd00:2::1", "ff02::1", "fd00:2::1");
  EXPECT_EQ(nd[4], 0xa0) << "unsolicited, override";
  expect_nd(by_address["fd00:1::1"], west_id_, 136, {0x33, 0x33, 0, 0, 0, 1}, kWestMac, "fd00:1::1", "ff02::1",
            "fd00:1::1");
}

TEST_F(RouterTest, ListsRoutesWithTheirKinds) {
  nlohmann::json routes = router_->routes_json()["routes"];
  std::map<std::string, nlohmann::json> by_prefix;
  for (const auto& r : routes) by_prefix[r["prefix"]] = r["nexthops"];
  EXPECT_EQ(by_prefix["10.9.0.0/16"], nlohmann::json::parse(R"([{"port": "east", "type": "gateway", "via": "10.2.0.5"}])"));
  EXPECT_EQ(by_prefix["10.1.0.0/24"], nlohmann::json::parse(R"([{"port": "west", "type": "connected"}])"));
  EXPECT_EQ(by_prefix["10.1.0.1/32"], nlohmann::json::parse(R"([{"port": "west", "type": "local"}])"));
  EXPECT_EQ(by_prefix["10.1.0.255/32"], nlohmann::json::parse(R"([{"port": "west", "type": "broadcast"}])"));
  EXPECT_EQ(by_prefix["fd00:2::1/128"], nlohmann::json::parse(R"([{"port": "east", "type": "local"}])"));
  EXPECT_EQ(routes.size(), 1u + 2 * 5u);
}

TEST_F(RouterTest, UnknownPuntReasonIsDropped) {
  rte_mbuf* m = make_mbuf(ipv4_frame({}));
  pipeline::ParseCounts counts;
  pipeline::ParseStage::parse_packet(m, counts);
  meta(m).aux = 0;
  ASSERT_EQ(rte_ring_enqueue(context_.punt_ring, m), 0);
  router_->poll_at(kStart);
  EXPECT_EQ(drops(Drop::LocalUnhandled), 1u);
  EXPECT_EQ(in_use(), 0u);
}

TEST_F(RouterTest, DrainFreesEverythingItHoldsAsShutdown) {
  send_to("10.2.0.99", 1);
  send_to("10.2.0.99", 2);
  router_->poll_at(kStart);  // two queued, one ARP request in the inject ring
  arrive(west_id_, {arp_frame(kArpRequest, kHostMac, "10.1.0.10", kZeroMac, "10.1.0.1", kBroadcastMac),
                    nd_frame({}), ipv6_frame({.dst = "fd00:2::99"})});  // three in the punt ring
  EXPECT_EQ(rte_ring_count(context_.punt_ring), 3u);
  EXPECT_EQ(rte_ring_count(router_->inject_ring(0)), 1u);
  EXPECT_EQ(in_use(), 6u);
  router_->drain();
  EXPECT_EQ(drops(Drop::Shutdown), 6u);
  EXPECT_EQ(in_use(), 0u);
  EXPECT_EQ(rte_ring_count(context_.punt_ring), 0u);
  EXPECT_EQ(rte_ring_count(router_->inject_ring(0)), 0u);
  EXPECT_EQ(neighbour("10.2.0.99")["queued"], 0);
  router_->drain();  // again (the destructor does): nothing left to count
  EXPECT_EQ(drops(Drop::Shutdown), 6u);
}

TEST_F(RouterTest, PollWithTheRealClockAnswersToo) {
  arrive(west_id_, {arp_frame(kArpRequest, kHostMac, "10.1.0.10", kZeroMac, "10.1.0.1", kBroadcastMac)});
  router_->poll();
  EXPECT_EQ(injected().size(), 1u);
}


// ---- gateways: pinned entries, resolved without waiting for traffic, never removed ----

class GatewayRouterTest : public RouterTest {
 protected:
  const std::string& config_text() const override { return kGatewayConfig; }
};

TEST_F(GatewayRouterTest, IsResolvedAtStartAndUsedWithoutALookup) {
  nlohmann::json n = neighbour("10.2.0.99");
  ASSERT_FALSE(n.is_null()) << "created with the routes";
  EXPECT_EQ(n["state"], "incomplete");
  EXPECT_EQ(n["gateway"], true);
  router_->poll_at(kStart);
  Taken request = injected();
  ASSERT_EQ(request.size(), 1u) << "resolved before any packet needs it";
  expect_arp(request[0], east_id_, kArpRequest, kBroadcastMac, kEastMac, "10.2.0.1", kZeroMac, "10.2.0.99");
  arp_reply_from_neighbour();
  router_->poll_at(kStart + 10);
  EXPECT_EQ(neighbour("10.2.0.99")["state"], "reachable");

  Taken forwarded = arrive(west_id_, {ipv4_frame({.dst = "10.9.3.3"}), ipv4_frame({.dst = "10.9.4.4"})});
  ASSERT_EQ(forwarded.size(), 2u);
  for (rte_mbuf* m : forwarded.pkts) {
    EXPECT_EQ(mac_at(data(m)), kNeighbourMac);
    EXPECT_EQ(mac_at(data(m) + 6), kEastMac);
  }
  EXPECT_EQ(rte_ring_count(context_.punt_ring), 0u);
}

TEST_F(GatewayRouterTest, TrafficBeforeResolutionWaitsInItsQueue) {
  send_to("10.9.3.3", 0x7777);
  router_->poll_at(kStart);
  Taken request = injected();
  ASSERT_EQ(request.size(), 1u) << "one request: the timer's and the packet's are the same";
  EXPECT_EQ(neighbour("10.2.0.99")["queued"], 1);
  arp_reply_from_neighbour();
  router_->poll_at(kStart + 10);
  Taken flushed = injected();
  ASSERT_EQ(flushed.size(), 1u);
  EXPECT_EQ(get16(data(flushed[0]) + kL3 + 4), 0x7777);
  EXPECT_EQ(mac_at(data(flushed[0])), kNeighbourMac);
}

TEST_F(GatewayRouterTest, UnansweredStaysAndIsRetriedOnTrafficOrAfterReachableMs) {
  send_to("10.9.3.3");
  for (uint64_t t : {kStart, kStart + 1000, kStart + 2000}) {
    router_->poll_at(t);
    EXPECT_EQ(injected().size(), 1u) << "probe at " << t - kStart;
  }
  router_->poll_at(kStart + 3000);
  EXPECT_EQ(injected().size(), 0u);
  nlohmann::json n = neighbour("10.2.0.99");
  ASSERT_FALSE(n.is_null()) << "a gateway is never removed: its position is in the routes";
  EXPECT_EQ(n["state"], "incomplete");
  EXPECT_EQ(n["queued"], 0);
  EXPECT_EQ(drops(Drop::NoNeighbour), 1u);
  EXPECT_EQ(counter("resolution_failures"), 1u);

  send_to("10.9.3.3");  // traffic starts a new resolution at once
  router_->poll_at(kStart + 3100);
  EXPECT_EQ(injected().size(), 1u);
  EXPECT_EQ(neighbour("10.2.0.99")["queued"], 1);
  for (uint64_t t : {kStart + 4100, kStart + 5100}) {
    router_->poll_at(t);
    EXPECT_EQ(injected().size(), 1u);
  }
  router_->poll_at(kStart + 6100);
  EXPECT_EQ(counter("resolution_failures"), 2u);
  router_->poll_at(kStart + 6100 + 29000);
  EXPECT_EQ(injected().size(), 0u) << "quiet until reachable_ms";
  router_->poll_at(kStart + 6100 + 30000);
  EXPECT_EQ(injected().size(), 1u) << "then tried again without traffic";
  EXPECT_EQ(in_use(), 0u);
}

TEST_F(GatewayRouterTest, ForgetsAMacThatStopsAnsweringButKeepsTheEntry) {
  router_->poll_at(kStart);
  injected();
  arp_reply_from_neighbour();
  router_->poll_at(kStart + 10);
  router_->poll_at(kStart + 30010);
  EXPECT_EQ(neighbour("10.2.0.99")["state"], "stale");
  router_->poll_at(kStart + 90010);
  EXPECT_EQ(neighbour("10.2.0.99")["state"], "stale") << "an unused gateway does not expire";

  // Used while stale: probed by unicast; no answer: back to incomplete, MAC withdrawn.
  Taken forwarded = arrive(west_id_, {ipv4_frame({.dst = "10.9.3.3"})});
  ASSERT_EQ(forwarded.size(), 1u) << "a stale MAC is still used";
  router_->poll_at(kStart + 95010);
  EXPECT_EQ(neighbour("10.2.0.99")["state"], "probe");
  for (uint64_t t : {kStart + 96010, kStart + 97010, kStart + 98010}) router_->poll_at(t);
  injected();
  nlohmann::json n = neighbour("10.2.0.99");
  EXPECT_EQ(n["state"], "incomplete");
  EXPECT_TRUE(n["mac"].is_null());
  EXPECT_EQ(arrive(west_id_, {ipv4_frame({.dst = "10.9.3.3"})}).size(), 0u) << "punted, not sent to the old MAC";
  EXPECT_EQ(rte_ring_count(context_.punt_ring), 1u);
}

TEST_F(GatewayRouterTest, FirstWaitingPacketAsksAtOnceNotAtTheNextRetransmit) {
  router_->poll_at(kStart);
  EXPECT_EQ(injected().size(), 1u) << "the start-up probe, unanswered (link down, say)";
  send_to("10.9.3.3", 1);
  router_->poll_at(kStart + 50);
  EXPECT_EQ(injected().size(), 0u) << "probed 50 ms ago: wait for it";
  router_->poll_at(kStart + 500);
  send_to("10.9.3.3", 2);
  router_->poll_at(kStart + 500);
  EXPECT_EQ(injected().size(), 0u) << "a packet already waits: no new request";
  EXPECT_EQ(neighbour("10.2.0.99")["queued"], 2);
  arp_reply_from_neighbour();
  router_->poll_at(kStart + 510);
  EXPECT_EQ(injected().size(), 2u);
  router_->poll_at(kStart + 30600);  // stale, unused
  router_->poll_at(kStart + 200000);
  EXPECT_EQ(neighbour("10.2.0.99")["state"], "stale");

  // A fresh start: nobody waits, the last probe was long ago.
  GatewayRouterTest::TearDown();
  GatewayRouterTest::SetUp();
  router_->poll_at(kStart);
  EXPECT_EQ(injected().size(), 1u);
  send_to("10.9.3.3", 3);
  router_->poll_at(kStart + 400);
  EXPECT_EQ(injected().size(), 1u) << "the first packet to wait asks at once";
  EXPECT_EQ(counter("arp_requests_sent"), 2u);
}

}  // namespace
}  // namespace sluice::router
