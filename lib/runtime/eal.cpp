#include "runtime/eal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <set>

namespace sluice::runtime {

namespace {

// EAL options that name the same setting; a CLI option replaces the config's whole group.
const std::map<std::string, std::string>& option_groups() {
  static const std::map<std::string, std::string> groups = {
      {"-l", "lcores"},         {"--lcores", "lcores"},       {"-c", "lcores"},
      {"--main-lcore", "main"}, {"-m", "memory"},             {"--socket-mem", "memory"},
      {"--no-huge", "huge"},    {"--file-prefix", "prefix"},  {"--in-memory", "prefix"},
  };
  return groups;
}

std::string group_of(const std::string& token) {
  // "--name=value", or a short option with its value attached ("-l0-3", "-m512").
  std::string name = token.rfind("--", 0) == 0 ? token.substr(0, token.find('=')) : token.substr(0, 2);
  auto it = option_groups().find(name);
  return it == option_groups().end() ? name : it->second;
}

}  // namespace

std::vector<std::string> build_eal_args(const config::Config& config, const std::vector<std::string>& cli_args) {
  std::set<std::string> overridden;
  for (const auto& token : cli_args)
    if (token.size() > 1 && token[0] == '-') overridden.insert(group_of(token));

  std::vector<std::pair<std::string, std::vector<std::string>>> generated = {
      {"lcores", {"-l", config.eal.lcores_spec}},
      {"main", {"--main-lcore", std::to_string(config.eal.main_lcore)}},
      {"memory", {"-m", std::to_string(config.eal.memory_mb)}},
      {"prefix", {"--file-prefix", config.eal.file_prefix}},
  };
  if (!config.eal.hugepages) generated.push_back({"huge", {"--no-huge"}});
  if (!config.control.telemetry) generated.push_back({"--no-telemetry", {"--no-telemetry"}});

  std::vector<std::string> args = {"sluice"};
  for (const auto& [group, tokens] : generated)
    if (!overridden.count(group)) args.insert(args.end(), tokens.begin(), tokens.end());

  bool any_pci = false;
  for (const auto& port : config.ports) {
    std::string device = port.devargs.empty() ? port.device : port.device + "," + port.devargs;
    if (port.is_pci) {
      any_pci = true;
      args.insert(args.end(), {"-a", device});
    } else {
      args.insert(args.end(), {"--vdev", device});
    }
  }
  // Never probe a PCI device nobody configured (the host's own NIC may be one).
  if (!any_pci && !overridden.count("-a") && !overridden.count("--allow") && !overridden.count("-b"))
    args.push_back("--no-pci");
  args.insert(args.end(), config.eal.extra_args.begin(), config.eal.extra_args.end());
  args.insert(args.end(), cli_args.begin(), cli_args.end());
  return args;
}

namespace {

// The value the last `name VALUE` or `name=VALUE` of `args` gives, or `otherwise`.
std::string last_value(const std::vector<std::string>& args, const std::string& name, std::string otherwise) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == name && i + 1 < args.size()) otherwise = args[++i];
    else if (args[i].rfind(name + "=", 0) == 0) otherwise = args[i].substr(name.size() + 1);
  }
  return otherwise;
}

}  // namespace

std::string eal_file_prefix(const std::vector<std::string>& eal_args) {
  return last_value(eal_args, "--file-prefix", "rte");  // DPDK's own default
}

std::string eal_runtime_dir(const std::string& prefix) {
  // As DPDK's eal_create_runtime_dir: /var/run for root, else $XDG_RUNTIME_DIR or /tmp.
  std::string base = "/var/run";
  if (getuid() != 0) {
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    base = xdg && *xdg ? xdg : "/tmp";
  }
  return base + "/dpdk/" + prefix;
}

std::string eal_prefix_in_use(const std::vector<std::string>& eal_args) {
  for (const std::string& a : eal_args)
    if (a == "--in-memory" || a == "--no-shconf") return {};
  if (last_value(eal_args, "--proc-type", "primary") != "primary") return {};
  const std::string prefix = eal_file_prefix(eal_args);
  const std::string path = eal_runtime_dir(prefix) + "/config";
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};  // never made, or removed: nobody holds it
  struct flock lock {};
  lock.l_type = F_WRLCK;  // would a primary's write lock be granted?
  lock.l_whence = SEEK_SET;
  const bool held = fcntl(fd, F_GETLK, &lock) == 0 && lock.l_type != F_UNLCK;
  close(fd);
  if (!held) return {};
  return "EAL file prefix '" + prefix + "' is in use: process " + std::to_string(lock.l_pid) + " holds " + path +
         " (another Sluice, or another DPDK primary process, is running with it); stop it, or give this one "
         "another eal.file_prefix (or `-- --file-prefix NAME`)";
}

}  // namespace sluice::runtime
