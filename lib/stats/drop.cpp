#include "stats/drop.h"

namespace sluice {

std::optional<Drop> drop_from_name(std::string_view name) {
  for (size_t i = 0; i < kDropCount; ++i)
    if (kDropInfo[i].name == name) return static_cast<Drop>(i);
  return std::nullopt;
}

}  // namespace sluice
