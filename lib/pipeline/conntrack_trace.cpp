// The packet tracer's view of conntrack (never the fast path): the flow a packet it
// kept belongs to, looked up again in this worker's table.
#include <string>

#include "flow/flow_context.h"
#include "pipeline/conntrack.h"
#include "pipeline/flow_keys.h"

namespace sluice::pipeline {

namespace {

template <typename Table>
void describe_entry(const Table& table, uint32_t index, const flow::FlowContext& flows, const firewall::Policy& policy,
                    std::string& out) {
  const flow::FlowBody& body = table.at(index).body;
  const uint8_t proto = table.key_at(index).proto;
  out += "flow " + std::to_string(index) + " " + std::string(flow::state_name(proto, body.state));
  if (body.rule && policy.rules && body.rule <= policy.rules->rule_count())
    out += ", admitted by rule " + std::to_string(body.rule) + " '" + policy.rules->rule(body.rule).name + "'";
  else
    out += policy.rules ? ", admitted by policy" : ", no firewall";
  const int32_t left_ms = static_cast<int32_t>(body.expires - flows.now());
  out += ", expires in " + std::to_string(left_ms > 0 ? left_ms / 1000 : 0) + " s";
}

}  // namespace

void ConntrackStage::describe(const rte_mbuf* m, std::string& out) const {
  const PacketMeta& pm = meta(m);
  const flow::FlowContext& flows = *ctx_.flows;
  const firewall::Policy& policy = *ctx_.policy->get();
  flow::FlowKey4 key4;
  flow::FlowKey6 key6;
  const PacketKey k = flow_key_of(m, pm, zone_, flows.table6() != nullptr, key4, key6);
  if (k.kind == KeyKind::Untracked || k.invalid) {
    out = k.invalid ? "no flow key (" + std::string(drop_name(k.reason)) + "), passed untracked" : "untracked";
    return;
  }
  if (k.kind == KeyKind::LaterFragment) {
    out = "later fragment: no ports, passed untracked";
    return;
  }
  uint32_t index = flow::kNoEntry;
  if (k.kind == KeyKind::Ipv4) index = flows.table4().find(key4, k.hash);
  else index = flows.table6()->find(key6, k.hash);
  if (index == flow::kNoEntry) {
    out = "no flow (for Sluice itself, or left to the route stage)";
    return;
  }
  if (k.related) out = "related to ";
  if (k.kind == KeyKind::Ipv4) describe_entry(flows.table4(), index, flows, policy, out);
  else describe_entry(*flows.table6(), index, flows, policy, out);
}

}  // namespace sluice::pipeline
