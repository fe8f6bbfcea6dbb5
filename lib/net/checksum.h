// One's-complement checksum arithmetic (RFC 1071) and incremental updates (RFC 1624).
// Values are taken as they sit in a header (network order): the one's-complement sum is
// the same in either byte order, so nothing is swapped as long as every operand is
// read the same way.
#pragma once

#include <cstdint>
#include <cstring>

namespace sluice::net {

// Folds a 32-bit accumulator into 16 bits (end-around carry).
inline uint16_t csum_fold(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// The change from `old_word` to `new_word`, to accumulate: ~m + m' (RFC 1624 eqn. 3).
inline uint32_t csum_delta16(uint16_t old_word, uint16_t new_word) {
  return (~old_word & 0xffffu) + new_word;
}
// The same for a 32-bit field (an IPv4 address): its two 16-bit words.
inline uint32_t csum_delta32(uint32_t old_value, uint32_t new_value) {
  return (~old_value & 0xffffu) + (~old_value >> 16) + (new_value & 0xffffu) + (new_value >> 16);
}

// Applies an accumulated delta to a stored checksum: HC' = ~(~HC + delta).
inline uint16_t csum_apply(uint16_t checksum, uint32_t delta) {
  return static_cast<uint16_t>(~csum_fold((~checksum & 0xffffu) + csum_fold(delta)) & 0xffff);
}

inline uint16_t csum_update16(uint16_t checksum, uint16_t old_word, uint16_t new_word) {
  return csum_apply(checksum, csum_delta16(old_word, new_word));
}
inline uint16_t csum_update32(uint16_t checksum, uint32_t old_value, uint32_t new_value) {
  return csum_apply(checksum, csum_delta32(old_value, new_value));
}

// A UDP checksum after an update: 0 would mean "no checksum" (RFC 768), so a computed
// zero is sent as all ones. (A packet that carried no checksum is never updated.)
inline uint16_t udp_checksum_nonzero(uint16_t checksum) { return checksum == 0 ? 0xffff : checksum; }

// The one's-complement sum of `len` bytes (not yet complemented), words read as stored.
inline uint32_t csum_partial(const void* data, uint32_t len, uint32_t sum = 0) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (len >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    sum += w;
    p += 2;
    len -= 2;
  }
  if (len) {
    uint16_t w = 0;
    std::memcpy(&w, p, 1);  // the odd byte is the high-order byte of a word padded with zero
    sum += w;
  }
  return csum_fold(sum);
}

// Reads and writes a 16-bit field as stored, without alignment assumptions.
inline uint16_t load16(const void* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline void store16(void* p, uint16_t v) { std::memcpy(p, &v, 2); }
inline uint32_t load32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline void store32(void* p, uint32_t v) { std::memcpy(p, &v, 4); }

}  // namespace sluice::net
