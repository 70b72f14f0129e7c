// LoadgenConfig: everything one aurora-loadgen run is told, and its parser from the command line
// (Boost.Program_options, with `vllm bench serve`'s flag names where they exist).
//
// Contract: parse_command_line() validates every flag and returns an Error naming the flag and the
// offending value; a returned config describes a run that stops by itself (a request count, a
// duration or a finite schedule). help_text() includes the metric definitions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/loadgen/arrivals.hpp"
#include "aurora/loadgen/metrics.hpp"
#include "aurora/loadgen/openai_wire.hpp"
#include "aurora/loadgen/workload.hpp"

namespace aurora::loadgen {

enum class Backend { kOpenAI, kOpenAIChat, kAuroraWs };
const char* backend_name(Backend backend);

struct Target {
  std::string host = "127.0.0.1";
  std::string port = "8000";
  std::string path_prefix;  // from --base-url http://h:p/prefix
  std::string endpoint;     // "/v1/chat/completions", "/v1/completions" or "/v1/ws"
  std::string api_key;      // sent as a bearer token when set
  std::string base_url() const;
};

// Parses http://host[:port][/prefix]; https is refused with a clear message.
Result<Target> parse_base_url(const std::string& url);

struct LoadgenConfig {
  Target target;
  Backend backend = Backend::kOpenAI;
  ApiKind api = ApiKind::kCompletions;

  // Load shape.
  std::optional<int64_t> num_prompts;  // unset with --duration: no count limit
  double request_rate = kInfinity;     // requests per second; inf = all at once
  double burstiness = 1.0;
  std::optional<int64_t> max_concurrency;
  std::optional<int64_t> users;  // closed loop of N users
  double think_time_ms = 0;      // closed loop: pause between a user's requests
  std::string rate_schedule;     // steps and ramps, see RateSchedule::parse
  std::optional<double> duration_s;
  std::string ramp_up_strategy;  // vLLM's index-based ramp
  double ramp_up_start_rps = 0;
  double ramp_up_end_rps = 0;
  int64_t num_warmups = 0;
  uint64_t seed = 0;
  // AIPerf's request cancellation: this percentage of requests, chosen with the seed, is cancelled
  // by the client this long after it was fully sent (unless it finished first).
  double request_cancellation_rate = 0;  // percent, [0, 100]
  double request_cancellation_delay_s = 0;

  WorkloadConfig workload;
  SamplingOptions sampling;
  std::string calibrate_lengths = "auto";  // size synthetic prompts with the server's POST /tokenize

  // Metrics.
  SloConfig goodput;
  std::vector<std::string> percentile_metrics{"ttft", "tpot", "itl", "e2el"};
  std::vector<double> metric_percentiles{50, 90, 95, 99};
  TokenSource output_token_fallback = TokenSource::kChunks;

  // Output.
  std::optional<std::string> save_result;  // path of the result JSON
  bool save_detailed = false;
  std::string plot;  // path of the SVG chart
  std::string label;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::string progress = "auto";        // auto (when stderr is a TTY), on, off
  std::string scrape_metrics = "auto";  // auto, on, off
  double scrape_interval_s = 1.0;
  bool quiet = false;

  // Limits.
  double request_timeout_s = 300;
  double drain_timeout_s = 30;  // after the arrivals stop (duration runs)
  int64_t ws_connections = 1;
};

struct ParsedCommandLine {
  std::optional<LoadgenConfig> config;  // empty when --help or --version was asked
  std::string message;                  // the help or version text
};

Result<ParsedCommandLine> parse_command_line(int argc, const char* const* argv);
std::string help_text();

}  // namespace aurora::loadgen
