// What every section reader shares: ObjectReader, which walks one JSON object and
// reports each problem with its JSON path, and the readers of values that come back in
// more than one section (names, prefix lists, port ranges, protocols, MACs, enums, bit
// sets). Private to lib/config; a new section (nat, services) reads with these so its
// errors read like the others'.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "net/ip_addr.h"

namespace sluice::config::detail {

using nlohmann::json;

// "integer" for any JSON number without a fraction, else nlohmann's type name.
std::string type_name(const json& value);
// A value as written, cut to 40 characters, for "got ..." in a message.
std::string show(const json& value);
// "a, b, c".
std::string join(const std::vector<std::string>& words);

// Walks one JSON object, collecting errors with their JSON path.
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string path, std::vector<std::string>& errors)
      : object_(object), path_(std::move(path)), errors_(errors) {}

  // The JSON path of `key` in this object ("ports[0].mtu").
  std::string at(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  void error(const std::string& key, const std::string& message) const {
    errors_.push_back(at(key) + ": " + message);
  }
  bool has(const std::string& key) const { return object_.contains(key); }
  const json& raw(const std::string& key) const { return object_.at(key); }

  void allow_only(std::initializer_list<const char*> keys) const;
  void allow_only(const std::vector<std::string>& keys) const;
  void required(const std::string& key) const;

  // Each reader leaves `out` alone when the key is absent or wrong, so the default stays.
  void uint(const std::string& key, unsigned& out, unsigned min, unsigned max, const std::string& also = "") const;
  // Like uint(), where 0 has its own meaning besides min..max.
  void uint_or_zero(const std::string& key, unsigned& out, unsigned min, unsigned max, const std::string& zero) const;
  void boolean(const std::string& key, bool& out) const;
  bool string(const std::string& key, std::string& out) const;  // true when read
  void one_of(const std::string& key, std::string& out, const std::vector<std::string>& choices) const;
  // A reader of the object under `key` (kept in `storage`); nullptr when absent or not an object.
  const ObjectReader* object(const std::string& key, std::optional<ObjectReader>& storage) const;

 private:
  const json& object_;
  std::string path_;
  std::vector<std::string>& errors_;
};

// Reads an enum written as one of `names` (index = enum value); leaves `out` alone on error.
template <typename Enum>
void read_enum(const ObjectReader& reader, const std::string& key, Enum& out, const std::vector<std::string>& names) {
  std::string value;
  reader.one_of(key, value, names);
  if (!value.empty())
    out = static_cast<Enum>(std::find(names.begin(), names.end(), value) - names.begin());
}

// Port names and firewall zones share one syntax.
bool is_name(const std::string& text);
extern const char* const kNameRule;
// `key` as a port or zone name: true when read and valid. A name against kNameRule is
// reported and still stored, as written.
bool read_name(const ObjectReader& reader, const std::string& key, std::string& out);

// "xx:xx:xx:xx:xx:xx", nothing else; format_mac (config.h) writes it back.
std::optional<std::array<uint8_t, 6>> parse_mac(const std::string& text);

// One element of a "value or list of values" key, with the path to report it under:
// `key` when the value was written alone, `key[i]` inside an array.
struct ListItem {
  std::string path;
  const json* value;
};

// `key` holds one item (a string; an integer too when `numbers`) or a non-empty array
// of items; anything else is reported as not being `expected`.
bool list_items(const ObjectReader& reader, const std::string& key, bool numbers, const std::string& expected,
                std::vector<ListItem>& items);

// The list readers below take "one value or a non-empty array of them", report each bad
// item under its own path, return false when anything was wrong, and true for an absent key.

// "from": "inside" or ["inside", "dmz"]: `what` names an item ("zone name"); whether the
// names exist is for the caller to check once every section is read.
bool read_name_list(const ObjectReader& reader, const std::string& key, const std::string& what,
                    std::vector<std::string>& out, std::vector<std::string>& errors);

