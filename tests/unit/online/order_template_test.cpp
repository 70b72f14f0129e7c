// Window orders fitted to a step's counts: every byte exactly once, deterministic, the window's
// own matrix reproduces the template, unseen pairs go last.
#include <catch2/catch.hpp>
#include <random>

#include "comm/order_template.hpp"

using namespace aurora::runtime;

namespace {

TrafficMatrix random_matrix(int32_t n, std::mt19937_64& rng, double zero_share) {
  TrafficMatrix t;
  t.num_ranks = n;
  std::uniform_real_distribution<double> u(0, 1);
  std::uniform_int_distribution<int64_t> bytes(1, 200000);
  for (int32_t i = 0; i < n * n; ++i) t.bytes.push_back(u(rng) < zero_share ? 0 : bytes(rng));
  return t;
}

}  // namespace

TEST_CASE("a fitted window order covers the step's counts exactly", "[online][order]") {
  std::mt19937_64 rng(7);
  for (int32_t n : {2, 3, 4, 5, 8, 12}) {
    for (int trial = 0; trial < 40; ++trial) {
      const TrafficMatrix window = random_matrix(n, rng, 0.3);
      auto planner = make_aurora_planner(n);
      const OrderTemplate t = make_order_template(planner->plan(window), n);
      const TrafficMatrix step = random_matrix(n, rng, 0.3);
      ExchangePlan a, b;
      fit_order(t, step, 400.0, 5e-6, a);
      fit_order(t, step, 400.0, 5e-6, b);
      INFO("n = " << n << ", trial " << trial);
      CHECK(check_plan(a, step).empty());
      REQUIRE(a.phases.size() == b.phases.size());
      for (size_t k = 0; k < a.phases.size(); ++k) {
        REQUIRE(a.phases[k].size() == b.phases[k].size());
        for (size_t i = 0; i < a.phases[k].size(); ++i) {
          CHECK(a.phases[k][i].src == b.phases[k][i].src);
          CHECK(a.phases[k][i].dst == b.phases[k][i].dst);
          CHECK(a.phases[k][i].bytes == b.phases[k][i].bytes);
        }
      }
      CHECK(a.lower_bound_seconds == Approx(exchange_lower_bound_seconds(step, 400.0)));
      CHECK(a.estimated_seconds >= a.lower_bound_seconds * (1 - 1e-12));
    }
  }
}

TEST_CASE("the window's own matrix gets the template's phases back", "[online][order]") {
  std::mt19937_64 rng(11);
  for (int32_t n : {3, 4, 6}) {
    const TrafficMatrix window = random_matrix(n, rng, 0.1);
    auto planner = make_aurora_planner(n);
    const ExchangePlan& planned = planner->plan(window);
    const OrderTemplate t = make_order_template(planned, n);
    ExchangePlan fitted;
    fit_order(t, window, 400.0, 5e-6, fitted);
    REQUIRE(fitted.phases.size() == t.phases.size());
    for (size_t k = 0; k < t.phases.size(); ++k) {
      REQUIRE(fitted.phases[k].size() == t.phases[k].size());
      for (size_t i = 0; i < t.phases[k].size(); ++i) CHECK(fitted.phases[k][i].bytes == t.phases[k][i].bytes);
    }
    // The scheduler's own prediction of the fitted plan equals the planner's for its plan.
    const double predicted = predict_exchange_seconds(fitted, n, 400.0, 5e-6);
    if (std::string(planned.strategy) == "matching" || std::string(planned.strategy) == "all_at_once") {
      CHECK(predicted == Approx(planned.estimated_seconds).epsilon(1e-9));
    }
  }
}

TEST_CASE("pairs the window never saw are sent last, all at once", "[online][order]") {
  TrafficMatrix window;
  window.num_ranks = 3;
  window.bytes = {0, 100, 0, 0, 0, 100, 100, 0, 0};  // a ring 0->1->2->0
  auto planner = make_aurora_planner(3);
  const OrderTemplate t = make_order_template(planner->plan(window), 3);
  TrafficMatrix step = window;
  step.bytes[2] = 50;  // 0->2 is new
  step.bytes[1] = 300;
  ExchangePlan fitted;
  fit_order(t, step, 400.0, 0.0, fitted);
  CHECK(check_plan(fitted, step).empty());
  REQUIRE(!fitted.phases.empty());
  const auto& tail = fitted.phases.back();
  REQUIRE(tail.size() == 1);
  CHECK(tail[0].src == 0);
  CHECK(tail[0].dst == 2);
  CHECK(tail[0].bytes == 50);
  // An empty step fits to an empty plan.
  TrafficMatrix empty;
  empty.num_ranks = 3;
  empty.bytes.assign(9, 0);
  fit_order(t, empty, 400.0, 0.0, fitted);
  CHECK(fitted.phases.empty());
  CHECK(fitted.estimated_seconds == 0.0);
}
