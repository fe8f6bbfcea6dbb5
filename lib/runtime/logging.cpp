#include "runtime/logging.h"

#include <cstdio>
#include <string_view>

#include <rte_log.h>
#include <spdlog/spdlog.h>

namespace sluice::runtime {

namespace {

spdlog::level::level_enum from_rte(uint32_t level) {
  switch (level) {
    case RTE_LOG_EMERG:
    case RTE_LOG_ALERT:
    case RTE_LOG_CRIT: return spdlog::level::critical;
    case RTE_LOG_ERR: return spdlog::level::err;
    case RTE_LOG_WARNING: return spdlog::level::warn;
    case RTE_LOG_NOTICE:
    case RTE_LOG_INFO: return spdlog::level::info;
    default: return spdlog::level::debug;
  }
}

ssize_t dpdk_log_write(void* /*cookie*/, const char* buf, size_t size) {
  std::string_view text(buf, size);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  if (!text.empty()) spdlog::log(from_rte(static_cast<uint32_t>(rte_log_cur_msg_loglevel())), "dpdk: {}", text);
  return static_cast<ssize_t>(size);
}

}  // namespace

bool set_log_level(const std::string& level) {
  auto spd = spdlog::level::from_str(level);
  if (spd == spdlog::level::off && level != "off") return false;
  spdlog::set_level(spd);
  uint32_t rte_level = RTE_LOG_NOTICE;  // DPDK's INFO is start-up chatter; show it at debug
  switch (spd) {
    case spdlog::level::trace:
    case spdlog::level::debug: rte_level = RTE_LOG_DEBUG; break;
    case spdlog::level::info: rte_level = RTE_LOG_NOTICE; break;
    case spdlog::level::warn: rte_level = RTE_LOG_WARNING; break;
    case spdlog::level::err: rte_level = RTE_LOG_ERR; break;
    default: rte_level = RTE_LOG_CRIT; break;
  }
  rte_log_set_global_level(rte_level);
  return true;
}

void redirect_dpdk_log() {
  cookie_io_functions_t io = {nullptr, dpdk_log_write, nullptr, nullptr};
  FILE* stream = fopencookie(nullptr, "w", io);
  if (stream) {
    setvbuf(stream, nullptr, _IOLBF, 0);
    rte_openlog_stream(stream);
  }
}

}  // namespace sluice::runtime
