#include "pipeline/lb.h"

#include <cstring>

#include <rte_byteorder.h>

#include "lb/ipip.h"
#include "net/headers.h"

namespace sluice::pipeline {

using flow::kNoEntry;

namespace {

// The local address a client's connections start from: a hash of the client, so that
// one client's connections share an address while it has ports (as NAT pools do).
uint32_t local_start(uint32_t client, size_t count) {
  return static_cast<uint32_t>((uint64_t(client * 0x9e3779b1u) * count) >> 32);
}

// A full-NAT connection as allocate_port sees it: the client's tuple toward backend `b`.
flow::NatTuple4 toward_backend(const flow::NatTuple4& orig, const lb::Backend& b) {
  return flow::NatTuple4{orig.src, b.addr, orig.sport, b.port ? b.port : orig.dport};
}

constexpr unsigned kLocalAddressesTried = 4;  // bounded work when the preferred address is full

}  // namespace

LbStage::LbStage(uint16_t port_id, const NatStageContext& context) : Stage("lb"), port_id_(port_id), ctx_(context) {}

void LbStage::process(Burst& burst) {
  const lb::ServiceTable* services = ctx_.services->get();
  flow::FlowTable4& table = ctx_.nat->flows().table4();
  PairChanges changes;
  uint16_t kept = 0;
  const uint16_t n = burst.count;
  prefetch_openings(burst, *services, table);
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = burst.pkts[i];
    FlowMeta& fm = flow_meta(m);
    uint32_t index = fm.entry;
    if (index == kNoEntry || meta(m).l3 != L3::Ipv4) [[unlikely]] {
      // An IPv6 service's connection; else untracked here (an evicted flow's packet is
      // the nat stage's to drop).
      if ((meta(m).flags & kMetaFragment) && meta(m).l3 == L3::Ipv6 && services->has_ipv6() &&
          fragment_to_vip6(m, fm, *services)) [[unlikely]] {
        drop(burst, m, Drop::LbIpv6Fragment);
        continue;
      }
      Drop why;
      if ((fm.flags & kFlowMetaIpv6) && index != kNoEntry && !forward6(m, fm, *services, why)) drop(burst, m, why);
      else burst.pkts[kept++] = m;
      continue;
    }
    if (!flow::is_pair(index)) {
      if (const PairChange* change = changes.find(index)) {
        // 1. A later packet of a connection this burst opened (or lost).
        if (change->now == kNoEntry) {
          drop(burst, m, change->reason);
          continue;
        }
        index = fm.entry = change->now;
      } else if ((fm.flags & (kFlowMetaNew | kFlowMetaLb)) == (kFlowMetaNew | kFlowMetaLb)) {
        // 2. A new connection to a service.
        const unsigned before = changes.count;
        const Opened opened = open_connection(m, fm, *services, changes);
        for (unsigned k = before; k < changes.count; ++k)
          if (flow::is_pair(changes.list[k].plain)) [[unlikely]]
            changes.forget_pair(burst, kept, before, changes.list[k].plain,
                                [&](rte_mbuf* gone) { drop(burst, gone, Drop::NatTableFull); });
        if (opened.index == kNoEntry) {
          drop(burst, m, opened.reason);
          continue;
        }
        index = fm.entry = opened.index;
      } else if ((fm.flags & kFlowMetaNew) && services->has_dnat_backends()) [[unlikely]] {
        // 2b. Maybe a DNAT backend's reply met mid-stream (tcp_loose, after a flush or
        // another box's failure): the connection it belongs to, if the table says so.
        const unsigned before = changes.count;
        const Opened opened = pick_up_reply(m, fm, *services, changes);
        for (unsigned k = before; k < changes.count; ++k)
          if (flow::is_pair(changes.list[k].plain)) [[unlikely]]
            changes.forget_pair(burst, kept, before, changes.list[k].plain,
                                [&](rte_mbuf* gone) { drop(burst, gone, Drop::NatTableFull); });
        if (opened.index == kNoEntry) {
          burst.pkts[kept++] = m;  // not a backend's: untranslated
          continue;
        }
        index = fm.entry = opened.index;
      } else {
        burst.pkts[kept++] = m;  // not load-balanced
        continue;
      }
    } else if (changes.find(flow::main_index(index))) [[unlikely]] {
      drop(burst, m, Drop::NatTableFull);  // its pair was evicted in this burst for a new connection
      continue;
    }
    // 3. Account it to its backend; 4. an ipip connection's packet goes inside its tunnel.
    const flow::NatExt4& ext = table.ext(index);
    if ((ext.kind & flow::kNatLb) && !account(m, ext, *services, index)) {
      drop(burst, m, Drop::LbBackendRemoved);
      continue;
    }
    if ((ext.kind & flow::kNatTunnel) && fm.dir == 0 && !encapsulate(m, fm, ext)) [[unlikely]] {
      drop(burst, m, Drop::LbTunnelFailed);
      continue;
    }
    burst.pkts[kept++] = m;
  }
  burst.count = kept;
  table.end_eviction_plan();  // the next stage's evictions look afresh
  ctx_.lb->end_burst();
}

