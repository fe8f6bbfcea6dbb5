#include "nat/nat_context.h"

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_malloc.h>

namespace sluice::nat {

namespace {

struct EimKey {
  uint32_t addr;
  uint16_t port;
  uint8_t protocol;
  uint8_t pad;
};
static_assert(sizeof(EimKey) == 8);

EimKey eim_key(uint32_t addr, uint16_t port, uint8_t proto) { return EimKey{addr, port, proto, 0}; }

rte_hash* make_hash(const std::string& name, uint32_t entries, int socket) {
  rte_hash_parameters params{};
  params.name = name.c_str();
  params.entries = entries < 8 ? 8 : entries;
  params.key_len = sizeof(EimKey);
  params.hash_func = nullptr;  // rte_jhash
  params.socket_id = socket;
  return rte_hash_create(&params);
}

}  // namespace

std::unique_ptr<NatContext> NatContext::create(unsigned worker, unsigned workers, const config::NatConfig& config,
                                               flow::FlowContext& flows, int socket, std::string& error) {
  std::unique_ptr<NatContext> ctx(new NatContext(flows));
  ctx->worker_ = worker;
  ctx->workers_ = workers ? workers : 1;
  ctx->rng_ ^= (uint64_t(worker) + 1) * 0xbf58476d1ce4e5b9ull ^ rte_rdtsc();
  ctx->reassembler_ = std::make_unique<Reassembler>(config.fragments, rte_get_tsc_hz());
  // As many mappings as translated flows: each holds at least one.
  ctx->eim_capacity_ = config.capacity;
  const std::string base = "sl_eim" + std::to_string(worker);
  ctx->eim_ = static_cast<EimMapping*>(
      rte_zmalloc_socket((base + "_m").c_str(), sizeof(EimMapping) * size_t(ctx->eim_capacity_), 64, socket));
  ctx->eim_inside_ = make_hash(base + "_i", ctx->eim_capacity_, socket);
  ctx->eim_outside_ = make_hash(base + "_o", ctx->eim_capacity_, socket);
  if (!ctx->eim_ || !ctx->eim_inside_ || !ctx->eim_outside_) {
    error = "nat: lcore worker " + std::to_string(worker) + ": cannot reserve the endpoint-independent mapping table (" +
            std::to_string(ctx->eim_capacity_) + " mappings; raise eal.memory_mb or lower nat.capacity)";
    return nullptr;
  }
  for (uint32_t i = 0; i < ctx->eim_capacity_; ++i) ctx->eim_[i].next_free = i + 1;
  ctx->eim_free_ = 0;
  flows.table4().set_pair_observer(&NatContext::pair_removed, ctx.get());
  return ctx;
}

NatContext::~NatContext() {
  flows_.table4().set_pair_observer(nullptr, nullptr);
  if (flows_.table6()) flows_.table6()->set_entry_observer(nullptr, nullptr);
  rte_hash_free(eim_inside_);
  rte_hash_free(eim_outside_);
  rte_free(eim_);
}

Destination NatContext::destination_of(const Policy& policy, uint16_t in_port, const flow::NatTuple4& tuple,
                                       uint8_t proto) const {
  Destination d;
  if (proto != 6 && proto != 17) return d;
  // Port forwards and EIM mappings listen on outside addresses only: one probe decides
  // for nearly every new flow.
  const OutsideAddress* outside = policy.outside(tuple.dst);
  if (!outside) [[likely]]
    return d;
  if (!outside->reserved.empty()) {
    if (const DnatRule* rule = policy.match_dnat(in_port, tuple.src, tuple.dst, proto, rte_be_to_cpu_16(tuple.dport))) {
      d.kind = Destination::kForward;
      d.addr = rule->to_address;
      d.port = rte_cpu_to_be_16(rule->map_port(rte_be_to_cpu_16(tuple.dport)));
      d.rule = rule;
      return d;
    }
  }
  // Endpoint-independent filtering: anyone may reach a mapped outside port.
  if (outside->eim) {
    if (const EimMapping* m = eim_by_outside(tuple.dst, tuple.dport, proto)) {
      d.kind = Destination::kMapping;
      d.addr = m->inside_addr;
      d.port = m->inside_port;
    }
  }
  return d;
}

int NatContext::allocate_port(const Policy& policy, const OutsideAddress* outside, uint32_t outside_addr,
                              uint16_t first, uint16_t last, const flow::NatTuple4& tuple, uint8_t proto,
                              uint16_t reply_zone) {
  (void)policy;
  const bool eim = outside && outside->eim;
  flow::FlowTable4& table = flows_.table4();
  // Free for this flow: no port forward owns it, no mapping holds it (EIM), and the
  // reply tuple it would make is nobody's key (EDM).
  const bool has_reserved = outside && !outside->reserved.empty();
  auto is_free = [&](uint16_t port_host) {
    if (has_reserved && outside->is_reserved(proto, port_host)) return false;
    const uint16_t port = rte_cpu_to_be_16(port_host);
    if (eim) return eim_by_outside(outside_addr, port, proto) == nullptr;
    const flow::FlowKey4 key = reply_key_for(tuple, outside_addr, port, proto, reply_zone);
    const uint32_t hash = key.hash();
    table.prefetch(hash);  // a free key is looked for in both its buckets: overlap the two misses
    return table.find(key, hash) == flow::kNoEntry;
  };
  // Protocols without ports: the address alone, one flow per remote host at a time.
  if (proto != 6 && proto != 17 && proto != 1) return is_free(0) ? 0 : -1;
  const unsigned w = worker_, n_workers = workers_;
  // This worker's ports of [first, last]: first_mine, first_mine + W, ...
  const uint32_t first_mine = first + (w + n_workers - first % n_workers) % n_workers;
  if (first_mine > last) return -1;
  const uint32_t count = (last - first_mine) / n_workers + 1;
  // The inside port itself when it is ours and free (as Linux tries first), so ports
  // survive translation where they can; then from a random place.
  const uint16_t inside_port = rte_be_to_cpu_16(tuple.sport);
  if (proto != 1 && inside_port >= first_mine && inside_port <= last && port_owner(inside_port, n_workers) == w &&
      is_free(inside_port))
    return rte_cpu_to_be_16(inside_port);
  // Reserved ports (port forwards, health probes' 512) are stepped over without counting
  // as probes: a start inside such a block must not exhaust the bound on ports no flow holds.
  const uint32_t start = random() % count;
  const uint32_t probes = count < kMaxProbes ? count : kMaxProbes;
  for (uint32_t k = 0, step = 0; k < probes && step < count; ++step) {
    uint32_t at = start + step;
    if (at >= count) at -= count;
    const uint16_t port_host = static_cast<uint16_t>(first_mine + at * n_workers);
    if (has_reserved && outside->is_reserved(proto, port_host)) continue;
    ++k;
    if (is_free(port_host)) return rte_cpu_to_be_16(port_host);
  }
  return -1;
}

EimMapping* NatContext::eim_by_inside(uint32_t addr, uint16_t port, uint8_t proto) const {
  const EimKey key = eim_key(addr, port, proto);
  void* data = nullptr;
  if (rte_hash_lookup_data(eim_inside_, &key, &data) < 0) return nullptr;
  return &eim_[reinterpret_cast<uintptr_t>(data)];
}

EimMapping* NatContext::eim_by_outside(uint32_t addr, uint16_t port, uint8_t proto) const {
  const EimKey key = eim_key(addr, port, proto);
  void* data = nullptr;
  if (rte_hash_lookup_data(eim_outside_, &key, &data) < 0) return nullptr;
  return &eim_[reinterpret_cast<uintptr_t>(data)];
}

EimMapping* NatContext::eim_create(uint32_t inside_addr, uint16_t inside_port, uint32_t outside_addr,
                                   uint16_t outside_port, uint8_t proto, uint16_t rule, uint16_t slot) {
  if (eim_free_ >= eim_capacity_) return nullptr;
  const uint32_t index = eim_free_;
  EimMapping& m = eim_[index];
  const EimKey inside = eim_key(inside_addr, inside_port, proto), outside = eim_key(outside_addr, outside_port, proto);
  void* data = reinterpret_cast<void*>(uintptr_t(index));
  if (rte_hash_add_key_data(eim_inside_, &inside, data) < 0) return nullptr;
  if (rte_hash_add_key_data(eim_outside_, &outside, data) < 0) {
    rte_hash_del_key(eim_inside_, &inside);
    return nullptr;
  }
  eim_free_ = m.next_free;
  m = EimMapping{};
  m.inside_addr = inside_addr;
  m.inside_port = inside_port;
  m.outside_addr = outside_addr;
  m.outside_port = outside_port;
  m.protocol = proto;
  m.rule = rule;
  m.slot = slot;
  ++eim_active_;
  counters_.eim_created.inc();
  return &m;
}

void NatContext::eim_release(uint32_t inside_addr, uint16_t inside_port, uint8_t proto) {
  const EimKey inside = eim_key(inside_addr, inside_port, proto);
  void* data = nullptr;
  if (rte_hash_lookup_data(eim_inside_, &inside, &data) < 0) return;
  const uint32_t index = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(data));
  EimMapping& m = eim_[index];
  if (m.refs > 1) {
    --m.refs;
    return;
  }
  const EimKey outside = eim_key(m.outside_addr, m.outside_port, m.protocol);
  rte_hash_del_key(eim_inside_, &inside);
  rte_hash_del_key(eim_outside_, &outside);
  m.refs = 0;
  m.next_free = eim_free_;
  eim_free_ = index;
  --eim_active_;
  counters_.eim_removed.inc();
}

