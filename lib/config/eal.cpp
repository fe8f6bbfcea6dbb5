// "eal", "mempool", "control", "logging": the runtime's own settings.
#include <arpa/inet.h>

#include <algorithm>
#include <regex>

#include "config/lcores.h"
#include "config/sections.h"

namespace sluice::config {

const std::vector<std::string>& log_level_names() {
  static const std::vector<std::string> names = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  return names;
}

namespace detail {

void read_eal(const ObjectReader& top, EalConfig& out) {
  std::optional<ObjectReader> storage;
  const ObjectReader* eal = top.object("eal", storage);
  if (!eal) return;
  eal->allow_only({"lcores", "main_lcore", "hugepages", "memory_mb", "file_prefix", "extra_args"});
  eal->required("lcores");
  if (eal->has("lcores")) {
    const json& v = eal->raw("lcores");
    std::string spec;
    if (v.is_string()) {
      spec = v.get<std::string>();
    } else if (v.is_array() && !v.empty() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_number_unsigned(); })) {
      for (const auto& e : v) spec += (spec.empty() ? "" : ",") + std::to_string(e.get<unsigned>());
    } else {
      eal->error("lcores", "must be a list like \"0-3,6\" or an array of lcore ids, got " + show(v));
    }
    if (!spec.empty() || v.is_string()) {
      auto lcores = parse_lcore_list(spec, kMaxLcore);
      if (!lcores) {
        eal->error("lcores", "malformed lcore list '" + spec + "' (expected like \"0-3,6\")");
      } else {
        out.lcores = *lcores;
        out.lcores_spec = spec;
        out.main_lcore = out.lcores.front();
      }
    }
  }
  if (eal->has("main_lcore")) {
    unsigned main_lcore = out.main_lcore;
    eal->uint("main_lcore", main_lcore, 0, kMaxLcore);
    if (!out.lcores.empty() && std::find(out.lcores.begin(), out.lcores.end(), main_lcore) == out.lcores.end())
      eal->error("main_lcore", std::to_string(main_lcore) + " is not in eal.lcores '" + out.lcores_spec + "'");
    out.main_lcore = main_lcore;
  }
  eal->boolean("hugepages", out.hugepages);
  eal->uint("memory_mb", out.memory_mb, 64, 1u << 20);
  if (eal->string("file_prefix", out.file_prefix)) {
    static const std::regex safe(R"(^[A-Za-z0-9_.-]{1,64}$)");
    if (!std::regex_match(out.file_prefix, safe))
      eal->error("file_prefix", "must be 1..64 characters of A-Z a-z 0-9 _ . -, got '" + out.file_prefix + "'");
  }
  if (eal->has("extra_args")) {
    const json& v = eal->raw("extra_args");
    if (!v.is_array() || !std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_string(); }))
      eal->error("extra_args", "must be an array of strings, got " + show(v));
    else
      for (const auto& e : v) out.extra_args.push_back(e.get<std::string>());
  }
}

void read_mempool(const ObjectReader& top, MempoolConfig& out) {
  std::optional<ObjectReader> storage;
  const ObjectReader* mempool = top.object("mempool", storage);
  if (!mempool) return;
  mempool->allow_only({"mbufs", "cache_size", "data_room"});
  mempool->uint_or_zero("mbufs", out.mbufs, 1024, 1u << 24, "sized automatically");
  mempool->uint("cache_size", out.cache_size, 0, 512);
  mempool->uint("data_room", out.data_room, 1024, 65535);
}

void read_control(const ObjectReader& top, ControlConfig& out) {
  std::optional<ObjectReader> control_storage, http_storage;
  const ObjectReader* control = top.object("control", control_storage);
  if (!control) return;
  control->allow_only({"http", "telemetry"});
  control->boolean("telemetry", out.telemetry);
  if (auto* http = control->object("http", http_storage)) {
    http->allow_only({"enabled", "address", "port"});
    http->boolean("enabled", out.http.enabled);
    if (http->string("address", out.http.address)) {
      unsigned char buf[16];
      if (inet_pton(AF_INET, out.http.address.c_str(), buf) != 1 &&
          inet_pton(AF_INET6, out.http.address.c_str(), buf) != 1)
        http->error("address", "must be an IPv4 or IPv6 address, got '" + out.http.address + "'");
    }
    http->uint("port", out.http.port, 1, 65535);
  }
}

void read_logging(const ObjectReader& top, LoggingConfig& out) {
  std::optional<ObjectReader> storage;
  const ObjectReader* logging = top.object("logging", storage);
  if (!logging) return;
  logging->allow_only({"level"});
  logging->one_of("level", out.level, log_level_names());
}

json eal_json(const EalConfig& eal) {
  return {{"lcores", eal.lcores_spec},
          {"main_lcore", eal.main_lcore},
          {"hugepages", eal.hugepages},
          {"memory_mb", eal.memory_mb},
          {"file_prefix", eal.file_prefix},
          {"extra_args", eal.extra_args}};
}

json mempool_json(const MempoolConfig& mempool) {
  return {{"mbufs", mempool.mbufs}, {"cache_size", mempool.cache_size}, {"data_room", mempool.data_room}};
}

json control_json(const ControlConfig& control) {
  return {{"http", {{"enabled", control.http.enabled}, {"address", control.http.address}, {"port", control.http.port}}},
          {"telemetry", control.telemetry}};
}

json logging_json(const LoggingConfig& logging) { return {{"level", logging.level}}; }

}  // namespace detail
}  // namespace sluice::config
