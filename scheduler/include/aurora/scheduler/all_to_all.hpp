// plan_all_to_all: chooses the transmission order of one all-to-all (Aurora §4/§5, extended).
//
// Cost model (one for every strategy, see docs/scheduler.md):
//   barrier plans:       makespan = sum over phases of (phase_latency_s + duration of the phase), where a
//                        phase's duration is the max-min fair-share fluid time of its transfers at the
//                        ports (for a matching phase: its longest transfer at min(send_i, recv_j));
//   barrier-free plans:  fluid simulation of per-GPU send queues, phase_latency_s before each send.
// Policy kBestPredicted evaluates Aurora's matching plans and every baseline (pruning those whose own
// lower bound cannot win) and returns the one with the smallest predicted makespan, so the planner
// never picks a plan that its model predicts to be slower than the best baseline, all-at-once included.
// With phase_latency_s == 0 the matching plan meets matching_lower_bound_s exactly (== the per-port
// bound on uniform-bandwidth clusters).
// Deterministic given options.seed. Not thread-safe: use one AllToAllPlanner per thread; the free
// functions build a temporary planner.
#pragma once

#include <memory>
#include <optional>
#include <span>

#include "aurora/scheduler/cluster.hpp"
#include "aurora/scheduler/traffic.hpp"
#include "aurora/scheduler/transmission_plan.hpp"

namespace aurora::sched {

enum class ChoicePolicy : uint8_t {
  kBestPredicted,  // smallest predicted makespan among all strategies (ties go to the fewer phases)
  kForce,          // exactly options.forced_strategy (for baselines, tests and experiments)
};

struct AllToAllOptions {
  double phase_latency_s = 0;  // fixed cost of each phase (launch + synchronisation)
  ChoicePolicy policy = ChoicePolicy::kBestPredicted;
  OrderStrategy forced_strategy = OrderStrategy::kMatching;  // with ChoicePolicy::kForce
  int max_phases = 0;         // > 0: matching plans keep at most this many phases (the rest goes all at once)
  bool evaluate_all = false;  // fill candidate_makespan_s for every strategy (no pruning, exact fluid model)
  // All-at-once phases of more than 64 transfers are costed with fair-share rates re-allocated at most
  // once per max(phase bound / 128, phase_latency_s / 20) (slightly pessimistic, bounded in
  // docs/scheduler.md) unless exact_fluid is set; exact re-allocates at every flow end,
  // O(flows * (flows + n^2)), ~50 ms at n = 64 (the default: ~2 ms).
  bool exact_fluid = false;
  uint64_t seed = 0;  // random order baseline
};

// Reusable planner: keeps its workspace between calls so that per-step planning allocates nothing once
// warmed up to the largest n seen. The returned reference is valid until the next call.
class AllToAllPlanner {
 public:
  AllToAllPlanner();
  ~AllToAllPlanner();
  AllToAllPlanner(AllToAllPlanner&&) noexcept;
  AllToAllPlanner& operator=(AllToAllPlanner&&) noexcept;

  const TransmissionPlan& plan(const TrafficMatrix& traffic, const Cluster& cluster, const AllToAllOptions& options);
  // Several models' traffic in one all-to-all (colocated mode): phases are planned on the sum and every
  // transfer names its model (index into per_model). All matrices must have the cluster's size.
  const TransmissionPlan& plan_models(std::span<const TrafficMatrix* const> per_model, const Cluster& cluster,
                                      const AllToAllOptions& options);

 private:
  struct Workspace;
  std::unique_ptr<Workspace> ws_;
};

TransmissionPlan plan_all_to_all(const TrafficMatrix& traffic, const Cluster& cluster,
                                 const AllToAllOptions& options = {});

// Predicted makespan of any plan under the cost model above (used to check and compare plans).
double predict_makespan_s(const TransmissionPlan& plan, const Cluster& cluster, double phase_latency_s,
                          bool exact_fluid = true);

// Max-min fair-share fluid time (exact, event-driven) of a set of transfers that all start at time 0 and
// share the ports (what one grouped NCCL send/recv of them takes, latency excluded).
double fair_share_makespan_s(std::span<const Transfer> transfers, const Cluster& cluster);

}  // namespace aurora::sched
