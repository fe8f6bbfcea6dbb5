#include "nat/reassembly.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include <rte_byteorder.h>
#include <rte_ip.h>

#include "net/headers.h"

namespace sluice::nat {

namespace {

constexpr uint32_t kNoSlot = UINT32_MAX;
constexpr uint32_t kMaxDatagramBytes = 65535;  // IPv4 total length, header included
constexpr unsigned kExpireBudget = 16;         // datagrams looked at per call

}  // namespace

Reassembler::Reassembler(const config::NatFragments& limits, uint64_t tsc_hz)
    : max_datagrams_(limits.max_datagrams),
      max_fragments_(limits.max_fragments),
      timeout_tsc_(tsc_hz / 1000 * limits.timeout_ms) {
  datagrams_.resize(max_datagrams_);
  fragments_.resize(size_t(max_datagrams_) * max_fragments_);
  const uint32_t size = std::bit_ceil(max_datagrams_ * 2);
  index_.assign(size, -1);
  index_mask_ = size - 1;
  for (uint32_t i = 0; i < max_datagrams_; ++i) datagrams_[i].next_free = i + 1 < max_datagrams_ ? i + 1 : kNoSlot;
  free_head_ = max_datagrams_ ? 0 : kNoSlot;
}

Reassembler::~Reassembler() { flush(); }

uint32_t Reassembler::hash(uint32_t src, uint32_t dst, uint16_t id, uint8_t proto) const {
  uint32_t h = src * 0x9e3779b1u;
  h ^= dst + 0x7f4a7c15u + (h << 6) + (h >> 2);
  h ^= (uint32_t(id) << 8 | proto) * 0x85ebca6bu;
  return (h ^ (h >> 15)) & index_mask_;
}

int32_t Reassembler::find(uint32_t src, uint32_t dst, uint16_t id, uint8_t proto) const {
  for (uint32_t i = hash(src, dst, id, proto);; i = (i + 1) & index_mask_) {
    const int32_t slot = index_[i];
    if (slot < 0) return -1;
    const Datagram& d = datagrams_[slot];
    if (d.src == src && d.dst == dst && d.id == id && d.proto == proto) return slot;
  }
}

int32_t Reassembler::create_slot(uint32_t src, uint32_t dst, uint16_t id, uint8_t proto, uint64_t now_tsc) {
  if (free_head_ == kNoSlot) return -1;
  const uint32_t slot = free_head_;
  Datagram& d = datagrams_[slot];
  free_head_ = d.next_free;
  d = Datagram{};
  d.src = src;
  d.dst = dst;
  d.id = id;
  d.proto = proto;
  d.used = 1;
  d.deadline = now_tsc + timeout_tsc_;
  uint32_t i = hash(src, dst, id, proto);
  while (index_[i] >= 0) i = (i + 1) & index_mask_;
  index_[i] = static_cast<int32_t>(slot);
  ++in_progress_;
  counters_.in_progress.inc();
  return static_cast<int32_t>(slot);
}

// Linear probing's deletion without tombstones: later members of the cluster move back
// into the hole when their home position allows it.
void Reassembler::index_remove(uint32_t slot) {
  const Datagram& d = datagrams_[slot];
  uint32_t i = hash(d.src, d.dst, d.id, d.proto);
  while (index_[i] != static_cast<int32_t>(slot)) i = (i + 1) & index_mask_;
  uint32_t hole = i;
  for (uint32_t j = (hole + 1) & index_mask_; index_[j] >= 0; j = (j + 1) & index_mask_) {
    const Datagram& other = datagrams_[index_[j]];
    const uint32_t home = hash(other.src, other.dst, other.id, other.proto);
    // Move j to the hole unless its home lies cyclically in (hole, j].
    const bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (stays) continue;
    index_[hole] = index_[j];
    hole = j;
  }
  index_[hole] = -1;
}

unsigned Reassembler::free_datagram(uint32_t slot) {
  Datagram& d = datagrams_[slot];
  Fragment* frags = fragments_of(slot);
  const unsigned n = d.count;
  for (unsigned k = 0; k < n; ++k) rte_pktmbuf_free(frags[k].m);
  counters_.held.add(~uint64_t(n) + 1);
  index_remove(slot);
  d.used = 0;
  d.count = 0;
  d.next_free = free_head_;
  free_head_ = slot;
  --in_progress_;
  counters_.in_progress.add(~uint64_t(0));
  return n;
}

Reassembler::Outcome Reassembler::add(rte_mbuf* m, uint16_t l3_offset, uint64_t now_tsc, rte_mbuf*& whole,
                                      Drop& reason, unsigned& dropped_held, bool& m_freed) {
  whole = nullptr;
  dropped_held = 0;
  m_freed = false;
  counters_.fragments.inc();
  const auto* ip = rte_pktmbuf_mtod_offset(m, const net::Ipv4Header*, l3_offset);
  const uint32_t header = ip->header_len();
  const uint32_t payload = ip->total_length.value() - header;
  const uint32_t first = uint32_t(ip->fragment_offset()) * 8;
  const uint32_t end = first + payload;
  const bool more = ip->more_fragments();
  auto drop_alone = [&](Drop why) {
    reason = why;
    return Outcome::Dropped;
  };
  // Every fragment but the last carries a multiple of 8 bytes (RFC 791); a datagram
  // longer than an IPv4 total length can say is an attack (ping of death).
  if (header + end > kMaxDatagramBytes) {
    int32_t slot = find(ip->src.raw, ip->dst.raw, ip->id.raw, ip->protocol);
    if (slot >= 0) dropped_held = free_datagram(static_cast<uint32_t>(slot));
    reason = Drop::FragmentTooLong;
    return Outcome::Dropped;
  }
  if ((more && (payload == 0 || payload % 8 != 0))) return drop_alone(Drop::FragmentOverlap);

  int32_t found = find(ip->src.raw, ip->dst.raw, ip->id.raw, ip->protocol);
  if (found < 0) {
    found = create_slot(ip->src.raw, ip->dst.raw, ip->id.raw, ip->protocol, now_tsc);
    if (found < 0) return drop_alone(Drop::ReassemblyFull);
  }
  const uint32_t slot = static_cast<uint32_t>(found);
  Datagram& d = datagrams_[slot];
  Fragment* frags = fragments_of(slot);
  auto drop_all = [&](Drop why) {
    dropped_held = free_datagram(slot);
    reason = why;
    return Outcome::Dropped;
  };
  for (unsigned k = 0; k < d.count; ++k) {
    const Fragment& f = frags[k];
    if (f.first == first && f.end == end) return drop_alone(Drop::FragmentDuplicate);  // Linux's IPFRAG_DUP
    if (first < f.end && f.first < end) return drop_all(Drop::FragmentOverlap);
  }
  if (!more) {
    // A second last fragment, or one that ends before data already held.
    if (d.have_last && d.total != end) return drop_all(Drop::FragmentOverlap);
    for (unsigned k = 0; k < d.count; ++k)
      if (frags[k].end > end) return drop_all(Drop::FragmentOverlap);
    d.have_last = 1;
    d.total = end;
  } else if (d.have_last && end > d.total) {
    return drop_all(Drop::FragmentOverlap);
  }
  if (d.count == max_fragments_) return drop_all(Drop::FragmentTooMany);
  frags[d.count++] = Fragment{m, static_cast<uint16_t>(first), static_cast<uint16_t>(end), l3_offset};
  counters_.held.inc();
  d.received += payload;
  if (!d.have_last || d.received != d.total) return Outcome::Held;
  whole = join(slot);
  if (!whole) {
    reason = Drop::ReassemblyFailed;
    dropped_held = d.count_at_join;
    m_freed = true;
    return Outcome::Dropped;
  }
  counters_.reassembled.inc();
  return Outcome::Complete;
}

// The fragments in order, each but the first stripped to its payload, chained behind
// the first; the first's IP header rewritten for the whole datagram.
rte_mbuf* Reassembler::join(uint32_t slot) {
  Datagram& d = datagrams_[slot];
  Fragment* frags = fragments_of(slot);
  const unsigned n = d.count;
  d.count_at_join = static_cast<uint8_t>(n);
  std::sort(frags, frags + n, [](const Fragment& a, const Fragment& b) { return a.first < b.first; });
  rte_mbuf* head = frags[0].m;
  auto* ip = rte_pktmbuf_mtod_offset(head, net::Ipv4Header*, frags[0].l3_offset);
  const uint32_t header = ip->header_len();
  bool ok = true;
  for (unsigned k = 0; k < n && ok; ++k) {
    rte_mbuf* m = frags[k].m;
    const uint32_t bytes = frags[k].end - frags[k].first;
    // The first keeps its headers; the others keep their payload only. Ethernet padding
    // after a short fragment is not datagram.
    const uint32_t keep_from = k == 0 ? 0 : frags[k].l3_offset + rte_pktmbuf_mtod_offset(m, const net::Ipv4Header*,
                                                                                        frags[k].l3_offset)->header_len();
    const uint32_t keep = k == 0 ? frags[0].l3_offset + header + bytes : bytes;
    if (keep_from && rte_pktmbuf_adj(m, static_cast<uint16_t>(keep_from)) == nullptr) ok = false;
    else if (rte_pktmbuf_pkt_len(m) < keep) ok = false;
    else if (rte_pktmbuf_pkt_len(m) > keep && rte_pktmbuf_trim(m, static_cast<uint16_t>(rte_pktmbuf_pkt_len(m) - keep)) != 0)
      ok = false;
  }
  unsigned linked = 1;  // fragments in head's chain
  while (ok && linked < n) {
    if (rte_pktmbuf_chain(head, frags[linked].m) != 0) ok = false;
    else ++linked;
  }
  const bool chained = ok;
  counters_.held.add(~uint64_t(n) + 1);
  index_remove(slot);
  d.used = 0;
  d.count = 0;
  d.next_free = free_head_;
  free_head_ = slot;
  --in_progress_;
  counters_.in_progress.add(~uint64_t(0));
  if (!chained) {
    // The head holds the fragments chained so far; the rest are still on their own.
    for (unsigned k = linked; k < n; ++k) rte_pktmbuf_free(frags[k].m);
    rte_pktmbuf_free(head);
    return nullptr;
  }
  ip->total_length.set(static_cast<uint16_t>(header + d.total));
  ip->fragment.set(ip->fragment.value() & 0x4000);  // DF as the first fragment had it; no MF, offset 0
  ip->checksum.raw = 0;
  ip->checksum.raw = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip));
  return head;
}

unsigned Reassembler::expire(uint64_t now_tsc) {
  if (in_progress_ == 0) return 0;
  unsigned freed = 0;
  for (unsigned k = 0; k < kExpireBudget; ++k) {
    const uint32_t slot = expire_cursor_;
    expire_cursor_ = expire_cursor_ + 1 < max_datagrams_ ? expire_cursor_ + 1 : 0;
    Datagram& d = datagrams_[slot];
    if (d.used && static_cast<int64_t>(now_tsc - d.deadline) >= 0) freed += free_datagram(slot);
  }
  if (freed) timeouts_.add(freed);
  return freed;
}

unsigned Reassembler::flush() {
  unsigned freed = 0;
  for (uint32_t slot = 0; slot < max_datagrams_; ++slot)
    if (datagrams_[slot].used) freed += free_datagram(slot);
  if (freed) flushed_.add(freed);
  return freed;
}

}  // namespace sluice::nat
