// SwitchGate: the online planner's hysteresis. A candidate placement replaces the one in force
// only when, at `confirmations` consecutive planner runs in a row,
//   1. its predicted MoE step time is at least min_gain below the current one's, and
//   2. the time it saves over amortize_s (gain per step x steps per second x amortize_s) exceeds
//      cost_margin x the predicted migration time,
// and the placement in force has been in force for min_dwell_s. A steady mix therefore never
// flaps: after a switch the candidate is the placement in force (gain ~ 0 < min_gain), and noise
// must beat the thresholds several times in a row, after the dwell time, to move anything.
// A trigger (ReplanAction::kTrigger) waives dwell time and confirmations, never the two
// predictions. Not thread-safe: the planner thread owns it.
#pragma once

#include <cstdint>
#include <string>

namespace aurora::runtime {

struct GateOptions {
  double min_gain = 0.05;
  double cost_margin = 2.0;
  double amortize_s = 30.0;
  double min_dwell_s = 3.0;
  int32_t confirmations = 2;
};

struct GateInput {
  double now_s = 0;        // monotonic time
  double current_s = 0;    // predicted MoE step time of the placement in force
  double candidate_s = 0;  // ... of the candidate
  double steps_per_second = 0;
  double migration_s = 0;  // predicted time to move the candidate's experts
  int64_t moves = 0;       // experts the candidate moves
  bool triggered = false;  // an operator asked for a replan now
};

struct GateDecision {
  bool switch_now = false;
  std::string reason;  // one line, for the snapshot and the log
};

class SwitchGate {
 public:
  explicit SwitchGate(GateOptions options, double start_s = 0) : options_(options), last_switch_s_(start_s) {}

  GateDecision evaluate(const GateInput& input);
  // Records that a switch happened (the dwell time starts now).
  void switched(double now_s);
  int32_t streak() const { return streak_; }

 private:
  GateOptions options_;
  double last_switch_s_ = 0;
  int32_t streak_ = 0;
};

}  // namespace aurora::runtime
