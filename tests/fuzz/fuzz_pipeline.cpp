// The pipeline end to end on one arbitrary frame: parse, conntrack with the firewall,
// route (and output) as a routed port runs them. Whatever the frame, it is forwarded,
// answered (echo reply, ICMP error, reject's RST or unreachable) or dropped with a
// reason; nothing reads out of bounds, no mbuf is lost, the flow table stays
// consistent, and every frame sent passes fuzz::SentChecker (routed_ports.h): IPv4
// headers that verify, every ICMP error made about the frame correct from the bytes.
//
// Two routed ring-backed ports: west (zone inside, 10.1.0.1/24, fd00:1::1/64) and east
// (zone outside, 192.0.2.1/24, 2001:db8:ffff::1/64, MTU 1400); default routes out of east
// via 192.0.2.254 and 2001:db8:ffff::fe, 10.2.0.0/16 via 10.1.0.254, static neighbours
// for the gateways and 10.1.0.2/fd00:1::2 (other hosts are punted for resolution:
// checked like a sent frame, then freed). One worker's flow context (64 IPv4 and 32 IPv6
// flows), swept after every input. Two published policies: 0, a firewall (inside to
// outside accepted; outside in: web to 10.1.0.10:80, SSH refused with a RST, UDP 9
// refused with an unreachable, ICMPv6 accepted, the rest dropped); 1, conntrack without a
// firewall. A unicast destination MAC is replaced by the ingress port's unless its first
// byte is 0. Input:
//   byte 0: bit 7 into east (else west); bit 6 two segments, split in the middle; bit 5
//   the NIC checked the IPv4 header and TCP/UDP checksums and says truly what it found;
//   bit 0 the policy;
//   then the frame (at most 4096 bytes).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "firewall/policy.h"
#include "flow/flow_context.h"
#include "l3/icmp.h"
#include "l3/rcu.h"
#include "pipeline/pipeline.h"
#include "pipeline/route.h"
#include "ring_frames.h"
#include "routed_ports.h"
#include "router/router.h"

namespace {

using namespace sluice;

constexpr const char* kTarget = "fuzz_pipeline";
constexpr unsigned kPoolSize = 1023;
constexpr size_t kMaxFrame = 4096;
constexpr unsigned kPolicies = 2;
constexpr uint32_t kCapacity4 = 64, kCapacity6 = 32;

constexpr const char* kCommon = R"("eal": {"lcores": "0-1"},
  "ports": [
    {"name": "west", "device": "net_ring0", "zone": "inside", "ipv4": ["10.1.0.1/24"], "ipv6": ["fd00:1::1/64"],
     "pipeline": ["parse", "conntrack", "route"]},
    {"name": "east", "device": "net_ring1", "zone": "outside", "ipv4": ["192.0.2.1/24"],
     "ipv6": ["2001:db8:ffff::1/64"], "mtu": 1400, "pipeline": ["parse", "conntrack", "route"]}],
  "routes": [{"prefix": "0.0.0.0/0", "via": "192.0.2.254"}, {"prefix": "::/0", "via": "2001:db8:ffff::fe"},
             {"prefix": "10.2.0.0/16", "via": "10.1.0.254"}],
  "neighbours": [
    {"address": "192.0.2.254", "mac": "02:00:00:00:02:fe", "port": "east"},
    {"address": "2001:db8:ffff::fe", "mac": "02:00:00:00:06:fe", "port": "east"},
    {"address": "10.1.0.254", "mac": "02:00:00:00:01:fe", "port": "west"},
    {"address": "10.1.0.2", "mac": "02:00:00:00:01:02", "port": "west"},
    {"address": "10.1.0.10", "mac": "02:00:00:00:01:10", "port": "west"},
    {"address": "fd00:1::2", "mac": "02:00:00:00:05:02", "port": "west"}],
  "icmp": {"rate_per_second": 1000000, "burst": 1000},
  "conntrack": {"capacity": 1024, "capacity_ipv6": 1024})";

