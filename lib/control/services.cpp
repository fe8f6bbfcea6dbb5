#include "control/services.h"

namespace sluice::control {

nlohmann::json services_json(const runtime::Runtime& runtime) {
  const runtime::LoadBalancer* lb = runtime.load_balancer();
  if (!lb) return nullptr;
  return lb->services_json();
}

}  // namespace sluice::control
