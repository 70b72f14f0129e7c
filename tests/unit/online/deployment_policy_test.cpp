// The online deployment policy: hot experts are spread, slower ranks get less, an already good
// placement stays (no moves), colocated models are planned together.
#include <catch2/catch.hpp>

#include "online/deployment_policy.hpp"
#include "test_models.hpp"

using namespace aurora;
using namespace aurora::runtime;

namespace {

config::ModelConfig mixtral() { return test::small_config(config::ModelArchitecture::kMixtral); }

std::vector<std::vector<int32_t>> contiguous(const config::ModelConfig& c, int32_t n) {
  std::vector<std::vector<int32_t>> owners(static_cast<size_t>(c.num_layers));
  for (int32_t l = 0; l < c.num_layers; ++l) {
    if (!c.layer_is_moe[static_cast<size_t>(l)]) continue;
    for (int32_t e = 0; e < c.num_experts; ++e) owners[static_cast<size_t>(l)].push_back(e * n / c.num_experts);
  }
  return owners;
}

// Every rank sends `per_expert[e]` tokens per step to expert e, in every MoE layer.
WindowStats stats_for(const config::ModelConfig& c, int32_t n, const std::vector<double>& per_expert) {
  WindowStats s;
  s.num_layers = c.num_layers;
  s.num_ranks = n;
  s.num_experts = c.num_experts;
  s.steps = 100;
  s.steps_per_second = 50;
  s.expert_seconds_per_row = 2e-6;
  s.rank_expert.resize(static_cast<size_t>(c.num_layers));
  for (int32_t l = 0; l < c.num_layers; ++l) {
    for (int32_t r = 0; r < n; ++r) {
      for (int32_t e = 0; e < c.num_experts; ++e)
        s.rank_expert[static_cast<size_t>(l)].push_back(per_expert[static_cast<size_t>(e)]);
    }
  }
  s.ranks.resize(static_cast<size_t>(n));
  s.layers.resize(static_cast<size_t>(c.num_layers));
  return s;
}

PolicyInput input_for(const config::ModelConfig& c, int32_t n, const std::vector<double>& load) {
  PolicyInput in;
  in.models.push_back(PolicyModel{&c, contiguous(c, n), stats_for(c, n, load)});
  in.rank_speeds.assign(static_cast<size_t>(n), 1.0);
  in.steps_per_second = 50;
  return in;
}

double max_rank_load(const std::vector<int32_t>& owner, const std::vector<double>& load,
                     const std::vector<double>& speed) {
  std::vector<double> t(speed.size(), 0.0);
  for (size_t e = 0; e < owner.size(); ++e)
    t[static_cast<size_t>(owner[e])] += load[e] / speed[static_cast<size_t>(owner[e])];
  return *std::max_element(t.begin(), t.end());
}

}  // namespace

TEST_CASE("two hot experts on one rank are pulled apart", "[online][policy]") {
  const auto c = mixtral();                                     // 8 experts, 3 MoE layers
  const std::vector<double> load = {40, 40, 2, 2, 2, 2, 2, 2};  // experts 0 and 1: both on rank 0
  PolicyInput in = input_for(c, 4, load);
  auto p = propose_deployment(in);
  REQUIRE(p.ok());
  CHECK(p->candidate_s < 0.7 * p->current_s);
  CHECK(p->fresh_s <= p->candidate_s * (1 + 1e-12));
  CHECK(p->moves > 0);
  CHECK(p->move_bytes == p->moves * 3 * c.hidden_size * c.moe_intermediate_size * 4);
  for (const auto& owner : p->owners[0]) {
    REQUIRE(owner.size() == 8);
    CHECK(owner[0] != owner[1]);
    CHECK(max_rank_load(owner, load, in.rank_speeds) == Approx(40 + 2 * 0).margin(4.01));
  }
  // The prediction is the simulator's for these owners.
  CHECK(predict_moe_step_s(in, p->owners) == Approx(p->candidate_s));
}