constexpr const char* kFirewall = R"(, "firewall": {"default_policy": "drop",
    "policies": [{"from": "inside", "to": "outside", "action": "accept"}],
    "rules": [
      {"name": "web-in", "from": "outside", "to": "inside", "protocol": "tcp", "dst": "10.1.0.10", "dst_ports": 80,
       "action": "accept"},
      {"name": "ssh-refused", "protocol": "tcp", "dst_ports": 22, "action": "reject"},
      {"name": "udp-refused", "protocol": "udp", "dst_ports": 9, "action": "reject"},
      {"name": "ping6-in", "from": "outside", "protocol": "icmpv6", "action": "accept"}],
    "reject_limit": {"rate_per_second": 1000000, "burst": 1000}})";

std::string config_text(unsigned which) { return std::string("{") + kCommon + (which == 0 ? kFirewall : "") + "}"; }

struct Harness {
  fuzz::TwoPorts ports;
  std::array<std::unique_ptr<config::Config>, kPolicies> configs;
  std::unique_ptr<l3::Qsbr> qsbr;
  std::unique_ptr<router::Router> router;
  pipeline::L3Context l3;
  std::unique_ptr<flow::FlowContext> flows;
  std::array<std::unique_ptr<l3::Published<firewall::Policy>>, kPolicies> policies;
  l3::TokenBucket reject_bucket;
  std::array<pipeline::ConntrackContext, kPolicies> contexts;
  std::array<std::array<std::unique_ptr<pipeline::Pipeline>, 2>, kPolicies> pipelines;
  std::unique_ptr<fuzz::SentChecker> checker;
};
Harness* g = nullptr;

[[noreturn]] void fail(const char* what) { fuzz::fail(kTarget, what); }

template <typename Table>
uint32_t check_table(Table& table) {
  uint32_t in_use = 0;
  table.scan(0, table.capacity(), [&](uint32_t index, const auto& e) {
    if (table.find(e.key, e.key.hash()) != index) fail("entry not found by its key");
    ++in_use;
    return true;
  });
  if (in_use != table.active()) fail("active() is not what a scan finds");
  return in_use;
}

void check_flows() {
  flow::FlowContext& flows = *g->flows;
  uint32_t active = check_table(flows.table4());
  if (flows.table6()) active += check_table(*flows.table6());
  uint64_t gauges = 0;
  for (const auto& c : flows.counters().by_state) gauges += c.get();
  if (gauges != active || active != flows.active()) fail("per-state gauges");
}

// The TCP/UDP checksum of an untagged IPv4/IPv6 frame's whole datagram: 1 valid, 0 not,
// -1 not a whole TCP/UDP datagram.
int l4_checksum_ok(const uint8_t* frame, size_t length) {
  if (length < 14 + 40) return -1;
  const uint16_t type = fuzz::be16(frame + 12);
  const uint8_t* ip = frame + 14;
  uint32_t header, total, pseudo;
  uint8_t proto;
  if (type == 0x0800 && (ip[0] >> 4) == 4) {
    header = (ip[0] & 0x0f) * 4u;
    total = fuzz::be16(ip + 2);
    if (header < 20 || total < header || 14 + total > length || (fuzz::be16(ip + 6) & 0x3fff)) return -1;
    proto = ip[9];
    pseudo = fuzz::sum16(ip + 12, 8);
  } else if (type == 0x86dd && (ip[0] >> 4) == 6) {
    header = 40;
    total = 40u + fuzz::be16(ip + 4);
    if (14 + total > length) return -1;
    proto = ip[6];
    pseudo = fuzz::sum16(ip + 8, 32);
  } else {
    return -1;
  }
  if (proto != 6 && proto != 17) return -1;
  const uint32_t l4 = total - header;
  if (l4 < (proto == 6 ? 20u : 8u)) return -1;
  return fuzz::fold(fuzz::sum16(ip + header, l4, pseudo + l4 + proto)) == 0xffff ? 1 : 0;
}

