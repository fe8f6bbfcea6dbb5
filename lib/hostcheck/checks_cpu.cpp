// cpu.* (worker lcores online, isolated, clocked and kept out of deep C-states), irq.*
// (no interrupt lands on a worker) and irqbalance (nothing moves them back).
#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <set>
#include <sstream>

#include "hostcheck/hostcheck.h"

namespace sluice::hostcheck::checks {

using detail::join;

namespace {

CheckResult result(Verdict verdict, std::string finding, std::string fix = "") {
  return CheckResult{"", verdict, std::move(finding), std::move(fix)};
}

std::optional<CheckResult> skip_without_workers(const Target& target) {
  if (!target.worker_lcores.empty()) return std::nullopt;
  return result(Verdict::Skip, "no worker lcores (the only lcore is the main one)");
}

std::string cpu_dir(unsigned cpu) { return "/sys/devices/system/cpu/cpu" + std::to_string(cpu); }

std::string workers_text(const Target& target) { return format_cpu_list(target.worker_lcores); }

// The CPUs that are not workers: where IRQs and housekeeping belong.
std::vector<unsigned> housekeeping_cpus(const Host& host, const Target& target) {
  std::vector<unsigned> out;
  for (unsigned cpu : detail::online_cpus(host).value_or(target.lcores))
    if (!std::binary_search(target.worker_lcores.begin(), target.worker_lcores.end(), cpu)) out.push_back(cpu);
  if (out.empty()) out.push_back(target.main_lcore);
  return out;
}

bool overlaps(const std::vector<unsigned>& cpus, const std::vector<unsigned>& sorted_workers) {
  return std::any_of(cpus.begin(), cpus.end(),
                     [&](unsigned c) { return std::binary_search(sorted_workers.begin(), sorted_workers.end(), c); });
}

// The CPU list of isolcpus=, nohz_full= or rcu_nocbs=; isolcpus may start with flags
// ("isolcpus=nohz,domain,managed_irq,2-3"), rcu_nocbs may be "all".
std::optional<std::vector<unsigned>> cmdline_cpus(const std::string& value, const Host& host, const Target& target) {
  if (value == "all") return detail::online_cpus(host).value_or(target.lcores);
  std::string list = value;
  while (!list.empty() && std::isalpha(static_cast<unsigned char>(list.front()))) {
    auto comma = list.find(',');
    list = comma == std::string::npos ? "" : list.substr(comma + 1);
  }
  if (list.empty()) return std::nullopt;
  return parse_cpu_list(list);
}

struct Irq {
  unsigned number = 0;
  std::string name;  // the last column of /proc/interrupts
  std::string line;  // the whole line, to match devices by PCI address or interface
  std::optional<std::vector<unsigned>> affinity;
};

std::vector<Irq> read_irqs(const Host& host) {
  std::map<unsigned, std::string> lines;
  if (auto text = host.read("/proc/interrupts")) {
    std::istringstream in(*text);
    std::string line;
    while (std::getline(in, line)) {
      std::string head = trim(line.substr(0, line.find(':')));
      unsigned n = 0;
      auto [end, ec] = std::from_chars(head.data(), head.data() + head.size(), n);
      if (!head.empty() && ec == std::errc() && end == head.data() + head.size()) lines[n] = line;
    }
  }
  std::vector<Irq> irqs;
  for (const auto& name : host.list("/proc/irq")) {
    Irq irq;
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), irq.number);
    if (ec != std::errc() || end != name.data() + name.size()) continue;
    auto text = host.read("/proc/irq/" + name + "/smp_affinity_list");
    if (text) irq.affinity = parse_cpu_list(*text);
    irq.line = lines.count(irq.number) ? lines[irq.number] : "";
    auto last_space = trim(irq.line).find_last_of(" \t");
    irq.name = irq.line.empty() ? "" : trim(trim(irq.line).substr(last_space == std::string::npos ? 0 : last_space));
    irqs.push_back(irq);
  }
  return irqs;
}

