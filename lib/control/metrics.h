// Prometheus text exposition format (0.0.4), rendered from a stats snapshot.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace sluice::control {

std::string render_prometheus(const nlohmann::json& stats);

// Escapes a label value: backslash, double quote and newline.
std::string escape_label(const std::string& value);

}  // namespace sluice::control
