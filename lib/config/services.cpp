// "services": L4 load-balanced virtual services and their backends and health checks;
// checked against each other and the ports once everything is read.
#include <algorithm>
#include <map>
#include <set>

#include "config/sections.h"

namespace sluice::config::detail {

namespace {

const std::vector<std::string> kModeNames = {"fullnat", "dnat", "ipip"};
const std::vector<std::string> kSchedulerNames = {"maglev", "round-robin", "least-connections"};
const std::vector<std::string> kProbeNames = {"none", "tcp", "icmp"};
const std::vector<std::string> kRemovalNames = {"drain", "drop"};

constexpr unsigned kMaglevMaxSize = 1000003;  // lib/lb/maglev.h's bound (config sits below lb)

bool is_prime(unsigned n) {
  if (n < 2) return false;
  for (unsigned d = 2; uint64_t(d) * d <= n; ++d)
    if (n % d == 0) return false;
  return true;
}

// A unicast IPv4 or IPv6 address under `key`.
std::optional<net::IpAddr> read_unicast(const ObjectReader& r, const std::string& key) {
  std::string text;
  if (!r.string(key, text)) return std::nullopt;
  auto addr = net::parse_ip(text);
  if (!addr) {
    r.error(key, "must be an IPv4 or IPv6 address, got '" + text + "'");
    return std::nullopt;
  }
  // Not unspecified, loopback, multicast (or IPv4 class E).
  const bool zero_head = std::all_of(addr->bytes.begin(), addr->bytes.end() - 1, [](uint8_t b) { return b == 0; });
  const bool bad = addr->family == 4
                       ? (addr->v4_host() == 0 || (addr->v4_host() >> 24) == 127 || (addr->v4_host() >> 28) >= 0xe)
                       : (addr->bytes[0] == 0xff || (zero_head && addr->bytes[15] <= 1));
  if (bad) {
    r.error(key, "must be a unicast address, got '" + text + "'");
    return std::nullopt;
  }
  return addr;
}

std::string family_name(uint8_t family) { return family == 4 ? "IPv4" : "IPv6"; }

void read_backend(const ObjectReader& r, const std::string& path, LbBackend& b, std::vector<std::string>& errors) {
  (void)path;
  (void)errors;
  r.allow_only({"name", "address", "port", "weight"});
  r.required("address");
  if (r.has("name")) read_rule_name(r, b.name);
  if (auto a = r.has("address") ? read_unicast(r, "address") : std::nullopt) b.address = *a;
  unsigned port = 0;
  r.uint("port", port, 1, 65535);
  b.port = static_cast<uint16_t>(port);
  r.uint("weight", b.weight, 0, kMaxBackendWeight);
}

// Backends have optional names: read_list's default naming is not theirs.
void read_backends(const ObjectReader& r, const std::string& path, LbService& s, std::vector<std::string>& errors) {
  if (!r.has("backends")) return;
  const json& list = r.raw("backends");
  if (!list.is_array() || list.empty()) {
    r.error("backends", "must be a non-empty array of backends, got " + show(list));
    return;
  }
  if (list.size() > kMaxBackends) {
    r.error("backends", "at most " + std::to_string(kMaxBackends) + " backends, got " + std::to_string(list.size()));
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = path + ".backends[" + std::to_string(i) + "]";
    LbBackend b;
    if (!list[i].is_object())
      errors.push_back(at + ": must be an object (a backend), got " + type_name(list[i]));
    else
      read_backend(ObjectReader(list[i], at, errors), at, b, errors);
    s.backends.push_back(b);
  }
}

void read_health(const ObjectReader& svc, LbService& s, std::vector<std::string>& errors) {
  std::optional<ObjectReader> storage;
  const ObjectReader* h = svc.object("health", storage);
  if (!h) return;
  h->allow_only({"type", "port", "interval_ms", "timeout_ms", "rise", "fall"});
  read_enum(*h, "type", s.health.type, kProbeNames);
  unsigned port = 0;
  h->uint("port", port, 1, 65535);
  s.health.port = static_cast<uint16_t>(port);
  h->uint("interval_ms", s.health.interval_ms, 100, 3600000);
  h->uint("timeout_ms", s.health.timeout_ms, 10, 3600000);
  h->uint("rise", s.health.rise, 1, 100);
  h->uint("fall", s.health.fall, 1, 100);
  if (s.health.timeout_ms > s.health.interval_ms)
    h->error("timeout_ms", "must not exceed interval_ms (" + std::to_string(s.health.interval_ms) +
                               "): one probe at a time per backend, got " + std::to_string(s.health.timeout_ms));
  if (port && s.health.type != LbProbe::Tcp) h->error("port", "only a tcp probe has a port");
  (void)errors;
}

void read_service(const ObjectReader& r, const std::string& path, LbService& s, std::vector<std::string>& errors) {
  r.allow_only({"name", "vip", "protocol", "port", "mode", "scheduler", "table_size", "local_addresses", "ports",
                "on_backend_removed", "backends", "health"});
  for (const char* key : {"name", "vip", "protocol", "port", "mode", "backends"}) r.required(key);
  read_rule_name(r, s.name);
  if (auto vip = r.has("vip") ? read_unicast(r, "vip") : std::nullopt) s.vip = *vip;
  if (r.has("protocol") && read_protocol(r, "protocol", s.protocol) && s.protocol != kTcp && s.protocol != kUdp)
    r.error("protocol", "a service is \"tcp\" or \"udp\", got " + show(r.raw("protocol")));
  if (r.has("port")) {
    const json& port = r.raw("port");
    if (port.is_string() && port.get<std::string>() == "all")
      s.port = 0;
    else if (port.is_number_unsigned() && port.get<uint64_t>() >= 1 && port.get<uint64_t>() <= 65535)
      s.port = static_cast<uint16_t>(port.get<uint64_t>());
    else
      r.error("port", "must be a port (1..65535) or \"all\", got " + show(port));
  }
  read_enum(r, "mode", s.mode, kModeNames);
  read_enum(r, "scheduler", s.scheduler, kSchedulerNames);
  if (r.has("table_size")) {
    if (s.scheduler != LbScheduler::Maglev)
      r.error("table_size",
              "is the Maglev table's: the service's scheduler is " + kSchedulerNames[static_cast<size_t>(s.scheduler)]);
    unsigned size = 0;
    r.uint("table_size", size, 3, kMaglevMaxSize);
    if (size && !is_prime(size))
      r.error("table_size", "must be a prime (65537, 131071, 262139, ...), got " + std::to_string(size));
    else if (size)
      s.table_size = size;
  }
  if (r.has("local_addresses")) {
    if (s.mode != LbMode::FullNat)
      r.error("local_addresses", "only fullnat translates the source");
    else if (read_prefix_list(r, "local_addresses", s.local_addresses, errors))
      for (const auto& p : s.local_addresses)
        if ((p.addr.family == 4 && p.len < 16) || (p.addr.family == 6 && p.len < 112))
          r.error("local_addresses", "at most 65536 addresses a prefix, got '" + p.str() + "'");
  } else if (r.has("mode") && r.raw("mode") == "fullnat") {
    r.error("local_addresses", "fullnat needs the addresses to translate sources to");
  }
  if (r.has("ports") && s.mode != LbMode::FullNat)
    r.error("ports", "only fullnat allocates source ports");
  else
    read_port_range(r, "ports", s.port_first, s.port_last);
  read_enum(r, "on_backend_removed", s.on_backend_removed, kRemovalNames);
  read_backends(r, path, s, errors);
  read_health(r, s, errors);
}

// The service's own consistency: families, ports, unique backends, pool sizes.
void check_service(const LbService& s, const std::string& path, std::vector<std::string>& errors) {
  const uint8_t family = s.vip.family;
  if (!family) return;  // the VIP was reported
  if (s.scheduler != LbScheduler::Maglev && s.backends.size() > kMaxSmallPool)
    errors.push_back(path + ".scheduler: " + kSchedulerNames[static_cast<size_t>(s.scheduler)] +
                     " is for pools of at most " + std::to_string(kMaxSmallPool) +
                     " backends (maglev spreads larger ones), got " + std::to_string(s.backends.size()));
  for (const auto& p : s.local_addresses)
    if (p.addr.family != family)
      errors.push_back(path + ".local_addresses: " + p.str() + " is " + family_name(p.addr.family) + " and the VIP " +
                       family_name(family) + ": translation between families is not supported");
  std::set<std::pair<std::string, uint16_t>> endpoints;
  std::map<std::string, size_t> names;
  bool any_weight = false;
  for (size_t i = 0; i < s.backends.size(); ++i) {
    const LbBackend& b = s.backends[i];
    const std::string at = path + ".backends[" + std::to_string(i) + "]";
    if (!b.address.is_set()) continue;
    any_weight = any_weight || b.weight > 0;
    if (b.address.family != family)
      errors.push_back(at + ".address: " + b.address.str() + " is " + family_name(b.address.family) + " and the VIP " +
                       family_name(family) + ": a backend has the VIP's family");
    if (s.port == 0 && b.port != 0)
      errors.push_back(at + ".port: the service takes every port (\"all\"): a backend keeps the client's port");
    if (s.mode == LbMode::Ipip && b.port != 0 && b.port != s.port)
      errors.push_back(at + ".port: ipip delivers the packet as sent: the backend answers on the VIP's port " +
                       std::to_string(s.port) + ", got " + std::to_string(b.port));
    const uint16_t port = b.port ? b.port : s.port;
    if (!endpoints.emplace(b.address.str(), port).second)
      errors.push_back(at + ": " + b.address.str() + " port " + std::to_string(port) + " is listed twice");
    if (!b.name.empty()) {
      auto [it, fresh] = names.emplace(b.name, i);
      if (!fresh)
        errors.push_back(at + ".name: duplicate name '" + b.name + "' (also backends[" + std::to_string(it->second) +
                         "])");
    }
  }
  if (!s.backends.empty() && !any_weight)
    errors.push_back(path + ".backends: every weight is 0: the service would take no connection");
  if (s.health.type == LbProbe::Tcp && s.protocol == kUdp)
    errors.push_back(path + ".health.type: a tcp probe checks a TCP service (use icmp or none for udp)");
  if (s.health.type == LbProbe::Tcp && s.port == 0 && s.health.port == 0)
    errors.push_back(path + ".health.port: the service takes every port: a tcp probe needs a port");
}

}  // namespace

void read_services(const ObjectReader& top, std::vector<LbService>& out, std::vector<std::string>& errors) {
  read_list(top, "services", "service", kMaxServices, out, errors, read_service);
  std::map<std::string, size_t> names;
  for (size_t i = 0; i < out.size(); ++i) {
    const std::string path = "services[" + std::to_string(i) + "]";
    check_service(out[i], path, errors);
    if (out[i].name.empty() || !top.raw("services")[i].contains("name")) continue;
    auto [it, fresh] = names.emplace(out[i].name, i);
    if (!fresh)
      errors.push_back(path + ".name: duplicate name '" + out[i].name + "' (also services[" +
                       std::to_string(it->second) + "])");
  }
}

void resolve_services(Config& config, std::vector<std::string>& errors) {
  bool any_lb_port = false;
  for (const auto& pc : config.ports) any_lb_port = any_lb_port || pc.balanced();
  if (config.services.empty()) {
    for (size_t i = 0; i < config.ports.size(); ++i)
      if (config.ports[i].balanced())
        errors.push_back("ports[" + std::to_string(i) + "].pipeline: the lb stage needs a \"services\" section");
    return;
  }
  if (!any_lb_port) errors.push_back("services: no port's pipeline has the lb stage (\"parse\", \"conntrack\", \"lb\", \"nat\", \"route\")");
  for (size_t i = 0; i < config.services.size(); ++i) {
    const LbService& s = config.services[i];
    const std::string path = "services[" + std::to_string(i) + "]";
    // What this build runs: NAT pairs (its translated flows) are IPv4; an IPv6 service
    // rewrites nothing (ipip: the packet goes to the backend as sent, in a tunnel).
    if (s.vip.family == 6 && s.mode != LbMode::Ipip)
      errors.push_back(path + ".mode: an IPv6 service (" + s.vip.str() + ") is ipip only: " +
                       kModeNames[static_cast<size_t>(s.mode)] +
                       " translates addresses, and NAT translates IPv4 (use mode ipip, or an IPv4 VIP)");
    // Sluice answers ARP for IPv4 VIPs in a port's subnet, not neighbour solicitations:
    // an IPv6 VIP is routed to Sluice (a route on the clients' router).
    if (s.vip.family == 6)
      for (const auto& pc : config.ports)
        for (const auto& p : pc.ipv6)
          if (p.contains(s.vip))
            errors.push_back(path + ".vip: " + s.vip.str() + " is in port " + pc.name + "'s subnet " + p.str() +
                             ": Sluice does not answer neighbour solicitations for an IPv6 VIP; use an address "
                             "outside the ports' subnets, routed to Sluice");
    // With several workers a DNAT reply (backend -> client) must find the worker that
    // holds its connection: software steering computes it from the Maglev table.
    if (s.mode == LbMode::Dnat && s.scheduler != LbScheduler::Maglev && config.workers.size() > 1)
      errors.push_back(path + ".scheduler: dnat with " + std::to_string(config.workers.size()) +
                       " workers needs maglev (steering finds a connection's worker from its backend, which "
                       "round-robin and least-connections do not tell): use maglev, fullnat, or one worker");
  }
  // Sluice answers ARP for each VIP (and full-NAT local address) on the ports whose
  // subnets hold it, as for NAT's outside addresses.
  auto proxy = [&](const net::IpAddr& addr) {
    for (const auto& pc : config.ports) {
      if (!pc.balanced() && !pc.translated()) continue;
      for (const auto& p : pc.ipv4)
        if (addr.family == 4 && p.contains(addr)) {
          NatProxyAddress a{pc.name, addr};
          if (std::find(config.nat.proxy.begin(), config.nat.proxy.end(), a) == config.nat.proxy.end())
            config.nat.proxy.push_back(a);
        }
    }
  };
  for (const auto& s : config.services) {
    proxy(s.vip);
    for (const auto& p : s.local_addresses)
      if (p.addr.family == 4 && p.len == 32) proxy(p.addr);
  }
  // One service a VIP, protocol and port; a service of every port owns its VIP and protocol.
  for (size_t i = 0; i < config.services.size(); ++i) {
    const LbService& a = config.services[i];
    if (!a.vip.is_set()) continue;
    const std::string path = "services[" + std::to_string(i) + "]";
    for (size_t j = 0; j < i; ++j) {
      const LbService& b = config.services[j];
      if (!(a.vip == b.vip) || a.protocol != b.protocol) continue;
      if (a.port == b.port || a.port == 0 || b.port == 0)
        errors.push_back(path + ": " + a.vip.str() + " " + (a.protocol == kTcp ? "tcp" : "udp") + " " +
                         (a.port ? "port " + std::to_string(a.port) : std::string("(every port)")) +
                         " is already services[" + std::to_string(j) + "] ('" + b.name + "')");
    }
    // Sluice's own addresses are its stack's: a VIP there would never reach the service.
    for (const auto& pc : config.ports)
      for (const auto& p : a.vip.family == 4 ? pc.ipv4 : pc.ipv6)
        if (p.addr == a.vip)
          errors.push_back(path + ".vip: " + a.vip.str() + " is port '" + pc.name +
                           "''s own address: a VIP is an address of its own");
  }
}

json services_json(const std::vector<LbService>& services) {
  json out = json::array();
  for (const auto& s : services) {
    json backends = json::array();
    for (const auto& b : s.backends) {
      json j = {{"address", b.address.str()}, {"weight", b.weight}};
      if (!b.name.empty()) j["name"] = b.name;
      if (b.port) j["port"] = b.port;
      backends.push_back(std::move(j));
    }
    json j = {{"name", s.name},
              {"vip", s.vip.str()},
              {"protocol", protocol_json(s.protocol)},
              {"port", s.port ? json(s.port) : json("all")},
              {"mode", kModeNames[static_cast<size_t>(s.mode)]},
              {"scheduler", kSchedulerNames[static_cast<size_t>(s.scheduler)]},
              {"on_backend_removed", kRemovalNames[static_cast<size_t>(s.on_backend_removed)]},
              {"backends", std::move(backends)},
              {"health",
               {{"type", kProbeNames[static_cast<size_t>(s.health.type)]},
                {"interval_ms", s.health.interval_ms},
                {"timeout_ms", s.health.timeout_ms},
                {"rise", s.health.rise},
                {"fall", s.health.fall}}}};
    if (s.scheduler == LbScheduler::Maglev) j["table_size"] = s.table_size;
    if (s.mode == LbMode::FullNat) {
      j["local_addresses"] = prefixes_json(s.local_addresses);
      j["ports"] = std::to_string(s.port_first) + "-" + std::to_string(s.port_last);
    }
    if (s.health.port) j["health"]["port"] = s.health.port;
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace sluice::config::detail
