// EAL arguments from config, with `sluice ... -- ARGS` overriding option by option.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace sluice::runtime {

std::vector<std::string> build_eal_args(const config::Config& config, const std::vector<std::string>& cli_args);

}  // namespace sluice::runtime
