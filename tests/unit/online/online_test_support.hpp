// Test helpers shared by the online engine tests on CPU ranks (tests/unit/online) and on GPUs
// (tests/gpu/online): options that switch at every planner run, and a policy that always moves.
#pragma once

#include <utility>

#include "aurora/runtime/engine.hpp"
#include "online/deployment_policy.hpp"

namespace aurora::runtime::test {

// `o` with full replanning that switches at every planner run the policy asks for: no gain
// threshold, no cost margin, no dwell time, one confirmation, one layer migrated per step.
inline EngineOptions switch_at_every_run(EngineOptions o) {
  o.online.replan = ReplanMode::kFull;
  o.online.min_gain = 0.0;
  o.online.cost_margin = 0.0;
  o.online.min_dwell_s = 0.0;
  o.online.confirmations = 1;
  o.online.migration_layers_per_step = 1;
  return o;
}

// A policy that moves every expert of every model to the next rank, every time it is asked
// (predicting a gain).
inline Result<Proposal> rotate_everything(const PolicyInput& in) {
  Proposal p;
  p.current_s = 1.0;
  p.candidate_s = 0.5;
  p.fresh_s = 0.5;
  p.kind = "test-rotation";
  for (const auto& m : in.models) {
    auto owners = m.owners;
    for (auto& layer : owners) {
      for (auto& r : layer) {
        r = (r + 1) % static_cast<int32_t>(in.rank_speeds.size());
        ++p.moves;
      }
    }
    p.owners.push_back(std::move(owners));
  }
  return p;
}

}  // namespace aurora::runtime::test
