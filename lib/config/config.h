// The typed configuration. Built and validated on the control thread only; workers
// see the pieces they need, copied into their own structures at start.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/nat_config.h"
#include "config/services_config.h"
#include "net/ip_addr.h"

namespace sluice::config {

struct EalConfig {
  std::vector<unsigned> lcores;  // sorted, unique
  std::string lcores_spec;       // as written, for EAL's -l
  unsigned main_lcore = 0;
  bool hugepages = true;
  unsigned memory_mb = 512;
  std::string file_prefix = "sluice";
  std::vector<std::string> extra_args;
};

struct StageConfig {
  std::string stage;  // "parse", "xconnect", "route"
  std::string peer;   // xconnect: the output port's name
};

enum class RssMode { Symmetric, Off };

// How both directions of a connection reach the one worker whose flow table holds it:
// `hardware`, symmetric RSS on the NIC; `software`, the receiving worker hashes and
// hands the packet to the owner over a ring (the kernel's RPS idea); `auto` picks.
enum class Steering { Auto, Hardware, Software };

struct PortConfig {
  std::string name;
  std::string device;   // vdev name (net_...) or PCI address
  std::string devargs;
  bool is_pci = false;
  unsigned rx_queues = 1;
  unsigned tx_queues = 0;  // 0 until resolved: one per worker
  unsigned rx_descriptors = 1024;
  unsigned tx_descriptors = 1024;
  unsigned mtu = 1500;
  std::optional<std::array<uint8_t, 6>> mac;
  bool promiscuous = true;
  RssMode rss = RssMode::Symmetric;
  std::vector<net::IpPrefix> ipv4;  // interface addresses with their subnet length
  std::vector<net::IpPrefix> ipv6;
  std::vector<StageConfig> pipeline;
  std::string zone;             // firewall zone; defaults to the port's name
  unsigned conntrack_zone = 0;  // flow-key zone id (0..65535): separates overlapping address spaces
  Steering steering = Steering::Auto;

  // The kernel interface the port runs on (devargs iface= of net_af_packet, net_af_xdp,
  // net_tap), whose link the control thread reads; empty for other devices.
  std::string kernel_iface() const;

