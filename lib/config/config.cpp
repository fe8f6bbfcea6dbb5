#include "config/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "config/lcores.h"

namespace sluice::config {

using nlohmann::json;

namespace {

constexpr unsigned kMaxLcore = 1023;  // RTE_MAX_LCORE in Debian's build is 128; EAL re-checks.

std::string type_name(const json& value) {
  if (value.is_number_unsigned() || value.is_number_integer()) return "integer";
  return value.type_name();
}

std::string show(const json& value) {
  std::string text = value.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

// Walks one JSON object, collecting errors with their JSON path.
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string path, std::vector<std::string>& errors)
      : object_(object), path_(std::move(path)), errors_(errors) {}

  std::string at(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  void error(const std::string& key, const std::string& message) const {
    errors_.push_back(at(key) + ": " + message);
  }
  bool has(const std::string& key) const { return object_.contains(key); }
  const json& raw(const std::string& key) const { return object_.at(key); }

  void allow_only(std::initializer_list<const char*> keys) const {
    allow_only(std::vector<std::string>(keys.begin(), keys.end()));
  }
  void allow_only(const std::vector<std::string>& keys) const {
    std::set<std::string> allowed(keys.begin(), keys.end());
    for (auto it = object_.begin(); it != object_.end(); ++it) {
      if (allowed.count(it.key())) continue;
      std::string expected;
      for (const auto& k : keys) expected += (expected.empty() ? "" : ", ") + k;
      error(it.key(), "unknown key (expected one of: " + expected + ")");
    }
  }

  void required(const std::string& key) const {
    if (!has(key)) errors_.push_back((path_.empty() ? std::string("config") : path_) + ": missing required key '" + key + "'");
  }

  void uint(const std::string& key, unsigned& out, unsigned min, unsigned max, const std::string& also = "") const {
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

  // Like uint(), where 0 has its own meaning besides min..max.
  void uint_or_zero(const std::string& key, unsigned& out, unsigned min, unsigned max, const std::string& zero) const {
    if (has(key) && raw(key).is_number_integer() && raw(key).get<int64_t>() == 0) {
      out = 0;
      return;
    }
    uint(key, out, min, max, "0 (" + zero + ") or ");
  }

  void boolean(const std::string& key, bool& out) const {
    if (!has(key)) return;
    const json& v = raw(key);
    if (!v.is_boolean()) {
      error(key, "must be true or false, got " + type_name(v));
      return;
    }
    out = v.get<bool>();
  }

  bool string(const std::string& key, std::string& out) const {
    if (!has(key)) return false;
    const json& v = raw(key);
    if (!v.is_string()) {
      error(key, "must be a string, got " + type_name(v));
      return false;
    }
    out = v.get<std::string>();
    return true;
  }

  void one_of(const std::string& key, std::string& out, const std::vector<std::string>& choices) const {
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

  const ObjectReader* object(const std::string& key, std::optional<ObjectReader>& storage) const {
    if (!has(key)) return nullptr;
    if (!raw(key).is_object()) {
      error(key, "must be an object, got " + type_name(raw(key)));
      return nullptr;
    }
    storage.emplace(raw(key), at(key), errors_);
    return &*storage;
  }

 private:
  const json& object_;
  std::string path_;
  std::vector<std::string>& errors_;
};

bool is_pci_address(const std::string& device) {
  static const std::regex pci(R"(^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$)");
  return std::regex_match(device, pci);
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

std::string mac_text(const std::array<uint8_t, 6>& mac) {
  char text[18];
  std::snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return text;
}

std::string join(const std::vector<std::string>& words) {
  std::string list;
  for (const auto& w : words) list += (list.empty() ? "" : ", ") + w;
  return list;
}

const std::vector<std::string> kStages = {"parse", "conntrack", "xconnect", "route"};
const std::vector<std::string> kOutputStages = {"xconnect", "route"};

// How enums are written in JSON, in the enums' order (to_json indexes them).
const std::vector<std::string> kSteeringNames = {"auto", "hardware", "software"};
const std::vector<std::string> kFragmentPolicyNames = {"accept", "drop"};
const std::vector<std::string> kActionNames = {"accept", "drop", "reject"};
const std::vector<std::string> kDefaultPolicyNames = {"accept", "drop"};  // FirewallAction order; no reject
// Bit i of CtStateBits / of the TCP flags byte (FIN 0x01 .. CWR 0x80).
const std::vector<std::string> kStateNames = {"new", "established", "related", "invalid"};
const std::vector<std::string> kTcpFlagNames = {"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"};

constexpr int kIcmp = 1, kTcp = 6, kUdp = 17, kIcmpv6 = 58;  // IP protocol numbers
struct ProtocolName {
  const char* name;
  int number;
};
constexpr ProtocolName kProtocolNames[] = {{"tcp", kTcp}, {"udp", kUdp}, {"icmp", kIcmp}, {"icmpv6", kIcmpv6}};

// conntrack.timeouts, spelled once for the reader and to_json.
struct TimeoutField {
  const char* name;
  unsigned ConntrackTimeouts::*seconds;
};
constexpr TimeoutField kTimeoutFields[] = {
    {"tcp_syn_sent", &ConntrackTimeouts::tcp_syn_sent},
    {"tcp_syn_recv", &ConntrackTimeouts::tcp_syn_recv},
    {"tcp_established", &ConntrackTimeouts::tcp_established},
    {"tcp_fin_wait", &ConntrackTimeouts::tcp_fin_wait},
    {"tcp_close_wait", &ConntrackTimeouts::tcp_close_wait},
    {"tcp_last_ack", &ConntrackTimeouts::tcp_last_ack},
    {"tcp_time_wait", &ConntrackTimeouts::tcp_time_wait},
    {"tcp_close", &ConntrackTimeouts::tcp_close},
    {"tcp_unacknowledged", &ConntrackTimeouts::tcp_unacknowledged},
    {"udp", &ConntrackTimeouts::udp},
    {"udp_stream", &ConntrackTimeouts::udp_stream},
    {"icmp", &ConntrackTimeouts::icmp},
    {"generic", &ConntrackTimeouts::generic},
};
constexpr unsigned kMaxTimeoutSeconds = 1728000;  // 20 days: deadlines are wrapping 32-bit ms stamps (24.8 days of range)

// Reads an enum written as one of `names` (index = enum value); leaves `out` alone on error.
template <typename Enum>
void read_enum(const ObjectReader& reader, const std::string& key, Enum& out, const std::vector<std::string>& names) {
  std::string value;
  reader.one_of(key, value, names);
  if (!value.empty())
    out = static_cast<Enum>(std::find(names.begin(), names.end(), value) - names.begin());
}

// Port names and firewall zones share one syntax.
bool is_name(const std::string& text) {
  static const std::regex name_re(R"(^[A-Za-z][A-Za-z0-9_-]{0,31}$)");
  return std::regex_match(text, name_re);
}
const char* const kNameRule = "must start with a letter and have 1..32 of A-Z a-z 0-9 _ -";

void read_eal(const ObjectReader& eal, EalConfig& out) {
  eal.allow_only({"lcores", "main_lcore", "hugepages", "memory_mb", "file_prefix", "extra_args"});
  eal.required("lcores");
  if (eal.has("lcores")) {
    const json& v = eal.raw("lcores");
    std::string spec;
    if (v.is_string()) {
      spec = v.get<std::string>();
    } else if (v.is_array() && !v.empty() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_number_unsigned(); })) {
      for (const auto& e : v) spec += (spec.empty() ? "" : ",") + std::to_string(e.get<unsigned>());
    } else {
      eal.error("lcores", "must be a list like \"0-3,6\" or an array of lcore ids, got " + show(v));
    }
    if (!spec.empty() || v.is_string()) {
      auto lcores = parse_lcore_list(spec, kMaxLcore);
      if (!lcores) {
        eal.error("lcores", "malformed lcore list '" + spec + "' (expected like \"0-3,6\")");
      } else {
        out.lcores = *lcores;
        out.lcores_spec = spec;
        out.main_lcore = out.lcores.front();
      }
    }
  }
  if (eal.has("main_lcore")) {
    unsigned main_lcore = out.main_lcore;
    eal.uint("main_lcore", main_lcore, 0, kMaxLcore);
    if (!out.lcores.empty() && std::find(out.lcores.begin(), out.lcores.end(), main_lcore) == out.lcores.end())
      eal.error("main_lcore", std::to_string(main_lcore) + " is not in eal.lcores '" + out.lcores_spec + "'");
    out.main_lcore = main_lcore;
  }
  eal.boolean("hugepages", out.hugepages);
  eal.uint("memory_mb", out.memory_mb, 64, 1u << 20);
  if (eal.string("file_prefix", out.file_prefix)) {
    static const std::regex safe(R"(^[A-Za-z0-9_.-]{1,64}$)");
    if (!std::regex_match(out.file_prefix, safe))
      eal.error("file_prefix", "must be 1..64 characters of A-Z a-z 0-9 _ . -, got '" + out.file_prefix + "'");
  }
  if (eal.has("extra_args")) {
    const json& v = eal.raw("extra_args");
    if (!v.is_array() || !std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_string(); }))
      eal.error("extra_args", "must be an array of strings, got " + show(v));
    else
      for (const auto& e : v) out.extra_args.push_back(e.get<std::string>());
  }
}

void read_pipeline(const ObjectReader& port, PortConfig& out, std::vector<std::string>& errors) {
  if (!port.has("pipeline")) {
    port.required("pipeline");
    return;
  }
  const json& list = port.raw("pipeline");
  if (!list.is_array() || list.empty()) {
    port.error("pipeline", "must be a non-empty array of stages, got " + show(list));
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const json& entry = list[i];
    std::string path = port.at("pipeline") + "[" + std::to_string(i) + "]";
    StageConfig stage;
    if (entry.is_string()) {
      stage.stage = entry.get<std::string>();
    } else if (entry.is_object()) {
      ObjectReader reader(entry, path, errors);
      reader.allow_only({"stage", "peer"});
      reader.required("stage");
      reader.string("stage", stage.stage);
      reader.string("peer", stage.peer);
    } else {
      errors.push_back(path + ": must be a stage name or an object {\"stage\": ...}, got " + type_name(entry));
      continue;
    }
    if (stage.stage.empty()) continue;
    if (std::find(kStages.begin(), kStages.end(), stage.stage) == kStages.end()) {
      errors.push_back(path + ": unknown stage '" + stage.stage + "' (known: " + join(kStages) + ")");
      continue;
    }
    bool is_output = std::find(kOutputStages.begin(), kOutputStages.end(), stage.stage) != kOutputStages.end();
    if (stage.stage == "xconnect" && stage.peer.empty())
      errors.push_back(path + ": xconnect needs \"peer\": the name of the port to send to");
    if (stage.stage != "xconnect" && !stage.peer.empty())
      errors.push_back(path + ".peer: only the xconnect stage takes a peer");
    if (is_output && i + 1 != list.size())
      errors.push_back(path + ": " + stage.stage + " sends packets out and must be the last stage");
    if (stage.stage == "conntrack" && !out.has_stage("parse"))
      errors.push_back(path + ": the conntrack stage needs the parse stage before it");
    for (const auto& earlier : out.pipeline)
      if (earlier.stage == stage.stage) errors.push_back(path + ": stage '" + stage.stage + "' appears twice");
    out.pipeline.push_back(stage);
  }
  if (!out.pipeline.empty()) {
    const auto& last = out.pipeline.back().stage;
    if (std::find(kOutputStages.begin(), kOutputStages.end(), last) == kOutputStages.end())
      port.error("pipeline", "must end with an output stage (xconnect or route), got '" + last + "'");
    if (out.pipeline.front().stage != "parse" && last == "route")
      port.error("pipeline", "the route stage needs the parse stage first");
  }
}

// "ipv4": ["10.1.0.1/24"]: interface addresses, each with its subnet length.
void read_addresses(const ObjectReader& port, const std::string& key, int family, std::vector<net::IpPrefix>& out,
                    std::vector<std::string>& errors) {
  if (!port.has(key)) return;
  const json& list = port.raw(key);
  if (!list.is_array()) {
    port.error(key, "must be an array of addresses like \"" + std::string(family == 4 ? "10.1.0.1/24" : "fd00:1::1/64") +
                        "\", got " + type_name(list));
    return;
  }
  if (list.size() > 16) {
    port.error(key, "at most 16 addresses, got " + std::to_string(list.size()));
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    std::string path = port.at(key) + "[" + std::to_string(i) + "]";
    if (!list[i].is_string()) {
      errors.push_back(path + ": must be a string like \"" +
                       std::string(family == 4 ? "10.1.0.1/24" : "fd00:1::1/64") + "\", got " + type_name(list[i]));
      continue;
    }
    std::string text = list[i].get<std::string>();
    auto prefix = net::parse_prefix(text);
    if (!prefix || prefix->addr.family != family) {
      errors.push_back(path + ": must be an IPv" + std::to_string(family) + " address with its prefix length, got '" +
                       text + "'");
      continue;
    }
    if (prefix->len == 0) {
      errors.push_back(path + ": prefix length must be at least 1, got '" + text + "'");
      continue;
    }
    const auto& b = prefix->addr.bytes;
    bool bad = family == 4 ? (b[0] == 0 || b[0] == 127 || b[0] >= 224) : (b[0] == 0xff || prefix->addr == net::IpAddr{6, {}});
    if (family == 6) {
      net::IpAddr loopback{6, {}};
      loopback.bytes[15] = 1;
      bad = bad || prefix->addr == loopback;
    }
    if (bad) {
      errors.push_back(path + ": must be a unicast address, got '" + text + "'");
      continue;
    }
    if (family == 4 && prefix->len <= 30) {
      uint32_t host = prefix->addr.v4_host() & ((1u << (32 - prefix->len)) - 1);
      if (host == 0 || host == (1u << (32 - prefix->len)) - 1) {
        errors.push_back(path + ": " + text + " is the subnet's network or broadcast address");
        continue;
      }
    }
    out.push_back(*prefix);
  }
}

void read_port(const ObjectReader& port, PortConfig& out, std::vector<std::string>& errors) {
  port.allow_only({"name", "device", "devargs", "rx_queues", "tx_queues", "rx_descriptors", "tx_descriptors", "mtu",
                   "mac", "promiscuous", "rss", "ipv4", "ipv6", "pipeline", "zone", "conntrack_zone", "steering"});
  port.required("name");
  port.required("device");
  if (port.string("name", out.name) && !is_name(out.name))
    port.error("name", std::string(kNameRule) + ", got '" + out.name + "'");
  if (port.string("device", out.device)) {
    out.is_pci = is_pci_address(out.device);
    static const std::regex vdev(R"(^net_[a-z_]+[0-9]*$)");
    if (!out.is_pci && !std::regex_match(out.device, vdev))
      port.error("device", "must be a vdev name like net_af_packet0 or a PCI address like 0000:01:00.0, got '" +
                               out.device + "'");
    if (out.is_pci && out.device.size() == 7) out.device = "0000:" + out.device;
  }
  if (port.string("devargs", out.devargs) && out.devargs.find_first_of(" \t\n") != std::string::npos)
    port.error("devargs", "must not contain white space, got '" + out.devargs + "'");
  port.uint("rx_queues", out.rx_queues, 1, kMaxQueues);
  port.uint("tx_queues", out.tx_queues, 1, kMaxQueues);
  port.uint("rx_descriptors", out.rx_descriptors, 64, 16384);
  port.uint("tx_descriptors", out.tx_descriptors, 64, 16384);
  port.uint("mtu", out.mtu, 68, 9600);
  std::string mac;
  if (port.string("mac", mac)) {
    out.mac = parse_mac(mac);
    if (!out.mac) port.error("mac", "must look like 02:00:00:00:00:01, got '" + mac + "'");
    else if ((*out.mac)[0] & 1) port.error("mac", "must be a unicast address, got '" + mac + "'");
  }
  port.boolean("promiscuous", out.promiscuous);
  std::string rss = "symmetric";
  port.one_of("rss", rss, {"symmetric", "off"});
  out.rss = rss == "off" ? RssMode::Off : RssMode::Symmetric;
  read_addresses(port, "ipv4", 4, out.ipv4, errors);
  read_addresses(port, "ipv6", 6, out.ipv6, errors);
  size_t errors_before = errors.size();
  read_pipeline(port, out, errors);
  bool pipeline_read = port.has("pipeline") && errors.size() == errors_before;

  out.zone = out.name;  // a port is its own zone unless it says otherwise
  if (port.string("zone", out.zone) && !is_name(out.zone))
    port.error("zone", std::string(kNameRule) + ", got '" + out.zone + "'");
  port.uint("conntrack_zone", out.conntrack_zone, 0, 65535);
  read_enum(port, "steering", out.steering, kSteeringNames);
  // A port without conntrack may still be a zone (the egress of a tracked port), but it
  // has no flows to key or to steer. Judged only on a pipeline that was read cleanly.
  if (pipeline_read && !out.tracked()) {
    if (port.has("conntrack_zone")) port.error("conntrack_zone", "only ports with the conntrack stage track flows");
    if (port.has("steering")) port.error("steering", "only ports with the conntrack stage steer flows");
  }
  if (out.steering == Steering::Hardware && out.rss == RssMode::Off)
    port.error("steering", "hardware steering needs \"rss\": \"symmetric\"");
}

void read_workers(const json& root, Config& config, std::vector<std::string>& errors) {
  if (!root.contains("workers")) return;
  const json& v = root.at("workers");
  if (v.is_string()) {
    if (v.get<std::string>() != "auto") errors.push_back("workers: must be \"auto\" or an array of workers, got " + show(v));
    return;
  }
  if (!v.is_array() || v.empty()) {
    errors.push_back("workers: must be \"auto\" or a non-empty array of workers, got " + show(v));
    return;
  }
  config.workers_auto = false;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string path = "workers[" + std::to_string(i) + "]";
    if (!v[i].is_object()) {
      errors.push_back(path + ": must be an object {\"lcore\": N, \"rx\": [...]}, got " + type_name(v[i]));
      continue;
    }
    ObjectReader worker(v[i], path, errors);
    worker.allow_only({"lcore", "rx"});
    worker.required("lcore");
    worker.required("rx");
    WorkerConfig out;
    out.lcore = ~0u;
    worker.uint("lcore", out.lcore, 0, kMaxLcore);
    if (worker.has("rx")) {
      const json& rx = worker.raw("rx");
      if (!rx.is_array() || rx.empty()) {
        worker.error("rx", "must be a non-empty array of {\"port\": NAME, \"queue\": N}, got " + show(rx));
      } else {
        for (size_t j = 0; j < rx.size(); ++j) {
          std::string rx_path = worker.at("rx") + "[" + std::to_string(j) + "]";
          if (!rx[j].is_object()) {
            errors.push_back(rx_path + ": must be an object {\"port\": NAME, \"queue\": N}, got " + type_name(rx[j]));
            continue;
          }
          ObjectReader binding(rx[j], rx_path, errors);
          binding.allow_only({"port", "queue"});
          binding.required("port");
          RxBinding b;
          binding.string("port", b.port);
          binding.uint("queue", b.queue, 0, kMaxQueues - 1);
          out.rx.push_back(b);
        }
      }
    }
    config.workers.push_back(out);
  }
}

