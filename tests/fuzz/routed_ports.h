// What the routed fuzz targets (fuzz_route, fuzz_neighbour, fuzz_pipeline) share: the EAL
// start, two routed ring-backed ports west and east with their TX queues, and the checks
// on every frame Sluice sends: a sane mbuf, IPv4 headers that verify, and every ICMP or
// ICMPv6 error it makes about an input verified from the bytes (checksums, lengths, the
// quote a prefix of that input as it arrived, addressed back to its sender, never about
// an ICMP error, a later fragment or a non-unicast source).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "config/config.h"
#include "l3/route_table.h"
#include "pipeline/output.h"
#include "pipeline/packet_meta.h"
#include "ring_frames.h"

namespace sluice::fuzz {

[[noreturn]] inline void fail(const char* target, const char* what) {
  fprintf(stderr, "%s: invariant broken: %s\n", target, what);
  __builtin_trap();
}

inline void start_eal(const char* name) {
  const char* args[] = {name, "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry", "-m", "256",
                        "-l", "0", "--log-level=error", nullptr};
  if (rte_eal_init(static_cast<int>(std::size(args) - 1), const_cast<char**>(args)) < 0) __builtin_trap();
  if (!pipeline::register_packet_meta()) __builtin_trap();
}

inline config::Config parse_or_die(const std::string& text, const char* target) {
  config::ParseResult parsed = config::parse_config_text(text, target);
  if (!parsed.ok()) {
    for (const auto& e : parsed.errors) fprintf(stderr, "%s: %s\n", target, e.c_str());
    __builtin_trap();
  }
  return *parsed.config;
}

// West (index 0) and east (1): ring ports over one pool, their MACs and TX queues.
struct TwoPorts {
  rte_mempool* pool = nullptr;
  unsigned pool_size = 0;
  std::array<uint16_t, 2> ids{};
  std::array<rte_ether_addr, 2> macs{};
  std::array<rte_ring*, 2> tx_rings{};
  std::array<std::unique_ptr<pipeline::TxQueue>, 2> tx;
  pipeline::TxQueues queues{};
  std::map<std::string, uint16_t> names;
  l3::RouteTable::PortMacs port_macs{};

  void open(const char* pool_name, unsigned size) {
    pool_size = size;
    pool = rte_pktmbuf_pool_create(pool_name, size, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    if (!pool) __builtin_trap();
    ids[0] = ring_port("fz_west", pool, tx_rings[0]);
    ids[1] = ring_port("fz_east", pool, tx_rings[1]);
    names = {{"west", ids[0]}, {"east", ids[1]}};
    for (unsigned i = 0; i < 2; ++i) {
      rte_eth_macaddr_get(ids[i], &macs[i]);
      port_macs[ids[i]] = macs[i];
      tx[i] = std::make_unique<pipeline::TxQueue>(ids[i], 0);
      queues[ids[i]] = tx[i].get();
    }
  }
  // 0 for west, 1 for east.
  unsigned index_of(uint16_t port) const { return port == ids[1] ? 1 : 0; }
};

inline uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
  if (n & 1) sum += uint32_t(p[n - 1]) << 8;
  return sum;
}
inline uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}
inline uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t be32(const uint8_t* p) { return uint32_t(be16(p)) << 16 | be16(p + 2); }
inline bool ipv4_header_ok(const uint8_t* ip) { return fold(sum16(ip, (ip[0] & 0x0f) * 4u)) == 0xffff; }

// One port's addresses as the config gives them (network order bytes).
struct PortAddresses {
  std::vector<std::array<uint8_t, 4>> v4;
  std::vector<std::array<uint8_t, 16>> v6;
  uint16_t mtu = 1500;
};

// The input frames of one fuzz input (their IP packets, after an untagged Ethernet
// header) and the ports' addresses: what an ICMP error Sluice makes may quote and say.
class SentChecker {
 public:
  SentChecker(const char* target, const config::Config& cfg, const TwoPorts& ports) : target_(target) {
    for (unsigned i = 0; i < 2; ++i) {
      const config::PortConfig* port = cfg.find_port(i == 0 ? "west" : "east");
      if (!port) __builtin_trap();
      for (const auto& p : port->ipv4) {
        std::array<uint8_t, 4> a;
        std::memcpy(a.data(), p.addr.bytes.data(), 4);
        ports_[i].v4.push_back(a);
      }
      for (const auto& p : port->ipv6) {
        std::array<uint8_t, 16> a;
        std::memcpy(a.data(), p.addr.bytes.data(), 16);
        ports_[i].v6.push_back(a);
      }
      ports_[i].mtu = static_cast<uint16_t>(port->mtu);
    }
    ports_ids_ = ports.ids;
  }

  void clear() { inputs_.clear(); }
  // An input frame, as it went in.
  void add_input(const uint8_t* frame, size_t length) {
    if (length < 14) return;
    const uint16_t type = be16(frame + 12);
    if (type != 0x0800 && type != 0x86dd) return;
    inputs_.emplace_back(frame + 14, frame + length);
  }

