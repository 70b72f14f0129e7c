#include "aurora/runtime/routing_stats.hpp"

#include <algorithm>

#include "aurora/config/check.hpp"

namespace aurora::runtime {

RoutingStats::RoutingStats(int32_t num_layers, int32_t num_ranks, int32_t num_experts, int32_t window_steps)
    : num_layers_(num_layers),
      num_ranks_(num_ranks),
      num_experts_(num_experts),
      window_steps_(std::max(1, window_steps)) {
  ring_.resize(static_cast<size_t>(window_steps_));
  sums_.assign(static_cast<size_t>(num_layers), std::vector<int64_t>(static_cast<size_t>(num_ranks) * num_experts, 0));
}

void RoutingStats::record_step(const std::vector<std::vector<int64_t>>& counts) {
  AURORA_CHECK(counts.size() == static_cast<size_t>(num_layers_));
  std::lock_guard lock(mu_);
  auto& slot = ring_[static_cast<size_t>(steps_ % window_steps_)];
  if (slot.empty()) slot.assign(static_cast<size_t>(num_layers_), {});
  for (size_t l = 0; l < counts.size(); ++l) {
    auto& old = slot[l];
    auto& sum = sums_[l];
    for (size_t i = 0; i < old.size(); ++i) sum[i] -= old[i];  // leaves the window
    const auto& now = counts[l];
    if (now.empty()) {
      old.clear();
      continue;
    }
    AURORA_CHECK(now.size() == sum.size());
    old.resize(now.size());
    for (size_t i = 0; i < now.size(); ++i) {
      old[i] = static_cast<int32_t>(now[i]);
      sum[i] += now[i];
    }
  }
  ++steps_;
}

RoutingStats::Snapshot RoutingStats::snapshot() const {
  std::lock_guard lock(mu_);
  Snapshot s;
  s.steps_recorded = steps_;
  s.steps_in_window = static_cast<int32_t>(std::min<int64_t>(steps_, window_steps_));
  s.rank_expert = sums_;
  s.expert_load.assign(static_cast<size_t>(num_layers_), std::vector<int64_t>(static_cast<size_t>(num_experts_), 0));
  s.last_step.assign(static_cast<size_t>(num_layers_), {});
  for (int32_t l = 0; l < num_layers_; ++l) {
    for (int32_t r = 0; r < num_ranks_; ++r) {
      for (int32_t e = 0; e < num_experts_; ++e) {
        s.expert_load[static_cast<size_t>(l)][static_cast<size_t>(e)] +=
            sums_[static_cast<size_t>(l)][static_cast<size_t>(r) * num_experts_ + e];
      }
    }
    if (steps_ > 0) {
      const auto& last = ring_[static_cast<size_t>((steps_ - 1) % window_steps_)];
      if (!last.empty())
        s.last_step[static_cast<size_t>(l)].assign(last[static_cast<size_t>(l)].begin(),
                                                   last[static_cast<size_t>(l)].end());
    }
  }
  return s;
}

double RoutingStats::load_balance(const std::vector<int64_t>& expert_load) {
  if (expert_load.empty()) return 1.0;
  int64_t total = 0, peak = 0;
  for (int64_t v : expert_load) {
    total += v;
    peak = std::max(peak, v);
  }
  if (total == 0) return 1.0;
  const double mean = static_cast<double>(total) / static_cast<double>(expert_load.size());
  return static_cast<double>(peak) / mean;
}

}  // namespace aurora::runtime
