#include "executor/placement_planner.hpp"

#include "aurora/scheduler/placement.hpp"

namespace aurora::runtime {

Result<ExpertPlacement> plan_expert_placement(const config::ModelConfig& c, int32_t num_ranks,
                                              const PlacementInputs& inputs) {
  const sched::Cluster cluster = sched::Cluster::homogeneous(num_ranks, inputs.link_gbps);
  std::vector<std::vector<int32_t>> owners(static_cast<size_t>(c.num_layers));
  for (int32_t l = 0; l < c.num_layers; ++l) {
    if (!c.layer_is_moe[static_cast<size_t>(l)]) continue;
    sched::ExpertPlacementProblem problem;
    problem.expert_tokens.assign(static_cast<size_t>(c.num_experts), 1.0);
    if (static_cast<size_t>(l) < inputs.expert_load.size() && !inputs.expert_load[static_cast<size_t>(l)].empty()) {
      double total = 0.0;
      for (double v : inputs.expert_load[static_cast<size_t>(l)]) total += v;
      if (total > 0.0) problem.expert_tokens = inputs.expert_load[static_cast<size_t>(l)];
    }
    problem.bytes_per_token = static_cast<double>(c.token_bytes());
    // One SwiGLU expert on one token: 3 matrices of hidden x intermediate, 2 flops per weight, at
    // an assumed 100 Tflop/s (only the ratio to the byte term matters for balancing).
    problem.compute_s_per_token = 6.0 * c.hidden_size * c.moe_intermediate_size / 100e12;
    auto placed = sched::place_experts(problem, cluster);
    if (!placed) return placed.error();
    auto& owner = owners[static_cast<size_t>(l)];
    owner.assign(static_cast<size_t>(c.num_experts), 0);
    for (int32_t e = 0; e < c.num_experts; ++e) owner[static_cast<size_t>(e)] = placed->gpus_of_expert[static_cast<size_t>(e)].front();
  }
  return make_placement(owners, num_ranks, c.num_experts);
}

}  // namespace aurora::runtime
