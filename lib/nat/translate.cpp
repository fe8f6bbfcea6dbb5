#include "nat/translate.h"

#include <cstring>

#include <rte_ip.h>

#include "net/checksum.h"
#include "net/headers.h"

namespace sluice::nat {

using net::csum_apply;
using net::csum_delta16;
using net::csum_delta32;
using net::load16;
using net::load32;
using net::store16;
using net::store32;

namespace {

constexpr uint32_t kIcmpChecksum = 2;

}  // namespace

bool rewrite_quoted(rte_mbuf* m, const Ipv4Packet& p, uint32_t icmp_offset, uint32_t icmp_length, Side side,
                    Endpoint to) {
  if (!p.l4 || p.l4_available < 8 + sizeof(net::Ipv4Header)) return false;
  uint8_t* inner = p.l4 + 8;
  const uint32_t inner_available = p.l4_available - 8;
  const uint32_t inner_header = (inner[0] & 0x0f) * 4u;
  if ((inner[0] >> 4) != 4 || inner_header < sizeof(net::Ipv4Header) || inner_header > inner_available) return false;
  Ipv4Packet quoted{inner, inner + inner_header, inner_available - inner_header, inner[9]};
  if (quoted.l4_available == 0) quoted.l4 = nullptr;
  rewrite(quoted, side, to);
  // The ICMP checksum covers the whole message, quoted bytes included: recomputed.
  store16(p.l4 + kIcmpChecksum, 0);
  uint16_t sum = 0;
  if (rte_raw_cksum_mbuf(m, icmp_offset, icmp_length, &sum) != 0) return false;
  store16(p.l4 + kIcmpChecksum, static_cast<uint16_t>(~sum));
  return true;
}

bool rewrite_error(rte_mbuf* m, const Ipv4Packet& p, uint32_t icmp_offset, uint32_t icmp_length, Side side,
                   Endpoint to) {
  if (!p.l4 || p.l4_available < 8 + sizeof(net::Ipv4Header)) return false;
  const uint8_t* inner = p.l4 + 8;
  const uint32_t inner_header = (inner[0] & 0x0f) * 4u;
  if ((inner[0] >> 4) != 4 || inner_header < sizeof(net::Ipv4Header) || inner_header > p.l4_available - 8)
    return false;
  // The outer end, then the quoted packet's other end: the same endpoint (the error
  // travels against the packet it quotes).
  Ipv4Packet outer{p.ip, nullptr, 0, p.proto};
  rewrite(outer, side, to);
  return rewrite_quoted(m, p, icmp_offset, icmp_length, side == Side::Source ? Side::Destination : Side::Source, to);
}

namespace {

uint16_t word_at(const uint8_t* a, unsigned w) { return static_cast<uint16_t>(a[2 * w] << 8 | a[2 * w + 1]); }
void set_word(uint8_t* a, unsigned w, uint16_t v) {
  a[2 * w] = static_cast<uint8_t>(v >> 8);
  a[2 * w + 1] = static_cast<uint8_t>(v);
}
uint16_t ones_add(uint32_t a, uint32_t b) { return net::csum_fold(a + b); }

}  // namespace

bool npt_matches(const uint8_t* addr, const Nptv6Map& map, bool outward) {
  const uint8_t* prefix = outward ? map.inside.data() : map.outside.data();
  const unsigned full = map.length / 8, rest = map.length % 8;
  if (std::memcmp(addr, prefix, full) != 0) return false;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (addr[full] & mask) == prefix[full];
}

bool npt_translate(uint8_t* addr, const Nptv6Map& map, bool outward) {
  const uint8_t* to = outward ? map.outside.data() : map.inside.data();
  const uint16_t from_sum = outward ? map.inside_sum : map.outside_sum;
  const uint16_t to_sum = outward ? map.outside_sum : map.inside_sum;
  // The word that absorbs the difference: the subnet word for /48 and shorter, else the
  // first interface-identifier word that is not 0xffff (RFC 6296 3.2, 3.5).
  unsigned word = 3;
  if (map.length > 48) {
    word = 4;
    while (word < 8 && word_at(addr, word) == 0xffff) ++word;
    if (word == 8) return false;
  }
  if (word_at(addr, word) == 0xffff) return false;
  const unsigned full = map.length / 8, rest = map.length % 8;
  std::memcpy(addr, to, full);
  if (rest) {
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
    addr[full] = static_cast<uint8_t>((addr[full] & ~mask) | (to[full] & mask));
  }
  // sum(new address) = sum(old) - from_sum + to_sum; the word adds from_sum - to_sum back.
  uint16_t adjusted = ones_add(ones_add(word_at(addr, word), from_sum), static_cast<uint16_t>(~to_sum));
  if (adjusted == 0xffff) adjusted = 0;
  set_word(addr, word, adjusted);
  return true;
}

}  // namespace sluice::nat
