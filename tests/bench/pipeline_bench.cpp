// Micro-benchmark of the pipelines on one core, in one process: frames are copied into
// fresh mbufs (as net_pcap's RX does), run through a pipeline and sent to net_null
// (which frees them), a burst at a time. Prints cycles and, under callgrind, the
// instruction counts tell where they go; the numbers are comparable between builds
// because the harness is the same.
//
//   sluice-pipeline-bench [--flows N] [--bursts N] [--mode harness|parse|router|conntrack|firewall|nat]
//                         [--capacity N]   (flow table; default the power of two >= 2 x flows,
//                                           smaller makes every packet a new flow that evicts one;
//                                           nat: the NAT pair pool, the plain one as for conntrack)
#include <arpa/inet.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <rte_bus_vdev.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "config/config.h"
#include "firewall/policy.h"
#include "flow/flow_context.h"
#include "l3/icmp.h"
#include "l3/rcu.h"
#include "nat/nat_context.h"
#include "nat/policy.h"
#include "pipeline/packet_meta.h"
#include "pipeline/pipeline.h"
#include "router/router.h"

using namespace sluice;

namespace {

constexpr uint16_t kBurst = 32;
constexpr uint16_t kFrameLen = 60;  // 64 B on the wire with the FCS

const char* kRouterConfig = R"({"eal": {"lcores": "0-1"}, "ports": [
    {"name": "west", "device": "net_null0", "ipv4": ["192.168.0.1/24"], "zone": "inside", "pipeline": ["parse", "route"]},
    {"name": "east", "device": "net_null1", "ipv4": ["192.168.1.1/24"], "zone": "outside", "pipeline": ["parse", "route"]}],
  "routes": [{"prefix": "198.18.0.0/16", "via": "192.168.1.2"}],
  "neighbours": [{"address": "192.168.1.2", "mac": "02:00:00:00:00:02"}]})";

// Flow i: UDP from 10.0.0.0 + i, port 1024 + i % 64512, to 198.18.1.(1 + i % 254):9 (genpcap.py's).
std::vector<uint8_t> frame(uint32_t i, const rte_ether_addr& dst_mac) {
  std::vector<uint8_t> f(kFrameLen, 0);
  std::memcpy(f.data(), dst_mac.addr_bytes, 6);
  const uint8_t src_mac[6] = {0x02, 0, 0, 0, 0, 0x10};
  std::memcpy(f.data() + 6, src_mac, 6);
  f[12] = 0x08;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  const uint16_t total = kFrameLen - 14;
  ip[2] = total >> 8;
  ip[3] = total & 0xff;
  ip[6] = 0x40;
  ip[8] = 64;
  ip[9] = 17;
  const uint32_t src = htonl(0x0a000000 + i), dst = htonl(0xc6120100 + 1 + i % 254);
  std::memcpy(ip + 12, &src, 4);
  std::memcpy(ip + 16, &dst, 4);
  uint16_t ck = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip));
  std::memcpy(ip + 10, &ck, 2);
  uint8_t* udp = ip + 20;
  const uint16_t sport = htons(static_cast<uint16_t>(1024 + i % 64512)), dport = htons(9), ulen = htons(total - 20);
  std::memcpy(udp, &sport, 2);
  std::memcpy(udp + 2, &dport, 2);
  std::memcpy(udp + 4, &ulen, 2);
  return f;
}