void drain() { fuzz::drain_ports_and_punts(g->ports, g->l3.punt_ring, *g->checker); }

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::start_eal(kTarget);
  g = new Harness();
  g->ports.open("fuzz_pipe", kPoolSize);
  for (unsigned p = 0; p < kPolicies; ++p)
    g->configs[p] = std::make_unique<config::Config>(fuzz::parse_or_die(config_text(p), kTarget));
  g->qsbr = std::make_unique<l3::Qsbr>(1);
  // Ports, addresses, routes and neighbours are the same in both policies: one router.
  g->router = std::make_unique<router::Router>(*g->configs[0], g->ports.pool, 1, g->qsbr.get());
  std::string error;
  if (!g->router->start(g->ports.names, g->ports.port_macs, error)) {
    fprintf(stderr, "%s: %s\n", kTarget, error.c_str());
    __builtin_trap();
  }
  g->l3 = g->router->context_for(0);
  g->flows = flow::FlowContext::create(0, kCapacity4, kCapacity6, SOCKET_ID_ANY, error);
  if (!g->flows) __builtin_trap();
  g->flows->set_now(1000);
  g->reject_bucket = l3::TokenBucket(1000000, 1000, rte_get_tsc_hz());
  for (unsigned p = 0; p < kPolicies; ++p) {
    const config::Config& cfg = *g->configs[p];
    auto policy = firewall::Policy::build(cfg, g->ports.names, p + 1, error);
    if (!policy) {
      fprintf(stderr, "%s: %s\n", kTarget, error.c_str());
      __builtin_trap();
    }
    g->policies[p] = std::make_unique<l3::Published<firewall::Policy>>(*g->qsbr);
    g->policies[p]->publish(std::move(policy));
    g->contexts[p] = pipeline::ConntrackContext{g->flows.get(), g->policies[p].get(), &g->reject_bucket};
    for (unsigned i = 0; i < 2; ++i)
      g->pipelines[p][i] = pipeline::build_pipeline(*cfg.find_port(i == 0 ? "west" : "east"), g->ports.names,
                                                    &g->ports.queues, &g->l3, &g->contexts[p]);
  }
  g->checker = std::make_unique<fuzz::SentChecker>(kTarget, *g->configs[0], g->ports);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2 || size - 1 > kMaxFrame) return 0;
  const uint8_t ctl = data[0];
  const unsigned direction = ctl >> 7, policy = ctl & 1;
  std::vector<uint8_t> frame(data + 1, data + size);
  if (frame.size() >= 6 && frame[0] != 0 && !(frame[0] & 1))
    std::memcpy(frame.data(), g->ports.macs[direction].addr_bytes, 6);
  g->checker->clear();
  g->checker->add_input(frame.data(), frame.size());

  std::vector<std::unique_ptr<fuzz::Segment>> segments;  // outlive the mbuf
  rte_mbuf* m = fuzz::frame_mbuf(g->ports.pool, frame.data(), frame.size(), ctl & 0x40, segments);
  if (ctl & 0x20) {
    if (frame.size() >= 34 && fuzz::be16(&frame[12]) == 0x0800 && (frame[14] >> 4) == 4 &&
        (frame[14] & 0x0f) * 4u + 14 <= frame.size())
      m->ol_flags |= fuzz::ipv4_header_ok(&frame[14]) ? RTE_MBUF_F_RX_IP_CKSUM_GOOD : RTE_MBUF_F_RX_IP_CKSUM_BAD;
    const int l4 = l4_checksum_ok(frame.data(), frame.size());
    if (l4 >= 0) m->ol_flags |= l4 ? RTE_MBUF_F_RX_L4_CKSUM_GOOD : RTE_MBUF_F_RX_L4_CKSUM_BAD;
  }
  pipeline::Burst burst;
  burst.pkts[burst.count++] = m;
  g->pipelines[policy][direction]->run(burst);
  if (burst.count != 0) fail("packets left in the burst");
  burst.free_discards();
  drain();
  check_flows();

  // The next input starts from an empty table.
  g->flows->sweep();
  check_flows();
  if (rte_mempool_avail_count(g->ports.pool) != kPoolSize) fail("an mbuf was lost");
  return 0;
}
