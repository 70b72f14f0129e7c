// place_experts: puts E experts (E >= number of GPUs, top-k routing, optional replicas of hot experts)
// onto G GPUs, balancing load against GPU speed, bandwidth and memory.
//
// This is the many-experts-per-GPU generalisation of the paper's one-expert-per-GPU deployment
// (docs/scheduler.md states which guarantees survive). Each GPU's predicted time per step is
//   tokens_on_gpu * (compute_s_per_token / compute_speed + 2 * bytes_per_token / recv_bandwidth)
// (expert compute plus the received halves of dispatch and combine; tokens already count top-k, i.e. a
// token routed to k experts counts once for each). Memory: the experts' bytes plus
// per_gpu_fixed_memory_bytes must fit GpuSpec::memory_bytes (0 = unlimited).
// Algorithm: replicas for experts hotter than the ideal per-GPU share (up to the budget), LPT on
// speed-scaled times with memory feasibility, then move/swap local search. Deterministic.
// Runtime use: route a token for expert e to replica r with probability share_of_replica[e][r]
// (or deterministically, proportionally); prefer a replica on the token's own GPU when there is one.
#pragma once

#include <cstdint>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/scheduler/cluster.hpp"

namespace aurora::sched {

struct ExpertPlacementProblem {
  std::vector<double> expert_tokens;         // E entries: tokens routed to each expert per step (>= 0)
  std::vector<int64_t> expert_memory_bytes;  // E entries, or empty (then 0 each)
  int64_t per_gpu_fixed_memory_bytes = 0;    // shared experts, attention, KV cache reserved on every GPU
  double bytes_per_token = 0;                // activation bytes of one token (hidden * dtype size)
  double compute_s_per_token = 1e-6;         // one expert FFN on one token, on a compute_speed 1.0 GPU
  int max_replicas_per_expert = 1;           // 1 = no replicas
  int max_extra_replicas = 0;                // total replicas beyond one per expert
};

struct ExpertPlacement {
  std::vector<std::vector<int32_t>> gpus_of_expert;   // E lists (primary first); size > 1 for replicated experts
  std::vector<std::vector<double>> share_of_replica;  // same shape; fractions of the expert's tokens, sum 1
  std::vector<std::vector<int32_t>> experts_of_gpu;   // G lists
  std::vector<double> gpu_time_s;                     // predicted per-GPU time per step
  std::vector<int64_t> gpu_memory_bytes;              // used per GPU (fixed part included)
  double max_gpu_time_s = 0;
  double lower_bound_s = 0;  // total work over total capability (no placement can beat it)
};

// Errors (kInvalidArgument, naming the field): sizes or values out of range, or experts that cannot fit
// in memory.
Result<ExpertPlacement> place_experts(const ExpertPlacementProblem& problem, const Cluster& cluster);

// Baseline: each expert on a uniformly random GPU with memory room (no replicas).
Result<ExpertPlacement> place_experts_random(const ExpertPlacementProblem& problem, const Cluster& cluster,
                                             uint64_t seed);

}  // namespace aurora::sched
