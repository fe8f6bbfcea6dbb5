// "firewall": zone policies, rules and the reject rate limit; zones and ports are
// checked against the ports once everything is read.
#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "config/sections.h"

namespace sluice::config::detail {

namespace {

// How enums are written in JSON, in the enums' order (firewall_json indexes them).
const std::vector<std::string> kActionNames = {"accept", "drop", "reject"};
const std::vector<std::string> kDefaultPolicyNames = {"accept", "drop"};  // FirewallAction order; no reject
// Bit i of CtStateBits / of the TCP flags byte (FIN 0x01 .. CWR 0x80).
const std::vector<std::string> kStateNames = {"new", "established", "related", "invalid"};
const std::vector<std::string> kTcpFlagNames = {"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"};

// "tcp_flags": {"mask": ["syn", "ack"], "set": ["syn"]}: (flags & mask) == set.
bool read_tcp_flags(const ObjectReader& rule, FirewallRule& out, std::vector<std::string>& errors) {
  std::optional<ObjectReader> storage;
  const ObjectReader* flags = rule.object("tcp_flags", storage);
  if (!flags) return !rule.has("tcp_flags");
  flags->allow_only({"mask", "set"});
  flags->required("mask");
  bool mask_ok = flags->has("mask") && read_bits(*flags, "mask", kTcpFlagNames, "TCP flag", false, out.tcp_flags_mask, errors);
  bool set_ok = !flags->has("set") || read_bits(*flags, "set", kTcpFlagNames, "TCP flag", true, out.tcp_flags_set, errors);
  if (!mask_ok || !set_ok || !flags->has("set")) return mask_ok && set_ok;
  bool ok = true;
  const json& set = flags->raw("set");
  for (size_t i = 0; i < set.size(); ++i) {
    const std::string name = set[i].get<std::string>();
    auto bit = static_cast<uint8_t>(
        1u << (std::find(kTcpFlagNames.begin(), kTcpFlagNames.end(), name) - kTcpFlagNames.begin()));
    if (!(out.tcp_flags_mask & bit)) {
      errors.push_back(flags->at("set") + "[" + std::to_string(i) + "]: '" + name +
                       "' is not in mask (set must be within mask)");
      ok = false;
    }
  }
  return ok;
}

void read_rule(const ObjectReader& r, const std::string& path, FirewallRule& rule, std::vector<std::string>& errors) {
  r.allow_only({"name", "from", "to", "in_port", "out_port", "src", "dst", "protocol", "src_ports", "dst_ports",
                "tcp_flags", "state", "action"});
  r.required("action");
  if (r.string("name", rule.name)) {
    static const std::regex rule_name_re(R"(^[A-Za-z0-9_.-]{1,64}$)");
    if (!std::regex_match(rule.name, rule_name_re)) {
      r.error("name", "must be 1..64 characters of A-Z a-z 0-9 _ . -, got '" + rule.name + "'");
      rule.name.clear();
    }
  }
  read_name_list(r, "from", "zone name", rule.from_zones, errors);
  read_name_list(r, "to", "zone name", rule.to_zones, errors);
  read_name_list(r, "in_port", "port name", rule.in_ports, errors);
  read_name_list(r, "out_port", "port name", rule.out_ports, errors);
  bool addresses_ok = read_prefix_list(r, "src", rule.src, errors);
  addresses_ok = read_prefix_list(r, "dst", rule.dst, errors) && addresses_ok;
  bool protocol_ok = read_protocol(r, "protocol", rule.protocol);
  bool src_ports_ok = read_port_list(r, "src_ports", rule.src_ports, errors);
  bool dst_ports_ok = read_port_list(r, "dst_ports", rule.dst_ports, errors);
  bool flags_ok = read_tcp_flags(r, rule, errors);
  if (r.has("state")) read_bits(r, "state", kStateNames, "state", false, rule.states, errors);
  read_enum(r, "action", rule.action, kActionNames);

  // What the rule's keys say about each other. Nothing to add when a key was already wrong.
  if (!protocol_ok) return;
  bool tcp_or_udp = rule.protocol == kTcp || rule.protocol == kUdp;
  if (r.has("src_ports") && src_ports_ok && !tcp_or_udp)
    r.error("src_ports", "needs \"protocol\": \"tcp\" or \"udp\"");
  if (r.has("dst_ports") && dst_ports_ok && !tcp_or_udp)
    r.error("dst_ports", "needs \"protocol\": \"tcp\" or \"udp\"");
  if (r.has("tcp_flags") && flags_ok && rule.protocol != kTcp) r.error("tcp_flags", "needs \"protocol\": \"tcp\"");
  if (!addresses_ok) return;
  unsigned src = families(rule.src), dst = families(rule.dst), common = src & dst;
  auto restricting = [&](unsigned family) {
    if (src == family && dst == family) return "src and dst are " + family_only(family);
    return (src == family ? "src is " : "dst is ") + family_only(family);
  };
  if (common == 0)
    errors.push_back(path + ": src is " + family_only(src) + " and dst is " + family_only(dst) +
                     ": the rule can never match");
  else if (rule.protocol == kIcmp && common == 2)
    errors.push_back(path + ": protocol icmp is IPv4 only and " + restricting(2) +
                     ": the rule can never match (ICMP for IPv6 is icmpv6)");
  else if (rule.protocol == kIcmpv6 && common == 1)
    errors.push_back(path + ": protocol icmpv6 is IPv6 only and " + restricting(1) +
                     ": the rule can never match (ICMP for IPv4 is icmp)");
}

// Rule names are counter and log labels: unique, written or "rule<index>".
void name_rules(const std::vector<bool>& written, std::vector<FirewallRule>& rules, std::vector<std::string>& errors) {
  std::map<std::string, size_t> owner;
  for (size_t i = 0; i < rules.size(); ++i) {
    std::string path = "firewall.rules[" + std::to_string(i) + "]";
    if (!written[i]) rules[i].name = "rule" + std::to_string(i);
    if (rules[i].name.empty()) continue;  // an invalid name, already reported
    auto [it, fresh] = owner.emplace(rules[i].name, i);
    if (fresh) continue;
    std::string other = "firewall.rules[" + std::to_string(it->second) + "]";
    if (!written[i])
      errors.push_back(path + ": its default name '" + rules[i].name + "' is already taken by " + other +
                       "; give it a \"name\"");
    else if (!written[it->second])
      errors.push_back(path + ".name: duplicate rule name '" + rules[i].name + "' (the default name of " + other + ")");
    else
      errors.push_back(path + ".name: duplicate rule name '" + rules[i].name + "' (also " + other + ")");
  }
}

// A rule as the parser resolved it: lists as arrays (an empty one, "any", left out),
// protocol by name where it has one, a single port as a number and a range as "a-b".
json rule_json(const FirewallRule& rule) {
  json r = {{"name", rule.name},
            {"state", names_of_bits(rule.states, kStateNames)},
            {"action", kActionNames[static_cast<size_t>(rule.action)]}};
  auto names = [&](const char* key, const std::vector<std::string>& list) {
    if (!list.empty()) r[key] = list;
  };
  names("from", rule.from_zones);
  names("to", rule.to_zones);
  names("in_port", rule.in_ports);
  names("out_port", rule.out_ports);
  auto prefixes = [&](const char* key, const std::vector<net::IpPrefix>& list) {
    if (!list.empty()) r[key] = prefixes_json(list);
  };
  prefixes("src", rule.src);
  prefixes("dst", rule.dst);
  if (rule.protocol >= 0) r["protocol"] = protocol_json(rule.protocol);
  auto ports = [&](const char* key, const std::vector<PortRange>& list) {
    if (!list.empty()) r[key] = port_ranges_json(list);
  };
  ports("src_ports", rule.src_ports);
  ports("dst_ports", rule.dst_ports);
  if (rule.tcp_flags_mask)
    r["tcp_flags"] = {{"mask", names_of_bits(rule.tcp_flags_mask, kTcpFlagNames)},
                      {"set", names_of_bits(rule.tcp_flags_set, kTcpFlagNames)}};
  return r;
}

}  // namespace

void read_firewall(const ObjectReader& top, FirewallConfig& out, std::vector<std::string>& errors) {
  std::optional<ObjectReader> storage;
  const ObjectReader* fw = top.object("firewall", storage);
  if (!fw) return;
  out.enabled = true;
  fw->allow_only({"default_policy", "policies", "rules", "reject_limit"});
  read_enum(*fw, "default_policy", out.default_policy, kDefaultPolicyNames);

  if (fw->has("policies")) {
    const std::string shape = R"({"from": ZONE, "to": ZONE, "action": ...})";
    const json& list = fw->raw("policies");
    if (!list.is_array()) {
      fw->error("policies", "must be an array of " + shape + ", got " + type_name(list));
    } else {
      std::map<std::pair<std::string, std::string>, size_t> seen;
      for (size_t i = 0; i < list.size(); ++i) {
        std::string path = fw->at("policies") + "[" + std::to_string(i) + "]";
        ZonePolicy policy;
        if (!list[i].is_object()) {
          errors.push_back(path + ": must be an object " + shape + ", got " + type_name(list[i]));
          out.policies.push_back(policy);
          continue;
        }
        ObjectReader p(list[i], path, errors);
        p.allow_only({"from", "to", "action"});
        p.required("from");
        p.required("to");
        p.required("action");
        p.string("from", policy.from);
        p.string("to", policy.to);
        read_enum(p, "action", policy.action, kActionNames);
        if (!policy.from.empty() && !policy.to.empty()) {
          auto [it, fresh] = seen.emplace(std::make_pair(policy.from, policy.to), i);
          if (!fresh)
            errors.push_back(path + ": duplicate policy from '" + policy.from + "' to '" + policy.to +
                             "' (also firewall.policies[" + std::to_string(it->second) + "])");
        }
        out.policies.push_back(policy);
      }
    }
  }

  if (fw->has("rules")) {
    const json& list = fw->raw("rules");
    if (!list.is_array()) {
      fw->error("rules", "must be an array of rules, got " + type_name(list));
    } else if (list.size() > kMaxFirewallRules) {
      fw->error("rules", "at most " + std::to_string(kMaxFirewallRules) + " rules, got " + std::to_string(list.size()));
    } else {
      std::vector<bool> written;
      for (size_t i = 0; i < list.size(); ++i) {
        std::string path = fw->at("rules") + "[" + std::to_string(i) + "]";
        FirewallRule rule;
        written.push_back(list[i].is_object() && list[i].contains("name"));
        if (!list[i].is_object())
          errors.push_back(path + ": must be an object {..., \"action\": ...}, got " + type_name(list[i]));
        else
          read_rule(ObjectReader(list[i], path, errors), path, rule, errors);
        out.rules.push_back(rule);
      }
      name_rules(written, out.rules, errors);
    }
  }

  read_rate_limit(*fw, "reject_limit", out.reject_limit);
}

void resolve_firewall(const ObjectReader& top, const Config& config, std::vector<std::string>& errors) {
  if (!config.firewall.enabled) return;
  if (!config.tracked()) {
    errors.push_back("firewall: no port's pipeline has the conntrack stage");
    return;
  }
  std::vector<std::string> zones;
  std::set<std::string> tracked_zones;
  for (const auto& port : config.ports) {
    if (std::find(zones.begin(), zones.end(), port.zone) == zones.end()) zones.push_back(port.zone);
    if (port.tracked()) tracked_zones.insert(port.zone);
  }
  auto check_zone = [&](const std::string& path, const std::string& zone, bool ingress) {
    if (std::find(zones.begin(), zones.end(), zone) == zones.end())
      errors.push_back(path + ": unknown zone '" + zone + "' (known: " + join(zones) + ")");
    else if (ingress && !tracked_zones.count(zone))
      errors.push_back(path + ": zone '" + zone + "' has no port with the conntrack stage, so nothing from it is classified");
  };
  auto check_port = [&](const std::string& path, const std::string& name, bool ingress) {
    const PortConfig* port = config.find_port(name);
    if (!port) errors.push_back(path + ": unknown port '" + name + "'");
    else if (ingress && !port->tracked())
      errors.push_back(path + ": port '" + name + "' has no conntrack stage, so nothing from it is classified");
  };

  for (size_t i = 0; i < config.firewall.policies.size(); ++i) {
    const auto& policy = config.firewall.policies[i];
    std::string path = "firewall.policies[" + std::to_string(i) + "]";
    check_zone(path + ".from", policy.from, true);
    check_zone(path + ".to", policy.to, false);
  }
  const json* rules = top.raw("firewall").contains("rules") ? &top.raw("firewall").at("rules") : nullptr;
  for (size_t i = 0; i < config.firewall.rules.size(); ++i) {
    const auto& rule = config.firewall.rules[i];
    const json& written = rules->at(i);
    // The path of the j-th name under `key`: "key" when written alone, "key[j]" in an array.
    auto item = [&](const char* key, size_t j) {
      std::string path = "firewall.rules[" + std::to_string(i) + "]." + key;
      return written.at(key).is_array() ? path + "[" + std::to_string(j) + "]" : path;
    };
    for (size_t j = 0; j < rule.from_zones.size(); ++j) check_zone(item("from", j), rule.from_zones[j], true);
    for (size_t j = 0; j < rule.to_zones.size(); ++j) check_zone(item("to", j), rule.to_zones[j], false);
    for (size_t j = 0; j < rule.in_ports.size(); ++j) check_port(item("in_port", j), rule.in_ports[j], true);
    for (size_t j = 0; j < rule.out_ports.size(); ++j) check_port(item("out_port", j), rule.out_ports[j], false);
  }
}

json firewall_json(const FirewallConfig& fw) {
  json policies = json::array();
  for (const auto& p : fw.policies)
    policies.push_back({{"from", p.from}, {"to", p.to}, {"action", kActionNames[static_cast<size_t>(p.action)]}});
  json rules = json::array();
  for (const auto& rule : fw.rules) rules.push_back(rule_json(rule));
  return {{"default_policy", kActionNames[static_cast<size_t>(fw.default_policy)]},
          {"policies", policies},
          {"rules", rules},
          {"reject_limit", rate_limit_json(fw.reject_limit)}};
}

}  // namespace sluice::config::detail
