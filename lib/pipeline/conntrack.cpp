#include "pipeline/conntrack.h"

#include <cstring>

#include <rte_cycles.h>
#include <rte_ip.h>
#include <rte_prefetch.h>

#include "net/headers.h"
#include "pipeline/flow_keys.h"

namespace sluice::pipeline {

using firewall::AclKey4;
using firewall::Action;
using firewall::AclKey6;
using flow::FlowEntry4;
using flow::FlowEntry6;
using flow::FlowKey4;
using flow::FlowKey6;
using flow::kNoEntry;
using flow::TcpState;
using net::IcmpHeader;
using net::Ipv4Header;
using net::Ipv6Header;
using net::TcpHeader;

namespace {

enum Kind : uint8_t {
  kUntracked = 0,  // passed on as it is
  kTrack4,
  kTrack6,
};

// What the flow table (and then the firewall) made of a packet.
enum Class : uint8_t {
  kPass = 0,     // not tracked
  kEstablished,  // belongs to a flow, accepted by it
  kRelated,      // an ICMP error about a tracked flow
  kNew,          // opens a connection (if accepted)
  kInvalid,      // belongs to nothing it could open, or broke its flow's rules
};

enum Fate : uint8_t { kKeep = 0, kDrop, kReject, kGone };

Drop drop_for(flow::TcpInvalid why) {
  switch (why) {
    case flow::TcpInvalid::BadFlags: return Drop::TcpBadFlags;
    case flow::TcpInvalid::NoFlow: return Drop::TcpNoFlow;
    case flow::TcpInvalid::BadTransition: return Drop::TcpBadTransition;
    case flow::TcpInvalid::OutOfWindow: return Drop::TcpOutOfWindow;
    case flow::TcpInvalid::RstOutOfWindow: return Drop::TcpRstOutOfWindow;
    default: return Drop::TcpBadTransition;
  }
}

bool ipv4_not_forwarded(uint32_t dst_host) {
  const uint32_t top = dst_host >> 24;
  return top == 0 || top == 127 || (dst_host >> 28) >= 0xe || (dst_host >> 16) == 0xa9fe;
}
bool ipv6_not_forwarded(const uint8_t* dst) {
  static const uint8_t zero[15] = {};
  return dst[0] == 0xff || (dst[0] == 0xfe && (dst[1] & 0xc0) == 0x80) ||
         (std::memcmp(dst, zero, 15) == 0 && (dst[15] == 0 || dst[15] == 1));
}

// What the route stage refuses before its lookup (its L2 filter, check_ipv4 and
// check_ipv6): another host's frame, a link-layer group address, a tagged frame, a bad
// IPv4 checksum, a martian or link-local source. Such a packet opens no flow and gets
// no reject answer: no RST for a frame the router would not take.
bool route_refuses(const rte_mbuf* m, const PacketMeta& pm, const l3::Interface& itf) {
  const auto* eth = rte_pktmbuf_mtod(m, const net::EthernetHeader*);
  if ((eth->dst.bytes[0] & 1) || l3::load_mac(eth->dst.bytes) != itf.mac_word || pm.vlan_count) return true;
  if (pm.l3 == L3::Ipv6) return ipv6_not_forwarded(rte_pktmbuf_mtod_offset(m, const Ipv6Header*, pm.l3_offset)->src);
  const auto* ip = rte_pktmbuf_mtod_offset(m, const Ipv4Header*, pm.l3_offset);
  const uint64_t cksum = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
  if (cksum == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
      (cksum != RTE_MBUF_F_RX_IP_CKSUM_GOOD && rte_raw_cksum(ip, ip->header_len()) != 0xffff))
    return true;
  return ipv4_not_forwarded(ip->src.value());  // the same blocks as a source: 0/8, 127/8, 224/3, 169.254/16
}

// One TCP segment as the tracker reads it. Parse checks that the fixed 20 bytes are in
// the first mbuf segment, not the options: options beyond it are left unread (a header
// split inside its options is tracked without them).
flow::TcpSegment tcp_segment_of(const rte_mbuf* m, const PacketMeta& pm) {
  const auto* tcp = rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l4_offset);
  const uint32_t header_len = reinterpret_cast<const TcpHeader*>(tcp)->header_len();
  const uint32_t payload = pm.l3_length - (pm.l4_offset - pm.l3_offset) - header_len;
  const uint32_t contiguous = rte_pktmbuf_data_len(m) - pm.l4_offset;
  return flow::tcp_segment(tcp, header_len < contiguous ? header_len : contiguous, payload);
}

// The TCP/UDP checksum, from the NIC's verdict when it gave one. Checked (as Linux's
// nf_conntrack_checksum does for every segment) only where a forged segment could
// change state: one that opens a flow, and TCP SYN, FIN and RST; data with a bad
// checksum is the receiver's to drop.
bool l4_checksum_ok(const rte_mbuf* m, const PacketMeta& pm) {
  // A first fragment carries part of what the checksum covers: it cannot be checked
  // without reassembly (Linux reassembles before conntrack; Sluice does not).
  if (pm.flags & kMetaFragment) return true;
  const uint64_t verdict = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
  if (verdict == RTE_MBUF_F_RX_L4_CKSUM_GOOD) return true;
  if (verdict == RTE_MBUF_F_RX_L4_CKSUM_BAD) return false;
  const uint8_t* l4 = rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l4_offset);
  const bool v6 = pm.l3 == L3::Ipv6;
  if (pm.l4_proto == net::kIpProtoUdp) {
    uint16_t sent;
    std::memcpy(&sent, l4 + 6, 2);
    if (sent == 0) return !v6;  // no checksum: allowed for IPv4 only (RFC 768, RFC 8200 8.1)
  }
  const uint32_t l4_len = pm.l3_offset + pm.l3_length - pm.l4_offset;
  const void* l3 = rte_pktmbuf_mtod_offset(m, const void*, pm.l3_offset);
  uint32_t sum = v6 ? rte_ipv6_phdr_cksum(static_cast<const rte_ipv6_hdr*>(l3), 0)
                    : rte_ipv4_phdr_cksum(static_cast<const rte_ipv4_hdr*>(l3), 0);
  if (v6) {
    // The pseudo-header's next header is the upper-layer protocol, not the first one.
    auto hdr = *static_cast<const rte_ipv6_hdr*>(l3);
    hdr.proto = pm.l4_proto;
    hdr.payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(l4_len));
    sum = rte_ipv6_phdr_cksum(&hdr, 0);
  }
  uint16_t data = 0;
  if (rte_raw_cksum_mbuf(m, pm.l4_offset, l4_len, &data) != 0) return false;
  sum += data;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}

