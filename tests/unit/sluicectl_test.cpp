// sluicectl's pure parts: tables, odd JSON, rates, trace rendering, argument mapping.
#include <gtest/gtest.h>

#include "format.h"

using nlohmann::json;
using namespace sluicectl;

namespace {

json stats_at(double uptime, uint64_t rx, uint64_t tx, uint64_t drops) {
  return json::parse(R"({"uptime_seconds": )" + std::to_string(uptime) + R"(,
    "ports": [{"name": "west", "port_id": 0, "device": "net_af_packet0", "link_up": true,
               "rx_packets": )" + std::to_string(rx) + R"(, "tx_packets": )" + std::to_string(tx) + R"(,
               "rx_bytes": )" + std::to_string(rx * 100) + R"(, "tx_bytes": 0, "rx_missed": 0, "rx_errors": 0, "tx_errors": 0},
              {"name": "east", "port_id": 1, "device": "net_af_packet1", "link_up": false,
               "rx_packets": 0, "tx_packets": 0, "rx_bytes": 0, "tx_bytes": 0}],
    "stages": [{"port": "west", "stage": "conntrack", "packets_in": )" + std::to_string(rx) + R"(,
                "packets_out": )" + std::to_string(rx - drops) + R"(, "drops_total": )" + std::to_string(drops) + R"(,
                "drops": {"firewall_drop": )" + std::to_string(drops) + R"(}}],
    "lcores": [{"lcore": 1}], "drops_total": )" + std::to_string(drops) + R"(,
    "drops": {"firewall_drop": )" + std::to_string(drops) + R"(, "no_route": 0}})");
}

}  // namespace

TEST(SluicectlCell, MissingAndOddValuesPrintAsDash) {
  EXPECT_EQ(cell(json()), "-");
  EXPECT_EQ(cell(json("")), "-");
  EXPECT_EQ(cell(json(true)), "yes");
  EXPECT_EQ(cell(json(42)), "42");
  EXPECT_EQ(cell(json(2.0)), "2");
  EXPECT_EQ(cell(json(2.345)), "2.35");
  EXPECT_EQ(field(json::array({1}), "x"), "-");
  EXPECT_EQ(field(json{{"x", nullptr}}, "x"), "-");
  EXPECT_EQ(number(json{{"x", "7"}}, "x", -1), -1);
}

TEST(SluicectlCell, HumanUnits) {
  EXPECT_EQ(human_count(999), "999");
  EXPECT_EQ(human_count(1234567), "1.23M");
  EXPECT_EQ(human_rate(12.5), "12.5");
  EXPECT_EQ(human_rate(25000), "25.00k");
  EXPECT_EQ(human_duration(3725.2), "1h 2m 5s");
  EXPECT_EQ(human_duration(59), "59s");
  EXPECT_EQ(human_duration(-1), "-");
}

TEST(SluicectlTable, AlignsColumnsAndRightAlignsNumbers) {
  Table t({"NAME", ">PACKETS", "STATE"});
  t.add({"west", "5", "up"});
  t.add({"eastern", "12345", ""});
  EXPECT_EQ(t.str(),
            "NAME     PACKETS  STATE\n"
            "west           5  up\n"
            "eastern    12345  -\n");
}

TEST(SluicectlViews, PortsTableSumsStageDrops) {
  const std::string out = render_ports(stats_at(10, 100, 90, 7));
  EXPECT_NE(out.find("west"), std::string::npos);
  EXPECT_NE(out.find("down"), std::string::npos);
  // west's row ends with its conntrack drops, east's with none.
  EXPECT_NE(out.find("7\n"), std::string::npos) << out;
  EXPECT_EQ(port_names(stats_at(1, 1, 1, 0)), (std::vector<std::string>{"west", "east"}));
}

