#include "pipeline/route.h"

#include <array>
#include <cstring>

#include <rte_cycles.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>

#include "lb/ipip.h"
#include "net/headers.h"

namespace sluice::pipeline {

using net::EthernetHeader;
using net::IcmpHeader;
using net::Ipv4Header;
using net::Ipv6Header;

namespace {

enum Fate : uint8_t { kGone = 0, kLookup, kResolve, kReady };

bool is_zero(const uint8_t* a) {
  static const uint8_t zero[16] = {};
  return std::memcmp(a, zero, 16) == 0;
}
bool is_loopback(const uint8_t* a) {
  static const uint8_t loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return std::memcmp(a, loopback, 16) == 0;
}
bool is_link_local6(const uint8_t* a) { return a[0] == 0xfe && (a[1] & 0xc0) == 0x80; }

// Header checksum check: the common 20-byte header as five 32-bit words (one's
// complement sums fold the same at any width), options through rte_raw_cksum.
inline bool ipv4_checksum_ok(const Ipv4Header* ip) {
  unsigned len = ip->header_len();
  if (len != sizeof(Ipv4Header)) return rte_raw_cksum(ip, len) == 0xffff;
  uint32_t w[5];
  std::memcpy(w, ip, sizeof(w));
  uint64_t sum = uint64_t(w[0]) + w[1] + w[2] + w[3] + w[4];
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}

// First octets that make an IPv4 address martian (RFC 1812 5.3.7, check_ipv4): as a
// source (bit 0: 0/8, 127/8, 224/3), as a destination (bit 1: 0/8, 127/8, 224/3), and
// 169 (bit 2), where 169.254/16 link-local needs the second octet too.
constexpr std::array<uint8_t, 256> kOctetClass = [] {
  std::array<uint8_t, 256> t{};
  t[0] = t[127] = 3;
  for (unsigned o = 224; o < 256; ++o) t[o] = 3;
  t[169] = 4;
  return t;
}();

// RFC 1624 TTL decrement, as Linux's ip_decrease_ttl.
void decrement_ttl(Ipv4Header* ip) {
  uint32_t check = ip->checksum.raw;
  check += rte_cpu_to_be_16(0x0100);
  ip->checksum.raw = static_cast<uint16_t>(check + (check >= 0xffff));
  --ip->ttl;
}

}  // namespace

RouteStage::RouteStage(uint16_t ingress_port, const L3Context& context, const TxQueues* tx_queues)
    : Stage("route"), ingress_port_(ingress_port), ctx_(context), tx_queues_(tx_queues), hz_(rte_get_tsc_hz()) {}

uint32_t RouteStage::flow_hash(const rte_mbuf* m, const PacketMeta& pm) {
  uint32_t ports = 0;
  // Only the first fragment carries the ports: leaving them out of every fragment keeps
  // one datagram's fragments on one path (as the kernel's flow dissector does).
  if (pm.l4_offset && !(pm.flags & kMetaFragment) &&
      (pm.l4_proto == net::kIpProtoTcp || pm.l4_proto == net::kIpProtoUdp)) {
    const auto* l4 = rte_pktmbuf_mtod_offset(m, const uint16_t*, pm.l4_offset);
    ports = uint32_t(l4[0] ^ l4[1]);
  }
  uint32_t addrs;
  if (pm.l3 == L3::Ipv4) {
    const auto* ip = rte_pktmbuf_mtod_offset(m, const Ipv4Header*, pm.l3_offset);
    addrs = ip->src.raw ^ ip->dst.raw;
  } else {
    const auto* ip = rte_pktmbuf_mtod_offset(m, const Ipv6Header*, pm.l3_offset);
    uint32_t words[8];
    std::memcpy(words, ip->src, 32);
    addrs = words[0] ^ words[1] ^ words[2] ^ words[3] ^ words[4] ^ words[5] ^ words[6] ^ words[7];
  }
  // XOR first keeps the hash symmetric: (a, b) and (b, a) mix to the same input.
  return rte_hash_crc_4byte(addrs, rte_hash_crc_4byte(ports | uint32_t(pm.l4_proto) << 16, 0x5109e));
}

bool RouteStage::check_ipv4(rte_mbuf* m, PacketMeta& pm, Drop& reason) {
  const auto* ip = rte_pktmbuf_mtod_offset(m, const Ipv4Header*, pm.l3_offset);
  uint64_t cksum = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
  if (cksum == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
      (cksum != RTE_MBUF_F_RX_IP_CKSUM_GOOD && !ipv4_checksum_ok(ip))) {
    reason = Drop::BadIpv4Checksum;
    return false;
  }
  uint32_t src = ip->src.value(), dst = ip->dst.value();
  if ((src >> 24) == 0 || (src >> 24) == 127 || (src >> 28) >= 0xe) {
    reason = Drop::MartianSource;
    return false;
  }
  if ((dst >> 24) == 0 || (dst >> 24) == 127) {
    reason = Drop::MartianDestination;
    return false;
  }
  // Multicast, class E, limited broadcast; and link-local (RFC 3927 7).
  if ((dst >> 28) >= 0xe || (dst >> 16) == 0xa9fe || (src >> 16) == 0xa9fe) {
    reason = Drop::NotRoutable;
    return false;
  }
  return true;
}

bool RouteStage::check_ipv6(rte_mbuf* m, PacketMeta& pm, Drop& reason, bool& punt) {
  const auto* ip = rte_pktmbuf_mtod_offset(m, const Ipv6Header*, pm.l3_offset);
  if (pm.l4_proto == net::kIpProtoIcmpv6 && pm.l4_offset) {
    uint8_t type = rte_pktmbuf_mtod_offset(m, const IcmpHeader*, pm.l4_offset)->type;
    if (type == l3::icmp6::kNeighbourSolicit || type == l3::icmp6::kNeighbourAdvert) {
      punt = true;
      return true;
    }
  }
  // Link-scope chatter first (MLD reports and router solicitations, some from ::):
  // multicast is never routed, whatever its source.
  if (ip->dst[0] == 0xff) {
    reason = Drop::NotRoutable;
    return false;
  }
  if (ip->src[0] == 0xff || is_zero(ip->src) || is_loopback(ip->src)) {
    reason = Drop::MartianSource;
    return false;
  }
  if (is_zero(ip->dst) || is_loopback(ip->dst)) {
    reason = Drop::MartianDestination;
    return false;
  }
  if (is_link_local6(ip->dst) || is_link_local6(ip->src)) {
    reason = Drop::NotRoutable;
    return false;
  }
  return true;
}

void RouteStage::send_icmp_error(Burst& /*burst*/, rte_mbuf* m, const PacketMeta& pm, const l3::RouteTable& table,
                                 uint8_t type, uint8_t code, uint32_t rest, uint16_t& /*kept*/) {
  const l3::Interface& itf = table.interface(ingress_port_);
  rte_mbuf* out = nullptr;
  bool later = pm.flags & kMetaLaterFragment;
  if (pm.l3 == L3::Ipv4) {
    if (itf.ipv4 == 0 || !l3::icmp4_error_allowed(m, pm.l3_offset, pm.l4_offset, later)) return;
    if (!ctx_.icmp_bucket->take(rte_rdtsc())) {
      icmp_rate_limited_.inc();
      return;
    }
    out = l3::icmp4_error(m, pm.l3_offset, type, code, rest, itf.ipv4, itf.mac);
  } else {
    if (!itf.has_ipv6 || !l3::icmp6_error_allowed(m, pm.l3_offset, pm.l4_offset, pm.l4_proto, later)) return;
    if (!ctx_.icmp_bucket->take(rte_rdtsc())) {
      icmp_rate_limited_.inc();
      return;
    }
    out = l3::icmp6_error(m, pm.l3_offset, type, code, rest, itf.ipv6.data(), itf.mac);
  }
  if (!out) {
    icmp_no_mbuf_.inc();
    return;
  }
  if (post_routing_ && pm.l3 == L3::Ipv4) [[unlikely]]
    post_routing_->quote_as_sent(out, sizeof(net::EthernetHeader) + sizeof(net::Ipv4Header), m);
  TxQueue* tx = (*tx_queues_)[ingress_port_];
  if (!tx) {
    rte_pktmbuf_free(out);
    return;
  }
  meta(out) = PacketMeta{};
  meta(out).out_port = ingress_port_;
  if (type == l3::icmp4::kTimeExceeded && pm.l3 == L3::Ipv4) icmp_time_exceeded_.inc();
  else if (type == l3::icmp6::kTimeExceeded && pm.l3 == L3::Ipv6) icmp_time_exceeded_.inc();
  else if ((pm.l3 == L3::Ipv4 && code == l3::icmp4::kFragmentationNeeded) ||
           (pm.l3 == L3::Ipv6 && type == l3::icmp6::kPacketTooBig))
    icmp_too_big_.inc();
  else icmp_unreachable_.inc();
  tx->push(out);
}

void RouteStage::process(Burst& burst) {
  const l3::RouteTable& table = *ctx_.routes->get();
  if (burst.count && process_simple(burst, table)) [[likely]]
    return;
  process_any(burst, table);
}

// The common burst in one tight pass per step (as l3fwd does): every packet untagged
// IPv4 without options, to our MAC, checksum right, addresses routable, a route out
// through a resolved neighbour, TTL to spare and within the MTU. The checks are
// process_any's, in the same order; the first packet that needs anything else (an
// ICMP answer, the slow path, fragmentation, IPv6, ARP) sends the whole burst there
// before anything was changed. Returns whether it forwarded the burst.
bool RouteStage::process_simple(Burst& burst, const l3::RouteTable& table) {
  const uint64_t in_mac = table.interface(ingress_port_).mac_word;
  const l3::NeighbourTable* const neighbours = ctx_.neighbours;
  const uint16_t n = burst.count;
  // Pointers kept from step 1: the frame stores of step 3 go through uint8_t*, which
  // would make the compiler reload anything it cannot prove apart (mbuf fields, meta).
  uint32_t dst[kMaxBurst];
  uint8_t* frames[kMaxBurst];
  PacketMeta* pms[kMaxBurst];

  // Step 1: headers and addresses.
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = burst.pkts[i];
    PacketMeta& pm = meta(m);
    if (pm.l3 != L3::Ipv4 || pm.l3_offset != sizeof(EthernetHeader)) return false;  // untagged
    uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
    if (l3::load_mac(frame) != in_mac) return false;  // also every group address
    auto* ip = reinterpret_cast<Ipv4Header*>(frame + sizeof(EthernetHeader));
    if (ip->version_ihl != 0x45) return false;
    const uint64_t cksum = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
    if (cksum != RTE_MBUF_F_RX_IP_CKSUM_GOOD && (cksum == RTE_MBUF_F_RX_IP_CKSUM_BAD || !ipv4_checksum_ok(ip)))
      return false;
    const uint32_t s = ip->src.value(), d = ip->dst.value();
    // Martian source or destination, multicast/class E/broadcast, link-local (check_ipv4's).
    const uint8_t octets = (kOctetClass[s >> 24] & 5) | (kOctetClass[d >> 24] & 6);
    if (octets) [[unlikely]] {
      if ((octets & 3) || (d >> 16) == 0xa9fe || (s >> 16) == 0xa9fe) return false;
    }
    dst[i] = d;
    frames[i] = frame;
    pms[i] = &pm;
  }

