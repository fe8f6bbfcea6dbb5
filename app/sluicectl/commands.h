// sluicectl's commands: each parses its own options (Boost.Program_options), asks the
// API, prints a table (or the JSON with --json) and returns the exit code.
#pragma once

#include <string>
#include <vector>

#include "client.h"

namespace sluicectl {

struct Context {
  Client client;
  bool json = false;
};

using CommandFn = int (*)(const Context& ctx, const std::vector<std::string>& args);

struct Command {
  const char* name;
  const char* summary;
  CommandFn run;
};

const std::vector<Command>& commands();
const Command* find_command(const std::string& name);

}  // namespace sluicectl
