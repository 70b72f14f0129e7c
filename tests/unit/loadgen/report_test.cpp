#include <catch2/catch.hpp>

#include <boost/json/serialize.hpp>

#include "aurora/loadgen/report.hpp"
#include "aurora/loadgen/svg_plot.hpp"

using namespace aurora::loadgen;

namespace {

RunResult sample_run() {
  RunResult run;
  run.config.backend = Backend::kOpenAIChat;
  run.config.max_concurrency = 8;
  run.config.save_detailed = true;
  run.config.metadata = {{"gpu", "none"}};
  run.model = "m<1>";
  run.workload_description = "random & more";
  run.started_at = "2025-01-01 00:00:00";
  run.duration_s = 3.0;
  for (int i = 0; i < 4; ++i) {
    RequestRecord r;
    r.index = i;
    r.arrival_s = 0.5 * i;
    r.start_s = 0.5 * i + 0.25;
    r.chunk_s = {r.start_s + 0.5, r.start_s + 0.75};
    r.end_s = r.start_s + 1.0;
    r.success = i != 3;
    r.error_reason = i == 3 ? "http_503" : "";
    r.output_tokens = 2;
    r.input_tokens = 10;
    run.records.push_back(r);
  }
  PlanSnapshot a;
  a.t_s = 0.5;
  a.plan_version = 1;
  a.balance_by_layer = {{0, 1.8}, {1, 1.6}};
  PlanSnapshot b = a;
  b.t_s = 2.0;
  b.plan_version = 2;
  b.balance_by_layer = {{0, 1.1}, {1, 1.2}};
  run.plan_snapshots = {a, b};
  run.phase_starts_s = {1.5};
  return run;
}

}  // namespace

TEST_CASE("the result JSON uses vLLM's field names and adds ours") {
  const RunResult run = sample_run();
  const Summary s = summarize(run.records, run.duration_s, {}, run.config.metric_percentiles);
  const auto series = per_second_series(run.records, run.duration_s);
  const boost::json::object j = make_result_json(run, s, series);
  for (const char* key : {"date",
                          "backend",
                          "model_id",
                          "num_prompts",
                          "request_rate",
                          "burstiness",
                          "max_concurrency",
                          "duration",
                          "completed",
                          "failed",
                          "total_input_tokens",
                          "total_output_tokens",
                          "request_throughput",
                          "request_goodput",
                          "output_throughput",
                          "total_token_throughput",
                          "max_output_tokens_per_s",
                          "max_concurrent_requests",
                          "mean_ttft_ms",
                          "median_ttft_ms",
                          "std_ttft_ms",
                          "p50_ttft_ms",
                          "p90_ttft_ms",
                          "p95_ttft_ms",
                          "p99_ttft_ms",
                          "mean_tpot_ms",
                          "p99_tpot_ms",
                          "mean_itl_ms",
                          "p99_itl_ms",
                          "mean_e2el_ms",
                          "p99_e2el_ms",
                          "failures_by_reason",
                          "time_series",
                          "aurora_metrics",
                          "loadgen",
                          "input_lens",
                          "output_lens",
                          "ttfts",
                          "itls",
                          "errors",
                          "gpu"}) {
    INFO(key);
    CHECK(j.contains(key));
  }
  CHECK(j.at("completed") == 3);
  CHECK(j.at("failed") == 1);
  CHECK(j.at("request_rate") == "inf");
  CHECK(j.at("request_goodput").is_null());
  CHECK(j.at("failures_by_reason").at("http_503") == 1);
  CHECK(j.at("mean_ttft_ms").as_double() == Approx(500));
  CHECK(j.at("mean_client_queue_time_ms").as_double() == Approx(250));
  CHECK(j.at("time_series").at("t_s").as_array().size() == series.size());
  CHECK(j.at("aurora_metrics").at("plan_version").as_array().size() == 2);
  CHECK(j.at("aurora_metrics").at("expert_load_balance_by_layer").at("1").as_array()[1].as_double() == 1.2);
  CHECK(j.at("gpu") == "none");
  CHECK(j.at("by_kind").at("unknown").at("completed") == 3);
}

TEST_CASE("the summary table follows vLLM's layout") {
  const RunResult run = sample_run();
  const Summary s = summarize(run.records, run.duration_s, {}, run.config.metric_percentiles);
  const std::string table = format_summary_table(run, s);
  CHECK_THAT(table, Catch::StartsWith("============ Serving Benchmark Result ============\n"));
  CHECK_THAT(table, Catch::Contains("Successful requests:                     3"));
  CHECK_THAT(table, Catch::Contains("Failed requests:                         1"));
  CHECK_THAT(table, Catch::Contains("  http_503:"));
  CHECK_THAT(table, Catch::Contains("---------------Time to First Token----------------"));
  CHECK_THAT(table, Catch::Contains("Mean TTFT (ms):                          500.00"));
  CHECK_THAT(table, Catch::Contains("P99 E2EL (ms):"));
  CHECK_THAT(table, Catch::Contains("Plan version (start -> end):             1 -> 2"));
}

