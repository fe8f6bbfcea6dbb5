// One worker lcore's flow table: a fixed pool of entries, a bucketised index with two
// candidate buckets per key, and a timer wheel threaded through the entries. Owned
// and written by one lcore only; no locks, no allocation after create().
//
// Index: 64-byte buckets of 8 slots, each a 16-bit signature, a 16-bit hint (protected
// bit + creation time in 32 ms units, for early drop without touching entries) and a
// 32-bit entry index. capacity/4 buckets: half the slots are in use when the pool is
// full, so a key almost always finds room in one of its two buckets.
//
// Timer wheel: kWheelSlots slots of kTickMs. A packet moves an entry's deadline later
// without touching the wheel; when the slot comes due the entry is re-linked where its
// deadline now falls, or expired. A deadline moved earlier re-links at once.
//
// NAT pairs (IPv4 only): a translated flow is a NatPair4, two lines (the entry, then its
// NatExt4), from a pool of its own. Its original key and its reply key are both in the
// buckets, so either direction finds it in one lookup. Indices: i a plain entry,
// kPairBit|p a pair by its original key, kPairBit|kReplyBit|p the same pair by its reply
// key; timer links only ever hold the first two forms.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>

#include <rte_malloc.h>
#include <rte_prefetch.h>

#if defined(__SSE4_1__)
#include <smmintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "flow/flow_key.h"
#include "flow/nat_entry.h"

namespace sluice::flow {

inline constexpr uint32_t kNoEntry = UINT32_MAX;
inline constexpr uint32_t kTickMs = 64;
inline constexpr uint32_t kWheelSlots = 4096;  // horizon kWheelSlots * kTickMs = 262 s
inline constexpr unsigned kEvictionBuckets = 8;  // buckets early drop looks at, as nf_conntrack's eviction range
// Early drop of a NAT pair looks at this many pairs of the pool from a rotating cursor
// (at most four such rounds while all it meets are protected).
inline constexpr unsigned kPairEvictionSample = 16;
inline constexpr uint32_t kPairBit = 1u << 30;   // the index names a NAT pair
inline constexpr uint32_t kReplyBit = 1u << 29;  // ... found by its reply key
inline constexpr uint32_t kIndexMask = kReplyBit - 1;
inline constexpr uint32_t kMaxCapacity = kReplyBit;  // plain entries and pairs each

inline bool is_pair(uint32_t index) { return (index >> 30) == 1u; }    // kNoEntry and kRecheck are not
inline bool is_reply(uint32_t index) { return (index >> 29) == 3u; }
// The index a pair's timer links and its original key's slot hold.
inline uint32_t main_index(uint32_t index) { return is_reply(index) ? index & ~kReplyBit : index; }

// Signed distance a - b of two wrapping millisecond stamps.
inline int32_t ms_diff(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b); }

struct alignas(64) FlowBucket {
  uint16_t sig[8];    // 0: free slot
  uint16_t hint[8];   // kHintProtected | creation time in 32 ms units (mod 2^15)
  uint32_t index[8];
};
static_assert(sizeof(FlowBucket) == 64);

inline constexpr uint16_t kHintProtected = 0x8000;
inline constexpr unsigned kAgeShift = 5;  // hint time unit: 2^5 ms

// An entry removed to make room, reported so the caller keeps its per-state counts.
struct Victim {
  bool evicted = false;
  uint8_t proto = 0;
  uint8_t state = 0;
};

template <typename Entry>
class FlowTable {
 public:
  using Key = typename Entry::Key;
  // Pairs exist for IPv4 only (NAT44); an IPv6 table never has any.
  static constexpr bool kPairs = std::is_same_v<Entry, FlowEntry4>;
  // Told of every pair removed, however it goes (expiry, flush, eviction, reopen, sweep),
  // before its memory is reused.
  using PairObserver = void (*)(void* user, const NatPair4& pair);

  // Null with `error` set when the memory cannot be reserved. `pair_capacity`: NAT
  // pairs (IPv4 tables only; 0 for none).
  static std::unique_ptr<FlowTable> create(uint32_t capacity, int socket, const std::string& name,
                                           std::string& error, uint32_t pair_capacity = 0) {
    std::unique_ptr<FlowTable> t(new FlowTable());
    if constexpr (!kPairs) pair_capacity = 0;
    t->capacity_ = capacity;
    t->pair_capacity_ = pair_capacity;
    // Every pair has two keys in the buckets: size them for capacity + 2 x pairs keys.
    const uint64_t keys = uint64_t(capacity) + 2 * uint64_t(pair_capacity);
    uint32_t buckets = 8;
    while (buckets < keys / 4) buckets <<= 1;
    t->bucket_mask_ = buckets - 1;
    t->entries_ = static_cast<Entry*>(
        rte_zmalloc_socket((name + "_e").c_str(), sizeof(Entry) * size_t(capacity), 64, socket));
    t->buckets_ = static_cast<FlowBucket*>(
        rte_zmalloc_socket((name + "_b").c_str(), sizeof(FlowBucket) * size_t(buckets), 64, socket));
    if (pair_capacity)
      t->pairs_ = static_cast<NatPair4*>(
          rte_zmalloc_socket((name + "_p").c_str(), sizeof(NatPair4) * size_t(pair_capacity), 64, socket));
    if (!t->entries_ || !t->buckets_ || (pair_capacity && !t->pairs_)) {
      error = name + ": cannot reserve " + std::to_string(t->memory_bytes() >> 20) + " MiB for " +
              std::to_string(capacity) + " flows" + (pair_capacity ? " and " + std::to_string(pair_capacity) + " NAT flows" : "") +
              " (raise eal.memory_mb or lower conntrack.capacity" + (pair_capacity ? " or nat.capacity" : "") + ")";
      return nullptr;
    }
    for (uint32_t i = 0; i < kWheelSlots; ++i) t->wheel_[i] = kNoEntry;
    // Free lists in index order: the first flows land at the start of each pool.
    for (uint32_t i = 0; i < capacity; ++i) t->entries_[i].body.timer_next = i + 1 < capacity ? i + 1 : kNoEntry;
    t->free_head_ = capacity ? 0 : kNoEntry;
    for (uint32_t p = 0; p < pair_capacity; ++p)
      t->pairs_[p].main.body.timer_next = p + 1 < pair_capacity ? p + 1 : kNoEntry;
    t->free_pair_head_ = pair_capacity ? 0 : kNoEntry;
    return t;
  }

