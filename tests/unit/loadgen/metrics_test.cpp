// The metric arithmetic, checked exactly against hand-computed values (vLLM's definitions).
// Timestamps are injected: dyadic fractions of a second, so every difference is exact.
#include <catch2/catch.hpp>

#include "aurora/loadgen/metrics.hpp"

using namespace aurora::loadgen;

namespace {

RequestRecord ok(double start, std::vector<double> chunks, double end, int64_t out, TokenSource src, int64_t in,
                 bool in_usage) {
  RequestRecord r;
  r.start_s = start;
  r.arrival_s = start;
  r.chunk_s = std::move(chunks);
  r.end_s = end;
  r.success = true;
  r.output_tokens = out;
  r.output_source = src;
  r.input_tokens = in;
  r.input_from_usage = in_usage;
  return r;
}

RequestRecord failed(double start, double end, const char* reason) {
  RequestRecord r;
  r.start_s = start;
  r.arrival_s = start;
  r.end_s = end;
  r.success = false;
  r.error_reason = reason;
  return r;
}

std::vector<RequestRecord> scenario() {
  return {
      ok(0.0, {0.25, 0.375, 0.5, 0.625}, 0.75, 4, TokenSource::kUsage, 10, true),  // TTFT 250, TPOT 166.67
      ok(0.5, {1.0, 1.5}, 1.5, 2, TokenSource::kChunks, 20, false),                // TTFT 500, TPOT 500
      ok(1.0, {1.125}, 1.25, 1, TokenSource::kChunks, 5, false),                   // TTFT 125, no TPOT
      failed(1.0, 1.5, "http_503"),
      failed(0.25, 1.75, "timeout"),
  };
}

constexpr double kEps = 1e-9;

double pct(const MetricStats& s, double p) {
  for (const auto& [q, v] : s.percentiles_ms) {
    if (q == p) return v;
  }
  FAIL("percentile " << p << " not computed");
  return 0;
}

}  // namespace

TEST_CASE("percentile_linear matches numpy.percentile's default method") {
  const std::vector<double> v{1, 2, 3, 4};
  CHECK(percentile_linear(v, 25) == Approx(1.75).epsilon(0));
  CHECK(percentile_linear(v, 50) == Approx(2.5).epsilon(0));
  CHECK(percentile_linear(v, 75) == Approx(3.25).epsilon(0));
  CHECK(percentile_linear(v, 99) == Approx(3.97).margin(kEps));
  CHECK(percentile_linear({7}, 99) == 7);
  CHECK(percentile_linear({}, 50) == 0);  // numpy on `[] or 0`
}

