// Arrival processes: rates, burstiness and schedules, checked statistically with fixed seeds.
#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>

#include "aurora/loadgen/arrivals.hpp"

using namespace aurora::loadgen;

namespace {

struct GapStats {
  double mean = 0;
  double cv = 0;
};

GapStats gap_stats(const std::vector<double>& times) {
  std::vector<double> gaps;
  for (size_t i = 1; i < times.size(); ++i) gaps.push_back(times[i] - times[i - 1]);
  const double n = static_cast<double>(gaps.size());
  const double mean = std::accumulate(gaps.begin(), gaps.end(), 0.0) / n;
  double sq = 0;
  for (double g : gaps) sq += (g - mean) * (g - mean);
  return {mean, std::sqrt(sq / n) / mean};
}

std::vector<double> draw(ArrivalConfig config, size_t max_count) {
  auto process = ArrivalProcess::create(config);
  REQUIRE(process.ok());
  std::vector<double> out;
  while (out.size() < max_count) {
    auto t = process->next();
    if (!t) break;
    out.push_back(*t);
  }
  return out;
}

ArrivalConfig constant(double rate, double burstiness, uint64_t seed) {
  ArrivalConfig c;
  c.schedule = RateSchedule::constant(rate);
  c.burstiness = burstiness;
  c.seed = seed;
  return c;
}

int64_t count_in(const std::vector<double>& times, double lo, double hi) {
  int64_t n = 0;
  for (double t : times) n += (t >= lo && t < hi) ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("Rng::gamma has the mean and variance of Gamma(shape, scale)") {
  for (double shape : {0.25, 1.0, 2.5}) {
    Rng rng(42);
    const double scale = 3.0;
    const int n = 200000;
    double sum = 0, sq = 0;
    for (int i = 0; i < n; ++i) {
      const double x = rng.gamma(shape, scale);
      REQUIRE(x > 0);
      sum += x;
      sq += x * x;
    }
    const double mean = sum / n;
    const double var = sq / n - mean * mean;
    INFO("shape " << shape);
    CHECK(mean == Approx(shape * scale).epsilon(0.02));
    CHECK(var == Approx(shape * scale * scale).epsilon(0.05));
  }
}

TEST_CASE("Poisson arrivals (burstiness 1) have mean gap 1/rate and CV 1") {
  const auto times = draw(constant(10.0, 1.0, 7), 20000);
  REQUIRE(times.size() == 20000);
  const GapStats s = gap_stats(times);
  CHECK(s.mean == Approx(0.1).epsilon(0.02));
  CHECK(s.cv == Approx(1.0).epsilon(0.03));
  // Counts in 1-s windows: Poisson, so variance / mean is about 1.
  std::vector<double> counts;
  for (int w = 0; w < 1900; ++w) counts.push_back(static_cast<double>(count_in(times, w, w + 1)));
  const double m = std::accumulate(counts.begin(), counts.end(), 0.0) / static_cast<double>(counts.size());
  double v = 0;
  for (double c : counts) v += (c - m) * (c - m);
  v /= static_cast<double>(counts.size());
  CHECK(m == Approx(10).epsilon(0.03));
  CHECK(v / m == Approx(1.0).epsilon(0.1));
}

TEST_CASE("gamma arrivals follow vLLM's burstiness: CV = 1/sqrt(burstiness), same mean rate") {
  for (double burstiness : {0.25, 4.0}) {
    const auto times = draw(constant(5.0, burstiness, 11), 20000);
    const GapStats s = gap_stats(times);
    INFO("burstiness " << burstiness);
    CHECK(s.mean == Approx(0.2).epsilon(0.03));
    CHECK(s.cv == Approx(1.0 / std::sqrt(burstiness)).epsilon(0.05));
  }
  const auto even = draw(constant(4.0, kInfinity, 1), 100);
  for (size_t i = 0; i < even.size(); ++i) CHECK(even[i] == Approx(0.25 * static_cast<double>(i + 1)).margin(1e-12));
}

TEST_CASE("a fixed-rate, fixed-count run is rescaled to end at exactly N / rate (vLLM)") {
  ArrivalConfig c = constant(10.0, 1.0, 3);
  c.max_requests = 100;
  const auto times = draw(c, 1000);
  REQUIRE(times.size() == 100);
  CHECK(times.back() == Approx(10.0).margin(1e-9));
  CHECK(std::is_sorted(times.begin(), times.end()));
  CHECK(times.front() > 0);
  c.normalize_total_span = false;
  const auto raw = draw(c, 1000);
  CHECK(raw.back() != Approx(10.0).margin(1e-9));
}

TEST_CASE("an infinite rate sends everything at t = 0, up to the count") {
  ArrivalConfig c = constant(kInfinity, 1.0, 0);
  c.max_requests = 50;
  const auto times = draw(c, 1000);
  REQUIRE(times.size() == 50);
  for (double t : times) CHECK(t == 0.0);
}

TEST_CASE("arrivals are deterministic given the seed") {
  CHECK(draw(constant(3.0, 0.5, 99), 500) == draw(constant(3.0, 0.5, 99), 500));
  CHECK(draw(constant(3.0, 0.5, 99), 500) != draw(constant(3.0, 0.5, 100), 500));
}

TEST_CASE("RateSchedule parses steps and ramps") {
  auto s = RateSchedule::parse("5@20s, 5->25@20s,0@500ms, 10@0.5m");
  REQUIRE(s.ok());
  REQUIRE(s->segments().size() == 4);
  CHECK(s->segments()[1].start_rate == 5);
  CHECK(s->segments()[1].end_rate == 25);
  CHECK(s->segments()[2].duration_s == 0.5);
  CHECK(s->segments()[3].duration_s == 30);
  CHECK(s->total_duration_s() == 70.5);
  CHECK(s->rate_at(30) == Approx(15));
  CHECK(s->rate_at(40.2) == 0);
  CHECK(s->rate_at(100) == 0);
  CHECK(s->cumulative(20) == Approx(100));
  CHECK(s->cumulative(40) == Approx(400));
  CHECK(s->cumulative(70.5) == Approx(700));
  for (double count : {0.5, 99.0, 150.0, 399.0, 400.5, 650.0}) {
    auto t = s->time_at_cumulative(count);
    REQUIRE(t.has_value());
    CHECK(s->cumulative(*t) == Approx(count).epsilon(1e-9));
  }
  CHECK_FALSE(s->time_at_cumulative(701).has_value());
  CHECK(s->describe() == "5@20s,5->25@20s,0@0.5s,10@30s");
}

TEST_CASE("RateSchedule errors name the segment and the bad value") {
  for (const char* bad : {"abc", "5@", "5@-3s", "-1@5s", "5->x@3s", "5@3x", ""}) {
    auto s = RateSchedule::parse(std::string("2@1s,") + bad);
    INFO(bad);
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.error().message, Catch::Contains("--rate-schedule[1]"));
  }
}

TEST_CASE("arrivals follow a schedule of steps and ramps, then stop") {
  ArrivalConfig c;
  c.schedule = *RateSchedule::parse("5@20s,5->25@20s,0@10s,10@20s");
  c.seed = 5;
  const auto times = draw(c, 100000);
  auto within = [](int64_t count, double expected) {
    return std::abs(static_cast<double>(count) - expected) <= 4 * std::sqrt(expected);
  };
  CHECK(within(count_in(times, 0, 20), 100));
  CHECK(within(count_in(times, 20, 30), 100));  // 5 -> 15 req/s over 10 s
  CHECK(within(count_in(times, 30, 40), 200));  // 15 -> 25 req/s over 10 s
  CHECK(count_in(times, 40, 50) == 0);
  CHECK(within(count_in(times, 50, 70), 200));
  CHECK(times.back() < 70);
  CHECK(std::is_sorted(times.begin(), times.end()));
}

TEST_CASE("vLLM's per-request ramp raises the rate with the request index") {
  ArrivalConfig c;
  c.max_requests = 400;
  c.ramp_up_strategy = "linear";
  c.ramp_up_start_rps = 2;
  c.ramp_up_end_rps = 20;
  c.seed = 1;
  const auto times = draw(c, 1000);
  REQUIRE(times.size() == 400);
  const double early = (times[99] - times[0]) / 99;
  const double late = (times[399] - times[300]) / 99;
  CHECK(early > 3 * late);
  CHECK_FALSE(ArrivalProcess::create([] {
                ArrivalConfig bad;
                bad.ramp_up_strategy = "linear";
                bad.ramp_up_start_rps = 1;
                bad.ramp_up_end_rps = 2;
                return bad;
              }())
                  .ok());  // needs a count
}

TEST_CASE("ArrivalProcess rejects bad burstiness") {
  ArrivalConfig c = constant(1.0, 0.0, 0);
  auto p = ArrivalProcess::create(c);
  REQUIRE_FALSE(p.ok());
  CHECK_THAT(p.error().message, Catch::Contains("--burstiness"));
}
