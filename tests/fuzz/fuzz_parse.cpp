// The parse stage reads attacker-controlled frames: any bytes, in one segment or split
// across two, must be kept or dropped with a reason, never read out of bounds.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include <rte_eal.h>
#include <rte_mbuf.h>

#include "pipeline/packet_meta.h"
#include "pipeline/parse.h"

namespace {
rte_mempool* g_pool = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* args[] = {"fuzz_parse", "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry", "-m", "128", "-l", "0",
                        "--log-level=error", nullptr};
  if (rte_eal_init(static_cast<int>(std::size(args) - 1), const_cast<char**>(args)) < 0) __builtin_trap();
  if (!sluice::pipeline::register_packet_meta()) __builtin_trap();
  g_pool = rte_pktmbuf_pool_create("fuzz", 255, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  if (g_pool == nullptr) __builtin_trap();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // First byte picks where a second segment starts (0: one segment).
  if (size < 1 || size > 2 * 1500) return 0;
  size_t split = data[0];
  ++data;
  --size;
  if (split == 0 || split >= size) split = size;

  // Exact-size buffers: ASan sees any read past the frame.
  rte_mbuf* head = rte_pktmbuf_alloc(g_pool);
  rte_mbuf* tail = split < size ? rte_pktmbuf_alloc(g_pool) : nullptr;
  std::vector<uint8_t> first(data, data + split), second(data + split, data + size);
  // Point the segments at heap copies so reads beyond them are caught.
  rte_pktmbuf_reset(head);
  head->buf_addr = first.data();
  head->data_off = 0;
  head->buf_len = static_cast<uint16_t>(first.size());
  head->data_len = static_cast<uint16_t>(first.size());
  head->pkt_len = static_cast<uint32_t>(size);
  if (tail) {
    tail->buf_addr = second.data();
    tail->data_off = 0;
    tail->buf_len = static_cast<uint16_t>(second.size());
    tail->data_len = static_cast<uint16_t>(second.size());
    head->next = tail;
    head->nb_segs = 2;
  }

  sluice::pipeline::ParseCounts counts;
  auto reason = sluice::pipeline::ParseStage::parse_packet(head, counts);
  if (!reason) {
    const auto& pm = sluice::pipeline::meta(head);
    if (pm.l4_offset > size || pm.l3_offset > size) __builtin_trap();
  }

  // The mbufs' own buffers were swapped out: restore before freeing.
  for (rte_mbuf* m : {head, tail}) {
    if (!m) continue;
    m->buf_addr = reinterpret_cast<char*>(m) + sizeof(rte_mbuf) + rte_pktmbuf_priv_size(g_pool);
    m->buf_len = RTE_MBUF_DEFAULT_BUF_SIZE;
    m->next = nullptr;
    m->nb_segs = 1;
    rte_pktmbuf_free(m);
  }
  return 0;
}
