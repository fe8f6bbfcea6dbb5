// lib/hostcheck: every check on prepared /proc and /sys trees, passing and failing, and
// on missing or malformed files (a clear warn or skip naming the path, never a crash).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "config/config.h"
#include "hostcheck/hostcheck.h"

namespace sluice::hostcheck {
namespace {

namespace fs = std::filesystem;

// A temporary root with a host that passes every check: 4 CPUs on one node, workers on
// 2-3 isolated, 1024 free 2 MiB pages, IRQs on 0-1, one vfio-pci NIC in its own IOMMU
// group, one af_xdp port on eth1 (4 queues, symmetric RSS over 0-3), tuned sysctls.
class HostcheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/sluice-hostcheck-test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr) << "cannot create a temporary directory";
    root_ = pattern;
    write("/proc/meminfo", "MemTotal: 8000000 kB\nHugePages_Total: 1024\nHugepagesize:       2048 kB\n");
    write("/proc/mounts", "sysfs /sys sysfs rw 0 0\nhugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n");
    pages("/sys/kernel/mm/hugepages", 2048, 1024, 1024);
    write("/sys/devices/system/node/node0/cpulist", "0-3\n");
    pages("/sys/devices/system/node/node0/hugepages", 2048, 1024, 1024);
    write("/sys/devices/system/cpu/online", "0-3\n");
    write("/proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 isolcpus=domain,managed_irq,2-3 nohz_full=2-3 rcu_nocbs=2-3 quiet\n");
    for (unsigned cpu : {2u, 3u}) {
      std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu);
      write(dir + "/cpufreq/scaling_governor", "performance\n");
      cstate(cpu, 0, "POLL", 0, 0);
      cstate(cpu, 1, "C1", 2, 0);
      cstate(cpu, 2, "C6", 133, 1);  // disabled
    }
    write("/proc/interrupts",
          "           CPU0       CPU1       CPU2       CPU3\n"
          "  0:         10          0          0          0  IO-APIC   2-edge      timer\n"
          " 24:          1          0          0          0  IO-APIC   5-edge      ACPI:Ged\n"
          " 40:          5          0          0          0  PCI-MSIX-0000:00:04.0   1-edge      eth1-TxRx-0\n"
          " 41:          5          0          0          0  PCI-MSIX-0000:00:04.0   2-edge      eth1-TxRx-1\n");
    for (const char* irq : {"0", "24", "40", "41"}) write(std::string("/proc/irq/") + irq + "/smp_affinity_list", "0-1\n");
    write("/proc/1/comm", "systemd\n");
    write("/proc/321/comm", "sshd\n");
    // The NIC of the PCI port, on vfio-pci, alone in IOMMU group 7.
    pci("0000:01:00.0", "vfio-pci", "0", "7");
    // eth1 (af_xdp): a kernel NIC at 0000:00:04.0.
    pci("0000:00:04.0", "ixgbe", "0", "3");
    mkdir("/sys/devices/pci0000:00/0000:00:04.0/net/eth1/queues");
    symlink("/sys/class/net/eth1", "../../devices/pci0000:00/0000:00:04.0/net/eth1");
    symlink("/sys/devices/pci0000:00/0000:00:04.0/net/eth1/device", "../../../0000:00:04.0");
    for (int q = 0; q < 4; ++q) mkdir("/sys/class/net/eth1/queues/rx-" + std::to_string(q));
    write("/sys/bus/pci/devices/0000:00:04.0/msi_irqs/40", "msix\n");
    write("/ethtool/eth1/-x",
          "RX flow hash indirection table for eth1 with 4 RX ring(s):\n"
          "    0:      0     1     2     3     0     1     2     3\n"
          "RSS hash key:\n"
          "6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a\n"
          "RSS hash function:\n    toeplitz: on\n");
    for (auto [name, value] : {std::pair{"rmem_max", "16777216"}, {"wmem_max", "33554432"},
                               {"netdev_max_backlog", "16384"}, {"somaxconn", "4096"}})
      write(std::string("/proc/sys/net/core/") + name, std::string(value) + "\n");

    config_ = parse(R"({
      "eal": { "lcores": "1-3", "memory_mb": 1024 },
      "ports": [
        { "name": "wan", "device": "0000:01:00.0", "pipeline": ["parse", { "stage": "xconnect", "peer": "lan" }] },
        { "name": "lan", "device": "net_af_xdp0", "devargs": "iface=eth1,start_queue=0,queue_count=4", "rx_queues": 4,
          "tx_queues": 4, "pipeline": ["parse", { "stage": "xconnect", "peer": "wan" }] }
      ]
    })");
  }

  void TearDown() override {
    if (!root_.empty()) fs::remove_all(root_);
  }

  static config::Config parse(const std::string& text) {
    auto parsed = config::parse_config_text(text, "test.json");
    EXPECT_TRUE(parsed.ok()) << (parsed.errors.empty() ? "" : parsed.errors.front());
    return parsed.config.value_or(config::Config{});
  }

  void write(const std::string& path, const std::string& text) {
    fs::create_directories(fs::path(root_ + path).parent_path());
    std::ofstream out(root_ + path, std::ios::trunc);
    out << text;
    ASSERT_TRUE(out.good()) << "cannot write " << root_ + path;
  }
  void remove(const std::string& path) { fs::remove_all(root_ + path); }
  void mkdir(const std::string& path) { fs::create_directories(root_ + path); }
  void symlink(const std::string& path, const std::string& target) {
    fs::create_directories(fs::path(root_ + path).parent_path());
    fs::remove_all(root_ + path);
    fs::create_directory_symlink(target, root_ + path);
  }
  void pages(const std::string& dir, unsigned kb, unsigned total, unsigned free) {
    std::string d = dir + "/hugepages-" + std::to_string(kb) + "kB";
    write(d + "/nr_hugepages", std::to_string(total) + "\n");
    write(d + "/free_hugepages", std::to_string(free) + "\n");
  }
  void cstate(unsigned cpu, unsigned n, const std::string& name, unsigned latency, unsigned disabled) {
    std::string d = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/cpuidle/state" + std::to_string(n);
    write(d + "/name", name + "\n");
    write(d + "/latency", std::to_string(latency) + "\n");
    write(d + "/disable", std::to_string(disabled) + "\n");
  }
  void pci(const std::string& address, const std::string& driver, const std::string& node, const std::string& group) {
    std::string dev = "/sys/devices/pci0000:00/" + address;
    mkdir(dev);
    write(dev + "/numa_node", node + "\n");
    mkdir("/sys/bus/pci/drivers/" + driver);
    symlink(dev + "/driver", "../../../bus/pci/drivers/" + driver);
    mkdir("/sys/kernel/iommu_groups/" + group + "/devices");
    symlink(dev + "/iommu_group", "../../../kernel/iommu_groups/" + group);
    symlink("/sys/kernel/iommu_groups/" + group + "/devices/" + address, "../../../../devices/pci0000:00/" + address);
    symlink("/sys/bus/pci/devices/" + address, "../../../devices/pci0000:00/" + address);
  }

  Target target() const { return target_from_config(config_); }
  CheckResult run(const std::string& id) { return run(id, target()); }
  CheckResult run(const std::string& id, const Target& t) {
    auto results = run_checks(Host(root_), t, {id});
    EXPECT_EQ(results.size(), 1u) << id;
    return results.empty() ? CheckResult{} : results.front();
  }

  std::string root_;
  config::Config config_;
};

