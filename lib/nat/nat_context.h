// One worker lcore's NAT state: the port allocator (over its own share of every outside
// address's ports), the endpoint-independent mappings, the reassembly of fragments, the
// counters, and the event ring. Owned and written by that worker only; the control
// thread reads counters and drains the event ring.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <rte_hash.h>

#include "config/config.h"
#include "flow/flow_context.h"
#include "nat/event_log.h"
#include "nat/policy.h"
#include "nat/reassembly.h"
#include "stats/counter.h"

namespace sluice::nat {

// Counters of one worker's NAT, described where the stats print them (lib/control).
struct alignas(64) NatCounters {
  Counter mappings_created;    // translated flows made
  Counter mappings_removed;    // ... gone (expired, evicted, flushed, closed, swept)
  Counter no_port;             // a new flow found no free outside port (dropped: nat_no_port)
  Counter no_room;             // ... no room for its translation (dropped: nat_table_full)
  Counter eim_created;         // endpoint-independent mappings made
  Counter eim_removed;
  Counter eim_inbound;         // flows opened from outside through an EIM mapping
  Counter hairpinned;          // port-forwarded flows from the inside, source translated too
  Counter icmp_errors;         // ICMP errors translated (outer and quoted headers)
  Counter nptv6_translated;    // IPv6 packets whose prefix was translated
};

// Per outside address, per worker: how its ports are used.
struct AddressCounters {
  Counter in_use;     // gauge: translated flows holding one of its ports
  Counter allocated;  // ports handed out since start
  Counter exhausted;  // new flows refused: none of this worker's ports was free
};

struct RuleCounters {
  Counter translated;  // flows the rule translated
  Counter no_port;     // flows it refused for want of a port
};

// What destination a new connection really has: a port forward or an inbound
// endpoint-independent mapping sends it elsewhere (the firewall and the egress
// lookup see this one). Addresses network order.
struct Destination {
  enum Kind : uint8_t { kNone = 0, kForward, kMapping, kService };
  Kind kind = kNone;
  uint32_t addr = 0;
  uint16_t port = 0;  // network order ("port" as the flow key has it)
  const DnatRule* rule = nullptr;
  uint16_t backend = 0;  // kService: the load balancer's pick, an index in its service (lib/lb)
};

// One endpoint-independent mapping (RFC 4787 EIM): inside endpoint <-> outside endpoint.
struct EimMapping {
  uint32_t inside_addr = 0, outside_addr = 0;  // network order
  uint16_t inside_port = 0, outside_port = 0;  // network order
  uint8_t protocol = 0;
  uint16_t rule = 0;
  uint16_t slot = kNoSlot;
  uint32_t refs = 0;  // flows using it; the mapping goes with the last one
  uint32_t next_free = 0;
};

class NatContext {
 public:
  // Null with `error` set when memory cannot be reserved.
  static std::unique_ptr<NatContext> create(unsigned worker, unsigned workers, const config::NatConfig& config,
                                            flow::FlowContext& flows, int socket, std::string& error);
  ~NatContext();
  NatContext(const NatContext&) = delete;
  NatContext& operator=(const NatContext&) = delete;

  unsigned worker() const { return worker_; }
  unsigned workers() const { return workers_; }
  flow::FlowContext& flows() { return flows_; }
  NatCounters& counters() { return counters_; }
  const NatCounters& counters() const { return counters_; }
  AddressCounters& address(uint16_t slot) { return addresses_[slot]; }
  const AddressCounters& address(uint16_t slot) const { return addresses_[slot]; }
  Reassembler& reassembler() { return *reassembler_; }
  const Reassembler& reassembler() const { return *reassembler_; }
  EventRing* events() { return events_.get(); }  // null: no event log
  const EventRing* events() const { return events_.get(); }
  void enable_events() {
    if (!events_) events_ = std::make_unique<EventRing>();
  }

  // Rule counters, reset (as the firewall's) when the worker first sees a new policy.
  std::array<RuleCounters, config::kMaxNatRules + 1>& rules() { return rules_; }
  const std::array<RuleCounters, config::kMaxNatRules + 1>& rules() const { return rules_; }
  uint32_t rule_generation() const { return rule_generation_.load(std::memory_order_acquire); }
  void see_policy(const Policy& policy) {
    if (policy.generation() == rule_generation_.load(std::memory_order_relaxed)) [[likely]]
      return;
    for (auto& r : rules_) {
      r.translated.reset();
      r.no_port.reset();
    }
    rule_generation_.store(policy.generation(), std::memory_order_release);
  }

  // Where a new connection goes (port forward, or an inbound EIM mapping); `tuple` as
  // the packet carries it (ports network order, as the flow key has them).
  Destination destination_of(const Policy& policy, uint16_t in_port, const flow::NatTuple4& tuple, uint8_t proto) const;

  // An outside port for a new flow from `inside` (src side of `tuple`) to `remote` (its
  // dst side, after any port forward), on `outside_addr`, in [first, last], owned by this
  // worker; network order, or -1 when none is free within the probe bound. EDM: free
  // when the reply key is not in the flow table; EIM: when no mapping holds it.
  int allocate_port(const Policy& policy, const OutsideAddress* outside, uint32_t outside_addr, uint16_t first,
                    uint16_t last, const flow::NatTuple4& tuple, uint8_t proto, uint16_t reply_zone);
  // The reply key of flow `tuple` with its source translated to `outside_addr`:`port`
  // (network order): what allocate_port (EDM) finds free or taken.
  static flow::FlowKey4 reply_key_for(const flow::NatTuple4& tuple, uint32_t outside_addr, uint16_t port,
                                      uint8_t proto, uint16_t reply_zone) {
    flow::FlowKey4 key;
    flow::make_key4(key, tuple.dst, outside_addr, tuple.dport, port, proto, reply_zone);
    return key;
  }

