// The online benchmark's analysis: one run (static or online) as measured by the load generator
// (per-request timings) and by polling /v1/aurora/plan, reduced to time buckets, phase averages,
// the plan's follow time and the recovered fraction (the scheduler library on the measured
// post-shift statistics); then the table, summary JSON and the timeline SVG.
//
// Definitions (docs/online.md, "Benchmark"):
//  - follow time: from the traffic-mix shift to the commit of the first placement from which on
//    every placement in force recovers >= 95% (below) on the post-shift statistics;
//  - recovered fraction: T(fresh) / T(in force), both simulated by sched::simulate on the window
//    statistics at the end of the run (post-shift), where "fresh" is sched::plan_deployment from
//    scratch on those statistics and "in force" the placement serving at the end.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"

namespace aurora::bench {

struct PlanPoll {
  double t_s = 0;       // load-generator clock (seconds since its start, from the launch time)
  double uptime_s = 0;  // the engine's
  int64_t version = 0;
  int64_t switches = 0;
  double current_s = 0, fresh_s = 0;  // the planner's predictions on its window
  double expert_load_balance = 1.0;   // mean over layers of max/mean expert load
  bool migrating = false;
};

struct RunData {
  std::string mode;  // "static" or "online"
  std::vector<PlanPoll> polls;
  boost::json::value loadgen;     // aurora-loadgen --save-result --save-detailed
  boost::json::value final_plan;  // GET /v1/aurora/plan once the load ended
  double clock_offset_s = 0;      // load-generator time = engine uptime + offset
  // Every placement seen by the polls: version -> [layer][expert] owner (first model).
  std::map<int64_t, std::vector<std::vector<int32_t>>> owners_by_version;
};

struct NetworkModel {
  double link_gbps = 400.0;
  double phase_latency_s = 5e-6;
  std::vector<double> rank_speeds;  // the ranks' true relative speeds (empty: the planner's view)
};

struct Recovery {
  double in_force_s = 0, fresh_s = 0, fraction = 0;
};
// T(fresh) / T(in force) on the plan snapshot's statistics (first model); `owners` replaces the
// snapshot's placement when given ([layer][expert], MoE layers in order).
Result<Recovery> recovered_fraction(const boost::json::value& plan, const NetworkModel& net,
                                    const std::vector<std::vector<int32_t>>* owners = nullptr);

struct Bucket {
  double t_s = 0;
  double output_tokens_per_s = 0;
  double ttft_p50_ms = -1, tpot_p50_ms = -1, itl_p50_ms = -1;  // -1: no sample
};
struct PhaseStats {
  double output_tokens_per_s = 0, ttft_p50_ms = 0, tpot_p50_ms = 0, itl_p50_ms = 0;
  int64_t requests = 0;
};
struct RunSummary {
  std::string mode;
  std::vector<Bucket> buckets;
  PhaseStats before, after;            // [warm-up, shift) and [shift + settle, end)
  std::vector<double> switch_times_s;  // committed placement switches, load-generator clock
  struct Version {
    int64_t version = 0;
    double committed_s = -1;  // load-generator clock (-1: in force from the start)
    double recovered = -1;    // T(fresh) / T(this placement) on the post-shift statistics
  };
  std::vector<Version> versions;
  double first_switch_after_shift_s = -1, follow_s = -1;  // from the shift; -1: none
  int64_t completed = 0, failed = 0;
  Recovery recovery;
  std::string recovery_error;
};

struct Timing {
  double shift_s = 0;  // the mix shift, load-generator clock
  double end_s = 0;    // the run's duration
  double bucket_s = 2.0;
  double warmup_s = 5.0;   // left out of the "before" averages
  double settle_s = 10.0;  // after the shift, left out of the "after" averages
};

RunSummary summarize_run(const RunData& run, const Timing& timing, const NetworkModel& net);
std::string summary_table(const std::vector<RunSummary>& runs, const Timing& timing);
boost::json::value summary_json(const std::vector<RunSummary>& runs, const std::vector<RunData>& data,
                                const Timing& timing);
// The timeline: throughput, TPOT/ITL, TTFT, plan version, expert-load balance and the planner's
// recovered ratio over time, static against online, the shift marked.
std::string timeline_svg(const std::vector<RunSummary>& runs, const std::vector<RunData>& data, const Timing& timing,
                         const std::string& subtitle);

}  // namespace aurora::bench