TEST(SluicectlViews, NeverThrowOnOddJson) {
  for (const json& odd : {json(), json::array(), json("x"), json{{"ports", "no"}}, json{{"stages", {1, 2}}},
                          json{{"flows", {{{"src", 5}}}}}, json{{"routes", {{{"nexthops", "x"}}}}}}) {
    EXPECT_NO_THROW(render_status(odd, odd, "a:1"));
    EXPECT_NO_THROW(render_ports(odd));
    EXPECT_NO_THROW(render_stats(odd));
    EXPECT_NO_THROW(render_routes(odd));
    EXPECT_NO_THROW(render_neighbours(odd));
    EXPECT_NO_THROW(render_flows(odd));
    EXPECT_NO_THROW(render_nat(odd));
    EXPECT_NO_THROW(render_services(odd));
    EXPECT_NO_THROW(render_reload(odd));
    EXPECT_NO_THROW(render_trace(odd));
    EXPECT_NO_THROW(render_rates(compute_rates(odd, odd, 1), odd));
  }
  EXPECT_NE(render_status(json::object(), json::object(), "a:1").find("version -"), std::string::npos);
}

TEST(SluicectlViews, FlowsShowEndpointsAndTheNextCursor) {
  const json flows = json::parse(R"({"flows": [{"lcore": 1, "protocol": "tcp", "src": "10.1.0.2", "src_port": 40000,
      "dst": "10.2.0.2", "dst_port": 80, "state": "established", "zone": 0, "expires_in_s": 431999.5, "rule": 0,
      "assured": true, "seen_reply": true},
      {"lcore": 1, "protocol": "icmpv6", "src": "fd00:1::2", "dst": "fd00:2::2", "icmp_id": 7, "state": "replied"}],
      "count": 2, "active": 5, "next_cursor": "1:17"})");
  const std::string out = render_flows(flows);
  EXPECT_NE(out.find("10.1.0.2:40000"), std::string::npos) << out;
  EXPECT_NE(out.find("[fd00:1::2] id 7"), std::string::npos) << out;
  EXPECT_NE(out.find("assured,replied"), std::string::npos) << out;
  EXPECT_NE(out.find("--cursor 1:17"), std::string::npos) << out;
}

TEST(SluicectlViews, RefusedReloadListsEachError) {
  const json body = {{"reloaded", false}, {"generation", 3}, {"errors", {"$.colour: unknown key", "second"}}};
  const std::string out = render_reload(body);
  EXPECT_NE(out.find("refused (generation 3 stays)"), std::string::npos);
  EXPECT_NE(out.find("  $.colour: unknown key\n  second\n"), std::string::npos) << out;
  EXPECT_EQ(error_text(json{{"error", "port: no port named 'x'"}}), "port: no port named 'x'\n");
}

TEST(SluicectlRates, PerSecondFromTheServersUptime) {
  const Rates r = compute_rates(stats_at(10, 1000, 500, 10), stats_at(12, 3000, 1500, 30), 99);
  EXPECT_DOUBLE_EQ(r.seconds, 2);
  ASSERT_EQ(r.ports.size(), 2u);
  EXPECT_DOUBLE_EQ(r.ports[0].rx_pps, 1000);
  EXPECT_DOUBLE_EQ(r.ports[0].tx_pps, 500);
  EXPECT_DOUBLE_EQ(r.ports[0].rx_bps, 1000 * 100 * 8);
  EXPECT_DOUBLE_EQ(r.ports[0].drops_ps, 10);
  ASSERT_EQ(r.stages.size(), 1u);
  EXPECT_DOUBLE_EQ(r.stages[0].in_pps, 1000);
  EXPECT_DOUBLE_EQ(r.stages[0].drops_ps, 10);
  EXPECT_DOUBLE_EQ(r.drops_ps, 10);
  ASSERT_EQ(r.drop_reasons.size(), 1u);
  EXPECT_EQ(r.drop_reasons[0].first, "firewall_drop");
  const std::string out = render_rates(r, stats_at(12, 3000, 1500, 30));
  EXPECT_NE(out.find("RX-PPS"), std::string::npos);
  EXPECT_NE(out.find("1.00k"), std::string::npos) << out;
  EXPECT_NE(out.find("firewall_drop 10.0"), std::string::npos) << out;
  EXPECT_DOUBLE_EQ(rates_json(r)["ports"][0]["rx_pps"].get<double>(), 1000);
}