  ~FlowTable() {
    rte_free(entries_);
    rte_free(buckets_);
    rte_free(pairs_);
  }
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  uint32_t capacity() const { return capacity_; }
  uint32_t pair_capacity() const { return pair_capacity_; }
  uint32_t active() const { return active_; }  // plain entries and pairs
  uint32_t pairs_active() const { return pairs_active_; }
  uint32_t bucket_count() const { return bucket_mask_ + 1; }
  size_t memory_bytes() const {
    return sizeof(Entry) * size_t(capacity_) + sizeof(NatPair4) * size_t(pair_capacity_) +
           sizeof(FlowBucket) * bucket_count();
  }
  void set_pair_observer(PairObserver observer, void* user) {
    pair_observer_ = observer;
    pair_observer_user_ = user;
  }
  // Told of every plain entry flagged kFlowLb removed (expiry, flush, eviction, reopen),
  // before its memory is reused: an IPv6 load-balanced connection ended.
  using EntryObserver = void (*)(void* user, const Entry& entry);
  void set_entry_observer(EntryObserver observer, void* user) {
    entry_observer_ = observer;
    entry_observer_user_ = user;
  }

  // The entry (a pair's first line) an index names, whichever key found it.
  Entry& at(uint32_t index) {
    if constexpr (kPairs)
      if (is_pair(index)) return pairs_[index & kIndexMask].main;
    return entries_[index];
  }
  const Entry& at(uint32_t index) const { return const_cast<FlowTable*>(this)->at(index); }
  // A pair's second line.
  NatExt4& ext(uint32_t index) { return pairs_[index & kIndexMask].ext; }
  const NatExt4& ext(uint32_t index) const { return pairs_[index & kIndexMask].ext; }
  // The key an index was found by: a pair's reply key for a reply index.
  const Key& key_at(uint32_t index) const {
    if constexpr (kPairs) {
      if (is_pair(index)) {
        const NatPair4& pair = pairs_[index & kIndexMask];
        return is_reply(index) ? pair.ext.reply_key : pair.main.key;
      }
    }
    return entries_[index].key;
  }

  // The direction (0: from the opener) of a packet that found pair `index` with
  // `sender_slot` in that key, or -1 when it is not a packet of the translated flow
  // (the responder writing to the opener's untranslated address, or a packet from the
  // translated address itself).
  int pair_direction(uint32_t index, unsigned sender_slot) const {
    const NatPair4& pair = pairs_[index & kIndexMask];
    if (is_reply(index)) return sender_slot == pair.ext.reply_sender_slot ? 1 : -1;
    return direction(pair.main.body, sender_slot) == 0 ? 0 : -1;
  }

  // ---- lookups

  void prefetch_primary(uint32_t hash) const { rte_prefetch0(&buckets_[primary(hash)]); }
  void prefetch(uint32_t hash) const {
    rte_prefetch0(&buckets_[primary(hash)]);
    rte_prefetch0(&buckets_[secondary(hash)]);
  }
  // Both lines of a pair: a packet of a NAT flow reads its state and its translation.
  void prefetch_entry(uint32_t index) const {
    if constexpr (kPairs) {
      if (is_pair(index)) {
        const NatPair4* pair = &pairs_[index & kIndexMask];
        rte_prefetch0(&pair->main);
        rte_prefetch0(&pair->ext);
        return;
      }
    }
    rte_prefetch0(&entries_[index]);
  }

