#include "pipeline/parse.h"

#include <cstring>

#include <rte_byteorder.h>
#include <rte_prefetch.h>

#include "net/headers.h"

namespace sluice::pipeline {

namespace {

using namespace sluice::net;

constexpr unsigned kMaxVlanTags = 2;
constexpr unsigned kMaxIpv6ExtHeaders = 8;

// The bytes of a packet that parse may read: the first segment, bounded by the frame.
struct View {
  const uint8_t* data;
  uint32_t contiguous;  // bytes readable in the first segment
  uint32_t frame;       // whole frame length over all segments
  bool fits(uint32_t offset, uint32_t len) const { return offset + len <= contiguous; }
  // When a header does not fit: truncated if the frame itself is too short,
  // otherwise the header straddles a segment boundary.
  Drop short_reason(uint32_t offset, uint32_t len, Drop truncated) const {
    return offset + len <= frame ? Drop::HeadersNotContiguous : truncated;
  }
  template <typename T>
  const T* at(uint32_t offset) const { return reinterpret_cast<const T*>(data + offset); }
};

// Parses the L4 header at `offset` with `payload` bytes of IP payload behind it.
std::optional<Drop> parse_l4(const View& view, PacketMeta& pm, uint32_t offset, uint32_t payload,
                             ParseCounts& counts) {
  switch (pm.l4_proto) {
    case kIpProtoTcp: {
      if (payload < sizeof(TcpHeader)) return Drop::TruncatedTcp;
      if (!view.fits(offset, sizeof(TcpHeader))) return view.short_reason(offset, sizeof(TcpHeader), Drop::TruncatedTcp);
      uint32_t header_len = view.at<TcpHeader>(offset)->header_len();
      if (header_len < sizeof(TcpHeader) || header_len > payload) return Drop::BadTcpDataOffset;
      ++counts.tcp;
      break;
    }
    case kIpProtoUdp: {
      if (payload < sizeof(UdpHeader)) return Drop::TruncatedUdp;
      if (!view.fits(offset, sizeof(UdpHeader))) return view.short_reason(offset, sizeof(UdpHeader), Drop::TruncatedUdp);
      uint32_t udp_len = view.at<UdpHeader>(offset)->length.value();
      // A later fragment would carry the rest; the first one's UDP length covers the whole datagram.
      bool fragmented = pm.flags & kMetaFragment;
      if (udp_len < sizeof(UdpHeader) || (!fragmented && udp_len > payload)) return Drop::BadUdpLength;
      ++counts.udp;
      break;
    }
    case kIpProtoIcmp:
    case kIpProtoIcmpv6: {
      if (payload < sizeof(IcmpHeader)) return Drop::TruncatedIcmp;
      if (!view.fits(offset, sizeof(IcmpHeader)))
        return view.short_reason(offset, sizeof(IcmpHeader), Drop::TruncatedIcmp);
      ++(pm.l4_proto == kIpProtoIcmp ? counts.icmp : counts.icmpv6);
      break;
    }
    default:
      return std::nullopt;  // another protocol: no header to check, and no L4 offset
  }
  pm.l4_offset = static_cast<uint16_t>(offset);
  return std::nullopt;
}

std::optional<Drop> parse_ipv4(const View& view, PacketMeta& pm, ParseCounts& counts) {
  uint32_t offset = pm.l3_offset;
  if (!view.fits(offset, sizeof(Ipv4Header))) return view.short_reason(offset, sizeof(Ipv4Header), Drop::TruncatedIpv4);
  const auto* ip = view.at<Ipv4Header>(offset);
  if (ip->version() != 4) return Drop::BadIpv4Version;
  uint32_t header_len = ip->header_len();
  if (header_len < sizeof(Ipv4Header) || offset + header_len > view.frame) return Drop::BadIpv4Ihl;
  if (!view.fits(offset, header_len)) return Drop::HeadersNotContiguous;
  uint32_t total_len = ip->total_length.value();
  // Shorter than the frame is Ethernet padding; longer means the length field lies.
  if (total_len < header_len || offset + total_len > view.frame) return Drop::BadIpv4TotalLength;
  pm.l3 = L3::Ipv4;
  pm.l3_length = static_cast<uint16_t>(total_len);
  pm.l4_proto = ip->protocol;
  ++counts.ipv4;
  if (ip->is_fragment()) {
    pm.flags |= kMetaFragment;
    ++counts.fragments;
    if (ip->fragment_offset() != 0) {
      pm.flags |= kMetaLaterFragment;
      return std::nullopt;
    }
  }
  return parse_l4(view, pm, offset + header_len, total_len - header_len, counts);
}

std::optional<Drop> parse_ipv6(const View& view, PacketMeta& pm, ParseCounts& counts) {
  uint32_t offset = pm.l3_offset;
  if (!view.fits(offset, sizeof(Ipv6Header))) return view.short_reason(offset, sizeof(Ipv6Header), Drop::TruncatedIpv6);
  const auto* ip = view.at<Ipv6Header>(offset);
  if (ip->version() != 6) return Drop::BadIpv6Version;
  uint32_t payload_len = ip->payload_length.value();
  if (offset + sizeof(Ipv6Header) + payload_len > view.frame) return Drop::BadIpv6PayloadLength;
  pm.l3 = L3::Ipv6;
  pm.l3_length = static_cast<uint16_t>(sizeof(Ipv6Header) + payload_len);
  ++counts.ipv6;

  // Walk the extension header chain (RFC 8200 section 4), bounded in count and length.
  uint8_t next = ip->next_header;
  uint32_t cursor = offset + sizeof(Ipv6Header);
  uint32_t end = cursor + payload_len;
  for (unsigned n = 0;; ++n) {
    uint32_t ext_len;
    switch (next) {
      case kIpProtoHopByHop:
        if (n != 0) return Drop::BadIpv6ExtHeader;  // only directly after the fixed header
        [[fallthrough]];
      case kIpProtoRouting:
      case kIpProtoDestOpts:
      case kIpProtoMobility:
      case kIpProtoHip:
      case kIpProtoShim6:
      case kIpProtoAh:
      case kIpProtoFragment:
        break;
      default:
        pm.l4_proto = next;
        if (next == kIpProtoNoNext || next == kIpProtoEsp) return std::nullopt;
        return parse_l4(view, pm, cursor, end - cursor, counts);
    }
    if (n >= kMaxIpv6ExtHeaders) return Drop::BadIpv6ExtHeader;
    // Every extension header is at least 8 octets: fewer left in the payload is malformed,
    // whatever padding or segments follow.
    if (cursor + 8 > end) return Drop::BadIpv6ExtHeader;
    if (!view.fits(cursor, 8)) return Drop::HeadersNotContiguous;
    pm.flags |= kMetaIpv6ExtHeaders;
    const auto* ext = view.at<Ipv6ExtHeader>(cursor);
    if (next == kIpProtoFragment) {
      ext_len = sizeof(Ipv6FragmentHeader);
      if (cursor + ext_len > end) return Drop::BadIpv6ExtHeader;
      const auto* frag = view.at<Ipv6FragmentHeader>(cursor);
      pm.flags |= kMetaFragment;
      ++counts.fragments;
      if (frag->fragment_offset() != 0) {
        pm.flags |= kMetaLaterFragment;
        pm.l4_proto = frag->next_header;
        return std::nullopt;
      }
    } else if (next == kIpProtoAh) {
      ext_len = (ext->length + 2u) * 4u;  // RFC 4302: in 4-octet units, minus 2
    } else {
      ext_len = (ext->length + 1u) * 8u;
    }
    if (cursor + ext_len > end) return Drop::BadIpv6ExtHeader;
    if (!view.fits(cursor, ext_len)) return Drop::HeadersNotContiguous;
    next = ext->next_header;
    cursor += ext_len;
  }
}

// The common case in a dozen compares: an untagged IPv4 frame without options or
// fragmentation, carrying TCP, UDP or ICMP, all in the first segment. The checks are
// parse_ipv4/parse_l4's own; anything else (or anything wrong) takes the full walk,
// which names the reason.
inline bool parse_simple_ipv4(rte_mbuf* m, PacketMeta& pm, ParseCounts& counts) {
  constexpr uint32_t kL3 = sizeof(EthernetHeader), kL4 = kL3 + sizeof(Ipv4Header);
  const uint8_t* data = rte_pktmbuf_mtod(m, const uint8_t*);
  const uint32_t contiguous = rte_pktmbuf_data_len(m);
  if (contiguous < kL4 + sizeof(UdpHeader) || contiguous > rte_pktmbuf_pkt_len(m)) return false;
  uint16_t ether_type;
  std::memcpy(&ether_type, data + 12, 2);
  if (ether_type != rte_cpu_to_be_16(kEtherTypeIpv4) || data[kL3] != 0x45) return false;
  const auto* ip = reinterpret_cast<const Ipv4Header*>(data + kL3);
  const uint32_t total = ip->total_length.value();
  if (kL3 + total > contiguous || (ip->fragment.value() & 0x3fff) != 0) return false;
  const uint8_t* l4 = data + kL4;
  const uint32_t payload = total - sizeof(Ipv4Header);  // total >= 28: the first check and this one
  switch (ip->protocol) {
    case kIpProtoUdp: {
      if (total < sizeof(Ipv4Header) + sizeof(UdpHeader)) return false;
      const uint32_t udp_len = reinterpret_cast<const UdpHeader*>(l4)->length.value();
      if (udp_len < sizeof(UdpHeader) || udp_len > payload) return false;
      ++counts.udp;
      break;
    }
    case kIpProtoTcp: {
      if (total < sizeof(Ipv4Header) + sizeof(TcpHeader)) return false;
      const uint32_t header_len = reinterpret_cast<const TcpHeader*>(l4)->header_len();
      if (header_len < sizeof(TcpHeader) || header_len > payload) return false;
      ++counts.tcp;
      break;
    }
    case kIpProtoIcmp:
      if (payload < sizeof(IcmpHeader)) return false;
      ++counts.icmp;
      break;
    default:
      return false;
  }
  ++counts.ipv4;
  PacketMeta fresh{};
  fresh.l3_offset = kL3;
  fresh.l4_offset = kL4;
  fresh.l3_length = static_cast<uint16_t>(total);
  fresh.out_port = kNoPort;
  fresh.l3 = L3::Ipv4;
  fresh.l4_proto = ip->protocol;
  pm = fresh;
  return true;
}

}  // namespace

std::optional<Drop> ParseStage::parse_packet(rte_mbuf* m, ParseCounts& counts) {
  View view{rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m), rte_pktmbuf_pkt_len(m)};
  if (view.contiguous > view.frame) view.contiguous = view.frame;  // never trust a length field
  PacketMeta& pm = meta(m);
  pm = PacketMeta{};
  pm.out_port = kNoPort;

