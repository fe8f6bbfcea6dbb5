#include "runtime/port.h"

#include <limits.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include <string_view>

#include <array>

#include <spdlog/spdlog.h>

#include "net/rss.h"

namespace sluice::runtime {

namespace {

// RX checksum validation, fast free and, for NAT's source rewrites, TX checksums are
// the offloads the pipeline uses today.
constexpr uint64_t kWantedRxOffloads =
    RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
constexpr uint64_t kWantedTxOffloads = RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE | RTE_ETH_TX_OFFLOAD_IPV4_CKSUM |
                                       RTE_ETH_TX_OFFLOAD_UDP_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
constexpr uint64_t kWantedRssTypes = RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;

std::string mac_text(const rte_ether_addr& mac) {
  char text[RTE_ETHER_ADDR_FMT_SIZE];
  rte_ether_format_addr(text, sizeof(text), &mac);
  return text;
}

}  // namespace

std::string offload_names(uint64_t offloads, bool rx) {
  std::string names;
  for (uint64_t bit = 1; bit != 0; bit <<= 1) {
    if (!(offloads & bit)) continue;
    const char* name = rx ? rte_eth_dev_rx_offload_name(bit) : rte_eth_dev_tx_offload_name(bit);
    if (!names.empty()) names += ',';
    names += name;
  }
  return names.empty() ? "none" : names;
}

namespace {

std::string devarg(const std::string& devargs, const std::string& key) { return config::devarg_value(devargs, key); }

bool path_exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

std::string link_name(const std::string& path) {
  char target[PATH_MAX];
  const ssize_t n = readlink(path.c_str(), target, sizeof(target) - 1);
  if (n <= 0) return {};
  target[n] = 0;
  const char* slash = strrchr(target, '/');
  return slash ? slash + 1 : target;
}

}  // namespace

// Why DPDK did not probe a port's device, as far as the host shows it: a missing
// interface or file, a PCI device absent or bound to a kernel driver, a tap name taken.
std::string diagnose_probe_failure(const config::PortConfig& cfg) {
  const std::string& dev = cfg.device;
  if (cfg.is_pci) {
    const std::string sys = "/sys/bus/pci/devices/" + dev;
    if (!path_exists(sys)) return "there is no PCI device " + dev + " on this host (lspci -D lists them)";
    const std::string driver = link_name(sys + "/driver");
    if (driver.empty())
      return "PCI device " + dev + " is bound to no driver: bind it to vfio-pci: drivers-config/bind-nic.sh bind " + dev;
    if (driver != "vfio-pci" && driver != "uio_pci_generic" && driver != "igb_uio")
      return "PCI device " + dev + " is bound to the kernel driver '" + driver +
             "', which DPDK cannot use: bind it to vfio-pci: drivers-config/bind-nic.sh bind " + dev +
             " (its kernel interface goes away; or run Sluice on that interface with net_af_xdp or net_af_packet)";
    return "PCI device " + dev + " is bound to " + driver +
           " but DPDK could not take it: is another DPDK process using it (the vfio group busy)? See the EAL log above";
  }
  const std::string iface = devarg(cfg.devargs, "iface");
  if (dev.rfind("net_af_packet", 0) == 0 || dev.rfind("net_af_xdp", 0) == 0 || dev.rfind("eth_af_packet", 0) == 0) {
    if (iface.empty()) return dev + " needs devargs iface=NAME (the kernel interface it runs on)";
    if (!path_exists("/sys/class/net/" + iface))
      return "interface '" + iface + "' (devargs iface=) does not exist: create it, or name an existing one (ip -br link)";
    return "interface '" + iface + "' exists but the PMD refused it (down, wrong queue count, or busy: see the log above)";
  }
  if (dev.rfind("net_tap", 0) == 0 && !iface.empty() && path_exists("/sys/class/net/" + iface))
    return "interface '" + iface + "' already exists (another Sluice, or a leftover tap: `ip link del " + iface +
           "`), so net_tap cannot create it: delete it or choose another iface=";
  if (dev.rfind("net_pcap", 0) == 0) {
    for (const char* key : {"rx_pcap", "tx_pcap"}) {
      const std::string file = devarg(cfg.devargs, key);
      if (!file.empty() && std::string(key) == "rx_pcap" && !path_exists(file))
        return "rx_pcap file '" + file + "' does not exist";
    }
    for (const char* key : {"iface", "rx_iface", "tx_iface"}) {
      const std::string name = devarg(cfg.devargs, key);
      if (!name.empty() && !path_exists("/sys/class/net/" + name))
        return "interface '" + name + "' (devargs " + key + "=) does not exist";
    }
  }
  return "check its devargs and the log above";
}

bool find_port(Port& port, std::string& error) {
  if (rte_eth_dev_get_port_by_name(port.config->device.c_str(), &port.port_id) != 0) {
    error = "port " + port.name + ": device '" + port.config->device +
            "' was not probed by DPDK: " + diagnose_probe_failure(*port.config);
    return false;
  }
  return true;
}

bool configure_and_start(Port& port, rte_mempool* pool, const std::string& config_path, std::string& error) {
  const config::PortConfig& cfg = *port.config;
  const uint16_t id = port.port_id;
  int rc = rte_eth_dev_info_get(id, &port.info);
  if (rc != 0) {
    error = "port " + port.name + ": cannot read device info: " + rte_strerror(-rc);
    return false;
  }
  const rte_eth_dev_info& info = port.info;
  if (cfg.rx_queues > info.max_rx_queues) {
    error = config_path + ".rx_queues: device " + cfg.device + " supports at most " + std::to_string(info.max_rx_queues) +
            " rx queue(s), got " + std::to_string(cfg.rx_queues) +
            (cfg.device.rfind("net_af_packet", 0) == 0 ? " (net_af_packet: set qpairs=N in devargs)" : "");
    return false;
  }
  if (cfg.tx_queues > info.max_tx_queues) {
    error = config_path + ".tx_queues: device " + cfg.device + " supports at most " + std::to_string(info.max_tx_queues) +
            " tx queue(s), got " + std::to_string(cfg.tx_queues);
    return false;
  }
  if (cfg.mtu < info.min_mtu || cfg.mtu > info.max_mtu) {
    error = config_path + ".mtu: device " + cfg.device + " supports " + std::to_string(info.min_mtu) + ".." +
            std::to_string(info.max_mtu) + ", got " + std::to_string(cfg.mtu);
    return false;
  }

  rte_eth_conf conf{};
  conf.rxmode.mtu = cfg.mtu;
  std::array<uint8_t, net::kRssKeyMaxLen> rss_key{};
  uint64_t rss_types = kWantedRssTypes & info.flow_type_rss_offloads;
  if (cfg.rx_queues > 1 && cfg.rss == config::RssMode::Symmetric) {
    if (rss_types == 0) {
      spdlog::warn("port {}: {} offers no RSS; with {} rx queues only the PMD's default spreading applies", port.name,
                   cfg.device, cfg.rx_queues);
    } else {
      uint8_t key_len = info.hash_key_size ? info.hash_key_size : 40;
      if (key_len > rss_key.size()) key_len = rss_key.size();
      net::fill_symmetric_rss_key(std::span<uint8_t>(rss_key.data(), key_len));
      conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
      conf.rx_adv_conf.rss_conf.rss_key = rss_key.data();
      conf.rx_adv_conf.rss_conf.rss_key_len = key_len;
      conf.rx_adv_conf.rss_conf.rss_hf = rss_types;
      port.rss_enabled = true;
    }
  }
  port.rx_offloads = kWantedRxOffloads & info.rx_offload_capa;
  port.tx_offloads = kWantedTxOffloads & info.tx_offload_capa;
  conf.rxmode.offloads = port.rx_offloads;
  conf.txmode.offloads = port.tx_offloads;

  rc = rte_eth_dev_configure(id, static_cast<uint16_t>(cfg.rx_queues), static_cast<uint16_t>(cfg.tx_queues), &conf);
  if (rc != 0) {
    error = "port " + port.name + ": configure failed: " + rte_strerror(-rc);
    return false;
  }
  port.rx_descriptors = static_cast<uint16_t>(cfg.rx_descriptors);
  port.tx_descriptors = static_cast<uint16_t>(cfg.tx_descriptors);
  rte_eth_dev_adjust_nb_rx_tx_desc(id, &port.rx_descriptors, &port.tx_descriptors);

  int socket = rte_eth_dev_socket_id(id);
  if (socket < 0) socket = 0;
  rte_eth_rxconf rxconf = info.default_rxconf;
  rxconf.offloads = port.rx_offloads;
  for (uint16_t q = 0; q < cfg.rx_queues; ++q) {
    rc = rte_eth_rx_queue_setup(id, q, port.rx_descriptors, static_cast<unsigned>(socket), &rxconf, pool);
    if (rc != 0) {
      error = "port " + port.name + ": rx queue " + std::to_string(q) + " setup failed: " + rte_strerror(-rc);
      return false;
    }
  }
  rte_eth_txconf txconf = info.default_txconf;
  txconf.offloads = port.tx_offloads;
  for (uint16_t q = 0; q < cfg.tx_queues; ++q) {
    rc = rte_eth_tx_queue_setup(id, q, port.tx_descriptors, static_cast<unsigned>(socket), &txconf);
    if (rc != 0) {
      error = "port " + port.name + ": tx queue " + std::to_string(q) + " setup failed: " + rte_strerror(-rc);
      return false;
    }
  }
  if (cfg.mac) {
    rte_ether_addr mac;
    std::copy(cfg.mac->begin(), cfg.mac->end(), mac.addr_bytes);
    rc = rte_eth_dev_default_mac_addr_set(id, &mac);
    if (rc == -ENOTSUP && cfg.promiscuous) {
      // Virtual devices (net_pcap, net_ring) have no MAC filter to program: with
      // promiscuous mode the address only matters to Sluice itself.
      spdlog::warn("port {}: device {} cannot change its MAC; using {} in software (promiscuous)", port.name,
                   cfg.device, mac_text(mac));
      port.software_mac = mac;
    } else if (rc != 0) {
      error = config_path + ".mac: device " + cfg.device + " refused the address: " + rte_strerror(-rc);
      return false;
    }
  }
  rc = rte_eth_dev_start(id);
  if (rc != 0) {
    error = "port " + port.name + ": start failed: " + rte_strerror(-rc);
    return false;
  }
  port.started = true;
  if (cfg.promiscuous) {
    rc = rte_eth_promiscuous_enable(id);
    if (rc != 0) spdlog::warn("port {}: cannot enable promiscuous mode: {}", port.name, rte_strerror(-rc));
  } else if (!cfg.ipv6.empty()) {
    // Neighbour discovery speaks to solicited-node and all-nodes multicast groups: a
    // NIC filtering to its own unicast address would never show Sluice a solicitation.
    rc = rte_eth_allmulticast_enable(id);
    if (rc != 0)
      spdlog::warn("port {}: cannot receive all multicast ({}): IPv6 neighbour discovery may fail; set \"promiscuous\": true",
                   port.name, rte_strerror(-rc));
  }

  rte_ether_addr mac = port.mac();
  spdlog::info("port {} ({} = port {}, driver {}): {} rx / {} tx queues, {}/{} descriptors, mtu {}, mac {}", port.name,
               cfg.device, id, info.driver_name, cfg.rx_queues, cfg.tx_queues, port.rx_descriptors,
               port.tx_descriptors, cfg.mtu, mac_text(mac));
  // net_tap reports RSS but spreads nothing without rte_flow rules (drivers-config/net_tap.md).
  const bool rss_applies = port.rss_enabled && std::string_view(info.driver_name) != "net_tap";
  port.rss_spreads = rss_applies;
  spdlog::info("port {}: rss {}; rx offloads {}{}; tx offloads {}", port.name,
               rss_applies         ? "symmetric toeplitz"
               : port.rss_enabled  ? "configured, but the driver applies it only with rte_flow rules"
               : cfg.rx_queues > 1 ? "unavailable"
                                   : "off (one queue)",
               offload_names(port.rx_offloads, true),
               port.rx_offloads ? "" : " (checksums checked in software where needed)",
               offload_names(port.tx_offloads, false));
  poll_link(port);
  return true;
}

std::optional<bool> kernel_link_up(std::string_view flags_text, std::string_view operstate_text) {
  auto trim = [](std::string_view t) {
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.remove_suffix(1);
    return t;
  };
  flags_text = trim(flags_text);
  operstate_text = trim(operstate_text);
  if (flags_text.size() < 3 || flags_text.substr(0, 2) != "0x" || operstate_text.empty()) return std::nullopt;
  unsigned long flags = 0;
  for (char c : flags_text.substr(2)) {
    const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return std::nullopt;
    flags = flags * 16 + static_cast<unsigned long>(digit);
  }
  constexpr unsigned long kIffUp = 0x1;
  if (!(flags & kIffUp)) return false;
  // RFC 2863 operstates as the kernel spells them; IFF_RUNNING is "up" or "unknown".
  return operstate_text == "up" || operstate_text == "unknown";
}

namespace {

std::optional<std::string> read_small_file(const std::string& path) {
  FILE* f = fopen(path.c_str(), "re");
  if (!f) return std::nullopt;
  char text[64];
  const size_t n = fread(text, 1, sizeof(text) - 1, f);
  fclose(f);
  return std::string(text, n);
}

}  // namespace

void poll_link(Port& port) {
  if (!port.started) return;
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(port.port_id, &link) != 0) return;
  bool up = link.link_status == RTE_ETH_LINK_UP;
  std::string source = "PMD";
  if (!port.kernel_iface.empty()) {
    // net_af_packet reports up whatever the interface does; the kernel knows. An
    // interface out of sight (a tap moved to another namespace) leaves the PMD's word.
    const std::string dir = "/sys/class/net/" + port.kernel_iface + "/";
    const auto flags = read_small_file(dir + "flags");
    const auto operstate = read_small_file(dir + "operstate");
    const auto kernel_up = flags && operstate ? kernel_link_up(*flags, *operstate) : std::nullopt;
    if (kernel_up) {
      up = *kernel_up;
      std::string state = *operstate;
      while (!state.empty() && state.back() == '\n') state.pop_back();
      source = "kernel interface " + port.kernel_iface + ": operstate " + state;
    } else if (port.config->device.rfind("net_tap", 0) == 0) {
      // A tap moved to another namespace: the PMD reads it by name here and says down
      // while it works. Unknown is taken as up, so its packets still leave.
      up = true;
      source = "kernel interface " + port.kernel_iface + " not in Sluice's network namespace: link unknown, taken as up";
    }
  }
  port.link_known.store(source.find("link unknown") == std::string::npos, std::memory_order_relaxed);
  bool was_up = port.link_up.exchange(up);
  port.link_speed_mbps.store(link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : link.link_speed);
  const bool first = port.link_source.empty();
  port.link_source = source;
  if (up != was_up || first) {
    if (up)
      spdlog::info("port {}: link up, {} Mbps, {}-duplex{} ({})", port.name, port.link_speed_mbps.load(),
                   link.link_duplex == RTE_ETH_LINK_FULL_DUPLEX ? "full" : "half",
                   link.link_autoneg == RTE_ETH_LINK_AUTONEG ? ", autoneg" : "", source);
    else
      spdlog::warn("port {}: link down ({}): packets routed to it are dropped as link_down", port.name, source);
  }
}

void stop_and_close(Port& port) {
  if (port.started) {
    int rc = rte_eth_dev_stop(port.port_id);
    if (rc != 0) spdlog::warn("port {}: stop failed: {}", port.name, rte_strerror(-rc));
    port.started = false;
  }
  if (!port.closed) rte_eth_dev_close(port.port_id);
  port.closed = true;
}

}  // namespace sluice::runtime