TEST_CASE("the SVG is self-contained and marks plan changes and mix phases") {
  const RunResult run = sample_run();
  const auto series = per_second_series(run.records, run.duration_s);
  const std::string svg = render_timeseries_svg(run, series);
  CHECK_THAT(svg, Catch::StartsWith("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  CHECK_THAT(svg, Catch::EndsWith("</svg>\n"));
  CHECK_THAT(svg, Catch::Contains("plan v2"));
  CHECK_THAT(svg, Catch::Contains("phase 2"));
  CHECK_THAT(svg, Catch::Contains("Expert load balance"));
  CHECK_THAT(svg, Catch::Contains("m&lt;1&gt;"));  // escaped
  CHECK_THAT(svg, Catch::Contains("random &amp; more"));
  CHECK(svg.find("<script") == std::string::npos);
  CHECK(svg.find("href") == std::string::npos);
  // Every opened element is closed: count tags roughly.
  size_t opens = 0, closes = 0;
  for (size_t i = svg.find("<path"); i != std::string::npos; i = svg.find("<path", i + 1)) ++opens;
  for (size_t i = svg.find("/>"); i != std::string::npos; i = svg.find("/>", i + 1)) ++closes;
  CHECK(opens > 3);
  CHECK(closes >= opens);
}

TEST_CASE("cancelled requests have their own line, section and JSON fields") {
  RunResult run = sample_run();
  const Summary plain = summarize(run.records, run.duration_s, {}, run.config.metric_percentiles);
  CHECK(format_summary_table(run, plain).find("Cancelled") == std::string::npos);  // off: no lines
  CHECK(make_result_json(run, plain, {}).at("cancelled") == 0);

  run.config.request_cancellation_rate = 40;
  run.config.request_cancellation_delay_s = 0.5;
  run.records[2].success = false;
  run.records[2].cancelled = true;
  run.records[2].cancel_planned = true;
  run.records[1].cancel_planned = true;  // finished before its cancel
  const Summary s = summarize(run.records, run.duration_s, {}, run.config.metric_percentiles);
  const std::string table = format_summary_table(run, s);
  CHECK_THAT(table, Catch::Contains("Successful requests:                     2"));
  CHECK_THAT(table, Catch::Contains("Failed requests:                         1"));
  CHECK_THAT(table, Catch::Contains("Cancelled requests:                      1"));
  CHECK_THAT(table, Catch::Contains("---------------Request cancellation---------------"));
  CHECK_THAT(table, Catch::Contains("Cancellation rate (%), delay (s):        40.00, 0.50"));
  CHECK_THAT(table, Catch::Contains("Chosen for cancellation:                 2"));
  CHECK_THAT(table, Catch::Contains("  finished before their cancel:          1"));
  CHECK_THAT(table, Catch::Contains("Tokens received before the cancel:       2"));
  CHECK_THAT(table, Catch::Contains("Mean TTFT of those (ms):                 500.00"));
  const auto series = per_second_series(run.records, run.duration_s);
  const boost::json::object j = make_result_json(run, s, series);
  CHECK(j.at("completed") == 2);
  CHECK(j.at("failed") == 1);
  CHECK(j.at("cancelled") == 1);
  CHECK(j.at("cancel_planned") == 2);
  CHECK(j.at("cancelled_output_tokens") == 2);
  CHECK(j.at("cancelled_with_first_token") == 1);
  CHECK(j.at("mean_cancelled_ttft_ms").as_double() == Approx(500));
  CHECK(j.contains("p99_cancelled_ttft_ms"));
  CHECK(j.at("request_cancellation_rate").as_double() == 40);
  CHECK(j.at("request_cancellation_delay").as_double() == 0.5);
  CHECK(j.at("by_kind").at("unknown").at("cancelled") == 1);
  int64_t in_series = 0;
  for (const auto& v : j.at("time_series").at("cancelled").as_array()) in_series += v.as_int64();
  CHECK(in_series == 1);
  const auto& flags = j.at("cancelled_requests").as_array();
  REQUIRE(flags.size() == 4);
  CHECK(flags[2].as_bool());
  CHECK_FALSE(flags[1].as_bool());
  CHECK(j.at("errors").as_array()[2].as_string() == "");
}
