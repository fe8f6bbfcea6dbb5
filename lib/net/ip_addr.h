// IPv4/IPv6 addresses and prefixes as the config and the control plane hold them.
// Bytes are in network order; v4() gives the host-order word rte_fib wants.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::net {

struct IpAddr {
  uint8_t family = 0;  // 4, 6, or 0 when unset
  std::array<uint8_t, 16> bytes{};

  static IpAddr v4(uint32_t host_order) {
    IpAddr a;
    a.family = 4;
    a.bytes[0] = static_cast<uint8_t>(host_order >> 24);
    a.bytes[1] = static_cast<uint8_t>(host_order >> 16);
    a.bytes[2] = static_cast<uint8_t>(host_order >> 8);
    a.bytes[3] = static_cast<uint8_t>(host_order);
    return a;
  }
  static IpAddr v6(const uint8_t* network_order) {
    IpAddr a;
    a.family = 6;
    std::memcpy(a.bytes.data(), network_order, 16);
    return a;
  }
  uint32_t v4_host() const {
    return uint32_t(bytes[0]) << 24 | uint32_t(bytes[1]) << 16 | uint32_t(bytes[2]) << 8 | bytes[3];
  }
  bool is_set() const { return family != 0; }
  std::string str() const;
  friend bool operator==(const IpAddr&, const IpAddr&) = default;
};

struct IpPrefix {
  IpAddr addr;  // as written: an interface address keeps its host bits
  uint8_t len = 0;

  IpPrefix network() const;  // host bits cleared
  bool contains(const IpAddr& a) const;
  std::string str() const { return addr.str() + "/" + std::to_string(len); }
  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
};

std::optional<IpAddr> parse_ip(std::string_view text);
// "10.0.0.1/24", "fd00::1/64"; a bare address is a host prefix.
std::optional<IpPrefix> parse_prefix(std::string_view text, bool require_length = true);

}  // namespace sluice::net
