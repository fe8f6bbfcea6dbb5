// A Worker on lcore 1 between two ring ports, and a whole Runtime on net_null vdevs:
// packets cross, counters add up, and every mbuf comes back.
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rte_bus_vdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include "config/config.h"
#include "control/metrics.h"
#include "control/stats.h"
#include "net/headers.h"
#include "pipeline/pipeline.h"
#include "runtime/runtime.h"
#include "runtime/worker.h"
#include "test_support.h"

namespace sluice::runtime {
namespace {

using test::Frame;
using test::RingPort;

constexpr unsigned kWorkerLcore = 1;

// Polls `done` until it holds or 10 s pass.
bool wait_for(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

config::PortConfig port_config(const std::string& name, const std::string& peer) {
  config::PortConfig port;
  port.name = name;
  port.device = "net_ring_" + name;
  port.pipeline = {{"parse", ""}, {"xconnect", peer}};
  return port;
}

class WorkerTest : public test::MbufTest {
 protected:
  void SetUp() override {
    test::MbufTest::SetUp();
    ASSERT_TRUE(rte_lcore_is_enabled(kWorkerLcore));
    ASSERT_EQ(rte_eal_get_lcore_state(kWorkerLcore), WAIT) << "lcore 1 is busy: a previous test did not stop it";
  }

  // West and east cross-connected, both polled by one worker.
  void build(Worker& worker, RingPort& west, RingPort& east) {
    std::map<std::string, uint16_t> ids = {{"west", west.port_id()}, {"east", east.port_id()}};
    worker.add_tx_queue(west.port_id(), 0);
    worker.add_tx_queue(east.port_id(), 0);
    worker.add_rx_queue(west.port_id(), 0,
                        pipeline::build_pipeline(port_config("west", "east"), ids, &worker.tx_by_port()));
    worker.add_rx_queue(east.port_id(), 0,
                        pipeline::build_pipeline(port_config("east", "west"), ids, &worker.tx_by_port()));
  }

  std::vector<rte_mbuf*> make_frames(unsigned n, bool good) {
    std::vector<rte_mbuf*> pkts;
    for (unsigned i = 0; i < n; ++i) {
      pkts.push_back(good ? make_mbuf(Frame().eth(net::kEtherTypeIpv4).ipv4(net::kIpProtoTcp).tcp().build())
                          : make_mbuf(Frame().eth(net::kEtherTypeIpv6).truncate(20).raw()));
    }
    return pkts;
  }

  static void launch(Worker& worker) {
    ASSERT_EQ(rte_eal_remote_launch(Worker::launch, &worker, worker.lcore_id()), 0);
  }
  static void stop(Worker& worker) {
    worker.stop();
    EXPECT_EQ(rte_eal_wait_lcore(worker.lcore_id()), 0);
  }
};

TEST_F(WorkerTest, ForwardsBothWaysAndCountsTheRounds) {
  RingPort west(pool_), east(pool_);
  ASSERT_TRUE(west.ok() && east.ok());
  Worker worker(kWorkerLcore, 32);
  build(worker, west, east);
  EXPECT_EQ(worker.lcore_id(), kWorkerLcore);
  EXPECT_EQ(worker.pipelines().size(), 2u);
  EXPECT_EQ(worker.tx_queues().size(), 2u);
  EXPECT_EQ(worker.tx_by_port()[east.port_id()], worker.tx_queues()[1].get());

  std::vector<rte_mbuf*> to_east = make_frames(100, true);
  std::vector<rte_mbuf*> bad = make_frames(7, false);
  std::vector<rte_mbuf*> to_west = make_frames(40, true);
  ASSERT_EQ(west.inject(to_east.data(), 100), 100u);
  ASSERT_EQ(west.inject(bad.data(), 7), 7u);
  ASSERT_EQ(east.inject(to_west.data(), 40), 40u);

  launch(worker);
  bool arrived = wait_for([&] { return east.sent_count() == 100 && west.sent_count() == 40; });
  // Let it spin idle for a while, too.
  wait_for([&] { return worker.counters().idle_polls.get() > 100; });
  stop(worker);
  ASSERT_TRUE(arrived) << "east sent " << east.sent_count() << ", west sent " << west.sent_count();

  std::vector<rte_mbuf*> sent_east = east.take_sent();
  std::vector<rte_mbuf*> sent_west = west.take_sent();
  EXPECT_EQ(sent_east, to_east) << "in order";
  EXPECT_EQ(sent_west, to_west);

  const WorkerCounters& c = worker.counters();
  EXPECT_EQ(c.rx_packets.get(), 147u);
  EXPECT_GE(c.busy_polls.get(), 1u);
  EXPECT_LE(c.busy_polls.get(), 147u);
  EXPECT_GT(c.idle_polls.get(), 100u);
  EXPECT_EQ(c.polls.get(), c.busy_polls.get() + c.idle_polls.get());
  EXPECT_GT(c.busy_cycles.get(), 0u);

  const auto& west_stages = worker.pipelines()[0]->stages();
  EXPECT_EQ(worker.pipelines()[0]->port_name(), "west");
  EXPECT_EQ(west_stages[0]->counters().packets_in.get(), 107u);
  EXPECT_EQ(west_stages[0]->counters().packets_out.get(), 100u);
  EXPECT_EQ(west_stages[0]->counters().drops[static_cast<size_t>(Drop::TruncatedIpv6)].get(), 7u);
  EXPECT_EQ(worker.tx_queues()[1]->counters().packets_out.get(), 100u) << "tx on east";
  EXPECT_EQ(worker.tx_queues()[0]->counters().packets_out.get(), 40u) << "tx on west";
  test::free_all(sent_east);
  test::free_all(sent_west);
}

TEST_F(WorkerTest, IdleWorkerOnlyCountsIdleRounds) {
  RingPort west(pool_), east(pool_);
  ASSERT_TRUE(west.ok() && east.ok());
  Worker worker(kWorkerLcore, 32);
  build(worker, west, east);
  launch(worker);
  bool spun = wait_for([&] { return worker.counters().polls.get() >= 1000; });
  stop(worker);
  EXPECT_TRUE(spun);
  const WorkerCounters& c = worker.counters();
  EXPECT_EQ(c.busy_polls.get(), 0u);
  EXPECT_EQ(c.rx_packets.get(), 0u);
  EXPECT_EQ(c.busy_cycles.get(), 0u);
  EXPECT_EQ(c.idle_polls.get(), c.polls.get());
}

TEST_F(WorkerTest, BurstSizeBoundsEachReceive) {
  RingPort west(pool_), east(pool_);
  ASSERT_TRUE(west.ok() && east.ok());
  Worker worker(kWorkerLcore, 4);
  build(worker, west, east);
  std::vector<rte_mbuf*> pkts = make_frames(40, true);
  ASSERT_EQ(west.inject(pkts.data(), 40), 40u);
  launch(worker);
  bool arrived = wait_for([&] { return east.sent_count() == 40; });
  stop(worker);
  EXPECT_TRUE(arrived);
  EXPECT_GE(worker.counters().busy_polls.get(), 10u) << "4 packets a round at most";
  std::vector<rte_mbuf*> sent = east.take_sent();
  test::free_all(sent);
}

// ---- The whole runtime on two net_null ports (they invent packets and swallow them) ----

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(rte_eal_get_lcore_state(kWorkerLcore), WAIT);
    ASSERT_EQ(rte_vdev_init("net_null0", ""), 0);
    ASSERT_EQ(rte_vdev_init("net_null1", ""), 0);
  }
  void TearDown() override {
    rte_vdev_uninit("net_null0");
    rte_vdev_uninit("net_null1");
  }
};

TEST_F(RuntimeTest, RunsAPipelineAndGivesEveryMbufBack) {
  config::ParseResult parsed = config::parse_config_text(R"({
      "eal": {"lcores": "0-1"},
      "ports": [
        {"name": "west", "device": "net_null0", "rx_descriptors": 256, "tx_descriptors": 256,
         "pipeline": ["parse", {"stage": "xconnect", "peer": "east"}]},
        {"name": "east", "device": "net_null1", "rx_descriptors": 256, "tx_descriptors": 256,
         "pipeline": ["parse", {"stage": "xconnect", "peer": "west"}]}],
      "mempool": {"mbufs": 4095, "cache_size": 64}})",
                                                         "runtime.json");
  ASSERT_TRUE(parsed.ok()) << ::testing::PrintToString(parsed.errors);
  const config::Config& cfg = *parsed.config;

  Runtime runtime(cfg);
  std::string error;
  ASSERT_TRUE(runtime.setup(error)) << error;
  ASSERT_EQ(runtime.ports().size(), 2u);
  ASSERT_EQ(runtime.workers().size(), 1u);
  ASSERT_EQ(runtime.mempools().size(), 1u);
  EXPECT_EQ(runtime.mempools()[0].size, 4095u);
  EXPECT_TRUE(runtime.ports()[0]->started);

  runtime.launch();
  const Worker& worker = *runtime.workers()[0];
  bool busy = wait_for([&] { return worker.counters().rx_packets.get() >= 10000; });
  runtime.stop_workers();
  EXPECT_TRUE(busy);

  nlohmann::json stats = control::collect_stats(runtime);
  uint64_t rx = 0, tx = 0;
  for (const auto& port : stats["ports"]) {
    rx += port["rx_packets"].get<uint64_t>();
    tx += port["tx_packets"].get<uint64_t>();
  }
  EXPECT_GT(rx, 0u);
  EXPECT_EQ(rx, tx + stats["drops_total"].get<uint64_t>()) << "conservation: " << stats.dump();
  EXPECT_EQ(stats["lcores"][0]["lcore"], kWorkerLcore);
  EXPECT_EQ(stats["lcores"][0]["rx_packets"].get<uint64_t>(), rx);
  for (const auto& row : stats["stages"]) {
    EXPECT_EQ(row["packets_in"].get<uint64_t>(), row["packets_out"].get<uint64_t>() + row["drops_total"].get<uint64_t>())
        << row.dump();
  }
  EXPECT_EQ(stats["drops"].size(), kDropCount) << "every reason, zeros included";
  EXPECT_EQ(stats["mempools"][0]["name"], "sluice_mbuf_s0");

  std::string text = control::render_prometheus(stats);
  EXPECT_NE(text.find("sluice_port_rx_packets_total{port=\"west\"} "), std::string::npos);
  EXPECT_NE(text.find("sluice_stage_packets_in_total{port=\"east\",stage=\"parse\"} "), std::string::npos);

  EXPECT_TRUE(runtime.shutdown()) << "mbufs leaked";
  rte_mempool* pool = runtime.mempools()[0].pool;
  EXPECT_EQ(rte_mempool_avail_count(pool), 4095u);
  rte_mempool_free(pool);  // this Runtime did not initialise EAL, so it leaves the pool to us
}