  // One frame sent out of `port` (or parked for its neighbour when `port` is unknown).
  void check(const rte_mbuf* m, uint16_t port) {
    const char* why = nullptr;
    if (rte_mbuf_check(m, 1, &why) != 0) fail(target_, why);
    const uint32_t length = rte_pktmbuf_pkt_len(m);
    if (length > sizeof(frame_)) fail(target_, "frame longer than any datagram");
    const auto* frame = static_cast<const uint8_t*>(rte_pktmbuf_read(m, 0, length, frame_));
    if (!frame) fail(target_, "frame shorter than its pkt_len");
    if (length < 14) return;
    const uint16_t type = be16(frame + 12);
    const uint8_t* ip = frame + 14;
    const uint32_t room = length - 14;
    // What Sluice made itself is a fresh mbuf; a forwarded frame is an input's (an
    // external buffer here) or a fragment of one (offset or MF set).
    const bool own = !(m->ol_flags & RTE_MBUF_F_EXTERNAL) && !RTE_MBUF_CLONED(m) && m->nb_segs == 1;
    if (type == 0x0800) {
      if (room < 20 || (ip[0] >> 4) != 4 || (ip[0] & 0x0f) < 5 || (ip[0] & 0x0f) * 4u > room)
        fail_frame("IPv4 frame sent without a whole header", frame, length);
      if (!ipv4_header_ok(ip)) fail_frame("IPv4 header checksum", frame, length);
      if (be16(ip + 2) > room) fail_frame("IPv4 frame shorter than its total length", frame, length);
      if (own && ip[9] == 1 && (be16(ip + 6) & 0x3fff) == 0 && room >= 28 && (ip[20] == 3 || ip[20] == 11))
        check_icmp4_error(frame, length, port);
    } else if (type == 0x86dd) {
      if (room < 40 || (ip[0] >> 4) != 6) fail_frame("IPv6 frame sent without a whole header", frame, length);
      if (40u + be16(ip + 4) > room) fail_frame("IPv6 frame shorter than its payload length", frame, length);
      if (own && ip[6] == 58 && room >= 48 && ip[40] >= 1 && ip[40] <= 3) check_icmp6_error(frame, length, port);
    }
  }

  unsigned errors_checked() const { return errors_checked_; }

 private:
  [[noreturn]] void fail_frame(const char* what, const uint8_t* frame, uint32_t length) {
    fprintf(stderr, "%s: the frame (%u bytes):", target_, length);
    for (uint32_t i = 0; i < length && i < 256; ++i) fprintf(stderr, "%s%02x", i % 32 ? " " : "\n  ", frame[i]);
    fprintf(stderr, "\n");
    fail(target_, what);
  }

  const PortAddresses* addresses_of(uint16_t port) const {
    for (unsigned i = 0; i < 2; ++i)
      if (ports_ids_[i] == port) return &ports_[i];
    return nullptr;
  }

  // The input the quote is a prefix of, as long as the error may quote of it: null if none.
  const std::vector<uint8_t>* quoted_input(const uint8_t* quote, uint32_t quoted, uint32_t max, bool v6) const {
    for (const auto& in : inputs_) {
      if (in.size() < (v6 ? 40u : 20u)) continue;
      const uint32_t ip_length = v6 ? 40u + be16(in.data() + 4) : be16(in.data() + 2);
      const uint32_t want = std::min<uint32_t>({max, ip_length, static_cast<uint32_t>(in.size())});
      if (want == quoted && std::memcmp(in.data(), quote, quoted) == 0) return &in;
    }
    return nullptr;
  }

  void check_icmp4_error(const uint8_t* frame, uint32_t length, uint16_t port) {
    const uint8_t* ip = frame + 14;
    const uint32_t total = be16(ip + 2);
    if ((ip[0] & 0x0f) != 5 || total != length - 14) fail_frame("ICMP error's IPv4 length", frame, length);
    const uint8_t* icmp = ip + 20;
    if (fold(sum16(icmp, total - 20)) != 0xffff) fail_frame("ICMP error's checksum", frame, length);
    const uint8_t* quote = icmp + 8;
    const uint32_t quoted = total - 28;
    if (quoted < 20 || quoted > 576 - 28) fail_frame("ICMP error quotes too little or too much", frame, length);
    const std::vector<uint8_t>* in = quoted_input(quote, quoted, 576 - 28, false);
    if (!in) fail_frame("ICMP error quotes what no input held (or less of it than it may)", frame, length);
    const uint8_t* orig = in->data();
    if (std::memcmp(ip + 16, orig + 12, 4) != 0) fail_frame("ICMP error not sent to the quoted packet's source", frame, length);
    const PortAddresses* ours = addresses_of(port);
    bool from_ours = std::memcmp(ip + 12, orig + 16, 4) == 0;  // a wire answers as the host it protects
    if (ours)
      for (const auto& a : ours->v4) from_ours |= std::memcmp(ip + 12, a.data(), 4) == 0;
    if (!from_ours) fail_frame("ICMP error from an address not the port's", frame, length);
    const uint32_t src = be32(orig + 12);
    if (src == 0 || (src >> 24) == 127 || (src >> 28) >= 0xe)  // RFC 1812 4.3.2.7, class E included
      fail_frame("ICMP error about a packet from a non-unicast source", frame, length);
    if (be16(orig + 6) & 0x1fff) fail_frame("ICMP error about a later fragment", frame, length);
    const uint32_t header = (orig[0] & 0x0f) * 4u;
    if (orig[9] == 1 && quoted > header) {
      const uint8_t t = orig[header];
      if (t == 3 || t == 4 || t == 5 || t == 11 || t == 12) fail_frame("ICMP error about an ICMP error", frame, length);
    }
    if (icmp[0] == 11 && orig[8] > 1) fail_frame("time exceeded for a packet with TTL to spare", frame, length);
    if (icmp[0] == 3 && icmp[1] == 4) {
      const uint16_t mtu = be16(icmp + 6);
      if (mtu >= be16(orig + 2) || !(be16(orig + 6) & 0x4000))
        fail_frame("fragmentation needed for a packet that fits or may be fragmented", frame, length);
    }
    ++errors_checked_;
  }

