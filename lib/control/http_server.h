// The HTTP control endpoint (cpp-httplib): /health, /stats, /metrics, /config.
// Runs on its own small thread pool pinned with the control thread, never on a worker
// lcore; handlers only read counters, so no client can slow the data plane down.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "config/config.h"
#include "runtime/runtime.h"

namespace httplib {
class Server;
}

namespace sluice::control {

class HttpServer {
 public:
  explicit HttpServer(const runtime::Runtime& runtime);
  ~HttpServer();

  // Binds (so a port in use is reported at start-up) and starts serving.
  bool start(const config::HttpConfig& config, std::string& error);
  void stop();

 private:
  const runtime::Runtime& runtime_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace sluice::control