// The firewall's view of one packet.
template <typename Key>
void acl_key_of(Key& key, const rte_mbuf* m, const PacketMeta& pm, const firewall::Ruleset& rules, uint16_t in_port,
                uint16_t out_port, uint8_t state_bit) {
  std::memset(&key, 0, sizeof(key));
  const uint8_t* l3 = rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l3_offset);
  const uint8_t* l4 = pm.l4_offset ? rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l4_offset) : nullptr;
  key.proto = pm.l4_proto;
  key.in_port = static_cast<uint8_t>(in_port);
  key.out_port = static_cast<uint8_t>(out_port);
  key.in_zone = rules.zone_of_port(in_port);
  key.out_zone = rules.zone_of_port(out_port);
  key.state = state_bit;
  key.tcp_flags = (pm.l4_proto == net::kIpProtoTcp && l4) ? reinterpret_cast<const TcpHeader*>(l4)->flags : 0;
  if (l4 && (pm.l4_proto == net::kIpProtoTcp || pm.l4_proto == net::kIpProtoUdp)) {
    std::memcpy(&key.src_port, l4, 2);
    std::memcpy(&key.dst_port, l4 + 2, 2);
  }
  if constexpr (sizeof(key.src) == 4) {
    std::memcpy(&key.src, l3 + 12, 4);
    std::memcpy(&key.dst, l3 + 16, 4);
  } else {
    std::memcpy(key.src, reinterpret_cast<const Ipv6Header*>(l3)->src, 16);
    std::memcpy(key.dst, reinterpret_cast<const Ipv6Header*>(l3)->dst, 16);
  }
}

// The first rule that takes one packet in `state_bit` (1-based), or 0: for the rare
// packet judged after pass 4 (see pass 5).
uint32_t classify_one(const rte_mbuf* m, const PacketMeta& pm, const firewall::Ruleset& rules, uint16_t in_port,
                      uint16_t out_port, uint8_t state_bit) {
  uint32_t rule = 0;
  if (pm.l3 == L3::Ipv4) {
    AclKey4 key;
    acl_key_of(key, m, pm, rules, in_port, out_port, state_bit);
    const uint8_t* ptr = reinterpret_cast<const uint8_t*>(&key);
    rules.classify4(&ptr, &rule, 1);
  } else {
    AclKey6 key;
    acl_key_of(key, m, pm, rules, in_port, out_port, state_bit);
    const uint8_t* ptr = reinterpret_cast<const uint8_t*>(&key);
    rules.classify6(&ptr, &rule, 1);
  }
  return rule;
}

}  // namespace

struct ConntrackStage::Work {
  uint8_t kind;
  uint8_t cls;
  uint8_t fate;
  uint8_t sender_slot;
  uint8_t related;     // the key is the quoted packet's (ICMP error)
  uint8_t needs_egress;
  uint16_t out_port;   // egress for the rules
  Drop reason;         // for kInvalid: why; for kDrop: the drop reason
  uint8_t dir;         // of a packet that found its flow: 0 from the opener, 1 from the responder
  uint8_t nat;         // nat::Destination::Kind of a new flow whose destination NAT translates
  uint8_t nat_checked;  // pass 4 asked NAT where this new flow goes
  uint16_t lb_backend;  // nat kService: the load balancer's planned backend (index in its service)
  uint32_t hash;
  uint32_t entry;      // its flow: pass 2's candidate, pass 3's find, pass 5's insert (kNoEntry: none)
  uint32_t rule;       // firewall rule (1-based) or 0
};

// One burst's scratch, on process()'s stack: what each pass leaves for the next. A pass
// copies the fields it loops over into locals and writes its counts back at its end: a
// byte stored into a Work may alias any of them, so the compiler would reload them.
struct ConntrackStage::BurstScratch {
  BurstScratch(const firewall::Policy& policy, flow::FlowContext& flows, const l3::RouteTable* route_table,
               const nat::Policy* nat_rules, const lb::ServiceTable* service_table, uint16_t count)
      : rules(policy.rules.get()),
        settings(policy.flow),
        table4(flows.table4()),
        table6(flows.table6()),
        routes(route_table),
        nat(nat_rules),
        services(service_table && !service_table->empty() ? service_table : nullptr),
        now(flows.now()),
        n(count) {}

  // An entry freed in pass 3 (expired, or reopened by a SYN) may be the one later packets
  // of the burst found in pass 2: they must not touch it again, they meet no flow.
  // A pair is found by either key: packets that met it the other way name it too.
  void forget(uint16_t after, uint8_t kind, uint32_t index) {
    const uint32_t gone = flow::main_index(index);
    for (uint16_t j = after + 1; j < n; ++j)
      if (work[j].kind == kind && flow::main_index(work[j].entry) == gone) work[j].entry = flow::FlowTable4::kRecheck;
  }

  // What the burst sees, read once: the published rules (null: tracking only), the
  // routes (null on an xconnect port), the tables and the clock.
  const firewall::Ruleset* const rules;
  const flow::FlowSettings& settings;
  flow::FlowTable4& table4;
  flow::FlowTable6* const table6;
  const l3::RouteTable* const routes;
  const nat::Policy* const nat;  // the NAT rules when a nat stage follows, else null
  const lb::ServiceTable* const services;  // the load balancer's, when it has any
  const uint32_t now;
  const uint16_t n;

  // Left uninitialised: pass 1 writes what the later passes read.
  Work work[kMaxBurst];
  FlowKey4 keys4[kMaxBurst];  // pass 1 -> 3 (confirm) and 5 (insert)
  FlowKey6 keys6[kMaxBurst];
  uint32_t hashes4[kMaxBurst], hashes6[kMaxBurst];  // pass 1 -> 2, with the packet each belongs to
  uint16_t idx4[kMaxBurst], idx6[kMaxBurst];
  unsigned n4 = 0, n6 = 0;
  bool any_classify = false;  // pass 3 -> 4 and 5: some packet goes to the rules or opens a flow

  // Counters, committed once per burst (commit_counters).
  uint32_t tracked = 0, established = 0, related = 0, untracked = 0, later_fragments = 0, new_flows = 0,
           invalid = 0, invalid_forwarded = 0, classified = 0, rule_hits = 0, policy_accepted = 0,
           policy_dropped = 0;
};

namespace {

// Pass 3 for a packet that meets no flow: may it open one? Its checksum first (a forged
// opener must not make an entry), then TCP's opening rules and ICMP queries only.
inline void judge_opener(ConntrackStage::Work& w, const rte_mbuf* m, const PacketMeta& pm,
                         const flow::FlowSettings& settings) {
  if ((pm.l4_proto == net::kIpProtoTcp || pm.l4_proto == net::kIpProtoUdp) && !l4_checksum_ok(m, pm)) [[unlikely]] {
    w.cls = kInvalid;
    w.reason = Drop::BadL4Checksum;
    return;
  }
  if (pm.l4_proto == net::kIpProtoTcp) {
    auto state = TcpState::None;
    flow::TcpWindow scratch;
    const flow::TcpInvalid why = flow::tcp_new(state, scratch, tcp_segment_of(m, pm), settings.tcp);
    if (why != flow::TcpInvalid::None) {
      w.cls = kInvalid;
      w.reason = drop_for(why);
    }
  } else if ((pm.l4_proto == net::kIpProtoIcmp || pm.l4_proto == net::kIpProtoIcmpv6) && pm.l4_offset) {
    const uint8_t type = rte_pktmbuf_mtod_offset(m, const IcmpHeader*, pm.l4_offset)->type;
    if (!(w.kind == kTrack6 ? icmp6_query(type) : icmp4_query(type))) {
      w.cls = kInvalid;
      w.reason = Drop::IcmpNoFlow;  // an answer to a query we never saw
    }
  }
}

}  // namespace

