// Per-request records and the benchmark summary, computed with `vllm bench serve`'s definitions.
//
//   TTFT  = first content chunk received - request sent
//   TPOT  = (E2EL - TTFT) / (output tokens - 1), per request; requests with <= 1 output token are
//           left out of the TPOT statistics but count as TPOT 0 for goodput
//   ITL   = gaps between successive content chunks (a chunk may carry several tokens), pooled
//           over all requests
//   E2EL  = last byte received - request sent
//   request/output/total-token throughput = completed, output tokens, input + output tokens,
//           each divided by the benchmark duration
//   goodput = requests meeting every SLO (value <= limit) / duration
//   statistics: mean, median, population std, percentiles by numpy's linear interpolation; an
//           empty list reports 0 as numpy does on `[] or 0`.
//   cancelled = requests the load generator ended itself (--request-cancellation-rate): neither
//           completed nor failed, and kept out of every statistic above; their tokens received
//           before the cancel and the TTFT of those that got a first token are reported apart.
// Pure functions of the records: deterministic and independent of clocks.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "aurora/config/error.hpp"

namespace aurora::loadgen {

enum class TokenSource { kUsage, kChunks, kEstimate };
const char* token_source_name(TokenSource source);

struct RequestRecord {
  int64_t index = 0;
  std::string kind;
  double arrival_s = 0;         // released by the arrival process (seconds since the run start)
  double start_s = 0;           // sent, after any client-side wait for --max-concurrency
  double end_s = 0;             // last byte received (or the failure, or the cancel)
  std::vector<double> chunk_s;  // receive times of content chunks; chunk_s[0] is the first token
  bool success = false;
  // Chosen by --request-cancellation-rate: the client cancels it --request-cancellation-delay
  // after it was fully sent, unless it finished first.
  bool cancel_planned = false;
  bool cancelled = false;    // the client cancelled it: success is false and error_reason empty
  std::string error_reason;  // a short category, counted in failures_by_reason
  std::string error_detail;
  int64_t input_tokens = 0;
  bool input_from_usage = false;
  int64_t output_tokens = 0;
  TokenSource output_source = TokenSource::kChunks;
  std::string finish_reason;
  std::string generated_text;  // kept only with --save-detailed

  double ttft_s() const { return chunk_s.empty() ? 0.0 : chunk_s.front() - start_s; }
  double e2el_s() const { return end_s - start_s; }
};

// --goodput "ttft:200 tpot:50 e2el:1000" (milliseconds), vLLM's syntax.
struct SloConfig {
  std::optional<double> ttft_ms;
  std::optional<double> tpot_ms;
  std::optional<double> e2el_ms;
  bool empty() const { return !ttft_ms && !tpot_ms && !e2el_ms; }
  static Result<SloConfig> parse(const std::vector<std::string>& items);
  std::string describe() const;
};

struct MetricStats {
  size_t count = 0;
  double mean_ms = 0;
  double median_ms = 0;
  double std_ms = 0;
  std::vector<std::pair<double, double>> percentiles_ms;  // (p, value)
};

struct Summary {
  int64_t completed = 0;
  int64_t failed = 0;
  std::map<std::string, int64_t> failures_by_reason;
  int64_t cancelled = 0;                // ended by the client's own cancellation
  int64_t cancel_planned = 0;           // chosen for cancellation (cancelled or finished first)
  int64_t cancelled_output_tokens = 0;  // received before the cancels (chunks or the estimate)
  MetricStats cancelled_ttft;           // of the cancelled requests that got a first token
  int64_t total_input_tokens = 0;
  int64_t total_output_tokens = 0;
  double duration_s = 0;
  double request_throughput = 0;
  double output_throughput = 0;
  double total_token_throughput = 0;
  std::optional<double> request_goodput;  // only with --goodput
  int64_t good_completed = 0;
  double max_output_tokens_per_s = 0;  // the busiest 1-s bucket
  int64_t max_concurrent_requests = 0;
  MetricStats ttft, tpot, itl, e2el;
  std::string output_tokens_source;  // "usage", "chunks", "estimate" or "mixed (...)"
  std::string input_tokens_source;   // "usage", "estimate" or "mixed (...)"
};

// numpy.percentile(values, p) with the default linear method; `sorted` ascending; 0 when empty.
double percentile_linear(const std::vector<double>& sorted, double p);
MetricStats compute_stats(std::vector<double> values_s, const std::vector<double>& percentiles);

Summary summarize(const std::vector<RequestRecord>& records, double duration_s, const SloConfig& slo,
                  const std::vector<double>& percentiles);

// One bucket of the per-second time series.
struct TimeBucket {
  double t_start_s = 0;
  int64_t started = 0;
  int64_t completed = 0;
  int64_t failed = 0;
  int64_t cancelled = 0;
  double output_tokens = 0;           // tokens whose chunk arrived in the bucket
  std::optional<double> ttft_p50_ms;  // of requests whose first token arrived in the bucket
  std::optional<double> tpot_p50_ms;  // of requests that finished in the bucket
  std::optional<double> e2el_p50_ms;
  double running_mean = 0;  // time-averaged requests in flight
  int64_t running_max = 0;
};

std::vector<TimeBucket> per_second_series(const std::vector<RequestRecord>& records, double duration_s,
                                          double bucket_s = 1.0);

// "p99", "p99.9": vLLM's key for a percentile.
std::string percentile_key(double p);

}  // namespace aurora::loadgen
