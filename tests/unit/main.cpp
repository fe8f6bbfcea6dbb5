// One EAL for the whole test process: DPDK cannot be initialised twice, so every test
// shares it. No hugepages and no PCI, so the tests run on any host. --no-shconf rather
// than --in-memory: EAL refuses --in-memory with --no-huge (which implies legacy memory),
// and --no-shconf likewise leaves no shared config file behind.
#include <cstdio>
#include <iterator>

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <spdlog/spdlog.h>

#include "pipeline/packet_meta.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);  // removes --gtest_* arguments

  const char* eal_args[] = {"sluice-unit-tests", "--no-huge",   "--no-pci",
                            "--no-shconf",       "-m",          "256",
                            "-l",                "0-1",         "--file-prefix=sluice-unit",
                            "--log-level=*:warning", nullptr};
  int eal_argc = static_cast<int>(std::size(eal_args) - 1);
  if (rte_eal_init(eal_argc, const_cast<char**>(eal_args)) < 0) {
    std::fprintf(stderr, "sluice-unit-tests: rte_eal_init failed: %s\n", rte_strerror(rte_errno));
    return 1;
  }
  if (!sluice::pipeline::register_packet_meta()) {
    std::fprintf(stderr, "sluice-unit-tests: cannot register the packet meta dynfield: %s\n", rte_strerror(rte_errno));
    rte_eal_cleanup();
    return 1;
  }
  spdlog::set_level(spdlog::level::warn);  // the runtime's info lines would bury gtest's output

  int result = RUN_ALL_TESTS();
  rte_eal_cleanup();
  return result;
}
