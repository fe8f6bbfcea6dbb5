// The conntrack stage's answer to a connection its rules reject: the refused packet
// turned into a TCP RST in place, or an ICMP/ICMPv6 port unreachable quoting it. Off the
// hot path (act_pass in conntrack.cpp calls it for a Reject verdict only).
#include "pipeline/conntrack.h"

#include <cstring>

#include <rte_cycles.h>

#include "flow/tcp_tracker.h"
#include "l3/tcp_reset.h"
#include "net/headers.h"

namespace sluice::pipeline {

using net::Ipv4Header;
using net::Ipv6Header;
using net::TcpHeader;

// Answers a refused connection: a RST made from the packet itself for TCP, an ICMP
// port unreachable for the rest. Rate-limited per lcore; the refused packet is gone
// either way (counted as firewall_reject when no RST took its place).
void ConntrackStage::reject(Burst& burst, rte_mbuf* m, const PacketMeta& pm, const l3::RouteTable* routes) {
  TxQueue* tx = (*tx_queues_)[port_id_];
  const bool v6 = pm.l3 == L3::Ipv6;
  const bool later = pm.flags & kMetaLaterFragment;
  // What the answer would be; a token is spent only on one that will be sent.
  const bool tcp = pm.l4_proto == net::kIpProtoTcp && pm.l4_offset && !later;
  bool answerable;
  if (tcp) {
    answerable = !(rte_pktmbuf_mtod_offset(m, const TcpHeader*, pm.l4_offset)->flags & flow::kTcpRst);  // never a RST
  } else {
    // ICMP errors go out untagged (l3/icmp.cpp builds a bare Ethernet header): a tagged
    // frame is refused without an answer.
    answerable = !pm.vlan_count && (v6 ? l3::icmp6_error_allowed(m, pm.l3_offset, pm.l4_offset, pm.l4_proto, later)
                                       : l3::icmp4_error_allowed(m, pm.l3_offset, pm.l4_offset, later));
  }
  if (!tx || !ctx_.reject_bucket || !answerable) {
    drop(burst, m, Drop::FirewallReject);
    return;
  }
  if (!ctx_.reject_bucket->take(rte_rdtsc())) {
    reject_rate_limited_.inc();
    drop(burst, m, Drop::FirewallReject);
    return;
  }
  const rte_ether_addr* our_mac = routed_ ? &port_mac_ : nullptr;
  if (tcp) {
    l3::tcp_reset_in_place(m, pm.l3_offset, pm.l4_offset, v6, our_mac);
    counters_.drop(Drop::FirewallReject);  // the refused segment, now the RST
    meta(m) = PacketMeta{};
    meta(m).out_port = port_id_;
    resets_sent_.inc();
    tx->push(m);
    return;
  }
  rte_mbuf* reply;
  const auto* eth = rte_pktmbuf_mtod(m, const net::EthernetHeader*);
  rte_ether_addr src_mac;
  std::memcpy(src_mac.addr_bytes, routed_ ? port_mac_.addr_bytes : eth->dst.bytes, 6);
  if (!v6) {
    const auto* ip = rte_pktmbuf_mtod_offset(m, const Ipv4Header*, pm.l3_offset);
    uint32_t src = routes ? routes->interface(port_id_).ipv4 : 0;
    if (src == 0) src = ip->dst.raw;  // a wire answers as the host it protects
    reply = l3::icmp4_error(m, pm.l3_offset, l3::icmp4::kUnreachable, 3 /* port unreachable */, 0, src, src_mac);
  } else {
    const auto* ip = rte_pktmbuf_mtod_offset(m, const Ipv6Header*, pm.l3_offset);
    const uint8_t* src = ip->dst;
    if (routes && routes->interface(port_id_).has_ipv6) src = routes->interface(port_id_).ipv6.data();
    reply = l3::icmp6_error(m, pm.l3_offset, l3::icmp6::kUnreachable, 4 /* port unreachable */, 0, src, src_mac);
  }
  drop(burst, m, Drop::FirewallReject);
  if (!reply) return;  // the pool is empty: refused without an answer
  meta(reply) = PacketMeta{};
  meta(reply).out_port = port_id_;
  unreachables_sent_.inc();
  tx->push(reply);
}


}  // namespace sluice::pipeline