  // Makes the translation of a new flow: `plain_index` is its entry (conntrack just made
  // it), `orig` its tuple as the opener sent it, `out_port` where conntrack found it
  // leaves. Matches the rules (port forward, then source NAT, or hairpin), allocates an
  // outside port and turns the entry into a pair. `index` is the pair; kNoEntry with
  // `refused` false when no rule applies (the flow stays untranslated), with `refused`
  // true when it cannot be translated (`reason`; the caller drops the packet and the
  // entry).
  // `evicted`: entries removed to make room (their packets later in a burst have no flow).
  struct Mapped {
    uint32_t index = flow::kNoEntry;
    bool refused = false;
    Drop reason = Drop::NatNoPort;
    uint32_t evicted[3] = {flow::kNoEntry, flow::kNoEntry, flow::kNoEntry};
    unsigned n_evicted = 0;
  };
  // `dnat_possible` false: conntrack already found that no port forward or inbound EIM
  // mapping takes it (no second look).
  Mapped map_flow(const Policy& policy, uint16_t in_port, uint16_t out_port, uint32_t plain_index,
                  const flow::NatTuple4& orig, uint8_t proto, uint32_t now_ms, bool dnat_possible = true);

  // What promote_pair makes of a plain entry: its two tuples and what the pair records.
  struct PairSpec {
    flow::NatTuple4 orig, reply;
    uint8_t proto;
    uint16_t reply_zone;   // conntrack zone of the reply key
    uint8_t kind;          // flow::kNat*
    uint16_t rule;         // NAT rule id, or the load balancer's service slot (kNatLb)
    uint16_t address_slot; // the outside address's usage slot, kNoSlot none
    uint16_t backend;      // the load balancer's backend slot (kNatLb)
    bool reply_checked;    // the allocator found the reply tuple free already
    bool reclaim_closed = false;  // an ended TCP flow holding the reply tuple gives it up
  };
  // Turns plain entry `plain_index` into the pair `spec` describes (map_flow's last step,
  // also the load balancer's): `result` gets the pair, or refused with its reason, and the
  // entries evicted for room.
  void promote_pair(uint32_t plain_index, const PairSpec& spec, uint32_t now_ms, Mapped& result);

  // The load balancer's accounting of its pairs' ends (lib/lb sits beside lib/nat).
  using LbPairObserver = void (*)(void* user, const flow::NatPair4& pair);
  void set_lb_observer(LbPairObserver observer, void* user) {
    lb_observer_ = observer;
    lb_observer_user_ = user;
  }
  // The same for IPv6 load-balanced connections (plain IPv6 entries flagged kFlowLb):
  // told straight by the IPv6 table, until this context goes.
  void set_lb6_observer(flow::FlowTable6::EntryObserver observer, void* user) {
    if (flows_.table6()) flows_.table6()->set_entry_observer(observer, user);
  }

  // Endpoint-independent mappings.
  EimMapping* eim_by_inside(uint32_t addr, uint16_t port, uint8_t proto) const;
  EimMapping* eim_by_outside(uint32_t addr, uint16_t port, uint8_t proto) const;
  EimMapping* eim_create(uint32_t inside_addr, uint16_t inside_port, uint32_t outside_addr, uint16_t outside_port,
                         uint8_t proto, uint16_t rule, uint16_t slot);
  uint32_t eim_active() const { return eim_active_; }

  // The worker, every poll round: fragments that waited too long.
  void service(uint64_t now_tsc) { reassembler_->expire(now_tsc); }
  // Every pair the flow table removes comes through here (flow::FlowTable's observer).
  static void pair_removed(void* self, const flow::NatPair4& pair);
  // Accounts a pair just made (counters, event log).
  void pair_created(const flow::FlowEntry4& main, const flow::NatExt4& ext);

  static constexpr unsigned kMaxProbes = 128;

 private:
  NatContext(flow::FlowContext& flows) : flows_(flows) {}
  void eim_release(uint32_t inside_addr, uint16_t inside_port, uint8_t proto);
  void log_event(const flow::FlowEntry4& main, const flow::NatExt4& ext, bool created);
  uint32_t random() {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return static_cast<uint32_t>(rng_);
  }

  unsigned worker_ = 0;
  unsigned workers_ = 1;
  flow::FlowContext& flows_;
  NatCounters counters_;
  std::unique_ptr<Reassembler> reassembler_;
  std::unique_ptr<EventRing> events_;
  std::array<AddressCounters, config::kMaxNatAddresses> addresses_{};
  std::array<RuleCounters, config::kMaxNatRules + 1> rules_{};
  std::atomic<uint32_t> rule_generation_{0};
  uint64_t rng_ = 0x9e3779b97f4a7c15ull;
  LbPairObserver lb_observer_ = nullptr;
  void* lb_observer_user_ = nullptr;
  // EIM: mappings in a fixed pool, found by either endpoint through two rte_hash tables.
  rte_hash* eim_inside_ = nullptr;
  rte_hash* eim_outside_ = nullptr;
  EimMapping* eim_ = nullptr;
  uint32_t eim_capacity_ = 0;
  uint32_t eim_free_ = 0;
  uint32_t eim_active_ = 0;
};

}  // namespace sluice::nat