ConntrackStage::ConntrackStage(uint16_t port_id, uint16_t conntrack_zone, const ConntrackContext& context,
                               const L3Context* l3, uint16_t peer_port, const TxQueues* tx_queues,
                               const rte_ether_addr& port_mac, const NatStageContext* nat)
    : Stage("conntrack"),
      port_id_(port_id),
      zone_(conntrack_zone),
      ctx_(context),
      routed_(l3 != nullptr),
      peer_port_(peer_port),
      tx_queues_(tx_queues),
      port_mac_(port_mac),
      hz_(rte_get_tsc_hz()) {
  if (l3) l3_ = *l3;
  if (nat) nat_ = *nat;
}

// A packet of a flow the table holds: advance its state. Sets w.cls to kEstablished,
// kInvalid (w.reason) or, for a SYN reusing a closed flow's key, kNew after removing
// the old entry (w.entry = kNoEntry).
template <typename Entry>
void ConntrackStage::track_hit(Work& w, Entry& e, rte_mbuf* m, const PacketMeta& pm,
                               const flow::FlowSettings& settings, flow::FlowTable<Entry>& table) {
  flow::FlowBody& body = e.body;
  flow::FlowCounters& counters = ctx_.flows->counters();
  const uint32_t now = ctx_.flows->now();
  const unsigned dir = flow::direction(body, w.sender_slot);
  const unsigned old_slot = flow::state_slot(e.key.proto, body.state);
  uint32_t timeout;

  if (e.key.proto == net::kIpProtoTcp) {
    const flow::TcpSegment seg = tcp_segment_of(m, pm);
    auto state = static_cast<TcpState>(body.state);
    flow::TcpInvalid why = flow::TcpInvalid::None;
    const bool one_way = body.flags & flow::kFlowOneWay;  // direct server return: no windows to see
    const flow::TcpVerdict verdict = one_way ? flow::tcp_track_one_way(state, seg)
                                             : flow::tcp_track(state, body.tcp, body.tcp_last, dir, seg, settings.tcp, why);
    if (verdict == flow::TcpVerdict::Invalid) {
      w.cls = kInvalid;
      w.reason = drop_for(why);
      return;
    }
    if (verdict == flow::TcpVerdict::Reopen) {
      counters.state_leave(old_slot);
      counters.reopened.inc();
      table.remove(w.entry);
      w.entry = kNoEntry;
      w.cls = kNew;
      return;
    }
    body.state = static_cast<uint8_t>(state);
    if (one_way ? state == TcpState::Established : flow::tcp_assured(body.tcp))
      body.flags |= flow::kFlowAssured;  // the tracker applies Linux's rule
    if (dir == 1) body.flags |= flow::kFlowSeenReply;
    timeout = settings.tcp_timeout_ms[body.state];
    if (((body.tcp.flags[0] | body.tcp.flags[1]) & flow::kTcpFlagDataUnacked) &&
        timeout > settings.tcp_unacknowledged_ms)
      timeout = settings.tcp_unacknowledged_ms;
    table.set_protected(w.entry, (body.flags & flow::kFlowAssured) && flow::tcp_protected(state));
  } else {
    if (dir == 1 && !(body.flags & flow::kFlowSeenReply)) {
      body.flags |= flow::kFlowSeenReply;
      body.state = static_cast<uint8_t>(flow::GenericState::Replied);
    }
    const bool replied = body.flags & flow::kFlowSeenReply;
    if (e.key.proto == net::kIpProtoUdp) {
      // nf_conntrack_udp_packet(): replied traffic still alive 2 s after the first
      // packet is a stream: the long timeout, and assured (never evicted). A quick
      // question and answer (DNS) keeps the short one.
      timeout = settings.udp_ms;
      if (replied && flow::ms_diff(now, flow::created_ms(body)) >= 2000) {
        timeout = settings.udp_stream_ms;
        if (!(body.flags & flow::kFlowAssured)) {
          body.flags |= flow::kFlowAssured;
          table.set_protected(w.entry, true);
        }
      }
    } else if (e.key.proto == net::kIpProtoIcmp || e.key.proto == net::kIpProtoIcmpv6) {
      timeout = settings.icmp_ms;  // ICMP queries are never assured, as in nf_conntrack
    } else {
      timeout = settings.generic_ms;  // nor are other protocols (nf_conntrack_proto_generic)
    }
  }
  const unsigned new_slot = flow::state_slot(e.key.proto, body.state);
  if (new_slot != old_slot) {
    counters.state_leave(old_slot);
    counters.state_enter(new_slot);
  }
  table.arm(w.entry, now + timeout, now);
  w.cls = kEstablished;
}

// Creates the entry for an accepted new connection. False when the table is full.
template <typename Entry>
bool ConntrackStage::insert(Work& w, rte_mbuf* m, const PacketMeta& pm, const flow::FlowSettings& settings,
                            flow::FlowTable<Entry>& table, const typename Entry::Key& key, flow::Victim& victim) {
  flow::FlowCounters& counters = ctx_.flows->counters();
  const uint32_t now = ctx_.flows->now();
  // Another packet of this burst may have opened it already: then this one is its next,
  // judged by it (w.cls kEstablished or kInvalid), unless it reopens it (w.cls kNew).
  uint32_t index = table.find(key, w.hash);
  if (index != kNoEntry) {
    w.entry = index;
    w.dir = static_cast<uint8_t>(flow::direction(table.at(index).body, w.sender_slot));
    track_hit(w, table.at(index), m, pm, settings, table);
    if (w.cls != kNew) return true;
  }
  index = table.insert(key, w.hash, now, victim);
  if (victim.evicted) {
    counters.state_leave(flow::state_slot(victim.proto, victim.state));
    counters.evicted.inc();
  }
  if (index == kNoEntry) return false;
  Entry& e = table.at(index);
  flow::FlowBody& body = e.body;
  if (w.sender_slot) body.flags |= flow::kFlowOpenerSlot1;
  body.rule = static_cast<uint16_t>(w.rule);
  uint32_t timeout;
  if (key.proto == net::kIpProtoTcp) {
    auto state = TcpState::None;
    flow::tcp_new(state, body.tcp, body.tcp_last, tcp_segment_of(m, pm), settings.tcp);
    body.state = static_cast<uint8_t>(state);
    // A flow picked up mid-stream is established but not assured until it sees a reply.
    timeout = settings.tcp_timeout_ms[body.state];
  } else {
    body.state = static_cast<uint8_t>(flow::GenericState::Unreplied);
    flow::created_ms(body) = now;
    if (key.proto == net::kIpProtoUdp) timeout = settings.udp_ms;
    else if (key.proto == net::kIpProtoIcmp || key.proto == net::kIpProtoIcmpv6) timeout = settings.icmp_ms;
    else timeout = settings.generic_ms;
  }
  counters.created.inc();
  counters.state_enter(flow::state_slot(key.proto, body.state));
  table.arm(index, now + timeout, now);
  w.entry = index;
  return true;
}