// Asserts the verdict, and that the finding (and the fix) say what they must.
#define EXPECT_VERDICT(result, verdict_value, finding_part)                                      \
  do {                                                                                           \
    const CheckResult& r_ = (result);                                                            \
    EXPECT_EQ(r_.verdict, verdict_value) << r_.id << ": " << r_.finding << " | fix: " << r_.fix; \
    EXPECT_NE(r_.finding.find(finding_part), std::string::npos) << r_.id << ": " << r_.finding;  \
    if (r_.verdict == Verdict::Warn || r_.verdict == Verdict::Fail)                              \
      EXPECT_FALSE(r_.fix.empty()) << r_.id << " has no fix";                                    \
    else                                                                                         \
      EXPECT_TRUE(r_.fix.empty()) << r_.id << " pass/skip with a fix: " << r_.fix;               \
  } while (0)

TEST_F(HostcheckTest, EveryCheckPassesOnAWellPreparedHost) {
  auto results = run_checks(Host(root_), target());
  ASSERT_EQ(results.size(), check_ids().size());
  for (const auto& r : results) EXPECT_EQ(r.verdict, Verdict::Pass) << r.id << ": " << r.finding << " | " << r.fix;
  EXPECT_FALSE(any_fail(results));
}

TEST_F(HostcheckTest, TargetComesFromTheConfigParser) {
  Target t = target();
  EXPECT_EQ(t.worker_lcores, (std::vector<unsigned>{2, 3}));
  EXPECT_EQ(t.main_lcore, 1u);
  EXPECT_EQ(t.memory_mb, 1024u);
  ASSERT_EQ(t.ports.size(), 2u);
  EXPECT_EQ(t.ports[0].kind, PortKind::Pci);
  EXPECT_EQ(t.ports[1].kind, PortKind::AfXdp);
  EXPECT_EQ(t.ports[1].iface, "eth1");
  EXPECT_EQ(t.ports[1].queue_count, 4u);
  EXPECT_EQ(t.ports[0].lcores, (std::vector<unsigned>{2}));  // auto workers: round robin from lcore 2
  EXPECT_EQ(t.ports[1].lcores, (std::vector<unsigned>{2, 3}));

  config_.eal.extra_args = {"--socket-mem", "256,512"};
  t = target();
  EXPECT_EQ(t.socket_mem_mb, (std::vector<unsigned>{256, 512}));
  EXPECT_EQ(t.memory_mb, 768u);
  config_.eal.extra_args = {"--socket-mem=64", "-m", "300", "--no-huge"};
  t = target();
  EXPECT_TRUE(t.socket_mem_mb.empty());
  EXPECT_EQ(t.memory_mb, 300u);
  EXPECT_FALSE(t.hugepages);
}

