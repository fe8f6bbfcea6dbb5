#include "router/router.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include <rte_cycles.h>

#include <spdlog/spdlog.h>

#include "net/headers.h"
#include "pipeline/output.h"
#include "pipeline/packet_meta.h"
#include "router/neighbour_packets.h"

namespace sluice::router {

using l3::NeighbourKey;
using l3::NeighbourState;
using net::ArpHeader;
using net::EthernetHeader;
using net::Ipv4Header;
using net::Ipv6Header;
using pipeline::meta;

namespace {

uint64_t now_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

constexpr rte_ether_addr kBroadcast{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
constexpr rte_ether_addr kAllNodesMac{{0x33, 0x33, 0, 0, 0, 1}};
constexpr uint8_t kAllNodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
constexpr unsigned kTimerIntervalMs = 100;
constexpr uint64_t kDelayFirstProbeMs = 5000;
// Traffic never makes a neighbour solicited more often than this (handle_resolve).
constexpr uint64_t kResolicitFloorMs = 100;

bool has_mac(NeighbourState s) { return s != NeighbourState::Incomplete; }

std::string mac_string(const rte_ether_addr& mac) {
  // Lower case, as the configuration prints them (rte_ether_format_addr uses upper).
  char text[RTE_ETHER_ADDR_FMT_SIZE];
  const uint8_t* b = mac.addr_bytes;
  std::snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
  return text;
}

rte_ring* make_ring(const std::string& name, unsigned size) {
  rte_ring* ring = rte_ring_create(name.c_str(), size, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (!ring) throw std::runtime_error("cannot create ring " + name);
  return ring;
}

}  // namespace

Router::Router(const config::Config& config, rte_mempool* pool, unsigned worker_count, l3::Qsbr* qsbr)
    : config_(config), pool_(pool), worker_count_(worker_count), hz_(rte_get_tsc_hz()) {
  if (!qsbr) {
    own_qsbr_ = std::make_unique<l3::Qsbr>(worker_count);
    qsbr = own_qsbr_.get();
  }
  qsbr_ = qsbr;
  routes_ = std::make_unique<l3::Published<l3::RouteTable>>(*qsbr_);
  neighbours_ = std::make_unique<l3::NeighbourTable>(config.neighbour, *qsbr_);
  for (unsigned w = 0; w < worker_count; ++w) {
    punt_rings_.push_back(make_ring("sl_punt_" + std::to_string(w), kPuntRingSize));
    inject_rings_.push_back(make_ring("sl_inject_" + std::to_string(w), kInjectRingSize));
    icmp_buckets_.push_back(std::make_unique<l3::TokenBucket>(config.icmp.rate_per_second, config.icmp.burst, hz_));
  }
}

Router::~Router() {
  drain();
  for (auto* r : punt_rings_) rte_ring_free(r);
  for (auto* r : inject_rings_) rte_ring_free(r);
}

bool Router::start(const l3::RouteTable::PortIds& port_ids, const l3::RouteTable::PortMacs& macs, std::string& error) {
  for (const auto& [name, id] : port_ids) port_names_[id] = name;
  port_ids_ = port_ids;
  macs_ = macs;
  uint64_t now = now_ms();
  for (const auto& n : config_.neighbours) {
    NeighbourKey key = NeighbourKey::of(port_ids.at(n.port), n.address);
    Entry* e = neighbours_->create(key, now);
    if (!e) {
      error = "neighbours: table full (neighbour.capacity " + std::to_string(config_.neighbour.capacity) + ")";
      return false;
    }
    rte_ether_addr mac;
    std::memcpy(mac.addr_bytes, n.mac.data(), 6);
    neighbours_->update(*e, NeighbourState::Static, mac, now);
  }
  // Every gateway gets its entry now, pinned, and its position goes into the routes:
  // the fast path then needs no neighbour lookup for routed traffic. The first timer
  // run resolves them, before any packet waits.
  auto pin = [&](uint16_t port, const net::IpAddr& gateway) -> int32_t {
    NeighbourKey key = NeighbourKey::of(port, gateway);
    Entry* e = neighbours_->find(key);
    if (!e) e = neighbours_->create(key, now);
    if (!e) return -1;  // table full: this gateway is looked up per packet instead
    e->pinned = true;
    return e->position;
  };
  auto table = l3::RouteTable::build(config_, port_ids, macs, error, pin);
  if (!table) return false;
  routes_->publish(std::move(table));
  spdlog::info("router: {} routes and addresses installed, {} static neighbours",
               routes_->get()->entries().size(), config_.neighbours.size());
  return true;
}

bool Router::reload_routes(const config::Config& next, std::string& error) {
  std::lock_guard lock(mutex_);
  const uint64_t now = now_ms();
  std::vector<NeighbourKey> gateways, newly_pinned;
  auto pin = [&](uint16_t port, const net::IpAddr& gateway) -> int32_t {
    NeighbourKey key = NeighbourKey::of(port, gateway);
    gateways.push_back(key);
    Entry* e = neighbours_->find(key);
    if (!e) e = neighbours_->create(key, now);
    if (!e) return -1;
    if (!e->pinned) newly_pinned.push_back(key);
    e->pinned = true;
    return e->position;
  };
  auto table = l3::RouteTable::build(next, port_ids_, macs_, error, pin);
  if (!table) {
    // Nothing was published: the gateways this attempt pinned go back to aging.
    for (const auto& key : newly_pinned)
      if (Entry* e = neighbours_->find(key)) e->pinned = false;
    return false;
  }
  const size_t routes = table->entries().size();
  routes_->publish(std::move(table));  // no worker holds the old table after this
  unsigned unpinned = 0;
  for (auto& [key, e] : neighbours_->entries()) {
    if (!e.pinned || std::find(gateways.begin(), gateways.end(), key) != gateways.end()) continue;
    e.pinned = false;  // no route points at its position any more: it may age out
    ++unpinned;
  }
  spdlog::info("router: reloaded {} routes and addresses ({} gateway(s) no longer used)", routes, unpinned);
  return true;
}

pipeline::L3Context Router::context_for(unsigned worker) const {
  pipeline::L3Context ctx;
  ctx.routes = routes_.get();
  ctx.neighbours = neighbours_.get();
  ctx.punt_ring = punt_rings_[worker];
  ctx.icmp_bucket = icmp_buckets_[worker].get();
  return ctx;
}

void Router::send(rte_mbuf* m, uint16_t port) {
  meta(m) = pipeline::PacketMeta{};
  meta(m).out_port = port;
  if (inject_rings_.empty() || rte_ring_sp_enqueue(inject_rings_[0], m) != 0) drop(m, Drop::InjectRingFull);
}

void Router::drop(rte_mbuf* m, Drop reason) {
  counters_.drop(reason);
  rte_pktmbuf_free(m);
}

void Router::announce() {
  std::lock_guard lock(mutex_);
  const l3::RouteTable* table = routes_->get();
  for (const auto& [id, name] : port_names_) {
    const l3::Interface& itf = table->interface(id);
    if (!itf.routed) continue;
    for (const auto& proxy : itf.proxy) {
      uint32_t ip;
      std::memcpy(&ip, proxy.bytes.data(), 4);
      if (rte_mbuf* m = build_arp(pool_, kArpRequest, itf.mac, ip, rte_ether_addr{}, ip, kBroadcast)) {
        arp_requests_out_.inc();
        send(m, id);
      }
    }
    for (const auto& a : itf.addresses) {
      rte_mbuf* m = nullptr;
      if (a.addr.family == 4) {
        uint32_t ip;
        std::memcpy(&ip, a.addr.bytes.data(), 4);
        m = build_arp(pool_, kArpRequest, itf.mac, ip, rte_ether_addr{}, ip, kBroadcast);
        if (m) arp_requests_out_.inc();
      } else {
        m = build_na(pool_, itf.mac, a.addr.bytes.data(), kAllNodes, kAllNodesMac, false, true);
        if (m) na_out_.inc();
      }
      if (m) send(m, id);
    }
  }
}

void Router::poll() { poll_at(now_ms()); }

void Router::poll_at(uint64_t now) {
  std::lock_guard lock(mutex_);
  rte_mbuf* pkts[64];
  for (rte_ring* ring : punt_rings_) {
    // Bounded per call so timers and other rings get their turn.
    for (int round = 0; round < 16; ++round) {
      unsigned n = rte_ring_sc_dequeue_burst(ring, reinterpret_cast<void**>(pkts), 64, nullptr);
      for (unsigned i = 0; i < n; ++i) handle(pkts[i], now);
      if (n < 64) break;
    }
  }
  if (now - last_timer_ms_ >= kTimerIntervalMs) {
    last_timer_ms_ = now;
    run_timers(now);
  }
}

void Router::handle(rte_mbuf* m, uint64_t now) {
  counters_.packets_in.inc();
  switch (meta(m).aux) {
    case pipeline::kPuntArp: handle_arp(m, now); break;
    case pipeline::kPuntNd: handle_nd(m, now); break;
    case pipeline::kPuntResolve: handle_resolve(m, now); break;
    case pipeline::kPuntProbe:
      if (probe_sink_) probe_sink_(probe_sink_user_, m, now);
      else drop(m, Drop::LocalUnhandled);
      break;
    default: drop(m, Drop::LocalUnhandled); break;
  }
}

const uint8_t* Router::source_for(uint16_t port, const NeighbourKey& target) const {
  const l3::Interface& itf = routes_->get()->interface(port);
  net::IpAddr t = target.address();
  const net::IpPrefix* first = nullptr;
  for (const auto& a : itf.addresses) {
    if (a.addr.family != target.family) continue;
    if (a.contains(t)) return a.addr.bytes.data();
    if (!first) first = &a;
  }
  return first ? first->addr.bytes.data() : nullptr;
}

void Router::learn(const NeighbourKey& key, const rte_ether_addr& mac, NeighbourState state, bool create,
                   uint64_t now) {
  Entry* e = neighbours_->find(key);
  if (!e) {
    if (!create) return;
    e = neighbours_->create(key, now);
    if (!e) return;  // full: learning is best effort
  }
  if (e->state == NeighbourState::Static) return;
  bool same_mac = has_mac(e->state) && rte_is_same_ether_addr(&e->mac, &mac);
  // A request only says "this MAC was alive": it does not downgrade a reachable entry.
  if (state == NeighbourState::Stale && same_mac) return;
  neighbours_->update(*e, state, mac, now);
  flush_queue(*e);
}

void Router::flush_queue(Entry& e) {
  const l3::RouteTable* table = routes_->get();
  while (!e.queue.empty()) {
    rte_mbuf* m = e.queue.front();
    e.queue.pop_front();
    const l3::Interface& itf = table->interface(e.key.port_id);
    auto* eth = rte_pktmbuf_mtod(m, EthernetHeader*);
    std::memcpy(eth->dst.bytes, e.mac.addr_bytes, 6);
    std::memcpy(eth->src.bytes, itf.mac.addr_bytes, 6);
    resolved_.inc();
    counters_.packets_out.inc();
    const pipeline::PacketMeta& pm = meta(m);
    if (pm.l3 == pipeline::L3::Ipv4 && pm.l3_length > itf.mtu) [[unlikely]] {
      // Over the MTU without DF (the route stage answers DF itself): the output stage
      // would have fragmented it, had its neighbour been known; inject rings go straight to TX.
      rte_mbuf* frags[pipeline::kMaxFragments];
      unsigned lost = 0;
      int count = pipeline::fragment_ipv4(m, pm.l3_offset, itf.mtu, frags, lost);
      if (lost) counters_.drop(Drop::FragmentFailed, lost);
      if (count < 0) counters_.drop(Drop::FragmentFailed);
      for (int i = 0; i < count; ++i) send(frags[i], e.key.port_id);
      continue;
    }
    send(m, e.key.port_id);
  }
}

void Router::solicit(Entry& e, bool unicast) {
  const l3::Interface& itf = routes_->get()->interface(e.key.port_id);
  const uint8_t* src = source_for(e.key.port_id, e.key);
  if (!src) return;
  rte_mbuf* m;
  if (e.key.family == 4) {
    uint32_t sender, target;
    std::memcpy(&sender, src, 4);
    std::memcpy(&target, e.key.addr, 4);
    m = build_arp(pool_, kArpRequest, itf.mac, sender, unicast ? e.mac : rte_ether_addr{}, target,
                  unicast ? e.mac : kBroadcast);
    if (m) arp_requests_out_.inc();
  } else {
    m = build_ns(pool_, itf.mac, src, e.key.addr, unicast ? &e.mac : nullptr);
    if (m) ns_out_.inc();
  }
  if (m) send(m, e.key.port_id);
}

void Router::handle_arp(rte_mbuf* m, uint64_t now) {
  const auto& pm = meta(m);
  uint16_t port = m->port;
  if (pm.l3_offset + sizeof(ArpHeader) > m->data_len) return drop(m, Drop::BadNeighbourPacket);
  const auto* arp = rte_pktmbuf_mtod_offset(m, const ArpHeader*, pm.l3_offset);
  uint16_t op = arp->opcode.value();
  if (arp->hardware_type.value() != 1 || arp->protocol_type.value() != net::kEtherTypeIpv4 ||
      arp->hardware_len != 6 || arp->protocol_len != 4 || (op != kArpRequest && op != kArpReply) ||
      (arp->sender_mac.bytes[0] & 1))
    return drop(m, Drop::BadNeighbourPacket);
  rte_ether_addr sender_mac;
  std::memcpy(sender_mac.addr_bytes, arp->sender_mac.bytes, 6);
  uint32_t sender_ip = arp->sender_ip.raw, target_ip = arp->target_ip.raw;
  const l3::Interface& itf = routes_->get()->interface(port);
  bool for_us = false, sender_on_link = false;
  net::IpAddr sender;
  sender.family = 4;
  std::memcpy(sender.bytes.data(), &sender_ip, 4);
  for (const auto& a : itf.addresses) {
    if (a.addr.family != 4) continue;
    if (std::memcmp(a.addr.bytes.data(), &target_ip, 4) == 0) for_us = true;
    if (a.contains(sender)) sender_on_link = true;
  }
  for (const auto& a : itf.proxy)  // NAT's outside addresses on this port
    if (std::memcmp(a.bytes.data(), &target_ip, 4) == 0) for_us = true;
  NeighbourKey key = NeighbourKey::v4(port, sender_ip);
  if (op == kArpRequest) {
    arp_requests_in_.inc();
    // Only an on-link sender asking for us creates an entry; any sender refreshes one
    // we have (a route may put a gateway on-link outside the port's subnets).
    if (sender_ip != 0) learn(key, sender_mac, NeighbourState::Stale, for_us && sender_on_link, now);
    if (for_us) {
      rte_mbuf* reply = build_arp(pool_, kArpReply, itf.mac, target_ip, sender_mac, sender_ip, sender_mac);
      if (reply) {
        arp_replies_out_.inc();
        send(reply, port);
      }
    }
  } else {
    arp_replies_in_.inc();
    learn(key, sender_mac, NeighbourState::Reachable, false, now);  // only an entry we have
  }
  counters_.packets_out.inc();
  rte_pktmbuf_free(m);  // consumed
}

void Router::handle_nd(rte_mbuf* m, uint64_t now) {
  const auto& pm = meta(m);
  uint16_t port = m->port;
  auto msg = parse_nd(m, pm.l3_offset, pm.l4_offset);
  if (!msg) return drop(m, Drop::BadNeighbourPacket);
  const l3::Interface& itf = routes_->get()->interface(port);
  bool target_ours = false;
  for (const auto& a : itf.addresses)
    if (a.addr.family == 6 && std::memcmp(a.addr.bytes.data(), msg->target, 16) == 0) target_ours = true;
  static const uint8_t zero[16] = {};
  if (msg->type == 135) {
    ns_in_.inc();
    if (target_ours) {
      bool dad = std::memcmp(msg->src, zero, 16) == 0;
      rte_ether_addr dst_mac;
      std::memcpy(dst_mac.addr_bytes, rte_pktmbuf_mtod(m, const EthernetHeader*)->src.bytes, 6);
      if (msg->link_addr) dst_mac = *msg->link_addr;
      if (!dad && msg->link_addr) learn(NeighbourKey::v6(port, msg->src), *msg->link_addr, NeighbourState::Stale, true, now);
      rte_mbuf* na = dad ? build_na(pool_, itf.mac, msg->target, kAllNodes, kAllNodesMac, false, true)
                         : build_na(pool_, itf.mac, msg->target, msg->src, dst_mac, true, true);
      if (na) {
        na_out_.inc();
        send(na, port);
      }
    }
  } else {
    na_in_.inc();
    Entry* e = neighbours_->find(NeighbourKey::v6(port, msg->target));
    if (e && msg->link_addr) {
      bool differs = has_mac(e->state) && !rte_is_same_ether_addr(&e->mac, &*msg->link_addr);
      if (!differs || msg->override_flag || e->state == NeighbourState::Incomplete)
        learn(e->key, *msg->link_addr, msg->solicited ? NeighbourState::Reachable : NeighbourState::Stale, false, now);
      else if (e->state == NeighbourState::Reachable)
        neighbours_->set_state(*e, NeighbourState::Stale, now);  // RFC 4861 7.2.5: keep the MAC, doubt it
    } else if (e && has_mac(e->state) && msg->solicited && e->state != NeighbourState::Static) {
      // The answer to a unicast probe may leave out the link-layer address (RFC 4861
      // 7.2.5; Linux does): it confirms the MAC we have.
      neighbours_->set_state(*e, NeighbourState::Reachable, now);
    }
  }
  counters_.packets_out.inc();
  rte_pktmbuf_free(m);
}

bool Router::source_for_destination(const net::IpAddr& dst, net::IpAddr& src) const {
  std::lock_guard lock(mutex_);
  const l3::NextHop* hop = routes_->get()->lookup(dst, 0);
  if (!hop || hop->kind != l3::HopKind::Neighbour) return false;
  const uint8_t* bytes = source_for(hop->port_id, NeighbourKey::of(hop->port_id, hop->gateway.is_set() ? hop->gateway : dst));
  if (!bytes) return false;
  src = dst.family == 4 ? net::IpAddr::v4(uint32_t(bytes[0]) << 24 | uint32_t(bytes[1]) << 16 | uint32_t(bytes[2]) << 8 | bytes[3])
                        : net::IpAddr::v6(bytes);
  return true;
}

void Router::originate(rte_mbuf* m) {
  std::lock_guard lock(mutex_);
  pipeline::PacketMeta& pm = meta(m);
  pm = pipeline::PacketMeta{};
  pm.l3_offset = sizeof(EthernetHeader);
  const uint8_t version = *rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l3_offset) >> 4;
  pm.l3 = version == 4 ? pipeline::L3::Ipv4 : pipeline::L3::Ipv6;
  pm.l3_length = static_cast<uint16_t>(rte_pktmbuf_pkt_len(m) - pm.l3_offset);
  pm.out_port = pipeline::kNoPort;
  counters_.packets_in.inc();
  handle_resolve(m, now_ms());
}

void Router::handle_resolve(rte_mbuf* m, uint64_t now) {
  const auto& pm = meta(m);
  net::IpAddr dst;
  if (pm.l3 == pipeline::L3::Ipv4) {
    dst.family = 4;
    std::memcpy(dst.bytes.data(), &rte_pktmbuf_mtod_offset(m, const Ipv4Header*, pm.l3_offset)->dst.raw, 4);
  } else {
    dst.family = 6;
    std::memcpy(dst.bytes.data(), rte_pktmbuf_mtod_offset(m, const Ipv6Header*, pm.l3_offset)->dst, 16);
  }
  const l3::NextHop* hop = routes_->get()->lookup(dst, pipeline::RouteStage::flow_hash(m, pm));
  if (!hop || hop->kind != l3::HopKind::Neighbour) return drop(m, Drop::NoRoute);
  NeighbourKey key = NeighbourKey::of(hop->port_id, hop->gateway.is_set() ? hop->gateway : dst);
  meta(m).out_port = hop->port_id;
  Entry* e = neighbours_->find(key);
  if (e && has_mac(e->state)) {
    e->queue.push_back(m);
    flush_queue(*e);
    return;
  }
  if (!e) {
    e = neighbours_->create(key, now);
    if (!e) return drop(m, Drop::NoNeighbour);
    solicit(*e, false);
    e->probes = 1;
    e->next_probe_ms = now + config_.neighbour.retransmit_ms;
  } else if (e->state == NeighbourState::Incomplete &&
             (e->probes == 0 ||
              (e->queue.empty() && now + config_.neighbour.retransmit_ms >= e->next_probe_ms + kResolicitFloorMs))) {
    // A pinned gateway not being resolved (it failed before), or the first packet to
    // wait on one probed, unanswered, for a while (since start, before its link was up):
    // ask now rather than at the next retransmit.
    solicit(*e, false);
    e->probes = 1;
    e->next_probe_ms = now + config_.neighbour.retransmit_ms;
  }
  if (config_.neighbour.queue_packets == 0) return drop(m, Drop::NoNeighbour);
  // A scan of unresolved hosts must not empty the pool that RX needs.
  if (rte_mempool_avail_count(pool_) < pool_->size / 4) return drop(m, Drop::NoNeighbour);
  if (e->queue.size() >= config_.neighbour.queue_packets) {
    drop(e->queue.front(), Drop::NoNeighbour);  // as Linux: the oldest goes
    e->queue.pop_front();
  }
  e->queue.push_back(m);
  queued_.inc();
}

void Router::run_timers(uint64_t now) {
  const auto& s = config_.neighbour;
  std::vector<NeighbourKey> dead;
  for (auto& [key, e] : neighbours_->entries()) {
    switch (e.state) {
      case NeighbourState::Static: break;
      case NeighbourState::Incomplete:
      case NeighbourState::Probe:
        if (now < e.next_probe_ms) break;
        if (e.probes < s.probes) {
          solicit(e, e.state == NeighbourState::Probe);
          ++e.probes;
          e.next_probe_ms = now + s.retransmit_ms;
        } else {
          if (e.state == NeighbourState::Incomplete) resolution_failures_.inc();
          if (!e.pinned) {
            dead.push_back(key);
            break;
          }
          // A gateway stays, unresolved: its queue goes, and it is tried again after
          // reachable_ms, or at once when traffic needs it (handle_resolve).
          for (rte_mbuf* m : e.queue) drop(m, Drop::NoNeighbour);
          e.queue.clear();
          neighbours_->forget_mac(e, now);
          e.next_probe_ms = now + s.reachable_ms;
        }
        break;
      case NeighbourState::Reachable:
        if (now - e.changed_ms >= s.reachable_ms) neighbours_->set_state(e, NeighbourState::Stale, now);
        break;
      case NeighbourState::Stale:
        if (neighbours_->used_tsc(e) != e.stale_used_tsc && now - e.changed_ms >= kDelayFirstProbeMs) {
          // Used since it went stale: after DELAY_FIRST_PROBE_TIME, confirm it with a
          // unicast probe (RFC 4861 7.3.3).
          neighbours_->set_state(e, NeighbourState::Probe, now);
          solicit(e, true);
          e.probes = 1;
          e.next_probe_ms = now + s.retransmit_ms;
        } else if (now - e.changed_ms >= s.stale_ms && !e.pinned) {
          expired_.inc();
          dead.push_back(key);
        }
        break;
    }
  }
  for (const auto& key : dead) {
    Entry* e = neighbours_->find(key);
    for (rte_mbuf* m : e->queue) drop(m, Drop::NoNeighbour);
    e->queue.clear();
  }
  if (!dead.empty()) neighbours_->remove(dead);  // one grace period for all of them
}

void Router::drain() {
  std::lock_guard lock(mutex_);
  rte_mbuf* pkts[64];
  for (rte_ring* ring : punt_rings_) {
    unsigned n;
    while ((n = rte_ring_sc_dequeue_burst(ring, reinterpret_cast<void**>(pkts), 64, nullptr)) > 0)
      for (unsigned i = 0; i < n; ++i) drop(pkts[i], Drop::Shutdown);
  }
  for (auto& [key, e] : neighbours_->entries()) {
    for (rte_mbuf* m : e.queue) drop(m, Drop::Shutdown);
    e.queue.clear();
  }
  for (rte_ring* ring : inject_rings_) {
    unsigned n;
    while ((n = rte_ring_sc_dequeue_burst(ring, reinterpret_cast<void**>(pkts), 64, nullptr)) > 0)
      for (unsigned i = 0; i < n; ++i) drop(pkts[i], Drop::Shutdown);
  }
}

size_t Router::neighbour_count() const {
  std::lock_guard lock(mutex_);
  return neighbours_->size();
}

nlohmann::json Router::neighbours_json() const {
  std::lock_guard lock(mutex_);
  uint64_t now = now_ms();
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [key, e] : neighbours_->entries()) {
    auto name = port_names_.find(key.port_id);
    nlohmann::json item = {{"address", key.address().str()},
                           {"port", name == port_names_.end() ? std::to_string(key.port_id) : name->second},
                           {"state", l3::state_name(e.state)},
                           {"age_ms", now - e.changed_ms},
                           {"queued", e.queue.size()},
                           {"gateway", e.pinned}};
    item["mac"] = has_mac(e.state) ? nlohmann::json(mac_string(e.mac)) : nlohmann::json(nullptr);
    list.push_back(item);
  }
  std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) {
    return std::tie(a["port"], a["address"]) < std::tie(b["port"], b["address"]);
  });
  return {{"count", list.size()}, {"capacity", neighbours_->capacity()}, {"neighbours", list}};
}

