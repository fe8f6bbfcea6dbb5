#pragma once

#include <optional>
#include <string>
#include <vector>

namespace sluice::config {

// Parses DPDK's -l syntax ("0-3,6"); nullopt on any malformed piece.
std::optional<std::vector<unsigned>> parse_lcore_list(const std::string& spec, unsigned max_lcore);

}  // namespace sluice::config
