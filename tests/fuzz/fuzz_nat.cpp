// NAT rewrites attacker-controlled packets and keeps state between them: any sequence of
// frames, in one segment or two, from either side, with the clock moving between bursts,
// must be forwarded, translated, answered or dropped; never read out of bounds, never
// lose an mbuf, never leave the flow table, its NAT pairs or the NAT context's
// accounting inconsistent, and never send a checksum that NAT or routing broke.
//
// parse -> reassemble -> nptv6 -> conntrack -> nat -> route -> nat_src -> output (the
// builder inserts reassemble, nptv6 and nat_src) between two routed, ring-backed ports:
// west (inside, 10.1.0.1/24, fd00:1::1/64) and east (outside, 192.0.2.1/24,
// 2001:db8:ffff::1/64, MTU 1400), static neighbours for the hosts on both sides and the
// gateways, so nothing waits for resolution (what is punted anyway is checked like a
// sent frame and freed after each burst). One worker's flow context: 32 plain IPv4
// entries, 16 IPv6, 8 NAT pairs (eviction, nat_table_full); a NAT context over it with 8
// EIM mappings and room for 4 datagrams of 4 fragments being reassembled. Three published
// policies, the same addresses and rules in each:
//   snat "tiny": 10.1.0.32/28 -> 198.51.100.1 ports 5000-5003 (nat_no_port)
//   snat "eim":  10.1.0.64/28 -> 198.51.100.8/30 ports 6000-6031, endpoint-independent
//   snat "masq": anything leaving east -> 192.0.2.1
//   dnat "web":  tcp 192.0.2.1:8080 -> 10.1.0.10:80; "games": udp 192.0.2.1:27000-27003
//                -> 10.1.0.11
//   nptv6 on east: fd00:1::/48 <-> 2001:db8:1::/48
// 0: firewall, endpoint-dependent masquerade and "tiny", hairpin;
// 1: no firewall, every source rule endpoint-independent, hairpin;
// 2: firewall with rules on established and related packets, "tiny" endpoint-independent,
//    masquerade endpoint-dependent, no hairpin.
//
// Every segment is its own heap allocation attached as an external buffer, so ASan sees
// any read past a segment. A unicast destination MAC is replaced by the ingress port's
// (so frames reach the router whatever the fuzzer writes there). Input:
//   byte 0: the policy (mod 3)
//   then records: ctl (bit 7: 0 into west, 1 into east; bit 6: two segments, split in the
//   middle; bit 5: the NIC checked the IP and L4 checksums and says what it found; bits
//   0-4: clock step before it, 500 ms units, also given to the reassembler: a step of
//   2 s or more expires the fragments held), length (2 bytes, big-endian), the frame.
//   Frames in one direction with no clock step between them make one burst.
//
// Invariants, checked after every burst (a violation traps):
// - the burst is empty after the pipeline (every packet sent, punted or discarded); at
//   the end of each input, once the table is swept and the reassembler flushed, the
//   mempool is whole again;
// - the flow table agrees with itself: each entry in use found by its key at its index,
//   each pair by its original key (kPairBit|p) and its reply key (kPairBit|kReplyBit|p),
//   its keys those of its two tuples, active() and pairs_active() what a scan counts, the
//   per-state gauges adding up; the NAT context's per-address in_use gauges what the
//   pairs holding an address slot say; its EIM mappings exactly those the pairs refer
//   to, each with as many references as pairs, found by both endpoints;
// - every frame sent (or punted to wait for a neighbour) is a sane mbuf; every IPv4 one
//   holds its total length and has a valid header checksum; a TCP/UDP one whose IP ID is
//   that of exactly one input frame, a whole datagram with a valid TCP/UDP checksum,
//   verifies too (a UDP checksum of zero stays zero, a computed zero is sent as 0xffff);
//   every ICMP message verifies unless an input frame with its IP ID carried ICMP the
//   pipeline could not have made right (a bad checksum, a fragment); IPv6 TCP/UDP whose
//   payload is an input's with a valid checksum verifies (NPTv6 is checksum-neutral), and
//   every ICMPv6 message unless the input held one with a bad checksum. The ring PMD
//   offers no TX offload, so every checksum must be in the frame: none may ask for one.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
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
#include "nat/nat_context.h"
#include "nat/policy.h"
#include "pipeline/packet_meta.h"
#include "pipeline/pipeline.h"
#include "ring_frames.h"
#include "pipeline/route.h"
#include "router/router.h"