// Before a burst's new IPv4 connections are opened, what opening them will touch is
// fetched, so that their misses overlap: each full-NAT connection's first candidate reply
// key (the client's own port on its first local address, allocate_port's first try),
// and, when the pair pool is full, the pairs that will be evicted to make room (picked
// now, taken in order by the evictions that follow).
void LbStage::prefetch_openings(const Burst& burst, const lb::ServiceTable& services, flow::FlowTable4& table) {
  unsigned opening = 0;
  const nat::Policy* policy = nullptr;
  for (uint16_t i = 0; i < burst.count; ++i) {
    rte_mbuf* m = burst.pkts[i];
    const FlowMeta& fm = flow_meta(m);
    if ((fm.flags & (kFlowMetaNew | kFlowMetaLb)) != (kFlowMetaNew | kFlowMetaLb) || fm.entry == kNoEntry ||
        flow::is_pair(fm.entry) || meta(m).l3 != L3::Ipv4)
      continue;
    ++opening;
    const nat::Ipv4Packet p = ipv4_packet(m);
    const flow::NatTuple4 orig = nat_tuple(p);
    const int service_index = services.find(orig.dst, p.proto, orig.dport);
    if (service_index < 0) continue;
    const lb::Service& s = services.service(static_cast<uint16_t>(service_index));
    uint16_t backend = lb::kNoBackend;
    if (s.mode != config::LbMode::FullNat || s.local.empty() ||
        !lb::planned_backend(meta(m).aux, services.tag(), backend) || backend >= s.backends.size())
      continue;
    const lb::Backend& b = s.backends[backend];
    if (!policy) policy = ctx_.policy->get();
    table.prefetch(nat::NatContext::reply_key_for(toward_backend(orig, b), s.local[local_start(orig.src, s.local.size())],
                                                  orig.sport, p.proto, policy->conntrack_zone(fm.egress))
                       .hash());
  }
  const uint32_t free = table.pairs_free();
  if (opening > free) table.plan_pair_evictions(opening - free, ctx_.nat->flows().now());
}

// Counts a load-balanced packet for its backend; false when its backend left a service
// that drops such connections (the connection is removed with it).
inline bool LbStage::account(rte_mbuf* m, const flow::NatExt4& ext, const lb::ServiceTable& services,
                             uint32_t index) {
  if (services.drops_removed() && !services.has_backend_slot(ext.backend)) [[unlikely]] {
    const int s = services.service_of_slot(ext.rule);
    if (s >= 0 && services.service(static_cast<uint16_t>(s)).drop_on_removed) {
      ctx_.lb->service(ext.rule).removed.inc();
      flow::FlowContext& flows = ctx_.nat->flows();
      const flow::FlowEntry4& e = flows.table4().at(index);
      flows.counters().state_leave(flow::state_slot(e.key.proto, e.body.state));
      flows.table4().remove(index);
      return false;
    }
  }
  lb::BackendCounters& b = ctx_.lb->backend(ext.backend);
  b.packets.inc();
  b.bytes.add(rte_pktmbuf_pkt_len(m));
  return true;
}

