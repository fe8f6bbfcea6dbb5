// pci.* (PCI ports bound to a driver DPDK can use, near their workers), iommu (what
// vfio-pci needs) and nic.* (the kernel-side queues and RSS of af_packet / af_xdp ports).
#include <algorithm>
#include <charconv>
#include <regex>
#include <set>
#include <sstream>

#include "hostcheck/hostcheck.h"

namespace sluice::hostcheck {

namespace detail {

std::optional<std::vector<unsigned>> online_cpus(const Host& host) {
  auto text = host.read("/sys/devices/system/cpu/online");
  if (!text) return std::nullopt;
  auto cpus = parse_cpu_list(*text);
  if (!cpus || cpus->empty()) return std::nullopt;
  return cpus;
}

std::optional<std::string> nic_pci_address(const Host& host, const TargetPort& port) {
  if (port.kind == PortKind::Pci) {
    std::string address = port.device;
    std::transform(address.begin(), address.end(), address.begin(), [](unsigned char c) { return std::tolower(c); });
    return address.size() == 7 ? "0000:" + address : address;  // EAL takes "01:00.0" for domain 0
  }
  if ((port.kind != PortKind::AfPacket && port.kind != PortKind::AfXdp) || port.iface.empty() ||
      port.iface.find('/') != std::string::npos)
    return std::nullopt;
  // /sys/class/net/eth1/device -> /sys/devices/pci0000:00/0000:00:03.0[/virtio2]
  auto resolved = host.real_path("/sys/class/net/" + port.iface + "/device");
  if (!resolved) return std::nullopt;
  static const std::regex pci(R"(^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$)");
  std::string rest = *resolved;
  while (!rest.empty()) {
    auto slash = rest.rfind('/');
    std::string component = rest.substr(slash == std::string::npos ? 0 : slash + 1);
    if (std::regex_match(component, pci)) return component;
    if (slash == std::string::npos) break;
    rest.resize(slash);
  }
  return std::nullopt;
}

}  // namespace detail

namespace checks {

using detail::join;
using detail::worst;

namespace {

CheckResult result(Verdict verdict, std::string finding, std::string fix = "") {
  return CheckResult{"", verdict, std::move(finding), std::move(fix)};
}

std::string pci_dir(const std::string& address) { return "/sys/bus/pci/devices/" + address; }

bool bifurcated(const std::string& driver) { return driver == "mlx4_core" || driver == "mlx5_core"; }

// Folds one finding per port into a CheckResult: the worst verdict, findings and fixes joined.
struct PerPort {
  Verdict verdict = Verdict::Skip;
  std::vector<std::string> findings, fixes;
  void add(Verdict v, const std::string& finding, const std::string& fix = "") {
    verdict = worst(verdict, v);
    findings.push_back(finding);
    if (!fix.empty() && v != Verdict::Pass && std::find(fixes.begin(), fixes.end(), fix) == fixes.end())
      fixes.push_back(fix);
  }
  CheckResult done() const { return result(verdict, join(findings, "; "), join(fixes, "; ")); }
};

std::string bind_fix(const std::string& address) { return "modprobe vfio-pci && dpdk-devbind.py -b vfio-pci " + address; }

std::vector<unsigned> rss_queues(const std::string& text) {
  std::vector<unsigned> queues;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("RSS hash key") != std::string::npos) break;
    auto colon = line.find(':');
    std::string head = trim(line.substr(0, colon));
    if (colon == std::string::npos || head.empty() || !std::all_of(head.begin(), head.end(), ::isdigit)) continue;
    std::istringstream entries(line.substr(colon + 1));
    unsigned q;
    while (entries >> q) queues.push_back(q);
  }
  return queues;
}

// The RSS key's bytes, empty when ethtool printed none.
std::vector<unsigned> rss_key(const std::string& text) {
  auto at = text.find("RSS hash key:");
  std::vector<unsigned> key;
  if (at == std::string::npos) return key;
  std::istringstream rest(text.substr(at + 13));
  std::string line;
  while (std::getline(rest, line) && trim(line).empty()) {
  }
  std::istringstream bytes(trim(line));
  std::string byte;
  while (std::getline(bytes, byte, ':')) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(byte.data(), byte.data() + byte.size(), value, 16);
    if (byte.size() != 2 || ec != std::errc() || end != byte.data() + byte.size()) return {};
    key.push_back(value);
  }
  return key;
}

}  // namespace

