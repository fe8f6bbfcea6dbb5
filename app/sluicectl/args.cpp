// Command-line words into what the API and dpdk-dumpcap take.
#include <charconv>

#include "format.h"

namespace sluicectl {

using nlohmann::json;

Query flow_query(const FlowFilterArgs& args) {
  Query q;
  if (args.prefix) q["address"] = *args.prefix;
  if (args.port) q["port"] = *args.port;
  if (args.protocol) q["protocol"] = *args.protocol;
  if (args.state) q["state"] = *args.state;
  if (args.zone) q["zone"] = *args.zone;
  if (args.limit) q["limit"] = *args.limit;
  if (args.cursor) q["cursor"] = *args.cursor;
  return q;
}

bool parse_address(const std::string& text, std::string& host, int& port, std::string& error) {
  std::string rest = text;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  std::string port_text;
  if (!rest.empty() && rest[0] == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos) {
      error = "--address: no ']' after the IPv6 address in '" + text + "'";
      return false;
    }
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') {
        error = "--address: expected ':PORT' after ']' in '" + text + "'";
        return false;
      }
      port_text = rest.substr(close + 2);
    }
  } else {
    const auto colon = rest.find(':');
    if (colon != std::string::npos && rest.find(':', colon + 1) != std::string::npos) {
      error = "--address: write an IPv6 address in brackets, as [" + rest + "]:9180";
      return false;
    }
    host = rest.substr(0, colon);
    if (colon != std::string::npos) port_text = rest.substr(colon + 1);
  }
  if (host.empty()) {
    error = "--address: no host in '" + text + "' (HOST:PORT, e.g. 127.0.0.1:9180)";
    return false;
  }
  port = 9180;
  if (!port_text.empty() || rest.back() == ':') {
    int p = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), p);
    if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || p < 1 || p > 65535) {
      error = "--address: port must be 1..65535, got '" + port_text + "'";
      return false;
    }
    port = p;
  }
  return true;
}

std::string eal_file_prefix(const json& config) {
  if (config.is_object() && config.contains("eal") && config["eal"].is_object()) {
    const json& eal = config["eal"];
    if (eal.contains("file_prefix") && eal["file_prefix"].is_string() && !eal["file_prefix"].get<std::string>().empty())
      return eal["file_prefix"].get<std::string>();
  }
  return "sluice";  // lib/config/config.h's default
}

bool capture_command(const CaptureArgs& args, const json& stats, const json& config, const std::string& dumpcap,
                     std::vector<std::string>& argv, std::string& error) {
  std::string port_id, names;
  if (stats.is_object() && stats.contains("ports") && stats["ports"].is_array())
    for (const auto& p : stats["ports"]) {
      const std::string name = field(p, "name");
      names += (names.empty() ? "" : ", ") + name;
      if (name == args.port && p.is_object() && p.contains("port_id") && p["port_id"].is_number_unsigned())
        port_id = p["port_id"].dump();
    }
  if (port_id.empty()) {
    error = "capture: no port named '" + args.port + "' (ports: " + (names.empty() ? "none" : names) + ")";
    return false;
  }
  argv = {dumpcap, "--file-prefix=" + eal_file_prefix(config), "-i", port_id, "-w", args.file};
  if (args.count) argv.insert(argv.end(), {"-c", std::to_string(*args.count)});
  if (args.duration) argv.insert(argv.end(), {"-a", "duration:" + std::to_string(*args.duration)});
  return true;
}

}  // namespace sluicectl
