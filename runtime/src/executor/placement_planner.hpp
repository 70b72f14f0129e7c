// Expert placement from the Aurora planner (aurora::sched::place_experts): for each MoE layer, the
// experts go to ranks so that each rank's predicted time (expert compute plus the dispatch and
// combine bytes it receives) is balanced, given each expert's load in tokens per step.
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

}  // namespace aurora::runtime
