// What the fast path reads from the conntrack config, in the units it uses (ms).
// Part of the published policy: a reload swaps it without stopping the workers.
#pragma once

#include <array>
#include <cstdint>

#include "config/config.h"
#include "flow/tcp_tracker.h"

namespace sluice::flow {

struct FlowSettings {
  std::array<uint32_t, static_cast<size_t>(TcpState::Count)> tcp_timeout_ms{};
  uint32_t tcp_unacknowledged_ms = 0;
  uint32_t udp_ms = 0;
  uint32_t udp_stream_ms = 0;
  uint32_t icmp_ms = 0;
  uint32_t generic_ms = 0;
  TcpSettings tcp;
  bool drop_later_fragments = false;

  static FlowSettings from(const config::ConntrackConfig& c) {
    FlowSettings s;
    const auto& t = c.timeouts;
    auto ms = [](unsigned seconds) { return seconds * 1000u; };
    auto at = [&s](TcpState state) -> uint32_t& { return s.tcp_timeout_ms[static_cast<size_t>(state)]; };
    at(TcpState::None) = ms(t.tcp_close);
    at(TcpState::SynSent) = ms(t.tcp_syn_sent);
    at(TcpState::SynRecv) = ms(t.tcp_syn_recv);
    at(TcpState::Established) = ms(t.tcp_established);
    at(TcpState::FinWait) = ms(t.tcp_fin_wait);
    at(TcpState::CloseWait) = ms(t.tcp_close_wait);
    at(TcpState::LastAck) = ms(t.tcp_last_ack);
    at(TcpState::TimeWait) = ms(t.tcp_time_wait);
    at(TcpState::Close) = ms(t.tcp_close);
    at(TcpState::SynSent2) = ms(t.tcp_syn_sent);
    s.tcp_unacknowledged_ms = ms(t.tcp_unacknowledged);
    s.udp_ms = ms(t.udp);
    s.udp_stream_ms = ms(t.udp_stream);
    s.icmp_ms = ms(t.icmp);
    s.generic_ms = ms(t.generic);
    s.tcp.liberal = c.tcp_liberal;
    s.tcp.loose = c.tcp_loose;
    s.drop_later_fragments = c.later_fragments == config::FragmentPolicy::Drop;
    return s;
  }
};

}  // namespace sluice::flow