  // The next `count` pair evictions, picked ahead (pair_to_evict()'s picks from the
  // cursor as it stands) with what they will touch fetched: each victim's buckets (both
  // keys, both candidates) and its timer neighbours. pair_to_evict() then takes them in
  // order, each while it is still the unprotected pair in use it was, with the deadline it
  // had (else it looks afresh), until end_eviction_plan(). A burst of new NAT flows
  // against a full pool so overlaps those misses and scans each run of pairs once.
  void plan_pair_evictions(unsigned count, uint32_t now_ms) {
    if constexpr (kPairs) {
      planned_count_ = planned_next_ = 0;
      if (count > kMaxPlanned) count = kMaxPlanned;
      // Picks that could wrap around the pool might name one pair twice.
      if (uint64_t(count) * kPairEvictionSample * 4 > pair_capacity_) return;
      uint32_t cursor = pair_cursor_;
      // The runs the picks will read (one each, unless all of a run are protected), all
      // asked for before the first is read.
      for (uint32_t p = cursor, end = cursor + count * kPairEvictionSample; p < end && p < pair_capacity_; ++p)
        rte_prefetch0(&pairs_[p].main.body);
      for (unsigned k = 0; k < count; ++k) {
        const uint32_t victim = pick_pair_victim(cursor, now_ms);
        if (victim == kNoEntry) return;
        const NatPair4& pair = pairs_[victim & kIndexMask];
        const FlowBody& body = pair.main.body;
        planned_[planned_count_++] = PlannedEviction{victim, cursor, body.expires};
        prefetch(pair.main.key.hash());
        prefetch(pair.ext.reply_key.hash());
        if (body.timer_prev != kNoEntry) rte_prefetch0(&at(body.timer_prev).body);
        if (body.timer_next != kNoEntry) rte_prefetch0(&at(body.timer_next).body);
      }
    }
  }
  void end_eviction_plan() { planned_count_ = planned_next_ = 0; }
  // Pairs the pool can still give without evicting.
  uint32_t pairs_free() const { return pair_capacity_ - pairs_active_; }

  // The entry holding `key`, or kNoEntry. Expired-but-not-yet-reaped entries are found
  // too: the caller checks the deadline.
  uint32_t find(const Key& key, uint32_t hash) const {
    const uint16_t sig = signature(hash);
    uint32_t found = find_in(buckets_[primary(hash)], key, sig);
    return found != kNoEntry ? found : find_in(buckets_[secondary(hash)], key, sig);
  }

  // A candidate that must be looked up again in full (its first guess was freed).
  static constexpr uint32_t kRecheck = kNoEntry - 1;

  // The first half of find_bulk: each key's candidate entry (first signature match, its
  // line prefetched), kNoEntry where no signature matches (the key is absent). The
  // caller confirms each with confirm() as late as it can, so the entry has arrived.
  void candidates_bulk(const uint32_t* hashes, unsigned n, uint32_t* out) const {
    for (unsigned i = 0; i < n; ++i) prefetch_primary(hashes[i]);  // no-ops when the caller did it already
    bool any_secondary = false;
    for (unsigned i = 0; i < n; ++i) {
      const uint32_t c = first_sig_match(buckets_[primary(hashes[i])], signature(hashes[i]));
      out[i] = c;
      if (c != kNoEntry) prefetch_entry(c);
      else {
        rte_prefetch0(&buckets_[secondary(hashes[i])]);
        any_secondary = true;
      }
    }
    if (!any_secondary) return;
    for (unsigned i = 0; i < n; ++i) {
      if (out[i] != kNoEntry) continue;
      const uint32_t c = first_sig_match(buckets_[secondary(hashes[i])], signature(hashes[i]));
      out[i] = c;
      if (c != kNoEntry) prefetch_entry(c);
    }
  }
  // The second half: the index holding `key`, or kNoEntry.
  uint32_t confirm(const Key& key, uint32_t hash, uint32_t candidate) const {
    if (candidate == kNoEntry) return kNoEntry;
    // The first signature match is almost always the key; a collision looks further.
    if (candidate != kRecheck && key_at(candidate) == key) return candidate;
    return find(key, hash);
  }

  // find() for a burst: every bucket prefetched first, then the candidate entries,
  // then the keys compared, so the cache misses of a burst overlap.
  void find_bulk(const Key* const* keys, const uint32_t* hashes, unsigned n, uint32_t* out) const {
    constexpr unsigned kMax = 64;
    uint32_t candidate[kMax];
    candidates_bulk(hashes, n, candidate);
    for (unsigned i = 0; i < n; ++i) out[i] = confirm(*keys[i], hashes[i], candidate[i]);
  }

  // ---- changes