TEST_F(HostcheckTest, DefaultsPutWorkersOnEveryOnlineCpuButTheFirst) {
  Target t = default_target(Host(root_));
  EXPECT_EQ(t.main_lcore, 0u);
  EXPECT_EQ(t.worker_lcores, (std::vector<unsigned>{1, 2, 3}));
  EXPECT_TRUE(t.ports.empty());
  EXPECT_VERDICT(run("pci.driver", t), Verdict::Skip, "no PCI ports");
  EXPECT_VERDICT(run("nic.queues", t), Verdict::Skip, "no af_packet or af_xdp ports");
  write("/sys/devices/system/cpu/online", "garbage\n");
  EXPECT_EQ(default_target(Host(root_)).worker_lcores, std::vector<unsigned>{});
}

TEST_F(HostcheckTest, ParsesCpuListsAndTheKernelCommandLine) {
  EXPECT_EQ(parse_cpu_list("0-2,5\n"), (std::vector<unsigned>{0, 1, 2, 5}));
  EXPECT_EQ(parse_cpu_list("\n"), std::vector<unsigned>{});
  EXPECT_EQ(parse_cpu_list("1-"), std::nullopt);
  EXPECT_EQ(format_cpu_list({0, 1, 2, 5, 7, 8}), "0-2,5,7-8");
  EXPECT_EQ(cmdline_value("a isolcpus=1 isolcpus=2-3 b", "isolcpus"), "2-3");
  EXPECT_EQ(cmdline_value("quiet -- isolcpus=1", "isolcpus"), std::nullopt);  // init's arguments
}

TEST_F(HostcheckTest, HugepagesMount) {
  EXPECT_VERDICT(run("hugepages.mount"), Verdict::Pass, "/dev/hugepages");
  write("/proc/mounts", "sysfs /sys sysfs rw 0 0\n");
  EXPECT_VERDICT(run("hugepages.mount"), Verdict::Fail, "no hugetlbfs mount");
  EXPECT_NE(run("hugepages.mount").fix.find("mount -t hugetlbfs"), std::string::npos);
  remove("/proc/mounts");
  EXPECT_VERDICT(run("hugepages.mount"), Verdict::Warn, root_ + "/proc/mounts");
}

