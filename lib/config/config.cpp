// parse_config_text: the JSON parsed, each section read by its own reader (sections.h),
// then the checks across sections; to_json: each section's writer, in one object.
#include "config/config.h"

#include <fstream>
#include <set>
#include <sstream>

#include "config/sections.h"

namespace sluice::config {

using nlohmann::json;
using namespace detail;

namespace {

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
                  "icmp", "neighbour", "conntrack", "firewall", "nat", "polling", "services"});
  top.required("eal");
  top.required("ports");

  read_eal(top, config.eal);
  read_mempool(top, config.mempool);
  read_ports(top, config.ports, errors);
  read_workers(top, config, errors);
  top.uint("burst_size", config.burst_size, 1, kMaxBurst);
  read_polling(top, config.polling);
  read_control(top, config.control);
  read_logging(top, config.logging);
  read_routes(top, config.routes, errors);
  read_neighbours(top, config.neighbours, errors);
  read_rate_limit(top, "icmp", config.icmp);
  read_neighbour_settings(top, config.neighbour);
  read_conntrack(top, config.conntrack);
  read_firewall(top, config.firewall, errors);
  read_nat(top, config.nat, errors);
  read_services(top, config.services, errors);
  // The load balancer's connections are NAT pairs: services alone bring NAT's defaults.
  if (!config.services.empty() && !top.has("nat")) config.nat.enabled = true;

  // Checks across sections run only on sections read cleanly: they index what was
  // written (resolve_firewall walks each rule's lists, for one).
  if (errors.empty()) {
    resolve_ports(config, errors);
    resolve_workers(config, errors);
  }
  if (errors.empty()) {
    resolve_l3(config, errors);
    resolve_conntrack(top, config, errors);
    resolve_firewall(top, config, errors);
    resolve_nat(top, config, errors);
  }
  if (errors.empty()) resolve_services(config, errors);
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

json to_json(const Config& config) {
  json out;
  out["eal"] = eal_json(config.eal);
  out["ports"] = ports_json(config.ports);
  out["workers"] = workers_json(config.workers);
  out["burst_size"] = config.burst_size;
  out["polling"] = polling_json(config.polling);
  out["mempool"] = mempool_json(config.mempool);
  out["control"] = control_json(config.control);
  out["logging"] = logging_json(config.logging);
  if (config.routed()) {
    out["routes"] = routes_json(config.routes);
    out["neighbours"] = neighbours_json(config.neighbours);
    out["icmp"] = rate_limit_json(config.icmp);
    out["neighbour"] = neighbour_settings_json(config.neighbour);
  }
  if (config.tracked()) out["conntrack"] = conntrack_json(config.conntrack);
  if (config.firewall.enabled) out["firewall"] = firewall_json(config.firewall);
  if (config.nat.enabled) out["nat"] = nat_json(config.nat);
  if (!config.services.empty()) out["services"] = services_json(config.services);
  return out;
}

std::string devarg_value(std::string_view devargs, std::string_view key) {
  size_t at = 0;
  while (at <= devargs.size()) {
    size_t end = devargs.find(',', at);
    if (end == std::string_view::npos) end = devargs.size();
    const std::string_view item = devargs.substr(at, end - at);
    if (item.size() > key.size() && item.substr(0, key.size()) == key && item[key.size()] == '=')
      return std::string(item.substr(key.size() + 1));
    at = end + 1;
  }
  return {};
}

std::string PortConfig::kernel_iface() const {
  for (const char* driver : {"net_af_packet", "eth_af_packet", "net_af_xdp", "net_tap"})
    if (device.rfind(driver, 0) == 0) return devarg_value(devargs, "iface");
  return {};
}

}  // namespace sluice::config