TEST_CASE("summarize computes TTFT, TPOT, ITL, E2EL, throughput and percentiles exactly") {
  const Summary s = summarize(scenario(), 2.0, {}, {50, 90, 95, 99});
  CHECK(s.completed == 3);
  CHECK(s.failed == 2);
  CHECK(s.failures_by_reason == std::map<std::string, int64_t>{{"http_503", 1}, {"timeout", 1}});
  CHECK(s.total_input_tokens == 35);
  CHECK(s.total_output_tokens == 7);
  CHECK(s.request_throughput == 1.5);
  CHECK(s.output_throughput == 3.5);
  CHECK(s.total_token_throughput == 21.0);
  CHECK_FALSE(s.request_goodput.has_value());

  // TTFT: 250, 500, 125 ms.
  CHECK(s.ttft.count == 3);
  CHECK(s.ttft.mean_ms == Approx(875.0 / 3).margin(kEps));
  CHECK(s.ttft.median_ms == Approx(250).margin(kEps));
  CHECK(s.ttft.std_ms == Approx(155.90239111558088).margin(1e-9));
  CHECK(pct(s.ttft, 90) == Approx(450).margin(kEps));
  CHECK(pct(s.ttft, 95) == Approx(475).margin(kEps));
  CHECK(pct(s.ttft, 99) == Approx(495).margin(kEps));

  // TPOT: (750 - 250) / 3 and (1000 - 500) / 1; the 1-token request is left out.
  CHECK(s.tpot.count == 2);
  CHECK(s.tpot.mean_ms == Approx((500.0 / 3 + 500) / 2).margin(kEps));
  CHECK(s.tpot.median_ms == Approx((500.0 / 3 + 500) / 2).margin(kEps));
  CHECK(s.tpot.std_ms == Approx((500 - 500.0 / 3) / 2).margin(kEps));
  CHECK(pct(s.tpot, 90) == Approx(500.0 / 3 + 0.9 * (500 - 500.0 / 3)).margin(kEps));

  // ITL: gaps between content chunks, pooled: 125, 125, 125 (first request), 500 (second).
  CHECK(s.itl.count == 4);
  CHECK(s.itl.mean_ms == Approx(218.75).margin(kEps));
  CHECK(s.itl.median_ms == Approx(125).margin(kEps));
  CHECK(s.itl.std_ms == Approx(162.37976320958225).margin(1e-9));
  CHECK(pct(s.itl, 90) == Approx(387.5).margin(kEps));
  CHECK(pct(s.itl, 99) == Approx(488.75).margin(kEps));

  // E2EL: 750, 1000, 250 ms.
  CHECK(s.e2el.mean_ms == Approx(2000.0 / 3).margin(kEps));
  CHECK(s.e2el.median_ms == Approx(750).margin(kEps));
  CHECK(pct(s.e2el, 90) == Approx(950).margin(kEps));

  CHECK(s.output_tokens_source == "mixed (chunks: 2, usage: 1)");
  CHECK(s.input_tokens_source == "mixed (estimate: 2, usage: 1)");
  CHECK(s.max_output_tokens_per_s == Approx(4).margin(kEps));
  CHECK(s.max_concurrent_requests == 4);
}

TEST_CASE("goodput counts requests meeting every SLO, with vLLM's rules") {
  SloConfig slo;
  slo.ttft_ms = 300;
  slo.tpot_ms = 200;
  // Request 0 meets both; request 1 misses TTFT; request 2 has one token, so TPOT counts as 0.
  Summary s = summarize(scenario(), 2.0, slo, {99});
  REQUIRE(s.request_goodput.has_value());
  CHECK(s.good_completed == 2);
  CHECK(*s.request_goodput == 1.0);

  SloConfig e2el;
  e2el.e2el_ms = 750;  // equal to request 0's E2EL: still good (value <= limit)
  s = summarize(scenario(), 2.0, e2el, {99});
  CHECK(s.good_completed == 2);

  SloConfig strict;
  strict.tpot_ms = 100;  // request 2 (TPOT 0) is the only one left
  s = summarize(scenario(), 2.0, strict, {99});
  CHECK(s.good_completed == 1);
  CHECK(*s.request_goodput == 0.5);
}

TEST_CASE("an empty run reports zeros, like vLLM") {
  const Summary s = summarize({}, 1.0, {}, {50, 99});
  CHECK(s.completed == 0);
  CHECK(s.ttft.mean_ms == 0);
  CHECK(s.ttft.percentiles_ms.size() == 2);
  CHECK(s.ttft.percentiles_ms[1].second == 0);
  CHECK(s.output_tokens_source == "none");
}

TEST_CASE("per_second_series buckets starts, completions, tokens, TTFT and requests in flight") {
  const auto b = per_second_series(scenario(), 2.0);
  REQUIRE(b.size() == 2);
  CHECK(b[0].t_start_s == 0);
  CHECK(b[1].t_start_s == 1);
  CHECK(b[0].started == 3);
  CHECK(b[1].started == 2);
  CHECK(b[0].completed == 1);
  CHECK(b[1].completed == 2);
  CHECK(b[0].failed == 0);
  CHECK(b[1].failed == 2);
  CHECK(b[0].output_tokens == Approx(4).margin(kEps));
  CHECK(b[1].output_tokens == Approx(3).margin(kEps));
  CHECK(b[0].running_mean == Approx(2.0).margin(kEps));
  CHECK(b[1].running_mean == Approx(2.0).margin(kEps));
  CHECK(b[0].running_max == 3);
  CHECK(b[1].running_max == 4);
  REQUIRE(b[0].ttft_p50_ms.has_value());
  CHECK(*b[0].ttft_p50_ms == Approx(250).margin(kEps));
  CHECK(*b[1].ttft_p50_ms == Approx(312.5).margin(kEps));
  CHECK(*b[0].tpot_p50_ms == Approx(500.0 / 3).margin(kEps));
  CHECK(*b[1].tpot_p50_ms == Approx(500).margin(kEps));
}

