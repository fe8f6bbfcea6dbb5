// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software
// Network Load Balancer", NSDI 2016, section 3.4): a lookup table of a prime number of
// entries, each naming a backend, filled from per-backend permutations so that every
// backend holds about its weighted share and a change of the backend set moves few
// entries. Built on the control thread, read by workers through RCU.
//
// The table is a function of the configuration alone: each backend's permutation comes
// from a fixed hash of its identity (its name, else "address:port"), the backends are
// taken in the order of their identities (not of the config file or of start-up), and
// weights enter as integer credits. Every Sluice with the same services picks the same
// backend for the same flow hash, so a flow moved to another box keeps its backend.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::lb {

inline constexpr uint32_t kMaglevDefaultSize = 65537;
inline constexpr uint32_t kMaglevMaxSize = 1000003;  // a prime; 2 MB of entries
inline constexpr uint16_t kNoBackend = 0xffff;

struct MaglevBackend {
  std::string id;       // what the permutation is derived from: unique within the service
  uint32_t weight = 1;  // 0: in the service, holds no entry (down, or drained)
};

bool is_prime(uint32_t n);

// The fixed 64-bit hash a backend's permutation comes from (FNV-1a then a splitmix64
// finaliser: the same on every machine and build).
uint64_t maglev_hash(std::string_view text, uint64_t seed);

class MaglevTable {
 public:
  MaglevTable() = default;

  // Fills the table of `size` entries (a prime) over `backends`; entry values are
  // indices into `backends` as given. Every entry is kNoBackend when no backend has
  // weight. False (and `error`) for a size that is not a prime in [3, kMaglevMaxSize],
  // more than 65535 backends, or two with one id.
  bool build(std::span<const MaglevBackend> backends, uint32_t size, std::string& error);

  // The backend for a flow hash (lemire's multiply-shift, not a division, picks the
  // entry). kNoBackend when the table is empty.
  uint16_t lookup(uint32_t flow_hash) const {
    return entries_[static_cast<uint32_t>((uint64_t(flow_hash) * size_) >> 32)];
  }

  uint32_t size() const { return size_; }
  const std::vector<uint16_t>& entries() const { return entries_; }
  // Entries held by each backend (index as given to build()).
  std::vector<uint32_t> shares(size_t backends) const;

 private:
  uint32_t size_ = 1;
  std::vector<uint16_t> entries_{kNoBackend};
};

}  // namespace sluice::lb