// Cross-field checks: names, references, lcores, queue ownership.
void resolve_and_check(Config& config, std::vector<std::string>& errors) {
  std::map<std::string, size_t> names, devices;
  for (size_t i = 0; i < config.ports.size(); ++i) {
    const auto& port = config.ports[i];
    std::string path = "ports[" + std::to_string(i) + "]";
    if (!port.name.empty() && !names.emplace(port.name, i).second)
      errors.push_back(path + ".name: duplicate port name '" + port.name + "' (also ports[" +
                       std::to_string(names[port.name]) + "])");
    if (!port.device.empty() && !devices.emplace(port.device, i).second)
      errors.push_back(path + ".device: device '" + port.device + "' is already used by ports[" +
                       std::to_string(devices[port.device]) + "]");
  }
  for (size_t i = 0; i < config.ports.size(); ++i) {
    const auto& port = config.ports[i];
    for (size_t s = 0; s < port.pipeline.size(); ++s) {
      const auto& stage = port.pipeline[s];
      if (stage.peer.empty()) continue;
      std::string path = "ports[" + std::to_string(i) + "].pipeline[" + std::to_string(s) + "].peer";
      if (!names.count(stage.peer)) errors.push_back(path + ": unknown port '" + stage.peer + "'");
      else if (stage.peer == port.name) errors.push_back(path + ": must name another port, got its own name");
    }
    unsigned frame = port.mtu + 14 + 8 + 4;  // Ethernet, two VLAN tags, FCS
    unsigned usable = config.mempool.data_room > 128 ? config.mempool.data_room - 128 : 0;  // RTE_PKTMBUF_HEADROOM
    if (frame > usable)
      errors.push_back("ports[" + std::to_string(i) + "].mtu: " + std::to_string(port.mtu) +
                       " needs mempool.data_room >= " + std::to_string(frame + 128) + ", got " +
                       std::to_string(config.mempool.data_room));
  }

  const auto& lcores = config.eal.lcores;
  if (lcores.empty()) return;  // already reported
  std::vector<unsigned> worker_lcores;
  for (unsigned l : lcores)
    if (l != config.eal.main_lcore) worker_lcores.push_back(l);

  if (config.workers_auto) {
    if (worker_lcores.empty()) {
      errors.push_back("eal.lcores: need at least two lcores (the main lcore runs the control thread), got '" +
                       config.eal.lcores_spec + "'");
      return;
    }
    // Round-robin every (port, queue) over the worker lcores.
    size_t n = 0;
    std::vector<WorkerConfig> workers;
    for (unsigned l : worker_lcores) workers.push_back(WorkerConfig{l, {}});
    for (const auto& port : config.ports)
      for (unsigned q = 0; q < port.rx_queues; ++q) workers[n++ % workers.size()].rx.push_back(RxBinding{port.name, q});
    std::erase_if(workers, [](const WorkerConfig& w) { return w.rx.empty(); });
    config.workers = workers;
  } else {
    std::map<unsigned, size_t> seen_lcores;
    std::map<std::pair<std::string, unsigned>, size_t> owner;
    for (size_t i = 0; i < config.workers.size(); ++i) {
      const auto& worker = config.workers[i];
      std::string path = "workers[" + std::to_string(i) + "]";
      if (worker.lcore != ~0u) {
        if (worker.lcore == config.eal.main_lcore)
          errors.push_back(path + ".lcore: " + std::to_string(worker.lcore) +
                           " is the main lcore, which runs the control thread");
        else if (std::find(lcores.begin(), lcores.end(), worker.lcore) == lcores.end())
          errors.push_back(path + ".lcore: " + std::to_string(worker.lcore) + " is not in eal.lcores '" +
                           config.eal.lcores_spec + "'");
        if (!seen_lcores.emplace(worker.lcore, i).second)
          errors.push_back(path + ".lcore: lcore " + std::to_string(worker.lcore) + " is already used by workers[" +
                           std::to_string(seen_lcores[worker.lcore]) + "]");
      }
      for (size_t j = 0; j < worker.rx.size(); ++j) {
        const auto& b = worker.rx[j];
        std::string rx_path = path + ".rx[" + std::to_string(j) + "]";
        const PortConfig* port = config.find_port(b.port);
        if (b.port.empty()) continue;
        if (!port) {
          errors.push_back(rx_path + ".port: unknown port '" + b.port + "'");
          continue;
        }
        if (b.queue >= port->rx_queues) {
          errors.push_back(rx_path + ".queue: port '" + b.port + "' has " + std::to_string(port->rx_queues) +
                           " rx queue(s), got queue " + std::to_string(b.queue));
          continue;
        }
        auto [it, fresh] = owner.emplace(std::make_pair(b.port, b.queue), i);
        if (!fresh)
          errors.push_back(rx_path + ": queue " + std::to_string(b.queue) + " of port '" + b.port +
                           "' is already polled by workers[" + std::to_string(it->second) + "]");
      }
    }
    for (size_t i = 0; i < config.ports.size(); ++i)
      for (unsigned q = 0; q < config.ports[i].rx_queues; ++q)
        if (!config.ports[i].name.empty() && !owner.count({config.ports[i].name, q}))
          errors.push_back("ports[" + std::to_string(i) + "].rx_queues: queue " + std::to_string(q) +
                           " is polled by no worker");
  }

  // Every worker owns one TX queue on every port (queue index = worker index).
  unsigned worker_count = static_cast<unsigned>(config.workers.size());
  for (size_t i = 0; i < config.ports.size(); ++i) {
    auto& port = config.ports[i];
    if (port.tx_queues == 0) port.tx_queues = std::max(1u, worker_count);
    else if (port.tx_queues < worker_count)
      errors.push_back("ports[" + std::to_string(i) + "].tx_queues: must be at least the number of workers (" +
                       std::to_string(worker_count) + "), got " + std::to_string(port.tx_queues));
  }
}

