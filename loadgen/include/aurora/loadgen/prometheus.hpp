// Reading the Prometheus text exposition format, and the Aurora gauges the load generator records
// while it runs: `aurora:plan_version` and `aurora:expert_load_balance{layer="..."}`.
//
// Contract: parsing is lenient (a line it cannot read is skipped, never fatal), because the target
// may be any server; absent gauges simply leave the snapshot's fields empty. Pure functions.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aurora::loadgen {

struct PromSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
  std::optional<std::string> label(std::string_view key) const;
};

std::vector<PromSample> parse_prometheus_text(std::string_view text);

struct PlanSnapshot {
  double t_s = 0;  // seconds since the run start
  std::optional<double> plan_version;
  std::map<int, double> balance_by_layer;  // max / mean expert load, per layer
  std::optional<double> mean_balance() const;
  std::optional<double> max_balance() const;
};

PlanSnapshot extract_aurora_gauges(const std::vector<PromSample>& samples, double t_s);

}  // namespace aurora::loadgen
