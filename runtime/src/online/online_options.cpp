// OnlineOptions: names, flag parsing and validation (aurora/runtime/online.hpp).
#include <cmath>

#include "aurora/runtime/online.hpp"
#include "util/flag_values.hpp"

namespace aurora::runtime {

const char* replan_mode_name(ReplanMode mode) {
  switch (mode) {
    case ReplanMode::kOff: return "off";
    case ReplanMode::kOrder: return "order";
    case ReplanMode::kFull: return "full";
  }
  return "?";
}

const char* order_source_name(OrderSource source) {
  switch (source) {
    case OrderSource::kLive: return "live";
    case OrderSource::kWindow: return "window";
    case OrderSource::kAuto: return "auto";
  }
  return "?";
}

Result<ReplanMode> parse_replan_mode(const std::string& text) {
  if (text == "off") return ReplanMode::kOff;
  if (text == "order") return ReplanMode::kOrder;
  if (text == "full") return ReplanMode::kFull;
  return Error::invalid("replan", "must be off, order or full, got '" + text + "'");
}

Result<OrderSource> parse_order_source(const std::string& text) {
  if (text == "live") return OrderSource::kLive;
  if (text == "window") return OrderSource::kWindow;
  if (text == "auto") return OrderSource::kAuto;
  return Error::invalid("order_source", "must be live, window or auto, got '" + text + "'");
}

Result<ReplanAction> parse_replan_action(const std::string& text) {
  if (text == "trigger") return ReplanAction::kTrigger;
  if (text == "freeze") return ReplanAction::kFreeze;
  if (text == "unfreeze") return ReplanAction::kUnfreeze;
  return Error::invalid("action", "must be trigger, freeze or unfreeze, got '" + text + "'");
}

namespace {

const std::vector<OnlineFlagHelp> kHelp = {
    {"--replan", "online re-planning: off, order (transfer order only) or full (order and expert placement; default)"},
    {"--order-source",
     "per-step transfer order from the step's counts (live), the statistics window (window) or "
     "whichever measures faster per layer (auto; default)"},
    {"--stats-half-life-s", "half-life of the traffic statistics in seconds (default 2)"},
    {"--replan-interval-ms", "background planner period (default 500)"},
    {"--replan-budget-ms", "a planner run longer than this is discarded, the old plan stays (default 250)"},
    {"--replan-min-gain", "switch placement only for this predicted fraction of MoE step time saved (default 0.05)"},
    {"--replan-cost-margin",
     "... and when the gain over --replan-amortize-s beats this x the migration cost (default 2)"},
    {"--replan-amortize-s", "how long a traffic mix is expected to last, in seconds (default 30)"},
    {"--replan-dwell-s", "minimum seconds a placement stays in force (default 3)"},
    {"--replan-confirmations", "consecutive planner runs that must agree before a switch (default 2)"},
    {"--migration-layers-per-step", "MoE layers switched at one step boundary while experts move (default 1)"},
    {"--link-gbps", "all-to-all link bandwidth of the planner's network model (default 400)"},
    {"--phase-latency-us", "cost of one exchange phase in the planner's network model, microseconds (default 5)"},
    {"--rank-speeds", "relative expert speed per rank, e.g. 1,1,0.5,0.5; 'measured' or 'uniform' (default)"},
    {"--expert-spare-slots",
     "GPU ranks: spare expert slots per MoE layer and rank for migrating experts; N or 'auto' (default: half "
     "the experts a rank holds with --replan full, as memory allows)"},
};

}  // namespace

const std::vector<OnlineFlagHelp>& online_flag_help() { return kHelp; }

Result<bool> apply_online_flag(OnlineOptions& o, const std::string& flag, const std::string& value) {
  auto set_double = [&](double& field, double lo, double hi) -> Result<bool> {
    auto v = parse_flag_number(flag, value, lo, hi);
    if (!v) return v.error();
    field = *v;
    return true;
  };
  auto set_int = [&](int32_t& field, int32_t lo, int32_t hi) -> Result<bool> {
    auto v = parse_flag_int(flag, value, lo, hi);
    if (!v) return v.error();
    field = *v;
    return true;
  };
  if (flag == "--replan") {
    auto m = parse_replan_mode(value);
    if (!m) return Error::invalid(flag, "must be off, order or full, got '" + value + "'");
    o.replan = *m;
    return true;
  }
  if (flag == "--order-source") {
    auto s = parse_order_source(value);
    if (!s) return Error::invalid(flag, "must be live, window or auto, got '" + value + "'");
    o.order_source = *s;
    return true;
  }
  if (flag == "--stats-half-life-s") return set_double(o.stats_half_life_s, 0.01, 3600);
  if (flag == "--replan-interval-ms") return set_int(o.replan_interval_ms, 10, 3600000);
  if (flag == "--replan-budget-ms") return set_int(o.plan_budget_ms, 1, 3600000);
  if (flag == "--replan-min-gain") return set_double(o.min_gain, 0, 0.999);
  if (flag == "--replan-cost-margin") return set_double(o.cost_margin, 0, 1e6);
  if (flag == "--replan-amortize-s") return set_double(o.amortize_s, 0, 1e6);
  if (flag == "--replan-dwell-s") return set_double(o.min_dwell_s, 0, 1e6);
  if (flag == "--replan-confirmations") return set_int(o.confirmations, 1, 1000);
  if (flag == "--migration-layers-per-step") return set_int(o.migration_layers_per_step, 1, 1 << 16);
  if (flag == "--link-gbps") return set_double(o.link_gbps, 1e-3, 1e6);
  if (flag == "--phase-latency-us") return set_double(o.phase_latency_us, 0, 1e6);
  if (flag == "--expert-spare-slots") {
    if (value == "auto") {
      o.expert_spare_slots = -1;
      return true;
    }
    return set_int(o.expert_spare_slots, 0, 1 << 16);
  }
  if (flag == "--rank-speeds") {
    o.rank_speeds.clear();
    o.measure_rank_speeds = false;
    if (value == "uniform") return true;
    if (value == "measured") {
      o.measure_rank_speeds = true;
      return true;
    }
    auto speeds = parse_flag_list(flag, value, 1e-3, 1e3, "'uniform', 'measured' or speeds like 1,1,0.5,0.5");
    if (!speeds) return speeds.error();
    o.rank_speeds = std::move(*speeds);
    return true;
  }
  return false;
}

Result<void> validate_online_options(const OnlineOptions& o, int32_t num_ranks) {
  auto bad = [](const char* field, const std::string& what) {
    return Error::invalid(std::string("engine.online.") + field, what);
  };
  if (!(o.stats_half_life_s > 0))
    return bad("stats_half_life_s", "must be > 0, got " + format_flag_number(o.stats_half_life_s));
  if (o.replan_interval_ms < 1)
    return bad("replan_interval_ms", "must be >= 1, got " + std::to_string(o.replan_interval_ms));
  if (o.plan_budget_ms < 1) return bad("plan_budget_ms", "must be >= 1, got " + std::to_string(o.plan_budget_ms));
  if (!(o.min_gain >= 0 && o.min_gain < 1))
    return bad("min_gain", "must be in [0, 1), got " + format_flag_number(o.min_gain));
  if (!(o.cost_margin >= 0)) return bad("cost_margin", "must be >= 0, got " + format_flag_number(o.cost_margin));
  if (!(o.amortize_s >= 0)) return bad("amortize_s", "must be >= 0, got " + format_flag_number(o.amortize_s));
  if (!(o.min_dwell_s >= 0)) return bad("min_dwell_s", "must be >= 0, got " + format_flag_number(o.min_dwell_s));
  if (o.confirmations < 1) return bad("confirmations", "must be >= 1, got " + std::to_string(o.confirmations));
  if (o.migration_layers_per_step < 1) {
    return bad("migration_layers_per_step", "must be >= 1, got " + std::to_string(o.migration_layers_per_step));
  }
  if (!(o.link_gbps > 0)) return bad("link_gbps", "must be > 0, got " + format_flag_number(o.link_gbps));
  if (!(o.phase_latency_us >= 0))
    return bad("phase_latency_us", "must be >= 0, got " + format_flag_number(o.phase_latency_us));
  if (o.expert_spare_slots < -1) {
    return bad("expert_spare_slots", "must be >= 0 (or -1: auto), got " + std::to_string(o.expert_spare_slots));
  }
  if (!o.rank_speeds.empty()) {
    if (static_cast<int32_t>(o.rank_speeds.size()) != num_ranks) {
      return bad("rank_speeds", "must list one speed per rank (" + std::to_string(num_ranks) + "), got " +
                                    std::to_string(o.rank_speeds.size()));
    }
    for (size_t r = 0; r < o.rank_speeds.size(); ++r) {
      if (!(o.rank_speeds[r] > 0)) {
        return Error::invalid("engine.online.rank_speeds[" + std::to_string(r) + "]",
                              "must be > 0, got " + format_flag_number(o.rank_speeds[r]));
      }
    }
  }
  return {};
}

}  // namespace aurora::runtime