bool start_null_port(const char* name, rte_mempool* pool, uint16_t& port_id) {
  if (rte_vdev_init(name, "no-rx=1") != 0 || rte_eth_dev_get_port_by_name(name, &port_id) != 0) return false;
  rte_eth_conf conf{};
  if (rte_eth_dev_configure(port_id, 1, 1, &conf) != 0) return false;
  if (rte_eth_rx_queue_setup(port_id, 0, 256, SOCKET_ID_ANY, nullptr, pool) != 0) return false;
  if (rte_eth_tx_queue_setup(port_id, 0, 256, SOCKET_ID_ANY, nullptr) != 0) return false;
  return rte_eth_dev_start(port_id) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t flows = 1, bursts = 2000000, capacity_arg = 0;
  std::string mode = "router";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--flows") flows = static_cast<uint32_t>(std::strtoul(argv[i + 1], nullptr, 0));
    else if (k == "--bursts") bursts = static_cast<uint32_t>(std::strtoul(argv[i + 1], nullptr, 0));
    else if (k == "--mode") mode = argv[i + 1];
    else if (k == "--capacity") capacity_arg = static_cast<uint32_t>(std::strtoul(argv[i + 1], nullptr, 0));
  }
  const char* eal[] = {"bench", "--no-huge", "--no-pci", "--no-shconf", "-m", "1024", "-l", "0", "--log-level=*:warning"};
  if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) return 1;
  if (!pipeline::register_packet_meta()) return 1;
  rte_mempool* pool = rte_pktmbuf_pool_create("bench", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  uint16_t west = 0, east = 0;
  if (!pool || !start_null_port("net_null0", pool, west) || !start_null_port("net_null1", pool, east)) {
    std::fprintf(stderr, "bench: cannot set up ports\n");
    return 1;
  }
  std::string text = kRouterConfig;
  const bool translated = mode == "nat";
  const bool tracked = mode == "conntrack" || mode == "firewall" || translated;
  if (tracked) {
    const std::string stages = translated ? "\"pipeline\": [\"parse\", \"conntrack\", \"nat\", \"route\"]"
                                          : "\"pipeline\": [\"parse\", \"conntrack\", \"route\"]";
    for (std::string from = "\"pipeline\": [\"parse\", \"route\"]"; text.find(from) != std::string::npos;)
      text.replace(text.find(from), from.size(), stages);
    uint32_t capacity = 1024;
    while (capacity < 2 * flows) capacity <<= 1;
    if (capacity_arg) capacity = capacity_arg;
    // NAT: plain entries only for the moment between conntrack and nat; pairs hold the flows.
    std::string extra = ", \"conntrack\": {\"capacity\": " + std::to_string(translated ? 1024 : capacity) +
                        ", \"capacity_ipv6\": 0}";
    if (translated)
      extra += ", \"nat\": {\"capacity\": " + std::to_string(capacity) +
               ", \"snat\": [{\"name\": \"bench\", \"out_port\": \"east\", \"masquerade\": true}]}";
    if (mode == "firewall")
      extra += R"(, "firewall": {"default_policy": "drop", "policies": [{"from": "inside", "to": "outside", "action": "accept"}],
                   "rules": [{"protocol": "tcp", "dst_ports": 22, "action": "reject"}]})";
    text.insert(text.rfind('}'), extra);
  }
  config::ParseResult parsed = config::parse_config_text(text, "bench.json");
  if (!parsed.ok()) {
    for (auto& e : parsed.errors) std::fprintf(stderr, "%s\n", e.c_str());
    return 1;
  }
  const config::Config cfg = *parsed.config;
  std::map<std::string, uint16_t> ids = {{"west", west}, {"east", east}};
  l3::RouteTable::PortMacs macs{};
  rte_eth_macaddr_get(west, &macs[west]);
  rte_eth_macaddr_get(east, &macs[east]);
  l3::Qsbr qsbr(1);
  router::Router router(cfg, pool, 1, &qsbr);
  std::string error;
  if (!router.start(ids, macs, error)) {
    std::fprintf(stderr, "bench: %s\n", error.c_str());
    return 1;
  }
  pipeline::TxQueue tx_west(west, 0), tx_east(east, 0);
  pipeline::TxQueues queues{};
  queues[west] = &tx_west;
  queues[east] = &tx_east;
  pipeline::L3Context l3 = router.context_for(0);
  std::unique_ptr<flow::FlowContext> flows_ctx;
  l3::Published<firewall::Policy> policy(qsbr);
  l3::TokenBucket bucket(1000, 50, rte_get_tsc_hz());
  pipeline::ConntrackContext ct;
  nat::AddressRegistry nat_addresses;
  l3::Published<nat::Policy> nat_policy(qsbr);
  std::unique_ptr<nat::NatContext> nat_ctx;
  pipeline::NatStageContext nat_stage;
  if (tracked) {
    flows_ctx = flow::FlowContext::create(0, cfg.conntrack.capacity, 0, SOCKET_ID_ANY, error,
                                          translated ? cfg.nat.capacity : 0);
    auto p = firewall::Policy::build(cfg, ids, 1, error);
    if (!flows_ctx || !p) {
      std::fprintf(stderr, "bench: %s\n", error.c_str());
      return 1;
    }
    policy.publish(std::move(p));
    ct = {flows_ctx.get(), &policy, &bucket};
  }
  if (translated) {
    auto np = nat::Policy::build(cfg, ids, 1, 1, nat_addresses, error);
    if (np) nat_ctx = nat::NatContext::create(0, 1, cfg.nat, *flows_ctx, SOCKET_ID_ANY, error);
    if (!np || !nat_ctx) {
      std::fprintf(stderr, "bench: %s\n", error.c_str());
      return 1;
    }
    nat_policy.publish(std::move(np));
    nat_stage = {nat_ctx.get(), &nat_policy};
  }
  auto pipe = pipeline::build_pipeline(*cfg.find_port("west"), ids, &queues, &l3, tracked ? &ct : nullptr, nullptr,
                                       translated ? &nat_stage : nullptr);

  std::vector<std::vector<uint8_t>> frames;
  for (uint32_t i = 0; i < flows; ++i) frames.push_back(frame(i, macs[west]));

  pipeline::Burst burst;
  uint64_t packets = 0, next = 0;
  uint64_t start = 0;
  const uint64_t tsc_per_ms = rte_get_tsc_hz() / 1000;
  const uint32_t warmup = std::min<uint32_t>(bursts / 10 + flows / kBurst + 1, bursts);
  for (uint32_t b = 0; b < bursts + warmup; ++b) {
    if (b == warmup) {
      start = rte_rdtsc();
      packets = 0;
    }
    if (rte_pktmbuf_alloc_bulk(pool, burst.pkts, kBurst) != 0) return 2;
    for (uint16_t i = 0; i < kBurst; ++i) {
      rte_mbuf* m = burst.pkts[i];
      const std::vector<uint8_t>& f = frames[next];
      next = next + 1 == flows ? 0 : next + 1;
      std::memcpy(rte_pktmbuf_mtod(m, void*), f.data(), kFrameLen);
      m->data_len = m->pkt_len = kFrameLen;
    }
    burst.count = kBurst;
    if (flows_ctx) flows_ctx->set_now(static_cast<uint32_t>(rte_rdtsc() / tsc_per_ms));
    if (mode == "harness") {
      for (uint16_t i = 0; i < burst.count; ++i) pipeline::meta(burst.pkts[i]).out_port = east;
      for (uint16_t i = 0; i < burst.count; ++i) tx_east.push(burst.pkts[i]);
      burst.count = 0;
    } else if (mode == "parse") {
      pipe->stages()[0]->process(burst);
      for (uint16_t i = 0; i < burst.count; ++i) tx_east.push(burst.pkts[i]);
      burst.count = 0;
    } else {
      pipe->run(burst);
    }
    packets += kBurst;
    burst.free_discards();
    tx_west.flush();
    tx_east.flush();
    if (flows_ctx) flows_ctx->service();
  }
  const uint64_t cycles = rte_rdtsc() - start;
  uint64_t drops = 0;
  std::string reasons;
  for (const auto& s : pipe->stages()) {
    drops += s->counters().drops_total();
    for (size_t r = 0; r < kDropCount; ++r)
      if (const uint64_t d = s->counters().drops[r].get())
        reasons += " " + s->name() + ":" + std::string(kDropInfo[r].name) + "=" + std::to_string(d);
  }
  drops += tx_east.counters().drops_total();
  std::printf("mode %s flows %u: %.1f cycles/packet over %lu packets, drops %lu%s%s%s\n", mode.c_str(), flows,
              double(cycles) / double(packets), packets, drops, reasons.c_str(),
              flows_ctx ? (", flows " + std::to_string(flows_ctx->active())).c_str() : "",
              nat_ctx ? (", translated " + std::to_string(flows_ctx->table4().pairs_active())).c_str() : "");
  return 0;
}
