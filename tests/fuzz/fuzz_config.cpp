// The config parser takes operator input: any bytes must give a Config or error lines,
// never a crash, hang or exception escaping.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  sluice::config::ParseResult result = sluice::config::parse_config_text(text, "fuzz.json");
  if (result.ok()) {
    // A config that validates must also render.
    (void)sluice::config::to_json(*result.config).dump();
  } else if (result.errors.empty()) {
    __builtin_trap();  // rejected without saying why
  }
  return 0;
}
