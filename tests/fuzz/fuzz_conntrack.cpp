// The conntrack stage reads attacker-controlled frames and keeps state between them: any
// sequence of frames, in one segment or two, in either direction, with the clock moving
// between bursts, must be forwarded, answered or dropped; never read out of bounds, never
// lose an mbuf, never leave the flow table inconsistent (gauges, index, free list).
//
// parse -> conntrack -> xconnect -> output between two ring-backed ports, one worker's
// flow context (64 IPv4 and 32 IPv6 flows), three published policies (firewall; firewall with tcp_loose off,
// tcp_liberal, later fragments dropped and rules on established packets; no firewall).
// Every segment is its own heap allocation attached as an external buffer, so ASan sees
// any read past a segment. Input:
//   byte 0: the policy (mod 3)
//   then records: ctl (bit 7: 0 into west, 1 into east; bit 6: two segments, split in the
//   middle; bit 5: the NIC found the IP and L4 checksums good, else software checks them;
//   bits 0-4: clock step before it, 500 ms units), length (2 bytes, big-endian), the
//   frame. Frames in one direction with no clock step between them make one burst.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "config/config.h"
#include "firewall/policy.h"
#include "flow/flow_context.h"
#include "l3/icmp.h"
#include "l3/rcu.h"
#include "pipeline/packet_meta.h"
#include "pipeline/pipeline.h"
#include "ring_frames.h"

namespace {

using namespace sluice;

constexpr unsigned kPoolSize = 1023;
constexpr size_t kMaxFrame = 1600;
constexpr unsigned kPolicies = 3;
constexpr uint32_t kStepMs = 500;
constexpr uint32_t kCapacity4 = 64, kCapacity6 = 32;

constexpr const char* kPorts = R"("ports": [
    {"name": "west", "device": "net_ring0", "zone": "inside",
     "pipeline": ["parse", "conntrack", {"stage": "xconnect", "peer": "east"}]},
    {"name": "east", "device": "net_ring1", "zone": "outside",
     "pipeline": ["parse", "conntrack", {"stage": "xconnect", "peer": "west"}]}])";

// Short timeouts: a few clock steps expire anything.
constexpr const char* kTimeouts = R"("timeouts": {"tcp_syn_sent": 5, "tcp_syn_recv": 5, "tcp_established": 60,
    "tcp_fin_wait": 5, "tcp_close_wait": 5, "tcp_last_ack": 5, "tcp_time_wait": 5, "tcp_close": 2,
    "tcp_unacknowledged": 10, "udp": 3, "udp_stream": 10, "icmp": 3, "generic": 10})";

constexpr const char* kRules = R"("default_policy": "drop",
    "policies": [{"from": "inside", "to": "outside", "action": "accept"}],
    "rules": [
      {"name": "web-in", "from": "outside", "to": "inside", "protocol": "tcp", "dst_ports": [80, "8000-8080"],
       "action": "accept"},
      {"name": "ssh-refused", "protocol": "tcp", "dst_ports": 22, "action": "reject"},
      {"name": "udp-refused", "protocol": "udp", "dst_ports": [9, "5000-5010"], "action": "reject"},
      {"name": "ping-refused", "protocol": "icmp", "dst": "10.0.0.9", "action": "reject"},
      {"name": "ping6-refused", "protocol": "icmpv6", "action": "reject"},
      {"name": "syn-only", "from": "outside", "protocol": "tcp", "dst_ports": 443,
       "tcp_flags": {"mask": ["syn", "ack"], "set": ["syn"]}, "action": "accept"},
      {"name": "invalid-icmp", "protocol": "icmp", "state": ["invalid"], "action": "accept"},
      {"name": "gre-dropped", "protocol": 47, "action": "drop"})";

std::string config_text(unsigned which) {
  std::string conntrack = R"({"capacity": 1024, "capacity_ipv6": 1024, )";
  if (which == 1) conntrack += R"("tcp_loose": false, "tcp_liberal": true, "later_fragments": "drop", )";
  conntrack += kTimeouts;
  conntrack += "}";
  std::string text = std::string(R"({"eal": {"lcores": "0-1"}, )") + kPorts + R"(, "conntrack": )" + conntrack;
  if (which != 2) {
    text += R"(, "firewall": {)";
    text += kRules;
    // Rules on established and related packets: those are classified too.
    if (which == 1)
      text += R"(, {"name": "dns-seen", "protocol": "udp", "state": ["established", "related"], "dst_ports": 53,
                  "action": "accept"})";
    text += R"(], "reject_limit": {"rate_per_second": 1000000, "burst": 1000}})";
  }
  return text + "}";
}

struct Harness {
  rte_mempool* pool = nullptr;
  std::array<uint16_t, 2> ports{};  // west, east
  std::array<rte_ring*, 2> tx_rings{};
  std::unique_ptr<l3::Qsbr> qsbr;
  std::unique_ptr<flow::FlowContext> flows;
  std::array<std::unique_ptr<l3::Published<firewall::Policy>>, kPolicies> policies;
  l3::TokenBucket reject_bucket;
  std::array<pipeline::ConntrackContext, kPolicies> contexts;
  std::array<std::unique_ptr<pipeline::TxQueue>, 2> tx;
  pipeline::TxQueues queues{};
  std::array<std::array<std::unique_ptr<pipeline::Pipeline>, 2>, kPolicies> pipelines;
  uint32_t now_ms = 1000;
};
Harness* g = nullptr;

