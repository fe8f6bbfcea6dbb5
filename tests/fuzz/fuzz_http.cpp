// The HTTP API reads whatever a client sends: any request (request line, query string,
// headers, body) must get a well-formed answer, never a crash or a handler's exception
// (status 500). The request goes through cpp-httplib's request parser and router and
// Sluice's handlers (control::HttpServer::install) over an in-memory stream, no socket;
// the runtime behind them is configured but not set up (no ports, workers or tracer), so
// /flows answers from no worker and POST /trace says the tracer is not running: the
// query parameters themselves go to the parsers directly too (read_flow_filter for /flows
// and /flows/flush, read_trace_query for /trace, parse_query_list for the telemetry
// form), and the filters they make are applied to a few flows and packets. POST /reload
// runs a stub (the configuration file it re-reads is fuzz_config's).
//
// Checked: every answer has a status httplib or a handler gives on purpose (never 500);
// every JSON body parses and an error status carries {"error": "..."}; a /flows or
// /flows/flush whose filter the parser refuses is a 400 with the parser's message; POST
// /reload calls the reload exactly once, any other method on it none; a method a known
// path does not take is a 405 with an Allow header.
// Input: the raw request bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <rte_eal.h>

#include "config/config.h"
#include "control/flows.h"
#include "control/http_server.h"
#include "control/trace.h"
#include "flow/flow_context.h"
#include "pipeline/trace.h"
#include "runtime/runtime.h"

namespace {

using namespace sluice;

constexpr const char* kTarget = "fuzz_http";

[[noreturn]] void fail(const char* what, const std::string& detail = "") {
  fprintf(stderr, "%s: invariant broken: %s%s%s\n", kTarget, what, detail.empty() ? "" : ": ", detail.c_str());
  __builtin_trap();
}

// The request from `data`, the response appended to `out`.
class MemoryStream final : public httplib::Stream {
 public:
  MemoryStream(const uint8_t* data, size_t size) : data_(reinterpret_cast<const char*>(data)), size_(size) {}
  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    size = std::min(size, size_ - at_);
    std::memcpy(ptr, data_ + at_, size);
    at_ += size;
    return static_cast<ssize_t>(size);
  }
  ssize_t write(const char* ptr, size_t size) override {
    out.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 40000;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 8080;
  }
  socket_t socket() const override { return INVALID_SOCKET; }
  std::string out;

 private:
  const char* data_;
  size_t size_;
  size_t at_ = 0;
};

// process_request is httplib's one request on one connection, protected.
class Server final : public httplib::Server {
 public:
  bool serve(httplib::Stream& stream) {
    bool closed = false;
    return process_request(stream, true, closed, nullptr);
  }
};

struct Seen {
  bool answered = false;
  std::string method, path;
  control::FlowQuery query;
  int status = 0;
  std::string body, content_type;
  bool allow = false;
};

struct Harness {
  std::unique_ptr<config::Config> config;
  std::unique_ptr<runtime::Runtime> runtime;
  std::unique_ptr<control::HttpServer> http;
  Server server;
  Seen seen;
  unsigned reloads = 0;
  std::map<std::string, uint16_t> ports{{"west", 0}, {"east", 1}};
  std::array<flow::FlowRecord, 3> records;
};
Harness* g = nullptr;

bool is_known(const std::string& path) {
  for (const char* p : {"/health", "/stats", "/metrics", "/config", "/neighbours", "/routes", "/flows",
                        "/flows/flush", "/nat", "/services", "/reload", "/trace", "/trace/stop"})
    if (path == p) return true;
  return false;
}

void check_answer(const Seen& s) {
  if (s.status == 500) fail("a handler failed (500)", s.method + " " + s.path + ": " + s.body);
  if (s.status < 100 || s.status > 599) fail("status out of range", std::to_string(s.status));
  if (s.content_type.rfind("application/json", 0) == 0 && s.method != "HEAD") {
    nlohmann::json body;
    try {
      body = nlohmann::json::parse(s.body);
    } catch (const std::exception& e) {
      fail("a JSON body that does not parse", e.what());
    }
    if (s.status >= 400 && !(body.is_object() && body.contains("error") && body["error"].is_string()))
      fail("an error status without an error message", s.body);
  }
  if (s.status == 405 && !s.allow) fail("405 without an Allow header");
  if (s.status == 405 && !is_known(s.path)) fail("405 on an unknown path");
}

