#include "commands.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <thread>

#include <boost/program_options.hpp>

namespace po = boost::program_options;
using nlohmann::json;

namespace sluicectl {

namespace {

std::atomic<bool> g_interrupted{false};

void on_interrupt(int) { g_interrupted.store(true, std::memory_order_relaxed); }

// Ctrl-C ends --watch and a running trace cleanly instead of killing the process.
void catch_interrupt() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// Sleeps up to `seconds`, waking early on Ctrl-C; false when interrupted.
bool nap(double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (g_interrupted.load(std::memory_order_relaxed)) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return !g_interrupted.load(std::memory_order_relaxed);
}

int report(const Reply& r) {
  std::cerr << "sluicectl: " << r.message << "\n";
  return r.exit_code;
}

int usage_error(const std::string& command, const std::string& what, const po::options_description& options) {
  std::cerr << "sluicectl " << command << ": " << what << "\n\nUsage: sluicectl [global options] " << command
            << " [options]\n"
            << options << "Try `sluicectl --help` for the global options and exit codes.\n";
  return kExitUsage;
}

void print_json(const json& j) { std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n"; }

// Parses a command's options; returns -1 to go on, or the exit code (--help: 0, an error: 2).
int parse(const std::string& command, const std::vector<std::string>& args, po::options_description& options,
          po::variables_map& vm, const char* description) {
  options.add_options()("help,h", "print this command's help");
  try {
    const int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    po::store(po::command_line_parser(args).options(options).style(style).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error(command, e.what(), options);
  }
  if (vm.count("help")) {
    std::cout << "Usage: sluicectl [global options] " << command << " [options]\n\n"
              << description << "\n\n"
              << options;
    return kExitOk;
  }
  return -1;
}

// A read-only view: GET path, then the table or the JSON.
int show(const Context& ctx, const std::vector<std::string>& args, const char* name, const char* path,
         std::string (*render)(const json&), const char* description) {
  po::options_description options(std::string(name) + " options");
  po::variables_map vm;
  if (int rc = parse(name, args, options, vm, description); rc >= 0) return rc;
  Reply r = ctx.client.get(path);
  if (r.exit_code != kExitOk) return report(r);
  if (ctx.json) print_json(r.body);
  else std::cout << render(r.body);
  return kExitOk;
}

// ---------------------------------------------------------------- commands

int cmd_status(const Context& ctx, const std::vector<std::string>& args) {
  po::options_description options("status options");
  po::variables_map vm;
  if (int rc = parse("status", args, options, vm,
                     "Health, uptime, version, ports up and down, workers, packets and drops in a few lines.");
      rc >= 0)
    return rc;
  Reply health = ctx.client.get("/health");
  if (health.exit_code != kExitOk) return report(health);
  Reply stats = ctx.client.get("/stats");
  if (stats.exit_code != kExitOk) return report(stats);
  if (ctx.json) print_json({{"health", health.body}, {"stats", stats.body}});
  else std::cout << render_status(health.body, stats.body, ctx.client.address());
  return kExitOk;
}

int cmd_ports(const Context& ctx, const std::vector<std::string>& args) {
  po::options_description options("ports options");
  options.add_options()("names", "print only the port names, one a line (for scripts and completion)");
  po::variables_map vm;
  if (int rc = parse("ports", args, options, vm, "The ports: device, link, packets, losses and drops (GET /stats)."); rc >= 0)
    return rc;
  Reply r = ctx.client.get("/stats");
  if (r.exit_code != kExitOk) return report(r);
  if (vm.count("names")) {
    for (const auto& name : port_names(r.body)) std::cout << name << "\n";
  } else if (ctx.json) {
    print_json({{"ports", r.body.value("ports", json::array())}});
  } else {
    std::cout << render_ports(r.body);
  }
  return kExitOk;
}

int watch(const Context& ctx, double interval, uint64_t count) {
  catch_interrupt();
  Reply before = ctx.client.get("/stats");
  if (before.exit_code != kExitOk) return report(before);
  auto t0 = std::chrono::steady_clock::now();
  const bool tty = isatty(STDOUT_FILENO);
  for (uint64_t i = 1; count == 0 || i <= count; ++i) {
    if (!nap(interval)) break;
    Reply after = ctx.client.get("/stats");
    if (after.exit_code != kExitOk) return report(after);
    const auto t1 = std::chrono::steady_clock::now();
    const Rates rates = compute_rates(before.body, after.body, std::chrono::duration<double>(t1 - t0).count());
    if (ctx.json) {
      std::cout << rates_json(rates).dump() << std::endl;
    } else {
      std::ostringstream frame;
      if (tty) frame << "\033[H\033[2J";  // home, clear: redraw in place
      frame << "sluicectl stats --watch: " << ctx.client.address() << ", every " << interval << " s, refresh " << i;
      if (count) frame << " of " << count;
      frame << " (Ctrl-C to quit)\n" << render_rates(rates, after.body) << (tty ? "" : "\n");
      std::cout << frame.str() << std::flush;
    }
    before = std::move(after);
    t0 = t1;
  }
  return kExitOk;
}

int cmd_stats(const Context& ctx, const std::vector<std::string>& args) {
  po::options_description options("stats options");
  double interval = 1;
  uint64_t count = 0;
  options.add_options()("watch,w", "a live view: packet, bit and drop rates per port and per stage, redrawn in place")(
      "interval,i", po::value<double>(&interval)->value_name("SECONDS"), "--watch: seconds between refreshes (default 1)")(
      "count,n", po::value<uint64_t>(&count)->value_name("N"), "--watch: stop after N refreshes (default: until Ctrl-C)");
  po::variables_map vm;
  if (int rc = parse("stats", args, options, vm,
                     "Per-port and per-stage packets and drops (GET /stats); --watch shows rates per second.\n"
                     "With --json: the /stats answer, or with --watch one JSON object of rates a line.");
      rc >= 0)
    return rc;
  if (!vm.count("watch") && (vm.count("interval") || vm.count("count")))
    return usage_error("stats", "--interval and --count go with --watch", options);
  if (vm.count("watch")) {
    if (!(interval >= 0.1 && interval <= 3600))
      return usage_error("stats", "--interval must be 0.1..3600 seconds", options);
    return watch(ctx, interval, count);
  }
  Reply r = ctx.client.get("/stats");
  if (r.exit_code != kExitOk) return report(r);
  if (ctx.json) print_json(r.body);
  else std::cout << render_stats(r.body);
  return kExitOk;
}

int cmd_routes(const Context& ctx, const std::vector<std::string>& args) {
  return show(ctx, args, "routes", "/routes", render_routes, "The route table: prefix, next hop type, gateway, port.");
}
int cmd_neighbours(const Context& ctx, const std::vector<std::string>& args) {
  return show(ctx, args, "neighbours", "/neighbours", render_neighbours,
              "The neighbour cache (ARP and ND): address, port, state, MAC, age.");
}
int cmd_nat(const Context& ctx, const std::vector<std::string>& args) {
  return show(ctx, args, "nat", "/nat", render_nat, "NAT: mappings, rules, outside addresses and their ports.");
}
int cmd_services(const Context& ctx, const std::vector<std::string>& args) {
  return show(ctx, args, "services", "/services", render_services,
              "The load balancer's services and their backends' state and traffic.");
}

void add_flow_filters(po::options_description& options, FlowFilterArgs& f) {
  auto text = [](std::optional<std::string>& slot, const char* name) {
    return po::value<std::string>()->value_name(name)->notifier([&slot](const std::string& v) { slot = v; });
  };
  options.add_options()("prefix", text(f.prefix, "ADDRESS"), "an address or prefix, either side (/flows address=)")(
      "address-filter", text(f.prefix, "ADDRESS"), "the same as --prefix")(
      "port", text(f.port, "N"), "a TCP/UDP port, either side")(
      "protocol", text(f.protocol, "P"), "tcp, udp, icmp, icmpv6 or a number")(
      "state", text(f.state, "S"), "established, syn_sent, time_wait, unreplied, replied, udp_replied, ...")(
      "zone", text(f.zone, "Z"), "a conntrack zone");
}

int cmd_flows(const Context& ctx, const std::vector<std::string>& args) {
  po::options_description options("flows options");
  FlowFilterArgs f;
  add_flow_filters(options, f);
  options.add_options()("limit", po::value<std::string>()->value_name("N")->notifier([&f](const std::string& v) {
    f.limit = v;
  }),
                        "at most N flows (1..10000, default 100)")(
      "cursor", po::value<std::string>()->value_name("C")->notifier([&f](const std::string& v) { f.cursor = v; }),
      "the next page: the cursor a previous listing printed");
  po::variables_map vm;
  if (int rc = parse("flows", args, options, vm, "Tracked connections (GET /flows), filtered; the server checks each value.");
      rc >= 0)
    return rc;
  Reply r = ctx.client.get("/flows", flow_query(f));
  if (r.exit_code != kExitOk) return report(r);
  if (ctx.json) print_json(r.body);
  else std::cout << render_flows(r.body);
  return kExitOk;
}

int cmd_flush(const Context& ctx, const std::vector<std::string>& args) {
  po::options_description options("flush options");
  FlowFilterArgs f;
  add_flow_filters(options, f);
  options.add_options()("all", "flush every flow (needed when no filter is given)");
  po::variables_map vm;
  if (int rc = parse("flush", args, options, vm, "Removes the matching tracked connections (POST /flows/flush).");
      rc >= 0)
    return rc;
  const Query q = flow_query(f);
  if (q.empty() && !vm.count("all")) return usage_error("flush", "give a filter, or --all to flush every flow", options);
  if (!q.empty() && vm.count("all")) return usage_error("flush", "--all takes no filter", options);
  Reply r = ctx.client.post("/flows/flush", q);
  if (r.exit_code != kExitOk) return report(r);
  if (ctx.json) print_json(r.body);
  else std::cout << "flushed " << field(r.body, "flushed") << " flow(s)\n";
  return kExitOk;
}

int cmd_reload(const Context& ctx, const std::vector<std::string>& args) {
  po::options_description options("reload options");
  po::variables_map vm;
  if (int rc = parse("reload", args, options, vm,
                     "Re-reads the configuration file Sluice started with and applies it (POST /reload).\n"
                     "Exit 1 when Sluice refuses it (invalid, or a change that needs a restart).");
      rc >= 0)
    return rc;
  Reply r = ctx.client.post("/reload");
  if (r.exit_code != kExitOk && r.exit_code != kExitRefused) return report(r);
  if (r.exit_code == kExitRefused && !r.body.is_object()) return report(r);
  if (ctx.json) print_json(r.body);
  else (r.exit_code == kExitOk ? std::cout : std::cerr) << render_reload(r.body);
  return r.exit_code;
}

int cmd_trace(const Context& ctx, const std::vector<std::string>& args) {
  po::options_description options("trace options");
  std::string port, filter;
  uint64_t count = 10;
  double wait = 10;
  options.add_options()("port,p", po::value<std::string>(&port)->value_name("NAME"), "the ingress port (required)")(
      "count,n", po::value<uint64_t>(&count)->value_name("N"), "packets to catch (1..1000, default 10)")(
      "drops", "keep only packets that end dropped")(
      "filter,f", po::value<std::string>(&filter)->value_name("EXPR"),
      "e.g. \"proto tcp dst 10.2.0.0/24 dport 80\": proto, src, dst, host, sport, dport, port (either side)")(
      "wait", po::value<double>(&wait)->value_name("SECONDS"), "give up waiting after SECONDS (default 10)");
  po::variables_map vm;
  if (int rc = parse("trace", args, options, vm,
                     "Follows the next packets that match through their port's pipeline: each stage, what it\n"
                     "decided, how the headers changed, its cycles, and where the packet ended (POST /trace,\n"
                     "GET /trace until enough are caught or --wait passes, POST /trace/stop).");
      rc >= 0)
    return rc;
  if (port.empty()) return usage_error("trace", "--port NAME is required", options);
  if (!(wait > 0 && wait <= 3600)) return usage_error("trace", "--wait must be 0..3600 seconds", options);
  Query q{{"port", port}, {"count", std::to_string(count)}};
  if (vm.count("drops")) q["drops"] = "1";
  std::string error;
  if (!parse_trace_filter(filter, q, error)) return usage_error("trace", error, options);

  catch_interrupt();
  Reply armed = ctx.client.post("/trace", q);
  if (armed.exit_code != kExitOk) return report(armed);
  const json id = armed.body.value("id", json());
  if (!ctx.json) std::cerr << "tracing " << field(armed.body, "filter") << " for up to " << wait << " s ...\n";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait);
  Reply last;
  bool interrupted = false;
  while (true) {
    last = ctx.client.get("/trace");
    if (last.exit_code != kExitOk) return report(last);
    if (last.body.value("id", json()) != id) {
      std::cerr << "sluicectl: trace: another client started trace " << field(last.body, "id")
                << " and replaced this one (" << cell(id) << ")\n";
      return kExitRefused;
    }
    if (last.body.value("armed", false) == false || number(last.body, "captured") >= number(last.body, "wanted", 1) ||
        std::chrono::steady_clock::now() >= deadline)
      break;
    if (!nap(0.15)) {
      interrupted = true;
      break;
    }
  }
  Reply stopped = ctx.client.post("/trace/stop");
  if (stopped.exit_code != kExitOk) return report(stopped);
  const json& result = stopped.body.value("id", json()) == id ? stopped.body : last.body;
  if (ctx.json) print_json(result);
  else std::cout << render_trace(result);
  return interrupted ? 130 : kExitOk;
}

// The executable dpdk-dumpcap names: itself when it has a '/', else found in PATH.
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

int cmd_capture(const Context& ctx, const std::vector<std::string>& args) {
  po::options_description options("capture options");
  CaptureArgs c;
  const char* env_dumpcap = std::getenv("SLUICECTL_DUMPCAP");
  std::string dumpcap = env_dumpcap && *env_dumpcap ? env_dumpcap : "dpdk-dumpcap";
  options.add_options()("port,p", po::value<std::string>(&c.port)->value_name("NAME"), "the port to capture (required)")(
      "write,w", po::value<std::string>(&c.file)->value_name("FILE"), "the pcapng file to write (required)")(
      "count,c", po::value<uint64_t>()->value_name("N")->notifier([&c](uint64_t v) { c.count = v; }),
      "stop after N packets")(
      "duration,d", po::value<uint64_t>()->value_name("SECONDS")->notifier([&c](uint64_t v) { c.duration = v; }),
      "stop after SECONDS")(
      "dumpcap", po::value<std::string>(&dumpcap)->value_name("PATH"),
      "the dpdk-dumpcap to run (default: dpdk-dumpcap in PATH, or $SLUICECTL_DUMPCAP)")(
      "dry-run", "print the dpdk-dumpcap command instead of running it");
  po::variables_map vm;
  if (int rc = parse("capture", args, options, vm,
                     "Captures a port's packets with DPDK's dpdk-dumpcap, attached to the running Sluice as a\n"
                     "secondary process: the port id comes from GET /stats, the EAL file prefix from GET /config.\n"
                     "Sluice initialises DPDK's pdump at start; dpdk-dumpcap needs its hugepages (not --no-huge).");
      rc >= 0)
    return rc;
  if (c.port.empty()) return usage_error("capture", "--port NAME is required", options);
  if (c.file.empty()) return usage_error("capture", "-w FILE is required", options);
  Reply stats = ctx.client.get("/stats");
  if (stats.exit_code != kExitOk) return report(stats);
  Reply config = ctx.client.get("/config");
  if (config.exit_code != kExitOk) return report(config);
  std::vector<std::string> argv;
  std::string error;
  const std::string program = find_program(dumpcap);
  if (!capture_command(c, stats.body, config.body, program.empty() ? dumpcap : program, argv, error)) {
    std::cerr << "sluicectl: " << error << "\n";
    return kExitRefused;
  }
  if (vm.count("dry-run")) {
    if (ctx.json) print_json({{"argv", argv}});
    else {
      for (size_t i = 0; i < argv.size(); ++i) std::cout << (i ? " " : "") << argv[i];
      std::cout << "\n";
    }
    return kExitOk;
  }
  if (program.empty()) {
    std::cerr << "sluicectl: capture: " << dumpcap
              << " not found (Debian: apt install dpdk; or give --dumpcap PATH)\n";
    return kExitRefused;
  }
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::cout.flush();
  execv(program.c_str(), cargv.data());
  std::cerr << "sluicectl: capture: cannot run " << program << ": " << std::strerror(errno) << "\n";
  return kExitRefused;
}

}  // namespace

const std::vector<Command>& commands() {
  static const std::vector<Command> all = {
      {"status", "health, uptime, version, ports, workers, drops in a few lines", cmd_status},
      {"ports", "ports: device, link, packets, losses, drops (--names: names only)", cmd_ports},
      {"stats", "per-port and per-stage packets and drops; --watch: live rates", cmd_stats},
      {"routes", "the route table", cmd_routes},
      {"neighbours", "the ARP/ND neighbour cache", cmd_neighbours},
      {"flows", "tracked connections, filtered (--prefix --port --protocol --state --zone)", cmd_flows},
      {"nat", "NAT mappings, rules and outside addresses", cmd_nat},
      {"services", "load-balanced services and their backends", cmd_services},
      {"reload", "re-read and apply the configuration file", cmd_reload},
      {"flush", "remove tracked connections (same filters as flows, or --all)", cmd_flush},
      {"trace", "follow packets through the pipeline (--port NAME [--filter EXPR])", cmd_trace},
      {"capture", "capture a port with dpdk-dumpcap (--port NAME -w FILE)", cmd_capture},
  };
  return all;
}

const Command* find_command(const std::string& name) {
  for (const auto& c : commands())
    if (name == c.name) return &c;
  return nullptr;
}

}  // namespace sluicectl