  bool routed() const { return has_stage("route"); }
  bool tracked() const { return has_stage("conntrack"); }
  bool translated() const { return has_stage("nat"); }
  bool balanced() const { return has_stage("lb"); }
  bool has_stage(const char* stage_name) const {
    for (const auto& s : pipeline)
      if (s.stage == stage_name) return true;
    return false;
  }
};

// One way out for a route: a gateway on a port, or (no gateway) the port itself, the
// destination then being resolved as a neighbour like a connected subnet.
struct NextHopConfig {
  net::IpAddr via;
  std::string port;  // resolved from the connected subnets when not written
};

struct RouteConfig {
  net::IpPrefix prefix;                // host bits cleared
  std::vector<NextHopConfig> nexthops;  // more than one: ECMP
};

struct NeighbourConfig {
  net::IpAddr address;
  std::array<uint8_t, 6> mac{};
  std::string port;
};

// The kernel's icmp_msgs_per_sec / icmp_msgs_burst, per worker lcore.
struct IcmpConfig {
  unsigned rate_per_second = 1000;
  unsigned burst = 50;
};

// ARP/ND cache timers, after Linux's neigh defaults (base_reachable_time 30 s,
// gc_stale_time 60 s, retrans_time 1 s, mcast_solicit 3).
struct NeighbourSettings {
  unsigned reachable_ms = 30000;
  unsigned stale_ms = 60000;
  unsigned retransmit_ms = 1000;
  unsigned probes = 3;
  unsigned queue_packets = 16;  // packets held per unresolved neighbour
  unsigned capacity = 16384;
};

// Per-state flow timeouts in seconds; defaults are Linux nf_conntrack's (6.x).
struct ConntrackTimeouts {
  unsigned tcp_syn_sent = 120;
  unsigned tcp_syn_recv = 60;
  unsigned tcp_established = 432000;  // 5 days
  unsigned tcp_fin_wait = 120;
  unsigned tcp_close_wait = 60;
  unsigned tcp_last_ack = 30;
  unsigned tcp_time_wait = 120;
  unsigned tcp_close = 10;
  unsigned tcp_unacknowledged = 300;  // data in flight not acknowledged (nf_conntrack_tcp_timeout_unacknowledged)
  unsigned udp = 30;                  // until a reply is seen
  unsigned udp_stream = 120;          // replied (assured)
  unsigned icmp = 30;
  unsigned generic = 600;             // other protocols
};

enum class FragmentPolicy { Accept, Drop };

struct ConntrackConfig {
  unsigned capacity = 262144;      // IPv4 flows per worker lcore, memory reserved at start
  unsigned capacity_ipv6 = 65536;  // IPv6 flows per worker lcore
  bool tcp_liberal = false;        // nf_conntrack_tcp_be_liberal: no window checks, only state
  bool tcp_loose = true;           // nf_conntrack_tcp_loose: pick up flows seen mid-stream
  FragmentPolicy later_fragments = FragmentPolicy::Accept;  // non-first fragments carry no ports
  ConntrackTimeouts timeouts;
};

// Connection states a firewall rule can match (bit values).
enum CtStateBits : uint8_t { kCtNew = 1, kCtEstablished = 2, kCtRelated = 4, kCtInvalid = 8 };

enum class FirewallAction { Accept, Drop, Reject };

struct PortRange {
  uint16_t first = 0;
  uint16_t last = 65535;
  friend bool operator==(const PortRange&, const PortRange&) = default;
};

// One firewall rule; an empty list matches anything.
struct FirewallRule {
  std::string name;                          // for counters and logs; "rule<N>" when not written
  std::vector<std::string> from_zones;       // ingress zone
  std::vector<std::string> to_zones;         // egress zone
  std::vector<std::string> in_ports;         // ingress port names
  std::vector<std::string> out_ports;        // egress port names
  std::vector<net::IpPrefix> src, dst;       // host bits cleared; mixed families allowed
  int protocol = -1;                         // IP protocol number, -1: any
  std::vector<PortRange> src_ports, dst_ports;  // TCP/UDP only
  uint8_t tcp_flags_mask = 0;                // match (flags & mask) == set
  uint8_t tcp_flags_set = 0;
  uint8_t states = kCtNew;                   // CtStateBits; default: new connections only
  FirewallAction action = FirewallAction::Accept;
};

// What happens to a new connection from zone `from` to zone `to` that no rule decided.
struct ZonePolicy {
  std::string from;
  std::string to;
  FirewallAction action = FirewallAction::Drop;
};

struct FirewallConfig {
  bool enabled = false;  // the "firewall" section is present
  FirewallAction default_policy = FirewallAction::Drop;  // no rule and no zone policy
  std::vector<ZonePolicy> policies;
  std::vector<FirewallRule> rules;
  IcmpConfig reject_limit;  // TCP RSTs and ICMP unreachables sent by reject, per worker lcore
};

struct RxBinding {
  std::string port;
  unsigned queue = 0;
};

struct WorkerConfig {
  unsigned lcore = 0;
  std::vector<RxBinding> rx;
};

// How a worker waits when its queues are empty: poll on (the default, lowest latency),
// or back off to short sleeps so that other processes (another Sluice, a test) get the
// core. A sleep never exceeds max_sleep_us: the longest a packet waits for a sleeping
// worker, besides what its RX ring holds.
struct PollingConfig {
  bool sleep_when_idle = false;       // "idle": "sleep" (else "busy")
  unsigned sleep_after_polls = 1000;  // consecutive empty rounds before the first sleep
  unsigned max_sleep_us = 100;        // sleeps double from 1 us up to this
};

struct MempoolConfig {
  unsigned mbufs = 0;  // 0: sized from ports and workers
  unsigned cache_size = 256;
  unsigned data_room = 2176;  // RTE_MBUF_DEFAULT_BUF_SIZE
};

struct HttpConfig {
  bool enabled = true;
  std::string address = "127.0.0.1";
  unsigned port = 9180;
};

struct ControlConfig {
  HttpConfig http;
  bool telemetry = true;
};

struct LoggingConfig {
  std::string level = "info";
};

struct Config {
  EalConfig eal;
  std::vector<PortConfig> ports;
  bool workers_auto = true;
  std::vector<WorkerConfig> workers;  // resolved, also when "auto"
  unsigned burst_size = 32;
  PollingConfig polling;
  MempoolConfig mempool;
  ControlConfig control;
  LoggingConfig logging;
  std::vector<RouteConfig> routes;
  std::vector<NeighbourConfig> neighbours;
  IcmpConfig icmp;
  NeighbourSettings neighbour;
  ConntrackConfig conntrack;
  FirewallConfig firewall;
  NatConfig nat;
  std::vector<LbService> services;  // the load balancer's (ports with the lb stage run them)
  std::string source_path;  // the file it was read from (reload reads it again)

  bool routed() const {
    for (const auto& p : ports)
      if (p.routed()) return true;
    return false;
  }
  bool tracked() const {
    for (const auto& p : ports)
      if (p.tracked()) return true;
    return false;
  }
  bool translated() const {
    for (const auto& p : ports)
      if (p.translated()) return true;
    return false;
  }

  const PortConfig* find_port(const std::string& name) const;
  int port_index(const std::string& name) const;
};

inline constexpr unsigned kMaxBurst = 64;
inline constexpr unsigned kMaxQueues = 64;
inline constexpr unsigned kMaxEcmp = 16;
inline constexpr unsigned kMaxFirewallRules = 4096;  // firewall.rules entries (before list expansion)

// Either a Config, or every problem found, one line each ("ports[1].rx_queues: ...").
struct ParseResult {
  std::optional<Config> config;
  std::vector<std::string> errors;
  bool ok() const { return config.has_value(); }
};

ParseResult parse_config_text(const std::string& text, const std::string& source_name);
ParseResult load_config_file(const std::string& path);

// The effective configuration, defaults filled and auto workers resolved.
nlohmann::json to_json(const Config& config);

// devargs' first `key=VALUE` ("iface=veth0,qpairs=2", "iface" -> "veth0"), or empty.
std::string devarg_value(std::string_view devargs, std::string_view key);

const std::vector<std::string>& log_level_names();
std::string format_mac(const std::array<uint8_t, 6>& mac);

}  // namespace sluice::config
