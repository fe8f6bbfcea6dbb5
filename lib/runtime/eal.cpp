#include "runtime/eal.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

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

namespace {

std::optional<unsigned> parse_unsigned(std::string_view text) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

// "0-3,6": the numbers, or nullopt for anything else (EAL's own syntax is richer).
std::optional<std::vector<unsigned>> parse_cpu_list(const std::string& spec) {
  std::vector<unsigned> out;
  std::stringstream in(spec);
  std::string part;
  while (std::getline(in, part, ',')) {
    const size_t dash = part.find('-');
    auto lo = parse_unsigned(std::string_view(part).substr(0, dash));
    auto hi = dash == std::string::npos ? lo : parse_unsigned(std::string_view(part).substr(dash + 1));
    if (!lo || !hi || *hi < *lo || *hi > 4096) return std::nullopt;
    for (unsigned c = *lo; c <= *hi; ++c) out.push_back(c);
  }
  if (out.empty()) return std::nullopt;
  return out;
}

std::string cpu_list_text(const std::vector<unsigned>& cpus) {
  std::string text;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!text.empty()) text += ',';
    text += std::to_string(cpus[i]);
    if (j > i) {
      text += '-';
      text += std::to_string(cpus[j]);
    }
    i = j + 1;
  }
  return text.empty() ? "none" : text;
}

// A /proc/meminfo field's number (kB for sizes), or 0.
uint64_t meminfo_value(const std::string& meminfo, const std::string& field) {
  const size_t at = meminfo.find(field + ":");
  if (at == std::string::npos) return 0;
  return std::strtoull(meminfo.c_str() + at + field.size() + 1, nullptr, 10);
}

}  // namespace

std::vector<unsigned> usable_cpus() {
  std::vector<unsigned> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (unsigned c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

std::string eal_lcores_unusable(const std::vector<std::string>& eal_args, const std::vector<unsigned>& usable) {
  std::string spec = last_value(eal_args, "-l", "");
  spec = last_value(eal_args, "--lcores", spec);
  if (spec.empty() || usable.empty()) return {};
  auto wanted = parse_cpu_list(spec);
  if (!wanted) return {};
  std::vector<unsigned> missing;
  for (unsigned c : *wanted)
    if (!std::binary_search(usable.begin(), usable.end(), c)) missing.push_back(c);
  if (missing.empty()) return {};
  return "EAL lcores " + spec + ": CPU(s) " + cpu_list_text(missing) + " are not usable here: this host lets Sluice run on " +
         cpu_list_text(usable) + " (" + std::to_string(usable.size()) +
         " online and in its affinity mask); set eal.lcores within those (one for the control thread, one per "
         "worker), or fewer workers";
}

std::string eal_hugepages_missing(const std::vector<std::string>& eal_args, const std::string& meminfo, bool mounted,
                                  uint64_t reclaimable_mb) {
  for (const auto& a : eal_args)
    if (a == "--no-huge") return {};
  const uint64_t total = meminfo_value(meminfo, "HugePages_Total");
  const uint64_t free_pages = meminfo_value(meminfo, "HugePages_Free");
  const uint64_t page_kb = meminfo_value(meminfo, "Hugepagesize");
  const std::string fix = "reserve them with drivers-config/hugepages.sh reserve 512 (or `sysctl -w vm.nr_hugepages=512` "
                          "and `mount -t hugetlbfs nodev /dev/hugepages`), or for a test run without: `-- --no-huge`";
  if (total == 0) return "no hugepages are reserved (HugePages_Total 0 in /proc/meminfo): " + fix;
  if (!mounted) return "no hugetlbfs is mounted (none in /proc/mounts), so EAL cannot map hugepages: " + fix;
  auto wanted_mb = parse_unsigned(last_value(eal_args, "-m", ""));
  if (!wanted_mb || page_kb == 0) return {};
  const uint64_t free_mb = free_pages * page_kb / 1024;
  if (*wanted_mb <= free_mb + reclaimable_mb) return {};
  return "eal.memory_mb " + std::to_string(*wanted_mb) + " asks for more hugepage memory than is free: " +
         std::to_string(free_pages) + " of " + std::to_string(total) + " pages of " + std::to_string(page_kb) +
         " kB free (" + std::to_string(free_mb) + " MiB; another DPDK process may hold the rest): lower "
         "eal.memory_mb, or reserve more: drivers-config/hugepages.sh reserve " +
         std::to_string(total + (*wanted_mb - free_mb) * 1024 / page_kb + 1) + " --at-least";
}

std::string eal_hugepages_missing(const std::vector<std::string>& eal_args) {
  // /proc/meminfo speaks of the default page size only: pages of another size (1 GiB
  // beside a 2 MiB default) are EAL's too, and then it is left to judge.
  std::ifstream meminfo_file("/proc/meminfo"), mounts_file("/proc/mounts");
  std::stringstream meminfo;
  meminfo << meminfo_file.rdbuf();
  const std::string default_kb = std::to_string(meminfo_value(meminfo.str(), "Hugepagesize"));
  for (const char* size : {"hugepages-1048576kB", "hugepages-2048kB", "hugepages-32768kB", "hugepages-64kB"}) {
    if (std::string(size) == "hugepages-" + default_kb + "kB") continue;
    std::ifstream nr(std::string("/sys/kernel/mm/hugepages/") + size + "/nr_hugepages");
    unsigned long pages = 0;
    if (nr >> pages && pages > 0) return {};
  }
  // Pages a killed run with this prefix left in its files: EAL takes them back at start.
  bool mounted = false;
  uint64_t reclaimable = 0;
  const std::string stale = eal_file_prefix(eal_args) + "map_";
  std::string line, dev, dir, type;
  while (std::getline(mounts_file, line)) {
    std::istringstream fields(line);
    if (!(fields >> dev >> dir >> type) || type != "hugetlbfs") continue;
    mounted = true;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      struct stat st {};
      if (entry.path().filename().string().rfind(stale, 0) == 0 && stat(entry.path().c_str(), &st) == 0)
        reclaimable += uint64_t(st.st_blocks) * 512;
    }
  }
  return eal_hugepages_missing(eal_args, meminfo.str(), mounted, reclaimable >> 20);
}

}  // namespace sluice::runtime
