// xconnect, output and the TX queues on ring-backed ethdevs: packets leave on the
// peer port, in order, and every one that cannot leave is counted and freed.
#include <atomic>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "net/headers.h"
#include "pipeline/output.h"
#include "pipeline/packet_meta.h"
#include "pipeline/parse.h"
#include "pipeline/pipeline.h"
#include "pipeline/xconnect.h"
#include "test_support.h"

namespace sluice::pipeline {
namespace {

using test::Frame;
using test::RingPort;

std::vector<uint8_t> good_frame(uint8_t tag) {
  return Frame().eth(net::kEtherTypeIpv4).ipv4(net::kIpProtoUdp).udp().u8(tag).build();
}

config::PortConfig west_config() {
  config::PortConfig port;
  port.name = "west";
  port.device = "net_ring0";
  port.pipeline = {{"parse", ""}, {"xconnect", "east"}};
  return port;
}

class OutputTest : public test::MbufTest {
 protected:
  void SetUp() override {
    test::MbufTest::SetUp();
    queues_.fill(nullptr);
  }

  std::vector<rte_mbuf*> make_burst(unsigned n) {
    std::vector<rte_mbuf*> pkts;
    for (unsigned i = 0; i < n; ++i) pkts.push_back(make_mbuf(good_frame(uint8_t(i))));
    return pkts;
  }
  static void fill(Burst& burst, const std::vector<rte_mbuf*>& pkts) {
    burst.count = 0;
    burst.discarded = 0;
    for (rte_mbuf* m : pkts) burst.pkts[burst.count++] = m;
  }
  static uint64_t drops(const Stage& stage, Drop reason) {
    return stage.counters().drops[static_cast<size_t>(reason)].get();
  }

