// check_pool: the shutdown's mbuf leak check. Every mbuf back, but for the exact count
// net_af_xdp's fill rings keep; one more missing, or one fewer, fails the stop.
#include <gtest/gtest.h>

#include "runtime/af_xdp.h"
#include "runtime/runtime.h"

namespace sluice::runtime {
namespace {

TEST(CheckPoolTest, EveryMbufBackIsClean) {
  const PoolCheck check = check_pool("sluice_mbuf_s0", 8191, 8191, 0);
  EXPECT_TRUE(check.clean);
  EXPECT_EQ(check.message, "mempool sluice_mbuf_s0: all 8191 mbufs returned");
}

TEST(CheckPoolTest, MissingMbufsWithoutAfXdpAreALeak) {
  const PoolCheck check = check_pool("sluice_mbuf_s0", 8191, 8190, 0);
  EXPECT_FALSE(check.clean);
  EXPECT_EQ(check.message, "mempool sluice_mbuf_s0: 1 mbufs not returned (8190 of 8191 free)");
}

TEST(CheckPoolTest, ExactlyTheAfXdpFillRingsMissingIsClean) {
  // Two net_af_xdp ports, one RX queue each.
  const unsigned kept = 2 * kAfXdpFillRingMbufs;
  const PoolCheck check = check_pool("sluice_mbuf_s0", 16383, 16383 - kept, kept);
  EXPECT_TRUE(check.clean);
  EXPECT_EQ(check.message,
            "mempool sluice_mbuf_s0: all 16383 mbufs accounted for: 12287 returned, 4096 kept by net_af_xdp fill rings");
}

TEST(CheckPoolTest, OneMbufBeyondTheFillRingsIsALeak) {
  // What every af_xdp stop reported before: the fill rings and one mbuf a port.
  const PoolCheck check = check_pool("sluice_mbuf_s0", 16383, 12285, 4096);
  EXPECT_FALSE(check.clean);
  EXPECT_EQ(check.message,
            "mempool sluice_mbuf_s0: 2 mbufs not returned (12285 of 16383 free) beyond the 4096 kept by net_af_xdp fill "
            "rings");
}

TEST(CheckPoolTest, FewerMissingThanTheFillRingsKeepFails) {
  // The PMD freed some of its fill ring after all: the count is wrong, and says so.
  const PoolCheck check = check_pool("sluice_mbuf_s0", 16383, 12288, 4096);
  EXPECT_FALSE(check.clean);
  EXPECT_NE(check.message.find("4095 mbufs missing, but net_af_xdp fill rings should keep 4096"), std::string::npos)
      << check.message;
}

}  // namespace
}  // namespace sluice::runtime