namespace {

using namespace sluice;

constexpr unsigned kPoolSize = 2047;
constexpr size_t kMaxFrame = 1600;
constexpr unsigned kPolicies = 3;
constexpr uint32_t kStepMs = 500;
// Far below what config allows: a few dozen frames fill them.
constexpr uint32_t kCapacity4 = 32, kCapacity6 = 16, kPairs = 8;

constexpr const char* kPorts = R"("ports": [
    {"name": "west", "device": "net_ring0", "zone": "inside", "ipv4": ["10.1.0.1/24"], "ipv6": ["fd00:1::1/64"],
     "pipeline": ["parse", "conntrack", "nat", "route"]},
    {"name": "east", "device": "net_ring1", "zone": "outside", "ipv4": ["192.0.2.1/24"],
     "ipv6": ["2001:db8:ffff::1/64"], "mtu": 1400, "pipeline": ["parse", "conntrack", "nat", "route"]}],
  "routes": [{"prefix": "0.0.0.0/0", "via": "192.0.2.254"}, {"prefix": "::/0", "via": "2001:db8:ffff::fe"},
             {"prefix": "10.2.0.0/16", "via": "10.1.0.254"}],
  "icmp": {"rate_per_second": 1000000, "burst": 1000})";

// Every host the seeds (tests/fuzz/run.sh) talk to or as, and both gateways.
constexpr const char* kNeighbours = R"("neighbours": [
    {"address": "192.0.2.254", "mac": "02:00:00:00:02:fe", "port": "east"},
    {"address": "192.0.2.2", "mac": "02:00:00:00:02:02", "port": "east"},
    {"address": "2001:db8:ffff::fe", "mac": "02:00:00:00:06:fe", "port": "east"},
    {"address": "10.1.0.254", "mac": "02:00:00:00:01:fe", "port": "west"},
    {"address": "10.1.0.2", "mac": "02:00:00:00:01:02", "port": "west"},
    {"address": "10.1.0.3", "mac": "02:00:00:00:01:03", "port": "west"},
    {"address": "10.1.0.10", "mac": "02:00:00:00:01:10", "port": "west"},
    {"address": "10.1.0.11", "mac": "02:00:00:00:01:11", "port": "west"},
    {"address": "10.1.0.34", "mac": "02:00:00:00:01:34", "port": "west"},
    {"address": "10.1.0.35", "mac": "02:00:00:00:01:35", "port": "west"},
    {"address": "10.1.0.66", "mac": "02:00:00:00:01:66", "port": "west"},
    {"address": "10.1.0.67", "mac": "02:00:00:00:01:67", "port": "west"},
    {"address": "fd00:1::2", "mac": "02:00:00:00:05:02", "port": "west"}])";

// Short timeouts: a few clock steps expire anything.
constexpr const char* kConntrack = R"("conntrack": {"capacity": 1024, "capacity_ipv6": 1024,
    "timeouts": {"tcp_syn_sent": 5, "tcp_syn_recv": 5, "tcp_established": 60, "tcp_fin_wait": 5,
      "tcp_close_wait": 5, "tcp_last_ack": 5, "tcp_time_wait": 5, "tcp_close": 2, "tcp_unacknowledged": 10,
      "udp": 3, "udp_stream": 10, "icmp": 3, "generic": 10}})";

std::string nat_text(unsigned which) {
  const char* edm = R"("endpoint-dependent")";
  const char* eim = R"("endpoint-independent")";
  const std::string tiny = which == 0 ? edm : eim;
  const std::string masq = which == 1 ? eim : edm;
  const std::string hairpin = which == 2 ? "false" : "true";
  return R"("nat": {"capacity": 1024,
    "snat": [
      {"name": "tiny", "src": "10.1.0.32/28", "out_port": "east", "pool": ["198.51.100.1"], "ports": "5000-5003",
       "mapping": )" + tiny + R"(},
      {"name": "eim", "src": "10.1.0.64/28", "out_port": "east", "pool": ["198.51.100.8/30"], "ports": "6000-6031",
       "mapping": "endpoint-independent"},
      {"name": "masq", "out_port": "east", "masquerade": true, "mapping": )" + masq + R"(}],
    "dnat": [
      {"name": "web", "dst": "192.0.2.1", "protocol": "tcp", "port": 8080, "to_address": "10.1.0.10", "to_port": 80,
       "hairpin": )" + hairpin + R"(},
      {"name": "games", "dst": "192.0.2.1", "protocol": "udp", "port": "27000-27003", "to_address": "10.1.0.11",
       "hairpin": )" + hairpin + R"(}],
    "nptv6": [{"name": "site6", "port": "east", "inside": "fd00:1::/48", "outside": "2001:db8:1::/48"}],
    "fragments": {"max_datagrams": 4, "max_fragments": 4, "timeout_ms": 2000}})";
}

