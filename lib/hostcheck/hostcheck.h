// sluice-hostcheck's checks: what a Sluice config needs from the host (hugepages,
// isolated worker CPUs kept off IRQs, NIC drivers, IOMMU, NUMA locality, kernel-side
// queues, sysctls), each answered pass / warn / fail / skip with the command that fixes it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "hostcheck/host.h"

namespace sluice::hostcheck {

enum class Verdict { Pass, Warn, Fail, Skip };
const char* verdict_name(Verdict verdict);

struct CheckResult {
  std::string id;
  Verdict verdict = Verdict::Pass;
  std::string finding;  // one line: what was seen
  std::string fix;      // one line: the command(s) that fix it; empty on pass and skip
};

enum class PortKind { Pci, AfPacket, AfXdp, Tap, Pcap, Other };

// A port as the checks need it, from the config's device and devargs.
struct TargetPort {
  std::string name;
  std::string device;  // PCI address or vdev name
  PortKind kind = PortKind::Other;
  std::string iface;             // devargs iface= (af_packet, af_xdp)
  unsigned rx_queues = 1;        // what Sluice polls
  unsigned start_queue = 0;      // af_xdp: first netdev queue it attaches to
  unsigned queue_count = 1;      // af_xdp queue_count=, af_packet qpairs=
  std::vector<unsigned> lcores;  // the workers polling it
};

// What the host is checked against: a parsed config, or defaults.
struct Target {
  std::string source;                  // the config file, or "defaults"
  std::vector<unsigned> worker_lcores;  // sorted
  unsigned main_lcore = 0;
  std::vector<unsigned> lcores;  // every EAL lcore, main included
  bool hugepages = true;
  unsigned memory_mb = 512;
  std::vector<unsigned> socket_mem_mb;  // --socket-mem per NUMA node, empty when -m
  std::vector<TargetPort> ports;
  bool defaults = false;  // no config: workers on every online CPU but the first
};

Target target_from_config(const config::Config& config);
// Without a config: main lcore the first online CPU, workers on the others, no ports.
Target default_target(const Host& host);

// Every check id, in the order they run.
const std::vector<std::string>& check_ids();
// Whether `id` is selected by `only` (ids or groups: "hugepages" selects hugepages.*).
bool selected(const std::string& id, const std::vector<std::string>& only);
// The selected checks run on host for target; `only` empty runs all.
std::vector<CheckResult> run_checks(const Host& host, const Target& target, const std::vector<std::string>& only = {});

std::string format_table(const std::vector<CheckResult>& results);
nlohmann::json to_json(const std::vector<CheckResult>& results);
bool any_fail(const std::vector<CheckResult>& results);

// One check a function; checks_*.cpp. Exposed for the tests.
namespace checks {
CheckResult hugepages_mount(const Host& host, const Target& target);
CheckResult hugepages_size(const Host& host, const Target& target);
CheckResult hugepages_free(const Host& host, const Target& target);
CheckResult hugepages_numa(const Host& host, const Target& target);
CheckResult cpu_online(const Host& host, const Target& target);
CheckResult cpu_isolated(const Host& host, const Target& target);
CheckResult cpu_governor(const Host& host, const Target& target);
CheckResult cpu_cstates(const Host& host, const Target& target);
CheckResult irq_nic(const Host& host, const Target& target);
CheckResult irq_affinity(const Host& host, const Target& target);
CheckResult irqbalance(const Host& host, const Target& target);
CheckResult pci_driver(const Host& host, const Target& target);
CheckResult pci_numa(const Host& host, const Target& target);
CheckResult iommu(const Host& host, const Target& target);
CheckResult nic_queues(const Host& host, const Target& target);
CheckResult nic_rss(const Host& host, const Target& target);
CheckResult sysctl(const Host& host, const std::string& name, unsigned long long minimum);
}  // namespace checks

// Shared by the checks_*.cpp files.
namespace detail {
// The NUMA node of each CPU from /sys/devices/system/node/node*/cpulist (empty when unknown).
std::vector<std::pair<unsigned, unsigned>> cpu_nodes(const Host& host);
std::optional<unsigned> node_of_cpu(const std::vector<std::pair<unsigned, unsigned>>& nodes, unsigned cpu);
std::string join(const std::vector<std::string>& items, const std::string& separator);
Verdict worst(Verdict a, Verdict b);
// The PCI address of a port's NIC: the device of a PCI port, or the PCI device under a
// kernel-side port's interface (af_packet, af_xdp); nullopt for veths, taps, pcap files.
std::optional<std::string> nic_pci_address(const Host& host, const TargetPort& port);
// Online CPUs (/sys/devices/system/cpu/online); nullopt when missing or malformed.
std::optional<std::vector<unsigned>> online_cpus(const Host& host);
}  // namespace detail

}  // namespace sluice::hostcheck
