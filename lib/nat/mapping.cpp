// A new flow's translation: which rule, which outside address and port, and the pair
// that holds it (nf_nat_setup_info's job, for one worker's table).
#include <rte_byteorder.h>

#include "nat/nat_context.h"

namespace sluice::nat {

namespace {

// Paired address pooling (RFC 4787 REQ-2): an inside host keeps one outside address
// for all its flows while that address has ports, so the pool index is a hash of it.
uint32_t pool_start(uint32_t inside_addr, size_t pool_size) {
  return static_cast<uint32_t>((uint64_t(inside_addr * 0x9e3779b1u) * pool_size) >> 32);
}

constexpr unsigned kPoolAddressesTried = 4;  // bounded work when the preferred address is full

}  // namespace

NatContext::Mapped NatContext::map_flow(const Policy& policy, uint16_t in_port, uint16_t out_port,
                                        uint32_t plain_index, const flow::NatTuple4& orig, uint8_t proto,
                                        uint32_t now_ms, bool dnat_possible) {
  Mapped result;
  auto refuse = [&](Drop reason) {
    result.refused = true;
    result.reason = reason;
    return result;
  };

  // Where it really goes: a port forward, an inbound EIM mapping, or where it says.
  const Destination dest = dnat_possible ? destination_of(policy, in_port, orig, proto) : Destination{};
  flow::NatTuple4 reply{};  // as the responder will send it
  reply.src = dest.kind ? dest.addr : orig.dst;
  reply.sport = dest.kind ? dest.port : orig.dport;
  reply.dst = orig.src;
  reply.dport = orig.sport;
  uint8_t kind = dest.kind ? flow::kNatDestination : 0;
  uint16_t rule_id = dest.rule ? dest.rule->id : 0;
  uint16_t slot = kNoSlot;
  EimMapping* mapping = nullptr;
  bool reply_checked = false;  // the allocator found the reply tuple free
  const uint16_t reply_zone = policy.conntrack_zone(out_port);
  // The tuple the source translation sees: after the port forward.
  const flow::NatTuple4 toward{orig.src, reply.src, orig.sport, reply.sport};

  if (dest.kind == Destination::kMapping) {
    // Opened from outside through an endpoint-independent mapping (filtering EIF).
    mapping = eim_by_outside(orig.dst, orig.dport, proto);
    if (!mapping) return refuse(Drop::NatNoPort);
    kind |= flow::kNatEim | flow::kNatInbound;
    rule_id = mapping->rule;
    slot = mapping->slot;
    counters_.eim_inbound.inc();
  } else {
    const bool hairpin = dest.kind == Destination::kForward && dest.rule->hairpin &&
                         policy.zone_id(in_port) == policy.zone_id(out_port);
    const SnatRule* snat = hairpin ? nullptr : policy.match_snat(in_port, out_port, orig.src, reply.src, proto);
    if (hairpin) {
      // An inside host reached an inside server by its public address: the server must
      // answer through us, so the client is hidden behind that public address too.
      const OutsideAddress* outside = policy.outside(orig.dst);
      const int port = allocate_port(policy, outside, orig.dst, 1024, 65535, toward, proto, reply_zone);
      if (port < 0) {
        if (outside && outside->slot != kNoSlot) addresses_[outside->slot].exhausted.inc();
        if (rule_id) rules_[rule_id].no_port.inc();
        counters_.no_port.inc();
        return refuse(Drop::NatNoPort);
      }
      reply.dst = orig.dst;
      reply.dport = static_cast<uint16_t>(port);
      slot = outside ? outside->slot : kNoSlot;
      kind |= flow::kNatSource | flow::kNatHairpin;
      reply_checked = !(outside && outside->eim);
      counters_.hairpinned.inc();
    } else if (snat) {
      rule_id = snat->id;
      // Candidate outside addresses: the egress port's, or the pool's from the inside
      // host's own place in it.
      uint32_t addresses[kPoolAddressesTried];
      uint16_t slots[kPoolAddressesTried];
      unsigned candidates = 0;
      if (snat->masquerade) {
        if (policy.port_address(out_port)) {
          addresses[0] = policy.port_address(out_port);
          slots[0] = policy.port_address_slot(out_port);
          candidates = 1;
        }
      } else if (!snat->pool.empty()) {
        const size_t size = snat->pool.size();
        const uint32_t start = pool_start(orig.src, size);
        for (unsigned k = 0; k < kPoolAddressesTried && k < size; ++k) {
          const size_t at = (start + k) % size;
          addresses[candidates] = snat->pool[at];
          slots[candidates++] = snat->pool_slots[at];
        }
      }
      int port = -1;
      uint32_t address = 0;
      if (snat->eim && (mapping = eim_by_inside(orig.src, orig.sport, proto))) {
        // The inside endpoint is mapped already: every destination sees the same outside one.
        address = mapping->outside_addr;
        port = mapping->outside_port;
        slot = mapping->slot;
        flow::FlowKey4 key;
        flow::make_key4(key, toward.dst, address, toward.dport, static_cast<uint16_t>(port), proto, reply_zone);
        if (flows_.table4().find(key, key.hash()) != flow::kNoEntry) port = -1;
      } else {
        for (unsigned k = 0; k < candidates && port < 0; ++k) {
          const OutsideAddress* outside = policy.outside(addresses[k]);
          port = allocate_port(policy, outside, addresses[k], snat->port_first, snat->port_last, toward, proto,
                               reply_zone);
          if (port >= 0) {
            address = addresses[k];
            slot = slots[k];
          } else if (slots[k] != kNoSlot) {
            addresses_[slots[k]].exhausted.inc();
          }
        }
        if (port >= 0 && snat->eim) {
          mapping = eim_create(orig.src, orig.sport, address, static_cast<uint16_t>(port), proto, rule_id, slot);
          if (!mapping) return refuse(Drop::NatTableFull);
        }
      }
      if (port < 0) {
        rules_[rule_id].no_port.inc();
        counters_.no_port.inc();
        return refuse(Drop::NatNoPort);
      }
      reply.dst = address;
      reply.dport = static_cast<uint16_t>(port);
      kind |= flow::kNatSource;
      if (mapping) kind |= flow::kNatEim;
      else reply_checked = true;
    }
  }
  if (!(kind & (flow::kNatSource | flow::kNatDestination))) return result;  // no rule: untranslated
  // The new flow's reference first: promote() may evict the only pair holding the
  // mapping, which would free it under us.
  if (mapping) ++mapping->refs;
  PairSpec spec{orig, reply, proto, reply_zone, kind, rule_id, slot, 0, reply_checked};
  promote_pair(plain_index, spec, now_ms, result);
  if (result.refused) {
    if (mapping) eim_release(mapping->inside_addr, mapping->inside_port, proto);  // ours back
    if (result.reason == Drop::NatNoPort && rule_id) rules_[rule_id].no_port.inc();
  }
  return result;
}

void NatContext::promote_pair(uint32_t plain_index, const PairSpec& spec, uint32_t now_ms, Mapped& result) {
  flow::FlowKey4 reply_key;
  const flow::NatTuple4& reply = spec.reply;
  const uint8_t reply_sender_slot = static_cast<uint8_t>(
      flow::make_key4(reply_key, reply.src, reply.dst, reply.sport, reply.dport, spec.proto, spec.reply_zone));
  const uint32_t reply_hash = reply_key.hash();
  flow::FlowTable4& table = flows_.table4();
  // A port forward's reply tuple can collide with a flow of its own (the server talking
  // to that client port by itself): Linux would pick another port; this one refuses.
  // (An endpoint-dependent source port was chosen for a free reply tuple already.)
  if (!spec.reply_checked) {
    const uint32_t held = table.find(reply_key, reply_hash);
    if (held != flow::kNoEntry) {
      // A TCP connection that has ended (TIME_WAIT, CLOSE) gives its tuple up, as a SYN
      // reopens such a flow in nf_conntrack: a client reusing its port for a service's
      // other VIP meets the same backend tuple within seconds.
      const flow::FlowEntry4& e = table.at(held);
      const auto state = static_cast<flow::TcpState>(e.body.state);
      if (!spec.reclaim_closed || e.key.proto != 6 ||
          (state != flow::TcpState::TimeWait && state != flow::TcpState::Close)) {
        counters_.no_port.inc();
        result.refused = true;
        result.reason = Drop::NatNoPort;
        return;
      }
      flows_.counters().state_leave(flow::state_slot(e.key.proto, e.body.state));
      flows_.counters().reopened.inc();
      const uint32_t main = flow::main_index(held);
      table.remove(held);
      result.evicted[result.n_evicted++] = main;
    }
  }
  flow::FlowContext& flows = flows_;
  auto on_evict = [&flows, &result](uint32_t victim_index, const flow::FlowEntry4& victim) {
    flows.counters().state_leave(flow::state_slot(victim.key.proto, victim.body.state));
    flows.counters().evicted.inc();
    if (result.n_evicted < 2) result.evicted[result.n_evicted++] = victim_index;
  };
  const uint32_t index = table.promote(plain_index, reply_key, reply_hash, now_ms, on_evict);
  if (index == flow::kNoEntry) {
    counters_.no_room.inc();
    result.refused = true;
    result.reason = Drop::NatTableFull;
    return;
  }
  flow::NatExt4& ext = table.ext(index);
  ext.orig = spec.orig;
  ext.reply = reply;
  ext.rule = spec.rule;
  ext.address_slot = spec.address_slot;
  ext.kind = spec.kind;
  ext.reply_sender_slot = reply_sender_slot;
  ext.backend = spec.backend;
  ext.rewrites = flow::nat_rewrite_bits(ext);
  pair_created(table.at(index), ext);
  result.index = index;
}

}  // namespace sluice::nat