std::string firewall_text(unsigned which) {
  std::string rules = R"(
      {"name": "web-in", "from": "outside", "to": "inside", "protocol": "tcp", "dst": "10.1.0.10", "dst_ports": 80,
       "action": "accept"},
      {"name": "games-in", "from": "outside", "to": "inside", "protocol": "udp", "dst": "10.1.0.11",
       "action": "accept"},
      {"name": "web6-in", "from": "outside", "to": "inside", "protocol": "tcp", "dst": "fd00:1::/48",
       "dst_ports": 80, "action": "accept"},
      {"name": "ping6-in", "from": "outside", "protocol": "icmpv6", "action": "accept"},
      {"name": "ssh-refused", "protocol": "tcp", "dst_ports": 22, "action": "reject"},
      {"name": "udp-refused", "protocol": "udp", "dst_ports": 9, "action": "reject"})";
  // Rules on established and related packets: those are classified too.
  if (which == 2)
    rules += R"(,
      {"name": "dns-seen", "protocol": "udp", "state": ["established", "related"], "dst_ports": 53,
       "action": "accept"},
      {"name": "related-refused", "protocol": "tcp", "state": ["related"], "dst_ports": 23, "action": "drop"})";
  return R"("firewall": {"default_policy": "drop",
    "policies": [{"from": "inside", "to": "outside", "action": "accept"},
                 {"from": "inside", "to": "inside", "action": "accept"}],
    "rules": [)" + rules + R"(],
    "reject_limit": {"rate_per_second": 1000000, "burst": 1000}})";
}

std::string config_text(unsigned which) {
  std::string text = std::string(R"({"eal": {"lcores": "0-1"}, )") + kPorts + ", " + kNeighbours + ", " + kConntrack +
                     ", " + nat_text(which);
  if (which != 1) text += ", " + firewall_text(which);
  return text + "}";
}

struct Harness {
  rte_mempool* pool = nullptr;
  std::array<uint16_t, 2> ports{};  // west, east
  std::array<rte_ether_addr, 2> macs{};
  std::array<rte_ring*, 2> tx_rings{};
  std::array<std::unique_ptr<config::Config>, kPolicies> configs;
  std::unique_ptr<l3::Qsbr> qsbr;
  std::unique_ptr<router::Router> router;
  pipeline::L3Context l3;
  std::unique_ptr<flow::FlowContext> flows;
  nat::AddressRegistry addresses;
  std::unique_ptr<nat::NatContext> nat;
  std::array<uint64_t, RTE_MAX_ETHPORTS> tx_offloads{};  // what the ring ports negotiated: nothing
  std::array<std::unique_ptr<l3::Published<firewall::Policy>>, kPolicies> policies;
  std::array<std::unique_ptr<l3::Published<nat::Policy>>, kPolicies> nat_policies;
  l3::TokenBucket reject_bucket;
  std::array<pipeline::ConntrackContext, kPolicies> contexts;
  std::array<pipeline::NatStageContext, kPolicies> nat_contexts;
  std::array<std::unique_ptr<pipeline::TxQueue>, 2> tx;
  pipeline::TxQueues queues{};
  std::array<std::array<std::unique_ptr<pipeline::Pipeline>, 2>, kPolicies> pipelines;
  uint32_t now_ms = 1000;
};
Harness* g = nullptr;
unsigned g_sent = 0;       // frames sent, for report()
bool g_verbose = false;    // FUZZ_NAT_VERBOSE

[[noreturn]] void fail(const char* what) {
  fprintf(stderr, "fuzz_nat: invariant broken: %s\n", what);
  __builtin_trap();
}

using fuzz::frame_mbuf;
using fuzz::ring_port;
using fuzz::Segment;

// ---- checksums, computed here from the bytes (not with the code under test)

uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
  if (n & 1) sum += uint32_t(p[n - 1]) << 8;
  return sum;
}
uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}
uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

enum class L4Sum : uint8_t { None, Valid, Invalid, Zero };  // Zero: a UDP datagram without a checksum

// What the harness reads of a frame, before (input) or after (output) the pipeline.
struct IpView {
  bool ipv4 = false, ipv6 = false;
  const uint8_t* ip = nullptr;
  uint32_t header = 0;   // IPv4 header / IPv6 fixed header (no extension headers here)
  uint32_t total = 0;    // IPv4 total length / 40 + IPv6 payload length
  uint8_t proto = 0;     // IPv4 protocol / IPv6 next header
  bool fragment = false;
  bool header_ok = false;  // IPv4 header checksum
  L4Sum l4 = L4Sum::None;  // TCP, UDP, ICMP or ICMPv6, a whole datagram only
};