TEST_F(RuntimeTest, SetupRefusesAWorkerOnTheMainLcore) {
  config::Config cfg;
  cfg.eal.lcores = {0, 1};
  cfg.workers = {config::WorkerConfig{0, {}}};
  Runtime runtime(cfg);
  std::string error;
  EXPECT_FALSE(runtime.setup(error));
  EXPECT_EQ(error, "workers: lcore 0 is EAL's main lcore (the control thread); check -- overrides");
}

TEST_F(RuntimeTest, SetupRefusesAnLcoreEalDoesNotHave) {
  config::Config cfg;
  cfg.workers = {config::WorkerConfig{5, {}}};
  Runtime runtime(cfg);
  std::string error;
  EXPECT_FALSE(runtime.setup(error));
  EXPECT_EQ(error, "workers: lcore 5 is not enabled in EAL");
}

TEST_F(RuntimeTest, SetupReportsADeviceThatWasNotProbed) {
  config::ParseResult parsed = config::parse_config_text(R"({
      "eal": {"lcores": "0-1"},
      "ports": [
        {"name": "west", "device": "net_null7", "pipeline": [{"stage": "xconnect", "peer": "east"}]},
        {"name": "east", "device": "net_null1", "pipeline": [{"stage": "xconnect", "peer": "west"}]}],
      "mempool": {"mbufs": 1024, "cache_size": 0}})",
                                                         "runtime.json");
  ASSERT_TRUE(parsed.ok());
  Runtime runtime(*parsed.config);
  std::string error;
  EXPECT_FALSE(runtime.setup(error));
  EXPECT_EQ(error, "port west: device 'net_null7' was not probed by DPDK: check its devargs and the log above");
  ASSERT_EQ(runtime.mempools().size(), 1u);
  rte_mempool_free(runtime.mempools()[0].pool);
}