// The IRQs of the ports' NICs: the device's msi_irqs, and /proc/interrupts lines naming
// its PCI address or interface.
std::set<unsigned> nic_irq_numbers(const Host& host, const Target& target, const std::vector<Irq>& irqs,
                                   std::vector<std::string>& nics) {
  std::set<unsigned> numbers;
  for (const auto& port : target.ports) {
    auto pci = detail::nic_pci_address(host, port);
    if (!pci) continue;
    nics.push_back(port.name + " (" + *pci + (port.iface.empty() ? "" : " " + port.iface) + ")");
    for (const auto& entry : host.list("/sys/bus/pci/devices/" + *pci + "/msi_irqs")) {
      unsigned n = 0;
      auto [end, ec] = std::from_chars(entry.data(), entry.data() + entry.size(), n);
      if (ec == std::errc() && end == entry.data() + entry.size()) numbers.insert(n);
    }
    for (const auto& irq : irqs)
      if (irq.line.find(*pci) != std::string::npos || (!port.iface.empty() && irq.name.find(port.iface) == 0))
        numbers.insert(irq.number);
  }
  return numbers;
}

std::string describe(const Irq& irq) {
  return std::to_string(irq.number) + (irq.name.empty() ? "" : " " + irq.name) + " on " +
         (irq.affinity ? format_cpu_list(*irq.affinity) : "?");
}

std::string irq_fix(const std::vector<unsigned>& numbers, const std::string& housekeeping) {
  std::string list;
  for (unsigned n : numbers) {
    if (!list.empty()) list += ' ';
    list += std::to_string(n);
  }
  return "for i in " + list + "; do echo " + housekeeping + " > /proc/irq/$i/smp_affinity_list; done";
}

}  // namespace

CheckResult cpu_online(const Host& host, const Target& target) {
  auto online = detail::online_cpus(host);
  if (!online) return result(Verdict::Warn, host.path("/sys/devices/system/cpu/online") + " missing or malformed", "lscpu");
  std::vector<unsigned> missing;
  for (unsigned l : target.lcores)
    if (!std::binary_search(online->begin(), online->end(), l)) missing.push_back(l);
  std::string finding = "lcores " + format_cpu_list(target.lcores) + ", online CPUs " + format_cpu_list(*online);
  if (missing.empty()) return result(Verdict::Pass, finding);
  return result(Verdict::Fail, finding + ": " + format_cpu_list(missing) + " not online (EAL refuses to start)",
                "set eal.lcores within " + format_cpu_list(*online) + ", or: echo 1 > " + cpu_dir(missing.front()) +
                    "/online");
}

CheckResult cpu_isolated(const Host& host, const Target& target) {
  if (auto skip = skip_without_workers(target)) return *skip;
  auto cmdline = host.read_line("/proc/cmdline");
  if (!cmdline) return result(Verdict::Warn, host.path("/proc/cmdline") + " missing or empty", "cat /proc/cmdline");
  std::string workers = workers_text(target);
  std::vector<std::string> missing, malformed;
  for (const char* param : {"isolcpus", "nohz_full", "rcu_nocbs"}) {
    auto value = cmdline_value(*cmdline, param);
    if (!value) {
      missing.push_back(std::string(param) + " (unset)");
      continue;
    }
    auto cpus = cmdline_cpus(*value, host, target);
    if (!cpus) {
      malformed.push_back(std::string(param) + "=" + *value);
      continue;
    }
    std::vector<unsigned> absent;
    for (unsigned w : target.worker_lcores)
      if (std::find(cpus->begin(), cpus->end(), w) == cpus->end()) absent.push_back(w);
    if (!absent.empty()) missing.push_back(std::string(param) + "=" + *value + " lacks " + format_cpu_list(absent));
  }
  std::string fix = "add 'isolcpus=" + workers + " nohz_full=" + workers + " rcu_nocbs=" + workers +
                    "' to GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub && reboot";
  if (!malformed.empty()) return result(Verdict::Warn, "malformed on the kernel command line: " + join(malformed, ", "), fix);
  if (!missing.empty())
    return result(Verdict::Warn, "workers " + workers + " share their CPUs with the kernel: " + join(missing, ", "), fix);
  return result(Verdict::Pass, "workers " + workers + " in isolcpus, nohz_full and rcu_nocbs");
}

