#include "online/switch_gate.hpp"

#include <cstdio>

namespace aurora::runtime {

namespace {

std::string format(const char* fmt, double a, double b = 0, double c = 0) {
  char buf[200];
  std::snprintf(buf, sizeof(buf), fmt, a, b, c);
  return buf;
}

}  // namespace

GateDecision SwitchGate::evaluate(const GateInput& in) {
  GateDecision d;
  if (in.moves == 0 || !(in.current_s > 0)) {
    streak_ = 0;
    d.reason = "kept: the candidate is the placement in force";
    return d;
  }
  const double gain = (in.current_s - in.candidate_s) / in.current_s;
  if (gain < options_.min_gain) {
    streak_ = 0;
    d.reason = format("kept: predicted gain %.1f%% < min_gain %.1f%%", 100 * gain, 100 * options_.min_gain);
    return d;
  }
  const double saved_s = (in.current_s - in.candidate_s) * in.steps_per_second * options_.amortize_s;
  const double cost_s = options_.cost_margin * in.migration_s;
  if (saved_s <= cost_s) {
    streak_ = 0;
    d.reason = format("kept: saves %.3g s over the horizon, migration costs %.3g s x margin", saved_s, in.migration_s);
    return d;
  }
  ++streak_;
  if (!in.triggered) {
    const double dwell = in.now_s - last_switch_s_;
    if (dwell < options_.min_dwell_s) {
      d.reason = format("kept: placement in force for %.1f s < dwell %.1f s (gain %.1f%%)", dwell, options_.min_dwell_s,
                        100 * gain);
      return d;
    }
    if (streak_ < options_.confirmations) {
      d.reason = format("kept: gain %.1f%% confirmed %.0f of %.0f times", 100 * gain, streak_, options_.confirmations);
      return d;
    }
  }
  d.switch_now = true;
  d.reason = format("switch: predicted gain %.1f%%, saves %.3g s over the horizon vs migration %.3g s", 100 * gain,
                    saved_s, in.migration_s);
  return d;
}

void SwitchGate::switched(double now_s) {
  last_switch_s_ = now_s;
  streak_ = 0;
}

}  // namespace aurora::runtime
