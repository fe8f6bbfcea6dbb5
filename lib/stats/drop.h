// Every reason Sluice discards a packet, declared once: symbol, name, description.
// Stats JSON, Prometheus and telemetry all print from this table, so no reason is
// spelled twice (VPP's foreach_ip4_error).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice {

#define SLUICE_FOREACH_DROP(_)                                                              \
  _(TruncatedEthernet, "truncated_ethernet", "frame shorter than an Ethernet header")      \
  _(TruncatedVlan, "truncated_vlan", "802.1Q tag cut off by the end of the frame")          \
  _(VlanTooDeep, "vlan_too_deep", "more than two stacked VLAN tags")                        \
  _(HeadersNotContiguous, "headers_not_contiguous",                                         \
    "protocol headers span more than the first mbuf segment")                               \
  _(TruncatedArp, "truncated_arp", "ARP packet shorter than its header")                    \
  _(BadArp, "bad_arp", "ARP for another hardware or protocol type, or wrong lengths")       \
  _(TruncatedIpv4, "truncated_ipv4", "frame too short for a 20-byte IPv4 header")           \
  _(BadIpv4Version, "bad_ipv4_version", "IPv4 ethertype with a version other than 4")       \
  _(BadIpv4Ihl, "bad_ipv4_ihl", "IPv4 IHL below 5 or beyond the frame")                    \
  _(BadIpv4TotalLength, "bad_ipv4_total_length",                                            \
    "IPv4 total length below the header length or beyond the frame")                        \
  _(TruncatedIpv6, "truncated_ipv6", "frame too short for a 40-byte IPv6 header")           \
  _(BadIpv6Version, "bad_ipv6_version", "IPv6 ethertype with a version other than 6")       \
  _(BadIpv6PayloadLength, "bad_ipv6_payload_length", "IPv6 payload length beyond the frame") \
  _(BadIpv6ExtHeader, "bad_ipv6_ext_header",                                                \
    "IPv6 extension header truncated, malformed or chain too long")                         \
  _(TruncatedTcp, "truncated_tcp", "TCP header cut off by the IP payload end")              \
  _(BadTcpDataOffset, "bad_tcp_data_offset", "TCP data offset below 5 or beyond the payload") \
  _(TruncatedUdp, "truncated_udp", "UDP header cut off by the IP payload end")              \
  _(BadUdpLength, "bad_udp_length", "UDP length below 8 or beyond the IP payload")          \
  _(TruncatedIcmp, "truncated_icmp", "ICMP or ICMPv6 header cut off by the IP payload end") \
  _(NoOutputPort, "no_output_port", "pipeline finished without choosing an output port")    \
  _(OutputPortDown, "output_port_down", "output port is not polled by this worker")         \
  _(TxQueueFull, "tx_queue_full", "the output queue accepted fewer packets than offered")              \
  _(LinkDown, "link_down", "the output port's link is down (kernel interface or NIC without carrier): dropped before TX") \
  _(NotForUs, "not_for_us", "routed port: unicast frame for another MAC address")                     \
  _(TaggedFrame, "tagged_frame", "routed port: 802.1Q-tagged frame (no VLAN sub-interfaces)")          \
  _(NotIp, "not_ip", "routed port: neither IPv4, IPv6 nor ARP")                                      \
  _(BadIpv4Checksum, "bad_ipv4_checksum", "IPv4 header checksum does not verify")                   \
  _(MartianSource, "martian_source", "source address never valid on the wire (RFC 1812 5.3.7, RFC 4291)") \
  _(MartianDestination, "martian_destination", "destination 0.0.0.0/8, 127.0.0.0/8, :: or ::1")       \
  _(NotRoutable, "not_routable", "multicast, broadcast or link-local destination; routers do not forward it") \
  _(NoRoute, "no_route", "no route to the destination")                                               \
  _(TtlExceeded, "ttl_exceeded", "TTL or hop limit would reach 0")                                    \
  _(TooBig, "too_big", "larger than the egress MTU with DF set, or IPv6")                             \
  _(FragmentFailed, "fragment_failed", "IPv4 fragmentation failed (no mbufs, or too many fragments)")   \
  _(NoNeighbour, "no_neighbour", "next hop unresolved: its queue was full or resolution timed out")    \
  _(LocalUnhandled, "local_unhandled", "addressed to Sluice, but not a protocol it answers")           \
  _(PuntRingFull, "punt_ring_full", "slow-path ring to the control thread was full")                  \
  _(InjectRingFull, "inject_ring_full", "control thread's packet could not be handed to a worker")      \
  _(BadNeighbourPacket, "bad_neighbour_packet", "ARP or neighbour discovery packet failed validation") \
  _(Shutdown, "shutdown", "held by the slow path (waiting for a neighbour, or queued) when Sluice stopped") \
  _(FlowTableFull, "flow_table_full", "new connection, flow table full and no unprotected flow near its key to evict")        \
  _(TcpBadFlags, "tcp_bad_flags", "TCP flag combination no endpoint sends (SYN+FIN, NULL, XMAS, ...)")        \
  _(TcpNoFlow, "tcp_no_flow", "TCP segment that cannot open a connection and belongs to none")               \
  _(TcpBadTransition, "tcp_bad_transition", "TCP segment not valid in its connection's state")              \
  _(TcpOutOfWindow, "tcp_out_of_window", "TCP sequence or acknowledgement outside the tracked window")        \
  _(TcpRstOutOfWindow, "tcp_rst_out_of_window", "TCP RST with a sequence outside the window (RFC 5961)")      \
  _(IcmpNoFlow, "icmp_no_flow", "ICMP reply, or error quoting a packet, that matches no tracked flow")        \
  _(IcmpBadType, "icmp_bad_type", "ICMP type that neither opens a flow, answers one nor is an error")  \
  _(IcmpErrorMismatch, "icmp_error_mismatch", "ICMP error not addressed to the sender of the packet it quotes") \
  _(BadL4Checksum, "bad_l4_checksum", "TCP or UDP checksum wrong on a packet that opens or changes a flow")      \
  _(FirewallDrop, "firewall_drop", "a firewall rule or zone policy said drop")                                \
  _(FirewallReject, "firewall_reject", "a firewall rule or zone policy said reject (a RST or unreachable sent, rate permitting)") \
  _(LaterFragment, "later_fragment", "non-first fragment (no ports to track), conntrack.later_fragments drop") \
  _(HandoffRingFull, "handoff_ring_full", "software steering: the owning worker's ring was full")                \
  _(NatNoPort, "nat_no_port", "new connection to translate: no outside port of the worker's share free (or no address to masquerade with)") \
  _(NatTableFull, "nat_table_full", "new connection to translate: no room for its translation (NAT pool full, nothing evictable)") \
  _(NatUntranslated, "nat_untranslated", "a translated connection's packet with its untranslated address (not part of it)") \
  _(Nptv6Untranslatable, "nptv6_untranslatable", "NPTv6: the address word to adjust is 0xffff, the address cannot map (RFC 6296 3.5)") \
  _(FragmentOverlap, "fragment_overlap", "IPv4 fragment overlapping another of its datagram (the datagram dropped), or misaligned (that fragment dropped)") \
  _(FragmentDuplicate, "fragment_duplicate", "IPv4 fragment identical in place to one held: the duplicate dropped") \
  _(FragmentTooLong, "fragment_too_long", "IPv4 fragment reaching past 65535 bytes: the datagram dropped") \
  _(FragmentTooMany, "fragment_too_many", "more fragments than nat.fragments.max_fragments: the datagram dropped") \
  _(ReassemblyFull, "reassembly_full", "nat.fragments.max_datagrams datagrams in reassembly already: the fragment dropped") \
  _(ReassemblyTimeout, "reassembly_timeout", "fragment of a datagram not completed within nat.fragments.timeout_ms") \
  _(ReassemblyFailed, "reassembly_failed", "fragments of a complete datagram that could not be chained (mbuf limits)") \
  _(LbNoBackend, "lb_no_backend", "new connection to a load-balanced service: no backend up (or every weight 0)") \
  _(LbBackendRemoved, "lb_backend_removed", "packet of a connection whose backend left its service (on_backend_removed: drop)") \
  _(LbTunnelFailed, "lb_tunnel_failed", "ipip: no room to prepend the outer header (mbuf headroom), or no route toward the backend to take a tunnel source from") \
  _(LbIpv6Fragment, "lb_ipv6_fragment", "IPv6 fragment to an IPv6 service's VIP: Sluice does not reassemble IPv6, and only a first fragment has the ports a backend is picked by")

enum class Drop : uint8_t {
#define SLUICE_DROP_ENUM(sym, name, desc) sym,
  SLUICE_FOREACH_DROP(SLUICE_DROP_ENUM)
#undef SLUICE_DROP_ENUM
};

inline constexpr size_t kDropCount = 0
#define SLUICE_DROP_COUNT(sym, name, desc) +1
    SLUICE_FOREACH_DROP(SLUICE_DROP_COUNT)
#undef SLUICE_DROP_COUNT
    ;

struct DropInfo {
  std::string_view name;
  std::string_view description;
};

inline constexpr std::array<DropInfo, kDropCount> kDropInfo = {{
#define SLUICE_DROP_INFO(sym, name, desc) {name, desc},
    SLUICE_FOREACH_DROP(SLUICE_DROP_INFO)
#undef SLUICE_DROP_INFO
}};

constexpr std::string_view drop_name(Drop reason) { return kDropInfo[static_cast<size_t>(reason)].name; }
constexpr std::string_view drop_description(Drop reason) {
  return kDropInfo[static_cast<size_t>(reason)].description;
}
std::optional<Drop> drop_from_name(std::string_view name);

}  // namespace sluice