// "src": "10.0.0.0/8", "fd00::5" (a host) or a list of them. Unlike routes, host bits
// are an error here: "10.0.0.1/8" in a filter is more likely a typo than a wish.
bool read_prefix_list(const ObjectReader& reader, const std::string& key, std::vector<net::IpPrefix>& out,
                      std::vector<std::string>& errors);
// Which families a prefix list admits: bit 0 IPv4, bit 1 IPv6; an empty list admits both.
unsigned families(const std::vector<net::IpPrefix>& list);
// "IPv4 only" for mask 1, "IPv6 only" for mask 2.
std::string family_only(unsigned mask);
// The list as read_prefix_list takes it back: an array of "a.b.c.d/n".
json prefixes_json(const std::vector<net::IpPrefix>& list);

// 80 or "8000-8080"; first > last is returned as read, for the caller to report.
std::optional<PortRange> parse_port_range(const json& v);
// "dst_ports": 80, "8000-8080" or a list of them; reversed ranges are reported.
bool read_port_list(const ObjectReader& reader, const std::string& key, std::vector<PortRange>& out,
                    std::vector<std::string>& errors);
// The list as read_port_list takes it back: a single port as a number, a range as "a-b".
json port_ranges_json(const std::vector<PortRange>& list);

// "name" of a rule, service or backend: 1..64 characters of A-Z a-z 0-9 _ . -. True when
// read and valid; an invalid one is reported and `name` left empty.
bool read_rule_name(const ObjectReader& r, std::string& name);

// A port range under `key` written as 80 or "1024-65535", within 1..65535 and not
// reversed: reported and left alone otherwise. True when absent or read.
bool read_port_range(const ObjectReader& r, const std::string& key, uint16_t& first, uint16_t& last);

// Reads `key` of `section` as an array of at most `max` objects, each with
// `read(reader, path, item, errors)`; `what` names one in messages. An item without a
// written "name" is named `key` and its index.
template <typename Item, typename Read>
void read_list(const ObjectReader& section, const std::string& key, const char* what, size_t max,
               std::vector<Item>& out, std::vector<std::string>& errors, Read read) {
  if (!section.has(key)) return;
  const json& list = section.raw(key);
  if (!list.is_array()) {
    section.error(key, std::string("must be an array of ") + what + "s, got " + type_name(list));
    return;
  }
  if (list.size() > max) {
    section.error(key, "at most " + std::to_string(max) + " " + what + "s, got " + std::to_string(list.size()));
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string path = section.at(key) + "[" + std::to_string(i) + "]";
    Item item;
    if (!list[i].is_object()) errors.push_back(path + ": must be an object (a " + what + "), got " + type_name(list[i]));
    else read(ObjectReader(list[i], path, errors), path, item, errors);
    if (item.name.empty() && !(list[i].is_object() && list[i].contains("name"))) item.name = key + std::to_string(i);
    out.push_back(item);
  }
}

// IP protocol numbers, and the names a config may write for them.
constexpr int kIcmp = 1, kTcp = 6, kUdp = 17, kIcmpv6 = 58;
struct ProtocolName {
  const char* name;
  int number;
};
constexpr ProtocolName kProtocolNames[] = {{"tcp", kTcp}, {"udp", kUdp}, {"icmp", kIcmp}, {"icmpv6", kIcmpv6}};
// A name of kProtocolNames or 0..255; -1 for anything else.
int protocol_number(const json& v);
// "protocol": "tcp" or 6: true when absent or valid; `out` is -1 after an error.
bool read_protocol(const ObjectReader& reader, const std::string& key, int& out);
// The protocol by name where it has one, else its number.
json protocol_json(int protocol);

// ["new", "established"] -> bits, bit i for names[i]; each name at most once. `what`
// names one item in messages ("TCP flag").
bool read_bits(const ObjectReader& reader, const std::string& key, const std::vector<std::string>& names,
               const std::string& what, bool allow_empty, uint8_t& bits, std::vector<std::string>& errors);
std::vector<std::string> names_of_bits(uint8_t bits, const std::vector<std::string>& names);

}  // namespace sluice::config::detail