// Finds where a routed packet would leave, as the route stage will; false when the
// route stage will not forward it (no route, ours, broadcast, TTL exhausted): such a
// packet is passed on untracked and the route stage answers or drops it.
bool ConntrackStage::resolve_egress(Work& w, rte_mbuf* m, const PacketMeta& pm, const l3::RouteTable* routes,
                                    uint64_t group) {
  if (!routes) {
    w.out_port = peer_port_;
    return true;
  }
  if (group == l3::kNoRoute) return false;
  const l3::NextHop& hop = routes->pick(group, routes->multipath(group) ? RouteStage::flow_hash(m, pm) : 0);
  if (hop.kind != l3::HopKind::Neighbour) return false;
  const uint8_t ttl = pm.l3 == L3::Ipv4 ? rte_pktmbuf_mtod_offset(m, const Ipv4Header*, pm.l3_offset)->ttl
                                        : rte_pktmbuf_mtod_offset(m, const Ipv6Header*, pm.l3_offset)->hop_limit;
  if (ttl <= 1) {
    // Untracked, it reaches the route stage untranslated, to our own address: marked so
    // that it gets the time exceeded a forwarded packet gets (Linux: after DNAT).
    if (w.cls == kNew && w.nat) meta(m).flags |= kMetaNatTtlSpent;
    return false;
  }
  w.out_port = hop.port_id;
  return true;
}

void ConntrackStage::process(Burst& burst) {
  BurstScratch s(*ctx_.policy->get(), *ctx_.flows, routed_ ? l3_.routes->get() : nullptr,
                 nat_.policy ? nat_.policy->get() : nullptr, nat_.services ? nat_.services->get() : nullptr,
                 burst.count);
  flow::FlowContext& flows = *ctx_.flows;
  if (s.rules && s.rules->generation() != flows.rule_generation()) [[unlikely]] {
    // A reload: the counters now count the new rules, from zero.
    for (auto& c : flows.rule_counters()) {
      c.packets.reset();
      c.bytes.reset();
    }
    flows.rule_generation().store(s.rules->generation(), std::memory_order_release);
  }

  key_pass(burst, s);
  lookup_pass(s);
  state_pass(burst, s);
  if (s.any_classify) classify_pass(burst, s);
  // A burst of known flows only (the usual one) stays as it is.
  if (s.any_classify || s.later_fragments) act_pass(burst, s);
  commit_counters(s);
}

// Pass 1: every packet's key and hash; its bucket prefetched as soon as the hash is known.
inline void ConntrackStage::key_pass(Burst& burst, BurstScratch& s) {
  const uint16_t n = s.n;
  flow::FlowTable4& table4 = s.table4;
  flow::FlowTable6* const table6 = s.table6;
  unsigned n4 = 0, n6 = 0;
  uint32_t untracked = 0, later_fragments = 0;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = burst.pkts[i];
    if (i + 4 < n) rte_prefetch0(rte_pktmbuf_mtod(burst.pkts[i + 4], void*));
    Work& w = s.work[i];
    w = Work{};
    w.entry = kNoEntry;
    uint8_t sender_slot;
    uint32_t hash;
    if (ipv4_l4_key(m, meta(m), zone_, s.keys4[i], sender_slot, hash)) [[likely]] {
      w.kind = kTrack4;
      w.sender_slot = sender_slot;
      w.hash = hash;
      // The bucket's miss starts now and overlaps the rest of this pass.
      table4.prefetch_primary(hash);
      s.hashes4[n4] = hash;
      s.idx4[n4++] = i;
      continue;
    }
    w.kind = kUntracked;
    const PacketKey key = flow_key_of_any(m, meta(m), zone_, table6 != nullptr, s.keys4[i], s.keys6[i]);
    switch (key.kind) {
      case KeyKind::Untracked:
        ++untracked;
        continue;
      case KeyKind::LaterFragment:
        // No ports to find its flow by (Sluice does not reassemble).
        ++later_fragments;
        if (s.settings.drop_later_fragments) {
          w.fate = kDrop;
          w.reason = Drop::LaterFragment;
        }
        continue;
      case KeyKind::Ipv4:
      case KeyKind::Ipv6:
        break;
    }
    const bool v6 = key.kind == KeyKind::Ipv6;
    w.kind = v6 ? kTrack6 : kTrack4;
    if (key.invalid) [[unlikely]] {
      w.cls = kInvalid;  // classified as invalid, never looked up
      w.reason = key.reason;
      continue;
    }
    w.related = key.related;
    w.sender_slot = key.sender_slot;
    w.hash = key.hash;
    // The bucket's miss starts now and overlaps the rest of this pass.
    if (!v6) {
      table4.prefetch_primary(w.hash);
      s.hashes4[n4] = w.hash;
      s.idx4[n4++] = i;
    } else {
      table6->prefetch_primary(w.hash);
      s.hashes6[n6] = w.hash;
      s.idx6[n6++] = i;
    }
  }
  s.n4 = n4;
  s.n6 = n6;
  s.untracked = untracked;
  s.later_fragments = later_fragments;
}

// Pass 2: one bulk lookup per family: each packet's candidate entry now (its line
// fetched), confirmed against the key in pass 3, when it is used.
inline void ConntrackStage::lookup_pass(BurstScratch& s) {
  uint32_t found[kMaxBurst];
  if (s.n4) {
    s.table4.candidates_bulk(s.hashes4, s.n4, found);
    for (unsigned k = 0; k < s.n4; ++k) s.work[s.idx4[k]].entry = found[k];
  }
  if (s.n6) {
    s.table6->candidates_bulk(s.hashes6, s.n6, found);
    for (unsigned k = 0; k < s.n6; ++k) s.work[s.idx6[k]].entry = found[k];
  }
}