// The L4 sum of a whole datagram, `l4` bytes long at `p` (TCP/UDP/ICMPv6 with a
// pseudo-header sum `pseudo`, ICMP without).
L4Sum l4_sum(uint8_t proto, const uint8_t* p, uint32_t length, uint32_t pseudo, bool v6) {
  switch (proto) {
    case 6:
      if (length < 20) return L4Sum::None;
      break;
    case 17: {
      if (length < 8) return L4Sum::None;
      const uint16_t udp_length = be16(p + 4);
      if (udp_length < 8 || udp_length > length) return L4Sum::None;
      length = udp_length;  // the datagram, whatever padding the IP payload holds
      if (!v6 && be16(p + 6) == 0) return L4Sum::Zero;
      break;
    }
    case 1:
      if (v6 || length < 8) return L4Sum::None;
      return fold(sum16(p, length)) == 0xffff ? L4Sum::Valid : L4Sum::Invalid;
    case 58:
      if (!v6 || length < 8) return L4Sum::None;
      break;
    default:
      return L4Sum::None;
  }
  return fold(sum16(p, length, pseudo + length + proto)) == 0xffff ? L4Sum::Valid : L4Sum::Invalid;
}

IpView view_of(const uint8_t* frame, uint32_t length) {
  IpView v;
  uint32_t at = 12;
  if (length < 14) return v;
  uint16_t type = be16(frame + 12);
  for (unsigned tags = 0; (type == 0x8100 || type == 0x88a8) && tags < 2; ++tags) {
    if (length < at + 6) return v;
    type = be16(frame + at + 4);
    at += 4;
  }
  at += 2;
  const uint8_t* ip = frame + at;
  const uint32_t room = length - at;
  if (type == 0x0800) {
    if (room < 20 || (ip[0] >> 4) != 4) return v;
    const uint32_t header = (ip[0] & 0x0f) * 4u, total = be16(ip + 2);
    if (header < 20 || header > room || total < header || total > room) return v;
    v.ipv4 = true;
    v.ip = ip;
    v.header = header;
    v.total = total;
    v.proto = ip[9];
    v.fragment = (be16(ip + 6) & 0x3fff) != 0;
    v.header_ok = fold(sum16(ip, header)) == 0xffff;
    if (!v.fragment) v.l4 = l4_sum(v.proto, ip + header, total - header, sum16(ip + 12, 8), false);
  } else if (type == 0x86dd) {
    if (room < 40 || (ip[0] >> 4) != 6) return v;
    const uint32_t total = 40u + be16(ip + 4);
    if (total > room) return v;
    v.ipv6 = true;
    v.ip = ip;
    v.header = 40;
    v.total = total;
    v.proto = ip[6];
    v.l4 = l4_sum(v.proto, ip + 40, total - 40, sum16(ip + 8, 32), true);
  }
  return v;
}

uint64_t payload_hash(const IpView& v) {
  uint64_t h = 0xcbf29ce484222325ull ^ v.proto;
  for (uint32_t i = v.header; i < v.total; ++i) h = (h ^ v.ip[i]) * 0x100000001b3ull;
  return h;
}

// What one input's frames were, for judging what comes out.
struct InputFacts {
  struct Frame {
    uint8_t proto;
    bool fragment;
    L4Sum l4;
  };
  std::unordered_map<uint16_t, std::vector<Frame>> by_id;  // IPv4 frames by IP ID
  std::unordered_set<uint64_t> v6_valid, v6_invalid;       // IPv6 TCP/UDP payloads by checksum
  bool v6_icmp_unverifiable = false;                      // an ICMPv6 message with a bad checksum came in

  void add(const IpView& v) {
    if (v.ipv4) {
      by_id[be16(v.ip + 4)].push_back(Frame{v.proto, v.fragment, v.l4});
    } else if (v.ipv6) {
      if (v.proto == 6 || v.proto == 17) {
        if (v.l4 == L4Sum::Valid) v6_valid.insert(payload_hash(v));
        else v6_invalid.insert(payload_hash(v));
      } else if (v.proto == 58 && v.l4 != L4Sum::Valid) {
        v6_icmp_unverifiable = true;
      }
    }
  }
};
InputFacts* g_facts = nullptr;
uint8_t g_frame[65536 + 64];

