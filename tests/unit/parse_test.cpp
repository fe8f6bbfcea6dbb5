// The parse stage on crafted frames in real mbufs: what it records for good packets,
// and the exact reason it drops each malformed one.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "net/headers.h"
#include "pipeline/packet_meta.h"
#include "pipeline/parse.h"
#include "pipeline/pipeline.h"
#include "test_support.h"

namespace sluice::pipeline {
namespace {

using test::Frame;
using namespace sluice::net;

constexpr uint16_t kEth = 14;
constexpr uint16_t kIpv4 = 20;
constexpr uint16_t kIpv6 = 40;

// Frames that most cases start from.
Frame ipv4_tcp() { return Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoTcp).tcp().payload(10); }
Frame ipv4_udp() { return Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoUdp).udp().payload(10); }
Frame ipv4_icmp() { return Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoIcmp).icmp().payload(8); }
Frame ipv6_tcp() { return Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoTcp).tcp().payload(10); }

// A pipeline of parse alone, so packets_in/out are counted as the worker counts them.
class ParseTest : public test::MbufTest {
 protected:
  void SetUp() override {
    test::MbufTest::SetUp();
    auto stage = std::make_unique<ParseStage>();
    parse_ = stage.get();
    std::vector<std::unique_ptr<Stage>> stages;
    stages.push_back(std::move(stage));
    pipeline_ = std::make_unique<Pipeline>("west", std::move(stages));
  }

  // Runs `pkts` as one burst; returns the packets kept (still owned by the caller) and
  // frees the discards, as the worker does.
  std::vector<rte_mbuf*> run(const std::vector<rte_mbuf*>& pkts) {
    Burst burst;
    for (rte_mbuf* m : pkts) burst.pkts[burst.count++] = m;
    pipeline_->run(burst);
    std::vector<rte_mbuf*> kept(burst.pkts, burst.pkts + burst.count);
    EXPECT_EQ(burst.count + burst.discarded, pkts.size());
    burst.free_discards();
    return kept;
  }

  // One good packet: returns its meta, checks it was counted in and out.
  PacketMeta expect_kept(rte_mbuf* m) {
    uint64_t in = counters().packets_in.get(), out = counters().packets_out.get();
    std::vector<rte_mbuf*> kept = run({m});
    EXPECT_EQ(counters().packets_in.get(), in + 1);
    EXPECT_EQ(counters().packets_out.get(), out + 1);
    EXPECT_EQ(counters().drops_total(), 0u);
    PacketMeta pm{};
    if (kept.size() == 1) pm = meta(kept[0]);
    else ADD_FAILURE() << "dropped, drops_total " << counters().drops_total();
    test::free_all(kept);
    return pm;
  }
  PacketMeta expect_kept(const std::vector<uint8_t>& bytes) { return expect_kept(make_mbuf(bytes)); }

  const StageCounters& counters() const { return parse_->counters(); }
  uint64_t drops(Drop reason) const { return counters().drops[static_cast<size_t>(reason)].get(); }
  uint64_t named(std::string_view name) const {
    NamedCounters all;
    parse_->read_counters(all);
    for (const auto& [n, v] : all)
      if (n == name) return v;
    ADD_FAILURE() << "no counter " << name;
    return 0;
  }
  // The named counters that are not zero, as "name=value" in the stage's order.
  std::string nonzero_counters() const {
    NamedCounters all;
    parse_->read_counters(all);
    std::string out;
    for (const auto& [n, v] : all) {
      if (v == 0) continue;
      if (!out.empty()) out += ' ';
      out.append(n).append("=").append(std::to_string(v));
    }
    return out;
  }

  ParseStage* parse_ = nullptr;
  std::unique_ptr<Pipeline> pipeline_;
};

TEST_F(ParseTest, NamedCountersAreTheContractsList) {
  NamedCounters all;
  parse_->read_counters(all);
  std::vector<std::string_view> names;
  for (const auto& entry : all) names.push_back(entry.first);
  EXPECT_EQ(names, (std::vector<std::string_view>{"ipv4", "ipv6", "arp", "vlan", "tcp", "udp", "icmp", "icmpv6",
                                                  "other_l3", "fragments"}));
  EXPECT_EQ(parse_->name(), "parse");
}