// routes, neighbours, icmp, neighbour: read as written; references resolved later.
void read_l3(const ObjectReader& top, const json& root, Config& config, std::vector<std::string>& errors) {
  if (root.contains("routes")) {
    const json& routes = root.at("routes");
    if (!routes.is_array()) {
      top.error("routes", "must be an array of routes, got " + type_name(routes));
    } else {
      for (size_t i = 0; i < routes.size(); ++i) {
        std::string path = "routes[" + std::to_string(i) + "]";
        if (!routes[i].is_object()) {
          errors.push_back(path + ": must be an object {\"prefix\": ..., \"via\": ...}, got " + type_name(routes[i]));
          continue;
        }
        ObjectReader r(routes[i], path, errors);
        r.allow_only({"prefix", "via", "port", "nexthops"});
        r.required("prefix");
        RouteConfig route;
        std::string text;
        if (r.string("prefix", text)) {
          auto prefix = net::parse_prefix(text);
          if (!prefix) r.error("prefix", "must be an IPv4 or IPv6 prefix like 10.2.0.0/16, got '" + text + "'");
          else route.prefix = prefix->network();
        }
        auto read_hop = [&](const ObjectReader& hop) {
          NextHopConfig nh;
          std::string via;
          if (hop.string("via", via)) {
            auto a = net::parse_ip(via);
            if (!a) hop.error("via", "must be an IPv4 or IPv6 address, got '" + via + "'");
            else nh.via = *a;
          }
          hop.string("port", nh.port);
          if (!hop.has("via") && !hop.has("port"))
            errors.push_back(hop.at("via") + ": a next hop needs \"via\" (a gateway address), \"port\", or both");
          route.nexthops.push_back(nh);
        };
        if (r.has("nexthops")) {
          if (r.has("via") || r.has("port")) r.error("nexthops", "give either nexthops or via/port, not both");
          const json& hops = r.raw("nexthops");
          if (!hops.is_array() || hops.empty() || hops.size() > kMaxEcmp) {
            r.error("nexthops", "must be an array of 1.." + std::to_string(kMaxEcmp) + " next hops, got " + show(hops));
          } else {
            for (size_t j = 0; j < hops.size(); ++j) {
              std::string hop_path = r.at("nexthops") + "[" + std::to_string(j) + "]";
              if (!hops[j].is_object()) {
                errors.push_back(hop_path + ": must be an object {\"via\": ..., \"port\": ...}, got " +
                                 type_name(hops[j]));
                continue;
              }
              ObjectReader hop(hops[j], hop_path, errors);
              hop.allow_only({"via", "port"});
              read_hop(hop);
            }
          }
        } else {
          read_hop(r);
        }
        config.routes.push_back(route);
      }
    }
  }

  if (root.contains("neighbours")) {
    const json& list = root.at("neighbours");
    if (!list.is_array()) {
      top.error("neighbours", "must be an array of static neighbours, got " + type_name(list));
    } else {
      for (size_t i = 0; i < list.size(); ++i) {
        std::string path = "neighbours[" + std::to_string(i) + "]";
        if (!list[i].is_object()) {
          errors.push_back(path + ": must be an object {\"address\": ..., \"mac\": ...}, got " + type_name(list[i]));
          continue;
        }
        ObjectReader n(list[i], path, errors);
        n.allow_only({"address", "mac", "port"});
        n.required("address");
        n.required("mac");
        NeighbourConfig neighbour;
        std::string text;
        if (n.string("address", text)) {
          auto a = net::parse_ip(text);
          if (!a) n.error("address", "must be an IPv4 or IPv6 address, got '" + text + "'");
          else neighbour.address = *a;
        }
        if (n.string("mac", text)) {
          auto mac = parse_mac(text);
          if (!mac || ((*mac)[0] & 1)) n.error("mac", "must be a unicast MAC like 02:00:00:00:00:01, got '" + text + "'");
          else neighbour.mac = *mac;
        }
        n.string("port", neighbour.port);
        config.neighbours.push_back(neighbour);
      }
    }
  }

  std::optional<ObjectReader> icmp_storage, neighbour_storage;
  if (auto* icmp = top.object("icmp", icmp_storage)) {
    icmp->allow_only({"rate_per_second", "burst"});
    icmp->uint("rate_per_second", config.icmp.rate_per_second, 0, 1000000);
    icmp->uint("burst", config.icmp.burst, 1, 100000);
  }
  if (auto* n = top.object("neighbour", neighbour_storage)) {
    n->allow_only({"reachable_ms", "stale_ms", "retransmit_ms", "probes", "queue_packets", "capacity"});
    n->uint("reachable_ms", config.neighbour.reachable_ms, 1000, 3600000);
    n->uint("stale_ms", config.neighbour.stale_ms, 1000, 86400000);
    n->uint("retransmit_ms", config.neighbour.retransmit_ms, 100, 60000);
    n->uint("probes", config.neighbour.probes, 1, 10);
    n->uint("queue_packets", config.neighbour.queue_packets, 0, 1024);
    n->uint("capacity", config.neighbour.capacity, 64, 1u << 20);
  }
}