  // A fresh entry for `key` (not present: the caller looked), its body zeroed but for
  // kFlowInUse, not linked in the wheel yet (arm() does). Makes room by early drop when
  // the pool or both buckets are full; kNoEntry when nothing could be evicted.
  uint32_t insert(const Key& key, uint32_t hash, uint32_t now_ms, Victim& victim) {
    victim = Victim{};
    const uint16_t sig = signature(hash);
    const uint16_t now_stamp = stamp(now_ms);
    FlowBucket* b1 = &buckets_[primary(hash)];
    FlowBucket* b2 = &buckets_[secondary(hash)];
    FlowBucket* b = b1;
    int slot = free_slot(*b1);
    if (slot < 0) {
      // The primary bucket while it has room: lookups then rarely need the second one.
      b = b2;
      slot = free_slot(*b2);
    }
    uint32_t index = kNoEntry;
    Evicted out;
    if (slot < 0) {
      // Both buckets full: only a plain entry in one of them can give up its slot (a
      // pair cannot be reused in place).
      FlowBucket* pair[2] = {b1, b2};
      if (!evict_oldest(pair, b1 == b2 ? 1 : 2, now_stamp, false, victim, out)) return kNoEntry;
      b = out.bucket;
      slot = out.slot;
      index = out.index;
    } else if (free_head_ == kNoEntry) {
      // The pool is full: the oldest unprotected flow near this key goes.
      FlowBucket* range[kEvictionBuckets];
      const unsigned count = eviction_range(hash, b1, b2, range, kEvictionBuckets);
      if (!evict_oldest(range, count, now_stamp, false, victim, out)) return kNoEntry;
      index = out.index;
    }
    Entry& e = index == kNoEntry ? entries_[free_head_] : entries_[index];
    FlowBody& body = e.body;
    if (index == kNoEntry) {
      index = free_head_;
      free_head_ = body.timer_next;
      std::memset(static_cast<void*>(&body), 0, sizeof(body));
      body.timer_next = body.timer_prev = kNoEntry;
      body.timer_slot = kUnlinked;
    } else {
      // The evicted entry, reused in place: it stays where it sits in the wheel (one of
      // the oldest, so due no later than the new flow), sparing two cold neighbours an
      // unlink and a link; arm() moves it only if the new deadline comes first.
      const uint32_t next = body.timer_next, prev = body.timer_prev, expires = body.expires;
      const uint16_t timer_slot = body.timer_slot;
      std::memset(static_cast<void*>(&body), 0, sizeof(body));
      body.timer_next = next;
      body.timer_prev = prev;
      body.timer_slot = timer_slot;
      body.expires = expires;
    }
    e.key = key;
    body.flags = kFlowInUse;
    b->sig[slot] = sig;
    b->hint[slot] = now_stamp;
    b->index[slot] = index;
    ++active_;
    return index;
  }

  // Turns plain entry `index` into a pair whose reply key is `reply_key`: its line is
  // copied into a pair from the pair pool, its bucket slot and timer links repointed,
  // the reply key indexed. A full pair pool gives up the unprotected pair nearest its
  // deadline among kPairEvictionSample from a rotating cursor (pair_to_evict); both
  // buckets of the reply key full, their oldest unprotected entry;
  // `on_evict(index, main entry)` is told of each, before it goes. Returns the pair's index
  // (its second line's reply_key set, the rest of it zeroed but for address_slot
  // 0xffff), or kNoEntry when no room could be made (the plain entry is left as it is).
  template <typename OnEvict>
  uint32_t promote(uint32_t index, const Key& reply_key, uint32_t reply_hash, uint32_t now_ms, OnEvict&& on_evict) {
    if constexpr (!kPairs) {
      return kNoEntry;
    } else {
      if (pair_capacity_ == 0 || is_pair(index)) return kNoEntry;
      const uint16_t now_stamp = stamp(now_ms);
      FlowBucket* b1 = &buckets_[primary(reply_hash)];
      FlowBucket* b2 = &buckets_[secondary(reply_hash)];
      // Room for the reply key first (nothing is evicted for a promotion that cannot be
      // done): both its buckets full, the oldest unprotected entry in them goes, a plain
      // one before a pair, never the entry being promoted.
      if (free_slot(*b1) < 0 && free_slot(*b2) < 0) {
        FlowBucket* both[2] = {b1, b2};
        uint32_t victim = oldest_in(both, b1 == b2 ? 1 : 2, now_stamp, false);
        if (victim == index || victim == kNoEntry) victim = oldest_in(both, b1 == b2 ? 1 : 2, now_stamp, true);
        if (victim == kNoEntry) return kNoEntry;
        on_evict(victim, at(victim));
        remove(victim);
      }
      if (free_pair_head_ == kNoEntry) {
        const uint32_t victim = pair_to_evict(now_ms);
        if (victim == kNoEntry) return kNoEntry;
        on_evict(victim, at(victim));
        remove(victim);
      }
      FlowBucket* b = b1;
      int slot = free_slot(*b1);
      if (slot < 0) {
        b = b2;
        slot = free_slot(*b2);
      }
      const uint32_t p = free_pair_head_;
      NatPair4& pair = pairs_[p];
      free_pair_head_ = pair.main.body.timer_next;
      const uint32_t pair_index = kPairBit | p;
      pair.main = entries_[index];
      std::memset(static_cast<void*>(&pair.ext), 0, sizeof(pair.ext));
      pair.ext.reply_key = reply_key;
      pair.ext.address_slot = 0xffff;
      // The original key's slot now names the pair; so do its wheel neighbours.
      FlowBucket* mb;
      const int mslot = locate(index, pair.main.key.hash(), mb);
      if (mslot >= 0) mb->index[mslot] = pair_index;
      FlowBody& body = pair.main.body;
      if (body.timer_slot != kUnlinked) {
        if (body.timer_prev != kNoEntry) body_of(body.timer_prev).timer_next = pair_index;
        else wheel_[body.timer_slot] = pair_index;
        if (body.timer_next != kNoEntry) body_of(body.timer_next).timer_prev = pair_index;
      }
      // The plain entry back to its pool, without touching the count: the flow lives on.
      Entry& old = entries_[index];
      old.body.flags = 0;
      old.body.timer_slot = kUnlinked;
      old.body.timer_next = free_head_;
      free_head_ = index;
      // The reply key's slot: always protected, so early drop only picks a pair by its
      // original key (and then removes both).
      b->sig[slot] = signature(reply_hash);
      b->hint[slot] = static_cast<uint16_t>(now_stamp | kHintProtected);
      b->index[slot] = pair_index | kReplyBit;
      ++pairs_active_;
      return pair_index;
    }
  }

