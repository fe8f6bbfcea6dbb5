#include "config/reader.h"

#include <cctype>
#include <cstdio>
#include <regex>
#include <set>

namespace sluice::config {

std::string format_mac(const std::array<uint8_t, 6>& mac) {
  char text[18];
  std::snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return text;
}

namespace detail {

std::string type_name(const json& value) {
  if (value.is_number_unsigned() || value.is_number_integer()) return "integer";
  return value.type_name();
}

std::string show(const json& value) {
  std::string text = value.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

std::string join(const std::vector<std::string>& words) {
  std::string list;
  for (const auto& w : words) list += (list.empty() ? "" : ", ") + w;
  return list;
}

void ObjectReader::allow_only(std::initializer_list<const char*> keys) const {
  allow_only(std::vector<std::string>(keys.begin(), keys.end()));
}

void ObjectReader::allow_only(const std::vector<std::string>& keys) const {
  std::set<std::string> allowed(keys.begin(), keys.end());
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    if (allowed.count(it.key())) continue;
    std::string expected;
    for (const auto& k : keys) expected += (expected.empty() ? "" : ", ") + k;
    error(it.key(), "unknown key (expected one of: " + expected + ")");
  }
}

void ObjectReader::required(const std::string& key) const {
  if (!has(key)) errors_.push_back((path_.empty() ? std::string("config") : path_) + ": missing required key '" + key + "'");
}

void ObjectReader::uint(const std::string& key, unsigned& out, unsigned min, unsigned max, const std::string& also) const {
  if (!has(key)) return;
  const json& v = raw(key);
  if (!v.is_number_integer()) {
    error(key, "must be an integer, got " + type_name(v));
    return;
  }
  // Unsigned first: 2^64-1 read as long long would be reported as "got -1".
  bool in_range = v.is_number_unsigned() ? v.get<uint64_t>() >= min && v.get<uint64_t>() <= max
                                         : v.get<int64_t>() >= min && v.get<int64_t>() <= max;
  if (!in_range) {
    error(key, "must be " + also + std::to_string(min) + ".." + std::to_string(max) + ", got " + v.dump());
    return;
  }
  out = static_cast<unsigned>(v.get<uint64_t>());
}

void ObjectReader::uint_or_zero(const std::string& key, unsigned& out, unsigned min, unsigned max,
                                const std::string& zero) const {
  if (has(key) && raw(key).is_number_integer() && raw(key).get<int64_t>() == 0) {
    out = 0;
    return;
  }
  uint(key, out, min, max, "0 (" + zero + ") or ");
}

void ObjectReader::boolean(const std::string& key, bool& out) const {
  if (!has(key)) return;
  const json& v = raw(key);
  if (!v.is_boolean()) {
    error(key, "must be true or false, got " + type_name(v));
    return;
  }
  out = v.get<bool>();
}

bool ObjectReader::string(const std::string& key, std::string& out) const {
  if (!has(key)) return false;
  const json& v = raw(key);
  if (!v.is_string()) {
    error(key, "must be a string, got " + type_name(v));
    return false;
  }
  out = v.get<std::string>();
  return true;
}

void ObjectReader::one_of(const std::string& key, std::string& out, const std::vector<std::string>& choices) const {
  std::string value;
  if (!string(key, value)) return;
  if (std::find(choices.begin(), choices.end(), value) == choices.end()) {
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    error(key, "must be one of " + list + ", got '" + value + "'");
    return;
  }
  out = value;
}

const ObjectReader* ObjectReader::object(const std::string& key, std::optional<ObjectReader>& storage) const {
  if (!has(key)) return nullptr;
  if (!raw(key).is_object()) {
    error(key, "must be an object, got " + type_name(raw(key)));
    return nullptr;
  }
  storage.emplace(raw(key), at(key), errors_);
  return &*storage;
}

bool is_name(const std::string& text) {
  static const std::regex name_re(R"(^[A-Za-z][A-Za-z0-9_-]{0,31}$)");
  return std::regex_match(text, name_re);
}

const char* const kNameRule = "must start with a letter and have 1..32 of A-Z a-z 0-9 _ -";

bool read_name(const ObjectReader& reader, const std::string& key, std::string& out) {
  if (!reader.string(key, out)) return false;
  if (is_name(out)) return true;
  reader.error(key, std::string(kNameRule) + ", got '" + out + "'");
  return false;
}

std::optional<std::array<uint8_t, 6>> parse_mac(const std::string& text) {
  // Exactly "xx:xx:xx:xx:xx:xx": sscanf's %x would also take "+1" or " 1" for a byte.
  std::array<uint8_t, 6> mac{};
  if (text.size() != 17) return std::nullopt;
  for (size_t i = 0; i < 6; ++i) {
    const char* pair = text.c_str() + i * 3;
    if (!std::isxdigit(static_cast<unsigned char>(pair[0])) || !std::isxdigit(static_cast<unsigned char>(pair[1])) ||
        (i < 5 && pair[2] != ':'))
      return std::nullopt;
    mac[i] = static_cast<uint8_t>(std::stoul(std::string(pair, 2), nullptr, 16));
  }
  return mac;
}

bool list_items(const ObjectReader& reader, const std::string& key, bool numbers, const std::string& expected,
                std::vector<ListItem>& items) {
  const json& v = reader.raw(key);
  if (v.is_string() || (numbers && v.is_number_integer())) {
    items.push_back({reader.at(key), &v});
    return true;
  }
  if (!v.is_array() || v.empty()) {
    reader.error(key, "must be " + expected + ", got " + show(v));
    return false;
  }
  for (size_t i = 0; i < v.size(); ++i) items.push_back({reader.at(key) + "[" + std::to_string(i) + "]", &v[i]});
  return true;
}

bool read_name_list(const ObjectReader& reader, const std::string& key, const std::string& what,
                    std::vector<std::string>& out, std::vector<std::string>& errors) {
  if (!reader.has(key)) return true;
  std::vector<ListItem> items;
  if (!list_items(reader, key, false, "a " + what + " or a non-empty array of " + what + "s", items)) return false;
  bool ok = true;
  for (const auto& item : items) {
    if (!item.value->is_string()) {
      errors.push_back(item.path + ": must be a string, got " + type_name(*item.value));
      ok = false;
      continue;
    }
    out.push_back(item.value->get<std::string>());
  }
  return ok;
}

bool read_prefix_list(const ObjectReader& reader, const std::string& key, std::vector<net::IpPrefix>& out,
                      std::vector<std::string>& errors) {
  if (!reader.has(key)) return true;
  std::vector<ListItem> items;
  if (!list_items(reader, key, false, "a prefix or address, or a non-empty array of them", items)) return false;
  bool ok = true;
  for (const auto& item : items) {
    if (!item.value->is_string()) {
      errors.push_back(item.path + ": must be a string, got " + type_name(*item.value));
      ok = false;
      continue;
    }
    std::string text = item.value->get<std::string>();
    auto prefix = net::parse_prefix(text, false);
    if (!prefix) {
      errors.push_back(item.path + ": must be an IPv4 or IPv6 prefix or address like 10.0.0.0/8, got '" + text + "'");
      ok = false;
    } else if (prefix->network() != *prefix) {
      errors.push_back(item.path + ": " + text + " has host bits set (did you mean " + prefix->network().str() + "?)");
      ok = false;
    } else {
      out.push_back(*prefix);
    }
  }
  return ok;
}

unsigned families(const std::vector<net::IpPrefix>& list) {
  if (list.empty()) return 3;
  unsigned mask = 0;
  for (const auto& p : list) mask |= p.addr.family == 4 ? 1u : 2u;
  return mask;
}

std::string family_only(unsigned mask) { return mask == 1 ? "IPv4 only" : "IPv6 only"; }

json prefixes_json(const std::vector<net::IpPrefix>& list) {
  json out = json::array();
  for (const auto& p : list) out.push_back(p.str());
  return out;
}

std::optional<PortRange> parse_port_range(const json& v) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= 65535) {
    auto port = static_cast<uint16_t>(v.get<uint64_t>());
    return PortRange{port, port};
  }
  if (!v.is_string()) return std::nullopt;
  static const std::regex range_re(R"(^([0-9]{1,5})-([0-9]{1,5})$)");
  std::smatch m;
  std::string text = v.get<std::string>();
  if (!std::regex_match(text, m, range_re)) return std::nullopt;
  unsigned long first = std::stoul(m[1].str()), last = std::stoul(m[2].str());
  if (first > 65535 || last > 65535) return std::nullopt;
  return PortRange{static_cast<uint16_t>(first), static_cast<uint16_t>(last)};
}