// Addresses against pipelines, overlapping subnets, and every route's and static
// neighbour's port, found from the connected subnets when not written.
void resolve_l3(Config& config, std::vector<std::string>& errors) {
  struct Connected {
    net::IpPrefix prefix;
    size_t port;
    std::string path;
  };
  std::vector<Connected> connected;
  for (size_t i = 0; i < config.ports.size(); ++i) {
    const auto& port = config.ports[i];
    std::string path = "ports[" + std::to_string(i) + "]";
    bool has_addresses = !port.ipv4.empty() || !port.ipv6.empty();
    if (port.routed() && !has_addresses)
      errors.push_back(path + ".pipeline: the route stage needs at least one address in ipv4 or ipv6");
    if (!port.routed() && has_addresses)
      errors.push_back(path + ": addresses (ipv4, ipv6) need the route stage in the pipeline");
    for (const auto* list : {&port.ipv4, &port.ipv6}) {
      for (size_t a = 0; a < list->size(); ++a) {
        const auto& prefix = (*list)[a];
        std::string a_path = path + (prefix.addr.family == 4 ? ".ipv4[" : ".ipv6[") + std::to_string(a) + "]";
        for (const auto& other : connected) {
          if (other.prefix.addr.family != prefix.addr.family) continue;
          uint8_t len = std::min(other.prefix.len, prefix.len);
          if (net::IpPrefix{other.prefix.addr, len}.contains(prefix.addr) && other.port != i)
            errors.push_back(a_path + ": " + prefix.str() + " overlaps " + other.path + " " + other.prefix.str() +
                             " on another port");
          else if (other.prefix.addr == prefix.addr)
            errors.push_back(a_path + ": " + prefix.addr.str() + " is already assigned at " + other.path);
        }
        connected.push_back({prefix, i, a_path});
      }
    }
  }
  auto port_for = [&](const net::IpAddr& a) -> std::optional<size_t> {
    const Connected* best = nullptr;
    for (const auto& c : connected)
      if (c.prefix.contains(a) && (!best || c.prefix.len > best->prefix.len)) best = &c;
    if (!best) return std::nullopt;
    return best->port;
  };
  auto check_port = [&](const std::string& path, const std::string& name) {
    const PortConfig* port = config.find_port(name);
    if (!port) errors.push_back(path + ": unknown port '" + name + "'");
    else if (!port->routed()) errors.push_back(path + ": port '" + name + "' has no route stage");
    return port != nullptr && port->routed();
  };

  std::set<std::pair<std::array<uint8_t, 16>, std::pair<uint8_t, uint8_t>>> seen;
  for (size_t i = 0; i < config.routes.size(); ++i) {
    auto& route = config.routes[i];
    std::string path = "routes[" + std::to_string(i) + "]";
    if (!seen.insert({route.prefix.addr.bytes, {route.prefix.addr.family, route.prefix.len}}).second)
      errors.push_back(path + ".prefix: " + route.prefix.str() + " is listed twice");
    for (size_t j = 0; j < route.nexthops.size(); ++j) {
      auto& hop = route.nexthops[j];
      std::string hop_path = route.nexthops.size() > 1 || j > 0 ? path + ".nexthops[" + std::to_string(j) + "]" : path;
      if (hop.via.is_set()) {
        if (hop.via.family != route.prefix.addr.family) {
          errors.push_back(hop_path + ".via: " + hop.via.str() + " is not an IPv" +
                           std::to_string(route.prefix.addr.family) + " address like the prefix");
          continue;
        }
        if (hop.port.empty()) {
          auto port = port_for(hop.via);
          if (!port) {
            errors.push_back(hop_path + ".via: " + hop.via.str() + " is in no connected subnet; add \"port\"");
            continue;
          }
          hop.port = config.ports[*port].name;
        }
      }
      if (check_port(hop_path + ".port", hop.port)) {
        const PortConfig* port = config.find_port(hop.port);
        bool v4 = route.prefix.addr.family == 4;
        if ((v4 ? port->ipv4 : port->ipv6).empty())
          errors.push_back(hop_path + ".port: port '" + hop.port + "' has no " + (v4 ? "IPv4" : "IPv6") +
                           " address to resolve next hops from");
      }
    }
  }

  for (size_t i = 0; i < config.neighbours.size(); ++i) {
    auto& n = config.neighbours[i];
    std::string path = "neighbours[" + std::to_string(i) + "]";
    if (n.port.empty()) {
      auto port = port_for(n.address);
      if (!port) {
        errors.push_back(path + ".address: " + n.address.str() + " is in no connected subnet; add \"port\"");
        continue;
      }
      n.port = config.ports[*port].name;
    }
    check_port(path + ".port", n.port);
  }
}

