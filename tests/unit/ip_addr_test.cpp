// lib/net/ip_addr: what the config and the control plane accept as addresses and
// prefixes, and the subnet arithmetic (network(), contains()) the router relies on.
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "net/ip_addr.h"

namespace sluice::net {
namespace {

IpAddr ip(const char* text) {
  auto a = parse_ip(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(IpAddr{});
}

IpPrefix prefix(const char* text) {
  auto p = parse_prefix(text);
  EXPECT_TRUE(p.has_value()) << text;
  return p.value_or(IpPrefix{});
}

TEST(IpAddrTest, ParsesIpv4InNetworkOrder) {
  IpAddr a = ip("10.1.2.3");
  EXPECT_EQ(a.family, 4);
  EXPECT_EQ(a.bytes[0], 10);
  EXPECT_EQ(a.bytes[1], 1);
  EXPECT_EQ(a.bytes[2], 2);
  EXPECT_EQ(a.bytes[3], 3);
  for (size_t i = 4; i < 16; ++i) EXPECT_EQ(a.bytes[i], 0) << i;
  EXPECT_EQ(a.v4_host(), 0x0a010203u);
  EXPECT_TRUE(a.is_set());
  EXPECT_EQ(a.str(), "10.1.2.3");
  EXPECT_EQ(IpAddr::v4(0x0a010203), a);
}

TEST(IpAddrTest, ParsesIpv6) {
  IpAddr a = ip("fd00:1::1");
  EXPECT_EQ(a.family, 6);
  EXPECT_EQ(a.bytes[0], 0xfd);
  EXPECT_EQ(a.bytes[1], 0x00);
  EXPECT_EQ(a.bytes[3], 0x01);
  EXPECT_EQ(a.bytes[15], 0x01);
  EXPECT_EQ(a.str(), "fd00:1::1");
  EXPECT_EQ(IpAddr::v6(a.bytes.data()), a);
  EXPECT_EQ(ip("FD00:0001:0000:0000:0000:0000:0000:0001").str(), "fd00:1::1") << "printed canonically";
  EXPECT_EQ(ip("::").family, 6);
  EXPECT_EQ(ip("::ffff:10.0.0.1").family, 6) << "a v4-mapped address stays IPv6";
}

TEST(IpAddrTest, UnsetAddressPrintsADash) {
  IpAddr a;
  EXPECT_FALSE(a.is_set());
  EXPECT_EQ(a.str(), "-");
}

TEST(IpAddrTest, RejectsMalformedAddresses) {
  for (const char* bad : {"", "10.0.0", "10.0.0.256", "10.0.0.1.2", "10.0.0.1 ", " 10.0.0.1", "10.0.0.-1", "0x0a000001",
                          "fd00::1::2", "fd00:::1", "gggg::1", "10.0.0.1/24", "fd00::1%eth0", "localhost"})
    EXPECT_EQ(parse_ip(bad), std::nullopt) << "'" << bad << "'";
}

TEST(IpAddrTest, ComparesFamilyAndBytes) {
  EXPECT_EQ(ip("10.0.0.1"), ip("10.0.0.1"));
  EXPECT_NE(ip("10.0.0.1"), ip("10.0.0.2"));
  EXPECT_NE(ip("::a00:1"), ip("10.0.0.1")) << "same low bytes, other family";
}

TEST(IpPrefixTest, ParsesPrefixesAndKeepsHostBits) {
  IpPrefix p = prefix("10.1.0.1/24");
  EXPECT_EQ(p.addr, ip("10.1.0.1"));
  EXPECT_EQ(p.len, 24);
  EXPECT_EQ(p.str(), "10.1.0.1/24");
  IpPrefix p6 = prefix("fd00:1::1/64");
  EXPECT_EQ(p6.addr, ip("fd00:1::1"));
  EXPECT_EQ(p6.len, 64);
  EXPECT_EQ(p6.str(), "fd00:1::1/64");
  EXPECT_EQ(prefix("0.0.0.0/0").len, 0);
  EXPECT_EQ(prefix("10.0.0.1/32").len, 32);
  EXPECT_EQ(prefix("::/0").len, 0);
  EXPECT_EQ(prefix("::1/128").len, 128);
}

TEST(IpPrefixTest, BareAddressIsAHostPrefixOnlyWhenAllowed) {
  EXPECT_EQ(parse_prefix("10.0.0.1"), std::nullopt) << "the length is required by default";
  auto p = parse_prefix("10.0.0.1", false);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->len, 32);
  auto p6 = parse_prefix("fd00::1", false);
  ASSERT_TRUE(p6.has_value());
  EXPECT_EQ(p6->len, 128);
}

TEST(IpPrefixTest, RejectsMalformedPrefixes) {
  for (const char* bad : {"", "/24", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+1", "10.0.0.0/ 8",
                          "10.0.0.0/8 ", "10.0.0.0/8/8", "10.0.0.0/0x8", "10.0.0.0/a", "10.0.0/8", "fd00::/129",
                          "fd00::/1000", "fd00::/4294967304", "10.0.0.0/99999999999999999999"})
    EXPECT_EQ(parse_prefix(bad), std::nullopt) << "'" << bad << "'";
}

TEST(IpPrefixTest, NetworkClearsHostBits) {
  EXPECT_EQ(prefix("10.1.2.3/24").network(), prefix("10.1.2.0/24"));
  EXPECT_EQ(prefix("10.1.2.3/16").network(), prefix("10.1.0.0/16"));
  EXPECT_EQ(prefix("10.1.2.3/32").network(), prefix("10.1.2.3/32"));
  EXPECT_EQ(prefix("10.1.2.3/0").network(), prefix("0.0.0.0/0"));
  EXPECT_EQ(prefix("10.1.2.255/25").network(), prefix("10.1.2.128/25"));
  EXPECT_EQ(prefix("10.1.2.3/31").network(), prefix("10.1.2.2/31"));
  EXPECT_EQ(prefix("10.255.255.255/9").network(), prefix("10.128.0.0/9")) << "a length that is not a byte boundary";
  EXPECT_EQ(prefix("fd00:1:2:3:4:5:6:7/64").network(), prefix("fd00:1:2:3::/64"));
  EXPECT_EQ(prefix("fd00:1:2:3:4:5:6:7/127").network(), prefix("fd00:1:2:3:4:5:6:6/127"));
  EXPECT_EQ(prefix("ffff:ffff::/12").network(), prefix("fff0::/12"));
  EXPECT_EQ(prefix("fd00::1/128").network(), prefix("fd00::1/128"));
  EXPECT_EQ(prefix("fd00::1/0").network(), prefix("::/0"));
  EXPECT_EQ(prefix("10.1.2.3/24").network().str(), "10.1.2.0/24");
}

TEST(IpPrefixTest, ContainsAddressesInsideOnly) {
  IpPrefix subnet = prefix("10.1.0.1/24");
  EXPECT_TRUE(subnet.contains(ip("10.1.0.0")));
  EXPECT_TRUE(subnet.contains(ip("10.1.0.1")));
  EXPECT_TRUE(subnet.contains(ip("10.1.0.255")));
  EXPECT_FALSE(subnet.contains(ip("10.1.1.0")));
  EXPECT_FALSE(subnet.contains(ip("10.0.255.255")));
  EXPECT_FALSE(subnet.contains(ip("::a01:1"))) << "another family is never inside";
  EXPECT_FALSE(subnet.contains(IpAddr{})) << "nor an unset address";

  EXPECT_TRUE(prefix("0.0.0.0/0").contains(ip("255.255.255.255")));
  EXPECT_FALSE(prefix("0.0.0.0/0").contains(ip("::1")));
  EXPECT_TRUE(prefix("10.1.0.7/32").contains(ip("10.1.0.7")));
  EXPECT_FALSE(prefix("10.1.0.7/32").contains(ip("10.1.0.6")));
  EXPECT_TRUE(prefix("10.128.0.0/9").contains(ip("10.255.0.1")));
  EXPECT_FALSE(prefix("10.128.0.0/9").contains(ip("10.127.255.255")));

  IpPrefix subnet6 = prefix("fd00:1::1/64");
  EXPECT_TRUE(subnet6.contains(ip("fd00:1::ffff")));
  EXPECT_TRUE(subnet6.contains(ip("fd00:1::ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(subnet6.contains(ip("fd00:1:0:1::1")));
  EXPECT_FALSE(subnet6.contains(ip("10.0.0.1")));
  EXPECT_TRUE(prefix("::/0").contains(ip("fd00::1")));
  EXPECT_TRUE(prefix("fd00::/7").contains(ip("fdff::1")));
  EXPECT_TRUE(prefix("fd00::/7").contains(ip("fc00::1")));
  EXPECT_FALSE(prefix("fd00::/7").contains(ip("fe00::1")));
}

}  // namespace
}  // namespace sluice::net