// Puts a packet of an ipip connection inside its outer header (tunnel source to the
// backend): from here on it is a packet to the backend, which the route stage sends (and
// fragments when the 20 bytes take it over the MTU) and the nat stages leave alone.
inline bool LbStage::encapsulate(rte_mbuf* m, FlowMeta& fm, const flow::NatExt4& ext) {
  PacketMeta& pm = meta(m);
  if (!ext.tunnel_src || !lb::ipip_encapsulate(m, pm.l3_offset, ext.tunnel_src, ext.reply.src, next_ip_id_++))
    return false;
  pm.l3_length = static_cast<uint16_t>(pm.l3_length + sizeof(net::Ipv4Header));
  pm.l4_offset = static_cast<uint16_t>(pm.l3_offset + sizeof(net::Ipv4Header));  // the inner packet
  pm.l4_proto = lb::kIpProtoIpip;
  pm.flags &= static_cast<uint8_t>(~(kMetaFragment | kMetaLaterFragment));
  fm.entry = kNoEntry;  // translated by nothing after this stage
  fm.flags = 0;
  encapsulated_.inc();
  return true;
}

// A packet of an IPv6 service's connection (ipip): its entry opened on the first packet
// (conntrack marked it kFlowLb with the planned backend), then accounted to the backend
// and, from the client, tunnelled. False: drop it for `why`.
bool LbStage::forward6(rte_mbuf* m, FlowMeta& fm, const lb::ServiceTable& services, Drop& why) {
  flow::FlowEntry6& e = ctx_.nat->flows().table6()->at(fm.entry);
  if (!(e.body.flags & flow::kFlowLb)) [[unlikely]] {
    why = Drop::LbNoBackend;  // a later packet of a connection refused earlier in this burst
    return false;
  }
  if (e.lb.service == flow::kLbUnopened && !open6(m, e, fm, services, why)) return false;
  if (!account6(m, e, fm.entry, services)) {
    why = Drop::LbBackendRemoved;
    return false;
  }
  if (fm.dir == 0 && !encapsulate6(m, fm, e)) [[unlikely]] {
    why = Drop::LbTunnelFailed;
    return false;
  }
  return true;
}

// A connection opened to backend `b` of `s`: its counters. `mid_stream`: a TCP segment
// other than a SYN opened it (tcp_loose: another box's connection, the same backend).
inline void LbStage::count_opened(const lb::Service& s, const lb::Backend& b, bool mid_stream) {
  lb::BackendCounters& bc = ctx_.lb->backend(b.slot);
  bc.connections.inc();
  bc.active.inc();
  lb::ServiceCounters& sc = ctx_.lb->service(s.slot);
  sc.connections.inc();
  opened_.inc();
  if (mid_stream) {
    sc.picked_up.inc();
    picked_up_.inc();
  }
}

// Removes IPv6 entry `index` (`e`) and its state from the flow counts.
inline void LbStage::remove6(const flow::FlowEntry6& e, uint32_t index) {
  flow::FlowContext& flows = ctx_.nat->flows();
  flows.counters().state_leave(flow::state_slot(e.key.proto, e.body.state));
  flows.table6()->remove(index);
}

// Whether an IPv6 fragment is addressed to an IPv6 VIP: none can be scheduled whole
// (later fragments carry no ports, and IPv6 is not reassembled here), so none is sent
// on; a connection its first fragment was opening is removed again.
bool LbStage::fragment_to_vip6(rte_mbuf* m, const FlowMeta& fm, const lb::ServiceTable& services) {
  const auto* ip = rte_pktmbuf_mtod_offset(m, const net::Ipv6Header*, meta(m).l3_offset);
  if (!services.is_vip6(ip->dst)) return false;
  if ((fm.flags & kFlowMetaIpv6) && fm.entry != kNoEntry) {
    flow::FlowContext& flows = ctx_.nat->flows();
    flow::FlowEntry6& e = flows.table6()->at(fm.entry);
    if ((e.body.flags & flow::kFlowLb) && e.lb.service == flow::kLbUnopened) {
      flows.counters().unmapped.inc();
      remove6(e, fm.entry);
    }
  }
  return true;
}