  // Unlinks and frees an entry or a pair (by either of its indices).
  void remove(uint32_t index) {
    if constexpr (kPairs) {
      if (is_pair(index)) {
        remove_pair(index & kIndexMask);
        return;
      }
    }
    clear_slot(index, entries_[index].key.hash());
    release(index);
  }

  // Whether early drop may take this entry (kFlowProtected, mirrored in its bucket hint
  // so eviction reads no entry).
  void set_protected(uint32_t index, bool on) {
    index = main_index(index);
    Entry& e = at(index);
    if (bool(e.body.flags & kFlowProtected) == on) return;
    e.body.flags = static_cast<uint8_t>(on ? e.body.flags | kFlowProtected : e.body.flags & ~kFlowProtected);
    FlowBucket* b;
    int slot = locate(index, e.key.hash(), b);
    if (slot >= 0) b->hint[slot] = static_cast<uint16_t>(on ? b->hint[slot] | kHintProtected : b->hint[slot] & ~kHintProtected);
  }

  // Sets the entry's deadline. A later one costs nothing now; an earlier one than the
  // slot it sits in re-links it, so short timeouts (RST, close) are kept.
  void arm(uint32_t index, uint32_t expires_ms, uint32_t now_ms) {
    index = main_index(index);
    FlowBody& body = body_of(index);
    // The usual refresh: not earlier than the deadline it had, so the slot it sits in
    // (chosen for that deadline or an earlier one) still comes first.
    if (body.timer_slot != kUnlinked && ms_diff(expires_ms, body.expires) >= 0) [[likely]] {
      body.expires = expires_ms;
      return;
    }
    body.expires = expires_ms;
    const uint64_t target = target_tick(expires_ms, now_ms);
    if (body.timer_slot != kUnlinked) {
      const uint64_t linked = cursor_ + ((body.timer_slot - cursor_) & (kWheelSlots - 1));
      if (target >= linked) return;
      unlink_timer(index);
    }
    link_timer(index, target);
  }

  // Expires due entries, at most `budget` looked at; `on_expire(entry)` runs before
  // each is freed. Returns how many expired. Called every poll round.
  template <typename OnExpire>
  unsigned expire(uint32_t now_ms, unsigned budget, OnExpire&& on_expire) {
    const uint64_t now_tick = advance_clock(now_ms);
    unsigned expired = 0;
    unsigned empty_budget = kWheelSlots;  // a whole turn of empty slots means an empty wheel
    while (budget > 0 && cursor_ < now_tick) {
      const uint32_t slot = static_cast<uint32_t>(cursor_ & (kWheelSlots - 1));
      const uint32_t index = wheel_[slot];
      if (index == kNoEntry) {
        ++cursor_;
        if (--empty_budget == 0) {
          cursor_ = now_tick;  // every slot was empty: nothing is linked anywhere
          break;
        }
        continue;
      }
      --budget;
      unlink_timer(index);
      Entry& e = at(index);
      if (ms_diff(e.body.expires, now_ms) <= 0) {
        on_expire(e);
        remove(index);
        ++expired;
      } else {
        link_timer(index, target_tick(e.body.expires, now_ms));
      }
    }
    return expired;
  }

  // Positions for scan(): plain entries 0..capacity()-1, then pairs.
  uint32_t scan_end() const { return capacity_ + pair_capacity_; }
  // Visits every entry in use, in pool order (plain entries, then pairs), from
  // position `from`; stops when `visit(index, entry)` returns false or after `budget`
  // positions. `index` is the entry's index (kPairBit|p for a pair). Returns where to
  // continue (scan_end() when done).
  template <typename Visit>
  uint32_t scan(uint32_t from, uint32_t budget, Visit&& visit) {
    uint32_t i = from;
    for (; i < scan_end() && budget > 0; ++i, --budget) {
      const uint32_t index = i < capacity_ ? i : kPairBit | (i - capacity_);
      Entry& e = at(index);
      if (!(e.body.flags & kFlowInUse)) continue;
      if (!visit(index, e)) return i + 1;
    }
    return i;
  }

  // Frees everything at scan positions [from, to) (shutdown: all of them);
  // `on_remove(entry)` first. Returns how many.
  template <typename OnRemove>
  uint32_t sweep(OnRemove&& on_remove, uint32_t from = 0, uint32_t to = UINT32_MAX) {
    uint32_t removed = 0;
    const uint32_t end = to < scan_end() ? to : scan_end();
    for (uint32_t i = from; i < end; ++i) {
      const uint32_t index = i < capacity_ ? i : kPairBit | (i - capacity_);
      Entry& e = at(index);
      if (!(e.body.flags & kFlowInUse)) continue;
      on_remove(e);
      remove(index);
      ++removed;
    }
    return removed;
  }

  // The wheel's position, for tests.
  uint64_t cursor_tick() const { return cursor_; }

