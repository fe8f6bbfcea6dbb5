// The HTTP control endpoint (cpp-httplib): /health, /stats, /metrics, /config,
// /neighbours, /routes, /flows, /nat, /services, /trace (GET) and /flows/flush, /reload,
// /trace, /trace/stop (POST).
// Runs on its own small thread pool pinned with the control thread, never on a worker
// lcore; handlers read counters, and reach the workers' flow tables only through their
// mailboxes, so no client can slow the data plane down.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "config/config.h"
#include "control/reload.h"
#include "runtime/runtime.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}

namespace sluice::control {

class HttpServer {
 public:
  explicit HttpServer(const runtime::Runtime& runtime);
  ~HttpServer();

  // Binds (so a port in use is reported at start-up) and starts serving.
  bool start(const config::HttpConfig& config, std::string& error);
  // The routes and handlers, on `srv`: start() binds and serves them; the HTTP fuzz
  // target (tests/fuzz/fuzz_http.cpp) hands it requests without a socket.
  void install(httplib::Server& srv);
  // What POST /reload runs (the same as SIGHUP); unset: 503.
  void set_reload(std::function<ReloadResult()> reload) { reload_ = std::move(reload); }
  void stop();

 private:
  void handle_post(const httplib::Request& req, httplib::Response& res);

  const runtime::Runtime& runtime_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::function<ReloadResult()> reload_;
};

}  // namespace sluice::control