// A frame that broke an invariant, for the report.
[[noreturn]] void fail_frame(const char* what, const uint8_t* frame, uint32_t length) {
  fprintf(stderr, "fuzz_nat: the frame (%u bytes):", length);
  for (uint32_t i = 0; i < length && i < 256; ++i) fprintf(stderr, "%s%02x", i % 32 ? " " : "\n  ", frame[i]);
  fprintf(stderr, "\n");
  fail(what);
}

// One frame the pipeline sends (or parks for its neighbour, to send later).
void check_sent(const rte_mbuf* m) {
  const char* why = nullptr;
  if (rte_mbuf_check(m, 1, &why) != 0) fail(why);
  if (m->ol_flags & (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_TCP_SEG))
    fail("a checksum left to a TX offload the port does not have");
  const uint32_t length = rte_pktmbuf_pkt_len(m);
  if (length > sizeof(g_frame)) fail("frame longer than any datagram");
  const auto* frame = static_cast<const uint8_t*>(rte_pktmbuf_read(m, 0, length, g_frame));
  if (!frame) fail("frame shorter than its pkt_len");
  const IpView v = view_of(frame, length);
  // Only IPv4 the parse stage accepted is forwarded: its header and total length are there.
  if (length >= 14 && be16(frame + 12) == 0x0800 && !v.ipv4)
    fail_frame("IPv4 frame sent with a broken header or shorter than its total length", frame, length);
  if (v.ipv4) {
    if (!v.header_ok) fail_frame("IPv4 header checksum", frame, length);
    if (v.fragment) return;
    const auto it = g_facts->by_id.find(be16(v.ip + 4));
    if (v.proto == 6 || v.proto == 17) {
      if (it == g_facts->by_id.end() || it->second.size() != 1) return;
      const InputFacts::Frame& in = it->second[0];
      if (in.proto != v.proto || in.fragment) return;
      if (in.l4 == L4Sum::Zero) {
        if (v.l4 != L4Sum::Zero) fail_frame("UDP datagram without a checksum sent with one", frame, length);
      } else if (in.l4 == L4Sum::Valid) {
        if (v.l4 != L4Sum::Valid) fail_frame("TCP/UDP checksum broken on the way", frame, length);
      }
    } else if (v.proto == 1 && v.l4 != L4Sum::Valid) {
      if (it != g_facts->by_id.end())
        for (const InputFacts::Frame& in : it->second)
          if (in.proto == 1 && (in.fragment || in.l4 != L4Sum::Valid)) return;  // came in wrong
      fail_frame("ICMP checksum", frame, length);
    }
  } else if (v.ipv6) {
    if (v.proto == 6 || v.proto == 17) {
      const uint64_t h = payload_hash(v);
      if (g_facts->v6_valid.count(h) && !g_facts->v6_invalid.count(h) && v.l4 != L4Sum::Valid)
        fail_frame("IPv6 TCP/UDP checksum broken on the way", frame, length);
    } else if (v.proto == 58 && v.l4 != L4Sum::Valid && !g_facts->v6_icmp_unverifiable) {
      fail_frame("ICMPv6 checksum", frame, length);
    }
  }
}

// FUZZ_NAT_VERBOSE: one line per IPv4 frame sent.
void print_sent(const char* port, const rte_mbuf* m) {
  const auto* frame = static_cast<const uint8_t*>(rte_pktmbuf_read(m, 0, rte_pktmbuf_pkt_len(m), g_frame));
  const IpView v = view_of(frame, rte_pktmbuf_pkt_len(m));
  if (!v.ipv4) return;
  const uint8_t* a = v.ip + 12;
  const uint8_t* l4 = v.ip + v.header;
  const bool ports = !v.fragment && (v.proto == 6 || v.proto == 17) && v.total >= v.header + 4;
  fprintf(stderr, "  out %s: proto %u id %04x %u.%u.%u.%u:%u -> %u.%u.%u.%u:%u%s\n", port, v.proto, be16(v.ip + 4), a[0],
          a[1], a[2], a[3], ports ? be16(l4) : 0, a[4], a[5], a[6], a[7], ports ? be16(l4 + 2) : 0,
          v.fragment ? " (fragment)" : "");
}

// Everything the ports sent, checked and freed; the punt ring emptied the same way (the
// router is not polled: what waits for resolution is checked as it would leave).
void drain() {
  for (auto& q : g->tx) q->flush();
  for (rte_ring* ring : g->tx_rings) {
    void* m;
    while (rte_ring_dequeue(ring, &m) == 0) {
      check_sent(static_cast<rte_mbuf*>(m));
      if (g_verbose) print_sent(ring == g->tx_rings[0] ? "west" : "east", static_cast<rte_mbuf*>(m));
      rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
      ++g_sent;
    }
  }
  void* m;
  while (rte_ring_dequeue(g->l3.punt_ring, &m) == 0) {
    auto* mbuf = static_cast<rte_mbuf*>(m);
    if (pipeline::meta(mbuf).aux == pipeline::kPuntResolve) check_sent(mbuf);
    rte_pktmbuf_free(mbuf);
  }
}