CheckResult pci_driver(const Host& host, const Target& target) {
  PerPort out;
  for (const auto& port : target.ports) {
    if (port.kind != PortKind::Pci) continue;
    std::string address = *detail::nic_pci_address(host, port);
    std::string label = port.name + " " + address;
    if (!host.exists(pci_dir(address))) {
      out.add(Verdict::Fail, label + ": no such device under " + host.path("/sys/bus/pci/devices"),
              "lspci -D -d ::0200 (then set ports[].device to a NIC's address)");
      continue;
    }
    auto driver = host.link_name(pci_dir(address) + "/driver");
    auto ifaces = host.list(pci_dir(address) + "/net");
    std::string down = ifaces.empty() ? "" : "ip link set " + ifaces.front() + " down && ";
    if (!driver) out.add(Verdict::Fail, label + ": no driver bound", bind_fix(address));
    else if (*driver == "vfio-pci") out.add(Verdict::Pass, label + ": vfio-pci");
    else if (bifurcated(*driver)) out.add(Verdict::Pass, label + ": " + *driver + " (bifurcated: DPDK works beside it)");
    else if (*driver == "uio_pci_generic" || *driver == "igb_uio")
      out.add(Verdict::Warn, label + ": " + *driver + " (no IOMMU protection: the NIC can DMA anywhere)", bind_fix(address));
    else
      out.add(Verdict::Fail, label + ": bound to the kernel's " + *driver + (ifaces.empty() ? "" : " (" + ifaces.front() + ")") +
                                 ", which DPDK cannot drive",
              down + bind_fix(address));
  }
  if (out.findings.empty()) return result(Verdict::Skip, "no PCI ports (vdevs only)");
  return out.done();
}

CheckResult pci_numa(const Host& host, const Target& target) {
  auto cpu_nodes = detail::cpu_nodes(host);
  PerPort out;
  for (const auto& port : target.ports) {
    auto address = detail::nic_pci_address(host, port);
    if (!address) continue;
    std::string label = port.name + " " + *address;
    if (!host.exists(pci_dir(*address))) {
      out.add(Verdict::Skip, label + ": no such device (see pci.driver)");
      continue;
    }
    auto text = host.read_line(pci_dir(*address) + "/numa_node");
    int node = 0;
    if (!text || std::from_chars(text->data(), text->data() + text->size(), node).ec != std::errc()) {
      out.add(Verdict::Warn, label + ": " + host.path(pci_dir(*address) + "/numa_node") + " missing or malformed",
              "lspci -vvv -s " + *address + " | grep -i numa");
      continue;
    }
    if (node < 0) {
      out.add(Verdict::Pass, label + ": no NUMA node (-1: one node, or a VM)");
      continue;
    }
    std::vector<unsigned> far;
    for (unsigned lcore : port.lcores) {
      auto cpu_node = detail::node_of_cpu(cpu_nodes, lcore);
      if (cpu_node && static_cast<int>(*cpu_node) != node) far.push_back(lcore);
    }
    std::vector<unsigned> near;
    for (const auto& [cpu, n] : cpu_nodes)
      if (static_cast<int>(n) == node) near.push_back(cpu);
    std::sort(near.begin(), near.end());
    if (!far.empty())
      out.add(Verdict::Warn,
              label + ": on node " + std::to_string(node) + ", polled from lcores " + format_cpu_list(far) +
                  " of another node (every packet crosses the interconnect)",
              "poll " + port.name + " from CPUs " + format_cpu_list(near) + " of node " + std::to_string(node) +
                  " (eal.lcores and workers)");
    else
      out.add(Verdict::Pass, label + ": node " + std::to_string(node) + ", its lcores " +
                                 format_cpu_list(port.lcores) + " too");
  }
  if (out.findings.empty()) return result(Verdict::Skip, "no port has a PCI NIC (vdevs without a device: veth, tap, pcap)");
  return out.done();
}

