#include "aurora/scheduler/placement.hpp"

#include <algorithm>
#include <numeric>
#include <random>

#include <catch2/catch.hpp>

using namespace aurora::sched;

namespace {
ExpertPlacementProblem zipf_problem(int experts, double skew, uint64_t seed) {
  std::mt19937_64 rng(seed);
  ExpertPlacementProblem p;
  for (int e = 0; e < experts; ++e) p.expert_tokens.push_back(10000.0 / std::pow(e + 1.0, skew));
  std::shuffle(p.expert_tokens.begin(), p.expert_tokens.end(), rng);
  p.bytes_per_token = 4096;
  p.compute_s_per_token = 2e-7;
  return p;
}

void check_consistent(const ExpertPlacement& pl, const ExpertPlacementProblem& p, int gpus) {
  REQUIRE(pl.gpus_of_expert.size() == p.expert_tokens.size());
  REQUIRE(pl.experts_of_gpu.size() == static_cast<size_t>(gpus));
  for (size_t e = 0; e < pl.gpus_of_expert.size(); ++e) {
    REQUIRE(!pl.gpus_of_expert[e].empty());
    const double shares = std::accumulate(pl.share_of_replica[e].begin(), pl.share_of_replica[e].end(), 0.0);
    CHECK(shares == Approx(1.0));
    std::vector<int32_t> g = pl.gpus_of_expert[e];
    std::sort(g.begin(), g.end());
    CHECK(std::adjacent_find(g.begin(), g.end()) == g.end());  // replicas on distinct GPUs
    for (int32_t x : g) {
      const auto& on = pl.experts_of_gpu[static_cast<size_t>(x)];
      CHECK(std::count(on.begin(), on.end(), static_cast<int32_t>(e)) == 1);
    }
  }
  CHECK(pl.max_gpu_time_s >= pl.lower_bound_s * (1 - 1e-12));
}
}  // namespace

TEST_CASE("64 experts on 8 GPUs: balanced within a few percent of the bound") {
  const Cluster cluster = Cluster::homogeneous(8, 400);
  ExpertPlacementProblem p = zipf_problem(64, 0.8, 1);
  auto pl = place_experts(p, cluster);
  REQUIRE(pl.ok());
  check_consistent(*pl, p, 8);
  // No placement beats the balanced bound, nor the hottest expert alone (no replicas here).
  const double per_token = p.compute_s_per_token + 2 * p.bytes_per_token / gbps_to_bytes_per_s(400);
  const double hottest = *std::max_element(p.expert_tokens.begin(), p.expert_tokens.end()) * per_token;
  CHECK(pl->max_gpu_time_s <= std::max(pl->lower_bound_s, hottest) * 1.05);
  auto rnd = place_experts_random(p, cluster, 7);
  REQUIRE(rnd.ok());
  check_consistent(*rnd, p, 8);
  CHECK(pl->max_gpu_time_s < rnd->max_gpu_time_s);
}

TEST_CASE("faster GPUs get more load") {
  Cluster cluster = Cluster::homogeneous(4, 200);
  cluster.gpus[0] = GpuSpec::from_gbps(400, 2.0);
  ExpertPlacementProblem p = zipf_problem(32, 0.5, 2);
  auto pl = place_experts(p, cluster);
  REQUIRE(pl.ok());
  check_consistent(*pl, p, 4);
  auto load = [&](int g) {
    double t = 0;
    for (int32_t e : pl->experts_of_gpu[static_cast<size_t>(g)]) t += p.expert_tokens[static_cast<size_t>(e)];
    return t;
  };
  CHECK(load(0) > 1.5 * load(1));
}

TEST_CASE("a hot expert gets replicas when allowed, and that lowers the maximum") {
  const Cluster cluster = Cluster::homogeneous(8, 400);
  ExpertPlacementProblem p = zipf_problem(16, 2.0, 3);  // the hottest expert alone exceeds the balanced share
  auto single = place_experts(p, cluster);
  p.max_replicas_per_expert = 4;
  p.max_extra_replicas = 6;
  auto replicated = place_experts(p, cluster);
  REQUIRE((single.ok() && replicated.ok()));
  check_consistent(*replicated, p, 8);
  size_t most = 0;
  for (const auto& g : replicated->gpus_of_expert) most = std::max(most, g.size());
  CHECK(most > 1);
  CHECK(replicated->max_gpu_time_s < single->max_gpu_time_s * 0.8);
}

TEST_CASE("memory limits are respected, and an impossible fit is an error naming the field") {
  Cluster cluster = Cluster::homogeneous(4, 100, 1.0, 1000);
  ExpertPlacementProblem p = zipf_problem(8, 1.0, 4);
  p.expert_memory_bytes.assign(8, 400);  // two experts per GPU fit, three do not
  auto pl = place_experts(p, cluster);
  REQUIRE(pl.ok());
  for (int64_t used : pl->gpu_memory_bytes) CHECK(used <= 1000);
  p.expert_memory_bytes.assign(8, 600);
  auto bad = place_experts(p, cluster);
  REQUIRE(!bad.ok());
  CHECK(bad.error().field.rfind("expert_memory_bytes[", 0) == 0);
  p.expert_tokens[3] = -1;
  auto neg = place_experts(p, cluster);
  REQUIRE(!neg.ok());
  CHECK(neg.error().message.rfind("expert_tokens[3]: must be >= 0", 0) == 0);
}