TEST_F(ParseTest, Ipv4Tcp) {
  Frame f = ipv4_tcp();
  PacketMeta pm = expect_kept(f.build());
  EXPECT_EQ(pm.l3, L3::Ipv4);
  EXPECT_EQ(pm.l3_offset, kEth);
  EXPECT_EQ(pm.l4_offset, kEth + kIpv4);
  EXPECT_EQ(pm.l3_length, kIpv4 + 20 + 10);
  EXPECT_EQ(pm.l4_proto, kIpProtoTcp);
  EXPECT_EQ(pm.flags, 0);
  EXPECT_EQ(pm.vlan_count, 0);
  EXPECT_EQ(pm.vlan_id, 0);
  EXPECT_EQ(pm.out_port, kNoPort);
  EXPECT_EQ(nonzero_counters(), "ipv4=1 tcp=1");
}

TEST_F(ParseTest, Ipv4TcpWithOptions) {
  PacketMeta pm = expect_kept(Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoTcp).tcp(8).build());
  EXPECT_EQ(pm.l4_offset, kEth + kIpv4);
  EXPECT_EQ(pm.l3_length, kIpv4 + 32);
}

TEST_F(ParseTest, Ipv4WithOptionsAndUdp) {
  PacketMeta pm = expect_kept(Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoUdp, 0, 6).udp().payload(4).build());
  EXPECT_EQ(pm.l3, L3::Ipv4);
  EXPECT_EQ(pm.l4_offset, kEth + 24);
  EXPECT_EQ(pm.l3_length, 24 + 8 + 4);
  EXPECT_EQ(pm.l4_proto, kIpProtoUdp);
  EXPECT_EQ(nonzero_counters(), "ipv4=1 udp=1");
}

TEST_F(ParseTest, Ipv4Udp) {
  PacketMeta pm = expect_kept(ipv4_udp().build());
  EXPECT_EQ(pm.l4_offset, kEth + kIpv4);
  EXPECT_EQ(pm.l4_proto, kIpProtoUdp);
  EXPECT_EQ(nonzero_counters(), "ipv4=1 udp=1");
}

TEST_F(ParseTest, UdpLengthShorterThanIpPayloadIsKept) {
  Frame f = ipv4_udp();
  std::vector<uint8_t> bytes = f.build();
  bytes[kEth + kIpv4 + 4] = 0;
  bytes[kEth + kIpv4 + 5] = 8;  // header only; the 10 bytes behind it are IP-level trailer
  expect_kept(make_mbuf(bytes));
  EXPECT_EQ(named("udp"), 1u);
}

TEST_F(ParseTest, Ipv4Icmp) {
  PacketMeta pm = expect_kept(ipv4_icmp().build());
  EXPECT_EQ(pm.l4_offset, kEth + kIpv4);
  EXPECT_EQ(pm.l4_proto, kIpProtoIcmp);
  EXPECT_EQ(nonzero_counters(), "ipv4=1 icmp=1");
}

TEST_F(ParseTest, Ipv4UnknownProtocolPassesWithoutL4) {
  PacketMeta pm = expect_kept(Frame().eth(kEtherTypeIpv4).ipv4(47).payload(4).build());  // GRE
  EXPECT_EQ(pm.l3, L3::Ipv4);
  EXPECT_EQ(pm.l4_offset, 0);
  EXPECT_EQ(pm.l4_proto, 47);
  EXPECT_EQ(nonzero_counters(), "ipv4=1");
}

TEST_F(ParseTest, Ipv4FirstFragmentParsesL4AndAllowsUdpLengthOfWholeDatagram) {
  Frame f = Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoUdp, 0x2000).udp().payload(16);  // MF, offset 0
  std::vector<uint8_t> bytes = f.build();
  bytes[kEth + kIpv4 + 4] = 0x05;  // UDP length 1400: the rest comes in later fragments
  bytes[kEth + kIpv4 + 5] = 0x78;
  PacketMeta pm = expect_kept(make_mbuf(bytes));
  EXPECT_EQ(pm.flags, kMetaFragment);
  EXPECT_EQ(pm.l4_offset, kEth + kIpv4);
  EXPECT_EQ(nonzero_counters(), "ipv4=1 udp=1 fragments=1");
}

TEST_F(ParseTest, Ipv4LaterFragmentHasNoL4Header) {
  // Offset 100 (800 bytes): the payload is the middle of a TCP stream, not a header.
  PacketMeta pm = expect_kept(Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoTcp, 100).payload(3).build());
  EXPECT_EQ(pm.flags, kMetaFragment | kMetaLaterFragment);
  EXPECT_EQ(pm.l4_offset, 0);
  EXPECT_EQ(pm.l4_proto, kIpProtoTcp);
  EXPECT_EQ(nonzero_counters(), "ipv4=1 fragments=1");
}

