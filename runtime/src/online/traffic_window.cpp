#include "online/traffic_window.hpp"

#include <algorithm>
#include <cmath>

#include "aurora/config/check.hpp"

namespace aurora::runtime {

std::vector<double> WindowStats::expert_load(int32_t layer) const {
  std::vector<double> load(static_cast<size_t>(num_experts), 0.0);
  const auto& m = rank_expert[static_cast<size_t>(layer)];
  if (m.empty()) return {};
  for (int32_t r = 0; r < num_ranks; ++r) {
    for (int32_t e = 0; e < num_experts; ++e)
      load[static_cast<size_t>(e)] += m[static_cast<size_t>(r) * num_experts + e];
  }
  return load;
}

TrafficWindow::TrafficWindow(int32_t num_layers, int32_t num_ranks, int32_t num_experts, double half_life_s)
    : half_life_s_(half_life_s) {
  AURORA_CHECK(num_layers >= 0 && num_ranks >= 1 && num_experts >= 0 && half_life_s > 0);
  stats_.num_layers = num_layers;
  stats_.num_ranks = num_ranks;
  stats_.num_experts = num_experts;
  stats_.rank_expert.resize(static_cast<size_t>(num_layers));
  stats_.ranks.resize(static_cast<size_t>(num_ranks));
  stats_.layers.resize(static_cast<size_t>(num_layers));
  rank_expert_.resize(static_cast<size_t>(num_layers));
  rank_expert_s_.resize(static_cast<size_t>(num_ranks));
  rank_exchange_s_.resize(static_cast<size_t>(num_ranks));
  rank_rows_.resize(static_cast<size_t>(num_ranks));
  layer_.resize(static_cast<size_t>(num_layers));
}

void TrafficWindow::record(const StepResult& step, double step_seconds, std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mu_);
  const double age = started_ ? std::max(0.0, std::chrono::duration<double>(now - last_).count()) : 0.0;
  started_ = true;
  last_ = now;
  // Weight of everything before this step relative to this step: 2^(-age / half-life). A step
  // taken right after the previous one still decays the past a little, so that a burst of steps
  // does not freeze the statistics.
  const double factor = std::exp2(-std::max(age, 1e-4) / half_life_s_);
  ++stats_.steps;
  step_s_.add(step_seconds, factor);
  const size_t num_layers = std::min(step.routed_tokens.size(), rank_expert_.size());
  for (size_t l = 0; l < num_layers; ++l) {
    const auto& counts = step.routed_tokens[l];
    auto& ewma = rank_expert_[l];
    if (counts.empty()) continue;
    if (ewma.size() != counts.size()) ewma.assign(counts.size(), Ewma{});
    for (size_t i = 0; i < counts.size(); ++i) ewma[i].add(static_cast<double>(counts[i]), factor);
  }
  double expert_total = 0, rows_total = 0;
  for (size_t r = 0; r < step.rank_timing.size() && r < rank_rows_.size(); ++r) {
    const auto& t = step.rank_timing[r];
    rank_expert_s_[r].add(t.expert_seconds, factor);
    rank_exchange_s_[r].add(t.exchange_seconds, factor);
    rank_rows_[r].add(static_cast<double>(t.rows_computed), factor);
    expert_total += t.expert_seconds;
    rows_total += static_cast<double>(t.rows_computed);
  }
  if (!step.rank_timing.empty()) {
    expert_s_total_.add(expert_total, factor);
    rows_total_.add(rows_total, factor);
  }
  for (size_t l = 0; l < step.exchange.size() && l < layer_.size(); ++l) {
    const LayerExchangeCost& c = step.exchange[l];
    if (step.routed_tokens.size() > l && step.routed_tokens[l].empty()) continue;  // dense layer
    auto& le = layer_[l];
    le.count_us.add(c.count_seconds * 1e6, factor);
    if (c.has_both) {
      // Both costs on the same counts: the only fair comparison of the two sources.
      le.plan_us.add(c.plan_seconds * 1e6, factor);
      le.fit_us.add(c.fit_seconds * 1e6, factor);
      le.live_us.add(c.live_estimated_seconds * 1e6, factor);
      le.window_us.add(c.window_estimated_seconds * 1e6, factor);
      ++stats_.layers[l].both_samples;
    } else if (std::string_view(c.order_source) == "window") {
      le.fit_us.add(c.fit_seconds * 1e6, factor);
    } else {
      le.plan_us.add(c.plan_seconds * 1e6, factor);
    }
    stats_.layers[l].last = c;
  }
}

WindowStats TrafficWindow::snapshot() const {
  std::lock_guard lock(mu_);
  WindowStats s = stats_;
  s.step_seconds = step_s_.mean();
  s.steps_per_second = s.step_seconds > 0 ? 1.0 / s.step_seconds : 0.0;
  for (size_t l = 0; l < rank_expert_.size(); ++l) {
    auto& out = s.rank_expert[l];
    out.clear();
    for (const auto& e : rank_expert_[l]) out.push_back(e.mean());
  }
  for (size_t r = 0; r < s.ranks.size(); ++r) {
    s.ranks[r].expert_seconds = rank_expert_s_[r].mean();
    s.ranks[r].exchange_seconds = rank_exchange_s_[r].mean();
    s.ranks[r].rows = rank_rows_[r].mean();
  }
  const double rows = rows_total_.mean();
  s.expert_seconds_per_row = rows > 0 ? expert_s_total_.mean() / rows : 0.0;
  for (size_t l = 0; l < layer_.size(); ++l) {
    auto& out = s.layers[l];
    out.count_us = layer_[l].count_us.mean();
    out.plan_us = layer_[l].plan_us.mean();
    out.fit_us = layer_[l].fit_us.mean();
    out.live_estimate_us = layer_[l].live_us.mean();
    out.window_estimate_us = layer_[l].window_us.mean();
  }
  return s;
}

}  // namespace aurora::runtime
