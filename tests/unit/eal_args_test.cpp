// build_eal_args: config -> EAL argv, and `sluice ... -- ARGS` replacing a config value
// rather than adding a second, conflicting one. auto_mbuf_count: the pool sizing rule.
// eal_prefix_in_use: a file prefix another DPDK primary holds, named before EAL starts.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.h"
#include "runtime/eal.h"
#include "runtime/runtime.h"

namespace sluice::runtime {
namespace {

using Args = std::vector<std::string>;

config::Config parse(const std::string& text) {
  config::ParseResult result = config::parse_config_text(text, "eal.json");
  EXPECT_TRUE(result.ok()) << ::testing::PrintToString(result.errors);
  return result.ok() ? *result.config : config::Config{};
}

const char* kTwoVdevs = R"({"eal": {"lcores": "0-1"}, "ports": [
    {"name": "west", "device": "net_af_packet0", "devargs": "iface=veth0", "pipeline": [{"stage": "xconnect", "peer": "east"}]},
    {"name": "east", "device": "net_af_packet1", "pipeline": [{"stage": "xconnect", "peer": "west"}]}]})";

TEST(BuildEalArgsTest, DefaultsFromConfig) {
  EXPECT_EQ(build_eal_args(parse(kTwoVdevs), {}),
            (Args{"sluice", "-l", "0-1", "--main-lcore", "0", "-m", "512", "--file-prefix", "sluice", "--vdev",
                  "net_af_packet0,iface=veth0", "--vdev", "net_af_packet1", "--no-pci"}));
}

TEST(BuildEalArgsTest, EveryEalSettingIsPassed) {
  config::Config c = parse(R"({
      "eal": {"lcores": "0,2-3", "main_lcore": 2, "hugepages": false, "memory_mb": 256, "file_prefix": "lab",
              "extra_args": ["--log-level=pmd:debug", "-n", "4"]},
      "ports": [
        {"name": "west", "device": "0000:01:00.0", "devargs": "rxq_pkt_pad_en=1", "pipeline": [{"stage": "xconnect", "peer": "east"}]},
        {"name": "east", "device": "net_tap0", "pipeline": [{"stage": "xconnect", "peer": "west"}]}],
      "control": {"telemetry": false}})");
  EXPECT_EQ(build_eal_args(c, {"--log-level=eal:debug"}),
            (Args{"sluice", "-l", "0,2-3", "--main-lcore", "2", "-m", "256", "--file-prefix", "lab", "--no-huge",
                  "--no-telemetry", "-a", "0000:01:00.0,rxq_pkt_pad_en=1", "--vdev", "net_tap0",
                  "--log-level=pmd:debug", "-n", "4", "--log-level=eal:debug"}))
      << "a PCI port means no --no-pci; extra_args, then the CLI's";
}

struct Override {
  const char* name;
  Args cli;
  Args expected;
};

void PrintTo(const Override& o, std::ostream* os) { *os << o.name; }

class EalOverrideTest : public ::testing::TestWithParam<Override> {};

TEST_P(EalOverrideTest, CliReplacesTheConfigValue) {
  EXPECT_EQ(build_eal_args(parse(kTwoVdevs), GetParam().cli), GetParam().expected);
}