// ---- the flow table and the NAT context

template <typename Table>
uint32_t check_plain(Table& table) {
  uint32_t in_use = 0;
  table.scan(0, table.scan_end(), [&](uint32_t index, const auto& e) {
    if (table.find(e.key, e.key.hash()) != index) fail("entry not found by its key");
    ++in_use;
    return true;
  });
  if (in_use != table.active()) fail("active() is not what a scan finds");
  return in_use;
}

struct EimSeen {
  uint32_t outside_addr;
  uint16_t outside_port;
  uint32_t refs;
};

uint32_t check_pairs(flow::FlowTable4& table, const nat::NatContext& nat) {
  uint32_t in_use = 0, pairs = 0;
  std::map<uint16_t, uint64_t> slot_use;
  std::map<std::tuple<uint32_t, uint16_t, uint8_t>, EimSeen> eims;  // inside endpoint -> outside one
  table.scan(0, table.scan_end(), [&](uint32_t index, const flow::FlowEntry4& e) {
    if (table.find(e.key, e.key.hash()) != index) fail("entry not found by its key");
    ++in_use;
    if (!flow::is_pair(index)) return true;
    ++pairs;
    const flow::NatExt4& x = table.ext(index);
    if (table.find(x.reply_key, x.reply_key.hash()) != (index | flow::kReplyBit)) fail("pair not found by its reply key");
    flow::FlowKey4 key;
    const unsigned reply_slot =
        flow::make_key4(key, x.reply.src, x.reply.dst, x.reply.sport, x.reply.dport, e.key.proto, e.key.zone);
    if (!(key == x.reply_key) || reply_slot != x.reply_sender_slot) fail("reply key is not the reply tuple's");
    const unsigned opener =
        flow::make_key4(key, x.orig.src, x.orig.dst, x.orig.sport, x.orig.dport, e.key.proto, e.key.zone);
    if (!(key == e.key) || opener != ((e.body.flags & flow::kFlowOpenerSlot1) ? 1u : 0u))
      fail("original key is not the original tuple's");
    if (!(x.kind & (flow::kNatSource | flow::kNatDestination))) fail("pair that translates nothing");
    if (x.address_slot != nat::kNoSlot) ++slot_use[x.address_slot];
    if (x.kind & flow::kNatEim) {
      const bool inbound = x.kind & flow::kNatInbound;
      const flow::NatTuple4& in = inbound ? x.reply : x.orig;  // the inside endpoint is its source
      const uint32_t out_addr = inbound ? x.orig.dst : x.reply.dst;
      const uint16_t out_port = inbound ? x.orig.dport : x.reply.dport;
      auto [it, fresh] = eims.try_emplace({in.src, in.sport, e.key.proto}, EimSeen{out_addr, out_port, 0});
      if (!fresh && (it->second.outside_addr != out_addr || it->second.outside_port != out_port))
        fail("one inside endpoint, two endpoint-independent mappings");
      ++it->second.refs;
    }
    return true;
  });
  if (in_use != table.active()) fail("active() is not what a scan finds");
  if (pairs != table.pairs_active()) fail("pairs_active() is not what a scan finds");
  for (uint16_t slot = 0; slot < g->addresses.addresses().size(); ++slot) {
    const auto it = slot_use.find(slot);
    if (nat.address(slot).in_use.get() != (it == slot_use.end() ? 0 : it->second)) fail("address in_use gauge");
  }
  if (nat.eim_active() != eims.size()) fail("eim_active() is not the mappings the pairs hold");
  for (const auto& [inside, seen] : eims) {
    const auto [addr, port, proto] = inside;
    const nat::EimMapping* m = nat.eim_by_inside(addr, port, proto);
    if (!m) fail("a pair's endpoint-independent mapping is gone");
    if (m->outside_addr != seen.outside_addr || m->outside_port != seen.outside_port)
      fail("endpoint-independent mapping maps elsewhere than its pairs");
    if (m->refs != seen.refs) fail("endpoint-independent mapping's references are not its pairs");
    if (nat.eim_by_outside(seen.outside_addr, seen.outside_port, proto) != m)
      fail("endpoint-independent mapping not found by its outside endpoint");
  }
  return in_use;
}

