#include "runtime/af_xdp.h"

#include <dirent.h>
#include <net/if.h>
#include <sys/socket.h>

#include <linux/if_link.h>
#include <linux/if_xdp.h>

#include <cstdlib>
#include <string>
#include <string_view>

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif
#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif

namespace sluice::runtime {

namespace {

const char* attach_mode_name(uint8_t mode) {
  switch (mode) {
    case XDP_ATTACHED_DRV: return "native (driver)";
    case XDP_ATTACHED_SKB: return "generic (skb)";
    case XDP_ATTACHED_HW: return "offloaded (hardware)";
    case XDP_ATTACHED_MULTI: return "several";
    default: return "none";
  }
}

}  // namespace

bool is_af_xdp(const Port& port) {
  return port.info.driver_name != nullptr && std::string_view(port.info.driver_name) == "net_af_xdp";
}

unsigned mbufs_kept_at_close(const Port& port) {
  return is_af_xdp(port) ? port.config->rx_queues * kAfXdpFillRingMbufs : 0;
}

void reap_tx_completions(const Port& port) {
  rte_mbuf* none[1] = {nullptr};
  for (uint16_t q = 0; q < port.config->tx_queues; ++q) rte_eth_tx_burst(port.port_id, q, none, 0);
}

std::set<int> af_xdp_socket_fds() {
  std::set<int> fds;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return fds;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    int domain = 0;
    socklen_t len = sizeof(domain);
    if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_XDP)
      fds.insert(static_cast<int>(fd));
  }
  closedir(dir);
  return fds;
}

void log_af_xdp_modes(const Port& port, const std::set<int>& sockets_before) {
  char ifname[IF_NAMESIZE] = "?";
  const int ifindex = static_cast<int>(port.info.if_index);
  if (ifindex > 0) if_indextoname(static_cast<unsigned>(ifindex), ifname);
  std::string program = "unknown (cannot query the interface)";
  bpf_xdp_query_opts opts{};
  opts.sz = sizeof(opts);
  if (ifindex > 0 && bpf_xdp_query(ifindex, 0, &opts) == 0)
    program = std::string(attach_mode_name(opts.attach_mode)) + " mode, program id " + std::to_string(opts.prog_id);
  unsigned zero_copy = 0, copy = 0;
  int prefer_busy_poll = -1, busy_poll_us = -1;
  for (int fd : af_xdp_socket_fds()) {
    if (sockets_before.count(fd)) continue;
    xdp_options options{};
    socklen_t len = sizeof(options);
    if (getsockopt(fd, SOL_XDP, XDP_OPTIONS, &options, &len) != 0) continue;
    (options.flags & XDP_OPTIONS_ZEROCOPY) ? ++zero_copy : ++copy;
    // The PMD sets both (and SO_BUSY_POLL_BUDGET, which the kernel does not read back)
    // when busy_budget is not 0 and the kernel has preferred busy polling (5.11).
    len = sizeof(prefer_busy_poll);
    if (getsockopt(fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &prefer_busy_poll, &len) != 0) prefer_busy_poll = -1;
    len = sizeof(busy_poll_us);
    if (getsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &busy_poll_us, &len) != 0) busy_poll_us = -1;
  }
  spdlog::info("port {}: net_af_xdp on {}: XDP program attached in {}; AF_XDP sockets: {} zero-copy, {} copy; "
               "preferred busy polling {}",
               port.name, ifname, program, zero_copy, copy,
               prefer_busy_poll > 0 ? "on, " + std::to_string(busy_poll_us) + " us"
               : prefer_busy_poll == 0 ? std::string("off")
                                       : std::string("unknown (kernel < 5.11?)"));
}

}  // namespace sluice::runtime