// The config part every case starts from, minus what the case overrides.
const Args kVdevs = {"--vdev", "net_af_packet0,iface=veth0", "--vdev", "net_af_packet1"};
Args concat(std::initializer_list<Args> parts) {
  Args out;
  for (const Args& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

const Override kOverrides[] = {
    {"LcoresShort", {"-l", "0-3"},
     concat({{"sluice", "--main-lcore", "0", "-m", "512", "--file-prefix", "sluice"}, kVdevs, {"--no-pci", "-l", "0-3"}})},
    {"LcoresShortAttached", {"-l0-3"},
     concat({{"sluice", "--main-lcore", "0", "-m", "512", "--file-prefix", "sluice"}, kVdevs, {"--no-pci", "-l0-3"}})},
    {"LcoresLongWithEquals", {"--lcores=0@0,1@1"},
     concat({{"sluice", "--main-lcore", "0", "-m", "512", "--file-prefix", "sluice"}, kVdevs,
             {"--no-pci", "--lcores=0@0,1@1"}})},
    {"Coremask", {"-c", "0x3"},
     concat({{"sluice", "--main-lcore", "0", "-m", "512", "--file-prefix", "sluice"}, kVdevs, {"--no-pci", "-c", "0x3"}})},
    {"MainLcore", {"--main-lcore", "1"},
     concat({{"sluice", "-l", "0-1", "-m", "512", "--file-prefix", "sluice"}, kVdevs, {"--no-pci", "--main-lcore", "1"}})},
    {"MemoryShort", {"-m", "1024"},
     concat({{"sluice", "-l", "0-1", "--main-lcore", "0", "--file-prefix", "sluice"}, kVdevs, {"--no-pci", "-m", "1024"}})},
    {"MemoryShortAttached", {"-m1024"},
     concat({{"sluice", "-l", "0-1", "--main-lcore", "0", "--file-prefix", "sluice"}, kVdevs, {"--no-pci", "-m1024"}})},
    {"SocketMem", {"--socket-mem=1024"},
     concat({{"sluice", "-l", "0-1", "--main-lcore", "0", "--file-prefix", "sluice"}, kVdevs,
             {"--no-pci", "--socket-mem=1024"}})},
    {"FilePrefix", {"--file-prefix", "other"},
     concat({{"sluice", "-l", "0-1", "--main-lcore", "0", "-m", "512"}, kVdevs, {"--no-pci", "--file-prefix", "other"}})},
    {"FilePrefixWithEquals", {"--file-prefix=other"},
     concat({{"sluice", "-l", "0-1", "--main-lcore", "0", "-m", "512"}, kVdevs, {"--no-pci", "--file-prefix=other"}})},
    {"InMemoryReplacesFilePrefix", {"--in-memory"},
     concat({{"sluice", "-l", "0-1", "--main-lcore", "0", "-m", "512"}, kVdevs, {"--no-pci", "--in-memory"}})},
    {"NoHugeIsAdded", {"--no-huge"},
     concat({{"sluice", "-l", "0-1", "--main-lcore", "0", "-m", "512", "--file-prefix", "sluice"}, kVdevs,
             {"--no-pci", "--no-huge"}})},
    {"AllowListKeepsPciProbing", {"-a", "0000:02:00.0"},
     concat({{"sluice", "-l", "0-1", "--main-lcore", "0", "-m", "512", "--file-prefix", "sluice"}, kVdevs,
             {"-a", "0000:02:00.0"}})},
    {"AllowListLongForm", {"--allow=0000:02:00.0"},
     concat({{"sluice", "-l", "0-1", "--main-lcore", "0", "-m", "512", "--file-prefix", "sluice"}, kVdevs,
             {"--allow=0000:02:00.0"}})},
    {"UnrelatedOptionIsAppended", {"--log-level", "eal:debug"},
     concat({{"sluice", "-l", "0-1", "--main-lcore", "0", "-m", "512", "--file-prefix", "sluice"}, kVdevs,
             {"--no-pci", "--log-level", "eal:debug"}})},
};

INSTANTIATE_TEST_SUITE_P(BuildEalArgs, EalOverrideTest, ::testing::ValuesIn(kOverrides),
                         [](const ::testing::TestParamInfo<Override>& param_info) {
                           return std::string(param_info.param.name);
                         });

// ---- auto_mbuf_count ----

TEST(AutoMbufCountTest, NeverBelow8191) {
  // 2 ports x (1024 + 1024) + 1 worker x (64 + 2 x 128) + 2 lcores x 384 = 5184.
  EXPECT_EQ(Runtime::auto_mbuf_count(parse(kTwoVdevs)), 8191u);
}

TEST(AutoMbufCountTest, RoundsUpToPowerOfTwoMinusOne) {
  // 2 x (2048 + 2048) + 320, no cache = 8512 -> 16383.
  config::Config c = parse(R"({"eal": {"lcores": "0-1"}, "ports": [
      {"name": "west", "device": "net_ring0", "rx_descriptors": 2048, "tx_descriptors": 2048, "pipeline": [{"stage": "xconnect", "peer": "east"}]},
      {"name": "east", "device": "net_ring1", "rx_descriptors": 2048, "tx_descriptors": 2048, "pipeline": [{"stage": "xconnect", "peer": "west"}]}],
      "mempool": {"cache_size": 0}})");
  EXPECT_EQ(Runtime::auto_mbuf_count(c), 16383u);
}

// Two workers (lcores 0-2), so tx_queues = 2 on each port.
std::string three_lcores(unsigned rx_descriptors, unsigned tx_descriptors, unsigned cache_size) {
  std::string d = R"("rx_descriptors": )" + std::to_string(rx_descriptors) + R"(, "tx_descriptors": )" +
                  std::to_string(tx_descriptors);
  return R"({"eal": {"lcores": "0-2"}, "ports": [
      {"name": "west", "device": "net_ring0", )" + d + R"(, "pipeline": [{"stage": "xconnect", "peer": "east"}]},
      {"name": "east", "device": "net_ring1", )" + d + R"(, "pipeline": [{"stage": "xconnect", "peer": "west"}]}],
      "mempool": {"cache_size": )" + std::to_string(cache_size) + "}}";
}