TEST_F(ParseTest, Ipv4DontFragmentIsNotAFragment) {
  PacketMeta pm = expect_kept(Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoTcp, 0x4000).tcp().build());
  EXPECT_EQ(pm.flags, 0);
  EXPECT_EQ(named("fragments"), 0u);
}

TEST_F(ParseTest, EthernetPaddingBeyondIpv4TotalLengthIsAccepted) {
  // 54-byte TCP SYN padded to the 60-byte Ethernet minimum.
  std::vector<uint8_t> bytes = Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoTcp).tcp().build();
  ASSERT_EQ(bytes.size(), 54u);
  bytes.resize(60, 0);
  PacketMeta pm = expect_kept(make_mbuf(bytes));
  EXPECT_EQ(pm.l3_length, 40);
  EXPECT_EQ(pm.l4_offset, kEth + kIpv4);
}

TEST_F(ParseTest, EthernetPaddingBeyondIpv6PayloadIsAccepted) {
  std::vector<uint8_t> bytes = Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoUdp).udp().build();
  bytes.resize(bytes.size() + 12, 0);
  PacketMeta pm = expect_kept(make_mbuf(bytes));
  EXPECT_EQ(pm.l3_length, kIpv6 + 8);
}

TEST_F(ParseTest, Ipv6Tcp) {
  PacketMeta pm = expect_kept(ipv6_tcp().build());
  EXPECT_EQ(pm.l3, L3::Ipv6);
  EXPECT_EQ(pm.l3_offset, kEth);
  EXPECT_EQ(pm.l4_offset, kEth + kIpv6);
  EXPECT_EQ(pm.l3_length, kIpv6 + 30);
  EXPECT_EQ(pm.l4_proto, kIpProtoTcp);
  EXPECT_EQ(pm.flags, 0);
  EXPECT_EQ(pm.out_port, kNoPort);
  EXPECT_EQ(nonzero_counters(), "ipv6=1 tcp=1");
}

TEST_F(ParseTest, Ipv6Udp) {
  PacketMeta pm = expect_kept(Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoUdp).udp().payload(3).build());
  EXPECT_EQ(pm.l4_offset, kEth + kIpv6);
  EXPECT_EQ(nonzero_counters(), "ipv6=1 udp=1");
}

TEST_F(ParseTest, Icmpv6) {
  PacketMeta pm = expect_kept(Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoIcmpv6).icmp(128).build());
  EXPECT_EQ(pm.l4_proto, kIpProtoIcmpv6);
  EXPECT_EQ(pm.l4_offset, kEth + kIpv6);
  EXPECT_EQ(nonzero_counters(), "ipv6=1 icmpv6=1");
}

TEST_F(ParseTest, Ipv6ExtensionHeaderChainIsWalked) {
  // Hop-by-hop (8), routing (24), destination options (8), fragment (8, first), TCP.
  Frame f = Frame()
                .eth(kEtherTypeIpv6)
                .ipv6(kIpProtoHopByHop)
                .ext(kIpProtoRouting)
                .ext(kIpProtoDestOpts, 2)
                .ext(kIpProtoFragment)
                .frag6(kIpProtoTcp, 0, true)
                .tcp()
                .payload(5);
  PacketMeta pm = expect_kept(f.build());
  EXPECT_EQ(pm.l3, L3::Ipv6);
  EXPECT_EQ(pm.l4_proto, kIpProtoTcp);
  EXPECT_EQ(pm.l4_offset, kEth + kIpv6 + 8 + 24 + 8 + 8);
  EXPECT_EQ(pm.l3_length, kIpv6 + 8 + 24 + 8 + 8 + 20 + 5);
  EXPECT_EQ(pm.flags, kMetaIpv6ExtHeaders | kMetaFragment);
  EXPECT_EQ(nonzero_counters(), "ipv6=1 tcp=1 fragments=1");
}

TEST_F(ParseTest, Ipv6LaterFragmentStopsAtTheFragmentHeader) {
  Frame f = Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoFragment).frag6(kIpProtoUdp, 185, false).payload(7);
  PacketMeta pm = expect_kept(f.build());
  EXPECT_EQ(pm.flags, kMetaIpv6ExtHeaders | kMetaFragment | kMetaLaterFragment);
  EXPECT_EQ(pm.l4_proto, kIpProtoUdp);
  EXPECT_EQ(pm.l4_offset, 0);
  EXPECT_EQ(nonzero_counters(), "ipv6=1 fragments=1");
}

