#include "control/reload.h"

#include <mutex>

#include <spdlog/spdlog.h>

#include "runtime/logging.h"

namespace sluice::control {

nlohmann::json ReloadResult::json() const {
  nlohmann::json j = {{"reloaded", ok}, {"generation", generation}};
  if (!errors.empty()) j["errors"] = errors;
  return j;
}

ReloadResult reload_config(runtime::Runtime& runtime) {
  static std::mutex one_at_a_time;
  std::lock_guard lock(one_at_a_time);
  ReloadResult result;
  const std::string path = runtime.config().source_path;
  if (path.empty()) {
    result.status = 409;
    result.errors.push_back("reload: the configuration was not read from a file");
    return result;
  }
  config::ParseResult parsed = config::load_config_file(path);
  if (!parsed.ok()) {
    result.status = 400;
    result.errors = parsed.errors;
    spdlog::error("reload of {} refused: {} error(s); the running configuration stays", path, parsed.errors.size());
    for (const auto& line : parsed.errors) spdlog::error("  {}", line);
    result.generation = runtime.with_policy([](const firewall::Policy* p) { return p ? p->generation : 0u; });
    return result;
  }
  auto next = std::make_shared<const config::Config>(std::move(*parsed.config));
  std::string error;
  uint32_t generation = 0;
  const std::string level = next->logging.level;
  const std::string level_before = runtime.active_config()->logging.level;
  if (!runtime.reload(next, error, generation)) {
    result.status = error.find("needs a restart") != std::string::npos ? 409 : 400;
    result.errors.push_back(error);
    spdlog::error("{}", error);
    result.generation = runtime.with_policy([](const firewall::Policy* p) { return p ? p->generation : 0u; });
    return result;
  }
  // Only a changed logging.level is applied: an unchanged one leaves --log-level in force.
  if (level != level_before) runtime::set_log_level(level);
  result.ok = true;
  result.generation = generation;
  spdlog::info("reload of {}: applied{}", path,
               generation ? " (firewall policy generation " + std::to_string(generation) + ")" : "");
  return result;
}

}  // namespace sluice::control
