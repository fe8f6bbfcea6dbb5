// ARP and IPv6 neighbour discovery reach the router's slow path straight from the wire:
// any sequence of frames (ARP requests and replies of any length and field, NS/NA/RS/RA
// with any options), in one segment or two, from either side, with the clock moving
// between bursts, must be answered, learnt from or dropped with a reason; never read
// out of bounds, never lose an mbuf (the held packets included), and every frame the
// router sends must be well formed: ARP of 60 bytes from the port's MAC, NS/NA with a
// valid checksum, hop limit 255 and one link-layer address option, packets it held
// flushed with their new MACs (fuzz::SentChecker as for every frame).
//
// parse -> route (-> output) between two routed ring-backed ports, as fuzz_route:
// west 10.1.0.1/24, fd00:1::1/64 and east 192.0.2.1/24, 2001:db8:ffff::1/64; 198.18.0.0/15
// via 192.0.2.254 (static); every other host on the links is resolved from what the
// fuzzer answers. The route stage punts ARP, NS/NA and packets waiting for a neighbour;
// after every burst the router polls its punt ring and runs its timers at the fuzz
// clock; what it injects is checked and freed. A small neighbour table (64 entries, 2
// packets held each, 100 ms between probes, 2 probes, 1 s reachable and stale): a few
// clock steps solicit, fail, expire. At the end of each input the clock runs 12 s more
// with no traffic: every learnt neighbour must age out (only the static one is left)
// and every held packet be back in the pool, so each input starts where the first did
// (a Router and its FIBs are too costly to build per input: about 75 MiB zeroed). A
// unicast destination MAC is replaced by the ingress port's unless its first byte is 0.
// Input: records as in ring_frames.h (ctl: bit 7 into east, bit 6 two segments, bit 5
// unused, bits 0-4 clock steps of 500 ms before it), from byte 0.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <rte_mbuf.h>
#include <rte_ring.h>
#include <spdlog/spdlog.h>

#include "l3/rcu.h"
#include "pipeline/pipeline.h"
#include "pipeline/route.h"
#include "ring_frames.h"
#include "routed_ports.h"
#include "router/router.h"

namespace {

using namespace sluice;

constexpr const char* kTarget = "fuzz_neighbour";
constexpr unsigned kPoolSize = 1023;
constexpr size_t kMaxFrame = 1600;
constexpr uint64_t kStartMs = 1000000, kStepMs = 500;

constexpr const char* kConfig = R"({"eal": {"lcores": "0-1"},
  "ports": [
    {"name": "west", "device": "net_ring0", "ipv4": ["10.1.0.1/24"], "ipv6": ["fd00:1::1/64"],
     "pipeline": ["parse", "route"]},
    {"name": "east", "device": "net_ring1", "ipv4": ["192.0.2.1/24"], "ipv6": ["2001:db8:ffff::1/64"],
     "pipeline": ["parse", "route"]}],
  "routes": [{"prefix": "198.18.0.0/15", "via": "192.0.2.254"}],
  "neighbours": [{"address": "192.0.2.254", "mac": "02:00:00:00:02:fe", "port": "east"}],
  "neighbour": {"reachable_ms": 1000, "stale_ms": 1000, "retransmit_ms": 100, "probes": 2,
                "queue_packets": 2, "capacity": 64},
  "icmp": {"rate_per_second": 1000000, "burst": 1000}})";

struct Harness {
  fuzz::TwoPorts ports;
  std::unique_ptr<config::Config> config;
  std::unique_ptr<l3::Qsbr> qsbr;
  std::unique_ptr<router::Router> router;
  pipeline::L3Context l3;
  std::array<std::unique_ptr<pipeline::Pipeline>, 2> pipelines;
  std::unique_ptr<fuzz::SentChecker> checker;
  uint64_t now = kStartMs;
};
Harness* g = nullptr;

[[noreturn]] void fail(const char* what) { fuzz::fail(kTarget, what); }

