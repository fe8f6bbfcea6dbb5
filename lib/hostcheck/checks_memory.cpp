// hugepages.* (EAL's memory: mounted, of a usable size, enough free, on the right NUMA
// nodes) and sysctl.* (the kernel's socket and backlog limits).
#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <sstream>

#include "hostcheck/hostcheck.h"

namespace sluice::hostcheck::checks {

using detail::join;

namespace {

constexpr const char* kHugeDir = "/sys/kernel/mm/hugepages";

CheckResult result(Verdict verdict, std::string finding, std::string fix = "") {
  return CheckResult{"", verdict, std::move(finding), std::move(fix)};
}

std::optional<CheckResult> skip_without_hugepages(const Target& target) {
  if (target.hugepages) return std::nullopt;
  return result(Verdict::Skip, "the config runs EAL without hugepages (eal.hugepages false or --no-huge)");
}

std::string size_name(unsigned long long kb) {
  return kb % 1048576 == 0 ? std::to_string(kb / 1048576) + "G" : std::to_string(kb / 1024) + "M";
}

// One page size: its directory's counts.
struct PageSize {
  unsigned long long kb = 0;
  std::optional<unsigned long long> total, free;
};

// The sizes under dir ("hugepages-2048kB" entries), each with nr_ and free_hugepages.
std::vector<PageSize> page_sizes(const Host& host, const std::string& dir) {
  std::vector<PageSize> sizes;
  for (const auto& name : host.list(dir)) {
    if (name.rfind("hugepages-", 0) != 0 || name.size() < 13 || name.substr(name.size() - 2) != "kB") continue;
    PageSize size;
    std::string digits = name.substr(10, name.size() - 12);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), size.kb);
    if (ec != std::errc() || end != digits.data() + digits.size() || size.kb == 0) continue;
    size.total = host.read_number(dir + "/" + name + "/nr_hugepages");
    size.free = host.read_number(dir + "/" + name + "/free_hugepages");
    sizes.push_back(size);
  }
  return sizes;
}

std::optional<unsigned long long> default_size_kb(const Host& host) {
  auto meminfo = host.read("/proc/meminfo");
  if (!meminfo) return std::nullopt;
  std::istringstream lines(*meminfo);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("Hugepagesize:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    unsigned long long kb = 0;
    std::string unit;
    if (fields >> kb >> unit && unit == "kB" && kb > 0) return kb;
    return std::nullopt;
  }
  return std::nullopt;
}

std::string pages_dir(unsigned long long kb, std::optional<unsigned> node = std::nullopt) {
  std::string dir = node ? "/sys/devices/system/node/node" + std::to_string(*node) + "/hugepages" : kHugeDir;
  return dir + "/hugepages-" + std::to_string(kb) + "kB";
}

unsigned long long pages_for(unsigned long long mb, unsigned long long kb) { return (mb * 1024 + kb - 1) / kb; }

}  // namespace

CheckResult hugepages_mount(const Host& host, const Target& target) {
  if (auto skip = skip_without_hugepages(target)) return *skip;
  auto mounts = host.read("/proc/mounts");
  if (!mounts) return result(Verdict::Warn, "cannot read " + host.path("/proc/mounts"), "mount | grep hugetlbfs");
  std::vector<std::string> found;
  std::istringstream lines(*mounts);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string device, dir, type, options;
    if (fields >> device >> dir >> type >> options && type == "hugetlbfs") found.push_back(dir + " (" + options + ")");
  }
  if (found.empty())
    return result(Verdict::Fail, "no hugetlbfs mount in /proc/mounts: EAL finds no hugepages to map",
                  "mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages");
  return result(Verdict::Pass, "hugetlbfs on " + join(found, ", "));
}