TEST_F(ParseTest, Ipv6AuthenticationHeaderLengthIsInFourOctetUnits) {
  // AH with payload length 4: (4 + 2) * 4 = 24 bytes.
  Frame f = Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoAh).u8(kIpProtoUdp).u8(4).zeros(22).udp();
  PacketMeta pm = expect_kept(f.build());
  EXPECT_EQ(pm.l4_offset, kEth + kIpv6 + 24);
  EXPECT_EQ(pm.l4_proto, kIpProtoUdp);
  EXPECT_EQ(pm.flags, kMetaIpv6ExtHeaders);
}

TEST_F(ParseTest, Ipv6NoNextHeaderAndEspEndTheChain) {
  PacketMeta none = expect_kept(Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoDestOpts).ext(kIpProtoNoNext).build());
  EXPECT_EQ(none.l4_proto, kIpProtoNoNext);
  EXPECT_EQ(none.l4_offset, 0);
  PacketMeta esp = expect_kept(Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoEsp).payload(16).build());
  EXPECT_EQ(esp.l4_proto, kIpProtoEsp);
  EXPECT_EQ(esp.l4_offset, 0);
  EXPECT_EQ(nonzero_counters(), "ipv6=2");
}

TEST_F(ParseTest, Ipv6EightExtensionHeadersAreTheLimit) {
  Frame f = Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoDestOpts);
  for (int i = 0; i < 7; ++i) f.ext(kIpProtoDestOpts);
  f.ext(kIpProtoUdp).udp();
  PacketMeta pm = expect_kept(f.build());
  EXPECT_EQ(pm.l4_offset, kEth + kIpv6 + 8 * 8);
}

TEST_F(ParseTest, Vlan8021Q) {
  Frame f = Frame().eth(kEtherTypeVlan).vlan(100, kEtherTypeIpv4, 5).ipv4(kIpProtoTcp).tcp();
  PacketMeta pm = expect_kept(f.build());
  EXPECT_EQ(pm.vlan_count, 1);
  EXPECT_EQ(pm.vlan_id, 100) << "the PCP bits are not part of the VID";
  EXPECT_EQ(pm.flags, kMetaVlan);
  EXPECT_EQ(pm.l3_offset, kEth + 4);
  EXPECT_EQ(pm.l4_offset, kEth + 4 + kIpv4);
  EXPECT_EQ(nonzero_counters(), "ipv4=1 vlan=1 tcp=1");
}

TEST_F(ParseTest, QinQRecordsTheOuterVlan) {
  Frame f = Frame().eth(kEtherTypeQinQ).vlan(100, kEtherTypeVlan).vlan(200, kEtherTypeIpv6).ipv6(kIpProtoUdp).udp();
  PacketMeta pm = expect_kept(f.build());
  EXPECT_EQ(pm.vlan_count, 2);
  EXPECT_EQ(pm.vlan_id, 100);
  EXPECT_EQ(pm.l3_offset, kEth + 8);
  EXPECT_EQ(pm.l4_offset, kEth + 8 + kIpv6);
  EXPECT_EQ(nonzero_counters(), "ipv6=1 vlan=1 udp=1") << "vlan counts packets, not tags";
}

TEST_F(ParseTest, Arp) {
  PacketMeta pm = expect_kept(Frame().eth(kEtherTypeArp).arp().build());
  EXPECT_EQ(pm.l3, L3::Arp);
  EXPECT_EQ(pm.l3_offset, kEth);
  EXPECT_EQ(pm.l4_offset, 0);
  EXPECT_EQ(nonzero_counters(), "arp=1");
}

TEST_F(ParseTest, VlanTaggedArp) {
  PacketMeta pm = expect_kept(Frame().eth(kEtherTypeVlan).vlan(7, kEtherTypeArp).arp().zeros(14).build());
  EXPECT_EQ(pm.l3, L3::Arp);
  EXPECT_EQ(pm.l3_offset, kEth + 4);
  EXPECT_EQ(nonzero_counters(), "arp=1 vlan=1");
}

TEST_F(ParseTest, UnknownEthertypePassesUntouched) {
  PacketMeta pm = expect_kept(Frame().eth(0x88cc).payload(46).build());  // LLDP
  EXPECT_EQ(pm.l3, L3::Other);
  EXPECT_EQ(pm.l3_offset, kEth);
  EXPECT_EQ(nonzero_counters(), "other_l3=1");
  expect_kept(Frame().eth(0x88cc).build());  // exactly an Ethernet header
  EXPECT_EQ(named("other_l3"), 2u);
}

