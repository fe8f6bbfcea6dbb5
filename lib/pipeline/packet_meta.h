// What the parse stage learned about a packet, kept in an mbuf dynamic field (second
// cache line of the mbuf, which TX touches anyway) so later stages never re-parse.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

namespace sluice::pipeline {

enum class L3 : uint8_t { None = 0, Ipv4, Ipv6, Arp, Other };

inline constexpr uint16_t kNoPort = 0xffff;

enum MetaFlags : uint8_t {
  kMetaVlan = 1 << 0,           // at least one 802.1Q/802.1ad tag
  kMetaFragment = 1 << 1,       // an IPv4 or IPv6 fragment
  kMetaLaterFragment = 1 << 2,  // a fragment other than the first: no L4 header
  kMetaIpv6ExtHeaders = 1 << 3,
  kMetaFragmentOnOutput = 1 << 4,  // IPv4 without DF over the egress MTU; aux holds that MTU
  kMetaNatTtlSpent = 1 << 5,  // conntrack: to our address, but NAT sends it on (a port forward), and its TTL is spent
  kMetaTunnelled6 = 1 << 6,   // lb: inside an outer IPv6 header (ipip); the client's packet at l3_offset + 40
};

struct PacketMeta {
  uint16_t l3_offset;  // from the start of the frame
  uint16_t l4_offset;  // 0 when there is no parsed L4 header
  uint16_t l3_length;  // IPv4 total length or IPv6 40 + payload length
  uint16_t vlan_id;    // outermost tag's VID
  uint16_t out_port;   // set by the output decision stage; kNoPort until then
  L3 l3;
  uint8_t l4_proto;    // upper-layer protocol after IPv6 extension headers
  uint8_t flags;
  uint8_t vlan_count;
  uint16_t aux;        // route: why a packet goes to the slow path (PuntReason); before route, for a
                       // new load-balanced connection (kFlowMetaLb): the backend conntrack planned
                       // for (its index in the service; lb::kNoBackend when none was up)
};
static_assert(sizeof(PacketMeta) == 16);

// What conntrack found for a packet, for the stages after it that act on its flow (nat
// and nat_src): a second dynamic field, written by conntrack only on ports that run nat.
enum FlowMetaFlags : uint8_t {
  kFlowMetaNew = 1 << 0,      // conntrack created the flow for this packet
  kFlowMetaRelated = 1 << 1,  // an ICMP error about the flow
  kFlowMetaDestinationKept = 1 << 2,  // new: conntrack found no port forward or mapping taking it
  kFlowMetaEvicted = 1 << 3,  // its flow was evicted for a later packet's new flow in this burst (entry kNoEntry)
  kFlowMetaLb = 1 << 4,       // new, to a load-balanced service: PacketMeta::aux holds its planned backend
  kFlowMetaIpv6 = 1 << 5,     // entry is in the IPv6 table: a load-balanced (ipip) connection's
};
struct FlowMeta {
  uint32_t entry;   // flow table index (IPv4 table; IPv6 with kFlowMetaIpv6) the packet belongs to; flow::kNoEntry: none
  uint16_t egress;  // a new flow's egress port, as conntrack resolved it
  uint8_t flags;    // FlowMetaFlags
  uint8_t dir;      // 0: sent by the flow's opener, 1: by its responder
};
// 8 bytes, as PacketMeta's 16: PMDs register their own dynamic fields first (net_pcap an
// 8-byte timestamp), and a larger field no longer finds room.
static_assert(sizeof(FlowMeta) == 8);

// Registers both fields, once per process, before any port starts; false on failure.
bool register_packet_meta();
extern int g_packet_meta_offset;
extern int g_flow_meta_offset;

inline PacketMeta& meta(rte_mbuf* m) { return *RTE_MBUF_DYNFIELD(m, g_packet_meta_offset, PacketMeta*); }
inline const PacketMeta& meta(const rte_mbuf* m) {
  return *RTE_MBUF_DYNFIELD(m, g_packet_meta_offset, const PacketMeta*);
}
inline FlowMeta& flow_meta(rte_mbuf* m) { return *RTE_MBUF_DYNFIELD(m, g_flow_meta_offset, FlowMeta*); }
inline const FlowMeta& flow_meta(const rte_mbuf* m) { return *RTE_MBUF_DYNFIELD(m, g_flow_meta_offset, const FlowMeta*); }

}  // namespace sluice::pipeline
