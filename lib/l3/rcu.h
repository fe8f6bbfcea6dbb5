// Quiescent-state RCU between the control thread (writer) and the workers (readers),
// on DPDK's rte_rcu_qsbr. Workers report a quiescent state once per poll round, when
// they hold no pointer into a published table; the control thread swaps a pointer,
// waits for every online worker to report once, and only then frees the old table.
#pragma once

#include <atomic>
#include <memory>

#include <rte_rcu_qsbr.h>

namespace sluice::l3 {

class Qsbr {
 public:
  explicit Qsbr(unsigned max_threads);
  ~Qsbr();
  Qsbr(const Qsbr&) = delete;
  Qsbr& operator=(const Qsbr&) = delete;

  // Worker side (thread id = worker index).
  void online(unsigned thread_id) {
    rte_rcu_qsbr_thread_register(v_, thread_id);
    rte_rcu_qsbr_thread_online(v_, thread_id);
  }
  void offline(unsigned thread_id) {
    rte_rcu_qsbr_thread_offline(v_, thread_id);
    rte_rcu_qsbr_thread_unregister(v_, thread_id);
  }
  void quiescent(unsigned thread_id) { rte_rcu_qsbr_quiescent(v_, thread_id); }

  // Control side: returns once every online reader has passed a quiescent state.
  void synchronize() { rte_rcu_qsbr_synchronize(v_, RTE_QSBR_THRID_INVALID); }

 private:
  rte_rcu_qsbr* v_ = nullptr;
};

// One immutable T the workers read and the control thread replaces.
template <typename T>
class Published {
 public:
  explicit Published(Qsbr& qsbr) : qsbr_(qsbr) {}
  ~Published() { delete current_.load(std::memory_order_relaxed); }

  // Readers: valid until the reader's next quiescent state.
  const T* get() const { return current_.load(std::memory_order_acquire); }

  // Writer: publishes `next` and frees the previous table once no reader can hold it.
  void publish(std::unique_ptr<T> next) {
    const T* old = current_.exchange(next.release(), std::memory_order_acq_rel);
    if (old) {
      qsbr_.synchronize();
      delete old;
    }
  }

 private:
  Qsbr& qsbr_;
  std::atomic<const T*> current_{nullptr};
};

}  // namespace sluice::l3