TEST_F(ParseTest, MetaIsResetBeforeParsing) {
  rte_mbuf* m = make_mbuf(Frame().eth(kEtherTypeArp).arp().build());
  std::memset(&meta(m), 0xa5, sizeof(PacketMeta));
  PacketMeta pm = expect_kept(m);
  EXPECT_EQ(pm.out_port, kNoPort);
  EXPECT_EQ(pm.flags, 0);
  EXPECT_EQ(pm.vlan_count, 0);
  EXPECT_EQ(pm.l4_offset, 0);
  EXPECT_EQ(pm.l4_proto, 0);
}

TEST_F(ParseTest, HeadersInTheFirstSegmentWithPayloadInTheNextAreKept) {
  std::vector<uint8_t> bytes = Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoTcp).tcp().payload(100).build();
  rte_mbuf* m = make_chain(bytes, kEth + kIpv4 + 20);
  EXPECT_EQ(m->nb_segs, 2);
  PacketMeta pm = expect_kept(m);
  EXPECT_EQ(pm.l4_offset, kEth + kIpv4);
  EXPECT_EQ(pm.l3_length, kIpv4 + 20 + 100);
}

TEST_F(ParseTest, MixedBurstKeepsGoodPacketsInOrder) {
  std::vector<rte_mbuf*> in = {
      make_mbuf(ipv4_tcp().build()),
      make_mbuf(Frame().eth(kEtherTypeIpv4).truncate(10).raw()),  // truncated Ethernet
      make_mbuf(ipv6_tcp().build()),
      make_mbuf(Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoTcp).truncate(30).raw()),  // truncated IPv4
      make_mbuf(Frame().eth(kEtherTypeArp).arp().build()),
      make_mbuf(ipv4_udp().build()),
      make_mbuf(Frame().eth(kEtherTypeArp).arp(6).build()),  // bad ARP
      make_mbuf(ipv4_icmp().build()),
  };
  std::vector<rte_mbuf*> kept = run(in);
  EXPECT_EQ(kept, (std::vector<rte_mbuf*>{in[0], in[2], in[4], in[5], in[7]}));
  EXPECT_EQ(counters().packets_in.get(), 8u);
  EXPECT_EQ(counters().packets_out.get(), 5u);
  EXPECT_EQ(counters().drops_total(), 3u);
  EXPECT_EQ(drops(Drop::TruncatedEthernet), 1u);
  EXPECT_EQ(drops(Drop::TruncatedIpv4), 1u);
  EXPECT_EQ(drops(Drop::BadArp), 1u);
  EXPECT_EQ(nonzero_counters(), "ipv4=3 ipv6=1 arp=1 tcp=2 udp=1 icmp=1");
  EXPECT_EQ(in_use(), 5u) << "the three discards are freed";
  test::free_all(kept);
}

TEST_F(ParseTest, FullBurstOfSixtyFour) {
  std::vector<rte_mbuf*> in;
  for (int i = 0; i < kMaxBurst; ++i) in.push_back(make_mbuf(i % 2 ? ipv6_tcp().build() : ipv4_udp().build()));
  std::vector<rte_mbuf*> kept = run(in);
  EXPECT_EQ(kept.size(), size_t{kMaxBurst});
  EXPECT_EQ(nonzero_counters(), "ipv4=32 ipv6=32 tcp=32 udp=32");
  test::free_all(kept);
}

// parse_packet alone, as the fuzz target calls it.
TEST_F(ParseTest, ParsePacketReturnsTheReason) {
  ParseCounts counts;
  rte_mbuf* good = make_mbuf(ipv4_tcp().build());
  rte_mbuf* bad = make_mbuf(Frame().eth(kEtherTypeIpv4).truncate(12).raw());
  EXPECT_EQ(ParseStage::parse_packet(good, counts), std::nullopt);
  EXPECT_EQ(ParseStage::parse_packet(bad, counts), Drop::TruncatedEthernet);
  EXPECT_EQ(counts.ipv4, 1u);
  EXPECT_EQ(counts.tcp, 1u);
  rte_pktmbuf_free(good);
  rte_pktmbuf_free(bad);
}

// ---- Malformed frames: one drop reason each ----

struct Malformed {
  const char* name;
  std::function<std::vector<uint8_t>()> frame;
  Drop reason;
  size_t split = 0;  // 0: one segment; else the second segment starts here
};

void PrintTo(const Malformed& c, std::ostream* os) { *os << c.name; }

