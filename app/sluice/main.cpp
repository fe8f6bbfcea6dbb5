// sluice: the appliance. Parses the CLI and config, brings up the data plane, runs the
// control loop on the main lcore until SIGINT/SIGTERM, then shuts down and checks that
// every mbuf came home.
//
// Exit codes: 0 clean, 1 bad config / runtime failure / leaked mbufs, 2 usage error.

#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <boost/program_options.hpp>
#include <rte_version.h>
#include <spdlog/spdlog.h>

#include "config/config.h"
#include "control/http_server.h"
#include "control/reload.h"
#include "control/telemetry.h"
#include "runtime/eal.h"
#include "runtime/logging.h"
#include "runtime/runtime.h"

namespace po = boost::program_options;
using namespace sluice;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

std::atomic<int> g_stop_signal{0};
std::atomic<bool> g_reload_requested{false};
static_assert(std::atomic<int>::is_always_lock_free);

void on_signal(int signo) { g_stop_signal.store(signo, std::memory_order_relaxed); }
void on_hangup(int) { g_reload_requested.store(true, std::memory_order_relaxed); }

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  struct sigaction hup {};
  hup.sa_handler = on_hangup;
  sigemptyset(&hup.sa_mask);
  sigaction(SIGHUP, &hup, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client hanging up mid-reply must not kill us
}

std::string usage(const po::options_description& options) {
  std::ostringstream out;
  out << "Usage: sluice --config FILE [options] [-- EAL arguments]\n\n"
      << "Sluice: a DPDK kernel-bypass packet-forwarding appliance.\n\n"
      << options
      << "\nArguments after `--` go to DPDK's EAL and replace the config's `eal` values\n"
      << "for the same option (e.g. `-- -l 0-2 --no-huge`).\n";
  return out.str();
}

int run(const config::Config& cfg, const std::vector<std::string>& eal_cli_args) {
  runtime::Runtime rt(cfg);
  std::string error;
  if (!rt.init_eal(runtime::build_eal_args(cfg, eal_cli_args), error) || !rt.setup(error)) {
    spdlog::error("{}", error);
    return kExitFailure;
  }
  if (cfg.control.telemetry) control::register_telemetry(rt);
  control::HttpServer http(rt);
  http.set_reload([&rt] { return control::reload_config(rt); });
  if (cfg.control.http.enabled && !http.start(cfg.control.http, error)) {
    spdlog::error("{}", error);
    control::unregister_telemetry();
    rt.shutdown();
    return kExitFailure;
  }

  rt.launch();
  spdlog::info("sluice {} running: {} port(s), {} worker(s); SIGINT or SIGTERM to stop", SLUICE_VERSION,
               cfg.ports.size(), cfg.workers.size());

  // The control loop: the router's slow path every millisecond (ARP/ND replies and
  // packets waiting on a neighbour must not wait long), the NAT event log five times a
  // second (the workers' rings hold 8192 records each), link watch every
  // runtime::kLinkPollMs (a link back up carries traffic again within that).
  auto next_link_poll = std::chrono::steady_clock::now();
  auto next_log_drain = next_link_poll;
  while (g_stop_signal.load(std::memory_order_relaxed) == 0) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_link_poll) {
      rt.poll_links();
      next_link_poll += std::chrono::milliseconds(runtime::kLinkPollMs);
    }
    if (now >= next_log_drain) {
      rt.drain_nat_log();
      next_log_drain += std::chrono::milliseconds(200);
    }
    rt.poll_router();
    if (g_reload_requested.exchange(false, std::memory_order_relaxed)) {
      spdlog::info("SIGHUP: reloading {}", cfg.source_path);
      control::reload_config(rt);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  spdlog::info("signal {} received: stopping", strsignal(g_stop_signal.load()));

  http.stop();
  control::unregister_telemetry();
  bool clean = rt.shutdown();
  spdlog::info("shutdown {}", clean ? "complete" : "FAILED: mbufs leaked");
  return clean ? kExitOk : kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  install_signal_handlers();
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  // Everything after the first "--" belongs to EAL.
  std::vector<std::string> eal_cli_args;
  int own_argc = argc;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--") {
      own_argc = i;
      eal_cli_args.assign(argv + i + 1, argv + argc);
      break;
    }
  }

  std::string config_path, log_level;
  po::options_description options("Options");
  options.add_options()
      ("config,c", po::value<std::string>(&config_path)->value_name("FILE"), "JSON configuration file (required)")
      ("check-config", "validate the configuration, print the effective config as JSON, and exit")
      ("log-level", po::value<std::string>(&log_level)->value_name("LEVEL"),
       "trace, debug, info, warn, error, critical or off (overrides logging.level)")
      ("version", "print the version and exit")
      ("help,h", "print this help and exit");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(own_argc, argv).options(options).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "sluice: " << e.what() << "\nTry `sluice --help`.\n";
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << usage(options);
    return kExitOk;
  }
  if (vm.count("version")) {
    std::cout << "sluice " << SLUICE_VERSION << " (" << rte_version() << ")\n";
    return kExitOk;
  }
  if (config_path.empty()) {
    std::cerr << "sluice: --config FILE is required\nTry `sluice --help`.\n";
    return kExitUsage;
  }
  if (!log_level.empty() && !runtime::set_log_level(log_level)) {
    std::cerr << "sluice: --log-level: unknown level '" << log_level << "'\n";
    return kExitUsage;
  }

  config::ParseResult parsed = config::load_config_file(config_path);
  if (!parsed.ok()) {
    for (const auto& line : parsed.errors) std::cerr << line << '\n';
    std::cerr << "sluice: " << config_path << ": " << parsed.errors.size() << " error(s); nothing was started\n";
    return kExitFailure;
  }
  const config::Config& cfg = *parsed.config;
  if (vm.count("check-config")) {
    std::cout << config::to_json(cfg).dump(2) << '\n';
    return kExitOk;
  }
  if (log_level.empty()) runtime::set_log_level(cfg.logging.level);
  runtime::redirect_dpdk_log();

  try {
    return run(cfg, eal_cli_args);
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return kExitFailure;
  }
}