CheckResult cpu_governor(const Host& host, const Target& target) {
  if (auto skip = skip_without_workers(target)) return *skip;
  std::vector<std::string> slow, unreadable;
  std::vector<unsigned> slow_cpus;
  unsigned with_cpufreq = 0;
  for (unsigned cpu : target.worker_lcores) {
    std::string dir = cpu_dir(cpu) + "/cpufreq";
    if (!host.exists(dir)) continue;
    ++with_cpufreq;
    auto governor = host.read_line(dir + "/scaling_governor");
    if (!governor) unreadable.push_back(host.path(dir + "/scaling_governor"));
    else if (*governor != "performance") {
      slow.push_back("cpu" + std::to_string(cpu) + " " + *governor);
      slow_cpus.push_back(cpu);
    }
  }
  std::string fix = "apt-get install -y linux-cpupower && cpupower -c " + workers_text(target) +
                    " frequency-set -g performance";
  if (with_cpufreq == 0)
    return result(Verdict::Skip, "no cpufreq on workers " + workers_text(target) + " (a VM or a fixed clock): nothing to set");
  if (!unreadable.empty()) return result(Verdict::Warn, "missing or empty: " + join(unreadable, ", "), fix);
  if (!slow.empty())
    return result(Verdict::Warn, "workers not at the performance governor: " + join(slow, ", "), fix);
  return result(Verdict::Pass, "workers " + workers_text(target) + " at the performance governor");
}

CheckResult cpu_cstates(const Host& host, const Target& target) {
  if (auto skip = skip_without_workers(target)) return *skip;
  constexpr unsigned long long kMaxLatencyUs = 10;  // C1 and POLL; anything deeper wakes too slowly
  std::vector<std::string> deep, unreadable;
  unsigned with_cpuidle = 0;
  for (unsigned cpu : target.worker_lcores) {
    std::string dir = cpu_dir(cpu) + "/cpuidle";
    auto states = host.list(dir);
    if (states.empty()) continue;
    ++with_cpuidle;
    for (const auto& state : states) {
      if (state.rfind("state", 0) != 0) continue;
      std::string sdir = dir + "/" + state;
      auto latency = host.read_number(sdir + "/latency");
      auto disabled = host.read_number(sdir + "/disable");
      if (!latency || !disabled) {
        unreadable.push_back(host.path(sdir) + "/{latency,disable}");
        continue;
      }
      if (*latency >= kMaxLatencyUs && *disabled == 0)
        deep.push_back("cpu" + std::to_string(cpu) + " " + host.read_line(sdir + "/name").value_or(state) + " (" +
                       std::to_string(*latency) + " us)");
    }
  }
  std::string fix = "apt-get install -y linux-cpupower && cpupower -c " + workers_text(target) +
                    " idle-set -D " + std::to_string(kMaxLatencyUs) +
                    " (at boot: intel_idle.max_cstate=1 processor.max_cstate=1 in GRUB_CMDLINE_LINUX)";
  if (with_cpuidle == 0)
    return result(Verdict::Skip, "no cpuidle states on workers " + workers_text(target) + " (a VM or cpuidle off)");
  if (!unreadable.empty()) return result(Verdict::Warn, "missing or malformed: " + join(unreadable, ", "), fix);
  if (!deep.empty()) return result(Verdict::Warn, "deep C-states enabled on workers: " + join(deep, ", "), fix);
  return result(Verdict::Pass, "no C-state with exit latency >= " + std::to_string(kMaxLatencyUs) +
                                   " us enabled on workers " + workers_text(target));
}