// Pass 3: what each packet is to its flow: established (its flow's state advanced),
// related, new (when it may open one) or invalid. Marks the burst for pass 4 when any
// packet goes to the rules.
inline void ConntrackStage::state_pass(Burst& burst, BurstScratch& s) {
  const uint16_t n = s.n;
  flow::FlowTable4& table4 = s.table4;
  flow::FlowTable6* const table6 = s.table6;
  const bool rules_see_established = s.rules && s.rules->classifies_established();
  uint32_t tracked = 0, established = 0, related = 0;
  bool any_classify = false;
  for (uint16_t i = 0; i < n; ++i) {
    Work& w = s.work[i];
    if (s.nat) flow_meta(burst.pkts[i]) = FlowMeta{kNoEntry, kNoPort, 0, 0};  // none, unless found below
    if (w.kind == kUntracked) continue;
    ++tracked;
    if (w.cls == kInvalid) {  // decided in pass 1 (bad ICMP)
      any_classify = true;
      continue;
    }
    rte_mbuf* m = burst.pkts[i];
    const PacketMeta& pm = meta(m);
    if (w.kind == kTrack6) meet_flow(s, i, m, pm, *table6, s.keys6[i]);
    else meet_flow(s, i, m, pm, table4, s.keys4[i]);
    if (s.nat) record_flow(m, w, s);
    if (w.cls == kEstablished) ++established;
    else if (w.cls == kRelated) ++related;
    else if (w.cls == kNew) judge_opener(w, m, pm, s.settings);
    if (w.cls == kNew || w.cls == kInvalid || rules_see_established) any_classify = true;
  }
  s.tracked = tracked;
  s.established = established;
  s.related = related;
  s.any_classify = any_classify;
}

// Pass 3 for one packet with a key: confirms pass 2's candidate (reaping it when due)
// and judges the packet by the flow it found, or marks it new.
template <typename Entry>
inline void ConntrackStage::meet_flow(BurstScratch& s, uint16_t i, rte_mbuf* m, const PacketMeta& pm,
                                      flow::FlowTable<Entry>& table, const typename Entry::Key& key) {
  Work& w = s.work[i];
  const flow::FlowSettings& settings = s.settings;
  w.entry = table.confirm(key, w.hash, w.entry);
  if (w.entry != kNoEntry && flow::ms_diff(table.at(w.entry).body.expires, s.now) <= 0) [[unlikely]] {
    // Due but not reaped yet by the wheel: as good as gone.
    flow::FlowCounters& c = ctx_.flows->counters();
    c.state_leave(flow::state_slot(table.at(w.entry).key.proto, table.at(w.entry).body.state));
    table.remove(w.entry);
    c.expired.inc();
    s.forget(i, w.kind, w.entry);
    w.entry = kNoEntry;
  }
  if constexpr (flow::FlowTable<Entry>::kPairs) {
    // A translated flow, found by its original or its reply key: which way the packet
    // goes, from which key's point of view. A packet with the untranslated address the
    // other way is not the flow's, nor is an ICMP error quoting one (the original as it
    // was inside, arriving from outside; the reply as it was outside, from inside): that
    // packet never crossed the error's side, and nf_conntrack finds no flow for either.
    if (flow::is_pair(w.entry)) [[unlikely]] {
      const int dir = table.pair_direction(w.entry, w.sender_slot);
      const unsigned opener = (table.at(w.entry).body.flags & flow::kFlowOpenerSlot1) ? 1 : 0;
      if (dir < 0) {
        w.cls = kInvalid;
        w.reason = Drop::NatUntranslated;
        return;
      }
      w.sender_slot = static_cast<uint8_t>(opener ^ static_cast<unsigned>(dir));
    }
  }
  if (w.related) {
    if (w.entry != kNoEntry) {
      w.cls = kRelated;
      w.dir = static_cast<uint8_t>(flow::direction(table.at(w.entry).body, w.sender_slot));
    } else {
      w.cls = kInvalid;
      w.reason = Drop::IcmpNoFlow;
    }
    return;
  }
  if (w.entry == kNoEntry) {
    w.cls = kNew;
    return;
  }
  const uint32_t found = w.entry;
  Entry& e = table.at(found);
  flow::FlowBody& body = e.body;
  const uint8_t proto = e.key.proto;
  w.dir = static_cast<uint8_t>(flow::direction(body, w.sender_slot));
  const bool seen_reply = body.flags & flow::kFlowSeenReply;
  const bool settled = proto == net::kIpProtoUdp ? (body.flags & flow::kFlowAssured) != 0 : seen_reply;
  if (proto != net::kIpProtoTcp && (settled || (!seen_reply && flow::direction(body, w.sender_slot) == 0)))
      [[likely]] {
    // Nothing changes but the deadline: an assured UDP stream, a replied ICMP/other
    // flow, or one more packet from an opener still waiting for its reply.
    const uint32_t timeout = proto == net::kIpProtoUdp ? (seen_reply ? settings.udp_stream_ms : settings.udp_ms)
                             : (proto == net::kIpProtoIcmp || proto == net::kIpProtoIcmpv6) ? settings.icmp_ms
                                                                                             : settings.generic_ms;
    table.arm(found, s.now + timeout, s.now);
    w.cls = kEstablished;
  } else if (proto == net::kIpProtoTcp &&
             (rte_pktmbuf_mtod_offset(m, const TcpHeader*, pm.l4_offset)->flags &
              (flow::kTcpSyn | flow::kTcpFin | flow::kTcpRst)) &&
             !l4_checksum_ok(m, pm)) [[unlikely]] {
    w.cls = kInvalid;  // a forged SYN/FIN/RST must not move the flow's state
    w.reason = Drop::BadL4Checksum;
  } else {
    track_hit(w, e, m, pm, settings, table);
  }
  if (w.entry == kNoEntry) s.forget(i, w.kind, found);  // reopened: the old entry is gone
}

// The flow a packet of an established or related flow belongs to, for the nat stages.
// An IPv6 flow only when it is a load-balanced (ipip) connection's: its packets go into
// the tunnel.
inline void ConntrackStage::record_flow(rte_mbuf* m, const Work& w, const BurstScratch& s) {
  if ((w.cls != kEstablished && w.cls != kRelated) || w.entry == kNoEntry) return;
  if (w.kind == kTrack4)
    flow_meta(m) = FlowMeta{w.entry, kNoPort, static_cast<uint8_t>(w.cls == kRelated ? kFlowMetaRelated : 0), w.dir};
  else if (w.kind == kTrack6 && w.cls == kEstablished && (s.table6->at(w.entry).body.flags & flow::kFlowLb)) [[unlikely]]
    flow_meta(m) = FlowMeta{w.entry, kNoPort, kFlowMetaIpv6, w.dir};
}

// Where a new IPv4 connection goes once NAT has translated it (kind kNone: where it says).
nat::Destination ConntrackStage::nat_destination(const BurstScratch& s, const rte_mbuf* m, const PacketMeta& pm) const {
  if (!pm.l4_offset || (pm.l4_proto != net::kIpProtoTcp && pm.l4_proto != net::kIpProtoUdp)) return {};
  const uint8_t* l3 = rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l3_offset);
  const uint8_t* l4 = rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l4_offset);
  flow::NatTuple4 tuple;
  std::memcpy(&tuple.src, l3 + 12, 4);
  std::memcpy(&tuple.dst, l3 + 16, 4);
  std::memcpy(&tuple.sport, l4, 2);
  std::memcpy(&tuple.dport, l4 + 2, 2);
  const nat::Destination d = nat_.nat->destination_of(*s.nat, port_id_, tuple, pm.l4_proto);
  if (d.kind || !s.services) return d;
  return lb_destination(*s.services, tuple, pm.l4_proto);
}