bool read_port_list(const ObjectReader& reader, const std::string& key, std::vector<PortRange>& out,
                    std::vector<std::string>& errors) {
  if (!reader.has(key)) return true;
  std::vector<ListItem> items;
  if (!list_items(reader, key, true, "a port 0..65535, a range \"a-b\", or a non-empty array of them", items))
    return false;
  bool ok = true;
  for (const auto& item : items) {
    auto range = parse_port_range(*item.value);
    if (!range) {
      errors.push_back(item.path + ": must be a port 0..65535 or a range \"a-b\", got " + show(*item.value));
      ok = false;
    } else if (range->first > range->last) {
      errors.push_back(item.path + ": range '" + item.value->get<std::string>() +
                       "' is reversed (the first port must not be above the last)");
      ok = false;
    } else {
      out.push_back(*range);
    }
  }
  return ok;
}

json port_ranges_json(const std::vector<PortRange>& list) {
  json out = json::array();
  for (const auto& range : list) {
    if (range.first == range.last) out.push_back(range.first);
    else out.push_back(std::to_string(range.first) + "-" + std::to_string(range.last));
  }
  return out;
}

int protocol_number(const json& v) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= 255) return static_cast<int>(v.get<uint64_t>());
  if (v.is_string())
    for (const auto& p : kProtocolNames)
      if (v.get<std::string>() == p.name) return p.number;
  return -1;
}

