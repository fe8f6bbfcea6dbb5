#include "pipeline/trace.h"

#include <cstdio>
#include <cstring>

#include <rte_cycles.h>

namespace sluice::pipeline {

namespace {

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

bool is_ipv6_ext(uint8_t next) { return next == 0 || next == 43 || next == 60 || next == 135; }

// The L4 part of a view, once `l4` (len bytes) holds the upper-layer header.
void view_l4(PacketView& v, const uint8_t* l4, uint32_t len) {
  if ((v.proto == 6 || v.proto == 17) && len >= 4) {
    v.has_ports = true;
    v.sport = be16(l4);
    v.dport = be16(l4 + 2);
    if (v.proto == 6 && len >= 14) v.tcp_flags = l4[13];
  } else if ((v.proto == 1 || v.proto == 58) && len >= 2) {
    v.has_ports = true;
    v.sport = l4[0];  // type
    v.dport = l4[1];  // code
    const bool echo = v.proto == 1 ? (l4[0] == 8 || l4[0] == 0) : (l4[0] == 128 || l4[0] == 129);
    if (echo && len >= 6) {
      v.has_icmp_id = true;
      v.icmp_id = be16(l4 + 4);  // what NAT translates in place of a port
    }
  }
}

std::string proto_name(uint8_t proto) {
  switch (proto) {
    case 1: return "icmp";
    case 6: return "tcp";
    case 17: return "udp";
    case 58: return "icmp6";
    case 47: return "gre";
    case 4: return "ipip";
    case 41: return "ipv6-in-ip";
    default: return "proto " + std::to_string(proto);
  }
}

std::string tcp_flags_string(uint8_t f) {
  std::string s;
  if (f & 0x02) s += 'S';
  if (f & 0x01) s += 'F';
  if (f & 0x04) s += 'R';
  if (f & 0x08) s += 'P';
  if (f & 0x10) s += '.';
  if (f & 0x20) s += 'U';
  return s.empty() ? "none" : s;
}

std::string endpoint(const net::IpAddr& a, bool ports, uint16_t port) {
  std::string s;
  if (ports && a.family == 6) s += '[';
  s += a.str();
  if (!ports) return s;
  if (a.family == 6) s += ']';
  s += ':';
  s += std::to_string(port);
  return s;
}

bool port_matches(int want, uint16_t got, bool has) { return want < 0 || (has && got == want); }

}  // namespace

bool view_packet(const rte_mbuf* m, PacketView& v) {
  v = PacketView{};
  const uint8_t* p = rte_pktmbuf_mtod(m, const uint8_t*);
  const uint32_t len = rte_pktmbuf_data_len(m);
  v.length = rte_pktmbuf_pkt_len(m);
  if (len < 14) return false;
  std::memcpy(v.eth_dst, p, 6);
  std::memcpy(v.eth_src, p + 6, 6);
  uint32_t off = 12;
  uint16_t type = be16(p + off);
  for (int tags = 0; (type == 0x8100 || type == 0x88a8) && tags < 2 && off + 6 <= len; ++tags) {
    off += 4;
    type = be16(p + off);
  }
  v.ethertype = type;
  off += 2;
  if (type == 0x0800 && off + 20 <= len && (p[off] >> 4) == 4) {
    const uint32_t ihl = (p[off] & 0xf) * 4u;
    v.family = 4;
    v.proto = p[off + 9];
    v.ttl = p[off + 8];
    uint32_t a, b;
    std::memcpy(&a, p + off + 12, 4);
    std::memcpy(&b, p + off + 16, 4);
    v.src = net::IpAddr::v4(rte_be_to_cpu_32(a));
    v.dst = net::IpAddr::v4(rte_be_to_cpu_32(b));
    const uint16_t frag = be16(p + off + 6);
    v.fragment = (frag & 0x3fff) != 0;
    if ((frag & 0x1fff) == 0 && ihl >= 20 && off + ihl <= len) view_l4(v, p + off + ihl, len - off - ihl);
  } else if (type == 0x86dd && off + 40 <= len && (p[off] >> 4) == 6) {
    v.family = 6;
    v.ttl = p[off + 7];
    v.src = net::IpAddr::v6(p + off + 8);
    v.dst = net::IpAddr::v6(p + off + 24);
    uint8_t next = p[off + 6];
    uint32_t at = off + 40;
    // A few extension headers, each length checked; a fragment header ends the walk
    // unless it is a first fragment.
    for (int hops = 0; is_ipv6_ext(next) || next == 44; ++hops) {
      if (hops == 8 || at + 8 > len) {
        next = 59;  // unreadable: "no next header" in the view
        break;
      }
      if (next == 44) {
        v.fragment = true;
        const bool first = (be16(p + at + 2) & 0xfff8) == 0;
        next = p[at];
        at += 8;
        if (!first) break;
        continue;
      }
      const uint32_t ext = (p[at + 1] + 1u) * 8u;
      next = p[at];
      at += ext;
    }
    v.proto = next;
    if (at <= len && !(v.fragment && at == 0)) view_l4(v, p + at, len - at);
  }
  return true;
}

std::string view_string(const PacketView& v) {
  std::string s;
  if (v.family == 0) {
    char buf[32];
    if (v.ethertype == 0x0806) s = "arp";
    else {
      std::snprintf(buf, sizeof(buf), "ethertype 0x%04x", v.ethertype);
      s = buf;
    }
  } else {
    const bool ports = v.has_ports && (v.proto == 6 || v.proto == 17);
    s = endpoint(v.src, ports, v.sport) + " > " + endpoint(v.dst, ports, v.dport) + " " + proto_name(v.proto);
    if (v.proto == 6 && v.has_ports) s += " [" + tcp_flags_string(v.tcp_flags) + "]";
    if ((v.proto == 1 || v.proto == 58) && v.has_ports)
      s += " type " + std::to_string(v.sport) + " code " + std::to_string(v.dport) +
           (v.has_icmp_id ? " id " + std::to_string(v.icmp_id) : "");
    if (v.fragment) s += " fragment";
    s += (v.family == 4 ? " ttl " : " hlim ") + std::to_string(v.ttl);
  }
  s += " len " + std::to_string(v.length);
  return s;
}

std::string mac_string(const PacketView& v) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x > %02x:%02x:%02x:%02x:%02x:%02x", v.eth_src[0],
                v.eth_src[1], v.eth_src[2], v.eth_src[3], v.eth_src[4], v.eth_src[5], v.eth_dst[0], v.eth_dst[1],
                v.eth_dst[2], v.eth_dst[3], v.eth_dst[4], v.eth_dst[5]);
  return buf;
}

