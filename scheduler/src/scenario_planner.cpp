#include "aurora/scheduler/scenario_planner.hpp"

#include "aurora/config/check.hpp"

namespace aurora::sched {

Cluster cluster_from_scenario(const config::Scenario& scenario) {
  Cluster c;
  for (const config::ScenarioGpu& g : scenario.gpus)
    c.gpus.push_back(GpuSpec{gbps_to_bytes_per_s(g.send_gbps), gbps_to_bytes_per_s(g.recv_gbps), g.compute_speed,
                             static_cast<int64_t>(g.memory_gb * 1e9)});
  return c;
}

std::vector<ModelStats> models_from_scenario(const config::Scenario& scenario) {
  std::vector<ModelStats> out;
  for (const config::ScenarioModel& m : scenario.models) {
    ModelStats ms;
    ms.name = m.name;
    ms.shard_home = m.traffic_form == config::TrafficForm::kExperts ? ShardHome::kWithExpert : ShardHome::kOnGpu;
    ms.expert_memory_bytes = static_cast<int64_t>(m.expert_memory_mb * 1e6);
    for (const config::ScenarioLayer& l : m.layers) {
      LayerStats ls;
      ls.num_shards = static_cast<int>(l.traffic_bytes.size());
      ls.num_experts = m.num_experts;
      for (const auto& row : l.traffic_bytes) ls.traffic.insert(ls.traffic.end(), row.begin(), row.end());
      ls.gate_s = l.gate_us * 1e-6;
      ls.aggregate_s = l.aggregate_us * 1e-6;
      ls.expert_s_per_byte = l.expert_us_per_mb * 1e-6 / 1e6;
      ms.layers.push_back(std::move(ls));
    }
    out.push_back(std::move(ms));
  }
  return out;
}

namespace {

SimulationResult run(const ScenarioPlan& p, const Deployment& d, const AllToAllOptions& order, bool keep_plans) {
  CommModel comm;
  comm.kind = CommModel::Kind::kPlanned;
  comm.order = order;
  comm.keep_plans = keep_plans;
  return simulate(p.models, d, p.cluster, p.mode, comm);
}

AllToAllOptions forced(const AllToAllOptions& base, OrderStrategy s) {
  AllToAllOptions o = base;
  o.policy = ChoicePolicy::kForce;
  o.forced_strategy = s;
  return o;
}

ComparisonRow row(std::string name, std::string deployment, std::string order, const SimulationResult& r) {
  ComparisonRow out;
  out.name = std::move(name);
  out.deployment = std::move(deployment);
  out.order = std::move(order);
  out.inference_time_s = r.inference_time_s;
  out.all_to_all_time_s = r.all_to_all_time_s;
  out.gpu_utilization = r.gpu_utilization;
  return out;
}

// Mean over seeds of a random baseline.
template <class MakeDeployment>
ComparisonRow random_row(const ScenarioPlan& p, uint64_t seed, std::string name, std::string deployment,
                         const AllToAllOptions& order, std::string order_name, MakeDeployment&& make) {
  SimulationResult mean;
  for (int k = 0; k < kRandomBaselineRuns; ++k) {
    AllToAllOptions o = order;
    o.seed = seed * 1000003 + static_cast<uint64_t>(k);
    const SimulationResult r = run(p, make(o.seed), o, false);
    mean.inference_time_s += r.inference_time_s / kRandomBaselineRuns;
    mean.all_to_all_time_s += r.all_to_all_time_s / kRandomBaselineRuns;
    mean.gpu_utilization += r.gpu_utilization / kRandomBaselineRuns;
  }
  return row(std::move(name), std::move(deployment), std::move(order_name), mean);
}

}  // namespace

Result<ScenarioPlan> plan_scenario(const config::Scenario& scenario, const ScenarioPlanOptions& options) {
  ScenarioPlan p;
  p.name = scenario.name;
  p.mode = scenario.mode == config::ScenarioMode::kExclusive ? DeploymentMode::kExclusive : DeploymentMode::kColocated;
  p.cluster = cluster_from_scenario(scenario);
  p.models = models_from_scenario(scenario);
  p.order.phase_latency_s = scenario.phase_latency_us * 1e-6;
  p.order.seed = scenario.seed;
  p.order.exact_fluid = true;  // offline planning: cost all-at-once phases with the exact fluid model

  DeploymentOptions dopt;
  dopt.mode = p.mode;
  dopt.max_replicas_per_expert = scenario.max_replicas_per_expert;
  dopt.max_extra_replicas = scenario.max_extra_replicas;
  dopt.seed = scenario.seed;
  auto deployment = plan_deployment(p.models, p.cluster, dopt);
  if (!deployment) return deployment.error();
  p.deployment = std::move(*deployment);
  p.simulated = run(p, p.deployment, p.order, true);

  if (options.exhaustive) {
    auto opt = exhaustive_deployment(p.models, p.cluster, p.mode);
    if (!opt) return opt.error();
    p.optimum = std::move(*opt);
    p.optimum_simulated = run(p, p.optimum->deployment, p.order, false);
  }

  if (options.compare) {
    const AllToAllOptions& o = p.order;
    auto add = [&](ComparisonRow r) {
      r.speedup = p.simulated.inference_time_s > 0 ? r.inference_time_s / p.simulated.inference_time_s : 1.0;
      p.comparison.push_back(std::move(r));
    };
    add(row("aurora", "aurora", "aurora", p.simulated));
    if (p.optimum_simulated) add(row("optimum", "optimum", "aurora", *p.optimum_simulated));
    // Transmission-order baselines on Aurora's deployment.
    for (OrderStrategy s : {OrderStrategy::kAllAtOnce, OrderStrategy::kShortestFirst, OrderStrategy::kRotation}) {
      add(row(std::string("aurora_deployment+") + order_strategy_name(s), "aurora", order_strategy_name(s),
              run(p, p.deployment, forced(o, s), false)));
    }
    add(random_row(p, scenario.seed, "aurora_deployment+random_order", "aurora", forced(o, OrderStrategy::kRandomOrder),
                   "random_order", [&](uint64_t) { return p.deployment; }));
    // Deployment baselines, with NCCL's all-at-once exchange.
    const AllToAllOptions nccl = forced(o, OrderStrategy::kAllAtOnce);
    add(row("identity+all_at_once", "identity", "all_at_once",
            run(p, identity_deployment(p.models, p.cluster, p.mode), nccl, false)));
    const char* random_name = p.mode == DeploymentMode::kExclusive ? "random_placement" : "random_colocation";
    add(random_row(p, scenario.seed, std::string(random_name) + "+all_at_once", random_name, nccl, "all_at_once",
                   [&](uint64_t seed) { return random_deployment(p.models, p.cluster, p.mode, seed); }));
    if (p.mode == DeploymentMode::kColocated && p.models.size() == 2) {
      // Aurora restricted to cross-model pairing (the paper's colocation), for transparency.
      DeploymentOptions pairing = dopt;
      pairing.consider_packing = false;
      if (auto d = plan_deployment(p.models, p.cluster, pairing); d.ok())
        add(row("aurora_pairing_only", "aurora_pairing", "aurora", run(p, *d, o, false)));
      add(row("lina+all_at_once", "lina", "all_at_once", run(p, lina_deployment(p.models, p.cluster), nccl, false)));
    }
  }
  return p;
}

}  // namespace aurora::sched