CheckResult irq_nic(const Host& host, const Target& target) {
  if (auto skip = skip_without_workers(target)) return *skip;
  auto irqs = read_irqs(host);
  std::vector<std::string> nics;
  auto numbers = nic_irq_numbers(host, target, irqs, nics);
  if (nics.empty()) return result(Verdict::Skip, "no port has a NIC (vdevs without a PCI device: veth, tap, pcap)");
  std::vector<std::string> on_workers, unreadable;
  std::vector<unsigned> to_move;
  for (const auto& irq : irqs) {
    if (!numbers.count(irq.number)) continue;
    if (!irq.affinity) unreadable.push_back(host.path("/proc/irq/" + std::to_string(irq.number) + "/smp_affinity_list"));
    else if (overlaps(*irq.affinity, target.worker_lcores)) {
      on_workers.push_back(describe(irq));
      to_move.push_back(irq.number);
    }
  }
  std::string housekeeping = format_cpu_list(housekeeping_cpus(host, target));
  std::string seen = std::to_string(numbers.size()) + " IRQ(s) of " + join(nics, ", ");
  if (!unreadable.empty()) return result(Verdict::Warn, seen + "; missing or malformed: " + join(unreadable, ", "), "cat /proc/interrupts");
  if (!on_workers.empty())
    return result(Verdict::Warn, seen + "; on workers " + workers_text(target) + ": " + join(on_workers, ", "),
                  irq_fix(to_move, housekeeping));
  return result(Verdict::Pass, seen + ", none on workers " + workers_text(target));
}

CheckResult irq_affinity(const Host& host, const Target& target) {
  if (auto skip = skip_without_workers(target)) return *skip;
  auto irqs = read_irqs(host);
  if (irqs.empty()) return result(Verdict::Skip, "no IRQs under " + host.path("/proc/irq"));
  std::vector<std::string> nics;
  auto nic_numbers = nic_irq_numbers(host, target, irqs, nics);
  std::vector<std::string> on_workers, unreadable;
  std::vector<unsigned> to_move;
  unsigned others = 0;
  for (const auto& irq : irqs) {
    // The NIC's are irq.nic's; 0 (the timer) and 2 (the cascade) cannot move.
    if (nic_numbers.count(irq.number) || irq.number == 0 || irq.number == 2) continue;
    ++others;
    if (!irq.affinity) unreadable.push_back(std::to_string(irq.number));
    else if (overlaps(*irq.affinity, target.worker_lcores)) {
      on_workers.push_back(describe(irq));
      to_move.push_back(irq.number);
    }
  }
  std::string housekeeping = format_cpu_list(housekeeping_cpus(host, target));
  std::string fix = irq_fix(to_move, housekeeping) + "; and at boot: irqaffinity=" + housekeeping + " in GRUB_CMDLINE_LINUX";
  if (!unreadable.empty())
    return result(Verdict::Warn, "smp_affinity_list missing or malformed for IRQ(s) " + join(unreadable, " ") + " under " +
                                     host.path("/proc/irq"), fix);
  if (!on_workers.empty()) {
    size_t shown = std::min<size_t>(on_workers.size(), 4);
    std::vector<std::string> first(on_workers.begin(), on_workers.begin() + static_cast<long>(shown));
    return result(Verdict::Warn,
                  std::to_string(on_workers.size()) + " of " + std::to_string(others) + " other IRQs may run on workers " +
                      workers_text(target) + ": " + join(first, ", ") + (shown < on_workers.size() ? ", ..." : ""),
                  fix);
  }
  return result(Verdict::Pass, std::to_string(others) + " other IRQs, none on workers " + workers_text(target));
}

CheckResult irqbalance(const Host& host, const Target& target) {
  unsigned processes = 0;
  for (const auto& name : host.list("/proc")) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    auto comm = host.read_line("/proc/" + name + "/comm");
    if (!comm) continue;  // exited since the listing
    ++processes;
    if (*comm == "irqbalance")
      return result(Verdict::Warn, "irqbalance runs (pid " + name + ") and moves IRQs back onto worker CPUs",
                    "systemctl disable --now irqbalance (or IRQBALANCE_BANNED_CPULIST=" + workers_text(target) +
                        " in /etc/default/irqbalance)");
  }
  if (processes == 0) return result(Verdict::Skip, "no process readable under " + host.path("/proc"));
  return result(Verdict::Pass, "irqbalance not running (" + std::to_string(processes) + " processes seen)");
}

}  // namespace sluice::hostcheck::checks
