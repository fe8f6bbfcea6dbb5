#include "pipeline/steer.h"

#include "pipeline/flow_keys.h"

namespace sluice::pipeline {

SteerStage::SteerStage(uint16_t port_id, uint16_t conntrack_zone, unsigned self, unsigned workers, bool track_ipv6,
                       std::vector<rte_ring*> rings, const l3::Published<nat::Policy>* nat,
                       const l3::Published<lb::ServiceTable>* services)
    : Stage("steer"),
      port_id_(port_id),
      zone_(conntrack_zone),
      self_(self),
      workers_(workers),
      track_ipv6_(track_ipv6),
      rings_(std::move(rings)),
      nat_(nat),
      services_(services) {}

// A DNAT service's connection lives with the worker of its translated key (client ->
// backend): its replies carry that key. The backend is the Maglev table's choice for
// the client's tuple, as conntrack will pick it. -1: not a DNAT service's.
int SteerStage::lb_owner(const lb::ServiceTable& services, const flow::FlowKey4& key, unsigned workers) {
  for (unsigned s = 0; s < 2; ++s) {
    const int index = services.find(key.addr[s], key.proto, key.port[s]);
    if (index < 0) [[likely]]
      continue;
    const lb::Service& service = services.service(static_cast<uint16_t>(index));
    if (service.mode != config::LbMode::Dnat || service.scheduler != config::LbScheduler::Maglev) return -1;
    const uint32_t client = key.addr[s ^ 1];
    const uint16_t client_port = key.port[s ^ 1];
    const uint16_t backend =
        service.maglev.lookup(lb::flow_hash(client, key.addr[s], client_port, key.port[s], key.proto));
    if (backend == lb::kNoBackend) return -1;
    const lb::Backend& b = service.backends[backend];
    flow::FlowKey4 translated;
    flow::make_key4(translated, client, b.addr, client_port, b.port ? b.port : key.port[s], key.proto, key.zone);
    return static_cast<int>(flow_owner(translated.hash(), workers));
  }
  return -1;
}

void SteerStage::process(Burst& burst) {
  uint8_t owner_of[kMaxBurst];
  uint64_t owners = 0;  // bit per worker that gets packets from this burst
  uint16_t kept = 0;
  flow::FlowKey4 key4;
  flow::FlowKey6 key6;
  const uint16_t n = burst.count;
  const nat::Policy* nat = nat_ ? nat_->get() : nullptr;
  const lb::ServiceTable* services = services_ ? services_->get() : nullptr;
  if (services && services->empty()) services = nullptr;
  rte_mbuf* pkts[kMaxBurst];
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = burst.pkts[i];
    pkts[i] = m;
    const PacketKey key = flow_key_of(m, meta(m), zone_, track_ipv6_, key4, key6);
    const bool keyed = (key.kind == KeyKind::Ipv4 || key.kind == KeyKind::Ipv6) && !key.invalid;
    unsigned owner = keyed ? flow_owner(key.hash, workers_) : self_;
    if (nat && keyed && key.kind == KeyKind::Ipv4) {
      const nat::Policy::Steer s = nat->steer(key4, port_id_);
      if (s.kind == nat::Policy::Steer::kOwner) owner = s.value;
      else if (s.kind == nat::Policy::Steer::kHash) owner = flow_owner(s.value, workers_);
      else if (services) [[unlikely]] {
        const int lb = lb_owner(*services, key4, workers_);
        if (lb >= 0) owner = static_cast<unsigned>(lb);
      }
    }
    owner_of[i] = static_cast<uint8_t>(owner);
    if (owner == self_) {
      burst.pkts[kept++] = m;
      continue;
    }
    m->port = port_id_;  // the owner runs this port's pipeline on it
    owners |= uint64_t(1) << owner;
  }
  burst.count = kept;
  if (kept) kept_.add(kept);
  while (owners) {
    const unsigned w = static_cast<unsigned>(__builtin_ctzll(owners));
    owners &= owners - 1;
    rte_mbuf* out[kMaxBurst];
    unsigned count = 0;
    for (uint16_t i = 0; i < n; ++i)
      if (owner_of[i] == w) out[count++] = pkts[i];
    const unsigned sent = rte_ring_sp_enqueue_burst(rings_[w], reinterpret_cast<void* const*>(out), count, nullptr);
    handed_[w].add(sent);
    for (unsigned k = sent; k < count; ++k) drop(burst, out[k], Drop::HandoffRingFull);
  }
}

void SteerStage::read_counters(NamedCounters& out) const {
  out.emplace_back("kept", kept_.get());
  uint64_t handed = 0;
  for (unsigned w = 0; w < workers_; ++w) handed += handed_[w].get();
  out.emplace_back("handed_off", handed);
}

}  // namespace sluice::pipeline
