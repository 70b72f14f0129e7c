// Online Aurora: the engine's live re-planning while it serves, as the engine API exposes it:
// options (EngineOptions::online), controls (Engine::replan) and the plan/statistics snapshot
// (Engine::plan_snapshot) that /v1/aurora/plan, /metrics and the dashboard read.
//
// Three things are re-planned, at three time scales (docs/online.md):
//  - the transfer order of every all-to-all, at every step, from the step's own counts ("live") or
//    from the statistics window ("window"), or chosen per layer by measurement ("auto");
//  - the expert placement, by a background planner that recomputes the deployment from the live
//    statistics and switches only when the predicted gain beats the migration cost by a margin
//    (thresholds + minimum dwell time: no flapping); expert weights then move layer by layer,
//    double-buffered, and each layer switches at a step boundary. Outputs do not change.
// Plain value types; parse_* functions are pure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"

namespace aurora::runtime {

// off: nothing changes while serving (the start-up plan stays; statistics and the planner's
//      advice are still reported). order: the transfer order follows the traffic, the placement
//      stays. full: order and placement follow the traffic.
enum class ReplanMode : uint8_t { kOff, kOrder, kFull };
// Where each step's transfer order comes from: the step's exchanged counts (live), the
// statistics window (window: no planning on the step's critical path), or per layer whichever
// the measurements say is faster (auto).
enum class OrderSource : uint8_t { kLive, kWindow, kAuto };

struct OnlineOptions {
  ReplanMode replan = ReplanMode::kFull;
  OrderSource order_source = OrderSource::kAuto;
  double stats_half_life_s = 2.0;         // traffic statistics: exponentially weighted, this half-life
  int32_t replan_interval_ms = 500;       // background planner period
  int32_t plan_budget_ms = 250;           // a planner run that takes longer is discarded (old plan stays)
  double min_gain = 0.05;                 // switch only if the predicted MoE step time drops by this fraction
  double cost_margin = 2.0;               // ... and the gain over amortize_s exceeds this x the migration cost
  double amortize_s = 30.0;               // how long a traffic mix is expected to last
  double min_dwell_s = 3.0;               // minimum time a placement stays in force
  int32_t confirmations = 2;              // consecutive planner runs that must agree before a switch
  int32_t migration_layers_per_step = 1;  // layers switched at one step boundary during a migration
  double link_gbps = 400.0;               // all-to-all link bandwidth of the planner's network model
  double phase_latency_us = 5.0;          // cost of one exchange phase in the network model
  // Relative expert throughput per rank for the heterogeneity-aware planner. Empty: identical ranks
  // (or measured, with measure_rank_speeds); else one value > 0 per rank.
  std::vector<double> rank_speeds;
  bool measure_rank_speeds = false;  // derive rank speeds from measured expert compute times
  // GPU ranks: spare expert slots per MoE layer and rank, where copies of experts moving in land
  // (a layer's moves into a rank must fit them). -1 = auto: with --replan full, half the experts a
  // rank holds, fewer if device memory is short; else 0.
  int32_t expert_spare_slots = -1;
};

const char* replan_mode_name(ReplanMode mode);      // "off", "order", "full"
const char* order_source_name(OrderSource source);  // "live", "window", "auto"
Result<ReplanMode> parse_replan_mode(const std::string& text);
Result<OrderSource> parse_order_source(const std::string& text);

// Sets one online option from a command-line flag (`--replan full`, `--replan-min-gain 0.1`,
// `--rank-speeds 1,1,0.5,0.5` or `measured`, ...). Returns false when `flag` is not an online
// flag; errors name the flag and the value.
Result<bool> apply_online_flag(OnlineOptions& options, const std::string& flag, const std::string& value);
struct OnlineFlagHelp {
  const char* flag;
  const char* help;
};
const std::vector<OnlineFlagHelp>& online_flag_help();
// Checks the options for `num_ranks` ranks; errors name engine.online.<field>.
Result<void> validate_online_options(const OnlineOptions& options, int32_t num_ranks);

enum class ReplanAction : uint8_t {
  kTrigger,  // run the planner now; switch if the gain beats the cost margin (dwell and confirmations waived)
  kFreeze,   // keep the placement in force (a migration under way completes); the planner keeps advising
  kUnfreeze,
};
Result<ReplanAction> parse_replan_action(const std::string& text);  // "trigger", "freeze", "unfreeze"

// What the online planner sees and decided. Times are seconds; rates are per engine step unless
// named per second. "MoE step time" = dispatch + experts + combine of every MoE layer, simulated
// by the scheduler's simulator on the statistics window (the part of a step placement changes).
struct PlanSnapshot {
  bool enabled = false;  // false: no online planner (one rank, or a backend without it)
  std::string replan_mode = "off";
  std::string order_source = "live";
  bool frozen = false;
  bool placement_supported = false;  // the backend can move experts
  int64_t plan_version = 0;
  int64_t expert_migrations_total = 0;
  double uptime_s = 0;
  double stats_half_life_s = 0;
  double steps_per_second = 0;

