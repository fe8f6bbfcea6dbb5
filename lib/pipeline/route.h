// route: the IPv4/IPv6 router's fast path (RFC 1812, RFC 8200). Per burst: header and
// address checks, one bulk FIB lookup per family, one bulk neighbour lookup, then TTL
// decrement, MTU check and MAC rewrite. Echo requests for Sluice's own addresses are
// answered in place; ICMP errors are built here, rate-limited per lcore. ARP, neighbour
// discovery and packets waiting for a neighbour go to the control thread's slow path
// over this lcore's punt ring; workers never write the tables they read.
#pragma once

#include <rte_ring.h>

#include "l3/icmp.h"
#include "l3/neighbour_table.h"
#include "l3/rcu.h"
#include "l3/route_table.h"
#include "pipeline/output.h"
#include "pipeline/packet_meta.h"
#include "pipeline/stage.h"

namespace sluice::pipeline {

// Why the slow path gets a packet (PacketMeta::aux).
enum PuntReason : uint16_t { kPuntArp = 1, kPuntNd = 2, kPuntResolve = 3, kPuntProbe = 4 };

// What one worker lcore's route stages share: the published tables, its punt ring to
// the control thread and its ICMP token bucket.
struct L3Context {
  const l3::Published<l3::RouteTable>* routes = nullptr;
  const l3::NeighbourTable* neighbours = nullptr;
  rte_ring* punt_ring = nullptr;
  l3::TokenBucket* icmp_bucket = nullptr;
};

// Told of each packet the route stage parks to wait for its neighbour, once it is
// routed: such a packet later leaves through the router's inject ring, past the stages
// after route (nat_src translates its source here instead).
class PostRouting {
 public:
  virtual ~PostRouting() = default;
  // False when the packet must be dropped instead (`reason`).
  virtual bool apply(rte_mbuf* m, Drop& reason) = 0;
  // An ICMP error the route stage made about packet `m` (IPv4, its ICMP header at
  // `icmp_offset`): when an earlier stage rewrote m's destination, the quoted packet is
  // put back as its sender sent it (Linux translates its own errors by the flow too).
  virtual void quote_as_sent(rte_mbuf* error, uint32_t icmp_offset, const rte_mbuf* m) = 0;
};

class RouteStage final : public Stage {
 public:
  RouteStage(uint16_t ingress_port, const L3Context& context, const TxQueues* tx_queues);
  void set_post_routing(PostRouting* post_routing) { post_routing_ = post_routing; }
  void process(Burst& burst) override;
  void read_counters(NamedCounters& out) const override;

  // The symmetric flow hash ECMP uses (both directions give the same value).
  static uint32_t flow_hash(const rte_mbuf* m, const PacketMeta& pm);

 private:
  struct Pending;
  bool process_simple(Burst& burst, const l3::RouteTable& table);
  void process_any(Burst& burst, const l3::RouteTable& table);
  bool check_ipv4(rte_mbuf* m, PacketMeta& pm, Drop& reason);
  bool check_ipv6(rte_mbuf* m, PacketMeta& pm, Drop& reason, bool& punt);
  void send_icmp_error(Burst& burst, rte_mbuf* m, const PacketMeta& pm, const l3::RouteTable& table, uint8_t type,
                       uint8_t code, uint32_t rest, uint16_t& kept);

  uint16_t ingress_port_;
  L3Context ctx_;
  PostRouting* post_routing_ = nullptr;
  const TxQueues* tx_queues_;
  uint64_t hz_;
  Counter forwarded4_, forwarded6_, local4_, local6_, route_lookups_, route_misses_, neighbour_misses_, punted_,
      icmp_echo_replies_, icmp_time_exceeded_, icmp_unreachable_, icmp_too_big_, icmp_rate_limited_,
      icmp_no_mbuf_;
};

}  // namespace sluice::pipeline
