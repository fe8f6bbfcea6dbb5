// The target (what a config asks of the host), the list of checks, and the two ways of
// printing their results (an aligned table, JSON).
#include "hostcheck/hostcheck.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <functional>
#include <set>
#include <sstream>

namespace sluice::hostcheck {

const char* verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::Pass: return "pass";
    case Verdict::Warn: return "warn";
    case Verdict::Fail: return "fail";
    case Verdict::Skip: return "skip";
  }
  return "?";
}

namespace {

std::optional<unsigned> to_unsigned(const std::string& text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

PortKind kind_of(const config::PortConfig& port) {
  if (port.is_pci) return PortKind::Pci;
  auto starts = [&](const char* prefix) { return port.device.rfind(prefix, 0) == 0; };
  if (starts("net_af_packet")) return PortKind::AfPacket;
  if (starts("net_af_xdp")) return PortKind::AfXdp;
  if (starts("net_tap")) return PortKind::Tap;
  if (starts("net_pcap")) return PortKind::Pcap;
  return PortKind::Other;
}

// The value of the last `-m N`, `-mN`, `--socket-mem a,b` or `--socket-mem=a,b` in args.
void apply_eal_memory_args(const std::vector<std::string>& args, Target& target) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    std::optional<std::string> memory, socket_mem;
    if (arg == "-m" && i + 1 < args.size()) memory = args[++i];
    else if (arg.rfind("-m", 0) == 0 && arg.size() > 2 && arg[2] != '-') memory = arg.substr(2);
    else if (arg == "--socket-mem" && i + 1 < args.size()) socket_mem = args[++i];
    else if (arg.rfind("--socket-mem=", 0) == 0) socket_mem = arg.substr(13);
    else if (arg == "--no-huge") target.hugepages = false;
    if (memory) {
      if (auto mb = to_unsigned(*memory)) {
        target.memory_mb = *mb;
        target.socket_mem_mb.clear();
      }
    }
    if (socket_mem) {
      std::vector<unsigned> per_node;
      std::istringstream pieces(*socket_mem);
      std::string piece;
      bool ok = true;
      while (std::getline(pieces, piece, ',')) {
        auto mb = to_unsigned(piece);
        ok = ok && mb.has_value();
        per_node.push_back(mb.value_or(0));
      }
      if (ok && !per_node.empty()) {
        target.socket_mem_mb = per_node;
        target.memory_mb = 0;
        for (unsigned mb : per_node) target.memory_mb += mb;
      }
    }
  }
}

}  // namespace

Target target_from_config(const config::Config& config) {
  Target target;
  target.source = config.source_path.empty() ? "config" : config.source_path;
  target.main_lcore = config.eal.main_lcore;
  target.lcores = config.eal.lcores;
  target.hugepages = config.eal.hugepages;
  target.memory_mb = config.eal.memory_mb;
  apply_eal_memory_args(config.eal.extra_args, target);
  std::set<unsigned> workers;
  for (const auto& w : config.workers) workers.insert(w.lcore);
  target.worker_lcores.assign(workers.begin(), workers.end());
  for (const auto& port : config.ports) {
    TargetPort out;
    out.name = port.name;
    out.device = port.device;
    out.kind = kind_of(port);
    out.rx_queues = port.rx_queues;
    out.iface = config::devarg_value(port.devargs, "iface");
    std::istringstream pieces(port.devargs);
    std::string piece;
    while (std::getline(pieces, piece, ',')) {
      auto eq = piece.find('=');
      if (eq == std::string::npos) continue;
      std::string key = piece.substr(0, eq), value = piece.substr(eq + 1);
      if (key == "start_queue") out.start_queue = to_unsigned(value).value_or(0);
      if ((key == "queue_count" && out.kind == PortKind::AfXdp) || (key == "qpairs" && out.kind == PortKind::AfPacket))
        out.queue_count = to_unsigned(value).value_or(1);
    }
    std::set<unsigned> lcores;
    for (const auto& w : config.workers)
      for (const auto& rx : w.rx)
        if (rx.port == port.name) lcores.insert(w.lcore);
    out.lcores.assign(lcores.begin(), lcores.end());
    target.ports.push_back(out);
  }
  return target;
}

Target default_target(const Host& host) {
  Target target;
  target.source = "defaults";
  target.defaults = true;
  auto online = host.read("/sys/devices/system/cpu/online");
  auto cpus = online ? parse_cpu_list(*online) : std::nullopt;
  if (!cpus || cpus->empty()) cpus = std::vector<unsigned>{0};
  target.lcores = *cpus;
  target.main_lcore = cpus->front();
  target.worker_lcores.assign(cpus->begin() + 1, cpus->end());
  return target;
}

