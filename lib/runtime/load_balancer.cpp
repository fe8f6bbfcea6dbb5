#include "runtime/load_balancer.h"

#include <chrono>
#include <cstring>

#include <spdlog/spdlog.h>

namespace sluice::runtime {

namespace {

const char* kProbeNames[] = {"none", "tcp", "icmp"};

uint64_t steady_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

}  // namespace

std::unique_ptr<LoadBalancer> LoadBalancer::create(const config::Config& config, l3::Qsbr& qsbr, unsigned workers,
                                                   rte_mempool* pool, router::Router* router, std::string& error) {
  auto lb = std::unique_ptr<LoadBalancer>(new LoadBalancer(qsbr, pool, router));
  for (unsigned w = 0; w < workers; ++w) lb->contexts_.push_back(std::make_unique<lb::LbContext>());
  lb->services_ = config.services;
  lb->sync_checks(lb->services_, steady_ms());
  auto table = lb->build(lb->services_, error);
  if (!table) return nullptr;
  lb->table_ = std::make_unique<l3::Published<lb::ServiceTable>>(qsbr);
  lb->publish(std::move(table));
  if (router) router->set_probe_sink(&LoadBalancer::probe_reply, lb.get());
  for (const auto& s : lb->services_)
    spdlog::info("lb: service '{}' {} {} port {}: {} backend(s), {}, health {}", s.name, s.vip.str(),
                 s.protocol == 6 ? "tcp" : "udp", s.port ? std::to_string(s.port) : std::string("all"),
                 s.backends.size(),
                 s.mode == config::LbMode::FullNat ? "fullnat" : s.mode == config::LbMode::Dnat ? "dnat" : "ipip",
                 kProbeNames[static_cast<int>(s.health.type)]);
  return lb;
}

LoadBalancer::~LoadBalancer() {
  if (router_) router_->set_probe_sink(nullptr, nullptr);
  drain();
}

void LoadBalancer::drain() {
  {
    std::lock_guard lock(replies_mutex_);
    for (rte_mbuf* m : replies_) rte_pktmbuf_free(m);
    replies_.clear();
  }
  std::lock_guard lock(mutex_);
  for (rte_mbuf* m : rsts_) rte_pktmbuf_free(m);
  rsts_.clear();
}

std::unique_ptr<lb::ServiceTable> LoadBalancer::build(const std::vector<config::LbService>& services,
                                                      std::string& error) {
  std::set<std::string> unroutable;
  auto table = lb::ServiceTable::build(services, registry_,
                                 [this](uint16_t slot) {
                                   auto it = check_of_slot_.find(slot);
                                   return it == check_of_slot_.end() || checks_[it->second].health.up();
                                 },
                                 error,
                                 [this, &unroutable](const net::IpAddr& backend) {
                                   // ipip: from the address of the port the router sends it by, as probes.
                                   net::IpAddr src;
                                   if (!router_ || !router_->source_for_destination(backend, src) ||
                                       src.family != backend.family) {
                                     if (!unroutable_.count(backend.str()))
                                       spdlog::warn("lb: no route toward ipip backend {}: its connections are "
                                                    "dropped (lb_tunnel_failed) until a reload finds one",
                                                    backend.str());
                                     unroutable.insert(backend.str());
                                     return net::IpAddr{};
                                   }
                                   if (unroutable_.count(backend.str()))
                                     spdlog::info("lb: ipip backend {} has a route again (tunnel source {})",
                                                  backend.str(), src.str());
                                   return src;
                                 });
  if (table) unroutable_ = std::move(unroutable);
  return table;
}

// One check per backend of a service with health checks: kept (state and counters) for
// a backend that stays, made for a new one (up, its first probe spread over an interval).
void LoadBalancer::sync_checks(const std::vector<config::LbService>& services, uint64_t now_ms) {
  std::vector<Check> next;
  std::map<uint16_t, size_t> next_of_slot;
  for (const auto& s : services) {
    if (s.health.type == config::LbProbe::None) continue;
    for (const auto& b : s.backends) {
      const std::string id = lb::backend_id(b, s.port);
      const uint16_t slot = registry_.backend(s.name, id);
      if (slot == lb::kNoSlot) continue;  // build() reports it
      const lb::HealthSettings settings{s.health.interval_ms, s.health.timeout_ms, s.health.rise, s.health.fall};
      auto old = check_of_slot_.find(slot);
      const uint16_t port = s.health.port ? s.health.port : (b.port ? b.port : s.port);
      if (old != check_of_slot_.end() && checks_[old->second].type == s.health.type &&
          checks_[old->second].port == port && checks_[old->second].address == b.address) {
        next.push_back(std::move(checks_[old->second]));
      } else {
        next.push_back(Check{slot, s.name, id, s.health.type, b.address, port,
                             lb::HealthCheck(settings, lb::first_probe_ms(now_ms, settings.interval_ms,
                                                                          lb::maglev_hash(s.name + "/" + id, 0)))});
      }
      next_of_slot[slot] = next.size() - 1;
    }
  }
  checks_ = std::move(next);
  check_of_slot_ = std::move(next_of_slot);
  probe_cursor_ = 0;
}

bool LoadBalancer::prepare(const config::Config& next, std::string& error) {
  std::lock_guard lock(mutex_);
  // The table is built against the checks the next services will have.
  saved_checks_ = checks_;
  saved_check_of_slot_ = check_of_slot_;
  sync_checks(next.services, steady_ms());
  pending_table_ = build(next.services, error);
  if (!pending_table_) {
    checks_ = std::move(saved_checks_);
    check_of_slot_ = std::move(saved_check_of_slot_);
    return false;
  }
  pending_ = next.services;
  return true;
}

void LoadBalancer::commit() {
  std::lock_guard lock(mutex_);
  services_ = std::move(pending_);
  if (pending_table_) publish(std::move(pending_table_));
  saved_checks_.clear();
  saved_check_of_slot_.clear();
}

void LoadBalancer::abort() {
  std::lock_guard lock(mutex_);
  checks_ = std::move(saved_checks_);
  check_of_slot_ = std::move(saved_check_of_slot_);
  saved_checks_.clear();
  saved_check_of_slot_.clear();
  pending_.clear();
  pending_table_.reset();
}

uint32_t LoadBalancer::next_random() {
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  return static_cast<uint32_t>(rng_ >> 16);
}

void LoadBalancer::probe_reply(void* self, rte_mbuf* m, uint64_t /*now_ms*/) {
  auto* lb = static_cast<LoadBalancer*>(self);
  std::lock_guard lock(lb->replies_mutex_);
  if (lb->replies_.size() >= 1024) {
    rte_pktmbuf_free(m);  // bounded: more answers than probes ever sent
    return;
  }
  lb->replies_.push_back(m);
}

void LoadBalancer::send_probe(Check& c, uint64_t now_ms) {
  net::IpAddr src;
  rte_mbuf* m = nullptr;
  uint32_t token = 0;
  if (router_ && router_->source_for_destination(c.address, src)) {
    if (c.type == config::LbProbe::Tcp) {
      c.local_port = next_local_port_;
      next_local_port_ = next_local_port_ == kProbePortLast ? kProbePortFirst : next_local_port_ + 1;
      token = next_random();
      m = lb::build_tcp_syn(pool_, src, c.address, c.local_port, c.port, token);
    } else {
      const uint16_t seq = next_echo_seq_++;
      token = uint32_t(kProbeEchoIdent) << 16 | seq;
      m = lb::build_icmp_echo(pool_, src, c.address, kProbeEchoIdent, seq);
    }
  }
  // A probe that cannot leave (no route, no mbuf) is a probe unanswered: it times out.
  c.token = token;
  c.health.sent(now_ms, token);
  if (m) router_->originate(m);
}

void LoadBalancer::transition(Check& c, lb::Transition t, uint64_t /*now_ms*/) {
  if (t == lb::Transition::None) return;
  const bool up = t == lb::Transition::WentUp;
  spdlog::warn("lb: service '{}' backend {} ({}) is {} ({} probe: {})", c.service, c.backend, c.address.str(),
               up ? "UP" : "DOWN", kProbeNames[static_cast<int>(c.type)], c.last_result);
  rebuild_needed_ = true;
}

void LoadBalancer::answered(const lb::ProbeReply& reply, uint64_t now_ms) {
  // Late (after its timeout, or after a reload dropped its check), repeated, or a bare ACK
  // from a half-open connection the port's earlier probe left: no probe takes it, and a
  // RST releases the backend's state before the port comes round again.
  auto reset_unclaimed = [&] {
    if (reply.kind != lb::ProbeReply::Kind::SynAck && reply.kind != lb::ProbeReply::Kind::Stray) return;
    spdlog::debug("lb: unclaimed {} from {} port {} to probe port {}: reset",
                  reply.kind == lb::ProbeReply::Kind::SynAck ? "SYN-ACK" : "segment", reply.peer.str(),
                  reply.peer_port, reply.local_port);
    if (rte_mbuf* rst =
            lb::build_tcp_rst(pool_, reply.local, reply.peer, reply.local_port, reply.peer_port, reply.ack_for_rst))
      rsts_.push_back(rst);
  };
  if (reply.kind == lb::ProbeReply::Kind::Stray) return reset_unclaimed();
  for (auto& c : checks_) {
    if (!c.health.in_flight() || c.token != reply.token || !(c.address == reply.peer)) continue;
    bool good = false;
    switch (reply.kind) {
      case lb::ProbeReply::Kind::SynAck:
        if (c.type != config::LbProbe::Tcp || reply.peer_port != c.port) continue;
        good = true;
        c.last_result = "syn-ack";
        // Release the backend's half-open connection.
        if (rte_mbuf* rst = lb::build_tcp_rst(pool_, reply.local, reply.peer, reply.local_port, reply.peer_port,
                                              reply.ack_for_rst))
          rsts_.push_back(rst);
        break;
      case lb::ProbeReply::Kind::Rst:
        if (c.type != config::LbProbe::Tcp || reply.peer_port != c.port) continue;
        c.last_result = "rst";
        break;
      case lb::ProbeReply::Kind::EchoReply:
        if (c.type != config::LbProbe::Icmp) continue;
        good = true;
        c.last_result = "echo-reply";
        break;
      case lb::ProbeReply::Kind::Unreachable:
        c.last_result = "unreachable";
        break;
      default: continue;
    }
    transition(c, c.health.answered(now_ms, reply.token, good), now_ms);
    return;
  }
  reset_unclaimed();
}

void LoadBalancer::poll(uint64_t now_ms) {
  std::vector<rte_mbuf*> replies, rsts;
  {
    std::lock_guard lock(replies_mutex_);
    replies.swap(replies_);
  }
  {
    std::lock_guard lock(mutex_);
    for (rte_mbuf* m : replies) {
      lb::ProbeReply reply;
      if (lb::parse_probe_reply(m, sizeof(net::EthernetHeader), probe_match(), reply)) answered(reply, now_ms);
      rte_pktmbuf_free(m);
    }
    for (auto& c : checks_) {
      if (!c.health.in_flight()) continue;
      const lb::Transition t = c.health.expire(now_ms);
      if (c.health.in_flight()) continue;  // not timed out yet
      c.last_result = "timeout";
      transition(c, t, now_ms);
    }
    // Probes due, at most kProbesPerPass, from a rotating start.
    const uint32_t n = static_cast<uint32_t>(checks_.size());
    uint32_t sent = 0;
    for (uint32_t k = 0; k < n && sent < kProbesPerPass; ++k) {
      const uint32_t i = (probe_cursor_ + k) % n;
      if (!checks_[i].health.due(now_ms)) continue;
      send_probe(checks_[i], now_ms);
      ++sent;
      if (sent == kProbesPerPass) probe_cursor_ = (i + 1) % n;
    }
    rsts.swap(rsts_);
  }
  for (rte_mbuf* m : rsts) router_->originate(m);
  if (rebuild_needed_) {
    rebuild_needed_ = false;
    rebuild();
  }
}

void LoadBalancer::rebuild() {
  std::string error;
  std::lock_guard lock(mutex_);
  std::unique_ptr<lb::ServiceTable> table = build(services_, error);
  if (!table) {
    spdlog::error("lb: services table not rebuilt after a health change: {}", error);
    return;
  }
  publish(std::move(table));
}

void LoadBalancer::publish(std::unique_ptr<lb::ServiceTable> table) {
  table->set_tag(static_cast<uint8_t>(++published_));
  table_->publish(std::move(table));
}

void LoadBalancer::read(std::vector<ServiceView>& services, std::vector<BackendView>& backends) const {
  std::lock_guard lock(mutex_);
  read_locked(services, backends);
}

void LoadBalancer::read_locked(std::vector<ServiceView>& services, std::vector<BackendView>& backends) const {
  for (const auto& s : services_) {
    ServiceView sv{s.name, 0, 0, 0, 0};
    const uint16_t slot = const_cast<lb::SlotRegistry&>(registry_).service(s.name);
    for (const auto& ctx : contexts_) {
      const lb::ServiceCounters& c = ctx->service(slot);
      sv.connections += c.connections.get();
      sv.no_backend += c.no_backend.get();
      sv.removed += c.removed.get();
      sv.picked_up += c.picked_up.get();
    }
    services.push_back(sv);
    for (const auto& b : s.backends) {
      const std::string id = lb::backend_id(b, s.port);
      const uint16_t bslot = const_cast<lb::SlotRegistry&>(registry_).backend(s.name, id);
      BackendView bv{s.name, id, true, b.weight, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
      for (const auto& ctx : contexts_) {
        const lb::BackendCounters& c = ctx->backend(bslot);
        bv.active += c.active.get();
        bv.connections += c.connections.get();
        bv.packets += c.packets.get();
        bv.bytes += c.bytes.get();
      }
      auto it = check_of_slot_.find(bslot);
      if (it != check_of_slot_.end()) {
        const Check& ch = checks_[it->second];
        const lb::HealthCounters& hc = ch.health.counters();
        bv.up = ch.health.up();
        bv.probes = hc.probes;
        bv.good = hc.good;
        bv.failed = hc.failed;
        bv.timeouts = hc.timeouts;
        bv.went_up = hc.went_up;
        bv.went_down = hc.went_down;
      }
      backends.push_back(bv);
    }
  }
}

nlohmann::json LoadBalancer::services_json() const {
  std::vector<ServiceView> sv;
  std::vector<BackendView> bv;
  std::lock_guard lock(mutex_);  // publish() holds it too: the table cannot go under us
  read_locked(sv, bv);
  const lb::ServiceTable* table = table_->get();
  const uint64_t now = steady_ms();
  nlohmann::json out = nlohmann::json::array();
  size_t next_backend = 0;
  for (size_t i = 0; i < services_.size(); ++i) {
    const config::LbService& s = services_[i];
    const char* modes[] = {"fullnat", "dnat", "ipip"};
    const char* schedulers[] = {"maglev", "round-robin", "least-connections"};
    nlohmann::json j = {{"name", s.name},
                        {"vip", s.vip.str()},
                        {"protocol", s.protocol == 6 ? "tcp" : "udp"},
                        {"port", s.port ? nlohmann::json(s.port) : nlohmann::json("all")},
                        {"mode", modes[static_cast<int>(s.mode)]},
                        {"scheduler", schedulers[static_cast<int>(s.scheduler)]},
                        {"health", kProbeNames[static_cast<int>(s.health.type)]},
                        {"connections", sv[i].connections},
                        {"no_backend", sv[i].no_backend},
                        {"removed_backend_drops", sv[i].removed},
                        {"picked_up", sv[i].picked_up}};
    // The Maglev table's entries per backend (this table's shares).
    const lb::Service* ts = nullptr;
    if (table)
      for (const auto& t : table->services())
        if (t.name == s.name) ts = &t;
    std::vector<uint32_t> shares;
    if (ts && s.scheduler == config::LbScheduler::Maglev) {
      j["table_size"] = ts->maglev.size();
      shares = ts->maglev.shares(ts->backends.size());
    }
    nlohmann::json backends = nlohmann::json::array();
    uint64_t active = 0;
    for (size_t k = 0; k < s.backends.size(); ++k, ++next_backend) {
      const BackendView& b = bv[next_backend];
      const config::LbBackend& cb = s.backends[k];
      nlohmann::json jb = {{"id", b.backend},
                           {"address", cb.address.str()},
                           {"port", cb.port ? cb.port : s.port},
                           {"weight", b.weight},
                           {"state", b.up ? "up" : "down"},
                           {"active_connections", b.active},
                           {"connections", b.connections},
                           {"packets", b.packets},
                           {"bytes", b.bytes}};
      active += b.active;
      if (!cb.name.empty()) jb["name"] = cb.name;
      if (k < shares.size() && ts) {
        jb["maglev_entries"] = shares[k];
        jb["maglev_share"] = ts->maglev.size() ? double(shares[k]) / ts->maglev.size() : 0.0;
      }
      const uint16_t slot = const_cast<lb::SlotRegistry&>(registry_).backend(s.name, b.backend);
      auto it = check_of_slot_.find(slot);
      if (it != check_of_slot_.end()) {
        const Check& ch = checks_[it->second];
        jb["probe"] = {{"probes", b.probes},      {"good", b.good},         {"failed", b.failed},
                       {"timeouts", b.timeouts},  {"went_up", b.went_up},   {"went_down", b.went_down},
                       {"last_result", ch.last_result}};
        if (ch.health.last_transition_ms())
          jb["probe"]["last_transition_seconds_ago"] = double(now - ch.health.last_transition_ms()) / 1000.0;
      }
      backends.push_back(std::move(jb));
    }
    j["active_connections"] = active;
    j["backends"] = std::move(backends);
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace sluice::runtime
