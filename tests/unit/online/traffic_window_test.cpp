// The live statistics: exponentially weighted in time (a shift shows after about one half-life,
// whatever the step rate), per-rank timings, order-source measurements.
#include <catch2/catch.hpp>

#include "online/traffic_window.hpp"

using namespace aurora::runtime;
using Clock = std::chrono::steady_clock;

namespace {

StepResult step_with(int32_t layers, int32_t ranks, int32_t experts, int32_t hot_expert, int64_t tokens) {
  StepResult s;
  s.routed_tokens.assign(static_cast<size_t>(layers), std::vector<int64_t>(static_cast<size_t>(ranks * experts), 0));
  for (auto& l : s.routed_tokens) {
    for (int32_t r = 0; r < ranks; ++r) l[static_cast<size_t>(r * experts + hot_expert)] = tokens;
  }
  s.exchange.resize(static_cast<size_t>(layers));
  s.rank_timing.resize(static_cast<size_t>(ranks));
  for (int32_t r = 0; r < ranks; ++r) {
    s.rank_timing[static_cast<size_t>(r)].expert_seconds = 1e-3 * (r + 1);
    s.rank_timing[static_cast<size_t>(r)].rows_computed = 10;
  }
  return s;
}

}  // namespace

TEST_CASE("a traffic shift shows after about one half-life, at any step rate", "[online][window]") {
  for (double step_ms : {1.0, 10.0, 100.0}) {
    TrafficWindow w(2, 4, 8, /*half_life_s=*/1.0);
    auto t = Clock::now();
    const auto dt = std::chrono::microseconds(static_cast<int64_t>(step_ms * 1000));
    const int steps_per_s = static_cast<int>(1000.0 / step_ms);
    for (int i = 0; i < 10 * steps_per_s; ++i) {  // 10 s of expert 0
      t += dt;
      w.record(step_with(2, 4, 8, 0, 5), step_ms * 1e-3, t);
    }
    auto s = w.snapshot();
    INFO("step " << step_ms << " ms");
    CHECK(s.expert_load(0)[0] == Approx(20.0).epsilon(0.01));
    for (int i = 0; i < steps_per_s; ++i) {  // 1 s of expert 3
      t += dt;
      w.record(step_with(2, 4, 8, 3, 5), step_ms * 1e-3, t);
    }
    s = w.snapshot();
    CHECK(s.expert_load(0)[0] == Approx(10.0).epsilon(0.08));
    CHECK(s.expert_load(0)[3] == Approx(10.0).epsilon(0.08));
    for (int i = 0; i < 9 * steps_per_s; ++i) {
      t += dt;
      w.record(step_with(2, 4, 8, 3, 5), step_ms * 1e-3, t);
    }
    s = w.snapshot();
    CHECK(s.expert_load(1)[3] == Approx(20.0).epsilon(0.01));
    CHECK(s.expert_load(1)[0] < 0.05);
    CHECK(s.steps_per_second == Approx(1000.0 / step_ms).epsilon(1e-6));
  }
}

TEST_CASE("the window starts from the first step (bias corrected)", "[online][window]") {
  TrafficWindow w(1, 2, 4, 30.0);
  w.record(step_with(1, 2, 4, 2, 7), 0.01, Clock::now());
  const auto s = w.snapshot();
  CHECK(s.expert_load(0)[2] == Approx(14.0));
  CHECK(s.steps == 1);
  CHECK(s.ranks[1].expert_seconds == Approx(2e-3));
  CHECK(s.ranks[1].rows == Approx(10.0));
  CHECK(s.expert_seconds_per_row == Approx(3e-3 / 20.0));
}

TEST_CASE("order-source costs are kept per layer, comparisons only from steps that cost both", "[online][window]") {
  TrafficWindow w(1, 2, 4, 1.0);
  auto t = Clock::now();
  StepResult s = step_with(1, 2, 4, 0, 3);
  s.exchange[0].order_source = "live";
  s.exchange[0].plan_seconds = 40e-6;
  s.exchange[0].count_seconds = 3e-6;
  w.record(s, 0.01, t += std::chrono::milliseconds(10));
  s.exchange[0].has_both = true;
  s.exchange[0].plan_seconds = 20e-6;
  s.exchange[0].fit_seconds = 2e-6;
  s.exchange[0].live_estimated_seconds = 10e-6;
  s.exchange[0].window_estimated_seconds = 12e-6;
  w.record(s, 0.01, t += std::chrono::milliseconds(10));
  const auto snap = w.snapshot();
  CHECK(snap.layers[0].both_samples == 1);
  CHECK(snap.layers[0].live_estimate_us == Approx(10.0));
  CHECK(snap.layers[0].window_estimate_us == Approx(12.0));
  CHECK(snap.layers[0].fit_us == Approx(2.0));
  CHECK(snap.layers[0].plan_us > 20.0);
  CHECK(snap.layers[0].plan_us < 40.0);
  CHECK(snap.layers[0].count_us == Approx(3.0));
}