CheckResult hugepages_size(const Host& host, const Target& target) {
  if (auto skip = skip_without_hugepages(target)) return *skip;
  auto sizes = page_sizes(host, kHugeDir);
  if (sizes.empty())
    return result(Verdict::Fail, "no page sizes under " + host.path(kHugeDir) + " (kernel without hugetlbfs)",
                  "boot a kernel with CONFIG_HUGETLBFS (Debian's linux-image-amd64 has it), or set eal.hugepages false");
  auto default_kb = default_size_kb(host);
  if (!default_kb)
    return result(Verdict::Warn, "no Hugepagesize line in " + host.path("/proc/meminfo") + " (missing or malformed)",
                  "grep Hugepagesize /proc/meminfo");
  std::vector<std::string> names;
  unsigned long long default_total = 0, other_total = 0, gig_total = 0;
  for (const auto& s : sizes) {
    names.push_back(size_name(s.kb) + ": " + (s.total ? std::to_string(*s.total) : "?") + " pages");
    (s.kb == *default_kb ? default_total : other_total) += s.total.value_or(0);
    if (s.kb == 1048576) gig_total += s.total.value_or(0);
  }
  std::string seen = "default " + size_name(*default_kb) + "; " + join(names, ", ");
  if (default_total == 0 && other_total > 0)
    return result(Verdict::Warn, seen + ": pages only in a size that is not the default, which EAL does not map unless told",
                  "add \"--huge-dir\", \"/dev/hugepages1G\" to eal.extra_args (with hugetlbfs pagesize=1G mounted there), "
                  "or: echo " + std::to_string(pages_for(target.memory_mb, *default_kb)) + " > " +
                      pages_dir(*default_kb) + "/nr_hugepages");
  if (target.memory_mb >= 8192 && *default_kb < 1048576 && gig_total == 0)
    return result(Verdict::Warn,
                  seen + ": " + std::to_string(target.memory_mb) + " MiB in " + size_name(*default_kb) +
                      " pages; 1G pages spare the TLB",
                  "add 'default_hugepagesz=1G hugepagesz=1G hugepages=" +
                      std::to_string((target.memory_mb + 1023) / 1024) +
                      "' to GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub && reboot");
  return result(Verdict::Pass, seen);
}

CheckResult hugepages_free(const Host& host, const Target& target) {
  if (auto skip = skip_without_hugepages(target)) return *skip;
  auto sizes = page_sizes(host, kHugeDir);
  if (sizes.empty()) return result(Verdict::Fail, "no page sizes under " + host.path(kHugeDir), "see hugepages.size");
  unsigned long long free_kb = 0;
  std::vector<std::string> seen, unreadable;
  for (const auto& s : sizes) {
    if (!s.total || !s.free) {
      unreadable.push_back(host.path(pages_dir(s.kb)) + "/{nr,free}_hugepages");
      continue;
    }
    free_kb += *s.free * s.kb;
    seen.push_back(size_name(s.kb) + " " + std::to_string(*s.free) + "/" + std::to_string(*s.total) + " free");
  }
  if (!unreadable.empty())
    return result(Verdict::Warn, "missing or malformed: " + join(unreadable, ", "), "drivers-config/hugepages.sh status");
  unsigned long long need_kb = static_cast<unsigned long long>(target.memory_mb) * 1024;
  std::string finding = std::to_string(free_kb / 1024) + " MiB free (" + join(seen, ", ") + "), the config needs " +
                        std::to_string(target.memory_mb) + " MiB";
  if (free_kb >= need_kb) return result(Verdict::Pass, finding);
  auto kb = default_size_kb(host).value_or(2048);
  unsigned long long total = 0;
  for (const auto& s : sizes)
    if (s.kb == kb) total = s.total.value_or(0);
  unsigned long long want = total + pages_for((need_kb - free_kb + 1023) / 1024, kb);
  return result(Verdict::Fail, finding,
                "echo " + std::to_string(want) + " > " + pages_dir(kb) + "/nr_hugepages" +
                    (kb == 2048 ? " && echo 'vm.nr_hugepages = " + std::to_string(want) +
                                      "' > /etc/sysctl.d/80-sluice-hugepages.conf"
                                : ""));
}