TEST(AutoMbufCountTest, ExactlyPowerOfTwoMinusOneStays) {
  // 2 x (2000 + 2 x 2935) + 2 x (64 + 2 x 128) + 3 x (1 x 3 / 2) = 15740 + 640 + 3 = 16383.
  config::Config c = parse(three_lcores(2000, 2935, 1));
  ASSERT_EQ(c.ports[0].tx_queues, 2u);
  EXPECT_EQ(Runtime::auto_mbuf_count(c), 16383u);
}

TEST(AutoMbufCountTest, OneMoreThanPowerOfTwoMinusOneDoubles) {
  // 2 x (2002 + 2 x 2935) + 640 + 0 = 16384 -> 32767.
  EXPECT_EQ(Runtime::auto_mbuf_count(parse(three_lcores(2002, 2935, 0))), 32767u);
}

TEST(AutoMbufCountTest, BigConfig) {
  // lcores 0-4: 4 workers, 4 rx queues a port, tx_queues 4.
  // 2 x (4 x 4096 + 4 x 4096) + 4 x (64 + 2 x 128) + 5 x 384 = 65536 + 1280 + 1920 = 68736 -> 131071.
  config::Config c = parse(R"({"eal": {"lcores": "0-4"}, "ports": [
      {"name": "west", "device": "net_ring0", "rx_queues": 4, "rx_descriptors": 4096, "tx_descriptors": 4096, "pipeline": [{"stage": "xconnect", "peer": "east"}]},
      {"name": "east", "device": "net_ring1", "rx_queues": 4, "rx_descriptors": 4096, "tx_descriptors": 4096, "pipeline": [{"stage": "xconnect", "peer": "west"}]}]})");
  ASSERT_EQ(c.workers.size(), 4u);
  EXPECT_EQ(Runtime::auto_mbuf_count(c), 131071u);
}

TEST(AutoMbufCountTest, AfXdpCountsItsFillRingNotRxDescriptors) {
  // net_af_xdp fills 2048 mbufs an RX queue whatever rx_descriptors says:
  // 2 x (2048 + 3000) + 1 x (64 + 2 x 128) + 2 x 384 = 11184 -> 16383; the same ports on
  // af_packet: 2 x (256 + 3000) + 1088 = 7600 -> 8191.
  auto two_ports = [](const std::string& driver) {
    return R"({"eal": {"lcores": "0-1"}, "ports": [
      {"name": "west", "device": ")" + driver + R"(0", "devargs": "iface=a", "rx_descriptors": 256, "tx_descriptors": 3000, "pipeline": [{"stage": "xconnect", "peer": "east"}]},
      {"name": "east", "device": ")" + driver + R"(1", "devargs": "iface=b", "rx_descriptors": 256, "tx_descriptors": 3000, "pipeline": [{"stage": "xconnect", "peer": "west"}]}]})";
  };
  EXPECT_EQ(Runtime::auto_mbuf_count(parse(two_ports("net_af_xdp"))), 16383u);
  EXPECT_EQ(Runtime::auto_mbuf_count(parse(two_ports("net_af_packet"))), 8191u);
}

TEST(AutoMbufCountTest, ResultIsAlwaysPowerOfTwoMinusOne) {
  for (unsigned d : {64u, 100u, 1000u, 3000u, 5000u, 16384u}) {
    unsigned n = Runtime::auto_mbuf_count(parse(three_lcores(d, d, 256)));
    EXPECT_GE(n, 8191u);
    EXPECT_EQ(n & (n + 1), 0u) << n << " is not 2^k - 1";
  }
}

}  // namespace
}  // namespace sluice::runtime