// The link of a kernel-backed port, read from /sys/class/net/IF/{flags,operstate}.
TEST(KernelLinkTest, UpOnlyWhenAdministrativelyUpAndRunning) {
  using runtime::kernel_link_up;
  EXPECT_EQ(kernel_link_up("0x1003\n", "up\n"), true);
  EXPECT_EQ(kernel_link_up("0x1003\n", "unknown\n"), true) << "tun/tap say unknown when running";
  EXPECT_EQ(kernel_link_up("0x1003\n", "lowerlayerdown\n"), false) << "veth whose peer is down";
  EXPECT_EQ(kernel_link_up("0x1003\n", "down\n"), false) << "no carrier";
  EXPECT_EQ(kernel_link_up("0x1002\n", "up\n"), false) << "IFF_UP clear: set down";
  EXPECT_EQ(kernel_link_up("0x1002\n", "down\n"), false);
  EXPECT_EQ(kernel_link_up("", "up\n"), std::nullopt);
  EXPECT_EQ(kernel_link_up("0x1003", ""), std::nullopt);
  EXPECT_EQ(kernel_link_up("4099", "up"), std::nullopt) << "flags are written in hex";
  EXPECT_EQ(kernel_link_up("0xzz", "up"), std::nullopt);
}

TEST(HealthTest, DegradedNamesTheDownPorts) {
  EXPECT_EQ(control::health_verdict({}), (nlohmann::json{{"status", "ok"}}));
  EXPECT_EQ(control::health_verdict({"east"}),
            (nlohmann::json{{"status", "degraded"}, {"ports_down", {"east"}}}));
  EXPECT_EQ(control::health_verdict({"east", "north"})["ports_down"].size(), 2u);
}

}  // namespace
}  // namespace sluice::runtime
