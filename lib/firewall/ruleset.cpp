#include "firewall/ruleset.h"

#include <algorithm>
#include <cstddef>
#include <limits>

#include <rte_errno.h>

namespace sluice::firewall {

namespace {

// rte_acl reads the first field alone, then one 4-byte load per input_index; the
// fields of a group must fill its 4 bytes exactly, in offset order (DPDK acl_bld.c
// takes each group's load offset from its first field). Keep the keys in that shape.
static_assert(offsetof(AclKey4, proto) == 0 && offsetof(AclKey4, in_port) == 4 && offsetof(AclKey4, state) == 8 &&
              offsetof(AclKey4, src) == 12 && offsetof(AclKey4, dst) == 16 && offsetof(AclKey4, src_port) == 20);
static_assert(offsetof(AclKey6, proto) == 0 && offsetof(AclKey6, in_port) == 4 && offsetof(AclKey6, state) == 8 &&
              offsetof(AclKey6, src) == 12 && offsetof(AclKey6, dst) == 28 && offsetof(AclKey6, src_port) == 44);

// Field indexes, the same for both families up to the addresses (kWords 4-byte words each).
enum : uint8_t { kProto, kInPort, kOutPort, kInZone, kOutZone, kState, kTcpFlags, kPad1a, kPad1b, kSrc };

template <unsigned kWords>
struct Layout {
  static constexpr unsigned kDst = kSrc + kWords;
  static constexpr unsigned kSrcPort = kDst + kWords;
  static constexpr unsigned kDstPort = kSrcPort + 1;
  static constexpr unsigned kFields = kDstPort + 1;
};

// RTE_ACL_RULE_DEF(name, fields), as a template.
template <unsigned kFields>
struct AclRule {
  rte_acl_rule_data data;
  rte_acl_field field[kFields];
};
static_assert(sizeof(AclRule<Layout<1>::kFields>) == RTE_ACL_RULE_SZ(Layout<1>::kFields));
static_assert(sizeof(AclRule<Layout<4>::kFields>) == RTE_ACL_RULE_SZ(Layout<4>::kFields));

template <typename Key, unsigned kWords>
rte_acl_config acl_config() {
  using L = Layout<kWords>;
  rte_acl_config cfg{};
  cfg.num_categories = 1;
  cfg.num_fields = L::kFields;
  auto def = [&](unsigned field, uint8_t type, uint8_t size, uint8_t input, size_t offset) {
    cfg.defs[field] = rte_acl_field_def{type, size, static_cast<uint8_t>(field), input, static_cast<uint32_t>(offset)};
  };
  constexpr uint8_t kBits = RTE_ACL_FIELD_TYPE_BITMASK;
  def(kProto, kBits, 1, 0, offsetof(Key, proto));
  def(kInPort, kBits, 1, 1, offsetof(Key, in_port));
  def(kOutPort, kBits, 1, 1, offsetof(Key, out_port));
  def(kInZone, kBits, 1, 1, offsetof(Key, in_zone));
  def(kOutZone, kBits, 1, 1, offsetof(Key, out_zone));
  def(kState, kBits, 1, 2, offsetof(Key, state));
  def(kTcpFlags, kBits, 1, 2, offsetof(Key, tcp_flags));
  def(kPad1a, kBits, 1, 2, offsetof(Key, pad1));
  def(kPad1b, kBits, 1, 2, offsetof(Key, pad1) + 1);
  uint8_t input = 3;
  for (unsigned w = 0; w < kWords; ++w) def(kSrc + w, RTE_ACL_FIELD_TYPE_MASK, 4, input++, offsetof(Key, src) + 4 * w);
  for (unsigned w = 0; w < kWords; ++w) def(L::kDst + w, RTE_ACL_FIELD_TYPE_MASK, 4, input++, offsetof(Key, dst) + 4 * w);
  def(L::kSrcPort, RTE_ACL_FIELD_TYPE_RANGE, 2, input, offsetof(Key, src_port));
  def(L::kDstPort, RTE_ACL_FIELD_TYPE_RANGE, 2, input, offsetof(Key, dst_port));
  return cfg;
}

constexpr int kAny = -1;  // wildcard for the 1-byte exact fields
constexpr int kIcmp = 1, kTcp = 6, kUdp = 17, kIcmpv6 = 58;
// Port ids fill one key byte; the header promises ids below 255, and port_zone_ holds RTE_MAX_ETHPORTS.
constexpr unsigned kPortIdLimit = std::min(255u, unsigned(RTE_MAX_ETHPORTS));

// One config rule with its names resolved: what the expansion multiplies out.
struct ResolvedRule {
  std::vector<int> in_ports, out_ports, from_zones, to_zones;  // {kAny} when the list is empty
  std::vector<uint8_t> states;                                 // one CtStateBits bit each
  std::vector<config::PortRange> src_ports, dst_ports;         // {0-65535} when empty
  std::vector<net::IpPrefix> src[2], dst[2];                   // per family (0: IPv4, 1: IPv6); {::/0} when empty
  bool family[2] = {false, false};
  uint64_t count[2] = {0, 0};  // ACL rules per family
};

uint64_t saturating_mul(uint64_t a, uint64_t b) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return std::numeric_limits<uint64_t>::max();
  return a * b;
}

uint64_t saturating_add(uint64_t a, uint64_t b) {
  return b > std::numeric_limits<uint64_t>::max() - a ? std::numeric_limits<uint64_t>::max() : a + b;
}

// The k-th 32-bit word of an address in host order, masked to its share of the prefix.
void set_prefix_word(rte_acl_field& f, const net::IpPrefix& p, unsigned k) {
  const uint8_t* b = p.addr.bytes.data() + 4 * k;
  uint32_t word = uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | b[3];
  int share = std::clamp(int(p.len) - int(32 * k), 0, 32);
  uint32_t mask = share == 0 ? 0 : ~uint32_t(0) << (32 - share);
  f.value.u32 = word & mask;
  f.mask_range.u32 = static_cast<uint32_t>(share);
}

void set_exact(rte_acl_field& f, int value) {
  f.value.u8 = value == kAny ? 0 : static_cast<uint8_t>(value);
  f.mask_range.u8 = value == kAny ? 0 : 0xff;
}

// Appends the cartesian product of `r`'s lists for one family.
template <unsigned kWords>
void expand(const config::FirewallRule& rule, const ResolvedRule& r, unsigned family, uint32_t userdata,
            int32_t priority, std::vector<AclRule<Layout<kWords>::kFields>>& out) {
  using L = Layout<kWords>;
  AclRule<L::kFields> acl{};
  acl.data.category_mask = 1;
  acl.data.priority = priority;
  acl.data.userdata = userdata;
  set_exact(acl.field[kProto], rule.protocol < 0 ? kAny : rule.protocol);
  acl.field[kTcpFlags].value.u8 = rule.tcp_flags_set;
  acl.field[kTcpFlags].mask_range.u8 = rule.tcp_flags_mask;
  // kPad1a, kPad1b stay 0/0: wildcards that complete the 4-byte group.
  for (int in_port : r.in_ports) {
    set_exact(acl.field[kInPort], in_port);
    for (int out_port : r.out_ports) {
      set_exact(acl.field[kOutPort], out_port);
      for (int from : r.from_zones) {
        set_exact(acl.field[kInZone], from);
        for (int to : r.to_zones) {
          set_exact(acl.field[kOutZone], to);
          for (uint8_t state : r.states) {
            acl.field[kState].value.u8 = state;  // the key has exactly one state bit set
            acl.field[kState].mask_range.u8 = state;
            for (const auto& src : r.src[family]) {
              for (unsigned w = 0; w < kWords; ++w) set_prefix_word(acl.field[kSrc + w], src, w);
              for (const auto& dst : r.dst[family]) {
                for (unsigned w = 0; w < kWords; ++w) set_prefix_word(acl.field[L::kDst + w], dst, w);
                for (const auto& sp : r.src_ports) {
                  acl.field[L::kSrcPort].value.u16 = sp.first;
                  acl.field[L::kSrcPort].mask_range.u16 = sp.last;
                  for (const auto& dp : r.dst_ports) {
                    acl.field[L::kDstPort].value.u16 = dp.first;
                    acl.field[L::kDstPort].mask_range.u16 = dp.last;
                    out.push_back(acl);
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}

// Creates, fills and builds one family's context; null with `error` on failure.
template <typename Key, unsigned kWords>
rte_acl_ctx* build_context(const char* family, uint32_t generation,
                           const std::vector<AclRule<Layout<kWords>::kFields>>& rules, std::string& error) {
  std::string name = std::string("sl_fw") + (kWords == 1 ? "4" : "6") + "_g" + std::to_string(generation);
  // rte_acl_create hands back an existing context of the same name instead of failing:
  // two live rulesets would then share (and corrupt) one rule set.
  if (rte_acl_find_existing(name.c_str()) != nullptr) {
    error = "firewall: rte_acl context " + name + " already exists: generation " + std::to_string(generation) +
            " is still in use";
    return nullptr;
  }
  rte_acl_param param{};
  param.name = name.c_str();
  param.socket_id = SOCKET_ID_ANY;
  param.rule_size = RTE_ACL_RULE_SZ(Layout<kWords>::kFields);
  param.max_rule_num = static_cast<uint32_t>(rules.size());
  rte_acl_ctx* ctx = rte_acl_create(&param);
  if (ctx == nullptr) {
    error = std::string("firewall: cannot create the ") + family + " ACL context (" + rte_strerror(rte_errno) + ")";
    return nullptr;
  }
  int rc = rte_acl_add_rules(ctx, reinterpret_cast<const rte_acl_rule*>(rules.data()),
                             static_cast<uint32_t>(rules.size()));
  if (rc == 0) {
    rte_acl_config cfg = acl_config<Key, kWords>();
    rc = rte_acl_build(ctx, &cfg);
    if (rc != 0) {
      error = std::string("firewall: cannot build the ") + family + " ACL trie of " + std::to_string(rules.size()) +
              " ACL rules (" + rte_strerror(-rc) + "; see eal.memory_mb, or use fewer or shorter lists)";
    }
  } else {
    error = std::string("firewall: cannot add ") + std::to_string(rules.size()) + " " + family + " ACL rules (" +
            rte_strerror(-rc) + ")";
  }
  if (rc != 0) {
    rte_acl_free(ctx);
    return nullptr;
  }
  return ctx;
}

// Names in the config -> the ids the keys carry, with the errors compile reports.
struct Names {
  const config::Config& config;
  const Ruleset::PortIds& port_ids;
  std::map<std::string, uint8_t> zone_ids;
  std::vector<std::string> zones;  // by id

  bool zone(const std::string& path, const std::string& name, int& id, std::string& error) const {
    auto it = zone_ids.find(name);
    if (it != zone_ids.end()) {
      id = it->second;
      return true;
    }
    std::string known;
    for (const auto& z : zones) known += (known.empty() ? "" : ", ") + z;
    error = path + ": unknown zone '" + name + "' (known: " + (known.empty() ? "none" : known) + ")";
    return false;
  }
  bool port(const std::string& path, const std::string& name, int& id, std::string& error) const {
    auto it = port_ids.find(name);
    if (it != port_ids.end()) {
      id = it->second;
      return true;
    }
    error = path + (config.find_port(name) ? ": port '" + name + "' is not running (no DPDK port id)"
                                           : ": unknown port '" + name + "'");
    return false;
  }
};

// Checks what the parser cannot know (or may not have checked), resolves names and
// splits the address lists by family. `path` is "firewall.rules[N]".
bool resolve_rule(const config::FirewallRule& rule, const std::string& path, const Names& names, ResolvedRule& r,
                  std::string& error) {
  if (rule.protocol < -1 || rule.protocol > 255) {
    error = path + ".protocol: must be 0..255, not " + std::to_string(rule.protocol);
    return false;
  }
  if (rule.states == 0) {
    error = path + ".state: must list at least one state";
    return false;
  }
  constexpr uint8_t kAllStates = config::kCtNew | config::kCtEstablished | config::kCtRelated | config::kCtInvalid;
  if (rule.states & ~kAllStates) {
    error = path + ".state: unknown state bits " + std::to_string(rule.states & ~kAllStates);
    return false;
  }
  if ((rule.tcp_flags_mask | rule.tcp_flags_set) != 0 && rule.protocol != kTcp) {
    error = path + ".tcp_flags: needs protocol tcp";
    return false;
  }
  if (rule.tcp_flags_set & ~rule.tcp_flags_mask) {
    error = path + ".tcp_flags: set must be within mask";
    return false;
  }
  for (auto [key, list] : {std::pair{".src_ports", &rule.src_ports}, std::pair{".dst_ports", &rule.dst_ports}}) {
    if (list->empty()) continue;
    if (rule.protocol != kTcp && rule.protocol != kUdp) {
      error = path + key + ": needs protocol tcp or udp";
      return false;
    }
    for (const auto& range : *list) {
      if (range.first > range.last) {
        error = path + key + ": range " + std::to_string(range.first) + "-" + std::to_string(range.last) +
                " ends before it starts";
        return false;
      }
    }
  }

  for (uint8_t bit = config::kCtNew; bit <= config::kCtInvalid; bit <<= 1)
    if (rule.states & bit) r.states.push_back(bit);
  r.src_ports = rule.src_ports.empty() ? std::vector<config::PortRange>{config::PortRange{}} : rule.src_ports;
  r.dst_ports = rule.dst_ports.empty() ? std::vector<config::PortRange>{config::PortRange{}} : rule.dst_ports;

  struct NameList {
    const char* key;
    const std::vector<std::string>* names;
    std::vector<int>* ids;
    bool zone;
  };
  for (const NameList& list : {NameList{".in_port", &rule.in_ports, &r.in_ports, false},
                               NameList{".out_port", &rule.out_ports, &r.out_ports, false},
                               NameList{".from", &rule.from_zones, &r.from_zones, true},
                               NameList{".to", &rule.to_zones, &r.to_zones, true}}) {
    for (const auto& name : *list.names) {
      int id = 0;
      if (!(list.zone ? names.zone(path + list.key, name, id, error) : names.port(path + list.key, name, id, error)))
        return false;
      list.ids->push_back(id);
    }
    if (list.ids->empty()) list.ids->push_back(kAny);
  }

  // Each list keeps the prefixes of a family; an empty list is a wildcard for both, a
  // list without a family's prefixes excludes that family.
  auto split_families = [&](const char* key, const std::vector<net::IpPrefix>& prefixes,
                            std::vector<net::IpPrefix> (&split)[2]) {
    for (size_t k = 0; k < prefixes.size(); ++k) {
      const net::IpPrefix& p = prefixes[k];
      if ((p.addr.family != 4 && p.addr.family != 6) || p.len > (p.addr.family == 4 ? 32 : 128)) {
        error = path + key + "[" + std::to_string(k) + "]: not an IPv4 or IPv6 prefix";
        return false;
      }
      split[p.addr.family == 4 ? 0 : 1].push_back(p.network());
    }
    if (prefixes.empty()) {
      split[0].push_back(net::IpPrefix{net::IpAddr{4, {}}, 0});
      split[1].push_back(net::IpPrefix{net::IpAddr{6, {}}, 0});
    }
    return true;
  };
  if (!split_families(".src", rule.src, r.src) || !split_families(".dst", rule.dst, r.dst)) return false;
  for (unsigned f = 0; f < 2; ++f) r.family[f] = !r.src[f].empty() && !r.dst[f].empty();
  if (!r.family[0] && !r.family[1]) {
    error = path + ": src and dst have no address family in common";
    return false;
  }
  if (rule.protocol == kIcmp || rule.protocol == kIcmpv6) {
    unsigned only = rule.protocol == kIcmp ? 0 : 1;
    if (!r.family[only]) {
      error = path + ": protocol " + (only == 0 ? "icmp is IPv4" : "icmpv6 is IPv6") + " only, but src/dst name only " +
              (only == 0 ? "IPv6" : "IPv4") + " addresses";
      return false;
    }
    r.family[1 - only] = false;
  }

  uint64_t common = 1;
  for (size_t n : {r.in_ports.size(), r.out_ports.size(), r.from_zones.size(), r.to_zones.size(), r.states.size(),
                   r.src_ports.size(), r.dst_ports.size()})
    common = saturating_mul(common, n);
  for (unsigned f = 0; f < 2; ++f)
    if (r.family[f]) r.count[f] = saturating_mul(saturating_mul(common, r.src[f].size()), r.dst[f].size());
  return true;
}

}  // namespace

Ruleset::~Ruleset() {
  rte_acl_free(acl4_);
  rte_acl_free(acl6_);
}

std::unique_ptr<Ruleset> Ruleset::compile(const config::Config& config, const PortIds& port_ids,
                                          uint32_t generation, std::string& error) {
  const config::FirewallConfig& fw = config.firewall;
  std::unique_ptr<Ruleset> rs(new Ruleset());
  rs->generation_ = generation;
  rs->default_policy_ = fw.default_policy;
  rs->port_zone_.fill(kNoZone);

  for (const auto& [name, id] : port_ids) {
    if (id >= kPortIdLimit) {
      error = "firewall: port '" + name + "' has DPDK port id " + std::to_string(id) +
              ", the firewall takes ids below " + std::to_string(kPortIdLimit);
      return nullptr;
    }
  }

  // Zones, in order of first appearance among the ports.
  Names names{config, port_ids, {}, {}};
  for (size_t p = 0; p < config.ports.size(); ++p) {
    const config::PortConfig& port = config.ports[p];
    const std::string& zone = port.zone.empty() ? port.name : port.zone;
    auto [it, added] = names.zone_ids.emplace(zone, static_cast<uint8_t>(names.zones.size()));
    if (added) {
      if (names.zones.size() == kMaxZones) {
        error = "ports[" + std::to_string(p) + "].zone: more than " + std::to_string(kMaxZones) + " firewall zones";
        return nullptr;
      }
      names.zones.push_back(zone);
    }
    if (auto id = port_ids.find(port.name); id != port_ids.end()) rs->port_zone_[id->second] = it->second;
  }
  rs->zone_names_ = names.zones;

  // Zone-pair policies.
  for (auto& row : rs->policy_) row.fill(fw.default_policy);
  std::array<std::array<int, kMaxZones>, kMaxZones> policy_index;
  for (auto& row : policy_index) row.fill(-1);
  for (size_t i = 0; i < fw.policies.size(); ++i) {
    const config::ZonePolicy& policy = fw.policies[i];
    std::string path = "firewall.policies[" + std::to_string(i) + "]";
    int from = 0, to = 0;
    if (!names.zone(path + ".from", policy.from, from, error) || !names.zone(path + ".to", policy.to, to, error))
      return nullptr;
    if (policy_index[from][to] >= 0) {
      error = path + ": zone pair " + policy.from + " -> " + policy.to + " already has a policy at firewall.policies[" +
              std::to_string(policy_index[from][to]) + "]";
      return nullptr;
    }
    policy_index[from][to] = static_cast<int>(i);
    rs->policy_[from][to] = policy.action;
  }

  // Rules: check, resolve and count before building anything.
  if (fw.rules.size() > kMaxRules) {
    error = "firewall.rules: " + std::to_string(fw.rules.size()) + " rules, at most " + std::to_string(kMaxRules);
    return nullptr;
  }
  rs->rules_.resize(fw.rules.size() + 1);
  std::vector<ResolvedRule> resolved(fw.rules.size());
  uint64_t count4 = 0, count6 = 0;
  for (size_t i = 0; i < fw.rules.size(); ++i) {
    const config::FirewallRule& rule = fw.rules[i];
    std::string path = "firewall.rules[" + std::to_string(i) + "]";
    rs->rules_[i + 1] = RuleInfo{rule.name.empty() ? "rule" + std::to_string(i) : rule.name, rule.action};
    if (rule.states & (config::kCtEstablished | config::kCtRelated)) rs->classifies_established_ = true;
    ResolvedRule& r = resolved[i];
    if (!resolve_rule(rule, path, names, r, error)) return nullptr;
    uint64_t before = count4 + count6, own = saturating_add(r.count[0], r.count[1]);
    if (saturating_add(before, own) > kMaxAclRules) {
      error = path + ": expands to " + std::to_string(own) + " ACL rules" +
              (before ? ", " + std::to_string(saturating_add(before, own)) + " with the rules before it" : "") +
              ", at most " + std::to_string(kMaxAclRules) + " in all";
      return nullptr;
    }
    count4 += r.count[0];
    count6 += r.count[1];
  }

  // Expand and build. Earlier rules win: higher priority, the last one RTE_ACL_MIN_PRIORITY.
  static_assert(kMaxRules <= RTE_ACL_MAX_PRIORITY && RTE_ACL_MIN_PRIORITY == 1);
  std::vector<AclRule<Layout<1>::kFields>> rules4;
  std::vector<AclRule<Layout<4>::kFields>> rules6;
  rules4.reserve(count4);
  rules6.reserve(count6);
  for (size_t i = 0; i < fw.rules.size(); ++i) {
    auto userdata = static_cast<uint32_t>(i + 1);
    auto priority = static_cast<int32_t>(fw.rules.size() - i);
    if (resolved[i].family[0]) expand<1>(fw.rules[i], resolved[i], 0, userdata, priority, rules4);
    if (resolved[i].family[1]) expand<4>(fw.rules[i], resolved[i], 1, userdata, priority, rules6);
  }
  resolved.clear();
  if (!rules4.empty() && !(rs->acl4_ = build_context<AclKey4, 1>("IPv4", generation, rules4, error))) return nullptr;
  if (!rules6.empty() && !(rs->acl6_ = build_context<AclKey6, 4>("IPv6", generation, rules6, error))) return nullptr;
  return rs;
}

void Ruleset::classify4(const uint8_t** keys, uint32_t* results, unsigned n) const {
  if (acl4_ == nullptr || n == 0) {
    std::fill_n(results, n, 0u);
    return;
  }
  rte_acl_classify(acl4_, keys, results, n, 1);
}

void Ruleset::classify6(const uint8_t** keys, uint32_t* results, unsigned n) const {
  if (acl6_ == nullptr || n == 0) {
    std::fill_n(results, n, 0u);
    return;
  }
  rte_acl_classify(acl6_, keys, results, n, 1);
}

}  // namespace sluice::firewall
