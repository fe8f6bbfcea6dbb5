// sluicectl's side of the HTTP API: one request, and what became of it, sorted into
// the outcomes that have their own exit codes.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "format.h"

namespace sluicectl {

// Exit codes, as --help and docs/operations.md list them.
constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;      // an HTTP 4xx/5xx, or a local step failed (dpdk-dumpcap)
constexpr int kExitUsage = 2;        // unknown command or option, bad value
constexpr int kExitUnreachable = 3;  // nothing answers at --address, or it timed out
constexpr int kExitMalformed = 4;    // an answer that is not the JSON the API sends

struct Reply {
  int exit_code = kExitOk;  // kExitOk when `body` holds a 2xx JSON answer
  int status = 0;           // HTTP status, 0 when none came
  nlohmann::json body;      // the parsed answer (also for 4xx/5xx when it parsed)
  std::string message;      // what went wrong, for stderr, when exit_code != kExitOk
};

class Client {
 public:
  Client(std::string host, int port, double timeout_seconds);
  Reply get(const std::string& path, const Query& query = {}) const;
  Reply post(const std::string& path, const Query& query = {}) const;
  std::string address() const;

 private:
  Reply request(const std::string& method, const std::string& path, const Query& query) const;
  std::string host_;
  int port_;
  double timeout_;
};

// Why a TCP connection to host:port fails ("connection refused", "timed out"), found by
// trying once more with a plain socket: httplib says only that it could not connect.
std::string connect_failure(const std::string& host, int port, double timeout_seconds);

}  // namespace sluicectl