TEST_F(HostcheckTest, HugepagesSize) {
  EXPECT_VERDICT(run("hugepages.size"), Verdict::Pass, "default 2M");
  pages("/sys/kernel/mm/hugepages", 2048, 0, 0);
  pages("/sys/kernel/mm/hugepages", 1048576, 2, 2);
  EXPECT_VERDICT(run("hugepages.size"), Verdict::Warn, "not the default");
  config_.eal.memory_mb = 16384;
  pages("/sys/kernel/mm/hugepages", 2048, 8192, 8192);
  pages("/sys/kernel/mm/hugepages", 1048576, 0, 0);
  EXPECT_VERDICT(run("hugepages.size"), Verdict::Warn, "1G pages spare the TLB");
  EXPECT_NE(run("hugepages.size").fix.find("hugepagesz=1G hugepages=16"), std::string::npos);
  write("/proc/meminfo", "MemTotal: 1 kB\nHugepagesize: lots\n");
  EXPECT_VERDICT(run("hugepages.size"), Verdict::Warn, "no Hugepagesize line");
  remove("/sys/kernel/mm/hugepages");
  EXPECT_VERDICT(run("hugepages.size"), Verdict::Fail, "no page sizes");
}

TEST_F(HostcheckTest, HugepagesFree) {
  EXPECT_VERDICT(run("hugepages.free"), Verdict::Pass, "2048 MiB free");
  pages("/sys/kernel/mm/hugepages", 2048, 1024, 100);
  auto r = run("hugepages.free");
  EXPECT_VERDICT(r, Verdict::Fail, "200 MiB free (2M 100/1024 free), the config needs 1024 MiB");
  // 824 MiB short = 412 more 2 MiB pages.
  EXPECT_EQ(r.fix, "echo 1436 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages && "
                   "echo 'vm.nr_hugepages = 1436' > /etc/sysctl.d/80-sluice-hugepages.conf");
  write("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "many\n");
  EXPECT_VERDICT(run("hugepages.free"), Verdict::Warn, "hugepages-2048kB/{nr,free}_hugepages");
  config_.eal.hugepages = false;
  EXPECT_VERDICT(run("hugepages.free"), Verdict::Skip, "without hugepages");
}

TEST_F(HostcheckTest, HugepagesNuma) {
  EXPECT_VERDICT(run("hugepages.numa"), Verdict::Pass, "node0 2048/1024 MiB");
  pages("/sys/devices/system/node/node0/hugepages", 2048, 1024, 10);
  auto r = run("hugepages.numa");
  EXPECT_VERDICT(r, Verdict::Fail, "node0 20/1024 MiB");
  EXPECT_NE(r.fix.find("> /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"), std::string::npos);
  // --socket-mem asks node 1 for memory too: it has none.
  pages("/sys/devices/system/node/node0/hugepages", 2048, 1024, 1024);
  write("/sys/devices/system/node/node1/cpulist", "4-7\n");
  pages("/sys/devices/system/node/node1/hugepages", 2048, 0, 0);
  config_.eal.extra_args = {"--socket-mem=512,512"};
  EXPECT_VERDICT(run("hugepages.numa"), Verdict::Fail, "node1 0/512 MiB");
  write("/sys/devices/system/node/node1/hugepages/hugepages-2048kB/free_hugepages", "");
  EXPECT_VERDICT(run("hugepages.numa"), Verdict::Warn, "missing or malformed");
  remove("/sys/devices/system/node");
  EXPECT_VERDICT(run("hugepages.numa"), Verdict::Skip, "no NUMA nodes");
}

TEST_F(HostcheckTest, CpuOnline) {
  EXPECT_VERDICT(run("cpu.online"), Verdict::Pass, "online CPUs 0-3");
  write("/sys/devices/system/cpu/online", "0-2\n");
  EXPECT_VERDICT(run("cpu.online"), Verdict::Fail, "3 not online");
  write("/sys/devices/system/cpu/online", "zero\n");
  EXPECT_VERDICT(run("cpu.online"), Verdict::Warn, "missing or malformed");
}

TEST_F(HostcheckTest, CpuIsolated) {
  EXPECT_VERDICT(run("cpu.isolated"), Verdict::Pass, "workers 2-3 in isolcpus, nohz_full and rcu_nocbs");
  write("/proc/cmdline", "root=/dev/sda1 isolcpus=3 rcu_nocbs=all\n");
  auto r = run("cpu.isolated");
  EXPECT_VERDICT(r, Verdict::Warn, "isolcpus=3 lacks 2, nohz_full (unset)");
  EXPECT_EQ(r.finding.find("rcu_nocbs"), std::string::npos) << "rcu_nocbs=all covers the workers: " << r.finding;
  EXPECT_NE(r.fix.find("isolcpus=2-3 nohz_full=2-3 rcu_nocbs=2-3"), std::string::npos);
  write("/proc/cmdline", "isolcpus=2-x nohz_full=2-3 rcu_nocbs=2-3\n");
  EXPECT_VERDICT(run("cpu.isolated"), Verdict::Warn, "malformed on the kernel command line: isolcpus=2-x");
  remove("/proc/cmdline");
  EXPECT_VERDICT(run("cpu.isolated"), Verdict::Warn, root_ + "/proc/cmdline missing");
  Target t = target();
  t.worker_lcores.clear();
  EXPECT_VERDICT(run("cpu.isolated", t), Verdict::Skip, "no worker lcores");
}

TEST_F(HostcheckTest, CpuGovernor) {
  EXPECT_VERDICT(run("cpu.governor"), Verdict::Pass, "performance governor");
  write("/sys/devices/system/cpu/cpu3/cpufreq/scaling_governor", "powersave\n");
  auto r = run("cpu.governor");
  EXPECT_VERDICT(r, Verdict::Warn, "cpu3 powersave");
  EXPECT_NE(r.fix.find("cpupower -c 2-3 frequency-set -g performance"), std::string::npos);
  write("/sys/devices/system/cpu/cpu3/cpufreq/scaling_governor", "");
  EXPECT_VERDICT(run("cpu.governor"), Verdict::Warn, "cpu3/cpufreq/scaling_governor");
  remove("/sys/devices/system/cpu/cpu2/cpufreq");
  remove("/sys/devices/system/cpu/cpu3/cpufreq");
  EXPECT_VERDICT(run("cpu.governor"), Verdict::Skip, "no cpufreq");
}

TEST_F(HostcheckTest, CpuCstates) {
  EXPECT_VERDICT(run("cpu.cstates"), Verdict::Pass, "no C-state with exit latency >= 10 us");
  cstate(2, 2, "C6", 133, 0);
  auto r = run("cpu.cstates");
  EXPECT_VERDICT(r, Verdict::Warn, "cpu2 C6 (133 us)");
  EXPECT_NE(r.fix.find("idle-set -D 10"), std::string::npos);
  write("/sys/devices/system/cpu/cpu2/cpuidle/state2/latency", "-5\n");
  EXPECT_VERDICT(run("cpu.cstates"), Verdict::Warn, "cpu2/cpuidle/state2/{latency,disable}");
  remove("/sys/devices/system/cpu/cpu2/cpuidle");
  remove("/sys/devices/system/cpu/cpu3/cpuidle");
  EXPECT_VERDICT(run("cpu.cstates"), Verdict::Skip, "no cpuidle states");
}

TEST_F(HostcheckTest, IrqNic) {
  EXPECT_VERDICT(run("irq.nic"), Verdict::Pass, "2 IRQ(s) of wan (0000:01:00.0), lan (0000:00:04.0 eth1)");
  write("/proc/irq/41/smp_affinity_list", "0-3\n");
  auto r = run("irq.nic");
  EXPECT_VERDICT(r, Verdict::Warn, "41 eth1-TxRx-1 on 0-3");
  EXPECT_EQ(r.fix, "for i in 41; do echo 0-1 > /proc/irq/$i/smp_affinity_list; done");
  write("/proc/irq/40/smp_affinity_list", "\x01\x02garbage");
  EXPECT_VERDICT(run("irq.nic"), Verdict::Warn, "/proc/irq/40/smp_affinity_list");
  config_ = parse(R"({"eal": {"lcores": "0-1"}, "ports": [
    {"name": "a", "device": "net_tap0", "pipeline": ["parse", {"stage": "xconnect", "peer": "b"}]},
    {"name": "b", "device": "net_tap1", "pipeline": ["parse", {"stage": "xconnect", "peer": "a"}]}]})");
  EXPECT_VERDICT(run("irq.nic"), Verdict::Skip, "no port has a NIC");
}

