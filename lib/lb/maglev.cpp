#include "lb/maglev.h"

#include <algorithm>
#include <numeric>

namespace sluice::lb {

namespace {

constexpr uint64_t kOffsetSeed = 0x6d61676c65763031ull;  // "maglev01"
constexpr uint64_t kSkipSeed = 0x6d61676c65763032ull;    // "maglev02"

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

bool is_prime(uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (uint32_t d = 3; uint64_t(d) * d <= n; d += 2)
    if (n % d == 0) return false;
  return true;
}

uint64_t maglev_hash(std::string_view text, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull ^ seed;  // FNV-1a 64
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return splitmix64(h);
}

bool MaglevTable::build(std::span<const MaglevBackend> backends, uint32_t size, std::string& error) {
  if (size < 3 || size > kMaglevMaxSize || !is_prime(size)) {
    error = "table size must be a prime between 3 and " + std::to_string(kMaglevMaxSize) + ", got " +
            std::to_string(size);
    return false;
  }
  if (backends.size() >= kNoBackend) {
    error = "at most " + std::to_string(kNoBackend - 1) + " backends, got " + std::to_string(backends.size());
    return false;
  }
  // The order of the identities, not of the list: the same table whatever order the
  // configuration names the backends in.
  std::vector<uint16_t> order(backends.size());
  std::iota(order.begin(), order.end(), uint16_t{0});
  std::sort(order.begin(), order.end(), [&](uint16_t a, uint16_t b) { return backends[a].id < backends[b].id; });
  for (size_t k = 1; k < order.size(); ++k)
    if (backends[order[k]].id == backends[order[k - 1]].id) {
      error = "two backends named '" + backends[order[k]].id + "'";
      return false;
    }

  struct Walk {
    uint16_t backend;  // index as given
    uint32_t weight;
    uint32_t position;  // the permutation's current entry: offset + j * skip (mod size)
    uint32_t skip;
    uint64_t credit;
  };
  std::vector<Walk> walks;
  uint32_t max_weight = 0;
  for (uint16_t b : order) {
    if (backends[b].weight == 0) continue;
    const uint32_t offset = static_cast<uint32_t>(maglev_hash(backends[b].id, kOffsetSeed) % size);
    const uint32_t skip = static_cast<uint32_t>(maglev_hash(backends[b].id, kSkipSeed) % (size - 1)) + 1;
    walks.push_back(Walk{b, backends[b].weight, offset, skip, 0});
    max_weight = std::max(max_weight, backends[b].weight);
  }

  auto next = [size](const Walk& w) {
    const uint32_t p = w.position + w.skip;  // both below size <= kMaglevMaxSize: no overflow
    return p >= size ? p - size : p;
  };
  std::vector<uint16_t> entries(size, kNoBackend);
  if (!walks.empty()) {
    // Rounds over the backends in identity order; each gains its weight in credit and
    // takes its next free preferred entry for every max_weight it holds (Katran's
    // weighted Maglev): shares follow the weights, equal weights the paper's turns.
    uint32_t filled = 0;
    while (filled < size) {
      for (Walk& w : walks) {
        w.credit += w.weight;
        if (w.credit < max_weight) continue;
        w.credit -= max_weight;
        // The permutation visits every entry once (skip < size, size prime): a free one
        // comes before it wraps.
        while (entries[w.position] != kNoBackend) w.position = next(w);
        entries[w.position] = w.backend;
        w.position = next(w);
        if (++filled == size) break;
      }
    }
  }
  entries_ = std::move(entries);
  size_ = size;
  return true;
}

std::vector<uint32_t> MaglevTable::shares(size_t backends) const {
  std::vector<uint32_t> out(backends, 0);
  for (uint16_t e : entries_)
    if (e < backends) ++out[e];
  return out;
}

}  // namespace sluice::lb
