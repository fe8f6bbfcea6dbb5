// Wire headers as packed structs; sizes are asserted against the RFCs.
#pragma once

#include <cstdint>

#include "net/byte_order.h"

namespace sluice::net {

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;
inline constexpr uint16_t kEtherTypeQinQ = 0x88a8;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86dd;

inline constexpr uint8_t kIpProtoHopByHop = 0;
inline constexpr uint8_t kIpProtoIcmp = 1;
inline constexpr uint8_t kIpProtoTcp = 6;
inline constexpr uint8_t kIpProtoUdp = 17;
inline constexpr uint8_t kIpProtoRouting = 43;
inline constexpr uint8_t kIpProtoFragment = 44;
inline constexpr uint8_t kIpProtoEsp = 50;
inline constexpr uint8_t kIpProtoAh = 51;
inline constexpr uint8_t kIpProtoIcmpv6 = 58;
inline constexpr uint8_t kIpProtoNoNext = 59;
inline constexpr uint8_t kIpProtoDestOpts = 60;
inline constexpr uint8_t kIpProtoMobility = 135;
inline constexpr uint8_t kIpProtoHip = 139;
inline constexpr uint8_t kIpProtoShim6 = 140;

struct MacAddress {
  uint8_t bytes[6];
};

struct [[gnu::packed]] EthernetHeader {
  MacAddress dst;
  MacAddress src;
  be16 ether_type;
};
static_assert(sizeof(EthernetHeader) == 14);

struct [[gnu::packed]] VlanTag {
  be16 tci;         // PCP(3) DEI(1) VID(12)
  be16 ether_type;  // of what follows the tag
  uint16_t vlan_id() const { return tci.value() & 0x0fff; }
};
static_assert(sizeof(VlanTag) == 4);

struct [[gnu::packed]] ArpHeader {
  be16 hardware_type;
  be16 protocol_type;
  uint8_t hardware_len;
  uint8_t protocol_len;
  be16 opcode;
  MacAddress sender_mac;
  be32 sender_ip;
  MacAddress target_mac;
  be32 target_ip;
};
static_assert(sizeof(ArpHeader) == 28);

struct [[gnu::packed]] Ipv4Header {
  uint8_t version_ihl;
  uint8_t tos;
  be16 total_length;
  be16 id;
  be16 fragment;  // flags(3) offset(13)
  uint8_t ttl;
  uint8_t protocol;
  be16 checksum;
  be32 src;
  be32 dst;

  uint8_t version() const { return version_ihl >> 4; }
  uint8_t header_len() const { return static_cast<uint8_t>((version_ihl & 0x0f) * 4); }
  bool more_fragments() const { return fragment.value() & 0x2000; }
  uint16_t fragment_offset() const { return fragment.value() & 0x1fff; }
  bool is_fragment() const { return (fragment.value() & 0x3fff) != 0; }
};
static_assert(sizeof(Ipv4Header) == 20);

struct [[gnu::packed]] Ipv6Header {
  be32 version_class_flow;
  be16 payload_length;
  uint8_t next_header;
  uint8_t hop_limit;
  uint8_t src[16];
  uint8_t dst[16];

  uint8_t version() const { return static_cast<uint8_t>(version_class_flow.value() >> 28); }
};
static_assert(sizeof(Ipv6Header) == 40);

// Hop-by-hop, routing and destination options share this prefix (RFC 8200 4.3-4.6).
struct [[gnu::packed]] Ipv6ExtHeader {
  uint8_t next_header;
  uint8_t length;  // in 8-octet units, not counting the first 8
};

struct [[gnu::packed]] Ipv6FragmentHeader {
  uint8_t next_header;
  uint8_t reserved;
  be16 offset_flags;  // offset(13) res(2) M(1)
  be32 id;
  uint16_t fragment_offset() const { return offset_flags.value() >> 3; }
  bool more_fragments() const { return offset_flags.value() & 1; }
};
static_assert(sizeof(Ipv6FragmentHeader) == 8);

struct [[gnu::packed]] TcpHeader {
  be16 src_port;
  be16 dst_port;
  be32 seq;
  be32 ack;
  uint8_t data_offset_reserved;  // data offset(4) reserved(4)
  uint8_t flags;
  be16 window;
  be16 checksum;
  be16 urgent;

  uint8_t header_len() const { return static_cast<uint8_t>((data_offset_reserved >> 4) * 4); }
};
static_assert(sizeof(TcpHeader) == 20);

struct [[gnu::packed]] UdpHeader {
  be16 src_port;
  be16 dst_port;
  be16 length;
  be16 checksum;
};
static_assert(sizeof(UdpHeader) == 8);

struct [[gnu::packed]] IcmpHeader {
  uint8_t type;
  uint8_t code;
  be16 checksum;
  be32 rest;  // identifier+sequence for echo, unused/MTU for errors
};
static_assert(sizeof(IcmpHeader) == 8);

}  // namespace sluice::net