bool read_protocol(const ObjectReader& reader, const std::string& key, int& out) {
  if (!reader.has(key)) return true;
  out = protocol_number(reader.raw(key));
  if (out >= 0) return true;
  reader.error(key, "must be tcp, udp, icmp, icmpv6 or 0..255, got " + show(reader.raw(key)));
  return false;
}

json protocol_json(int protocol) {
  for (const auto& p : kProtocolNames)
    if (p.number == protocol) return p.name;
  return protocol;
}

bool read_bits(const ObjectReader& reader, const std::string& key, const std::vector<std::string>& names,
               const std::string& what, bool allow_empty, uint8_t& bits, std::vector<std::string>& errors) {
  const json& v = reader.raw(key);
  if (!v.is_array() || (!allow_empty && v.empty())) {
    reader.error(key, std::string("must be ") + (allow_empty ? "an" : "a non-empty") + " array of " + join(names) +
                          ", got " + show(v));
    return false;
  }
  uint8_t seen = 0;
  bool ok = true;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string path = reader.at(key) + "[" + std::to_string(i) + "]";
    if (!v[i].is_string()) {
      errors.push_back(path + ": must be a string, got " + type_name(v[i]));
      ok = false;
      continue;
    }
    std::string name = v[i].get<std::string>();
    auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) {
      errors.push_back(path + ": unknown " + what + " '" + name + "' (known: " + join(names) + ")");
      ok = false;
      continue;
    }
    auto bit = static_cast<uint8_t>(1u << (it - names.begin()));
    if (seen & bit) {
      errors.push_back(path + ": '" + name + "' is listed twice");
      ok = false;
    }
    seen |= bit;
  }
  if (ok) bits = seen;
  return ok;
}

std::vector<std::string> names_of_bits(uint8_t bits, const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (size_t i = 0; i < names.size(); ++i)
    if (bits & (1u << i)) out.push_back(names[i]);
  return out;
}

bool read_rule_name(const ObjectReader& r, std::string& name) {
  if (!r.string("name", name)) return false;
  static const std::regex rule_name_re(R"(^[A-Za-z0-9_.-]{1,64}$)");
  if (std::regex_match(name, rule_name_re)) return true;
  r.error("name", "must be 1..64 characters of A-Z a-z 0-9 _ . -, got '" + name + "'");
  name.clear();
  return false;
}

bool read_port_range(const ObjectReader& r, const std::string& key, uint16_t& first, uint16_t& last) {
  if (!r.has(key)) return true;
  const std::optional<PortRange> range = parse_port_range(r.raw(key));
  if (!range) {
    r.error(key, "must be a port (1..65535) or a range \"first-last\", got " + show(r.raw(key)));
    return false;
  }
  if (range->first == 0) {
    r.error(key, "ports start at 1, got " + show(r.raw(key)));
    return false;
  }
  if (range->first > range->last) {
    r.error(key, "the range is empty (first port above the last), got " + show(r.raw(key)));
    return false;
  }
  first = range->first;
  last = range->last;
  return true;
}

}  // namespace detail
}  // namespace sluice::config
