// lib/config/lcores: DPDK's -l syntax, and every way to get it wrong.
#include <gtest/gtest.h>

#include "config/lcores.h"

namespace sluice::config {
namespace {

using Lcores = std::vector<unsigned>;

TEST(LcoresTest, ParsesARange) { EXPECT_EQ(parse_lcore_list("0-1", 127), (Lcores{0, 1})); }

TEST(LcoresTest, ParsesASingleLcore) { EXPECT_EQ(parse_lcore_list("3", 127), (Lcores{3})); }

TEST(LcoresTest, ParsesListsOfRangesAndSingles) {
  EXPECT_EQ(parse_lcore_list("0,2-3", 127), (Lcores{0, 2, 3}));
  EXPECT_EQ(parse_lcore_list("0-3,6", 127), (Lcores{0, 1, 2, 3, 6}));
  EXPECT_EQ(parse_lcore_list("7,1-2,4", 127), (Lcores{1, 2, 4, 7}));
}

TEST(LcoresTest, SortsAndRemovesDuplicates) {
  EXPECT_EQ(parse_lcore_list("3,1,1,0-2", 127), (Lcores{0, 1, 2, 3}));
  EXPECT_EQ(parse_lcore_list("2-2", 127), (Lcores{2}));
}

TEST(LcoresTest, AcceptsTheHighestLcore) {
  EXPECT_EQ(parse_lcore_list("127", 127), (Lcores{127}));
  EXPECT_EQ(parse_lcore_list("126-127", 127), (Lcores{126, 127}));
}

TEST(LcoresTest, RejectsMalformedLists) {
  for (const char* bad : {"", ",", "0,", ",0", "0,,1", "-", "0-", "-1", "1-0", "a", "0-a", "1.5", " 0", "0 ", "0-1-2",
                          "0x1", "+1", "0;1", "0-1,", "128", "0-128", "4294967296"}) {
    EXPECT_EQ(parse_lcore_list(bad, 127), std::nullopt) << "'" << bad << "'";
  }
}

}  // namespace
}  // namespace sluice::config