  // Step 2: one bulk FIB lookup; the next hop and its MAC for each. A pinned gateway
  // (FastHop::simple) needs no hop walk and no neighbour lookup: the packet keeps a
  // pointer to it. Any other hop gets a FastHop of its own in `walked`, its MAC
  // resolved after the loop, once per run of equal keys.
  uint64_t groups[kMaxBurst];
  table.lookup4(dst, groups, n);
  const l3::FastHop* hops[kMaxBurst];
  uint64_t macs[kMaxBurst];
  l3::FastHop walked[kMaxBurst];
  l3::NeighbourKey keys[kMaxBurst];
  const l3::NeighbourKey* key_ptrs[kMaxBurst];
  int16_t key_of[kMaxBurst];
  unsigned n_keys = 0;
  bool any_walked = false;
  for (uint16_t i = 0; i < n; ++i) {
    const auto* ip = reinterpret_cast<const Ipv4Header*>(frames[i] + sizeof(EthernetHeader));
    const uint16_t l3_length = pms[i]->l3_length;
    const l3::FastHop& fast = table.fast_hop(groups[i]);
    if (fast.simple) [[likely]] {
      if (ip->ttl <= 1 || l3_length > fast.mtu) return false;
      const uint64_t mac = neighbours->mac(fast.neighbour);
      if (!(mac & l3::kMacValid)) return false;  // waits for resolution: the slow path holds it
      macs[i] = mac;
      hops[i] = &fast;
      continue;
    }
    if (groups[i] == l3::kNoRoute) return false;
    const l3::NextHop& hop =
        table.pick(groups[i], table.multipath(groups[i]) ? flow_hash(burst.pkts[i], *pms[i]) : 0);
    if (hop.kind != l3::HopKind::Neighbour || ip->ttl <= 1 || l3_length > table.interface(hop.port_id).mtu)
      return false;
    l3::FastHop& own = walked[i];
    own = l3::FastHop{};
    own.port_id = hop.port_id;
    own.neighbour = hop.neighbour;
    own.set_src_mac(table.interface(hop.port_id).mac);
    hops[i] = &own;
    any_walked = true;
    key_of[i] = -1;
    if (hop.neighbour >= 0) continue;
    // On the link: the destination itself.
    l3::NeighbourKey& key = keys[n_keys];
    key = hop.gateway.is_set() ? l3::NeighbourKey::of(hop.port_id, hop.gateway)
                               : l3::NeighbourKey::v4(hop.port_id, ip->dst.raw);
    if (n_keys > 0 && key == keys[n_keys - 1]) {
      key_of[i] = static_cast<int16_t>(n_keys - 1);
      continue;
    }
    key_ptrs[n_keys] = &key;
    key_of[i] = static_cast<int16_t>(n_keys++);
  }
  if (any_walked) [[unlikely]] {
    int32_t key_positions[kMaxBurst];
    if (n_keys) neighbours->lookup_bulk(key_ptrs, n_keys, key_positions);
    for (uint16_t i = 0; i < n; ++i) {
      if (hops[i] != &walked[i]) continue;  // a pinned gateway: has its MAC
      l3::FastHop& own = walked[i];
      if (key_of[i] >= 0) own.neighbour = key_positions[key_of[i]];
      const uint64_t mac = own.neighbour >= 0 ? neighbours->mac(own.neighbour) : 0;
      if (!(mac & l3::kMacValid)) return false;
      macs[i] = mac;
    }
  }