void check_flows() {
  flow::FlowContext& flows = *g->flows;
  uint32_t active = check_pairs(flows.table4(), *g->nat);
  if (flows.table6()) active += check_plain(*flows.table6());
  uint64_t gauges = 0;
  for (const auto& c : flows.counters().by_state) gauges += c.get();
  if (gauges != active || active != flows.active()) fail("per-state gauges");
}

// FUZZ_NAT_VERBOSE set: what each stage of the policy's pipelines counted so far (drops
// and its own counters), and what was sent, after every input: for checking that a seed
// does what it says.
void report(unsigned which) {
  for (const auto& pipe : g->pipelines[which]) {
    fprintf(stderr, "%s:", pipe->port_name().c_str());
    for (const auto& stage : pipe->stages()) {
      for (size_t r = 0; r < kDropCount; ++r)
        if (const uint64_t d = stage->counters().drops[r].get())
          fprintf(stderr, " %s/%s=%lu", stage->name().c_str(), std::string(kDropInfo[r].name).c_str(), d);
      pipeline::NamedCounters named;
      stage->read_counters(named);
      for (const auto& [name, value] : named)
        if (value) fprintf(stderr, " %s.%s=%lu", stage->name().c_str(), std::string(name).c_str(), value);
    }
    fprintf(stderr, "\n");
  }
  const nat::NatCounters& c = g->nat->counters();
  fprintf(stderr, "sent %u, nat: created %lu no_port %lu no_room %lu eim %lu inbound %lu hairpinned %lu icmp %lu nptv6 %lu\n",
          g_sent, c.mappings_created.get(), c.no_port.get(), c.no_room.get(), c.eim_created.get(),
          c.eim_inbound.get(), c.hairpinned.get(), c.icmp_errors.get(), c.nptv6_translated.get());
}

