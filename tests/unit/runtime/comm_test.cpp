// The loopback communicator and the exchange planners: bytes arrive where the offsets say, in the
// planner's phase order, and a plan that does not cover the traffic is caught.
#include <catch2/catch.hpp>
#include <thread>

#include "aurora/runtime/communicator.hpp"
#include "executor/expert_placement.hpp"
#include "executor/placement_planner.hpp"
#include "executor/rank_pool.hpp"

using namespace aurora;
using namespace aurora::runtime;

namespace {

// rows[src][dst]: rows of 4 bytes; each row carries (src, dst, index) so a misplaced byte shows.
void run_exchange(int32_t n, const std::vector<std::vector<int32_t>>& rows, bool aurora) {
  auto comm = make_loopback_communicator(n);
  RankPool pool(n);
  TrafficMatrix traffic;
  traffic.num_ranks = n;
  for (int32_t s = 0; s < n; ++s) {
    for (int32_t d = 0; d < n; ++d) traffic.bytes.push_back(int64_t{rows[size_t(s)][size_t(d)]} * 4);
  }
  std::vector<std::string> failures(static_cast<size_t>(n));
  std::function<void(int32_t)> fn = [&](int32_t r) {
    auto backend = make_cpu_backend();
    auto stream = backend->create_stream();
    auto planner = aurora ? make_aurora_planner(n) : make_all_at_once_planner();
    const ExchangePlan& plan = planner->plan(traffic);
    if (r == 0) {
      auto problem = check_plan(plan, traffic);
      if (!problem.empty()) failures[0] = problem;
    }
    std::vector<uint8_t> send, recv;
    std::vector<int64_t> so(size_t(n) + 1, 0), ro(size_t(n) + 1, 0);
    for (int32_t d = 0; d < n; ++d) {
      for (int32_t i = 0; i < rows[size_t(r)][size_t(d)]; ++i) {
        send.insert(send.end(), {uint8_t(r), uint8_t(d), uint8_t(i), 0xAB});
      }
      so[size_t(d) + 1] = int64_t(send.size());
    }
    for (int32_t s = 0; s < n; ++s) ro[size_t(s) + 1] = ro[size_t(s)] + int64_t{rows[size_t(s)][size_t(r)]} * 4;
    recv.assign(size_t(ro[size_t(n)]), 0);
    comm->all_to_all_v(r,
                       AllToAllBuffers{reinterpret_cast<const std::byte*>(send.data()), so.data(),
                                       reinterpret_cast<std::byte*>(recv.data()), ro.data()},
                       plan, *stream);
    for (int32_t s = 0; s < n; ++s) {
      for (int32_t i = 0; i < rows[size_t(s)][size_t(r)]; ++i) {
        const uint8_t* row = recv.data() + ro[size_t(s)] + i * 4;
        if (row[0] != s || row[1] != r || row[2] != i || row[3] != 0xAB) failures[size_t(r)] = "misplaced row";
      }
    }
    int64_t counts[1] = {r};
    std::vector<int64_t> all(static_cast<size_t>(n));
    comm->all_gather(r, counts, sizeof(counts), all.data(), *stream);
    for (int32_t i = 0; i < n; ++i) {
      if (all[size_t(i)] != i) failures[size_t(r)] = "all_gather";
    }
  };
  pool.run(fn, [&] { comm->abort(); });
  for (const auto& f : failures) CHECK(f.empty());
}

}  // namespace

TEST_CASE("all_to_all_v delivers every row to its place, with either planner", "[comm]") {
  for (bool aurora : {false, true}) {
    INFO("aurora planner: " << aurora);
    run_exchange(1, {{3}}, aurora);
    run_exchange(2, {{1, 5}, {0, 2}}, aurora);
    run_exchange(4, {{2, 7, 0, 1}, {3, 0, 9, 4}, {0, 0, 0, 6}, {5, 1, 2, 0}}, aurora);
    std::vector<std::vector<int32_t>> skew(8, std::vector<int32_t>(8, 1));
    for (auto& row : skew) row[3] = 12;  // a hot receiver
    run_exchange(8, skew, aurora);
  }
}

TEST_CASE("the Aurora planner never predicts worse than all-at-once would under its model", "[comm]") {
  TrafficMatrix t;
  t.num_ranks = 4;
  t.bytes = {0, 100, 0, 0, 0, 0, 100, 0, 0, 0, 0, 100, 100, 0, 0, 0};
  auto aurora = make_aurora_planner(4);
  const auto& p = aurora->plan(t);
  CHECK(check_plan(p, t).empty());
  CHECK(p.lower_bound_seconds == Approx(exchange_lower_bound_seconds(t, 400.0)));
  CHECK(p.estimated_seconds >= p.lower_bound_seconds);
  CHECK(std::string(p.strategy).size() > 0);
}

TEST_CASE("a plan that misses bytes is caught by check_plan and by the communicator", "[comm]") {
  TrafficMatrix t;
  t.num_ranks = 2;
  t.bytes = {0, 8, 4, 0};
  ExchangePlan bad;
  bad.phases = {{Transfer{0, 1, 8}}};  // 1->0 missing
  CHECK_THAT(check_plan(bad, t), Catch::Contains("1->0"));
  auto comm = make_loopback_communicator(2);
  RankPool pool(2);
  std::function<void(int32_t)> fn = [&](int32_t r) {
    auto backend = make_cpu_backend();
    auto stream = backend->create_stream();
    std::vector<std::byte> send(r == 0 ? 8 : 4), recv(r == 0 ? 4 : 8);
    std::vector<int64_t> so = r == 0 ? std::vector<int64_t>{0, 0, 8} : std::vector<int64_t>{0, 4, 4};
    std::vector<int64_t> ro = r == 0 ? std::vector<int64_t>{0, 0, 4} : std::vector<int64_t>{0, 8, 8};
    comm->all_to_all_v(r, AllToAllBuffers{send.data(), so.data(), recv.data(), ro.data()}, bad, *stream);
  };
  CHECK_THROWS_WITH(pool.run(fn, [&] { comm->abort(); }), Catch::Contains("received 0 bytes from rank 1"));
}

TEST_CASE("expert placement from the planner covers every expert once per MoE layer", "[placement]") {
  config::ModelConfig c;
  c.num_layers = 3;
  c.num_experts = 16;
  c.hidden_size = 64;
  c.moe_intermediate_size = 32;
  c.layer_is_moe = {true, false, true};
  auto p = plan_expert_placement(c, 4, PlacementInputs{});
  REQUIRE(p.ok());
  CHECK(p->layers[1].owner.empty());
  for (int l : {0, 2}) {
    const auto& lp = p->layers[size_t(l)];
    REQUIRE(lp.owner.size() == 16);
    for (int r = 0; r < 4; ++r) CHECK(lp.rank_experts[size_t(r)].size() == 4);  // uniform load: 4 each
    for (int e = 0; e < 16; ++e) {
      CHECK(lp.rank_experts[size_t(lp.owner[size_t(e)])][size_t(lp.local_index[size_t(e)])] == e);
    }
  }
  // A hot expert gets a rank with fewer others.
  PlacementInputs skew;
  skew.expert_load.assign(3, std::vector<double>(16, 1.0));
  skew.expert_load[0][5] = 12.0;
  auto q = plan_expert_placement(c, 4, skew);
  REQUIRE(q.ok());
  const auto& lp = q->layers[0];
  CHECK(lp.rank_experts[size_t(lp.owner[5])].size() < 4);
  CHECK(count_migrations(*p, *q) > 0);
  CHECK_FALSE(make_placement({{0, 9}}, 2, 2).ok());  // rank 9 does not exist
}