 private:
  static constexpr uint16_t kUnlinked = 0xffff;
  static_assert(kWheelSlots < kUnlinked);

  FlowTable() = default;

  static uint16_t signature(uint32_t hash) {
    const uint16_t sig = static_cast<uint16_t>(hash >> 16);
    return sig ? sig : 1;
  }
  // Creation stamps in 32 ms units: 15 bits span 17 minutes, longer than any unassured
  // flow lives, and fine enough to order a table that turns over quickly.
  static uint16_t stamp(uint32_t now_ms) { return static_cast<uint16_t>((now_ms >> kAgeShift) & 0x7fff); }
  uint32_t primary(uint32_t hash) const { return hash & bucket_mask_; }
  uint32_t secondary(uint32_t hash) const { return (hash ^ (uint32_t(signature(hash)) * 0x5bd1e995u >> 7)) & bucket_mask_; }

  FlowBody& body_of(uint32_t index) { return at(index).body; }

  // Bit i set when slot i's signature equals `sig`.
  static unsigned sig_matches(const FlowBucket& b, uint16_t sig) {
#if defined(__SSE2__)
    const __m128i sigs = _mm_load_si128(reinterpret_cast<const __m128i*>(b.sig));
    const __m128i eq = _mm_cmpeq_epi16(sigs, _mm_set1_epi16(static_cast<short>(sig)));
    // 16-bit lanes of all ones pack (saturating) to bytes of all ones: one bit per slot.
    return static_cast<unsigned>(_mm_movemask_epi8(_mm_packs_epi16(eq, _mm_setzero_si128())));
#else
    unsigned bits = 0;
    for (unsigned i = 0; i < 8; ++i)
      if (b.sig[i] == sig) bits |= 1u << i;
    return bits;
#endif
  }

  uint32_t first_sig_match(const FlowBucket& b, uint16_t sig) const {
    const unsigned bits = sig_matches(b, sig);
    return bits ? b.index[__builtin_ctz(bits)] : kNoEntry;
  }

  uint32_t find_in(const FlowBucket& b, const Key& key, uint16_t sig) const {
    for (unsigned bits = sig_matches(b, sig); bits; bits &= bits - 1) {
      const uint32_t index = b.index[__builtin_ctz(bits)];
      if (key_at(index) == key) return index;
    }
    return kNoEntry;
  }

  static int free_slot(const FlowBucket& b) {
    const unsigned bits = sig_matches(b, 0);
    return bits ? __builtin_ctz(bits) : -1;
  }
  static unsigned free_count(const FlowBucket& b) { return static_cast<unsigned>(__builtin_popcount(sig_matches(b, 0))); }

  // The bucket slot that holds `index` (as stored: a reply index for a pair's reply key).
  int locate(uint32_t index, uint32_t hash, FlowBucket*& bucket) {
    const uint16_t sig = signature(hash);
    for (FlowBucket* b : {&buckets_[primary(hash)], &buckets_[secondary(hash)]}) {
      for (unsigned bits = sig_matches(*b, sig); bits; bits &= bits - 1) {
        const int slot = __builtin_ctz(bits);
        if (b->index[slot] == index) {
          bucket = b;
          return slot;
        }
      }
    }
    return -1;
  }

  void clear_slot(uint32_t index, uint32_t hash) {
    FlowBucket* b;
    int slot = locate(index, hash, b);
    if (slot < 0) return;
    b->sig[slot] = 0;
    b->hint[slot] = 0;
    b->index[slot] = kNoEntry;
  }

  // Back to the free list, out of the wheel; its bucket slot is already clear.
  void release(uint32_t index) {
    Entry& e = entries_[index];
    if ((e.body.flags & kFlowLb) && entry_observer_) [[unlikely]]
      entry_observer_(entry_observer_user_, e);
    unlink_timer(index);
    e.body.flags = 0;
    e.body.timer_next = free_head_;
    free_head_ = index;
    --active_;
  }

  // Early drop for the pair pool: of the next kPairEvictionSample pairs from a rotating
  // cursor, the unprotected one nearest its deadline (an approximation of the oldest that
  // reads a few lines in a row, where a scan of buckets near a key reads many; pairs have
  // half as many evictable slots in the buckets as keys). kNoEntry when all were protected.
  uint32_t pair_to_evict(uint32_t now_ms) {
    if (planned_next_ < planned_count_) {
      const PlannedEviction& v = planned_[planned_next_++];
      const FlowBody& body = pairs_[v.pair & kIndexMask].main.body;
      if ((body.flags & (kFlowInUse | kFlowProtected)) == kFlowInUse && body.expires == v.expires) {
        pair_cursor_ = v.cursor_after;
        return v.pair;
      }
      end_eviction_plan();  // the pool moved under the plan
    }
    return pick_pair_victim(pair_cursor_, now_ms);
  }

