#include "control/flows.h"

#include <arpa/inet.h>

#include <chrono>
#include <charconv>
#include <thread>

#include "flow/flow_context.h"

namespace sluice::control {

namespace {

constexpr auto kAnswerTimeout = std::chrono::seconds(2);


std::string protocol_name(uint8_t proto) {
  switch (proto) {
    case 6: return "tcp";
    case 17: return "udp";
    case 1: return "icmp";
    case 58: return "icmpv6";
    default: return std::to_string(proto);
  }
}

// The state slots a state word names: "established" is TCP's, "unreplied" and
// "replied" are every generic protocol's, a slot name ("udp_replied") just itself.
uint32_t state_mask(const std::string& word) {
  uint32_t mask = 0;
  for (unsigned slot = 0; slot < flow::kStateSlots; ++slot) {
    std::string_view name = flow::state_slot_name(slot);
    std::string_view bare = name.substr(name.find('_') + 1);  // "tcp_established" -> "established"
    if (name == word || bare == word) mask |= 1u << slot;
  }
  return mask;
}


// Posts one request to a worker and waits for its answer. The caller holds the
// context's control mutex.
bool ask(flow::FlowContext& ctx, flow::FlowMailbox::Op op, const flow::FlowFilter& filter, uint64_t cursor,
         uint32_t limit) {
  flow::FlowMailbox& mb = ctx.mailbox();
  if (mb.pending()) {
    // An earlier request timed out and is still being served: let it finish first.
    auto deadline = std::chrono::steady_clock::now() + kAnswerTimeout;
    while (mb.pending() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (mb.pending()) return false;
  }
  mb.op = op;
  mb.filter = filter;
  mb.cursor = cursor;
  mb.limit = limit;
  mb.records = ctx.page();
  mb.count = 0;
  mb.matched = 0;
  mb.next_cursor = flow::kCursorEnd;
  mb.posted.fetch_add(1, std::memory_order_release);
  auto deadline = std::chrono::steady_clock::now() + kAnswerTimeout;
  while (mb.pending()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return true;
}

nlohmann::json record_json(const flow::FlowRecord& r, unsigned lcore) {
  char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
  const int af = r.family == 4 ? AF_INET : AF_INET6;
  inet_ntop(af, r.src.data(), src, sizeof(src));
  inet_ntop(af, r.dst.data(), dst, sizeof(dst));
  nlohmann::json j = {{"lcore", lcore},
                      {"family", r.family},
                      {"protocol", protocol_name(r.protocol)},
                      {"zone", r.zone},
                      {"src", src},
                      {"dst", dst}};
  if (r.protocol == 6 || r.protocol == 17) {
    j["src_port"] = r.src_port;
    j["dst_port"] = r.dst_port;
  } else if (r.protocol == 1 || r.protocol == 58) {
    j["icmp_id"] = r.src_port;
  }
  j["state"] = std::string(flow::state_name(r.protocol, r.state));
  j["seen_reply"] = bool(r.flags & flow::kFlowSeenReply);
  j["assured"] = bool(r.flags & flow::kFlowAssured);
  j["expires_in_s"] = double(r.expires_in_ms) / 1000.0;
  j["rule"] = r.rule;
  if (r.translated) {
    // The reply tuple, as nf_conntrack prints it: what the responder sends.
    char reply_src[INET_ADDRSTRLEN], reply_dst[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, r.reply_src.data(), reply_src, sizeof(reply_src));
    inet_ntop(AF_INET, r.reply_dst.data(), reply_dst, sizeof(reply_dst));
    nlohmann::json reply = {{"src", reply_src}, {"dst", reply_dst}};
    if (r.protocol == 6 || r.protocol == 17) {
      reply["src_port"] = r.reply_src_port;
      reply["dst_port"] = r.reply_dst_port;
    } else if (r.protocol == 1) {
      reply["icmp_id"] = r.reply_dst_port;
    }
    j["reply"] = std::move(reply);
    nlohmann::json kind = nlohmann::json::array();
    if (r.nat_kind & flow::kNatSource) kind.push_back("snat");
    if (r.nat_kind & flow::kNatDestination) kind.push_back("dnat");
    if (r.nat_kind & flow::kNatEim) kind.push_back("eim");
    if (r.nat_kind & flow::kNatHairpin) kind.push_back("hairpin");
    if (r.nat_kind & flow::kNatLb) kind.push_back("lb");
    j["nat"] = {{"kind", std::move(kind)}, {"rule", r.nat_rule}};
  }
  if (r.tunnel) {
    // ipip: the outer header its packets travel in, to the backend.
    char tunnel_src[INET6_ADDRSTRLEN], tunnel_dst[INET6_ADDRSTRLEN];
    inet_ntop(af, r.tunnel_src.data(), tunnel_src, sizeof(tunnel_src));
    inet_ntop(af, r.tunnel_dst.data(), tunnel_dst, sizeof(tunnel_dst));
    j["tunnel"] = {{"src", tunnel_src}, {"dst", tunnel_dst}};
  }
  return j;
}

bool read_cursor(const std::string& text, size_t workers, size_t& worker, uint64_t& cursor) {
  auto colon = text.find(':');
  uint64_t w;
  if (colon == std::string::npos || workers == 0 || !parse_number(text.substr(0, colon), workers - 1, w) ||
      !parse_number(text.substr(colon + 1), ~uint64_t(0) - 1, cursor))
    return false;
  worker = static_cast<size_t>(w);
  return true;
}

}  // namespace

bool read_flow_filter(const FlowQuery& query, flow::FlowFilter& filter, std::string& error) {
  for (const auto& [key, value] : query) {
    if (key == "address") {
      auto prefix = net::parse_prefix(value, false);
      if (!prefix) {
        error = "address: must be an IPv4 or IPv6 address or prefix, got '" + value + "'";
        return false;
      }
      filter.has_prefix = true;
      filter.prefix = prefix->network();
    } else if (key == "port") {
      uint64_t port;
      if (!parse_number(value, 65535, port)) {
        error = "port: must be 0..65535, got '" + value + "'";
        return false;
      }
      filter.port = static_cast<int>(port);
    } else if (key == "protocol") {
      if (auto proto = parse_protocol(value)) filter.protocol = *proto;
      else {
        error = "protocol: must be tcp, udp, icmp, icmpv6 or 0..255, got '" + value + "'";
        return false;
      }
    } else if (key == "state") {
      filter.state_mask = state_mask(value);
      if (!filter.state_mask) {
        error = "state: unknown state '" + value +
                "' (syn_sent, syn_recv, established, fin_wait, close_wait, last_ack, time_wait, close, syn_sent2, "
                "unreplied, replied, or a slot like udp_replied)";
        return false;
      }
    } else if (key == "zone") {
      uint64_t zone;
      if (!parse_number(value, 65535, zone)) {
        error = "zone: must be 0..65535, got '" + value + "'";
        return false;
      }
      filter.zone = static_cast<int>(zone);
    } else if (key != "limit" && key != "cursor") {
      error = "unknown parameter '" + key + "' (address, port, protocol, state, zone, limit, cursor)";
      return false;
    }
  }
  return true;
}

bool parse_number(const std::string& text, uint64_t max, uint64_t& out) {
  if (text.empty() || text.size() > 20) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && out <= max;
}

std::optional<uint8_t> parse_protocol(const std::string& text) {
  if (text == "tcp") return 6;
  if (text == "udp") return 17;
  if (text == "icmp") return 1;
  if (text == "icmpv6") return 58;
  uint64_t proto;
  if (parse_number(text, 255, proto)) return static_cast<uint8_t>(proto);
  return std::nullopt;
}

bool parse_query_list(const std::string& text, FlowQuery& out, std::string& error) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string pair = text.substr(start, end - start);
    auto eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) {
      error = "parameters must look like key=value,key=value; got '" + pair + "'";
      return false;
    }
    out[pair.substr(0, eq)] = pair.substr(eq + 1);
    start = end + 1;
  }
  return true;
}

