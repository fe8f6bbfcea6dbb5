// l3::Published<T> under a reader that never stops: a reader on lcore 1 takes get(),
// reads the object through and reports a quiescent state, round after round, while the
// main thread publishes new objects. Every swap is a real grace period: the old object
// must stay whole until the reader has left it, be destroyed exactly once after that,
// and synchronize() must return with the reader still running (not because it went
// offline). Then the same for the router's RouteTable, with a Worker running a real
// parse+route pipeline between two ring ports: no packet is lost or altered while the
// table is republished under it.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rte_cycles.h>
#include <rte_ip.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_ring.h>

#include "config/config.h"
#include "l3/icmp.h"
#include "l3/neighbour_table.h"
#include "l3/rcu.h"
#include "l3/route_table.h"
#include "l3_support.h"
#include "pipeline/pipeline.h"
#include "pipeline/route.h"
#include "runtime/worker.h"
#include "test_support.h"

namespace sluice::l3 {
namespace {

constexpr unsigned kReaderLcore = 1;
constexpr unsigned kReaderId = 0;  // the Qsbr thread id of the one reader
constexpr unsigned kPublications = 200;

bool wait_for(const std::function<bool()>& done, std::chrono::seconds limit = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

// A published object that can tell whether it is read whole and alive: its words follow
// from its id and add up to its checksum, and its destructor overwrites them with poison
// and counts itself. Objects come from a static arena that delete does not give back,
// so a reader that still holds a destroyed object reads the poison (defined behaviour,
// every word is read and written atomically) rather than whatever malloc reused it for.
class Canary {
 public:
  static constexpr unsigned kMaxObjects = kPublications + 1;
  static constexpr size_t kWords = 512;  // 4 KiB: many cache lines, a read takes a while
  static constexpr uint64_t kAlive = 0xa11e'a11e'a11e'a11eull;
  static constexpr uint64_t kPoison = 0xdead'dead'dead'deadull;

  explicit Canary(uint32_t id) : id_(id) {
    uint64_t sum = 0;
    for (size_t i = 0; i < kWords; ++i) {
      uint64_t w = word_for(id, i);
      __atomic_store_n(&words_[i], w, __ATOMIC_RELAXED);
      sum += w;
    }
    __atomic_store_n(&checksum_, sum, __ATOMIC_RELAXED);
    __atomic_store_n(&magic_, kAlive, __ATOMIC_RELAXED);
    constructed_.fetch_add(1, std::memory_order_relaxed);
  }
  ~Canary() {
    __atomic_store_n(&magic_, kPoison, __ATOMIC_RELAXED);
    for (auto& w : words_) __atomic_store_n(&w, kPoison, __ATOMIC_RELAXED);
    __atomic_store_n(&checksum_, kPoison, __ATOMIC_RELAXED);
    destroyed_[id_ < kMaxObjects ? id_ : 0].fetch_add(1, std::memory_order_relaxed);
  }
  Canary(const Canary&) = delete;
  Canary& operator=(const Canary&) = delete;

  // Reads every word: true when the object is alive and not torn.
  bool intact() const {
    if (__atomic_load_n(&magic_, __ATOMIC_RELAXED) != kAlive) return false;
    uint64_t sum = 0;
    for (size_t i = 0; i < kWords; ++i) {
      uint64_t w = __atomic_load_n(&words_[i], __ATOMIC_RELAXED);
      if (w != word_for(id_, i)) return false;
      sum += w;
    }
    return sum == __atomic_load_n(&checksum_, __ATOMIC_RELAXED) && __atomic_load_n(&magic_, __ATOMIC_RELAXED) == kAlive;
  }
  uint32_t id() const { return id_; }

  static void* operator new(size_t size) {
    unsigned slot = next_slot_.fetch_add(1, std::memory_order_relaxed);
    if (size > sizeof(Slot) || slot >= kArenaSlots) throw std::bad_alloc();
    return &arena_[slot];
  }
  static void operator delete(void*) {}  // the arena keeps the (poisoned) memory

  static void reset() {
    next_slot_ = 0;
    constructed_ = 0;
    for (auto& d : destroyed_) d = 0;
  }
  static unsigned constructed() { return constructed_.load(); }
  static unsigned destroyed(uint32_t id) { return destroyed_[id].load(); }

 private:
  static uint64_t word_for(uint32_t id, size_t i) {
    uint64_t x = (uint64_t(id) << 32 | i) + 0x9e37'79b9'7f4a'7c15ull;  // splitmix64
    x = (x ^ (x >> 30)) * 0xbf58'476d'1ce4'e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d0'49bb'1331'11ebull;
    return x ^ (x >> 31);
  }

  uint32_t id_;
  uint64_t magic_ = 0;
  uint64_t checksum_ = 0;
  uint64_t words_[kWords];

  struct alignas(64) Slot {
    unsigned char bytes[sizeof(uint64_t) * (kWords + 4)];
  };
  static constexpr unsigned kArenaSlots = kMaxObjects + 8;
  static inline Slot arena_[kArenaSlots];
  static inline std::atomic<unsigned> next_slot_{0};
  static inline std::atomic<unsigned> constructed_{0};
  static inline std::array<std::atomic<unsigned>, kMaxObjects> destroyed_{};
};

// What the reader lcore does and saw. Section = from get() to the quiescent report.
struct Reader {
  Qsbr* qsbr = nullptr;
  const Published<Canary>* published = nullptr;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> started{0};   // sections begun (after get())
  std::atomic<uint64_t> finished{0};  // sections ended (just before quiescent())
  std::atomic<uint64_t> torn{0};      // a held object was dead or not whole
  std::atomic<uint64_t> went_back{0};  // get() returned an older object than before
  std::atomic<uint64_t> null_reads{0};
  std::atomic<uint64_t> outlived{0};  // a newer object was published while this one was held
  std::atomic<uint32_t> newest_seen{0};

  static int run(void* arg) {
    auto& r = *static_cast<Reader*>(arg);
    r.qsbr->online(kReaderId);
    uint32_t last = 0;
    uint64_t round = 0;
    while (!r.stop.load(std::memory_order_relaxed)) {
      const Canary* c = r.published->get();
      r.started.fetch_add(1, std::memory_order_acq_rel);
      if (c == nullptr) {
        r.null_reads.fetch_add(1, std::memory_order_relaxed);
      } else {
        bool whole = c->intact();
        // Hold it as a worker holds a table for a burst (longer now and then), then read
        // it again: a writer that freed it too early has poisoned it by now.
        rte_delay_us_block(round % 16 == 0 ? 100 : 2 + round % 8 * 4);
        whole = c->intact() && whole;
        if (!whole) r.torn.fetch_add(1, std::memory_order_relaxed);
        if (r.published->get() != c) r.outlived.fetch_add(1, std::memory_order_relaxed);
        if (c->id() < last) r.went_back.fetch_add(1, std::memory_order_relaxed);
        last = c->id();
        r.newest_seen.store(last, std::memory_order_relaxed);
      }
      r.finished.fetch_add(1, std::memory_order_release);
      r.qsbr->quiescent(kReaderId);  // holds no pointer past here
      ++round;
    }
    r.qsbr->offline(kReaderId);
    return 0;
  }
};

class RcuPublishTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(rte_lcore_is_enabled(kReaderLcore));
    ASSERT_EQ(rte_eal_get_lcore_state(kReaderLcore), WAIT) << "lcore 1 is busy: a previous test did not stop it";
  }
};

TEST_F(RcuPublishTest, ReaderNeverSeesATornOrFreedObjectAndEachOldOneDiesOnce) {
  Canary::reset();
  Qsbr qsbr(1);
  unsigned publications_during_a_read = 0;
  {
    Published<Canary> published(qsbr);
    published.publish(std::make_unique<Canary>(0));
    Reader reader;
    reader.qsbr = &qsbr;
    reader.published = &published;
    ASSERT_EQ(rte_eal_remote_launch(Reader::run, &reader, kReaderLcore), 0);
    ASSERT_TRUE(wait_for([&] { return reader.finished.load() >= 100; })) << "the reader does not run";

    for (uint32_t id = 1; id <= kPublications; ++id) {
      const uint64_t finished_before = reader.finished.load(std::memory_order_acquire);
      const uint64_t started_before = reader.started.load(std::memory_order_acquire);
      published.publish(std::make_unique<Canary>(id));
      const uint64_t finished_after = reader.finished.load(std::memory_order_acquire);
      // Every section that may have taken the old object has ended before it was freed.
      EXPECT_GE(finished_after, started_before) << "publication " << id << " returned inside a read of the old object";
      if (started_before > finished_before) ++publications_during_a_read;
      EXPECT_EQ(Canary::destroyed(id - 1), 1u) << "the object publication " << id << " replaced";
      EXPECT_EQ(Canary::destroyed(id), 0u) << "the object just published";
      EXPECT_EQ(rte_eal_get_lcore_state(kReaderLcore), RUNNING) << "the reader stopped";
    }
    // The reader is still online and running after 200 grace periods: it takes the newest
    // object and keeps completing sections.
    const uint64_t finished_end = reader.finished.load();
    EXPECT_TRUE(wait_for([&] { return reader.newest_seen.load() == kPublications; })) << reader.newest_seen.load();
    EXPECT_TRUE(wait_for([&] { return reader.finished.load() > finished_end + 10; }));
    reader.stop.store(true);
    EXPECT_EQ(rte_eal_wait_lcore(kReaderLcore), 0);

    EXPECT_EQ(reader.torn.load(), 0u) << "the reader held a dead or half-written object";
    EXPECT_EQ(reader.went_back.load(), 0u) << "get() went back to an older object";
    EXPECT_EQ(reader.null_reads.load(), 0u);
    EXPECT_GT(reader.outlived.load(), 0u) << "no object was replaced while the reader held it: the test proves nothing";
    EXPECT_GT(publications_during_a_read, 0u) << "no publication began while the reader was inside a read";
    EXPECT_EQ(Canary::destroyed(kPublications), 0u) << "the current object lives as long as Published";
    std::printf("[          ] %u of %u publications began during a read; the reader held an object while a newer "
                "one was published %llu times, in %llu sections\n",
                publications_during_a_read, kPublications, static_cast<unsigned long long>(reader.outlived.load()),
                static_cast<unsigned long long>(reader.finished.load()));
  }
  EXPECT_EQ(Canary::constructed(), kPublications + 1);
  for (uint32_t id = 0; id <= kPublications; ++id) EXPECT_EQ(Canary::destroyed(id), 1u) << "object " << id;
}

// ---- The route table under a Worker running parse + route between two ring ports ----

using test::ether;
using test::ipv4_frame;
using test::kIngressMac;
using test::Mac;
using test::mac_at;
using test::RingPort;

constexpr Mac kEastMac = {0x02, 0, 0, 0, 0x0e, 0x01};
constexpr Mac kGatewayMac = {0x02, 0, 0, 0, 0x0e, 0x02};  // 10.2.0.2
constexpr size_t kL3 = sizeof(net::EthernetHeader);
constexpr unsigned kTablePublications = 60;
constexpr unsigned kPacketsPerPublication = 96;  // in flight across each swap
constexpr unsigned kMaxInFlight = 256;           // of the 511 mbufs

// IPv4 only: each table's DIR-24-8 FIB takes ~34 MiB and two exist during a swap.
const char* kRouterConfig = R"({"eal": {"lcores": "0-1"}, "ports": [
    {"name": "west", "device": "net_ring0", "ipv4": ["10.1.0.1/24"], "pipeline": ["parse", "route"]},
    {"name": "east", "device": "net_ring1", "ipv4": ["10.2.0.1/24"], "pipeline": ["parse", "route"]}],
  "routes": [{"prefix": "10.9.0.0/16", "via": "10.2.0.2"}]})";

