#include "client.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include <httplib.h>

namespace sluicectl {

namespace {

void set_timeouts(httplib::Client& client, double seconds) {
  const time_t whole = static_cast<time_t>(seconds);
  const time_t usec = static_cast<time_t>((seconds - double(whole)) * 1e6);
  client.set_connection_timeout(whole, usec);
  client.set_read_timeout(whole, usec);
  client.set_write_timeout(whole, usec);
}

}  // namespace

Client::Client(std::string host, int port, double timeout_seconds)
    : host_(std::move(host)), port_(port), timeout_(timeout_seconds) {}

std::string Client::address() const {
  return (host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_);
}

Reply Client::get(const std::string& path, const Query& query) const { return request("GET", path, query); }
Reply Client::post(const std::string& path, const Query& query) const { return request("POST", path, query); }

Reply Client::request(const std::string& method, const std::string& path, const Query& query) const {
  httplib::Client client(host_, port_);
  set_timeouts(client, timeout_);
  client.set_keep_alive(false);
  httplib::Params params(query.begin(), query.end());
  const std::string target = params.empty() ? path : httplib::append_query_params(path, params);
  httplib::Result result = method == "GET" ? client.Get(target) : client.Post(target);
  Reply reply;
  const std::string what = method + " " + target;
  if (!result) {
    const httplib::Error e = result.error();
    if (e == httplib::Error::Connection || e == httplib::Error::ConnectionTimeout) {
      reply.exit_code = kExitUnreachable;
      reply.message = "cannot reach Sluice at " + address() + " (" + connect_failure(host_, port_, timeout_) +
                      "): is it running? (see --address)";
    } else if (e == httplib::Error::Read || e == httplib::Error::Write) {
      reply.exit_code = kExitUnreachable;
      char secs[32];
      std::snprintf(secs, sizeof(secs), "%g", timeout_);
      reply.message = "Sluice at " + address() + " did not answer " + what + " within " + secs +
                      " s (see --timeout)";
    } else {
      reply.exit_code = kExitUnreachable;
      reply.message = "cannot reach Sluice at " + address() + " (" + httplib::to_string(e) + ")";
    }
    return reply;
  }
  reply.status = result->status;
  reply.body = nlohmann::json::parse(result->body, nullptr, false);
  const bool json_object = !reply.body.is_discarded() && reply.body.is_object();
  if (reply.status >= 200 && reply.status < 300) {
    if (!json_object) {
      reply.exit_code = kExitMalformed;
      reply.message = "malformed answer to " + what + " from " + address() + ": not a JSON object: " +
                      result->body.substr(0, 200);
    }
    return reply;
  }
  reply.exit_code = kExitRefused;
  std::string text = json_object ? error_text(reply.body) : "";
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (text.empty()) text = result->body.substr(0, 200);
  reply.message = what + ": HTTP " + std::to_string(reply.status) + ": " + text;
  if (!json_object) reply.body = nullptr;
  return reply;
}

std::string connect_failure(const std::string& host, int port, double timeout_seconds) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0) return std::string("cannot resolve ") + host + ": " + gai_strerror(rc);
  std::string why = "no address";
  for (addrinfo* ai = found; ai; ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      why = std::strerror(errno);
      continue;
    }
    int err = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        const int ready = poll(&p, 1, static_cast<int>(std::ceil(timeout_seconds * 1000)));
        socklen_t len = sizeof(err);
        if (ready <= 0) err = ETIMEDOUT;
        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      }
    }
    close(fd);
    if (err == 0) {
      why = "it accepted a connection now, but not the request's";
      break;
    }
    why = err == ECONNREFUSED ? "connection refused" : err == ETIMEDOUT ? "timed out" : std::strerror(err);
  }
  freeaddrinfo(found);
  return why;
}

}  // namespace sluicectl
