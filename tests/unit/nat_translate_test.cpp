// lib/net/checksum.h and lib/nat/translate: every incremental checksum update against a
// full recomputation (RFC 1624), on random packets; ICMP errors quoting translated
// packets (RFC 5508); NPTv6's checksum-neutral prefix translation (RFC 6296).
#include <arpa/inet.h>

#include <array>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_ip.h>

#include "nat/policy.h"
#include "nat/translate.h"
#include "nat_support.h"
#include "net/checksum.h"

namespace sluice::nat {
namespace {

using test::addr4_raw;
using test::Datagram4;
using test::get16;

// ---- net::csum_*

std::vector<uint8_t> random_bytes(std::mt19937& rng, size_t n) {
  std::vector<uint8_t> b(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

// The checksum of `b` computed in full, as stored.
uint16_t full_checksum(const std::vector<uint8_t>& b) {
  return static_cast<uint16_t>(~net::csum_partial(b.data(), static_cast<uint32_t>(b.size())));
}

TEST(Checksum, PartialSumEqualsRteRawCksum) {
  std::mt19937 rng(1);
  for (int round = 0; round < 2000; ++round) {
    const std::vector<uint8_t> b = random_bytes(rng, rng() % 300);  // odd lengths too
    EXPECT_EQ(net::csum_partial(b.data(), static_cast<uint32_t>(b.size())), rte_raw_cksum(b.data(), b.size()))
        << "length " << b.size();
  }
  // A partial sum carries on from an earlier one.
  const std::vector<uint8_t> b = random_bytes(rng, 100);
  EXPECT_EQ(net::csum_partial(b.data() + 40, 60, net::csum_partial(b.data(), 40)), rte_raw_cksum(b.data(), 100));
}

TEST(Checksum, FoldCarriesAroundTwice) {
  EXPECT_EQ(net::csum_fold(0), 0);
  EXPECT_EQ(net::csum_fold(0xffff), 0xffff);
  EXPECT_EQ(net::csum_fold(0x10000), 1);
  EXPECT_EQ(net::csum_fold(0x1fffe), 0xffff);
  EXPECT_EQ(net::csum_fold(0xffffffff), 0xffff);
}

TEST(Checksum, Update16EqualsFullRecomputation) {
  std::mt19937 rng(2);
  for (int round = 0; round < 20000; ++round) {
    std::vector<uint8_t> b = random_bytes(rng, 2 + 2 * (rng() % 40));
    const uint16_t before = full_checksum(b);
    const size_t at = 2 * (rng() % (b.size() / 2));
    const uint16_t old_word = net::load16(&b[at]);
    const uint16_t new_word = round % 7 == 0 ? old_word : static_cast<uint16_t>(rng());
    net::store16(&b[at], new_word);
    ASSERT_EQ(net::csum_update16(before, old_word, new_word), full_checksum(b)) << "round " << round;
  }
}

TEST(Checksum, Update32EqualsFullRecomputation) {
  std::mt19937 rng(3);
  for (int round = 0; round < 20000; ++round) {
    std::vector<uint8_t> b = random_bytes(rng, 4 + 2 * (rng() % 40));
    const uint16_t before = full_checksum(b);
    const size_t at = 2 * (rng() % (b.size() / 2 - 1));
    const uint32_t old_value = net::load32(&b[at]);
    const uint32_t new_value = static_cast<uint32_t>(rng());
    net::store32(&b[at], new_value);
    ASSERT_EQ(net::csum_update32(before, old_value, new_value), full_checksum(b)) << "round " << round;
  }
}

TEST(Checksum, AccumulatedDeltasEqualFullRecomputation) {
  std::mt19937 rng(4);
  for (int round = 0; round < 20000; ++round) {
    std::vector<uint8_t> b = random_bytes(rng, 40);
    const uint16_t before = full_checksum(b);
    // An address and a port, as NAT changes them together.
    const uint32_t old_addr = net::load32(&b[12]), new_addr = static_cast<uint32_t>(rng());
    const uint16_t old_port = net::load16(&b[20]), new_port = static_cast<uint16_t>(rng());
    net::store32(&b[12], new_addr);
    net::store16(&b[20], new_port);
    const uint32_t delta = net::csum_delta32(old_addr, new_addr) + net::csum_delta16(old_port, new_port);
    ASSERT_EQ(net::csum_apply(before, delta), full_checksum(b)) << "round " << round;
  }
}

TEST(Checksum, UpdateReachingZeroGivesWhatRecomputationGives) {
  // Words 0x1234, 0x0000: checksum 0xedcb. Changing the second to 0xedcb makes the sum
  // 0xffff, whose checksum is 0x0000 (never the all-ones form a recomputation never gives).
  std::vector<uint8_t> b(4, 0);
  net::store16(&b[0], 0x1234);
  const uint16_t before = full_checksum(b);
  net::store16(&b[2], before);
  const uint16_t after = net::csum_update16(before, 0, before);
  EXPECT_EQ(after, full_checksum(b));
  EXPECT_EQ(after, 0);
  EXPECT_EQ(net::udp_checksum_nonzero(after), 0xffff) << "UDP sends a computed zero as all ones";
  EXPECT_EQ(net::udp_checksum_nonzero(0x1234), 0x1234);
}

// ---- nat::rewrite

Ipv4Packet packet_of(std::vector<uint8_t>& d) {
  const uint32_t header = (d[0] & 0x0f) * 4u;
  return Ipv4Packet{d.data(), d.data() + header, static_cast<uint32_t>(d.size() - header), d[9]};
}

bool is_icmp_query(uint8_t type) { return type == 8 || type == 13 || type == 15 || type == 17; }
bool is_icmp_answer(uint8_t type) { return type == 0 || type == 14 || type == 16 || type == 18; }

// What `side` of datagram `d` becomes, built by hand: the address, the port (TCP/UDP) or
// the identifier (ICMP, on the querier's side only), every checksum recomputed in full
// (a UDP checksum of 0 stays 0).
void set_end(std::vector<uint8_t>& d, Side side, Endpoint to) {
  const size_t header = (d[0] & 0x0f) * 4u;
  net::store32(&d[side == Side::Source ? test::kIpSrcAt : test::kIpDstAt], to.addr);
  if (d[9] == net::kIpProtoTcp || d[9] == net::kIpProtoUdp) {
    net::store16(&d[header + (side == Side::Source ? 0 : 2)], to.port);
  } else if (d[9] == net::kIpProtoIcmp) {
    const uint8_t type = d[header];
    if (side == Side::Source ? is_icmp_query(type) : is_icmp_answer(type)) net::store16(&d[header + 4], to.port);
  }
  test::refresh_checksums(d);
}

TEST(NatRewrite, RandomPacketsKeepEveryChecksumEqualToFullRecomputation) {
  std::mt19937 rng(20240611);
  unsigned by_kind[5] = {};
  for (int round = 0; round < 5000; ++round) {
    Datagram4 g;
    const unsigned kind = rng() % 5;  // TCP, UDP, UDP without checksum, echo request, echo reply
    ++by_kind[kind];
    g.proto = kind == 0 ? net::kIpProtoTcp : kind <= 2 ? net::kIpProtoUdp : net::kIpProtoIcmp;
    g.udp_checksum = kind != 2;
    g.icmp_type = kind == 3 ? 8 : 0;
    g.src = static_cast<uint32_t>(rng());
    g.dst = static_cast<uint32_t>(rng());
    g.sport = static_cast<uint16_t>(rng());
    g.dport = static_cast<uint16_t>(rng());
    g.icmp_seq = static_cast<uint16_t>(rng());
    g.ihl = static_cast<uint8_t>(5 + rng() % 4);
    g.tos = static_cast<uint8_t>(rng());
    g.ttl = static_cast<uint8_t>(1 + rng() % 255);
    g.id = static_cast<uint16_t>(rng());
    g.fragment = rng() % 2 ? 0x4000 : 0;
    g.payload = random_bytes(rng, rng() % 80);
    std::vector<uint8_t> d = test::ipv4_datagram(g);
    ASSERT_EQ(test::stored16(&d[test::kIpChecksumAt]), test::ipv4_checksum_full(d.data()));

    const Side side = rng() % 2 ? Side::Source : Side::Destination;
    const size_t header = g.ihl * 4u;
    Endpoint to{static_cast<uint32_t>(rng()), static_cast<uint16_t>(rng())};
    // Sometimes only the port or only the address changes.
    if (rng() % 8 == 0) to.addr = net::load32(&d[side == Side::Source ? test::kIpSrcAt : test::kIpDstAt]);
    if (rng() % 8 == 0 && g.proto != net::kIpProtoIcmp)
      to.port = net::load16(&d[header + (side == Side::Source ? 0 : 2)]);
    std::vector<uint8_t> expected = d;
    set_end(expected, side, to);

    const std::vector<uint8_t> before = d;
    rewrite(packet_of(d), side, to);
    SCOPED_TRACE("round " + std::to_string(round) + " kind " + std::to_string(kind) +
                 (side == Side::Source ? " source" : " destination"));
    // Every checksum as a full recomputation gives it.
    ASSERT_EQ(test::stored16(&d[test::kIpChecksumAt]), test::ipv4_checksum_full(d.data()));
    const size_t l4_sum = test::l4_checksum_at(d.data());
    if (kind == 2) {
      ASSERT_EQ(test::stored16(&d[l4_sum]), 0) << "no UDP checksum stays none";
    } else {
      ASSERT_EQ(test::stored16(&d[l4_sum]), test::l4_checksum_full(d.data()));
    }
    // The ICMP identifier is the querier's: a request's source, a reply's destination.
    if (g.proto == net::kIpProtoIcmp) {
      const bool querier_side = (g.icmp_type == 8) == (side == Side::Source);
      ASSERT_EQ(net::load16(&d[header + 4]), querier_side ? to.port : net::load16(&before[header + 4]));
    }
    // And nothing else changed.
    ASSERT_EQ(d, expected);
  }
  for (unsigned n : by_kind) EXPECT_GT(n, 800u);
}

TEST(NatRewrite, BothEndsInTurnAsSnatThenDnatWould) {
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    Datagram4 g;
    g.proto = round % 2 ? net::kIpProtoTcp : net::kIpProtoUdp;
    g.src = static_cast<uint32_t>(rng());
    g.dst = static_cast<uint32_t>(rng());
    g.payload = random_bytes(rng, rng() % 64);
    std::vector<uint8_t> d = test::ipv4_datagram(g);
    const Endpoint src{static_cast<uint32_t>(rng()), static_cast<uint16_t>(rng())};
    const Endpoint dst{static_cast<uint32_t>(rng()), static_cast<uint16_t>(rng())};
    rewrite(packet_of(d), Side::Destination, dst);
    rewrite(packet_of(d), Side::Source, src);
    ASSERT_EQ(net::load32(&d[test::kIpSrcAt]), src.addr);
    ASSERT_EQ(net::load32(&d[test::kIpDstAt]), dst.addr);
    ASSERT_EQ(net::load16(&d[20]), src.port);
    ASSERT_EQ(net::load16(&d[22]), dst.port);
    ASSERT_EQ(test::stored16(&d[test::kIpChecksumAt]), test::ipv4_checksum_full(d.data()));
    ASSERT_EQ(test::stored16(&d[test::l4_checksum_at(d.data())]), test::l4_checksum_full(d.data()));
  }
}

TEST(NatRewrite, UdpWithoutChecksumStaysWithout) {
  Datagram4 g;
  g.src = addr4_raw("192.168.1.20");
  g.dst = addr4_raw("8.8.8.8");
  g.udp_checksum = false;
  g.payload.assign(30, 0xab);
  std::vector<uint8_t> d = test::ipv4_datagram(g);
  rewrite(packet_of(d), Side::Source, Endpoint{addr4_raw("203.0.113.1"), htons(2000)});
  EXPECT_EQ(net::load16(&d[26]), 0);
  EXPECT_EQ(net::load32(&d[test::kIpSrcAt]), addr4_raw("203.0.113.1"));
  EXPECT_EQ(get16(&d[20]), 2000);
  EXPECT_EQ(test::stored16(&d[test::kIpChecksumAt]), test::ipv4_checksum_full(d.data()));
}

TEST(NatRewrite, UdpChecksumComputedAsZeroIsSentAsAllOnes) {
  // Search for a rewrite whose recomputed checksum is all ones (the sum came to zero).
  std::mt19937 rng(11);
  Datagram4 g;
  g.src = addr4_raw("192.168.1.20");
  g.dst = addr4_raw("8.8.8.8");
  g.payload.assign(10, 0x5a);
  const std::vector<uint8_t> d0 = test::ipv4_datagram(g);
  bool found = false;
  for (uint32_t port = 0; port < 65536 && !found; ++port) {
    std::vector<uint8_t> d = d0;
    const Endpoint to{addr4_raw("203.0.113.1"), htons(static_cast<uint16_t>(port))};
    std::vector<uint8_t> expected = d;
    set_end(expected, Side::Source, to);
    if (net::load16(&expected[26]) != 0xffff) continue;
    found = true;
    rewrite(packet_of(d), Side::Source, to);
    EXPECT_EQ(net::load16(&d[26]), 0xffff);
    EXPECT_EQ(d, expected);
  }
  EXPECT_TRUE(found);
}

TEST(NatRewrite, IcmpIdentifierChangesOnlyOnTheQueriersSide) {
  struct Case {
    uint8_t type;
    Side side;
    bool id_changes;
  } cases[] = {{8, Side::Source, true},
               {8, Side::Destination, false},
               {0, Side::Destination, true},
               {0, Side::Source, false}};
  for (const Case& c : cases) {
    Datagram4 g;
    g.proto = net::kIpProtoIcmp;
    g.icmp_type = c.type;
    g.src = addr4_raw("192.168.1.20");
    g.dst = addr4_raw("8.8.8.8");
    g.sport = 0x1111;  // the identifier
    g.payload.assign(56, 0x42);
    std::vector<uint8_t> d = test::ipv4_datagram(g);
    const Endpoint to{addr4_raw("203.0.113.1"), htons(0x2222)};
    rewrite(packet_of(d), c.side, to);
    SCOPED_TRACE("type " + std::to_string(c.type) + (c.side == Side::Source ? " source" : " destination"));
    EXPECT_EQ(get16(&d[24]), c.id_changes ? 0x2222 : 0x1111);
    EXPECT_EQ(net::load32(&d[c.side == Side::Source ? test::kIpSrcAt : test::kIpDstAt]), to.addr);
    EXPECT_EQ(test::stored16(&d[22]), test::l4_checksum_full(d.data()));
    EXPECT_EQ(test::stored16(&d[test::kIpChecksumAt]), test::ipv4_checksum_full(d.data()));
  }
}

TEST(NatRewrite, LaterFragmentGetsItsAddressOnly) {
  Datagram4 g;
  g.src = addr4_raw("192.168.1.20");
  g.dst = addr4_raw("8.8.8.8");
  g.l4_header = false;
  g.fragment = 100;  // offset 800: no ports here
  g.payload.assign(64, 0x77);
  std::vector<uint8_t> d = test::ipv4_datagram(g);
  const std::vector<uint8_t> before = d;
  Ipv4Packet p{d.data(), nullptr, 0, net::kIpProtoUdp};
  rewrite(p, Side::Source, Endpoint{addr4_raw("203.0.113.1"), htons(2000)});
  EXPECT_EQ(net::load32(&d[test::kIpSrcAt]), addr4_raw("203.0.113.1"));
  EXPECT_EQ(test::stored16(&d[test::kIpChecksumAt]), test::ipv4_checksum_full(d.data()));
  EXPECT_TRUE(std::equal(d.begin() + 20, d.end(), before.begin() + 20)) << "the payload is untouched";
}

TEST(NatRewrite, TcpWithoutItsChecksumInReachChangesThePortOnly) {
  Datagram4 g;
  g.proto = net::kIpProtoTcp;
  g.src = addr4_raw("192.168.1.20");
  g.dst = addr4_raw("8.8.8.8");
  std::vector<uint8_t> d = test::ipv4_datagram(g);
  const uint16_t tcp_sum = net::load16(&d[36]);
  Ipv4Packet p{d.data(), d.data() + 20, 8, net::kIpProtoTcp};  // 8 bytes of it, as an ICMP error quotes
  rewrite(p, Side::Destination, Endpoint{addr4_raw("192.168.1.10"), htons(8080)});
  EXPECT_EQ(get16(&d[22]), 8080);
  EXPECT_EQ(net::load16(&d[36]), tcp_sum);
  EXPECT_EQ(test::stored16(&d[test::kIpChecksumAt]), test::ipv4_checksum_full(d.data()));
}

// ---- nat::rewrite_error (RFC 5508)

struct ErrorKind {
  const char* name;
  uint8_t type, code;
  uint32_t word;
};
constexpr ErrorKind kErrors[] = {
    {"time-exceeded", 11, 0, 0},
    {"port-unreachable", 3, 3, 0},
    {"fragmentation-needed", 3, 4, 1400},  // next-hop MTU in the low half
};

struct Quote {
  const char* name;
  uint8_t proto;
  size_t payload;  // of the quoted datagram
  size_t l4_quoted;  // L4 bytes the error quotes; 0: the whole datagram
  bool udp_checksum = true;
};
constexpr Quote kQuotes[] = {
    {"udp whole", net::kIpProtoUdp, 24, 0},
    {"udp 8 bytes", net::kIpProtoUdp, 100, 8},
    {"udp without checksum", net::kIpProtoUdp, 24, 0, false},
    {"tcp 8 bytes", net::kIpProtoTcp, 100, 8},
    {"tcp full header", net::kIpProtoTcp, 100, 20},
    {"tcp whole", net::kIpProtoTcp, 12, 0},
    {"icmp echo whole", net::kIpProtoIcmp, 32, 0},
    {"icmp echo 8 bytes", net::kIpProtoIcmp, 32, 8},
};

class NatErrorTest : public test::MbufTest {
 protected:
  // The quoted packet for `side`: what a translated flow put on the wire.
  //   Destination (the nat stage): a SNAT flow's packet 203.0.113.1:5000 -> 8.8.8.8,
  //     the error about it sent to 203.0.113.1 by a router outside; the inside host is
  //     192.168.1.20:40000.
  //   Source (nat_src): a port-forwarded packet 198.51.100.7:50000 -> 192.168.1.10:85 as
  //     the inside server got it, the server's error about it leaving through
  //     203.0.113.1:8005. ICMP: an echo reply the inside host got for its request.
  static std::vector<uint8_t> quoted_packet(Side side, const Quote& q) {
    Datagram4 g;
    g.proto = q.proto;
    g.udp_checksum = q.udp_checksum;
    g.payload.resize(q.payload);
    for (size_t i = 0; i < q.payload; ++i) g.payload[i] = static_cast<uint8_t>(i * 7 + 3);
    if (side == Side::Destination) {
      g.src = addr4_raw("203.0.113.1");
      g.dst = addr4_raw("8.8.8.8");
      g.sport = 5000;
      g.dport = q.proto == net::kIpProtoTcp ? 443 : 53;
      g.icmp_type = 8;
    } else {
      g.src = addr4_raw("198.51.100.7");
      g.dst = addr4_raw("192.168.1.10");
      g.sport = 50000;
      g.dport = 85;
      g.icmp_type = 0;
    }
    if (q.proto == net::kIpProtoIcmp) g.sport = side == Side::Destination ? 5000 : 40000;
    g.ttl = 1;
    return test::ipv4_datagram(g);
  }
  static Endpoint target_for(Side side) {
    return side == Side::Destination ? Endpoint{addr4_raw("192.168.1.20"), htons(40000)}
                                     : Endpoint{addr4_raw("203.0.113.1"), htons(8005)};
  }
  static uint32_t error_src(Side side) {
    return side == Side::Destination ? addr4_raw("198.51.100.254") : addr4_raw("192.168.1.10");
  }
  static uint32_t error_dst(Side side) {
    return side == Side::Destination ? addr4_raw("203.0.113.1") : addr4_raw("198.51.100.7");
  }

  // One error through rewrite_error; `split` > 0 puts the frame's bytes from there on in
  // a second segment.
  void check(Side side, const ErrorKind& e, const Quote& q, size_t split = 0) {
    SCOPED_TRACE(std::string(e.name) + " quoting " + q.name + (side == Side::Source ? ", source side" : ", destination side"));
    const std::vector<uint8_t> quoted = quoted_packet(side, q);
    const size_t quoted_bytes = q.l4_quoted ? 20 + q.l4_quoted : quoted.size();
    const std::vector<uint8_t> frame =
        test::eth_frame(test::icmp_error(error_src(side), error_dst(side), e.type, e.code, e.word, quoted, quoted_bytes));
    rte_mbuf* m = split ? make_chain(frame, split) : make_mbuf(frame);
    ASSERT_NE(m, nullptr);
    uint8_t* ip = rte_pktmbuf_mtod_offset(m, uint8_t*, test::kEthLen);
    const uint32_t icmp_offset = test::kEthLen + 20;
    const uint32_t icmp_length = static_cast<uint32_t>(frame.size()) - icmp_offset;
    const uint32_t contiguous = rte_pktmbuf_data_len(m) - icmp_offset;
    Ipv4Packet p{ip, ip + 20, contiguous, net::kIpProtoIcmp};
    const Endpoint to = target_for(side);
    ASSERT_TRUE(rewrite_error(m, p, icmp_offset, icmp_length, side, to));

    // What it must be: the quoted datagram translated and every checksum of it recomputed,
    // quoted as far as it was, in an error whose outer end is translated and whose
    // checksums are recomputed.
    std::vector<uint8_t> quoted_expected = quoted;
    set_end(quoted_expected, side == Side::Source ? Side::Destination : Side::Source, to);
    const uint32_t src = side == Side::Source ? to.addr : error_src(side);
    const uint32_t dst = side == Side::Destination ? to.addr : error_dst(side);
    const std::vector<uint8_t> expected =
        test::icmp_error(src, dst, e.type, e.code, e.word, quoted_expected, quoted_bytes);
    const std::vector<uint8_t> got = test::chain_bytes(m, test::kEthLen);
    ASSERT_EQ(got.size(), expected.size());

    // The outer header and the quoted one, field by field, then every byte.
    const uint8_t* outer = got.data();
    const uint8_t* inner = got.data() + 28;
    EXPECT_EQ(net::load32(outer + test::kIpSrcAt), src);
    EXPECT_EQ(net::load32(outer + test::kIpDstAt), dst);
    EXPECT_EQ(test::stored16(outer + test::kIpChecksumAt), test::ipv4_checksum_full(outer));
    EXPECT_EQ(test::stored16(outer + 22), test::l4_checksum_full(outer)) << "the ICMP checksum over the message";
    EXPECT_EQ(outer[20], e.type);
    EXPECT_EQ(outer[21], e.code);
    EXPECT_EQ(get16(outer + 26), e.word & 0xffff);
    const Side quoted_side = side == Side::Source ? Side::Destination : Side::Source;
    EXPECT_EQ(net::load32(inner + (quoted_side == Side::Source ? test::kIpSrcAt : test::kIpDstAt)), to.addr);
    EXPECT_EQ(net::load32(inner + (quoted_side == Side::Source ? test::kIpDstAt : test::kIpSrcAt)),
              net::load32(&quoted[quoted_side == Side::Source ? test::kIpDstAt : test::kIpSrcAt]))
        << "the quoted other end is untouched";
    EXPECT_EQ(test::stored16(inner + test::kIpChecksumAt), test::ipv4_checksum_full(inner)) << "the quoted IP checksum";
    if (q.proto == net::kIpProtoIcmp) {
      const bool querier = (inner[20] == 8) == (quoted_side == Side::Source);
      EXPECT_TRUE(querier) << "these quotes rewrite the querier's end";
      EXPECT_EQ(net::load16(inner + 24), to.port) << "the quoted echo's identifier";
    } else {
      EXPECT_EQ(net::load16(inner + 20 + (quoted_side == Side::Source ? 0 : 2)), to.port) << "the quoted port";
    }
    // The quoted L4 checksum, where the quote holds it: as the translated datagram has it.
    const size_t l4_sum = test::l4_checksum_at(inner) - 20;
    if (quoted_bytes - 20 >= l4_sum + 2) {
      EXPECT_EQ(test::stored16(inner + 20 + l4_sum), test::stored16(&quoted_expected[20 + l4_sum]))
          << "the quoted L4 checksum";
      if (!q.l4_quoted) {
        EXPECT_EQ(test::stored16(inner + 20 + l4_sum), q.udp_checksum ? test::l4_checksum_full(inner) : 0)
            << "the whole quoted datagram verifies";
      }
    }
    EXPECT_EQ(got, expected);
    rte_pktmbuf_free(m);
  }
};

TEST_F(NatErrorTest, DestinationSideErrorsVerifyByFullRecomputation) {
  for (const ErrorKind& e : kErrors)
    for (const Quote& q : kQuotes) check(Side::Destination, e, q);
}

TEST_F(NatErrorTest, SourceSideErrorsVerifyByFullRecomputation) {
  for (const ErrorKind& e : kErrors)
    for (const Quote& q : kQuotes) check(Side::Source, e, q);
}

TEST_F(NatErrorTest, ChecksumCoversAMessageInTwoSegments) {
  // The quoted headers in the first segment, the quoted payload in the second.
  const size_t headers = test::kEthLen + 20 + 8 + 20 + 8;
  check(Side::Destination, kErrors[0], kQuotes[0], headers);
  check(Side::Source, kErrors[1], kQuotes[5], headers + 20 + 12 - 8 - 4);  // split inside the quoted TCP payload
}

TEST_F(NatErrorTest, ErrorWithoutAQuotedHeaderIsLeftAlone) {
  const std::vector<uint8_t> quoted = quoted_packet(Side::Destination, kQuotes[0]);
  // Only 12 bytes of the quoted IP header.
  std::vector<uint8_t> frame = test::eth_frame(test::icmp_error(error_src(Side::Destination), error_dst(Side::Destination),
                                                                11, 0, 0, quoted, 12));
  rte_mbuf* m = make_mbuf(frame);
  uint8_t* ip = rte_pktmbuf_mtod_offset(m, uint8_t*, test::kEthLen);
  Ipv4Packet p{ip, ip + 20, static_cast<uint32_t>(frame.size() - 34), net::kIpProtoIcmp};
  EXPECT_FALSE(rewrite_error(m, p, 34, static_cast<uint32_t>(frame.size() - 34), Side::Destination,
                             target_for(Side::Destination)));
  EXPECT_EQ(test::chain_bytes(m), frame);
  rte_pktmbuf_free(m);
  // A quoted header that is not IPv4.
  frame = test::eth_frame(test::icmp_error(error_src(Side::Destination), error_dst(Side::Destination), 11, 0, 0, quoted,
                                           quoted.size()));
  frame[test::kEthLen + 28] = 0x65;
  m = make_mbuf(frame);
  ip = rte_pktmbuf_mtod_offset(m, uint8_t*, test::kEthLen);
  p = Ipv4Packet{ip, ip + 20, static_cast<uint32_t>(frame.size() - 34), net::kIpProtoIcmp};
  EXPECT_FALSE(rewrite_error(m, p, 34, static_cast<uint32_t>(frame.size() - 34), Side::Destination,
                             target_for(Side::Destination)));
  EXPECT_EQ(test::chain_bytes(m), frame);
  rte_pktmbuf_free(m);
}

// ---- NPTv6 (RFC 6296)

using Addr6 = std::array<uint8_t, 16>;

// The map the policy compiles for inside/outside prefixes on port "wan".
Nptv6Map npt_map(const Addr6& inside, const Addr6& outside, uint8_t length) {
  config::Config c;
  config::PortConfig wan;
  wan.name = "wan";
  wan.zone = "wan";
  c.ports.push_back(wan);
  config::Nptv6Rule rule;
  rule.name = "npt";
  rule.port = "wan";
  rule.inside = net::IpPrefix{net::IpAddr::v6(inside.data()), length};
  rule.outside = net::IpPrefix{net::IpAddr::v6(outside.data()), length};
  c.nat.enabled = true;
  c.nat.nptv6.push_back(rule);
  AddressRegistry registry;
  std::string error;
  auto policy = Policy::build(c, {{"wan", 1}}, 1, 1, registry, error);
  EXPECT_TRUE(policy) << error;
  if (!policy || policy->nptv6().size() != 1) return Nptv6Map{};
  EXPECT_TRUE(policy->has_nptv6_on(1));
  return policy->nptv6()[0];
}

// The address's one's-complement sum, with 0xffff and 0 the same number.
uint32_t sum_of(const Addr6& a) { return test::sum16(a.data(), 16) % 0xffff; }
uint16_t word(const Addr6& a, unsigned w) { return get16(&a[2 * w]); }

bool prefix_bit(const Addr6& a, unsigned bit) { return a[bit / 8] & (0x80 >> (bit % 8)); }

Addr6 random_prefix(std::mt19937& rng, unsigned length) {
  Addr6 a{};
  for (unsigned bit = 0; bit < length; ++bit)
    if (rng() % 2) a[bit / 8] |= static_cast<uint8_t>(0x80 >> (bit % 8));
  return a;
}

TEST(Npt, KnownAnswerFromRfc6296AppendixB) {
  // FD01:0203:0405:0001::1234 behind FD01:0203:0405::/48 <-> 2001:0DB8:0001::/48.
  const Nptv6Map map = npt_map(test::addr6("fd01:203:405::"), test::addr6("2001:db8:1::"), 48);
  Addr6 a = test::addr6("fd01:203:405:1::1234");
  ASSERT_TRUE(npt_matches(a.data(), map, true));
  ASSERT_TRUE(npt_translate(a.data(), map, true));
  EXPECT_EQ(test::ip6_text(a.data()), "2001:db8:1:d550::1234");
  ASSERT_TRUE(npt_matches(a.data(), map, false));
  ASSERT_TRUE(npt_translate(a.data(), map, false));
  EXPECT_EQ(test::ip6_text(a.data()), "fd01:203:405:1::1234");
}

TEST(Npt, TranslationKeepsTheAddressSumAndTranslatesBack) {
  std::mt19937 rng(6296);
  for (unsigned length : {48u, 56u, 60u, 64u}) {
    for (int maps = 0; maps < 20; ++maps) {
      const Addr6 inside = random_prefix(rng, length), outside = random_prefix(rng, length);
      if (inside == outside) continue;
      const Nptv6Map map = npt_map(inside, outside, static_cast<uint8_t>(length));
      ASSERT_EQ(map.length, length);
      for (int round = 0; round < 200; ++round) {
        Addr6 a = inside;
        for (unsigned bit = length; bit < 128; ++bit)
          if (rng() % 2) a[bit / 8] |= static_cast<uint8_t>(0x80 >> (bit % 8));
        if (round % 10 == 0) a[8] = a[9] = 0xff;     // word 4 all ones: /56.. adjust word 5
        if (round % 25 == 0) a[10] = a[11] = 0x00;   // zero words round-trip too
        const unsigned adjusted = length <= 48 ? 3 : (word(a, 4) == 0xffff ? 5 : 4);
        if (word(a, adjusted) == 0xffff) continue;
        SCOPED_TRACE("/" + std::to_string(length) + " " + test::ip6_text(a.data()));
        ASSERT_TRUE(npt_matches(a.data(), map, true));
        const Addr6 original = a;
        ASSERT_TRUE(npt_translate(a.data(), map, true));
        ASSERT_TRUE(npt_matches(a.data(), map, false));
        // The outside prefix, the same sum, and only the adjusted word's other bits changed.
        for (unsigned bit = 0; bit < 128; ++bit) {
          if (bit < length) {
            ASSERT_EQ(prefix_bit(a, bit), prefix_bit(outside, bit)) << "bit " << bit;
          } else if (bit / 16 != adjusted) {
            ASSERT_EQ(prefix_bit(a, bit), prefix_bit(original, bit)) << "bit " << bit;
          }
        }
        ASSERT_EQ(sum_of(a), sum_of(original)) << "checksum-neutral";
        ASSERT_NE(word(a, adjusted), 0xffff) << "RFC 6296 writes zero, not all ones";
        ASSERT_TRUE(npt_translate(a.data(), map, false));
        ASSERT_EQ(a, original);
      }
    }
  }
}

TEST(Npt, RefusesAnAddressWhoseAdjustedWordIsAllOnes) {
  const Nptv6Map map48 = npt_map(test::addr6("fd01:203:405::"), test::addr6("2001:db8:1::"), 48);
  Addr6 a = test::addr6("fd01:203:405:ffff::1");
  const Addr6 before = a;
  EXPECT_FALSE(npt_translate(a.data(), map48, true));
  EXPECT_EQ(a, before) << "left as it was";

  const Nptv6Map map64 = npt_map(test::addr6("fd01:203:405:1::"), test::addr6("2001:db8:1:2::"), 64);
  Addr6 all_ones = test::addr6("fd01:203:405:1:ffff:ffff:ffff:ffff");
  const Addr6 kept = all_ones;
  EXPECT_FALSE(npt_translate(all_ones.data(), map64, true));
  EXPECT_EQ(all_ones, kept);
  // Three all-ones words and a fourth that is not: the fourth absorbs the difference.
  Addr6 last = test::addr6("fd01:203:405:1:ffff:ffff:ffff:1");
  const Addr6 original = last;
  ASSERT_TRUE(npt_translate(last.data(), map64, true));
  EXPECT_EQ(word(last, 4), 0xffff);
  EXPECT_EQ(word(last, 5), 0xffff);
  EXPECT_EQ(word(last, 6), 0xffff);
  EXPECT_EQ(sum_of(last), sum_of(original));
  ASSERT_TRUE(npt_translate(last.data(), map64, false));
  EXPECT_EQ(last, original);
}

TEST(Npt, MatchesOnlyItsOwnPrefix) {
  const Nptv6Map map = npt_map(test::addr6("fd00:1:2:30::"), test::addr6("2001:db8:9:a0::"), 60);
  const Addr6 in = test::addr6("fd00:1:2:3f::5");
  EXPECT_TRUE(npt_matches(in.data(), map, true));
  EXPECT_FALSE(npt_matches(in.data(), map, false)) << "not in the outside prefix";
  EXPECT_TRUE(npt_matches(test::addr6("2001:db8:9:af::5").data(), map, false));
  EXPECT_FALSE(npt_matches(test::addr6("fd00:1:2:20::5").data(), map, true)) << "prefix bit 59 differs";
  EXPECT_FALSE(npt_matches(test::addr6("fd00:1:2:40::5").data(), map, true)) << "three prefix bits differ";
  EXPECT_FALSE(npt_matches(test::addr6("fd01:1:2:30::5").data(), map, true)) << "a whole byte differs";
  EXPECT_TRUE(npt_matches(test::addr6("fd00:1:2:30::").data(), map, true));
}

}  // namespace
}  // namespace sluice::nat
