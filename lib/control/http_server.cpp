#include "control/http_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "control/flows.h"
#include "control/metrics.h"
#include "control/nat.h"
#include "control/services.h"
#include "control/stats.h"
#include "control/trace.h"

namespace sluice::control {

namespace {

constexpr int kThreads = 4;
constexpr time_t kTimeoutSeconds = 5;         // read and write: a stalled client is dropped
constexpr size_t kKeepAliveRequests = 100;
constexpr size_t kMaxPayload = 64 * 1024;     // nothing here takes a body

constexpr const char* kPaths[] = {"/health", "/stats",    "/metrics", "/config",      "/neighbours",
                                  "/routes", "/flows",    "/flows/flush", "/nat",   "/services",
                                  "/reload", "/trace",    "/trace/stop"};
// Paths that change state take POST; the rest are read with GET/HEAD. /trace takes
// both: POST arms the tracer, GET reads what it caught.
constexpr const char* kPostPaths[] = {"/flows/flush", "/reload", "/trace", "/trace/stop"};
bool is_get_path(const std::string& path) { return path == "/trace"; }

bool is_known_path(const std::string& path) {
  for (const char* p : kPaths)
    if (path == p) return true;
  return false;
}
bool is_post_path(const std::string& path) {
  for (const char* p : kPostPaths)
    if (path == p) return true;
  return false;
}

FlowQuery query_of(const httplib::Request& req) {
  FlowQuery q;
  for (const auto& [key, value] : req.params) q[key] = value;
  return q;
}

void json_reply(httplib::Response& res, const nlohmann::json& body, int status = 200) {
  res.status = status;
  // Error bodies echo the request path, which is any bytes a client sent ("/%ff"):
  // replace invalid UTF-8 rather than throw from a handler httplib does not guard.
  res.set_content(body.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "application/json");
}

}  // namespace

HttpServer::HttpServer(const runtime::Runtime& runtime) : runtime_(runtime) {}

HttpServer::~HttpServer() { stop(); }

bool HttpServer::start(const config::HttpConfig& config, std::string& error) {
  server_ = std::make_unique<httplib::Server>();
  httplib::Server& srv = *server_;
  srv.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  srv.set_read_timeout(kTimeoutSeconds, 0);
  srv.set_write_timeout(kTimeoutSeconds, 0);
  srv.set_keep_alive_timeout(kTimeoutSeconds);
  srv.set_keep_alive_max_count(kKeepAliveRequests);
  install(srv);

  if (!srv.bind_to_port(config.address, static_cast<int>(config.port))) {
    error = "control.http: cannot listen on " + config.address + ":" + std::to_string(config.port) +
            " (address in use or not local?)";
    server_.reset();
    return false;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  spdlog::info("http: serving /health /stats /metrics /config /neighbours /routes /flows /nat /services /trace "
               "(GET), /flows/flush /reload /trace /trace/stop (POST) on http://{}:{}",
               config.address, config.port);
  return true;
}

void HttpServer::install(httplib::Server& srv) {
  srv.set_payload_max_length(kMaxPayload);
  // 200 either way: Sluice is alive and forwards on the ports that are up ("degraded"
  // names the others); a liveness probe must not restart it for a pulled cable.
  srv.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    json_reply(res, health_json(runtime_));
  });
  srv.Get("/stats", [this](const httplib::Request&, httplib::Response& res) {
    json_reply(res, collect_stats(runtime_));
  });
  srv.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(render_prometheus(collect_stats(runtime_)), "text/plain; version=0.0.4; charset=utf-8");
  });
  srv.Get("/config", [this](const httplib::Request&, httplib::Response& res) {
    json_reply(res, config::to_json(*runtime_.active_config()));
  });
  // Router views; an appliance without a route stage answers with empty lists.
  srv.Get("/neighbours", [this](const httplib::Request&, httplib::Response& res) {
    const router::Router* router = runtime_.router();
    json_reply(res, router ? router->neighbours_json()
                           : nlohmann::json{{"count", 0}, {"capacity", 0}, {"neighbours", nlohmann::json::array()}});
  });
  srv.Get("/routes", [this](const httplib::Request&, httplib::Response& res) {
    const router::Router* router = runtime_.router();
    json_reply(res, router ? router->routes_json() : nlohmann::json{{"routes", nlohmann::json::array()}});
  });
  // NAT: rules, outside addresses and their ports per worker, mappings, reassembly.
  srv.Get("/nat", [this](const httplib::Request&, httplib::Response& res) {
    nlohmann::json nat = nat_json(runtime_);
    if (nat.is_null()) json_reply(res, {{"error", "no port runs the nat stage"}}, 404);
    else json_reply(res, nat);
  });
  // Load balancer: services, their backends' state, traffic and health probes.
  srv.Get("/services", [this](const httplib::Request&, httplib::Response& res) {
    nlohmann::json services = services_json(runtime_);
    if (services.is_null()) json_reply(res, {{"error", "no services configured"}}, 404);
    else json_reply(res, {{"services", std::move(services)}});
  });
  // Connection tracking: a page of flows from every worker, and a flush.
  srv.Get("/flows", [this](const httplib::Request& req, httplib::Response& res) {
    nlohmann::json out;
    std::string why;
    int status = 200;
    if (!list_flows(runtime_, query_of(req), out, why, status)) json_reply(res, {{"error", why}}, status);
    else json_reply(res, out);
  });
  // The packet tracer: what it caught so far (POST /trace arms it).
  srv.Get("/trace", [this](const httplib::Request&, httplib::Response& res) { json_reply(res, trace_json(runtime_)); });
  // Anything but GET/HEAD is answered before httplib reads a body: 405 with the Allow
  // header on our paths (RFC 9110 15.5.6), 404 elsewhere.
  // POSTs are answered here too, before httplib would read (and, without a
  // Content-Length, refuse) a body: these endpoints take none, `curl -X POST` works.
  srv.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    const bool post_path = is_post_path(req.path);
    if (post_path && req.method == "POST") {
      handle_post(req, res);
      return httplib::Server::HandlerResponse::Handled;
    }
    const bool get_path = !post_path || is_get_path(req.path);
    if (get_path && (req.method == "GET" || req.method == "HEAD")) return httplib::Server::HandlerResponse::Unhandled;
    if (is_known_path(req.path)) {
      res.set_header("Allow", !post_path ? "GET, HEAD" : get_path ? "GET, HEAD, POST" : "POST");
      json_reply(res, {{"error", "method " + req.method + " not allowed on " + req.path}}, 405);
    } else {
      json_reply(res, {{"error", "no such path: " + req.path}}, 404);
    }
    res.set_header("Connection", "close");
    return httplib::Server::HandlerResponse::Handled;
  });
  // httplib calls this for every status >= 400: keep the body of a route's own 404 (/nat).
  srv.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty())
      json_reply(res, {{"error", "no such path: " + req.path}, {"paths", kPaths}}, 404);
  });
  srv.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("http {} {}: {}", req.method, req.path, what);
    json_reply(res, {{"error", "internal error"}}, 500);
  });
}

void HttpServer::handle_post(const httplib::Request& req, httplib::Response& res) {
  if (req.path == "/reload") {
    if (!reload_) {
      json_reply(res, {{"error", "reload is not available"}}, 503);
      return;
    }
    ReloadResult result = reload_();
    json_reply(res, result.json(), result.ok ? 200 : result.status);
    return;
  }
  nlohmann::json out;
  std::string why;
  int status = 200;
  if (req.path == "/trace") {
    if (!arm_trace(runtime_, query_of(req), out, why, status)) json_reply(res, {{"error", why}}, status);
    else json_reply(res, out);
    return;
  }
  if (req.path == "/trace/stop") {
    json_reply(res, stop_trace(runtime_));
    return;
  }
  // /flows/flush
  if (!flush_flows(runtime_, query_of(req), out, why, status)) json_reply(res, {{"error", why}}, status);
  else json_reply(res, out);
}

void HttpServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace sluice::control
