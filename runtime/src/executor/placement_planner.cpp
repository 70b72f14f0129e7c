#include "executor/placement_planner.hpp"

#include <algorithm>

#include "aurora/scheduler/deployment_planner.hpp"
#include "aurora/scheduler/placement.hpp"

namespace aurora::runtime {

namespace {

// One SwiGLU expert on one token: 3 matrices of hidden x intermediate, 2 flops per weight, at an
// assumed 100 Tflop/s (only ratios matter for balancing).
double expert_seconds_per_token(const config::ModelConfig& c) {
  return 6.0 * c.hidden_size * c.moe_intermediate_size / 100e12;
}

std::vector<double> layer_load(const config::ModelConfig& c, const PlacementInputs& inputs, int32_t l) {
  std::vector<double> load(static_cast<size_t>(c.num_experts), 1.0);
  if (static_cast<size_t>(l) < inputs.expert_load.size()) {
    const auto& given = inputs.expert_load[static_cast<size_t>(l)];
    double total = 0.0;
    for (double v : given) total += v;
    if (total > 0.0 && given.size() == load.size()) load = given;
  }
  return load;
}

}  // namespace

Result<ExpertPlacement> plan_expert_placement(const config::ModelConfig& c, int32_t num_ranks,
                                              const PlacementInputs& inputs) {
  const sched::Cluster cluster = sched::Cluster::homogeneous(num_ranks, inputs.link_gbps);
  std::vector<std::vector<int32_t>> owners(static_cast<size_t>(c.num_layers));
  for (int32_t l = 0; l < c.num_layers; ++l) {
    if (!c.layer_is_moe[static_cast<size_t>(l)]) continue;
    sched::ExpertPlacementProblem problem;
    problem.expert_tokens = layer_load(c, inputs, l);
    problem.bytes_per_token = static_cast<double>(c.token_bytes());
    problem.compute_s_per_token = expert_seconds_per_token(c);
    auto placed = sched::place_experts(problem, cluster);
    if (!placed) return placed.error();
    auto& owner = owners[static_cast<size_t>(l)];
    owner.assign(static_cast<size_t>(c.num_experts), 0);
    for (int32_t e = 0; e < c.num_experts; ++e)
      owner[static_cast<size_t>(e)] = placed->gpus_of_expert[static_cast<size_t>(e)].front();
  }
  return make_placement(owners, num_ranks, c.num_experts);
}

Result<std::vector<ExpertPlacement>> plan_model_placements(const std::vector<const config::ModelConfig*>& configs,
                                                           const std::vector<PlacementInputs>& loads,
                                                           const std::vector<RankSpec>& ranks, bool colocated) {
  if (configs.empty()) return Error::invalid("models", "must not be empty");
  if (colocated && configs.size() != 2) {
    return Error::invalid("models", "colocation takes exactly 2 models, got " + std::to_string(configs.size()));
  }
  if (ranks.empty()) return Error::invalid("ranks", "must not be empty");
  const int32_t n = static_cast<int32_t>(ranks.size());
  sched::Cluster cluster;
  for (size_t r = 0; r < ranks.size(); ++r) {
    if (!(ranks[r].compute_speed > 0.0) || !(ranks[r].link_gbps > 0.0)) {
      return Error::invalid("ranks[" + std::to_string(r) + "]", "compute_speed and link_gbps must be > 0");
    }
    cluster.gpus.push_back(sched::GpuSpec::from_gbps(ranks[r].link_gbps, ranks[r].compute_speed));
  }
  // Statistics in the planner's gpu form: every rank sends an equal share of each expert's tokens.
  size_t num_layers = 0;
  for (const auto* c : configs) num_layers = std::max(num_layers, static_cast<size_t>(c->num_layers));
  std::vector<sched::ModelStats> stats;
  for (size_t m = 0; m < configs.size(); ++m) {
    const config::ModelConfig& c = *configs[m];
    const PlacementInputs inputs = m < loads.size() ? loads[m] : PlacementInputs{};
    sched::ModelStats ms;
    ms.name = "model" + std::to_string(m);
    ms.shard_home = sched::ShardHome::kOnGpu;
    ms.expert_memory_bytes = int64_t{3} * c.hidden_size * c.moe_intermediate_size * 2;
    const double token_bytes = static_cast<double>(c.token_bytes());
    for (size_t l = 0; l < num_layers; ++l) {
      sched::LayerStats ls;
      ls.num_shards = n;
      const bool moe = static_cast<int32_t>(l) < c.num_layers && c.layer_is_moe[l];
      if (moe) {
        ls.num_experts = c.num_experts;
        const std::vector<double> load = layer_load(c, inputs, static_cast<int32_t>(l));
        double mean = 0.0;
        for (double v : load) mean += v;
        mean = std::max(1e-30, mean / static_cast<double>(load.size()));
        ls.traffic.assign(static_cast<size_t>(n) * c.num_experts, 0);
        for (int32_t s = 0; s < n; ++s) {
          for (int32_t e = 0; e < c.num_experts; ++e) {
            // Loads are relative: 64 tokens per expert on average, each rank sending an equal share.
            const double tokens = load[static_cast<size_t>(e)] * 64.0 / mean;
            ls.traffic[static_cast<size_t>(s) * c.num_experts + e] =
                static_cast<int64_t>(tokens * token_bytes / n + 0.5);
          }
        }
        ls.expert_s_per_byte = expert_seconds_per_token(c) / token_bytes;
      }
      ms.layers.push_back(std::move(ls));
    }
    stats.push_back(std::move(ms));
  }
  sched::DeploymentOptions options;
  options.mode = colocated ? sched::DeploymentMode::kColocated : sched::DeploymentMode::kExclusive;
  auto deployment = sched::plan_deployment(stats, cluster, options);
  if (!deployment) return deployment.error();
  std::vector<ExpertPlacement> out;
  for (size_t m = 0; m < configs.size(); ++m) {
    const config::ModelConfig& c = *configs[m];
    std::vector<std::vector<int32_t>> owners(static_cast<size_t>(c.num_layers));
    for (int32_t l = 0; l < c.num_layers; ++l) {
      if (!c.layer_is_moe[static_cast<size_t>(l)]) continue;
      const auto& experts = deployment->models[m].experts[static_cast<size_t>(l)];
      auto& owner = owners[static_cast<size_t>(l)];
      owner.resize(static_cast<size_t>(c.num_experts));
      for (int32_t e = 0; e < c.num_experts; ++e)
        owner[static_cast<size_t>(e)] = experts[static_cast<size_t>(e)].front().gpu;
    }
    auto placement = make_placement(owners, n, c.num_experts);
    if (!placement) {
      Error e = placement.error();
      e.message = "model " + std::to_string(m) + ": " + e.message;
      return e;
    }
    out.push_back(std::move(*placement));
  }
  return out;
}

}  // namespace aurora::runtime