bool TraceFilter::matches(const std::string& ingress_port, const PacketView& v) const {
  if (!port.empty() && port != ingress_port) return false;
  const bool ip = v.family != 0;
  if (proto >= 0 && (!ip || v.proto != proto)) return false;
  if (src && (!ip || !src->contains(v.src))) return false;
  if (dst && (!ip || !dst->contains(v.dst))) return false;
  if (host && (!ip || (!host->contains(v.src) && !host->contains(v.dst)))) return false;
  const bool ports = v.has_ports && (v.proto == 6 || v.proto == 17);
  if (!port_matches(sport, v.sport, ports) || !port_matches(dport, v.dport, ports)) return false;
  if (l4port >= 0 && !(ports && (v.sport == l4port || v.dport == l4port))) return false;
  return true;
}

std::string TraceFilter::str() const {
  std::string s;
  auto add = [&s](const std::string& part) { s += (s.empty() ? "" : " ") + part; };
  if (!port.empty()) add("port " + port);
  if (proto >= 0) add("proto " + proto_name(static_cast<uint8_t>(proto)));
  if (src) add("src " + src->str());
  if (dst) add("dst " + dst->str());
  if (host) add("host " + host->str());
  if (sport >= 0) add("sport " + std::to_string(sport));
  if (dport >= 0) add("dport " + std::to_string(dport));
  if (l4port >= 0) add("l4port " + std::to_string(l4port));
  if (s.empty()) s = "every packet";
  if (drops_only) s += " (drops only)";
  return s;
}

std::string_view outcome_name(TraceOutcome o) {
  switch (o) {
    case TraceOutcome::Passed: return "passed";
    case TraceOutcome::Dropped: return "dropped";
    case TraceOutcome::Left: return "left";
    case TraceOutcome::Sent: return "sent";
  }
  return "?";
}

// ---------------------------------------------------------------- session

uint64_t TraceSession::arm(const TraceFilter& filter, uint32_t count) {
  std::lock_guard lock(mu_);
  ++id_;
  filter_ = filter;
  wanted_ = count < 1 ? 1 : (count > kMaxCount ? kMaxCount : count);
  examined_ = matched_ = 0;
  records_.clear();
  armed_.store(true, std::memory_order_release);
  return id_;
}

void TraceSession::stop() {
  std::lock_guard lock(mu_);
  armed_.store(false, std::memory_order_release);
}

TraceSession::Snapshot TraceSession::snapshot() const {
  std::lock_guard lock(mu_);
  return Snapshot{id_, armed_.load(std::memory_order_relaxed), wanted_, filter_, examined_, matched_, records_};
}

bool TraceSession::begin(TraceFilter& filter, uint64_t& id) const {
  std::lock_guard lock(mu_);
  if (!armed_.load(std::memory_order_relaxed)) return false;
  filter = filter_;
  id = id_;
  return true;
}

void TraceSession::finish(uint64_t id, std::vector<TraceRecord>& records, uint64_t examined, uint64_t matched) {
  std::lock_guard lock(mu_);
  if (id != id_) return;  // re-armed meanwhile: these belong to the old session
  examined_ += examined;
  matched_ += matched;
  if (!armed_.load(std::memory_order_relaxed)) return;
  for (auto& r : records) {
    if (records_.size() >= wanted_) break;
    r.seq = records_.size() + 1;
    records_.push_back(std::move(r));
  }
  if (records_.size() >= wanted_) armed_.store(false, std::memory_order_release);
}

