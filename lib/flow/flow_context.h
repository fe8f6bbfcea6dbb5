// One worker lcore's connection-tracking state: its IPv4 and IPv6 flow tables, the
// clock they share, counters, firewall rule counters, and the mailbox through which
// the control thread lists or flushes flows. Every conntrack stage of the worker uses
// it; only that worker writes it. The control thread reads counters (single-writer
// Counters) and otherwise only talks to it through the mailbox.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "flow/flow_table.h"
#include "net/ip_addr.h"
#include "stats/counter.h"

namespace sluice::flow {

// Gauge slots for flows by state: TCP states first, then the generic ones.
inline constexpr unsigned kTcpStateSlots = static_cast<unsigned>(TcpState::Count);
enum GenericSlot : unsigned {
  kUdpUnreplied = kTcpStateSlots,
  kUdpReplied,
  kIcmpUnreplied,
  kIcmpReplied,
  kOtherUnreplied,
  kOtherReplied,
  kStateSlots
};
inline unsigned state_slot(uint8_t proto, uint8_t state) {
  const unsigned replied = state == static_cast<uint8_t>(GenericState::Replied);
  switch (proto) {
    case 6: return state < kTcpStateSlots ? state : 0;
    case 17: return kUdpUnreplied + replied;
    case 1:
    case 58: return kIcmpUnreplied + replied;
    default: return kOtherUnreplied + replied;
  }
}
std::string_view state_slot_name(unsigned slot);  // "tcp_established", "udp_unreplied", ...
// A flow's state as /flows prints it: the TCP state, or "unreplied"/"replied".
std::string_view state_name(uint8_t proto, uint8_t state);

struct alignas(64) FlowCounters {
  Counter created;
  Counter expired;
  Counter evicted;   // early drop: removed to make room for a new flow
  Counter flushed;   // removed by a flush request
  Counter reopened;  // a SYN reused a closed or TIME_WAIT flow's key
  Counter swept;     // removed at shutdown
  Counter unmapped;  // removed by the nat stage: it found no outside port or room for the translation
  std::array<Counter, kStateSlots> by_state;  // gauges: entries in each state now
  void state_enter(unsigned slot) { by_state[slot].inc(); }
  void state_leave(unsigned slot) { by_state[slot].add(~uint64_t(0)); }  // -1, wrapping
};

// What a listing or flush selects; unset fields match anything.
struct FlowFilter {
  bool has_prefix = false;
  net::IpPrefix prefix;   // either side of the flow
  int port = -1;          // either side, TCP/UDP
  int protocol = -1;
  uint32_t state_mask = 0;  // bits of state slots; 0: any
  int zone = -1;            // conntrack zone
};

// One flow as the control plane sees it: the opener's direction.
struct FlowRecord {
  uint8_t family = 4;
  uint8_t protocol = 0;
  uint8_t state = 0;
  uint8_t flags = 0;
  uint16_t zone = 0;
  uint16_t rule = 0;
  std::array<uint8_t, 16> src{}, dst{};  // network order (IPv4 in the first 4 bytes)
  uint16_t src_port = 0, dst_port = 0;   // host order; ICMP: the identifier as src_port
  int32_t expires_in_ms = 0;
  // A translated flow: the reply tuple as the responder sends it (nf_conntrack's reply
  // tuple), and what translated it.
  bool translated = false;
  uint8_t nat_kind = 0;  // flow::kNat* bits
  uint16_t nat_rule = 0;
  std::array<uint8_t, 16> reply_src{}, reply_dst{};
  uint16_t reply_src_port = 0, reply_dst_port = 0;
  // A load balancer's ipip connection: its packets go inside an outer header from
  // tunnel_src to the backend (tunnel_dst), of the flow's family.
  bool tunnel = false;
  std::array<uint8_t, 16> tunnel_src{}, tunnel_dst{};
};

// Control thread <-> worker. The control thread (one request at a time, it serialises
// itself) fills the request and bumps `posted`; the worker serves it a bounded slice
// per poll round and bumps `served` when done. Results go into caller-owned memory:
// the worker never allocates.
struct FlowMailbox {
  enum class Op : uint8_t { List, Flush };
  // request
  Op op = Op::List;
  FlowFilter filter;
  uint64_t cursor = 0;   // (family 6 ? 1 << 32 : 0) | entry index
  uint32_t limit = 0;
  FlowRecord* records = nullptr;  // room for `limit`
  // response
  uint32_t count = 0;        // records written, or flows flushed
  uint64_t next_cursor = 0;  // kCursorEnd when both tables were walked
  uint32_t matched = 0;

