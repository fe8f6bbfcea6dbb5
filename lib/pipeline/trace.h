// The packet tracer (VPP's `trace add`): the next N packets matching a filter are
// followed through their port's pipeline, and for each the tracer records every stage
// it passed, what that stage decided (its detail), how its headers changed, the cycles
// the stage spent, and where the packet ended: sent, dropped (with the reason) or
// handed on (slow path, another worker, reassembly).
//
// Off, it costs one relaxed load per burst: the worker asks `armed()` before it runs a
// burst and takes the plain path. Armed, the worker runs that burst through
// trace_run(), which runs the same stages one at a time and looks at the traced packets
// between them. Records are few and the mutex is taken once per traced burst, so only
// a tracing worker pays, and only while a trace is armed.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <rte_mbuf.h>

#include "net/ip_addr.h"
#include "pipeline/pipeline.h"
#include "stats/drop.h"

namespace sluice::pipeline {

// What the tracer reads of a frame itself: before parse, and again after each stage.
struct PacketView {
  uint16_t ethertype = 0;  // after VLAN tags
  uint8_t eth_src[6]{}, eth_dst[6]{};
  uint8_t family = 0;      // 4 or 6 when an IP header was read
  uint8_t proto = 0;       // IPv4 protocol / IPv6 next header (after extension headers)
  uint8_t ttl = 0;         // TTL / hop limit
  uint8_t tcp_flags = 0;
  bool fragment = false;
  bool has_ports = false;  // TCP/UDP ports, or ICMP type/code in sport/dport
  net::IpAddr src, dst;
  uint16_t sport = 0, dport = 0;
  bool has_icmp_id = false;  // an echo request or reply: its identifier
  uint16_t icmp_id = 0;
  uint32_t length = 0;     // frame length
};

// False for a frame too short for an Ethernet header. Reads only the first segment,
// every offset checked against its length.
bool view_packet(const rte_mbuf* m, PacketView& v);
// "10.1.0.2:40000 > 10.3.0.2:80 tcp [S] ttl 64 len 74", "arp", "ipv6 ... icmp6 type 128"
std::string view_string(const PacketView& v);
// The MAC addresses: "aa:bb:cc:dd:ee:ff > 11:22:33:44:55:66"
std::string mac_string(const PacketView& v);

// Which packets to trace; unset fields match anything.
struct TraceFilter {
  std::string port;  // ingress port name
  int proto = -1;    // IP protocol number
  std::optional<net::IpPrefix> src, dst, host;  // host: either address
  int sport = -1, dport = -1, l4port = -1;      // l4port: either port
  bool drops_only = false;  // keep only packets that end dropped

  bool matches(const std::string& ingress_port, const PacketView& v) const;
  std::string str() const;  // "port lan proto 6 dst 10.2.0.0/24 (drops only)"
};

enum class TraceOutcome : uint8_t { Passed, Dropped, Left, Sent };
std::string_view outcome_name(TraceOutcome o);  // "passed", "dropped", "left", "sent"

struct TraceStep {
  std::string stage;
  TraceOutcome outcome = TraceOutcome::Passed;
  Drop reason = Drop::TruncatedEthernet;  // when Dropped
  std::string detail;   // what the stage decided, when it says (Stage::describe)
  std::string headers;  // the packet after the stage, when the stage changed it
  uint32_t cycles = 0;  // the stage's cycles for the burst, divided by its packets
  uint16_t burst = 0;   // packets the stage ran on
};

struct TraceRecord {
  uint64_t seq = 0;        // 1, 2, ... within a session
  unsigned lcore = 0;
  std::string port;        // ingress port
  bool handed = false;     // arrived from another worker (steered), starting mid-pipeline
  uint64_t tsc = 0;        // when its burst started
  std::string macs;
  std::string headers;     // as received
  std::vector<TraceStep> steps;
  TraceOutcome outcome = TraceOutcome::Passed;
  Drop reason = Drop::TruncatedEthernet;  // when Dropped
  std::string where;       // the stage it ended at
  std::string egress;      // Sent: the port it left on
};

// One trace at a time, armed by the control thread and filled by the workers.
class TraceSession {
 public:
  // Port names by DPDK port id, for where packets leave.
  explicit TraceSession(std::vector<std::string> port_names) : port_names_(std::move(port_names)) {}

  // Fast path: one relaxed load.
  bool armed() const { return armed_.load(std::memory_order_relaxed); }

  // Control thread. Starts a new session (dropping the last one's records); returns its id.
  uint64_t arm(const TraceFilter& filter, uint32_t count);
  void stop();
  struct Snapshot {
    uint64_t id = 0;
    bool armed = false;
    uint32_t wanted = 0;
    TraceFilter filter;
    uint64_t examined = 0;  // packets the filter looked at
    uint64_t matched = 0;
    std::vector<TraceRecord> records;
  };
  Snapshot snapshot() const;

  // Workers, under trace_run(). begin(): the filter of the armed session, false when none.
  bool begin(TraceFilter& filter, uint64_t& id) const;
  // Keeps what fits; the session disarms itself once it holds `wanted` records.
  void finish(uint64_t id, std::vector<TraceRecord>& records, uint64_t examined, uint64_t matched);
  std::string port_name(uint16_t port_id) const {
    return port_id < port_names_.size() ? port_names_[port_id] : "port " + std::to_string(port_id);
  }

  static constexpr uint32_t kMaxCount = 1000;

 private:
  std::atomic<bool> armed_{false};
  mutable std::mutex mu_;
  uint64_t id_ = 0;
  uint32_t wanted_ = 0;
  TraceFilter filter_;
  uint64_t examined_ = 0, matched_ = 0;
  std::vector<TraceRecord> records_;
  std::vector<std::string> port_names_;
};

// Runs `burst` through `pipeline` from stage `first` as Pipeline::run_from() does,
// recording the packets `session`'s filter matches. `handed`: the burst came from
// another worker's steer stage.
void trace_run(Pipeline& pipeline, Burst& burst, size_t first, TraceSession& session, unsigned lcore, bool handed);

}  // namespace sluice::pipeline
