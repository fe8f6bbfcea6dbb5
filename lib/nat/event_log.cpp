#include "nat/event_log.h"

#include <arpa/inet.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include <rte_byteorder.h>
#include <rte_cycles.h>

#include "flow/flow_context.h"

namespace sluice::nat {

namespace {

std::string ip(uint32_t addr_net) {
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr_net, text, sizeof(text));
  return text;
}

const char* protocol_name(uint8_t proto) {
  switch (proto) {
    case 6: return "tcp";
    case 17: return "udp";
    case 1: return "icmp";
    default: return nullptr;
  }
}

}  // namespace

std::unique_ptr<EventLog> EventLog::open(const std::string& path, std::string& error) {
  std::unique_ptr<EventLog> log(new EventLog());
  log->path_ = path;
  log->file_ = std::fopen(path.c_str(), "a");
  if (!log->file_) {
    error = "nat.log.file: cannot open '" + path + "' for appending: " + std::strerror(errno);
    return nullptr;
  }
  log->tsc_hz_ = rte_get_tsc_hz();
  log->start_tsc_ = rte_rdtsc();
  log->start_unix_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  return log;
}

EventLog::~EventLog() {
  if (file_) {
    drain();
    std::fclose(file_);
  }
}

// One line per event, fields space-separated and named (for grep and awk), the tuples
// as conntrack -E prints them:
// 2026-12-06T22:41:07.123Z created worker=0 rule=1 proto=udp orig=10.0.0.2:5353->192.0.2.1:53
//   reply=192.0.2.1:53->198.51.100.1:40123 kind=snat
uint64_t EventLog::drain() {
  NatEvent batch[256];
  uint64_t n_total = 0;
  for (EventRing* ring : rings_) {
    for (;;) {
      const uint32_t n = ring->pop(batch, 256);
      for (uint32_t i = 0; i < n; ++i) {
        const NatEvent& e = batch[i];
        const int64_t ns = start_unix_ns_ + static_cast<int64_t>((static_cast<int64_t>(e.tsc - start_tsc_)) *
                                                                  1e9 / static_cast<double>(tsc_hz_));
        const std::time_t seconds = static_cast<std::time_t>(ns / 1000000000);
        std::tm tm{};
        gmtime_r(&seconds, &tm);
        char when[40];
        std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        const char* proto = protocol_name(e.protocol);
        std::string kind;
        if (e.kind & 0x01) kind += "snat";
        if (e.kind & 0x02) kind += kind.empty() ? "dnat" : "+dnat";
        if (e.kind & 0x04) kind += "+eim";
        if (e.kind & 0x08) kind += "+hairpin";
        std::fprintf(file_, "%s.%03dZ %s worker=%u rule=%u proto=%s orig=%s:%u->%s:%u reply=%s:%u->%s:%u kind=%s\n",
                     when, static_cast<int>((ns / 1000000) % 1000), e.created ? "created" : "removed", e.worker, e.rule,
                     proto ? proto : std::to_string(e.protocol).c_str(), ip(e.orig_src).c_str(),
                     rte_be_to_cpu_16(e.orig_sport), ip(e.orig_dst).c_str(), rte_be_to_cpu_16(e.orig_dport),
                     ip(e.reply_src).c_str(), rte_be_to_cpu_16(e.reply_sport), ip(e.reply_dst).c_str(),
                     rte_be_to_cpu_16(e.reply_dport), kind.empty() ? "none" : kind.c_str());
      }
      n_total += n;
      if (n < 256) break;
    }
  }
  if (n_total) std::fflush(file_);
  written_ += n_total;
  return n_total;
}

uint32_t sweep_logged(flow::FlowContext& flows, EventLog* log) {
  // Half a ring of scan positions: at most that many pairs, one removal event each.
  constexpr uint32_t kChunk = EventRing::kSize / 2;
  uint32_t removed = 0;
  const uint32_t end = flows.sweep_extent();
  for (uint32_t from = 0; from < end; from += kChunk) {
    removed += flows.sweep(from, kChunk);
    if (log) log->drain();
  }
  return removed;
}

}  // namespace sluice::nat
