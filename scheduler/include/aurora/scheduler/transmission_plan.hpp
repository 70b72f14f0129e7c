// TransmissionPlan: the order in which one all-to-all's bytes cross the network, as phases.
//
// Execution contract (what the runtime's communicator does with a plan):
//  - barrier_between_phases == true (matching, truncated matching, rotation, all-at-once): run the
//    phases one after another; phase k is one grouped send/recv (e.g. one ncclGroupStart/End) of
//    phase_transfers(k), and phase k+1 starts when every transfer of phase k has finished.
//  - barrier_between_phases == false (shortest-first, random order): each GPU sends its own
//    transfers in phase order, one at a time, starting the next as soon as the previous finished;
//    receivers accept from anyone at any time.
// In plans with strategy kMatching, kMatchingTruncated (except its last, all-at-once phase) and
// kRotation, every GPU sends to at most one GPU and receives from at most one GPU per phase.
// A transfer may be split over several phases; the bytes of all pieces of (src, dst, model) add up
// to the traffic matrix entry. Diagonal (local) traffic never appears.
// Storage is flat (transfers of phase k are a contiguous range) so that planning every decode step
// reuses two vectors instead of allocating per phase.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace aurora::sched {

enum class OrderStrategy : uint8_t {
  kMatching,           // Aurora: pad + perfect-matching (Birkhoff-von Neumann) phases; meets the bound
  kMatchingTruncated,  // Aurora: the largest matching phases, then the rest all at once (fewer phases)
  kAllAtOnce,          // baseline: one grouped send/recv of everything, fair sharing at each port (NCCL)
  kRotation,           // baseline: step k, GPU i sends to GPU (i + k) mod n
  kShortestFirst,      // baseline: each GPU sends its transfers smallest first, no barriers (SJF)
  kRandomOrder,        // baseline: each GPU sends its transfers in a random order, no barriers (RCS)
};
constexpr int kNumOrderStrategies = 6;
const char* order_strategy_name(OrderStrategy strategy);  // "matching", "all_at_once", ...

struct Transfer {
  int32_t src_gpu = 0;
  int32_t dst_gpu = 0;
  int64_t bytes = 0;
  int32_t model = 0;  // index of the model whose tokens these are (colocated plans carry two)
};

struct Phase {
  uint32_t first_transfer = 0;  // index into TransmissionPlan::transfers
  uint32_t num_transfers = 0;
  double duration_s = 0;  // predicted by the cost model, phase latency excluded
};

struct TransmissionPlan {
  static constexpr double kNotEvaluated = std::numeric_limits<double>::quiet_NaN();

  OrderStrategy strategy = OrderStrategy::kAllAtOnce;
  bool barrier_between_phases = true;
  std::vector<Phase> phases;
  std::vector<Transfer> transfers;

  double phase_latency_s = 0;   // the latency the plan was costed with
  double lower_bound_s = 0;     // per-port bound: max over GPUs of sent/send_bw and received/recv_bw
  double matching_bound_s = 0;  // best makespan of any one-peer-per-phase plan (no latency); == lower_bound_s
                                // on clusters with uniform bandwidth
  double makespan_s = 0;        // predicted time of this plan: sum of (latency + duration) per phase, or the
                                // stream simulation for barrier-free plans
  // Predicted makespan of every strategy the planner considered, indexed by OrderStrategy; NaN where a
  // strategy was not evaluated (pruned because its lower bound could not beat the chosen plan, or
  // excluded by the options).
  std::array<double, kNumOrderStrategies> candidate_makespan_s{kNotEvaluated, kNotEvaluated, kNotEvaluated,
                                                               kNotEvaluated, kNotEvaluated, kNotEvaluated};

  size_t num_phases() const { return phases.size(); }
  std::span<const Transfer> phase_transfers(size_t k) const {
    return {transfers.data() + phases[k].first_transfer, phases[k].num_transfers};
  }
  int64_t total_bytes() const;
  void clear();  // keeps capacity
};

}  // namespace aurora::sched