namespace sluice::runtime {
namespace {

TEST(EalPrefixTest, TheLastFilePrefixWinsAndDpdksDefaultOtherwise) {
  EXPECT_EQ(eal_file_prefix({"sluice", "-l", "0-1"}), "rte");
  EXPECT_EQ(eal_file_prefix({"sluice", "--file-prefix", "a", "--file-prefix=b"}), "b");
  EXPECT_EQ(eal_file_prefix({"sluice", "--file-prefix=b", "--file-prefix", "c"}), "c");
  if (getuid() == 0) {
    EXPECT_EQ(eal_runtime_dir("x"), "/var/run/dpdk/x");
  }
}

// A primary DPDK process's lock on its runtime directory's config file, held by another
// process (a child here: a process never sees its own fcntl locks as conflicts).
TEST(EalPrefixTest, APrefixAnotherProcessHoldsIsNamedWithItsHolder) {
  const std::string prefix = "ut-prefix-" + std::to_string(getpid());
  const std::string dir = eal_runtime_dir(prefix);
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  const std::string config = dir + "/config";
  const Args args{"sluice", "--file-prefix", prefix};
  EXPECT_EQ(eal_prefix_in_use(args), "") << "no config file: nobody holds it";
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // As rte_eal_config_create: a write lock on the config file, held while it runs.
    const int fd = open(config.c_str(), O_RDWR | O_CREAT, 0600);
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    const char ok = fd >= 0 && fcntl(fd, F_SETLK, &lock) == 0 ? 1 : 0;
    if (write(ready[1], &ok, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  char ok = 0;
  ASSERT_EQ(read(ready[0], &ok, 1), 1);
  EXPECT_EQ(ok, 1) << "the child took the lock";
  const std::string held = eal_prefix_in_use(args);
  EXPECT_THAT(held, ::testing::HasSubstr("EAL file prefix '" + prefix + "' is in use: process " +
                                         std::to_string(child) + " holds " + config));
  EXPECT_THAT(held, ::testing::HasSubstr("another eal.file_prefix"));
  EXPECT_EQ(eal_prefix_in_use({"sluice", "--file-prefix", prefix, "--in-memory"}), "") << "no shared config";
  EXPECT_EQ(eal_prefix_in_use({"sluice", "--file-prefix", prefix, "--proc-type=secondary"}), "")
      << "a secondary attaches to the primary on purpose";
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  close(ready[0]);
  close(ready[1]);
  EXPECT_EQ(eal_prefix_in_use(args), "") << "the holder is gone: the file alone holds nothing";
  ASSERT_EQ(system(("rm -rf " + dir).c_str()), 0);
}

TEST(EalPreflightTest, LcoresBeyondTheUsableCpusAreNamedWithTheFix) {
  const std::vector<unsigned> usable = {0, 1};
  EXPECT_EQ(eal_lcores_unusable({"sluice", "-l", "0-1"}, usable), "");
  EXPECT_EQ(eal_lcores_unusable({"sluice", "-l", "0,1"}, usable), "");
  const std::string msg = eal_lcores_unusable({"sluice", "-l", "0-5"}, usable);
  EXPECT_THAT(msg, ::testing::HasSubstr("EAL lcores 0-5: CPU(s) 2-5 are not usable here"));
  EXPECT_THAT(msg, ::testing::HasSubstr("run on 0-1 (2 online"));
  EXPECT_THAT(eal_lcores_unusable({"sluice", "-l", "0-1", "--lcores=0,3,5"}, usable),
              ::testing::HasSubstr("CPU(s) 3,5 are not usable"))
      << "the last lcore option is EAL's";
  EXPECT_EQ(eal_lcores_unusable({"sluice", "--lcores", "(0-1)@0,2@1"}, usable), "") << "EAL's mapping syntax: EAL judges";
  EXPECT_EQ(eal_lcores_unusable({"sluice"}, usable), "");
  EXPECT_THAT(eal_lcores_unusable({"sluice", "-l", "0,2-3,7"}, {0, 2, 3, 4}), ::testing::HasSubstr("CPU(s) 7 are"));
}

TEST(EalPreflightTest, HugepagesNoneUnmountedOrTooFewAreSaid) {
  const std::string reserved = "MemTotal: 100 kB\nHugePages_Total:     512\nHugePages_Free:      300\n"
                               "HugePages_Rsvd: 0\nHugepagesize:       2048 kB\n";
  const std::string none = "HugePages_Total:       0\nHugePages_Free:        0\nHugepagesize:       2048 kB\n";
  const std::vector<std::string> args = {"sluice", "-m", "256"};
  EXPECT_EQ(eal_hugepages_missing(args, reserved, true), "") << "256 MiB of 600 free";
  EXPECT_THAT(eal_hugepages_missing(args, none, true), ::testing::HasSubstr("no hugepages are reserved"));
  EXPECT_THAT(eal_hugepages_missing(args, none, true), ::testing::HasSubstr("hugepages.sh reserve 512"));
  EXPECT_THAT(eal_hugepages_missing(args, none, true), ::testing::HasSubstr("--no-huge"));
  EXPECT_THAT(eal_hugepages_missing(args, reserved, false), ::testing::HasSubstr("no hugetlbfs is mounted"));
  const std::string short_msg = eal_hugepages_missing({"sluice", "-m", "1024"}, reserved, true);
  EXPECT_THAT(short_msg, ::testing::HasSubstr("eal.memory_mb 1024 asks for more hugepage memory than is free: 300 of "
                                              "512 pages of 2048 kB free (600 MiB"));
  EXPECT_THAT(short_msg, ::testing::HasSubstr("reserve 725 --at-least"));
  EXPECT_EQ(eal_hugepages_missing({"sluice", "-m", "1024"}, reserved, true, 424), "")
      << "a killed run's files of this prefix hold the rest: EAL takes them back";
  EXPECT_EQ(eal_hugepages_missing({"sluice", "-m", "1024", "--no-huge"}, none, false), "") << "--no-huge needs none";
  EXPECT_EQ(eal_hugepages_missing({"sluice"}, reserved, true), "") << "no -m: EAL takes what it needs";
}

}  // namespace
}  // namespace sluice::runtime
