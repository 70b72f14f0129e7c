// Internal: exact search over one-expert-per-GPU deployments of one layer (exhaustive_deployment).
#pragma once

#include <cstdint>
#include <vector>

#include "aurora/scheduler/cluster.hpp"
#include "aurora/scheduler/model_stats.hpp"
#include "aurora/scheduler/simulator.hpp"

namespace aurora::sched::detail {

struct BranchAndBoundResult {
  std::vector<std::vector<int32_t>> gpu_of;  // [model][expert]
  double cost_s = 0;
  uint64_t nodes = 0;
};

// layers: one (exclusive) or two (colocated) models' stats for the layer, experts form, n == GPUs.
// Minimises the layer's simulated time with matching-bound all-to-alls (same recurrences as simulate_layer).
// Starts from an incumbent (gpu_of, cost); GPUs with identical specs are interchangeable.
BranchAndBoundResult branch_and_bound(const std::vector<const LayerStats*>& layers, const Cluster& cluster,
                                      DeploymentMode mode, const std::vector<std::vector<int32_t>>& incumbent,
                                      double incumbent_cost_s);

}  // namespace aurora::sched::detail