CheckResult iommu(const Host& host, const Target& target) {
  std::vector<std::string> addresses;
  for (const auto& port : target.ports) {
    if (port.kind != PortKind::Pci) continue;
    std::string address = *detail::nic_pci_address(host, port);
    auto driver = host.link_name(pci_dir(address) + "/driver");
    if (!driver || !bifurcated(*driver)) addresses.push_back(address);
  }
  if (addresses.empty()) return result(Verdict::Skip, "no PCI port for vfio-pci (vdevs only, or mlx NICs on their kernel driver)");
  std::string boot_fix =
      "add 'intel_iommu=on iommu=pt' (AMD: 'amd_iommu=on iommu=pt') to GRUB_CMDLINE_LINUX in /etc/default/grub, then "
      "update-grub && reboot";
  if (host.list("/sys/kernel/iommu_groups").empty()) {
    auto noiommu = host.read_line("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode");
    if (noiommu && (*noiommu == "Y" || *noiommu == "1"))
      return result(Verdict::Warn, "no IOMMU groups; vfio runs in unsafe no-IOMMU mode (the NIC can DMA anywhere)", boot_fix);
    return result(Verdict::Fail,
                  "no IOMMU groups under " + host.path("/sys/kernel/iommu_groups") + ": IOMMU off, vfio-pci cannot bind " +
                      join(addresses, ", "),
                  boot_fix + "; in a VM without a vIOMMU: modprobe vfio enable_unsafe_noiommu_mode=1");
  }
  PerPort out;
  for (const auto& address : addresses) {
    auto group = host.link_name(pci_dir(address) + "/iommu_group");
    if (!group) {
      out.add(Verdict::Fail, address + ": in no IOMMU group (" + host.path(pci_dir(address) + "/iommu_group") + ")", boot_fix);
      continue;
    }
    std::vector<std::string> others;
    std::vector<std::string> fixes;
    for (const auto& member : host.list("/sys/kernel/iommu_groups/" + *group + "/devices")) {
      if (member == address) continue;
      auto driver = host.link_name(pci_dir(member) + "/driver");
      if (driver && *driver != "vfio-pci" && std::find(addresses.begin(), addresses.end(), member) == addresses.end()) {
        others.push_back(member + " (" + *driver + ")");
        fixes.push_back(bind_fix(member));
      }
    }
    if (!others.empty())
      out.add(Verdict::Fail,
              address + ": IOMMU group " + *group + " also holds " + join(others, ", ") +
                  ", which must be on vfio-pci or unbound too",
              join(fixes, "; "));
    else
      out.add(Verdict::Pass, address + ": IOMMU group " + *group);
  }
  return out.done();
}

CheckResult nic_queues(const Host& host, const Target& target) {
  PerPort out;
  for (const auto& port : target.ports) {
    if (port.kind != PortKind::AfPacket && port.kind != PortKind::AfXdp) continue;
    std::string label = port.name + " " + (port.iface.empty() ? "?" : port.iface);
    if (port.iface.empty() || port.iface.find('/') != std::string::npos) {
      out.add(Verdict::Fail, port.name + ": no iface= in its devargs", "set ports[].devargs to iface=IFACE");
      continue;
    }
    std::string dir = "/sys/class/net/" + port.iface;
    if (!host.exists(dir)) {
      out.add(Verdict::Fail, label + ": no such interface (" + host.path(dir) + "): the port fails to start",
              "ip link show " + port.iface + " (create it before Sluice starts, or fix iface= in ports[].devargs)");
      continue;
    }
    unsigned rx = 0;
    for (const auto& q : host.list(dir + "/queues"))
      if (q.rfind("rx-", 0) == 0) ++rx;
    if (rx == 0) {
      out.add(Verdict::Warn, label + ": no rx-* queues under " + host.path(dir + "/queues"), "ethtool -l " + port.iface);
      continue;
    }
    std::string seen = label + ": " + std::to_string(rx) + " RX queue(s)";
    if (port.kind == PortKind::AfPacket) {
      out.add(Verdict::Pass, seen + ", read by af_packet's " + std::to_string(port.queue_count) + " fanout socket(s)");
      continue;
    }
    unsigned first = port.start_queue, end = port.start_queue + port.queue_count;
    std::string attached = "queues " + std::to_string(first) + ".." + std::to_string(end - 1);
    if (end > rx)
      out.add(Verdict::Fail, seen + ", af_xdp attaches to " + attached + ": the port fails to start",
              "ethtool -L " + port.iface + " combined " + std::to_string(end));
    else if (rx > port.queue_count)
      out.add(Verdict::Warn,
              seen + ", af_xdp attaches to " + attached + ": what RSS puts on the others never reaches Sluice",
              first == 0 ? "ethtool -L " + port.iface + " combined " + std::to_string(port.queue_count)
                         : "ethtool -X " + port.iface + " start " + std::to_string(first) + " equal " +
                               std::to_string(port.queue_count));
    else
      out.add(Verdict::Pass, seen + ", af_xdp attaches to all of them");
  }
  if (out.findings.empty()) return result(Verdict::Skip, "no af_packet or af_xdp ports (no kernel-side queues)");
  return out.done();
}

