#include "aurora/scheduler/transmission_plan.hpp"

namespace aurora::sched {

const char* order_strategy_name(OrderStrategy strategy) {
  switch (strategy) {
    case OrderStrategy::kMatching: return "matching";
    case OrderStrategy::kMatchingTruncated: return "matching_truncated";
    case OrderStrategy::kAllAtOnce: return "all_at_once";
    case OrderStrategy::kRotation: return "rotation";
    case OrderStrategy::kShortestFirst: return "shortest_first";
    case OrderStrategy::kRandomOrder: return "random_order";
  }
  return "?";
}

int64_t TransmissionPlan::total_bytes() const {
  int64_t sum = 0;
  for (const Transfer& t : transfers) sum += t.bytes;
  return sum;
}

void TransmissionPlan::clear() {
  phases.clear();
  transfers.clear();
  phase_latency_s = lower_bound_s = matching_bound_s = makespan_s = 0;
  candidate_makespan_s.fill(kNotEvaluated);
  strategy = OrderStrategy::kAllAtOnce;
  barrier_between_phases = true;
}

}  // namespace aurora::sched