  std::atomic<uint64_t> posted{0};
  std::atomic<uint64_t> served{0};
  bool pending() const { return posted.load(std::memory_order_acquire) != served.load(std::memory_order_relaxed); }
};
inline constexpr uint64_t kCursorEnd = ~uint64_t(0);

class FlowContext {
 public:
  // Null with `error` set when a table's memory cannot be reserved.
  // `nat_capacity`: NAT pairs in the IPv4 table (0: none).
  static std::unique_ptr<FlowContext> create(unsigned worker, uint32_t capacity4, uint32_t capacity6, int socket,
                                             std::string& error, uint32_t nat_capacity = 0);

  FlowTable4& table4() { return *table4_; }
  FlowTable6* table6() { return table6_.get(); }  // null: IPv6 is not tracked (capacity_ipv6 0)
  const FlowTable4& table4() const { return *table4_; }
  const FlowTable6* table6() const { return table6_.get(); }
  FlowCounters& counters() { return counters_; }
  const FlowCounters& counters() const { return counters_; }
  FlowMailbox& mailbox() { return mailbox_; }
  // Control side: one request at a time per worker, into this page buffer (allocated
  // here once, so a request the worker serves late never writes into freed memory).
  static constexpr uint32_t kMaxPage = 10000;
  std::mutex& control_mutex() { return control_mutex_; }
  FlowRecord* page() { return page_.data(); }

  // The worker's clock, set once per poll round (ms, wrapping).
  void set_now(uint32_t now_ms) { now_ms_ = now_ms; }
  uint32_t now() const { return now_ms_; }

  // Worker, every poll round: expire due flows (bounded) and serve the mailbox.
  void service();
  // Worker side of a mailbox request, a bounded slice at a time; public for tests.
  void serve_mailbox(uint32_t budget);
  // Shutdown: empties both tables; with a range, only their scan positions [from,
  // from + count) (a caller that must empty the NAT event ring between chunks).
  uint32_t sweep(uint32_t from = 0, uint32_t count = UINT32_MAX);
  // One past the last scan position of either table.
  uint32_t sweep_extent() const;

  uint32_t active() const { return table4_->active() + (table6_ ? table6_->active() : 0); }
  uint32_t capacity() const {
    return table4_->capacity() + table4_->pair_capacity() + (table6_ ? table6_->capacity() : 0);
  }
  size_t memory_bytes() const { return table4_->memory_bytes() + (table6_ ? table6_->memory_bytes() : 0); }

  // Firewall rule counters, reset by the worker when it first sees a new rule
  // generation (a reload); `rule_generation` says which rules they count.
  static constexpr unsigned kRuleSlots = 4097;  // firewall::kMaxRules + 1
  struct RuleCounter {
    Counter packets;
    Counter bytes;
  };
  std::array<RuleCounter, kRuleSlots>& rule_counters() { return rule_counters_; }
  const std::array<RuleCounter, kRuleSlots>& rule_counters() const { return rule_counters_; }
  std::atomic<uint32_t>& rule_generation() { return rule_generation_; }
  uint32_t rule_generation() const { return rule_generation_.load(std::memory_order_acquire); }

  static constexpr unsigned kExpireBudget = 64;    // entries looked at per poll round
  static constexpr unsigned kMailboxBudget = 8192;  // entries scanned per poll round for a request

 private:
  FlowContext() = default;
  template <typename Table>
  bool serve_table(Table& table, uint8_t family, uint32_t& budget);
  template <typename Entry>
  void account_removed(const Entry& e, Counter& why);

  unsigned worker_ = 0;
  std::unique_ptr<FlowTable4> table4_;
  std::unique_ptr<FlowTable6> table6_;
  FlowCounters counters_;
  FlowMailbox mailbox_;
  std::mutex control_mutex_;
  std::vector<FlowRecord> page_;
  uint32_t now_ms_ = 0;
  std::array<RuleCounter, kRuleSlots> rule_counters_;
  std::atomic<uint32_t> rule_generation_{0};
};

// Whether a flow matches a filter (control-side helpers and the mailbox use it).
bool matches(const FlowFilter& filter, const FlowRecord& record);
template <typename Entry>
FlowRecord record_of(const Entry& e, uint32_t now_ms);
// The same with a pair's translation (`ext` null for an untranslated flow).
FlowRecord record_of(const FlowEntry4& e, const NatExt4* ext, uint32_t now_ms);

}  // namespace sluice::flow