TEST_F(HostcheckTest, IrqAffinity) {
  EXPECT_VERDICT(run("irq.affinity"), Verdict::Pass, "1 other IRQs, none on workers 2-3");
  write("/proc/irq/24/smp_affinity_list", "0-3\n");
  write("/proc/irq/0/smp_affinity_list", "0-3\n");  // the timer: not movable, not counted
  auto r = run("irq.affinity");
  EXPECT_VERDICT(r, Verdict::Warn, "1 of 1 other IRQs may run on workers 2-3: 24 ACPI:Ged on 0-3");
  EXPECT_NE(r.fix.find("for i in 24; do echo 0-1 > /proc/irq/$i/smp_affinity_list"), std::string::npos);
  EXPECT_NE(r.fix.find("irqaffinity=0-1"), std::string::npos);
  write("/proc/irq/24/smp_affinity_list", "3-1\n");
  EXPECT_VERDICT(run("irq.affinity"), Verdict::Warn, "malformed for IRQ(s) 24");
  remove("/proc/irq");
  EXPECT_VERDICT(run("irq.affinity"), Verdict::Skip, "no IRQs");
}

TEST_F(HostcheckTest, Irqbalance) {
  EXPECT_VERDICT(run("irqbalance"), Verdict::Pass, "irqbalance not running (2 processes seen)");
  write("/proc/777/comm", "irqbalance\n");
  auto r = run("irqbalance");
  EXPECT_VERDICT(r, Verdict::Warn, "irqbalance runs (pid 777)");
  EXPECT_NE(r.fix.find("systemctl disable --now irqbalance"), std::string::npos);
  remove("/proc");
  EXPECT_VERDICT(run("irqbalance"), Verdict::Skip, "no process readable");
}

