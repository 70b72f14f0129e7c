#include "aurora/scheduler/deployment_planner.hpp"

#include <algorithm>
#include <cstdio>
#include <numeric>

#include <catch2/catch.hpp>

#include "aurora/scheduler/lower_bound.hpp"
#include "aurora/scheduler/matching.hpp"
#include "instances.hpp"

using namespace aurora::sched;
using namespace aurora::sched::testing;

namespace {

// Aggregated dispatch time of a homogeneous colocated layer when a's expert i shares a GPU with b's
// expert pair[i] (the objective of the paper's §6.2), computed from scratch.
double aggregated_dispatch_s(const LayerStats& a, const LayerStats& b, const std::vector<int32_t>& pair,
                             const Cluster& c) {
  const int n = a.num_experts;
  std::vector<int32_t> gpu_of_b(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) gpu_of_b[static_cast<size_t>(pair[static_cast<size_t>(i)])] = i;
  TrafficMatrix t(n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      t(i, j) += a.bytes(i, j);
      t(gpu_of_b[static_cast<size_t>(i)], gpu_of_b[static_cast<size_t>(j)]) += b.bytes(i, j);
    }
  return all_to_all_lower_bound_s(t, c);
}

std::vector<int32_t> pairing_of(const Deployment& d, int layer, int n) {
  std::vector<int32_t> b_on(static_cast<size_t>(n));
  for (int e = 0; e < n; ++e) b_on[static_cast<size_t>(d.models[1].gpu_of(layer, e))] = e;
  std::vector<int32_t> pair(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) pair[static_cast<size_t>(i)] = b_on[static_cast<size_t>(d.models[0].gpu_of(layer, i))];
  return pair;
}

bool is_permutation_deployment(const Deployment& d, int n) {
  for (const ModelDeployment& m : d.models)
    for (const auto& layer : m.experts) {
      std::vector<int> seen(static_cast<size_t>(n), 0);
      for (const auto& reps : layer) {
        if (reps.size() != 1 || reps[0].gpu < 0 || reps[0].gpu >= n) return false;
        ++seen[static_cast<size_t>(reps[0].gpu)];
      }
      if (std::any_of(seen.begin(), seen.end(), [](int k) { return k != 1; })) return false;
    }
  return true;
}

}  // namespace

TEST_CASE("bottleneck matching is the min-max perfect matching (brute force, n <= 7)") {
  std::mt19937_64 rng(1);
  for (int n = 1; n <= 7; ++n)
    for (int r = 0; r < 20; ++r) {
      std::vector<double> w(static_cast<size_t>(n) * n);
      for (double& x : w) x = static_cast<double>(rng() % 50);
      const BottleneckMatching m = bottleneck_perfect_matching(w, n);
      std::vector<int32_t> p(static_cast<size_t>(n));
      std::iota(p.begin(), p.end(), 0);
      double best = 1e300;
      do {
        double worst = 0;
        for (int i = 0; i < n; ++i) worst = std::max(worst, w[static_cast<size_t>(i) * n + p[static_cast<size_t>(i)]]);
        best = std::min(best, worst);
      } while (std::next_permutation(p.begin(), p.end()));
      CHECK(m.bottleneck == best);
      double worst = 0;
      std::vector<int> used(static_cast<size_t>(n), 0);
      for (int i = 0; i < n; ++i) {
        const int j = m.right_of_left[static_cast<size_t>(i)];
        REQUIRE(j >= 0);
        ++used[static_cast<size_t>(j)];
        worst = std::max(worst, w[static_cast<size_t>(i) * n + j]);
      }
      CHECK(worst == best);
      CHECK(std::all_of(used.begin(), used.end(), [](int k) { return k == 1; }));
    }
}

