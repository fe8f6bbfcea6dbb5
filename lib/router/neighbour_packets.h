// ARP (RFC 826) and IPv6 neighbour discovery (RFC 4861) frames the slow path sends,
// and the checks on the ones it receives.
#pragma once

#include <cstdint>
#include <optional>

#include <rte_ether.h>
#include <rte_mbuf.h>

#include "net/headers.h"

namespace sluice::router {

inline constexpr uint16_t kArpRequest = 1, kArpReply = 2;

// A new mbuf holding the frame, or null when the pool is empty.
rte_mbuf* build_arp(rte_mempool* pool, uint16_t opcode, const rte_ether_addr& src_mac, uint32_t sender_ip_net,
                    const rte_ether_addr& target_mac, uint32_t target_ip_net, const rte_ether_addr& eth_dst);

// Neighbour solicitation for `target`: multicast to its solicited-node group, or
// unicast to `unicast_mac` (a reachability probe).
rte_mbuf* build_ns(rte_mempool* pool, const rte_ether_addr& src_mac, const uint8_t* src_ip, const uint8_t* target,
                   const rte_ether_addr* unicast_mac);
// Neighbour advertisement for our `target` to `dst_ip`/`dst_mac`.
rte_mbuf* build_na(rte_mempool* pool, const rte_ether_addr& src_mac, const uint8_t* target, const uint8_t* dst_ip,
                   const rte_ether_addr& dst_mac, bool solicited, bool override_flag);

struct NdMessage {
  uint8_t type;          // 135 or 136
  const uint8_t* src;    // IPv6 source
  const uint8_t* target;
  bool solicited = false;
  bool override_flag = false;
  std::optional<rte_ether_addr> link_addr;  // SLLA (NS) or TLLA (NA)
};

// Validates an NS/NA (RFC 4861 7.1.1, 7.1.2): hop limit 255, code 0, length,
// checksum, options. The parse stage already checked the IPv6 header.
std::optional<NdMessage> parse_nd(const rte_mbuf* m, uint16_t l3_offset, uint16_t l4_offset);

}  // namespace sluice::router
