// sluicectl: the command-line client of Sluice's HTTP control API. Global options
// (anywhere on the line), then a command and its own options.
//
// Exit codes: 0 ok, 1 refused or failed (HTTP 4xx/5xx), 2 bad usage, 3 Sluice not
// reachable, 4 a malformed answer.

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "commands.h"

namespace po = boost::program_options;
using namespace sluicectl;

namespace {

constexpr const char* kDefaultAddress = "127.0.0.1:9180";

std::string usage(const po::options_description& options) {
  std::ostringstream out;
  out << "Usage: sluicectl [global options] COMMAND [options]\n\n"
      << "The command-line client of Sluice's HTTP control API (control.http in its config).\n\nCommands:\n";
  for (const auto& c : commands()) {
    std::string name = c.name;
    out << "  " << name << std::string(12 - name.size(), ' ') << c.summary << "\n";
  }
  out << "\n"
      << options
      << "\nGlobal options may come before or after the command. `sluicectl COMMAND --help` lists\n"
         "a command's options.\n\n"
         "Exit codes:\n"
         "  0  ok\n"
         "  1  Sluice refused the request or it failed (HTTP 4xx/5xx: its error is printed),\n"
         "     or a local step failed (capture: dpdk-dumpcap missing, unknown port)\n"
         "  2  bad usage: unknown command or option, bad value\n"
         "  3  Sluice is not reachable at --address (connection refused, timeout)\n"
         "  4  the answer was not the JSON the API sends\n";
  return out.str();
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);  // `sluicectl flows | head` ends quietly
  const char* env_address = std::getenv("SLUICECTL_ADDRESS");
  std::string address = env_address && *env_address ? env_address : kDefaultAddress;
  double timeout = 5;
  po::options_description options("Global options");
  options.add_options()("address,a", po::value<std::string>(&address)->value_name("HOST:PORT"),
                        "Sluice's HTTP endpoint (default 127.0.0.1:9180, or $SLUICECTL_ADDRESS)")(
      "json,j", "print the server's JSON (pretty) instead of tables")(
      "timeout,t", po::value<double>(&timeout)->value_name("SECONDS"), "give up on a request after SECONDS (default 5)")(
      "version", "print the version and exit")("help,h", "print this help and exit");
  po::options_description hidden;
  hidden.add_options()("command", po::value<std::string>())("args", po::value<std::vector<std::string>>());
  po::options_description all;
  all.add(options).add(hidden);
  po::positional_options_description positional;
  positional.add("command", 1).add("args", -1);

  // Global options are taken from anywhere; everything else (the command's options and
  // their values) goes to the command in its original order.
  po::variables_map vm;
  std::string command;
  std::vector<std::string> rest;
  try {
    const int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    po::parsed_options parsed =
        po::command_line_parser(argc, argv).options(all).positional(positional).style(style).allow_unregistered().run();
    for (const auto& opt : parsed.options) {
      if (opt.string_key == "command" && command.empty()) command = opt.value.empty() ? "" : opt.value[0];
      else if (opt.unregistered || opt.position_key >= 0)
        rest.insert(rest.end(), opt.original_tokens.begin(), opt.original_tokens.end());
    }
    po::store(parsed, vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "sluicectl: " << e.what() << "\nTry `sluicectl --help`.\n";
    return kExitUsage;
  }
  const Command* cmd = command.empty() ? nullptr : find_command(command);
  if (vm.count("version")) {
    std::cout << "sluicectl " << SLUICE_VERSION << "\n";
    return kExitOk;
  }
  if (vm.count("help") && !cmd) {
    std::cout << usage(options);
    return kExitOk;
  }
  if (vm.count("help")) rest.push_back("--help");  // `sluicectl --help trace`: the command's help
  if (command == "help") {
    std::cout << usage(options);
    return kExitOk;
  }
  if (command.empty()) {
    std::cerr << "sluicectl: no command given\n\n" << usage(options);
    return kExitUsage;
  }
  if (!cmd) {
    std::string names;
    for (const auto& c : commands()) names += std::string(names.empty() ? "" : ", ") + c.name;
    std::cerr << "sluicectl: unknown command '" << command << "' (" << names << ")\nTry `sluicectl --help`.\n";
    return kExitUsage;
  }
  std::string host, error;
  int port = 0;
  if (!parse_address(address, host, port, error)) {
    std::cerr << "sluicectl: " << error << "\n";
    return kExitUsage;
  }
  if (!(timeout > 0 && timeout <= 3600)) {
    std::cerr << "sluicectl: --timeout must be 0..3600 seconds\n";
    return kExitUsage;
  }
  Context ctx{Client(host, port, timeout), vm.count("json") > 0};
  return cmd->run(ctx, rest);
}