// The backend a new connection to a load-balanced service goes to (kind kNone: no VIP,
// or no backend up: the lb stage drops it, counted).
nat::Destination ConntrackStage::lb_destination(const lb::ServiceTable& services, const flow::NatTuple4& tuple,
                                                uint8_t proto) const {
  nat::Destination d;
  const int index = services.find(tuple.dst, proto, tuple.dport);
  if (index < 0) [[likely]]
    return d;
  const lb::Service& service = services.service(static_cast<uint16_t>(index));
  const uint16_t backend =
      nat_.lb->pick(service, lb::flow_hash(tuple.src, tuple.dst, tuple.sport, tuple.dport, proto));
  // No backend up: planned as the first backend's (a route exists for it), so that the
  // connection reaches the lb stage, which drops and counts it (lb_no_backend).
  const lb::Backend& b = service.backends[backend == lb::kNoBackend ? 0 : backend];
  d.kind = nat::Destination::kService;
  d.addr = b.addr;
  d.port = b.port ? b.port : tuple.dport;
  d.backend = backend;
  return d;
}

// The backend a new IPv6 connection to a service goes to (ipip: delivered as sent, in a
// tunnel to the backend), planned in `w`: its address, or null when it is no service's.
const uint8_t* ConntrackStage::lb_destination6(const BurstScratch& s, const rte_mbuf* m, const PacketMeta& pm,
                                               Work& w) const {
  if (!pm.l4_offset || (pm.l4_proto != net::kIpProtoTcp && pm.l4_proto != net::kIpProtoUdp)) return nullptr;
  const auto* ip = rte_pktmbuf_mtod_offset(m, const Ipv6Header*, pm.l3_offset);
  const uint8_t* l4 = rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l4_offset);
  uint16_t sport, dport;
  std::memcpy(&sport, l4, 2);
  std::memcpy(&dport, l4 + 2, 2);
  const int index = s.services->find6(ip->dst, pm.l4_proto, dport);
  if (index < 0) [[likely]]
    return nullptr;
  const lb::Service& service = s.services->service(static_cast<uint16_t>(index));
  const uint16_t backend = nat_.lb->pick(service, lb::flow_hash6(ip->src, ip->dst, sport, dport, pm.l4_proto));
  w.nat = nat::Destination::kService;
  w.lb_backend = backend;
  // No backend up: routed as the first backend's, so that the lb stage drops and counts it.
  return service.backends[backend == lb::kNoBackend ? 0 : backend].addr6.data();
}

// Pass 4: the egress of the packets the rules will see (and of every new one on a routed
// port: no entry for what the router will not forward), then one classify per family.
inline void ConntrackStage::classify_pass(Burst& burst, BurstScratch& s) {
  const uint16_t n = s.n;
  const firewall::Ruleset* rules = s.rules;
  const l3::RouteTable* routes = s.routes;

  // Egress: one route lookup per family.
  uint32_t nat_dst[kMaxBurst];  // the destination as nat will rewrite it (dst_rewritten set)
  uint16_t nat_dport[kMaxBurst];
  uint8_t dst_rewritten[kMaxBurst];  // kTrack4 packets looked up: 1 nat_dst and nat_dport, 2 nat_dst only
  uint32_t dst4[kMaxBurst];
  uint8_t dst6[kMaxBurst][16];
  uint64_t groups4[kMaxBurst], groups6[kMaxBurst];
  uint16_t lookup4[kMaxBurst], lookup6[kMaxBurst];
  unsigned l4n = 0, l6n = 0;
  for (uint16_t i = 0; i < n; ++i) {
    Work& w = s.work[i];
    if (w.kind == kUntracked) continue;
    const bool classify = w.cls == kNew || w.cls == kInvalid || (rules && rules->classifies_established());
    // Without rules only new flows need their egress; with NAT invalid IPv4 packets too
    // (nat_invalid: would source NAT have translated it?).
    if (!classify || (!rules && w.cls != kNew && !(s.nat && w.cls == kInvalid && w.kind == kTrack4))) continue;
    w.needs_egress = 1;
    if (!routed_) continue;
    const PacketMeta& pm = meta(burst.pkts[i]);
    if (route_refuses(burst.pkts[i], pm, routes->interface(port_id_))) {
      w.needs_egress = 2;  // the route stage drops it before its lookup
      continue;
    }
    const uint8_t* l3 = rte_pktmbuf_mtod_offset(burst.pkts[i], const uint8_t*, pm.l3_offset);
    if (w.kind == kTrack4) {
      uint32_t d = reinterpret_cast<const Ipv4Header*>(l3)->dst.value();
      dst_rewritten[i] = 0;
      if (s.nat && w.cls == kNew) [[unlikely]] {
        // Where NAT will really send it (a port forward, an inbound EIM mapping): the
        // egress and the rules are those of the translated destination, as Linux's
        // forward chain sees them after PREROUTING's DNAT.
        const nat::Destination to = nat_destination(s, burst.pkts[i], pm);
        w.nat_checked = 1;
        if (to.kind) {
          w.nat = to.kind;
          w.lb_backend = to.backend;
          nat_dst[i] = to.addr;
          nat_dport[i] = to.port;
          dst_rewritten[i] = 1;
          d = rte_be_to_cpu_32(to.addr);
        }
      } else if (s.nat && flow::is_pair(w.entry) && !(w.cls == kInvalid && w.reason == Drop::NatUntranslated))
          [[unlikely]] {
        // The same for a packet of a translated flow (a reply to source NAT, a port
        // forward's client) when the rules see established or related packets: it
        // carries our outside address, which the route stage would take for its own.
        const flow::NatExt4& ext = s.table4.ext(w.entry);
        if (nat::rewrites(ext, w.dir, nat::Side::Destination)) {
          const nat::Endpoint to = nat::target(ext, w.dir, nat::Side::Destination);
          nat_dst[i] = to.addr;
          nat_dport[i] = to.port;
          // An ICMP error's port is its quoted packet's; TCP and UDP keep theirs.
          const bool ports = w.cls != kRelated && (pm.l4_proto == net::kIpProtoTcp || pm.l4_proto == net::kIpProtoUdp);
          dst_rewritten[i] = ports ? 1 : 2;
          d = rte_be_to_cpu_32(to.addr);
        }
      }
      if (ipv4_not_forwarded(d)) {
        w.needs_egress = 2;  // the route stage drops it
        continue;
      }
      dst4[l4n] = d;
      lookup4[l4n++] = i;
    } else {
      const uint8_t* d = reinterpret_cast<const Ipv6Header*>(l3)->dst;
      if (s.nat && s.services && w.cls == kNew && s.services->has_ipv6()) [[unlikely]] {
        // An IPv6 service's connection leaves toward its backend, inside the tunnel.
        w.nat_checked = 1;
        if (const uint8_t* backend = lb_destination6(s, burst.pkts[i], pm, w)) d = backend;
      }
      if (ipv6_not_forwarded(d)) {
        w.needs_egress = 2;
        continue;
      }
      std::memcpy(dst6[l6n], d, 16);
      lookup6[l6n++] = i;
    }
  }
  if (routes) {
    if (l4n) routes->lookup4(dst4, groups4, l4n);
    if (l6n) routes->lookup6(dst6, groups6, l6n);
  }
  auto egress = [&](uint16_t i, uint64_t group) {
    Work& w = s.work[i];
    if (!resolve_egress(w, burst.pkts[i], meta(burst.pkts[i]), routes, group)) w.needs_egress = 2;
  };
  for (unsigned k = 0; k < l4n; ++k) egress(lookup4[k], groups4[k]);
  for (unsigned k = 0; k < l6n; ++k) egress(lookup6[k], groups6[k]);
  if (!routed_)
    for (uint16_t i = 0; i < n; ++i)
      if (s.work[i].needs_egress == 1) s.work[i].out_port = peer_port_;

  // Classify.
  AclKey4 acl4[kMaxBurst];
  AclKey6 acl6[kMaxBurst];
  const uint8_t* acl4_ptrs[kMaxBurst];
  const uint8_t* acl6_ptrs[kMaxBurst];
  uint32_t results4[kMaxBurst], results6[kMaxBurst];
  uint16_t acl4_idx[kMaxBurst], acl6_idx[kMaxBurst];
  unsigned a4 = 0, a6 = 0;
  for (uint16_t i = 0; i < n; ++i) {
    Work& w = s.work[i];
    if (w.needs_egress == 2) {
      // Not going to be forwarded: the route stage deals with it, untracked.
      w.cls = kPass;
      continue;
    }
    if (!w.needs_egress || !rules) continue;
    rte_mbuf* m = burst.pkts[i];
    const PacketMeta& pm = meta(m);
    // A flow opened through an endpoint-independent mapping is the mapping's: related.
    const uint8_t state_bit = w.cls == kNew       ? (w.nat == nat::Destination::kMapping ? config::kCtRelated
                                                                                          : config::kCtNew)
                              : w.cls == kInvalid ? config::kCtInvalid
                              : w.cls == kRelated ? config::kCtRelated
                                                  : config::kCtEstablished;
    if (w.kind == kTrack4) {
      acl_key_of(acl4[a4], m, pm, *rules, port_id_, w.out_port, state_bit);
      if (routed_ && dst_rewritten[i]) {
        std::memcpy(&acl4[a4].dst, &nat_dst[i], 4);
        if (dst_rewritten[i] == 1) std::memcpy(&acl4[a4].dst_port, &nat_dport[i], 2);
      }
      acl4_ptrs[a4] = reinterpret_cast<const uint8_t*>(&acl4[a4]);
      acl4_idx[a4++] = i;
    } else {
      acl_key_of(acl6[a6], m, pm, *rules, port_id_, w.out_port, state_bit);
      acl6_ptrs[a6] = reinterpret_cast<const uint8_t*>(&acl6[a6]);
      acl6_idx[a6++] = i;
    }
  }
  if (a4) rules->classify4(acl4_ptrs, results4, a4);
  if (a6) rules->classify6(acl6_ptrs, results6, a6);
  for (unsigned k = 0; k < a4; ++k) s.work[acl4_idx[k]].rule = results4[k];
  for (unsigned k = 0; k < a6; ++k) s.work[acl6_idx[k]].rule = results6[k];
  s.classified = a4 + a6;
}