CheckResult nic_rss(const Host& host, const Target& target) {
  PerPort out;
  std::vector<std::string> unknown;
  for (const auto& port : target.ports) {
    if (port.kind != PortKind::AfXdp || port.iface.empty()) continue;
    std::string label = port.name + " " + port.iface;
    auto text = host.ethtool(port.iface, "-x");
    auto queues = text ? rss_queues(*text) : std::vector<unsigned>{};
    if (queues.empty()) {
      unknown.push_back(label + (host.is_live() ? " (ethtool -x " + port.iface + " fails: no RSS on this device)"
                                                : " (no indirection table in " + host.path("/ethtool/" + port.iface + "/-x") + ")"));
      continue;
    }
    unsigned first = port.start_queue, end = port.start_queue + port.queue_count;
    std::set<unsigned> outside;
    for (unsigned q : queues)
      if (q < first || q >= end) outside.insert(q);
    auto key = rss_key(*text);
    bool symmetric = !key.empty();
    for (size_t i = 2; i < key.size(); ++i) symmetric = symmetric && key[i] == key[i % 2];
    if (!outside.empty()) {
      std::string list;
      for (unsigned q : outside) {
        if (!list.empty()) list += ',';
        list += std::to_string(q);
      }
      out.add(Verdict::Warn,
              label + ": the indirection table sends flows to queue(s) " + list + ", outside af_xdp's " +
                  std::to_string(first) + ".." + std::to_string(end - 1),
              "ethtool -X " + port.iface + " start " + std::to_string(first) + " equal " + std::to_string(port.queue_count));
    } else if (port.queue_count > 1 && !symmetric) {
      std::string hkey;
      for (size_t i = 0; i < (key.empty() ? 40 : key.size()); ++i) {
        if (i) hkey += ':';
        hkey += i % 2 ? "5a" : "6d";
      }
      out.add(Verdict::Warn,
              label + ": RSS key " + (key.empty() ? "unknown" : "not symmetric") +
                  ": the two directions of a flow may reach different queues and workers",
              "ethtool -X " + port.iface + " hkey " + hkey);
    } else {
      out.add(Verdict::Pass, label + ": RSS over queues " + std::to_string(first) + ".." + std::to_string(end - 1) +
                                 (port.queue_count > 1 ? ", symmetric key" : ""));
    }
  }
  if (out.findings.empty() && unknown.empty())
    return result(Verdict::Skip, "no af_xdp ports (af_packet spreads with the kernel's fanout hash, not the NIC's RSS)");
  if (!unknown.empty()) {
    if (out.findings.empty()) return result(Verdict::Skip, "cannot read RSS: " + join(unknown, "; "));
    out.findings.push_back("cannot read RSS: " + join(unknown, "; "));
  }
  return out.done();
}

}  // namespace checks
}  // namespace sluice::hostcheck
