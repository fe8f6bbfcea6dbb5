// Micro-benchmark of the load balancer's control-side table build: the Maglev lookup
// table (lib/lb/maglev.h) for N backends at a table size, and the whole service table
// the control thread compiles and publishes on a reload or a backend going up or down
// (lib/lb/service_table.h: one full-NAT service of those backends, its Maglev table
// included). Each is built --builds times; prints one line each, read by tools/bench --lb:
//
//   maglev backends=1000 size=65537 builds=21 first_ms=.. median_ms=.. min_ms=.. max_ms=..
//   service_table backends=1000 size=65537 builds=21 first_ms=.. median_ms=.. min_ms=.. max_ms=..
//
//   sluice-maglev-bench [--backends N] [--size PRIME] [--builds N]
//
// Backend identities are what a config without names gives ("address:port"), the form
// tests/unit/maglev_test.cpp times too. No EAL: the build touches no DPDK memory.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "config/services_config.h"
#include "lb/maglev.h"
#include "lb/service_table.h"
#include "net/ip_addr.h"

using namespace sluice;

namespace {

struct Timings {
  std::vector<double> ms;  // in build order: the first is the cold one
};

template <typename Build>
bool time_builds(unsigned builds, Timings& out, Build&& build) {
  for (unsigned k = 0; k < builds; ++k) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!build()) return false;
    out.ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return true;
}

void print(const char* what, unsigned backends, uint32_t size, const Timings& t) {
  std::vector<double> sorted = t.ms;
  std::sort(sorted.begin(), sorted.end());
  std::printf("%s backends=%u size=%u builds=%zu first_ms=%.3f median_ms=%.3f min_ms=%.3f max_ms=%.3f\n", what,
              backends, size, sorted.size(), t.ms.front(), sorted[(sorted.size() - 1) / 2], sorted.front(),
              sorted.back());
}

}  // namespace

int main(int argc, char** argv) {
  unsigned n_backends = 1000, builds = 21;
  uint32_t size = lb::kMaglevDefaultSize;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const unsigned long v = std::strtoul(argv[i + 1], nullptr, 0);
    if (k == "--backends") n_backends = static_cast<unsigned>(v);
    else if (k == "--size") size = static_cast<uint32_t>(v);
    else if (k == "--builds") builds = static_cast<unsigned>(v);
    else {
      std::fprintf(stderr, "sluice-maglev-bench: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (!builds || !n_backends || n_backends > config::kMaxBackends) {
    std::fprintf(stderr, "sluice-maglev-bench: --builds >= 1, --backends 1..%u\n", config::kMaxBackends);
    return 2;
  }

  // One service as the config reader makes it: backends 10.2.x.y port 8000, unnamed.
  config::LbService service;
  service.name = "bench";
  service.vip = *net::parse_ip("10.1.0.100");
  service.protocol = 6;
  service.port = 8000;
  service.mode = config::LbMode::FullNat;
  service.table_size = size;
  service.local_addresses.push_back(*net::parse_prefix("10.3.0.0/24"));
  std::vector<lb::MaglevBackend> maglev;
  for (unsigned i = 0; i < n_backends; ++i) {
    config::LbBackend b;
    b.address = *net::parse_ip("10.2." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1));
    maglev.push_back({lb::backend_id(b, service.port), b.weight});
    service.backends.push_back(std::move(b));
  }

  std::string error;
  Timings table_times;
  lb::MaglevTable table;
  if (!time_builds(builds, table_times, [&] { return table.build(maglev, size, error); })) {
    std::fprintf(stderr, "sluice-maglev-bench: %s\n", error.c_str());
    return 1;
  }
  // Every backend holds entries: the table was really filled.
  const std::vector<uint32_t> shares = table.shares(n_backends);
  if (*std::min_element(shares.begin(), shares.end()) == 0) {
    std::fprintf(stderr, "sluice-maglev-bench: a backend holds no entry\n");
    return 1;
  }

  Timings service_times;
  const std::vector<config::LbService> services = {service};
  lb::SlotRegistry registry;  // slots are kept across builds, as in a running Sluice
  if (!time_builds(builds, service_times, [&] {
        return lb::ServiceTable::build(services, registry, nullptr, error) != nullptr;
      })) {
    std::fprintf(stderr, "sluice-maglev-bench: %s\n", error.c_str());
    return 1;
  }
  print("maglev", n_backends, size, table_times);
  print("service_table", n_backends, size, service_times);
  return 0;
}
