// "ports": devices, queues, addresses, zones and each port's pipeline of stages.
#include <algorithm>
#include <map>
#include <regex>

#include "config/sections.h"

namespace sluice::config {

const PortConfig* Config::find_port(const std::string& name) const {
  int i = port_index(name);
  return i < 0 ? nullptr : &ports[static_cast<size_t>(i)];
}

int Config::port_index(const std::string& name) const {
  for (size_t i = 0; i < ports.size(); ++i)
    if (ports[i].name == name) return static_cast<int>(i);
  return -1;
}

namespace detail {

const std::vector<std::string> kSteeringNames = {"auto", "hardware", "software"};

namespace {

const std::vector<std::string> kStages = {"parse", "conntrack", "lb", "nat", "xconnect", "route"};
const std::vector<std::string> kOutputStages = {"xconnect", "route"};

bool is_pci_address(const std::string& device) {
  static const std::regex pci(R"(^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$)");
  return std::regex_match(device, pci);
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
    if (stage.stage == "lb" && !out.has_stage("conntrack"))
      errors.push_back(path + ": the lb stage needs the conntrack stage before it (it balances the connections conntrack opens)");
    if (stage.stage == "nat" && !out.has_stage("conntrack"))
      errors.push_back(path + ": the nat stage needs the conntrack stage before it (it translates the flows conntrack finds)");
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
    if (out.has_stage("lb") && !out.has_stage("nat"))
      port.error("pipeline", "the lb stage needs the nat stage after it (nat and nat_src rewrite its connections)");
    if (out.has_stage("lb") && out.has_stage("nat")) {
      size_t lb_at = 0, nat_at = 0;
      for (size_t k = 0; k < out.pipeline.size(); ++k) {
        if (out.pipeline[k].stage == "lb") lb_at = k;
        if (out.pipeline[k].stage == "nat") nat_at = k;
      }
      if (lb_at > nat_at) port.error("pipeline", "the lb stage comes before the nat stage");
    }
    if (out.has_stage("nat") && last != "route")
      port.error("pipeline", "the nat stage needs the route stage after it (translation is for routed traffic)");
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
  read_name(port, "name", out.name);
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
  read_name(port, "zone", out.zone);
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

}  // namespace

void read_ports(const ObjectReader& top, std::vector<PortConfig>& out, std::vector<std::string>& errors) {
  if (!top.has("ports")) return;
  const json& ports = top.raw("ports");
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
      out.push_back(port);
    }
  }
}

void resolve_ports(const Config& config, std::vector<std::string>& errors) {
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
}

json ports_json(const std::vector<PortConfig>& ports) {
  json out = json::array();
  for (const auto& port : ports) {
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
    if (port.mac) p["mac"] = format_mac(*port.mac);
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
    out.push_back(p);
  }
  return out;
}

}  // namespace detail
}  // namespace sluice::config
