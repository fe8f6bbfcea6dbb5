#include "l3/rcu.h"

#include <new>

#include <rte_malloc.h>

namespace sluice::l3 {

Qsbr::Qsbr(unsigned max_threads) {
  size_t size = rte_rcu_qsbr_get_memsize(max_threads);
  v_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("sluice_qsbr", size, RTE_CACHE_LINE_SIZE));
  if (v_ == nullptr || rte_rcu_qsbr_init(v_, max_threads) != 0) throw std::bad_alloc();
}

Qsbr::~Qsbr() { rte_free(v_); }

}  // namespace sluice::l3
