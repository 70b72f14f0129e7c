#include "aurora/loadgen/report.hpp"

#include <cmath>
#include <cstdio>
#include <map>

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

namespace aurora::loadgen {
namespace {

std::string centered(const std::string& title, char fill) {
  constexpr size_t kWidth = 50;
  if (title.size() >= kWidth) return title;
  const size_t left = (kWidth - title.size()) / 2;
  return std::string(left, fill) + title + std::string(kWidth - title.size() - left, fill);
}

void line(std::string& out, const std::string& label, const std::string& value) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%-40s %-10s\n", label.c_str(), value.c_str());
  out += buf;
}

std::string fixed2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

const MetricStats& stats_of(const Summary& s, const std::string& metric) {
  if (metric == "ttft") return s.ttft;
  if (metric == "tpot") return s.tpot;
  if (metric == "itl") return s.itl;
  return s.e2el;
}

struct MetricNames {
  const char* key;
  const char* short_name;
  const char* header;
};
constexpr MetricNames kMetrics[] = {
    {"ttft", "TTFT", "Time to First Token"},
    {"tpot", "TPOT", "Time per Output Token (excl. 1st token)"},
    {"itl", "ITL", "Inter-token Latency"},
    {"e2el", "E2EL", "End-to-end Latency"},
};

boost::json::value optional_number(const std::optional<double>& v) {
  if (!v) return nullptr;
  return *v;
}

}  // namespace

std::string format_summary_table(const RunResult& run, const Summary& s) {
  const LoadgenConfig& c = run.config;
  std::string out;
  out += centered(" Serving Benchmark Result ", '=') + "\n";
  line(out, "Successful requests:", std::to_string(s.completed));
  line(out, "Failed requests:", std::to_string(s.failed));
  for (const auto& [reason, n] : s.failures_by_reason) line(out, "  " + reason + ":", std::to_string(n));
  const bool cancelling = c.request_cancellation_rate > 0 || s.cancelled > 0;
  if (cancelling) line(out, "Cancelled requests:", std::to_string(s.cancelled));
  if (c.max_concurrency) line(out, "Maximum request concurrency:", std::to_string(*c.max_concurrency));
  if (c.users) line(out, "Closed-loop users:", std::to_string(*c.users));
  if (!c.rate_schedule.empty()) {
    line(out, "Request rate schedule:", c.rate_schedule);
  } else if (!c.users) {
    line(out, "Request rate configured (RPS):", std::isinf(c.request_rate) ? "inf" : fixed2(c.request_rate));
  }
  line(out, "Benchmark duration (s):", fixed2(s.duration_s));
  line(out, "Total input tokens:", std::to_string(s.total_input_tokens));
  line(out, "Total generated tokens:", std::to_string(s.total_output_tokens));
  line(out, "Request throughput (req/s):", fixed2(s.request_throughput));
  if (s.request_goodput) line(out, "Request goodput (req/s):", fixed2(*s.request_goodput));
  line(out, "Output token throughput (tok/s):", fixed2(s.output_throughput));
  line(out, "Peak output token throughput (tok/s):", fixed2(s.max_output_tokens_per_s));
  line(out, "Peak concurrent requests:", std::to_string(s.max_concurrent_requests));
  line(out, "Total Token throughput (tok/s):", fixed2(s.total_token_throughput));
  line(out, "Output tokens counted from:", s.output_tokens_source);
  line(out, "Input tokens counted from:", s.input_tokens_source);
  if (run.length_calibration) {
    const auto& cal = *run.length_calibration;
    char buf[128];
    std::snprintf(buf, sizeof buf, "prose %.2f, code %.2f, digits %.2f", cal[0], cal[1], cal[2]);
    line(out, "Prompt lengths sized by /tokenize:", buf);
  }
  for (const auto& m : kMetrics) {
    bool selected = false;
    for (const auto& name : c.percentile_metrics) selected = selected || name == m.key;
    if (!selected) continue;
    const MetricStats& st = stats_of(s, m.key);
    out += centered(m.header, '-') + "\n";
    line(out, std::string("Mean ") + m.short_name + " (ms):", fixed2(st.mean_ms));
    line(out, std::string("Median ") + m.short_name + " (ms):", fixed2(st.median_ms));
    line(out, std::string("Std ") + m.short_name + " (ms):", fixed2(st.std_ms));
    for (const auto& [p, v] : st.percentiles_ms) {
      std::string key = percentile_key(p);
      key[0] = 'P';
      line(out, key + " " + m.short_name + " (ms):", fixed2(v));
    }
  }
  if (cancelling) {
    out += centered("Request cancellation", '-') + "\n";
    line(out, "Cancellation rate (%), delay (s):",
         fixed2(c.request_cancellation_rate) + ", " + fixed2(c.request_cancellation_delay_s));
    line(out, "Chosen for cancellation:", std::to_string(s.cancel_planned));
    line(out, "  finished before their cancel:", std::to_string(s.cancel_planned - s.cancelled));
    line(out, "Tokens received before the cancel:", std::to_string(s.cancelled_output_tokens));
    line(out, "Cancelled after their first token:", std::to_string(s.cancelled_ttft.count));
    if (s.cancelled_ttft.count > 0) {
      line(out, "Mean TTFT of those (ms):", fixed2(s.cancelled_ttft.mean_ms));
      line(out, "Median TTFT of those (ms):", fixed2(s.cancelled_ttft.median_ms));
    }
  }
  if (!run.plan_snapshots.empty()) {
    out += centered("Aurora plan", '-') + "\n";
    const auto& first = run.plan_snapshots.front();
    const auto& last = run.plan_snapshots.back();
    if (first.plan_version && last.plan_version) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.0f -> %.0f", *first.plan_version, *last.plan_version);
      line(out, "Plan version (start -> end):", buf);
    }
    if (auto b = last.mean_balance()) line(out, "Expert load balance, mean at end:", fixed2(*b));
  }
  const double cpu = run.cpu_user_s + run.cpu_system_s;
  line(out, "Load generator CPU (s, % of a core):",
       fixed2(cpu) + " (" + fixed2(s.duration_s > 0 ? 100.0 * cpu / s.duration_s : 0.0) + "%)");
  out += std::string(50, '=') + "\n";
  return out;
}