// The backend of a new IPv6 connection, kept in its entry; refused (the entry removed)
// when no backend takes it or none has a tunnel source.
bool LbStage::open6(rte_mbuf* m, flow::FlowEntry6& e, const FlowMeta& fm, const lb::ServiceTable& services,
                    Drop& why) {
  flow::FlowContext& flows = ctx_.nat->flows();
  const uint32_t index = fm.entry;
  auto refuse = [&](Drop reason) {
    flows.counters().unmapped.inc();
    remove6(e, index);
    why = reason;
    return false;
  };
  const PacketMeta& pm = meta(m);
  const auto* ip = rte_pktmbuf_mtod_offset(m, const net::Ipv6Header*, pm.l3_offset);
  const uint8_t* l4 = rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l4_offset);
  uint16_t sport, dport;
  std::memcpy(&sport, l4, 2);
  std::memcpy(&dport, l4 + 2, 2);
  const int service_index = services.find6(ip->dst, pm.l4_proto, dport);
  if (service_index < 0) return refuse(Drop::LbNoBackend);  // removed by a reload since conntrack looked
  const lb::Service& s = services.service(static_cast<uint16_t>(service_index));
  const uint32_t hash = lb::flow_hash6(ip->src, ip->dst, sport, dport, pm.l4_proto);
  uint16_t backend = lb::kNoBackend;
  // Conntrack's plan, unless another table came in since (or the packet is not the one
  // it planned for: aux means something else then).
  if (!(fm.flags & kFlowMetaLb) || !lb::planned_backend(pm.aux, services.tag(), backend) ||
      (backend != lb::kNoBackend && backend >= s.backends.size())) [[unlikely]]
    backend = ctx_.lb->pick(s, hash);
  if (backend == lb::kNoBackend) {
    ctx_.lb->service(s.slot).no_backend.inc();
    return refuse(Drop::LbNoBackend);
  }
  const lb::Backend& b = s.backends[backend];
  if (!b.tunnel6) return refuse(Drop::LbTunnelFailed);
  std::memcpy(e.lb.backend, b.addr6.data(), 16);
  std::memcpy(e.lb.tunnel_src, b.tunnel_src6.data(), 16);
  e.lb.service = s.slot;
  e.lb.backend_slot = b.slot;
  e.lb.flow_label = hash & 0xfffff;
  e.body.flags |= flow::kFlowOneWay;  // conntrack sees only the client's side

  count_opened(s, b, pm.l4_proto == net::kIpProtoTcp && !(l4[13] & 0x02));
  return true;
}

// As account() for an IPv6 connection.
inline bool LbStage::account6(rte_mbuf* m, flow::FlowEntry6& e, uint32_t index, const lb::ServiceTable& services) {
  if (services.drops_removed() && !services.has_backend_slot(e.lb.backend_slot)) [[unlikely]] {
    const int s = services.service_of_slot(e.lb.service);
    if (s >= 0 && services.service(static_cast<uint16_t>(s)).drop_on_removed) {
      ctx_.lb->service(e.lb.service).removed.inc();
      remove6(e, index);
      return false;
    }
  }
  lb::BackendCounters& b = ctx_.lb->backend(e.lb.backend_slot);
  b.packets.inc();
  b.bytes.add(rte_pktmbuf_pkt_len(m));
  return true;
}

// As encapsulate() for IPv6: the outer header adds 40 bytes and is never fragmented; one
// that outgrows the egress MTU is the route stage's to refuse to the client
// (kMetaTunnelled6: it takes the outer header off and sends Packet Too Big).
inline bool LbStage::encapsulate6(rte_mbuf* m, FlowMeta& fm, const flow::FlowEntry6& e) {
  PacketMeta& pm = meta(m);
  if (!lb::ip6ip6_encapsulate(m, pm.l3_offset, e.lb.tunnel_src, e.lb.backend, e.lb.flow_label)) return false;
  pm.l3_length = static_cast<uint16_t>(pm.l3_length + lb::kOuter6);
  if (pm.l4_offset) pm.l4_offset = static_cast<uint16_t>(pm.l4_offset + lb::kOuter6);  // the inner packet's L4
  pm.l4_proto = lb::kIpProtoIpv6;
  pm.flags = static_cast<uint8_t>((pm.flags & ~(kMetaFragment | kMetaLaterFragment | kMetaIpv6ExtHeaders)) |
                                  kMetaTunnelled6);
  fm.entry = kNoEntry;
  fm.flags = 0;
  encapsulated_.inc();
  return true;
}