  // pair_to_evict() from `cursor`, which it moves on.
  uint32_t pick_pair_victim(uint32_t& cursor, uint32_t now_ms) const {
    for (unsigned round = 0; round < 4; ++round) {
      // A run of kPairEvictionSample pairs; the pool's tail shorter than one is skipped.
      if (cursor + kPairEvictionSample > pair_capacity_) cursor = 0;
      const NatPair4* run = &pairs_[cursor];
      const unsigned n = pair_capacity_ < kPairEvictionSample ? pair_capacity_ : kPairEvictionSample;
      uint32_t best = kNoEntry;
      int32_t best_left = INT32_MAX;
      for (unsigned k = 0; k < n; ++k) {
        const FlowBody& body = run[k].main.body;
        const int32_t left = ms_diff(body.expires, now_ms);
        if ((body.flags & (kFlowInUse | kFlowProtected)) == kFlowInUse && left < best_left) {
          best_left = left;
          best = kPairBit | (cursor + k);
        }
      }
      cursor += n;
      if (best != kNoEntry) return best;
    }
    return kNoEntry;
  }

  void remove_pair(uint32_t p) {
    NatPair4& pair = pairs_[p];
    const uint32_t index = kPairBit | p;
    if (pair_observer_) pair_observer_(pair_observer_user_, pair);
    clear_slot(index, pair.main.key.hash());
    clear_slot(index | kReplyBit, pair.ext.reply_key.hash());
    unlink_timer(index);
    pair.main.body.flags = 0;
    pair.main.body.timer_next = free_pair_head_;
    free_pair_head_ = p;
    --active_;
    --pairs_active_;
  }

  // The key's two buckets and the ones after its primary, `size` in all.
  unsigned eviction_range(uint32_t hash, FlowBucket* b1, FlowBucket* b2, FlowBucket** range, unsigned size) {
    unsigned count = 0;
    range[count++] = b1;
    if (b2 != b1) range[count++] = b2;
    for (uint32_t k = 1; count < size; ++k) range[count++] = &buckets_[(primary(hash) + k) & bucket_mask_];
    return count;
  }

  struct Evicted {
    FlowBucket* bucket = nullptr;
    int slot = -1;
    uint32_t index = kNoEntry;
  };

  // The oldest unprotected slot of `pairs` (true) or plain entries (false) among
  // `buckets`: its bucket and slot in `out`; false when there is none.
  bool oldest_slot(FlowBucket* const* buckets, unsigned count, uint16_t now_stamp, bool pairs, Evicted& out) const {
    unsigned best_score = 0xffff;  // 0x7fff - age: lower is older; 0xffff none
    for (unsigned k = 0; k < count; ++k) {
      int slot;
      const unsigned score = oldest_unprotected(*buckets[k], now_stamp, pairs, slot);
      if (score < best_score) {
        best_score = score;
        out.bucket = buckets[k];
        out.slot = slot;
      }
    }
    if (best_score == 0xffff) return false;
    out.index = out.bucket->index[out.slot];
    return true;
  }
  uint32_t oldest_in(FlowBucket* const* buckets, unsigned count, uint16_t now_stamp, bool pairs) const {
    Evicted out;
    return oldest_slot(buckets, count, now_stamp, pairs, out) ? out.index : kNoEntry;
  }

  // Early drop of a plain entry: the oldest unprotected one among `buckets` gives up its
  // entry, which the caller reuses (still linked in the wheel, out of its bucket, not
  // counted active).
  bool evict_oldest(FlowBucket* const* buckets, unsigned count, uint16_t now_stamp, bool pairs, Victim& victim,
                    Evicted& out) {
    if (!oldest_slot(buckets, count, now_stamp, pairs, out)) return false;
    const uint32_t index = out.index;
    if ((entries_[index].body.flags & kFlowLb) && entry_observer_) [[unlikely]]
      entry_observer_(entry_observer_user_, entries_[index]);
    victim.evicted = true;
    victim.proto = entries_[index].key.proto;
    victim.state = entries_[index].body.state;
    out.bucket->sig[out.slot] = 0;
    out.bucket->hint[out.slot] = 0;
    out.bucket->index[out.slot] = kNoEntry;
    --active_;
    return true;
  }

