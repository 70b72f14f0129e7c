// plan_scenario: the whole planner behind `aurora plan`: scenario in, deployment + transmission plans +
// simulation (+ baseline comparison, + exhaustive optimum) out.
//
// Converts config::Scenario into the scheduler's types (cluster, ModelStats), plans Aurora's deployment,
// simulates it with Aurora's transmission orders (keeping the plans), and optionally evaluates every
// baseline (docs/scheduler.md lists them) under the same cost model. Random baselines are averaged over
// kRandomBaselineRuns seeds derived from scenario.seed. Deterministic. Errors name the scenario field.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/config/scenario.hpp"
#include "aurora/scheduler/cluster.hpp"
#include "aurora/scheduler/deployment.hpp"
#include "aurora/scheduler/deployment_planner.hpp"
#include "aurora/scheduler/model_stats.hpp"
#include "aurora/scheduler/simulator.hpp"

namespace aurora::sched {

constexpr int kRandomBaselineRuns = 10;

struct ScenarioPlanOptions {
  bool compare = false;     // evaluate the baselines
  bool exhaustive = false;  // compute the optimum deployment (one expert per GPU per model, n <= 8)
};

struct ComparisonRow {
  std::string name;        // "aurora", "aurora+all_at_once", "random_placement", ...
  std::string deployment;  // "aurora", "identity", "random", "lina", "random_colocation", "optimum"
  std::string order;       // an OrderStrategy name or "aurora"
  double inference_time_s = 0;
  double all_to_all_time_s = 0;
  double gpu_utilization = 0;
  double speedup = 0;  // this row's inference time / Aurora's (> 1: Aurora is faster)
};

struct ScenarioPlan {
  std::string name;
  DeploymentMode mode = DeploymentMode::kExclusive;
  Cluster cluster;
  std::vector<ModelStats> models;
  AllToAllOptions order;       // how transmission plans are chosen (phase latency from the scenario)
  Deployment deployment;       // Aurora's
  SimulationResult simulated;  // Aurora's deployment and orders, plans kept
  std::optional<ExhaustiveResult> optimum;
  std::optional<SimulationResult> optimum_simulated;
  std::vector<ComparisonRow> comparison;  // with options.compare; first row is Aurora
};

Cluster cluster_from_scenario(const config::Scenario& scenario);
std::vector<ModelStats> models_from_scenario(const config::Scenario& scenario);

Result<ScenarioPlan> plan_scenario(const config::Scenario& scenario, const ScenarioPlanOptions& options);

}  // namespace aurora::sched