// ---------------------------------------------------------------- the traced run

namespace {

struct Traced {
  rte_mbuf* m;
  TraceRecord record;
  PacketView before;
  uint16_t out_port;  // before the stage ran: once gone, a packet may not be read
  bool done = false;
};

// Where `m` is after a stage: kept (index in pkts), dropped (its reason) or gone.
TraceOutcome locate(const Burst& burst, uint16_t discarded_before, const rte_mbuf* m, Drop& reason) {
  for (uint16_t i = 0; i < burst.count; ++i)
    if (burst.pkts[i] == m) return TraceOutcome::Passed;
  for (uint16_t i = discarded_before; i < burst.discarded; ++i)
    if (burst.discards[i] == m) {
      reason = burst.discard_reasons[i];
      return TraceOutcome::Dropped;
    }
  return TraceOutcome::Left;
}

}  // namespace

void trace_run(Pipeline& pipeline, Burst& burst, size_t first, TraceSession& session, unsigned lcore, bool handed) {
  TraceFilter filter;
  uint64_t id = 0;
  if (!session.begin(filter, id)) {
    pipeline.run_from(burst, first);
    return;
  }
  const uint64_t burst_tsc = rte_rdtsc();
  std::vector<Traced> traced;
  for (uint16_t i = 0; i < burst.count; ++i) {
    PacketView v;
    if (!view_packet(burst.pkts[i], v)) v.length = rte_pktmbuf_pkt_len(burst.pkts[i]);
    if (!filter.matches(pipeline.port_name(), v)) continue;
    Traced t{burst.pkts[i], {}, v, kNoPort};
    t.record.lcore = lcore;
    t.record.port = pipeline.port_name();
    t.record.handed = handed;
    t.record.tsc = burst_tsc;
    t.record.macs = mac_string(v);
    t.record.headers = view_string(v);
    traced.push_back(std::move(t));
  }
  const uint64_t examined = burst.count, matched = traced.size();
  if (traced.empty()) {
    pipeline.run_from(burst, first);
    std::vector<TraceRecord> none;
    session.finish(id, none, examined, 0);
    return;
  }
  const auto& stages = pipeline.stages();
  for (size_t s = first; s < stages.size(); ++s) {
    const Stage& stage = *stages[s];
    const uint16_t in = burst.count, discarded_before = burst.discarded;
    for (Traced& t : traced)
      if (!t.done) t.out_port = meta(t.m).out_port;
    const uint64_t start = rte_rdtsc();
    pipeline.run_stage(s, burst);
    const uint32_t cycles = static_cast<uint32_t>((rte_rdtsc() - start) / (in ? in : 1));
    for (Traced& t : traced) {
      if (t.done) continue;
      TraceStep step;
      step.stage = stage.name();
      step.cycles = cycles;
      step.burst = in;
      step.outcome = locate(burst, discarded_before, t.m, step.reason);
      if (step.outcome == TraceOutcome::Left && stage.name() == "output") step.outcome = TraceOutcome::Sent;
      if (step.outcome == TraceOutcome::Passed || step.outcome == TraceOutcome::Dropped) {
        // Still this lcore's until the burst's discards are freed: readable.
        PacketView after;
        view_packet(t.m, after);
        std::string now = view_string(after), was = view_string(t.before);
        if (now != was || std::memcmp(after.eth_dst, t.before.eth_dst, 6) != 0 ||
            std::memcmp(after.eth_src, t.before.eth_src, 6) != 0)
          step.headers = (std::memcmp(after.eth_dst, t.before.eth_dst, 6) != 0 ? mac_string(after) + " " : "") + now;
        t.before = after;
        if (step.outcome == TraceOutcome::Passed) {
          stage.describe(t.m, step.detail);
          // The output decision (route, xconnect, conntrack's egress) shows as out_port.
          const uint16_t out = meta(t.m).out_port;
          if (out != t.out_port && out != kNoPort)
            step.detail += (step.detail.empty() ? "" : "; ") + std::string("egress ") + session.port_name(out);
        }
        else step.detail = std::string(drop_description(step.reason));
      } else if (step.outcome == TraceOutcome::Sent) {
        step.detail = "queued for TX on " + session.port_name(t.out_port);
        t.record.egress = session.port_name(t.out_port);
      } else {
        step.detail = stage.name() == "steer" ? "handed to the worker that owns its flow"
                                              : "taken out of the burst (slow path, reassembly or a reply made in place)";
      }
      if (step.outcome != TraceOutcome::Passed) {
        t.done = true;
        t.record.outcome = step.outcome;
        t.record.reason = step.reason;
        t.record.where = step.stage;
      }
      t.record.steps.push_back(std::move(step));
    }
    if (burst.count == 0) break;
  }
  std::vector<TraceRecord> records;
  for (Traced& t : traced) {
    if (filter.drops_only && t.record.outcome != TraceOutcome::Dropped) continue;
    records.push_back(std::move(t.record));
  }
  session.finish(id, records, examined, matched);
}

}  // namespace sluice::pipeline
