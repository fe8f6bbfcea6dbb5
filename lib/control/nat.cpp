#include "control/nat.h"

#include <algorithm>

#include <arpa/inet.h>

#include <string>

namespace sluice::control {

namespace {

std::string ip4(uint32_t addr_net) {
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr_net, text, sizeof(text));
  return text;
}

std::string ip6_prefix(const std::array<uint8_t, 16>& bits, unsigned length) {
  char text[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, bits.data(), text, sizeof(text));
  return std::string(text) + "/" + std::to_string(length);
}

// The worker's share of a port range: ports p of [first, last] with p % workers == w.
uint32_t ports_of(unsigned w, unsigned workers, uint32_t first, uint32_t last) {
  const uint32_t first_mine = first + (w + workers - first % workers) % workers;
  return first_mine > last ? 0 : (last - first_mine) / workers + 1;
}

}  // namespace

nlohmann::json nat_json(const runtime::Runtime& runtime) {
  const auto& contexts = runtime.nat_contexts();
  if (contexts.empty()) return nullptr;
  const auto& flow_contexts = runtime.flow_contexts();
  const auto& workers = runtime.workers();
  return runtime.with_nat_policy([&](const nat::Policy* policy) -> nlohmann::json {
    if (!policy) return nullptr;
    const unsigned n_workers = static_cast<unsigned>(contexts.size());
    nlohmann::json lcores = nlohmann::json::array();
    uint64_t active = 0, capacity = 0;
    uint64_t created = 0, removed = 0, no_port = 0, no_room = 0, eim_active = 0, eim_created = 0, eim_removed = 0,
             eim_inbound = 0, hairpinned = 0, icmp_errors = 0, nptv6 = 0, log_dropped = 0;
    uint64_t fragments = 0, reassembled = 0, in_progress = 0, held = 0, timeouts = 0;
    for (unsigned w = 0; w < n_workers; ++w) {
      const nat::NatContext& ctx = *contexts[w];
      const nat::NatCounters& c = ctx.counters();
      const flow::FlowTable4& table = flow_contexts[w]->table4();
      const nat::Reassembler& r = ctx.reassembler();
      lcores.push_back({{"lcore", workers[w]->lcore_id()},
                        {"active", table.pairs_active()},
                        {"max", table.pair_capacity()},
                        {"eim_active", ctx.eim_active()},
                        {"created", c.mappings_created.get()},
                        {"removed", c.mappings_removed.get()},
                        {"no_port", c.no_port.get()},
                        {"no_room", c.no_room.get()}});
      active += table.pairs_active();
      capacity += table.pair_capacity();
      created += c.mappings_created.get();
      removed += c.mappings_removed.get();
      no_port += c.no_port.get();
      no_room += c.no_room.get();
      eim_active += ctx.eim_active();
      eim_created += c.eim_created.get();
      eim_removed += c.eim_removed.get();
      eim_inbound += c.eim_inbound.get();
      hairpinned += c.hairpinned.get();
      icmp_errors += c.icmp_errors.get();
      nptv6 += c.nptv6_translated.get();
      if (ctx.events()) log_dropped += ctx.events()->dropped();
      fragments += r.counters().fragments.get();
      reassembled += r.counters().reassembled.get();
      in_progress += r.in_progress();
      held += r.counters().held.get();
      timeouts += r.timeouts();
    }

    // Rules, counted by the workers that have caught up with this policy.
    nlohmann::json rules = nlohmann::json::array();
    auto rule_row = [&](uint16_t id, const std::string& name, const char* kind) {
      uint64_t translated = 0, refused = 0;
      for (const auto& ctx : contexts) {
        if (ctx->rule_generation() != policy->generation()) continue;
        translated += ctx->rules()[id].translated.get();
        refused += ctx->rules()[id].no_port.get();
      }
      return nlohmann::json{{"id", id}, {"name", name}, {"kind", kind}, {"translated", translated}, {"no_port", refused}};
    };
    for (const auto& r : policy->snat()) {
      nlohmann::json row = rule_row(r.id, r.name, "snat");
      row["translate"] = r.masquerade ? "masquerade" : "pool";
      row["mapping"] = r.eim ? "endpoint-independent" : "endpoint-dependent";
      row["ports"] = std::to_string(r.port_first) + "-" + std::to_string(r.port_last);
      rules.push_back(std::move(row));
    }
    for (const auto& r : policy->dnat()) {
      nlohmann::json row = rule_row(r.id, r.name, "dnat");
      row["to_address"] = ip4(r.to_address);
      rules.push_back(std::move(row));
    }

    // Outside addresses: ports in use on each worker, out of its share.
    nlohmann::json addresses = nlohmann::json::array();
    for (const auto& o : policy->outside_addresses()) {
      if (o.slot == nat::kNoSlot) continue;
      uint32_t first = 1024, last = 65535;
      // The range of the rule that allocates from it: a pool holding it, or a masquerade
      // rule on a port whose address it is.
      for (const auto& r : policy->snat()) {
        bool allocates = std::find(r.pool.begin(), r.pool.end(), o.addr) != r.pool.end();
        for (uint16_t port = 0; r.masquerade && !allocates && port < 64; ++port)
          allocates = ((r.out_ports >> port) & 1) && policy->port_address(port) == o.addr;
        if (allocates) {
          first = r.port_first;
          last = r.port_last;
        }
      }
      nlohmann::json per = nlohmann::json::array();
      uint64_t in_use = 0, allocated = 0, exhausted = 0;
      for (unsigned w = 0; w < n_workers; ++w) {
        const nat::AddressCounters& a = contexts[w]->address(o.slot);
        per.push_back({{"lcore", workers[w]->lcore_id()},
                       {"in_use", a.in_use.get()},
                       {"ports", ports_of(w, n_workers, first, last)},
                       {"allocated", a.allocated.get()},
                       {"exhausted", a.exhausted.get()}});
        in_use += a.in_use.get();
        allocated += a.allocated.get();
        exhausted += a.exhausted.get();
      }
      addresses.push_back({{"address", ip4(o.addr)},
                           {"mapping", o.eim ? "endpoint-independent" : "endpoint-dependent"},
                           {"ports", std::to_string(first) + "-" + std::to_string(last)},
                           {"in_use", in_use},
                           {"allocated", allocated},
                           {"exhausted", exhausted},
                           {"lcores", std::move(per)}});
    }

    nlohmann::json nptv6_maps = nlohmann::json::array();
    for (const auto& m : policy->nptv6()) {
      std::string port;
      for (const auto& [name, id] : runtime.port_ids())
        if (id == m.port_id) port = name;
      nptv6_maps.push_back({{"name", m.name},
                            {"port", port},
                            {"inside", ip6_prefix(m.inside, m.length)},
                            {"outside", ip6_prefix(m.outside, m.length)}});
    }

    nlohmann::json out = {{"generation", policy->generation()},
                          {"active", active},
                          {"max", capacity},
                          {"entry_bytes", sizeof(flow::NatPair4)},
                          {"created", created},
                          {"removed", removed},
                          {"no_port", no_port},
                          {"no_room", no_room},
                          {"eim_active", eim_active},
                          {"eim_created", eim_created},
                          {"eim_removed", eim_removed},
                          {"eim_inbound", eim_inbound},
                          {"hairpinned", hairpinned},
                          {"icmp_errors_translated", icmp_errors},
                          {"nptv6_translated", nptv6},
                          {"reassembly",
                           {{"fragments", fragments},
                            {"reassembled", reassembled},
                            {"in_progress", in_progress},
                            {"fragments_held", held},
                            {"timeouts", timeouts}}},
                          {"lcores", std::move(lcores)},
                          {"rules", std::move(rules)},
                          {"addresses", std::move(addresses)},
                          {"nptv6", std::move(nptv6_maps)}};
    if (const nat::EventLog* log = runtime.nat_log())
      out["log"] = {{"file", log->path()}, {"written", log->written()}, {"dropped", log_dropped}};
    return out;
  });
}

}  // namespace sluice::control