// "conntrack": the flow tables' sizes and the tracker's settings.
void read_conntrack(const ObjectReader& top, ConntrackConfig& out) {
  std::optional<ObjectReader> storage, timeouts_storage;
  const ObjectReader* ct = top.object("conntrack", storage);
  if (!ct) return;
  ct->allow_only({"capacity", "capacity_ipv6", "tcp_liberal", "tcp_loose", "later_fragments", "timeouts"});
  ct->uint("capacity", out.capacity, 1024, 1u << 26);
  ct->uint_or_zero("capacity_ipv6", out.capacity_ipv6, 1024, 1u << 24, "no IPv6 tracking");
  ct->boolean("tcp_liberal", out.tcp_liberal);
  ct->boolean("tcp_loose", out.tcp_loose);
  read_enum(*ct, "later_fragments", out.later_fragments, kFragmentPolicyNames);
  if (const ObjectReader* timeouts = ct->object("timeouts", timeouts_storage)) {
    std::vector<std::string> names;
    for (const auto& field : kTimeoutFields) names.push_back(field.name);
    timeouts->allow_only(names);
    for (const auto& field : kTimeoutFields)
      timeouts->uint(field.name, out.timeouts.*field.seconds, 1, kMaxTimeoutSeconds);
  }
}

// One element of a "value or list of values" key, with the path to report it under:
// `key` when the value was written alone, `key[i]` inside an array.
struct ListItem {
  std::string path;
  const json* value;
};

// `key` holds one item (a string; an integer too when `numbers`) or a non-empty array
// of items; anything else is reported as not being `expected`.
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

// "from": "inside" or ["inside", "dmz"]; whether the names exist is checked later.
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

// "src": "10.0.0.0/8", "fd00::5" (a host) or a list of them. Unlike routes, host bits
// are an error here: "10.0.0.1/8" in a filter is more likely a typo than a wish.
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

// 80 or "8000-8080"; first > last is returned as read, for the caller to report.
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

// ["new", "established"] -> bits, bit i for names[i]; each name at most once.
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

// "tcp_flags": {"mask": ["syn", "ack"], "set": ["syn"]}: (flags & mask) == set.
bool read_tcp_flags(const ObjectReader& rule, FirewallRule& out, std::vector<std::string>& errors) {
  std::optional<ObjectReader> storage;
  const ObjectReader* flags = rule.object("tcp_flags", storage);
  if (!flags) return !rule.has("tcp_flags");
  flags->allow_only({"mask", "set"});
  flags->required("mask");
  bool mask_ok = flags->has("mask") && read_bits(*flags, "mask", kTcpFlagNames, "TCP flag", false, out.tcp_flags_mask, errors);
  bool set_ok = !flags->has("set") || read_bits(*flags, "set", kTcpFlagNames, "TCP flag", true, out.tcp_flags_set, errors);
  if (!mask_ok || !set_ok || !flags->has("set")) return mask_ok && set_ok;
  bool ok = true;
  const json& set = flags->raw("set");
  for (size_t i = 0; i < set.size(); ++i) {
    const std::string name = set[i].get<std::string>();
    auto bit = static_cast<uint8_t>(
        1u << (std::find(kTcpFlagNames.begin(), kTcpFlagNames.end(), name) - kTcpFlagNames.begin()));
    if (!(out.tcp_flags_mask & bit)) {
      errors.push_back(flags->at("set") + "[" + std::to_string(i) + "]: '" + name +
                       "' is not in mask (set must be within mask)");
      ok = false;
    }
  }
  return ok;
}

int protocol_number(const json& v) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= 255) return static_cast<int>(v.get<uint64_t>());
  if (v.is_string())
    for (const auto& p : kProtocolNames)
      if (v.get<std::string>() == p.name) return p.number;
  return -1;
}

// Which families a prefix list admits: bit 0 IPv4, bit 1 IPv6; an empty list admits both.
unsigned families(const std::vector<net::IpPrefix>& list) {
  if (list.empty()) return 3;
  unsigned mask = 0;
  for (const auto& p : list) mask |= p.addr.family == 4 ? 1u : 2u;
  return mask;
}

std::string family_only(unsigned mask) { return mask == 1 ? "IPv4 only" : "IPv6 only"; }