  // The oldest slot of one bucket that may be evicted, of the kind asked for (a pair's
  // reply slot is always protected): returns 0x7fff - its age (lower is older) and sets
  // `slot`, or 0xffff when none may.
  static unsigned oldest_unprotected(const FlowBucket& b, uint16_t now_stamp, bool pairs, int& slot) {
#if defined(__SSE4_1__)
    const __m128i hints = _mm_load_si128(reinterpret_cast<const __m128i*>(b.hint));
    const __m128i sigs = _mm_load_si128(reinterpret_cast<const __m128i*>(b.sig));
    const __m128i age = _mm_and_si128(_mm_sub_epi16(_mm_set1_epi16(static_cast<short>(now_stamp)), hints),
                                      _mm_set1_epi16(0x7fff));
    __m128i score = _mm_sub_epi16(_mm_set1_epi16(0x7fff), age);
    // Empty or protected slots, and slots of the other kind, score 0xffff, after every candidate.
    const __m128i empty = _mm_cmpeq_epi16(sigs, _mm_setzero_si128());
    const __m128i protect = _mm_cmpeq_epi16(_mm_and_si128(hints, _mm_set1_epi16(static_cast<short>(kHintProtected))),
                                            _mm_set1_epi16(static_cast<short>(kHintProtected)));
    // Bit 30 of each index (kPairBit), as 16-bit lanes of all ones where it differs from `pairs`.
    const __m128i lo = _mm_load_si128(reinterpret_cast<const __m128i*>(b.index));
    const __m128i hi = _mm_load_si128(reinterpret_cast<const __m128i*>(b.index + 4));
    const __m128i want = _mm_set1_epi32(pairs ? static_cast<int>(kPairBit) : 0);
    const __m128i bit = _mm_set1_epi32(static_cast<int>(kPairBit));
    const __m128i other = _mm_packs_epi32(_mm_xor_si128(_mm_cmpeq_epi32(_mm_and_si128(lo, bit), want), _mm_set1_epi32(-1)),
                                          _mm_xor_si128(_mm_cmpeq_epi32(_mm_and_si128(hi, bit), want), _mm_set1_epi32(-1)));
    score = _mm_or_si128(score, _mm_or_si128(_mm_or_si128(empty, protect), other));
    const unsigned best = static_cast<unsigned>(_mm_cvtsi128_si32(_mm_minpos_epu16(score)));
    slot = static_cast<int>(best >> 16);
    return best & 0xffff;
#else
    unsigned best = 0xffff;
    slot = -1;
    for (int s = 0; s < 8; ++s) {
      if (b.sig[s] == 0 || (b.hint[s] & kHintProtected)) continue;
      if (bool(b.index[s] & kPairBit) != pairs) continue;
      const unsigned score = 0x7fffu - ((now_stamp - b.hint[s]) & 0x7fffu);
      if (score < best) {
        best = score;
        slot = s;
      }
    }
    return best;
#endif
  }

  uint64_t advance_clock(uint32_t now_ms) {
    // Widen the wrapping ms clock; a stamp older than the last one seen changes nothing.
    const int32_t step = ms_diff(now_ms, static_cast<uint32_t>(now64_));
    if (step > 0 || !clock_started_) now64_ += static_cast<uint32_t>(now_ms - static_cast<uint32_t>(now64_));
    if (!clock_started_) {
      clock_started_ = true;
      cursor_ = now64_ / kTickMs;
    }
    return now64_ / kTickMs;
  }

  // The tick an entry due at `expires_ms` goes to: after the cursor, within the horizon.
  uint64_t target_tick(uint32_t expires_ms, uint32_t now_ms) {
    const uint64_t now_tick = advance_clock(now_ms);
    int32_t delta = ms_diff(expires_ms, now_ms);
    if (delta < 0) delta = 0;
    uint64_t tick = (now64_ + static_cast<uint64_t>(delta)) / kTickMs;
    if (tick < now_tick) tick = now_tick;
    if (tick <= cursor_) tick = cursor_ + 1;  // never the slot being walked
    if (tick >= cursor_ + kWheelSlots) tick = cursor_ + kWheelSlots - 1;
    return tick;
  }

  void link_timer(uint32_t index, uint64_t tick) {
    const uint32_t slot = static_cast<uint32_t>(tick & (kWheelSlots - 1));
    FlowBody& body = body_of(index);
    body.timer_slot = static_cast<uint16_t>(slot);
    body.timer_prev = kNoEntry;
    body.timer_next = wheel_[slot];
    if (wheel_[slot] != kNoEntry) body_of(wheel_[slot]).timer_prev = index;
    wheel_[slot] = index;
  }

  void unlink_timer(uint32_t index) {
    FlowBody& body = body_of(index);
    if (body.timer_slot == kUnlinked) return;
    if (body.timer_prev != kNoEntry) body_of(body.timer_prev).timer_next = body.timer_next;
    else wheel_[body.timer_slot] = body.timer_next;
    if (body.timer_next != kNoEntry) body_of(body.timer_next).timer_prev = body.timer_prev;
    body.timer_slot = kUnlinked;
    body.timer_next = body.timer_prev = kNoEntry;
  }

  Entry* entries_ = nullptr;
  NatPair4* pairs_ = nullptr;
  FlowBucket* buckets_ = nullptr;
  uint32_t capacity_ = 0;
  uint32_t pair_capacity_ = 0;
  uint32_t bucket_mask_ = 0;
  uint32_t free_head_ = kNoEntry;
  uint32_t free_pair_head_ = kNoEntry;
  uint32_t pair_cursor_ = 0;  // where pair_to_evict() looks next
  // plan_pair_evictions()'s picks, each with the cursor after it and its deadline then.
  struct PlannedEviction {
    uint32_t pair;
    uint32_t cursor_after;
    uint32_t expires;
  };
  static constexpr unsigned kMaxPlanned = 64;
  PlannedEviction planned_[kMaxPlanned];
  unsigned planned_count_ = 0, planned_next_ = 0;
  uint32_t active_ = 0;
  uint32_t pairs_active_ = 0;
  PairObserver pair_observer_ = nullptr;
  void* pair_observer_user_ = nullptr;
  EntryObserver entry_observer_ = nullptr;
  void* entry_observer_user_ = nullptr;
  uint64_t now64_ = 0;
  uint64_t cursor_ = 0;  // next tick to walk
  bool clock_started_ = false;
  uint32_t wheel_[kWheelSlots];
};

using FlowTable4 = FlowTable<FlowEntry4>;
using FlowTable6 = FlowTable<FlowEntry6>;

}  // namespace sluice::flow
