// Reload: re-reads the config file Sluice started with and applies what may change
// under running workers (firewall rules and policies, conntrack timeouts and flags,
// the log level). Triggered by SIGHUP and by POST /reload; one at a time.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "runtime/runtime.h"

namespace sluice::control {

struct ReloadResult {
  bool ok = false;
  int status = 200;             // HTTP status: 200, 400 invalid config, 409 needs a restart
  uint32_t generation = 0;      // the policy now in force
  std::vector<std::string> errors;
  nlohmann::json json() const;
};

ReloadResult reload_config(runtime::Runtime& runtime);

}  // namespace sluice::control
