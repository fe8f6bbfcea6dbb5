// One configured ethdev port: set-up from config, what was negotiated, link state.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <rte_ethdev.h>
#include <rte_mempool.h>

#include "config/config.h"

namespace sluice::runtime {

struct Port {
  std::string name;
  uint16_t port_id = 0;
  const config::PortConfig* config = nullptr;
  rte_eth_dev_info info{};
  bool rss_enabled = false;
  bool rss_spreads = false;  // rss_enabled and the driver really hashes flows over the queues
  uint64_t rx_offloads = 0;
  uint64_t tx_offloads = 0;
  uint16_t rx_descriptors = 0;
  uint16_t tx_descriptors = 0;
  bool started = false;
  bool closed = false;
  std::optional<rte_ether_addr> software_mac;  // config's MAC where the device cannot take it
  // Written by the control thread (poll_link); each worker's TX queue on this port reads
  // it once per flush and drops with Drop::LinkDown while it is false.
  std::atomic<bool> link_up{false};
  std::atomic<bool> link_known{true};  // false: a tap out of sight, link_up true by assumption
  std::string kernel_iface;  // config's iface= for kernel-backed ports, read for the link
  std::string link_source;   // control thread only: where the last poll read the link

  rte_ether_addr mac() const {
    if (software_mac) return *software_mac;
    rte_ether_addr m{};
    rte_eth_macaddr_get(port_id, &m);
    return m;
  }
  std::atomic<uint32_t> link_speed_mbps{0};
};

// Finds the ethdev for `config.device` (probed by EAL) and fills port.port_id.
bool find_port(Port& port, std::string& error);
// Why DPDK probed no device for `cfg`, read from the host (sysfs, the file system).
std::string diagnose_probe_failure(const config::PortConfig& cfg);

// Configures queues, RSS, offloads, MTU, MAC and promiscuous mode, and starts the port.
// `config_path` ("ports[1]") prefixes errors that come from the config's values.
bool configure_and_start(Port& port, rte_mempool* pool, const std::string& config_path, std::string& error);

// How often the control thread reads every port's link: a link that comes back is
// used again within this (plus a worker's next flush).
inline constexpr unsigned kLinkPollMs = 100;

// A kernel interface's link from its sysfs files: up when administratively up (IFF_UP in
// `flags`, "0x1003") and operationally running (`operstate` "up", or "unknown", which
// tun/tap and drivers without carrier reporting say). nullopt when either text is not
// what the kernel writes (the interface vanished, or moved to another namespace).
std::optional<bool> kernel_link_up(std::string_view flags_text, std::string_view operstate_text);

// Reads the link without waiting (for kernel-backed ports from the kernel interface,
// since net_af_packet's PMD always says up; otherwise from the PMD); logs a change.
// Called by the control thread every kLinkPollMs.
void poll_link(Port& port);

// Stops and closes the port; its PMD frees the mbufs it still holds.
void stop_and_close(Port& port);

std::string offload_names(uint64_t offloads, bool rx);

}  // namespace sluice::runtime