TEST(SluicectlRates, RestartOrMissingRowsGiveZeroNotNegative) {
  const Rates restarted = compute_rates(stats_at(100, 5000, 5000, 50), stats_at(1, 10, 10, 0), 1);
  EXPECT_DOUBLE_EQ(restarted.seconds, 1);  // uptime went backwards: the wall clock
  EXPECT_DOUBLE_EQ(restarted.ports[0].rx_pps, 0);
  EXPECT_DOUBLE_EQ(restarted.drops_ps, 0);
  json fewer = stats_at(1, 10, 10, 0);
  fewer["ports"].erase(0);
  const Rates r = compute_rates(fewer, stats_at(2, 20, 20, 0), 1);
  EXPECT_DOUBLE_EQ(r.ports[0].rx_pps, 0);  // west appeared: no rate yet
}

TEST(SluicectlTrace, FilterWordsBecomeQueryParameters) {
  Query q;
  std::string error;
  ASSERT_TRUE(parse_trace_filter("proto tcp dst 10.2.0.0/24 dport 80", q, error)) << error;
  EXPECT_EQ(q, (Query{{"proto", "tcp"}, {"dst", "10.2.0.0/24"}, {"dport", "80"}}));
  q.clear();
  ASSERT_TRUE(parse_trace_filter("  udp host fd00:1::2 port 53 ", q, error)) << error;
  EXPECT_EQ(q, (Query{{"proto", "udp"}, {"host", "fd00:1::2"}, {"l4port", "53"}}));
  q.clear();
  EXPECT_TRUE(parse_trace_filter("", q, error));
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(parse_trace_filter("proto", q, error));
  EXPECT_NE(error.find("needs a value"), std::string::npos);
  EXPECT_FALSE(parse_trace_filter("vlan 5", q, error));
  EXPECT_NE(error.find("unknown word 'vlan'"), std::string::npos);
  q.clear();
  EXPECT_FALSE(parse_trace_filter("src 1.1.1.1 src 2.2.2.2", q, error));
}

TEST(SluicectlTrace, RendersStepsAndTheDropVerdict) {
  const json packet = json::parse(R"({"seq": 3, "lcore": 1, "port": "east", "handed_over": false,
    "ethernet": "aa:aa:aa:aa:aa:01 > bb:bb:bb:bb:bb:02", "headers": "10.2.0.2:40000 > 10.1.0.2:22 tcp [S] ttl 64 len 74",
    "outcome": "dropped", "stage": "conntrack", "reason": "firewall_drop",
    "reason_description": "a firewall rule or zone policy said drop",
    "steps": [{"stage": "parse", "outcome": "passed", "cycles": 40, "burst": 1},
              {"stage": "conntrack", "outcome": "dropped", "reason": "firewall_drop",
               "detail": "a firewall rule or zone policy said drop", "cycles": 900, "burst": 1}]})");
  const std::string out = render_trace_packet(packet);
  EXPECT_EQ(out,
            "#3 lcore 1 port east: 10.2.0.2:40000 > 10.1.0.2:22 tcp [S] ttl 64 len 74 "
            "(aa:aa:aa:aa:aa:01 > bb:bb:bb:bb:bb:02)\n"
            "  parse      passed   40 cycles\n"
            "  conntrack  dropped  firewall_drop  a firewall rule or zone policy said drop  900 cycles\n"
            "=> dropped at conntrack: firewall_drop (a firewall rule or zone policy said drop)\n");
}

