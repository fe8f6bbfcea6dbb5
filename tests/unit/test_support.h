// Shared by the unit tests: an mbuf pool fixture that enforces "every mbuf comes back",
// a frame builder for crafted packets, and ethdev ports backed by rte_rings.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "net/headers.h"

namespace sluice::test {

inline constexpr unsigned kPoolSize = 511;  // 2^k - 1: the mempool's best size

// A fresh pool per test; TearDown fails the test unless every mbuf is back.
class MbufTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static unsigned serial = 0;
    std::string name = "unit_pool_" + std::to_string(serial++);
    // No per-lcore cache: avail_count is exact, and the worker lcore's cache cannot hide mbufs.
    pool_ = rte_pktmbuf_pool_create(name.c_str(), kPoolSize, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    ASSERT_NE(pool_, nullptr) << rte_strerror(rte_errno);
  }

  void TearDown() override {
    if (pool_ == nullptr) return;
    EXPECT_EQ(rte_mempool_avail_count(pool_), kPoolSize) << "mbufs leaked by this test";
    rte_mempool_free(pool_);
    pool_ = nullptr;
  }

  unsigned in_use() const { return kPoolSize - rte_mempool_avail_count(pool_); }

  // One segment holding `bytes`.
  rte_mbuf* make_mbuf(const std::vector<uint8_t>& bytes) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    EXPECT_NE(m, nullptr);
    if (m == nullptr) return nullptr;
    char* data = rte_pktmbuf_append(m, static_cast<uint16_t>(bytes.size()));
    EXPECT_NE(data, nullptr);
    if (data != nullptr && !bytes.empty()) std::memcpy(data, bytes.data(), bytes.size());
    return m;
  }

  // Two segments: bytes [0, split) in the first, the rest in the second.
  rte_mbuf* make_chain(const std::vector<uint8_t>& bytes, size_t split) {
    rte_mbuf* head = make_mbuf(std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(split)));
    rte_mbuf* tail = make_mbuf(std::vector<uint8_t>(bytes.begin() + static_cast<long>(split), bytes.end()));
    EXPECT_EQ(rte_pktmbuf_chain(head, tail), 0);
    EXPECT_EQ(rte_pktmbuf_pkt_len(head), bytes.size());
    return head;
  }

  rte_mempool* pool_ = nullptr;
};

// Builds a frame header by header; build() fills in the length fields (IPv4 total
// length, IPv6 payload length, UDP length) from what follows them, so a test that wants
// a lying length sets it afterwards with set16().
class Frame {
 public:
  Frame& bytes(std::initializer_list<uint8_t> values) {
    data_.insert(data_.end(), values);
    return *this;
  }
  Frame& u8(uint8_t v) { return bytes({v}); }
  Frame& u16(uint16_t v) { return bytes({uint8_t(v >> 8), uint8_t(v)}); }
  Frame& u32(uint32_t v) { return u16(uint16_t(v >> 16)).u16(uint16_t(v)); }
  Frame& zeros(size_t n) {
    data_.insert(data_.end(), n, 0);
    return *this;
  }

  Frame& eth(uint16_t ether_type) {
    bytes({0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01});
    return u16(ether_type);
  }
  Frame& vlan(uint16_t vid, uint16_t next_type, uint8_t pcp = 0) {
    return u16(uint16_t(pcp << 13 | (vid & 0x0fff))).u16(next_type);
  }
  Frame& arp(uint16_t hardware = 1, uint16_t protocol = net::kEtherTypeIpv4, uint8_t hlen = 6, uint8_t plen = 4) {
    u16(hardware).u16(protocol).u8(hlen).u8(plen).u16(1);
    bytes({0x02, 0, 0, 0, 0, 0x01}).u32(0x0a000001);
    zeros(6).u32(0x0a000002);
    return *this;
  }
  Frame& ipv4(uint8_t protocol, uint16_t fragment = 0, uint8_t ihl = 5) {
    ip_offset_ = data_.size();
    ipv6_ = false;
    u8(uint8_t(0x40 | ihl)).u8(0).u16(0).u16(0x1234).u16(fragment).u8(64).u8(protocol).u16(0);
    u32(0x0a000001).u32(0x0a000002);
    if (ihl > 5) zeros((ihl - 5u) * 4u);  // options: end-of-list padding
    return *this;
  }
  Frame& ipv6(uint8_t next_header) {
    ip_offset_ = data_.size();
    ipv6_ = true;
    u32(0x60000000).u16(0).u8(next_header).u8(64);
    bytes({0x20, 0x01, 0x0d, 0xb8}).zeros(11).u8(1);
    bytes({0x20, 0x01, 0x0d, 0xb8}).zeros(11).u8(2);
    return *this;
  }
  // Hop-by-hop, routing, destination options: (len_units + 1) * 8 bytes.
  Frame& ext(uint8_t next_header, uint8_t len_units = 0) {
    u8(next_header).u8(len_units).zeros(6u + len_units * 8u);
    return *this;
  }
  Frame& frag6(uint8_t next_header, uint16_t offset_units, bool more) {
    return u8(next_header).u8(0).u16(uint16_t(offset_units << 3 | (more ? 1 : 0))).u32(0xabcd);
  }
  Frame& tcp(uint8_t data_offset = 5) {
    l4_offset_ = data_.size();
    u16(40000).u16(80).u32(1).u32(0).u8(uint8_t(data_offset << 4)).u8(0x02).u16(65535).u16(0).u16(0);
    if (data_offset > 5) zeros((data_offset - 5u) * 4u);
    return *this;
  }
  Frame& udp() {
    l4_offset_ = data_.size();
    udp_offset_ = data_.size();
    return u16(5353).u16(53).u16(0).u16(0);
  }
  Frame& icmp(uint8_t type = 8) { return u8(type).u8(0).u16(0).u32(0x00010001); }
  Frame& payload(size_t n) {
    for (size_t i = 0; i < n; ++i) data_.push_back(uint8_t(i));
    return *this;
  }

