// Expert placement from the Aurora planner: for each MoE layer, the experts go to ranks so that
// each rank's predicted time (expert compute plus the dispatch and combine bytes it receives) is
// balanced, given each expert's load in tokens per step.
//
// plan_expert_placement: one model on identical ranks (aurora::sched::place_experts).
// plan_model_placements: the scheduler's deployment (aurora::sched::plan_deployment) for one model
// alone (exclusive) or two models sharing the ranks (colocated: both models' experts are placed
// together, so that each rank's combined expert work is balanced), on ranks that may differ in
// compute speed and bandwidth (the heterogeneous planner: measured speeds go in RankSpec).
#pragma once

#include <vector>

#include "aurora/config/model_config.hpp"
#include "executor/expert_placement.hpp"

namespace aurora::runtime {

struct PlacementInputs {
  // [layer][expert]: tokens routed to each expert (any time unit); empty or all zero = uniform.
  std::vector<std::vector<double>> expert_load;
  double link_gbps = 400.0;
};

Result<ExpertPlacement> plan_expert_placement(const config::ModelConfig& config, int32_t num_ranks,
                                              const PlacementInputs& inputs);

// One rank as the planner sees it (measured on the device, or 1.0 / link speed when identical).
struct RankSpec {
  double compute_speed = 1.0;  // relative expert throughput (1.0 = the reference GPU)
  double link_gbps = 400.0;    // send and receive bandwidth of its all-to-all link
};

// One placement per model (same order as configs). `loads` may be empty or have one entry per
// model. Colocated needs exactly two models. Errors name the model and layer.
Result<std::vector<ExpertPlacement>> plan_model_placements(const std::vector<const config::ModelConfig*>& configs,
                                                           const std::vector<PlacementInputs>& loads,
                                                           const std::vector<RankSpec>& ranks, bool colocated);

}  // namespace aurora::runtime