CheckResult hugepages_numa(const Host& host, const Target& target) {
  if (auto skip = skip_without_hugepages(target)) return *skip;
  std::vector<unsigned> nodes;
  for (const auto& name : host.list("/sys/devices/system/node")) {
    unsigned node = 0;
    if (name.rfind("node", 0) != 0) continue;
    auto [end, ec] = std::from_chars(name.data() + 4, name.data() + name.size(), node);
    if (ec == std::errc() && end == name.data() + name.size()) nodes.push_back(node);
  }
  if (nodes.empty()) return result(Verdict::Skip, "no NUMA nodes under " + host.path("/sys/devices/system/node"));
  std::sort(nodes.begin(), nodes.end());

  // What each node must hold: --socket-mem says it; with -m, an even share on every node
  // that has worker lcores or the ports' NICs (mbufs are allocated on the NIC's node).
  std::map<unsigned, unsigned long long> need_mb;
  std::string how;
  if (!target.socket_mem_mb.empty()) {
    for (size_t i = 0; i < target.socket_mem_mb.size(); ++i)
      if (target.socket_mem_mb[i] > 0) need_mb[static_cast<unsigned>(i)] = target.socket_mem_mb[i];
    how = "--socket-mem";
  } else {
    auto cpu_nodes = detail::cpu_nodes(host);
    std::set<unsigned> used;
    for (unsigned lcore : target.worker_lcores)
      if (auto node = detail::node_of_cpu(cpu_nodes, lcore)) used.insert(*node);
    for (const auto& port : target.ports) {
      if (port.kind != PortKind::Pci) continue;
      auto node = host.read_line("/sys/bus/pci/devices/" + port.device + "/numa_node");
      unsigned n = 0;
      if (node && std::from_chars(node->data(), node->data() + node->size(), n).ec == std::errc()) used.insert(n);
    }
    if (used.empty()) used.insert(nodes.front());
    for (unsigned node : used) need_mb[node] = (target.memory_mb + used.size() - 1) / used.size();
    how = "-m " + std::to_string(target.memory_mb) + " shared by the nodes of the workers and NICs";
  }

  auto kb = default_size_kb(host).value_or(2048);
  std::vector<std::string> seen, short_nodes, fixes, unreadable;
  for (const auto& [node, mb] : need_mb) {
    auto sizes = page_sizes(host, "/sys/devices/system/node/node" + std::to_string(node) + "/hugepages");
    if (sizes.empty()) {
      unreadable.push_back("node" + std::to_string(node) + " (no " +
                           host.path("/sys/devices/system/node/node" + std::to_string(node) + "/hugepages") + ")");
      continue;
    }
    unsigned long long free_kb = 0, total_default = 0;
    bool bad = false;
    for (const auto& s : sizes) {
      if (!s.free || !s.total) bad = true;
      free_kb += s.free.value_or(0) * s.kb;
      if (s.kb == kb) total_default = s.total.value_or(0);
    }
    if (bad) {
      unreadable.push_back(host.path(pages_dir(kb, node)) + "/{nr,free}_hugepages missing or malformed");
      continue;
    }
    std::string line = "node" + std::to_string(node) + " " + std::to_string(free_kb / 1024) + "/" +
                       std::to_string(mb) + " MiB";
    seen.push_back(line);
    if (free_kb < mb * 1024) {
      short_nodes.push_back(line);
      fixes.push_back("echo " + std::to_string(total_default + pages_for(mb - free_kb / 1024, kb)) + " > " +
                      pages_dir(kb, node) + "/nr_hugepages");
    }
  }
  if (!unreadable.empty()) return result(Verdict::Warn, "cannot read " + join(unreadable, "; "), "drivers-config/hugepages.sh status");
  std::string finding = "free/needed per node (" + how + "): " + join(seen, ", ");
  if (!short_nodes.empty()) return result(Verdict::Fail, finding, join(fixes, " && "));
  return result(Verdict::Pass, finding);
}

CheckResult sysctl(const Host& host, const std::string& name, unsigned long long minimum) {
  std::string file = "/proc/sys/net/core/" + name;
  std::string key = "net.core." + name;
  std::string fix = "sysctl -w " + key + "=" + std::to_string(minimum) + " && echo '" + key + " = " +
                    std::to_string(minimum) + "' >> /etc/sysctl.d/80-sluice.conf";
  auto value = host.read_number(file);
  if (!value) return result(Verdict::Warn, host.path(file) + " missing or malformed", fix);
  std::string finding = key + " = " + std::to_string(*value) + " (want >= " + std::to_string(minimum) + ")";
  if (*value < minimum) return result(Verdict::Warn, finding, fix);
  return result(Verdict::Pass, finding);
}

}  // namespace sluice::hostcheck::checks
