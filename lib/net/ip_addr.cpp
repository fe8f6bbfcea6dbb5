#include "net/ip_addr.h"

#include <arpa/inet.h>

#include <charconv>

namespace sluice::net {

std::string IpAddr::str() const {
  char text[INET6_ADDRSTRLEN] = "-";
  if (family == 4) inet_ntop(AF_INET, bytes.data(), text, sizeof(text));
  else if (family == 6) inet_ntop(AF_INET6, bytes.data(), text, sizeof(text));
  return text;
}

IpPrefix IpPrefix::network() const {
  IpPrefix p = *this;
  unsigned bits = addr.family == 4 ? 32 : 128;
  for (unsigned bit = len; bit < bits; ++bit) p.addr.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  return p;
}

bool IpPrefix::contains(const IpAddr& a) const {
  if (a.family != addr.family) return false;
  IpPrefix other{a, len};
  return other.network().addr == network().addr;
}

std::optional<IpAddr> parse_ip(std::string_view text) {
  std::string s(text);
  IpAddr a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.family = 4;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.family = 6;
    return a;
  }
  return std::nullopt;
}

std::optional<IpPrefix> parse_prefix(std::string_view text, bool require_length) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos && require_length) return std::nullopt;
  auto addr = parse_ip(text.substr(0, slash));
  if (!addr) return std::nullopt;
  unsigned max = addr->family == 4 ? 32 : 128;
  unsigned len = max;
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() || len > max) return std::nullopt;
  }
  return IpPrefix{*addr, static_cast<uint8_t>(len)};
}

}  // namespace sluice::net
