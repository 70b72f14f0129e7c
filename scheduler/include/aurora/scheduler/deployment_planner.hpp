// Deployment algorithms: where each expert lives (Aurora §4-§7 plus baselines and an exhaustive optimum).
//
// One expert per GPU per model (experts form, num_experts == number of GPUs):
//  - exclusive, homogeneous: identity (Thm 4.1: only the order matters);
//  - exclusive, heterogeneous: experts by load onto GPUs by capability (Thm 5.1), then swap search;
//  - colocated, homogeneous: pair the models' experts: sort when every expert sends what it receives
//    (Thm 6.2), else bottleneck perfect matching (threshold search + Hopcroft-Karp);
//  - colocated, heterogeneous: the paper's two bottleneck matchings, then local search (pair swaps, GPU
//    swaps, expert swaps) under the full cost model;
//  - colocated, either: Lina-style same-model packing is kept instead when it is predicted faster
//    (options.consider_packing), so Aurora never returns a deployment slower than that baseline.
// Otherwise (many experts per GPU, gpu-form traffic, replicas): place_experts per layer, balancing load
// against GPU speed, bandwidth and memory (placement.hpp).
// Search objective: simulate() with matching-bound all-to-all times (latency-free; see docs/scheduler.md).
// Deterministic given the seed.
#pragma once

#include <cstdint>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/scheduler/cluster.hpp"
#include "aurora/scheduler/deployment.hpp"
#include "aurora/scheduler/model_stats.hpp"
#include "aurora/scheduler/simulator.hpp"

namespace aurora::sched {

struct DeploymentOptions {
  DeploymentMode mode = DeploymentMode::kExclusive;
  bool local_search = true;
  // Colocated, one expert per GPU per model: also consider Lina-style same-model packing (each model on its
  // own half of the GPUs) and keep it when the search objective says it is faster than the best pairing.
  bool consider_packing = true;
  int max_replicas_per_expert = 1;  // many-experts placement only
  int max_extra_replicas = 0;
  uint64_t seed = 0;
};

// Aurora's deployment. Errors: models that do not fit in memory, colocated models with different layer
// counts, shapes that do not match the cluster.
Result<Deployment> plan_deployment(const std::vector<ModelStats>& models, const Cluster& cluster,
                                   const DeploymentOptions& options);

// Baselines (one expert per GPU per model in experts form; placement baselines otherwise).
Deployment identity_deployment(const std::vector<ModelStats>& models, const Cluster& cluster, DeploymentMode mode);
// Exclusive: random GPU per expert (RGA). Colocated: random pairing and random GPUs (REC / RGA+REC).
Deployment random_deployment(const std::vector<ModelStats>& models, const Cluster& cluster, DeploymentMode mode,
                             uint64_t seed);
// Colocated, Lina-style packing: within each model, hottest with coldest expert on one GPU; model a on
// the first half of the GPUs (the faster half when heterogeneous), model b on the second half.
Deployment lina_deployment(const std::vector<ModelStats>& models, const Cluster& cluster);

// Per-layer search objective: simulated inference time with matching-bound all-to-alls.
double deployment_cost_s(const std::vector<ModelStats>& models, const Deployment& deployment, const Cluster& cluster,
                         DeploymentMode mode);

struct ExhaustiveResult {
  Deployment deployment;
  double cost_s = 0;   // deployment_cost_s of the optimum
  uint64_t nodes = 0;  // search nodes visited (branch and bound)
};
// Optimum of deployment_cost_s over all one-expert-per-GPU-per-model deployments (per layer, GPUs of
// identical spec interchangeable; same-model packing is outside this space). Experts form only, n <= 8
// GPUs. Errors otherwise.
Result<ExhaustiveResult> exhaustive_deployment(const std::vector<ModelStats>& models, const Cluster& cluster,
                                               DeploymentMode mode);

}  // namespace aurora::sched