namespace {

using CheckFn = std::function<CheckResult(const Host&, const Target&)>;

const std::vector<std::pair<std::string, CheckFn>>& registry() {
  auto sysctl = [](const std::string& name, unsigned long long minimum) {
    return [name, minimum](const Host& host, const Target&) { return checks::sysctl(host, name, minimum); };
  };
  static const std::vector<std::pair<std::string, CheckFn>> all = {
      {"hugepages.mount", checks::hugepages_mount},
      {"hugepages.size", checks::hugepages_size},
      {"hugepages.free", checks::hugepages_free},
      {"hugepages.numa", checks::hugepages_numa},
      {"cpu.online", checks::cpu_online},
      {"cpu.isolated", checks::cpu_isolated},
      {"cpu.governor", checks::cpu_governor},
      {"cpu.cstates", checks::cpu_cstates},
      {"irq.nic", checks::irq_nic},
      {"irq.affinity", checks::irq_affinity},
      {"irqbalance", checks::irqbalance},
      {"pci.driver", checks::pci_driver},
      {"pci.numa", checks::pci_numa},
      {"iommu", checks::iommu},
      {"nic.queues", checks::nic_queues},
      {"nic.rss", checks::nic_rss},
      // The exception path (tap, af_packet sockets), the control plane's HTTP listener
      // and a host under load: the kernel's defaults are sized for a desktop.
      {"sysctl.rmem_max", sysctl("rmem_max", 16777216)},
      {"sysctl.wmem_max", sysctl("wmem_max", 16777216)},
      {"sysctl.netdev_max_backlog", sysctl("netdev_max_backlog", 16384)},
      {"sysctl.somaxconn", sysctl("somaxconn", 4096)},
  };
  return all;
}

}  // namespace

const std::vector<std::string>& check_ids() {
  static const std::vector<std::string> ids = [] {
    std::vector<std::string> out;
    for (const auto& [id, fn] : registry()) out.push_back(id);
    return out;
  }();
  return ids;
}

bool selected(const std::string& id, const std::vector<std::string>& only) {
  if (only.empty()) return true;
  for (const auto& want : only)
    if (id == want || id.rfind(want + ".", 0) == 0) return true;
  return false;
}

std::vector<CheckResult> run_checks(const Host& host, const Target& target, const std::vector<std::string>& only) {
  std::vector<CheckResult> results;
  for (const auto& [id, fn] : registry()) {
    if (!selected(id, only)) continue;
    CheckResult result = fn(host, target);
    result.id = id;
    if (result.verdict == Verdict::Pass || result.verdict == Verdict::Skip) result.fix.clear();
    results.push_back(std::move(result));
  }
  return results;
}

namespace {
std::array<unsigned, 4> count(const std::vector<CheckResult>& results) {
  std::array<unsigned, 4> counts{};
  for (const auto& r : results) ++counts[static_cast<size_t>(r.verdict)];
  return counts;
}
}  // namespace

std::string format_table(const std::vector<CheckResult>& results) {
  size_t id_width = 5;
  for (const auto& r : results) id_width = std::max(id_width, r.id.size());
  std::ostringstream out;
  auto row = [&](const std::string& id, const std::string& verdict, const std::string& text) {
    out << id << std::string(id_width + 2 - id.size(), ' ') << verdict << std::string(9 - verdict.size(), ' ') << text
        << '\n';
  };
  row("CHECK", "VERDICT", "FINDING / FIX");
  for (const auto& r : results) {
    std::string text = r.finding;
    if (!r.fix.empty()) text += "  => fix: " + r.fix;
    row(r.id, verdict_name(r.verdict), text);
  }
  auto counts = count(results);
  out << counts[0] << " pass, " << counts[1] << " warn, " << counts[2] << " fail, " << counts[3] << " skip\n";
  return out.str();
}

nlohmann::json to_json(const std::vector<CheckResult>& results) {
  nlohmann::json checks = nlohmann::json::array();
  for (const auto& r : results)
    checks.push_back({{"id", r.id}, {"verdict", verdict_name(r.verdict)}, {"finding", r.finding}, {"fix", r.fix}});
  auto counts = count(results);
  return {{"checks", checks},
          {"summary", {{"pass", counts[0]}, {"warn", counts[1]}, {"fail", counts[2]}, {"skip", counts[3]}}}};
}

bool any_fail(const std::vector<CheckResult>& results) {
  return std::any_of(results.begin(), results.end(), [](const CheckResult& r) { return r.verdict == Verdict::Fail; });
}

namespace detail {

std::vector<std::pair<unsigned, unsigned>> cpu_nodes(const Host& host) {
  std::vector<std::pair<unsigned, unsigned>> out;
  for (const auto& name : host.list("/sys/devices/system/node")) {
    if (name.rfind("node", 0) != 0) continue;
    auto node = to_unsigned(name.substr(4));
    auto text = host.read("/sys/devices/system/node/" + name + "/cpulist");
    auto cpus = text ? parse_cpu_list(*text) : std::nullopt;
    if (!node || !cpus) continue;
    for (unsigned cpu : *cpus) out.emplace_back(cpu, *node);
  }
  return out;
}

std::optional<unsigned> node_of_cpu(const std::vector<std::pair<unsigned, unsigned>>& nodes, unsigned cpu) {
  for (const auto& [c, node] : nodes)
    if (c == cpu) return node;
  return std::nullopt;
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

Verdict worst(Verdict a, Verdict b) {
  auto rank = [](Verdict v) { return v == Verdict::Fail ? 3 : v == Verdict::Warn ? 2 : v == Verdict::Pass ? 1 : 0; };
  return rank(a) >= rank(b) ? a : b;
}

}  // namespace detail
}  // namespace sluice::hostcheck