// What the rules make of a packet pass 4 sent to them (Accept for the rest, and for
// everything without a firewall): the rule that took it, else the zone policy for a new
// flow, else Drop for an invalid packet. Counts the rule hit or the policy's verdict.
inline Action ConntrackStage::rule_verdict(BurstScratch& s, const Work& w, const rte_mbuf* m) {
  if (!s.rules || !w.needs_egress) return Action::Accept;
  if (w.rule) {
    auto& counter = ctx_.flows->rule_counters()[w.rule];
    counter.packets.inc();
    counter.bytes.add(rte_pktmbuf_pkt_len(m));
    ++s.rule_hits;
    return s.rules->rule(w.rule).action;
  }
  if (w.cls == kNew && w.nat == nat::Destination::kMapping) return Action::Accept;  // related to its mapping
  if (w.cls == kNew) {
    const Action action = s.rules->policy(s.rules->zone_of_port(port_id_), s.rules->zone_of_port(w.out_port));
    if (action == Action::Accept) ++s.policy_accepted;
    else ++s.policy_dropped;
    return action;
  }
  if (w.cls == kInvalid) return Action::Drop;  // no rule took it: invalid packets do not pass
  return Action::Accept;
}

// Pass 5: act on every packet: drop, reject, open its flow (insert), or keep it.
inline void ConntrackStage::act_pass(Burst& burst, BurstScratch& s) {
  const uint16_t n = s.n;
  uint16_t kept = 0;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = burst.pkts[i];
    Work& w = s.work[i];
    if (w.fate == kDrop) {  // decided in pass 1
      drop(burst, m, w.reason);
      continue;
    }
    if (w.kind == kUntracked || w.cls == kPass) {
      if (w.kind != kUntracked) {
        ++s.untracked;  // passed to the route stage untouched: counted untracked, not tracked
        --s.tracked;
        if (s.nat) flow_meta(m).entry = kNoEntry;  // and untranslated: the route stage answers it as it came
      }
      burst.pkts[kept++] = m;
      continue;
    }
    const PacketMeta& pm = meta(m);
    const Action action = rule_verdict(s, w, m);
    if (w.cls == kInvalid) {
      ++s.invalid;
      if (action == Action::Drop) {
        drop(burst, m, w.reason);
        continue;
      }
      if (action == Action::Accept) {
        if (s.nat && w.kind == kTrack4 && !nat_invalid(s, w, m)) [[unlikely]] {
          drop(burst, m, Drop::NatUntranslated);
          continue;
        }
        ++s.invalid_forwarded;
        burst.pkts[kept++] = m;
        continue;
      }
    }
    if (action == Action::Drop) {
      drop(burst, m, Drop::FirewallDrop);
      continue;
    }
    if (action == Action::Reject) {
      reject(burst, m, pm, s.routes);
      continue;
    }
    if (w.cls == kNew && !open_flow(burst, s, i, kept, m, pm)) continue;
    burst.pkts[kept++] = m;
  }
  burst.count = kept;
}