config::Config parse_or_die(unsigned which) {
  config::ParseResult parsed = config::parse_config_text(config_text(which), "fuzz_nat.json");
  if (!parsed.ok()) {
    for (const auto& e : parsed.errors) fprintf(stderr, "fuzz_nat: %s\n", e.c_str());
    __builtin_trap();
  }
  return *parsed.config;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* args[] = {"fuzz_nat", "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry", "-m", "256",
                        "-l", "0", "--log-level=error", nullptr};
  if (rte_eal_init(static_cast<int>(std::size(args) - 1), const_cast<char**>(args)) < 0) __builtin_trap();
  if (!pipeline::register_packet_meta()) __builtin_trap();
  g = new Harness();
  g->pool = rte_pktmbuf_pool_create("fuzz_nat", kPoolSize, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  if (!g->pool) __builtin_trap();
  g->ports[0] = ring_port("fz_west", g->pool, g->tx_rings[0]);
  g->ports[1] = ring_port("fz_east", g->pool, g->tx_rings[1]);
  const std::map<std::string, uint16_t> ids = {{"west", g->ports[0]}, {"east", g->ports[1]}};
  l3::RouteTable::PortMacs macs{};
  for (unsigned i = 0; i < 2; ++i) {
    rte_eth_macaddr_get(g->ports[i], &g->macs[i]);
    macs[g->ports[i]] = g->macs[i];
    g->tx[i] = std::make_unique<pipeline::TxQueue>(g->ports[i], 0);
    g->queues[g->ports[i]] = g->tx[i].get();
  }
  for (unsigned p = 0; p < kPolicies; ++p) g->configs[p] = std::make_unique<config::Config>(parse_or_die(p));
  // Ports, addresses, routes and neighbours are the same in every policy: one router.
  g->qsbr = std::make_unique<l3::Qsbr>(1);
  g->router = std::make_unique<router::Router>(*g->configs[0], g->pool, 1, g->qsbr.get());
  std::string error;
  if (!g->router->start(ids, macs, error)) {
    fprintf(stderr, "fuzz_nat: %s\n", error.c_str());
    __builtin_trap();
  }
  g->l3 = g->router->context_for(0);
  g->flows = flow::FlowContext::create(0, kCapacity4, kCapacity6, SOCKET_ID_ANY, error, kPairs);
  if (!g->flows) __builtin_trap();
  g->flows->set_now(g->now_ms);
  // The pair pool's size, not config's minimum: as many EIM mappings as pairs.
  config::NatConfig nat_config = g->configs[0]->nat;
  nat_config.capacity = kPairs;
  g->nat = nat::NatContext::create(0, 1, nat_config, *g->flows, SOCKET_ID_ANY, error);
  if (!g->nat) {
    fprintf(stderr, "fuzz_nat: %s\n", error.c_str());
    __builtin_trap();
  }
  g->reject_bucket = l3::TokenBucket(1000000, 1000, rte_get_tsc_hz());
  for (unsigned p = 0; p < kPolicies; ++p) {
    const config::Config& cfg = *g->configs[p];
    auto policy = firewall::Policy::build(cfg, ids, p + 1, error);
    auto nat_policy = policy ? nat::Policy::build(cfg, ids, 1, p + 1, g->addresses, error) : nullptr;
    if (!policy || !nat_policy) {
      fprintf(stderr, "fuzz_nat: %s\n", error.c_str());
      __builtin_trap();
    }
    g->policies[p] = std::make_unique<l3::Published<firewall::Policy>>(*g->qsbr);
    g->policies[p]->publish(std::move(policy));
    g->nat_policies[p] = std::make_unique<l3::Published<nat::Policy>>(*g->qsbr);
    g->nat_policies[p]->publish(std::move(nat_policy));
    g->contexts[p] = pipeline::ConntrackContext{g->flows.get(), g->policies[p].get(), &g->reject_bucket};
    g->nat_contexts[p] = pipeline::NatStageContext{g->nat.get(), g->nat_policies[p].get(), &g->tx_offloads};
    for (unsigned i = 0; i < 2; ++i)
      g->pipelines[p][i] = pipeline::build_pipeline(*cfg.find_port(i == 0 ? "west" : "east"), ids, &g->queues, &g->l3,
                                                    &g->contexts[p], nullptr, &g->nat_contexts[p]);
  }
  g_facts = new InputFacts();
  g_verbose = getenv("FUZZ_NAT_VERBOSE") != nullptr;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto& pipelines = g->pipelines[data[0] % kPolicies];
  flow::FlowContext& flows = *g->flows;
  nat::NatContext& nat = *g->nat;
  std::vector<std::unique_ptr<Segment>> segments;  // outlive every mbuf of this input
  *g_facts = InputFacts{};
  pipeline::Burst burst;
  unsigned direction = 0;
  std::vector<uint8_t> frame;

  auto run = [&] {
    if (burst.count == 0) return;
    pipelines[direction]->run(burst);
    if (burst.count != 0) fail("packets left in the burst");  // each is sent, punted, held or discarded
    burst.free_discards();
    drain();
    check_flows();
  };

  size_t at = 1;
  fuzz::Record rec;
  while (fuzz::next_record(data, size, at, kMaxFrame, rec)) {
    const unsigned dir = rec.direction;
    const bool nic_checked = rec.nic_flag;
    const uint32_t step = rec.step;
    if (step || dir != direction || burst.count == pipeline::kMaxBurst) {
      run();
      direction = dir;
    }
    if (step) {
      g->now_ms += step * kStepMs;
      flows.set_now(g->now_ms);
      flows.service();
      nat.service(rte_rdtsc() + rte_get_tsc_hz() / 1000 * step * kStepMs);
      check_flows();
    }
    if (rec.length == 0) continue;
    frame.assign(rec.frame, rec.frame + rec.length);
    if (rec.length >= 6 && !(frame[0] & 1)) std::memcpy(frame.data(), g->macs[dir].addr_bytes, 6);
    const IpView v = view_of(frame.data(), static_cast<uint32_t>(frame.size()));
    g_facts->add(v);
    rte_mbuf* m = frame_mbuf(g->pool, frame.data(), frame.size(), rec.two_segments, segments);
    if (nic_checked && v.ipv4)
      m->ol_flags |= v.header_ok ? RTE_MBUF_F_RX_IP_CKSUM_GOOD : RTE_MBUF_F_RX_IP_CKSUM_BAD;
    if (nic_checked && (v.proto == 6 || v.proto == 17) && (v.l4 == L4Sum::Valid || v.l4 == L4Sum::Invalid))
      m->ol_flags |= v.l4 == L4Sum::Valid ? RTE_MBUF_F_RX_L4_CKSUM_GOOD : RTE_MBUF_F_RX_L4_CKSUM_BAD;
    burst.pkts[burst.count++] = m;
  }
  run();
  check_flows();

  // The next input starts from an empty table and reassembler (the clock only moves on).
  flows.sweep();
  nat.reassembler().flush();
  check_flows();
  if (nat.eim_active() != 0 || nat.reassembler().in_progress() != 0) fail("state left after the sweep");
  if (rte_mempool_avail_count(g->pool) != kPoolSize) fail("an mbuf was lost");
  if (g_verbose) report(data[0] % kPolicies);
  return 0;
}