  TxQueues queues_;
};

TEST_F(OutputTest, XconnectChoosesThePeerForEveryPacket) {
  XconnectStage xconnect(7);
  EXPECT_EQ(xconnect.name(), "xconnect");
  std::vector<rte_mbuf*> pkts = make_burst(5);
  for (rte_mbuf* m : pkts) meta(m).out_port = kNoPort;
  Burst burst;
  fill(burst, pkts);
  xconnect.process(burst);
  EXPECT_EQ(burst.count, 5);
  EXPECT_EQ(burst.discarded, 0);
  for (uint16_t i = 0; i < burst.count; ++i) {
    EXPECT_EQ(burst.pkts[i], pkts[i]) << "order kept";
    EXPECT_EQ(meta(burst.pkts[i]).out_port, 7);
  }
  test::free_all(pkts);
}

TEST_F(OutputTest, PipelineSendsToThePeerPortInOrder) {
  RingPort west(pool_), east(pool_);
  ASSERT_TRUE(west.ok() && east.ok());
  TxQueue east_tx(east.port_id(), 0);
  queues_[east.port_id()] = &east_tx;
  auto pipeline = build_pipeline(west_config(), {{"west", west.port_id()}, {"east", east.port_id()}}, &queues_);
  ASSERT_EQ(pipeline->stages().size(), 3u);
  EXPECT_EQ(pipeline->port_name(), "west");
  EXPECT_EQ(pipeline->stages()[0]->name(), "parse");
  EXPECT_EQ(pipeline->stages()[1]->name(), "xconnect");
  EXPECT_EQ(pipeline->stages()[2]->name(), "output");

  std::vector<rte_mbuf*> pkts = make_burst(20);
  Burst burst;
  fill(burst, pkts);
  pipeline->run(burst);
  EXPECT_EQ(burst.count, 0) << "every packet now belongs to a TX queue";
  EXPECT_EQ(burst.discarded, 0);
  EXPECT_EQ(east_tx.pending(), 20);
  EXPECT_EQ(east.sent_count(), 0u) << "nothing leaves before the flush";

  east_tx.flush();
  EXPECT_EQ(east_tx.pending(), 0);
  std::vector<rte_mbuf*> sent = east.take_sent();
  EXPECT_EQ(sent, pkts) << "same mbufs, same order";
  EXPECT_EQ(west.sent_count(), 0u);
  for (const auto& stage : pipeline->stages()) {
    EXPECT_EQ(stage->counters().packets_in.get(), 20u) << stage->name();
    EXPECT_EQ(stage->counters().packets_out.get(), 20u) << stage->name();
    EXPECT_EQ(stage->counters().drops_total(), 0u) << stage->name();
  }
  EXPECT_EQ(east_tx.name(), "tx");
  EXPECT_EQ(east_tx.port_id(), east.port_id());
  EXPECT_EQ(east_tx.counters().packets_in.get(), 20u);
  EXPECT_EQ(east_tx.counters().packets_out.get(), 20u);
  EXPECT_EQ(east_tx.counters().drops_total(), 0u);
  test::free_all(sent);
}

TEST_F(OutputTest, MalformedPacketsAreDroppedBeforeOutput) {
  RingPort west(pool_), east(pool_);
  ASSERT_TRUE(west.ok() && east.ok());
  TxQueue east_tx(east.port_id(), 0);
  queues_[east.port_id()] = &east_tx;
  auto pipeline = build_pipeline(west_config(), {{"west", west.port_id()}, {"east", east.port_id()}}, &queues_);

  std::vector<rte_mbuf*> pkts = {make_mbuf(good_frame(1)), make_mbuf(Frame().eth(net::kEtherTypeIpv4).raw()),
                                 make_mbuf(good_frame(2))};
  Burst burst;
  fill(burst, pkts);
  pipeline->run(burst);
  EXPECT_EQ(burst.discarded, 1);
  EXPECT_EQ(burst.discards[0], pkts[1]);
  burst.free_discards();
  east_tx.flush();
  std::vector<rte_mbuf*> sent = east.take_sent();
  EXPECT_EQ(sent, (std::vector<rte_mbuf*>{pkts[0], pkts[2]}));
  const auto& stages = pipeline->stages();
  EXPECT_EQ(stages[0]->counters().packets_in.get(), 3u);
  EXPECT_EQ(stages[0]->counters().packets_out.get(), 2u);
  EXPECT_EQ(drops(*stages[0], Drop::TruncatedIpv4), 1u);
  EXPECT_EQ(stages[1]->counters().packets_in.get(), 2u);
  EXPECT_EQ(stages[2]->counters().packets_out.get(), 2u);
  test::free_all(sent);
}

TEST_F(OutputTest, NoOutputPortIsDroppedAndFreed) {
  std::vector<rte_mbuf*> pkts = make_burst(3);
  for (rte_mbuf* m : pkts) meta(m).out_port = kNoPort;
  std::vector<std::unique_ptr<Stage>> stages;
  stages.push_back(std::make_unique<OutputStage>(&queues_));
  Pipeline pipeline("west", std::move(stages));
  Burst burst;
  fill(burst, pkts);
  pipeline.run(burst);
  EXPECT_EQ(burst.count, 0);
  EXPECT_EQ(burst.discarded, 3);
  const Stage& stage = *pipeline.stages()[0];
  EXPECT_EQ(drops(stage, Drop::NoOutputPort), 3u);
  EXPECT_EQ(stage.counters().packets_in.get(), 3u);
  EXPECT_EQ(stage.counters().packets_out.get(), 0u);
  burst.free_discards();
  EXPECT_EQ(burst.discarded, 0);
}

TEST_F(OutputTest, PortWithoutATxQueueHereIsOutputPortDown) {
  RingPort east(pool_);
  ASSERT_TRUE(east.ok());
  OutputStage output(&queues_);  // no TX queue for east on this worker
  std::vector<rte_mbuf*> pkts = make_burst(2);
  for (rte_mbuf* m : pkts) meta(m).out_port = east.port_id();
  Burst burst;
  fill(burst, pkts);
  output.process(burst);
  EXPECT_EQ(burst.discarded, 2);
  EXPECT_EQ(drops(output, Drop::OutputPortDown), 2u);
  burst.free_discards();
  EXPECT_EQ(east.sent_count(), 0u);
}

TEST_F(OutputTest, FullTxQueueCountsAndFreesWhatItCannotSend) {
  RingPort east(pool_, 1024, 3);  // the PMD's ring holds 3 packets
  ASSERT_TRUE(east.ok());
  TxQueue tx(east.port_id(), 0);
  std::vector<rte_mbuf*> pkts = make_burst(8);
  Burst burst;
  fill(burst, pkts);
  tx.process(burst);
  EXPECT_EQ(burst.count, 0);
  EXPECT_EQ(tx.pending(), 0);
  EXPECT_EQ(tx.counters().packets_in.get(), 8u);
  EXPECT_EQ(tx.counters().packets_out.get(), 3u);
  EXPECT_EQ(drops(tx, Drop::TxQueueFull), 5u);
  EXPECT_EQ(tx.counters().drops_total(), 5u);
  EXPECT_EQ(in_use(), 3u) << "the 5 refused mbufs are back in the pool";
  std::vector<rte_mbuf*> sent = east.take_sent();
  EXPECT_EQ(sent, (std::vector<rte_mbuf*>{pkts[0], pkts[1], pkts[2]}));
  test::free_all(sent);

  // Exactly the ring's size fits; one more does not.
  std::vector<rte_mbuf*> more = make_burst(3);
  fill(burst, more);
  tx.process(burst);
  sent = east.take_sent();
  EXPECT_EQ(sent.size(), 3u);
  test::free_all(sent);
  for (int i = 0; i < 3; ++i) tx.push(make_mbuf(good_frame(9)));
  tx.push(make_mbuf(good_frame(9)));
  tx.flush();
  EXPECT_EQ(drops(tx, Drop::TxQueueFull), 6u);
  EXPECT_EQ(tx.counters().packets_out.get(), 9u);
  sent = east.take_sent();
  test::free_all(sent);
}

// While the control thread says the port's link is down, the queue gives the PMD
// nothing: every packet is counted as link_down and freed; when the link comes back
// the next flush sends again.
TEST_F(OutputTest, DownLinkDropsAsLinkDownAndUpSendsAgain) {
  RingPort east(pool_);
  ASSERT_TRUE(east.ok());
  std::atomic<bool> link_up{false};
  TxQueue tx(east.port_id(), 0, &link_up);
  std::vector<rte_mbuf*> pkts = make_burst(5);
  Burst burst;
  fill(burst, pkts);
  tx.process(burst);
  EXPECT_EQ(tx.pending(), 0);
  EXPECT_EQ(tx.counters().packets_in.get(), 5u);
  EXPECT_EQ(tx.counters().packets_out.get(), 0u);
  EXPECT_EQ(drops(tx, Drop::LinkDown), 5u);
  EXPECT_EQ(drops(tx, Drop::TxQueueFull), 0u);
  EXPECT_EQ(in_use(), 0u) << "every packet for the down port is back in the pool";
  EXPECT_TRUE(east.take_sent().empty());

  link_up.store(true);
  std::vector<rte_mbuf*> more = make_burst(3);
  fill(burst, more);
  tx.process(burst);
  std::vector<rte_mbuf*> sent = east.take_sent();
  EXPECT_EQ(sent, more);
  EXPECT_EQ(drops(tx, Drop::LinkDown), 5u);
  test::free_all(sent);
}

TEST_F(OutputTest, TxBufferFlushesItselfWhenFull) {
  RingPort east(pool_);
  ASSERT_TRUE(east.ok());
  TxQueue tx(east.port_id(), 0);
  for (unsigned i = 0; i < kTxBufferSize; ++i) tx.push(make_mbuf(good_frame(uint8_t(i))));
  EXPECT_EQ(tx.pending(), kTxBufferSize);
  EXPECT_EQ(east.sent_count(), 0u);
  tx.push(make_mbuf(good_frame(0)));
  EXPECT_EQ(east.sent_count(), kTxBufferSize) << "the full buffer went out before the new packet";
  EXPECT_EQ(tx.pending(), 1);
  tx.flush();
  EXPECT_EQ(east.sent_count(), kTxBufferSize + 1u);
  EXPECT_EQ(tx.counters().packets_out.get(), kTxBufferSize + 1u);
  tx.flush();  // nothing pending: no TX call, no counting
  EXPECT_EQ(tx.counters().packets_in.get(), kTxBufferSize + 1u);
  std::vector<rte_mbuf*> sent = east.take_sent();
  test::free_all(sent);
}

TEST_F(OutputTest, BuildPipelineRejectsAnUnknownStage) {
  config::PortConfig port = west_config();
  port.pipeline = {{"route", ""}};
  EXPECT_THROW(build_pipeline(port, {{"west", 0}, {"east", 1}}, &queues_), std::logic_error);
}

TEST_F(OutputTest, PipelineStopsWhenNothingIsLeft) {
  RingPort east(pool_);
  ASSERT_TRUE(east.ok());
  TxQueue east_tx(east.port_id(), 0);
  queues_[east.port_id()] = &east_tx;
  auto pipeline = build_pipeline(west_config(), {{"west", 0}, {"east", east.port_id()}}, &queues_);
  std::vector<rte_mbuf*> pkts = {make_mbuf(Frame().eth(net::kEtherTypeArp).raw())};
  Burst burst;
  fill(burst, pkts);
  pipeline->run(burst);
  burst.free_discards();
  EXPECT_EQ(pipeline->stages()[0]->counters().packets_in.get(), 1u);
  EXPECT_EQ(pipeline->stages()[1]->counters().packets_in.get(), 0u) << "an empty burst skips later stages";
  EXPECT_EQ(pipeline->stages()[2]->counters().packets_in.get(), 0u);
}

}  // namespace
}  // namespace sluice::pipeline