void read_rule(const ObjectReader& r, const std::string& path, FirewallRule& rule, std::vector<std::string>& errors) {
  r.allow_only({"name", "from", "to", "in_port", "out_port", "src", "dst", "protocol", "src_ports", "dst_ports",
                "tcp_flags", "state", "action"});
  r.required("action");
  if (r.string("name", rule.name)) {
    static const std::regex rule_name_re(R"(^[A-Za-z0-9_.-]{1,64}$)");
    if (!std::regex_match(rule.name, rule_name_re)) {
      r.error("name", "must be 1..64 characters of A-Z a-z 0-9 _ . -, got '" + rule.name + "'");
      rule.name.clear();
    }
  }
  read_name_list(r, "from", "zone name", rule.from_zones, errors);
  read_name_list(r, "to", "zone name", rule.to_zones, errors);
  read_name_list(r, "in_port", "port name", rule.in_ports, errors);
  read_name_list(r, "out_port", "port name", rule.out_ports, errors);
  bool addresses_ok = read_prefix_list(r, "src", rule.src, errors);
  addresses_ok = read_prefix_list(r, "dst", rule.dst, errors) && addresses_ok;
  bool protocol_ok = true;
  if (r.has("protocol")) {
    rule.protocol = protocol_number(r.raw("protocol"));
    if (rule.protocol < 0) {
      r.error("protocol", "must be tcp, udp, icmp, icmpv6 or 0..255, got " + show(r.raw("protocol")));
      protocol_ok = false;
    }
  }
  bool src_ports_ok = read_port_list(r, "src_ports", rule.src_ports, errors);
  bool dst_ports_ok = read_port_list(r, "dst_ports", rule.dst_ports, errors);
  bool flags_ok = read_tcp_flags(r, rule, errors);
  if (r.has("state")) read_bits(r, "state", kStateNames, "state", false, rule.states, errors);
  read_enum(r, "action", rule.action, kActionNames);

  // What the rule's keys say about each other. Nothing to add when a key was already wrong.
  if (!protocol_ok) return;
  bool tcp_or_udp = rule.protocol == kTcp || rule.protocol == kUdp;
  if (r.has("src_ports") && src_ports_ok && !tcp_or_udp)
    r.error("src_ports", "needs \"protocol\": \"tcp\" or \"udp\"");
  if (r.has("dst_ports") && dst_ports_ok && !tcp_or_udp)
    r.error("dst_ports", "needs \"protocol\": \"tcp\" or \"udp\"");
  if (r.has("tcp_flags") && flags_ok && rule.protocol != kTcp) r.error("tcp_flags", "needs \"protocol\": \"tcp\"");
  if (!addresses_ok) return;
  unsigned src = families(rule.src), dst = families(rule.dst), common = src & dst;
  auto restricting = [&](unsigned family) {
    if (src == family && dst == family) return "src and dst are " + family_only(family);
    return (src == family ? "src is " : "dst is ") + family_only(family);
  };
  if (common == 0)
    errors.push_back(path + ": src is " + family_only(src) + " and dst is " + family_only(dst) +
                     ": the rule can never match");
  else if (rule.protocol == kIcmp && common == 2)
    errors.push_back(path + ": protocol icmp is IPv4 only and " + restricting(2) +
                     ": the rule can never match (ICMP for IPv6 is icmpv6)");
  else if (rule.protocol == kIcmpv6 && common == 1)
    errors.push_back(path + ": protocol icmpv6 is IPv6 only and " + restricting(1) +
                     ": the rule can never match (ICMP for IPv4 is icmp)");
}

// Rule names are counter and log labels: unique, written or "rule<index>".
void name_rules(const std::vector<bool>& written, std::vector<FirewallRule>& rules, std::vector<std::string>& errors) {
  std::map<std::string, size_t> owner;
  for (size_t i = 0; i < rules.size(); ++i) {
    std::string path = "firewall.rules[" + std::to_string(i) + "]";
    if (!written[i]) rules[i].name = "rule" + std::to_string(i);
    if (rules[i].name.empty()) continue;  // an invalid name, already reported
    auto [it, fresh] = owner.emplace(rules[i].name, i);
    if (fresh) continue;
    std::string other = "firewall.rules[" + std::to_string(it->second) + "]";
    if (!written[i])
      errors.push_back(path + ": its default name '" + rules[i].name + "' is already taken by " + other +
                       "; give it a \"name\"");
    else if (!written[it->second])
      errors.push_back(path + ".name: duplicate rule name '" + rules[i].name + "' (the default name of " + other + ")");
    else
      errors.push_back(path + ".name: duplicate rule name '" + rules[i].name + "' (also " + other + ")");
  }
}

// "firewall": read as written; zones and ports are checked against the ports later.
void read_firewall(const ObjectReader& top, FirewallConfig& out, std::vector<std::string>& errors) {
  std::optional<ObjectReader> storage, limit_storage;
  const ObjectReader* fw = top.object("firewall", storage);
  if (!fw) return;
  out.enabled = true;
  fw->allow_only({"default_policy", "policies", "rules", "reject_limit"});
  read_enum(*fw, "default_policy", out.default_policy, kDefaultPolicyNames);

  if (fw->has("policies")) {
    const std::string shape = R"({"from": ZONE, "to": ZONE, "action": ...})";
    const json& list = fw->raw("policies");
    if (!list.is_array()) {
      fw->error("policies", "must be an array of " + shape + ", got " + type_name(list));
    } else {
      std::map<std::pair<std::string, std::string>, size_t> seen;
      for (size_t i = 0; i < list.size(); ++i) {
        std::string path = fw->at("policies") + "[" + std::to_string(i) + "]";
        ZonePolicy policy;
        if (!list[i].is_object()) {
          errors.push_back(path + ": must be an object " + shape + ", got " + type_name(list[i]));
          out.policies.push_back(policy);
          continue;
        }
        ObjectReader p(list[i], path, errors);
        p.allow_only({"from", "to", "action"});
        p.required("from");
        p.required("to");
        p.required("action");
        p.string("from", policy.from);
        p.string("to", policy.to);
        read_enum(p, "action", policy.action, kActionNames);
        if (!policy.from.empty() && !policy.to.empty()) {
          auto [it, fresh] = seen.emplace(std::make_pair(policy.from, policy.to), i);
          if (!fresh)
            errors.push_back(path + ": duplicate policy from '" + policy.from + "' to '" + policy.to +
                             "' (also firewall.policies[" + std::to_string(it->second) + "])");
        }
        out.policies.push_back(policy);
      }
    }
  }

  if (fw->has("rules")) {
    const json& list = fw->raw("rules");
    if (!list.is_array()) {
      fw->error("rules", "must be an array of rules, got " + type_name(list));
    } else if (list.size() > kMaxFirewallRules) {
      fw->error("rules", "at most " + std::to_string(kMaxFirewallRules) + " rules, got " + std::to_string(list.size()));
    } else {
      std::vector<bool> written;
      for (size_t i = 0; i < list.size(); ++i) {
        std::string path = fw->at("rules") + "[" + std::to_string(i) + "]";
        FirewallRule rule;
        written.push_back(list[i].is_object() && list[i].contains("name"));
        if (!list[i].is_object())
          errors.push_back(path + ": must be an object {..., \"action\": ...}, got " + type_name(list[i]));
        else
          read_rule(ObjectReader(list[i], path, errors), path, rule, errors);
        out.rules.push_back(rule);
      }
      name_rules(written, out.rules, errors);
    }
  }

  if (const ObjectReader* limit = fw->object("reject_limit", limit_storage)) {
    limit->allow_only({"rate_per_second", "burst"});
    limit->uint("rate_per_second", out.reject_limit.rate_per_second, 0, 1000000);
    limit->uint("burst", out.reject_limit.burst, 1, 100000);
  }
}

