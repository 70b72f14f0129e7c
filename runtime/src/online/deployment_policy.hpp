// The online planner's deployment policy: from the live statistics of the served models, a
// candidate expert placement and what the scheduler predicts for it.
//
// The statistics become the scheduler's ModelStats in gpu form (rank s sends traffic[s][e] bytes
// to expert e per step; the measured expert time per row sets the FFN time), the ranks a Cluster
// (link bandwidth, relative compute speeds: heterogeneity-aware). Then:
//  - fresh: sched::plan_deployment from scratch (exclusive, or colocated when two models share the
//    ranks), its ranks relabelled (among ranks of equal speed) to keep as many experts in place as
//    possible: the reference "fresh optimal plan";
//  - incremental: the placement in force improved by single moves and swaps off the slowest rank
//    (few migrations for most of the gain);
//  - the candidate is the one with the larger net benefit (gain over amortize_s minus margin x
//    migration time), fewer moves on ties.
// Predictions are sched::simulate's MoE step time (dispatch, experts, combine of every MoE layer;
// gate and aggregation do not depend on placement and are left out). Layers without traffic keep
// their placement. Pure and deterministic; safe on any thread.
#pragma once

#include <cstdint>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/config/model_config.hpp"
#include "executor/expert_placement.hpp"
#include "online/traffic_window.hpp"

namespace aurora::runtime {

struct PolicyModel {
  const config::ModelConfig* config = nullptr;
  std::vector<std::vector<int32_t>> owners;  // [layer][expert] -> rank, the placement in force (empty: dense)
  WindowStats stats;
};

struct PolicyInput {
  std::vector<PolicyModel> models;
  std::vector<double> rank_speeds;  // relative expert throughput per rank (all 1 = identical)
  double link_gbps = 400.0;
  double phase_latency_s = 5e-6;
  double migration_bytes_per_s = 5e9;  // how fast expert weights move (measured by migrations)
  int64_t bytes_per_weight = 4;        // expert weight element size (float32 on CPU)
  double steps_per_second = 0;         // to turn a per-step gain into seconds saved per second
  double amortize_s = 30.0;
  double cost_margin = 2.0;
  bool colocated = false;  // two models sharing every rank: plan them jointly
};

struct Proposal {
  std::vector<std::vector<std::vector<int32_t>>> owners;  // [model][layer][expert]: the candidate
  double current_s = 0;                                   // MoE step time of the placement in force
  double candidate_s = 0;                                 // of the candidate
  double fresh_s = 0;                                     // of the fresh plan (the reference)
  int64_t moves = 0;                                      // experts the candidate moves
  int64_t fresh_moves = 0;
  int64_t move_bytes = 0;
  double migration_s = 0;      // move_bytes / migration_bytes_per_s
  const char* kind = "fresh";  // "fresh" or "incremental"
};

Result<Proposal> propose_deployment(const PolicyInput& input);

// The MoE step time sched::simulate predicts for `owners` ([model][layer][expert]) on the input's
// statistics and ranks.
double predict_moe_step_s(const PolicyInput& input, const std::vector<std::vector<std::vector<int32_t>>>& owners);

// Rank speeds from measurements: each rank's rows per expert-second over the median, snapped to 1
// within `tolerance` and rounded to 0.05 (noise must not move experts). A rank without rows keeps
// its `previous` speed (all 1 when `previous` does not list every rank).
std::vector<double> measured_rank_speeds(const WindowStats& stats, const std::vector<double>& previous = {},
                                         double tolerance = 0.25);

}  // namespace aurora::runtime
