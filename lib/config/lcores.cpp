#include "config/lcores.h"

#include <algorithm>
#include <charconv>

namespace sluice::config {

namespace {
std::optional<unsigned> parse_number(std::string_view text) {
  unsigned value = 0;
  if (text.empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}
}  // namespace

std::optional<std::vector<unsigned>> parse_lcore_list(const std::string& spec, unsigned max_lcore) {
  std::vector<unsigned> lcores;
  std::string_view rest = spec;
  if (rest.empty()) return std::nullopt;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view piece = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (comma != std::string_view::npos && rest.empty()) return std::nullopt;
    size_t dash = piece.find('-');
    auto first = parse_number(piece.substr(0, dash));
    auto last = dash == std::string_view::npos ? first : parse_number(piece.substr(dash + 1));
    if (!first || !last || *first > *last || *last > max_lcore) return std::nullopt;
    for (unsigned l = *first; l <= *last; ++l) lcores.push_back(l);
  }
  std::sort(lcores.begin(), lcores.end());
  lcores.erase(std::unique(lcores.begin(), lcores.end()), lcores.end());
  return lcores;
}

}  // namespace sluice::config