  // Step 3: forward. Nothing was changed before this point.
  const uint64_t now = rte_rdtsc();
  int32_t last_touched = -1;
  for (uint16_t i = 0; i < n; ++i) {
    uint8_t* eth = frames[i];
    const l3::FastHop& hop = *hops[i];
    decrement_ttl(reinterpret_cast<Ipv4Header*>(eth + sizeof(EthernetHeader)));
    // Both MACs in two stores: destination and the source's head, then its tail.
    const uint64_t first8 = (macs[i] & 0xffffffffffffull) | uint64_t(hop.src_mac_head) << 48;
    std::memcpy(eth, &first8, 8);
    std::memcpy(eth + 8, &hop.src_mac_tail, 4);
    pms[i]->out_port = hop.port_id;
    if (hop.neighbour != last_touched) {
      neighbours->touch(hop.neighbour, now, hz_);
      last_touched = hop.neighbour;
    }
  }
  forwarded4_.add(n);
  route_lookups_.add(n);  // counted once the burst is ours (a fallback counts its own)
  return true;
}

void RouteStage::process_any(Burst& burst, const l3::RouteTable& table) {
  const l3::Interface& in_itf = table.interface(ingress_port_);
  const uint16_t n = burst.count;

  uint8_t fate[kMaxBurst];
  uint64_t group[kMaxBurst];
  uint32_t addr4[kMaxBurst];
  uint8_t addr6[kMaxBurst][16];
  uint64_t groups4[kMaxBurst], groups6[kMaxBurst];
  uint16_t idx4[kMaxBurst], idx6[kMaxBurst];
  unsigned n4 = 0, n6 = 0;
  rte_mbuf* punts[kMaxBurst];
  uint16_t n_punts = 0;

  // Pass 1: L2 filter, header and address checks; gather destinations.
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = burst.pkts[i];
    PacketMeta& pm = meta(m);
    fate[i] = kGone;
    m->port = ingress_port_;  // not every PMD sets it; the slow path needs it
    if (i + 3 < n) rte_prefetch0(rte_pktmbuf_mtod(burst.pkts[i + 3], void*));
    const auto* eth = rte_pktmbuf_mtod(m, const EthernetHeader*);
    bool l2_group = eth->dst.bytes[0] & 1;
    if (!l2_group && l3::load_mac(eth->dst.bytes) != in_itf.mac_word) {
      drop(burst, m, Drop::NotForUs);
      continue;
    }
    if (pm.vlan_count) {
      drop(burst, m, Drop::TaggedFrame);
      continue;
    }
    Drop reason = Drop::NotIp;
    if (pm.l3 == L3::Ipv4) {
      if (!check_ipv4(m, pm, reason)) {
        drop(burst, m, reason);
        continue;
      }
      if (l2_group) {  // RFC 1812 5.3.4: a link-layer broadcast is not forwarded
        drop(burst, m, Drop::NotRoutable);
        continue;
      }
      addr4[n4] = rte_pktmbuf_mtod_offset(m, const Ipv4Header*, pm.l3_offset)->dst.value();
      idx4[n4++] = i;
      fate[i] = kLookup;
    } else if (pm.l3 == L3::Ipv6) {
      bool punt = false;
      if (!check_ipv6(m, pm, reason, punt)) {
        drop(burst, m, reason);
        continue;
      }
      if (punt) {
        pm.aux = kPuntNd;
        punts[n_punts++] = m;
        continue;
      }
      if (l2_group) {
        drop(burst, m, Drop::NotRoutable);
        continue;
      }
      std::memcpy(addr6[n6], rte_pktmbuf_mtod_offset(m, const Ipv6Header*, pm.l3_offset)->dst, 16);
      idx6[n6++] = i;
      fate[i] = kLookup;
    } else if (pm.l3 == L3::Arp) {
      pm.aux = kPuntArp;
      punts[n_punts++] = m;
    } else {
      drop(burst, m, Drop::NotIp);
    }
  }

  // Pass 2: one bulk FIB lookup per family.
  if (n4) {
    table.lookup4(addr4, groups4, n4);
    for (unsigned k = 0; k < n4; ++k) group[idx4[k]] = groups4[k];
  }
  if (n6) {
    table.lookup6(addr6, groups6, n6);
    for (unsigned k = 0; k < n6; ++k) group[idx6[k]] = groups6[k];
  }

  // Pass 3: act on the route; gather next-hop neighbours. Gateways carry their
  // neighbour position in the route; on-link destinations are looked up, once per run
  // of equal keys.
  l3::NeighbourKey keys[kMaxBurst];
  const l3::NeighbourKey* key_ptrs[kMaxBurst];
  int32_t position[kMaxBurst];
  int16_t key_of[kMaxBurst];  // packet -> index in keys, or -1 when the route gave the position
  uint16_t resolve_idx[kMaxBurst];
  bool needs_fragment[kMaxBurst];
  unsigned n_keys = 0, n_resolve = 0;
  uint16_t unused = 0;
  uint32_t misses = 0;
  for (uint16_t i = 0; i < n; ++i) {
    if (fate[i] != kLookup) continue;
    rte_mbuf* m = burst.pkts[i];
    PacketMeta& pm = meta(m);
    const bool v4 = pm.l3 == L3::Ipv4;
    fate[i] = kGone;
    if (group[i] == l3::kNoRoute) {
      ++misses;
      send_icmp_error(burst, m, pm, table, v4 ? l3::icmp4::kUnreachable : l3::icmp6::kUnreachable,
                      v4 ? l3::icmp4::kNetUnreachable : l3::icmp6::kNoRoute, 0, unused);
      drop(burst, m, Drop::NoRoute);
      continue;
    }
    const l3::NextHop& hop = table.pick(group[i], table.multipath(group[i]) ? flow_hash(m, pm) : 0);
    if (hop.kind == l3::HopKind::Local) [[unlikely]] {
      if (pm.flags & kMetaNatTtlSpent) {
        // A port forward's packet with its TTL spent: forwarded, not ours; quoted as it came.
        send_icmp_error(burst, m, pm, table, l3::icmp4::kTimeExceeded, 0, 0, unused);
        drop(burst, m, Drop::TtlExceeded);
        continue;
      }
      const bool later = pm.flags & kMetaFragment;
      if (pm.l4_offset && !later) {
        const auto* icmp = rte_pktmbuf_mtod_offset(m, const IcmpHeader*, pm.l4_offset);
        if (v4 && pm.l4_proto == net::kIpProtoIcmp && icmp->type == l3::icmp4::kEchoRequest) {
          l3::icmp4_echo_reply(m, pm.l3_offset, pm.l4_offset, in_itf.mac);
          pm.out_port = ingress_port_;
          local4_.inc();
          icmp_echo_replies_.inc();
          fate[i] = kReady;
          continue;
        }
        if (!v4 && pm.l4_proto == net::kIpProtoIcmpv6 && icmp->type == l3::icmp6::kEchoRequest) {
          l3::icmp6_echo_reply(m, pm.l3_offset, pm.l4_offset, in_itf.mac);
          pm.out_port = ingress_port_;
          local6_.inc();
          icmp_echo_replies_.inc();
          fate[i] = kReady;
          continue;
        }
      }
      drop(burst, m, Drop::LocalUnhandled);
      continue;
    }
    if (hop.kind == l3::HopKind::Broadcast) [[unlikely]] {
      drop(burst, m, Drop::NotRoutable);
      continue;
    }
    // Forwarding: TTL, then MTU.
    const uint8_t ttl = v4 ? rte_pktmbuf_mtod_offset(m, const Ipv4Header*, pm.l3_offset)->ttl
                           : rte_pktmbuf_mtod_offset(m, const Ipv6Header*, pm.l3_offset)->hop_limit;
    if (ttl <= 1) [[unlikely]] {
      send_icmp_error(burst, m, pm, table, v4 ? l3::icmp4::kTimeExceeded : l3::icmp6::kTimeExceeded, 0, 0, unused);
      drop(burst, m, Drop::TtlExceeded);
      continue;
    }
    const uint16_t mtu = table.interface(hop.port_id).mtu;
    needs_fragment[i] = false;
    if (pm.l3_length > mtu) [[unlikely]] {
      bool df = !v4 || (rte_pktmbuf_mtod_offset(m, const Ipv4Header*, pm.l3_offset)->fragment.value() & 0x4000);
      if (df) {
        if (pm.flags & kMetaTunnelled6) [[unlikely]] {
          // The load balancer's tunnel (ipip): the client's packet does not fit with the
          // outer header. Told to the client, about its own packet, with the MTU it has
          // left (RFC 2473 7.1): the outer packet's source is ours.
          if (lb::ip6ip6_strip(m, pm.l3_offset)) {
            pm.l3_length = static_cast<uint16_t>(pm.l3_length - lb::kOuter6);
            if (pm.l4_offset) pm.l4_offset = static_cast<uint16_t>(pm.l4_offset - lb::kOuter6);
            pm.l4_proto = rte_pktmbuf_mtod_offset(m, const Ipv6Header*, pm.l3_offset)->next_header;
            pm.flags &= static_cast<uint8_t>(~kMetaTunnelled6);
            send_icmp_error(burst, m, pm, table, l3::icmp6::kPacketTooBig, 0, mtu - lb::kOuter6, unused);
          }
          drop(burst, m, Drop::TooBig);
          continue;
        }
        send_icmp_error(burst, m, pm, table, v4 ? l3::icmp4::kUnreachable : l3::icmp6::kPacketTooBig,
                        v4 ? l3::icmp4::kFragmentationNeeded : 0, mtu, unused);
        drop(burst, m, Drop::TooBig);
        continue;
      }
      needs_fragment[i] = true;
    }
    pm.out_port = hop.port_id;
    resolve_idx[n_resolve++] = i;
    fate[i] = kResolve;
    if (hop.neighbour >= 0) {
      position[i] = hop.neighbour;
      key_of[i] = -1;
      continue;
    }
    l3::NeighbourKey& key = keys[n_keys];
    if (hop.gateway.is_set()) {
      key = l3::NeighbourKey::of(hop.port_id, hop.gateway);
    } else if (v4) {
      key = l3::NeighbourKey::v4(hop.port_id, rte_pktmbuf_mtod_offset(m, const Ipv4Header*, pm.l3_offset)->dst.raw);
    } else {
      key = l3::NeighbourKey::v6(hop.port_id, rte_pktmbuf_mtod_offset(m, const Ipv6Header*, pm.l3_offset)->dst);
    }
    if (n_keys > 0 && key == keys[n_keys - 1]) {
      key_of[i] = static_cast<int16_t>(n_keys - 1);
      continue;
    }
    key_ptrs[n_keys] = &key;
    key_of[i] = static_cast<int16_t>(n_keys++);
  }
  if (n4 + n6) route_lookups_.add(n4 + n6);
  if (misses) route_misses_.add(misses);

  // Pass 4: one bulk neighbour lookup; decrement TTL, rewrite MACs.
  if (n_resolve) {
    int32_t key_positions[kMaxBurst];
    if (n_keys) ctx_.neighbours->lookup_bulk(key_ptrs, n_keys, key_positions);
    const uint64_t now = rte_rdtsc();
    uint32_t forwarded4 = 0, forwarded6 = 0, unresolved = 0;
    int32_t last_touched = -1;
    for (unsigned k = 0; k < n_resolve; ++k) {
      const uint16_t i = resolve_idx[k];
      rte_mbuf* m = burst.pkts[i];
      PacketMeta& pm = meta(m);
      const int32_t pos = key_of[i] < 0 ? position[i] : key_positions[key_of[i]];
      if (pm.l3 == L3::Ipv4) {
        decrement_ttl(rte_pktmbuf_mtod_offset(m, Ipv4Header*, pm.l3_offset));
        ++forwarded4;
      } else {
        --rte_pktmbuf_mtod_offset(m, Ipv6Header*, pm.l3_offset)->hop_limit;
        ++forwarded6;
      }
      uint64_t mac = pos >= 0 ? ctx_.neighbours->mac(pos) : 0;
      if (!(mac & l3::kMacValid)) [[unlikely]] {
        ++unresolved;
        pm.aux = kPuntResolve;
        fate[i] = kGone;
        Drop reason;
        if (post_routing_ && !post_routing_->apply(m, reason)) [[unlikely]] {
          drop(burst, m, reason);
          continue;
        }
        punts[n_punts++] = m;
        continue;
      }
      if (pos != last_touched) {
        ctx_.neighbours->touch(pos, now, hz_);
        last_touched = pos;
      }
      auto* eth = rte_pktmbuf_mtod(m, EthernetHeader*);
      std::memcpy(eth->dst.bytes, &mac, 6);
      std::memcpy(eth->src.bytes, table.interface(pm.out_port).mac.addr_bytes, 6);
      if (needs_fragment[i]) [[unlikely]] {
        // The output stage fragments it in place in the burst, so the flow keeps its order.
        pm.flags |= kMetaFragmentOnOutput;
        pm.aux = table.interface(pm.out_port).mtu;
      }
      fate[i] = kReady;
    }
    if (forwarded4) forwarded4_.add(forwarded4);
    if (forwarded6) forwarded6_.add(forwarded6);
    if (unresolved) neighbour_misses_.add(unresolved);
  }

  // Slow-path packets leave the burst; what the ring cannot take is dropped.
  if (n_punts) {
    unsigned queued = rte_ring_sp_enqueue_burst(ctx_.punt_ring, reinterpret_cast<void* const*>(punts), n_punts, nullptr);
    punted_.add(queued);
    for (unsigned k = queued; k < n_punts; ++k) drop(burst, punts[k], Drop::PuntRingFull);
  }

  uint16_t kept = 0;
  for (uint16_t i = 0; i < n; ++i)
    if (fate[i] == kReady) burst.pkts[kept++] = burst.pkts[i];
  burst.count = kept;
}

void RouteStage::read_counters(NamedCounters& out) const {
  out.emplace_back("ipv4_forwarded", forwarded4_.get());
  out.emplace_back("ipv6_forwarded", forwarded6_.get());
  out.emplace_back("ipv4_local", local4_.get());
  out.emplace_back("ipv6_local", local6_.get());
  out.emplace_back("route_lookups", route_lookups_.get());
  out.emplace_back("route_misses", route_misses_.get());
  out.emplace_back("neighbour_misses", neighbour_misses_.get());
  out.emplace_back("punted", punted_.get());
  out.emplace_back("icmp_echo_replies", icmp_echo_replies_.get());
  out.emplace_back("icmp_time_exceeded", icmp_time_exceeded_.get());
  out.emplace_back("icmp_unreachable", icmp_unreachable_.get());
  out.emplace_back("icmp_too_big", icmp_too_big_.get());
  out.emplace_back("icmp_rate_limited", icmp_rate_limited_.get());
  out.emplace_back("icmp_no_mbuf", icmp_no_mbuf_.get());
}

}  // namespace sluice::pipeline
