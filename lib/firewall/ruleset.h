// The stateful firewall's compiled rules: the config's ordered rules turned into two
// DPDK rte_acl tries (IPv4 and IPv6), the zone-pair policy matrix and the per-port
// zones. Built whole on the control thread (compile), published to the workers
// through RCU, never changed afterwards: a reload builds a new Ruleset.
//
// Workers classify only packets the flow table cannot decide alone (new connections,
// invalid packets, and established ones when a rule names those states), a burst at a
// time: fill an AclKey per packet, classify4/classify6 the lot, act on the results.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <rte_acl.h>
#include <rte_ethdev.h>

#include "config/config.h"

namespace sluice::firewall {

using Action = config::FirewallAction;

inline constexpr unsigned kMaxZones = 64;
inline constexpr unsigned kMaxRules = 4096;        // config rules
inline constexpr unsigned kMaxAclRules = 1u << 16;  // after expanding lists into ACL rules
inline constexpr uint8_t kNoZone = 0xff;

// Classify input for IPv4. rte_acl reads the first byte alone, then 4-byte groups;
// addresses and ports in network order, as on the wire. 24 bytes.
struct AclKey4 {
  uint8_t proto;                                  // group 0 (1 byte)
  uint8_t pad0[3];
  uint8_t in_port, out_port, in_zone, out_zone;   // group 1 (DPDK port ids, zone ids)
  uint8_t state, tcp_flags, pad1[2];              // group 2 (one CtStateBits bit; TCP flags or 0)
  uint32_t src, dst;                              // groups 3, 4
  uint16_t src_port, dst_port;                    // group 5 (0 when not TCP/UDP)
};
static_assert(sizeof(AclKey4) == 24);

// Classify input for IPv6: the same, with 16-byte addresses (four groups each). 48 bytes.
struct AclKey6 {
  uint8_t proto;
  uint8_t pad0[3];
  uint8_t in_port, out_port, in_zone, out_zone;
  uint8_t state, tcp_flags, pad1[2];
  uint8_t src[16], dst[16];
  uint16_t src_port, dst_port;
};
static_assert(sizeof(AclKey6) == 48);

// What a config rule compiled to; index 0 of rules() is unused (0 = no match).
struct RuleInfo {
  std::string name;
  Action action = Action::Accept;
};

class Ruleset {
 public:
  using PortIds = std::map<std::string, uint16_t>;  // port name -> DPDK port id

  // Compiles config.firewall for the ports in `port_ids` (DPDK port ids < 255).
  // `generation` names the rte_acl contexts (unique per build) and is reported in
  // stats. On failure returns null with one line in `error` (a JSON path and what is
  // wrong, e.g. "firewall.rules[3]: expands to 70000 ACL rules, at most 65536").
  static std::unique_ptr<Ruleset> compile(const config::Config& config, const PortIds& port_ids,
                                          uint32_t generation, std::string& error);
  ~Ruleset();
  Ruleset(const Ruleset&) = delete;
  Ruleset& operator=(const Ruleset&) = delete;

  // Fast path. results[i]: the index (1-based) of the first config rule matching
  // keys[i], or 0 when none does. `keys` point at AclKey4 / AclKey6.
  void classify4(const uint8_t** keys, uint32_t* results, unsigned n) const;
  void classify6(const uint8_t** keys, uint32_t* results, unsigned n) const;

  const RuleInfo& rule(uint32_t index) const { return rules_[index]; }
  size_t rule_count() const { return rules_.size() - 1; }  // config rules
  // For a new connection no rule decided: the zone pair's policy, else the default.
  Action policy(uint8_t in_zone, uint8_t out_zone) const {
    return in_zone < kMaxZones && out_zone < kMaxZones ? policy_[in_zone][out_zone] : default_policy_;
  }
  uint8_t zone_of_port(uint16_t port_id) const { return port_id < RTE_MAX_ETHPORTS ? port_zone_[port_id] : kNoZone; }
  const std::string& zone_name(uint8_t zone) const {
    static const std::string none;
    return zone < zone_names_.size() ? zone_names_[zone] : none;
  }
  // True when some rule names established or related: then those packets are
  // classified too instead of being accepted by their flow entry alone.
  bool classifies_established() const { return classifies_established_; }
  uint32_t generation() const { return generation_; }

 private:
  Ruleset() = default;

  rte_acl_ctx* acl4_ = nullptr;  // null when no rule applies to IPv4
  rte_acl_ctx* acl6_ = nullptr;
  std::vector<RuleInfo> rules_;
  std::array<std::array<Action, kMaxZones>, kMaxZones> policy_{};
  Action default_policy_ = Action::Drop;
  std::array<uint8_t, RTE_MAX_ETHPORTS> port_zone_{};
  std::vector<std::string> zone_names_;
  bool classifies_established_ = false;
  uint32_t generation_ = 0;
};

}  // namespace sluice::firewall
