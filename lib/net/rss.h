// Symmetric Toeplitz RSS: with the key 0x6d5a repeated, hash(a,b) == hash(b,a), so both
// directions of a connection land on one RX queue and so on one lcore
// (Woo and Park, "Scalable TCP Session Monitoring with Symmetric Receive-side Scaling").
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace sluice::net {

inline constexpr size_t kRssKeyMaxLen = 52;

// Fills `key` (any length) with the symmetric pattern.
void fill_symmetric_rss_key(std::span<uint8_t> key);

// Software Toeplitz over an IPv4 4-tuple, for tests and for software steering.
uint32_t toeplitz_ipv4(std::span<const uint8_t> key, uint32_t src_ip, uint32_t dst_ip,
                       uint16_t src_port, uint16_t dst_port);

}  // namespace sluice::net
