#include "net/rss.h"

#include <rte_thash.h>

namespace sluice::net {

void fill_symmetric_rss_key(std::span<uint8_t> key) {
  for (size_t i = 0; i < key.size(); ++i) key[i] = (i % 2 == 0) ? 0x6d : 0x5a;
}

uint32_t toeplitz_ipv4(std::span<const uint8_t> key, uint32_t src_ip, uint32_t dst_ip,
                       uint16_t src_port, uint16_t dst_port) {
  rte_ipv4_tuple tuple{};
  tuple.src_addr = src_ip;
  tuple.dst_addr = dst_ip;
  tuple.sport = src_port;
  tuple.dport = dst_port;
  return rte_softrss(reinterpret_cast<uint32_t*>(&tuple), RTE_THASH_V4_L4_LEN, key.data());
}

}  // namespace sluice::net