bool list_flows(const runtime::Runtime& runtime, const FlowQuery& query, nlohmann::json& out, std::string& error,
                int& status) {
  status = 400;
  flow::FlowFilter filter;
  if (!read_flow_filter(query, filter, error)) return false;
  uint64_t limit = 100;
  if (query.count("limit") && (!parse_number(query.at("limit"), flow::FlowContext::kMaxPage, limit) || limit == 0)) {
    error = "limit: must be 1..10000, got '" + query.at("limit") + "'";
    return false;
  }
  const auto& contexts = runtime.flow_contexts();
  size_t worker = 0;
  uint64_t cursor = 0;
  if (query.count("cursor") && !read_cursor(query.at("cursor"), contexts.size(), worker, cursor)) {
    error = "cursor: not a next_cursor this endpoint gave, got '" + query.at("cursor") + "'";
    return false;
  }
  nlohmann::json flows = nlohmann::json::array();
  nlohmann::json next = nullptr;
  for (; worker < contexts.size(); ++worker, cursor = 0) {
    flow::FlowContext& ctx = *contexts[worker];
    const unsigned lcore = runtime.workers()[worker]->lcore_id();
    const uint32_t want = static_cast<uint32_t>(limit - flows.size());
    std::lock_guard lock(ctx.control_mutex());
    if (!ask(ctx, flow::FlowMailbox::Op::List, filter, cursor, want)) {
      status = 503;
      error = "lcore " + std::to_string(lcore) + " did not answer within 2 s";
      return false;
    }
    const flow::FlowMailbox& mb = ctx.mailbox();
    for (uint32_t i = 0; i < mb.count; ++i) flows.push_back(record_json(ctx.page()[i], lcore));
    if (mb.next_cursor != flow::kCursorEnd) {
      next = std::to_string(worker) + ":" + std::to_string(mb.next_cursor);
      break;
    }
    if (flows.size() >= limit && worker + 1 < contexts.size()) {
      next = std::to_string(worker + 1) + ":0";
      break;
    }
  }
  uint64_t active = 0;
  for (const auto& ctx : contexts) active += ctx->active();
  out = {{"flows", std::move(flows)}, {"next_cursor", next}, {"active", active}};
  out["count"] = out["flows"].size();
  return true;
}

bool flush_flows(const runtime::Runtime& runtime, const FlowQuery& query, nlohmann::json& out, std::string& error,
                 int& status) {
  status = 400;
  flow::FlowFilter filter;
  if (!read_flow_filter(query, filter, error)) return false;
  if (query.count("limit") || query.count("cursor")) {
    error = "flush takes no limit or cursor: it removes every matching flow";
    return false;
  }
  uint64_t flushed = 0;
  const auto& contexts = runtime.flow_contexts();
  for (size_t w = 0; w < contexts.size(); ++w) {
    flow::FlowContext& ctx = *contexts[w];
    std::lock_guard lock(ctx.control_mutex());
    if (!ask(ctx, flow::FlowMailbox::Op::Flush, filter, 0, 0)) {
      status = 503;
      error = "lcore " + std::to_string(runtime.workers()[w]->lcore_id()) + " did not answer within 2 s";
      return false;
    }
    flushed += ctx.mailbox().count;
  }
  out = {{"flushed", flushed}};
  return true;
}

}  // namespace sluice::control