TEST_CASE("colocated homogeneous: Aurora's pairing equals the exhaustive optimum of the aggregated all-to-all") {
  std::mt19937_64 rng(21);
  int instances = 0;
  for (int n : {4, 6, 8}) {
    const Cluster cluster = Cluster::homogeneous(n, 100);
    for (bool symmetric : {true, false}) {  // Case I (sort) and Case II (bottleneck matching)
      for (int r = 0; r < (n == 8 ? 6 : 15); ++r) {
        std::vector<ModelStats> models{random_model(rng, "a", n, 1, 1.3, symmetric),
                                       random_model(rng, "b", n, 1, 0.7, symmetric)};
        DeploymentOptions o;
        o.mode = DeploymentMode::kColocated;
        o.consider_packing = false;  // the pairing space, where the exhaustive search looks
        o.local_search = false;      // the paper's algorithm alone
        auto d = plan_deployment(models, cluster, o);
        REQUIRE(d.ok());
        REQUIRE(is_permutation_deployment(*d, n));
        const double aurora =
            aggregated_dispatch_s(models[0].layers[0], models[1].layers[0], pairing_of(*d, 0, n), cluster);
        std::vector<int32_t> p(static_cast<size_t>(n));
        std::iota(p.begin(), p.end(), 0);
        double best = 1e300;
        do best = std::min(best, aggregated_dispatch_s(models[0].layers[0], models[1].layers[0], p, cluster));
        while (std::next_permutation(p.begin(), p.end()));
        INFO("n=" << n << " symmetric=" << symmetric);
        CHECK(aurora == Approx(best).epsilon(1e-12));
        // And the full deployment (with local search) equals the exhaustive optimum of the simulated time.
        o.local_search = true;
        auto full = plan_deployment(models, cluster, o);
        auto opt = exhaustive_deployment(models, cluster, DeploymentMode::kColocated);
        REQUIRE(opt.ok());
        CHECK(deployment_cost_s(models, *full, cluster, DeploymentMode::kColocated) ==
              Approx(opt->cost_s).epsilon(1e-9));
        ++instances;
      }
    }
  }
  CHECK(instances == 72);
}

TEST_CASE(
    "exclusive: identity is optimal on homogeneous GPUs; Thm 5.1 + swaps is optimal on the paper's heterogeneous "
    "GPUs") {
  std::mt19937_64 rng(31);
  for (bool hetero : {false, true}) {
    const int n = 8;
    const Cluster cluster = hetero ? paper_heterogeneous(n) : Cluster::homogeneous(n, 100);
    for (int r = 0; r < 8; ++r) {
      std::vector<ModelStats> models{random_model(rng, "a", n, 2, 1.2)};
      DeploymentOptions o;
      auto d = plan_deployment(models, cluster, o);
      REQUIRE(d.ok());
      REQUIRE(is_permutation_deployment(*d, n));
      auto opt = exhaustive_deployment(models, cluster, DeploymentMode::kExclusive);
      REQUIRE(opt.ok());
      const double aurora = deployment_cost_s(models, *d, cluster, DeploymentMode::kExclusive);
      CHECK(aurora == Approx(opt->cost_s).epsilon(1e-9));
      CHECK(opt->cost_s <= deployment_cost_s(models, random_deployment(models, cluster, DeploymentMode::kExclusive, r),
                                             cluster, DeploymentMode::kExclusive) *
                               (1 + 1e-12));
    }
  }
}

TEST_CASE("colocated heterogeneous: heuristic / exhaustive optimum ratio (reported)") {
  // Measured on the paper's four GPU types; n = 6 keeps the exhaustive search fast (n = 8: bench/planner).
  std::mt19937_64 rng(41);
  const int n = 6;
  const Cluster cluster = paper_heterogeneous(n);
  double sum_paper = 0, max_paper = 0, sum_aurora = 0, max_aurora = 0;
  const int runs = 12;
  for (int r = 0; r < runs; ++r) {
    std::vector<ModelStats> models{random_model(rng, "a", n, 1, 1.4), random_model(rng, "b", n, 1, 0.8)};
    DeploymentOptions o;
    o.mode = DeploymentMode::kColocated;
    o.consider_packing = false;
    o.local_search = false;
    auto paper = plan_deployment(models, cluster, o);
    o.local_search = true;
    auto aurora = plan_deployment(models, cluster, o);
    auto opt = exhaustive_deployment(models, cluster, DeploymentMode::kColocated);
    REQUIRE((paper.ok() && aurora.ok() && opt.ok()));
    const double rp = deployment_cost_s(models, *paper, cluster, DeploymentMode::kColocated) / opt->cost_s;
    const double ra = deployment_cost_s(models, *aurora, cluster, DeploymentMode::kColocated) / opt->cost_s;
    CHECK(rp >= 1 - 1e-9);
    CHECK(ra >= 1 - 1e-9);
    CHECK(ra <= rp * (1 + 1e-12));  // local search never makes it worse
    sum_paper += rp;
    sum_aurora += ra;
    max_paper = std::max(max_paper, rp);
    max_aurora = std::max(max_aurora, ra);
  }
  std::printf(
      "[colocated heterogeneous, n=%d, %d instances] heuristic/optimum: two-step matchings avg %.4f max %.4f; "
      "with local search avg %.4f max %.4f\n",
      n, runs, sum_paper / runs, max_paper, sum_aurora / runs, max_aurora);
  CHECK(sum_aurora / runs < 1.03);
}