// A frame the router sends itself (not one it held and flushed): ARP or NS/NA.
void check_neighbour_frame(const uint8_t* frame, uint32_t length, uint16_t port) {
  const rte_ether_addr& mac = g->ports.macs[g->ports.index_of(port)];
  if (length < 14 || std::memcmp(frame + 6, mac.addr_bytes, 6) != 0) fail("neighbour frame not from the port's MAC");
  const uint16_t type = fuzz::be16(frame + 12);
  if (type == 0x0806) {
    const uint8_t* arp = frame + 14;
    if (length != 60) fail("ARP frame not 60 bytes");
    if (fuzz::be16(arp) != 1 || fuzz::be16(arp + 2) != 0x0800 || arp[4] != 6 || arp[5] != 4)
      fail("ARP with the wrong hardware or protocol");
    const uint16_t op = fuzz::be16(arp + 6);
    if (op != 1 && op != 2) fail("ARP opcode");
    if (std::memcmp(arp + 8, mac.addr_bytes, 6) != 0) fail("ARP sender MAC not the port's");
    if (op == 2 && std::memcmp(frame, arp + 18, 6) != 0) fail("ARP reply not sent to the asker");
    return;
  }
  if (type != 0x86dd || length < 14 + 40 + 24) fail("router sent a frame that is neither ARP nor ND");
  const uint8_t* ip = frame + 14;
  const uint32_t payload = fuzz::be16(ip + 4);
  if (ip[6] != 58 || ip[7] != 255 || payload != 32 || length != 14 + 40 + payload) fail("ND header");
  const uint8_t* icmp = ip + 40;
  const uint32_t pseudo = fuzz::sum16(ip + 8, 32) + payload + 58;
  if (fuzz::fold(fuzz::sum16(icmp, payload, pseudo)) != 0xffff) fail("ND checksum");
  if ((icmp[0] != 135 && icmp[0] != 136) || icmp[1] != 0) fail("ND type");
  if (icmp[24] != (icmp[0] == 135 ? 1 : 2) || icmp[25] != 1 || std::memcmp(icmp + 26, mac.addr_bytes, 6) != 0)
    fail("ND link-layer address option");
  if (icmp[8] == 0xff) fail("ND about a multicast target");
}

// What the router injected: checked and freed.
unsigned drain_inject(router::Router& router) {
  unsigned n = 0;
  void* p;
  while (rte_ring_dequeue(router.inject_ring(0), &p) == 0) {
    auto* m = static_cast<rte_mbuf*>(p);
    const uint16_t port = pipeline::meta(m).out_port;
    if (port != g->ports.ids[0] && port != g->ports.ids[1]) fail("injected for no port");
    g->checker->check(m, port);
    uint8_t copy[2048];
    const uint32_t length = rte_pktmbuf_pkt_len(m);
    const auto* frame = static_cast<const uint8_t*>(rte_pktmbuf_read(m, 0, std::min<uint32_t>(length, sizeof(copy)), copy));
    // A held packet is an input's (an external buffer here, or a fragment of one):
    // the rest the router made itself.
    if (!(m->ol_flags & RTE_MBUF_F_EXTERNAL) && !RTE_MBUF_CLONED(m) && m->nb_segs == 1 && frame && length <= sizeof(copy) &&
        length >= 14 && (fuzz::be16(frame + 12) == 0x0806 || fuzz::be16(frame + 12) == 0x86dd))
      check_neighbour_frame(frame, length, port);
    rte_pktmbuf_free(m);
    ++n;
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::start_eal(kTarget);
  spdlog::set_level(spdlog::level::warn);  // Router::start logs a line: one per input here
  g = new Harness();
  g->ports.open("fuzz_neigh", kPoolSize);
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
  router::Router& router = *g->router;
  const auto& pipelines = g->pipelines;
  uint64_t& now = g->now;

  pipeline::Burst burst;
  unsigned direction = 0;
  std::vector<uint8_t> frame;
  auto run = [&] {
    if (burst.count != 0) {
      pipelines[direction]->run(burst);
      if (burst.count != 0) fail("packets left in the burst");
      burst.free_discards();
      fuzz::drain_ports(g->ports, *g->checker);
    }
    router.poll_at(now);
    drain_inject(router);
    if (router.neighbour_count() > g->config->neighbour.capacity) fail("more neighbours than the table holds");
  };

  size_t at = 0;
  fuzz::Record rec;
  while (fuzz::next_record(data, size, at, kMaxFrame, rec)) {
    if (rec.step || rec.direction != direction || burst.count == pipeline::kMaxBurst) {
      run();
      direction = rec.direction;
    }
    if (rec.step) {
      now += rec.step * kStepMs;
      run();
    }
    if (rec.length == 0) continue;
    frame.assign(rec.frame, rec.frame + rec.length);
    if (frame.size() >= 6 && frame[0] != 0 && !(frame[0] & 1))
      std::memcpy(frame.data(), g->ports.macs[direction].addr_bytes, 6);
    g->checker->add_input(frame.data(), frame.size());
    burst.pkts[burst.count++] = fuzz::frame_mbuf(g->ports.pool, frame.data(), frame.size(), rec.two_segments, segments);
  }
  run();
  // Twelve quiet seconds: every learnt neighbour ages out (reachable 1 s, stale 1 s, a
  // used stale one probed after 5 s, 2 probes 100 ms apart), and with it what it held.
  for (unsigned k = 0; k < 12; ++k) {
    now += 1000;
    run();
  }
  if (router.neighbour_count() != g->config->neighbours.size()) fail("a learnt neighbour never aged out");
  (void)router.neighbours_json();
  if (rte_mempool_avail_count(g->ports.pool) != kPoolSize) fail("an mbuf was lost");
  return 0;
}
