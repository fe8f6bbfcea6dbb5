// Byte order is part of the type: a be16/be32 field can only be read through
// value(), so a missing ntohs is a compile error, not a bug on the wire.
#pragma once

#include <bit>
#include <cstdint>

namespace sluice::net {

template <typename T>
struct [[gnu::packed]] BigEndian {
  T raw;

  static constexpr T swap(T v) {
    if constexpr (std::endian::native == std::endian::big) return v;
    if constexpr (sizeof(T) == 2) return static_cast<T>(__builtin_bswap16(v));
    if constexpr (sizeof(T) == 4) return static_cast<T>(__builtin_bswap32(v));
    if constexpr (sizeof(T) == 8) return static_cast<T>(__builtin_bswap64(v));
  }
  constexpr T value() const { return swap(raw); }
  constexpr void set(T host) { raw = swap(host); }
  static constexpr BigEndian from(T host) { return BigEndian{swap(host)}; }
  friend constexpr bool operator==(BigEndian a, BigEndian b) { return a.raw == b.raw; }
};

using be16 = BigEndian<uint16_t>;
using be32 = BigEndian<uint32_t>;

static_assert(sizeof(be16) == 2 && sizeof(be32) == 4);

}  // namespace sluice::net
