// "nat": source NAT rules (masquerade, pools), port forwards, NPTv6 mappings, the
// reassembly limits and the event log; checked against the ports once everything is
// read, and the addresses Sluice must answer ARP for worked out.
#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "config/sections.h"

namespace sluice::config::detail {

namespace {

const std::vector<std::string> kMappingNames = {"endpoint-dependent", "endpoint-independent"};

// IPv4 only: NAT44 translates IPv4; IPv6 is NPTv6's.
bool ipv4_only(const ObjectReader& r, const std::string& key, const std::vector<net::IpPrefix>& list) {
  for (const auto& p : list) {
    if (p.addr.family == 4) continue;
    r.error(key, "IPv4 only: snat and dnat translate IPv4 (IPv6 prefixes are translated by nptv6), got '" + p.str() + "'");
    return false;
  }
  return true;
}

std::optional<net::IpAddr> read_ipv4(const ObjectReader& r, const std::string& key) {
  std::string text;
  if (!r.string(key, text)) return std::nullopt;
  auto addr = net::parse_ip(text);
  if (!addr || addr->family != 4) {
    r.error(key, "must be an IPv4 address like \"198.51.100.10\", got '" + text + "'");
    return std::nullopt;
  }
  const uint32_t host = addr->v4_host();
  if (host == 0 || (host >> 24) == 127 || (host >> 28) >= 0xe) {
    r.error(key, "must be a unicast address, got '" + text + "'");
    return std::nullopt;
  }
  return addr;
}

std::optional<net::IpPrefix> read_ipv6_prefix(const ObjectReader& r, const std::string& key) {
  std::string text;
  if (!r.string(key, text)) return std::nullopt;
  auto prefix = net::parse_prefix(text);
  if (!prefix || prefix->addr.family != 6) {
    r.error(key, "must be an IPv6 prefix like \"fd00:1::/48\", got '" + text + "'");
    return std::nullopt;
  }
  if (prefix->len < 1 || prefix->len > 64) {
    r.error(key, "prefix length must be 1..64 (RFC 6296 adjusts a word of the interface identifier at most), got '" +
                     text + "'");
    return std::nullopt;
  }
  if (!(prefix->network() == *prefix)) {
    r.error(key, text + " has host bits set (did you mean " + prefix->network().str() + "?)");
    return std::nullopt;
  }
  return prefix;
}

void read_snat(const ObjectReader& r, const std::string& path, SnatRule& rule, std::vector<std::string>& errors) {
  r.allow_only({"name", "from", "to", "in_port", "out_port", "src", "dst", "protocol", "masquerade", "pool", "ports",
                "mapping"});
  read_rule_name(r, rule.name);
  read_name_list(r, "from", "zone name", rule.from_zones, errors);
  read_name_list(r, "to", "zone name", rule.to_zones, errors);
  read_name_list(r, "in_port", "port name", rule.in_ports, errors);
  read_name_list(r, "out_port", "port name", rule.out_ports, errors);
  if (read_prefix_list(r, "src", rule.src, errors)) ipv4_only(r, "src", rule.src);
  if (read_prefix_list(r, "dst", rule.dst, errors)) ipv4_only(r, "dst", rule.dst);
  if (read_protocol(r, "protocol", rule.protocol) && rule.protocol == kIcmpv6)
    r.error("protocol", "icmpv6 is IPv6: snat translates IPv4");
  r.boolean("masquerade", rule.masquerade);
  if (r.has("pool") && read_prefix_list(r, "pool", rule.pool, errors) && ipv4_only(r, "pool", rule.pool)) {
    for (const auto& p : rule.pool)
      if (p.len < 16) r.error("pool", "at most 65536 addresses a prefix (a /16), got '" + p.str() + "'");
    if (rule.pool.empty()) r.error("pool", "must name at least one address");
  }
  if (rule.masquerade && r.has("pool"))
    errors.push_back(path + ": masquerade and pool exclude each other: translate to the egress port's address or to a pool");
  else if (!rule.masquerade && !r.has("pool"))
    errors.push_back(path + ": needs \"masquerade\": true (the egress port's address) or \"pool\": [addresses]");
  read_port_range(r, "ports", rule.port_first, rule.port_last);
  read_enum(r, "mapping", rule.mapping, kMappingNames);
}

void read_dnat(const ObjectReader& r, const std::string& path, DnatRule& rule, std::vector<std::string>& errors) {
  r.allow_only({"name", "from", "in_port", "src", "dst", "protocol", "port", "to_address", "to_port", "hairpin"});
  r.required("protocol");
  r.required("port");
  r.required("to_address");
  read_rule_name(r, rule.name);
  read_name_list(r, "from", "zone name", rule.from_zones, errors);
  read_name_list(r, "in_port", "port name", rule.in_ports, errors);
  if (read_prefix_list(r, "src", rule.src, errors)) ipv4_only(r, "src", rule.src);
  if (r.has("dst"))
    if (auto dst = read_ipv4(r, "dst")) rule.dst = *dst;
  if (r.has("protocol") && read_protocol(r, "protocol", rule.protocol) && rule.protocol != kTcp && rule.protocol != kUdp)
    r.error("protocol", "a port forward is for \"tcp\" or \"udp\", got " + show(r.raw("protocol")));
  read_port_range(r, "port", rule.port_first, rule.port_last);
  if (r.has("to_address"))
    if (auto to = read_ipv4(r, "to_address")) rule.to_address = *to;
  unsigned to_port = 0;
  r.uint("to_port", to_port, 1, 65535);
  rule.to_port = static_cast<uint16_t>(to_port);
  if (to_port && rule.port_first && to_port + (rule.port_last - rule.port_first) > 65535u)
    errors.push_back(path + ".to_port: " + std::to_string(to_port) + " + the " +
                     std::to_string(rule.port_last - rule.port_first + 1) + " ports of \"port\" passes 65535");
  r.boolean("hairpin", rule.hairpin);
}

void read_nptv6(const ObjectReader& r, const std::string& path, Nptv6Rule& rule, std::vector<std::string>& errors) {
  r.allow_only({"name", "port", "inside", "outside"});
  r.required("port");
  r.required("inside");
  r.required("outside");
  read_rule_name(r, rule.name);
  if (r.has("port")) read_name(r, "port", rule.port);
  auto inside = read_ipv6_prefix(r, "inside");
  auto outside = read_ipv6_prefix(r, "outside");
  if (inside) rule.inside = *inside;
  if (outside) rule.outside = *outside;
  if (inside && outside && inside->len != outside->len)
    errors.push_back(path + ": inside is a /" + std::to_string(inside->len) + " and outside a /" +
                     std::to_string(outside->len) + ": NPTv6 maps prefixes of equal length (RFC 6296)");
  if (inside && outside && inside->len == outside->len && *inside == *outside)
    errors.push_back(path + ": inside and outside are the same prefix: nothing to translate");
}

uint32_t v4(const net::IpAddr& a) { return a.v4_host(); }
uint64_t span_end(const net::IpPrefix& p) { return uint64_t(v4(p.addr)) + (uint64_t(1) << (32 - p.len)); }

}  // namespace

void read_nat(const ObjectReader& top, NatConfig& out, std::vector<std::string>& errors) {
  std::optional<ObjectReader> storage;
  const ObjectReader* nat = top.object("nat", storage);
  if (!nat) return;
  out.enabled = true;
  nat->allow_only({"capacity", "snat", "dnat", "nptv6", "fragments", "log"});
  nat->uint("capacity", out.capacity, 1024, 1u << 24);
  read_list(*nat, "snat", "snat rule", kMaxNatRules, out.snat, errors, read_snat);
  read_list(*nat, "dnat", "port forward", kMaxNatRules, out.dnat, errors, read_dnat);
  read_list(*nat, "nptv6", "NPTv6 mapping", kMaxNatRules, out.nptv6, errors, read_nptv6);
  if (out.snat.size() + out.dnat.size() > kMaxNatRules)
    nat->error("snat", "snat and dnat together hold at most " + std::to_string(kMaxNatRules) + " rules, got " +
                           std::to_string(out.snat.size() + out.dnat.size()));
  // Names label counters and log lines: unique across the section. As the firewall's
  // rules: a default name that clashes wants a "name"; a written one, another name.
  struct Claim {
    std::string path;
    bool written;
  };
  std::map<std::string, Claim> owner;
  auto claim = [&](const std::string& key, size_t i, const std::string& name) {
    if (name.empty()) return;  // an invalid name, already reported
    const std::string path = nat->at(key) + "[" + std::to_string(i) + "]";
    const bool written = nat->raw(key)[i].contains("name");
    auto [it, fresh] = owner.emplace(name, Claim{path, written});
    if (fresh) return;
    const Claim& other = it->second;
    if (!written)
      errors.push_back(path + ": its default name '" + name + "' is already taken by " + other.path +
                       "; give it a \"name\"");
    else if (!other.written)
      errors.push_back(path + ".name: duplicate name '" + name + "' (the default name of " + other.path + ")");
    else
      errors.push_back(path + ".name: duplicate name '" + name + "' (also " + other.path + ")");
  };
  for (size_t i = 0; i < out.snat.size(); ++i) claim("snat", i, out.snat[i].name);
  for (size_t i = 0; i < out.dnat.size(); ++i) claim("dnat", i, out.dnat[i].name);
  for (size_t i = 0; i < out.nptv6.size(); ++i) claim("nptv6", i, out.nptv6[i].name);

  std::optional<ObjectReader> fragments_storage;
  if (const ObjectReader* f = nat->object("fragments", fragments_storage)) {
    f->allow_only({"max_datagrams", "max_fragments", "timeout_ms"});
    f->uint("max_datagrams", out.fragments.max_datagrams, 1, 65536);
    f->uint("max_fragments", out.fragments.max_fragments, 2, 64);
    f->uint("timeout_ms", out.fragments.timeout_ms, 100, 120000);
  }
  std::optional<ObjectReader> log_storage;
  if (const ObjectReader* log = nat->object("log", log_storage)) {
    log->allow_only({"file"});
    log->required("file");
    if (log->string("file", out.log_file) && (out.log_file.empty() || out.log_file[0] != '/'))
      log->error("file", "must be an absolute path, got '" + out.log_file + "'");
  }
}

void resolve_nat(const ObjectReader& top, Config& config, std::vector<std::string>& errors) {
  NatConfig& nat = config.nat;
  std::vector<size_t> nat_ports;
  for (size_t i = 0; i < config.ports.size(); ++i)
    if (config.ports[i].translated()) nat_ports.push_back(i);
  if (!nat.enabled) {
    for (size_t i : nat_ports)
      errors.push_back("ports[" + std::to_string(i) + "].pipeline: the nat stage needs a \"nat\" section (its rules)");
    return;
  }
  if (nat_ports.empty()) {
    errors.push_back("nat: no port's pipeline has the nat stage");
    return;
  }
  // A flow translated through one port has its replies on another: every tracked port
  // must translate, and all in one conntrack zone (both tuples live in one table).
  const bool any_rule = !nat.snat.empty() || !nat.dnat.empty() || !nat.nptv6.empty();
  for (size_t i = 0; i < config.ports.size(); ++i) {
    const PortConfig& port = config.ports[i];
    if (any_rule && port.tracked() && !port.translated())
      errors.push_back("ports[" + std::to_string(i) + "].pipeline: port '" + port.name +
                       "' tracks flows without the nat stage, but the replies of flows translated elsewhere "
                       "arrive here: add \"nat\" after \"conntrack\"");
    if (port.translated() && port.conntrack_zone != config.ports[nat_ports[0]].conntrack_zone)
      errors.push_back("ports[" + std::to_string(i) + "].conntrack_zone: every port with the nat stage must be in one "
                       "conntrack zone (a translated flow's two tuples are in one table), got " +
                       std::to_string(port.conntrack_zone) + " here and " +
                       std::to_string(config.ports[nat_ports[0]].conntrack_zone) + " on port '" +
                       config.ports[nat_ports[0]].name + "'");
    // Its reply tuple hashes elsewhere: the NIC cannot bring a translated reply home.
    if (port.tracked() && port.steering == Steering::Hardware && config.workers.size() > 1)
      errors.push_back("ports[" + std::to_string(i) + "].steering: with the nat stage and " +
                       std::to_string(config.workers.size()) +
                       " workers only software steering brings a translated flow's replies (another tuple) to the "
                       "worker that holds it: use \"auto\" or \"software\", got 'hardware'");
  }

  std::vector<std::string> zones;
  for (const auto& port : config.ports)
    if (std::find(zones.begin(), zones.end(), port.zone) == zones.end()) zones.push_back(port.zone);
  // No "nat" section: services brought NAT's defaults, and there are no rules to name.
  static const json kNoSection = json::object();
  const json& written = top.has("nat") ? top.raw("nat") : kNoSection;
  auto item = [&](const char* list, size_t i, const char* key, size_t j) {
    std::string path = std::string("nat.") + list + "[" + std::to_string(i) + "]." + key;
    return written.at(list).at(i).at(key).is_array() ? path + "[" + std::to_string(j) + "]" : path;
  };
  auto check_zones = [&](const char* list, size_t i, const char* key, const std::vector<std::string>& names) {
    for (size_t j = 0; j < names.size(); ++j)
      if (std::find(zones.begin(), zones.end(), names[j]) == zones.end())
        errors.push_back(item(list, i, key, j) + ": unknown zone '" + names[j] + "' (known: " + join(zones) + ")");
  };
  auto check_ports = [&](const char* list, size_t i, const char* key, const std::vector<std::string>& names) {
    for (size_t j = 0; j < names.size(); ++j) {
      const PortConfig* port = config.find_port(names[j]);
      if (!port) errors.push_back(item(list, i, key, j) + ": unknown port '" + names[j] + "'");
      else if (!port->translated())
        errors.push_back(item(list, i, key, j) + ": port '" + names[j] + "' has no nat stage");
    }
  };
  // The ports a rule names, directly or by zone; every nat port when it names none.
  auto ports_of = [&](const std::vector<std::string>& ports, const std::vector<std::string>& zone_names) {
    std::vector<const PortConfig*> out;
    for (const auto& pc : config.ports) {
      if (!pc.translated()) continue;
      const bool named = std::find(ports.begin(), ports.end(), pc.name) != ports.end() ||
                         std::find(zone_names.begin(), zone_names.end(), pc.zone) != zone_names.end();
      if (named || (ports.empty() && zone_names.empty())) out.push_back(&pc);
    }
    return out;
  };
  auto own_address = [&](const net::IpAddr& a) {
    for (const auto& pc : config.ports)
      for (const auto& p : pc.ipv4)
        if (p.addr == a) return true;
    return false;
  };
  // Sluice answers ARP for a NAT address on the ports named for it, else on the ports
  // whose subnet holds it (else nowhere: it must be routed to Sluice).
  auto add_proxy = [&](const net::IpAddr& a, const std::vector<const PortConfig*>& named, bool named_explicitly) {
    if (own_address(a)) return;
    std::vector<const PortConfig*> on;
    if (named_explicitly) on = named;
    else
      for (const auto& pc : config.ports)
        if (pc.translated())
          for (const auto& p : pc.ipv4)
            if (p.contains(a)) on.push_back(&pc);
    for (const PortConfig* pc : on) {
      NatProxyAddress proxy{pc->name, a};
      if (std::find(nat.proxy.begin(), nat.proxy.end(), proxy) == nat.proxy.end()) nat.proxy.push_back(proxy);
    }
  };

  // Outside addresses: each in one pool, each with one mapping behaviour.
  struct Owner {
    std::string path;
    NatMapping mapping;
  };
  std::vector<std::pair<net::IpPrefix, Owner>> pools;
  std::map<uint32_t, Owner> masquerade_addresses;
  uint64_t outside_count = 0;  // distinct, as the policy registers them: pools, masqueraded and forwarded addresses
  for (size_t i = 0; i < nat.snat.size(); ++i) {
    const SnatRule& rule = nat.snat[i];
    const std::string path = "nat.snat[" + std::to_string(i) + "]";
    check_zones("snat", i, "from", rule.from_zones);
    check_zones("snat", i, "to", rule.to_zones);
    check_ports("snat", i, "in_port", rule.in_ports);
    check_ports("snat", i, "out_port", rule.out_ports);
    const auto egress = ports_of(rule.out_ports, rule.to_zones);
    if (rule.masquerade) {
      bool any = false;
      for (const PortConfig* pc : egress) {
        if (pc->ipv4.empty()) continue;
        any = true;
        const uint32_t a = v4(pc->ipv4.front().addr);
        auto [it, fresh] = masquerade_addresses.emplace(a, Owner{path, rule.mapping});
        if (!fresh && it->second.mapping != rule.mapping)
          errors.push_back(path + ".mapping: the address of port '" + pc->name + "' (" + pc->ipv4.front().addr.str() +
                           ") is masqueraded " + kMappingNames[static_cast<size_t>(it->second.mapping)] + " by " +
                           it->second.path + ": one address, one mapping behaviour, got " +
                           kMappingNames[static_cast<size_t>(rule.mapping)]);
      }
      if (!any) errors.push_back(path + ": masquerade needs an IPv4 address on an egress port, and none of its ports has one");
      continue;
    }
    for (size_t j = 0; j < rule.pool.size(); ++j) {
      const net::IpPrefix& p = rule.pool[j];
      const std::string at = item("snat", i, "pool", j);
      for (const auto& [other, owner] : pools)
        if (v4(p.addr) < span_end(other) && v4(other.addr) < span_end(p))
          errors.push_back(at + ": " + p.str() + " overlaps " + other.str() + " of " + owner.path +
                           ": an outside address belongs to one pool");
      pools.emplace_back(p, Owner{path, rule.mapping});
      outside_count += uint64_t(1) << (32 - p.len);
    }
  }
  auto in_pool = [&](uint32_t addr) {
    for (const auto& [prefix, owner] : pools)
      if (addr >= v4(prefix.addr) && addr < span_end(prefix)) return true;
    return false;
  };
  for (const auto& [prefix, owner] : pools) {
    for (const auto& [addr, masq] : masquerade_addresses)
      if (addr >= v4(prefix.addr) && addr < span_end(prefix) && masq.mapping != owner.mapping)
        errors.push_back(owner.path + ".mapping: " + net::IpAddr::v4(addr).str() + " is in its pool and masqueraded " +
                         kMappingNames[static_cast<size_t>(masq.mapping)] + " by " + masq.path +
                         ": one address, one mapping behaviour");
  }
  for (const auto& [addr, masq] : masquerade_addresses)
    if (!in_pool(addr)) ++outside_count;

  // The addresses each port forward listens on: the written one, or the ingress ports' own.
  std::vector<std::vector<net::IpAddr>> listens(nat.dnat.size());
  for (size_t i = 0; i < nat.dnat.size(); ++i) {
    const DnatRule& rule = nat.dnat[i];
    const std::string path = "nat.dnat[" + std::to_string(i) + "]";
    check_zones("dnat", i, "from", rule.from_zones);
    check_ports("dnat", i, "in_port", rule.in_ports);
    const auto ingress = ports_of(rule.in_ports, rule.from_zones);
    std::vector<net::IpAddr>& addresses = listens[i];
    if (rule.dst.is_set()) addresses.push_back(rule.dst);
    else
      for (const PortConfig* pc : ingress)
        for (const auto& p : pc->ipv4) addresses.push_back(p.addr);
    if (addresses.empty())
      errors.push_back(path + ": no \"dst\", and its ingress ports have no IPv4 address to listen on");
    // Two forwards clash only where they listen on one address (steering sends a
    // forwarded port's packets by its translation, so one address and port, one place).
    for (size_t k = 0; k < i; ++k) {
      const DnatRule& other = nat.dnat[k];
      if (other.protocol != rule.protocol || other.port_last < rule.port_first || rule.port_last < other.port_first)
        continue;
      auto shared = std::find_first_of(addresses.begin(), addresses.end(), listens[k].begin(), listens[k].end());
      if (shared != addresses.end())
        errors.push_back(path + ": its ports overlap those of nat.dnat[" + std::to_string(k) + "] on " +
                         shared->str() + " (" + protocol_json(rule.protocol).get<std::string>() +
                         "): a port forwards to one place");
    }
    if (rule.dst.is_set()) add_proxy(rule.dst, ingress, !rule.in_ports.empty() || !rule.from_zones.empty());
  }
  std::set<uint32_t> forwarded;
  for (const auto& addresses : listens)
    for (const auto& a : addresses)
      if (!masquerade_addresses.count(v4(a)) && !in_pool(v4(a)) && forwarded.insert(v4(a)).second) ++outside_count;
  if (outside_count > kMaxNatAddresses)
    errors.push_back("nat: " + std::to_string(outside_count) +
                     " outside addresses in all (pools, masqueraded and forwarded addresses); at most " +
                     std::to_string(kMaxNatAddresses));
  for (size_t i = 0; i < nat.snat.size(); ++i) {
    const SnatRule& rule = nat.snat[i];
    const auto egress = ports_of(rule.out_ports, rule.to_zones);
    const bool named = !rule.out_ports.empty() || !rule.to_zones.empty();
    for (const auto& p : rule.pool) {
      const uint64_t count = uint64_t(1) << (32 - p.len);
      if (count > 256) continue;  // a large pool is routed to Sluice, not answered for address by address
      for (uint64_t k = 0; k < count; ++k)
        add_proxy(net::IpAddr::v4(v4(p.addr) + static_cast<uint32_t>(k)), egress, named);
    }
  }

  for (size_t i = 0; i < nat.nptv6.size(); ++i) {
    const Nptv6Rule& rule = nat.nptv6[i];
    const std::string path = "nat.nptv6[" + std::to_string(i) + "]";
    const PortConfig* port = config.find_port(rule.port);
    if (!port) errors.push_back(path + ".port: unknown port '" + rule.port + "'");
    else if (!port->translated()) errors.push_back(path + ".port: port '" + rule.port + "' has no nat stage");
    for (size_t k = 0; k < i; ++k) {
      const Nptv6Rule& other = nat.nptv6[k];
      if (rule.inside.contains(other.inside.addr) || other.inside.contains(rule.inside.addr) ||
          rule.outside.contains(other.outside.addr) || other.outside.contains(rule.outside.addr))
        errors.push_back(path + ": its prefixes overlap those of nat.nptv6[" + std::to_string(k) + "]");
    }
  }
}

json nat_json(const NatConfig& nat) {
  auto list = [](const std::vector<std::string>& names) { return json(names); };
  json snat = json::array();
  for (const auto& r : nat.snat) {
    json j = {{"name", r.name}};
    if (!r.from_zones.empty()) j["from"] = list(r.from_zones);
    if (!r.to_zones.empty()) j["to"] = list(r.to_zones);
    if (!r.in_ports.empty()) j["in_port"] = list(r.in_ports);
    if (!r.out_ports.empty()) j["out_port"] = list(r.out_ports);
    if (!r.src.empty()) j["src"] = prefixes_json(r.src);
    if (!r.dst.empty()) j["dst"] = prefixes_json(r.dst);
    if (r.protocol >= 0) j["protocol"] = protocol_json(r.protocol);
    if (r.masquerade) j["masquerade"] = true;
    else j["pool"] = prefixes_json(r.pool);
    j["ports"] = std::to_string(r.port_first) + "-" + std::to_string(r.port_last);
    j["mapping"] = kMappingNames[static_cast<size_t>(r.mapping)];
    snat.push_back(std::move(j));
  }
  json dnat = json::array();
  for (const auto& r : nat.dnat) {
    json j = {{"name", r.name}};
    if (!r.from_zones.empty()) j["from"] = list(r.from_zones);
    if (!r.in_ports.empty()) j["in_port"] = list(r.in_ports);
    if (!r.src.empty()) j["src"] = prefixes_json(r.src);
    if (r.dst.is_set()) j["dst"] = r.dst.str();
    j["protocol"] = protocol_json(r.protocol);
    if (r.port_first == r.port_last) j["port"] = r.port_first;
    else j["port"] = std::to_string(r.port_first) + "-" + std::to_string(r.port_last);
    j["to_address"] = r.to_address.str();
    if (r.to_port) j["to_port"] = r.to_port;
    j["hairpin"] = r.hairpin;
    dnat.push_back(std::move(j));
  }
  json nptv6 = json::array();
  for (const auto& r : nat.nptv6)
    nptv6.push_back({{"name", r.name}, {"port", r.port}, {"inside", r.inside.str()}, {"outside", r.outside.str()}});
  json out = {{"capacity", nat.capacity},
              {"snat", std::move(snat)},
              {"dnat", std::move(dnat)},
              {"nptv6", std::move(nptv6)},
              {"fragments",
               {{"max_datagrams", nat.fragments.max_datagrams},
                {"max_fragments", nat.fragments.max_fragments},
                {"timeout_ms", nat.fragments.timeout_ms}}}};
  if (!nat.log_file.empty()) out["log"] = {{"file", nat.log_file}};
  return out;
}

}  // namespace sluice::config::detail
