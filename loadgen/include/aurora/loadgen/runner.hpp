// run_benchmark: one complete load-generator run (warm-up, arrivals or closed-loop users,
// streaming requests, /metrics scraping, live progress) on a single-threaded io_context.
//
// Contract: returns when every request has finished, been cut off at the end of a timed run
// (failure reason "cut_off"), or timed out; the run therefore always ends by itself. Errors that
// stop the run before it starts (bad dataset file, no model found) come back as an Error.
// Blocking; call from one thread at a time. RunResult::interrupted says a signal ended it early.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/loadgen/config.hpp"
#include "aurora/loadgen/metrics.hpp"
#include "aurora/loadgen/prometheus.hpp"
#include "aurora/loadgen/text_kinds.hpp"

namespace aurora::loadgen {

struct RunResult {
  LoadgenConfig config;
  std::string model;
  std::string workload_description;
  std::string started_at;              // local time, "2025-01-31 12:00:00"
  std::vector<RequestRecord> records;  // every request sent, in arrival order
  int64_t num_not_sent = 0;            // arrivals still waiting for a slot when a timed run ended
  double duration_s = 0;               // first send -> last response
  std::vector<PlanSnapshot> plan_snapshots;
  std::vector<double> phase_starts_s;  // traffic-mix phase boundaries after t = 0
  double cpu_user_s = 0;               // the load generator's own CPU time during the run
  double cpu_system_s = 0;
  int64_t connections_opened = 0;
  int64_t warmups_completed = 0;
  bool interrupted = false;
  // Server tokens per estimated token for prose, code and digits, when POST /tokenize sized the
  // synthetic prompts (--calibrate-lengths auto); empty when it did not.
  std::optional<std::array<double, kNumPromptKinds>> length_calibration;
};

struct RunOptions {
  std::FILE* progress_out = stderr;  // where the live progress line goes (when enabled)
  bool progress_is_tty = false;      // decides "auto"
  // SIGINT/SIGTERM end the run early: sending stops, requests in flight end as "interrupted",
  // and the result covers what was measured. A second signal exits at once (status 130).
  bool handle_signals = false;
};

Result<RunResult> run_benchmark(const LoadgenConfig& config, const RunOptions& options = {});

}  // namespace aurora::loadgen