TEST_CASE("colocated: Aurora is never predicted slower than Lina-style packing") {
  std::mt19937_64 rng(71);
  for (bool hetero : {false, true}) {
    const Cluster cluster = hetero ? paper_heterogeneous(8) : Cluster::homogeneous(8, 100);
    for (int r = 0; r < 6; ++r) {
      std::vector<ModelStats> models{random_model(rng, "a", 8, 2, 1.2), random_model(rng, "b", 8, 2, 0.9)};
      DeploymentOptions o;
      o.mode = DeploymentMode::kColocated;
      auto d = plan_deployment(models, cluster, o);
      REQUIRE(d.ok());
      CHECK(deployment_cost_s(models, *d, cluster, o.mode) <=
            deployment_cost_s(models, lina_deployment(models, cluster), cluster, o.mode) * (1 + 1e-12));
    }
  }
}

TEST_CASE("baselines are valid deployments") {
  std::mt19937_64 rng(51);
  const int n = 8;
  const Cluster cluster = paper_heterogeneous(n);
  std::vector<ModelStats> models{random_model(rng, "a", n, 2, 1.2), random_model(rng, "b", n, 2, 0.9)};
  CHECK(is_permutation_deployment(random_deployment(models, cluster, DeploymentMode::kColocated, 3), n));
  CHECK(is_permutation_deployment(identity_deployment(models, cluster, DeploymentMode::kColocated), n));
  const Deployment lina = lina_deployment(models, cluster);
  for (int l = 0; l < 2; ++l) {
    // Model a on the 4 fastest GPUs, model b on the others, two experts each; hottest with coldest.
    std::vector<int> count(static_cast<size_t>(n), 0);
    for (int e = 0; e < n; ++e) {
      CHECK(lina.models[0].gpu_of(l, e) < 4);
      CHECK(lina.models[1].gpu_of(l, e) >= 4);
      ++count[static_cast<size_t>(lina.models[0].gpu_of(l, e))];
      ++count[static_cast<size_t>(lina.models[1].gpu_of(l, e))];
    }
    CHECK(std::all_of(count.begin(), count.end(), [](int k) { return k == 2; }));
    const LayerStats& ls = models[0].layers[static_cast<size_t>(l)];
    int hot = 0, cold = 0;
    for (int e = 0; e < n; ++e) {
      if (ls.expert_bytes(e) > ls.expert_bytes(hot)) hot = e;
      if (ls.expert_bytes(e) < ls.expert_bytes(cold)) cold = e;
    }
    CHECK(lina.models[0].gpu_of(l, hot) == lina.models[0].gpu_of(l, cold));
  }
}

TEST_CASE("deployment errors name the field") {
  std::mt19937_64 rng(61);
  const Cluster cluster = Cluster::homogeneous(4, 100, 1.0, 1000);  // 1000 bytes of memory per GPU
  std::vector<ModelStats> models{random_model(rng, "a", 4, 1, 1.0)};
  models[0].expert_memory_bytes = 600;  // one expert fits, two do not
  DeploymentOptions o;
  CHECK(plan_deployment(models, cluster, o).ok());
  models[0].expert_memory_bytes = 2000;
  auto bad = plan_deployment(models, cluster, o);
  REQUIRE(!bad.ok());
  CHECK(bad.error().field.find("memory") != std::string::npos);
  o.mode = DeploymentMode::kColocated;
  auto one = plan_deployment(models, cluster, o);
  REQUIRE(!one.ok());
  CHECK(one.error().message == "models: colocated mode takes exactly 2 models, got 1");
}
