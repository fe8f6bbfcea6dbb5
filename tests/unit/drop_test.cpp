// lib/stats: the Drop table is the one place reasons are named, so names must be
// unique, non-empty and usable as Prometheus label values; counters must add up.
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "stats/counter.h"
#include "stats/drop.h"

namespace sluice {
namespace {

TEST(DropTest, EveryReasonHasAUniqueNonEmptyName) {
  std::set<std::string_view> names;
  for (size_t i = 0; i < kDropCount; ++i) {
    Drop reason = static_cast<Drop>(i);
    std::string_view name = drop_name(reason);
    EXPECT_FALSE(name.empty()) << "reason " << i;
    EXPECT_TRUE(names.insert(name).second) << "duplicate name " << name;
    EXPECT_FALSE(drop_description(reason).empty()) << name;
  }
  EXPECT_EQ(names.size(), kDropCount);
}

TEST(DropTest, NamesAreSnakeCase) {
  for (const auto& info : kDropInfo) {
    for (char c : info.name) EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') << info.name;
    EXPECT_TRUE(info.name.front() >= 'a' && info.name.front() <= 'z') << info.name;
    EXPECT_NE(info.name.back(), '_') << info.name;
  }
}

TEST(DropTest, NameRoundTrips) {
  for (size_t i = 0; i < kDropCount; ++i) {
    Drop reason = static_cast<Drop>(i);
    auto back = drop_from_name(drop_name(reason));
    ASSERT_TRUE(back.has_value()) << drop_name(reason);
    EXPECT_EQ(*back, reason);
  }
}

TEST(DropTest, UnknownNamesAreNotFound) {
  EXPECT_EQ(drop_from_name(""), std::nullopt);
  EXPECT_EQ(drop_from_name("tx_queue_ful"), std::nullopt);
  EXPECT_EQ(drop_from_name("TX_QUEUE_FULL"), std::nullopt);
}

TEST(DropTest, KnownNamesMatchTheContract) {
  EXPECT_EQ(drop_name(Drop::TruncatedEthernet), "truncated_ethernet");
  EXPECT_EQ(drop_name(Drop::HeadersNotContiguous), "headers_not_contiguous");
  EXPECT_EQ(drop_name(Drop::NoOutputPort), "no_output_port");
  EXPECT_EQ(drop_name(Drop::TxQueueFull), "tx_queue_full");
  EXPECT_EQ(drop_name(Drop::NotForUs), "not_for_us");
  EXPECT_EQ(drop_name(Drop::TtlExceeded), "ttl_exceeded");
  EXPECT_EQ(drop_name(Drop::NoNeighbour), "no_neighbour");
  EXPECT_EQ(drop_name(Drop::BadNeighbourPacket), "bad_neighbour_packet");
  EXPECT_EQ(drop_name(Drop::Shutdown), "shutdown");
  EXPECT_EQ(drop_name(Drop::FlowTableFull), "flow_table_full");
  EXPECT_EQ(drop_name(Drop::TcpOutOfWindow), "tcp_out_of_window");
  EXPECT_EQ(drop_name(Drop::FirewallReject), "firewall_reject");
  EXPECT_EQ(drop_name(Drop::HandoffRingFull), "handoff_ring_full");
  EXPECT_EQ(drop_name(Drop::NatNoPort), "nat_no_port");
  EXPECT_EQ(drop_name(Drop::NatTableFull), "nat_table_full");
  EXPECT_EQ(drop_name(Drop::FragmentOverlap), "fragment_overlap");
  EXPECT_EQ(drop_name(Drop::ReassemblyTimeout), "reassembly_timeout");
  EXPECT_EQ(drop_name(Drop::LbNoBackend), "lb_no_backend");
  EXPECT_EQ(drop_name(Drop::LbBackendRemoved), "lb_backend_removed");
  EXPECT_EQ(drop_name(Drop::LbTunnelFailed), "lb_tunnel_failed");
  EXPECT_EQ(drop_name(Drop::LbIpv6Fragment), "lb_ipv6_fragment");
  EXPECT_EQ(static_cast<size_t>(Drop::LbIpv6Fragment), kDropCount - 1) << "LbIpv6Fragment is the last entry";
}

TEST(CounterTest, AddsIncrementsAndResets) {
  Counter c;
  EXPECT_EQ(c.get(), 0u);
  c.inc();
  c.add(41);
  EXPECT_EQ(c.get(), 42u);
  c.add(0);
  EXPECT_EQ(c.get(), 42u);
  c.reset();
  EXPECT_EQ(c.get(), 0u);
}

TEST(StageCountersTest, StartAtZero) {
  StageCounters c;
  EXPECT_EQ(c.packets_in.get(), 0u);
  EXPECT_EQ(c.packets_out.get(), 0u);
  EXPECT_EQ(c.drops_total(), 0u);
  for (const auto& d : c.drops) EXPECT_EQ(d.get(), 0u);
}

TEST(StageCountersTest, DropsCountPerReasonAndInTotal) {
  StageCounters c;
  c.drop(Drop::TruncatedIpv4);
  c.drop(Drop::TruncatedIpv4);
  c.drop(Drop::TxQueueFull, 5);
  EXPECT_EQ(c.drops[static_cast<size_t>(Drop::TruncatedIpv4)].get(), 2u);
  EXPECT_EQ(c.drops[static_cast<size_t>(Drop::TxQueueFull)].get(), 5u);
  EXPECT_EQ(c.drops[static_cast<size_t>(Drop::BadArp)].get(), 0u);
  EXPECT_EQ(c.drops_total(), 7u);
}

TEST(StageCountersTest, AreCacheLineAligned) {
  EXPECT_EQ(alignof(StageCounters), 64u);
  EXPECT_EQ(alignof(WorkerCounters), 64u);
  EXPECT_EQ(sizeof(StageCounters) % 64, 0u);
}

}  // namespace
}  // namespace sluice