TEST(SluicectlTrace, RendersSentWithChangedHeaders) {
  const json packet = json::parse(R"({"seq": 1, "lcore": 1, "port": "west", "headers": "10.1.0.2 > 10.2.0.2 icmp",
    "ethernet": "a > b", "outcome": "sent", "stage": "output", "egress": "east",
    "steps": [{"stage": "route", "outcome": "passed", "detail": "10.2.0.0/24 connected; egress east",
               "headers": "c > d 10.1.0.2 > 10.2.0.2 icmp ttl 63", "cycles": 120},
              {"stage": "output", "outcome": "sent", "detail": "queued for TX on east", "cycles": 60}]})");
  const std::string out = render_trace_packet(packet);
  EXPECT_NE(out.find("  route   passed  10.2.0.0/24 connected; egress east  -> c > d 10.1.0.2 > 10.2.0.2 icmp ttl 63  "
                     "120 cycles\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("=> sent on east\n"), std::string::npos) << out;
  const std::string all = render_trace(json{{"id", 4}, {"filter", "port west"}, {"captured", 1}, {"wanted", 3},
                                            {"examined", 9}, {"matched", 1}, {"packets", {packet}}});
  EXPECT_NE(all.find("trace 4 (port west): 1 of 3 packets caught; 9 examined, 1 matched"), std::string::npos) << all;
}

TEST(SluicectlArgs, FlowFiltersMapToFlowsParameters) {
  FlowFilterArgs f;
  f.prefix = "10.1.0.0/24";
  f.port = "80";
  f.protocol = "tcp";
  f.state = "established";
  f.zone = "2";
  f.limit = "5";
  EXPECT_EQ(flow_query(f), (Query{{"address", "10.1.0.0/24"}, {"port", "80"}, {"protocol", "tcp"},
                                  {"state", "established"}, {"zone", "2"}, {"limit", "5"}}));
  EXPECT_TRUE(flow_query(FlowFilterArgs{}).empty());
}

TEST(SluicectlArgs, Addresses) {
  std::string host, error;
  int port = 0;
  ASSERT_TRUE(parse_address("127.0.0.1:9245", host, port, error));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 9245);
  ASSERT_TRUE(parse_address("http://localhost/", host, port, error));
  EXPECT_EQ(host, "localhost");
  EXPECT_EQ(port, 9180);
  ASSERT_TRUE(parse_address("[::1]:9000", host, port, error));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 9000);
  EXPECT_FALSE(parse_address("::1:9000", host, port, error));
  EXPECT_NE(error.find("brackets"), std::string::npos);
  EXPECT_FALSE(parse_address("host:99999", host, port, error));
  EXPECT_FALSE(parse_address("host:", host, port, error));
  EXPECT_FALSE(parse_address(":80", host, port, error));
}

TEST(SluicectlArgs, CaptureCommandUsesThePortIdAndFilePrefix) {
  const json stats = stats_at(1, 1, 1, 0);
  const json config = {{"eal", {{"file_prefix", "sl-it-sct"}}}};
  CaptureArgs c;
  c.port = "east";
  c.file = "/tmp/x.pcapng";
  c.count = 10;
  c.duration = 5;
  std::vector<std::string> argv;
  std::string error;
  ASSERT_TRUE(capture_command(c, stats, config, "/usr/bin/dpdk-dumpcap", argv, error)) << error;
  EXPECT_EQ(argv, (std::vector<std::string>{"/usr/bin/dpdk-dumpcap", "--file-prefix=sl-it-sct", "-i", "1", "-w",
                                            "/tmp/x.pcapng", "-c", "10", "-a", "duration:5"}));
  EXPECT_EQ(eal_file_prefix(json::object()), "sluice");
  c.port = "nosuch";
  EXPECT_FALSE(capture_command(c, stats, config, "dpdk-dumpcap", argv, error));
  EXPECT_EQ(error, "capture: no port named 'nosuch' (ports: west, east)");
}