  // The planner's last run.
  int64_t planner_runs_total = 0;
  int64_t planner_failures_total = 0;
  int64_t planner_overruns_total = 0;
  int64_t switches_total = 0;
  double last_plan_seconds = 0;      // how long the last run took
  std::string last_decision;         // why the last run switched or kept the plan
  double predicted_current_s = 0;    // MoE step time of the placement in force
  double predicted_fresh_s = 0;      // of a placement planned from scratch on the same window
  double recovered_fraction = 1.0;   // predicted_fresh_s / predicted_current_s
  double predicted_migration_s = 0;  // estimated time to move the fresh plan's experts
  int64_t candidate_moves = 0;       // experts the planner's candidate would move

  bool migration_in_progress = false;
  int32_t migration_layers_done = 0;
  int32_t migration_layers_total = 0;

  struct Rank {
    double compute_speed = 1.0;            // what the planner uses
    double expert_seconds_per_step = 0;    // measured
    double exchange_seconds_per_step = 0;  // measured (dispatch + combine, waits included)
    double rows_per_step = 0;              // expert rows computed per step
  };
  struct Layer {
    int32_t layer = 0;
    std::vector<int32_t> owner;                    // [expert] -> rank
    std::vector<double> expert_load;               // [expert] tokens per step (weighted window)
    std::vector<double> traffic_bytes;             // [src * ranks + dst] dispatch bytes per step (window)
    std::vector<double> rank_expert_tokens;        // [rank * experts + expert] tokens per step (window)
    double load_balance = 1.0;                     // max over mean expert load
    double rank_balance = 1.0;                     // max over mean rows received per rank
    double a2a_predicted_s = 0;                    // last step: the plan's estimate (dispatch + combine)
    double a2a_measured_s = 0;                     // last step: wall time of the exchanges (waits included)
    double a2a_lower_bound_s = 0;                  // last step: per-port bound (dispatch + combine)
    std::string order_source;                      // "live" or "window": what the last step used
    std::string order_strategy;                    // the dispatch plan's strategy
    double plan_us = 0, fit_us = 0, count_us = 0;  // measured per step (weighted)
    double window_penalty_us = 0;                  // predicted a2a time of the window order minus the live order
    std::string order_decision;                    // auto: the measured comparison behind the order source
  };
  struct Model {
    std::string name;
    int32_t num_ranks = 0;
    int32_t num_experts = 0;
    int64_t row_bytes = 0;              // bytes of one routed token row (the planner's traffic unit)
    double expert_seconds_per_row = 0;  // measured, on a rank of speed 1
    std::vector<Rank> ranks;
    std::vector<Layer> layers;  // MoE layers only
  };
  std::vector<Model> models;

  struct Change {
    double time_s = 0;  // since the engine started
    int64_t version = 0;
    int64_t moved_experts = 0;
    double predicted_before_s = 0;
    double predicted_after_s = 0;
    std::string reason;
  };
  std::vector<Change> history;  // the last 64 plan changes, oldest first

  struct Sample {  // one planner run (the last 240), oldest first
    double time_s = 0;
    int64_t version = 0;
    double current_s = 0;
    double fresh_s = 0;
  };
  std::vector<Sample> timeline;
};

}  // namespace aurora::runtime