TEST_F(HostcheckTest, PciDriver) {
  EXPECT_VERDICT(run("pci.driver"), Verdict::Pass, "wan 0000:01:00.0: vfio-pci");
  pci("0000:01:00.0", "ixgbe", "0", "7");
  mkdir("/sys/devices/pci0000:00/0000:01:00.0/net/enp1s0");
  auto r = run("pci.driver");
  EXPECT_VERDICT(r, Verdict::Fail, "bound to the kernel's ixgbe (enp1s0)");
  EXPECT_EQ(r.fix, "ip link set enp1s0 down && modprobe vfio-pci && dpdk-devbind.py -b vfio-pci 0000:01:00.0");
  pci("0000:01:00.0", "uio_pci_generic", "0", "7");
  EXPECT_VERDICT(run("pci.driver"), Verdict::Warn, "no IOMMU protection");
  pci("0000:01:00.0", "mlx5_core", "0", "7");
  EXPECT_VERDICT(run("pci.driver"), Verdict::Pass, "bifurcated");
  remove("/sys/devices/pci0000:00/0000:01:00.0/driver");
  EXPECT_VERDICT(run("pci.driver"), Verdict::Fail, "no driver bound");
  remove("/sys/bus/pci/devices/0000:01:00.0");
  EXPECT_VERDICT(run("pci.driver"), Verdict::Fail, "no such device");
}

