// The Maglev table (lib/lb/maglev.h): balance, weights, minimal disruption, and the
// same table from the same configuration in another process.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lb/maglev.h"

namespace sluice::lb {
namespace {

constexpr const char* kPinned13 = "acbcabaccaabb";  // backends a, b, c over 13 entries

std::vector<MaglevBackend> backends(unsigned n, uint32_t weight = 1) {
  std::vector<MaglevBackend> out;
  for (unsigned i = 0; i < n; ++i)
    out.push_back({"10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + ":80", weight});
  return out;
}

MaglevTable built(const std::vector<MaglevBackend>& b, uint32_t size = kMaglevDefaultSize) {
  MaglevTable t;
  std::string error;
  EXPECT_TRUE(t.build(b, size, error)) << error;
  return t;
}

// Entries whose backend (by id) differs between two tables.
size_t moved(const MaglevTable& a, const std::vector<MaglevBackend>& ba, const MaglevTable& b,
             const std::vector<MaglevBackend>& bb) {
  size_t n = 0;
  for (uint32_t k = 0; k < a.size(); ++k) {
    const uint16_t x = a.entries()[k], y = b.entries()[k];
    const std::string ix = x == kNoBackend ? "" : ba[x].id, iy = y == kNoBackend ? "" : bb[y].id;
    if (ix != iy) ++n;
  }
  return n;
}

TEST(MaglevTest, SizeMustBeAPrimeInRange) {
  MaglevTable t;
  std::string error;
  EXPECT_FALSE(t.build(backends(3), 65536, error));
  EXPECT_EQ(error, "table size must be a prime between 3 and 1000003, got 65536");
  EXPECT_FALSE(t.build(backends(3), 2, error));
  EXPECT_FALSE(t.build(backends(3), 1000033, error)) << "a prime, too large";
  EXPECT_TRUE(t.build(backends(3), 251, error)) << error;
  EXPECT_TRUE(is_prime(65537));
  EXPECT_TRUE(is_prime(1000003));
  EXPECT_FALSE(is_prime(65535));
  EXPECT_FALSE(is_prime(1));
}

TEST(MaglevTest, TwoBackendsWithOneIdAreRefused) {
  std::vector<MaglevBackend> b = backends(3);
  b[2].id = b[0].id;
  MaglevTable t;
  std::string error;
  EXPECT_FALSE(t.build(b, 251, error));
  EXPECT_EQ(error, "two backends named '10.0.0.1:80'");
}

TEST(MaglevTest, EveryEntryIsFilledAndEqualWeightsShareWithin1Percent) {
  for (unsigned n : {1u, 2u, 3u, 7u, 10u, 100u}) {
    const std::vector<MaglevBackend> b = backends(n);
    const MaglevTable t = built(b);
    const std::vector<uint32_t> shares = t.shares(n);
    uint64_t total = 0;
    for (uint32_t s : shares) total += s;
    EXPECT_EQ(total, kMaglevDefaultSize) << n << " backends: every entry names one";
    const double fair = double(kMaglevDefaultSize) / n;
    for (unsigned i = 0; i < n; ++i)
      EXPECT_NEAR(shares[i], fair, fair * 0.01) << n << " backends, backend " << i;
  }
}

TEST(MaglevTest, WeightsAreHonoured) {
  std::vector<MaglevBackend> b = backends(3);
  b[0].weight = 1;
  b[1].weight = 2;
  b[2].weight = 5;
  const std::vector<uint32_t> shares = built(b).shares(3);
  const double unit = double(kMaglevDefaultSize) / 8;
  EXPECT_NEAR(shares[0], unit * 1, unit * 0.01);
  EXPECT_NEAR(shares[1], unit * 2, unit * 2 * 0.01);
  EXPECT_NEAR(shares[2], unit * 5, unit * 5 * 0.01);
}

TEST(MaglevTest, WeightZeroHoldsNothingAndNoWeightLeavesTheTableEmpty) {
  std::vector<MaglevBackend> b = backends(4);
  b[1].weight = 0;
  const std::vector<uint32_t> shares = built(b).shares(4);
  EXPECT_EQ(shares[1], 0u);
  for (auto& x : b) x.weight = 0;
  const MaglevTable empty = built(b, 251);
  for (uint16_t e : empty.entries()) EXPECT_EQ(e, kNoBackend);
  EXPECT_EQ(empty.lookup(12345), kNoBackend);
}

TEST(MaglevTest, TheOrderOfTheBackendsInTheConfigDoesNotMatter) {
  std::vector<MaglevBackend> b = backends(20);
  const MaglevTable a = built(b);
  std::reverse(b.begin(), b.end());
  const MaglevTable r = built(b);
  const std::vector<MaglevBackend> forward = backends(20);
  EXPECT_EQ(moved(a, forward, r, b), 0u);
}

TEST(MaglevTest, RemovingOneBackendMovesLittleBeyondItsOwnEntries) {
  const unsigned n = 10;
  const std::vector<MaglevBackend> before = backends(n);
  std::vector<MaglevBackend> after = before;
  after.erase(after.begin() + 4);
  const MaglevTable a = built(before), b = built(after);
  const size_t own = a.shares(n)[4];
  const size_t changed = moved(a, before, b, after);
  // The removed backend's entries must move; the paper's figure 11 shows a few percent
  // more at this size (the others' permutations shift where they collide).
  EXPECT_GE(changed, own);
  EXPECT_LE(changed, own + kMaglevDefaultSize / 20) << "own " << own << ", changed " << changed;
}

TEST(MaglevTest, AddingOneBackendMovesAboutOneNth) {
  const unsigned n = 10;
  const std::vector<MaglevBackend> before = backends(n);
  const std::vector<MaglevBackend> after = backends(n + 1);
  const MaglevTable a = built(before), b = built(after);
  const size_t taken = b.shares(n + 1)[n];
  const size_t changed = moved(a, before, b, after);
  const double nth = double(kMaglevDefaultSize) / (n + 1);
  EXPECT_NEAR(taken, nth, nth * 0.01) << "the new backend gets its share";
  EXPECT_LE(changed, taken + kMaglevDefaultSize / 20) << "taken " << taken << ", changed " << changed;
}

TEST(MaglevTest, AnotherProcessBuildsTheSameTable) {
  const std::vector<MaglevBackend> b = backends(50);
  const MaglevTable here = built(b);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // A fresh build in another address space (other heap addresses, no shared state).
    MaglevTable there;
    std::string error;
    there.build(backends(50), kMaglevDefaultSize, error);
    const auto& e = there.entries();
    const size_t bytes = e.size() * sizeof(e[0]);
    ssize_t w = write(fds[1], e.data(), bytes);
    _exit(w == static_cast<ssize_t>(bytes) ? 0 : 1);
  }
  close(fds[1]);
  std::vector<uint16_t> theirs(kMaglevDefaultSize);
  size_t got = 0;
  auto* p = reinterpret_cast<char*>(theirs.data());
  const size_t want = theirs.size() * sizeof(uint16_t);
  while (got < want) {
    const ssize_t r = read(fds[0], p + got, want - got);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_EQ(got, want);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(theirs, here.entries());
}

TEST(MaglevTest, TheTableIsAFunctionOfTheIdsOnly) {
  // Pinned: a change of the hash or the fill order would move every flow of every
  // deployed instance at upgrade. These are the first entries of a 3-backend table.
  const std::vector<MaglevBackend> b = {{"a", 1}, {"b", 1}, {"c", 1}};
  const MaglevTable t = built(b, 13);
  std::string first;
  for (uint16_t e : t.entries()) first += static_cast<char>('a' + e);
  EXPECT_EQ(first, kPinned13);
}

TEST(MaglevTest, ThousandBackendsAt65537BuildQuickly) {
  const std::vector<MaglevBackend> b = backends(1000);
  const auto t0 = std::chrono::steady_clock::now();
  const MaglevTable t = built(b);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[          ] Maglev: 1000 backends, 65537 entries built in %.1f ms\n", ms);
  // Sanitizer builds and a shared 2-CPU machine: a bound far above the 50 ms target,
  // which tools/bench --lb measures on a release build.
  EXPECT_LT(ms, 2000.0);
  const std::vector<uint32_t> shares = t.shares(1000);
  EXPECT_EQ(*std::min_element(shares.begin(), shares.end()) > 0, true);
}

}  // namespace
}  // namespace sluice::lb