void NatContext::log_event(const flow::FlowEntry4& main, const flow::NatExt4& ext, bool created) {
  NatEvent e;
  e.tsc = rte_rdtsc();
  e.created = created;
  e.protocol = main.key.proto;
  e.kind = ext.kind;
  e.worker = static_cast<uint8_t>(worker_);
  e.rule = ext.kind & flow::kNatLb ? 0 : ext.rule;  // a service's slot is no NAT rule
  e.orig_src = ext.orig.src;
  e.orig_dst = ext.orig.dst;
  e.orig_sport = ext.orig.sport;
  e.orig_dport = ext.orig.dport;
  e.reply_src = ext.reply.src;
  e.reply_dst = ext.reply.dst;
  e.reply_sport = ext.reply.sport;
  e.reply_dport = ext.reply.dport;
  events_->push(e);
}

void NatContext::pair_created(const flow::FlowEntry4& main, const flow::NatExt4& ext) {
  counters_.mappings_created.inc();
  if (ext.address_slot != kNoSlot) {
    addresses_[ext.address_slot].in_use.inc();
    addresses_[ext.address_slot].allocated.inc();
  }
  if (ext.rule && !(ext.kind & flow::kNatLb)) rules_[ext.rule].translated.inc();
  if (events_) log_event(main, ext, true);
}

void NatContext::pair_removed(void* self, const flow::NatPair4& pair) {
  auto* ctx = static_cast<NatContext*>(self);
  ctx->counters_.mappings_removed.inc();
  if (pair.ext.address_slot != kNoSlot) ctx->addresses_[pair.ext.address_slot].in_use.add(~uint64_t(0));
  if (pair.ext.kind & flow::kNatEim) {
    // The inside endpoint: the opener of an outbound flow, the responder of an inbound one.
    if (pair.ext.kind & flow::kNatInbound) ctx->eim_release(pair.ext.reply.src, pair.ext.reply.sport, pair.main.key.proto);
    else ctx->eim_release(pair.ext.orig.src, pair.ext.orig.sport, pair.main.key.proto);
  }
  if ((pair.ext.kind & flow::kNatLb) && ctx->lb_observer_) ctx->lb_observer_(ctx->lb_observer_user_, pair);
  if (ctx->events_) ctx->log_event(pair.main, pair.ext, false);
}

}  // namespace sluice::nat