// Pass 5 for a new connection the rules accept: its entry made. When an earlier packet
// of the burst made it, the packet is that flow's next, judged by it. False when the
// packet is gone (table full, or refused by the flow and then by the rules).
inline bool ConntrackStage::open_flow(Burst& burst, BurstScratch& s, uint16_t i, uint16_t kept, rte_mbuf* m,
                                      const PacketMeta& pm) {
  Work& w = s.work[i];
  flow::Victim victim;
  const bool ok = w.kind == kTrack4 ? insert(w, m, pm, s.settings, s.table4, s.keys4[i], victim)
                                    : insert(w, m, pm, s.settings, *s.table6, s.keys6[i], victim);
  if (!ok) {
    drop(burst, m, Drop::FlowTableFull);
    return false;
  }
  // Early drop reuses the evicted entry in place: its index is this flow's now.
  if (victim.evicted && s.nat) [[unlikely]]
    forget_evicted(burst, s, i, kept, w.entry, w.kind == kTrack6);
  if (w.cls == kNew) {
    ++s.new_flows;
    if (s.nat) {
      const uint8_t flags = kFlowMetaNew | (w.nat_checked && !w.nat ? kFlowMetaDestinationKept : 0);
      flow_meta(m) = FlowMeta{w.kind == kTrack4 ? w.entry : kNoEntry, w.out_port, flags, 0};
      if (w.nat == nat::Destination::kService) {
        flow_meta(m).flags |= kFlowMetaLb;
        meta(m).aux = lb::plan_code(w.lb_backend, s.services->tag());
        if (w.kind == kTrack6) {
          // Marked now, so that later packets of this burst find it the lb stage's; it
          // opens it (or removes it, refused) before they get there.
          flow::FlowEntry6& e = s.table6->at(w.entry);
          e.body.flags |= flow::kFlowLb;
          e.lb.service = flow::kLbUnopened;
          flow_meta(m).entry = w.entry;
          flow_meta(m).flags |= kFlowMetaIpv6;
        }
      }
    }
    return true;
  }
  if (w.cls == kEstablished) {
    ++s.established;  // an earlier packet of this burst opened its flow
    if (s.nat) record_flow(m, w, s);
    return true;
  }
  // ... and that flow refuses it (e.g. an ACK before any SYN/ACK): invalid, and the
  // rules see it once more as such.
  ++s.invalid;
  Action verdict = Action::Accept;  // no firewall: tracking only
  if (s.rules) {
    const uint32_t rule = classify_one(m, pm, *s.rules, port_id_, w.out_port, config::kCtInvalid);
    verdict = rule ? s.rules->rule(rule).action : Action::Drop;
    if (rule) {
      auto& counter = ctx_.flows->rule_counters()[rule];
      counter.packets.inc();
      counter.bytes.add(rte_pktmbuf_pkt_len(m));
      ++s.rule_hits;
    }
  }
  if (verdict == Action::Accept) {
    // Its flow's translation (made when nat meets the flow's first packet) applies to it.
    if (s.nat && w.kind == kTrack4) flow_meta(m) = FlowMeta{w.entry, kNoPort, 0, w.dir};
    ++s.invalid_forwarded;
    return true;
  }
  if (verdict == Action::Reject) reject(burst, m, pm, s.routes);
  else drop(burst, m, w.reason);
  return false;
}

// An invalid packet the rules (or their absence) let through, with NAT: it must not leave
// with an address NAT hides. One of a translated flow goes through its pair like the
// flow's other packets (Linux leaves invalid packets untranslated: an inside address
// leaks); one of no flow that a source NAT rule would translate is refused (false:
// dropped as nat_untranslated), as nothing could translate it back.
bool ConntrackStage::nat_invalid(const BurstScratch& s, const Work& w, rte_mbuf* m) {
  if (w.entry != kNoEntry) {
    if (flow::is_pair(w.entry) && w.reason != Drop::NatUntranslated)
      flow_meta(m) = FlowMeta{w.entry, kNoPort, 0, w.dir};
    return true;
  }
  if (w.needs_egress != 1) return true;  // the route stage answers it, untranslated
  const PacketMeta& pm = meta(m);
  const uint8_t* l3 = rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l3_offset);
  uint32_t src, dst;
  std::memcpy(&src, l3 + 12, 4);
  std::memcpy(&dst, l3 + 16, 4);
  return s.nat->match_snat(port_id_, w.out_port, src, dst, pm.l4_proto) == nullptr;
}

// Early drop gave `index` to packet i's new flow: the packets of this burst that met the
// evicted flow (passed already, in burst.pkts[0, kept), or found it in pass 3, after i)
// still name it, and nat would take them for the new flow's and translate them so.
// Their flow is gone: nat drops them (untranslated, they must not leave either).
// Other packets of this burst that named the evicted entry (of the IPv6 table: a
// load-balanced connection's) no longer have a flow: the nat stage drops them.
void ConntrackStage::forget_evicted(Burst& burst, const BurstScratch& s, uint16_t i, uint16_t kept, uint32_t index,
                                    bool v6) {
  auto forget = [index, v6](rte_mbuf* m) {
    FlowMeta& fm = flow_meta(m);
    if (fm.entry == index && bool(fm.flags & kFlowMetaIpv6) == v6) fm = FlowMeta{kNoEntry, kNoPort, kFlowMetaEvicted, 0};
  };
  for (uint16_t k = 0; k < kept; ++k) forget(burst.pkts[k]);
  for (uint16_t j = i + 1; j < s.n; ++j) forget(burst.pkts[j]);
}

inline void ConntrackStage::commit_counters(const BurstScratch& s) {
  if (s.tracked) tracked_.add(s.tracked);
  if (s.established) established_.add(s.established);
  if (s.related) related_.add(s.related);
  if (s.new_flows) new_flows_.add(s.new_flows);
  if (s.invalid) invalid_.add(s.invalid);
  if (s.invalid_forwarded) invalid_forwarded_.add(s.invalid_forwarded);
  if (s.untracked) untracked_.add(s.untracked);
  if (s.classified) classified_.add(s.classified);
  if (s.rule_hits) rule_hits_.add(s.rule_hits);
  if (s.policy_accepted) policy_accepted_.add(s.policy_accepted);
  if (s.policy_dropped) policy_dropped_.add(s.policy_dropped);
  if (s.later_fragments) later_fragments_.add(s.later_fragments);
}

void ConntrackStage::read_counters(NamedCounters& out) const {
  out.emplace_back("tracked", tracked_.get());
  out.emplace_back("established", established_.get());
  out.emplace_back("related", related_.get());
  out.emplace_back("new_flows", new_flows_.get());
  out.emplace_back("invalid", invalid_.get());
  out.emplace_back("invalid_forwarded", invalid_forwarded_.get());
  out.emplace_back("untracked", untracked_.get());
  out.emplace_back("later_fragments", later_fragments_.get());
  out.emplace_back("classified", classified_.get());
  out.emplace_back("rule_hits", rule_hits_.get());
  out.emplace_back("policy_accepted", policy_accepted_.get());
  out.emplace_back("policy_dropped", policy_dropped_.get());
  out.emplace_back("resets_sent", resets_sent_.get());
  out.emplace_back("unreachables_sent", unreachables_sent_.get());
  out.emplace_back("reject_rate_limited", reject_rate_limited_.get());
}

}  // namespace sluice::pipeline