using fuzz::frame_mbuf;
using fuzz::ring_port;
using fuzz::Segment;

// Everything the ports sent, freed.
void drain() {
  for (auto& q : g->tx) q->flush();
  for (rte_ring* ring : g->tx_rings) {
    void* m;
    while (rte_ring_dequeue(ring, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
  }
}

// The table agrees with itself: every entry in use is found by its key where it is,
// their count is active(), and the per-state gauges add up to it.
template <typename Table>
uint32_t check_table(Table& table) {
  uint32_t in_use = 0;
  table.scan(0, table.capacity(), [&](uint32_t index, const auto& e) {
    if (table.find(e.key, e.key.hash()) != index) __builtin_trap();
    ++in_use;
    return true;
  });
  if (in_use != table.active()) __builtin_trap();
  return in_use;
}

void check_flows() {
  flow::FlowContext& flows = *g->flows;
  uint32_t active = check_table(flows.table4());
  if (flows.table6()) active += check_table(*flows.table6());
  uint64_t gauges = 0;
  for (const auto& c : flows.counters().by_state) gauges += c.get();
  if (gauges != active || active != flows.active()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* args[] = {"fuzz_conntrack", "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry", "-m", "256",
                        "-l", "0", "--log-level=error", nullptr};
  if (rte_eal_init(static_cast<int>(std::size(args) - 1), const_cast<char**>(args)) < 0) __builtin_trap();
  if (!pipeline::register_packet_meta()) __builtin_trap();
  g = new Harness();
  g->pool = rte_pktmbuf_pool_create("fuzz_ct", kPoolSize, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  if (!g->pool) __builtin_trap();
  g->ports[0] = ring_port("fz_west", g->pool, g->tx_rings[0]);
  g->ports[1] = ring_port("fz_east", g->pool, g->tx_rings[1]);
  const std::map<std::string, uint16_t> ids = {{"west", g->ports[0]}, {"east", g->ports[1]}};
  for (unsigned i = 0; i < 2; ++i) {
    g->tx[i] = std::make_unique<pipeline::TxQueue>(g->ports[i], 0);
    g->queues[g->ports[i]] = g->tx[i].get();
  }
  g->qsbr = std::make_unique<l3::Qsbr>(1);
  std::string error;
  // Far below what config allows: a few dozen frames fill it (early drop, flow_table_full).
  g->flows = flow::FlowContext::create(0, kCapacity4, kCapacity6, SOCKET_ID_ANY, error);
  if (!g->flows) __builtin_trap();
  g->flows->set_now(g->now_ms);
  g->reject_bucket = l3::TokenBucket(1000000, 1000, rte_get_tsc_hz());
  for (unsigned p = 0; p < kPolicies; ++p) {
    config::ParseResult parsed = config::parse_config_text(config_text(p), "fuzz_conntrack.json");
    if (!parsed.ok()) {
      for (const auto& e : parsed.errors) fprintf(stderr, "fuzz_conntrack: %s\n", e.c_str());
      __builtin_trap();
    }
    const config::Config& cfg = *parsed.config;
    auto policy = firewall::Policy::build(cfg, ids, p + 1, error);
    if (!policy) {
      fprintf(stderr, "fuzz_conntrack: %s\n", error.c_str());
      __builtin_trap();
    }
    g->policies[p] = std::make_unique<l3::Published<firewall::Policy>>(*g->qsbr);
    g->policies[p]->publish(std::move(policy));
    g->contexts[p] = pipeline::ConntrackContext{g->flows.get(), g->policies[p].get(), &g->reject_bucket};
    g->pipelines[p][0] = pipeline::build_pipeline(*cfg.find_port("west"), ids, &g->queues, nullptr, &g->contexts[p]);
    g->pipelines[p][1] = pipeline::build_pipeline(*cfg.find_port("east"), ids, &g->queues, nullptr, &g->contexts[p]);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto& pipelines = g->pipelines[data[0] % kPolicies];
  flow::FlowContext& flows = *g->flows;
  std::vector<std::unique_ptr<Segment>> segments;  // outlive every mbuf of this input
  pipeline::Burst burst;
  unsigned direction = 0;

  auto run = [&] {
    if (burst.count == 0) return;
    pipelines[direction]->run(burst);
    if (burst.count != 0) __builtin_trap();  // each packet is in a TX queue or the discards
    burst.free_discards();
    drain();
    check_flows();
  };

  size_t at = 1;
  fuzz::Record rec;
  while (fuzz::next_record(data, size, at, kMaxFrame, rec)) {
    const unsigned dir = rec.direction;
    const bool checksums_good = rec.nic_flag;
    const uint32_t step = rec.step;
    if (step || dir != direction || burst.count == pipeline::kMaxBurst) {
      run();
      direction = dir;
    }
    if (step) {
      g->now_ms += step * kStepMs;
      flows.set_now(g->now_ms);
      flows.service();
    }
    if (rec.length == 0) continue;
    rte_mbuf* m = frame_mbuf(g->pool, rec.frame, rec.length, rec.two_segments, segments);
    if (checksums_good) m->ol_flags |= RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
    burst.pkts[burst.count++] = m;
  }
  run();
  check_flows();

  // The next input starts from an empty table (the clock only moves on).
  flows.sweep();
  check_flows();
  if (rte_mempool_avail_count(g->pool) != kPoolSize) __builtin_trap();  // an mbuf was lost
  return 0;
}
