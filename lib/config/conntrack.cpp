// "conntrack": the flow tables' sizes, the tracker's settings and per-state timeouts.
#include "config/sections.h"

namespace sluice::config::detail {

namespace {

const std::vector<std::string> kFragmentPolicyNames = {"accept", "drop"};  // FragmentPolicy order

// conntrack.timeouts, spelled once for the reader and the writer.
struct TimeoutField {
  const char* name;
  unsigned ConntrackTimeouts::*seconds;
};
constexpr TimeoutField kTimeoutFields[] = {
    {"tcp_syn_sent", &ConntrackTimeouts::tcp_syn_sent},
    {"tcp_syn_recv", &ConntrackTimeouts::tcp_syn_recv},
    {"tcp_established", &ConntrackTimeouts::tcp_established},
    {"tcp_fin_wait", &ConntrackTimeouts::tcp_fin_wait},
    {"tcp_close_wait", &ConntrackTimeouts::tcp_close_wait},
    {"tcp_last_ack", &ConntrackTimeouts::tcp_last_ack},
    {"tcp_time_wait", &ConntrackTimeouts::tcp_time_wait},
    {"tcp_close", &ConntrackTimeouts::tcp_close},
    {"tcp_unacknowledged", &ConntrackTimeouts::tcp_unacknowledged},
    {"udp", &ConntrackTimeouts::udp},
    {"udp_stream", &ConntrackTimeouts::udp_stream},
    {"icmp", &ConntrackTimeouts::icmp},
    {"generic", &ConntrackTimeouts::generic},
};
constexpr unsigned kMaxTimeoutSeconds = 1728000;  // 20 days: deadlines are wrapping 32-bit ms stamps (24.8 days of range)

}  // namespace

void read_conntrack(const ObjectReader& top, ConntrackConfig& out) {
  std::optional<ObjectReader> storage, timeouts_storage;
  const ObjectReader* ct = top.object("conntrack", storage);
  if (!ct) return;
  ct->allow_only({"capacity", "capacity_ipv6", "tcp_liberal", "tcp_loose", "later_fragments", "timeouts"});
  ct->uint("capacity", out.capacity, 1024, 1u << 26);
  ct->uint_or_zero("capacity_ipv6", out.capacity_ipv6, 1024, 1u << 24, "no IPv6 tracking");
  ct->boolean("tcp_liberal", out.tcp_liberal);
  ct->boolean("tcp_loose", out.tcp_loose);
  read_enum(*ct, "later_fragments", out.later_fragments, kFragmentPolicyNames);
  if (const ObjectReader* timeouts = ct->object("timeouts", timeouts_storage)) {
    std::vector<std::string> names;
    for (const auto& field : kTimeoutFields) names.push_back(field.name);
    timeouts->allow_only(names);
    for (const auto& field : kTimeoutFields)
      timeouts->uint(field.name, out.timeouts.*field.seconds, 1, kMaxTimeoutSeconds);
  }
}

void resolve_conntrack(const ObjectReader& top, const Config& config, std::vector<std::string>& errors) {
  if (top.has("conntrack") && !config.tracked()) errors.push_back("conntrack: no port's pipeline has the conntrack stage");
  // One flow must reach one worker whichever port it arrives on: hashed by the NIC or
  // by the workers, not a mixture (the runtime refuses it too, at start).
  std::optional<size_t> first_explicit;
  for (size_t i = 0; i < config.ports.size(); ++i) {
    const auto& port = config.ports[i];
    if (!port.tracked() || port.steering == Steering::Auto) continue;
    if (!first_explicit) {
      first_explicit = i;
      continue;
    }
    const auto& other = config.ports[*first_explicit];
    if (other.steering != port.steering)
      errors.push_back("ports[" + std::to_string(i) + "].steering: '" + kSteeringNames[static_cast<size_t>(port.steering)] +
                       "' here but '" + kSteeringNames[static_cast<size_t>(other.steering)] + "' at ports[" +
                       std::to_string(*first_explicit) + "]: every tracked port must steer the same way");
  }
}

json conntrack_json(const ConntrackConfig& conntrack) {
  json timeouts = json::object();
  for (const auto& field : kTimeoutFields) timeouts[field.name] = conntrack.timeouts.*field.seconds;
  return {{"capacity", conntrack.capacity},
          {"capacity_ipv6", conntrack.capacity_ipv6},
          {"tcp_liberal", conntrack.tcp_liberal},
          {"tcp_loose", conntrack.tcp_loose},
          {"later_fragments", kFragmentPolicyNames[static_cast<size_t>(conntrack.later_fragments)]},
          {"timeouts", timeouts}};
}

}  // namespace sluice::config::detail
