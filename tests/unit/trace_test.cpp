// The packet tracer on real mbufs through a routed, tracked pipeline (parse,
// conntrack, route, output): what it records for a forwarded packet, a firewall drop,
// a packet with no route; the filter, drops only, the count, a re-arm; and that a
// traced burst leaves the same packets, counters and flows as an untraced one.
#include <gtest/gtest.h>

#include "l3_fixture.h"
#include "pipeline/trace.h"

namespace sluice::pipeline {
namespace {

using test::ipv4_frame;
using test::kGatewayMac;
using test::kHostMac;
using test::Sent;

constexpr const char* kFirewall = R"({"default_policy": "drop",
    "policies": [{"from": "inside", "to": "outside", "action": "accept"}],
    "rules": [{"name": "no-telnet", "protocol": "tcp", "dst_ports": 23, "action": "drop"},
              {"name": "dns-out", "from": "inside", "to": "outside", "protocol": "udp", "dst_ports": 53,
               "action": "accept"}]})";

class TraceTest : public test::TwoPortPipelineTest {
 protected:
  void SetUp() override {
    test::TwoPortPipelineTest::SetUp();
    if (HasFatalFailure()) return;
    add_neighbour(east_id_, "10.2.0.2", kGatewayMac);
    add_neighbour(west_id_, "10.1.0.10", kHostMac);
    start(test::two_port_config({}, R"("routes": [{"prefix": "10.9.0.0/16", "via": "10.2.0.2"}],)"
                                     R"( "conntrack": {"capacity": 1024, "capacity_ipv6": 1024}, "firewall": )" +
                                     std::string(kFirewall)));
    std::vector<std::string> names(std::max(west_id_, east_id_) + 1);
    names[west_id_] = "west";
    names[east_id_] = "east";
    session_ = std::make_unique<TraceSession>(names);
  }

  // One burst of west frames through trace_run, then what was sent.
  Sent traced(const std::vector<std::vector<uint8_t>>& frames) {
    Burst burst;
    for (const auto& f : frames) burst.pkts[burst.count++] = make_mbuf(to_west(f));
    trace_run(pipe(test::Side::West), burst, 0, *session_, 1, false);
    EXPECT_EQ(burst.count, 0);
    burst.free_discards();
    return collect();
  }

  static std::vector<uint8_t> udp(const char* dst, uint16_t dport, uint8_t ttl = 64) {
    auto b = ipv4_frame({.src = "10.1.0.10", .dst = dst, .proto = 17, .ttl = ttl, .src_port = 40000, .dst_port = dport});
    test::fix_l4_checksum(b, false);
    return b;
  }
  // A SYN.
  static std::vector<uint8_t> tcp(const char* dst, uint16_t dport) {
    auto b = ipv4_frame({.src = "10.1.0.10", .dst = dst, .proto = 6, .src_port = 40001, .dst_port = dport});
    b[test::kL3 + 20 + 13] = 0x02;
    test::fix_l4_checksum(b, false);
    return b;
  }

  const TraceStep* step(const TraceRecord& r, std::string_view stage) {
    for (const auto& s : r.steps)
      if (s.stage == stage) return &s;
    return nullptr;
  }

  std::unique_ptr<TraceSession> session_;
};

TEST_F(TraceTest, ForwardedPacketShowsEveryStageTheFlowAndTheEgress) {
  session_->arm(TraceFilter{}, 10);
  Sent sent = traced({udp("10.9.1.1", 53)});
  ASSERT_EQ(sent.east.size(), 1u);
  auto snap = session_->snapshot();
  ASSERT_EQ(snap.records.size(), 1u);
  const TraceRecord& r = snap.records[0];
  EXPECT_EQ(r.seq, 1u);
  EXPECT_EQ(r.port, "west");
  EXPECT_EQ(r.headers, "10.1.0.10:40000 > 10.9.1.1:53 udp ttl 64 len " + std::to_string(udp("10.9.1.1", 53).size()));
  EXPECT_EQ(r.outcome, TraceOutcome::Sent);
  EXPECT_EQ(r.egress, "east");
  std::vector<std::string> stages;
  for (const auto& s : r.steps) stages.push_back(s.stage);
  EXPECT_EQ(stages, (std::vector<std::string>{"parse", "conntrack", "route", "output"}));
  const TraceStep* ct = step(r, "conntrack");
  ASSERT_NE(ct, nullptr);
  EXPECT_NE(ct->detail.find("unreplied, admitted by rule 2 'dns-out'"), std::string::npos) << ct->detail;
  const TraceStep* route = step(r, "route");
  ASSERT_NE(route, nullptr);
  EXPECT_NE(route->detail.find("egress east"), std::string::npos) << route->detail;
  // Route rewrote the MACs and spent a hop of TTL.
  EXPECT_NE(route->headers.find("> 02:00:00:00:0e:02"), std::string::npos) << route->headers;
  EXPECT_NE(route->headers.find("ttl 63"), std::string::npos) << route->headers;
  EXPECT_EQ(step(r, "output")->detail, "queued for TX on east");
  EXPECT_TRUE(session_->armed()) << "count 10, one packet: still armed";
}