nlohmann::json Router::routes_json() const {
  std::lock_guard lock(mutex_);
  nlohmann::json list = nlohmann::json::array();
  for (const auto& entry : routes_->get()->entries()) {
    nlohmann::json hops = nlohmann::json::array();
    for (const auto& hop : entry.hops) {
      auto name = port_names_.find(hop.port_id);
      nlohmann::json h = {{"port", name == port_names_.end() ? std::to_string(hop.port_id) : name->second}};
      h["type"] = hop.kind == l3::HopKind::Local ? "local"
                  : hop.kind == l3::HopKind::Broadcast ? "broadcast"
                  : hop.gateway.is_set() ? "gateway" : "connected";
      if (hop.gateway.is_set()) h["via"] = hop.gateway.str();
      hops.push_back(h);
    }
    list.push_back({{"prefix", entry.prefix.str()}, {"nexthops", hops}});
  }
  return {{"routes", list}};
}

void Router::read_counters(pipeline::NamedCounters& out) const {
  out.emplace_back("arp_requests_received", arp_requests_in_.get());
  out.emplace_back("arp_replies_received", arp_replies_in_.get());
  out.emplace_back("arp_requests_sent", arp_requests_out_.get());
  out.emplace_back("arp_replies_sent", arp_replies_out_.get());
  out.emplace_back("nd_solicitations_received", ns_in_.get());
  out.emplace_back("nd_advertisements_received", na_in_.get());
  out.emplace_back("nd_solicitations_sent", ns_out_.get());
  out.emplace_back("nd_advertisements_sent", na_out_.get());
  out.emplace_back("packets_queued", queued_.get());
  out.emplace_back("packets_resolved", resolved_.get());
  out.emplace_back("resolution_failures", resolution_failures_.get());
  out.emplace_back("neighbours_expired", expired_.get());
}

}  // namespace sluice::router