// The parameters straight to the parsers; the filters they make applied.
void check_parsers(const Seen& s, const std::string& raw_query) {
  flow::FlowFilter filter;
  std::string error;
  const bool flow_ok = control::read_flow_filter(s.query, filter, error);
  if (!flow_ok && error.empty()) fail("a refused flow filter without a message");
  if (flow_ok)
    for (const auto& r : g->records) (void)flow::matches(filter, r);
  const bool flows_request = (s.path == "/flows" && (s.method == "GET" || s.method == "HEAD")) ||
                             (s.path == "/flows/flush" && s.method == "POST");
  // A request httplib itself refused (a malformed header, a body too long) never reached
  // the handler: only the handler's answers carry JSON.
  const bool handled = s.content_type.rfind("application/json", 0) == 0 && s.method != "HEAD";
  if (flows_request && !flow_ok && handled) {
    if (s.status != 400) fail("a refused /flows filter not answered 400", std::to_string(s.status));
    const std::string said = nlohmann::json(error).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (nlohmann::json::parse(s.body)["error"].dump() != said)
      fail("a refused /flows filter answered with another message", s.body);
  }
  pipeline::TraceFilter trace;
  uint32_t count = 0;
  error.clear();
  if (control::read_trace_query(s.query, g->ports, trace, count, error)) {
    if (count < 1 || count > pipeline::TraceSession::kMaxCount) fail("trace count out of range");
    (void)trace.str();
    pipeline::PacketView v;
    v.family = 4;
    v.proto = 6;
    v.has_ports = true;
    v.src = net::IpAddr::v4(0x0a010002);
    v.dst = net::IpAddr::v4(0xc6120005);
    v.sport = 40000;
    v.dport = 80;
    (void)trace.matches("west", v);
  } else if (error.empty()) {
    fail("a refused trace query without a message");
  }
  control::FlowQuery listed;
  error.clear();
  if (control::parse_query_list(raw_query, listed, error)) {
    if (control::read_flow_filter(listed, filter, error))
      for (const auto& r : g->records) (void)flow::matches(filter, r);
  } else if (error.empty()) {
    fail("a refused parameter list without a message");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* args[] = {kTarget, "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry", "-m", "64",
                        "-l", "0", "--log-level=error", nullptr};
  if (rte_eal_init(static_cast<int>(std::size(args) - 1), const_cast<char**>(args)) < 0) __builtin_trap();
  g = new Harness();
  config::ParseResult parsed = config::parse_config_text(
      R"({"eal": {"lcores": "0-1"}, "ports": [
          {"name": "west", "device": "net_ring0", "pipeline": ["parse", "conntrack", {"stage": "xconnect", "peer": "east"}]},
          {"name": "east", "device": "net_ring1", "pipeline": ["parse", "conntrack", {"stage": "xconnect", "peer": "west"}]}]})",
      kTarget);
  if (!parsed.ok()) {
    for (const auto& e : parsed.errors) fprintf(stderr, "%s: %s\n", kTarget, e.c_str());
    __builtin_trap();
  }
  g->config = std::make_unique<config::Config>(*parsed.config);
  g->runtime = std::make_unique<runtime::Runtime>(*g->config);
  g->http = std::make_unique<control::HttpServer>(*g->runtime);
  g->http->set_reload([] {
    ++g->reloads;
    control::ReloadResult r;
    r.ok = true;
    r.generation = 2;
    return r;
  });
  g->http->install(g->server);
  g->server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    Seen& s = g->seen;
    s.answered = true;
    s.method = req.method;
    s.path = req.path;
    for (const auto& [key, value] : req.params) s.query[key] = value;
    s.status = res.status;
    s.body = res.body;
    s.content_type = res.get_header_value("Content-Type");
    s.allow = res.has_header("Allow");
  });
  // Flows to apply the filters to: TCP over IPv4, UDP over IPv6, ICMP in zone 7.
  auto& r = g->records;
  r[0].family = 4;
  r[0].protocol = 6;
  r[0].src = {10, 1, 0, 2};
  r[0].dst = {198, 18, 0, 5};
  r[0].src_port = 40000;
  r[0].dst_port = 80;
  r[1].family = 6;
  r[1].protocol = 17;
  r[1].src = {0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  r[1].dst = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  r[1].src_port = 5353;
  r[1].dst_port = 53;
  r[2].family = 4;
  r[2].protocol = 1;
  r[2].zone = 7;
  r[2].src = {192, 0, 2, 9};
  r[2].dst = {10, 1, 0, 2};
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  g->seen = Seen{};
  const unsigned reloads_before = g->reloads;
  MemoryStream stream(data, size);
  g->server.serve(stream);
  const Seen& s = g->seen;
  if (!s.answered) return 0;  // no request line at all: nothing was answered
  check_answer(s);
  const unsigned reloads = g->reloads - reloads_before;
  if (s.path == "/reload" && s.method == "POST" && s.status == 200 && reloads != 1)
    fail("POST /reload answered 200 without reloading once");
  if ((s.path != "/reload" || s.method != "POST") && reloads != 0) fail("a reload by another request");
  // The raw query string: what follows '?' in the request line, up to the version.
  std::string raw_query;
  const auto* text = reinterpret_cast<const char*>(data);
  const char* line_end = static_cast<const char*>(std::memchr(text, '\n', size));
  const std::string line(text, line_end ? size_t(line_end - text) : size);
  const auto q = line.find('?');
  if (q != std::string::npos) {
    const auto space = line.find(' ', q);
    raw_query = line.substr(q + 1, space == std::string::npos ? std::string::npos : space - q - 1);
  }
  check_parsers(s, raw_query);
  return 0;
}