// Makes the pair of a new connection to a service: the backend conntrack planned for,
// and in full-NAT a local address and port of this worker's share. Refused (the entry
// removed, the packet to drop) when no backend takes it or no port or room is left.
LbStage::Opened LbStage::open_connection(rte_mbuf* m, const FlowMeta& fm, const lb::ServiceTable& services,
                                         PairChanges& changes) {
  nat::NatContext& nat = *ctx_.nat;
  flow::FlowContext& flows = nat.flows();
  flow::FlowTable4& table = flows.table4();
  const uint32_t plain = fm.entry;
  auto refuse = [&](Drop reason) {
    const flow::FlowEntry4& e = table.at(plain);
    flows.counters().state_leave(flow::state_slot(e.key.proto, e.body.state));
    flows.counters().unmapped.inc();
    table.remove(plain);
    changes.add(plain, kNoEntry, reason);
    return Opened{kNoEntry, reason};
  };

  const nat::Ipv4Packet p = ipv4_packet(m);
  const flow::NatTuple4 orig = nat_tuple(p);
  const int service_index = services.find(orig.dst, p.proto, orig.dport);
  if (service_index < 0) return refuse(Drop::LbNoBackend);  // removed by a reload since conntrack looked
  const lb::Service& s = services.service(static_cast<uint16_t>(service_index));
  uint16_t backend = lb::kNoBackend;
  if (!lb::planned_backend(meta(m).aux, services.tag(), backend) ||
      (backend != lb::kNoBackend && backend >= s.backends.size())) [[unlikely]]
    backend = ctx_.lb->pick(s, lb::flow_hash(orig.src, orig.dst, orig.sport, orig.dport, p.proto));
  if (backend == lb::kNoBackend) {
    ctx_.lb->service(s.slot).no_backend.inc();
    return refuse(Drop::LbNoBackend);
  }
  const lb::Backend& b = s.backends[backend];
  const nat::Policy& policy = *ctx_.policy->get();
  const uint16_t reply_zone = policy.conntrack_zone(fm.egress);

  nat::NatContext::PairSpec spec{};
  spec.orig = orig;
  spec.reply = flow::NatTuple4{b.addr, orig.src, b.port ? b.port : orig.dport, orig.sport};
  spec.proto = p.proto;
  spec.reply_zone = reply_zone;
  spec.kind = flow::kNatDestination | flow::kNatLb;
  spec.rule = s.slot;
  spec.address_slot = nat::kNoSlot;
  spec.backend = b.slot;
  spec.reclaim_closed = true;
  if (s.mode == config::LbMode::Ipip) {
    // Delivered as sent: the reply tuple (what the backend would send without DSR) only
    // keys the pair; the backend's answers never come this way.
    spec.kind = flow::kNatTunnel | flow::kNatLb;
  } else if (s.mode == config::LbMode::FullNat) {
    const flow::NatTuple4 toward = toward_backend(orig, b);
    uint32_t address = 0;
    const int port = full_nat_source(s, policy, toward, p.proto, reply_zone, address, spec.address_slot);
    if (port < 0) {
      nat.counters().no_port.inc();
      return refuse(Drop::NatNoPort);
    }
    spec.reply.dst = address;
    spec.reply.dport = static_cast<uint16_t>(port);
    spec.kind |= flow::kNatSource;
    spec.reply_checked = true;
  }
  nat::NatContext::Mapped made;
  nat.promote_pair(plain, spec, flows.now(), made);
  for (unsigned k = 0; k < made.n_evicted; ++k) changes.add(made.evicted[k], kNoEntry, Drop::NatTableFull);
  if (made.refused) return refuse(made.reason);
  changes.add(plain, made.index, Drop::NatTableFull);
  if (s.mode == config::LbMode::Ipip) {
    table.at(made.index).body.flags |= flow::kFlowOneWay;  // conntrack sees only the client's side
    table.ext(made.index).tunnel_src = b.tunnel_src;
  }

  count_opened(s, b, p.proto == net::kIpProtoTcp && p.l4 && !(p.l4[13] & 0x02));
  return Opened{made.index, Drop::NatTableFull};
}