  if (!view.fits(0, sizeof(EthernetHeader)))
    return view.short_reason(0, sizeof(EthernetHeader), Drop::TruncatedEthernet);
  uint16_t ether_type = view.at<EthernetHeader>(0)->ether_type.value();
  uint32_t offset = sizeof(EthernetHeader);
  while (ether_type == kEtherTypeVlan || ether_type == kEtherTypeQinQ) {
    if (pm.vlan_count == kMaxVlanTags) return Drop::VlanTooDeep;
    if (!view.fits(offset, sizeof(VlanTag))) return view.short_reason(offset, sizeof(VlanTag), Drop::TruncatedVlan);
    const auto* tag = view.at<VlanTag>(offset);
    if (pm.vlan_count == 0) pm.vlan_id = tag->vlan_id();
    ++pm.vlan_count;
    pm.flags |= kMetaVlan;
    ether_type = tag->ether_type.value();
    offset += sizeof(VlanTag);
  }
  if (pm.vlan_count) ++counts.vlan;
  pm.l3_offset = static_cast<uint16_t>(offset);

  switch (ether_type) {
    case kEtherTypeIpv4:
      return parse_ipv4(view, pm, counts);
    case kEtherTypeIpv6:
      return parse_ipv6(view, pm, counts);
    case kEtherTypeArp: {
      if (!view.fits(offset, sizeof(ArpHeader))) return view.short_reason(offset, sizeof(ArpHeader), Drop::TruncatedArp);
      const auto* arp = view.at<ArpHeader>(offset);
      if (arp->hardware_type.value() != 1 || arp->protocol_type.value() != kEtherTypeIpv4 || arp->hardware_len != 6 ||
          arp->protocol_len != 4)
        return Drop::BadArp;
      pm.l3 = L3::Arp;
      ++counts.arp;
      return std::nullopt;
    }
    default:
      pm.l3 = L3::Other;
      ++counts.other_l3;
      return std::nullopt;
  }
}

