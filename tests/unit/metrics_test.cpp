// Prometheus rendering: label escaping, and a snapshot's families with HELP and TYPE
// once each, samples grouped under them.
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "control/metrics.h"
#include "stats/drop.h"

namespace sluice::control {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(EscapeLabelTest, EscapesBackslashQuoteAndNewline) {
  EXPECT_EQ(escape_label("west"), "west");
  EXPECT_EQ(escape_label(""), "");
  EXPECT_EQ(escape_label(R"(a\b)"), R"(a\\b)");
  EXPECT_EQ(escape_label(R"(say "hi")"), R"(say \"hi\")");
  EXPECT_EQ(escape_label("two\nlines"), R"(two\nlines)");
  EXPECT_EQ(escape_label("\\\"\n"), R"(\\\"\n)");
  EXPECT_EQ(escape_label("tab\tstays"), "tab\tstays");
}

// A snapshot shaped like collect_stats() output.
nlohmann::json snapshot() {
  nlohmann::json drops = nlohmann::json::object();
  for (const auto& info : kDropInfo) drops[std::string(info.name)] = 0;
  drops["truncated_ipv4"] = 3;
  nlohmann::json stats = nlohmann::json::parse(R"({
    "uptime_seconds": 12.5,
    "ports": [
      {"name": "west", "port_id": 0, "device": "net_af_packet0", "link_up": true, "link_speed_mbps": 10000,
       "rx_packets": 100, "tx_packets": 90, "rx_bytes": 6400, "tx_bytes": 5760, "rx_missed": 1, "rx_errors": 2,
       "tx_errors": 0, "rx_nombuf": 0, "xstats": {"rx_good_packets": 100}},
      {"name": "e\"ast", "port_id": 1, "device": "net_af_packet1", "link_up": false, "link_speed_mbps": 0,
       "rx_packets": 90, "tx_packets": 97, "rx_bytes": 5760, "tx_bytes": 6208, "rx_missed": 0, "rx_errors": 0,
       "tx_errors": 0, "rx_nombuf": 0, "xstats": {}}],
    "lcores": [{"lcore": 1, "polls": 50, "busy_polls": 20, "idle_polls": 30, "rx_packets": 190, "tx_packets": 187,
                "busy_cycles": 123456, "cycles_per_packet": 649.7}],
    "stages": [
      {"port": "west", "stage": "parse", "packets_in": 100, "packets_out": 97, "drops_total": 3,
       "drops": {"truncated_ipv4": 3}, "counters": {"ipv4": 97, "tcp": 97}},
      {"port": "west", "stage": "xconnect", "packets_in": 97, "packets_out": 97, "drops_total": 0, "drops": {}}],
    "drops_total": 3,
    "mempools": [{"name": "sluice_mbuf_s0", "socket": 0, "size": 8191, "in_use": 2048, "free": 6143}]
  })");
  stats["drops"] = std::move(drops);
  return stats;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(RenderPrometheusTest, HasTheExpectedSamples) {
  std::string text = render_prometheus(snapshot());
  EXPECT_EQ(text.rfind("# HELP sluice_uptime_seconds Seconds since the data plane started.\n"
                       "# TYPE sluice_uptime_seconds gauge\n"
                       "sluice_uptime_seconds 12.500000\n",
                       0),
            0u);
  EXPECT_THAT(text, HasSubstr("# HELP sluice_port_rx_packets_total Packets received by the port (ethdev ipackets).\n"
                              "# TYPE sluice_port_rx_packets_total counter\n"
                              "sluice_port_rx_packets_total{port=\"west\"} 100\n"
                              "sluice_port_rx_packets_total{port=\"e\\\"ast\"} 90\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE sluice_drops_total counter\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_port_rx_packets_total{port=\"west\"} 100\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_port_tx_bytes_total{port=\"west\"} 5760\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_port_rx_missed_total{port=\"west\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_port_rx_errors_total{port=\"west\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_port_link_up{port=\"west\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_port_link_up{port=\"e\\\"ast\"} 0\n")) << "label values are escaped";
  EXPECT_THAT(text, HasSubstr("\nsluice_port_link_speed_mbps{port=\"west\"} 10000\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_port_xstat_total{port=\"west\",stat=\"rx_good_packets\"} 100\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_lcore_polls_total{lcore=\"1\"} 50\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_lcore_busy_cycles_total{lcore=\"1\"} 123456\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_lcore_tx_packets_total{lcore=\"1\"} 187\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_stage_packets_in_total{port=\"west\",stage=\"parse\"} 100\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_stage_packets_out_total{port=\"west\",stage=\"xconnect\"} 97\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_stage_drops_total{port=\"west\",stage=\"parse\",reason=\"truncated_ipv4\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_stage_events_total{port=\"west\",stage=\"parse\",counter=\"ipv4\"} 97\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_drops_total{reason=\"truncated_ipv4\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_drops_total{reason=\"tx_queue_full\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_mempool_size{pool=\"sluice_mbuf_s0\"} 8191\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_mempool_in_use{pool=\"sluice_mbuf_s0\"} 2048\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_mempool_free{pool=\"sluice_mbuf_s0\"} 6143\n"));
  EXPECT_THAT(text, Not(HasSubstr("stage=\"xconnect\",counter="))) << "a stage without counters has no events";
}

TEST(RenderPrometheusTest, EveryFamilyHasHelpAndTypeOnceBeforeItsSamples) {
  std::vector<std::string> all = lines(render_prometheus(snapshot()));
  ASSERT_FALSE(all.empty());
  std::map<std::string, std::string> types;
  std::set<std::string> helped;
  std::string current;  // the family whose TYPE came last
  for (const std::string& line : all) {
    if (line.rfind("# HELP ", 0) == 0) {
      std::string name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(helped.insert(name).second) << "HELP twice: " << name;
      EXPECT_GT(line.size(), 7 + name.size() + 1) << "empty help: " << name;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::string rest = line.substr(7);
      std::string name = rest.substr(0, rest.find(' '));
      std::string type = rest.substr(rest.find(' ') + 1);
      EXPECT_TRUE(helped.count(name)) << "TYPE before HELP: " << name;
      EXPECT_TRUE(types.emplace(name, type).second) << "TYPE twice: " << name;
      EXPECT_TRUE(type == "counter" || type == "gauge") << line;
      if (type == "counter") {
        EXPECT_EQ(name.substr(name.size() - 6), "_total") << "counters end in _total: " << name;
      }
      current = name;
      continue;
    }
    std::string sample = line.substr(0, line.find_first_of("{ "));
    EXPECT_EQ(sample, current) << "sample outside its family block: " << line;
  }
  for (const char* family :
       {"sluice_uptime_seconds", "sluice_port_rx_packets_total", "sluice_port_tx_packets_total",
        "sluice_port_rx_bytes_total", "sluice_port_tx_bytes_total", "sluice_port_rx_missed_total",
        "sluice_port_rx_errors_total", "sluice_port_tx_errors_total", "sluice_port_rx_nombuf_total",
        "sluice_port_link_up", "sluice_port_link_speed_mbps", "sluice_port_xstat_total", "sluice_lcore_polls_total",
        "sluice_lcore_busy_polls_total", "sluice_lcore_idle_polls_total", "sluice_lcore_rx_packets_total",
        "sluice_lcore_tx_packets_total", "sluice_lcore_busy_cycles_total", "sluice_stage_packets_in_total",
        "sluice_stage_packets_out_total", "sluice_stage_drops_total", "sluice_stage_events_total",
        "sluice_drops_total", "sluice_mempool_size", "sluice_mempool_in_use", "sluice_mempool_free"})
    EXPECT_TRUE(types.count(family)) << "missing family " << family;
  EXPECT_EQ(types["sluice_uptime_seconds"], "gauge");
  EXPECT_EQ(types["sluice_port_link_up"], "gauge");
  EXPECT_EQ(types["sluice_mempool_free"], "gauge");
  EXPECT_EQ(types["sluice_drops_total"], "counter");
}

// The "services" part of /stats, shaped like LoadBalancer::services_json().
TEST(RenderPrometheusTest, ServicesGiveLbFamiliesPerServiceAndBackend) {
  nlohmann::json stats = snapshot();
  stats["services"] = nlohmann::json::parse(R"([
    {"name": "web", "vip": "192.0.2.10", "protocol": "tcp", "port": 80, "mode": "dnat", "scheduler": "maglev",
     "health": "tcp", "connections": 40, "no_backend": 2, "removed_backend_drops": 0, "picked_up": 1,
     "table_size": 13, "active_connections": 7,
     "backends": [
       {"id": "a\"1", "name": "a\"1", "address": "10.0.0.1", "port": 80, "weight": 3, "state": "up",
        "active_connections": 7, "connections": 30, "packets": 300, "bytes": 45000, "maglev_entries": 10,
        "maglev_share": 0.77,
        "probe": {"probes": 9, "good": 6, "failed": 1, "timeouts": 1, "went_up": 1, "went_down": 1,
                  "last_result": "good", "last_transition_seconds_ago": 4.5}},
       {"id": "10.0.0.2:80", "address": "10.0.0.2", "port": 80, "weight": 1, "state": "down",
        "active_connections": 0, "connections": 10, "packets": 20, "bytes": 1200}]}])");
  const std::string text = render_prometheus(stats);
  const std::string a = "service=\"web\",backend=\"a\\\"1\"";  // the backend id, escaped
  const std::string b = "service=\"web\",backend=\"10.0.0.2:80\"";
  EXPECT_THAT(text, HasSubstr("\nsluice_lb_service_connections_total{service=\"web\"} 40\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_lb_service_no_backend_total{service=\"web\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_lb_backend_up{" + a + "} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_lb_backend_up{" + b + "} 0\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_lb_backend_weight{" + a + "} 3\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_lb_backend_active_connections{" + a + "} 7\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_lb_backend_connections_total{" + b + "} 10\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_lb_backend_packets_total{" + a + "} 300\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_lb_backend_bytes_total{" + b + "} 1200\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_lb_backend_probes_total{" + a + ",result=\"good\"} 6\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_lb_backend_probes_total{" + a + ",result=\"failed\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_lb_backend_probes_total{" + a + ",result=\"timeout\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_lb_backend_transitions_total{" + a + ",to=\"up\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nsluice_lb_backend_transitions_total{" + a + ",to=\"down\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("sluice_lb_backend_probes_total{" + b))) << "no health check, no probe samples";
  for (const char* counter : {"sluice_lb_service_connections_total", "sluice_lb_service_no_backend_total",
                              "sluice_lb_backend_connections_total", "sluice_lb_backend_packets_total",
                              "sluice_lb_backend_bytes_total", "sluice_lb_backend_probes_total",
                              "sluice_lb_backend_transitions_total"})
    EXPECT_THAT(text, HasSubstr(std::string("\n# TYPE ") + counter + " counter\n"));
  for (const char* gauge : {"sluice_lb_backend_up", "sluice_lb_backend_weight", "sluice_lb_backend_active_connections"})
    EXPECT_THAT(text, HasSubstr(std::string("\n# TYPE ") + gauge + " gauge\n"));
  EXPECT_THAT(render_prometheus(snapshot()), Not(HasSubstr("sluice_lb_"))) << "no services, no lb families";
}

TEST(RenderPrometheusTest, EmptySnapshotStillDeclaresFamilies) {
  nlohmann::json empty = {{"uptime_seconds", 0.0}, {"ports", nlohmann::json::array()},
                          {"lcores", nlohmann::json::array()}, {"stages", nlohmann::json::array()},
                          {"drops", nlohmann::json::object()}, {"drops_total", 0},
                          {"mempools", nlohmann::json::array()}};
  std::string text = render_prometheus(empty);
  EXPECT_THAT(text, HasSubstr("# TYPE sluice_port_rx_packets_total counter\n"));
  EXPECT_THAT(text, Not(HasSubstr("sluice_port_rx_packets_total{")));
  EXPECT_EQ(text.back(), '\n');
}

}  // namespace
}  // namespace sluice::control
