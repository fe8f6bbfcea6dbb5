// The running appliance: EAL, the mbuf pool, ports and worker lcores, built from one
// validated Config. Owned by the control thread (main lcore); workers only see the
// Worker object launched on their lcore.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <rte_mempool.h>

#include "config/config.h"
#include "router/router.h"
#include "runtime/port.h"
#include "runtime/worker.h"

namespace sluice::runtime {

struct MempoolInfo {
  rte_mempool* pool = nullptr;
  unsigned size = 0;
};

class Runtime {
 public:
  explicit Runtime(const config::Config& config) : config_(config) {}
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // rte_eal_init with these arguments (argv[0] included).
  bool init_eal(const std::vector<std::string>& eal_args, std::string& error);
  // Mempool, ports (configured and started), workers with their pipelines.
  bool setup(std::string& error);
  // Starts every worker on its lcore.
  void launch();
  // Control thread, about once a second.
  void poll_links();
  // Control thread, every loop (about 1 ms): the router's slow path and timers.
  void poll_router() {
    if (router_) router_->poll();
  }
  const router::Router* router() const { return router_.get(); }
  // Asks workers to stop and waits for them; their TX buffers are flushed on return.
  void stop_workers();
  // Stops and closes ports, then checks that every mbuf is back in its pool.
  // Returns false (and logs which pool) on a leak.
  bool shutdown();

  const config::Config& config() const { return config_; }
  const std::vector<std::unique_ptr<Port>>& ports() const { return ports_; }
  const std::vector<std::unique_ptr<Worker>>& workers() const { return workers_; }
  const std::vector<MempoolInfo>& mempools() const { return mempools_; }
  uint64_t start_tsc() const { return start_tsc_; }

  // The mbuf count `auto` sizing picks: every descriptor, every worker's TX buffers
  // and burst, every lcore cache, rounded up to 2^k - 1 (the mempool's best size).
  static unsigned auto_mbuf_count(const config::Config& config);

 private:
  const config::Config& config_;
  bool eal_ready_ = false;
  bool launched_ = false;
  uint64_t start_tsc_ = 0;
  std::vector<std::unique_ptr<Port>> ports_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<MempoolInfo> mempools_;
  std::unique_ptr<router::Router> router_;
};

}  // namespace sluice::runtime