  void check_icmp6_error(const uint8_t* frame, uint32_t length, uint16_t port) {
    const uint8_t* ip = frame + 14;
    const uint32_t payload = be16(ip + 4);
    if (40 + payload != length - 14) fail_frame("ICMPv6 error's payload length", frame, length);
    const uint8_t* icmp = ip + 40;
    const uint32_t pseudo = sum16(ip + 8, 32) + (payload >> 16) + (payload & 0xffff) + 58;
    if (fold(sum16(icmp, payload, pseudo)) != 0xffff) fail_frame("ICMPv6 error's checksum", frame, length);
    const uint8_t* quote = icmp + 8;
    const uint32_t quoted = payload - 8;
    if (quoted < 40 || quoted > 1280 - 48) fail_frame("ICMPv6 error quotes too little or too much", frame, length);
    const std::vector<uint8_t>* in = quoted_input(quote, quoted, 1280 - 48, true);
    if (!in) fail_frame("ICMPv6 error quotes what no input held (or less of it than it may)", frame, length);
    const uint8_t* orig = in->data();
    if (std::memcmp(ip + 24, orig + 8, 16) != 0) fail_frame("ICMPv6 error not sent to the quoted packet's source", frame, length);
    const PortAddresses* ours = addresses_of(port);
    bool from_ours = std::memcmp(ip + 8, orig + 24, 16) == 0;
    if (ours)
      for (const auto& a : ours->v6) from_ours |= std::memcmp(ip + 8, a.data(), 16) == 0;
    if (!from_ours) fail_frame("ICMPv6 error from an address not the port's", frame, length);
    static const uint8_t zero[16] = {}, loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (orig[8] == 0xff || std::memcmp(orig + 8, zero, 16) == 0 || std::memcmp(orig + 8, loopback, 16) == 0)
      fail_frame("ICMPv6 error about a packet from a non-unicast source", frame, length);
    if (orig[6] == 58 && quoted > 40 && orig[40] < 128) fail_frame("ICMPv6 error about an ICMPv6 error", frame, length);
    if (icmp[0] == 3 && orig[7] > 1) fail_frame("time exceeded for a packet with hops to spare", frame, length);
    if (icmp[0] == 2 && be32(icmp + 4) >= 40u + be16(orig + 4))
      fail_frame("packet too big for a packet that fits", frame, length);
    ++errors_checked_;
  }

  const char* target_;
  std::array<PortAddresses, 2> ports_;
  std::array<uint16_t, 2> ports_ids_{};
  std::vector<std::vector<uint8_t>> inputs_;
  unsigned errors_checked_ = 0;
  uint8_t frame_[65536 + 64];
};

// Everything the ports sent, checked and freed.
inline unsigned drain_ports(TwoPorts& ports, SentChecker& checker) {
  unsigned sent = 0;
  for (auto& q : ports.tx) q->flush();
  for (unsigned i = 0; i < 2; ++i) {
    void* m;
    while (rte_ring_dequeue(ports.tx_rings[i], &m) == 0) {
      checker.check(static_cast<rte_mbuf*>(m), ports.ids[i]);
      rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
      ++sent;
    }
  }
  return sent;
}

// drain_ports, then the punt ring: a frame queued for its neighbour's resolution is
// checked as sent on the port the route chose; every punted mbuf is freed.
inline void drain_ports_and_punts(TwoPorts& ports, rte_ring* punt_ring, SentChecker& checker) {
  drain_ports(ports, checker);
  void* m;
  while (rte_ring_dequeue(punt_ring, &m) == 0) {
    auto* mbuf = static_cast<rte_mbuf*>(m);
    if (pipeline::meta(mbuf).aux == pipeline::kPuntResolve) checker.check(mbuf, pipeline::meta(mbuf).out_port);
    rte_pktmbuf_free(mbuf);
  }
}

}  // namespace sluice::fuzz
