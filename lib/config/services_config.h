// The `services` section: L4 load-balanced virtual services (a VIP, a protocol and a
// port, spread over backends by Maglev hashing or a small-pool scheduler, in full-NAT,
// DNAT or IP-in-IP mode) and their health checks. Read and validated by services.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "net/ip_addr.h"

namespace sluice::config {

// How a connection reaches its backend.
enum class LbMode {
  FullNat,  // destination to the backend, source to a local address of Sluice (DPVS FNAT)
  Dnat,     // destination only: the backend routes its replies back through Sluice
  Ipip,     // encapsulated to the backend, which holds the VIP and answers directly (DSR)
};

// How a new connection picks its backend.
enum class LbScheduler { Maglev, RoundRobin, LeastConnections };

enum class LbProbe { None, Tcp, Icmp };

// A backend a reload takes out of its service: its connections end now or live out their
// time. (A backend the health checks take down keeps its connections either way.)
enum class LbRemoval { Drain, Drop };

struct LbBackend {
  std::string name;    // optional: the Maglev identity when written, else "address:port"
  net::IpAddr address;
  uint16_t port = 0;   // 0: the port the client asked for (the service's, or any with "all")
  unsigned weight = 1;  // 0: in the service, no new connections
};

struct LbHealth {
  LbProbe type = LbProbe::None;
  uint16_t port = 0;  // TCP probes: 0 means the backend's port
  unsigned interval_ms = 2000;
  unsigned timeout_ms = 1000;
  unsigned rise = 2;  // consecutive good probes that bring a down backend up
  unsigned fall = 3;  // consecutive failed probes that take an up backend down
};

struct LbService {
  std::string name;
  net::IpAddr vip;
  int protocol = 6;    // 6 (tcp) or 17 (udp)
  uint16_t port = 0;   // 0: every port ("all")
  LbMode mode = LbMode::FullNat;
  LbScheduler scheduler = LbScheduler::Maglev;
  unsigned table_size = 65537;  // Maglev lookup table entries: a prime
  std::vector<net::IpPrefix> local_addresses;  // full-NAT sources (a prefix is all its addresses)
  uint16_t port_first = 1024, port_last = 65535;  // full-NAT source ports
  LbRemoval on_backend_removed = LbRemoval::Drain;
  std::vector<LbBackend> backends;
  LbHealth health;
};

inline constexpr unsigned kMaxServices = 256;
inline constexpr unsigned kMaxBackends = 4096;       // per service
inline constexpr unsigned kMaxSmallPool = 64;         // backends for round-robin / least-connections
inline constexpr unsigned kMaxBackendWeight = 65535;

}  // namespace sluice::config