boost::json::object make_result_json(const RunResult& run, const Summary& s, const std::vector<TimeBucket>& series) {
  const LoadgenConfig& c = run.config;
  boost::json::object j;
  j["date"] = run.started_at;
  j["endpoint_type"] = backend_name(c.backend);
  j["backend"] = backend_name(c.backend);
  j["label"] = c.label.empty() ? boost::json::value(nullptr) : boost::json::value(c.label);
  j["model_id"] = run.model;
  j["tokenizer_id"] = nullptr;
  j["base_url"] = c.target.base_url();
  j["endpoint"] = c.target.endpoint;
  j["num_prompts"] = c.num_prompts ? boost::json::value(*c.num_prompts) : boost::json::value(nullptr);
  j["request_rate"] = std::isinf(c.request_rate) ? boost::json::value("inf") : boost::json::value(c.request_rate);
  j["burstiness"] = std::isinf(c.burstiness) ? boost::json::value("inf") : boost::json::value(c.burstiness);
  j["max_concurrency"] = c.max_concurrency ? boost::json::value(*c.max_concurrency) : boost::json::value(nullptr);
  if (!c.ramp_up_strategy.empty()) {
    j["ramp_up_strategy"] = c.ramp_up_strategy;
    j["ramp_up_start_rps"] = c.ramp_up_start_rps;
    j["ramp_up_end_rps"] = c.ramp_up_end_rps;
  }
  j["users"] = c.users ? boost::json::value(*c.users) : boost::json::value(nullptr);
  j["rate_schedule"] = c.rate_schedule.empty() ? boost::json::value(nullptr) : boost::json::value(c.rate_schedule);
  j["traffic_mix"] =
      c.workload.traffic_mix.empty() ? boost::json::value(nullptr) : boost::json::value(c.workload.traffic_mix);
  j["dataset"] = run.workload_description;
  j["seed"] = c.seed;
  j["goodput_slo"] = c.goodput.empty() ? boost::json::value(nullptr) : boost::json::value(c.goodput.describe());

  j["duration"] = s.duration_s;
  j["completed"] = s.completed;
  j["failed"] = s.failed;
  boost::json::object reasons;
  for (const auto& [reason, n] : s.failures_by_reason) reasons[reason] = n;
  j["failures_by_reason"] = std::move(reasons);
  j["request_cancellation_rate"] = c.request_cancellation_rate;
  j["request_cancellation_delay"] = c.request_cancellation_delay_s;
  j["cancelled"] = s.cancelled;
  j["cancel_planned"] = s.cancel_planned;
  j["cancelled_output_tokens"] = s.cancelled_output_tokens;
  j["cancelled_with_first_token"] = static_cast<int64_t>(s.cancelled_ttft.count);
  j["mean_cancelled_ttft_ms"] = s.cancelled_ttft.mean_ms;
  j["median_cancelled_ttft_ms"] = s.cancelled_ttft.median_ms;
  for (const auto& [p, v] : s.cancelled_ttft.percentiles_ms) j[percentile_key(p) + "_cancelled_ttft_ms"] = v;
  j["num_not_sent"] = run.num_not_sent;
  if (run.length_calibration) {
    boost::json::object cal;
    for (int k = 0; k < kNumPromptKinds; ++k) {
      cal[prompt_kind_name(static_cast<PromptKind>(k))] = (*run.length_calibration)[static_cast<size_t>(k)];
    }
    j["length_calibration"] = std::move(cal);
  } else {
    j["length_calibration"] = nullptr;
  }
  j["interrupted"] = run.interrupted;
  j["total_input_tokens"] = s.total_input_tokens;
  j["total_output_tokens"] = s.total_output_tokens;
  j["input_tokens_source"] = s.input_tokens_source;
  j["output_tokens_source"] = s.output_tokens_source;
  j["request_throughput"] = s.request_throughput;
  j["request_goodput"] = optional_number(s.request_goodput);
  j["output_throughput"] = s.output_throughput;
  j["total_token_throughput"] = s.total_token_throughput;
  j["max_output_tokens_per_s"] = s.max_output_tokens_per_s;
  j["max_concurrent_requests"] = s.max_concurrent_requests;
  for (const auto& m : kMetrics) {
    bool selected = false;
    for (const auto& name : c.percentile_metrics) selected = selected || name == m.key;
    if (!selected) continue;
    const MetricStats& st = stats_of(s, m.key);
    const std::string k = m.key;
    j["mean_" + k + "_ms"] = st.mean_ms;
    j["median_" + k + "_ms"] = st.median_ms;
    j["std_" + k + "_ms"] = st.std_ms;
    for (const auto& [p, v] : st.percentiles_ms) j[percentile_key(p) + "_" + k + "_ms"] = v;
  }
  if (c.max_concurrency) {
    double total = 0;
    for (const auto& r : run.records) total += r.start_s - r.arrival_s;
    j["mean_client_queue_time_ms"] =
        run.records.empty() ? 0.0 : 1000.0 * total / static_cast<double>(run.records.size());
  }

  // Per prompt kind (prose, code, digits, or file labels): how each part of a mix fared.
  std::map<std::string, std::vector<RequestRecord>> by_kind_records;
  for (const auto& r : run.records) by_kind_records[r.kind.empty() ? "unknown" : r.kind].push_back(r);
  boost::json::object by_kind;
  for (const auto& [kind, records] : by_kind_records) {
    const Summary ks = summarize(records, s.duration_s, c.goodput, {50, 99});
    boost::json::object k;
    k["completed"] = ks.completed;
    k["failed"] = ks.failed;
    k["cancelled"] = ks.cancelled;
    k["total_output_tokens"] = ks.total_output_tokens;
    k["mean_ttft_ms"] = ks.ttft.mean_ms;
    k["p99_ttft_ms"] = ks.ttft.percentiles_ms[1].second;
    k["mean_tpot_ms"] = ks.tpot.mean_ms;
    k["p99_tpot_ms"] = ks.tpot.percentiles_ms[1].second;
    k["mean_e2el_ms"] = ks.e2el.mean_ms;
    by_kind[kind] = std::move(k);
  }
  j["by_kind"] = std::move(by_kind);

  // The load generator's own cost, to show it is not the bottleneck.
  boost::json::object lg;
  lg["cpu_user_s"] = run.cpu_user_s;
  lg["cpu_system_s"] = run.cpu_system_s;
  lg["cpu_fraction_of_one_core"] = s.duration_s > 0 ? (run.cpu_user_s + run.cpu_system_s) / s.duration_s : 0.0;
  lg["connections_opened"] = run.connections_opened;
  lg["warmups_completed"] = run.warmups_completed;
  j["loadgen"] = std::move(lg);

  boost::json::object ts;
  boost::json::array t_s, started, completed, failed, cancelled, tokens, ttft, tpot, e2el, running, running_max;
  for (const auto& b : series) {
    t_s.push_back(b.t_start_s);
    started.push_back(b.started);
    completed.push_back(b.completed);
    failed.push_back(b.failed);
    cancelled.push_back(b.cancelled);
    tokens.push_back(b.output_tokens);
    ttft.push_back(optional_number(b.ttft_p50_ms));
    tpot.push_back(optional_number(b.tpot_p50_ms));
    e2el.push_back(optional_number(b.e2el_p50_ms));
    running.push_back(b.running_mean);
    running_max.push_back(b.running_max);
  }
  ts["bucket_s"] = 1.0;
  ts["t_s"] = std::move(t_s);
  ts["started"] = std::move(started);
  ts["completed"] = std::move(completed);
  ts["failed"] = std::move(failed);
  ts["cancelled"] = std::move(cancelled);
  ts["output_tokens_per_s"] = std::move(tokens);
  ts["p50_ttft_ms"] = std::move(ttft);
  ts["p50_tpot_ms"] = std::move(tpot);
  ts["p50_e2el_ms"] = std::move(e2el);
  ts["running_mean"] = std::move(running);
  ts["running_max"] = std::move(running_max);
  j["time_series"] = std::move(ts);
  boost::json::array phases;
  for (double p : run.phase_starts_s) phases.push_back(p);
  j["traffic_mix_phase_starts_s"] = std::move(phases);

  if (!run.plan_snapshots.empty()) {
    boost::json::object aurora;
    boost::json::array at, version, mean_balance, max_balance;
    boost::json::object by_layer;
    for (const auto& snap : run.plan_snapshots) {
      at.push_back(snap.t_s);
      version.push_back(optional_number(snap.plan_version));
      mean_balance.push_back(optional_number(snap.mean_balance()));
      max_balance.push_back(optional_number(snap.max_balance()));
    }
    for (size_t i = 0; i < run.plan_snapshots.size(); ++i) {
      for (const auto& [layer, v] : run.plan_snapshots[i].balance_by_layer) {
        auto key = std::to_string(layer);
        if (!by_layer.contains(key)) {
          boost::json::array column(run.plan_snapshots.size(), nullptr);
          by_layer[key] = std::move(column);
        }
        by_layer[key].as_array()[i] = v;
      }
    }
    aurora["t_s"] = std::move(at);
    aurora["plan_version"] = std::move(version);
    aurora["expert_load_balance_mean"] = std::move(mean_balance);
    aurora["expert_load_balance_max"] = std::move(max_balance);
    aurora["expert_load_balance_by_layer"] = std::move(by_layer);
    j["aurora_metrics"] = std::move(aurora);
  } else {
    j["aurora_metrics"] = nullptr;
  }

  if (c.save_detailed) {
    boost::json::array input_lens, output_lens, ttfts, itls, start_times, texts, errors, kinds, cancelled_flags;
    for (const auto& r : run.records) {
      input_lens.push_back(r.input_tokens);
      output_lens.push_back(r.success ? r.output_tokens : 0);
      ttfts.push_back(r.success ? r.ttft_s() : 0.0);
      boost::json::array gaps;
      for (size_t i = 1; i < r.chunk_s.size(); ++i) gaps.push_back(r.chunk_s[i] - r.chunk_s[i - 1]);
      itls.push_back(std::move(gaps));
      start_times.push_back(r.start_s);
      texts.push_back(boost::json::string(r.generated_text));
      errors.push_back(
          boost::json::string(r.success || r.cancelled ? std::string() : r.error_reason + ": " + r.error_detail));
      kinds.push_back(boost::json::string(r.kind));
      cancelled_flags.push_back(r.cancelled);
    }
    j["input_lens"] = std::move(input_lens);
    j["output_lens"] = std::move(output_lens);
    j["ttfts"] = std::move(ttfts);
    j["itls"] = std::move(itls);
    j["start_times"] = std::move(start_times);
    j["generated_texts"] = std::move(texts);
    j["errors"] = std::move(errors);
    j["kinds"] = std::move(kinds);
    j["cancelled_requests"] = std::move(cancelled_flags);
  }
  for (const auto& [k, v] : c.metadata) j[k] = v;
  return j;
}

}  // namespace aurora::loadgen