TEST_F(TraceTest, FirewallDropNamesTheStageAndTheReason) {
  session_->arm(TraceFilter{.drops_only = true}, 1);
  Sent sent = traced({udp("10.9.1.1", 53), tcp("10.9.1.1", 23), udp("10.9.1.2", 53)});
  EXPECT_EQ(sent.east.size(), 2u);
  auto snap = session_->snapshot();
  ASSERT_EQ(snap.records.size(), 1u);
  const TraceRecord& r = snap.records[0];
  EXPECT_EQ(r.outcome, TraceOutcome::Dropped);
  EXPECT_EQ(r.where, "conntrack");
  EXPECT_EQ(r.reason, Drop::FirewallDrop);
  EXPECT_NE(r.headers.find(":23 tcp [S]"), std::string::npos) << r.headers;
  ASSERT_EQ(r.steps.size(), 2u);
  EXPECT_EQ(r.steps[1].detail, drop_description(Drop::FirewallDrop));
  EXPECT_FALSE(session_->armed()) << "one drop wanted, one caught: disarmed";
  EXPECT_EQ(snap.examined, 3u);
  EXPECT_EQ(snap.matched, 3u);
}

TEST_F(TraceTest, NoRouteAndTtlDropsAtRoute) {
  session_->arm(TraceFilter{}, 5);
  traced({udp("192.0.2.1", 53), udp("10.9.1.1", 53, 1)});
  auto snap = session_->snapshot();
  ASSERT_EQ(snap.records.size(), 2u);
  for (const auto& r : snap.records) {
    EXPECT_EQ(r.where, "route") << r.headers;
    EXPECT_NE(r.outcome, TraceOutcome::Sent) << r.headers;
  }
  EXPECT_EQ(snap.records[0].reason, Drop::NoRoute);
}

TEST_F(TraceTest, FilterSelectsAndCountStops) {
  TraceFilter f;
  f.proto = 6;
  f.dport = 23;
  session_->arm(f, 2);
  traced({udp("10.9.1.1", 53), tcp("10.9.1.1", 23), tcp("10.9.1.1", 80)});
  auto snap = session_->snapshot();
  ASSERT_EQ(snap.records.size(), 1u);
  EXPECT_EQ(snap.matched, 1u);
  EXPECT_TRUE(session_->armed());
  traced({tcp("10.9.1.1", 23), tcp("10.9.1.1", 23)});
  snap = session_->snapshot();
  EXPECT_EQ(snap.records.size(), 2u) << "the count caps the records";
  EXPECT_EQ(snap.records[1].seq, 2u);
  EXPECT_FALSE(session_->armed());
  // Disarmed: nothing more recorded.
  traced({tcp("10.9.1.1", 23)});
  EXPECT_EQ(session_->snapshot().records.size(), 2u);
  // Another port's packets never match a port filter.
  f.port = "east";
  session_->arm(f, 2);
  traced({tcp("10.9.1.1", 23)});
  snap = session_->snapshot();
  EXPECT_EQ(snap.records.size(), 0u) << "a re-arm starts empty, and west is not east";
  EXPECT_EQ(snap.examined, 1u);
}

TEST_F(TraceTest, AddressFilters) {
  TraceFilter f;
  f.dst = net::parse_prefix("10.9.1.0/24", false);
  f.host = net::parse_prefix("10.1.0.10", false);
  session_->arm(f, 10);
  traced({udp("10.9.1.1", 53), udp("10.9.2.1", 53)});
  auto snap = session_->snapshot();
  ASSERT_EQ(snap.records.size(), 1u);
  EXPECT_EQ(f.str(), "dst 10.9.1.0/24 host 10.1.0.10/32");
}

TEST_F(TraceTest, TracedBurstCountsAndForwardsAsAnUntracedOne) {
  const auto& stages = pipe(test::Side::West).stages();
  auto totals = [&] {
    uint64_t in = 0, out = 0;
    for (const auto& s : stages) {
      in += s->counters().packets_in.get();
      out += s->counters().packets_out.get();
    }
    return std::pair{in, out};
  };
  const std::vector<std::vector<uint8_t>> frames = {udp("10.9.1.1", 53), tcp("10.9.1.1", 23), udp("192.0.2.1", 53)};
  const auto before = totals();
  Sent plain = run(frames);
  const auto after_plain = totals();
  session_->arm(TraceFilter{}, 100);
  Sent with_trace = traced(frames);
  const auto after_traced = totals();
  EXPECT_EQ(plain.east.size(), with_trace.east.size());
  EXPECT_EQ(after_plain.first - before.first, after_traced.first - after_plain.first);
  EXPECT_EQ(after_plain.second - before.second, after_traced.second - after_plain.second);
  EXPECT_EQ(session_->snapshot().records.size(), 3u);
}

using PacketViewTest = test::MbufTest;

TEST_F(PacketViewTest, ShortAndOddFramesAreReadSafely) {
  for (size_t len : {0, 6, 13, 14, 20, 33, 34, 54}) {
    std::vector<uint8_t> frame(len, 0);
    if (len >= 14) {
      frame[12] = 0x08;  // IPv4, header cut short
      if (len > 14) frame[14] = 0x45;
    }
    rte_mbuf* m = make_mbuf(frame);
    PacketView v;
    EXPECT_EQ(view_packet(m, v), len >= 14) << len;
    if (len >= 14) {
      EXPECT_FALSE(view_string(v).empty());
    }
    rte_pktmbuf_free(m);
  }
}

}  // namespace
}  // namespace sluice::pipeline