TEST_F(HostcheckTest, PciNuma) {
  EXPECT_VERDICT(run("pci.numa"), Verdict::Pass, "wan 0000:01:00.0: node 0, its lcores 2 too; lan 0000:00:04.0: node 0, its lcores 2-3 too");
  write("/sys/devices/system/node/node1/cpulist", "4-5\n");
  write("/sys/devices/pci0000:00/0000:01:00.0/numa_node", "1\n");
  auto r = run("pci.numa");
  EXPECT_VERDICT(r, Verdict::Warn, "wan 0000:01:00.0: on node 1, polled from lcores 2 of another node");
  EXPECT_NE(r.fix.find("poll wan from CPUs 4-5 of node 1"), std::string::npos);
  write("/sys/devices/pci0000:00/0000:01:00.0/numa_node", "-1\n");
  EXPECT_VERDICT(run("pci.numa"), Verdict::Pass, "no NUMA node (-1");
  write("/sys/devices/pci0000:00/0000:01:00.0/numa_node", "north\n");
  EXPECT_VERDICT(run("pci.numa"), Verdict::Warn, "numa_node missing or malformed");
  config_ = parse(R"({"eal": {"lcores": "0-1"}, "ports": [
    {"name": "a", "device": "net_af_packet0", "devargs": "iface=veth0", "pipeline": ["parse", {"stage": "xconnect", "peer": "b"}]},
    {"name": "b", "device": "net_tap1", "pipeline": ["parse", {"stage": "xconnect", "peer": "a"}]}]})");
  EXPECT_VERDICT(run("pci.numa"), Verdict::Skip, "no port has a PCI NIC");
}

