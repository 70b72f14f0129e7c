#include <catch2/catch.hpp>

#include "aurora/runtime/routing_stats.hpp"

using namespace aurora::runtime;

TEST_CASE("routing statistics keep a sliding window of steps", "[routing]") {
  RoutingStats stats(/*layers=*/2, /*ranks=*/2, /*experts=*/3, /*window=*/2);
  auto step = [](int64_t a, int64_t b) {
    // layer 0: rank 0 sends `a` tokens to expert 0, rank 1 sends `b` to expert 2; layer 1 dense.
    return std::vector<std::vector<int64_t>>{{a, 0, 0, 0, 0, b}, {}};
  };
  stats.record_step(step(1, 10));
  stats.record_step(step(2, 20));
  auto s = stats.snapshot();
  CHECK(s.steps_recorded == 2);
  CHECK(s.steps_in_window == 2);
  CHECK(s.rank_expert[0] == std::vector<int64_t>{3, 0, 0, 0, 0, 30});
  CHECK(s.expert_load[0] == std::vector<int64_t>{3, 0, 30});
  CHECK(s.last_step[0] == std::vector<int64_t>{2, 0, 0, 0, 0, 20});
  CHECK(s.expert_load[1] == std::vector<int64_t>{0, 0, 0});
  stats.record_step(step(4, 40));  // the first step leaves the window
  s = stats.snapshot();
  CHECK(s.steps_recorded == 3);
  CHECK(s.steps_in_window == 2);
  CHECK(s.expert_load[0] == std::vector<int64_t>{6, 0, 60});
}

TEST_CASE("load balance is max over mean", "[routing]") {
  CHECK(RoutingStats::load_balance({}) == 1.0);
  CHECK(RoutingStats::load_balance({0, 0}) == 1.0);
  CHECK(RoutingStats::load_balance({5, 5, 5, 5}) == 1.0);
  CHECK(RoutingStats::load_balance({8, 0, 0, 0}) == 4.0);
}
