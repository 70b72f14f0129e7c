// The hysteresis of the online planner: thresholds, confirmations, dwell time; no flapping.
#include <catch2/catch.hpp>
#include <random>

#include "online/switch_gate.hpp"

using namespace aurora::runtime;

namespace {

GateOptions options() {
  GateOptions o;
  o.min_gain = 0.05;
  o.cost_margin = 2.0;
  o.amortize_s = 30.0;
  o.min_dwell_s = 5.0;
  o.confirmations = 2;
  return o;
}

GateInput input(double now, double current, double candidate) {
  GateInput in;
  in.now_s = now;
  in.current_s = current;
  in.candidate_s = candidate;
  in.steps_per_second = 100;
  in.migration_s = 0.01;
  in.moves = 4;
  return in;
}

}  // namespace

TEST_CASE("a steady mix with noisy predictions never switches", "[online][gate]") {
  SwitchGate gate(options());
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> noise(-0.04, 0.04);  // below min_gain
  int switches = 0;
  for (int i = 0; i < 2000; ++i) switches += gate.evaluate(input(10.0 + 0.5 * i, 1.0, 1.0 + noise(rng))).switch_now;
  CHECK(switches == 0);
}

TEST_CASE("a real gain switches after the confirmations and the dwell time, once", "[online][gate]") {
  SwitchGate gate(options());
  // Before the dwell time since start: kept, even with a large gain.
  auto d = gate.evaluate(input(1.0, 1.0, 0.5));
  CHECK_FALSE(d.switch_now);
  CHECK(d.reason.find("dwell") != std::string::npos);
  // After it: the first agreeing run is not enough (confirmations = 2; the streak started above).
  SwitchGate fresh(options());
  CHECK_FALSE(fresh.evaluate(input(6.0, 1.0, 0.5)).switch_now);
  d = fresh.evaluate(input(6.5, 1.0, 0.5));
  CHECK(d.switch_now);
  CHECK(d.reason.find("switch") == 0);
  fresh.switched(6.5);
  // The placement in force is now the candidate: gain 0, never again.
  for (int i = 0; i < 100; ++i) CHECK_FALSE(fresh.evaluate(input(7.0 + i, 0.5, 0.5)).switch_now);
}

TEST_CASE("an interrupted streak starts over", "[online][gate]") {
  SwitchGate gate(options());
  CHECK_FALSE(gate.evaluate(input(10, 1.0, 0.8)).switch_now);
  CHECK_FALSE(gate.evaluate(input(10.5, 1.0, 0.99)).switch_now);  // below min_gain: streak reset
  CHECK(gate.streak() == 0);
  CHECK_FALSE(gate.evaluate(input(11, 1.0, 0.8)).switch_now);
  CHECK(gate.evaluate(input(11.5, 1.0, 0.8)).switch_now);
}

TEST_CASE("the migration cost must be beaten by the margin", "[online][gate]") {
  SwitchGate gate(options());
  GateInput in = input(10, 1e-3, 0.8e-3);  // saves 0.2 ms per step, 100 steps/s, 30 s: 0.6 s
  in.migration_s = 0.31;                   // x margin 2 = 0.62 s > 0.6 s
  for (int i = 0; i < 10; ++i) {
    in.now_s += 1;
    auto d = gate.evaluate(in);
    CHECK_FALSE(d.switch_now);
    CHECK(d.reason.find("migration") != std::string::npos);
  }
  in.migration_s = 0.29;
  CHECK_FALSE(gate.evaluate(in).switch_now);
  CHECK(gate.evaluate(in).switch_now);
}

TEST_CASE("a mix that alternates faster than the dwell time cannot flap", "[online][gate]") {
  SwitchGate gate(options());
  // Two mixes, each favouring the other placement, alternating every second for 60 s, with a
  // planner run every 0.5 s: at most one switch per dwell time.
  int switches = 0;
  bool on_a = true;
  for (int i = 0; i < 120; ++i) {
    const double now = 10.0 + 0.5 * i;
    const bool mix_a = (i / 2) % 2 == 0;
    const double current = mix_a == on_a ? 1.0 : 1.4;
    const double candidate = 1.0;
    auto d = gate.evaluate(input(now, current, candidate));
    if (d.switch_now) {
      ++switches;
      on_a = mix_a;
      gate.switched(now);
    }
  }
  CHECK(switches <= 60 / 5);
}

TEST_CASE("a trigger waives dwell and confirmations, not the predictions", "[online][gate]") {
  SwitchGate gate(options());
  GateInput in = input(0.5, 1.0, 0.5);
  in.triggered = true;
  CHECK(gate.evaluate(in).switch_now);
  in.candidate_s = 0.99;  // no real gain
  CHECK_FALSE(gate.evaluate(in).switch_now);
  in.candidate_s = 0.5;
  in.moves = 0;  // nothing to move
  CHECK_FALSE(gate.evaluate(in).switch_now);
}