void ParseStage::process(Burst& burst) {
  constexpr uint16_t kPrefetchAhead = 3;
  ParseCounts counts;
  uint16_t kept = 0;
  const uint16_t n = burst.count;
  for (uint16_t i = 0; i < kPrefetchAhead && i < n; ++i) rte_prefetch0(rte_pktmbuf_mtod(burst.pkts[i], void*));
  for (uint16_t i = 0; i < n; ++i) {
    if (i + kPrefetchAhead < n) rte_prefetch0(rte_pktmbuf_mtod(burst.pkts[i + kPrefetchAhead], void*));
    rte_mbuf* m = burst.pkts[i];
    if (parse_simple_ipv4(m, meta(m), counts)) [[likely]] {
      burst.pkts[kept++] = m;
      continue;
    }
    if (auto reason = parse_packet(m, counts)) [[unlikely]] {
      drop(burst, m, *reason);
      continue;
    }
    burst.pkts[kept++] = m;
  }
  burst.count = kept;
  ipv4_.add(counts.ipv4);
  ipv6_.add(counts.ipv6);
  arp_.add(counts.arp);
  vlan_.add(counts.vlan);
  tcp_.add(counts.tcp);
  udp_.add(counts.udp);
  icmp_.add(counts.icmp);
  icmpv6_.add(counts.icmpv6);
  other_l3_.add(counts.other_l3);
  fragments_.add(counts.fragments);
}

void ParseStage::read_counters(NamedCounters& out) const {
  out.emplace_back("ipv4", ipv4_.get());
  out.emplace_back("ipv6", ipv6_.get());
  out.emplace_back("arp", arp_.get());
  out.emplace_back("vlan", vlan_.get());
  out.emplace_back("tcp", tcp_.get());
  out.emplace_back("udp", udp_.get());
  out.emplace_back("icmp", icmp_.get());
  out.emplace_back("icmpv6", icmpv6_.get());
  out.emplace_back("other_l3", other_l3_.get());
  out.emplace_back("fragments", fragments_.get());
}

}  // namespace sluice::pipeline
