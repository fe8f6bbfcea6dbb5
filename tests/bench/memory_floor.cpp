// Micro-benchmark of the machine, not of Sluice: what reading random cache lines of a
// flow table's size costs on this host at best, so that the flow-state part of a
// benchmark's cycles per packet has a floor to be read against. tools/bench --lb runs it
// after the apps and reports each pattern:
//
//   floor pattern=bucket lines=1 mib=384 hugepages=1 cycles_per_packet=..
//   floor pattern=bucket+entry lines=2 ...        (a tracked flow: bucket, entry)
//   floor pattern=bucket+pair lines=3 ...         (a NAT/lb flow: bucket, a pair's two lines)
//
//   sluice-memory-floor [--mib N] [--packets N]
//
// Each "packet" reads its pattern's lines at random places of a region of --mib MiB
// (hugepages when the host has them free, as Sluice's tables are). Packets go in bursts
// of 32, the way conntrack's passes take them at their best: every line of the burst
// prefetched first, then all read, so that the misses overlap as far as the memory
// system lets them. Cycles are TSC cycles (what tools/bench's cyc/pkt counts), the
// median of 5 runs. Nothing else is measured: no hashing, no compares.
#include <sys/mman.h>
#include <x86intrin.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr unsigned kBurst = 32;

struct Pattern {
  const char* name;
  unsigned lines;   // lines read per packet
  bool pair_lines;  // the last two are one 128-byte pair (adjacent); else all random
};

// xorshift64: cheap, and no two bursts alike.
inline uint64_t next_random(uint64_t& x) {
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

double cycles_per_packet(const uint8_t* region, size_t bytes, const Pattern& p, unsigned packets) {
  const size_t blocks = bytes / 128;  // a pair's 128-byte blocks; a bucket or entry is one line of one
  uint64_t x = 0x9e3779b97f4a7c15ull, sum = 0;
  size_t at[kBurst][3];
  const unsigned bursts = packets / kBurst;
  const uint64_t start = __rdtsc();
  for (unsigned b = 0; b < bursts; ++b) {
    for (unsigned i = 0; i < kBurst; ++i) {
      for (unsigned l = 0; l < p.lines; ++l) {
        if (p.pair_lines && l == 2) at[i][l] = at[i][1] + 64;  // the pair's second line
        else at[i][l] = (next_random(x) % blocks) * 128;
        _mm_prefetch(reinterpret_cast<const char*>(region + at[i][l]), _MM_HINT_T0);
      }
    }
    for (unsigned i = 0; i < kBurst; ++i)
      for (unsigned l = 0; l < p.lines; ++l) sum += *reinterpret_cast<const volatile uint64_t*>(region + at[i][l]);
  }
  const uint64_t cycles = __rdtsc() - start;
  if (sum == 42) std::puts("");  // keeps the reads
  return double(cycles) / (double(bursts) * kBurst);
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 384;
  unsigned packets = 4u << 20;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--mib" && i + 1 < argc) mib = std::strtoul(argv[++i], nullptr, 10);
    else if (arg == "--packets" && i + 1 < argc) packets = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
    else {
      std::fprintf(stderr, "usage: sluice-memory-floor [--mib N] [--packets N]\n");
      return 2;
    }
  }
  if (mib == 0 || packets < kBurst) {
    std::fprintf(stderr, "sluice-memory-floor: --mib and --packets must be positive (packets >= %u)\n", kBurst);
    return 2;
  }
  const size_t bytes = mib << 20;
  bool huge = true;
  void* region = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
  if (region == MAP_FAILED) {
    huge = false;  // no free hugepages: 4 KiB pages, said so in every line
    region = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  }
  if (region == MAP_FAILED) {
    std::perror("sluice-memory-floor: mmap");
    return 1;
  }
  std::memset(region, 1, bytes);  // every page present before the clock starts
  const Pattern patterns[] = {{"bucket", 1, false}, {"bucket+entry", 2, false}, {"bucket+pair", 3, true}};
  for (const Pattern& p : patterns) {
    std::vector<double> runs;
    for (int r = 0; r < 5; ++r) runs.push_back(cycles_per_packet(static_cast<const uint8_t*>(region), bytes, p, packets));
    std::sort(runs.begin(), runs.end());
    std::printf("floor pattern=%s lines=%u mib=%zu hugepages=%d cycles_per_packet=%.1f\n", p.name, p.lines, mib,
                huge ? 1 : 0, runs[2]);
  }
  munmap(region, bytes);
  return 0;
}
