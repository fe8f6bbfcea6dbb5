// ICMP and ICMPv6 messages the fast path sends: echo replies (rewritten in place) and
// errors (built in a fresh mbuf quoting the offending packet, RFC 792/1812, RFC 4443).
// Every message goes back out of the port the packet came in on, to the Ethernet
// source it came from: that neighbour sent it to us, so it can take the answer.
#pragma once

#include <cstdint>

#include <rte_ether.h>
#include <rte_mbuf.h>

namespace sluice::l3 {

namespace icmp4 {
inline constexpr uint8_t kEchoReply = 0, kUnreachable = 3, kEchoRequest = 8, kTimeExceeded = 11;
inline constexpr uint8_t kNetUnreachable = 0, kHostUnreachable = 1, kFragmentationNeeded = 4;
}  // namespace icmp4
namespace icmp6 {
inline constexpr uint8_t kUnreachable = 1, kPacketTooBig = 2, kTimeExceeded = 3, kEchoRequest = 128,
                         kEchoReply = 129, kRouterSolicit = 133, kRouterAdvert = 134, kNeighbourSolicit = 135,
                         kNeighbourAdvert = 136, kRedirect = 137;
inline constexpr uint8_t kNoRoute = 0, kAddressUnreachable = 3;
}  // namespace icmp6

// RFC 1624 incremental update of a one's complement checksum (raw, as stored).
inline uint16_t checksum_adjust(uint16_t checksum, uint16_t old_word, uint16_t new_word) {
  uint32_t sum = (~checksum & 0xffffu) + (~old_word & 0xffffu) + new_word;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

// Whether an error may be sent about this packet at all (RFC 1812 4.3.2.7, RFC 4443
// 2.4 e): never about an ICMP error, a non-first fragment, or a packet from a
// non-unicast source.
bool icmp4_error_allowed(const rte_mbuf* m, uint16_t l3_offset, uint16_t l4_offset, bool later_fragment);
bool icmp6_error_allowed(const rte_mbuf* m, uint16_t l3_offset, uint16_t l4_offset, uint8_t l4_proto,
                         bool later_fragment);

// A new mbuf (from the original's pool) holding the whole error frame, or null when
// the pool is empty. `rest` is the 4 bytes after the checksum (host order): the
// next-hop MTU for "fragmentation needed" and "packet too big".
rte_mbuf* icmp4_error(const rte_mbuf* orig, uint16_t l3_offset, uint8_t type, uint8_t code, uint32_t rest,
                      uint32_t src_addr_net, const rte_ether_addr& our_mac);
rte_mbuf* icmp6_error(const rte_mbuf* orig, uint16_t l3_offset, uint8_t type, uint8_t code, uint32_t rest,
                      const uint8_t* src_addr, const rte_ether_addr& our_mac);

// Turns an echo request for one of our addresses into the reply, in place.
void icmp4_echo_reply(rte_mbuf* m, uint16_t l3_offset, uint16_t l4_offset, const rte_ether_addr& our_mac);
void icmp6_echo_reply(rte_mbuf* m, uint16_t l3_offset, uint16_t l4_offset, const rte_ether_addr& our_mac);

// A token bucket per worker lcore, as the kernel's icmp_msgs_per_sec/icmp_msgs_burst.
class TokenBucket {
 public:
  TokenBucket() = default;
  TokenBucket(unsigned rate_per_second, unsigned burst, uint64_t hz);
  bool take(uint64_t now_tsc) {
    if (rate_ == 0) return false;
    if (tokens_ == 0) {
      uint64_t elapsed = now_tsc - last_tsc_;
      uint64_t fresh = elapsed / cycles_per_token_;
      if (fresh == 0) return false;
      tokens_ = fresh >= burst_ ? burst_ : static_cast<uint32_t>(fresh);
      last_tsc_ += fresh * cycles_per_token_;
      if (tokens_ == burst_) last_tsc_ = now_tsc;
    }
    --tokens_;
    return true;
  }

 private:
  uint32_t rate_ = 0;
  uint32_t burst_ = 0;
  uint32_t tokens_ = 0;
  uint64_t cycles_per_token_ = 1;
  uint64_t last_tsc_ = 0;
};

}  // namespace sluice::l3
