// lib/net: byte order in the type, header accessors, and the symmetric Toeplitz key
// that keeps both directions of a flow on one queue.
#include <array>
#include <cstring>

#include <gtest/gtest.h>
#include <rte_ip.h>

#include "net/byte_order.h"
#include "net/headers.h"
#include "net/rss.h"

namespace sluice::net {
namespace {

TEST(ByteOrderTest, ValueReadsNetworkOrder) {
  const uint8_t wire[] = {0x12, 0x34, 0x56, 0x78};
  be16 short_value;
  be32 long_value;
  std::memcpy(&short_value, wire, 2);
  std::memcpy(&long_value, wire, 4);
  EXPECT_EQ(short_value.value(), 0x1234);
  EXPECT_EQ(long_value.value(), 0x12345678u);
  be16 set;
  set.set(0xabcd);
  uint8_t out[2];
  std::memcpy(out, &set, 2);
  EXPECT_EQ(out[0], 0xab);
  EXPECT_EQ(out[1], 0xcd);
  EXPECT_EQ(be16::from(0xabcd), set);
}

TEST(HeadersTest, AccessorsDecodeTheBitFields) {
  VlanTag tag{be16::from(0xe064), be16::from(kEtherTypeIpv4)};  // PCP 7, DEI 0, VID 100
  EXPECT_EQ(tag.vlan_id(), 100);

  Ipv4Header ip{};
  ip.version_ihl = 0x46;
  EXPECT_EQ(ip.version(), 4);
  EXPECT_EQ(ip.header_len(), 24);
  ip.fragment = be16::from(0x4000);  // DF only
  EXPECT_FALSE(ip.is_fragment());
  ip.fragment = be16::from(0x2000);  // MF, offset 0: a first fragment
  EXPECT_TRUE(ip.is_fragment());
  EXPECT_TRUE(ip.more_fragments());
  EXPECT_EQ(ip.fragment_offset(), 0);
  ip.fragment = be16::from(0x0064);  // last fragment at offset 100
  EXPECT_TRUE(ip.is_fragment());
  EXPECT_FALSE(ip.more_fragments());
  EXPECT_EQ(ip.fragment_offset(), 100);

  Ipv6Header ip6{};
  ip6.version_class_flow = be32::from(0x6abcdef0);
  EXPECT_EQ(ip6.version(), 6);

  Ipv6FragmentHeader frag{};
  frag.offset_flags = be16::from(185 << 3 | 1);
  EXPECT_EQ(frag.fragment_offset(), 185);
  EXPECT_TRUE(frag.more_fragments());

  TcpHeader tcp{};
  tcp.data_offset_reserved = 0x80;
  EXPECT_EQ(tcp.header_len(), 32);
}

TEST(RssTest, SymmetricKeyRepeats6d5a) {
  std::array<uint8_t, 40> key{};
  fill_symmetric_rss_key(key);
  for (size_t i = 0; i < key.size(); ++i) EXPECT_EQ(key[i], i % 2 ? 0x5a : 0x6d) << i;
}

TEST(RssTest, ToeplitzMatchesTheMicrosoftVerificationSuite) {
  // The key and first IPv4/TCP vector of Microsoft's RSS verification suite.
  const std::array<uint8_t, 40> key = {0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67,
                                       0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb,
                                       0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
                                       0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
  EXPECT_EQ(toeplitz_ipv4(key, RTE_IPV4(66, 9, 149, 187), RTE_IPV4(161, 142, 100, 80), 2794, 1766), 0x51ccc178u);
}

TEST(RssTest, SymmetricKeyHashesBothDirectionsAlike) {
  std::array<uint8_t, kRssKeyMaxLen> key{};
  fill_symmetric_rss_key(key);
  const uint32_t a = RTE_IPV4(10, 0, 0, 1), b = RTE_IPV4(192, 168, 77, 200);
  for (uint16_t port = 1; port < 60000; port += 997) {
    uint32_t forward = toeplitz_ipv4(key, a, b, port, 443);
    EXPECT_EQ(forward, toeplitz_ipv4(key, b, a, 443, port)) << port;
  }
  EXPECT_NE(toeplitz_ipv4(key, a, b, 1000, 443), toeplitz_ipv4(key, a, b, 1001, 443)) << "ports still matter";
}

}  // namespace
}  // namespace sluice::net