TEST_CASE("SloConfig parses vLLM's --goodput syntax and rejects bad input by name") {
  auto slo = SloConfig::parse({"ttft:200", "tpot:50"});
  REQUIRE(slo.ok());
  CHECK(*slo->ttft_ms == 200);
  CHECK(*slo->tpot_ms == 50);
  CHECK_FALSE(slo->e2el_ms.has_value());
  auto one_string = SloConfig::parse({"ttft:200 tpot:50 e2el:1000"});
  REQUIRE(one_string.ok());
  CHECK(*one_string->e2el_ms == 1000);
  CHECK(one_string->describe() == "ttft:200 tpot:50 e2el:1000");

  auto bad_name = SloConfig::parse({"latency:5"});
  REQUIRE_FALSE(bad_name.ok());
  CHECK_THAT(bad_name.error().message, Catch::Contains("--goodput") && Catch::Contains("latency"));
  auto negative = SloConfig::parse({"ttft:-1"});
  REQUIRE_FALSE(negative.ok());
  CHECK_THAT(negative.error().message, Catch::Contains("--goodput.ttft") && Catch::Contains("-1"));
  CHECK_FALSE(SloConfig::parse({"ttft"}).ok());
  CHECK_FALSE(SloConfig::parse({"ttft:abc"}).ok());
}

TEST_CASE("percentile keys follow vLLM's naming") {
  CHECK(percentile_key(99) == "p99");
  CHECK(percentile_key(50) == "p50");
  CHECK(percentile_key(99.9) == "p99.9");
}

TEST_CASE("cancelled requests are counted apart and kept out of every statistic") {
  std::vector<RequestRecord> records = scenario();
  const Summary before = summarize(records, 2.0, {}, {50, 99});
  RequestRecord with_token;  // cancelled after two chunks, TTFT 0.25 s
  with_token.start_s = 0.5;
  with_token.chunk_s = {0.75, 0.875};
  with_token.end_s = 1.0;
  with_token.cancel_planned = true;
  with_token.cancelled = true;
  with_token.output_tokens = 2;
  RequestRecord before_token = with_token;  // cancelled before any token
  before_token.chunk_s.clear();
  before_token.output_tokens = 0;
  before_token.end_s = 0.625;
  RequestRecord finished_first = records[0];  // chosen, but it ended before its cancel
  finished_first.cancel_planned = true;
  records.push_back(with_token);
  records.push_back(before_token);
  records.push_back(finished_first);
  const Summary s = summarize(records, 2.0, {}, {50, 99});
  CHECK(s.completed == before.completed + 1);
  CHECK(s.failed == before.failed);
  CHECK(s.failures_by_reason == before.failures_by_reason);
  CHECK(s.cancelled == 2);
  CHECK(s.cancel_planned == 3);
  CHECK(s.cancelled_output_tokens == 2);
  CHECK(s.total_output_tokens == before.total_output_tokens + records[0].output_tokens);
  CHECK(s.ttft.count == before.ttft.count + 1);
  CHECK(s.itl.count == before.itl.count + 3);  // only finished_first's gaps
  CHECK(s.cancelled_ttft.count == 1);
  CHECK(s.cancelled_ttft.mean_ms == Approx(250).epsilon(0));
  CHECK(s.cancelled_ttft.percentiles_ms.size() == 2);

  const auto series = per_second_series(records, 2.0);
  int64_t cancelled = 0, failed = 0;
  for (const auto& b : series) {
    cancelled += b.cancelled;
    failed += b.failed;
  }
  CHECK(cancelled == 2);
  CHECK(failed == 2);
  CHECK(series[1].cancelled == 1);  // with_token ends at 1.0 s
  CHECK(series[0].cancelled == 1);
}
