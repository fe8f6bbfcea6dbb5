#include "flow/flow_context.h"

#include <type_traits>

#include <rte_byteorder.h>

namespace sluice::flow {

namespace {

constexpr uint8_t kProtoTcp = 6, kProtoUdp = 17, kProtoIcmp = 1, kProtoIcmpv6 = 58;

template <typename Key>
void addresses_of(const Key& key, unsigned slot, uint8_t family, std::array<uint8_t, 16>& out) {
  out.fill(0);
  if constexpr (sizeof(key.addr[0]) == 4) {
    (void)family;
    std::memcpy(out.data(), &key.addr[slot], 4);
  } else {
    std::memcpy(out.data(), key.addr[slot], 16);
  }
}

}  // namespace

std::string_view state_slot_name(unsigned slot) {
  static constexpr std::string_view kTcp[kTcpStateSlots] = {
      "tcp_none",      "tcp_syn_sent", "tcp_syn_recv", "tcp_established", "tcp_fin_wait",
      "tcp_close_wait", "tcp_last_ack", "tcp_time_wait", "tcp_close",      "tcp_syn_sent2"};
  if (slot < kTcpStateSlots) return kTcp[slot];
  switch (slot) {
    case kUdpUnreplied: return "udp_unreplied";
    case kUdpReplied: return "udp_replied";
    case kIcmpUnreplied: return "icmp_unreplied";
    case kIcmpReplied: return "icmp_replied";
    case kOtherUnreplied: return "other_unreplied";
    case kOtherReplied: return "other_replied";
    default: return "unknown";
  }
}

std::string_view state_name(uint8_t proto, uint8_t state) {
  if (proto == kProtoTcp) return tcp_state_name(static_cast<TcpState>(state));
  return state == static_cast<uint8_t>(GenericState::Replied) ? "replied" : "unreplied";
}

template <typename Entry>
FlowRecord record_of(const Entry& e, uint32_t now_ms) {
  FlowRecord r;
  const unsigned opener = (e.body.flags & kFlowOpenerSlot1) ? 1 : 0;
  r.family = sizeof(e.key.addr[0]) == 4 ? 4 : 6;
  r.protocol = e.key.proto;
  r.state = e.body.state;
  r.flags = e.body.flags;
  r.zone = e.key.zone;
  r.rule = e.body.rule;
  addresses_of(e.key, opener, r.family, r.src);
  addresses_of(e.key, opener ^ 1, r.family, r.dst);
  r.src_port = rte_be_to_cpu_16(e.key.port[opener]);
  r.dst_port = rte_be_to_cpu_16(e.key.port[opener ^ 1]);
  r.expires_in_ms = ms_diff(e.body.expires, now_ms);
  if constexpr (std::is_same_v<Entry, FlowEntry6>) {
    if ((e.body.flags & kFlowLb) && e.lb.service != kLbUnopened) {
      r.tunnel = true;
      std::memcpy(r.tunnel_src.data(), e.lb.tunnel_src, 16);
      std::memcpy(r.tunnel_dst.data(), e.lb.backend, 16);
    }
  }
  return r;
}
template FlowRecord record_of<FlowEntry4>(const FlowEntry4&, uint32_t);
template FlowRecord record_of<FlowEntry6>(const FlowEntry6&, uint32_t);

FlowRecord record_of(const FlowEntry4& e, const NatExt4* ext, uint32_t now_ms) {
  FlowRecord r = record_of(e, now_ms);
  if (!ext) return r;
  r.translated = true;
  r.nat_kind = ext->kind;
  r.nat_rule = ext->rule;
  std::memcpy(r.reply_src.data(), &ext->reply.src, 4);
  std::memcpy(r.reply_dst.data(), &ext->reply.dst, 4);
  r.reply_src_port = rte_be_to_cpu_16(ext->reply.sport);
  r.reply_dst_port = rte_be_to_cpu_16(ext->reply.dport);
  if (ext->kind & kNatTunnel) {
    r.tunnel = true;
    std::memcpy(r.tunnel_src.data(), &ext->tunnel_src, 4);
    std::memcpy(r.tunnel_dst.data(), &ext->reply.src, 4);
  }
  return r;
}

bool matches(const FlowFilter& f, const FlowRecord& r) {
  if (f.protocol >= 0 && r.protocol != f.protocol) return false;
  if (f.zone >= 0 && r.zone != f.zone) return false;
  if (f.state_mask && !(f.state_mask & (1u << state_slot(r.protocol, r.state)))) return false;
  // Either side of either tuple: a translated flow is found by its outside address too.
  if (f.port >= 0) {
    const bool has_ports = r.protocol == kProtoTcp || r.protocol == kProtoUdp;
    const bool any = r.src_port == f.port || r.dst_port == f.port ||
                     (r.translated && (r.reply_src_port == f.port || r.reply_dst_port == f.port));
    if (!has_ports || !any) return false;
  }
  if (f.has_prefix) {
    if (f.prefix.addr.family != r.family) return false;
    auto in = [&](const std::array<uint8_t, 16>& a) {
      net::IpAddr addr{r.family, {}};
      std::memcpy(addr.bytes.data(), a.data(), 16);
      return f.prefix.contains(addr);
    };
    if (!in(r.src) && !in(r.dst) && !(r.translated && (in(r.reply_src) || in(r.reply_dst)))) return false;
  }
  return true;
}

std::unique_ptr<FlowContext> FlowContext::create(unsigned worker, uint32_t capacity4, uint32_t capacity6, int socket,
                                                 std::string& error, uint32_t nat_capacity) {
  std::unique_ptr<FlowContext> ctx(new FlowContext());
  ctx->worker_ = worker;
  ctx->page_.resize(kMaxPage);
  const std::string base = "sl_flows" + std::to_string(worker);
  ctx->table4_ = FlowTable4::create(capacity4, socket, base + "v4", error, nat_capacity);
  if (!ctx->table4_) return nullptr;
  if (capacity6) {
    ctx->table6_ = FlowTable6::create(capacity6, socket, base + "v6", error);
    if (!ctx->table6_) return nullptr;
  }
  return ctx;
}

template <typename Entry>
void FlowContext::account_removed(const Entry& e, Counter& why) {
  counters_.state_leave(state_slot(e.key.proto, e.body.state));
  why.inc();
}

void FlowContext::service() {
  auto on_expire4 = [this](const FlowEntry4& e) { account_removed(e, counters_.expired); };
  table4_->expire(now_ms_, kExpireBudget, on_expire4);
  if (table6_) {
    auto on_expire6 = [this](const FlowEntry6& e) { account_removed(e, counters_.expired); };
    table6_->expire(now_ms_, kExpireBudget, on_expire6);
  }
  if (mailbox_.pending()) [[unlikely]]
    serve_mailbox(kMailboxBudget);
}

template <typename Table>
bool FlowContext::serve_table(Table& table, uint8_t family, uint32_t& budget) {
  FlowMailbox& mb = mailbox_;
  const uint64_t family_bit = family == 6 ? uint64_t(1) << 32 : 0;
  uint32_t from = static_cast<uint32_t>(mb.cursor);
  bool full = false;
  auto visit = [&](uint32_t index, auto& entry) {
    FlowRecord r;
    if constexpr (Table::kPairs) r = record_of(entry, is_pair(index) ? &table.ext(index) : nullptr, now_ms_);
    else r = record_of(entry, now_ms_);
    if (!matches(mb.filter, r)) return true;
    ++mb.matched;
    if (mb.op == FlowMailbox::Op::Flush) {
      account_removed(entry, counters_.flushed);
      table.remove(index);
      ++mb.count;
      return true;
    }
    if (mb.count == mb.limit) {
      full = true;
      return false;
    }
    mb.records[mb.count++] = r;
    return true;
  };
  const uint32_t scanned_before = from;
  uint32_t next = table.scan(from, budget, visit);
  const uint32_t used = next - scanned_before;
  budget = used >= budget ? 0 : budget - used;
  if (full) {
    // The record that did not fit is the next page's first: step back onto it.
    mb.cursor = family_bit | (next - 1);
    mb.next_cursor = mb.cursor;
    return true;  // finished: the page is full
  }
  mb.cursor = family_bit | next;
  return false;
}

void FlowContext::serve_mailbox(uint32_t budget) {
  FlowMailbox& mb = mailbox_;
  const uint64_t posted = mb.posted.load(std::memory_order_acquire);
  bool finished = false;
  while (budget > 0 && !finished) {
    const bool in_v6 = mb.cursor >> 32;
    if (!in_v6) {
      if (serve_table(*table4_, 4, budget)) {
        finished = true;
      } else if (static_cast<uint32_t>(mb.cursor) >= table4_->scan_end()) {
        mb.cursor = uint64_t(1) << 32;  // on to IPv6
      }
    } else {
      if (!table6_ || static_cast<uint32_t>(mb.cursor) >= table6_->scan_end()) {
        mb.next_cursor = kCursorEnd;
        finished = true;
      } else if (serve_table(*table6_, 6, budget)) {
        finished = true;
      } else if (static_cast<uint32_t>(mb.cursor) >= table6_->scan_end()) {
        mb.next_cursor = kCursorEnd;
        finished = true;
      }
    }
  }
  if (finished) mb.served.store(posted, std::memory_order_release);
}

uint32_t FlowContext::sweep(uint32_t from, uint32_t count) {
  const uint32_t to = count > UINT32_MAX - from ? UINT32_MAX : from + count;
  uint32_t n = table4_->sweep([this](const FlowEntry4& e) { account_removed(e, counters_.swept); }, from, to);
  if (table6_) n += table6_->sweep([this](const FlowEntry6& e) { account_removed(e, counters_.swept); }, from, to);
  return n;
}

uint32_t FlowContext::sweep_extent() const {
  const uint32_t four = table4_->scan_end(), six = table6_ ? table6_->scan_end() : 0;
  return four > six ? four : six;
}

}  // namespace sluice::flow