class RouteRepublishTest : public test::MbufTest {
 protected:
  void SetUp() override {
    test::MbufTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_EQ(rte_eal_get_lcore_state(kReaderLcore), WAIT) << "lcore 1 is busy: a previous test did not stop it";
    static unsigned serial = 0;
    punt_ring_ = rte_ring_create(("rcu_punt_" + std::to_string(serial++)).c_str(), 256, SOCKET_ID_ANY,
                                 RING_F_SP_ENQ | RING_F_SC_DEQ);
    ASSERT_NE(punt_ring_, nullptr);
  }
  void TearDown() override {
    if (punt_ring_) {
      void* m;
      while (rte_ring_dequeue(punt_ring_, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
      rte_ring_free(punt_ring_);
    }
    test::MbufTest::TearDown();
  }
  rte_ring* punt_ring_ = nullptr;
};

TEST_F(RouteRepublishTest, WorkerLosesNoPacketWhileTheRouteTableIsRepublished) {
  RingPort west(pool_), east(pool_);
  ASSERT_TRUE(west.ok() && east.ok());
  config::ParseResult parsed = config::parse_config_text(kRouterConfig, "rcu_publish.json");
  ASSERT_TRUE(parsed.ok()) << ::testing::PrintToString(parsed.errors);
  const config::Config& cfg = *parsed.config;
  const RouteTable::PortIds ids = {{"west", west.port_id()}, {"east", east.port_id()}};
  RouteTable::PortMacs macs{};
  macs[west.port_id()] = ether(kIngressMac);
  macs[east.port_id()] = ether(kEastMac);

  Qsbr qsbr(1);
  Published<RouteTable> routes(qsbr);
  config::NeighbourSettings settings;
  settings.capacity = 64;
  NeighbourTable neighbours(settings, qsbr);
  auto* gateway = neighbours.create(NeighbourKey::of(east.port_id(), *net::parse_ip("10.2.0.2")), 0);
  ASSERT_NE(gateway, nullptr);
  neighbours.update(*gateway, NeighbourState::Static, ether(kGatewayMac), 0);
  // Two tables with the same routes that reach the gateway two ways: its neighbour
  // position compiled in (as Router::start pins it), or a hash lookup per packet.
  auto pin = [&](uint16_t port, const net::IpAddr& gw) -> int32_t {
    auto* e = neighbours.find(NeighbourKey::of(port, gw));
    return e ? e->position : -1;
  };
  auto build = [&](unsigned generation) {
    std::string error;
    auto table = generation % 2 ? RouteTable::build(cfg, ids, macs, error)
                                : RouteTable::build(cfg, ids, macs, error, pin);
    EXPECT_NE(table, nullptr) << error;
    return table;
  };
  routes.publish(build(0));
  ASSERT_NE(routes.get(), nullptr);

  TokenBucket bucket(1000, 50, rte_get_tsc_hz());
  pipeline::L3Context context{&routes, &neighbours, punt_ring_, &bucket};
  runtime::Worker worker(kReaderLcore, 32);
  worker.attach_rcu(&qsbr, kReaderId);
  worker.add_tx_queue(west.port_id(), 0);
  worker.add_tx_queue(east.port_id(), 0);
  worker.add_rx_queue(west.port_id(), 0, pipeline::build_pipeline(cfg.ports[0], ids, &worker.tx_by_port(), &context));
  worker.add_rx_queue(east.port_id(), 0, pipeline::build_pipeline(cfg.ports[1], ids, &worker.tx_by_port(), &context));
  ASSERT_EQ(rte_eal_remote_launch(runtime::Worker::launch, &worker, kReaderLcore), 0);

  // Frames from 10.1.0.10 to 10.9.x.y, numbered in the IPv4 id (and the address).
  uint32_t injected = 0, received = 0, altered = 0, out_of_order = 0;
  auto inject = [&](unsigned n) {
    std::vector<rte_mbuf*> pkts;
    for (unsigned i = 0; i < n && injected + pkts.size() - received < kMaxInFlight; ++i) {
      uint32_t seq = injected + static_cast<uint32_t>(pkts.size());
      std::string dst = "10.9." + std::to_string(1 + seq / 250 % 250) + "." + std::to_string(1 + seq % 250);
      rte_mbuf* m = make_mbuf(ipv4_frame({.dst = dst.c_str(), .ttl = 64, .id = uint16_t(seq)}));
      if (m == nullptr) break;
      pkts.push_back(m);
    }
    unsigned accepted = west.inject(pkts.data(), static_cast<unsigned>(pkts.size()));
    for (size_t i = accepted; i < pkts.size(); ++i) rte_pktmbuf_free(pkts[i]);
    injected += accepted;
  };
  auto drain = [&] {
    std::vector<rte_mbuf*> out = east.take_sent();
    for (rte_mbuf* m : out) {
      const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
      const uint8_t* ip = f + kL3;
      bool ok = m->pkt_len == m->data_len && mac_at(f) == kGatewayMac && mac_at(f + 6) == kEastMac &&
                ip[8] == 63 && rte_raw_cksum(ip, 20) == 0xffff && ip[16] == 10 && ip[17] == 9;
      if (!ok) ++altered;
      if (test::get16(ip + 4) != uint16_t(received)) ++out_of_order;
      ++received;
    }
    test::free_all(out);
  };

  for (unsigned generation = 1; generation <= kTablePublications; ++generation) {
    auto next = build(generation);  // the slow part (tens of MB zeroed), with traffic still flowing
    if (next == nullptr) break;
    inject(kPacketsPerPublication);  // so packets are in the worker's hands across the swap
    routes.publish(std::move(next));
    drain();
  }
  const bool all_back = wait_for([&] {
    drain();
    return received == injected;
  });
  worker.stop();
  EXPECT_EQ(rte_eal_wait_lcore(kReaderLcore), 0);
  drain();

  EXPECT_TRUE(all_back) << received << " of " << injected << " packets came out of east";
  EXPECT_GE(injected, kTablePublications * kPacketsPerPublication / 2) << "too little traffic to prove anything";
  EXPECT_EQ(received, injected);
  EXPECT_EQ(altered, 0u) << "forwarded frames not as the route table says";
  EXPECT_EQ(out_of_order, 0u);
  EXPECT_EQ(west.sent_count(), 0u) << "no ICMP error goes back";
  EXPECT_EQ(rte_ring_count(punt_ring_), 0u) << "nothing was punted";
  const auto& stages = worker.pipelines()[0]->stages();
  ASSERT_EQ(stages.size(), 3u);
  EXPECT_EQ(stages[1]->name(), "route");
  for (const auto& stage : stages) EXPECT_EQ(stage->counters().drops_total(), 0u) << stage->name();
  pipeline::NamedCounters counters;
  stages[1]->read_counters(counters);
  for (const auto& [name, value] : counters) {
    if (name == "ipv4_forwarded") {
      EXPECT_EQ(value, injected);
    } else if (name == "neighbour_misses" || name == "route_misses" || name == "punted") {
      EXPECT_EQ(value, 0u) << name;
    }
  }
  std::printf("[          ] %u packets forwarded across %u route table publications\n", received, kTablePublications);
}

}  // namespace
}  // namespace sluice::l3
