// The typed configuration. Built and validated on the control thread only; workers
// see the pieces they need, copied into their own structures at start.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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

  bool routed() const {
    for (const auto& s : pipeline)
      if (s.stage == "route") return true;
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

struct RxBinding {
  std::string port;
  unsigned queue = 0;
};

struct WorkerConfig {
  unsigned lcore = 0;
  std::vector<RxBinding> rx;
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
  MempoolConfig mempool;
  ControlConfig control;
  LoggingConfig logging;
  std::vector<RouteConfig> routes;
  std::vector<NeighbourConfig> neighbours;
  IcmpConfig icmp;
  NeighbourSettings neighbour;

  bool routed() const {
    for (const auto& p : ports)
      if (p.routed()) return true;
    return false;
  }

  const PortConfig* find_port(const std::string& name) const;
  int port_index(const std::string& name) const;
};

inline constexpr unsigned kMaxBurst = 64;
inline constexpr unsigned kMaxQueues = 64;
inline constexpr unsigned kMaxEcmp = 16;

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

const std::vector<std::string>& log_level_names();
std::string format_mac(const std::array<uint8_t, 6>& mac);

}  // namespace sluice::config
