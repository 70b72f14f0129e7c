// RoutingStats: how many tokens each expert-parallel rank sent to each expert, per MoE layer, over
// a sliding window of engine steps. The online scheduler reads it to re-place experts and to plan
// the all-to-all; EngineStats reports per-expert load and balance from it.
//
// Thread safety: record_step() is called by the engine thread; every other method may be called
// from any thread (a mutex guards the window; snapshots are copies).
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace aurora::runtime {

class RoutingStats {
 public:
  // counts are kept for `window_steps` steps (>= 1); dense layers are recorded as empty.
  RoutingStats(int32_t num_layers, int32_t num_ranks, int32_t num_experts, int32_t window_steps);

  int32_t num_layers() const { return num_layers_; }
  int32_t num_ranks() const { return num_ranks_; }
  int32_t num_experts() const { return num_experts_; }
  int32_t window_steps() const { return window_steps_; }

  // One step's counts: [layer][rank * num_experts + expert] (empty vector for dense layers).
  void record_step(const std::vector<std::vector<int64_t>>& counts);

  struct Snapshot {
    int64_t steps_recorded = 0;  // all time
    int32_t steps_in_window = 0;
    // [layer][rank * num_experts + expert]: tokens from rank to expert, summed over the window.
    std::vector<std::vector<int64_t>> rank_expert;
    // [layer][expert]: tokens per expert over the window.
    std::vector<std::vector<int64_t>> expert_load;
    // [layer][rank * num_experts + expert]: the latest step alone.
    std::vector<std::vector<int64_t>> last_step;
  };
  Snapshot snapshot() const;

  // max / mean of the per-expert load over the window (1.0 = perfectly balanced, or no data).
  static double load_balance(const std::vector<int64_t>& expert_load);

 private:
  const int32_t num_layers_, num_ranks_, num_experts_, window_steps_;
  mutable std::mutex mu_;
  // Ring of steps: ring_[slot][layer] holds rank*expert counts (int32: one step is small).
  std::vector<std::vector<std::vector<int32_t>>> ring_;
  std::vector<std::vector<int64_t>> sums_;  // [layer][rank * num_experts + expert]
  int64_t steps_ = 0;
};

}  // namespace aurora::runtime
