#include "aurora/scheduler/simulator.hpp"

#include <catch2/catch.hpp>

#include "aurora/scheduler/deployment_planner.hpp"
#include "instances.hpp"

using namespace aurora::sched;

namespace {
// Two experts on two GPUs at 1 byte/s: shard 0 sends 10 bytes to expert 1, shard 1 sends 30 to expert 0.
ModelStats tiny(const std::string& name, int64_t a, int64_t b, double gate, double per_byte, double agg) {
  ModelStats m;
  m.name = name;
  LayerStats l;
  l.num_shards = l.num_experts = 2;
  l.traffic = {5, a, b, 7};
  l.gate_s = gate;
  l.expert_s_per_byte = per_byte;
  l.aggregate_s = agg;
  m.layers.push_back(l);
  return m;
}
CommModel bound() {
  CommModel c;
  c.kind = CommModel::Kind::kMatchingBound;
  return c;
}
}  // namespace

TEST_CASE("exclusive layer: gate + dispatch + experts + combine + aggregation, maxima over GPUs") {
  const Cluster cluster = Cluster::homogeneous(2, 8e-9);  // 1 byte/s
  std::vector<ModelStats> models{tiny("a", 10, 30, 2, 0.5, 3)};
  const Deployment d = identity_deployment(models, cluster, DeploymentMode::kExclusive);
  const SimulationResult r = simulate(models, d, cluster, DeploymentMode::kExclusive, bound());
  // dispatch: GPU1 sends 30 (GPU0 receives 30) -> 30 s; experts: GPU0 processes 5+30=35 bytes -> 17.5 s,
  // GPU1 processes 10+7=17 -> 8.5 s; combine: 30 s.
  CHECK(r.inference_time_s == Approx(2 + 30 + 17.5 + 30 + 3));
  // Compute over GPUs: gates 2+2, experts 17.5+8.5, aggregation 3+3.
  CHECK(r.compute_time_s == Approx(36));
  CHECK(r.gpu_utilization == Approx(36 / (2 * r.inference_time_s)));
  // The planned model with zero latency meets the same bound.
  CommModel planned;
  CHECK(simulate(models, d, cluster, DeploymentMode::kExclusive, planned).inference_time_s ==
        Approx(r.inference_time_s));
  // Half speed on GPU 0 doubles its compute.
  Cluster slow = cluster;
  slow.gpus[0].compute_speed = 0.5;
  CHECK(simulate(models, d, slow, DeploymentMode::kExclusive, bound()).inference_time_s ==
        Approx(4 + 30 + 35 + 30 + 6));
}

TEST_CASE("colocated layer follows the staggered timeline (Table 2)") {
  const Cluster cluster = Cluster::homogeneous(2, 8e-9);
  std::vector<ModelStats> models{tiny("a", 10, 30, 2, 0.5, 3), tiny("b", 4, 4, 1, 1.0, 1)};
  const Deployment d = identity_deployment(models, cluster, DeploymentMode::kColocated);
  const double t = simulate(models, d, cluster, DeploymentMode::kColocated, bound()).inference_time_s;
  // By hand: Gb=1, Na=30, Fa=17.5, Nb=4 (aggregate Na+Nb: 34), Fb=max(5+4,4+7)=11, Ca=30,
  // Na+Nb+Ca: GPU0 sends 10+4+30=44 -> 44; Cb=4; all four: 48; Aa=3, Ab=1, Ga=2.
  const double e_fa = std::max(1.0, 30.0) + 17.5;  // 47.5
  const double e_nb = std::max(1.0 + 4, 34.0);     // 34
  const double e_fb = std::max(e_fa, e_nb) + 11;   // 58.5
  const double e_ca = std::max(e_fa + 30, 44.0);   // 77.5
  const double e_aa = std::max(e_fb, e_ca) + 3;    // 80.5
  const double e_cb = std::max(e_fb + 4, 48.0);    // 62.5
  const double e_ab = std::max(e_aa, e_cb) + 1;    // 81.5
  CHECK(t == Approx(e_ab + 2));
}

TEST_CASE("colocated plans name both models; exclusive plans one per model") {
  std::mt19937_64 rng(3);
  const Cluster cluster = Cluster::homogeneous(8, 100);
  std::vector<ModelStats> models{testing::random_model(rng, "a", 8, 2, 1.2),
                                 testing::random_model(rng, "b", 8, 2, 0.9)};
  CommModel c;
  c.keep_plans = true;
  const Deployment d = identity_deployment(models, cluster, DeploymentMode::kColocated);
  const SimulationResult co = simulate(models, d, cluster, DeploymentMode::kColocated, c);
  REQUIRE(co.layers.size() == 2);
  REQUIRE(co.layers[0].dispatch.size() == 1);
  bool saw[2] = {false, false};
  for (const Transfer& t : co.layers[0].dispatch[0].transfers) saw[t.model] = true;
  CHECK((saw[0] && saw[1]));
  const SimulationResult ex = simulate(models, d, cluster, DeploymentMode::kExclusive, c);
  REQUIRE(ex.layers[1].dispatch.size() == 2);
  for (const Transfer& t : ex.layers[1].dispatch[1].transfers) CHECK(t.model == 1);
}