TEST_F(HostcheckTest, Iommu) {
  EXPECT_VERDICT(run("iommu"), Verdict::Pass, "0000:01:00.0: IOMMU group 7");
  // Another device with a kernel driver in the NIC's group.
  pci("0000:01:00.1", "e1000e", "0", "7");
  auto r = run("iommu");
  EXPECT_VERDICT(r, Verdict::Fail, "IOMMU group 7 also holds 0000:01:00.1 (e1000e)");
  EXPECT_EQ(r.fix, "modprobe vfio-pci && dpdk-devbind.py -b vfio-pci 0000:01:00.1");
  remove("/sys/kernel/iommu_groups");
  EXPECT_VERDICT(run("iommu"), Verdict::Fail, "no IOMMU groups");
  EXPECT_NE(run("iommu").fix.find("intel_iommu=on iommu=pt"), std::string::npos);
  write("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "Y\n");
  EXPECT_VERDICT(run("iommu"), Verdict::Warn, "unsafe no-IOMMU mode");
  config_.ports.erase(config_.ports.begin());
  EXPECT_VERDICT(run("iommu"), Verdict::Skip, "no PCI port for vfio-pci");
}

TEST_F(HostcheckTest, NicQueues) {
  EXPECT_VERDICT(run("nic.queues"), Verdict::Pass, "lan eth1: 4 RX queue(s), af_xdp attaches to all of them");
  config_.ports[1].devargs = "iface=eth1,start_queue=0,queue_count=2";
  config_.ports[1].rx_queues = 2;
  auto r = run("nic.queues");
  EXPECT_VERDICT(r, Verdict::Warn, "af_xdp attaches to queues 0..1: what RSS puts on the others never reaches Sluice");
  EXPECT_EQ(r.fix, "ethtool -L eth1 combined 2");
  config_.ports[1].devargs = "iface=eth1,start_queue=2,queue_count=4";
  r = run("nic.queues");
  EXPECT_VERDICT(r, Verdict::Fail, "af_xdp attaches to queues 2..5: the port fails to start");
  EXPECT_EQ(r.fix, "ethtool -L eth1 combined 6");
  config_.ports[1].devargs = "iface=eth9";
  EXPECT_VERDICT(run("nic.queues"), Verdict::Fail, "lan eth9: no such interface");
  EXPECT_EQ(run("nic.queues").fix, "ip link show eth9 (create it before Sluice starts, or fix iface= in ports[].devargs)");
  config_.ports[1].device = "net_af_packet0";
  config_.ports[1].devargs = "iface=eth1,qpairs=4";
  EXPECT_VERDICT(run("nic.queues"), Verdict::Pass, "read by af_packet's 4 fanout socket(s)");
  config_.ports.pop_back();
  EXPECT_VERDICT(run("nic.queues"), Verdict::Skip, "no af_packet or af_xdp ports");
}

TEST_F(HostcheckTest, NicRss) {
  EXPECT_VERDICT(run("nic.rss"), Verdict::Pass, "lan eth1: RSS over queues 0..3, symmetric key");
  config_.ports[1].devargs = "iface=eth1,start_queue=0,queue_count=2";
  auto r = run("nic.rss");
  EXPECT_VERDICT(r, Verdict::Warn, "sends flows to queue(s) 2,3, outside af_xdp's 0..1");
  EXPECT_EQ(r.fix, "ethtool -X eth1 start 0 equal 2");
  config_.ports[1].devargs = "iface=eth1,start_queue=0,queue_count=4";
  write("/ethtool/eth1/-x",
        "RX flow hash indirection table for eth1 with 4 RX ring(s):\n    0:      0     1     2     3\n"
        "RSS hash key:\n6d:5a:ac:42:d0:b7:3d:cc\nRSS hash function:\n");
  r = run("nic.rss");
  EXPECT_VERDICT(r, Verdict::Warn, "RSS key not symmetric");
  EXPECT_EQ(r.fix, "ethtool -X eth1 hkey 6d:5a:6d:5a:6d:5a:6d:5a");
  write("/ethtool/eth1/-x", "Cannot get RX ring count: Operation not supported\n");
  EXPECT_VERDICT(run("nic.rss"), Verdict::Skip, "cannot read RSS: lan eth1");
  remove("/ethtool");
  EXPECT_VERDICT(run("nic.rss"), Verdict::Skip, "/ethtool/eth1/-x");
  config_.ports[1].device = "net_af_packet0";
  EXPECT_VERDICT(run("nic.rss"), Verdict::Skip, "no af_xdp ports");
}

TEST_F(HostcheckTest, Sysctls) {
  EXPECT_VERDICT(run("sysctl.wmem_max"), Verdict::Pass, "net.core.wmem_max = 33554432 (want >= 16777216)");
  write("/proc/sys/net/core/netdev_max_backlog", "1000\n");
  auto r = run("sysctl.netdev_max_backlog");
  EXPECT_VERDICT(r, Verdict::Warn, "net.core.netdev_max_backlog = 1000");
  EXPECT_EQ(r.fix, "sysctl -w net.core.netdev_max_backlog=16384 && "
                   "echo 'net.core.netdev_max_backlog = 16384' >> /etc/sysctl.d/80-sluice.conf");
  write("/proc/sys/net/core/somaxconn", "4096 tcp\n");
  EXPECT_VERDICT(run("sysctl.somaxconn"), Verdict::Warn, "/proc/sys/net/core/somaxconn missing or malformed");
  remove("/proc/sys/net/core/rmem_max");
  EXPECT_VERDICT(run("sysctl.rmem_max"), Verdict::Warn, "/proc/sys/net/core/rmem_max missing or malformed");
}

TEST_F(HostcheckTest, SelectsByIdOrGroupAndReportsAsTableAndJson) {
  auto results = run_checks(Host(root_), target(), {"hugepages", "iommu"});
  ASSERT_EQ(results.size(), 5u);
  EXPECT_EQ(results.front().id, "hugepages.mount");
  EXPECT_EQ(results.back().id, "iommu");
  write("/proc/mounts", "");
  results = run_checks(Host(root_), target(), {"hugepages.mount", "sysctl.somaxconn"});
  EXPECT_TRUE(any_fail(results));
  std::string table = format_table(results);
  EXPECT_NE(table.find("hugepages.mount   fail     no hugetlbfs mount"), std::string::npos) << table;
  EXPECT_NE(table.find("=> fix: mkdir -p /dev/hugepages"), std::string::npos) << table;
  EXPECT_NE(table.find("\n1 pass, 0 warn, 1 fail, 0 skip\n"), std::string::npos) << table;
  auto json = to_json(results);
  ASSERT_EQ(json["checks"].size(), 2u);
  EXPECT_EQ(json["checks"][0]["id"], "hugepages.mount");
  EXPECT_EQ(json["checks"][0]["verdict"], "fail");
  EXPECT_EQ(json["checks"][1]["fix"], "");
  EXPECT_EQ(json["summary"], (nlohmann::json{{"pass", 1}, {"warn", 0}, {"fail", 1}, {"skip", 0}}));
}

TEST_F(HostcheckTest, SurvivesAnEmptyRoot) {
  fs::remove_all(root_);
  fs::create_directories(root_);
  auto results = run_checks(Host(root_), target());
  ASSERT_EQ(results.size(), check_ids().size());
  for (const auto& r : results) EXPECT_FALSE(r.finding.empty()) << r.id;
}

}  // namespace
}  // namespace sluice::hostcheck