std::vector<uint8_t> with16(std::vector<uint8_t> bytes, size_t offset, uint16_t value) {
  bytes.at(offset) = uint8_t(value >> 8);
  bytes.at(offset + 1) = uint8_t(value);
  return bytes;
}
std::vector<uint8_t> with8(std::vector<uint8_t> bytes, size_t offset, uint8_t value) {
  bytes.at(offset) = value;
  return bytes;
}

const size_t kV4 = kEth;           // IPv4 header
const size_t kV4L4 = kEth + kIpv4;  // its L4 header
const size_t kV6 = kEth;
const size_t kV6Next = kEth + kIpv6;  // first header after the fixed IPv6 header

const Malformed kMalformed[] = {
    // Ethernet and VLAN
    {"EmptyFrame", [] { return std::vector<uint8_t>{}; }, Drop::TruncatedEthernet},
    {"TruncatedEthernet", [] { return Frame().eth(kEtherTypeIpv4).truncate(13).raw(); }, Drop::TruncatedEthernet},
    {"TruncatedVlan", [] { return Frame().eth(kEtherTypeVlan).u16(100).raw(); }, Drop::TruncatedVlan},
    {"TruncatedInnerVlan", [] { return Frame().eth(kEtherTypeQinQ).vlan(1, kEtherTypeVlan).u16(2).u8(8).raw(); },
     Drop::TruncatedVlan},
    {"ThreeVlanTags",
     [] {
       return Frame()
           .eth(kEtherTypeVlan)
           .vlan(1, kEtherTypeVlan)
           .vlan(2, kEtherTypeQinQ)
           .vlan(3, kEtherTypeIpv4)
           .ipv4(kIpProtoTcp)
           .tcp()
           .build();
     },
     Drop::VlanTooDeep},

    // ARP
    {"TruncatedArp", [] { return Frame().eth(kEtherTypeArp).arp().truncate(kEth + 27).raw(); }, Drop::TruncatedArp},
    {"ArpHardwareNotEthernet", [] { return Frame().eth(kEtherTypeArp).arp(6).build(); }, Drop::BadArp},
    {"ArpProtocolNotIpv4", [] { return Frame().eth(kEtherTypeArp).arp(1, kEtherTypeIpv6).build(); }, Drop::BadArp},
    {"ArpHardwareLength", [] { return Frame().eth(kEtherTypeArp).arp(1, kEtherTypeIpv4, 8).build(); }, Drop::BadArp},
    {"ArpProtocolLength", [] { return Frame().eth(kEtherTypeArp).arp(1, kEtherTypeIpv4, 6, 16).build(); },
     Drop::BadArp},

    // IPv4
    {"TruncatedIpv4", [] { return Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoTcp).truncate(kEth + 19).raw(); },
     Drop::TruncatedIpv4},
    {"Ipv4EthertypeOnly", [] { return Frame().eth(kEtherTypeIpv4).raw(); }, Drop::TruncatedIpv4},
    {"Ipv4Version6", [] { return with8(ipv4_tcp().build(), kV4, 0x65); }, Drop::BadIpv4Version},
    {"Ipv4Version0", [] { return with8(ipv4_tcp().build(), kV4, 0x05); }, Drop::BadIpv4Version},
    {"Ipv4IhlBelow5", [] { return with8(ipv4_tcp().build(), kV4, 0x44); }, Drop::BadIpv4Ihl},
    {"Ipv4IhlZero", [] { return with8(ipv4_tcp().build(), kV4, 0x40); }, Drop::BadIpv4Ihl},
    {"Ipv4IhlBeyondFrame",
     [] { return with8(Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoUdp).udp().build(), kV4, 0x4f); },
     Drop::BadIpv4Ihl},
    {"Ipv4TotalLengthBeyondFrame",
     [] {
       auto bytes = ipv4_tcp().build();
       return with16(bytes, kV4 + 2, uint16_t(bytes.size() - kEth + 1));
     },
     Drop::BadIpv4TotalLength},
    {"Ipv4TotalLengthBelowIhl", [] { return with16(ipv4_tcp().build(), kV4 + 2, 19); }, Drop::BadIpv4TotalLength},
    {"Ipv4TotalLengthBelowOptions",
     [] { return with16(Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoUdp, 0, 6).udp().build(), kV4 + 2, 20); },
     Drop::BadIpv4TotalLength},

    // IPv6
    {"TruncatedIpv6", [] { return Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoTcp).truncate(kEth + 39).raw(); },
     Drop::TruncatedIpv6},
    {"Ipv6Version4", [] { return with8(ipv6_tcp().build(), kV6, 0x40); }, Drop::BadIpv6Version},
    {"Ipv6PayloadLengthBeyondFrame",
     [] {
       auto bytes = ipv6_tcp().build();
       return with16(bytes, kV6 + 4, uint16_t(bytes.size() - kV6Next + 1));
     },
     Drop::BadIpv6PayloadLength},
    {"Ipv6HopByHopNotFirst",
     [] {
       return Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoDestOpts).ext(kIpProtoHopByHop).ext(kIpProtoTcp).tcp().build();
     },
     Drop::BadIpv6ExtHeader},
    {"Ipv6NineExtensionHeaders",
     [] {
       Frame f = Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoDestOpts);
       for (int i = 0; i < 8; ++i) f.ext(kIpProtoDestOpts);
       return f.ext(kIpProtoUdp).udp().build();
     },
     Drop::BadIpv6ExtHeader},
    {"Ipv6ExtHeaderLengthBeyondPayload",
     [] { return Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoRouting).u8(kIpProtoTcp).u8(4).zeros(6).build(); },
     Drop::BadIpv6ExtHeader},
    {"Ipv6ExtHeaderCutShort",
     [] { return Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoDestOpts).u8(kIpProtoTcp).u8(0).zeros(2).build(); },
     Drop::BadIpv6ExtHeader},
    {"Ipv6ExtHeaderCutShortBeforePadding",
     [] {
       auto bytes = Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoDestOpts).u8(kIpProtoTcp).u8(0).zeros(2).build();
       bytes.resize(bytes.size() + 20, 0);  // Ethernet padding is not part of the payload
       return bytes;
     },
     Drop::BadIpv6ExtHeader},
    {"Ipv6ExtHeaderMissing", [] { return Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoHopByHop).build(); },
     Drop::BadIpv6ExtHeader},
    {"Ipv6FragmentHeaderCutShort",
     [] { return Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoFragment).u8(kIpProtoTcp).zeros(3).build(); },
     Drop::BadIpv6ExtHeader},
    {"Ipv6AhLengthBeyondPayload",
     [] { return Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoAh).u8(kIpProtoTcp).u8(4).zeros(14).build(); },
     Drop::BadIpv6ExtHeader},

    // TCP
    {"TruncatedTcp", [] { return Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoTcp).tcp().truncate(kV4L4 + 19).build(); },
     Drop::TruncatedTcp},
    {"TcpCutByIpTotalLength", [] { return with16(ipv4_tcp().build(), kV4 + 2, kIpv4 + 12); }, Drop::TruncatedTcp},
    {"TruncatedTcpOverIpv6",
     [] { return Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoTcp).tcp().truncate(kV6Next + 10).build(); },
     Drop::TruncatedTcp},
    {"TruncatedTcpAfterExtHeader",
     [] {
       return Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoDestOpts).ext(kIpProtoTcp).tcp().truncate(kV6Next + 8 + 4).build();
     },
     Drop::TruncatedTcp},
    {"TcpDataOffsetBelow5", [] { return with8(ipv4_tcp().build(), kV4L4 + 12, 0x40); }, Drop::BadTcpDataOffset},
    {"TcpDataOffsetZero", [] { return with8(ipv4_tcp().build(), kV4L4 + 12, 0x00); }, Drop::BadTcpDataOffset},
    {"TcpDataOffsetBeyondPayload", [] { return with8(ipv4_tcp().build(), kV4L4 + 12, 0xf0); }, Drop::BadTcpDataOffset},

    // UDP
    {"TruncatedUdp", [] { return Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoUdp).udp().truncate(kV4L4 + 7).build(); },
     Drop::TruncatedUdp},
    {"UdpLengthBelow8", [] { return with16(ipv4_udp().build(), kV4L4 + 4, 7); }, Drop::BadUdpLength},
    {"UdpLengthZero", [] { return with16(ipv4_udp().build(), kV4L4 + 4, 0); }, Drop::BadUdpLength},
    {"UdpLengthBeyondPayload", [] { return with16(ipv4_udp().build(), kV4L4 + 4, 8 + 10 + 1); }, Drop::BadUdpLength},
    {"UdpLengthBeyondIpv6Payload",
     [] {
       auto bytes = Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoUdp).udp().payload(4).build();
       return with16(bytes, kV6Next + 4, 13);
     },
     Drop::BadUdpLength},

    // ICMP
    {"TruncatedIcmp", [] { return Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoIcmp).icmp().truncate(kV4L4 + 7).build(); },
     Drop::TruncatedIcmp},
    {"TruncatedIcmpv6",
     [] { return Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoIcmpv6).icmp().truncate(kV6Next + 4).build(); },
     Drop::TruncatedIcmp},

    // Headers across segments: the frame is long enough, the first segment is not.
    {"EthernetAcrossSegments", [] { return ipv4_tcp().build(); }, Drop::HeadersNotContiguous, 10},
    {"VlanAcrossSegments", [] { return Frame().eth(kEtherTypeVlan).vlan(5, kEtherTypeIpv4).ipv4(kIpProtoTcp).tcp().build(); },
     Drop::HeadersNotContiguous, kEth + 2},
    {"ArpAcrossSegments", [] { return Frame().eth(kEtherTypeArp).arp().build(); }, Drop::HeadersNotContiguous, kEth + 20},
    {"Ipv4AcrossSegments", [] { return ipv4_tcp().build(); }, Drop::HeadersNotContiguous, kV4 + 10},
    {"Ipv4OptionsAcrossSegments",
     [] { return Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoUdp, 0, 6).udp().build(); }, Drop::HeadersNotContiguous,
     kV4 + 22},
    {"TcpAcrossSegments", [] { return ipv4_tcp().build(); }, Drop::HeadersNotContiguous, kV4L4 + 10},
    {"UdpAcrossSegments", [] { return ipv4_udp().build(); }, Drop::HeadersNotContiguous, kV4L4 + 4},
    {"IcmpAcrossSegments", [] { return ipv4_icmp().build(); }, Drop::HeadersNotContiguous, kV4L4 + 4},
    {"Ipv6AcrossSegments", [] { return ipv6_tcp().build(); }, Drop::HeadersNotContiguous, kV6 + 30},
    {"Ipv6ExtHeaderStartAcrossSegments",
     [] { return Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoHopByHop).ext(kIpProtoTcp).tcp().build(); },
     Drop::HeadersNotContiguous, kV6Next + 4},
    {"Ipv6LongExtHeaderAcrossSegments",
     [] { return Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoRouting).ext(kIpProtoTcp, 1).tcp().build(); },
     Drop::HeadersNotContiguous, kV6Next + 10},
    {"Ipv6TcpAfterExtHeaderAcrossSegments",
     [] { return Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoDestOpts).ext(kIpProtoTcp).tcp().build(); },
     Drop::HeadersNotContiguous, kV6Next + 8 + 5},

    // Truncated frames stay "truncated" when they also happen to be segmented.
    {"TruncatedEthernetInTwoSegments", [] { return Frame().eth(kEtherTypeIpv4).truncate(12).raw(); },
     Drop::TruncatedEthernet, 6},
    {"TruncatedIpv4InTwoSegments",
     [] { return Frame().eth(kEtherTypeIpv4).ipv4(kIpProtoTcp).truncate(kEth + 15).raw(); }, Drop::TruncatedIpv4,
     kEth + 5},
    {"Ipv6ExtHeaderCutShortInTwoSegments",
     [] {
       auto bytes = Frame().eth(kEtherTypeIpv6).ipv6(kIpProtoDestOpts).u8(kIpProtoTcp).u8(0).zeros(2).build();
       bytes.resize(bytes.size() + 20, 0);
       return bytes;
     },
     Drop::BadIpv6ExtHeader, kV6Next + 3},
};

