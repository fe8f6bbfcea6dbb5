// sluice-hostcheck: audits the host for a Sluice config (hugepages, CPU isolation, IRQs,
// NIC drivers, IOMMU, NUMA, kernel-side queues, sysctls) and prints pass / warn / fail /
// skip per check with the command that fixes it. Reads only files (root + path); runs
// `ethtool -x` only on the live host. Changes nothing.
//
// Exit codes: 0 no check failed, 1 a check failed, 2 usage error or unreadable config.

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "config/config.h"
#include "hostcheck/hostcheck.h"

namespace po = boost::program_options;
using namespace sluice;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

std::string usage(const po::options_description& options) {
  std::ostringstream out;
  out << "Usage: sluice-hostcheck [--config FILE] [--root DIR] [--json] [--only CHECK,...]\n\n"
      << "Audits this host for a Sluice config: pass / warn / fail / skip per check, with the\n"
      << "command that fixes each. Without --config: workers on every online CPU but the first,\n"
      << "512 MiB of hugepages, no ports.\n\n"
      << options << "\nChecks: ";
  for (const auto& id : hostcheck::check_ids()) out << id << (id == hostcheck::check_ids().back() ? "\n" : ", ");
  out << "\nExit status: 0 no check failed, 1 a check failed, 2 usage error or unreadable config.\n";
  return out.str();
}

std::vector<std::string> split_only(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const auto& value : values) {
    std::istringstream pieces(value);
    std::string piece;
    while (std::getline(pieces, piece, ','))
      if (!piece.empty()) out.push_back(piece);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, root = "/";
  std::vector<std::string> only_values;
  po::options_description options("Options");
  options.add_options()
      ("config,c", po::value<std::string>(&config_path)->value_name("FILE"), "the Sluice JSON config to check for")
      ("root", po::value<std::string>(&root)->value_name("DIR"),
       "read /proc and /sys (and ethtool output from DIR/ethtool/IFACE/-x) under DIR instead of / (tests)")
      ("json", "print {\"checks\": [...], \"summary\": {...}} instead of a table")
      ("only", po::value<std::vector<std::string>>(&only_values)->value_name("CHECK,..."),
       "run only these checks (ids, or groups: hugepages, cpu, irq, pci, nic, sysctl)")
      ("help,h", "print this help and exit");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(options).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "sluice-hostcheck: " << e.what() << "\nTry `sluice-hostcheck --help`.\n";
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << usage(options);
    return kExitOk;
  }

  std::vector<std::string> only = split_only(only_values);
  for (const auto& want : only) {
    bool known = false;
    for (const auto& id : hostcheck::check_ids()) known = known || hostcheck::selected(id, {want});
    if (!known) {
      std::cerr << "sluice-hostcheck: --only: unknown check '" << want << "'\nTry `sluice-hostcheck --help`.\n";
      return kExitUsage;
    }
  }

  hostcheck::Host host(root == "/" ? "" : root);
  if (!host.is_live() && !host.exists("/")) {
    std::cerr << "sluice-hostcheck: --root " << root << ": no such directory\n";
    return kExitUsage;
  }

  hostcheck::Target target;
  if (config_path.empty()) {
    target = hostcheck::default_target(host);
  } else {
    config::ParseResult parsed = config::load_config_file(config_path);
    if (!parsed.ok()) {
      for (const auto& line : parsed.errors) std::cerr << line << '\n';
      std::cerr << "sluice-hostcheck: " << config_path << ": " << parsed.errors.size()
                << " error(s); no check was run\n";
      return kExitUsage;
    }
    target = hostcheck::target_from_config(*parsed.config);
  }

  auto results = hostcheck::run_checks(host, target, only);
  if (vm.count("json")) {
    auto out = hostcheck::to_json(results);
    out["config"] = target.source;
    out["root"] = root;
    std::cout << out.dump(2) << '\n';
  } else {
    std::cout << "sluice-hostcheck: " << (root == "/" ? "this host" : "root " + root) << ", against "
              << (config_path.empty() ? "defaults (no --config)" : config_path) << "\n\n"
              << hostcheck::format_table(results);
  }
  return hostcheck::any_fail(results) ? kExitFailed : kExitOk;
}