// conntrack and firewall against the ports: some port tracks, and every zone and port
// a rule or policy names exists (an ingress one with the conntrack stage).
void resolve_flow(const json& root, const Config& config, std::vector<std::string>& errors) {
  const bool tracked = config.tracked();
  if (root.contains("conntrack") && !tracked) errors.push_back("conntrack: no port's pipeline has the conntrack stage");
  // One flow must reach one worker whichever port it arrives on: hashed by the NIC or
  // by the workers, not a mixture (the runtime refuses it too, at start).
  std::optional<size_t> first_explicit;
  for (size_t i = 0; i < config.ports.size(); ++i) {
    const auto& port = config.ports[i];
    if (!port.tracked() || port.steering == Steering::Auto) continue;
    if (!first_explicit) {
      first_explicit = i;
      continue;
    }
    const auto& other = config.ports[*first_explicit];
    if (other.steering != port.steering)
      errors.push_back("ports[" + std::to_string(i) + "].steering: '" + kSteeringNames[static_cast<size_t>(port.steering)] +
                       "' here but '" + kSteeringNames[static_cast<size_t>(other.steering)] + "' at ports[" +
                       std::to_string(*first_explicit) + "]: every tracked port must steer the same way");
  }
  if (!config.firewall.enabled) return;
  if (!tracked) {
    errors.push_back("firewall: no port's pipeline has the conntrack stage");
    return;
  }
  std::vector<std::string> zones;
  std::set<std::string> tracked_zones;
  for (const auto& port : config.ports) {
    if (std::find(zones.begin(), zones.end(), port.zone) == zones.end()) zones.push_back(port.zone);
    if (port.tracked()) tracked_zones.insert(port.zone);
  }
  auto check_zone = [&](const std::string& path, const std::string& zone, bool ingress) {
    if (std::find(zones.begin(), zones.end(), zone) == zones.end())
      errors.push_back(path + ": unknown zone '" + zone + "' (known: " + join(zones) + ")");
    else if (ingress && !tracked_zones.count(zone))
      errors.push_back(path + ": zone '" + zone + "' has no port with the conntrack stage, so nothing from it is classified");
  };
  auto check_port = [&](const std::string& path, const std::string& name, bool ingress) {
    const PortConfig* port = config.find_port(name);
    if (!port) errors.push_back(path + ": unknown port '" + name + "'");
    else if (ingress && !port->tracked())
      errors.push_back(path + ": port '" + name + "' has no conntrack stage, so nothing from it is classified");
  };

  for (size_t i = 0; i < config.firewall.policies.size(); ++i) {
    const auto& policy = config.firewall.policies[i];
    std::string path = "firewall.policies[" + std::to_string(i) + "]";
    check_zone(path + ".from", policy.from, true);
    check_zone(path + ".to", policy.to, false);
  }
  const json* rules = root.at("firewall").contains("rules") ? &root.at("firewall").at("rules") : nullptr;
  for (size_t i = 0; i < config.firewall.rules.size(); ++i) {
    const auto& rule = config.firewall.rules[i];
    const json& written = rules->at(i);
    // The path of the j-th name under `key`: "key" when written alone, "key[j]" in an array.
    auto item = [&](const char* key, size_t j) {
      std::string path = "firewall.rules[" + std::to_string(i) + "]." + key;
      return written.at(key).is_array() ? path + "[" + std::to_string(j) + "]" : path;
    };
    for (size_t j = 0; j < rule.from_zones.size(); ++j) check_zone(item("from", j), rule.from_zones[j], true);
    for (size_t j = 0; j < rule.to_zones.size(); ++j) check_zone(item("to", j), rule.to_zones[j], false);
    for (size_t j = 0; j < rule.in_ports.size(); ++j) check_port(item("in_port", j), rule.in_ports[j], true);
    for (size_t j = 0; j < rule.out_ports.size(); ++j) check_port(item("out_port", j), rule.out_ports[j], false);
  }
}

std::string json_error_position(const std::string& text, size_t byte) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i + 1 < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return std::to_string(line) + ":" + std::to_string(column);
}

// nlohmann keeps the last of two equal keys without a word; a config where
// "burst_size" appears twice is a mistake to report, not a choice to make silently.
class DuplicateKeyFinder {
 public:
  explicit DuplicateKeyFinder(std::vector<std::string>& errors) : errors_(errors) {}

  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: frames_.push_back(Frame{true}); break;
      case json::parse_event_t::array_start: frames_.push_back(Frame{false}); break;
      case json::parse_event_t::key:
        frames_.back().key = parsed.get<std::string>();
        if (!frames_.back().keys.insert(frames_.back().key).second)
          errors_.push_back(path() + ": duplicate key (each key may appear once)");
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        frames_.pop_back();
        [[fallthrough]];
      case json::parse_event_t::value:
        if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
        break;
    }
    return true;
  }

 private:
  struct Frame {
    bool object;
    std::set<std::string> keys = {};
    std::string key = {};
    size_t index = 0;
  };
  std::string path() const {
    std::string out;
    for (const auto& f : frames_) {
      if (!f.object) {
        out.append("[").append(std::to_string(f.index)).append("]");
        continue;
      }
      if (!out.empty()) out += '.';
      out += f.key;
    }
    return out;
  }
  std::vector<Frame> frames_;
  std::vector<std::string>& errors_;
};

}  // namespace

const PortConfig* Config::find_port(const std::string& name) const {
  int i = port_index(name);
  return i < 0 ? nullptr : &ports[static_cast<size_t>(i)];
}

int Config::port_index(const std::string& name) const {
  for (size_t i = 0; i < ports.size(); ++i)
    if (ports[i].name == name) return static_cast<int>(i);
  return -1;
}

const std::vector<std::string>& log_level_names() {
  static const std::vector<std::string> names = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  return names;
}

ParseResult parse_config_text(const std::string& text, const std::string& source_name) {
  ParseResult result;
  json root;
  try {
    root = json::parse(text, DuplicateKeyFinder(result.errors));
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    // nlohmann prefixes "[json.exception.parse_error.101] parse error at line L, column C: "
    auto colon = what.find(": ");
    std::string reason = colon == std::string::npos ? what : what.substr(colon + 2);
    result.errors.clear();  // duplicate keys found before the syntax error do not matter now
    result.errors.push_back(source_name + ":" + json_error_position(text, e.byte) + ": malformed JSON: " + reason);
    return result;
  } catch (const json::exception& e) {
    // Number overflow (out_of_range.406) carries no byte offset: locate the token it quotes.
    std::string what = e.what();
    auto open = what.find('\'');
    auto close = what.rfind('\'');
    size_t byte = 0;
    if (open != std::string::npos && close > open) {
      auto at = text.find(what.substr(open + 1, close - open - 1));
      if (at != std::string::npos) byte = at + 1;
    }
    auto bracket = what.find("] ");
    std::string reason = bracket == std::string::npos ? what : what.substr(bracket + 2);
    result.errors.clear();
    result.errors.push_back(source_name + ":" + json_error_position(text, byte) + ": malformed JSON: " + reason);
    return result;
  }
  if (!root.is_object()) {
    result.errors.push_back("config: must be a JSON object, got " + type_name(root));
    return result;
  }

  Config config;
  auto& errors = result.errors;
  ObjectReader top(root, "", errors);
  top.allow_only({"eal", "ports", "workers", "burst_size", "mempool", "control", "logging", "routes", "neighbours",
                  "icmp", "neighbour", "conntrack", "firewall"});
  top.required("eal");
  top.required("ports");

  std::optional<ObjectReader> storage;
  if (auto* eal = top.object("eal", storage)) read_eal(*eal, config.eal);

  std::optional<ObjectReader> mempool_storage;
  if (auto* mempool = top.object("mempool", mempool_storage)) {
    mempool->allow_only({"mbufs", "cache_size", "data_room"});
    mempool->uint_or_zero("mbufs", config.mempool.mbufs, 1024, 1u << 24, "sized automatically");
    mempool->uint("cache_size", config.mempool.cache_size, 0, 512);
    mempool->uint("data_room", config.mempool.data_room, 1024, 65535);
  }

  if (top.has("ports")) {
    const json& ports = root.at("ports");
    if (!ports.is_array() || ports.empty()) {
      top.error("ports", "must be a non-empty array of ports, got " + show(ports));
    } else if (ports.size() > 32) {
      top.error("ports", "at most 32 ports, got " + std::to_string(ports.size()));
    } else {
      for (size_t i = 0; i < ports.size(); ++i) {
        std::string path = "ports[" + std::to_string(i) + "]";
        PortConfig port;
        if (!ports[i].is_object()) {
          errors.push_back(path + ": must be an object, got " + type_name(ports[i]));
        } else {
          read_port(ObjectReader(ports[i], path, errors), port, errors);
        }
        config.ports.push_back(port);
      }
    }
  }

  read_workers(root, config, errors);
  top.uint("burst_size", config.burst_size, 1, kMaxBurst);

  std::optional<ObjectReader> control_storage, http_storage;
  if (auto* control = top.object("control", control_storage)) {
    control->allow_only({"http", "telemetry"});
    control->boolean("telemetry", config.control.telemetry);
    if (auto* http = control->object("http", http_storage)) {
      http->allow_only({"enabled", "address", "port"});
      http->boolean("enabled", config.control.http.enabled);
      if (http->string("address", config.control.http.address)) {
        unsigned char buf[16];
        if (inet_pton(AF_INET, config.control.http.address.c_str(), buf) != 1 &&
            inet_pton(AF_INET6, config.control.http.address.c_str(), buf) != 1)
          http->error("address", "must be an IPv4 or IPv6 address, got '" + config.control.http.address + "'");
      }
      http->uint("port", config.control.http.port, 1, 65535);
    }
  }

  std::optional<ObjectReader> logging_storage;
  if (auto* logging = top.object("logging", logging_storage)) {
    logging->allow_only({"level"});
    logging->one_of("level", config.logging.level, log_level_names());
  }

  read_l3(top, root, config, errors);
  read_conntrack(top, config.conntrack);
  read_firewall(top, config.firewall, errors);

  if (errors.empty()) resolve_and_check(config, errors);
  if (errors.empty()) {
    resolve_l3(config, errors);
    resolve_flow(root, config, errors);
  }
  if (errors.empty()) result.config = std::move(config);
  return result;
}