TEST_CASE("a placement that is already balanced stays where it is", "[online][policy]") {
  const auto c = mixtral();
  PolicyInput in = input_for(c, 4, std::vector<double>(8, 10.0));
  auto p = propose_deployment(in);
  REQUIRE(p.ok());
  CHECK(p->candidate_s == Approx(p->current_s));
  CHECK(p->moves == 0);
  // A plan from scratch is no faster (it would move experts for nothing: the incremental
  // candidate, which moves none, wins on net benefit).
  CHECK(p->fresh_s == Approx(p->current_s));
  CHECK(std::string(p->kind) == "incremental");
}

TEST_CASE("a slower rank is given less expert work", "[online][policy]") {
  const auto c = mixtral();
  PolicyInput in = input_for(c, 4, std::vector<double>(8, 10.0));
  in.rank_speeds = {1.0, 1.0, 1.0, 0.25};
  auto p = propose_deployment(in);
  REQUIRE(p.ok());
  CHECK(p->candidate_s < p->current_s);
  for (const auto& owner : p->owners[0]) {
    const auto slow = std::count(owner.begin(), owner.end(), 3);
    CHECK(slow <= 1);
  }
}

TEST_CASE("layers without traffic keep their placement", "[online][policy]") {
  const auto c = mixtral();
  PolicyInput in = input_for(c, 4, {40, 40, 2, 2, 2, 2, 2, 2});
  in.models[0].stats.rank_expert[1].assign(in.models[0].stats.rank_expert[1].size(), 0.0);
  auto p = propose_deployment(in);
  REQUIRE(p.ok());
  CHECK(p->owners[0][1] == in.models[0].owners[1]);
  CHECK(p->owners[0][0] != in.models[0].owners[0]);
}

TEST_CASE("two colocated models are placed together", "[online][policy]") {
  const auto c = mixtral();
  PolicyInput in = input_for(c, 4, {40, 40, 2, 2, 2, 2, 2, 2});
  in.models.push_back(PolicyModel{&c, contiguous(c, 4), stats_for(c, 4, {2, 2, 2, 2, 2, 2, 40, 40})});
  in.colocated = true;
  auto p = propose_deployment(in);
  REQUIRE(p.ok());
  REQUIRE(p->owners.size() == 2);
  CHECK(p->candidate_s < p->current_s);
  for (size_t l = 0; l < p->owners[0].size(); ++l) {
    // Per rank: model a's and model b's work together stays near the mean (88 / 4 = 22 + one hot).
    std::vector<double> t(4, 0.0);
    const std::vector<double> la = {40, 40, 2, 2, 2, 2, 2, 2}, lb = {2, 2, 2, 2, 2, 2, 40, 40};
    for (size_t e = 0; e < 8; ++e) {
      t[static_cast<size_t>(p->owners[0][l][e])] += la[e];
      t[static_cast<size_t>(p->owners[1][l][e])] += lb[e];
    }
    CHECK(*std::max_element(t.begin(), t.end()) <= 46.0);
  }
}

TEST_CASE("measured rank speeds ignore noise and see a slow rank", "[online][policy]") {
  WindowStats s;
  s.ranks.resize(4);
  const double seconds[] = {1.0, 1.1, 0.9, 4.0};
  for (size_t r = 0; r < 4; ++r) {
    s.ranks[r].rows = 1000;
    s.ranks[r].expert_seconds = seconds[r];
  }
  const auto v = measured_rank_speeds(s);
  CHECK(v[0] == 1.0);
  CHECK(v[1] == 1.0);
  CHECK(v[2] == 1.0);
  CHECK(v[3] == Approx(0.25).margin(0.03));
  s.ranks[3].rows = 0;  // no data for one rank: identical
  for (double x : measured_rank_speeds(s)) CHECK(x == 1.0);
  // ... unless it was measured before: a slow rank left with cold experts stays slow.
  const auto kept = measured_rank_speeds(s, v);
  CHECK(kept[0] == 1.0);
  CHECK(kept[3] == v[3]);
  s.ranks[0].rows = s.ranks[1].rows = s.ranks[2].rows = 0;  // one rank alone: nothing to compare with
  CHECK(measured_rank_speeds(s, v) == v);
}
