// The route stage reads attacker-controlled frames and answers some of them with ICMP
// errors it builds from their bytes: any burst of frames, in one segment or two, from
// either side, must be forwarded, answered, punted or dropped; never read out of bounds,
// never lose an mbuf, and every error it sends (time exceeded, unreachable, fragmentation
// needed, packet too big; IPv4 and IPv6) must verify from the bytes: its checksums and
// lengths right, its quote a prefix of the packet as it arrived and as long as RFC 1812
// (576 bytes) or RFC 4443 (1280) allow, sent back to that packet's source from the
// port's own address, and never about an ICMP error, a later fragment or a packet from a
// non-unicast source (fuzz::SentChecker in routed_ports.h).
//
// parse -> route (-> output) between two routed ring-backed ports: west 10.1.0.1/24,
// fd00:1::1/64 (MTU 1500) and east 192.0.2.1/24, 2001:db8:ffff::1/64 (MTU 1400). Routes:
// 198.18.0.0/15 via 192.0.2.254, 203.0.113.0/24 over two gateways (ECMP), 10.2.0.0/16 via
// 10.1.0.254, 2001:db8::/32 via 2001:db8:ffff::fe, fd00:2::/48 via fd00:1::fe; nothing
// else (no route: unreachable). Static neighbours for the gateways and 10.1.0.2,
// fd00:1::2; other hosts on the links are punted to wait for resolution (checked like a
// sent frame, then freed: the router is not polled). Every segment is its own heap block.
// A unicast destination MAC is replaced by the ingress port's unless its first byte is
// 0 (so the fuzzer can still send frames that are not for us). Input: records as in
// ring_frames.h (ctl: bit 7 into east, bit 6 two segments, bit 5 the NIC checked the IPv4
// header checksum and says truly what it found, bits 0-4 a burst boundary), from byte 0.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "l3/rcu.h"
#include "pipeline/pipeline.h"
#include "pipeline/route.h"
#include "ring_frames.h"
#include "routed_ports.h"
#include "router/router.h"

namespace {

using namespace sluice;

constexpr const char* kTarget = "fuzz_route";
constexpr unsigned kPoolSize = 1023;
constexpr size_t kMaxFrame = 1600;

constexpr const char* kConfig = R"({"eal": {"lcores": "0-1"},
  "ports": [
    {"name": "west", "device": "net_ring0", "ipv4": ["10.1.0.1/24"], "ipv6": ["fd00:1::1/64"],
     "pipeline": ["parse", "route"]},
    {"name": "east", "device": "net_ring1", "ipv4": ["192.0.2.1/24"], "ipv6": ["2001:db8:ffff::1/64"], "mtu": 1400,
     "pipeline": ["parse", "route"]}],
  "routes": [{"prefix": "198.18.0.0/15", "via": "192.0.2.254"},
             {"prefix": "203.0.113.0/24", "nexthops": [{"via": "192.0.2.254"}, {"via": "192.0.2.253"}]},
             {"prefix": "10.2.0.0/16", "via": "10.1.0.254"},
             {"prefix": "2001:db8::/32", "via": "2001:db8:ffff::fe"},
             {"prefix": "fd00:2::/48", "via": "fd00:1::fe"}],
  "neighbours": [
    {"address": "192.0.2.254", "mac": "02:00:00:00:02:fe", "port": "east"},
    {"address": "192.0.2.253", "mac": "02:00:00:00:02:fd", "port": "east"},
    {"address": "10.1.0.254", "mac": "02:00:00:00:01:fe", "port": "west"},
    {"address": "10.1.0.2", "mac": "02:00:00:00:01:02", "port": "west"},
    {"address": "2001:db8:ffff::fe", "mac": "02:00:00:00:06:fe", "port": "east"},
    {"address": "fd00:1::fe", "mac": "02:00:00:00:05:fe", "port": "west"},
    {"address": "fd00:1::2", "mac": "02:00:00:00:05:02", "port": "west"}],
  "icmp": {"rate_per_second": 1000000, "burst": 1000}})";

struct Harness {
  fuzz::TwoPorts ports;
  std::unique_ptr<config::Config> config;
  std::unique_ptr<l3::Qsbr> qsbr;
  std::unique_ptr<router::Router> router;
  pipeline::L3Context l3;
  std::array<std::unique_ptr<pipeline::Pipeline>, 2> pipelines;
  std::unique_ptr<fuzz::SentChecker> checker;
};
Harness* g = nullptr;

void drain() { fuzz::drain_ports_and_punts(g->ports, g->l3.punt_ring, *g->checker); }

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::start_eal(kTarget);
  g = new Harness();
  g->ports.open("fuzz_route", kPoolSize);
  g->config = std::make_unique<config::Config>(fuzz::parse_or_die(kConfig, kTarget));
  g->qsbr = std::make_unique<l3::Qsbr>(1);
  g->router = std::make_unique<router::Router>(*g->config, g->ports.pool, 1, g->qsbr.get());
  std::string error;
  if (!g->router->start(g->ports.names, g->ports.port_macs, error)) {
    fprintf(stderr, "%s: %s\n", kTarget, error.c_str());
    __builtin_trap();
  }
  g->l3 = g->router->context_for(0);
  for (unsigned i = 0; i < 2; ++i)
    g->pipelines[i] = pipeline::build_pipeline(*g->config->find_port(i == 0 ? "west" : "east"), g->ports.names,
                                               &g->ports.queues, &g->l3);
  g->checker = std::make_unique<fuzz::SentChecker>(kTarget, *g->config, g->ports);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::unique_ptr<fuzz::Segment>> segments;  // outlive every mbuf of this input
  g->checker->clear();
  pipeline::Burst burst;
  unsigned direction = 0;
  std::vector<uint8_t> frame;

  auto run = [&] {
    if (burst.count == 0) return;
    g->pipelines[direction]->run(burst);
    if (burst.count != 0) fuzz::fail(kTarget, "packets left in the burst");
    burst.free_discards();
    drain();
  };

  size_t at = 0;
  fuzz::Record rec;
  while (fuzz::next_record(data, size, at, kMaxFrame, rec)) {
    if (rec.step || rec.direction != direction || burst.count == pipeline::kMaxBurst) {
      run();
      direction = rec.direction;
    }
    if (rec.length == 0) continue;
    frame.assign(rec.frame, rec.frame + rec.length);
    if (frame.size() >= 6 && frame[0] != 0 && !(frame[0] & 1))
      std::memcpy(frame.data(), g->ports.macs[direction].addr_bytes, 6);
    g->checker->add_input(frame.data(), frame.size());
    rte_mbuf* m = fuzz::frame_mbuf(g->ports.pool, frame.data(), frame.size(), rec.two_segments, segments);
    if (rec.nic_flag && frame.size() >= 34 && fuzz::be16(&frame[12]) == 0x0800 && (frame[14] >> 4) == 4 &&
        (frame[14] & 0x0f) * 4u + 14 <= frame.size())
      m->ol_flags |= fuzz::ipv4_header_ok(&frame[14]) ? RTE_MBUF_F_RX_IP_CKSUM_GOOD : RTE_MBUF_F_RX_IP_CKSUM_BAD;
    burst.pkts[burst.count++] = m;
  }
  run();
  if (rte_mempool_avail_count(g->ports.pool) != kPoolSize) fuzz::fail(kTarget, "an mbuf was lost");
  return 0;
}
