// "routes", "neighbours" (static), "icmp" (error rate limit) and "neighbour" (ARP/ND
// timers): read as written, then every reference resolved against the ports' addresses.
#include <algorithm>
#include <set>

#include "config/sections.h"

namespace sluice::config::detail {

void read_routes(const ObjectReader& top, std::vector<RouteConfig>& out, std::vector<std::string>& errors) {
  if (!top.has("routes")) return;
  const json& routes = top.raw("routes");
  if (!routes.is_array()) {
    top.error("routes", "must be an array of routes, got " + type_name(routes));
  } else {
    for (size_t i = 0; i < routes.size(); ++i) {
      std::string path = "routes[" + std::to_string(i) + "]";
      if (!routes[i].is_object()) {
        errors.push_back(path + ": must be an object {\"prefix\": ..., \"via\": ...}, got " + type_name(routes[i]));
        continue;
      }
      ObjectReader r(routes[i], path, errors);
      r.allow_only({"prefix", "via", "port", "nexthops"});
      r.required("prefix");
      RouteConfig route;
      std::string text;
      if (r.string("prefix", text)) {
        auto prefix = net::parse_prefix(text);
        if (!prefix) r.error("prefix", "must be an IPv4 or IPv6 prefix like 10.2.0.0/16, got '" + text + "'");
        else route.prefix = prefix->network();
      }
      auto read_hop = [&](const ObjectReader& hop) {
        NextHopConfig nh;
        std::string via;
        if (hop.string("via", via)) {
          auto a = net::parse_ip(via);
          if (!a) hop.error("via", "must be an IPv4 or IPv6 address, got '" + via + "'");
          else nh.via = *a;
        }
        hop.string("port", nh.port);
        if (!hop.has("via") && !hop.has("port"))
          errors.push_back(hop.at("via") + ": a next hop needs \"via\" (a gateway address), \"port\", or both");
        route.nexthops.push_back(nh);
      };
      if (r.has("nexthops")) {
        if (r.has("via") || r.has("port")) r.error("nexthops", "give either nexthops or via/port, not both");
        const json& hops = r.raw("nexthops");
        if (!hops.is_array() || hops.empty() || hops.size() > kMaxEcmp) {
          r.error("nexthops", "must be an array of 1.." + std::to_string(kMaxEcmp) + " next hops, got " + show(hops));
        } else {
          for (size_t j = 0; j < hops.size(); ++j) {
            std::string hop_path = r.at("nexthops") + "[" + std::to_string(j) + "]";
            if (!hops[j].is_object()) {
              errors.push_back(hop_path + ": must be an object {\"via\": ..., \"port\": ...}, got " +
                               type_name(hops[j]));
              continue;
            }
            ObjectReader hop(hops[j], hop_path, errors);
            hop.allow_only({"via", "port"});
            read_hop(hop);
          }
        }
      } else {
        read_hop(r);
      }
      out.push_back(route);
    }
  }
}

void read_neighbours(const ObjectReader& top, std::vector<NeighbourConfig>& out, std::vector<std::string>& errors) {
  if (!top.has("neighbours")) return;
  const json& list = top.raw("neighbours");
  if (!list.is_array()) {
    top.error("neighbours", "must be an array of static neighbours, got " + type_name(list));
  } else {
    for (size_t i = 0; i < list.size(); ++i) {
      std::string path = "neighbours[" + std::to_string(i) + "]";
      if (!list[i].is_object()) {
        errors.push_back(path + ": must be an object {\"address\": ..., \"mac\": ...}, got " + type_name(list[i]));
        continue;
      }
      ObjectReader n(list[i], path, errors);
      n.allow_only({"address", "mac", "port"});
      n.required("address");
      n.required("mac");
      NeighbourConfig neighbour;
      std::string text;
      if (n.string("address", text)) {
        auto a = net::parse_ip(text);
        if (!a) n.error("address", "must be an IPv4 or IPv6 address, got '" + text + "'");
        else neighbour.address = *a;
      }
      if (n.string("mac", text)) {
        auto mac = parse_mac(text);
        if (!mac || ((*mac)[0] & 1)) n.error("mac", "must be a unicast MAC like 02:00:00:00:00:01, got '" + text + "'");
        else neighbour.mac = *mac;
      }
      n.string("port", neighbour.port);
      out.push_back(neighbour);
    }
  }
}

void read_rate_limit(const ObjectReader& parent, const std::string& key, IcmpConfig& out) {
  std::optional<ObjectReader> storage;
  const ObjectReader* limit = parent.object(key, storage);
  if (!limit) return;
  limit->allow_only({"rate_per_second", "burst"});
  limit->uint("rate_per_second", out.rate_per_second, 0, 1000000);
  limit->uint("burst", out.burst, 1, 100000);
}

void read_neighbour_settings(const ObjectReader& top, NeighbourSettings& out) {
  std::optional<ObjectReader> storage;
  const ObjectReader* n = top.object("neighbour", storage);
  if (!n) return;
  n->allow_only({"reachable_ms", "stale_ms", "retransmit_ms", "probes", "queue_packets", "capacity"});
  n->uint("reachable_ms", out.reachable_ms, 1000, 3600000);
  n->uint("stale_ms", out.stale_ms, 1000, 86400000);
  n->uint("retransmit_ms", out.retransmit_ms, 100, 60000);
  n->uint("probes", out.probes, 1, 10);
  n->uint("queue_packets", out.queue_packets, 0, 1024);
  n->uint("capacity", out.capacity, 64, 1u << 20);
}

void resolve_l3(Config& config, std::vector<std::string>& errors) {
  struct Connected {
    net::IpPrefix prefix;
    size_t port;
    std::string path;
  };
  std::vector<Connected> connected;
  for (size_t i = 0; i < config.ports.size(); ++i) {
    const auto& port = config.ports[i];
    std::string path = "ports[" + std::to_string(i) + "]";
    bool has_addresses = !port.ipv4.empty() || !port.ipv6.empty();
    if (port.routed() && !has_addresses)
      errors.push_back(path + ".pipeline: the route stage needs at least one address in ipv4 or ipv6");
    if (!port.routed() && has_addresses)
      errors.push_back(path + ": addresses (ipv4, ipv6) need the route stage in the pipeline");
    for (const auto* list : {&port.ipv4, &port.ipv6}) {
      for (size_t a = 0; a < list->size(); ++a) {
        const auto& prefix = (*list)[a];
        std::string a_path = path + (prefix.addr.family == 4 ? ".ipv4[" : ".ipv6[") + std::to_string(a) + "]";
        for (const auto& other : connected) {
          if (other.prefix.addr.family != prefix.addr.family) continue;
          uint8_t len = std::min(other.prefix.len, prefix.len);
          if (net::IpPrefix{other.prefix.addr, len}.contains(prefix.addr) && other.port != i)
            errors.push_back(a_path + ": " + prefix.str() + " overlaps " + other.path + " " + other.prefix.str() +
                             " on another port");
          else if (other.prefix.addr == prefix.addr)
            errors.push_back(a_path + ": " + prefix.addr.str() + " is already assigned at " + other.path);
        }
        connected.push_back({prefix, i, a_path});
      }
    }
  }
  auto port_for = [&](const net::IpAddr& a) -> std::optional<size_t> {
    const Connected* best = nullptr;
    for (const auto& c : connected)
      if (c.prefix.contains(a) && (!best || c.prefix.len > best->prefix.len)) best = &c;
    if (!best) return std::nullopt;
    return best->port;
  };
  auto check_port = [&](const std::string& path, const std::string& name) {
    const PortConfig* port = config.find_port(name);
    if (!port) errors.push_back(path + ": unknown port '" + name + "'");
    else if (!port->routed()) errors.push_back(path + ": port '" + name + "' has no route stage");
    return port != nullptr && port->routed();
  };

  std::set<std::pair<std::array<uint8_t, 16>, std::pair<uint8_t, uint8_t>>> seen;
  for (size_t i = 0; i < config.routes.size(); ++i) {
    auto& route = config.routes[i];
    std::string path = "routes[" + std::to_string(i) + "]";
    if (!seen.insert({route.prefix.addr.bytes, {route.prefix.addr.family, route.prefix.len}}).second)
      errors.push_back(path + ".prefix: " + route.prefix.str() + " is listed twice");
    for (size_t j = 0; j < route.nexthops.size(); ++j) {
      auto& hop = route.nexthops[j];
      std::string hop_path = route.nexthops.size() > 1 || j > 0 ? path + ".nexthops[" + std::to_string(j) + "]" : path;
      if (hop.via.is_set()) {
        if (hop.via.family != route.prefix.addr.family) {
          errors.push_back(hop_path + ".via: " + hop.via.str() + " is not an IPv" +
                           std::to_string(route.prefix.addr.family) + " address like the prefix");
          continue;
        }
        if (hop.port.empty()) {
          auto port = port_for(hop.via);
          if (!port) {
            errors.push_back(hop_path + ".via: " + hop.via.str() + " is in no connected subnet; add \"port\"");
            continue;
          }
          hop.port = config.ports[*port].name;
        }
      }
      if (check_port(hop_path + ".port", hop.port)) {
        const PortConfig* port = config.find_port(hop.port);
        bool v4 = route.prefix.addr.family == 4;
        if ((v4 ? port->ipv4 : port->ipv6).empty())
          errors.push_back(hop_path + ".port: port '" + hop.port + "' has no " + (v4 ? "IPv4" : "IPv6") +
                           " address to resolve next hops from");
      }
    }
  }

  for (size_t i = 0; i < config.neighbours.size(); ++i) {
    auto& n = config.neighbours[i];
    std::string path = "neighbours[" + std::to_string(i) + "]";
    if (n.port.empty()) {
      auto port = port_for(n.address);
      if (!port) {
        errors.push_back(path + ".address: " + n.address.str() + " is in no connected subnet; add \"port\"");
        continue;
      }
      n.port = config.ports[*port].name;
    }
    check_port(path + ".port", n.port);
  }
}

json routes_json(const std::vector<RouteConfig>& routes) {
  json out = json::array();
  for (const auto& route : routes) {
    json r = {{"prefix", route.prefix.str()}, {"nexthops", json::array()}};
    for (const auto& hop : route.nexthops) {
      json h = {{"port", hop.port}};
      if (hop.via.is_set()) h["via"] = hop.via.str();
      r["nexthops"].push_back(h);
    }
    out.push_back(r);
  }
  return out;
}

json neighbours_json(const std::vector<NeighbourConfig>& neighbours) {
  json out = json::array();
  for (const auto& n : neighbours)
    out.push_back({{"address", n.address.str()}, {"mac", format_mac(n.mac)}, {"port", n.port}});
  return out;
}

json rate_limit_json(const IcmpConfig& limit) {
  return {{"rate_per_second", limit.rate_per_second}, {"burst", limit.burst}};
}

json neighbour_settings_json(const NeighbourSettings& neighbour) {
  return {{"reachable_ms", neighbour.reachable_ms},   {"stale_ms", neighbour.stale_ms},
          {"retransmit_ms", neighbour.retransmit_ms}, {"probes", neighbour.probes},
          {"queue_packets", neighbour.queue_packets}, {"capacity", neighbour.capacity}};
}

}  // namespace sluice::config::detail
