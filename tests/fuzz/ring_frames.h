// What the pipeline fuzz targets (fuzz_conntrack, fuzz_nat) share: ring-backed ports and
// input frames in mbufs whose every segment is its own heap block, so that ASan sees any
// read past a segment's end.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

namespace sluice::fuzz {

// An ethdev over two rings, RX buffers from `pool`; what it sends lands in `tx_ring`.
inline uint16_t ring_port(const char* name, rte_mempool* pool, rte_ring*& tx_ring) {
  const std::string n = name;
  rte_ring* rx = rte_ring_create((n + "_rx").c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  rte_ring* tx = rte_ring_create((n + "_tx").c_str(), 4096, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (!rx || !tx) __builtin_trap();
  const int id = rte_eth_from_rings(name, &rx, 1, &tx, 1, static_cast<unsigned>(rte_socket_id()));
  if (id < 0) __builtin_trap();
  const auto port = static_cast<uint16_t>(id);
  rte_eth_conf conf{};
  if (rte_eth_dev_configure(port, 1, 1, &conf) != 0 ||
      rte_eth_rx_queue_setup(port, 0, 128, SOCKET_ID_ANY, nullptr, pool) != 0 ||
      rte_eth_tx_queue_setup(port, 0, 128, SOCKET_ID_ANY, nullptr) != 0 || rte_eth_dev_start(port) != 0)
    __builtin_trap();
  tx_ring = tx;
  return port;
}

// One segment's bytes in a heap block of exactly their size, attached to an mbuf as an
// external buffer (freed with the mbuf by the callback, which does nothing: the block
// belongs to the input).
struct Segment {
  std::unique_ptr<uint8_t[]> bytes;
  rte_mbuf_ext_shared_info shinfo{};
};

inline void keep_block(void*, void*) {}

inline rte_mbuf* segment_mbuf(rte_mempool* pool, const uint8_t* data, size_t size,
                              std::vector<std::unique_ptr<Segment>>& segments) {
  auto s = std::make_unique<Segment>();
  s->bytes.reset(new uint8_t[size]);
  std::memcpy(s->bytes.get(), data, size);
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (!m) __builtin_trap();  // every iteration gives all its mbufs back: the pool never runs dry
  s->shinfo.free_cb = keep_block;
  rte_mbuf_ext_refcnt_set(&s->shinfo, 1);
  // IOVA as VA: rte_mbuf_check() refuses an IO address of 0.
  rte_pktmbuf_attach_extbuf(m, s->bytes.get(), reinterpret_cast<rte_iova_t>(s->bytes.get()),
                            static_cast<uint16_t>(size), &s->shinfo);
  m->data_len = static_cast<uint16_t>(size);
  m->pkt_len = static_cast<uint32_t>(size);
  segments.push_back(std::move(s));
  return m;
}

// The frame in one mbuf, or in two segments split in the middle.
inline rte_mbuf* frame_mbuf(rte_mempool* pool, const uint8_t* data, size_t size, bool two_segments,
                            std::vector<std::unique_ptr<Segment>>& segments) {
  if (!two_segments || size < 2) return segment_mbuf(pool, data, size, segments);
  const size_t split = size / 2;
  rte_mbuf* head = segment_mbuf(pool, data, split, segments);
  rte_mbuf* tail = segment_mbuf(pool, data + split, size - split, segments);
  head->next = tail;
  head->nb_segs = 2;
  head->pkt_len = static_cast<uint32_t>(size);
  return head;
}

// One record of a pipeline fuzz input (after its first, policy byte): ctl (bit 7: into
// the second port; bit 6: two segments; bit 5: the target's NIC checksum flag; bits
// 0-4: clock steps before it), a 2-byte big-endian length, the frame (cut to what is
// left and to `max_frame`).
struct Record {
  unsigned direction;
  bool two_segments;
  bool nic_flag;
  uint32_t step;
  const uint8_t* frame;
  size_t length;
};

// The record at `at`, which moves past it; false when fewer than 3 bytes are left.
inline bool next_record(const uint8_t* data, size_t size, size_t& at, size_t max_frame, Record& r) {
  if (at + 3 > size) return false;
  const uint8_t ctl = data[at];
  const size_t written = size_t(data[at + 1]) << 8 | data[at + 2];
  at += 3;
  r.direction = ctl >> 7;
  r.two_segments = ctl & 0x40;
  r.nic_flag = ctl & 0x20;
  r.step = ctl & 0x1f;
  r.frame = data + at;
  r.length = std::min({written, size - at, max_frame});
  at += r.length;
  return true;
}

}  // namespace sluice::fuzz
