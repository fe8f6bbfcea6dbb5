// Shared by the config tests: short-hand macros expanded into JSON ($EAL, $LAN, ...), so
// each case shows only what it breaks; parse and parse_ok over them; and the bad-config
// table case, whose errors must be exactly the lines an operator reads.
#pragma once

#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.h"

namespace sluice::config::fixtures {

using Macros = std::vector<std::pair<std::string, std::string>>;

// A config dialect: one test file's macros.
class ConfigText {
 public:
  explicit ConfigText(Macros macros) : macros_(std::move(macros)) {}

  std::string expand(std::string text) const {
    for (const auto& [name, value] : macros_)
      for (size_t at = text.find(name); at != std::string::npos; at = text.find(name, at + value.size()))
        text.replace(at, name.size(), value);
    return text;
  }

  ParseResult parse(const std::string& text) const { return parse_config_text(expand(text), "test.json"); }

  // A config that must parse; a failure prints its errors and the expanded text.
  Config parse_ok(const std::string& text) const {
    ParseResult result = parse(text);
    EXPECT_TRUE(result.ok()) << ::testing::PrintToString(result.errors) << "\n" << expand(text);
    EXPECT_TRUE(result.errors.empty());
    return result.ok() ? *result.config : Config{};
  }

 private:
  Macros macros_;
};

struct BadConfig {
  const char* name;
  std::string text;
  std::vector<std::string> errors;  // every line, in order
};

inline void PrintTo(const BadConfig& c, std::ostream* os) { *os << c.name; }

// The body of every Bad*ConfigTest: refused, with exactly these lines.
inline void expect_exact_errors(const ConfigText& dialect, const BadConfig& c) {
  ParseResult result = dialect.parse(c.text);
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(result.errors, ::testing::ElementsAreArray(c.errors)) << "config: " << dialect.expand(c.text);
}

}  // namespace sluice::config::fixtures
