// The TCP RST a firewall `reject` answers with, made in place from the refused segment
// (RFC 9293 3.10.7.1, as Linux's nf_send_reset): addresses and ports swapped, no data,
// no options, back to the Ethernet source it came from. VLAN tags stay as they were.
#pragma once

#include <cstdint>

#include <rte_ether.h>
#include <rte_mbuf.h>

namespace sluice::l3 {

// `l3_offset`/`l4_offset` from the parse stage; `our_mac` the Ethernet source to use,
// or null to answer as the original destination (a transparent wire). Returns false,
// leaving the packet as it was, when the segment is itself a RST (never answered).
bool tcp_reset_in_place(rte_mbuf* m, uint16_t l3_offset, uint16_t l4_offset, bool ipv6, const rte_ether_addr* our_mac);

}  // namespace sluice::l3