  // Fills the length fields; call after the last header and payload, before padding.
  Frame& lengths() {
    if (ip_offset_ != kNone) {
      if (ipv6_) put16(ip_offset_ + 4, uint16_t(data_.size() - ip_offset_ - 40));
      else put16(ip_offset_ + 2, uint16_t(data_.size() - ip_offset_));
    }
    if (udp_offset_ != kNone) put16(udp_offset_ + 4, uint16_t(data_.size() - udp_offset_));
    return *this;
  }
  Frame& set16(size_t offset, uint16_t v) {
    put16(offset, v);
    return *this;
  }
  Frame& set8(size_t offset, uint8_t v) {
    data_.at(offset) = v;
    return *this;
  }
  Frame& truncate(size_t size) {
    data_.resize(size);
    return *this;
  }

  std::vector<uint8_t> build() { return lengths().data_; }
  // As is: no length fixing (for frames cut short on purpose).
  const std::vector<uint8_t>& raw() const { return data_; }
  size_t size() const { return data_.size(); }
  size_t ip_offset() const { return ip_offset_; }

 private:
  static constexpr size_t kNone = ~size_t{0};
  void put16(size_t offset, uint16_t v) {
    data_.at(offset) = uint8_t(v >> 8);
    data_.at(offset + 1) = uint8_t(v);
  }
  std::vector<uint8_t> data_;
  size_t ip_offset_ = kNone;
  size_t l4_offset_ = kNone;
  size_t udp_offset_ = kNone;
  bool ipv6_ = false;
};

// An ethdev whose RX queue 0 reads from `rx` and TX queue 0 writes into `tx`, so a
// test can inject packets and see exactly what was sent.
class RingPort {
 public:
  RingPort(rte_mempool* pool, unsigned rx_size = 1024, unsigned tx_size = 1024) {
    static unsigned serial = 0;
    name_ = "unit" + std::to_string(serial++);
    // Exact sizes: a ring of N holds N, so a test can make a TX queue hold 3 packets.
    rx_ = rte_ring_create((name_ + "_rx").c_str(), rx_size, SOCKET_ID_ANY, RING_F_EXACT_SZ);
    tx_ = rte_ring_create((name_ + "_tx").c_str(), tx_size, SOCKET_ID_ANY, RING_F_EXACT_SZ);
    EXPECT_NE(rx_, nullptr);
    EXPECT_NE(tx_, nullptr);
    if (!rx_ || !tx_) return;
    int id = rte_eth_from_rings(name_.c_str(), &rx_, 1, &tx_, 1, rte_socket_id());
    EXPECT_GE(id, 0) << rte_strerror(rte_errno);
    if (id < 0) return;
    port_id_ = static_cast<uint16_t>(id);
    rte_eth_conf conf{};
    EXPECT_EQ(rte_eth_dev_configure(port_id_, 1, 1, &conf), 0);
    EXPECT_EQ(rte_eth_rx_queue_setup(port_id_, 0, 128, rte_socket_id(), nullptr, pool), 0);
    EXPECT_EQ(rte_eth_tx_queue_setup(port_id_, 0, 128, rte_socket_id(), nullptr), 0);
    EXPECT_EQ(rte_eth_dev_start(port_id_), 0);
    ok_ = true;
  }
  ~RingPort() {
    if (ok_) {
      EXPECT_EQ(rte_eth_dev_stop(port_id_), 0);
      EXPECT_EQ(rte_eth_dev_close(port_id_), 0);
    }
    drain(rx_);
    drain(tx_);
    rte_ring_free(rx_);
    rte_ring_free(tx_);
  }
  RingPort(const RingPort&) = delete;
  RingPort& operator=(const RingPort&) = delete;

  bool ok() const { return ok_; }
  uint16_t port_id() const { return port_id_; }
  unsigned inject(rte_mbuf* const* pkts, unsigned n) {
    return rte_ring_enqueue_burst(rx_, reinterpret_cast<void* const*>(pkts), n, nullptr);
  }
  unsigned sent_count() const { return rte_ring_count(tx_); }
  // Takes what the port sent; the caller frees it.
  std::vector<rte_mbuf*> take_sent() {
    std::vector<rte_mbuf*> out(rte_ring_count(tx_));
    unsigned n = rte_ring_dequeue_burst(tx_, reinterpret_cast<void**>(out.data()), unsigned(out.size()), nullptr);
    out.resize(n);
    return out;
  }

 private:
  static void drain(rte_ring* ring) {
    if (ring == nullptr) return;
    void* m;
    while (rte_ring_dequeue(ring, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
  }
  std::string name_;
  rte_ring* rx_ = nullptr;
  rte_ring* tx_ = nullptr;
  uint16_t port_id_ = RTE_MAX_ETHPORTS;
  bool ok_ = false;
};

inline void free_all(std::vector<rte_mbuf*>& pkts) {
  for (rte_mbuf* m : pkts) rte_pktmbuf_free(m);
  pkts.clear();
}

}  // namespace sluice::test