ParseResult load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ParseResult result;
    result.errors.push_back(path + ": cannot read the config file");
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > (16u << 20)) {
    ParseResult result;
    result.errors.push_back(path + ": config file larger than 16 MiB");
    return result;
  }
  ParseResult result = parse_config_text(text.str(), path);
  if (result.config) result.config->source_path = path;
  return result;
}

namespace {

// A rule as the parser resolved it: lists as arrays (an empty one, "any", left out),
// protocol by name where it has one, a single port as a number and a range as "a-b".
json rule_json(const FirewallRule& rule) {
  json r = {{"name", rule.name},
            {"state", names_of_bits(rule.states, kStateNames)},
            {"action", kActionNames[static_cast<size_t>(rule.action)]}};
  auto names = [&](const char* key, const std::vector<std::string>& list) {
    if (!list.empty()) r[key] = list;
  };
  names("from", rule.from_zones);
  names("to", rule.to_zones);
  names("in_port", rule.in_ports);
  names("out_port", rule.out_ports);
  auto prefixes = [&](const char* key, const std::vector<net::IpPrefix>& list) {
    if (list.empty()) return;
    r[key] = json::array();
    for (const auto& p : list) r[key].push_back(p.str());
  };
  prefixes("src", rule.src);
  prefixes("dst", rule.dst);
  if (rule.protocol >= 0) {
    r["protocol"] = rule.protocol;
    for (const auto& p : kProtocolNames)
      if (p.number == rule.protocol) r["protocol"] = p.name;
  }
  auto ports = [&](const char* key, const std::vector<PortRange>& list) {
    if (list.empty()) return;
    r[key] = json::array();
    for (const auto& range : list) {
      if (range.first == range.last) r[key].push_back(range.first);
      else r[key].push_back(std::to_string(range.first) + "-" + std::to_string(range.last));
    }
  };
  ports("src_ports", rule.src_ports);
  ports("dst_ports", rule.dst_ports);
  if (rule.tcp_flags_mask)
    r["tcp_flags"] = {{"mask", names_of_bits(rule.tcp_flags_mask, kTcpFlagNames)},
                      {"set", names_of_bits(rule.tcp_flags_set, kTcpFlagNames)}};
  return r;
}

}  // namespace

json to_json(const Config& config) {
  json out;
  out["eal"] = {{"lcores", config.eal.lcores_spec},
                {"main_lcore", config.eal.main_lcore},
                {"hugepages", config.eal.hugepages},
                {"memory_mb", config.eal.memory_mb},
                {"file_prefix", config.eal.file_prefix},
                {"extra_args", config.eal.extra_args}};
  out["ports"] = json::array();
  for (const auto& port : config.ports) {
    json p = {{"name", port.name},
              {"device", port.device},
              {"devargs", port.devargs},
              {"rx_queues", port.rx_queues},
              {"tx_queues", port.tx_queues},
              {"rx_descriptors", port.rx_descriptors},
              {"tx_descriptors", port.tx_descriptors},
              {"mtu", port.mtu},
              {"promiscuous", port.promiscuous},
              {"rss", port.rss == RssMode::Off ? "off" : "symmetric"}};
    if (port.mac) p["mac"] = mac_text(*port.mac);
    p["zone"] = port.zone;
    if (port.tracked()) {
      p["conntrack_zone"] = port.conntrack_zone;
      p["steering"] = kSteeringNames[static_cast<size_t>(port.steering)];
    }
    if (port.routed()) {
      p["ipv4"] = json::array();
      for (const auto& a : port.ipv4) p["ipv4"].push_back(a.str());
      p["ipv6"] = json::array();
      for (const auto& a : port.ipv6) p["ipv6"].push_back(a.str());
    }
    p["pipeline"] = json::array();
    for (const auto& stage : port.pipeline) {
      json s = {{"stage", stage.stage}};
      if (!stage.peer.empty()) s["peer"] = stage.peer;
      p["pipeline"].push_back(s);
    }
    out["ports"].push_back(p);
  }
  out["workers"] = json::array();
  for (const auto& worker : config.workers) {
    json w = {{"lcore", worker.lcore}, {"rx", json::array()}};
    for (const auto& b : worker.rx) w["rx"].push_back({{"port", b.port}, {"queue", b.queue}});
    out["workers"].push_back(w);
  }
  out["burst_size"] = config.burst_size;
  out["mempool"] = {{"mbufs", config.mempool.mbufs},
                    {"cache_size", config.mempool.cache_size},
                    {"data_room", config.mempool.data_room}};
  out["control"] = {{"http",
                     {{"enabled", config.control.http.enabled},
                      {"address", config.control.http.address},
                      {"port", config.control.http.port}}},
                    {"telemetry", config.control.telemetry}};
  out["logging"] = {{"level", config.logging.level}};
  if (config.routed()) {
    out["routes"] = json::array();
    for (const auto& route : config.routes) {
      json r = {{"prefix", route.prefix.str()}, {"nexthops", json::array()}};
      for (const auto& hop : route.nexthops) {
        json h = {{"port", hop.port}};
        if (hop.via.is_set()) h["via"] = hop.via.str();
        r["nexthops"].push_back(h);
      }
      out["routes"].push_back(r);
    }
    out["neighbours"] = json::array();
    for (const auto& n : config.neighbours)
      out["neighbours"].push_back({{"address", n.address.str()}, {"mac", mac_text(n.mac)}, {"port", n.port}});
    out["icmp"] = {{"rate_per_second", config.icmp.rate_per_second}, {"burst", config.icmp.burst}};
    out["neighbour"] = {{"reachable_ms", config.neighbour.reachable_ms},
                        {"stale_ms", config.neighbour.stale_ms},
                        {"retransmit_ms", config.neighbour.retransmit_ms},
                        {"probes", config.neighbour.probes},
                        {"queue_packets", config.neighbour.queue_packets},
                        {"capacity", config.neighbour.capacity}};
  }
  if (config.tracked()) {
    const auto& ct = config.conntrack;
    json timeouts = json::object();
    for (const auto& field : kTimeoutFields) timeouts[field.name] = ct.timeouts.*field.seconds;
    out["conntrack"] = {{"capacity", ct.capacity},
                        {"capacity_ipv6", ct.capacity_ipv6},
                        {"tcp_liberal", ct.tcp_liberal},
                        {"tcp_loose", ct.tcp_loose},
                        {"later_fragments", kFragmentPolicyNames[static_cast<size_t>(ct.later_fragments)]},
                        {"timeouts", timeouts}};
  }
  if (config.firewall.enabled) {
    const auto& fw = config.firewall;
    json policies = json::array();
    for (const auto& p : fw.policies)
      policies.push_back({{"from", p.from}, {"to", p.to}, {"action", kActionNames[static_cast<size_t>(p.action)]}});
    json rules = json::array();
    for (const auto& rule : fw.rules) rules.push_back(rule_json(rule));
    out["firewall"] = {{"default_policy", kActionNames[static_cast<size_t>(fw.default_policy)]},
                       {"policies", policies},
                       {"rules", rules},
                       {"reject_limit", {{"rate_per_second", fw.reject_limit.rate_per_second},
                                         {"burst", fw.reject_limit.burst}}}};
  }
  return out;
}

std::string format_mac(const std::array<uint8_t, 6>& mac) { return mac_text(mac);
}

}  // namespace sluice::config
