// What Sluice knows of net_af_xdp ports beyond ethdev's API: the mbufs DPDK 22.11's PMD
// keeps in each RX queue's fill ring and never gives back, the transmit completions it
// frees only on a later TX call, and the XDP and socket modes the kernel chose.
// drivers-config/net_af_xdp.md tells the whole story.
#pragma once

#include <set>

#include <rte_mempool.h>

#include "runtime/port.h"

namespace sluice::runtime {

// The 22.11 PMD (xsk_configure) posts XSK_RING_CONS__DEFAULT_NUM_DESCS mbufs of the RX
// queue's pool to the UMEM fill ring when the queue is set up, whatever nb_rx_desc says,
// replaces each frame it receives with a new mbuf, and frees none of them at close.
inline constexpr unsigned kAfXdpFillRingMbufs = 2048;

bool is_af_xdp(const Port& port);

// Mbufs of the port's RX pool the PMD still holds once the port is closed: every RX
// queue's fill ring for net_af_xdp, none for the other drivers.
unsigned mbufs_kept_at_close(const Port& port);

// Control thread, workers stopped: a TX call with no packets on each TX queue, so the
// PMD pulls the completion ring and frees what the kernel has finished sending (it
// does that only at the start of a TX call: the last burst's mbufs wait otherwise).
void reap_tx_completions(const Port& port);

// File descriptors of this process's AF_XDP sockets (one a net_af_xdp RX queue).
std::set<int> af_xdp_socket_fds();

// After the port started: logs the mode of the XDP program on its interface (native,
// generic) and of the sockets opened since `sockets_before` (zero copy, copy; busy poll).
void log_af_xdp_modes(const Port& port, const std::set<int>& sockets_before);

}  // namespace sluice::runtime