// A TCP segment (not a SYN) from a DNAT service's backend to a client, on a flow conntrack
// just made (tcp_loose): the reply side of a connection this box never saw open, or lost
// (a flush; another box's failure). It is that service's when the Maglev table sends the
// client's tuple to this backend: the entry becomes the pair the client's SYN would have
// made, seen from the backend's side (its source rewritten to the VIP). kNoEntry: not one.
LbStage::Opened LbStage::pick_up_reply(rte_mbuf* m, const FlowMeta& fm, const lb::ServiceTable& services,
                                       PairChanges& changes) {
  const nat::Ipv4Packet p = ipv4_packet(m);
  if (p.proto != net::kIpProtoTcp || !p.l4 || (p.l4[13] & 0x02)) return Opened{kNoEntry, Drop::NatTableFull};
  const flow::NatTuple4 orig = nat_tuple(p);  // backend -> client
  uint16_t service_index = 0, backend = 0;
  if (!services.find_dnat_backend(orig.src, orig.sport, p.proto, service_index, backend))
    return Opened{kNoEntry, Drop::NatTableFull};
  const lb::Service& s = services.service(service_index);
  const lb::Backend& b = s.backends[backend];
  if (s.maglev.lookup(lb::flow_hash(orig.dst, s.vip, orig.dport, s.port, p.proto)) != backend)
    return Opened{kNoEntry, Drop::NatTableFull};  // the client's connection is another backend's
  nat::NatContext& nat = *ctx_.nat;
  flow::FlowContext& flows = nat.flows();
  nat::NatContext::PairSpec spec{};
  spec.orig = orig;
  spec.reply = flow::NatTuple4{orig.dst, s.vip, orig.dport, s.port};  // the client's packets, as sent
  spec.proto = p.proto;
  spec.reply_zone = ctx_.policy->get()->conntrack_zone(fm.egress);
  spec.kind = flow::kNatSource | flow::kNatLb;
  spec.rule = s.slot;
  spec.address_slot = nat::kNoSlot;
  spec.backend = b.slot;
  spec.reclaim_closed = true;
  nat::NatContext::Mapped made;
  nat.promote_pair(fm.entry, spec, flows.now(), made);
  for (unsigned k = 0; k < made.n_evicted; ++k) changes.add(made.evicted[k], kNoEntry, Drop::NatTableFull);
  if (made.refused) return Opened{kNoEntry, made.reason};  // stays a plain flow: the nat stage decides
  changes.add(fm.entry, made.index, Drop::NatTableFull);
  ctx_.lb->backend(b.slot).active.inc();
  ctx_.lb->service(s.slot).picked_up.inc();
  picked_up_.inc();
  return Opened{made.index, Drop::NatTableFull};
}

// A full-NAT source for `toward` (client -> backend): a local address from the client's
// place among the service's, and a free port of this worker's share on it. The port
// (network order), or -1 when none is free within the bound.
int LbStage::full_nat_source(const lb::Service& s, const nat::Policy& policy, const flow::NatTuple4& toward,
                             uint8_t proto, uint16_t reply_zone, uint32_t& address, uint16_t& address_slot) {
  const size_t count = s.local.size();
  if (!count) return -1;
  const uint32_t start = local_start(toward.src, count);
  for (unsigned k = 0; k < kLocalAddressesTried && k < count; ++k) {
    const uint32_t candidate = s.local[(start + k) % count];
    const nat::OutsideAddress* outside = policy.outside(candidate);
    const int port =
        ctx_.nat->allocate_port(policy, outside, candidate, s.port_first, s.port_last, toward, proto, reply_zone);
    if (port >= 0) {
      address = candidate;
      address_slot = outside ? outside->slot : nat::kNoSlot;
      return port;
    }
    if (outside && outside->slot != nat::kNoSlot) ctx_.nat->address(outside->slot).exhausted.inc();
  }
  return -1;
}

void LbStage::read_counters(NamedCounters& out) const {
  out.emplace_back("connections", opened_.get());
  out.emplace_back("picked_up", picked_up_.get());
  out.emplace_back("encapsulated", encapsulated_.get());
}

}  // namespace sluice::pipeline