class MalformedTest : public ParseTest, public ::testing::WithParamInterface<Malformed> {};

TEST_P(MalformedTest, DropsWithExactlyThisReason) {
  const Malformed& c = GetParam();
  std::vector<uint8_t> bytes = c.frame();
  rte_mbuf* m = c.split ? make_chain(bytes, c.split) : make_mbuf(bytes);
  ASSERT_NE(m, nullptr);
  std::vector<rte_mbuf*> kept = run({m});
  EXPECT_TRUE(kept.empty());
  test::free_all(kept);
  EXPECT_EQ(counters().packets_in.get(), 1u);
  EXPECT_EQ(counters().packets_out.get(), 0u);
  EXPECT_EQ(drops(c.reason), 1u) << "expected " << drop_name(c.reason);
  for (size_t i = 0; i < kDropCount; ++i) {
    if (static_cast<Drop>(i) != c.reason) {
      EXPECT_EQ(counters().drops[i].get(), 0u) << "got " << kDropInfo[i].name;
    }
  }
  EXPECT_EQ(counters().drops_total(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Parse, MalformedTest, ::testing::ValuesIn(kMalformed),
                         [](const ::testing::TestParamInfo<Malformed>& param_info) {
                           return std::string(param_info.param.name);
                         });

}  // namespace
}  // namespace sluice::pipeline
