// The section readers parse_config_text calls, in its order, and the writers to_json
// calls; one file a section (eal.cpp, ports.cpp, workers.cpp, l3.cpp, conntrack.cpp,
// firewall.cpp, nat.cpp, services.cpp). Private to lib/config.
//
// read_*: read a section as written, given the top-level object; a section that is
// absent keeps its defaults. resolve_*: cross-section checks, run once every section has
// been read without error. *_json: the section as to_json prints it.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"
#include "config/reader.h"

namespace sluice::config::detail {

constexpr unsigned kMaxLcore = 1023;  // RTE_MAX_LCORE in Debian's build is 128; EAL re-checks.

// How Steering is written, in the enum's order (ports read it, conntrack checks it).
extern const std::vector<std::string> kSteeringNames;

// eal.cpp: eal, mempool, control, logging.
void read_eal(const ObjectReader& top, EalConfig& out);
void read_mempool(const ObjectReader& top, MempoolConfig& out);
void read_control(const ObjectReader& top, ControlConfig& out);
void read_logging(const ObjectReader& top, LoggingConfig& out);
json eal_json(const EalConfig& eal);
json mempool_json(const MempoolConfig& mempool);
json control_json(const ControlConfig& control);
json logging_json(const LoggingConfig& logging);

// ports.cpp: ports with their pipelines and addresses.
void read_ports(const ObjectReader& top, std::vector<PortConfig>& out, std::vector<std::string>& errors);
// Unique names and devices, xconnect peers, MTU against mempool.data_room.
void resolve_ports(const Config& config, std::vector<std::string>& errors);
json ports_json(const std::vector<PortConfig>& ports);

// workers.cpp: "auto" or explicit workers.
void read_workers(const ObjectReader& top, Config& config, std::vector<std::string>& errors);
// Lcores and queue ownership; "auto" spread over the worker lcores; each port's TX queues.
void resolve_workers(Config& config, std::vector<std::string>& errors);
json workers_json(const std::vector<WorkerConfig>& workers);
// "polling": how workers wait when idle.
void read_polling(const ObjectReader& top, PollingConfig& out);
json polling_json(const PollingConfig& polling);

// l3.cpp: routes, neighbours, icmp, neighbour.
void read_routes(const ObjectReader& top, std::vector<RouteConfig>& out, std::vector<std::string>& errors);
void read_neighbours(const ObjectReader& top, std::vector<NeighbourConfig>& out, std::vector<std::string>& errors);
// {"rate_per_second": N, "burst": N} under `key`: "icmp", and firewall.reject_limit.
void read_rate_limit(const ObjectReader& parent, const std::string& key, IcmpConfig& out);
void read_neighbour_settings(const ObjectReader& top, NeighbourSettings& out);
// Addresses against pipelines, overlapping subnets, and every route's and static
// neighbour's port, found from the connected subnets when not written.
void resolve_l3(Config& config, std::vector<std::string>& errors);
json routes_json(const std::vector<RouteConfig>& routes);
json neighbours_json(const std::vector<NeighbourConfig>& neighbours);
json rate_limit_json(const IcmpConfig& limit);
json neighbour_settings_json(const NeighbourSettings& neighbour);

// conntrack.cpp: "conntrack".
void read_conntrack(const ObjectReader& top, ConntrackConfig& out);
// Some port tracks when "conntrack" is written; every tracked port steers the same way.
void resolve_conntrack(const ObjectReader& top, const Config& config, std::vector<std::string>& errors);
json conntrack_json(const ConntrackConfig& conntrack);

// firewall.cpp: "firewall".
void read_firewall(const ObjectReader& top, FirewallConfig& out, std::vector<std::string>& errors);
// Some port tracks, and every zone and port a rule or policy names exists (an ingress
// one with the conntrack stage).
void resolve_firewall(const ObjectReader& top, const Config& config, std::vector<std::string>& errors);
json firewall_json(const FirewallConfig& firewall);

// nat.cpp: "nat".
void read_nat(const ObjectReader& top, NatConfig& out, std::vector<std::string>& errors);
// The nat stage and the section go together; every tracked port translates, in one
// conntrack zone; zones, ports, pools (no overlap, one mapping behaviour an address),
// port forwards (no overlap) and NPTv6 ports; fills nat.proxy.
void resolve_nat(const ObjectReader& top, Config& config, std::vector<std::string>& errors);
json nat_json(const NatConfig& nat);

// services.cpp: "services".
void read_services(const ObjectReader& top, std::vector<LbService>& out, std::vector<std::string>& errors);
// One service a VIP, protocol and port; no VIP on a port's own address.
void resolve_services(Config& config, std::vector<std::string>& errors);
json services_json(const std::vector<LbService>& services);

}  // namespace sluice::config::detail
